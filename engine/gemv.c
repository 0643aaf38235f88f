/* Decode matrix-vector kernels (see gemv.h).
 *
 * Rows are read in order, one stream per thread, with a software prefetch 4 KB ahead. Float
 * rows one at a time (two or four rows in flight, i.e. interleaved streams, made F16 decode
 * up to 40% slower here), in a 16-lane FMA chain summed in vec_dot_f's order: lane l holds
 * columns l mod 16, the lanes then reduced as vec_dot_f reduces its two 8-lane accumulators.
 *
 * Quantized rows, 2 at a time: a 512-bit vector holds two 32-element blocks (Q8_0, Q5_0) or two
 * sub-blocks of a Q4_K super-block; one 64-byte load brings a block pair in, byte permutes
 * (vpermb) put the codes, the high bits and the fp16 scales in place (Q5_0's high bits through
 * a GF(2) affine op, in gemv_x.q5's element order), and vpdpbusd adds
 * 4 products per int32 lane. Signed codes go in as unsigned (w + 128 for Q8_0, the 5-bit
 * code for Q5_0) with the accumulator started at -128 (-16) times the activations' sum of
 * those 4 bytes (gemv_x.n16), so each block's integer dot is exact. Q8_0 keeps vec_dot_q's
 * arithmetic (even blocks in lanes 0-7, odd in 8-15, the same reduction); Q5_0 and Q4_K sum
 * sum(q * x) per block exactly, where vec_dot_q subtracts the offset / min through the block
 * sums in float. */
#include "gemv.h"
#include "gguf.h"
#include <string.h>
#if defined(__AVX512F__)
#define GV_F 1
#include <immintrin.h>
#endif
#if GV_F && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
#define GV_Q 1
#if defined(__GFNI__)
#define GV_Q5 1   /* Q5_0's high bits through GF(2) affine ops (else the mask-register kernel) */
#endif
#endif

#if GV_Q
size_t gemv_x_bytes(int64_t n) {
    /* q, qk, q5 [n]; d8, d85 [n/4 floats]; n16, n165 [n/4 ints]; ds [n/256 * 16 floats]; 64
     * bytes of padding after each (a kernel's last block pair may read past n) */
    return (size_t)(n + 64) * 7 + (size_t)(n / 256 * 64 + 64);
}

void gemv_x_prep(const q8_block *x, int64_t n, void *buf, gemv_x *v) {
    const int64_t nb = n / 32;
    int8_t *q = buf, *qk = q + n + 64, *q5 = qk + n + 64;
    float *d8 = (float *)(q5 + n + 64), *d85 = d8 + n / 4 + 16;
    int32_t *n16 = (int32_t *)(d85 + n / 4 + 16), *n165 = n16 + n / 4 + 16;
    float *ds = (float *)(n165 + n / 4 + 16);
    for (int64_t b = 0; b < nb; b++) {
        memcpy(q + 32 * b, x[b].q, 32);
        for (int i = 0; i < 8; i++) {
            d8[8 * b + i] = x[b].d;
            n16[8 * b + i] = -16 * (x[b].q[4 * i] + x[b].q[4 * i + 1] + x[b].q[4 * i + 2] + x[b].q[4 * i + 3]);
        }
    }
    memset(q + n, 0, 64); memset(d8 + n / 4, 0, 64); memset(n16 + n / 4, 0, 64);
#if GV_Q5
    /* q5, d85, n165 per block pair from q and d8 (zero past n: a lone last block's other half
     * is zero; the kernels read no further); q5 byte 8k + 4b + j = code 32b + k + 8j */
    uint8_t i5[64];
    for (int k = 0; k < 8; k++)
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 4; j++) i5[8 * k + 4 * b + j] = (uint8_t)(32 * b + k + 8 * j);
    const __m512i idx5 = _mm512_loadu_si512(i5), ones = _mm512_set1_epi8(1);
    const __m512i idxd = _mm512_set_epi32(8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0);
    for (int64_t p = 0; p < (nb + 1) / 2; p++) {
        const __m512i c = _mm512_permutexvar_epi8(idx5, _mm512_loadu_si512(q + 64 * p));
        _mm512_storeu_si512(q5 + 64 * p, c);
        _mm512_storeu_si512(n165 + 16 * p, _mm512_sub_epi32(_mm512_setzero_si512(),
                                                             _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, c), 4)));
        _mm512_storeu_ps(d85 + 16 * p, _mm512_permutexvar_ps(idxd, _mm512_loadu_ps(d8 + 16 * p)));
    }
