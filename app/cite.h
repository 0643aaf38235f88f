/* Citations: attention-probe weights (engine/attn_probe.h) on session tokens -> places in the
 * documents through the docmap, and the JSON string writer the output modes share. */
#ifndef CR_CITE_H
#define CR_CITE_H
#include <stdio.h>
#include "ask.h"
#include "attn_probe.h"
#include "docmap.h"

/* Writes s as a JSON string (quotes, escapes, control characters as \u00XX). */
void json_str(FILE *f, const char *s);

/* The n best places: probe weights of document tokens (conversation tokens and tokens the
 * map does not know are skipped, and so are the documents' "# Title" header chunks, line 0) summed per docmap run (a paragraph, or a log line), the
 * runs ranked by weight; each citation names the run's heaviest token, its document,
 * section, offset, line and a label "Title, Section, line N". skip (may be NULL) excludes
 * tokens (e.g. the conversation's). Returns the count (<= n). */
int cite_collect(const cr_probe *p, const docmap *map, int (*skip)(void *ud, uint64_t tok), void *ud,
                 ask_cite *out, int n);
#endif
