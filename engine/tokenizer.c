/* Tokenizer front end: loading from GGUF metadata (or a tokenizer.model), dispatch
 * to sentencepiece (tok_spm.cpp) or byte-level BPE (tok_bpe.c), decoding, special
 * token lookup and the --tokenize / --detokenize CLI helpers. See tokenizer.h.
 *
 * Sentencepiece from GGUF: a ModelProto is serialized by hand from
 * tokenizer.ggml.{tokens,scores,token_type,add_space_prefix,unknown_token_id}
 * (model type BPE, identity normalizer, no extra-whitespace removal, byte fallback
 * when all 256 <0xNN> pieces exist) and loaded with LoadFromSerializedProto.
 *
 * Sentencepiece fast path: sentencepiece's BPE only ever merges two adjacent symbols
 * into a piece of the vocabulary, so no merge can cross two adjacent characters
 * whose class pair (▁, letter, number, other whitespace, ASCII punctuation, other)
 * never occurs inside any piece. The normalized text (spaces escaped to ▁, dummy
 * prefix added here; identity normalizer only) is cut at such places and each
 * segment is encoded by a processor without dummy prefix, through a segment -> ids
 * cache. Same ids as one Encode() call (the tests compare with python
 * sentencepiece), and much faster: libsentencepiece runs at about 1 MB/s.
 */
#include "tokenizer.h"
#include "tok_bpe.h"
#include "tok_spm.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct cr_tokenizer {
    int kind;
    int from_file;
    uint32_t n_vocab;
    char *text; uint32_t *text_off, *text_len;     /* vocabulary strings */
    char *dec; uint32_t *dec_off, *dec_len;        /* decoded bytes per token */
    uint8_t *type;                                 /* normalized TOK_T_* */
    uint32_t *spec; uint32_t n_spec;               /* non-normal ids sorted by text */
    int32_t bos, eos, eot, unk, pad;
    int add_bos, add_eos, add_space_prefix;
    pthread_mutex_t mu;
    char err[256];
    /* SPM */
    spm_proc *sp;
    int spm_fast;
    uint8_t spm_trans[8];   /* bit b of [a]: class pair (a, b) occurs inside a piece */
    tcache *cache;
    char *esc; size_t esc_cap;
    /* BPE */
    bpe_model *bpe;
};

static void seterr(char *err, size_t n, const char *fmt, ...) {
    if (!err || !n) return;
    va_list ap; va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* protobuf (just what ModelProto needs) */

typedef struct { uint8_t *p; size_t n, cap; int oom; } pbw;
static void pbw_put(pbw *w, const void *d, size_t n) {
    if (w->oom) return;
    if (w->n + n > w->cap) {
        size_t c = w->cap ? w->cap : 4096;
        while (c < w->n + n) c *= 2;
        uint8_t *r = realloc(w->p, c);
        if (!r) { w->oom = 1; return; }
        w->p = r; w->cap = c;
    }
    memcpy(w->p + w->n, d, n);
    w->n += n;
}
static size_t varint_len(uint64_t v) { size_t l = 1; while (v >= 0x80) { v >>= 7; l++; } return l; }
static void pbw_varint(pbw *w, uint64_t v) {
    uint8_t b[10]; size_t l = 0;
    while (v >= 0x80) { b[l++] = (uint8_t)(v | 0x80); v >>= 7; }
    b[l++] = (uint8_t)v;
    pbw_put(w, b, l);
}
static void pbw_tag(pbw *w, uint32_t field, uint32_t wt) { pbw_varint(w, ((uint64_t)field << 3) | wt); }
static void pbw_bytes(pbw *w, uint32_t field, const void *d, size_t n) {
    pbw_tag(w, field, 2); pbw_varint(w, n); pbw_put(w, d, n);
}
static void pbw_int(pbw *w, uint32_t field, int64_t v) { pbw_tag(w, field, 0); pbw_varint(w, (uint64_t)v); }

typedef struct { const uint8_t *p, *end; } pbr;
static int pbr_varint(pbr *r, uint64_t *v) {
    uint64_t x = 0;
    for (int s = 0; s < 64 && r->p < r->end; s += 7) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << s;
        if (!(b & 0x80)) { *v = x; return 0; }
    }
    return -1;
}
/* Next field: 1, 0 at the end, -1 malformed. For wire type 2, *d and *dn give the payload,
 * for 5 *d points at the 4 bytes, for 0 *iv is the value. */
static int pbr_next(pbr *r, uint32_t *field, uint32_t *wt, uint64_t *iv, const uint8_t **d, size_t *dn) {
    if (r->p >= r->end) return 0;
    uint64_t tag;
    if (pbr_varint(r, &tag)) return -1;
    *field = (uint32_t)(tag >> 3); *wt = (uint32_t)(tag & 7);
    switch (*wt) {
    case 0: return pbr_varint(r, iv) ? -1 : 1;
    case 1: if (r->end - r->p < 8) return -1; *d = r->p; r->p += 8; return 1;
    case 5: if (r->end - r->p < 4) return -1; *d = r->p; r->p += 4; return 1;
    case 2: {
        uint64_t l;
        if (pbr_varint(r, &l) || l > (uint64_t)(r->end - r->p)) return -1;
        *d = r->p; *dn = (size_t)l; r->p += l; return 1;
    }
    default: return -1;
    }
}

