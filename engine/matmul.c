/* CPU matrix products y[T][rows] = x[T][cols] . W^T.
 *
 * Decode (T == 1) is a matrix-vector product: each thread streams its rows once through
 * the fused per-type dot products of quant.c (vec_dot_q / vec_dot_f).
 *
 * Prefill (T > 1) is a GEMM. With AVX-512 (F, BW, VL, VNNI) a work item is a group of RG
 * weight rows, decoded once into a per-thread panel (int8 values with their scales, or
 * floats), then multiplied with every token in register tiles of RB rows x up to 4 (quantized)
 * or 6 (float) tokens; each token tile is used for all the panel's row tiles while in L1:
 *  - quantized weights: the q8 activations are rewritten once per call as unsigned bytes
 *    (x + 128); a tile step covers 64 elements (two q8 blocks) with vpdpbusd, whose
 *    accumulator starts at -128 * sum(w) so the integer dot is exactly sum(x * w); the
 *    block scales are applied per 16 lanes (weights per 16 elements, activations per 32)
 *    and the per-block minimums of the K-quants / Q4_1 / Q5_1 are a second, short dot of
 *    the row's minimums with the activations' block sums.
 *  - F32 / F16 / BF16 weights: FMA tiles on floats (F16 / BF16 panels converted once),
 *    each dot summed in vec_dot_f's order, so prefill and decode logits are identical.
 * Without AVX-512 every row is decoded once and dotted with each token. */
#include "matmul.h"
#include "gguf.h"
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define MM_AVX512 1
#include <immintrin.h>
#endif

typedef struct {
    const wmat *W; const float *x; const q8_block *xq; int T; float *y;
} mm_ctx;

/* ---- decode and the portable path ---- */
static void mm_rows(void *p, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const mm_ctx *c = p;
    const wmat *W = c->W;
    int64_t n = W->cols, nb = n / 32;
    int q8 = quant_uses_q8(W->type);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        for (int t = 0; t < c->T; t++)
            c->y[(size_t)t * W->rows + r] = q8 ? vec_dot_q(W->type, row, c->xq + (size_t)t * nb, n)
                                               : vec_dot_f(W->type, row, c->x + (size_t)t * n, n);
    }
}

#define MAX_ROW 65536
/* Portable prefill: each row decoded once (to int8 + scales, or to floats), then dotted with
 * every token of the chunk. */
static _Thread_local int8_t row_q[MAX_ROW];
static _Thread_local float row_d[MAX_ROW / 16], row_m[MAX_ROW / 32], row_f[MAX_ROW];

static void mm_rows_unpacked(void *p, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const mm_ctx *c = p;
    const wmat *W = c->W;
    int64_t n = W->cols, nb = n / 32;
    if (n > MAX_ROW) { mm_rows(p, r0, r1, tid); return; }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        if (quant_uses_q8(W->type)) {
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

#if MM_AVX512
#define RB 4      /* rows per register tile */
#define RG 16     /* rows per work item (one decoded panel) */
/* Keeps a loaded vector in its register (the compiler would otherwise fold the load into
 * every FMA that uses it, doubling the loads of a tile). */
#define IN_REG(v) __asm__("" : "+v"(v))

typedef struct {
    const wmat *W; const float *x; int T; float *y;
    int q;                        /* quantized weights (q8 activations) */
    int has_min;
    int64_t n, npad, nbp, nbs;    /* cols; q: cols rounded up to 64, blocks (npad/32), min slots (mult. of 16) */
    const uint8_t *xu; const float *xd, *xs;   /* prepared activations [T][npad], [T][nbp], [T][nbs] */
    uint8_t *scratch; size_t per_thread;
    int64_t ngroups; int tblock;  /* work item i: row group i % ngroups, tokens of block i / ngroups */
} gemm_ctx;

/* Sums of four 16-lane accumulators, each in the order of quant.c's 2 x 8-lane dot products:
 * (lo8 + hi8), then lanes i + i+4, then (0 + 2) + (1 + 3); so a float tile equals vec_dot_f. */
static inline __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m256 b0 = _mm256_add_ps(_mm512_castps512_ps256(a0), _mm512_extractf32x8_ps(a0, 1));
    __m256 b1 = _mm256_add_ps(_mm512_castps512_ps256(a1), _mm512_extractf32x8_ps(a1, 1));
    __m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(a2), _mm512_extractf32x8_ps(a2, 1));
    __m256 b3 = _mm256_add_ps(_mm512_castps512_ps256(a3), _mm512_extractf32x8_ps(a3, 1));
    __m128 c0 = _mm_add_ps(_mm256_castps256_ps128(b0), _mm256_extractf128_ps(b0, 1));
    __m128 c1 = _mm_add_ps(_mm256_castps256_ps128(b1), _mm256_extractf128_ps(b1, 1));
    __m128 c2 = _mm_add_ps(_mm256_castps256_ps128(b2), _mm256_extractf128_ps(b2, 1));
    __m128 c3 = _mm_add_ps(_mm256_castps256_ps128(b3), _mm256_extractf128_ps(b3, 1));
    __m128 s01 = _mm_add_ps(_mm_unpacklo_ps(c0, c1), _mm_unpackhi_ps(c0, c1));
    __m128 s23 = _mm_add_ps(_mm_unpacklo_ps(c2, c3), _mm_unpackhi_ps(c2, c3));
    return _mm_add_ps(_mm_movelh_ps(s01, s23), _mm_movehl_ps(s23, s01));
}

