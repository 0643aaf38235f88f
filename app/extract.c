/* --extract / --extract --map (see extract.h). */
#include "extract.h"
#include "ingest.h"
#include <inttypes.h>

static void warn_stderr(void *ud, const char *msg) {
    (void)ud;
    fprintf(stderr, "warning: %s\n", msg);
}

int cr_extract(const char *const *paths, int n, int want_map, int strip_gutenberg, FILE *out,
               char *err, size_t errlen) {
    cr_ingest_opts o;
    cr_ingest_opts_default(&o);
    o.strip_gutenberg = strip_gutenberg;
    o.warn = warn_stderr;
    cr_ingest *in = cr_ingest_open(paths, n, &o, err, errlen);
    if (!in) return 1;
    cr_chunk c;
    int rc;
    while ((rc = cr_ingest_next(in, &c, err, errlen)) > 0) {
        if (!want_map && fwrite(c.text, 1, c.len, out) != c.len) {
            snprintf(err, errlen, "extract: write error");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && want_map) {
        for (int d = 0; d < cr_ingest_ndocs(in); d++) {
            const cr_docinfo *di = cr_ingest_doc(in, d);
            for (uint32_t k = 0; k < di->nsections; k++)
                fprintf(out, "%" PRIu64 "\t%" PRIu64 "\t%s\n", di->sections[k].offset,
                        di->sections[k].line, di->sections[k].title);
        }
    }
    if (rc == 0 && fflush(out)) { snprintf(err, errlen, "extract: write error"); rc = -1; }
    cr_ingest_close(in);
    return rc < 0 ? 1 : 0;
}
