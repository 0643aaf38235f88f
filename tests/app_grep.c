/* grep by question (app/grep.c) with stories260K: numbering of lines from a .gz read from
 * stdin, context lines, the bounded heap, determinism, and flat memory on a large input. */
#include "t.h"
#include "grep.h"
#include "model.h"
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

static char model_path[512];
static cr_model M;
static cr_tokenizer *TOK;
static int have;

/* the text of generated line i (1-based): distinct, a few words, digits */
static void gen_line(char *b, size_t n, long i, int pad) {
    static const char *w[] = {"connection", "accepted", "user", "failed", "disk", "kernel", "timeout", "session", "opened", "closed"};
    int k = snprintf(b, n, "Dec %02ld 10:%02ld:%02ld host svc[%ld]: %s %s %s id=%ld", 1 + i % 28, i / 60 % 60, i % 60,
                     1000 + i, w[i % 10], w[(i / 10) % 10], w[(i * 7) % 10], i);
    for (int j = 0; j < pad && (size_t)k + 2 < n; j++) b[k++] = 'a' + (char)((i + j) % 26);
    b[k] = 0;
}

static int write_gz(const char *path, long nlines, int pad) {
    gzFile f = gzopen(path, "wb1");
    if (!f) return -1;
    char b[2048];
    for (long i = 1; i <= nlines; i++) { gen_line(b, sizeof b, i, pad); gzprintf(f, "%s\n", b); }
    return gzclose(f) == Z_OK ? 0 : -1;
}

/* grep_paths on "-" with stdin redirected from path */
static int grep_stdin(grep_ctx *g, const char *path, char *err) {
    int fd = open(path, O_RDONLY), saved = dup(0);
    if (fd < 0 || saved < 0) return -1;
    dup2(fd, 0); close(fd);
    const char *in[1] = {"-"};
    int rc = grep_paths(g, in, 1, NULL, NULL, err, 512);
    dup2(saved, 0); close(saved);
    clearerr(stdin);
    return rc;
}

static void test_grep_numbering_stdin_gz(void) {
    if (!have) T_SKIP_MISSING(model_path);
    char path[] = "/tmp/cr_grep_XXXXXX.log.gz";
    int fd = mkstemps(path, 7); T_CHECK(fd >= 0); close(fd);
    long n = t_asan() ? 150 : 600;
    T_CHECK(write_gz(path, n, 0) == 0);
    grep_opts o; grep_opts_default(&o);
    o.question = "Which connection failed?"; o.k = 7; o.context = 2; o.window = 256; o.threads = 2;
    char err[512];
    grep_ctx *g = grep_new(&M, TOK, &o, err, sizeof err);
    T_CHECKF(g, "%s", err);
    int rc = grep_stdin(g, path, err);
    unlink(path);
    T_CHECKF(rc == 0, "grep: %s", err);
    uint64_t lines, bytes, windows, tokens;
    grep_stats(g, &lines, &bytes, &windows, &tokens);
    T_CHECKF(lines == (uint64_t)n, "%llu lines read, %ld written", (unsigned long long)lines, n);
    T_CHECK(windows > 2);
    int nh;
    const grep_hit *h = grep_hits(g, &nh);
    T_CHECK(nh == 7);
    char want[2048];
    for (int i = 0; i < nh; i++) {
        T_CHECK(h[i].line >= 1 && h[i].line <= (uint64_t)n && h[i].file == 0);
        gen_line(want, sizeof want, (long)h[i].line, 0);
        T_CHECKF(strcmp(h[i].text, want) == 0, "line %llu: '%s' vs '%s'", (unsigned long long)h[i].line, h[i].text, want);
        if (i) T_CHECK(h[i - 1].score > h[i].score || (h[i - 1].score == h[i].score && h[i - 1].line < h[i].line));
        T_CHECK(isfinite(h[i].score) && h[i].score > 0);
        /* context: the neighbours, numbered and in order, cut at the file's ends */
        long nb = h[i].line > 2 ? 2 : (long)h[i].line - 1, na = (long)(n - (long)h[i].line) < 2 ? n - (long)h[i].line : 2;
        T_CHECKF(h[i].n_before == nb && h[i].n_after == na, "line %llu: %d before, %d after",
                 (unsigned long long)h[i].line, h[i].n_before, h[i].n_after);
        for (int j = 0; j < h[i].n_before; j++) {
            T_CHECK(h[i].before[j].line == h[i].line - (uint64_t)(h[i].n_before - j));
            gen_line(want, sizeof want, (long)h[i].before[j].line, 0);
            T_CHECK(strcmp(h[i].before[j].text, want) == 0);
        }
        for (int j = 0; j < h[i].n_after; j++) {
            T_CHECK(h[i].after[j].line == h[i].line + (uint64_t)(j + 1));
            gen_line(want, sizeof want, (long)h[i].after[j].line, 0);
            T_CHECK(strcmp(h[i].after[j].text, want) == 0);
        }
    }
    grep_free(g);
}

/* The same input and question give the same lines and scores; the best K of a larger K are
 * the K best. */