/* Stores acc[r][t] (t < C) for the valid rows of the tile. */
#define CF 6      /* tokens per float tile (4 x 6 accumulators) */
static inline __attribute__((always_inline)) void tile_store(const gemm_ctx *c, __m512 acc[RB][CF], int C, int64_t r0, int nr, int t0) {
    for (int t = 0; t < C; t++) {
        float o[4];
        _mm_storeu_ps(o, reduce4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
        float *y = c->y + (size_t)(t0 + t) * c->W->rows + r0;
        for (int r = 0; r < nr; r++) y[r] = o[r];
    }
}

/* Quantized tile: RB panel rows (int8 q with stride npad, expanded scales dw with stride npad/4,
 * minimums m with stride nbs) x C tokens. */
static inline __attribute__((always_inline)) void tile_q(const gemm_ctx *c, const int8_t *pq, const float *pdw, const float *pm,
                                                         int t0, const int C, int64_t r0, int nr) {
    const int64_t np = c->npad, nk = np / 64, sd = np / 4;
    const __m512i c128 = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc[RB][CF];
    for (int r = 0; r < RB; r++) for (int t = 0; t < C; t++) acc[r][t] = _mm512_setzero_ps();
    const uint8_t *xu = c->xu + (size_t)t0 * np;
    const float *xd = c->xd + (size_t)t0 * c->nbp;
    for (int64_t k = 0; k < nk; k++) {
        __m512i w[RB], ini[RB];
        for (int r = 0; r < RB; r++) {
            w[r] = _mm512_loadu_si512(pq + r * np + 64 * k);
            IN_REG(w[r]);
            ini[r] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, c128, w[r]));
        }
        for (int t = 0; t < C; t++) {
            __m512i xv = _mm512_loadu_si512(xu + (size_t)t * np + 64 * k);
            __m512 dx = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(
                _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xd + (size_t)t * c->nbp + 2 * k)))));
            for (int r = 0; r < RB; r++) {
                __m512i p = _mm512_dpbusd_epi32(ini[r], xv, w[r]);
                __m512 sc = _mm512_mul_ps(dx, _mm512_loadu_ps(pdw + r * sd + 16 * k));
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc[r][t]);
            }
        }
    }
    if (c->has_min) {
        const float *xs = c->xs + (size_t)t0 * c->nbs;
        for (int64_t j = 0; j < c->nbs; j += 16) {
            __m512 mv[RB];
            for (int r = 0; r < RB; r++) mv[r] = _mm512_loadu_ps(pm + r * c->nbs + j);
            for (int t = 0; t < C; t++) {
                __m512 sv = _mm512_loadu_ps(xs + (size_t)t * c->nbs + j);
                for (int r = 0; r < RB; r++) acc[r][t] = _mm512_fmadd_ps(mv[r], sv, acc[r][t]);
            }
        }
    }
    tile_store(c, acc, C, r0, nr, t0);
}

