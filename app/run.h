/* The non-interactive modes: each returns an exit code (enum cr_exit). */
#ifndef CR_RUN_H
#define CR_RUN_H
#include "cli.h"
int run_generate(const cr_opts *o);
int run_perplexity(const cr_opts *o);
int run_tokenize(const cr_opts *o);
int run_info(const cr_opts *o);
int run_extract(const cr_opts *o);
#endif
