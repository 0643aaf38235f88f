/* GPU kernels against their CPU twins, on fresh random data: RMSNorm, SwiGLU, q8
 * quantization, dequantization and embedding rows of every type, matrix-vector products
 * of every type (vs vec_dot_q / vec_dot_f), the bf16 GEMM (vs the CPU matmul), q/k/v
 * post-processing with RoPE, cascade slot positions, chunk attention (precise and tensor
 * core paths) and decode attention vs attn_chunk_cpu including the EMA score columns, the
 * cascade update vs cascade_ema_update + cascade_apply (bit for bit), argmax and NLL.
 * Outputs are poisoned with NaN before each run; NaN never passes.
 * Prints SKIP when built without CUDA or when no GPU is present. */
#include "t.h"

#ifndef CR_CUDA
static void test_cuda_kernels(void) { T_SKIP("built without CUDA (CUDA=0)"); }
int main(void) { T_RUN(test_cuda_kernels); return t_summary(); }
#else

#include "cuda_iface.h"
#include "cuda_plan.h"
#include "cuda_state.h"
#include "cuda_util.h"
#include "attn_cpu.h"
#include "cascade.h"
#include "gguf.h"
#include "matmul.h"
#include "quant.h"
#include "sampler.h"
#include <stdint.h>

static int gpu_ok;
static char gpu_desc[320];
static cudaStream_t S0;

#define NEED_GPU() do { if (!gpu_ok) T_SKIP("no usable CUDA device: %s", gpu_desc); } while (0)

/* ---------------------------------------------------------------- helpers */
static uint64_t rs = 0x243F6A8885A308D3ull;
static uint64_t rnd64(void) { rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27; return rs * 2685821657736338717ull; }
static float frand(void) { return (float)((rnd64() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }   /* [-1, 1) */
static int irand(int n) { return (int)(rnd64() % (uint64_t)n); }

static void *dev(size_t n) { void *p; CUDA_CHECK(cudaMalloc(&p, n ? n : 16)); return p; }
static void *dup(const void *h, size_t n) { void *p = dev(n); if (n) CUDA_CHECK(cudaMemcpy(p, h, n, cudaMemcpyHostToDevice)); return p; }
static void poison(void *d, size_t n) { CUDA_CHECK(cudaMemset(d, 0xFF, n)); }
static int is_poison(const float *f) { uint32_t u; memcpy(&u, f, 4); return u == 0xFFFFFFFFu; }
static void get(void *h, const void *d, size_t n) { CUDA_CHECK(cudaDeviceSynchronize()); CUDA_CHECK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost)); }

/* ||a - ref|| / ||ref||; counts non-finite entries of a */
static double rel_err(const float *a, const float *ref, size_t n, size_t *bad) {
    double num = 0, den = 0;
    *bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(ref[i])) { (*bad)++; continue; }
        double d = (double)a[i] - ref[i];
        num += d * d; den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static const uint32_t ALL_TYPES[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                     GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
#define N_TYPES (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static void put_h(uint8_t *p, float v) { uint16_t h = f32_to_f16(v); memcpy(p, &h, 2); }

/* rows x cols of random valid blocks of type t. */
static uint8_t *make_rows(uint32_t t, int rows, int cols, size_t *row_bytes) {
    *row_bytes = ggml_row_size(t, (uint64_t)cols);
    size_t nb = *row_bytes * rows;
    uint8_t *w = malloc(nb);
    for (size_t i = 0; i < nb; i++) w[i] = (uint8_t)rnd64();
    if (t == GGML_TYPE_F32) { float *f = (float *)w; for (size_t i = 0; i < nb / 4; i++) f[i] = frand(); return w; }
    if (t == GGML_TYPE_F16) { uint16_t *h = (uint16_t *)w; for (size_t i = 0; i < nb / 2; i++) h[i] = f32_to_f16(frand()); return w; }
    if (t == GGML_TYPE_BF16) { uint16_t *h = (uint16_t *)w; for (size_t i = 0; i < nb / 2; i++) h[i] = f32_to_bf16(frand()); return w; }
    size_t bs = ggml_type_size(t), nblk = nb / bs;
    for (size_t b = 0; b < nblk; b++) {
        uint8_t *p = w + b * bs;
        float u = 0.01f + 0.04f * (frand() + 1.0f);
        switch (t) {
        case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: put_h(p, u); break;
        case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: put_h(p, u); put_h(p + 2, -0.3f * u * 16); break;
        case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: put_h(p, u * 0.1f); put_h(p + 2, u * 0.05f); break;
        case GGML_TYPE_Q6_K: put_h(p + 208, u * 0.05f); break;
        default: break;
        }
    }
    return w;
}

static float *frand_vec(size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * frand();
    return x;
}

/* ---------------------------------------------------------------- elementwise */
static void cpu_rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * r * w[i];
}

static void test_rmsnorm(void) {
    NEED_GPU();
    const int shapes[][2] = {{5, 200}, {3, 64}, {2, 4096}, {1, 4096}, {1, 2048}, {1, 576}};   /* L = 1, n % 128 == 0: the decode kernel */
    double worst = 0, worst16 = 0;
    for (int s = 0; s < 6; s++) {
        int L = shapes[s][0], n = shapes[s][1];
        float *x = frand_vec((size_t)L * n, 3.0f), *w = frand_vec((size_t)n, 1.5f), *ref = malloc(sizeof(float) * L * n), *got = malloc(sizeof(float) * L * n);
        uint16_t *g16 = malloc(2 * (size_t)L * n);
        for (int t = 0; t < L; t++) cpu_rmsnorm(ref + (size_t)t * n, x + (size_t)t * n, w, n, 1e-5f);
        float *dx = dup(x, 4 * (size_t)L * n), *dw = dup(w, 4 * (size_t)n), *dy = dev(4 * (size_t)L * n);
        uint16_t *dy16 = dev(2 * (size_t)L * n);
        poison(dy, 4 * (size_t)L * n); poison(dy16, 2 * (size_t)L * n);
        crk_q8 *dq = dev(sizeof(crk_q8) * L * (n / 32 + 1));
        poison(dq, sizeof(crk_q8) * L * (n / 32 + 1));
        crk_rmsnorm(dx, dw, L, n, 1e-5f, dy, dy16, n % 32 == 0 ? dq : NULL, S0); CUDA_LAUNCHED();
        get(got, dy, 4 * (size_t)L * n); get(g16, dy16, 2 * (size_t)L * n);
        if (n % 32 == 0) {   /* fused q8 output == quantize_q8 of the CPU result */
            q8_block *qr = malloc(sizeof(q8_block) * L * (n / 32)), *qg = malloc(sizeof(q8_block) * L * (n / 32));
            for (int t = 0; t < L; t++) quantize_q8(ref + (size_t)t * n, qr + (size_t)t * (n / 32), n);
            get(qg, dq, sizeof(q8_block) * L * (n / 32));
            int diff = 0;
            for (int b = 0; b < L * (n / 32); b++) diff += memcmp(&qr[b], &qg[b], sizeof(q8_block)) != 0;
            free(qr); free(qg);
            T_CHECKF(diff == 0, "rmsnorm q8 output: %d blocks differ from quantize_q8", diff);
        }
        cudaFree(dq);
        size_t bad;
        double e = rel_err(got, ref, (size_t)L * n, &bad);
        T_CHECKF(bad == 0, "rmsnorm: %zu non-finite", bad);
        if (e > worst) worst = e;
        for (size_t i = 0; i < (size_t)L * n; i++) got[i] = bf16_to_f32(g16[i]);
        e = rel_err(got, ref, (size_t)L * n, &bad);
        T_CHECKF(bad == 0, "rmsnorm bf16: %zu non-finite", bad);
        if (e > worst16) worst16 = e;
        cudaFree(dx); cudaFree(dw); cudaFree(dy); cudaFree(dy16);
        free(x); free(w); free(ref); free(got); free(g16);
    }
    printf("     rmsnorm rel err f32 %.2e, bf16 %.2e\n", worst, worst16);
    T_CHECKF(worst < 1e-6, "rmsnorm rel err %.3g", worst);
    T_CHECKF(worst16 < 4e-3, "rmsnorm bf16 rel err %.3g", worst16);
}

