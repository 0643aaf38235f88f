/* --perplexity, --tokenize / --detokenize, --info. */
#include "run.h"
#include "session.h"
#include "chat.h"
#include "extract.h"
#include "ingest.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int run_tokenize(const cr_opts *o) {
    char err[1024];
    int r = o->mode == MODE_TOKENIZE ? tok_cli_tokenize_ex(o->model, o->tokenizer, o->text, stdout, err, sizeof err)
                                     : tok_cli_detokenize_ex(o->model, o->tokenizer, o->text, stdout, err, sizeof err);
    if (r) { fprintf(stderr, "cascade-read: %s\n", err); return CR_EXIT_INPUT; }
    return 0;
}

int run_info(const cr_opts *o) {
    cr_session s;
    int r = session_open(&s, o, 1);
    if (r) return r;
    const hparams *hp = &s.model.hp;
    const cascade_cfg *c = &s.st.ctrl.cfg;
    printf("model\t%s\narch\t%s\nlayers\t%d\ndim\t%d\nheads\t%d\nkv_heads\t%d\nhead_dim\t%d\nffn\t%d\nvocab\t%d\ncontext\t%d\n"
           "rope_base\t%g\nrope_dim\t%d\nweights_bytes\t%zu\npolicy\t%s\nsinks\t%d\ncache\t%d\ncascades\t%d\nstride\t%d\nbeta\t%.9g\ncache_bytes\t%zu\n",
           s.model.name, hp->arch == CR_ARCH_QWEN2 ? "qwen2" : "llama", hp->n_layer, hp->dim, hp->n_head, hp->n_kv,
           hp->head_dim, hp->ffn, hp->n_vocab, hp->n_ctx, hp->rope_base, hp->rope_dim, s.model.weight_bytes,
           cascade_policy_name(c->policy), c->S, c->N, c->C, s.stride, c->beta, s.st.cache_bytes);
    chat_template ct; char err[512];
    if (chat_template_detect(s.tok, &s.model.g, o->chat_template, &ct, err, sizeof err) == 0) {
        printf("chat_template\t%s\nstop_tokens\t", chat_kind_name(ct.kind));
        for (int i = 0; i < ct.n_stop; i++) printf("%s%d", i ? " " : "", ct.stop[i]);
        printf("\n");
    } else {
        printf("chat_template\tnone (%s)\n", err);
    }
    session_close(&s);
    return 0;
}

int run_extract(const cr_opts *o) {
    char err[1024];
    if (o->n_inputs == 0) { fprintf(stderr, "cascade-read: --extract needs at least one FILE, URL or -\n"); return CR_EXIT_USAGE; }
    if (cr_extract(o->inputs, o->n_inputs, o->map, !o->no_strip, stdout, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err); return CR_EXIT_INPUT;
    }
    return 0;
}

/* Streams the document (any format the ingest layer reads) through the cache in
 * strides; token j predicts token j+1. */
int run_perplexity(const cr_opts *o) {
    cr_session s;
    int r = session_open(&s, o, 1);
    if (r) return r;
    char err[1024];
    cr_ingest_opts io; cr_ingest_opts_default(&io);
    io.strip_gutenberg = !o->no_strip; io.headers = 0;
    const char *paths[1] = {o->ppl_file};
    cr_ingest *in = cr_ingest_open(paths, 1, &io, err, sizeof err);
    if (!in) { fprintf(stderr, "cascade-read: %s\n", err); session_close(&s); return CR_EXIT_INPUT; }
    size_t cap = 4096, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    float *nll = malloc(sizeof(float) * (size_t)s.stride);
    ids[n++] = tok_bos(s.tok);
    double total = 0; int64_t counted = 0;
    int eof = 0;
    double t0 = now_sec();
    while (!eof || n > 1) {
        if (!eof && n < (size_t)s.stride + 1) {
            cr_chunk c;
            int k = cr_ingest_next(in, &c, err, sizeof err);
            if (k < 0) { fprintf(stderr, "cascade-read: %s\n", err); r = CR_EXIT_INPUT; break; }
            if (k == 0) { eof = 1; continue; }
            if (tok_encode(s.tok, c.text, c.len, &ids, &n, &cap)) { fprintf(stderr, "cascade-read: %s: cannot tokenize\n", o->ppl_file); r = CR_EXIT_INPUT; break; }
            continue;
        }
        int L = n - 1 < (size_t)s.stride ? (int)(n - 1) : s.stride;
        if (o->max_tokens > 0 && counted + L > o->max_tokens) L = (int)(o->max_tokens - counted);
        if (L <= 0) break;
        if (forward(&s.st, ids, L, CR_OUT_NLL, ids + 1, nll, err, sizeof err)) { fprintf(stderr, "cascade-read: %s: %s\n", o->ppl_file, err); r = CR_EXIT_INPUT; break; }
        for (int j = 0; j < L; j++) total += nll[j];
        counted += L;
        memmove(ids, ids + L, (n - (size_t)L) * sizeof *ids); n -= (size_t)L;
        if (!o->quiet && isatty(2)) fprintf(stderr, "\r%lld tokens, ppl %.4f", (long long)counted, exp(total / counted));
    }
    if (!o->quiet && isatty(2)) fputc('\n', stderr);
    double dt = now_sec() - t0;
    if (!r) {
        printf("tokens\t%lld\nperplexity\t%.6f\n", (long long)counted, counted ? exp(total / counted) : NAN);
        if (o->verbose) fprintf(stderr, "%.1f tokens/s\n", counted / (dt > 0 ? dt : 1e-9));
    }
    cr_ingest_close(in); free(ids); free(nll);
    session_close(&s);
    return r;
}