#else
    q5 = NULL; d85 = NULL; n165 = NULL;   /* the mask-register Q5_0 kernel reads q, d8, n16 */
#endif
    for (int64_t c = 0; c + 128 <= n; c += 128) {
        static const int from[4] = {0, 64, 32, 96};
        for (int k = 0; k < 4; k++) memcpy(qk + c + 32 * k, q + c + from[k], 32);
    }
    for (int64_t sb = 0; sb < n / 256; sb++)
        for (int j = 0; j < 8; j++) { ds[16 * sb + j] = x[8 * sb + j].d; ds[16 * sb + 8 + j] = x[8 * sb + j].s; }
    *v = (gemv_x){.q = q, .qk = qk, .d8 = d8, .ds = ds, .n16 = n16, .q5 = q5, .d85 = d85, .n165 = n165};
}
#else
size_t gemv_x_bytes(int64_t n) { (void)n; return 0; }
void gemv_x_prep(const q8_block *x, int64_t n, void *buf, gemv_x *v) { (void)x; (void)n; (void)buf; memset(v, 0, sizeof *v); }
#endif

#if GV_F
/* vec_dot_f's reduction of its two 8-lane sums (lanes 0-7 and 8-15 here). */
static inline float hsum16(__m512 a) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) float elem_f(uint32_t ty, const uint8_t *row, int64_t k) {
    uint16_t h;
    if (ty == GGML_TYPE_F32) { float f; memcpy(&f, row + 4 * k, 4); return f; }
    memcpy(&h, row + 2 * k, 2);
    return ty == GGML_TYPE_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

/* One row of a float type . x. */
static inline __attribute__((always_inline)) float row_f(const uint32_t ty, const uint8_t *w, int64_t n, const float *x) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(gemv_load16_f(ty, w, i), _mm512_loadu_ps(x + i), acc);
    float s = hsum16(acc);
    for (; i < n; i++) s += elem_f(ty, w, i) * x[i];
    return s;
}

/* Software prefetch of the bytes [p + PF_DIST, p + PF_DIST + len): a thread's rows are one
 * stream, and the hardware prefetcher alone leaves decode 10-20% slower (Q8_0 2x slower on the
 * Zen 5 VM). One core here streams ~30 GB/s only with ~4 KB in flight: 2 KB ahead left Q8_0
 * decode ~14% slower. gemv_rows also prefetches the first PF_DIST bytes of each run of rows
 * (a thread's share of a matrix), which nothing prefetched before. */
#define PF_DIST 4096
static inline void pf_ahead(const uint8_t *p, size_t len) {
    for (size_t o = 0; o < len; o += 64) _mm_prefetch((const char *)p + PF_DIST + o, _MM_HINT_T0);
}

static inline __attribute__((always_inline)) void gemv_f(const uint32_t ty, const uint8_t *w, size_t rb, int64_t nr,
                                                         int64_t n, const float *x, float *y) {
    for (int64_t r = 0; r < nr; r++) { pf_ahead(w + (size_t)r * rb, rb); y[r] = row_f(ty, w + (size_t)r * rb, n, x); }
}
#endif

#if GV_Q
static inline __m512i iota64(void) {
    return _mm512_set_epi64(0x3f3e3d3c3b3a3938, 0x3736353433323130, 0x2f2e2d2c2b2a2928, 0x2726252423222120,
                            0x1f1e1d1c1b1a1918, 0x1716151413121110, 0x0f0e0d0c0b0a0908, 0x0706050403020100);
}
/* byte i + (i >= from ? add : 0) */
static inline __m512i idx_step(__m512i base, __m512i iota, int from, int add) {
    __mmask64 hi = _mm512_cmpge_epu8_mask(iota, _mm512_set1_epi8((char)from));
    return _mm512_mask_add_epi8(base, hi, base, _mm512_set1_epi8((char)add));
}

/* The `need` bytes at p in the low bytes of a vector: one plain 64-byte load where that stays
 * below end (the rows' end), else a masked one. (A masked load that misses the cache is far
 * slower than a plain one here: Q5_0 rows streamed from memory at 5 GB/s instead of 20.) */
