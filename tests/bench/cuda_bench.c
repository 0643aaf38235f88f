/* CUDA backend benchmarks (needs a GPU; prints SKIP without one):
 *  attn    one attention layer of Llama-3.1-8B shape (32 q heads, 8 KV heads, head dim 128)
 *          over T = 4K..1M tokens through the cascade (N = 16384, S = 64, C = 4) with
 *          strides 1024 and 4096: chunk attention (tensor cores) + the cascade update,
 *          against full causal flash attention (PyTorch SDPA, timed in the same run by
 *          tests/bench/sdpa_ref.py; pass its output with --sdpa FILE), and the chunk
 *          attention's useful TFLOP/s;
 *  model   whole-model prefill tokens/s of random-weight Llama-3.2-1B and Llama-3.1-8B
 *          shapes, bf16 and Q4_K (weights resident and, for 8B Q4_K, streamed);
 *  decode  decode tokens/s of the same models (CUDA graphs) against the memory roofline
 *          (bytes read per token / measured device-to-device copy bandwidth);
 *  gemm    bf16 GEMM TFLOP/s of the prefill shapes through cuBLAS.
 *
 *   cuda_bench [--parts attn,model,decode,gemm] [--sdpa FILE] [--max-t T] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#ifndef CR_CUDA
int main(void) { printf("SKIP cuda_bench: built without CUDA (CUDA=0)\n"); return 0; }
#else

#include <cuda_profiler_api.h>
#include "cuda_iface.h"
#include "cuda_plan.h"
#include "cuda_state.h"
#include "cuda_tp.h"
#include "cuda_util.h"
#include "cascade.h"
#include "gguf.h"
#include "model.h"
#include "state.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void *dev(size_t n) { void *p; CUDA_CHECK(cudaMalloc(&p, n ? n : 16)); return p; }

/* ================================================================ attention layer */
#define MAXT 8
static int64_t sdpa_T[MAXT];
static double sdpa_ms[MAXT];
static int n_sdpa;

static double sdpa_for(int64_t T) {
    for (int i = 0; i < n_sdpa; i++) if (sdpa_T[i] == T) return sdpa_ms[i];
    return 0;
}

typedef struct {
    int nh, nkv, hd, S, N, C, maxL;
    uint16_t *sk, *sv, *ck, *cv, *q16, *k16, *v16;
    float *q, *score, *r, *work, *out, *cs, *w;
    int64_t *og;
    int32_t *pos, *src;
    uint16_t *stk, *stv;
    int64_t *stog;
    uint8_t *h_stage[2], *d_stage[2];
    uint16_t *kb, *vb;
    int32_t *kdst;
    int kv_rows;
    cudaEvent_t ev[2];
    size_t stage_bytes;
    int32_t *slot_map;
    cudaStream_t st;
} attn_bench;

static void attn_bench_init(attn_bench *b, int maxL) {
    memset(b, 0, sizeof *b);
    b->nh = 32; b->nkv = 8; b->hd = 128; b->S = 64; b->N = 16384; b->C = 4; b->maxL = maxL;
    const size_t nkv = b->nkv, hd = b->hd, S = b->S, N = b->N, L = maxL, qd = (size_t)b->nh * hd, kvd = nkv * hd;
    CUDA_CHECK(cudaStreamCreateWithFlags(&b->st, cudaStreamNonBlocking));
    b->sk = dev(2 * nkv * S * hd); b->sv = dev(2 * nkv * S * hd);
    b->ck = dev(2 * nkv * N * hd); b->cv = dev(2 * nkv * N * hd);
    b->score = dev(4 * nkv * N); b->og = dev(8 * nkv * N);
    b->q16 = dev(2 * L * qd); b->q = dev(4 * L * qd); b->k16 = dev(2 * L * kvd); b->v16 = dev(2 * L * kvd);
    b->r = dev(4 * nkv * (S + N + L)); b->out = dev(4 * L * qd);
    b->work = dev(4 * crk_attn_work_floats(b->S, b->N, maxL, b->nh, b->hd));
    b->pos = dev(4 * N);
    b->kv_rows = (int)(S + N + L + 64);
    b->kb = dev(2 * nkv * b->kv_rows * hd); b->vb = dev(2 * nkv * b->kv_rows * hd); b->kdst = dev(4 * (size_t)b->kv_rows);
    CUDA_CHECK(cudaMemset(b->kb, 0, 2 * nkv * b->kv_rows * hd)); CUDA_CHECK(cudaMemset(b->vb, 0, 2 * nkv * b->kv_rows * hd));
    size_t U = L * b->C < N ? L * b->C : N;
    b->src = dev(4 * nkv * U);
    b->stk = dev(2 * nkv * U * hd); b->stv = dev(2 * nkv * U * hd); b->stog = dev(8 * nkv * U);
    const int pairs = b->hd / 2;
    const size_t npos = S + N + L + 1;
    float *cs = malloc(4 * npos * pairs * 2);
    for (size_t p = 0; p < npos; p++)
        for (int i = 0; i < pairs; i++) {
            float th = (float)p * (float)pow(500000.0, -2.0 * i / b->hd);
            cs[(p * pairs + i) * 2] = cosf(th);
            cs[(p * pairs + i) * 2 + 1] = sinf(th);
        }
    b->cs = dev(4 * npos * pairs * 2);
    CUDA_CHECK(cudaMemcpy(b->cs, cs, 4 * npos * pairs * 2, cudaMemcpyHostToDevice));
    free(cs);
    crk_fill_random_f16(b->q16, L * qd, 11, 2.0f, 0, b->st);
    crk_fill_random_f32(b->q, L * qd, 11, 2.0f, b->st);
    crk_fill_random_f16(b->k16, L * kvd, 12, 1.0f, 0, b->st);
    crk_fill_random_f16(b->v16, L * kvd, 13, 1.0f, 0, b->st);
    CUDA_LAUNCHED();
    b->stage_bytes = 1024 + L * 4 + (L + 1) * 4 + L * b->C * 8 + U * 4 + S * 8 + 256;
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK(cudaMallocHost((void **)&b->h_stage[i], b->stage_bytes));
        b->d_stage[i] = dev(b->stage_bytes);
        CUDA_CHECK(cudaEventCreateWithFlags(&b->ev[i], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventRecord(b->ev[i], b->st));
    }
    b->slot_map = malloc(4 * N);
    for (size_t i = 0; i < N; i++) b->slot_map[i] = -1;
    CUDA_CHECK(cudaDeviceSynchronize());
}

