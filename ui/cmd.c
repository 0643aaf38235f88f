/* Command table, parsing and Tab completion. */
#include "cmd.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const ui_cmd_def ui_cmds[] = {
    { "save", UC_SAVE, UA_FILE_OPT, ":save [FILE.cas]", "save the session (cache, documents, conversation)" },
    { "load", UC_LOAD, UA_FILE, ":load FILE.cas", "replace the session by a saved one" },
    { "add", UC_ADD, UA_FILE, ":add FILE|URL", "queue another document to read" },
    { "summarize", UC_SUMMARIZE, UA_NONE, ":summarize", "notes per chapter and a summary of what was read" },
    { "grep", UC_GREP, UA_TEXT, ":grep QUESTION", "the lines most relevant to QUESTION" },
    { "cache", UC_CACHE, UA_NONE, ":cache", "which regions each cascade still holds (Esc closes)" },
    { "read", UC_READ, UA_NONE, ":read", "continue reading after Ctrl-C stopped it" },
    { "cite", UC_CITE, UA_NUM, ":cite N", "show cited passage N in the document pane" },
    { "help", UC_HELP, UA_NONE, ":help", "keys and commands (also ? or F1)" },
    { "quit", UC_QUIT, UA_NONE, ":quit", "leave (:save first to keep the session)" },
};
const int ui_ncmds = (int)(sizeof ui_cmds / sizeof ui_cmds[0]);

static const ui_cmd_def *find(const char *name, size_t n, int *nmatch) {
    const ui_cmd_def *hit = NULL; *nmatch = 0;
    for (int i = 0; i < ui_ncmds; i++) {
        if (strlen(ui_cmds[i].name) == n && strncmp(ui_cmds[i].name, name, n) == 0) { *nmatch = 1; return &ui_cmds[i]; }
        if (strncmp(ui_cmds[i].name, name, n) == 0) { hit = &ui_cmds[i]; (*nmatch)++; }
    }
    return *nmatch == 1 ? hit : NULL;
}

int ui_cmd_parse(const char *line, int *id, char *arg, size_t cap, char *err, size_t errlen) {
    const char *p = line;
    while (*p == ' ') p++;
    if (*p == ':') p++;
    const char *name = p;
    while (*p && *p != ' ') p++;
    size_t n = (size_t)(p - name);
    if (cap) arg[0] = 0;
    if (n == 0) { snprintf(err, errlen, "empty command (:help lists them)"); return -1; }
    if (n == 2 && strncmp(name, "q!", 2) == 0) { *id = UC_QUIT; return 0; }
    int nm;
    const ui_cmd_def *c = find(name, n, &nm);
    if (!c) {
        if (nm > 1) snprintf(err, errlen, "ambiguous command :%.*s (:help lists them)", (int)n, name);
        else snprintf(err, errlen, "unknown command :%.*s (:help lists them)", (int)n, name);
        return -1;
    }
    while (*p == ' ') p++;
    size_t al = strlen(p);
    while (al > 0 && (p[al - 1] == ' ' || p[al - 1] == '\n')) al--;
    if (c->arg == UA_NONE && al) { snprintf(err, errlen, "%s takes no argument", c->usage); return -1; }
    if ((c->arg == UA_FILE || c->arg == UA_TEXT || c->arg == UA_NUM) && !al) {
        snprintf(err, errlen, "usage: %s", c->usage); return -1;
    }
    if (c->arg == UA_NUM) {
        char *e; long v = strtol(p, &e, 10);
        if (e != p + al || v < 1 || v > 1000000) { snprintf(err, errlen, "usage: %s", c->usage); return -1; }
    }
    if (al >= cap) { snprintf(err, errlen, "argument too long"); return -1; }
    memcpy(arg, p, al); arg[al] = 0;
    *id = c->id;
    return 0;
}

