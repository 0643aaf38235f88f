/* Chunk attention of the cascading cache (GPU twin of attn_chunk_cpu, engine/attn_cpu.c):
 * the chunk's L queries against [sinks | cache slots | the chunk's own keys, causal], GQA,
 * RoPE applied to every cached key on the fly from its slot position, flash-style online
 * softmax (no score matrix in memory), and the exact per-key EMA score columns in a
 * second pass: pass 1 keeps each row's max and 1/sum, pass 2 recomputes q.k tile by tile,
 * p = exp(s - max) / sum, sums w_m p over the queries for every key and takes the max over
 * the query heads of the KV head's group. Pass 2 runs one block per key tile and loops over
 * all queries, so the sums need no atomics and are deterministic.
 *
 * Two implementations:
 *  - precise: fp32 SIMT (any head dim multiple of 8 up to 256), used for F32 models and
 *    small head dims; agrees with the CPU to float rounding.
 *  - fast: tensor cores (mma.sync m16n8k16, fp16 operands, fp32 accumulation and softmax),
 *    head dim 64 or 128; queries and rotated keys rounded to fp16; the keys are first
 *    gathered and rotated once per chunk (kernels/attn_gather.cu).
 * Both passes of one call use the same implementation (the row statistics differ:
 * natural-log units for precise, log2 units for fast). */
#include "attn_common.cuh"
#include "mma.cuh"
#include <stdio.h>
#include <stdlib.h>

/* ================================================================ precise (SIMT) */

#define S1_BM 16
#define S1_BN 64
#define S2_BK 32
#define S2_BQ 32

/* Rotate the keys of a tile held as f32 rows (stride ks) in shared memory, in place. */
__device__ __forceinline__ void simt_rotate_tile(const crk_attn &a, float *Ks, int ks, const int *kpos, int nkeys) {
    const int rp = a.rope_pairs;
    for (int i = threadIdx.x; i < nkeys * rp; i += blockDim.x) {
        int c = i / rp, p = i % rp;
        int pos = kpos[c];
        if (pos < 0) continue;
        const float *cs = a.rope_cs + ((size_t)pos * rp + p) * 2;
        float co = cs[0], si = cs[1];
        int ia = a.neox ? p : 2 * p, ib = a.neox ? p + rp : 2 * p + 1;
        float x0 = Ks[c * ks + ia], x1 = Ks[c * ks + ib];
        Ks[c * ks + ia] = x0 * co - x1 * si;
        Ks[c * ks + ib] = x0 * si + x1 * co;
    }
}

static size_t simt_p1_smem(int hd) {
    return (size_t)S1_BN * 2 * sizeof(void *) + sizeof(float) * ((size_t)S1_BM * hd + (size_t)S1_BN * (hd + 1) + (size_t)S1_BN * hd + S1_BM * S1_BN)
           + sizeof(int) * 2 * S1_BN;
}

