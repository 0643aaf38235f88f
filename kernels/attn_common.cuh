/* Key addressing shared by the chunk and decode attention kernels.
 * Key index k of KV head h: [0, S) sinks (valid below n_sinks, position k),
 * [S, S+N) cache slots (valid when slot_pos >= 0, position slot_pos),
 * [S+N, S+N+L) chunk keys (position p0 + j, visible to queries m >= j). */
#pragma once
#include "common.cuh"

/* 8 fp16 values (16 bytes) <-> 8 floats */
__device__ __forceinline__ void g_unpack8(const uint4 &u, float *f) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int e = 0; e < 4; e++) { f[2 * e] = crk_h2f((uint16_t)(w[e] & 0xFFFF)); f[2 * e + 1] = crk_h2f((uint16_t)(w[e] >> 16)); }
}
__device__ __forceinline__ uint32_t g_pack2(float lo, float hi) {
    return (uint32_t)crk_f2h(lo) | ((uint32_t)crk_f2h(hi) << 16);
}
__device__ __forceinline__ uint4 g_pack8(const float *f) {
    return make_uint4(g_pack2(f[0], f[1]), g_pack2(f[2], f[3]), g_pack2(f[4], f[5]), g_pack2(f[6], f[7]));
}

struct crk_kinfo {
    const uint16_t *k, *v;
    int pos;     /* RoPE position, -1 when the key is not valid */
    int cj;      /* chunk index, -1 for sinks and cache slots */
};

__device__ __forceinline__ crk_kinfo crk_key_info(const crk_attn &a, int kvh, int kidx, int n_sinks, int64_t p0) {
    crk_kinfo o;
    o.k = o.v = nullptr; o.pos = -1; o.cj = -1;
    if (kidx < a.S) {
        if (kidx < n_sinks) {
            size_t off = ((size_t)kvh * a.S + kidx) * a.hd;
            o.k = a.sink_k + off; o.v = a.sink_v + off; o.pos = kidx;
        }
    } else if (kidx < a.S + a.N) {
        int s = kidx - a.S, p = a.slot_pos[s];
        if (p >= 0) {
            size_t off = ((size_t)kvh * a.N + s) * a.hd;
            o.k = a.ck + off; o.v = a.cv + off; o.pos = p;
        }
    } else {
        int j = kidx - a.S - a.N;
        if (j < a.L) {
            size_t off = (size_t)j * a.kv_stride + (size_t)kvh * a.hd;
            o.k = a.kc + off; o.v = a.vc + off; o.pos = (int)(p0 + j); o.cj = j;
        }
    }
    return o;
}

/* Work buffer layout (floats): row statistics [n_head][L][2] (max, 1/sum) from offset 0;
 * decode (L = 1) also keeps its logits [n_head][S+N+1] and split partials after them. */
__host__ __device__ static inline size_t crk_dec_lg_off(int n_head) { return (size_t)n_head * 2; }
__host__ __device__ static inline size_t crk_dec_part_off(int n_head, int S, int N) { return (size_t)n_head * 2 + (size_t)n_head * (S + N + 1); }
#define CRK_DEC_KS 64    /* keys per decode split (256 measured 126 us/layer with the old serial combine; untested with this one) */
/* query heads per decode block: a template parameter of attn_decode.cu (the GQA group size) */

/* Pass 2 of the chunk attention (tensor-core kernels), after a head's last query tile: the
 * quad's partial sums of the thread's two keys (fragment rows g and g + 8) are added up, and
 * the maximum over the group's query heads is kept (first: the group's first head). */
__device__ __forceinline__ void crk_p2_head_done(float x0, float x1, bool first, float &best0, float &best1) {
    x0 += __shfl_xor_sync(0xffffffffu, x0, 1);
    x0 += __shfl_xor_sync(0xffffffffu, x0, 2);
    x1 += __shfl_xor_sync(0xffffffffu, x1, 1);
    x1 += __shfl_xor_sync(0xffffffffu, x1, 2);
    if (first || x0 > best0) best0 = x0;
    if (first || x1 > best1) best1 = x1;
}
/* Pass 2: whether query m sees key (a chunk key j = cj only from query j on) */
__device__ __forceinline__ bool crk_p2_visible(int m, int L, int key, int nk, int cj) { return m < L && key < nk && cj <= m; }

/* Pass 1's epilogue (tensor-core kernels) for a thread's two fragment rows r0 and r1 of query
 * head h: o the m16n8 accumulator blocks ([HD / 8][4], flat), l0 / l1 the quad's partial row
 * sums, m0 / m1 the row maxima (log2 units). out (and out16) = o / sum, work = (max, 1/sum). */
template <int HD>
__device__ __forceinline__ void crk_p1_store(const crk_attn &a, const float *o, float l0, float l1, float m0, float m1, int h, int r0, int r1) {
    const int t = threadIdx.x & 3, L = a.L;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.f ? 1.0f / l0 : 0.f, inv1 = l1 > 0.f ? 1.0f / l1 : 0.f;
#pragma unroll
    for (int j = 0; j < HD / 8; j++) {
        const int col = j * 8 + 2 * t;
        if (r0 < L) {
            const size_t oi = (size_t)r0 * a.out_stride + (size_t)h * HD + col;
            const float v0 = o[4 * j] * inv0, v1 = o[4 * j + 1] * inv0;
            *(float2 *)(a.out + oi) = make_float2(v0, v1);
            if (a.out16) *(uint32_t *)(a.out16 + oi) = (uint32_t)crk_f2bf(v0) | ((uint32_t)crk_f2bf(v1) << 16);
        }
        if (r1 < L) {
            const size_t oi = (size_t)r1 * a.out_stride + (size_t)h * HD + col;
            const float v0 = o[4 * j + 2] * inv1, v1 = o[4 * j + 3] * inv1;
            *(float2 *)(a.out + oi) = make_float2(v0, v1);
            if (a.out16) *(uint32_t *)(a.out16 + oi) = (uint32_t)crk_f2bf(v0) | ((uint32_t)crk_f2bf(v1) << 16);
        }
    }
    if (t == 0) {
        if (r0 < L) { a.work[((size_t)h * L + r0) * 2] = m0; a.work[((size_t)h * L + r0) * 2 + 1] = inv0; }
        if (r1 < L) { a.work[((size_t)h * L + r1) * 2] = m1; a.work[((size_t)h * L + r1) * 2 + 1] = inv1; }
    }
}