typedef struct { const char *s; uint32_t n; float score; int type; } spiece;
typedef struct {
    spiece *pc; uint32_t n;
    int model_type, byte_fallback, ws_suffix;
    int64_t unk_id, bos_id, eos_id;
    const uint8_t *norm_name; size_t norm_name_n;
    size_t charsmap_n;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
} sproto;

static int parse_model_proto(const uint8_t *buf, size_t n, sproto *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->model_type = 1; m->unk_id = 0; m->bos_id = 1; m->eos_id = 2;
    m->add_dummy_prefix = 1; m->remove_extra_ws = 1; m->escape_ws = 1;
    uint32_t cap = 0;
    pbr r = { buf, buf + n };
    uint32_t f, wt; uint64_t iv = 0; const uint8_t *d = NULL; size_t dn = 0; int rc;
    while ((rc = pbr_next(&r, &f, &wt, &iv, &d, &dn)) == 1) {
        if (f == 1 && wt == 2) {
            spiece p = { "", 0, 0.0f, 1 };
            pbr q = { d, d + dn };
            uint32_t f2, w2; uint64_t i2 = 0; const uint8_t *d2 = NULL; size_t n2 = 0; int rc2;
            while ((rc2 = pbr_next(&q, &f2, &w2, &i2, &d2, &n2)) == 1) {
                if (f2 == 1 && w2 == 2) { p.s = (const char *)d2; p.n = (uint32_t)n2; }
                else if (f2 == 2 && w2 == 5) memcpy(&p.score, d2, 4);
                else if (f2 == 3 && w2 == 0) p.type = (int)i2;
            }
            if (rc2 < 0) goto bad;
            if (m->n == cap) {
                cap = cap ? cap * 2 : 1024;
                spiece *nr = realloc(m->pc, cap * sizeof *nr);
                if (!nr) { seterr(err, errlen, "out of memory"); return -1; }
                m->pc = nr;
            }
            m->pc[m->n++] = p;
        } else if (f == 2 && wt == 2) {
            pbr q = { d, d + dn };
            uint32_t f2, w2; uint64_t i2 = 0; const uint8_t *d2 = NULL; size_t n2 = 0; int rc2;
            while ((rc2 = pbr_next(&q, &f2, &w2, &i2, &d2, &n2)) == 1) {
                if (w2 != 0) continue;
                if (f2 == 3) m->model_type = (int)i2;
                else if (f2 == 35) m->byte_fallback = i2 != 0;
                else if (f2 == 24) m->ws_suffix = i2 != 0;
                else if (f2 == 40) m->unk_id = (int32_t)i2;
                else if (f2 == 41) m->bos_id = (int32_t)i2;
                else if (f2 == 42) m->eos_id = (int32_t)i2;
            }
            if (rc2 < 0) goto bad;
        } else if (f == 3 && wt == 2) {
            pbr q = { d, d + dn };
            uint32_t f2, w2; uint64_t i2 = 0; const uint8_t *d2 = NULL; size_t n2 = 0; int rc2;
            while ((rc2 = pbr_next(&q, &f2, &w2, &i2, &d2, &n2)) == 1) {
                if (f2 == 1 && w2 == 2) { m->norm_name = d2; m->norm_name_n = n2; }
                else if (f2 == 2 && w2 == 2) m->charsmap_n = n2;
                else if (f2 == 3 && w2 == 0) m->add_dummy_prefix = i2 != 0;
                else if (f2 == 4 && w2 == 0) m->remove_extra_ws = i2 != 0;
                else if (f2 == 5 && w2 == 0) m->escape_ws = i2 != 0;
            }
            if (rc2 < 0) goto bad;
        }
    }
    if (rc < 0) goto bad;
    if (m->n == 0) { seterr(err, errlen, "no pieces in the sentencepiece model"); return -1; }
    return 0;
bad:
    seterr(err, errlen, "malformed sentencepiece model (protobuf)");
    free(m->pc); m->pc = NULL;
    return -1;
}

/* Copy of a serialized ModelProto with normalizer_spec.add_dummy_prefix = false. */
static int proto_without_prefix(const uint8_t *buf, size_t n, pbw *w) {
    pbr r = { buf, buf + n };
    uint32_t f, wt; uint64_t iv = 0; const uint8_t *d = NULL; size_t dn = 0; int rc;
    const uint8_t *start = r.p;
    int seen = 0;
    while ((rc = pbr_next(&r, &f, &wt, &iv, &d, &dn)) == 1) {
        if (f == 3 && wt == 2) {
            pbw ns = { 0 };
            pbr q = { d, d + dn };
            uint32_t f2, w2; uint64_t i2 = 0; const uint8_t *d2 = NULL; size_t n2 = 0; int rc2;
            const uint8_t *s2 = q.p;
            while ((rc2 = pbr_next(&q, &f2, &w2, &i2, &d2, &n2)) == 1) {
                if (!(f2 == 3 && w2 == 0)) pbw_put(&ns, s2, (size_t)(q.p - s2));
                s2 = q.p;
            }
            pbw_int(&ns, 3, 0);
            if (rc2 < 0 || ns.oom) { free(ns.p); return -1; }
            pbw_bytes(w, 3, ns.p, ns.n);
            free(ns.p);
            seen = 1;
        } else {
            pbw_put(w, start, (size_t)(r.p - start));
        }
        start = r.p;
    }
    if (rc < 0) return -1;
    if (!seen) { uint8_t ns[2] = { 3 << 3, 0 }; pbw_bytes(w, 3, ns, 2); }
    return w->oom ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* helpers */

static const char SP_WS[] = "\xE2\x96\x81";   /* ▁ U+2581 */

static int looks_control(const char *s, size_t n) {
    if (n < 3) return 0;
    if (!((s[0] == '<' && s[n - 1] == '>') || (s[0] == '[' && s[n - 1] == ']'))) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') return 0;
    return 1;
}
static int byte_piece(const char *s, size_t n) {   /* "<0xNN>" -> NN, else -1 */
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else return -1;
    }
    return v;
}

