/* :help (also ? on an empty line, or F1): keys and commands. Esc closes it. */
#include "cmd.h"
#include "tui.h"
#include <string.h>

static const char *keys[] = {
    "Type a question and press Enter: it is answered from what has been read so",
    "far, while reading continues. Lines starting with ':' are commands.",
    "",
    "Keys",
    "  Enter             ask the question / run the command",
    "  Left Right        move (also Ctrl-B Ctrl-F); Home End (also Ctrl-A Ctrl-E)",
    "  Ctrl-W Ctrl-U     delete the word / everything before the cursor",
    "  Ctrl-K            delete everything after the cursor",
    "  Up Down           history of questions and commands",
    "  Tab               complete a command or a file name",
    "  PgUp PgDn         scroll the focused pane (the wheel: the pane under it)",
    "  F2                focus the document pane / the conversation pane",
    "  F3 F4             next / previous cited passage in the document pane",
    "  F5                the document pane follows the reading again",
    "  F6                show the next document (several were given or added)",
    "  Ctrl-C            stop the answer or the reading; at an empty prompt, twice:",
    "                    quit (offers to save)",
    "  Ctrl-L            redraw;  Esc closes this help and the cache map",
    "  ? F1              this help",
    "",
    "Commands",
};

static void draw(tui *t, ui_rect r) {
    int hdr = ui_attr(t, UA_TITLE);
    ui_fill(r.y, r.x, r.w, hdr);
    ui_printf(r.y, r.x, r.w, hdr, " help (Esc closes, PgUp/PgDn scroll)");
    int nk = (int)(sizeof keys / sizeof keys[0]);
    int total = nk + ui_ncmds;
    if (t->overlay_scroll > total - 1) t->overlay_scroll = total - 1;
    if (t->overlay_scroll < 0) t->overlay_scroll = 0;
    for (int i = t->overlay_scroll, y = r.y + 1; i < total && y < r.y + r.h; i++, y++) {
        if (i < nk) ui_printf(y, r.x + 1, r.w - 1, 0, "%s", keys[i]);
        else {
            const ui_cmd_def *c = &ui_cmds[i - nk];
            ui_printf(y, r.x + 1, r.w - 1, 0, "  %-17s %s", c->usage, c->help);
        }
    }
}

static int view_scroll(tui *t, int n) { t->overlay_scroll += n; if (t->overlay_scroll < 0) t->overlay_scroll = 0; return 1; }

const ui_view_ops ui_view_help = { "help", draw, view_scroll };
