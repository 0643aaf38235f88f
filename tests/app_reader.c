/* The reading session (app/reader.c): token counts and the document map against an
 * independent per-chunk tokenization of the ingest stream, section-end and progress
 * callbacks, ":add" after reading, conversation runs and their round trip through a
 * snapshot, a failing document among good ones, autosave, max_tokens, and the command line
 * (--read --max-tokens --save --json, --snapshot-info, corrupt and foreign snapshots, SIGINT
 * -> snapshot + exit 130). */
#include "t.h"
#include "reader.h"
#include "snapshot.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], model[512], model2[512], bin[256], book[512];
static cr_opts opts;

static void opts_init(cr_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = model; o->device = "cpu"; o->threads = 2; o->n_predict = 16;
    o->policy = -1; o->cache_n = 128; o->cascades = 4; o->sinks = 4; o->stride = 64; o->beta = -1;
    sampler_cfg_default(&o->samp);
}

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static int write_file(const char *p, const char *text) {
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* a story with chapters */
static char *make_story(int chapters, int paras) {
    size_t cap = 1 << 20, n = 0;
    char *s = malloc(cap);
    static const char *w[] = {"Lily", "saw", "a", "big", "red", "ball", "and", "the", "dog", "ran", "to", "park", "happy", "sun"};
    unsigned x = 7;
    for (int c = 0; c < chapters; c++) {
        n += (size_t)sprintf(s + n, "%sCHAPTER %d\n\n", c ? "\n" : "", c + 1);
        for (int p = 0; p < paras; p++) {
            int words = 8 + (int)(x % 30);
            for (int k = 0; k < words; k++) { x = x * 1103515245u + 12345u; n += (size_t)sprintf(s + n, "%s%s", k ? " " : "", w[(x >> 16) % 14]); }
            n += (size_t)sprintf(s + n, ".\n\n");
        }
    }
    return s;
}

typedef struct {
    int nprog, last_done; uint64_t last_doc_tokens;
    int nsec; uint32_t sec_doc[64], sec_idx[64]; uint64_t sec_fed[64];
    cr_reader *r; int stop_after;
    int nwarn;
} cbrec;
static void on_prog(void *ud, const cr_progress *p) {
    cbrec *c = ud;
    c->nprog++; c->last_done = p->done; c->last_doc_tokens = p->doc_tokens;
    if (c->stop_after && c->nprog == c->stop_after) reader_request_stop(c->r);
}
static void on_sec(void *ud, uint32_t doc, uint32_t sec) {
    cbrec *c = ud;
    if (c->nsec < 64) {
        cr_progress p; reader_progress(c->r, &p);
        c->sec_doc[c->nsec] = doc; c->sec_idx[c->nsec] = sec; c->sec_fed[c->nsec] = p.tokens;
    }
    c->nsec++;
}
static void on_warn(void *ud, const char *m) { (void)m; ((cbrec *)ud)->nwarn++; }

static void t_tokens_and_map(void) {
    T_NEED_SHARED("models/stories260K.gguf");
    char p[300]; path_in(p, sizeof p, "story.txt");
    char *story = make_story(4, t_asan() ? 6 : 20);
    T_CHECK(!write_file(p, story));
    free(story);
    cr_session s; char err[512];
    T_CHECK(session_open(&s, &opts, 1) == 0);
    cbrec c = {0};
    cr_reader_cb cb = {0}; cb.progress = on_prog; cb.section_end = on_sec; cb.ud = &c;
    cr_reader *r = reader_new(&s, &cb, err, sizeof err);
    T_CHECKF(r, "%s", err);
    c.r = r;
    const char *ps[1] = {p};
    T_CHECKF(!reader_add(r, ps, 1, err, sizeof err), "%s", err);
    T_CHECKF(reader_read(r, 0, err, sizeof err) == 0, "%s", err);
    /* independent: per-chunk tokenization of the ingest stream */
    cr_ingest_opts io; cr_ingest_opts_default(&io); io.strip_gutenberg = 1;
    cr_ingest *in = cr_ingest_open(ps, 1, &io, err, sizeof err);
    T_CHECK(in);
    cr_chunk ch; int k;
    uint64_t tok = tok_bos(s.tok) >= 0 ? 1 : 0;
    uint64_t sec_first[16] = {0}; int nsecs = 0;
    int32_t *ids = NULL; size_t n = 0, cap = 0;
    const docmap *m = reader_docmap(r);
    int bad = 0;
    while ((k = cr_ingest_next(in, &ch, err, sizeof err)) > 0) {
        n = 0;
        T_CHECK(!tok_encode(s.tok, ch.text, ch.len, &ids, &n, &cap));
        if ((int)ch.section >= nsecs && nsecs < 16) sec_first[nsecs++] = tok;
        docmap_loc l;
        if (n && (docmap_lookup(m, tok, &l) || l.tok_first != tok || l.offset != ch.offset || l.line != ch.line ||
                  l.section != ch.section || l.doc != 0)) bad++;
        tok += n;
    }
    T_CHECK(k == 0);
    cr_ingest_close(in); free(ids);
    T_CHECKF(!bad, "%d chunks mapped wrongly", bad);
    T_CHECKF(reader_tokens(r) == tok, "reader %llu tokens, independent %llu", (unsigned long long)reader_tokens(r), (unsigned long long)tok);
    cr_progress pg; reader_progress(r, &pg);
    T_CHECK(pg.done && pg.tokens == tok && pg.doc_tokens == tok && pg.bytes_done == pg.bytes_total && pg.bytes_total > 0);
    T_CHECKF(c.nprog >= (int)(tok / (uint64_t)s.stride) && c.last_done, "%d progress calls", c.nprog);
    /* 4 sections (the first chapter names the document's first section, which holds the
     * header); each announced once all its tokens were fed */
    T_CHECKF(c.nsec == nsecs && nsecs == 4, "%d section ends, %d sections", c.nsec, nsecs);
    for (int i = 0; i < c.nsec; i++) {
        uint64_t end = i + 1 < nsecs ? sec_first[i + 1] : tok;
        T_CHECKF(c.sec_doc[i] == 0 && c.sec_idx[i] == (uint32_t)i && c.sec_fed[i] >= end, "section %d: doc %u sec %u fed %llu end %llu",
                 i, c.sec_doc[i], c.sec_idx[i], (unsigned long long)c.sec_fed[i], (unsigned long long)end);
    }
    char cite[256];
    T_CHECK(docmap_cite(m, sec_first[2] + 1, cite, sizeof cite) > 0 && strstr(cite, "CHAPTER 3"));
    /* logits of the last token are there after a complete read */
    T_CHECK(reader_logits(r) != NULL);
    reader_free(r); session_close(&s);
}

static void t_add_after_reading_and_conversation(void) {
    T_NEED_SHARED("models/stories260K.gguf");
    char a[300], b[300], cas[300];
    path_in(a, sizeof a, "a.txt"); path_in(b, sizeof b, "b.log"); path_in(cas, sizeof cas, "conv.cas");
    T_CHECK(!write_file(a, "Lily saw a big red ball.\n\nThe dog ran to the park.\n"));
    T_CHECK(!write_file(b, "line one of the log\nline two of the log\nline three of the log\n"));
    cr_session s; char err[512];
    T_CHECK(session_open(&s, &opts, 1) == 0);
    cr_reader *r = reader_new(&s, NULL, err, sizeof err);
    const char *pa[1] = {a}, *pb[1] = {b};
    T_CHECK(r && !reader_add(r, pa, 1, err, sizeof err));
    T_CHECKF(reader_read(r, 0, err, sizeof err) == 0, "%s", err);
    uint64_t q0 = reader_tokens(r);
    int32_t q[4] = {5, 6, 7, 8};
    float *lg = malloc(sizeof(float) * (size_t)s.model.hp.n_vocab);
    T_CHECKF(!reader_feed(r, q, 4, lg, err, sizeof err), "%s", err);
    T_CHECK(reader_conv_add(r, CONV_USER, "who ran?", q0, q0 + 4, NULL) == 0);
    T_CHECK(reader_conv_add(r, CONV_ASSISTANT, "the dog", q0 + 4, q0 + 4, "a.txt:3\t30\t3") == 1);
    docmap_loc l;
    const docmap *m = reader_docmap(r);
    T_CHECK(!docmap_lookup(m, q0 + 2, &l) && l.doc == DOCMAP_CONV);
    char cite[128];
    T_CHECK(docmap_cite(m, q0 + 1, cite, sizeof cite) > 0 && !strcmp(cite, "conversation"));
    T_CHECK(!docmap_lookup(m, q0 - 1, &l) && l.doc == 0);
    /* ":add" another document after the conversation */
    T_CHECKF(!reader_add(r, pb, 1, err, sizeof err), "%s", err);
    T_CHECKF(reader_read(r, 0, err, sizeof err) == 0, "%s", err);
    uint64_t q1 = q0 + 4;
    T_CHECK(!docmap_lookup(m, q1, &l) && l.doc == 1 && l.line == 0);           /* its header */
    T_CHECK(!docmap_lookup(m, reader_tokens(r) - 1, &l) && l.doc == 1 && l.line == 3);
    T_CHECK(docmap_cite(m, reader_tokens(r) - 1, cite, sizeof cite) > 0 && !strcmp(cite, "b.log:3"));
    /* the stream offset of the second document's header: after the first document's text */
    T_CHECK(!docmap_lookup(m, q1, &l) && l.offset == strlen("# a.txt\n\n") + strlen("Lily saw a big red ball.\n\nThe dog ran to the park.\n"));
    T_CHECKF(!reader_save(r, cas, err, sizeof err), "%s", err);
    uint64_t total = reader_tokens(r);
    reader_free(r);
    r = reader_resume(&s, cas, NULL, err, sizeof err);
    T_CHECKF(r, "%s", err);
    T_CHECK(reader_tokens(r) == total && reader_conv_count(r) == 2);
    const cr_conv_msg *c0 = reader_conv_get(r, 0), *c1 = reader_conv_get(r, 1);
    T_CHECK(c0->role == CONV_USER && !strcmp(c0->text, "who ran?") && !c0->cites && c0->tok_first == q0 && c0->tok_end == q0 + 4);
    T_CHECK(c1->role == CONV_ASSISTANT && !strcmp(c1->text, "the dog") && c1->cites && !strcmp(c1->cites, "a.txt:3\t30\t3"));
    T_CHECK(!docmap_lookup(reader_docmap(r), q0 + 3, &l) && l.doc == DOCMAP_CONV);
    T_CHECK(reader_read(r, 0, err, sizeof err) == 0 && reader_tokens(r) == total);
    free(lg);
    reader_free(r); session_close(&s);
}

static void t_bad_document_among_good(void) {
    T_NEED_SHARED("models/stories260K.gguf");
    char a[300], bad[300], c[300];
    path_in(a, sizeof a, "g1.txt"); path_in(bad, sizeof bad, "bad.epub"); path_in(c, sizeof c, "g2.txt");
    T_CHECK(!write_file(a, "First good document.\n"));
    T_CHECK(!write_file(bad, "PK\x03\x04 this is not really a zip archive at all"));
    T_CHECK(!write_file(c, "Second good document.\n"));
    cr_session s; char err[512];
    T_CHECK(session_open(&s, &opts, 1) == 0);
    cbrec cr = {0};
    cr_reader_cb cb = {0}; cb.warn = on_warn; cb.ud = &cr;
    cr_reader *r = reader_new(&s, &cb, err, sizeof err);
    cr.r = r;
    char missing[300]; path_in(missing, sizeof missing, "nope.txt");
    const char *pm[1] = {missing};
    T_CHECK(reader_add(r, pm, 1, err, sizeof err) == -1 && strstr(err, missing));
    const char *ps[3] = {a, bad, c};
    T_CHECK(!reader_add(r, ps, 3, err, sizeof err));
    int k = reader_read(r, 0, err, sizeof err);
    T_CHECKF(k == -1 && strstr(err, bad), "%d %s", k, err);
    T_CHECKF(reader_read(r, 0, err, sizeof err) == 0, "%s", err);
    const docmap *m = reader_docmap(r);
    T_CHECKF(m->ndocs == 3, "%u docs", m->ndocs);
    docmap_loc l;
    T_CHECK(!docmap_lookup(m, reader_tokens(r) - 1, &l) && l.doc == 2);
    reader_free(r); session_close(&s);
}

static void t_autosave_max_tokens_stop(void) {
    T_NEED_SHARED("models/stories260K.gguf");
    char p[300], as[300];
    path_in(p, sizeof p, "long.txt"); path_in(as, sizeof as, "auto.cas");
    char *story = make_story(3, t_asan() ? 10 : 30);
    T_CHECK(!write_file(p, story));
    free(story);
    unlink(as);
    cr_session s; char err[512];
    T_CHECK(session_open(&s, &opts, 1) == 0);
    uint64_t L = (uint64_t)s.stride;
    cbrec c = {0};
    cr_reader_cb cb = {0}; cb.progress = on_prog; cb.ud = &c; cb.autosave_every = 3 * L; cb.autosave_path = as;
    cr_reader *r = reader_new(&s, &cb, err, sizeof err);
    c.r = r;
    const char *ps[1] = {p};
    T_CHECK(!reader_add(r, ps, 1, err, sizeof err));
    T_CHECK(reader_read(r, 100, err, sizeof err) == 1);
    cr_progress pg; reader_progress(r, &pg);
    T_CHECKF(pg.doc_tokens >= 100 && pg.doc_tokens < 100 + L && pg.doc_tokens % L == 0 && !pg.done, "%llu", (unsigned long long)pg.doc_tokens);
    T_CHECK(access(as, R_OK) != 0);        /* fewer than 3 strides: no autosave yet */
    c.stop_after = c.nprog + 3;
    T_CHECK(reader_read(r, 0, err, sizeof err) == 2);
    reader_progress(r, &pg);
    T_CHECKF(pg.doc_tokens == 5 * L, "%llu", (unsigned long long)pg.doc_tokens);
    T_CHECK(access(as, R_OK) == 0);
    reader_free(r);
    /* the autosave holds 3 strides */
    r = reader_resume(&s, as, NULL, err, sizeof err);
    T_CHECKF(r, "%s", err);
    reader_progress(r, &pg);
    T_CHECKF(pg.tokens == 3 * L && !pg.done, "%llu", (unsigned long long)pg.tokens);
    reader_free(r); session_close(&s);
}

/* ---- command line ---- */
static char *run(const char *args, int *status) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    return t_popen_read(cmd, status);
}

