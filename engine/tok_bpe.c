/* Byte-level BPE: see tok_bpe.h.
 *
 * Pre-tokenization follows llama.cpp's unicode_regex_split(): the regexes of a
 * tokenizer.ggml.pre value are applied in sequence, each one splitting every
 * piece left by the previous one into its matches and the text between them.
 * The GPT-2, Llama 3 / Qwen2 and "single digits" rules are hand-written (like
 * llama.cpp's unicode_regex_split_custom_*), the rest go through PCRE2 (UTF, UCP,
 * MATCH_INVALID_UTF, JIT). Unicode letter/number classes come from PCRE2 too,
 * computed once per 64K plane on first use.
 *
 * Words are then merged with the rank table; the result of each word is cached. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok_bpe.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* hashing */

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 31; h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29; h *= 0x94d049bb133111ebull;
    h ^= h >> 32;
    return h;
}
static inline uint64_t hbytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v; memcpy(&v, s, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull; h ^= h >> 31;
        s += 8; n -= 8;
    }
    uint64_t v = 0;
    if (n) memcpy(&v, s, n);
    return mix64(h ^ v ^ ((uint64_t)n << 56));
}

int tok_ids_push(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k) {
    if (*n + k > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *n + k) nc *= 2;
        int32_t *r = realloc(*ids, nc * sizeof *r);
        if (!r) return -1;
        *ids = r; *cap = nc;
    }
    memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* word cache */

typedef struct { uint64_t h; uint32_t koff, voff; uint16_t klen, nv; } cslot;
struct tcache {
    cslot *slot; uint32_t mask, count;
    uint8_t *kar; size_t kn, kcap;
    int32_t *var; size_t vn, vcap;
};
#define TC_SLOTS (1u << 17)
#define TC_KMAX  (8u << 20)
#define TC_VMAX  (2u << 20)

tcache *tcache_new(void) {
    tcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slot = calloc(TC_SLOTS, sizeof *c->slot);
    if (!c->slot) { free(c); return NULL; }
    c->mask = TC_SLOTS - 1;
    return c;
}
void tcache_free(tcache *c) {
    if (!c) return;
    free(c->slot); free(c->kar); free(c->var); free(c);
}
static void tcache_clear(tcache *c) {
    memset(c->slot, 0, (size_t)(c->mask + 1) * sizeof *c->slot);
    c->count = 0; c->kn = 0; c->vn = 0;
}
int tcache_get(tcache *c, const void *key, size_t n, const int32_t **ids, size_t *n_ids) {
    if (!c || n == 0 || n > TCACHE_MAX_KEY) return 0;
    uint64_t h = hbytes(key, n) | 1;
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        cslot *s = &c->slot[i];
        if (!s->h) return 0;
        if (s->h == h && s->klen == n && !memcmp(c->kar + s->koff, key, n)) {
            *ids = c->var + s->voff; *n_ids = s->nv;
            return 1;
        }
    }
}
void tcache_put(tcache *c, const void *key, size_t n, const int32_t *ids, size_t n_ids) {
    if (!c || n == 0 || n > TCACHE_MAX_KEY || n_ids > 0xFFFF) return;
    if (c->count >= (c->mask + 1) / 4 * 3 || c->kn + n > TC_KMAX || c->vn + n_ids > TC_VMAX)
        tcache_clear(c);
    if (c->kn + n > c->kcap) {
        size_t nc = c->kcap ? c->kcap * 2 : 65536;
        while (nc < c->kn + n) nc *= 2;
        uint8_t *r = realloc(c->kar, nc);
        if (!r) return;
        c->kar = r; c->kcap = nc;
    }
    if (c->vn + n_ids > c->vcap) {
        size_t nc = c->vcap ? c->vcap * 2 : 16384;
        while (nc < c->vn + n_ids) nc *= 2;
        int32_t *r = realloc(c->var, nc * sizeof *r);
        if (!r) return;
        c->var = r; c->vcap = nc;
    }
    uint64_t h = hbytes(key, n) | 1;
    uint32_t i = (uint32_t)h & c->mask;
    while (c->slot[i].h) {
        cslot *s = &c->slot[i];
        if (s->h == h && s->klen == n && !memcmp(c->kar + s->koff, key, n)) return;
        i = (i + 1) & c->mask;
    }
    memcpy(c->kar + c->kn, key, n);
    if (n_ids) memcpy(c->var + c->vn, ids, n_ids * sizeof *ids);
    c->slot[i] = (cslot){ h, (uint32_t)c->kn, (uint32_t)c->vn, (uint16_t)n, (uint16_t)n_ids };
    c->kn += n; c->vn += n_ids; c->count++;
}

/* ------------------------------------------------------------------------ */
/* GPT-2 byte <-> unicode */