static void attn_bench_reset(attn_bench *b) {
    const size_t nkv = b->nkv, hd = b->hd;
    CUDA_CHECK(cudaMemsetAsync(b->sk, 0, 2 * nkv * b->S * hd, b->st));
    CUDA_CHECK(cudaMemsetAsync(b->sv, 0, 2 * nkv * b->S * hd, b->st));
    CUDA_CHECK(cudaMemsetAsync(b->ck, 0, 2 * nkv * b->N * hd, b->st));
    CUDA_CHECK(cudaMemsetAsync(b->cv, 0, 2 * nkv * b->N * hd, b->st));
    CUDA_CHECK(cudaMemsetAsync(b->score, 0, 4 * nkv * b->N, b->st));
    CUDA_CHECK(cudaMemsetAsync(b->og, 0xFF, 8 * nkv * b->N, b->st));
}

/* T tokens through one layer with the given stride; returns ms; *useful = attention FLOPs. */
/* ms of one phase of the chunk attention (1 gather, 2 pass 1, 4 pass 2), mean of reps */
static float time_phase(const crk_attn *a, cudaStream_t st, int phase, int reps, cudaEvent_t a0, cudaEvent_t a1) {
    float ms;
    CUDA_CHECK(cudaEventRecord(a0, st));
    for (int i = 0; i < reps; i++) crk_attn_chunk_phases(a, st, phase);
    CUDA_CHECK(cudaEventRecord(a1, st));
    CUDA_CHECK(cudaEventSynchronize(a1));
    CUDA_CHECK(cudaEventElapsedTime(&ms, a0, a1));
    return ms / reps;
}

