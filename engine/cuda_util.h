/* Error checks of the CUDA host code (CUDA=1 builds only). CUDA_CHECK aborts with
 * file:line: a failing CUDA call there is a programmer error (out of memory at state
 * creation is handled separately and reported to the caller). */
#ifndef CR_CUDA_UTIL_H
#define CR_CUDA_UTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

#define CUDA_CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d: CUDA error %s (%s) in %s\n", __FILE__, __LINE__, cudaGetErrorName(e_), cudaGetErrorString(e_), #x); \
    abort(); } } while (0)
/* After a kernel launch wrapper: launch-configuration errors surface here. */
#define CUDA_LAUNCHED() CUDA_CHECK(cudaGetLastError())
#define CUBLAS_CHECK(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "%s:%d: cuBLAS error %d in %s\n", __FILE__, __LINE__, (int)s_, #x); abort(); } } while (0)
#endif
