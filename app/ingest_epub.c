/* EPUB 2 and 3 backend: zip container (libzip) -> META-INF/container.xml -> OPF (manifest,
 * spine, dc:title) -> spine items in order -> paragraphs (ingest_html.c).
 *
 * Sections (chapters): from the EPUB3 nav document (nav epub:type="toc") or the EPUB2 NCX
 * (whichever the package version prefers, the other as fallback). Every nav entry that points
 * into the spine becomes one section, placed at its anchor (element id) inside the content
 * document, or at the start of the document when it has no fragment; nested entries are
 * titled "Parent / Child" ("BOOK ONE: 1805 / CHAPTER I"). Anchors missing from the document
 * still give a (possibly empty) section at the next anchor or at the document's end.
 * Spine items no nav entry points to: with a nav, they continue the current section unless
 * they start with a heading (h1-h3), which then titles a new section; without any nav, every
 * spine item with text is a section titled by its first heading, else its file name.
 *
 * Bad input: not a zip, zip encryption, META-INF/encryption.xml listing anything but font
 * obfuscation (DRM), missing container/OPF/spine items, entries over max_epub_entry, more
 * than max_epub_bytes decompressed in total, a ratio over max_epub_ratio (entries over
 * 1 MiB), CRC/size mismatches: error "book.epub: problem". Broken XHTML is repaired by the
 * HTML parser and reported through opts.warn ("book.epub: OPS/ch1.xhtml: malformed XHTML
 * (2 markup errors), recovered"): one bad tag should not cost the whole book. Content that
 * cannot be parsed at all, or is binary, is an error.
 *
 * Memory: the OPF/nav tables, plus one spine item (raw and extracted) at a time. */
#include "ingest_int.h"
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/HTMLparser.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#define MAX_NAV   100000
#define MAX_DEPTH 16

typedef struct { char *id, *path, *type, *props; } man_it;
typedef struct { char *path; int xhtml; } spine_it;
typedef struct { char *path, *frag, *title; int spine; } nav_it;

typedef struct epub_be {
    ing_backend b;
    const cr_ingest_opts *o;
    zip_t   *z;
    char    *msgname;            /* "book.epub" for messages */
    uint64_t total;              /* decompressed bytes so far */
    uint64_t spine_bytes, done_bytes;
    man_it  *man;   int nman;
    spine_it *spine; int nspine;
    nav_it  *nav;   int nnav, cap_nav;
    char    *navpart;            /* current BOOK/PART label while reading the nav */
    char    *title;
    /* current spine item */
    int      item, loaded;
    ing_html_out h;
    size_t   ev, split_off, par_end;   /* paragraph ev: [split_off, par_end) left to emit */
    int      par_checked, stop_after;
    int     *fnav;  int nfnav, fnav_next;
    const char **ids;
    char    *file_title;         /* section to open with the item's first text (fallback) */
    char    *title_hold;         /* the last announced fallback title (valid until next call) */
    int      doc;
    /* section announcements waiting to be returned */
    int     *q;     int qn, qcap, qi;
    /* Project Gutenberg stripping: 0 body, 1 dropping the header, 2 ended */
    int      pg, strip_state, pend_nav;
} epub_be;

/* ---- helpers -------------------------------------------------------------------------- */
static int fail(epub_be *e, char *err, size_t errlen, const char *fmt, const char *arg) {
    return ing_err(err, errlen, e->msgname, fmt, arg ? arg : "");
}