static void test_swiglu(void) {
    NEED_GPU();
    const int L = 7, ffn = 172;
    float *gu = frand_vec((size_t)L * 2 * ffn, 6.0f), *ref = malloc(sizeof(float) * L * ffn), *got = malloc(sizeof(float) * L * ffn);
    for (int t = 0; t < L; t++)
        for (int i = 0; i < ffn; i++) {
            float g = gu[(size_t)t * 2 * ffn + i], u = gu[(size_t)t * 2 * ffn + ffn + i];
            ref[(size_t)t * ffn + i] = g / (1.0f + expf(-g)) * u;
        }
    float *dgu = dup(gu, 4 * (size_t)L * 2 * ffn), *dh = dev(4 * (size_t)L * ffn);
    poison(dh, 4 * (size_t)L * ffn);
    crk_swiglu(dgu, L, ffn, dh, NULL, NULL, S0); CUDA_LAUNCHED();
    get(got, dh, 4 * (size_t)L * ffn);
    size_t bad;
    double e = rel_err(got, ref, (size_t)L * ffn, &bad);
    printf("     swiglu rel err %.2e\n", e);
    T_CHECKF(bad == 0 && e < 1e-6, "swiglu rel err %.3g, %zu non-finite", e, bad);
    {   /* bf16 only (a chunk before a bf16 GEMM): the f32 results rounded, and decode's path
         * (L = 1, one float at a time) gives the chunk path's first row bit for bit */
        uint16_t *d16 = dev(2 * (size_t)L * ffn), *g16 = malloc(2 * (size_t)L * ffn);
        poison(d16, 2 * (size_t)L * ffn);
        crk_swiglu(dgu, L, ffn, NULL, d16, NULL, S0); CUDA_LAUNCHED();
        get(g16, d16, 2 * (size_t)L * ffn);
        int diff = 0;
        for (size_t i = 0; i < (size_t)L * ffn; i++) diff += g16[i] != f32_to_bf16(got[i]);
        float *h1 = malloc(sizeof(float) * ffn);
        crk_swiglu(dgu, 1, ffn, dh, NULL, NULL, S0); CUDA_LAUNCHED();
        get(h1, dh, 4 * (size_t)ffn);
        T_CHECKF(diff == 0 && !memcmp(h1, got, sizeof(float) * ffn), "swiglu bf16: %d values differ from the rounded f32; decode row %s", diff,
                 memcmp(h1, got, sizeof(float) * ffn) ? "differs" : "same");
        cudaFree(d16); free(g16); free(h1);
    }
    {   /* q8 output (ffn % 32 == 0) */
        const int F = 256;
        float *gu2 = frand_vec((size_t)L * 2 * F, 6.0f), *h2 = malloc(sizeof(float) * L * F), *g2 = malloc(sizeof(float) * L * F);
        for (int t = 0; t < L; t++)
            for (int i = 0; i < F; i++) {
                float g = gu2[(size_t)t * 2 * F + i], u = gu2[(size_t)t * 2 * F + F + i];
                h2[(size_t)t * F + i] = g / (1.0f + expf(-g)) * u;
            }
        q8_block *qr = malloc(sizeof(q8_block) * L * (F / 32)), *qg = malloc(sizeof(q8_block) * L * (F / 32));
        float *dgu2 = dup(gu2, 4 * (size_t)L * 2 * F), *dh2 = dev(4 * (size_t)L * F);
        crk_q8 *dq = dev(sizeof(crk_q8) * L * (F / 32));
        poison(dq, sizeof(crk_q8) * L * (F / 32)); poison(dh2, 4 * (size_t)L * F);
        crk_swiglu(dgu2, L, F, dh2, NULL, dq, S0); CUDA_LAUNCHED();
        get(g2, dh2, 4 * (size_t)L * F); get(qg, dq, sizeof(crk_q8) * L * (F / 32));
        for (int t = 0; t < L; t++) quantize_q8(g2 + (size_t)t * F, qr + (size_t)t * (F / 32), F);
        int diff = 0;
        for (int b = 0; b < L * (F / 32); b++) diff += memcmp(&qr[b], &qg[b], sizeof(q8_block)) != 0;
        e = rel_err(g2, h2, (size_t)L * F, &bad);
        cudaFree(dgu2); cudaFree(dh2); cudaFree(dq); free(gu2); free(h2); free(g2); free(qr); free(qg);
        T_CHECKF(bad == 0 && e < 1e-6 && diff == 0, "swiglu with q8: rel err %.3g, %d q8 blocks differ", e, diff);
    }
    cudaFree(dgu); cudaFree(dh); free(gu); free(ref); free(got);
}

static void test_quantize_q8(void) {
    NEED_GPU();
    const int L = 3, n = 1024;
    float *x = frand_vec((size_t)L * n, 5.0f);
    for (int i = 0; i < 32; i++) x[64 + i] = 0.0f;           /* an all-zero block */
    x[200] = 127.0f * 0.5f; x[201] = -63.5f;                 /* halfway cases */
    q8_block *ref = malloc(sizeof(q8_block) * L * (n / 32)), *got = malloc(sizeof(q8_block) * L * (n / 32));
    for (int t = 0; t < L; t++) quantize_q8(x + (size_t)t * n, ref + (size_t)t * (n / 32), n);
    float *dx = dup(x, 4 * (size_t)L * n);
    crk_q8 *dq = dev(sizeof(crk_q8) * L * (n / 32));
    poison(dq, sizeof(crk_q8) * L * (n / 32));
    crk_quantize_q8(dx, L, n, dq, S0); CUDA_LAUNCHED();
    get(got, dq, sizeof(crk_q8) * L * (n / 32));
    int diff = 0;
    for (int b = 0; b < L * (n / 32); b++)
        if (memcmp(&ref[b], &got[b], sizeof(q8_block))) diff++;
    printf("     q8 blocks differing from quantize_q8: %d of %d\n", diff, L * (n / 32));
    T_CHECKF(diff == 0, "%d q8 blocks differ", diff);
    cudaFree(dx); cudaFree(dq); free(x); free(ref); free(got);
}

/* ---------------------------------------------------------------- weights */
static void test_dequant_embed_all_types(void) {
    NEED_GPU();
    const int rows = 7, cols = 512;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = ALL_TYPES[ti];
        size_t rb;
        uint8_t *w = make_rows(t, rows, cols, &rb);
        float *ref = malloc(sizeof(float) * rows * cols), *got = malloc(sizeof(float) * rows * cols);
        uint16_t *g16 = malloc(2 * (size_t)rows * cols);
        for (int r = 0; r < rows; r++) dequant_row(t, w + (size_t)r * rb, ref + (size_t)r * cols, cols);
        void *dw = dup(w, rb * rows);
        float *df = dev(4 * (size_t)rows * cols);
        uint16_t *d16 = dev(2 * (size_t)rows * cols);
        poison(df, 4 * (size_t)rows * cols); poison(d16, 2 * (size_t)rows * cols);
        crk_dequant(dw, t, rows, cols, rb, df, 0, S0); CUDA_LAUNCHED();
        crk_dequant(dw, t, rows, cols, rb, d16, 1, S0); CUDA_LAUNCHED();
        get(got, df, 4 * (size_t)rows * cols);
        get(g16, d16, 2 * (size_t)rows * cols);
        size_t bad;
        double e = rel_err(got, ref, (size_t)rows * cols, &bad);
        T_CHECKF(bad == 0 && e < 1e-6, "%s dequant f32: rel err %.3g, %zu non-finite", ggml_type_name(t), e, bad);
        for (size_t i = 0; i < (size_t)rows * cols; i++) got[i] = bf16_to_f32(g16[i]);
        e = rel_err(got, ref, (size_t)rows * cols, &bad);
        T_CHECKF(bad == 0 && e < 4e-3, "%s dequant bf16: rel err %.3g, %zu non-finite", ggml_type_name(t), e, bad);
        /* embedding rows 5, 0, 6, 5 */
        int32_t tok[4] = {5, 0, 6, 5};
        int32_t *dtok = dup(tok, sizeof tok);
        poison(df, 4 * (size_t)rows * cols);
        crk_embed(dw, t, rb, cols, dtok, 4, 0, rows, df, S0); CUDA_LAUNCHED();
        get(got, df, 4 * 4 * (size_t)cols);
        for (int k = 0; k < 4; k++) {
            e = rel_err(got + (size_t)k * cols, ref + (size_t)tok[k] * cols, (size_t)cols, &bad);
            T_CHECKF(bad == 0 && e < 1e-6, "%s embed row %d: rel err %.3g", ggml_type_name(t), tok[k], e);
        }
        /* a share of the vocabulary (tensor parallelism): the matrix from row 2 on holds
         * tokens 5..9: token 5 and 6 are rows 3 and 4 of it, token 0 is outside (zeros) */
        poison(df, 4 * (size_t)rows * cols);
        crk_embed((const uint8_t *)dw + 2 * rb, t, rb, cols, dtok, 4, 3, rows - 2, df, S0); CUDA_LAUNCHED();
        get(got, df, 4 * 4 * (size_t)cols);
        for (int k = 0; k < 4; k++) {
            if (tok[k] < 3) {
                int nz = 0;
                for (int i = 0; i < cols; i++) nz += got[(size_t)k * cols + i] != 0.0f;
                T_CHECKF(nz == 0, "%s embed share: token %d outside the share has %d non-zero values", ggml_type_name(t), tok[k], nz);
            } else {
                e = rel_err(got + (size_t)k * cols, ref + (size_t)(tok[k] - 1) * cols, (size_t)cols, &bad);
                T_CHECKF(bad == 0 && e < 1e-6, "%s embed share, token %d: rel err %.3g", ggml_type_name(t), tok[k], e);
            }
        }
        cudaFree(dw); cudaFree(df); cudaFree(d16); cudaFree(dtok);
        free(w); free(ref); free(got); free(g16);
    }
    printf("     dequant f32/bf16 and embedding rows of %zu types match dequant_row\n", N_TYPES);
}