static double attn_bench_run(attn_bench *b, int64_t T, int stride, double *useful, double *attn_only_ms) {
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = b->S; cfg.N = b->N; cfg.C = b->C;
    cascade_ctrl c; char err[200];
    if (cascade_ctrl_init(&c, &cfg, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
    cascade_plan p; memset(&p, 0, sizeof p);
    attn_bench_reset(b);
    cudaEvent_t e0, e1, a0, a1;
    CUDA_CHECK(cudaEventCreate(&e0)); CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaEventCreate(&a0)); CUDA_CHECK(cudaEventCreate(&a1));
    CUDA_CHECK(cudaStreamSynchronize(b->st));
    double fl = 0, attn_ms = 0;
    const int kvd = b->nkv * b->hd, qd = b->nh * b->hd;
    int k = 0;
    CUDA_CHECK(cudaEventRecord(e0, b->st));
    for (int64_t done = 0; done < T; done += stride, k ^= 1) {
        const int L = (int)(T - done < stride ? T - done : stride);
        cascade_ctrl pre = c;
        if (cascade_plan_chunk(&c, L, &p, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
        /* useful attention FLOPs of this chunk: each query sees the valid cache keys and its causal prefix */
        double seen = (double)pre.n_sinks + cascade_total_stored(&pre);
        fl += 4.0 * b->nh * b->hd * ((double)L * seen + (double)L * (L + 1) / 2);
        CUDA_CHECK(cudaEventSynchronize(b->ev[k]));
        uint8_t *hs = b->h_stage[k], *ds = b->d_stage[k];
        crk_step *st = (crk_step *)hs;
        memset(st, 0, sizeof *st);
        st->p0 = cascade_query_pos(&pre); st->t0 = p.t0; st->L = L; st->n_sinks = pre.n_sinks;
        st->S = b->S; st->N = b->N; st->C = b->C; st->W = pre.W; st->decay = cascade_ema_decay(cfg.beta, L); st->n_ops = p.n_ops;
        st->nv = cascade_total_stored(&pre);
        int above = 0;
        for (int i = b->C - 1; i >= 0; i--) { st->stored[i] = pre.stored[i]; st->start[i] = pre.start[i]; st->above[i] = above; above += pre.stored[i]; }
        size_t o = 1024;
        float *w = (float *)(hs + o); size_t ow = o; o += (size_t)L * 4;
        cascade_ema_weights(cfg.beta, L, w);
        size_t otfo = o; memcpy(hs + o, p.tok_first_op, 4 * ((size_t)L + 1)); o += 4 * ((size_t)L + 1);
        o = (o + 7) & ~(size_t)7;
        size_t oops = o; o += 8 * (size_t)L * b->C;
        size_t otouched = o; o += 4 * (size_t)(L * b->C < b->N ? L * b->C : b->N);
        size_t osinks = (o + 7) & ~(size_t)7; o = osinks + 8 * (size_t)b->S + 8;
        int ns = 0;
        int U = cuda_pack_plan(&p, b->N, b->slot_map, (int32_t *)(hs + oops), (int32_t *)(hs + otouched), (int32_t *)(hs + osinks), &ns);
        st->U = U; st->n_sink_ops = ns;
        CUDA_CHECK(cudaMemcpyAsync(ds, hs, o, cudaMemcpyHostToDevice, b->st));
        CUDA_CHECK(cudaEventRecord(b->ev[k], b->st));
        const crk_step *dst = (const crk_step *)ds;
        crk_slot_pos(dst, b->N, b->pos, b->st); CUDA_LAUNCHED();
        if (done == 0) CUDA_CHECK(cudaEventRecord(a0, b->st));
        crk_attn a = {.L = L, .n_head = b->nh, .n_kv = b->nkv, .hd = b->hd, .rope_pairs = b->hd / 2, .neox = 0, .S = b->S, .N = b->N,
                      .st = dst, .rope_cs = b->cs, .slot_pos = b->pos, .sink_k = b->sk, .sink_v = b->sv, .ck = b->ck, .cv = b->cv,
                      .q = b->q, .q_stride = (size_t)qd, .q16 = b->q16, .kc = b->k16, .vc = b->v16, .kv_stride = (size_t)kvd,
                      .w = (const float *)(ds + ow), .out = b->out, .out16 = NULL, .out_stride = (size_t)qd, .r = b->r,
                      .r_stride = (size_t)b->S + b->N + b->maxL, .work = b->work, .mode = CRK_ATTN_FAST,
                      .kbuf = b->kb, .vbuf = b->vb, .kdst = b->kdst, .kv_rows = b->kv_rows};
        crk_attn_chunk(&a, b->st); CUDA_LAUNCHED();
        crk_resolve_args ra = {.n_layer = 1, .n_kv = b->nkv, .S = b->S, .N = b->N, .L = L, .U_max = U, .st = dst, .slot_pos = b->pos,
                               .tfo = (const int32_t *)(ds + otfo), .ops = (const int32_t *)(ds + oops), .touched = (const int32_t *)(ds + otouched),
                               .r = b->r, .r_stride = (size_t)b->S + b->N + b->maxL, .r_layer_stride = 0, .score = b->score, .src = b->src, .scratch = NULL};
        crk_cascade_resolve(&ra, b->st); CUDA_LAUNCHED();
        crk_move_args ma = {.l0 = 0, .l1 = 1, .n_kv = b->nkv, .S = b->S, .N = b->N, .hd = b->hd, .U_max = U, .st = dst,
                            .touched = (const int32_t *)(ds + otouched), .src = b->src, .sink_ops = (const int32_t *)(ds + osinks),
                            .k16 = b->k16, .v16 = b->v16, .kv_layer_stride = 0, .ck = b->ck, .cv = b->cv, .sink_k = b->sk, .sink_v = b->sv,
                            .og = b->og, .stage_k = b->stk, .stage_v = b->stv, .stage_og = b->stog};
        crk_cascade_move(&ma, b->st); CUDA_LAUNCHED();
    }
    CUDA_CHECK(cudaEventRecord(e1, b->st));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    /* attention kernels alone, on the full cache: one chunk timed separately */
    {
        const int L = stride;
        cascade_ctrl pre = c;
        crk_step st;
        memset(&st, 0, sizeof st);
        st.p0 = cascade_query_pos(&pre); st.L = L; st.n_sinks = pre.n_sinks; st.S = b->S; st.N = b->N; st.C = b->C; st.W = pre.W;
        st.nv = cascade_total_stored(&pre);
        int above = 0;
        for (int i = b->C - 1; i >= 0; i--) { st.stored[i] = pre.stored[i]; st.start[i] = pre.start[i]; st.above[i] = above; above += pre.stored[i]; }
        crk_step *dst = dev(sizeof st);
        float *dw = dev(4 * (size_t)L);
        CUDA_CHECK(cudaMemcpy(dst, &st, sizeof st, cudaMemcpyHostToDevice));
        crk_fill_random_f32(dw, (size_t)L, 5, 1e-7f, b->st);
        crk_slot_pos(dst, b->N, b->pos, b->st);
        crk_attn a = {.L = L, .n_head = b->nh, .n_kv = b->nkv, .hd = b->hd, .rope_pairs = b->hd / 2, .neox = 0, .S = b->S, .N = b->N,
                      .st = dst, .rope_cs = b->cs, .slot_pos = b->pos, .sink_k = b->sk, .sink_v = b->sv, .ck = b->ck, .cv = b->cv,
                      .q = b->q, .q_stride = (size_t)qd, .q16 = b->q16, .kc = b->k16, .vc = b->v16, .kv_stride = (size_t)kvd,
                      .w = dw, .out = b->out, .out16 = NULL, .out_stride = (size_t)qd, .r = b->r,
                      .r_stride = (size_t)b->S + b->N + b->maxL, .work = b->work, .mode = CRK_ATTN_FAST,
                      .kbuf = b->kb, .vbuf = b->vb, .kdst = b->kdst, .kv_rows = b->kv_rows};
        crk_attn_chunk(&a, b->st);
        CUDA_CHECK(cudaEventRecord(a0, b->st));
        const int reps = 3;
        for (int i = 0; i < reps; i++) crk_attn_chunk(&a, b->st);
        CUDA_CHECK(cudaEventRecord(a1, b->st));
        CUDA_CHECK(cudaEventSynchronize(a1));
        float am;
        CUDA_CHECK(cudaEventElapsedTime(&am, a0, a1));
        double seen = (double)st.n_sinks + cascade_total_stored(&pre);
        *attn_only_ms = am / reps;
        attn_ms = 4.0 * b->nh * b->hd * ((double)L * seen + (double)L * (L + 1) / 2);   /* flops of that chunk */
        /* each phase alone: the key gather, pass 1 (softmax . V), pass 2 (the score columns) */
        float ph[3] = {0, 0, 0};
        if (getenv("CR_BENCH_PROFILE")) {   /* the three phases once between cudaProfilerStart/Stop (ncu --profile-from-start off) */
            CUDA_CHECK(cudaProfilerStart());
            for (int f = 0; f < 3; f++) crk_attn_chunk_phases(&a, b->st, 1 << f);
            CUDA_CHECK(cudaProfilerStop());
        }
        for (int f = 0; f < 3; f++) ph[f] = time_phase(&a, b->st, 1 << f, reps, a0, a1);
        const int wg = crk_attn_wg_ok(b->hd);
        printf("   phases (L=%d, full cache, %s): gather %.3f ms, pass 1 %.3f ms (%.0f TFLOP/s), pass 2 %.3f ms (%.0f TFLOP/s of its Q.K)\n",
               L, wg ? "both passes warp-specialized" : "mma.sync", ph[0], ph[1], attn_ms / ph[1] / 1e9, ph[2], attn_ms / 2 / ph[2] / 1e9);
        for (int impl = CRK_ATTN_IMPL_MMA; wg && impl <= CRK_ATTN_IMPL_WG_WS; impl++) {   /* the other kernels on the same data */
            const int wsv = crk_attn_set_ws_variant(impl == CRK_ATTN_IMPL_WG_WS);   /* WG_WS here: with ping-pong */
            crk_attn_set_impl(impl);
            for (int f = 1; f < 3; f++) {
                crk_attn_chunk_phases(&a, b->st, 1 << f);   /* warm-up (first launch of these kernels) */
                ph[f] = time_phase(&a, b->st, 1 << f, reps, a0, a1);
            }
            crk_attn_set_impl(CRK_ATTN_IMPL_AUTO);
            crk_attn_set_ws_variant(wsv);
            printf("   phases (L=%d, full cache, %s): pass 1 %.3f ms (%.0f TFLOP/s), pass 2 %.3f ms (%.0f TFLOP/s of its Q.K)\n",
                   L, impl == CRK_ATTN_IMPL_MMA ? "mma.sync" : impl == CRK_ATTN_IMPL_WG ? "wgmma, pass 1 not specialized"
                                                  : "pass 1 warp-specialized with ping-pong, pass 2 wgmma",
                   ph[1], attn_ms / ph[1] / 1e9, ph[2], attn_ms / 2 / ph[2] / 1e9);
        }
        cudaFree(dst); cudaFree(dw);
    }
    *useful = attn_ms;   /* FLOPs of one full-cache chunk (for TFLOP/s with attn_only_ms) */
    (void)fl;
    cascade_plan_free(&p);
    cudaEventDestroy(e0); cudaEventDestroy(e1); cudaEventDestroy(a0); cudaEventDestroy(a1);
    return ms;
}

static void bench_attn(int64_t max_t) {
    const int64_t Ts[] = {4096, 16384, 65536, 262144, 1048576};
    const int strides[] = {1024, 4096};
    double res[2][5];
    int nT = 0;
    for (int i = 0; i < 5; i++) if (Ts[i] <= max_t) nT = i + 1;
    attn_bench b;
    attn_bench_init(&b, 4096);
    double fl, am;
    attn_bench_run(&b, 8192, 1024, &fl, &am);   /* warm-up */
    printf("\n== attention layer (Llama-3.1-8B shape: 32 q / 8 KV heads, head dim 128), cascade N=16384 S=64 C=4\n");
    for (int si = 0; si < 2; si++) {
        for (int ti = 0; ti < nT; ti++) {
            res[si][ti] = attn_bench_run(&b, Ts[ti], strides[si], &fl, &am);
            printf("   stride %4d  T %8lld: %9.1f ms (%.2f us/token)\n", strides[si], (long long)Ts[ti], res[si][ti], 1000.0 * res[si][ti] / Ts[ti]);
            fflush(stdout);
        }
        printf("   chunk attention alone (L=%d, full cache): %.3f ms per layer, %.1f TFLOP/s useful (both passes, fp16 mma)\n",
               strides[si], am, fl / am / 1e9);
    }
    printf("\n   %8s  %12s  %12s  %12s  %10s  %10s\n", "T", "cascade/1024", "cascade/4096", "SDPA flash", "ratio/1024", "ratio/4096");
    for (int ti = 0; ti < nT; ti++) {
        double s = sdpa_for(Ts[ti]);
        if (s > 0) printf("   %8lld  %9.1f ms  %9.1f ms  %9.1f ms  %9.2fx  %9.2fx\n", (long long)Ts[ti], res[0][ti], res[1][ti], s, s / res[0][ti], s / res[1][ti]);
        else printf("   %8lld  %9.1f ms  %9.1f ms  %12s\n", (long long)Ts[ti], res[0][ti], res[1][ti], "(not run)");
    }
    fflush(stdout);
}

/* ================================================================ whole model */
#include "fake_model.h"

static double d2d_bandwidth(void) {
    const size_t n = (size_t)2 << 30;
    void *a = dev(n), *b = dev(n);
    CUDA_CHECK(cudaMemset(a, 1, n));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0)); CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(e0, 0));
    for (int i = 0; i < 5; i++) CUDA_CHECK(cudaMemcpyAsync(i & 1 ? a : b, i & 1 ? b : a, n, cudaMemcpyDeviceToDevice, 0));
    CUDA_CHECK(cudaEventRecord(e1, 0));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    cudaFree(a); cudaFree(b);
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return 5.0 * 2.0 * n / (ms * 1e-3);   /* bytes read + written per second */
}

