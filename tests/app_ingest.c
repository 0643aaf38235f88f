/* Ingestion layer: text and log decoding, Gutenberg stripping, chapter headings, gzip,
 * stdin, streaming memory bound, line-number exactness on every book and log of
 * ../shared/data, multiple documents, docmap recording, --extract, bad input. */
#define APP_INGEST_UTIL_NO_MAIN
#include "app_ingest_util.c"
#include "extract.h"
#include <dirent.h>
#include <time.h>
#include <zlib.h>

static int nwarn;
static char lastwarn[512];
static void on_warn(void *ud, const char *m) { (void)ud; nwarn++; snprintf(lastwarn, sizeof lastwarn, "%s", m); }

/* ---- decoding ------------------------------------------------------------------------- */
static void t_decode_utf8_bom_crlf_invalid(void) {
    const char *p = u_path("a.txt");
    static const char data[] = "\xEF\xBB\xBF" "Hello\r\nW\xC3\xB6rld \xFF end\r\n\r\nPara \xE2\x82 two\r\n";
    T_CHECK(!u_write(p, data, sizeof data - 1));
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.headers = 0;
    u_stream s;
    u_collect1(&s, p, &o, 1);
    T_CHECKF(s.rc == 0, "%s", s.err);
    T_CHECKF(!s.bad[0], "%s", s.bad);
    T_CHECKF(!strcmp(s.all, "Hello\nW\xC3\xB6rld \xEF\xBF\xBD end\n\nPara \xEF\xBF\xBD two\n"), "got [%s]", s.all);
    T_CHECKF(s.n == 2 && s.v[0].c.line == 1 && s.v[1].c.line == 4, "chunks %zu", s.n);
    const cr_docinfo *d = cr_ingest_doc(s.in, 0);
    T_CHECKF(d->invalid == 2 && !strcmp(d->encoding, "utf-8") && d->kind == CR_DOC_TEXT && d->lines == 4,
             "invalid %llu enc %s lines %llu", (unsigned long long)d->invalid, d->encoding, (unsigned long long)d->lines);
    u_stream_free(&s);
}

static void t_decode_cp1252(void) {
    const char *p = u_path("cp.txt");
    static const char data[] = "caf\xE9 \x93quoted\x94 \x80 \x81 na\xEFve\n";
    T_CHECK(!u_write(p, data, sizeof data - 1));
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.headers = 0;
    u_stream s;
    u_collect1(&s, p, &o, 0);
    T_CHECKF(s.rc == 0, "%s", s.err);
    T_CHECKF(!strcmp(s.all, "caf\xC3\xA9 \xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x82\xAC \xEF\xBF\xBD na\xC3\xAFve\n"), "got [%s]", s.all);
    const cr_docinfo *d = cr_ingest_doc(s.in, 0);
    T_CHECKF(!strcmp(d->encoding, "cp1252") && d->invalid == 1, "%s %llu", d->encoding, (unsigned long long)d->invalid);
    u_stream_free(&s);
}

/* ASCII for more than the sniffed block, then a Latin-1 byte: switches to CP1252 exactly;
 * a NUL after the sniffed block is replaced and counted. */
static void t_decode_late_latin1_and_nul(void) {
    size_t n = 100000;
    char *b = malloc(n + 64);
    for (size_t i = 0; i < n; i++) b[i] = (i % 61 == 60) ? '\n' : 'a' + (char)(i % 26);
    b[n - 1] = '\n';
    size_t k = n;
    memcpy(b + k, "\xE9t\xE9 \x00 x\n", 8); k += 8;
    const char *p = u_path("late.txt");
    T_CHECK(!u_write(p, b, k));
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.headers = 0; o.mode = CR_INGEST_TEXT;
    u_stream s;
    u_collect1(&s, p, &o, 0);
    T_CHECKF(s.rc == 0, "%s", s.err);
    T_CHECKF(s.all_len == n + 12, "len %zu", s.all_len);   /* \xC3\xA9 t \xC3\xA9, space, U+FFFD, " x\n" */
    T_CHECK(!memcmp(s.all, b, n));
    T_CHECKF(!memcmp(s.all + n, "\xC3\xA9t\xC3\xA9 \xEF\xBF\xBD x\n", 11), "tail [%s]", s.all + n);
    const cr_docinfo *d = cr_ingest_doc(s.in, 0);
    T_CHECKF(!strcmp(d->encoding, "cp1252") && d->nul == 1 && d->invalid == 0, "%s nul %llu", d->encoding, (unsigned long long)d->nul);
    u_stream_free(&s);
    free(b);
}

