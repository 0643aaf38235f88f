/* XHTML content document -> paragraphs, through libxml2's HTML parser (recovering, so
 * broken markup still yields its text; network access off).
 *
 * Rules: block elements (p, div, h1-h6, li, blockquote, table rows, section, aside, ...)
 * are paragraph boundaries; <br> is a line break; table cells are separated by a space;
 * whitespace is collapsed as a browser would (kept inside <pre>); entities are decoded by
 * the parser; script, style, head, svg, math, object, ... are skipped; footnotes (aside,
 * div, ... with epub:type="footnote") are ordinary blocks, so they are kept. Element ids
 * listed by the caller are reported as anchor events at their position (for chapter
 * boundaries from the nav/NCX).
 *
 * Markup errors (other than unknown HTML5 tags) are repaired by the parser and counted in
 * out->problems, for a warning.
 *
 * Output: out->text holds the paragraphs, each followed by "\n\n"; out->ev lists them in
 * order, with the XHTML line of each paragraph's first text and its heading level. */
#include "ingest_int.h"
#include <libxml/HTMLparser.h>
#include <libxml/encoding.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    ing_html_out *out;
    const char *const *ids;
    int      nids;
    size_t   pstart;        /* start of the open paragraph in out->text */
    uint32_t pline;
    int      space;         /* a collapsed space is pending */
    int      pre;           /* inside <pre> */
    int      heading;       /* level of the open heading element */
    int      oom;
} walker;

static const char *const SKIP[] = {"head", "script", "style", "noscript", "template", "title",
    "svg", "math", "object", "iframe", "embed", "audio", "video", "canvas", "map", "select",
    "button", "textarea", NULL};
static const char *const BLOCK[] = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li",
    "blockquote", "tr", "table", "section", "article", "aside", "body", "html", "ul", "ol",
    "dl", "dt", "dd", "pre", "hr", "header", "footer", "figure", "figcaption", "caption",
    "address", "center", "details", "dialog", "fieldset", "form", "hgroup", "main", "nav",
    "summary", "tbody", "thead", "tfoot", "legend", NULL};

static int in_list(const char *const *l, const char *name) {
    for (int i = 0; l[i]; i++)
        if (l[i][0] == name[0] && !strcmp(l[i], name)) return 1;
    return 0;
}

static int reserve(walker *w, size_t extra) {
    ing_html_out *o = w->out;
    if (o->cap - o->len >= extra) return 0;
    size_t nc = o->cap ? o->cap : 4096;
    while (nc - o->len < extra) nc *= 2;
    char *t = realloc(o->text, nc);
    if (!t) { w->oom = 1; return -1; }
    o->text = t; o->cap = nc;
    return 0;
}

static int push_ev(walker *w, size_t off, size_t len, uint32_t line, int heading, int anchor) {
    ing_html_out *o = w->out;
    if (o->nev == o->cap_ev) {
        size_t nc = o->cap_ev ? o->cap_ev * 2 : 64;
        ing_hev *e = realloc(o->ev, nc * sizeof *e);
        if (!e) { w->oom = 1; return -1; }
        o->ev = e; o->cap_ev = nc;
    }
    o->ev[o->nev++] = (ing_hev){off, len, line, heading, anchor};
    return 0;
}

static void flush(walker *w) {
    ing_html_out *o = w->out;
    size_t n = o->len;
    while (n > w->pstart && strchr(" \n\t", o->text[n - 1])) n--;
    o->len = n;
    if (n > w->pstart && !reserve(w, 2)) {
        o->text[o->len++] = '\n'; o->text[o->len++] = '\n';
        push_ev(w, w->pstart, o->len - w->pstart, w->pline, w->heading, -1);
    }
    w->pstart = o->len;
    w->pline = 0;
    w->space = 0;
}

static void add_text_clean(walker *w, const xmlNode *n, const char *s, size_t len);

/* Source line of the text at s (inside node n's content, rest bytes to its end). libxml2
 * gives a text node the line where it ends; count back over the newlines after s. */
static uint32_t text_line(const xmlNode *n, const char *s, size_t rest) {
    long l = xmlGetLineNo(n);
    for (size_t i = 0; i < rest; i++) l -= s[i] == '\n';
    const xmlNode *p = n->parent;
    long pl = p && p->type == XML_ELEMENT_NODE ? xmlGetLineNo(p) : 0;
    if (l < pl) l = pl;
    return l > 0 && l < (long)UINT32_MAX ? (uint32_t)l : 0;
}

