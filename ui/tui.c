/* The full-screen interface: the main loop (poll on stdin and the worker's event pipe),
 * events from the worker, keys, layout and one frame per wake-up (wnoutrefresh + doupdate:
 * one write per frame). */
#include "tui.h"
#include "cmd.h"
#include "run.h"
#include "text.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const ui_view_ops *views[UV_N] = { &ui_view_doc, &ui_view_conv, &ui_view_cache, &ui_view_help };

void tui_init(tui *t, wk *w, const char *save_path) {
    memset(t, 0, sizeof *t);
    t->w = w;
    t->doc_follow = 1;
    t->focus = UV_CONV;
    t->cite_cur = -1;
    t->dirty = 1;
    t->st.pos_doc = -1;
    in_init(&t->in);
    snprintf(t->save_path, sizeof t->save_path, "%s", save_path ? save_path : "session.cas");
}

static void msg_free(ui_msg *m) { free(m->text); free(m->cites); memset(m, 0, sizeof *m); }

static void clear_session(tui *t) {
    for (int i = 0; i < t->nmsgs; i++) msg_free(&t->msgs[i]);
    t->nmsgs = 0;
    for (int i = 0; i < t->ndocs; i++) { free(t->docs[i].title); free(t->docs[i].text); free(t->docs[i].lines); }
    free(t->docs); t->docs = NULL; t->ndocs = 0;
    t->cur_doc = 0; t->doc_top = 0; t->doc_follow = 1; t->conv_scroll = 0; t->cite_cur = -1;
}

void tui_free(tui *t) {
    clear_session(t);
    free(t->msgs);
    wk_cache_map_free(t->cache);
    in_free(&t->in);
}

static ui_msg *msg_add(tui *t, int role, const char *text, size_t n) {
    if (t->nmsgs == t->cap_msgs) {
        int nc = t->cap_msgs ? t->cap_msgs * 2 : 32;
        ui_msg *nm = realloc(t->msgs, (size_t)nc * sizeof *nm);
        if (!nm) return NULL;
        t->msgs = nm; t->cap_msgs = nc;
    }
    ui_msg *m = &t->msgs[t->nmsgs++];
    memset(m, 0, sizeof *m);
    m->role = role;
    m->text = malloc(n + 1);
    if (m->text) { memcpy(m->text, text, n); m->text[n] = 0; m->len = n; m->cap = n + 1; }
    t->conv_scroll = 0;
    return m;
}

static void msg_append(ui_msg *m, const char *s, size_t n) {
    if (m->len + n + 1 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        while (nc < m->len + n + 1) nc *= 2;
        char *nt = realloc(m->text, nc);
        if (!nt) return;
        m->text = nt; m->cap = nc;
    }
    memcpy(m->text + m->len, s, n);
    m->len += n; m->text[m->len] = 0;
}

void tui_note(tui *t, int role, const char *fmt, ...) {
    char buf[1200];
    va_list ap; va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    msg_add(t, role, buf, strlen(buf));
    t->dirty = 1;
}

static ui_msg *pending_answer(tui *t) {
    for (int i = t->nmsgs - 1; i >= 0; i--)
        if (t->msgs[i].role == CONV_ASSISTANT && t->msgs[i].pending) return &t->msgs[i];
    return NULL;
}

int tui_cite_at(const tui *t, int k, int *msg, int *cite) {
    int n = 0;
    for (int m = 0; m < t->nmsgs; m++)
        for (int c = 0; c < t->msgs[m].n_cites; c++, n++)
            if (n == k && msg) { *msg = m; *cite = c; }
    return n;
}

/* A citation known by its source line (grep hits): find its byte offset in the document's
 * text, where '\n' ends a source line and text[0] is on line line0. */
static void resolve_cite(tui *t, wk_cite *c) {
    if (c->rel != WK_REL_LINE || (int)c->doc >= t->ndocs || !t->docs[c->doc].text) return;
    const ui_doc *d = &t->docs[c->doc];
    size_t k = d->nlines;          /* the last pair starting at or before the line */
    while (k > 0 && d->lines[2 * (k - 1) + 1] > c->line) k--;
    if (k == 0) return;
    uint64_t skip = c->line - d->lines[2 * (k - 1) + 1];
    size_t i = (size_t)d->lines[2 * (k - 1)];
    while (skip > 0 && i < d->len) { const char *nl = memchr(d->text + i, '\n', d->len - i); if (!nl) return; i = (size_t)(nl - d->text) + 1; skip--; }
    if (skip == 0 && i < d->len) c->rel = i;
}