static uint16_t g_b2u[256];      /* byte -> code point */
static int16_t  g_u2b[0x144];    /* code point -> byte, -1 if not in the alphabet */
static pthread_once_t g_b2u_once = PTHREAD_ONCE_INIT;
static void b2u_init(void) {
    int n = 0;
    for (int i = 0; i < 0x144; i++) g_u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        g_b2u[b] = (uint16_t)(keep ? b : 256 + n++);
        g_u2b[g_b2u[b]] = (int16_t)b;
    }
}

/* Lenient UTF-8 decoding: an invalid byte is one "character" CP_BAD. */
#define CP_BAD 0x110000u
static inline size_t u8dec(const uint8_t *s, size_t n, size_t i, uint32_t *cp) {
    uint8_t c = s[i];
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) {
        if (i + 1 < n && (s[i + 1] & 0xC0) == 0x80) { *cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F); return 2; }
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (i + 2 < n && (s[i + 1] & 0xC0) == 0x80 && (s[i + 2] & 0xC0) == 0x80) {
            uint32_t v = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) { *cp = v; return 3; }
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (i + 3 < n && (s[i + 1] & 0xC0) == 0x80 && (s[i + 2] & 0xC0) == 0x80 && (s[i + 3] & 0xC0) == 0x80) {
            uint32_t v = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                         ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            if (v >= 0x10000 && v <= 0x10FFFF) { *cp = v; return 4; }
        }
    }
    *cp = CP_BAD;
    return 1;
}
static size_t u8enc(uint32_t c, uint8_t *o) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12)); o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F)); return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18)); o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (c & 0x3F)); return 4;
}

size_t bpe_u8dec(const uint8_t *s, size_t n, size_t i, uint32_t *cp) { return u8dec(s, n, i, cp); }

size_t bpe_unmap(const char *s, size_t n, char *out) {
    pthread_once(&g_b2u_once, b2u_init);
    const uint8_t *u = (const uint8_t *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp; size_t l = u8dec(u, n, i, &cp);
        if (cp < 0x144 && g_u2b[cp] >= 0) out[o++] = (char)g_u2b[cp];
        else { memcpy(out + o, s + i, l); o += l; }
        i += l;
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Unicode classes */

#define F_L  1u
#define F_N  2u
#define F_WS 4u

static uint8_t g_ascii[128];
static _Atomic(uint8_t *) g_plane[17];
static pthread_mutex_t g_plane_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_ascii_once = PTHREAD_ONCE_INIT;
static void ascii_init(void) {
    for (int c = 0; c < 128; c++) {
        uint8_t f = 0;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) f = F_L;
        else if (c >= '0' && c <= '9') f = F_N;
        else if ((c >= 9 && c <= 13) || c == ' ') f = F_WS;
        g_ascii[c] = f;
    }
}
static int is_white_space(uint32_t c) {   /* Unicode White_Space (what \s is in Rust/Oniguruma) */
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}
static uint8_t *plane_fill(unsigned p) {
    pthread_mutex_lock(&g_plane_mu);
    uint8_t *t = atomic_load_explicit(&g_plane[p], memory_order_acquire);
    if (!t) {
        t = calloc(65536, 1);
        int ec; PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)"(\\p{L})|(\\p{N})", PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &eo, NULL);
        pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
        if (t && re && md) {
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
            for (uint32_t lo = 0; lo < 65536; lo++) {
                uint32_t c = (p << 16) | lo;
                if (c >= 0xD800 && c <= 0xDFFF) continue;
                uint8_t f = is_white_space(c) ? F_WS : 0;
                if (c < 128) f = g_ascii[c];
                else if (!f) {
                    uint8_t b[4]; size_t l = u8enc(c, b);
                    if (pcre2_match(re, b, l, 0, 0, md, NULL) > 0) {
                        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                        f = ov[2] != PCRE2_UNSET ? F_L : F_N;
                    }
                }
                t[lo] = f;
            }
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (t) atomic_store_explicit(&g_plane[p], t, memory_order_release);
    }
    pthread_mutex_unlock(&g_plane_mu);
    return t;
}
static inline unsigned ucls(uint32_t c) {
    if (c < 128) return g_ascii[c];
    if (c > 0x10FFFF) return 0;
    uint8_t *t = atomic_load_explicit(&g_plane[c >> 16], memory_order_acquire);
    if (!t && !(t = plane_fill(c >> 16))) return 0;
    return t[c & 0xFFFF];
}
unsigned bpe_ucls(uint32_t cp) {
    pthread_once(&g_ascii_once, ascii_init);
    return ucls(cp);
}

/* ------------------------------------------------------------------------ */
/* the model */

enum { ST_GPT2, ST_LLAMA3, ST_SPLIT_N, ST_PCRE };
typedef struct { int kind; int maxdig; pcre2_code *re; } stage;

typedef struct { uint64_t key; uint32_t rank; int32_t id; } mslot;
typedef struct { int32_t child, sib, id; uint8_t c; } tnode;
typedef struct { uint32_t rank, pos; int32_t a, b, mid; } hent;