static void add_text(walker *w, const xmlNode *n, const char *s) {
    size_t len = strlen(s);
    char *clean = NULL;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80) {         /* the parser passes invalid UTF-8 through */
            ing_dec d = {ING_ENC_UTF8, 0, 0};
            size_t used;
            if (!(clean = malloc(3 * len + 4))) { w->oom = 1; return; }
            len = ing_decode(&d, (const uint8_t *)s, len, 1, clean, &used);
            clean[len] = 0;
            s = clean;
            break;
        }
    }
    add_text_clean(w, n, s, len);
    free(clean);
}

static void add_text_clean(walker *w, const xmlNode *n, const char *s, size_t len) {
    if (reserve(w, len + 1)) return;
    ing_html_out *o = w->out;
    char *d = o->text + o->len;
    int started = o->len > w->pstart;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!w->pre && (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f')) {
            w->space = 1;
            continue;
        }
        if (c == '\r') continue;
        if (w->space && started && d[-1] != '\n') *d++ = ' ';
        w->space = 0;
        if (!started && !w->pline) w->pline = text_line(n, s + i, len - i);
        started = 1;
        *d++ = c;
    }
    o->len = (size_t)(d - o->text);
}

static void check_anchor(walker *w, const xmlNode *n) {
    if (!w->nids) return;
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        if (!a->name || !a->children || !a->children->content) continue;
        const char *an = (const char *)a->name;
        if (strcmp(an, "id") && !(strcmp(an, "name") == 0 && !strcmp((const char *)n->name, "a")))
            continue;
        const char *v = (const char *)a->children->content;
        for (int k = 0; k < w->nids; k++) {
            if (w->ids[k] && !strcmp(w->ids[k], v)) {
                flush(w);
                push_ev(w, w->out->len, 0, (uint32_t)(xmlGetLineNo(n) > 0 ? xmlGetLineNo(n) : 0), 0, k);
            }
        }
    }
}

/* Returns 1 if the element's subtree is to be skipped. */
static int enter(walker *w, const xmlNode *n) {
    const char *name = (const char *)n->name;
    if (!name) return 1;
    if (in_list(SKIP, name)) return 1;
    check_anchor(w, n);
    if (!strcmp(name, "br")) {
        if (w->out->len > w->pstart && !reserve(w, 1)) {
            w->out->text[w->out->len++] = '\n';
            w->space = 0;
        }
        return 0;
    }
    if (in_list(BLOCK, name)) {
        flush(w);
        if (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' && !name[2]) w->heading = name[1] - '0';
        if (!strcmp(name, "pre")) w->pre++;
    } else if ((!strcmp(name, "td") || !strcmp(name, "th")) && w->out->len > w->pstart) {
        w->space = 1;
    }
    return 0;
}

static void leave(walker *w, const xmlNode *n) {
    const char *name = (const char *)n->name;
    if (!name || in_list(SKIP, name) || !strcmp(name, "br")) return;
    if (in_list(BLOCK, name)) {
        flush(w);
        if (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' && !name[2]) w->heading = 0;
        if (!strcmp(name, "pre") && w->pre) w->pre--;
    } else if (!strcmp(name, "td") || !strcmp(name, "th")) {
        w->space = 1;
    }
}

static void walk(walker *w, xmlNode *root) {
    xmlNode *n = root;
    while (n && !w->oom) {
        int skip = 0;
        if (n->type == XML_ELEMENT_NODE) skip = enter(w, n);
        else if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content)
            add_text(w, n, (const char *)n->content);
        if (!skip && n->type == XML_ELEMENT_NODE && n->children) { n = n->children; continue; }
        for (;;) {                           /* n is done: leave it, go to next or up */
            if (n->type == XML_ELEMENT_NODE && !skip) leave(w, n);
            skip = 0;
            if (n == root) return;
            if (n->next) { n = n->next; break; }
            n = n->parent;
            if (!n) return;
        }
    }
}

static xmlNode *find_body(xmlNode *n, int depth) {
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        if (n->name && !strcmp((const char *)n->name, "body")) return n;
        if (depth < 3) {
            xmlNode *b = find_body(n->children, depth + 1);
            if (b) return b;
        }
    }
    return NULL;
}