static inline __m512i load_upto(const uint8_t *p, int need, const uint8_t *end) {
    if (p + 64 <= end) return _mm512_loadu_si512(p);
    return _mm512_maskz_loadu_epi8(((__mmask64)1 << need) - 1, p);
}

/* ---- Q8_0: 34-byte blocks (fp16 d, 32 int8) ---- */
typedef struct { __m512i q, d; } q8_0_idx;
static inline q8_0_idx q8_0_tables(void) {
    const __m512i io = iota64();
    q8_0_idx t;
    t.q = idx_step(_mm512_add_epi8(io, _mm512_set1_epi8(2)), io, 32, 2);          /* codes: bytes 2..33, 36..67 */
    t.d = idx_step(_mm512_and_si512(io, _mm512_set1_epi8(1)), io, 16, 34);         /* words d0 x 8, d1 x 8 */
    return t;
}

static inline __attribute__((always_inline)) void rows_q8_0(const q8_0_idx *t, const uint8_t *w, size_t rb, const int R,
                                                            int64_t nb, const gemv_x *xv, float *y, const uint8_t *end) {
    __m512 acc[2];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b += 2) {
        const int two = b + 2 <= nb;
        const __m512i x = _mm512_loadu_si512(xv->q + 32 * b);
        const __m512i base = _mm512_slli_epi32(_mm512_loadu_si512(xv->n16 + 8 * b), 3);   /* -128 * sum of 4 */
        const __m512 dx = _mm512_loadu_ps(xv->d8 + 8 * b);
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * rb + 34 * b;
            __m512i a = end ? load_upto(p, two ? 64 : 34, end) : _mm512_loadu_si512(p), e = _mm512_setzero_si512();
            __asm__("" : "+v"(a));   /* one load (see pair_q5_0) */
            if (two) { int32_t v; memcpy(&v, p + 64, 4); e = _mm512_castsi128_si512(_mm_cvtsi32_si128(v)); }
            __m512i q = _mm512_xor_si512(_mm512_permutex2var_epi8(a, t->q, e), flip);
            __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi8(t->d, a))), dx);
            __m512 pf = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, q, x));
            acc[r] = two ? _mm512_fmadd_ps(pf, sc, acc[r]) : _mm512_mask3_fmadd_ps(pf, sc, acc[r], 0x00FF);
        }
    }
    for (int r = 0; r < R; r++) y[r] = hsum16(acc[r]);
}

#if GV_Q5
/* ---- Q5_0: 22-byte blocks (fp16 d, 32 high bits qh, 16 bytes of nibbles) ----
 * In gemv_x.q5's order (byte 8k + 4b + j: element k + 8j of block b of the pair) the high bit
 * of every byte in 64-bit lane k is bit k of its qh byte j, so one GF(2) affine op per vector
 * (a matrix per 64-bit lane) turns the qh bytes into 0 / 16; no mask registers (a mask from
 * the data, vptestmb or kmov, left the kernel at half the speed). */
typedef struct { __m512i q, h, d, hm; } q5_0_idx;
static inline q5_0_idx q5_0_tables(void) {
    uint8_t q[64], h[64], d[64];
    for (int k = 0; k < 8; k++)
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 4; j++) {
                q[8 * k + 4 * b + j] = (uint8_t)(22 * b + 6 + k + 8 * (j & 1));   /* element k + 8j's nibble byte */
                h[8 * k + 4 * b + j] = (uint8_t)(22 * b + 2 + j);                 /* its qh byte */
            }
    memset(d, 0, sizeof d);
    for (int l = 0; l < 16; l++) d[2 * l] = (uint8_t)(22 * (l & 1)), d[2 * l + 1] = (uint8_t)(22 * (l & 1) + 1);  /* word l: block l % 2's d */
    q5_0_idx t;
    t.q = _mm512_loadu_si512(q);
    t.h = _mm512_loadu_si512(h);
    t.d = _mm512_loadu_si512(d);
    /* lane k: output bit 4 = input bit k (gf2p8affineqb: output bit i = parity(byte 7 - i & x)) */
    t.hm = _mm512_set_epi64(0x80ll << 24, 0x40ll << 24, 0x20ll << 24, 0x10ll << 24, 0x08ll << 24, 0x04ll << 24, 0x02ll << 24, 0x01ll << 24);
    return t;
}