static char *prop(const xmlNode *n, const char *name) {
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    if (!v) return NULL;
    char *s = strdup((const char *)v);
    xmlFree(v);
    return s;
}
static int is_el(const xmlNode *n, const char *lname) {
    return n && n->type == XML_ELEMENT_NODE && n->name && !strcmp((const char *)n->name, lname);
}
static xmlNode *child(const xmlNode *p, const char *lname) {
    for (xmlNode *c = p ? p->children : NULL; c; c = c->next) if (is_el(c, lname)) return c;
    return NULL;
}
/* Whitespace-collapsed text content, malloc'd. */
static char *text_of(const xmlNode *n) {
    xmlChar *c = xmlNodeGetContent(n);
    if (!c) return NULL;
    char *t = ing_title_dup((const char *)c, strlen((const char *)c));
    xmlFree(c);
    return t;
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static void pct_decode(char *s) {
    char *d = s;
    for (; *s; s++) {
        if (*s == '%' && hexv(s[1]) >= 0 && hexv(s[2]) >= 0) {
            char c = (char)(hexv(s[1]) * 16 + hexv(s[2]));
            s += 2;
            if (!c) c = '?';
            *d++ = c;
        } else *d++ = *s;
    }
    *d = 0;
}

/* base_dir ("OEBPS/" or "") + href -> normalized zip path; *frag gets the fragment (or
 * NULL). NULL for external URLs, empty paths and paths leaving the container. */
static char *resolve(const char *base_dir, const char *href, char **frag) {
    if (frag) *frag = NULL;
    if (!href) return NULL;
    const char *hash = strchr(href, '#');
    size_t plen = hash ? (size_t)(hash - href) : strlen(href);
    for (size_t i = 0; i < plen && href[i] != '/'; i++)
        if (href[i] == ':') return NULL;           /* scheme: external */
    if (plen == 0) return NULL;
    size_t bl = strlen(base_dir);
    char *joined = malloc(bl + plen + 2);
    if (!joined) return NULL;
    if (href[0] == '/') { memcpy(joined, href + 1, plen - 1); joined[plen - 1] = 0; }
    else { memcpy(joined, base_dir, bl); memcpy(joined + bl, href, plen); joined[bl + plen] = 0; }
    pct_decode(joined);
    /* normalize segments in place */
    char *out = malloc(strlen(joined) + 1);
    if (!out) { free(joined); return NULL; }
    size_t on = 0;
    char *save = NULL;
    for (char *seg = strtok_r(joined, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (!strcmp(seg, ".")) continue;
        if (!strcmp(seg, "..")) {
            if (on == 0) { free(joined); free(out); return NULL; }
            while (on > 0 && out[on - 1] != '/') on--;
            if (on > 0) on--;                       /* drop the '/' too */
            continue;
        }
        if (on) out[on++] = '/';
        size_t k = strlen(seg);
        memcpy(out + on, seg, k);
        on += k;
    }
    out[on] = 0;
    free(joined);
    if (!on) { free(out); return NULL; }
    if (frag && hash && hash[1]) {
        *frag = strdup(hash + 1);
        if (*frag) pct_decode(*frag);
    }
    return out;
}
static char *dir_of(const char *path) {
    const char *sl = strrchr(path, '/');
    size_t n = sl ? (size_t)(sl - path) + 1 : 0;
    char *d = malloc(n + 1);
    if (d) { memcpy(d, path, n); d[n] = 0; }
    return d;
}

/* Reads a zip entry entirely, within the size/ratio/total bounds. count: add to the total. */
static int read_entry(epub_be *e, const char *path, char **out, size_t *len, int count,
                      char *err, size_t errlen) {
    *out = NULL; *len = 0;
    zip_int64_t idx = zip_name_locate(e->z, path, 0);
    if (idx < 0) idx = zip_name_locate(e->z, path, ZIP_FL_NOCASE);
    if (idx < 0) return ing_err(err, errlen, e->msgname, "missing %s", path);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(e->z, (zip_uint64_t)idx, 0, &st) || !(st.valid & ZIP_STAT_SIZE))
        return ing_err(err, errlen, e->msgname, "%s: unreadable zip entry", path);
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
        return ing_err(err, errlen, e->msgname, "encrypted EPUB (zip encryption on %s)", path);
    const cr_ingest_opts *o = e->o;
    if (st.size > o->max_epub_entry)
        return ing_err(err, errlen, e->msgname, "zip bomb? %s decompresses to %llu bytes (max_epub_entry %llu)",
                       path, (unsigned long long)st.size, (unsigned long long)o->max_epub_entry);
    if (count && e->total + st.size > o->max_epub_bytes)
        return ing_err(err, errlen, e->msgname, "zip bomb? more than %llu bytes decompressed (max_epub_bytes)",
                       (unsigned long long)o->max_epub_bytes);
    if ((st.valid & ZIP_STAT_COMP_SIZE) && st.size > (1u << 20) &&
        st.size / (st.comp_size ? st.comp_size : 1) > o->max_epub_ratio)
        return ing_err(err, errlen, e->msgname, "zip bomb? %s has a compression ratio over %u", path,
                       o->max_epub_ratio);
    zip_file_t *f = zip_fopen_index(e->z, (zip_uint64_t)idx, 0);
    if (!f) return ing_err(err, errlen, e->msgname, "%s: %s", path, zip_strerror(e->z));
    char *buf = malloc((size_t)st.size + 1);
    if (!buf) { zip_fclose(f); return ing_err(err, errlen, e->msgname, "%s: out of memory", path); }
    zip_uint64_t got = 0;
    while (got < st.size) {
        zip_int64_t r = zip_fread(f, buf + got, st.size - got);
        if (r < 0) {
            ing_err(err, errlen, e->msgname, "%s: corrupt zip entry (%s)", path, zip_file_strerror(f));
            free(buf); zip_fclose(f);
            return -1;
        }
        if (r == 0) break;
        got += (zip_uint64_t)r;
    }
    char extra;
    if (got != st.size || zip_fread(f, &extra, 1) != 0) {
        ing_err(err, errlen, e->msgname, "%s: corrupt zip entry (size mismatch)", path);
        free(buf); zip_fclose(f);
        return -1;
    }
    zip_fclose(f);
    buf[got] = 0;
    if (count) e->total += got;
    *out = buf; *len = (size_t)got;
    return 0;
}

static xmlDoc *parse_xml(const char *buf, size_t len, const char *name) {
    if (len > 0x7fffffff) return NULL;
    return xmlReadMemory(buf, (int)len, name, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_RECOVER);
}

/* ---- container, encryption, OPF ------------------------------------------------------ */
static int check_encryption(epub_be *e, char *err, size_t errlen) {
    if (zip_name_locate(e->z, "META-INF/encryption.xml", ZIP_FL_NOCASE) < 0) return 0;
    char *buf; size_t len;
    if (read_entry(e, "META-INF/encryption.xml", &buf, &len, 0, err, errlen)) return -1;
    xmlDoc *d = parse_xml(buf, len, "encryption.xml");
    free(buf);
    if (!d) return fail(e, err, errlen, "encrypted or DRM-protected EPUB (unreadable META-INF/encryption.xml)%s", NULL);
    int rc = 0;
    xmlNode *root = xmlDocGetRootElement(d);
    for (xmlNode *ed = root ? root->children : NULL; ed && !rc; ed = ed->next) {
        if (!is_el(ed, "EncryptedData")) continue;
        xmlNode *m = child(ed, "EncryptionMethod");
        char *alg = m ? prop(m, "Algorithm") : NULL;
        int font = alg && (!strcmp(alg, "http://www.idpf.org/2008/embedding") ||
                           !strcmp(alg, "http://ns.adobe.com/pdf/enc#RC"));
        free(alg);
        if (font) continue;
        xmlNode *cr = child(child(ed, "CipherData"), "CipherReference");
        char *uri = cr ? prop(cr, "URI") : NULL;
        rc = ing_err(err, errlen, e->msgname, "encrypted or DRM-protected EPUB (META-INF/encryption.xml lists %s)",
                     uri ? uri : "content");
        free(uri);
    }
    xmlFreeDoc(d);
    return rc;
}

static char *find_opf(epub_be *e, char *err, size_t errlen) {
    char *buf; size_t len;
    if (zip_name_locate(e->z, "META-INF/container.xml", ZIP_FL_NOCASE) < 0) {
        fail(e, err, errlen, "not an EPUB (no META-INF/container.xml)%s", NULL);
        return NULL;
    }
    if (read_entry(e, "META-INF/container.xml", &buf, &len, 1, err, errlen)) return NULL;
    xmlDoc *d = parse_xml(buf, len, "container.xml");
    free(buf);
    char *path = NULL;
    xmlNode *rfs = d ? child(xmlDocGetRootElement(d), "rootfiles") : NULL;
    for (xmlNode *r = rfs ? rfs->children : NULL; r && !path; r = r->next) {
        if (!is_el(r, "rootfile")) continue;
        char *mt = prop(r, "media-type");
        if (!mt || !strcmp(mt, "application/oebps-package+xml")) {
            char *fp = prop(r, "full-path");
            path = resolve("", fp, NULL);
            free(fp);
        }
        free(mt);
    }
    if (d) xmlFreeDoc(d);
    if (!path) fail(e, err, errlen, "missing OPF (no rootfile in META-INF/container.xml)%s", NULL);
    return path;
}

static man_it *man_find(epub_be *e, const char *id) {
    for (int i = 0; id && i < e->nman; i++) if (e->man[i].id && !strcmp(e->man[i].id, id)) return &e->man[i];
    return NULL;
}
static int spine_find(epub_be *e, const char *path) {
    for (int i = 0; i < e->nspine; i++) if (!strcmp(e->spine[i].path, path)) return i;
    return -1;
}

static char *join3(const char *a, const char *b) {
    size_t x = strlen(a), y = strlen(b);
    char *j = malloc(x + y + 4);
    if (!j) return NULL;
    memcpy(j, a, x); memcpy(j + x, " / ", 3); memcpy(j + x + 3, b, y + 1);
    char *t = ing_title_dup(j, x + y + 3);
    free(j);
    return t;
}

/* Adds a nav entry (if it points into the spine) and returns its title (malloc'd, for the
 * children's titles), NULL on no label / out of memory (*oom set).
 * Titles: "BOOK ..."/"PART ..." labels (cr_heading_level 1) become the parent of the
 * following "CHAPTER ..." labels whatever the nesting (some NCX files nest every book inside
 * the first one) when they are nested at all; other labels are titled "parent / label" from
 * the nesting. */
static char *nav_add(epub_be *e, const char *base, const char *href, const char *label,
                     const char *parent, int depth, int *oom) {
    if (!label || !*label || e->nnav >= MAX_NAV) return NULL;
    int lvl = cr_heading_level(label, strlen(label));
    char *title;
    if (lvl == 1) {
        free(e->navpart);
        e->navpart = strdup(label);
        title = strdup(label);
    } else if (lvl == 2 && e->navpart && depth > 0) {
        title = join3(e->navpart, label);
    } else {
        if (lvl == 3) { free(e->navpart); e->navpart = NULL; }
        title = parent && *parent ? join3(parent, label) : strdup(label);
    }
    if (!title) { *oom = 1; return NULL; }
    char *frag;
    char *path = resolve(base, href, &frag);
    int sp = path ? spine_find(e, path) : -1;
    if (sp < 0) { free(path); free(frag); return title; }
    if (e->nnav == e->cap_nav) {
        int nc = e->cap_nav ? e->cap_nav * 2 : 64;
        nav_it *n = realloc(e->nav, (size_t)nc * sizeof *n);
        if (!n) { free(path); free(frag); free(title); *oom = 1; return NULL; }
        e->nav = n; e->cap_nav = nc;
    }
    char *copy = strdup(title);
    if (!copy) { free(path); free(frag); free(title); *oom = 1; return NULL; }
    e->nav[e->nnav++] = (nav_it){path, frag, title, sp};
    return copy;
}

static int ncx_walk(epub_be *e, const char *base, xmlNode *p, const char *parent, int depth) {
    if (depth > MAX_DEPTH) return 0;
    for (xmlNode *np = p->children; np; np = np->next) {
        if (!is_el(np, "navPoint")) continue;
        char *label = text_of(child(child(np, "navLabel"), "text"));
        xmlNode *c = child(np, "content");
        char *src = c ? prop(c, "src") : NULL;
        int oom = 0;
        char *title = nav_add(e, base, src, label, parent, depth, &oom);
        if (!oom) oom = ncx_walk(e, base, np, title ? title : parent, depth + 1);
        free(label); free(src); free(title);
        if (oom) return -1;
    }
    return 0;
}

static int load_ncx(epub_be *e, const man_it *m, char *err, size_t errlen) {
    char *buf; size_t len;
    if (read_entry(e, m->path, &buf, &len, 1, err, errlen)) return -1;
    xmlDoc *d = parse_xml(buf, len, m->path);
    free(buf);
    if (!d) return 0;                               /* unreadable NCX: no chapter titles */
    char *base = dir_of(m->path);
    xmlNode *nm = child(xmlDocGetRootElement(d), "navMap");
    int rc = base && nm ? ncx_walk(e, base, nm, NULL, 0) : 0;
    free(base);
    xmlFreeDoc(d);
    return rc ? fail(e, err, errlen, "out of memory%s", NULL) : 0;
}

static int nav_ol(epub_be *e, const char *base, xmlNode *ol, const char *parent, int depth) {
    if (depth > MAX_DEPTH) return 0;
    for (xmlNode *li = ol->children; li; li = li->next) {
        if (!is_el(li, "li")) continue;
        xmlNode *a = child(li, "a");
        xmlNode *lab = a ? a : child(li, "span");
        char *label = lab ? text_of(lab) : NULL;
        char *href = a ? prop(a, "href") : NULL;
        int oom = 0;
        char *title = nav_add(e, base, href, label, parent, depth, &oom);
        xmlNode *sub = child(li, "ol");
        if (!oom && sub) oom = nav_ol(e, base, sub, title ? title : parent, depth + 1);
        free(label); free(href); free(title);
        if (oom) return -1;
    }
    return 0;
}

static xmlNode *find_nav(xmlNode *n, int want_toc, int depth) {
    for (; n && depth < 64; n = n->next) {
        if (is_el(n, "nav")) {
            if (!want_toc) return n;
            char *t = prop(n, "epub:type");
            if (!t) t = prop(n, "type");
            int toc = t && strstr(t, "toc");
            free(t);
            if (toc) return n;
        }
        if (n->type == XML_ELEMENT_NODE) {
            xmlNode *r = find_nav(n->children, want_toc, depth + 1);
            if (r) return r;
        }
    }
    return NULL;
}

static int load_nav(epub_be *e, const man_it *m, char *err, size_t errlen) {
    char *buf; size_t len;
    if (read_entry(e, m->path, &buf, &len, 1, err, errlen)) return -1;
    htmlDocPtr d = len < 0x7fffffff ? htmlReadMemory(buf, (int)len, m->path, "UTF-8",
                        HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET) : NULL;
    free(buf);
    if (!d) return 0;
    xmlNode *root = xmlDocGetRootElement(d);
    xmlNode *nav = find_nav(root, 1, 0);
    if (!nav) nav = find_nav(root, 0, 0);
    xmlNode *ol = nav ? child(nav, "ol") : NULL;
    char *base = dir_of(m->path);
    int rc = ol && base ? nav_ol(e, base, ol, NULL, 0) : 0;
    free(base);
    xmlFreeDoc(d);
    return rc ? fail(e, err, errlen, "out of memory%s", NULL) : 0;
}

static int has_token(const char *list, const char *tok) {
    size_t k = strlen(tok);
    for (const char *p = list; p && *p;) {
        while (*p == ' ') p++;
        const char *q = p;
        while (*q && *q != ' ') q++;
        if ((size_t)(q - p) == k && !strncmp(p, tok, k)) return 1;
        p = q;
    }
    return 0;
}

static int load_opf(epub_be *e, const char *opf, char *err, size_t errlen) {
    char *buf; size_t len;
    if (read_entry(e, opf, &buf, &len, 1, err, errlen)) {
        if (zip_name_locate(e->z, opf, ZIP_FL_NOCASE) < 0) fail(e, err, errlen, "missing OPF %s", opf);
        return -1;
    }
    xmlDoc *d = parse_xml(buf, len, opf);
    free(buf);
    xmlNode *pkg = d ? xmlDocGetRootElement(d) : NULL;
    if (!is_el(pkg, "package")) {
        if (d) xmlFreeDoc(d);
        return fail(e, err, errlen, "broken OPF %s (no package element)", opf);
    }
    char *ver = prop(pkg, "version");
    int v3 = ver && ver[0] >= '3';
    free(ver);
    char *base = dir_of(opf);
    int rc = 0;
    xmlNode *meta = child(pkg, "metadata"), *man = child(pkg, "manifest"), *sp = child(pkg, "spine");
    for (xmlNode *t = meta ? meta->children : NULL; t && !e->title; t = t->next)
        if (is_el(t, "title")) {
            e->title = text_of(t);
            if (e->title && !*e->title) { free(e->title); e->title = NULL; }
        }
    int nitems = 0;
    for (xmlNode *it = man ? man->children : NULL; it; it = it->next) nitems += is_el(it, "item");
    e->man = calloc((size_t)nitems + 1, sizeof *e->man);
    if (!e->man || !base) { rc = fail(e, err, errlen, "out of memory%s", NULL); goto done; }
    for (xmlNode *it = man ? man->children : NULL; it; it = it->next) {
        if (!is_el(it, "item")) continue;
        char *href = prop(it, "href");
        man_it *m = &e->man[e->nman];
        m->path = resolve(base, href, NULL);
        free(href);
        if (!m->path) continue;
        m->id = prop(it, "id"); m->type = prop(it, "media-type"); m->props = prop(it, "properties");
        e->nman++;
    }
    int nref = 0;
    for (xmlNode *it = sp ? sp->children : NULL; it; it = it->next) nref += is_el(it, "itemref");
    if (!sp || !nref) { rc = fail(e, err, errlen, "empty or missing spine in %s", opf); goto done; }
    e->spine = calloc((size_t)nref, sizeof *e->spine);
    if (!e->spine) { rc = fail(e, err, errlen, "out of memory%s", NULL); goto done; }
    for (xmlNode *it = sp->children; it; it = it->next) {
        if (!is_el(it, "itemref")) continue;
        char *idref = prop(it, "idref");
        man_it *m = man_find(e, idref);
        if (!m) {
            rc = fail(e, err, errlen, "missing spine item '%s' (not in the manifest)", idref ? idref : "");
            free(idref);
            goto done;
        }
        free(idref);
        spine_it *s = &e->spine[e->nspine++];
        s->path = strdup(m->path);
        s->xhtml = m->type && (strstr(m->type, "html") != NULL);
        if (!s->path) { rc = fail(e, err, errlen, "out of memory%s", NULL); goto done; }
        zip_int64_t idx = zip_name_locate(e->z, s->path, 0);
        if (idx < 0) idx = zip_name_locate(e->z, s->path, ZIP_FL_NOCASE);
        if (idx < 0) { rc = fail(e, err, errlen, "missing spine item %s", s->path); goto done; }
        zip_stat_t st;
        if (!zip_stat_index(e->z, (zip_uint64_t)idx, 0, &st) && (st.valid & ZIP_STAT_SIZE))
            e->spine_bytes += st.size;
    }
    /* table of contents: nav (EPUB3) or NCX (EPUB2), the other as fallback */
    man_it *navm = NULL, *ncxm = NULL;
    char *tocid = prop(sp, "toc");
    ncxm = man_find(e, tocid);
    free(tocid);
    for (int i = 0; i < e->nman; i++) {
        if (!navm && e->man[i].props && has_token(e->man[i].props, "nav")) navm = &e->man[i];
        if (!ncxm && e->man[i].type && !strcmp(e->man[i].type, "application/x-dtbncx+xml")) ncxm = &e->man[i];
    }
    man_it *first = v3 ? navm : ncxm, *second = v3 ? ncxm : navm;
    if (first && (rc = (first == navm ? load_nav : load_ncx)(e, first, err, errlen))) goto done;
    if (!e->nnav && second && (rc = (second == navm ? load_nav : load_ncx)(e, second, err, errlen))) goto done;
done:
    free(base);
    xmlFreeDoc(d);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------ */
static int gutenberg_marker(const char *s, size_t n, const char *what) {
    while (n && (*s == ' ' || *s == '\n')) { s++; n--; }
    if (n < 3 || memcmp(s, "***", 3)) return 0;
    while (n && (*s == '*' || *s == ' ')) { s++; n--; }
    size_t k = strlen(what);
    return n >= k + 3 && !strncasecmp(s, what, k) && !strncasecmp(s + k, " OF", 3);
}

/* A line of s[0..n) that is a Gutenberg marker: its start and the offset after its '\n'. */
static int find_marker(const char *s, size_t n, const char *what, size_t *at, size_t *after) {
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        if (gutenberg_marker(s + i, e - i, what)) { *at = i; *after = nl ? e + 1 : n; return 1; }
        i = e + 1;
    }
    return 0;
}

static void next_par(epub_be *e) {
    e->ev++;
    e->split_off = 0;
    e->par_checked = 0;
}

static int queue(epub_be *e, int nav) {
    if (e->qn == e->qcap) {
        int nc = e->qcap ? e->qcap * 2 : 16;
        int *q = realloc(e->q, (size_t)nc * sizeof *q);
        if (!q) return -1;
        e->q = q; e->qcap = nc;
    }
    e->q[e->qn++] = nav;
    return 0;
}

static void unload(epub_be *e) {
    ing_html_free(&e->h);
    free(e->fnav); free(e->ids); free(e->file_title);
    e->fnav = NULL; e->ids = NULL; e->file_title = NULL;
    e->nfnav = e->fnav_next = 0;
    e->loaded = 0;
}

static int load_item(epub_be *e, char *err, size_t errlen) {
    spine_it *s = &e->spine[e->item++];
    e->ev = 0; e->split_off = 0; e->par_checked = 0; e->loaded = 1;
    for (int i = 0; i < e->nnav; i++) e->nfnav += e->nav[i].spine == e->item - 1;
    if (e->nfnav) {
        e->fnav = malloc((size_t)e->nfnav * sizeof *e->fnav);
        e->ids = malloc((size_t)e->nfnav * sizeof *e->ids);
        if (!e->fnav || !e->ids) return fail(e, err, errlen, "out of memory%s", NULL);
        int k = 0;
        for (int i = 0; i < e->nnav; i++)
            if (e->nav[i].spine == e->item - 1) { e->fnav[k] = i; e->ids[k] = e->nav[i].frag; k++; }
    }
    if (!s->xhtml) return 0;
    char *buf; size_t len;
    if (read_entry(e, s->path, &buf, &len, 1, err, errlen)) return -1;
    e->done_bytes += len;
    if (e->o->progress) e->o->progress(e->o->ud, e->doc, e->done_bytes, e->spine_bytes);
    char name[512];
    snprintf(name, sizeof name, "%s: %s", e->msgname, s->path);
    int rc = ing_html_extract(buf, len, name, e->ids, e->nfnav, &e->h, err, errlen);
    free(buf);
    if (rc) return -1;
    if (e->h.problems)
        ing_warn(e->o, name, "malformed XHTML (%d markup error%s), recovered", e->h.problems,
                 e->h.problems == 1 ? "" : "s");
    /* nav entries without a fragment start at the top of the document */
    while (e->fnav_next < e->nfnav && !e->ids[e->fnav_next]) {
        if (queue(e, e->fnav[e->fnav_next])) return fail(e, err, errlen, "out of memory%s", NULL);
        e->fnav_next++;
    }
    /* fallback section for documents no nav entry points to */
    if (!e->nfnav && e->h.nev) {
        size_t i = 0;
        while (i < e->h.nev && e->h.ev[i].len == 0) i++;
        const ing_hev *first = i < e->h.nev ? &e->h.ev[i] : NULL;
        if (e->nnav == 0) {
            const ing_hev *hd = NULL;
            for (size_t k = 0; k < e->h.nev && !hd; k++) if (e->h.ev[k].heading) hd = &e->h.ev[k];
            if (hd) e->file_title = ing_title_dup(e->h.text + hd->off, hd->len);
            else {
                const char *b = strrchr(s->path, '/');
                b = b ? b + 1 : s->path;
                e->file_title = ing_title_dup(b, strlen(b));
            }
        } else if (first && first->heading && first->heading <= 3) {
            e->file_title = ing_title_dup(e->h.text + first->off, first->len);
        }
    }
    return 0;
}

static int epub_next(ing_backend *b, ing_piece *p, char *err, size_t errlen) {
    epub_be *e = (epub_be *)b;
    memset(p, 0, sizeof *p);
    for (;;) {
        if (e->strip_state == 2) return 0;
        if (e->qi < e->qn) {                        /* pending section announcements */
            int nav = e->q[e->qi++];
            if (e->qi == e->qn) e->qi = e->qn = 0;
            if (e->strip_state == 1) { e->pend_nav = nav; continue; }
            p->new_section = 1; p->keep_empty = 1;
            p->section_title = e->nav[nav].title;
            return 1;
        }
        if (!e->loaded) {
            if (e->item >= e->nspine) return 0;
            if (load_item(e, err, errlen)) return -1;
            continue;
        }
        if (e->ev >= e->h.nev) {
            while (e->fnav_next < e->nfnav)          /* anchors never met: at the end */
                if (queue(e, e->fnav[e->fnav_next++])) return fail(e, err, errlen, "out of memory%s", NULL);
            unload(e);
            continue;
        }
        const ing_hev *ev = &e->h.ev[e->ev];
        if (ev->len == 0) {                          /* anchor k reached */
            for (int k = e->fnav_next; k <= ev->anchor && k < e->nfnav; k++)
                if (queue(e, e->fnav[k])) return fail(e, err, errlen, "out of memory%s", NULL);
            if (ev->anchor >= e->fnav_next) e->fnav_next = ev->anchor + 1;
            e->ev++;
            continue;
        }
        const char *txt = e->h.text + ev->off;
        if (!e->par_checked) {                       /* first look at this paragraph */
            e->par_checked = 1;
            e->par_end = ev->len;
            size_t at, after;
            if (e->strip_state == 1) {
                if (!find_marker(txt, ev->len, "START", &at, &after)) { next_par(e); continue; }
                e->strip_state = 0;                  /* keep what follows the marker line */
                while (after < ev->len && (txt[after] == '\n' || txt[after] == ' ')) after++;
                if (after >= ev->len) { next_par(e); continue; }
                e->split_off = after;
            }
            if (e->pg && e->o->strip_gutenberg &&
                find_marker(txt + e->split_off, ev->len - e->split_off, "END", &at, &after)) {
                size_t end = e->split_off + at;
                while (end > e->split_off && (txt[end - 1] == '\n' || txt[end - 1] == ' ')) end--;
                e->stop_after = 1;
                if (end <= e->split_off) { e->strip_state = 2; return 0; }
                e->par_end = end;
            }
            if (e->pend_nav >= 0) {                  /* last section of the dropped header */
                p->new_section = 1; p->keep_empty = 1;
                p->section_title = e->nav[e->pend_nav].title;
                e->pend_nav = -1;
                return 1;
            }
        }
        size_t n = e->par_end - e->split_off;
        if (n > e->o->max_chunk) {
            n = ing_utf8_cut(txt + e->split_off, e->o->max_chunk);
            for (size_t k = n; k > 1 && k + 256 > n; k--)
                if (txt[e->split_off + k - 1] == ' ') { n = k; break; }
            if (!n) n = e->o->max_chunk;
        }
        p->text = txt + e->split_off; p->len = n; p->line = ev->line;
        if (e->file_title) {                         /* fallback section: once per document */
            free(e->title_hold);
            e->title_hold = e->file_title; e->file_title = NULL;
            p->new_section = 1;
            p->section_title = e->title_hold;
        }
        e->split_off += n;
        if (e->split_off >= e->par_end) {
            next_par(e);
            if (e->stop_after) e->strip_state = 2;
        }
        return 1;
    }
}

static void epub_close(ing_backend *b) {
    epub_be *e = (epub_be *)b;
    unload(e);
    if (e->z) zip_discard(e->z);
    for (int i = 0; i < e->nman; i++) { free(e->man[i].id); free(e->man[i].path); free(e->man[i].type); free(e->man[i].props); }
    for (int i = 0; i < e->nspine; i++) free(e->spine[i].path);
    for (int i = 0; i < e->nnav; i++) { free(e->nav[i].path); free(e->nav[i].frag); free(e->nav[i].title); }
    free(e->man); free(e->spine); free(e->nav); free(e->q);
    free(e->title); free(e->title_hold); free(e->msgname); free(e->navpart);
    free(e);
}

static int prescan_gutenberg(epub_be *e) {
    for (int i = 0; i < e->nspine && i < 3; i++) {
        if (!e->spine[i].xhtml) continue;
        char *buf; size_t len; char err[8];
        if (read_entry(e, e->spine[i].path, &buf, &len, 0, err, sizeof err)) return 0;
        int found = memmem(buf, len, "*** START OF", 12) || memmem(buf, len, "***START OF", 11);
        free(buf);
        if (found) return 1;
    }
    return 0;
}

ing_backend *ing_epub_open(const char *path, int fd, const cr_ingest_opts *o, int doc,
                           cr_docinfo *info, char *err, size_t errlen) {
    epub_be *e = calloc(1, sizeof *e);
    if (!e || !(e->msgname = strdup(info->path))) {
        free(e);
        if (fd >= 0) close(fd);
        ing_err(err, errlen, info->path, "out of memory");
        return NULL;
    }
    e->b.next = epub_next; e->b.close = epub_close; e->b.info = info;
    e->o = o; e->pend_nav = -1; e->doc = doc;
    int ze = 0;
    struct stat st;
    if (fd >= 0) {
        if (fstat(fd, &st) == 0) info->src_bytes = (uint64_t)st.st_size;
        e->z = zip_fdopen(fd, ZIP_CHECKCONS, &ze);
        if (!e->z) close(fd);
    } else {
        if (stat(path, &st) == 0) info->src_bytes = (uint64_t)st.st_size;
        e->z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    }
    if (!e->z) {
        if (ze == ZIP_ER_NOZIP) fail(e, err, errlen, "not a zip file (EPUB expected)%s", NULL);
        else if (ze == ZIP_ER_INCONS) fail(e, err, errlen, "corrupt zip (inconsistent archive)%s", NULL);
        else {
            zip_error_t zerr;
            zip_error_init_with_code(&zerr, ze);
            ing_err(err, errlen, e->msgname, "cannot open zip: %s", zip_error_strerror(&zerr));
            zip_error_fini(&zerr);
        }
        epub_close(&e->b);
        return NULL;
    }
    zip_int64_t nent = zip_get_num_entries(e->z, 0);
    for (zip_int64_t i = 0; i < nent; i++) {
        zip_stat_t zs;
        if (!zip_stat_index(e->z, (zip_uint64_t)i, 0, &zs) && (zs.valid & ZIP_STAT_ENCRYPTION_METHOD) &&
            zs.encryption_method != ZIP_EM_NONE) {
            ing_err(err, errlen, e->msgname, "encrypted EPUB (zip encryption on %s)", zs.name ? zs.name : "an entry");
            epub_close(&e->b);
            return NULL;
        }
    }
    char *opf = NULL;
    if (check_encryption(e, err, errlen) || !(opf = find_opf(e, err, errlen)) ||
        load_opf(e, opf, err, errlen)) {
        free(opf);
        epub_close(&e->b);
        return NULL;
    }
    free(opf);
    info->kind = CR_DOC_EPUB;
    info->encoding = "utf-8";
    info->spine_items = (uint32_t)e->nspine;
    if (e->title) { free(info->title); info->title = e->title; e->title = NULL; }
    if (o->strip_gutenberg && prescan_gutenberg(e)) { e->pg = 1; e->strip_state = 1; }
    return &e->b;
}
