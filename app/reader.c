/* reader: one reading session (see reader.h).
 *
 * Stream coordinates. The reader's stream is the concatenation of every chunk text it read,
 * in order, over all the documents it was given (several reader_add calls included): a
 * document starts with its header chunk "# Title\n\n" ("\n# Title\n\n" after the first
 * document), then its text. Read in one reader_add, this is exactly `--extract` of the same
 * documents. The docmap's offsets are in these coordinates; a document's saved read
 * position (snap_doc.offset) is relative to the first byte of its text (after the header),
 * so that re-opening it alone for a resume reproduces the same offsets.
 *
 * Tokens. Each chunk is tokenized on its own (so tokenization never depends on where reading
 * stopped) and appended to a pending buffer; only whole strides are fed while reading, the
 * remainder is fed at the end of all documents or before conversation tokens. A snapshot
 * stores the pending tokens (EXTRA), so a resumed read feeds exactly the strides an
 * uninterrupted one would. */
#include "reader.h"
#include "snapshot.h"
#include "tokenizer.h"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DOC_QUEUED = 0, DOC_READING = 1, DOC_DONE = 2 };

typedef struct rdoc {
    char    *path, *title;
    uint64_t size;              /* source size (stat), 0 unknown */
    char     hash[SNAP_HASH_MAX];
    int      hashed;
    int      state, failed, hdr_done;
    uint64_t text_off;          /* text bytes consumed (relative to the text's first byte) */
    uint64_t tokens, tok_first;
    uint64_t gstart, gtext;     /* stream offsets of its header and of its text */
    uint64_t prog_done, prog_total;   /* ingest progress (source bytes or EPUB entries) */
    int      kind, gzip;
} rdoc;

typedef struct { uint32_t doc, sec; uint64_t end; } sec_end_t;

/* A snapshot written by a background thread (autosave of a GPU cache): the state is a
 * shallow copy whose heads are the host mirror, which stays frozen while the GPU reads on
 * (only state_sync_host writes it, and bg_join runs before every one of those); everything
 * else is owned by the job. */
typedef struct {
    int active;
    pthread_t th;
    cr_state st;
    snap_content c;
    sampler samp;
    char *path, *mapbuf, *conv, *extra;
    int rc;
    char err[1024];
} bg_save;

struct cr_reader {
    cr_session *s;
    cr_reader_cb cb;
    rdoc *docs; int ndocs; size_t capdocs;
    docmap map;
    /* active ingest: documents [in_first, in_first + in_n) */
    cr_ingest *in; int in_first, in_n;
    int in_last;                /* global index of the last chunk's document, -1 none */
    uint64_t in_text_local;     /* ingest offset of that document's text */
    int skip_doc;               /* resume: global doc whose consumed chunks are skipped, -1 */
    /* tokens */
    int32_t *pend; size_t npend, cappend;
    uint64_t n_tok, n_fed, n_docfed;
    uint64_t gofs;
    /* sections */
    int has_open; uint32_t open_doc, open_sec;
    sec_end_t *sq; size_t nsq, capsq;
    /* conversation */
    cr_conv_msg *conv; size_t nconv, capconv;
    sampler samp;
    atomic_int stop;
    uint64_t autosave_at;       /* n_fed at the last autosave */
    bg_save bg;                 /* the autosave in flight (GPU caches only) */
    /* rates */
    double t0, rate; uint64_t rate_fed; double rate_t;
    int t0_set; uint64_t bytes_t0;  /* ETA: since the first reader_read (a resume starts midway) */
    float *logits; int have_logits;
};

static int ferr(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) { va_list ap; va_start(ap, fmt); vsnprintf(err, errlen, fmt, ap); va_end(ap); }
    return -1;
}
static void warnf(cr_reader *r, const char *fmt, ...) {
    if (!r->cb.warn) return;
    char msg[1024];
    va_list ap; va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap);
    r->cb.warn(r->cb.ud, msg);
}
static int is_url(const char *p) { return !strncasecmp(p, "http://", 7) || !strncasecmp(p, "https://", 8); }
static int is_local(const char *p) { return strcmp(p, "-") && !is_url(p); }

static int grow(void **p, size_t *cap, size_t need, size_t sz) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * sz);
    if (!q) return -1;
    *p = q; *cap = nc;
    return 0;
}

/* ---- construction ----------------------------------------------------------------------- */

static cr_reader *reader_alloc(cr_session *s, const cr_reader_cb *cb) {
    cr_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->s = s;
    if (cb) r->cb = *cb;
    docmap_init(&r->map);
    r->in_last = -1; r->skip_doc = -1;
    atomic_init(&r->stop, 0);
    r->logits = malloc(sizeof(float) * (size_t)s->model.hp.n_vocab);
    if (!r->logits) { free(r); return NULL; }
    r->t0 = now_sec();
    return r;
}

cr_reader *reader_new(cr_session *s, const cr_reader_cb *cb, char *err, size_t errlen) {
    if (!s || !s->has_state) { ferr(err, errlen, "reader: the session has no inference state"); return NULL; }
    cr_reader *r = reader_alloc(s, cb);
    if (!r) { ferr(err, errlen, "reader: out of memory"); return NULL; }
    sampler_cfg sc; sampler_cfg_default(&sc);
    if (s->o) sc = s->o->samp;
    if (sampler_init(&r->samp, &sc, s->model.hp.n_vocab)) { free(r->logits); free(r); ferr(err, errlen, "reader: out of memory"); return NULL; }
    r->n_tok = r->n_fed = (uint64_t)s->st.ctrl.seen;
    r->autosave_at = r->n_fed;
    if (r->n_fed == 0 && tok_bos(s->tok) >= 0) {
        if (grow((void **)&r->pend, &r->cappend, 1, sizeof *r->pend)) { reader_free(r); ferr(err, errlen, "reader: out of memory"); return NULL; }
        r->pend[r->npend++] = tok_bos(s->tok);
        r->n_tok = 1;
    }
    return r;
}

