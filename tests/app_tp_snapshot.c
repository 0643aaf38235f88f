/* Snapshots across tensor-parallel shard counts (issue 10, simulated on the CPU with
 * state_set_tp_sim): a cache saved from a run over 2 ranks is loaded into runs over 1, 2 and 4
 * ranks, which continue with the same tokens. The snapshot stores every (layer, KV head) and
 * the shared control state, so the shard count is not part of it: 2 ranks continue
 * bit-exactly, 1 and 4 ranks within float rounding of the all-reduce order, and every slot
 * holds the same original index as in the uninterrupted 2-rank run. Random-weight F32 model
 * from tests/tools/mkmodel.py, a small cascade (many evictions). */
#include "t.h"
#include "snapshot.h"
#include "state.h"
#include <unistd.h>

#define PY "/usr/bin/python3"

static void feed(cr_state *s, int chunks, uint32_t *x, int V, float *lg, char *err) {
    int32_t tok[32];
    for (int c = 0; c < chunks; c++) {
        for (int j = 0; j < 32; j++) { *x = *x * 1664525u + 1013904223u; tok[j] = 3 + (int32_t)((*x >> 9) % (uint32_t)(V - 3)); }
        if (forward(s, tok, 32, c == chunks - 1 ? CR_OUT_LAST : CR_OUT_NONE, NULL, lg, err, 512)) return;
    }
}

static void test_snapshot_across_ranks(void) {
    if (system(PY " -c 'import numpy' >/dev/null 2>&1")) T_SKIP("numpy for " PY " is missing");
    char dir[64], path[128], cas[128], cmd[512], err[512] = "";
    snprintf(dir, sizeof dir, "/tmp/cr_tps_XXXXXX");
    T_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    snprintf(cas, sizeof cas, "%s/s.cas", dir);
    snprintf(cmd, sizeof cmd, PY " tests/tools/mkmodel.py --out %s --type F32 --dim 128 --layers 2 --heads 8 --kv-heads 4 "
             "--ffn 256 --vocab 512 --ctx 512 --seed 5 >/dev/null", path);
    T_CHECKF(system(cmd) == 0, "%s", cmd);
    cr_model m;
    T_CHECKF(model_load(&m, path, err, sizeof err) == 0, "%s", err);
    const int V = m.hp.n_vocab, nh = m.hp.n_layer * m.hp.n_kv;
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = 4; cfg.N = 128; cfg.C = 4;
    cr_state a;
    T_CHECKF(state_init(&a, &m, &cfg, 32, 2, err, sizeof err) == 0, "%s", err);
    T_CHECKF(state_set_tp_sim(&a, 2, err, sizeof err) == 0, "%s", err);
    float *la = malloc(sizeof(float) * V), *lb = malloc(sizeof(float) * V);
    uint32_t x = 7;
    feed(&a, 20, &x, V, la, err);
    T_CHECKF(!err[0], "%s", err);
    snap_content c; memset(&c, 0, sizeof c);
    c.st = &a;
    T_CHECKF(snapshot_save(cas, &c, err, sizeof err) == 0, "%s", err);
    const uint32_t x_saved = x;
    feed(&a, 4, &x, V, la, err);                 /* the uninterrupted 2-rank run */
    double mean = 0, sd = 0;
    for (int v = 0; v < V; v++) mean += la[v];
    mean /= V;
    for (int v = 0; v < V; v++) sd += (la[v] - mean) * (la[v] - mean);
    sd = sqrt(sd / V);
    const int ranks[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        cr_state b; memset(&b, 0, sizeof b);
        snap_content out;
        T_CHECKF(snapshot_load(cas, &m, &out, &b, err, sizeof err) == 0, "%s", err);
        snap_content_free(&out);
        T_CHECKF(state_set_tp_sim(&b, ranks[i], err, sizeof err) == 0, "%s", err);
        uint32_t y = x_saved;
        feed(&b, 4, &y, V, lb, err);
        T_CHECKF(!err[0], "%s", err);
        double mx = 0;
        for (int v = 0; v < V; v++) { double d = fabs((double)lb[v] - la[v]); if (d > mx) mx = d; }
        int diff = 0;
        for (int h = 0; h < nh; h++)
            for (int j = 0; j < cfg.N; j++) diff += b.heads[h].og[j] != a.heads[h].og[j];
        printf("     saved on 2 ranks, resumed on %d: max |logit diff| / sd = %.2e, slots with another token %d of %d\n",
               ranks[i], mx / sd, diff, nh * cfg.N);
        if (ranks[i] == 2) T_CHECKF(mx == 0, "2 ranks: logits differ by %.3g", mx);
        T_CHECKF(mx / sd <= 1e-4, "%d ranks: %.3e", ranks[i], mx / sd);
        T_CHECKF(diff == 0, "%d ranks: %d slots differ", ranks[i], diff);
        state_free(&b);
    }
    state_free(&a);
    model_free(&m);
    free(la); free(lb);
    unlink(cas); unlink(path); rmdir(dir);
}

int main(void) {
    T_RUN(test_snapshot_across_ranks);
    return t_summary();
}
