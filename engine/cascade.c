/* Cascading KV cache: control state, insertion plans, per-head storage updates.
 * See cascade.h and shared/docs/cascade-algorithm.md §1-§2. */
#include "cascade.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap; va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Floored modulo (spec P6): result in [0, m) for m > 0, also for negative a. */
static inline int fmod_i(int a, int m) { int r = a % m; return r < 0 ? r + m : r; }
static inline int64_t fdiv64(int64_t a, int64_t m) {       /* floor(a / m), m > 0 */
    int64_t q = a / m;
    if ((a % m) != 0 && a < 0) q--;
    return q;
}
/* Number of u in [lo, hi) with m | u (lo >= -1, m > 0). */
static inline int64_t count_mult(int64_t lo, int64_t hi, int64_t m) {
    if (hi <= lo) return 0;
    return fdiv64(hi - 1, m) - fdiv64(lo - 1, m);
}
/* Smallest multiple of m strictly greater than x (x >= 0). */
static inline int64_t next_mult(int64_t x, int64_t m) { return (x / m + 1) * m; }

void cascade_cfg_default(cascade_cfg *cfg) {
    cfg->policy = CR_POLICY_CASCADE;
    cfg->S = 64;
    cfg->N = 32768;
    cfg->C = 4;
    cfg->beta = 0.9999999;
    cfg->eager_fill = 1;
}

const char *cascade_policy_name(int policy) {
    switch (policy) {
    case CR_POLICY_CASCADE: return "cascade";
    case CR_POLICY_SINK: return "sink";
    case CR_POLICY_FULL: return "full";
    default: return "?";
    }
}

int cascade_policy_parse(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "cascade")) return CR_POLICY_CASCADE;
    if (!strcmp(name, "sink")) return CR_POLICY_SINK;
    if (!strcmp(name, "full")) return CR_POLICY_FULL;
    return -1;
}

/* Validate and normalise cfg into out. */
static int cfg_check(const cascade_cfg *cfg, cascade_cfg *out, char *err, size_t errlen) {
    if (!cfg) { seterr(err, errlen, "cascade: no configuration"); return -1; }
    cascade_cfg c = *cfg;
    if (c.policy != CR_POLICY_CASCADE && c.policy != CR_POLICY_SINK && c.policy != CR_POLICY_FULL) {
        seterr(err, errlen, "cascade: unknown policy %d (expected cascade, sink or full)", c.policy);
        return -1;
    }
    if (c.S < 0) { seterr(err, errlen, "cascade: sink count S=%d must be >= 0", c.S); return -1; }
    if (c.N <= 0) { seterr(err, errlen, "cascade: cache size N=%d must be > 0", c.N); return -1; }
    if ((int64_t)c.S + c.N > INT32_MAX) {
        seterr(err, errlen, "cascade: S+N=%lld too large", (long long)c.S + c.N);
        return -1;
    }
    if (!(c.beta > 0.0 && c.beta <= 1.0)) {
        seterr(err, errlen, "cascade: beta=%g must satisfy 0 < beta <= 1", c.beta);
        return -1;
    }
    if (c.policy == CR_POLICY_CASCADE) {
        if (c.C < 1 || c.C > CR_MAX_CASCADES) {
            seterr(err, errlen, "cascade: cascade count C=%d must be in 1..%d", c.C, CR_MAX_CASCADES);
            return -1;
        }
        if (c.N % c.C != 0) {
            seterr(err, errlen, "cascade: cache size N=%d is not divisible by C=%d cascades", c.N, c.C);
            return -1;
        }
    } else {
        c.C = 1;
    }
    c.eager_fill = c.eager_fill ? 1 : 0;
    *out = c;
    return 0;
}

int cascade_cfg_equal(const cascade_cfg *a, const cascade_cfg *b) {
    cascade_cfg x, y;
    if (cfg_check(a, &x, NULL, 0) || cfg_check(b, &y, NULL, 0)) return 0;
    return x.policy == y.policy && x.S == y.S && x.N == y.N && x.C == y.C && x.beta == y.beta &&
           x.eager_fill == y.eager_fill;
}

