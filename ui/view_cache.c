/* :cache: which regions of the session each cascade still holds. One row per cascade (and
 * one for the sinks) across the session's tokens, from the original index of every slot of
 * every (layer, KV head), with the documents' boundaries below. Esc closes it. */
#include "text.h"
#include "tui.h"
#include <stdio.h>
#include <string.h>

static const char *glyph(const tui *t, float v) {
    static const char *u[] = { "\u00b7", "\u2591", "\u2592", "\u2593", "\u2588" };
    static const char *a[] = { ".", ":", "+", "*", "#" };
    int lv = v <= 0 ? 0 : v < 0.25f ? 1 : v < 0.5f ? 2 : v < 0.75f ? 3 : 4;
    return t->utf8 ? u[lv] : a[lv];
}

static void draw(tui *t, ui_rect r) {
    int hdr = ui_attr(t, UA_TITLE);
    ui_fill(r.y, r.x, r.w, hdr);
    ui_printf(r.y, r.x, r.w, hdr, " cache map: what each cascade still holds (Esc closes)");
    wk_cache_map *m = t->cache;
    if (!m) { ui_printf(r.y + 1, r.x + 1, r.w - 1, ui_attr(t, UA_DIM), "(asking the worker)"); return; }
    int y = r.y + 1;
    ui_printf(y++, r.x, r.w, 0, " %lld tokens seen; S=%d sinks, C=%d cascades of W=%d slots; %d heads",
              (long long)m->seen, m->S, m->C, m->W, m->nheads);
    int lab = 13, bw = r.w - lab - 1;
    if (bw < 8) return;
    for (int row = 0; row <= m->C && y < r.y + r.h - 3; row++, y++) {
        if (row < m->C) ui_printf(y, r.x, lab, 0, " c%-2d %4d/%-4d", row, m->stored[row], m->W);
        else ui_printf(y, r.x, lab, 0, " sinks");
        for (int j = 0; j < bw; j++) {
            int b0 = (int)((long long)j * m->nbins / bw), b1 = (int)((long long)(j + 1) * m->nbins / bw);
            if (b1 <= b0) b1 = b0 + 1;
            float mx = 0;
            for (int b = b0; b < b1 && b < m->nbins; b++) {
                float v = m->hold[(size_t)row * m->nbins + b];
                if (v > mx) mx = v;
            }
            const char *g = glyph(t, mx);
            ui_put(y, r.x + lab + j, 1, g, strlen(g), mx > 0 ? ui_attr(t, UA_HOLD) : ui_attr(t, UA_DIM));
        }
    }
    /* documents: a '|' where each starts, then their titles */
    if (y < r.y + r.h) {
        ui_printf(y, r.x, lab, ui_attr(t, UA_DIM), " documents");
        for (int d = 0; d < m->ndocs; d++) {
            if (m->doc_first[d] == UINT64_MAX || m->seen <= 0) continue;
            int col = (int)((double)m->doc_first[d] / (double)m->seen * bw);
            if (col >= bw) col = bw - 1;
            char lbl[16]; snprintf(lbl, sizeof lbl, "|%d", d + 1);
            ui_put(y, r.x + lab + col, bw - col, lbl, strlen(lbl), 0);
        }
        y++;
    }
    if (y < r.y + r.h) {
        char right[32]; snprintf(right, sizeof right, "%lld", (long long)m->seen);
        ui_printf(y, r.x + lab, bw, ui_attr(t, UA_DIM), "0 (oldest)");
        ui_put(y, r.x + lab + bw - (int)strlen(right), (int)strlen(right), right, strlen(right), ui_attr(t, UA_DIM));
        y++;
    }
    for (int d = 0; d < m->ndocs && y < r.y + r.h; d++, y++)
        ui_printf(y, r.x, r.w, 0, " %d: %s", d + 1, m->doc_title[d] ? m->doc_title[d] : "?");
}

static int view_scroll(tui *t, int n) { (void)t; (void)n; return 0; }

const ui_view_ops ui_view_cache = { "cache", draw, view_scroll };