static double g_bw;

/* The model on one GPU, or (CR_BENCH_GPUS=N, issue 10) tensor parallel over GPUs 0..N-1 (with
 * CR_GPUS_SIMULATE=1 every rank on GPU 0; N=1 over NCCL measures the all-reduce's cost alone). */
typedef struct { cuda_state *g; cuda_tp *t; } bk;
static int bk_gpus(void) { const char *e = getenv("CR_BENCH_GPUS"); return e ? atoi(e) : 0; }
static int bk_create(bk *b, const cr_model *m, const cascade_ctrl *c, int stride, const cuda_opts *o, char *err, size_t n) {
    memset(b, 0, sizeof *b);
    const int ng = bk_gpus();
    if (ng < 1) { b->g = cuda_state_create_ex(m, c, stride, o, err, n); return b->g ? 0 : -1; }
    int devs[64];
    for (int i = 0; i < ng && i < 64; i++) devs[i] = i;
    const char *sim = getenv("CR_GPUS_SIMULATE");
    b->t = cuda_tp_create(m, c, stride, o, ng, sim && *sim == '1' ? NULL : devs, err, n);
    return b->t ? 0 : -1;
}
static int bk_forward(bk *b, const cascade_ctrl *pre, const cascade_plan *p, const int32_t *tok, int L, int mode, float *out, char *err, size_t n) {
    return b->g ? cuda_forward(b->g, pre, p, tok, L, mode, NULL, out, err, n) : cuda_tp_forward(b->t, pre, p, tok, L, mode, NULL, out, err, n);
}
/* cuda_tp_forward returns after every rank but rank 0 has finished; rank 0 is synchronized
 * by the outputs of the next decode step, or here */
static int bk_sync(bk *b, char *err, size_t n) {
    if (b->g) return cuda_sync(b->g, err, n);
    return 0;
}
static const char *bk_describe(const bk *b) { return b->g ? cuda_state_describe(b->g) : cuda_tp_describe(b->t); }
static void bk_reset(bk *b) { if (b->g) cuda_state_reset(b->g); else cuda_tp_reset(b->t); }
static void bk_free(bk *b) { cuda_state_free(b->g); cuda_tp_free(b->t); }

static int g_decode_vocab = 1;   /* the benchmarked model's vocabulary (decode_step's tokens stay inside it) */
/* One greedy decode step: plan the token, run it (between cudaProfilerStart / Stop when prof),
 * the argmax becomes the next token. Nonzero after printing the error. */
