/* Shared device helpers of the CUDA kernels: fp16/bf16 conversion, warp reductions, and
 * the unpacking of one 32-element block of every supported ggml block type into int8
 * values with a scale per 16 elements and a min per 32 (the same decomposition as
 * unpack_row() in engine/quant.c: element = d[i/16] * q[i] + m). */
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdlib.h>
#include "cuda_iface.h"
#include "gguf.h"
#include "cascade.h"

#define CRK_WARP 32

__device__ __forceinline__ float crk_h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t crk_f2h(float f) { return __half_as_ushort(__float2half_rn(f)); }
__device__ __forceinline__ float crk_bf2f(uint16_t h) { return __uint_as_float(((uint32_t)h) << 16); }
__device__ __forceinline__ uint16_t crk_f2bf(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }

/* SwiGLU's silu(g) * u, rounded step by step (every kernel that computes it: the same bits) */
__device__ __forceinline__ float crk_silu_mul(float g, float u) {
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}
__device__ __forceinline__ float crk_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float crk_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

static inline unsigned crk_cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

/* One RoPE pair of a query in fp32 (rope_rotate's arithmetic in engine/attn_cpu.c): crk_qkv_post
 * and the decode attention's fused post-processing both use it, so their results are identical.
 * Explicit roundings: with plain operators ptxas may contract a product into an FMA in one
 * kernel and not in the other (it did once the loads around it moved: the fused and unfused
 * decode differed from step 13 on). */
__device__ __forceinline__ void crk_rope_pair(float &x0, float &x1, float c, float s) {
    const float y0 = x0, y1 = x1;
    x0 = __fsub_rn(__fmul_rn(y0, c), __fmul_rn(y1, s));
    x1 = __fmaf_rn(y1, c, __fmul_rn(y0, s));
}

/* ---- programmatic dependent launch (the decode step's chain of small kernels) ----
 * crk_launch(pdl = true, ...) starts a kernel that may begin while the stream's previous
 * kernel still runs (where crk_pdl_enabled(): CRK_PDL=0 or crk_set_pdl(0) turns it off).
 * Such a kernel must call crk_pdl_wait() (griddepcontrol.wait: the previous kernel has
 * completed and its writes are visible; a no-op after a normal launch) before it reads
 * anything the kernels of this step write and before it writes anything, then
 * crk_pdl_next() at once, which lets the next kernel start. So the part before the wait runs
 * after the kernel two back has completed: it may read weights and data of earlier steps (the
 * cache, slot positions, the step's staged plan), never this step's activations. */
