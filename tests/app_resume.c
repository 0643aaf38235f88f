/* Resume: "read part, save, resume in a fresh session, read the rest" gives bit-exactly the
 * next-token logits (and the same document map) of an uninterrupted read, for cuts inside
 * the first and the second document, through max_tokens and through reader_request_stop,
 * and for a chain of two resumes; a document changed since the snapshot is refused. */
#include "t.h"
#include "reader.h"
#include "snapshot.h"
#include <unistd.h>
#include <sys/stat.h>

static char dir[256], fa[300], fb[300], cas[300];
static char model[512];
static cr_opts opts;

static void opts_init(cr_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = model; o->device = "cpu"; o->threads = 2; o->n_predict = 16;
    o->policy = -1; o->cache_n = 128; o->cascades = 4; o->sinks = 4; o->stride = 64; o->beta = -1;
    sampler_cfg_default(&o->samp);
}

static const int32_t probe[5] = {1, 100, 200, 300, 400};

typedef struct { int strides, stop_after; cr_reader *r; } stopper;
static void on_progress(void *ud, const cr_progress *p) {
    (void)p;
    stopper *s = ud;
    if (++s->strides == s->stop_after) reader_request_stop(s->r);
}

/* reads everything (resuming from cas when given), then feeds the probe; logits into out */
static int finish(cr_reader *r, float *out, size_t nv, char *err) {
    int k;
    while ((k = reader_read(r, 0, err, 512)) == 1) {}
    if (k != 0) return -1;
    if (reader_feed(r, probe, 5, out, err, 512)) return -1;
    (void)nv;
    return 0;
}

static int same_map(const docmap *a, const docmap *b) {
    if (a->ndocs != b->ndocs || a->nsecs != b->nsecs || a->nruns != b->nruns) return 0;
    for (uint64_t t = 0; t < 100000; t += 7) {
        docmap_loc x, y;
        int ra = docmap_lookup(a, t, &x), rb = docmap_lookup(b, t, &y);
        if (ra != rb) return 0;
        if (!ra && (x.doc != y.doc || x.section != y.section || x.offset != y.offset || x.line != y.line || x.tok_first != y.tok_first))
            return 0;
    }
    return 1;
}

static float *ref_logits; static size_t nvocab; static docmap ref_map; static uint64_t ref_tokens, len_a_tokens;

static void t_reference(void) {
    cr_session s; char err[512];
    T_CHECK(session_open(&s, &opts, 1) == 0);
    nvocab = (size_t)s.model.hp.n_vocab;
    ref_logits = malloc(nvocab * sizeof(float));
    cr_reader *r = reader_new(&s, NULL, err, sizeof err);
    T_CHECKF(r, "%s", err);
    const char *p[2] = {fa, fb};
    T_CHECKF(!reader_add(r, p, 2, err, sizeof err), "%s", err);
    T_CHECKF(!finish(r, ref_logits, nvocab, err), "%s", err);
    docmap_init(&ref_map);
    /* a copy of the map through its serialization */
    char *buf = NULL; size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    docmap_write(reader_docmap(r), m); fclose(m);
    T_CHECK(!docmap_read(&ref_map, (uint8_t *)buf, len, err, sizeof err));
    free(buf);
    ref_tokens = reader_tokens(r);
    docmap_loc l;
    /* the first token of document 1 */
    for (uint64_t t = 0; t < ref_tokens; t++) if (!docmap_lookup(&ref_map, t, &l) && l.doc == 1) { len_a_tokens = t; break; }
    T_CHECKF(len_a_tokens > 200 && ref_tokens > len_a_tokens + 200, "tokens %llu, first of B %llu",
             (unsigned long long)ref_tokens, (unsigned long long)len_a_tokens);
    T_CHECK(!docmap_lookup(&ref_map, ref_tokens - 1, &l) && l.doc == DOCMAP_CONV);
    reader_free(r); session_close(&s);
}

/* cut after max_tokens (0: by a stop request after stop_after strides), save, resume */
static int cut_and_resume(uint64_t max_tokens, int stop_after, int chain, int *had_pending, char *err) {
    cr_session s; float *lg = malloc(nvocab * sizeof(float));
    int ok = 0;
    if (session_open(&s, &opts, 1)) { strcpy(err, "session"); free(lg); return 0; }
    stopper st = {0, stop_after, NULL};
    cr_reader_cb cb = {0}; cb.progress = on_progress; cb.ud = &st;
    cr_reader *r = reader_new(&s, &cb, err, 512);
    st.r = r;
    const char *p[2] = {fa, fb};
    if (!r || reader_add(r, p, 2, err, 512)) goto out;
    int k = reader_read(r, max_tokens, err, 512);
    if (k != (max_tokens ? 1 : 2)) { if (k >= 0) sprintf(err, "reader_read returned %d", k); goto out; }
    cr_progress pg; reader_progress(r, &pg);
    if (reader_tokens(r) > pg.tokens) *had_pending = 1;
    if (reader_save(r, cas, err, 512)) goto out;
    reader_free(r); r = NULL;
    session_close(&s);
    for (int c = 0; c <= chain; c++) {
        if (session_open(&s, &opts, 1)) { strcpy(err, "session 2"); goto out2; }
        r = reader_resume(&s, cas, NULL, err, 512);
        if (!r) goto out;
        if (c < chain) {
            if (reader_read(r, 3 * (uint64_t)opts.stride, err, 512) != 1 || reader_save(r, cas, err, 512)) goto out;
            reader_free(r); r = NULL; session_close(&s);
        }
    }
    if (finish(r, lg, nvocab, err)) goto out;
    if (reader_tokens(r) != ref_tokens) { sprintf(err, "tokens %llu vs %llu", (unsigned long long)reader_tokens(r), (unsigned long long)ref_tokens); goto out; }
    if (memcmp(lg, ref_logits, nvocab * sizeof(float))) {
        float md = 0;
        for (size_t i = 0; i < nvocab; i++) md = fmaxf(md, fabsf(lg[i] - ref_logits[i]));
        sprintf(err, "logits differ (max |d| %g)", md); goto out;
    }
    if (!same_map(reader_docmap(r), &ref_map)) { strcpy(err, "document maps differ"); goto out; }
    ok = 1;
out:
    reader_free(r);
    session_close(&s);
out2:
    free(lg);
    return ok;
}

