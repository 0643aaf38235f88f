/* Helpers shared by the ingest tests: the other tests/app_ingest*.c files #include this file
 * with APP_INGEST_UTIL_NO_MAIN defined; built alone it is a test of the reference decoder
 * the other tests compare against. */
#ifndef APP_INGEST_UTIL_H
#define APP_INGEST_UTIL_H
#define U_FN static __attribute__((unused))
#include "t.h"
#include "ingest.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char u_tmp[256];

U_FN int u_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}
U_FN const char *u_tmpdir(void) {
    if (!u_tmp[0]) {
        const char *d = getenv("TMPDIR");
        snprintf(u_tmp, sizeof u_tmp, "%s/cr-ingest-test-XXXXXX", d && *d ? d : "/tmp");
        if (!mkdtemp(u_tmp)) { perror("mkdtemp"); exit(2); }
    }
    return u_tmp;
}
U_FN void u_cleanup(void) {
    if (u_tmp[0]) nftw(u_tmp, u_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}
U_FN char *u_path(const char *name) {   /* static rotating buffers */
    static char b[8][512];
    static int i;
    char *p = b[i++ & 7];
    snprintf(p, 512, "%s/%s", u_tmpdir(), name);
    return p;
}
U_FN int u_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}
U_FN char *u_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[sz] = 0; if (n) *n = (size_t)sz; }
    return b;
}
U_FN char *u_shared(const char *rel) {
    static char b[4][1024];
    static int i;
    char *p = b[i++ & 3];
    snprintf(p, 1024, "%s/%s", t_shared(), rel);
    return p;
}

/* All chunks of an ingest, copied, with stream invariants checked. */
typedef struct { cr_chunk c; char *text; } u_chunk;
typedef struct {
    u_chunk *v; size_t n, cap;
    char *all; size_t all_len;         /* concatenation */
    cr_ingest *in;                     /* kept open for doc info */
    int rc;
    char err[512];
    char bad[256];                     /* first invariant violation, "" if none */
} u_stream;

U_FN void u_stream_free(u_stream *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i].text);
    free(s->v); free(s->all);
    if (s->in) cr_ingest_close(s->in);
    memset(s, 0, sizeof *s);
}

/* keep_text: 0 = only the concatenation (for large inputs). */
U_FN int u_collect(u_stream *s, const char *const *paths, int n, const cr_ingest_opts *o, int keep) {
    memset(s, 0, sizeof *s);
    s->in = cr_ingest_open(paths, n, o, s->err, sizeof s->err);
    if (!s->in) { s->rc = -1; return -1; }
    size_t cap = 1 << 20;
    s->all = malloc(cap);
    cr_chunk c;
    int r, last_doc = -1, prev_header = 0;
    uint32_t last_sec = 0;
    while ((r = cr_ingest_next(s->in, &c, s->err, sizeof s->err)) > 0) {
        if (!s->bad[0] && c.offset != s->all_len)
            snprintf(s->bad, sizeof s->bad, "offset %llu != %zu", (unsigned long long)c.offset, s->all_len);
        int newdoc = (int)c.doc != last_doc;
        if (!s->bad[0] && (int)c.doc < last_doc) snprintf(s->bad, sizeof s->bad, "doc went back");
        if (!s->bad[0] && !newdoc && c.section < last_sec) snprintf(s->bad, sizeof s->bad, "section went back");
        if (!s->bad[0] && !(c.flags & CR_CHUNK_HEADER) && !!(c.flags & CR_CHUNK_SECTION) !=
                              (newdoc || c.section != last_sec || prev_header))
            snprintf(s->bad, sizeof s->bad, "SECTION flag wrong at offset %llu", (unsigned long long)c.offset);
        if (!s->bad[0] && c.len == 0) snprintf(s->bad, sizeof s->bad, "empty chunk");
        if (!(c.flags & CR_CHUNK_HEADER)) last_sec = c.section;
        else last_sec = 0;
        prev_header = !!(c.flags & CR_CHUNK_HEADER);
        last_doc = (int)c.doc;
        if (s->all_len + c.len + 1 > cap) {
            while (s->all_len + c.len + 1 > cap) cap *= 2;
            s->all = realloc(s->all, cap);
        }
        memcpy(s->all + s->all_len, c.text, c.len);
        s->all_len += c.len;
        if (keep) {
            if (s->n == s->cap) { s->cap = s->cap ? s->cap * 2 : 1024; s->v = realloc(s->v, s->cap * sizeof *s->v); }
            s->v[s->n].c = c;
            s->v[s->n].text = malloc(c.len + 1);
            memcpy(s->v[s->n].text, c.text, c.len);
            s->v[s->n].text[c.len] = 0;
            s->v[s->n].c.text = s->v[s->n].text;
        }
        s->n += !keep ? 0 : 1;
    }
    s->all[s->all_len] = 0;
    s->rc = r;
    return r;
}
U_FN int u_collect1(u_stream *s, const char *path, const cr_ingest_opts *o, int keep) {
    const char *p[1] = {path};
    return u_collect(s, p, 1, o, keep);
}

