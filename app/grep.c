/* grep by question (see grep.h for the scoring). */
#include "grep.h"
#include "attn_probe.h"
#include "ingest.h"
#include "prompts.h"
#include "state.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GREP_MAX_TEXT 65536   /* bytes of a line kept for printing */

typedef struct wline { uint32_t file; uint64_t line; char *text; int a, b; } wline;

struct grep_ctx {
    grep_opts o;
    const cr_model *m;
    cr_tokenizer *tok;
    cr_state st;
    cr_probe pr;
    int W, n_head_tok, n_tail_tok, budget;
    int32_t *chunk;            /* [W]: head | lines | tail */
    int32_t *tail;             /* [n_tail_tok] */
    int n_lt;                  /* line tokens in the window */
    wline *win; int nwin, capwin;
    wline *ring; int nring;    /* up to context lines before the window, oldest first */
    grep_hit **heap; int nheap;
    grep_hit **pend; int npend;
    grep_hit *sorted; int nsorted; int sorted_valid;
    int32_t *ids; size_t nids, capids;
    char *tmp; size_t captmp;
    uint64_t lines, bytes, windows, tokens;
};

void grep_opts_default(grep_opts *o) {
    memset(o, 0, sizeof *o);
    o->k = 20; o->max_line_tokens = 96;
}

static char *xstrndup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

static void hit_free(grep_hit *h) {
    if (!h) return;
    free(h->text);
    for (int i = 0; i < h->n_before; i++) free(h->before[i].text);
    for (int i = 0; i < h->n_after; i++) free(h->after[i].text);
    free(h->before); free(h->after); free(h);
}

grep_ctx *grep_new(const cr_model *m, cr_tokenizer *tok, const grep_opts *o, char *err, size_t errlen) {
    grep_ctx *g = calloc(1, sizeof *g);
    if (!g) { snprintf(err, errlen, "out of memory"); return NULL; }
    g->o = *o; g->m = m; g->tok = tok;
    if (g->o.k < 1) g->o.k = 20;
    if (g->o.context < 0) g->o.context = 0;
    if (g->o.max_line_tokens < 4) g->o.max_line_tokens = 96;
    int n_ctx = m->hp.n_ctx > 0 ? m->hp.n_ctx : 512;
    g->W = g->o.window > 0 ? g->o.window : (n_ctx < 512 ? n_ctx : 512);
    if (g->W > n_ctx) g->W = n_ctx;
    /* the template: head {lines} tail, {question} in either part */
    char *filled = prompt_fill(prompt_text(PROMPT_GREP), "question", o->question ? o->question : "");
    if (!filled) { snprintf(err, errlen, "out of memory"); free(g); return NULL; }
    char *mark = strstr(filled, "{lines}");
    size_t head_len = mark ? (size_t)(mark - filled) : 0;
    const char *tail = mark ? mark + 7 : filled;
    size_t cap = 0, n = 0;
    int32_t *ids = NULL;
    if (tok_bos(tok) >= 0) { cap = 16; ids = malloc(cap * sizeof *ids); if (ids) ids[n++] = tok_bos(tok); }
    if (head_len && tok_encode(tok, filled, head_len, &ids, &n, &cap)) goto tokfail;
    g->n_head_tok = (int)n;
    size_t tcap = 0, tn = 0;
    int32_t *tids = NULL;
    if (*tail && tok_encode(tok, tail, strlen(tail), &tids, &tn, &tcap)) { free(tids); goto tokfail; }
    g->n_tail_tok = (int)tn; g->tail = tids;
    free(filled); filled = NULL;
    g->budget = g->W - g->n_head_tok - g->n_tail_tok;
    if (g->budget < 16) {
        snprintf(err, errlen, "the question (%d tokens with the prompt) leaves no room for lines in a %d-token window",
                 g->n_head_tok + g->n_tail_tok, g->W);
        free(ids); grep_free(g); return NULL;
    }
    if (g->o.max_line_tokens > g->budget) g->o.max_line_tokens = g->budget;
    g->chunk = malloc(sizeof(int32_t) * (size_t)g->W);
    if (!g->chunk) { free(ids); snprintf(err, errlen, "out of memory"); grep_free(g); return NULL; }
    memcpy(g->chunk, ids, sizeof(int32_t) * n);
    free(ids);
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.policy = CR_POLICY_FULL; cfg.S = 4; cfg.N = g->W; cfg.C = 1;
    if (state_init(&g->st, m, &cfg, g->W, g->o.threads, err, errlen)) { free(g->chunk); g->chunk = NULL; grep_free(g); return NULL; }
    if (g->o.gpu && state_use_cuda_ranks(&g->st, g->o.gpu, err, errlen)) { grep_free(g); return NULL; }
    if (probe_init(&g->pr, &g->st, err, errlen)) { grep_free(g); return NULL; }
    probe_attach(&g->st, &g->pr);
    g->capwin = g->budget;
    g->win = calloc((size_t)g->capwin, sizeof *g->win);
    g->ring = calloc((size_t)g->o.context + 1, sizeof *g->ring);
    g->heap = calloc((size_t)g->o.k < 4096 ? (size_t)g->o.k : 4096, sizeof *g->heap);
    g->pend = calloc((size_t)(g->capwin > g->o.context ? g->capwin : g->o.context) + 1, sizeof *g->pend);
    if (!g->win || !g->ring || !g->heap || !g->pend) { snprintf(err, errlen, "out of memory"); grep_free(g); return NULL; }
    return g;
tokfail:
    snprintf(err, errlen, "cannot tokenize the question: %s", tok_last_error(tok));
    free(ids); free(filled); free(g->tail); free(g);
    return NULL;
}

