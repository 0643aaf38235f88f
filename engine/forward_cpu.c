/* CPU forward pass of a chunk of tokens through the model and the cascading
 * cache (strided prefill when L > 1, decode when L == 1). */
#include "state.h"
#include "attn_cpu.h"
#include "attn_probe.h"
#include "model_shard.h"
#include "sampler.h"
#include "matmul.h"
#include "vexp.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef CR_CUDA
#include "cuda_state.h"
#endif

#define NLL_BLOCK 16

static void *xcalloc(size_t n, size_t sz, int *fail) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) *fail = 1;
    return p;
}

int state_init(cr_state *s, const cr_model *m, const cascade_cfg *cfg, int max_L, int n_threads, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->m = m;
    const hparams *hp = &m->hp;
    if (max_L < 1) { snprintf(err, errlen, "stride must be at least 1"); return -1; }
    if (cascade_ctrl_init(&s->ctrl, cfg, err, errlen)) return -1;
    s->max_L = max_L;
    int S = s->ctrl.cfg.S, N = s->ctrl.cfg.N;
    int fail = 0;
    int qd = hp->n_head * hp->head_dim, kvd = hp->n_kv * hp->head_dim;
    int wide = hp->ffn > hp->dim ? hp->ffn : hp->dim;
    if (qd > wide) wide = qd;
    size_t L = (size_t)max_L;
    s->x = xcalloc(L * hp->dim, 4, &fail);
    s->xb = xcalloc(L * wide, 4, &fail);
    s->q = xcalloc(L * qd, 4, &fail);
    s->k = xcalloc(L * kvd, 4, &fail);
    s->v = xcalloc(L * kvd, 4, &fail);
    s->att = xcalloc(L * qd, 4, &fail);
    s->hb = xcalloc(L * hp->ffn, 4, &fail);
    s->hb2 = xcalloc(L * hp->ffn, 4, &fail);
    s->k16 = xcalloc(L * kvd, 2, &fail);
    s->v16 = xcalloc(L * kvd, 2, &fail);
    s->xq = xcalloc(L * (wide / 32 + 1), sizeof(q8_block), &fail);
    s->s_new = xcalloc(L * hp->n_kv, 4, &fail);
    s->ema_w = xcalloc(L, 4, &fail);
    s->slot_pos = xcalloc((size_t)N, 4, &fail);
    s->vslots = xcalloc((size_t)N, 4, &fail);
    s->logits = xcalloc((size_t)NLL_BLOCK * hp->n_vocab, 4, &fail);
    s->rope_max = (int64_t)S + N + max_L + 1;
    int pairs = hp->rope_dim / 2;
    s->rope_cs = xcalloc((size_t)s->rope_max * pairs * 2, 4, &fail);
    s->tp = tp_create(n_threads > 0 ? n_threads : tp_default_threads());
    /* per thread: r [S+N+L], then the attention scratch */
    s->tscratch_floats = attn_scratch_floats(S, N, max_L, hp->head_dim, hp->n_head / hp->n_kv) + (size_t)(S + N + max_L);
    s->tscratch = xcalloc((size_t)tp_threads(s->tp) * s->tscratch_floats, 4, &fail);
    s->heads = xcalloc((size_t)hp->n_layer * hp->n_kv, sizeof *s->heads, &fail);
    if (fail || !s->tp) { snprintf(err, errlen, "out of memory allocating the inference state (cache %d+%d, stride %d)", S, N, max_L); state_free(s); return -1; }
    for (int i = 0; i < hp->n_layer * hp->n_kv; i++) {
        if (cascade_head_alloc(&s->heads[i], &s->ctrl, hp->head_dim, err, errlen)) { state_free(s); return -1; }
    }
    s->cache_bytes = (size_t)hp->n_layer * hp->n_kv * ((size_t)(S + N) * hp->head_dim * 4 + (size_t)N * 12);
    for (int64_t p = 0; p < s->rope_max; p++)
        for (int i = 0; i < pairs; i++) {
            float th = (float)p * hp->rope_inv_freq[i];
            s->rope_cs[((size_t)p * pairs + i) * 2] = cosf(th);
            s->rope_cs[((size_t)p * pairs + i) * 2 + 1] = sinf(th);
        }
    if (cascade_plan_reserve(&s->plan, &s->ctrl, max_L, err, errlen)) { state_free(s); return -1; }
    return 0;
}

