#include "model_shard.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t wmat_packed_row_bytes(const wmat *w) { return ggml_row_size(w->type, (uint64_t)w->cols); }

/* rows [r0, r0 + nr) */
static wmat rows_of(const wmat *w, int64_t r0, int64_t nr) {
    wmat v = *w;
    v.data = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    v.rows = nr;
    return v;
}

wmat wmat_cols(const wmat *w, int64_t c0, int64_t nc) {
    wmat v = *w;
    v.data = (const uint8_t *)w->data + ggml_row_size(w->type, (uint64_t)c0);
    v.cols = nc;
    return v;
}

void model_shard_vocab(const cr_model *m, int rank, int n, int *v0, int *vn) {
    const int64_t V = m->hp.n_vocab;
    *v0 = (int)(V * rank / n);
    *vn = (int)(V * (rank + 1) / n) - *v0;
}

int model_shard_check(const cr_model *m, int n, char *err, size_t errlen) {
    const hparams *hp = &m->hp;
    if (n < 1) { snprintf(err, errlen, "%d ranks", n); return -1; }
    if (hp->n_head % n || hp->n_kv % n || hp->ffn % n) {
        snprintf(err, errlen, "%d ranks do not divide %d query heads, %d KV heads and %d FFN columns", n, hp->n_head, hp->n_kv, hp->ffn);
        return -1;
    }
    const int64_t qs = (int64_t)hp->n_head * hp->head_dim / n, fs = hp->ffn / n;
    for (int l = 0; l < hp->n_layer; l++) {
        const layer_w *W = &m->layers[l];
        if (qs % (int64_t)ggml_blck_size(W->o.type) || fs % (int64_t)ggml_blck_size(W->down.type)) {
            snprintf(err, errlen, "%d ranks: slices of %lld and %lld columns are not whole %s / %s blocks", n, (long long)qs,
                     (long long)fs, ggml_type_name(W->o.type), ggml_type_name(W->down.type));
            return -1;
        }
    }
    return 0;
}

int model_shard(const cr_model *m, int rank, int n, cr_model *out, char *err, size_t errlen) {
    const hparams *hp = &m->hp;
    memset(out, 0, sizeof *out);
    if (model_shard_check(m, n, err, errlen)) return -1;
    if (rank < 0 || rank >= n) { snprintf(err, errlen, "rank %d of %d", rank, n); return -1; }
    const int64_t qs = (int64_t)hp->n_head * hp->head_dim / n, ks = (int64_t)hp->n_kv * hp->head_dim / n, fs = hp->ffn / n;
    *out = *m;
    memset(&out->g, 0, sizeof out->g);   /* the parent owns the file */
    out->hp.n_head = hp->n_head / n;
    out->hp.n_kv = hp->n_kv / n;
    out->hp.ffn = hp->ffn / n;
    out->layers = calloc((size_t)hp->n_layer, sizeof *out->layers);
    if (!out->layers) { snprintf(err, errlen, "out of memory"); return -1; }
    out->weight_bytes = 0;
    for (int l = 0; l < hp->n_layer; l++) {
        const layer_w *W = &m->layers[l];
        layer_w *S = &out->layers[l];
        *S = *W;
        S->q = rows_of(&W->q, rank * qs, qs);
        S->k = rows_of(&W->k, rank * ks, ks);
        S->v = rows_of(&W->v, rank * ks, ks);
        S->gate = rows_of(&W->gate, rank * fs, fs);
        S->up = rows_of(&W->up, rank * fs, fs);
        S->o = wmat_cols(&W->o, rank * qs, qs);
        S->down = wmat_cols(&W->down, rank * fs, fs);
        if (W->bq) S->bq = W->bq + rank * qs;
        if (W->bk) S->bk = W->bk + rank * ks;
        if (W->bv) S->bv = W->bv + rank * ks;
        const wmat *ws[7] = {&S->q, &S->k, &S->v, &S->o, &S->gate, &S->up, &S->down};
        for (int i = 0; i < 7; i++) out->weight_bytes += (size_t)ws[i]->rows * wmat_packed_row_bytes(ws[i]);
    }
    int v0, vn;
    model_shard_vocab(m, rank, n, &v0, &vn);
    out->tok_embd = rows_of(&m->tok_embd, v0, vn);
    out->output = rows_of(&m->output, v0, vn);
    out->weight_bytes += (size_t)vn * m->tok_embd.row_bytes;
    if (m->output.data != m->tok_embd.data) out->weight_bytes += (size_t)vn * m->output.row_bytes;
    return 0;
}

void model_shard_free(cr_model *out) {
    free(out->layers);
    out->layers = NULL;
}
