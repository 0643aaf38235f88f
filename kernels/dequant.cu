/* Weight dequantization to bf16 (GEMM operands) or f32, any supported type. */
#include "common.cuh"

template <int T>
__global__ void dequant_q(const uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes, void *dst, int bf16) {
    const int64_t nb = cols / 32, total = rows * nb;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / nb, b = i % nb;
        crk_blk k;
        crk_unpack<T>(w + r * row_bytes, (int)b, k);
        size_t o = (size_t)r * cols + 32 * (size_t)b;
        if (bf16) {
            uint32_t pk[16];
#pragma unroll
            for (int e = 0; e < 16; e++)
                pk[e] = (uint32_t)crk_f2bf(crk_blk_val(k, 2 * e)) | ((uint32_t)crk_f2bf(crk_blk_val(k, 2 * e + 1)) << 16);
            uint16_t *d16 = (uint16_t *)dst + o;
            if ((((uintptr_t)d16) & 15) == 0) {
                uint4 *d4 = (uint4 *)d16;
#pragma unroll
                for (int e = 0; e < 4; e++) d4[e] = make_uint4(pk[4 * e], pk[4 * e + 1], pk[4 * e + 2], pk[4 * e + 3]);
            } else {
                uint32_t *d2 = (uint32_t *)d16;
#pragma unroll
                for (int e = 0; e < 16; e++) d2[e] = pk[e];
            }
        } else {
            float *df = (float *)dst + o;
#pragma unroll
            for (int e = 0; e < 32; e++) df[e] = crk_blk_val(k, e);
        }
    }
}

__global__ void dequant_f(const uint8_t *w, uint32_t type, int64_t rows, int64_t cols, size_t row_bytes, void *dst, int bf16) {
    const int64_t total = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i % cols;
        float v = crk_fval(type, w + r * row_bytes, c);
        if (bf16) ((uint16_t *)dst)[i] = crk_f2bf(v);
        else ((float *)dst)[i] = v;
    }
}

__global__ void f32_to_bf16_k(const float *x, uint16_t *y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) y[i] = crk_f2bf(x[i]);
}

static unsigned grid_for(int64_t n, int threads) {
    int64_t g = (n + threads - 1) / threads;
    if (g > 65535 * 8) g = 65535 * 8;
    if (g < 1) g = 1;
    return (unsigned)g;
}

template <int T>
static void launch_dequant_q(const uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes, void *dst, int bf16, cudaStream_t s) {
    dequant_q<T><<<grid_for(rows * (cols / 32), 256), 256, 0, s>>>(w, rows, cols, row_bytes, dst, bf16);
}

extern "C" void crk_dequant(const void *w, uint32_t type, int64_t rows, int64_t cols, size_t row_bytes, void *dst, int dst_bf16, crk_stream s) {
    if (rows <= 0 || cols <= 0) return;
    if (type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        dequant_f<<<grid_for(rows * cols, 256), 256, 0, s>>>((const uint8_t *)w, type, rows, cols, row_bytes, dst, dst_bf16);
        return;
    }
    CRK_DISPATCH_QTYPE(type, launch_dequant_q, (const uint8_t *)w, rows, cols, row_bytes, dst, dst_bf16, s)
}

extern "C" void crk_f32_to_bf16(const float *x, uint16_t *y, size_t n, crk_stream s) {
    if (!n) return;
    f32_to_bf16_k<<<grid_for((int64_t)n, 256), 256, 0, s>>>(x, y, n);
}
