/* GGUF reader: real files parse; truncations, bit flips and a seeded fuzz
 * loop never crash and always give a one-line error naming the file. */
#include "t.h"
#include "gguf.h"
#include "model.h"
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END); long sz = ftell(f); fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); fclose(f); return NULL; }
    b[sz] = 0;                       /* callers may treat it as a string */
    fclose(f); *n = (size_t)sz; return b;
}

static char path260[512], path656[512];

static void test_parse_real_models(void) {
    T_NEED_SHARED("models/stories260K.gguf");
    T_NEED_SHARED("models/TinyStories-656K-Q8_0.gguf");
    gguf_file g;
    T_CHECKF(gguf_open(&g, path260) == 0, "%s", g.err);
    T_CHECK(g.version == 3);
    char arch[32];
    T_CHECK(gguf_get_cstr(&g, "general.architecture", arch, sizeof arch) && strcmp(arch, "llama") == 0);
    const gguf_kv *tokens = gguf_find(&g, "tokenizer.ggml.tokens");
    T_CHECK(tokens && tokens->type == GGUF_T_ARRAY && tokens->arr_type == GGUF_T_STRING && tokens->arr_n == 512);
    gguf_str *s = malloc(sizeof *s * tokens->arr_n);
    gguf_arr_strs(tokens, s);
    T_CHECK(gguf_str_eq(s[0], "<unk>") && gguf_str_eq(s[1], "<s>") && gguf_str_eq(s[2], "</s>") && gguf_str_eq(s[3], "<0x00>"));
    free(s);
    const gguf_tensor *t = gguf_tensor_find(&g, "token_embd.weight");
    T_CHECK(t && t->type == GGML_TYPE_F32 && t->ne[0] == 64 && t->ne[1] == 512);
    int64_t nl; T_CHECK(gguf_get_i64(&g, "llama.block_count", &nl) && nl == 5);
    gguf_close(&g);
    T_CHECKF(gguf_open(&g, path656) == 0, "%s", g.err);
    int nq = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) nq += g.tensors[i].type == GGML_TYPE_Q8_0;
    T_CHECKF(nq == 15, "Q8_0 tensors: %d", nq);
    T_CHECK(gguf_tensor_find(&g, "output.weight") == NULL);
    gguf_close(&g);
}

static void test_missing_and_not_gguf(void) {
    gguf_file g;
    T_CHECK(gguf_open(&g, "/nonexistent/model.gguf") != 0);
    T_CHECKF(strstr(g.err, "/nonexistent/model.gguf: ") == g.err, "%s", g.err);
    T_CHECK(gguf_open(&g, "Makefile") != 0);
    T_CHECKF(strstr(g.err, "not a GGUF file"), "%s", g.err);
    T_CHECK(gguf_open(&g, "tests") != 0);
}

/* Every truncation length of the header region, and a spread over the data: the
 * parse must fail with a message (or succeed only for the full file). */
static void test_truncations(void) {
    T_NEED_SHARED("models/TinyStories-656K-Q8_0.gguf");
    size_t n; uint8_t *b = read_all(path656, &n);
    T_CHECK(b);
    gguf_file g;
    int fails = 0, checked = 0;
    size_t step_hi = t_asan() ? 4093 : 1021;
    for (size_t len = 0; len < n; len += (len < 40000 ? (t_asan() ? 13 : 1) : step_hi)) {
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, b, len);
        int r = gguf_parse(&g, c, len, "trunc.gguf");
        checked++;
        if (r == 0) { gguf_close(&g); free(c); t_fail(__FILE__, __LINE__, "truncated to %zu bytes parsed", len); free(b); return; }
        if (strncmp(g.err, "trunc.gguf: ", 12) != 0 || strchr(g.err, '\n')) { free(c); t_fail(__FILE__, __LINE__, "bad message: %s", g.err); free(b); return; }
        fails++;
        free(c);
    }
    T_CHECK(fails == checked);
    T_CHECK(gguf_parse(&g, b, n, "full.gguf") == 0);
    gguf_close(&g);
    free(b);
}

static uint64_t rng_state = 12345;
static uint64_t rnd(void) { rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17; return rng_state; }

/* Seeded fuzz: bit flips, byte sets and truncations of both real files; every
 * tensor the parser accepts lies inside the buffer (checked by touching it). */