static void t_cut_in_first_doc(void) {
    char err[512] = ""; int pend = 0;
    T_CHECKF(cut_and_resume(5 * (uint64_t)opts.stride, 0, 0, &pend, err), "%s", err);
}
static void t_cut_in_second_doc(void) {
    char err[512] = ""; int pend = 0;
    T_CHECKF(cut_and_resume(len_a_tokens + 2 * (uint64_t)opts.stride, 0, 0, &pend, err), "%s", err);
}
static void t_cut_by_stop_and_chain(void) {
    char err[512] = ""; int pend = 0, pend2 = 0;
    T_CHECKF(cut_and_resume(0, 4, 1, &pend, err), "%s", err);
    T_CHECKF(cut_and_resume(0, 9, 0, &pend2, err), "%s", err);
    /* the interesting case (tokens of a chunk waiting for the next stride) did occur */
    T_CHECK(pend || pend2);
}

static void t_changed_document(void) {
    char err[512] = "";
    cr_session s;
    T_CHECK(session_open(&s, &opts, 1) == 0);
    cr_reader *r = reader_new(&s, NULL, err, sizeof err);
    const char *p[1] = {fa};
    T_CHECK(r && !reader_add(r, p, 1, err, sizeof err));
    T_CHECK(reader_read(r, 3 * (uint64_t)opts.stride, err, sizeof err) == 1);
    T_CHECKF(!reader_save(r, cas, err, sizeof err), "%s", err);
    reader_free(r); session_close(&s);
    /* same size, one byte changed */
    FILE *f = fopen(fa, "r+b");
    T_CHECK(f);
    fseek(f, 10, SEEK_SET); int c = fgetc(f); fseek(f, 10, SEEK_SET); fputc(c == 'x' ? 'y' : 'x', f); fclose(f);
    T_CHECK(session_open(&s, &opts, 1) == 0);
    r = reader_resume(&s, cas, NULL, err, sizeof err);
    T_CHECKF(!r && strstr(err, fa) && strstr(err, "changed"), "%s", err);
    /* shorter */
    T_CHECK(truncate(fa, 100) == 0);
    r = reader_resume(&s, cas, NULL, err, sizeof err);
    T_CHECKF(!r && strstr(err, fa) && strstr(err, "changed"), "%s", err);
    unlink(fa);
    r = reader_resume(&s, cas, NULL, err, sizeof err);
    T_CHECKF(!r && strstr(err, fa), "%s", err);
    session_close(&s);
}

int main(void) {
    char book_a[512], book_b[512];
    if (!t_have_shared_all("models/stories260K.gguf", model, sizeof model) ||
        !t_have_shared_all("data/books/txt/1342-0.txt", book_a, sizeof book_a) ||
        !t_have_shared_all("data/books/txt/1400-0.txt", book_b, sizeof book_b)) return t_summary();
    strcpy(dir, "/tmp/cr-resume-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(fa, sizeof fa, "%s/a.txt", dir);
    snprintf(fb, sizeof fb, "%s/b.txt", dir);
    snprintf(cas, sizeof cas, "%s/s.cas", dir);
    size_t na = t_asan() ? 2500 : 12000, nb = t_asan() ? 2000 : 6000;
    if (t_copy_head(book_a, fa, na) || t_copy_head(book_b, fb, nb)) { printf("cannot copy the books\n"); return 1; }
    opts_init(&opts);
    T_RUN(t_reference);
    if (ref_logits && len_a_tokens) {
        T_RUN(t_cut_in_first_doc);
        T_RUN(t_cut_in_second_doc);
        T_RUN(t_cut_by_stop_and_chain);
    }
    T_RUN(t_changed_document);
    free(ref_logits); docmap_free(&ref_map);
    unlink(fa); unlink(fb); unlink(cas);
    char tmp[320]; snprintf(tmp, sizeof tmp, "%s/s.cas.tmp", dir); unlink(tmp);
    rmdir(dir);
    return t_summary();
}