template <int NDMAX>
__global__ void __launch_bounds__(128) attn_p1_simt(crk_attn a) {
    extern __shared__ __align__(16) unsigned char smraw[];
    const int hd = a.hd, hdp = hd + 1, nd = hd >> 3;
    const uint16_t **vptr = (const uint16_t **)smraw;
    const uint16_t **kptr = vptr + S1_BN;
    float *Qs = (float *)(kptr + S1_BN);
    float *Ks = Qs + S1_BM * hd;
    float *Vs = Ks + S1_BN * hdp;
    float *Ps = Vs + S1_BN * hd;
    int *kpos = (int *)(Ps + S1_BM * S1_BN);
    int *kcj = kpos + S1_BN;

    const int tid = threadIdx.x, h = blockIdx.y, kvh = h / (a.n_head / a.n_kv);
    const int m0 = blockIdx.x * S1_BM, L = a.L;
    const int n_sinks = a.st->n_sinks;
    const int64_t p0 = a.st->p0;
    for (int i = tid; i < S1_BM * hd; i += 128) {
        int r = i / hd, d = i % hd, m = m0 + r;
        Qs[i] = m < L ? a.q[(size_t)m * a.q_stride + (size_t)h * hd + d] : 0.f;
    }
    const int row = tid >> 3, sub = tid & 7, m = m0 + row;
    float mrow = -INFINITY, lrow = 0.f;
    float o[NDMAX];
#pragma unroll
    for (int i = 0; i < NDMAX; i++) o[i] = 0.f;
    const int nk_end = a.S + a.N + min(L, m0 + S1_BM);
    const float scale = 1.0f / sqrtf((float)hd);

    for (int k0 = 0; k0 < nk_end; k0 += S1_BN) {
        __syncthreads();
        int valid = 0;
        if (tid < S1_BN) {
            int kidx = k0 + tid;
            crk_kinfo ki;
            ki.pos = -1; ki.cj = -1; ki.k = ki.v = nullptr;
            if (kidx < nk_end) ki = crk_key_info(a, kvh, kidx, n_sinks, p0);
            kpos[tid] = ki.pos; kcj[tid] = ki.cj; kptr[tid] = ki.k; vptr[tid] = ki.v;
            valid = ki.pos >= 0;
        }
        if (!__syncthreads_or(valid)) continue;
        for (int i = tid; i < S1_BN * hd; i += 128) {
            int c = i / hd, d = i % hd;
            float kv = 0.f, vv = 0.f;
            if (kpos[c] >= 0) { kv = crk_h2f(kptr[c][d]); vv = crk_h2f(vptr[c][d]); }
            Ks[c * hdp + d] = kv;
            Vs[c * hd + d] = vv;
        }
        __syncthreads();
        simt_rotate_tile(a, Ks, hdp, kpos, S1_BN);
        __syncthreads();
        float s[S1_BN / 8];
        float tmax = -INFINITY;
#pragma unroll
        for (int i = 0; i < S1_BN / 8; i++) {
            int c = sub + 8 * i;
            float acc = 0.f;
            for (int d = 0; d < hd; d++) acc += Qs[row * hd + d] * Ks[c * hdp + d];
            int cj = kcj[c];
            bool ok = kpos[c] >= 0 && m < L && (cj < 0 || cj <= m);
            s[i] = ok ? acc * scale : -INFINITY;
            tmax = fmaxf(tmax, s[i]);
        }
#pragma unroll
        for (int off = 1; off < 8; off <<= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, off));
        float mnew = fmaxf(mrow, tmax), alpha, psum = 0.f;
        if (mnew == -INFINITY) {
            alpha = 1.f;
#pragma unroll
            for (int i = 0; i < S1_BN / 8; i++) s[i] = 0.f;
        } else {
            alpha = expf(mrow - mnew);
#pragma unroll
            for (int i = 0; i < S1_BN / 8; i++) { s[i] = expf(s[i] - mnew); psum += s[i]; }
        }
#pragma unroll
        for (int off = 1; off < 8; off <<= 1) psum += __shfl_xor_sync(0xffffffffu, psum, off);
        lrow = lrow * alpha + psum;
        mrow = mnew;
#pragma unroll
        for (int i = 0; i < S1_BN / 8; i++) Ps[row * S1_BN + sub + 8 * i] = s[i];
        __syncwarp();
#pragma unroll
        for (int i = 0; i < NDMAX; i++) {
            if (i < nd) {
                int d = sub + 8 * i;
                float acc = o[i] * alpha;
                for (int c = 0; c < S1_BN; c++) acc += Ps[row * S1_BN + c] * Vs[c * hd + d];
                o[i] = acc;
            }
        }
    }
    if (m < L) {
        float inv = 1.0f / lrow;
#pragma unroll
        for (int i = 0; i < NDMAX; i++) {
            if (i < nd) {
                int d = sub + 8 * i;
                float v = o[i] * inv;
                size_t oi = (size_t)m * a.out_stride + (size_t)h * hd + d;
                a.out[oi] = v;
                if (a.out16) a.out16[oi] = crk_f2bf(v);
            }
        }
        if (sub == 0) { a.work[((size_t)h * L + m) * 2] = mrow; a.work[((size_t)h * L + m) * 2 + 1] = inv; }
    }
}

static size_t simt_p2_smem(int hd) {
    return (size_t)S2_BK * sizeof(void *) + sizeof(float) * ((size_t)S2_BK * (hd + 1) + (size_t)S2_BQ * hd + 3 * S2_BQ + 4 * S2_BK)
           + sizeof(int) * 2 * S2_BK;
}

