/* Cascading KV cache (arXiv 2406.17808), CPU reference of the data structure and its
 * update rule. Spec: shared/docs/cascade-algorithm.md (section numbers below refer to it).
 *
 * Split in two:
 *  - cascade_ctrl: the control state (sink count, token counter, per-cascade fill count and
 *    ring head). It depends only on the configuration and the number of tokens seen, so it is
 *    the same for every layer and KV head; keep one copy per model.
 *  - cascade_head: the contents of one (layer, KV head): sinks, N slots of K/V (fp16 bits,
 *    pre-RoPE), fp32 EMA score and 0-based original index per slot.
 * cascade_plan_chunk() turns the next L tokens into a list of ops (advancing the control
 * state once); cascade_apply() replays that list on one head with that head's scores. Only
 * the COMPETE ops look at scores, so every head shares the same plan.
 *
 * Intended algorithm (spec §7): fp32 scores, aligned slots, floored modulo for the newest
 * slot, ties (>=) go to the newer token, eager fill on by default, pow2 schedule, the S sinks
 * are on top of the N slots. Slot i*W + j belongs to cascade i (W = N / C).
 *
 * Engine code: no app/ or ui/ includes. No allocation except when a plan has to grow. */
#ifndef CR_CASCADE_H
#define CR_CASCADE_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {   /* the CUDA port includes this from .cu files */
#endif

#define CR_MAX_CASCADES 32
/* Largest token counter accepted (plan and snapshot); keeps all schedule arithmetic in int64. */
#define CASCADE_MAX_SEEN ((int64_t)1 << 62)

enum cr_policy { CR_POLICY_CASCADE, CR_POLICY_SINK, CR_POLICY_FULL };

typedef struct {
    int policy;      /* enum cr_policy */
    int S;           /* sink tokens, kept forever (on top of N) */
    int N;           /* cache slots excluding sinks */
    int C;           /* cascades (CR_POLICY_CASCADE only; SINK and FULL force C = 1) */
    double beta;     /* EMA decay of the attention score, 0 < beta <= 1 */
    int eager_fill;  /* every cascade accepts while t <= N + S (spec §2.1, P11); default 1 */
} cascade_cfg;

/* Defaults of the spec's "intended configuration": S = 64, N = 32768, C = 4,
 * beta = 0.9999999, eager fill on, cascade policy. */
void cascade_cfg_default(cascade_cfg *cfg);
const char *cascade_policy_name(int policy);          /* "cascade", "sink", "full" */
/* 1 if both configurations are valid and equal after normalisation (C ignored for SINK and
 * FULL, eager_fill as 0/1, beta compared exactly): e.g. a snapshot fits this session. */
int cascade_cfg_equal(const cascade_cfg *a, const cascade_cfg *b);
int cascade_policy_parse(const char *name);           /* enum value, or -1 */

typedef struct {
    cascade_cfg cfg;     /* as validated: C = 1 for SINK/FULL, eager_fill 0/1 */
    int W;               /* slots per cascade = N / C */
    int n_sinks;         /* sinks filled, 0..S */
    int64_t seen;        /* tokens inserted so far = 0-based index of the next token */
    int stored[CR_MAX_CASCADES];  /* filled slots per cascade, 0..W */
    int start[CR_MAX_CASCADES];   /* ring head (oldest) per cascade, 0..W-1; 0 until full */
} cascade_ctrl;

/* Validate cfg and set c to the empty state. 0, or -1 with a one-line message in err.
 * Checks: policy known, S >= 0, N > 0, S + N <= INT32_MAX, 0 < beta <= 1, and for CASCADE
 * 1 <= C <= CR_MAX_CASCADES with N % C == 0. SINK and FULL ignore cfg->C (forced to 1). */
int  cascade_ctrl_init(cascade_ctrl *c, const cascade_cfg *cfg, char *err, size_t errlen);
void cascade_ctrl_reset(cascade_ctrl *c);              /* back to empty, same cfg */
/* Same token count, sinks, sub-cache fill and ring starts (cfg assumed equal): 1, else 0. */
int  cascade_ctrl_equal(const cascade_ctrl *a, const cascade_ctrl *b);

/* Closed form: the control state after `seen` tokens, computed in O(C) without replaying
 * (valid for eager fill on and off). Equal, field for field, to init + planning seen tokens.
 * 0, or -1 (cfg invalid, or seen outside 0..CASCADE_MAX_SEEN). Used to validate snapshots;
 * the GPU port can use it to check its own state. */
int  cascade_ctrl_at(cascade_ctrl *c, const cascade_cfg *cfg, int64_t seen, char *err, size_t errlen);

/* Insertion plan. Token j of the chunk (stream index t0 + j) owns ops
 * [tok_first_op[j], tok_first_op[j+1]), in cascade order; each op's "carry" is the new token
 * for the first op and the previous op's slot (its content before this token) otherwise:
 *   SINK    slot = sink index: the token becomes that sink (only op of the token).
 *   APPEND  write the carry into the empty slot; chain ends.
 *   PUSH    the slot's content moves on as the next carry, the carry takes the slot; a PUSH as
 *           the token's last op means the evicted content leaves the cache.
 *   COMPETE if carry.score >= score[slot], the carry overwrites the slot (K, V, score, og);
 *           the loser is dropped; chain ends.
 * At most C ops per token (1 for a sink token), so n_ops <= L * C <= cap_ops. */
