/* Fuzzing the snapshot loader: seeded mutations (bit flips, byte and word sets, truncation,
 * deleted / duplicated ranges) of real small snapshots of stories260K. 45% of the cases start
 * from a snapshot with stored (uncompressed) blocks and have their CRCs recomputed after
 * mutating, so the mutations reach the parsers and validators behind the checksums (cache
 * control state, og indices, documents, sampler, section layout); 45% from one with deflated
 * blocks; 10% from one whose cache is large enough for blocks cut into byte-plane chunks
 * (codec 2: the chunk table and the mixed stored / deflated chunks).
 * Every load must either succeed (and the state must then run) or fail with a one-line
 * "PATH: problem" error; never crash (ASan + UBSan in make test). CR_ASAN=1: fewer cases.
 * Longer campaigns: CR_FUZZ_ITERS=N, CR_FUZZ_SEED=S, CR_FUZZ_RUN_ALL=1 (run every loaded state). */
#include "t.h"
#include "snapshot.h"
#include <errno.h>
#include <unistd.h>
#include <zlib.h>

static cr_model M;
static char path260[512];
static int have260;          /* the model is there (loaded into M by main) */
static char dir[256], fpath_[600];
static uint8_t *base[3]; static size_t base_n[3];   /* 0: deflate, 1: stored blocks, 2: with plane-chunked blocks */
static int planes_blocks;   /* codec-2 blocks in base[2] */

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27; return (uint32_t)((rs * 0x2545F4914F6CDD1Dull) >> 32); }

static uint32_t g32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t g64(const uint8_t *p) { return (uint64_t)g32(p) | (uint64_t)g32(p + 4) << 32; }
static void p32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* Recompute every CRC the mutated file's structure still lets us find. */
static void reseal(uint8_t *b, size_t n) {
    if (n < 64) return;
    p32(b + 60, (uint32_t)crc32(0, b, 60));
    size_t off = 64;
    while (off + 48 <= n) {
        uint8_t *h = b + off;
        if (memcmp(h, "CRSC", 4)) return;
        uint64_t cs = g64(h + 24);
        uint32_t nb = g32(h + 36);
        size_t p = off + 48;
        uLong crc = crc32(0, Z_NULL, 0);
        for (uint32_t i = 0; i < nb && p + 16 <= n; i++) {
            uint8_t *bh = b + p;
            uint32_t u = g32(bh), c = g32(bh + 4), codec = g32(bh + 12);
            if (c > n - p - 16) break;
            uint32_t bc = g32(bh + 8);
            uint8_t *d = bh + 16;                  /* the cache section's control record has its own CRC */
            if (g32(h + 4) == 2 && i == 0 && codec == 0 && c >= 40 && !memcmp(d + 28, "CRCC", 4)) {
                uint32_t sz = g32(d + 36);
                if (sz >= 4 && sz <= c - 28) p32(d + 28 + sz - 4, (uint32_t)crc32(0, d + 28, sz - 4));
            }
            if (codec == 0 && c == u) { bc = (uint32_t)crc32(0, bh + 16, c); p32(bh + 8, bc); }
            crc = crc32_combine(crc, bc, (z_off_t)u);
            p += 16 + (size_t)c;
        }
        p32(h + 32, (uint32_t)crc);
        p32(h + 44, (uint32_t)crc32(0, h, 44));
        if (cs > n - off - 48) return;
        off += 48 + (size_t)cs;
    }
}

static size_t pick_pos(size_t n) {
    uint32_t k = rnd() % 10;
    if (k < 4 || n < 2200) return rnd() % n;
    if (k < 7) return rnd() % 700;                 /* header, model, cache sections */
    return n - 1 - rnd() % 1600;                   /* sampler, documents, blobs, end */
}

