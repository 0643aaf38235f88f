/* Internal interfaces of the ingestion layer (app/ingest*.c). Not for other modules. */
#ifndef CR_INGEST_INT_H
#define CR_INGEST_INT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "ingest.h"

#define ING_SNIFF   (64u * 1024)    /* bytes looked at to detect binary data / encoding / logs */
#define ING_RAWBUF  (256u * 1024)   /* read size from sources */

/* printf into err as "name: problem" (name may be NULL). Returns -1. */
int  ing_err(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ing_warn(const cr_ingest_opts *o, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Largest k <= n such that s[0..k) does not end inside a UTF-8 sequence (valid input). */
size_t ing_utf8_cut(const char *s, size_t n);
/* Copies a title: trims, collapses whitespace, cuts at CR_INGEST_MAX_TITLE. malloc'd. */
char *ing_title_dup(const char *s, size_t n);

/* ---- byte sources (ingest_src.c, ingest_http.c) -------------------------------------- *
 * A source yields the document's bytes, gunzipped when the data starts with the gzip magic.
 * The first bytes are buffered so the format can be sniffed before anything is consumed. */
typedef struct ing_src ing_src;

ing_src *ing_src_open(const char *path, const cr_ingest_opts *o, int doc, char *err,
                      size_t errlen);
/* >0 bytes read, 0 end, -1 error (err "path: problem"). */
ssize_t  ing_src_read(ing_src *s, void *buf, size_t n, char *err, size_t errlen);
/* The first bytes of the (decompressed) data without consuming them: up to ING_SNIFF bytes,
 * fewer only at end of data. 0 ok, -1 error. */
int      ing_src_peek(ing_src *s, const uint8_t **p, size_t *n, char *err, size_t errlen);
/* Path of a plain local file (not stdin, not compressed, not a URL), else NULL. */
const char *ing_src_local_path(const ing_src *s);
/* Copies everything (peeked bytes included) into an unlinked temp file, at most max bytes.
 * Returns its fd (positioned at 0) or -1 with err. */
int      ing_src_spool(ing_src *s, uint64_t max, char *err, size_t errlen);
int      ing_src_is_gzip(const ing_src *s);
uint64_t ing_src_bytes(const ing_src *s);    /* bytes read from the underlying source */
uint64_t ing_src_size(const ing_src *s);     /* file size or Content-Length, 0 unknown */
void     ing_src_close(ing_src *s);

/* http(s) body as a pull stream (ingest_http.c). */
typedef struct ing_http ing_http;
ing_http *ing_http_open(const char *url, const cr_ingest_opts *o, int doc, char *err,
                        size_t errlen);
ssize_t   ing_http_read(ing_http *h, void *buf, size_t n, char *err, size_t errlen);
uint64_t  ing_http_size(const ing_http *h);
void      ing_http_close(ing_http *h);

/* ---- text decoding (ingest_utf8.c) --------------------------------------------------- */
enum { ING_ENC_UNDECIDED = 0, ING_ENC_UTF8, ING_ENC_CP1252 };
typedef struct ing_dec {
    int      enc;        /* ING_ENC_*: UNDECIDED = only ASCII so far (decoded as UTF-8) */
    uint64_t invalid;    /* replaced invalid sequences */
    uint64_t nul;        /* replaced NUL bytes */
} ing_dec;
/* Looks at the first block: "binary" reasons (NULs, control chars, other compressors,
 * UTF-16) -> a static message, else NULL; *enc gets the encoding guess. */
const char *ing_sniff_text(const uint8_t *p, size_t n, int at_eof, int *enc);
/* Decodes in[0..n) to UTF-8 in out (capacity >= 3*n + 4): CRLF -> LF, invalid UTF-8 ->
 * U+FFFD, NUL -> U+FFFD, CP1252 -> UTF-8. Unless final, stops before an incomplete
 * trailing sequence or a trailing CR; *used gets the input bytes consumed. Returns bytes
 * written. */
size_t ing_decode(ing_dec *d, const uint8_t *in, size_t n, int final, char *out, size_t *used);

/* ---- backends ------------------------------------------------------------------------ */
typedef struct ing_piece {
    const char *text;
    size_t   len;          /* 0: only a section event */
    uint64_t line;
    unsigned flags;        /* CR_CHUNK_SPLIT | CR_CHUNK_RECORD */
    int      new_section;  /* a section starts at this piece */
    int      keep_empty;   /* that section is kept even if no text follows (EPUB nav) */
    const char *section_title;
} ing_piece;

typedef struct ing_backend ing_backend;
struct ing_backend {
    /* 1 piece, 0 end of document, -1 error */
    int  (*next)(ing_backend *b, ing_piece *p, char *err, size_t errlen);
    void (*close)(ing_backend *b);
    cr_docinfo *info;      /* stats and title live here (owned by the ingest) */
};

/* Text/log backend over a source (takes ownership of src). log: one chunk per line. */
ing_backend *ing_text_open(ing_src *src, int log, const cr_ingest_opts *o, cr_docinfo *info,
                           char *err, size_t errlen);
/* Auto mode: does this look like a log (by name, or few blank lines in the first block)? */
int ing_looks_like_log(const char *path, const uint8_t *p, size_t n);
/* EPUB backend: from a local path, or from an fd (taken over, e.g. a spool file). */
ing_backend *ing_epub_open(const char *path, int fd, const cr_ingest_opts *o, int doc,
                           cr_docinfo *info, char *err, size_t errlen);

/* ---- XHTML -> paragraphs (ingest_html.c) --------------------------------------------- */
typedef struct ing_hev {     /* an event of one content document */
    size_t   off, len;       /* paragraph text in out->text, "\n\n" included; len 0: anchor */
    uint32_t line;           /* line of the block in the XHTML source */
    int      heading;        /* 1..6 for h1..h6, else 0 */
    int      anchor;         /* >= 0: the anchor with this index was reached (len 0) */
} ing_hev;
typedef struct ing_html_out {
    char    *text; size_t len, cap;
    ing_hev *ev;   size_t nev, cap_ev;
    int      problems;       /* markup errors the parser repaired */
} ing_html_out;
/* ids[0..nids) are element ids to report as anchor events (index into ids). */
int  ing_html_extract(const char *buf, size_t len, const char *name, const char *const *ids,
                      int nids, ing_html_out *out, char *err, size_t errlen);
void ing_html_free(ing_html_out *out);

#endif
