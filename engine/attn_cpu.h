/* Chunk attention over [sinks | cached slots | the chunk's own keys (causal)]
 * for one KV head and its group of query heads, with the exact EMA score
 * columns of the cascade spec (§2.4). CPU reference of kernels/attn_chunk.cu. */
#ifndef CR_ATTN_CPU_H
#define CR_ATTN_CPU_H
#include <stddef.h>
#include <stdint.h>
#include "cascade.h"

typedef struct {
    int L;                 /* queries (chunk tokens) */
    int n_rep;             /* query heads of this KV head */
    int hd;                /* head dim */
    int rope_pairs;        /* rope_dim / 2 */
    int neox;              /* rope pair layout */
    const float *rope_cs;  /* [pos][rope_pairs][2] cos, sin */
    const cascade_head *h; /* cache contents (pre-RoPE fp16) */
    int n_sinks;           /* sinks at positions 0..n_sinks-1 */
    int nv;                /* filled slots */
    const int32_t *vslots; /* [nv] physical slot of each filled slot */
    const int32_t *slot_pos; /* [N] RoPE position of each slot */
    const float *q;        /* query m, head g at q + m*q_stride + g*hd (RoPE applied) */
    size_t q_stride;
    const uint16_t *kc, *vc; /* chunk key/value j at kc + j*kv_stride (fp16, pre-RoPE) */
    size_t kv_stride;
    int64_t p0;            /* position of chunk token 0 */
    const float *w;        /* [L] EMA weights w_m */
    float *out;            /* out + m*out_stride + g*hd */
    size_t out_stride;
    float *r;              /* [n_sinks + nv + L] out: max over the group of sum_m w_m p_g[m][k] */
    float *scratch;        /* attn_scratch_floats() floats */
    float *probe;          /* NULL, or [n_sinks + nv + L] += probability of each key, summed over
                              the group and the queries m >= probe_m0 (attn_probe.h) */
    int probe_m0;
} attn_args;

size_t attn_scratch_floats(int S, int N, int L, int hd, int n_rep);
void attn_chunk_cpu(const attn_args *a);
/* Rotate x[hd] (in place) with a position's cos/sin row. */
void rope_rotate(float *x, const float *cs, int pairs, int neox);

#endif
