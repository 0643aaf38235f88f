/* Activation quantization to q8 blocks (quantize_q8 of engine/quant.c, bit for bit, as
 * ggml's q8 for the K-quant dots): d = amax / 127, q = roundf(x * (1/d)) (halves away
 * from zero), the stored d rounded through fp16, s = d * sum(q). One warp per block. */
#include "common.cuh"

__global__ void quantize_q8_k(const float *x, int64_t nblocks, crk_q8 *y) {
    const int64_t b = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (b >= nblocks) return;
    crk_quantize_block(x[b * 32 + lane], lane, y + b);
}

extern "C" void crk_quantize_q8(const float *x, int L, int n, crk_q8 *y, crk_stream s) {
    int64_t nb = (int64_t)L * (n / 32);
    if (nb <= 0) return;
    quantize_q8_k<<<crk_cdiv((size_t)nb * 32, 256), 256, 0, s>>>(x, nb, y);
}