void tui_show_cite(tui *t, int k) {
    int n = tui_cite_at(t, -1, NULL, NULL);
    if (n == 0) { tui_note(t, CONV_NOTE, "no citations yet"); return; }
    if (k < 0 || k >= n) { tui_note(t, CONV_NOTE, "citation %d does not exist (1..%d)", k + 1, n); return; }
    int m = 0, c = 0;
    tui_cite_at(t, k, &m, &c);
    wk_cite *ct = &t->msgs[m].cites[c];
    resolve_cite(t, ct);
    if ((int)ct->doc < 0 || (int)ct->doc >= t->ndocs || !t->docs[ct->doc].text || ct->rel == WK_REL_LINE) {
        tui_note(t, CONV_NOTE, "[%d] %s: its text is not shown here", k + 1, ct->label);
        return;
    }
    t->cite_cur = k;
    t->cur_doc = (int)ct->doc;
    t->doc_follow = 0;
    t->doc_top = ct->rel;
    /* a couple of lines of context above the passage */
    int cols = t->r_doc.w > 0 ? t->r_doc.w : 80;
    ui_doc *d = &t->docs[t->cur_doc];
    t->doc_top = ui_line_start(d->text, d->len, ct->rel < d->len ? ct->rel : d->len, cols);
    for (int i = 0; i < 2; i++) t->doc_top = ui_prev_line(d->text, d->len, t->doc_top, cols);
    t->dirty = 1;
}

void tui_event(tui *t, wk_event *e) {
    t->dirty = 1;
    switch (e->type) {
    case WK_EV_STATUS:
        if (t->w) worker_status(t->w, &t->st);
        t->have_st = 1;
        if (t->doc_follow && t->st.pos_doc >= 0 && t->st.pos_doc < t->ndocs) t->cur_doc = t->st.pos_doc;
        break;
    case WK_EV_DOCTEXT:
        if (e->doc >= 0 && e->doc < 100000) {
            if (e->doc >= t->ndocs) {
                ui_doc *nd = realloc(t->docs, (size_t)(e->doc + 1) * sizeof *nd);
                if (!nd) break;
                memset(nd + t->ndocs, 0, (size_t)(e->doc + 1 - t->ndocs) * sizeof *nd);
                t->docs = nd; t->ndocs = e->doc + 1;
            }
            ui_doc *d = &t->docs[e->doc];
            free(d->text); free(d->title);
            free(d->lines);
            d->text = e->text; d->len = e->len; d->title = e->title; d->lines = e->lines; d->nlines = e->nlines;
            e->text = NULL; e->title = NULL; e->lines = NULL;
        }
        break;
    case WK_EV_CONV: {
        ui_msg *m = msg_add(t, e->role, e->text ? e->text : "", e->len);
        if (m) { m->cites = e->cites; m->n_cites = e->n_cites; m->doc_tokens = e->doc_tokens; e->cites = NULL; }
        break;
    }
    case WK_EV_RESET: clear_session(t); break;
    case WK_EV_ANSWER_START: {
        ui_msg *m = msg_add(t, CONV_ASSISTANT, "", 0);
        if (m) m->pending = 1;
        break;
    }
    case WK_EV_TOKEN: {
        ui_msg *m = pending_answer(t);
        if (m) msg_append(m, e->text, e->len);
        break;
    }
    case WK_EV_ANSWER_END: {
        ui_msg *m = pending_answer(t);
        if (!m) break;
        m->pending = 0;
        if (e->code) { m->failed = m->len == 0; break; }
        m->partial = e->partial; m->stopped = e->stopped; m->doc_tokens = e->doc_tokens;
        free(m->cites); m->cites = e->cites; m->n_cites = e->n_cites; e->cites = NULL;
        for (int i = 0; i < m->n_cites; i++) resolve_cite(t, &m->cites[i]);
        break;
    }
    case WK_EV_READ: {
        unsigned long long n = t->st.have_prog ? (unsigned long long)t->st.prog.doc_tokens : 0;
        if (t->w) { worker_status(t->w, &t->st); t->have_st = 1; n = t->st.have_prog ? (unsigned long long)t->st.prog.doc_tokens : n; }
        if (e->code == 0) tui_note(t, CONV_NOTE, "finished reading: %llu document tokens", n);
        else if (e->code == 2) tui_note(t, CONV_NOTE, "reading stopped after %llu document tokens (:read continues)", n);
        else tui_note(t, CONV_NOTE, "reading");
        break;
    }
    case WK_EV_INFO: tui_note(t, CONV_NOTE, "%s", e->text ? e->text : ""); break;
    case WK_EV_ERROR: {
        ui_msg *m = pending_answer(t);
        if (m) { m->pending = 0; m->failed = m->len == 0; }
        tui_note(t, UI_ERROR, "%s", e->text ? e->text : "");
        break;
    }
    case WK_EV_CACHE:
        wk_cache_map_free(t->cache);
        t->cache = e->cache; e->cache = NULL;
        t->overlay = UV_CACHE;
        break;
    case WK_EV_EXIT: t->quit = 1; break;
    default: break;
    }
    wk_event_free(e);
}

