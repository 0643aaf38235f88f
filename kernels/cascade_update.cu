/* Cascade update of the chunk's insertion plan (cascade_apply of engine/cascade.c), for all
 * (layer, KV head) in parallel, in two steps:
 *  resolve: one block per (layer, head): the EMA decay/update of the N slot scores
 *           (__fmaf_rn(decay, score, r), bit-identical to cascade_ema_update), then the plan
 *           replayed on the scores only, in shared memory (each token's ops last to first,
 *           COMPETE keeps the carry when carry >= resident), which gives the final score of
 *           every touched slot and the source of its final content;
 *  move:    K, V and the original index of every changed slot copied from their sources
 *           (gather into a staging buffer, then scatter: sources are pre-chunk contents),
 *           plus the sink writes.
 * The sequential part touches only scalars; the data moves are fully parallel. */
#include "common.cuh"

#define RESOLVE_SMEM_MAX (200 * 1024)
/* The replay is one thread's chain of dependent steps; its inputs (ops, token bounds, the new
 * tokens' scores) are first staged in shared memory by the whole block, a batch of tokens at
 * a time, so that each step waits on shared memory rather than on L2. */
#define RES_TB 2048                                  /* tokens per staged batch */
#define RES_OPB 4096                                 /* ops per staged batch */
#define RES_STAGE_BYTES (RES_OPB * 8 + (RES_TB + 1) * 4 + RES_TB * 4)
static_assert(RES_OPB >= CR_MAX_CASCADES + 1, "one token's ops fit a batch");

#define RESOLVE_NT 512   /* the score update streams N slots per (layer, KV head): many loads in flight */
__global__ void __launch_bounds__(RESOLVE_NT) resolve_k(crk_resolve_args a, int use_smem) {
    extern __shared__ __align__(16) unsigned char smraw[];
    __shared__ int batch_end;
    const int lh = blockIdx.x, l = lh / a.n_kv, h = lh % a.n_kv;
    const int N = a.N, U = a.st->U, L = a.L, S = a.S;
    float *score = a.score + (size_t)lh * N;
    const float *r = a.r + (size_t)l * a.r_layer_stride + (size_t)h * a.r_stride;
    const float decay = a.st->decay;
#pragma unroll 4
    for (int s = threadIdx.x; s < N; s += blockDim.x)
        score[s] = __fmaf_rn(decay, score[s], a.slot_pos[s] >= 0 ? r[S + s] : 0.0f);
    __syncthreads();
    float *sc;
    int *src;
    if (use_smem) { sc = (float *)smraw; src = (int *)(sc + U); }
    else { sc = (float *)a.scratch + (size_t)lh * 2 * U; src = (int *)(sc + U); }
    int32_t *s_ops = (int32_t *)(smraw + (use_smem ? (size_t)a.U_max * 8 : 0));   /* [RES_OPB][2] */
    int32_t *s_tfo = s_ops + 2 * RES_OPB;            /* [RES_TB + 1], absolute op indices */
    float *s_rn = (float *)(s_tfo + RES_TB + 1);     /* [RES_TB] */
    for (int u = threadIdx.x; u < U; u += blockDim.x) { sc[u] = score[a.touched[u]]; src[u] = u; }
    for (int j0 = 0; j0 < L;) {
        if (threadIdx.x == 0) {   /* the most tokens from j0 whose ops fit a batch */
            const int base = a.tfo[j0];
            int lo = j0 + 1, hi = min(L, j0 + RES_TB);
            while (lo < hi) {
                const int mid = (lo + hi + 1) / 2;
                if (a.tfo[mid] - base <= RES_OPB) lo = mid; else hi = mid - 1;
            }
            batch_end = lo;
        }
        __syncthreads();
        const int j1 = batch_end, x0 = a.tfo[j0], nx = a.tfo[j1] - x0;
        for (int i = threadIdx.x; i < 2 * nx; i += blockDim.x) s_ops[i] = a.ops[2 * (size_t)x0 + i];
        for (int i = threadIdx.x; i <= j1 - j0; i += blockDim.x) s_tfo[i] = a.tfo[j0 + i];
        for (int i = threadIdx.x; i < j1 - j0; i += blockDim.x) s_rn[i] = r[S + N + j0 + i];
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int j = j0; j < j1; j++) {
                const int b0 = s_tfo[j - j0], b1 = s_tfo[j - j0 + 1];
                const float ns = s_rn[j - j0];
                for (int x = b1 - 1; x >= b0; x--) {
                    const int kind = s_ops[2 * (x - x0)], loc = s_ops[2 * (x - x0) + 1];
                    if (kind == CASCADE_OP_SINK) continue;
                    float cs;
                    int csrc;
                    if (x == b0) { cs = ns; csrc = U + j; }
                    else { const int pl = s_ops[2 * (x - 1 - x0) + 1]; cs = sc[pl]; csrc = src[pl]; }
                    if (kind == CASCADE_OP_COMPETE && !(cs >= sc[loc])) continue;
                    sc[loc] = cs;
                    src[loc] = csrc;
                }
            }
        }
        __syncthreads();                              /* before the next batch is staged */
        j0 = j1;
    }
    for (int u = threadIdx.x; u < U; u += blockDim.x) {
        score[a.touched[u]] = sc[u];
        a.src[(size_t)lh * U + u] = src[u];
    }
}

