/* Decode attention (one query token) over [sinks | cache slots | the token itself],
 * flash-decoding: the keys are split across blocks (CRK_DEC_KS keys each); every block
 * rotates its keys once, computes the logits of all query heads of one KV head (GQA: each
 * key is read once for the whole group), and keeps (max, sum, sum p.v) of its split; a
 * finish kernel merges the splits and turns the stored logits into the
 * EMA score columns r = max_g w_0 * p_g. All fp32 (keys and values read as fp16). */
#include "attn_common.cuh"
#include "mma.cuh"
#include <stdlib.h>

/* CRK_DECODE_SIMT=1: the fp32 SIMT kernel even where the tensor-core one applies (benchmarks) */
static int getenv_simt(void) {
    static int v = -1;
    if (v < 0) { const char *e = getenv("CRK_DECODE_SIMT"); v = e && *e == '1'; }
    return v;
}

/* Lanes per key: LPK = hd / 8 (each lane holds 8 dimensions). */
template <int LPK, int R>
#define DEC_NT 128   /* threads per decode block (256 measured slower: 92 vs 85 us) */
#define DEC_NW (DEC_NT / 32)
__global__ void __launch_bounds__(DEC_NT, R == 8 ? 2 : 4) attn_dec_p1(crk_attn a, int nsplit) {
    extern __shared__ __align__(16) float dsm[];
    const int hd = 8 * LPK;
    float *qs = dsm;                          /* [R][hd] */
    float *lg = qs + R * hd;          /* [R][KS] logits, then p */
    float *red = lg + R * CRK_DEC_KS; /* [DEC_NW warps][R][hd] */
    __shared__ float smx[R], ssum[R];
    const int split = blockIdx.x, kvh = blockIdx.y, g0 = blockIdx.z * R;
    const int n_rep = a.n_head / a.n_kv, nr = min(R, n_rep - g0);
    const int nk = a.S + a.N + 1;
    const int kb0 = split * CRK_DEC_KS, kb1 = min(nk, kb0 + CRK_DEC_KS);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int lik = tid % LPK, grp = tid / LPK;
    const int gbase = lane & ~(LPK - 1);
    const unsigned gmask = LPK == 32 ? 0xffffffffu : (((1u << LPK) - 1u) << gbase);
    const int n_sinks = a.st->n_sinks;
    const int64_t p0 = a.st->p0;
    const float scale = 1.0f / sqrtf((float)hd);
    const int rp = a.rope_pairs, rp8 = rp / 8;
    float *glg = a.work + crk_dec_lg_off(a.n_head);

    for (int i = tid; i < nr * hd; i += DEC_NT) {
        int r = i / hd, d = i % hd;
        qs[i] = a.q[(size_t)(kvh * n_rep + g0 + r) * hd + d];
    }
    __syncthreads();

    /* every group's keys (KPG of them) are addressed, then all their K and V rows are
     * loaded before any is used (KPG independent 16-byte loads in flight per lane), then
     * their V rows while the softmax runs */
    constexpr int NGRP = DEC_NT / LPK;
    constexpr int KPG = (CRK_DEC_KS + NGRP - 1) / NGRP;
    /* each lane's 8 dimensions of every query row, in registers (reading them from shared
     * memory per key was bank-conflicted and dominated the kernel) */
    float qr[R][8];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int e = 0; e < 8; e++) qr[r][e] = r < nr ? qs[r * hd + 8 * lik + e] : 0.f;
    int kpos[KPG];
    uint4 rk[KPG], rv[KPG];
#pragma unroll
    for (int j = 0; j < KPG; j++) {
        const int kb = kb0 + grp + j * NGRP;
        kpos[j] = -1;
        rk[j] = rv[j] = make_uint4(0, 0, 0, 0);
        if (kb < kb1) {
            crk_kinfo ki = crk_key_info(a, kvh, kb, n_sinks, p0);
            kpos[j] = ki.pos;
            if (ki.pos >= 0) rk[j] = *(const uint4 *)(ki.k + 8 * lik);
        }
    }
#pragma unroll
    for (int j = 0; j < KPG; j++) {
        const int kb = kb0 + grp + j * NGRP;
        if (kb >= kb1) break;          /* uniform across the group's lanes */
        const bool valid = kpos[j] >= 0;
        const uint4 raw = rk[j];
        float k[8];
        {
            const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
            for (int e = 0; e < 4; e++) { k[2 * e] = crk_h2f((uint16_t)(w[e] & 0xFFFF)); k[2 * e + 1] = crk_h2f((uint16_t)(w[e] >> 16)); }
        }
        if (a.neox) {
            const int c = lik;
            const int pc = c < rp8 ? c + rp8 : (c < 2 * rp8 ? c - rp8 : c);
            uint4 pr;
            pr.x = __shfl_sync(gmask, raw.x, gbase + pc);
            pr.y = __shfl_sync(gmask, raw.y, gbase + pc);
            pr.z = __shfl_sync(gmask, raw.z, gbase + pc);
            pr.w = __shfl_sync(gmask, raw.w, gbase + pc);
            if (valid && c < 2 * rp8) {
                const uint32_t w[4] = {pr.x, pr.y, pr.z, pr.w};
                float kp[8];
#pragma unroll
                for (int e = 0; e < 4; e++) { kp[2 * e] = crk_h2f((uint16_t)(w[e] & 0xFFFF)); kp[2 * e + 1] = crk_h2f((uint16_t)(w[e] >> 16)); }
                const float *cs = a.rope_cs + (size_t)kpos[j] * rp * 2;
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    int d = 8 * c + e;
                    if (d < rp) {
                        float co = cs[2 * d], si = cs[2 * d + 1];
                        k[e] = k[e] * co - kp[e] * si;         /* x0 * c - x1 * s */
                    } else {
                        int p = d - rp;
                        float co = cs[2 * p], si = cs[2 * p + 1];
                        k[e] = kp[e] * si + k[e] * co;         /* x0 * s + x1 * c */
                    }
                }
            }
        } else if (valid) {
            const float4 *cs4 = (const float4 *)(a.rope_cs + (size_t)kpos[j] * rp * 2);
#pragma unroll
            for (int e = 0; e < 4; e += 2) {
                int p = 4 * lik + e;
                if (p + 1 < rp && (rp & 1) == 0) {
                    const float4 c2 = cs4[p / 2];   /* cos, sin of pairs p and p + 1 */
                    float x0 = k[2 * e], x1 = k[2 * e + 1];
                    k[2 * e] = x0 * c2.x - x1 * c2.y;
                    k[2 * e + 1] = x0 * c2.y + x1 * c2.x;
                    x0 = k[2 * e + 2]; x1 = k[2 * e + 3];
                    k[2 * e + 2] = x0 * c2.z - x1 * c2.w;
                    k[2 * e + 3] = x0 * c2.w + x1 * c2.z;
                } else if (p < rp) {
                    const float *cs = a.rope_cs + (size_t)kpos[j] * rp * 2;
                    float co = cs[2 * p], si = cs[2 * p + 1];
                    float x0 = k[2 * e], x1 = k[2 * e + 1];
                    k[2 * e] = x0 * co - x1 * si;
                    k[2 * e + 1] = x0 * si + x1 * co;
                }
            }
        }
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (r < nr) {
                float part = 0.f;
#pragma unroll
                for (int e = 0; e < 8; e++) part += qr[r][e] * k[e];
#pragma unroll
                for (int o = LPK / 2; o > 0; o >>= 1) part += __shfl_xor_sync(gmask, part, o);
                if (lik == 0) lg[r * CRK_DEC_KS + (kb - kb0)] = valid ? part * scale : -INFINITY;
            }
        }
    }
    /* the values are loaded now (the keys' registers are free), in flight during the softmax */
#pragma unroll
    for (int j = 0; j < KPG; j++) {
        const int kb = kb0 + grp + j * NGRP;
        if (kb < kb1 && kpos[j] >= 0) {
            crk_kinfo ki = crk_key_info(a, kvh, kb, n_sinks, p0);
            rv[j] = *(const uint4 *)(ki.v + 8 * lik);
        }
    }
    __syncthreads();
    const int cnt = kb1 - kb0;
    for (int r = warp; r < nr; r += DEC_NW) {
        float mx = -INFINITY;
        float *grow = glg + (size_t)(kvh * n_rep + g0 + r) * nk + kb0;
        for (int i = lane; i < cnt; i += 32) {
            const float v = lg[r * CRK_DEC_KS + i];
            grow[i] = v;          /* the logits for the score kernel, stored coalesced */
            mx = fmaxf(mx, v);
        }
        mx = crk_warp_max(mx);
        float sum = 0.f;
        for (int i = lane; i < cnt; i += 32) {
            float p = mx == -INFINITY ? 0.f : expf(lg[r * CRK_DEC_KS + i] - mx);
            lg[r * CRK_DEC_KS + i] = p;
            sum += p;
        }
        sum = crk_warp_sum(sum);
        if (lane == 0) { smx[r] = mx; ssum[r] = sum; }
    }
    __syncthreads();
    float o[R][8];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int e = 0; e < 8; e++) o[r][e] = 0.f;
#pragma unroll
    for (int j = 0; j < KPG; j++) {
        const int kb = kb0 + grp + j * NGRP;
        if (kb >= kb1) break;
        if (kpos[j] < 0) continue;
        const uint4 raw = rv[j];
        const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
        float v[8];
#pragma unroll
        for (int e = 0; e < 4; e++) { v[2 * e] = crk_h2f((uint16_t)(w[e] & 0xFFFF)); v[2 * e + 1] = crk_h2f((uint16_t)(w[e] >> 16)); }
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (r < nr) {
                float p = lg[r * CRK_DEC_KS + (kb - kb0)];
#pragma unroll
                for (int e = 0; e < 8; e++) o[r][e] += p * v[e];
            }
        }
    }
    /* sum over the key groups: first the groups of a warp (lanes lik, lik + LPK, ...), then the 4 warps */