__global__ void __launch_bounds__(128) attn_p2_simt(crk_attn a) {
    extern __shared__ __align__(16) unsigned char smraw[];
    const int hd = a.hd, hdp = hd + 1;
    const uint16_t **kptr = (const uint16_t **)smraw;
    float *Ks = (float *)(kptr + S2_BK);
    float *Qs = Ks + S2_BK * hdp;
    float *stm = Qs + S2_BQ * hd, *sti = stm + S2_BQ, *stw = sti + S2_BQ;
    float *colbuf = stw + S2_BQ;
    int *kpos = (int *)(colbuf + 4 * S2_BK);
    int *kcj = kpos + S2_BK;

    const int tid = threadIdx.x, c = tid & 31, wq = tid >> 5;
    const int kvh = blockIdx.y, n_rep = a.n_head / a.n_kv, L = a.L;
    const int k0 = blockIdx.x * S2_BK, nk = a.S + a.N + L;
    const int n_sinks = a.st->n_sinks;
    const int64_t p0 = a.st->p0;
    int valid = 0;
    if (tid < S2_BK) {
        int kidx = k0 + tid;
        crk_kinfo ki;
        ki.pos = -1; ki.cj = -1; ki.k = ki.v = nullptr;
        if (kidx < nk) ki = crk_key_info(a, kvh, kidx, n_sinks, p0);
        kpos[tid] = ki.pos; kcj[tid] = ki.cj; kptr[tid] = ki.k;
        valid = ki.pos >= 0;
    }
    if (!__syncthreads_or(valid)) {
        if (tid < S2_BK && k0 + tid < nk) a.r[(size_t)kvh * a.r_stride + k0 + tid] = 0.f;
        return;
    }
    for (int i = tid; i < S2_BK * hd; i += 128) {
        int cc = i / hd, d = i % hd;
        Ks[cc * hdp + d] = kpos[cc] >= 0 ? crk_h2f(kptr[cc][d]) : 0.f;
    }
    __syncthreads();
    simt_rotate_tile(a, Ks, hdp, kpos, S2_BK);
    __syncthreads();
    const float scale = 1.0f / sqrtf((float)hd);
    const int mypos = kpos[c], mycj = kcj[c];
    const int qstart = max(0, k0 - a.S - a.N);
    float best = 0.f;
    for (int g = 0; g < n_rep; g++) {
        const int h = kvh * n_rep + g;
        float acc = 0.f;
        for (int q0 = qstart; q0 < L; q0 += S2_BQ) {
            __syncthreads();
            for (int i = tid; i < S2_BQ * hd; i += 128) {
                int r = i / hd, d = i % hd, m = q0 + r;
                Qs[i] = m < L ? a.q[(size_t)m * a.q_stride + (size_t)h * hd + d] : 0.f;
            }
            if (tid < S2_BQ) {
                int m = q0 + tid;
                bool in = m < L;
                stm[tid] = in ? a.work[((size_t)h * L + m) * 2] : 0.f;
                sti[tid] = in ? a.work[((size_t)h * L + m) * 2 + 1] : 0.f;
                stw[tid] = in ? a.w[m] : 0.f;
            }
            __syncthreads();
            if (mypos < 0) continue;
            for (int mm = wq; mm < S2_BQ; mm += 4) {
                int m = q0 + mm;
                if (m >= L) break;
                if (mycj >= 0 && mycj > m) continue;
                float dot = 0.f;
                for (int d = 0; d < hd; d++) dot += Qs[mm * hd + d] * Ks[c * hdp + d];
                float p = expf(dot * scale - stm[mm]) * sti[mm];
                acc += stw[mm] * p;
            }
        }
        colbuf[wq * S2_BK + c] = acc;
        __syncthreads();
        if (wq == 0) {
            float col = colbuf[c] + colbuf[S2_BK + c] + colbuf[2 * S2_BK + c] + colbuf[3 * S2_BK + c];
            if (g == 0 || col > best) best = col;
        }
        __syncthreads();
    }
    if (wq == 0 && k0 + c < nk) a.r[(size_t)kvh * a.r_stride + k0 + c] = mypos >= 0 ? best : 0.f;
}

