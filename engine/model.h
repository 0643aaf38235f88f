/* Llama-family model (architectures `llama` and `qwen2`) loaded from GGUF.
 * Weights stay in the mmap; matrix kernels read the quantized blocks. */
#ifndef CR_MODEL_H
#define CR_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "gguf.h"

enum cr_arch { CR_ARCH_LLAMA, CR_ARCH_QWEN2 };

typedef struct {
    const void *data;   /* rows of `cols` elements of `type`, in the mmap */
    uint32_t type;
    int64_t rows, cols; /* y[rows] = W[rows][cols] . x[cols] */
    size_t row_bytes;
} wmat;

typedef struct {
    wmat q, k, v, o, gate, up, down;
    float *attn_norm, *ffn_norm;   /* [dim] (owned copies) */
    float *bq, *bk, *bv;           /* qwen2 biases or NULL */
} layer_w;

typedef struct {
    int arch;
    int n_layer, dim, n_head, n_kv, head_dim, ffn, n_vocab, n_ctx;
    int rope_dim;          /* rotated dimensions per head (<= head_dim) */
    int rope_neox;         /* 1: pairs (i, i + rope_dim/2); 0: adjacent pairs */
    float eps, rope_base;
    float *rope_inv_freq;  /* [rope_dim/2], llama3 scaling applied */
} hparams;

typedef struct cr_model {
    gguf_file g;
    hparams hp;
    wmat tok_embd, output;
    float *out_norm;       /* [dim] */
    layer_w *layers;       /* [n_layer] */
    char name[256];
    uint64_t fingerprint;
    size_t weight_bytes;
} cr_model;

/* Loads the model; on error returns -1 with "PATH: problem" in err. */
int model_load(cr_model *m, const char *path, char *err, size_t errlen);
/* Loads hyper-parameters and vocabulary only (vocab-only GGUFs allowed). */
int model_open_vocab(cr_model *m, const char *path, char *err, size_t errlen);
void model_free(cr_model *m);

/* RoPE on one head vector x[head_dim] at position pos (in place). */
void rope_apply(const hparams *hp, float *x, int64_t pos);

#endif
