/* The worker thread and its queues, against a scripted fake engine: reading in strides,
 * a question answered between strides (not after the reading), streamed tokens, Ctrl-C of
 * an answer and of the reading, status coalescing, quit. Synchronised with condition
 * variables and the worker's event pipe (poll with a deadline), no sleeps. */
#include "t.h"
#include "worker.h"
#include "cli.h"
#include <unistd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

typedef struct fake {
    pthread_mutex_t mu; pthread_cond_t cv;
    int permits;            /* reads allowed (-1: unlimited) */
    int reads, total_reads; /* done / until everything is read */
    char log[256]; int nlog;
    volatile int stop_read;
    int endless_answer;
    int waiting;            /* a read waits for a permit */
} fake;

static void logc(fake *f, char c) { pthread_mutex_lock(&f->mu); if (f->nlog < 255) f->log[f->nlog++] = c; f->log[f->nlog] = 0; pthread_mutex_unlock(&f->mu); }

static int f_read(void *ud, wk *w, char *err, size_t n) {
    (void)w; (void)err; (void)n;
    fake *f = ud;
    pthread_mutex_lock(&f->mu);
    while (f->permits == 0 && !f->stop_read) {
        f->waiting = 1; pthread_cond_broadcast(&f->cv);
        pthread_cond_wait(&f->cv, &f->mu);
    }
    f->waiting = 0;
    if (f->stop_read) { f->stop_read = 0; pthread_mutex_unlock(&f->mu); return 2; }
    if (f->permits > 0) f->permits--;
    f->reads++;
    int done = f->reads >= f->total_reads;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    logc(f, 'R');
    return done ? 0 : 1;
}

static void f_stop(void *ud) {
    fake *f = ud;
    pthread_mutex_lock(&f->mu); f->stop_read = 1; pthread_cond_broadcast(&f->cv); pthread_mutex_unlock(&f->mu);
}

static int f_ask(void *ud, wk *w, const char *q, char *err, size_t n) {
    fake *f = ud;
    logc(f, 'A');
    if (strcmp(q, "fail") == 0) { snprintf(err, n, "fake: cannot answer"); return -1; }
    wk_event *e = calloc(1, sizeof *e); e->type = WK_EV_ANSWER_START; wk_emit(w, e);
    int stopped = 0;
    if (f->endless_answer) {
        /* a few tokens, then generate until Ctrl-C (the test's deadline: 10 s) */
        struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; ; i++) {
            if (*wk_stop_flag(w)) { stopped = 1; break; }
            if (i < 3) wk_token(w, "la ", 3);
            else sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (t1.tv_sec - t0.tv_sec > 10) break;
        }
    } else {
        const char *pieces[] = { "Once", " upon", " a time" };
        for (int i = 0; i < 3; i++) wk_token(w, pieces[i], strlen(pieces[i]));
    }
    e = calloc(1, sizeof *e); e->type = WK_EV_ANSWER_END; e->stopped = stopped; e->partial = 1;
    pthread_mutex_lock(&f->mu); e->doc_tokens = (uint64_t)f->reads * 100; pthread_mutex_unlock(&f->mu);
    wk_emit(w, e);
    return 0;
}

static int f_save(void *ud, wk *w, const char *path, char *err, size_t n) {
    (void)ud; (void)err; (void)n;
    char m[300]; snprintf(m, sizeof m, "saved %s", path);
    wk_emit_text(w, WK_EV_INFO, m);
    logc(ud, 'S');
    return 0;
}

static void f_status(void *ud, wk_status *s) {
    fake *f = ud;
    pthread_mutex_lock(&f->mu);
    s->have_prog = 1; s->prog.doc_tokens = (uint64_t)f->reads * 100;
    pthread_mutex_unlock(&f->mu);
    snprintf(s->model, sizeof s->model, "fake");
}

static void fake_init(fake *f, wk_backend *be, int permits, int total) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL); pthread_cond_init(&f->cv, NULL);
    f->permits = permits; f->total_reads = total;
    memset(be, 0, sizeof *be);
    be->ud = f; be->read = f_read; be->ask = f_ask; be->save = f_save; be->stop = f_stop; be->status = f_status;
}
static void permit(fake *f, int n) {
    pthread_mutex_lock(&f->mu); f->permits = n; pthread_cond_broadcast(&f->cv); pthread_mutex_unlock(&f->mu);
}
/* n reads done and, when no permit is left, the next read waiting for one (condition
 * variable with a 10 s deadline) */
