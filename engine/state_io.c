/* Serialization of cr_state to a stream interface: see state_io.h for the layout. */
#include "state_io.h"
#include "quant.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "state_io: the snapshot layout is little-endian; add byte swapping for this host"
#endif

#define META_MAGIC "CRSM"
#define LAYER_MAGIC "CRSL"
#define IO_VERSION 1u
#define META_FIXED 28
#define LAYER_FIXED 28

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap; va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void state_meta_of(const cr_state *s, state_meta *out) {
    memset(out, 0, sizeof *out);
    out->n_layer = s->m->hp.n_layer;
    out->n_kv = s->m->hp.n_kv;
    out->head_dim = s->m->hp.head_dim;
    out->max_L = s->max_L;
    out->ctrl = s->ctrl;
}

int state_write_meta(const cr_state *s, const cr_ostream *o) {
    uint8_t buf[STATE_META_MAX_BYTES];
    size_t cl = cascade_ctrl_write(&s->ctrl, NULL, 0);
    if (cl > sizeof buf - META_FIXED) return -1;
    cascade_ctrl_write(&s->ctrl, buf + META_FIXED, sizeof buf - META_FIXED);
    memcpy(buf, META_MAGIC, 4);
    put_u32(buf + 4, IO_VERSION);
    put_u32(buf + 8, (uint32_t)s->m->hp.n_layer);
    put_u32(buf + 12, (uint32_t)s->m->hp.n_kv);
    put_u32(buf + 16, (uint32_t)s->m->hp.head_dim);
    put_u32(buf + 20, (uint32_t)s->max_L);
    put_u32(buf + 24, (uint32_t)cl);
    return o->put(o->ctx, buf, META_FIXED + cl, 1);
}

int state_read_meta(const cr_istream *in, state_meta *meta, char *err, size_t errlen) {
    uint8_t buf[STATE_META_MAX_BYTES];
    if (in->get(in->ctx, buf, META_FIXED, 1)) { seterr(err, errlen, "cache state: truncated"); return -1; }
    if (memcmp(buf, META_MAGIC, 4)) { seterr(err, errlen, "cache state: bad magic"); return -1; }
    uint32_t ver = get_u32(buf + 4);
    if (ver != IO_VERSION) { seterr(err, errlen, "cache state: unsupported version %u", (unsigned)ver); return -1; }
    uint32_t nl = get_u32(buf + 8), nkv = get_u32(buf + 12), hd = get_u32(buf + 16), L = get_u32(buf + 20);
    uint32_t cl = get_u32(buf + 24);
    if (nl < 1 || nl > 65536 || nkv < 1 || nkv > 65536 || hd < 1 || hd > 65536) {
        seterr(err, errlen, "cache state: bad model shape (%u layers, %u KV heads, head dim %u)", (unsigned)nl, (unsigned)nkv, (unsigned)hd);
        return -1;
    }
    if (L < 1 || L > (1u << 24)) { seterr(err, errlen, "cache state: bad stride %u", (unsigned)L); return -1; }
    if (cl < 12 || cl > sizeof buf - META_FIXED) { seterr(err, errlen, "cache state: bad control record length %u", (unsigned)cl); return -1; }
    if (in->get(in->ctx, buf + META_FIXED, cl, 1)) { seterr(err, errlen, "cache state: truncated"); return -1; }
    state_meta m;
    memset(&m, 0, sizeof m);
    int r = cascade_ctrl_read(&m.ctrl, buf + META_FIXED, cl, err, errlen);
    if (r < 0) return -1;
    if ((uint32_t)r != cl) { seterr(err, errlen, "cache state: control record length %u, expected %d", (unsigned)cl, r); return -1; }
    m.n_layer = (int)nl; m.n_kv = (int)nkv; m.head_dim = (int)hd; m.max_L = (int)L;
    *meta = m;
    return 0;
}

int state_meta_check(const state_meta *meta, const cr_model *m, char *err, size_t errlen) {
    const hparams *hp = &m->hp;
    if (meta->n_layer != hp->n_layer || meta->n_kv != hp->n_kv || meta->head_dim != hp->head_dim) {
        seterr(err, errlen, "cache state is for %d layers x %d KV heads x head dim %d, the model has %d x %d x %d",
               meta->n_layer, meta->n_kv, meta->head_dim, hp->n_layer, hp->n_kv, hp->head_dim);
        return -1;
    }
    return 0;
}

