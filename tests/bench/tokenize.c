/* Tokenizer benchmark: encoding throughput (MB/s, one thread) on War and Peace for
 * each kind of tokenizer, plus decode throughput. Prints a table.
 *   build/bench/tokenize [BOOK]     (default ../shared/data/books/txt/2600-0.txt)
 * "cold" = first encode after loading (empty word cache), "warm" = best of 3 more.
 * The Llama 3 style vocabulary is made from SmolLM2's tokenizer.json with
 * tests/tools/mkvocab_hf.py (pre-tokenizer llama-bpe) into a temp folder. */
#include "tokenizer.h"
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(b); return NULL; }
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static const char *shared(void) { const char *s = getenv("CR_SHARED"); return s ? s : "../shared"; }

static void row(const char *name, const char *gguf_path, int spm_direct, const char *text, size_t len) {
    gguf_file g;
    char err[512];
    if (gguf_open(&g, gguf_path)) { printf("| %-34s | %s |\n", name, g.err); return; }
    if (spm_direct) setenv("CR_TOK_SPM_DIRECT", "1", 1);
    double t0 = now();
    cr_tokenizer *t = tok_load(&g, NULL, err, sizeof err);
    double tl = now() - t0;
    unsetenv("CR_TOK_SPM_DIRECT");
    if (!t) { printf("| %-34s | %s |\n", name, err); gguf_close(&g); return; }
    int32_t *ids = NULL; size_t n = 0, cap = 0;
    t0 = now();
    int rc = tok_encode(t, text, len, &ids, &n, &cap);
    double cold = now() - t0, warm = 1e30;
    for (int r = 0; r < 3 && !rc; r++) {
        n = 0;
        t0 = now();
        rc = tok_encode(t, text, len, &ids, &n, &cap);
        double d = now() - t0;
        if (d < warm) warm = d;
    }
    double dec = 1e30;
    char *out = NULL; size_t ol = 0;
    for (int r = 0; r < 3 && !rc; r++) {
        free(out); out = NULL;
        t0 = now();
        rc = tok_decode(t, ids, n, &out, &ol);
        double d = now() - t0;
        if (d < dec) dec = d;
    }
    double mb = (double)len / 1e6;
    if (rc) printf("| %-34s | encode failed: %s |\n", name, tok_last_error(t));
    else
        printf("| %-34s | %-9s | %6.0f | %8zu | %5.2f | %8.1f | %8.1f | %8.0f |\n", name, tok_pre_name(t), tl * 1e3, n,
               (double)len / (double)n, mb / cold, mb / warm, mb / dec);
    free(out); free(ids);
    tok_free(t);
    gguf_close(&g);
}

int main(int argc, char **argv) {
    char book[512], p[512];
    snprintf(book, sizeof book, "%s/data/books/txt/2600-0.txt", shared());
    const char *bp = argc > 1 ? argv[1] : book;
    size_t len;
    char *text = read_all(bp, &len);
    if (!text) { fprintf(stderr, "tokenize bench: cannot read %s\n", bp); return 1; }
    char tmp[] = "/tmp/cr-tokbench-XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    char l3[600] = "", tj[512], cmd[2048];
    snprintf(tj, sizeof tj, "%s/tokenizers/smollm2/tokenizer.json", shared());
    snprintf(l3, sizeof l3, "%s/l3.gguf", tmp);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/tools/mkvocab_hf.py '%s' '%s' --pre llama-bpe --chat-template none", tj, l3);
    int have_l3 = system(cmd) == 0;
    char sm[600];
    snprintf(sm, sizeof sm, "%s/smollm.gguf", tmp);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/tools/mkvocab_hf.py '%s' '%s' --pre smollm --chat-template none", tj, sm);
    int have_sm = system(cmd) == 0;

    printf("Tokenizer encode throughput, one thread, %s (%.2f MB), whole book in one call\n", bp, (double)len / 1e6);
    printf("| %-34s | %-9s | %6s | %8s | %5s | %8s | %8s | %8s |\n", "tokenizer (vocab)", "pre", "load ms", "tokens",
           "B/tok", "enc MB/s", "enc MB/s", "dec MB/s");
    printf("| %-34s | %-9s | %6s | %8s | %5s | %8s | %8s | %8s |\n", "", "", "", "", "", "cold", "warm", "");
    printf("|------------------------------------|-----------|--------|----------|-------|----------|----------|----------|\n");
    row("SPM llama-spm GGUF (segment cache)", (snprintf(p, sizeof p, "%s/tokenizers/vocab/ggml-vocab-llama-spm.gguf", shared()), p), 0, text, len);
    row("SPM llama-spm GGUF (plain Encode)", p, 1, text, len);
    if (have_l3) row("BPE llama3-style (SmolLM2 vocab)", l3, 0, text, len);
    else printf("| BPE llama3-style: could not build the vocabulary (python/SmolLM2 missing) |\n");
    row("BPE gpt-2", (snprintf(p, sizeof p, "%s/tokenizers/vocab/ggml-vocab-gpt-2.gguf", shared()), p), 0, text, len);
    if (have_sm) row("BPE smollm (SmolLM2)", sm, 0, text, len);
    row("BPE deepseek-llm (PCRE2 stages)", (snprintf(p, sizeof p, "%s/tokenizers/vocab/ggml-vocab-deepseek-llm.gguf", shared()), p), 0, text, len);
    row("BPE falcon (PCRE2 + custom)", (snprintf(p, sizeof p, "%s/tokenizers/vocab/ggml-vocab-falcon.gguf", shared()), p), 0, text, len);
    printf("target: >= 10 MB/s per core (cold)\n");
    unlink(l3); unlink(sm); rmdir(tmp);
    free(text);
    return 0;
}