static void send(tui *t, int cmd, const char *arg) {
    t->sent_cmd = cmd;
    snprintf(t->sent_arg, sizeof t->sent_arg, "%s", arg ? arg : "");
    if (t->w && worker_send(t->w, cmd, arg)) tui_note(t, UI_ERROR, "the worker has stopped");
}

static void run_command(tui *t, const char *line) {
    int id; char arg[1024], err[256];
    if (ui_cmd_parse(line, &id, arg, sizeof arg, err, sizeof err)) { tui_note(t, UI_ERROR, "%s", err); return; }
    switch (id) {
    case UC_SAVE:
        if (arg[0]) snprintf(t->save_path, sizeof t->save_path, "%s", arg);
        send(t, WK_CMD_SAVE, t->save_path);
        break;
    case UC_LOAD: send(t, WK_CMD_LOAD, arg); snprintf(t->save_path, sizeof t->save_path, "%s", arg); break;
    case UC_ADD: send(t, WK_CMD_ADD, arg); break;
    case UC_SUMMARIZE: msg_add(t, CONV_USER, ":summarize", 10); send(t, WK_CMD_SUMMARIZE, NULL); break;
    case UC_GREP: { char q[1100]; snprintf(q, sizeof q, ":grep %s", arg); msg_add(t, CONV_USER, q, strlen(q)); send(t, WK_CMD_GREP, arg); break; }
    case UC_CACHE: t->overlay = UV_CACHE; wk_cache_map_free(t->cache); t->cache = NULL; send(t, WK_CMD_CACHE, NULL); break;
    case UC_READ: send(t, WK_CMD_READ, NULL); break;
    case UC_CITE: tui_show_cite(t, atoi(arg) - 1); break;
    case UC_HELP: t->overlay = UV_HELP; t->overlay_scroll = 0; break;
    case UC_QUIT: t->quit = 1; break;
    }
}

static void enter(tui *t) {
    char *line = in_take(&t->in);
    t->complete_list[0] = 0;
    if (!line) return;
    const char *p = line;
    while (*p == ' ') p++;
    if (*p == ':') run_command(t, p);
    else if (*p) { msg_add(t, CONV_USER, p, strlen(p)); send(t, WK_CMD_ASK, p); }
    free(line);
}

static int busy(const tui *t) { return t->have_st && (t->st.busy || t->st.reading == 1); }

static void ctrl_c(tui *t) {
    if (t->quit_ask) { t->quit_ask = 0; return; }
    int stopped = t->w ? worker_stop(t->w) : busy(t);
    t->sent_stop++;
    if (stopped) { t->ctrlc_armed = 0; return; }
    if (t->in.len) { in_clear(&t->in); t->ctrlc_armed = 0; return; }
    if (t->ctrlc_armed) { t->ctrlc_armed = 0; t->quit_ask = 1; return; }
    t->ctrlc_armed = 1;
}

