#include "attn_cpu.h"
#include "quant.h"
#include "gguf.h"
#include <math.h>
#include <string.h>
#include "vexp.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#define ATTN_AVX512 1
#endif

#define ATTN_GB 4   /* query heads scored together (they share keys and the causal length) */

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t attn_scratch_floats(int S, int N, int L, int hd, int n_rep) {
    size_t nk = (size_t)S + N + L, nkp = pad16(nk), hdp = pad16((size_t)hd);
    /* keys transposed ([hd][nkp] f32, rotated), values by key ([nkp][hdp] f32, 0 past hd), ATTN_GB
     * logit rows [nkp], per-head columns [n_rep][nk], a tile of 16 keys ([16][hd]), alignment
     * slack (hd + 96 floats) */
    return nkp * hd + nkp * hdp + nkp * ATTN_GB + nk * n_rep + (size_t)hd + (size_t)hd * 16 + 96;
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

#ifdef ATTN_AVX512
static inline __mmask16 tail_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* Keys (pre-RoPE fp16, rotated at their position) go into KT columns through a tile of 16
 * keys ([16][hd] rows, in L1): each full tile is transposed 16 x 16 in registers and stored as
 * one 64-byte row per dimension (storing every key straight into the transposed array touched
 * hd cache lines per key). Values are rows of VR ([nkp][hdp]). */
typedef struct { float *tk; int n, j0; } kv_tile;

/* Rows r[0..16) -> columns: c[i][j] = r[j][i] (unpack ps, unpack pd, two 128-bit shuffles). */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {          /* u[4i+k], 128-bit lane l: column 4l+k of rows 4i..4i+3 */
        __m512d t0 = _mm512_castps_pd(t[4 * i]), t1 = _mm512_castps_pd(t[4 * i + 1]);
        __m512d t2 = _mm512_castps_pd(t[4 * i + 2]), t3 = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int k = 0; k < 4; k++) {
        __m512 x0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x44), x1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xEE);
        __m512 y0 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x44), y1 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xEE);
        r[k] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[4 + k] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
        r[8 + k] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[12 + k] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
    }
}

static void tile_flush(kv_tile *t, float *KT, size_t nkp, int hd) {
    if (!t->n) return;
    if (t->n < 16) memset(t->tk + (size_t)t->n * hd, 0, sizeof(float) * (16 - (size_t)t->n) * hd);   /* padding columns: 0 */
    for (int d0 = 0; d0 < hd; d0 += 16) {
        __m512 r[16];
        __mmask16 mk = tail_mask(hd - d0);
        for (int c = 0; c < 16; c++) r[c] = _mm512_maskz_loadu_ps(mk, t->tk + (size_t)c * hd + d0);
        transpose16(r);
        for (int d = 0; d < 16 && d0 + d < hd; d++) _mm512_store_ps(KT + (size_t)(d0 + d) * nkp + t->j0, r[d]);
    }
    t->n = 0;
}

/* key[hd] = RoPE(fp16 k16) at the position of cs: 16 dimensions per vector where the rotation
 * covers the whole head in vector-sized pieces, else one pair at a time. The same roundings as
 * rope_rotate vectorized by GCC -O3 -march=native (x0 c - x1 s = fma(x0, c, -(x1 s)),
 * x0 s + x1 c = fma(x0, s, x1 c)), so the keys are bit-identical to the scalar path's there. */
