/* CPU matrix products y[T][rows] = x[T][cols] . W^T.
 *
 * Decode (T == 1) is a matrix-vector product: each thread streams its rows once through
 * gemv.c's kernels (the q8 activations rearranged once per call, decode_x).
 *
 * Prefill (T > 1) is a GEMM. With AVX-512 (F, BW, VL, VNNI) the activations are first
 * rearranged into tiles of 12 tokens (k-major floats, or q8 codes in 4-byte groups with block
 * sums), once for all the matrices sharing them (matmul_multi: Q/K/V, gate/up); a work item
 * is a group of 32 (float) or 16 (quantized) weight rows, decoded once into a per-thread
 * panel and multiplied with every token tile in registers, rows along the vector lanes and
 * tokens broadcast (see tile_f / tile_q). Float sums run in chains of 16 columns, so prefill
 * and decode (vec_dot_f's 16-lane sums) differ only in rounding (~1e-7 relative).
 * Without AVX-512 every row is decoded once and dotted with each token. */
#include "matmul.h"
#include "gemv.h"
#include "gguf.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define MM_AVX512 1
#include <immintrin.h>
#endif

typedef struct {
    const wmat *W; const float *x; const q8_block *xq; const gemv_x *xv; int T; float *y;
} mm_ctx;

/* ---- decode and the portable path ---- */
static void mm_rows(void *p, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const mm_ctx *c = p;
    const wmat *W = c->W;
    int64_t n = W->cols, nb = n / 32;
    for (int t = 0; t < c->T; t++)   /* xv: token 0's activations prepared (decode) */
        gemv_rows(W->type, (const uint8_t *)W->data + (size_t)r0 * W->row_bytes, W->row_bytes, r1 - r0, n, c->x + (size_t)t * n,
                  c->xq + (size_t)t * nb, t == 0 ? c->xv : NULL, c->y + (size_t)t * W->rows + r0);
}

/* The calling thread's buffer for prepared activations (the GEMM's tiles and panels, or one
 * token's gemv_x), kept between calls (a fresh allocation of this size is mapped and
 * page-faulted on every call); freed when the thread exits (a pthread key's destructor). */