static void conv_free(cr_conv_msg *c, size_t n) {
    for (size_t i = 0; i < n; i++) { free(c[i].text); free(c[i].cites); }
    free(c);
}

static void bg_join(cr_reader *r);
static int autosave(cr_reader *r, const char *path, char *err, size_t errlen);

void reader_free(cr_reader *r) {
    if (!r) return;
    bg_join(r);
    if (r->in) cr_ingest_close(r->in);
    for (int i = 0; i < r->ndocs; i++) { free(r->docs[i].path); free(r->docs[i].title); }
    free(r->docs);
    docmap_free(&r->map);
    free(r->pend); free(r->sq);
    conv_free(r->conv, r->nconv);
    sampler_free(&r->samp);
    free(r->logits);
    free(r);
}

static int add_doc(cr_reader *r, const char *path) {
    if (grow((void **)&r->docs, &r->capdocs, (size_t)r->ndocs + 1, sizeof *r->docs)) return -1;
    rdoc *d = &r->docs[r->ndocs];
    memset(d, 0, sizeof *d);
    if (!(d->path = strdup(path))) return -1;
    if (is_local(path)) { struct stat sb; if (!stat(path, &sb)) d->size = (uint64_t)sb.st_size; }
    r->ndocs++;
    return 0;
}

int reader_add(cr_reader *r, const char *const *paths, int n, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        const char *p = paths[i];
        if (!p || !*p) return ferr(err, errlen, "reader: empty path");
        if (is_local(p)) {
            struct stat sb;
            if (stat(p, &sb)) return ferr(err, errlen, "%s: %s", p, strerror(errno));
            if (S_ISDIR(sb.st_mode)) return ferr(err, errlen, "%s: is a directory", p);
            if (access(p, R_OK)) return ferr(err, errlen, "%s: %s", p, strerror(errno));
        }
    }
    for (int i = 0; i < n; i++)
        if (add_doc(r, paths[i])) return ferr(err, errlen, "reader: out of memory");
    return 0;
}

void reader_request_stop(cr_reader *r) { if (r) atomic_store(&r->stop, 1); }

/* ---- progress ---------------------------------------------------------------------------- */

void reader_progress(const cr_reader *r, cr_progress *p) {
    memset(p, 0, sizeof *p);
    p->tokens = r->n_fed;
    p->doc_tokens = r->n_docfed;
    p->ndocs = r->ndocs;
    p->doc = r->ndocs;
    int alldone = 1;
    for (int i = 0; i < r->ndocs; i++) {
        const rdoc *d = &r->docs[i];
        uint64_t sz = d->size ? d->size : d->prog_total;
        p->bytes_total += sz;
        if (d->state == DOC_DONE) { p->bytes_done += sz; continue; }
        alldone = 0;
        if (p->doc > i) p->doc = i;
        if (d->state == DOC_READING) {
            double f = 0;
            if ((d->kind == CR_DOC_TEXT || d->kind == CR_DOC_LOG) && !d->gzip && sz) f = (double)d->text_off / (double)sz;
            else if (d->prog_total) f = (double)d->prog_done / (double)d->prog_total;
            if (f > 1) f = 1;
            p->bytes_done += (uint64_t)(f * (double)sz);
        }
    }
    if (p->doc >= r->ndocs) p->doc = r->ndocs ? r->ndocs - 1 : 0;
    p->done = alldone && r->npend == 0;
    p->tok_per_s = r->rate;
    p->eta_s = -1;
    double el = now_sec() - r->t0;
    if (p->done) p->eta_s = 0;
    else if (r->t0_set && p->bytes_total && p->bytes_done > r->bytes_t0 && el > 0.05 && p->bytes_done <= p->bytes_total)
        p->eta_s = el * (double)(p->bytes_total - p->bytes_done) / (double)(p->bytes_done - r->bytes_t0);
}

static void fire_progress(cr_reader *r) {
    if (!r->cb.progress) return;
    cr_progress p;
    reader_progress(r, &p);
    r->cb.progress(r->cb.ud, &p);
}

static void fire_sections(cr_reader *r) {
    size_t k = 0;
    while (k < r->nsq && r->sq[k].end <= r->n_fed) k++;
    if (!k) return;
    sec_end_t *ev = malloc(k * sizeof *ev);
    if (!ev) return;
    memcpy(ev, r->sq, k * sizeof *ev);
    memmove(r->sq, r->sq + k, (r->nsq - k) * sizeof *r->sq);
    r->nsq -= k;
    if (r->cb.section_end)
        for (size_t i = 0; i < k; i++) r->cb.section_end(r->cb.ud, ev[i].doc, ev[i].sec);
    free(ev);
}

static void close_section(cr_reader *r) {
    if (!r->has_open) return;
    r->has_open = 0;
    if (grow((void **)&r->sq, &r->capsq, r->nsq + 1, sizeof *r->sq)) return;
    r->sq[r->nsq++] = (sec_end_t){r->open_doc, r->open_sec, r->n_tok};
}

/* ---- feeding ------------------------------------------------------------------------------ */

