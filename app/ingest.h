/* ingest: documents -> a stream of text chunks with their provenance (issue 6).
 *
 * Sources: local files, "-" (stdin), http:// and https:// URLs (libcurl, streamed).
 * Any of them may be gzip-compressed (detected by magic bytes, multi-member, streamed).
 * Formats: EPUB 2/3 (libzip + libxml2), plain text (UTF-8 with/without BOM, CP1252/Latin-1
 * detected and converted, CRLF -> LF, invalid bytes -> U+FFFD and counted), logs (one chunk
 * per line, exact line numbers).
 *
 * Usage:
 *     cr_ingest_opts o; cr_ingest_opts_default(&o);
 *     cr_ingest *in = cr_ingest_open(paths, n, &o, err, sizeof err);
 *     cr_chunk c; int rc;
 *     while ((rc = cr_ingest_next(in, &c, err, sizeof err)) > 0) tokenize(c.text, c.len);
 *     cr_ingest_close(in);          // rc < 0: err holds "FILE: problem"
 *
 * The stream: for every document (in the order given) a header chunk "# Title\n\n" (preceded
 * by "\n" for the 2nd and later documents; flag CR_CHUNK_HEADER; opts.headers=0 drops it),
 * then the document's text. The concatenation of all chunk texts is exactly what
 * `cascade-read --extract` prints; chunk.offset is the byte offset of the chunk in it.
 *
 * Several documents (e.g. a rotated log set: syslog.2.gz syslog.1 syslog, oldest first) are
 * read in the order given; each keeps its own line numbers and sections.
 *
 * Chunks: logs -> exactly one line per chunk (text includes its '\n'; a line longer than
 * opts.max_line is split into pieces flagged CR_CHUNK_SPLIT, all with the same line number).
 * Text -> a paragraph (its lines, then at most one blank line) or a block of at most
 * opts.max_chunk bytes; never straddles a section boundary. Inside a text or log chunk every
 * '\n' is a line break of the original file, so the line of byte k of a chunk is
 * chunk.line + (number of '\n' in text[0..k)). EPUB -> a paragraph (block element) followed by
 * "\n\n"; chunk.line is the line of that block in its XHTML file.
 *
 * Memory: constant per document for text/logs/.gz/stdin/URL (bounded buffers, about
 * 2*max_line + 2 MiB); EPUB holds one spine item (bounded by max_epub_entry) at a time.
 * Sections are kept for the session (bounded: CR_INGEST_MAX_SECTIONS per document).
 */
#ifndef CR_INGEST_H
#define CR_INGEST_H
#include <stddef.h>
#include <stdint.h>
#include "docmap.h"

enum cr_ingest_mode {
    CR_INGEST_AUTO = 0, /* per document: zip magic -> EPUB; else log if the name looks like a
                           log (*.log, *.log.N, syslog*, messages*, ...) or the first 64 KiB have
                           >= 16 lines and < 2% blank lines; else text */
    CR_INGEST_TEXT,
    CR_INGEST_LOG,
    CR_INGEST_EPUB,
};

enum cr_doc_kind { CR_DOC_TEXT = 1, CR_DOC_LOG, CR_DOC_EPUB };

typedef struct cr_ingest_opts {
    int      mode;               /* CR_INGEST_AUTO */
    int      strip_gutenberg;    /* 0: 1 drops the Project Gutenberg header (through the
                                    "*** START OF" line) and footer (from "*** END OF") */
    int      headers;            /* 1: a "# Title" header chunk before each document */
    size_t   max_line;           /* 64 KiB: log lines longer than this are split (>= 64) */
    size_t   max_chunk;          /* 16 KiB: text/EPUB chunk bound (>= 64) */
    uint64_t max_url_bytes;      /* 4 GiB: largest URL body (decoded) */
    long     connect_timeout_ms; /* 15000 */
    long     total_timeout_ms;   /* 300000: total time spent waiting on the network for one
                                    URL (time the consumer spends elsewhere is not counted,
                                    since the body is streamed at the consumer's pace) */
    long     idle_timeout_ms;    /* 60000: longest wait for the next byte of a URL body */
    int      max_redirects;      /* 10 */
    uint64_t max_epub_bytes;     /* 1 GiB: total decompressed bytes read from one EPUB */
    uint64_t max_epub_entry;     /* 256 MiB: one decompressed EPUB entry */
    unsigned max_epub_ratio;     /* 200: decompressed/compressed ratio bound, entries > 1 MiB */
    uint64_t max_spool_bytes;    /* 512 MiB: an EPUB from stdin/URL/.gz is spooled to an
                                    unlinked temp file (zip needs random access) */
    const char *ca_file;         /* NULL: system CA store (TLS verification is always on) */
    /* progress of document doc: bytes read from its source so far / its size (file size or
     * Content-Length, 0 = unknown), every MiB and at the end; for EPUB: decompressed bytes of
     * the spine items read so far / their total. */
    void (*progress)(void *ud, int doc, uint64_t done, uint64_t total);
    /* non-fatal problems, one line "FILE: problem" (split lines, recovered XHTML, ...). */
    void (*warn)(void *ud, const char *msg);
    void *ud;
} cr_ingest_opts;

