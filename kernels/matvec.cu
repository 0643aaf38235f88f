/* Matrix-vector product for decode (one token): y[r] (+)= W[r] . x.
 * Quantized rows are read in their block format and multiplied with q8 activations in
 * integer arithmetic (dp4a per 16 elements), the same decomposition as vec_dot_q of
 * engine/quant.c: acc += x.d * (d0 * sum_lo + d1 * sum_hi) + m * x.s.
 * Float rows (F32, F16, BF16) multiply the f32 activations. One warp per row; rows of 1024,
 * 2048 or 4096 columns (every model this targets) keep the activations in registers and
 * walk the rows in one wave of blocks. */
#include "common.cuh"

#define MV_WARPS 4

template <int T>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_q(const uint8_t *w, int64_t rows, int nb, size_t row_bytes, const crk_q8 *xq, float *y, int accumulate) {
    const int64_t r = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const uint8_t *row = w + (size_t)r * row_bytes;
    crk_pdl_sync();   /* one warp per row, many waves: no prefetch (see matvec_f) */
    float sum = 0.f;
#pragma unroll 2
    for (int b = lane; b < nb; b += 32) {
        crk_blk k;
        crk_unpack<T>(row, b, k);
        const crk_q8 *x = xq + b;
        const int2 *xp = (const int2 *)x->q;
        int2 a0 = xp[0], a1 = xp[1], a2 = xp[2], a3 = xp[3];
        int lo = 0, hi = 0;
        lo = __dp4a(k.q[0], a0.x, lo); lo = __dp4a(k.q[1], a0.y, lo);
        lo = __dp4a(k.q[2], a1.x, lo); lo = __dp4a(k.q[3], a1.y, lo);
        hi = __dp4a(k.q[4], a2.x, hi); hi = __dp4a(k.q[5], a2.y, hi);
        hi = __dp4a(k.q[6], a3.x, hi); hi = __dp4a(k.q[7], a3.y, hi);
        sum += x->d * (k.d0 * (float)lo + k.d1 * (float)hi) + k.m * x->s;
    }
    sum = crk_warp_sum(sum);
    if (lane == 0) y[r] = accumulate ? y[r] + sum : sum;
}

/* Q4_K: a warp computes two rows; a lane takes half a super-block (4 blocks of 32: 64 bytes
 * of nibbles, 4 loads of 16 B per row) and uses each activation block for both rows. */
/* The 6-bit scales and minimums of blocks 4*half .. 4*half+3 (ggml's get_scale_min_k4), one
 * byte each, from the 12 scale bytes (header words y, z, w) with word operations. */
__device__ __forceinline__ void q4k_scales(const uint4 &h, int half, uint32_t &sc, uint32_t &mn) {
    const uint32_t sc0 = h.y & 0x3F3F3F3Fu, mn0 = h.z & 0x3F3F3F3Fu;
    const uint32_t sc1 = (h.w & 0x0F0F0F0Fu) | ((h.y >> 2) & 0x30303030u);
    const uint32_t mn1 = ((h.w >> 4) & 0x0F0F0F0Fu) | ((h.z >> 2) & 0x30303030u);
    sc = half ? sc1 : sc0;
    mn = half ? mn1 : mn0;
}
__device__ __forceinline__ float q4k_half(const uint4 &qa, const uint4 &qb, const uint4 &qc, const uint4 &qd, const uint4 &h, int half,
                                          const int2 (&xa)[4][4], const float (&xd)[4], const float (&xs)[4]) {
    const float dd = __half2float(__ushort_as_half((unsigned short)(h.x & 0xFFFFu)));
    const float dmin = __half2float(__ushort_as_half((unsigned short)(h.x >> 16)));
    uint32_t scw, mnw;
    q4k_scales(h, half, scw, mnw);
    float sum = 0.f, msum = 0.f;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const int sd = (int)((scw >> (8 * k)) & 0xFFu), sm = (int)((mnw >> (8 * k)) & 0xFFu);
        const uint4 &u0 = k < 2 ? qa : qc, &u1 = k < 2 ? qb : qd;
        const int sh = 4 * (k & 1);
        int acc = 0;
        acc = __dp4a((int)((u0.x >> sh) & 0x0F0F0F0Fu), xa[k][0].x, acc); acc = __dp4a((int)((u0.y >> sh) & 0x0F0F0F0Fu), xa[k][0].y, acc);
        acc = __dp4a((int)((u0.z >> sh) & 0x0F0F0F0Fu), xa[k][1].x, acc); acc = __dp4a((int)((u0.w >> sh) & 0x0F0F0F0Fu), xa[k][1].y, acc);
        acc = __dp4a((int)((u1.x >> sh) & 0x0F0F0F0Fu), xa[k][2].x, acc); acc = __dp4a((int)((u1.y >> sh) & 0x0F0F0F0Fu), xa[k][2].y, acc);
        acc = __dp4a((int)((u1.z >> sh) & 0x0F0F0F0Fu), xa[k][3].x, acc); acc = __dp4a((int)((u1.w >> sh) & 0x0F0F0F0Fu), xa[k][3].y, acc);
        sum += xd[k] * (float)(sd * acc);   /* |sd * acc| < 2^24: exact */
        msum += (float)sm * xs[k];
    }
    return dd * sum - dmin * msum;
}