static _Thread_local uint8_t *gbuf;
static _Thread_local size_t gbuf_size;
static pthread_key_t gbuf_key;
static pthread_once_t gbuf_once = PTHREAD_ONCE_INIT;
static int gbuf_key_ok;
static void gbuf_key_init(void) { gbuf_key_ok = pthread_key_create(&gbuf_key, free) == 0; }
static uint8_t *gemm_buffer(size_t bytes) {
    if (bytes <= gbuf_size) return gbuf;
    pthread_once(&gbuf_once, gbuf_key_init);
    free(gbuf);
    gbuf_size = (bytes + 65535) / 65536 * 65536;
    gbuf = aligned_alloc(64, gbuf_size);
    if (!gbuf) gbuf_size = 0;
    if (gbuf_key_ok) pthread_setspecific(gbuf_key, gbuf);
    return gbuf;
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
/* Register tiles: output rows run along the 16 lanes of a vector, tokens are broadcast.
 * Float: 32 rows (two vectors) x up to 12 tokens of FMA accumulators, the panel transposed
 * to [k][32] floats. Quantized: 16 rows x up to 12 tokens; the panel holds the codes as
 * unsigned bytes (q + 128) in [k/4][16 rows][4] order, so one vpdpbusd with a broadcast
 * 4-byte group of a token's q8 activations adds 4 products to each row's int32 lane; the lane
 * starts at -128 * sum(x) of the block (so it ends at sum(q * x) exactly), and each block
 * (32 elements, or 16 for 16-element scales) then goes into the float accumulator with the
 * row scales (a vector) times the token's activation scale (broadcast). Minimums of the
 * K-quants / Q4_1 / Q5_1: + min(row) * sum(x) per block. */
#define FR 32     /* float: rows per work item */
#define FT 12     /* float: tokens per tile */
#define QR 16     /* quantized: rows per work item */
#define QT 12     /* quantized: tokens per tile */

typedef struct {
    const wmat *const *W; float *const *y; int nm;
    int64_t item0[MM_MULTI + 1];  /* first work item of each matrix */
    int T, ntf, ntq;              /* tokens; float tiles, quantized tiles (FT / QT tokens each) */
    int nth;                      /* threads */
    int64_t n;                    /* cols */
    const float *x; const q8_block *xb;   /* the caller's activations (prep reads them) */
    float *xf;                    /* [ntf][n][FT] each tile's tokens, k-major (0 past T) */
    int32_t *xq;                  /* [ntq][n/4][QT] 4 q8 codes per word */
    int32_t *xn16, *xn32;         /* [ntq][n/16][QT], [ntq][n/32][QT] -128 * sum of the codes */
    float *xd, *xs;               /* [ntq][n/32][QT] block scale, scale * sum */
    uint8_t *scratch; size_t per_thread;
} gemm_ctx;

static int is_float(uint32_t ty) { return ty == GGML_TYPE_F32 || ty == GGML_TYPE_F16 || ty == GGML_TYPE_BF16; }
static int has_min(uint32_t ty) { return ty == GGML_TYPE_Q4_1 || ty == GGML_TYPE_Q5_1 || ty == GGML_TYPE_Q4_K || ty == GGML_TYPE_Q5_K; }

/* Float tile: panel pw [n][32] x C tokens of a float tile xt [n][FT]; y row stride ldy.
 * The FMA chains run over KC columns at a time and are then added to the tile's sums (kept
 * in L1): an output is a sum of n / KC short chains, about as accurate as vec_dot_f's 16-lane
 * sums (one chain over all n columns rounds several times worse, and a V projection that
 * lands on the other side of an fp16 rounding tie moves the logits by 1e-4). */
#define KC 16
static inline __attribute__((always_inline)) void tile_f(const float *pw, const float *xt, int64_t n, const int C,
                                                         float *y, int64_t ldy, __mmask16 m0, __mmask16 m1) {
    __m512 a0[FT], a1[FT];
    float sum[2 * FT * 16] __attribute__((aligned(64)));   /* [C][32] */
    for (int t = 0; t < C; t++) { _mm512_store_ps(sum + 32 * t, _mm512_setzero_ps()); _mm512_store_ps(sum + 32 * t + 16, _mm512_setzero_ps()); }
    for (int64_t k0 = 0; k0 < n; k0 += KC) {
        int64_t ke = k0 + KC < n ? k0 + KC : n;
        for (int t = 0; t < C; t++) a0[t] = a1[t] = _mm512_setzero_ps();
        for (int64_t k = k0; k < ke; k++) {
            __m512 w0 = _mm512_load_ps(pw + 32 * k), w1 = _mm512_load_ps(pw + 32 * k + 16);
            for (int t = 0; t < C; t++) {
                __m512 xv = _mm512_set1_ps(xt[k * FT + t]);
                a0[t] = _mm512_fmadd_ps(w0, xv, a0[t]);
                a1[t] = _mm512_fmadd_ps(w1, xv, a1[t]);
            }
        }
        for (int t = 0; t < C; t++) {
            a0[t] = _mm512_add_ps(_mm512_load_ps(sum + 32 * t), a0[t]);
            a1[t] = _mm512_add_ps(_mm512_load_ps(sum + 32 * t + 16), a1[t]);
            _mm512_store_ps(sum + 32 * t, a0[t]);
            _mm512_store_ps(sum + 32 * t + 16, a1[t]);
        }
    }
    for (int t = 0; t < C; t++) {
        _mm512_mask_storeu_ps(y + t * ldy, m0, _mm512_load_ps(sum + 32 * t));
        _mm512_mask_storeu_ps(y + t * ldy + 16, m1, _mm512_load_ps(sum + 32 * t + 16));
    }
}

/* Quantized tile: panel (u [n/4][16][4], dw [n/S][16], mn [n/32][16]) x C tokens starting at
 * column j of a quantized tile; S = 16 or 32 elements per scale. */
static inline __attribute__((always_inline)) void tile_q(const gemm_ctx *c, const uint8_t *pu, const float *pdw, const float *pm,
                                                         int tile, int j, const int C, const int S, const int mins,
                                                         float *y, int64_t ldy, __mmask16 mk) {
    const int64_t n = c->n, nb = n / 32;
    const int32_t *xq = c->xq + (size_t)tile * (n / 4) * QT + j;
    const int32_t *xn = (S == 16 ? c->xn16 + (size_t)tile * (n / 16) * QT : c->xn32 + (size_t)tile * nb * QT) + j;
    const float *xd = c->xd + (size_t)tile * nb * QT + j, *xs = c->xs + (size_t)tile * nb * QT + j;
    __m512 acc[QT];
    for (int t = 0; t < C; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t s = 0; s < n / S; s++) {
        __m512i ai[QT];
        for (int t = 0; t < C; t++) ai[t] = _mm512_set1_epi32(xn[s * QT + t]);
        for (int g = 0; g < S / 4; g++) {
            int64_t k4 = s * (S / 4) + g;
            __m512i w = _mm512_load_si512(pu + 64 * k4);
            for (int t = 0; t < C; t++) ai[t] = _mm512_dpbusd_epi32(ai[t], w, _mm512_set1_epi32(xq[k4 * QT + t]));
        }
        __m512 dw = _mm512_load_ps(pdw + 16 * s);
        int64_t b = S == 16 ? s / 2 : s;
        for (int t = 0; t < C; t++)
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(ai[t]), dw), _mm512_set1_ps(xd[b * QT + t]), acc[t]);
        if (mins && (S == 32 || (s & 1))) {
            __m512 mv = _mm512_load_ps(pm + 16 * b);
            for (int t = 0; t < C; t++) acc[t] = _mm512_fmadd_ps(mv, _mm512_set1_ps(xs[b * QT + t]), acc[t]);
        }
    }
    for (int t = 0; t < C; t++) _mm512_mask_storeu_ps(y + t * ldy, mk, acc[t]);
}