/* ================================================================ fast (tensor cores) */
/* Both passes read the keys gathered by crk_kv_gather (rotated fp16, compact order), so
 * their tiles are plain contiguous rows: cp.async double buffering, ldmatrix fragments,
 * mma.sync m16n8k16 (fp16 in, fp32 accumulate). Pass 1: one block per (64 queries, query
 * head), 4 warps x 16 rows. Pass 2: one block per (64 keys, KV head), 4 warps x 16 keys,
 * looping over the group's heads and the query tiles that see the keys. */

#define TC_BM 64
#define TC_BN 64

/* rows [r0, r0 + ROWS) of a [rows][HD] fp16 matrix into smem [ROWS][HD + 8] by NT threads;
 * rows >= valid are zero-filled (the source address is clamped to row 0 then). */
template <int HD, int NT, int ROWS = 64>
__device__ __forceinline__ void tc_load_rows(uint16_t *dst, const uint16_t *src, size_t src_stride, int r0, int valid) {
    constexpr int NCH = HD / 8, RS = HD + 8, RPI = NT / NCH;   /* rows per pass of the NT threads */
    static_assert(NT % NCH == 0 && ROWS % RPI == 0, "tile shape");
    const int row0 = threadIdx.x / NCH, ci = threadIdx.x % NCH;
#pragma unroll
    for (int j = 0; j < ROWS / RPI; j++) {
        const int row = row0 + j * RPI, r = r0 + row;
        const bool ok = r < valid;
        cp_async16(dst + row * RS + ci * 8, src + (size_t)(ok ? r : 0) * src_stride + ci * 8, ok ? 16 : 0);
    }
}

