/* grep by question: rank the lines of logs (or any text) by how much attention the question's
 * tokens give them, in one streaming pass with constant memory.
 *
 * Scoring (also in man/cascade-read.1, --grep): lines are packed into windows of at most
 * opts.window tokens laid out by assets/grep_query.txt: BOS, the text before {lines}, the
 * lines (each its own tokens and its '\n', cut to opts.max_line_tokens), then the text after
 * {lines} with {question} filled in. Each window is one forward pass on a scratch state of the
 * `full` policy that is reset before the next window, so nothing of one window reaches another
 * and the reader's long-lived cache is never touched. The attention probe (engine/attn_probe.h)
 * adds, for every query token after the lines (the question part), the softmax probability
 * that each line token receives, summed over all query heads and all layers. A line's score is
 * the sum over its tokens divided by the sum over every line token of the window, times the
 * number of lines in the window: 1 for a line that gets the attention of an average line of
 * its window, higher for a line the question looks at more (this makes scores of windows with
 * different line counts, e.g. the short last window, comparable).
 * The best opts.k lines are kept in a bounded min-heap (ties: the earlier line wins); with
 * opts.context, the context lines are kept with each hit. Memory: the scratch state, one
 * window of lines, the heap and context lines: independent of the input length. */
#ifndef CR_GREP_H
#define CR_GREP_H
#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "tokenizer.h"

typedef struct grep_opts {
    const char *question;
    int k;                 /* lines kept (default 20) */
    int context;           /* lines of context before and after each (default 0) */
    int window;            /* tokens per scoring pass (default min(n_ctx, 512)) */
    int max_line_tokens;   /* a longer line is scored on its first tokens (default 96) */
    int threads;           /* 0 = all cores */
    volatile int *stop;    /* nonzero: grep_line returns 1 and stops (Ctrl-C); may be NULL */
    int gpu;               /* GPUs for the scoring passes (state_use_cuda_ranks; --gpus), 0 = the CPU */
} grep_opts;

typedef struct grep_ctx_line { uint64_t line; char *text; } grep_ctx_line;

typedef struct grep_hit {
    uint32_t file;         /* index of the input (the order given) */
    uint64_t line;         /* 1-based line number */
    float    score;
    char    *text;         /* the line, without its '\n' */
    grep_ctx_line *before; int n_before;   /* up to context lines before, in order */
    grep_ctx_line *after;  int n_after;    /* up to context lines after */
    int      want_after;   /* internal: lines after still to collect */
} grep_hit;

typedef struct grep_ctx grep_ctx;

void grep_opts_default(grep_opts *o);
/* A grep over model m with tokenizer tok (both borrowed). NULL + err. */
grep_ctx *grep_new(const cr_model *m, cr_tokenizer *tok, const grep_opts *o, char *err, size_t errlen);
void grep_free(grep_ctx *g);
/* Feeds one line (text without or with its '\n') of input `file`. Returns 0, 1 when stopped
 * through opts.stop, -1 + err. */
int  grep_line(grep_ctx *g, uint32_t file, uint64_t line, const char *text, size_t len, char *err, size_t errlen);
/* Scores what is left. 0 / -1 + err. */
int  grep_finish(grep_ctx *g, char *err, size_t errlen);
/* The hits, best first (score descending, then file and line ascending). Valid until grep_free. */
const grep_hit *grep_hits(grep_ctx *g, int *n);
/* Counters: lines and bytes fed, windows scored, tokens run. */
void grep_stats(const grep_ctx *g, uint64_t *lines, uint64_t *bytes, uint64_t *windows, uint64_t *tokens);

/* Whole inputs (files, "-", .gz) through the ingest layer in log mode (one line per record,
 * exact line numbers). progress may be NULL. 0, 1 stopped, -1 + err ("FILE: problem"). */
int  grep_paths(grep_ctx *g, const char *const *paths, int n,
                void (*progress)(void *ud, uint64_t lines, uint64_t bytes), void *ud,
                char *err, size_t errlen);
#endif
