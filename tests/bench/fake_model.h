/* Random-weight models of real shapes for the GPU benchmarks: a host cr_model whose matrices
 * have no data (the CUDA backend fills them on the GPU with cuda_opts.random_weights). */
#ifndef CR_BENCH_FAKE_MODEL_H
#define CR_BENCH_FAKE_MODEL_H
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *name; int n_layer, dim, nh, nkv, ffn, V, tied; } shape;
static const shape SH_1B = {"Llama-3.2-1B", 16, 2048, 32, 8, 8192, 128256, 1};
static const shape SH_8B = {"Llama-3.1-8B", 32, 4096, 32, 8, 14336, 128256, 0};
static char sentinel[2];   /* data pointers of the embedding and output (never read) */

static void set_w(wmat *w, uint32_t t, int64_t rows, int64_t cols, const void *data) {
    w->data = data; w->type = t; w->rows = rows; w->cols = cols; w->row_bytes = ggml_row_size(t, (uint64_t)cols);
}

static void fake_model(cr_model *m, const shape *s, uint32_t type) {
    memset(m, 0, sizeof *m);
    hparams *hp = &m->hp;
    hp->arch = CR_ARCH_LLAMA; hp->n_layer = s->n_layer; hp->dim = s->dim; hp->n_head = s->nh; hp->n_kv = s->nkv;
    hp->head_dim = s->dim / s->nh; hp->ffn = s->ffn; hp->n_vocab = s->V; hp->n_ctx = 131072;
    hp->rope_dim = hp->head_dim; hp->rope_neox = 0; hp->eps = 1e-5f; hp->rope_base = 500000.0f;
    hp->rope_inv_freq = malloc(sizeof(float) * hp->rope_dim / 2);
    for (int i = 0; i < hp->rope_dim / 2; i++) hp->rope_inv_freq[i] = (float)pow(500000.0, -2.0 * i / hp->rope_dim);
    const int qd = hp->n_head * hp->head_dim, kvd = hp->n_kv * hp->head_dim;
    set_w(&m->tok_embd, type, s->V, s->dim, &sentinel[0]);
    set_w(&m->output, type, s->V, s->dim, s->tied ? (const void *)&sentinel[0] : (const void *)&sentinel[1]);
    m->out_norm = malloc(sizeof(float) * s->dim);
    for (int i = 0; i < s->dim; i++) m->out_norm[i] = 1.0f;
    m->layers = calloc((size_t)s->n_layer, sizeof *m->layers);
    for (int l = 0; l < s->n_layer; l++) {
        layer_w *L = &m->layers[l];
        set_w(&L->q, type, qd, s->dim, NULL); set_w(&L->k, type, kvd, s->dim, NULL); set_w(&L->v, type, kvd, s->dim, NULL);
        set_w(&L->o, type, s->dim, qd, NULL);
        set_w(&L->gate, type, s->ffn, s->dim, NULL); set_w(&L->up, type, s->ffn, s->dim, NULL); set_w(&L->down, type, s->dim, s->ffn, NULL);
        L->attn_norm = malloc(sizeof(float) * s->dim); L->ffn_norm = malloc(sizeof(float) * s->dim);
        for (int i = 0; i < s->dim; i++) L->attn_norm[i] = L->ffn_norm[i] = 1.0f;
    }
    snprintf(m->name, sizeof m->name, "%s %s (random)", s->name, ggml_type_name(type));
    snprintf(m->g.path, sizeof m->g.path, "random-%s-%s.gguf", s->name, ggml_type_name(type));
    m->fingerprint = 0x5eed0000ull ^ ((uint64_t)type << 32) ^ (uint64_t)s->n_layer;
}

static void free_fake(cr_model *m) {
    for (int l = 0; l < m->hp.n_layer; l++) { free(m->layers[l].attn_norm); free(m->layers[l].ffn_norm); }
    free(m->layers); free(m->out_norm); free(m->hp.rope_inv_freq);
}

#endif
