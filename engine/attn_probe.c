#include "attn_probe.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int probe_init(cr_probe *p, const cr_state *s, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    const hparams *hp = &s->m->hp;
    p->n_layer = hp->n_layer; p->n_kv = hp->n_kv; p->n_head = hp->n_head;
    p->S = s->ctrl.cfg.S; p->N = s->ctrl.cfg.N; p->max_L = s->max_L;
    p->layer_from = 0; p->layer_to = hp->n_layer;
    p->row = (size_t)p->S + p->N + p->max_L;
    size_t nh = (size_t)p->n_layer * p->n_kv;
    p->w = calloc(nh * p->row, sizeof *p->w);
    p->og = calloc(nh * (size_t)(p->N ? p->N : 1), sizeof *p->og);
    p->hcap = 1024;
    p->hk = malloc(p->hcap * sizeof *p->hk);
    p->hv = calloc(p->hcap, sizeof *p->hv);
    if (!p->w || !p->og || !p->hk || !p->hv) {
        probe_free(p);
        snprintf(err, errlen, "out of memory allocating the attention probe");
        return -1;
    }
    memset(p->hk, 0xff, p->hcap * sizeof *p->hk);   /* -1 = empty */
    return 0;
}

void probe_free(cr_probe *p) {
    free(p->w); free(p->og); free(p->hk); free(p->hv);
    memset(p, 0, sizeof *p);
}

void probe_attach(cr_state *s, cr_probe *p) { s->probe = p; }
void probe_detach(cr_state *s) { s->probe = NULL; }

void probe_clear(cr_probe *p) {
    if (p->hn) {
        memset(p->hk, 0xff, p->hcap * sizeof *p->hk);
        memset(p->hv, 0, p->hcap * sizeof *p->hv);
    }
    p->hn = 0; p->n_queries = 0; p->total = 0;
}

static size_t hslot(uint64_t og, size_t cap) {
    og ^= og >> 33; og *= 0xff51afd7ed558ccdULL; og ^= og >> 33;
    return (size_t)og & (cap - 1);
}

static int hgrow(cr_probe *p) {
    size_t nc = p->hcap * 2;
    int64_t *k = malloc(nc * sizeof *k);
    float *v = calloc(nc, sizeof *v);
    if (!k || !v) { free(k); free(v); return -1; }
    memset(k, 0xff, nc * sizeof *k);
    for (size_t i = 0; i < p->hcap; i++) {
        if (p->hk[i] < 0) continue;
        size_t j = hslot((uint64_t)p->hk[i], nc);
        while (k[j] >= 0) j = (j + 1) & (nc - 1);
        k[j] = p->hk[i]; v[j] = p->hv[i];
    }
    free(p->hk); free(p->hv);
    p->hk = k; p->hv = v; p->hcap = nc;
    return 0;
}

static int hadd(cr_probe *p, int64_t og, float w) {
    if ((p->hn + 1) * 2 > p->hcap && hgrow(p)) return -1;
    size_t j = hslot((uint64_t)og, p->hcap);
    while (p->hk[j] >= 0 && p->hk[j] != og) j = (j + 1) & (p->hcap - 1);
    if (p->hk[j] < 0) { p->hk[j] = og; p->hn++; }
    p->hv[j] += w;
    return 0;
}

float probe_weight(const cr_probe *p, int64_t og) {
    if (og < 0 || !p->hk) return 0;
    size_t j = hslot((uint64_t)og, p->hcap);
    while (p->hk[j] >= 0) {
        if (p->hk[j] == og) return p->hv[j];
        j = (j + 1) & (p->hcap - 1);
    }
    return 0;
}

size_t probe_count(const cr_probe *p) { return p->hn; }
double probe_total(const cr_probe *p) { return p->total; }

size_t probe_dump(const cr_probe *p, cr_probe_hit *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < p->hcap && n < cap; i++)
        if (p->hk[i] >= 0) { out[n].og = p->hk[i]; out[n].w = p->hv[i]; n++; }
    return n;
}

