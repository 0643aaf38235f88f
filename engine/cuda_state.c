/* CUDA forward pass: mirrors forward() of forward_cpu.c op for op.
 *  - prefill (L > 1): GEMMs through cuBLAS (bf16 operands with fp32 accumulation, or fp32
 *    for F32 matrices), chunk attention kernel, cascade update for all (layer, KV head);
 *  - decode (L == 1): quantized matrix-vector kernels on the stored blocks with q8
 *    activations (the CPU's arithmetic), flash-decoding attention, the whole step captured
 *    in a CUDA graph after the first eager step.
 * Every per-chunk value the kernels need (positions, sink count, EMA decay and weights,
 * plan) is packed into one pinned staging buffer and uploaded with one copy. */
#include "cuda_state.h"
#include "cuda_iface.h"
#include "cuda_plan.h"
#include "cuda_util.h"
#include "state.h"
#include "quant.h"
#include "gguf.h"
#include "model_shard.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_Q, M_K, M_V, M_O, M_GATE, M_UP, M_DOWN, M_COUNT };

typedef struct {
    void *raw;            /* the stored blocks (device) */
    uint32_t type;
    int64_t rows, cols;
    size_t row_bytes;
    int f32;              /* GEMM in fp32 (else bf16) */
    void *res;            /* resident GEMM operand (bf16 or f32 copy), NULL when streamed or raw is used */
} dmat;

#define N_OUT_MODES 5

struct cuda_state {
    const cr_model *m;
    hparams hp;
    cascade_cfg cfg;
    int S, N, C, W, max_L;
    int qd, kvd, wide;
    cuda_opts opts;
    cudaStream_t st;
    cublasHandle_t cb;
    int attn_mode;        /* CRK_ATTN_* passed to the kernels */
    /* weights */
    dmat tok, out;        /* [vn][dim]: rows of tokens [voff, voff + vn) */
    int out_shared;       /* output matrix == token matrix (tied) */
    int voff, vn;         /* this state's share of the vocabulary (all of it: 0, n_vocab) */
    dmat *lw;             /* [n_layer][M_COUNT] */
    void **qkv_res, **gu_res;   /* fused resident operands per layer (or NULL) */
    int qkv_fuse, gu_fuse;      /* group shares one precision */
    int qkv_mv, gu_mv;          /* decode: the group's stored rows are contiguous, one matvec */
    int resident;
    void *wsp; size_t wsp_bytes;
    float *vecs;          /* norms and biases */
    float **attn_norm, **ffn_norm, **bq, **bk, **bv, *out_norm;
    float *rope_cs;
    uint32_t *rope_cs16;  /* rope_cs in fp16 (cos, sin) pairs: the decode attention's table */
    /* cache */
    uint16_t *sink_k, *sink_v, *ck, *cv;
    float *score;
    int64_t *og;
    size_t cache_bytes, dev_bytes;
    /* per-layer chunk keys/values and score columns (deferred cascade update) */
    uint16_t *k16, *v16;
    float *r;
    size_t r_stride;
    /* tensor-core attention: gathered rotated keys / values of one layer */
    uint16_t *kbuf, *vbuf;
    int32_t *kdst;
    int kv_rows;
    /* scratch */
    float *x, *xb, *qkv, *att, *gu, *hb, *work, *logits, *nll;
    uint16_t *xb16, *att16, *hb16, *q16;
    crk_q8 *xq;
    int32_t *slot_pos, *d_argmax;
    int32_t *steps;                   /* [1 + CRK_DEC_LIST_CAP]: crk_step_list for a nearly empty cache's decode */
    int logits_rows;
    /* cascade update */
    int U_max, stage_layers;
    int32_t *src;
    void *rscratch;
    uint16_t *stage_k, *stage_v;
    int64_t *stage_og;
    /* staging */
    uint8_t *h_stage, *d_stage;
    size_t stage_bytes;
    cudaEvent_t ev_stage, ev0, ev1;
    int32_t *slot_map;    /* host [N], -1 */
    float *h_logits;      /* pinned [vn] */
    int32_t *h_argmax;    /* pinned */
    /* graphs */
    cudaGraphExec_t gexec[3 * N_OUT_MODES];   /* per output mode and sparse level (enqueue): a full cache, unfilled sinks or slots, nearly empty */
    int decode_warm;
    int timing;
    int bench_skip;             /* benchmarks only (cuda_state_set_bench_skip): decode kernels left out */
    float last_ms;
    char desc[320];
    /* attention probe (decode steps only): dense [probe_cap] floats indexed by original index */
    float *probe; int64_t probe_cap; int probe_on, probe_l0, probe_l1;
};

typedef struct { size_t step, w, tok, tgt, tfo, ops, touched, sinks, total; } stage_layout;

static size_t al16(size_t x) { return (x + 15) & ~(size_t)15; }
static int imin(int a, int b) { return a < b ? a : b; }

static stage_layout layout_for(const cuda_state *g, int L) {
    stage_layout s;
    size_t o = 0;
    size_t ops = (size_t)L * g->C;
    s.step = o; o += al16(sizeof(crk_step));
    s.w = o; o += al16((size_t)L * 4);
    s.tok = o; o += al16((size_t)L * 4);
    s.tgt = o; o += al16((size_t)L * 4);
    s.tfo = o; o += al16(((size_t)L + 1) * 4);
    s.ops = o; o += al16(ops * 8);
    s.touched = o; o += al16((size_t)(ops < (size_t)g->N ? ops : (size_t)g->N) * 4);
    s.sinks = o; o += al16((size_t)imin(g->S, L) * 8 + 8);
    s.total = o;
    return s;
}

void cuda_opts_default(cuda_opts *o) {
    memset(o, 0, sizeof *o);
    o->weights = CUDA_WEIGHTS_AUTO;
    o->gemm = CUDA_GEMM_AUTO;
    o->attn = CUDA_ATTN_AUTO;
    o->graph = 1;
    o->seed = 1;
}

int cuda_device_info(char *desc, size_t n) {
    int cnt = 0;
    cudaError_t e = cudaGetDeviceCount(&cnt);
    if (e != cudaSuccess || cnt == 0) {
        snprintf(desc, n, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        cudaGetLastError();
        return 0;
    }
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) { snprintf(desc, n, "no CUDA device (properties unreadable)"); cudaGetLastError(); return 0; }
    if (p.major < 9) {
        snprintf(desc, n, "%s (sm_%d%d): this build targets sm_90 (Hopper) and newer", p.name, p.major, p.minor);
        return 0;
    }
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    snprintf(desc, n, "%s, sm_%d%d, %d SMs, %.1f GiB (%.1f free), driver %d.%d, runtime %d.%d", p.name, p.major, p.minor,
             p.multiProcessorCount, tot / 1073741824.0, fr / 1073741824.0, drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
    return cnt;
}

/* ---- allocation with out-of-memory tracking ---- */
typedef struct { int oom; size_t bytes; } alloc_ctx;
static void *dalloc(alloc_ctx *a, size_t bytes) {
    if (!bytes) bytes = 16;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) { cudaGetLastError(); a->oom = 1; return NULL; }
    CUDA_CHECK(e);
    a->bytes += bytes;
    return p;
}

static int gemm_f32(const cuda_state *g, uint32_t type) {
    if (g->opts.gemm == CUDA_GEMM_FP32) return 1;
    if (g->opts.gemm == CUDA_GEMM_BF16) return 0;
    return type == GGML_TYPE_F32;
}
static size_t op_elem(const dmat *d) { return d->f32 ? 4 : 2; }
/* 1 when the GEMM operand must be produced from the stored blocks (dequantized to bf16 or
 * f32); F32 rows in fp32 mode and BF16 rows in bf16 mode are used as stored. */
static int needs_operand(const dmat *d) {
    return !((d->f32 && d->type == GGML_TYPE_F32) || (!d->f32 && d->type == GGML_TYPE_BF16));
}

static void init_dmat(cuda_state *g, dmat *d, const wmat *w) {
    memset(d, 0, sizeof *d);
    d->type = w->type; d->rows = w->rows; d->cols = w->cols;
    d->row_bytes = wmat_packed_row_bytes(w);   /* a column slice (model_shard.h) is stored packed */
    d->f32 = gemm_f32(g, w->type);
}

static const wmat *layer_wmat(const layer_w *L, int i) {
    switch (i) {
    case M_Q: return &L->q; case M_K: return &L->k; case M_V: return &L->v; case M_O: return &L->o;
    case M_GATE: return &L->gate; case M_UP: return &L->up; default: return &L->down;
    }
}

