/* The ingestion layer's front: documents in order, a header chunk per document, stream
 * offsets, the section lists, backend selection (see ingest.h) and docmap recording. */
#include "ingest_int.h"
#include <libxml/parser.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct cr_ingest {
    cr_ingest_opts o;
    int          n;
    cr_docinfo  *docs;
    int          cur;           /* current document */
    ing_backend *be;            /* its backend, NULL until opened */
    uint32_t     cur_sec;
    int          sec_text;      /* the current section has text */
    int          sec_keep;      /* the current section must be kept even if empty */
    int          sec_implicit;  /* it is the document's implicit first section */
    int          sec_flag;      /* the next text chunk starts a section */
    uint64_t     offset;
    int          failed;
    char         errmsg[512];
    char        *hdr;
    /* docmap recording */
    int          rec_started;
    uint32_t     map_base;
    int          rec_doc;
};

/* ---- small shared helpers ------------------------------------------------------------ */
int ing_err(char *err, size_t errlen, const char *name, const char *fmt, ...) {
    if (!err || !errlen) return -1;
    int k = name ? snprintf(err, errlen, "%s: ", name) : 0;
    if (k < 0) k = 0;
    if ((size_t)k < errlen) {
        va_list ap; va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void ing_warn(const cr_ingest_opts *o, const char *name, const char *fmt, ...) {
    if (!o || !o->warn) return;
    char msg[512];
    int k = name ? snprintf(msg, sizeof msg, "%s: ", name) : 0;
    if (k < 0) k = 0;
    if ((size_t)k < sizeof msg) {
        va_list ap; va_start(ap, fmt);
        vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
        va_end(ap);
    }
    o->warn(o->ud, msg);
}

char *ing_title_dup(const char *s, size_t n) {
    char *d = malloc(3 * n + 4);                 /* valid UTF-8, NULs replaced */
    if (!d) return NULL;
    ing_dec dec = {ING_ENC_UTF8, 0, 0};
    size_t used;
    char *u = malloc(3 * n + 4);
    if (!u) { free(d); return NULL; }
    n = ing_decode(&dec, (const uint8_t *)s, n, 1, u, &used);
    s = u;
    size_t k = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == ' ' || c == 0x7F) { space = 1; continue; }
        if (space && k) d[k++] = ' ';
        space = 0;
        d[k++] = (char)c;
    }
    if (k > CR_INGEST_MAX_TITLE) k = ing_utf8_cut(d, CR_INGEST_MAX_TITLE);
    d[k] = 0;
    free(u);
    return d;
}

void cr_ingest_opts_default(cr_ingest_opts *o) {
    memset(o, 0, sizeof *o);
    o->mode = CR_INGEST_AUTO;
    o->strip_gutenberg = 0;
    o->headers = 1;
    o->max_line = 64u * 1024;
    o->max_chunk = 16u * 1024;
    o->max_url_bytes = 4ull << 30;
    o->connect_timeout_ms = 15000;
    o->total_timeout_ms = 300000;
    o->idle_timeout_ms = 60000;
    o->max_redirects = 10;
    o->max_epub_bytes = 1ull << 30;
    o->max_epub_entry = 256ull << 20;
    o->max_epub_ratio = 200;
    o->max_spool_bytes = 512ull << 20;
}

/* ---- documents ------------------------------------------------------------------------ */
static int is_url(const char *p) {
    return !strncasecmp(p, "http://", 7) || !strncasecmp(p, "https://", 8);
}

