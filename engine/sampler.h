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
#endif
