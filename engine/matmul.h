/* CPU matrix multiply against weights in their stored format:
 * y[T][W.rows] = x[T][W.cols] . W^T, parallel over weight rows. */
#ifndef CR_MATMUL_H
#define CR_MATMUL_H
#include "model.h"
#include "quant.h"
#include "threadpool.h"

/* xq: scratch of at least T * W.cols / 32 q8 blocks (used for quantized W). */
void matmul(threadpool *tp, const wmat *W, const float *x, int T, float *y, q8_block *xq);
/* Same with activations already quantized (several matrices sharing one input). */
void matmul_q8(threadpool *tp, const wmat *W, const float *x, const q8_block *xq, int T, float *y);
void quantize_rows(threadpool *tp, const float *x, int T, int64_t n, q8_block *xq);
/* Decode (one token): y[i] = W[i] . x for n <= 8 matrices of the same width in one parallel
 * pass over all their rows (one thread-pool job instead of n); each row's dot is the one
 * matmul_q8 computes. xq: x quantized (quantize_rows), used by the quantized matrices. */
void matvec_multi(threadpool *tp, const wmat *const *W, float *const *y, int n, const float *x, const q8_block *xq);
/* y[i] = x . W[i]^T for n <= MM_MULTI matrices of the same width and T tokens in one
 * parallel job (the activations prepared once); T == 1 is matvec_multi. */
#define MM_MULTI 8
void matmul_multi(threadpool *tp, const wmat *const *W, float *const *y, int n, const float *x, const q8_block *xq, int T);
/* Row r of W as floats. */
void wmat_row(const wmat *W, int64_t r, float *dst);
#endif