/* Float tile: RB rows of floats (stride ldw) x C tokens of x. */
static inline __attribute__((always_inline)) void tile_f(const gemm_ctx *c, const float *const *pw, int t0, const int C, int64_t r0, int nr) {
    const int64_t n = c->n;
    __m512 acc[RB][CF];
    for (int r = 0; r < RB; r++) for (int t = 0; t < C; t++) acc[r][t] = _mm512_setzero_ps();
    const float *x = c->x + (size_t)t0 * n;
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 w[RB];
        for (int r = 0; r < RB; r++) { w[r] = _mm512_loadu_ps(pw[r] + k); IN_REG(w[r]); }
        for (int t = 0; t < C; t++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)t * n + k);
            for (int r = 0; r < RB; r++) acc[r][t] = _mm512_fmadd_ps(w[r], xv, acc[r][t]);
        }
    }
    if (k == n) { tile_store(c, acc, C, r0, nr, t0); return; }
    for (int t = 0; t < C; t++) {           /* tail after the vector sum, as vec_dot_f does */
        float o[4];
        _mm_storeu_ps(o, reduce4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
        float *y = c->y + (size_t)(t0 + t) * c->W->rows + r0;
        const float *xt = x + (size_t)t * n;
        for (int r = 0; r < nr; r++) {
            float v = o[r];
            for (int64_t i = k; i < n; i++) v += pw[r][i] * xt[i];
            y[r] = v;
        }
    }
}

static void f16_row(uint32_t type, const uint16_t *h, float *dst, int64_t n) {
    int64_t i = 0;
    if (type == GGML_TYPE_F16)
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
    else
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i))), 16)));
    for (; i < n; i++) dst[i] = type == GGML_TYPE_F16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i]);
}

