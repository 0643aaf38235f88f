/* Snapshot benchmark.
 * 1. A full cascade cache of a real model fed with real text: compression ratio and save /
 *    load MB/s with and without the byte-plane shuffle and at several zlib levels; per-array
 *    ratios (K, V, scores, og); the cost of fsync; resume time against re-reading.
 * 2. Thread scaling on a synthetic cache of a large model's shape (Llama-3-8B: 32 layers x 8
 *    KV heads x head dim 128; fp16 values drawn per channel from Gaussians with log-normal
 *    scales; og and scores from the real cascade plan), where every layer is many blocks.
 *   snapshot [MODEL.gguf [N [TEXT]]]   defaults: stories260K, N = 2048 (S = 64, C = 4),
 *                                      Pride and Prejudice
 * Environment: CR_SNAP_SYNTH_N (synthetic N, default 1024; 0 skips part 2),
 *              CR_SNAP_THREADS (thread counts for part 2, default "1,2,4,8,16" up to the CPUs). */
#include "snapshot.h"
#include "state_io.h"
#include "quant.h"
#include "tokenizer.h"
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t fsize(const char *p) { struct stat sb; return stat(p, &sb) ? 0 : (uint64_t)sb.st_size; }

static int32_t *text_tokens(cr_model *m, const char *path, size_t want, size_t *n_out, const char **src) {
    char err[512];
    int32_t *ids = NULL; size_t n = 0, cap = 0;
    cr_tokenizer *t = tok_load(&m->g, NULL, err, sizeof err);
    FILE *f = t ? fopen(path, "rb") : NULL;
    if (f) {
        char *buf = malloc(1 << 20);
        if (tok_bos(t) >= 0) { ids = malloc(sizeof *ids * 16); cap = 16; ids[n++] = tok_bos(t); }
        size_t k;
        while (n < want && (k = fread(buf, 1, 1 << 16, f)) > 0) {
            /* cut at a newline so that words are not split between reads */
            size_t cut = k;
            while (cut > 0 && buf[cut - 1] != '\n') cut--;
            if (cut == 0) cut = k; else fseek(f, (long)cut - (long)k, SEEK_CUR);
            if (tok_encode(t, buf, cut, &ids, &n, &cap)) break;
        }
        free(buf);
        fclose(f);
    }
    if (t) tok_free(t);
    if (n >= want) { *src = path; *n_out = want; return ids; }
    /* fallback: pseudo-random ids */
    free(ids);
    ids = malloc(sizeof *ids * want);
    uint32_t s = 1;
    for (size_t i = 0; i < want; i++) { s = s * 1664525u + 1013904223u; ids[i] = 3 + (int32_t)((s >> 9) % (uint32_t)(m->hp.n_vocab - 3)); }
    *src = "pseudo-random token ids (text not available)";
    *n_out = want;
    return ids;
}

static int feed(cr_state *s, const int32_t *t, size_t n, char *err) {
    for (size_t i = 0; i < n; i += (size_t)s->max_L) {
        int L = n - i < (size_t)s->max_L ? (int)(n - i) : s->max_L;
        if (forward(s, t + i, L, CR_OUT_NONE, NULL, NULL, err, 512)) return -1;
    }
    return 0;
}

/* Deflate ratio of one kind of array over all heads, with and without the shuffle. */
static void shuffle2(uint8_t *d, const uint8_t *s, size_t n, int e) {
    size_t k = n / (size_t)e;
    for (int b = 0; b < e; b++) for (size_t i = 0; i < k; i++) d[(size_t)b * k + i] = s[i * e + b];
}
static double ratio_of(const uint8_t *p, size_t n, int elem, int shuf, int level) {
    uint8_t *t = malloc(n), *z = malloc(compressBound(n));
    const uint8_t *src = p;
    if (shuf) {          /* 64 KiB pieces, as the snapshot does */
        for (size_t o = 0; o < n; o += 65536) shuffle2(t + o, p + o, n - o < 65536 ? n - o : 65536, elem);
        src = t;
    }
    uLongf zn = compressBound(n);
    compress2(z, &zn, src, n, level);
    free(t); free(z);
    return (double)n / (double)zn;
}

