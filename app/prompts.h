/* Prompt templates, embedded from assets/ at build time (app/prompts.c .incbin's the files,
 * so nothing needs installing). Placeholders are written {name}. */
#ifndef CR_PROMPTS_H
#define CR_PROMPTS_H
#include <stddef.h>

enum cr_prompt {
    PROMPT_ASK_SYSTEM,   /* assets/ask_system.txt: system prompt of --ask */
    PROMPT_NOTE,         /* assets/note.txt: note after a section, {title} */
    PROMPT_SUMMARY,      /* assets/summary.txt: final summary request */
    PROMPT_GREP,         /* assets/grep_query.txt: {lines} then {question} */
    PROMPT_COUNT
};

const char *prompt_text(int which);          /* NUL-terminated template */
const char *prompt_name(int which);          /* its file name under assets/ */
/* malloc'd copy of tmpl with every {key} replaced by val (NULL on allocation failure). */
char *prompt_fill(const char *tmpl, const char *key, const char *val);
#endif
