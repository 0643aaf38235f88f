/* docmap: run-length token -> provenance table (see docmap.h). */
#include "docmap.h"
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

#define BLOCK_MAX_RUNS 65536u

void docmap_init(docmap *m) { memset(m, 0, sizeof *m); }

void docmap_free(docmap *m) {
    if (!m) return;
    for (uint32_t i = 0; i < m->ndocs; i++) { free(m->docs[i].title); free(m->docs[i].path); }
    for (uint32_t i = 0; i < m->nsecs; i++) free(m->secs[i].title);
    free(m->docs); free(m->secs); free(m->runs); free(m->blocks);
    memset(m, 0, sizeof *m);
}

/* Grows *p (elements of size sz) so that it holds at least need; 0 ok, -1 no memory. */
static int grow(void **p, uint64_t *cap, uint64_t need, size_t sz) {
    if (need <= *cap) return 0;
    uint64_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    if (nc > SIZE_MAX / sz) return -1;
    void *q = realloc(*p, (size_t)(nc * sz));
    if (!q) return -1;
    *p = q; *cap = nc;
    return 0;
}
static int grow32(void **p, uint32_t *cap, uint64_t need, size_t sz) {
    if (need > UINT32_MAX) return -1;
    uint64_t c = *cap;
    if (grow(p, &c, need, sz)) return -1;
    *cap = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    return 0;
}

static char *dupstr(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

int docmap_add_doc(docmap *m, const char *title, const char *path, uint64_t size) {
    if (m->ndocs == UINT32_MAX || grow32((void **)&m->docs, &m->cap_docs, (uint64_t)m->ndocs + 1,
                                         sizeof *m->docs))
        return -1;
    docmap_doc *d = &m->docs[m->ndocs];
    d->title = dupstr(title); d->path = dupstr(path);
    if (!d->title || !d->path) { free(d->title); free(d->path); return -1; }
    d->size = size; d->sec_first = m->nsecs; d->nsec = 0;
    return (int)m->ndocs++;
}

int docmap_add_section(docmap *m, uint32_t doc, uint64_t offset, uint64_t line,
                       const char *title) {
    if (m->ndocs == 0 || doc != m->ndocs - 1) return -1;
    if (m->nsecs == UINT32_MAX || grow32((void **)&m->secs, &m->cap_secs, (uint64_t)m->nsecs + 1,
                                         sizeof *m->secs))
        return -1;
    docmap_sec *s = &m->secs[m->nsecs];
    s->title = dupstr(title);
    if (!s->title) return -1;
    s->offset = offset; s->line = line; s->doc = doc;
    m->nsecs++;
    return (int)(m->docs[doc].nsec++);
}

static uint64_t run_tok(const docmap *m, const docmap_block *b, uint64_t i) {
    return b->tok_base + m->runs[i].tok;
}

int docmap_add_run(docmap *m, uint64_t tok_first, uint32_t doc, uint64_t offset,
                   uint64_t line, uint32_t section) {
    uint32_t gsec;
    if (doc == DOCMAP_CONV) gsec = DOCMAP_SEC_CONV;
    else if (doc >= m->ndocs || section >= m->docs[doc].nsec) return -1;
    else gsec = m->docs[doc].sec_first + section;
    if (m->nruns) {
        docmap_block *b = &m->blocks[m->nblocks - 1];
        uint64_t last = m->nruns - 1;
        uint64_t ltok = run_tok(m, b, last), loff = b->off_base + m->runs[last].off;
        if (tok_first < ltok || offset < loff) return -1;
        if (tok_first == ltok) {       /* the previous run was empty: replace it */
            m->nruns--;
            if (--b->n == 0) m->nblocks--;
        }
    }
    docmap_block *b = m->nblocks ? &m->blocks[m->nblocks - 1] : NULL;
    int fresh = !b || b->n >= BLOCK_MAX_RUNS || tok_first - b->tok_base > UINT32_MAX ||
                offset - b->off_base > UINT32_MAX;
    if (!fresh) {
        int64_t dl = (int64_t)(line - b->line_base);
        fresh = dl < INT32_MIN || dl > INT32_MAX;
    }
    if (fresh) {
        if (grow((void **)&m->blocks, &m->cap_blocks, m->nblocks + 1, sizeof *m->blocks))
            return -1;
        if (m->nruns > UINT32_MAX - 1) return -1;
        b = &m->blocks[m->nblocks++];
        b->tok_base = tok_first; b->off_base = offset; b->line_base = line;
        b->first = (uint32_t)m->nruns; b->n = 0;
    }
    if (grow((void **)&m->runs, &m->cap_runs, m->nruns + 1, sizeof *m->runs)) {
        if (fresh) m->nblocks--;
        return -1;
    }
    docmap_run *r = &m->runs[m->nruns++];
    r->tok = (uint32_t)(tok_first - b->tok_base);
    r->off = (uint32_t)(offset - b->off_base);
    r->line = (uint32_t)(line - b->line_base);
    r->sec = gsec;
    b->n++;
    return 0;
}

int docmap_lookup(const docmap *m, uint64_t tok, docmap_loc *out) {
    if (!m->nblocks || tok < m->blocks[0].tok_base) return -1;
    uint64_t lo = 0, hi = m->nblocks;          /* last block with tok_base <= tok */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (m->blocks[mid].tok_base <= tok) lo = mid; else hi = mid;
    }
    const docmap_block *b = &m->blocks[lo];
    uint64_t rlo = b->first, rhi = (uint64_t)b->first + b->n;  /* last run with tok <= */
    uint64_t rel = tok - b->tok_base;
    while (rhi - rlo > 1) {
        uint64_t mid = rlo + (rhi - rlo) / 2;
        if (m->runs[mid].tok <= rel) rlo = mid; else rhi = mid;
    }
    const docmap_run *r = &m->runs[rlo];
    if (r->sec == DOCMAP_SEC_CONV) {
        out->doc = DOCMAP_CONV; out->section = 0;
    } else {
        const docmap_sec *s = &m->secs[r->sec];
        out->doc = s->doc;
        out->section = r->sec - m->docs[s->doc].sec_first;
    }
    out->offset = b->off_base + r->off;
    out->line = b->line_base + (uint64_t)(int64_t)(int32_t)r->line;
    out->tok_first = b->tok_base + r->tok;
    if (rlo + 1 < m->nruns) {
        const docmap_block *nb = (rlo + 1 < (uint64_t)b->first + b->n) ? b : b + 1;
        out->tok_end = nb->tok_base + m->runs[rlo + 1].tok;
    } else {
        out->tok_end = UINT64_MAX;
    }
    return 0;
}

