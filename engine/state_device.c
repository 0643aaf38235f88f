/* Where a cr_state runs: the CPU (forward_cpu.c) or a CUDA GPU (cuda_state.c). The
 * cascade's control state always stays on the host and is planned exactly as on the CPU,
 * so the GPU's cache holds the same tokens in the same slots; `heads` is then a host mirror
 * synced on demand (snapshots, citations). */
#include "state.h"
#include "attn_probe.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef CR_CUDA
#include "cuda_state.h"
#include "cuda_tp.h"
#endif

int state_cuda_available(char *desc, size_t n) {
#ifdef CR_CUDA
    return cuda_device_info(desc, n);
#else
    snprintf(desc, n, "this build has no CUDA support (rebuild with nvcc on PATH)");
    return 0;
#endif
}

int state_on_gpu(const cr_state *s) { return s->gpu != NULL || s->gpu_tp != NULL; }

int state_gpu_ranks(const cr_state *s) {
#ifdef CR_CUDA
    if (s->gpu_tp) return cuda_tp_ranks(s->gpu_tp);
#endif
    return s->gpu != NULL;
}

void state_gpu_free(cr_state *s) {
#ifdef CR_CUDA
    if (s->gpu) cuda_state_free(s->gpu);
    if (s->gpu_tp) cuda_tp_free(s->gpu_tp);
#endif
    s->gpu = NULL; s->gpu_tp = NULL;
}

void state_gpu_reset(cr_state *s) {
#ifdef CR_CUDA
    if (s->gpu) cuda_state_reset(s->gpu);
    if (s->gpu_tp) cuda_tp_reset(s->gpu_tp);
#endif
    s->heads_stale = 0;
}

const char *state_device_name(const cr_state *s) {
#ifdef CR_CUDA
    if (s->gpu) return cuda_state_describe(s->gpu);
    if (s->gpu_tp) return cuda_tp_describe(s->gpu_tp);
#else
    (void)s;
#endif
    return "cpu";
}

int state_use_cuda_ranks(cr_state *s, int n, char *err, size_t errlen) {
    if (n <= 1) return state_use_cuda(s, err, errlen);
#ifdef CR_CUDA
    if (state_gpu_ranks(s) == n) return 0;
    if (state_on_gpu(s)) { snprintf(err, errlen, "the state is already on %d GPU(s)", state_gpu_ranks(s)); return -1; }
    char desc[256];
    int have = cuda_device_info(desc, sizeof desc);
    if (have < 1) { snprintf(err, errlen, "no usable GPU: %s", desc); return -1; }
    const char *sim = getenv("CR_GPUS_SIMULATE");
    const int simulate = sim && *sim == '1';
    if (!simulate && have < n) { snprintf(err, errlen, "--gpus %d: only %d usable GPU%s (%s)", n, have, have > 1 ? "s" : "", desc); return -1; }
    int devs[64];
    if (n > 64) { snprintf(err, errlen, "--gpus %d: at most 64", n); return -1; }
    for (int i = 0; i < n; i++) devs[i] = i;
    cuda_opts o; cuda_opts_default(&o);
    char e2[768];
    cuda_tp *t = cuda_tp_create(s->m, &s->ctrl, s->max_L, &o, n, simulate ? NULL : devs, e2, sizeof e2);
    if (!t) { snprintf(err, errlen, "--gpus %d: %s", n, e2); return -1; }
    if (s->ctrl.seen > 0 && cuda_tp_upload(t, s->heads)) {
        snprintf(err, errlen, "cannot upload the cache to the GPUs");
        cuda_tp_free(t); return -1;
    }
    s->gpu_tp = t; s->heads_stale = 0;
    return 0;
#else
    snprintf(err, errlen, "this build has no CUDA support (rebuild with nvcc on PATH, or use --device cpu)");
    return -1;
#endif
}

int state_use_cuda(cr_state *s, char *err, size_t errlen) {
#ifdef CR_CUDA
    if (s->gpu) return 0;
    if (s->gpu_tp) { snprintf(err, errlen, "the state is on %d GPUs", cuda_tp_ranks(s->gpu_tp)); return -1; }
    char desc[256];
    if (cuda_device_info(desc, sizeof desc) < 1) { snprintf(err, errlen, "no usable GPU: %s", desc); return -1; }
    cuda_state *g = cuda_state_create(s->m, &s->ctrl, s->max_L, err, errlen);
    if (!g) return -1;
    if (s->ctrl.seen > 0 && cuda_state_upload(g, s->heads)) {
        snprintf(err, errlen, "cannot upload the cache to the GPU");
        cuda_state_free(g); return -1;
    }
    s->gpu = g; s->heads_stale = 0;
    return 0;
#else
    (void)s;
    snprintf(err, errlen, "this build has no CUDA support (rebuild with nvcc on PATH, or use --device cpu)");
    return -1;
#endif
}

int state_sync_host(cr_state *s, char *err, size_t errlen) {
#ifdef CR_CUDA
    if (s->gpu_tp && s->heads_stale) {
        if (cuda_tp_download(s->gpu_tp, s->heads)) { snprintf(err, errlen, "cannot copy the cache from the GPUs"); return -1; }
        s->heads_stale = 0;
    }
    if (!s->gpu || !s->heads_stale) return 0;
    if (cuda_sync(s->gpu, err, errlen)) return -1;
    if (cuda_state_download(s->gpu, s->heads)) { snprintf(err, errlen, "cannot copy the cache from the GPU"); return -1; }
    s->heads_stale = 0;
#else
    (void)s; (void)err; (void)errlen;
#endif
    return 0;
}

