/* Attention probe (engine/attn_probe.c) against a brute-force recomputation: a naive
 * float forward pass written here (every position attends to every earlier one, K/V rounded
 * to fp16 as the cache stores them) on a random-weight F32 model from tests/tools/mkmodel.py. */
#include "t.h"
#include "attn_probe.h"
#include "quant.h"
#include "matmul.h"
#include <unistd.h>

#define PY "/usr/bin/python3"
static char model_path[128];
static int have_model;

static void make_model(void) {
    char dir[] = "/tmp/cr_probe_XXXXXX";
    if (!mkdtemp(dir)) return;
    snprintf(model_path, sizeof model_path, "%s/m.gguf", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, PY " tests/tools/mkmodel.py --out %s --type F32 --dim 64 --layers 3 --heads 4 "
             "--kv-heads 2 --ffn 128 --vocab 300 --ctx 256 --seed 5 >/dev/null 2>&1", model_path);
    have_model = system(cmd) == 0;
}

static void toks(int32_t *t, int n) {
    uint32_t x = 11;
    for (int i = 0; i < n; i++) { x = x * 1103515245u + 12345u; t[i] = i == 0 ? 1 : (int32_t)(3 + (x >> 8) % 290); }
}

static void rms(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * r * w[i];
}
static void mv(const wmat *W, const float *x, float *y, float *row) {
    for (int64_t r = 0; r < W->rows; r++) {
        wmat_row(W, r, row);
        double s = 0;
        for (int64_t c = 0; c < W->cols; c++) s += (double)row[c] * x[c];
        y[r] = (float)s;
    }
}