static void scroll_focus(tui *t, int lines) {
    int v = t->overlay ? t->overlay : t->focus;
    views[v]->scroll_by(t, lines);
}

/* lines of a page of the focused pane (its height less the title and one line kept) */
static int page(const tui *t) {
    int h = (t->overlay || t->focus == UV_CONV ? t->rect_conv_h : t->rect_doc_h) - 2;
    return h > 1 ? h : 1;
}

void tui_key(tui *t, int fn, int code) {
    t->dirty = 1;
    if (!(code == 3 && !fn)) t->ctrlc_armed = 0;
    if (t->quit_ask) {
        if (!fn && (code == 's' || code == 'S')) {       /* stop what runs, save, then quit */
            t->quit_ask = 0;
            if (t->w) worker_stop(t->w);
            send(t, WK_CMD_SAVE, t->save_path); send(t, WK_CMD_QUIT, NULL);
            t->waiting_exit = 1;
            tui_note(t, CONV_NOTE, "saving %s before quitting", t->save_path);
            if (!t->w) t->quit = 1;
        }
        else if (!fn && (code == 'q' || code == 'Q' || code == 'y')) t->quit = 1;
        else if (!fn && (code == 27 || code == 'n')) t->quit_ask = 0;
        else if (!fn && code == 3) t->quit_ask = 0;
        return;
    }
    if (fn) {
        switch (code) {
        case KEY_LEFT: in_key(&t->in, IN_LEFT); break;
        case KEY_RIGHT: in_key(&t->in, IN_RIGHT); break;
        case KEY_HOME: in_key(&t->in, IN_HOME); break;
        case KEY_END: in_key(&t->in, IN_END); break;
        case KEY_BACKSPACE: in_key(&t->in, IN_BACKSPACE); break;
        case KEY_DC: in_key(&t->in, IN_DELETE); break;
        case KEY_UP: in_key(&t->in, IN_UP); break;
        case KEY_DOWN: in_key(&t->in, IN_DOWN); break;
        case KEY_ENTER: enter(t); break;
        case KEY_PPAGE: scroll_focus(t, -page(t)); break;
        case KEY_NPAGE: scroll_focus(t, page(t)); break;
        case KEY_F(1): t->overlay = t->overlay == UV_HELP ? 0 : UV_HELP; t->overlay_scroll = 0; break;
        case KEY_F(2): t->focus = t->focus == UV_DOC ? UV_CONV : UV_DOC; break;
        case KEY_F(3): case KEY_F(4): {
            int n = tui_cite_at(t, -1, NULL, NULL);
            if (n) tui_show_cite(t, ((t->cite_cur < 0 ? (code == KEY_F(3) ? -1 : 0) : t->cite_cur) + (code == KEY_F(3) ? 1 : n - 1)) % n);
            else tui_note(t, CONV_NOTE, "no citations yet");
            break;
        }
        case KEY_F(6):                                  /* the next document */
            if (t->ndocs > 1) { t->cur_doc = (t->cur_doc + 1) % t->ndocs; t->doc_follow = 0; t->doc_top = 0; }
            break;
        case KEY_F(5): t->doc_follow = 1; if (t->st.pos_doc >= 0 && t->st.pos_doc < t->ndocs) t->cur_doc = t->st.pos_doc; break;
        default: break;
        }
        return;
    }
    switch (code) {
    case 3: ctrl_c(t); break;
    case '\r': case '\n': enter(t); break;
    case 27: t->overlay = 0; t->complete_list[0] = 0; break;
    case 1: in_key(&t->in, IN_HOME); break;          /* Ctrl-A */
    case 2: in_key(&t->in, IN_LEFT); break;          /* Ctrl-B */
    case 4: in_key(&t->in, IN_DELETE); break;        /* Ctrl-D */
    case 5: in_key(&t->in, IN_END); break;           /* Ctrl-E */
    case 6: in_key(&t->in, IN_RIGHT); break;         /* Ctrl-F */
    case 8: case 127: in_key(&t->in, IN_BACKSPACE); break;
    case 11: in_key(&t->in, IN_KILL_END); break;     /* Ctrl-K */
    case 12: clearok(curscr, TRUE); break;           /* Ctrl-L */
    case 14: in_key(&t->in, IN_DOWN); break;         /* Ctrl-N */
    case 16: in_key(&t->in, IN_UP); break;           /* Ctrl-P */
    case 21: in_key(&t->in, IN_KILL_START); break;   /* Ctrl-U */
    case 23: in_key(&t->in, IN_KILL_WORD); break;    /* Ctrl-W */
    case '\t': {
        size_t cur = t->in.cur;
        char buf[IN_MAX];
        memcpy(buf, t->in.buf, t->in.len + 1);
        ui_complete(buf, sizeof buf, &cur, t->complete_list, sizeof t->complete_list);
        in_set(&t->in, buf);
        t->in.cur = cur <= t->in.len ? cur : t->in.len;
        break;
    }
    case '?':
        if (t->in.len == 0) { t->overlay = UV_HELP; t->overlay_scroll = 0; break; }
        /* fall through */
    default:
        if (code >= 0x20) in_insert(&t->in, (unsigned)code);
        break;
    }
}

