/* The views against a fake engine: scripted events (document text, progress, a streamed
 * answer with citations, the cache map) go through tui_event exactly as the worker's would,
 * keys through tui_key; each frame is drawn into a curses screen (newterm on /dev/null at
 * 80x24 and 200x60) and the screen text and attributes are checked. The main screens are
 * also compared with tests/fixtures/screens/ after masking digits (CR_UPDATE_FIXTURES=1
 * rewrites them). */
#include "t.h"
#include "cmd.h"
#include "text.h"
#include "tui.h"
#include <stdlib.h>
#include <wchar.h>

static SCREEN *scr;
static FILE *fout, *fin;

static void open_screen(int rows, int cols) {
    fout = fopen("/dev/null", "w"); fin = fopen("/dev/null", "r");
    scr = newterm("xterm-256color", fout, fin);
    if (!scr) scr = newterm("xterm", fout, fin);
    if (scr) { set_term(scr); resize_term(rows, cols); }
}
static void close_screen(void) {
    if (scr) { endwin(); delscreen(scr); scr = NULL; }
    if (fout) fclose(fout);
    if (fin) fclose(fin);
    fout = fin = NULL;
}

/* Row y of the screen as UTF-8 (trailing spaces removed). */
static void row(int y, char *out, size_t cap) {
    wchar_t wb[512]; size_t o = 0;
    int n = mvinnwstr(y, 0, wb, COLS < 511 ? COLS : 511);
    for (int i = 0; i < n && o + 5 < cap; i++) o += (size_t)ut_encode((uint32_t)wb[i], out + o);
    while (o > 0 && out[o - 1] == ' ') o--;
    out[o] = 0;
}
static int screen_has(const char *s) {
    char b[2048];
    for (int y = 0; y < LINES; y++) { row(y, b, sizeof b); if (strstr(b, s)) return y; }
    return -1;
}
static void dump(void) {
    char b[2048];
    for (int y = 0; y < LINES; y++) { row(y, b, sizeof b); printf("  |%s\n", b); }
}
static char *screen_masked(void) {
    size_t cap = (size_t)LINES * (COLS * 4 + 2) + 1, o = 0;
    char *s = malloc(cap), b[2048];
    for (int y = 0; y < LINES; y++) {
        row(y, b, sizeof b);
        for (char *p = b; *p; p++) s[o++] = (*p >= '0' && *p <= '9') ? '#' : *p;
        s[o++] = '\n';
    }
    s[o] = 0;
    return s;
}
static int check_fixture(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/screens/%s.txt", name);
    char *got = screen_masked();
    const char *upd = getenv("CR_UPDATE_FIXTURES");
    if (upd && *upd == '1') {
        FILE *f = fopen(path, "w");
        if (f) { fputs(got, f); fclose(f); }
    }
    FILE *f = fopen(path, "r");
    if (!f) { printf("  missing fixture %s\n", path); free(got); return 0; }
    char *want = calloc(1, 1 << 20);
    size_t n = fread(want, 1, (1 << 20) - 1, f);
    fclose(f);
    want[n] = 0;
    int ok = strcmp(got, want) == 0;
    if (!ok) { printf("  screen differs from %s:\n", path); dump(); }
    free(got); free(want);
    return ok;
}

static wk_event *ev(int type) { wk_event *e = calloc(1, sizeof *e); e->type = type; return e; }
static wk_event *ev_text(int type, const char *s) { wk_event *e = ev(type); e->text = strdup(s); e->len = strlen(s); return e; }

static const char *book =
    "CHAPTER I.\n\nAll children, except one, grow up. They soon know that they will grow up, and the way "
    "Wendy knew was this. One day when she was two years old she was playing in a garden.\n\n"
    "Mrs. Darling first heard of Peter when she was tidying up her children's minds. It is the "
    "nightly custom of every good mother after her children are asleep.\n\n"
    "CHAPTER II.\n\nThe Shadow. Mrs. Darling screamed, and, as if in answer to a bell, the door opened, "
    "and Nana entered, returned from her evening out.\n";

/* A session: one document read up to the second paragraph, reading on. */
static void scene(tui *t) {
    tui_init(t, NULL, "peter.cas");
    t->utf8 = 1;
    t->rss_kb = 12345; t->rss_t = 1e300;         /* a fixed memory figure */
    wk_event *e = ev_text(WK_EV_DOCTEXT, book); e->doc = 0; e->title = strdup("Peter Pan"); tui_event(t, e);
    t->st.have_prog = 1; t->st.prog.doc_tokens = 1234; t->st.prog.bytes_done = 250; t->st.prog.bytes_total = 500;
    t->st.prog.tok_per_s = 4321; t->st.prog.eta_s = 75; t->st.reading = 1;
    snprintf(t->st.model, sizeof t->st.model, "stories260K"); snprintf(t->st.device, sizeof t->st.device, "cpu");
    t->st.C = 4; t->st.W = 64; t->st.stored[0] = 64; t->st.stored[1] = 32; t->st.stored[2] = 16; t->st.stored[3] = 0;
    t->st.pos_doc = 0; t->st.pos_rel = (uint64_t)(strstr(book, "Mrs. Darling first") - book);
    tui_event(t, ev(WK_EV_STATUS));
}

