/* --read (documents without a mode flag when not on a terminal), --save, --autosave,
 * --resume / a .cas document, --max-tokens; --snapshot-info. */
#include "run.h"
#include "reader.h"
#include "run_intr.h"
#include "snapshot.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { int tty; int shown; const cr_opts *o; } ui_ctx;

static void fmt_time(char *b, size_t n, double s) {
    if (s < 0) { snprintf(b, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(b, n, "%lds", t);
}

static void on_progress(void *ud, const cr_progress *p) {
    ui_ctx *u = ud;
    if (!u->tty) return;
    char eta[32]; fmt_time(eta, sizeof eta, p->eta_s);
    double pct = p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 0;
    fprintf(stderr, "\r\033[Kreading %d/%d: %llu tokens, %.1f%%, %.0f tok/s, ETA %s", p->doc + 1, p->ndocs,
            (unsigned long long)p->doc_tokens, pct, p->tok_per_s, eta);
    u->shown = 1;
}

static void on_warn(void *ud, const char *msg) {
    ui_ctx *u = ud;
    if (u->shown) { fputc('\n', stderr); u->shown = 0; }
    fprintf(stderr, "cascade-read: warning: %s\n", msg);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int run_read(const cr_opts *o) {
    cr_session s;
    int rc = session_open(&s, o, 1);
    if (rc) return rc;
    ui_ctx u = {!o->quiet && isatty(2), 0, o};
    cr_reader_cb cb = {0};
    cb.progress = on_progress; cb.warn = on_warn; cb.ud = &u;
    char err[1024];
    cr_reader *r = reader_from_opts(&s, o, &cb, err, sizeof err);
    if (!r) {
        fprintf(stderr, "cascade-read: %s\n", err);
        session_close(&s);
        return CR_EXIT_INPUT;
    }
    run_intr_begin(r, 1);
    double t0 = now_sec();
    cr_progress p0; reader_progress(r, &p0);
    int k = reader_read(r, o->max_tokens > 0 ? (uint64_t)o->max_tokens : 0, err, sizeof err);
    run_intr_end();
    double dt = now_sec() - t0;
    if (u.shown) { fputc('\n', stderr); u.shown = 0; }
    if (k < 0) { fprintf(stderr, "cascade-read: %s\n", err); rc = CR_EXIT_INPUT; }
    else if (k == 2 || run_interrupted) rc = CR_EXIT_INTR;
    int saved = 0;
    if (o->save_path && rc != CR_EXIT_INPUT) {
        if (reader_save(r, o->save_path, err, sizeof err)) { fprintf(stderr, "cascade-read: %s\n", err); rc = CR_EXIT_INPUT; }
        else saved = 1;
    }
    cr_progress p; reader_progress(r, &p);
    uint64_t fed = p.tokens - p0.tokens;
    if (o->json) {
        printf("{\"documents\":%d,\"complete\":%s,\"tokens\":%llu,\"doc_tokens\":%llu,\"tokens_read\":%llu,"
               "\"seconds\":%.3f,\"tok_per_s\":%.1f,\"interrupted\":%s,\"snapshot\":",
               p.ndocs, p.done ? "true" : "false", (unsigned long long)p.tokens, (unsigned long long)p.doc_tokens,
               (unsigned long long)fed, dt, dt > 0 ? (double)fed / dt : 0.0, rc == CR_EXIT_INTR ? "true" : "false");
        if (saved) json_str(stdout, o->save_path); else fputs("null", stdout);
        printf(",\"files\":[");
        const docmap *m = reader_docmap(r);
        for (uint32_t i = 0; i < m->ndocs; i++) {
            printf("%s{\"path\":", i ? "," : "");
            json_str(stdout, m->docs[i].path);
            printf(",\"title\":");
            json_str(stdout, m->docs[i].title);
            printf(",\"sections\":%u}", m->docs[i].nsec);
        }
        printf("]}\n");
    } else if (o->verbose || (!o->quiet && isatty(2))) {
        fprintf(stderr, "read %llu tokens (%llu in the session) in %.2f s, %.0f tokens/s%s%s%s\n",
                (unsigned long long)fed, (unsigned long long)p.tokens, dt, dt > 0 ? (double)fed / dt : 0.0,
                p.done ? "" : " (not finished)", saved ? "; saved " : "", saved ? o->save_path : "");
    }
    reader_free(r);
    session_close(&s);
    return rc;
}

/* The listing goes to stdout; on a broken file what could be read is listed and the problem
 * (snapshot_info's last line) goes to stderr as one "cascade-read: PATH: problem" line. */
int run_snapinfo(const cr_opts *o) {
    char *txt = NULL; size_t n = 0;
    FILE *f = open_memstream(&txt, &n);
    if (!f) { fprintf(stderr, "cascade-read: out of memory\n"); return CR_EXIT_INPUT; }
    int r = snapshot_info(o->snapinfo_path, f);
    fclose(f);
    if (r == 0) { fwrite(txt, 1, n, stdout); free(txt); return CR_EXIT_OK; }
    while (n && txt[n - 1] == '\n') txt[--n] = 0;
    char *last = strrchr(txt, '\n');
    if (last) { fwrite(txt, 1, (size_t)(last - txt) + 1, stdout); last++; }
    else last = txt;
    fflush(stdout);
    fprintf(stderr, "cascade-read: %s\n", last);
    free(txt);
    return CR_EXIT_INPUT;
}
