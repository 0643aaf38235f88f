/* ask: a question answered through the cache, with citations (see ask.h). */
#include "ask.h"
#include "attn_probe.h"
#include "chat.h"
#include "cite.h"
#include "prompts.h"
#include "sampler.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ask_opts_default(ask_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 256;
    o->n_cites = 5;
}

void ask_result_free(ask_result *res) {
    if (!res) return;
    free(res->answer); free(res->cites);
    memset(res, 0, sizeof *res);
}

static int get_template(cr_reader *r, const ask_opts *o, chat_template *ct, char *err, size_t errlen) {
    cr_session *s = reader_session(r);
    const char *name = o->chat_template ? o->chat_template : (s->o ? s->o->chat_template : NULL);
    return chat_template_detect(s->tok, &s->model.g, name, ct, err, errlen);
}

static int has_turns(cr_reader *r) {
    for (size_t i = 0; i < reader_conv_count(r); i++) {
        int role = reader_conv_get(r, i)->role;
        if (role == CONV_USER || role == CONV_ASSISTANT || role == CONV_NOTE) return 1;
    }
    return 0;
}

int ask_prompt_tokens(cr_reader *r, const char *user_text, const ask_opts *o, int32_t **ids, size_t *n,
                      size_t *cap, char *err, size_t errlen) {
    chat_template ct;
    if (get_template(r, o, &ct, err, errlen)) return -1;
    cr_tokenizer *tok = reader_session(r)->tok;
    const char *sys = o->system ? o->system : prompt_text(PROMPT_ASK_SYSTEM);
    if (!has_turns(r)) {
        chat_msg m[2] = {{"system", sys}, {"user", user_text}};
        return chat_encode(tok, &ct, m, 2, 1, ids, n, cap, err, errlen);
    }
    /* a later turn: what the template adds after a finished exchange (the difference of the
     * encodings with and without the new user message), so that the cache, which holds the
     * earlier turns as they were fed, continues exactly as the template lays out a dialogue */
    chat_msg m[4] = {{"system", sys}, {"user", "Q"}, {"assistant", "A"}, {"user", user_text}};
    int32_t *a = NULL, *b = NULL; size_t na = 0, ca = 0, nb = 0, cb = 0;
    int rc = -1;
    if (chat_encode(tok, &ct, m, 3, 0, &a, &na, &ca, err, errlen) == 0 &&
        chat_encode(tok, &ct, m, 4, 1, &b, &nb, &cb, err, errlen) == 0) {
        if (nb > na && memcmp(a, b, na * sizeof *a) == 0) {
            rc = 0;
            for (size_t i = na; i < nb && rc == 0; i++) {
                if (*n == *cap) {
                    size_t nc = *cap ? *cap * 2 : 64;
                    int32_t *g = realloc(*ids, nc * sizeof *g);
                    if (!g) { snprintf(err, errlen, "out of memory"); rc = -1; break; }
                    *ids = g; *cap = nc;
                }
                (*ids)[(*n)++] = b[i];
            }
        } else {   /* the template does not extend by appending: the user message alone */
            rc = chat_encode(tok, &ct, m + 3, 1, 1, ids, n, cap, err, errlen);
        }
    }
    free(a); free(b);
    return rc;
}

static int skip_sinks(void *ud, uint64_t tok) { return tok < (uint64_t)*(const int64_t *)ud; }

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = (*len + n + 1) * 2;
        char *b = realloc(*buf, nc);
        if (!b) return -1;
        *buf = b; *cap = nc;
    }
    memcpy(*buf + *len, p, n); *len += n; (*buf)[*len] = 0;
    return 0;
}

