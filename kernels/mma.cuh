/* Tensor-core and asynchronous-copy helpers of the attention kernels (sm_80+ PTX):
 * mma.sync m16n8k16 (fp16 in, fp32 accumulate), ldmatrix, cp.async, fp16 packing and a
 * flush-to-zero exp2 (one MUFU instruction; results below 2^-126 become 0). */
#pragma once
#include "common.cuh"

#define LOG2E 1.4426950408889634f

__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
/* 16-byte asynchronous copy to a shared-memory address; bytes = 0 fills it with zeros. */
__device__ __forceinline__ void cp_async16s(uint32_t saddr, const void *gmem, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(saddr), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int bytes) {
    cp_async16s((uint32_t)__cvta_generic_to_shared(smem), gmem, bytes);
}
/* the same with an L2 evict-first policy (pol from l2_evict_first_policy): data read once */
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
    return pol;
}
__device__ __forceinline__ void cp_async16_ef(void *smem, const void *gmem, int bytes, uint64_t pol) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n"
                 :: "r"((uint32_t)__cvta_generic_to_shared(smem)), "l"(gmem), "r"(bytes), "l"(pol));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }
__device__ __forceinline__ uint32_t pack_h2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}
__device__ __forceinline__ uint32_t ldg32(const uint16_t *p) { return *(const uint32_t *)p; }

__device__ __forceinline__ float crk_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* S = A . B^T for one warp: A's 16 rows as m16n8k16 fragments a[HD/16][4] (registers), B's
 * 8 NB rows (row stride RS halves, from B) in shared memory; s[nb] holds columns nb*8 .. +7. */
template <int HD, int NB, int RS>
__device__ __forceinline__ void crk_mma_abt(float (&s)[NB][4], const uint32_t (&a)[HD / 16][4], const uint16_t *B) {
    const int lane = threadIdx.x & 31, lm_i = lane >> 3, lm_r = lane & 7;
#pragma unroll
    for (int nb = 0; nb < NB; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
#pragma unroll
        for (int nb = 0; nb < NB; nb += 2) {
            uint32_t b0, b1, b2, b3;
            ldsm_x4(b0, b1, b2, b3, B + ((nb + (lm_i >> 1)) * 8 + lm_r) * RS + kk * 16 + (lm_i & 1) * 8);
            mma16816(s[nb], a[kk], b0, b1);
            mma16816(s[nb + 1], a[kk], b2, b3);
        }
    }
}

/* o += P . V for one warp: P = the probabilities p[NB][4] of its 16 rows over 8 NB keys (the
 * layout crk_mma_abt leaves), rounded to fp16; V's 8 NB rows (stride RS halves) in shared memory. */
template <int HD, int NB, int RS>
__device__ __forceinline__ void crk_mma_pv(float (&o)[HD / 8][4], const float (&p)[NB][4], const uint16_t *V) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk2 = 0; kk2 < NB / 2; kk2++) {
        uint32_t pa[4];
        pa[0] = pack_h2(p[2 * kk2][0], p[2 * kk2][1]);
        pa[1] = pack_h2(p[2 * kk2][2], p[2 * kk2][3]);
        pa[2] = pack_h2(p[2 * kk2 + 1][0], p[2 * kk2 + 1][1]);
        pa[3] = pack_h2(p[2 * kk2 + 1][2], p[2 * kk2 + 1][3]);
#pragma unroll
        for (int nb2 = 0; nb2 < HD / 8; nb2 += 2) {
            uint32_t v0, v1, v2, v3;
            ldsm_x4_trans(v0, v1, v2, v3, V + (kk2 * 16 + (lane & 15)) * RS + nb2 * 8 + (lane >> 4) * 8);
            mma16816(o[nb2], pa, v0, v1);
            mma16816(o[nb2 + 1], pa, v2, v3);
        }
    }
}