void grep_free(grep_ctx *g) {
    if (!g) return;
    if (g->st.m) { probe_detach(&g->st); state_free(&g->st); }
    if (g->pr.w) probe_free(&g->pr);
    for (int i = 0; i < g->nwin; i++) free(g->win[i].text);
    for (int i = 0; i < g->nring; i++) free(g->ring[i].text);
    for (int i = 0; i < g->nheap; i++) hit_free(g->heap[i]);
    free(g->sorted);   /* shallow copies: the texts are owned by the heap's hits */
    free(g->win); free(g->ring); free(g->heap); free(g->pend); free(g->chunk); free(g->tail);
    free(g->ids); free(g->tmp);
    free(g);
}

/* a worse than b: lower score, or equal score and later position */
static int worse(const grep_hit *a, const grep_hit *b) {
    if (a->score != b->score) return a->score < b->score;
    if (a->file != b->file) return a->file > b->file;
    return a->line > b->line;
}

static void heap_down(grep_hit **h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(h[l], h[m])) m = l;
        if (r < n && worse(h[r], h[m])) m = r;
        if (m == i) return;
        grep_hit *t = h[i]; h[i] = h[m]; h[m] = t; i = m;
    }
}
static void heap_up(grep_hit **h, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!worse(h[i], h[p])) return;
        grep_hit *t = h[i]; h[i] = h[p]; h[p] = t; i = p;
    }
}

static void pend_remove(grep_ctx *g, grep_hit *h) {
    for (int i = 0; i < g->npend; i++)
        if (g->pend[i] == h) { g->pend[i] = g->pend[--g->npend]; return; }
}