static void test_matvec_all_types(void) {
    NEED_GPU();
    /* every type at 1024 columns (301 rows: the last row pair has one row); Q4_K also at 2048
     * and 4096 columns (the row-pair walking kernel with 16 and 32 lanes per pair; 8451
     * rows: more pairs than the 132 * 4 * 4 warps of an H200 grid take in one step) and at
     * 2304 (the one-pass kernel); Q6_K, Q8_0 and Q5_K at 4096 / 2048 (the row-walking kernel
     * with 4 / 2 blocks per lane; 9001 rows: more than one wave) and 2304 (one pass);
     * Q4_K at 14336 and 8192 columns (the staged kernel: 3.5 and 2 halves per lane); the float
     * types at 14336 / 2304 / 4352 columns (long rows, odd numbers of 256-column groups), and
     * 16-bit rows for matvec_h16: a block per row (F16 at 8192 columns) and 16 loads in flight
     * per lane (16411 rows of 2048 columns: the last block's warps partly past the rows) */
    enum { N_EXTRA = 16 };
    struct { uint32_t t; int rows, cols; } cs[N_TYPES + N_EXTRA];
    size_t nc = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) { cs[nc].t = ALL_TYPES[ti]; cs[nc].rows = 301; cs[nc].cols = 1024; nc++; }
    const struct { uint32_t t; int rows, cols; } extra[N_EXTRA] = {
        {GGML_TYPE_Q4_K, 301, 2048}, {GGML_TYPE_Q4_K, 8451, 4096}, {GGML_TYPE_Q4_K, 301, 2304}, {GGML_TYPE_Q6_K, 9001, 4096},
        {GGML_TYPE_Q8_0, 301, 4096}, {GGML_TYPE_Q5_K, 301, 2048}, {GGML_TYPE_Q6_K, 301, 2304}, {GGML_TYPE_Q4_0, 301, 2048},
        {GGML_TYPE_Q4_K, 777, 14336}, {GGML_TYPE_Q4_K, 301, 8192}, {GGML_TYPE_BF16, 301, 14336}, {GGML_TYPE_F32, 301, 2304},
        {GGML_TYPE_F16, 301, 4352}, {GGML_TYPE_BF16, 4097, 4096}, {GGML_TYPE_F16, 301, 8192}, {GGML_TYPE_BF16, 16411, 2048},
    };
    for (int i = 0; i < N_EXTRA; i++) { cs[nc].t = extra[i].t; cs[nc].rows = extra[i].rows; cs[nc].cols = extra[i].cols; nc++; }
    double worst = 0;
    for (size_t ci = 0; ci < nc; ci++) {
        const uint32_t t = cs[ci].t;
        const int rows = cs[ci].rows, cols = cs[ci].cols;
        size_t rb;
        uint8_t *w = make_rows(t, rows, cols, &rb);
        float *x = frand_vec((size_t)cols, 2.0f), *ref = malloc(sizeof(float) * rows), *got = malloc(sizeof(float) * rows);
        float *y0 = frand_vec((size_t)rows, 1.0f);
        q8_block *xq = malloc(sizeof(q8_block) * (cols / 32));
        quantize_q8(x, xq, cols);
        for (int r = 0; r < rows; r++)
            ref[r] = quant_uses_q8(t) ? vec_dot_q(t, w + (size_t)r * rb, xq, cols) : vec_dot_f(t, w + (size_t)r * rb, x, cols);
        void *dw = dup(w, rb * rows);
        float *dx = dup(x, 4 * (size_t)cols), *dy = dev(4 * (size_t)rows);
        crk_q8 *dq = dev(sizeof(crk_q8) * (cols / 32));
        crk_quantize_q8(dx, 1, cols, dq, S0); CUDA_LAUNCHED();
        poison(dy, 4 * (size_t)rows);
        crk_matvec(dw, t, rows, cols, rb, dx, dq, dy, 0, S0); CUDA_LAUNCHED();
        get(got, dy, 4 * (size_t)rows);
        size_t bad;
        double e = rel_err(got, ref, (size_t)rows, &bad);
        T_CHECKF(bad == 0 && e < 2e-6, "%s matvec %dx%d: rel err %.3g, %zu non-finite", ggml_type_name(t), rows, cols, e, bad);
        if (e > worst) worst = e;
        /* accumulate mode */
        CUDA_CHECK(cudaMemcpy(dy, y0, 4 * (size_t)rows, cudaMemcpyHostToDevice));
        crk_matvec(dw, t, rows, cols, rb, dx, dq, dy, 1, S0); CUDA_LAUNCHED();
        get(got, dy, 4 * (size_t)rows);
        for (int r = 0; r < rows; r++) ref[r] += y0[r];
        e = rel_err(got, ref, (size_t)rows, &bad);
        T_CHECKF(bad == 0 && e < 2e-6, "%s matvec accumulate: rel err %.3g", ggml_type_name(t), e);
        cudaFree(dw); cudaFree(dx); cudaFree(dy); cudaFree(dq);
        free(w); free(x); free(ref); free(got); free(xq); free(y0);
    }
    printf("     matvec of %zu types at 1024 columns and %d more shapes (2048 to 14336 columns) vs vec_dot_q/vec_dot_f: worst rel err %.2e\n", N_TYPES, (int)N_EXTRA, worst);
}

/* crk_matvec_glu (decode's gate|up with SwiGLU in the epilogue) against vec_dot_f and the
 * CPU's silu, and below 8192 columns bit for bit against crk_matvec + crk_swiglu; the ffn sizes
 * leave the last block's warps partly past the rows */
static void test_matvec_glu(void) {
    NEED_GPU();
    const struct { uint32_t t; int ffn, cols; } cs[] = {
        {GGML_TYPE_BF16, 1001, 4096}, {GGML_TYPE_F16, 514, 2048}, {GGML_TYPE_BF16, 300, 8192}, {GGML_TYPE_BF16, 37, 256},
    };
    double worst = 0;
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const uint32_t t = cs[ci].t;
        const int ffn = cs[ci].ffn, cols = cs[ci].cols;
        size_t rb;
        uint8_t *w = make_rows(t, 2 * ffn, cols, &rb);
        float *x = frand_vec((size_t)cols, 2.0f), *ref = malloc(sizeof(float) * ffn), *got = malloc(sizeof(float) * ffn), *two = malloc(sizeof(float) * ffn);
        for (int i = 0; i < ffn; i++) {
            const float g = vec_dot_f(t, w + (size_t)i * rb, x, cols), u = vec_dot_f(t, w + (size_t)(ffn + i) * rb, x, cols);
            ref[i] = g / (1.0f + expf(-g)) * u;
        }
        void *dw = dup(w, rb * 2 * ffn);
        float *dx = dup(x, 4 * (size_t)cols), *dh = dev(4 * (size_t)ffn), *dgu = dev(8 * (size_t)ffn), *dh2 = dev(4 * (size_t)ffn);
        poison(dh, 4 * (size_t)ffn);
        T_CHECK(crk_matvec_glu(dw, t, ffn, cols, rb, dx, dh, S0) == 0);
        CUDA_LAUNCHED();
        crk_matvec(dw, t, 2 * (int64_t)ffn, cols, rb, dx, NULL, dgu, 0, S0); CUDA_LAUNCHED();
        crk_swiglu(dgu, 1, ffn, dh2, NULL, NULL, S0); CUDA_LAUNCHED();
        get(got, dh, 4 * (size_t)ffn);
        get(two, dh2, 4 * (size_t)ffn);
        size_t bad;
        const double e = rel_err(got, ref, (size_t)ffn, &bad);
        T_CHECKF(bad == 0 && e < 4e-6, "%s glu %dx%d: rel err %.3g, %zu non-finite", ggml_type_name(t), ffn, cols, e, bad);
        if (cols < 8192) T_CHECKF(!memcmp(got, two, sizeof(float) * ffn), "%s glu %dx%d: not the bits of crk_matvec + crk_swiglu", ggml_type_name(t), ffn, cols);
        if (e > worst) worst = e;
        cudaFree(dw); cudaFree(dx); cudaFree(dh); cudaFree(dgu); cudaFree(dh2);
        free(w); free(x); free(ref); free(got); free(two);
    }
    /* other types and shapes launch nothing */
    T_CHECK(crk_matvec_glu(NULL, GGML_TYPE_Q4_K, 64, 4096, 2304, NULL, NULL, S0) == -1);
    T_CHECK(crk_matvec_glu(NULL, GGML_TYPE_BF16, 64, 4000, 8000, NULL, NULL, S0) == -1);
    printf("     gate|up with SwiGLU in the epilogue (%zu shapes) vs vec_dot_f + silu: worst rel err %.2e; below 8192 columns the bits of matvec + swiglu\n",
           sizeof cs / sizeof cs[0], worst);
}

static void test_gemm_bf16_vs_cpu_matmul(void) {
    NEED_GPU();
    const int M = 384, K = 512, T = 37;
    const uint32_t types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q8_0, GGML_TYPE_F16};
    threadpool *tp = tp_create(4);
    cublasHandle_t cb;
    CUBLAS_CHECK(cublasCreate(&cb));
    double worst = 0;
    for (int ti = 0; ti < 3; ti++) {
        uint32_t t = types[ti];
        size_t rb;
        uint8_t *w = make_rows(t, M, K, &rb);
        wmat W = {.data = w, .type = t, .rows = M, .cols = K, .row_bytes = rb};
        float *x = frand_vec((size_t)T * K, 1.0f), *ref = malloc(sizeof(float) * T * M), *got = malloc(sizeof(float) * T * M);
        q8_block *xq = malloc(sizeof(q8_block) * T * (K / 32));
        matmul(tp, &W, x, T, ref, xq);
        void *dw = dup(w, rb * M);
        uint16_t *dwb = dev(2 * (size_t)M * K), *dx16 = dev(2 * (size_t)T * K);
        float *dx = dup(x, 4 * (size_t)T * K), *dy = dev(4 * (size_t)T * M);
        crk_dequant(dw, t, M, K, rb, dwb, 1, S0); CUDA_LAUNCHED();
        crk_f32_to_bf16(dx, dx16, (size_t)T * K, S0); CUDA_LAUNCHED();
        CUDA_CHECK(cudaDeviceSynchronize());
        poison(dy, 4 * (size_t)T * M);
        const float one = 1.0f, zero = 0.0f;
        CUBLAS_CHECK(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, M, T, K, &one, dwb, CUDA_R_16BF, K, dx16, CUDA_R_16BF, K, &zero, dy,
                                  CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        get(got, dy, 4 * (size_t)T * M);
        size_t bad;
        double e = rel_err(got, ref, (size_t)T * M, &bad);
        T_CHECKF(bad == 0 && e < 1.5e-2, "%s GEMM bf16: rel err %.3g, %zu non-finite", ggml_type_name(t), e, bad);
        if (e > worst) worst = e;
        cudaFree(dw); cudaFree(dwb); cudaFree(dx16); cudaFree(dx); cudaFree(dy);
        free(w); free(x); free(ref); free(got); free(xq);
    }
    cublasDestroy(cb);
    tp_destroy(tp);
    printf("     bf16 GEMM (cuBLAS, fp32 accumulate) vs CPU matmul: worst rel err %.2e\n", worst);
}

/* ---------------------------------------------------------------- rope table, q/k/v */
static float *rope_table(int64_t npos, int pairs, float base, int rope_dim) {
    float *cs = malloc(sizeof(float) * (size_t)npos * pairs * 2);
    for (int64_t p = 0; p < npos; p++)
        for (int i = 0; i < pairs; i++) {
            float inv = (float)pow((double)base, -2.0 * i / rope_dim);
            float th = (float)p * inv;
            cs[((size_t)p * pairs + i) * 2] = cosf(th);
            cs[((size_t)p * pairs + i) * 2 + 1] = sinf(th);
        }
    return cs;
}

