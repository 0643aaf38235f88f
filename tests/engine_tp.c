/* Tensor parallelism, simulated on the CPU (issue 10): the forward pass with the query/KV
 * heads and the FFN columns split over 2 and 4 ranks, the two row-parallel projections
 * (attention output, FFN down) computed per rank on its column slice and summed in rank order
 * as an all-reduce would, must equal the unsharded forward within float rounding; and since
 * eviction depends only on the shared control state and each KV head's own scores, the
 * caches of the sharded runs hold the same original indices in every slot (no communication
 * is needed for eviction). Random-weight models from tests/tools/mkmodel.py, F32 and Q8_0,
 * 3000 tokens through a small cascade (many evictions). */
#include "t.h"
#include "state.h"
#include "matmul.h"
#include "model_shard.h"
#include "sampler.h"
#include <unistd.h>

#define PY "/usr/bin/python3"
static char tmpdir[64];

static void run_model(const char *name, const char *args, double tol) {
    char path[256], cmd[1024], err[512];
    snprintf(path, sizeof path, "%s/%s.gguf", tmpdir, name);
    snprintf(cmd, sizeof cmd, PY " tests/tools/mkmodel.py --out %s %s >/dev/null", path, args);
    T_CHECKF(system(cmd) == 0, "%s", cmd);
    cr_model m;
    T_CHECKF(model_load(&m, path, err, sizeof err) == 0, "%s", err);
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = 4; cfg.N = 128; cfg.C = 4;
    const int L = 32, n = getenv("CR_TP_N") ? atoi(getenv("CR_TP_N")) : t_asan() ? 640 : 3000, V = m.hp.n_vocab;
    const int ranks[3] = {1, 2, 4};
    cr_state st[3];
    for (int i = 0; i < 3; i++) {
        T_CHECKF(state_init(&st[i], &m, &cfg, L, 2, err, sizeof err) == 0, "%s", err);
        T_CHECKF(state_set_tp_sim(&st[i], ranks[i], err, sizeof err) == 0, "%s", err);
    }
    float *lg[3];
    for (int i = 0; i < 3; i++) lg[i] = malloc(sizeof(float) * V);
    int32_t tok[32];
    uint32_t x = 11;
    for (int c = 0; c < n / L; c++) {
        for (int j = 0; j < L; j++) { x = x * 1664525u + 1013904223u; tok[j] = 3 + (int32_t)((x >> 9) % (uint32_t)(V - 3)); }
        for (int i = 0; i < 3; i++) T_CHECK(forward(&st[i], tok, L, CR_OUT_LAST, NULL, lg[i], err, sizeof err) == 0);
    }
    double sd = 0, mean = 0;
    for (int v = 0; v < V; v++) mean += lg[0][v];
    mean /= V;
    for (int v = 0; v < V; v++) sd += (lg[0][v] - mean) * (lg[0][v] - mean);
    sd = sqrt(sd / V);
    for (int i = 1; i < 3; i++) {
        double mx = 0;
        for (int v = 0; v < V; v++) { double d = fabs((double)lg[i][v] - lg[0][v]); if (d > mx) mx = d; }
        int diff = 0, nh = m.hp.n_layer * m.hp.n_kv;
        for (int h = 0; h < nh; h++)
            for (int j = 0; j < cfg.N; j++) diff += st[i].heads[h].og[j] != st[0].heads[h].og[j];
        printf("     %-5s %d ranks vs 1: max |logit diff| / sd = %.2e after %d tokens; slots with another token: %d of %d\n",
               name, ranks[i], mx / sd, n, diff, nh * cfg.N);
        T_CHECKF(mx / sd <= tol, "%s, %d ranks: %.3e", name, ranks[i], mx / sd);
        T_CHECKF(diff == 0, "%s, %d ranks: %d slots differ", name, ranks[i], diff);
    }
    /* what does not divide is refused */
    T_CHECK(state_set_tp_sim(&st[0], 3, err, sizeof err) == -1 && strstr(err, "divide"));
    /* model_shard (the CUDA backend's ranks, engine/cuda_tp.c): rank r's q, k, v, gate, up rows
     * are the matching rows of the whole model's (the same products bit for bit), and the
     * column slices of o and down sum over the ranks to the whole product */
    {
        threadpool *tp = tp_create(2);
        const layer_w *W = &m.layers[m.hp.n_layer - 1];
        const int64_t K = W->down.cols > W->o.cols ? W->down.cols : W->o.cols;
        float *x = malloc(sizeof(float) * K), *yf = malloc(sizeof(float) * K * 4), *ys = malloc(sizeof(float) * K * 4), *acc = malloc(sizeof(float) * K);
        q8_block *xq = malloc(sizeof(q8_block) * (K / 32 + 1));
        for (int64_t i = 0; i < K; i++) x[i] = (float)((i * 7919) % 2001) / 1000.0f - 1.0f;
        for (int n = 2; n <= 4; n += 2) {
            cr_model sh;
            for (int r = 0; r < n; r++) {
                T_CHECKF(model_shard(&m, r, n, &sh, err, sizeof err) == 0, "%s", err);
                T_CHECK(sh.hp.n_head == m.hp.n_head / n && sh.hp.n_kv == m.hp.n_kv / n && sh.hp.ffn == m.hp.ffn / n);
                const layer_w *S = &sh.layers[m.hp.n_layer - 1];
                const wmat *rw[5] = {&W->q, &W->k, &W->v, &W->gate, &W->up}, *rs[5] = {&S->q, &S->k, &S->v, &S->gate, &S->up};
                for (int i = 0; i < 5; i++) {
                    matmul(tp, rw[i], x, 1, yf, xq);
                    matmul(tp, rs[i], x, 1, ys, xq);
                    T_CHECK(rs[i]->rows * n == rw[i]->rows && rs[i]->cols == rw[i]->cols);
                    T_CHECKF(!memcmp(ys, yf + r * rs[i]->rows, sizeof(float) * rs[i]->rows), "%s, %d ranks, rank %d: row slice %d", name, n, r, i);
                }
                /* the vocabulary: rank r's embedding and output rows are tokens [v0, v0 + vn) of
                 * the whole model's, the shares contiguous and covering the vocabulary */
                int v0, vn, v0n, vnn;
                model_shard_vocab(&m, r, n, &v0, &vn);
                if (r + 1 < n) { model_shard_vocab(&m, r + 1, n, &v0n, &vnn); T_CHECK(v0n == v0 + vn); }
                else T_CHECK(v0 + vn == m.hp.n_vocab);
                if (r == 0) T_CHECK(v0 == 0);
                T_CHECK(sh.tok_embd.rows == vn && sh.output.rows == vn);
                float *e1 = malloc(sizeof(float) * m.hp.dim), *e2 = malloc(sizeof(float) * m.hp.dim);
                for (int tk = v0; tk < v0 + vn; tk += 37) {
                    wmat_row(&sh.tok_embd, tk - v0, e1); wmat_row(&m.tok_embd, tk, e2);
                    T_CHECKF(!memcmp(e1, e2, sizeof(float) * m.hp.dim), "%s, %d ranks: embedding of token %d", name, n, tk);
                    wmat_row(&sh.output, tk - v0, e1); wmat_row(&m.output, tk, e2);
                    T_CHECKF(!memcmp(e1, e2, sizeof(float) * m.hp.dim), "%s, %d ranks: output row of token %d", name, n, tk);
                }
                free(e1); free(e2);
                model_shard_free(&sh);
            }
            const wmat *cw[2] = {&W->o, &W->down};
            for (int i = 0; i < 2; i++) {
                const int64_t R = cw[i]->rows, ks = cw[i]->cols / n;
                matmul(tp, cw[i], x, 1, yf, xq);
                for (int64_t j = 0; j < R; j++) acc[j] = 0;
                double mx = 0, ref = 0;
                for (int r = 0; r < n; r++) {
                    T_CHECK(model_shard(&m, r, n, &sh, err, sizeof err) == 0);
                    const wmat *c = i ? &sh.layers[m.hp.n_layer - 1].down : &sh.layers[m.hp.n_layer - 1].o;
                    T_CHECK(c->cols == ks && c->row_bytes == cw[i]->row_bytes && wmat_packed_row_bytes(c) * n == cw[i]->row_bytes);
                    matmul(tp, c, x + r * ks, 1, ys, xq);
                    for (int64_t j = 0; j < R; j++) acc[j] += ys[j];
                    model_shard_free(&sh);
                }
                for (int64_t j = 0; j < R; j++) { mx = fmax(mx, fabs((double)acc[j] - yf[j])); ref = fmax(ref, fabs((double)yf[j])); }
                printf("     %-5s %d ranks: column slices of %s sum to the whole product within %.2e of max |y| %.2f\n", name, n, i ? "down" : "o", mx, ref);
                T_CHECKF(mx <= 1e-4 * ref, "%s, %d ranks, %s: %.3e of %.3e", name, n, i ? "down" : "o", mx, ref);
            }
        }
        cr_model sh3;
        T_CHECK(model_shard(&m, 0, 3, &sh3, err, sizeof err) == -1 && strstr(err, "divide"));
        /* the NLL from shares of the vocabulary (how several GPUs combine theirs) equals the
         * whole row's, for 1 to 5 uneven shares and a target in each share or none */
        {
            const int V = m.hp.n_vocab;
            float *lg = malloc(sizeof(float) * V), pr[5][2];
            for (int v = 0; v < V; v++) lg[v] = (float)((v * 7919) % 1009) / 97.0f - 5.0f;
            double worst = 0;
            for (int ns = 1; ns <= 5; ns++)
                for (int tgt = -1; tgt <= V; tgt += V / 7) {
                    for (int k = 0; k < ns; k++) {
                        const int a0 = V * k / ns, a1 = V * (k + 1) / ns;
                        logits_lse_part(lg + a0, a1 - a0, tgt, a0, pr[k]);
                    }
                    const float c = logits_nll_combine(&pr[0][0], ns, 2), w = logits_nll(lg, V, tgt);
                    if (tgt < 0 || tgt >= V) { T_CHECKF(isnan(c) && isnan(w), "target %d: %g %g", tgt, c, w); continue; }
                    T_CHECKF(isfinite(c), "%d shares, target %d: %g", ns, tgt, c);
                    if (fabs((double)c - w) > worst) worst = fabs((double)c - w);
                }
            printf("     NLL from 1-5 shares of the vocabulary within %.2e of the whole row's\n", worst);
            T_CHECK(worst <= 1e-5);
            free(lg);
        }
        free(x); free(yf); free(ys); free(acc); free(xq);
        tp_destroy(tp);
    }
    for (int i = 0; i < 3; i++) { state_free(&st[i]); free(lg[i]); }
    model_free(&m);
}

static void test_tp_f32(void) {
    if (system(PY " -c 'import numpy' >/dev/null 2>&1")) T_SKIP("numpy for " PY " is missing");
    run_model("f32", "--type F32 --dim 128 --layers 2 --heads 4 --kv-heads 4 --ffn 256 --vocab 512 --ctx 512", 1e-4);
}
static void test_tp_q8_0(void) {
    if (system(PY " -c 'import numpy' >/dev/null 2>&1")) T_SKIP("numpy for " PY " is missing");
    /* q8_0: each block's integer dot product is the same, but a different float summation order
     * can flip the rounding of one activation when it is quantized to q8_0 for the next matrix
     * (a step of 1/127 of its block's maximum), and the cache carries it on: bit-identical for
     * the first chunks, then about 0.02-0.03 sd after hundreds of tokens; tests/engine_numref.c
     * allows 0.2 sd for quantized types against the float reference. */
    run_model("q8_0", "--type Q8_0 --dim 256 --layers 2 --heads 8 --kv-heads 4 --ffn 512 --vocab 512 --ctx 512 --seed 3", 0.1);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cr_tp_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    T_RUN(test_tp_f32);
    T_RUN(test_tp_q8_0);
    char cmd[128]; snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    return t_summary();
}
