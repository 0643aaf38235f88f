/* Text and log backends: decoded lines -> chunks.
 *
 * Logs: one chunk per line (the line's '\n' included), so every token's line number is
 * exact; a line longer than max_line is cut (at a UTF-8 boundary) into pieces flagged
 * CR_CHUNK_SPLIT that share its line number, counted in info->split_lines and reported
 * through opts.warn for the first few.
 *
 * Text: one chunk per paragraph: its lines plus the first blank line after them (further
 * blank lines are dropped; so are blank lines before the first paragraph). A paragraph over
 * max_chunk bytes is emitted in blocks of whole lines (a single line over max_chunk is cut,
 * preferably after a space). Every '\n' in a chunk is a line break of the source.
 *
 * Chapter headings (sections), deliberately simple:
 *   - the line starts at column 0 and is preceded by >= 2 blank lines (or is the first text);
 *   - cr_heading_level() accepts it: "CHAPTER I", "Chapter 12.", "BOOK THREE: 1807",
 *     "PART II", "Book the First--...", "EPILOGUE", "FIRST EPILOGUE: 1813 - 20",
 *     "ETYMOLOGY. (...)": a keyword (all caps or Capitalized), then for numbered keywords a
 *     number (digits, roman numerals, ONE..TWENTY, FIRST..TWELFTH, LAST, optionally after
 *     "the"), then end of line, punctuation or a space; at most 80 bytes;
 *   - a table of contents is not a heading: the candidate is dropped when the next non-blank
 *     line is a heading of the same level.
 * Levels: 1 = BOOK/PART/VOLUME/ACT/"FIRST EPILOGUE" (parent), 2 = CHAPTER/STAVE/LETTER/
 * SCENE/SECTION (titled "parent / chapter" under a parent), 3 = standalone (PROLOGUE,
 * EPILOGUE, PREFACE, INTRODUCTION, ..., clears the parent).
 *
 * Project Gutenberg: if a line "*** START OF ..." is in the first 64 KiB the document is a
 * Gutenberg text; its "Title:" line names it, and with strip_gutenberg everything through
 * the START line and from the "*** END OF" line on is dropped (line numbers still count
 * the dropped lines, so they stay those of the original file).
 *
 * Memory: one decode buffer of 4*max(max_line, max_chunk) + 3*ING_RAWBUF bytes, one raw
 * buffer, one hold buffer for a paragraph awaiting a heading decision. */
#include "ingest_int.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct text_be {
    ing_backend b;
    ing_src *src;
    const cr_ingest_opts *o;
    int      log;
    ing_dec  dec;
    uint8_t *raw; size_t raw_len; int src_eof;
    char    *buf; size_t cap, beg, scan, end, searched; int dec_eof;
    size_t   maxlen;
    uint64_t lineno;             /* line of the byte at scan */
    int      cont;               /* scan is inside a split line */
    int      done;
    /* text mode */
    int      pg, gstate;         /* gstate: 0 body, 1 dropping the Gutenberg header */
    int      popen, held;        /* a paragraph is open; it was copied to hold */
    size_t   pstart, pend, pblank;
    uint64_t pline;
    char    *hold; size_t hold_len;
    int      blank_run, seen_text;
    int      hd_pending, hd_level;
    char    *hd_title;
    int      p_newsec;
    char    *p_title, *out_title, *part;
} text_be;

/* ---- headings ---------------------------------------------------------------------- */
static size_t alpha_run(const char *s, size_t n, size_t i) {
    while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) i++;
    return i;
}
static int word_is(const char *w, size_t k, const char *kw) {
    return strlen(kw) == k && !strncasecmp(w, kw, k);
}
static int case_ok(const char *w, size_t k) {       /* WORD or Word */
    if (!k || !(w[0] >= 'A' && w[0] <= 'Z')) return 0;
    int up = 1, low = 1;
    for (size_t i = 1; i < k; i++) {
        if (w[i] >= 'a' && w[i] <= 'z') up = 0; else low = 0;
    }
    return up || low;
}
static int delim_ok(const char *s, size_t n, size_t i) {
    if (i >= n) return 1;
    unsigned char c = (unsigned char)s[i];
    return c >= 0x80 || strchr(" \t.:,;-)]!?", c) != NULL;
}
static const char *const NUMWORDS[] = {
    "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN", "ELEVEN",
    "TWELVE", "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN",
    "NINETEEN", "TWENTY", "FIRST", "SECOND", "THIRD", "FOURTH", "FIFTH", "SIXTH", "SEVENTH",
    "EIGHTH", "NINTH", "TENTH", "ELEVENTH", "TWELFTH", "LAST", NULL};