static void update_rate(cr_reader *r) {
    double t = now_sec();
    if (r->rate_t == 0) { r->rate_t = t; r->rate_fed = r->n_fed; return; }
    double dt = t - r->rate_t;
    if (dt >= 0.25) {
        double inst = (double)(r->n_fed - r->rate_fed) / dt;
        r->rate = r->rate > 0 ? 0.5 * r->rate + 0.5 * inst : inst;
        r->rate_t = t; r->rate_fed = r->n_fed;
    } else if (r->rate == 0 && dt > 0 && r->n_fed > r->rate_fed) {
        r->rate = (double)(r->n_fed - r->rate_fed) / dt;
    }
}

/* Feeds the first n pending tokens (document tokens). */
static int feed_pending(cr_reader *r, size_t n, int want_logits, char *err, size_t errlen) {
    if (!n) return 0;
    if (session_feed(r->s, r->pend, n, want_logits ? r->logits : NULL, err, errlen)) return -1;
    r->have_logits = want_logits;
    memmove(r->pend, r->pend + n, (r->npend - n) * sizeof *r->pend);
    r->npend -= n;
    r->n_fed += n; r->n_docfed += n;
    update_rate(r);
    return 0;
}

static void maybe_autosave(cr_reader *r) {
    if (!r->cb.autosave_every || !r->cb.autosave_path) return;
    if (r->n_fed - r->autosave_at < r->cb.autosave_every) return;
    char e[1024];
    if (autosave(r, r->cb.autosave_path, e, sizeof e)) warnf(r, "%s", e);
    r->autosave_at = r->n_fed;
}

static int flush(cr_reader *r, int want_logits, char *err, size_t errlen) {
    if (r->npend && feed_pending(r, r->npend, want_logits, err, errlen)) return -1;
    fire_sections(r);
    return 0;
}

int reader_feed(cr_reader *r, const int32_t *ids, size_t n, float *last_logits, char *err, size_t errlen) {
    if (flush(r, 0, err, errlen)) return -1;
    if (!n) return 0;
    if (docmap_add_run(&r->map, r->n_tok, DOCMAP_CONV, r->gofs, 0, 0))
        return ferr(err, errlen, "reader: docmap: cannot add the conversation run");
    if (session_feed(r->s, ids, n, r->logits, err, errlen)) return -1;
    r->have_logits = 1;
    if (last_logits) memcpy(last_logits, r->logits, sizeof(float) * (size_t)r->s->model.hp.n_vocab);
    r->n_tok += n; r->n_fed += n;
    update_rate(r);
    return 0;
}

const float *reader_logits(const cr_reader *r) { return r->have_logits ? r->logits : NULL; }

/* ---- ingest ------------------------------------------------------------------------------ */

static void on_ing_progress(void *ud, int doc, uint64_t done, uint64_t total) {
    cr_reader *r = ud;
    int g = r->in_first + doc;
    if (g >= 0 && g < r->ndocs) { r->docs[g].prog_done = done; r->docs[g].prog_total = total; }
}
static void on_ing_warn(void *ud, const char *msg) {
    cr_reader *r = ud;
    if (r->cb.warn) r->cb.warn(r->cb.ud, msg);
}

static int open_ingest(cr_reader *r, char *err, size_t errlen) {
    int first = 0;
    while (first < r->ndocs && r->docs[first].state == DOC_DONE) first++;
    if (first >= r->ndocs) return 0;
    cr_ingest_opts io; cr_ingest_opts_default(&io);
    io.strip_gutenberg = r->s->o ? !r->s->o->no_strip : 1;
    io.headers = 1;
    io.progress = on_ing_progress; io.warn = on_ing_warn; io.ud = r;
    int n = r->ndocs - first;
    const char **paths = malloc((size_t)n * sizeof *paths);
    if (!paths) return ferr(err, errlen, "reader: out of memory");
    for (int i = 0; i < n; i++) paths[i] = r->docs[first + i].path;
    r->in = cr_ingest_open(paths, n, &io, err, errlen);
    free(paths);
    if (!r->in) {
        r->docs[first].state = DOC_DONE; r->docs[first].failed = 1;
        return -1;
    }
    r->in_first = first; r->in_n = n; r->in_last = -1;
    r->skip_doc = r->docs[first].state == DOC_READING ? first : -1;
    return 1;
}

/* Documents first..upto-1 of the ingest are finished. */
static void finish_docs(cr_reader *r, int upto) {
    for (int g = r->in_first; g < upto && g < r->ndocs; g++) {
        rdoc *d = &r->docs[g];
        if (d->state == DOC_DONE) continue;
        if (r->has_open && r->open_doc == (uint32_t)g) close_section(r);
        d->state = DOC_DONE;
    }
}

/* Adds map documents up to global doc g (placeholders for documents that never produced a
 * chunk) and the sections of g that the ingest found. */
static int map_doc(cr_reader *r, int g, const cr_docinfo *di, char *err, size_t errlen) {
    while ((int)r->map.ndocs <= g) {
        int k = (int)r->map.ndocs;
        const rdoc *d = &r->docs[k];
        const char *title = k == g && di ? di->title : (d->title ? d->title : d->path);
        if (docmap_add_doc(&r->map, title, d->path, d->size) != k)
            return ferr(err, errlen, "reader: docmap: cannot add %s", d->path);
    }
    rdoc *d = &r->docs[g];
    for (uint32_t k = r->map.docs[g].nsec; k < di->nsections; k++) {
        const cr_section *s = &di->sections[k];
        uint64_t off = d->gtext + (s->offset >= r->in_text_local ? s->offset - r->in_text_local : 0);
        if (docmap_add_section(&r->map, (uint32_t)g, off, s->line, s->title) < 0)
            return ferr(err, errlen, "%s: docmap: cannot add a section", d->path);
    }
    return 0;
}

