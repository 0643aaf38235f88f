/* make bench: grep-by-question throughput on the CPU (app/grep.c), MB/s of log text, on the
 * loghub 2k logs (concatenated, CR_BENCH_GREP_MB caps the input, default 0.25) with the story
 * models. */
#include "grep.h"
#include "session.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *sh = getenv("CR_SHARED") ? getenv("CR_SHARED") : "../shared";
    double cap_mb = getenv("CR_BENCH_GREP_MB") ? atof(getenv("CR_BENCH_GREP_MB")) : 0.25;
    const char *models[2] = {"stories260K.gguf", "TinyStories-656K-Q8_0.gguf"};
    (void)argc; (void)argv;
    char dir[512]; snprintf(dir, sizeof dir, "%s/data/logs/loghub_2k", sh);
    printf("| model | input | lines | MB | tokens | seconds | MB/s | tokens/s |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int mi = 0; mi < 2; mi++) {
        char mp[600], err[512];
        snprintf(mp, sizeof mp, "%s/models/%s", sh, models[mi]);
        cr_model m;
        if (model_load(&m, mp, err, sizeof err)) { printf("| %s | error: %s |\n", models[mi], err); continue; }
        cr_tokenizer *tok = tok_load(&m.g, NULL, err, sizeof err);
        if (!tok) { model_free(&m); continue; }
        grep_opts o; grep_opts_default(&o);
        o.question = "Which requests failed with an error?"; o.k = 20;
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
        printf("| %s | loghub_2k (%u logs) | %llu | %.2f | %llu | %.1f | %.3f | %.0f |\n", models[mi], fi,
               (unsigned long long)lines, bytes / 1e6, (unsigned long long)tokens, dt, bytes / 1e6 / dt, tokens / dt);
        fflush(stdout);
        grep_free(g); tok_free(tok); model_free(&m);
    }
    return 0;
}