static int spec_cmp(const void *a, const void *b, void *arg) {
    const cr_tokenizer *t = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint32_t lx = t->text_len[x], ly = t->text_len[y];
    int c = memcmp(t->text + t->text_off[x], t->text + t->text_off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Fills text/type (already set) -> dec table and the special index. */
static int build_tables(cr_tokenizer *t, char *err, size_t errlen) {
    uint32_t nv = t->n_vocab;
    size_t total = 0;
    for (uint32_t i = 0; i < nv; i++) total += t->text_len[i] + 8;
    t->dec = malloc(total + 1);
    t->dec_off = malloc((size_t)nv * sizeof *t->dec_off);
    t->dec_len = malloc((size_t)nv * sizeof *t->dec_len);
    t->spec = malloc((size_t)nv * sizeof *t->spec);
    if (!t->dec || !t->dec_off || !t->dec_len || !t->spec) { seterr(err, errlen, "out of memory"); return -1; }
    size_t o = 0;
    for (uint32_t i = 0; i < nv; i++) {
        const char *s = t->text + t->text_off[i];
        size_t n = t->text_len[i];
        char *d = t->dec + o;
        size_t l = 0;
        int ty = t->type[i];
        if (ty == TOK_T_CONTROL) l = 0;
        else if (ty == TOK_T_BYTE && byte_piece(s, n) >= 0) { d[0] = (char)byte_piece(s, n); l = 1; }
        else if (t->kind == TOK_SPM && ty == TOK_T_UNKNOWN) { memcpy(d, " \xE2\x81\x87 ", 5); l = 5; }
        else if (t->kind == TOK_SPM) {
            for (size_t j = 0; j < n;) {
                if (j + 3 <= n && !memcmp(s + j, SP_WS, 3)) { d[l++] = ' '; j += 3; }
                else d[l++] = s[j++];
            }
        } else if (ty == TOK_T_NORMAL) l = bpe_unmap(s, n, d);
        else { memcpy(d, s, n); l = n; }
        t->dec_off[i] = (uint32_t)o; t->dec_len[i] = (uint32_t)l;
        o += l;
        if (ty != TOK_T_NORMAL && ty != TOK_T_BYTE && n) t->spec[t->n_spec++] = i;
    }
    qsort_r(t->spec, t->n_spec, sizeof *t->spec, spec_cmp, t);
    return 0;
}

int32_t tok_special(const cr_tokenizer *t, const char *text) {
    if (!t || !text) return -1;
    size_t n = strlen(text);
    uint32_t lo = 0, hi = t->n_spec;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2, id = t->spec[mid];
        uint32_t l = t->text_len[id];
        int c = memcmp(t->text + t->text_off[id], text, l < n ? l : n);
        if (!c) c = l < n ? -1 : l > n;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    if (lo < t->n_spec) {
        uint32_t id = t->spec[lo];
        if (t->text_len[id] == n && !memcmp(t->text + t->text_off[id], text, n)) return (int32_t)id;
    }
    return -1;
}

static int32_t find_text(const cr_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->text_len[i] == n && !memcmp(t->text + t->text_off[i], s, n)) return (int32_t)i;
    return -1;
}

static int copy_vocab(cr_tokenizer *t, const gguf_str *toks, uint32_t n, char *err, size_t errlen) {
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) total += toks[i].n;
    if (total > UINT32_MAX / 2) { seterr(err, errlen, "vocabulary too large"); return -1; }
    t->n_vocab = n;
    t->text = malloc(total + 1);
    t->text_off = malloc((size_t)n * sizeof *t->text_off);
    t->text_len = malloc((size_t)n * sizeof *t->text_len);
    t->type = calloc(n, 1);
    if (!t->text || !t->text_off || !t->text_len || !t->type) { seterr(err, errlen, "out of memory"); return -1; }
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(t->text + o, toks[i].s, toks[i].n);
        t->text_off[i] = (uint32_t)o; t->text_len[i] = (uint32_t)toks[i].n;
        o += toks[i].n;
    }
    return 0;
}

static int32_t gguf_id(const gguf_file *g, const char *key, uint32_t n_vocab, int32_t def) {
    int64_t v;
    if (g && gguf_get_i64(g, key, &v)) return (v >= 0 && v < (int64_t)n_vocab) ? (int32_t)v : -1;
    return def;
}

/* ------------------------------------------------------------------------ */
/* sentencepiece setup */