/* One chunk of the ingest. 0 ok, -1 error. */
static int take_chunk(cr_reader *r, const cr_chunk *c, char *err, size_t errlen) {
    int g = r->in_first + (int)c->doc;
    rdoc *d = &r->docs[g];
    const cr_docinfo *di = cr_ingest_doc(r->in, (int)c->doc);
    if (g != r->in_last) {
        finish_docs(r, g);
        r->in_last = g;
        if (di) {
            if (!d->title || strcmp(d->title, di->title)) { free(d->title); d->title = strdup(di->title); }
            d->kind = di->kind; d->gzip = di->gzip;
        }
    }
    if (c->flags & CR_CHUNK_HEADER) r->in_text_local = c->offset + c->len;
    /* resume: skip what the snapshot already holds */
    if (r->skip_doc == g) {
        if (c->flags & CR_CHUNK_HEADER) return 0;
        uint64_t rel = c->offset - r->in_text_local;
        if (rel < d->text_off) {
            if (rel + c->len > d->text_off)
                return ferr(err, errlen, "%s: the document changed since the snapshot (cannot continue at byte %llu)", d->path, (unsigned long long)d->text_off);
            return 0;
        }
        if (rel > d->text_off)
            return ferr(err, errlen, "%s: the document changed since the snapshot (cannot continue at byte %llu)", d->path, (unsigned long long)d->text_off);
        r->skip_doc = -1;
    } else if (r->skip_doc >= 0 && g > r->skip_doc) {
        rdoc *sd = &r->docs[r->skip_doc];
        const cr_docinfo *si = cr_ingest_doc(r->in, r->skip_doc - r->in_first);
        if (!si || si->text_bytes != sd->text_off)
            return ferr(err, errlen, "%s: the document changed since the snapshot (it now ends before byte %llu)", sd->path, (unsigned long long)sd->text_off);
        r->skip_doc = -1;
    }
    /* the text this chunk contributes to the stream */
    const char *text = c->text; size_t len = c->len;
    char *hdr = NULL;
    if (c->flags & CR_CHUNK_HEADER) {
        /* the ingest starts its first document without the leading newline */
        int want_nl = g > 0, has_nl = len && text[0] == '\n';
        if (want_nl != has_nl) {
            hdr = malloc(len + 1);
            if (!hdr) return ferr(err, errlen, "reader: out of memory");
            if (want_nl) { hdr[0] = '\n'; memcpy(hdr + 1, text, len); len++; }
            else { memcpy(hdr, text + 1, len - 1); len--; }
            text = hdr;
        }
        d->state = DOC_READING; d->hdr_done = 1;
        d->gstart = r->gofs; d->gtext = r->gofs + len;
        d->tok_first = r->n_tok; d->tokens = 0;
    } else if (d->state == DOC_QUEUED) {       /* no header (cannot happen with headers on) */
        d->state = DOC_READING; d->gstart = d->gtext = r->gofs; d->tok_first = r->n_tok;
    }
    uint64_t goff = (c->flags & CR_CHUNK_HEADER) ? d->gstart : d->gtext + (c->offset - r->in_text_local);
    if (di && map_doc(r, g, di, err, errlen)) { free(hdr); return -1; }
    /* sections */
    if (!r->has_open || r->open_doc != (uint32_t)g || r->open_sec != c->section) {
        close_section(r);
        r->has_open = 1; r->open_doc = (uint32_t)g; r->open_sec = c->section;
    }
    size_t before = r->npend;
    if (tok_encode(r->s->tok, text, len, &r->pend, &r->npend, &r->cappend)) {
        free(hdr);
        return ferr(err, errlen, "%s: cannot tokenize (%s)", d->path, tok_last_error(r->s->tok));
    }
    free(hdr);
    size_t k = r->npend - before;
    if (k && docmap_add_run(&r->map, r->n_tok, (uint32_t)g, goff, c->line, c->section))
        return ferr(err, errlen, "%s: docmap: run out of order", d->path);
    r->n_tok += k; d->tokens += k;
    r->gofs = goff + len;
    if (!(c->flags & CR_CHUNK_HEADER)) d->text_off = c->offset - r->in_text_local + c->len;
    return 0;
}

static int doc_of_error(cr_reader *r, const char *msg) {
    int from = r->in_last >= 0 ? r->in_last : r->in_first;
    for (int g = from; g < r->in_first + r->in_n; g++) {
        size_t pl = strlen(r->docs[g].path);
        if (!strncmp(msg, r->docs[g].path, pl) && msg[pl] == ':') return g;
    }
    return from;
}

