/* Block formats of ggml (layouts byte-exact with ggml-common.h) and the
 * CPU dot-product kernels. Quantized rows are unpacked 32 elements at a time
 * into int8 values with a scale per 16 elements and a min per 32 (the GEMM's panels),
 * and decode multiplies one row with q8 activations through fused per-type kernels
 * (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K; AVX2, with AVX-512 VNNI dot products when built for
 * it), the other types through the unpacked form. */
#include "quant.h"
#include "gguf.h"
#include <math.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#if !defined(__F16C__)
float f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0) u = s;
        else { e = 127 - 15 + 1; while (!(m & 0x400)) { m <<= 1; e--; } m &= 0x3ff; u = s | (e << 23) | (m << 13); }
    } else if (e == 31) u = s | 0x7f800000 | (m << 13);
    else u = s | ((e + 112) << 23) | (m << 13);
    union { uint32_t u; float f; } v = { .u = u }; return v.f;
}
uint16_t f32_to_f16(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    uint32_t x = v.u, s = (x >> 16) & 0x8000; int e = (int)((x >> 23) & 0xff) - 127 + 15; uint32_t m = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(s | 0x7c00 | (m ? 0x200 : 0));
    if (e >= 31) return (uint16_t)(s | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)s;
        m |= 0x800000; uint32_t sh = (uint32_t)(14 - e), r = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(s | r);
    }
    uint32_t r = (uint32_t)(e << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(s | r);
}
#endif

uint16_t f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    if ((v.u & 0x7fffffff) > 0x7f800000) return (uint16_t)((v.u >> 16) | 64);
    return (uint16_t)((v.u + (0x7fff + ((v.u >> 16) & 1))) >> 16);
}

static inline float h2f(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return f16_to_f32(h); }

int quant_supported(uint32_t t) {
    switch (t) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K: return 1;
    default: return 0;
    }
}

/* ---- unpacking: 32 elements -> int8 q[32], scale d[0] for q[0..16), d[1] for q[16..32), min m ----
 * element value = d * q + m. */
typedef struct { int8_t q[32]; float d[2]; float m; } unpacked32;

static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

#if defined(__AVX2__)
static int unpack_fast(uint32_t type, const uint8_t *w, int64_t n, int8_t *q, float *d, float *m);
#endif