/* pass 1: W warps of 16 query rows each (BM = 16 W queries of one head per block) */
template <int HD, int W>
__global__ void __launch_bounds__(32 * W, W <= 4 ? 3 : 1) attn_p1_tc(crk_attn a) {
    constexpr int NT = 32 * W, BM = 16 * W;
    constexpr int RS = HD + 8;
    extern __shared__ __align__(16) uint16_t tsm[];
    uint16_t *Ks = tsm, *Vs = tsm + 2 * TC_BN * RS;     /* [2][64][RS] each */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, kvh = h / (a.n_head / a.n_kv);
    const int m0 = blockIdx.x * BM, L = a.L;
    const int nc = a.st->n_sinks + a.st->nv;
    const int kend = nc + min(L, m0 + BM);
    const uint16_t *Kg = a.kbuf + (size_t)kvh * a.kv_rows * HD, *Vg = a.vbuf + (size_t)kvh * a.kv_rows * HD;
    const int r0 = m0 + warp * 16 + g, r1 = r0 + 8;
    const size_t qs = (size_t)a.n_head * HD;
    uint32_t qa[HD / 16][4];
    {
        const uint16_t *q0p = a.q16 + (size_t)min(r0, L - 1) * qs + (size_t)h * HD;
        const uint16_t *q1p = a.q16 + (size_t)min(r1, L - 1) * qs + (size_t)h * HD;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            qa[kk][0] = r0 < L ? ldg32(q0p + kk * 16 + 2 * t) : 0u;
            qa[kk][1] = r1 < L ? ldg32(q1p + kk * 16 + 2 * t) : 0u;
            qa[kk][2] = r0 < L ? ldg32(q0p + kk * 16 + 2 * t + 8) : 0u;
            qa[kk][3] = r1 < L ? ldg32(q1p + kk * 16 + 2 * t + 8) : 0u;
        }
    }
    float oacc[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) oacc[i][0] = oacc[i][1] = oacc[i][2] = oacc[i][3] = 0.f;
    float mr0 = -INFINITY, mr1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    const float sl2 = (1.0f / sqrtf((float)HD)) * LOG2E;
    const int ntiles = (kend + TC_BN - 1) / TC_BN;

    tc_load_rows<HD, NT>(Ks, Kg, HD, 0, kend);
    tc_load_rows<HD, NT>(Vs, Vg, HD, 0, kend);
    cp_async_commit();
    for (int tile = 0; tile < ntiles; tile++) {
        const int buf = tile & 1, k0 = tile * TC_BN;
        if (tile + 1 < ntiles) {
            tc_load_rows<HD, NT>(Ks + (buf ^ 1) * TC_BN * RS, Kg, HD, k0 + TC_BN, kend);
            tc_load_rows<HD, NT>(Vs + (buf ^ 1) * TC_BN * RS, Vg, HD, k0 + TC_BN, kend);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t *Kb = Ks + buf * TC_BN * RS, *Vb = Vs + buf * TC_BN * RS;
        float sacc[8][4];
        crk_mma_abt<HD, 8, RS>(sacc, qa, Kb);
        /* raw dot products here; the scale (log2 units) is folded into the exponent's FMA */
        const bool need_mask = k0 + TC_BN > nc || m0 + BM > L;
        float tm0 = -INFINITY, tm1 = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < 8; nb++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float v = sacc[nb][e];
                if (need_mask) {
                    const int k = k0 + nb * 8 + 2 * t + (e & 1), row = e < 2 ? r0 : r1;
                    if (!(row < L && (k < nc || k - nc <= row))) v = -INFINITY;
                    sacc[nb][e] = v;
                }
                if (e < 2) tm0 = fmaxf(tm0, v); else tm1 = fmaxf(tm1, v);
            }
        }
        tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 1));
        tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 2));
        tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 1));
        tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 2));
        const float mn0 = fmaxf(mr0, tm0 * sl2), mn1 = fmaxf(mr1, tm1 * sl2);
        const float al0 = mn0 == -INFINITY ? 1.f : crk_ex2(mr0 - mn0);
        const float al1 = mn1 == -INFINITY ? 1.f : crk_ex2(mr1 - mn1);
        const float bb0 = mn0 == -INFINITY ? 0.f : -mn0, bb1 = mn1 == -INFINITY ? 0.f : -mn1;
        float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
        for (int nb = 0; nb < 8; nb++) {
            sacc[nb][0] = crk_ex2(fmaf(sacc[nb][0], sl2, bb0)); sacc[nb][1] = crk_ex2(fmaf(sacc[nb][1], sl2, bb0));
            sacc[nb][2] = crk_ex2(fmaf(sacc[nb][2], sl2, bb1)); sacc[nb][3] = crk_ex2(fmaf(sacc[nb][3], sl2, bb1));
            ps0 += sacc[nb][0] + sacc[nb][1];
            ps1 += sacc[nb][2] + sacc[nb][3];
        }
        l0 = l0 * al0 + ps0; l1 = l1 * al1 + ps1;
        mr0 = mn0; mr1 = mn1;
        if (__any_sync(0xffffffffu, al0 != 1.f || al1 != 1.f)) {   /* the max rarely moves after the first tiles */
#pragma unroll
            for (int i = 0; i < HD / 8; i++) { oacc[i][0] *= al0; oacc[i][1] *= al0; oacc[i][2] *= al1; oacc[i][3] *= al1; }
        }
        crk_mma_pv<HD, 8, RS>(oacc, sacc, Vb);
        __syncthreads();
    }
    crk_p1_store<HD>(a, &oacc[0][0], l0, l1, mr0, mr1, h, r0, r1);
}

