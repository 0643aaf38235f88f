/* docmap: run-length token -> (doc, offset, line, section) table: lookups against a naive
 * per-run reference, block boundaries (large deltas, negative line steps, > 65536 runs),
 * empty-run replacement, size per entry, serialization round trip and hostile buffers. */
#include "t.h"
#include "docmap.h"
#include <stdint.h>

typedef struct { uint64_t tok, off, line; uint32_t doc, sec; } ref_run;

static uint64_t rng = 88172645463325252ULL;
static uint64_t xr(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void t_basic(void) {
    docmap m;
    docmap_init(&m);
    T_CHECK(docmap_lookup(&m, 0, &(docmap_loc){0}) == -1);
    T_CHECK(docmap_add_doc(&m, "War and Peace", "/books/wp.epub", 1336718) == 0);
    T_CHECK(docmap_add_section(&m, 0, 0, 0, "War and Peace") == 0);
    T_CHECK(docmap_add_section(&m, 0, 100, 20, "BOOK THREE: 1807 / CHAPTER XII") == 1);
    T_CHECK(docmap_add_run(&m, 0, 0, 0, 0, 0) == 0);
    T_CHECK(docmap_add_run(&m, 10, 0, 100, 20, 1) == 0);
    T_CHECK(docmap_add_run(&m, 25, 0, 180, 23, 1) == 0);
    T_CHECK(docmap_add_doc(&m, "syslog.1.gz", "/var/log/syslog.1.gz", 0) == 1);
    T_CHECK(docmap_add_section(&m, 0, 0, 0, "late") == -1);      /* not the latest doc */
    T_CHECK(docmap_add_section(&m, 1, 300, 0, "syslog.1.gz") == 0);
    T_CHECK(docmap_add_run(&m, 40, 1, 300, 18211, 0) == 0);
    T_CHECK(docmap_add_run(&m, 41, 1, 380, 18212, 0) == 0);
    T_CHECK(docmap_add_run(&m, 41, 1, 390, 18213, 0) == 0);       /* replaces the empty run */
    T_CHECK(docmap_add_run(&m, 39, 1, 400, 1, 0) == -1);          /* tokens go back */
    T_CHECK(docmap_add_run(&m, 50, 1, 10, 1, 0) == -1);           /* offset goes back */
    T_CHECK(docmap_add_run(&m, 50, 1, 500, 1, 1) == -1);          /* unknown section */
    T_CHECK(docmap_add_run(&m, 50, 7, 500, 1, 0) == -1);          /* unknown doc */
    docmap_loc l;
    T_CHECK(!docmap_lookup(&m, 12, &l) && l.doc == 0 && l.section == 1 && l.offset == 100 && l.line == 20 &&
            l.tok_first == 10 && l.tok_end == 25);
    T_CHECK(!docmap_lookup(&m, 39, &l) && l.doc == 0 && l.tok_first == 25 && l.tok_end == 40);
    T_CHECK(!docmap_lookup(&m, 41, &l) && l.doc == 1 && l.line == 18213 && l.offset == 390 && l.tok_end == UINT64_MAX);
    T_CHECK(!docmap_lookup(&m, 1u << 30, &l) && l.line == 18213);
    T_CHECK(m.nruns == 5);
    char buf[128];
    docmap_cite(&m, 12, buf, sizeof buf);
    T_CHECKF(!strcmp(buf, "War and Peace, BOOK THREE: 1807 / CHAPTER XII"), "%s", buf);
    docmap_cite(&m, 40, buf, sizeof buf);
    T_CHECKF(!strcmp(buf, "syslog.1.gz:18211"), "%s", buf);
    T_CHECK(!strcmp(docmap_section_title(&m, 0, 1), "BOOK THREE: 1807 / CHAPTER XII"));
    T_CHECK(docmap_section_title(&m, 1, 1) == NULL && docmap_doc_title(&m, 2) == NULL);
    docmap_free(&m);
}

/* Random runs with big jumps (forcing new blocks), lines stepping back (EPUB spine items),
 * empty runs; every lookup equals the reference. */
static void build_random(docmap *m, ref_run **out, size_t *nout, size_t n) {
    ref_run *r = malloc(n * sizeof *r);
    size_t k = 0;
    uint64_t tok = 5, off = 0, line = 1;
    uint32_t doc = 0, sec = 0;
    docmap_init(m);
    docmap_add_doc(m, "d0", "p0", 0);
    docmap_add_section(m, 0, 0, 0, "s0");
    for (size_t i = 0; i < n; i++) {
        uint64_t x = xr();
        if (x % 50000 == 0) {                                 /* a new document */
            doc++;
            char t[32]; snprintf(t, sizeof t, "d%u", doc);
            docmap_add_doc(m, t, t, 0);
            docmap_add_section(m, doc, off, 0, t);
            sec = 0; line = 1;
        } else if (x % 997 == 0) {
            docmap_add_section(m, doc, off, line, "s");
            sec++;
        }
        if (x % 100003 == 1) tok += 5000000000ULL;            /* > 2^32: new block */
        if (x % 100003 == 2) off += 6000000000ULL;
        if (x % 7919 == 3) line = (x >> 20) % 50;             /* goes back */
        if (x % 200003 == 4) line += 3000000000ULL;           /* > 2^31 forward */
        if (k && r[k - 1].tok == tok) k--;                    /* replaces the empty run */
        if (docmap_add_run(m, tok, doc, off, line, sec)) { free(r); *out = NULL; return; }
        r[k++] = (ref_run){tok, off, line, doc, sec};
        if (!(x % 31 == 6)) tok += 1 + (x >> 40) % 60;        /* sometimes an empty run next */
        off += 1 + (x >> 30) % 300;
        line += (x >> 50) % 3;
    }
    *out = r;
    *nout = k;
}

static int check_against(const docmap *m, const ref_run *r, size_t n, char *msg, size_t mn) {
    for (size_t i = 0; i < n; i++) {
        uint64_t end = i + 1 < n ? r[i + 1].tok : r[i].tok + 1000;
        uint64_t probes[3] = {r[i].tok, r[i].tok + (end - r[i].tok) / 2, end - 1};
        for (int p = 0; p < 3; p++) {
            docmap_loc l;
            if (docmap_lookup(m, probes[p], &l)) { snprintf(msg, mn, "run %zu: not found", i); return -1; }
            if (l.tok_first != r[i].tok || l.offset != r[i].off || l.line != r[i].line || l.doc != r[i].doc ||
                l.section != r[i].sec || l.tok_end != (i + 1 < n ? r[i + 1].tok : UINT64_MAX)) {
                snprintf(msg, mn, "run %zu probe %d: got tok %llu off %llu line %llu doc %u sec %u", i, p,
                         (unsigned long long)l.tok_first, (unsigned long long)l.offset, (unsigned long long)l.line, l.doc, l.section);
                return -1;
            }
        }
    }
    return 0;
}

static void t_random_vs_reference(void) {
    docmap m;
    ref_run *r;
    size_t n;
    build_random(&m, &r, &n, t_asan() ? 60000 : 300000);
    T_CHECK(r);
    char msg[256];
    int rc = check_against(&m, r, n, msg, sizeof msg);
    T_CHECKF(rc == 0, "%s", msg);
    T_CHECKF(m.nblocks >= 2 && m.nruns == n, "blocks %llu runs %llu", (unsigned long long)m.nblocks, (unsigned long long)m.nruns);
    docmap_loc l;
    T_CHECK(docmap_lookup(&m, 4, &l) == -1);
    free(r);
    docmap_free(&m);
}

/* A 10M-token log: ~400K one-line runs. 16 bytes per run (+ block headers). */
static void t_size_per_entry(void) {
    T_CHECK(sizeof(docmap_run) == 16);
    docmap m;
    docmap_init(&m);
    docmap_add_doc(&m, "big.log", "big.log", 0);
    docmap_add_section(&m, 0, 0, 0, "big.log");
    size_t n = 400000;
    uint64_t tok = 0, off = 0;
    for (size_t i = 0; i < n; i++) {
        T_CHECK(!docmap_add_run(&m, tok, 0, off, i + 1, 0));
        tok += 25; off += 92;
    }
    double per = (double)(m.nruns * sizeof(docmap_run) + m.nblocks * sizeof(docmap_block)) / (double)n;
    printf("     10M-token log: %llu runs, %llu blocks, %.3f bytes per run, %.1f MB allocated\n",
           (unsigned long long)m.nruns, (unsigned long long)m.nblocks, per, docmap_bytes(&m) / 1e6);
    T_CHECKF(per < 16.01, "%.3f bytes per run", per);
    T_CHECK(docmap_bytes(&m) < 10u << 20);
    docmap_loc l;
    T_CHECK(!docmap_lookup(&m, 25 * 123456 + 7, &l) && l.line == 123457 && l.offset == 92ull * 123456);
    docmap_free(&m);
}

static uint8_t *serialize(const docmap *m, size_t *n) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    int rc = docmap_write(m, f);
    fclose(f);
    if (rc) { free(buf); return NULL; }
    *n = len;
    return (uint8_t *)buf;
}
static void fix_checksum(uint8_t *b, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n - 8; i++) { h ^= b[i]; h *= 0x100000001b3ULL; }
    for (int i = 0; i < 8; i++) b[n - 8 + i] = (uint8_t)(h >> (8 * i));
}

