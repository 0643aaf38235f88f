/* Document pane: the current document's text, what has been read so far in normal text and
 * the rest dimmed, the passages the answers cited highlighted; follows the reading unless
 * scrolled (F2 focuses it, PgUp/PgDn or the wheel scroll it, F5 follows again). */
#include "text.h"
#include "tui.h"
#include <string.h>
#include <wchar.h>

static size_t read_end(const tui *t, int doc, size_t len) {
    if (!t->have_st || t->st.pos_doc < 0) return 0;
    if (doc < t->st.pos_doc) return len;
    if (doc > t->st.pos_doc) return 0;
    if (t->st.have_prog && t->st.prog.done) return len;
    return t->st.pos_rel < len ? (size_t)t->st.pos_rel : len;
}

/* The passage of a citation: from its offset to the end of the paragraph (at most 600 bytes). */
static size_t cite_end(const ui_doc *d, size_t rel) {
    size_t e = rel, lim = rel + 600 < d->len ? rel + 600 : d->len;
    while (e < lim && !(d->text[e] == '\n' && e + 1 < d->len && d->text[e + 1] == '\n')) e++;
    return e > rel ? e : (rel + 1 < d->len ? rel + 1 : d->len);
}

typedef struct { size_t a, b; } range;

/* the cited passages of document doc (at most cap) */
static int cite_ranges(const tui *t, int doc, const ui_doc *d, range *out, int cap) {
    int n = 0;
    for (int m = 0; m < t->nmsgs; m++)
        for (int c = 0; c < t->msgs[m].n_cites && n < cap; c++) {
            const wk_cite *ct = &t->msgs[m].cites[c];
            if ((int)ct->doc != doc || ct->rel >= d->len) continue;
            out[n].a = (size_t)ct->rel; out[n].b = cite_end(d, (size_t)ct->rel); n++;
        }
    return n;
}

static int in_cite(const range *rg, int n, size_t pos) {
    for (int i = 0; i < n; i++) if (pos >= rg[i].a && pos < rg[i].b) return 1;
    return 0;
}

static void draw(tui *t, ui_rect r) {
    int hdr = ui_attr(t, UA_TITLE);
    ui_fill(r.y, r.x, r.w, hdr);
    if (t->ndocs == 0 || t->cur_doc >= t->ndocs || !t->docs[t->cur_doc].text) {
        ui_printf(r.y, r.x, r.w, hdr, " document");
        ui_printf(r.y + 1, r.x + 1, r.w - 1, ui_attr(t, UA_DIM), "(loading the text)");
        return;
    }
    ui_doc *d = &t->docs[t->cur_doc];
    size_t re = read_end(t, t->cur_doc, d->len);
    int pct = d->len ? (int)(100.0 * (double)re / (double)d->len) : 100;
    int used = ui_printf(r.y, r.x, r.w, hdr, " %s", d->title ? d->title : "document");
    if (t->ndocs > 1) used += ui_printf(r.y, r.x + used, r.w - used, hdr, " (%d/%d)", t->cur_doc + 1, t->ndocs);
    char right[64];
    snprintf(right, sizeof right, "%d%% read%s%s ", pct, t->doc_follow ? "" : "  [scrolled: F5 follows]",
             t->focus == UV_DOC ? " *" : "");
    int rw = ut_width(right, strlen(right));
    if (used + rw + 1 < r.w) ui_put(r.y, r.x + r.w - rw, rw, right, strlen(right), hdr);
    int h = r.h - 1, cols = r.w;
    if (h <= 0) return;
    if (t->doc_follow) {           /* the reading position about two thirds down */
        size_t top = ui_line_start(d->text, d->len, re, cols);
        for (int k = 0; k < h * 2 / 3 && top > 0; k++) top = ui_prev_line(d->text, d->len, top, cols);
        t->doc_top = top;
    }
    if (t->doc_top > d->len) t->doc_top = d->len;
    size_t s = ui_line_start(d->text, d->len, t->doc_top, cols);
    t->doc_top = s;
    range rg[256];
    int nrg = cite_ranges(t, t->cur_doc, d, rg, 256);
    int a_read = ui_attr(t, UA_NORMAL), a_unread = ui_attr(t, UA_DIM), a_cite = ui_attr(t, UA_CITE);
    for (int row = 0; row < h && s < d->len; row++) {
        size_t nx;
        size_t n = ut_wrap(d->text + s, d->len - s, cols, &nx);
        int x = 0;
        size_t i = s, end = s + n, run = s;
        int cur = -1;
        while (i <= end) {
            int a = -1;
            if (i < end) a = in_cite(rg, nrg, i) ? a_cite : i < re ? a_read : a_unread;
            if (a != cur || i == end) {
                if (cur >= 0 && i > run) x += ui_put(r.y + 1 + row, r.x + x, cols - x, d->text + run, i - run, cur);
                run = i; cur = a;
            }
            if (i == end) break;
            i = ut_next(d->text, end, i);
        }
        s += nx ? nx : 1;
    }
}

static int view_scroll(tui *t, int lines) {
    if (t->cur_doc >= t->ndocs || !t->docs[t->cur_doc].text) return 0;
    ui_doc *d = &t->docs[t->cur_doc];
    int cols = t->r_doc.w > 0 ? t->r_doc.w : 80;
    t->doc_follow = 0;
    size_t before = t->doc_top;
    for (int k = 0; k < (lines < 0 ? -lines : lines); k++)
        t->doc_top = lines < 0 ? ui_prev_line(d->text, d->len, t->doc_top, cols)
                               : (ui_next_line(d->text, d->len, t->doc_top, cols) < d->len
                                  ? ui_next_line(d->text, d->len, t->doc_top, cols) : t->doc_top);
    return t->doc_top != before;
}

const ui_view_ops ui_view_doc = { "document", draw, view_scroll };