static void gemm_groups(void *p, int64_t g0, int64_t g1, int tid) {
    const gemm_ctx *c = p;
    const wmat *W = c->W;
    const int64_t n = c->n, np = c->npad;
    uint8_t *scr = c->scratch + (size_t)tid * c->per_thread;
    for (int64_t item = g0; item < g1; item++) {
        int64_t g = item % c->ngroups, r0 = g * RG;
        int tb = (int)(item / c->ngroups) * c->tblock, te = tb + c->tblock < c->T ? tb + c->tblock : c->T;
        int nr = W->rows - r0 < RG ? (int)(W->rows - r0) : RG;
        if (c->q) {
            /* panel: q [RG][npad] int8, dw [RG][npad/4], m [RG][nbs], tmp d [n/16] */
            int8_t *pq = (int8_t *)scr;
            float *pdw = (float *)(scr + (size_t)RG * np), *pm = pdw + (size_t)RG * (np / 4), *td = pm + (size_t)RG * c->nbs;
            for (int i = 0; i < RG; i++) {
                int8_t *q = pq + (size_t)i * np;
                float *dw = pdw + (size_t)i * (np / 4), *m = pm + (size_t)i * c->nbs;
                if (i < nr) {
                    unpack_row_q(W->type, (const uint8_t *)W->data + (size_t)(r0 + i) * W->row_bytes, n, q, td, m);
                    memset(q + n, 0, (size_t)(np - n));
                    for (int64_t j = 0; j < n / 16; j++) { float d = td[j]; dw[4 * j] = d; dw[4 * j + 1] = d; dw[4 * j + 2] = d; dw[4 * j + 3] = d; }
                    memset(dw + n / 4, 0, sizeof(float) * (size_t)((np - n) / 4));
                    memset(m + n / 32, 0, sizeof(float) * (size_t)(c->nbs - n / 32));
                } else {
                    memset(q, 0, (size_t)np); memset(dw, 0, sizeof(float) * (size_t)(np / 4)); memset(m, 0, sizeof(float) * (size_t)c->nbs);
                }
            }
            for (int t = tb; t < te; t += 4) {       /* a token tile stays in L1 across the panel */
                int C = te - t < 4 ? te - t : 4;
                for (int rs = 0; rs < nr; rs += RB) {
                    const int8_t *q = pq + (size_t)rs * np;
                    const float *dw = pdw + (size_t)rs * (np / 4), *m = pm + (size_t)rs * c->nbs;
                    int rn = nr - rs < RB ? nr - rs : RB;
                    switch (C) {
                    case 4: tile_q(c, q, dw, m, t, 4, r0 + rs, rn); break;
                    case 3: tile_q(c, q, dw, m, t, 3, r0 + rs, rn); break;
                    case 2: tile_q(c, q, dw, m, t, 2, r0 + rs, rn); break;
                    default: tile_q(c, q, dw, m, t, 1, r0 + rs, rn); break;
                    }
                }
            }
        } else {
            const float *rows[RG];
            float *pf = (float *)scr;
            for (int i = 0; i < RG; i++) {
                const uint8_t *src = (const uint8_t *)W->data + (size_t)(r0 + (i < nr ? i : 0)) * W->row_bytes;
                if (W->type == GGML_TYPE_F32) rows[i] = (const float *)src;
                else if (i < nr) { f16_row(W->type, (const uint16_t *)src, pf + (size_t)i * n, n); rows[i] = pf + (size_t)i * n; }
                else rows[i] = rows[0];
            }
            for (int t = tb; t < te; t += CF) {      /* a token tile stays in L1 across the panel */
                int C = te - t < CF ? te - t : CF;
                for (int rs = 0; rs < nr; rs += RB) {
                    const float *const *pw = rows + rs;
                    int rn = nr - rs < RB ? nr - rs : RB;
                    switch (C) {
                    case 6: tile_f(c, pw, t, 6, r0 + rs, rn); break;
                    case 5: tile_f(c, pw, t, 5, r0 + rs, rn); break;
                    case 4: tile_f(c, pw, t, 4, r0 + rs, rn); break;
                    case 3: tile_f(c, pw, t, 3, r0 + rs, rn); break;
                    case 2: tile_f(c, pw, t, 2, r0 + rs, rn); break;
                    default: tile_f(c, pw, t, 1, r0 + rs, rn); break;
                    }
                }
            }
        }
    }
}