#pragma unroll
    for (int r = 0; r < R; r++) {
        if (r < nr) {
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float v = o[r][e];
#pragma unroll
                for (int off = LPK; off < 32; off <<= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
                if (lane < LPK) red[((size_t)warp * R + r) * hd + 8 * lik + e] = v;
            }
        }
    }
    __syncthreads();
    float *part = a.work + crk_dec_part_off(a.n_head, a.S, a.N);
    for (int i = tid; i < nr * hd; i += DEC_NT) {
        int r = i / hd, d = i % hd;
        float s = 0.f;
#pragma unroll
        for (int w = 0; w < DEC_NW; w++) s += red[((size_t)w * R + r) * hd + d];
        part[((size_t)split * a.n_head + kvh * n_rep + g0 + r) * (hd + 2) + 2 + d] = s;
    }
    if (tid < nr) {
        size_t pi = ((size_t)split * a.n_head + kvh * n_rep + g0 + tid) * (hd + 2);
        part[pi] = smx[tid];
        part[pi + 1] = ssum[tid];
    }
}

/* The splits' merge and the score columns in one kernel (they were two: 8 + 5 us per layer
 * of the 8B shape under Nsight Compute). Block (h, y) of KV head h first merges the maxima and
 * sums of its group's heads over all splits (a few KB from L2, redone by every block), then
 * blocks y < units each take 32 of the group's output dimensions (out, out16, out_q8, and
 * (max, 1/sum) in work) and the others share the keys' score columns r = max_g w_0 p_g (and
 * the probe): the two run side by side, not one after the other. Both issue their first loads
 * (the output partials, the logits of FIN_KPT keys per thread) before the merge's, so the two
 * round trips overlap. */
#define FIN_NT 256
#define FIN_KPT 4   /* keys per thread of a score block whose logits are loaded before the merge (groups of at most 8 heads) */
#define FIN_ML 5    /* split statistics a lane loads at once in the merge (160 splits per round) */
#define FIN_OL 24   /* splits a warp loads at once for the outputs (192 per round) */
/* steps (crk_attn.steps, skip_empty = 3): only the listed steps' keys are scored; key
 * index v of the list's order is key kmap(v) (nk: past the list, or past the keys) */
__global__ void __launch_bounds__(FIN_NT) attn_dec_finish(crk_attn a, int nsplit, const int32_t *steps) {
    crk_pdl_sync();
    const int kvh = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int n_rep = a.n_head / a.n_kv, hd = a.hd, nk = a.S + a.N + 1;
    const float *part = a.work + crk_dec_part_off(a.n_head, a.S, a.N);
    const size_t pstride = (size_t)a.n_head * (hd + 2);
    const int nch = (hd + 31) / 32, units = n_rep * nch;
    const float *glg = a.work + crk_dec_lg_off(a.n_head);
    /* first loads, before the merge: an output block's first FIN_OL splits (m, v), a score
     * block's logits of keys k0 + j * kst */
    float om[FIN_OL], ov[FIN_OL];
    float lg[FIN_KPT][8];
    const int ys = (int)blockIdx.y - units, nys = (int)gridDim.y - units;
    const int k0 = ys * FIN_NT + tid, kst = nys * FIN_NT;
    const bool pre = ys >= 0 && n_rep <= 8;
    const int nkl = steps ? 16 * min(steps[0], CRK_DEC_LIST_CAP) : nk;
    auto kmap = [&](int v) { return !steps ? v : v < nkl ? 16 * steps[1 + (v >> 4)] + (v & 15) : nk; };
    if ((int)blockIdx.y < units) {
        const int u = blockIdx.y, r = u / nch, d = (u % nch) * 32 + lane, dd = d < hd ? d : 0;
        const float *ph = part + (size_t)(kvh * n_rep + r) * (hd + 2);
#pragma unroll
        for (int j = 0; j < FIN_OL; j++) {
            const int i = warp + j * (FIN_NT / 32);
            om[j] = i < nsplit ? ph[(size_t)i * pstride] : -INFINITY;
            ov[j] = i < nsplit ? ph[(size_t)i * pstride + 2 + dd] : 0.f;
        }
    } else if (pre) {
#pragma unroll
        for (int j = 0; j < FIN_KPT; j++)
#pragma unroll
            for (int r = 0; r < 8; r++) {
                const int k = kmap(k0 + j * kst);
                lg[j][r] = r < n_rep && k < nk ? glg[(size_t)(kvh * n_rep + r) * nk + k] : -INFINITY;
            }
    }
    extern __shared__ float fsm[];
    float *sM = fsm, *sInv = fsm + n_rep;   /* [n_rep] each */
    for (int r = warp; r < n_rep; r += FIN_NT / 32) {
        /* one pass: every lane keeps a running (max, sum) over its splits, FIN_ML loaded at a time */
        const float *ph = part + (size_t)(kvh * n_rep + r) * (hd + 2);
        float M = -INFINITY, Ls = 0.f;
        for (int i0 = lane; i0 < nsplit; i0 += FIN_ML * 32) {
            float m[FIN_ML], l[FIN_ML];
#pragma unroll
            for (int u = 0; u < FIN_ML; u++) {
                const int i = i0 + 32 * u;
                m[u] = i < nsplit ? ph[(size_t)i * pstride] : -INFINITY;
                l[u] = i < nsplit ? ph[(size_t)i * pstride + 1] : 0.f;
            }
#pragma unroll
            for (int u = 0; u < FIN_ML; u++) {
                if (m[u] == -INFINITY) continue;
                if (m[u] > M) { Ls = Ls * expf(M - m[u]) + l[u]; M = m[u]; }   /* expf(-inf) = 0 on the first */
                else Ls += l[u] * expf(m[u] - M);
            }
        }
        const float Mw = crk_warp_max(M);
        Ls = Mw == -INFINITY ? 0.f : crk_warp_sum(M == -INFINITY ? 0.f : Ls * expf(M - Mw));
        if (lane == 0) { sM[r] = Mw; sInv[r] = Ls > 0.f ? 1.0f / Ls : 0.f; }
    }
    __syncthreads();
    /* outputs: block y < units takes 32 dimensions of one head; its 8 warps take every 8th
     * split, FIN_OL splits' loads in flight at a time, and add up through shared memory */
    __shared__ float so[FIN_NT / 32][32];
    if ((int)blockIdx.y < units) {
        const int u = blockIdx.y;
        const int r = u / nch, d = (u % nch) * 32 + lane, dd = d < hd ? d : 0, h = kvh * n_rep + r;
        const float *ph = part + (size_t)h * (hd + 2);
        const float M = sM[r];
        float acc = 0.f;
        if (M > -INFINITY)
            for (int i0 = warp;;) {   /* om, ov: splits i0 + j * 8, loaded */
#pragma unroll
                for (int j = 0; j < FIN_OL; j++) if (om[j] > -INFINITY) acc += ov[j] * expf(om[j] - M);
                i0 += FIN_OL * (FIN_NT / 32);
                if (i0 >= nsplit) break;
#pragma unroll
                for (int j = 0; j < FIN_OL; j++) {
                    const int i = i0 + j * (FIN_NT / 32);
                    om[j] = i < nsplit ? ph[(size_t)i * pstride] : -INFINITY;
                    ov[j] = i < nsplit ? ph[(size_t)i * pstride + 2 + dd] : 0.f;
                }
            }
        so[warp][lane] = acc;
        __syncthreads();
        if (warp == 0) {
            float v = 0.f;
#pragma unroll
            for (int w = 0; w < FIN_NT / 32; w++) v += so[w][lane];
            v *= sInv[r];
            if (d < hd) {
                a.out[(size_t)h * hd + d] = v;
                if (a.out16) a.out16[(size_t)h * hd + d] = crk_f2bf(v);
            }
            if (a.out_q8 && (hd & 31) == 0) crk_quantize_block(v, lane, a.out_q8 + ((size_t)h * hd + d) / 32);
        }
        if (blockIdx.y == 0 && tid < n_rep) { a.work[(size_t)(kvh * n_rep + tid) * 2] = sM[tid]; a.work[(size_t)(kvh * n_rep + tid) * 2 + 1] = sInv[tid]; }
        return;
    }
    /* score columns of this block's keys (a missing key's logit is -inf: p = 0) */
    const float w0 = a.w[0];
    auto put = [&](int k, float best, float psum) {   /* key k's score column and probe weight */
        if (a.probe && psum > 0.f) {
            const int64_t og = k < a.S ? (int64_t)k : k < a.S + a.N ? a.og[(size_t)kvh * a.N + (k - a.S)] : a.st->t0;
            if (og >= 0) atomicAdd(a.probe + og, psum);
        }
        a.r[(size_t)kvh * a.r_stride + k] = best;
    };
    int kb = k0;
    if (pre) {
#pragma unroll
        for (int j = 0; j < FIN_KPT; j++) {
            if (k0 + j * kst >= nkl) break;
            const int k = kmap(k0 + j * kst);
            if (k >= nk) continue;
            float best = 0.f, psum = 0.f;
#pragma unroll
            for (int r = 0; r < 8; r++) {
                if (r >= n_rep) break;
                const float p = expf(lg[j][r] - sM[r]) * sInv[r];
                best = fmaxf(best, w0 * p);
                psum += p;
            }
            put(k, best, psum);
        }
        kb = k0 + FIN_KPT * kst;
    }
    for (int v = kb; v < nkl; v += kst) {
        const int k = kmap(v);
        if (k >= nk) continue;
        float best = 0.f, psum = 0.f;
        for (int r = 0; r < n_rep; r++) {
            const float p = expf(glg[(size_t)(kvh * n_rep + r) * nk + k] - sM[r]) * sInv[r];
            best = fmaxf(best, w0 * p);
            psum += p;
        }
        put(k, best, psum);
    }
}
static void launch_dec_finish(const crk_attn *a, int nsplit, const int32_t *steps, cudaStream_t s) {
    const int nk = steps ? 16 * CRK_DEC_LIST_CAP : a->S + a->N + 1;   /* keys to score */
    const int units = (a->n_head / a->n_kv) * (int)crk_cdiv(a->hd, 32);   /* output units of 32 dimensions per KV head */
    const int nsb = (int)crk_cdiv(nk, FIN_NT * FIN_KPT);   /* score blocks: FIN_KPT keys per thread */
    const int ny = units + (nsb < 64 ? nsb : 64);
    crk_launch(true, attn_dec_finish, dim3(a->n_kv, ny), FIN_NT, sizeof(float) * 2 * (a->n_head / a->n_kv), s, *a, nsplit, steps);
    if (a->out_q8 && (a->hd & 31)) crk_quantize_q8(a->out, 1, a->n_head * a->hd, a->out_q8, s);
}