void state_free(cr_state *s) {
    state_gpu_free(s);
    if (s->heads && s->m)
        for (int i = 0; i < s->m->hp.n_layer * s->m->hp.n_kv; i++) cascade_head_free(&s->heads[i]);
    free(s->heads);
    free(s->x); free(s->xb); free(s->q); free(s->k); free(s->v); free(s->att); free(s->hb); free(s->hb2);
    free(s->k16); free(s->v16); free(s->xq); free(s->s_new); free(s->ema_w); free(s->slot_pos); free(s->vslots);
    free(s->logits); free(s->rope_cs); free(s->tscratch); free(s->tp_x); free(s->tp_part);
    cascade_plan_free(&s->plan);
    tp_destroy(s->tp);
    memset(s, 0, sizeof *s);
}

void state_reset(cr_state *s) {
    cascade_ctrl_reset(&s->ctrl);
    state_gpu_reset(s);
    int S = s->ctrl.cfg.S, N = s->ctrl.cfg.N;
    for (int i = 0; i < s->m->hp.n_layer * s->m->hp.n_kv; i++) {
        cascade_head *h = &s->heads[i];
        memset(h->score, 0, sizeof(float) * N);
        for (int j = 0; j < N; j++) h->og[j] = -1;
        memset(h->k, 0, 2 * (size_t)N * h->D); memset(h->v, 0, 2 * (size_t)N * h->D);
        memset(h->sink_k, 0, 2 * (size_t)S * h->D); memset(h->sink_v, 0, 2 * (size_t)S * h->D);
    }
}

int state_set_tp_sim(cr_state *s, int n, char *err, size_t errlen) {
    const hparams *hp = &s->m->hp;
    free(s->tp_x); free(s->tp_part); s->tp_x = s->tp_part = NULL; s->tp_sim = 0;
    if (n <= 1) return 0;
    if (state_on_gpu(s)) { snprintf(err, errlen, "the tensor-parallel simulation runs on the CPU"); return -1; }
    if (model_shard_check(s->m, n, err, errlen)) return -1;
    const int64_t qs = (int64_t)hp->n_head * hp->head_dim / n, fs = hp->ffn / n;
    int64_t wide = qs > fs ? qs : fs;
    s->tp_x = malloc(sizeof(float) * (size_t)s->max_L * wide);
    s->tp_part = malloc(sizeof(float) * (size_t)s->max_L * hp->dim);
    if (!s->tp_x || !s->tp_part) { free(s->tp_x); free(s->tp_part); s->tp_x = s->tp_part = NULL; snprintf(err, errlen, "out of memory"); return -1; }
    s->tp_sim = n;
    return 0;
}

/* y[L][rows] = W . x[L][cols]: directly, or (tensor-parallel simulation) as the sum over the
 * ranks, in rank order, of each rank's column slice of W times its slice of x. */
static void matmul_rowpar(cr_state *s, const wmat *W, const float *x, int L, float *y) {
    const int n = s->tp_sim;
    if (n <= 1) { matmul(s->tp, W, x, L, y, s->xq); return; }
    const int64_t K = W->cols, ks = K / n, R = W->rows;
    for (int r = 0; r < n; r++) {
        const wmat v = wmat_cols(W, r * ks, ks);
        for (int t = 0; t < L; t++) memcpy(s->tp_x + (size_t)t * ks, x + (size_t)t * K + (size_t)r * ks, sizeof(float) * (size_t)ks);
        matmul(s->tp, &v, s->tp_x, L, r == 0 ? y : s->tp_part, s->xq);
        if (r > 0) for (size_t i = 0; i < (size_t)L * R; i++) y[i] += s->tp_part[i];   /* the all-reduce */
    }
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * r * w[i];
}

/* ---- attention of one layer, then its cache update: tasks are KV heads ---- */
typedef struct {
    cr_state *s; int layer, L, nv, n_sinks; int64_t p0; float decay;   /* cache state at the chunk's start */
} attn_ctx;

