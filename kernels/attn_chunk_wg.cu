/* Chunk attention of the cascading cache on Hopper warpgroup MMA (wgmma, sm_90a): the same
 * two passes as the mma.sync kernels of kernels/attn_chunk.cu (GPU twins of attn_chunk_cpu,
 * engine/attn_cpu.c), over the keys that crk_kv_gather left rotated, in fp16, in the
 * compact order [sinks | filled slots | chunk keys]:
 *  - pass 1: one block of two warpgroups per (128 queries, query head); each warpgroup owns
 *    64 queries. Per tile of 128 keys: S = Q.K^T (wgmma, Q and K in shared memory), the
 *    online softmax in registers (log2 units, the scale folded into ex2), O += P.V (wgmma, P
 *    from registers as fp16, V in shared memory read transposed). Keys and values go through
 *    three cp.async stages. Writes out (f32, optional bf16) and each row's (max, 1/sum) for
 *    pass 2.
 *  - pass 2: one block of two warpgroups per (128 keys, KV head); each warpgroup owns 64
 *    keys. For every query head of the group and every tile of 128 queries that sees the
 *    keys: S^T = K.Q^T (wgmma), p = ex2(s - max) / sum, and w_m p summed per key; the
 *    score column is the maximum over the group's heads. No atomics: deterministic.
 *    attn_p2_wgws: the same, warp-specialized (a TMA producer warp, mbarrier stages): the
 *    default pass 2 on compute capability 9.0 (H200, 8B shape, L = 4096, full cache: 1.82 ms,
 *    against 2.0 for attn_p2_wg and 2.73 for the mma.sync kernel).
 *  Pass 1 likewise has a warp-specialized kernel, attn_p1_wgws (the default), below.
 * Numerics equal the mma.sync kernels' (fp16 operands, fp32 accumulation and softmax) up to
 * summation order. Built only into the sm_90a image; crk_attn_wg_ok() says when it runs. */
#include "attn_common.cuh"
#include "wgmma.cuh"
#include <cudaTypedefs.h>   /* CUtensorMap, PFN_cuTensorMapEncodeTiled (types only: no -lcuda) */
#include <stdio.h>
#include <stdlib.h>

#define WG_BM 128   /* pass 1: queries per block (2 warpgroups x 64) */
#define WG_BN 128   /* pass 1: keys per tile; pass 2: keys per block (2 x 64) and queries per tile */
#define WG_NT 256

/* rows [r0, r0 + ROWS) of a [rows][HD] fp16 matrix (row stride `stride` elements) into the
 * swizzled tile at shared address sbase; rows >= valid are zero-filled. */
template <int HD, int ROWS>
__device__ __forceinline__ void wg_load(uint32_t sbase, const uint16_t *src, size_t stride, int r0, int valid) {
    constexpr int CPR = HD / 8, TOTAL = ROWS * CPR;
    static_assert(TOTAL % WG_NT == 0, "tile shape");
#pragma unroll
    for (int j = 0; j < TOTAL / WG_NT; j++) {
        const int i = threadIdx.x + j * WG_NT, r = i / CPR, cc = i % CPR, gr = r0 + r;
        const bool ok = gr < valid;
        cp_async16s(sbase + wg_tile_off<ROWS>(r, cc * 8), src + (size_t)(ok ? gr : 0) * stride + cc * 8, ok ? 16 : 0);
    }
}

/* S[64 x 128] = A[64 x HD] . B[128 x HD]^T, both K-major swizzled tiles (A rows from arow0
 * of a tile of AROWS rows; B a tile of 128 rows): issued as one wgmma group, not waited for. */
template <int HD, int AROWS>
__device__ __forceinline__ void wg_qk_issue(float (&s)[64], uint32_t sa, int arow0, uint32_t sb) {
#if CRK_HAVE_WGMMA
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        const uint32_t koff = (uint32_t)(kk & 3) * 32;   /* 16 elements inside a 64-column panel */
        const uint64_t da = wg_desc(sa + (kk >> 2) * AROWS * 128 + arow0 * 128 + koff, 16);
        const uint64_t db = wg_desc(sb + (kk >> 2) * WG_BN * 128 + koff, 16);
        wg_ss_n128(s, da, db, kk > 0);
    }
    wg_commit();
#endif
}
template <int HD, int AROWS>
__device__ __forceinline__ void wg_qk(float (&s)[64], uint32_t sa, int arow0, uint32_t sb) {
    wg_qk_issue<HD, AROWS>(s, sa, arow0, sb);
    wg_wait<0>();
    wg_fence_regs(s);
}

/* O[64 x HD] += P[64 x 128] . V[128 x HD]: P as the A fragments of 8 k-steps of 16 keys, V a
 * swizzled [128][HD] tile read N-major; issued as one wgmma group, not waited for. */
template <int HD>
__device__ __forceinline__ void wg_pv_issue(float (&o)[HD / 2], const uint32_t (&pa)[8][4], uint32_t sv) {
#if CRK_HAVE_WGMMA
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        const uint64_t dv = wg_desc(sv + kk * 16 * 128, WG_BN * 128);
        if constexpr (HD == 128) wg_rs_n128(o, pa[kk], dv, 1);
        else wg_rs_n64(o, pa[kk], dv, 1);
    }
    wg_commit();
#endif
}
/* after the wait for a wgmma group that read pa: keeps pa's registers from being reused earlier */
__device__ __forceinline__ void wg_fence_pa(uint32_t (&pa)[8][4]) {
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+r"(pa[i][e]) :: "memory");
}

/* Online softmax of a [64 x 128] score tile (keys k0 + 8j + 2t + (e & 1) of rows r0, r1), in
 * place: masked scores become p = 0, the others p = ex2(s sl2 - max); updates the rows'
 * running max (log2 units) and sum, and returns each row's rescale factor of earlier output. */