static int decode_step(bk *g, cascade_ctrl *c, cascade_plan *p, int32_t *t, int prof) {
    char err[600];
    float f;
    cascade_ctrl pre = *c;
    cascade_plan_chunk(c, 1, p, err, sizeof err);
    if (prof) CUDA_CHECK(cudaProfilerStart());
    const int rc = bk_forward(g, &pre, p, t, 1, CUDA_OUT_ARGMAX, &f, err, sizeof err);
    if (prof) CUDA_CHECK(cudaProfilerStop());
    if (rc) { printf("   %s\n", err); return -1; }
    *t = f >= 0 && f < g_decode_vocab ? (int32_t)f : 1;   /* (CR_BENCH_SKIP's wrong logits may give no token) */
    return 0;
}

/* ms per token of tokens 8 .. 127 generated greedily from an empty cache (llama-bench's
 * tg128); prof: token 64 between cudaProfilerStart / Stop */
static double tg128_ms(bk *g, cascade_ctrl *c, cascade_plan *p, int32_t *t, int prof) {
    bk_reset(g);
    cascade_ctrl_reset(c);
    double s0 = 0;
    for (int i = 0; i < 128; i++) {
        if (i == 8) s0 = now();
        if (decode_step(g, c, p, t, prof && i == 64)) break;
    }
    return 1000.0 * (now() - s0) / 120;
}