/* Unpack a whole row: q[n], d[2*n/32], m[n/32]. */
void unpack_row_q(uint32_t type, const void *wv, int64_t n, int8_t *q, float *d, float *m) {
    const uint8_t *w = wv;
    int64_t nb = n / 32;
#if defined(__AVX2__)
    if (unpack_fast(type, w, n, q, d, m)) return;
#endif
    switch (type) {
    case GGML_TYPE_Q8_0:
        for (int64_t b = 0; b < nb; b++, w += 34) {
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = 0; memcpy(q + 32 * b, w + 2, 32);
        }
        break;
    case GGML_TYPE_Q4_0:
        for (int64_t b = 0; b < nb; b++, w += 18) {
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = 0;
            for (int j = 0; j < 16; j++) { q[32 * b + j] = (int8_t)((w[2 + j] & 15) - 8); q[32 * b + 16 + j] = (int8_t)((w[2 + j] >> 4) - 8); }
        }
        break;
    case GGML_TYPE_Q4_1:
        for (int64_t b = 0; b < nb; b++, w += 20) {
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = h2f(w + 2);
            for (int j = 0; j < 16; j++) { q[32 * b + j] = (int8_t)(w[4 + j] & 15); q[32 * b + 16 + j] = (int8_t)(w[4 + j] >> 4); }
        }
        break;
    case GGML_TYPE_Q5_0:
        for (int64_t b = 0; b < nb; b++, w += 22) {
            uint32_t qh; memcpy(&qh, w + 2, 4);
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = 0;
            for (int j = 0; j < 16; j++) {
                int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
                q[32 * b + j] = (int8_t)(((w[6 + j] & 15) | h0) - 16);
                q[32 * b + 16 + j] = (int8_t)(((w[6 + j] >> 4) | h1) - 16);
            }
        }
        break;
    case GGML_TYPE_Q5_1:
        for (int64_t b = 0; b < nb; b++, w += 24) {
            uint32_t qh; memcpy(&qh, w + 4, 4);
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = h2f(w + 2);
            for (int j = 0; j < 16; j++) {
                int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
                q[32 * b + j] = (int8_t)((w[8 + j] & 15) | h0);
                q[32 * b + 16 + j] = (int8_t)((w[8 + j] >> 4) | h1);
            }
        }
        break;
    case GGML_TYPE_Q4_K:
        for (int64_t sb = 0; sb < nb / 8; sb++, w += 144) {
            float dd = h2f(w), dmin = h2f(w + 2);
            const uint8_t *sc = w + 4, *qs = w + 16;
            for (int j = 0; j < 4; j++) {          /* 64 elements: low nibbles then high nibbles */
                uint8_t s0, m0, s1, m1;
                scale_min_k4(2 * j, sc, &s0, &m0); scale_min_k4(2 * j + 1, sc, &s1, &m1);
                int64_t b0 = sb * 8 + 2 * j;
                d[2 * b0] = d[2 * b0 + 1] = dd * s0; m[b0] = -dmin * m0;
                d[2 * b0 + 2] = d[2 * b0 + 3] = dd * s1; m[b0 + 1] = -dmin * m1;
                for (int l = 0; l < 32; l++) { q[32 * b0 + l] = (int8_t)(qs[32 * j + l] & 15); q[32 * b0 + 32 + l] = (int8_t)(qs[32 * j + l] >> 4); }
            }
        }
        break;
    case GGML_TYPE_Q5_K:
        for (int64_t sb = 0; sb < nb / 8; sb++, w += 176) {
            float dd = h2f(w), dmin = h2f(w + 2);
            const uint8_t *sc = w + 4, *qh = w + 16, *qs = w + 48;
            for (int j = 0; j < 4; j++) {
                uint8_t s0, m0, s1, m1, u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
                scale_min_k4(2 * j, sc, &s0, &m0); scale_min_k4(2 * j + 1, sc, &s1, &m1);
                int64_t b0 = sb * 8 + 2 * j;
                d[2 * b0] = d[2 * b0 + 1] = dd * s0; m[b0] = -dmin * m0;
                d[2 * b0 + 2] = d[2 * b0 + 3] = dd * s1; m[b0 + 1] = -dmin * m1;
                for (int l = 0; l < 32; l++) {
                    q[32 * b0 + l] = (int8_t)((qs[32 * j + l] & 15) + ((qh[l] & u1) ? 16 : 0));
                    q[32 * b0 + 32 + l] = (int8_t)((qs[32 * j + l] >> 4) + ((qh[l] & u2) ? 16 : 0));
                }
            }
        }
        break;
    case GGML_TYPE_Q6_K:
        for (int64_t sb = 0; sb < nb / 8; sb++, w += 210) {
            const uint8_t *ql = w, *qh = w + 128; const int8_t *sc = (const int8_t *)(w + 192);
            float dd = h2f(w + 208);
            int8_t *qq = q + 256 * sb; float *ds = d + 16 * sb;
            for (int n = 0; n < 2; n++) {         /* 128 elements each */
                for (int l = 0; l < 32; l++) {
                    qq[l] = (int8_t)(((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32);
                    qq[l + 32] = (int8_t)(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
                    qq[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                    qq[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                }
                /* sub-block k of 32 (k=0..3) uses scales sc[2k], sc[2k+1] for its two halves */
                for (int k = 0; k < 4; k++) { ds[2 * k] = dd * sc[2 * k]; ds[2 * k + 1] = dd * sc[2 * k + 1]; }
                for (int k = 0; k < 4; k++) m[sb * 8 + n * 4 + k] = 0;
                qq += 128; ql += 64; qh += 32; sc += 8; ds += 8;
            }
        }
        break;
    default:
        break;
    }
}

void dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *w = src;
    switch (type) {
    case GGML_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return;
    case GGML_TYPE_F16: for (int64_t i = 0; i < n; i++) dst[i] = h2f(w + 2 * i); return;
    case GGML_TYPE_BF16: for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, w + 2 * i, 2); dst[i] = bf16_to_f32(h); } return;
    default: break;
    }
    int8_t q[256]; float d[16], m[8];
    int64_t bsz = (int64_t)ggml_blck_size(type), bytes = (int64_t)ggml_type_size(type);
    for (int64_t off = 0; off < n; off += bsz, w += bytes) {
        unpack_row_q(type, w, bsz, q, d, m);
        for (int64_t i = 0; i < bsz; i++) dst[off + i] = d[i / 16] * q[i] + m[i / 32];
    }
}

/* Same rounding as ggml's quantize_row_q8_0: d = amax/127 rounded to fp16, q = roundf(x/d). */
static void quantize_q8_scalar(const float *xb, q8_block *y) {
    float amax = 0;
    for (int i = 0; i < 32; i++) { float a = fabsf(xb[i]); if (a > amax) amax = a; }
    float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; i++) {
        float r = roundf(xb[i] * id);
        int v = r == r ? (int)r : 0;         /* NaN activations: no UB, the NaN shows in d */
        y->q[i] = (int8_t)v; sum += v;
    }
    y->d = f16_to_f32(f32_to_f16(d)); y->s = y->d * (float)sum;
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
/* roundf (halves away from zero) on 16 lanes, exactly: trunc, then +-1 where |x - trunc| >= 0.5 */
static inline __m512 round_away16(__m512 x) {
    __m512 t = _mm512_roundscale_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 frac = _mm512_abs_ps(_mm512_sub_ps(x, t));
    __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_add_ps(t, up, t, one);
}
#endif

void quantize_q8(const float *x, q8_block *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
#if defined(__AVX512F__) && defined(__AVX512BW__)
        __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        if ((_mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q)) || !(amax <= 3.4e38f)) {
            quantize_q8_scalar(xb, &y[b]);      /* NaN / infinity: the scalar path's rules */
            continue;
        }
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvttps_epi32(round_away16(_mm512_mul_ps(v0, vid)));
        __m512i q1 = _mm512_cvttps_epi32(round_away16(_mm512_mul_ps(v1, vid)));
        _mm_storeu_si128((__m128i *)y[b].q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(y[b].q + 16), _mm512_cvtepi32_epi8(q1));
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        y[b].d = f16_to_f32(f32_to_f16(d)); y[b].s = y[b].d * (float)sum;
#else
        quantize_q8_scalar(xb, &y[b]);
#endif
    }
}