struct wg_rows { float m0, m1, l0, l1; };
__device__ __forceinline__ void wg_softmax(float (&s)[64], wg_rows &st, int k0, int nc, int L, int r0, int r1, bool need_mask,
                                           float sl2, float &al0, float &al1) {
    const int t = threadIdx.x & 3;
    /* four independent max / sum chains per row: with two warps per scheduler, one serial
     * chain of 32 dependent instructions is latency-bound */
    float tmx[2][4] = {{-INFINITY, -INFINITY, -INFINITY, -INFINITY}, {-INFINITY, -INFINITY, -INFINITY, -INFINITY}};
#pragma unroll
    for (int j = 0; j < 16; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float v = s[4 * j + e];
            if (need_mask) {
                const int k = k0 + j * 8 + 2 * t + (e & 1), row = e < 2 ? r0 : r1;
                if (!(row < L && (k < nc || k - nc <= row))) v = -INFINITY;
                s[4 * j + e] = v;
            }
            tmx[e >> 1][(j & 1) * 2 + (e & 1)] = fmaxf(tmx[e >> 1][(j & 1) * 2 + (e & 1)], v);
        }
    }
    float tm0 = fmaxf(fmaxf(tmx[0][0], tmx[0][1]), fmaxf(tmx[0][2], tmx[0][3]));
    float tm1 = fmaxf(fmaxf(tmx[1][0], tmx[1][1]), fmaxf(tmx[1][2], tmx[1][3]));
    tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 1));
    tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 2));
    tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 1));
    tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 2));
    const float mn0 = fmaxf(st.m0, tm0 * sl2), mn1 = fmaxf(st.m1, tm1 * sl2);
    al0 = mn0 == -INFINITY ? 1.f : crk_ex2(st.m0 - mn0);
    al1 = mn1 == -INFINITY ? 1.f : crk_ex2(st.m1 - mn1);
    const float bb0 = mn0 == -INFINITY ? 0.f : -mn0, bb1 = mn1 == -INFINITY ? 0.f : -mn1;
    float ps[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int j = 0; j < 16; j++) {
        s[4 * j + 0] = crk_ex2(fmaf(s[4 * j + 0], sl2, bb0)); s[4 * j + 1] = crk_ex2(fmaf(s[4 * j + 1], sl2, bb0));
        s[4 * j + 2] = crk_ex2(fmaf(s[4 * j + 2], sl2, bb1)); s[4 * j + 3] = crk_ex2(fmaf(s[4 * j + 3], sl2, bb1));
        ps[0][(j & 1) * 2] += s[4 * j + 0]; ps[0][(j & 1) * 2 + 1] += s[4 * j + 1];
        ps[1][(j & 1) * 2] += s[4 * j + 2]; ps[1][(j & 1) * 2 + 1] += s[4 * j + 3];
    }
    const float ps0 = (ps[0][0] + ps[0][1]) + (ps[0][2] + ps[0][3]), ps1 = (ps[1][0] + ps[1][1]) + (ps[1][2] + ps[1][3]);
    st.l0 = st.l0 * al0 + ps0; st.l1 = st.l1 * al1 + ps1;
    st.m0 = mn0; st.m1 = mn1;
}
__device__ __forceinline__ void wg_pack_p(const float (&s)[64], uint32_t (&pa)[8][4]) {
#pragma unroll
    for (int j = 0; j < 16; j++) {
        pa[j >> 1][(j & 1) * 2 + 0] = pack_h2(s[4 * j + 0], s[4 * j + 1]);
        pa[j >> 1][(j & 1) * 2 + 1] = pack_h2(s[4 * j + 2], s[4 * j + 3]);
    }
}
template <int HD>
__device__ __forceinline__ void wg_rescale(float (&o)[HD / 2], float al0, float al1) {
    if (__any_sync(0xffffffffu, al0 != 1.f || al1 != 1.f)) {   /* the max rarely moves after the first tiles */
#pragma unroll
        for (int i = 0; i < HD / 8; i++) { o[4 * i] *= al0; o[4 * i + 1] *= al0; o[4 * i + 2] *= al1; o[4 * i + 3] *= al1; }
    }
}
/* Three key/value stages; the Q.K of tile j is issued together with the P.V of tile j - 1 so
 * that tile j's softmax runs while the tensor cores do P.V (FlashAttention-3's
 * intra-warpgroup overlap). Measured on the H200 (8B shape, L = 4096, full cache): 392
 * TFLOP/s against 355 with two stages and each product waited for in turn. */
template <int HD>
__global__ void __launch_bounds__(WG_NT, 1) attn_p1_wg(crk_attn a) {
#if CRK_HAVE_WGMMA
    extern __shared__ uint8_t wsm[];
    constexpr uint32_t TILE = WG_BN * HD * 2;            /* bytes of a [128][HD] tile */
    constexpr int NS = 3;                                /* key/value stages */
    const uint32_t base = ((uint32_t)__cvta_generic_to_shared(wsm) + 1023u) & ~1023u;
    const uint32_t sQ = base, sK = base + TILE, sV = base + (1 + NS) * TILE;   /* Q [128][HD], K [NS][128][HD], V [NS][128][HD] */
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, g = (tid & 31) >> 2;
    const int h = blockIdx.y, kvh = h / (a.n_head / a.n_kv);
    const int m0 = blockIdx.x * WG_BM, L = a.L;
    const int nc = a.st->n_sinks + a.st->nv;
    const int kend = nc + min(L, m0 + WG_BM);
    const uint16_t *Kg = a.kbuf + (size_t)kvh * a.kv_rows * HD, *Vg = a.vbuf + (size_t)kvh * a.kv_rows * HD;
    const int r0 = m0 + wg * 64 + warp * 16 + g, r1 = r0 + 8;
    const int ntiles = (kend + WG_BN - 1) / WG_BN;
    const float sl2 = (1.0f / sqrtf((float)HD)) * LOG2E;
    auto load_kv = [&](int tile) {
        wg_load<HD, WG_BN>(sK + (tile % NS) * TILE, Kg, HD, tile * WG_BN, kend);
        wg_load<HD, WG_BN>(sV + (tile % NS) * TILE, Vg, HD, tile * WG_BN, kend);
    };
    auto mask_of = [&](int tile) { return tile * WG_BN + WG_BN > nc || m0 + WG_BM > L; };

    wg_load<HD, WG_BM>(sQ, a.q16 + (size_t)h * HD, (size_t)a.n_head * HD, m0, L);
    load_kv(0);
    cp_async_commit();
    float o[HD / 2];                                     /* [64 x HD] accumulator of this warpgroup */
#pragma unroll
    for (int i = 0; i < HD / 2; i++) o[i] = 0.f;
    wg_rows st = {-INFINITY, -INFINITY, 0.f, 0.f};
    float s[64];                                         /* [64 x 128] scores: key k0 + 8j + 2t + (e & 1) */
    uint32_t pa[8][4];                                   /* P as the A fragments of 8 k-steps of 16 keys */
    float al0, al1;
    if (ntiles > 1) load_kv(1);
    cp_async_commit();
    cp_async_wait<1>();
    wg_fence_proxy();
    __syncthreads();
    wg_qk<HD, WG_BM>(s, sQ, wg * 64, sK);
    wg_softmax(s, st, 0, nc, L, r0, r1, mask_of(0), sl2, al0, al1);
    wg_pack_p(s, pa);
    for (int tile = 1; tile < ntiles; tile++) {
        cp_async_wait<0>();                              /* tile's keys and values have landed */
        wg_fence_proxy();
        __syncthreads();                                 /* and every warp is done with tile - 2's stage */
        if (tile + 1 < ntiles) load_kv(tile + 1);
        cp_async_commit();
        wg_qk_issue<HD, WG_BM>(s, sQ, wg * 64, sK + (tile % NS) * TILE);
        wg_pv_issue<HD>(o, pa, sV + ((tile - 1) % NS) * TILE);
        wg_wait<1>();
        wg_fence_regs(s);
        wg_softmax(s, st, tile * WG_BN, nc, L, r0, r1, mask_of(tile), sl2, al0, al1);
        wg_wait<0>();
        wg_fence_regs(o);
        wg_fence_pa(pa);
        wg_rescale<HD>(o, al0, al1);
        wg_pack_p(s, pa);
    }
    wg_pv_issue<HD>(o, pa, sV + ((ntiles - 1) % NS) * TILE);
    wg_wait<0>();
    wg_fence_regs(o);
    wg_fence_pa(pa);
    crk_p1_store<HD>(a, o, st.l0, st.l1, st.m0, st.m1, h, r0, r1);
#endif
}