int state_meta_fits(const cr_state *s, const state_meta *meta) {
    if (!s->m || !s->heads) return 0;
    const hparams *hp = &s->m->hp;
    return meta->n_layer == hp->n_layer && meta->n_kv == hp->n_kv && meta->head_dim == hp->head_dim &&
           meta->max_L == s->max_L && cascade_cfg_equal(&meta->ctrl.cfg, &s->ctrl.cfg) &&
           meta->ctrl.cfg.S == s->ctrl.cfg.S && meta->ctrl.cfg.N == s->ctrl.cfg.N &&
           meta->ctrl.cfg.C == s->ctrl.cfg.C;
}

uint64_t state_layer_bytes(const state_meta *meta) { return state_layer_bytes_q(meta, 0); }

/* q8_0 blocks of an array of n fp16 values */
static size_t q8_blocks(size_t n) { return (n + 31) / 32; }

uint64_t state_layer_bytes_q(const state_meta *meta, int quant) {
    const uint64_t S = (uint64_t)meta->ctrl.cfg.S, N = (uint64_t)meta->ctrl.cfg.N, D = (uint64_t)meta->head_dim;
    uint64_t kv = quant == STATE_QUANT_Q8 ? 2 * (uint64_t)q8_blocks((size_t)(N * D)) * 34 : 2 * N * D * 2;
    return LAYER_FIXED + (uint64_t)meta->n_kv * (2 * S * D * 2 + kv + 12 * N);
}

/* fp16 array -> q8_0: per 32 values one fp16 scale d = max|x| / 127 and 32 int8 round(x / d).
 * Scales go to sc[nb], quants to q[nb * 32] (the tail of the last block is zero). */
static void q8_encode(const uint16_t *x, size_t n, uint16_t *sc, int8_t *q) {
    size_t nb = q8_blocks(n);
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * 32, k = n - i0 < 32 ? n - i0 : 32;
        float v[32], amax = 0;
        for (size_t i = 0; i < k; i++) { v[i] = f16_to_f32(x[i0 + i]); float a = fabsf(v[i]); if (a > amax) amax = a; }
        uint16_t dh = f32_to_f16(amax / 127.0f);
        float d = f16_to_f32(dh);
        float id = d > 0 ? 1.0f / d : 0.0f;
        sc[b] = dh;
        for (size_t i = 0; i < 32; i++) {
            float r = i < k ? roundf(v[i] * id) : 0.0f;
            q[b * 32 + i] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
        }
    }
}
static void q8_decode(const uint16_t *sc, const int8_t *q, size_t n, uint16_t *x) {
    for (size_t i = 0; i < n; i++) x[i] = f32_to_f16((float)q[i] * f16_to_f32(sc[i / 32]));
}

/* one K or V array in q8_0: scales (elem 2) then quants (elem 1) */
static int put_q8(const cr_ostream *o, const uint16_t *x, size_t n, uint16_t *sc, int8_t *q) {
    q8_encode(x, n, sc, q);
    size_t nb = q8_blocks(n);
    return o->put(o->ctx, sc, nb * 2, 2) || o->put(o->ctx, q, nb * 32, 1);
}
static int get_q8(const cr_istream *in, uint16_t *x, size_t n, uint16_t *sc, int8_t *q) {
    size_t nb = q8_blocks(n);
    if (in->get(in->ctx, sc, nb * 2, 2) || in->get(in->ctx, q, nb * 32, 1)) return -1;
    for (size_t b = 0; b < nb; b++)
        if ((sc[b] & 0x7C00) == 0x7C00 || (sc[b] & 0x8000)) return -1;   /* Inf, NaN or negative scale */
    q8_decode(sc, q, n, x);
    return 0;
}

static void layer_header(uint8_t *b, int layer, int n_kv, int D, int S, int N) {
    memcpy(b, LAYER_MAGIC, 4);
    put_u32(b + 4, IO_VERSION);
    put_u32(b + 8, (uint32_t)layer);
    put_u32(b + 12, (uint32_t)n_kv);
    put_u32(b + 16, (uint32_t)D);
    put_u32(b + 20, (uint32_t)S);
    put_u32(b + 24, (uint32_t)N);
}

int state_write_layer(const cr_state *s, int layer, const cr_ostream *o) { return state_write_layer_q(s, layer, 0, o); }

