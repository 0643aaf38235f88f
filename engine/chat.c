/* Chat templates: see chat.h. */
#include "chat.h"
#include "tok_bpe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_names[] = { "raw", "llama2", "llama3", "chatml", "mistral", "phi3" };

const char *chat_kind_name(chat_kind k) {
    return (unsigned)k < sizeof k_names / sizeof *k_names ? k_names[k] : "?";
}
int chat_kind_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < (int)(sizeof k_names / sizeof *k_names); i++)
        if (!strcmp(name, k_names[i])) return i;
    if (!strcmp(name, "qwen2") || !strcmp(name, "smollm2") || !strcmp(name, "qwen")) return CHAT_CHATML;
    if (!strcmp(name, "mistral-v3")) return CHAT_MISTRAL;
    return -1;
}

static void seterr(char *err, size_t n, const char *fmt, ...) {
    if (!err || !n) return;
    va_list ap; va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

int chat_kind_from_template_text(const char *t) {
    if (!t) return -1;
    if (strstr(t, "<|im_start|>")) return CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>")) return CHAT_LLAMA3;
    if (strstr(t, "<|user|>") && strstr(t, "<|end|>")) return CHAT_PHI3;
    if (strstr(t, "[INST]")) return strstr(t, "<<SYS>>") ? CHAT_LLAMA2 : CHAT_MISTRAL;
    return -1;
}

/* chatml: '<|im_start|>system\n' followed by literal text up to '<|im_end|>' */
static void find_default_system(const char *t, char *out, size_t cap) {
    out[0] = 0;
    static const char mark[] = "<|im_start|>system";
    for (const char *p = t ? strstr(t, mark) : NULL; p; p = strstr(p + 1, mark)) {
        const char *s = p + sizeof mark - 1;
        if (s[0] == '\\' && s[1] == 'n') s += 2;
        else if (s[0] == '\n') s += 1;
        else continue;
        const char *e = strstr(s, "<|im_end|>");
        if (!e || e == s || (size_t)(e - s) >= cap) continue;
        size_t n = (size_t)(e - s);
        if (memchr(s, '\'', n) || memchr(s, '"', n) || memchr(s, '{', n) || memchr(s, '}', n) ||
            memchr(s, '+', n) || memchr(s, '\\', n) || memchr(s, '\n', n))
            continue;
        memcpy(out, s, n);
        out[n] = 0;
        return;
    }
}

static void add_stop(chat_template *c, int32_t id) {
    if (id < 0 || c->n_stop >= CHAT_MAX_STOP) return;
    for (int i = 0; i < c->n_stop; i++) if (c->stop[i] == id) return;
    c->stop[c->n_stop++] = id;
}

int chat_template_detect(const cr_tokenizer *tok, const gguf_file *g, const char *name,
                         chat_template *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    char *tmpl = NULL;
    gguf_str ts;
    if (g && gguf_get_str(g, "tokenizer.chat_template", &ts)) {
        tmpl = malloc(ts.n + 1);
        if (!tmpl) { seterr(err, errlen, "out of memory"); return -1; }
        memcpy(tmpl, ts.s, ts.n);
        tmpl[ts.n] = 0;
    }
    int k = -1;
    if (name && *name) {
        k = chat_kind_from_name(name);
        if (k < 0) {
            seterr(err, errlen, "unknown chat template '%s' (known: llama2, llama3, chatml, mistral, phi3, raw)", name);
            free(tmpl);
            return -1;
        }
    }
    if (k < 0) k = chat_kind_from_template_text(tmpl);
    if (k < 0) {
        char arch[64] = "";
        if (g) gguf_get_cstr(g, "general.architecture", arch, sizeof arch);
        if (tok_special(tok, "<|im_start|>") >= 0) k = CHAT_CHATML;
        else if (tok_special(tok, "<|start_header_id|>") >= 0) k = CHAT_LLAMA3;
        else if (tok_special(tok, "<|user|>") >= 0 && tok_special(tok, "<|end|>") >= 0) k = CHAT_PHI3;
        else if (tok_special(tok, "[INST]") >= 0) k = CHAT_MISTRAL;
        else if (!strcmp(arch, "phi3")) k = CHAT_PHI3;
        else if (tok_kind(tok) == TOK_SPM && (!arch[0] || !strcmp(arch, "llama")) && tok_special(tok, "<s>") >= 0) k = CHAT_LLAMA2;
        else k = CHAT_RAW;
    }
    out->kind = (chat_kind)k;
    if (k == CHAT_CHATML) find_default_system(tmpl, out->default_system, sizeof out->default_system);
    free(tmpl);
    add_stop(out, tok_eos(tok));
    add_stop(out, tok_eot(tok));
    static const char *stops[][3] = {
        [CHAT_RAW] = { NULL, NULL, NULL },
        [CHAT_LLAMA2] = { "</s>", NULL, NULL },
        [CHAT_LLAMA3] = { "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>" },
        [CHAT_CHATML] = { "<|im_end|>", "<|endoftext|>", NULL },
        [CHAT_MISTRAL] = { "</s>", NULL, NULL },
        [CHAT_PHI3] = { "<|end|>", "<|endoftext|>", NULL },
    };
    for (int i = 0; i < 3; i++)
        if (stops[k][i]) add_stop(out, tok_special(tok, stops[k][i]));
    return 0;
}

int chat_is_stop(const cr_tokenizer *tok, const chat_template *tmpl, int32_t id) {
    if (id < 0) return 0;
    for (int i = 0; i < tmpl->n_stop; i++) if (tmpl->stop[i] == id) return 1;
    return id == tok_eos(tok);
}

/* ------------------------------------------------------------------------ */
/* encoding */

typedef struct {
    cr_tokenizer *tok;
    int32_t **ids; size_t *n, *cap;
    char *err; size_t errlen;
    int fail;
    char *sb; size_t sbn, sbcap;    /* string builder */
} enc;

static void put_id(enc *e, int32_t id) {
    if (e->fail || id < 0) return;
    if (tok_ids_push(e->ids, e->n, e->cap, &id, 1)) { seterr(e->err, e->errlen, "out of memory"); e->fail = 1; }
}
/* A control token of the template; missing from the vocabulary: error. */
static void put_special(enc *e, const char *text) {
    if (e->fail) return;
    int32_t id = tok_special(e->tok, text);
    if (id < 0) { seterr(e->err, e->errlen, "chat template needs the token %s, absent from the vocabulary", text); e->fail = 1; return; }
    put_id(e, id);
}
static void sb_reset(enc *e) { e->sbn = 0; }
static void sb_add(enc *e, const char *s, size_t n) {
    if (e->fail) return;
    if (e->sbn + n + 1 > e->sbcap) {
        size_t c = e->sbcap ? e->sbcap : 256;
        while (c < e->sbn + n + 1) c *= 2;
        char *r = realloc(e->sb, c);
        if (!r) { seterr(e->err, e->errlen, "out of memory"); e->fail = 1; return; }
        e->sb = r; e->sbcap = c;
    }
    memcpy(e->sb + e->sbn, s, n);
    e->sbn += n;
    e->sb[e->sbn] = 0;
}
static void sb_str(enc *e, const char *s) { sb_add(e, s, strlen(s)); }
static int is_sp(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static void sb_trimmed(enc *e, const char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && is_sp(s[a])) a++;
    while (n > a && is_sp(s[n - 1])) n--;
    sb_add(e, s + a, n - a);
}
static void sb_flush(enc *e) {   /* encodes the builder's text as plain text */
    if (e->fail || !e->sbn) { sb_reset(e); return; }
    if (tok_encode(e->tok, e->sb, e->sbn, e->ids, e->n, e->cap)) {
        seterr(e->err, e->errlen, "chat: %s", tok_last_error(e->tok));
        e->fail = 1;
    }
    sb_reset(e);
}
static void put_text(enc *e, const char *s) { sb_reset(e); sb_str(e, s); sb_flush(e); }

enum { R_SYSTEM, R_USER, R_ASSISTANT };
static int role_of(const char *r) {
    if (!r) return -1;
    if (!strcmp(r, "system")) return R_SYSTEM;
    if (!strcmp(r, "user")) return R_USER;
    if (!strcmp(r, "assistant")) return R_ASSISTANT;
    return -1;
}

static void enc_llama2(enc *e, const chat_msg *m, int n) {
    const char *sys = NULL;
    int first_user = 1, open = 0;
    for (int i = 0; i < n && !e->fail; i++) {
        int r = role_of(m[i].role);
        if (r == R_SYSTEM) { sys = m[i].content; continue; }
        if (r == R_USER) {
            if (open) { sb_str(e, " "); sb_flush(e); put_id(e, tok_eos(e->tok)); }
            put_id(e, tok_bos(e->tok));
            sb_reset(e);
            sb_str(e, "[INST] ");
            if (sys && first_user) {
                /* Meta: strip(B_SYS + sys + E_SYS + user) */
                size_t a = 0, ln = strlen(m[i].content);
                while (ln > 0 && is_sp(m[i].content[ln - 1])) ln--;
                sb_str(e, "<<SYS>>\n"); sb_str(e, sys); sb_str(e, "\n<</SYS>>\n\n");
                sb_add(e, m[i].content + a, ln);
            } else sb_trimmed(e, m[i].content);
            sb_str(e, " [/INST]");
            first_user = 0; open = 1;
        } else {   /* assistant */
            if (!open) { put_id(e, tok_bos(e->tok)); sb_reset(e); }
            else sb_str(e, " ");
            sb_trimmed(e, m[i].content);
            sb_str(e, " ");
            sb_flush(e);
            put_id(e, tok_eos(e->tok));
            open = 0;
        }
    }
    if (open) sb_flush(e);
    else if (sys && first_user && !e->fail) {   /* only a system prompt */
        put_id(e, tok_bos(e->tok));
        sb_reset(e); sb_str(e, "[INST] <<SYS>>\n"); sb_str(e, sys); sb_str(e, "\n<</SYS>> [/INST]"); sb_flush(e);
    }
}

static void enc_mistral(enc *e, const chat_msg *m, int n) {
    const char *sys = NULL;
    int last_user = -1;
    for (int i = 0; i < n; i++) {
        int r = role_of(m[i].role);
        if (r == R_SYSTEM) sys = m[i].content;
        if (r == R_USER) last_user = i;
    }
    int ctl = tok_special(e->tok, "[INST]") >= 0 && tok_special(e->tok, "[/INST]") >= 0;
    put_id(e, tok_bos(e->tok));
    for (int i = 0; i < n && !e->fail; i++) {
        int r = role_of(m[i].role);
        if (r == R_SYSTEM) continue;
        if (r == R_USER) {
            if (ctl) put_special(e, "[INST]");
            sb_reset(e);
            if (!ctl) sb_str(e, "[INST] ");
            if (sys && i == last_user) { sb_str(e, sys); sb_str(e, "\n\n"); }
            sb_str(e, m[i].content);
            if (!ctl) { sb_str(e, " [/INST]"); }
            sb_flush(e);
            if (ctl) put_special(e, "[/INST]");
        } else {
            put_text(e, m[i].content);
            put_id(e, tok_eos(e->tok));
        }
    }
}

static void enc_llama3(enc *e, const chat_msg *m, int n, int gen) {
    put_id(e, tok_bos(e->tok));
    for (int i = 0; i < n && !e->fail; i++) {
        put_special(e, "<|start_header_id|>");
        put_text(e, m[i].role);
        put_special(e, "<|end_header_id|>");
        sb_reset(e); sb_str(e, "\n\n"); sb_trimmed(e, m[i].content); sb_flush(e);
        put_special(e, "<|eot_id|>");
    }
    if (gen) {
        put_special(e, "<|start_header_id|>");
        put_text(e, "assistant");
        put_special(e, "<|end_header_id|>");
        put_text(e, "\n\n");
    }
}

static void enc_chatml(enc *e, const chat_template *t, const chat_msg *m, int n, int gen) {
    if (tok_add_bos(e->tok)) put_id(e, tok_bos(e->tok));
    int has_sys = n > 0 && role_of(m[0].role) == R_SYSTEM;
    if (!has_sys && t->default_system[0]) {
        put_special(e, "<|im_start|>");
        sb_reset(e); sb_str(e, "system\n"); sb_str(e, t->default_system); sb_flush(e);
        put_special(e, "<|im_end|>");
        put_text(e, "\n");
    }
    for (int i = 0; i < n && !e->fail; i++) {
        put_special(e, "<|im_start|>");
        sb_reset(e); sb_str(e, m[i].role); sb_str(e, "\n"); sb_str(e, m[i].content); sb_flush(e);
        put_special(e, "<|im_end|>");
        put_text(e, "\n");
    }
    if (gen) {
        put_special(e, "<|im_start|>");
        put_text(e, "assistant\n");
    }
}

static void enc_phi3(enc *e, const chat_msg *m, int n, int gen) {
    if (tok_add_bos(e->tok)) put_id(e, tok_bos(e->tok));
    int sys_tok = tok_special(e->tok, "<|system|>") >= 0;
    const char *pending_sys = NULL;
    for (int i = 0; i < n && !e->fail; i++) {
        int r = role_of(m[i].role);
        if (r == R_SYSTEM && !sys_tok) { pending_sys = m[i].content; continue; }
        put_special(e, r == R_SYSTEM ? "<|system|>" : r == R_USER ? "<|user|>" : "<|assistant|>");
        sb_reset(e); sb_str(e, "\n");
        if (r == R_USER && pending_sys) { sb_str(e, pending_sys); sb_str(e, "\n\n"); pending_sys = NULL; }
        sb_str(e, m[i].content);
        sb_flush(e);
        put_special(e, "<|end|>");
        put_text(e, "\n");
    }
    if (gen) {
        put_special(e, "<|assistant|>");
        put_text(e, "\n");
    }
}

static void enc_raw(enc *e, const chat_msg *m, int n) {
    if (tok_add_bos(e->tok)) put_id(e, tok_bos(e->tok));
    sb_reset(e);
    for (int i = 0; i < n; i++) {
        if (i) sb_str(e, "\n\n");
        sb_str(e, m[i].content);
    }
    sb_flush(e);
}

int chat_encode(cr_tokenizer *tok, const chat_template *tmpl, const chat_msg *msgs, int n,
                int add_generation_prompt, int32_t **ids, size_t *n_ids, size_t *cap,
                char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        if (role_of(msgs[i].role) < 0) {
            seterr(err, errlen, "chat: unknown role '%s' (system, user, assistant)", msgs[i].role ? msgs[i].role : "(null)");
            return -1;
        }
        if (!msgs[i].content) { seterr(err, errlen, "chat: message %d has no content", i); return -1; }
    }
    enc e = { tok, ids, n_ids, cap, err, errlen, 0, NULL, 0, 0 };
    size_t start = *n_ids;
    switch (tmpl->kind) {
    case CHAT_LLAMA2: enc_llama2(&e, msgs, n); break;
    case CHAT_MISTRAL: enc_mistral(&e, msgs, n); break;
    case CHAT_LLAMA3: enc_llama3(&e, msgs, n, add_generation_prompt); break;
    case CHAT_CHATML: enc_chatml(&e, tmpl, msgs, n, add_generation_prompt); break;
    case CHAT_PHI3: enc_phi3(&e, msgs, n, add_generation_prompt); break;
    default: enc_raw(&e, msgs, n); break;
    }
    free(e.sb);
    if (e.fail) { *n_ids = start; return -1; }
    return 0;
}
