/* Byte sources for the ingestion layer: a local file, stdin ("-") or an http(s) URL, with
 * transparent gzip decompression (detected by the magic bytes 1f 8b, any file name;
 * multi-member streams as written by `cat a.gz b.gz` or pigz; zero padding after the last
 * member is ignored, other trailing bytes are ignored with a warning; a stream that ends
 * inside a member is an error "truncated gzip data").
 *
 * Shape: raw source -> [zlib inflate] -> peek buffer (first ING_SNIFF bytes) -> reader.
 * Memory: one ING_RAWBUF input buffer + the peek buffer + zlib's 32 KiB window. */
#include "ingest_int.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

enum { RAW_FD = 1, RAW_HTTP };

struct ing_src {
    char    *name;                 /* for messages: the path, "stdin" for "-" */
    int      raw;                  /* RAW_* */
    int      fd, own_fd;
    ing_http *http;
    int      plain_file;           /* a regular local file opened by path */
    uint64_t raw_bytes, size, next_progress;
    const cr_ingest_opts *o;
    int      doc;
    /* raw input buffer: bytes read from the source not yet consumed */
    uint8_t *in; size_t in_pos, in_len;
    int      raw_eof;
    /* gzip */
    int      gz, z_init, member_end, z_done;
    z_stream z;
    /* peek */
    uint8_t *pk; size_t pk_pos, pk_len;
    int      peeked, eof;
    int      failed;
};

static ssize_t raw_read(ing_src *s, void *buf, size_t n, char *err, size_t errlen) {
    ssize_t r;
    if (s->raw == RAW_HTTP) {
        r = ing_http_read(s->http, buf, n, err, errlen);
    } else {
        do r = read(s->fd, buf, n); while (r < 0 && errno == EINTR);
        if (r < 0) return ing_err(err, errlen, s->name, "read error: %s", strerror(errno));
    }
    if (r > 0) s->raw_bytes += (uint64_t)r;
    /* progress: every MiB and at the end */
    if (r >= 0 && s->o->progress && (r == 0 || s->raw_bytes >= s->next_progress)) {
        s->o->progress(s->o->ud, s->doc, s->raw_bytes, ing_src_size(s));
        s->next_progress = s->raw_bytes + (1u << 20);
    }
    return r;
}

/* Makes sure at least want bytes (or everything left) are in the raw buffer. */
static int raw_fill(ing_src *s, size_t want, char *err, size_t errlen) {
    if (s->in_pos && s->in_pos == s->in_len) s->in_pos = s->in_len = 0;
    while (s->in_len - s->in_pos < want && !s->raw_eof) {
        if (s->in_pos) {
            memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
            s->in_len -= s->in_pos; s->in_pos = 0;
        }
        ssize_t r = raw_read(s, s->in + s->in_len, ING_RAWBUF - s->in_len, err, errlen);
        if (r < 0) return -1;
        if (r == 0) s->raw_eof = 1;
        s->in_len += (size_t)r;
    }
    return 0;
}

/* Decompressed (or plain) bytes, before the peek buffer. */
static ssize_t dread(ing_src *s, uint8_t *buf, size_t n, char *err, size_t errlen) {
    if (!s->gz) {
        if (s->in_pos < s->in_len) {
            size_t k = s->in_len - s->in_pos < n ? s->in_len - s->in_pos : n;
            memcpy(buf, s->in + s->in_pos, k);
            s->in_pos += k;
            return (ssize_t)k;
        }
        if (s->raw_eof) return 0;
        ssize_t r = raw_read(s, buf, n, err, errlen);
        if (r == 0) s->raw_eof = 1;
        return r;
    }
    for (;;) {
        if (s->z_done) return 0;
        if (s->member_end) {             /* between members: another one, padding, or junk */
            if (raw_fill(s, 2, err, errlen)) return -1;
            size_t left = s->in_len - s->in_pos;
            const uint8_t *q = s->in + s->in_pos;
            if (left == 0) { s->z_done = 1; return 0; }
            if (left >= 2 && q[0] == 0x1F && q[1] == 0x8B) {
                if (inflateReset(&s->z) != Z_OK) return ing_err(err, errlen, s->name, "zlib reset failed");
                s->member_end = 0;
                continue;
            }
            size_t z = 0;
            while (z < left && q[z] == 0) z++;
            if (z == left) { s->in_pos += z; continue; }    /* zero padding */
            ing_warn(s->o, s->name, "trailing garbage after gzip data ignored");
            s->z_done = 1;
            return 0;
        }
        if (s->in_pos == s->in_len && raw_fill(s, 1, err, errlen)) return -1;
        s->z.next_in = s->in + s->in_pos;
        s->z.avail_in = (uInt)(s->in_len - s->in_pos);
        s->z.next_out = buf;
        s->z.avail_out = (uInt)(n > (1u << 30) ? (1u << 30) : n);
        uInt before_out = s->z.avail_out;
        int ret = inflate(&s->z, Z_NO_FLUSH);
        s->in_pos = s->in_len - s->z.avail_in;
        size_t produced = before_out - s->z.avail_out;
        if (ret == Z_STREAM_END) s->member_end = 1;
        else if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR)
            return ing_err(err, errlen, s->name, "corrupt gzip data (%s)",
                           s->z.msg ? s->z.msg : "inflate failed");
        if (produced) return (ssize_t)produced;
        if (!s->member_end && s->in_pos == s->in_len && s->raw_eof)
            return ing_err(err, errlen, s->name, "truncated gzip data");
    }
}

