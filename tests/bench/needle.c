/* Needle recall in miniature (make eval): a sentence with a rare name is planted
 * early in a long stream of stories; the sentence is repeated at distances of 1x to
 * 32x the cache size N and the log-probability of the name's tokens is measured,
 * for the sink policy (StreamingLLM) against the cascade at equal N.
 *   needle MODEL.gguf [N]            filler = the model's own sampled stories */
#include "state.h"
#include "sampler.h"
#include "tokenizer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int append(cr_tokenizer *t, const char *s, int32_t **ids, size_t *n, size_t *cap) {
    return tok_encode(t, s, strlen(s), ids, n, cap);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: needle MODEL.gguf [N]\n"); return 2; }
    int N = argc > 2 ? atoi(argv[2]) : 256, S = 4, C = 4, L = 64;
    cr_model m; char err[512];
    if (model_load(&m, argv[1], err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    cr_tokenizer *tk = tok_load(&m.g, NULL, err, sizeof err);
    if (!tk) { fprintf(stderr, "%s\n", err); return 1; }
    int V = m.hp.n_vocab;
    /* filler: stories sampled from the model (temperature 1, fixed seed), 33 N tokens */
    size_t need = (size_t)33 * N + 64, nf = 0, capf = need + 64;
    int32_t *filler = malloc(capf * sizeof *filler);
    {
        cascade_cfg c; cascade_cfg_default(&c); c.S = S; c.N = N; c.C = C;
        cr_state s; state_init(&s, &m, &c, L, 0, err, sizeof err);
        sampler_cfg sc; sampler_cfg_default(&sc); sc.temp = 1.0f; sc.top_k = 0; sc.top_p = 1; sc.min_p = 0.02f; sc.seed = 11;
        sampler sm; sampler_init(&sm, &sc, V);
        float *lg = malloc(sizeof(float) * V);
        int32_t t = tok_bos(tk);
        while (nf < need) {
            forward(&s, &t, 1, CR_OUT_LAST, NULL, lg, err, sizeof err);
            t = sampler_sample(&sm, lg);
            if (t == tok_eos(tk) || t == tok_bos(tk)) t = tok_bos(tk);   /* story boundary */
            else filler[nf++] = t;
        }
        free(lg); sampler_free(&sm); state_free(&s);
    }
    const char *name = " Zorbina";
    const char *intro = " There was a girl named";
    int32_t *name_ids = NULL; size_t nn = 0, cn = 0;
    append(tk, name, &name_ids, &nn, &cn);
    printf("Needle recall: %s, N=%d S=%d C=%d stride %d; log p of the name's %zu tokens when the\n"
           "planted sentence \"%s%s.\" is repeated at a distance of d tokens (higher is better;\n"
           "without the first sentence in context the name is close to impossible).\n\n",
           m.name, N, S, C, L, nn, intro, name);
    printf("| distance | d/N | sink log p | cascade log p |\n|---:|---:|---:|---:|\n");
    float *nll = malloc(sizeof(float) * 4096);
    for (int mult = 1; mult <= 32; mult *= 2) {
        size_t d = (size_t)mult * N;
        double res[2];
        for (int p = 0; p < 2; p++) {
            int32_t *ids = NULL; size_t n = 0, cap = 0;
            ids = malloc(sizeof *ids * 16); cap = 16; ids[n++] = tok_bos(tk);
            append(tk, "Once upon a time, there was a girl named Zorbina. Zorbina was kind.", &ids, &n, &cap);
            for (size_t i = 0; i < d; i++) { if (n == cap) { cap *= 2; ids = realloc(ids, cap * sizeof *ids); } ids[n++] = filler[i]; }
            append(tk, intro, &ids, &n, &cap);
            size_t q = n;                     /* name tokens start here */
            for (size_t i = 0; i < nn; i++) { if (n == cap) { cap *= 2; ids = realloc(ids, cap * sizeof *ids); } ids[n++] = name_ids[i]; }
            cascade_cfg c; cascade_cfg_default(&c); c.S = S; c.N = N; c.C = p ? C : 1; c.policy = p ? CR_POLICY_CASCADE : CR_POLICY_SINK;
            cr_state s; state_init(&s, &m, &c, L, 0, err, sizeof err);
            double lp = 0;
            for (size_t i = 0; i + 1 < n; i += (size_t)L) {
                int len = (int)(n - 1 - i < (size_t)L ? n - 1 - i : (size_t)L);
                forward(&s, ids + i, len, CR_OUT_NLL, ids + i + 1, nll, err, sizeof err);
                for (int j = 0; j < len; j++) if (i + j + 1 >= q) lp -= nll[j];
            }
            res[p] = lp;
            state_free(&s); free(ids);
        }
        printf("| %zu | %d | %.2f | %.2f |\n", d, mult, res[0], res[1]);
        fflush(stdout);
    }
    free(nll); free(filler); free(name_ids); tok_free(tk); model_free(&m);
    return 0;
}
