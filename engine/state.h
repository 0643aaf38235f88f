/* Inference state: the cascading KV cache of every (layer, KV head), its
 * shared control state, and the scratch buffers of one chunk (memory is
 * bounded by the cache size and the chunk length, never by the input length). */
#ifndef CR_STATE_H
#define CR_STATE_H
#include "cascade.h"
#include "model.h"
#include "quant.h"
#include "threadpool.h"

enum cr_out { CR_OUT_NONE, CR_OUT_LAST, CR_OUT_ALL, CR_OUT_NLL };

typedef struct cr_state {
    const cr_model *m;
    cascade_ctrl ctrl;
    cascade_plan plan;
    cascade_head *heads;       /* [n_layer * n_kv] */
    int max_L;                 /* longest chunk */
    threadpool *tp;
    /* chunk scratch */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;   /* [max_L][dim | qd | kvd | ffn] */
    uint16_t *k16, *v16;       /* [max_L][n_kv * head_dim] fp16 pre-RoPE keys / values */
    q8_block *xq;              /* [max_L][max(dim, ffn) / 32] */
    float *s_new;              /* [n_kv][max_L] scores of the chunk's tokens */
    float *ema_w;              /* [max_L] */
    int32_t *slot_pos;         /* [N] S + rank, or -1 (cache state at the chunk's start) */
    int32_t *vslots;           /* [N] filled slots in physical order */
    float *rope_cs;            /* [rope_max][rope_dim/2][2] cos, sin */
    int64_t rope_max;
    float *tscratch;           /* per-thread attention scratch */
    size_t tscratch_floats;
    float *logits;             /* [16][n_vocab] */
    size_t cache_bytes;
    /* last chunk's attention to cached tokens, for citations: per cached slot
     * (layer-averaged max over heads) — see forward_cpu.c */
} cr_state;

int state_init(cr_state *s, const cr_model *m, const cascade_cfg *cfg, int max_L, int n_threads, char *err, size_t errlen);
void state_free(cr_state *s);
void state_reset(cr_state *s);

/* Run L <= max_L tokens. out: CR_OUT_LAST logits[n_vocab] of the last token;
 * CR_OUT_ALL logits[L][n_vocab]; CR_OUT_NLL out[j] = -log p(targets[j]) at token j.
 * Returns 0, or -1 with err (bad token id, cache policy overflow). */
int forward(cr_state *s, const int32_t *tok, int L, int out_mode, const int32_t *targets, float *out, char *err, size_t errlen);

#endif
