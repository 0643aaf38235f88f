/* NCCL (engine/cuda_nccl.c), the collective of tensor parallelism (issue 10):
 *  - a row-parallel matrix-vector product in the Megatron pattern: W's columns split over
 *    the ranks, each rank multiplies its slice with cuBLAS, one sum all-reduce gives every
 *    rank the full product; compared with a double-precision CPU product. With one GPU this
 *    is the single-rank NCCL run; with several it is the real split;
 *  - an all-reduce of rank-specific integers (exact in fp32) on every visible GPU;
 *  - bad device lists give errors, not crashes.
 * SKIP without CUDA, without a GPU, or without libnccl. */
#include "t.h"

#ifndef CR_CUDA
static void test_nccl(void) { T_SKIP("built without CUDA (CUDA=0)"); }
int main(void) { T_RUN(test_nccl); return t_summary(); }
#else
#include "cuda_nccl.h"
#include "cuda_state.h"
#include "cuda_util.h"
#include <math.h>
#include <string.h>

static int n_gpu;
static char gpu_desc[320];

static cr_nccl *open_all(int n, char *err, size_t errlen) {
    int dev[8];
    for (int i = 0; i < n; i++) dev[i] = i;
    return nccl_open(dev, n, err, errlen);
}

#define NEED_NCCL(c, n) \
    if (n_gpu < 1) T_SKIP("no usable CUDA device: %s", gpu_desc); \
    char err[300]; cr_nccl *c = open_all(n, err, sizeof err); \
    if (!c && strstr(err, "not installed")) T_SKIP("%s", err); \
    T_CHECKF(c != NULL, "%s", err)

static void test_row_parallel_matvec(void) {
    const int n = n_gpu < 8 ? n_gpu : 8;
    NEED_NCCL(c, n);
    const int rows = 1000, cols = 4096;
    float *W = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * cols), *y = malloc(sizeof(float) * rows);
    uint32_t s = 5;
    for (int i = 0; i < rows * cols; i++) { s = s * 1664525u + 1013904223u; W[i] = ((int)(s >> 9) % 2001 - 1000) / 1000.0f; }
    for (int i = 0; i < cols; i++) { s = s * 1664525u + 1013904223u; x[i] = ((int)(s >> 9) % 2001 - 1000) / 1000.0f; }
    float *dy[8];
    cudaStream_t st[8];
    float *dW[8], *dx[8];
    cublasHandle_t cb[8];
    for (int r = 0; r < n; r++) {
        const int c0 = cols * r / n, c1 = cols * (r + 1) / n, nc = c1 - c0;
        CUDA_CHECK(cudaSetDevice(nccl_device(c, r)));
        CUDA_CHECK(cudaStreamCreate(&st[r]));
        CUBLAS_CHECK(cublasCreate(&cb[r]));
        CUBLAS_CHECK(cublasSetStream(cb[r], st[r]));
        /* the slice W[:, c0:c1], row-major rows x nc = column-major nc x rows */
        float *slice = malloc(sizeof(float) * rows * nc);
        for (int i = 0; i < rows; i++) memcpy(slice + (size_t)i * nc, W + (size_t)i * cols + c0, sizeof(float) * nc);
        CUDA_CHECK(cudaMalloc((void **)&dW[r], sizeof(float) * rows * nc));
        CUDA_CHECK(cudaMalloc((void **)&dx[r], sizeof(float) * nc));
        CUDA_CHECK(cudaMalloc((void **)&dy[r], sizeof(float) * rows));
        CUDA_CHECK(cudaMemcpy(dW[r], slice, sizeof(float) * rows * nc, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dx[r], x + c0, sizeof(float) * nc, cudaMemcpyHostToDevice));
        free(slice);
        const float one = 1.0f, zero = 0.0f;
        CUBLAS_CHECK(cublasSgemv(cb[r], CUBLAS_OP_T, nc, rows, &one, dW[r], nc, dx[r], 1, &zero, dy[r], 1));
    }
    T_CHECKF(nccl_allreduce_sum_f32(c, dy, (size_t)rows, (void *const *)st, err, sizeof err) == 0, "%s", err);
    double worst = 0, scale = 0;
    for (int i = 0; i < rows; i++) {
        double ref = 0;
        for (int j = 0; j < cols; j++) ref += (double)W[(size_t)i * cols + j] * x[j];
        if (fabs(ref) > scale) scale = fabs(ref);
    }
    for (int r = 0; r < n; r++) {
        CUDA_CHECK(cudaSetDevice(nccl_device(c, r)));
        CUDA_CHECK(cudaStreamSynchronize(st[r]));
        CUDA_CHECK(cudaMemcpy(y, dy[r], sizeof(float) * rows, cudaMemcpyDeviceToHost));
        for (int i = 0; i < rows; i++) {
            double ref = 0;
            for (int j = 0; j < cols; j++) ref += (double)W[(size_t)i * cols + j] * x[j];
            double e = fabs(y[i] - ref) / scale;
            if (!(e <= worst)) worst = e;      /* NaN propagates */
        }
        cublasDestroy(cb[r]); cudaStreamDestroy(st[r]);
        cudaFree(dW[r]); cudaFree(dx[r]); cudaFree(dy[r]);
    }
    CUDA_CHECK(cudaSetDevice(0));
    printf("     %s, %d rank%s: row-parallel %dx%d matvec + all-reduce, max error %.2e of max |y| %.1f\n",
           nccl_describe(c), n, n > 1 ? "s" : "", rows, cols, worst, scale);
    T_CHECKF(worst < 1e-5, "all-reduced product off by %.3g (relative to max |y|)", worst);
    nccl_close(c);
    free(W); free(x); free(y);
}