/* The activation blocks of half super-block `half` of super-block sb (4 blocks of 32). */
__device__ __forceinline__ void q4k_load_x(const crk_q8 *xq, int sb, int half, int2 (&xa)[4][4], float (&xd)[4], float (&xs)[4]) {
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const crk_q8 *x = xq + (size_t)sb * 8 + 4 * half + k;
        const int2 *xp = (const int2 *)x->q;
        xa[k][0] = xp[0]; xa[k][1] = xp[1]; xa[k][2] = xp[2]; xa[k][3] = xp[3];
        xd[k] = x->d; xs[k] = x->s;
    }
}

/* Q4_K rows of at most 4096 columns (HPR = 2 * super-blocks per row = 8, 16 or 32 halves):
 * HPR lanes take a row pair, a warp 32 / HPR pairs at a time. A lane's activation blocks are
 * the same for every row, so they are loaded once; the warps then walk the row pairs with a
 * grid stride, the next pair's weights loaded while the current pair is computed. */
struct q4k_pair { uint4 a0, b0, c0, d0, h0, a1, b1, c1, d1, h1; };
__device__ __forceinline__ void q4k_load_pair(q4k_pair &q, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t pr, int64_t npairs, int sb, int half) {
    if (pr >= npairs) { q.h0 = q.h1 = make_uint4(0, 0, 0, 0); q.a0 = q.b0 = q.c0 = q.d0 = q.a1 = q.b1 = q.c1 = q.d1 = q.h0; return; }
    const int64_t r0 = 2 * pr;
    const uint8_t *p0 = w + (size_t)r0 * row_bytes + 144 * (size_t)sb, *p1 = r0 + 1 < rows ? p0 + row_bytes : p0;
    const uint4 *q0 = (const uint4 *)(p0 + 16 + 64 * half), *q1 = (const uint4 *)(p1 + 16 + 64 * half);
    q.a0 = q0[0]; q.b0 = q0[1]; q.c0 = q0[2]; q.d0 = q0[3]; q.h0 = *(const uint4 *)p0;
    q.a1 = q1[0]; q.b1 = q1[1]; q.c1 = q1[2]; q.d1 = q1[3]; q.h1 = *(const uint4 *)p1;
}
/* Q4_K rows of other lengths (the down projection's 14336 or 8192 columns): a warp computes a
 * row pair, lane l the half super-blocks l, l + 32, ... (the order of the sums of every
 * version of this kernel); the block's activation blocks are staged in shared memory once, and
 * each lane keeps the weights of its next two halves in flight (the first two are loaded
 * before the wait of crk_launch). */
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_q4k(const uint8_t *w, int64_t rows, int nsb, size_t row_bytes, const crk_q8 *xq, float *y, int accumulate) {
    extern __shared__ __align__(16) crk_q8 sxq[];   /* [nsb * 8] activation blocks */
    const int lane = threadIdx.x & 31, nh = 2 * nsb;
    const int64_t pr = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5), npairs = (rows + 1) / 2;
    q4k_pair p0, p1;   /* halves hs and hs + 32 of the loop below */
    auto ld = [&](q4k_pair &q, int hs) { if (hs < nh) q4k_load_pair(q, w, row_bytes, rows, pr, npairs, hs >> 1, hs & 1); };
    auto acc = [&](const q4k_pair &q, int hs, float &s0, float &s1) {
        int2 xa[4][4];
        float xd[4], xs[4];
        q4k_load_x(sxq, hs >> 1, hs & 1, xa, xd, xs);
        s0 += q4k_half(q.a0, q.b0, q.c0, q.d0, q.h0, hs & 1, xa, xd, xs);
        s1 += q4k_half(q.a1, q.b1, q.c1, q.d1, q.h1, hs & 1, xa, xd, xs);
    };
    ld(p0, lane);
    ld(p1, lane + 32);
    crk_pdl_sync();
    {   /* 40-byte blocks as 8-byte words */
        const uint2 *src = (const uint2 *)xq;
        uint2 *dst = (uint2 *)sxq;
        for (int i = threadIdx.x; i < nsb * 8 * 5; i += MV_WARPS * 32) dst[i] = src[i];
    }
    __syncthreads();
    float s0 = 0.f, s1 = 0.f;
    for (int hs = lane; hs < nh; hs += 64) {
        acc(p0, hs, s0, s1);
        ld(p0, hs + 64);
        if (hs + 32 < nh) {
            acc(p1, hs + 32, s0, s1);
            ld(p1, hs + 96);
        }
    }
    /* both rows' sums in one butterfly: after the first step lanes < 16 hold row 0, the others row 1 */
    const bool hi = lane & 16;
    float v = hi ? s1 : s0;
    v += __shfl_xor_sync(0xffffffffu, hi ? s0 : s1, 16);
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t r0 = 2 * pr;
    if (pr < npairs && lane == 0) y[r0] = accumulate ? y[r0] + v : v;
    if (pr < npairs && lane == 16 && r0 + 1 < rows) y[r0 + 1] = accumulate ? y[r0 + 1] + v : v;
}

