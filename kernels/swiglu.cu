/* SwiGLU: h = silu(gate) * up, from the fused [L][2*ffn] gate|up buffer. */
#include "common.cuh"


__global__ void swiglu_k(const float *gu, int L, int ffn, float *h, uint16_t *h16) {
    crk_pdl_sync();
    const size_t n = (size_t)L * ffn;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / ffn, c = i % ffn;
        float v = crk_silu_mul(gu[t * 2 * ffn + c], gu[t * 2 * ffn + ffn + c]);
        if (h) h[i] = v;
        if (h16) h16[i] = crk_f2bf(v);
    }
}

/* chunks (L > 1, ffn % 4 == 0): a row per blockIdx.y, 4 columns per thread with 16-byte
 * loads, no 64-bit division per element; the same crk_silu_mul per element (bit-identical) */
__global__ void swiglu4_k(const float *gu, int ffn, float *h, uint16_t *h16) {
    const int t = blockIdx.y, c = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= ffn) return;
    const float4 g = *(const float4 *)(gu + (size_t)t * 2 * ffn + c), u = *(const float4 *)(gu + (size_t)t * 2 * ffn + ffn + c);
    const float v0 = crk_silu_mul(g.x, u.x), v1 = crk_silu_mul(g.y, u.y), v2 = crk_silu_mul(g.z, u.z), v3 = crk_silu_mul(g.w, u.w);
    const size_t i = (size_t)t * ffn + c;
    if (h) *(float4 *)(h + i) = make_float4(v0, v1, v2, v3);
    if (h16)
        *(uint2 *)(h16 + i) = make_uint2((uint32_t)crk_f2bf(v0) | ((uint32_t)crk_f2bf(v1) << 16),
                                         (uint32_t)crk_f2bf(v2) | ((uint32_t)crk_f2bf(v3) << 16));
}

/* with q8 output: one warp per block of 32 (ffn % 32 == 0) */
__global__ void swiglu_q8_k(const float *gu, int L, int ffn, float *h, uint16_t *h16, crk_q8 *hq) {
    crk_pdl_sync();
    const int lane = threadIdx.x & 31, nb = ffn / 32;
    const size_t nblk = (size_t)L * nb;
    for (size_t b = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5; b < nblk; b += ((size_t)gridDim.x * blockDim.x) >> 5) {
        const size_t t = b / nb, c = (b % nb) * 32 + lane, i = t * ffn + c;
        float v = crk_silu_mul(gu[t * 2 * ffn + c], gu[t * 2 * ffn + ffn + c]);
        if (h) h[i] = v;
        if (h16) h16[i] = crk_f2bf(v);
        crk_quantize_block(v, lane, hq + b);
    }
}

extern "C" void crk_swiglu(const float *gu, int L, int ffn, float *h, uint16_t *h16, crk_q8 *hq, crk_stream s) {
    size_t n = (size_t)L * ffn;
    if (!n) return;
    unsigned g = crk_cdiv(n, 256);
    if (g > 65535u * 4) g = 65535u * 4;
    static int v4 = -1;   /* benchmarks: CRK_SWIGLU4=0 keeps the one-float kernel for chunks too */
    if (v4 < 0) v4 = !getenv("CRK_SWIGLU4") || atoi(getenv("CRK_SWIGLU4"));
    if (hq) crk_launch(L == 1, swiglu_q8_k, g, 256, 0, s, gu, L, ffn, h, h16, hq);
    else if (v4 && L > 1 && ffn % 4 == 0 && L <= 65535) swiglu4_k<<<dim3(crk_cdiv(ffn / 4, 256), L), 256, 0, s>>>(gu, ffn, h, h16);
    else crk_launch(L == 1, swiglu_k, g, 256, 0, s, gu, L, ffn, h, h16);
}