static void bench_model(const shape *s, uint32_t type, int weights_mode, int stride, int do_decode) {
    /* CR_BENCH_MODEL="8B Q4_K": only the runs whose "shape type" contains it */
    const char *only = getenv("CR_BENCH_MODEL");
    char tag[64];
    snprintf(tag, sizeof tag, "%s %s", s->name, ggml_type_name(type));
    if (only && !strstr(tag, only)) return;
    cr_model m;
    fake_model(&m, s, type);
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = 64; cfg.N = 16384; cfg.C = 4;
    if (getenv("CR_BENCH_N")) cfg.N = atoi(getenv("CR_BENCH_N"));   /* e.g. 65536 (issue 5's second prefill target) */
    cascade_ctrl c; char err[600];
    if (cascade_ctrl_init(&c, &cfg, err, sizeof err)) { printf("   %s\n", err); return; }
    cuda_opts o; cuda_opts_default(&o);
    o.random_weights = 1; o.weights = weights_mode;
    double t0 = now();
    bk gb, *g = &gb;
    if (bk_create(g, &m, &c, stride, &o, err, sizeof err)) { printf("   %s %s: %s\n", s->name, ggml_type_name(type), err); free_fake(&m); return; }
    double t1 = now();
    cascade_plan p; memset(&p, 0, sizeof p);
    int32_t *tok = malloc(sizeof(int32_t) * stride);
    uint32_t seed = 7;
    for (int i = 0; i < stride; i++) { seed = seed * 1664525u + 1013904223u; tok[i] = (int32_t)((seed >> 8) % (uint32_t)s->V); }
    const int fill = (cfg.N + cfg.S + stride - 1) / stride + 1, timed = 2;
    double ts = 0;
    for (int k = 0; k < fill + timed; k++) {
        const int last = k == fill + timed - 1;   /* several GPUs: logits, so that rank 0 has finished too */
        if (k == fill) { if (bk_sync(g, err, sizeof err)) { printf("   %s\n", err); break; } ts = now(); }
        cascade_ctrl pre = c;
        cascade_plan_chunk(&c, stride, &p, err, sizeof err);
        float f;
        if (bk_forward(g, &pre, &p, tok, stride, g->t && (last || k == fill - 1) ? CUDA_OUT_ARGMAX : CR_OUT_NONE, &f, err, sizeof err)) { printf("   %s\n", err); break; }
    }
    bk_sync(g, err, sizeof err);
    double te = now();
    double tps = timed * stride / (te - ts);
    double flops = 2.0 * ((double)s->n_layer * ((double)s->dim * (s->nh + 2 * s->nkv) * (s->dim / s->nh) + (double)s->dim * s->dim + 3.0 * s->dim * s->ffn));
    printf("   %-13s %-5s %-9s stride %d: prefill %8.0f tok/s (full cache N=%d: 1M tokens in %.0f s; %.0f GEMM TFLOP/s-equivalent; setup %.1f s)\n", s->name,
           ggml_type_name(type), weights_mode == CUDA_WEIGHTS_STREAM ? "streamed" : "resident", stride, tps, cfg.N, 1048576.0 / tps, tps * flops / 1e12, t1 - t0);
    printf("      %s\n", bk_describe(g));
    fflush(stdout);
    if (do_decode) {
        int32_t t = 1;
        g_decode_vocab = s->V;
        for (int i = 0; i < 8; i++)   /* warm-up; the second step captures the graph */
            if (decode_step(g, &c, &p, &t, 0)) break;
        /* CR_BENCH_PROFILE=1: one full-cache step between cudaProfilerStart/Stop (ncu
         * --profile-from-start off); =2: one step from an empty cache (below) */
        const char *prof = getenv("CR_BENCH_PROFILE");
        if (prof && *prof == '1') decode_step(g, &c, &p, &t, 1);
        const int n = 64;
        double d0 = now();
        for (int i = 0; i < n; i++)
            if (decode_step(g, &c, &p, &t, 0)) break;
        double d1 = now();
        /* bytes per token: every matrix once (the embedding row is negligible), the valid cache */
        double wb = 0;
        for (int l = 0; l < s->n_layer; l++) {
            const layer_w *L = &m.layers[l];
            const wmat *ws[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
            for (int i = 0; i < 7; i++) wb += (double)ws[i]->rows * ws[i]->row_bytes;
        }
        wb += (double)m.output.rows * m.output.row_bytes;
        double kvb = (double)s->n_layer * s->nkv * (cfg.S + cfg.N) * (s->dim / s->nh) * 2.0 * 2.0;
        double roof = (wb + kvb) / g_bw;
        double ms = 1000.0 * (d1 - d0) / n;
        printf("      decode: %.2f ms/token = %.1f tok/s; roofline %.2f ms (%.2f GB weights + %.2f GB cache at %.0f GB/s) -> %.0f%% of roofline\n",
               ms, 1000.0 / ms, roof * 1000, wb / 1e9, kvb / 1e9, g_bw / 1e9, 100.0 * roof * 1000 / ms);
        /* the GPU's own time per step (events around the graph launch): the rest is the host's
         * plan, launch and synchronization, which a pipelined decode could hide */
        if (g->g) {
            cuda_state_set_timing(g->g, 1);
            double gms = 0;
            for (int i = 0; i < 16; i++) {
                if (decode_step(g, &c, &p, &t, 0)) break;
                gms += cuda_state_last_ms(g->g);
            }
            cuda_state_set_timing(g->g, 0);
            printf("      decode on the GPU (events): %.3f ms/token; host gap %.3f ms/token\n", gms / 16, ms - gms / 16);
        }
        /* the conditions of llama-bench's tg128 (ik_llama.cpp's figures in issue 5): 128 tokens
         * generated from an empty cache; timed are tokens 8 .. 127 (graph captured at the 2nd) */
        const double sms = tg128_ms(g, &c, &p, &t, prof && *prof == '2');
        const double skvb = (double)s->n_layer * s->nkv * 68.0 * (s->dim / s->nh) * 2.0 * 2.0;   /* 68 cached tokens on average */
        const double sroof = (wb + skvb) / g_bw;
        printf("      decode from an empty cache (tokens 8..127, as tg128): %.2f ms/token = %.1f tok/s; roofline %.2f ms -> %.0f%% of roofline\n",
               sms, 1000.0 / sms, sroof * 1000, 100.0 * sroof * 1000 / sms);
        /* a document shorter than the cache (its sinks full, about half its slots): the
         * attention's variant for unfilled slots over whole splits of valid keys */
        bk_reset(g);
        cascade_ctrl_reset(&c);
        int hfail = 0;
        for (int64_t done = 0; done < cfg.N / 2 && !hfail; done += stride) {
            cascade_ctrl pre = c;
            cascade_plan_chunk(&c, stride, &p, err, sizeof err);
            float f;
            if (bk_forward(g, &pre, &p, tok, stride, CR_OUT_NONE, &f, err, sizeof err)) { printf("   %s\n", err); hfail = 1; }
        }
        for (int i = 0; i < 8 && !hfail; i++) hfail = decode_step(g, &c, &p, &t, 0);
        double h0 = now();
        for (int i = 0; i < 64 && !hfail; i++) hfail = decode_step(g, &c, &p, &t, 0);
        const double hms = 1000.0 * (now() - h0) / 64;
        const int64_t held = cascade_total_stored(&c) + c.n_sinks;
        const double hroof = (wb + (double)s->n_layer * s->nkv * held * (s->dim / s->nh) * 4.0) / g_bw;
        if (!hfail)
            printf("      decode with a half-full cache (%lld of %d keys held): %.2f ms/token = %.1f tok/s; roofline %.2f ms -> %.0f%% of roofline\n",
                   (long long)held, cfg.S + cfg.N, hms, 1000.0 / hms, hroof * 1000, 100.0 * hroof * 1000 / hms);
        /* CR_BENCH_SKIP=1 (one GPU): the same with each kind of decode kernel left out (wrong
         * results; the time saved is that kind's marginal cost in the step) */
        if (getenv("CR_BENCH_SKIP") && g->g) {
            static const struct { int mask; const char *what; } sk[] = {
                {CUDA_SKIP_NORM, "RMSNorms"}, {CUDA_SKIP_SWIGLU, "SwiGLU"}, {CUDA_SKIP_ATTN, "attention + finish"},
                {CUDA_SKIP_MATVEC, "layer matrices"}, {CUDA_SKIP_UPDATE, "cache update"},
                {CUDA_SKIP_NORM | CUDA_SKIP_SWIGLU | CUDA_SKIP_ATTN | CUDA_SKIP_UPDATE, "all but the matrices"},
            };
            printf("      decode from an empty cache without each kind of kernel (marginal cost):");
            for (size_t k = 0; k < sizeof sk / sizeof sk[0]; k++) {
                cuda_state_set_bench_skip(g->g, sk[k].mask);
                const double ms = tg128_ms(g, &c, &p, &t, 0);
                printf(" %s %.3f ms (-%.3f);", sk[k].what, ms, sms - ms);
            }
            cuda_state_set_bench_skip(g->g, 0);
            printf("\n");
        }
        fflush(stdout);
    }
    /* llama-bench's pp512 / pp4096 (ik_llama.cpp's prefill figures in issue 5): one prompt of
     * T tokens into an empty cache, the last token's logits out; best of 4 after a warm-up */
    if (!getenv("CR_BENCH_NO_PP")) {
        float *lo = malloc(sizeof(float) * s->V);
        printf("      prefill from an empty cache (as llama-bench):");
        for (int T = 512; T <= stride && T <= 4096; T *= 8) {
            double best = 1e30;
            int fail = 0;
            for (int r = 0; r < 5 && !fail; r++) {
                bk_reset(g);
                cascade_ctrl_reset(&c);
                cascade_ctrl pre = c;
                cascade_plan_chunk(&c, T, &p, err, sizeof err);
                if (bk_sync(g, err, sizeof err)) { fail = 1; break; }
                const double a0 = now();
                if (bk_forward(g, &pre, &p, tok, T, CR_OUT_LAST, lo, err, sizeof err) || bk_sync(g, err, sizeof err)) { printf(" %s", err); fail = 1; break; }
                const double dt = now() - a0;
                if (r > 0 && dt < best) best = dt;
            }
            if (!fail) printf(" pp%d %.0f tok/s", T, T / best);
        }
        printf("\n");
        fflush(stdout);
        free(lo);
    }
    cascade_plan_free(&p);
    free(tok);
    bk_free(g);
    free_fake(&m);
}

/* ================================================================ decode parts */
static float time_ms(void (*fn)(void *), void *ctx, int reps) {
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0)); CUDA_CHECK(cudaEventCreate(&e1));
    fn(ctx);
    CUDA_CHECK(cudaEventRecord(e0, 0));
    for (int i = 0; i < reps; i++) fn(ctx);
    CUDA_CHECK(cudaEventRecord(e1, 0));
    CUDA_CHECK(cudaEventSynchronize(e1));
    CUDA_LAUNCHED();
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return ms / reps;
}
typedef struct { void *w; uint32_t type; int64_t rows, cols; size_t rb; float *x, *y; crk_q8 *xq; } mv_ctx;
static void mv_fn(void *p) { mv_ctx *c = p; crk_matvec(c->w, c->type, c->rows, c->cols, c->rb, c->x, c->xq, c->y, 0, 0); }
static void dec_fn(void *p) { crk_attn_decode((const crk_attn *)p, 0); }

