/* Tensor parallelism over several cuda_states: see cuda_tp.h. */
#include "cuda_tp.h"
#include "cuda_nccl.h"
#include "cuda_util.h"
#include "model_shard.h"
#include "sampler.h"
#include "state.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TP_MAX 64

typedef struct {
    const cascade_ctrl *pre; const cascade_plan *plan; const int32_t *tok; int L, out_mode;
    const int32_t *targets; float *out;
} tp_job;

struct cuda_tp {
    int n, sim, n_layer, n_kv;      /* n_kv: of the whole model */
    int devs[TP_MAX];
    cr_model shard[TP_MAX];
    cuda_state *g[TP_MAX];
    cr_nccl *nccl;
    /* rank threads 1..n-1 */
    pthread_t th[TP_MAX];
    int th_ok[TP_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go, done_cv;
    int gen, done, quit;
    tp_job job;
    int rc[TP_MAX];
    /* every rank's share of the outputs that need combining (argmax, NLL): [n][max_L][2] */
    float *part;
    int max_L;
    char err[TP_MAX][256];
    /* simulation's all-reduce */
    pthread_barrier_t bar;
    int bar_ok;
    float *buf[TP_MAX];
    cublasHandle_t cb;
    cudaStream_t cbst;
    char desc[400];
};

typedef struct { cuda_tp *t; int rank; } rank_arg;

/* One device: every rank's partial x is complete (its stream synchronized) at the first
 * barrier; rank 0 adds the others' into its own with cuBLAS; at the second barrier the sum
 * is there and the other ranks copy it; the third keeps rank 0 from changing x before they
 * have. */
static int sim_allreduce(void *ctx, int rank, float *x, size_t n, void *stream) {
    cuda_tp *t = ctx;
    t->buf[rank] = x;
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    pthread_barrier_wait(&t->bar);
    if (rank == 0) {
        const float one = 1.0f;
        for (int r = 1; r < t->n; r++) CUBLAS_CHECK(cublasSaxpy(t->cb, (int)n, &one, t->buf[r], 1, x, 1));
        CUDA_CHECK(cudaStreamSynchronize(t->cbst));
    }
    pthread_barrier_wait(&t->bar);
    if (rank != 0) CUDA_CHECK(cudaMemcpy(x, t->buf[0], n * sizeof(float), cudaMemcpyDeviceToDevice));
    pthread_barrier_wait(&t->bar);
    return 0;
}

static int nccl_allreduce(void *ctx, int rank, float *x, size_t n, void *stream) {
    cuda_tp *t = ctx;
    char err[256];
    if (nccl_allreduce_sum_f32_rank(t->nccl, rank, x, n, stream, err, sizeof err)) { fprintf(stderr, "%s\n", err); return -1; }
    return 0;
}

/* Whether an output mode gives each rank a share to combine (n > 1: every rank holds a share
 * of the vocabulary) rather than its columns of out. */
static int combined(const cuda_tp *t, int out_mode) { return t->n > 1 && (out_mode == CUDA_OUT_ARGMAX || out_mode == CR_OUT_NLL); }

static void run_rank(cuda_tp *t, int r) {
    const tp_job *j = &t->job;
    /* each rank computes the outputs of its share of the vocabulary: logits into its columns
     * of out, argmax / NLL pairs into its part of t->part */
    float *o = combined(t, j->out_mode) ? t->part + (size_t)r * t->max_L * 2 : j->out;
    t->rc[r] = cuda_forward(t->g[r], j->pre, j->plan, j->tok, j->L, j->out_mode, j->targets, o, t->err[r], sizeof t->err[r]);
    if (r != 0 && t->rc[r] == 0 && cuda_sync(t->g[r], t->err[r], sizeof t->err[r])) t->rc[r] = -1;
}

static void *rank_thread(void *p) {
    rank_arg a = *(rank_arg *)p;
    free(p);
    cuda_tp *t = a.t;
    int seen = 0;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (t->gen == seen && !t->quit) pthread_cond_wait(&t->go, &t->mu);
        if (t->quit) { pthread_mutex_unlock(&t->mu); return NULL; }
        seen = t->gen;
        pthread_mutex_unlock(&t->mu);
        run_rank(t, a.rank);
        pthread_mutex_lock(&t->mu);
        t->done++;
        pthread_cond_signal(&t->done_cv);
        pthread_mutex_unlock(&t->mu);
    }
}

