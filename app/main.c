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
    default: r = CR_EXIT_USAGE; break;
    }
    free(o.inputs);
    return r;
}
