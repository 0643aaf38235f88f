/* --extract: the text of documents exactly as the model reads it (the ingest stream,
 * document headers included), or their section map. */
#ifndef CR_EXTRACT_H
#define CR_EXTRACT_H
#include <stdio.h>
#include <stddef.h>

/* Writes the concatenated chunks of paths[0..n) to out; with want_map instead one line per
 * section (chapter) of every document: "offset<TAB>line<TAB>title\n", offset = byte offset in
 * the extract output, line = source line (0 if none). Warnings go to stderr.
 * 0 ok; non-zero with err = "FILE: problem". */
int cr_extract(const char *const *paths, int n, int want_map, int strip_gutenberg, FILE *out,
               char *err, size_t errlen);

#endif