__device__ __forceinline__ void crk_pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void crk_pdl_next() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }
/* the usual pair: wait for the previous kernel, then let the next one start */
__device__ __forceinline__ void crk_pdl_sync() { crk_pdl_wait(); crk_pdl_next(); }
/* a warp asks L2 for bytes [p, p + n) (128-byte lines), e.g. a kernel's first weights before crk_pdl_wait */
__device__ __forceinline__ void crk_prefetch_l2(const void *p, size_t n, int lane) {
    for (size_t o = (size_t)lane * 128; o < n; o += 32 * 128) asm volatile("prefetch.global.L2 [%0];\n" :: "l"((const char *)p + o));
}
inline int &crk_pdl_state() {   /* one instance across the kernels' files (inline, not static) */
    static int v = -1;
    if (v < 0) { const char *e = getenv("CRK_PDL"); v = !(e && *e == '0'); }
    return v;
}
inline bool crk_pdl_enabled() { return crk_pdl_state() != 0; }
template <typename... KA, typename... A>
static inline void crk_launch(bool pdl, void (*k)(KA...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid; cfg.blockDim = block; cfg.dynamicSmemBytes = smem; cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl && crk_pdl_enabled() ? 1 : 0;
    (void)cudaLaunchKernelEx(&cfg, k, ((KA)args)...);   /* errors: CUDA_LAUNCHED after it, as after <<<>>> */
}

/* Loads from addresses aligned to 2 bytes (ggml blocks of 18, 22, 34, 210 bytes). */
__device__ __forceinline__ uint32_t crk_ld16(const uint8_t *p) { return *(const uint16_t *)p; }
__device__ __forceinline__ uint32_t crk_ld32a2(const uint8_t *p) {
    return (uint32_t)(*(const uint16_t *)p) | ((uint32_t)(*(const uint16_t *)(p + 2)) << 16);
}
__device__ __forceinline__ uint32_t crk_ld32(const uint8_t *p) { return *(const uint32_t *)p; }
__device__ __forceinline__ float crk_ldh(const uint8_t *p) { return crk_h2f(*(const uint16_t *)p); }

/* 4 bits (x & 15) -> bit 4 of each of 4 bytes (value 16 per set bit). */
__device__ __forceinline__ uint32_t crk_spread4(uint32_t x) {
    return ((x & 1u) | ((x & 2u) << 7) | ((x & 4u) << 14) | ((x & 8u) << 21)) << 4;
}

/* One 32-element block: q[i] holds elements 4i..4i+3 as int8 (little-endian bytes). */
struct crk_blk { int q[8]; float d0, d1, m; };

__device__ __forceinline__ void crk_scale_min_k4(int j, const uint8_t *q, int &d, int &m) {
    if (j < 4) { d = q[j] & 63; m = q[j + 4] & 63; }
    else { d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

/* Block b (0-based, 32 elements each) of a row of type T. */
template <int T>
__device__ __forceinline__ void crk_unpack(const uint8_t *row, int b, crk_blk &o) {
    if (T == GGML_TYPE_Q8_0) {
        const uint8_t *p = row + 34 * (size_t)b;
        o.d0 = o.d1 = crk_ldh(p); o.m = 0.f;
#pragma unroll
        for (int i = 0; i < 8; i++) o.q[i] = (int)crk_ld32a2(p + 2 + 4 * i);
    } else if (T == GGML_TYPE_Q4_0) {
        const uint8_t *p = row + 18 * (size_t)b;
        o.d0 = o.d1 = crk_ldh(p); o.m = 0.f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t w = crk_ld32a2(p + 2 + 4 * i);
            o.q[i] = (int)__vsubss4(w & 0x0F0F0F0Fu, 0x08080808u);
            o.q[i + 4] = (int)__vsubss4((w >> 4) & 0x0F0F0F0Fu, 0x08080808u);
        }
    } else if (T == GGML_TYPE_Q4_1) {
        const uint8_t *p = row + 20 * (size_t)b;
        o.d0 = o.d1 = crk_ldh(p); o.m = crk_ldh(p + 2);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t w = crk_ld32(p + 4 + 4 * i);
            o.q[i] = (int)(w & 0x0F0F0F0Fu);
            o.q[i + 4] = (int)((w >> 4) & 0x0F0F0F0Fu);
        }
    } else if (T == GGML_TYPE_Q5_0) {
        const uint8_t *p = row + 22 * (size_t)b;
        o.d0 = o.d1 = crk_ldh(p); o.m = 0.f;
        uint32_t qh = crk_ld32a2(p + 2);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t w = crk_ld32a2(p + 6 + 4 * i);
            o.q[i] = (int)__vsubss4((w & 0x0F0F0F0Fu) | crk_spread4(qh >> (4 * i)), 0x10101010u);
            o.q[i + 4] = (int)__vsubss4(((w >> 4) & 0x0F0F0F0Fu) | crk_spread4(qh >> (16 + 4 * i)), 0x10101010u);
        }
    } else if (T == GGML_TYPE_Q5_1) {
        const uint8_t *p = row + 24 * (size_t)b;
        o.d0 = o.d1 = crk_ldh(p); o.m = crk_ldh(p + 2);
        uint32_t qh = crk_ld32(p + 4);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t w = crk_ld32(p + 8 + 4 * i);
            o.q[i] = (int)((w & 0x0F0F0F0Fu) | crk_spread4(qh >> (4 * i)));
            o.q[i + 4] = (int)(((w >> 4) & 0x0F0F0F0Fu) | crk_spread4(qh >> (16 + 4 * i)));
        }
    } else if (T == GGML_TYPE_Q4_K) {
        const int jb = b & 7;
        const uint8_t *p = row + 144 * (size_t)(b >> 3);
        int sd, sm;
        crk_scale_min_k4(jb, p + 4, sd, sm);
        float dd = crk_ldh(p), dmin = crk_ldh(p + 2);
        o.d0 = o.d1 = dd * (float)sd; o.m = -dmin * (float)sm;
        const uint8_t *qs = p + 16 + 32 * (jb >> 1);
        const int sh = 4 * (jb & 1);
#pragma unroll
        for (int i = 0; i < 8; i++) o.q[i] = (int)((crk_ld32(qs + 4 * i) >> sh) & 0x0F0F0F0Fu);
    } else if (T == GGML_TYPE_Q5_K) {
        const int jb = b & 7;
        const uint8_t *p = row + 176 * (size_t)(b >> 3);
        int sd, sm;
        crk_scale_min_k4(jb, p + 4, sd, sm);
        float dd = crk_ldh(p), dmin = crk_ldh(p + 2);
        o.d0 = o.d1 = dd * (float)sd; o.m = -dmin * (float)sm;
        const uint8_t *qh = p + 16, *qs = p + 48 + 32 * (jb >> 1);
        const int sh = 4 * (jb & 1);
#pragma unroll
        for (int i = 0; i < 8; i++)
            o.q[i] = (int)(((crk_ld32(qs + 4 * i) >> sh) & 0x0F0F0F0Fu) | (((crk_ld32(qh + 4 * i) >> jb) & 0x01010101u) << 4));
    } else if (T == GGML_TYPE_Q6_K) {
        const int jb = b & 7, n = jb >> 2, k = jb & 3;
        const uint8_t *p = row + 210 * (size_t)(b >> 3);
        const uint8_t *ql = p + 64 * n + 32 * (k & 1), *qh = p + 128 + 32 * n;
        const int8_t *sc = (const int8_t *)(p + 192) + 8 * n + 2 * k;
        float dd = crk_ldh(p + 208);
        o.d0 = dd * (float)sc[0]; o.d1 = dd * (float)sc[1]; o.m = 0.f;
        const int sh = 4 * (k >> 1);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t lo = (crk_ld32a2(ql + 4 * i) >> sh) & 0x0F0F0F0Fu;
            uint32_t hi = ((crk_ld32a2(qh + 4 * i) >> (2 * k)) & 0x03030303u) << 4;
            o.q[i] = (int)__vsubss4(lo | hi, 0x20202020u);
        }
    }
}

