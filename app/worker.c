/* The engine worker thread, its command queue and event queue (self-pipe), and the backend
 * that drives the real reader (reader.h, ask.h). */
#include "worker.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct wk_cmd { int type; char *arg; struct wk_cmd *next; } wk_cmd;

struct wk {
    wk_backend be;
    pthread_t th; int started;
    pthread_mutex_t mu; pthread_cond_t cv;
    wk_cmd *cq, *cq_tail;             /* commands */
    wk_event *eq, *eq_tail;           /* events */
    int pipe_r, pipe_w;
    int quit, ended;
    int reading;                      /* 1 reading, 0 done, 2 stopped */
    int busy;                         /* a command runs */
    int cur_cmd;                      /* which (WK_CMD_*) */
    int status_pending;               /* a WK_EV_STATUS waits in eq */
    wk_status st;
    volatile int stop;                /* Ctrl-C for the running command */
};

void wk_cache_map_free(wk_cache_map *m) {
    if (!m) return;
    free(m->hold);
    for (int i = 0; i < m->ndocs; i++) free(m->doc_title ? m->doc_title[i] : NULL);
    free(m->doc_title); free(m->doc_first); free(m);
}

void wk_event_free(wk_event *e) {
    if (!e) return;
    free(e->text); free(e->title); free(e->cites); free(e->lines); wk_cache_map_free(e->cache); free(e);
}

static void push_locked(wk *w, wk_event *e) {
    e->next = NULL;
    int was_empty = !w->eq;
    if (w->eq_tail) w->eq_tail->next = e; else w->eq = e;
    w->eq_tail = e;
    if (was_empty) { char c = 1; ssize_t r = write(w->pipe_w, &c, 1); (void)r; }
}

void wk_emit(wk *w, wk_event *e) {
    if (!e) return;
    pthread_mutex_lock(&w->mu);
    push_locked(w, e);
    pthread_mutex_unlock(&w->mu);
}

void wk_emit_text(wk *w, int type, const char *text) {
    wk_event *e = calloc(1, sizeof *e);
    if (!e) return;
    e->type = type;
    e->text = strdup(text ? text : "");
    e->len = e->text ? strlen(e->text) : 0;
    wk_emit(w, e);
}

void wk_token(wk *w, const char *piece, size_t n) {
    wk_event *e = calloc(1, sizeof *e);
    if (!e) return;
    e->type = WK_EV_TOKEN;
    e->text = malloc(n + 1);
    if (!e->text) { free(e); return; }
    memcpy(e->text, piece, n); e->text[n] = 0; e->len = n;
    wk_emit(w, e);
}

volatile int *wk_stop_flag(wk *w) { return &w->stop; }

void wk_status_changed(wk *w) {
    wk_status st;
    pthread_mutex_lock(&w->mu);
    st = w->st;
    pthread_mutex_unlock(&w->mu);
    if (w->be.status) w->be.status(w->be.ud, &st);   /* outside the lock: may take a while */
    pthread_mutex_lock(&w->mu);
    st.reading = w->reading; st.busy = w->busy;
    w->st = st;
    if (!w->status_pending) {
        wk_event *e = calloc(1, sizeof *e);
        if (e) { e->type = WK_EV_STATUS; w->status_pending = 1; push_locked(w, e); }
    }
    pthread_mutex_unlock(&w->mu);
}

static void set_reading(wk *w, int r, int announce) {
    pthread_mutex_lock(&w->mu);
    int changed = w->reading != r;
    w->reading = r;
    pthread_mutex_unlock(&w->mu);
    if (changed && announce) {
        wk_event *e = calloc(1, sizeof *e);
        if (e) { e->type = WK_EV_READ; e->code = r; wk_emit(w, e); }
    }
}