/* Fill d->raw (already allocated) from the model, or with random blocks (benchmarks). */
static void upload_mat(cuda_state *g, dmat *d, const wmat *w, uint64_t seed) {
    size_t bytes = (size_t)d->rows * d->row_bytes;
    if (g->opts.random_weights) {
        float scale = 1.0f / sqrtf((float)d->cols);
        crk_fill_random(d->raw, d->type, d->rows, d->cols, d->row_bytes, seed, scale * 1.7f, g->st);
        CUDA_LAUNCHED();
    } else if (w->row_bytes != d->row_bytes) {   /* a column slice: rows of d->row_bytes every w->row_bytes */
        CUDA_CHECK(cudaMemcpy2D(d->raw, d->row_bytes, w->data, w->row_bytes, d->row_bytes, (size_t)d->rows, cudaMemcpyHostToDevice));
    } else {
        CUDA_CHECK(cudaMemcpy(d->raw, w->data, bytes, cudaMemcpyHostToDevice));
    }
}

/* One allocation for a group of matrices (q|k|v, gate|up), so that a group of matrices
 * used as stored is one GEMM operand. */
static int alloc_group(alloc_ctx *ac, dmat *d, int n) {
    size_t tot = 0;
    for (int i = 0; i < n; i++) tot += (((size_t)d[i].rows * d[i].row_bytes) + 255) & ~(size_t)255;
    uint8_t *p = dalloc(ac, tot);
    if (!p) return -1;
    for (int i = 0; i < n; i++) { d[i].raw = p; p += (((size_t)d[i].rows * d[i].row_bytes) + 255) & ~(size_t)255; }
    return 0;
}

static float *upload_vec(alloc_ctx *ac, float **pool, const float *src, size_t n) {
    (void)ac;
    float *d = *pool;
    *pool += (n + 3) & ~(size_t)3;
    if (src) CUDA_CHECK(cudaMemcpy(d, src, n * 4, cudaMemcpyHostToDevice));
    return d;
}

cuda_state *cuda_state_create(const cr_model *m, const cascade_ctrl *ctrl, int max_L, char *err, size_t n) {
    cuda_opts o;
    cuda_opts_default(&o);
    return cuda_state_create_ex(m, ctrl, max_L, &o, err, n);
}

