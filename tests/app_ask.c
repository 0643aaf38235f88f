/* --ask (app/ask.c) with stories260K on a generated text: prompt layout per chat template,
 * the conversation continuing in the cache, citations at real places of the document, the
 * partial flag, and deterministic answers for a fixed seed. */
#include "t.h"
#include "ask.h"
#include "chat.h"
#include "cli.h"
#include "extract.h"
#include "session.h"
#include <unistd.h>

static char model_path[512], doc_path[64];
static int have_model, have;    /* the story model is there; and the test document was written */
#define NEED_MODEL() do { if (!have_model) T_SKIP_MISSING(model_path); \
                          if (!have) T_SKIP("could not write the test document"); } while (0)

/* a text of numbered paragraphs with distinct words, one paragraph per few lines */
static int write_doc(int paras) {
    snprintf(doc_path, sizeof doc_path, "/tmp/cr_ask_XXXXXX");
    int fd = mkstemp(doc_path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "w");
    static const char *names[] = {"Lily", "Tom", "Ben", "Sue", "Max", "Anna", "the cat", "the dog"};
    static const char *acts[] = {"found a red ball", "went to the park", "ate a big cake", "saw a bird",
                                 "played in the sun", "lost a toy", "climbed a tree", "sang a song"};
    for (int p = 0; p < paras; p++) {
        fprintf(f, "%s %s on day %d.\n", names[p % 8], acts[(p * 3) % 8], p + 1);
        fprintf(f, "Then %s %s.\n\n", names[(p + 3) % 8], acts[(p + 5) % 8]);
    }
    fclose(f);
    return 0;
}

typedef struct { cr_opts o; cr_session s; cr_reader *r; char *argv_tmpl; } fx;

static int fx_open(fx *x, const char *tmpl, const char *extra1, const char *extra2) {
    memset(x, 0, sizeof *x);
    const char *argv[12] = {"cascade-read", "--model", model_path, "--ask", "q", "-t", "2"};
    int argc = 7;
    if (tmpl) { argv[argc++] = "--chat-template"; argv[argc++] = tmpl; }
    if (extra1) argv[argc++] = extra1;
    if (extra2) argv[argc++] = extra2;
    argv[argc++] = doc_path;
    if (cli_parse(&x->o, argc, (char **)argv)) return -1;
    if (session_open(&x->s, &x->o, 1)) { free(x->o.inputs); return -1; }
    char err[512];
    x->r = reader_new(&x->s, NULL, err, sizeof err);
    if (!x->r || reader_add(x->r, x->o.inputs, x->o.n_inputs, err, sizeof err)) {
        printf("     %s\n", err); session_close(&x->s); free(x->o.inputs); return -1;
    }
    return 0;
}
static void fx_close(fx *x) {
    if (x->r) reader_free(x->r);
    session_close(&x->s);
    free(x->o.inputs);
}

static int read_all(fx *x) {
    char err[512];
    int k;
    while ((k = reader_read(x->r, 0, err, sizeof err)) == 1) {}
    if (k) printf("     read: %s\n", err);
    return k;
}

/* The first turn is the template's [system, user] with the generation prompt; a later turn is
 * what the template appends for a new user message after a finished exchange. */