void cuda_tp_free(cuda_tp *t) {
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->quit = 1;
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    for (int r = 1; r < t->n; r++) if (t->th_ok[r]) pthread_join(t->th[r], NULL);
    for (int r = 0; r < t->n; r++) { cuda_state_free(t->g[r]); model_shard_free(&t->shard[r]); }
    if (t->cb) { cudaSetDevice(0); cublasDestroy(t->cb); }
    if (t->cbst) cudaStreamDestroy(t->cbst);
    if (t->bar_ok) pthread_barrier_destroy(&t->bar);
    nccl_close(t->nccl);
    free(t->part);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->go);
    pthread_cond_destroy(&t->done_cv);
    free(t);
}

cuda_tp *cuda_tp_create(const cr_model *m, const cascade_ctrl *ctrl, int max_L, const cuda_opts *o, int n, const int *devices,
                        char *err, size_t errlen) {
    if (n < 1 || n > TP_MAX) { snprintf(err, errlen, "%d GPUs requested (1 to %d)", n, TP_MAX); return NULL; }
    cuda_tp *t = calloc(1, sizeof *t);
    if (!t) { snprintf(err, errlen, "out of memory"); return NULL; }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->go, NULL);
    pthread_cond_init(&t->done_cv, NULL);
    t->n = n; t->sim = devices == NULL; t->n_layer = m->hp.n_layer; t->n_kv = m->hp.n_kv; t->max_L = max_L;
    t->part = malloc(sizeof(float) * 2 * (size_t)n * (max_L > 0 ? max_L : 1));
    if (!t->part) { snprintf(err, errlen, "out of memory"); cuda_tp_free(t); return NULL; }
    for (int r = 0; r < n; r++) t->devs[r] = devices ? devices[r] : 0;
    for (int r = 0; r < n; r++)
        if (model_shard(m, r, n, &t->shard[r], err, errlen)) { cuda_tp_free(t); return NULL; }
    if (t->sim) {
        if (pthread_barrier_init(&t->bar, NULL, (unsigned)n)) { snprintf(err, errlen, "pthread_barrier_init failed"); cuda_tp_free(t); return NULL; }
        t->bar_ok = 1;
        char dd[256];
        if (!cuda_device_info(dd, sizeof dd)) { snprintf(err, errlen, "CUDA: %s", dd); cuda_tp_free(t); return NULL; }
        CUDA_CHECK(cudaSetDevice(0));
        CUDA_CHECK(cudaStreamCreateWithFlags(&t->cbst, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&t->cb));
        CUBLAS_CHECK(cublasSetStream(t->cb, t->cbst));
    } else {   /* also for one rank: the same code path, a single-rank all-reduce */
        t->nccl = nccl_open(t->devs, n, err, errlen);
        if (!t->nccl) { cuda_tp_free(t); return NULL; }
    }
    for (int r = 0; r < n; r++) {
        cuda_opts ro = *o;
        ro.device = t->devs[r];
        ro.tp_rank = r;
        if (n > 1) model_shard_vocab(m, r, n, &ro.vocab_off, &ro.vocab_n);
        if (n > 1 || !t->sim) {
            ro.allreduce = t->sim ? sim_allreduce : nccl_allreduce;
            ro.tp_ctx = t;
            if (t->sim) ro.graph = 0;   /* the host takes part in every all-reduce */
        }
        char e2[512];
        t->g[r] = cuda_state_create_ex(&t->shard[r], ctrl, max_L, &ro, e2, sizeof e2);
        if (!t->g[r]) { snprintf(err, errlen, "GPU %d (rank %d of %d): %s", t->devs[r], r, n, e2); cuda_tp_free(t); return NULL; }
    }
    for (int r = 1; r < n; r++) {
        rank_arg *a = malloc(sizeof *a);
        if (!a) { snprintf(err, errlen, "out of memory"); cuda_tp_free(t); return NULL; }
        a->t = t; a->rank = r;
        if (pthread_create(&t->th[r], NULL, rank_thread, a)) { free(a); snprintf(err, errlen, "cannot start a thread per GPU"); cuda_tp_free(t); return NULL; }
        t->th_ok[r] = 1;
    }
    snprintf(t->desc, sizeof t->desc, "%d-way tensor parallel (%s): %s", n,
                     t->sim ? "simulated, every rank on GPU 0" : nccl_describe(t->nccl), cuda_state_describe(t->g[0]));
    return t;
}

