/* Ctrl-C for the non-interactive modes (run_read.c, run_ask.c, run_summarize.c,
 * run_grep.c): the handler sets run_stop (the stop flag handed to ask / summarize / grep) and
 * run_interrupted, and asks the current reader, if any, to stop at its next stride. */
#ifndef CR_RUN_INTR_H
#define CR_RUN_INTR_H
#include <signal.h>
#include "reader.h"

extern volatile int run_stop;
extern volatile sig_atomic_t run_interrupted;

/* Install the handler for SIGINT (and SIGTERM when also_term), flags cleared; r may be NULL. */
void run_intr_begin(cr_reader *r, int also_term);
/* The reader the handler stops (NULL: none). */
void run_intr_reader(cr_reader *r);
/* Restore the previous handlers. */
void run_intr_end(void);
#endif