/* Offer a candidate; returns the hit when kept (owned by the heap), NULL otherwise. */
static grep_hit *heap_offer(grep_ctx *g, uint32_t file, uint64_t line, float score, int *oom) {
    grep_hit probe_hit = {.file = file, .line = line, .score = score};
    int cap = g->o.k;
    if (g->nheap >= cap && !worse(g->heap[0], &probe_hit)) return NULL;
    grep_hit *h = calloc(1, sizeof *h);
    if (!h) { *oom = 1; return NULL; }
    *h = probe_hit;
    if (g->nheap >= cap) {
        pend_remove(g, g->heap[0]);
        hit_free(g->heap[0]);
        g->heap[0] = h;
        heap_down(g->heap, g->nheap, 0);
    } else {
        if (g->nheap % 4096 == 0 && g->nheap) {
            grep_hit **nh = realloc(g->heap, sizeof *nh * (size_t)(g->nheap + 4096));
            if (!nh) { free(h); *oom = 1; return NULL; }
            g->heap = nh;
        }
        g->heap[g->nheap++] = h;
        heap_up(g->heap, g->nheap - 1);
    }
    g->sorted_valid = 0;
    return h;
}

static int add_ctx(grep_ctx_line **arr, int *n, int cap, uint64_t line, const char *text) {
    if (!*arr) { *arr = calloc((size_t)cap, sizeof **arr); if (!*arr) return -1; }
    (*arr)[*n].line = line;
    (*arr)[*n].text = strdup(text);
    if (!(*arr)[*n].text) return -1;
    (*n)++;
    return 0;
}

static int score_window(grep_ctx *g, char *err, size_t errlen) {
    if (g->nwin == 0) return 0;
    int n = g->n_head_tok + g->n_lt;
    memcpy(g->chunk + n, g->tail, sizeof(int32_t) * (size_t)g->n_tail_tok);
    n += g->n_tail_tok;
    state_reset(&g->st);
    probe_clear(&g->pr);
    g->pr.q_from = g->n_head_tok + g->n_lt;
    if (forward(&g->st, g->chunk, n, CR_OUT_NONE, NULL, NULL, err, errlen)) return -1;
    g->windows++; g->tokens += (uint64_t)n;
    /* a line's score: its share of the attention that the question gives to the lines of
     * the window, times the number of lines (1 = an average line of its window) */
    int C = g->o.context, oom = 0;
    double all = 0;
    for (int t = 0; t < g->n_lt; t++) all += probe_weight(&g->pr, g->n_head_tok + t);
    if (!(all > 0)) all = 1;
    for (int i = 0; i < g->nwin; i++) {
        wline *w = &g->win[i];
        double s = 0;
        for (int t = w->a; t < w->b; t++) s += probe_weight(&g->pr, g->n_head_tok + t);
        grep_hit *h = heap_offer(g, w->file, w->line, (float)(s / all * g->nwin), &oom);
        if (oom) break;
        if (!h) continue;
        if (!(h->text = strdup(w->text))) { oom = 1; break; }
        if (C) {
            /* before: window lines, then the ring (same file only), oldest first */
            int nb = 0;
            for (int j = i - 1; j >= 0 && nb < C && g->win[j].file == w->file; j--) nb++;
            int from_ring = 0;
            if (nb < C && (i - nb == 0))
                for (int j = g->nring - 1; j >= 0 && nb + from_ring < C && g->ring[j].file == w->file; j--) from_ring++;
            for (int j = g->nring - from_ring; j < g->nring; j++)
                if (add_ctx(&h->before, &h->n_before, C, g->ring[j].line, g->ring[j].text)) oom = 1;
            for (int j = i - nb; j < i; j++)
                if (add_ctx(&h->before, &h->n_before, C, g->win[j].line, g->win[j].text)) oom = 1;
            int na = 0, j = i + 1;
            for (; j < g->nwin && na < C && g->win[j].file == w->file; j++, na++)
                if (add_ctx(&h->after, &h->n_after, C, g->win[j].line, g->win[j].text)) oom = 1;
            if (na < C && j == g->nwin) { h->want_after = C - na; g->pend[g->npend++] = h; }
        }
        if (oom) break;
    }
    if (oom) { snprintf(err, errlen, "out of memory"); return -1; }
    /* the last lines become the ring; the window empties */
    if (C) {
        int keep = g->nwin < C ? g->nwin : C;
        int drop = g->nring + keep - C;
        if (drop > 0) {
            for (int j = 0; j < drop; j++) free(g->ring[j].text);
            memmove(g->ring, g->ring + drop, sizeof *g->ring * (size_t)(g->nring - drop));
            g->nring -= drop;
        }
        for (int j = g->nwin - keep; j < g->nwin; j++) {
            g->ring[g->nring].file = g->win[j].file; g->ring[g->nring].line = g->win[j].line;
            g->ring[g->nring].text = g->win[j].text; g->win[j].text = NULL; g->nring++;
        }
    }
    for (int i = 0; i < g->nwin; i++) free(g->win[i].text);
    g->nwin = 0; g->n_lt = 0;
    return 0;
}