int reader_read(cr_reader *r, uint64_t max_tokens, char *err, size_t errlen) {
    const size_t L = (size_t)r->s->stride;
    uint64_t start = r->n_docfed;
    if (!r->t0_set) {
        cr_progress p0; reader_progress(r, &p0);
        r->t0 = now_sec(); r->bytes_t0 = p0.bytes_done; r->t0_set = 1;
    }
    for (;;) {
        if (atomic_exchange(&r->stop, 0)) { fire_progress(r); return 2; }
        if (r->npend >= L) {
            if (feed_pending(r, L, 0, err, errlen)) return -1;
            fire_sections(r);
            fire_progress(r);
            maybe_autosave(r);
            if (max_tokens && r->n_docfed - start >= max_tokens) return 1;
            continue;
        }
        if (!r->in) {
            int o = open_ingest(r, err, errlen);
            if (o < 0) return -1;
            if (o == 0) {                 /* everything queued has been read */
                close_section(r);
                if (flush(r, 1, err, errlen)) return -1;
                fire_progress(r);
                maybe_autosave(r);
                return 0;
            }
        }
        cr_chunk c;
        int k = cr_ingest_next(r->in, &c, err, errlen);
        if (k < 0) {
            int g = doc_of_error(r, err);
            finish_docs(r, g);
            if (r->has_open && r->open_doc == (uint32_t)g) close_section(r);
            r->docs[g].state = DOC_DONE; r->docs[g].failed = 1;
            cr_ingest_close(r->in); r->in = NULL; r->skip_doc = -1;
            return -1;
        }
        if (k == 0) {
            if (r->skip_doc >= 0) {
                rdoc *sd = &r->docs[r->skip_doc];
                const cr_docinfo *si = cr_ingest_doc(r->in, r->skip_doc - r->in_first);
                if (!si || si->text_bytes != sd->text_off) {
                    ferr(err, errlen, "%s: the document changed since the snapshot (it now ends before byte %llu)", sd->path, (unsigned long long)sd->text_off);
                    sd->state = DOC_DONE; sd->failed = 1;
                    cr_ingest_close(r->in); r->in = NULL; r->skip_doc = -1;
                    return -1;
                }
                r->skip_doc = -1;
            }
            finish_docs(r, r->in_first + r->in_n);
            cr_ingest_close(r->in); r->in = NULL;
            continue;                     /* documents added meanwhile: a new ingest */
        }
        if (take_chunk(r, &c, err, errlen)) {
            int g = r->in_first + (int)c.doc;
            finish_docs(r, g);
            r->docs[g].state = DOC_DONE; r->docs[g].failed = 1;
            cr_ingest_close(r->in); r->in = NULL; r->skip_doc = -1;
            return -1;
        }
    }
}

/* ---- conversation ------------------------------------------------------------------------- */

int reader_conv_add(cr_reader *r, int role, const char *text, uint64_t tok_first, uint64_t tok_end,
                    const char *cites) {
    if (grow((void **)&r->conv, &r->capconv, r->nconv + 1, sizeof *r->conv)) return -1;
    cr_conv_msg *m = &r->conv[r->nconv];
    memset(m, 0, sizeof *m);
    m->role = role;
    m->text = strdup(text ? text : "");
    m->cites = cites ? strdup(cites) : NULL;
    if (!m->text || (cites && !m->cites)) { free(m->text); free(m->cites); return -1; }
    m->tok_first = tok_first; m->tok_end = tok_end;
    m->doc_tokens_at = r->n_docfed;
    return (int)r->nconv++;
}
size_t reader_conv_count(const cr_reader *r) { return r->nconv; }
const cr_conv_msg *reader_conv_get(const cr_reader *r, size_t i) { return i < r->nconv ? &r->conv[i] : NULL; }

cr_session      *reader_session(cr_reader *r) { return r->s; }
const docmap    *reader_docmap(const cr_reader *r) { return &r->map; }
const cr_ingest *reader_ingest(const cr_reader *r) { return r->in; }
sampler         *reader_sampler(cr_reader *r) { return &r->samp; }
uint64_t         reader_tokens(const cr_reader *r) { return r->n_tok; }

/* ---- serialization of the reader's own blobs ------------------------------------------ */

typedef struct { uint8_t *p; size_t n, cap; int bad; } bbuf;
static void bput(bbuf *b, const void *p, size_t n) {
    if (b->bad) return;
    if (grow((void **)&b->p, &b->cap, b->n + n, 1)) { b->bad = 1; return; }
    memcpy(b->p + b->n, p, n); b->n += n;
}
static void b32(bbuf *b, uint32_t v) { uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)}; bput(b, t, 4); }
static void b64(bbuf *b, uint64_t v) { b32(b, (uint32_t)v); b32(b, (uint32_t)(v >> 32)); }
static void bstr(bbuf *b, const char *s) {   /* u32 length + 1 (0 = NULL), bytes */
    if (!s) { b32(b, 0); return; }
    size_t n = strlen(s);
    b32(b, (uint32_t)n + 1); bput(b, s, n);
}

typedef struct { const uint8_t *p; size_t n, i; int bad; } cur;
static int cneed(cur *c, size_t k) { if (c->bad || c->n - c->i < k) { c->bad = 1; return 0; } return 1; }
static uint32_t c32(cur *c) {
    if (!cneed(c, 4)) return 0;
    const uint8_t *q = c->p + c->i; c->i += 4;
    return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
}
static uint64_t c64(cur *c) { uint64_t lo = c32(c); return lo | (uint64_t)c32(c) << 32; }
static char *cstr(cur *c, int *isnull) {
    uint32_t n = c32(c);
    *isnull = n == 0;
    if (n == 0) return NULL;
    n--;
    if (!cneed(c, n)) return NULL;
    if (memchr(c->p + c->i, 0, n)) { c->bad = 1; return NULL; }
    char *s = malloc((size_t)n + 1);
    if (!s) { c->bad = 1; return NULL; }
    memcpy(s, c->p + c->i, n); s[n] = 0; c->i += n;
    return s;
}

/* CONV: "CRCV" u32 version 1, u32 count; per message: u32 role, u64 tok_first, tok_end,
 * doc_tokens_at, str text, str cites (str: u32 length+1, 0 = none; bytes). */