enum { SC_WS_SYM, SC_LETTER, SC_NUMBER, SC_SPACE, SC_PUNCT, SC_OTHER };
static inline int spm_cls(uint32_t cp) {
    if (cp == 0x2581) return SC_WS_SYM;
    unsigned f = bpe_ucls(cp);
    if (f & 1) return SC_LETTER;
    if (f & 2) return SC_NUMBER;
    if (f & 4) return SC_SPACE;
    if (cp >= 0x21 && cp <= 0x7E) return SC_PUNCT;
    return SC_OTHER;
}
static void spm_add_trans(uint8_t tr[8], const char *s, size_t n) {
    int prev = -1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += bpe_u8dec((const uint8_t *)s, n, i, &cp);
        int c = spm_cls(cp);
        if (prev >= 0) tr[prev] |= (uint8_t)(1u << c);
        prev = c;
    }
}

/* Can the segment cache be used; fills the class-pair table from the pieces. */
static int spm_check_fast(const sproto *m, uint8_t tr[8]) {
    const char *nf = getenv("CR_TOK_SPM_DIRECT");   /* debugging / benchmarks: whole-text Encode() */
    if (nf && *nf == '1') return 0;
    if (m->model_type != 2 || m->ws_suffix || m->remove_extra_ws || !m->escape_ws || m->charsmap_n) return 0;
    if (m->norm_name_n && !(m->norm_name_n == 8 && !memcmp(m->norm_name, "identity", 8))) return 0;
    memset(tr, 0, 8);
    for (uint32_t i = 0; i < m->n; i++) {
        int ty = m->pc[i].type;
        if (ty == 2 || ty == 3 || ty == 6) continue;   /* unknown, control, byte: never merged */
        spm_add_trans(tr, m->pc[i].s, m->pc[i].n);
    }
    return 1;
}

static spm_proc *load_spm_bytes(const uint8_t *buf, size_t n, const sproto *m, int *fast, uint8_t tr[8],
                                char *err, size_t errlen) {
    *fast = spm_check_fast(m, tr);
    if (!*fast) return spm_load_proto(buf, n, err, errlen);
    pbw w = { 0 };
    if (proto_without_prefix(buf, n, &w)) {
        free(w.p);
        *fast = 0;
        return spm_load_proto(buf, n, err, errlen);
    }
    spm_proc *p = spm_load_proto(w.p, w.n, err, errlen);
    free(w.p);
    return p;
}

static uint8_t map_spm_type(int pt) {
    switch (pt) {
    case 2: return TOK_T_UNKNOWN;
    case 3: return TOK_T_CONTROL;
    case 4: return TOK_T_USER;
    case 5: return TOK_T_UNUSED;
    case 6: return TOK_T_BYTE;
    default: return TOK_T_NORMAL;
    }
}

static int load_spm_file(cr_tokenizer *t, const gguf_file *g, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { seterr(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    uint8_t *buf = NULL; size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            if (cap > (256u << 20)) { fclose(f); free(buf); seterr(err, errlen, "%s: too large for a sentencepiece model", path); return -1; }
            uint8_t *r = realloc(buf, cap);
            if (!r) { fclose(f); free(buf); seterr(err, errlen, "out of memory"); return -1; }
            buf = r;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) { free(buf); seterr(err, errlen, "%s: read error", path); return -1; }
    sproto m;
    char e2[200];
    if (parse_model_proto(buf, n, &m, e2, sizeof e2)) { free(buf); seterr(err, errlen, "%s: %s", path, e2); return -1; }
    gguf_str *toks = calloc(m.n, sizeof *toks);
    if (!toks) { free(buf); free(m.pc); seterr(err, errlen, "out of memory"); return -1; }
    for (uint32_t i = 0; i < m.n; i++) { toks[i].s = m.pc[i].s; toks[i].n = m.pc[i].n; }
    int rc = copy_vocab(t, toks, m.n, err, errlen);
    free(toks);
    if (!rc) {
        for (uint32_t i = 0; i < m.n; i++) t->type[i] = map_spm_type(m.pc[i].type);
        t->sp = load_spm_bytes(buf, n, &m, &t->spm_fast, t->spm_trans, e2, sizeof e2);
        if (!t->sp) { seterr(err, errlen, "%s: %s", path, e2); rc = -1; }
    }
    if (!rc) {
        t->add_space_prefix = m.add_dummy_prefix;
        int32_t nb = (m.bos_id >= 0 && m.bos_id < m.n) ? (int32_t)m.bos_id : -1;
        int32_t ne = (m.eos_id >= 0 && m.eos_id < m.n) ? (int32_t)m.eos_id : -1;
        t->unk = -1;
        for (uint32_t i = 0; i < m.n && t->unk < 0; i++) if (m.pc[i].type == 2) t->unk = (int32_t)i;
        t->bos = gguf_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, nb);
        t->eos = gguf_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, ne);
    }
    free(m.pc);
    free(buf);
    return rc;
}

