/* Fuzz harness for the EPUB and text decoders: a deterministic, seeded mutation loop (bit
 * flips, truncations, byte insertions, token splices, region duplication) over seed inputs
 * built here (an EPUB3 with nav, an EPUB2 with NCX, Gutenberg-style text, CRLF/BOM UTF-8,
 * CP1252, a log with a long line, a gzip member). Every mutant must be ingested without a
 * crash or sanitizer report; the stream must be consistent (contiguous offsets, valid
 * UTF-8, no NUL) and errors must be one line naming the file. The block decoder must give
 * the same output whatever the block boundaries. Fewer iterations under CR_ASAN=1. */
#define APP_INGEST_UTIL_NO_MAIN
#include "app_ingest_util.c"
#include "ingest_int.h"
#include <time.h>
#include <zip.h>
#include <zlib.h>

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }
static int fuzz_mult = 1;

typedef struct { char *d; size_t n; const char *name; } seed;

static char *file_bytes(const char *path, size_t *n) { return u_read(path, n); }

typedef struct { const char *name; const char *data; size_t len; } ent;

static const ent E3[] = {
    {"mimetype", "application/epub+zip", 0},
    {"META-INF/container.xml",
     "<?xml version=\"1.0\"?><container version=\"1.0\" xmlns=\"urn:oasis:names:tc:opendocument:xmlns:container\">"
     "<rootfiles><rootfile full-path=\"O/p.opf\" media-type=\"application/oebps-package+xml\"/></rootfiles></container>", 0},
    {"O/p.opf",
     "<package xmlns=\"http://www.idpf.org/2007/opf\" version=\"3.0\"><metadata xmlns:dc=\"http://purl.org/dc/elements/1.1/\">"
     "<dc:title>Fz</dc:title></metadata><manifest><item id=\"n\" href=\"n.xhtml\" media-type=\"application/xhtml+xml\" properties=\"nav\"/>"
     "<item id=\"a\" href=\"a.xhtml\" media-type=\"application/xhtml+xml\"/><item id=\"b\" href=\"b.xhtml\" media-type=\"application/xhtml+xml\"/>"
     "</manifest><spine><itemref idref=\"a\"/><itemref idref=\"b\"/></spine></package>", 0},
    {"O/n.xhtml",
     "<html xmlns:epub=\"http://www.idpf.org/2007/ops\"><body><nav epub:type=\"toc\"><ol><li><a href=\"a.xhtml\">BOOK ONE</a>"
     "<ol><li><a href=\"a.xhtml#c1\">CHAPTER I</a></li><li><a href=\"b.xhtml#c2\">CHAPTER II</a></li></ol></li></ol></nav></body></html>", 0},
    {"O/a.xhtml",
     "<?xml version=\"1.0\" encoding=\"utf-8\"?><html><head><style>x{}</style></head><body><h1 id=\"c1\">CHAPTER I</h1>"
     "<p>Some &amp; text &#x263A; <i>it</i><br/>next</p><table><tr><td>a</td><td>b</td></tr></table><pre> p  re </pre>"
     "<aside epub:type=\"footnote\"><p>note</p></aside><script>x()</script></body></html>", 0},
    {"O/b.xhtml", "<html><body><p>before</p><div id=\"c2\"><h2>CHAPTER II</h2><p>caf\xC3\xA9 end</p></div></body></html>", 0},
};
static const ent E2[] = {
    {"mimetype", "application/epub+zip", 0},
    {"META-INF/container.xml",
     "<?xml version=\"1.0\"?><container version=\"1.0\" xmlns=\"urn:oasis:names:tc:opendocument:xmlns:container\">"
     "<rootfiles><rootfile full-path=\"O/p.opf\" media-type=\"application/oebps-package+xml\"/></rootfiles></container>", 0},
    {"O/p.opf",
     "<package xmlns=\"http://www.idpf.org/2007/opf\" version=\"2.0\"><metadata/><manifest>"
     "<item id=\"ncx\" href=\"toc.ncx\" media-type=\"application/x-dtbncx+xml\"/>"
     "<item id=\"a\" href=\"a.xhtml\" media-type=\"application/xhtml+xml\"/><item id=\"b\" href=\"b.xhtml\" media-type=\"application/xhtml+xml\"/>"
     "</manifest><spine toc=\"ncx\"><itemref idref=\"a\"/><itemref idref=\"b\"/></spine></package>", 0},
    {"O/toc.ncx",
     "<ncx xmlns=\"http://www.daisy.org/z3986/2005/ncx/\"><navMap><navPoint><navLabel><text>One</text></navLabel>"
     "<content src=\"a.xhtml#c1\"/><navPoint><navLabel><text>Two</text></navLabel><content src=\"b.xhtml#c2\"/></navPoint>"
     "</navPoint></navMap></ncx>", 0},
    {"O/a.xhtml", "<html><body><h1 id=\"c1\">One</h1><p>x &lt; y</p><ul><li>i1</li><li>i2</li></ul></body></html>", 0},
    {"O/b.xhtml", "<html><body><p>before</p><div id=\"c2\"><h2>Two</h2><p>end</p></div></body></html>", 0},
};