static void frame(tui *t) { tui_draw(t); wnoutrefresh(stdscr); }

static void type(tui *t, const char *s) { for (; *s; s++) tui_key(t, 0, (unsigned char)*s); }

static void test_main_screen_80x24(void) {
    open_screen(24, 80);
    if (!scr) T_SKIP("no terminfo entry for xterm");
    tui t; scene(&t);
    frame(&t);
    char b[2048];
    row(0, b, sizeof b);
    T_CHECKF(strstr(b, "Peter Pan") && strstr(b, "% read"), "title row: %s", b);
    row(22, b, sizeof b);
    T_CHECKF(strstr(b, "reading") && strstr(b, "stories260K cpu") && strstr(b, "1.2k/~2.5k tok 50%") && strstr(b, " 12M") &&
             strstr(b, "4.3k t/s") && strstr(b, "ETA 1:15"), "status: %s", b);
    T_CHECKF(strstr(b, "\u2588\u2584\u2582 "), "cache fill per cascade: %s", b);
    T_CHECK(screen_has("conversation") > 0);
    /* read text is normal, unread text dim */
    int yr = screen_has("All children"), yu = screen_has("Mrs. Darling first");
    T_CHECKF(yr > 0 && yu > yr, "rows %d %d", yr, yu);
    T_CHECK(!(mvinch(yr, 0) & A_DIM));
    T_CHECK(mvinch(yu, 0) & A_DIM);
    /* a question, then the answer streamed token by token */
    type(&t, "Who is Wendy?");
    frame(&t);
    row(23, b, sizeof b);
    T_CHECKF(strcmp(b, "> Who is Wendy?") == 0, "input: %s", b);
    tui_key(&t, 0, '\r');
    T_CHECK(t.sent_cmd == WK_CMD_ASK && strcmp(t.sent_arg, "Who is Wendy?") == 0);
    tui_event(&t, ev(WK_EV_ANSWER_START));
    tui_event(&t, ev_text(WK_EV_TOKEN, "Wendy is"));
    frame(&t);
    T_CHECK(screen_has("> Who is Wendy?") > 0);
    T_CHECKF(screen_has("Wendy is_") > 0, "the answer so far, with a cursor");
    tui_event(&t, ev_text(WK_EV_TOKEN, " a girl."));

    wk_event *e = ev(WK_EV_ANSWER_END); e->partial = 1; e->doc_tokens = 1234;
    e->n_cites = 2; e->cites = calloc(2, sizeof *e->cites);
    e->cites[0].doc = 0; e->cites[0].rel = (uint64_t)(strstr(book, "The Shadow") - book);
    snprintf(e->cites[0].label, sizeof e->cites[0].label, "Peter Pan, CHAPTER II., line 9");
    e->cites[1].doc = 0; e->cites[1].rel = (uint64_t)(strstr(book, "All children") - book);
    snprintf(e->cites[1].label, sizeof e->cites[1].label, "Peter Pan, CHAPTER I., line 3");
    tui_event(&t, e);
    frame(&t);
    T_CHECK(screen_has("Wendy is a girl.") > 0 && screen_has("Wendy is a girl._") < 0);
    T_CHECK(screen_has("(answered from the first 1234 document tokens read; reading continues)") > 0);
    T_CHECK(screen_has("[1] Peter Pan, CHAPTER II., line 9") > 0);
    T_CHECK(check_fixture("main_80x24"));
    /* F3: the first cited passage in the document pane, highlighted */
    tui_key(&t, 1, KEY_F(3));
    frame(&t);
    int yc = screen_has("The Shadow.");
    T_CHECKF(yc > 0 && yc < t.r_doc.h, "cited passage on row %d", yc);
    T_CHECK(mvinch(yc, 0) & A_STANDOUT);
    T_CHECK(screen_has("[scrolled: F5 follows]") == 0);
    tui_key(&t, 1, KEY_F(5));
    T_CHECK(t.doc_follow == 1);
    tui_free(&t);
    close_screen();
}

