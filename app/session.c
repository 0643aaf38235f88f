#include "session.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

double now_sec(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int session_wants_gpu(const cr_opts *o) {
    char desc[256];
    return strcmp(o->device, "cuda") == 0 || (strcmp(o->device, "auto") == 0 && state_cuda_available(desc, sizeof desc) > 0);
}

int session_open(cr_session *s, const cr_opts *o, int with_state) {
    memset(s, 0, sizeof *s);
    s->o = o;
    char err[1024];
    if (strcmp(o->device, "cuda") == 0) {
#ifndef CR_CUDA
        fprintf(stderr, "cascade-read: this build has no CUDA support (rebuild with nvcc on PATH, or use --device cpu)\n");
        return CR_EXIT_MODEL;
#endif
    }
    int r = with_state ? model_load(&s->model, o->model, err, sizeof err) : model_open_vocab(&s->model, o->model, err, sizeof err);
    if (r) { fprintf(stderr, "cascade-read: %s\n", err); return CR_EXIT_INPUT; }
    s->tok = tok_load(&s->model.g, o->tokenizer, err, sizeof err);
    if (!s->tok) { fprintf(stderr, "cascade-read: %s\n", err); model_free(&s->model); return CR_EXIT_INPUT; }
    if (!with_state) return 0;
    if (tok_n_vocab(s->tok) != s->model.hp.n_vocab)
        fprintf(stderr, "cascade-read: warning: %s: vocabulary has %d tokens but the embedding has %d rows\n",
                o->model, tok_n_vocab(s->tok), s->model.hp.n_vocab);
    cascade_cfg cfg;
    if (cli_cache_cfg(o, s->model.hp.n_ctx, &cfg, &s->stride, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err); session_close(s); return CR_EXIT_USAGE;
    }
    if (state_init(&s->st, &s->model, &cfg, s->stride, o->threads, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err); session_close(s); return CR_EXIT_MODEL;
    }
    s->has_state = 1;
    /* --device: cuda must work; auto takes the GPU when one is usable; --gpus N: N of them */
    if (o->gpus > 1 && !session_wants_gpu(o)) {
        fprintf(stderr, "cascade-read: --gpus %d needs --device cuda (or auto with a usable GPU)\n", o->gpus);
        session_close(s); return CR_EXIT_USAGE;
    }
    if (session_wants_gpu(o) && state_use_cuda_ranks(&s->st, o->gpus > 1 ? o->gpus : 1, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err); session_close(s); return CR_EXIT_MODEL;
    }
    if (o->verbose) fprintf(stderr, "device: %s\n", state_device_name(&s->st));
    if (o->verbose)
        fprintf(stderr, "model %s: %d layers, dim %d, %d/%d heads, vocab %d, context %d; cache: %s S=%d N=%d C=%d stride %d beta %.9g; %d threads\n",
                s->model.name, s->model.hp.n_layer, s->model.hp.dim, s->model.hp.n_head, s->model.hp.n_kv,
                s->model.hp.n_vocab, s->model.hp.n_ctx, cascade_policy_name(cfg.policy), cfg.S, cfg.N, s->st.ctrl.cfg.C,
                s->stride, cfg.beta, tp_threads(s->st.tp));
    return 0;
}

void session_close(cr_session *s) {
    if (s->has_state) state_free(&s->st);
    if (s->tok) tok_free(s->tok);
    model_free(&s->model);
    memset(s, 0, sizeof *s);
}

int session_feed(cr_session *s, const int32_t *tok, size_t n, float *last_logits, char *err, size_t errlen) {
    double t0 = now_sec();
    for (size_t i = 0; i < n; i += (size_t)s->stride) {
        int L = n - i < (size_t)s->stride ? (int)(n - i) : s->stride;
        int last = i + (size_t)L == n;
        if (forward(&s->st, tok + i, L, last && last_logits ? CR_OUT_LAST : CR_OUT_NONE, NULL, last ? last_logits : NULL, err, errlen))
            return -1;
    }
    s->t_feed += now_sec() - t0; s->n_fed += (int64_t)n;
    return 0;
}