static int run_cmd(wk *w, wk_cmd *c) {
    char err[1024] = "";
    int r = -1;
    const wk_backend *be = &w->be;
#define CALL(fn, ...) (be->fn ? be->fn(be->ud, w, ##__VA_ARGS__) : (snprintf(err, sizeof err, "not available in this build"), -1))
    switch (c->type) {
    case WK_CMD_ASK: r = CALL(ask, c->arg, err, sizeof err); break;
    case WK_CMD_SUMMARIZE: r = CALL(summarize, err, sizeof err); break;
    case WK_CMD_GREP: r = CALL(grep, c->arg, err, sizeof err); break;
    case WK_CMD_SAVE: r = CALL(save, c->arg, err, sizeof err); break;
    case WK_CMD_LOAD: r = CALL(load, c->arg, err, sizeof err); if (r == 0) set_reading(w, 1, 1); break;
    case WK_CMD_ADD: r = CALL(add, c->arg, err, sizeof err); if (r == 0) set_reading(w, 1, 1); break;
    case WK_CMD_CACHE: r = CALL(cache, err, sizeof err); break;
    case WK_CMD_READ:
        r = 0;
        if (w->reading == 2) set_reading(w, 1, 1);
        else wk_emit_text(w, WK_EV_INFO, w->reading == 1 ? "already reading" : "everything queued has been read");
        break;
    default: r = 0; break;
    }
#undef CALL
    if (r < 0) wk_emit_text(w, WK_EV_ERROR, err[0] ? err : "failed");
    return r;
}

static void *thread_main(void *arg) {
    wk *w = arg;
    if (w->be.start) w->be.start(w->be.ud, w);
    wk_status_changed(w);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->quit && !w->cq && w->reading != 1) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) { pthread_mutex_unlock(&w->mu); break; }
        wk_cmd *c = w->cq;
        if (c) { w->cq = c->next; if (!w->cq) w->cq_tail = NULL; w->busy = 1; w->stop = 0; w->cur_cmd = c->type; }
        pthread_mutex_unlock(&w->mu);
        if (c && c->type == WK_CMD_QUIT) {         /* after the commands queued before it */
            free(c->arg); free(c);
            pthread_mutex_lock(&w->mu); w->quit = 1; w->busy = 0; pthread_mutex_unlock(&w->mu);
            break;
        }
        if (c) {
            wk_status_changed(w);
            run_cmd(w, c);
            free(c->arg); free(c);
            pthread_mutex_lock(&w->mu); w->busy = 0; w->stop = 0; pthread_mutex_unlock(&w->mu);
            wk_status_changed(w);
            continue;
        }
        char err[1024] = "";
        int r = w->be.read ? w->be.read(w->be.ud, w, err, sizeof err) : 0;
        if (r < 0) wk_emit_text(w, WK_EV_ERROR, err[0] ? err : "reading failed");
        wk_status_changed(w);                     /* the counts first, then the state change */
        if (r <= 0) set_reading(w, 0, 1);
        else if (r == 2) set_reading(w, 2, 1);
    }
    wk_event *e = calloc(1, sizeof *e);
    if (e) { e->type = WK_EV_EXIT; wk_emit(w, e); }
    pthread_mutex_lock(&w->mu); w->ended = 1; pthread_mutex_unlock(&w->mu);
    return NULL;
}

wk *worker_start(const wk_backend *be, int read_first, char *err, size_t errlen) {
    wk *w = calloc(1, sizeof *w);
    if (!w) { snprintf(err, errlen, "out of memory"); return NULL; }
    w->be = *be;
    w->reading = read_first ? 1 : 0;
    w->st.pos_doc = -1;
    int p[2];
    if (pipe(p)) { snprintf(err, errlen, "pipe: %s", strerror(errno)); free(w); return NULL; }
    w->pipe_r = p[0]; w->pipe_w = p[1];
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, thread_main, w)) {
        snprintf(err, errlen, "cannot start the worker thread");
        close(p[0]); close(p[1]); free(w); return NULL;
    }
    w->started = 1;
    return w;
}

