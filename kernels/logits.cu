/* Logit reductions: greedy argmax (first index of the maximum, NaN never wins, like
 * argmax() of sampler.c) and per-token negative log-likelihood. */
#include "common.cuh"

/* x 16-byte aligned and n % 4 == 0: float4 loads, 8 in flight per thread (a thread's indices
 * increase, so a strict > keeps its first maximum); otherwise one float at a time. */
__global__ void argmax_k(const float *x, int n, int32_t *out, float *maxval) {
    float best = -INFINITY;
    int bi = -1;
    if (((uintptr_t)x & 15) == 0 && (n & 3) == 0) {
        const float4 *x4 = (const float4 *)x;
        const int n4 = n / 4;
        for (int i0 = threadIdx.x; i0 < n4; i0 += 8 * blockDim.x) {
            float4 v[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int i = i0 + j * blockDim.x;
                v[j] = i < n4 ? x4[i] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
            }
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int i = 4 * (i0 + j * blockDim.x);
                if (v[j].x > best) { best = v[j].x; bi = i; }
                if (v[j].y > best) { best = v[j].y; bi = i + 1; }
                if (v[j].z > best) { best = v[j].z; bi = i + 2; }
                if (v[j].w > best) { best = v[j].w; bi = i + 3; }
            }
        }
    } else {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = x[i];
            if (v > best) { best = v; bi = i; }
        }
    }
    __shared__ float sv[1024];
    __shared__ int si[1024];
    sv[threadIdx.x] = best; si[threadIdx.x] = bi;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) {
            float v2 = sv[threadIdx.x + o]; int i2 = si[threadIdx.x + o];
            float v1 = sv[threadIdx.x]; int i1 = si[threadIdx.x];
            bool take = i2 >= 0 && (i1 < 0 || v2 > v1 || (v2 == v1 && i2 < i1));
            if (take) { sv[threadIdx.x] = v2; si[threadIdx.x] = i2; }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        out[0] = si[0] < 0 ? 0 : si[0];
        if (maxval) maxval[0] = sv[0];
    }
}

/* PART = 0: out[t] = NLL of targets[t]; PART = 1: out[2t], out[2t+1] as crk_nll_part. */
template <int PART>
__global__ void nll_k(const float *logits, int V, const int32_t *targets, int v0, float *out) {
    const int t = blockIdx.x;
    const float *lg = logits + (size_t)t * V;
    __shared__ float smax[32];
    __shared__ double ssum[32];
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, lg[i]);
    mx = crk_warp_max(mx);
    if ((threadIdx.x & 31) == 0) smax[threadIdx.x >> 5] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = smax[0];
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) m = fmaxf(m, smax[w]);
        smax[0] = m;
    }
    __syncthreads();
    mx = smax[0];
    double sum = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) sum += exp((double)(lg[i] - mx));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) ssum[threadIdx.x >> 5] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) s += ssum[w];
        const int tg = targets[t] - v0;
        const float nan = __int_as_float(0x7fc00000);
        if (PART) {
            out[2 * t] = (float)(log(s) + mx);
            out[2 * t + 1] = (tg >= 0 && tg < V) ? lg[tg] : nan;
        } else {
            out[t] = (tg >= 0 && tg < V) ? (float)(log(s) + mx - lg[tg]) : nan;
        }
    }
}

extern "C" void crk_argmax(const float *x, int n, int32_t *out, float *maxval, crk_stream s) {
    argmax_k<<<1, 1024, 0, s>>>(x, n, out, maxval);
}

extern "C" void crk_nll(const float *logits, int rows, int V, const int32_t *targets, float *out, crk_stream s) {
    if (rows <= 0) return;
    nll_k<0><<<rows, 256, 0, s>>>(logits, V, targets, 0, out);
}

extern "C" void crk_nll_part(const float *logits, int rows, int V, const int32_t *targets, int v0, float *out, crk_stream s) {
    if (rows <= 0) return;
    nll_k<1><<<rows, 256, 0, s>>>(logits, V, targets, v0, out);
}