static void test_qkv_post(void) {
    NEED_GPU();
    for (int c = 0; c < 4; c++) {
        const int neox = c & 1, L = c < 2 ? 9 : 1, nh = 8, nkv = 2, hd = 64, rope_dim = neox ? 32 : 64, pairs = rope_dim / 2;
        const int qd = nh * hd, kvd = nkv * hd, ld = qd + 2 * kvd;
        const int64_t p0 = 37;
        float *qkv = frand_vec((size_t)L * ld, 2.0f), *bq = frand_vec((size_t)qd, 0.5f), *bk = frand_vec((size_t)kvd, 0.5f), *bv = frand_vec((size_t)kvd, 0.5f);
        float *cs = rope_table(p0 + L + 1, pairs, 10000.0f, rope_dim);
        float *refq = malloc(sizeof(float) * L * qd);
        uint16_t *refk = malloc(2 * (size_t)L * kvd), *refv = malloc(2 * (size_t)L * kvd);
        for (int t = 0; t < L; t++) {
            for (int i = 0; i < qd; i++) refq[(size_t)t * qd + i] = qkv[(size_t)t * ld + i] + bq[i];
            for (int i = 0; i < kvd; i++) {
                refk[(size_t)t * kvd + i] = f32_to_f16(qkv[(size_t)t * ld + qd + i] + bk[i]);
                refv[(size_t)t * kvd + i] = f32_to_f16(qkv[(size_t)t * ld + qd + kvd + i] + bv[i]);
            }
            for (int h = 0; h < nh; h++) rope_rotate(refq + (size_t)t * qd + (size_t)h * hd, cs + (size_t)(p0 + t) * pairs * 2, pairs, neox);
        }
        crk_step st;
        memset(&st, 0, sizeof st);
        st.p0 = p0;
        crk_step *dst = dup(&st, sizeof st);
        float *dqkv = dup(qkv, 4 * (size_t)L * ld), *dbq = dup(bq, 4 * (size_t)qd), *dbk = dup(bk, 4 * (size_t)kvd), *dbv = dup(bv, 4 * (size_t)kvd);
        float *dcs = dup(cs, sizeof(float) * (size_t)(p0 + L + 1) * pairs * 2);
        uint16_t *dk = dev(2 * (size_t)L * kvd), *dv = dev(2 * (size_t)L * kvd), *dq16 = dev(2 * (size_t)L * qd);
        poison(dk, 2 * (size_t)L * kvd); poison(dv, 2 * (size_t)L * kvd); poison(dq16, 2 * (size_t)L * qd);
        crk_qkv_args a = {.qkv = dqkv, .ld = ld, .bq = dbq, .bk = dbk, .bv = dbv, .L = L, .n_head = nh, .n_kv = nkv, .hd = hd,
                          .rope_pairs = pairs, .neox = neox, .rope_cs = dcs, .st = dst, .k16 = dk, .v16 = dv, .q16 = dq16};
        crk_qkv_post(&a, S0); CUDA_LAUNCHED();
        float *got = malloc(sizeof(float) * L * ld);
        uint16_t *gk = malloc(2 * (size_t)L * kvd), *gv = malloc(2 * (size_t)L * kvd), *gq16 = malloc(2 * (size_t)L * qd);
        get(got, dqkv, 4 * (size_t)L * ld); get(gk, dk, 2 * (size_t)L * kvd); get(gv, dv, 2 * (size_t)L * kvd); get(gq16, dq16, 2 * (size_t)L * qd);
        float *gq = malloc(sizeof(float) * L * qd);
        for (int t = 0; t < L; t++) memcpy(gq + (size_t)t * qd, got + (size_t)t * ld, 4 * (size_t)qd);
        size_t bad;
        double e = rel_err(gq, refq, (size_t)L * qd, &bad);
        T_CHECKF(bad == 0 && e < 1e-6, "neox %d: q rel err %.3g", neox, e);
        T_CHECKF(!memcmp(gk, refk, 2 * (size_t)L * kvd) && !memcmp(gv, refv, 2 * (size_t)L * kvd), "neox %d: fp16 k/v differ", neox);
        for (size_t i = 0; i < (size_t)L * qd; i++) gq[i] = f16_to_f32(gq16[i]);
        e = rel_err(gq, refq, (size_t)L * qd, &bad);
        T_CHECKF(bad == 0 && e < 1e-3, "neox %d: q16 rel err %.3g", neox, e);
        cudaFree(dst); cudaFree(dqkv); cudaFree(dbq); cudaFree(dbk); cudaFree(dbv); cudaFree(dcs); cudaFree(dk); cudaFree(dv); cudaFree(dq16);
        free(qkv); free(bq); free(bk); free(bv); free(cs); free(refq); free(refk); free(refv); free(got); free(gk); free(gv); free(gq16); free(gq);
    }
    printf("     q/k/v biases, fp16 k/v (bit-exact) and RoPE of q (neox and adjacent pairs) match\n");
}

/* step fields from a control state (as cuda_forward fills them) */
static void fill_step(crk_step *st, const cascade_ctrl *c, int L, int64_t t0) {
    memset(st, 0, sizeof *st);
    st->p0 = cascade_query_pos(c); st->t0 = t0; st->L = L; st->n_sinks = c->n_sinks; st->nv = cascade_total_stored(c);
    st->S = c->cfg.S; st->N = c->cfg.N; st->C = c->cfg.C; st->W = c->W;
    st->decay = cascade_ema_decay(c->cfg.beta, L);
    int above = 0;
    for (int i = c->cfg.C - 1; i >= 0; i--) { st->stored[i] = c->stored[i]; st->start[i] = c->start[i]; st->above[i] = above; above += c->stored[i]; }
}

static void test_slot_positions(void) {
    NEED_GPU();
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = 3; cfg.N = 96; cfg.C = 4;
    for (int eager = 0; eager < 2; eager++) {
        cfg.eager_fill = eager;
        cascade_ctrl c; char err[200];
        T_CHECK(cascade_ctrl_init(&c, &cfg, err, sizeof err) == 0);
        cascade_plan p; memset(&p, 0, sizeof p);
        int32_t ref[96], got[96];
        int32_t *dpos = dev(sizeof got);
        crk_step *dst = dev(sizeof(crk_step));
        for (int it = 0; it < 60; it++) {
            crk_step st; fill_step(&st, &c, 1, c.seen);
            CUDA_CHECK(cudaMemcpy(dst, &st, sizeof st, cudaMemcpyHostToDevice));
            cascade_positions(&c, ref);
            poison(dpos, sizeof got);
            crk_slot_pos(dst, cfg.N, dpos, S0); CUDA_LAUNCHED();
            get(got, dpos, sizeof got);
            T_CHECKF(!memcmp(ref, got, sizeof ref), "positions differ after %lld tokens (eager %d)", (long long)c.seen, eager);
            T_CHECK(cascade_plan_chunk(&c, 1 + irand(40), &p, err, sizeof err) == 0);
        }
        cascade_plan_free(&p); cudaFree(dpos); cudaFree(dst);
    }
}

/* crk_step_list against cascade_step_list: a small cache, and one of 2500+ steps (several
 * rounds of the block), with caps that cut the list and chunk lengths 1 and 21 */
static void test_step_list(void) {
    NEED_GPU();
    const struct { int S, N, C, eager, maxc; } cf[] = { { 3, 96, 4, 1, 40 }, { 5, 40000, 4, 0, 3000 }, { 64, 16384, 4, 1, 300 } };
    const int caps[] = { 4, CRK_DEC_LIST_CAP, 4096 };
    int checked = 0, longest = 0;
    int32_t *ref = malloc(4 * 4097), *got = malloc(4 * 4097);
    int32_t *dl = dev(4 * 4097);
    crk_step *dst = dev(sizeof(crk_step));
    for (size_t ci = 0; ci < sizeof cf / sizeof cf[0]; ci++) {
        cascade_cfg cfg; cascade_cfg_default(&cfg);
        cfg.S = cf[ci].S; cfg.N = cf[ci].N; cfg.C = cf[ci].C; cfg.eager_fill = cf[ci].eager;
        cascade_ctrl c; char err[200];
        T_CHECK(cascade_ctrl_init(&c, &cfg, err, sizeof err) == 0);
        cascade_plan p; memset(&p, 0, sizeof p);
        for (int it = 0; it < 40; it++) {
            for (int L = 1; L <= 21; L += 20)
                for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
                    const int cap = caps[k];
                    crk_step st; fill_step(&st, &c, L, c.seen);
                    CUDA_CHECK(cudaMemcpy(dst, &st, sizeof st, cudaMemcpyHostToDevice));
                    const int n = cascade_step_list(&c, L, ref, cap);
                    poison(dl, 4 * 4097);
                    crk_step_list(dst, dl, cap, S0); CUDA_LAUNCHED();
                    get(got, dl, 4 * (1 + (size_t)cap));
                    T_CHECKF(got[0] == n && !memcmp(ref, got + 1, 4 * (size_t)cap), "config %zu, %lld tokens, L %d, cap %d: count %d against %d",
                             ci, (long long)c.seen, L, cap, got[0], n);
                    if (n > longest) longest = n;
                    checked++;
                }
            T_CHECK(cascade_plan_chunk(&c, 1 + irand(cf[ci].maxc), &p, err, sizeof err) == 0);
        }
        cascade_plan_free(&p);
    }
    printf("     %d step lists equal cascade_step_list's (up to %d steps)\n", checked, longest);
    free(ref); free(got); cudaFree(dl); cudaFree(dst);
}

/* ---------------------------------------------------------------- attention */
typedef struct {
    int S, N, C, L, nh, nkv, hd, rope_dim, neox;
    int64_t before;   /* tokens already in the cache */
} attn_case;

static uint16_t hrand(float scale) { return f32_to_f16(scale * frand()); }

static int g_dec_cs16;        /* decode cases also get the fp16 cos/sin table (the register-direct kernel) */
static int g_dec_kind_runs[3]; /* decode cases run per crk_attn_decode_kind */
static int g_dec_skip;         /* decode cases set crk_attn.skip_empty (the register-direct kernel's variant) */

/* One attention case through the CPU twin and the GPU (mode: CRK_ATTN_*; decode: use
 * crk_attn_decode). Returns 0 on pass; errors in *eo, *er. */