static void test_prompt_layout(void) {
    NEED_MODEL();
    const char *tmpls[] = {"llama2", "raw"};
    for (int ti = 0; ti < 2; ti++) {
        fx x;
        T_CHECK(fx_open(&x, tmpls[ti], "-n", "4") == 0);
        T_CHECK(read_all(&x) == 0);
        ask_opts ao; ask_opts_default(&ao);
        ao.max_tokens = 4;
        char err[512];
        int32_t *ids = NULL; size_t n = 0, cap = 0;
        T_CHECKF(ask_prompt_tokens(x.r, "Who found the ball?", &ao, &ids, &n, &cap, err, sizeof err) == 0, "%s", err);
        chat_template ct;
        T_CHECK(chat_template_detect(x.s.tok, &x.s.model.g, tmpls[ti], &ct, err, sizeof err) == 0);
        ao.system = NULL;
        chat_msg m[2] = {{"system", "You are a careful reader. The documents you have read are above. Answer the question from what they say, briefly and precisely. If they do not say, answer that you do not know."}, {"user", "Who found the ball?"}};
        int32_t *want = NULL; size_t nw = 0, cw = 0;
        T_CHECK(chat_encode(x.s.tok, &ct, m, 2, 1, &want, &nw, &cw, err, sizeof err) == 0);
        T_CHECKF(n == nw && memcmp(ids, want, n * sizeof *ids) == 0, "%s: first turn differs (%zu vs %zu tokens)", tmpls[ti], n, nw);
        char *txt; size_t tl;
        T_CHECK(tok_decode_ex(x.s.tok, ids, n, TOK_DECODE_SPECIAL, &txt, &tl) == 0);
        if (ti == 0) T_CHECKF(strstr(txt, "[INST] <<SYS>>") && strstr(txt, "<</SYS>>") && strstr(txt, "Who found the ball? [/INST]"), "llama2 layout: %s", txt);
        else T_CHECKF(strstr(txt, "do not know.\n\nWho found the ball?") != NULL, "raw layout: %s", txt);
        free(txt);
        ask_result res;
        T_CHECKF(ask_run(x.r, "Who found the ball?", &ao, &res, err, sizeof err) == 0, "%s", err);
        ask_result_free(&res);
        n = 0;
        T_CHECK(ask_prompt_tokens(x.r, "And who sang?", &ao, &ids, &n, &cap, err, sizeof err) == 0);
        T_CHECK(tok_decode_ex(x.s.tok, ids, n, TOK_DECODE_SPECIAL, &txt, &tl) == 0);
        if (ti == 0) {
            T_CHECKF(ids[0] == tok_bos(x.s.tok) && !strstr(txt, "<<SYS>>") && strstr(txt, "[INST] And who sang? [/INST]"), "llama2 second turn: %s", txt);
        } else {
            T_CHECKF(!strstr(txt, "careful reader") && strstr(txt, "And who sang?"), "raw second turn: %s", txt);
        }
        free(txt); free(ids); free(want);
        fx_close(&x);
    }
}

/* Two questions: the second one follows the first answer in the session and the cache still
 * holds the first question's tokens when it is asked. */
static void test_conversation_continues(void) {
    NEED_MODEL();
    fx x;
    T_CHECK(fx_open(&x, "llama2", NULL, NULL) == 0);
    T_CHECK(read_all(&x) == 0);
    uint64_t doc_tok = reader_tokens(x.r);
    T_CHECK(doc_tok == (uint64_t)x.s.st.ctrl.seen);
    ask_opts ao; ask_opts_default(&ao);
    ao.max_tokens = 6;
    char err[512];
    ask_result a1, a2;
    T_CHECKF(ask_run(x.r, "Who went to the park?", &ao, &a1, err, sizeof err) == 0, "%s", err);
    T_CHECK(reader_conv_count(x.r) == 2);
    const cr_conv_msg *q1 = reader_conv_get(x.r, 0), *r1 = reader_conv_get(x.r, 1);
    T_CHECK(q1->role == CONV_USER && r1->role == CONV_ASSISTANT && strcmp(q1->text, "Who went to the park?") == 0);
    T_CHECKF(q1->tok_first == doc_tok && q1->tok_end == r1->tok_first && r1->tok_end == (uint64_t)x.s.st.ctrl.seen,
             "ranges %llu-%llu %llu-%llu seen %lld", (unsigned long long)q1->tok_first, (unsigned long long)q1->tok_end,
             (unsigned long long)r1->tok_first, (unsigned long long)r1->tok_end, (long long)x.s.st.ctrl.seen);
    /* answer tokens: at most max_tokens plus the end-of-turn token */
    T_CHECK(r1->tok_end - r1->tok_first >= 1 && r1->tok_end - r1->tok_first <= (uint64_t)ao.max_tokens + 1);
    uint64_t q1f = q1->tok_first, q1e = q1->tok_end, r1e = r1->tok_end;
    /* the first question is in the cache (head 0 of the last layer) before the second */
    int64_t *ret = malloc(sizeof(int64_t) * (size_t)(x.s.st.ctrl.cfg.S + x.s.st.ctrl.cfg.N));
    const hparams *hp = &x.s.model.hp;
    int nr = cascade_retained(&x.s.st.ctrl, &x.s.st.heads[(size_t)(hp->n_layer - 1) * hp->n_kv], ret, CASCADE_RETAINED_ALL);
    int held = 0;
    for (int i = 0; i < nr; i++) held += ret[i] >= (int64_t)q1f && ret[i] < (int64_t)q1e;
    free(ret);
    T_CHECKF(held == (int)(q1e - q1f), "the cache holds %d of the first question's %llu tokens", held, (unsigned long long)(q1e - q1f));
    T_CHECKF(ask_run(x.r, "What did Tom eat?", &ao, &a2, err, sizeof err) == 0, "%s", err);
    T_CHECK(reader_conv_count(x.r) == 4);
    const cr_conv_msg *q2 = reader_conv_get(x.r, 2), *r2 = reader_conv_get(x.r, 3);
    T_CHECK(q2->tok_first == r1e && r2->tok_first == q2->tok_end && r2->tok_end == (uint64_t)x.s.st.ctrl.seen);
    T_CHECK(strcmp(r1->text, a1.answer) == 0 && strcmp(r2->text, a2.answer) == 0);
    T_CHECK(!a1.partial && !a2.partial);
    ask_result_free(&a1); ask_result_free(&a2);
    fx_close(&x);
}