static void attn_task(void *p, int64_t h0, int64_t h1, int tid) {
    attn_ctx *c = p;
    cr_state *s = c->s;
    const hparams *hp = &s->m->hp;
    int hd = hp->head_dim, n_rep = hp->n_head / hp->n_kv, N = s->ctrl.cfg.N;
    float *scr = s->tscratch + (size_t)tid * s->tscratch_floats;
    float *r = scr;                          /* [S + N + L] */
    float *rest = r + s->ctrl.cfg.S + N + s->max_L;
    for (int64_t h = h0; h < h1; h++) {
        cascade_head *ch = &s->heads[(size_t)c->layer * hp->n_kv + h];
        attn_args a = {
            .L = c->L, .n_rep = n_rep, .hd = hd, .rope_pairs = hp->rope_dim / 2, .neox = hp->rope_neox,
            .rope_cs = s->rope_cs, .h = ch, .n_sinks = c->n_sinks, .nv = c->nv,
            .vslots = s->vslots, .slot_pos = s->slot_pos,
            .q = s->q + (size_t)h * n_rep * hd, .q_stride = (size_t)hp->n_head * hd,
            .kc = s->k16 + (size_t)h * hd, .vc = s->v16 + (size_t)h * hd, .kv_stride = (size_t)hp->n_kv * hd,
            .p0 = c->p0, .w = s->ema_w,
            .out = s->att + (size_t)h * n_rep * hd, .out_stride = (size_t)hp->n_head * hd,
            .r = r, .scratch = rest,
        };
        if (s->probe) {   /* attention probe (attn_probe.h): off unless attached */
            a.probe = probe_row(s->probe, c->layer, (int)h, &a.probe_m0);
            probe_slots(s->probe, c->layer, (int)h, ch->og, s->vslots, c->nv);
        }
        attn_chunk_cpu(&a);
        /* EMA over the slots: an unfilled slot keeps score 0 (0 * decay + 0), so only the
         * filled ones are updated; all N in place once the cache is full (vslots = 0..N-1) */
        if (c->nv == N) cascade_ema_update(ch->score, N, c->decay, r + c->n_sinks);
        else for (int i = 0; i < c->nv; i++) ch->score[s->vslots[i]] = fmaf(c->decay, ch->score[s->vslots[i]], r[c->n_sinks + i]);
        float *sn = s->s_new + (size_t)h * s->max_L;
        for (int j = 0; j < c->L; j++) sn[j] = r[c->n_sinks + c->nv + j];
        /* the chunk into this head's cache (only this head's state: no barrier needed) */
        cascade_apply(&s->plan, ch, s->k16 + h * hd, s->v16 + h * hd, (size_t)hp->n_kv * hd, sn, s->plan.t0);
    }
}

/* Per token after the Q/K/V projections: biases, K and V to fp16 (the cache format), RoPE on Q. */
typedef struct { cr_state *s; const layer_w *W; int64_t p0; } qkv_ctx;
static void qkv_task(void *p, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    qkv_ctx *c = p; cr_state *s = c->s; const hparams *hp = &s->m->hp; const layer_w *W = c->W;
    const int qd = hp->n_head * hp->head_dim, kvd = hp->n_kv * hp->head_dim, pairs = hp->rope_dim / 2;
    for (int64_t t = t0; t < t1; t++) {
        float *q = s->q + (size_t)t * qd, *kk = s->k + (size_t)t * kvd, *vv = s->v + (size_t)t * kvd;
        if (W->bq) for (int i = 0; i < qd; i++) q[i] += W->bq[i];
        if (W->bk) for (int i = 0; i < kvd; i++) kk[i] += W->bk[i];
        if (W->bv) for (int i = 0; i < kvd; i++) vv[i] += W->bv[i];
        for (int i = 0; i < kvd; i++) { s->k16[(size_t)t * kvd + i] = f32_to_f16(kk[i]); s->v16[(size_t)t * kvd + i] = f32_to_f16(vv[i]); }
        const float *cs = s->rope_cs + (size_t)(c->p0 + t) * pairs * 2;
        for (int h = 0; h < hp->n_head; h++) rope_rotate(q + (size_t)h * hp->head_dim, cs, pairs, hp->rope_neox);
    }
}

/* Per token: x += xb (the previous matrix's output, when add), xb = rmsnorm(x) * w, and xb
 * quantized to q8 blocks for the next matrices. */
typedef struct { cr_state *s; const float *w; int add; } norm_ctx;
static void norm_task(void *p, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    norm_ctx *c = p; cr_state *s = c->s; const hparams *hp = &s->m->hp;
    const int dim = hp->dim;
    for (int64_t t = t0; t < t1; t++) {
        float *x = s->x + (size_t)t * dim, *xb = s->xb + (size_t)t * dim;
        if (c->add) for (int i = 0; i < dim; i++) x[i] += xb[i];
        rmsnorm(xb, x, c->w, dim, hp->eps);
        quantize_q8(xb, s->xq + (size_t)t * (dim / 32), dim);
    }
}

/* hb = silu(hb) * hb2 per token */
static void swiglu_task(void *p, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    cr_state *s = p; const int ffn = s->m->hp.ffn;
    size_t i = (size_t)t0 * ffn;
#ifdef __AVX512F__
    for (; i + 16 <= (size_t)t1 * ffn; i += 16)
        _mm512_storeu_ps(s->hb + i, silu_mul512(_mm512_loadu_ps(s->hb + i), _mm512_loadu_ps(s->hb2 + i)));
#endif
    for (; i < (size_t)t1 * ffn; i++) {
        float g = s->hb[i];
        s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
    }
}