static int write_epub(const char *path, const ent *e, int n) {
    int ze;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &ze);
    if (!z) return -1;
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, e[i].data, e[i].len ? e[i].len : strlen(e[i].data), 0);
        zip_int64_t k = s ? zip_file_add(z, e[i].name, s, ZIP_FL_OVERWRITE) : -1;
        if (k < 0) { zip_discard(z); return -1; }
        if (i == 0) zip_set_file_compression(z, (zip_uint64_t)k, ZIP_CM_STORE, 0);
    }
    return zip_close(z) ? -1 : 0;
}

static char *make_epub(int v3, size_t *n) {
    const char *p = u_path(v3 ? "seed3.epub" : "seed2.epub");
    if (write_epub(p, v3 ? E3 : E2, 6)) return NULL;
    return file_bytes(p, n);
}

static const char BOOKSEED[] =
    "The Project Gutenberg eBook of Fuzz\n\nTitle: Fuzz Book\n\n*** START OF THE PROJECT GUTENBERG EBOOK FUZZ ***\n\n\n"
    "CONTENTS\n\n\nCHAPTER I\n\nCHAPTER II\n\n\nBOOK ONE: 1805\n\n\nCHAPTER I\n\nText one\nline two.\n\n\n\nCHAPTER II\n"
    "More text \xE2\x80\x94 here.\n\n\nEPILOGUE\n\nThe end.\n*** END OF THE PROJECT GUTENBERG EBOOK FUZZ ***\nLicense.\n";
static const char CRLFSEED[] = "\xEF\xBB\xBF" "Line one\r\nLine \xC3\xA9two\r\n\r\n\r\nCHAPTER 1. Go\r\n\r\nText\r\n";
static const char CPSEED[] = "caf\xE9 \x93q\x94 \x80\n\nPART I.\n\n\nChapter 2\n\nna\xEFve\n";

/* Opens a gap of len bytes at b[at] (b holds n bytes, capacity cap); 0 if it does not fit. */
static __attribute__((noinline)) int gap(char *b, size_t *n, size_t cap, size_t at, size_t len) {
    if (at > *n || len > cap - *n) return 0;
    memmove(b + at + len, b + at, *n - at);
    *n += len;
    return 1;
}