static void test_grep_deterministic(void) {
    if (!have) T_SKIP_MISSING(model_path);
    char path[] = "/tmp/cr_grep_XXXXXX.log";
    int fd = mkstemps(path, 4); T_CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    char b[512];
    for (long i = 1; i <= 120; i++) { gen_line(b, sizeof b, i, 0); fprintf(f, "%s\n", b); }
    fclose(f);
    grep_hit keep[2][12]; int nk[2];
    float s12[12];
    char err[512];
    for (int rep = 0; rep < 3; rep++) {
        grep_opts o; grep_opts_default(&o);
        o.question = "Which session timed out?"; o.k = rep == 2 ? 12 : 5; o.window = 200; o.threads = 1 + rep % 2;
        grep_ctx *g = grep_new(&M, TOK, &o, err, sizeof err);
        T_CHECKF(g, "%s", err);
        const char *in[1] = {path};
        T_CHECKF(grep_paths(g, in, 1, NULL, NULL, err, sizeof err) == 0, "%s", err);
        int n; const grep_hit *h = grep_hits(g, &n);
        if (rep < 2) { nk[rep] = n; for (int i = 0; i < n; i++) { keep[rep][i] = h[i]; keep[rep][i].text = NULL; } }
        else for (int i = 0; i < n && i < 12; i++) s12[i] = h[i].score, keep[1][i].file = (uint32_t)h[i].line;
        grep_free(g);
    }
    unlink(path);
    T_CHECK(nk[0] == 5 && nk[1] == 5);
    for (int i = 0; i < 5; i++) {
        T_CHECK(keep[0][i].line == keep[1][i].line);
        T_CHECKF(fabsf(keep[0][i].score - keep[1][i].score) <= 1e-5f * keep[0][i].score, "%g vs %g", keep[0][i].score, keep[1][i].score);
        T_CHECK(keep[1][i].file == keep[0][i].line);   /* the first 5 of the best 12 */
        (void)s12;
    }
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char l[256]; long v = -1;
    while (fgets(l, sizeof l, f)) if (!strncmp(l, "VmRSS:", 6)) { v = atol(l + 6); break; }
    fclose(f);
    return v;
}

typedef struct { long at, rss_at, rss_max; } rss_probe;
static void on_prog(void *ud, uint64_t lines, uint64_t bytes) {
    (void)bytes;
    rss_probe *p = ud;
    long r = rss_kb();
    if ((long)lines >= p->at && p->rss_at < 0) p->rss_at = r;
    if (p->rss_at >= 0 && r > p->rss_max) p->rss_max = r;
}

/* Memory stays flat on a large .gz from stdin: every line is kept only in its window. */
static void test_grep_memory_flat(void) {
    if (!have) T_SKIP_MISSING(model_path);
    char path[] = "/tmp/cr_grep_XXXXXX.log.gz";
    int fd = mkstemps(path, 7); T_CHECK(fd >= 0); close(fd);
    long n = t_asan() ? 1000 : 6000;
    T_CHECK(write_gz(path, n, 1300) == 0);   /* long lines (~1360 bytes), scored on 8 tokens */
    grep_opts o; grep_opts_default(&o);
    o.question = "disk failed"; o.k = 10; o.context = 1; o.window = 256; o.max_line_tokens = 8; o.threads = 2;
    char err[512];
    grep_ctx *g = grep_new(&M, TOK, &o, err, sizeof err);
    T_CHECKF(g, "%s", err);
    rss_probe p = {n / 8, -1, 0};
    int fd0 = open(path, O_RDONLY), saved = dup(0);
    dup2(fd0, 0); close(fd0);
    const char *in[1] = {"-"};
    int rc = grep_paths(g, in, 1, on_prog, &p, err, sizeof err);
    dup2(saved, 0); close(saved); clearerr(stdin);
    unlink(path);
    T_CHECKF(rc == 0, "%s", err);
    uint64_t lines, bytes;
    grep_stats(g, &lines, &bytes, NULL, NULL);
    T_CHECK(lines == (uint64_t)n);
    int nh; const grep_hit *h = grep_hits(g, &nh);
    T_CHECK(nh == 10);
    char want[2048];
    for (int i = 0; i < nh; i++) { gen_line(want, sizeof want, (long)h[i].line, 1300); T_CHECK(strcmp(h[i].text, want) == 0); }
    long grow = p.rss_max - p.rss_at;
    printf("     %llu lines, %.1f MB of text: RSS %ld KiB after 1/8, at most %ld KiB after (+%ld KiB)\n",
           (unsigned long long)lines, bytes / 1e6, p.rss_at, p.rss_max, grow);
    if (!t_asan())   /* ASan's allocator quarantines freed memory: no RSS bound there */
        T_CHECKF(grow < 2048 && (double)grow * 1024 < bytes * 0.25, "RSS grew by %ld KiB over %.1f MB of input", grow, bytes / 1e6);
    grep_free(g);
}

static void test_grep_errors(void) {
    if (!have) T_SKIP_MISSING(model_path);
    char err[512];
    grep_opts o; grep_opts_default(&o);
    o.question = "x"; o.window = 8;   /* no room for lines */
    T_CHECK(grep_new(&M, TOK, &o, err, sizeof err) == NULL && strstr(err, "window"));
    o.window = 128;
    grep_ctx *g = grep_new(&M, TOK, &o, err, sizeof err);
    T_CHECKF(g, "%s", err);
    const char *in[1] = {"/nonexistent/x.log"};
    T_CHECK(grep_paths(g, in, 1, NULL, NULL, err, sizeof err) < 0 && strstr(err, "/nonexistent/x.log"));
    grep_free(g);
}

int main(void) {
    char err[512];
    /* the model missing: every case SKIPs; there but not loadable: FAIL */
    if (t_have_shared("models/stories260K.gguf", model_path, sizeof model_path)) {
        if (model_load(&M, model_path, err, sizeof err)) { printf("FAIL load: %s\n", err); return 1; }
        TOK = tok_load(&M.g, NULL, err, sizeof err);
        if (!TOK) { printf("FAIL tokenizer: %s\n", err); return 1; }
        have = 1;
    }
    T_RUN(test_grep_numbering_stdin_gz);
    T_RUN(test_grep_deterministic);
    T_RUN(test_grep_memory_flat);
    T_RUN(test_grep_errors);
    if (TOK) tok_free(TOK);
    if (have) model_free(&M);
    return t_summary();
}
