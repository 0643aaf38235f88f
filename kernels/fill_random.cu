/* Random weights for benchmarks: valid blocks of any supported type (scales set to give
 * values of about +-scale), and random f16/bf16/f32 arrays. Counter-based hash, so the
 * result depends only on (seed, index). */
#include "common.cuh"

__device__ __forceinline__ uint32_t crk_hash(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return (uint32_t)x;
}
__device__ __forceinline__ float crk_unif(uint64_t seed, uint64_t i) {   /* [-1, 1) */
    return (float)(crk_hash(seed * 0x9E3779B97F4A7C15ull + i) >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

__global__ void fill_bytes_k(uint8_t *dst, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n / 4; i += (size_t)gridDim.x * blockDim.x)
        ((uint32_t *)dst)[i] = crk_hash(seed + i);
}

/* Overwrite the scale fields of every block with small positive fp16 values. */
__global__ void fix_scales_k(uint8_t *dst, uint32_t type, size_t nblocks, size_t bsize, float scale, uint64_t seed) {
    for (size_t b = blockIdx.x * (size_t)blockDim.x + threadIdx.x; b < nblocks; b += (size_t)gridDim.x * blockDim.x) {
        uint8_t *p = dst + b * bsize;
        float u = 0.5f + 0.5f * fabsf(crk_unif(seed, b));
        uint16_t d, m;
        switch (type) {
        case GGML_TYPE_Q8_0: d = crk_f2h(scale * u / 127.f); memcpy(p, &d, 2); break;
        case GGML_TYPE_Q4_0: d = crk_f2h(scale * u / 8.f); memcpy(p, &d, 2); break;
        case GGML_TYPE_Q5_0: d = crk_f2h(scale * u / 16.f); memcpy(p, &d, 2); break;
        case GGML_TYPE_Q4_1: d = crk_f2h(scale * u / 8.f); m = crk_f2h(-scale * u); memcpy(p, &d, 2); memcpy(p + 2, &m, 2); break;
        case GGML_TYPE_Q5_1: d = crk_f2h(scale * u / 16.f); m = crk_f2h(-scale * u); memcpy(p, &d, 2); memcpy(p + 2, &m, 2); break;
        case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
            d = crk_f2h(scale * u / (type == GGML_TYPE_Q4_K ? 8.f : 16.f) / 32.f);
            m = crk_f2h(scale * u / 32.f);
            memcpy(p, &d, 2); memcpy(p + 2, &m, 2);
            break;
        case GGML_TYPE_Q6_K: d = crk_f2h(scale * u / 32.f / 64.f); memcpy(p + 208, &d, 2); break;
        default: break;
        }
    }
}

__global__ void fill_f16_k(uint16_t *dst, size_t n, uint64_t seed, float scale, int bf16) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = scale * crk_unif(seed, i);
        dst[i] = bf16 ? crk_f2bf(v) : crk_f2h(v);
    }
}
__global__ void fill_f32_k(float *dst, size_t n, uint64_t seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = scale * crk_unif(seed, i);
}

static unsigned gfor(size_t n) { size_t g = (n + 255) / 256; if (g > 65535u * 8) g = 65535u * 8; return g ? (unsigned)g : 1u; }

extern "C" void crk_fill_random(void *dst, uint32_t type, int64_t rows, int64_t cols, size_t row_bytes, uint64_t seed, float scale, crk_stream s) {
    const size_t n = (size_t)rows * cols;
    if (!n) return;
    if (type == GGML_TYPE_F32) { fill_f32_k<<<gfor(n), 256, 0, s>>>((float *)dst, n, seed, scale); return; }
    if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        fill_f16_k<<<gfor(n), 256, 0, s>>>((uint16_t *)dst, n, seed, scale, type == GGML_TYPE_BF16);
        return;
    }
    const size_t bytes = (size_t)rows * row_bytes;
    fill_bytes_k<<<gfor(bytes / 4), 256, 0, s>>>((uint8_t *)dst, bytes, seed);
    size_t bsize, belems;
    switch (type) {
    case GGML_TYPE_Q8_0: bsize = 34; belems = 32; break;
    case GGML_TYPE_Q4_0: bsize = 18; belems = 32; break;
    case GGML_TYPE_Q4_1: bsize = 20; belems = 32; break;
    case GGML_TYPE_Q5_0: bsize = 22; belems = 32; break;
    case GGML_TYPE_Q5_1: bsize = 24; belems = 32; break;
    case GGML_TYPE_Q4_K: bsize = 144; belems = 256; break;
    case GGML_TYPE_Q5_K: bsize = 176; belems = 256; break;
    case GGML_TYPE_Q6_K: bsize = 210; belems = 256; break;
    default: return;
    }
    const size_t nb = n / belems;
    fix_scales_k<<<gfor(nb), 256, 0, s>>>((uint8_t *)dst, type, nb, bsize, scale, seed ^ 0x5bd1e995u);
}

extern "C" void crk_fill_random_f16(uint16_t *dst, size_t n, uint64_t seed, float scale, int bf16, crk_stream s) {
    if (n) fill_f16_k<<<gfor(n), 256, 0, s>>>(dst, n, seed, scale, bf16);
}
extern "C" void crk_fill_random_f32(float *dst, size_t n, uint64_t seed, float scale, crk_stream s) {
    if (n) fill_f32_k<<<gfor(n), 256, 0, s>>>(dst, n, seed, scale);
}