enum { CASCADE_OP_SINK, CASCADE_OP_APPEND, CASCADE_OP_PUSH, CASCADE_OP_COMPETE };
typedef struct { int32_t kind, slot; } cascade_op;
typedef struct {
    int L;                  /* tokens in the chunk */
    int n_ops;
    cascade_op *ops;        /* [cap_ops] */
    int32_t *tok_first_op;  /* [L + 1] */
    int cap_ops;            /* allocated ops */
    int cap_L;              /* allocated tok_first_op entries - 1 */
    int64_t t0;             /* stream index of the chunk's first token (pass as og0) */
} cascade_plan;             /* zero-initialise before first use */

/* Make room for chunks of up to L tokens (optional; cascade_plan_chunk grows on demand).
 * 0, or -1 with err. */
int  cascade_plan_reserve(cascade_plan *p, const cascade_ctrl *c, int L, char *err, size_t errlen);
/* Plan the next L >= 0 tokens and advance c. On error (-1, err set) c and p's contents are
 * unchanged; FULL policy past S + N tokens is an error that names --policy cascade / sink. */
int  cascade_plan_chunk(cascade_ctrl *c, int L, cascade_plan *p, char *err, size_t errlen);
void cascade_plan_free(cascade_plan *p);

/* Storage of one (layer, KV head). K/V are fp16 bit patterns, pre-RoPE; D = head dim. */
typedef struct {
    uint16_t *sink_k, *sink_v;  /* [S][D] */
    uint16_t *k, *v;            /* [N][D] */
    float *score;               /* [N] EMA score (fp32) */
    int64_t *og;                /* [N] 0-based original index, -1 when empty; may be NULL */
    int D;
} cascade_head;

/* Convenience allocation (calloc'd, og = -1): 0, or -1 with err. free is NULL-safe. */
int  cascade_head_alloc(cascade_head *h, const cascade_ctrl *c, int D, char *err, size_t errlen);
void cascade_head_free(cascade_head *h);

/* Apply a plan to one head: token j's k/v at k_new + j*stride and v_new + j*stride (stride in
 * uint16_t elements), its score s_new[j] (s_new may be NULL = all zeros), original index og0 + j
 * (normally p->t0). Heads are independent: apply to several heads in parallel. Each token's ops
 * are executed last to first, so a push chain needs no scratch buffer. No allocation. */
void cascade_apply(const cascade_plan *p, const cascade_head *h, const uint16_t *k_new,
                   const uint16_t *v_new, size_t stride, const float *s_new, int64_t og0);

/* Physical slot of the k-th oldest token (0-based) of cascade i, or -1 if k >= stored[i]. */
int  cascade_slot(const cascade_ctrl *c, int i, int k);
/* pos[slot] = S + rank for filled slots, -1 for unfilled; rank = age rank among cached
 * (non-sink) tokens, contiguous from 0 (spec §1.2/§2.6). Returns the number of filled slots. */
int  cascade_positions(const cascade_ctrl *c, int32_t *pos /* [N] */);
int  cascade_total_stored(const cascade_ctrl *c);
/* The 16-key steps of the attention's key space [S sinks | N slots | L chunk tokens] that
 * hold a valid key (a filled sink or slot, or one of the chunk's L tokens), ascending, as
 * key / 16: the first min(count, cap) into list[0 ..], list[count .. cap) = -1 (list may be
 * NULL). Returns count. The CUDA decode attention of a nearly empty cache walks only these
 * (crk_step_list is the GPU twin). */
int  cascade_step_list(const cascade_ctrl *c, int L, int32_t *list, int cap);
/* Position of the next chunk's first query: n_sinks + total stored (0 at the start). */
int64_t cascade_query_pos(const cascade_ctrl *c);

/* Original (0-based) token indices the cache holds, oldest first:
 *   which = 0..C-1           that cascade (needs room for W);
 *   CASCADE_RETAINED_SINKS   the sinks, 0..n_sinks-1 (room for S);
 *   CASCADE_RETAINED_ALL     sinks then every cascade from C-1 down to 0, i.e. ascending
 *                            original order (room for S + N).
 * h->og must be non-NULL. Returns the count, or -1 for a bad `which`. */
#define CASCADE_RETAINED_ALL   (-1)
#define CASCADE_RETAINED_SINKS (-2)
int  cascade_retained(const cascade_ctrl *c, const cascade_head *h, int64_t *out, int which);

/* EMA (spec §2.4): w[m] = (1-beta) * beta^(L-1-m), computed in double, stored as float. */
void  cascade_ema_weights(double beta, int L, float *w /* [L] */);
float cascade_ema_decay(double beta, int L);           /* (float)beta^L */
/* score[s] = fmaf(decay, score[s], r[s]) for s < n (explicit fma: same bits on the GPU with
 * __fmaf_rn). r may be NULL (pure decay). */
void  cascade_ema_update(float *score, int n, float decay, const float *r);

/* Snapshot of the control state: little-endian, magic "CRCC", version, cfg, counters,
 * stored/start per cascade, CRC-32. cascade_ctrl_write returns the serialized size and writes
 * only if cap is large enough (like snprintf). cascade_ctrl_read validates everything
 * (magic, version, length, CRC, cfg, and that the counters equal the closed form for
 * (cfg, seen)) and returns the bytes consumed, or -1 with err (c untouched on error). */
size_t cascade_ctrl_write(const cascade_ctrl *c, uint8_t *buf, size_t cap);
int    cascade_ctrl_read(cascade_ctrl *c, const uint8_t *buf, size_t len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
