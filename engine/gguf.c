/* GGUF reader: see gguf.h. All reads go through a bounds-checked cursor. */
#include "gguf.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_KV (1u << 24)
#define GGUF_MAX_TENSORS (1u << 20)

typedef struct { const uint8_t *p; size_t n, off; int bad; } cursor;

static void seterr(gguf_file *g, const char *fmt, ...) {
    char msg[512];
    va_list ap; va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap);
    snprintf(g->err, sizeof g->err, "%s: %s", g->path, msg);
}

static int rd(cursor *c, void *dst, size_t n) {
    if (c->bad || n > c->n - c->off) { c->bad = 1; return -1; }
    memcpy(dst, c->p + c->off, n); c->off += n; return 0;
}
static int skip(cursor *c, uint64_t n) {
    if (c->bad || n > c->n - c->off) { c->bad = 1; return -1; }
    c->off += n; return 0;
}
static int rd_str(cursor *c, gguf_str *s) {
    uint64_t n;
    if (rd(c, &n, 8)) return -1;
    if (n > c->n - c->off) { c->bad = 1; return -1; }
    s->s = (const char *)c->p + c->off; s->n = n; c->off += n; return 0;
}

static const uint8_t scalar_size[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const struct { const char *name; uint32_t blck, size; } type_info[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},      [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},  [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},  [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},  [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84}, [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144},[GGML_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210},[GGML_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [GGML_TYPE_BF16] = {"BF16", 1, 2},
};

const char *ggml_type_name(uint32_t t) {
    if (t < GGML_TYPE_COUNT && type_info[t].name) return type_info[t].name;
    return "unknown";
}
uint64_t ggml_blck_size(uint32_t t) { return t < GGML_TYPE_COUNT ? type_info[t].blck : 0; }
uint64_t ggml_type_size(uint32_t t) { return t < GGML_TYPE_COUNT ? type_info[t].size : 0; }
uint64_t ggml_row_size(uint32_t t, uint64_t n) { return n / ggml_blck_size(t) * ggml_type_size(t); }

/* Skip (and validate) one value of type t; arrays of arrays are rejected. */
static int skip_value(cursor *c, uint32_t t, int depth, uint32_t *arr_type, uint64_t *arr_n) {
    if (t >= GGUF_T_COUNT) { c->bad = 2; return -1; }
    if (t == GGUF_T_STRING) { gguf_str s; return rd_str(c, &s); }
    if (t == GGUF_T_ARRAY) {
        uint32_t et; uint64_t n;
        if (depth > 0) { c->bad = 3; return -1; }
        if (rd(c, &et, 4) || rd(c, &n, 8)) return -1;
        if (et >= GGUF_T_COUNT || et == GGUF_T_ARRAY) { c->bad = 2; return -1; }
        if (arr_type) *arr_type = et;
        if (arr_n) *arr_n = n;
        if (et == GGUF_T_STRING) {
            for (uint64_t i = 0; i < n; i++) { gguf_str s; if (rd_str(c, &s)) return -1; }
            return 0;
        }
        if (n > (c->n - c->off) / scalar_size[et]) { c->bad = 1; return -1; }
        return skip(c, n * scalar_size[et]);
    }
    return skip(c, scalar_size[t]);
}

int gguf_parse(gguf_file *g, const void *buf, size_t size, const char *name) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", name ? name : "(buffer)");
    g->map = buf; g->size = size;
    cursor c = {buf, size, 0, 0};
    uint32_t magic;
    if (rd(&c, &magic, 4)) { seterr(g, "file too small to be GGUF (%zu bytes)", size); return -1; }
    if (memcmp(&magic, "GGUF", 4) != 0) { seterr(g, "not a GGUF file (bad magic)"); return -1; }
    if (rd(&c, &g->version, 4) || rd(&c, &g->n_tensors, 8) || rd(&c, &g->n_kv, 8)) {
        seterr(g, "truncated GGUF header"); return -1;
    }
    if (g->version == 1) { seterr(g, "GGUF version 1 is not supported (convert to v3)"); return -1; }
    if (g->version != 2 && g->version != 3) { seterr(g, "unsupported GGUF version %u", g->version); return -1; }
    if (g->n_kv > GGUF_MAX_KV || g->n_kv > size / 12) { seterr(g, "corrupt header: %llu metadata entries", (unsigned long long)g->n_kv); return -1; }
    if (g->n_tensors > GGUF_MAX_TENSORS || g->n_tensors > size / 24) { seterr(g, "corrupt header: %llu tensors", (unsigned long long)g->n_tensors); return -1; }
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) { seterr(g, "out of memory reading the header"); goto fail; }
    g->alignment = 32;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        if (rd_str(&c, &kv->key) || rd(&c, &kv->type, 4)) { seterr(g, "truncated metadata (entry %llu of %llu)", (unsigned long long)i, (unsigned long long)g->n_kv); goto fail; }
        if (kv->type >= GGUF_T_COUNT) { seterr(g, "metadata '%.*s' has invalid type %u", (int)(kv->key.n > 80 ? 80 : kv->key.n), kv->key.s, kv->type); goto fail; }
        size_t start = c.off;
        if (skip_value(&c, kv->type, 0, &kv->arr_type, &kv->arr_n)) {
            if (c.bad == 1) seterr(g, "truncated metadata value '%.*s'", (int)(kv->key.n > 80 ? 80 : kv->key.n), kv->key.s);
            else seterr(g, "metadata '%.*s' has an invalid array type", (int)(kv->key.n > 80 ? 80 : kv->key.n), kv->key.s);
            goto fail;
        }
        kv->val = (const uint8_t *)buf + start; kv->val_size = c.off - start;
        if (kv->type == GGUF_T_ARRAY) { kv->val += 12; kv->val_size -= 12; }
        if (gguf_str_eq(kv->key, "general.alignment")) {
            int64_t a = 0;
            if (kv->type == GGUF_T_UINT32) { uint32_t v; memcpy(&v, kv->val, 4); a = v; }
            else if (kv->type == GGUF_T_UINT64 || kv->type == GGUF_T_INT64) { memcpy(&a, kv->val, 8); }
            else if (kv->type == GGUF_T_INT32) { int32_t v; memcpy(&v, kv->val, 4); a = v; }
            if (a <= 0 || a > (1 << 20) || (a & (a - 1))) { seterr(g, "invalid general.alignment %lld", (long long)a); goto fail; }
            g->alignment = (uint64_t)a;
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (rd_str(&c, &t->name) || rd(&c, &t->n_dims, 4)) { seterr(g, "truncated tensor info (tensor %llu)", (unsigned long long)i); goto fail; }
        int nl = (int)(t->name.n > 80 ? 80 : t->name.n);
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS) { seterr(g, "tensor '%.*s' has %u dimensions", nl, t->name.s, t->n_dims); goto fail; }
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) if (rd(&c, &t->ne[d], 8)) { seterr(g, "truncated tensor info '%.*s'", nl, t->name.s); goto fail; }
        if (rd(&c, &t->type, 4) || rd(&c, &t->offset, 8)) { seterr(g, "truncated tensor info '%.*s'", nl, t->name.s); goto fail; }
        if (ggml_blck_size(t->type) == 0) { seterr(g, "tensor '%.*s' has unknown type %u", nl, t->name.s, t->type); goto fail; }
        uint64_t nel = 1;
        for (int d = 0; d < 4; d++) {
            if (t->ne[d] == 0 || t->ne[d] > (1ull << 40) || nel > (1ull << 48) / t->ne[d]) { seterr(g, "tensor '%.*s' has invalid shape", nl, t->name.s); goto fail; }
            nel *= t->ne[d];
        }
        if (t->ne[0] % ggml_blck_size(t->type)) { seterr(g, "tensor '%.*s': row length %llu is not a multiple of the %s block size", nl, t->name.s, (unsigned long long)t->ne[0], ggml_type_name(t->type)); goto fail; }
        t->nbytes = nel / ggml_blck_size(t->type) * ggml_type_size(t->type);
        if (t->offset % g->alignment) { seterr(g, "tensor '%.*s' offset is not aligned", nl, t->name.s); goto fail; }
    }
    uint64_t off = c.off;
    off = (off + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors > 0 && off > size) { seterr(g, "truncated: data section starts past the end of the file"); goto fail; }
    g->data_off = off;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        uint64_t avail = size - off;
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            seterr(g, "truncated: tensor '%.*s' (%llu bytes at offset %llu) extends past the end of the file (%zu bytes)",
                   (int)(t->name.n > 80 ? 80 : t->name.n), t->name.s, (unsigned long long)t->nbytes,
                   (unsigned long long)(off + t->offset), size);
            goto fail;
        }
        t->data = (const uint8_t *)buf + off + t->offset;
    }
    return 0;
