/* RMSNorm of rows: y = x * (1 / sqrtf(mean(x^2) + eps)) * w, the sum of squares in double
 * as in forward_cpu.c, optionally also written as bf16 (GEMM input). */
#include "common.cuh"

__global__ void rmsnorm_k(const float *x, const float *w, int n, float eps, float *y, uint16_t *y16, crk_q8 *yq) {
    crk_pdl_sync();
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

/* One row (decode), n % 128 == 0, n <= 4096: n / 4 threads, each with 4 consecutive values
 * (one load round), the double sum reduced by shuffles; a q8 block of 32 values is 8 threads
 * (same arithmetic as crk_quantize_block, so the same bytes). */
__global__ void rmsnorm1_k(const float *x, const float *w, int n, float eps, float *y, uint16_t *y16, crk_q8 *yq) {
    const int tid = threadIdx.x, lane = tid & 31;
    const float4 wv = ((const float4 *)w)[tid];   /* the weights before the wait (crk_launch) */
    crk_pdl_sync();
    const float4 xv = ((const float4 *)x)[tid];
    double ss = (double)xv.x * xv.x + (double)xv.y * xv.y + (double)xv.z * xv.z + (double)xv.w * xv.w;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    __shared__ double red[32];
    if (lane == 0) red[tid >> 5] = ss;
    __syncthreads();
    double tot = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) tot += red[i];
    const float r = 1.0f / sqrtf((float)(tot / n) + eps);
    float v[4] = {__fmul_rn(__fmul_rn(xv.x, r), wv.x), __fmul_rn(__fmul_rn(xv.y, r), wv.y),
                  __fmul_rn(__fmul_rn(xv.z, r), wv.z), __fmul_rn(__fmul_rn(xv.w, r), wv.w)};
    if (y) ((float4 *)y)[tid] = make_float4(v[0], v[1], v[2], v[3]);
    if (y16) ((uint2 *)y16)[tid] = make_uint2((uint32_t)crk_f2bf(v[0]) | ((uint32_t)crk_f2bf(v[1]) << 16),
                                              (uint32_t)crk_f2bf(v[2]) | ((uint32_t)crk_f2bf(v[3]) << 16));
    if (yq) {
        float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
        for (int o = 4; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int q[4], sum = 0;
#pragma unroll
        for (int e = 0; e < 4; e++) { q[e] = (int)roundf(__fmul_rn(v[e], id)); sum += q[e]; }
#pragma unroll
        for (int o = 4; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        crk_q8 *qb = yq + tid / 8;
        *(uint32_t *)(qb->q + 4 * (tid & 7)) = (uint32_t)(q[0] & 0xFF) | ((uint32_t)(q[1] & 0xFF) << 8) |
                                               ((uint32_t)(q[2] & 0xFF) << 16) | ((uint32_t)(q[3] & 0xFF) << 24);
        if ((tid & 7) == 0) {
            const float dh = __half2float(__float2half_rn(d));
            qb->d = dh;
            qb->s = dh * (float)sum;
        }
    }
}

extern "C" void crk_rmsnorm(const float *x, const float *w, int L, int n, float eps, float *y, uint16_t *y16, crk_q8 *yq, crk_stream s) {
    if (L <= 0) return;
    if (L == 1 && n % 128 == 0 && n <= 4096 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)y & 15) == 0 &&
        ((uintptr_t)y16 & 7) == 0) {
        crk_launch(true, rmsnorm1_k, 1, n / 4, 0, s, x, w, n, eps, y, y16, yq);
        return;
    }
    int threads = n >= 1024 ? 1024 : n >= 256 ? 256 : 64;
    crk_launch(L == 1, rmsnorm_k, L, threads, 0, s, x, w, n, eps, y, y16, yq);
}