static void array_ratios(const cr_state *s) {
    const hparams *hp = &s->m->hp;
    int N = s->ctrl.cfg.N, D = hp->head_dim, H = hp->n_layer * hp->n_kv;
    size_t kv = (size_t)N * D * 2;
    uint8_t *K = malloc(kv * H), *V = malloc(kv * H), *Sc = malloc((size_t)N * 4 * H), *Og = malloc((size_t)N * 8 * H);
    for (int h = 0; h < H; h++) {
        memcpy(K + kv * h, s->heads[h].k, kv); memcpy(V + kv * h, s->heads[h].v, kv);
        memcpy(Sc + (size_t)N * 4 * h, s->heads[h].score, (size_t)N * 4);
        memcpy(Og + (size_t)N * 8 * h, s->heads[h].og, (size_t)N * 8);
    }
    printf("\nper array (zlib, %d heads), ratio   plain L1  shuffled L1   plain L6  shuffled L6\n", H);
    struct { const char *name; uint8_t *p; size_t n; int e; } a[] = {
        {"K (fp16)", K, kv * H, 2}, {"V (fp16)", V, kv * H, 2}, {"score (fp32)", Sc, (size_t)N * 4 * H, 4}, {"og (int64)", Og, (size_t)N * 8 * H, 8}};
    for (int i = 0; i < 4; i++)
        printf("  %-13s %8.2f MB   %6.3fx     %6.3fx    %6.3fx     %6.3fx\n", a[i].name, a[i].n / 1e6,
               ratio_of(a[i].p, a[i].n, a[i].e, 0, 1), ratio_of(a[i].p, a[i].n, a[i].e, 1, 1),
               ratio_of(a[i].p, a[i].n, a[i].e, 0, 6), ratio_of(a[i].p, a[i].n, a[i].e, 1, 6));
    /* K and V together: the "full fp16 cache" */
    uint8_t *KV = malloc(2 * kv * H);
    memcpy(KV, K, kv * H); memcpy(KV + kv * H, V, kv * H);
    printf("  %-13s %8.2f MB   %6.3fx     %6.3fx    %6.3fx     %6.3fx\n", "K+V (fp16)", 2 * kv * H / 1e6,
           ratio_of(KV, 2 * kv * H, 2, 0, 1), ratio_of(KV, 2 * kv * H, 2, 1, 1), ratio_of(KV, 2 * kv * H, 2, 0, 6), ratio_of(KV, 2 * kv * H, 2, 1, 6));
    free(K); free(V); free(Sc); free(Og); free(KV);
}

typedef struct { double save, load; uint64_t bytes; } result;

/* best of reps: save, then load into a fresh (zeroed) state */
static int measure(const char *path, snap_content *c, const cr_model *m, int reps, result *r, char *err) {
    r->save = r->load = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        if (snapshot_save(path, c, err, 512)) return -1;
        double t1 = now();
        cr_state s; memset(&s, 0, sizeof s);
        snap_content out;
        if (snapshot_load(path, m, &out, &s, err, 512)) return -1;
        double t2 = now();
        snap_content_free(&out);
        state_free(&s);
        if (t1 - t0 < r->save) r->save = t1 - t0;
        if (t2 - t1 < r->load) r->load = t2 - t1;
    }
    r->bytes = fsize(path);
    return 0;
}

/* ---- part 2: a synthetic cache of a large model's shape ---- */

static uint64_t rs = 88172645463325252ull;
static double urand(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) * (1.0 / 9007199254740992.0); }
static double grand(void) { double u = urand(), v = urand(); return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v); }

static int synth_state(cr_state *s, cr_model *fm, int n_layer, int n_kv, int hd, int S, int N, int threads, char *err) {
    memset(fm, 0, sizeof *fm);
    hparams *hp = &fm->hp;
    hp->n_layer = n_layer; hp->n_kv = n_kv; hp->n_head = n_kv; hp->head_dim = hd; hp->dim = n_kv * hd; hp->ffn = hp->dim;
    hp->n_vocab = 32; hp->rope_dim = hd; hp->eps = 1e-5f; hp->rope_base = 10000;
    hp->rope_inv_freq = calloc((size_t)hd / 2, sizeof(float));
    snprintf(fm->name, sizeof fm->name, "synthetic %dx%dx%d", n_layer, n_kv, hd);
    snprintf(fm->g.path, sizeof fm->g.path, "synthetic.gguf");
    fm->fingerprint = 0x5e1f5e1f5e1f5e1full;
    cascade_cfg cfg; cascade_cfg_default(&cfg); cfg.S = S; cfg.N = N; cfg.C = 4;
    const int L = 256;
    if (state_init(s, fm, &cfg, L, threads, err, 512)) return -1;
    /* og and scores from the real insertion plan, dummy K/V */
    uint16_t *kv = calloc((size_t)L * hd, 2);
    float *sc = malloc(sizeof(float) * L);
    int64_t total = (int64_t)S + N + 3 * L;
    for (int64_t t = 0; t < total; t += L) {
        int n = total - t < L ? (int)(total - t) : L;
        if (cascade_plan_chunk(&s->ctrl, n, &s->plan, err, 512)) return -1;
        for (int h = 0; h < n_layer * n_kv; h++) {
            for (int j = 0; j < n; j++) sc[j] = (float)urand();
            cascade_apply(&s->plan, &s->heads[h], kv, kv, (size_t)hd, sc, s->plan.t0);
        }
    }
    free(kv); free(sc);
    /* values: per (head, channel) a Gaussian with a log-normal scale (a few outlier channels) */
    float *scale = malloc(sizeof(float) * hd);
    for (int h = 0; h < n_layer * n_kv; h++) {
        cascade_head *ch = &s->heads[h];
        for (int kvsel = 0; kvsel < 2; kvsel++) {
            for (int d = 0; d < hd; d++) scale[d] = (float)exp(grand() * (kvsel ? 0.5 : 1.0));
            uint16_t *dst[2] = {kvsel ? ch->v : ch->k, kvsel ? ch->sink_v : ch->sink_k};
            int rows[2] = {N, S};
            for (int a = 0; a < 2; a++)
                for (int r = 0; r < rows[a]; r++)
                    for (int d = 0; d < hd; d++) dst[a][(size_t)r * hd + d] = f32_to_f16((float)grand() * scale[d]);
        }
    }
    free(scale);
    return 0;
}

