/* Matrix kernels (engine/matmul.c, engine/quant.c) against a scalar reference written here:
 * every weight type is dequantized by this file's own decoder (ggml block layouts) and the
 * products accumulated in double, on random data with odd shapes (rows not a multiple of
 * the register tile, columns not a multiple of the vector width, 1..17 tokens). */
#include "t.h"
#include "gguf.h"
#include "matmul.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 16); }
static float frand(void) { return (float)((rnd() & 0xffffff) / 16777216.0 * 2 - 1); }

static float h2f(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return f16_to_f32(h); }
static void put_h(uint8_t *p, float f) { uint16_t h = f32_to_f16(f); memcpy(p, &h, 2); }

/* The reference decoder: one block of `type` at p into out[] (block size elements). */
static void ref_block(uint32_t type, const uint8_t *p, double *out) {
    switch (type) {
    case GGML_TYPE_Q8_0: for (int i = 0; i < 32; i++) out[i] = (double)h2f(p) * (int8_t)p[2 + i]; break;
    case GGML_TYPE_Q4_0:
        for (int i = 0; i < 16; i++) { out[i] = h2f(p) * (double)((p[2 + i] & 15) - 8); out[i + 16] = h2f(p) * (double)((p[2 + i] >> 4) - 8); }
        break;
    case GGML_TYPE_Q4_1:
        for (int i = 0; i < 16; i++) { out[i] = h2f(p) * (double)(p[4 + i] & 15) + h2f(p + 2); out[i + 16] = h2f(p) * (double)(p[4 + i] >> 4) + h2f(p + 2); }
        break;
    case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: {
        int one = type == GGML_TYPE_Q5_1;
        uint32_t qh; memcpy(&qh, p + 2 + 2 * one, 4);
        const uint8_t *qs = p + 6 + 2 * one;
        for (int i = 0; i < 16; i++) {
            int lo = (qs[i] & 15) | (((qh >> i) & 1) << 4), hi = (qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
            out[i] = one ? h2f(p) * (double)lo + h2f(p + 2) : h2f(p) * (double)(lo - 16);
            out[i + 16] = one ? h2f(p) * (double)hi + h2f(p + 2) : h2f(p) * (double)(hi - 16);
        }
        break;
    }
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: {
        int five = type == GGML_TYPE_Q5_K;
        double d = h2f(p), dmin = h2f(p + 2);
        const uint8_t *sc = p + 4, *qh = p + 16, *qs = p + 16 + 32 * five;
        for (int j = 0; j < 8; j++) {          /* sub-block j of 32: nibbles (j&1 ? high : low) of qs[32*(j/2)..] */
            int s, m;
            if (j < 4) { s = sc[j] & 63; m = sc[j + 4] & 63; }
            else { s = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4); m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4); }
            for (int l = 0; l < 32; l++) {
                int q = (j & 1) ? qs[32 * (j / 2) + l] >> 4 : qs[32 * (j / 2) + l] & 15;
                if (five) q += ((qh[l] >> j) & 1) << 4;
                out[32 * j + l] = d * s * q - dmin * m;
            }
        }
        break;
    }
    case GGML_TYPE_Q6_K: {
        const uint8_t *ql = p, *qh = p + 128; const int8_t *sc = (const int8_t *)(p + 192);
        double d = h2f(p + 208);
        for (int i = 0; i < 256; i++) {        /* ggml's dequantize_row_q6_K, element by element */
            int half = i / 128, l = i % 32, quarter = (i % 128) / 32;
            int lo = quarter & 1 ? ql[64 * half + l + 32] : ql[64 * half + l];
            lo = quarter < 2 ? lo & 15 : lo >> 4;
            int hi = (qh[32 * half + l] >> (2 * quarter)) & 3;
            out[i] = d * sc[8 * half + l / 16 + 2 * quarter] * ((lo | (hi << 4)) - 32);
        }
        break;
    }
    default: break;
    }
}

static void ref_row(uint32_t type, const uint8_t *row, int64_t n, double *out) {
    if (type == GGML_TYPE_F32) { for (int64_t i = 0; i < n; i++) { float f; memcpy(&f, row + 4 * i, 4); out[i] = f; } return; }
    if (type == GGML_TYPE_F16) { for (int64_t i = 0; i < n; i++) out[i] = h2f(row + 2 * i); return; }
    if (type == GGML_TYPE_BF16) { for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, row + 2 * i, 2); out[i] = bf16_to_f32(h); } return; }
    int64_t bs = (int64_t)ggml_blck_size(type), by = (int64_t)ggml_type_size(type);
    for (int64_t i = 0; i < n; i += bs) ref_block(type, row + i / bs * by, out + i);
}

