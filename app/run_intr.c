/* Ctrl-C for the non-interactive modes (run_intr.h). */
#include "run_intr.h"
#include <string.h>

volatile int run_stop;
volatile sig_atomic_t run_interrupted;
static cr_reader *volatile cur_reader;
static struct sigaction old_int, old_term;
static int have_term;

static void on_signal(int sig) {
    (void)sig;
    run_interrupted = 1;
    run_stop = 1;
    cr_reader *r = cur_reader;
    if (r) reader_request_stop(r);
}

void run_intr_begin(cr_reader *r, int also_term) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    run_stop = 0; run_interrupted = 0;
    cur_reader = r;
    sigaction(SIGINT, &sa, &old_int);
    have_term = also_term;
    if (also_term) sigaction(SIGTERM, &sa, &old_term);
}

void run_intr_reader(cr_reader *r) { cur_reader = r; }

void run_intr_end(void) {
    cur_reader = NULL;
    sigaction(SIGINT, &old_int, NULL);
    if (have_term) sigaction(SIGTERM, &old_term, NULL);
    have_term = 0;
}