/* Returns 0 when done, -1 when the type has no tiled kernel or memory ran out. */
static int gemm_avx512(threadpool *tp, const wmat *W, const float *x, const q8_block *xq, int T, float *y) {
    uint32_t ty = W->type;
    int q = quant_uses_q8(ty);
    if (!q && ty != GGML_TYPE_F32 && ty != GGML_TYPE_F16 && ty != GGML_TYPE_BF16) return -1;
    if (q && !quant_supported(ty)) return -1;
    gemm_ctx c = {.W = W, .x = x, .T = T, .y = y, .q = q, .n = W->cols};
    int64_t n = W->cols, nb = n / 32;
    int nth = tp_threads(tp);
    size_t prep = 0;
    if (q) {
        c.npad = (n + 63) / 64 * 64; c.nbp = c.npad / 32; c.nbs = (nb + 15) / 16 * 16;
        c.has_min = ty == GGML_TYPE_Q4_1 || ty == GGML_TYPE_Q5_1 || ty == GGML_TYPE_Q4_K || ty == GGML_TYPE_Q5_K;
        prep = (size_t)T * ((size_t)c.npad + 4 * (size_t)c.nbp + 4 * (size_t)c.nbs);
        c.per_thread = (size_t)RG * ((size_t)c.npad + (size_t)c.npad + 4 * (size_t)c.nbs) + 4 * (size_t)(n / 16 + 16);
    } else {
        c.npad = n;
        c.per_thread = ty == GGML_TYPE_F32 ? 0 : (size_t)RG * (size_t)n * 4;
    }
    c.per_thread = (c.per_thread + 63) / 64 * 64;
    prep = (prep + 63) / 64 * 64;
    uint8_t *buf = aligned_alloc(64, prep + (size_t)nth * c.per_thread + 64);
    if (!buf) return -1;
    if (q) {
        uint8_t *xu = buf;
        float *xd = (float *)(buf + (size_t)T * c.npad), *xs = xd + (size_t)T * c.nbp;
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        for (int t = 0; t < T; t++) {
            const q8_block *b = xq + (size_t)t * nb;
            uint8_t *u = xu + (size_t)t * c.npad;
            float *d = xd + (size_t)t * c.nbp, *s = xs + (size_t)t * c.nbs;
            for (int64_t j = 0; j < nb; j++) {
                _mm256_storeu_si256((__m256i *)(u + 32 * j), _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)b[j].q), flip));
                d[j] = b[j].d; s[j] = b[j].s;
            }
            memset(u + n, 0x80, (size_t)(c.npad - n));
            for (int64_t j = nb; j < c.nbp; j++) d[j] = 0;
            for (int64_t j = nb; j < c.nbs; j++) s[j] = 0;
        }
        c.xu = xu; c.xd = xd; c.xs = xs;
    }
    c.scratch = buf + prep;
    /* Work items could also split the tokens (c.tblock < T) so that an activation block stays
     * in L2 across row groups; measured slower here for F32 / F16 (the weights then come back
     * from L3 once per block), so each item takes every token. */
    c.ngroups = (W->rows + RG - 1) / RG;
    c.tblock = T;
    tp_for(tp, c.ngroups * ((T + c.tblock - 1) / c.tblock), 1, gemm_groups, &c);
    free(buf);
    return 0;
}
#endif

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
    if (T > 1) {
#if MM_AVX512
        if (gemm_avx512(tp, W, x, xq, T, y) == 0) return;
#endif
        int64_t grain = W->rows / (tp_threads(tp) * 8);
        if (grain < 4) grain = 4;
        if (grain > 64) grain = 64;
        tp_for(tp, W->rows, grain, mm_rows_unpacked, &c);
        return;
    }
    /* grain: enough rows to amortise scheduling, small enough to balance */
    int64_t grain = W->rows / (tp_threads(tp) * 8);
    if (grain < 4) grain = 4;
    if (grain > 64) grain = 64;
    tp_for(tp, W->rows, grain, mm_rows, &c);
}

typedef struct { const wmat *const *W; float *const *y; int n; const float *x; const q8_block *xq; int64_t off[9]; } mv_multi_ctx;

static void mv_multi_rows(void *p, int64_t g0, int64_t g1, int tid) {
    (void)tid;
    const mv_multi_ctx *c = p;
    int m = 0;
    while (g0 >= c->off[m + 1]) m++;
    for (int64_t g = g0; g < g1; g++) {
        while (g >= c->off[m + 1]) m++;
        const wmat *W = c->W[m];
        const int64_t r = g - c->off[m];
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        c->y[m][r] = quant_uses_q8(W->type) ? vec_dot_q(W->type, row, c->xq, W->cols) : vec_dot_f(W->type, row, c->x, W->cols);
    }
}

void matvec_multi(threadpool *tp, const wmat *const *W, float *const *y, int n, const float *x, const q8_block *xq) {
    mv_multi_ctx c = {W, y, n, x, xq, {0}};
    for (int i = 0; i < n; i++) c.off[i + 1] = c.off[i] + W[i]->rows;
    int64_t grain = c.off[n] / (tp_threads(tp) * 8);
    if (grain < 4) grain = 4;
    if (grain > 64) grain = 64;
    tp_for(tp, c.off[n], grain, mv_multi_rows, &c);
}

void matmul(threadpool *tp, const wmat *W, const float *x, int T, float *y, q8_block *xq) {
    if (quant_uses_q8(W->type)) quantize_rows(tp, x, T, W->cols, xq);
    matmul_q8(tp, W, x, xq, T, y);
}

void wmat_row(const wmat *W, int64_t r, float *dst) {
    dequant_row(W->type, (const uint8_t *)W->data + (size_t)r * W->row_bytes, dst, W->cols);
}