static int run_attn_case(const attn_case *ac, int mode, int decode, double *eo, double *er, size_t *nbad, char *msg, size_t msgn) {
    const int S = ac->S, N = ac->N, L = ac->L, nh = ac->nh, nkv = ac->nkv, hd = ac->hd, n_rep = nh / nkv;
    const int pairs = ac->rope_dim / 2, qd = nh * hd, kvd = nkv * hd;
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = S; cfg.N = N; cfg.C = ac->C; cfg.beta = 0.97;
    cascade_ctrl c; char err[200];
    if (cascade_ctrl_init(&c, &cfg, err, sizeof err)) { snprintf(msg, msgn, "%s", err); return -1; }
    cascade_plan p; memset(&p, 0, sizeof p);
    for (int64_t done = 0; done < ac->before;) {
        int k = (int)(ac->before - done > 97 ? 97 : ac->before - done);
        if (cascade_plan_chunk(&c, k, &p, err, sizeof err)) { snprintf(msg, msgn, "%s", err); return -1; }
        done += k;
    }
    cascade_plan_free(&p);
    /* cache contents: valid slots random, empty slots NaN (must never be read) */
    int32_t *slot_pos = malloc(sizeof(int32_t) * N), *vslots = malloc(sizeof(int32_t) * N);
    int nv = cascade_positions(&c, slot_pos), k = 0;
    for (int i = 0; i < N; i++) if (slot_pos[i] >= 0) vslots[k++] = i;
    cascade_head *heads = calloc((size_t)nkv, sizeof *heads);
    uint16_t *sk = malloc(2 * (size_t)nkv * (S ? S : 1) * hd), *sv = malloc(2 * (size_t)nkv * (S ? S : 1) * hd);
    uint16_t *ck = malloc(2 * (size_t)nkv * N * hd), *cv = malloc(2 * (size_t)nkv * N * hd);
    for (int h = 0; h < nkv; h++) {
        cascade_head_alloc(&heads[h], &c, hd, err, sizeof err);
        for (int j = 0; j < S * hd; j++) {
            int valid = j / hd < c.n_sinks;
            heads[h].sink_k[j] = valid ? hrand(1.0f) : 0x7E00;
            heads[h].sink_v[j] = valid ? hrand(1.0f) : 0x7E00;
        }
        for (int j = 0; j < N * hd; j++) {
            int valid = slot_pos[j / hd] >= 0;
            heads[h].k[j] = valid ? hrand(1.0f) : 0x7E00;
            heads[h].v[j] = valid ? hrand(1.0f) : 0x7E00;
        }
        memcpy(sk + (size_t)h * S * hd, heads[h].sink_k, 2 * (size_t)S * hd);
        memcpy(sv + (size_t)h * S * hd, heads[h].sink_v, 2 * (size_t)S * hd);
        memcpy(ck + (size_t)h * N * hd, heads[h].k, 2 * (size_t)N * hd);
        memcpy(cv + (size_t)h * N * hd, heads[h].v, 2 * (size_t)N * hd);
    }
    const int64_t p0 = cascade_query_pos(&c);
    const int64_t npos = (int64_t)S + N + L + 1;
    float *cs = rope_table(npos, pairs, 10000.0f, ac->rope_dim);
    float *q = frand_vec((size_t)L * qd, 3.0f);
    uint16_t *q16 = malloc(2 * (size_t)L * qd), *kc = malloc(2 * (size_t)L * kvd), *vc = malloc(2 * (size_t)L * kvd);
    for (size_t i = 0; i < (size_t)L * qd; i++) q16[i] = f32_to_f16(q[i]);
    for (size_t i = 0; i < (size_t)L * kvd; i++) { kc[i] = hrand(1.0f); vc[i] = hrand(1.0f); }
    float *w = malloc(sizeof(float) * L);
    cascade_ema_weights(cfg.beta, L, w);
    /* CPU */
    const int nk_cpu = c.n_sinks + nv + L;
    float *out_ref = malloc(sizeof(float) * L * qd), *r_cpu = malloc(sizeof(float) * nkv * nk_cpu);
    float *scratch = malloc(sizeof(float) * attn_scratch_floats(S, N, L, hd, n_rep));
    for (int h = 0; h < nkv; h++) {
        attn_args a = {.L = L, .n_rep = n_rep, .hd = hd, .rope_pairs = pairs, .neox = ac->neox, .rope_cs = cs, .h = &heads[h],
                       .n_sinks = c.n_sinks, .nv = nv, .vslots = vslots, .slot_pos = slot_pos,
                       .q = q + (size_t)h * n_rep * hd, .q_stride = (size_t)qd,
                       .kc = kc + (size_t)h * hd, .vc = vc + (size_t)h * hd, .kv_stride = (size_t)kvd,
                       .p0 = p0, .w = w, .out = out_ref + (size_t)h * n_rep * hd, .out_stride = (size_t)qd,
                       .r = r_cpu + (size_t)h * nk_cpu, .scratch = scratch};
        attn_chunk_cpu(&a);
    }
    /* GPU */
    crk_step st; fill_step(&st, &c, L, c.seen);
    const size_t rstr = (size_t)S + N + L;
    crk_step *dst = dup(&st, sizeof st);
    float *dcs = dup(cs, sizeof(float) * (size_t)npos * pairs * 2);
    int32_t *dpos = dup(slot_pos, sizeof(int32_t) * N);
    uint16_t *dsk = dup(sk, 2 * (size_t)nkv * S * hd), *dsv = dup(sv, 2 * (size_t)nkv * S * hd);
    uint16_t *dck = dup(ck, 2 * (size_t)nkv * N * hd), *dcv = dup(cv, 2 * (size_t)nkv * N * hd);
    float *dq = dup(q, 4 * (size_t)L * qd), *dw = dup(w, 4 * (size_t)L);
    uint16_t *dq16 = dup(q16, 2 * (size_t)L * qd), *dkc = dup(kc, 2 * (size_t)L * kvd), *dvc = dup(vc, 2 * (size_t)L * kvd);
    float *dout = dev(4 * (size_t)L * qd), *dr = dev(4 * (size_t)nkv * rstr);
    uint16_t *dout16 = dev(2 * (size_t)L * qd);
    /* the work buffer, then 64 KB of canary: no kernel may write past crk_attn_work_floats */
    const size_t wf = crk_attn_work_floats(S, N, L, nh, hd), ncan = 16384;
    float *dwork = dev(4 * (wf + ncan));
    CUDA_CHECK(cudaMemset(dwork + wf, 0x5A, 4 * ncan));
    const int kv_rows = S + N + L + 64;
    uint16_t *dkb = dev(2 * (size_t)nkv * kv_rows * hd), *dvb = dev(2 * (size_t)nkv * kv_rows * hd);
    int32_t *dkdst = dev(4 * (size_t)kv_rows);
    poison(dkb, 2 * (size_t)nkv * kv_rows * hd); poison(dvb, 2 * (size_t)nkv * kv_rows * hd);   /* NaN: rows past the keys must never count */
    poison(dout, 4 * (size_t)L * qd); poison(dr, 4 * (size_t)nkv * rstr); poison(dout16, 2 * (size_t)L * qd);
    crk_attn a = {.L = L, .n_head = nh, .n_kv = nkv, .hd = hd, .rope_pairs = pairs, .neox = ac->neox, .S = S, .N = N, .st = dst,
                  .rope_cs = dcs, .slot_pos = dpos, .sink_k = dsk, .sink_v = dsv, .ck = dck, .cv = dcv,
                  .q = dq, .q_stride = (size_t)qd, .q16 = dq16, .kc = dkc, .vc = dvc, .kv_stride = (size_t)kvd, .w = dw,
                  .out = dout, .out16 = dout16, .out_stride = (size_t)qd, .r = dr, .r_stride = rstr, .work = dwork, .mode = mode,
                  .kbuf = dkb, .vbuf = dvb, .kdst = dkdst, .kv_rows = kv_rows, .skip_empty = decode ? g_dec_skip : 0};
    uint32_t *dcs16 = NULL;
    if (decode && g_dec_cs16) {
        dcs16 = dev(4 * (size_t)npos * pairs);
        crk_rope_cs16(dcs, (size_t)npos * pairs, dcs16, S0);
        a.rope_cs16 = dcs16;
    }
    int32_t *dsteps = NULL;
    if (decode && g_dec_skip == 3) {   /* the step list from the GPU kernel (its own test: test_step_list) */
        if (cascade_step_list(&c, L, NULL, 0) > CRK_DEC_LIST_CAP) { snprintf(msg, msgn, "step list longer than CRK_DEC_LIST_CAP"); return -1; }
        dsteps = dev(4 * (1 + CRK_DEC_LIST_CAP));
        crk_step_list(dst, dsteps, CRK_DEC_LIST_CAP, S0);
        a.steps = dsteps;
    }
    if (decode) { g_dec_kind_runs[crk_attn_decode_kind(&a)]++; crk_attn_decode(&a, S0); }
    else crk_attn_chunk(&a, S0);
    CUDA_LAUNCHED();
    float *out = malloc(sizeof(float) * L * qd), *rg = malloc(sizeof(float) * nkv * rstr), *r_map = malloc(sizeof(float) * nkv * nk_cpu);
    uint16_t *out16 = malloc(2 * (size_t)L * qd);
    get(out, dout, 4 * (size_t)L * qd); get(rg, dr, 4 * (size_t)nkv * rstr); get(out16, dout16, 2 * (size_t)L * qd);
    /* map the GPU's [S | N | L] columns onto the CPU's compact [n_sinks | nv | L]; others must be 0 */
    int rc = 0;
    size_t zero_bad = 0;
    {
        unsigned char *can = malloc(4 * ncan);
        get(can, dwork + wf, 4 * ncan);
        size_t hit = 0;
        for (size_t i = 0; i < 4 * ncan; i++) hit += can[i] != 0x5A;
        free(can);
        if (hit) { snprintf(msg, msgn, "%zu bytes written past the work buffer", hit); rc = -1; }
    }
    for (int h = 0; h < nkv; h++) {
        const float *rr = rg + (size_t)h * rstr;
        float *m = r_map + (size_t)h * nk_cpu;
        for (int j = 0; j < c.n_sinks; j++) m[j] = rr[j];
        for (int i = 0; i < nv; i++) m[c.n_sinks + i] = rr[S + vslots[i]];
        for (int j = 0; j < L; j++) m[c.n_sinks + nv + j] = rr[S + N + j];
        if (mode == CRK_ATTN_FAST) continue;   /* the fast path leaves empty keys' columns alone (never read) */
        /* the listed variant (register-direct kernel) may leave them alone too: untouched poison */
        const int untouched_ok = decode && g_dec_skip == 3 && crk_attn_decode_kind(&a) == 0;
        for (int j = c.n_sinks; j < S; j++) if (rr[j] != 0.0f && !(untouched_ok && is_poison(&rr[j]))) zero_bad++;
        for (int s = 0; s < N; s++) if (slot_pos[s] < 0 && rr[S + s] != 0.0f && !(untouched_ok && is_poison(&rr[S + s]))) zero_bad++;
    }
    size_t b1, b2;
    *eo = rel_err(out, out_ref, (size_t)L * qd, &b1);
    *er = rel_err(r_map, r_cpu, (size_t)nkv * nk_cpu, &b2);
    *nbad = b1 + b2 + zero_bad;
    if (*nbad) { snprintf(msg, msgn, "%zu non-finite outputs, %zu non-finite r, %zu empty keys with r != 0", b1, b2, zero_bad); rc = -1; }
    if (!decode && mode != CRK_ATTN_FAST) {   /* the bf16 copy agrees with the f32 output */
        for (size_t i = 0; i < (size_t)L * qd; i++) out[i] = bf16_to_f32(out16[i]);
        size_t b3;
        double e16 = rel_err(out, out_ref, (size_t)L * qd, &b3);
        if (b3 || e16 > 5e-3) { snprintf(msg, msgn, "bf16 output rel err %.3g, %zu non-finite", e16, b3); rc = -1; }
    }
    for (int h = 0; h < nkv; h++) cascade_head_free(&heads[h]);
    free(heads); free(sk); free(sv); free(ck); free(cv); free(slot_pos); free(vslots); free(cs); free(q); free(q16); free(kc); free(vc); free(w);
    free(out_ref); free(r_cpu); free(scratch); free(out); free(rg); free(r_map); free(out16);
    void *dd[] = {dst, dcs, dpos, dsk, dsv, dck, dcv, dq, dw, dq16, dkc, dvc, dout, dr, dout16, dwork, dkb, dvb, dkdst, dcs16, dsteps};
    for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++) cudaFree(dd[i]);
    return rc;
}