/* pass 2: W warps of 16 keys each (BN2 = 16 W keys of one KV head per block) */
template <int HD, int W>
__global__ void __launch_bounds__(32 * W) attn_p2_tc(crk_attn a) {
    constexpr int RS = HD + 8, NT = 32 * W, BN2 = 16 * W;
    extern __shared__ __align__(16) uint16_t tsm[];
    uint16_t *Ks = tsm;                          /* [BN2][RS] */
    uint16_t *Qs = tsm + BN2 * RS;               /* [2][64][RS] */
    float2 *stt = (float2 *)(Qs + 2 * TC_BM * RS); /* [2][64]: (-max, w/sum) per query */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int kvh = blockIdx.y, n_rep = a.n_head / a.n_kv, L = a.L;
    const int nc = a.st->n_sinks + a.st->nv, nk = nc + L;
    const int k0 = blockIdx.x * BN2;
    if (k0 >= nk) return;
    const uint16_t *Kg = a.kbuf + (size_t)kvh * a.kv_rows * HD;
    const int lm_i = lane >> 3, lm_r = lane & 7;
    tc_load_rows<HD, NT, BN2>(Ks, Kg, HD, k0, nk);
    cp_async_commit();
    const int qstart = k0 >= nc ? ((k0 - nc) & ~(TC_BM - 1)) : 0;
    const int nqt = (L - qstart + TC_BM - 1) / TC_BM, total = n_rep * nqt;
    const size_t qstride = (size_t)a.n_head * HD;
    auto issue = [&](int it, int buf) {
        const int gg = it / nqt, q0 = qstart + (it % nqt) * TC_BM, h = kvh * n_rep + gg;
        tc_load_rows<HD, NT>(Qs + buf * TC_BM * RS, a.q16 + (size_t)h * HD, qstride, q0, L);
        if (tid < TC_BM) {
            const int m = q0 + tid;
            const bool in = m < L;
            stt[buf * TC_BM + tid] = in ? make_float2(-a.work[((size_t)h * L + m) * 2], a.w[m] * a.work[((size_t)h * L + m) * 2 + 1])
                                        : make_float2(0.f, 0.f);
        }
        cp_async_commit();
    };
    if (total > 0) issue(0, 0);
    cp_async_wait<0>();
    __syncthreads();
    const int kr0 = warp * 16 + g, kr1 = kr0 + 8;
    uint32_t ka[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        ldsm_x4(ka[kk][0], ka[kk][1], ka[kk][2], ka[kk][3], Ks + (warp * 16 + (lm_i & 1) * 8 + lm_r) * RS + kk * 16 + (lm_i >> 1) * 8);
    const int key0 = k0 + kr0, key1 = k0 + kr1;
    const int cj0 = key0 >= nc ? key0 - nc : -1, cj1 = key1 >= nc ? key1 - nc : -1;
    const float sl2 = (1.0f / sqrtf((float)HD)) * LOG2E;
    float acc0 = 0.f, acc1 = 0.f, best0 = 0.f, best1 = 0.f;
    for (int it = 0; it < total; it++) {
        const int buf = it & 1, gg = it / nqt, q0 = qstart + (it % nqt) * TC_BM;
        if (it + 1 < total) {
            issue(it + 1, buf ^ 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t *Qb = Qs + buf * TC_BM * RS;
        const float2 *sb = stt + buf * TC_BM;
        float sacc[8][4];
        crk_mma_abt<HD, 8, RS>(sacc, ka, Qb);
        const bool need_mask = k0 + BN2 > nc || q0 + TC_BM > L;
#pragma unroll
        for (int nb = 0; nb < 8; nb++) {
            const float4 st2 = *(const float4 *)(sb + nb * 8 + 2 * t);   /* queries qi, qi + 1 */
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qi = nb * 8 + 2 * t + (e & 1), m = q0 + qi;
                const bool second = e >= 2;
                /* (this exact form: `m = q0 + nb * 8 + ...` or `ok = !need_mask || ...` made ptxas
                 * take 121 registers, 2 blocks per SM instead of 3: 4.1 against 2.7 ms on the H200) */
                bool ok = true;
                if (need_mask) ok = crk_p2_visible(m, L, second ? key1 : key0, nk, second ? cj1 : cj0);
                const float nmax = (e & 1) ? st2.z : st2.x, wsum = (e & 1) ? st2.w : st2.y;
                const float v = ok ? wsum * crk_ex2(fmaf(sacc[nb][e], sl2, nmax)) : 0.f;
                if (second) acc1 += v; else acc0 += v;
            }
        }
        if (it + 1 == total || (it + 1) / nqt != gg) {   /* last query tile of this head */
            crk_p2_head_done(acc0, acc1, gg == 0, best0, best1);
            acc0 = acc1 = 0.f;
        }
        __syncthreads();
    }
    if (t == 0) {
        if (key0 < nk) a.r[(size_t)kvh * a.r_stride + a.kdst[key0]] = best0;
        if (key1 < nk) a.r[(size_t)kvh * a.r_stride + a.kdst[key1]] = best1;
    }
}

/* ================================================================ dispatch */

extern "C" int crk_attn_fast_ok(int hd, int rope_pairs) {
    return (hd == 64 || hd == 128) && rope_pairs % 8 == 0;
}

extern "C" size_t crk_attn_work_floats(int S, int N, int max_L, int n_head, int hd) {
    size_t stats = (size_t)n_head * (max_L > 0 ? max_L : 1) * 2;
    size_t nk = (size_t)S + N + 1;
    size_t nsplit = (nk + CRK_DEC_KS - 1) / CRK_DEC_KS;
    size_t dec = crk_dec_part_off(n_head, S, N) + nsplit * n_head * ((size_t)hd + 2);
    return (stats > dec ? stats : dec) + 64;
}

template <int NDMAX>
static void launch_p1_simt(const crk_attn *a, cudaStream_t s) {
    size_t smem = simt_p1_smem(a->hd);
    static int attr_done = 0;   /* once, before any graph capture: sized for head dim 256 */
    if (!attr_done) { cudaFuncSetAttribute(attn_p1_simt<NDMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)simt_p1_smem(256)); attr_done = 1; }
    dim3 grid(crk_cdiv(a->L, S1_BM), a->n_head);
    attn_p1_simt<NDMAX><<<grid, 128, smem, s>>>(*a);
}

/* Warps per block of the two passes: pass 1 takes 16 W queries per block (W = 4 or 8),
 * pass 2 16 W keys (W = 4 or 8); more rows per block divide the tiles' traffic from L2.
 * CRK_ATTN_WARPS="W1,W2" overrides the defaults (benchmarks). */
static int p1_warps = 4, p2_warps = 8;   /* H200, 8B shape: pass 1 250 TFLOP/s at 4 (6: 219, 8: 206); pass 2 187 at 8 (179 at 4) */
static void attn_warps_init(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    const char *e = getenv("CRK_ATTN_WARPS");
    int w1, w2;
    if (e && sscanf(e, "%d,%d", &w1, &w2) == 2) {
        if (w1 == 4 || w1 == 8) p1_warps = w1;
        if (w2 == 4 || w2 == 8) p2_warps = w2;
    }
}

template <int HD, int W>
static void launch_p1(const crk_attn *a, cudaStream_t s) {
    constexpr size_t sm1 = sizeof(uint16_t) * 4 * TC_BN * (HD + 8);
    static int attr_done = 0;
    if (!attr_done) {   /* the largest shared-memory carveout: several blocks per SM */
        cudaFuncSetAttribute(attn_p1_tc<HD, W>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm1);
        cudaFuncSetAttribute(attn_p1_tc<HD, W>, cudaFuncAttributePreferredSharedMemoryCarveout, 100);
        attr_done = 1;
    }
    attn_p1_tc<HD, W><<<dim3(crk_cdiv(a->L, 16 * W), a->n_head), 32 * W, sm1, s>>>(*a);
}
template <int HD, int W> static constexpr size_t p2_smem() { return sizeof(uint16_t) * (16 * W + 2 * TC_BM) * (HD + 8) + sizeof(float2) * 2 * TC_BM; }
template <int HD, int W>
static void launch_p2_attr(void) {
    static int attr_done = 0;
    if (!attr_done) {
        cudaFuncSetAttribute(attn_p2_tc<HD, W>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p2_smem<HD, W>());
        cudaFuncSetAttribute(attn_p2_tc<HD, W>, cudaFuncAttributePreferredSharedMemoryCarveout, 100);
        attr_done = 1;
    }
}
template <int HD, int W>
static void launch_p2(const crk_attn *a, cudaStream_t s) {
    launch_p2_attr<HD, W>();
    const int nk_max = a->S + a->N + a->L;
    attn_p2_tc<HD, W><<<dim3(crk_cdiv(nk_max, 16 * W), a->n_kv), 32 * W, p2_smem<HD, W>(), s>>>(*a);
}

/* Blocks per SM of the mma.sync pass 2 as launched by default (8 warps, head dim hd): shared
 * memory allows 3, and ptxas reaches 3 only when it keeps the kernel at 85 registers or fewer. */
extern "C" int crk_attn_p2_blocks_per_sm(int hd) {
    constexpr int W = 8;
    int n = 0;
    if (hd == 64) {
        launch_p2_attr<64, W>();
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attn_p2_tc<64, W>, 32 * W, p2_smem<64, W>()) != cudaSuccess) n = -1;
    } else {
        launch_p2_attr<128, W>();
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attn_p2_tc<128, W>, 32 * W, p2_smem<128, W>()) != cudaSuccess) n = -1;
    }
    return n;
}