void tui_mouse(tui *t, int y, int x, int wheel) {
    const ui_rect *d = &t->r_doc;
    int v = t->overlay ? t->overlay : (y >= d->y && y < d->y + d->h && x >= d->x && x < d->x + d->w) ? UV_DOC : UV_CONV;
    views[v]->scroll_by(t, wheel * 3);
    t->dirty = 1;
}

void tui_colors(tui *t) {
    t->colors = 0;
    const char *nc = getenv("NO_COLOR");
    if ((nc && *nc) || !has_colors()) return;
    if (start_color() != OK) return;
    use_default_colors();
    init_pair(1, COLOR_BLACK, COLOR_CYAN);     /* status */
    init_pair(2, COLOR_CYAN, -1);              /* questions */
    init_pair(3, COLOR_BLACK, COLOR_YELLOW);   /* cited passages */
    init_pair(4, COLOR_RED, -1);               /* errors */
    init_pair(5, COLOR_YELLOW, -1);            /* notes, citations */
    init_pair(6, COLOR_WHITE, COLOR_BLUE);     /* pane titles */
    init_pair(7, COLOR_GREEN, -1);             /* cache map */
    t->colors = 1;
}

void tui_draw(tui *t) {
    int H = LINES, W = COLS;
    erase();
    if (H < 6 || W < 20) { mvaddstr(0, 0, "terminal too small"); return; }
    int body = H - 2;              /* status bar and input line below */
    if (W >= 160) {                /* side by side */
        int dw = W / 2;
        t->r_doc = (ui_rect){ 0, 0, body, dw };
        t->r_conv = (ui_rect){ 0, dw + 1, body, W - dw - 1 };
        for (int y = 0; y < body; y++) ui_put(y, dw, 1, t->utf8 ? "\u2502" : "|", t->utf8 ? 3 : 1, ui_attr(t, UA_DIM));
    } else {
        int dh = body * 2 / 5;
        if (dh < 3) dh = 3;
        t->r_doc = (ui_rect){ 0, 0, dh, W };
        t->r_conv = (ui_rect){ dh, 0, body - dh, W };
    }
    t->rect_doc_h = t->r_doc.h; t->rect_conv_h = t->r_conv.h;
    if (t->overlay) views[t->overlay]->draw(t, (ui_rect){ 0, 0, body, W });
    else {
        views[UV_DOC]->draw(t, t->r_doc);
        views[UV_CONV]->draw(t, t->r_conv);
    }
    ui_draw_status(t, H - 2, W);
    ui_draw_input(t, H - 1, W);
}

/* ---- the loop ---------------------------------------------------------------------- */

static volatile sig_atomic_t got_int, got_term;
static void on_sig(int s) { if (s == SIGINT) got_int = 1; else got_term = 1; }