struct bpe_model {
    uint32_t n_tok;
    char *raw; uint32_t *raw_off, *raw_len;   /* raw bytes of every token */
    uint32_t *vslot; uint32_t vmask;          /* raw bytes -> id+1 (normal tokens) */
    mslot *mslot; uint32_t mmask; uint64_t n_merges;
    int32_t byte_id[256];
    int32_t unk;
    int ignore_merges;
    const char *rule;
    stage st[8]; int nst;
    pcre2_match_data *md;
    tnode *trie; size_t n_trie, cap_trie; uint8_t ud_first[256]; int has_ud;
    tcache *cache;
    /* scratch */
    int32_t *sym, *mid, *prv, *nxt; uint32_t *rk; size_t sc_cap;
    hent *heap; size_t hn, hcap;
    /* output of the current call */
    int32_t **oids; size_t *on, *ocap; int fail; char errmsg[160];
};

static int32_t vocab_find(const bpe_model *m, const uint8_t *s, size_t n) {
    uint64_t h = hbytes(s, n);
    for (uint32_t i = (uint32_t)h & m->vmask;; i = (i + 1) & m->vmask) {
        uint32_t v = m->vslot[i];
        if (!v) return -1;
        uint32_t id = v - 1;
        if (m->raw_len[id] == n && !memcmp(m->raw + m->raw_off[id], s, n)) return (int32_t)id;
    }
}
static inline int merge_find(const bpe_model *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id) {
    if (a < 0 || b < 0 || !m->mslot) return 0;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = (uint32_t)mix64(key) & m->mmask;; i = (i + 1) & m->mmask) {
        const mslot *s = &m->mslot[i];
        if (s->key == UINT64_MAX) return 0;
        if (s->key == key) { *rank = s->rank; *id = s->id; return 1; }
    }
}

/* ------------------------------------------------------------------------ */
/* pre-tokenizer regexes (from llama.cpp's llama-vocab.cpp) */

static const char *RX_FALCON_1 = "[\\p{P}\\$\\+<=>\\^~\\|`]+";
static const char *RX_DIGITS3 = "[0-9][0-9][0-9]";
static const char *RX_DS_LLM[] = {
    "[\r\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}+",
};
static const char *RX_DS_CODER[] = {
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
};

enum { PRE_GPT2, PRE_LLAMA3, PRE_QWEN2, PRE_STARCODER, PRE_FALCON, PRE_DS_LLM, PRE_DS_CODER };
static const struct { const char *name; int rule; int ignore_merges; } k_pre[] = {
    {"default", PRE_GPT2, 0}, {"gpt2", PRE_GPT2, 0}, {"gpt-2", PRE_GPT2, 0}, {"gpt-neox", PRE_GPT2, 0},
    {"mpt", PRE_GPT2, 0}, {"olmo", PRE_GPT2, 0}, {"phi-2", PRE_GPT2, 0}, {"jais", PRE_GPT2, 0},
    {"roberta-bpe", PRE_GPT2, 0}, {"trillion", PRE_GPT2, 0},
    {"llama3", PRE_LLAMA3, 1}, {"llama-v3", PRE_LLAMA3, 1}, {"llama-bpe", PRE_LLAMA3, 1},
    {"falcon3", PRE_LLAMA3, 1}, {"dbrx", PRE_LLAMA3, 0}, {"smaug-bpe", PRE_LLAMA3, 0},
    {"qwen2", PRE_QWEN2, 0}, {"deepseek-r1-qwen", PRE_QWEN2, 0}, {"stablelm2", PRE_QWEN2, 0},
    {"megrez", PRE_QWEN2, 0},
    {"smollm", PRE_STARCODER, 0}, {"starcoder", PRE_STARCODER, 0}, {"refact", PRE_STARCODER, 0},
    {"command-r", PRE_STARCODER, 0}, {"codeshell", PRE_STARCODER, 0}, {"exaone", PRE_STARCODER, 0},
    {"minerva-7b", PRE_STARCODER, 0},
    {"falcon", PRE_FALCON, 0},
    {"deepseek-llm", PRE_DS_LLM, 0},
    {"deepseek-coder", PRE_DS_CODER, 0},
};
static const char *k_rule_name[] = { "gpt2", "llama3", "qwen2", "starcoder", "falcon", "deepseek-llm", "deepseek-coder" };

static int add_pcre(bpe_model *m, const char *rx, char *err, size_t errlen) {
    int ec; PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "pre-tokenizer regex: %s at offset %zu", (char *)msg, (size_t)eo);
        return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    m->st[m->nst++] = (stage){ ST_PCRE, 0, re };
    return 0;
}