int worker_send(wk *w, int type, const char *arg) {
    wk_cmd *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->type = type;
    if (arg && !(c->arg = strdup(arg))) { free(c); return -1; }
    pthread_mutex_lock(&w->mu);
    if (w->ended || w->quit) { pthread_mutex_unlock(&w->mu); free(c->arg); free(c); return -1; }
    if (w->cq_tail) w->cq_tail->next = c; else w->cq = c;
    w->cq_tail = c;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int worker_stop(wk *w) {
    pthread_mutex_lock(&w->mu);
    int r = 0;
    if (w->busy) {
        w->stop = 1; r = 1;
        if (w->cur_cmd == WK_CMD_SUMMARIZE && w->be.stop) w->be.stop(w->be.ud);   /* it reads too */
    } else if (w->reading == 1) { if (w->be.stop) w->be.stop(w->be.ud); r = 1; }
    pthread_mutex_unlock(&w->mu);
    return r;
}

int worker_fd(wk *w) { return w->pipe_r; }

wk_event *worker_next(wk *w) {
    pthread_mutex_lock(&w->mu);
    wk_event *e = w->eq;
    if (e) { w->eq = e->next; if (!w->eq) w->eq_tail = NULL; e->next = NULL; }
    if (e && e->type == WK_EV_STATUS) w->status_pending = 0;
    if (!w->eq) { char buf[256]; while (read(w->pipe_r, buf, sizeof buf) > 0) {} }
    pthread_mutex_unlock(&w->mu);
    return e;
}

void worker_status(wk *w, wk_status *st) {
    pthread_mutex_lock(&w->mu);
    *st = w->st;
    st->reading = w->reading; st->busy = w->busy;    /* live, not as of the last status */
    pthread_mutex_unlock(&w->mu);
}

void worker_free(wk *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    w->stop = 1;
    if ((w->reading == 1 || w->busy) && w->be.stop) w->be.stop(w->be.ud);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started) pthread_join(w->th, NULL);
    if (w->be.destroy) w->be.destroy(w->be.ud);
    while (w->cq) { wk_cmd *c = w->cq; w->cq = c->next; free(c->arg); free(c); }
    while (w->eq) { wk_event *e = w->eq; w->eq = e->next; wk_event_free(e); }
    close(w->pipe_r); close(w->pipe_w);
    pthread_mutex_destroy(&w->mu); pthread_cond_destroy(&w->cv);
    free(w);
}

/* ---- The real backend: a session, a reader (reader.h) and ask (ask.h). ---------------- */
#include "ask.h"
#include "grep.h"
#include "ingest.h"
#include "summarize.h"
#include "session.h"
#include <sys/stat.h>

#define WK_MAX_TEXT ((size_t)64 << 20)      /* document text kept for the document pane */

typedef struct rb {
    cr_opts o;
    cr_session s;
    cr_reader *r;
    char **paths; int npaths;               /* documents, in docmap order */
    int sent;                               /* documents whose text was emitted */
    int pos_doc; uint64_t pos_rel;
    uint64_t budget;                        /* tokens per read call */
    wk *w;                                  /* set by rb_start */
    summarizer *z;                          /* while :summarize runs */
    cr_reader_cb cb;                        /* forwards to z */
} rb;

static void rb_cb_progress(void *ud, const cr_progress *p) {
    rb *b = ud;
    if (b->z) { summarize_progress(b->z, p); if (b->w) wk_status_changed(b->w); }
}
static void rb_cb_section_end(void *ud, uint32_t doc, uint32_t section) {
    rb *b = ud;
    if (b->z) summarize_section_end(b->z, doc, section);
}

static void rb_add_path(rb *b, const char *p) {
    char **n = realloc(b->paths, (size_t)(b->npaths + 1) * sizeof *n);
    if (!n) return;
    b->paths = n;
    if ((n[b->npaths] = strdup(p))) b->npaths++;
}

/* stream offset of document doc's first section (docmap coordinates) */
static uint64_t doc_base(const docmap *m, uint32_t doc) {
    if (!m || doc >= m->ndocs || m->docs[doc].nsec == 0) return 0;
    return m->secs[m->docs[doc].sec_first].offset;
}

/* An answer's citations (ask.h) as event citations: document-relative text offsets. */
static void cites_to_event(wk_event *e, const docmap *m, const ask_cite *c, int n) {
    e->cites = n ? calloc((size_t)n, sizeof *e->cites) : NULL;
    for (int i = 0; e->cites && i < n; i++) {
        wk_cite *d = &e->cites[e->n_cites++];
        d->doc = c[i].doc; d->line = c[i].line; d->weight = c[i].weight;
        uint64_t base = doc_base(m, c[i].doc);
        d->rel = c[i].offset >= base ? c[i].offset - base : 0;
        snprintf(d->label, sizeof d->label, "%s", c[i].label);
    }
}