template <int HPR>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_q4k_p(const uint8_t *w, int64_t rows, size_t row_bytes, const crk_q8 *xq, float *y, int accumulate) {
    constexpr int PPW = 32 / HPR;
    const int lane = threadIdx.x & 31, sub = lane / HPR, hs = lane % HPR, sb = hs >> 1, half = hs & 1;
    const int64_t npairs = (rows + 1) / 2, nw = (int64_t)gridDim.x * MV_WARPS;
    const int64_t step = nw * PPW;
    int64_t base = ((int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5)) * PPW;   /* warp-uniform */
    q4k_pair cur, nxt;
    q4k_load_pair(cur, w, row_bytes, rows, base + sub, npairs, sb, half);   /* weights before the wait (crk_launch) */
    crk_pdl_sync();
    int2 xa[4][4];
    float xd[4], xs[4];
    q4k_load_x(xq, sb, half, xa, xd, xs);
    for (; base < npairs; base += step) {
        q4k_load_pair(nxt, w, row_bytes, rows, base + step + sub, npairs, sb, half);
        const float s0 = q4k_half(cur.a0, cur.b0, cur.c0, cur.d0, cur.h0, half, xa, xd, xs);
        const float s1 = q4k_half(cur.a1, cur.b1, cur.c1, cur.d1, cur.h1, half, xa, xd, xs);
        /* both rows in one butterfly over the HPR lanes: after the first step the lower half holds row 0 */
        const bool hi = hs & (HPR / 2);
        float v = hi ? s1 : s0;
        v += __shfl_xor_sync(0xffffffffu, hi ? s0 : s1, HPR / 2);
#pragma unroll
        for (int o = HPR / 4; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        const int64_t pr = base + sub, r = 2 * pr + (hi ? 1 : 0);
        if (pr < npairs && (hs == 0 || hs == HPR / 2) && r < rows) y[r] = accumulate ? y[r] + v : v;
        cur = nxt;
    }
}

/* the two 16-bit weights of a word as floats */
template <int T>
__device__ __forceinline__ void h16_pair(uint32_t u, float &lo, float &hi) {
    if (T == GGML_TYPE_F16) { lo = crk_h2f((uint16_t)(u & 0xFFFF)); hi = crk_h2f((uint16_t)(u >> 16)); }
    else { lo = crk_bf2f((uint16_t)(u & 0xFFFF)); hi = crk_bf2f((uint16_t)(u >> 16)); }
}
/* sum + the dot product of 8 consecutive 16-bit weights (one 16-byte unit) with x0..x7, added
 * pair by pair in order (every 16-bit kernel below sums a row this way) */
template <int T>
__device__ __forceinline__ float h16_dot8(float sum, uint4 a, float4 b0, float4 b1) {
    const uint32_t u[4] = {a.x, a.y, a.z, a.w};
    const float xs[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float lo, hi;
        h16_pair<T>(u[e], lo, hi);
        sum += lo * xs[2 * e] + hi * xs[2 * e + 1];
    }
    return sum;
}
/* the same for two rows' units a, b at once, interleaved (as measured in matvec_h16x2) */
template <int T>
__device__ __forceinline__ void h16_dot8x2(float &s0, float &s1, uint4 a, uint4 b, float4 b0, float4 b1) {
    const uint32_t ua[4] = {a.x, a.y, a.z, a.w}, ub[4] = {b.x, b.y, b.z, b.w};
    const float xs[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float lo, hi, lo1, hi1;
        h16_pair<T>(ua[e], lo, hi);
        h16_pair<T>(ub[e], lo1, hi1);
        s0 += lo * xs[2 * e] + hi * xs[2 * e + 1];
        s1 += lo1 * xs[2 * e] + hi1 * xs[2 * e + 1];
    }
}

template <int T>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_f(const uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes, const float *x, float *y, int accumulate) {
    const int64_t r = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const uint8_t *row = w + (size_t)r * row_bytes;
    crk_pdl_sync();   /* (an L2 prefetch of the row before it: BF16 layer 123 -> 147 us, many waves of blocks) */
    float sum = 0.f;
    const bool vec = (cols % 256 == 0) && (((uintptr_t)row & 15) == 0);
    if (vec && T == GGML_TYPE_F32) {
        const float4 *rp = (const float4 *)row;
        const float4 *xp = (const float4 *)x;
#pragma unroll 4
        for (int64_t i = lane; i < cols / 4; i += 32) {
            float4 a = rp[i], b = xp[i];
            sum += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
        }
    } else if (vec) {
        const uint4 *rp = (const uint4 *)row;
#pragma unroll 4
        for (int64_t i = lane; i < cols / 8; i += 32) {
            const float4 *xp = (const float4 *)(x + 8 * i);
            sum = h16_dot8<T>(sum, rp[i], xp[0], xp[1]);
        }
    } else {
        for (int64_t i = lane; i < cols; i += 32) sum += crk_fval(T, row, i) * x[i];
    }
    sum = crk_warp_sum(sum);
    if (lane == 0) y[r] = accumulate ? y[r] + sum : sum;
}

/* 16-bit rows of whole 256-column groups with more loads in flight than matvec_f. SPLIT = 1:
 * a warp per row, lane l the units (16 bytes) l, l + 32, ... in batches of 16 loaded at once (a
 * 4096-column row in one round; the same sums in the same order as matvec_f). SPLIT = 4: a
 * block per row, warp w the contiguous quarter w of the row, the four partial sums added in
 * warp order through shared memory (another summation order). H200, 8B shape, per matrix:
 * SPLIT = 4 wins on long rows (down 4096x14336: 38.1 -> 32.6 us) and loses elsewhere, SPLIT = 1
 * wins on many short rows (gate|up 28672x4096 59.7 -> 56.8, output 128256x4096 249.9 -> 234.5)
 * and loses on long ones (down 61.3); see mvf_pick. */
template <int T, int SPLIT>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_h16(const uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes, const float *x, float *y, int accumulate) {
    constexpr int B = 16;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r = SPLIT == 1 ? (int64_t)blockIdx.x * MV_WARPS + warp : (int64_t)blockIdx.x;
    const int64_t n = cols / 8;                    /* 16-byte units of the row */
    const int64_t u0 = SPLIT == 1 ? 0 : n * warp / SPLIT, u1 = SPLIT == 1 ? n : n * (warp + 1) / SPLIT;
    const uint4 *rp = (const uint4 *)(w + (size_t)(r < rows ? r : 0) * row_bytes);
    uint4 a[B];
    auto ldb = [&](int64_t i0) {
#pragma unroll
        for (int j = 0; j < B; j++) if (i0 + 32 * j < u1) a[j] = rp[i0 + 32 * j];
    };
    if (r < rows) ldb(u0 + lane);   /* the first batch before the wait (crk_launch) */
    crk_pdl_sync();
    float sum = 0.f;
    if (r < rows)
        for (int64_t i0 = u0 + lane; i0 < u1; i0 += 32 * B) {
            if (i0 != u0 + lane) ldb(i0);
#pragma unroll
            for (int j = 0; j < B; j++) {
                const int64_t i = i0 + 32 * j;
                if (i >= u1) break;
                const float4 *xp = (const float4 *)(x + 8 * i);
                sum = h16_dot8<T>(sum, a[j], xp[0], xp[1]);
            }
        }
    sum = crk_warp_sum(sum);
    if (SPLIT == 1) {
        if (lane == 0 && r < rows) y[r] = accumulate ? y[r] + sum : sum;
        return;
    }
    __shared__ float part[MV_WARPS];
    if (lane == 0) part[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0 && r < rows) {
        float v = 0.f;
#pragma unroll
        for (int k = 0; k < MV_WARPS; k++) v += part[k];
        y[r] = accumulate ? y[r] + v : v;
    }
}
/* 16-bit rows of whole 256-column groups, two rows per warp (rows 2w, 2w + 1 of warp w): each
 * lane's loads of both rows in flight together and the activations read once for both; each
 * row's sum in matvec_f's order (the same results) */
template <int T>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_h16x2(const uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes, const float *x, float *y, int accumulate) {
    const int64_t r0 = 2 * ((int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5));
    const int lane = threadIdx.x & 31;
    if (r0 >= rows) return;
    const bool two = r0 + 1 < rows;
    const uint4 *p0 = (const uint4 *)(w + (size_t)r0 * row_bytes), *p1 = two ? (const uint4 *)(w + (size_t)(r0 + 1) * row_bytes) : p0;
    crk_pdl_sync();
    float s0 = 0.f, s1 = 0.f;
#pragma unroll 4
    for (int64_t i = lane; i < cols / 8; i += 32) {
        const uint4 a = p0[i], b = p1[i];
        const float4 *xp = (const float4 *)(x + 8 * i);
        h16_dot8x2<T>(s0, s1, a, b, xp[0], xp[1]);
    }
    s0 = crk_warp_sum(s0);
    s1 = crk_warp_sum(s1);
    if (lane == 0) {
        y[r0] = accumulate ? y[r0] + s0 : s0;
        if (two) y[r0 + 1] = accumulate ? y[r0 + 1] + s1 : s1;
    }
}

/* Which 16-bit kernel: 4 (block per row) for rows of 8192 columns or more, 1 (16 loads in
 * flight per lane) for 16384 rows or more of at most 4096 columns, 2 (two rows per warp) for
 * at most 4096 rows, 0 (matvec_f) otherwise; CRK_MVF=0|1|2|4 forces one (benchmarks) */
static int mvf_pick(int64_t rows, int64_t cols) {
    static int v = -2;
    if (v == -2) { const char *e = getenv("CRK_MVF"); v = e && *e ? atoi(e) : -1; }
    if (v >= 0) return v;
    if (cols >= 8192) return 4;
    if (rows >= 16384 && cols <= 4096) return 1;
    /* up to 4096 rows (o): two rows per warp (8B o 4096x4096: 10.5 -> 8.4 us; qkv 6144x4096
     * measured 15.1 -> 19.4 that way, and 1 / 4 slower in the whole decode step: 8B BF16
     * 5.77 -> 6.07 / 6.08 ms) */
    return rows <= 4096 ? 2 : 0;
}
template <int T>
static bool launch_h16(const uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes, const float *x, float *y, int acc, cudaStream_t s) {
    const int v = mvf_pick(rows, cols);
    if ((v != 1 && v != 2 && v != 4) || cols % 256 || ((uintptr_t)w & 15) || row_bytes % 16) return false;
    if (v == 2) crk_launch(true, matvec_h16x2<T>, crk_cdiv(rows, 2 * MV_WARPS), MV_WARPS * 32, 0, s, w, rows, cols, row_bytes, x, y, acc);
    else if (v == 1) crk_launch(true, matvec_h16<T, 1>, crk_cdiv(rows, MV_WARPS), MV_WARPS * 32, 0, s, w, rows, cols, row_bytes, x, y, acc);
    else crk_launch(true, matvec_h16<T, 4>, (unsigned)rows, MV_WARPS * 32, 0, s, w, rows, cols, row_bytes, x, y, acc);
    return true;
}

/* Gate|up rows with SwiGLU in the epilogue (decode, 16-bit rows of whole 256-column groups):
 * warp w takes h index i = blockIdx.x * MV_WARPS + w, the gate row i and the up row ffn + i;
 * lane l their units l, l + 32, ..., B of each row loaded at once (the first batch before the
 * wait); each row summed in matvec_f's order, then h[i] = crk_silu_mul (crk_swiglu's).
 * Saves decode's SwiGLU kernel per layer. Session 13: written, tested on no GPU yet, so off
 * unless CRK_GLU=1 (engine/cuda_state.c). */
template <int T>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_glu_h16(const uint8_t *w, int64_t ffn, int64_t cols, size_t row_bytes, const float *x, float *h) {
    constexpr int B = 8;
    const int lane = threadIdx.x & 31;
    const int64_t i = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5), n = cols / 8;
    const bool in = i < ffn;
    const uint4 *pg = (const uint4 *)(w + (size_t)(in ? i : 0) * row_bytes), *pu = (const uint4 *)(w + (size_t)(ffn + (in ? i : 0)) * row_bytes);
    uint4 a[B], b[B];
    auto ldb = [&](int64_t i0) {
#pragma unroll
        for (int j = 0; j < B; j++) if (i0 + 32 * j < n) { a[j] = pg[i0 + 32 * j]; b[j] = pu[i0 + 32 * j]; }
    };
    if (in) ldb(lane);
    crk_pdl_sync();
    if (!in) return;
    float sg = 0.f, su = 0.f;
    for (int64_t i0 = lane; i0 < n; i0 += 32 * B) {
        if (i0 != lane) ldb(i0);
#pragma unroll
        for (int j = 0; j < B; j++) {
            const int64_t u = i0 + 32 * j;
            if (u >= n) break;
            const float4 *xp = (const float4 *)(x + 8 * u);
            sg = h16_dot8<T>(sg, a[j], xp[0], xp[1]);
            su = h16_dot8<T>(su, b[j], xp[0], xp[1]);
        }
    }
    sg = crk_warp_sum(sg);
    su = crk_warp_sum(su);
    if (lane == 0) h[i] = crk_silu_mul(sg, su);
}
extern "C" int crk_matvec_glu(const void *w, uint32_t type, int64_t ffn, int64_t cols, size_t row_bytes, const float *x, float *h, crk_stream s) {
    if ((type != GGML_TYPE_F16 && type != GGML_TYPE_BF16) || ffn <= 0 || cols % 256 || ((uintptr_t)w & 15) || row_bytes % 16) return -1;
    const unsigned g = crk_cdiv(ffn, MV_WARPS);
    if (type == GGML_TYPE_F16) crk_launch(true, matvec_glu_h16<GGML_TYPE_F16>, g, MV_WARPS * 32, 0, s, (const uint8_t *)w, ffn, cols, row_bytes, x, h);
    else crk_launch(true, matvec_glu_h16<GGML_TYPE_BF16>, g, MV_WARPS * 32, 0, s, (const uint8_t *)w, ffn, cols, row_bytes, x, h);
    return 0;
}