static inline void rotate_key(float *key, const uint16_t *k16, const float *cs, const attn_args *a) {
    const int hd = a->hd, pairs = a->rope_pairs;
    if (2 * pairs == hd && !a->neox && hd % 16 == 0) {          /* pairs (2i, 2i+1) */
        for (int d0 = 0; d0 < hd; d0 += 16) {
            __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k16 + d0)));
            __m512 c = _mm512_loadu_ps(cs + d0);
            __m512 x1 = _mm512_mul_ps(_mm512_movehdup_ps(x), _mm512_permute_ps(c, 0xB1));   /* x1 s, x1 c */
            _mm512_storeu_ps(key + d0, _mm512_fmaddsub_ps(_mm512_moveldup_ps(x), c, x1));      /* x0 c -, x0 s + */
        }
    } else if (2 * pairs == hd && a->neox && pairs % 16 == 0) {  /* pairs (i, i + hd/2) */
        const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
        for (int i0 = 0; i0 < pairs; i0 += 16) {
            __m512 lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k16 + i0)));
            __m512 hi = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k16 + pairs + i0)));
            __m512 c0 = _mm512_loadu_ps(cs + 2 * i0), c1 = _mm512_loadu_ps(cs + 2 * i0 + 16);
            __m512 c = _mm512_permutex2var_ps(c0, ie, c1), sn = _mm512_permutex2var_ps(c0, io, c1);
            _mm512_storeu_ps(key + i0, _mm512_fmsub_ps(lo, c, _mm512_mul_ps(hi, sn)));
            _mm512_storeu_ps(key + pairs + i0, _mm512_fmadd_ps(lo, sn, _mm512_mul_ps(hi, c)));
        }
    } else {
        load_key(key, k16, hd);
        rope_rotate(key, cs, pairs, a->neox);
    }
}

/* Key j (column j, taken in order 0, 1, 2, ...) */
static void put_kv(kv_tile *t, float *KT, float *VR, size_t nkp, size_t hdp, int j, const uint16_t *k16, const uint16_t *v16,
                   const float *cs, const attn_args *a) {
    const int hd = a->hd, c = j & 15;
    if (c == 0) t->j0 = j;
    rotate_key(t->tk + (size_t)c * hd, k16, cs, a);
    float *v = VR + (size_t)j * hdp;
    int d = 0;
    for (; d + 16 <= hd; d += 16) _mm512_store_ps(v + d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v16 + d))));
    for (; d < hd; d++) v[d] = f16_to_f32(v16[d]);
    for (size_t e = (size_t)hd; e < hdp; e++) v[e] = 0;
    t->n = c + 1;
    if (c == 15) tile_flush(t, KT, nkp, hd);
}

/* o[d0 .. d0 + 16 NV) (the last vector masked) = p[0..nb) . VR[.][d0 ..]: key chunks of 64
 * in U interleaved FMA chains, each chunk then added to the sums. */
#define PV_CHUNK 64
static inline __attribute__((always_inline)) void pv_cols(const float *p, const float *VR, size_t hdp, int nb, int d0,
                                                          const int NV, float *o, __mmask16 last) {
    enum { U = 2 };
    const int u = NV == 1 ? 4 : U;
    __m512 sum[4], acc[4][4];
    for (int v = 0; v < NV; v++) sum[v] = _mm512_setzero_ps();
    for (int k0 = 0; k0 < nb; k0 += PV_CHUNK) {
        int ke = k0 + PV_CHUNK < nb ? k0 + PV_CHUNK : nb;
        for (int i = 0; i < u; i++) for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
        for (int k = k0; k < ke; k += u)            /* nb is a multiple of 16 */
            for (int i = 0; i < u; i++) {
                __m512 pb = _mm512_set1_ps(p[k + i]);
                const float *vr = VR + (size_t)(k + i) * hdp + d0;
                for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(pb, _mm512_load_ps(vr + 16 * v), acc[i][v]);
            }
        for (int v = 0; v < NV; v++) {
            __m512 c = u == 4 ? _mm512_add_ps(_mm512_add_ps(acc[0][v], acc[1][v]), _mm512_add_ps(acc[2][v], acc[3][v]))
                              : _mm512_add_ps(acc[0][v], acc[1][v]);
            sum[v] = _mm512_add_ps(sum[v], c);
        }
    }
    for (int v = 0; v < NV - 1; v++) _mm512_storeu_ps(o + 16 * v, sum[v]);
    _mm512_mask_storeu_ps(o + 16 * (NV - 1), last, sum[NV - 1]);
}

/* Scaled logits of G query heads (compile-time G) over keys [0, n) into rows [G][nkp] and
 * their maxima: KB blocks of 16 keys per pass (G x KB independent FMA chains over d). */