/* ================================================================ tensor cores
 * hd 64 / 128 (not in precise mode): a block takes DEC_TC_KS keys of one KV head and up to
 * 16 query heads of its group as the 16 rows of mma.sync m16n8k16 (fp16 operands, fp32
 * accumulation). Keys and values are copied to shared memory with cp.async, the keys
 * rotated there (fp32 arithmetic, rounded to fp16: the same rotated keys as the chunk
 * path's gather), then each warp takes 32 keys: logits (written for the score kernel),
 * the block's max and sum per row, P.V; the four warps' outputs are summed through shared
 * memory into the split's partial (max in natural-log units, as the SIMT kernel). */
#define DEC_TC_KS 128

template <int HD>
__global__ void __launch_bounds__(128, 3) attn_dec_tc(crk_attn a) {
    constexpr int RS = HD + 8, NCH = HD / 8, KS = DEC_TC_KS;
    constexpr int RSTEP = 128 / NCH, RPT = KS / RSTEP;   /* a thread's rows: r0 + m * RSTEP, m < RPT; its chunk ci */
    extern __shared__ __align__(16) uint16_t tsm[];
    uint16_t *Ks = tsm, *Vs = tsm + KS * RS;      /* [KS][RS] each; later the warps' outputs */
    __shared__ int kpos_s[KS];
    __shared__ float red_m[4][16], red_l[4][16];
    const int split = blockIdx.x, kvh = blockIdx.y, g0 = blockIdx.z * 16;
    const int n_rep = a.n_head / a.n_kv, nr = min(16, n_rep - g0);
    const int nk = a.S + a.N + 1, kb0 = split * KS, kb1 = min(nk, kb0 + KS);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int ci = tid % NCH, r0 = tid / NCH;
    /* Every row a cache slot (all splits but the first and the last): the copies start at
     * once from computed addresses, unfilled slots included (their rows are zeroed below,
     * once the positions have arrived); elsewhere each key is addressed with crk_key_info
     * and a missing key's copy fills zeros. */
    if (kb0 >= a.S && kb0 + KS <= a.S + a.N) {
        const size_t off = ((size_t)kvh * a.N + (kb0 - a.S + r0)) * HD + ci * 8;
#pragma unroll
        for (int m = 0; m < RPT; m++) {
            const int row = r0 + m * RSTEP;
            cp_async16(Ks + row * RS + ci * 8, a.ck + off + (size_t)m * RSTEP * HD, 16);
            cp_async16(Vs + row * RS + ci * 8, a.cv + off + (size_t)m * RSTEP * HD, 16);
        }
        if (tid < KS) kpos_s[tid] = a.slot_pos[kb0 - a.S + tid];
    } else {
        __shared__ const uint16_t *kp_s[KS], *vp_s[KS];
        if (tid < KS) {
            crk_kinfo ki;
            ki.pos = -1; ki.cj = -1; ki.k = ki.v = nullptr;
            if (kb0 + tid < kb1) ki = crk_key_info(a, kvh, kb0 + tid, a.st->n_sinks, a.st->p0);
            kpos_s[tid] = ki.pos; kp_s[tid] = ki.k; vp_s[tid] = ki.v;
        }
        __syncthreads();
#pragma unroll 4
        for (int m = 0; m < RPT; m++) {
            const int row = r0 + m * RSTEP;
            const bool ok = kpos_s[row] >= 0;
            cp_async16(Ks + row * RS + ci * 8, ok ? kp_s[row] + ci * 8 : a.ck, ok ? 16 : 0);
            cp_async16(Vs + row * RS + ci * 8, ok ? vp_s[row] + ci * 8 : a.cv, ok ? 16 : 0);
        }
    }
    cp_async_commit();
    /* the query rows (fp32 -> fp16 A fragments) while the copies fly */
    const float *qb = a.q + (size_t)(kvh * n_rep + g0) * HD;
    uint32_t qa[HD / 16][4];
    {
        float2 q0[HD / 16][2], q1[HD / 16][2];   /* rows g and g + 8: all loads in flight at once */
        const float2 z2 = make_float2(0.f, 0.f);
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            const int c0 = kk * 16 + 2 * t;
            q0[kk][0] = g < nr ? *(const float2 *)(qb + g * HD + c0) : z2;
            q0[kk][1] = g < nr ? *(const float2 *)(qb + g * HD + c0 + 8) : z2;
            q1[kk][0] = g + 8 < nr ? *(const float2 *)(qb + (g + 8) * HD + c0) : z2;
            q1[kk][1] = g + 8 < nr ? *(const float2 *)(qb + (g + 8) * HD + c0 + 8) : z2;
        }
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            qa[kk][0] = pack_h2(q0[kk][0].x, q0[kk][0].y);
            qa[kk][1] = pack_h2(q1[kk][0].x, q1[kk][0].y);
            qa[kk][2] = pack_h2(q0[kk][1].x, q0[kk][1].y);
            qa[kk][3] = pack_h2(q1[kk][1].x, q1[kk][1].y);
        }
    }
    __syncthreads();   /* kpos_s */
    /* RoPE of the keys, in place; a missing key's row is zeroed (its value row must not
     * carry NaN into P.V, where its p is 0). Not neox: the cos/sin of the first 8 rows are
     * loaded before the copies are waited for, the next 8 while the first rotate. */
    const int rp = a.rope_pairs, rp8 = rp / 8;
    const uint4 z4 = make_uint4(0, 0, 0, 0);
    if (!a.neox) {
        const bool rot = 4 * ci < rp;   /* rp % 8 == 0: all four pairs of the chunk rotate */
        constexpr int B = RPT < 8 ? RPT : 8;
        float4 cb[B][2];
#pragma unroll
        for (int m0 = 0; m0 < RPT; m0 += B) {
#pragma unroll
            for (int m = 0; m < B; m++) {
                const int pos = kpos_s[r0 + (m0 + m) * RSTEP];
                if (rot && pos >= 0) {
                    const float4 *cs4 = (const float4 *)(a.rope_cs + ((size_t)pos * rp + 4 * ci) * 2);
                    cb[m][0] = cs4[0]; cb[m][1] = cs4[1];
                }
            }
            if (m0 == 0) { cp_async_wait<0>(); __syncthreads(); }
#pragma unroll
            for (int m = 0; m < B; m++) {
                const int row = r0 + (m0 + m) * RSTEP, pos = kpos_s[row];
                uint16_t *kr = Ks + row * RS + ci * 8;
                if (pos < 0) { *(uint4 *)kr = z4; *(uint4 *)(Vs + row * RS + ci * 8) = z4; continue; }
                if (!rot) continue;
                float x[8], y[8];
                g_unpack8(*(const uint4 *)kr, x);
                const float4 c01 = cb[m][0], c23 = cb[m][1];
                y[0] = x[0] * c01.x - x[1] * c01.y; y[1] = x[0] * c01.y + x[1] * c01.x;
                y[2] = x[2] * c01.z - x[3] * c01.w; y[3] = x[2] * c01.w + x[3] * c01.z;
                y[4] = x[4] * c23.x - x[5] * c23.y; y[5] = x[4] * c23.y + x[5] * c23.x;
                y[6] = x[6] * c23.z - x[7] * c23.w; y[7] = x[6] * c23.w + x[7] * c23.z;
                *(uint4 *)kr = g_pack8(y);
            }
        }
    } else {
        cp_async_wait<0>();
        __syncthreads();
#pragma unroll
        for (int m = 0; m < RPT; m++) {
            const int row = r0 + m * RSTEP;
            if (kpos_s[row] < 0) { *(uint4 *)(Ks + row * RS + ci * 8) = z4; *(uint4 *)(Vs + row * RS + ci * 8) = z4; }
        }
        __syncthreads();
#pragma unroll 4
        for (int i = tid; i < KS * rp8; i += 128) {
            const int row = i / rp8, cj = i % rp8, pos = kpos_s[row];
            if (pos < 0) continue;
            uint16_t *k0 = Ks + row * RS + cj * 8, *k1 = k0 + rp;
            float x0[8], x1[8], y0[8], y1[8];
            g_unpack8(*(const uint4 *)k0, x0);
            g_unpack8(*(const uint4 *)k1, x1);
            const float *cs = a.rope_cs + ((size_t)pos * rp + cj * 8) * 2;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float co = cs[2 * e], si = cs[2 * e + 1];
                y0[e] = x0[e] * co - x1[e] * si;
                y1[e] = x0[e] * si + x1[e] * co;
            }
            *(uint4 *)k0 = g_pack8(y0);
            *(uint4 *)k1 = g_pack8(y1);
        }
    }
    __syncthreads();
    /* this warp's 32 keys: logits */
    const int wk0 = warp * 32;
    float sacc[4][4];
    crk_mma_abt<HD, 4, RS>(sacc, qa, Ks + wk0 * RS);
    const float scale = 1.0f / sqrtf((float)HD);
    float *glg = a.work + crk_dec_lg_off(a.n_head);
    float m0 = -INFINITY, m1 = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int kl = wk0 + nb * 8 + 2 * t + (e & 1), row = e < 2 ? g : g + 8;
            const float v = kpos_s[kl] >= 0 ? sacc[nb][e] * scale : -INFINITY;
            if (row < nr && kb0 + kl < kb1) glg[(size_t)(kvh * n_rep + g0 + row) * nk + kb0 + kl] = v;
            sacc[nb][e] = v * LOG2E;
            if (e < 2) m0 = fmaxf(m0, sacc[nb][e]); else m1 = fmaxf(m1, sacc[nb][e]);
        }
    }
    m0 = fmaxf(m0, __shfl_xor_sync(0xffffffffu, m0, 1)); m0 = fmaxf(m0, __shfl_xor_sync(0xffffffffu, m0, 2));
    m1 = fmaxf(m1, __shfl_xor_sync(0xffffffffu, m1, 1)); m1 = fmaxf(m1, __shfl_xor_sync(0xffffffffu, m1, 2));
    if (t == 0) { red_m[warp][g] = m0; red_m[warp][g + 8] = m1; }
    __syncthreads();
    float M0 = red_m[0][g], M1 = red_m[0][g + 8];