/* Every citation points at a run of the document whose text holds the cited token, and its
 * line is the source line where that run starts. */
static void test_citations_real_positions(void) {
    NEED_MODEL();
    fx x;
    T_CHECK(fx_open(&x, "llama2", NULL, NULL) == 0);
    T_CHECK(read_all(&x) == 0);
    /* the stream the reader read, and the source lines */
    char *stream = NULL; size_t slen = 0;
    FILE *ms = open_memstream(&stream, &slen);
    char err[512];
    const char *in[1] = {doc_path};
    T_CHECK(cr_extract(in, 1, 0, 1, ms, err, sizeof err) == 0);
    fclose(ms);
    FILE *f = fopen(doc_path, "r");
    char lines[400][128]; int nl = 0;
    while (nl < 400 && fgets(lines[nl], sizeof lines[nl], f)) nl++;
    fclose(f);
    ask_opts ao; ask_opts_default(&ao);
    ao.max_tokens = 12; ao.n_cites = 5;
    ask_result res;
    T_CHECKF(ask_run(x.r, "Who climbed a tree?", &ao, &res, err, sizeof err) == 0, "%s", err);
    T_CHECKF(res.n_cites == 5, "%d citations", res.n_cites);
    const docmap *map = reader_docmap(x.r);
    for (int i = 0; i < res.n_cites; i++) {
        const ask_cite *c = &res.cites[i];
        docmap_loc loc, next;
        T_CHECK(docmap_lookup(map, c->tok, &loc) == 0);
        T_CHECK(loc.doc == 0 && c->offset == loc.offset && c->line == loc.line && c->line >= 1 && c->line <= (uint64_t)nl);
        uint64_t end = docmap_lookup(map, loc.tok_end, &next) == 0 && next.offset > loc.offset ? next.offset : slen;
        T_CHECK(end <= slen && c->offset < end);
        /* the token's text is in the run */
        char piece[64];
        int32_t id;
        /* the cited token id: re-encode the run and take the token at the cited index */
        int32_t *ids = NULL; size_t n = 0, cap = 0;
        T_CHECK(tok_encode(x.s.tok, stream + c->offset, (size_t)(end - c->offset), &ids, &n, &cap) == 0);
        T_CHECK(c->tok - loc.tok_first < n);
        id = ids[c->tok - loc.tok_first];
        free(ids);
        size_t pn = tok_piece(x.s.tok, id, 0, piece, sizeof piece - 1);
        T_CHECK(pn < sizeof piece);
        piece[pn] = 0;
        const char *p = piece; while (*p == ' ') p++;
        char run[2048];
        size_t rl = end - c->offset < sizeof run - 1 ? (size_t)(end - c->offset) : sizeof run - 1;
        memcpy(run, stream + c->offset, rl); run[rl] = 0;
        T_CHECKF(*p == 0 || strstr(run, p), "citation %d: token '%s' not in its run '%s'", i, p, run);
        /* the run starts with the source line it names */
        size_t ll = strlen(lines[c->line - 1]);
        T_CHECKF(strncmp(run, lines[c->line - 1], ll) == 0, "citation %d: line %llu is '%s', run starts '%.40s'",
                 i, (unsigned long long)c->line, lines[c->line - 1], run);
        T_CHECK(strstr(c->label, "line ") != NULL);
        if (i) T_CHECK(res.cites[i - 1].weight >= c->weight);
    }
    /* the conversation keeps them */
    const cr_conv_msg *m = reader_conv_get(x.r, 1);
    T_CHECK(m && m->cites && strstr(m->cites, res.cites[0].label));
    ask_result_free(&res);
    free(stream);
    fx_close(&x);
}