int cascade_ctrl_equal(const cascade_ctrl *a, const cascade_ctrl *b) {
    if (a->seen != b->seen || a->n_sinks != b->n_sinks || a->W != b->W) return 0;
    for (int i = 0; i < a->cfg.C; i++) if (a->stored[i] != b->stored[i] || a->start[i] != b->start[i]) return 0;
    return 1;
}

void cascade_ctrl_reset(cascade_ctrl *c) {
    c->n_sinks = 0;
    c->seen = 0;
    memset(c->stored, 0, sizeof c->stored);
    memset(c->start, 0, sizeof c->start);
}

int cascade_ctrl_init(cascade_ctrl *c, const cascade_cfg *cfg, char *err, size_t errlen) {
    cascade_cfg v;
    if (cfg_check(cfg, &v, err, errlen)) return -1;
    memset(c, 0, sizeof *c);
    c->cfg = v;
    c->W = v.N / v.C;
    cascade_ctrl_reset(c);
    return 0;
}

int cascade_ctrl_at(cascade_ctrl *c, const cascade_cfg *cfg, int64_t seen, char *err, size_t errlen) {
    cascade_ctrl r;
    if (cascade_ctrl_init(&r, cfg, err, errlen)) return -1;
    if (seen < 0 || seen > CASCADE_MAX_SEEN) {
        seterr(err, errlen, "cascade: token count %lld out of range", (long long)seen);
        return -1;
    }
    const int S = r.cfg.S, N = r.cfg.N, C = r.cfg.C, W = r.W;
    r.seen = seen;
    if (seen <= S) { r.n_sinks = (int)seen; *c = r; return 0; }
    r.n_sinks = S;
    const int64_t n = seen - S;     /* tokens that went to the cascades: u = 0..n-1, u = t - S */
    if (r.cfg.eager_fill) {
        /* u <= N: every cascade accepts, the N slots fill as one FIFO (cascade i holds
         * u in [iW, (i+1)W) once filled) and cascade i pushes for u in [(i+1)W, N].
         * u > N: all full; cascade i is reached and accepts iff 2^i | u, and then pushes. */
        for (int i = 0; i < C; i++) {
            int64_t st = n - (int64_t)i * W;
            r.stored[i] = (int)(st < 0 ? 0 : st > W ? W : st);
            int64_t pushes;
            if (n <= (int64_t)N + 1) {
                pushes = n - (int64_t)(i + 1) * W;
                if (pushes < 0) pushes = 0;
            } else {
                pushes = (int64_t)(C - i - 1) * W + 1 + count_mult((int64_t)N + 1, n, (int64_t)1 << i);
            }
            r.start[i] = (int)(pushes % W);
        }
    } else {
        /* Cascade i is reached at every multiple of 2^(i-1) from its first reach r on (all u
         * for i = 0). The first reach appends (accepted or empty); later reaches append while
         * not full when 2^i | u, compete otherwise; once full (last append at f), every
         * reach with 2^i | u pushes, and the first such push is cascade i+1's first reach. */
        int64_t first = 0;
        for (int i = 0; i < C; i++) {
            const int64_t m = (int64_t)1 << i;
            if (n <= first) break;  /* this and later cascades are still empty */
            int64_t st = 1 + count_mult(first + 1, n, m);
            r.stored[i] = (int)(st > W ? W : st);
            int64_t f = W == 1 ? first : next_mult(first, m) + (int64_t)(W - 2) * m;
            int64_t pushes = count_mult(f + 1, n, m);
            r.start[i] = (int)(pushes % W);
            first = next_mult(f, m);
        }
    }
    *c = r;
    return 0;
}

/* ---- plans ---- */

