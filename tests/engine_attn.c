/* attn_chunk_cpu against a double-precision brute force: outputs, the exact EMA score columns
 * r[], the probe row; over head dims, group sizes, sinks, cached slots and chunk lengths, with
 * NaN-filled, misaligned scratch of exactly attn_scratch_floats() floats (guarded). */
#include "t.h"
#include "attn_cpu.h"
#include "quant.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng = 12345;
static float frand(void) { rng = rng * 1664525u + 1013904223u; return (float)((rng >> 8) & 0xFFFF) / 32768.0f - 1.0f; }

typedef struct {
    int hd, n_rep, S, N, nv, L, neox, pairs, probe_m0; int64_t p0;
} cfg;

/* Rotated key k (double) from fp16 and a cos/sin row. */
static void rot(double *o, const uint16_t *k, const float *cs, int hd, int pairs, int neox) {
    for (int d = 0; d < hd; d++) o[d] = f16_to_f32(k[d]);
    for (int i = 0; i < pairs; i++) {
        int a = neox ? i : 2 * i, b = neox ? i + pairs : 2 * i + 1;
        double c = cs[2 * i], s = cs[2 * i + 1], x0 = o[a], x1 = o[b];
        o[a] = x0 * c - x1 * s; o[b] = x0 * s + x1 * c;
    }
}