/* Random row data: random bits with sane fp16 scales. */
static void fill_row(uint32_t type, uint8_t *row, int64_t n) {
    if (type == GGML_TYPE_F32) { for (int64_t i = 0; i < n; i++) { float f = frand(); memcpy(row + 4 * i, &f, 4); } return; }
    if (type == GGML_TYPE_F16) { for (int64_t i = 0; i < n; i++) put_h(row + 2 * i, frand()); return; }
    if (type == GGML_TYPE_BF16) { for (int64_t i = 0; i < n; i++) { uint16_t h = f32_to_bf16(frand()); memcpy(row + 2 * i, &h, 2); } return; }
    int64_t bs = (int64_t)ggml_blck_size(type), by = (int64_t)ggml_type_size(type);
    for (int64_t b = 0; b < n / bs; b++) {
        uint8_t *p = row + b * by;
        for (int64_t i = 0; i < by; i++) p[i] = (uint8_t)rnd();
        float d = 0.01f + 0.02f * (frand() + 1);
        switch (type) {
        case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: put_h(p, d); break;
        case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: put_h(p, d); put_h(p + 2, frand()); break;
        case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: put_h(p, d * 0.1f); put_h(p + 2, d * 0.05f); break;
        case GGML_TYPE_Q6_K: put_h(p + 208, d * 0.05f); break;
        default: break;
        }
    }
}

typedef struct { uint32_t type; const char *name; } tinfo;
static const tinfo types[] = {
    {GGML_TYPE_F32, "F32"}, {GGML_TYPE_F16, "F16"}, {GGML_TYPE_BF16, "BF16"}, {GGML_TYPE_Q8_0, "Q8_0"},
    {GGML_TYPE_Q4_0, "Q4_0"}, {GGML_TYPE_Q4_1, "Q4_1"}, {GGML_TYPE_Q5_0, "Q5_0"}, {GGML_TYPE_Q5_1, "Q5_1"},
    {GGML_TYPE_Q4_K, "Q4_K"}, {GGML_TYPE_Q5_K, "Q5_K"}, {GGML_TYPE_Q6_K, "Q6_K"},
};

/* One matmul of a random rows x n matrix with T random tokens against the reference.
 * Quantized types: the reference multiplies with the q8 activations the engine made
 * (so only summation order differs); float types: with x itself. */
static double check(threadpool *tp, uint32_t type, int64_t rows, int64_t n, int T) {
    size_t rb = ggml_row_size(type, (uint64_t)n);
    uint8_t *w = malloc(rb * (size_t)rows);
    for (int64_t r = 0; r < rows; r++) fill_row(type, w + (size_t)r * rb, n);
    wmat W = {.data = w, .type = type, .rows = rows, .cols = n, .row_bytes = rb};
    float *x = malloc(sizeof(float) * (size_t)T * n), *y = malloc(sizeof(float) * (size_t)T * rows);
    for (int64_t i = 0; i < T * n; i++) x[i] = frand() * (i % 7 == 0 ? 4 : 1);
    q8_block *xq = malloc(sizeof(q8_block) * (size_t)T * (n / 32 + 1));
    for (int64_t i = 0; i < T * rows; i++) y[i] = NAN;
    matmul(tp, &W, x, T, y, xq);
    double *wr = malloc(sizeof(double) * (size_t)n), *xr = malloc(sizeof(double) * (size_t)n), worst = 0;
    for (int t = 0; t < T; t++) {
        for (int64_t i = 0; i < n; i++)
            xr[i] = quant_uses_q8(type) ? (double)xq[(size_t)t * (n / 32) + i / 32].d * xq[(size_t)t * (n / 32) + i / 32].q[i % 32]
                                        : x[(size_t)t * n + i];
        for (int64_t r = 0; r < rows; r++) {
            ref_row(type, w + (size_t)r * rb, n, wr);
            double s = 0, a = 0;
            for (int64_t i = 0; i < n; i++) { s += wr[i] * xr[i]; a += fabs(wr[i] * xr[i]); }
            double got = y[(size_t)t * rows + r], e = fabs(got - s) / (a + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    }
    free(w); free(x); free(y); free(xq); free(wr); free(xr);
    return worst;
}

static void test_matmul_types(void) {
    threadpool *tp = tp_create(2);
    int asan = t_asan();
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        uint32_t ty = types[k].type;
        int64_t bs = (int64_t)ggml_blck_size(ty);
        int64_t shapes[][2] = {{37, bs == 256 ? 256 : (bs == 1 ? 67 : 96)}, {70, bs == 256 ? 768 : (bs == 1 ? 576 : 224)}, {5, bs == 256 ? 512 : 32}};
        double worst = 0;
        for (int s = 0; s < 3; s++)
            for (int T = 1; T <= 17; T += (asan ? 4 : 1)) {
                double e = check(tp, ty, shapes[s][0], shapes[s][1], T);
                T_CHECKF(e < 2e-5, "%s: %lld x %lld, %d tokens: relative error %.3e", types[k].name,
                         (long long)shapes[s][0], (long long)shapes[s][1], T, e);
                if (e > worst) worst = e;
            }
        printf("     %-5s worst error / sum|w*x| = %.2e\n", types[k].name, worst);
    }
    tp_destroy(tp);
}

/* Decoding a row (unpack_row_q for the quantized types, dequant_row for all) equals the
 * reference decoder exactly: only a float scale times a small integer, plus a min. */
static void test_dequant_exact(void) {
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        uint32_t ty = types[k].type;
        int64_t n = 1024;
        size_t rb = ggml_row_size(ty, (uint64_t)n);
        uint8_t *w = malloc(rb);
        float *f = malloc(sizeof(float) * n);
        double *ref = malloc(sizeof(double) * n);
        int bad = 0;
        for (int rep = 0; rep < 4; rep++) {
            fill_row(ty, w, n);
            dequant_row(ty, w, f, n);
            ref_row(ty, w, n, ref);
            for (int64_t i = 0; i < n; i++) if (fabs(f[i] - ref[i]) > 1e-6 * (fabs(ref[i]) + 1e-3)) bad++;
        }
        T_CHECKF(bad == 0, "%s: %d elements differ from the reference decoder", types[k].name, bad);
        free(w); free(f); free(ref);
    }
}