int cascade_plan_reserve(cascade_plan *p, const cascade_ctrl *c, int L, char *err, size_t errlen) {
    if (L < 0) { seterr(err, errlen, "cascade: negative chunk length %d", L); return -1; }
    int64_t need_ops = (int64_t)L * c->cfg.C;
    if (need_ops > INT32_MAX / 2 || L >= INT32_MAX / 2) {
        seterr(err, errlen, "cascade: chunk of %d tokens too large for a plan", L);
        return -1;
    }
    if (need_ops < 1) need_ops = 1;
    if (need_ops > p->cap_ops) {
        cascade_op *o = realloc(p->ops, (size_t)need_ops * sizeof *o);
        if (!o) { seterr(err, errlen, "cascade: out of memory for a plan of %d tokens", L); return -1; }
        p->ops = o;
        p->cap_ops = (int)need_ops;
    }
    if (L > p->cap_L || !p->tok_first_op) {
        int32_t *f = realloc(p->tok_first_op, ((size_t)L + 1) * sizeof *f);
        if (!f) { seterr(err, errlen, "cascade: out of memory for a plan of %d tokens", L); return -1; }
        p->tok_first_op = f;
        p->cap_L = L;
    }
    return 0;
}

void cascade_plan_free(cascade_plan *p) {
    free(p->ops);
    free(p->tok_first_op);
    memset(p, 0, sizeof *p);
}

/* Does cascade i open a slot for stream token t (spec §2.1, pow2 schedule)? */
static inline int accepts(const cascade_ctrl *c, int i, int64_t t) {
    if (c->cfg.eager_fill && t <= (int64_t)c->cfg.N + c->cfg.S) return 1;
    return ((t - c->cfg.S) & (((int64_t)1 << i) - 1)) == 0;
}

/* One token of spec §2.2 on the control state; appends its ops at ops[*n]. */
static inline void plan_token(cascade_ctrl *c, cascade_op *ops, int *n) {
    const int64_t t = c->seen++;
    if (c->n_sinks < c->cfg.S) {
        ops[(*n)++] = (cascade_op){ CASCADE_OP_SINK, c->n_sinks++ };
        return;
    }
    const int C = c->cfg.C, W = c->W;
    for (int i = 0; i < C; i++) {
        const int base = i * W;
        if (accepts(c, i, t)) {
            if (c->stored[i] < W) {                 /* open slot: append, chain ends */
                ops[(*n)++] = (cascade_op){ CASCADE_OP_APPEND, base + (c->start[i] + c->stored[i]) % W };
                c->stored[i]++;
                return;
            }
            ops[(*n)++] = (cascade_op){ CASCADE_OP_PUSH, base + c->start[i] };  /* full: evict oldest */
            c->start[i] = (c->start[i] + 1) % W;
            continue;
        }
        if (c->stored[i] == 0) {                    /* empty: append anyway */
            ops[(*n)++] = (cascade_op){ CASCADE_OP_APPEND, base + c->start[i] };
            c->stored[i]++;
            return;
        }
        /* compete with the newest resident (floored modulo, P6) */
        ops[(*n)++] = (cascade_op){ CASCADE_OP_COMPETE, base + fmod_i(c->start[i] - 1, c->stored[i]) };
        return;
    }
    /* fell out of the last cascade: the final PUSH's evicted token is dropped */
}

int cascade_plan_chunk(cascade_ctrl *c, int L, cascade_plan *p, char *err, size_t errlen) {
    if (L < 0) { seterr(err, errlen, "cascade: negative chunk length %d", L); return -1; }
    const int64_t cap = (int64_t)c->cfg.S + c->cfg.N;
    if (c->cfg.policy == CR_POLICY_FULL && c->seen + L > cap) {
        seterr(err, errlen,
               "full attention holds at most S+N = %lld tokens, and %lld + %d would exceed it; "
               "use --policy cascade or --policy sink for longer input",
               (long long)cap, (long long)c->seen, L);
        return -1;
    }
    if (c->seen + L > CASCADE_MAX_SEEN) {
        seterr(err, errlen, "cascade: token counter overflow");
        return -1;
    }
    if (cascade_plan_reserve(p, c, L, err, errlen)) return -1;
    p->L = L;
    p->t0 = c->seen;
    int n = 0;
    for (int j = 0; j < L; j++) {
        p->tok_first_op[j] = n;
        plan_token(c, p->ops, &n);
    }
    p->tok_first_op[L] = n;
    p->n_ops = n;
    return 0;
}