/* Runs one configuration; returns 0 or fills msg. perm: reverse the visible slot order. */
static int one(const cfg *c, int reverse, float *out_keep, char *msg, size_t ml) {
    const int hd = c->hd, nq = c->n_rep, nc = c->S + c->nv, nk = nc + c->L;
    const int maxpos = (int)c->p0 + c->L + c->S + c->N + 4;
    float *cs = malloc(sizeof(float) * (size_t)maxpos * c->pairs * 2);
    for (int p = 0; p < maxpos; p++)
        for (int i = 0; i < c->pairs; i++) {
            double th = p * pow(10000.0, -2.0 * i / (2 * c->pairs));
            cs[((size_t)p * c->pairs + i) * 2] = (float)cos(th); cs[((size_t)p * c->pairs + i) * 2 + 1] = (float)sin(th);
        }
    cascade_head h = {0};
    h.D = hd;
    h.sink_k = malloc(2 * (size_t)(c->S + 1) * hd); h.sink_v = malloc(2 * (size_t)(c->S + 1) * hd);
    h.k = malloc(2 * (size_t)c->N * hd); h.v = malloc(2 * (size_t)c->N * hd);
    for (size_t i = 0; i < (size_t)c->S * hd; i++) { h.sink_k[i] = f32_to_f16(2 * frand()); h.sink_v[i] = f32_to_f16(frand()); }
    for (size_t i = 0; i < (size_t)c->N * hd; i++) { h.k[i] = f32_to_f16(2 * frand()); h.v[i] = f32_to_f16(frand()); }
    int32_t *slot_pos = malloc(sizeof(int32_t) * c->N), *vslots = malloc(sizeof(int32_t) * (c->nv + 1));
    for (int s = 0; s < c->N; s++) slot_pos[s] = c->S + (int)((s * 7919) % (c->p0 - c->S > 0 ? c->p0 - c->S : 1));
    for (int i = 0; i < c->nv; i++) { int s = (i * 5 + 3) % c->N; vslots[reverse ? c->nv - 1 - i : i] = s; }
    size_t kvs = (size_t)hd + 3;   /* chunk key stride (not hd) */
    uint16_t *kc = malloc(2 * kvs * c->L), *vc = malloc(2 * kvs * c->L);
    for (size_t i = 0; i < kvs * c->L; i++) { kc[i] = f32_to_f16(2 * frand()); vc[i] = f32_to_f16(frand()); }
    size_t qs = (size_t)nq * hd + 5, os = (size_t)nq * hd + 2;
    float *q = malloc(sizeof(float) * qs * c->L), *out = malloc(sizeof(float) * os * c->L);
    for (size_t i = 0; i < qs * c->L; i++) q[i] = 2 * frand();
    float *w = malloc(sizeof(float) * c->L);
    for (int m = 0; m < c->L; m++) w[m] = 0.5f + 0.5f * (float)m / c->L;
    float *r = malloc(sizeof(float) * nk), *probe = malloc(sizeof(float) * nk);
    for (int k = 0; k < nk; k++) probe[k] = 0.25f;   /* the probe adds to what is there */
    size_t sf = attn_scratch_floats(c->S, c->N, c->L, hd, nq);
    float *scr_mem = malloc(sizeof(float) * (sf + 1 + 64));
    for (size_t i = 0; i < sf + 1 + 64; i++) scr_mem[i] = NAN;
    float *scr = scr_mem + 1;                        /* not 64-byte aligned */
    for (int i = 0; i < 64; i++) scr[sf + i] = 7.0f; /* guard */
    attn_args a = {
        .L = c->L, .n_rep = nq, .hd = hd, .rope_pairs = c->pairs, .neox = c->neox, .rope_cs = cs, .h = &h,
        .n_sinks = c->S, .nv = c->nv, .vslots = vslots, .slot_pos = slot_pos, .q = q, .q_stride = qs,
        .kc = kc, .vc = vc, .kv_stride = kvs, .p0 = c->p0, .w = w, .out = out, .out_stride = os,
        .r = r, .scratch = scr, .probe = c->probe_m0 >= 0 ? probe : NULL, .probe_m0 = c->probe_m0,
    };
    attn_chunk_cpu(&a);
    int bad = 0;
    for (int i = 0; i < 64; i++) if (scr[sf + i] != 7.0f) { snprintf(msg, ml, "scratch overrun"); bad = 1; break; }
    /* brute force (keys in the order the engine sees them) */
    double *K = malloc(sizeof(double) * nk * hd), *V = malloc(sizeof(double) * nk * hd);
    for (int k = 0; k < nk; k++) {
        const uint16_t *ks, *vs; const float *row;
        if (k < c->S) { ks = h.sink_k + (size_t)k * hd; vs = h.sink_v + (size_t)k * hd; row = cs + (size_t)k * c->pairs * 2; }
        else if (k < nc) { int s = vslots[k - c->S]; ks = h.k + (size_t)s * hd; vs = h.v + (size_t)s * hd; row = cs + (size_t)slot_pos[s] * c->pairs * 2; }
        else { int j = k - nc; ks = kc + j * kvs; vs = vc + j * kvs; row = cs + (size_t)(c->p0 + j) * c->pairs * 2; }
        rot(K + (size_t)k * hd, ks, row, hd, c->pairs, c->neox);
        for (int d = 0; d < hd; d++) V[(size_t)k * hd + d] = f16_to_f32(vs[d]);
    }
    double *col = calloc((size_t)nq * nk, sizeof(double)), *pr = calloc(nk, sizeof(double)), *p = malloc(sizeof(double) * nk);
    double eo = 0, er = 0, ep = 0;
    for (int g = 0; g < nq && !bad; g++)
        for (int m = 0; m < c->L; m++) {
            const float *qm = q + m * qs + (size_t)g * hd;
            int n = nc + m + 1;
            double mx = -INFINITY, sum = 0;
            for (int k = 0; k < n; k++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += K[(size_t)k * hd + d] * qm[d];
                p[k] = s / sqrt((double)hd); if (p[k] > mx) mx = p[k];
            }
            for (int k = 0; k < n; k++) { p[k] = exp(p[k] - mx); sum += p[k]; }
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int k = 0; k < n; k++) o += p[k] / sum * V[(size_t)k * hd + d];
                double e = fabs(o - out[m * os + (size_t)g * hd + d]);
                if (e > eo) eo = e;
            }
            for (int k = 0; k < n; k++) {
                col[(size_t)g * nk + k] += w[m] * p[k] / sum;
                if (c->probe_m0 >= 0 && m >= c->probe_m0) pr[k] += p[k] / sum;
            }
        }
    for (int k = 0; k < nk && !bad; k++) {
        double mx = col[k];
        for (int g = 1; g < nq; g++) if (col[(size_t)g * nk + k] > mx) mx = col[(size_t)g * nk + k];
        if (fabs(mx - r[k]) > er) er = fabs(mx - r[k]);
        if (c->probe_m0 >= 0 && fabs(0.25 + pr[k] - probe[k]) > ep) ep = fabs(0.25 + pr[k] - probe[k]);
        if (c->probe_m0 < 0 && probe[k] != 0.25f) { snprintf(msg, ml, "probe written while off"); bad = 1; }
    }
    if (!bad && !(eo < 2e-5 && er < 2e-5 && ep < 2e-5)) {
        snprintf(msg, ml, "hd %d rep %d S %d nv %d L %d: max err out %.3g r %.3g probe %.3g", hd, nq, c->S, c->nv, c->L, eo, er, ep);
        bad = 1;
    }
    if (out_keep) for (int m = 0; m < c->L; m++) memcpy(out_keep + (size_t)m * nq * hd, out + m * os, sizeof(float) * nq * hd);
    free(K); free(V); free(col); free(pr); free(p);
    free(cs); free(h.sink_k); free(h.sink_v); free(h.k); free(h.v); free(slot_pos); free(vslots);
    free(kc); free(vc); free(q); free(out); free(w); free(r); free(probe); free(scr_mem);
    return bad ? -1 : 0;
}

