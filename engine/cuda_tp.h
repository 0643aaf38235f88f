/* Tensor parallelism over the GPUs of one host (issue 10): one cuda_state per rank, each
 * holding its share of the model (model_shard.h: query / KV head groups, FFN columns) and
 * of the cascading cache (its KV heads: eviction is per KV head and the control state,
 * kept on the host, is the same for every rank, so eviction needs no communication), one
 * thread per rank (the caller drives rank 0), and one all-reduce of the residual after
 * the attention output and after the FFN down projection of every layer (cuda_opts.allreduce).
 *
 * On distinct GPUs the all-reduce is NCCL's (cuda_nccl.h), inside the decode steps' CUDA
 * graphs. With devices == NULL every rank lives on device 0: a simulation that checks the
 * sharding on one GPU (NCCL refuses two ranks on one device): the all-reduce synchronizes
 * the ranks on the host and sums with cuBLAS, and decode runs without graphs.
 *
 * Compiled only with CUDA=1. */
#ifndef CR_CUDA_TP_H
#define CR_CUDA_TP_H
#include "cuda_state.h"

typedef struct cuda_tp cuda_tp;

/* n >= 1 ranks on devices[0..n) (distinct), or all on device 0 when devices is NULL. m
 * must outlive the result. NULL + err (a shape n does not divide, NCCL missing, out of
 * GPU memory on a rank, ...). */
cuda_tp *cuda_tp_create(const cr_model *m, const cascade_ctrl *ctrl, int max_L, const cuda_opts *o, int n, const int *devices,
                        char *err, size_t errlen);
void cuda_tp_free(cuda_tp *t);
int  cuda_tp_ranks(const cuda_tp *t);
/* As cuda_forward (rank 0 computes the outputs). 0, or -1 + err. */
int  cuda_tp_forward(cuda_tp *t, const cascade_ctrl *pre, const cascade_plan *plan, const int32_t *tok, int L, int out_mode,
                     const int32_t *targets, float *out, char *err, size_t errlen);
void cuda_tp_reset(cuda_tp *t);
/* The cache of the whole model: heads[n_layer * n_kv] (unsharded numbering), each rank's
 * KV heads to / from their places. */
int  cuda_tp_download(cuda_tp *t, cascade_head *heads);
int  cuda_tp_upload(cuda_tp *t, const cascade_head *heads);
const char *cuda_tp_describe(const cuda_tp *t);
/* The attention probe (cuda_probe_set / cuda_probe_take) on every rank; take sums the ranks'
 * dense arrays (each holds its KV heads' share). */
int  cuda_tp_probe_set(cuda_tp *t, int on, int layer_from, int layer_to, int64_t cap, char *err, size_t errlen);
int  cuda_tp_probe_take(cuda_tp *t, float *host, int64_t n);
#endif