static void test_wide_screen_and_resize(void) {
    open_screen(24, 80);
    if (!scr) T_SKIP("no terminfo entry for xterm");
    tui t; scene(&t);
    tui_event(&t, ev_text(WK_EV_INFO, "saved peter.cas (0.1 MB)"));
    frame(&t);
    T_CHECK(t.r_doc.w == 80 && t.r_conv.y > 0);
    resize_term(60, 200);                        /* what KEY_RESIZE leads to */
    frame(&t);
    char b[2048];
    row(0, b, sizeof b);
    T_CHECKF(strstr(b, "Peter Pan") && strstr(b, "conversation"), "side by side: %s", b);
    T_CHECK(t.r_conv.x > 90 && t.r_doc.h == 58);
    T_CHECK(screen_has("-- saved peter.cas (0.1 MB)") == 1);
    row(58, b, sizeof b);
    T_CHECK(strstr(b, "reading") != NULL);
    T_CHECK(check_fixture("main_200x60"));
    resize_term(24, 80);
    frame(&t);
    T_CHECK(t.r_doc.w == 80);
    tui_free(&t);
    close_screen();
}

static void test_ctrl_c(void) {
    open_screen(24, 80);
    if (!scr) T_SKIP("no terminfo entry for xterm");
    tui t; scene(&t);
    tui_key(&t, 0, 3);                           /* reading: Ctrl-C stops it, no quit */
    T_CHECK(t.sent_stop == 1 && !t.ctrlc_armed && !t.quit_ask);
    t.st.reading = 2;                            /* idle now */
    type(&t, "abc");
    tui_key(&t, 0, 3);                           /* clears the line first */
    T_CHECK(t.in.len == 0 && !t.ctrlc_armed);
    tui_key(&t, 0, 3);
    frame(&t);
    T_CHECK(t.ctrlc_armed && screen_has("(Ctrl-C again to quit) >") == 23);
    tui_key(&t, 0, 3);
    frame(&t);
    T_CHECK(t.quit_ask && !t.quit);
    T_CHECK(screen_has("Quit? s: save to peter.cas and quit, q: quit without saving") == 23);
    tui_key(&t, 0, 27);                          /* Esc: stay */
    T_CHECK(!t.quit_ask && !t.quit);
    tui_key(&t, 0, 3); tui_key(&t, 0, 3);
    tui_key(&t, 0, 's');                         /* save, then quit */
    T_CHECK(t.quit && t.sent_cmd == WK_CMD_QUIT);
    tui_free(&t);
    close_screen();
}

static void test_commands_and_overlays(void) {
    open_screen(24, 80);
    if (!scr) T_SKIP("no terminfo entry for xterm");
    tui t; scene(&t);
    tui_key(&t, 0, '?');                         /* help on an empty line */
    frame(&t);
    T_CHECK(t.overlay == UV_HELP && screen_has("Ctrl-W") > 0);
    tui_key(&t, 1, KEY_NPAGE);                   /* the commands below */
    frame(&t);
    T_CHECK(screen_has(":save [FILE.cas]") > 0 && screen_has(":quit") > 0);
    tui_key(&t, 0, 27);
    T_CHECK(t.overlay == 0);
    type(&t, "why?");                            /* '?' inside a question is a character */
    T_CHECK(t.overlay == 0 && strcmp(t.in.buf, "why?") == 0);
    tui_key(&t, 0, 21);                          /* Ctrl-U */
    type(&t, ":he");
    tui_key(&t, 0, '\t');
    T_CHECKF(strcmp(t.in.buf, ":help ") == 0, "Tab: '%s'", t.in.buf);
    tui_key(&t, 0, 21);
    type(&t, ":c"); tui_key(&t, 0, '\t');
    frame(&t);
    T_CHECK(screen_has("cache  cite") == 22);   /* the candidates above the input line */
    tui_key(&t, 0, 21);
    type(&t, ":frob"); tui_key(&t, 0, '\r');
    frame(&t);
    T_CHECK(screen_has("error: unknown command :frob") > 0);
    type(&t, ":save /tmp/x.cas"); tui_key(&t, 0, '\r');
    T_CHECK(t.sent_cmd == WK_CMD_SAVE && strcmp(t.sent_arg, "/tmp/x.cas") == 0 && strcmp(t.save_path, "/tmp/x.cas") == 0);
    type(&t, ":grep the door"); tui_key(&t, 0, '\r');
    T_CHECK(t.sent_cmd == WK_CMD_GREP && strcmp(t.sent_arg, "the door") == 0);
    type(&t, ":cache"); tui_key(&t, 0, '\r');
    T_CHECK(t.sent_cmd == WK_CMD_CACHE && t.overlay == UV_CACHE);
    /* the worker's map: cascade 0 holds the end, the sinks the start */
    wk_cache_map *m = calloc(1, sizeof *m);
    m->C = 2; m->S = 4; m->W = 8; m->seen = 1000; m->nbins = 10; m->nheads = 2;
    m->stored[0] = 8; m->stored[1] = 8;
    m->hold = calloc(30, sizeof *m->hold);
    m->hold[9] = 1.0f;                           /* c0: last tenth */
    m->hold[10 + 5] = 0.3f;                      /* c1: the middle */
    m->hold[20 + 0] = 0.5f;                      /* sinks: the start */
    m->ndocs = 1; m->doc_first = calloc(1, sizeof *m->doc_first); m->doc_title = calloc(1, sizeof *m->doc_title);
    m->doc_title[0] = strdup("Peter Pan");
    wk_event *e = ev(WK_EV_CACHE); e->cache = m;
    tui_event(&t, e);
    frame(&t);
    int y0 = screen_has(" c0 "), y1 = screen_has(" c1 "), ys = screen_has(" sinks  ");
    T_CHECKF(y0 > 0 && y1 == y0 + 1 && ys == y0 + 2, "rows %d %d %d", y0, y1, ys);
    char b[2048];
    row(y0, b, sizeof b);
    T_CHECKF(strstr(b, "\u2588") && !strstr(b, "\u2592"), "c0: %s", b);
    const char *full = strstr(b, "\u2588");
    T_CHECK(full - b > (long)strlen(b) * 3 / 4);  /* at the right end */
    row(y1, b, sizeof b);
    T_CHECKF(strstr(b, "\u2592") && !strstr(b, "\u2588"), "c1: %s", b);
    T_CHECK(screen_has("1: Peter Pan") > 0 && screen_has("1000 tokens seen") > 0);
    T_CHECK(check_fixture("cache_80x24"));
    tui_key(&t, 0, 27);
    T_CHECK(t.overlay == 0);
    type(&t, ":quit"); tui_key(&t, 0, '\r');
    T_CHECK(t.quit);
    tui_free(&t);
    close_screen();
}

