#include "sampler.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sampler_cfg_default(sampler_cfg *c) {
    c->temp = 0.8f; c->top_k = 40; c->top_p = 0.95f; c->min_p = 0.05f;
    c->rep_penalty = 1.0f; c->rep_last_n = 64; c->seed = 0x5eed;
}

int sampler_init(sampler *s, const sampler_cfg *c, int n_vocab) {
    memset(s, 0, sizeof *s);
    s->cfg = *c; s->n_vocab = n_vocab;
    s->rng = c->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!s->rng) s->rng = 1;
    int n = c->rep_last_n > 0 ? c->rep_last_n : 1;
    s->hist = calloc((size_t)n, sizeof *s->hist);
    s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
    s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
    return (s->hist && s->idx && s->prob) ? 0 : -1;
}

void sampler_free(sampler *s) { free(s->hist); free(s->idx); free(s->prob); memset(s, 0, sizeof *s); }

void sampler_accept(sampler *s, int32_t tok) {
    if (s->cfg.rep_last_n <= 0) return;
    s->hist[s->hist_pos] = tok;
    s->hist_pos = (s->hist_pos + 1) % s->cfg.rep_last_n;
    if (s->hist_n < s->cfg.rep_last_n) s->hist_n++;
}

static uint64_t next_u64(sampler *s) {
    uint64_t x = s->rng;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static float next_f(sampler *s) { return (float)((next_u64(s) >> 40) * (1.0 / 16777216.0)); }

int32_t argmax(const float *x, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static double lse_of(const float *lg, int V, float *mx_out) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) if (lg[v] > mx) mx = lg[v];
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)(lg[v] - mx));
    *mx_out = mx;
    return sum;
}

float logits_nll(const float *lg, int V, int target) {
    float mx;
    double sum = lse_of(lg, V, &mx);
    return (target >= 0 && target < V) ? (float)(log(sum) + mx - lg[target]) : NAN;
}

void logits_lse_part(const float *lg, int V, int target, int v0, float out[2]) {
    float mx;
    double sum = lse_of(lg, V, &mx);
    out[0] = (float)(log(sum) + mx);
    out[1] = (target - v0 >= 0 && target - v0 < V) ? lg[target - v0] : NAN;
}

float logits_nll_combine(const float *parts, int n, int stride) {
    double mx = -INFINITY, tgt = NAN;
    for (int i = 0; i < n; i++) {
        const float *p = parts + (size_t)i * stride;
        if (p[0] > mx) mx = p[0];
        if (!isnan(p[1])) tgt = p[1];
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)parts[(size_t)i * stride] - mx);
    return (float)(log(sum) + mx - tgt);
}

static const float *cmp_base;
static int cmp_desc(const void *a, const void *b) {
    float x = cmp_base[*(const int32_t *)a], y = cmp_base[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

int32_t sampler_sample(sampler *s, float *logits) {
    const sampler_cfg *c = &s->cfg;
    int n = s->n_vocab;
    if (c->rep_penalty != 1.0f) {
        for (int i = 0; i < s->hist_n; i++) {
            int32_t t = s->hist[i];
            if (t < 0 || t >= n) continue;
            /* penalise each distinct token once */
            int dup = 0;
            for (int j = 0; j < i; j++) if (s->hist[j] == t) { dup = 1; break; }
            if (dup) continue;
            logits[t] = logits[t] > 0 ? logits[t] / c->rep_penalty : logits[t] * c->rep_penalty;
        }
    }
    if (c->temp <= 0) return argmax(logits, n);
    /* candidates: top-k (or all), sorted by logit */
    int k = c->top_k > 0 && c->top_k < n ? c->top_k : n;
    for (int i = 0; i < n; i++) s->idx[i] = i;
    cmp_base = logits;
    if (k < n) {
        /* keep the k best in a min-heap (root = worst kept), O(n log k) */
        int32_t *h = s->idx;
        for (int i = 0; i < k; i++) {               /* heapify the first k */
            int j = i;
            while (j > 0 && cmp_desc(&h[(j - 1) / 2], &h[j]) < 0) { int32_t t = h[j]; h[j] = h[(j - 1) / 2]; h[(j - 1) / 2] = t; j = (j - 1) / 2; }
        }
        for (int i = k; i < n; i++) {
            int32_t cand = i;
            if (cmp_desc(&cand, &h[0]) >= 0) continue;   /* not better than the worst kept */
            h[0] = cand;
            int j = 0;
            for (;;) {
                int a = 2 * j + 1, b = a + 1, w = j;
                if (a < k && cmp_desc(&h[a], &h[w]) > 0) w = a;
                if (b < k && cmp_desc(&h[b], &h[w]) > 0) w = b;
                if (w == j) break;
                int32_t t = h[j]; h[j] = h[w]; h[w] = t; j = w;
            }
        }
    }
    qsort(s->idx, (size_t)k, sizeof *s->idx, cmp_desc);
    float mx = logits[s->idx[0]];
    double sum = 0;
    for (int i = 0; i < k; i++) { s->prob[i] = expf((logits[s->idx[i]] - mx) / c->temp); sum += s->prob[i]; }
    for (int i = 0; i < k; i++) s->prob[i] = (float)(s->prob[i] / sum);
    int keep = k;
    if (c->min_p > 0) {
        float thr = c->min_p * s->prob[0];
        for (int i = 1; i < keep; i++) if (s->prob[i] < thr) { keep = i; break; }
    }
    if (c->top_p < 1.0f) {
        double cum = 0;
        for (int i = 0; i < keep; i++) { cum += s->prob[i]; if (cum >= c->top_p) { keep = i + 1; break; } }
    }
    double tot = 0;
    for (int i = 0; i < keep; i++) tot += s->prob[i];
    double r = next_f(s) * tot, acc = 0;
    for (int i = 0; i < keep; i++) { acc += s->prob[i]; if (r < acc) return s->idx[i]; }
    return s->idx[keep - 1];
}