/* Builds the ModelProto from GGUF metadata. */
static int load_spm_gguf(cr_tokenizer *t, const gguf_file *g, char *err, size_t errlen) {
    const gguf_kv *ks = gguf_find(g, "tokenizer.ggml.scores");
    uint32_t nv = t->n_vocab;
    if (ks && (ks->type != GGUF_T_ARRAY || ks->arr_type == GGUF_T_STRING || ks->arr_n != nv)) {
        seterr(err, errlen, "%s: tokenizer.ggml.scores does not match the %u tokens", g->path, nv); return -1;
    }
    int apf = 1;
    gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &apf);
    t->add_space_prefix = apf != 0;
    int32_t unk = gguf_id(g, "tokenizer.ggml.unknown_token_id", nv, -1);
    if (unk < 0) for (uint32_t i = 0; i < nv && unk < 0; i++) if (t->type[i] == TOK_T_UNKNOWN) unk = (int32_t)i;
    if (unk < 0) unk = find_text(t, "<unk>");
    if (unk < 0) { seterr(err, errlen, "%s: sentencepiece vocabulary without an unknown token", g->path); return -1; }
    t->unk = unk;
    int nbytes = 0;
    uint8_t have[256] = { 0 };
    for (uint32_t i = 0; i < nv; i++) {
        if (t->type[i] == TOK_T_UNKNOWN && (int32_t)i != unk) t->type[i] = TOK_T_CONTROL;
        if ((int32_t)i == unk) t->type[i] = TOK_T_UNKNOWN;
        if (t->type[i] == TOK_T_BYTE) {
            int b = byte_piece(t->text + t->text_off[i], t->text_len[i]);
            if (b < 0) t->type[i] = TOK_T_NORMAL;
            else if (!have[b]) { have[b] = 1; nbytes++; }
        }
    }
    /* sentencepiece rejects empty and duplicate pieces: rename them (as control) */
    uint32_t hcap = 16;
    while (hcap < 2 * nv + 16) hcap *= 2;
    uint32_t *hs = calloc(hcap, sizeof *hs);
    uint8_t *rename = calloc(nv, 1);
    pbw w = { 0 };
    if (!hs || !rename) { free(hs); free(rename); seterr(err, errlen, "out of memory"); return -1; }
    for (uint32_t i = 0; i < nv; i++) {
        const char *s = t->text + t->text_off[i]; uint32_t n = t->text_len[i];
        if (!n) { rename[i] = 1; continue; }
        uint64_t h = 1469598103934665603ull;
        for (uint32_t j = 0; j < n; j++) { h ^= (uint8_t)s[j]; h *= 1099511628211ull; }
        uint32_t k = (uint32_t)(h ^ (h >> 29)) & (hcap - 1);
        for (;; k = (k + 1) & (hcap - 1)) {
            if (!hs[k]) { hs[k] = i + 1; break; }
            uint32_t o = hs[k] - 1;
            if (t->text_len[o] == n && !memcmp(t->text + t->text_off[o], s, n)) { rename[i] = 1; break; }
        }
        if (rename[i] && t->type[i] != TOK_T_UNKNOWN) t->type[i] = TOK_T_CONTROL;
    }
    free(hs);
    /* pieces */
    for (uint32_t i = 0; i < nv; i++) {
        char nm[40];
        const char *s = t->text + t->text_off[i]; size_t n = t->text_len[i];
        if (rename[i]) { n = (size_t)snprintf(nm, sizeof nm, "<cr-dup-%u>", i); s = nm; }
        int pt;
        switch (t->type[i]) {
        case TOK_T_UNKNOWN: pt = 2; break;
        case TOK_T_CONTROL: pt = 3; break;
        case TOK_T_USER: pt = 4; break;
        case TOK_T_UNUSED: pt = 5; break;
        case TOK_T_BYTE: pt = 6; break;
        default: pt = 1; break;
        }
        float sc = ks ? (float)gguf_arr_f64(ks, i) : 0.0f;
        size_t body = 1 + varint_len(n) + n + 1 + 4 + 1 + varint_len((uint64_t)pt);
        pbw_tag(&w, 1, 2); pbw_varint(&w, body);
        pbw_bytes(&w, 1, s, n);
        pbw_tag(&w, 2, 5); pbw_put(&w, &sc, 4);
        pbw_int(&w, 3, pt);
    }
    free(rename);
    pbw tr = { 0 };
    pbw_int(&tr, 3, 2);                 /* model_type = BPE */
    pbw_int(&tr, 4, nv);                /* vocab_size */
    pbw_int(&tr, 35, nbytes == 256);    /* byte_fallback */
    pbw_int(&tr, 40, unk);              /* unk_id */
    pbw_int(&tr, 41, -1); pbw_int(&tr, 42, -1); pbw_int(&tr, 43, -1);
    pbw nr = { 0 };
    pbw_bytes(&nr, 1, "identity", 8);
    pbw_int(&nr, 3, t->add_space_prefix);
    pbw_int(&nr, 4, 0);                 /* remove_extra_whitespaces */
    pbw_int(&nr, 5, 1);                 /* escape_whitespaces */
    pbw_bytes(&w, 2, tr.p, tr.n);
    size_t norm_at = w.n;
    pbw_bytes(&w, 3, nr.p, nr.n);
    int oom = w.oom || tr.oom || nr.oom;
    free(tr.p); free(nr.p);
    if (oom) { free(w.p); seterr(err, errlen, "out of memory"); return -1; }
    /* decide the fast path on the same piece list */
    sproto m;
    char e2[200];
    if (parse_model_proto(w.p, w.n, &m, e2, sizeof e2)) { free(w.p); seterr(err, errlen, "%s: %s", g->path, e2); return -1; }
    t->spm_fast = spm_check_fast(&m, t->spm_trans);
    free(m.pc);
    if (t->spm_fast && t->add_space_prefix) {
        /* rewrite the normalizer with add_dummy_prefix = 0 (the prefix is added here) */
        w.n = norm_at;
        pbw nr2 = { 0 };
        pbw_bytes(&nr2, 1, "identity", 8);
        pbw_int(&nr2, 3, 0); pbw_int(&nr2, 4, 0); pbw_int(&nr2, 5, 1);
        pbw_bytes(&w, 3, nr2.p, nr2.n);
        free(nr2.p);
        if (w.oom) { free(w.p); seterr(err, errlen, "out of memory"); return -1; }
    }
    t->sp = spm_load_proto(w.p, w.n, e2, sizeof e2);
    free(w.p);
    if (!t->sp) { seterr(err, errlen, "%s: %s", g->path, e2); return -1; }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* load */

