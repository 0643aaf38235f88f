/* docmap: for every token of a session, where it came from: document, byte offset in the
 * extracted text stream, source line, section (chapter).
 *
 * Run-length, not per token: one run per chunk (first token index, offset, line, section);
 * lookup token -> run is two binary searches (blocks, then runs inside the block).
 *
 * Size: a run is 16 bytes (token, offset and line stored as 32-bit deltas from their block's
 * 64-bit bases, plus a global section index); a block (32 bytes) holds up to 65536 runs, and
 * a new block starts whenever a delta would not fit. So ~16.0005 bytes per chunk: a 10M-token
 * log with ~25 tokens per line (400K lines) maps in ~6.4 MB; War and Peace (~800K tokens,
 * ~12K paragraphs) in ~200 KB.
 *
 * Ownership: the map owns copies of all titles and paths. Fields are read-only for callers.
 * Programmer errors (out-of-order runs, unknown doc/section) return -1, they do not abort.
 */
#ifndef CR_DOCMAP_H
#define CR_DOCMAP_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Conversation tokens (questions, answers, notes) are runs of the pseudo document
 * DOCMAP_CONV: docmap_add_run(m, tok, DOCMAP_CONV, offset, 0, 0) (offset: where the stream
 * stood, so offsets still never decrease); docmap_lookup gives doc = DOCMAP_CONV, section 0,
 * and docmap_cite "conversation". In the run table their section index is DOCMAP_SEC_CONV. */
#ifndef DOCMAP_CONV
#define DOCMAP_CONV 0xffffffffu
#endif
#define DOCMAP_SEC_CONV 0xffffffffu

typedef struct docmap_doc {
    char    *title;
    char    *path;
    uint64_t size;        /* source size in bytes (0 if unknown, e.g. stdin) */
    uint32_t sec_first;   /* index of its first section in docmap.secs */
    uint32_t nsec;
} docmap_doc;

typedef struct docmap_sec {
    uint64_t offset;      /* stream offset of the section's first byte */
    uint64_t line;        /* source line (0 = none) */
    uint32_t doc;
    char    *title;
} docmap_sec;

typedef struct docmap_run {   /* 16 bytes */
    uint32_t tok;         /* tok_first - block.tok_base */
    uint32_t off;         /* offset - block.off_base */
    uint32_t line;        /* (uint32_t)(line - block.line_base), read back as int32 delta */
    uint32_t sec;         /* global section index */
} docmap_run;

typedef struct docmap_block {
    uint64_t tok_base, off_base, line_base;
    uint32_t first;       /* index of its first run */
    uint32_t n;           /* runs in this block */
} docmap_block;

typedef struct docmap {
    docmap_doc   *docs;   uint32_t ndocs, cap_docs;
    docmap_sec   *secs;   uint32_t nsecs, cap_secs;
    docmap_run   *runs;   uint64_t nruns, cap_runs;
    docmap_block *blocks; uint64_t nblocks, cap_blocks;
} docmap;

typedef struct docmap_loc {
    uint32_t doc;
    uint32_t section;     /* index within the document */
    uint64_t offset;      /* stream offset of the run's first byte */
    uint64_t line;        /* source line of the run's first byte (0 = none) */
    uint64_t tok_first;   /* the run: [tok_first, tok_end) */
    uint64_t tok_end;     /* UINT64_MAX for the last run */
} docmap_loc;

void docmap_init(docmap *m);
void docmap_free(docmap *m);
/* Returns the new document's index, -1 on allocation failure. */
int  docmap_add_doc(docmap *m, const char *title, const char *path, uint64_t size);
/* Adds a section to document `doc`, which must be the latest document. Returns its index
 * within the document, -1 on error. */
int  docmap_add_section(docmap *m, uint32_t doc, uint64_t offset, uint64_t line,
                        const char *title);
/* Appends a run. tok_first and offset must not decrease; a run with the same tok_first as
 * the previous one replaces it (the previous chunk produced no tokens). 0 ok, -1 error. */
int  docmap_add_run(docmap *m, uint64_t tok_first, uint32_t doc, uint64_t offset,
                    uint64_t line, uint32_t section);
/* 0 and *out filled, -1 if tok precedes the first run (or the map is empty). */
int  docmap_lookup(const docmap *m, uint64_t tok, docmap_loc *out);
const char *docmap_section_title(const docmap *m, uint32_t doc, uint32_t section);
const char *docmap_doc_title(const docmap *m, uint32_t doc);
/* A citation for token tok: "Title, Section title" when the document has chapters (more than
 * one section), else "name:line" (name = basename of the path); "conversation" for a
 * conversation token. Returns snprintf's length, or
 * -1 if tok is not mapped. */
int  docmap_cite(const docmap *m, uint64_t tok, char *buf, size_t n);
/* Bytes used by the map (arrays and strings). */
size_t docmap_bytes(const docmap *m);

/* Serialization (little-endian, versioned, with a checksum). write: 0 ok, -1 I/O error.
 * read: replaces *m's content (m must be initialized); every count, length and index is
 * bounds-checked; 0 ok, -1 and err = "docmap: problem". */
int  docmap_write(const docmap *m, FILE *f);
int  docmap_read(docmap *m, const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
