/* Tensor element formats: fp16/bf16 conversion, dequantization of every
 * supported ggml block type, and the activation format used by the quantized
 * matrix kernels (Q8 blocks of 32 with a float scale and the block's sum). */
#ifndef CR_QUANT_H
#define CR_QUANT_H
#include <stddef.h>
#include <stdint.h>

#if defined(__F16C__)
#include <immintrin.h>
static inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
#else
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
#endif
static inline float bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 }; return v.f;
}
uint16_t f32_to_bf16(float f);

/* 1 when the engine can compute with tensors of this type. */
int quant_supported(uint32_t type);
/* dst[0..n) = row of n elements of the given type (n multiple of the block size). */
void dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Activation block: 32 int8 values, scale d (x ~ d*q) and s = d * sum(q). */
typedef struct { float d, s; int8_t q[32]; } q8_block;
void quantize_q8(const float *x, q8_block *y, int64_t n);

/* Dot products of one weight row (n elements) with activations.
 * For quantized types x is q8 blocks; for F32/F16/BF16 x is float. */
float vec_dot_q(uint32_t type, const void *w, const q8_block *x, int64_t n);
float vec_dot_f(uint32_t type, const void *w, const float *x, int64_t n);
/* A quantized row decoded for repeated use: q[n] int8, d[n/16] scales, m[n/32] mins,
 * element = d[i/16]*q[i] + m[i/32]; and its dot with q8 activations (nb = n/32 blocks). */
void unpack_row_q(uint32_t type, const void *w, int64_t n, int8_t *q, float *d, float *m);
float dot_unpacked_q(const int8_t *q, const float *d, const float *m, const q8_block *x, int64_t nb);
/* 1 when the type's matmul uses q8 activations. */
static inline int quant_uses_q8(uint32_t type) { return type >= 2 && type != 30; }

#endif
