/* After the q/k/v projections: biases, fp16 rounding of the pre-RoPE keys and values (the
 * cache format), RoPE of the queries at positions p0 + t (same float arithmetic as
 * rope_rotate of engine/attn_cpu.c with the host-computed cos/sin table), and an fp16 copy
 * of the rotated queries for the tensor-core attention. One block per token. */
#include "common.cuh"

__global__ void qkv_post_k(crk_qkv_args a) {
    const int t = blockIdx.x;
    const int qd = a.n_head * a.hd, kvd = a.n_kv * a.hd;
    float *q = a.qkv + (size_t)t * a.ld, *k = q + qd, *v = k + kvd;
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
        float kk = k[i], vv = v[i];
        if (a.bk) kk += a.bk[i];
        if (a.bv) vv += a.bv[i];
        a.k16[(size_t)t * kvd + i] = crk_f2h(kk);
        a.v16[(size_t)t * kvd + i] = crk_f2h(vv);
    }
    if (a.bq)
        for (int i = threadIdx.x; i < qd; i += blockDim.x) q[i] += a.bq[i];
    __syncthreads();
    const int rp = a.rope_pairs;
    const float *cs = a.rope_cs + (size_t)(a.st->p0 + t) * rp * 2;
    for (int i = threadIdx.x; i < a.n_head * rp; i += blockDim.x) {
        int h = i / rp, p = i % rp;
        int ia = a.neox ? p : 2 * p, ib = a.neox ? p + rp : 2 * p + 1;
        float *x = q + (size_t)h * a.hd;
        float c = cs[2 * p], s = cs[2 * p + 1];
        float x0 = x[ia], x1 = x[ib];
        x[ia] = x0 * c - x1 * s;
        x[ib] = x0 * s + x1 * c;
    }
    if (a.q16) {
        __syncthreads();
        for (int i = threadIdx.x; i < qd; i += blockDim.x) a.q16[(size_t)t * qd + i] = crk_f2h(q[i]);
    }
}

extern "C" void crk_qkv_post(const crk_qkv_args *a, crk_stream s) {
    if (a->L <= 0) return;
    qkv_post_k<<<a->L, 256, 0, s>>>(*a);
}