/* Three query stages; the K.Q^T of the next query tile runs on the tensor cores while this
 * tile's exponentials are summed. Measured on the H200 (8B shape, L = 4096, full cache):
 * 2.83 ms against 2.72 ms for the mma.sync kernel, which therefore stays the default
 * (crk_attn_set_impl(CRK_ATTN_IMPL_WG) selects this one). */
/* Pass 2's work on query tile it (attn_p2_wg and attn_p2_wgws): w p summed over the tile's
 * queries for the thread's two keys key0 / key1 (four independent chains per key), and the
 * maximum over the group's heads after a head's last tile. stt: the (-max, w/sum) of the
 * tiles' queries in NS stages of WG_BN. */
template <int HD, int NS>
__device__ __forceinline__ void wg_p2_consume(const crk_attn &a, int it, const float (&s)[64], const float2 *stt, int nqt, int qstart, int total,
                                              int k0, int nc, int nk, int L, int key0, int key1, int cj0, int cj1, float sl2, int t,
                                              float (&acc)[2][4], float &best0, float &best1) {
    const int gg = it / nqt, q0 = qstart + (it % nqt) * WG_BN;
    const float2 *sb = stt + (it % NS) * WG_BN;
    const bool need_mask = k0 + WG_BN > nc || q0 + WG_BN > L;
#pragma unroll
    for (int j = 0; j < 16; j++) {
        const float4 st2 = *(const float4 *)(sb + j * 8 + 2 * t);   /* queries qi, qi + 1 */
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int qi = j * 8 + 2 * t + (e & 1), m = q0 + qi;
            const bool second = e >= 2;
            bool ok = true;   /* (this form: see attn_p2_tc) */
            if (need_mask) ok = crk_p2_visible(m, L, second ? key1 : key0, nk, second ? cj1 : cj0);
            const float nmax = (e & 1) ? st2.z : st2.x, wsum = (e & 1) ? st2.w : st2.y;
            float &ac = acc[second][(j & 1) * 2 + (e & 1)];
            const float pe = crk_ex2(fmaf(s[4 * j + e], sl2, nmax));
            ac = fmaf(wsum, ok ? pe : 0.f, ac);   /* a masked key's p may be inf: select, never multiply by 0 */
        }
    }
    if (it + 1 == total || (it + 1) / nqt != gg) {   /* last query tile of this head */
        crk_p2_head_done((acc[0][0] + acc[0][1]) + (acc[0][2] + acc[0][3]), (acc[1][0] + acc[1][1]) + (acc[1][2] + acc[1][3]), gg == 0, best0, best1);
#pragma unroll
        for (int i = 0; i < 8; i++) acc[i >> 2][i & 3] = 0.f;
    }
}

template <int HD>
__global__ void __launch_bounds__(WG_NT, 1) attn_p2_wg(crk_attn a) {
#if CRK_HAVE_WGMMA
    extern __shared__ uint8_t wsm[];
    constexpr uint32_t TILE = WG_BN * HD * 2;
    constexpr int NS = 3;                                /* query stages */
    const uint32_t s0 = (uint32_t)__cvta_generic_to_shared(wsm), base = (s0 + 1023u) & ~1023u;
    const uint32_t sK = base, sQ = base + TILE;          /* K [128][HD], Q [NS][128][HD] */
    float2 *stt = (float2 *)(wsm + (base - s0) + (1 + NS) * TILE);   /* [NS][128]: (-max, w/sum) per query */
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, g = (tid & 31) >> 2, t = tid & 3;
    const int kvh = blockIdx.y, n_rep = a.n_head / a.n_kv, L = a.L;
    const int nc = a.st->n_sinks + a.st->nv, nk = nc + L;
    const int k0 = blockIdx.x * WG_BN;
    if (k0 >= nk) return;
    wg_load<HD, WG_BN>(sK, a.kbuf + (size_t)kvh * a.kv_rows * HD, HD, k0, nk);
    cp_async_commit();
    const int qstart = k0 >= nc ? ((k0 - nc) & ~(WG_BN - 1)) : 0;
    const int nqt = (L - qstart + WG_BN - 1) / WG_BN, total = n_rep * nqt;
    const size_t qstride = (size_t)a.n_head * HD;
    auto issue = [&](int it) {   /* query tile it's rows and statistics into stage it % NS */
        const int gg = it / nqt, q0 = qstart + (it % nqt) * WG_BN, h = kvh * n_rep + gg, buf = it % NS;
        wg_load<HD, WG_BN>(sQ + buf * TILE, a.q16 + (size_t)h * HD, qstride, q0, L);
        if (tid < WG_BN) {
            const int m = q0 + tid;
            stt[buf * WG_BN + tid] = m < L ? make_float2(-a.work[((size_t)h * L + m) * 2], a.w[m] * a.work[((size_t)h * L + m) * 2 + 1])
                                           : make_float2(0.f, 0.f);
        }
        cp_async_commit();
    };
    const int key0 = k0 + wg * 64 + warp * 16 + g, key1 = key0 + 8;
    const int cj0 = key0 >= nc ? key0 - nc : -1, cj1 = key1 >= nc ? key1 - nc : -1;
    const float sl2 = (1.0f / sqrtf((float)HD)) * LOG2E;
    float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}}, best0 = 0.f, best1 = 0.f;   /* 4 independent chains per key */
    /* w p summed over the tile's queries for the thread's two keys; the maximum over the
     * group's heads after a head's last tile */
    auto consume = [&](int it, const float (&s)[64]) {
        wg_p2_consume<HD, NS>(a, it, s, stt, nqt, qstart, total, k0, nc, nk, L, key0, key1, cj0, cj1, sl2, t, acc, best0, best1);
    };
    issue(0);
    if (total > 1) issue(1); else cp_async_commit();
    cp_async_wait<1>();
    wg_fence_proxy();
    __syncthreads();
    float sA[64], sB[64];                            /* [64 keys x 128 queries]: query q0 + 8j + 2t + (e & 1) */
    wg_qk<HD, WG_BN>(sA, sK, wg * 64, sQ);
    /* step it: tile it's product is in sx; tile it + 1's is computed into sy meanwhile (past
     * the last tile from a stale stage, never read). No product is in flight across a step
     * boundary (ptxas serializes wgmma otherwise). */
    auto step = [&](int it, float (&sx)[64], float (&sy)[64]) {
        cp_async_wait<0>();                              /* tile it + 1's queries have landed */
        wg_fence_proxy();
        __syncthreads();                                 /* and every warp is done with tile it - 1's stage */
        if (it + 2 < total) issue(it + 2);
        wg_qk_issue<HD, WG_BN>(sy, sK, wg * 64, sQ + ((it + 1) % NS) * TILE);
        consume(it, sx);
        wg_wait<0>();
        wg_fence_regs(sy);
    };
    for (int it = 0; it < total; it += 2) {
        step(it, sA, sB);
        if (it + 1 < total) step(it + 1, sB, sA);
    }
    if (t == 0) {
        if (key0 < nk) a.r[(size_t)kvh * a.r_stride + a.kdst[key0]] = best0;
        if (key1 < nk) a.r[(size_t)kvh * a.r_stride + a.kdst[key1]] = best1;
    }