/* Every case through run_attn_case; out and score-column errors below tol. */
static void run_attn_cases(const attn_case *cases, size_t n, int mode, int decode, double tol, const char *what) {
    double wo = 0, wr = 0;
    for (size_t i = 0; i < n; i++) {
        double eo, er; size_t bad; char msg[200] = "";
        int rc = run_attn_case(&cases[i], mode, decode, &eo, &er, &bad, msg, sizeof msg);
        T_CHECKF(rc == 0, "case %zu: %s", i, msg);
        T_CHECKF(eo < tol && er < tol, "case %zu (hd %d, L %d): out rel err %.3g, r rel err %.3g", i, cases[i].hd, cases[i].L, eo, er);
        if (eo > wo) wo = eo;
        if (er > wr) wr = er;
    }
    printf("     %s vs attn_chunk_cpu (%zu shapes): out rel err %.2e, score columns %.2e\n", what, n, wo, wr);
}

static void test_attn_chunk_precise(void) {
    NEED_GPU();
    const attn_case cases[] = {
        {4, 64, 4, 37, 8, 4, 8, 8, 0, 0},          /* stories260K shape, empty cache */
        {4, 64, 4, 37, 8, 4, 8, 8, 0, 30},         /* cache filling */
        {4, 64, 4, 64, 8, 4, 8, 8, 0, 5000},       /* full cascade */
        {4, 256, 4, 64, 8, 4, 16, 16, 0, 3000},    /* TinyStories-656K shape */
        {2, 60, 3, 20, 6, 2, 32, 16, 1, 500},      /* neox, partial rotary, N not a tile multiple */
        {64, 256, 4, 100, 8, 2, 128, 128, 0, 900}, /* Llama head dim */
        {8, 128, 2, 33, 4, 1, 256, 256, 1, 400},   /* head dim 256 */
        {0, 32, 1, 17, 4, 2, 64, 64, 0, 100},      /* no sinks (S = 0) */
    };
    run_attn_cases(cases, sizeof cases / sizeof cases[0], CRK_ATTN_PRECISE, 0, 2e-5, "fp32 chunk attention");
}

static void test_attn_chunk_fast(void) {
    NEED_GPU();
    const attn_case cases[] = {
        {64, 256, 4, 100, 8, 2, 128, 128, 0, 900},
        {64, 256, 4, 130, 32, 8, 128, 128, 0, 200},
        {4, 192, 4, 64, 8, 4, 64, 64, 1, 3000},
        {16, 100, 2, 70, 4, 4, 64, 32, 1, 40},     /* partial rotary, cache filling */
        {0, 64, 1, 1, 8, 2, 128, 128, 0, 10},      /* a single query */
        {64, 2048, 4, 700, 16, 4, 128, 128, 0, 5000}, /* many key tiles, query blocks past L */
        {4, 1024, 4, 300, 8, 2, 64, 64, 1, 3000},
    };
    /* both kernel families where this GPU has the warpgroup-MMA one (compute capability 9.0) */
    const int n = (int)(sizeof cases / sizeof cases[0]);
    if (crk_attn_wg_ok(128)) {
        run_attn_cases(cases, n, CRK_ATTN_FAST, 0, 1e-2, "tensor-core chunk attention, both passes warp-specialized (TMA, default)");
        crk_attn_set_impl(CRK_ATTN_IMPL_WG_WS);
        const int wsv = crk_attn_set_ws_variant(1);
        run_attn_cases(cases, n, CRK_ATTN_FAST, 0, 1e-2, "tensor-core chunk attention, pass 1 warp-specialized with ping-pong, pass 2 wgmma");
        crk_attn_set_ws_variant(wsv);
        crk_attn_set_impl(CRK_ATTN_IMPL_WG);
        run_attn_cases(cases, n, CRK_ATTN_FAST, 0, 1e-2, "tensor-core chunk attention, both passes wgmma, not specialized");
        crk_attn_set_impl(CRK_ATTN_IMPL_MMA);
        run_attn_cases(cases, n, CRK_ATTN_FAST, 0, 1e-2, "tensor-core chunk attention, both passes mma.sync");
        crk_attn_set_impl(CRK_ATTN_IMPL_AUTO);
    } else {
        printf("     (no wgmma on this GPU: mma.sync kernels only)\n");
        run_attn_cases(cases, n, CRK_ATTN_FAST, 0, 1e-2, "tensor-core chunk attention, mma.sync (fp16 operands)");
    }
}

/* The mma.sync pass 2 (the default where wgmma is not available) runs 3 blocks per SM at head
 * dim 128 (its shared memory's limit; 2 at 64, where registers limit it). Small source changes
 * have made ptxas take 121 registers instead of 80, 2 blocks per SM, and pass 2 4.1 instead of
 * 2.7 ms on the H200: this catches that. */
static void test_attn_p2_occupancy(void) {
    NEED_GPU();
    const int n64 = crk_attn_p2_blocks_per_sm(64), n128 = crk_attn_p2_blocks_per_sm(128);
    printf("     pass 2 (mma.sync, 8 warps): %d blocks per SM at head dim 64, %d at 128\n", n64, n128);
    T_CHECK(n64 >= 2);
    T_CHECK(n128 >= 3);
}

static void test_attn_decode(void) {
    NEED_GPU();
    const attn_case cases[] = {
        {4, 64, 4, 1, 8, 4, 8, 8, 0, 5000},
        {4, 256, 4, 1, 8, 4, 16, 16, 0, 100},
        {64, 1024, 4, 1, 32, 8, 128, 128, 0, 5000},
        {64, 700, 2, 1, 28, 4, 128, 128, 1, 300},
        {0, 512, 4, 1, 16, 16, 64, 64, 1, 1000},
        {2, 60, 3, 1, 6, 2, 32, 16, 1, 500},       /* neox, partial rotary */
        {2, 60, 3, 1, 6, 2, 24, 24, 1, 500},       /* head dim 24: falls back to the chunk kernel */
        {3, 40, 2, 1, 4, 2, 256, 256, 0, 2},
        {16, 512, 4, 1, 64, 4, 128, 128, 0, 1000},  /* 16 query heads per KV head: two blocks of 8 */
        {16, 512, 4, 1, 64, 8, 64, 64, 1, 700},     /* 8 per KV head */
    };
    run_attn_cases(cases, sizeof cases / sizeof cases[0], CRK_ATTN_PRECISE, 1, 2e-5, "fp32 decode attention (split over blocks)");
}

/* head dim 64 / 128 outside precise mode: the tensor-core decode kernel (fp16 operands) */
static void test_attn_decode_fast(void) {
    NEED_GPU();
    const attn_case cases[] = {
        {64, 1024, 4, 1, 32, 8, 128, 128, 0, 5000},  /* Llama-3 8B group of 4, full cache */
        {64, 700, 2, 1, 28, 4, 128, 128, 1, 300},    /* 7 per KV head, neox, cache filling */
        {0, 512, 4, 1, 16, 16, 64, 64, 1, 1000},     /* no GQA, no sinks */
        {16, 512, 4, 1, 64, 4, 128, 128, 0, 1000},   /* 16 query heads per KV head */
        {16, 512, 4, 1, 72, 2, 64, 32, 0, 700},      /* 36 per KV head (three blocks), partial rotary */
        {3, 400, 2, 1, 8, 2, 128, 128, 0, 2},        /* nearly empty cache: splits with no valid key */
        {16, 512, 4, 1, 32, 4, 128, 64, 0, 1000},    /* groups of 8, partial rotary */
        {4, 300, 2, 1, 9, 3, 64, 64, 0, 2000},       /* groups of 3 (SmolLM2), head dim 64 */
        {0, 256, 4, 1, 8, 8, 64, 64, 0, 200},        /* no GQA, no sinks, not neox */
        {64, 1024, 4, 1, 32, 8, 128, 128, 0, 68},    /* tg128's conditions: sinks and 4 slots filled (whole blocks with a few valid steps) */
        {16, 512, 4, 1, 16, 4, 64, 64, 0, 40},       /* the same at head dim 64 */
    };
    const size_t n = sizeof cases / sizeof cases[0];
    /* with the fp16 cos/sin table: the register-direct kernel where it applies (groups of at
     * most 8, neox only with full rotary), the shared-memory one elsewhere; without it: the
     * shared-memory one */
    memset(g_dec_kind_runs, 0, sizeof g_dec_kind_runs);
    g_dec_cs16 = 1;
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention with the fp16 cos/sin table (register-direct where it applies)");
    printf("     register-direct kernel on %d of %zu shapes\n", g_dec_kind_runs[0], n);
    T_CHECK(g_dec_kind_runs[0] == 9);
    /* the same kernel with its keys and values staged through shared memory, and straight
     * into registers, each in the variant that ends splits with no valid key early */
    g_dec_skip = 1;
    const int nst0 = crk_attn_decode_set_stages(2);
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct through 2 shared-memory stages per warp, empty splits skipped");
    /* the nearly-empty variant (skip_empty = 2: only the steps with a valid key, a block's
     * steps dealt to its warps in turn), in each load path */
    g_dec_skip = 2;
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct through 2 shared-memory stages per warp, valid steps only");
    crk_attn_decode_set_stages(3);
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct through 3 shared-memory stages per warp, valid steps only");
    /* the listed variant (skip_empty = 3: the steps of crk_step_list, dealt to 32 warps per
     * KV head), in each load path */
    g_dec_skip = 3;
    crk_attn_decode_set_stages(2);
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct through 2 shared-memory stages per warp, listed steps");
    crk_attn_decode_set_stages(3);
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct through 3 shared-memory stages per warp, listed steps");
    crk_attn_decode_set_stages(0);
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct straight into registers, listed steps");
    g_dec_skip = 2;
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct straight into registers, valid steps only");
    g_dec_skip = 1;
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, register-direct straight into registers, empty splits skipped");
    crk_attn_decode_set_stages(nst0);
    g_dec_skip = 0;
    T_CHECK(g_dec_kind_runs[0] == 9 * 9);
    g_dec_cs16 = 0;
    memset(g_dec_kind_runs, 0, sizeof g_dec_kind_runs);
    run_attn_cases(cases, n, CRK_ATTN_AUTO, 1, 1e-2, "decode attention, tensor cores through shared memory");
    T_CHECK(g_dec_kind_runs[1] == (int)n);
}