/* The text of one document as the reader sees it (without its "# Title" header). */
static void rb_emit_text(rb *b, wk *w, int doc) {
    const char *path = b->paths[doc];
    wk_event *e = calloc(1, sizeof *e);
    if (!e) return;
    e->type = WK_EV_DOCTEXT; e->doc = doc;
    if (strcmp(path, "-") == 0 || strstr(path, "://")) {
        e->title = strdup(path);
        e->text = strdup(strcmp(path, "-") ? "(the text of a URL is not shown here)" : "(standard input is not shown here)");
        e->len = e->text ? strlen(e->text) : 0;
        wk_emit(w, e);
        return;
    }
    cr_ingest_opts io; cr_ingest_opts_default(&io);
    io.headers = 0; io.strip_gutenberg = !b->o.no_strip;
    char err[512];
    cr_ingest *in = cr_ingest_open(&path, 1, &io, err, sizeof err);
    size_t cap = 0, len = 0; char *t = NULL;
    if (in) {
        cr_chunk c; int r;
        uint64_t next_line = 0;     /* source line of text[len] if nothing was skipped */
        size_t lines_cap = 0;
        int di0_kind = 0;
        while ((r = cr_ingest_next(in, &c, err, sizeof err)) > 0 && len < WK_MAX_TEXT) {
            if (!di0_kind) { const cr_docinfo *d0 = cr_ingest_doc(in, 0); di0_kind = d0 ? d0->kind : 0; }
            if (len + c.len + 1 > cap) {
                size_t nc = cap ? cap * 2 : 65536;
                while (nc < len + c.len + 1) nc *= 2;
                char *nt = realloc(t, nc);
                if (!nt) break;
                t = nt; cap = nc;
            }
            if (c.line > 0 && c.line != next_line && di0_kind != CR_DOC_EPUB) {   /* a new (offset, line) pair */
                if (e->nlines == lines_cap) {
                    size_t nc = lines_cap ? 2 * lines_cap : 64;
                    uint64_t *nl = realloc(e->lines, nc * 2 * sizeof *nl);
                    if (nl) { e->lines = nl; lines_cap = nc; }
                }
                if (e->nlines < lines_cap) { e->lines[2 * e->nlines] = len; e->lines[2 * e->nlines + 1] = c.line; e->nlines++; }
            }
            if (c.line > 0) {
                uint64_t k = 0;
                for (const char *q = c.text; (q = memchr(q, '\n', (size_t)(c.text + c.len - q))); q++) k++;
                next_line = c.line + k;
            }
            memcpy(t + len, c.text, c.len); len += c.len;
        }
        const cr_docinfo *di = cr_ingest_doc(in, 0);
        e->title = strdup(di && di->title ? di->title : path);
        cr_ingest_close(in);
    } else e->title = strdup(path);
    if (!t) { t = strdup(""); len = 0; }
    if (t) t[len] = 0;
    e->text = t; e->len = t ? len : 0;
    wk_emit(w, e);
}

static void rb_emit_docs(rb *b, wk *w) {
    for (; b->sent < b->npaths; b->sent++) rb_emit_text(b, w, b->sent);
}

static void rb_emit_conv(rb *b, wk *w) {
    size_t n = reader_conv_count(b->r);
    for (size_t i = 0; i < n; i++) {
        const cr_conv_msg *m = reader_conv_get(b->r, i);
        if (!m) continue;
        wk_event *e = calloc(1, sizeof *e);
        if (!e) return;
        e->type = WK_EV_CONV; e->role = m->role;
        e->text = strdup(m->text ? m->text : ""); e->len = e->text ? strlen(e->text) : 0;
        e->doc_tokens = m->doc_tokens_at;
        if (m->cites) {        /* "label\toffset\tline" per line: shown as labels */
            int nl = 1;
            for (const char *p = m->cites; *p; p++) nl += *p == '\n';
            e->cites = calloc((size_t)nl, sizeof *e->cites);
            const char *p = m->cites;
            while (e->cites && *p) {
                const char *eol = strchr(p, '\n'); if (!eol) eol = p + strlen(p);
                const char *tab = memchr(p, '\t', (size_t)(eol - p)); if (!tab) tab = eol;
                if (tab > p) {
                    wk_cite *c = &e->cites[e->n_cites++];
                    snprintf(c->label, sizeof c->label, "%.*s", (int)(tab - p), p);
                    c->doc = UINT32_MAX;
                }
                p = *eol ? eol + 1 : eol;
            }
        }
        wk_emit(w, e);
    }
}

