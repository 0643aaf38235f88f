/* The input line: a UTF-8 line editor with history (no curses: the keys are decoded by the
 * caller into the IN_* codes or Unicode code points). */
#ifndef CR_UI_INPUT_H
#define CR_UI_INPUT_H
#include <stddef.h>

#define IN_MAX 4096          /* bytes of one line */
#define IN_HIST 200          /* lines of history kept */

enum { IN_LEFT = 1, IN_RIGHT, IN_HOME, IN_END, IN_BACKSPACE, IN_DELETE, IN_KILL_WORD /* Ctrl-W */,
       IN_KILL_START /* Ctrl-U */, IN_KILL_END /* Ctrl-K */, IN_UP, IN_DOWN, IN_WORD_LEFT, IN_WORD_RIGHT };

typedef struct ui_input {
    char buf[IN_MAX];
    size_t len, cur;          /* bytes; cur on a character boundary */
    char *hist[IN_HIST];      /* oldest first */
    int nhist;
    int hpos;                 /* browsing: index into hist, nhist = the draft */
    char draft[IN_MAX];       /* the line being edited before browsing the history */
    size_t scroll;            /* first byte shown (display) */
} ui_input;

void in_init(ui_input *in);
void in_free(ui_input *in);
/* Insert a code point at the cursor (controls other than tab are ignored). 0, -1 when full. */
int  in_insert(ui_input *in, unsigned cp);
int  in_insert_str(ui_input *in, const char *s);
/* Apply an editing key (IN_*). */
void in_key(ui_input *in, int key);
void in_set(ui_input *in, const char *s);      /* replace the line, cursor at the end */
void in_clear(ui_input *in);
/* The line is done (Enter): add it to the history (not empty, not equal to the last) and
 * clear the line; returns a copy the caller frees. */
char *in_take(ui_input *in);
/* The part of the line to show in `cols` columns with the cursor visible: *start (byte) and
 * the cursor's column. */
void in_view(ui_input *in, int cols, size_t *start, int *cursor_col);
#endif