cuda_state *cuda_state_create_ex(const cr_model *m, const cascade_ctrl *ctrl, int max_L, const cuda_opts *opts, char *err, size_t errlen) {
    char dd[256];
    if (!cuda_device_info(dd, sizeof dd)) { snprintf(err, errlen, "CUDA: %s", dd); return NULL; }
    const hparams *hp = &m->hp;
    if (max_L < 1) { snprintf(err, errlen, "CUDA: stride must be at least 1"); return NULL; }
    if (hp->head_dim % 8 || hp->head_dim > 256) { snprintf(err, errlen, "CUDA: head dim %d unsupported (multiple of 8, at most 256)", hp->head_dim); return NULL; }
    cuda_state *g = calloc(1, sizeof *g);
    if (!g) { snprintf(err, errlen, "CUDA: out of host memory"); return NULL; }
    g->m = m; g->hp = *hp; g->cfg = ctrl->cfg; g->opts = *opts;
    g->S = ctrl->cfg.S; g->N = ctrl->cfg.N; g->C = ctrl->cfg.C; g->W = ctrl->W; g->max_L = max_L;
    g->qd = hp->n_head * hp->head_dim; g->kvd = hp->n_kv * hp->head_dim;
    g->wide = hp->ffn > hp->dim ? hp->ffn : hp->dim;
    if (g->qd > g->wide) g->wide = g->qd;
    const char *tm = getenv("CR_CUDA_TIMING");
    g->timing = tm && *tm == '1';
    CUDA_CHECK(cudaSetDevice(opts->device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&g->cb));
    CUBLAS_CHECK(cublasSetStream(g->cb, g->st));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->ev_stage, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreate(&g->ev0));
    CUDA_CHECK(cudaEventCreate(&g->ev1));

    const int nl = hp->n_layer, nkv = hp->n_kv, hd = hp->head_dim, S = g->S, N = g->N;
    const size_t Lm = (size_t)max_L;
    g->lw = calloc((size_t)nl * M_COUNT, sizeof *g->lw);
    g->qkv_res = calloc((size_t)nl, sizeof(void *));
    g->gu_res = calloc((size_t)nl, sizeof(void *));
    g->attn_norm = calloc((size_t)nl * 5, sizeof(float *));
    if (!g->lw || !g->qkv_res || !g->gu_res || !g->attn_norm) { snprintf(err, errlen, "CUDA: out of host memory"); cuda_state_free(g); return NULL; }
    g->ffn_norm = g->attn_norm + nl; g->bq = g->ffn_norm + nl; g->bk = g->bq + nl; g->bv = g->bk + nl;

    /* ---- plan the memory ---- */
    g->voff = opts->vocab_n ? opts->vocab_off : 0;
    g->vn = opts->vocab_n ? opts->vocab_n : hp->n_vocab;
    if (g->voff < 0 || g->vn < 1 || g->voff + g->vn > hp->n_vocab || m->tok_embd.rows != g->vn || m->output.rows != g->vn) {
        snprintf(err, errlen, "CUDA: vocabulary share [%d, %d) of %d with %lld / %lld matrix rows", g->voff, g->voff + g->vn, hp->n_vocab,
                 (long long)m->tok_embd.rows, (long long)m->output.rows);
        cuda_state_free(g);
        return NULL;
    }
    init_dmat(g, &g->tok, &m->tok_embd);
    g->out_shared = m->output.data == m->tok_embd.data && m->output.type == m->tok_embd.type;
    init_dmat(g, &g->out, &m->output);
    size_t raw_bytes = (size_t)g->tok.rows * g->tok.row_bytes + (g->out_shared ? 0 : (size_t)g->out.rows * g->out.row_bytes);
    size_t res_bytes = 0, wsp_need = 0;
    g->qkv_fuse = g->gu_fuse = 1;
    for (int l = 0; l < nl; l++) {
        size_t grp_qkv = 0, grp_gu = 0;
        for (int i = 0; i < M_COUNT; i++) {
            dmat *d = &g->lw[(size_t)l * M_COUNT + i];
            init_dmat(g, d, layer_wmat(&m->layers[l], i));
            raw_bytes += (size_t)d->rows * d->row_bytes;
            size_t ob = needs_operand(d) ? (size_t)d->rows * d->cols * op_elem(d) : 0;
            res_bytes += ob;
            if (i <= M_V) grp_qkv += (size_t)d->rows * d->cols * op_elem(d);
            else if (i <= M_UP && i >= M_GATE) grp_gu += (size_t)d->rows * d->cols * op_elem(d);
            else if ((size_t)d->rows * d->cols * op_elem(d) > wsp_need) wsp_need = (size_t)d->rows * d->cols * op_elem(d);
        }
        const dmat *q = &g->lw[(size_t)l * M_COUNT];
        int nq = needs_operand(&q[M_Q]) + needs_operand(&q[M_K]) + needs_operand(&q[M_V]);
        int ngu = needs_operand(&q[M_GATE]) + needs_operand(&q[M_UP]);
        if (!(q[M_Q].f32 == q[M_K].f32 && q[M_K].f32 == q[M_V].f32 && (nq == 0 || nq == 3))) g->qkv_fuse = 0;
        if (!(q[M_GATE].f32 == q[M_UP].f32 && (ngu == 0 || ngu == 2))) g->gu_fuse = 0;
        /* used as stored: fused only when the rows are contiguous in the group allocation */
        if (nq == 0 && ((size_t)q[M_Q].rows * q[M_Q].row_bytes % 256 || (size_t)q[M_K].rows * q[M_K].row_bytes % 256)) g->qkv_fuse = 0;
        if (ngu == 0 && (size_t)q[M_GATE].rows * q[M_GATE].row_bytes % 256) g->gu_fuse = 0;
        if (l == 0) g->qkv_mv = g->gu_mv = 1;
        if (!(q[M_Q].type == q[M_K].type && q[M_K].type == q[M_V].type && (size_t)q[M_Q].rows * q[M_Q].row_bytes % 256 == 0 &&
              (size_t)q[M_K].rows * q[M_K].row_bytes % 256 == 0)) g->qkv_mv = 0;
        if (!(q[M_GATE].type == q[M_UP].type && (size_t)q[M_GATE].rows * q[M_GATE].row_bytes % 256 == 0)) g->gu_mv = 0;
        if (grp_qkv > wsp_need) wsp_need = grp_qkv;
        if (grp_gu > wsp_need) wsp_need = grp_gu;
    }
    size_t out_op = needs_operand(&g->out) ? (size_t)g->out.rows * g->out.cols * op_elem(&g->out) : 0;
    res_bytes += out_op;
    if (out_op > wsp_need) wsp_need = out_op;

    g->cache_bytes = (size_t)nl * nkv * ((size_t)(S + N) * hd * 2 * 2 + (size_t)N * (4 + 8));
    size_t ops_cap = Lm * (size_t)g->C;
    g->U_max = (int)(ops_cap < (size_t)N ? ops_cap : (size_t)N);
    if (g->U_max < g->C) g->U_max = g->C < N ? g->C : N;
    size_t per_layer_stage = (size_t)nkv * g->U_max * ((size_t)hd * 4 + 8);
    g->stage_layers = nl;
    const size_t stage_budget = g->opts.stage_bytes ? g->opts.stage_bytes : (size_t)256 << 20;
    if ((size_t)nl * per_layer_stage > stage_budget) {
        g->stage_layers = (int)(stage_budget / (per_layer_stage ? per_layer_stage : 1));
        if (g->stage_layers < 1) g->stage_layers = 1;
    }
    g->r_stride = (size_t)S + N + Lm;
    size_t V = (size_t)g->vn;
    g->logits_rows = (int)(((size_t)64 << 20) / (4 * V));
    if (g->logits_rows < 1) g->logits_rows = 1;
    if (g->logits_rows > max_L) g->logits_rows = max_L;
    const int pairs = hp->rope_dim / 2;
    const int64_t rope_max = (int64_t)S + N + max_L + 1;
    const size_t work_f = crk_attn_work_floats(S, N, max_L, hp->n_head, hd);
    size_t nvec = 0;
    for (int l = 0; l < nl; l++) {
        nvec += 2 * (((size_t)hp->dim + 3) & ~(size_t)3);
        const layer_w *lw = &m->layers[l];
        if (lw->bq) nvec += ((size_t)g->qd + 3) & ~(size_t)3;
        if (lw->bk) nvec += ((size_t)g->kvd + 3) & ~(size_t)3;
        if (lw->bv) nvec += ((size_t)g->kvd + 3) & ~(size_t)3;
    }
    nvec += ((size_t)hp->dim + 3) & ~(size_t)3;
    const size_t qkvw = (size_t)g->qd + 2 * g->kvd;
    size_t scratch = 0;
    scratch += Lm * hp->dim * 4 * 2;                                     /* x, xb */
    scratch += Lm * qkvw * 4 + Lm * g->qd * 4 + Lm * 2 * hp->ffn * 4 + Lm * hp->ffn * 4;  /* qkv, att, gu, hb */
    scratch += Lm * g->wide * 2 + Lm * g->qd * 2 * 2 + Lm * hp->ffn * 2;  /* xb16, att16, q16, hb16 */
    scratch += ((size_t)g->wide / 32 + 1) * sizeof(crk_q8);
    scratch += work_f * 4 + (size_t)g->logits_rows * V * 4 + Lm * 8 + (size_t)N * 4 + 64;
    scratch += (size_t)nl * Lm * g->kvd * 2 * 2;                          /* k16, v16 */
    scratch += (size_t)nl * nkv * g->r_stride * 4;                       /* r */
    scratch += (size_t)nl * nkv * g->U_max * 4;                          /* src */
    if (g->U_max > crk_cascade_resolve_smem_max()) scratch += (size_t)nl * nkv * g->U_max * 8;
    scratch += (size_t)g->stage_layers * per_layer_stage;
    scratch += (size_t)rope_max * pairs * 3 * 4 + nvec * 4;   /* rope_cs and rope_cs16 */
    g->kv_rows = S + N + max_L + 64;
    const int want_fast = opts->attn != CUDA_ATTN_PRECISE && crk_attn_fast_ok(hd, pairs);
    if (want_fast) scratch += (size_t)nkv * g->kv_rows * hd * 2 * 2 + (size_t)g->kv_rows * 4;
    g->stage_bytes = layout_for(g, max_L).total;
    scratch += g->stage_bytes;

    size_t fr = 0, tot = 0;
    CUDA_CHECK(cudaMemGetInfo(&fr, &tot));
    const size_t margin = (size_t)1 << 30;
    size_t base = raw_bytes + g->cache_bytes + scratch;
    int resident;
    if (opts->weights == CUDA_WEIGHTS_RESIDENT) resident = 1;
    else if (opts->weights == CUDA_WEIGHTS_STREAM) resident = 0;
    else resident = base + res_bytes + margin <= fr;
    size_t need = base + (resident ? res_bytes : wsp_need);
    if (need + (margin >> 2) > fr) {
        snprintf(err, errlen,
                 "out of GPU memory: the state needs %.2f GiB (weights %.2f GiB, cache %.2f GiB for %d layers x %d KV heads x (S+N = %d) slots, "
                 "chunk buffers %.2f GiB for stride %d) but only %.2f GiB of %.2f GiB are free; try a smaller --cache (or stride)",
                 need / 1073741824.0, (raw_bytes + (resident ? res_bytes : wsp_need)) / 1073741824.0, g->cache_bytes / 1073741824.0,
                 nl, nkv, S + N, scratch / 1073741824.0, max_L, fr / 1073741824.0, tot / 1073741824.0);
        cuda_state_free(g);
        return NULL;
    }
    g->resident = resident;
    g->slot_map = malloc(sizeof(int32_t) * (size_t)N);
    if (!g->slot_map) { snprintf(err, errlen, "CUDA: out of host memory"); cuda_state_free(g); return NULL; }
    for (int i = 0; i < N; i++) g->slot_map[i] = -1;

    /* ---- allocate ---- */
    alloc_ctx ac = {0, 0};
    g->sink_k = dalloc(&ac, (size_t)nl * nkv * S * hd * 2);
    g->sink_v = dalloc(&ac, (size_t)nl * nkv * S * hd * 2);
    g->ck = dalloc(&ac, (size_t)nl * nkv * N * hd * 2);
    g->cv = dalloc(&ac, (size_t)nl * nkv * N * hd * 2);
    g->score = dalloc(&ac, (size_t)nl * nkv * N * 4);
    g->og = dalloc(&ac, (size_t)nl * nkv * N * 8);
    g->k16 = dalloc(&ac, (size_t)nl * Lm * g->kvd * 2);
    g->v16 = dalloc(&ac, (size_t)nl * Lm * g->kvd * 2);
    g->r = dalloc(&ac, (size_t)nl * nkv * g->r_stride * 4);
    g->x = dalloc(&ac, Lm * hp->dim * 4);
    g->xb = dalloc(&ac, Lm * g->wide * 4);
    g->qkv = dalloc(&ac, Lm * qkvw * 4);
    g->att = dalloc(&ac, Lm * g->qd * 4);
    g->gu = dalloc(&ac, Lm * 2 * hp->ffn * 4);
    g->hb = dalloc(&ac, Lm * hp->ffn * 4);
    g->xb16 = dalloc(&ac, Lm * g->wide * 2);
    g->att16 = dalloc(&ac, Lm * g->qd * 2);
    g->q16 = dalloc(&ac, Lm * g->qd * 2);
    g->hb16 = dalloc(&ac, Lm * hp->ffn * 2);
    g->xq = dalloc(&ac, ((size_t)g->wide / 32 + 1) * sizeof(crk_q8));
    g->work = dalloc(&ac, work_f * 4);
    g->logits = dalloc(&ac, (size_t)g->logits_rows * V * 4);
    g->nll = dalloc(&ac, Lm * 8);   /* [Lm] NLLs, or [Lm][2] crk_nll_part pairs */
    g->slot_pos = dalloc(&ac, (size_t)N * 4);
    g->steps = dalloc(&ac, (1 + CRK_DEC_LIST_CAP) * 4);
    g->d_argmax = dalloc(&ac, 16);
    g->src = dalloc(&ac, (size_t)nl * nkv * g->U_max * 4);
    if (g->U_max > crk_cascade_resolve_smem_max()) g->rscratch = dalloc(&ac, (size_t)nl * nkv * g->U_max * 8);
    g->stage_k = dalloc(&ac, (size_t)g->stage_layers * nkv * g->U_max * hd * 2);
    g->stage_v = dalloc(&ac, (size_t)g->stage_layers * nkv * g->U_max * hd * 2);
    g->stage_og = dalloc(&ac, (size_t)g->stage_layers * nkv * g->U_max * 8);
    g->rope_cs = dalloc(&ac, (size_t)rope_max * pairs * 2 * 4);
    g->rope_cs16 = dalloc(&ac, (size_t)rope_max * pairs * 4);
    g->vecs = dalloc(&ac, nvec * 4 + 16);
    g->d_stage = dalloc(&ac, g->stage_bytes);
    if (want_fast) {
        g->kbuf = dalloc(&ac, (size_t)nkv * g->kv_rows * hd * 2);
        g->vbuf = dalloc(&ac, (size_t)nkv * g->kv_rows * hd * 2);
        g->kdst = dalloc(&ac, (size_t)g->kv_rows * 4);
        if (g->kbuf && g->vbuf) {
            CUDA_CHECK(cudaMemset(g->kbuf, 0, (size_t)nkv * g->kv_rows * hd * 2));
            CUDA_CHECK(cudaMemset(g->vbuf, 0, (size_t)nkv * g->kv_rows * hd * 2));
        }
    }
    if (!ac.oom) {
        g->tok.raw = dalloc(&ac, (size_t)g->tok.rows * g->tok.row_bytes);
        if (g->tok.raw) upload_mat(g, &g->tok, &m->tok_embd, opts->seed * 1000003u + 1);
        if (g->out_shared) g->out.raw = g->tok.raw;
        else if (!ac.oom && g->out.rows) {
            g->out.raw = dalloc(&ac, (size_t)g->out.rows * g->out.row_bytes);
            if (g->out.raw) upload_mat(g, &g->out, &m->output, opts->seed * 1000003u + 2);
        }
        for (int l = 0; l < nl && !ac.oom; l++) {
            dmat *d = &g->lw[(size_t)l * M_COUNT];
            if (alloc_group(&ac, &d[M_Q], 3) || alloc_group(&ac, &d[M_GATE], 2) || alloc_group(&ac, &d[M_O], 1) || alloc_group(&ac, &d[M_DOWN], 1)) break;
            for (int i = 0; i < M_COUNT; i++) upload_mat(g, &d[i], layer_wmat(&m->layers[l], i), opts->seed * 1000003u + 16 + (uint64_t)l * 8 + i);
        }
    }
    /* GEMM operands: resident copies (fused per group), or one streaming workspace */
    if (!ac.oom && resident) {
        for (int l = 0; l < nl && !ac.oom; l++) {
            dmat *d = &g->lw[(size_t)l * M_COUNT];
            if (g->qkv_fuse && needs_operand(&d[M_Q])) {
                size_t e = op_elem(&d[M_Q]);
                size_t tot_el = (size_t)(d[M_Q].rows + d[M_K].rows + d[M_V].rows) * d[M_Q].cols;
                uint8_t *p = dalloc(&ac, tot_el * e);
                if (!p) break;
                g->qkv_res[l] = p;
                for (int i = M_Q; i <= M_V; i++) { d[i].res = p; p += (size_t)d[i].rows * d[i].cols * e; }
            }
            if (g->gu_fuse && needs_operand(&d[M_GATE])) {
                size_t e = op_elem(&d[M_GATE]);
                size_t tot_el = (size_t)(d[M_GATE].rows + d[M_UP].rows) * d[M_GATE].cols;
                uint8_t *p = dalloc(&ac, tot_el * e);
                if (!p) break;
                g->gu_res[l] = p;
                for (int i = M_GATE; i <= M_UP; i++) { d[i].res = p; p += (size_t)d[i].rows * d[i].cols * e; }
            }
            for (int i = 0; i < M_COUNT; i++) {
                if (d[i].res || !needs_operand(&d[i])) continue;
                d[i].res = dalloc(&ac, (size_t)d[i].rows * d[i].cols * op_elem(&d[i]));
                if (!d[i].res) break;
            }
            for (int i = 0; i < M_COUNT && !ac.oom; i++) {
                if (!d[i].res) continue;
                crk_dequant(d[i].raw, d[i].type, d[i].rows, d[i].cols, d[i].row_bytes, d[i].res, !d[i].f32, g->st);
                CUDA_LAUNCHED();
            }
        }
        if (!ac.oom && g->out.rows && needs_operand(&g->out)) {
            g->out.res = dalloc(&ac, (size_t)g->out.rows * g->out.cols * op_elem(&g->out));
            if (g->out.res) { crk_dequant(g->out.raw, g->out.type, g->out.rows, g->out.cols, g->out.row_bytes, g->out.res, !g->out.f32, g->st); CUDA_LAUNCHED(); }
        }
    } else if (!ac.oom) {
        g->wsp_bytes = wsp_need;
        g->wsp = dalloc(&ac, wsp_need);
    }
    if (ac.oom) {
        size_t fr2 = 0, tot2 = 0;
        cudaMemGetInfo(&fr2, &tot2);
        snprintf(err, errlen,
                 "out of GPU memory: allocating the state (%.2f GiB planned, cache %.2f GiB for S+N = %d slots) failed after %.2f GiB; "
                 "%.2f GiB of %.2f GiB free now; try a smaller --cache (or stride)",
                 need / 1073741824.0, g->cache_bytes / 1073741824.0, S + N, ac.bytes / 1073741824.0, fr2 / 1073741824.0, tot2 / 1073741824.0);
        cuda_state_free(g);
        return NULL;
    }
    g->dev_bytes = ac.bytes;
    /* vectors */
    float *pool = g->vecs;
    for (int l = 0; l < nl; l++) {
        const layer_w *lw = &m->layers[l];
        g->attn_norm[l] = upload_vec(&ac, &pool, lw->attn_norm, (size_t)hp->dim);
        g->ffn_norm[l] = upload_vec(&ac, &pool, lw->ffn_norm, (size_t)hp->dim);
        g->bq[l] = lw->bq ? upload_vec(&ac, &pool, lw->bq, (size_t)g->qd) : NULL;
        g->bk[l] = lw->bk ? upload_vec(&ac, &pool, lw->bk, (size_t)g->kvd) : NULL;
        g->bv[l] = lw->bv ? upload_vec(&ac, &pool, lw->bv, (size_t)g->kvd) : NULL;
    }
    g->out_norm = upload_vec(&ac, &pool, m->out_norm, (size_t)hp->dim);
    /* RoPE table: the same float arithmetic as state_init() of forward_cpu.c */
    {
        size_t nrc = (size_t)rope_max * pairs * 2;
        float *h = malloc(nrc * 4);
        if (!h) { snprintf(err, errlen, "CUDA: out of host memory"); cuda_state_free(g); return NULL; }
        for (int64_t p = 0; p < rope_max; p++)
            for (int i = 0; i < pairs; i++) {
                float th = (float)p * hp->rope_inv_freq[i];
                h[((size_t)p * pairs + i) * 2] = cosf(th);
                h[((size_t)p * pairs + i) * 2 + 1] = sinf(th);
            }
        CUDA_CHECK(cudaMemcpy(g->rope_cs, h, nrc * 4, cudaMemcpyHostToDevice));
        crk_rope_cs16(g->rope_cs, nrc / 2, g->rope_cs16, 0);
        CUDA_LAUNCHED();
        free(h);
    }
    CUDA_CHECK(cudaMallocHost((void **)&g->h_stage, g->stage_bytes));
    CUDA_CHECK(cudaMallocHost((void **)&g->h_logits, V < 2 ? 8 : V * 4));   /* or an NLL pair */
    CUDA_CHECK(cudaMallocHost((void **)&g->h_argmax, 16));
    /* attention path */
    int all_f32 = 1;
    for (int l = 0; l < nl; l++)
        for (int i = 0; i < M_COUNT; i++) if (!g->lw[(size_t)l * M_COUNT + i].f32) all_f32 = 0;
    if (opts->attn == CUDA_ATTN_PRECISE) g->attn_mode = CRK_ATTN_PRECISE;
    else if (opts->attn == CUDA_ATTN_FAST) g->attn_mode = CRK_ATTN_FAST;
    else g->attn_mode = all_f32 ? CRK_ATTN_PRECISE : CRK_ATTN_AUTO;
    int fast = g->kbuf && g->attn_mode != CRK_ATTN_PRECISE && crk_attn_fast_ok(hd, pairs);
    cuda_state_reset(g);
    CUDA_CHECK(cudaDeviceSynchronize());
    struct cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, opts->device));
    snprintf(g->desc, sizeof g->desc, "%s: weights %s (%.2f GiB on the GPU), GEMM %s, attention %s, cache %.2f GiB",
             p.name, resident ? "resident bf16" : "streamed per layer", g->dev_bytes / 1073741824.0,
             all_f32 ? "fp32" : g->opts.gemm == CUDA_GEMM_FP32 ? "fp32" : "bf16/fp32-accumulate",
             fast ? "tensor cores (fp16)" : "fp32", g->cache_bytes / 1073741824.0);
    return g;
}