const char *docmap_section_title(const docmap *m, uint32_t doc, uint32_t section) {
    if (doc >= m->ndocs || section >= m->docs[doc].nsec) return NULL;
    return m->secs[m->docs[doc].sec_first + section].title;
}
const char *docmap_doc_title(const docmap *m, uint32_t doc) {
    return doc < m->ndocs ? m->docs[doc].title : NULL;
}

int docmap_cite(const docmap *m, uint64_t tok, char *buf, size_t n) {
    docmap_loc l;
    if (docmap_lookup(m, tok, &l)) return -1;
    if (l.doc == DOCMAP_CONV) return snprintf(buf, n, "conversation");
    const docmap_doc *d = &m->docs[l.doc];
    if (d->nsec > 1)
        return snprintf(buf, n, "%s, %s", d->title, docmap_section_title(m, l.doc, l.section));
    const char *base = strrchr(d->path, '/');
    base = base ? base + 1 : d->path;
    if (!*base) base = d->title;
    return snprintf(buf, n, "%s:%llu", base, (unsigned long long)l.line);
}

size_t docmap_bytes(const docmap *m) {
    size_t b = sizeof *m + (size_t)m->cap_docs * sizeof *m->docs +
               (size_t)m->cap_secs * sizeof *m->secs + (size_t)m->cap_runs * sizeof *m->runs +
               (size_t)m->cap_blocks * sizeof *m->blocks;
    for (uint32_t i = 0; i < m->ndocs; i++)
        b += strlen(m->docs[i].title) + strlen(m->docs[i].path) + 2;
    for (uint32_t i = 0; i < m->nsecs; i++) b += strlen(m->secs[i].title) + 1;
    return b;
}

/* ---- serialization ----
 * "CRDMAP01" u32 ndocs u32 nsecs u64 nblocks u64 nruns
 * docs:   u64 size u32 sec_first u32 nsec u32 tlen title u32 plen path
 * secs:   u64 offset u64 line u32 doc u32 tlen title
 * blocks: u64 tok_base u64 off_base u64 line_base u32 first u32 n
 * runs:   u32 tok u32 off u32 line u32 sec
 * u64 FNV-1a of every byte before it. */
static const char MAGIC[8] = {'C', 'R', 'D', 'M', 'A', 'P', '0', '1'};
#define MAX_STR (1u << 20)