int grep_line(grep_ctx *g, uint32_t file, uint64_t line, const char *text, size_t len, char *err, size_t errlen) {
    if (g->o.stop && *g->o.stop) return 1;
    g->lines++; g->bytes += len;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    size_t keep = len < GREP_MAX_TEXT ? len : GREP_MAX_TEXT;
    while (keep < len && keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) keep--;   /* UTF-8 boundary */
    /* tokens: the line (scored part) and its newline */
    if (g->captmp < keep + 2) {
        char *nt = realloc(g->tmp, keep + 2);
        if (!nt) { snprintf(err, errlen, "out of memory"); return -1; }
        g->tmp = nt; g->captmp = keep + 2;
    }
    size_t enc = keep;
    /* only the beginning can be scored: encode a bounded prefix */
    size_t max_bytes = (size_t)g->o.max_line_tokens * 16;
    if (enc > max_bytes) { enc = max_bytes; while (enc > 0 && ((unsigned char)text[enc] & 0xC0) == 0x80) enc--; }
    memcpy(g->tmp, text, enc); g->tmp[enc] = '\n';
    g->nids = 0;
    if (tok_encode(g->tok, g->tmp, enc + 1, &g->ids, &g->nids, &g->capids)) {
        snprintf(err, errlen, "cannot tokenize line %llu: %s", (unsigned long long)line, tok_last_error(g->tok));
        return -1;
    }
    int nt = (int)g->nids;
    if (nt > g->o.max_line_tokens) { g->ids[g->o.max_line_tokens - 1] = g->ids[nt - 1]; nt = g->o.max_line_tokens; }
    if (nt == 0) return 0;
    if (g->n_lt + nt > g->budget || g->nwin == g->capwin)
        if (score_window(g, err, errlen)) return -1;
    /* lines after earlier hits (those of the window just scored included) */
    for (int i = 0; i < g->npend; ) {
        grep_hit *h = g->pend[i];
        if (h->file != file) { h->want_after = 0; g->pend[i] = g->pend[--g->npend]; continue; }
        char *t = xstrndup(text, keep);
        if (!t) { snprintf(err, errlen, "out of memory"); return -1; }
        if (add_ctx(&h->after, &h->n_after, g->o.context, line, t)) { free(t); snprintf(err, errlen, "out of memory"); return -1; }
        free(t);
        if (--h->want_after == 0) { g->pend[i] = g->pend[--g->npend]; continue; }
        i++;
    }
    wline *w = &g->win[g->nwin];
    w->file = file; w->line = line; w->text = xstrndup(text, keep);
    if (!w->text) { snprintf(err, errlen, "out of memory"); return -1; }
    w->a = g->n_lt; w->b = g->n_lt + nt;
    memcpy(g->chunk + g->n_head_tok + g->n_lt, g->ids, sizeof(int32_t) * (size_t)nt);
    g->n_lt += nt; g->nwin++;
    return 0;
}

int grep_finish(grep_ctx *g, char *err, size_t errlen) {
    if (score_window(g, err, errlen)) return -1;
    for (int i = 0; i < g->npend; i++) g->pend[i]->want_after = 0;
    g->npend = 0;
    return 0;
}

static int better_cmp(const void *a, const void *b) {
    const grep_hit *x = a, *y = b;
    if (worse(x, y)) return 1;
    if (worse(y, x)) return -1;
    return 0;
}

