/* --ask QUESTION DOCUMENT...: read the documents, answer with citations (ask.h). The answer
 * streams to stdout, then "Sources:" and one numbered citation per line; --json prints one
 * object instead. Ctrl-C while reading asks about what has been read so far (the answer says
 * it is partial); Ctrl-C while answering stops the answer (exit 130). */
#include "run.h"
#include "run_intr.h"
#include "ask.h"
#include "cite.h"
#include "reader.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { int tty, shown; } ui_ctx;
static void on_progress(void *ud, const cr_progress *p) {
    ui_ctx *u = ud;
    if (!u->tty) return;
    double pct = p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 0;
    fprintf(stderr, "\r\033[Kreading %d/%d: %llu tokens, %.1f%%, %.0f tok/s", p->doc + 1, p->ndocs,
            (unsigned long long)p->doc_tokens, pct, p->tok_per_s);
    u->shown = 1;
}
static void on_warn(void *ud, const char *msg) {
    ui_ctx *u = ud;
    if (u->shown) { fputc('\n', stderr); u->shown = 0; }
    fprintf(stderr, "cascade-read: warning: %s\n", msg);
}
static void on_token(void *ud, const char *piece, size_t n) {
    (void)ud;
    fwrite(piece, 1, n, stdout);
    fflush(stdout);
}

void print_cites_json(const ask_cite *c, int n);
void print_cites_json(const ask_cite *c, int n) {
    printf("[");
    for (int i = 0; i < n; i++) {
        printf("%s{\"label\":", i ? "," : "");
        json_str(stdout, c[i].label);
        printf(",\"doc\":%u,\"section\":%u,\"offset\":%llu,\"line\":%llu,\"token\":%llu,\"weight\":%.6g}",
               c[i].doc, c[i].section, (unsigned long long)c[i].offset, (unsigned long long)c[i].line,
               (unsigned long long)c[i].tok, c[i].weight);
    }
    printf("]");
}

int run_ask(const cr_opts *o) {
    cr_session s;
    int rc = session_open(&s, o, 1);
    if (rc) return rc;
    ui_ctx u = {!o->quiet && isatty(2), 0};
    cr_reader_cb cb = {0};
    cb.progress = on_progress; cb.warn = on_warn; cb.ud = &u;
    char err[1024];
    cr_reader *r = reader_from_opts(&s, o, &cb, err, sizeof err);
    if (!r) { fprintf(stderr, "cascade-read: %s\n", err); session_close(&s); return CR_EXIT_INPUT; }
    run_intr_begin(r, 0);
    /* --max-tokens N: ask after N document tokens (the answer then says it is partial) */
    int k = reader_read(r, o->max_tokens > 0 ? (uint64_t)o->max_tokens : 0, err, sizeof err);
    run_intr_reader(NULL);
    if (u.shown) { fputc('\n', stderr); u.shown = 0; }
    if (k < 0) {
        run_intr_end();
        fprintf(stderr, "cascade-read: %s\n", err); reader_free(r); session_close(&s); return CR_EXIT_INPUT;
    }
    run_stop = 0;    /* a Ctrl-C while reading only ends the reading */
    ask_opts ao; ask_opts_default(&ao);
    ao.max_tokens = o->n_predict > 0 ? o->n_predict : 256;
    ao.stop = &run_stop;
    if (!o->json) { ao.on_token = on_token; }
    ask_result res;
    int a = ask_run(r, o->question, &ao, &res, err, sizeof err);
    run_intr_end();
    if (a) {
        if (!o->json) putchar('\n');
        fprintf(stderr, "cascade-read: %s\n", err); reader_free(r); session_close(&s); return CR_EXIT_MODEL;
    }
    if (o->json) {
        printf("{\"question\":"); json_str(stdout, o->question);
        printf(",\"answer\":"); json_str(stdout, res.answer);
        printf(",\"partial\":%s,\"doc_tokens\":%llu,\"stopped\":%s,\"citations\":",
               res.partial ? "true" : "false", (unsigned long long)res.doc_tokens_read, res.stopped ? "true" : "false");
        print_cites_json(res.cites, res.n_cites);
        printf("}\n");
    } else {
        printf("\n");
        if (res.partial)
            printf("\n(partial: asked after %llu tokens, before the documents were read to the end)\n",
                   (unsigned long long)res.doc_tokens_read);
        if (res.n_cites) {
            printf("\nSources:\n");
            for (int i = 0; i < res.n_cites; i++) printf("  [%d] %s\n", i + 1, res.cites[i].label);
        }
    }
    fflush(stdout);
    rc = (res.stopped || run_interrupted) ? CR_EXIT_INTR : CR_EXIT_OK;
    /* --save: the session with the question and its answer (resume it to ask more) */
    if (o->save_path && reader_save(r, o->save_path, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err);
        if (rc == CR_EXIT_OK) rc = CR_EXIT_INPUT;
    }
    ask_result_free(&res);
    reader_free(r);
    session_close(&s);
    return rc;
}
