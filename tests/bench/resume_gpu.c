/* Resume against re-reading on the GPU (issue 7): a random-weight model of a real shape
 * (Llama-3.2-1B or Llama-3.1-8B, bf16, weights filled on the GPU) reads T pseudo-random
 * tokens through the strided prefill into a cascade cache (S = 64, N = 16384, C = 4, stride
 * 4096) on the GPU; the cache is saved as a snapshot (app/snapshot.c, default settings), then
 * loaded into a fresh state whose GPU copy is uploaded. Both sides exclude what they share
 * (the model's setup on the GPU). The next chunk's logits after resuming are compared with
 * those of the state that read the tokens.
 *   resume_gpu [--shape 1b|8b] [--tokens T] [--dir DIR]     (defaults: 1b, 1048576, $TMPDIR) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CR_CUDA
int main(void) { printf("SKIP resume_gpu: built without CUDA (CUDA=0)\n"); return 0; }
#else
#include "cuda_state.h"
#include "snapshot.h"
#include "state_io.h"
#include "state.h"
#include "threadpool.h"
#include "fake_model.h"
#include <sys/stat.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static int attach_gpu(cr_state *s, const cr_model *m, char *err, size_t n) {
    cuda_opts o; cuda_opts_default(&o);
    o.random_weights = 1;
    s->gpu = cuda_state_create_ex(m, &s->ctrl, s->max_L, &o, err, n);
    return s->gpu ? 0 : -1;
}

static void fill_tokens(int32_t *t, int n, uint32_t *seed, int V) {
    for (int i = 0; i < n; i++) { *seed = *seed * 1664525u + 1013904223u; t[i] = (int32_t)((*seed >> 8) % (uint32_t)V); }
}

int main(int argc, char **argv) {
    const shape *sh = &SH_1B;
    int64_t T = 1 << 20;
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) { i++; sh = !strcmp(argv[i], "8b") ? &SH_8B : &SH_1B; }
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) T = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    }
    char desc[320], err[600];
    if (!cuda_device_info(desc, sizeof desc)) { printf("SKIP resume_gpu: %s\n", desc); return 0; }
    cr_model m;
    fake_model(&m, sh, GGML_TYPE_BF16);
    cascade_cfg cfg; cascade_cfg_default(&cfg);
    cfg.S = 64; cfg.N = 16384; cfg.C = 4;
    const int stride = 4096, threads = tp_default_threads();
    cr_state a, b;
    memset(&a, 0, sizeof a); memset(&b, 0, sizeof b);
    double t0 = now();
    if (state_init(&a, &m, &cfg, stride, threads, err, sizeof err) || attach_gpu(&a, &m, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    double t_setup = now() - t0;
    printf("model %s on %s; cache S=%d N=%d C=%d, stride %d; %lld tokens; %d CPU threads\n",
           m.name, desc, cfg.S, cfg.N, cfg.C, stride, (long long)T, threads);
    int32_t *tok = malloc(sizeof(int32_t) * stride);
    uint32_t seed = 11;
    double r0 = now();
    for (int64_t done = 0; done < T; done += stride) {
        int L = T - done < stride ? (int)(T - done) : stride;
        fill_tokens(tok, L, &seed, sh->V);
        if (forward(&a, tok, L, CR_OUT_NONE, NULL, NULL, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    }
    if (cuda_sync(a.gpu, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    double t_read = now() - r0;

    char path[700];
    snprintf(path, sizeof path, "%s/cr-resume-bench-%d.cas", dir, (int)getpid());
    double s0 = now();
    if (state_sync_host(&a, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    double s1 = now();
    snap_content c; memset(&c, 0, sizeof c);
    c.st = &a;
    if (snapshot_save(path, &c, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    double s2 = now();
    struct stat sb; stat(path, &sb);
    state_meta meta; state_meta_of(&a, &meta);
    double content = (double)state_layer_bytes(&meta) * meta.n_layer;

    /* resume: a fresh state of the same model, its GPU side set up (as a re-read needs too) */
    if (state_init(&b, &m, &cfg, stride, threads, err, sizeof err) || attach_gpu(&b, &m, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    double b1 = now();
    snap_content out;
    if (snapshot_load(path, &m, &out, &b, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    double b2 = now();
    if (state_sync_device(&b, err, sizeof err) || cuda_sync(b.gpu, err, sizeof err)) { printf("error: %s\n", err); return 1; }
    double b3 = now();
    snap_content_free(&out);

    /* the next chunk on both: the resumed cache must give the same logits */
    fill_tokens(tok, 256, &seed, sh->V);
    float *la = malloc(sizeof(float) * sh->V), *lb = malloc(sizeof(float) * sh->V);
    if (forward(&a, tok, 256, CR_OUT_LAST, NULL, la, err, sizeof err) || forward(&b, tok, 256, CR_OUT_LAST, NULL, lb, err, sizeof err)) {
        printf("error: %s\n", err); return 1;
    }
    double md = 0, mx = 0;
    for (int i = 0; i < sh->V; i++) {
        double d = fabs((double)la[i] - lb[i]);
        if (d > md || d != d) md = d;
        if (fabs(la[i]) > mx) mx = fabs(la[i]);
    }
    double t_resume = (b2 - b1) + (b3 - b2);
    printf("| step | seconds | note |\n|---|---:|---|\n");
    printf("| model setup on the GPU (both sides) | %.2f | random bf16 weights |\n", t_setup);
    printf("| re-read %lld tokens | %.2f | %.0f tokens/s |\n", (long long)T, t_read, T / t_read);
    printf("| save: cache GPU -> host | %.3f | |\n", s1 - s0);
    printf("| save: snapshot_save | %.3f | %.0f MB of cache -> %.0f MB file (%.2fx), %.0f MB/s |\n", s2 - s1, content / 1e6,
           sb.st_size / 1e6, content / sb.st_size, content / (s2 - s1) / 1e6);
    printf("| resume: snapshot_load | %.3f | %.0f MB/s |\n", b2 - b1, content / (b2 - b1) / 1e6);
    printf("| resume: cache host -> GPU | %.3f | |\n", b3 - b2);
    printf("| **resume total** | **%.3f** | **%.0fx faster than re-reading** |\n", t_resume, t_read / t_resume);
    printf("next chunk's logits, resumed vs uninterrupted: max |diff| %.3g (max |logit| %.3g)%s\n", md, mx,
           md == 0 ? ": identical" : "");
    unlink(path);
    free(la); free(lb); free(tok);
    state_free(&a); state_free(&b);
    free_fake(&m);
    return md == md && md <= 1e-3 * (mx + 1) ? 0 : 1;
}
#endif