static void test_allreduce_exact(void) {
    const int n = n_gpu < 8 ? n_gpu : 8;
    NEED_NCCL(c, n);
    const size_t count = (1u << 20) + 3;   /* not a multiple of anything NCCL likes */
    float *d[8];
    float *h = malloc(sizeof(float) * count);
    for (int r = 0; r < n; r++) {
        CUDA_CHECK(cudaSetDevice(nccl_device(c, r)));
        for (size_t i = 0; i < count; i++) h[i] = (float)((i % 1000) * (r + 1));
        CUDA_CHECK(cudaMalloc((void **)&d[r], sizeof(float) * count));
        CUDA_CHECK(cudaMemcpy(d[r], h, sizeof(float) * count, cudaMemcpyHostToDevice));
    }
    T_CHECKF(nccl_allreduce_sum_f32(c, d, count, NULL, err, sizeof err) == 0, "%s", err);
    size_t bad = 0;
    const float tri = (float)(n * (n + 1) / 2);
    for (int r = 0; r < n; r++) {
        CUDA_CHECK(cudaSetDevice(nccl_device(c, r)));
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(h, d[r], sizeof(float) * count, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < count; i++) bad += h[i] != (float)(i % 1000) * tri;
        cudaFree(d[r]);
    }
    CUDA_CHECK(cudaSetDevice(0));
    printf("     all-reduce of %zu floats on %d GPU%s: %zu wrong\n", count, n, n > 1 ? "s" : "", bad);
    T_CHECKF(bad == 0, "%zu of %zu values wrong after the all-reduce", bad, count);
    nccl_close(c);
    free(h);
}

static void test_bad_devices(void) {
    if (n_gpu < 1) T_SKIP("no usable CUDA device: %s", gpu_desc);
    char err[300];
    int twice[2] = {0, 0}, missing[1] = {n_gpu + 3};
    T_CHECK(nccl_open(twice, 2, err, sizeof err) == NULL);
    T_CHECKF(strstr(err, "twice") != NULL, "%s", err);
    T_CHECK(nccl_open(missing, 1, err, sizeof err) == NULL);
    T_CHECKF(strstr(err, "does not exist") != NULL, "%s", err);
    T_CHECK(nccl_open(missing, 0, err, sizeof err) == NULL);
}

int main(void) {
    n_gpu = cuda_device_info(gpu_desc, sizeof gpu_desc);
    if (n_gpu > 0) printf("     device: %s\n", gpu_desc);
    T_RUN(test_row_parallel_matvec);
    T_RUN(test_allreduce_exact);
    T_RUN(test_bad_devices);
    return t_summary();
}
#endif