static void test_resumed_conversation_and_scroll(void) {
    open_screen(24, 80);
    if (!scr) T_SKIP("no terminfo entry for xterm");
    tui t; scene(&t);
    for (int i = 0; i < 20; i++) {
        char q[64]; snprintf(q, sizeof q, "question %d", i);
        wk_event *e = ev_text(WK_EV_CONV, q); e->role = CONV_USER; tui_event(&t, e);
        snprintf(q, sizeof q, "answer %d", i);
        e = ev_text(WK_EV_CONV, q); e->role = CONV_ASSISTANT; tui_event(&t, e);
    }
    frame(&t);
    T_CHECK(screen_has("answer 19") > 0 && screen_has("answer 10") < 0);
    tui_mouse(&t, t.r_conv.y + 2, 5, -1);        /* wheel up over the conversation */
    tui_key(&t, 1, KEY_PPAGE);                   /* and a page (the conversation has the focus) */
    frame(&t);
    T_CHECK(t.conv_scroll > 3 && screen_has("answer 19") < 0 && screen_has("lines up]") > 0);
    tui_key(&t, 1, KEY_NPAGE); tui_key(&t, 1, KEY_NPAGE);
    frame(&t);
    T_CHECK(t.conv_scroll == 0 && screen_has("answer 19") > 0);
    tui_key(&t, 1, KEY_F(2));                    /* focus the document */
    tui_key(&t, 1, KEY_NPAGE);
    T_CHECK(!t.doc_follow && t.doc_top > 0);
    tui_event(&t, ev(WK_EV_RESET));              /* :load replaces everything */
    frame(&t);
    T_CHECK(t.nmsgs == 0 && t.ndocs == 0 && screen_has("answer 19") < 0);
    tui_free(&t);
    close_screen();
}

static void test_no_color(void) {
    open_screen(24, 80);
    if (!scr) T_SKIP("no terminfo entry for xterm");
    tui t; scene(&t);
    setenv("NO_COLOR", "1", 1);
    tui_colors(&t);
    T_CHECK(t.colors == 0);
    frame(&t);
    T_CHECK(mvinch(22, 1) & A_REVERSE);          /* the status bar without colours */
    unsetenv("NO_COLOR");
    tui_colors(&t);
    T_CHECK(t.colors == (has_colors() ? 1 : 0));
    tui_free(&t);
    close_screen();
}

int main(void) {
    ut_locale();
    T_RUN(test_main_screen_80x24);
    T_RUN(test_wide_screen_and_resize);
    T_RUN(test_ctrl_c);
    T_RUN(test_commands_and_overlays);
    T_RUN(test_resumed_conversation_and_scroll);
    T_RUN(test_no_color);
    return t_summary();
}