static char *default_title(const char *path) {
    if (!strcmp(path, "-")) return strdup("stdin");
    const char *s = path, *e = path + strlen(path);
    if (is_url(path)) {
        s = strstr(path, "//") + 2;
        const char *q = s + strcspn(s, "?#");
        e = q;
        while (e > s && e[-1] == '/') e--;
        const char *sl = e;
        while (sl > s && sl[-1] != '/') sl--;
        if (sl > s) s = sl;                /* else the host */
    } else {
        while (e > s && e[-1] == '/') e--;
        const char *sl = e;
        while (sl > s && sl[-1] != '/') sl--;
        s = sl;
    }
    return ing_title_dup(s, (size_t)(e - s));
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static int add_section(cr_ingest *in, cr_docinfo *d, uint64_t off, uint64_t line, const char *title) {
    if (d->nsections >= CR_INGEST_MAX_SECTIONS) return 1;
    cr_section *s = realloc(d->sections, ((size_t)d->nsections + 1) * sizeof *s);
    if (!s) return -1;
    d->sections = s;
    s = &d->sections[d->nsections];
    s->offset = off; s->line = line;
    s->title = ing_title_dup(title ? title : "", title ? strlen(title) : 0);
    if (!s->title) return -1;
    in->cur_sec = d->nsections++;
    return 0;
}

static int open_doc(cr_ingest *in, char *err, size_t errlen) {
    cr_docinfo *d = &in->docs[in->cur];
    const cr_ingest_opts *o = &in->o;
    ing_src *src = ing_src_open(d->path, o, in->cur, err, errlen);
    if (!src) return -1;
    const uint8_t *pk; size_t pn;
    ing_src_peek(src, &pk, &pn, err, errlen);
    int zip = pn >= 4 && !memcmp(pk, "PK\x03\x04", 4);
    if (zip || o->mode == CR_INGEST_EPUB ||
        (o->mode == CR_INGEST_AUTO && has_suffix(d->path, ".epub"))) {
        if (!zip) {
            ing_src_close(src);
            return ing_err(err, errlen, d->path, pn ? "not a zip file (EPUB expected)" : "empty file (EPUB expected)");
        }
        const char *local = ing_src_local_path(src);
        if (local) {
            ing_src_close(src);
            in->be = ing_epub_open(d->path, -1, o, in->cur, d, err, errlen);
        } else {
            d->gzip = ing_src_is_gzip(src);
            int fd = ing_src_spool(src, o->max_spool_bytes, err, errlen);
            ing_src_close(src);
            if (fd < 0) return -1;
            in->be = ing_epub_open(NULL, fd, o, in->cur, d, err, errlen);
        }
        return in->be ? 0 : -1;
    }
    int log = o->mode == CR_INGEST_LOG || (o->mode == CR_INGEST_AUTO && ing_looks_like_log(d->path, pk, pn));
    in->be = ing_text_open(src, log, o, d, err, errlen);
    return in->be ? 0 : -1;
}

cr_ingest *cr_ingest_open(const char *const *paths, int n, const cr_ingest_opts *o, char *err,
                          size_t errlen) {
    cr_ingest_opts def;
    if (!o) { cr_ingest_opts_default(&def); o = &def; }
    xmlInitParser();                             /* idempotent; required before threads use libxml2 */
    if (n <= 0 || !paths) { ing_err(err, errlen, "ingest", "no documents given"); return NULL; }
    if (o->max_line < 64 || o->max_chunk < 64 || o->max_line > (256u << 20) || o->max_chunk > (256u << 20)) {
        ing_err(err, errlen, "ingest", "max_line and max_chunk must be between 64 bytes and 256 MiB");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!paths[i] || !*paths[i]) { ing_err(err, errlen, "ingest", "empty path"); return NULL; }
        if (strcmp(paths[i], "-") && !is_url(paths[i]) && access(paths[i], R_OK)) {
            ing_err(err, errlen, paths[i], "%s", strerror(errno));
            return NULL;
        }
    }
    cr_ingest *in = calloc(1, sizeof *in);
    if (!in || !(in->docs = calloc((size_t)n, sizeof *in->docs))) {
        free(in);
        ing_err(err, errlen, "ingest", "out of memory");
        return NULL;
    }
    in->o = *o;
    in->n = n;
    in->rec_doc = -1;
    for (int i = 0; i < n; i++) {
        in->docs[i].path = strdup(paths[i]);
        in->docs[i].title = default_title(paths[i]);
        if (!in->docs[i].path || !in->docs[i].title) {
            cr_ingest_close(in);
            ing_err(err, errlen, "ingest", "out of memory");
            return NULL;
        }
    }
    return in;
}

static int failnow(cr_ingest *in, char *err, size_t errlen) {
    in->failed = 1;
    if (err && errlen) snprintf(err, errlen, "%s", in->errmsg);
    return -1;
}

