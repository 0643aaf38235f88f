/* Autosave of a GPU cache in the background (app/reader.c): while the snapshot of the cache
 * at K tokens is compressed on a CPU thread, the GPU reads on; resuming from that snapshot
 * and reading to the end must give bit-exactly the next-token logits of one uninterrupted
 * GPU read (a snapshot taken from a cache that moved while it was written would not).
 * Also: a synchronous save right after the autosave waits for it, and both files load.
 * SKIP without a GPU (CI) or without the model. */
#include "t.h"
#include "reader.h"
#include "snapshot.h"
#include "state.h"
#include <time.h>
#include <unistd.h>

static char dir[256], fa[300], cas[300], cas2[300];
static char model[512];
static cr_opts opts;
static const int32_t probe[5] = {1, 100, 200, 300, 400};

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }


static int n_warn;
static void on_warn(void *ud, const char *msg) { (void)ud; n_warn++; printf("     warning: %s\n", msg); }

static int read_all_and_probe(cr_reader *r, float *out, char *err) {
    int k;
    while ((k = reader_read(r, 0, err, 512)) == 1) {}
    if (k != 0) return -1;
    return reader_feed(r, probe, 5, out, err, 512);
}

static void test_background_autosave(void) {
    char err[512] = "";
    cr_session s;
    T_CHECKF(session_open(&s, &opts, 1) == 0, "cannot open the session on the GPU");
    T_CHECKF(s.st.gpu != NULL, "the session is not on the GPU");
    const size_t nv = (size_t)s.model.hp.n_vocab;
    float *ref = malloc(nv * sizeof(float)), *got = malloc(nv * sizeof(float));
    const char *p[1] = {fa};
    /* uninterrupted */
    cr_reader *r = reader_new(&s, NULL, err, sizeof err);
    T_CHECKF(r && !reader_add(r, p, 1, err, sizeof err), "%s", err);
    T_CHECKF(!read_all_and_probe(r, ref, err), "%s", err);
    const uint64_t total = reader_tokens(r);
    reader_free(r);
    session_close(&s);

    /* autosave every K tokens; reading goes on to 1.5 K (one autosave, in flight meanwhile) */
    const uint64_t K = 40 * (uint64_t)opts.stride;
    T_CHECKF(total > 2 * K, "the text gives only %llu tokens", (unsigned long long)total);
    T_CHECK(session_open(&s, &opts, 1) == 0);
    cr_reader_cb cb = {0};
    cb.warn = on_warn; cb.autosave_every = K; cb.autosave_path = cas;
    r = reader_new(&s, &cb, err, sizeof err);
    T_CHECKF(r && !reader_add(r, p, 1, err, sizeof err), "%s", err);
    double t0 = now();
    T_CHECKF(reader_read(r, K + K / 2, err, sizeof err) == 1, "%s", err);
    double t1 = now();
    reader_wait_saves(r);
    double t2 = now();
    T_CHECKF(access(cas, R_OK) == 0, "the autosave did not write %s", cas);
    T_CHECKF(!reader_save(r, cas2, err, sizeof err), "%s", err);        /* a synchronous save at 1.5 K */
    T_CHECK(n_warn == 0);
    reader_free(r);
    session_close(&s);
    printf("     %llu tokens; autosave at %llu in the background: reading to %llu took %.2f s, waiting for the save %.3f s more\n",
           (unsigned long long)total, (unsigned long long)K, (unsigned long long)(K + K / 2), t1 - t0, t2 - t1);

    /* both snapshots resume to the uninterrupted logits */
    const char *files[2] = {cas, cas2};
    for (int i = 0; i < 2; i++) {
        T_CHECK(session_open(&s, &opts, 1) == 0);
        r = reader_resume(&s, files[i], NULL, err, sizeof err);
        T_CHECKF(r, "%s", err);
        T_CHECKF(!read_all_and_probe(r, got, err), "%s", err);
        T_CHECKF(reader_tokens(r) == total, "%s: %llu tokens, uninterrupted %llu", files[i],
                 (unsigned long long)reader_tokens(r), (unsigned long long)total);
        float md = 0;
        for (size_t j = 0; j < nv; j++) md = fmaxf(md, fabsf(got[j] - ref[j]));
        printf("     resumed from the %s save: next-token logits max |diff| %g\n", i ? "synchronous" : "background", md);
        T_CHECKF(!memcmp(got, ref, nv * sizeof(float)), "%s: logits differ (max |d| %g)", files[i], md);
        reader_free(r);
        session_close(&s);
    }
    free(ref); free(got);
}

int main(void) {
    snprintf(model, sizeof model, "%s/models/stories260K.gguf", t_shared());
    char book[512], desc[320];
    snprintf(book, sizeof book, "%s/data/books/txt/1342-0.txt", t_shared());
    if (!state_cuda_available(desc, sizeof desc)) {
        printf("SKIP all: no usable GPU (%s)\n0 passed, 0 failed, 1 skipped\n", desc);
        return 0;
    }
    if (access(model, R_OK) || access(book, R_OK)) {
        printf("SKIP all: %s or %s not found\n0 passed, 0 failed, 1 skipped\n", model, book);
        return 0;
    }
    strcpy(dir, "/tmp/cr-autosave-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(fa, sizeof fa, "%s/a.txt", dir);
    snprintf(cas, sizeof cas, "%s/auto.cas", dir);
    snprintf(cas2, sizeof cas2, "%s/sync.cas", dir);
    if (t_copy_head(book, fa, 200000)) { printf("cannot copy the book\n"); return 1; }
    memset(&opts, 0, sizeof opts);
    opts.model = model; opts.device = "cuda"; opts.threads = 4; opts.n_predict = 16;
    opts.policy = -1; opts.cache_n = 1024; opts.cascades = 4; opts.sinks = 4; opts.stride = 256; opts.beta = -1;
    sampler_cfg_default(&opts.samp);
    T_RUN(test_background_autosave);
    unlink(fa); unlink(cas); unlink(cas2); rmdir(dir);
    return t_summary();
}