/* Tokens [0, left) of a tile in register tiles of 12, 8, 4, 2, 1. */
#define TILE_SPLIT(left, j, C) \
    for (int j = 0, C; j < (left); j += C) \
        if ((C = (left) - j >= 12 ? 12 : (left) - j >= 8 ? 8 : (left) - j >= 4 ? 4 : (left) - j >= 2 ? 2 : 1), 1)

/* The weights of the next work items (the ones this thread is likely to take next: with
 * dynamic scheduling, item + 1 .. item + threads) are prefetched into L2 a few lines per token
 * tile; decoding a panel from memory otherwise stalls on DRAM (15% of F32 prefill). */
typedef struct { const char *p, *end; int64_t step; } wprefetch;

static inline void pf_lines(wprefetch *pf) {
    for (int64_t i = 0; i < pf->step && pf->p < pf->end; i++, pf->p += 64) _mm_prefetch(pf->p, _MM_HINT_T1);
}

static void tiles_f(const gemm_ctx *c, const float *pw, float *y, int64_t ldy, int nr, wprefetch *pf) {
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    for (int tile = 0; tile < c->ntf; tile++) {
        int left = c->T - tile * FT < FT ? c->T - tile * FT : FT;
        const float *xt = c->xf + (size_t)tile * c->n * FT;
        pf_lines(pf);
        TILE_SPLIT(left, j, C) {
            float *yt = y + (size_t)(tile * FT + j) * ldy;
            switch (C) {
            case 12: tile_f(pw, xt + j, c->n, 12, yt, ldy, m0, m1); break;
            case 8: tile_f(pw, xt + j, c->n, 8, yt, ldy, m0, m1); break;
            case 4: tile_f(pw, xt + j, c->n, 4, yt, ldy, m0, m1); break;
            case 2: tile_f(pw, xt + j, c->n, 2, yt, ldy, m0, m1); break;
            default: tile_f(pw, xt + j, c->n, 1, yt, ldy, m0, m1); break;
            }
        }
    }
}

