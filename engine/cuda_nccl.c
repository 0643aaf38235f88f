/* NCCL, loaded at run time: see cuda_nccl.h. */
#include "cuda_nccl.h"
#include "cuda_util.h"
#include <dlfcn.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANKS 64

struct cr_nccl {
    void *lib;
    int n;
    int dev[MAX_RANKS];
    ncclComm_t comm[MAX_RANKS];
    char desc[96];
    ncclResult_t (*get_version)(int *);
    ncclResult_t (*init_all)(ncclComm_t *, int, const int *);
    ncclResult_t (*destroy)(ncclComm_t);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    const char *(*error_string)(ncclResult_t);
};

static const char *why(const cr_nccl *c, ncclResult_t r) {
    return c->error_string ? c->error_string(r) : "NCCL error";
}

cr_nccl *nccl_open(const int *devices, int n, char *err, size_t errlen) {
    if (n < 1 || n > MAX_RANKS) { snprintf(err, errlen, "NCCL: %d GPUs requested (1 to %d)", n, MAX_RANKS); return NULL; }
    int have = 0;
    if (cudaGetDeviceCount(&have) != cudaSuccess) { cudaGetLastError(); have = 0; }
    for (int i = 0; i < n; i++) {
        if (devices[i] < 0 || devices[i] >= have) { snprintf(err, errlen, "NCCL: GPU %d does not exist (%d visible)", devices[i], have); return NULL; }
        for (int j = 0; j < i; j++)
            if (devices[j] == devices[i]) { snprintf(err, errlen, "NCCL: GPU %d listed twice", devices[i]); return NULL; }
    }
    cr_nccl *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errlen, "out of memory"); return NULL; }
    c->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) c->lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) { snprintf(err, errlen, "NCCL is not installed (cannot load libnccl.so.2: %s)", dlerror()); free(c); return NULL; }
#define SYM(f, name) do { *(void **)&c->f = dlsym(c->lib, name); if (!c->f) { \
        snprintf(err, errlen, "NCCL: libnccl.so.2 lacks %s", name); dlclose(c->lib); free(c); return NULL; } } while (0)
    SYM(get_version, "ncclGetVersion");
    SYM(init_all, "ncclCommInitAll");
    SYM(destroy, "ncclCommDestroy");
    SYM(all_reduce, "ncclAllReduce");
    SYM(group_start, "ncclGroupStart");
    SYM(group_end, "ncclGroupEnd");
    SYM(error_string, "ncclGetErrorString");
#undef SYM
    int v = 0;
    c->get_version(&v);
    /* NCCL >= 2.9 encodes major*10000 + minor*100 + patch */
    snprintf(c->desc, sizeof c->desc, "NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    setenv("NCCL_NVLS_ENABLE", "0", 0);           /* no NVLink multicast (the service's rule) */
    c->n = n;
    memcpy(c->dev, devices, sizeof(int) * (size_t)n);
    ncclResult_t r = c->init_all(c->comm, n, c->dev);
    if (r != ncclSuccess) {
        snprintf(err, errlen, "NCCL: cannot create communicators for %d GPU%s: %s", n, n > 1 ? "s" : "", why(c, r));
        dlclose(c->lib); free(c); return NULL;
    }
    return c;
}

void nccl_close(cr_nccl *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) if (c->comm[i]) c->destroy(c->comm[i]);
    dlclose(c->lib);
    free(c);
}

int nccl_ranks(const cr_nccl *c) { return c->n; }
int nccl_device(const cr_nccl *c, int rank) { return c->dev[rank]; }
const char *nccl_describe(const cr_nccl *c) { return c->desc; }

int nccl_allreduce_sum_f32(cr_nccl *c, float *const *bufs, size_t count, void *const *streams, char *err, size_t errlen) {
    int cur;
    CUDA_CHECK(cudaGetDevice(&cur));
    ncclResult_t r = c->group_start();
    for (int i = 0; i < c->n && r == ncclSuccess; i++) {
        CUDA_CHECK(cudaSetDevice(c->dev[i]));
        r = c->all_reduce(bufs[i], bufs[i], count, ncclFloat32, ncclSum, c->comm[i], streams ? (cudaStream_t)streams[i] : 0);
    }
    ncclResult_t r2 = c->group_end();
    CUDA_CHECK(cudaSetDevice(cur));
    if (r == ncclSuccess) r = r2;
    if (r != ncclSuccess) { snprintf(err, errlen, "NCCL all-reduce of %zu floats over %d GPUs: %s", count, c->n, why(c, r)); return -1; }
    return 0;
}

int nccl_allreduce_sum_f32_rank(cr_nccl *c, int rank, float *buf, size_t count, void *stream, char *err, size_t errlen) {
    ncclResult_t r = c->all_reduce(buf, buf, count, ncclFloat32, ncclSum, c->comm[rank], (cudaStream_t)stream);
    if (r != ncclSuccess) { snprintf(err, errlen, "NCCL all-reduce of %zu floats, rank %d of %d: %s", count, rank, c->n, why(c, r)); return -1; }
    return 0;
}