/* Rows of 32 * 32 * BPL columns: lane l takes blocks l, l + 32, ... (BPL of them, the order of
 * matvec_q, so the same sums); their activation blocks are loaded once, then the warps walk
 * the rows with a grid stride (one wave of blocks). */
template <int T, int BPL>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_q_p(const uint8_t *w, int64_t rows, size_t row_bytes, const crk_q8 *xq, float *y, int accumulate) {
    const int lane = threadIdx.x & 31;
    const int64_t r0 = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (r0 < rows) crk_prefetch_l2(w + (size_t)r0 * row_bytes, row_bytes, lane);   /* weights before the wait (crk_launch) */
    crk_pdl_sync();
    int2 xa[BPL][4];
    float xd[BPL], xs[BPL];
#pragma unroll
    for (int j = 0; j < BPL; j++) {
        const crk_q8 *x = xq + lane + 32 * j;
        const int2 *xp = (const int2 *)x->q;
        xa[j][0] = xp[0]; xa[j][1] = xp[1]; xa[j][2] = xp[2]; xa[j][3] = xp[3];
        xd[j] = x->d; xs[j] = x->s;
    }
    const int64_t nw = (int64_t)gridDim.x * MV_WARPS;
    for (int64_t r = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5); r < rows; r += nw) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        crk_blk k[BPL];
