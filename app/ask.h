/* ask: a question about what has been read, answered in the model's chat template through
 * the cache (the question and the answer stay in the cache, so the conversation continues),
 * streamed token by token, with citations: the document positions that received the most
 * attention from the answer's tokens (retained slots -> original indices -> docmap). */
#ifndef CR_ASK_H
#define CR_ASK_H
#include <stddef.h>
#include <stdint.h>
#include "reader.h"

typedef struct ask_cite {
    uint64_t tok;               /* session token index (original index in the cache) */
    float    weight;            /* attention mass, summed over the answer's tokens */
    uint32_t doc, section;
    uint64_t offset, line;      /* extracted-stream byte offset, source line */
    char     label[256];        /* "War and Peace, BOOK THREE / CHAPTER XII, line 18211" */
} ask_cite;

typedef struct ask_opts {
    int max_tokens;             /* answer length bound (default 256) */
    int n_cites;                /* citations wanted (default 5) */
    /* each piece of the answer as it is produced (UTF-8, may be a partial character) */
    void (*on_token)(void *ud, const char *piece, size_t n);
    void *ud;
    volatile int *stop;         /* set to nonzero to stop the answer (Ctrl-C); may be NULL */
    const char *chat_template;  /* template name, NULL: the session's --chat-template, else the GGUF's */
    const char *system;         /* system prompt of the conversation's first turn; NULL: assets/ask_system.txt */
} ask_opts;

typedef struct ask_result {
    char    *answer;            /* malloc'd, NUL-terminated */
    ask_cite *cites; int n_cites;
    int      partial;           /* asked before every document was read to its end */
    uint64_t doc_tokens_read;   /* document tokens in the session when asked */
    int      stopped;           /* stopped through opts.stop */
} ask_result;

void ask_opts_default(ask_opts *o);
/* 0 and *res filled (free with ask_result_free), -1 + err. Records both messages in the
 * reader's conversation (reader_conv_add). */
int  ask_run(cr_reader *r, const char *question, const ask_opts *o, ask_result *res, char *err, size_t errlen);
void ask_result_free(ask_result *res);

/* One turn of the conversation, the engine of ask_run and of the summary's notes: user_text
 * as a user message (with the system prompt when the conversation has no turn yet), fed after
 * what has been read; the reply generated (streamed through o->on_token) and fed too (with
 * the template's end-of-turn token), cited from the attention of its tokens (attn_probe.h).
 * Records the user message (when record_user) and the reply with answer_role (CONV_ASSISTANT
 * or CONV_NOTE) in the conversation. 0 / -1 + err. */
int  ask_turn(cr_reader *r, const char *user_text, int record_user, int answer_role, const ask_opts *o,
              ask_result *res, char *err, size_t errlen);
/* The tokens ask_turn feeds for user_text, given the reader's conversation so far (exposed
 * for tests): appended to *ids. 0 / -1 + err. */
int  ask_prompt_tokens(cr_reader *r, const char *user_text, const ask_opts *o, int32_t **ids, size_t *n,
                       size_t *cap, char *err, size_t errlen);
#endif
