/* UTF-8 helpers for the views: decoding, display width (wcwidth), wrapping. */
#ifndef CR_UI_TEXT_H
#define CR_UI_TEXT_H
#include <stddef.h>
#include <stdint.h>

/* Decode one code point at s[0..n); *len gets its byte length (1 for an invalid byte,
 * which decodes as U+FFFD). n must be > 0. */
uint32_t ut_decode(const char *s, size_t n, int *len);
/* Display columns of code point c (0 for combining, 2 for wide; control characters 1). */
int ut_cpwidth(uint32_t c);
/* Display columns of s[0..n). */
int ut_width(const char *s, size_t n);
/* Byte index of the start of the character before / after position i. */
size_t ut_prev(const char *s, size_t i);
size_t ut_next(const char *s, size_t n, size_t i);
/* Encode c as UTF-8 into out (room for 4). Returns the length. */
int ut_encode(uint32_t c, char *out);
/* One wrapped line of s[0..n) at most `cols` columns wide, breaking at spaces when it can.
 * Returns the byte length of the line's content (without a '\n' that ends it); *next gets
 * the index where the following line starts (after the '\n' or the spaces broken at). */
size_t ut_wrap(const char *s, size_t n, int cols, size_t *next);
/* Choose the UTF-8 locale for curses (LC_ALL from the environment, else C.UTF-8).
 * Returns 1 when the codeset is UTF-8. */
int ut_locale(void);
#endif