/* One block pair (two = 1) or the last, odd block (two = 0) of a Q5_0 row. */
static inline __attribute__((always_inline)) __m512 pair_q5_0(const q5_0_idx *t, const uint8_t *p, const int two, __m512i x,
                                                              __m512i base, __m512 dx, __m512 acc, const uint8_t *end) {
    __m512i a = end ? load_upto(p, two ? 44 : 22, end) : _mm512_loadu_si512(p);
    __asm__("" : "+v"(a));   /* one load: GCC would fold it into the three vpermb, three loads of a line
                                that is often still on its way from memory (decode 5-8% slower) */
    /* bytes 4j, 4j + 1 of each lane keep their low nibble, 4j + 2, 4j + 3 take the high one */
    const __m512i nq = _mm512_srlv_epi16(_mm512_permutexvar_epi8(t->q, a), _mm512_set1_epi32(0x00040000));
    const __m512i hb = _mm512_gf2p8affine_epi64_epi8(_mm512_permutexvar_epi8(t->h, a), t->hm, 0);
    const __m512i u = _mm512_ternarylogic_epi32(nq, hb, _mm512_set1_epi8(15), 0xEC);         /* (nq & 15) | hb */
    const __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi8(t->d, a))), dx);
    const __m512 pf = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, u, x));
    return two ? _mm512_fmadd_ps(pf, sc, acc) : _mm512_mask3_fmadd_ps(pf, sc, acc, 0x5555);
}

static inline __attribute__((always_inline)) void rows_q5_0(const q5_0_idx *t, const uint8_t *w, size_t rb, const int R,
                                                            int64_t nb, const gemv_x *xv, float *y, const uint8_t *end) {
    __m512 acc[2];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i x = _mm512_loadu_si512(xv->q5 + 32 * b);
        const __m512i base = _mm512_loadu_si512(xv->n165 + 8 * b);                      /* -16 * sum of 4 */
        const __m512 dx = _mm512_loadu_ps(xv->d85 + 8 * b);
        for (int r = 0; r < R; r++) acc[r] = pair_q5_0(t, w + (size_t)r * rb + 22 * b, 1, x, base, dx, acc[r], end);
    }
    if (b < nb) {
        const __m512i x = _mm512_loadu_si512(xv->q5 + 32 * b);
        const __m512i base = _mm512_loadu_si512(xv->n165 + 8 * b);
        const __m512 dx = _mm512_loadu_ps(xv->d85 + 8 * b);
        for (int r = 0; r < R; r++) acc[r] = pair_q5_0(t, w + (size_t)r * rb + 22 * b, 0, x, base, dx, acc[r], end);
    }
    for (int r = 0; r < R; r++) y[r] = hsum16(acc[r]);
}
#else   /* no GFNI: the high bits through a mask register (about half the speed in L2 on Zen 5) */
/* ---- Q5_0: 22-byte blocks (fp16 d, 32 high bits, 16 bytes of nibbles) ---- */
typedef struct { __m512i q, h, d, bit; } q5_0_idx;
static inline q5_0_idx q5_0_tables(void) {
    const __m512i io = iota64();
    q5_0_idx t;
    /* nibble bytes 6..21 twice (low nibbles = elements 0-15, high = 16-31), then 28..43 twice */
    t.q = idx_step(_mm512_add_epi8(_mm512_and_si512(io, _mm512_set1_epi8(15)), _mm512_set1_epi8(6)), io, 32, 22);
    /* element i of the pair: its high-bit byte 2 + (i mod 32) / 8 (+22 for the second block), bit i mod 8 */
    __m512i hb = _mm512_and_si512(_mm512_srli_epi16(_mm512_and_si512(io, _mm512_set1_epi8(31)), 3), _mm512_set1_epi8(3));
    t.h = idx_step(_mm512_add_epi8(hb, _mm512_set1_epi8(2)), io, 32, 22);
    t.d = idx_step(_mm512_and_si512(io, _mm512_set1_epi8(1)), io, 16, 22);
    t.bit = _mm512_set1_epi64(0x8040201008040201);
    return t;
}