static void test_vs_brute(void) {
    static const cfg cs[] = {
        {8, 2, 4, 20, 20, 17, 0, 4, 3, 40},      /* stories260K shape */
        {16, 1, 2, 9, 5, 1, 1, 8, 0, 30},        /* one query */
        {64, 4, 4, 40, 33, 31, 1, 32, -1, 100},  /* probe off */
        {6, 5, 0, 3, 0, 16, 0, 2, 7, 0},         /* odd hd, 5 heads (two groups), no sinks, no slots */
        {128, 3, 1, 18, 18, 15, 0, 64, 14, 60},
        {32, 8, 4, 64, 47, 32, 1, 8, 31, 200},   /* partial rope */
    };
    int ncfg = (int)(sizeof cs / sizeof cs[0]);
    char msg[256];
    for (int i = 0; i < ncfg; i++) T_CHECKF(one(&cs[i], 0, NULL, msg, sizeof msg) == 0, "config %d: %s", i, msg);
    printf("     %d configurations agree with the double brute force (tolerance 2e-5)\n", ncfg);
}

/* The order of the visible slots changes float rounding only. */
static void test_slot_order(void) {
    cfg c = {16, 2, 4, 48, 48, 20, 0, 8, 0, 80};
    size_t n = (size_t)c.L * c.n_rep * c.hd;
    float *o1 = malloc(sizeof(float) * n), *o2 = malloc(sizeof(float) * n);
    char msg[256];
    uint32_t seed = rng;
    T_CHECKF(one(&c, 0, o1, msg, sizeof msg) == 0, "%s", msg);
    rng = seed;
    T_CHECKF(one(&c, 1, o2, msg, sizeof msg) == 0, "%s", msg);
    double worst = 0;
    for (size_t i = 0; i < n; i++) if (fabs(o1[i] - o2[i]) > worst) worst = fabs(o1[i] - o2[i]);
    printf("     slot order reversed: max |out diff| %.3g\n", worst);
    T_CHECKF(worst < 1e-6, "slot order changes the output by %g", worst);
    free(o1); free(o2);
}

int main(void) {
    T_RUN(test_vs_brute);
    T_RUN(test_slot_order);
    return t_summary();
}
