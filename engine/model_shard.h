/* One rank's share of a model for tensor parallelism (issue 10), Megatron style: the query
 * and KV heads split in contiguous groups (q, k, v rows; their biases), the FFN split by
 * columns (gate, up rows), and the two row-parallel matrices (attention output, FFN down)
 * cut into column slices, so that the full result is the sum over the ranks of each rank's
 * product (one all-reduce after each). The token embedding and the output matrix are split
 * by vocabulary (model_shard_vocab: rank r holds the rows of tokens [v0, v0 + vn); the
 * embedding of a token is then the sum over the ranks, and each rank computes its share of
 * the logits); the norms are shared. A view: every matrix still points into the parent's mmap (a column slice keeps the
 * parent's row stride in row_bytes), nothing is copied. */
#ifndef CR_MODEL_SHARD_H
#define CR_MODEL_SHARD_H
#include <stddef.h>
#include "model.h"

/* out = rank `rank` of n of m (hparams with n_head, n_kv and ffn divided by n). 0, or -1
 * with err when n does not divide the heads / FFN columns or a column slice is not whole
 * quantization blocks. Free with model_shard_free (m must outlive out). */
int  model_shard(const cr_model *m, int rank, int n, cr_model *out, char *err, size_t errlen);
void model_shard_free(cr_model *out);
/* Rank `rank` of n's share of the vocabulary: tokens [*v0, *v0 + *vn) (contiguous, sizes
 * differing by at most one), the rows of its tok_embd and output views. */
void model_shard_vocab(const cr_model *m, int rank, int n, int *v0, int *vn);
/* Whether n ranks can split m (model_shard's checks): 0, or -1 with err. */
int  model_shard_check(const cr_model *m, int n, char *err, size_t errlen);
/* Columns [c0, c0 + nc) of every row of w (whole blocks; the row stride stays w->row_bytes). */
wmat wmat_cols(const wmat *w, int64_t c0, int64_t nc);
/* Bytes of one stored row of a (possibly column-sliced) matrix: what a packed copy holds. */
size_t wmat_packed_row_bytes(const wmat *w);
#endif