static inline __attribute__((always_inline)) void rows_q5_0(const q5_0_idx *t, const uint8_t *w, size_t rb, const int R,
                                                            int64_t nb, const gemv_x *xv, float *y, const uint8_t *end) {
    __m512 acc[2];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(15), h16 = _mm512_set1_epi8(16);
    const __m512i sh = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0,      /* words of bytes 16-31 */
                                        0x0004000400040004, 0x0004000400040004, 0, 0);     /* and 48-63: >> 4 */
    for (int64_t b = 0; b < nb; b += 2) {
        const int two = b + 2 <= nb;
        const __m512i x = _mm512_loadu_si512(xv->q + 32 * b);
        const __m512i base = _mm512_loadu_si512(xv->n16 + 8 * b);                       /* -16 * sum of 4 */
        const __m512 dx = _mm512_loadu_ps(xv->d8 + 8 * b);
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * rb + 22 * b;
            __m512i a = end ? load_upto(p, two ? 44 : 22, end) : _mm512_loadu_si512(p);
            __asm__("" : "+v"(a));   /* one load (see pair_q5_0) */
            __m512i nq = _mm512_permutexvar_epi8(t->q, a);
            __m512i u = _mm512_and_si512(_mm512_srlv_epi16(nq, sh), m4);
            __mmask64 hi = _mm512_test_epi8_mask(_mm512_permutexvar_epi8(t->h, a), t->bit);
            u = _mm512_mask_add_epi8(u, hi, u, h16);
            __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi8(t->d, a))), dx);
            __m512 pf = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, u, x));
            acc[r] = two ? _mm512_fmadd_ps(pf, sc, acc[r]) : _mm512_mask3_fmadd_ps(pf, sc, acc[r], 0x00FF);
        }
    }
    for (int r = 0; r < R; r++) y[r] = hsum16(acc[r]);
}
#endif

/* ---- Q4_K: 144-byte super-blocks of 256 (fp16 d, dmin, 12 bytes of 6-bit scales / mins, 128
 * bytes of nibbles: bytes 32j..32j+31 hold elements 64j..64j+31 low, 64j+32..64j+63 high) ---- */
typedef struct { __m256i ia, ib, sh, ma, mb, dd; __m512i s02, s13, s46, s57; } q4_k_idx;
static inline q4_k_idx q4_k_tables(void) {
    q4_k_idx t;
    /* 16-bit lane k: scale k (k < 8) or min k - 8 of the super-block from the bytes of w[0..16):
     * ((A >> sh) & ma) | ((B >> 2) & mb), A = byte ia[k], B = byte ib[k] (ggml's get_scale_min_k4) */
    t.ia = _mm256_set_epi16(15, 14, 13, 12, 11, 10, 9, 8, 15, 14, 13, 12, 7, 6, 5, 4);
    t.ib = _mm256_set_epi16(11, 10, 9, 8, 0, 0, 0, 0, 7, 6, 5, 4, 0, 0, 0, 0);
    t.sh = _mm256_set_epi16(4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    t.ma = _mm256_set_epi16(15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63);
    t.mb = _mm256_set_epi16(0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0);
    t.dd = _mm256_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);   /* words d x 8, dmin x 8 */
    t.s02 = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    t.s13 = _mm512_add_epi32(t.s02, _mm512_set1_epi32(1));
    t.s46 = _mm512_add_epi32(t.s02, _mm512_set1_epi32(4));
    t.s57 = _mm512_add_epi32(t.s02, _mm512_set1_epi32(5));
    return t;
}

