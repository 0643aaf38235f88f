/* Line editing and history of the input line. */
#include "input.h"
#include "text.h"
#include <stdlib.h>
#include <string.h>

void in_init(ui_input *in) { memset(in, 0, sizeof *in); }

void in_free(ui_input *in) {
    for (int i = 0; i < in->nhist; i++) free(in->hist[i]);
    in->nhist = 0;
}

int in_insert(ui_input *in, unsigned cp) {
    if ((cp < 0x20 && cp != '\t') || cp == 0x7f || cp > 0x10ffff) return -1;
    if (cp == '\t') cp = ' ';
    char e[4]; int l = ut_encode(cp, e);
    if (in->len + (size_t)l >= IN_MAX) return -1;
    memmove(in->buf + in->cur + l, in->buf + in->cur, in->len - in->cur);
    memcpy(in->buf + in->cur, e, (size_t)l);
    in->len += (size_t)l; in->cur += (size_t)l;
    in->buf[in->len] = 0;
    return 0;
}

int in_insert_str(ui_input *in, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        int l; uint32_t c = ut_decode(s + i, n - i, &l);
        if (in_insert(in, c) && c >= 0x20) return -1;
        i += (size_t)l;
    }
    return 0;
}

static void del_range(ui_input *in, size_t a, size_t b) {
    if (b <= a) return;
    memmove(in->buf + a, in->buf + b, in->len - b);
    in->len -= b - a;
    in->buf[in->len] = 0;
    if (in->cur >= b) in->cur -= b - a; else if (in->cur > a) in->cur = a;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

static size_t word_left(const ui_input *in) {
    size_t i = in->cur;
    while (i > 0 && is_space(in->buf[i - 1])) i--;
    while (i > 0 && !is_space(in->buf[i - 1])) i--;
    return i;
}
static size_t word_right(const ui_input *in) {
    size_t i = in->cur;
    while (i < in->len && is_space(in->buf[i])) i++;
    while (i < in->len && !is_space(in->buf[i])) i++;
    return i;
}

void in_set(ui_input *in, const char *s) {
    size_t n = strlen(s);
    if (n >= IN_MAX) {                              /* never cut inside a character */
        n = IN_MAX - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
    }
    memcpy(in->buf, s, n); in->buf[n] = 0;
    in->len = in->cur = n;
}

void in_clear(ui_input *in) { in->len = in->cur = 0; in->buf[0] = 0; in->hpos = in->nhist; in->scroll = 0; }

static void hist_go(ui_input *in, int pos) {
    if (pos < 0 || pos > in->nhist || pos == in->hpos) return;
    if (in->hpos == in->nhist) { memcpy(in->draft, in->buf, in->len); in->draft[in->len] = 0; }
    in->hpos = pos;
    in_set(in, pos == in->nhist ? in->draft : in->hist[pos]);
}

void in_key(ui_input *in, int key) {
    switch (key) {
    case IN_LEFT: in->cur = ut_prev(in->buf, in->cur); break;
    case IN_RIGHT: in->cur = ut_next(in->buf, in->len, in->cur); break;
    case IN_HOME: in->cur = 0; break;
    case IN_END: in->cur = in->len; break;
    case IN_WORD_LEFT: in->cur = word_left(in); break;
    case IN_WORD_RIGHT: in->cur = word_right(in); break;
    case IN_BACKSPACE: del_range(in, ut_prev(in->buf, in->cur), in->cur); break;
    case IN_DELETE: del_range(in, in->cur, ut_next(in->buf, in->len, in->cur)); break;
    case IN_KILL_WORD: del_range(in, word_left(in), in->cur); break;
    case IN_KILL_START: del_range(in, 0, in->cur); break;
    case IN_KILL_END: del_range(in, in->cur, in->len); break;
    case IN_UP: hist_go(in, in->hpos - 1); break;
    case IN_DOWN: hist_go(in, in->hpos + 1); break;
    default: break;
    }
}

char *in_take(ui_input *in) {
    char *line = strdup(in->buf);
    if (!line) return NULL;
    if (in->len && (in->nhist == 0 || strcmp(in->hist[in->nhist - 1], line))) {
        if (in->nhist == IN_HIST) {
            free(in->hist[0]);
            memmove(in->hist, in->hist + 1, (IN_HIST - 1) * sizeof *in->hist);
            in->nhist--;
        }
        char *h = strdup(line);
        if (h) in->hist[in->nhist++] = h;
    }
    in_clear(in);
    return line;
}

void in_view(ui_input *in, int cols, size_t *start, int *cursor_col) {
    if (cols < 2) cols = 2;
    if (in->scroll > in->cur) in->scroll = in->cur;
    /* keep the cursor inside [scroll, scroll + cols - 1] columns */
    while (ut_width(in->buf + in->scroll, in->cur - in->scroll) > cols - 1)
        in->scroll = ut_next(in->buf, in->len, in->scroll);
    /* show more of the left part when there is room */
    while (in->scroll > 0) {
        size_t p = ut_prev(in->buf, in->scroll);
        if (ut_width(in->buf + p, in->cur - p) > cols - 1) break;
        if (ut_width(in->buf + p, in->len - p) > cols - 1 && in->cur != in->len) break;
        in->scroll = p;
    }
    *start = in->scroll;
    *cursor_col = ut_width(in->buf + in->scroll, in->cur - in->scroll);
}
