/* Decode (one token) matrix-vector kernels: runs of consecutive weight rows dotted with one
 * token's activations, several rows at a time. With AVX-512 the rows of F32 / F16 / BF16,
 * Q8_0, Q5_0 and Q4_K go through 512-bit kernels (the q8 activations first rearranged once
 * per token into gemv_x); every other type and build uses quant.c's one-row dot products. */
#ifndef CR_GEMV_H
#define CR_GEMV_H
#include "gguf.h"
#include "quant.h"

/* One token's q8 activations (n elements) rearranged for the quantized kernels. */
typedef struct {
    const int8_t *q;      /* [n] codes, block after block */
    const int8_t *qk;     /* [n] per 128: codes 0-31, 64-95, 32-63, 96-127 (the K-quants' nibble order) */
    const float *d8;      /* [n/32][8] each block's scale 8 times */
    const float *ds;      /* [n/256][16] the 8 block scales of 256 elements, then their d * sum */
    const int32_t *n16;   /* [n/4] -16 * sum of each 4 codes */
    /* Q5_0's order: per pair of blocks, byte 8k + 4b + j holds code k + 8j of block b, so the
     * 4-byte lane 2k + b of a block pair has the codes whose high bits are bit k of qh bytes 0-3 */
    const int8_t *q5;     /* [n] (rounded up to whole pairs) codes in that order */
    const float *d85;     /* [n/4] lane 2k + b: block b's scale */
    const int32_t *n165;  /* [n/4] lane 2k + b: -16 * sum of its 4 codes */
} gemv_x;

/* Bytes gemv_x_prep needs (64-byte aligned buffer); 0 when the build has no kernel using it. */
size_t gemv_x_bytes(int64_t n);
void gemv_x_prep(const q8_block *x, int64_t n, void *buf, gemv_x *v);
/* y[i] = row i . x for the nr rows at w (row_bytes apart) of n elements; float types read x,
 * quantized ones xq (and xv when the build prepared it, else NULL). Each row's result is the
 * one vec_dot_f gives for F32 / F16 / BF16 and vec_dot_q for Q8_0 (bit for bit); Q5_0 and
 * Q4_K sum each block's integer dot exactly. */
void gemv_rows(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t nr, int64_t n,
               const float *x, const q8_block *xq, const gemv_x *xv, float *y);

#if defined(__AVX512F__)
#include <immintrin.h>
/* 16 elements of an F32 / F16 / BF16 row from column k, as floats. F32 as two 32-byte loads:
 * GGUF aligns tensors to 32 bytes, and a 64-byte load across two cache lines costs more than
 * the insert (F32 decode 50 instead of 59 tokens/s with single loads). */
static inline __m512 gemv_load16_f(uint32_t ty, const uint8_t *row, int64_t k) {
    if (ty == GGML_TYPE_F32) {
        const float *f = (const float *)row + k;
        return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(f))),
                                                   _mm256_castps_pd(_mm256_loadu_ps(f + 8)), 1));
    }
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + k));
    if (ty == GGML_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif
#endif