fail:
    free(g->kv); free(g->tensors); g->kv = NULL; g->tensors = NULL;
    return -1;
}

int gguf_open(gguf_file *g, const char *path) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { seterr(g, "%s", strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fd, &st) != 0) { seterr(g, "%s", strerror(errno)); close(fd); return -1; }
    if (S_ISDIR(st.st_mode)) { seterr(g, "is a directory"); close(fd); return -1; }
    if (st.st_size < 24) { seterr(g, "file too small to be GGUF (%lld bytes)", (long long)st.st_size); close(fd); return -1; }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) { seterr(g, "mmap failed: %s", strerror(errno)); return -1; }
    char name[512]; snprintf(name, sizeof name, "%s", path);
    if (gguf_parse(g, m, (size_t)st.st_size, name) != 0) {
        char err[sizeof g->err]; memcpy(err, g->err, sizeof err);
        munmap(m, (size_t)st.st_size);
        memcpy(g->err, err, sizeof err);
        return -1;
    }
    g->mapped = 1;
    return 0;
}

void gguf_close(gguf_file *g) {
    if (g->mapped && g->map) munmap((void *)g->map, g->size);
    free(g->kv); free(g->tensors);
    g->kv = NULL; g->tensors = NULL; g->map = NULL; g->mapped = 0;
}