static void bench_decode_parts(void) {
    printf("\n== decode parts (one token): matrix-vector kernels, 8B shapes; decode attention of one layer, full cache\n");
    const struct { const char *name; int64_t rows, cols; } sh[] = {
        {"qkv 6144x4096", 6144, 4096}, {"o 4096x4096", 4096, 4096}, {"gate|up 28672x4096", 28672, 4096}, {"down 4096x14336", 4096, 14336},
        {"output 128256x4096", 128256, 4096},
    };
    const uint32_t types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_0, GGML_TYPE_BF16};
    float *x = dev(4 * 16384), *y = dev(4 * 128256);
    crk_q8 *xq = dev(sizeof(crk_q8) * 512);
    crk_fill_random_f32(x, 16384, 3, 1.0f, 0);
    crk_quantize_q8(x, 1, 14336, xq, 0);
    for (int ti = 0; ti < 4; ti++) {
        double layer_ms = 0, layer_bytes = 0;
        for (int si = 0; si < 5; si++) {
            mv_ctx c = {NULL, types[ti], sh[si].rows, sh[si].cols, ggml_row_size(types[ti], (uint64_t)sh[si].cols), x, y, xq};
            size_t bytes = (size_t)c.rows * c.rb;
            c.w = dev(bytes);
            crk_fill_random(c.w, c.type, c.rows, c.cols, c.rb, 9, 0.02f, 0);
            float ms = time_ms(mv_fn, &c, 20);
            printf("   %-5s %-20s %7.1f us  %6.0f GB/s\n", ggml_type_name(c.type), sh[si].name, ms * 1000, bytes / (ms * 1e-3) / 1e9);
            if (si < 4) { layer_ms += ms; layer_bytes += bytes; }
            cudaFree(c.w);
        }
        printf("   %-5s one layer's matrices: %.1f us (%.0f GB/s) -> x32 layers %.2f ms\n", ggml_type_name(types[ti]), layer_ms * 1000,
               layer_bytes / (layer_ms * 1e-3) / 1e9, layer_ms * 32);
    }
    cudaFree(x); cudaFree(y); cudaFree(xq);
    /* decode attention, one layer: 32 q heads, 8 KV heads, hd 128, S=64, N=16384, all slots filled */
    const int nh = 32, nkv = 8, hd = 128, S = 64, N = 16384, C = 4;
    crk_step st;
    memset(&st, 0, sizeof st);
    st.L = 1; st.n_sinks = S; st.S = S; st.N = N; st.C = C; st.W = N / C; st.nv = N; st.p0 = S + N;
    int above = 0;
    for (int i = C - 1; i >= 0; i--) { st.stored[i] = N / C; st.start[i] = 7 * i; st.above[i] = above; above += N / C; }
    crk_step *dst = dev(sizeof st);
    CUDA_CHECK(cudaMemcpy(dst, &st, sizeof st, cudaMemcpyHostToDevice));
    int32_t *pos = dev(4 * N);
    crk_slot_pos(dst, N, pos, 0);
    const int pairs = hd / 2, npos = S + N + 2;
    float *cs = dev(4 * (size_t)npos * pairs * 2);
    crk_fill_random_f32(cs, (size_t)npos * pairs * 2, 4, 1.0f, 0);
    uint16_t *sk = dev(2 * (size_t)nkv * S * hd), *sv = dev(2 * (size_t)nkv * S * hd), *ck = dev(2 * (size_t)nkv * N * hd), *cv = dev(2 * (size_t)nkv * N * hd);
    uint16_t *k16 = dev(2 * (size_t)nkv * hd), *v16 = dev(2 * (size_t)nkv * hd);
    crk_fill_random_f16(sk, (size_t)nkv * S * hd, 5, 1.0f, 0, 0); crk_fill_random_f16(sv, (size_t)nkv * S * hd, 6, 1.0f, 0, 0);
    crk_fill_random_f16(ck, (size_t)nkv * N * hd, 7, 1.0f, 0, 0); crk_fill_random_f16(cv, (size_t)nkv * N * hd, 8, 1.0f, 0, 0);
    crk_fill_random_f16(k16, (size_t)nkv * hd, 9, 1.0f, 0, 0); crk_fill_random_f16(v16, (size_t)nkv * hd, 10, 1.0f, 0, 0);
    float *q = dev(4 * (size_t)nh * hd), *out = dev(4 * (size_t)nh * hd), *r = dev(4 * (size_t)nkv * (S + N + 1)), *w = dev(16);
    crk_fill_random_f32(q, (size_t)nh * hd, 11, 2.0f, 0);
    crk_fill_random_f32(w, 1, 12, 1e-7f, 0);
    float *work = dev(4 * crk_attn_work_floats(S, N, 1, nh, hd));
    crk_q8 *oq = dev(sizeof(crk_q8) * nh * hd / 32);
    crk_attn a = {.L = 1, .n_head = nh, .n_kv = nkv, .hd = hd, .rope_pairs = pairs, .neox = 0, .S = S, .N = N, .st = dst, .rope_cs = cs,
                  .slot_pos = pos, .sink_k = sk, .sink_v = sv, .ck = ck, .cv = cv, .q = q, .q_stride = (size_t)nh * hd, .q16 = NULL,
                  .kc = k16, .vc = v16, .kv_stride = (size_t)nkv * hd, .w = w, .out = out, .out16 = NULL, .out_stride = (size_t)nh * hd,
                  .out_q8 = oq, .r = r, .r_stride = (size_t)S + N + 1, .work = work, .mode = CRK_ATTN_AUTO};
    uint32_t *cs16 = dev(4 * (size_t)npos * pairs);
    crk_rope_cs16(cs, (size_t)npos * pairs, cs16, 0);
    const double bytes = (double)nkv * (S + N + 1) * hd * 2 * 2;
    /* register-direct (the default with the fp16 table) with its keys and values read into
     * registers, or staged through 2 / 3 shared-memory stages per warp; then the shared-memory kernel */
    static const char *const kname[] = {"register-direct", "register-direct, 2 shared-memory stages per warp",
                                        "register-direct, 3 shared-memory stages per warp", "through shared memory"};
    const int nst0 = crk_attn_decode_set_stages(0);
    for (int kind = 0; kind < 4; kind++) {
        a.rope_cs16 = kind < 3 ? cs16 : NULL;
        crk_attn_decode_set_stages(kind == 1 ? 2 : kind == 2 ? 3 : 0);
        const float ms = time_ms(dec_fn, &a, 20);
        printf("   decode attention, one layer (S+N = %d keys, 8 KV heads, %s): %.1f us, %.0f GB/s of K/V -> x32 layers %.2f ms\n", S + N,
               kname[crk_attn_decode_kind(&a) == 0 ? kind : 3], ms * 1000, bytes / (ms * 1e-3) / 1e9, ms * 32);
    }
    crk_attn_decode_set_stages(nst0);
    cudaFree(cs16);
    void *ff[] = {dst, pos, cs, sk, sv, ck, cv, k16, v16, q, out, r, w, work, oq};
    for (size_t i = 0; i < sizeof ff / sizeof ff[0]; i++) cudaFree(ff[i]);
    fflush(stdout);
}