static void t_cli_read_save_info(void) {
    if (access(bin, X_OK)) T_SKIP("%s not built", bin);
    T_NEED_SHARED("models/stories260K.gguf");
    T_NEED_SHARED("models/TinyStories-656K-Q8_0.gguf");
    T_NEED_SHARED("data/books/txt/1342-0.txt");
    char cas[300], a[4096]; int st;
    path_in(cas, sizeof cas, "cli.cas");
    snprintf(a, sizeof a, "--model %s --cache 128 --stride 64 --read --json --max-tokens 300 --save %s %s", model, cas, book);
    char *o = run(a, &st);
    T_CHECKF(st == 0 && strstr(o, "\"complete\":false") && strstr(o, "\"doc_tokens\":320"), "status %d: %s", st, o); free(o);
    snprintf(a, sizeof a, "--snapshot-info %s", cas);
    o = run(a, &st);
    T_CHECKF(st == 0 && strstr(o, "1342-0.txt") && strstr(o, "320 tokens seen"), "status %d: %s", st, o); free(o);
    /* continue through a .cas document argument */
    snprintf(a, sizeof a, "--model %s --json --max-tokens 128 --save %s.2.cas %s", model, cas, cas);
    o = run(a, &st);
    T_CHECKF(st == 0 && strstr(o, "\"doc_tokens\":448") && strstr(o, "\"tokens_read\":128"), "status %d: %s", st, o); free(o);
    /* another model */
    snprintf(a, sizeof a, "--model %s --read %s", model2, cas);
    o = run(a, &st);
    T_CHECKF(st == 1 && strstr(o, "stories260K") && strstr(o, "TinyStories") && strchr(o, '\n') == o + strlen(o) - 1, "status %d: %s", st, o); free(o);
    /* truncated */
    T_CHECK(truncate(cas, 5000) == 0);
    snprintf(a, sizeof a, "--model %s --read %s", model, cas);
    o = run(a, &st);
    T_CHECKF(st == 1 && strstr(o, cas) && strchr(o, '\n') == o + strlen(o) - 1, "status %d: %s", st, o); free(o);
    snprintf(a, sizeof a, "--snapshot-info %s", cas);
    o = run(a, &st);
    T_CHECKF(st == 1, "status %d: %s", st, o); free(o);
    char tmp[400]; snprintf(tmp, sizeof tmp, "%s.2.cas", cas); unlink(tmp); unlink(cas);
}