#define TQ_CASES(S, M) \
    switch (C) { \
    case 12: tile_q(c, pu, pdw, pm, tile, j, 12, S, M, yt, ldy, mk); break; \
    case 8: tile_q(c, pu, pdw, pm, tile, j, 8, S, M, yt, ldy, mk); break; \
    case 4: tile_q(c, pu, pdw, pm, tile, j, 4, S, M, yt, ldy, mk); break; \
    case 2: tile_q(c, pu, pdw, pm, tile, j, 2, S, M, yt, ldy, mk); break; \
    default: tile_q(c, pu, pdw, pm, tile, j, 1, S, M, yt, ldy, mk); break; \
    }

static void tiles_q(const gemm_ctx *c, uint32_t ty, const uint8_t *pu, const float *pdw, const float *pm, float *y, int64_t ldy, int nr, wprefetch *pf) {
    __mmask16 mk = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    int s16 = ty == GGML_TYPE_Q6_K, mins = has_min(ty);
    for (int tile = 0; tile < c->ntq; tile++) {
        int left = c->T - tile * QT < QT ? c->T - tile * QT : QT;
        pf_lines(pf);
        TILE_SPLIT(left, j, C) {
            float *yt = y + (size_t)(tile * QT + j) * ldy;
            if (s16) TQ_CASES(16, 0)
            else if (mins) TQ_CASES(32, 1)
            else TQ_CASES(32, 0)
        }
    }
}

/* r[c] = column c of the 16 x 16 block r[0..16) (rows). */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) { t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]); t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]); }
    for (int i = 0; i < 4; i++) {     /* u[4i + j], 128-bit lane L: column 4L + j of rows 4i..4i+3 */
        u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        __m512 v = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), w = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88), w2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(v, v2, 0x88); r[8 + j] = _mm512_shuffle_f32x4(v, v2, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(w, w2, 0x88); r[12 + j] = _mm512_shuffle_f32x4(w, w2, 0xDD);
    }
}

/* Float panel pw [n][32]: rows r0..r0+nr of W as floats, transposed 16 x 16 at a time (0 past nr). */
static void panel_f(const wmat *W, int64_t r0, int nr, float *pw) {
    const int64_t n = W->cols;
    const uint8_t *data = W->data;
    int64_t k0 = 0;
    for (; k0 + 16 <= n; k0 += 16)
        for (int h = 0; h < FR / 16; h++) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = h * 16 + i < nr ? gemv_load16_f(W->type, data + (size_t)(r0 + h * 16 + i) * W->row_bytes, k0) : _mm512_setzero_ps();
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_store_ps(pw + 32 * (k0 + c) + 16 * h, r[c]);
        }
    for (int i = 0; i < FR; i++) {
        const uint8_t *src = data + (size_t)(r0 + (i < nr ? i : 0)) * W->row_bytes;
        for (int64_t k = k0; k < n; k++)
            pw[32 * k + i] = i >= nr ? 0 : W->type == GGML_TYPE_F32 ? ((const float *)src)[k]
                           : W->type == GGML_TYPE_F16 ? f16_to_f32(((const uint16_t *)src)[k]) : bf16_to_f32(((const uint16_t *)src)[k]);
    }
}