int state_write_layer_q(const cr_state *s, int layer, int quant, const cr_ostream *o) {
    const hparams *hp = &s->m->hp;
    if (layer < 0 || layer >= hp->n_layer) return -1;
    const int S = s->ctrl.cfg.S, N = s->ctrl.cfg.N, D = hp->head_dim;
    uint8_t b[LAYER_FIXED];
    layer_header(b, layer, hp->n_kv, D, S, N);
    if (o->put(o->ctx, b, sizeof b, 1)) return -1;
    const int q8 = quant == STATE_QUANT_Q8;
    const size_t nv = (size_t)N * D, nb = q8_blocks(nv);
    uint16_t *sc = q8 ? malloc(nb * 2) : NULL;
    int8_t *qq = q8 ? malloc(nb * 32) : NULL;
    int rc = q8 && (!sc || !qq) ? -1 : 0;
    for (int h = 0; h < hp->n_kv && !rc; h++) {
        const cascade_head *ch = &s->heads[(size_t)layer * hp->n_kv + h];
        if (!ch->og) { rc = -1; break; }
        size_t sd = (size_t)S * D * 2, nd = nv * 2;
        if ((sd && (o->put(o->ctx, ch->sink_k, sd, 2) || o->put(o->ctx, ch->sink_v, sd, 2))) ||
            (q8 ? put_q8(o, ch->k, nv, sc, qq) || put_q8(o, ch->v, nv, sc, qq)
                : o->put(o->ctx, ch->k, nd, 2) || o->put(o->ctx, ch->v, nd, 2)) ||
            o->put(o->ctx, ch->score, (size_t)N * 4, 4) || o->put(o->ctx, ch->og, (size_t)N * 8, 8))
            rc = -1;
    }
    free(sc); free(qq);
    return rc;
}

/* Index of the first fp16 Inf or NaN in p[0..n), or -1. */
static int64_t first_nonfinite_f16(const uint16_t *p, size_t n) {
    uint16_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= (uint16_t)((p[i] & 0x7C00) == 0x7C00);
    if (!acc) return -1;
    for (size_t i = 0; i < n; i++) if ((p[i] & 0x7C00) == 0x7C00) return (int64_t)i;
    return -1;
}

/* The og / score invariants of one head against the control state (see state_io.h). */
static int check_head(const cascade_ctrl *c, const cascade_head *h, int32_t *pos, int64_t *ret,
                      int layer, int head, char *err, size_t errlen) {
    const int N = c->cfg.N, S = c->cfg.S, D = h->D;
    const uint16_t *arr[4] = {h->sink_k, h->sink_v, h->k, h->v};
    const size_t cnt[4] = {(size_t)S * D, (size_t)S * D, (size_t)N * D, (size_t)N * D};
    for (int a = 0; a < 4; a++) {
        int64_t at = cnt[a] ? first_nonfinite_f16(arr[a], cnt[a]) : -1;
        if (at >= 0) {
            seterr(err, errlen, "cache state: layer %d head %d: the %s of %s %lld is not finite", layer, head,
                   a & 1 ? "value" : "key", a < 2 ? "sink" : "slot", (long long)(at / D));
            return -1;
        }
    }
    int nf = cascade_positions(c, pos);
    for (int i = 0; i < N; i++) {
        if (!isfinite(h->score[i])) {
            seterr(err, errlen, "cache state: layer %d head %d: score of slot %d is not finite", layer, head, i);
            return -1;
        }
        int64_t og = h->og[i];
        if (pos[i] >= 0) {
            if (og < 0 || og >= c->seen) {
                seterr(err, errlen, "cache state: layer %d head %d: slot %d holds token %lld, outside 0..%lld",
                       layer, head, i, (long long)og, (long long)c->seen - 1);
                return -1;
            }
        } else if (og != -1) {
            seterr(err, errlen, "cache state: layer %d head %d: empty slot %d has token index %lld",
                   layer, head, i, (long long)og);
            return -1;
        }
    }
    int n = cascade_retained(c, h, ret, CASCADE_RETAINED_ALL);
    for (int i = 1; i < n; i++)
        if (ret[i] <= ret[i - 1]) {
            seterr(err, errlen, "cache state: layer %d head %d: token indices out of order (%lld after %lld)",
                   layer, head, (long long)ret[i], (long long)ret[i - 1]);
            return -1;
        }
    if (nf > 0 && ret[n - 1] != c->seen - 1) {
        seterr(err, errlen, "cache state: layer %d head %d: newest cached token is %lld, expected %lld",
               layer, head, (long long)ret[n - 1], (long long)c->seen - 1);
        return -1;
    }
    return 0;
}

int state_read_layer(cr_state *s, const state_meta *meta, int layer, const cr_istream *in, char *err, size_t errlen) {
    return state_read_layer_q(s, meta, layer, 0, in, err, errlen);
}