static int is_numword(const char *w, size_t k) {
    for (int i = 0; NUMWORDS[i]; i++) if (word_is(w, k, NUMWORDS[i])) return 1;
    return 0;
}
static int is_ordinal(const char *w, size_t k) {
    static const char *const ord[] = {"FIRST", "SECOND", "THIRD", "FOURTH", "FIFTH", "LAST", NULL};
    for (int i = 0; ord[i]; i++) if (word_is(w, k, ord[i])) return 1;
    return 0;
}
static int is_roman(const char *w, size_t k) {
    if (!k || k > 8) return 0;
    int up = w[0] >= 'A' && w[0] <= 'Z';
    for (size_t i = 0; i < k; i++) {
        if (!strchr(up ? "IVXLCDM" : "ivxlcdm", w[i])) return 0;
    }
    return 1;
}
/* number token at s[i..]: returns the index after it, 0 if none */
static size_t number_at(const char *s, size_t n, size_t i) {
    size_t j = i;
    while (j < n && s[j] >= '0' && s[j] <= '9' && j - i < 4) j++;
    if (j > i) return (j < n && s[j] >= '0' && s[j] <= '9') ? 0 : j;
    j = alpha_run(s, n, i);
    if (j == i) return 0;
    if (is_roman(s + i, j - i) || is_numword(s + i, j - i)) return j;
    if (word_is(s + i, j - i, "THE") && j < n && s[j] == ' ') {
        size_t k = alpha_run(s, n, j + 1);
        if (k > j + 1 && is_numword(s + j + 1, k - j - 1)) return k;
    }
    return 0;
}

int cr_heading_level(const char *s, size_t n) {
    static const struct { const char *w; int level, numbered; } KW[] = {
        {"BOOK", 1, 1}, {"PART", 1, 1}, {"VOLUME", 1, 1}, {"ACT", 1, 1},
        {"CHAPTER", 2, 1}, {"STAVE", 2, 1}, {"LETTER", 2, 1}, {"SCENE", 2, 1}, {"SECTION", 2, 1},
        {"PROLOGUE", 3, 0}, {"EPILOGUE", 3, 0}, {"PREFACE", 3, 0}, {"INTRODUCTION", 3, 0},
        {"CONCLUSION", 3, 0}, {"APPENDIX", 3, 0}, {"ETYMOLOGY", 3, 0}, {"EXTRACTS", 3, 0},
        {"FOREWORD", 3, 0}, {"AFTERWORD", 3, 0}, {"POSTSCRIPT", 3, 0}, {NULL, 0, 0}};
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n == 0 || n > 80 || !(s[0] >= 'A' && s[0] <= 'Z')) return 0;
    size_t e = alpha_run(s, n, 0);
    if (!case_ok(s, e)) return 0;
    /* "FIRST EPILOGUE", "Second Part" */
    if (is_ordinal(s, e) && e < n && s[e] == ' ') {
        size_t e2 = alpha_run(s, n, e + 1);
        const char *w2 = s + e + 1;
        size_t k2 = e2 - e - 1;
        if (case_ok(w2, k2) && (word_is(w2, k2, "EPILOGUE") || word_is(w2, k2, "PART") ||
                                word_is(w2, k2, "BOOK")) && delim_ok(s, n, e2))
            return 1;
        return 0;
    }
    for (int i = 0; KW[i].w; i++) {
        if (!word_is(s, e, KW[i].w)) continue;
        if (!KW[i].numbered) return delim_ok(s, n, e) ? KW[i].level : 0;
        if (e >= n || s[e] != ' ') return 0;
        size_t j = number_at(s, n, e + 1);
        return j && delim_ok(s, n, j) ? KW[i].level : 0;
    }
    return 0;
}

/* ---- Gutenberg ------------------------------------------------------------------- */
/* "*** START OF ..." / "***END OF ..." */
static int is_marker(const char *s, size_t n, const char *what) {
    size_t i = 0;
    while (i < n && s[i] == ' ') i++;
    if (n - i < 3 || memcmp(s + i, "***", 3)) return 0;
    while (i < n && (s[i] == '*' || s[i] == ' ')) i++;
    size_t k = strlen(what);
    return n - i >= k + 3 && !strncasecmp(s + i, what, k) && !strncasecmp(s + i + k, " OF", 3);
}

