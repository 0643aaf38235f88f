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