static size_t mutate(uint8_t *b, size_t n, size_t cap) {
    int m = 1 + (int)(rnd() % 4);
    for (int i = 0; i < m && n > 0; i++) {
        size_t at = pick_pos(n);
        switch (rnd() % 8) {
        case 0: case 1: b[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
        case 2: b[at] = (uint8_t)rnd(); break;
        case 3: b[at] = (rnd() & 1) ? 0 : 0xFF; break;
        case 4: {                                        /* a 32/64-bit field set to an edge value */
            static const uint64_t vals[] = {0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu,
                                            0x100000000ull, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull};
            uint64_t v = vals[rnd() % (sizeof vals / sizeof *vals)];
            size_t w = (rnd() & 1) ? 8 : 4;
            at &= ~(size_t)3;
            for (size_t k = 0; k < w && at + k < n; k++) b[at + k] = (uint8_t)(v >> (8 * k));
            break;
        }
        case 5: n = at; break;                           /* truncate */
        case 6: {                                        /* delete a range */
            size_t len = 1 + rnd() % 64;
            if (at + len > n) len = n - at;
            memmove(b + at, b + at + len, n - at - len);
            n -= len;
            break;
        }
        case 7: {                                        /* duplicate a range */
            size_t len = 1 + rnd() % 64;
            if (at + len > n) len = n - at;
            if (n + len > cap) break;
            memmove(b + at + len, b + at, n - at);
            n += len;
            break;
        }
        }
    }
    return n;
}

static void test_fuzz_loader(void) {
    if (!have260) T_SKIP_MISSING(path260);
    int iters = t_asan() ? 1000 : 3000;
    const char *e = getenv("CR_FUZZ_ITERS"), *sd = getenv("CR_FUZZ_SEED");
    if (e && atoi(e) > 0) iters = atoi(e);
    if (sd) { rs += strtoull(sd, NULL, 0) * 0xD1B54A32D192ED03ull; if (!rs) rs = 1; }
    int run_all = getenv("CR_FUZZ_RUN_ALL") != NULL;
    size_t cap = base_n[0];
    for (int k = 1; k < 3; k++) if (base_n[k] > cap) cap = base_n[k];
    cap += 4096;
    T_CHECKF(planes_blocks > 0, "the large seed snapshot has no plane-chunked (codec 2) block");
    uint8_t *b = malloc(cap);
    cr_state st; memset(&st, 0, sizeof st);
    char err[512];
    int ok = 0, fail = 0, ran = 0, n_planes = 0;
    int kinds[6] = {0};       /* truncated, corrupt, not a snapshot, version, model, other */
    FILE *devnull = fopen("/dev/null", "w");
    for (int it = 0; it < iters; it++) {
        const uint32_t w = rnd() % 20;
        const int which = w < 9 ? 0 : w < 18 ? 1 : 2;
        n_planes += which == 2;
        memcpy(b, base[which], base_n[which]);
        size_t n = mutate(b, base_n[which], cap);
        if (which == 1 && rnd() % 10 < 8) reseal(b, n);
        FILE *f = fopen(fpath_, "wb");
        T_CHECK(f && fwrite(b, 1, n, f) == n && fclose(f) == 0);
        snap_content out;
        err[0] = 0;
        if (snapshot_load(fpath_, &M, &out, &st, err, sizeof err) == 0) {
            ok++;
            T_CHECKF(out.st == &st && st.m == &M, "iteration %d: bad state after load", it);
            if (ok % 8 == 1 || run_all) {  /* the loaded state runs */
                int32_t tok = 5;
                float *lg = malloc(sizeof(float) * (size_t)M.hp.n_vocab);
                T_CHECKF(forward(&st, &tok, 1, CR_OUT_LAST, NULL, lg, err, sizeof err) == 0 || err[0], "iteration %d", it);
                free(lg);
                ran++;
            }
            snap_content_free(&out);
        } else {
            fail++;
            if (getenv("CR_FUZZ_VERBOSE")) printf("     %s\n", err + strlen(fpath_) + 2);
            T_CHECKF(err[0] && !strchr(err, '\n') && !strncmp(err, fpath_, strlen(fpath_)), "iteration %d: error '%s'", it, err);
            kinds[strstr(err, "truncated") ? 0 : strstr(err, "corrupt") ? 1 : strstr(err, "not a cascade") ? 2 :
                  strstr(err, "version") ? 3 : strstr(err, "model") ? 4 : 5]++;
        }
        if (it % 4 == 0) snapshot_info(fpath_, devnull);
    }
    fclose(devnull);
    printf("     %d mutated snapshots (%d of the one with %d plane-chunked blocks): %d loaded (%d run afterwards), %d refused (truncated %d, corrupt %d, not a snapshot %d, version %d, model %d, other %d)\n",
           iters, n_planes, planes_blocks, ok, ran, fail, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4], kinds[5]);
    state_free(&st);
    free(b);
}

