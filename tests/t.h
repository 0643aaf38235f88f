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

static inline int t_asan(void) { const char *s = getenv("CR_ASAN"); return s && *s == '1'; }
#endif