static int wait_reads(fake *f, int n) {
    struct timespec dl; clock_gettime(CLOCK_REALTIME, &dl); dl.tv_sec += 10;
    pthread_mutex_lock(&f->mu);
    int r = 0;
    while ((f->reads < n || (f->permits == 0 && !f->waiting)) && r == 0) r = pthread_cond_timedwait(&f->cv, &f->mu, &dl);
    int ok = f->reads >= n;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static double mono(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }

/* Events until one of `type` arrives (returned; the others appended to text/counted). */
typedef struct { char text[65536]; int n_status, n_tokens; int read_codes[16], n_read; } seen_t;
static wk_event *wait_for(wk *w, int type, seen_t *s) {
    double dl = mono() + (t_asan() ? 300 : 120);      /* a deadline for failures only */
    while (mono() < dl) {
        wk_event *e;
        while ((e = worker_next(w))) {
            if (e->type == WK_EV_TOKEN) { s->n_tokens++; strncat(s->text, e->text, sizeof s->text - strlen(s->text) - 1); }
            if (e->type == WK_EV_STATUS) s->n_status++;
            if (e->type == WK_EV_READ && s->n_read < 16) s->read_codes[s->n_read++] = e->code;
            if (e->type == type) return e;
            wk_event_free(e);
        }
        struct pollfd p = { worker_fd(w), POLLIN, 0 };
        poll(&p, 1, 100);
    }
    return NULL;
}

static void test_question_between_strides(void) {
    fake f; wk_backend be; fake_init(&f, &be, 2, 10);
    char err[256];
    wk *w = worker_start(&be, 1, err, sizeof err);
    T_CHECK(w);
    T_CHECK(wait_reads(&f, 2));              /* read 3 now waits for a permit */
    T_CHECK(worker_send(w, WK_CMD_ASK, "who?") == 0);
    permit(&f, 1);                            /* read 3 completes, then the question */
    seen_t s; memset(&s, 0, sizeof s);
    wk_event *e = wait_for(w, WK_EV_ANSWER_END, &s);
    T_CHECK(e);
    T_CHECKF(strcmp(s.text, "Once upon a time") == 0, "streamed '%s'", s.text);
    T_CHECK(s.n_tokens >= 1 && s.n_tokens <= 3);
    T_CHECKF(e->partial && e->doc_tokens == 300, "partial %d after %llu tokens", e->partial, (unsigned long long)e->doc_tokens);
    wk_event_free(e);
    pthread_mutex_lock(&f.mu);
    int ok = strcmp(f.log, "RRRA") == 0;
    pthread_mutex_unlock(&f.mu);
    T_CHECKF(ok, "order of work: %s (the question waits one stride, not the whole reading)", f.log);
    permit(&f, -1);
    e = wait_for(w, WK_EV_READ, &s);          /* reading goes on to the end */
    T_CHECK(e && e->code == 0);
    wk_event_free(e);
    T_CHECK(f.reads == 10);
    worker_free(w);
}

static void test_stop_answer(void) {
    fake f; wk_backend be; fake_init(&f, &be, 0, 10);
    f.endless_answer = 1;
    char err[256];
    wk *w = worker_start(&be, 0, err, sizeof err);
    T_CHECK(w);
    T_CHECK(worker_send(w, WK_CMD_ASK, "sing") == 0);
    seen_t s; memset(&s, 0, sizeof s);
    wk_event *e = wait_for(w, WK_EV_TOKEN, &s);
    T_CHECK(e);
    wk_event_free(e);
    T_CHECK(worker_stop(w) == 1);
    e = wait_for(w, WK_EV_ANSWER_END, &s);
    T_CHECK(e);
    T_CHECKF(e->stopped, "stopped after %d tokens", s.n_tokens);
    T_CHECK(s.n_tokens >= 1 && s.n_tokens <= 3);
    wk_event_free(e);
    /* the next question is not stopped by the old Ctrl-C */
    f.endless_answer = 0;
    T_CHECK(worker_send(w, WK_CMD_ASK, "again") == 0);
    memset(&s, 0, sizeof s);
    e = wait_for(w, WK_EV_ANSWER_END, &s);
    T_CHECK(e && !e->stopped && strcmp(s.text, "Once upon a time") == 0);
    wk_event_free(e);
    worker_free(w);
}

static void test_stop_reading_and_continue(void) {
    fake f; wk_backend be; fake_init(&f, &be, 1, 5);
    char err[256];
    wk *w = worker_start(&be, 1, err, sizeof err);
    T_CHECK(w);
    T_CHECK(wait_reads(&f, 1));               /* read 2 waits: Ctrl-C now */
    T_CHECK(worker_stop(w) == 1);
    seen_t s; memset(&s, 0, sizeof s);
    wk_event *e = wait_for(w, WK_EV_READ, &s);
    T_CHECK(e && e->code == 2);
    wk_event_free(e);
    wk_status st; worker_status(w, &st);
    T_CHECK(st.reading == 2);
    permit(&f, -1);
    T_CHECK(worker_send(w, WK_CMD_READ, NULL) == 0);
    e = wait_for(w, WK_EV_READ, &s);
    T_CHECK(e && e->code == 1);
    wk_event_free(e);
    e = wait_for(w, WK_EV_READ, &s);
    T_CHECK(e && e->code == 0);
    wk_event_free(e);
    T_CHECK(f.reads == 5);
    worker_status(w, &st);
    T_CHECK(st.reading == 0 && st.prog.doc_tokens == 500 && strcmp(st.model, "fake") == 0);
    T_CHECK(worker_stop(w) == 0);             /* idle: nothing to stop */
    worker_free(w);
}

static void test_status_coalesced_and_errors(void) {
    fake f; wk_backend be; fake_init(&f, &be, -1, 50);
    char err[256];
    wk *w = worker_start(&be, 1, err, sizeof err);
    T_CHECK(w);
    T_CHECK(wait_reads(&f, 50));
    T_CHECK(worker_send(w, WK_CMD_ASK, "fail") == 0);
    seen_t s; memset(&s, 0, sizeof s);
    wk_event *e = wait_for(w, WK_EV_ERROR, &s);
    T_CHECK(e && strstr(e->text, "cannot answer"));
    wk_event_free(e);
    /* 50 reads but the events were not drained meanwhile: one pending status at a time */
    T_CHECKF(s.n_status <= 3, "%d status events for 50 strides", s.n_status);
    T_CHECK(worker_send(w, WK_CMD_SUMMARIZE, NULL) == 0);   /* the fake has none */
    e = wait_for(w, WK_EV_ERROR, &s);
    T_CHECK(e && strstr(e->text, "not available"));
    wk_event_free(e);
    worker_free(w);
}

static void test_quit_after_save(void) {
    fake f; wk_backend be; fake_init(&f, &be, 0, 10);
    char err[256];
    wk *w = worker_start(&be, 1, err, sizeof err);
    T_CHECK(w);
    T_CHECK(worker_send(w, WK_CMD_SAVE, "x.cas") == 0);
    T_CHECK(worker_send(w, WK_CMD_QUIT, NULL) == 0);
    permit(&f, -1);
    seen_t s; memset(&s, 0, sizeof s);
    wk_event *e = wait_for(w, WK_EV_INFO, &s);
    T_CHECK(e && strcmp(e->text, "saved x.cas") == 0);
    wk_event_free(e);
    e = wait_for(w, WK_EV_EXIT, &s);
    T_CHECK(e);
    wk_event_free(e);
    T_CHECK(worker_send(w, WK_CMD_ASK, "late") == -1);
    worker_free(w);
}

/* The real backend (session, reader, ask) on the story model and the start of a book: the
 * document's text event, reading to the end, a question whose citations point at the cited
 * source line in that text, :save and :load bringing the conversation back. */
static void test_real_reader(void) {
    char model[1024], src[1024];
    snprintf(model, sizeof model, "%s/models/stories260K.gguf", t_shared());
    snprintf(src, sizeof src, "%s/data/books/txt/16-0.txt", t_shared());
    T_NEED_SHARED("models/stories260K.gguf");
    T_NEED_SHARED("data/books/txt/16-0.txt");
    FILE *in = fopen(src, "rb");
    T_CHECKF(in, "cannot open %s", src);
    char dir[] = "/tmp/cr_worker_XXXXXX";
    T_CHECK(mkdtemp(dir));
    char doc[300], snap[300];
    snprintf(doc, sizeof doc, "%s/peter.txt", dir); snprintf(snap, sizeof snap, "%s/s.cas", dir);
    size_t want = t_asan() ? 4000 : 6000;
    char *buf = malloc(want); size_t n = fread(buf, 1, want, in); fclose(in);
    FILE *out = fopen(doc, "wb"); T_CHECK(out); fwrite(buf, 1, n, out); fclose(out);
    /* the source's lines, to check citations against */
    char *lines[400] = { 0 }; int nl = 0;
    for (char *p = buf, *e; nl < 400 && p < buf + n; p = e + 1) {
        e = memchr(p, '\n', (size_t)(buf + n - p)); if (!e) e = buf + n;
        lines[nl] = strndup(p, (size_t)(e - p)); lines[nl][strcspn(lines[nl], "\r")] = 0; nl++;
    }
    free(buf);
    char *argv[] = { "cascade-read", "--model", model, "-n", "6", "--no-tui", "-t", "2", doc, NULL };
    cr_opts o;
    T_CHECK(cli_parse(&o, 9, argv) == 0);
    wk_backend be;
    T_CHECK(wk_backend_reader_new(&o, &be) == 0);
    char err[256];
    wk *w = worker_start(&be, 1, err, sizeof err);
    T_CHECK(w);
    seen_t s; memset(&s, 0, sizeof s);
    wk_event *e = wait_for(w, WK_EV_DOCTEXT, &s);
    T_CHECK(e && e->doc == 0 && e->text);
    T_CHECKF(strstr(e->text, "All children, except one, grow up") && !strstr(e->text, "*** START OF"),
             "the document's text, Gutenberg header stripped");
    char *text = e->text; size_t tlen = e->len; e->text = NULL;
    wk_event_free(e);
    e = wait_for(w, WK_EV_READ, &s);
    T_CHECK(e && e->code == 0);
    wk_event_free(e);
    wk_status st; worker_status(w, &st);
    T_CHECKF(st.have_prog && st.prog.doc_tokens > 500 && st.prog.done && st.C > 0 && strcmp(st.model, "stories260K") == 0,
             "%llu tokens, model %s", (unsigned long long)st.prog.doc_tokens, st.model);
    T_CHECK(st.pos_doc == 0 && st.pos_rel > tlen / 2 && st.pos_rel <= tlen);
    T_CHECK(worker_send(w, WK_CMD_ASK, "Who is Wendy?") == 0);
    memset(&s, 0, sizeof s);
    e = wait_for(w, WK_EV_ANSWER_END, &s);
    T_CHECK(e && e->code == 0);
    T_CHECKF(s.n_tokens > 0 && e->n_cites > 0, "%d tokens, %d citations", s.n_tokens, e->n_cites);
    char answer[65536]; snprintf(answer, sizeof answer, "%s", s.text);
    for (int i = 0; i < e->n_cites; i++) {        /* each cited passage starts with its source line */
        const wk_cite *c = &e->cites[i];
        T_CHECK(c->doc == 0 && c->rel < tlen && c->line >= 1 && (int)c->line <= nl);
        const char *want_line = lines[c->line - 1];
        size_t k = strlen(want_line) < 20 ? strlen(want_line) : 20;
        T_CHECKF(strncmp(text + c->rel, want_line, k) == 0, "citation %d (%s): text at %llu is '%.20s', line %llu is '%s'",
                 i, c->label, (unsigned long long)c->rel, text + c->rel, (unsigned long long)c->line, want_line);
    }
    wk_event_free(e);
    T_CHECK(worker_send(w, WK_CMD_SAVE, snap) == 0);
    e = wait_for(w, WK_EV_INFO, &s);
    T_CHECK(e && strstr(e->text, "saved"));
    wk_event_free(e);
    T_CHECK(worker_send(w, WK_CMD_LOAD, snap) == 0);
    e = wait_for(w, WK_EV_RESET, &s);
    T_CHECK(e);
    wk_event_free(e);
    int user = 0, assistant = 0;
    for (int k = 0; k < 2; k++) {
        e = wait_for(w, WK_EV_CONV, &s);
        T_CHECK(e);
        if (e->role == CONV_USER) user = strcmp(e->text, "Who is Wendy?") == 0;
        if (e->role == CONV_ASSISTANT) assistant = strcmp(e->text, answer) == 0;
        wk_event_free(e);
    }
    T_CHECKF(user && assistant, "the conversation after :load (answer '%s')", answer);
    worker_free(w);
    free(o.inputs); free(text);
    for (int i = 0; i < nl; i++) free(lines[i]);
    unlink(snap); unlink(doc); rmdir(dir);
}

int main(void) {
    T_RUN(test_question_between_strides);
    T_RUN(test_stop_answer);
    T_RUN(test_stop_reading_and_continue);
    T_RUN(test_status_coalesced_and_errors);
    T_RUN(test_quit_after_save);
    T_RUN(test_real_reader);
    return t_summary();
}
