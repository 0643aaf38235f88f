/* CPU engine benchmark tables:
 *   engine_cpu models M1.gguf M2.gguf ...   prefill (pp512) and decode (tg128) tokens/s, next
 *                                            to the memory read bandwidth measured in the run
 *   engine_cpu scaling MODEL MAX_TOKENS      cascade prefill tokens/s against input length,
 *                                            and resident memory (must be flat)
 *   engine_cpu kernels M.gguf...             matrix kernels alone on layer 0's matrices and the
 *                                            output matrix: GEMM (512 tokens) GMAC/s, GEMV GB/s */
#include "state.h"
#include "matmul.h"
#include "threadpool.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CR_BENCH_CPUTIME=1: process CPU time instead of wall time (steadier on a shared machine
 * with CR_THREADS=1; with more threads it adds up every thread's time). */
static double now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("CR_BENCH_CPUTIME") && atoi(getenv("CR_BENCH_CPUTIME")) > 0;
    struct timespec t; clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct { const uint8_t *p; size_t n; double *sums; } bw_ctx;
static void bw_task(void *c_, int64_t b, int64_t e, int tid) {
    bw_ctx *c = c_;
    /* 32-byte vector loads (GCC vector extension): the loop must not be the bottleneck */
    typedef uint64_t v4 __attribute__((vector_size(32)));
    const v4 *p = (const v4 *)c->p;
    v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int64_t i = b * 256; i < e * 256; i += 4) { a0 ^= p[i]; a1 ^= p[i + 1]; a2 ^= p[i + 2]; a3 ^= p[i + 3]; }
    v4 a = a0 ^ a1 ^ a2 ^ a3;
    c->sums[tid] += (double)(a[0] + a[1] + a[2] + a[3]);
}
/* Read bandwidth (GB/s) with all threads over a buffer far larger than the caches. */
static double mem_bandwidth(threadpool *tp) {
    size_t n = (size_t)1 << 30;
    uint8_t *buf = malloc(n);
    memset(buf, 1, n);
    double sums[256] = {0}, best = 0;
    bw_ctx c = {buf, n, sums};
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        tp_for(tp, (int64_t)(n / 8 / 1024), 256, bw_task, &c);
        double dt = now() - t0;
        if (n / dt / 1e9 > best) best = n / dt / 1e9;
    }
    free(buf);
    return best;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long a = 0, r = 0;
    if (f) { if (fscanf(f, "%ld %ld", &a, &r) != 2) r = 0; fclose(f); }
    return r * 4;
}

static void bench_model(const char *path, int threads, double bw) {
    cr_model m; char err[512];
    if (model_load(&m, path, err, sizeof err)) { fprintf(stderr, "%s\n", err); return; }
    int V = m.hp.n_vocab;
    int32_t *tok = malloc(sizeof(int32_t) * 512);
    for (int i = 0; i < 512; i++) tok[i] = 1 + (i * 7919) % (V - 1);
    float *lg = malloc(sizeof(float) * V);
    cascade_cfg c; cascade_cfg_default(&c); c.policy = CR_POLICY_FULL; c.S = 4; c.N = 1024;
    cr_state s;
    if (state_init(&s, &m, &c, 512, threads, err, sizeof err)) { fprintf(stderr, "%s\n", err); model_free(&m); return; }
    /* pp512: one chunk of 512 tokens from an empty cache (best of 3) */
    double pp = 0;
    for (int r = 0; r < 3; r++) {
        state_reset(&s);
        double t0 = now();
        forward(&s, tok, 512, CR_OUT_LAST, NULL, lg, err, sizeof err);
        double dt = now() - t0;
        if (512 / dt > pp) pp = 512 / dt;
    }
    /* tg128: 128 single-token steps from an empty cache (best of 3) */
    double tg = 0;
    for (int r = 0; r < 3; r++) {
        state_reset(&s);
        int32_t t = 1;
        double t0 = now();
        for (int i = 0; i < 128; i++) { forward(&s, &t, 1, CR_OUT_LAST, NULL, lg, err, sizeof err); t = 1 + (t * 31) % (V - 1); }
        double dt = now() - t0;
        if (128 / dt > tg) tg = 128 / dt;
    }
    double gb = m.weight_bytes / 1e9;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("| %-34s | %8.1f MB | %9.0f | %9.1f | %6.1f GB/s | %5.0f%% |\n", name, m.weight_bytes / 1e6, pp, tg,
           gb * tg, 100 * gb * tg / bw);
    state_free(&s); model_free(&m); free(tok); free(lg);
}

