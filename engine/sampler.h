/* Token selection: greedy, temperature, top-k, top-p, min-p, repetition
 * penalty, seeded RNG (deterministic for a given seed). */
#ifndef CR_SAMPLER_H
#define CR_SAMPLER_H
#include <stdint.h>

typedef struct {
    float temp;          /* 0 = greedy */
    int top_k;           /* 0 = off */
    float top_p;         /* 1 = off */
    float min_p;         /* 0 = off */
    float rep_penalty;   /* 1 = off */
    int rep_last_n;      /* tokens considered for the penalty */
    uint64_t seed;
} sampler_cfg;

typedef struct {
    sampler_cfg cfg;
    uint64_t rng;        /* xorshift64* state */
    int n_vocab;
    int32_t *hist;       /* [rep_last_n] ring of recent tokens */
    int hist_n, hist_pos;
    int32_t *idx;        /* [n_vocab] scratch */
    float *prob;         /* [n_vocab] scratch */
} sampler;

void sampler_cfg_default(sampler_cfg *c);
int sampler_init(sampler *s, const sampler_cfg *c, int n_vocab);
void sampler_free(sampler *s);
/* Record a token (prompt or generated) for the repetition penalty. */
void sampler_accept(sampler *s, int32_t tok);
/* Choose the next token; logits may be modified. */
int32_t sampler_sample(sampler *s, float *logits);
int32_t argmax(const float *x, int n);
/* -log p(target) under softmax(lg[0..V)); NaN for a target outside [0, V). */
float logits_nll(const float *lg, int V, int target);
/* A share of the vocabulary (lg[0..V) are the logits of tokens [v0, v0 + V)): out[0] =
 * logsumexp(lg), out[1] = the target's logit when it lies in the share, else NaN. The CPU
 * twin of crk_nll_part (kernels/logits.cu). */
void logits_lse_part(const float *lg, int V, int target, int v0, float out[2]);
/* The NLL from n shares' logits_lse_part pairs (share i at parts + i * stride): NaN when no
 * share holds the target. */
float logits_nll_combine(const float *parts, int n, int stride);
#endif