static int setup_pre(bpe_model *m, const char *pre, char *err, size_t errlen) {
    int rule = PRE_GPT2;
    if (pre && *pre) {
        size_t i;
        for (i = 0; i < sizeof k_pre / sizeof k_pre[0]; i++)
            if (!strcmp(pre, k_pre[i].name)) break;
        if (i == sizeof k_pre / sizeof k_pre[0])
            fprintf(stderr, "warning: unknown tokenizer.ggml.pre '%s': using the GPT-2 pre-tokenizer\n", pre);
        else { rule = k_pre[i].rule; m->ignore_merges = k_pre[i].ignore_merges; }
    }
    m->rule = k_rule_name[rule];
    switch (rule) {
    case PRE_GPT2: m->st[m->nst++] = (stage){ ST_GPT2, 0, NULL }; break;
    case PRE_LLAMA3: m->st[m->nst++] = (stage){ ST_LLAMA3, 3, NULL }; break;
    case PRE_QWEN2: m->st[m->nst++] = (stage){ ST_LLAMA3, 1, NULL }; break;
    case PRE_STARCODER:
        m->st[m->nst++] = (stage){ ST_SPLIT_N, 0, NULL };
        m->st[m->nst++] = (stage){ ST_GPT2, 0, NULL };
        break;
    case PRE_FALCON:
        if (add_pcre(m, RX_FALCON_1, err, errlen)) return -1;
        m->st[m->nst++] = (stage){ ST_GPT2, 0, NULL };
        if (add_pcre(m, RX_DIGITS3, err, errlen)) return -1;
        break;
    case PRE_DS_LLM:
        for (size_t i = 0; i < sizeof RX_DS_LLM / sizeof *RX_DS_LLM; i++)
            if (add_pcre(m, RX_DS_LLM[i], err, errlen)) return -1;
        break;
    case PRE_DS_CODER:
        for (size_t i = 0; i < sizeof RX_DS_CODER / sizeof *RX_DS_CODER; i++)
            if (add_pcre(m, RX_DS_CODER[i], err, errlen)) return -1;
        break;
    }
    for (int i = 0; i < m->nst; i++)
        if (m->st[i].kind == ST_PCRE && !m->md) {
            m->md = pcre2_match_data_create(16, NULL);
            if (!m->md) { snprintf(err, errlen, "out of memory"); return -1; }
        }
    return 0;
}

static int trie_add(bpe_model *m, const uint8_t *s, size_t n, int32_t id) {
    if (!m->trie) {
        m->cap_trie = 256;
        m->trie = malloc(m->cap_trie * sizeof *m->trie);
        if (!m->trie) return -1;
        m->trie[0] = (tnode){ -1, -1, -1, 0 };
        m->n_trie = 1;
    }
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t ch = m->trie[cur].child;
        while (ch >= 0 && m->trie[ch].c != s[i]) ch = m->trie[ch].sib;
        if (ch < 0) {
            if (m->n_trie == m->cap_trie) {
                tnode *r = realloc(m->trie, 2 * m->cap_trie * sizeof *r);
                if (!r) return -1;
                m->trie = r; m->cap_trie *= 2;
            }
            ch = (int32_t)m->n_trie++;
            m->trie[ch] = (tnode){ -1, m->trie[cur].child, -1, s[i] };
            m->trie[cur].child = ch;
        }
        cur = ch;
    }
    if (m->trie[cur].id < 0) m->trie[cur].id = id;   /* first (lowest) id wins */
    m->ud_first[s[0]] = 1;
    m->has_ud = 1;
    return 0;
}