static void rb_start(void *ud, wk *w) { rb *b = ud; b->w = w; rb_emit_docs(b, w); rb_emit_conv(b, w); }

/* One call reads whole strides for about 40 ms, so that questions wait little. */
static int rb_read(void *ud, wk *w, char *err, size_t n) {
    (void)w; rb *b = ud;
    uint64_t stride = (uint64_t)(b->s.stride > 0 ? b->s.stride : 1);
    if (b->budget < stride) b->budget = stride;
    double t0 = now_sec();
    int r = reader_read(b->r, b->budget, err, n);
    double dt = now_sec() - t0;
    if (r == 1) {
        if (dt < 0.02 && b->budget < stride * 1024) b->budget *= 2;
        else if (dt > 0.08 && b->budget >= 2 * stride) b->budget /= 2;
    }
    return r;
}

typedef struct { wk *w; } tokctx;
static void on_tok(void *ud, const char *piece, size_t n) { wk_token(((tokctx *)ud)->w, piece, n); }

static int rb_ask(void *ud, wk *w, const char *q, char *err, size_t n) {
    rb *b = ud;
    wk_event *st = calloc(1, sizeof *st);
    if (st) { st->type = WK_EV_ANSWER_START; st->role = CONV_ASSISTANT; wk_emit(w, st); }
    ask_opts ao; ask_opts_default(&ao);
    tokctx tc = { w };
    ao.on_token = on_tok; ao.ud = &tc; ao.stop = wk_stop_flag(w);
    if (b->o.n_predict > 0) ao.max_tokens = b->o.n_predict;     /* -n bounds the answers */
    ask_result res; memset(&res, 0, sizeof res);
    int r = ask_run(b->r, q, &ao, &res, err, n);
    wk_event *e = calloc(1, sizeof *e);
    if (e) {
        e->type = WK_EV_ANSWER_END; e->code = r;
        if (r == 0) {
            e->partial = res.partial; e->stopped = res.stopped; e->doc_tokens = res.doc_tokens_read;
            cites_to_event(e, reader_docmap(b->r), res.cites, res.n_cites);
        }
        wk_emit(w, e);
    }
    if (r == 0) ask_result_free(&res);
    return r;
}

/* :summarize (summarize.h): reads what is left, with a note per chapter read from now on
 * (shown as notes), then the summary, streamed like an answer, with chapter references. */
typedef struct { wk *w; int started; } sumctx;
static void sum_start(sumctx *c) {
    if (c->started) return;
    c->started = 1;
    wk_event *e = calloc(1, sizeof *e);
    if (e) { e->type = WK_EV_ANSWER_START; e->role = CONV_ASSISTANT; wk_emit(c->w, e); }
}
static void sum_note_cb(void *ud, uint32_t doc, uint32_t section, const char *title, const char *text) {
    (void)doc; (void)section;
    sumctx *c = ud;
    char *m = NULL;
    if (asprintf(&m, "note: %s: %s", title ? title : "", text ? text : "") < 0) return;
    wk_emit_text(c->w, WK_EV_INFO, m);
    free(m);
}
static void sum_tok_cb(void *ud, const char *piece, size_t n) { sumctx *c = ud; sum_start(c); wk_token(c->w, piece, n); }

static int rb_summarize(void *ud, wk *w, char *err, size_t n) {
    rb *b = ud;
    sumctx c = { w, 0 };
    sum_opts so; sum_opts_default(&so);
    so.stop = wk_stop_flag(w); so.on_note = sum_note_cb; so.on_token = sum_tok_cb; so.ud = &c;
    if (b->o.n_predict > 0) so.summary_tokens = b->o.n_predict;
    summarizer *z = summarize_new(&so);
    if (!z) { snprintf(err, n, "out of memory"); return -1; }
    b->z = z;
    sum_result res; memset(&res, 0, sizeof res);
    int r = summarize_run(z, b->r, &res, err, n);
    b->z = NULL;
    if (r == 0) {
        if (!c.started) { sum_start(&c); if (res.summary) wk_token(w, res.summary, strlen(res.summary)); }
        wk_event *e = calloc(1, sizeof *e);
        if (e) {
            e->type = WK_EV_ANSWER_END; e->stopped = res.stopped;
            cites_to_event(e, reader_docmap(b->r), res.refs, res.n_refs);
            wk_emit(w, e);
        }
        sum_result_free(&res);
    } else if (c.started) {
        wk_event *e = calloc(1, sizeof *e);
        if (e) { e->type = WK_EV_ANSWER_END; e->code = -1; wk_emit(w, e); }
    }
    summarize_free(z);
    return r;
}