static void enc_conv(const cr_reader *r, bbuf *b) {
    bput(b, "CRCV", 4); b32(b, 1); b32(b, (uint32_t)r->nconv);
    for (size_t i = 0; i < r->nconv; i++) {
        const cr_conv_msg *m = &r->conv[i];
        b32(b, (uint32_t)m->role); b64(b, m->tok_first); b64(b, m->tok_end); b64(b, m->doc_tokens_at);
        bstr(b, m->text); bstr(b, m->cites);
    }
}
static int dec_conv(cr_reader *r, const uint8_t *p, size_t n) {
    cur c = {p, n, 0, 0};
    if (n < 12 || memcmp(p, "CRCV", 4)) return -1;
    c.i = 4;
    if (c32(&c) != 1) return -1;
    uint32_t cnt = c32(&c);
    if (cnt > (n - 12) / 36) return -1;
    for (uint32_t i = 0; i < cnt; i++) {
        int role = (int)c32(&c);
        uint64_t a = c64(&c), e = c64(&c), at = c64(&c);
        int tn, cn;
        char *t = cstr(&c, &tn), *ci = cstr(&c, &cn);
        if (c.bad || tn || role < CONV_USER || role > CONV_SYSTEM || e < a || e > r->n_tok ||
            grow((void **)&r->conv, &r->capconv, r->nconv + 1, sizeof *r->conv)) { free(t); free(ci); return -1; }
        r->conv[r->nconv++] = (cr_conv_msg){role, t, a, e, at, ci};
    }
    return c.bad || c.i != n ? -1 : 0;
}

/* EXTRA: "CRRX" u32 version 1; u64 n_tok, n_fed, n_docfed, gofs; u64 npend, i32 ids;
 * u32 ndocs, per document u64 gstart, gtext, u32 state, failed, hdr_done;
 * u32 has_open, open_doc, open_sec; u32 nsq, per entry u32 doc, sec, u64 end. */
static void enc_extra(const cr_reader *r, bbuf *b) {
    bput(b, "CRRX", 4); b32(b, 1);
    b64(b, r->n_tok); b64(b, r->n_fed); b64(b, r->n_docfed); b64(b, r->gofs);
    b64(b, r->npend);
    for (size_t i = 0; i < r->npend; i++) b32(b, (uint32_t)r->pend[i]);
    b32(b, (uint32_t)r->ndocs);
    for (int i = 0; i < r->ndocs; i++) {
        const rdoc *d = &r->docs[i];
        b64(b, d->gstart); b64(b, d->gtext); b32(b, (uint32_t)d->state); b32(b, (uint32_t)d->failed); b32(b, (uint32_t)d->hdr_done);
    }
    b32(b, (uint32_t)r->has_open); b32(b, r->open_doc); b32(b, r->open_sec);
    b32(b, (uint32_t)r->nsq);
    for (size_t i = 0; i < r->nsq; i++) { b32(b, r->sq[i].doc); b32(b, r->sq[i].sec); b64(b, r->sq[i].end); }
}
static int dec_extra(cr_reader *r, const uint8_t *p, size_t n, int ndocs_expected) {
    cur c = {p, n, 0, 0};
    if (n < 8 || memcmp(p, "CRRX", 4)) return -1;
    c.i = 4;
    if (c32(&c) != 1) return -1;
    r->n_tok = c64(&c); r->n_fed = c64(&c); r->n_docfed = c64(&c); r->gofs = c64(&c);
    uint64_t np = c64(&c);
    if (c.bad || np > (n - c.i) / 4 || r->n_fed + np != r->n_tok || r->n_docfed > r->n_fed) return -1;
    if (np && grow((void **)&r->pend, &r->cappend, (size_t)np, sizeof *r->pend)) return -1;
    int nv = r->s->model.hp.n_vocab;
    for (uint64_t i = 0; i < np; i++) {
        int32_t t = (int32_t)c32(&c);
        if (t < 0 || t >= nv) return -1;
        r->pend[i] = t;
    }
    r->npend = (size_t)np;
    uint32_t nd = c32(&c);
    if (c.bad || (int)nd != ndocs_expected) return -1;
    for (uint32_t i = 0; i < nd; i++) {
        rdoc *d = &r->docs[i];
        d->gstart = c64(&c); d->gtext = c64(&c);
        d->state = (int)c32(&c); d->failed = (int)c32(&c); d->hdr_done = (int)c32(&c);
        if (d->state < DOC_QUEUED || d->state > DOC_DONE || d->gtext < d->gstart || d->gtext > r->gofs) return -1;
    }
    r->has_open = (int)c32(&c); r->open_doc = c32(&c); r->open_sec = c32(&c);
    uint32_t nq = c32(&c);
    if (c.bad || nq > (n - c.i) / 16) return -1;
    if (nq && grow((void **)&r->sq, &r->capsq, nq, sizeof *r->sq)) return -1;
    for (uint32_t i = 0; i < nq; i++) { r->sq[i].doc = c32(&c); r->sq[i].sec = c32(&c); r->sq[i].end = c64(&c); }
    r->nsq = c.bad ? 0 : nq;
    return c.bad || c.i != n ? -1 : 0;
}

/* ---- snapshots ---------------------------------------------------------------------------- */

/* The snapshot's content for the current state (c->st, c->samp set by the caller).
 * *mapbuf, *conv, *extra and c->docs are allocated; the docs' strings point into r->docs
 * unless own_strings. */