static void mutate(const seed *s, char **out, size_t *on) {
    static const char *tokens[] = {"<", "</p>", "<p>", "\r\n", "\xFF", "\xC3", "*** START OF X", "*** END OF X", "\nCHAPTER I\n",
                                   "\n\n\n", "&amp;", "&#0;", "<![CDATA[", "PK\x03\x04", "\x1F\x8B", "<br/>", "\xE2\x82"};
    size_t cap = s->n * 2 + 256;
    char *b = malloc(cap);
    size_t n = s->n;
    memcpy(b, s->d, n);
    int ops = 1 + (int)rndn(4);
    for (int k = 0; k < ops; k++) {
        switch (rndn(6)) {
        case 0: for (int f = 0, m = 1 + (int)rndn(8); f < m && n; f++) b[rndn(n)] ^= (char)(1u << rndn(8)); break;
        case 1: n = rndn(n + 1); break;
        case 2: {
            size_t at = rndn(n + 1), len = 1 + rndn(16);
            if (!gap(b, &n, cap, at, len)) break;
            for (size_t i = 0; i < len; i++) b[at + i] = (char)rnd();
            break;
        }
        case 3: {
            const char *t = tokens[rndn(sizeof tokens / sizeof *tokens)];
            size_t len = strlen(t), at = rndn(n + 1);
            if (!gap(b, &n, cap, at, len)) break;
            memcpy(b + at, t, len);
            break;
        }
        case 4: {                                   /* duplicate a region */
            if (!n) break;
            size_t a = rndn(n), len = 1 + rndn(n - a < 200 ? n - a : 200), at = rndn(n + 1);
            if (!gap(b, &n, cap, at, len)) break;
            memmove(b + at, b + (a < at ? a : a + len), len);
            break;
        }
        default: if (n) b[rndn(n)] = (char)rnd(); break;
        }
    }
    *out = b;
    *on = n;
}

typedef struct { int ok, failed; size_t bytes; } stats;

/* Ingest one mutant and check the stream; 0 ok, -1 with msg. */
static int run_one(const char *path, const cr_ingest_opts *o, stats *st, char *msg, size_t mn) {
    u_stream s;
    u_collect1(&s, path, o, 0);
    int rc = 0;
    if (s.rc < 0) {
        st->failed++;
        if (strncmp(s.err, path, strlen(path)) || strchr(s.err, '\n') || !s.err[strlen(path)]) {
            snprintf(msg, mn, "bad error message [%s]", s.err);
            rc = -1;
        }
    } else {
        st->ok++;
        st->bytes += s.all_len;
        if (s.bad[0]) { snprintf(msg, mn, "stream: %s", s.bad); rc = -1; }
        else if (memchr(s.all, 0, s.all_len)) { snprintf(msg, mn, "NUL in the text"); rc = -1; }
        else if (!u_valid_utf8((const unsigned char *)s.all, s.all_len)) { snprintf(msg, mn, "invalid UTF-8 in the text"); rc = -1; }
        else {
            const cr_docinfo *d = cr_ingest_doc(s.in, 0);
            for (uint32_t k = 0; k < d->nsections; k++)
                if (d->sections[k].offset > s.all_len || !u_valid_utf8((const unsigned char *)d->sections[k].title, strlen(d->sections[k].title))) {
                    snprintf(msg, mn, "section %u out of range or not UTF-8", k);
                    rc = -1;
                    break;
                }
        }
    }
    u_stream_free(&s);
    return rc;
}

static int fuzz_seeds(const seed *seeds, int nseeds, int iters, const char *ext, stats *st, char *msg, size_t mn) {
    char name[32];
    for (int it = 0; it < iters; it++) {
        const seed *s = &seeds[it % nseeds];
        char *m; size_t n;
        mutate(s, &m, &n);
        snprintf(name, sizeof name, "mut%s", ext);
        const char *p = u_path(name);
        if (u_write(p, m, n)) { free(m); snprintf(msg, mn, "write failed"); return -1; }
        cr_ingest_opts o; cr_ingest_opts_default(&o);
        o.strip_gutenberg = (int)(rnd() & 1);
        o.mode = (int)rndn(3);                      /* auto, text, log */
        if (rnd() & 1) { o.max_line = 64 + rndn(200); o.max_chunk = 64 + rndn(200); }
        int rc = run_one(p, &o, st, msg, mn);
        if (rc) {
            const char *keep = u_path("crash.bin");
            u_write(keep, m, n);
            fprintf(stdout, "     mutant %d of seed %s kept in %s (until cleanup)\n", it, s->name, keep);
            free(m);
            return -1;
        }
        free(m);
    }
    return 0;
}