/* :grep QUESTION: the documents' lines ranked by the attention the question gives them
 * (grep.h), shown as an answer; the lines are its citations. */
static int rb_grep(void *ud, wk *w, const char *q, char *err, size_t n) {
    rb *b = ud;
    grep_opts go; grep_opts_default(&go);
    go.question = q; go.k = 10; go.threads = b->o.threads; go.stop = wk_stop_flag(w); go.gpu = session_wants_gpu(&b->o) ? (b->o.gpus > 1 ? b->o.gpus : 1) : 0;
    const char **paths = calloc((size_t)b->npaths + 1, sizeof *paths);
    int *pdoc = calloc((size_t)b->npaths + 1, sizeof *pdoc);   /* grep input -> document index */
    int np = 0;
    for (int i = 0; paths && pdoc && i < b->npaths; i++)
        if (strcmp(b->paths[i], "-") && !strstr(b->paths[i], "://")) { pdoc[np] = i; paths[np++] = b->paths[i]; }
    if (!np) { free(paths); free(pdoc); snprintf(err, n, ":grep needs local files"); return -1; }
    grep_ctx *g = grep_new(&b->s.model, b->s.tok, &go, err, n);
    if (!g) { free(paths); free(pdoc); return -1; }
    wk_event *st = calloc(1, sizeof *st);
    if (st) { st->type = WK_EV_ANSWER_START; st->role = CONV_ASSISTANT; wk_emit(w, st); }
    int r = grep_paths(g, paths, np, NULL, NULL, err, n);
    if (r == 0) r = grep_finish(g, err, n);
    wk_event *e = calloc(1, sizeof *e);
    if (e) {
        e->type = WK_EV_ANSWER_END; e->code = r < 0 ? -1 : 0; e->stopped = r == 1;
        int nh = 0;
        const grep_hit *h = r == 0 ? grep_hits(g, &nh) : NULL;
        /* the lines are the answer's citations: :cite N / F3 jump to them by source line */
        e->cites = nh ? calloc((size_t)nh, sizeof *e->cites) : NULL;
        for (int i = 0; i < nh; i++) {
            const char *p = paths[h[i].file], *base = strrchr(p, '/');
            base = base ? base + 1 : p;
            char line[1200];
            int k = snprintf(line, sizeof line, "%s:%llu: %s\n", base, (unsigned long long)h[i].line, h[i].text ? h[i].text : "");
            wk_token(w, line, k < (int)sizeof line ? (size_t)k : sizeof line - 1);
            if (e->cites) {
                wk_cite *d = &e->cites[e->n_cites++];
                d->doc = (uint32_t)pdoc[h[i].file]; d->line = h[i].line; d->rel = WK_REL_LINE; d->weight = h[i].score;
                snprintf(d->label, sizeof d->label, "%s:%llu", base, (unsigned long long)h[i].line);
            }
        }
        if (r == 0 && nh == 0) wk_token(w, "(no lines)", 10);
        wk_emit(w, e);
    }
    grep_free(g); free(paths); free(pdoc);
    return r < 0 ? -1 : 0;
}

static int rb_save(void *ud, wk *w, const char *path, char *err, size_t n) {
    rb *b = ud;
    if (reader_save(b->r, path, err, n)) return -1;
    struct stat sb; char msg[1200];
    if (stat(path, &sb) == 0) snprintf(msg, sizeof msg, "saved %s (%.1f MB)", path, (double)sb.st_size / 1e6);
    else snprintf(msg, sizeof msg, "saved %s", path);
    wk_emit_text(w, WK_EV_INFO, msg);
    return 0;
}

static void rb_paths_from_map(rb *b) {
    for (int i = 0; i < b->npaths; i++) free(b->paths[i]);
    b->npaths = 0; b->sent = 0;
    const docmap *m = reader_docmap(b->r);
    for (uint32_t i = 0; m && i < m->ndocs; i++) rb_add_path(b, m->docs[i].path ? m->docs[i].path : "?");
}