static void gemm_items(void *p, int64_t i0, int64_t i1, int tid) {
    const gemm_ctx *c = p;
    const int64_t n = c->n;
    uint8_t *scr = c->scratch + (size_t)tid * c->per_thread;
    int m = 0;
    for (int64_t item = i0; item < i1; item++) {
        while (item >= c->item0[m + 1]) m++;
        const wmat *W = c->W[m];
        const uint8_t *data = W->data;
        wprefetch pf = {0};
        {   /* items item+1 .. item+threads: consecutive rows, of this matrix and maybe the next */
            int64_t last = item + c->nth < c->item0[c->nm] ? item + c->nth : c->item0[c->nm] - 1;
            if (last > item) {
                int m2 = m;
                while (last >= c->item0[m2 + 1]) m2++;
                if (m2 == m) {
                    const wmat *V = c->W[m];
                    int64_t rs = is_float(V->type) ? FR : QR, a = (item + 1 - c->item0[m]) * rs, b = (last + 1 - c->item0[m]) * rs;
                    if (b > V->rows) b = V->rows;
                    pf.p = (const char *)V->data + (size_t)a * V->row_bytes;
                    pf.end = (const char *)V->data + (size_t)b * V->row_bytes;
                } else {          /* the start of the next matrix */
                    const wmat *V = c->W[m2];
                    int64_t rs = is_float(V->type) ? FR : QR, b = (last + 1 - c->item0[m2]) * rs;
                    if (b > V->rows) b = V->rows;
                    pf.p = V->data;
                    pf.end = (const char *)V->data + (size_t)b * V->row_bytes;
                }
                int ntiles = is_float(W->type) ? c->ntf : c->ntq;
                pf.step = ((pf.end - pf.p) / 64 + ntiles) / (ntiles ? ntiles : 1) + 1;
            }
        }
        if (is_float(W->type)) {
            int64_t r0 = (item - c->item0[m]) * FR;
            int nr = W->rows - r0 < FR ? (int)(W->rows - r0) : FR;
            float *pw = (float *)scr;                     /* [n][32] */
            panel_f(W, r0, nr, pw);
            tiles_f(c, pw, c->y[m] + r0, W->rows, nr, &pf);
        } else {
            int64_t r0 = (item - c->item0[m]) * QR;
            int nr = W->rows - r0 < QR ? (int)(W->rows - r0) : QR;
            int S = W->type == GGML_TYPE_Q6_K ? 16 : 32;
            /* panel: u [n/4][16][4], dw [n/S][16], mn [n/32][16]; one row unpacked: q [n], d [n/16], m [n/32] */
            uint8_t *pu = scr;
            float *pdw = (float *)(pu + (size_t)16 * n), *pm = pdw + (size_t)16 * (n / 16);
            int8_t *q = (int8_t *)(pm + (size_t)16 * (n / 32));
            float *d = (float *)(q + n), *mn = d + n / 16;
            for (int i = 0; i < QR; i++) {
                if (i < nr) unpack_row_q(W->type, data + (size_t)(r0 + i) * W->row_bytes, n, q, d, mn);
                else { memset(q, 0, (size_t)n); memset(d, 0, sizeof(float) * (size_t)(n / 16)); memset(mn, 0, sizeof(float) * (size_t)(n / 32)); }
                const uint32_t *q4 = (const uint32_t *)q;
                uint32_t *u4 = (uint32_t *)pu;
                for (int64_t k4 = 0; k4 < n / 4; k4++) u4[16 * k4 + i] = q4[k4] ^ 0x80808080u;
                for (int64_t s = 0; s < n / S; s++) pdw[16 * s + i] = d[s * (S / 16)];
                for (int64_t b = 0; b < n / 32; b++) pm[16 * b + i] = mn[b];
            }
            tiles_q(c, W->type, pu, pdw, pm, c->y[m] + r0, W->rows, nr, &pf);
        }
    }
}

