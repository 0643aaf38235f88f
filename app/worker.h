/* worker: the engine side of the full-screen interface. One thread reads the documents
 * stride by stride and runs the commands (questions, :save, :load, :add, :summarize, :grep,
 * :cache) between strides, so that the interface never waits for the engine. Commands go in
 * through a queue (worker_send); events (document text, conversation, answer tokens,
 * errors, status) come back through a queue whose file descriptor (worker_fd, a self-pipe)
 * becomes readable when events wait, for the interface's poll() beside stdin.
 *
 * The engine is reached through a backend (function table): wk_backend_reader_new builds
 * the real one (session + reader + ask), tests plug in a scripted fake. No curses here:
 * app tests link this file. */
#ifndef CR_WORKER_H
#define CR_WORKER_H
#include <stddef.h>
#include <stdint.h>
#include "cascade.h"
#include "cli.h"
#include "reader.h"

typedef struct wk wk;

enum wk_ev_type {
    WK_EV_STATUS = 1,   /* the status changed: read it with worker_status (coalesced) */
    WK_EV_DOCTEXT,      /* doc, text/len: the document's text (from its first section), title */
    WK_EV_CONV,         /* role, text, cites: a message of a restored conversation */
    WK_EV_RESET,        /* the conversation and documents are replaced (:load) */
    WK_EV_ANSWER_START, /* role (CONV_USER), text: the question (or ":summarize", ":grep Q") */
    WK_EV_TOKEN,        /* text/len: the next piece of the answer */
    WK_EV_ANSWER_END,   /* cites, partial, doc_tokens, stopped: the answer is complete */
    WK_EV_READ,         /* code: 1 reading, 0 everything read, 2 stopped by Ctrl-C */
    WK_EV_INFO,         /* text: one line ("saved x.cas (3.1 MB)") */
    WK_EV_ERROR,        /* text: one line "FILE: problem" */
    WK_EV_CACHE,        /* cache: which original indices each cascade holds */
    WK_EV_EXIT,         /* the worker thread ended */
};

#define WK_REL_LINE UINT64_MAX  /* wk_cite.rel unknown: the passage is found by its source line */
typedef struct wk_cite {
    uint32_t doc;               /* document index */
    uint64_t rel;               /* byte offset in the document's text (WK_EV_DOCTEXT), or WK_REL_LINE */
    uint64_t line;              /* source line (0 = none) */
    float    weight;
    char     label[256];
} wk_cite;

typedef struct wk_cache_map {
    int C, S, W;                /* cascades, sink slots, slots per cascade */
    int nheads;                 /* (layer, KV head) pairs counted */
    int64_t seen;               /* tokens seen by the cache */
    int nbins;                  /* the session's tokens [0, seen) in nbins equal bins */
    float *hold;                /* [(C + 1) * nbins]: row c < C cascade c, row C the sinks: the
                                 * fraction of the bin's tokens held, averaged over the heads */
    int stored[CR_MAX_CASCADES];
    int      ndocs;
    uint64_t *doc_first;        /* [ndocs] session index of each document's first token */
    char    **doc_title;        /* [ndocs] */
} wk_cache_map;
void wk_cache_map_free(wk_cache_map *m);

typedef struct wk_event {
    int type, code, role, doc, partial, stopped;
    char *text; size_t len;     /* NUL-terminated */
    char *title;
    wk_cite *cites; int n_cites;
    uint64_t doc_tokens;        /* document tokens read when the question was answered */
    /* WK_EV_DOCTEXT: where source lines restart in the text: pairs (byte offset, source line),
     * by offset; between two, each '\n' is one source line (skipped blank lines and stripped
     * parts start a new pair). NULL when the document has no line numbers (EPUB). */
    uint64_t *lines; size_t nlines;
    wk_cache_map *cache;
    struct wk_event *next;
} wk_event;
void wk_event_free(wk_event *e);

typedef struct wk_status {
    char model[96], device[64];
    cr_progress prog; int have_prog;
    int reading;                /* 1 reading, 0 all read, 2 stopped */
    int busy;                   /* a command runs (answer, save, ...) */
    int pos_doc; uint64_t pos_rel;   /* read up to here (-1: nothing yet) */
    int C, W, S, n_sinks, policy;
    int stored[CR_MAX_CASCADES];
    int64_t seen;
    size_t cache_bytes;
} wk_status;

enum wk_cmd_type { WK_CMD_ASK = 1, WK_CMD_SAVE, WK_CMD_LOAD, WK_CMD_ADD, WK_CMD_SUMMARIZE, WK_CMD_GREP,
                   WK_CMD_CACHE, WK_CMD_READ, WK_CMD_QUIT };

/* The engine behind the worker. Every function runs on the worker thread except stop.
 * Return 0 / -1 with err (one line) unless said otherwise. */
typedef struct wk_backend {
    void *ud;
    void (*start)(void *ud, wk *w);           /* first: emit document texts, the conversation */
    int  (*read)(void *ud, wk *w, char *err, size_t n);   /* one stride: 1 more, 0 done, 2 stopped, -1 */
    int  (*ask)(void *ud, wk *w, const char *q, char *err, size_t n);  /* tokens: wk_token; ends with wk_answer_end */
    int  (*summarize)(void *ud, wk *w, char *err, size_t n);
    int  (*grep)(void *ud, wk *w, const char *q, char *err, size_t n);
    int  (*save)(void *ud, wk *w, const char *path, char *err, size_t n);
    int  (*load)(void *ud, wk *w, const char *path, char *err, size_t n);
    int  (*add)(void *ud, wk *w, const char *path, char *err, size_t n);
    int  (*cache)(void *ud, wk *w, char *err, size_t n);  /* emits WK_EV_CACHE */
    void (*stop)(void *ud);                   /* stop reading (any thread) */
    void (*status)(void *ud, wk_status *st);  /* fill the engine's fields */
    void (*destroy)(void *ud);
} wk_backend;

/* Start the thread on backend be (copied; the worker destroys it at worker_free). read_first:
 * start reading at once. NULL + err. */
wk  *worker_start(const wk_backend *be, int read_first, char *err, size_t errlen);
/* Queue a command (arg copied, may be NULL). 0, -1 when the worker has ended. */
int  worker_send(wk *w, int cmd, const char *arg);
/* Ctrl-C: stop the answer being generated, else the reading. Returns 1 if something ran. */
int  worker_stop(wk *w);
int  worker_fd(wk *w);                      /* readable when events wait */
wk_event *worker_next(wk *w);               /* the next event (caller frees), or NULL */
void worker_status(wk *w, wk_status *st);   /* the latest status */
/* Tell the thread to end (after the command running now), join it, free everything. */
void worker_free(wk *w);

/* For backends (worker thread). */
void wk_emit(wk *w, wk_event *e);           /* takes e */
void wk_emit_text(wk *w, int type, const char *text);
void wk_token(wk *w, const char *piece, size_t n);
volatile int *wk_stop_flag(wk *w);          /* set by worker_stop while a command runs */
void wk_status_changed(wk *w);              /* re-read the backend's status, wake the UI */

/* The real engine: opens the model (--resume or the documents of o), as run_read does.
 * Errors are printed ("cascade-read: ...") before returning the exit code; call it before
 * the screen is set up. 0 and *be filled, or an exit code. */
int  wk_backend_reader_new(const cr_opts *o, wk_backend *be);
#endif