static int rb_load(void *ud, wk *w, const char *path, char *err, size_t n) {
    rb *b = ud;
    reader_wait_saves(b->r);        /* the load overwrites the cache an autosave may be reading */
    cr_reader *nr = reader_resume(&b->s, path, &b->cb, err, n);
    if (!nr) return -1;
    reader_free(b->r);
    b->r = nr;
    b->pos_doc = -1; b->pos_rel = 0;
    rb_paths_from_map(b);
    wk_event *e = calloc(1, sizeof *e);
    if (e) { e->type = WK_EV_RESET; wk_emit(w, e); }
    rb_start(b, w);
    char msg[1200]; snprintf(msg, sizeof msg, "loaded %s", path);
    wk_emit_text(w, WK_EV_INFO, msg);
    return 0;
}

static int rb_add(void *ud, wk *w, const char *path, char *err, size_t n) {
    rb *b = ud;
    if (reader_add(b->r, &path, 1, err, n)) return -1;
    rb_add_path(b, path);
    rb_emit_docs(b, w);
    return 0;
}

static int rb_cache(void *ud, wk *w, char *err, size_t n) {
    rb *b = ud;
    const cr_state *st = &b->s.st;
    const cascade_ctrl *c = &st->ctrl;
    wk_cache_map *m = calloc(1, sizeof *m);
    if (!m) { snprintf(err, n, "out of memory"); return -1; }
    m->C = c->cfg.C; m->S = c->cfg.S; m->W = c->W; m->seen = c->seen;
    memcpy(m->stored, c->stored, sizeof m->stored);
    m->nbins = 1024;
    if (m->seen > 0 && m->seen < m->nbins) m->nbins = (int)m->seen;
    if (m->nbins < 1) m->nbins = 1;
    int rows = m->C + 1;
    m->hold = calloc((size_t)rows * (size_t)m->nbins, sizeof *m->hold);
    int64_t *og = malloc(((size_t)c->cfg.N + (size_t)c->cfg.S + 1) * sizeof *og);
    int nh = st->m->hp.n_layer * st->m->hp.n_kv;
    if (!m->hold || !og) { free(og); wk_cache_map_free(m); snprintf(err, n, "out of memory"); return -1; }
    m->nheads = nh;
    double per_bin = m->seen > 0 ? (double)m->seen / m->nbins : 1;
    for (int h = 0; h < nh; h++) {
        if (!st->heads[h].og) continue;
        for (int row = 0; row < rows; row++) {
            int k = cascade_retained(c, &st->heads[h], og, row < m->C ? row : CASCADE_RETAINED_SINKS);
            for (int j = 0; j < k; j++) {
                if (og[j] < 0 || og[j] >= m->seen) continue;
                int bin = (int)((double)og[j] / per_bin);
                if (bin >= m->nbins) bin = m->nbins - 1;
                m->hold[(size_t)row * m->nbins + bin] += 1.0f;
            }
        }
    }
    free(og);
    for (int row = 0; row < rows; row++)
        for (int i = 0; i < m->nbins; i++) {
            int64_t lo = (int64_t)(i * per_bin), hi = (int64_t)((i + 1) * per_bin);
            if (i == m->nbins - 1) hi = m->seen;
            double cnt = (double)(hi > lo ? hi - lo : 1) * (nh > 0 ? nh : 1);
            m->hold[(size_t)row * m->nbins + i] = (float)(m->hold[(size_t)row * m->nbins + i] / cnt);
        }
    /* documents' first tokens, from the docmap's runs */
    const docmap *dm = reader_docmap(b->r);
    if (dm && dm->ndocs) {
        m->doc_first = calloc(dm->ndocs, sizeof *m->doc_first);
        m->doc_title = calloc(dm->ndocs, sizeof *m->doc_title);
        if (m->doc_first && m->doc_title) {
            m->ndocs = (int)dm->ndocs;
            for (uint32_t d = 0; d < dm->ndocs; d++) {
                m->doc_first[d] = UINT64_MAX;
                m->doc_title[d] = strdup(dm->docs[d].title ? dm->docs[d].title : dm->docs[d].path ? dm->docs[d].path : "?");
            }
            for (uint64_t bi = 0; bi < dm->nblocks; bi++) {
                const docmap_block *bl = &dm->blocks[bi];
                for (uint32_t j = 0; j < bl->n; j++) {
                    const docmap_run *ru = &dm->runs[bl->first + j];
                    uint32_t sec = ru->sec;
                    if (sec >= dm->nsecs) continue;
                    uint32_t d = dm->secs[sec].doc;
                    uint64_t tok = bl->tok_base + ru->tok;
                    if (d < dm->ndocs && tok < m->doc_first[d]) m->doc_first[d] = tok;
                }
            }
        }
    }
    wk_event *e = calloc(1, sizeof *e);
    if (!e) { wk_cache_map_free(m); snprintf(err, n, "out of memory"); return -1; }
    e->type = WK_EV_CACHE; e->cache = m;
    wk_emit(w, e);
    return 0;
}