#pragma unroll
    for (int w = 1; w < 4; w++) { M0 = fmaxf(M0, red_m[w][g]); M1 = fmaxf(M1, red_m[w][g + 8]); }
    const float b0 = M0 == -INFINITY ? 0.f : M0, b1 = M1 == -INFINITY ? 0.f : M1;
    float l0 = 0.f, l1 = 0.f;
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        sacc[nb][0] = crk_ex2(sacc[nb][0] - b0); sacc[nb][1] = crk_ex2(sacc[nb][1] - b0);
        sacc[nb][2] = crk_ex2(sacc[nb][2] - b1); sacc[nb][3] = crk_ex2(sacc[nb][3] - b1);
        l0 += sacc[nb][0] + sacc[nb][1];
        l1 += sacc[nb][2] + sacc[nb][3];
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1); l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1); l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    if (t == 0) { red_l[warp][g] = l0; red_l[warp][g + 8] = l1; }
    /* P.V over the warp's 32 keys */
    float oacc[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) oacc[i][0] = oacc[i][1] = oacc[i][2] = oacc[i][3] = 0.f;
    crk_mma_pv<HD, 4, RS>(oacc, sacc, Vs + wk0 * RS);
    __syncthreads();   /* every warp is done with Ks / Vs: reuse them for the outputs */
    float *ored = (float *)tsm;   /* [4 warps][16 rows][HD] */
#pragma unroll
    for (int nb2 = 0; nb2 < HD / 8; nb2++) {
        const int col = nb2 * 8 + 2 * t;
        if (g < nr) *(float2 *)(ored + ((size_t)warp * 16 + g) * HD + col) = make_float2(oacc[nb2][0], oacc[nb2][1]);
        if (g + 8 < nr) *(float2 *)(ored + ((size_t)warp * 16 + g + 8) * HD + col) = make_float2(oacc[nb2][2], oacc[nb2][3]);
    }
    __syncthreads();
    float *part = a.work + crk_dec_part_off(a.n_head, a.S, a.N);
    for (int i = tid; i < nr * HD; i += 128) {
        const int r = i / HD, d = i % HD;
        const float sum = ored[(size_t)r * HD + d] + ored[((size_t)16 + r) * HD + d] + ored[((size_t)32 + r) * HD + d] + ored[((size_t)48 + r) * HD + d];
        part[((size_t)split * a.n_head + kvh * n_rep + g0 + r) * (HD + 2) + 2 + d] = sum;
    }
    if (tid < nr) {
        float M = red_m[0][tid], Lsum = red_l[0][tid] + red_l[1][tid] + red_l[2][tid] + red_l[3][tid];
#pragma unroll
        for (int w = 1; w < 4; w++) M = fmaxf(M, red_m[w][tid]);
        const size_t pi = ((size_t)split * a.n_head + kvh * n_rep + g0 + tid) * (HD + 2);
        part[pi] = M == -INFINITY ? -INFINITY : M / LOG2E;
        part[pi + 1] = Lsum;
    }
}


/* ================================================================ register-direct tensor cores
 * hd 64 / 128, not neox, GQA groups of at most 8, with the fp16 cos/sin table
 * (crk_attn.rope_cs16): no shared memory. A warp is one split of DRD_KW keys of one KV head,
 * walked 16 keys per step with an online softmax; the next step's keys and cos/sin are loaded
 * while this step's softmax and P.V run, the next values while the next Q.K runs. Keys,
 * values and cos/sin go from global memory straight into mma.sync m16n8k16 fragments by
 * permuting dimensions (a dot product allows any permutation applied to both sides). A row's
 * 16-byte unit u holds dimensions 8u .. 8u + 7 (4 RoPE pairs, one per 32-bit word).
 *   S = Q.K^T (A = the group's query heads as rows g < n_rep, B = K^T): lane (g, t) reads the
 *   units 4q + t of its key (key 8j + g of 8-key tile j), so the four lanes of a row read 64
 *   contiguous bytes per load; its word w is taken to hold the logical dimensions 2t, 2t+1
 *   (w = 2kk) or 2t+8, 2t+9 (w = 2kk + 1) of k-step kk, and Q is read with the same map.
 *   Each word is one RoPE pair, rotated in registers in fp16 arithmetic (drd_rot; the
 *   shared-memory kernel rotates in fp32 and rounds once).
 *   O^T = V^T.P^T (A = V^T, B = P^T: lane (g, t) needs P[query g][keys 2t, 2t+1 | 2t+8,
 *   2t+9], exactly its S accumulators): lane g reads the units 8q + g of the keys 2t, 2t+1,
 *   2t+8, 2t+9 (eight lanes read 128 contiguous bytes); rows g and g + 8 of m-tile mt are the
 *   dimensions of its word mt, and the lane ends with the output of queries 2t, 2t+1 there.
 * Output: the split partials and logits of attn_dec_tc (merged and scored by
 * attn_dec_finish). H200, 8B shape, 16448 keys: 28.8-29.0 us per layer with the merge and
 * score kernel (2 shared-memory stages, below), against 46.3 for attn_dec_tc (session 9; was
 * 36.5 before the positions were loaded ahead of the copies, stages inside one region were
 * copied without per-row lookups, validity came from ballots and the finish kernel loaded
 * ahead). Tried and slower: staging the keys' cos/sin rows with the keys (34.7 against 30.8
 * us: more instructions, and the rows come from L2 anyway), loading the query before the
 * second stage's copies (no change), 96 or 64 keys per warp at 3 blocks per SM (32.4 / 40.1
 * against 28.8: spills, and the one wave of 264 blocks already fills the GPU). */
#define DRD_KW 128   /* keys per warp (one split) */
#define DRD_WARPS 4

template <int HD>
__device__ __forceinline__ const uint16_t *drd_row(const crk_attn &a, const uint16_t *sink, const uint16_t *cache, const uint16_t *cur, int kvh, int kidx) {
    if (kidx < a.S) return sink + ((size_t)kvh * a.S + kidx) * HD;
    if (kidx < a.S + a.N) return cache + ((size_t)kvh * a.N + (kidx - a.S)) * HD;
    return cur + (size_t)(kidx - a.S - a.N) * a.kv_stride + (size_t)kvh * HD;
}
/* one RoPE pair (two fp16 in a word) rotated by (cos, sin) (two fp16 in a word) in fp16
 * arithmetic: c (x, y) + s (-y, x) as one HMUL2 and one HFMA2 with c and s broadcast from the
 * table word, two roundings (9 fp32 instructions and one rounding before). H200, 8B shape,
 * session 10, same run: one layer with the finish kernel 28.6 -> 28.1 us, 8B Q4_K decode 2.71 ->
 * 2.69 ms; the kernel test's relative error 3.87e-4 -> 4.22e-4 (2 stages). */
__device__ __forceinline__ uint32_t drd_rot(uint32_t k, uint32_t cs) {
    const uint32_t kr = __byte_perm(k, 0, 0x1032) ^ 0x00008000u;   /* (-y, x) */
    const __half2 c = *(const __half2 *)&cs;
    __half2 r = __hmul2(__low2half2(c), *(const __half2 *)&k);
    r = __hfma2(__high2half2(c), *(const __half2 *)&kr, r);
    return *(uint32_t *)&r;
}

/* NEOX: rotation pairs (d, d + hd/2) (full rotary only). Lane t's units 4q + t with q < KQ/2
 * hold dimensions below hd/2 and their partners are its units 4(q + KQ/2) + t: the rotation
 * stays inside the lane; its cos/sin are the 8 pairs of each low unit (two 16-byte loads). */
/* NST > 0: keys and values go through a per-warp ring of NST 16-key stages in shared memory
 * (cp.async with an L2 evict-first hint, issued NST steps ahead, no registers held for them)
 * and are read into the same fragments from there; NST = 0: straight from global memory into
 * registers, one step ahead. Stage layout [K | V][16 keys][HD / 8 units of 16 bytes], unit u of
 * row r stored at u ^ drs_swz(r): the fragment reads (K: rows g, g + 1 of a quarter-warp at
 * units 4q + t; V: rows 2t + e at units 8q + g) fall in distinct banks. */
__device__ __forceinline__ int drs_swz(int r) { return (2 * (r >> 1) + 4 * (r & 1)) & 7; }
template <int HD, int NST>
constexpr size_t drs_smem_bytes() { return (size_t)DRD_WARPS * NST * 2 * 16 * HD * 2; }
/* 32-bit load issued where it stands (before the copies that follow it) */
__device__ __forceinline__ int ld_now(const int *p) {
    int v;
    asm volatile("ld.global.nc.b32 %0, [%1];\n" : "=r"(v) : "l"(p));
    return v;
}
__device__ __forceinline__ int64_t ld_now64(const int64_t *p) {
    int64_t v;
    asm volatile("ld.global.nc.b64 %0, [%1];\n" : "=l"(v) : "l"(p));
    return v;
}

