/* RMSNorm of rows: y = x * (1 / sqrtf(mean(x^2) + eps)) * w, the sum of squares in double
 * as in forward_cpu.c, optionally also written as bf16 (GEMM input). */
#include "common.cuh"

__global__ void rmsnorm_k(const float *x, const float *w, int n, float eps, float *y, uint16_t *y16, crk_q8 *yq) {
    const int t = blockIdx.x;
    const float *xr = x + (size_t)t * n;
    double ss = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += (double)xr[i] * xr[i];
    __shared__ double red[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) red[0] = v;
    }
    __syncthreads();
    const float r = 1.0f / sqrtf((float)(red[0] / n) + eps);
    if (!yq) {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = __fmul_rn(__fmul_rn(xr[i], r), w[i]);
            if (y) y[(size_t)t * n + i] = v;
            if (y16) y16[(size_t)t * n + i] = crk_f2bf(v);
        }
        return;
    }
    /* one warp per block of 32: the value, then quantize_q8 of the block (as quantize_q8.cu) */
    const int lane = threadIdx.x & 31, nb = n / 32;
    for (int b = threadIdx.x >> 5; b < nb; b += blockDim.x >> 5) {
        const int i = 32 * b + lane;
        float v = __fmul_rn(__fmul_rn(xr[i], r), w[i]);
        if (y) y[(size_t)t * n + i] = v;
        if (y16) y16[(size_t)t * n + i] = crk_f2bf(v);
        crk_q8 *q = yq + (size_t)t * nb + b;
        crk_quantize_block(v, lane, q);
    }
}

extern "C" void crk_rmsnorm(const float *x, const float *w, int L, int n, float eps, float *y, uint16_t *y16, crk_q8 *yq, crk_stream s) {
    if (L <= 0) return;
    int threads = n >= 1024 ? 1024 : n >= 256 ? 256 : 64;
    rmsnorm_k<<<L, threads, 0, s>>>(x, w, n, eps, y, y16, yq);
}
