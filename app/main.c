/* cascade-read entry point: parse options, dispatch to a mode. */
#include "cli.h"
#include "run.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    cr_opts o;
    int r = cli_parse(&o, argc, argv);
    if (r != 0) { free(o.inputs); return r < 0 ? CR_EXIT_OK : r; }
    switch (o.mode) {
    case MODE_GENERATE: r = run_generate(&o); break;
    case MODE_PERPLEXITY: r = run_perplexity(&o); break;
    case MODE_TOKENIZE: case MODE_DETOKENIZE: r = run_tokenize(&o); break;
    case MODE_INFO: r = run_info(&o); break;
    case MODE_EXTRACT: r = run_extract(&o); break;
    case MODE_READ: r = run_read(&o); break;
    case MODE_SNAPINFO: r = run_snapinfo(&o); break;
    case MODE_PULL: r = run_pull(&o); break;
    case MODE_ASK: r = run_ask(&o); break;
    case MODE_SUMMARIZE: r = run_summarize(&o); break;
    case MODE_GREP: r = run_grep(&o); break;
    case MODE_TUI: r = run_tui(&o); break;
    default: r = CR_EXIT_USAGE; break;
    }
    free(o.inputs);
    return r;
}