template <int HD, int MINB, bool NEOX, int NST, int SKIP>   /* MINB: blocks per SM the registers allow; SKIP: crk_attn.skip_empty (0, 1, 2, 3) */
__global__ void __launch_bounds__(32 * DRD_WARPS, MINB) attn_dec_rd(crk_attn a, int nsplit) {
    constexpr int NKK = HD / 16;      /* k-steps of Q.K; also the m-tiles of O^T */
    constexpr int KQ = HD / 32;       /* uint4 of a lane's key quarter (hd/4 dims) */
    constexpr int VQ = HD / 64;       /* uint4 of a lane's value slice (hd/8 dims) */
    constexpr int NSTEP = DRD_KW / 16;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int split = blockIdx.x * DRD_WARPS + warp;
    if (split >= nsplit) return;      /* no block-wide synchronization below */
    const int kvh = blockIdx.y, n_rep = a.n_head / a.n_kv;
    const int nk = a.S + a.N + 1, kb0 = split * DRD_KW;
    /* SKIP = 2: in a block whose keys are all below nk, the 4 warps take its 16-key steps in turn
     * (warp w: steps w, w + 4, ...) and walk only those holding a valid key, so that the few
     * valid keys of a nearly empty cache (the sinks, the first slots: one split's) are spread
     * over 4 chains of 2 steps instead of one of 8. kof(kl): the key of the warp's kl-th. */
    const int bbase = blockIdx.x * (DRD_WARPS * DRD_KW);
    constexpr bool walk = SKIP == 2;
    const bool ilv = walk && bbase + DRD_WARPS * DRD_KW <= nk;
    /* SKIP = 3: the warp's steps are entries split, split + nsplit, ... of the step list
     * (crk_step_list: the 16-key steps holding a valid key), lane i < NSTEP holding the i-th
     * (-1 past the list). kof is then a shuffle: every call below is warp-converged. */
    constexpr bool listed = SKIP == 3;
    int myst = -1;
    if constexpr (listed)
        if (lane < DRD_KW / 16 && split + lane * nsplit < CRK_DEC_LIST_CAP) myst = ld_now(a.steps + 1 + split + lane * nsplit);
    auto kof = [&](int kl) {
        if constexpr (listed) {
            const int sx = __shfl_sync(0xffffffffu, myst, (kl >> 4) & (DRD_KW / 16 - 1));
            return sx >= 0 ? 16 * sx + (kl & 15) : nk;
        } else return ilv ? bbase + 16 * (DRD_WARPS * (kl >> 4) + warp) + (kl & 15) : kb0 + kl;
    };
    if constexpr (listed) {
        /* a warp without a listed step: an empty partial (max -inf, sum 0: attn_dec_finish
         * reads nothing else of it) and no logits (the finish kernel scores listed keys only) */
        if (__ballot_sync(0xffffffffu, myst >= 0) == 0u) {
            crk_pdl_sync();
            float *part = a.work + crk_dec_part_off(a.n_head, a.S, a.N);
            if (lane < n_rep) {
                float *pp = part + ((size_t)split * a.n_head + kvh * n_rep + lane) * (HD + 2);
                pp[0] = -INFINITY; pp[1] = 0.f;
            }
            return;
        }
    }
    constexpr int UPR = HD / 8;       /* 16-byte units per key row */
    constexpr int NSTB = NST > 0 ? NST : 1;   /* buffers of the ring (unused when NST = 0) */
    extern __shared__ __align__(16) uint4 drs_sm[];   /* NST > 0: [DRD_WARPS][NST][K | V][16][UPR] */
    uint4 *wsm = drs_sm + (size_t)warp * NST * 2 * 16 * UPR;
    uint64_t pol = 0;
    /* NST > 0: stage i's 16 keys and values into buffer i % NST (an empty group past the split) */
    int nst = NSTEP;              /* walk: steps to walk, their indices in stl (4 bits each; first all of them); listed: its steps */
    if constexpr (listed) nst = __popc(__ballot_sync(0xffffffffu, myst >= 0));
    uint32_t stl = 0x76543210u;
    auto stp = [&](int k) { return walk ? (int)((stl >> (4 * k)) & 15u) : k; };
    auto issue = [&](int k) {   /* the k-th step walked (step stp(k)) into buffer k % NST */
        if (k < nst) {
            const int i = stp(k);
            uint4 *bk = wsm + (size_t)(k % NSTB) * 2 * 16 * UPR, *bv = bk + 16 * UPR;
            /* a stage inside the sinks or inside the slots (warp-uniform): 16 contiguous rows */
            const int k0 = kof(16 * i);
            const uint16_t *lk = nullptr, *lv = nullptr;
            if (k0 + 16 <= a.S) { lk = a.sink_k + ((size_t)kvh * a.S + k0) * HD; lv = a.sink_v + ((size_t)kvh * a.S + k0) * HD; }
            else if (k0 >= a.S && k0 + 16 <= a.S + a.N) { lk = a.ck + ((size_t)kvh * a.N + (k0 - a.S)) * HD; lv = a.cv + ((size_t)kvh * a.N + (k0 - a.S)) * HD; }
            if (lk) {
#pragma unroll
                for (int c = 0; c < 16 * UPR / 32; c++) {
                    const int e = lane + 32 * c, r = e / UPR, u = e % UPR;
                    cp_async16_ef(bk + r * UPR + (u ^ drs_swz(r)), (const uint4 *)lk + e, 16, pol);
                    cp_async16_ef(bv + r * UPR + (u ^ drs_swz(r)), (const uint4 *)lv + e, 16, pol);
                }
            } else
#pragma unroll
            for (int c = 0; c < 16 * UPR / 32; c++) {
                const int e = lane + 32 * c, r = e / UPR, u = e % UPR, kidx = k0 + r;
                const bool in = kidx < nk;   /* rows past the keys are zeros; unfilled slots are masked at use */
                const uint4 *sk = in ? (const uint4 *)drd_row<HD>(a, a.sink_k, a.ck, a.kc, kvh, kidx) : (const uint4 *)a.ck;
                const uint4 *sv = in ? (const uint4 *)drd_row<HD>(a, a.sink_v, a.cv, a.vc, kvh, kidx) : (const uint4 *)a.cv;
                cp_async16_ef(bk + r * UPR + (u ^ drs_swz(r)), sk + u, in ? 16 : 0, pol);
                cp_async16_ef(bv + r * UPR + (u ^ drs_swz(r)), sv + u, in ? 16 : 0, pol);
            }
        }
        cp_async_commit();
    };
    /* positions: lane l holds keys kb0 + l + 32 j (-1: not a valid key). Loaded before the
     * wait (the control state and slot positions are written two or more kernels back:
     * crk_launch) and before the first stages' copies, which they would queue behind */
    const int rp = a.rope_pairs;
    const int n_sinks = ld_now(&a.st->n_sinks);
    const int64_t p0 = ld_now64(&a.st->p0);
    int pr[DRD_KW / 32];
#pragma unroll
    for (int j = 0; j < DRD_KW / 32; j++) {
        const int sl = kof(lane + 32 * j) - a.S;
        pr[j] = a.N > 0 ? ld_now(a.slot_pos + (sl < 0 ? 0 : sl < a.N ? sl : a.N - 1)) : -1;
    }
    /* fused q/k/v post-processing: the split holding key S + N writes the token's key and value
     * (+ biases, rounded to fp16: crk_qkv_post's arithmetic) before any of its copies read them */
    const int ktok = a.S + a.N;   /* the token's own key */
    const bool own_tok = listed ? __ballot_sync(0xffffffffu, myst == (ktok >> 4)) != 0u
                       : ilv ? ktok >= bbase && ktok < bbase + DRD_WARPS * DRD_KW && ((ktok - bbase) >> 4) % DRD_WARPS == warp
                             : kb0 <= ktok && ktok < kb0 + DRD_KW;
    const bool put_here = walk || listed ? a.fuse_qkv && own_tok : a.fuse_qkv && kb0 <= a.S + a.N && a.S + a.N < kb0 + DRD_KW;
    auto put_cur = [&]() {
        uint16_t *kd = (uint16_t *)a.kc + (size_t)kvh * HD, *vd = (uint16_t *)a.vc + (size_t)kvh * HD;
        for (int d = 4 * lane; d < HD; d += 128) {
            float4 k4 = *(const float4 *)(a.kraw + (size_t)kvh * HD + d), v4 = *(const float4 *)(a.vraw + (size_t)kvh * HD + d);
            if (a.bk) { const float4 b = *(const float4 *)(a.bk + (size_t)kvh * HD + d); k4.x += b.x; k4.y += b.y; k4.z += b.z; k4.w += b.w; }
            if (a.bv) { const float4 b = *(const float4 *)(a.bv + (size_t)kvh * HD + d); v4.x += b.x; v4.y += b.y; v4.z += b.z; v4.w += b.w; }
            *(uint2 *)(kd + d) = make_uint2((uint32_t)crk_f2h(k4.x) | ((uint32_t)crk_f2h(k4.y) << 16), (uint32_t)crk_f2h(k4.z) | ((uint32_t)crk_f2h(k4.w) << 16));
            *(uint2 *)(vd + d) = make_uint2((uint32_t)crk_f2h(v4.x) | ((uint32_t)crk_f2h(v4.y) << 16), (uint32_t)crk_f2h(v4.z) | ((uint32_t)crk_f2h(v4.w) << 16));
        }
        __threadfence_block();
        __syncwarp();
    };
    bool put_done = false;
    if constexpr (NST > 0) {   /* the first stages' keys and values: issued next */
        pol = l2_evict_first_policy();
        /* cached keys before the wait (crk_launch); the token's own row (key S + N), written by
         * this step's q/k/v post-processing (or by put_cur), after it */
        if (walk || listed ? own_tok : kb0 + 16 * NST > a.S + a.N) {
            crk_pdl_wait();
            if (put_here) { put_cur(); put_done = true; }
        }
#pragma unroll
        for (int i = 0; i < NST; i++) issue(i);
    }
    uint32_t vmask[DRD_KW / 32];   /* bit l of word j: the warp's key kof(32 j + l) is valid (warp-uniform) */
#pragma unroll
    for (int j = 0; j < DRD_KW / 32; j++) {   /* as crk_key_info (L = 1: -1 past nk) */
        const int kidx = kof(lane + 32 * j);
        pr[j] = kidx < a.S ? (kidx < n_sinks ? kidx : -1) : kidx < a.S + a.N ? (pr[j] >= 0 ? pr[j] : -1)
                           : kidx - a.S - a.N < a.L ? (int)(p0 + (kidx - a.S - a.N)) : -1;
        vmask[j] = __ballot_sync(0xffffffffu, pr[j] >= 0);
    }
    /* SKIP (a cache with unfilled slots: a short document, the start of a session): a split
     * with no valid key reads no more than its first stages, writes what the loop below would
     * (-inf logits, an empty partial: max -inf, sum 0, zeros) and stops. H200, session 10,
     * decode from an empty cache: 8B Q4_K 2.60-2.65 -> 2.51 ms, 1B Q4_K 0.79 -> 0.75. A
     * variant: with a full cache the code without this test measured faster (1B 0.83 against
     * 0.85 ms; ptxas allocates differently). Deciding before the first copies, which then
     * wait for the positions, was slower still. Skipping empty 16-key steps inside a split as
     * well: 177 registers, 30.3 against 28.4 us per 8B layer with a full cache. */
    uint32_t anyv = 0;
#pragma unroll
    for (int j = 0; j < DRD_KW / 32; j++) anyv |= vmask[j];
    if (SKIP && SKIP != 3 && !anyv) {   /* (a listed warp always holds a valid key) */
        if constexpr (NST > 0) cp_async_wait<0>();
        crk_pdl_sync();
        float *lg = a.work + crk_dec_lg_off(a.n_head);
        for (int q = 0; q < n_rep; q++)
            for (int kl = lane; kl < DRD_KW && kof(kl) < nk; kl += 32) lg[(size_t)(kvh * n_rep + q) * nk + kof(kl)] = -INFINITY;
        float *part = a.work + crk_dec_part_off(a.n_head, a.S, a.N);
        for (int q = 0; q < n_rep; q++) {
            float *pp = part + ((size_t)split * a.n_head + kvh * n_rep + q) * (HD + 2);
            for (int d = lane; d < HD + 2; d += 32) pp[d] = d == 0 ? -INFINITY : 0.f;
        }
        return;
    }
    /* the valid keys of step i (bit x: the warp's key 16 i + x), warp-uniform */
    auto step_mask = [&](int i) {
        const int j = i >> 1;
        uint32_t v = vmask[0];
#pragma unroll
        for (int q = 1; q < DRD_KW / 32; q++) v = j == q ? vmask[q] : v;
        return (i & 1) ? v >> 16 : v & 0xFFFFu;
    };
    if constexpr (walk) {
        /* the steps holding a valid key; a step without one would only add -inf logits */
        nst = 0;
#pragma unroll
        for (int i = 0; i < NSTEP; i++)
            if (step_mask(i)) { stl |= (uint32_t)i << (4 * nst); nst++; }
        /* keys without a step walked: their -inf logits, as the loop below writes them */
        float *lg = a.work + crk_dec_lg_off(a.n_head);
        for (int i = 0; i < NSTEP; i++) {
            if (step_mask(i)) continue;
            for (int q = 0; q < n_rep; q++)
                if (lane < 16 && kof(16 * i + lane) < nk) lg[(size_t)(kvh * n_rep + q) * nk + kof(16 * i + lane)] = -INFINITY;
        }
        /* the first stages went out for steps 0 .. NST - 1: if the walk starts otherwise, they
         * are waited for and its own first stages issued into the same buffers */
        if constexpr (NST > 0) {
            constexpr uint32_t first = (1u << (4 * NST)) - 1u;
            if (nst < NST || ((stl ^ 0x76543210u) & first)) {
                cp_async_wait<0>();
                __syncwarp();
#pragma unroll
                for (int k = 0; k < NST; k++) issue(k);
            }
        }
    }
    /* position of the warp's key kl (a select, not a dynamically indexed array: the step
     * loop is not unrolled) */
    auto pos_of = [&](int kl) {
        const int j = kl >> 5;
        int v = pr[0];
#pragma unroll
        for (int q = 1; q < DRD_KW / 32; q++) v = j == q ? pr[q] : v;
        return __shfl_sync(0xffffffffu, v, kl & 31);
    };
    crk_pdl_sync();
    if (put_here && !put_done) put_cur();
    /* query row g as A fragments (fp16; rows g + 8 are zero), dimensions permuted as above
     * (fused: + bq and rotated here first; a lane's dimensions d and d + hd/2 are its
     * fragments kk and kk + NKK/2, its pairs 2p, 2p + 1 adjacent in one float4) */
    uint32_t qa[NKK][4];
    {
        const int h = kvh * n_rep + (g < n_rep ? g : 0);
        const float *qb = a.q + (size_t)h * HD + 8 * t;
        float4 qv[NKK];
#pragma unroll
        for (int kk = 0; kk < NKK; kk++) qv[kk] = *(const float4 *)(qb + 32 * (kk >> 1) + 4 * (kk & 1));
        if (a.fuse_qkv) {
            const float *cs = a.rope_cs + (size_t)p0 * rp * 2;
#pragma unroll
            for (int kk = 0; kk < NKK; kk++) {
                const int d0 = 32 * (kk >> 1) + 4 * (kk & 1) + 8 * t;
                if (a.bq) {
                    const float4 b = *(const float4 *)(a.bq + (size_t)h * HD + d0);
                    qv[kk].x += b.x; qv[kk].y += b.y; qv[kk].z += b.z; qv[kk].w += b.w;
                }
            }
            auto rot = [&](float &x0, float &x1, int p) { crk_rope_pair(x0, x1, cs[2 * p], cs[2 * p + 1]); };
#pragma unroll
            for (int kk = 0; kk < NKK; kk++) {
                const int d0 = 32 * (kk >> 1) + 4 * (kk & 1) + 8 * t;
                if (NEOX) {
                    if (kk < NKK / 2) {
                        if (d0 + 0 < rp) rot(qv[kk].x, qv[kk + NKK / 2].x, d0 + 0);
                        if (d0 + 1 < rp) rot(qv[kk].y, qv[kk + NKK / 2].y, d0 + 1);
                        if (d0 + 2 < rp) rot(qv[kk].z, qv[kk + NKK / 2].z, d0 + 2);
                        if (d0 + 3 < rp) rot(qv[kk].w, qv[kk + NKK / 2].w, d0 + 3);
                    }
                } else {
                    if (d0 / 2 < rp) rot(qv[kk].x, qv[kk].y, d0 / 2);
                    if (d0 / 2 + 1 < rp) rot(qv[kk].z, qv[kk].w, d0 / 2 + 1);
                }
            }
        }
#pragma unroll
        for (int kk = 0; kk < NKK; kk++) {
            const float4 v0 = g < n_rep ? qv[kk] : make_float4(0.f, 0.f, 0.f, 0.f);
            qa[kk][0] = pack_h2(v0.x, v0.y); qa[kk][2] = pack_h2(v0.z, v0.w);
            qa[kk][1] = qa[kk][3] = 0u;
        }
    }
    const float sl2 = (1.0f / sqrtf((float)HD)) * LOG2E, scale = 1.0f / sqrtf((float)HD);
    float *glg = a.work + crk_dec_lg_off(a.n_head);
    float o[NKK][4];   /* O^T: rows (dimensions) g, g + 8 of m-tile mt, columns (queries) 2t, 2t + 1 */
#pragma unroll
    for (int i = 0; i < NKK; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m = -INFINITY, l = 0.f;   /* query g's running max (log2 units) and sum */
    uint4 kr[2][KQ], cr[2][KQ], vr[4][VQ];
    uint32_t kok = 0, vok = 0;   /* bit j: key tile j's key / value key j of this step is valid (the others are zeroed at use: their rows may hold NaN) */
    const uint4 z4 = make_uint4(0, 0, 0, 0);
    /* loads of step i's keys (tile j: key 16 i + 8 j + g) with their cos/sin, and values
     * (keys 16 i + 2t + {0, 1, 8, 9}); invalid keys are zeros (their rows may hold NaN) */
    auto load_k = [&](int i) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int kl = 16 * i + 8 * j + g, kidx = kof(kl);
            const int pos = pos_of(kl);
            if (j == 0) kok = 3u;
            if (pos < 0) kok &= ~(1u << j);
            const uint4 *src = (const uint4 *)drd_row<HD>(a, a.sink_k, a.ck, a.kc, kvh, kidx);
            const uint4 *cs = (const uint4 *)(a.rope_cs16 + (size_t)(pos < 0 ? 0 : pos) * rp);
#pragma unroll
            for (int q = 0; q < KQ; q++) {   /* 16-byte unit 4q + t of the row: lanes t = 0..3 read 64 contiguous bytes */
                if constexpr (NST == 0) kr[j][q] = kidx < nk ? src[4 * q + t] : z4;   /* not waiting for the position: invalid keys are zeroed at use */
                if (NEOX) cr[j][q] = pos >= 0 ? cs[2 * (4 * (q >> 1) + t) + (q & 1)] : z4;   /* pairs 8u .. 8u + 7 of low unit u = 4 (q / 2) + t */
                else cr[j][q] = pos >= 0 && 4 * (4 * q + t) < rp ? cs[4 * q + t] : z4;
            }
        }
    };
    auto load_v = [&](int i) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int kl = 16 * i + 2 * t + (j & 1) + 8 * (j >> 1), kidx = kof(kl);
            const int pos = pos_of(kl);
            if (j == 0) vok = 0xFu;
            const uint4 *src = (const uint4 *)drd_row<HD>(a, a.sink_v, a.cv, a.vc, kvh, kidx);