int cuda_tp_ranks(const cuda_tp *t) { return t->n; }
const char *cuda_tp_describe(const cuda_tp *t) { return t->desc; }

int cuda_tp_forward(cuda_tp *t, const cascade_ctrl *pre, const cascade_plan *plan, const int32_t *tok, int L, int out_mode,
                    const int32_t *targets, float *out, char *err, size_t errlen) {
    tp_job j = {pre, plan, tok, L, out_mode, targets, out};
    pthread_mutex_lock(&t->mu);
    t->job = j;
    t->done = 0;
    t->gen++;
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    run_rank(t, 0);
    pthread_mutex_lock(&t->mu);
    while (t->done < t->n - 1) pthread_cond_wait(&t->done_cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    for (int r = 0; r < t->n; r++)
        if (t->rc[r]) {
            if (t->n > 1) snprintf(err, errlen, "rank %d: %s", r, t->err[r]);
            else snprintf(err, errlen, "%s", t->err[r]);
            return -1;
        }
    if (!combined(t, out_mode)) return 0;
    const size_t rs = (size_t)t->max_L * 2;   /* one rank's part */
    if (out_mode == CUDA_OUT_ARGMAX) {
        /* the largest logit over the shares; on a tie the lower rank (the lower token id) */
        int best = 0;
        for (int r = 1; r < t->n; r++) if (t->part[r * rs + 1] > t->part[best * rs + 1]) best = r;
        out[0] = t->part[best * rs];
    } else {
        for (int i = 0; i < L; i++) out[i] = logits_nll_combine(t->part + 2 * (size_t)i, t->n, (int)rs);   /* one NLL per token */
    }
    return 0;
}

void cuda_tp_reset(cuda_tp *t) {
    for (int r = 0; r < t->n; r++) cuda_state_reset(t->g[r]);
}

/* rank r's heads: layer l, its KV head j = heads[l * n_kv + r * kv_r + j] */
static cascade_head *rank_heads(const cuda_tp *t, const cascade_head *heads, int r) {
    const int kv_r = t->n_kv / t->n;
    cascade_head *h = malloc(sizeof *h * (size_t)t->n_layer * kv_r);
    if (!h) return NULL;
    for (int l = 0; l < t->n_layer; l++)
        for (int j = 0; j < kv_r; j++) h[(size_t)l * kv_r + j] = heads[(size_t)l * t->n_kv + (size_t)r * kv_r + j];
    return h;
}

/* every rank's heads from / to their places in heads (cascade_head holds pointers: the copies
 * in h alias the caller's buffers) */
static int move_cache(cuda_tp *t, const cascade_head *heads, int upload) {
    for (int r = 0; r < t->n; r++) {
        cascade_head *h = rank_heads(t, heads, r);
        if (!h) return -1;
        int rc = upload ? cuda_state_upload(t->g[r], h) : cuda_state_download(t->g[r], h);
        free(h);
        if (rc) return -1;
    }
    return 0;
}

int cuda_tp_download(cuda_tp *t, cascade_head *heads) { return move_cache(t, heads, 0); }
int cuda_tp_upload(cuda_tp *t, const cascade_head *heads) { return move_cache(t, heads, 1); }

int cuda_tp_probe_set(cuda_tp *t, int on, int layer_from, int layer_to, int64_t cap, char *err, size_t errlen) {
    for (int r = 0; r < t->n; r++)
        if (cuda_probe_set(t->g[r], on, layer_from, layer_to, cap, err, errlen)) return -1;
    return 0;
}

int cuda_tp_probe_take(cuda_tp *t, float *host, int64_t n) {
    if (cuda_probe_take(t->g[0], host, n)) return -1;
    if (t->n == 1) return 0;
    float *part = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!part) return -1;
    for (int r = 1; r < t->n; r++) {
        if (cuda_probe_take(t->g[r], part, n)) { free(part); return -1; }
        for (int64_t i = 0; i < n; i++) host[i] += part[i];
    }
    free(part);
    return 0;
}