/* Activations into tiles: float tokens k-major, q8 codes as 4-byte words with block sums. */
static void prep_tiles(void *p, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const gemm_ctx *c = p;
    const int64_t n = c->n, nb = n / 32;
    for (int64_t i = i0; i < i1; i++) {
        if (i < c->ntf) {
            float *xt = c->xf + (size_t)i * n * FT;
            int nt = c->T - i * FT < FT ? (int)(c->T - i * FT) : FT;
            const float *x = c->x + (size_t)i * FT * n;
            for (int64_t k = 0; k < n; k++) {
                for (int j = 0; j < nt; j++) xt[k * FT + j] = x[(size_t)j * n + k];
                for (int j = nt; j < FT; j++) xt[k * FT + j] = 0;
            }
            continue;
        }
        int64_t tile = i - c->ntf;
        int32_t *xq = c->xq + (size_t)tile * (n / 4) * QT, *x16 = c->xn16 + (size_t)tile * (n / 16) * QT, *x32 = c->xn32 + (size_t)tile * nb * QT;
        float *xd = c->xd + (size_t)tile * nb * QT, *xs = c->xs + (size_t)tile * nb * QT;
        for (int j = 0; j < QT; j++) {
            int64_t t = tile * QT + j;
            const q8_block *b = c->xb + (size_t)t * nb;
            for (int64_t k = 0; k < nb; k++) {
                int s0 = 0, s1 = 0;
                if (t < c->T) {
                    for (int e = 0; e < 16; e++) { s0 += b[k].q[e]; s1 += b[k].q[16 + e]; }
                    for (int g = 0; g < 8; g++) memcpy(&xq[(8 * k + g) * QT + j], b[k].q + 4 * g, 4);
                    xd[k * QT + j] = b[k].d; xs[k * QT + j] = b[k].s;
                } else {
                    for (int g = 0; g < 8; g++) xq[(8 * k + g) * QT + j] = 0;
                    xd[k * QT + j] = 0; xs[k * QT + j] = 0;
                }
                x16[(2 * k) * QT + j] = -128 * s0; x16[(2 * k + 1) * QT + j] = -128 * s1;
                x32[k * QT + j] = -128 * (s0 + s1);
            }
        }
    }
}