bpe_model *bpe_load(const gguf_str *tokens, const uint8_t *types, uint32_t n_tokens,
                    const gguf_str *merges, uint64_t n_merges, const char *pre,
                    int32_t unk_id, char *err, size_t errlen) {
    pthread_once(&g_b2u_once, b2u_init);
    pthread_once(&g_ascii_once, ascii_init);
    bpe_model *m = calloc(1, sizeof *m);
    if (!m) { snprintf(err, errlen, "out of memory"); return NULL; }
    m->n_tok = n_tokens;
    m->unk = unk_id;
    size_t total = 0;
    for (uint32_t i = 0; i < n_tokens; i++) total += tokens[i].n;
    if (total > UINT32_MAX) { snprintf(err, errlen, "vocabulary too large"); goto fail; }
    m->raw = malloc(total + 1);
    m->raw_off = malloc((size_t)n_tokens * sizeof *m->raw_off);
    m->raw_len = malloc((size_t)n_tokens * sizeof *m->raw_len);
    uint32_t vcap = 16;
    while (vcap < 2u * n_tokens + 16) vcap *= 2;
    m->vslot = calloc(vcap, sizeof *m->vslot);
    m->vmask = vcap - 1;
    m->cache = tcache_new();
    if (!m->raw || !m->raw_off || !m->raw_len || !m->vslot || !m->cache) { snprintf(err, errlen, "out of memory"); goto fail; }
    size_t off = 0;
    for (uint32_t i = 0; i < n_tokens; i++) {
        size_t l;
        if (types[i] == TOKT_NORMAL) l = bpe_unmap(tokens[i].s, tokens[i].n, m->raw + off);
        else { memcpy(m->raw + off, tokens[i].s, tokens[i].n); l = tokens[i].n; }
        m->raw_off[i] = (uint32_t)off; m->raw_len[i] = (uint32_t)l;
        if (types[i] == TOKT_NORMAL && l > 0 && vocab_find(m, (const uint8_t *)m->raw + off, l) < 0) {
            uint64_t h = hbytes(m->raw + off, l);
            uint32_t j = (uint32_t)h & m->vmask;
            while (m->vslot[j]) j = (j + 1) & m->vmask;
            m->vslot[j] = i + 1;
        }
        if (types[i] == TOKT_USER && l > 0 && trie_add(m, (const uint8_t *)m->raw + off, l, (int32_t)i)) {
            snprintf(err, errlen, "out of memory"); goto fail;
        }
        off += l;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        m->byte_id[b] = vocab_find(m, &c, 1);
        if (m->byte_id[b] >= 0) continue;
        /* like llama.cpp: a byte missing from the BPE vocabulary (DeepSeek lacks the bytes
         * that never occur in UTF-8) falls back to any non-control token spelled as the
         * byte's alphabet character */
        uint8_t u[4]; size_t ul = u8enc(g_b2u[b], u);
        for (uint32_t i = 0; i < n_tokens; i++)
            if (types[i] != TOKT_CONTROL && tokens[i].n == ul && !memcmp(tokens[i].s, u, ul)) { m->byte_id[b] = (int32_t)i; break; }
    }

    /* merges */
    if (n_merges) {
        uint64_t mcap = 16;
        while (mcap < 2 * n_merges + 16) mcap *= 2;
        if (mcap > (1ull << 31)) { snprintf(err, errlen, "too many merges"); goto fail; }
        m->mslot = malloc(mcap * sizeof *m->mslot);
        if (!m->mslot) { snprintf(err, errlen, "out of memory"); goto fail; }
        for (uint64_t i = 0; i < mcap; i++) m->mslot[i].key = UINT64_MAX;
        m->mmask = (uint32_t)(mcap - 1);
        size_t bcap = 256; char *buf = malloc(bcap);
        if (!buf) { snprintf(err, errlen, "out of memory"); goto fail; }
        for (uint64_t r = 0; r < n_merges; r++) {
            const char *s = merges[r].s; size_t n = merges[r].n;
            if (n + 1 > bcap) {
                while (bcap < n + 1) bcap *= 2;
                char *nb = realloc(buf, bcap);
                if (!nb) { free(buf); snprintf(err, errlen, "out of memory"); goto fail; }
                buf = nb;
            }
            /* the split is at a space that gives two known halves (normally the only one) */
            for (size_t sp = 1; sp + 1 < n; sp++) {
                if (s[sp] != ' ') continue;
                size_t la = bpe_unmap(s, sp, buf);
                int32_t a = vocab_find(m, (uint8_t *)buf, la);
                if (a < 0) continue;
                size_t lb = bpe_unmap(s + sp + 1, n - sp - 1, buf + la);
                int32_t b = vocab_find(m, (uint8_t *)buf + la, lb);
                if (b < 0) continue;
                int32_t ab = vocab_find(m, (uint8_t *)buf, la + lb);
                if (ab < 0) break;
                uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
                uint32_t j = (uint32_t)mix64(key) & m->mmask;
                while (m->mslot[j].key != UINT64_MAX && m->mslot[j].key != key) j = (j + 1) & m->mmask;
                if (m->mslot[j].key == UINT64_MAX) {
                    m->mslot[j] = (mslot){ key, (uint32_t)r, ab };
                    m->n_merges++;
                }
                break;
            }
        }
        free(buf);
    }
    if (setup_pre(m, pre, err, errlen)) goto fail;
    return m;
fail:
    bpe_free(m);
    return NULL;
}

void bpe_free(bpe_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nst; i++) pcre2_code_free(m->st[i].re);
    pcre2_match_data_free(m->md);
    free(m->raw); free(m->raw_off); free(m->raw_len); free(m->vslot); free(m->mslot);
    free(m->trie); tcache_free(m->cache);
    free(m->sym); free(m->mid); free(m->prv); free(m->nxt); free(m->rk); free(m->heap);
    free(m);
}

const char *bpe_pre_rule(const bpe_model *m) { return m->rule; }
uint64_t bpe_n_merges(const bpe_model *m) { return m->n_merges; }

/* ------------------------------------------------------------------------ */
/* encoding */

static inline void out1(bpe_model *m, int32_t id) {
    if (m->fail) return;
    if (*m->on < *m->ocap) { (*m->oids)[(*m->on)++] = id; return; }
    if (tok_ids_push(m->oids, m->on, m->ocap, &id, 1)) { m->fail = 1; snprintf(m->errmsg, sizeof m->errmsg, "out of memory"); }
}