void cuda_state_free(cuda_state *g) {
    if (!g) return;
    cudaSetDevice(g->opts.device);
    for (int i = 0; i < 3 * N_OUT_MODES; i++) if (g->gexec[i]) cudaGraphExecDestroy(g->gexec[i]);
    if (g->lw) {
        for (int l = 0; l < g->hp.n_layer; l++) {
            for (int i = 0; i < M_COUNT; i++) {
                dmat *d = &g->lw[(size_t)l * M_COUNT + i];
                if (i == M_Q || i == M_O || i == M_GATE || i == M_DOWN) cudaFree(d->raw);   /* group allocations */
                int fused = (i <= M_V && g->qkv_res && g->qkv_res[l]) || ((i == M_GATE || i == M_UP) && g->gu_res && g->gu_res[l]);
                if (!fused) cudaFree(d->res);
            }
            if (g->qkv_res) cudaFree(g->qkv_res[l]);
            if (g->gu_res) cudaFree(g->gu_res[l]);
        }
    }
    cudaFree(g->tok.raw);
    if (!g->out_shared) cudaFree(g->out.raw);
    cudaFree(g->out.res);
    void *bufs[] = {g->wsp, g->vecs, g->rope_cs, g->rope_cs16, g->sink_k, g->sink_v, g->ck, g->cv, g->score, g->og, g->k16, g->v16, g->r,
                    g->x, g->xb, g->qkv, g->att, g->gu, g->hb, g->work, g->logits, g->nll, g->xb16, g->att16, g->hb16, g->q16,
                    g->xq, g->slot_pos, g->steps, g->d_argmax, g->src, g->rscratch, g->stage_k, g->stage_v, g->stage_og, g->d_stage,
                    g->kbuf, g->vbuf, g->kdst, g->probe};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    if (g->h_stage) cudaFreeHost(g->h_stage);
    if (g->h_logits) cudaFreeHost(g->h_logits);
    if (g->h_argmax) cudaFreeHost(g->h_argmax);
    if (g->ev_stage) cudaEventDestroy(g->ev_stage);
    if (g->ev0) cudaEventDestroy(g->ev0);
    if (g->ev1) cudaEventDestroy(g->ev1);
    if (g->cb) cublasDestroy(g->cb);
    if (g->st) cudaStreamDestroy(g->st);
    free(g->lw); free(g->qkv_res); free(g->gu_res); free(g->attn_norm); free(g->slot_map);
    free(g);
}