#endif
}

/* ================================================================ pass 1, warp-specialized
 * One producer warpgroup and two consumer warpgroups (64 queries each) that never meet at a
 * block barrier.
 *
 * Producer: one thread (the others give their registers back with setmaxnreg and exit)
 * issues TMA copies (cp.async.bulk.tensor, 128-byte swizzle, one box of [128 rows][64
 * columns] per 64-column panel): Q once, then for every tile of 128 keys its K tile and its
 * V tile, each into stage t % NS of its own ring. A TMA box of 64 fp16 columns is one
 * 128-byte row per tile row, written row after row (row r at byte 128 r of the box) with the
 * 16-byte chunk c of a row stored at chunk c ^ ((address >> 7) & 7); every box starts on a
 * 1024-byte boundary, so (address >> 7) & 7 = r & 7: exactly wg_tile_off's layout, panel p at
 * sbase + p * ROWS * 128.
 *
 * Rows outside the tensor maps are zero-filled by the TMA unit: Q rows >= L (map [L][n_head
 * HD]) and K / V rows >= kv_rows (a 3-d map [n_kv][kv_rows][HD], so that a head's tail never
 * reads the next head's rows). Valid keys end at nk = n_sinks + nv + L <= kv_rows - 64, which
 * only the device knows; a tile reads up to row roundup(nk, 128) - 1, so crk_kv_gather writes
 * zeros to rows [nk, min(roundup(nk, 128), kv_rows)) of kbuf and vbuf (attn_gather.cu). The
 * softmax selects p = 0 for masked keys, but P.V would still turn a NaN / Inf V row into NaN.
 * (A map bounded by nk would need the host to read st, a synchronization, and would break
 * graph capture; zeroing in shared memory would put generic-proxy stores and a proxy fence
 * on the consumers' path.) So pass 1 alone (crk_attn_chunk_phases(..., 2)) relies on a gather
 * of the same step having run before, as it already did for the keys themselves.
 *
 * Barriers (mbarrier, shared memory):
 *   q_full         count 1: the producer's arrive.expect_tx(Q bytes); completes (phase 0)
 *                  when Q has landed. Waited once with parity 0.
 *   k_full[s]      count 1: arrive.expect_tx(tile bytes) before the copies of the tile t with
 *   v_full[s]      t % NS = s; phase n (n = t / NS) completes when they have landed.
 *                  Consumers wait for tile t with parity (t / NS) & 1. They are never more
 *                  than one phase behind: phase n + 1 needs the producer to have waited for
 *                  k_empty / v_empty phase n, i.e. for every consumer warp to have passed tile t.
 *   k_empty[s]     count 8 (one arrival per consumer warp, lane 0, after the warp's
 *   v_empty[s]     wgmma.wait_group that covers the reads of the stage): phase n completes
 *                  when tile n NS + s's K (V) is no longer read. Before the copies of tile
 *                  t >= NS, the producer waits for tile t - NS's release: phase t / NS - 1,
 *                  parity (t / NS - 1) & 1. Never more than one phase behind either: the
 *                  consumers cannot release tile t before the producer has loaded it.
 * TMA writes and wgmma reads are both async-proxy operations; the mbarrier's complete_tx
 * makes the copies visible to the waiting threads, and no generic-proxy access touches the
 * tiles, so no proxy fence is needed (as in CUTLASS's TMA / wgmma pipelines).
 *
 * Consumers: as attn_p1_wg (Q.K of tile j issued with P.V of tile j - 1, the softmax of tile
 * j while P.V runs); K of tile j is released as soon as its Q.K is done, V of tile j - 1
 * after its P.V. With PP (ping-pong, FlashAttention-3), the two consumer warpgroups take
 * turns issuing their products, so one warpgroup's softmax runs under the other's products:
 * named barriers 1 (warpgroup 0's turn) and 2 (warpgroup 1's turn), 256 threads each
 * (bar.sync by the warpgroup that waits for its turn, bar.arrive by the other). Each
 * warpgroup has N = ntiles + 1 issue points (Q.K of tile 0, ntiles - 1 loop steps, the last
 * P.V). Warpgroup 0: bar.sync 1 before each, bar.arrive 2 after each (N arrivals, N syncs of
 * warpgroup 1). Warpgroup 1: bar.arrive 1 once at the start, bar.sync 2 before each issue,
 * bar.arrive 1 after each but the last (1 + N - 1 = N arrivals for warpgroup 0's N syncs).
 * Every barrier generation is complete before the next one starts (each arrival follows the
 * completion of the other barrier's previous generation), and none is left pending at exit. */

__device__ __forceinline__ void mb_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count));
}
__device__ __forceinline__ void mb_arrive(uint32_t bar) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" :: "r"(bar) : "memory");
}
__device__ __forceinline__ void mb_arrive_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" :: "r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ bool mb_try(uint32_t bar, int parity) {
    uint32_t ok;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
    return ok != 0;
}
/* Waits for the completion of the phase of parity `parity` (the bookkeeping above keeps every
 * waiter at most one phase behind). Debugging: built with -DCRK_WS_HANG_TRAP, a wait longer
 * than 2^36 clocks (over 30 s) traps (an error the host sees) instead of hanging the GPU. Not
 * the default: at head dim 128 the check makes ptxas spill 200 bytes and serialize wgmma. */