/* ---- storage ---- */

int cascade_head_alloc(cascade_head *h, const cascade_ctrl *c, int D, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    if (D <= 0) { seterr(err, errlen, "cascade: head dim %d must be > 0", D); return -1; }
    size_t S = (size_t)c->cfg.S, N = (size_t)c->cfg.N, d = (size_t)D;
    h->D = D;
    h->sink_k = calloc(S * d + 1, sizeof(uint16_t));
    h->sink_v = calloc(S * d + 1, sizeof(uint16_t));
    h->k = calloc(N * d, sizeof(uint16_t));
    h->v = calloc(N * d, sizeof(uint16_t));
    h->score = calloc(N, sizeof(float));
    h->og = malloc(N * sizeof(int64_t));
    if (!h->sink_k || !h->sink_v || !h->k || !h->v || !h->score || !h->og) {
        cascade_head_free(h);
        seterr(err, errlen, "cascade: out of memory for a head (N=%zu, D=%d)", N, D);
        return -1;
    }
    for (size_t i = 0; i < N; i++) h->og[i] = -1;
    return 0;
}

void cascade_head_free(cascade_head *h) {
    free(h->sink_k); free(h->sink_v); free(h->k); free(h->v); free(h->score); free(h->og);
    memset(h, 0, sizeof *h);
}

void cascade_apply(const cascade_plan *p, const cascade_head *h, const uint16_t *k_new,
                   const uint16_t *v_new, size_t stride, const float *s_new, int64_t og0) {
    const size_t D = (size_t)h->D, row = D * sizeof(uint16_t);
    for (int j = 0; j < p->L; j++) {
        const int a = p->tok_first_op[j], b = p->tok_first_op[j + 1];
        const uint16_t *nk = k_new + (size_t)j * stride, *nv = v_new + (size_t)j * stride;
        const float ns = s_new ? s_new[j] : 0.0f;
        /* Last op first: op x reads the content of op x-1's slot before op x-1 overwrites it. */
        for (int x = b - 1; x >= a; x--) {
            const cascade_op op = p->ops[x];
            const size_t dst = (size_t)op.slot;
            if (op.kind == CASCADE_OP_SINK) {
                memcpy(h->sink_k + dst * D, nk, row);
                memcpy(h->sink_v + dst * D, nv, row);
                continue;
            }
            const uint16_t *sk, *sv;
            float ss;
            int64_t sog;
            if (x == a) {
                sk = nk; sv = nv; ss = ns; sog = og0 + j;
            } else {
                const size_t src = (size_t)p->ops[x - 1].slot;
                sk = h->k + src * D; sv = h->v + src * D; ss = h->score[src];
                sog = h->og ? h->og[src] : -1;
            }
            if (op.kind == CASCADE_OP_COMPETE && !(ss >= h->score[dst])) continue;  /* ties: newer wins */
            memcpy(h->k + dst * D, sk, row);
            memcpy(h->v + dst * D, sv, row);
            h->score[dst] = ss;
            if (h->og) h->og[dst] = sog;
        }
    }
}

/* ---- positions and views ---- */

int cascade_slot(const cascade_ctrl *c, int i, int k) {
    if (i < 0 || i >= c->cfg.C || k < 0 || k >= c->stored[i]) return -1;
    return i * c->W + (c->start[i] + k) % c->W;
}

int cascade_total_stored(const cascade_ctrl *c) {
    int tot = 0;
    for (int i = 0; i < c->cfg.C; i++) tot += c->stored[i];
    return tot;
}

int cascade_positions(const cascade_ctrl *c, int32_t *pos) {
    const int C = c->cfg.C, W = c->W, S = c->cfg.S;
    int above = 0;  /* tokens in cascades older than i (i+1 .. C-1) */
    for (int i = C - 1; i >= 0; i--) {
        for (int j = 0; j < W; j++) {
            int d = fmod_i(j - c->start[i], W);
            pos[i * W + j] = d < c->stored[i] ? S + above + d : -1;
        }
        above += c->stored[i];
    }
    return above;
}