cr_tokenizer *tok_load(const gguf_file *g, const char *spm_model_path, char *err, size_t errlen) {
    char tmp[1];
    if (!err) { err = tmp; errlen = sizeof tmp; }
    if (!g && !spm_model_path) { seterr(err, errlen, "tok_load: no GGUF and no tokenizer model"); return NULL; }
    cr_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { seterr(err, errlen, "out of memory"); return NULL; }
    pthread_mutex_init(&t->mu, NULL);
    t->bos = t->eos = t->eot = t->unk = t->pad = -1;
    if (spm_model_path) {
        t->kind = TOK_SPM;
        t->from_file = 1;
        if (load_spm_file(t, g, spm_model_path, err, errlen)) goto fail;
    } else {
        gguf_str model;
        if (!gguf_get_str(g, "tokenizer.ggml.model", &model)) {
            seterr(err, errlen, "%s: no tokenizer.ggml.model in the metadata", g->path); goto fail;
        }
        if (gguf_str_eq(model, "llama")) t->kind = TOK_SPM;
        else if (gguf_str_eq(model, "gpt2")) t->kind = TOK_BPE;
        else {
            seterr(err, errlen, "%s: unsupported tokenizer.ggml.model '%.*s' (supported: llama, gpt2)",
                   g->path, (int)(model.n > 40 ? 40 : model.n), model.s);
            goto fail;
        }
        const gguf_kv *kv = gguf_find(g, "tokenizer.ggml.tokens");
        if (!kv || kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_STRING || kv->arr_n == 0) {
            seterr(err, errlen, "%s: no tokenizer.ggml.tokens string array", g->path); goto fail;
        }
        if (kv->arr_n > (1u << 24)) { seterr(err, errlen, "%s: vocabulary of %llu tokens is too large", g->path, (unsigned long long)kv->arr_n); goto fail; }
        uint32_t nv = (uint32_t)kv->arr_n;
        gguf_str *toks = malloc((size_t)nv * sizeof *toks);
        if (!toks) { seterr(err, errlen, "out of memory"); goto fail; }
        gguf_arr_strs(kv, toks);
        int rc = copy_vocab(t, toks, nv, err, errlen);
        free(toks);
        if (rc) goto fail;
        const gguf_kv *kt = gguf_find(g, "tokenizer.ggml.token_type");
        if (kt && (kt->type != GGUF_T_ARRAY || kt->arr_type == GGUF_T_STRING || kt->arr_n != nv)) {
            seterr(err, errlen, "%s: tokenizer.ggml.token_type does not match the %u tokens", g->path, nv); goto fail;
        }
        for (uint32_t i = 0; i < nv; i++) {
            int64_t ty = kt ? gguf_arr_i64(kt, i) : TOK_T_NORMAL;
            if (ty < TOK_T_NORMAL || ty > TOK_T_BYTE) ty = TOK_T_NORMAL;
            if (ty == TOK_T_USER && looks_control(t->text + t->text_off[i], t->text_len[i])) ty = TOK_T_CONTROL;
            t->type[i] = (uint8_t)ty;
        }
        if (t->kind == TOK_SPM) {
            if (load_spm_gguf(t, g, err, errlen)) goto fail;
        } else {
            t->unk = gguf_id(g, "tokenizer.ggml.unknown_token_id", nv, -1);
            const gguf_kv *km = gguf_find(g, "tokenizer.ggml.merges");
            gguf_str *merges = NULL; uint64_t n_merges = 0;
            if (km) {
                if (km->type != GGUF_T_ARRAY || km->arr_type != GGUF_T_STRING) {
                    seterr(err, errlen, "%s: tokenizer.ggml.merges is not a string array", g->path); goto fail;
                }
                n_merges = km->arr_n;
                merges = malloc((size_t)(n_merges ? n_merges : 1) * sizeof *merges);
                if (!merges) { seterr(err, errlen, "out of memory"); goto fail; }
                gguf_arr_strs(km, merges);
            }
            char pre[64] = "";
            gguf_get_cstr(g, "tokenizer.ggml.pre", pre, sizeof pre);
            gguf_str *tk2 = malloc((size_t)nv * sizeof *tk2);
            if (!tk2) { free(merges); seterr(err, errlen, "out of memory"); goto fail; }
            for (uint32_t i = 0; i < nv; i++) { tk2[i].s = t->text + t->text_off[i]; tk2[i].n = t->text_len[i]; }
            char e2[200];
            t->bpe = bpe_load(tk2, t->type, nv, merges, n_merges, pre[0] ? pre : NULL, t->unk, e2, sizeof e2);
            free(tk2); free(merges);
            if (!t->bpe) { seterr(err, errlen, "%s: %s", g->path, e2); goto fail; }
        }
        t->bos = gguf_id(g, "tokenizer.ggml.bos_token_id", nv, -1);
        t->eos = gguf_id(g, "tokenizer.ggml.eos_token_id", nv, -1);
        if (t->kind == TOK_SPM) {
            if (t->bos < 0) t->bos = find_text(t, "<s>");
            if (t->eos < 0) t->eos = find_text(t, "</s>");
        }
    }
    uint32_t nv = t->n_vocab;
    t->eot = gguf_id(g, "tokenizer.ggml.eot_token_id", nv, -1);
    t->pad = gguf_id(g, "tokenizer.ggml.padding_token_id", nv, -1);
    int ab = -1, ae = 0;
    if (g) { gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &ab); gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &ae); }
    if (ab < 0) ab = t->kind == TOK_SPM || (t->bpe && !strcmp(bpe_pre_rule(t->bpe), "llama3"));
    t->add_bos = ab && t->bos >= 0;
    t->add_eos = ae && t->eos >= 0;
    if (t->kind == TOK_BPE) t->add_space_prefix = 0;
    if (t->kind == TOK_SPM && t->spm_fast) {
        t->cache = tcache_new();
        if (!t->cache) { seterr(err, errlen, "out of memory"); goto fail; }
    }
    if (build_tables(t, err, errlen)) goto fail;
    return t;