static void t_serialize(void) {
    docmap m, back;
    ref_run *r;
    size_t n;
    build_random(&m, &r, &n, 70000);
    T_CHECK(r);
    size_t len;
    uint8_t *buf = serialize(&m, &len);
    T_CHECK(buf);
    docmap_init(&back);
    char err[256];
    T_CHECKF(!docmap_read(&back, buf, len, err, sizeof err), "%s", err);
    char msg[256];
    T_CHECKF(!check_against(&back, r, n, msg, sizeof msg), "%s", msg);
    T_CHECK(back.ndocs == m.ndocs && back.nsecs == m.nsecs && !strcmp(back.docs[1].title, m.docs[1].title));
    /* byte-identical when written again */
    size_t len2;
    uint8_t *buf2 = serialize(&back, &len2);
    T_CHECK(buf2 && len2 == len && !memcmp(buf, buf2, len));
    free(buf2);
    free(r);
    docmap_free(&m);
    docmap_free(&back);
    free(buf);
}

/* Truncations, bit flips (with and without a repaired checksum), garbage: read either
 * fails with a message or yields a map whose lookups are safe. */
static void t_hostile_buffers(void) {
    docmap m;
    docmap_init(&m);
    docmap_add_doc(&m, "a", "pa", 1);
    docmap_add_section(&m, 0, 0, 0, "s0");
    docmap_add_section(&m, 0, 10, 2, "s1");
    docmap_add_doc(&m, "b", "pb", 2);
    docmap_add_section(&m, 1, 20, 0, "t0");
    for (int i = 0; i < 40; i++) docmap_add_run(&m, (uint64_t)i * 3, i < 20 ? 0 : 1, (uint64_t)i * 7, (uint64_t)i, i < 10 || i >= 20 ? 0 : 1);
    size_t len;
    uint8_t *buf = serialize(&m, &len);
    T_CHECK(buf);
    char err[256];
    docmap t;
    docmap_init(&t);
    for (size_t cut = 0; cut < len; cut++) {
        int rc = docmap_read(&t, buf, cut, err, sizeof err);
        T_CHECKF(rc == -1 && !strncmp(err, "docmap: ", 8), "cut %zu accepted", cut);
    }
    uint8_t *mut = malloc(len);
    int accepted = 0, iters = t_asan() ? 3000 : 20000;
    for (int it = 0; it < iters; it++) {
        memcpy(mut, buf, len);
        int flips = 1 + (int)(xr() % 4);
        for (int f = 0; f < flips; f++) mut[xr() % len] ^= (uint8_t)(1u << (xr() % 8));
        if (it % 2) fix_checksum(mut, len);
        int rc = docmap_read(&t, mut, len, err, sizeof err);
        if (rc == 0) {
            accepted++;
            docmap_loc l;
            char c[256];
            for (uint64_t k = 0; k < 130; k += 7) {
                if (!docmap_lookup(&t, k, &l)) {
                    T_CHECK(l.doc < t.ndocs && l.section < t.docs[l.doc].nsec);
                    docmap_cite(&t, k, c, sizeof c);
                }
            }
        } else {
            T_CHECKF(!strncmp(err, "docmap: ", 8), "message %s", err);
        }
        if (it % 2 == 0 && memcmp(mut, buf, len)) T_CHECKF(rc == -1, "flip without checksum repair accepted");
    }
    printf("     hostile buffers: %d of %d checksum-repaired mutants accepted (all lookups safe)\n", accepted, iters / 2);
    for (int it = 0; it < 200; it++) {
        for (size_t i = 0; i < len; i++) mut[i] = (uint8_t)xr();
        memcpy(mut, "CRDMAP01", 8);
        fix_checksum(mut, len);
        T_CHECK(docmap_read(&t, mut, len, err, sizeof err) == -1);
    }
    free(mut);
    docmap_free(&t);
    docmap_free(&m);
    free(buf);
}