__device__ __forceinline__ void mb_wait(uint32_t bar, int parity) {
#ifndef CRK_WS_HANG_TRAP
    while (!mb_try(bar, parity)) {}
#else
    if (mb_try(bar, parity)) return;
    const long long t0 = clock64();
    while (!mb_try(bar, parity))
        if (clock64() - t0 > (1ll << 36)) __trap();
#endif
}
/* named barriers 1 and 2 of 256 threads (immediate ids, so that ptxas counts 3 barriers) */
__device__ __forceinline__ void nb_sync(int id) {
    if (id == 1) asm volatile("bar.sync 1, 256;\n" ::: "memory");
    else asm volatile("bar.sync 2, 256;\n" ::: "memory");
}
__device__ __forceinline__ void nb_arrive(int id) {
    if (id == 1) asm volatile("bar.arrive 1, 256;\n" ::: "memory");
    else asm volatile("bar.arrive 2, 256;\n" ::: "memory");
}
#if CRK_HAVE_WGMMA
__device__ __forceinline__ void tma_prefetch(const CUtensorMap *m) {
    asm volatile("prefetch.tensormap [%0];\n" :: "l"((uint64_t)m) : "memory");
}
__device__ __forceinline__ void tma_2d(uint32_t dst, const CUtensorMap *m, int c0, int c1, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 :: "r"(dst), "l"((uint64_t)m), "r"(c0), "r"(c1), "r"(bar) : "memory");
}
__device__ __forceinline__ void tma_3d(uint32_t dst, const CUtensorMap *m, int c0, int c1, int c2, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n"
                 :: "r"(dst), "l"((uint64_t)m), "r"(c0), "r"(c1), "r"(c2), "r"(bar) : "memory");
}
#endif

#define WS_NS 3   /* key / value stages (shared memory: Q + 3 K + 3 V tiles = 224 KiB at head dim 128) */

