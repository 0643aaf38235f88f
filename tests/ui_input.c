/* The input line (editing, UTF-8, history), the command parser and Tab completion. */
#include "t.h"
#include "cmd.h"
#include "input.h"
#include "text.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void type(ui_input *in, const char *s) { in_insert_str(in, s); }

static void test_edit_ascii(void) {
    ui_input in; in_init(&in);
    type(&in, "hello world");
    T_CHECK(strcmp(in.buf, "hello world") == 0 && in.cur == 11);
    in_key(&in, IN_LEFT); in_key(&in, IN_LEFT);
    in_insert(&in, 'X');
    T_CHECKF(strcmp(in.buf, "hello worXld") == 0, "got '%s'", in.buf);
    in_key(&in, IN_HOME); in_insert(&in, '>');
    T_CHECK(strcmp(in.buf, ">hello worXld") == 0 && in.cur == 1);
    in_key(&in, IN_DELETE);
    T_CHECK(strcmp(in.buf, ">ello worXld") == 0);
    in_key(&in, IN_END); in_key(&in, IN_BACKSPACE);
    T_CHECK(strcmp(in.buf, ">ello worXl") == 0 && in.cur == in.len);
    in_free(&in);
}

static void test_kill_word_and_line(void) {
    ui_input in; in_init(&in);
    type(&in, "who is  the captain ");
    in_key(&in, IN_KILL_WORD);                   /* Ctrl-W: "captain " */
    T_CHECKF(strcmp(in.buf, "who is  the ") == 0, "got '%s'", in.buf);
    in_key(&in, IN_KILL_WORD);
    T_CHECKF(strcmp(in.buf, "who is  ") == 0, "got '%s'", in.buf);
    in_key(&in, IN_WORD_LEFT);                   /* before "is" */
    T_CHECK(in.cur == 4);
    in_key(&in, IN_KILL_START);                  /* Ctrl-U: "who " */
    T_CHECKF(strcmp(in.buf, "is  ") == 0 && in.cur == 0, "got '%s' cur %zu", in.buf, in.cur);
    in_key(&in, IN_KILL_END);
    T_CHECK(in.len == 0 && in.buf[0] == 0);
    in_free(&in);
}

static void test_utf8(void) {
    ui_input in; in_init(&in);
    type(&in, "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac");   /* naïve 日本 */
    T_CHECK(in.len == 13);
    in_key(&in, IN_BACKSPACE);                    /* removes 本 (3 bytes) */
    T_CHECKF(in.len == 10 && strcmp(in.buf, "na\xc3\xafve \xe6\x97\xa5") == 0, "len %zu", in.len);
    in_key(&in, IN_HOME); in_key(&in, IN_RIGHT); in_key(&in, IN_RIGHT); in_key(&in, IN_RIGHT);
    T_CHECKF(in.cur == 4, "cursor after 3 characters at byte %zu", in.cur);   /* n a ï */
    in_key(&in, IN_LEFT);
    T_CHECK(in.cur == 2);
    in_key(&in, IN_DELETE);                       /* ï */
    T_CHECK(strcmp(in.buf, "nave \xe6\x97\xa5") == 0);
    /* display width: 日 is two columns */
    T_CHECK(ut_width(in.buf, in.len) == 7);
    T_CHECK(in_insert(&in, 0x1b) == -1 && in.len == 8);   /* controls are not inserted */
    in_free(&in);
}

static void test_history(void) {
    ui_input in; in_init(&in);
    type(&in, "first"); free(in_take(&in));
    type(&in, "second"); free(in_take(&in));
    type(&in, "second"); free(in_take(&in));      /* repeated: kept once */
    T_CHECK(in.nhist == 2);
    type(&in, "draft");
    in_key(&in, IN_UP);
    T_CHECKF(strcmp(in.buf, "second") == 0, "got '%s'", in.buf);
    in_key(&in, IN_UP);
    T_CHECK(strcmp(in.buf, "first") == 0);
    in_key(&in, IN_UP);                           /* stays at the oldest */
    T_CHECK(strcmp(in.buf, "first") == 0);
    in_key(&in, IN_DOWN); in_key(&in, IN_DOWN);
    T_CHECKF(strcmp(in.buf, "draft") == 0, "the draft comes back, got '%s'", in.buf);
    char *l = in_take(&in);
    T_CHECK(l && strcmp(l, "draft") == 0 && in.len == 0);
    free(l);
    in_free(&in);
}

static void test_view_scrolls(void) {
    ui_input in; in_init(&in);
    for (int i = 0; i < 50; i++) in_insert(&in, (unsigned)('a' + i % 26));
    size_t start; int col;
    in_view(&in, 20, &start, &col);
    T_CHECKF(col <= 19 && start > 0, "cursor column %d start %zu", col, start);
    T_CHECK(ut_width(in.buf + start, in.cur - start) == col);
    in_key(&in, IN_HOME);
    in_view(&in, 20, &start, &col);
    T_CHECK(start == 0 && col == 0);
    in_free(&in);
}