static int tc_impl = CRK_ATTN_IMPL_AUTO;
extern "C" int crk_attn_set_impl(int impl) {
    const int old = tc_impl;
    tc_impl = impl;
    return old;
}

/* phases: bit 0 the key gather, bit 1 pass 1, bit 2 pass 2 */
template <int HD>
static void launch_tc(const crk_attn *a, cudaStream_t s, int phases = 7) {
    attn_warps_init();
    if (phases & 1) crk_kv_gather(a, s);
    if (tc_impl != CRK_ATTN_IMPL_MMA && crk_attn_wg_ok(HD)) {   /* Hopper: warpgroup MMA (kernels/attn_chunk_wg.cu) */
        /* both passes on wgmma, warp-specialized by default (H200, 8B shape, L = 4096, full
         * cache: pass 1 2.32 ms specialized / 3.21 not; pass 2 1.82 ms specialized / 2.0 not /
         * 2.73 on mma.sync); CRK_ATTN_IMPL_WG_WS specializes pass 1 only, CRK_ATTN_IMPL_WG neither */
        const int ws1 = tc_impl != CRK_ATTN_IMPL_WG, ws2 = tc_impl == CRK_ATTN_IMPL_AUTO || tc_impl == CRK_ATTN_IMPL_WG_WS2;
        crk_attn_wg(a, s, phases & 6, (ws1 ? 1 : 0) | (ws2 ? 2 : 0));
        phases &= ~6;
    }
    if (phases & 2) {
        if (p1_warps == 8) launch_p1<HD, 8>(a, s);
        else launch_p1<HD, 4>(a, s);
    }
    if (phases & 4) {
        if (p2_warps == 8) launch_p2<HD, 8>(a, s);
        else launch_p2<HD, 4>(a, s);
    }
}

