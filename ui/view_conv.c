/* Conversation pane: questions, answers (streamed token by token), their citations and the
 * notes of the session; scrollback with PgUp/PgDn or the wheel, follows the bottom
 * otherwise. */
#include "text.h"
#include "tui.h"
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

typedef struct { const char *s; size_t n; int attr; } cline;
typedef struct { cline *l; int n, cap; char **own; int nown, capown; } lines;

static void add_line(lines *L, const char *s, size_t n, int attr) {
    if (L->n == L->cap) {
        int nc = L->cap ? L->cap * 2 : 256;
        cline *nl = realloc(L->l, (size_t)nc * sizeof *nl);
        if (!nl) return;
        L->l = nl; L->cap = nc;
    }
    L->l[L->n++] = (cline){ s, n, attr };
}

static const char *own(lines *L, char *s) {
    if (!s) return NULL;
    if (L->nown == L->capown) {
        int nc = L->capown ? L->capown * 2 : 64;
        char **no = realloc(L->own, (size_t)nc * sizeof *no);
        if (!no) { free(s); return NULL; }
        L->own = no; L->capown = nc;
    }
    return L->own[L->nown++] = s;
}

static void add_par(lines *L, const char *s, size_t n, int cols, int attr) {
    if (!s) return;
    size_t i = 0;
    if (n == 0) { add_line(L, "", 0, attr); return; }
    while (i < n) {
        size_t nx;
        size_t len = ut_wrap(s + i, n - i, cols, &nx);
        add_line(L, s + i, len, attr);
        i += nx ? nx : 1;
    }
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap; va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* All lines of the conversation at width cols. */
static void build(tui *t, lines *L, int cols) {
    int cite_no = 0;
    for (int m = 0; m < t->nmsgs; m++) {
        ui_msg *g = &t->msgs[m];
        if (m) add_line(L, "", 0, 0);
        const char *s;
        switch (g->role) {
        case CONV_USER:
            s = own(L, fmt("> %s", g->text ? g->text : ""));
            if (s) add_par(L, s, strlen(s), cols, ui_attr(t, UA_USER));
            break;
        case UI_ERROR:
            s = own(L, fmt("error: %s", g->text ? g->text : ""));
            if (s) add_par(L, s, strlen(s), cols, ui_attr(t, UA_ERR));
            break;
        case CONV_NOTE: case CONV_SYSTEM:
            s = own(L, fmt("-- %s", g->text ? g->text : ""));
            if (s) add_par(L, s, strlen(s), cols, ui_attr(t, UA_NOTE));
            break;
        default:
            if (g->pending && !g->len) add_par(L, "...", 3, cols, ui_attr(t, UA_DIM));
            else if (g->pending) {
                s = own(L, fmt("%.*s_", (int)g->len, g->text));
                if (s) add_par(L, s, strlen(s), cols, ui_attr(t, UA_NORMAL));
            } else add_par(L, g->text ? g->text : "", g->len, cols, ui_attr(t, UA_NORMAL));
            if (g->stopped) add_par(L, "(stopped)", 9, cols, ui_attr(t, UA_NOTE));
            if (g->failed) add_par(L, "(no answer)", 11, cols, ui_attr(t, UA_NOTE));
            if (g->partial && !g->pending) {
                s = own(L, fmt("(answered from the first %llu document tokens read; reading continues)",
                               (unsigned long long)g->doc_tokens));
                if (s) add_par(L, s, strlen(s), cols, ui_attr(t, UA_NOTE));
            }
            for (int c = 0; c < g->n_cites; c++) {
                s = own(L, fmt("[%d] %s", ++cite_no, g->cites[c].label));
                if (s) add_par(L, s, strlen(s), cols, ui_attr(t, UA_NOTE));
            }
            break;
        }
    }
}

static void draw(tui *t, ui_rect r) {
    int hdr = ui_attr(t, UA_TITLE);
    ui_fill(r.y, r.x, r.w, hdr);
    ui_printf(r.y, r.x, r.w, hdr, " conversation%s", t->focus == UV_CONV ? " *" : "");
    if (t->conv_scroll > 0) {
        char right[48]; snprintf(right, sizeof right, "[%d lines up] ", t->conv_scroll);
        int rw = (int)strlen(right);
        if (rw + 16 < r.w) ui_put(r.y, r.x + r.w - rw, rw, right, (size_t)rw, hdr);
    }
    int h = r.h - 1;
    if (h <= 0) return;
    lines L = { 0 };
    build(t, &L, r.w);
    if (L.n == 0 && t->nmsgs == 0)
        ui_printf(r.y + 1, r.x, r.w, ui_attr(t, UA_DIM),
                  "Type a question and Enter (answered while reading continues); :help lists the commands.");
    int maxs = L.n > h ? L.n - h : 0;
    if (t->conv_scroll > maxs) t->conv_scroll = maxs;
    if (t->conv_scroll < 0) t->conv_scroll = 0;
    int first = L.n - h - t->conv_scroll;
    if (first < 0) first = 0;
    for (int i = 0; i < h && first + i < L.n; i++) {
        cline *c = &L.l[first + i];
        ui_put(r.y + 1 + i, r.x, r.w, c->s, c->n, c->attr);
    }
    for (int i = 0; i < L.nown; i++) free(L.own[i]);
    free(L.own); free(L.l);
}

static int view_scroll(tui *t, int n) {
    int before = t->conv_scroll;
    t->conv_scroll -= n;            /* up (n < 0) goes further from the bottom */
    if (t->conv_scroll < 0) t->conv_scroll = 0;
    return t->conv_scroll != before;
}

const ui_view_ops ui_view_conv = { "conversation", draw, view_scroll };
