/* summarize: notes per chapter while reading, then a summary (see summarize.h). */
#include "summarize.h"
#include "prompts.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint32_t doc, sec; } sec_ev;

struct summarizer {
    sum_opts o;
    sec_ev *q; size_t nq, capq;
    int oom;
};

void sum_opts_default(sum_opts *o) {
    memset(o, 0, sizeof *o);
    o->note_tokens = 96; o->summary_tokens = 256; o->n_refs = 5; o->span = 4096;
}

summarizer *summarize_new(const sum_opts *o) {
    summarizer *z = calloc(1, sizeof *z);
    if (z) z->o = *o;
    if (z && !z->o.span) z->o.span = 4096;
    return z;
}

void summarize_free(summarizer *z) {
    if (!z) return;
    free(z->q); free(z);
}

void summarize_section_end(void *ud, uint32_t doc, uint32_t section) {
    summarizer *z = ud;
    if (z->nq == z->capq) {
        size_t nc = z->capq ? z->capq * 2 : 16;
        sec_ev *q = realloc(z->q, nc * sizeof *q);
        if (!q) { z->oom = 1; return; }
        z->q = q; z->capq = nc;
    }
    z->q[z->nq++] = (sec_ev){doc, section};
}

void summarize_progress(void *ud, const cr_progress *p) {
    summarizer *z = ud;
    if (z->o.progress) z->o.progress(z->o.ud, p);
}

void sum_result_free(sum_result *res) {
    if (!res) return;
    for (int i = 0; i < res->n_notes; i++) { free(res->notes[i].title); free(res->notes[i].text); }
    free(res->notes); free(res->summary); free(res->refs);
    memset(res, 0, sizeof *res);
}

/* one note over the document tokens [first, end) of doc/section, titled title */
static int note(summarizer *z, cr_reader *r, sum_result *res, uint32_t doc, uint32_t sec, const char *title,
                uint64_t first, uint64_t end, char *err, size_t errlen) {
    char *prompt = prompt_fill(prompt_text(PROMPT_NOTE), "title", title);
    if (!prompt) { snprintf(err, errlen, "out of memory"); return -1; }
    ask_opts ao; ask_opts_default(&ao);
    ao.max_tokens = z->o.note_tokens; ao.n_cites = 0; ao.chat_template = z->o.chat_template;
    ao.stop = z->o.stop;
    ask_result ar;
    int rc = ask_turn(r, prompt, 0, CONV_NOTE, &ao, &ar, err, errlen);
    free(prompt);
    if (rc) return -1;
    sum_note *nn = realloc(res->notes, sizeof *nn * (size_t)(res->n_notes + 1));
    if (!nn) { ask_result_free(&ar); snprintf(err, errlen, "out of memory"); return -1; }
    res->notes = nn;
    sum_note *n = &res->notes[res->n_notes++];
    n->doc = doc; n->section = sec; n->tok_first = first; n->tok_end = end;
    n->title = strdup(title); n->text = ar.answer; ar.answer = NULL;
    ask_result_free(&ar);
    if (!n->title) { snprintf(err, errlen, "out of memory"); return -1; }
    if (z->o.on_note) z->o.on_note(z->o.ud, doc, sec, n->title, n->text);
    return 0;
}

typedef struct { uint32_t doc; uint64_t first, last_line, first_line; int active; } span_st;

static const char *base(const char *p) { const char *s = p ? strrchr(p, '/') : NULL; return s ? s + 1 : (p ? p : ""); }

int summarize_run(summarizer *z, cr_reader *r, sum_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    const docmap *map = reader_docmap(r);
    int stride = reader_session(r)->stride;
    uint64_t last_note_end = 0;     /* document tokens covered by notes so far (session index) */
    for (;;) {
        if (z->o.stop && *z->o.stop) { res->stopped = 1; break; }
        int k = reader_read(r, (uint64_t)stride, err, errlen);
        if (k < 0) return -1;
        if (k == 2) { res->stopped = 1; break; }
        if (z->oom) { snprintf(err, errlen, "out of memory"); return -1; }
        /* chapters that ended */
        while (z->nq) {
            sec_ev e = z->q[0];
            memmove(z->q, z->q + 1, (z->nq - 1) * sizeof *z->q);
            z->nq--;
            if (e.doc >= map->ndocs) continue;
            const docmap_doc *d = &map->docs[e.doc];
            char title[512];
            uint64_t end = reader_tokens(r);
            if (d->nsec > 1) {
                const char *st = docmap_section_title(map, e.doc, e.sec), *dt = d->title ? d->title : base(d->path);
                if (!st || !*st || strcmp(st, dt) == 0) snprintf(title, sizeof title, "%s", dt);
                else snprintf(title, sizeof title, "%s, %s", dt, st);
            } else {
                /* unsectioned: the rest since the last span note */
                snprintf(title, sizeof title, "%s, to the end", d->title ? d->title : base(d->path));
            }
            if (note(z, r, res, e.doc, e.sec, title, last_note_end, end, err, errlen)) return -1;
            last_note_end = reader_tokens(r);
            if (z->o.stop && *z->o.stop) { res->stopped = 1; break; }
        }
        if (res->stopped) break;
        /* unsectioned text: a note every span tokens */
        cr_progress p; reader_progress(r, &p);
        if (!p.done && map->ndocs > 0) {
            uint32_t di = map->ndocs - 1;
            const docmap_doc *d = &map->docs[di];
            uint64_t now = reader_tokens(r);
            if (d->nsec <= 1 && now - last_note_end >= z->o.span) {
                docmap_loc a, b;
                char title[512];
                uint64_t l1 = 1, l2 = 0;
                if (docmap_lookup(map, last_note_end, &a) == 0 && a.doc == di && a.line) l1 = a.line;
                if (docmap_lookup(map, now - 1, &b) == 0 && b.doc == di) l2 = b.line;
                snprintf(title, sizeof title, "%s, lines %llu-%llu", d->title ? d->title : base(d->path),
                         (unsigned long long)l1, (unsigned long long)(l2 > l1 ? l2 : l1));
                if (note(z, r, res, di, 0, title, last_note_end, now, err, errlen)) return -1;
                last_note_end = reader_tokens(r);
            }
        }
        if (k == 0) break;
    }
    /* reduce */
    ask_opts ao; ask_opts_default(&ao);
    ao.max_tokens = z->o.summary_tokens; ao.n_cites = z->o.n_refs; ao.chat_template = z->o.chat_template;
    ao.on_token = z->o.on_token; ao.ud = z->o.ud; ao.stop = z->o.stop;
    ask_result ar;
    if (ask_turn(r, prompt_text(PROMPT_SUMMARY), 1, CONV_ASSISTANT, &ao, &ar, err, errlen)) return -1;
    res->summary = ar.answer; ar.answer = NULL;
    res->refs = ar.cites; res->n_refs = ar.n_cites; ar.cites = NULL;
    if (ar.stopped) res->stopped = 1;
    ask_result_free(&ar);
    return 0;
}
