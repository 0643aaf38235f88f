/* Command-line options of cascade-read (parsed once in main). */
#ifndef CR_CLI_H
#define CR_CLI_H
#include <stdio.h>
#include "cascade.h"
#include "sampler.h"

enum cr_exit { CR_EXIT_OK = 0, CR_EXIT_INPUT = 1, CR_EXIT_USAGE = 2, CR_EXIT_MODEL = 3, CR_EXIT_INTR = 130 };

enum cr_mode { MODE_NONE, MODE_GENERATE, MODE_PERPLEXITY, MODE_TOKENIZE, MODE_DETOKENIZE, MODE_EXTRACT, MODE_INFO,
               MODE_TUI,        /* documents (or --resume) on a terminal without a mode flag: ui/ */
               MODE_READ,       /* read the documents (and --save / --autosave), no question */
               MODE_ASK, MODE_SUMMARIZE, MODE_GREP, MODE_PULL, MODE_SNAPINFO };

typedef struct {
    int mode;
    const char *model, *tokenizer, *device, *chat_template;
    const char *prompt;          /* --generate */
    const char *text;            /* --tokenize / --detokenize argument */
    const char *ppl_file;        /* --perplexity */
    int n_predict;
    int max_tokens;              /* --perplexity: stop after this many (0 = all) */
    int threads;
    int gpus;                    /* --gpus: tensor parallel over this many GPUs (0 = 1) */
    int verbose, quiet, json, map, no_strip;
    sampler_cfg samp;
    /* cache: -1 = model default */
    int policy, cache_n, cascades, sinks, stride;
    double beta;
    const char **inputs; int n_inputs;
    /* sessions and snapshots */
    const char *save_path;       /* --save FILE.cas (after reading) */
    const char *resume_path;     /* --resume FILE.cas, or a .cas given as a document */
    long long autosave;          /* --autosave K: every K tokens (0 = off) */
    int snapshot_quant;          /* --snapshot-quant q8: 1 (lossy fp16 -> q8_0 K/V) */
    /* questions */
    const char *question;        /* --ask / --grep QUESTION */
    int grep_k;                  /* --grep: -m NUM best lines (default 20) */
    int grep_context;            /* --grep: -C NUM lines of context (default 0) */
    int grep_line_numbers;       /* --grep: -n */
    const char *pull_url;        /* --pull URL */
    const char *snapinfo_path;   /* --snapshot-info FILE.cas */
    int no_tui;                  /* --no-tui: never curses, even on a terminal */
    const char *colors;          /* config `colors`: the interface's color theme (NULL = default) */
    int color;                   /* config `color` / NO_COLOR: -1 auto, 0 never, 1 always */
} cr_opts;

/* Parse argv. Returns 0 to continue, or an exit code (help/version print and
 * return CR_EXIT_OK; bad usage prints one line and returns CR_EXIT_USAGE). */
int cli_parse(cr_opts *o, int argc, char **argv);
void cli_usage(FILE *f);
/* Cache configuration for a model with trained context n_ctx, from the
 * options and the documented defaults; *stride gets the chunk length. */
int cli_cache_cfg(const cr_opts *o, int n_ctx, cascade_cfg *cfg, int *stride, char *err, size_t errlen);
#endif
