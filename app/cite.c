#include "cite.h"
#include <stdlib.h>
#include <string.h>

void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

static int og_cmp(const void *a, const void *b) {
    const cr_probe_hit *x = a, *y = b;
    return x->og < y->og ? -1 : x->og > y->og;
}

typedef struct { uint64_t run; ask_cite c; float best; } agg;

static int agg_cmp(const void *a, const void *b) {
    const agg *x = a, *y = b;
    if (x->c.weight != y->c.weight) return x->c.weight > y->c.weight ? -1 : 1;
    return x->c.tok < y->c.tok ? -1 : x->c.tok > y->c.tok;
}

int cite_collect(const cr_probe *p, const docmap *map, int (*skip)(void *ud, uint64_t tok), void *ud,
                 ask_cite *out, int n) {
    size_t cnt = probe_count(p);
    if (n <= 0 || cnt == 0) return 0;
    cr_probe_hit *all = malloc(cnt * sizeof *all);
    agg *ag = calloc(cnt, sizeof *ag);
    if (!all || !ag) { free(all); free(ag); return 0; }
    cnt = probe_dump(p, all, cnt);
    qsort(all, cnt, sizeof *all, og_cmp);
    size_t na = 0;
    for (size_t i = 0; i < cnt; i++) {
        docmap_loc loc;
        if (all[i].og < 0 || (skip && skip(ud, (uint64_t)all[i].og)) || docmap_lookup(map, (uint64_t)all[i].og, &loc)) continue;
        if (loc.doc >= map->ndocs) continue;     /* conversation tokens (DOCMAP_CONV) */
        if (loc.line == 0) continue;             /* a document's "# Title" header chunk */
        size_t j = na ? na - 1 : 0;          /* hits sorted by og: a run's tokens are adjacent */
        if (!na || ag[j].run != loc.tok_first) {
            j = na;
            ag[na].run = loc.tok_first;
            ag[na].c.doc = loc.doc; ag[na].c.section = loc.section;
            ag[na].c.offset = loc.offset; ag[na].c.line = loc.line;
            ag[na].best = -1;
            na++;
        }
        ag[j].c.weight += all[i].w;
        if (all[i].w > ag[j].best || (all[i].w == ag[j].best && (uint64_t)all[i].og < ag[j].c.tok)) {
            ag[j].best = all[i].w; ag[j].c.tok = (uint64_t)all[i].og;
        }
    }
    qsort(ag, na, sizeof *ag, agg_cmp);
    int m = (size_t)n < na ? n : (int)na;
    for (int i = 0; i < m; i++) {
        out[i] = ag[i].c;
        const docmap_doc *d = &map->docs[out[i].doc];
        const char *sec = docmap_section_title(map, out[i].doc, out[i].section);
        const char *title = d->title ? d->title : (d->path ? d->path : "");
        if (d->nsec > 1 && sec && strcmp(sec, title) != 0)
            snprintf(out[i].label, sizeof out[i].label, "%s, %s, line %llu", title, sec, (unsigned long long)out[i].line);
        else
            snprintf(out[i].label, sizeof out[i].label, "%s, line %llu", title, (unsigned long long)out[i].line);
    }
    free(all); free(ag);
    return m;
}