/* Reference decoding, independent of the ingest code: UTF-8 if valid, else CP1252 (with
 * U+FFFD for its 5 undefined bytes); BOM dropped; CRLF -> LF. */
U_FN int u_valid_utf8(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i], cp;
        int k;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        for (int j = 1; j <= k; j++) {
            if (i + (size_t)j >= n || (p[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)k + 1;
    }
    return 1;
}
U_FN char *u_ref_decode(const unsigned char *p, size_t n, size_t *out_n, int *was_cp1252) {
    static const unsigned short tbl[32] = {
        0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) { p += 3; n -= 3; }
    int utf8 = u_valid_utf8(p, n);
    if (was_cp1252) *was_cp1252 = !utf8;
    char *o = malloc(3 * n + 1), *d = o;
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c == '\r' && i + 1 < n && p[i + 1] == '\n') continue;
        if (utf8 || c < 0x80) { *d++ = (char)c; continue; }
        unsigned cp = c >= 0xA0 ? c : tbl[c - 0x80];
        if (cp < 0x800) { *d++ = (char)(0xC0 | cp >> 6); *d++ = (char)(0x80 | (cp & 0x3F)); }
        else { *d++ = (char)(0xE0 | cp >> 12); *d++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *d++ = (char)(0x80 | (cp & 0x3F)); }
    }
    *d = 0;
    *out_n = (size_t)(d - o);
    return o;
}

/* Lines of a decoded text: starts[i] = offset of line i+1, lens without '\n'. */
typedef struct { const char *base; size_t *off, *len; size_t n; } u_lines;
U_FN void u_split_lines(u_lines *l, const char *t, size_t n) {
    size_t cap = 1024;
    l->base = t; l->n = 0;
    l->off = malloc(cap * sizeof *l->off); l->len = malloc(cap * sizeof *l->len);
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(t + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - t) : n;
        if (l->n == cap) { cap *= 2; l->off = realloc(l->off, cap * sizeof *l->off); l->len = realloc(l->len, cap * sizeof *l->len); }
        l->off[l->n] = i; l->len[l->n] = e - i; l->n++;
        i = e + 1;
    }
}
U_FN void u_lines_free(u_lines *l) { free(l->off); free(l->len); memset(l, 0, sizeof *l); }

/* Peak RSS (VmHWM) in KiB, after resetting it if the kernel allows. */
U_FN long u_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, k)) { v = strtol(line + k, NULL, 10); break; }
    fclose(f);
    return v;
}
U_FN void u_reset_hwm(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) { if (write(fd, "5", 1) < 0) { /* not allowed: HWM stays */ } close(fd); }
}

#ifndef APP_INGEST_UTIL_NO_MAIN
static void t_ref_decoder(void) {
    size_t n; int cp;
    char *d = u_ref_decode((const unsigned char *)"\xEF\xBB\xBF" "a\r\nb\xC3\xA9\n", 10, &n, &cp);
    T_CHECKF(!cp && n == 6 && !memcmp(d, "a\nb\xC3\xA9\n", 6), "utf-8: %zu %d", n, cp);
    free(d);
    d = u_ref_decode((const unsigned char *)"caf\xE9 \x93" "q\x94 \x81", 10, &n, &cp);
    T_CHECKF(cp && !strcmp(d, "caf\xC3\xA9 \xE2\x80\x9C" "q\xE2\x80\x9D \xEF\xBF\xBD"), "cp1252: %s", d);
    free(d);
    T_CHECK(!u_valid_utf8((const unsigned char *)"\xED\xA0\x80", 3));   /* surrogate */
    T_CHECK(!u_valid_utf8((const unsigned char *)"\xE0\x80\x80", 3));   /* overlong */
    T_CHECK(!u_valid_utf8((const unsigned char *)"\xE2\x82", 2));        /* truncated */
    T_CHECK(u_valid_utf8((const unsigned char *)"\xF0\x9F\x98\x80", 4));
    u_lines l;
    u_split_lines(&l, "a\n\nbc", 5);
    T_CHECK(l.n == 3 && l.len[0] == 1 && l.len[1] == 0 && l.off[2] == 3 && l.len[2] == 2);
    u_lines_free(&l);
}
int main(void) {
    T_RUN(t_ref_decoder);
    u_cleanup();
    return t_summary();
}
#endif
#endif
