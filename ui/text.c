/* UTF-8 decoding, display widths and word wrapping for the views. */
#include "text.h"
#include <langinfo.h>
#include <locale.h>
#include <string.h>
#include <wchar.h>

uint32_t ut_decode(const char *str, size_t n, int *len) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    int need; uint32_t cp, min;
    if (c < 0x80) { *len = 1; return c; }
    else if ((c & 0xe0) == 0xc0) { need = 1; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { need = 2; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { need = 3; cp = c & 0x07; min = 0x10000; }
    else { *len = 1; return 0xfffd; }
    if ((size_t)need >= n) { *len = 1; return 0xfffd; }
    for (int i = 1; i <= need; i++) {
        if ((s[i] & 0xc0) != 0x80) { *len = 1; return 0xfffd; }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) { *len = 1; return 0xfffd; }
    *len = need + 1;
    return cp;
}

int ut_cpwidth(uint32_t c) {
    if (c < 0x20 || c == 0x7f) return 1;
    int w = wcwidth((wchar_t)c);
    if (w < 0) return 1;
    return w;
}

int ut_width(const char *s, size_t n) {
    int w = 0;
    for (size_t i = 0; i < n;) {
        int l; uint32_t c = ut_decode(s + i, n - i, &l);
        w += ut_cpwidth(c); i += (size_t)l;
    }
    return w;
}

size_t ut_prev(const char *s, size_t i) {
    if (i == 0) return 0;
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
    int l; ut_decode(s + j, i - j, &l);
    return j + (size_t)l == i ? j : i - 1;
}

size_t ut_next(const char *s, size_t n, size_t i) {
    if (i >= n) return n;
    int l; ut_decode(s + i, n - i, &l);
    return i + (size_t)l;
}

int ut_encode(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xc0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3f)); return 2; }
    if (c < 0x10000) { o[0] = (char)(0xe0 | c >> 12); o[1] = (char)(0x80 | (c >> 6 & 0x3f)); o[2] = (char)(0x80 | (c & 0x3f)); return 3; }
    o[0] = (char)(0xf0 | c >> 18); o[1] = (char)(0x80 | (c >> 12 & 0x3f));
    o[2] = (char)(0x80 | (c >> 6 & 0x3f)); o[3] = (char)(0x80 | (c & 0x3f)); return 4;
}

size_t ut_wrap(const char *s, size_t n, int cols, size_t *next) {
    if (cols < 1) cols = 1;
    int w = 0;
    size_t i = 0, brk = 0;   /* brk: after the last space seen (0 = none) */
    while (i < n) {
        if (s[i] == '\n') { *next = i + 1; return i; }
        int l; uint32_t c = ut_decode(s + i, n - i, &l);
        int cw = ut_cpwidth(c);
        if (w + cw > cols && i > 0) {
            if (brk > 0) {             /* break after the last space */
                size_t end = brk;
                while (end > 0 && s[end - 1] == ' ') end--;
                size_t nx = brk;
                while (nx < n && s[nx] == ' ') nx++;
                *next = nx;
                return end;
            }
            *next = i;
            return i;
        }
        w += cw; i += (size_t)l;
        if (c == ' ') brk = i;
    }
    *next = n;
    return n;
}

int ut_locale(void) {
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    if (cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0)) return 1;
    if (setlocale(LC_ALL, "C.UTF-8")) return 1;
    return 0;
}