#pragma unroll
            for (int q = 0; q < VQ; q++) vr[j][q] = kidx < nk ? src[8 * q + g] : z4;   /* unit 8q + g: lanes g = 0..7 read 128 contiguous bytes */
            if (pos < 0) vok &= ~(1u << j);
        }
    };
    /* NST > 0: step i's keys (tile j: key 16 i + 8 j + g) and values (keys 16 i + 2t + {0, 1, 8, 9})
     * from its stage, once every lane's copies of it have landed */
    auto lds_k = [&](int k) {   /* from the k-th stage's buffer */
        const uint4 *bk = wsm + (size_t)(k % NSTB) * 2 * 16 * UPR;
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int q = 0; q < KQ; q++) kr[j][q] = bk[(8 * j + g) * UPR + ((4 * q + t) ^ drs_swz(8 * j + g))];
    };
    auto lds_v = [&](int k) {
        const uint4 *bv = wsm + (size_t)(k % NSTB) * 2 * 16 * UPR + 16 * UPR;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int r = 2 * t + (j & 1) + 8 * (j >> 1);
#pragma unroll
            for (int q = 0; q < VQ; q++) vr[j][q] = bv[r * UPR + ((8 * q + g) ^ drs_swz(r))];
        }
    };
    load_k(stp(0));
    if constexpr (NST == 0) load_v(stp(0));