/* Gutenberg START marker in the first block? Also fills *title from "Title:". */
static int find_gutenberg(const uint8_t *p, size_t n, int enc, char **title) {
    const char *s = (const char *)p;
    size_t i = 0;
    const char *t = NULL; size_t tn = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (s + i)) : n - i;
        if (!t && len > 6 && !memcmp(s + i, "Title:", 6)) { t = s + i + 6; tn = len - 6; }
        if (is_marker(s + i, len, "START")) {
            if (t && title) {
                ing_dec d = {enc, 0, 0};
                char tmp[3 * 256 + 4];
                size_t used, w = ing_decode(&d, (const uint8_t *)t, tn > 256 ? 256 : tn, 1, tmp, &used);
                *title = ing_title_dup(tmp, w);
            }
            return 1;
        }
        if (!nl) break;
        i += len + 1;
    }
    return 0;
}

int ing_looks_like_log(const char *path, const uint8_t *p, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    static const char *const pre[] = {"syslog", "messages", "kern.", "auth.", "daemon.", "dmesg",
                                      "access_log", "error_log", "access.", "error.", NULL};
    for (const char *q = strstr(b, ".log"); q; q = strstr(q + 1, ".log")) {
        char c = q[4];                   /* x.log, x.log.1, x.log.gz, x.log-20240101, x.log_old */
        if (!c || c == '.' || c == '-' || c == '_') return 1;
    }
    for (int i = 0; pre[i]; i++) if (!strncmp(b, pre[i], strlen(pre[i]))) return 1;
    if (find_gutenberg(p, n, ING_ENC_UTF8, NULL)) return 0;
    size_t lines = 0, blank = 0, i = 0;
    const char *s = (const char *)p;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        if (!nl) break;
        size_t len = (size_t)(nl - (s + i)), k = 0;
        while (k < len && (s[i + k] == ' ' || s[i + k] == '\t' || s[i + k] == '\r')) k++;
        lines++;
        blank += k == len;
        i += len + 1;
    }
    return lines >= 16 && blank * 50 < lines;
}

/* ---- buffer -------------------------------------------------------------------- */
static int fill(text_be *t, char *err, size_t errlen) {
    const size_t need = 3 * (size_t)ING_RAWBUF + 8;
    if (t->cap - t->end < need && t->beg) {
        size_t d = t->beg;
        memmove(t->buf, t->buf + d, t->end - d);
        t->end -= d; t->scan -= d; t->beg = 0;
        if (t->popen && !t->held) { t->pstart -= d; t->pend -= d; }
    }
    if (t->cap - t->end < need)
        return ing_err(err, errlen, t->b.info->path, "internal error: line buffer full");
    if (!t->src_eof && t->raw_len < ING_RAWBUF) {
        ssize_t r = ing_src_read(t->src, t->raw + t->raw_len, ING_RAWBUF - t->raw_len, err, errlen);
        if (r < 0) return -1;
        if (r == 0) t->src_eof = 1;
        t->raw_len += (size_t)r;
    }
    size_t used;
    t->end += ing_decode(&t->dec, t->raw, t->raw_len, t->src_eof, t->buf + t->end, &used);
    memmove(t->raw, t->raw + used, t->raw_len - used);
    t->raw_len -= used;
    if (t->src_eof && t->raw_len == 0) t->dec_eof = 1;
    cr_docinfo *in = t->b.info;
    in->invalid = t->dec.invalid; in->nul = t->dec.nul;
    in->encoding = t->dec.enc == ING_ENC_CP1252 ? "cp1252" : "utf-8";
    in->src_bytes = ing_src_bytes(t->src);
    return 0;
}

/* Next line of the buffer: [*off, *off + *len), '\n' included if present. *piece: 1 = a
 * split piece (the line goes on), 0 = the line (or its last piece) ends here.
 * 1 ok, 0 end of data, -1 error. */