static inline __attribute__((always_inline)) void qk_step(const float *const *q, const float *KT, size_t nkp, int hd, int kb, int n,
                                                          const int G, const int KB, float *rows, __m512 vscale, __m512 *vmx) {
    __m512 acc[ATTN_GB][4];
    for (int g = 0; g < G; g++) for (int b = 0; b < KB; b++) acc[g][b] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m512 kv[4];
        for (int b = 0; b < KB; b++) kv[b] = _mm512_loadu_ps(KT + (size_t)d * nkp + kb + 16 * b);
        for (int g = 0; g < G; g++) {
            __m512 qv = _mm512_set1_ps(q[g][d]);
            for (int b = 0; b < KB; b++) acc[g][b] = _mm512_fmadd_ps(qv, kv[b], acc[g][b]);
        }
    }
    for (int b = 0; b < KB; b++) {
        __mmask16 mk = tail_mask(n - kb - 16 * b);
        for (int g = 0; g < G; g++) {
            __m512 s = _mm512_mul_ps(acc[g][b], vscale);
            _mm512_storeu_ps(rows + (size_t)g * nkp + kb + 16 * b, s);
            vmx[g] = _mm512_mask_max_ps(vmx[g], mk, vmx[g], s);
        }
    }
}

static inline __attribute__((always_inline)) void qk_rows(const float *const *q, const float *KT, size_t nkp, int hd, int n,
                                                          const int G, float *rows, __m512 vscale, float *mx) {
    __m512 vmx[ATTN_GB];
    for (int g = 0; g < G; g++) vmx[g] = _mm512_set1_ps(-INFINITY);
    int kb = 0;
    for (; kb + 48 < n; kb += 64) qk_step(q, KT, nkp, hd, kb, n, G, 4, rows, vscale, vmx);
    for (; kb < n; kb += 16) qk_step(q, KT, nkp, hd, kb, n, G, 1, rows, vscale, vmx);
    for (int g = 0; g < G; g++) mx[g] = _mm512_reduce_max_ps(vmx[g]);
}

/* Queries m of heads g0..g0+G-1 over keys [0, n). */
static void attn_rows(const attn_args *a, const float *KT, const float *VR, size_t nkp, size_t hdp, float *rows,
                      float *col, int nk, int g0, int G, int m, int n, float scale) {
    const int hd = a->hd;
    const float *q[ATTN_GB];
    float mx[ATTN_GB], inv[ATTN_GB];
    for (int g = 0; g < G; g++) q[g] = a->q + (size_t)m * a->q_stride + (size_t)(g0 + g) * hd;
    const __m512 vscale = _mm512_set1_ps(scale);
    /* logits and their row max */
    switch (G) {
    case 4: qk_rows(q, KT, nkp, hd, n, 4, rows, vscale, mx); break;
    case 3: qk_rows(q, KT, nkp, hd, n, 3, rows, vscale, mx); break;
    case 2: qk_rows(q, KT, nkp, hd, n, 2, rows, vscale, mx); break;
    default: qk_rows(q, KT, nkp, hd, n, 1, rows, vscale, mx); break;
    }
    /* exp and the row sum (double, as the reference) */
    for (int g = 0; g < G; g++) {
        float *row = rows + (size_t)g * nkp;
        __m512 vm = _mm512_set1_ps(mx[g]);
        __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
        for (int kb = 0; kb < n; kb += 16) {
            __mmask16 mk = tail_mask(n - kb);
            __m512 e = _mm512_maskz_mov_ps(mk, exp512(_mm512_sub_ps(_mm512_loadu_ps(row + kb), vm)));
            _mm512_storeu_ps(row + kb, e);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
        }
        inv[g] = (float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)));
    }
    /* probabilities, EMA columns, probe */
    float wm = a->w[m];
    float *pr = a->probe && m >= a->probe_m0 ? a->probe : NULL;
    for (int g = 0; g < G; g++) {
        float *row = rows + (size_t)g * nkp, *cg = col + (size_t)(g0 + g) * nk;
        __m512 vi = _mm512_set1_ps(inv[g]), vw = _mm512_set1_ps(wm);
        for (int kb = 0; kb < n; kb += 16) {
            __mmask16 mk = tail_mask(n - kb);
            __m512 p = _mm512_mul_ps(_mm512_loadu_ps(row + kb), vi);
            _mm512_storeu_ps(row + kb, p);
            __m512 c = _mm512_maskz_loadu_ps(mk, cg + kb);
            _mm512_mask_storeu_ps(cg + kb, mk, _mm512_fmadd_ps(vw, p, c));
            if (pr) _mm512_mask_storeu_ps(pr + kb, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, pr + kb), p));
        }
    }
    /* out = p . V in float (p is 0 past n; VR is finite there) */
    int nb = (n + 15) & ~15;
    for (int g = 0; g < G; g++) {
        const float *pg = rows + (size_t)g * nkp;
        float *o = a->out + (size_t)m * a->out_stride + (size_t)(g0 + g) * hd;
        for (int d0 = 0; d0 < hd; d0 += 64) {
            int nv = (hd - d0 + 15) / 16 < 4 ? (hd - d0 + 15) / 16 : 4;
            __mmask16 last = tail_mask(hd - d0 - 16 * (nv - 1));
            switch (nv) {
            case 4: pv_cols(pg, VR, hdp, nb, d0, 4, o + d0, last); break;
            case 3: pv_cols(pg, VR, hdp, nb, d0, 3, o + d0, last); break;
            case 2: pv_cols(pg, VR, hdp, nb, d0, 2, o + d0, last); break;
            default: pv_cols(pg, VR, hdp, nb, d0, 1, o + d0, last); break;
            }
        }
    }
}