typedef struct { FILE *f; uint64_t h; int bad; } wctx;
static void wbytes(wctx *w, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { w->h ^= b[i]; w->h *= 0x100000001b3ULL; }
    if (n && fwrite(p, 1, n, w->f) != n) w->bad = 1;
}
static void w32(wctx *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    wbytes(w, b, 4);
}
static void w64(wctx *w, uint64_t v) { w32(w, (uint32_t)v); w32(w, (uint32_t)(v >> 32)); }
static void wstr(wctx *w, const char *s) {
    size_t n = strlen(s);
    if (n > MAX_STR) n = MAX_STR;
    w32(w, (uint32_t)n); wbytes(w, s, n);
}

int docmap_write(const docmap *m, FILE *f) {
    wctx w = {f, 0xcbf29ce484222325ULL, 0};
    wbytes(&w, MAGIC, 8);
    w32(&w, m->ndocs); w32(&w, m->nsecs); w64(&w, m->nblocks); w64(&w, m->nruns);
    for (uint32_t i = 0; i < m->ndocs; i++) {
        const docmap_doc *d = &m->docs[i];
        w64(&w, d->size); w32(&w, d->sec_first); w32(&w, d->nsec);
        wstr(&w, d->title); wstr(&w, d->path);
    }
    for (uint32_t i = 0; i < m->nsecs; i++) {
        const docmap_sec *s = &m->secs[i];
        w64(&w, s->offset); w64(&w, s->line); w32(&w, s->doc); wstr(&w, s->title);
    }
    for (uint64_t i = 0; i < m->nblocks; i++) {
        const docmap_block *b = &m->blocks[i];
        w64(&w, b->tok_base); w64(&w, b->off_base); w64(&w, b->line_base);
        w32(&w, b->first); w32(&w, b->n);
    }
    for (uint64_t i = 0; i < m->nruns; i++) {
        const docmap_run *r = &m->runs[i];
        w32(&w, r->tok); w32(&w, r->off); w32(&w, r->line); w32(&w, r->sec);
    }
    uint64_t h = w.h;
    w64(&w, h);
    return w.bad ? -1 : 0;
}