static int scratch(bpe_model *m, size_t n) {
    if (n <= m->sc_cap) return 0;
    size_t c = m->sc_cap ? m->sc_cap : 256;
    while (c < n) c *= 2;
    int32_t *a = realloc(m->sym, c * 4); if (!a) return -1; m->sym = a;
    a = realloc(m->mid, c * 4); if (!a) return -1; m->mid = a;
    a = realloc(m->prv, c * 4); if (!a) return -1; m->prv = a;
    a = realloc(m->nxt, c * 4); if (!a) return -1; m->nxt = a;
    uint32_t *r = realloc(m->rk, c * 4); if (!r) return -1; m->rk = r;
    m->sc_cap = c;
    return 0;
}

static inline int hless(const hent *a, const hent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static int hpush(bpe_model *m, hent e) {
    if (m->hn == m->hcap) {
        size_t c = m->hcap ? m->hcap * 2 : 256;
        hent *r = realloc(m->heap, c * sizeof *r);
        if (!r) return -1;
        m->heap = r; m->hcap = c;
    }
    size_t i = m->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&e, &m->heap[p])) break;
        m->heap[i] = m->heap[p]; i = p;
    }
    m->heap[i] = e;
    return 0;
}
static hent hpop(bpe_model *m) {
    hent top = m->heap[0], last = m->heap[--m->hn];
    size_t i = 0, n = m->hn;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        const hent *best = &last;
        if (l < n && hless(&m->heap[l], best)) { s = l; best = &m->heap[l]; }
        if (r < n && hless(&m->heap[r], best)) { s = r; }
        if (s == i) break;
        m->heap[i] = m->heap[s]; i = s;
    }
    if (n) m->heap[i] = last;
    return top;
}

static void emit_sym(bpe_model *m, int32_t id) {
    if (id >= 0) out1(m, id);
    else if (m->unk >= 0) out1(m, m->unk);
}

#define SMALL_WORD 96
static void bpe_word(bpe_model *m, const uint8_t *s, size_t n) {
    if (scratch(m, n)) { m->fail = 1; snprintf(m->errmsg, sizeof m->errmsg, "out of memory"); return; }
    int32_t *sym = m->sym, *mid = m->mid;
    uint32_t *rk = m->rk;
    for (size_t i = 0; i < n; i++) sym[i] = m->byte_id[s[i]];
    if (n <= SMALL_WORD) {
        size_t cnt = n;
        for (size_t i = 0; i + 1 < cnt; i++)
            if (!merge_find(m, sym[i], sym[i + 1], &rk[i], &mid[i])) rk[i] = UINT32_MAX;
        while (cnt > 1) {
            uint32_t best = UINT32_MAX; size_t bi = 0;
            for (size_t i = 0; i + 1 < cnt; i++) if (rk[i] < best) { best = rk[i]; bi = i; }
            if (best == UINT32_MAX) break;
            sym[bi] = mid[bi];
            if (bi + 2 < cnt) memmove(sym + bi + 1, sym + bi + 2, (cnt - bi - 2) * sizeof *sym);
            if (bi + 3 < cnt) {
                memmove(rk + bi + 1, rk + bi + 2, (cnt - bi - 3) * sizeof *rk);
                memmove(mid + bi + 1, mid + bi + 2, (cnt - bi - 3) * sizeof *mid);
            }
            cnt--;
            if (bi > 0 && !merge_find(m, sym[bi - 1], sym[bi], &rk[bi - 1], &mid[bi - 1])) rk[bi - 1] = UINT32_MAX;
            if (bi + 1 < cnt && !merge_find(m, sym[bi], sym[bi + 1], &rk[bi], &mid[bi])) rk[bi] = UINT32_MAX;
        }
        for (size_t i = 0; i < cnt; i++) emit_sym(m, sym[i]);
        return;
    }
    /* long word: linked list + heap */
    int32_t *prv = m->prv, *nxt = m->nxt;
    for (size_t i = 0; i < n; i++) { prv[i] = (int32_t)i - 1; nxt[i] = i + 1 < n ? (int32_t)i + 1 : -1; }
    m->hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r; int32_t id;
        if (merge_find(m, sym[i], sym[i + 1], &r, &id) && hpush(m, (hent){ r, (uint32_t)i, sym[i], sym[i + 1], id })) goto oom;
    }
    while (m->hn) {
        hent e = hpop(m);
        int32_t p = (int32_t)e.pos, q = nxt[p];
        if (sym[p] != e.a || q < 0 || sym[q] != e.b) continue;
        sym[p] = e.mid; sym[q] = INT32_MIN;
        nxt[p] = nxt[q];
        if (nxt[q] >= 0) prv[nxt[q]] = p;
        uint32_t r; int32_t id;
        if (prv[p] >= 0 && merge_find(m, sym[prv[p]], sym[p], &r, &id) &&
            hpush(m, (hent){ r, (uint32_t)prv[p], sym[prv[p]], sym[p], id })) goto oom;
        if (nxt[p] >= 0 && merge_find(m, sym[p], sym[nxt[p]], &r, &id) &&
            hpush(m, (hent){ r, (uint32_t)p, sym[p], sym[nxt[p]], id })) goto oom;
    }
    for (int32_t i = 0; i >= 0; i = nxt[i]) emit_sym(m, sym[i]);
    return;