static inline __attribute__((always_inline)) void rows_q4_k(const q4_k_idx *t, const uint8_t *w, size_t rb, const int R,
                                                            int64_t nsb, const gemv_x *xv, float *y, const uint8_t *end) {
    (void)end;                      /* whole super-blocks: no read past a row */
    __m512 acc[2][2], mac[2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = mac[r] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int64_t sb = 0; sb < nsb; sb++) {
        const int8_t *x = xv->qk + 256 * sb;
        const __m512 xds = _mm512_loadu_ps(xv->ds + 16 * sb);     /* block scales, then scale * sum */
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * rb + 144 * sb;
            __m128i h = _mm_loadu_si128((const __m128i *)p);
            __asm__("" : "+v"(h));   /* each load once (see pair_q5_0): GCC folds them into two uses each */
            __m256i hw = _mm256_cvtepu8_epi16(h);
            __m256i a = _mm256_and_si256(_mm256_srlv_epi16(_mm256_permutexvar_epi16(t->ia, hw), t->sh), t->ma);
            __m256i bb = _mm256_and_si256(_mm256_srli_epi16(_mm256_permutexvar_epi16(t->ib, hw), 2), t->mb);
            __m512 sm = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_or_si256(a, bb)));
            __m512 dd = _mm512_cvtph_ps(_mm256_permutexvar_epi16(t->dd, _mm256_castsi128_si256(h)));
            __m512 f = _mm512_mul_ps(_mm512_mul_ps(sm, dd), xds);   /* d s_j xd_j (lanes 0-7), dmin m_j xs_j (8-15) */
            mac[r] = _mm512_mask_add_ps(mac[r], 0xFF00, mac[r], f);
            __m512i q0 = _mm512_loadu_si512(p + 16), q1 = _mm512_loadu_si512(p + 80);
            __asm__("" : "+v"(q0), "+v"(q1));
            __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(q0, m4), _mm512_loadu_si512(x));
            __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), _mm512_loadu_si512(x + 64));
            __m512i p2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(q1, m4), _mm512_loadu_si512(x + 128));
            __m512i p3 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), _mm512_loadu_si512(x + 192));
            acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), _mm512_permutexvar_ps(t->s02, f), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), _mm512_permutexvar_ps(t->s13, f), acc[r][1]);
            acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p2), _mm512_permutexvar_ps(t->s46, f), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p3), _mm512_permutexvar_ps(t->s57, f), acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) y[r] = hsum16(_mm512_add_ps(acc[r][0], acc[r][1])) - hsum16(mac[r]);
}

/* With nocheck (Q8_0, Q5_0), the row pairs followed by at least 64 bytes of the run get end = NULL:
 * every 64-byte load of theirs is a plain one, with no bounds check and branch per block pair;
 * the last rows check (load_upto). */
#define GEMV_PAIRS(fn, tab, rb, nblk, nocheck) do { \
        int64_t r_ = 0; const uint8_t *end_ = w + (size_t)nr * rb; \
        for (; (nocheck) && (r_ + 2) * (int64_t)rb + 64 <= nr * (int64_t)rb; r_ += 2) \
            pf_ahead(w + (size_t)r_ * rb, 2 * rb), fn(&tab, w + (size_t)r_ * rb, rb, 2, nblk, xv, y + r_, NULL); \
        for (; r_ + 2 <= nr; r_ += 2) pf_ahead(w + (size_t)r_ * rb, 2 * rb), fn(&tab, w + (size_t)r_ * rb, rb, 2, nblk, xv, y + r_, end_); \
        for (; r_ < nr; r_++) pf_ahead(w + (size_t)r_ * rb, rb), fn(&tab, w + (size_t)r_ * rb, rb, 1, nblk, xv, y + r_, end_); \
    } while (0)
#endif

void gemv_rows(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t nr, int64_t n,
               const float *x, const q8_block *xq, const gemv_x *xv, float *y) {
    (void)xv;                       /* used by the AVX-512 kernels */
#if GV_F
    for (size_t o = 0, e = (size_t)nr * row_bytes; o < e && o < PF_DIST; o += 64) _mm_prefetch((const char *)w + o, _MM_HINT_T0);
    switch (type) {
    case GGML_TYPE_F32: gemv_f(GGML_TYPE_F32, w, row_bytes, nr, n, x, y); return;
    case GGML_TYPE_F16: gemv_f(GGML_TYPE_F16, w, row_bytes, nr, n, x, y); return;
    case GGML_TYPE_BF16: gemv_f(GGML_TYPE_BF16, w, row_bytes, nr, n, x, y); return;
    default: break;
    }
#endif
#if GV_Q
    if (xv && xv->q) {
        switch (type) {
        case GGML_TYPE_Q8_0: { q8_0_idx t = q8_0_tables(); GEMV_PAIRS(rows_q8_0, t, row_bytes, n / 32, 1); return; }
        case GGML_TYPE_Q5_0: { q5_0_idx t = q5_0_tables(); GEMV_PAIRS(rows_q5_0, t, row_bytes, n / 32, 1); return; }
        case GGML_TYPE_Q4_K: { q4_k_idx t = q4_k_tables(); GEMV_PAIRS(rows_q4_k, t, row_bytes, n / 256, 0); return; }
        default: break;
        }
    }
#endif
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        y[r] = quant_uses_q8(type) ? vec_dot_q(type, row, xq, n) : vec_dot_f(type, row, x, n);
    }
}