void attn_chunk_cpu(const attn_args *a) {
    const int hd = a->hd, L = a->L, nc = a->n_sinks + a->nv, nk = nc + L;
    const size_t nkp = pad16((size_t)nk), hdp = pad16((size_t)hd);
    float *base = (float *)(((uintptr_t)a->scratch + 63) & ~(uintptr_t)63);   /* <= 15 floats of slack */
    float *KT = base;                        /* [hd][nkp] rotated keys */
    float *VR = KT + (size_t)hd * nkp;      /* [nkp][hdp] values */
    float *rows = VR + nkp * hdp;            /* [ATTN_GB][nkp] logits, then probabilities */
    float *col = rows + (size_t)ATTN_GB * nkp; /* [n_rep][nk] */
    kv_tile tile;
    tile.tk = (float *)(((uintptr_t)(col + (size_t)nk * a->n_rep) + 63) & ~(uintptr_t)63);   /* [16][hd] f32 */
    tile.n = 0; tile.j0 = 0;
    const size_t rp = (size_t)a->rope_pairs * 2;
    for (int j = 0; j < a->n_sinks; j++)
        put_kv(&tile, KT, VR, nkp, hdp, j, a->h->sink_k + (size_t)j * hd, a->h->sink_v + (size_t)j * hd,
               a->rope_cs + (size_t)j * rp, a);
    for (int i = 0; i < a->nv; i++) {
        int s = a->vslots[i];
        put_kv(&tile, KT, VR, nkp, hdp, a->n_sinks + i, a->h->k + (size_t)s * hd, a->h->v + (size_t)s * hd,
               a->rope_cs + (size_t)a->slot_pos[s] * rp, a);
    }
    for (int j = 0; j < L; j++)
        put_kv(&tile, KT, VR, nkp, hdp, nc + j, a->kc + (size_t)j * a->kv_stride, a->vc + (size_t)j * a->kv_stride,
               a->rope_cs + (size_t)(a->p0 + j) * rp, a);
    tile_flush(&tile, KT, nkp, hd);         /* columns nk..nkp-1 of the last tile are 0 */
    memset(VR + (size_t)nk * hdp, 0, sizeof(float) * (nkp - (size_t)nk) * hdp);
    memset(col, 0, sizeof(float) * (size_t)nk * a->n_rep);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int g0 = 0; g0 < a->n_rep; g0 += ATTN_GB) {
        int G = a->n_rep - g0 < ATTN_GB ? a->n_rep - g0 : ATTN_GB;
        for (int m = 0; m < L; m++)
            attn_rows(a, KT, VR, nkp, hdp, rows, col, nk, g0, G, m, nc + m + 1, scale);
    }
    for (int k = 0; k < nk; k++) {
        float mx = col[k];
        for (int g = 1; g < a->n_rep; g++) if (col[(size_t)g * nk + k] > mx) mx = col[(size_t)g * nk + k];
        a->r[k] = mx;
    }
}

#else  /* scalar reference */

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
#endif
