/* --grep QUESTION FILE...: lines ranked by the attention the question gives them (grep.h).
 * Output like grep: "FILE:" when several inputs, "LINE:" with -n, ':' after a hit and '-'
 * after a context line, "--" between groups when -C is given; best line first. */
#include "run.h"
#include "run_intr.h"
#include "cite.h"
#include "grep.h"
#include "ingest.h"
#include "session.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


typedef struct { const cr_opts *o; double t0; } prog_ud;
static void progress(void *ud, uint64_t lines, uint64_t bytes) {
    prog_ud *p = ud;
    double dt = now_sec() - p->t0;
    fprintf(stderr, "\r%llu lines, %.1f MB, %.3f MB/s", (unsigned long long)lines, bytes / 1e6, dt > 0 ? bytes / 1e6 / dt : 0);
}

static const char *disp_name(const char *path) { return strcmp(path, "-") == 0 ? "(standard input)" : path; }

static void print_line(const cr_opts *o, const char *file, uint64_t line, char sep, const char *text) {
    if (o->n_inputs > 1) printf("%s%c", file, sep);
    if (o->grep_line_numbers) printf("%llu%c", (unsigned long long)line, sep);
    printf("%s\n", text);
}

static void print_json_ctx(const grep_ctx_line *c, int n) {
    printf("[");
    for (int i = 0; i < n; i++) {
        printf("%s{\"line\":%llu,\"text\":", i ? "," : "", (unsigned long long)c[i].line);
        json_str(stdout, c[i].text);
        printf("}");
    }
    printf("]");
}

int run_grep(const cr_opts *o) {
    cr_session s;
    /* the model and tokenizer only: grep runs on its own scratch state (grep.h) */
    int r = session_open(&s, o, 0);
    if (r) return r;
    cr_model m;
    char err[1024];
    if (model_load(&m, o->model, err, sizeof err)) { fprintf(stderr, "cascade-read: %s\n", err); session_close(&s); return CR_EXIT_INPUT; }
    grep_opts go; grep_opts_default(&go);
    go.question = o->question; go.k = o->grep_k; go.context = o->grep_context;
    go.threads = o->threads; go.stop = &run_stop; go.gpu = session_wants_gpu(o) ? (o->gpus > 1 ? o->gpus : 1) : 0;
    if (o->stride > 0) go.window = o->stride;
    grep_ctx *g = grep_new(&m, s.tok, &go, err, sizeof err);
    if (!g) { fprintf(stderr, "cascade-read: %s\n", err); model_free(&m); session_close(&s); return CR_EXIT_INPUT; }
    run_intr_begin(NULL, 0);
    prog_ud pu = {o, now_sec()};
    int show = !o->quiet && isatty(2);
    int rc = grep_paths(g, o->inputs, o->n_inputs, show ? progress : NULL, &pu, err, sizeof err);
    run_intr_end();
    if (show) fputc('\n', stderr);
    if (rc < 0) {
        fprintf(stderr, "cascade-read: %s\n", err);
        grep_free(g); model_free(&m); session_close(&s);
        return CR_EXIT_INPUT;
    }
    int n;
    const grep_hit *h = grep_hits(g, &n);
    if (o->json) {
        printf("{\"question\":"); json_str(stdout, o->question);
        printf(",\"stopped\":%s,\"hits\":[", rc == 1 ? "true" : "false");
        for (int i = 0; i < n; i++) {
            printf("%s\n{\"file\":", i ? "," : "");
            json_str(stdout, disp_name(o->inputs[h[i].file]));
            printf(",\"line\":%llu,\"score\":%.6g,\"text\":", (unsigned long long)h[i].line, h[i].score);
            json_str(stdout, h[i].text);
            printf(",\"before\":"); print_json_ctx(h[i].before, h[i].n_before);
            printf(",\"after\":"); print_json_ctx(h[i].after, h[i].n_after);
            printf("}");
        }
        printf("]}\n");
    } else {
        for (int i = 0; i < n; i++) {
            const char *f = disp_name(o->inputs[h[i].file]);
            if (o->grep_context > 0 && i) printf("--\n");
            for (int j = 0; j < h[i].n_before; j++) print_line(o, f, h[i].before[j].line, '-', h[i].before[j].text);
            print_line(o, f, h[i].line, ':', h[i].text);
            for (int j = 0; j < h[i].n_after; j++) print_line(o, f, h[i].after[j].line, '-', h[i].after[j].text);
        }
    }
    if (o->verbose) {
        uint64_t lines, bytes, windows, tokens;
        grep_stats(g, &lines, &bytes, &windows, &tokens);
        double dt = now_sec() - pu.t0;
        fprintf(stderr, "grep: %llu lines, %llu bytes, %llu windows, %llu tokens in %.2f s (%.3f MB/s, %.0f tokens/s)\n",
                (unsigned long long)lines, (unsigned long long)bytes, (unsigned long long)windows,
                (unsigned long long)tokens, dt, dt > 0 ? bytes / 1e6 / dt : 0, dt > 0 ? tokens / dt : 0);
    }
    fflush(stdout);
    grep_free(g); model_free(&m); session_close(&s);
    return rc == 1 ? CR_EXIT_INTR : CR_EXIT_OK;
}
