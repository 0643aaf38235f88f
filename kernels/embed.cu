/* Embedding lookup: one row of the token matrix per token, dequantized to f32
 * (the same arithmetic as dequant_row of engine/quant.c). The matrix may hold only the rows
 * of tokens [row0, row0 + nrows) (a tensor-parallel rank's share of the vocabulary): other
 * tokens get a row of zeros (the ranks' rows are then summed by an all-reduce). */
#include "common.cuh"

template <int T>
__global__ void embed_q(const uint8_t *w, size_t row_bytes, int cols, const int32_t *tok, int row0, int nrows, float *x) {
    const int t = blockIdx.y;
    const int nb = cols / 32;
    const int r = tok[t] - row0;
    if (r < 0 || r >= nrows) {
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) x[(size_t)t * cols + i] = 0.0f;
        return;
    }
    const uint8_t *row = w + (size_t)r * row_bytes;
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < nb; b += gridDim.x * blockDim.x) {
        crk_blk k;
        crk_unpack<T>(row, b, k);
        float *dst = x + (size_t)t * cols + 32 * (size_t)b;
#pragma unroll
        for (int i = 0; i < 32; i++) dst[i] = crk_blk_val(k, i);
    }
}

__global__ void embed_f(const uint8_t *w, uint32_t type, size_t row_bytes, int cols, const int32_t *tok, int row0, int nrows, float *x) {
    const int t = blockIdx.y;
    const int r = tok[t] - row0;
    const bool in = r >= 0 && r < nrows;
    const uint8_t *row = w + (size_t)(in ? r : 0) * row_bytes;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x)
        x[(size_t)t * cols + i] = in ? crk_fval(type, row, i) : 0.0f;
}

template <int T>
static void launch_embed_q(const uint8_t *w, size_t row_bytes, int cols, const int32_t *tok, int L, int row0, int nrows, float *x,
                           cudaStream_t s) {
    int nb = cols / 32;
    dim3 grid(crk_cdiv(nb, 128), L);
    embed_q<T><<<grid, 128, 0, s>>>(w, row_bytes, cols, tok, row0, nrows, x);
}

extern "C" void crk_embed(const void *w, uint32_t type, size_t row_bytes, int cols, const int32_t *tok, int L, int row0, int nrows,
                          float *x, crk_stream s) {
    if (L <= 0) return;
    if (type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        dim3 grid(crk_cdiv(cols, 256), L);
        embed_f<<<grid, 256, 0, s>>>((const uint8_t *)w, type, row_bytes, cols, tok, row0, nrows, x);
        return;
    }
    CRK_DISPATCH_QTYPE(type, launch_embed_q, (const uint8_t *)w, row_bytes, cols, tok, L, row0, nrows, x, s)
}