#pragma unroll 1   /* fully unrolled, the kernel measured instruction-cache misses (Nsight Compute: stall_no_inst) */
    for (int k = 0; k < nst; k++) {
        const int i = stp(k);
        if constexpr (NST > 0) {
            cp_async_wait<NST - 1>();   /* groups committed: NST + k; the k-th stage is complete */
            __syncwarp();
            lds_k(k);
            const uint32_t sm = step_mask(i) >> (2 * t);   /* bits 0, 1, 8, 9: keys 2t, 2t + 1, 2t + 8, 2t + 9 */
            vok = (sm & 3u) | ((sm >> 6) & 0xCu);
        }
        /* S = Q.K^T for the two 8-key tiles, keys rotated in registers */
        float s[2][4];
#pragma unroll
        for (int j = 0; j < 2; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
            const uint32_t *kw = (const uint32_t *)kr[j], *cw = (const uint32_t *)cr[j];
            const uint32_t km = (kok >> j) & 1u ? 0xFFFFFFFFu : 0u;
            if (NEOX) {   /* rotate in place: word ww of low unit q with the same word of unit q + KQ/2 */
                uint32_t *kx = (uint32_t *)kr[j];
#pragma unroll
                for (int q = 0; q < KQ / 2; q++)
#pragma unroll
                    for (int ww = 0; ww < 4; ww++) {
                        const uint32_t lo = kx[4 * q + ww] & km, hi = kx[4 * (q + KQ / 2) + ww] & km;
                        const float2 xl = __half22float2(*(const __half2 *)&lo), xh = __half22float2(*(const __half2 *)&hi);
                        const uint32_t c0w = cw[8 * q + 2 * ww], c1w = cw[8 * q + 2 * ww + 1];
                        const float2 c0 = __half22float2(*(const __half2 *)&c0w), c1 = __half22float2(*(const __half2 *)&c1w);
                        kx[4 * q + ww] = pack_h2(xl.x * c0.x - xh.x * c0.y, xl.y * c1.x - xh.y * c1.y);
                        kx[4 * (q + KQ / 2) + ww] = pack_h2(xl.x * c0.y + xh.x * c0.x, xl.y * c1.y + xh.y * c1.x);
                    }
            }
#pragma unroll
            for (int kk = 0; kk < NKK; kk++) {
                const int w0 = 2 * kk, w1 = 2 * kk + 1;   /* pair 4 (4 (w / 4) + t) + w % 4 */
                const bool rot = !NEOX && 4 * (4 * (kk >> 1) + t) < rp;
                const uint32_t k0 = kw[w0] & km, k1 = kw[w1] & km;
                const uint32_t b0 = rot ? drd_rot(k0, cw[w0]) : k0;
                const uint32_t b1 = rot ? drd_rot(k1, cw[w1]) : k1;
                mma16816(s[j], qa[kk], b0, b1);
            }
        }
        if (k + 1 < nst) load_k(stp(k + 1));
        /* columns 2t + e of tile j: key 16 i + 8 j + 2t + e. Logits for the score kernel,
         * then log2-unit logits, the running max and sum of row g */
        float mx = -INFINITY;
        const uint32_t smk = step_mask(i);
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int kl = 16 * i + 8 * j + 2 * t + e, kidx = kof(kl);
                const bool ok = (smk >> (8 * j + 2 * t + e)) & 1u;
                if (g < n_rep && kidx < nk) glg[(size_t)(kvh * n_rep + g) * nk + kidx] = ok ? s[j][e] * scale : -INFINITY;
                s[j][e] = ok ? s[j][e] * sl2 : -INFINITY;
                mx = fmaxf(mx, s[j][e]);
            }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float nm = fmaxf(m, mx), b = nm == -INFINITY ? 0.f : nm;
        const float al = crk_ex2(m - b);   /* 0 while the row has seen nothing */
        m = nm;
        const float q00 = crk_ex2(s[0][0] - b), q01 = crk_ex2(s[0][1] - b), q10 = crk_ex2(s[1][0] - b), q11 = crk_ex2(s[1][1] - b);
        l = l * al + ((q00 + q01) + (q10 + q11));
        const uint32_t pb0 = pack_h2(q00, q01), pb1 = pack_h2(q10, q11);   /* P^T: keys 2t, 2t+1 | 2t+8, 2t+9 of query g */
        /* the rescale of O^T's columns 2t, 2t + 1: queries 2t, 2t + 1, whose factors lanes 8t and 8t + 4 hold */
        const float a0 = __shfl_sync(0xffffffffu, al, 8 * t), a1 = __shfl_sync(0xffffffffu, al, 8 * t + 4);
        if constexpr (NST > 0) lds_v(k);
        const uint32_t *v0 = (const uint32_t *)vr[0], *v1 = (const uint32_t *)vr[1], *v2 = (const uint32_t *)vr[2], *v3 = (const uint32_t *)vr[3];
        const uint32_t vm0 = vok & 1u ? ~0u : 0u, vm1 = vok & 2u ? ~0u : 0u, vm2 = vok & 4u ? ~0u : 0u, vm3 = vok & 8u ? ~0u : 0u;
#pragma unroll
        for (int mt = 0; mt < NKK; mt++) {
            o[mt][0] *= a0; o[mt][1] *= a1; o[mt][2] *= a0; o[mt][3] *= a1;
            /* A = V^T: rows g, g + 8 = dimensions 8 (8 (mt / 4) + g) + 2 (mt % 4), + 1 (the lane's word mt) */
            uint32_t va[4];
            const uint32_t x0 = v0[mt] & vm0, x1 = v1[mt] & vm1, x2 = v2[mt] & vm2, x3 = v3[mt] & vm3;
            va[0] = __byte_perm(x0, x1, 0x5410u);   /* row g: keys 2t, 2t + 1 */
            va[1] = __byte_perm(x0, x1, 0x7632u);   /* row g + 8 */
            va[2] = __byte_perm(x2, x3, 0x5410u);   /* row g: keys 2t + 8, 2t + 9 */
            va[3] = __byte_perm(x2, x3, 0x7632u);
            mma16816(o[mt], va, pb0, pb1);
        }
        if constexpr (NST == 0) {
            if (k + 1 < nst) load_v(stp(k + 1));
        } else {
            __syncwarp();   /* every lane is done with the k-th stage: refill its buffer */
            issue(k + NST);
        }
    }
    /* the split's partial: (max in natural-log units, sum) from lane (g = query, t = 0), and
     * O of queries 2t, 2t + 1: dimensions (hd/8) g + 2 mt, + 1 */
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    float *part = a.work + crk_dec_part_off(a.n_head, a.S, a.N);
    if (t == 0 && g < n_rep) {
        float *pp = part + ((size_t)split * a.n_head + kvh * n_rep + g) * (HD + 2);
        pp[0] = m == -INFINITY ? -INFINITY : m / LOG2E;
        pp[1] = l;
    }
#pragma unroll
    for (int e = 0; e < 2; e++) {
        const int q = 2 * t + e;
        if (q >= n_rep) continue;
        float *pp = part + ((size_t)split * a.n_head + kvh * n_rep + q) * (HD + 2) + 2 + 8 * g;
#pragma unroll
        for (int mt = 0; mt < NKK; mt++) {   /* scalar stores: part rows are not 8-byte aligned for every shape */
            pp[64 * (mt >> 2) + 2 * (mt & 3)] = o[mt][e];
            pp[64 * (mt >> 2) + 2 * (mt & 3) + 1] = o[mt][2 + e];
        }
    }
}

__global__ void rope_cs16_kernel(const float2 *cs, size_t n, uint32_t *out) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = pack_h2(cs[i].x, cs[i].y);
}
extern "C" void crk_rope_cs16(const float *cs, size_t n_pairs, uint32_t *cs16, crk_stream s) {
    if (n_pairs) rope_cs16_kernel<<<(unsigned)crk_cdiv(n_pairs, 256), 256, 0, s>>>((const float2 *)cs, n_pairs, cs16);
}