oom:
    m->fail = 1; snprintf(m->errmsg, sizeof m->errmsg, "out of memory");
}

static void word(bpe_model *m, const uint8_t *s, size_t n) {
    if (m->fail || n == 0) return;
    const int32_t *cv; size_t cn;
    if (tcache_get(m->cache, s, n, &cv, &cn)) {
        if (*m->on + cn <= *m->ocap) { memcpy(*m->oids + *m->on, cv, cn * sizeof *cv); *m->on += cn; }
        else if (tok_ids_push(m->oids, m->on, m->ocap, cv, cn)) { m->fail = 1; snprintf(m->errmsg, sizeof m->errmsg, "out of memory"); }
        return;
    }
    size_t start = *m->on;
    int32_t id;
    if (m->ignore_merges && (id = vocab_find(m, s, n)) >= 0) out1(m, id);
    else bpe_word(m, s, n);
    if (!m->fail) tcache_put(m->cache, s, n, *m->oids + start, *m->on - start);
}

static void run_stage(bpe_model *m, int si, const uint8_t *s, size_t n);
static inline void emit(bpe_model *m, int si, const uint8_t *s, size_t a, size_t b) {
    if (b <= a) return;
    if (si >= m->nst) word(m, s + a, b - a);
    else run_stage(m, si, s + a, b - a);
}
static inline unsigned cls_at(const uint8_t *s, size_t n, size_t i, uint32_t *cp, size_t *len) {
    *len = u8dec(s, n, i, cp);
    return ucls(*cp);
}
#define F_END 0x80u   /* "past the end of the piece" */

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(bpe_model *m, int si, const uint8_t *s, size_t n) {
    int nx = si + 1;
    size_t pos = 0;
    while (pos < n) {
        uint32_t c; size_t l;
        unsigned f = cls_at(s, n, pos, &c, &l);
        if (c == '\'' && pos + 1 < n) {
            uint8_t c1 = s[pos + 1];
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { emit(m, nx, s, pos, pos + 2); pos += 2; continue; }
            if (pos + 2 < n) {
                uint8_t c2 = s[pos + 2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    emit(m, nx, s, pos, pos + 3); pos += 3; continue;
                }
            }
        }
        unsigned f2 = f;
        size_t p = pos;
        if (c == ' ') {
            uint32_t c2; size_t l2;
            f2 = pos + 1 < n ? cls_at(s, n, pos + 1, &c2, &l2) : F_END;
            p = pos + 1;
        }
        unsigned want = 0;
        if (f2 & F_L) want = F_L;
        else if (f2 & F_N) want = F_N;
        if (want) {
            while (p < n) {
                uint32_t c2; size_t l2;
                if (!(cls_at(s, n, p, &c2, &l2) & want)) break;
                p += l2;
            }
            emit(m, nx, s, pos, p); pos = p; continue;
        }
        if (!(f2 & (F_L | F_N | F_WS | F_END))) {
            while (p < n) {
                uint32_t c2; size_t l2;
                if (cls_at(s, n, p, &c2, &l2) & (F_L | F_N | F_WS)) break;
                p += l2;
            }
            emit(m, nx, s, pos, p); pos = p; continue;
        }
        /* whitespace */
        size_t q = pos, last = pos, k = 0;
        while (q < n) {
            uint32_t c2; size_t l2;
            if (!(cls_at(s, n, q, &c2, &l2) & F_WS)) break;
            last = q; q += l2; k++;
        }
        if (k > 1 && q < n) { emit(m, nx, s, pos, last); pos = last; continue; }
        if (k > 0) { emit(m, nx, s, pos, q); pos = q; continue; }
        emit(m, nx, s, pos, pos + l); pos += l;
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxdig}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3(bpe_model *m, int si, const uint8_t *s, size_t n, int maxdig) {
    int nx = si + 1;
    size_t pos = 0;
    while (pos < n) {
        uint32_t c; size_t l;
        unsigned f = cls_at(s, n, pos, &c, &l);
        if (c == '\'' && pos + 1 < n) {
            uint8_t c1 = (uint8_t)(s[pos + 1] | 0x20);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { emit(m, nx, s, pos, pos + 2); pos += 2; continue; }
            if (pos + 2 < n) {
                uint8_t c2 = (uint8_t)(s[pos + 2] | 0x20);
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    emit(m, nx, s, pos, pos + 3); pos += 3; continue;
                }
            }
        }
        if (!(c == '\r' || c == '\n' || (f & F_N))) {
            size_t p = pos + l;
            int ok = (f & F_L) != 0;
            if (!ok && p < n) { uint32_t c2; size_t l2; ok = (cls_at(s, n, p, &c2, &l2) & F_L) != 0; }
            if (ok) {
                while (p < n) {
                    uint32_t c2; size_t l2;
                    if (!(cls_at(s, n, p, &c2, &l2) & F_L)) break;
                    p += l2;
                }
                emit(m, nx, s, pos, p); pos = p; continue;
            }
        }
        if (f & F_N) {
            size_t p = pos; int k = 0;
            while (p < n) {
                uint32_t c2; size_t l2;
                if (!(cls_at(s, n, p, &c2, &l2) & F_N)) break;
                p += l2;
                if (++k == maxdig) { emit(m, nx, s, pos, p); pos = p; k = 0; }
            }
            emit(m, nx, s, pos, p); pos = p; continue;
        }
        unsigned f2 = f; size_t p = pos;
        if (c == ' ') {
            uint32_t c2; size_t l2;
            f2 = pos + 1 < n ? cls_at(s, n, pos + 1, &c2, &l2) : F_END;
            p = pos + 1;
        }
        if (!(f2 & (F_L | F_N | F_WS))) {     /* F_END too: a lone trailing space */
            while (p < n) {
                uint32_t c2; size_t l2;
                if (cls_at(s, n, p, &c2, &l2) & (F_L | F_N | F_WS)) break;
                p += l2;
            }
            while (p < n && (s[p] == '\r' || s[p] == '\n')) p++;
            emit(m, nx, s, pos, p); pos = p; continue;
        }
        size_t q = pos, last = pos, k = 0, rn_end = 0;
        while (q < n) {
            uint32_t c2; size_t l2;
            if (!(cls_at(s, n, q, &c2, &l2) & F_WS)) break;
            if (c2 == '\r' || c2 == '\n') rn_end = q + l2;
            last = q; q += l2; k++;
        }
        if (rn_end) { emit(m, nx, s, pos, rn_end); pos = rn_end; continue; }
        if (k > 1 && q < n) { emit(m, nx, s, pos, last); pos = last; continue; }
        if (k > 0) { emit(m, nx, s, pos, q); pos = q; continue; }
        emit(m, nx, s, pos, pos + l); pos += l;
    }
}

