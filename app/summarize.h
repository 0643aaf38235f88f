/* summarize: map-reduce over a whole book in one reading pass.
 *   map:    whenever a section (chapter) has been read (the reader's section_end callback) or,
 *           in a document without sections, every opts.span document tokens, a short note
 *           (assets/note.txt) is generated through the cache and stays in the conversation;
 *   reduce: after the last document, a summary (assets/summary.txt) over the notes (which
 *           the cache holds as conversation) and the cache, with chapter references from the
 *           attention of its tokens (cite.h).
 * Usage: z = summarize_new(&o); cb.section_end = summarize_section_end; cb.ud = z (and
 * cb.progress = summarize_progress to forward progress to o.progress); r = reader_new(..., &cb);
 * reader_add(...); summarize_run(z, r, &res, ...). */
#ifndef CR_SUMMARIZE_H
#define CR_SUMMARIZE_H
#include <stddef.h>
#include <stdint.h>
#include "ask.h"
#include "reader.h"

typedef struct sum_opts {
    int note_tokens;            /* note length bound (default 96) */
    int summary_tokens;         /* summary length bound (default 256) */
    int n_refs;                 /* chapter references of the summary (default 5) */
    uint64_t span;              /* unsectioned text: a note every span document tokens (0: 4096) */
    const char *chat_template;  /* NULL: the session's */
    volatile int *stop;         /* nonzero: stop after the current note (Ctrl-C); may be NULL */
    /* a note is ready / the summary streams / reading progress (each may be NULL) */
    void (*on_note)(void *ud, uint32_t doc, uint32_t section, const char *title, const char *text);
    void (*on_token)(void *ud, const char *piece, size_t n);
    void (*progress)(void *ud, const cr_progress *p);
    void *ud;
} sum_opts;

typedef struct sum_note {
    uint32_t doc, section;      /* section: the chapter, or the span's section (unsectioned) */
    uint64_t tok_first, tok_end;/* the document tokens it covers */
    char *title;                /* "Title, CHAPTER I" or "name, lines A-B" */
    char *text;
} sum_note;

typedef struct sum_result {
    sum_note *notes; int n_notes;
    char *summary;
    ask_cite *refs; int n_refs;
    int stopped;
} sum_result;

typedef struct summarizer summarizer;

void sum_opts_default(sum_opts *o);
summarizer *summarize_new(const sum_opts *o);
void summarize_free(summarizer *z);
/* cr_reader_cb callbacks (ud = the summarizer). */
void summarize_section_end(void *ud, uint32_t doc, uint32_t section);
void summarize_progress(void *ud, const cr_progress *p);
/* Reads everything queued in r, writing notes as it goes, then the summary.
 * 0 (res filled; stopped set when opts.stop ended it early), -1 + err. */
int  summarize_run(summarizer *z, cr_reader *r, sum_result *res, char *err, size_t errlen);
void sum_result_free(sum_result *res);
#endif
