/* The command table of the interface (":save FILE", ...), parsing and Tab completion. */
#ifndef CR_UI_CMD_H
#define CR_UI_CMD_H
#include <stddef.h>

enum { UC_SAVE = 1, UC_LOAD, UC_ADD, UC_SUMMARIZE, UC_GREP, UC_CACHE, UC_HELP, UC_QUIT, UC_READ, UC_CITE };
enum { UA_NONE, UA_FILE, UA_FILE_OPT, UA_TEXT, UA_NUM };

typedef struct ui_cmd_def {
    const char *name;
    int id, arg;             /* UC_*, UA_* */
    const char *usage, *help;
} ui_cmd_def;

extern const ui_cmd_def ui_cmds[];
extern const int ui_ncmds;

/* Parse a command line (leading ':' optional). 0: *id set and arg (cap bytes) holds the
 * argument with surrounding spaces removed (may be empty for optional arguments);
 * -1: err holds one line ("unknown command :foo", ":save needs FILE"). A unique prefix of
 * a name is accepted (":sa" = ":save"). */
int ui_cmd_parse(const char *line, int *id, char *arg, size_t cap, char *err, size_t errlen);

/* Tab completion of buf[0..*cur) (a command line starting with ':'): command names, then
 * file names for commands that take a FILE. The longest common completion is inserted at
 * the cursor (buf holds cap bytes, NUL-terminated, *cur advanced); a unique command gets a
 * space, a unique directory a '/'. When several candidates remain, `list` gets them
 * separated by two spaces (cut to listcap). Returns the number of candidates. */
int ui_complete(char *buf, size_t cap, size_t *cur, char *list, size_t listcap);
#endif
