/* The 16-key steps of the key space [S sinks | N slots | L chunk tokens] that hold a valid
 * key, ascending (cascade_step_list of engine/cascade.c, from the control state in st):
 * list[0] = count, list[1 + i] = the i-th step (key / 16) for i < min(count, cap), -1 for
 * count <= i < cap. One block; each thread checks the 16 keys of one step per round, and the
 * block compacts the round's steps in order (warp ballots, then the warps' offsets). The
 * decode attention of a nearly empty cache walks only these (crk_attn.steps). */
#include "common.cuh"

#define SL_NT 1024

__device__ __forceinline__ bool sl_valid(const crk_step *st, int k) {
    const int S = st->S, N = st->N;
    if (k < S) return k < st->n_sinks;
    if (k < S + N) {
        const int s = k - S, W = st->W, i = s / W;
        int d = (s % W - st->start[i]) % W;
        if (d < 0) d += W;
        return d < st->stored[i];
    }
    return k - S - N < st->L;
}

__global__ void __launch_bounds__(SL_NT) step_list_k(const crk_step *st, int32_t *list, int cap) {
    __shared__ int wcount[SL_NT / 32];
    __shared__ int base;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int nk = st->S + st->N + st->L, nsteps = (nk + 15) / 16;
    if (tid == 0) base = 0;
    __syncthreads();
    for (int t0 = 0; t0 < nsteps; t0 += SL_NT) {
        const int t = t0 + tid;
        bool v = false;
        for (int k = 16 * t; t < nsteps && k < 16 * t + 16 && k < nk && !v; k++) v = sl_valid(st, k);
        const uint32_t b = __ballot_sync(0xffffffffu, v);
        if (lane == 0) wcount[warp] = __popc(b);
        __syncthreads();
        int off = base;
        for (int w = 0; w < warp; w++) off += wcount[w];
        off += __popc(b & ((1u << lane) - 1u));
        if (v && off < cap) list[1 + off] = t;
        __syncthreads();   /* every thread has read base and wcount */
        if (tid == SL_NT - 1) base = off + (v ? 1 : 0);
        __syncthreads();
    }
    const int n = base;
    if (tid == 0) list[0] = n;
    for (int i = n + tid; i < cap; i += SL_NT) list[1 + i] = -1;
}

extern "C" void crk_step_list(const crk_step *st, int32_t *list, int cap, crk_stream s) {
    step_list_k<<<1, SL_NT, 0, s>>>(st, list, cap);
}