/* Insert s[0..n) at *cur. */
static void splice(char *buf, size_t cap, size_t *cur, const char *s, size_t n) {
    size_t len = strlen(buf);
    if (len + n >= cap) return;
    memmove(buf + *cur + n, buf + *cur, len - *cur + 1);
    memcpy(buf + *cur, s, n);
    *cur += n;
}

static void list_add(char *list, size_t cap, const char *s) {
    size_t l = strlen(list);
    if (l && l + 2 < cap) { strcat(list, "  "); l += 2; }
    if (l + strlen(s) < cap) strcat(list, s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int ui_complete(char *buf, size_t cap, size_t *cur, char *list, size_t listcap) {
    if (listcap) list[0] = 0;
    size_t c = *cur;
    if (c == 0 || buf[0] != ':') return 0;
    const char *sp = memchr(buf, ' ', c);
    if (!sp) {                                   /* the command name */
        const char *name = buf + 1; size_t n = c - 1;
        int cnt = 0; const char *first = NULL; size_t common = 0;
        for (int i = 0; i < ui_ncmds; i++) {
            const char *nm = ui_cmds[i].name;
            if (strncmp(nm, name, n)) continue;
            if (!cnt) { first = nm; common = strlen(nm); }
            else { size_t k = 0; while (k < common && nm[k] == first[k]) k++; common = k; }
            cnt++;
            list_add(list, listcap, nm);
        }
        if (!cnt) return 0;
        if (common > n) splice(buf, cap, cur, first + n, common - n);
        if (cnt == 1) { splice(buf, cap, cur, " ", 1); if (listcap) list[0] = 0; }
        return cnt;
    }
    int nm;
    const ui_cmd_def *d = find(buf + 1, (size_t)(sp - buf - 1), &nm);
    if (!d || (d->arg != UA_FILE && d->arg != UA_FILE_OPT)) return 0;
    const char *word = sp + 1;
    while (*word == ' ' && word < buf + c) word++;
    size_t wl = (size_t)(buf + c - word);
    /* directory part and base prefix */
    const char *slash = NULL;
    for (size_t i = 0; i < wl; i++) if (word[i] == '/') slash = word + i;
    char dir[1024], pre[512];
    if (slash) {
        size_t dl = (size_t)(slash - word) + 1;
        if (dl >= sizeof dir) return 0;
        memcpy(dir, word, dl); dir[dl] = 0;
    } else strcpy(dir, "");
    const char *base = slash ? slash + 1 : word;
    size_t bl = (size_t)(word + wl - base);
    if (bl >= sizeof pre) return 0;
    memcpy(pre, base, bl); pre[bl] = 0;
    DIR *dp = opendir(dir[0] ? dir : ".");
    if (!dp) return 0;
    char **names = NULL; int cnt = 0, capn = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (strncmp(e->d_name, pre, bl)) continue;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (e->d_name[0] == '.' && pre[0] != '.') continue;
        if (cnt == capn) {
            capn = capn ? capn * 2 : 16;
            char **nn = realloc(names, (size_t)capn * sizeof *names);
            if (!nn) break;
            names = nn;
        }
        names[cnt] = strdup(e->d_name);
        if (names[cnt]) cnt++;
    }
    closedir(dp);
    if (cnt) {
        qsort(names, (size_t)cnt, sizeof *names, cmp_str);
        size_t common = strlen(names[0]);
        for (int i = 1; i < cnt; i++) { size_t k = 0; while (k < common && names[i][k] == names[0][k]) k++; common = k; }
        if (common > bl) splice(buf, cap, cur, names[0] + bl, common - bl);
        if (cnt == 1) {
            char path[1600]; struct stat st;
            snprintf(path, sizeof path, "%s%s", dir, names[0]);
            if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) splice(buf, cap, cur, "/", 1);
        } else
            for (int i = 0; i < cnt; i++) list_add(list, listcap, names[i]);
    }
    for (int i = 0; i < cnt; i++) free(names[i]);
    free(names);
    return cnt;
}