#pragma unroll
        for (int j = 0; j < BPL; j++) crk_unpack<T>(row, lane + 32 * j, k[j]);
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < BPL; j++) {
            int lo = 0, hi = 0;
            lo = __dp4a(k[j].q[0], xa[j][0].x, lo); lo = __dp4a(k[j].q[1], xa[j][0].y, lo);
            lo = __dp4a(k[j].q[2], xa[j][1].x, lo); lo = __dp4a(k[j].q[3], xa[j][1].y, lo);
            hi = __dp4a(k[j].q[4], xa[j][2].x, hi); hi = __dp4a(k[j].q[5], xa[j][2].y, hi);
            hi = __dp4a(k[j].q[6], xa[j][3].x, hi); hi = __dp4a(k[j].q[7], xa[j][3].y, hi);
            sum += xd[j] * (k[j].d0 * (float)lo + k[j].d1 * (float)hi) + k[j].m * xs[j];
        }
        sum = crk_warp_sum(sum);
        if (lane == 0) y[r] = accumulate ? y[r] + sum : sum;
    }
}

static int mv_sms(void) {
    static int n = 0;
    if (!n) {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || v <= 0) v = 132;
        n = v;
    }
    return n;
}
/* blocks of a row-walking kernel: enough for the rows, at most one wave (the occupancy is
 * cached per kernel: K is the kernel itself, not its type, which several kernels share) */