/* The valid keys form ascending disjoint runs: the filled sinks, in each cascade i the
 * stored[i] slots from start[i] (two runs when they wrap: slots 0 .. and start[i] .. W - 1),
 * the chunk's tokens. O(C + steps): the host calls it every decode step. */
static void step_run(int a, int b, int *last, int *n, int32_t *list, int cap) {
    for (int t = a / 16; a < b && t <= (b - 1) / 16; t++) {
        if (t <= *last) continue;
        if (list && *n < cap) list[*n] = t;
        (*n)++;
        *last = t;
    }
}
int cascade_step_list(const cascade_ctrl *c, int L, int32_t *list, int cap) {
    const int S = c->cfg.S, N = c->cfg.N, W = c->W;
    int n = 0, last = -1;
    step_run(0, c->n_sinks, &last, &n, list, cap);
    for (int i = 0; i < c->cfg.C; i++) {
        const int base = S + i * W, st = fmod_i(c->start[i], W), len = c->stored[i] < W ? c->stored[i] : W;
        if (st + len > W) {
            step_run(base, base + st + len - W, &last, &n, list, cap);
            step_run(base + st, base + W, &last, &n, list, cap);
        } else step_run(base + st, base + st + len, &last, &n, list, cap);
    }
    step_run(S + N, S + N + L, &last, &n, list, cap);
    for (int i = n; list && i < cap; i++) list[i] = -1;
    return n;
}

int64_t cascade_query_pos(const cascade_ctrl *c) {
    return (int64_t)c->n_sinks + cascade_total_stored(c);
}

int cascade_retained(const cascade_ctrl *c, const cascade_head *h, int64_t *out, int which) {
    int n = 0;
    if (which == CASCADE_RETAINED_SINKS || which == CASCADE_RETAINED_ALL)
        for (int s = 0; s < c->n_sinks; s++) out[n++] = s;
    if (which == CASCADE_RETAINED_SINKS) return n;
    if (which == CASCADE_RETAINED_ALL) {
        for (int i = c->cfg.C - 1; i >= 0; i--)
            for (int k = 0; k < c->stored[i]; k++) out[n++] = h->og[cascade_slot(c, i, k)];
        return n;
    }
    if (which < 0 || which >= c->cfg.C) return -1;
    for (int k = 0; k < c->stored[which]; k++) out[n++] = h->og[cascade_slot(c, which, k)];
    return n;
}

/* ---- EMA helpers ---- */

void cascade_ema_weights(double beta, int L, float *w) {
    for (int m = 0; m < L; m++) w[m] = (float)((1.0 - beta) * pow(beta, (double)(L - 1 - m)));
}

float cascade_ema_decay(double beta, int L) { return (float)pow(beta, (double)L); }

void cascade_ema_update(float *score, int n, float decay, const float *r) {
    for (int s = 0; s < n; s++) score[s] = fmaf(decay, score[s], r ? r[s] : 0.0f);
}

/* ---- serialization ---- */

#define CTRL_MAGIC "CRCC"
#define CTRL_VERSION 1u
#define CTRL_FIXED 60   /* header + cfg + counters + CRC; plus 8 bytes per cascade */