int state_read_layer_q(cr_state *s, const state_meta *meta, int layer, int quant, const cr_istream *in, char *err, size_t errlen) {
    if (!state_meta_fits(s, meta)) { seterr(err, errlen, "cache state: the state does not fit the saved configuration"); return -1; }
    const hparams *hp = &s->m->hp;
    const cascade_ctrl *c = &meta->ctrl;
    const int S = c->cfg.S, N = c->cfg.N, D = hp->head_dim;
    if (layer < 0 || layer >= hp->n_layer) { seterr(err, errlen, "cache state: bad layer %d", layer); return -1; }
    uint8_t b[LAYER_FIXED], want[LAYER_FIXED];
    if (in->get(in->ctx, b, sizeof b, 1)) { seterr(err, errlen, "cache state: layer %d truncated", layer); return -1; }
    layer_header(want, layer, hp->n_kv, D, S, N);
    if (memcmp(b, want, sizeof b)) {
        if (memcmp(b, LAYER_MAGIC, 4)) seterr(err, errlen, "cache state: layer %d: bad magic", layer);
        else if (get_u32(b + 4) != IO_VERSION) seterr(err, errlen, "cache state: layer %d: unsupported version %u", layer, (unsigned)get_u32(b + 4));
        else seterr(err, errlen, "cache state: layer record %u (%u heads, dim %u, S=%u, N=%u) where layer %d (%d, %d, %d, %d) was expected",
                    (unsigned)get_u32(b + 8), (unsigned)get_u32(b + 12), (unsigned)get_u32(b + 16), (unsigned)get_u32(b + 20),
                    (unsigned)get_u32(b + 24), layer, hp->n_kv, D, S, N);
        return -1;
    }
    const int q8 = quant == STATE_QUANT_Q8;
    const size_t nv = (size_t)N * D, nb = q8_blocks(nv);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)N);
    int64_t *ret = malloc(sizeof(int64_t) * ((size_t)S + N));
    uint16_t *sc = q8 ? malloc(nb * 2) : NULL;
    int8_t *qq = q8 ? malloc(nb * 32) : NULL;
    if (!pos || !ret || (q8 && (!sc || !qq))) { free(pos); free(ret); free(sc); free(qq); seterr(err, errlen, "cache state: out of memory"); return -1; }
    int rc = 0;
    for (int h = 0; h < hp->n_kv && !rc; h++) {
        cascade_head *ch = &s->heads[(size_t)layer * hp->n_kv + h];
        size_t sd = (size_t)S * D * 2, nd = nv * 2;
        if ((sd && (in->get(in->ctx, ch->sink_k, sd, 2) || in->get(in->ctx, ch->sink_v, sd, 2))) ||
            (q8 ? get_q8(in, ch->k, nv, sc, qq) || get_q8(in, ch->v, nv, sc, qq)
                : in->get(in->ctx, ch->k, nd, 2) || in->get(in->ctx, ch->v, nd, 2)) ||
            in->get(in->ctx, ch->score, (size_t)N * 4, 4) || in->get(in->ctx, ch->og, (size_t)N * 8, 8)) {
            seterr(err, errlen, "cache state: layer %d head %d truncated", layer, h);
            rc = -1;
        } else {
            rc = check_head(c, ch, pos, ret, layer, h, err, errlen);
        }
    }
    free(pos); free(ret); free(sc); free(qq);
    return rc;
}

void state_meta_commit(cr_state *s, const state_meta *meta) { s->ctrl = meta->ctrl; }

int state_save(const cr_state *s, const cr_ostream *o) {
    if (state_write_meta(s, o)) return -1;
    for (int l = 0; l < s->m->hp.n_layer; l++)
        if (state_write_layer(s, l, o)) return -1;
    return 0;
}

int state_load(cr_state *s, const cr_model *m, const cr_istream *in, int n_threads, char *err, size_t errlen) {
    state_meta meta;
    if (state_read_meta(in, &meta, err, errlen) || state_meta_check(&meta, m, err, errlen)) return -1;
    if (!(s->m == m && state_meta_fits(s, &meta))) {
        int nt = n_threads > 0 ? n_threads : (s->tp ? tp_threads(s->tp) : 0);
        if (s->m) state_free(s);
        if (state_init(s, m, &meta.ctrl.cfg, meta.max_L, nt, err, errlen)) return -1;
    }
    for (int l = 0; l < meta.n_layer; l++)
        if (state_read_layer(s, &meta, l, in, err, errlen)) { state_reset(s); return -1; }
    state_meta_commit(s, &meta);
    return 0;
}