static int bench_scaling(const char *path, long max_tokens, int threads) {
    cr_model m; char err[512];
    if (model_load(&m, path, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    cascade_cfg c; cascade_cfg_default(&c); c.S = 4; c.N = 256; c.C = 4;
    int L = 64;
    printf("\nCascade prefill against input length (%s, S=4 N=256 C=4, stride %d, %d threads)\n\n", m.name, L, threads);
    printf("| tokens | seconds | tokens/s | RSS at 10%% | RSS at end |\n|---:|---:|---:|---:|---:|\n");
    int32_t tok[64];
    for (long n = 1024; n <= max_tokens; n *= 4) {
        cr_state s;
        if (state_init(&s, &m, &c, L, threads, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        long r10 = 0;
        double t0 = now();
        for (long i = 0; i < n; i += L) {
            for (int j = 0; j < L; j++) tok[j] = 3 + (int32_t)(((i + j) * 2654435761u) % 509);
            forward(&s, tok, L, CR_OUT_NONE, NULL, NULL, err, sizeof err);
            if (!r10 && i >= n / 10) r10 = rss_kb();
        }
        double dt = now() - t0;
        printf("| %ld | %.2f | %.0f | %ld KiB | %ld KiB |\n", n, dt, n / dt, r10, rss_kb());
        fflush(stdout);
        state_free(&s);
        if (n == 1024 * 256 && max_tokens >= 1000000) n = 1000000 / 4;   /* end at 1M */
    }
    model_free(&m);
    return 0;
}

static void bench_kernels(const char *path, threadpool *tp) {
    cr_model m; char err[512];
    if (model_load(&m, path, err, sizeof err)) { fprintf(stderr, "%s\n", err); return; }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const wmat *mats[] = {&m.layers[0].q, &m.layers[0].gate, &m.layers[0].down, &m.output};
    const char *names[] = {"attn_q", "ffn_gate", "ffn_down", "output"};
    for (int i = 0; i < 4; i++) {
        const wmat *W = mats[i];
        int T = 512;
        float *x = malloc(sizeof(float) * (size_t)T * W->cols), *y = malloc(sizeof(float) * (size_t)T * W->rows);
        q8_block *xq = malloc(sizeof(q8_block) * (size_t)T * (W->cols / 32 + 1));
        for (int64_t j = 0; j < T * W->cols; j++) x[j] = (float)((j * 7919) % 2001) / 1000.0f - 1.0f;
        double gemm = 1e30, gemv = 1e30;
        for (int r = 0; r < 5 && i < 3; r++) {
            double t0 = now();
            matmul(tp, W, x, T, y, xq);
            double dt = now() - t0;
            if (dt < gemm) gemm = dt;
        }
        int reps = (int)(2e8 / ((double)W->rows * W->row_bytes + 1)) + 3;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            matmul(tp, W, x + (size_t)(r % T) * W->cols, 1, y, xq);
            double dt = now() - t0;
            if (dt < gemv) gemv = dt;
        }
        double bytes = (double)W->rows * W->row_bytes;
        printf("| %-30s | %-8s | %-4s | %5lld x %5lld | %7.1f | %6.1f |\n", name, names[i], ggml_type_name(W->type), (long long)W->rows,
               (long long)W->cols, i < 3 ? (double)T * W->rows * W->cols / gemm / 1e9 : 0.0, bytes / gemv / 1e9);
        free(x); free(y); free(xq);
    }
    model_free(&m);
}

int main(int argc, char **argv) {
    int threads = getenv("CR_THREADS") ? atoi(getenv("CR_THREADS")) : tp_default_threads();
    if (argc >= 3 && strcmp(argv[1], "models") == 0) {
        threadpool *tp = tp_create(threads);
        double bw = mem_bandwidth(tp);
        tp_destroy(tp);
        printf("CPU engine, %d threads; memory read bandwidth measured in this run: %.1f GB/s\n\n", threads, bw);
        printf("| model | weights | pp512 t/s | tg128 t/s | weight bytes/s | of bandwidth |\n|---|---:|---:|---:|---:|---:|\n");
        for (int i = 2; i < argc; i++) bench_model(argv[i], threads, bw);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "kernels") == 0) {
        threadpool *tp = tp_create(threads);
        printf("Matrix kernels, %d threads (GEMV: matrix bytes / best time; the output matrix may stay in cache)\n\n", threads);
        printf("| model | matrix | type | rows x cols | GEMM T=512 GMAC/s | GEMV GB/s |\n|---|---|---|---:|---:|---:|\n");
        for (int i = 2; i < argc; i++) bench_kernels(argv[i], tp);
        tp_destroy(tp);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "scaling") == 0) return bench_scaling(argv[2], atol(argv[3]), threads);
    fprintf(stderr, "usage: engine_cpu models M.gguf... | kernels M.gguf... | scaling M.gguf MAX_TOKENS\n");
    return 2;
}