const grep_hit *grep_hits(grep_ctx *g, int *n) {
    if (!g->sorted_valid) {
        free(g->sorted);
        g->sorted = malloc(sizeof *g->sorted * (size_t)(g->nheap ? g->nheap : 1));
        if (!g->sorted) { *n = 0; return NULL; }
        for (int i = 0; i < g->nheap; i++) g->sorted[i] = *g->heap[i];   /* shallow: texts stay owned by the heap */
        qsort(g->sorted, (size_t)g->nheap, sizeof *g->sorted, better_cmp);
        g->nsorted = g->nheap; g->sorted_valid = 1;
    }
    *n = g->nsorted;
    return g->sorted;
}

void grep_stats(const grep_ctx *g, uint64_t *lines, uint64_t *bytes, uint64_t *windows, uint64_t *tokens) {
    if (lines) *lines = g->lines;
    if (bytes) *bytes = g->bytes;
    if (windows) *windows = g->windows;
    if (tokens) *tokens = g->tokens;
}

int grep_paths(grep_ctx *g, const char *const *paths, int n,
               void (*progress)(void *ud, uint64_t lines, uint64_t bytes), void *ud,
               char *err, size_t errlen) {
    cr_ingest_opts io; cr_ingest_opts_default(&io);
    io.mode = CR_INGEST_LOG; io.headers = 0; io.strip_gutenberg = 0;
    cr_ingest *in = cr_ingest_open(paths, n, &io, err, errlen);
    if (!in) return -1;
    char *buf = NULL; size_t blen = 0, bcap = 0;
    uint64_t bline = 0; uint32_t bdoc = 0;
    int pending = 0, rc = 0, k;
    cr_chunk c;
    while ((k = cr_ingest_next(in, &c, err, errlen)) > 0) {
        if (c.flags & CR_CHUNK_HEADER) continue;
        if (pending && (c.doc != bdoc || c.line != bline)) {   /* a split line ended early */
            rc = grep_line(g, bdoc, bline, buf, blen, err, errlen); pending = 0; blen = 0;
            if (rc) break;
        }
        if ((c.flags & CR_CHUNK_SPLIT) || pending) {
            size_t add = c.len;
            if (blen + add > GREP_MAX_TEXT + 8) add = blen < GREP_MAX_TEXT + 8 ? GREP_MAX_TEXT + 8 - blen : 0;
            if (blen + add + 1 > bcap) {
                size_t nc = (blen + add + 1) * 2;
                char *nb = realloc(buf, nc);
                if (!nb) { snprintf(err, errlen, "out of memory"); rc = -1; break; }
                buf = nb; bcap = nc;
            }
            memcpy(buf + blen, c.text, add); blen += add;
            bline = c.line; bdoc = c.doc; pending = 1;
            if (c.flags & CR_CHUNK_SPLIT) continue;
            rc = grep_line(g, bdoc, bline, buf, blen, err, errlen); pending = 0; blen = 0;
        } else {
            rc = grep_line(g, c.doc, c.line, c.text, c.len, err, errlen);
        }
        if (rc) break;
        if (progress && g->lines % 1024 == 0) progress(ud, g->lines, g->bytes);
    }
    if (k < 0) rc = -1;
    if (!rc && pending) rc = grep_line(g, bdoc, bline, buf, blen, err, errlen);
    if (!rc) rc = grep_finish(g, err, errlen);
    if (rc < 0 && k >= 0) {   /* grep_line's errors: name the file */
        char e2[512];
        const cr_docinfo *d = cr_ingest_doc(in, (int)(pending ? bdoc : c.doc));
        snprintf(e2, sizeof e2, "%s: %s", d && d->path ? d->path : "-", err);
        snprintf(err, errlen, "%s", e2);
    }
    if (progress) progress(ud, g->lines, g->bytes);
    free(buf);
    cr_ingest_close(in);
    return rc;
}