static void t_cli_sigint_saves(void) {
    if (access(bin, X_OK)) T_SKIP("%s not built", bin);
    T_NEED_SHARED("models/stories260K.gguf");
    T_NEED_SHARED("data/books/txt/1342-0.txt");
    char cas[300], as[300];
    path_in(cas, sizeof cas, "int.cas");
    snprintf(as, sizeof as, "%s", cas);
    unlink(cas);
    int fd = inotify_init1(0);
    T_CHECK(fd >= 0);
    T_CHECK(inotify_add_watch(fd, dir, IN_MOVED_TO) >= 0);
    pid_t pid = fork();
    if (pid == 0) {
        int dn = open("/dev/null", 1); dup2(dn, 1); dup2(dn, 2);
        execl(bin, bin, "--model", model, "--cache", "128", "--stride", "64", "--read", "--quiet", "--autosave", "128",
              "--save", cas, book, (char *)NULL);
        _exit(127);
    }
    /* the first autosave (renamed into place) shows that it is reading */
    char ev[4096];
    int seen = 0;
    while (!seen) {
        ssize_t k = read(fd, ev, sizeof ev);
        if (k <= 0) break;
        for (char *q = ev; q < ev + k;) {
            struct inotify_event *e = (struct inotify_event *)q;
            if (e->len && !strcmp(e->name, "int.cas")) seen = 1;
            q += sizeof *e + e->len;
        }
    }
    close(fd);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    T_CHECKF(seen && WIFEXITED(st) && WEXITSTATUS(st) == 130, "seen %d status %d", seen, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    /* the final save holds what was read, less than the book */
    cr_session s; char err[512];
    T_CHECK(session_open(&s, &opts, 1) == 0);
    cr_reader *r = reader_resume(&s, cas, NULL, err, sizeof err);
    T_CHECKF(r, "%s", err);
    cr_progress pg; reader_progress(r, &pg);
    T_CHECK(pg.tokens >= 128 && !pg.done);
    reader_free(r); session_close(&s);
    unlink(cas);
}

int main(void) {
    snprintf(model, sizeof model, "%s/models/stories260K.gguf", t_shared());
    snprintf(model2, sizeof model2, "%s/models/TinyStories-656K-Q8_0.gguf", t_shared());
    snprintf(book, sizeof book, "%s/data/books/txt/1342-0.txt", t_shared());
    const char *b = getenv("CR_BUILD");
    snprintf(bin, sizeof bin, "%s/cascade-read", b && strcmp(b, "build") ? b : ".");
    strcpy(dir, "/tmp/cr-reader-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    opts_init(&opts);
    setenv("XDG_CONFIG_HOME", dir, 1);       /* no user configuration in the command-line runs */
    setenv("XDG_DATA_HOME", dir, 1);
    T_RUN(t_tokens_and_map);
    T_RUN(t_add_after_reading_and_conversation);
    T_RUN(t_bad_document_among_good);
    T_RUN(t_autosave_max_tokens_stop);
    T_RUN(t_cli_read_save_info);
    T_RUN(t_cli_sigint_saves);
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return t_summary();
}