static int build_content(cr_reader *r, snap_content *c, char **mapbuf, char **convp, char **extrap, int own_strings,
                         const char *path, char *err, size_t errlen) {
    c->quant = r->s->o && r->s->o->snapshot_quant ? SNAP_QUANT_Q8 : 0;
    *mapbuf = *convp = *extrap = NULL;
    snap_doc *docs = calloc((size_t)r->ndocs + 1, sizeof *docs);
    size_t maplen = 0;
    bbuf conv = {0}, extra = {0};
    if (!docs) return ferr(err, errlen, "cannot save snapshot %s: out of memory", path);
    c->docs = docs; c->n_docs = (size_t)r->ndocs;
    for (int i = 0; i < r->ndocs; i++) {
        rdoc *d = &r->docs[i];
        if (!d->hashed && d->state != DOC_QUEUED && is_local(d->path)) {
            uint64_t sz;
            if (snapshot_hash_file(d->path, d->hash, &sz) == 0) { d->hashed = 1; if (!d->size) d->size = sz; }
            else d->hash[0] = 0;
        }
        snap_doc *sd = &docs[i];
        sd->path = own_strings ? strdup(d->path) : d->path;
        sd->title = own_strings && d->title ? strdup(d->title) : d->title;
        if (!sd->path || (d->title && !sd->title)) return ferr(err, errlen, "cannot save snapshot %s: out of memory", path);
        sd->size = d->size;
        memcpy(sd->hash, d->hashed ? d->hash : "", d->hashed ? SNAP_HASH_MAX : 1);
        sd->offset = d->text_off; sd->tokens = d->tokens; sd->tok_first = d->tok_first;
        sd->flags = d->state == DOC_DONE ? SNAP_DOC_DONE : 0;
    }
    FILE *mf = open_memstream(mapbuf, &maplen);
    if (!mf || docmap_write(&r->map, mf)) { if (mf) fclose(mf); return ferr(err, errlen, "cannot save snapshot %s: out of memory", path); }
    if (fclose(mf)) return ferr(err, errlen, "cannot save snapshot %s: out of memory", path);
    c->docmap = *mapbuf; c->docmap_len = maplen;
    enc_conv(r, &conv); enc_extra(r, &extra);
    *convp = (char *)conv.p; *extrap = (char *)extra.p;
    if (conv.bad || extra.bad) return ferr(err, errlen, "cannot save snapshot %s: out of memory", path);
    c->conv = conv.p; c->conv_len = conv.n;
    c->extra = extra.p; c->extra_len = extra.n;
    return 0;
}

static void free_docs(snap_content *c, int own_strings) {
    if (own_strings && c->docs)
        for (size_t i = 0; i < c->n_docs; i++) { free(c->docs[i].path); free(c->docs[i].title); }
    free(c->docs);
    c->docs = NULL;
}

int reader_save(cr_reader *r, const char *path, char *err, size_t errlen) {
    bg_join(r);
    snap_content c;
    memset(&c, 0, sizeof c);
    if (state_sync_host(&r->s->st, err, errlen)) return -1;    /* a GPU cache: its host mirror */
    c.st = &r->s->st;
    c.samp = &r->samp;
    char *mapbuf, *conv, *extra;
    int rc = build_content(r, &c, &mapbuf, &conv, &extra, 0, path, err, errlen);
    if (rc == 0) rc = snapshot_save(path, &c, err, errlen);
    free_docs(&c, 0);
    free(mapbuf); free(conv); free(extra);
    return rc;
}

static void *bg_main(void *arg) {
    bg_save *b = arg;
    b->rc = snapshot_save(b->path, &b->c, b->err, sizeof b->err);
    return NULL;
}

static void bg_free(bg_save *b) {
    free_docs(&b->c, 1);
    free(b->path); free(b->mapbuf); free(b->conv); free(b->extra);
    free(b->samp.hist);
    memset(b, 0, sizeof *b);
}

/* Waits for the autosave in flight; its error, if any, is a warning. */
static void bg_join(cr_reader *r) {
    if (!r->bg.active) return;
    pthread_join(r->bg.th, NULL);
    if (r->bg.rc) warnf(r, "%s", r->bg.err);
    bg_free(&r->bg);
}

void reader_wait_saves(cr_reader *r) { if (r) bg_join(r); }

/* An autosave: in the background when the cache is on the GPU (the GPU reads on while the
 * CPU compresses), otherwise now. */
static int autosave(cr_reader *r, const char *path, char *err, size_t errlen) {
    if (!state_on_gpu(&r->s->st)) return reader_save(r, path, err, errlen);
    bg_join(r);
    bg_save *b = &r->bg;
    memset(b, 0, sizeof *b);
    if (state_sync_host(&r->s->st, err, errlen)) return -1;
    b->st = r->s->st;                                 /* ctrl by value; heads: the frozen mirror */
    b->samp = r->samp;
    b->samp.idx = NULL; b->samp.prob = NULL; b->samp.hist = NULL;
    if (r->samp.cfg.rep_last_n > 0 && r->samp.hist) {
        b->samp.hist = malloc(sizeof(int32_t) * (size_t)r->samp.cfg.rep_last_n);
        if (!b->samp.hist) { bg_free(b); return ferr(err, errlen, "cannot save snapshot %s: out of memory", path); }
        memcpy(b->samp.hist, r->samp.hist, sizeof(int32_t) * (size_t)r->samp.cfg.rep_last_n);
    }
    b->c.st = &b->st;
    b->c.samp = &b->samp;
    if (!(b->path = strdup(path)) || build_content(r, &b->c, &b->mapbuf, &b->conv, &b->extra, 1, path, err, errlen)) {
        if (!b->path) ferr(err, errlen, "cannot save snapshot %s: out of memory", path);
        bg_free(b); return -1;
    }
    if (pthread_create(&b->th, NULL, bg_main, b)) {   /* no thread: save now */
        b->rc = snapshot_save(b->path, &b->c, err, errlen);
        int rc = b->rc;
        bg_free(b);
        return rc;
    }
    b->active = 1;
    return 0;
}