/* Loads the model and makes the seed snapshots; 0 ok, else prints a FAIL line. */
static int setup(const char *path) {
    char err[512], p[600];
    if (model_load(&M, path, err, sizeof err)) { printf("FAIL load: %s\n", err); return 1; }
    const char *td = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cr-fuzz-XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp: %s\n", strerror(errno)); return 1; }
    snprintf(fpath_, sizeof fpath_, "%s/fuzz.cas", dir);
    /* the seed snapshots */
    cascade_cfg c; cascade_cfg_default(&c); c.S = 4; c.N = 64; c.C = 4;
    cr_state st;
    if (state_init(&st, &M, &c, 16, 1, err, sizeof err)) { printf("FAIL state: %s\n", err); return 1; }
    int32_t t[200];
    uint32_t s = 1;
    for (int i = 0; i < 200; i++) { s = s * 1664525u + 1013904223u; t[i] = 3 + (int32_t)((s >> 9) % 509); }
    for (int i = 0; i < 200; i += 16)
        if (forward(&st, t + i, 200 - i < 16 ? 200 - i : 16, CR_OUT_NONE, NULL, NULL, err, sizeof err)) { printf("FAIL forward: %s\n", err); return 1; }
    sampler sp; sampler_cfg sc; sampler_cfg_default(&sc); sc.rep_last_n = 8;
    sampler_init(&sp, &sc, M.hp.n_vocab);
    for (int i = 0; i < 5; i++) sampler_accept(&sp, t[i]);
    snap_doc d[2] = {{.path = "a.txt", .title = "A", .size = 1000, .offset = 600, .tokens = 150},
                     {.path = "https://x.org/b", .size = 0, .offset = 99, .tokens = 50, .tok_first = 150}};
    snprintf(d[0].hash, SNAP_HASH_MAX, "crc32+adler32:00112233aabbccdd");
    uint8_t blob[200];
    for (int i = 0; i < 200; i++) blob[i] = (uint8_t)(i * 7);
    snap_content sc0 = {.st = &st, .docs = d, .n_docs = 2, .docmap = blob, .docmap_len = 120, .conv = blob + 50, .conv_len = 150,
                        .extra = blob, .extra_len = 9, .samp = &sp};
    for (int k = 0; k < 2; k++) {
        sc0.level = k ? -1 : 0;
        snprintf(p, sizeof p, "%s/seed%d.cas", dir, k);
        if (snapshot_save(p, &sc0, err, sizeof err)) { printf("FAIL save: %s\n", err); return 1; }
        FILE *f = fopen(p, "rb");
        fseek(f, 0, SEEK_END); base_n[k] = (size_t)ftell(f); fseek(f, 0, SEEK_SET);
        base[k] = malloc(base_n[k]);
        if (fread(base[k], 1, base_n[k], f) != base_n[k]) { printf("FAIL read seed\n"); return 1; }
        fclose(f);
        unlink(p);
    }
    /* the third seed: a cache large enough (N = 512) for its layer blocks to be cut into chunks */
    state_free(&st);
    c.N = 512;
    if (state_init(&st, &M, &c, 64, 1, err, sizeof err)) { printf("FAIL state: %s\n", err); return 1; }
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 200; i += 64)
            if (forward(&st, t + i, 200 - i < 64 ? 200 - i : 64, CR_OUT_NONE, NULL, NULL, err, sizeof err)) { printf("FAIL forward: %s\n", err); return 1; }
    sc0.st = &st; sc0.level = 0;
    snprintf(p, sizeof p, "%s/seed2.cas", dir);
    if (snapshot_save(p, &sc0, err, sizeof err)) { printf("FAIL save: %s\n", err); return 1; }
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END); base_n[2] = (size_t)ftell(f); fseek(f, 0, SEEK_SET);
    base[2] = malloc(base_n[2]);
    if (fread(base[2], 1, base_n[2], f) != base_n[2]) { printf("FAIL read seed\n"); return 1; }
    fclose(f);
    unlink(p);
    for (size_t off = 64; off + 48 <= base_n[2];) {   /* count the codec-2 blocks */
        const uint8_t *h = base[2] + off;
        if (memcmp(h, "CRSC", 4)) break;
        uint64_t cs = g64(h + 24);
        uint32_t nb = g32(h + 36);
        size_t q = off + 48;
        for (uint32_t i = 0; i < nb && q + 16 <= base_n[2]; i++) {
            planes_blocks += g32(base[2] + q + 12) == 2;
            q += 16 + (size_t)g32(base[2] + q + 4);
        }
        off += 48 + (size_t)cs;
    }
    sampler_free(&sp);
    state_free(&st);
    return 0;
}

int main(void) {
    /* the model missing: the case SKIPs; there but not loadable: FAIL */
    have260 = t_have_shared("models/stories260K.gguf", path260, sizeof path260);
    if (have260 && setup(path260)) return 1;
    T_RUN(test_fuzz_loader);
    if (have260) {
        unlink(fpath_);
        rmdir(dir);
        free(base[0]); free(base[1]); free(base[2]);
        model_free(&M);
    }
    return t_summary();
}
