#include "matmul.h"
#include <string.h>

typedef struct {
    const wmat *W; const float *x; const q8_block *xq; int T; float *y;
} mm_ctx;

#define TOK_TILE 16
#define MAX_ROW 65536

/* Rows are decoded once (to int8 + scales, or to f32) into a per-thread buffer and then
 * multiplied with every token of the chunk, so prefill pays the decode once per row. */
static _Thread_local int8_t row_q[MAX_ROW];
static _Thread_local float row_d[MAX_ROW / 16], row_m[MAX_ROW / 32], row_f[MAX_ROW];

static void mm_rows(void *p, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const mm_ctx *c = p;
    const wmat *W = c->W;
    int64_t n = W->cols, nb = n / 32;
    int q8 = quant_uses_q8(W->type);
    if (c->T == 1 || n > MAX_ROW) {
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
            for (int t = 0; t < c->T; t++)
                c->y[(size_t)t * W->rows + r] = q8 ? vec_dot_q(W->type, row, c->xq + (size_t)t * nb, n)
                                                   : vec_dot_f(W->type, row, c->x + (size_t)t * n, n);
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        if (q8) {
            unpack_row_q(W->type, row, n, row_q, row_d, row_m);
            for (int t = 0; t < c->T; t++)
                c->y[(size_t)t * W->rows + r] = dot_unpacked_q(row_q, row_d, row_m, c->xq + (size_t)t * nb, nb);
        } else {
            const float *wf = (const float *)row;
            if (W->type != GGML_TYPE_F32) { dequant_row(W->type, row, row_f, n); wf = row_f; }
            for (int t = 0; t < c->T; t++)
                c->y[(size_t)t * W->rows + r] = vec_dot_f(GGML_TYPE_F32, wf, c->x + (size_t)t * n, n);
        }
    }
}

typedef struct { const float *x; q8_block *xq; int64_t n; } q_ctx;
static void q_rows(void *p, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    const q_ctx *c = p;
    for (int64_t t = t0; t < t1; t++) quantize_q8(c->x + t * c->n, c->xq + t * (c->n / 32), c->n);
}

void quantize_rows(threadpool *tp, const float *x, int T, int64_t n, q8_block *xq) {
    q_ctx c = {x, xq, n};
    tp_for(tp, T, 4, q_rows, &c);
}

void matmul_q8(threadpool *tp, const wmat *W, const float *x, const q8_block *xq, int T, float *y) {
    mm_ctx c = {W, x, xq, T, y};
    /* grain: enough rows to amortise scheduling, small enough to balance */
    int64_t grain = W->rows / (tp_threads(tp) * 8);
    if (grain < 4) grain = 4;
    if (grain > 64) grain = 64;
    tp_for(tp, W->rows, grain, mm_rows, &c);
}

void matmul(threadpool *tp, const wmat *W, const float *x, int T, float *y, q8_block *xq) {
    if (quant_uses_q8(W->type)) quantize_rows(tp, x, T, W->cols, xq);
    matmul_q8(tp, W, x, xq, T, y);
}

void wmat_row(const wmat *W, int64_t r, float *dst) {
    dequant_row(W->type, (const uint8_t *)W->data + (size_t)r * W->row_bytes, dst, W->cols);
}