/* ================================================================ GEMM */
static void bench_gemm(void) {
    cublasHandle_t cb;
    CUBLAS_CHECK(cublasCreate(&cb));
    const int T = 4096;
    const struct { const char *name; int M, K, T; } sh[] = {
        {"8B qkv   6144x4096", 6144, 4096, T}, {"8B o     4096x4096", 4096, 4096, T},
        {"8B gate|up 28672x4096", 28672, 4096, T}, {"8B down  4096x14336", 4096, 14336, T},
        {"1B qkv   3072x2048", 3072, 2048, T}, {"1B gate|up 16384x2048", 16384, 2048, T},
        {"square 8192^3", 8192, 8192, 8192},
    };
    printf("\n== bf16 GEMM through cuBLAS (fp32 accumulate), T = tokens\n");
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        size_t M = sh[i].M, K = sh[i].K, TT = sh[i].T;
        uint16_t *A = dev(2 * M * K), *B = dev(2 * K * TT);
        float *C = dev(4 * M * TT);
        crk_fill_random_f16(A, M * K, 1 + i, 0.05f, 1, 0);
        crk_fill_random_f16(B, K * TT, 2 + i, 1.0f, 1, 0);
        const float one = 1.0f, zero = 0.0f;
        for (int w = 0; w < 3; w++)
            CUBLAS_CHECK(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)M, (int)TT, (int)K, &one, A, CUDA_R_16BF, (int)K, B, CUDA_R_16BF, (int)K,
                                      &zero, C, CUDA_R_32F, (int)M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        cudaEvent_t e0, e1;
        CUDA_CHECK(cudaEventCreate(&e0)); CUDA_CHECK(cudaEventCreate(&e1));
        const int reps = 10;
        CUDA_CHECK(cudaEventRecord(e0, 0));
        for (int w = 0; w < reps; w++)
            CUBLAS_CHECK(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)M, (int)TT, (int)K, &one, A, CUDA_R_16BF, (int)K, B, CUDA_R_16BF, (int)K,
                                      &zero, C, CUDA_R_32F, (int)M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        ms /= reps;
        printf("   %-24s T=%zu: %.3f ms, %.0f TFLOP/s\n", sh[i].name, TT, ms, 2.0 * M * K * TT / (ms * 1e-3) / 1e12);
        cudaFree(A); cudaFree(B); cudaFree(C);
        cudaEventDestroy(e0); cudaEventDestroy(e1);
    }
    cublasDestroy(cb);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *parts = "attn,model,decode,gemm,parts", *sdpa = NULL;
    int64_t max_t = 1 << 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--parts") && i + 1 < argc) parts = argv[++i];
        else if (!strcmp(argv[i], "--sdpa") && i + 1 < argc) sdpa = argv[++i];
        else if (!strcmp(argv[i], "--max-t") && i + 1 < argc) max_t = atoll(argv[++i]);
    }
    char desc[320];
    if (!cuda_device_info(desc, sizeof desc)) { printf("SKIP cuda_bench: %s\n", desc); return 0; }
    printf("device: %s\n", desc);
    if (sdpa) {
        FILE *f = fopen(sdpa, "r");
        long long t; double ms;
        while (f && n_sdpa < MAXT && fscanf(f, "%lld %lf", &t, &ms) == 2) { sdpa_T[n_sdpa] = t; sdpa_ms[n_sdpa] = ms; n_sdpa++; }
        if (f) fclose(f);
    }
    g_bw = d2d_bandwidth();
    printf("device-to-device copy: %.0f GB/s (read + write)\n", g_bw / 1e9);
    if (strstr(parts, "gemm")) bench_gemm();
    if (strstr(parts, "parts")) bench_decode_parts();
    if (strstr(parts, "attn")) bench_attn(max_t);
    if (strstr(parts, "model") || strstr(parts, "decode")) {
        int dec = strstr(parts, "decode") != NULL;
        printf("\n== whole-model prefill (cascade N=%s S=64 C=4) and decode\n", getenv("CR_BENCH_N") ? getenv("CR_BENCH_N") : "16384");
        bench_model(&SH_1B, GGML_TYPE_BF16, CUDA_WEIGHTS_AUTO, 4096, dec);
        bench_model(&SH_1B, GGML_TYPE_Q4_K, CUDA_WEIGHTS_AUTO, 4096, dec);
        bench_model(&SH_8B, GGML_TYPE_BF16, CUDA_WEIGHTS_AUTO, 4096, dec);
        bench_model(&SH_8B, GGML_TYPE_Q4_K, CUDA_WEIGHTS_AUTO, 4096, dec);
        if (strstr(parts, "model")) {   /* prefill only */
            bench_model(&SH_8B, GGML_TYPE_Q4_K, CUDA_WEIGHTS_STREAM, 4096, 0);
            bench_model(&SH_8B, GGML_TYPE_Q4_K, CUDA_WEIGHTS_AUTO, 1024, 0);
        }
    }
    return 0;
}
#endif