/* the fp16 cos/sin table against the CPU's f32_to_f16 */
static void test_rope_cs16(void) {
    NEED_GPU();
    const size_t n = 10007;
    float *cs = frand_vec(2 * n, 2.0f);
    cs[0] = 65520.0f; cs[1] = -1e-8f;   /* rounds to inf; flushes towards 0 */
    float *dcs = dup(cs, 8 * n);
    uint32_t *d16 = dev(4 * n), *h16 = malloc(4 * n);
    poison(d16, 4 * n);
    crk_rope_cs16(dcs, n, d16, S0);
    CUDA_LAUNCHED();
    get(h16, d16, 4 * n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (h16[i] != ((uint32_t)f32_to_f16(cs[2 * i]) | (uint32_t)f32_to_f16(cs[2 * i + 1]) << 16)) bad++;
    printf("     %zu pairs, %zu differ from f32_to_f16\n", n, bad);
    T_CHECK(bad == 0);
    free(cs); free(h16); cudaFree(dcs); cudaFree(d16);
}

/* ---------------------------------------------------------------- cascade update */
static void test_cascade_update_bit_exact(void) {
    NEED_GPU();
    const int nl = 2, nkv = 3, hd = 16, maxL = 24;
    for (int variant = 0; variant < 3; variant++) {
        cascade_cfg cfg; cascade_cfg_default(&cfg);
        cfg.S = variant == 2 ? 0 : 3; cfg.N = 24; cfg.C = variant == 1 ? 1 : 3; cfg.beta = 0.9;
        if (variant == 1) cfg.policy = CR_POLICY_SINK;
        const int S = cfg.S, N = cfg.N;
        cascade_ctrl c; char err[200];
        T_CHECK(cascade_ctrl_init(&c, &cfg, err, sizeof err) == 0);
        const int C = c.cfg.C;
        cascade_head *heads = calloc((size_t)nl * nkv, sizeof *heads);
        for (int i = 0; i < nl * nkv; i++) T_CHECK(cascade_head_alloc(&heads[i], &c, hd, err, sizeof err) == 0);
        const size_t rstr = (size_t)S + N + maxL, nh = (size_t)nl * nkv;
        uint16_t *dsk = dev(2 * nh * S * hd + 16), *dsv = dev(2 * nh * S * hd + 16), *dck = dev(2 * nh * N * hd), *dcv = dev(2 * nh * N * hd);
        float *dscore = dev(4 * nh * N);
        int64_t *dog = dev(8 * nh * N);
        CUDA_CHECK(cudaMemset(dsk, 0, 2 * nh * S * hd + 16)); CUDA_CHECK(cudaMemset(dsv, 0, 2 * nh * S * hd + 16));
        CUDA_CHECK(cudaMemset(dck, 0, 2 * nh * N * hd)); CUDA_CHECK(cudaMemset(dcv, 0, 2 * nh * N * hd));
        CUDA_CHECK(cudaMemset(dscore, 0, 4 * nh * N)); CUDA_CHECK(cudaMemset(dog, 0xFF, 8 * nh * N));
        uint16_t *k16 = malloc(2 * (size_t)nl * maxL * nkv * hd), *v16 = malloc(2 * (size_t)nl * maxL * nkv * hd);
        float *r = malloc(4 * nh * rstr), *rN = malloc(4 * (size_t)N);
        uint16_t *dk16 = dev(2 * (size_t)nl * maxL * nkv * hd), *dv16 = dev(2 * (size_t)nl * maxL * nkv * hd);
        float *dr = dev(4 * nh * rstr);
        int32_t *dpos = dev(4 * (size_t)N), *dtfo = dev(4 * (maxL + 1)), *dops = dev(8 * (size_t)maxL * C + 8), *dtouched = dev(4 * (size_t)maxL * C + 4);
        int32_t *dsinks = dev(8 * (size_t)maxL + 8), *dsrc = dev(4 * nh * maxL * C);
        uint16_t *dstk = dev(2 * nh * maxL * C * hd), *dstv = dev(2 * nh * maxL * C * hd);
        int64_t *dstog = dev(8 * nh * maxL * C);
        crk_step *dst = dev(sizeof(crk_step));
        int32_t *slot_map = malloc(4 * (size_t)N), *ops = malloc(8 * (size_t)maxL * C + 8), *touched = malloc(4 * (size_t)maxL * C + 4), *sinks = malloc(8 * (size_t)maxL + 8);
        int32_t *pos = malloc(4 * (size_t)N);
        for (int i = 0; i < N; i++) slot_map[i] = -1;
        cascade_plan p; memset(&p, 0, sizeof p);
        uint16_t *hk = malloc(2 * (size_t)N * hd), *hv = malloc(2 * (size_t)N * hd), *hsk = malloc(2 * (size_t)S * hd + 2), *hsv = malloc(2 * (size_t)S * hd + 2);
        float *hs = malloc(4 * (size_t)N);
        int64_t *hog = malloc(8 * (size_t)N);
        int mism = 0, chunks = 0, competes = 0;
        for (int it = 0; it < 400 && !mism; it++) {
            int L = it % 7 == 0 ? 1 : 1 + irand(maxL);
            cascade_ctrl pre = c;
            T_CHECK(cascade_plan_chunk(&c, L, &p, err, sizeof err) == 0);
            for (int x = 0; x < p.n_ops; x++) competes += p.ops[x].kind == CASCADE_OP_COMPETE;
            for (size_t i = 0; i < (size_t)nl * maxL * nkv * hd; i++) { k16[i] = hrand(1.0f); v16[i] = hrand(1.0f); }
            for (size_t i = 0; i < nh * rstr; i++) r[i] = 0.25f * (float)irand(4);   /* many exact ties */
            cascade_positions(&pre, pos);
            const float decay = cascade_ema_decay(cfg.beta, L);
            for (int l = 0; l < nl; l++)
                for (int h = 0; h < nkv; h++) {
                    const float *rr = r + ((size_t)l * nkv + h) * rstr;
                    for (int s = 0; s < N; s++) rN[s] = pos[s] >= 0 ? rr[S + s] : 0.0f;
                    cascade_head *hh = &heads[(size_t)l * nkv + h];
                    cascade_ema_update(hh->score, N, decay, rN);
                    cascade_apply(&p, hh, k16 + (size_t)l * maxL * nkv * hd + (size_t)h * hd, v16 + (size_t)l * maxL * nkv * hd + (size_t)h * hd,
                                  (size_t)nkv * hd, rr + S + N, p.t0);
                }
            crk_step st; fill_step(&st, &pre, L, p.t0);
            int ns = 0;
            int U = cuda_pack_plan(&p, N, slot_map, ops, touched, sinks, &ns);
            T_CHECK(U >= 0);
            st.U = U; st.n_sink_ops = ns; st.n_ops = p.n_ops;
            CUDA_CHECK(cudaMemcpy(dst, &st, sizeof st, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dtfo, p.tok_first_op, 4 * ((size_t)L + 1), cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dops, ops, 8 * (size_t)p.n_ops + 8, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dtouched, touched, 4 * (size_t)U + 4, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dsinks, sinks, 8 * (size_t)ns + 8, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dk16, k16, 2 * (size_t)nl * maxL * nkv * hd, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dv16, v16, 2 * (size_t)nl * maxL * nkv * hd, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dr, r, 4 * nh * rstr, cudaMemcpyHostToDevice));
            crk_slot_pos(dst, N, dpos, S0); CUDA_LAUNCHED();
            crk_resolve_args ra = {.n_layer = nl, .n_kv = nkv, .S = S, .N = N, .L = L, .U_max = L == 1 ? C : U, .st = dst, .slot_pos = dpos,
                                   .tfo = dtfo, .ops = dops, .touched = dtouched, .r = dr, .r_stride = rstr, .r_layer_stride = (size_t)nkv * rstr,
                                   .score = dscore, .src = dsrc, .scratch = NULL};
            crk_cascade_resolve(&ra, S0); CUDA_LAUNCHED();
            for (int l0 = 0; l0 < nl; l0 += (variant == 0 ? 1 : nl)) {   /* variant 0: one layer per pass */
                crk_move_args ma = {.l0 = l0, .l1 = variant == 0 ? l0 + 1 : nl, .n_kv = nkv, .S = S, .N = N, .hd = hd, .U_max = L == 1 ? C : U,
                                    .st = dst, .touched = dtouched, .src = dsrc, .sink_ops = dsinks, .k16 = dk16, .v16 = dv16,
                                    .kv_layer_stride = (size_t)maxL * nkv * hd, .ck = dck, .cv = dcv, .sink_k = dsk, .sink_v = dsv, .og = dog,
                                    .stage_k = dstk, .stage_v = dstv, .stage_og = dstog};
                crk_cascade_move(&ma, S0); CUDA_LAUNCHED();
            }
            chunks++;
            for (size_t i = 0; i < nh && !mism; i++) {
                const cascade_head *hh = &heads[i];
                get(hk, dck + i * N * hd, 2 * (size_t)N * hd); get(hv, dcv + i * N * hd, 2 * (size_t)N * hd);
                get(hs, dscore + i * N, 4 * (size_t)N); get(hog, dog + i * N, 8 * (size_t)N);
                if (S) { get(hsk, dsk + i * S * hd, 2 * (size_t)S * hd); get(hsv, dsv + i * S * hd, 2 * (size_t)S * hd); }
                if (memcmp(hk, hh->k, 2 * (size_t)N * hd) || memcmp(hv, hh->v, 2 * (size_t)N * hd)) { mism = 1; printf("     K/V differ: variant %d chunk %d head %zu\n", variant, chunks, i); }
                else if (memcmp(hs, hh->score, 4 * (size_t)N)) { mism = 1; printf("     scores differ: variant %d chunk %d head %zu\n", variant, chunks, i); }
                else if (memcmp(hog, hh->og, 8 * (size_t)N)) { mism = 1; printf("     og differ: variant %d chunk %d head %zu\n", variant, chunks, i); }
                else if (S && (memcmp(hsk, hh->sink_k, 2 * (size_t)S * hd) || memcmp(hsv, hh->sink_v, 2 * (size_t)S * hd))) { mism = 1; printf("     sinks differ: variant %d chunk %d\n", variant, chunks); }
            }
        }
        T_CHECKF(!mism, "GPU cascade update differs from cascade_ema_update + cascade_apply (variant %d)", variant);
        printf("     variant %d (%s, S=%d, C=%d): %d chunks, %d COMPETE ops, %lld tokens: K, V, scores, og, sinks bit-identical\n",
               variant, cascade_policy_name(cfg.policy), S, C, chunks, competes, (long long)c.seen);
        cascade_plan_free(&p);
        for (int i = 0; i < nl * nkv; i++) cascade_head_free(&heads[i]);
        free(heads); free(k16); free(v16); free(r); free(rN); free(slot_map); free(ops); free(touched); free(sinks); free(pos);
        free(hk); free(hv); free(hsk); free(hsv); free(hs); free(hog);
        void *dd[] = {dsk, dsv, dck, dcv, dscore, dog, dk16, dv16, dr, dpos, dtfo, dops, dtouched, dsinks, dsrc, dstk, dstv, dstog, dst};
        for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++) cudaFree(dd[i]);
    }
}