static void part2(int N) {
    char err[512], dir[300], path[400];
    cr_model fm; cr_state st;
    int ncpu = tp_default_threads();
    if (synth_state(&st, &fm, 32, 8, 128, 64, N, ncpu, err)) { fprintf(stderr, "%s\n", err); return; }
    state_meta meta; state_meta_of(&st, &meta);
    uint64_t content = state_layer_bytes(&meta) * 32;
    printf("\n== thread scaling: synthetic cache, 32 layers x 8 KV heads x head dim 128, S=64 N=%d: %.1f MB (%d CPUs)\n",
           N, content / 1e6, ncpu);
    const char *td = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cr-snapbench-XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/synth.cas", dir);
    const char *tl = getenv("CR_SNAP_THREADS") ? getenv("CR_SNAP_THREADS") : "1,2,4,8,16";
    printf("%-8s %10s %8s %12s %12s   (load: into a fresh state with the same thread count)\n", "threads", "file MB", "ratio", "save MB/s", "load MB/s");
    for (const char *q = tl; *q;) {
        int T = atoi(q);
        if (T >= 1 && (T <= ncpu || q == tl)) {
            snap_content c = {.st = &st, .n_threads = T};
            double bs = 1e30, bl = 1e30;
            for (int r = 0; r < 2; r++) {
                double t0 = now();
                if (snapshot_save(path, &c, err, sizeof err)) { fprintf(stderr, "%s\n", err); goto out; }
                double t1 = now();
                cr_state s2; memset(&s2, 0, sizeof s2);
                /* the loader decompresses with the destination state's thread count */
                cascade_cfg cfg = st.ctrl.cfg;
                if (state_init(&s2, &fm, &cfg, st.max_L, T, err, sizeof err)) { fprintf(stderr, "%s\n", err); goto out; }
                double t2 = now();
                snap_content out;
                if (snapshot_load(path, &fm, &out, &s2, err, sizeof err)) { fprintf(stderr, "%s\n", err); goto out; }
                double t3 = now();
                snap_content_free(&out); state_free(&s2);
                if (t1 - t0 < bs) bs = t1 - t0;
                if (t3 - t2 < bl) bl = t3 - t2;
            }
            uint64_t fb = fsize(path);
            printf("%-8d %10.1f %7.3fx %12.1f %12.1f\n", T, fb / 1e6, (double)content / fb, content / bs / 1e6, content / bl / 1e6);
        }
        while (*q && *q != ',') q++;
        if (*q == ',') q++;
    }
out:
    unlink(path);
    rmdir(dir);
    state_free(&st);
    free(fm.hp.rope_inv_freq);
}

