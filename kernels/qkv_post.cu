/* After the q/k/v projections: biases, fp16 rounding of the pre-RoPE keys and values (the
 * cache format), RoPE of the queries at positions p0 + t (same float arithmetic as
 * rope_rotate of engine/attn_cpu.c with the host-computed cos/sin table), and an fp16 copy
 * of the rotated queries for the tensor-core attention. One block per token. */
#include "common.cuh"

__global__ void qkv_post_k(crk_qkv_args a) {
    crk_pdl_sync();
    const int t = blockIdx.x, G = gridDim.y, gy = blockIdx.y;
    const int qd = a.n_head * a.hd, kvd = a.n_kv * a.hd;
    /* block (t, gy) of G: query heads [h0, h1) and key/value rows [c0, c1) of token t */
    const int h0 = (int)((int64_t)a.n_head * gy / G), h1 = (int)((int64_t)a.n_head * (gy + 1) / G);
    const int c0 = (int)((int64_t)a.n_kv * gy / G) * a.hd, c1 = (int)((int64_t)a.n_kv * (gy + 1) / G) * a.hd;
    float *q = a.qkv + (size_t)t * a.ld, *k = q + qd, *v = k + kvd;
    for (int i = c0 + threadIdx.x; i < c1; i += blockDim.x) {
        float kk = k[i], vv = v[i];
        if (a.bk) kk += a.bk[i];
        if (a.bv) vv += a.bv[i];
        a.k16[(size_t)t * kvd + i] = crk_f2h(kk);
        a.v16[(size_t)t * kvd + i] = crk_f2h(vv);
    }
    if (a.bq)
        for (int i = h0 * a.hd + threadIdx.x; i < h1 * a.hd; i += blockDim.x) q[i] += a.bq[i];
    __syncthreads();
    const int rp = a.rope_pairs;
    const float *cs = a.rope_cs + (size_t)(a.st->p0 + t) * rp * 2;
    for (int i = h0 * rp + threadIdx.x; i < h1 * rp; i += blockDim.x) {
        int h = i / rp, p = i % rp;
        int ia = a.neox ? p : 2 * p, ib = a.neox ? p + rp : 2 * p + 1;
        float *x = q + (size_t)h * a.hd;
        float x0 = x[ia], x1 = x[ib];
        crk_rope_pair(x0, x1, cs[2 * p], cs[2 * p + 1]);
        x[ia] = x0; x[ib] = x1;
    }
    if (a.q16) {
        __syncthreads();
        for (int i = h0 * a.hd + threadIdx.x; i < h1 * a.hd; i += blockDim.x) a.q16[(size_t)t * qd + i] = crk_f2h(q[i]);
    }
}

/* A chunk: one block per token. Decode (one token): one block per query head, so the
 * loads of all heads are in flight at once. */
extern "C" void crk_qkv_post(const crk_qkv_args *a, crk_stream s) {
    if (a->L <= 0) return;
    if (a->L == 1) crk_launch(true, qkv_post_k, dim3(1, a->n_head), a->hd >= 128 ? 128 : 64, 0, s, *a);
    else qkv_post_k<<<dim3(a->L, 1), 256, 0, s>>>(*a);
}