/* Brute force: acc[layer][key] = sum over queries t >= q_from and all query heads of p(t -> key). */
static double *brute(const cr_model *m, const int32_t *tok, int n, int q_from) {
    const hparams *hp = &m->hp;
    int dim = hp->dim, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_kv, rep = nh / nkv, ffn = hp->ffn;
    float *x = calloc((size_t)n * dim, 4), *xb = calloc(ffn > dim ? ffn : dim, 4), *row = calloc(ffn > dim ? ffn : dim, 4);
    float *K = calloc((size_t)n * nkv * hd, 4), *V = calloc((size_t)n * nkv * hd, 4), *Q = calloc((size_t)n * nh * hd, 4);
    float *att = calloc((size_t)n * nh * hd, 4), *tmp = calloc(ffn > dim ? ffn : dim, 4), *g = calloc(ffn, 4), *u = calloc(ffn, 4);
    double *acc = calloc((size_t)hp->n_layer * n, sizeof *acc), *p = calloc(n, sizeof *p);
    for (int t = 0; t < n; t++) wmat_row(&m->tok_embd, tok[t], x + (size_t)t * dim);
    for (int l = 0; l < hp->n_layer; l++) {
        const layer_w *W = &m->layers[l];
        for (int t = 0; t < n; t++) {
            rms(xb, x + (size_t)t * dim, W->attn_norm, dim, hp->eps);
            mv(&W->q, xb, Q + (size_t)t * nh * hd, row);
            mv(&W->k, xb, K + (size_t)t * nkv * hd, row);
            mv(&W->v, xb, V + (size_t)t * nkv * hd, row);
            for (int i = 0; i < nkv * hd; i++) {
                K[(size_t)t * nkv * hd + i] = f16_to_f32(f32_to_f16(K[(size_t)t * nkv * hd + i]));
                V[(size_t)t * nkv * hd + i] = f16_to_f32(f32_to_f16(V[(size_t)t * nkv * hd + i]));
            }
            for (int h = 0; h < nh; h++) rope_apply(hp, Q + ((size_t)t * nh + h) * hd, t);
            for (int h = 0; h < nkv; h++) rope_apply(hp, K + ((size_t)t * nkv + h) * hd, t);
        }
        for (int t = 0; t < n; t++)
            for (int h = 0; h < nh; h++) {
                const float *q = Q + ((size_t)t * nh + h) * hd;
                int kv = h / rep;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += (double)q[e] * K[((size_t)j * nkv + kv) * hd + e];
                    p[j] = d / sqrt((double)hd); if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= t; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
                float *o = att + ((size_t)t * nh + h) * hd;
                memset(o, 0, sizeof(float) * hd);
                for (int j = 0; j <= t; j++) {
                    p[j] /= sum;
                    if (t >= q_from) acc[(size_t)l * n + j] += p[j];
                    for (int e = 0; e < hd; e++) o[e] += (float)p[j] * V[((size_t)j * nkv + kv) * hd + e];
                }
            }
        for (int t = 0; t < n; t++) {
            float *xt = x + (size_t)t * dim;
            mv(&W->o, att + (size_t)t * nh * hd, tmp, row);
            for (int i = 0; i < dim; i++) xt[i] += tmp[i];
            rms(xb, xt, W->ffn_norm, dim, hp->eps);
            mv(&W->gate, xb, g, row); mv(&W->up, xb, u, row);
            for (int i = 0; i < ffn; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
            mv(&W->down, g, tmp, row);
            for (int i = 0; i < dim; i++) xt[i] += tmp[i];
        }
    }
    free(x); free(xb); free(row); free(K); free(V); free(Q); free(att); free(tmp); free(g); free(u); free(p);
    return acc;
}

static int feed(cr_state *s, const int32_t *tok, int n, int stride, float *logits, char *err) {
    for (int i = 0; i < n; i += stride) {
        int L = n - i < stride ? n - i : stride;
        if (forward(s, tok + i, L, logits ? CR_OUT_LAST : CR_OUT_NONE, NULL, logits, err, 512)) return -1;
    }
    return 0;
}

/* Full policy over several chunks (sinks, cached slots and chunk keys all attended), the
 * counted queries starting inside a chunk: every token's weight equals the brute force. */
static void test_probe_vs_brute(void) {
    if (!have_model) T_SKIP("mkmodel.py failed (numpy missing?)");
    char err[512];
    cr_model m;
    T_CHECKF(model_load(&m, model_path, err, sizeof err) == 0, "%s", err);
    const int n = 45, q_from = 23;
    int32_t tok[45]; toks(tok, n);
    double *ref = brute(&m, tok, n, q_from);
    int ranges[3][2] = {{0, 3}, {1, 2}, {2, 3}};
    for (int r = 0; r < 3; r++) {
        cascade_cfg cfg; cascade_cfg_default(&cfg);
        cfg.policy = CR_POLICY_FULL; cfg.S = 4; cfg.N = 60; cfg.C = 1;
        cr_state s;
        T_CHECKF(state_init(&s, &m, &cfg, 7, 2, err, sizeof err) == 0, "%s", err);
        cr_probe p;
        T_CHECKF(probe_init(&p, &s, err, sizeof err) == 0, "%s", err);
        p.q_from = q_from; p.layer_from = ranges[r][0]; p.layer_to = ranges[r][1];
        probe_attach(&s, &p);
        T_CHECKF(feed(&s, tok, n, 7, NULL, err) == 0, "%s", err);
        double maxd = 0, tot = 0;
        for (int j = 0; j < n; j++) {
            double want = 0;
            for (int l = ranges[r][0]; l < ranges[r][1]; l++) want += ref[(size_t)l * n + j];
            double d = fabs(want - probe_weight(&p, j));
            if (d > maxd) maxd = d;
            tot += want;
        }
        int nl = ranges[r][1] - ranges[r][0];
        printf("     layers [%d,%d): max abs diff probe vs brute force %.3g (total %.1f)\n", ranges[r][0], ranges[r][1], maxd, tot);
        double expect_total = (double)(n - q_from) * m.hp.n_head * nl;
        T_CHECKF(fabs(tot - expect_total) < 1e-6 * expect_total, "brute-force total %g vs %g", tot, expect_total);
        T_CHECKF(fabs(probe_total(&p) - expect_total) < 1e-4 * expect_total, "probe total %g vs %g", probe_total(&p), expect_total);
        T_CHECKF(p.n_queries == n - q_from, "queries %lld", (long long)p.n_queries);
        T_CHECKF(maxd < 1e-5 * (n - q_from) * m.hp.n_head, "layers [%d,%d): max |probe - brute| = %g", ranges[r][0], ranges[r][1], maxd);
        T_CHECKF(probe_weight(&p, n) == 0 && probe_weight(&p, -1) == 0, "weight for a token never seen");
        /* ranked list: descending, same weights */
        cr_probe_hit top[8];
        int k = probe_top(&p, top, 8);
        T_CHECK(k == 8);
        for (int i = 0; i < k; i++) {
            T_CHECK(top[i].w == probe_weight(&p, top[i].og));
            if (i) T_CHECK(top[i - 1].w >= top[i].w);
        }
        for (int j = 0; j < n; j++) T_CHECK(probe_weight(&p, j) <= top[0].w);
        probe_clear(&p);
        T_CHECK(probe_count(&p) == 0 && probe_weight(&p, top[0].og) == 0);
        probe_free(&p); state_free(&s);
    }
    free(ref); model_free(&m);
}

/* The probe changes nothing: logits and cache with and without it are bit-identical. */
static void test_probe_no_effect(void) {
    if (!have_model) T_SKIP("mkmodel.py failed (numpy missing?)");
    char err[512];
    cr_model m;
    T_CHECKF(model_load(&m, model_path, err, sizeof err) == 0, "%s", err);
    int32_t tok[100]; toks(tok, 100);
    float *la = malloc(4 * (size_t)m.hp.n_vocab), *lb = malloc(4 * (size_t)m.hp.n_vocab);
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = 2; cfg.N = 16; cfg.C = 4;
    cr_state a, b; cr_probe p;
    T_CHECKF(state_init(&a, &m, &cfg, 9, 2, err, sizeof err) == 0, "%s", err);
    T_CHECKF(state_init(&b, &m, &cfg, 9, 2, err, sizeof err) == 0, "%s", err);
    T_CHECKF(probe_init(&p, &b, err, sizeof err) == 0, "%s", err);
    probe_attach(&b, &p);
    T_CHECK(feed(&a, tok, 100, 9, la, err) == 0);
    T_CHECK(feed(&b, tok, 100, 9, lb, err) == 0);
    T_CHECK(memcmp(la, lb, 4 * (size_t)m.hp.n_vocab) == 0);
    for (int i = 0; i < m.hp.n_layer * m.hp.n_kv; i++)
        T_CHECK(memcmp(a.heads[i].og, b.heads[i].og, 8 * (size_t)cfg.N) == 0 &&
                memcmp(a.heads[i].score, b.heads[i].score, 4 * (size_t)cfg.N) == 0);
    probe_free(&p); state_free(&a); state_free(&b); free(la); free(lb); model_free(&m);
}

/* Cascade policy with eviction: a decode step's weights land only on the tokens the cache
 * held (per head: sinks + retained slots) and on the step's own token, and sum to
 * n_head x n_layer; the weight of each og equals the sum of its per-head rows. */
static void test_probe_cascade_retained(void) {
    if (!have_model) T_SKIP("mkmodel.py failed (numpy missing?)");
    char err[512];
    cr_model m;
    T_CHECKF(model_load(&m, model_path, err, sizeof err) == 0, "%s", err);
    int32_t tok[120]; toks(tok, 120);
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = 2; cfg.N = 12; cfg.C = 3;
    cr_state s; cr_probe p;
    T_CHECKF(state_init(&s, &m, &cfg, 8, 2, err, sizeof err) == 0, "%s", err);
    T_CHECKF(probe_init(&p, &s, err, sizeof err) == 0, "%s", err);
    T_CHECK(feed(&s, tok, 119, 8, NULL, err) == 0);
    /* union of what every head holds */
    char held[120] = {0};
    int64_t ret[16];
    for (int i = 0; i < m.hp.n_layer * m.hp.n_kv; i++) {
        int k = cascade_retained(&s.ctrl, &s.heads[i], ret, CASCADE_RETAINED_ALL);
        for (int j = 0; j < k; j++) held[ret[j]] = 1;
    }
    int nheld = 0;
    for (int j = 0; j < 119; j++) nheld += held[j];
    T_CHECKF(nheld < 119 - 20, "the cache should have evicted most tokens (holds %d)", nheld);
    p.q_from = 119;
    probe_attach(&s, &p);
    T_CHECK(forward(&s, tok + 119, 1, CR_OUT_NONE, NULL, NULL, err, sizeof err) == 0);
    held[119] = 1;
    cr_probe_hit all[200];
    size_t k = probe_dump(&p, all, 200);
    double tot = 0;
    T_CHECK(k > 0 && k <= (size_t)nheld + 1);
    for (size_t i = 0; i < k; i++) {
        T_CHECKF(all[i].og >= 0 && all[i].og < 120 && held[all[i].og], "og %lld was not in the cache", (long long)all[i].og);
        tot += all[i].w;
    }
    double want = (double)m.hp.n_head * m.hp.n_layer;
    T_CHECKF(fabs(tot - want) < 1e-4 * want, "total %g, want %g", tot, want);
    probe_free(&p); state_free(&s); model_free(&m);
}

int main(void) {
    make_model();
    T_RUN(test_probe_vs_brute);
    T_RUN(test_probe_no_effect);
    T_RUN(test_probe_cascade_retained);
    if (have_model) { unlink(model_path); char *d = strrchr(model_path, '/'); *d = 0; rmdir(model_path); }
    return t_summary();
}