fail:
    tok_free(t);
    return NULL;
}

void tok_free(cr_tokenizer *t) {
    if (!t) return;
    spm_free(t->sp);
    bpe_free(t->bpe);
    tcache_free(t->cache);
    free(t->esc);
    free(t->text); free(t->text_off); free(t->text_len);
    free(t->dec); free(t->dec_off); free(t->dec_len);
    free(t->type); free(t->spec);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int tok_kind(const cr_tokenizer *t) { return t->kind; }
const char *tok_kind_name(const cr_tokenizer *t) { return t->kind == TOK_SPM ? "spm" : "bpe"; }
const char *tok_pre_name(const cr_tokenizer *t) {
    if (t->kind == TOK_BPE) return bpe_pre_rule(t->bpe);
    return t->from_file ? "spm-file" : "spm";
}
int tok_n_vocab(const cr_tokenizer *t) { return (int)t->n_vocab; }
int32_t tok_bos(const cr_tokenizer *t) { return t->bos; }
int32_t tok_eos(const cr_tokenizer *t) { return t->eos; }
int32_t tok_eot(const cr_tokenizer *t) { return t->eot; }
int32_t tok_unk(const cr_tokenizer *t) { return t->unk; }
int tok_add_bos(const cr_tokenizer *t) { return t->add_bos; }
int tok_add_eos(const cr_tokenizer *t) { return t->add_eos; }
int tok_add_space_prefix(const cr_tokenizer *t) { return t->add_space_prefix; }
const char *tok_last_error(const cr_tokenizer *t) { return t->err; }

int tok_token_type(const cr_tokenizer *t, int32_t id) {
    return (id >= 0 && (uint32_t)id < t->n_vocab) ? t->type[id] : 0;
}
int tok_is_control(const cr_tokenizer *t, int32_t id) { return tok_token_type(t, id) == TOK_T_CONTROL; }
const char *tok_token_text(const cr_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) { if (len) *len = 0; return ""; }
    if (len) *len = t->text_len[id];
    return t->text + t->text_off[id];
}

/* ------------------------------------------------------------------------ */
/* encode */

static int spm_segment(cr_tokenizer *t, const char *s, size_t n, int32_t **ids, size_t *nn, size_t *cap) {
    const int32_t *cv; size_t cn;
    if (tcache_get(t->cache, s, n, &cv, &cn)) {
        if (tok_ids_push(ids, nn, cap, cv, cn)) { seterr(t->err, sizeof t->err, "out of memory"); return -1; }
        return 0;
    }
    size_t start = *nn;
    if (spm_encode(t->sp, s, n, ids, nn, cap, t->err, sizeof t->err)) return -1;
    tcache_put(t->cache, s, n, *ids + start, *nn - start);
    return 0;
}

static int spm_encode_fast(cr_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    if (len == 0) return 0;
    if (len > (SIZE_MAX - 3) / 3) { seterr(t->err, sizeof t->err, "text too large"); return -1; }
    size_t need = 3 * len + 3;
    if (need > t->esc_cap) {
        char *r = realloc(t->esc, need);
        if (!r) { seterr(t->err, sizeof t->err, "out of memory"); return -1; }
        t->esc = r; t->esc_cap = need;
    }
    char *e = t->esc;
    size_t o = 0;
    if (t->add_space_prefix) { memcpy(e, SP_WS, 3); o = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(e + o, SP_WS, 3); o += 3; }
        else e[o++] = text[i];
    }
    size_t a = 0;
    int prev = -1;
    for (size_t i = 0; i < o;) {
        uint32_t cp;
        size_t l = bpe_u8dec((const uint8_t *)e, o, i, &cp);
        int c = spm_cls(cp);
        if (prev >= 0 && !(t->spm_trans[prev] & (1u << c))) {
            if (spm_segment(t, e + a, i - a, ids, n, cap)) return -1;
            a = i;
        }
        prev = c;
        i += l;
    }
    return spm_segment(t, e + a, o - a, ids, n, cap);
}