typedef struct { const uint8_t *p; size_t n, i; int bad; } rctx;
static int need(rctx *r, size_t k) {
    if (r->bad || r->n - r->i < k) { r->bad = 1; return 0; }
    return 1;
}
static uint32_t r32(rctx *r) {
    if (!need(r, 4)) return 0;
    const uint8_t *b = r->p + r->i; r->i += 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t r64(rctx *r) { uint64_t lo = r32(r); return lo | (uint64_t)r32(r) << 32; }
static char *rstr(rctx *r) {
    uint32_t n = r32(r);
    if (n > MAX_STR || !need(r, n)) { r->bad = 1; return NULL; }
    char *s = malloc((size_t)n + 1);
    if (!s) { r->bad = 1; return NULL; }
    memcpy(s, r->p + r->i, n); s[n] = 0; r->i += n;
    if (memchr(s, 0, n)) { free(s); r->bad = 1; return NULL; }
    return s;
}

static int rfail(docmap *t, char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        int k = snprintf(err, errlen, "docmap: ");
        va_list ap; va_start(ap, fmt);
        if (k >= 0 && (size_t)k < errlen) vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    docmap_free(t);
    return -1;
}

int docmap_read(docmap *m, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    docmap t; docmap_init(&t);
    rctx r = {buf, len, 0, 0};
    if (!buf || len < 8 + 24 + 8 || memcmp(buf, MAGIC, 8))
        return rfail(&t, err, errlen, "not a document map (bad magic)");
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len - 8; i++) { h ^= buf[i]; h *= 0x100000001b3ULL; }
    rctx tail = {buf + len - 8, 8, 0, 0};
    if (r64(&tail) != h) return rfail(&t, err, errlen, "checksum mismatch (corrupt map)");
    r.n = len - 8;
    r.i = 8;
    uint32_t nd = r32(&r), ns = r32(&r);
    uint64_t nb = r64(&r), nr = r64(&r);
    size_t left = r.n - r.i;
    /* each record has a minimum size: refuse counts the buffer cannot hold before allocating */
    if ((uint64_t)nd * 24 > left || (uint64_t)ns * 24 > left || nb > left / 32 || nr > left / 16 ||
        nr > UINT32_MAX)
        return rfail(&t, err, errlen, "counts exceed the buffer");
    if (nd && !(t.docs = calloc(nd, sizeof *t.docs))) return rfail(&t, err, errlen, "no memory");
    t.cap_docs = nd;
    for (uint32_t i = 0; i < nd && !r.bad; i++) {
        docmap_doc *d = &t.docs[i];
        d->size = r64(&r); d->sec_first = r32(&r); d->nsec = r32(&r);
        d->title = rstr(&r); d->path = rstr(&r);
        t.ndocs = i + 1;
    }
    if (r.bad) return rfail(&t, err, errlen, "truncated document table");
    if (ns && !(t.secs = calloc(ns, sizeof *t.secs))) return rfail(&t, err, errlen, "no memory");
    t.cap_secs = ns;
    for (uint32_t i = 0; i < ns && !r.bad; i++) {
        docmap_sec *s = &t.secs[i];
        s->offset = r64(&r); s->line = r64(&r); s->doc = r32(&r); s->title = rstr(&r);
        t.nsecs = i + 1;
    }
    if (r.bad) return rfail(&t, err, errlen, "truncated section table");
    /* documents own contiguous, consecutive section ranges */
    uint64_t next = 0;
    for (uint32_t i = 0; i < nd; i++) {
        if (t.docs[i].sec_first != next || (uint64_t)t.docs[i].sec_first + t.docs[i].nsec > ns)
            return rfail(&t, err, errlen, "document %u: bad section range", i);
        for (uint32_t k = 0; k < t.docs[i].nsec; k++)
            if (t.secs[t.docs[i].sec_first + k].doc != i)
                return rfail(&t, err, errlen, "section %u: wrong document", t.docs[i].sec_first + k);
        next += t.docs[i].nsec;
    }
    if (next != ns) return rfail(&t, err, errlen, "sections without a document");
    if (nb && !(t.blocks = calloc(nb, sizeof *t.blocks))) return rfail(&t, err, errlen, "no memory");
    t.cap_blocks = nb; t.nblocks = nb;
    uint64_t runs_seen = 0;
    for (uint64_t i = 0; i < nb && !r.bad; i++) {
        docmap_block *b = &t.blocks[i];
        b->tok_base = r64(&r); b->off_base = r64(&r); b->line_base = r64(&r);
        b->first = r32(&r); b->n = r32(&r);
        if (b->first != runs_seen || b->n == 0 || b->n > BLOCK_MAX_RUNS ||
            (i && (b->tok_base < t.blocks[i - 1].tok_base || b->off_base < t.blocks[i - 1].off_base)))
            return rfail(&t, err, errlen, "block %llu: bad layout", (unsigned long long)i);
        runs_seen += b->n;
    }
    if (r.bad) return rfail(&t, err, errlen, "truncated block table");
    if (runs_seen != nr) return rfail(&t, err, errlen, "blocks do not cover the runs");
    if (nr && !(t.runs = calloc(nr, sizeof *t.runs))) return rfail(&t, err, errlen, "no memory");
    t.cap_runs = nr; t.nruns = nr;
    for (uint64_t i = 0; i < nr && !r.bad; i++) {
        docmap_run *x = &t.runs[i];
        x->tok = r32(&r); x->off = r32(&r); x->line = r32(&r); x->sec = r32(&r);
        if (x->sec >= ns && x->sec != DOCMAP_SEC_CONV) return rfail(&t, err, errlen, "run %llu: bad section", (unsigned long long)i);
    }
    if (r.bad) return rfail(&t, err, errlen, "truncated run table");
    if (r.i != r.n) return rfail(&t, err, errlen, "trailing bytes");
    /* token and offset order inside every block; the first run sits on the base */
    for (uint64_t i = 0; i < nb; i++) {
        const docmap_block *b = &t.blocks[i];
        if (t.runs[b->first].tok != 0 || t.runs[b->first].off != 0)
            return rfail(&t, err, errlen, "block %llu: base mismatch", (unsigned long long)i);
        for (uint32_t k = 1; k < b->n; k++)
            if (t.runs[b->first + k].tok <= t.runs[b->first + k - 1].tok ||
                t.runs[b->first + k].off < t.runs[b->first + k - 1].off)
                return rfail(&t, err, errlen, "block %llu: runs out of order", (unsigned long long)i);
        if (i && b->tok_base <= t.blocks[i - 1].tok_base +
                                   t.runs[t.blocks[i - 1].first + t.blocks[i - 1].n - 1].tok)
            return rfail(&t, err, errlen, "block %llu: tokens out of order", (unsigned long long)i);
    }
    docmap_free(m);
    *m = t;
    return 0;
}
