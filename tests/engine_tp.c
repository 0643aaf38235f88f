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