/* The register-direct kernel's stages (NST above): CRK_DRD_STAGES=0|2|3 or crk_attn_decode_set_stages */
static int g_drd_stages = -1;
static int drd_stages(void) {
    if (g_drd_stages < 0) { const char *e = getenv("CRK_DRD_STAGES"); g_drd_stages = e ? atoi(e) : 2; }
    return g_drd_stages;
}
extern "C" int crk_attn_decode_set_stages(int nst) {
    const int old = drd_stages();
    g_drd_stages = nst == 2 || nst == 3 ? nst : 0;
    return old;
}
template <int HD, int MINB, bool NEOX, int NST, int SKIP>
static void launch_dec_rd_s(const crk_attn *a, int nsplit, cudaStream_t s) {
    constexpr size_t smem = NST ? drs_smem_bytes<HD, NST>() : 0;
    static bool attr_done = false;
    if (smem > 48 * 1024 && !attr_done) {
        cudaFuncSetAttribute(attn_dec_rd<HD, MINB, NEOX, NST, SKIP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        /* no carveout preference: with 100 (all shared memory) the 8B Q4_K decode step measured
         * 3.40 instead of 3.18 ms (the SMs reconfigure between it and the matrix-vector kernels) */
        attr_done = true;
    }
    crk_launch(true, attn_dec_rd<HD, MINB, NEOX, NST, SKIP>, dim3(crk_cdiv(nsplit, DRD_WARPS), a->n_kv), 32 * DRD_WARPS, smem, s, *a, nsplit);
}
template <int HD, int MINB, bool NEOX, int NST>
static void launch_dec_rd_k(const crk_attn *a, int nsplit, cudaStream_t s) {
    static int walk = -1;   /* benchmarks: CRK_DRD_WALK=0 takes the skip_empty = 1 variant for 2 */
    if (walk < 0) walk = !getenv("CRK_DRD_WALK") || atoi(getenv("CRK_DRD_WALK"));
    if (a->skip_empty == 3 && a->steps) launch_dec_rd_s<HD, MINB, NEOX, NST, 3>(a, nsplit, s);
    else if (a->skip_empty >= 2 && walk) launch_dec_rd_s<HD, MINB, NEOX, NST, 2>(a, nsplit, s);
    else if (a->skip_empty) launch_dec_rd_s<HD, MINB, NEOX, NST, 1>(a, nsplit, s);
    else launch_dec_rd_s<HD, MINB, NEOX, NST, 0>(a, nsplit, s);
}
/* 2 blocks per SM or, with CRK_DRD_MINB=3 (benchmarks), 3. H200, 8B layer with the finish
 * kernel (head dim 128), session 8: straight into registers 209 registers, 40.0 us (3 per SM:
 * 168 and a spill, 50.9); 2 shared-memory stages 223 registers, 36.5 us (3 per SM: a spill,
 * 44.9); 3 stages 227 registers, 37.3 us. Session 9: 2 stages 207 registers, 30.1 us (3 per
 * SM 35.4: its 264 blocks then fill only 88 SMs), 3 stages 31.0 */
template <int HD, int NST>
static void launch_dec_rd_n(const crk_attn *a, int nsplit, int minb, cudaStream_t s) {
    if (a->neox) launch_dec_rd_k<HD, 2, true, NST>(a, nsplit, s);
    else if (minb == 3 && NST < 3) launch_dec_rd_k<HD, (NST < 3 ? 3 : 2), false, NST>(a, nsplit, s);   /* 3 stages: no room for 3 blocks */
    else launch_dec_rd_k<HD, 2, false, NST>(a, nsplit, s);
}
template <int HD>
static void launch_dec_rd(const crk_attn *a, int nsplit, cudaStream_t s) {
    static int minb = 0;
    if (!minb) { const char *e = getenv("CRK_DRD_MINB"); minb = e && *e == '3' ? 3 : 2; }
    switch (drd_stages()) {
    case 2: launch_dec_rd_n<HD, 2>(a, nsplit, minb, s); return;
    case 3: launch_dec_rd_n<HD, 3>(a, nsplit, minb, s); return;
    default: launch_dec_rd_n<HD, 0>(a, nsplit, minb, s);
    }
}

template <int HD>
static void launch_dec_tc(const crk_attn *a, int nsplit, cudaStream_t s) {
    constexpr size_t smem = sizeof(uint16_t) * 2 * DEC_TC_KS * (HD + 8);
    static_assert(smem >= sizeof(float) * 4 * 16 * HD, "the output reduction reuses the K/V tiles");
    static int attr_done = 0;
    if (!attr_done) {
        cudaFuncSetAttribute(attn_dec_tc<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        cudaFuncSetAttribute(attn_dec_tc<HD>, cudaFuncAttributePreferredSharedMemoryCarveout, 100);
        attr_done = 1;
    }
    const int n_rep = a->n_head / a->n_kv;
    attn_dec_tc<HD><<<dim3(nsplit, a->n_kv, crk_cdiv(n_rep, 16)), 128, smem, s>>>(*a);
}

template <int LPK, int R>
static void launch_dec_r(const crk_attn *a, int nsplit, cudaStream_t s) {
    const int hd = 8 * LPK;
    size_t smem = sizeof(float) * ((size_t)R * hd + (size_t)R * CRK_DEC_KS + (size_t)DEC_NW * R * hd);
    static int attr_done = 0;
    if (!attr_done) { cudaFuncSetAttribute(attn_dec_p1<LPK, R>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem); attr_done = 1; }
    const int n_rep = a->n_head / a->n_kv;
    dim3 grid(nsplit, a->n_kv, crk_cdiv(n_rep, R));
    attn_dec_p1<LPK, R><<<grid, DEC_NT, smem, s>>>(*a, nsplit);
}
/* R = query heads per block: the group size rounded up to a power of two, at most 8
 * (registers hold R rows of the query and of the output) */
template <int LPK>
static void launch_dec(const crk_attn *a, int nsplit, cudaStream_t s) {
    const int n_rep = a->n_head / a->n_kv;
    if (n_rep <= 1) launch_dec_r<LPK, 1>(a, nsplit, s);
    else if (n_rep <= 2) launch_dec_r<LPK, 2>(a, nsplit, s);
    else if (n_rep <= 4) launch_dec_r<LPK, 4>(a, nsplit, s);
    else launch_dec_r<LPK, 8>(a, nsplit, s);
}

/* CRK_DECODE_KERNEL=1 keeps the shared-memory tensor-core kernel where the register-direct
 * one applies (benchmarks) */
static int getenv_dec_kernel(void) {
    static int v = -1;
    if (v < 0) { const char *e = getenv("CRK_DECODE_KERNEL"); v = e ? atoi(e) : 0; }
    return v;
}
extern "C" int crk_attn_decode_kind(const crk_attn *a) {
    if (a->mode == CRK_ATTN_PRECISE || !crk_attn_fast_ok(a->hd, a->rope_pairs) || getenv_simt()) return 2;
    if (a->rope_cs16 && (!a->neox || 2 * a->rope_pairs == a->hd) && a->n_head / a->n_kv <= 8 && getenv_dec_kernel() != 1) return 0;
    return 1;
}

static bool dec_ok(const crk_attn *a) {
    const int hd = a->hd;
    return a->L == 1 && (hd == 8 || hd == 16 || hd == 32 || hd == 64 || hd == 128 || hd == 256) &&
           (!a->neox || a->rope_pairs % 8 == 0);
}
static int g_dec_fuse = -1;
static int dec_fuse(void) {
    if (g_dec_fuse < 0) { const char *e = getenv("CRK_DEC_FUSE"); g_dec_fuse = !(e && *e == '0'); }
    return g_dec_fuse;
}
extern "C" int crk_attn_decode_set_fuse(int on) {
    const int old = dec_fuse();
    g_dec_fuse = on != 0;
    return old;
}
extern "C" int crk_attn_decode_fuses_qkv(const crk_attn *a) {
    return dec_fuse() && dec_ok(a) && crk_attn_decode_kind(a) == 0;
}

extern "C" void crk_attn_decode(const crk_attn *a, crk_stream s) {
    const int hd = a->hd;
    const bool ok = dec_ok(a);
    if (!ok) {
        crk_attn_chunk(a, s);
        if (a->out_q8) crk_quantize_q8(a->out, 1, a->n_head * hd, a->out_q8, s);
        return;
    }
    const int nk = a->S + a->N + 1, kind = crk_attn_decode_kind(a);
    if (kind < 2) {   /* hd 64 or 128 */
        const bool listed = kind == 0 && a->skip_empty == 3 && a->steps;
        /* listed: at most 32 warps (8 steps each) per KV head, and no more than the plain
         * kernel's splits (the work buffer's partials; they hold every step of the keys) */
        int nsplit = (int)crk_cdiv(nk, kind == 0 ? DRD_KW : DEC_TC_KS);
        if (listed && nsplit > CRK_DEC_LIST_CAP / (DRD_KW / 16)) nsplit = CRK_DEC_LIST_CAP / (DRD_KW / 16);
        if (kind == 0) {
            if (hd == 64) launch_dec_rd<64>(a, nsplit, s);
            else launch_dec_rd<128>(a, nsplit, s);
        } else if (hd == 64) launch_dec_tc<64>(a, nsplit, s);
        else launch_dec_tc<128>(a, nsplit, s);
        launch_dec_finish(a, nsplit, listed ? a->steps : NULL, s);
        return;
    }
    const int nsplit = (int)crk_cdiv(nk, CRK_DEC_KS);
    switch (hd) {
    case 8: launch_dec<1>(a, nsplit, s); break;
    case 16: launch_dec<2>(a, nsplit, s); break;
    case 32: launch_dec<4>(a, nsplit, s); break;
    case 64: launch_dec<8>(a, nsplit, s); break;
    case 128: launch_dec<16>(a, nsplit, s); break;
    default: launch_dec<32>(a, nsplit, s); break;
    }
    launch_dec_finish(a, nsplit, NULL, s);
}