static void test_cmd_parse(void) {
    int id; char arg[256], err[256];
    T_CHECK(ui_cmd_parse(":save  book.cas ", &id, arg, sizeof arg, err, sizeof err) == 0);
    T_CHECK(id == UC_SAVE && strcmp(arg, "book.cas") == 0);
    T_CHECK(ui_cmd_parse(":save", &id, arg, sizeof arg, err, sizeof err) == 0 && id == UC_SAVE && arg[0] == 0);
    T_CHECK(ui_cmd_parse(":grep where is the error?", &id, arg, sizeof arg, err, sizeof err) == 0);
    T_CHECK(id == UC_GREP && strcmp(arg, "where is the error?") == 0);
    T_CHECK(ui_cmd_parse(":sum", &id, arg, sizeof arg, err, sizeof err) == 0 && id == UC_SUMMARIZE);
    T_CHECK(ui_cmd_parse(":q!", &id, arg, sizeof arg, err, sizeof err) == 0 && id == UC_QUIT);
    T_CHECK(ui_cmd_parse(":cite 3", &id, arg, sizeof arg, err, sizeof err) == 0 && id == UC_CITE && atoi(arg) == 3);
    T_CHECK(ui_cmd_parse(":cite x", &id, arg, sizeof arg, err, sizeof err) == -1);
    T_CHECK(ui_cmd_parse(":load", &id, arg, sizeof arg, err, sizeof err) == -1 && strstr(err, ":load FILE"));
    T_CHECK(ui_cmd_parse(":frobnicate", &id, arg, sizeof arg, err, sizeof err) == -1 && strstr(err, "unknown command"));
    T_CHECK(ui_cmd_parse(":c", &id, arg, sizeof arg, err, sizeof err) == -1 && strstr(err, "ambiguous"));   /* cache, cite */
    T_CHECK(ui_cmd_parse(":cache now", &id, arg, sizeof arg, err, sizeof err) == -1 && strstr(err, "no argument"));
}

static void test_complete_commands(void) {
    char buf[256] = ":su"; size_t cur = 3; char list[256];
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 1);
    T_CHECKF(strcmp(buf, ":summarize ") == 0 && cur == strlen(buf), "got '%s'", buf);
    strcpy(buf, ":c"); cur = 2;
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 2);
    T_CHECK(strcmp(buf, ":c") == 0 && strstr(list, "cache") && strstr(list, "cite"));
    strcpy(buf, ":ca"); cur = 3;
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 1 && strcmp(buf, ":cache ") == 0);
    strcpy(buf, "who is"); cur = 6;               /* not a command: nothing */
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 0 && strcmp(buf, "who is") == 0);
}

static void test_complete_files(void) {
    char dir[] = "/tmp/cr_ui_complete_XXXXXX";
    T_CHECK(mkdtemp(dir));
    char p[512];
    snprintf(p, sizeof p, "%s/war_and_peace.txt", dir); FILE *f = fopen(p, "w"); T_CHECK(f); fclose(f);
    snprintf(p, sizeof p, "%s/war_notes.cas", dir); f = fopen(p, "w"); T_CHECK(f); fclose(f);
    snprintf(p, sizeof p, "%s/sub", dir); T_CHECK(mkdir(p, 0700) == 0);
    char buf[1024], list[256]; size_t cur;
    snprintf(buf, sizeof buf, ":add %s/wa", dir); cur = strlen(buf);
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 2);
    snprintf(p, sizeof p, ":add %s/war_", dir);
    T_CHECKF(strcmp(buf, p) == 0, "common prefix: got '%s'", buf);
    T_CHECK(strstr(list, "war_and_peace.txt") && strstr(list, "war_notes.cas"));
    snprintf(buf, sizeof buf, ":load %s/war_n", dir); cur = strlen(buf);
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 1);
    snprintf(p, sizeof p, ":load %s/war_notes.cas", dir);
    T_CHECKF(strcmp(buf, p) == 0, "got '%s'", buf);
    snprintf(buf, sizeof buf, ":save %s/su", dir); cur = strlen(buf);
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 1);
    snprintf(p, sizeof p, ":save %s/sub/", dir);
    T_CHECKF(strcmp(buf, p) == 0, "a directory gets '/': got '%s'", buf);
    snprintf(buf, sizeof buf, ":grep %s/wa", dir); cur = strlen(buf);   /* :grep takes text */
    T_CHECK(ui_complete(buf, sizeof buf, &cur, list, sizeof list) == 0);
    snprintf(p, sizeof p, "%s/war_and_peace.txt", dir); unlink(p);
    snprintf(p, sizeof p, "%s/war_notes.cas", dir); unlink(p);
    snprintf(p, sizeof p, "%s/sub", dir); rmdir(p);
    rmdir(dir);
}

static void test_wrap(void) {
    const char *s = "the quick brown fox jumps";
    size_t nx;
    size_t n = ut_wrap(s, strlen(s), 10, &nx);
    T_CHECKF(n == 9 && nx == 10, "n %zu next %zu", n, nx);     /* "the quick" | "brown fox" */
    n = ut_wrap(s + nx, strlen(s) - nx, 10, &nx);
    T_CHECK(n == 9);
    n = ut_wrap("abcdefghijkl", 12, 5, &nx);                    /* no space: hard break */
    T_CHECK(n == 5 && nx == 5);
    n = ut_wrap("ab\ncd", 5, 10, &nx);
    T_CHECK(n == 2 && nx == 3);
    n = ut_wrap("\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5", 9, 5, &nx);   /* wide: two fit in 5 columns */
    T_CHECK(n == 6 && nx == 6);
}

int main(void) {
    ut_locale();
    T_RUN(test_edit_ascii);
    T_RUN(test_kill_word_and_line);
    T_RUN(test_utf8);
    T_RUN(test_history);
    T_RUN(test_view_scrolls);
    T_RUN(test_cmd_parse);
    T_RUN(test_complete_commands);
    T_RUN(test_complete_files);
    T_RUN(test_wrap);
    return t_summary();
}