/* dot of an unpacked row with q8 activations */
float dot_unpacked_q(const int8_t *q, const float *d, const float *m, const q8_block *x, int64_t nb) {
#if defined(__AVX2__)
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    float macc = 0;
    for (int64_t b = 0; b < nb; b++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(q + 32 * b));
        __m256i v = _mm256_loadu_si256((const __m256i *)x[b].q);
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(v, a)), ones);
        __m256 sc = _mm256_set_m128(_mm_set1_ps(d[2 * b + 1] * x[b].d), _mm_set1_ps(d[2 * b] * x[b].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, acc);
        macc += m[b] * x[b].s;
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s) + macc;
#else
    float acc = 0;
    for (int64_t b = 0; b < nb; b++) {
        int lo = 0, hi = 0;
        for (int i = 0; i < 16; i++) lo += q[32 * b + i] * x[b].q[i];
        for (int i = 16; i < 32; i++) hi += q[32 * b + i] * x[b].q[i];
        acc += x[b].d * (d[2 * b] * lo + d[2 * b + 1] * hi) + m[b] * x[b].s;
    }
    return acc;
#endif
}

#if defined(__AVX2__)
/* ---- fused decode kernels: one weight row against q8 activations, block by block ---- */
static inline float hsum8(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
/* 8 int32 lane sums of w * x over 4 consecutive bytes each: w unsigned (0..127), x signed */
static inline __m256i dot_u8(__m256i w, __m256i x) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
#endif
}
/* same with w signed (-128..127), x in -127..127 */
static inline __m256i dot_s8(__m256i w, __m256i x) {
    return dot_u8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}