static int get_line(text_be *t, size_t *off, size_t *len, uint64_t *ln, int *piece,
                    char *err, size_t errlen) {
    for (;;) {
        size_t avail = t->end - t->scan;
        size_t lim = avail < t->maxlen ? avail : t->maxlen;
        char *s = t->buf + t->scan;
        if (t->searched < lim) {
            char *q = memchr(s + t->searched, '\n', lim - t->searched);
            if (q) {
                *off = t->scan; *len = (size_t)(q - s) + 1; *ln = t->lineno; *piece = 0;
                t->scan += *len; t->lineno++; t->cont = 0; t->searched = 0;
                return 1;
            }
            t->searched = lim;
        }
        if (avail >= t->maxlen) {
            size_t cut = ing_utf8_cut(s, t->maxlen);
            if (!t->log)
                for (size_t k = cut; k > 1 && k + 256 > cut; k--)
                    if (s[k - 1] == ' ') { cut = k; break; }
            if (cut == 0) cut = t->maxlen;
            *off = t->scan; *len = cut; *ln = t->lineno; *piece = 1;
            t->scan += cut; t->cont = 1; t->searched = 0;
            return 1;
        }
        if (t->dec_eof) {
            if (avail == 0) return 0;
            *off = t->scan; *len = avail; *ln = t->lineno; *piece = 0;
            t->scan = t->end; t->lineno++; t->cont = 0; t->searched = 0;
            return 1;
        }
        if (fill(t, err, errlen)) return -1;
    }
}

/* ---- logs ---------------------------------------------------------------------- */
static int log_next(ing_backend *b, ing_piece *p, char *err, size_t errlen) {
    text_be *t = (text_be *)b;
    t->beg = t->scan;
    size_t off, len; uint64_t ln; int piece, was_cont = t->cont;
    int r = get_line(t, &off, &len, &ln, &piece, err, errlen);
    b->info->lines = t->lineno - 1;
    if (r <= 0) return r;
    memset(p, 0, sizeof *p);
    p->text = t->buf + off; p->len = len; p->line = ln;
    p->flags = CR_CHUNK_RECORD | (piece ? CR_CHUNK_SPLIT : 0);
    if (piece && !was_cont) {
        if (b->info->split_lines++ < 5)
            ing_warn(t->o, b->info->path, "line %llu is longer than %zu bytes: split into pieces",
                     (unsigned long long)ln, t->maxlen);
    }
    return 1;
}

/* ---- text ---------------------------------------------------------------------- */
static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
            return 0;
    return 1;
}

static char *join_title(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 4);
    if (!s) return NULL;
    memcpy(s, a, na); memcpy(s + na, " / ", 3); memcpy(s + na + 3, b, nb + 1);
    char *t = ing_title_dup(s, na + nb + 3);
    free(s);
    return t;
}

static void confirm_heading(text_be *t) {
    char *title = NULL;
    if (t->hd_level == 1) {
        free(t->part); t->part = strdup(t->hd_title);
        title = strdup(t->hd_title);
    } else if (t->hd_level == 2) {
        title = t->part ? join_title(t->part, t->hd_title) : strdup(t->hd_title);
    } else {
        free(t->part); t->part = NULL;
        title = strdup(t->hd_title);
    }
    free(t->p_title);
    t->p_title = title;
    t->p_newsec = title != NULL;
}

static void open_para(text_be *t, size_t off, size_t len, uint64_t ln, int level) {
    t->popen = 1; t->held = 0;
    t->pstart = off; t->pend = off + len; t->pline = ln; t->pblank = 0;
    t->seen_text = 1;
    t->p_newsec = 0;
    if (level) {
        free(t->hd_title);
        t->hd_title = ing_title_dup(t->buf + off, len);
        t->hd_pending = t->hd_title != NULL;
        t->hd_level = level;
    }
}

static int emit(text_be *t, ing_piece *p) {
    if (!t->popen) return 0;
    if (t->hd_pending) { t->hd_pending = 0; confirm_heading(t); }
    memset(p, 0, sizeof *p);
    if (t->held) { p->text = t->hold; p->len = t->hold_len; }
    else { p->text = t->buf + t->pstart; p->len = t->pend - t->pstart; }
    p->line = t->pline;
    if (t->p_newsec) {
        free(t->out_title);
        t->out_title = t->p_title; t->p_title = NULL;
        p->new_section = 1;
        p->section_title = t->out_title;
    }
    t->p_newsec = 0;
    t->popen = 0;
    return 1;
}