/* conversation runs (DOCMAP_CONV) between documents: lookups, citations, serialization */
static void t_conversation_runs(void) {
    docmap m; docmap_init(&m);
    T_CHECK(docmap_add_doc(&m, "Book", "/b/book.txt", 100) == 0);
    T_CHECK(docmap_add_section(&m, 0, 0, 1, "Book") == 0);
    T_CHECK(docmap_add_run(&m, 1, 0, 0, 1, 0) == 0);
    T_CHECK(docmap_add_run(&m, 30, 0, 50, 4, 0) == 0);
    T_CHECK(docmap_add_run(&m, 60, DOCMAP_CONV, 90, 0, 0) == 0);       /* a question */
    T_CHECK(docmap_add_run(&m, 60, DOCMAP_CONV, 80, 0, 0) == -1);      /* offset goes back */
    T_CHECK(docmap_add_doc(&m, "log", "/v/app.log", 10) == 1);
    T_CHECK(docmap_add_section(&m, 1, 90, 1, "log") == 0);
    T_CHECK(docmap_add_run(&m, 75, 1, 90, 1, 0) == 0);
    T_CHECK(docmap_add_run(&m, 90, DOCMAP_CONV, 120, 0, 0) == 0);
    docmap_loc l; char c[64];
    T_CHECK(!docmap_lookup(&m, 59, &l) && l.doc == 0 && l.line == 4);
    T_CHECK(!docmap_lookup(&m, 60, &l) && l.doc == DOCMAP_CONV && l.section == 0 && l.tok_first == 60 && l.tok_end == 75);
    T_CHECK(!docmap_lookup(&m, 80, &l) && l.doc == 1);
    T_CHECK(!docmap_lookup(&m, 1000, &l) && l.doc == DOCMAP_CONV && l.tok_end == UINT64_MAX);
    T_CHECK(docmap_cite(&m, 61, c, sizeof c) > 0 && !strcmp(c, "conversation"));
    T_CHECK(docmap_cite(&m, 80, c, sizeof c) > 0 && !strcmp(c, "app.log:1"));
    size_t len; uint8_t *buf = serialize(&m, &len);
    T_CHECK(buf);
    docmap b; docmap_init(&b); char err[128];
    T_CHECKF(!docmap_read(&b, buf, len, err, sizeof err), "%s", err);
    for (uint64_t t = 0; t < 120; t++) {
        docmap_loc x, y;
        int rx = docmap_lookup(&m, t, &x), ry = docmap_lookup(&b, t, &y);
        T_CHECK(rx == ry && (rx || (x.doc == y.doc && x.section == y.section && x.tok_first == y.tok_first && x.offset == y.offset)));
    }
    free(buf); docmap_free(&m); docmap_free(&b);
}

int main(void) {
    T_RUN(t_basic);
    T_RUN(t_random_vs_reference);
    T_RUN(t_size_per_entry);
    T_RUN(t_serialize);
    T_RUN(t_hostile_buffers);
    T_RUN(t_conversation_runs);
    return t_summary();
}
