/* NCCL for tensor parallelism over the GPUs of one host (issue 10). libnccl is loaded at run
 * time (dlopen "libnccl.so.2"), so a binary built with CUDA runs without it on one GPU.
 * One process drives every GPU: nccl_open makes one communicator per device with
 * ncclCommInitAll, and each collective is one ncclGroupStart/End over the ranks.
 * NVLink SHARP / multicast stays off: NCCL_NVLS_ENABLE=0 unless the environment sets it. */
#ifndef CR_CUDA_NCCL_H
#define CR_CUDA_NCCL_H
#include <stddef.h>

typedef struct cr_nccl cr_nccl;

/* Communicators for devices[0..n) (rank r = devices[r]). NULL + err when libnccl is missing
 * or NCCL fails. */
cr_nccl *nccl_open(const int *devices, int n, char *err, size_t errlen);
void     nccl_close(cr_nccl *c);
int      nccl_ranks(const cr_nccl *c);
int      nccl_device(const cr_nccl *c, int rank);
/* "NCCL 2.28.9 (libnccl.so.2)" */
const char *nccl_describe(const cr_nccl *c);

/* In-place sum all-reduce of count fp32 values: bufs[r] lives on rank r's device and is
 * reduced on streams[r] (cudaStream_t; NULL = the default stream). Returns 0, or -1 + err.
 * The call only enqueues: synchronize the streams before reading the results. */
int nccl_allreduce_sum_f32(cr_nccl *c, float *const *bufs, size_t count, void *const *streams, char *err, size_t errlen);
/* The same for one rank, from the thread that drives it (one thread per GPU: each calls this
 * with its own rank, concurrently, on its device's stream). 0, or -1 + err. */
int      nccl_allreduce_sum_f32_rank(cr_nccl *c, int rank, float *buf, size_t count, void *stream, char *err, size_t errlen);
#endif