/* \p{N}: every number character on its own, the text between as pieces */
static void split_n(bpe_model *m, int si, const uint8_t *s, size_t n) {
    size_t pos = 0, last = 0;
    while (pos < n) {
        uint32_t c; size_t l;
        if (cls_at(s, n, pos, &c, &l) & F_N) {
            emit(m, si + 1, s, last, pos);
            emit(m, si + 1, s, pos, pos + l);
            last = pos + l;
        }
        pos += l;
    }
    emit(m, si + 1, s, last, n);
}

static void split_pcre(bpe_model *m, int si, const uint8_t *s, size_t n) {
    pcre2_code *re = m->st[si].re;
    size_t pos = 0, last = 0;
    while (pos < n && !m->fail) {
        int rc = pcre2_match(re, s, n, pos, 0, m->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(rc, msg, sizeof msg);
            m->fail = 1; snprintf(m->errmsg, sizeof m->errmsg, "pre-tokenizer: %s", (char *)msg);
            return;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
        size_t a = ov[0], b = ov[1];
        if (b <= a) {   /* empty match: step one character */
            pos = a + 1;
            while (pos < n && (s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        emit(m, si + 1, s, last, a);
        emit(m, si + 1, s, a, b);
        last = pos = b;
    }
    emit(m, si + 1, s, last, n);
}

static void run_stage(bpe_model *m, int si, const uint8_t *s, size_t n) {
    switch (m->st[si].kind) {
    case ST_GPT2: split_gpt2(m, si, s, n); break;
    case ST_LLAMA3: split_llama3(m, si, s, n, m->st[si].maxdig); break;
    case ST_SPLIT_N: split_n(m, si, s, n); break;
    default: split_pcre(m, si, s, n); break;
    }
}

int bpe_encode(bpe_model *m, const char *text, size_t len,
               int32_t **ids, size_t *n, size_t *cap, char *err, size_t errlen) {
    const uint8_t *s = (const uint8_t *)text;
    m->oids = ids; m->on = n; m->ocap = cap; m->fail = 0;
    size_t seg = 0;
    if (m->has_ud) {
        for (size_t i = 0; i < len && !m->fail;) {
            if (!m->ud_first[s[i]]) { i++; continue; }
            int32_t cur = 0, best = -1; size_t best_end = 0;
            for (size_t j = i; j < len; j++) {
                int32_t ch = m->trie[cur].child;
                while (ch >= 0 && m->trie[ch].c != s[j]) ch = m->trie[ch].sib;
                if (ch < 0) break;
                cur = ch;
                if (m->trie[cur].id >= 0) { best = m->trie[cur].id; best_end = j + 1; }
            }
            if (best < 0) { i++; continue; }
            emit(m, 0, s, seg, i);
            out1(m, best);
            seg = i = best_end;
        }
    }
    emit(m, 0, s, seg, len);
    m->oids = NULL; m->on = NULL; m->ocap = NULL;
    if (m->fail) { snprintf(err, errlen, "%s", m->errmsg); return -1; }
    return 0;
}