static int text_next(ing_backend *b, ing_piece *p, char *err, size_t errlen) {
    text_be *t = (text_be *)b;
    if (t->done) return 0;
    t->beg = (t->popen && !t->held) ? t->pstart : t->scan;
    for (;;) {
        size_t off, len; uint64_t ln; int piece, was_cont = t->cont;
        int r = get_line(t, &off, &len, &ln, &piece, err, errlen);
        b->info->lines = t->lineno - 1;
        if (r < 0) return -1;
        if (r == 0) { t->done = 1; return emit(t, p); }
        const char *s = t->buf + off;
        int whole = !was_cont && !piece;
        if (t->gstate == 1) {                       /* Gutenberg header: drop */
            if (whole && is_marker(s, len, "START")) t->gstate = 0;
            t->beg = t->scan;
            continue;
        }
        if (t->pg && t->o->strip_gutenberg && whole && is_marker(s, len, "END")) {
            t->done = 1;
            return emit(t, p);
        }
        if (whole && is_blank(s, len)) {
            t->blank_run++;
            if (!t->popen) { t->beg = t->scan; continue; }
            if (t->pblank++ == 0) {
                t->pend = off + len;
                if (!t->hd_pending) return emit(t, p);
                continue;
            }
            if (!t->held) {                          /* keep the heading paragraph aside */
                size_t n = t->pend - t->pstart;
                memcpy(t->hold, t->buf + t->pstart, n);
                t->hold_len = n; t->held = 1;
            }
            t->beg = t->scan;
            continue;
        }
        int level = 0;
        if (!was_cont && (t->blank_run >= 2 || !t->seen_text)) level = cr_heading_level(s, len);
        if (t->hd_pending) {
            t->hd_pending = 0;
            if (was_cont || cr_heading_level(s, len) != t->hd_level) confirm_heading(t);
        }
        t->blank_run = 0;
        if (t->popen && (t->pblank || level || off + len - t->pstart > t->o->max_chunk)) {
            emit(t, p);
            open_para(t, off, len, ln, level);
            return 1;
        }
        if (t->popen) { t->pend = off + len; continue; }
        open_para(t, off, len, ln, level);
    }
}

static void text_close(ing_backend *b) {
    text_be *t = (text_be *)b;
    ing_src_close(t->src);
    free(t->raw); free(t->buf); free(t->hold);
    free(t->hd_title); free(t->p_title); free(t->out_title); free(t->part);
    free(t);
}

ing_backend *ing_text_open(ing_src *src, int log, const cr_ingest_opts *o, cr_docinfo *info,
                           char *err, size_t errlen) {
    const uint8_t *pk; size_t pn;
    int enc;
    ing_src_peek(src, &pk, &pn, err, errlen);
    const char *why = ing_sniff_text(pk, pn, pn < ING_SNIFF, &enc);
    if (why) { ing_err(err, errlen, info->path, "%s", why); ing_src_close(src); return NULL; }
    text_be *t = calloc(1, sizeof *t);
    if (!t) { ing_err(err, errlen, info->path, "out of memory"); ing_src_close(src); return NULL; }
    t->src = src; t->o = o; t->log = log;
    t->b.next = log ? log_next : text_next;
    t->b.close = text_close;
    t->b.info = info;
    t->maxlen = log ? o->max_line : o->max_chunk;
    size_t big = o->max_line > o->max_chunk ? o->max_line : o->max_chunk;
    t->cap = 4 * big + 3 * (size_t)ING_RAWBUF + 4096;
    t->buf = malloc(t->cap);
    t->raw = malloc(ING_RAWBUF);
    t->hold = log ? NULL : malloc(2 * o->max_chunk + 1);   /* paragraph + one blank line */
    if (!t->buf || !t->raw || (!log && !t->hold)) {
        ing_err(err, errlen, info->path, "out of memory");
        text_close(&t->b);
        return NULL;
    }
    t->lineno = 1;
    t->dec.enc = enc;
    if (pn >= 3 && pk[0] == 0xEF && pk[1] == 0xBB && pk[2] == 0xBF) {   /* BOM */
        uint8_t bom[3];
        if (ing_src_read(src, bom, 3, err, errlen) != 3) { text_close(&t->b); return NULL; }
    }
    info->kind = log ? CR_DOC_LOG : CR_DOC_TEXT;
    info->gzip = ing_src_is_gzip(src);
    info->encoding = enc == ING_ENC_CP1252 ? "cp1252" : "utf-8";
    if (!log) {
        char *title = NULL;
        if (find_gutenberg(pk, pn, enc == ING_ENC_CP1252 ? enc : ING_ENC_UTF8, &title)) {
            t->pg = 1;
            t->gstate = o->strip_gutenberg ? 1 : 0;
            if (title && *title) { free(info->title); info->title = title; title = NULL; }
        }
        free(title);
    }
    return &t->b;
}
