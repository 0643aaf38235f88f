/* --summarize DOCUMENT...: notes per chapter while reading, then a summary (summarize.h).
 * stdout: "## TITLE" and the note for each chapter as it ends, then "## Summary", the summary
 * and "References:" (the chapters its tokens attended to most); --json: one object at the end.
 * Progress on stderr. Ctrl-C stops reading and writes the summary of what was read (130). */
#include "run.h"
#include "run_intr.h"
#include "cite.h"
#include "summarize.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { const cr_opts *o; int tty, shown, n_notes, heading; } ui_ctx;

static void on_progress(void *ud, const cr_progress *p) {
    ui_ctx *u = ud;
    if (!u->tty) return;
    double pct = p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 0;
    fprintf(stderr, "\r\033[Kreading %d/%d: %llu tokens, %.1f%%, %.0f tok/s, %d notes", p->doc + 1, p->ndocs,
            (unsigned long long)p->doc_tokens, pct, p->tok_per_s, u->n_notes);
    u->shown = 1;
}
static void on_note(void *ud, uint32_t doc, uint32_t section, const char *title, const char *text) {
    (void)doc; (void)section;
    ui_ctx *u = ud;
    u->n_notes++;
    if (u->o->json) return;
    if (u->shown) { fprintf(stderr, "\r\033[K"); }
    printf("## %s\n%s\n\n", title, text);
    fflush(stdout);
}
static void on_token(void *ud, const char *piece, size_t n) {
    ui_ctx *u = ud;
    if (u->o->json) return;
    if (!u->heading) { if (u->shown) fprintf(stderr, "\r\033[K"); printf("## Summary\n"); u->heading = 1; }
    fwrite(piece, 1, n, stdout);
    fflush(stdout);
}

int run_summarize(const cr_opts *o) {
    cr_session s;
    int rc = session_open(&s, o, 1);
    if (rc) return rc;
    ui_ctx u = {o, !o->quiet && isatty(2), 0, 0, 0};
    sum_opts so; sum_opts_default(&so);
    if (o->n_predict > 0) so.summary_tokens = o->n_predict;
    so.stop = &run_stop; so.on_note = on_note; so.on_token = on_token; so.progress = on_progress; so.ud = &u;
    summarizer *z = summarize_new(&so);
    char err[1024];
    if (!z) { fprintf(stderr, "cascade-read: out of memory\n"); session_close(&s); return CR_EXIT_MODEL; }
    cr_reader_cb cb = {0};
    cb.progress = summarize_progress; cb.section_end = summarize_section_end; cb.ud = z;
    cr_reader *r = reader_from_opts(&s, o, &cb, err, sizeof err);
    if (!r) { fprintf(stderr, "cascade-read: %s\n", err); summarize_free(z); session_close(&s); return CR_EXIT_INPUT; }
    run_intr_begin(r, 0);
    sum_result res;
    int k = summarize_run(z, r, &res, err, sizeof err);
    run_intr_end();
    if (u.shown) fprintf(stderr, "\r\033[K");
    if (k) {
        fprintf(stderr, "cascade-read: %s\n", err);
        reader_free(r); summarize_free(z); session_close(&s);
        return CR_EXIT_INPUT;
    }
    if (o->json) {
        printf("{\"notes\":[");
        for (int i = 0; i < res.n_notes; i++) {
            printf("%s\n{\"doc\":%u,\"section\":%u,\"title\":", i ? "," : "", res.notes[i].doc, res.notes[i].section);
            json_str(stdout, res.notes[i].title);
            printf(",\"text\":"); json_str(stdout, res.notes[i].text);
            printf("}");
        }
        printf("],\n\"summary\":"); json_str(stdout, res.summary);
        printf(",\"stopped\":%s,\"references\":[", res.stopped ? "true" : "false");
        for (int i = 0; i < res.n_refs; i++) {
            printf("%s{\"label\":", i ? "," : "");
            json_str(stdout, res.refs[i].label);
            printf(",\"doc\":%u,\"section\":%u,\"line\":%llu,\"weight\":%.6g}", res.refs[i].doc, res.refs[i].section,
                   (unsigned long long)res.refs[i].line, res.refs[i].weight);
        }
        printf("]}\n");
    } else {
        if (!u.heading) printf("## Summary\n");   /* an empty summary */
        printf("\n");
        if (res.n_refs) {
            printf("\nReferences:\n");
            for (int i = 0; i < res.n_refs; i++) printf("  [%d] %s\n", i + 1, res.refs[i].label);
        }
    }
    fflush(stdout);
    rc = res.stopped ? CR_EXIT_INTR : CR_EXIT_OK;
    /* --save: the session with its notes and summary in the conversation */
    if (o->save_path && reader_save(r, o->save_path, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err);
        if (rc == CR_EXIT_OK) rc = CR_EXIT_INPUT;
    }
    sum_result_free(&res);
    reader_free(r); summarize_free(z); session_close(&s);
    return rc;
}