int cr_ingest_next(cr_ingest *in, cr_chunk *c, char *err, size_t errlen) {
    if (in->failed) return failnow(in, err, errlen);
    for (;;) {
        if (in->cur >= in->n) return 0;
        cr_docinfo *d = &in->docs[in->cur];
        if (!in->be) {
            if (open_doc(in, in->errmsg, sizeof in->errmsg)) return failnow(in, err, errlen);
            size_t hl = 0;
            if (in->o.headers) {
                size_t tl = strlen(d->title);
                free(in->hdr);
                if (!(in->hdr = malloc(tl + 8))) {
                    ing_err(in->errmsg, sizeof in->errmsg, d->path, "out of memory");
                    return failnow(in, err, errlen);
                }
                hl = (size_t)sprintf(in->hdr, "%s# %s\n\n", in->cur ? "\n" : "", d->title);
            }
            if (add_section(in, d, in->offset + hl, 0, d->title) < 0) {
                ing_err(in->errmsg, sizeof in->errmsg, d->path, "out of memory");
                return failnow(in, err, errlen);
            }
            in->sec_text = 0; in->sec_keep = 0; in->sec_implicit = 1; in->sec_flag = 1;
            if (hl) {
                memset(c, 0, sizeof *c);
                c->text = in->hdr; c->len = hl; c->doc = (uint32_t)in->cur; c->section = 0;
                c->offset = in->offset; c->line = 0; c->flags = CR_CHUNK_HEADER;
                in->offset += hl;
                return 1;
            }
        }
        ing_piece p;
        int r = in->be->next(in->be, &p, in->errmsg, sizeof in->errmsg);
        if (r < 0) return failnow(in, err, errlen);
        if (r == 0) {
            in->be->close(in->be);
            in->be = NULL;
            in->cur++;
            continue;
        }
        if (p.new_section) {
            cr_section *s = &d->sections[in->cur_sec];
            if (!in->sec_text && (in->sec_implicit || !in->sec_keep)) {   /* retitle the empty one */
                char *t = ing_title_dup(p.section_title ? p.section_title : "",
                                        p.section_title ? strlen(p.section_title) : 0);
                if (!t) { ing_err(in->errmsg, sizeof in->errmsg, d->path, "out of memory"); return failnow(in, err, errlen); }
                free(s->title);
                s->title = t;
                s->offset = in->offset;
            } else {
                int a = add_section(in, d, in->offset, 0, p.section_title);
                if (a < 0) { ing_err(in->errmsg, sizeof in->errmsg, d->path, "out of memory"); return failnow(in, err, errlen); }
                if (a > 0) goto text;              /* too many sections: keep the current one */
            }
            in->sec_text = 0; in->sec_keep = p.keep_empty; in->sec_implicit = 0; in->sec_flag = 1;
        }
    text:
        if (p.len == 0) continue;
        if (!in->sec_text) d->sections[in->cur_sec].line = p.line;
        memset(c, 0, sizeof *c);
        c->text = p.text; c->len = p.len; c->doc = (uint32_t)in->cur; c->section = in->cur_sec;
        c->offset = in->offset; c->line = p.line;
        c->flags = p.flags | (in->sec_flag ? CR_CHUNK_SECTION : 0);
        in->sec_flag = 0; in->sec_text = 1;
        d->text_bytes += p.len;
        in->offset += p.len;
        return 1;
    }
}

void cr_ingest_close(cr_ingest *in) {
    if (!in) return;
    if (in->be) in->be->close(in->be);
    for (int i = 0; i < in->n; i++) {
        cr_docinfo *d = &in->docs[i];
        for (uint32_t k = 0; k < d->nsections; k++) free(d->sections[k].title);
        free(d->sections); free(d->path); free(d->title);
    }
    free(in->docs); free(in->hdr);
    free(in);
}

int cr_ingest_ndocs(const cr_ingest *in) { return in->n; }
const cr_docinfo *cr_ingest_doc(const cr_ingest *in, int doc) {
    return doc >= 0 && doc < in->n ? &in->docs[doc] : NULL;
}

/* ---- docmap recording -------------------------------------------------------------- */
static int rec_sections(cr_ingest *in, docmap *map, int doc, char *err, size_t errlen) {
    const cr_docinfo *d = &in->docs[doc];
    uint32_t md = in->map_base + (uint32_t)doc;
    for (uint32_t k = map->docs[md].nsec; k < d->nsections; k++)
        if (docmap_add_section(map, md, d->sections[k].offset, d->sections[k].line, d->sections[k].title) < 0)
            return ing_err(err, errlen, d->path, "docmap: cannot add a section");
    return 0;
}

static int rec_upto(cr_ingest *in, docmap *map, int doc, char *err, size_t errlen) {
    if (!in->rec_started) { in->rec_started = 1; in->map_base = map->ndocs; }
    while (in->rec_doc < doc) {
        if (in->rec_doc >= 0 && rec_sections(in, map, in->rec_doc, err, errlen)) return -1;
        in->rec_doc++;
        const cr_docinfo *d = &in->docs[in->rec_doc];
        if (docmap_add_doc(map, d->title, d->path, d->src_bytes) != (int)(in->map_base + (uint32_t)in->rec_doc))
            return ing_err(err, errlen, d->path, "docmap: cannot add the document (map changed meanwhile?)");
    }
    return rec_sections(in, map, doc, err, errlen);
}

int cr_ingest_record(cr_ingest *in, docmap *map, const cr_chunk *c, uint64_t tok_first,
                     char *err, size_t errlen) {
    if (c->doc >= (uint32_t)in->n || (int)c->doc < in->rec_doc)
        return ing_err(err, errlen, "docmap", "chunk out of order");
    if (rec_upto(in, map, (int)c->doc, err, errlen)) return -1;
    if (docmap_add_run(map, tok_first, in->map_base + c->doc, c->offset, c->line, c->section))
        return ing_err(err, errlen, "docmap", "run out of order (token %llu)", (unsigned long long)tok_first);
    return 0;
}

int cr_ingest_record_end(cr_ingest *in, docmap *map, char *err, size_t errlen) {
    int last = in->cur < in->n ? in->cur : in->n - 1;
    if (in->rec_doc > last) return 0;
    return rec_upto(in, map, last, err, errlen);
}