/* ---------------------------------------------------------------- logits */
static void test_argmax_nll(void) {
    NEED_GPU();
    const int V = 5000, R = 6;
    float *lg = frand_vec((size_t)R * V, 8.0f);
    lg[1234] = 20.0f; lg[4321] = 20.0f;   /* tie in row 0: the first wins */
    lg[V + 17] = NAN;                      /* NaN never wins */
    int32_t tg[6] = {3, 1234, V - 1, 0, -1, V};
    float *dl = dup(lg, 4 * (size_t)R * V), *dn = dev(4 * R);
    int32_t *da = dev(4 * R), *dt = dup(tg, sizeof tg);
    poison(da, 4 * R); poison(dn, 4 * R);
    float *dmv = dev(4 * R);
    for (int r = 0; r < R; r++) { crk_argmax(dl + (size_t)r * V, V, da + r, dmv + r, S0); CUDA_LAUNCHED(); }
    crk_nll(dl, R, V, dt, dn, S0); CUDA_LAUNCHED();
    int32_t ga[6]; float gn[6], gmv[6];
    get(ga, da, sizeof ga); get(gn, dn, sizeof gn); get(gmv, dmv, sizeof gmv);
    for (int r = 0; r < R; r++) {
        const float *x = lg + (size_t)r * V;
        int32_t ref = argmax(x, V);
        if (r == 1) { ref = 0; for (int i = 1; i < V; i++) if (!isnan(x[i]) && (isnan(x[ref]) || x[i] > x[ref])) ref = i; }
        T_CHECKF(ga[r] == ref, "row %d: argmax %d, CPU %d", r, ga[r], ref);
        T_CHECKF(gmv[r] == x[ref], "row %d: max value %g, CPU %g", r, gmv[r], x[ref]);
        float mx = -INFINITY;
        for (int v = 0; v < V; v++) if (x[v] > mx) mx = x[v];
        double sum = 0;
        for (int v = 0; v < V; v++) sum += exp((double)(x[v] - mx));
        if (r == 1) continue;   /* row with NaN: NLL is NaN-tainted on both sides */
        int ok = tg[r] >= 0 && tg[r] < V;
        float ref_n = ok ? (float)(log(sum) + mx - x[tg[r]]) : NAN;
        if (ok) T_CHECKF(isfinite(gn[r]) && fabsf(gn[r] - ref_n) <= 1e-5f * fmaxf(1.0f, fabsf(ref_n)), "row %d: nll %g vs %g", r, gn[r], ref_n);
        else T_CHECKF(isnan(gn[r]), "row %d: bad target must give NaN, got %g", r, gn[r]);
    }
    /* shares of the vocabulary (tensor parallelism): crk_nll_part of 3 uneven shares of each
     * row against logits_lse_part (its CPU twin), and logits_nll_combine of the shares
     * against the whole row's NLL */
    const int cut[4] = {0, 1700, 3333, V};
    float *dp = dev(4 * 2 * (size_t)R * 3);
    for (int k = 0; k < 3; k++) {
        /* the share's logits are columns [cut[k], cut[k+1]) of each row: copied packed */
        const int w = cut[k + 1] - cut[k];
        float *sh = malloc(sizeof(float) * (size_t)R * w);
        for (int r = 0; r < R; r++) memcpy(sh + (size_t)r * w, lg + (size_t)r * V + cut[k], sizeof(float) * w);
        float *dsh = dup(sh, sizeof(float) * (size_t)R * w);
        crk_nll_part(dsh, R, w, dt, cut[k], dp + (size_t)k * 2 * R, S0); CUDA_LAUNCHED();
        float gp[12];
        get(gp, dp + (size_t)k * 2 * R, sizeof gp);
        for (int r = 0; r < R; r++) {
            if (r == 1 && k == 0) continue;   /* the NaN row's first share */
            float cp[2];
            logits_lse_part(sh + (size_t)r * w, w, tg[r], cut[k], cp);
            T_CHECKF(fabsf(gp[2 * r] - cp[0]) <= 1e-5f * fmaxf(1.0f, fabsf(cp[0])), "share %d row %d: lse %g vs %g", k, r, gp[2 * r], cp[0]);
            T_CHECKF(isnan(cp[1]) ? isnan(gp[2 * r + 1]) : gp[2 * r + 1] == cp[1], "share %d row %d: target logit %g vs %g", k, r, gp[2 * r + 1], cp[1]);
        }
        cudaFree(dsh); free(sh);
    }
    float gp3[3][12];
    get(gp3, dp, sizeof gp3);
    for (int r = 0; r < R; r++) {
        if (r == 1) continue;
        float pr[6] = {gp3[0][2 * r], gp3[0][2 * r + 1], gp3[1][2 * r], gp3[1][2 * r + 1], gp3[2][2 * r], gp3[2][2 * r + 1]};
        float c = logits_nll_combine(pr, 3, 2), whole = logits_nll(lg + (size_t)r * V, V, tg[r]);
        if (isnan(whole)) T_CHECKF(isnan(c), "row %d: combined NLL %g for a bad target", r, c);
        else T_CHECKF(fabsf(c - whole) <= 1e-5f * fmaxf(1.0f, fabsf(whole)), "row %d: combined NLL %g vs %g", r, c, whole);
    }
    printf("     NLL from 3 shares of the vocabulary (crk_nll_part, logits_nll_combine) equals the whole row's\n");
    cudaFree(dp); cudaFree(dmv);
    cudaFree(dl); cudaFree(dn); cudaFree(da); cudaFree(dt); free(lg);
    /* a vocabulary of Llama 3's size: the float4 path (aligned) and the scalar one (offset by
     * one float), a tie between two far indices, NaN and +inf-free rows */
    const int V2 = 128256;
    float *l2 = frand_vec((size_t)V2 + 4, 8.0f);
    l2[5] = NAN; l2[100001] = 30.0f; l2[120000] = 30.0f; l2[V2 - 1] = 29.0f;
    float *d2 = dup(l2, 4 * ((size_t)V2 + 4));
    int32_t *da2 = dev(8);
    poison(da2, 8);
    crk_argmax(d2, V2, da2, NULL, S0); CUDA_LAUNCHED();
    crk_argmax(d2 + 1, V2 - 4, da2 + 1, NULL, S0); CUDA_LAUNCHED();
    int32_t g2[2];
    get(g2, da2, sizeof g2);
    T_CHECKF(g2[0] == 100001, "vocab 128256, aligned: argmax %d, want 100001", g2[0]);
    T_CHECKF(g2[1] == 100000, "vocab 128252, misaligned: argmax %d, want 100000", g2[1]);
    cudaFree(d2); cudaFree(da2); free(l2);
}

int main(void) {
    gpu_ok = cuda_device_info(gpu_desc, sizeof gpu_desc) > 0;
    if (gpu_ok) { printf("     device: %s\n", gpu_desc); CUDA_CHECK(cudaStreamCreate(&S0)); }
    T_RUN(test_rmsnorm);
    T_RUN(test_swiglu);
    T_RUN(test_quantize_q8);
    T_RUN(test_dequant_embed_all_types);
    T_RUN(test_matvec_all_types);
    T_RUN(test_matvec_glu);
    T_RUN(test_gemm_bf16_vs_cpu_matmul);
    T_RUN(test_qkv_post);
    T_RUN(test_slot_positions);
    T_RUN(test_step_list);
    T_RUN(test_attn_chunk_precise);
    T_RUN(test_attn_chunk_fast);
    T_RUN(test_attn_p2_occupancy);
    T_RUN(test_attn_decode);
    T_RUN(test_attn_decode_fast);
    T_RUN(test_rope_cs16);
    T_RUN(test_cascade_update_bit_exact);
    T_RUN(test_argmax_nll);
    return t_summary();
}
#endif