/* The encoding to hand to the parser: from a BOM or the XML declaration, else UTF-8
 * (EPUB content documents are UTF-8 or UTF-16). */
static const char *pick_encoding(const char *buf, size_t len, char *tmp, size_t tn) {
    const unsigned char *u = (const unsigned char *)buf;
    if (len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF)))
        return u[0] == 0xFF ? "UTF-16LE" : "UTF-16BE";
    if (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) return "UTF-8";
    if (len > 5 && !memcmp(buf, "<?xml", 5)) {
        size_t lim = len < 200 ? len : 200;
        const char *end = memchr(buf, '>', lim);
        if (end) {
            for (const char *p = buf; p + 9 < end; p++) {
                if (strncmp(p, "encoding", 8)) continue;
                p += 8;
                while (p < end && (*p == ' ' || *p == '=')) p++;
                if (p < end && (*p == '"' || *p == '\'')) {
                    char q = *p++;
                    size_t k = 0;
                    while (p < end && *p != q && k + 1 < tn) tmp[k++] = *p++;
                    tmp[k] = 0;
                    if (k && !strcasecmp(tmp, "utf-8")) return "UTF-8";
                    if (k && (!strncasecmp(tmp, "iso-8859", 8) || !strcasecmp(tmp, "windows-1252") ||
                              !strcasecmp(tmp, "us-ascii") || !strncasecmp(tmp, "utf-16", 6)))
                        return tmp;
                }
                break;
            }
        }
    }
    return "UTF-8";
}

static void ignore_error(void *ctx, const char *msg, ...) { (void)ctx; (void)msg; }

static void on_parse_error(void *ctx, const char *msg, ...) {
    (void)msg;
    htmlParserCtxtPtr c = ctx;
    if (c && c->_private && c->errNo != XML_HTML_UNKNOWN_TAG) ++*(int *)c->_private;
}

int ing_html_extract(const char *buf, size_t len, const char *name, const char *const *ids,
                     int nids, ing_html_out *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (len > INT_MAX) return ing_err(err, errlen, name, "content document too large");
    char tmp[32];
    const char *enc = pick_encoding(buf, len, tmp, sizeof tmp);
    if (strncasecmp(enc, "UTF-16", 6) && memchr(buf, 0, len < 4096 ? len : 4096))
        return ing_err(err, errlen, name, "not XHTML (binary data)");
    /* Parse errors are counted through a per-context handler (thread-safe); unknown (HTML5)
     * tags are not errors for us. */
    htmlParserCtxtPtr ctxt = len ? htmlCreateMemoryParserCtxt(buf, (int)len) : NULL;
    if (!ctxt) return len ? ing_err(err, errlen, name, "out of memory") : 0;
    xmlCharEncodingHandlerPtr hdlr = xmlFindCharEncodingHandler(enc);
    if (hdlr) xmlSwitchToEncoding(ctxt, hdlr);
    htmlCtxtUseOptions(ctxt, HTML_PARSE_RECOVER | HTML_PARSE_NOWARNING | HTML_PARSE_NONET | HTML_PARSE_COMPACT);
    int problems = 0;
    ctxt->_private = &problems;
    ctxt->sax->error = on_parse_error;
    ctxt->sax->warning = NULL;
    ctxt->vctxt.error = ignore_error;            /* duplicate ids etc.: not our concern */
    ctxt->vctxt.warning = ignore_error;
    htmlParseDocument(ctxt);
    htmlDocPtr doc = ctxt->myDoc;
    ctxt->myDoc = NULL;
    htmlFreeParserCtxt(ctxt);
    out->problems = problems;
    if (!doc) {
        if (len == 0) return 0;
        return ing_err(err, errlen, name, "broken XHTML (cannot be parsed)");
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    walker w = {out, ids, nids, 0, 0, 0, 0, 0, 0};
    if (root) {
        xmlNode *body = find_body(root, 0);
        walk(&w, body ? body : root);
        flush(&w);
    }
    xmlFreeDoc(doc);
    if (w.oom) { ing_html_free(out); return ing_err(err, errlen, name, "out of memory"); }
    return 0;
}

void ing_html_free(ing_html_out *out) {
    free(out->text); free(out->ev);
    memset(out, 0, sizeof *out);
}