template <int HD, bool PP>
__global__ void __launch_bounds__(3 * 128, 1) attn_p1_wgws(crk_attn a, const __grid_constant__ CUtensorMap tmq,
                                                            const __grid_constant__ CUtensorMap tmk, const __grid_constant__ CUtensorMap tmv) {
#if CRK_HAVE_WGMMA
    extern __shared__ uint8_t wsm[];
    constexpr uint32_t TILE = WG_BN * HD * 2;
    constexpr int NS = WS_NS;
    const uint32_t base = ((uint32_t)__cvta_generic_to_shared(wsm) + 1023u) & ~1023u;
    const uint32_t sQ = base, sK = base + TILE, sV = base + (1 + NS) * TILE;
    const uint32_t bars = base + (1 + 2 * NS) * TILE;            /* q_full, k_full[NS], v_full[NS], k_empty[NS], v_empty[NS] */
    const uint32_t q_full = bars;
    auto k_full = [&](int s) { return bars + 8 * (1 + s); };
    auto v_full = [&](int s) { return bars + 8 * (1 + NS + s); };
    auto k_empty = [&](int s) { return bars + 8 * (1 + 2 * NS + s); };
    auto v_empty = [&](int s) { return bars + 8 * (1 + 3 * NS + s); };
    const int tid = threadIdx.x, wgi = tid >> 7;                   /* 0: producer, 1 and 2: consumers */
    const int h = blockIdx.y, kvh = h / (a.n_head / a.n_kv);
    const int m0 = blockIdx.x * WG_BM, L = a.L;
    const int nc = a.st->n_sinks + a.st->nv;
    const int kend = nc + min(L, m0 + WG_BM);
    const int ntiles = (kend + WG_BN - 1) / WG_BN;               /* >= 1: m0 < L */
    if (tid == 0) {
        mb_init(q_full, 1);
        for (int s = 0; s < NS; s++) { mb_init(k_full(s), 1); mb_init(v_full(s), 1); mb_init(k_empty(s), 8); mb_init(v_empty(s), 8); }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();                                              /* the only block-wide barrier */
    if (wgi == 0) {                                               /* producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (tid != 0) return;
        tma_prefetch(&tmq); tma_prefetch(&tmk); tma_prefetch(&tmv);
        mb_arrive_tx(q_full, TILE);
#pragma unroll
        for (int p = 0; p < HD / 64; p++) tma_2d(sQ + p * WG_BM * 128, &tmq, h * HD + p * 64, m0, q_full);
        for (int t = 0; t < ntiles; t++) {
            const int s = t % NS, n = t / NS;
            if (t >= NS) mb_wait(k_empty(s), (n - 1) & 1);
            mb_arrive_tx(k_full(s), TILE);
#pragma unroll
            for (int p = 0; p < HD / 64; p++) tma_3d(sK + s * TILE + p * WG_BN * 128, &tmk, p * 64, t * WG_BN, kvh, k_full(s));
            if (t >= NS) mb_wait(v_empty(s), (n - 1) & 1);
            mb_arrive_tx(v_full(s), TILE);
#pragma unroll
            for (int p = 0; p < HD / 64; p++) tma_3d(sV + s * TILE + p * WG_BN * 128, &tmv, p * 64, t * WG_BN, kvh, v_full(s));
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int wg = wgi - 1, ctid = tid - 128, warp = (ctid >> 5) & 3, lane = ctid & 31, g = lane >> 2;
    const int r0 = m0 + wg * 64 + warp * 16 + g, r1 = r0 + 8;
    const float sl2 = (1.0f / sqrtf((float)HD)) * LOG2E;
    auto mask_of = [&](int tile) { return tile * WG_BN + WG_BN > nc || m0 + WG_BM > L; };
    /* ping-pong turns (see above): my barrier 1 + wg, the other's 2 - wg */
    auto turn_wait = [&]() { if constexpr (PP) nb_sync(1 + wg); };
    auto turn_pass = [&](bool last) { if constexpr (PP) { if (wg == 0 || !last) nb_arrive(2 - wg); } };
    if constexpr (PP) { if (wg == 1) nb_arrive(1); }             /* warpgroup 0 issues first */
    float o[HD / 2];
#pragma unroll
    for (int i = 0; i < HD / 2; i++) o[i] = 0.f;
    wg_rows st = {-INFINITY, -INFINITY, 0.f, 0.f};
    float s[64];
    uint32_t pa[8][4];
    float al0, al1;
    mb_wait(q_full, 0);
    mb_wait(k_full(0), 0);
    turn_wait();
    wg_qk_issue<HD, WG_BM>(s, sQ, wg * 64, sK);
    turn_pass(false);
    wg_wait<0>();
    wg_fence_regs(s);
    if (lane == 0) mb_arrive(k_empty(0));                         /* this warp is done with tile 0's K */
    wg_softmax(s, st, 0, nc, L, r0, r1, mask_of(0), sl2, al0, al1);
    wg_pack_p(s, pa);
    for (int tile = 1; tile < ntiles; tile++) {
        const int sn = tile % NS, sp = (tile - 1) % NS;
        mb_wait(k_full(sn), (tile / NS) & 1);
        mb_wait(v_full(sp), ((tile - 1) / NS) & 1);
        turn_wait();
        wg_qk_issue<HD, WG_BM>(s, sQ, wg * 64, sK + sn * TILE);
        wg_pv_issue<HD>(o, pa, sV + sp * TILE);
        turn_pass(false);
        wg_wait<1>();                                             /* the Q.K group (committed first) is done */
        wg_fence_regs(s);
        if (lane == 0) mb_arrive(k_empty(sn));
        wg_softmax(s, st, tile * WG_BN, nc, L, r0, r1, mask_of(tile), sl2, al0, al1);
        wg_wait<0>();
        wg_fence_regs(o);
        wg_fence_pa(pa);
        if (lane == 0) mb_arrive(v_empty(sp));                    /* and with tile - 1's V */
        wg_rescale<HD>(o, al0, al1);
        wg_pack_p(s, pa);
    }
    const int sl = (ntiles - 1) % NS;
    mb_wait(v_full(sl), ((ntiles - 1) / NS) & 1);
    turn_wait();
    wg_pv_issue<HD>(o, pa, sV + sl * TILE);
    turn_pass(true);
    wg_wait<0>();
    wg_fence_regs(o);
    wg_fence_pa(pa);
    crk_p1_store<HD>(a, o, st.l0, st.l1, st.m0, st.m1, h, r0, r1);
#endif
}

/* ================================================================ pass 2, warp-specialized
 * attn_p2_wg's work split (one block per (128 keys, KV head), consumer warpgroup c owns keys
 * k0 + 64 c .. + 63; for every query head of the GQA group and every 128-query tile that sees
 * the keys: S^T = K.Q^T by wgmma, p = ex2(s sl2 + nmax) wsum summed per key, the maximum over
 * the group's heads) with the loads taken off the consumers' path, as attn_p1_wgws does:
 * warpgroup 0 is the producer (its warp 0 only; warps 1 to 3 give their registers back with
 * setmaxnreg and exit), warpgroups 1 and 2 the consumers. No block-wide barrier after the
 * barriers' initialization.
 *
 * Producer (warp 0): lane 0 loads the K tile once (TMA, 3-d map over kbuf; rows >= kv_rows
 * zero-filled by the map, rows [nk, roundup(nk, 128)) zeros written by crk_kv_gather: see
 * attn_gather.cu; pass 2 would not need them anyway, a masked pair's p is selected to 0).
 * Then for every query tile it = 0 .. total - 1 (it = gg nqt + i: head kvh n_rep + gg, queries
 * qstart + 128 i ..), into stage s = it % P2WS_NS: lane 0 the Q tile [128][HD] (TMA, 2-d map
 * over q16 [L][n_head HD]; rows >= L zero-filled), and the 32 lanes the tile's per-query
 * statistics (-max, w[m] / sum) computed from a.work [n_head][L][2] and a.w (4 queries a lane;
 * (0, 0) past L, as attn_p2_wg: finite, so that fmaf(wsum, 0, acc) stays exact), stored with
 * st.shared into stt[s][128]. The global loads of a tile's statistics are issued before the
 * wait for its stage to be free, so their latency overlaps that wait.
 *
 * Barriers (mbarrier, 8 bytes each, after the statistics):
 *   k_full         count 1: the producer's lane 0 arrive.expect_tx(K tile bytes) before the K
 *                  copies; completes its phase 0 when K has landed. Each consumer thread
 *                  waits for it once with parity 0; never re-armed.
 *   q_full[s]      count 32: for tile it (s = it % NS, n = it / NS), lane 0 of the producer
 *                  warp arrive.expect_tx(Q tile bytes) then issues the Q copies; every lane
 *                  (lane 0 included, in the same arrive) arrives after its st.shared of the
 *                  statistics, so the arrive's release orders them before the phase's
 *                  completion. Phase n completes when all 32 lanes have arrived and the Q
 *                  bytes have landed. Consumers wait for tile it with parity (it / NS) & 1
 *                  (acquire: the statistics and, via complete_tx, the TMA bytes are visible).
 *                  They are never more than one phase behind: phase n + 1 of q_full[s] needs
 *                  the producer to have seen phase n of q_empty[s] complete, i.e. every
 *                  consumer warp to have finished tile it.
 *   q_empty[s]     count 8 (one arrival per consumer warp: lane 0, after a __syncwarp that
 *                  follows all the warp's reads of the stage): the consumers release tile it's
 *                  stage after consume(it), which reads its statistics; its Q was last read by
 *                  the wgmma group issued in step it - 1 (or before the loop for it = 0) and
 *                  waited for (wgmma.wait_group 0) at the end of that step. Phase n completes
 *                  when tile n NS + s is released. Before loading tile it >= NS the producer
 *                  waits for tile it - NS's release: phase it / NS - 1, parity (it / NS - 1) & 1.
 *                  The producer is never more than one phase behind either: the consumers
 *                  cannot release tile it before the producer has loaded it.
 * No barrier is left with a pending phase that anyone waits for at exit; arrivals with no
 * waiter (the releases of the last NS tiles) are harmless.
 * TMA writes and wgmma reads are async-proxy accesses (no proxy fence, as in attn_p1_wgws);
 * the statistics are written and read by the generic proxy only (st.shared / ld.shared),
 * ordered by the mbarrier arrive (release) and try_wait (acquire) at CTA scope, and, for the
 * reuse of a stage, by q_empty in the other direction.
 *
 * Consumers: as attn_p2_wg: tile it + 1's K.Q^T is issued before tile it's exponentials and
 * waited for after them (two score buffers, the loop body two steps so that no product is in
 * flight across the back-edge). Past the last tile the product is issued from the stage that
 * tile total % NS would use (no wait: it holds an older, completed tile or never-written
 * shared memory, and no copy is in flight there since the producer stops at tile total - 1),
 * and never read. */
#define P2WS_NS 4   /* query stages (shared memory: K + 4 Q tiles + statistics = 165 KiB at head dim 128) */

template <int HD>
__global__ void __launch_bounds__(3 * 128, 1) attn_p2_wgws(crk_attn a, const __grid_constant__ CUtensorMap tmq,
                                                            const __grid_constant__ CUtensorMap tmk) {
#if CRK_HAVE_WGMMA
    extern __shared__ uint8_t wsm[];
    constexpr uint32_t TILE = WG_BN * HD * 2;
    constexpr int NS = P2WS_NS;
    const uint32_t s0 = (uint32_t)__cvta_generic_to_shared(wsm), base = (s0 + 1023u) & ~1023u;
    const uint32_t sK = base, sQ = base + TILE;                    /* K [128][HD], Q [NS][128][HD] */
    float2 *stt = (float2 *)(wsm + (base - s0) + (1 + NS) * TILE); /* [NS][128]: (-max, w / sum) per query */
    const uint32_t bars = base + (1 + NS) * TILE + NS * WG_BN * (uint32_t)sizeof(float2);   /* k_full, q_full[NS], q_empty[NS] */
    const uint32_t k_full = bars;
    auto q_full = [&](int s) { return bars + 8 * (1 + s); };
    auto q_empty = [&](int s) { return bars + 8 * (1 + NS + s); };
    const int tid = threadIdx.x, wgi = tid >> 7;                   /* 0: producer, 1 and 2: consumers */
    const int kvh = blockIdx.y, n_rep = a.n_head / a.n_kv, L = a.L;
    const int nc = a.st->n_sinks + a.st->nv, nk = nc + L;
    const int k0 = blockIdx.x * WG_BN;
    if (k0 >= nk) return;                                          /* the whole block, before any barrier */
    const int qstart = k0 >= nc ? ((k0 - nc) & ~(WG_BN - 1)) : 0;
    const int nqt = (L - qstart + WG_BN - 1) / WG_BN, total = n_rep * nqt;   /* >= 1: qstart < L */
    if (tid == 0) {
        mb_init(k_full, 1);
        for (int s = 0; s < NS; s++) { mb_init(q_full(s), 32); mb_init(q_empty(s), 8); }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();                                               /* the only block-wide barrier */
    if (wgi == 0) {                                                /* producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if (tid >= 32) return;
        const int lane = tid;
        if (lane == 0) {
            tma_prefetch(&tmq); tma_prefetch(&tmk);
            mb_arrive_tx(k_full, TILE);
#pragma unroll
            for (int p = 0; p < HD / 64; p++) tma_3d(sK + p * WG_BN * 128, &tmk, p * 64, k0, kvh, k_full);
        }
        for (int it = 0; it < total; it++) {
            const int s = it % NS, n = it / NS;
            const int gg = it / nqt, q0 = qstart + (it % nqt) * WG_BN, h = kvh * n_rep + gg;
            float2 v[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {                          /* queries q0 + lane + 32 i */
                const int m = q0 + lane + 32 * i;
                if (m < L) {
                    const float *ws = a.work + ((size_t)h * L + m) * 2;   /* (max, 1/sum); scalar loads: a.work need not be 8-byte aligned */
                    v[i] = make_float2(-ws[0], a.w[m] * ws[1]);
                } else v[i] = make_float2(0.f, 0.f);
            }
            if (it >= NS) mb_wait(q_empty(s), (n - 1) & 1);        /* tile it - NS released */
#pragma unroll
            for (int i = 0; i < 4; i++) stt[s * WG_BN + lane + 32 * i] = v[i];
            if (lane == 0) {
                mb_arrive_tx(q_full(s), TILE);                     /* lane 0's arrival (after its stores) and the expected bytes */
#pragma unroll
                for (int p = 0; p < HD / 64; p++) tma_2d(sQ + s * TILE + p * WG_BN * 128, &tmq, h * HD + p * 64, q0, q_full(s));
            } else mb_arrive(q_full(s));
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int wg = wgi - 1, ctid = tid - 128, warp = (ctid >> 5) & 3, lane = ctid & 31, g = lane >> 2, t = lane & 3;
    const int key0 = k0 + wg * 64 + warp * 16 + g, key1 = key0 + 8;
    const int cj0 = key0 >= nc ? key0 - nc : -1, cj1 = key1 >= nc ? key1 - nc : -1;
    const float sl2 = (1.0f / sqrtf((float)HD)) * LOG2E;
    float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}}, best0 = 0.f, best1 = 0.f;   /* 4 independent chains per key */
    /* w p summed over the tile's queries for the thread's two keys (as attn_p2_wg); the
     * maximum over the group's heads after a head's last tile */
    auto consume = [&](int it, const float (&s)[64]) {
        wg_p2_consume<HD, NS>(a, it, s, stt, nqt, qstart, total, k0, nc, nk, L, key0, key1, cj0, cj1, sl2, t, acc, best0, best1);
    };
    float sA[64], sB[64];                            /* [64 keys x 128 queries]: query q0 + 8j + 2t + (e & 1) */
    mb_wait(k_full, 0);
    mb_wait(q_full(0), 0);
    wg_qk<HD, WG_BN>(sA, sK, wg * 64, sQ);
    /* step it: tile it's product is in sx; tile it + 1's is computed into sy meanwhile. No
     * product is in flight across a step boundary (ptxas serializes wgmma otherwise). */
    auto step = [&](int it, float (&sx)[64], float (&sy)[64]) {
        const int sn = (it + 1) % NS;
        if (it + 1 < total) mb_wait(q_full(sn), ((it + 1) / NS) & 1);
        wg_qk_issue<HD, WG_BN>(sy, sK, wg * 64, sQ + sn * TILE);
        consume(it, sx);
        __syncwarp();                                    /* the warp's reads of tile it's statistics are done */
        if (lane == 0) mb_arrive(q_empty(it % NS));      /* (its Q: waited for at the end of step it - 1) */
        wg_wait<0>();
        wg_fence_regs(sy);
    };
    for (int it = 0; it < total; it += 2) {
        step(it, sA, sB);
        if (it + 1 < total) step(it + 1, sB, sA);
    }
    if (t == 0) {
        if (key0 < nk) a.r[(size_t)kvh * a.r_stride + a.kdst[key0]] = best0;
        if (key1 < nk) a.r[(size_t)kvh * a.r_stride + a.kdst[key1]] = best1;
    }
#endif
}

/* ================================================================ dispatch */

template <int HD> static size_t p1_smem() { return 1024 + 7 * (size_t)WG_BN * HD * 2; }
template <int HD> static size_t p1ws_smem() { return 1024 + (1 + 2 * WS_NS) * (size_t)WG_BN * HD * 2 + 8 * (1 + 4 * WS_NS); }
template <int HD> static size_t p2_smem() { return 1024 + 4 * (size_t)WG_BN * HD * 2 + 3 * WG_BN * sizeof(float2); }
template <int HD> static size_t p2ws_smem() { return 1024 + (1 + P2WS_NS) * (size_t)WG_BN * HD * 2 + P2WS_NS * WG_BN * sizeof(float2) + 8 * (1 + 2 * P2WS_NS); }

/* 1 when this GPU runs the sm_90a image (compute capability 9.0) and the shape fits. */
extern "C" int crk_attn_wg_ok(int hd) {
    static int cc = -1;
    if (cc < 0) {
        int dev = 0, major = 0, minor = 0;
        cc = 0;
        if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess)
            cc = major * 10 + minor;
    }
    return cc == 90 && (hd == 64 || hd == 128);
}

