/* reader: one reading session. Documents are streamed through ingest (ingest.h), tokenized,
 * mapped (docmap.h) and fed into the cascading cache in strides (session.h); the
 * conversation (questions, answers, notes) follows them in the same cache. Every mode uses
 * it: --ask, --summarize, --save/--resume/--autosave, and the TUI's worker thread.
 *
 * Token indices: every token fed into the session gets the next session index (the og index
 * the cache keeps per slot). Document tokens are mapped to their source by the docmap;
 * conversation tokens are mapped to the pseudo-document DOCMAP_CONV (no source line).
 *
 * Threads: one thread drives a reader. reader_request_stop may be called from any thread
 * or a signal handler (it sets an atomic flag checked between strides).
 *
 * Snapshots: reader_save writes everything snapshot.h holds (cache, documents with how far
 * each was read and its hash, docmap, conversation, sampler); reader_resume restores it and
 * continues a partly read document where it stopped (the document is re-opened, its hash
 * checked, and the ingest stream skipped to the saved offset), so that the next-token logits
 * equal those of an uninterrupted run (bit-exact on the CPU). */
#ifndef CR_READER_H
#define CR_READER_H
#include <stddef.h>
#include <stdint.h>
#include "docmap.h"
#include "ingest.h"
#include "sampler.h"
#include "session.h"

#define DOCMAP_CONV 0xffffffffu   /* docmap_loc.doc of conversation tokens */

typedef struct cr_progress {
    uint64_t tokens;            /* session tokens so far (documents + conversation) */
    uint64_t doc_tokens;        /* document tokens read so far */
    uint64_t bytes_done;        /* source bytes consumed, all documents */
    uint64_t bytes_total;       /* sum of known source sizes (0 = unknown) */
    int      doc, ndocs;        /* document being read (0-based), documents queued */
    double   tok_per_s;         /* prefill rate, recent */
    double   eta_s;             /* estimated seconds to the end, < 0 when unknown */
    int      done;              /* every queued document has been read to its end */
} cr_progress;

typedef enum { CONV_USER = 1, CONV_ASSISTANT, CONV_NOTE, CONV_SYSTEM } cr_conv_role;

typedef struct cr_conv_msg {
    int      role;              /* cr_conv_role */
    char    *text;              /* UTF-8, NUL-terminated */
    uint64_t tok_first, tok_end;/* its session token range */
    uint64_t doc_tokens_at;     /* document tokens read when it was asked (partial-read note) */
    char    *cites;             /* citations, one per line ("Title, Chapter 3\toffset\tline"), or NULL */
} cr_conv_msg;

typedef struct cr_reader_cb {
    /* after every stride (and once at the end) */
    void (*progress)(void *ud, const cr_progress *p);
    /* non-fatal problems, one line "FILE: problem" */
    void (*warn)(void *ud, const char *msg);
    /* a section (chapter) of document doc ended: its tokens are all in the cache */
    void (*section_end)(void *ud, uint32_t doc, uint32_t section);
    void *ud;
    uint64_t    autosave_every; /* save to autosave_path every this many tokens (0 = off) */
    const char *autosave_path;
} cr_reader_cb;

typedef struct cr_reader cr_reader;

/* A reader on an opened session (session_open with state). cb may be NULL. NULL + err. */
cr_reader *reader_new(cr_session *s, const cr_reader_cb *cb, char *err, size_t errlen);
void       reader_free(cr_reader *r);             /* does not close the session */

/* Queue documents (files, URLs, "-") after those queued before (":add" in the TUI).
 * Paths are checked now (missing file: -1 + "FILE: problem"), read by reader_read. */
int  reader_add(cr_reader *r, const char *const *paths, int n, char *err, size_t errlen);

/* Read about max_tokens more document tokens (0 = no limit), in whole strides: it returns at
 * the first stride boundary at or after max_tokens (so every call makes progress), or when
 * everything is read (the tokens short of a stride are then fed too).
 * Returns 1: more remains; 0: everything queued has been read; 2: stopped by
 * reader_request_stop (the flag is cleared); -1: error, err = "FILE: problem" (the failing
 * document is skipped: the next call continues with the following ones). */
int  reader_read(cr_reader *r, uint64_t max_tokens, char *err, size_t errlen);
void reader_request_stop(cr_reader *r);
void reader_progress(const cr_reader *r, cr_progress *p);

/* Conversation tokens: fed through the cache in strides right after what has been read,
 * mapped to DOCMAP_CONV. last_logits: the last token's logits, or NULL. 0 / -1 + err. */
int  reader_feed(cr_reader *r, const int32_t *ids, size_t n, float *last_logits, char *err, size_t errlen);
/* Record a conversation message (the text is copied). Returns its index. */
int  reader_conv_add(cr_reader *r, int role, const char *text, uint64_t tok_first, uint64_t tok_end,
                     const char *cites);
size_t             reader_conv_count(const cr_reader *r);
const cr_conv_msg *reader_conv_get(const cr_reader *r, size_t i);

/* Logits of the last token fed (after reader_read returned 0, or reader_feed), else NULL. */
const float     *reader_logits(const cr_reader *r);
uint64_t         reader_tokens(const cr_reader *r);     /* session tokens (fed + buffered) */
cr_session      *reader_session(cr_reader *r);
const docmap    *reader_docmap(const cr_reader *r);
/* The ingest of the documents being read (info and sections), NULL between documents;
 * valid until the next reader_read / reader_add. The document map has every document read
 * so far (map doc index = the order documents were added); its offsets are in the reader's
 * stream: the concatenation of the chunk texts it read ("# Title" headers included), i.e.
 * `--extract` of the documents when they were added together. */
const cr_ingest *reader_ingest(const cr_reader *r);
sampler         *reader_sampler(cr_reader *r);       /* the session's sampler (saved in snapshots) */

/* The reading modes' common start (--read, --ask, --summarize): resume o->resume_path or
 * start a new reader, queue o->inputs, and autosave every o->autosave tokens to
 * o->save_path; cb is completed with the autosave fields. NULL + err (nothing to free). */
cr_reader *reader_from_opts(cr_session *s, const cr_opts *o, cr_reader_cb *cb, char *err, size_t errlen);

/* Snapshot of everything (atomic write, see snapshot.h). 0 / -1 + one-line err. */
int  reader_save(cr_reader *r, const char *path, char *err, size_t errlen);
/* Autosaves of a GPU cache run in a background thread while reading goes on (the host
 * mirror of the cache stays frozen until the next save); this waits for the one in flight
 * (its failure is reported through cb.warn). reader_save and reader_free wait too; call it
 * before anything else loads into the session's state. */
void reader_wait_saves(cr_reader *r);
/* Restore a snapshot into a session opened on the same model (session_open with state);
 * partly read documents are queued to continue at their saved offset. NULL + err
 * ("PATH: problem"; a different model names both). */
cr_reader *reader_resume(cr_session *s, const char *path, const cr_reader_cb *cb, char *err, size_t errlen);

#endif