static void rb_stop(void *ud) { rb *b = ud; if (b->r) reader_request_stop(b->r); }

static void rb_status(void *ud, wk_status *s) {
    rb *b = ud;
    const char *mp = b->o.model ? strrchr(b->o.model, '/') : NULL;
    mp = mp ? mp + 1 : b->o.model ? b->o.model : "model";
    size_t ml = strlen(mp);                 /* the file's name without .gguf */
    if (ml > 5 && strcmp(mp + ml - 5, ".gguf") == 0) ml -= 5;
    snprintf(s->model, sizeof s->model, "%.*s", (int)(ml < 90 ? ml : 90), ml ? mp : b->s.model.name);
    snprintf(s->device, sizeof s->device, "%s", state_device_name(&b->s.st));
    reader_progress(b->r, &s->prog); s->have_prog = 1;
    const docmap *m = reader_docmap(b->r);
    docmap_loc loc;
    if (m && s->prog.tokens > 0 && docmap_lookup(m, s->prog.tokens - 1, &loc) == 0 && loc.doc != DOCMAP_CONV &&
        loc.doc < m->ndocs) {
        uint64_t base = doc_base(m, loc.doc);
        b->pos_doc = (int)loc.doc; b->pos_rel = loc.offset >= base ? loc.offset - base : 0;
    }
    s->pos_doc = b->pos_doc; s->pos_rel = b->pos_rel;
    const cascade_ctrl *c = &b->s.st.ctrl;
    s->C = c->cfg.C; s->W = c->W; s->S = c->cfg.S; s->n_sinks = c->n_sinks; s->policy = c->cfg.policy;
    memcpy(s->stored, c->stored, sizeof s->stored);
    s->seen = c->seen;
    s->cache_bytes = b->s.st.cache_bytes;
}

static void rb_destroy(void *ud) {
    rb *b = ud;
    if (b->r) reader_free(b->r);
    session_close(&b->s);
    for (int i = 0; i < b->npaths; i++) free(b->paths[i]);
    free(b->paths); free(b);
}

int wk_backend_reader_new(const cr_opts *o, wk_backend *be) {
    rb *b = calloc(1, sizeof *b);
    if (!b) { fprintf(stderr, "cascade-read: out of memory\n"); return CR_EXIT_MODEL; }
    b->o = *o; b->pos_doc = -1;
    b->cb.progress = rb_cb_progress; b->cb.section_end = rb_cb_section_end; b->cb.ud = b;
    int rc = session_open(&b->s, &b->o, 1);
    if (rc) { free(b); return rc; }
    char err[1024];
    if (o->resume_path) {
        b->r = reader_resume(&b->s, o->resume_path, &b->cb, err, sizeof err);
        if (b->r) rb_paths_from_map(b);
    } else b->r = reader_new(&b->s, &b->cb, err, sizeof err);
    if (b->r && o->n_inputs) {
        if (reader_add(b->r, o->inputs, o->n_inputs, err, sizeof err)) { reader_free(b->r); b->r = NULL; }
        else for (int i = 0; i < o->n_inputs; i++) rb_add_path(b, o->inputs[i]);
    }
    if (!b->r) {
        fprintf(stderr, "cascade-read: %s\n", err);
        rb_destroy(b);
        return CR_EXIT_INPUT;
    }
    memset(be, 0, sizeof *be);
    be->ud = b;
    be->start = rb_start; be->read = rb_read; be->ask = rb_ask; be->save = rb_save; be->load = rb_load;
    be->add = rb_add; be->cache = rb_cache; be->summarize = rb_summarize; be->grep = rb_grep; be->stop = rb_stop; be->status = rb_status; be->destroy = rb_destroy;
    return 0;
}
