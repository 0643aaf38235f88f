/* make bench: grep-by-question throughput (app/grep.c), MB/s of log text, on the loghub 2k
 * logs (concatenated, CR_BENCH_GREP_MB caps the input, default 0.25) with the story models,
 * on the CPU, and with --gpu on the GPU (SKIP without one).
 *   grep [--gpu] [MODEL.gguf...]   (default: the story models under $CR_SHARED/models) */
#include "grep.h"
#include "session.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *sh = getenv("CR_SHARED") ? getenv("CR_SHARED") : "../shared";
    double cap_mb = getenv("CR_BENCH_GREP_MB") ? atof(getenv("CR_BENCH_GREP_MB")) : 0.25;
    const char *models[16] = {"stories260K.gguf", "TinyStories-656K-Q8_0.gguf"};
    int nm = 2;
    int gpu = argc > 1 && !strcmp(argv[1], "--gpu");
    if (argc > 1 + gpu) { nm = 0; for (int i = 1 + gpu; i < argc && nm < 16; i++) models[nm++] = argv[i]; }
    char desc[320];
    if (gpu && !state_cuda_available(desc, sizeof desc)) { printf("SKIP grep --gpu: %s\n", desc); return 0; }
    if (gpu) printf("device: %s\n", desc);
    char dir[512]; snprintf(dir, sizeof dir, "%s/data/logs/loghub_2k", sh);
    printf("| model | device | input | lines | MB | tokens | seconds | MB/s | tokens/s |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int mi = 0; mi < nm; mi++) {
        char mp[600], err[512];
        if (strchr(models[mi], '/')) snprintf(mp, sizeof mp, "%s", models[mi]);
        else snprintf(mp, sizeof mp, "%s/models/%s", sh, models[mi]);
        cr_model m;
        if (model_load(&m, mp, err, sizeof err)) { printf("| %s | error: %s |\n", models[mi], err); continue; }
        cr_tokenizer *tok = tok_load(&m.g, NULL, err, sizeof err);
        if (!tok) { model_free(&m); continue; }
        grep_opts o; grep_opts_default(&o);
        o.question = "Which requests failed with an error?"; o.k = 20; o.gpu = gpu;
        grep_ctx *g = grep_new(&m, tok, &o, err, sizeof err);
        if (!g) { printf("| %s | error: %s |\n", models[mi], err); tok_free(tok); model_free(&m); continue; }
        DIR *d = opendir(dir);
        struct dirent *e;
        double t0 = now_sec();
        char line[65536];
        uint64_t lines = 0, bytes = 0;
        uint32_t fi = 0;
        while (d && (e = readdir(d)) && bytes < cap_mb * 1e6) {
            size_t nl = strlen(e->d_name);
            if (nl < 5 || strcmp(e->d_name + nl - 4, ".log")) continue;
            char p[1024]; snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            FILE *f = fopen(p, "r");
            if (!f) continue;
            uint64_t ln = 0;
            while (fgets(line, sizeof line, f) && bytes < cap_mb * 1e6) {
                if (grep_line(g, fi, ++ln, line, strlen(line), err, sizeof err) < 0) { printf("error: %s\n", err); break; }
                bytes += strlen(line); lines++;
            }
            fclose(f); fi++;
        }
        if (d) closedir(d);
        grep_finish(g, err, sizeof err);
        double dt = now_sec() - t0;
        uint64_t tokens; grep_stats(g, NULL, NULL, NULL, &tokens);
        printf("| %s | %s | loghub_2k (%u logs) | %llu | %.2f | %llu | %.1f | %.3f | %.0f |\n", models[mi], gpu ? "GPU" : "CPU", fi,
               (unsigned long long)lines, bytes / 1e6, (unsigned long long)tokens, dt, bytes / 1e6 / dt, tokens / dt);
        fflush(stdout);
        grep_free(g); tok_free(tok); model_free(&m);
    }
    return 0;
}