cr_reader *reader_resume(cr_session *s, const char *path, const cr_reader_cb *cb, char *err, size_t errlen) {
    if (!s || !s->has_state) { ferr(err, errlen, "%s: the session has no inference state", path); return NULL; }
    snap_content c;
    const int was_gpus = state_gpu_ranks(&s->st);
    if (snapshot_load(path, &s->model, &c, &s->st, err, errlen)) return NULL;
    s->stride = s->st.max_L;
    /* the cache was written on the host: upload it (in place), or move the re-initialized
     * state back to the GPU the session was using */
    char derr[512];
    if ((state_on_gpu(&s->st) ? state_sync_device(&s->st, derr, sizeof derr)
         : was_gpus ? state_use_cuda_ranks(&s->st, was_gpus, derr, sizeof derr) : 0)) {
        ferr(err, errlen, "%s: %s", path, derr);
        snap_content_free(&c);
        return NULL;
    }
    cr_reader *r = reader_alloc(s, cb);
    char why[512];
    if (!r) { ferr(err, errlen, "%s: out of memory", path); snap_content_free(&c); return NULL; }
    if (c.samp) { r->samp = *c.samp; free(c.samp); c.samp = NULL; }
    else {
        sampler_cfg sc; sampler_cfg_default(&sc);
        if (s->o) sc = s->o->samp;
        if (sampler_init(&r->samp, &sc, s->model.hp.n_vocab)) { ferr(err, errlen, "%s: out of memory", path); goto fail; }
    }
    if (!c.extra || !c.docmap) {
        ferr(err, errlen, "%s: the snapshot holds no reading session (documents, map) to continue", path);
        goto fail;
    }
    for (size_t i = 0; i < c.n_docs; i++) {
        if (add_doc(r, c.docs[i].path)) { ferr(err, errlen, "%s: out of memory", path); goto fail; }
        rdoc *d = &r->docs[i];
        const snap_doc *sd = &c.docs[i];
        if (sd->title && !(d->title = strdup(sd->title))) { ferr(err, errlen, "%s: out of memory", path); goto fail; }
        d->size = sd->size;
        if (sd->hash[0]) { memcpy(d->hash, sd->hash, SNAP_HASH_MAX); d->hash[SNAP_HASH_MAX - 1] = 0; d->hashed = 1; }
        d->text_off = sd->offset; d->tokens = sd->tokens; d->tok_first = sd->tok_first;
    }
    if (dec_extra(r, c.extra, c.extra_len, (int)c.n_docs) || r->n_fed != (uint64_t)s->st.ctrl.seen) {
        ferr(err, errlen, "%s: corrupt snapshot (bad reader state)", path); goto fail;
    }
    for (size_t i = 0; i < c.n_docs; i++)
        if (((c.docs[i].flags & SNAP_DOC_DONE) != 0) != (r->docs[i].state == DOC_DONE)) {
            ferr(err, errlen, "%s: corrupt snapshot (document states disagree)", path); goto fail;
        }
    if (docmap_read(&r->map, c.docmap, c.docmap_len, why, sizeof why)) {
        ferr(err, errlen, "%s: corrupt snapshot (%s)", path, why); goto fail;
    }
    if (r->map.ndocs > (uint32_t)r->ndocs) { ferr(err, errlen, "%s: corrupt snapshot (map and documents disagree)", path); goto fail; }
    if (c.conv && dec_conv(r, c.conv, c.conv_len)) { ferr(err, errlen, "%s: corrupt snapshot (bad conversation)", path); goto fail; }
    /* a partly read document continues: it must be the one that was read */
    for (int i = 0; i < r->ndocs; i++) {
        rdoc *d = &r->docs[i];
        if (d->state != DOC_READING) continue;
        if (!strcmp(d->path, "-")) {
            warnf(r, "-: standard input cannot be read again; its rest is not read");
            d->state = DOC_DONE;
            if (r->has_open && r->open_doc == (uint32_t)i) close_section(r);
            continue;
        }
        if (!is_local(d->path)) continue;
        struct stat sb;
        if (stat(d->path, &sb)) { ferr(err, errlen, "%s: %s (needed to continue the snapshot %s)", d->path, strerror(errno), path); goto fail; }
        if (d->size && (uint64_t)sb.st_size != d->size) {
            ferr(err, errlen, "%s: the document changed since the snapshot (%llu bytes, was %llu)", d->path,
                 (unsigned long long)sb.st_size, (unsigned long long)d->size);
            goto fail;
        }
        if (d->hashed) {
            char h[SNAP_HASH_MAX]; uint64_t sz;
            if (snapshot_hash_file(d->path, h, &sz)) { ferr(err, errlen, "%s: %s", d->path, strerror(errno)); goto fail; }
            if (strcmp(h, d->hash)) { ferr(err, errlen, "%s: the document changed since the snapshot (different content)", d->path); goto fail; }
        }
    }
    r->autosave_at = r->n_fed;
    snap_content_free(&c);
    return r;
fail:
    snap_content_free(&c);
    reader_free(r);
    return NULL;
}

cr_reader *reader_from_opts(cr_session *s, const cr_opts *o, cr_reader_cb *cb, char *err, size_t errlen) {
    if (o->autosave && o->save_path) { cb->autosave_every = (uint64_t)o->autosave; cb->autosave_path = o->save_path; }
    cr_reader *r = o->resume_path ? reader_resume(s, o->resume_path, cb, err, errlen) : reader_new(s, cb, err, errlen);
    if (r && o->n_inputs && reader_add(r, o->inputs, o->n_inputs, err, errlen)) { reader_free(r); r = NULL; }
    return r;
}