/* Asked before the end: partial, with the document tokens read so far. */
static void test_partial(void) {
    NEED_MODEL();
    fx x;
    T_CHECK(fx_open(&x, "llama2", NULL, NULL) == 0);
    char err[512];
    T_CHECK(reader_read(x.r, (uint64_t)x.s.stride, err, sizeof err) == 1);
    ask_opts ao; ask_opts_default(&ao);
    ao.max_tokens = 3;
    ask_result res;
    T_CHECKF(ask_run(x.r, "Who sang?", &ao, &res, err, sizeof err) == 0, "%s", err);
    T_CHECK(res.partial && res.doc_tokens_read > 0 && res.doc_tokens_read < 10000);
    ask_result_free(&res);
    T_CHECK(read_all(&x) == 0);
    T_CHECK(ask_run(x.r, "Who sang?", &ao, &res, err, sizeof err) == 0);
    T_CHECK(!res.partial);
    ask_result_free(&res);
    fx_close(&x);
}

/* Sampling with a fixed seed: the same answer and citations twice; stop flag honoured. */
static void test_deterministic_seed(void) {
    NEED_MODEL();
    char *ans[2] = {0}; uint64_t ct[2] = {0};
    char err[512];
    for (int rep = 0; rep < 2; rep++) {
        fx x;
        T_CHECK(fx_open(&x, "llama2", "--temp", "0.9") == 0);
        x.o.samp.seed = 1234;
        sampler_free(reader_sampler(x.r));
        sampler_init(reader_sampler(x.r), &x.o.samp, x.s.model.hp.n_vocab);
        T_CHECK(read_all(&x) == 0);
        ask_opts ao; ask_opts_default(&ao);
        ao.max_tokens = 16;
        ask_result res;
        T_CHECKF(ask_run(x.r, "What happened on day 3?", &ao, &res, err, sizeof err) == 0, "%s", err);
        ans[rep] = strdup(res.answer);
        ct[rep] = res.n_cites ? res.cites[0].tok : 0;
        ask_result_free(&res);
        volatile int stop = 1;
        ao.stop = &stop;
        T_CHECK(ask_run(x.r, "More?", &ao, &res, err, sizeof err) == 0);
        T_CHECK(res.stopped && res.answer[0] == 0);
        ask_result_free(&res);
        fx_close(&x);
    }
    T_CHECKF(strcmp(ans[0], ans[1]) == 0, "'%s' vs '%s'", ans[0], ans[1]);
    T_CHECK(ct[0] == ct[1]);
    T_CHECK(strlen(ans[0]) > 0);
    free(ans[0]); free(ans[1]);
}

int main(void) {
    have_model = t_have_shared("models/stories260K.gguf", model_path, sizeof model_path);
    have = have_model && write_doc(t_asan() ? 20 : 60) == 0;
    T_RUN(test_prompt_layout);
    T_RUN(test_conversation_continues);
    T_RUN(test_citations_real_positions);
    T_RUN(test_partial);
    T_RUN(test_deterministic_seed);
    if (have) unlink(doc_path);
    return t_summary();
}