static inline __m256i nibbles32(const uint8_t *p) {        /* 16 bytes -> low nibbles, then high nibbles */
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(15));
}
static inline __m256i bits32(const uint8_t *p) {           /* 32 bits -> 0xff bytes where set */
    uint32_t v; memcpy(&v, p, 4);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return _mm256_movm_epi8((__mmask32)v);
#else
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i r = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    r = _mm256_or_si256(r, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(r, _mm256_set1_epi8(-1));
#endif
}

/* unpack_row_q for the common types with the same values, 32 codes per vector */
static int unpack_fast(uint32_t type, const uint8_t *w, int64_t n, int8_t *q, float *d, float *m) {
    int64_t nb = n / 32;
    const __m256i m4 = _mm256_set1_epi8(15);
    switch (type) {
    case GGML_TYPE_Q8_0:
        for (int64_t b = 0; b < nb; b++, w += 34) {
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = 0;
            _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_loadu_si256((const __m256i *)(w + 2)));
        }
        return 1;
    case GGML_TYPE_Q4_0:
        for (int64_t b = 0; b < nb; b++, w += 18) {
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = 0;
            _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_sub_epi8(nibbles32(w + 2), _mm256_set1_epi8(8)));
        }
        return 1;
    case GGML_TYPE_Q5_0:
        for (int64_t b = 0; b < nb; b++, w += 22) {
            d[2 * b] = d[2 * b + 1] = h2f(w); m[b] = 0;
            __m256i v = _mm256_or_si256(nibbles32(w + 6), _mm256_and_si256(bits32(w + 2), _mm256_set1_epi8(16)));
            _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_sub_epi8(v, _mm256_set1_epi8(16)));
        }
        return 1;
    case GGML_TYPE_Q4_K:
        for (int64_t sb = 0; sb < nb / 8; sb++, w += 144) {
            float dd = h2f(w), dmin = h2f(w + 2);
            const uint8_t *sc = w + 4, *qs = w + 16;
            for (int j = 0; j < 4; j++) {
                uint8_t s0, m0, s1, m1;
                scale_min_k4(2 * j, sc, &s0, &m0); scale_min_k4(2 * j + 1, sc, &s1, &m1);
                int64_t b0 = sb * 8 + 2 * j;
                d[2 * b0] = d[2 * b0 + 1] = dd * s0; m[b0] = -dmin * m0;
                d[2 * b0 + 2] = d[2 * b0 + 3] = dd * s1; m[b0 + 1] = -dmin * m1;
                __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
                _mm256_storeu_si256((__m256i *)(q + 32 * b0), _mm256_and_si256(v, m4));
                _mm256_storeu_si256((__m256i *)(q + 32 * b0 + 32), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
            }
        }
        return 1;
    case GGML_TYPE_Q6_K: {
        const __m256i m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
        for (int64_t sb = 0; sb < nb / 8; sb++, w += 210) {
            const uint8_t *ql = w, *qh = w + 128; const int8_t *sc = (const int8_t *)(w + 192);
            float dd = h2f(w + 208);
            int8_t *qq = q + 256 * sb; float *ds = d + 16 * sb;
            for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, ds += 8, qq += 128) {
                __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
                __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
                __m256i v[4] = {
                    _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4)),
                    _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4)),
                };
                for (int k = 0; k < 4; k++) {
                    _mm256_storeu_si256((__m256i *)(qq + 32 * k), _mm256_sub_epi8(v[k], off));
                    ds[2 * k] = dd * sc[2 * k]; ds[2 * k + 1] = dd * sc[2 * k + 1];
                    m[sb * 8 + h * 4 + k] = 0;
                }
            }
        }
        return 1;
    }
    default:
        return 0;
    }
}