int gguf_str_eq(gguf_str a, const char *b) {
    size_t n = strlen(b);
    return a.n == n && memcmp(a.s, b, n) == 0;
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++) if (gguf_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}
const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++) if (gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static int scalar_as(uint32_t t, const uint8_t *p, double *d, int64_t *i) {
    switch (t) {
    case GGUF_T_UINT8: *i = *p; *d = *i; return 1;
    case GGUF_T_INT8: *i = (int8_t)*p; *d = *i; return 1;
    case GGUF_T_BOOL: *i = *p != 0; *d = *i; return 1;
    case GGUF_T_UINT16: { uint16_t v; memcpy(&v, p, 2); *i = v; *d = v; return 1; }
    case GGUF_T_INT16: { int16_t v; memcpy(&v, p, 2); *i = v; *d = v; return 1; }
    case GGUF_T_UINT32: { uint32_t v; memcpy(&v, p, 4); *i = v; *d = v; return 1; }
    case GGUF_T_INT32: { int32_t v; memcpy(&v, p, 4); *i = v; *d = v; return 1; }
    case GGUF_T_UINT64: { uint64_t v; memcpy(&v, p, 8); *i = (int64_t)v; *d = (double)v; return 1; }
    case GGUF_T_INT64: { int64_t v; memcpy(&v, p, 8); *i = v; *d = (double)v; return 1; }
    case GGUF_T_FLOAT32: { float v; memcpy(&v, p, 4); *d = v; *i = (int64_t)v; return 1; }
    case GGUF_T_FLOAT64: { double v; memcpy(&v, p, 8); *d = v; *i = (int64_t)v; return 1; }
    default: return 0;
    }
}

int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(g, key); double d; int64_t i;
    if (!kv || !scalar_as(kv->type, kv->val, &d, &i)) return 0;
    *out = i; return 1;
}
int gguf_get_f64(const gguf_file *g, const char *key, double *out) {
    const gguf_kv *kv = gguf_find(g, key); double d; int64_t i;
    if (!kv || !scalar_as(kv->type, kv->val, &d, &i)) return 0;
    *out = d; return 1;
}
int gguf_get_bool(const gguf_file *g, const char *key, int *out) {
    int64_t v;
    if (!gguf_get_i64(g, key, &v)) return 0;
    *out = v != 0; return 1;
}
int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type != GGUF_T_STRING) return 0;
    uint64_t n; memcpy(&n, kv->val, 8);
    out->s = (const char *)kv->val + 8; out->n = n; return 1;
}
int gguf_get_cstr(const gguf_file *g, const char *key, char *buf, size_t bufsz) {
    gguf_str s;
    if (!gguf_get_str(g, key, &s) || bufsz == 0) return 0;
    size_t n = s.n < bufsz - 1 ? s.n : bufsz - 1;
    memcpy(buf, s.s, n); buf[n] = 0; return 1;
}

double gguf_arr_f64(const gguf_kv *kv, uint64_t i) {
    double d = 0; int64_t v = 0;
    if (kv->type != GGUF_T_ARRAY || i >= kv->arr_n || kv->arr_type == GGUF_T_STRING) return 0;
    scalar_as(kv->arr_type, kv->val + i * scalar_size[kv->arr_type], &d, &v);
    return d;
}
int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i) {
    double d = 0; int64_t v = 0;
    if (kv->type != GGUF_T_ARRAY || i >= kv->arr_n || kv->arr_type == GGUF_T_STRING) return 0;
    scalar_as(kv->arr_type, kv->val + i * scalar_size[kv->arr_type], &d, &v);
    return v;
}
void gguf_arr_strs(const gguf_kv *kv, gguf_str *out) {
    /* Already validated by gguf_parse: lengths stay inside the value. */
    const uint8_t *p = kv->val;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        uint64_t n; memcpy(&n, p, 8);
        out[i].s = (const char *)p + 8; out[i].n = n;
        p += 8 + n;
    }
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; }
    return h;
}
uint64_t gguf_fingerprint(const gguf_file *g) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        h = fnv(h, g->kv[i].key.s, g->kv[i].key.n);
        h = fnv(h, &g->kv[i].type, 4);
        h = fnv(h, g->kv[i].val, g->kv[i].val_size);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        h = fnv(h, t->name.s, t->name.n);
        h = fnv(h, t->ne, sizeof t->ne);
        h = fnv(h, &t->type, 4);
        h = fnv(h, &t->offset, 8);
    }
    return h;
}
