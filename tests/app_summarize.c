/* --summarize (app/summarize.c) with stories260K: a note per chapter of Alice (EPUB; under
 * CR_ASAN a generated text with 5 chapters), notes kept in the conversation, span notes for a
 * text without chapters, and the final summary with chapter references. */
#include "t.h"
#include "cli.h"
#include "session.h"
#include "summarize.h"
#include <unistd.h>

static char model_path[512];

typedef struct { int notes, bad_order; uint32_t last_sec; } cb_ctx;
static void on_note(void *ud, uint32_t doc, uint32_t section, const char *title, const char *text) {
    (void)doc; (void)title; (void)text;
    cb_ctx *c = ud;
    if (c->notes && section <= c->last_sec) c->bad_order = 1;
    c->last_sec = section; c->notes++;
}

static int open_reader(const char *doc, cr_opts *o, cr_session *s, summarizer *z, cr_reader **r) {
    const char *argv[] = {"cascade-read", "--model", model_path, "--summarize", "-t", "2", doc};
    if (cli_parse(o, 7, (char **)argv)) return -1;
    if (session_open(s, o, 1)) return -1;
    cr_reader_cb cb = {0};
    cb.section_end = summarize_section_end; cb.progress = summarize_progress; cb.ud = z;
    char err[512];
    *r = reader_new(s, &cb, err, sizeof err);
    if (!*r || reader_add(*r, o->inputs, o->n_inputs, err, sizeof err)) { printf("     %s\n", err); return -1; }
    return 0;
}

static void test_note_per_chapter(void) {
    char doc[512], tmp[] = "/tmp/cr_sum_XXXXXX";
    int gen = t_asan();
    T_NEED_SHARED("models/stories260K.gguf");
    if (gen) {
        int fd = mkstemp(tmp); T_CHECK(fd >= 0);
        FILE *f = fdopen(fd, "w");
        static const char *roman[] = {"I", "II", "III", "IV", "V"};
        fprintf(f, "A short story in five chapters.\n");
        for (int c = 0; c < 5; c++) {
            fprintf(f, "\n\nCHAPTER %s.\n\n", roman[c]);   /* headings follow 2 blank lines */
            for (int p = 0; p < 6; p++) fprintf(f, "In chapter %d the girl walked to place %d and found a thing.\nShe was happy.\n\n", c + 1, p);
        }
        fclose(f);
        snprintf(doc, sizeof doc, "%s", tmp);
    } else {
        snprintf(doc, sizeof doc, "%s/data/books/epub/pg11_alice.epub", t_shared());
        T_NEED_SHARED("data/books/epub/pg11_alice.epub");
    }
    cb_ctx cc = {0};
    sum_opts so; sum_opts_default(&so);
    so.note_tokens = 3; so.summary_tokens = 6; so.n_refs = 3; so.on_note = on_note; so.ud = &cc;
    summarizer *z = summarize_new(&so);
    cr_opts o; cr_session s; cr_reader *r = NULL;
    T_CHECK(open_reader(doc, &o, &s, z, &r) == 0);
    sum_result res;
    char err[512];
    T_CHECKF(summarize_run(z, r, &res, err, sizeof err) == 0, "%s", err);
    const docmap *map = reader_docmap(r);
    T_CHECK(map->ndocs == 1);
    uint32_t nsec = map->docs[0].nsec;
    int chapters = 0;
    for (int i = 0; i < res.n_notes; i++) chapters += strstr(res.notes[i].title, "CHAPTER") != NULL;
    printf("     %s: %u sections, %d notes (%d chapters), summary '%s'\n", gen ? "generated text" : "Alice", nsec,
           res.n_notes, chapters, res.summary);
    /* a note per section, in order, each named after its section */
    T_CHECKF(res.n_notes == (int)nsec && cc.notes == res.n_notes && !cc.bad_order, "%d notes for %u sections", res.n_notes, nsec);
    T_CHECK(chapters >= (gen ? 5 : 12));
    for (int i = 0; i < res.n_notes; i++) {
        T_CHECK(res.notes[i].section == (uint32_t)i && res.notes[i].text);
        const char *st = docmap_section_title(map, 0, (uint32_t)i);
        T_CHECK(st && strstr(res.notes[i].title, st));
    }
    /* the notes are in the conversation, after their chapters' tokens, then the summary */
    int nconv = 0;
    uint64_t prev_end = 0;
    for (size_t i = 0; i < reader_conv_count(r); i++) {
        const cr_conv_msg *m = reader_conv_get(r, i);
        if (m->role == CONV_NOTE) {
            T_CHECK(strcmp(m->text, res.notes[nconv].text) == 0);
            T_CHECK(m->tok_first >= prev_end && m->tok_end > m->tok_first);
            docmap_loc loc;
            T_CHECK(docmap_lookup(map, m->tok_first, &loc) == 0 && loc.doc == DOCMAP_CONV);
            prev_end = m->tok_end;
            nconv++;
        }
    }
    T_CHECK(nconv == res.n_notes);
    const cr_conv_msg *last = reader_conv_get(r, reader_conv_count(r) - 1);
    T_CHECK(last->role == CONV_ASSISTANT && strcmp(last->text, res.summary) == 0 && last->tok_end == (uint64_t)s.st.ctrl.seen);
    T_CHECK(res.n_refs >= 1 && res.n_refs <= 3);
    for (int i = 0; i < res.n_refs; i++) T_CHECK(res.refs[i].doc == 0 && res.refs[i].section < nsec);
    sum_result_free(&res);
    reader_free(r); session_close(&s); free(o.inputs); summarize_free(z);
    if (gen) unlink(tmp);
}

/* A text without chapters: a note every span tokens, then one at the end. */
static void test_span_notes(void) {
    T_NEED_SHARED("models/stories260K.gguf");
    char tmp[] = "/tmp/cr_sum_XXXXXX";
    int fd = mkstemp(tmp); T_CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    int paras = t_asan() ? 40 : 120;
    for (int p = 0; p < paras; p++) fprintf(f, "the boy number %d ran to the shop and bought bread\nand milk for his mother.\n\n", p);
    fclose(f);
    sum_opts so; sum_opts_default(&so);
    so.note_tokens = 2; so.summary_tokens = 2; so.span = 600;
    summarizer *z = summarize_new(&so);
    cr_opts o; cr_session s; cr_reader *r = NULL;
    T_CHECK(open_reader(tmp, &o, &s, z, &r) == 0);
    sum_result res;
    char err[512];
    T_CHECKF(summarize_run(z, r, &res, err, sizeof err) == 0, "%s", err);
    cr_progress p; reader_progress(r, &p);
    /* span notes are checked after each stride (overshoot < 2 strides), then the end note */
    uint64_t lo = p.doc_tokens / (600 + 2 * (uint64_t)s.stride), hi = p.doc_tokens / 600 + 1;
    T_CHECKF(res.n_notes >= (int)lo && res.n_notes <= (int)hi && res.n_notes >= 3, "%d notes for %llu document tokens",
             res.n_notes, (unsigned long long)p.doc_tokens);
    T_CHECKF(strstr(res.notes[0].title, "lines 1-") != NULL, "first note: %s", res.notes[0].title);
    T_CHECK(strstr(res.notes[res.n_notes - 1].title, "to the end") != NULL);
    sum_result_free(&res);
    reader_free(r); session_close(&s); free(o.inputs); summarize_free(z);
    unlink(tmp);
}

int main(void) {
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", t_shared());
    T_RUN(test_note_per_chapter);
    T_RUN(test_span_notes);
    return t_summary();
}
