/* The full-screen interface: its state, the views (one file each, plugged through a table
 * of functions like tig's view_ops) and the drawing helpers they share. */
#ifndef CR_UI_TUI_H
#define CR_UI_TUI_H
#include <curses.h>
#include <stddef.h>
#include <stdint.h>
#include "input.h"
#include "worker.h"

typedef struct ui_msg {
    int role;                 /* CONV_USER, CONV_ASSISTANT, CONV_NOTE, CONV_SYSTEM, UI_ERROR */
    char *text; size_t len, cap;
    wk_cite *cites; int n_cites;
    int pending;              /* an answer being streamed */
    int partial, stopped, failed;
    uint64_t doc_tokens;
} ui_msg;
#define UI_ERROR 100

typedef struct ui_doc {
    char *title, *text; size_t len;
    uint64_t *lines; size_t nlines;   /* (offset, source line) pairs, see wk_event.lines */
} ui_doc;

typedef struct tui tui;
typedef struct ui_rect { int y, x, h, w; } ui_rect;

typedef struct ui_view_ops {
    const char *name;
    void (*draw)(tui *t, ui_rect r);
    int  (*scroll_by)(tui *t, int lines);   /* lines < 0: up; returns 1 if it moved */
} ui_view_ops;
extern const ui_view_ops ui_view_doc, ui_view_conv, ui_view_cache, ui_view_help;

enum { UV_DOC, UV_CONV, UV_CACHE, UV_HELP, UV_N };
enum { UA_NORMAL, UA_STATUS, UA_USER, UA_CITE, UA_ERR, UA_DIM, UA_NOTE, UA_TITLE, UA_HOLD };

struct tui {
    wk *w;                    /* NULL in tests: commands are recorded in sent_* */
    wk_status st; int have_st;
    ui_doc *docs; int ndocs;
    int cur_doc; size_t doc_top; int doc_follow;
    ui_msg *msgs; int nmsgs, cap_msgs;
    int conv_scroll;          /* lines above the bottom */
    ui_input in;
    int overlay;              /* 0, UV_CACHE or UV_HELP */
    int overlay_scroll;
    wk_cache_map *cache;
    int focus;                /* UV_DOC or UV_CONV: where PgUp/PgDn go */
    int quit;                 /* leave the loop */
    int quit_ask;             /* the quit question is shown */
    int ctrlc_armed;          /* one Ctrl-C at the idle prompt */
    int waiting_exit;         /* :save then quit: waiting for the worker */
    int colors, utf8;
    char complete_list[512];
    char save_path[1024];
    int cite_cur;             /* last citation shown (index into the flat list), -1 */
    int rect_doc_h, rect_conv_h;   /* heights of the panes (scrolling by pages) */
    ui_rect r_doc, r_conv;    /* where the panes are (mouse wheel) */
    int dirty;
    double rss_t; long rss_kb;
    /* tests */
    int sent_cmd; char sent_arg[1024]; int sent_stop;
};

/* ui/tui.c */
void tui_init(tui *t, wk *w, const char *save_path);
void tui_free(tui *t);
void tui_event(tui *t, wk_event *e);          /* takes e */
/* A key: fn = 1 for curses KEY_* codes, else a code point (controls included). */
void tui_key(tui *t, int fn, int code);
void tui_mouse(tui *t, int y, int x, int wheel /* -1 up, 1 down */);
void tui_draw(tui *t);                         /* one frame into stdscr, no refresh */
void tui_colors(tui *t);                       /* after initscr: colors unless NO_COLOR */
void tui_note(tui *t, int role, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* every citation of the conversation, in order: returns the count; *m, *c of the k-th */
int  tui_cite_at(const tui *t, int k, int *msg, int *cite);
void tui_show_cite(tui *t, int k);

/* ui/draw.c */
int  ui_attr(const tui *t, int kind);
/* Draw s[0..n) at (y, x) in at most maxw columns (controls as spaces); returns the columns used. */
int  ui_put(int y, int x, int maxw, const char *s, size_t n, int attr);
void ui_fill(int y, int x, int w, int attr);   /* spaces */
int  ui_printf(int y, int x, int maxw, int attr, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Wrapped-line navigation over text[0..len) at width cols. */
size_t ui_line_start(const char *text, size_t len, size_t pos, int cols);
size_t ui_prev_line(const char *text, size_t len, size_t start, int cols);
size_t ui_next_line(const char *text, size_t len, size_t start, int cols);

/* ui/view_status.c */
void ui_draw_status(tui *t, int y, int w);
void ui_draw_input(tui *t, int y, int w);
void ui_status_text(const tui *t, char *buf, size_t n);   /* the status line, for tests too */
#endif