void cuda_state_reset(cuda_state *g) {
    CUDA_CHECK(cudaSetDevice(g->opts.device));
    const size_t nh = (size_t)g->hp.n_layer * g->hp.n_kv, hd = (size_t)g->hp.head_dim;
    if (g->S) {
        CUDA_CHECK(cudaMemsetAsync(g->sink_k, 0, nh * g->S * hd * 2, g->st));
        CUDA_CHECK(cudaMemsetAsync(g->sink_v, 0, nh * g->S * hd * 2, g->st));
    }
    CUDA_CHECK(cudaMemsetAsync(g->ck, 0, nh * g->N * hd * 2, g->st));
    CUDA_CHECK(cudaMemsetAsync(g->cv, 0, nh * g->N * hd * 2, g->st));
    CUDA_CHECK(cudaMemsetAsync(g->score, 0, nh * g->N * 4, g->st));
    CUDA_CHECK(cudaMemsetAsync(g->og, 0xFF, nh * g->N * 8, g->st));
}

/* ---- GEMM: Y[T][ldc] = alpha X[T][K] . W^T + beta Y ---- */
static void gemm_raw(cuda_state *g, const void *A, int f32, int64_t M, int64_t K, const void *X, int T, float *Y, int64_t ldc, float beta) {
    const float alpha = 1.0f;
    if (f32) {
        CUBLAS_CHECK(cublasSgemm(g->cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)M, T, (int)K, &alpha, (const float *)A, (int)K,
                                 (const float *)X, (int)K, &beta, Y, (int)ldc));
    } else {
        CUBLAS_CHECK(cublasGemmEx(g->cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)M, T, (int)K, &alpha, A, CUDA_R_16BF, (int)K,
                                  X, CUDA_R_16BF, (int)K, &beta, Y, CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
}

/* Operand of one matrix: raw F32, resident copy, or dequantized into wsp + off. */
static const void *operand(cuda_state *g, const dmat *d, size_t off) {
    if (!needs_operand(d)) return d->raw;
    if (d->res) return d->res;
    void *p = (uint8_t *)g->wsp + off;
    crk_dequant(d->raw, d->type, d->rows, d->cols, d->row_bytes, p, !d->f32, g->st);
    CUDA_LAUNCHED();
    return p;
}

/* A group of matrices sharing the input (q,k,v or gate,up) into Y with row offsets. */
static void gemm_group(cuda_state *g, const dmat *ds, int n, int fuse, const float *X32, const uint16_t *X16, int T, float *Y, int64_t ldc, float beta) {
    if (fuse) {
        size_t off = 0;
        int64_t M = 0;
        const void *A0 = NULL;
        for (int i = 0; i < n; i++) {
            const void *a = operand(g, &ds[i], off);
            if (i == 0) A0 = a;
            off += (size_t)ds[i].rows * ds[i].cols * op_elem(&ds[i]);
            M += ds[i].rows;
        }
        gemm_raw(g, A0, ds[0].f32, M, ds[0].cols, ds[0].f32 ? (const void *)X32 : (const void *)X16, T, Y, ldc, beta);
        return;
    }
    int64_t roff = 0;
    for (int i = 0; i < n; i++) {
        const void *a = operand(g, &ds[i], 0);
        gemm_raw(g, a, ds[i].f32, ds[i].rows, ds[i].cols, ds[i].f32 ? (const void *)X32 : (const void *)X16, T, Y + roff, ldc, beta);
        roff += ds[i].rows;
    }
}

/* y (+)= W x for one token (decode): quantized matrices use the q8 activations in xq. */
static void matvec(cuda_state *g, const dmat *d, const float *x, int have_q8, float *y, int acc) {
    (void)have_q8;
    crk_matvec(d->raw, d->type, d->rows, d->cols, d->row_bytes, x, g->xq, y, acc, g->st);
    CUDA_LAUNCHED();
}
/* chunks: the f32 copy of a GEMM input is needed only for fp32 matrices (else the bf16 one) */
static int any_f32(const dmat *ds, int n) {
    static int old = -1;   /* benchmarks: CRK_CHUNK_F32COPY=1 writes the f32 copies anyway (as before session 12) */
    if (old < 0) old = getenv("CRK_CHUNK_F32COPY") && atoi(getenv("CRK_CHUNK_F32COPY"));
    if (old) return 1;
    for (int i = 0; i < n; i++) if (ds[i].f32) return 1;
    return 0;
}
static int any_q8(const dmat *ds, int n) {
    for (int i = 0; i < n; i++) if (quant_uses_q8(ds[i].type)) return 1;
    return 0;
}

static void final_logits_row(cuda_state *g, const float *xrow) {
    const hparams *hp = &g->hp;
    crk_rmsnorm(xrow, g->out_norm, 1, hp->dim, hp->eps, g->xb, NULL, quant_uses_q8(g->out.type) ? g->xq : NULL, g->st);
    CUDA_LAUNCHED();
    matvec(g, &g->out, g->xb, 1, g->logits, 0);
}

/* one matvec over the contiguous stored rows of a group (same type), or one per matrix */
static void matvec_group(cuda_state *g, const dmat *ds, int n, int fused, const float *x, float *y) {
    if (fused) {
        int64_t rows = 0;
        for (int i = 0; i < n; i++) rows += ds[i].rows;
        crk_matvec(ds[0].raw, ds[0].type, rows, ds[0].cols, ds[0].row_bytes, x, g->xq, y, 0, g->st);
        CUDA_LAUNCHED();
        return;
    }
    int64_t off = 0;
    for (int i = 0; i < n; i++) { matvec(g, &ds[i], x, 1, y + off, 0); off += ds[i].rows; }
}

/* Tensor parallelism: x[L][dim] summed over the ranks in place. */
static void tp_allreduce(cuda_state *g, int L) {
    if (!g->opts.allreduce) return;
    if (g->opts.allreduce(g->opts.tp_ctx, g->opts.tp_rank, g->x, (size_t)L * g->hp.dim, (void *)g->st)) {
        fprintf(stderr, "%s:%d: tensor-parallel all-reduce failed (rank %d)\n", __FILE__, __LINE__, g->opts.tp_rank);
        abort();
    }
}

/* Decode's SwiGLU in the gate|up kernel (crk_matvec_glu) with CRK_GLU=1: off by default
 * until it has been measured on a GPU */
static int glu_on(void) {
    static int v = -1;
    if (v < 0) v = getenv("CRK_GLU") && atoi(getenv("CRK_GLU")) == 1;
    return v;
}
/* The nearly empty cache's decode attention: 1 (default) walks the list of steps with a
 * valid key (crk_attn.skip_empty = 3); CRK_DRD_LIST=0 (benchmarks) the blocks' steps as
 * before session 13 (skip_empty = 2) */
static int dec_list(void) {
    static int v = -1;
    if (v < 0) v = !(getenv("CRK_DRD_LIST") && atoi(getenv("CRK_DRD_LIST")) == 0);
    return v;
}

/* Everything of one chunk after the staging upload (also what a decode graph captures).
 * sparse: 1 when the cache has unfilled sinks or slots, 2 when it holds at most 1/16 of its
 * keys in at most CRK_DEC_LIST_CAP 16-key steps (crk_attn.skip_empty: decode attention
 * variants; decode graphs are kept per value). */
static void enqueue(cuda_state *g, int L, int out_mode, const stage_layout *lay, int U_bound, int sparse, float *out_host_all) {
    const hparams *hp = &g->hp;
    const int dim = hp->dim, hd = hp->head_dim, nkv = hp->n_kv, ffn = hp->ffn;
    const int qd = g->qd, kvd = g->kvd, qkvw = qd + 2 * kvd;
    const crk_step *dst = (const crk_step *)(g->d_stage + lay->step);
    const float *dw = (const float *)(g->d_stage + lay->w);
    const int32_t *dtok = (const int32_t *)(g->d_stage + lay->tok);
    const int32_t *dtgt = (const int32_t *)(g->d_stage + lay->tgt);
    const int32_t *dtfo = (const int32_t *)(g->d_stage + lay->tfo);
    const int32_t *dops = (const int32_t *)(g->d_stage + lay->ops);
    const int32_t *dtouched = (const int32_t *)(g->d_stage + lay->touched);
    const int32_t *dsinks = (const int32_t *)(g->d_stage + lay->sinks);
    const int decode = L == 1;
    const int fast_attn = !decode && g->kbuf && g->attn_mode != CRK_ATTN_PRECISE && crk_attn_fast_ok(hd, hp->rope_dim / 2);
    const int acc = g->opts.tp_rank == 0;   /* the row-parallel products: add to the residual, or (ranks > 0) replace it */
    const int skip = decode ? g->bench_skip : 0;

    crk_slot_pos(dst, g->N, g->slot_pos, g->st); CUDA_LAUNCHED();
    const int listed = decode && sparse == 2 && dec_list();
    if (listed) { crk_step_list(dst, g->steps, CRK_DEC_LIST_CAP, g->st); CUDA_LAUNCHED(); }
    crk_embed(g->tok.raw, g->tok.type, g->tok.row_bytes, dim, dtok, L, g->voff, g->vn, g->x, g->st); CUDA_LAUNCHED();
    if (g->vn < hp->n_vocab) tp_allreduce(g, L);   /* each rank embedded its share's tokens */
    for (int l = 0; l < hp->n_layer; l++) {
        const dmat *W = &g->lw[(size_t)l * M_COUNT];
        uint16_t *k16 = g->k16 + (size_t)l * g->max_L * kvd, *v16 = g->v16 + (size_t)l * g->max_L * kvd;
        float *r = g->r + (size_t)l * nkv * g->r_stride;
        /* attention block */
        if (decode) {
            if (!(skip & CUDA_SKIP_NORM)) { crk_rmsnorm(g->x, g->attn_norm[l], 1, dim, hp->eps, g->xb, NULL, any_q8(W, 3) ? g->xq : NULL, g->st); CUDA_LAUNCHED(); }
            if (!(skip & CUDA_SKIP_MATVEC)) matvec_group(g, &W[M_Q], 3, g->qkv_mv, g->xb, g->qkv);
        } else {
            crk_rmsnorm(g->x, g->attn_norm[l], L, dim, hp->eps, any_f32(W, 3) ? g->xb : NULL, g->xb16, NULL, g->st); CUDA_LAUNCHED();
            gemm_group(g, &W[M_Q], 3, g->qkv_fuse, g->xb, g->xb16, L, g->qkv, qkvw, 0.0f);
        }
        crk_qkv_args qa = {
            .qkv = g->qkv, .ld = qkvw, .bq = g->bq[l], .bk = g->bk[l], .bv = g->bv[l],
            .L = L, .n_head = hp->n_head, .n_kv = nkv, .hd = hd, .rope_pairs = hp->rope_dim / 2, .neox = hp->rope_neox,
            .rope_cs = g->rope_cs, .st = dst, .k16 = k16, .v16 = v16, .q16 = fast_attn ? g->q16 : NULL,
        };
        crk_attn aa = {
            .L = L, .n_head = hp->n_head, .n_kv = nkv, .hd = hd, .rope_pairs = hp->rope_dim / 2, .neox = hp->rope_neox,
            .S = g->S, .N = g->N, .st = dst, .rope_cs = g->rope_cs, .rope_cs16 = g->rope_cs16, .slot_pos = g->slot_pos,
            .sink_k = g->sink_k + (size_t)l * nkv * g->S * hd, .sink_v = g->sink_v + (size_t)l * nkv * g->S * hd,
            .ck = g->ck + (size_t)l * nkv * g->N * hd, .cv = g->cv + (size_t)l * nkv * g->N * hd,
            .q = g->qkv, .q_stride = (size_t)qkvw, .q16 = fast_attn ? g->q16 : NULL,
            .kc = k16, .vc = v16, .kv_stride = (size_t)kvd, .w = dw,
            .out = g->att, .out16 = (!decode && !W[M_O].f32) ? g->att16 : NULL, .out_stride = (size_t)qd,
            .out_q8 = decode && quant_uses_q8(W[M_O].type) ? g->xq : NULL,
            .r = r, .r_stride = g->r_stride, .work = g->work, .mode = g->attn_mode,
            .kbuf = g->kbuf, .vbuf = g->vbuf, .kdst = g->kdst, .kv_rows = g->kv_rows,
            .probe = decode && g->probe_on && l >= g->probe_l0 && l < g->probe_l1 ? g->probe : NULL,
            .og = g->og + (size_t)l * nkv * g->N, .skip_empty = !decode ? 0 : listed ? 3 : sparse,
            .steps = listed ? g->steps : NULL,
        };
        if (decode && crk_attn_decode_fuses_qkv(&aa)) {   /* the attention post-processes q/k/v itself */
            aa.fuse_qkv = 1;
            aa.bq = g->bq[l]; aa.bk = g->bk[l]; aa.bv = g->bv[l];
            aa.kraw = g->qkv + qd; aa.vraw = g->qkv + qd + kvd;
        } else if (!(skip & CUDA_SKIP_ATTN)) {
            crk_qkv_post(&qa, g->st); CUDA_LAUNCHED();
        }
        if (decode) { if (!(skip & CUDA_SKIP_ATTN)) crk_attn_decode(&aa, g->st); }
        else crk_attn_chunk(&aa, g->st);
        CUDA_LAUNCHED();
        if (decode) {
            if (!(skip & CUDA_SKIP_MATVEC)) matvec(g, &W[M_O], g->att, 1, g->x, acc);   /* q8 of att written by the attention */
        } else {
            gemm_group(g, &W[M_O], 1, 0, g->att, g->att16, L, g->x, dim, (float)acc);
        }
        tp_allreduce(g, L);
        /* feed-forward block */
        if (decode) {
            if (!(skip & CUDA_SKIP_NORM)) { crk_rmsnorm(g->x, g->ffn_norm[l], 1, dim, hp->eps, g->xb, NULL, any_q8(&W[M_GATE], 2) ? g->xq : NULL, g->st); CUDA_LAUNCHED(); }
            /* CRK_GLU=1 (session 13, not yet run on a GPU): 16-bit gate|up rows with SwiGLU in
             * their epilogue, one kernel instead of two (a 16-bit down reads no q8 blocks) */
            const int glu = glu_on() && g->gu_mv && !quant_uses_q8(W[M_DOWN].type) && !(skip & CUDA_SKIP_MATVEC) &&
                            crk_matvec_glu(W[M_GATE].raw, W[M_GATE].type, ffn, W[M_GATE].cols, W[M_GATE].row_bytes, g->xb, g->hb, g->st) == 0;
            if (glu) CUDA_LAUNCHED();
            else {
                if (!(skip & CUDA_SKIP_MATVEC)) matvec_group(g, &W[M_GATE], 2, g->gu_mv, g->xb, g->gu);
                if (!(skip & CUDA_SKIP_SWIGLU)) { crk_swiglu(g->gu, 1, ffn, g->hb, NULL, quant_uses_q8(W[M_DOWN].type) ? g->xq : NULL, g->st); CUDA_LAUNCHED(); }
            }
            if (!(skip & CUDA_SKIP_MATVEC)) matvec(g, &W[M_DOWN], g->hb, 1, g->x, acc);
        } else {
            crk_rmsnorm(g->x, g->ffn_norm[l], L, dim, hp->eps, any_f32(&W[M_GATE], 2) ? g->xb : NULL, g->xb16, NULL, g->st); CUDA_LAUNCHED();
            gemm_group(g, &W[M_GATE], 2, g->gu_fuse, g->xb, g->xb16, L, g->gu, 2 * ffn, 0.0f);
            crk_swiglu(g->gu, L, ffn, any_f32(&W[M_DOWN], 1) ? g->hb : NULL, W[M_DOWN].f32 ? NULL : g->hb16, NULL, g->st); CUDA_LAUNCHED();
            gemm_group(g, &W[M_DOWN], 1, 0, g->hb, g->hb16, L, g->x, dim, (float)acc);
        }
        tp_allreduce(g, L);
    }
    /* cascade update of every (layer, KV head) */
    if (!(skip & CUDA_SKIP_UPDATE)) {
        crk_resolve_args ra = {
            .n_layer = hp->n_layer, .n_kv = nkv, .S = g->S, .N = g->N, .L = L, .U_max = U_bound, .st = dst,
            .slot_pos = g->slot_pos, .tfo = dtfo, .ops = dops, .touched = dtouched,
            .r = g->r, .r_stride = g->r_stride, .r_layer_stride = (size_t)nkv * g->r_stride,
            .score = g->score, .src = g->src, .scratch = g->rscratch,
        };
        crk_cascade_resolve(&ra, g->st); CUDA_LAUNCHED();
        /* the staging holds stage_layers layers of U_max slots: a step touching at most U_bound
         * slots (decode: C) moves that many more layers at once (8B decode: all 32 layers in one
         * gather and one scatter instead of 11 of each) */
        const size_t lpm_fit = (size_t)g->stage_layers * g->U_max / (size_t)(U_bound > 0 ? U_bound : 1);
        const int lpm = lpm_fit < (size_t)hp->n_layer ? (int)lpm_fit : hp->n_layer;
        for (int l0 = 0; l0 < hp->n_layer; l0 += lpm) {
            crk_move_args ma = {
                .l0 = l0, .l1 = imin(hp->n_layer, l0 + lpm), .n_kv = nkv, .S = g->S, .N = g->N, .hd = hd,
                .U_max = U_bound, .st = dst, .touched = dtouched, .src = g->src, .sink_ops = dsinks,
                .k16 = g->k16, .v16 = g->v16, .kv_layer_stride = (size_t)g->max_L * kvd,
                .ck = g->ck, .cv = g->cv, .sink_k = g->sink_k, .sink_v = g->sink_v, .og = g->og,
                .stage_k = g->stage_k, .stage_v = g->stage_v, .stage_og = g->stage_og,
            };
            crk_cascade_move(&ma, g->st); CUDA_LAUNCHED();
        }
    }
    /* outputs (of this state's share of the vocabulary) */
    const size_t V = (size_t)g->vn;
    const int part = g->vn < hp->n_vocab;
    if (out_mode == CR_OUT_NONE) return;
    if (out_mode == CR_OUT_LAST || out_mode == CUDA_OUT_ARGMAX || decode) {
        final_logits_row(g, g->x + (size_t)(L - 1) * dim);
        if (out_mode == CUDA_OUT_ARGMAX) {
            crk_argmax(g->logits, (int)V, g->d_argmax, (float *)(g->d_argmax + 1), g->st); CUDA_LAUNCHED();
            CUDA_CHECK(cudaMemcpyAsync(g->h_argmax, g->d_argmax, 8, cudaMemcpyDeviceToHost, g->st));
        } else if (out_mode == CR_OUT_NLL) {
            if (part) crk_nll_part(g->logits, 1, (int)V, dtgt, g->voff, g->nll, g->st);
            else crk_nll(g->logits, 1, (int)V, dtgt, g->nll, g->st);
            CUDA_LAUNCHED();
            CUDA_CHECK(cudaMemcpyAsync(g->h_logits, g->nll, 8, cudaMemcpyDeviceToHost, g->st));
        } else {
            CUDA_CHECK(cudaMemcpyAsync(g->h_logits, g->logits, V * 4, cudaMemcpyDeviceToHost, g->st));
        }
        return;
    }
    /* ALL / NLL for a chunk: blocks of logits_rows rows through a GEMM */
    crk_rmsnorm(g->x, g->out_norm, L, dim, hp->eps, any_f32(&g->out, 1) ? g->xb : NULL, g->xb16, NULL, g->st); CUDA_LAUNCHED();
    for (int t0 = 0; t0 < L; t0 += g->logits_rows) {
        int nr = imin(g->logits_rows, L - t0);
        gemm_group(g, &g->out, 1, 0, g->xb + (size_t)t0 * dim, g->xb16 + (size_t)t0 * dim, nr, g->logits, (int64_t)V, 0.0f);
        if (out_mode == CR_OUT_ALL)
            CUDA_CHECK(cudaMemcpy2DAsync(out_host_all + (size_t)t0 * hp->n_vocab + g->voff, (size_t)hp->n_vocab * 4, g->logits, V * 4,
                                         V * 4, (size_t)nr, cudaMemcpyDeviceToHost, g->st));
        else if (part) { crk_nll_part(g->logits, nr, (int)V, dtgt + t0, g->voff, g->nll + 2 * (size_t)t0, g->st); CUDA_LAUNCHED(); }
        else { crk_nll(g->logits, nr, (int)V, dtgt + t0, g->nll + t0, g->st); CUDA_LAUNCHED(); }
    }
}

static int mode_index(int out_mode) {
    switch (out_mode) {
    case CR_OUT_NONE: return 0; case CR_OUT_LAST: return 1; case CR_OUT_ALL: return 2; case CR_OUT_NLL: return 3;
    default: return 4;
    }
}

int cuda_forward(cuda_state *g, const cascade_ctrl *pre, const cascade_plan *plan, const int32_t *tok, int L,
                 int out_mode, const int32_t *targets, float *out, char *err, size_t errlen) {
    const hparams *hp = &g->hp;
    CUDA_CHECK(cudaSetDevice(g->opts.device));   /* the calling thread's current device */
    if (L < 1 || L > g->max_L) { snprintf(err, errlen, "chunk of %d tokens (stride is %d)", L, g->max_L); return -1; }
    if (!plan || plan->L != L) { snprintf(err, errlen, "CUDA: plan of %d tokens for a chunk of %d", plan ? plan->L : -1, L); return -1; }
    if (out_mode != CR_OUT_NONE && out_mode != CR_OUT_LAST && out_mode != CR_OUT_ALL && out_mode != CR_OUT_NLL && out_mode != CUDA_OUT_ARGMAX) {
        snprintf(err, errlen, "CUDA: unknown output mode %d", out_mode); return -1;
    }
    if (out_mode == CR_OUT_NLL && !targets) { snprintf(err, errlen, "CUDA: NLL needs targets"); return -1; }
    for (int t = 0; t < L; t++)
        if (tok[t] < 0 || tok[t] >= hp->n_vocab) { snprintf(err, errlen, "token id %d out of range (vocabulary %d)", tok[t], hp->n_vocab); return -1; }
    if (plan->n_ops > L * g->C) { snprintf(err, errlen, "CUDA: plan has %d ops for %d tokens", plan->n_ops, L); return -1; }
    /* the previous upload must have left the pinned buffer */
    CUDA_CHECK(cudaEventSynchronize(g->ev_stage));
    const stage_layout lay = layout_for(g, L);
    uint8_t *hs = g->h_stage;
    crk_step *st = (crk_step *)(hs + lay.step);
    memset(st, 0, sizeof *st);
    st->p0 = cascade_query_pos(pre);
    st->t0 = plan->t0;
    st->L = L; st->n_sinks = pre->n_sinks;
    st->S = g->S; st->N = g->N; st->C = g->C; st->W = g->W;
    st->decay = cascade_ema_decay(g->cfg.beta, L);
    st->n_ops = plan->n_ops;
    st->nv = cascade_total_stored(pre);
    int above = 0;
    for (int i = g->C - 1; i >= 0; i--) { st->stored[i] = pre->stored[i]; st->start[i] = pre->start[i]; st->above[i] = above; above += pre->stored[i]; }
    cascade_ema_weights(g->cfg.beta, L, (float *)(hs + lay.w));
    memcpy(hs + lay.tok, tok, (size_t)L * 4);
    if (targets && out_mode == CR_OUT_NLL) memcpy(hs + lay.tgt, targets, (size_t)L * 4);
    else memset(hs + lay.tgt, 0, (size_t)L * 4);
    memcpy(hs + lay.tfo, plan->tok_first_op, ((size_t)L + 1) * 4);
    int32_t *ops = (int32_t *)(hs + lay.ops), *touched = (int32_t *)(hs + lay.touched), *sinks = (int32_t *)(hs + lay.sinks);
    int ns = 0;
    int U = cuda_pack_plan(plan, g->N, g->slot_map, ops, touched, sinks, &ns);
    if (U < 0) { snprintf(err, errlen, "CUDA: plan slot out of range"); return -1; }
    st->U = U; st->n_sink_ops = ns;
    const int U_bound = L == 1 ? imin(g->C, g->N) : U;

    if (g->timing) CUDA_CHECK(cudaEventRecord(g->ev0, g->st));
    const int held = pre->n_sinks + cascade_total_stored(pre);
    int sparse = held >= g->S + g->N ? 0 : 16 * (int64_t)held <= g->S + g->N ? 2 : 1;
    if (sparse == 2 && L == 1 && dec_list() && cascade_step_list(pre, 1, NULL, 0) > CRK_DEC_LIST_CAP) sparse = 1;
    const int mi = mode_index(out_mode) + sparse * N_OUT_MODES;
    const int use_graph = L == 1 && g->opts.graph && g->decode_warm && !g->probe_on;
    if (use_graph && !g->gexec[mi]) {
        cudaGraph_t graph;
        CUDA_CHECK(cudaStreamBeginCapture(g->st, cudaStreamCaptureModeThreadLocal));
        CUDA_CHECK(cudaMemcpyAsync(g->d_stage, g->h_stage, lay.total, cudaMemcpyHostToDevice, g->st));
        enqueue(g, 1, out_mode, &lay, U_bound, sparse, NULL);
        CUDA_CHECK(cudaStreamEndCapture(g->st, &graph));
        CUDA_CHECK(cudaGraphInstantiate(&g->gexec[mi], graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
    }
    if (use_graph) {
        CUDA_CHECK(cudaGraphLaunch(g->gexec[mi], g->st));
        CUDA_CHECK(cudaEventRecord(g->ev_stage, g->st));
    } else {
        CUDA_CHECK(cudaMemcpyAsync(g->d_stage, g->h_stage, lay.total, cudaMemcpyHostToDevice, g->st));
        CUDA_CHECK(cudaEventRecord(g->ev_stage, g->st));
        enqueue(g, L, out_mode, &lay, U_bound, sparse, out_mode == CR_OUT_ALL && L > 1 ? out : NULL);
        if (L == 1) g->decode_warm = 1;
    }
    if (g->timing) {
        CUDA_CHECK(cudaEventRecord(g->ev1, g->st));
        CUDA_CHECK(cudaEventSynchronize(g->ev1));
        CUDA_CHECK(cudaEventElapsedTime(&g->last_ms, g->ev0, g->ev1));
    }
    if (out_mode == CR_OUT_NONE) return 0;
    cudaError_t e = cudaStreamSynchronize(g->st);
    if (e != cudaSuccess) { snprintf(err, errlen, "CUDA: %s", cudaGetErrorString(e)); return -1; }
    const size_t V = (size_t)g->vn;
    const int part = g->vn < hp->n_vocab;
    if (out_mode == CUDA_OUT_ARGMAX) {
        out[0] = (float)(g->voff + g->h_argmax[0]);
        if (part) memcpy(&out[1], &g->h_argmax[1], 4);
    } else if (out_mode == CR_OUT_LAST || (out_mode == CR_OUT_ALL && L == 1)) memcpy(out + g->voff, g->h_logits, V * 4);
    else if (out_mode == CR_OUT_NLL && L == 1) memcpy(out, g->h_logits, part ? 8 : 4);
    else if (out_mode == CR_OUT_NLL) CUDA_CHECK(cudaMemcpy(out, g->nll, (size_t)L * (part ? 8 : 4), cudaMemcpyDeviceToHost));
    return 0;
}

int cuda_probe_set(cuda_state *g, int on, int layer_from, int layer_to, int64_t cap, char *err, size_t n) {
    CUDA_CHECK(cudaSetDevice(g->opts.device));
    if (on && cap > g->probe_cap) {
        int64_t c = cap < 4096 ? 4096 : cap + cap / 4;
        float *p = NULL;
        CUDA_CHECK(cudaStreamSynchronize(g->st));
        if (cudaMalloc((void **)&p, (size_t)c * 4) != cudaSuccess) {
            cudaGetLastError();
            snprintf(err, n, "CUDA: out of memory for the attention probe (%.1f MiB)", c * 4 / 1048576.0);
            return -1;
        }
        CUDA_CHECK(cudaMemset(p, 0, (size_t)c * 4));
        if (g->probe) {
            CUDA_CHECK(cudaMemcpy(p, g->probe, (size_t)g->probe_cap * 4, cudaMemcpyDeviceToDevice));
            cudaFree(g->probe);
        }
        g->probe = p; g->probe_cap = c;
    }
    g->probe_on = on && g->probe != NULL;
    g->probe_l0 = layer_from < 0 ? 0 : layer_from;
    g->probe_l1 = layer_to <= 0 || layer_to > g->hp.n_layer ? g->hp.n_layer : layer_to;
    return 0;
}

int cuda_probe_take(cuda_state *g, float *host, int64_t n) {
    CUDA_CHECK(cudaSetDevice(g->opts.device));
    if (!g->probe) { memset(host, 0, (size_t)n * 4); return 0; }
    if (n > g->probe_cap) { memset(host + g->probe_cap, 0, (size_t)(n - g->probe_cap) * 4); n = g->probe_cap; }
    CUDA_CHECK(cudaStreamSynchronize(g->st));
    CUDA_CHECK(cudaMemcpy(host, g->probe, (size_t)n * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemset(g->probe, 0, (size_t)n * 4));
    return 0;
}

int cuda_sync(cuda_state *g, char *err, size_t n) {
    CUDA_CHECK(cudaSetDevice(g->opts.device));
    cudaError_t e = cudaStreamSynchronize(g->st);
    if (e != cudaSuccess) { snprintf(err, n, "CUDA: %s", cudaGetErrorString(e)); return -1; }
    return 0;
}

int cuda_state_download(cuda_state *g, cascade_head *heads) {
    CUDA_CHECK(cudaSetDevice(g->opts.device));
    CUDA_CHECK(cudaStreamSynchronize(g->st));
    const size_t nh = (size_t)g->hp.n_layer * g->hp.n_kv, hd = (size_t)g->hp.head_dim, S = (size_t)g->S, N = (size_t)g->N;
    for (size_t i = 0; i < nh; i++) {
        cascade_head *h = &heads[i];
        if (S) {
            CUDA_CHECK(cudaMemcpy(h->sink_k, g->sink_k + i * S * hd, S * hd * 2, cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(h->sink_v, g->sink_v + i * S * hd, S * hd * 2, cudaMemcpyDeviceToHost));
        }
        CUDA_CHECK(cudaMemcpy(h->k, g->ck + i * N * hd, N * hd * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(h->v, g->cv + i * N * hd, N * hd * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(h->score, g->score + i * N, N * 4, cudaMemcpyDeviceToHost));
        if (h->og) CUDA_CHECK(cudaMemcpy(h->og, g->og + i * N, N * 8, cudaMemcpyDeviceToHost));
    }
    return 0;
}

int cuda_state_upload(cuda_state *g, const cascade_head *heads) {
    CUDA_CHECK(cudaSetDevice(g->opts.device));
    CUDA_CHECK(cudaStreamSynchronize(g->st));
    const size_t nh = (size_t)g->hp.n_layer * g->hp.n_kv, hd = (size_t)g->hp.head_dim, S = (size_t)g->S, N = (size_t)g->N;
    for (size_t i = 0; i < nh; i++) {
        const cascade_head *h = &heads[i];
        if (S) {
            CUDA_CHECK(cudaMemcpy(g->sink_k + i * S * hd, h->sink_k, S * hd * 2, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(g->sink_v + i * S * hd, h->sink_v, S * hd * 2, cudaMemcpyHostToDevice));
        }
        CUDA_CHECK(cudaMemcpy(g->ck + i * N * hd, h->k, N * hd * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(g->cv + i * N * hd, h->v, N * hd * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(g->score + i * N, h->score, N * 4, cudaMemcpyHostToDevice));
        if (h->og) CUDA_CHECK(cudaMemcpy(g->og + i * N, h->og, N * 8, cudaMemcpyHostToDevice));
        else CUDA_CHECK(cudaMemset(g->og + i * N, 0xFF, N * 8));
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

size_t cuda_state_cache_bytes(const cuda_state *g) { return g->cache_bytes; }
size_t cuda_state_device_bytes(const cuda_state *g) { return g->dev_bytes; }
const char *cuda_state_describe(const cuda_state *g) { return g->desc; }
float cuda_state_last_ms(const cuda_state *g) { return g->last_ms; }
void cuda_state_set_timing(cuda_state *g, int on) { g->timing = on != 0; }
void cuda_state_set_bench_skip(cuda_state *g, int mask) {
    if (mask == g->bench_skip) return;
    CUDA_CHECK(cudaStreamSynchronize(g->st));
    for (int i = 0; i < 3 * N_OUT_MODES; i++)   /* the decode graphs captured the old set */
        if (g->gexec[i]) { CUDA_CHECK(cudaGraphExecDestroy(g->gexec[i])); g->gexec[i] = NULL; }
    g->bench_skip = mask;
}
