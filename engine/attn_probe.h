/* attn_probe: where the attention of a span of queries goes, by original token index.
 *
 * Off by default (cr_state.probe == NULL: forward() does not touch it, one pointer test per
 * attention row). When attached with probe_attach(), every forward() on the CPU adds, for each
 * query of the chunk whose stream index is >= probe.q_from and each layer in
 * [layer_from, layer_to), the softmax probability that each key receives, summed over the
 * query heads of the key's KV-head group. Keys are the sinks, the cached slots and the chunk's
 * own keys (causal). At the end of the forward the per-(layer, KV head) rows are mapped to
 * original token indices (sinks: their index 0..S-1; slots: heads[].og as it was when the
 * chunk attended, i.e. before the chunk's insertion; chunk keys: t0 + j) and summed over layers
 * and heads into a table og -> weight that accumulates over forward calls until probe_clear().
 *
 * Each counted query distributes mass 1 per query head and layer, so the weights of one
 * forward sum to (queries counted) x n_head x (layers counted); probe_total() returns that sum.
 *
 * Memory while attached: n_layer * n_kv * (S + N + max_L) floats + n_layer * n_kv * N int64 for
 * the rows, plus the table (16 bytes per distinct original index seen). */
#ifndef CR_ATTN_PROBE_H
#define CR_ATTN_PROBE_H
#include <stddef.h>
#include <stdint.h>
#include "state.h"

typedef struct cr_probe_hit { int64_t og; float w; } cr_probe_hit;

typedef struct cr_probe {
    int64_t q_from;          /* count queries with stream index >= q_from (0 = all) */
    int layer_from, layer_to;/* layers counted: [layer_from, layer_to); default all */
    /* dimensions */
    int n_layer, n_kv, n_head, S, N, max_L;
    size_t row;              /* S + N + max_L */
    /* the current forward (written by the hook) */
    float *w;                /* [n_layer * n_kv][row]: sinks, visible slots (in vslots order), chunk keys */
    int64_t *og;             /* [n_layer * n_kv][N]: og of visible slot i when the chunk attended */
    int c_sinks, c_nv, c_L, c_m0, c_active;
    int64_t c_t0;
    /* accumulated over forwards: open-addressing table og -> weight */
    int64_t *hk; float *hv; size_t hcap, hn;
    int64_t n_queries;       /* queries counted so far */
    double total;            /* sum of every weight added */
} cr_probe;

/* Allocates a probe sized for state s (its model, cache and max chunk). 0, or -1 + err. */
int  probe_init(cr_probe *p, const cr_state *s, char *err, size_t errlen);
void probe_free(cr_probe *p);
/* Attach to / detach from a state (s->probe = p or NULL). */
void probe_attach(cr_state *s, cr_probe *p);
void probe_detach(cr_state *s);
/* Forget the accumulated weights (keeps q_from and the layer range). */
void probe_clear(cr_probe *p);
/* Accumulated weight of original index og (0 when never attended). */
float probe_weight(const cr_probe *p, int64_t og);
size_t probe_count(const cr_probe *p);              /* distinct original indices */
double probe_total(const cr_probe *p);
/* The k heaviest (og, weight), weight descending, ties by og ascending. Returns the count
 * written (<= k). */
int  probe_top(const cr_probe *p, cr_probe_hit *out, int k);
/* Every (og, weight) in the table, in no particular order; returns the count (<= cap). */
size_t probe_dump(const cr_probe *p, cr_probe_hit *out, size_t cap);

/* The GPU path (engine/state_device.c): adds w[og] for og in [0, n) (zeros skipped), the
 * weights of n_queries counted queries. 0, or -1 on allocation failure. */
int    probe_add_dense(cr_probe *p, const float *w, int64_t n, int64_t n_queries);

/* Hooks called by forward() (engine/forward_cpu.c) only. */
void   probe_chunk_begin(cr_probe *p, int n_sinks, int nv, int L, int64_t t0);
/* The row of (layer, kv) for this chunk and the first counted query (*m0), or NULL when the
 * layer or the chunk is not counted. */
float *probe_row(cr_probe *p, int layer, int kv, int *m0);
/* Records the og of the visible slots of (layer, kv) before the chunk is inserted. */
void   probe_slots(cr_probe *p, int layer, int kv, const int64_t *og, const int32_t *vslots, int nv);
/* Folds the chunk's rows into the table. 0, or -1 on allocation failure. */
int    probe_chunk_end(cr_probe *p);
#endif