template <auto K>
static int64_t mv_blocks(int64_t work_per_block, int64_t work) {
    static int occ = 0;
    if (!occ && (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, K, MV_WARPS * 32, 0) != cudaSuccess || occ <= 0)) occ = 1;
    const int64_t b = (work + work_per_block - 1) / work_per_block, cap = (int64_t)mv_sms() * occ;
    return b < cap ? b : cap;
}
template <int T, int BPL>
static void launch_mv_q_p(const uint8_t *w, int64_t rows, size_t row_bytes, const crk_q8 *xq, float *y, int acc, cudaStream_t s) {
    const int64_t blocks = mv_blocks<matvec_q_p<T, BPL>>(MV_WARPS, rows);
    crk_launch(true, matvec_q_p<T, BPL>, (unsigned)blocks, MV_WARPS * 32, 0, s, w, rows, row_bytes, xq, y, acc);
}
template <int T>
static void launch_mv_q(const uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes, const crk_q8 *xq, float *y, int acc, cudaStream_t s) {
    /* measured on the H200: faster for Q8_0 (41.4 against 42.9 us on 28672x4096), slower for Q6_K (69 against 51) */
    if (T != GGML_TYPE_Q8_0) crk_launch(true, matvec_q<T>, crk_cdiv(rows, MV_WARPS), MV_WARPS * 32, 0, s, w, rows, (int)(cols / 32), row_bytes, xq, y, acc);
    else if (cols == 1024) launch_mv_q_p<T, 1>(w, rows, row_bytes, xq, y, acc, s);
    else if (cols == 2048) launch_mv_q_p<T, 2>(w, rows, row_bytes, xq, y, acc, s);
    else if (cols == 4096) launch_mv_q_p<T, 4>(w, rows, row_bytes, xq, y, acc, s);
    else crk_launch(true, matvec_q<T>, crk_cdiv(rows, MV_WARPS), MV_WARPS * 32, 0, s, w, rows, (int)(cols / 32), row_bytes, xq, y, acc);
}
extern "C" void crk_matvec(const void *w, uint32_t type, int64_t rows, int64_t cols, size_t row_bytes,
                           const float *x, const crk_q8 *xq, float *y, int accumulate, crk_stream s) {
    if (rows <= 0) return;
    const uint8_t *wb = (const uint8_t *)w;
    unsigned g = crk_cdiv(rows, MV_WARPS);
    switch (type) {
    case GGML_TYPE_F32: crk_launch(true, matvec_f<GGML_TYPE_F32>, g, MV_WARPS * 32, 0, s, wb, rows, cols, row_bytes, x, y, accumulate); return;
    case GGML_TYPE_F16:
        if (!launch_h16<GGML_TYPE_F16>(wb, rows, cols, row_bytes, x, y, accumulate, s))
            crk_launch(true, matvec_f<GGML_TYPE_F16>, g, MV_WARPS * 32, 0, s, wb, rows, cols, row_bytes, x, y, accumulate);
        return;
    case GGML_TYPE_BF16:
        if (!launch_h16<GGML_TYPE_BF16>(wb, rows, cols, row_bytes, x, y, accumulate, s))
            crk_launch(true, matvec_f<GGML_TYPE_BF16>, g, MV_WARPS * 32, 0, s, wb, rows, cols, row_bytes, x, y, accumulate);
        return;
    case GGML_TYPE_Q4_K:
        if (((uintptr_t)wb & 15) == 0 && row_bytes % 16 == 0 && (cols == 1024 || cols == 2048 || cols == 4096)) {
            const int64_t pairs = (rows + 1) / 2;
            const int hpr = (int)(cols / 128), ppb = MV_WARPS * (32 / hpr);   /* row pairs per block and step */
            if (hpr == 32) crk_launch(true, matvec_q4k_p<32>, (unsigned)mv_blocks<matvec_q4k_p<32>>(ppb, pairs), MV_WARPS * 32, 0, s, wb, rows, row_bytes, xq, y, accumulate);
            else if (hpr == 16) crk_launch(true, matvec_q4k_p<16>, (unsigned)mv_blocks<matvec_q4k_p<16>>(ppb, pairs), MV_WARPS * 32, 0, s, wb, rows, row_bytes, xq, y, accumulate);
            else crk_launch(true, matvec_q4k_p<8>, (unsigned)mv_blocks<matvec_q4k_p<8>>(ppb, pairs), MV_WARPS * 32, 0, s, wb, rows, row_bytes, xq, y, accumulate);
            return;
        }
        if (((uintptr_t)wb & 15) == 0 && row_bytes % 16 == 0) {
            const size_t smem = sizeof(crk_q8) * (size_t)(cols / 32);
            static size_t smem_max = 48 * 1024;
            if (smem > smem_max) {
                cudaFuncSetAttribute(matvec_q4k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
                smem_max = smem;
            }
            crk_launch(true, matvec_q4k, crk_cdiv(rows, 2 * MV_WARPS), MV_WARPS * 32, smem, s, wb, rows, (int)(cols / 256), row_bytes, xq, y, accumulate);
            return;
        }
        break;
    default: break;
    }
    CRK_DISPATCH_QTYPE(type, launch_mv_q, wb, rows, cols, row_bytes, xq, y, accumulate, s)
}
