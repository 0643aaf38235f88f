#include "attn_cpu.h"
#include "quant.h"
#include "gguf.h"
#include <math.h>
#include <string.h>

size_t attn_scratch_floats(int S, int N, int L, int hd, int n_rep) {
    size_t nk = (size_t)S + N + L;
    /* rotated keys + values (f32), logits row, per-head columns */
    return nk * hd * 2 + nk + nk * n_rep + 64;
}

void rope_rotate(float *x, const float *cs, int pairs, int neox) {
    for (int i = 0; i < pairs; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1];
        int a = neox ? i : 2 * i, b = neox ? i + pairs : 2 * i + 1;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

static void load_key(float *dst, const uint16_t *src, int hd) {
    for (int d = 0; d < hd; d++) dst[d] = f16_to_f32(src[d]);
}

void attn_chunk_cpu(const attn_args *a) {
    const int hd = a->hd, L = a->L, nc = a->n_sinks + a->nv, nk = nc + L;
    float *K = a->scratch;                  /* [nk][hd] rotated keys */
    float *V = K + (size_t)nk * hd;         /* [nk][hd] */
    float *row = V + (size_t)nk * hd;       /* [nk] */
    float *col = row + nk;                  /* [n_rep][nk] */
    const size_t rp = (size_t)a->rope_pairs * 2;
    for (int j = 0; j < a->n_sinks; j++) {
        load_key(K + (size_t)j * hd, a->h->sink_k + (size_t)j * hd, hd);
        rope_rotate(K + (size_t)j * hd, a->rope_cs + (size_t)j * rp, a->rope_pairs, a->neox);
        load_key(V + (size_t)j * hd, a->h->sink_v + (size_t)j * hd, hd);
    }
    for (int i = 0; i < a->nv; i++) {
        int s = a->vslots[i], k = a->n_sinks + i;
        load_key(K + (size_t)k * hd, a->h->k + (size_t)s * hd, hd);
        rope_rotate(K + (size_t)k * hd, a->rope_cs + (size_t)a->slot_pos[s] * rp, a->rope_pairs, a->neox);
        load_key(V + (size_t)k * hd, a->h->v + (size_t)s * hd, hd);
    }
    for (int j = 0; j < L; j++) {
        int k = nc + j;
        load_key(K + (size_t)k * hd, a->kc + (size_t)j * a->kv_stride, hd);
        rope_rotate(K + (size_t)k * hd, a->rope_cs + (size_t)(a->p0 + j) * rp, a->rope_pairs, a->neox);
        load_key(V + (size_t)k * hd, a->vc + (size_t)j * a->kv_stride, hd);
    }
    memset(col, 0, sizeof(float) * (size_t)nk * a->n_rep);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int g = 0; g < a->n_rep; g++) {
        float *cg = col + (size_t)g * nk;
        for (int m = 0; m < L; m++) {
            const float *q = a->q + (size_t)m * a->q_stride + (size_t)g * hd;
            int n = nc + m + 1;             /* causal within the chunk */
            float mx = -INFINITY;
            for (int k = 0; k < n; k++) {
                float v = vec_dot_f(GGML_TYPE_F32, K + (size_t)k * hd, q, hd) * scale;
                row[k] = v; if (v > mx) mx = v;
            }
            double sum = 0;
            for (int k = 0; k < n; k++) { row[k] = expf(row[k] - mx); sum += row[k]; }
            float inv = (float)(1.0 / sum);
            float *o = a->out + (size_t)m * a->out_stride + (size_t)g * hd;
            memset(o, 0, sizeof(float) * hd);
            float wm = a->w[m];
            float *pr = a->probe && m >= a->probe_m0 ? a->probe : NULL;
            for (int k = 0; k < n; k++) {
                float p = row[k] * inv;
                cg[k] += wm * p;
                if (pr) pr[k] += p;
                const float *vk = V + (size_t)k * hd;
                for (int d = 0; d < hd; d++) o[d] += p * vk[d];
            }
        }
    }
    for (int k = 0; k < nk; k++) {
        float mx = col[k];
        for (int g = 1; g < a->n_rep; g++) if (col[(size_t)g * nk + k] > mx) mx = col[(size_t)g * nk + k];
        a->r[k] = mx;
    }
}