/* Returns 0 when done, -1 when a type has no tiled kernel or memory ran out. */
static int gemm_avx512(threadpool *tp, const wmat *const *W, float *const *y, int nm, const float *x, const q8_block *xq, int T) {
    gemm_ctx c = {.W = W, .y = y, .nm = nm, .T = T, .n = W[0]->cols, .x = x, .xb = xq};
    const int64_t n = c.n;
    int anyf = 0, anyq = 0;
    for (int m = 0; m < nm; m++) {
        uint32_t ty = W[m]->type;
        if (W[m]->cols != n) return -1;
        if (is_float(ty)) anyf = 1;
        else if (quant_supported(ty)) anyq = 1;
        else return -1;
        c.item0[m + 1] = c.item0[m] + (W[m]->rows + (is_float(ty) ? FR : QR) - 1) / (is_float(ty) ? FR : QR);
    }
    if (anyq && n % 32) return -1;
    int nth = tp_threads(tp);
    c.nth = nth;
    c.ntf = anyf ? (T + FT - 1) / FT : 0;
    c.ntq = anyq ? (T + QT - 1) / QT : 0;
    size_t fbytes = (size_t)c.ntf * n * FT * 4;
    size_t qwords = (size_t)c.ntq * QT * (size_t)(n / 4 + n / 16 + 3 * (n / 32));
    size_t pf = anyf ? (size_t)FR * n * 4 : 0;
    size_t pq = anyq ? (size_t)16 * n + 4 * (size_t)16 * (n / 16 + n / 32) + (size_t)n + 4 * (size_t)(n / 16 + n / 32) : 0;
    c.per_thread = ((pf > pq ? pf : pq) + 63) / 64 * 64;
    size_t prep = (fbytes + 4 * qwords + 63) / 64 * 64;
    uint8_t *buf = gemm_buffer(prep + (size_t)nth * c.per_thread);
    if (!buf) return -1;
    c.xf = (float *)buf;
    c.xq = (int32_t *)(buf + fbytes);
    c.xn16 = c.xq + (size_t)c.ntq * QT * (n / 4);
    c.xn32 = c.xn16 + (size_t)c.ntq * QT * (n / 16);
    c.xd = (float *)(c.xn32 + (size_t)c.ntq * QT * (n / 32));
    c.xs = c.xd + (size_t)c.ntq * QT * (n / 32);
    c.scratch = buf + prep;
    tp_for(tp, c.ntf + c.ntq, 1, prep_tiles, &c);
    tp_for(tp, c.item0[nm], 1, gemm_items, &c);
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

/* One token's q8 activations rearranged for gemv_rows when a matrix is quantized and the
 * build has the kernels; else NULL. */
static const gemv_x *decode_x(const wmat *const *W, int nm, const q8_block *xq, gemv_x *xv) {
    int q = 0;
    for (int i = 0; i < nm; i++) q |= quant_uses_q8(W[i]->type);
    size_t bytes = gemv_x_bytes(W[0]->cols);
    uint8_t *buf = q && bytes ? gemm_buffer(bytes) : NULL;
    if (!buf) return NULL;
    gemv_x_prep(xq, W[0]->cols, buf, xv);
    return xv;
}

/* Decode, or prefill without the tiled kernels: each row decoded once. */
static void matmul_rows(threadpool *tp, const wmat *W, const float *x, const q8_block *xq, int T, float *y) {
    gemv_x xv;
    mm_ctx c = {W, x, xq, T == 1 ? decode_x(&W, 1, xq, &xv) : NULL, T, y};
    int64_t grain = W->rows / (tp_threads(tp) * 8);
    if (grain < 4) grain = 4;
    if (grain > 64) grain = 64;
    if (T == 1) tp_for_blocked(tp_or_serial(tp, (double)W->rows * W->row_bytes), W->rows, grain, mm_rows, &c);
    else tp_for(tp, W->rows, grain, mm_rows_unpacked, &c);
}

void matmul_multi(threadpool *tp, const wmat *const *W, float *const *y, int n, const float *x, const q8_block *xq, int T) {
    if (T == 1) { matvec_multi(tp, W, y, n, x, xq); return; }
#if MM_AVX512
    if (gemm_avx512(tp, W, y, n, x, xq, T) == 0) return;
#endif
    for (int i = 0; i < n; i++) matmul_rows(tp, W[i], x, xq, T, y[i]);
}

void matmul_q8(threadpool *tp, const wmat *W, const float *x, const q8_block *xq, int T, float *y) {
    if (T == 1) { matmul_rows(tp, W, x, xq, T, y); return; }
    matmul_multi(tp, &W, &y, 1, x, xq, T);
}

typedef struct {
    const wmat *const *W; float *const *y; int n; const float *x; const q8_block *xq; const gemv_x *xv; int64_t off[9];
} mv_multi_ctx;

static void mv_multi_rows(void *p, int64_t g0, int64_t g1, int tid) {
    (void)tid;
    const mv_multi_ctx *c = p;
    for (int m = 0; m < c->n && g0 < g1; m++) {     /* the part of [g0, g1) in matrix m */
        if (g0 >= c->off[m + 1]) continue;
        const wmat *W = c->W[m];
        int64_t r0 = g0 - c->off[m], r1 = (g1 < c->off[m + 1] ? g1 : c->off[m + 1]) - c->off[m];
        gemv_rows(W->type, (const uint8_t *)W->data + (size_t)r0 * W->row_bytes, W->row_bytes, r1 - r0, W->cols, c->x, c->xq, c->xv, c->y[m] + r0);
        g0 = c->off[m + 1];
    }
}

void matvec_multi(threadpool *tp, const wmat *const *W, float *const *y, int n, const float *x, const q8_block *xq) {
    gemv_x xv;
    mv_multi_ctx c = {W, y, n, x, xq, decode_x(W, n, xq, &xv), {0}};
    double bytes = 0;
    for (int i = 0; i < n; i++) c.off[i + 1] = c.off[i] + W[i]->rows, bytes += (double)W[i]->rows * W[i]->row_bytes;
    int64_t grain = c.off[n] / (tp_threads(tp) * 8);
    if (grain < 4) grain = 4;
    if (grain > 64) grain = 64;
    tp_for_blocked(tp_or_serial(tp, bytes), c.off[n], grain, mv_multi_rows, &c);
}

void matmul(threadpool *tp, const wmat *W, const float *x, int T, float *y, q8_block *xq) {
    if (quant_uses_q8(W->type)) quantize_rows(tp, x, T, W->cols, xq);
    matmul_q8(tp, W, x, xq, T, y);
}

void wmat_row(const wmat *W, int64_t r, float *dst) {
    dequant_row(W->type, (const uint8_t *)W->data + (size_t)r * W->row_bytes, dst, W->cols);
}
