/* In-cache RoPE positions of the N slots (cascade_positions of engine/cascade.c):
 * slot i*W + j holds the d-th oldest token of cascade i, d = (j - start[i]) mod W, when
 * d < stored[i]; its position is S + above[i] + d, else -1 (empty). */
#include "common.cuh"

__global__ void slot_pos_k(const crk_step *st, int N, int32_t *pos) {
    const int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= N) return;
    const int W = st->W, i = s / W, j = s % W;
    int d = (j - st->start[i]) % W;
    if (d < 0) d += W;
    pos[s] = d < st->stored[i] ? st->S + st->above[i] + d : -1;
}

extern "C" void crk_slot_pos(const crk_step *st, int N, int32_t *pos, crk_stream s) {
    slot_pos_k<<<crk_cdiv(N, 256), 256, 0, s>>>(st, N, pos);
}