static void t_binary_detected(void) {
    char b[4096];
    for (size_t i = 0; i < sizeof b; i++) b[i] = (char)(i * 7 + 3);
    const char *p = u_path("bin.dat");
    T_CHECK(!u_write(p, b, sizeof b));
    u_stream s;
    u_collect1(&s, p, NULL, 0);
    T_CHECKF(s.rc < 0 && strstr(s.err, "bin.dat: binary file"), "rc %d err %s", s.rc, s.err);
    u_stream_free(&s);
    memset(b, 0x01, sizeof b);                 /* control characters, no NUL */
    memcpy(b, "text", 4);
    T_CHECK(!u_write(p, b, sizeof b));
    u_collect1(&s, p, NULL, 0);
    T_CHECKF(s.rc < 0 && strstr(s.err, "binary file (control"), "err %s", s.err);
    u_stream_free(&s);
    static const char xz[] = "\xFD" "7zXZ\0\0\0\0";
    T_CHECK(!u_write(p, xz, sizeof xz - 1));
    u_collect1(&s, p, NULL, 0);
    T_CHECKF(s.rc < 0 && strstr(s.err, "xz-compressed"), "err %s", s.err);
    u_stream_free(&s);
}

/* ---- text structure --------------------------------------------------------------------- */
static void t_heading_levels(void) {
    static const struct { const char *s; int lvl; } cases[] = {
        {"CHAPTER I", 2}, {"Chapter 12.", 2}, {"CHAPTER 1. Loomings.", 2}, {"BOOK THREE: 1807", 1},
        {"EPILOGUE", 3}, {"Epilogue \xE2\x80\x9C" "AND I ONLY\xE2\x80\x9D", 3}, {"FIRST EPILOGUE: 1813 - 20", 1},
        {"SECOND EPILOGUE", 1}, {"PART I.", 1}, {"Book the First--Recalled to Life", 1},
        {"CHAPTER THE LAST", 2}, {"Chapter 1 PETER BREAKS THROUGH", 2}, {"ETYMOLOGY. (Supplied)", 3},
        {"VOLUME II\r\n", 1}, {"Chapter One", 2},
        {"chapter 1", 0}, {"CHAPTER", 0}, {"Chapters of life", 0}, {"Part of the plan", 0},
        {"Bookkeeping", 0}, {"  CHAPTER I", 0}, {"CHAPTER 12345", 0}, {"ChApTeR I", 0},
        {"The CHAPTER I", 0}, {"", 0}, {"PREFACEFUL", 0},
        {"CHAPTER I  xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int l = cr_heading_level(cases[i].s, strlen(cases[i].s));
        T_CHECKF(l == cases[i].lvl, "'%s': %d, want %d", cases[i].s, l, cases[i].lvl);
    }
}

static const char BOOK[] =
    "The Project Gutenberg eBook of Test\n"               /* 1 */
    "\n"
    "Title: A   Test Book\n"                              /* 3 */
    "\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\n"   /* 5 */
    "\n"
    "\n"
    "CONTENTS\n"                                          /* 8 */
    "\n"
    "\n"
    "CHAPTER I\n"                                         /* 11: table of contents */
    "\n"
    "CHAPTER II\n"                                        /* 13 */
    "\n"
    "\n"
    "BOOK ONE: 1805\n"                                    /* 16 */
    "\n"
    "\n"
    "CHAPTER I\n"                                         /* 19 */
    "\n"
    "Text one line one\n"                                 /* 21 */
    "line two.\n"
    "\n"
    "\n"
    "\n"
    "CHAPTER II\n"                                        /* 26 */
    "Text of two.\n"                                      /* 27 */
    "\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\n"     /* 29 */
    "License text.\n";                                    /* 30 */

static void t_gutenberg_and_sections(void) {
    const char *p = u_path("book.txt");
    T_CHECK(!u_write(p, BOOK, sizeof BOOK - 1));
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.strip_gutenberg = 1;
    u_stream s;
    u_collect1(&s, p, &o, 1);
    T_CHECKF(s.rc == 0 && !s.bad[0], "%s %s", s.err, s.bad);
    const char *want =
        "# A Test Book\n\n"
        "CONTENTS\n\n"
        "CHAPTER I\n\n"
        "CHAPTER II\n\n"
        "BOOK ONE: 1805\n\n"
        "CHAPTER I\n\n"
        "Text one line one\nline two.\n\n"
        "CHAPTER II\nText of two.\n\n";
    T_CHECKF(!strcmp(s.all, want), "got [%s]", s.all);
    const cr_docinfo *d = cr_ingest_doc(s.in, 0);
    T_CHECKF(!strcmp(d->title, "A Test Book"), "title %s", d->title);
    T_CHECKF(d->nsections == 4, "sections %u", d->nsections);
    static const char *titles[] = {"A Test Book", "BOOK ONE: 1805", "BOOK ONE: 1805 / CHAPTER I",
                                   "BOOK ONE: 1805 / CHAPTER II"};
    static const uint64_t lines[] = {8, 16, 19, 26};
    for (int i = 0; i < 4; i++) {
        T_CHECKF(!strcmp(d->sections[i].title, titles[i]), "section %d: %s", i, d->sections[i].title);
        T_CHECKF(d->sections[i].line == lines[i], "section %d line %llu", i, (unsigned long long)d->sections[i].line);
        /* the section starts exactly at its heading in the stream */
        if (i) T_CHECKF(!strncmp(s.all + d->sections[i].offset, strrchr(titles[i], '/') ? strrchr(titles[i], '/') + 2 : titles[i], 9),
                        "section %d offset", i);
    }
    /* chunk lines are those of the original file */
    for (size_t i = 0; i < s.n; i++)
        if (strstr(s.v[i].text, "Text one")) T_CHECKF(s.v[i].c.line == 21, "line %llu", (unsigned long long)s.v[i].c.line);
    u_stream_free(&s);
    /* without stripping: the license stays, the title is still found */
    o.strip_gutenberg = 0;
    u_collect1(&s, p, &o, 1);
    T_CHECKF(s.rc == 0, "%s", s.err);
    T_CHECK(strstr(s.all, "License text.\n") && strstr(s.all, "Title: A   Test Book"));
    T_CHECK(!strcmp(cr_ingest_doc(s.in, 0)->title, "A Test Book"));
    T_CHECK(s.v[1].c.line == 1);
    u_stream_free(&s);
}

/* Long lines: logs split into pieces of max_line bytes at UTF-8 boundaries, same line. */
static void t_long_lines(void) {
    size_t big = 100000;
    char *b = malloc(2 * big + 16);
    size_t k = 0;
    memcpy(b, "first\n", 6); k = 6;
    for (size_t i = 0; i < big; i++) { b[k++] = (char)0xC3; b[k++] = (char)0xA9; }   /* é x 100000 */
    b[k++] = '\n';
    memcpy(b + k, "last\n", 5); k += 5;
    const char *p = u_path("long.log");
    T_CHECK(!u_write(p, b, k));
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.max_line = 65537; o.headers = 0; o.warn = on_warn;
    nwarn = 0;
    u_stream s;
    u_collect1(&s, p, &o, 1);
    T_CHECKF(s.rc == 0 && !s.bad[0], "%s %s", s.err, s.bad);
    T_CHECK(s.all_len == k && !memcmp(s.all, b, k));
    T_CHECKF(s.n == 2 + 4, "chunks %zu", s.n);
    for (size_t i = 1; i < 5; i++) {
        T_CHECKF(s.v[i].c.line == 2, "piece %zu line %llu", i, (unsigned long long)s.v[i].c.line);
        T_CHECKF(s.v[i].c.len % 2 == (i == 4 ? 1u : 0u), "piece %zu cut inside a character (%zu)", i, s.v[i].c.len);
        T_CHECK(!!(s.v[i].c.flags & CR_CHUNK_SPLIT) == (i < 4));
        T_CHECK(s.v[i].c.flags & CR_CHUNK_RECORD);
    }
    T_CHECK(s.v[5].c.line == 3);
    T_CHECK(cr_ingest_doc(s.in, 0)->split_lines == 1 && nwarn == 1 && strstr(lastwarn, "line 2 is longer"));
    u_stream_free(&s);
    /* text mode: a single huge line is cut into bounded chunks too */
    o.mode = CR_INGEST_TEXT; o.max_chunk = 1000;
    u_collect1(&s, p, &o, 1);
    T_CHECKF(s.rc == 0 && !s.bad[0], "%s %s", s.err, s.bad);
    T_CHECK(s.all_len == k && !memcmp(s.all, b, k));
    for (size_t i = 0; i < s.n; i++) T_CHECKF(s.v[i].c.len <= 1000, "chunk %zu has %zu bytes", i, s.v[i].c.len);
    u_stream_free(&s);
    free(b);
}

/* ---- every book of ../shared/data: exact lines ------------------------------------------ */
/* Every text chunk is a run of whole original lines starting at chunk.line (or a piece of
 * one); together they cover every non-blank line of the body exactly once. */
static int check_text_lines(const char *path, int strip, char *msg, size_t mn, int *nsec, const char **first_sec) {
    size_t rn, dn;
    unsigned char *raw = (unsigned char *)u_read(path, &rn);
    if (!raw) { snprintf(msg, mn, "cannot read %s", path); return -1; }
    char *dec = u_ref_decode(raw, rn, &dn, NULL);
    free(raw);
    u_lines L;
    u_split_lines(&L, dec, dn);
    unsigned char *cov = calloc(L.n + 2, 1);
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.strip_gutenberg = strip;
    o.mode = CR_INGEST_TEXT;
    u_stream s;
    u_collect1(&s, path, &o, 1);
    int rc = -1;
    if (s.rc) { snprintf(msg, mn, "%s", s.err); goto out; }
    if (s.bad[0]) { snprintf(msg, mn, "%s", s.bad); goto out; }
    for (size_t i = 0; i < s.n; i++) {
        const cr_chunk *c = &s.v[i].c;
        if (c->flags & CR_CHUNK_HEADER) continue;
        size_t ln = c->line, pos = 0;
        while (pos < c->len) {
            const char *nl = memchr(c->text + pos, '\n', c->len - pos);
            size_t e = nl ? (size_t)(nl - c->text) : c->len;
            if (ln == 0 || ln > L.n) { snprintf(msg, mn, "chunk line %zu beyond file", ln); goto out; }
            const char *ref = L.base + L.off[ln - 1];
            size_t rl = L.len[ln - 1];
            int piece = !nl;               /* no newline: a piece (or the file's last line) */
            size_t seg = e - pos;
            /* a chunk's first segment may be the tail of a line split across chunks */
            int ok = piece ? memmem(ref, rl, c->text + pos, seg) != NULL
                           : (pos == 0 ? seg <= rl && !memcmp(ref + rl - seg, c->text, seg)
                                       : seg == rl && !memcmp(ref, c->text + pos, seg));
            if (!ok) {
                snprintf(msg, mn, "line %zu differs: [%.*s] vs [%.*s]", ln, (int)(seg > 80 ? 80 : seg),
                         c->text + pos, (int)(rl > 80 ? 80 : rl), ref);
                goto out;
            }
            if (!piece || e - pos == rl) cov[ln]++;
            if (nl) ln++;
            pos = e + (nl ? 1 : 0);
        }
    }
    /* coverage: every non-blank line inside the body, exactly once */
    size_t first = 1, last = L.n;
    if (strip) {
        for (size_t i = 0; i < L.n; i++) {
            const char *t = L.base + L.off[i];
            if (L.len[i] > 12 && !strncmp(t, "*** START OF", 12) && first == 1) first = i + 2;
            if (L.len[i] > 10 && !strncmp(t, "*** END OF", 10)) { last = i; break; }
        }
    }
    for (size_t ln = first; ln <= last; ln++) {
        int blank = 1;
        for (size_t k = 0; k < L.len[ln - 1]; k++)
            if (!strchr(" \t\r\f\v", L.base[L.off[ln - 1] + k])) { blank = 0; break; }
        if (!blank && cov[ln] != 1) { snprintf(msg, mn, "line %zu covered %d times", ln, cov[ln]); goto out; }
    }
    const cr_docinfo *d = cr_ingest_doc(s.in, 0);
    if (nsec) *nsec = (int)d->nsections;
    if (first_sec) {
        static char fs[256];
        fs[0] = 0;
        for (uint32_t k = 0; k < d->nsections; k++)
            if (strcasestr(d->sections[k].title, "chapter")) { snprintf(fs, sizeof fs, "%s", d->sections[k].title); break; }
        *first_sec = fs;
    }
    /* sections start at the line they claim */
    for (uint32_t k = 1; k < d->nsections; k++) {
        const cr_section *sec = &d->sections[k];
        if (!sec->line || sec->line > L.n || sec->offset >= s.all_len ||
            memcmp(s.all + sec->offset, L.base + L.off[sec->line - 1], L.len[sec->line - 1] < 8 ? L.len[sec->line - 1] : 8)) {
            snprintf(msg, mn, "section %u (%s) does not start at its line %llu", k, sec->title, (unsigned long long)sec->line);
            goto out;
        }
    }
    rc = 0;
out:
    u_stream_free(&s);
    u_lines_free(&L);
    free(cov); free(dec);
    return rc;
}

static void t_books_txt_lines_exact(void) {
    T_NEED_SHARED("data/books/txt");
    DIR *dir = opendir(u_shared("data/books/txt"));
    T_CHECK(dir);
    struct dirent *de;
    int n = 0;
    char msg[512];
    while ((de = readdir(dir))) {
        if (!strstr(de->d_name, ".txt")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/data/books/txt/%s", t_shared(), de->d_name);
        for (int strip = 0; strip < 2; strip++) {
            int nsec = 0;
            const char *fs = NULL;
            if (check_text_lines(path, strip, msg, sizeof msg, &nsec, &fs)) {
                closedir(dir);
                T_CHECKF(0, "%s (strip %d): %s", de->d_name, strip, msg);
            }
            if (strip && !strcmp(de->d_name, "2600-0.txt")) {
                T_EXPECTF(nsec == 383 && !strcmp(fs, "BOOK ONE: 1805 / CHAPTER I"), "2600: %d sections, first chapter %s", nsec, fs);
            }
            if (strip && !strcmp(de->d_name, "2701-0.txt")) {
                T_EXPECTF(nsec == 139 && !strcmp(fs, "CHAPTER 1. Loomings."), "2701: %d sections, first chapter %s", nsec, fs);
            }
        }
        n++;
    }
    closedir(dir);
    T_CHECKF(n >= 15, "only %d books", n);
}

static void t_cp1252_book(void) {
    const char *p = u_shared("data/books/txt/74-0.txt");
    T_NEED_SHARED("data/books/txt/74-0.txt");
    u_stream s;
    u_collect1(&s, p, NULL, 0);
    T_CHECKF(s.rc == 0, "%s", s.err);
    const cr_docinfo *d = cr_ingest_doc(s.in, 0);
    T_CHECKF(!strcmp(d->encoding, "cp1252") && d->invalid == 0, "%s %llu", d->encoding, (unsigned long long)d->invalid);
    T_CHECK(strstr(s.all, "\xE2\x80\x9C") != NULL);          /* curly quotes came through */
    T_CHECK(!strcmp(d->title, "The Adventures of Tom Sawyer, Complete"));
    u_stream_free(&s);
}

/* ---- logs ----------------------------------------------------------------------------- */
/* Every chunk is exactly one line: line number and text equal the file's line. */
static int check_log(const char *path, const char *logical, const cr_ingest_opts *o, size_t *nlines,
                     size_t *ndiff, char *msg, size_t mn) {
    size_t rn, dn;
    unsigned char *raw = (unsigned char *)u_read(logical, &rn);
    if (!raw) { snprintf(msg, mn, "cannot read %s", logical); return -1; }
    char *dec = u_ref_decode(raw, rn, &dn, NULL);
    u_lines L, R;
    u_split_lines(&L, dec, dn);
    u_split_lines(&R, (char *)raw, rn);
    u_stream s;
    u_collect1(&s, path, o, 1);
    int rc = -1;
    size_t next = 1, diff = 0;
    if (s.rc) { snprintf(msg, mn, "%s", s.err); goto out; }
    if (s.bad[0]) { snprintf(msg, mn, "%s", s.bad); goto out; }
    if (cr_ingest_doc(s.in, 0)->kind != CR_DOC_LOG) { snprintf(msg, mn, "not read as a log"); goto out; }
    for (size_t i = 0; i < s.n; i++) {
        const cr_chunk *c = &s.v[i].c;
        if (c->flags & CR_CHUNK_HEADER) continue;
        if (c->line != next) { snprintf(msg, mn, "chunk %zu: line %llu, want %zu", i, (unsigned long long)c->line, next); goto out; }
        size_t len = c->len;
        if (len && c->text[len - 1] == '\n') len--;
        else if (next != L.n) { snprintf(msg, mn, "line %zu: no newline", next); goto out; }
        if (memchr(c->text, '\n', len)) { snprintf(msg, mn, "line %zu: chunk holds more than one line", next); goto out; }
        if (len != L.len[next - 1] || memcmp(c->text, L.base + L.off[next - 1], len)) {
            snprintf(msg, mn, "line %zu differs: [%.*s]", next, (int)(len > 80 ? 80 : len), c->text);
            goto out;
        }
        size_t rl = R.len[next - 1];
        if (rl && raw[R.off[next - 1] + rl - 1] == '\r') rl--;
        if (rl != len || memcmp(raw + R.off[next - 1], c->text, len)) diff++;
        next++;
    }
    if (next - 1 != L.n - (L.n && L.len[L.n - 1] == 0 && dec[dn - 1] == '\n' ? 0 : 0)) {
        snprintf(msg, mn, "%zu lines read, file has %zu", next - 1, L.n);
        goto out;
    }
    *nlines = next - 1;
    *ndiff = diff;
    rc = 0;
out:
    u_stream_free(&s);
    u_lines_free(&L); u_lines_free(&R);
    free(raw); free(dec);
    return rc;
}

static void t_logs_lines_exact(void) {
    T_NEED_SHARED("data/logs/loghub_2k");
    T_NEED_SHARED("data/logs/full");
    const char *dirs[] = {"data/logs/loghub_2k", "data/logs/full"};
    char msg[512];
    int n = 0;
    for (int k = 0; k < 2; k++) {
        DIR *dir = opendir(u_shared(dirs[k]));
        T_CHECK(dir);
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (!strstr(de->d_name, ".log")) continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s/%s", t_shared(), dirs[k], de->d_name);
            size_t lines, diff;
            if (check_log(path, path, NULL, &lines, &diff, msg, sizeof msg)) {
                closedir(dir);
                T_CHECKF(0, "%s: %s", de->d_name, msg);
            }
            if (!strcmp(de->d_name, "Linux.log")) {
                T_EXPECTF(lines == 25567 && diff == 20, "Linux.log: %zu lines, %zu differ from the raw bytes", lines, diff);
            } else if (k == 0) {
                T_EXPECTF(lines == 2000 && diff == 0, "%s: %zu lines, %zu differ", de->d_name, lines, diff);
            }
            n++;
        }
        closedir(dir);
    }
    T_CHECKF(n == 18, "%d logs", n);
}

static int gz_file(const char *dst, const char *src, int members) {
    size_t n;
    char *d = u_read(src, &n);
    if (!d) return -1;
    size_t per = n / (size_t)members + 1, off = 0;
    for (int m = 0; m < members; m++) {
        gzFile g = gzopen(dst, m ? "ab6" : "wb6");
        if (!g) { free(d); return -1; }
        size_t k = n - off < per ? n - off : per;
        if (k && gzwrite(g, d + off, (unsigned)k) != (int)k) { gzclose(g); free(d); return -1; }
        gzclose(g);
        off += k;
    }
    free(d);
    return 0;
}

static void t_linux_log_gzip(void) {
    const char *src = u_shared("data/logs/full/Linux.log");
    T_NEED_SHARED("data/logs/full/Linux.log");
    const char *gz = u_path("syslog.1.gz");
    T_CHECK(!gz_file(gz, src, 3));           /* three gzip members */
    size_t lines, diff;
    char msg[512];
    T_CHECKF(!check_log(gz, src, NULL, &lines, &diff, msg, sizeof msg), "%s", msg);
    T_CHECK(lines == 25567);
    /* detected by the magic, not the name */
    const char *odd = u_path("linux-log-data");
    T_CHECK(!rename(gz, odd));
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.mode = CR_INGEST_LOG;
    T_CHECKF(!check_log(odd, src, &o, &lines, &diff, msg, sizeof msg), "%s", msg);
}

static void t_linux_log_stdin(void) {
    const char *src = u_shared("data/logs/full/Linux.log");
    T_NEED_SHARED("data/logs/full/Linux.log");
    int pfd[2];
    T_CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    T_CHECK(pid >= 0);
    if (pid == 0) {                                  /* writer: the file into the pipe */
        close(pfd[0]);
        int fd = open(src, O_RDONLY);
        char buf[65536];
        ssize_t r;
        while (fd >= 0 && (r = read(fd, buf, sizeof buf)) > 0)
            if (write(pfd[1], buf, (size_t)r) != r) break;
        _exit(0);
    }
    close(pfd[1]);
    int saved = dup(0);
    dup2(pfd[0], 0);
    close(pfd[0]);
    size_t lines = 0, diff = 0;
    char msg[512];
    int rc = check_log("-", src, NULL, &lines, &diff, msg, sizeof msg);   /* auto: a log by content */
    dup2(saved, 0);
    close(saved);
    waitpid(pid, NULL, 0);
    T_CHECKF(!rc, "%s", msg);
    T_CHECK(lines == 25567 && diff == 20);
}

static void t_gzip_bad(void) {
    const char *src = u_shared("data/logs/loghub_2k/Apache_2k.log");
    T_NEED_SHARED("data/logs/loghub_2k/Apache_2k.log");
    const char *gz = u_path("a.gz");
    T_CHECK(!gz_file(gz, src, 1));
    size_t n;
    char *d = u_read(gz, &n);
    T_CHECK(d);
    const char *cut = u_path("trunc.log.gz");
    T_CHECK(!u_write(cut, d, n * 6 / 10));
    u_stream s;
    u_collect1(&s, cut, NULL, 0);
    T_CHECKF(s.rc < 0 && strstr(s.err, "trunc.log.gz: truncated gzip data"), "rc %d err %s", s.rc, s.err);
    u_stream_free(&s);
    /* corrupt deflate data */
    char *c = malloc(n);
    memcpy(c, d, n);
    for (size_t i = 20; i < 60 && i < n; i++) c[i] ^= 0x5A;
    T_CHECK(!u_write(cut, c, n));
    u_collect1(&s, cut, NULL, 0);
    T_CHECKF(s.rc < 0 && (strstr(s.err, "corrupt gzip") || strstr(s.err, "truncated")), "err %s", s.err);
    u_stream_free(&s);
    /* trailing garbage: warned about, the data is still read */
    memcpy(c, d, n);
    char *g = malloc(n + 8);
    memcpy(g, d, n);
    memcpy(g + n, "garbage!", 8);
    T_CHECK(!u_write(cut, g, n + 8));
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.warn = on_warn; nwarn = 0;
    u_collect1(&s, cut, &o, 0);
    T_CHECKF(s.rc == 0 && nwarn == 1 && strstr(lastwarn, "trailing garbage"), "rc %d warn %d %s", s.rc, nwarn, lastwarn);
    u_stream_free(&s);
    free(c); free(g); free(d);
}

/* ---- streaming: bounded memory ------------------------------------------------------- */
/* A large log through a pipe (and a large multi-member .gz): peak RSS must not grow with
 * the input. */
static void t_streaming_bounded_rss(void) {
    const char *src = u_shared("data/logs/full/Linux.log");
    T_NEED_SHARED("data/logs/full/Linux.log");
    size_t n;
    char *d = u_read(src, &n);
    T_CHECK(d);
    int reps = t_asan() ? 8 : 90;              /* ~210 MB normally */
    int pfd[2];
    T_CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    T_CHECK(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        for (int r = 0; r < reps; r++)
            for (size_t off = 0; off < n;) {
                ssize_t w = write(pfd[1], d + off, n - off);
                if (w <= 0) _exit(1);
                off += (size_t)w;
            }
        _exit(0);
    }
    close(pfd[1]);
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", pfd[0]);
    u_reset_hwm();
    long rss0 = u_status_kb("VmHWM:");
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.mode = CR_INGEST_LOG;
    const char *paths[1] = {fdpath};
    char err[512];
    cr_ingest *in = cr_ingest_open(paths, 1, &o, err, sizeof err);
    T_CHECKF(in, "%s", err);
    cr_chunk c;
    int r;
    uint64_t bytes = 0, lines = 0, last_line = 0;
    int line_ok = 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while ((r = cr_ingest_next(in, &c, err, sizeof err)) > 0) {
        if (c.flags & CR_CHUNK_HEADER) continue;
        bytes += c.len; lines++;
        if (c.line != last_line + 1) line_ok = 0;
        last_line = c.line;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_ingest_close(in);
    close(pfd[0]);
    waitpid(pid, NULL, 0);
    long rss1 = u_status_kb("VmHWM:");
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("     pipe: %.0f MB in %.2f s (%.0f MB/s), peak RSS %ld -> %ld KiB\n", bytes / 1e6, secs,
           bytes / 1e6 / secs, rss0, rss1);
    T_CHECKF(r == 0, "%s", err);
    T_CHECKF(lines == (uint64_t)reps * 25567 && line_ok, "lines %llu", (unsigned long long)lines);
    T_CHECKF(rss1 - rss0 < 24 * 1024, "peak RSS grew by %ld KiB", rss1 - rss0);

    /* the same as one multi-member .gz file (members = copies of the log) */
    uLongf zn = compressBound((uLong)n) + 64;
    char *z = malloc(zn);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    T_CHECK(deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = (Bytef *)d; zs.avail_in = (uInt)n; zs.next_out = (Bytef *)z; zs.avail_out = (uInt)zn;
    T_CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    size_t zlen = zs.total_out;
    deflateEnd(&zs);
    const char *gz = u_path("big.log.gz");
    FILE *f = fopen(gz, "wb");
    T_CHECK(f);
    int greps = t_asan() ? 4 : 40;
    for (int i = 0; i < greps; i++) fwrite(z, 1, zlen, f);
    fclose(f);
    free(z);
    u_reset_hwm();
    rss0 = u_status_kb("VmHWM:");
    paths[0] = gz;
    in = cr_ingest_open(paths, 1, &o, err, sizeof err);
    T_CHECKF(in, "%s", err);
    lines = 0; last_line = 0; line_ok = 1;
    while ((r = cr_ingest_next(in, &c, err, sizeof err)) > 0) {
        if (c.flags & CR_CHUNK_HEADER) continue;
        lines++;
        if (c.line != last_line + 1) line_ok = 0;
        last_line = c.line;
    }
    T_CHECK(cr_ingest_doc(in, 0)->gzip == 1);
    cr_ingest_close(in);
    rss1 = u_status_kb("VmHWM:");
    T_CHECKF(r == 0, "%s", err);
    T_CHECKF(lines == (uint64_t)greps * 25567 && line_ok, "gz lines %llu", (unsigned long long)lines);
    T_CHECKF(rss1 - rss0 < 24 * 1024, "gz: peak RSS grew by %ld KiB", rss1 - rss0);
    free(d);
}

/* ---- several documents, docmap, extract ----------------------------------------------- */
static void t_multi_docs_docmap(void) {
    const char *book = u_path("book2.txt");
    T_CHECK(!u_write(book, BOOK, sizeof BOOK - 1));
    const char *logp = u_path("app.log");
    const char *log = "l1 start\nl2 middle\n\nl4 end\n";
    T_CHECK(!u_write(logp, log, strlen(log)));
    const char *paths[2] = {book, logp};
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.strip_gutenberg = 1;
    char err[512];
    cr_ingest *in = cr_ingest_open(paths, 2, &o, err, sizeof err);
    T_CHECKF(in, "%s", err);
    docmap m;
    docmap_init(&m);
    cr_chunk c;
    int r, headers = 0;
    uint64_t tok = 0;
    /* a fake tokenizer: one token per 4 bytes (at least one per chunk) */
    uint64_t tok_of_log_line4 = 0, tok_of_chapter2 = 0;
    while ((r = cr_ingest_next(in, &c, err, sizeof err)) > 0) {
        headers += !!(c.flags & CR_CHUNK_HEADER);
        if (c.flags & CR_CHUNK_HEADER) {
            T_CHECK(c.line == 0 && c.text[c.len - 1] == '\n');
            T_CHECK(c.doc == 0 ? !strncmp(c.text, "# A Test Book\n\n", c.len) : !strncmp(c.text, "\n# app.log\n\n", c.len));
        }
        if (c.doc == 1 && c.line == 4) tok_of_log_line4 = tok + 1;
        if (c.doc == 0 && strstr(c.text, "Text of two")) tok_of_chapter2 = tok;
        T_CHECKF(!cr_ingest_record(in, &m, &c, tok, err, sizeof err), "%s", err);
        tok += c.len / 4 + 1;
    }
    T_CHECKF(r == 0, "%s", err);
    T_CHECKF(!cr_ingest_record_end(in, &m, err, sizeof err), "%s", err);
    T_CHECK(headers == 2 && m.ndocs == 2);
    T_CHECK(m.docs[0].nsec == 4 && m.docs[1].nsec == 1);
    docmap_loc l;
    T_CHECK(!docmap_lookup(&m, tok_of_log_line4, &l));
    T_CHECK(l.doc == 1 && l.line == 4 && l.section == 0);
    char cite[256];
    docmap_cite(&m, tok_of_log_line4, cite, sizeof cite);
    T_CHECKF(!strcmp(cite, "app.log:4"), "cite %s", cite);
    docmap_cite(&m, tok_of_chapter2, cite, sizeof cite);
    T_CHECKF(!strcmp(cite, "A Test Book, BOOK ONE: 1805 / CHAPTER II"), "cite %s", cite);
    T_CHECK(!docmap_lookup(&m, tok_of_chapter2, &l) && l.line == 26);
    docmap_free(&m);
    cr_ingest_close(in);
}

static void t_extract(void) {
    const char *book = u_path("book3.txt");
    T_CHECK(!u_write(book, BOOK, sizeof BOOK - 1));
    const char *paths[1] = {book};
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    char err[512];
    T_CHECKF(cr_extract(paths, 1, 0, 1, f, err, sizeof err) == 0, "%s", err);
    fclose(f);
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.strip_gutenberg = 1;
    u_stream s;
    u_collect1(&s, book, &o, 0);
    T_CHECK(s.rc == 0 && n == s.all_len && !memcmp(buf, s.all, n));
    free(buf);
    f = open_memstream(&buf, &n);
    T_CHECKF(cr_extract(paths, 1, 1, 1, f, err, sizeof err) == 0, "%s", err);
    fclose(f);
    const cr_docinfo *d = cr_ingest_doc(s.in, 0);
    char want[2048];
    size_t k = 0;
    for (uint32_t i = 0; i < d->nsections; i++)
        k += (size_t)snprintf(want + k, sizeof want - k, "%llu\t%llu\t%s\n", (unsigned long long)d->sections[i].offset,
                              (unsigned long long)d->sections[i].line, d->sections[i].title);
    T_CHECKF(!strcmp(buf, want), "map [%s] want [%s]", buf, want);
    T_CHECK(strstr(buf, "\t19\tBOOK ONE: 1805 / CHAPTER I\n"));
    free(buf);
    u_stream_free(&s);
    /* errors: one line naming the file */
    const char *missing[1] = {u_path("nope.txt")};
    f = open_memstream(&buf, &n);
    T_CHECK(cr_extract(missing, 1, 0, 0, f, err, sizeof err) != 0);
    fclose(f);
    free(buf);
    T_CHECKF(strstr(err, "nope.txt: No such file") && !strchr(err, '\n'), "err %s", err);
}

static void t_bad_paths(void) {
    u_stream s;
    u_collect1(&s, u_tmpdir(), NULL, 0);
    T_CHECKF(s.rc < 0 && strstr(s.err, "is a directory"), "err %s", s.err);
    u_stream_free(&s);
    const char *p = u_path("fake.epub");
    T_CHECK(!u_write(p, "just text\n", 10));
    u_collect1(&s, p, NULL, 0);
    T_CHECKF(s.rc < 0 && strstr(s.err, "fake.epub: not a zip file"), "err %s", s.err);
    u_stream_free(&s);
    const char *e = u_path("empty.txt");
    T_CHECK(!u_write(e, "", 0));
    u_collect1(&s, e, NULL, 1);
    T_CHECKF(s.rc == 0 && s.n == 1 && (s.v[0].c.flags & CR_CHUNK_HEADER), "rc %d n %zu", s.rc, s.n);
    u_stream_free(&s);
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.max_line = 3;
    const char *paths[1] = {e};
    char err[256];
    T_CHECK(cr_ingest_open(paths, 1, &o, err, sizeof err) == NULL && strstr(err, "max_line"));
}

int main(void) {
    T_RUN(t_streaming_bounded_rss);     /* first: measures peak RSS */
    T_RUN(t_decode_utf8_bom_crlf_invalid);
    T_RUN(t_decode_cp1252);
    T_RUN(t_decode_late_latin1_and_nul);
    T_RUN(t_binary_detected);
    T_RUN(t_heading_levels);
    T_RUN(t_gutenberg_and_sections);
    T_RUN(t_long_lines);
    T_RUN(t_books_txt_lines_exact);
    T_RUN(t_cp1252_book);
    T_RUN(t_logs_lines_exact);
    T_RUN(t_linux_log_gzip);
    T_RUN(t_linux_log_stdin);
    T_RUN(t_gzip_bad);
    T_RUN(t_multi_docs_docmap);
    T_RUN(t_extract);
    T_RUN(t_bad_paths);
    u_cleanup();
    return t_summary();
}