static int hit_cmp(const void *a, const void *b) {
    const cr_probe_hit *x = a, *y = b;
    if (x->w != y->w) return x->w > y->w ? -1 : 1;
    return x->og < y->og ? -1 : x->og > y->og;
}

int probe_top(const cr_probe *p, cr_probe_hit *out, int k) {
    if (k <= 0 || !p->hn) return 0;
    cr_probe_hit *all = malloc(p->hn * sizeof *all);
    if (!all) return 0;
    size_t n = probe_dump(p, all, p->hn);
    qsort(all, n, sizeof *all, hit_cmp);
    int m = (size_t)k < n ? k : (int)n;
    memcpy(out, all, (size_t)m * sizeof *out);
    free(all);
    return m;
}

void probe_chunk_begin(cr_probe *p, int n_sinks, int nv, int L, int64_t t0) {
    p->c_sinks = n_sinks; p->c_nv = nv; p->c_L = L; p->c_t0 = t0;
    int64_t m0 = p->q_from - t0;
    if (m0 < 0) m0 = 0;
    p->c_m0 = (int)(m0 < L ? m0 : L);
    p->c_active = p->c_m0 < L && L <= p->max_L && nv <= p->N && n_sinks <= p->S;
    if (!p->c_active) return;
    size_t used = (size_t)n_sinks + nv + L;
    for (int l = p->layer_from; l < p->layer_to && l < p->n_layer; l++)
        for (int h = 0; h < p->n_kv; h++)
            memset(p->w + ((size_t)l * p->n_kv + h) * p->row, 0, used * sizeof *p->w);
}

float *probe_row(cr_probe *p, int layer, int kv, int *m0) {
    if (!p->c_active || layer < p->layer_from || layer >= p->layer_to) return NULL;
    *m0 = p->c_m0;
    return p->w + ((size_t)layer * p->n_kv + kv) * p->row;
}

void probe_slots(cr_probe *p, int layer, int kv, const int64_t *og, const int32_t *vslots, int nv) {
    if (!p->c_active || layer < p->layer_from || layer >= p->layer_to) return;
    int64_t *d = p->og + ((size_t)layer * p->n_kv + kv) * (size_t)p->N;
    for (int i = 0; i < nv; i++) d[i] = og ? og[vslots[i]] : -1;
}

int probe_chunk_end(cr_probe *p) {
    if (!p->c_active) return 0;
    int rc = 0;
    double tot = 0;
    for (int l = p->layer_from; l < p->layer_to && l < p->n_layer; l++)
        for (int h = 0; h < p->n_kv; h++) {
            const float *w = p->w + ((size_t)l * p->n_kv + h) * p->row;
            const int64_t *og = p->og + ((size_t)l * p->n_kv + h) * (size_t)p->N;
            for (int j = 0; j < p->c_sinks; j++) { tot += w[j]; if (w[j] != 0 && hadd(p, j, w[j])) rc = -1; }
            w += p->c_sinks;
            for (int i = 0; i < p->c_nv; i++) { tot += w[i]; if (w[i] != 0 && og[i] >= 0 && hadd(p, og[i], w[i])) rc = -1; }
            w += p->c_nv;
            for (int j = 0; j < p->c_L; j++) { tot += w[j]; if (w[j] != 0 && hadd(p, p->c_t0 + j, w[j])) rc = -1; }
        }
    p->total += tot;
    p->n_queries += p->c_L - p->c_m0;
    p->c_active = 0;
    return rc;
}

/* The GPU path (engine/state_device.c): a dense array of weights by original index, of
 * n_queries counted queries, added to the table. */
int probe_add_dense(cr_probe *p, const float *w, int64_t n, int64_t n_queries) {
    double tot = 0;
    for (int64_t og = 0; og < n; og++)
        if (w[og] != 0.0f) {
            if (hadd(p, og, w[og])) return -1;
            tot += w[og];
        }
    p->total += tot;
    p->n_queries += n_queries;
    return 0;
}