/* Benchmarks: one phase of the tensor-core path (1 gather, 2 pass 1, 4 pass 2); -1 when the
 * call would take the precise path. */
extern "C" int crk_attn_chunk_phases(const crk_attn *a, crk_stream s, int phases) {
    const int nk = a->S + a->N + a->L;
    if (a->L <= 0 || a->mode == CRK_ATTN_PRECISE || !a->q16 || !a->kbuf || !a->vbuf || !a->kdst || a->kv_rows < nk + 64 ||
        !crk_attn_fast_ok(a->hd, a->rope_pairs)) return -1;
    if (a->hd == 64) launch_tc<64>(a, s, phases);
    else launch_tc<128>(a, s, phases);
    return 0;
}

extern "C" void crk_attn_chunk(const crk_attn *a, crk_stream s) {
    if (a->L <= 0) return;
    const int nk = a->S + a->N + a->L;
    const bool fast = a->mode != CRK_ATTN_PRECISE && a->q16 && a->kbuf && a->vbuf && a->kdst &&
                      a->kv_rows >= nk + 64 && crk_attn_fast_ok(a->hd, a->rope_pairs);
    if (fast) {
        if (a->hd == 64) launch_tc<64>(a, s);
        else launch_tc<128>(a, s);
        return;
    }
    const int nd = a->hd / 8;
    if (nd <= 1) launch_p1_simt<1>(a, s);
    else if (nd <= 2) launch_p1_simt<2>(a, s);
    else if (nd <= 4) launch_p1_simt<4>(a, s);
    else if (nd <= 8) launch_p1_simt<8>(a, s);
    else if (nd <= 16) launch_p1_simt<16>(a, s);
    else launch_p1_simt<32>(a, s);
    size_t smem2 = simt_p2_smem(a->hd);
    static int attr2_done = 0;
    if (!attr2_done) { cudaFuncSetAttribute(attn_p2_simt, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)simt_p2_smem(256)); attr2_done = 1; }
    attn_p2_simt<<<dim3(crk_cdiv(nk, S2_BK), a->n_kv), 128, smem2, s>>>(*a);
}