int state_sync_device(cr_state *s, char *err, size_t errlen) {
#ifdef CR_CUDA
    if (s->gpu_tp) {
        if (cuda_tp_upload(s->gpu_tp, s->heads)) { snprintf(err, errlen, "cannot copy the cache to the GPUs"); return -1; }
        s->heads_stale = 0;
        return 0;
    }
    if (!s->gpu) return 0;
    if (cuda_state_upload(s->gpu, s->heads)) { snprintf(err, errlen, "cannot copy the cache to the GPU"); return -1; }
    s->heads_stale = 0;
#else
    (void)s; (void)err; (void)errlen;
#endif
    return 0;
}

#ifdef CR_CUDA
/* the GPU backend of s: one GPU or several */
static int dev_forward(cr_state *s, const cascade_ctrl *pre, const int32_t *tok, int L, int out_mode, const int32_t *targets, float *out,
                       char *err, size_t errlen) {
    if (s->gpu_tp) return cuda_tp_forward(s->gpu_tp, pre, &s->plan, tok, L, out_mode, targets, out, err, errlen);
    return cuda_forward(s->gpu, pre, &s->plan, tok, L, out_mode, targets, out, err, errlen);
}
static int dev_probe_set(cr_state *s, int on, int l0, int l1, int64_t cap, char *err, size_t errlen) {
    return s->gpu_tp ? cuda_tp_probe_set(s->gpu_tp, on, l0, l1, cap, err, errlen) : cuda_probe_set(s->gpu, on, l0, l1, cap, err, errlen);
}
static int dev_probe_take(cr_state *s, float *host, int64_t n) {
    return s->gpu_tp ? cuda_tp_probe_take(s->gpu_tp, host, n) : cuda_probe_take(s->gpu, host, n);
}

/* One chunk: planned on the host, run on the GPU(s). On failure the control state is rolled
 * back (the GPU cache may be partly updated: the caller treats this as fatal). */
static int gpu_chunk(cr_state *s, const int32_t *tok, int L, int out_mode, const int32_t *targets, float *out, char *err, size_t errlen) {
    cascade_ctrl pre = s->ctrl;
    if (cascade_plan_chunk(&s->ctrl, L, &s->plan, err, errlen)) return -1;
    s->heads_stale = 1;
    if (dev_forward(s, &pre, tok, L, out_mode, targets, out, err, errlen)) { s->ctrl = pre; return -1; }
    return 0;
}

/* With an attention probe attached, the chunk's counted queries (stream index >= q_from) run
 * as single-token steps, whose decode attention adds every key's probability into a dense
 * per-original-index array on the GPU (on several GPUs one per GPU, summed when taken); the
 * array is taken once, after the last of them, and folded into the probe. The uncounted head
 * of the chunk runs as one chunk. */
static int gpu_probed(cr_state *s, const int32_t *tok, int L, int out_mode, float *out, char *err, size_t errlen) {
    cr_probe *pr = s->probe;
    if (out_mode != CR_OUT_NONE && out_mode != CR_OUT_LAST) {
        snprintf(err, errlen, "the attention probe on the GPU gives only the last token's logits");
        return -1;
    }
    const int64_t t0 = s->ctrl.seen;
    int n_pre = pr->q_from > t0 ? (pr->q_from - t0 < L ? (int)(pr->q_from - t0) : L) : 0;
    if (n_pre > 0 && gpu_chunk(s, tok, n_pre, n_pre == L ? out_mode : CR_OUT_NONE, NULL, out, err, errlen)) return -1;
    if (n_pre == L) return 0;
    const int64_t n = t0 + L;                  /* every original index the steps can see */
    float *dense = malloc((size_t)n * sizeof *dense);
    if (!dense) { snprintf(err, errlen, "out of memory in the attention probe"); return -1; }
    int rc = dev_probe_set(s, 1, pr->layer_from, pr->layer_to, n, err, errlen);
    for (int j = n_pre; j < L && rc == 0; j++)
        rc = gpu_chunk(s, tok + j, 1, j == L - 1 ? out_mode : CR_OUT_NONE, NULL, out, err, errlen);
    if (rc == 0 && dev_probe_take(s, dense, n)) { snprintf(err, errlen, "cannot copy the attention probe from the GPU"); rc = -1; }
    if (rc == 0 && probe_add_dense(pr, dense, n, L - n_pre)) { snprintf(err, errlen, "out of memory in the attention probe"); rc = -1; }
    char e2[64];
    dev_probe_set(s, 0, 0, 0, 0, e2, sizeof e2);
    free(dense);
    return rc;
}
#endif

int forward_gpu(cr_state *s, const int32_t *tok, int L, int out_mode, const int32_t *targets, float *out, char *err, size_t errlen) {
#ifdef CR_CUDA
    if (s->probe) return gpu_probed(s, tok, L, out_mode, out, err, errlen);
    return gpu_chunk(s, tok, L, out_mode, targets, out, err, errlen);
#else
    (void)s; (void)tok; (void)L; (void)out_mode; (void)targets; (void)out;
    snprintf(err, errlen, "this build has no CUDA support");
    return -1;
#endif
}