/* quantize_q8 matches ggml's quantize_row_q8_0 rounding (d = fp16(amax/127), q = round(x/d)). */
static void test_quantize_q8(void) {
    float x[64];
    q8_block q[2];
    for (int rep = 0; rep < 100; rep++) {
        for (int i = 0; i < 64; i++) x[i] = frand() * (rep + 1);
        if (rep % 10 == 1) for (int i = 0; i < 64; i += 3) x[i] = (float)((int)(x[i] * 4)) * 0.5f;  /* exact halves */
        if (rep % 10 == 2) x[5] = 0, x[40] = -x[41];
        quantize_q8(x, q, 64);
        for (int b = 0; b < 2; b++) {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
            float d = amax / 127, id = d ? 1 / d : 0;
            T_CHECK(q[b].d == f16_to_f32(f32_to_f16(d)));
            int sum = 0;
            for (int i = 0; i < 32; i++) { T_CHECK(q[b].q[i] == (int8_t)roundf(x[32 * b + i] * id)); sum += q[b].q[i]; }
            T_CHECK(q[b].s == q[b].d * (float)sum);
        }
    }
}

/* Non-finite activations never crash and keep the NaN visible in the block scale. */
static void test_quantize_q8_nonfinite(void) {
    float x[64];
    q8_block q[2];
    for (int i = 0; i < 64; i++) x[i] = frand();
    x[3] = NAN; x[40] = INFINITY;
    quantize_q8(x, q, 64);
    T_CHECK(isfinite(q[0].d) || isnan(q[0].d));
    T_CHECK(!isfinite(q[1].d));
    for (int i = 0; i < 64; i++) x[i] = 0;
    quantize_q8(x, q, 64);
    T_CHECK(q[0].d == 0 && q[0].s == 0 && q[0].q[7] == 0);
}

/* Decode (one token through matmul) gives each row exactly the one-row dot product for the
 * float types and Q8_0 (gemv.c keeps their summation order); the other types are checked
 * against the reference in test_matmul_types. */
static void test_decode_bit_exact(void) {
    threadpool *tp = tp_create(2);
    const uint32_t exact[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0};
    const int64_t cols[] = {32, 96, 576, 67};
    for (size_t k = 0; k < sizeof exact / sizeof *exact; k++)
        for (size_t c = 0; c < sizeof cols / sizeof *cols; c++) {
            int64_t n = cols[c], rows = 45;
            if (exact[k] == GGML_TYPE_Q8_0 && n % 32) continue;
            size_t rb = ggml_row_size(exact[k], (uint64_t)n);
            uint8_t *w = malloc(rb * (size_t)rows);
            for (int64_t r = 0; r < rows; r++) fill_row(exact[k], w + (size_t)r * rb, n);
            wmat W = {.data = w, .type = exact[k], .rows = rows, .cols = n, .row_bytes = rb};
            float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)rows);
            q8_block *xq = malloc(sizeof(q8_block) * (size_t)(n / 32 + 1));
            for (int64_t i = 0; i < n; i++) x[i] = frand();
            matmul(tp, &W, x, 1, y, xq);
            int bad = 0;
            for (int64_t r = 0; r < rows; r++) {
                float d = quant_uses_q8(exact[k]) ? vec_dot_q(exact[k], w + (size_t)r * rb, xq, n) : vec_dot_f(exact[k], w + (size_t)r * rb, x, n);
                if (memcmp(&d, &y[r], sizeof d)) bad++;
            }
            T_CHECKF(bad == 0, "type %u, %lld columns: %d rows differ from the one-row dot product", exact[k], (long long)n, bad);
            free(w); free(x); free(y); free(xq);
        }
    tp_destroy(tp);
}

int main(void) {
    T_RUN(test_decode_bit_exact);
    T_RUN(test_dequant_exact);
    T_RUN(test_quantize_q8);
    T_RUN(test_quantize_q8_nonfinite);
    T_RUN(test_matmul_types);
    return t_summary();
}