/* gather: stage[lr][h][u] = source content of touched slot u (when it changes). */
__global__ void gather_k(crk_move_args a) {
    const int nc = a.hd / 8, U = a.st->U, nl = a.l1 - a.l0;
    const size_t total = (size_t)nl * a.n_kv * U * nc;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % nc);
        const size_t rest = i / nc;
        const int u = (int)(rest % U);
        const size_t lhr = rest / U;                       /* (l - l0) * n_kv + h */
        const int h = (int)(lhr % a.n_kv), l = a.l0 + (int)(lhr / a.n_kv);
        const size_t lh = (size_t)l * a.n_kv + h;
        const int sr = a.src[lh * U + u];
        if (sr == u) continue;
        const uint4 *ks, *vs;
        int64_t og;
        if (sr < U) {
            const size_t off = (lh * a.N + a.touched[sr]) * a.hd + 8 * c;
            ks = (const uint4 *)(a.ck + off); vs = (const uint4 *)(a.cv + off);
            og = a.og[lh * a.N + a.touched[sr]];
        } else {
            const int j = sr - U;
            const size_t off = (size_t)l * a.kv_layer_stride + ((size_t)j * a.n_kv + h) * a.hd + 8 * c;
            ks = (const uint4 *)(a.k16 + off); vs = (const uint4 *)(a.v16 + off);
            og = a.st->t0 + j;
        }
        const size_t so = (lhr * U + u) * a.hd + 8 * c;
        *(uint4 *)(a.stage_k + so) = *ks;
        *(uint4 *)(a.stage_v + so) = *vs;
        if (c == 0) a.stage_og[lhr * U + u] = og;
    }
}

/* scatter: touched slot u <- stage (when it changes); sink writes from the chunk's tokens. */
__global__ void scatter_k(crk_move_args a) {
    const int nc = a.hd / 8, U = a.st->U, nl = a.l1 - a.l0;
    const size_t total = (size_t)nl * a.n_kv * U * nc;
    const int nso = a.st->n_sink_ops;
    const size_t total_s = (size_t)nl * a.n_kv * nso * nc;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total + total_s; i += (size_t)gridDim.x * blockDim.x) {
        if (i < total) {
            const int c = (int)(i % nc);
            const size_t rest = i / nc;
            const int u = (int)(rest % U);
            const size_t lhr = rest / U;
            const int h = (int)(lhr % a.n_kv), l = a.l0 + (int)(lhr / a.n_kv);
            const size_t lh = (size_t)l * a.n_kv + h;
            if (a.src[lh * U + u] == u) continue;
            const size_t so = (lhr * U + u) * a.hd + 8 * c;
            const size_t off = (lh * a.N + a.touched[u]) * a.hd + 8 * c;
            *(uint4 *)(a.ck + off) = *(const uint4 *)(a.stage_k + so);
            *(uint4 *)(a.cv + off) = *(const uint4 *)(a.stage_v + so);
            if (c == 0) a.og[lh * a.N + a.touched[u]] = a.stage_og[lhr * U + u];
        } else {
            const size_t k = i - total;
            const int c = (int)(k % nc);
            const size_t rest = k / nc;
            const int so = (int)(rest % nso);
            const size_t lhr = rest / nso;
            const int h = (int)(lhr % a.n_kv), l = a.l0 + (int)(lhr / a.n_kv);
            const size_t lh = (size_t)l * a.n_kv + h;
            const int sidx = a.sink_ops[2 * so], j = a.sink_ops[2 * so + 1];
            const size_t src_off = (size_t)l * a.kv_layer_stride + ((size_t)j * a.n_kv + h) * a.hd + 8 * c;
            const size_t dst_off = (lh * a.S + sidx) * a.hd + 8 * c;
            *(uint4 *)(a.sink_k + dst_off) = *(const uint4 *)(a.k16 + src_off);
            *(uint4 *)(a.sink_v + dst_off) = *(const uint4 *)(a.v16 + src_off);
        }
    }
}

extern "C" int crk_cascade_resolve_smem_max(void) { return (RESOLVE_SMEM_MAX - RES_STAGE_BYTES) / 8; }

extern "C" void crk_cascade_resolve(const crk_resolve_args *a, crk_stream s) {
    const int blocks = a->n_layer * a->n_kv;
    if (blocks <= 0) return;
    const int use_smem = a->U_max <= crk_cascade_resolve_smem_max();
    size_t smem = (use_smem ? (size_t)a->U_max * 8 : 0) + RES_STAGE_BYTES;
    static int attr_done = 0;
    if (!attr_done) { cudaFuncSetAttribute(resolve_k, cudaFuncAttributeMaxDynamicSharedMemorySize, RESOLVE_SMEM_MAX); attr_done = 1; }
    resolve_k<<<blocks, RESOLVE_NT, smem, s>>>(*a, use_smem);
}

static unsigned grid_for(size_t n) {
    size_t g = (n + 255) / 256;
    if (g > 65535u * 16) g = 65535u * 16;
    return g < 1 ? 1u : (unsigned)g;
}

extern "C" void crk_cascade_move(const crk_move_args *a, crk_stream s) {
    const size_t nl = (size_t)(a->l1 - a->l0), nc = (size_t)a->hd / 8;
    const size_t n1 = nl * a->n_kv * a->U_max * nc;
    const size_t n2 = n1 + nl * a->n_kv * (size_t)a->S * nc;   /* upper bound of the sink part */
    if (n1) gather_k<<<grid_for(n1), 256, 0, s>>>(*a);
    if (n2) scatter_k<<<grid_for(n2), 256, 0, s>>>(*a);
}