static float dot_q8_0(const uint8_t *w, const q8_block *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 68) {
        __m256i p0 = dot_s8(_mm256_loadu_si256((const __m256i *)(w + 2)), _mm256_loadu_si256((const __m256i *)x[b].q));
        __m256i p1 = dot_s8(_mm256_loadu_si256((const __m256i *)(w + 36)), _mm256_loadu_si256((const __m256i *)x[b + 1].q));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(w) * x[b].d), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(h2f(w + 34) * x[b + 1].d), a1);
    }
    if (b < nb) {
        __m256i p0 = dot_s8(_mm256_loadu_si256((const __m256i *)(w + 2)), _mm256_loadu_si256((const __m256i *)x[b].q));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(w) * x[b].d), a0);
    }
    return hsum8(_mm256_add_ps(a0, a1));
}

/* Q4_0 / Q5_0: unsigned codes (0..15 / 0..31) in integer dots, the offset (8 / 16) applied
 * through the activations' block sums: d_w * (d_x * sum(u * x) - off * s_x). */
static float dot_q4_0(const uint8_t *w, const q8_block *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    float macc = 0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 36) {
        __m256i p0 = dot_u8(nibbles32(w + 2), _mm256_loadu_si256((const __m256i *)x[b].q));
        __m256i p1 = dot_u8(nibbles32(w + 20), _mm256_loadu_si256((const __m256i *)x[b + 1].q));
        float d0 = h2f(w), d1 = h2f(w + 18);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * x[b].d), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d1 * x[b + 1].d), a1);
        macc += d0 * x[b].s + d1 * x[b + 1].s;
    }
    if (b < nb) {
        __m256i p0 = dot_u8(nibbles32(w + 2), _mm256_loadu_si256((const __m256i *)x[b].q));
        float d0 = h2f(w);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * x[b].d), a0);
        macc += d0 * x[b].s;
    }
    return hsum8(_mm256_add_ps(a0, a1)) - 8 * macc;
}

static float dot_q5_0(const uint8_t *w, const q8_block *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    const __m256i h16 = _mm256_set1_epi8(16);
    float macc = 0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 44) {
        __m256i q0 = _mm256_or_si256(nibbles32(w + 6), _mm256_and_si256(bits32(w + 2), h16));
        __m256i q1 = _mm256_or_si256(nibbles32(w + 28), _mm256_and_si256(bits32(w + 24), h16));
        __m256i p0 = dot_u8(q0, _mm256_loadu_si256((const __m256i *)x[b].q));
        __m256i p1 = dot_u8(q1, _mm256_loadu_si256((const __m256i *)x[b + 1].q));
        float d0 = h2f(w), d1 = h2f(w + 22);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * x[b].d), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d1 * x[b + 1].d), a1);
        macc += d0 * x[b].s + d1 * x[b + 1].s;
    }
    if (b < nb) {
        __m256i q0 = _mm256_or_si256(nibbles32(w + 6), _mm256_and_si256(bits32(w + 2), h16));
        __m256i p0 = dot_u8(q0, _mm256_loadu_si256((const __m256i *)x[b].q));
        float d0 = h2f(w);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * x[b].d), a0);
        macc += d0 * x[b].s;
    }
    return hsum8(_mm256_add_ps(a0, a1)) - 16 * macc;
}

static float dot_q4_k(const uint8_t *w, const q8_block *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15);
    float macc = 0;
    for (int64_t sb = 0; sb < nb / 8; sb++, w += 144, x += 8) {
        float dd = h2f(w), dmin = h2f(w + 2);
        const uint8_t *sc = w + 4, *qs = w + 16;
        for (int j = 0; j < 4; j++) {
            uint8_t s0, m0, s1, m1;
            scale_min_k4(2 * j, sc, &s0, &m0); scale_min_k4(2 * j + 1, sc, &s1, &m1);
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i p0 = dot_u8(_mm256_and_si256(q, m4), _mm256_loadu_si256((const __m256i *)x[2 * j].q));
            __m256i p1 = dot_u8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_loadu_si256((const __m256i *)x[2 * j + 1].q));
            a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(dd * s0 * x[2 * j].d), a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(dd * s1 * x[2 * j + 1].d), a1);
            macc -= dmin * (m0 * x[2 * j].s + m1 * x[2 * j + 1].s);
        }
    }
    return hsum8(_mm256_add_ps(a0, a1)) + macc;
}

