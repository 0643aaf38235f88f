/* --generate: continuation of a prompt (the prompt goes through the cache in strides). */
#include "run.h"
#include "session.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int run_generate(const cr_opts *o) {
    cr_session s;
    int r = session_open(&s, o, 1);
    if (r) return r;
    char err[512];
    int32_t *ids = NULL; size_t n = 0, cap = 0;
    if (tok_add_bos(s.tok) || !o->prompt[0]) {
        cap = 16; ids = malloc(cap * sizeof *ids); ids[n++] = tok_bos(s.tok);
    }
    if (o->prompt[0] && tok_encode(s.tok, o->prompt, strlen(o->prompt), &ids, &n, &cap)) {
        fprintf(stderr, "cascade-read: cannot tokenize the prompt\n"); free(ids); session_close(&s); return CR_EXIT_INPUT;
    }
    int nv = s.model.hp.n_vocab;
    float *logits = malloc(sizeof(float) * nv);
    sampler sm;
    sampler_init(&sm, &o->samp, nv);
    for (size_t i = 0; i < n; i++) sampler_accept(&sm, ids[i]);
    if (session_feed(&s, ids, n, logits, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err); r = CR_EXIT_INPUT; goto out;
    }
    double t0 = now_sec();
    int produced = 0;
    int after_bos = n == 1;
    char piece[256];
    for (int i = 0; i < o->n_predict; i++) {
        int32_t t = sampler_sample(&sm, logits);
        if (t == tok_eos(s.tok)) break;
        sampler_accept(&sm, t);
        size_t pn = tok_piece(s.tok, t, after_bos, piece, sizeof piece);
        after_bos = 0;
        fwrite(piece, 1, pn, stdout);
        fflush(stdout);
        produced++;
        if (i + 1 == o->n_predict) break;
        if (forward(&s.st, &t, 1, CR_OUT_LAST, NULL, logits, err, sizeof err)) {
            fprintf(stderr, "\ncascade-read: %s\n", err); r = CR_EXIT_INPUT; goto out;
        }
    }
    double dt = now_sec() - t0;
    if (isatty(1)) putchar('\n');
    if (o->verbose)
        fprintf(stderr, "prefill: %lld tokens in %.3f s (%.1f tokens/s); decode: %d tokens in %.3f s (%.1f tokens/s)\n",
                (long long)s.n_fed, s.t_feed, s.n_fed / (s.t_feed > 0 ? s.t_feed : 1e-9), produced, dt,
                produced / (dt > 0 ? dt : 1e-9));
out:
    sampler_free(&sm);
    free(logits); free(ids);
    session_close(&s);
    return r;
}