static void test_fuzz(void) {
    T_NEED_SHARED("models/stories260K.gguf");
    T_NEED_SHARED("models/TinyStories-656K-Q8_0.gguf");
    const char *paths[2] = {path260, path656};
    int iters = t_asan() ? 1500 : 6000, accepted = 0;
    for (int p = 0; p < 2; p++) {
        size_t n; uint8_t *b = read_all(paths[p], &n);
        T_CHECK(b);
        size_t hdr = 0;
        { gguf_file g; T_CHECK(gguf_parse(&g, b, n, "x") == 0); hdr = g.data_off; gguf_close(&g); }
        for (int it = 0; it < iters; it++) {
            size_t len = n;
            uint8_t *c = malloc(n);
            memcpy(c, b, n);
            int nmut = 1 + (int)(rnd() % 4);
            for (int k = 0; k < nmut; k++) {
                size_t pos = rnd() % hdr;          /* mutate the metadata/tensor-info region */
                switch (rnd() % 4) {
                case 0: c[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;
                case 1: c[pos] = (uint8_t)rnd(); break;
                case 2: c[pos] = 0xff; break;
                case 3: len = hdr + rnd() % (n - hdr); break;
                }
            }
            /* copy to an exact-size buffer so ASan sees any overread */
            uint8_t *d = malloc(len); memcpy(d, c, len); free(c);
            gguf_file g;
            if (gguf_parse(&g, d, len, "fuzz.gguf") == 0) {
                accepted++;
                volatile uint8_t sink = 0;
                for (uint64_t i = 0; i < g.n_tensors; i++) {
                    const uint8_t *t = g.tensors[i].data;
                    if (g.tensors[i].nbytes) { sink ^= t[0]; sink ^= t[g.tensors[i].nbytes - 1]; }
                }
                for (uint64_t i = 0; i < g.n_kv; i++) {
                    const gguf_kv *kv = &g.kv[i];
                    if (kv->type == GGUF_T_ARRAY && kv->arr_type == GGUF_T_STRING) {
                        gguf_str *s = malloc(sizeof *s * (kv->arr_n ? kv->arr_n : 1));
                        gguf_arr_strs(kv, s);
                        for (uint64_t j = 0; j < kv->arr_n; j++) if (s[j].n) sink ^= (uint8_t)s[j].s[s[j].n - 1];
                        free(s);
                    }
                }
                (void)sink;
                gguf_close(&g);
            } else {
                if (strncmp(g.err, "fuzz.gguf: ", 11) != 0) { free(d); free(b); T_CHECKF(0, "bad message: %s", g.err); }
            }
            free(d);
        }
        free(b);
    }
    printf("     fuzz: %d iterations, %d mutated files still parsed\n", 2 * iters, accepted);
}

/* The binary: a truncated or bit-flipped model gives exit 1 and one line. */
static void test_cli_errors(void) {
    const char *b = getenv("CR_BUILD");
    char bin[256]; snprintf(bin, sizeof bin, "%s/cascade-read", b && strcmp(b, "build") ? b : ".");
    if (access(bin, X_OK) != 0) T_SKIP("%s not built", bin);
    T_NEED_SHARED("models/stories260K.gguf");
    size_t n; uint8_t *data = read_all(path260, &n);
    T_CHECK(data);
    char tmp[] = "/tmp/cr_gguf_XXXXXX";
    T_CHECK(mkdtemp(tmp));
    char p[512]; snprintf(p, sizeof p, "%s/bad.gguf", tmp);
    size_t cuts[] = {10, 100, 5000, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *f = fopen(p, "wb"); fwrite(data, 1, cuts[i], f); fclose(f);
        char cmd[1024]; snprintf(cmd, sizeof cmd, "%s --model %s --generate '' -n 4 --device cpu 2>%s/err >/dev/null", bin, p, tmp);
        int st = system(cmd);
        T_CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 1, "cut %zu: status %d", cuts[i], st);
        char ep[512]; snprintf(ep, sizeof ep, "%s/err", tmp);
        size_t en; uint8_t *e = read_all(ep, &en);
        T_CHECK(e);
        int lines = 0; for (size_t k = 0; k < en; k++) lines += e[k] == '\n';
        T_CHECKF(lines == 1 && strstr((char *)e, "bad.gguf"), "cut %zu: stderr: %.*s", cuts[i], (int)en, e);
        T_CHECKF(!strstr((char *)e, "Sanitizer") && !strstr((char *)e, "runtime error"), "sanitizer: %.*s", (int)en, e);
        free(e);
    }
    /* flip a byte inside the tensor-info region: the type field of the first tensor */
    memcpy(data, data, 0);
    FILE *f = fopen(p, "wb"); fwrite(data, 1, n, f); fclose(f);
    gguf_file g; gguf_parse(&g, data, n, "x");
    size_t info_off = (size_t)((const uint8_t *)g.tensors[0].name.s - data) + g.tensors[0].name.n + 4 + 8 * g.tensors[0].n_dims;
    gguf_close(&g);
    data[info_off] = 77;          /* unknown tensor type */
    f = fopen(p, "wb"); fwrite(data, 1, n, f); fclose(f);
    char cmd[1024]; snprintf(cmd, sizeof cmd, "%s --model %s --generate '' -n 4 --device cpu 2>%s/err >/dev/null", bin, p, tmp);
    int st = system(cmd);
    T_CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 1, "flipped type: status %d", st);
    char ep[512]; snprintf(ep, sizeof ep, "%s/err", tmp);
    size_t en; uint8_t *e = read_all(ep, &en);
    T_CHECKF(e && strstr((char *)e, "unknown type 77"), "stderr: %.*s", (int)en, e);
    free(e);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp); if (system(cmd)) {}
    free(data);
}

int main(void) {
    snprintf(path260, sizeof path260, "%s/models/stories260K.gguf", t_shared());
    snprintf(path656, sizeof path656, "%s/models/TinyStories-656K-Q8_0.gguf", t_shared());
    T_RUN(test_parse_real_models);
    T_RUN(test_missing_and_not_gguf);
    T_RUN(test_truncations);
    T_RUN(test_fuzz);
    T_RUN(test_cli_errors);
    return t_summary();
}