int tok_encode(cr_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    if (!text && len) { seterr(t->err, sizeof t->err, "NULL text"); return -1; }
    if (len == 0) return 0;
    pthread_mutex_lock(&t->mu);
    int rc;
    if (t->kind == TOK_BPE) rc = bpe_encode(t->bpe, text, len, ids, n, cap, t->err, sizeof t->err);
    else if (t->spm_fast) rc = spm_encode_fast(t, text, len, ids, n, cap);
    else rc = spm_encode(t->sp, text, len, ids, n, cap, t->err, sizeof t->err);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* decode */

size_t tok_piece(const cr_tokenizer *t, int32_t id, int after_bos, char *buf, size_t cap) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) return 0;
    const char *s = t->dec + t->dec_off[id];
    size_t n = t->dec_len[id];
    if (after_bos && t->kind == TOK_SPM && t->add_space_prefix && n && s[0] == ' ' &&
        t->type[id] != TOK_T_BYTE) { s++; n--; }
    if (buf) memcpy(buf, s, n < cap ? n : cap);
    return n;
}

int tok_decode_ex(const cr_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                  char **out, size_t *out_len) {
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab) return -1;
        total += (flags & TOK_DECODE_SPECIAL) && t->type[ids[i]] == TOK_T_CONTROL ? t->text_len[ids[i]] : t->dec_len[ids[i]];
    }
    char *o = malloc(total);
    if (!o) return -1;
    size_t l = 0;
    int first = !(flags & TOK_DECODE_KEEP_SPACE);
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (t->type[id] == TOK_T_CONTROL) {
            if (flags & TOK_DECODE_SPECIAL) { memcpy(o + l, t->text + t->text_off[id], t->text_len[id]); l += t->text_len[id]; }
            continue;
        }
        size_t k = tok_piece(t, id, first, o + l, total - 1 - l);
        l += k;
        if (t->dec_len[id]) first = 0;
    }
    o[l] = 0;
    *out = o;
    if (out_len) *out_len = l;
    return 0;
}

int tok_decode(const cr_tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *out_len) {
    return tok_decode_ex(t, ids, n, 0, out, out_len);
}

/* ------------------------------------------------------------------------ */
/* CLI */

static cr_tokenizer *cli_open(const char *model_path, const char *spm_path, char *err, size_t n) {
    if (!model_path && !spm_path) { seterr(err, n, "--tokenize/--detokenize need --model"); return NULL; }
    gguf_file *g = NULL;
    if (model_path) {
        g = calloc(1, sizeof *g);
        if (!g) { seterr(err, n, "out of memory"); return NULL; }
        if (gguf_open(g, model_path)) { seterr(err, n, "%s", g->err); free(g); return NULL; }
    }
    cr_tokenizer *t = tok_load(g, spm_path, err, n);
    if (g) { gguf_close(g); free(g); }
    return t;
}

int tok_cli_tokenize_ex(const char *model_path, const char *spm_path, const char *text,
                        FILE *out, char *err, size_t n) {
    cr_tokenizer *t = cli_open(model_path, spm_path, err, n);
    if (!t) return -1;
    int32_t *ids = NULL; size_t k = 0, cap = 0;
    int rc = tok_encode(t, text ? text : "", text ? strlen(text) : 0, &ids, &k, &cap);
    if (rc) seterr(err, n, "tokenize: %s", t->err);
    else {
        for (size_t i = 0; i < k; i++) fprintf(out, i ? " %d" : "%d", ids[i]);
        fputc('\n', out);
        if (fflush(out)) { seterr(err, n, "tokenize: write error: %s", strerror(errno)); rc = -1; }
    }
    free(ids);
    tok_free(t);
    return rc;
}

int tok_cli_detokenize_ex(const char *model_path, const char *spm_path, const char *idstr,
                          FILE *out, char *err, size_t n) {
    cr_tokenizer *t = cli_open(model_path, spm_path, err, n);
    if (!t) return -1;
    int32_t *ids = NULL; size_t k = 0, cap = 0;
    int rc = 0;
    const char *p = idstr ? idstr : "";
    while (*p && !rc) {
        if (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '[' || *p == ']') { p++; continue; }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= (long)t->n_vocab) {
            size_t w = strcspn(p, " ,\t\n\r[]");
            seterr(err, n, "detokenize: bad token id '%.*s' (vocabulary of %u)", (int)(w > 24 ? 24 : w), p, t->n_vocab);
            rc = -1; break;
        }
        int32_t id = (int32_t)v;
        if (tok_ids_push(&ids, &k, &cap, &id, 1)) { seterr(err, n, "out of memory"); rc = -1; }
        p = end;
    }
    if (!rc) {
        char *s; size_t l;
        if (tok_decode_ex(t, ids, k, TOK_DECODE_SPECIAL, &s, &l)) { seterr(err, n, "detokenize: out of memory"); rc = -1; }
        else {
            fwrite(s, 1, l, out);
            fputc('\n', out);
            free(s);
            if (fflush(out)) { seterr(err, n, "detokenize: write error: %s", strerror(errno)); rc = -1; }
        }
    }
    free(ids);
    tok_free(t);
    return rc;
}

int tok_cli_tokenize(const char *model_path, const char *text, FILE *out, char *err, size_t n) {
    return tok_cli_tokenize_ex(model_path, NULL, text, out, err, n);
}
int tok_cli_detokenize(const char *model_path, const char *ids, FILE *out, char *err, size_t n) {
    return tok_cli_detokenize_ex(model_path, NULL, ids, out, err, n);
}
