/* Drawing helpers shared by the views: attributes, UTF-8 strings into curses, wrapped lines. */
#include "text.h"
#include "tui.h"
#include <stdarg.h>
#include <stdio.h>
#include <wchar.h>

int ui_attr(const tui *t, int kind) {
    if (t->colors) {
        switch (kind) {
        case UA_STATUS: return (int)(COLOR_PAIR(1));
        case UA_USER: return (int)(COLOR_PAIR(2) | A_BOLD);
        case UA_CITE: return (int)(COLOR_PAIR(3));
        case UA_ERR: return (int)(COLOR_PAIR(4) | A_BOLD);
        case UA_DIM: return (int)A_DIM;
        case UA_NOTE: return (int)(COLOR_PAIR(5));
        case UA_TITLE: return (int)(COLOR_PAIR(6) | A_BOLD);
        case UA_HOLD: return (int)(COLOR_PAIR(7));
        default: return (int)A_NORMAL;
        }
    }
    switch (kind) {
    case UA_STATUS: case UA_TITLE: return (int)A_REVERSE;
    case UA_USER: case UA_ERR: return (int)A_BOLD;
    case UA_CITE: return (int)A_STANDOUT | (int)A_UNDERLINE;
    case UA_DIM: case UA_NOTE: return (int)A_DIM;
    default: return (int)A_NORMAL;
    }
}

int ui_put(int y, int x, int maxw, const char *s, size_t n, int attr) {
    wchar_t wb[512]; int nw = 0, used = 0;
    attr_t old; short pair;
    attr_get(&old, &pair, NULL);
    attrset(attr);
    move(y, x);
    for (size_t i = 0; i < n;) {
        int l; uint32_t c = ut_decode(s + i, n - i, &l);
        i += (size_t)l;
        if (c < 0x20 || c == 0x7f) c = ' ';
        int cw = ut_cpwidth(c);
        if (used + cw > maxw) break;
        wb[nw++] = (wchar_t)c; used += cw;
        if (nw == (int)(sizeof wb / sizeof wb[0])) { addnwstr(wb, nw); nw = 0; }
    }
    if (nw) addnwstr(wb, nw);
    attr_set(old, pair, NULL);
    return used;
}

void ui_fill(int y, int x, int w, int attr) {
    if (w <= 0) return;
    attr_t old; short pair;
    attr_get(&old, &pair, NULL);
    attrset(attr);
    mvhline(y, x, ' ', w);
    attr_set(old, pair, NULL);
}

int ui_printf(int y, int x, int maxw, int attr, const char *fmt, ...) {
    char buf[2048];
    va_list ap; va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    return ui_put(y, x, maxw, buf, (size_t)n, attr);
}

size_t ui_line_start(const char *text, size_t len, size_t pos, int cols) {
    if (pos > len) pos = len;
    size_t s = pos;
    while (s > 0 && text[s - 1] != '\n') s--;
    for (;;) {
        size_t next = ui_next_line(text, len, s, cols);
        if (next > pos || next >= len) return s;
        s = next;
    }
}

size_t ui_next_line(const char *text, size_t len, size_t start, int cols) {
    if (start >= len) return len;
    size_t nx;
    ut_wrap(text + start, len - start, cols, &nx);
    return start + (nx ? nx : 1);
}

size_t ui_prev_line(const char *text, size_t len, size_t start, int cols) {
    if (start == 0) return 0;
    return ui_line_start(text, len, start - 1, cols);
}