static float dot_q6_k(const uint8_t *w, const q8_block *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int64_t sb = 0; sb < nb / 8; sb++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128; const int8_t *sc = (const int8_t *)(w + 192);
        float dd = h2f(w + 208);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, x += 4) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4)),
                _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4)),
            };
            for (int k = 0; k < 4; k++) {
                __m256i p = dot_s8(_mm256_sub_epi8(q[k], off), _mm256_loadu_si256((const __m256i *)x[k].q));
                float dx = dd * x[k].d;
                __m256 scv = _mm256_set_m128(_mm_set1_ps(dx * sc[2 * k + 1]), _mm_set1_ps(dx * sc[2 * k]));
                if (k & 1) a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scv, a1);
                else a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scv, a0);
            }
        }
    }
    return hsum8(_mm256_add_ps(a0, a1));
}
#endif

float vec_dot_q(uint32_t type, const void *w, const q8_block *x, int64_t n) {
#if defined(__AVX2__)
    switch (type) {
    case GGML_TYPE_Q8_0: return dot_q8_0(w, x, n / 32);
    case GGML_TYPE_Q4_0: return dot_q4_0(w, x, n / 32);
    case GGML_TYPE_Q5_0: return dot_q5_0(w, x, n / 32);
    case GGML_TYPE_Q4_K: return dot_q4_k(w, x, n / 32);
    case GGML_TYPE_Q6_K: return dot_q6_k(w, x, n / 32);
    default: break;
    }
#endif
    /* Unpack 256 elements at a time (a K-quant super-block, or 8 small blocks). */
    int8_t q[256]; float d[16], m[8];
    int64_t bytes = (int64_t)ggml_row_size(type, 256);
    const uint8_t *p = w;
    float acc = 0;
    int64_t i = 0;
    for (; i + 256 <= n; i += 256, p += bytes) {
        unpack_row_q(type, p, 256, q, d, m);
        acc += dot_unpacked_q(q, d, m, x + i / 32, 8);
    }
    if (i < n) {                               /* tail of small-block types */
        unpack_row_q(type, p, n - i, q, d, m);
        acc += dot_unpacked_q(q, d, m, x + i / 32, (n - i) / 32);
    }
    return acc;
}

static inline float dot_f32(const float *a, const float *b, int64_t n) {
#if defined(__AVX2__)
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    acc0 = _mm256_add_ps(acc0, acc1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    float r = _mm_cvtss_f32(s);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
#else
    float r = 0;
    for (int64_t i = 0; i < n; i++) r += a[i] * b[i];
    return r;
#endif
}

float vec_dot_f(uint32_t type, const void *w, const float *x, int64_t n) {
    if (type == GGML_TYPE_F32) return dot_f32(w, x, n);
#if defined(__AVX2__) && defined(__F16C__)
    if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        const uint16_t *h = w;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int64_t i = 0;
        if (type == GGML_TYPE_F16) {
            for (; i + 16 <= n; i += 16) {
                acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))), _mm256_loadu_ps(x + i), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i + 8))), _mm256_loadu_ps(x + i + 8), acc1);
            }
        } else {
            for (; i + 16 <= n; i += 16) {
                __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i))), 16));
                __m256 w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i + 8))), 16));
                acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
                acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
            }
        }
        acc0 = _mm256_add_ps(acc0, acc1);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        float r = _mm_cvtss_f32(s);
        for (; i < n; i++) r += (type == GGML_TYPE_F16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i])) * x[i];
        return r;
    }
#endif
    float r = 0;
    const uint16_t *h = w;
    for (int64_t i = 0; i < n; i++) r += (type == GGML_TYPE_F16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i])) * x[i];
    return r;
}