/* Warp-specialized pass 1 variant: 0 (default) the consumer warpgroups issue freely, 1 they
 * ping-pong (H200, 8B shape, L = 4096, full cache: 2.35 ms free, 2.68 ping-pong). The environment's CRK_WS_VARIANT (0 or 1) sets it once, on first use;
 * crk_attn_set_ws_variant overrides it. */
static int ws_variant = -1;
static int ws_variant_get(void) {
    if (ws_variant < 0) {
        const char *e = getenv("CRK_WS_VARIANT");
        ws_variant = e && *e == '1' ? 1 : 0;
    }
    return ws_variant;
}
extern "C" int crk_attn_set_ws_variant(int v) {
    const int old = ws_variant_get();
    ws_variant = v ? 1 : 0;
    return old;
}

/* cuTensorMapEncodeTiled from the driver the runtime loaded (no -lcuda); looked up once */
static PFN_cuTensorMapEncodeTiled_v12000 tma_encode_fn(void) {
    static int tried = 0;
    static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
    if (!tried) {
        tried = 1;
        void *p = nullptr;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
        const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q);
#else
        const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &q);
#endif
        if (e == cudaSuccess && q == cudaDriverEntryPointSuccess && p) fn = (PFN_cuTensorMapEncodeTiled_v12000)p;
        else (void)cudaGetLastError();
    }
    return fn;
}