static double mono(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void default_save_path(const cr_opts *o, char *buf, size_t n) {
    if (o->save_path) { snprintf(buf, n, "%s", o->save_path); return; }
    if (o->resume_path) { snprintf(buf, n, "%s", o->resume_path); return; }
    const char *p = o->n_inputs ? o->inputs[0] : "session";
    const char *b = strrchr(p, '/'); b = b ? b + 1 : p;
    if (strstr(p, "://") || !strcmp(p, "-")) b = "session";
    char base[256]; snprintf(base, sizeof base, "%s", b);
    char *dot = strchr(base, '.'); if (dot && dot != base) *dot = 0;
    snprintf(buf, n, "%s.cas", base);
}

static void read_keys(tui *t) {
    wint_t ch; int r;
    while ((r = get_wch(&ch)) != ERR) {
        if (r == KEY_CODE_YES) {
            if (ch == KEY_RESIZE) { t->dirty = 1; continue; }
            if (ch == KEY_MOUSE) {
                MEVENT me;
                if (getmouse(&me) == OK) {
                    if (me.bstate & BUTTON4_PRESSED) tui_mouse(t, me.y, me.x, -1);
#ifdef BUTTON5_PRESSED
                    else if (me.bstate & BUTTON5_PRESSED) tui_mouse(t, me.y, me.x, 1);
#endif
                }
                continue;
            }
            tui_key(t, 1, (int)ch);
        } else tui_key(t, 0, (int)ch);
        if (t->quit) return;
    }
}

int run_tui(const cr_opts *o) {
    wk_backend be;
    int rc = wk_backend_reader_new(o, &be);     /* errors print before the screen is set up */
    if (rc) return rc;
    char err[256];
    int utf8 = ut_locale();
    wk *w = worker_start(&be, 1, err, sizeof err);
    if (!w) { if (be.destroy) be.destroy(be.ud); fprintf(stderr, "cascade-read: %s\n", err); return CR_EXIT_MODEL; }
    char sp[1024]; default_save_path(o, sp, sizeof sp);
    tui t; tui_init(&t, w, sp);
    t.utf8 = utf8;
    SCREEN *scr = newterm(NULL, stdout, stdin);     /* unlike initscr, returns NULL on failure */
    if (!scr) {
        worker_free(w); tui_free(&t);
        const char *term = getenv("TERM");
        fprintf(stderr, "cascade-read: %s: cannot use this terminal for the interface (--no-tui reads without it)\n",
                term && *term ? term : "TERM unset");
        return CR_EXIT_USAGE;
    }
    set_term(scr);
    raw(); noecho(); nonl(); keypad(stdscr, TRUE); nodelay(stdscr, TRUE);
    set_escdelay(25);
    mousemask(BUTTON4_PRESSED
#ifdef BUTTON5_PRESSED
              | BUTTON5_PRESSED
#endif
              , NULL);
    tui_colors(&t);
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig; sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); sigaction(SIGTERM, &sa, NULL); sigaction(SIGHUP, &sa, NULL);
    double last_frame = 0;
    const double frame = 1.0 / 30;
    while (!t.quit) {
        int timeout = -1;
        if (t.dirty) {
            double now = mono();
            if (now - last_frame >= frame) {
                tui_draw(&t);
                wnoutrefresh(stdscr);
                doupdate();
                last_frame = now; t.dirty = 0;
            } else timeout = (int)((frame - (now - last_frame)) * 1000) + 1;
        }
        struct pollfd pf[2] = { { 0, POLLIN, 0 }, { worker_fd(w), POLLIN, 0 } };
        int n = poll(pf, 2, timeout);
        if (got_term) break;
        if (got_int) { got_int = 0; tui_key(&t, 0, 3); }
        if (n < 0 && errno != EINTR) break;
        read_keys(&t);                 /* also KEY_RESIZE after SIGWINCH interrupted poll */
        wk_event *e;
        while ((e = worker_next(w))) tui_event(&t, e);
        if (t.waiting_exit && !t.quit) t.dirty = 1;
    }
    endwin();
    delscreen(scr);
    worker_free(w);
    /* anything the worker said after the screen closed (e.g. the last save) */
    for (int i = 0; i < t.nmsgs; i++)
        if (t.msgs[i].role == UI_ERROR && i >= t.nmsgs - 2) fprintf(stderr, "cascade-read: %s\n", t.msgs[i].text);
    tui_free(&t);
    return got_term ? CR_EXIT_INTR : CR_EXIT_OK;
}