int ask_turn(cr_reader *r, const char *user_text, int record_user, int answer_role, const ask_opts *o,
             ask_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    cr_session *s = reader_session(r);
    chat_template ct;
    if (get_template(r, o, &ct, err, errlen)) return -1;
    int32_t *ids = NULL; size_t n = 0, cap = 0;
    if (ask_prompt_tokens(r, user_text, o, &ids, &n, &cap, err, errlen)) { free(ids); return -1; }
    cr_progress pg; reader_progress(r, &pg);
    res->partial = !pg.done;
    res->doc_tokens_read = pg.doc_tokens;
    int nv = s->model.hp.n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)nv);
    cr_probe pr;
    int have_probe = 0, rc = -1;
    char *ans = NULL; size_t alen = 0, acap = 0;
    if (!logits || append(&ans, &alen, &acap, "", 0)) { snprintf(err, errlen, "out of memory"); goto out; }
    if (reader_feed(r, ids, n, logits, err, errlen)) goto out;
    uint64_t q_end = reader_tokens(r), q_first = q_end - n;
    if (probe_init(&pr, &s->st, err, errlen)) goto out;
    have_probe = 1;
    pr.q_from = s->st.ctrl.seen;        /* the answer's tokens: every forward from here on */
    probe_attach(&s->st, &pr);
    sampler *sm = reader_sampler(r);
    int max = o->max_tokens > 0 ? o->max_tokens : 256, closed = 0, lead = 1;
    char piece[512];
    for (int i = 0; i < max; i++) {
        if (o->stop && *o->stop) { res->stopped = 1; break; }
        int32_t t = sampler_sample(sm, logits);
        int is_stop = chat_is_stop(s->tok, &ct, t) || t == tok_eos(s->tok);
        sampler_accept(sm, t);
        if (!is_stop) {
            size_t pn = tok_piece(s->tok, t, 0, piece, sizeof piece);
            if (pn > sizeof piece) pn = sizeof piece;
            const char *p = piece;
            if (lead) { while (pn && *p == ' ') { p++; pn--; } if (pn) lead = 0; }
            if (pn) {
                if (append(&ans, &alen, &acap, p, pn)) { snprintf(err, errlen, "out of memory"); goto out; }
                if (o->on_token) o->on_token(o->ud, p, pn);
            }
        }
        if (reader_feed(r, &t, 1, logits, err, errlen)) goto out;
        if (is_stop) { closed = 1; break; }
    }
    if (!closed) {   /* close the turn in the cache as the template would */
        int32_t t = ct.n_stop > 0 ? ct.stop[0] : tok_eos(s->tok);
        if (t >= 0 && reader_feed(r, &t, 1, logits, err, errlen)) goto out;
    }
    probe_detach(&s->st);
    while (alen && (ans[alen - 1] == ' ' || ans[alen - 1] == '\n')) ans[--alen] = 0;
    int want = o->n_cites > 0 ? o->n_cites : 0;
    res->cites = calloc((size_t)(want ? want : 1), sizeof *res->cites);
    if (!res->cites) { snprintf(err, errlen, "out of memory"); goto out; }
    /* the sinks (the stream's first S tokens) take attention whatever they say: not cited */
    int64_t n_sinks = s->st.ctrl.cfg.S;
    res->n_cites = cite_collect(&pr, reader_docmap(r), skip_sinks, &n_sinks, res->cites, want);
    /* the conversation: citations one per line "label\toffset\tline" */
    char *ctext = NULL; size_t clen = 0, ccap = 0;
    for (int i = 0; i < res->n_cites; i++) {
        char line[400];
        int k = snprintf(line, sizeof line, "%s\t%llu\t%llu\n", res->cites[i].label,
                         (unsigned long long)res->cites[i].offset, (unsigned long long)res->cites[i].line);
        if (append(&ctext, &clen, &ccap, line, (size_t)k)) break;
    }
    if (record_user) reader_conv_add(r, CONV_USER, user_text, q_first, q_end, NULL);
    reader_conv_add(r, answer_role, ans, record_user ? q_end : q_first, reader_tokens(r), ctext);
    free(ctext);
    res->answer = ans; ans = NULL;
    rc = 0;
out:
    if (have_probe) { probe_detach(&s->st); probe_free(&pr); }
    if (rc) ask_result_free(res);
    free(ans); free(logits); free(ids);
    return rc;
}

int ask_run(cr_reader *r, const char *question, const ask_opts *o, ask_result *res, char *err, size_t errlen) {
    return ask_turn(r, question, 1, CONV_ASSISTANT, o, res, err, errlen);
}