static int do_peek(ing_src *s, char *err, size_t errlen) {
    if (s->peeked) return 0;
    while (s->pk_len < ING_SNIFF) {
        ssize_t r = dread(s, s->pk + s->pk_len, ING_SNIFF - s->pk_len, err, errlen);
        if (r < 0) return -1;
        if (r == 0) { s->eof = 1; break; }
        s->pk_len += (size_t)r;
    }
    s->peeked = 1;
    return 0;
}

static int is_url(const char *p) {
    return !strncasecmp(p, "http://", 7) || !strncasecmp(p, "https://", 8);
}

ing_src *ing_src_open(const char *path, const cr_ingest_opts *o, int doc, char *err,
                      size_t errlen) {
    ing_src *s = calloc(1, sizeof *s);
    if (!s) { ing_err(err, errlen, path, "out of memory"); return NULL; }
    s->o = o; s->doc = doc; s->fd = -1;
    s->name = strdup(strcmp(path, "-") ? path : "stdin");
    s->in = malloc(ING_RAWBUF);
    s->pk = malloc(ING_SNIFF);
    if (!s->name || !s->in || !s->pk) { ing_err(err, errlen, path, "out of memory"); goto fail; }
    if (!strcmp(path, "-")) {
        s->raw = RAW_FD; s->fd = 0;
    } else if (is_url(path)) {
        s->raw = RAW_HTTP;
        if (!(s->http = ing_http_open(path, o, doc, err, errlen))) goto fail;
    } else {
        s->raw = RAW_FD;
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) { ing_err(err, errlen, path, "%s", strerror(errno)); goto fail; }
        s->own_fd = 1;
        struct stat st;
        if (fstat(s->fd, &st) == 0) {
            if (S_ISDIR(st.st_mode)) { ing_err(err, errlen, path, "is a directory"); goto fail; }
            if (S_ISREG(st.st_mode)) {
                s->size = (uint64_t)st.st_size; s->plain_file = 1;
                (void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
            }
        }
    }
    if (raw_fill(s, 2, err, errlen)) goto fail;
    if (s->in_len >= 2 && s->in[0] == 0x1F && s->in[1] == 0x8B) {
        s->gz = 1;
        if (inflateInit2(&s->z, 15 + 16) != Z_OK) { ing_err(err, errlen, s->name, "zlib init failed"); goto fail; }
        s->z_init = 1;
    }
    if (do_peek(s, err, errlen)) goto fail;
    return s;
fail:
    ing_src_close(s);
    return NULL;
}

ssize_t ing_src_read(ing_src *s, void *buf, size_t n, char *err, size_t errlen) {
    if (s->failed) return ing_err(err, errlen, s->name, "read after error");
    if (s->pk_pos < s->pk_len) {
        size_t k = s->pk_len - s->pk_pos < n ? s->pk_len - s->pk_pos : n;
        memcpy(buf, s->pk + s->pk_pos, k);
        s->pk_pos += k;
        return (ssize_t)k;
    }
    if (s->eof) return 0;
    ssize_t r = dread(s, buf, n, err, errlen);
    if (r < 0) s->failed = 1;
    if (r == 0) s->eof = 1;
    return r;
}

int ing_src_peek(ing_src *s, const uint8_t **p, size_t *n, char *err, size_t errlen) {
    (void)err; (void)errlen;
    *p = s->pk + s->pk_pos;
    *n = s->pk_len - s->pk_pos;
    return 0;
}

const char *ing_src_local_path(const ing_src *s) {
    return s->raw == RAW_FD && s->plain_file && !s->gz ? s->name : NULL;
}
int ing_src_is_gzip(const ing_src *s) { return s->gz; }
uint64_t ing_src_bytes(const ing_src *s) { return s->raw_bytes; }
uint64_t ing_src_size(const ing_src *s) {
    return s->raw == RAW_HTTP ? ing_http_size(s->http) : s->size;
}

int ing_src_spool(ing_src *s, uint64_t max, char *err, size_t errlen) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    char tmpl[4096];
    if ((size_t)snprintf(tmpl, sizeof tmpl, "%s/cascade-read-spool-XXXXXX", dir) >= sizeof tmpl)
        return ing_err(err, errlen, s->name, "TMPDIR too long");
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) return ing_err(err, errlen, s->name, "cannot create a temp file in %s: %s", dir, strerror(errno));
    unlink(tmpl);
    uint8_t *buf = malloc(ING_RAWBUF);
    if (!buf) { close(fd); return ing_err(err, errlen, s->name, "out of memory"); }
    uint64_t total = 0;
    for (;;) {
        ssize_t r = ing_src_read(s, buf, ING_RAWBUF, err, errlen);
        if (r < 0) goto fail;
        if (r == 0) break;
        total += (uint64_t)r;
        if (total > max) {
            ing_err(err, errlen, s->name, "larger than %llu bytes (max_spool_bytes)", (unsigned long long)max);
            goto fail;
        }
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) { ing_err(err, errlen, s->name, "temp file write failed: %s", strerror(errno)); goto fail; }
            off += w;
        }
    }
    free(buf);
    if (lseek(fd, 0, SEEK_SET) != 0) { close(fd); return ing_err(err, errlen, s->name, "temp file seek failed"); }
    return fd;
fail:
    free(buf);
    close(fd);
    return -1;
}

void ing_src_close(ing_src *s) {
    if (!s) return;
    if (s->z_init) inflateEnd(&s->z);
    if (s->own_fd && s->fd >= 0) close(s->fd);
    if (s->http) ing_http_close(s->http);
    free(s->name); free(s->in); free(s->pk);
    free(s);
}