/* Element value of an unpacked block: d[i/16] * q[i] + m (as dequant_row of quant.c). */
__device__ __forceinline__ float crk_blk_val(const crk_blk &o, int i) {
    int8_t q = (int8_t)((o.q[i >> 2] >> (8 * (i & 3))) & 0xFF);
    return (i < 16 ? o.d0 : o.d1) * (float)q + o.m;
}

/* Dispatch a template on a runtime ggml type (quantized block types). */
#define CRK_DISPATCH_QTYPE(type, FN, ...)                                     \
    switch (type) {                                                          \
    case GGML_TYPE_Q8_0: FN<GGML_TYPE_Q8_0>(__VA_ARGS__); break;             \
    case GGML_TYPE_Q4_0: FN<GGML_TYPE_Q4_0>(__VA_ARGS__); break;             \
    case GGML_TYPE_Q4_1: FN<GGML_TYPE_Q4_1>(__VA_ARGS__); break;             \
    case GGML_TYPE_Q5_0: FN<GGML_TYPE_Q5_0>(__VA_ARGS__); break;             \
    case GGML_TYPE_Q5_1: FN<GGML_TYPE_Q5_1>(__VA_ARGS__); break;             \
    case GGML_TYPE_Q4_K: FN<GGML_TYPE_Q4_K>(__VA_ARGS__); break;             \
    case GGML_TYPE_Q5_K: FN<GGML_TYPE_Q5_K>(__VA_ARGS__); break;             \
    case GGML_TYPE_Q6_K: FN<GGML_TYPE_Q6_K>(__VA_ARGS__); break;             \
    default: break;                                                          \
    }

/* Value i of a row of a float type. */
__device__ __forceinline__ float crk_fval(uint32_t type, const uint8_t *row, int64_t i) {
    if (type == GGML_TYPE_F32) return ((const float *)row)[i];
    if (type == GGML_TYPE_F16) return crk_h2f(((const uint16_t *)row)[i]);
    return crk_bf2f(((const uint16_t *)row)[i]);
}

/* quantize_q8 of one block of 32 held one value per lane of a full warp (bit-identical to
 * quantize_q8 of engine/quant.c): d = amax / 127, q = roundf(x * (1/d)), d stored through
 * fp16, s = d * sum(q). */
__device__ __forceinline__ void crk_quantize_block(float v, int lane, crk_q8 *y) {
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    int q = (int)roundf(__fmul_rn(v, id));
    int sum = q;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    y->q[lane] = (int8_t)q;
    if (lane == 0) {
        float dh = __half2float(__float2half_rn(d));
        y->d = dh;
        y->s = dh * (float)sum;
    }
}
