/* The modes: each returns an exit code (enum cr_exit). */
#ifndef CR_RUN_H
#define CR_RUN_H
#include "cli.h"
int run_generate(const cr_opts *o);     /* run_generate.c */
int run_perplexity(const cr_opts *o);   /* run_misc.c */
int run_tokenize(const cr_opts *o);
int run_info(const cr_opts *o);
int run_extract(const cr_opts *o);
int run_read(const cr_opts *o);         /* run_read.c: --read / --save / --autosave / --resume */
int run_snapinfo(const cr_opts *o);     /* run_read.c: --snapshot-info */
int run_pull(const cr_opts *o);         /* pull.c: --pull URL */
int run_ask(const cr_opts *o);          /* run_ask.c: --ask */
int run_summarize(const cr_opts *o);    /* run_summarize.c: --summarize */
int run_grep(const cr_opts *o);         /* run_grep.c: --grep */
/* The full-screen interface (ui/tui.c). Declared here, defined in ui/ (linked into the
 * binary, not into the app tests). */
int run_tui(const cr_opts *o);
#endif