static uint32_t crc32_le(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t cascade_ctrl_write(const cascade_ctrl *c, uint8_t *buf, size_t cap) {
    const int C = c->cfg.C;
    const size_t size = CTRL_FIXED + 8 * (size_t)C;
    if (!buf || cap < size) return size;
    uint64_t beta_bits;
    memcpy(&beta_bits, &c->cfg.beta, sizeof beta_bits);
    memcpy(buf, CTRL_MAGIC, 4);
    put_u32(buf + 4, CTRL_VERSION);
    put_u32(buf + 8, (uint32_t)size);
    put_u32(buf + 12, (uint32_t)c->cfg.policy);
    put_u32(buf + 16, (uint32_t)c->cfg.S);
    put_u32(buf + 20, (uint32_t)c->cfg.N);
    put_u32(buf + 24, (uint32_t)C);
    put_u32(buf + 28, (uint32_t)c->cfg.eager_fill);
    put_u64(buf + 32, beta_bits);
    put_u32(buf + 40, (uint32_t)c->W);
    put_u32(buf + 44, (uint32_t)c->n_sinks);
    put_u64(buf + 48, (uint64_t)c->seen);
    for (int i = 0; i < C; i++) {
        put_u32(buf + 56 + 8 * i, (uint32_t)c->stored[i]);
        put_u32(buf + 60 + 8 * i, (uint32_t)c->start[i]);
    }
    put_u32(buf + size - 4, crc32_le(buf, size - 4));
    return size;
}

int cascade_ctrl_read(cascade_ctrl *c, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    if (!buf || len < 12) { seterr(err, errlen, "cascade snapshot: truncated header"); return -1; }
    if (memcmp(buf, CTRL_MAGIC, 4)) { seterr(err, errlen, "cascade snapshot: bad magic"); return -1; }
    uint32_t ver = get_u32(buf + 4);
    if (ver != CTRL_VERSION) {
        seterr(err, errlen, "cascade snapshot: unsupported version %u", (unsigned)ver);
        return -1;
    }
    uint32_t size = get_u32(buf + 8);
    if (size < CTRL_FIXED + 8 || size > CTRL_FIXED + 8 * CR_MAX_CASCADES || (size - CTRL_FIXED) % 8) {
        seterr(err, errlen, "cascade snapshot: bad length %u", (unsigned)size);
        return -1;
    }
    if (len < size) {
        seterr(err, errlen, "cascade snapshot: truncated (%zu of %u bytes)", len, (unsigned)size);
        return -1;
    }
    if (get_u32(buf + size - 4) != crc32_le(buf, size - 4)) {
        seterr(err, errlen, "cascade snapshot: checksum mismatch");
        return -1;
    }
    cascade_cfg cfg;
    cfg.policy = (int)get_u32(buf + 12);
    cfg.S = (int)get_u32(buf + 16);
    cfg.N = (int)get_u32(buf + 20);
    cfg.C = (int)get_u32(buf + 24);
    uint32_t eager = get_u32(buf + 28);
    uint64_t beta_bits = get_u64(buf + 32);
    memcpy(&cfg.beta, &beta_bits, sizeof cfg.beta);
    cfg.eager_fill = (int)eager;
    if (eager > 1) { seterr(err, errlen, "cascade snapshot: bad eager_fill flag %u", (unsigned)eager); return -1; }
    if (cfg.C < 1 || cfg.C > CR_MAX_CASCADES || size != CTRL_FIXED + 8 * (uint32_t)cfg.C) {
        seterr(err, errlen, "cascade snapshot: cascade count %d does not match length %u", cfg.C, (unsigned)size);
        return -1;
    }
    int64_t seen = (int64_t)get_u64(buf + 48);
    cascade_ctrl r;
    char e2[160];
    if (cascade_ctrl_at(&r, &cfg, seen, e2, sizeof e2)) {
        seterr(err, errlen, "cascade snapshot: %s", e2);
        return -1;
    }
    if (r.cfg.C != cfg.C) {
        seterr(err, errlen, "cascade snapshot: policy %s needs C=1, got %d", cascade_policy_name(cfg.policy), cfg.C);
        return -1;
    }
    int bad = (int)get_u32(buf + 40) != r.W || (int)get_u32(buf + 44) != r.n_sinks;
    for (int i = 0; i < cfg.C && !bad; i++)
        bad = (int)get_u32(buf + 56 + 8 * i) != r.stored[i] || (int)get_u32(buf + 60 + 8 * i) != r.start[i];
    if (bad) {
        seterr(err, errlen, "cascade snapshot: counters inconsistent with %lld tokens seen", (long long)seen);
        return -1;
    }
    *c = r;
    return (int)size;
}