int main(int argc, char **argv) {
    const char *sh = getenv("CR_SHARED") ? getenv("CR_SHARED") : "../shared";
    char mp[512], tp_[512], err[512];
    snprintf(mp, sizeof mp, "%s/models/stories260K.gguf", sh);
    snprintf(tp_, sizeof tp_, "%s/data/books/txt/1342-0.txt", sh);
    const char *model = argc > 1 ? argv[1] : mp;
    int N = argc > 2 ? atoi(argv[2]) : 2048, S = 64, C = 4, stride = 256;
    const char *text = argc > 3 ? argv[3] : tp_;
    cr_model m;
    if (model_load(&m, model, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    size_t n; const char *src;
    size_t want = (size_t)S + N + 2 * stride;
    int32_t *tok = text_tokens(&m, text, want, &n, &src);
    cascade_cfg cfg; cascade_cfg_default(&cfg); cfg.S = S; cfg.N = N; cfg.C = C;
    cr_state st;
    int threads = tp_default_threads();
    if (state_init(&st, &m, &cfg, stride, threads, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    double t0 = now();
    if (feed(&st, tok, n, err)) { fprintf(stderr, "%s\n", err); return 1; }
    double t_read = now() - t0;
    state_meta meta; state_meta_of(&st, &meta);
    uint64_t content = state_layer_bytes(&meta) * (uint64_t)meta.n_layer;
    printf("model %s (%d layers x %d KV heads x head dim %d); cache S=%d N=%d C=%d, %d of %d slots filled after %zu tokens of %s\n",
           m.name, m.hp.n_layer, m.hp.n_kv, m.hp.head_dim, S, N, C, cascade_total_stored(&st.ctrl) + st.ctrl.n_sinks, S + N, n, src);
    printf("cache content %.2f MB (fp16 K/V %.2f MB, fp32 scores + int64 og %.2f MB); %d threads\n\n", content / 1e6,
           (double)m.hp.n_layer * m.hp.n_kv * (S + N) * m.hp.head_dim * 4 / 1e6,
           (double)m.hp.n_layer * m.hp.n_kv * N * 12 / 1e6, threads);

    char dir[300], path[400], shm[400];
    const char *td = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cr-snapbench-XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(path, sizeof path, "%s/bench.cas", dir);
    struct { const char *name; int level, no_shuffle, threads, quant; } v[] = {
        {"deflate L1 + shuffle (default)", 0, 0, 0, 0}, {"deflate L1, no shuffle", 1, 1, 0, 0},
        {"deflate L6 + shuffle", 6, 0, 0, 0}, {"deflate L6, no shuffle", 6, 1, 0, 0},
        {"deflate L9 + shuffle", 9, 0, 0, 0}, {"stored (no compression)", -1, 0, 0, 0},
        {"deflate L1 + shuffle, 1 thread", 0, 0, 1, 0},
        {"q8_0 K/V + L1 + shuffle (lossy)", 0, 0, 0, SNAP_QUANT_Q8}, {"q8_0 K/V, stored (lossy)", -1, 0, 0, SNAP_QUANT_Q8}};
    printf("%-32s %10s %8s %12s %12s\n", "variant", "file MB", "ratio", "save MB/s", "load MB/s");
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        snap_content c = {.st = &st, .level = v[i].level, .no_shuffle = v[i].no_shuffle, .n_threads = v[i].threads, .quant = v[i].quant};
        result r;
        if (measure(path, &c, &m, 3, &r, err)) { fprintf(stderr, "%s\n", err); return 1; }
        printf("%-32s %10.3f %7.3fx %12.1f %12.1f\n", v[i].name, r.bytes / 1e6, (double)content / r.bytes,
               content / r.save / 1e6, content / r.load / 1e6);
    }
    /* the share of fsync: the same save on tmpfs (/dev/shm), where fsync costs nothing */
    snprintf(shm, sizeof shm, "/dev/shm/cr-snapbench-%d.cas", (int)getpid());
    snap_content c0 = {.st = &st};
    result rd, rs;
    if (measure(path, &c0, &m, 3, &rd, err) == 0 && measure(shm, &c0, &m, 3, &rs, err) == 0)
        printf("\nsave of the default variant: %.1f ms to %s, %.1f ms to /dev/shm (tmpfs): fsync + disk = %.1f ms\n",
               rd.save * 1e3, dir, rs.save * 1e3, (rd.save - rs.save) * 1e3);
    unlink(shm);
    array_ratios(&st);
    /* resume against re-reading */
    result r;
    if (measure(path, &c0, &m, 3, &r, err)) { fprintf(stderr, "%s\n", err); return 1; }
    printf("\nresume: load the snapshot %.1f ms vs re-read %zu tokens through the model %.1f ms (%.0f tokens/s): %.0fx faster\n",
           r.load * 1e3, n, t_read * 1e3, n / t_read, t_read / r.load);
    unlink(path);
    char tmp[420]; snprintf(tmp, sizeof tmp, "%s.tmp", path); unlink(tmp);
    rmdir(dir);
    state_free(&st);
    free(tok);
    model_free(&m);
    const char *sn = getenv("CR_SNAP_SYNTH_N");
    int synth_n = sn ? atoi(sn) : 1024;
    if (synth_n > 0) part2(synth_n);
    return 0;
}