int forward(cr_state *s, const int32_t *tok, int L, int out_mode, const int32_t *targets, float *out, char *err, size_t errlen) {
    const cr_model *m = s->m;
    const hparams *hp = &m->hp;
    if (L < 1 || L > s->max_L) { snprintf(err, errlen, "chunk of %d tokens (stride is %d)", L, s->max_L); return -1; }
    for (int t = 0; t < L; t++)
        if (tok[t] < 0 || tok[t] >= hp->n_vocab) { snprintf(err, errlen, "token id %d out of range (vocabulary %d)", tok[t], hp->n_vocab); return -1; }
    if (state_on_gpu(s)) return forward_gpu(s, tok, L, out_mode, targets, out, err, errlen);
    const int dim = hp->dim;
    /* cache state at the chunk's start, then the insertion plan */
    int nv = cascade_positions(&s->ctrl, s->slot_pos);
    int N = s->ctrl.cfg.N, k = 0;
    for (int i = 0; i < N; i++) if (s->slot_pos[i] >= 0) s->vslots[k++] = i;
    int64_t p0 = cascade_query_pos(&s->ctrl);
    int n_sinks = s->ctrl.n_sinks;
    if (cascade_plan_chunk(&s->ctrl, L, &s->plan, err, errlen)) return -1;
    if (s->probe) probe_chunk_begin(s->probe, n_sinks, nv, L, s->plan.t0);
    cascade_ema_weights(s->ctrl.cfg.beta, L, s->ema_w);
    float decay = cascade_ema_decay(s->ctrl.cfg.beta, L);

    for (int t = 0; t < L; t++) wmat_row(&m->tok_embd, tok[t], s->x + (size_t)t * dim);
    for (int l = 0; l < hp->n_layer; l++) {
        const layer_w *W = &m->layers[l];
        norm_ctx nc = {s, W->attn_norm, l > 0};       /* x += the previous layer's FFN output */
        tp_for(s->tp, L, 4, norm_task, &nc);
        {
            const wmat *ws[3] = {&W->q, &W->k, &W->v};
            float *ys[3] = {s->q, s->k, s->v};
            matmul_multi(s->tp, ws, ys, 3, s->xb, s->xq, L);
        }
        qkv_ctx qc = {s, W, p0};
        tp_for(s->tp, L, 4, qkv_task, &qc);
        attn_ctx ac = {s, l, L, nv, n_sinks, p0, decay};
        tp_for(s->tp, hp->n_kv, 1, attn_task, &ac);   /* and the cache update */
        matmul_rowpar(s, &W->o, s->att, L, s->xb);
        norm_ctx fc = {s, W->ffn_norm, 1};
        tp_for(s->tp, L, 4, norm_task, &fc);
        {
            const wmat *ws[2] = {&W->gate, &W->up};
            float *ys[2] = {s->hb, s->hb2};
            matmul_multi(s->tp, ws, ys, 2, s->xb, s->xq, L);
        }
        tp_for(s->tp, L, 4, swiglu_task, s);
        matmul_rowpar(s, &W->down, s->hb, L, s->xb);
        if (l == hp->n_layer - 1) for (size_t i = 0; i < (size_t)L * dim; i++) s->x[i] += s->xb[i];
    }
    if (s->probe && probe_chunk_end(s->probe)) { snprintf(err, errlen, "out of memory in the attention probe"); return -1; }
    if (out_mode == CR_OUT_NONE) return 0;
    int first = out_mode == CR_OUT_LAST ? L - 1 : 0;
    for (int t = first; t < L; t++) rmsnorm(s->xb + (size_t)t * dim, s->x + (size_t)t * dim, m->out_norm, dim, hp->eps);
    if (out_mode == CR_OUT_LAST) {
        matmul(s->tp, &m->output, s->xb + (size_t)(L - 1) * dim, 1, out, s->xq);
    } else if (out_mode == CR_OUT_ALL) {
        matmul(s->tp, &m->output, s->xb, L, out, s->xq);
    } else {
        for (int t0 = 0; t0 < L; t0 += NLL_BLOCK) {
            int n = L - t0 < NLL_BLOCK ? L - t0 : NLL_BLOCK;
            matmul(s->tp, &m->output, s->xb + (size_t)t0 * dim, n, s->logits, s->xq);
            for (int j = 0; j < n; j++) out[t0 + j] = logits_nll(s->logits + (size_t)j * hp->n_vocab, hp->n_vocab, targets[t0 + j]);
        }
    }
    return 0;
}
