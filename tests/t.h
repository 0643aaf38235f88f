/* Minimal test harness: each test binary prints one line per case
 * (PASS/FAIL/SKIP) and ends with "N passed, N failed, N skipped".
 * tests/run.sh adds the lines of every binary up. */
#ifndef T_H
#define T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <sys/stat.h>

static int t_pass, t_failn, t_skipn, t_cur_failed, t_cur_skipped;
static const char *t_cur;

static inline void t_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    fprintf(stdout, "FAIL %s: %s:%d: ", t_cur, file, line);
    vfprintf(stdout, fmt, ap); fputc('\n', stdout); fflush(stdout);
    va_end(ap);
    t_cur_failed = 1;
}
static inline void t_skip_msg(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    fprintf(stdout, "SKIP %s: ", t_cur);
    vfprintf(stdout, fmt, ap); fputc('\n', stdout); fflush(stdout);
    va_end(ap);
    t_cur_skipped = 1;
}
#define T_CHECK(c) do { if (!(c)) { t_fail(__FILE__, __LINE__, "%s", #c); return; } } while (0)
#define T_CHECKF(c, ...) do { if (!(c)) { t_fail(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)
#define T_EXPECTF(c, ...) do { if (!(c)) { t_fail(__FILE__, __LINE__, __VA_ARGS__); } } while (0)
#define T_SKIP(...) do { t_skip_msg(__VA_ARGS__); return; } while (0)
#define T_RUN(fn) do { t_cur = #fn; t_cur_failed = t_cur_skipped = 0; fn(); \
    if (t_cur_skipped && !t_cur_failed) t_skipn++; \
    else if (t_cur_failed) t_failn++; else { t_pass++; printf("PASS %s\n", #fn); fflush(stdout); } } while (0)
static inline int t_summary(void) {
    printf("%d passed, %d failed, %d skipped\n", t_pass, t_failn, t_skipn);
    return t_failn ? 1 : 0;
}
/* The shared folder beside the checkout (models, data, tokenizers). */
static inline const char *t_shared(void) {
    const char *s = getenv("CR_SHARED");
    return s ? s : "../shared";
}
/* Writes the shared folder's REL ("models/stories260K.gguf") to PATH; 1 when that file
 * (or folder) exists. A file that exists but does not load is the test's to fail. */
static inline int t_have_shared(const char *rel, char *path, size_t n) {
    struct stat st;
    snprintf(path, n, "%s/%s", t_shared(), rel);
    return stat(path, &st) == 0;
}
/* SKIP line for a missing file: "stories260K.gguf not found under ../shared/models". */
static inline void t_skip_missing(const char *path) {
    const char *slash = strrchr(path, '/');
    if (slash && slash > path) t_skip_msg("%s not found under %.*s", slash + 1, (int)(slash - path), path);
    else t_skip_msg("%s not found", path);
}
#define T_SKIP_MISSING(path) do { t_skip_missing(path); return; } while (0)
/* In a test case: SKIP it (and return) when the shared folder lacks REL. Put it before the
 * first use of the file, so that the checks before it still run. */
#define T_NEED_SHARED(rel) do { char t_need_[1024]; \
    if (!t_have_shared((rel), t_need_, sizeof t_need_)) T_SKIP_MISSING(t_need_); } while (0)
/* In main(), for a binary whose set-up needs REL before any case: 1 when it is there; else
 * one SKIP line for the whole binary ("SKIP all: ... not found under ...") and 0, and main
 * returns t_summary(). */
static inline int t_have_shared_all(const char *rel, char *path, size_t n) {
    if (t_have_shared(rel, path, n)) return 1;
    t_cur = "all"; t_skip_missing(path); t_skipn++;
    return 0;
}
/* Run a shell command, return everything it wrote on stdout (malloc'd, NUL-terminated) and
 * its exit status in *status (-1 when it did not exit normally). */
static inline char *t_popen_read(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 16, n = 0, k;
    char *out = malloc(cap);
    if (!p) { out[0] = 0; *status = -1; return out; }
    while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) { n += k; if (n + 1 >= cap) { cap *= 2; out = realloc(out, cap); } }
    out[n] = 0;
    int st = pclose(p);
    *status = (st != -1 && (st & 0x7f) == 0) ? (st >> 8) & 0xff : -1;
    return out;
}

/* The first n bytes of file src, cut after the last newline, written to dst. 0, or -1. */
static inline int t_copy_head(const char *src, const char *dst, size_t n) {
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    char *b = malloc(n);
    size_t k = fread(b, 1, n, f);
    fclose(f);
    while (k > 0 && b[k - 1] != '\n') k--;
    FILE *g = fopen(dst, "wb");
    if (!g) { free(b); return -1; }
    fwrite(b, 1, k, g); fclose(g); free(b);
    return k ? 0 : -1;
}

static inline int t_asan(void) { const char *s = getenv("CR_ASAN"); return s && *s == '1'; }
#endif
