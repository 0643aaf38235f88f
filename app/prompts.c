#include "prompts.h"
#include <stdlib.h>
#include <string.h>

/* Each file is embedded read-only and NUL-terminated; the Makefile makes prompts.o depend on
 * assets/ (the assembler's .incbin is not seen by -MMD). Paths are relative to the repository
 * root, where make runs the compiler. */
#define CR_ASSET(sym, file) \
    __asm__(".section .rodata\n.balign 16\n.globl " #sym "\n" #sym ":\n.incbin \"" file "\"\n.byte 0\n.previous\n"); \
    extern const char sym[];
CR_ASSET(cr_asset_ask_system, "assets/ask_system.txt")
CR_ASSET(cr_asset_note, "assets/note.txt")
CR_ASSET(cr_asset_summary, "assets/summary.txt")
CR_ASSET(cr_asset_grep, "assets/grep_query.txt")

static const char *const names[PROMPT_COUNT] = {"ask_system.txt", "note.txt", "summary.txt", "grep_query.txt"};

const char *prompt_text(int which) {
    switch (which) {
    case PROMPT_ASK_SYSTEM: return cr_asset_ask_system;
    case PROMPT_NOTE: return cr_asset_note;
    case PROMPT_SUMMARY: return cr_asset_summary;
    case PROMPT_GREP: return cr_asset_grep;
    default: return "";
    }
}

const char *prompt_name(int which) { return which >= 0 && which < PROMPT_COUNT ? names[which] : ""; }

char *prompt_fill(const char *tmpl, const char *key, const char *val) {
    size_t kl = strlen(key), vl = strlen(val), n = 0;
    char pat[128];
    if (kl + 3 > sizeof pat) return NULL;
    pat[0] = '{'; memcpy(pat + 1, key, kl); pat[kl + 1] = '}'; pat[kl + 2] = 0;
    for (const char *p = strstr(tmpl, pat); p; p = strstr(p + kl + 2, pat)) n++;
    size_t len = strlen(tmpl) + n * vl + 1;
    char *out = malloc(len), *o = out;
    if (!out) return NULL;
    const char *s = tmpl;
    for (const char *p = strstr(s, pat); p; p = strstr(s, pat)) {
        memcpy(o, s, (size_t)(p - s)); o += p - s;
        memcpy(o, val, vl); o += vl;
        s = p + kl + 2;
    }
    strcpy(o, s);
    return out;
}