#define CR_INGEST_MAX_SECTIONS 1000000u
#define CR_INGEST_MAX_TITLE    240       /* bytes, titles are cut at a UTF-8 boundary */

void cr_ingest_opts_default(cr_ingest_opts *o);

/* chunk.flags */
#define CR_CHUNK_HEADER  0x1u /* "# Title" line introducing a document (not document text) */
#define CR_CHUNK_SECTION 0x2u /* first chunk of a section (chunk.section changed) */
#define CR_CHUNK_SPLIT   0x4u /* piece of an over-long log line; the next chunk continues it */
#define CR_CHUNK_RECORD  0x8u /* a log record: one line (or one piece of a split line) */

typedef struct cr_chunk {
    const char *text;      /* UTF-8, not NUL-terminated, valid until the next call */
    size_t   len;
    uint32_t doc;          /* index into the paths given to cr_ingest_open */
    uint32_t section;      /* index into the document's sections (cr_ingest_section) */
    uint64_t offset;       /* byte offset of text[0] in the whole stream */
    uint64_t line;         /* 1-based source line of text[0] (0 for header chunks) */
    unsigned flags;        /* CR_CHUNK_* */
} cr_chunk;

typedef struct cr_section {
    uint64_t offset;       /* stream offset of the section's first byte */
    uint64_t line;         /* source line of that byte (0 if none) */
    char    *title;        /* "BOOK THREE: 1807 / CHAPTER XII"; the document title for the
                              implicit first section */
} cr_section;

typedef struct cr_docinfo {
    char    *path;         /* as given */
    char    *title;        /* EPUB dc:title, Gutenberg "Title:", else the file name */
    int      kind;         /* enum cr_doc_kind, 0 until the document is opened */
    int      gzip;         /* source was gzip-compressed */
    const char *encoding;  /* "utf-8", "cp1252" (text/log) or "utf-8" for EPUB */
    uint64_t src_bytes;    /* bytes read from the source (compressed size for .gz) */
    uint64_t text_bytes;   /* bytes of document text emitted (header excluded) */
    uint64_t lines;        /* source lines seen (text/log) */
    uint64_t invalid;      /* invalid UTF-8 sequences replaced by U+FFFD */
    uint64_t nul;          /* NUL bytes replaced by U+FFFD */
    uint64_t split_lines;  /* log lines longer than max_line */
    uint32_t spine_items;  /* EPUB: spine length */
    uint32_t nsections;
    cr_section *sections;  /* nsections entries, appended while reading */
} cr_docinfo;

typedef struct cr_ingest cr_ingest;

/* Checks the arguments (paths exist for local files), opens nothing yet. NULL + err on error. */
cr_ingest *cr_ingest_open(const char *const *paths, int n, const cr_ingest_opts *o,
                          char *err, size_t errlen);
/* 1: a chunk in *c; 0: end of all documents; -1: error, err = "FILE: problem" (sticky). */
int  cr_ingest_next(cr_ingest *in, cr_chunk *c, char *err, size_t errlen);
void cr_ingest_close(cr_ingest *in);

int  cr_ingest_ndocs(const cr_ingest *in);
/* Information about document `doc` (sections so far); NULL if doc is out of range. */
const cr_docinfo *cr_ingest_doc(const cr_ingest *in, int doc);

/* Record a chunk in a document map: adds the document and any sections discovered so far,
 * then the run [tok_first, ...). Call once per chunk in stream order with the index of the
 * chunk's first token, then cr_ingest_record_end once the stream ends. 0 ok, -1 err. */
int  cr_ingest_record(cr_ingest *in, docmap *map, const cr_chunk *c, uint64_t tok_first,
                      char *err, size_t errlen);
int  cr_ingest_record_end(cr_ingest *in, docmap *map, char *err, size_t errlen);

/* Text-level helpers (exposed for tests and tools). */
/* Heading heuristic for one line (no '\n'): 0 no, 1 book/part level, 2 chapter level. */
int  cr_heading_level(const char *s, size_t n);

#endif