static void t_fuzz_text(void) {
    size_t zlen = compressBound(sizeof BOOKSEED) + 32;
    char *gz = malloc(zlen);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)BOOKSEED; z.avail_in = sizeof BOOKSEED - 1;
    z.next_out = (Bytef *)gz; z.avail_out = (uInt)zlen;
    deflate(&z, Z_FINISH);
    size_t gzn = z.total_out;
    deflateEnd(&z);
    char longlog[1200];
    size_t k = (size_t)snprintf(longlog, sizeof longlog, "Jun  9 06:06:20 combo syslogd 1.4.1: restart.\nJun  9 06:06:21 x: ");
    for (; k < sizeof longlog - 2; k++) longlog[k] = (char)('a' + k % 26);
    longlog[k++] = '\n';
    seed seeds[] = {{(char *)BOOKSEED, sizeof BOOKSEED - 1, "book"}, {(char *)CRLFSEED, sizeof CRLFSEED - 1, "crlf"},
                    {(char *)CPSEED, sizeof CPSEED - 1, "cp1252"}, {longlog, k, "log"}, {gz, gzn, "gzip"}};
    stats st = {0, 0, 0};
    char msg[512];
    int iters = (t_asan() ? 400 : 3000) * fuzz_mult;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = fuzz_seeds(seeds, 5, iters, ".txt", &st, msg, sizeof msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("     text: %d mutants, %d read, %d rejected, %.1f s\n", iters, st.ok, st.failed,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(gz);
    T_CHECKF(rc == 0, "%s", msg);
    T_CHECK(st.ok > iters / 2);
}

static void t_fuzz_epub(void) {
    size_t n3, n2;
    char *e3 = make_epub(1, &n3), *e2 = make_epub(0, &n2);
    T_CHECK(e3 && e2);
    /* the seeds themselves are fine */
    char msg[512];
    stats st = {0, 0, 0};
    T_CHECKF(!run_one(u_path("seed3.epub"), NULL, &st, msg, sizeof msg) && st.ok == 1, "seed: %s", msg);
    seed seeds[] = {{e3, n3, "epub3"}, {e2, n2, "epub2"}};
    int iters = (t_asan() ? 200 : 1500) * fuzz_mult;
    st = (stats){0, 0, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = fuzz_seeds(seeds, 2, iters, ".epub", &st, msg, sizeof msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("     epub: %d mutants, %d read, %d rejected, %.1f s\n", iters, st.ok, st.failed,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(e3); free(e2);
    T_CHECKF(rc == 0, "%s", msg);
    T_CHECK(st.failed > 0);                         /* most raw-zip mutants break a CRC */
}

/* Structure-aware: mutate the content of one or two entries, then rebuild the zip, so the
 * OPF/NCX/nav/XHTML parsers see damaged documents inside an intact container. */
static void t_fuzz_epub_entries(void) {
    int iters = (t_asan() ? 200 : 1500) * fuzz_mult;
    stats st = {0, 0, 0};
    char msg[512];
    const char *p = u_path("ent.epub");
    for (int it = 0; it < iters; it++) {
        const ent *base = it & 1 ? E2 : E3;
        ent e[6];
        char *bufs[2] = {NULL, NULL};
        memcpy(e, base, sizeof e);
        for (int k = 0; k < 1 + (int)(rnd() & 1); k++) {
            int which = 1 + (int)rndn(5);
            seed sd = {(char *)e[which].data, e[which].len ? e[which].len : strlen(e[which].data), e[which].name};
            size_t n;
            mutate(&sd, &bufs[k], &n);
            e[which].data = bufs[k];
            e[which].len = n ? n : 1;
            if (!n) bufs[k][0] = ' ';
        }
        int w = write_epub(p, e, 6);
        cr_ingest_opts o; cr_ingest_opts_default(&o);
        if (rnd() & 1) o.max_chunk = 64 + rndn(100);
        int rc = w ? 0 : run_one(p, &o, &st, msg, sizeof msg);
        free(bufs[0]); free(bufs[1]);
        T_CHECKF(rc == 0, "iteration %d: %s", it, msg);
    }
    printf("     epub entries: %d mutants, %d read, %d rejected\n", iters, st.ok, st.failed);
    T_CHECK(st.ok > iters / 4);
}

/* The block decoder: random bytes, random block boundaries == one block; valid UTF-8. */
static void t_fuzz_decoder(void) {
    int iters = (t_asan() ? 300 : 3000) * fuzz_mult;
    for (int it = 0; it < iters; it++) {
        size_t n = 1 + rndn(600);
        uint8_t *in = malloc(n);
        static const uint8_t alphabet[] = {'a', '\r', '\n', 0, 0x80, 0xBF, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0xED, 0xA0, 0xFF, 0xF4, 0x90};
        for (size_t i = 0; i < n; i++) in[i] = rnd() & 1 ? alphabet[rndn(sizeof alphabet)] : (uint8_t)rnd();
        int enc0 = (int)rndn(3);
        ing_dec d1 = {enc0, 0, 0}, d2 = {enc0, 0, 0};
        char *o1 = malloc(3 * n + 8), *o2 = malloc(3 * n + 8);
        size_t used, w1 = ing_decode(&d1, in, n, 1, o1, &used);
        T_CHECK(used == n);
        /* the same in random pieces, carrying unconsumed bytes like the text backend does */
        size_t pos = 0, w2 = 0, pend = 0;
        uint8_t carry[8];
        while (pos < n || pend) {
            size_t take = pos < n ? 1 + rndn(n - pos < 17 ? n - pos : 17) : 0;
            uint8_t buf[32];
            memcpy(buf, carry, pend);
            memcpy(buf + pend, in + pos, take);
            pos += take;
            size_t len = pend + take, u;
            int fin = pos == n;
            w2 += ing_decode(&d2, buf, len, fin, o2 + w2, &u);
            pend = len - u;
            T_CHECKF(pend <= 4 && (!fin || pend == 0), "it %d: %zu bytes left over", it, pend);
            memcpy(carry, buf + u, pend);
            if (fin) break;
        }
        T_CHECKF(w1 == w2 && !memcmp(o1, o2, w1), "it %d: split decode differs (%zu vs %zu)", it, w1, w2);
        T_CHECKF(d1.invalid == d2.invalid && d1.nul == d2.nul && d1.enc == d2.enc, "it %d: counts differ", it);
        T_CHECKF(u_valid_utf8((const unsigned char *)o1, w1) && !memchr(o1, 0, w1), "it %d: output not clean UTF-8", it);
        int enc;
        ing_sniff_text(in, n, (int)(rnd() & 1), &enc);
        size_t cut = ing_utf8_cut(o1, rndn(w1 + 1));
        T_CHECK(u_valid_utf8((const unsigned char *)o1, cut));
        char title[64];
        memcpy(title, o1, w1 < 63 ? w1 : 63);
        char *t = ing_title_dup(title, w1 < 63 ? w1 : 63);
        T_CHECK(t);
        cr_heading_level(t, strlen(t));
        free(t);
        free(in); free(o1); free(o2);
    }
}

int main(void) {
    /* longer campaigns: CR_FUZZ_SEED=n CR_FUZZ_MULT=k (iterations x k) */
    const char *sd = getenv("CR_FUZZ_SEED"), *mu = getenv("CR_FUZZ_MULT");
    if (sd) rs ^= strtoull(sd, NULL, 10) * 0x2545F4914F6CDD1DULL;
    if (mu) fuzz_mult = atoi(mu) > 0 ? atoi(mu) : 1;
    T_RUN(t_fuzz_decoder);
    T_RUN(t_fuzz_text);
    T_RUN(t_fuzz_epub);
    T_RUN(t_fuzz_epub_entries);
    u_cleanup();
    return t_summary();
}