/* The three tensor maps of attn_p1_wgws (attn_p2_wgws uses Q and K), built for every launch from the pointers and shapes
 * of this call (nothing cached: the buffers may change between calls; a graph capture copies
 * the kernel parameters, maps included, by value). Boxes of [128 rows][64 columns] fp16 (128
 * bytes a row, the 128-byte swizzle's span); rows outside a map are zero-filled.
 *   Q: [L][n_head HD], row stride n_head HD; box at (h HD + 64 p, m0).
 *   K, V: [n_kv][kv_rows][HD]; box at (64 p, row, kvh). */
template <int HD>
static bool ws_maps(const crk_attn *a, CUtensorMap *mq, CUtensorMap *mk, CUtensorMap *mv) {
    PFN_cuTensorMapEncodeTiled_v12000 enc = tma_encode_fn();
    if (!enc) return false;
    const cuuint32_t box2[2] = {64, WG_BM}, box3[3] = {64, WG_BN, 1}, es[3] = {1, 1, 1};
    const cuuint64_t qdim[2] = {(cuuint64_t)a->n_head * HD, (cuuint64_t)a->L}, qstr[1] = {(cuuint64_t)a->n_head * HD * 2};
    const cuuint64_t kdim[3] = {(cuuint64_t)HD, (cuuint64_t)a->kv_rows, (cuuint64_t)a->n_kv};
    const cuuint64_t kstr[2] = {(cuuint64_t)HD * 2, (cuuint64_t)a->kv_rows * HD * 2};
    auto enc1 = [&](CUtensorMap *m, cuuint32_t rank, const void *ptr, const cuuint64_t *dim, const cuuint64_t *str, const cuuint32_t *box) {
        return enc(m, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, rank, const_cast<void *>(ptr), dim, str, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                   CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
    };
    return enc1(mq, 2, a->q16, qdim, qstr, box2) && enc1(mk, 3, a->kbuf, kdim, kstr, box3) && enc1(mv, 3, a->vbuf, kdim, kstr, box3);
}

/* ws: bit 0 pass 1 warp-specialized (attn_p1_wgws), bit 1 pass 2 warp-specialized (attn_p2_wgws) */
template <int HD>
static void launch_wg(const crk_attn *a, cudaStream_t s, int phases, int ws) {
    static int attr_done = 0;
    if (!attr_done) {   /* once, before any graph capture */
        cudaFuncSetAttribute(attn_p1_wg<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p1_smem<HD>());
        cudaFuncSetAttribute(attn_p2_wg<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p2_smem<HD>());
        attr_done = 1;
    }
    static int ws_done = 0;
    if (ws && !ws_done) {
        cudaFuncSetAttribute(attn_p1_wgws<HD, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p1ws_smem<HD>());
        cudaFuncSetAttribute(attn_p1_wgws<HD, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p1ws_smem<HD>());
        cudaFuncSetAttribute(attn_p2_wgws<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p2ws_smem<HD>());
        ws_done = 1;
    }
    CUtensorMap mq, mk, mv;
    if ((((phases & 2) && (ws & 1)) || ((phases & 4) && (ws & 2))) && !ws_maps<HD>(a, &mq, &mk, &mv)) {   /* e.g. a buffer not 16-byte aligned: the non-specialized kernels */
        static int warned = 0;
        if (!warned) { fprintf(stderr, "attn_chunk_wg: TMA tensor maps unavailable, warp-specialized passes fall back to attn_p1_wg / attn_p2_wg\n"); warned = 1; }
        ws = 0;
    }
    if (phases & 2) {
        const int ws1 = ws & 1;
        const dim3 grid(crk_cdiv(a->L, WG_BM), a->n_head);
        if (ws1 && ws_variant_get()) attn_p1_wgws<HD, true><<<grid, 384, p1ws_smem<HD>(), s>>>(*a, mq, mk, mv);
        else if (ws1) attn_p1_wgws<HD, false><<<grid, 384, p1ws_smem<HD>(), s>>>(*a, mq, mk, mv);
        else attn_p1_wg<HD><<<grid, WG_NT, p1_smem<HD>(), s>>>(*a);
    }
    if (phases & 4) {
        const dim3 grid(crk_cdiv((size_t)a->S + a->N + a->L, WG_BN), a->n_kv);
        if (ws & 2) attn_p2_wgws<HD><<<grid, 384, p2ws_smem<HD>(), s>>>(*a, mq, mk);
        else attn_p2_wg<HD><<<grid, WG_NT, p2_smem<HD>(), s>>>(*a);
    }
}

/* Passes 1 (phases bit 1) and 2 (bit 2) on wgmma; ws: bit 0 pass 1 warp-specialized, bit 1
 * pass 2 warp-specialized. The caller has checked crk_attn_wg_ok and run the key gather. */
extern "C" void crk_attn_wg(const crk_attn *a, crk_stream s, int phases, int ws) {
    if (a->hd == 64) launch_wg<64>(a, s, phases, ws);
    else launch_wg<128>(a, s, phases, ws);
}
