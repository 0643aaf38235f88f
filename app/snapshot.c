/* Snapshots (.cas): container format, compression, atomic writes, validated loading.
 * See snapshot.h for the format. */
#include "snapshot.h"
#include "state_io.h"
#include "threadpool.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef CR_VERSION
#define CR_VERSION "dev"
#endif

#define SNAP_MAGIC "\x89" "CAS\r\n\x1a\n"
#define HDR_SIZE 64
#define SEC_HDR 48
#define BLK_HDR 16
#define SEC_MAGIC "CRSC"
#define BLOCK_SIZE (1u << 19)       /* uncompressed bytes per block written */
#define MAX_BLOCK_SIZE (16u << 20)
#define SHUF_PIECE 65536
#define OBUF_SIZE (1u << 20)
#define IBUF_SIZE (1u << 16)
#define WIN_BLOCKS 64                /* reader: blocks decompressed together (a window) */
#define WIN_BYTES (32u << 20)       /* ... and at most this many uncompressed bytes */
#define MAX_STR 65536               /* longest string (path, URL, title); longer ones are cut */
#define MODEL_STR 1024
#define MAX_SECTIONS 1000000

enum { SEC_MODEL = 1, SEC_CACHE, SEC_LAYER, SEC_SAMPLER, SEC_DOCS, SEC_DOCMAP, SEC_CONV, SEC_EXTRA, SEC_END = 255 };
enum { SECF_SHUFFLE = 1, SECF_Q8 = 2 };   /* SECF_Q8: a LAYER section's K/V in q8_0 (state_io.h) */
enum { CODEC_STORED = 0, CODEC_DEFLATE = 1, CODEC_PLANES = 2 };   /* CODEC_PLANES: format version 2 */
#define MIN_CHUNK 4096              /* writer: a CODEC_PLANES chunk ends at a plane boundary at least this far on */
#define MAX_CUTS (BLOCK_SIZE / MIN_CHUNK)

static const char *sec_name(uint32_t t) {
    switch (t) {
    case SEC_MODEL: return "model";
    case SEC_CACHE: return "cache";
    case SEC_LAYER: return "layer";
    case SEC_SAMPLER: return "sampler";
    case SEC_DOCS: return "documents";
    case SEC_DOCMAP: return "docmap";
    case SEC_CONV: return "conversation";
    case SEC_EXTRA: return "app-extra";
    case SEC_END: return "end";
    default: return "unknown";
    }
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap; va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }
static uint32_t crc_of(const void *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const uint8_t *b = p;
    while (n) {                                 /* zlib takes uInt lengths */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, k); b += k; n -= k;
    }
    return (uint32_t)c;
}

/* ---- byte-plane shuffle ---- */

static void shuffle(uint8_t *restrict dst, const uint8_t *restrict src, size_t n, int e) {
    size_t k = n / (size_t)e;
    if (e == 2) {
        for (size_t i = 0; i < k; i++) { dst[i] = src[2 * i]; dst[k + i] = src[2 * i + 1]; }
        return;
    }
    for (int b = 0; b < e; b++)
        for (size_t i = 0; i < k; i++) dst[(size_t)b * k + i] = src[i * e + b];
}
static void unshuffle(uint8_t *restrict dst, const uint8_t *restrict src, size_t n, int e) {
    size_t k = n / (size_t)e;
    if (e == 2) {
        for (size_t i = 0; i < k; i++) { dst[2 * i] = src[i]; dst[2 * i + 1] = src[k + i]; }
        return;
    }
    for (int b = 0; b < e; b++)
        for (size_t i = 0; i < k; i++) dst[i * e + b] = src[(size_t)b * k + i];
}

/* ---- parallel block jobs (deflate or inflate) ---- */

typedef struct {
    uint8_t *raw; size_t raw_n, raw_cap;      /* uncompressed */
    uint8_t *z; size_t z_n, z_cap;            /* stored form */
    uint32_t crc, codec;
    z_stream zs; int zs_ok;                   /* deflate or inflate stream, reused */
    z_stream zr; int zr_ok;                   /* deflate: the Z_RLE stream (chunks without long matches) */
    uint32_t cut[MAX_CUTS]; int ncut;         /* deflate: chunk boundaries in raw (plane starts), ascending */
    int bad;                                  /* inflate: 1 corrupt data, 2 CRC mismatch, 3 out of memory,
                                                 4 read error (bad_errno), 5 end of file */
    int bad_errno;
    int fd; uint64_t at;                      /* inflate: where its stored form is in the file */
    int64_t tag;                              /* deflate: its section's sequence number; inflate: its offset in the window */
} zjob;

/* Whether a chunk has long repeats within deflate's window: the bytes covered by matches of 5
 * or more found by a one-probe hash (LZ4-style), at least 1/20 of the chunk. Without them
 * LZ77 only slows inflating down (short matches), and Huffman coding alone is as small. */
static int has_matches(const uint8_t *p, size_t n) {
    uint32_t ht[4096];
    memset(ht, 0xff, sizeof ht);
    size_t m = 0, i = 0, want = n / 20 + 1;
    while (i + 5 <= n) {
        uint32_t v; memcpy(&v, p + i, 4);
        uint32_t h = (v * 2654435761u) >> 20, c = ht[h];
        ht[h] = (uint32_t)i;
        if (c != UINT32_MAX && i - c <= 32768 && !memcmp(p + c, p + i, 4) && p[c + 4] == p[i + 4]) {
            size_t L = 5;
            while (i + L < n && p[c + L] == p[i + L]) L++;
            if ((m += L) >= want) return 1;
            i += L;
            continue;
        }
        i++;
    }
    return 0;
}

/* Order-0 entropy of the bytes, in bits per byte: the size Huffman coding gets close to. */
static double entropy_bits(const uint8_t *p, size_t n) {
    uint32_t h[4][256];
    memset(h, 0, sizeof h);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { h[0][p[i]]++; h[1][p[i + 1]]++; h[2][p[i + 2]]++; h[3][p[i + 3]]++; }
    for (; i < n; i++) h[0][p[i]]++;
    double e = 0;
    for (int v = 0; v < 256; v++) {
        uint32_t c = h[0][v] + h[1][v] + h[2][v] + h[3][v];
        if (c) e -= (double)c * log2((double)c / (double)n);
    }
    return e / (double)n;
}

static z_stream *zs_deflate(z_stream *zs, int *ok, int level, int strategy) {
    if (!*ok) {
        memset(zs, 0, sizeof *zs);
        if (deflateInit2(zs, level, Z_DEFLATED, -15, 8, strategy) != Z_OK) return NULL;
        *ok = 1;
    } else {
        deflateReset(zs);
    }
    return zs;
}

/* One chunk into out (room for n bytes): deflated when that saves at least 1/8 of it (returns
 * its size, < n), else stored (a copy, returns n). Chunks with long repeats get LZ77 at the
 * level; those without, Z_RLE (Huffman coding and runs: inflates about twice as fast); those
 * whose bytes are too evenly spread for Huffman coding to save 1/8 (fp16 mantissa planes) are
 * stored without trying. */
static size_t chunk_pack(zjob *j, const uint8_t *p, size_t n, uint8_t *out, int level) {
    z_stream *zs = NULL;
    if (has_matches(p, n)) zs = zs_deflate(&j->zs, &j->zs_ok, level, Z_DEFAULT_STRATEGY);
    else if (entropy_bits(p, n) < 7.0) zs = zs_deflate(&j->zr, &j->zr_ok, level, Z_RLE);
    if (zs) {
        zs->next_in = (Bytef *)(uintptr_t)p; zs->avail_in = (uInt)n;
        zs->next_out = out; zs->avail_out = (uInt)(n - n / 8 - 1);
        if (deflate(zs, Z_FINISH) == Z_STREAM_END) return zs->total_out;
    }
    memcpy(out, p, n);
    return n;
}

static int legacy_writer;   /* tests: write format version 1 (one codec per block) */
void snapshot_test_format(int version) { legacy_writer = version == 1; }

/* Format version 1: the whole block one deflate stream, or stored. */
static void job_deflate_v1(zjob *j, int level) {
    if (level >= 0 && zs_deflate(&j->zs, &j->zs_ok, level, Z_DEFAULT_STRATEGY)) {
        j->zs.next_in = j->raw; j->zs.avail_in = (uInt)j->raw_n;
        j->zs.next_out = j->z; j->zs.avail_out = (uInt)j->z_cap;
        int r = deflate(&j->zs, Z_FINISH);
        if (r == Z_STREAM_END && j->zs.total_out < j->raw_n) {
            j->z_n = j->zs.total_out;
            j->codec = CODEC_DEFLATE;
            return;
        }
    }
    memcpy(j->z, j->raw, j->raw_n);           /* incompressible or level -1 */
    j->z_n = j->raw_n;
}

/* A block: stored when no chunk deflates, one deflate stream when it is one chunk, else
 * CODEC_PLANES: u32 chunk count, per chunk u32 size and u32 stored size (equal: stored;
 * smaller: a raw deflate stream), then the chunks' data. */
static void job_deflate(zjob *j, int level) {
    j->crc = crc_of(j->raw, j->raw_n);
    j->codec = CODEC_STORED;
    if (level >= 0 && legacy_writer) { job_deflate_v1(j, level); return; }
    const int nc = j->ncut + 1;
    const size_t tab = 4 + 8 * (size_t)nc;
    size_t o = tab, deflated = 0;
    if (level >= 0) {
        put_u32(j->z, (uint32_t)nc);
        for (int c = 0; c < nc; c++) {
            size_t a = c ? j->cut[c - 1] : 0, b = c < j->ncut ? j->cut[c] : j->raw_n;
            size_t k = chunk_pack(j, j->raw + a, b - a, j->z + o, level);
            put_u32(j->z + 4 + 8 * c, (uint32_t)(b - a)); put_u32(j->z + 8 + 8 * c, (uint32_t)k);
            deflated += k < b - a;
            o += k;
        }
    }
    if (deflated && nc > 1) {
        j->codec = CODEC_PLANES;
        j->z_n = o;
    } else if (deflated) {
        j->codec = CODEC_DEFLATE;
        j->z_n = o - tab;
        memmove(j->z, j->z + tab, j->z_n);
    } else {
        memcpy(j->z, j->raw, j->raw_n);
        j->z_n = j->raw_n;
    }
}

static z_stream *zs_inflate(zjob *j) {
    if (!j->zs_ok) {
        memset(&j->zs, 0, sizeof j->zs);
        if (inflateInit2(&j->zs, -15) != Z_OK) return NULL;
        j->zs_ok = 1;
    } else {
        inflateReset(&j->zs);
    }
    return &j->zs;
}

/* A raw deflate stream of exactly zn bytes to exactly n bytes: 0, 1 bad data, 3 out of memory. */
static int inflate_exact(zjob *j, const uint8_t *z, size_t zn, uint8_t *out, size_t n) {
    z_stream *zs = zs_inflate(j);
    if (!zs) return 3;
    zs->next_in = (Bytef *)(uintptr_t)z; zs->avail_in = (uInt)zn;
    zs->next_out = out; zs->avail_out = (uInt)n;
    int r = inflate(zs, Z_FINISH);
    return r != Z_STREAM_END || zs->avail_in != 0 || zs->total_out != n ? 1 : 0;
}

/* CODEC_PLANES: the chunk table must tile both the stored form and the block exactly. */
static int inflate_planes(zjob *j) {
    if (j->z_n < 12) return 1;
    uint64_t nc = get_u32(j->z), in = 4 + 8 * nc, out = 0;
    if (nc < 1 || nc > j->raw_n || in > j->z_n) return 1;
    for (uint64_t c = 0; c < nc; c++) {
        uint32_t su = get_u32(j->z + 4 + 8 * c), sc = get_u32(j->z + 8 + 8 * c);
        if (su == 0 || sc == 0 || sc > su || su > j->raw_n - out || sc > j->z_n - in) return 1;
        if (sc == su) memcpy(j->raw + out, j->z + in, su);
        else {
            int bad = inflate_exact(j, j->z + in, sc, j->raw + out, su);
            if (bad) return bad;
        }
        in += sc; out += su;
    }
    return in != j->z_n || out != j->raw_n;
}

static void job_inflate(zjob *j) {
    j->bad = 0;
    if (j->codec == CODEC_STORED) memcpy(j->raw, j->z, j->z_n);
    else if (j->codec == CODEC_PLANES) j->bad = inflate_planes(j);
    else j->bad = inflate_exact(j, j->z, j->z_n, j->raw, j->raw_n);
    if (!j->bad && crc_of(j->raw, j->raw_n) != j->crc) j->bad = 2;
}

static void job_free(zjob *j, int inflate) {
    if (j->zs_ok) { if (inflate) inflateEnd(&j->zs); else deflateEnd(&j->zs); }
    if (j->zr_ok) deflateEnd(&j->zr);
    free(j->raw); free(j->z);
    memset(j, 0, sizeof *j);
}

/* ---- writer ---- */

static int64_t fault_after = -1;
static int fault_errno;
void snapshot_test_fault(int64_t after, int err_no) { fault_after = after; fault_errno = err_no; }

/* The writer is a pipeline: the caller's thread serializes (and shuffles) into a ring of
 * blocks; worker threads deflate the submitted blocks, the caller's thread helps while it
 * waits; blocks are written strictly in order as soon as the oldest is done, so
 * serialization, compression and writing overlap, and memory stays at the ring's size.
 * Blocks of several consecutive sections can be in flight at once (small layers compress in
 * parallel too). A section's header is written as a placeholder before its first block and
 * patched once its last block is written. */
#define MAX_PENDING 64
typedef struct {
    uint32_t type, index, flags, crc, nblocks;
    uint64_t usize, csize, off;
    int64_t seq;                  /* section sequence number */
    int hdr_written, ended;
} wsec;

typedef struct {
    int fd;
    uint64_t off;                 /* file offset of ob[0] */
    uint8_t *ob; size_t on;
    int err_no;                   /* first error (errno), 0 = none */
    int level, shuffle, T;
    uint8_t *shuf;
    /* block ring: seq in [tail, head) submitted (done[] when compressed), head is being filled */
    zjob *jobs; int R;
    unsigned char *done;
    int64_t head, tail, taken;    /* taken: next submitted seq a thread may compress */
    pthread_mutex_t mu; pthread_cond_t cv_work, cv_done;
    int stop, nth;
    pthread_t th[64];
    /* sections not yet finished in the file, oldest first; the last may be open */
    wsec pend[MAX_PENDING]; int npend;
    int64_t sec_seq;
    uint32_t n_sections;
} swr;

static int write_all(swr *w, const uint8_t *p, size_t n, uint64_t at) {
    while (n) {
        size_t k = n;
        if (fault_after >= 0) {
            if (at >= (uint64_t)fault_after) { w->err_no = fault_errno; return -1; }
            if (at + k > (uint64_t)fault_after) k = (size_t)((uint64_t)fault_after - at);
        }
        ssize_t r = pwrite(w->fd, p, k, (off_t)at);
        if (r < 0) {
            if (errno == EINTR) continue;
            w->err_no = errno; return -1;
        }
        if (r == 0) { w->err_no = ENOSPC; return -1; }
        p += r; n -= (size_t)r; at += (uint64_t)r;
    }
    return 0;
}

static int out_flush(swr *w) {
    if (w->err_no) return -1;
    if (w->on && write_all(w, w->ob, w->on, w->off)) return -1;
    w->off += w->on; w->on = 0;
    return 0;
}

static int out_write(swr *w, const void *p, size_t n) {
    const uint8_t *b = p;
    if (w->err_no) return -1;
    while (n) {
        if (w->on == OBUF_SIZE && out_flush(w)) return -1;
        size_t k = OBUF_SIZE - w->on < n ? OBUF_SIZE - w->on : n;
        memcpy(w->ob + w->on, b, k);
        w->on += k; b += k; n -= k;
    }
    return 0;
}

/* Overwrite n bytes at file offset at (already written or still buffered). */
static int out_patch(swr *w, uint64_t at, const uint8_t *p, size_t n) {
    if (w->err_no) return -1;
    if (at < w->off) {
        size_t k = w->off - at < n ? (size_t)(w->off - at) : n;
        if (write_all(w, p, k, at)) return -1;
        at += k; p += k; n -= k;
    }
    if (n) memcpy(w->ob + (at - w->off), p, n);
    return 0;
}

static uint64_t out_pos(const swr *w) { return w->off + w->on; }

static int write_block(swr *w, wsec *p, zjob *j) {
    uint8_t h[BLK_HDR];
    put_u32(h, (uint32_t)j->raw_n); put_u32(h + 4, (uint32_t)j->z_n);
    put_u32(h + 8, j->crc); put_u32(h + 12, j->codec);
    if (out_write(w, h, sizeof h) || out_write(w, j->z, j->z_n)) return -1;
    p->crc = (uint32_t)crc32_combine(p->crc, j->crc, (z_off_t)j->raw_n);
    p->usize += j->raw_n;
    p->csize += BLK_HDR + j->z_n;
    p->nblocks++;
    return 0;
}

static int write_sec_header(swr *w, const wsec *p) {
    uint8_t h[SEC_HDR];
    memcpy(h, SEC_MAGIC, 4);
    put_u32(h + 4, p->type); put_u32(h + 8, p->index); put_u32(h + 12, p->flags);
    put_u64(h + 16, p->usize); put_u64(h + 24, p->csize);
    put_u32(h + 32, p->crc); put_u32(h + 36, p->nblocks); put_u32(h + 40, BLOCK_SIZE);
    put_u32(h + 44, crc_of(h, 44));
    return out_patch(w, p->off, h, sizeof h);
}

static int sec_placeholder(swr *w, wsec *p) {
    static const uint8_t zero[SEC_HDR];
    if (p->hdr_written) return 0;
    p->off = out_pos(w);
    p->hdr_written = 1;
    return out_write(w, zero, sizeof zero);
}

/* Finish the pending sections older than seq (all their blocks are written). */
static int sec_retire(swr *w, int64_t seq) {
    int k = 0;
    while (k < w->npend && w->pend[k].seq < seq && w->pend[k].ended) {
        if (sec_placeholder(w, &w->pend[k]) || write_sec_header(w, &w->pend[k])) return -1;
        k++;
    }
    if (k) { memmove(w->pend, w->pend + k, sizeof *w->pend * (size_t)(w->npend - k)); w->npend -= k; }
    return 0;
}

static void *deflate_worker(void *arg) {
    swr *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->taken >= w->head) pthread_cond_wait(&w->cv_work, &w->mu);
        if (w->taken >= w->head) break;           /* stop, nothing left */
        int64_t q = w->taken++;
        pthread_mutex_unlock(&w->mu);
        job_deflate(&w->jobs[q % w->R], w->level);
        pthread_mutex_lock(&w->mu);
        w->done[q % w->R] = 1;
        pthread_cond_broadcast(&w->cv_done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Submit the block being filled (jobs[head]). */
static void pipe_submit(swr *w) {
    if (!w->nth) {                                /* no workers: compress now */
        job_deflate(&w->jobs[w->head % w->R], w->level);
        w->done[w->head % w->R] = 1;
        w->head++; w->taken = w->head;
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->head++;
    pthread_cond_signal(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
}

/* Write the oldest submitted block, compressing blocks on this thread while waiting. */
static int pipe_drain_one(swr *w) {
    int slot = (int)(w->tail % w->R);
    if (w->nth) {
        pthread_mutex_lock(&w->mu);
        while (!w->done[slot]) {
            if (w->taken < w->head) {
                int64_t q = w->taken++;
                pthread_mutex_unlock(&w->mu);
                job_deflate(&w->jobs[q % w->R], w->level);
                pthread_mutex_lock(&w->mu);
                w->done[q % w->R] = 1;
                pthread_cond_broadcast(&w->cv_done);
            } else {
                pthread_cond_wait(&w->cv_done, &w->mu);
            }
        }
        pthread_mutex_unlock(&w->mu);
    }
    zjob *j = &w->jobs[slot];
    int rc = 0;
    if (!w->err_no) {
        if (sec_retire(w, j->tag)) rc = -1;
        else {
            int k = 0;
            while (k < w->npend && w->pend[k].seq != j->tag) k++;
            if (k == w->npend || sec_placeholder(w, &w->pend[k]) || write_block(w, &w->pend[k], j)) rc = -1;
        }
    } else {
        rc = -1;
    }
    j->raw_n = 0; j->ncut = 0;
    w->done[slot] = 0;
    w->tail++;
    return rc;
}

/* Write everything submitted, and finish every ended section. */
static int pipe_drain(swr *w) {
    while (w->tail < w->head) if (pipe_drain_one(w)) return -1;
    return w->err_no ? -1 : sec_retire(w, INT64_MAX);
}

static int sec_append(swr *w, const uint8_t *p, size_t n) {
    while (n) {
        if (w->err_no) return -1;
        if (w->head - w->tail == w->R && pipe_drain_one(w)) return -1;
        zjob *j = &w->jobs[w->head % w->R];
        j->tag = w->pend[w->npend - 1].seq;
        size_t k = BLOCK_SIZE - j->raw_n < n ? BLOCK_SIZE - j->raw_n : n;
        memcpy(j->raw + j->raw_n, p, k);
        j->raw_n += k; p += k; n -= k;
        if (j->raw_n == BLOCK_SIZE) pipe_submit(w);
    }
    return 0;
}

/* A chunk boundary at the block's current end (data of another kind follows: a byte plane,
 * another array), unless the chunk since the last one is shorter than MIN_CHUNK. */
static void sec_cut(swr *w) {
    if (w->head - w->tail == w->R) return;        /* the ring is full: the next block starts fresh */
    zjob *j = &w->jobs[w->head % w->R];
    size_t last = j->ncut ? j->cut[j->ncut - 1] : 0;
    if (j->raw_n - last >= MIN_CHUNK && j->ncut < (int)MAX_CUTS) j->cut[j->ncut++] = (uint32_t)j->raw_n;
}

static int sec_put(void *ctx, const void *data, size_t n, int elem) {
    swr *w = ctx;
    const uint8_t *p = data;
    sec_cut(w);
    if (!(w->pend[w->npend - 1].flags & SECF_SHUFFLE) || elem <= 1) return sec_append(w, p, n);
    if (elem > 8 || n % (size_t)elem) return -1;
    while (n) {
        size_t k = n < SHUF_PIECE ? n : SHUF_PIECE, plane = k / (size_t)elem;
        shuffle(w->shuf, p, k, elem);
        for (int b = 0; b < elem; b++) {
            if (b || p != data) sec_cut(w);
            if (sec_append(w, w->shuf + (size_t)b * plane, plane)) return -1;
        }
        p += k; n -= k;
    }
    return 0;
}

static int sec_begin(swr *w, uint32_t type, uint32_t index, uint32_t flags) {
    if (w->err_no) return -1;
    if (w->npend == MAX_PENDING && pipe_drain(w)) return -1;
    wsec *p = &w->pend[w->npend++];
    memset(p, 0, sizeof *p);
    p->type = type; p->index = index; p->flags = flags;
    p->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    p->seq = w->sec_seq++;
    return 0;
}

static int sec_end(swr *w) {
    if (w->err_no) return -1;
    w->pend[w->npend - 1].ended = 1;
    w->n_sections++;
    if (w->head - w->tail < w->R && w->jobs[w->head % w->R].raw_n) pipe_submit(w);
    return 0;
}

static int sec_bytes(swr *w, uint32_t type, const void *p, size_t n) {
    if (sec_begin(w, type, 0, 0) || sec_append(w, p, n)) return -1;
    return sec_end(w);
}

/* A growable little-endian byte buffer for the small sections. */
typedef struct { uint8_t *p; size_t n, cap; int oom; } bbuf;
static void bb_put(bbuf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        uint8_t *q = realloc(b->p, c);
        if (!q) { b->oom = 1; return; }
        b->p = q; b->cap = c;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void bb_u32(bbuf *b, uint32_t v) { uint8_t t[4]; put_u32(t, v); bb_put(b, t, 4); }
static void bb_u64(bbuf *b, uint64_t v) { uint8_t t[8]; put_u64(t, v); bb_put(b, t, 8); }
static void bb_f32(bbuf *b, float f) { uint32_t v; memcpy(&v, &f, 4); bb_u32(b, v); }
static void bb_strn(bbuf *b, const char *s, size_t max) {
    if (!s) { bb_u32(b, UINT32_MAX); return; }
    size_t n = strnlen(s, max);
    bb_u32(b, (uint32_t)n); bb_put(b, s, n);
}
static void bb_str(bbuf *b, const char *s) { bb_strn(b, s, MAX_STR); }

static void enc_model(bbuf *b, const cr_model *m) {
    bb_u64(b, m->fingerprint);
    bb_u32(b, (uint32_t)m->hp.n_layer); bb_u32(b, (uint32_t)m->hp.n_kv); bb_u32(b, (uint32_t)m->hp.head_dim);
    bb_u32(b, (uint32_t)m->hp.n_vocab); bb_u32(b, (uint32_t)m->hp.dim);
    bb_str(b, m->name); bb_str(b, m->g.path);
}

static void enc_sampler(bbuf *b, const sampler *s) {
    bb_put(b, "CRSP", 4); bb_u32(b, 1);
    bb_f32(b, s->cfg.temp); bb_u32(b, (uint32_t)s->cfg.top_k); bb_f32(b, s->cfg.top_p); bb_f32(b, s->cfg.min_p);
    bb_f32(b, s->cfg.rep_penalty); bb_u32(b, (uint32_t)s->cfg.rep_last_n); bb_u64(b, s->cfg.seed);
    bb_u64(b, s->rng); bb_u32(b, (uint32_t)s->n_vocab);
    int nh = s->cfg.rep_last_n > 0 ? s->cfg.rep_last_n : 0;
    bb_u32(b, (uint32_t)s->hist_n); bb_u32(b, (uint32_t)s->hist_pos); bb_u32(b, (uint32_t)nh);
    for (int i = 0; i < nh; i++) bb_u32(b, (uint32_t)s->hist[i]);
}

static void enc_docs(bbuf *b, const snap_doc *d, size_t n) {
    bb_put(b, "CRSD", 4); bb_u32(b, 1); bb_u64(b, n);
    for (size_t i = 0; i < n; i++) {
        bb_u64(b, d[i].size); bb_u64(b, d[i].offset); bb_u64(b, d[i].tokens); bb_u64(b, d[i].tok_first);
        bb_u32(b, d[i].flags);
        bb_str(b, d[i].path ? d[i].path : ""); bb_str(b, d[i].title);
        bb_strn(b, d[i].hash, SNAP_HASH_MAX - 1);
    }
}

static int fsync_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int snapshot_save(const char *path, const snap_content *c, char *err, size_t errlen) {
    if (!c || !c->st || !c->st->m || !c->st->heads) { seterr(err, errlen, "cannot save snapshot %s: no inference state", path); return -1; }
    const cr_state *st = c->st;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) { seterr(err, errlen, "cannot save snapshot %s: out of memory", path); return -1; }
    memcpy(tmp, path, plen); memcpy(tmp + plen, ".tmp", 5);

    swr w;
    memset(&w, 0, sizeof w);
    w.fd = -1;
    w.level = c->level == 0 ? 1 : c->level < 0 ? -1 : c->level > 9 ? 9 : c->level;
    w.shuffle = !c->no_shuffle;
    w.T = c->n_threads > 0 ? c->n_threads : tp_threads(st->tp);
    if (w.T < 1) w.T = 1;
    if (w.T > 64) w.T = 64;
    const char *stage = NULL;   /* set for failures that are not I/O errors */
    int rc = -1, created = 0, sync_ok = 0, restore_xfsz = 0;
    struct sigaction old_xfsz_saved;
    bbuf b = {0};
    w.ob = malloc(OBUF_SIZE);
    w.shuf = malloc(SHUF_PIECE);
    w.R = w.T + 4;                /* T compressing, one being filled, spares for uneven blocks */
    w.jobs = calloc((size_t)w.R, sizeof *w.jobs);
    w.done = calloc((size_t)w.R, 1);
    if (!w.ob || !w.shuf || !w.jobs || !w.done) { stage = "out of memory"; goto done; }
    for (int i = 0; i < w.R; i++) {
        w.jobs[i].raw_cap = BLOCK_SIZE;
        w.jobs[i].z_cap = compressBound(BLOCK_SIZE) + 4 + 8 * (MAX_CUTS + 1);
        w.jobs[i].raw = malloc(w.jobs[i].raw_cap);
        w.jobs[i].z = malloc(w.jobs[i].z_cap);
        if (!w.jobs[i].raw || !w.jobs[i].z) { stage = "out of memory"; goto done; }
    }

    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv_work, NULL);
    pthread_cond_init(&w.cv_done, NULL);
    sync_ok = 1;
    for (int i = 1; i < w.T; i++) {
        if (pthread_create(&w.th[w.nth], NULL, deflate_worker, &w)) break;
        w.nth++;
    }

    /* A file size limit must give EFBIG, not kill the process (unless the app handles SIGXFSZ). */
    if (sigaction(SIGXFSZ, NULL, &old_xfsz_saved) == 0 && !(old_xfsz_saved.sa_flags & SA_SIGINFO) &&
        old_xfsz_saved.sa_handler == SIG_DFL) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        if (sigaction(SIGXFSZ, &ign, NULL) == 0) restore_xfsz = 1;
    }

    if (unlink(tmp) && errno != ENOENT) { w.err_no = errno; goto done; }
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (w.fd < 0) { w.err_no = errno; goto done; }
    created = 1;
    struct stat old;
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode)) (void)fchmod(w.fd, old.st_mode & 07777);

    /* header */
    uint8_t h[HDR_SIZE] = {0};
    memcpy(h, SNAP_MAGIC, 8);
    put_u32(h + 8, legacy_writer ? 1 : SNAP_FORMAT_VERSION); put_u32(h + 12, HDR_SIZE);
    snprintf((char *)h + 16, 24, "%s", CR_VERSION);
    put_u64(h + 40, (uint64_t)time(NULL));
    put_u32(h + 60, crc_of(h, 60));
    if (out_write(&w, h, sizeof h)) goto done;

    enc_model(&b, st->m);
    if (b.oom) { stage = "out of memory"; goto done; }
    if (sec_bytes(&w, SEC_MODEL, b.p, b.n)) goto done;

    cr_ostream os = {&w, sec_put};
    if (sec_begin(&w, SEC_CACHE, 0, 0) || state_write_meta(st, &os) || sec_end(&w)) goto done;
    const int q8 = c->quant == SNAP_QUANT_Q8;
    for (int l = 0; l < st->m->hp.n_layer; l++)
        if (sec_begin(&w, SEC_LAYER, (uint32_t)l, (w.shuffle ? SECF_SHUFFLE : 0) | (q8 ? SECF_Q8 : 0)) ||
            state_write_layer_q(st, l, q8 ? STATE_QUANT_Q8 : STATE_QUANT_NONE, &os) || sec_end(&w)) {
            if (!w.err_no) stage = "cannot serialize the cache";
            goto done;
        }
    if (c->samp) {
        b.n = 0; enc_sampler(&b, c->samp);
        if (b.oom) { stage = "out of memory"; goto done; }
        if (sec_bytes(&w, SEC_SAMPLER, b.p, b.n)) goto done;
    }
    b.n = 0; enc_docs(&b, c->docs, c->docs ? c->n_docs : 0);
    if (b.oom) { stage = "out of memory"; goto done; }
    if (sec_bytes(&w, SEC_DOCS, b.p, b.n)) goto done;
    if (c->docmap_len && sec_bytes(&w, SEC_DOCMAP, c->docmap, c->docmap_len)) goto done;
    if (c->conv_len && sec_bytes(&w, SEC_CONV, c->conv, c->conv_len)) goto done;
    if (c->extra_len && sec_bytes(&w, SEC_EXTRA, c->extra, c->extra_len)) goto done;
    {
        uint8_t e[12];
        if (pipe_drain(&w)) goto done;        /* everything before END is in place */
        uint64_t end_off = out_pos(&w);
        put_u32(e, w.n_sections); put_u64(e + 4, end_off);
        if (sec_bytes(&w, SEC_END, e, sizeof e)) goto done;
    }
    if (pipe_drain(&w) || out_flush(&w)) goto done;
    if (fsync(w.fd)) { w.err_no = errno; goto done; }
    int fd = w.fd; w.fd = -1;
    if (close(fd)) { w.err_no = errno; goto done; }
    if (rename(tmp, path)) { w.err_no = errno; goto done; }
    (void)fsync_dir(path);   /* durability of the rename; the new snapshot is in place either way */
    rc = 0;
done:
    if (rc) {
        if (w.fd >= 0) close(w.fd);
        if (created) unlink(tmp);
        int existed = access(path, F_OK) == 0;
        seterr(err, errlen, "cannot save snapshot %s: %s%s", path,
               stage ? stage : strerror(w.err_no ? w.err_no : EIO),
               existed ? "; the previous snapshot is unchanged" : "");
    }
    if (restore_xfsz) sigaction(SIGXFSZ, &old_xfsz_saved, NULL);
    if (sync_ok) {
        pthread_mutex_lock(&w.mu);
        w.stop = 1;
        pthread_cond_broadcast(&w.cv_work);
        pthread_mutex_unlock(&w.mu);
        for (int i = 0; i < w.nth; i++) pthread_join(w.th[i], NULL);
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv_work);
        pthread_cond_destroy(&w.cv_done);
    }
    if (w.jobs) for (int i = 0; i < w.R; i++) job_free(&w.jobs[i], 0);
    free(w.jobs); free(w.done); free(w.ob); free(w.shuf); free(b.p); free(tmp);
    return rc;
}

/* ---- reader ---- */

typedef struct {
    int fd; const char *path;
    uint64_t fsize;
    uint64_t off;                  /* file offset of the next unread byte */
    uint8_t ib[IBUF_SIZE]; size_t ipos, ilen;
    int T;
    char *err; size_t errlen;
    int failed;
    uint32_t version;              /* the file's format version (CODEC_PLANES from 2 on) */
    /* current section */
    uint64_t sec_off;
    uint32_t type, index, flags, crc, nblocks, block_size;
    uint64_t usize, csize;
    uint32_t blocks_left; uint64_t payload_left, produced; uint32_t crc_acc;
    /* the window: the next blocks of the section, decompressed in parallel into one buffer */
    zjob *jobs; int R;             /* R block jobs; their raw points into win while inflating */
    uint8_t *win; size_t win_cap, wlen, wpos;
    /* the window after it, inflated while this one is unshuffled (nxt_n jobs in jobs2 / win2,
     * nxt_total bytes, the section's block nxt_first first); sec_fill takes it over */
    zjob *jobs2; uint8_t *win2; size_t win2_cap;
    int nxt_n; size_t nxt_total; uint32_t nxt_first;
    threadpool *pool;              /* T threads (NULL: 1) for inflating and unshuffling */
    uint8_t *shuf;
} srd;

static int rfail(srd *r, const char *fmt, ...) {
    if (r->failed) return -1;
    r->failed = 1;
    char msg[400];
    va_list ap; va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    seterr(r->err, r->errlen, "%s: %s", r->path, msg);
    return -1;
}

static const char *sec_label(const srd *r, char *buf, size_t n) {
    if (r->type == SEC_LAYER) snprintf(buf, n, "layer %u", (unsigned)r->index);
    else snprintf(buf, n, "%s", sec_name(r->type));
    return buf;
}

/* Raw file bytes, buffered. */
static int in_read(srd *r, void *p, size_t n) {
    uint8_t *b = p;
    if (r->failed) return -1;
    while (n) {
        if (r->ipos == r->ilen) {
            if (n >= IBUF_SIZE) {         /* large reads go straight to the caller */
                ssize_t k = pread(r->fd, b, n, (off_t)r->off);
                if (k < 0 && errno == EINTR) continue;
                if (k < 0) return rfail(r, "read error: %s", strerror(errno));
                if (k == 0) return rfail(r, "truncated snapshot (unexpected end of file at byte %llu)", (unsigned long long)r->off);
                r->off += (uint64_t)k; b += k; n -= (size_t)k;
                continue;
            }
            ssize_t k = pread(r->fd, r->ib, IBUF_SIZE, (off_t)r->off);
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) return rfail(r, "read error: %s", strerror(errno));
            if (k == 0) return rfail(r, "truncated snapshot (unexpected end of file at byte %llu)", (unsigned long long)r->off);
            r->ipos = 0; r->ilen = (size_t)k;
        }
        size_t k = r->ilen - r->ipos < n ? r->ilen - r->ipos : n;
        memcpy(b, r->ib + r->ipos, k);
        r->ipos += k; r->off += k; b += k; n -= k;
    }
    return 0;
}

static void in_skip(srd *r, uint64_t n) {
    uint64_t inbuf = r->ilen - r->ipos;
    if (n <= inbuf) { r->ipos += (size_t)n; r->off += n; return; }
    r->off += n;
    r->ipos = r->ilen = 0;
}

/* Reads and validates a section header (not its payload). */
static int sec_open(srd *r) {
    uint8_t h[SEC_HDR];
    r->sec_off = r->off;
    if (r->fsize - r->off < SEC_HDR)
        return rfail(r, "truncated snapshot (%llu bytes at offset %llu where a section header was expected)",
                     (unsigned long long)(r->fsize - r->off), (unsigned long long)r->off);
    if (in_read(r, h, sizeof h)) return -1;
    if (memcmp(h, SEC_MAGIC, 4)) return rfail(r, "corrupt snapshot (no section header at offset %llu)", (unsigned long long)r->sec_off);
    if (get_u32(h + 44) != crc_of(h, 44)) return rfail(r, "corrupt snapshot (section header checksum mismatch at offset %llu)", (unsigned long long)r->sec_off);
    r->type = get_u32(h + 4); r->index = get_u32(h + 8); r->flags = get_u32(h + 12);
    r->usize = get_u64(h + 16); r->csize = get_u64(h + 24);
    r->crc = get_u32(h + 32); r->nblocks = get_u32(h + 36); r->block_size = get_u32(h + 40);
    char lb[32];
    sec_label(r, lb, sizeof lb);
    if (r->csize > r->fsize - r->off)
        return rfail(r, "truncated snapshot (section %s needs %llu bytes, the file has %llu left)", lb,
                     (unsigned long long)r->csize, (unsigned long long)(r->fsize - r->off));
    if (r->block_size < 4096 || r->block_size > MAX_BLOCK_SIZE || (r->block_size & (r->block_size - 1)))
        return rfail(r, "corrupt snapshot (section %s: bad block size %u)", lb, (unsigned)r->block_size);
    if ((uint64_t)r->nblocks * BLK_HDR > r->csize || r->usize > (uint64_t)r->nblocks * r->block_size ||
        (r->usize == 0) != (r->nblocks == 0) || (r->flags & ~(uint32_t)(SECF_SHUFFLE | SECF_Q8)) ||
        ((r->flags & SECF_Q8) && r->type != SEC_LAYER))
        return rfail(r, "corrupt snapshot (section %s: inconsistent sizes)", lb);
    r->blocks_left = r->nblocks; r->payload_left = r->csize; r->produced = 0;
    r->crc_acc = (uint32_t)crc32(0L, Z_NULL, 0);
    r->wlen = r->wpos = 0;
    r->nxt_n = 0;
    return 0;
}

static int grow(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    uint8_t *q = realloc(*p, need);
    if (!q) return -1;
    *p = q; *cap = need;
    return 0;
}

/* Each job reads its own stored form (so that reading is parallel too), then inflates it. */
static void inflate_fn(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    for (int64_t i = b; i < e; i++) {
        zjob *j = &((zjob *)ctx)[i];
        size_t got = 0;
        while (got < j->z_n) {
            ssize_t k = pread(j->fd, j->z + got, j->z_n - got, (off_t)(j->at + got));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) { j->bad = k < 0 ? 4 : 5; j->bad_errno = errno; break; }
            got += (size_t)k;
        }
        if (got == j->z_n) job_inflate(j);
    }
}

static size_t win_bytes = WIN_BYTES;
void snapshot_test_window(size_t bytes) { win_bytes = bytes ? bytes : WIN_BYTES; }

/* Reads the headers of the section's next blocks (up to R, WIN_BYTES) and sets up their jobs
 * (stored form at j->at, raw pointing into *win) without inflating them. */
static int win_prepare(srd *r, zjob *jobs, uint8_t **win, size_t *win_cap, int *n_out, size_t *total_out) {
    char lb[32];
    sec_label(r, lb, sizeof lb);
    int n = 0;
    size_t total = 0;
    while (n < r->R && r->blocks_left && (n == 0 || total + r->block_size <= win_bytes)) {
        zjob *j = &jobs[n];
        uint8_t h[BLK_HDR];
        if (r->payload_left < BLK_HDR) return rfail(r, "corrupt snapshot (section %s: blocks overrun the section)", lb);
        if (r->ipos == r->ilen) {        /* the block follows: read just its header */
            ssize_t k;
            do k = pread(r->fd, h, sizeof h, (off_t)r->off); while (k < 0 && errno == EINTR);
            if (k < 0) return rfail(r, "read error: %s", strerror(errno));
            if (k != (ssize_t)sizeof h) return rfail(r, "truncated snapshot (unexpected end of file at byte %llu)", (unsigned long long)r->off);
            r->off += sizeof h;
        } else if (in_read(r, h, sizeof h)) return -1;
        r->payload_left -= BLK_HDR;
        uint32_t us = get_u32(h), cs = get_u32(h + 4), codec = get_u32(h + 12);
        j->crc = get_u32(h + 8);
        if (us == 0 || us > r->block_size || cs > r->payload_left || codec > (r->version >= 2 ? CODEC_PLANES : CODEC_DEFLATE) ||
            (codec == CODEC_STORED && cs != us) || (codec == CODEC_DEFLATE && (cs == 0 || cs > compressBound(r->block_size))) ||
            (codec == CODEC_PLANES && (cs < 12 || cs > 4 + 9 * (uint64_t)us)) ||
            r->produced + us > r->usize)
            return rfail(r, "corrupt snapshot (section %s: bad block header)", lb);
        if (grow(&j->z, &j->z_cap, cs)) return rfail(r, "out of memory");
        j->fd = r->fd; j->at = r->off;         /* read by the job */
        in_skip(r, cs);
        r->payload_left -= cs;
        j->raw_n = us; j->z_n = cs; j->codec = codec;
        j->tag = (int64_t)total;
        total += us;
        r->produced += us;
        r->blocks_left--;
        n++;
    }
    if (!n) return rfail(r, "corrupt snapshot (section %s is shorter than its content)", lb);
    if (grow(win, win_cap, total)) return rfail(r, "out of memory");
    for (int i = 0; i < n; i++) jobs[i].raw = *win + jobs[i].tag;
    *n_out = n; *total_out = total;
    return 0;
}

/* After the jobs ran: their errors (first = the section's index of block 0), the CRC. */
static int win_finish(srd *r, zjob *jobs, int n, uint32_t first) {
    char lb[32];
    sec_label(r, lb, sizeof lb);
    for (int i = 0; i < n; i++) {
        zjob *j = &jobs[i];
        j->raw = NULL;
        if (j->bad == 3) return rfail(r, "out of memory");
        if (j->bad == 4) return rfail(r, "read error: %s", strerror(j->bad_errno));
        if (j->bad == 5) return rfail(r, "truncated snapshot (unexpected end of file at byte %llu)", (unsigned long long)j->at);
        if (j->bad) return rfail(r, "corrupt snapshot (section %s: %s in block %u)", lb,
                                 j->bad == 1 ? "bad compressed data" : "checksum mismatch", (unsigned)(first + (uint32_t)i));
        r->crc_acc = (uint32_t)crc32_combine(r->crc_acc, j->crc, (z_off_t)j->raw_n);
    }
    return 0;
}

/* The next window: the one inflated ahead if there is one, else the next blocks, read and
 * inflated in parallel. */
static int sec_fill(srd *r) {
    int n;
    size_t total;
    uint32_t first;
    if (r->nxt_n) {
        zjob *tj = r->jobs; r->jobs = r->jobs2; r->jobs2 = tj;
        uint8_t *tw = r->win; r->win = r->win2; r->win2 = tw;
        size_t tc = r->win_cap; r->win_cap = r->win2_cap; r->win2_cap = tc;
        n = r->nxt_n; total = r->nxt_total; first = r->nxt_first;
        r->nxt_n = 0;
    } else {
        first = r->nblocks - r->blocks_left;
        if (win_prepare(r, r->jobs, &r->win, &r->win_cap, &n, &total)) return -1;
        if (r->pool && n > 1) tp_for(r->pool, n, 1, inflate_fn, r->jobs);
        else inflate_fn(r->jobs, 0, n, 0);
    }
    if (win_finish(r, r->jobs, n, first)) return -1;
    r->wlen = total; r->wpos = 0;
    return 0;
}

static int sec_read(srd *r, void *p, size_t n) {
    uint8_t *b = p;
    while (n) {
        if (r->failed) return -1;
        if (r->wpos >= r->wlen && sec_fill(r)) return -1;
        size_t k = r->wlen - r->wpos < n ? r->wlen - r->wpos : n;
        memcpy(b, r->win + r->wpos, k);
        r->wpos += k; b += k; n -= k;
    }
    return 0;
}

/* Unshuffling pieces of the window, and (items [0, n_inflate), taken first: they are the
 * long ones) inflating the next window's blocks in the same parallel loop. */
typedef struct { uint8_t *dst; const uint8_t *src; size_t n; int elem; zjob *inflate; int64_t n_inflate; } unshuf_job;
static void unshuffle_fn(void *ctx, int64_t b, int64_t e, int tid) {
    const unshuf_job *u = ctx;
    for (int64_t i = b; i < e; i++) {
        if (i < u->n_inflate) { inflate_fn(u->inflate, i, i + 1, tid); continue; }
        size_t o = (size_t)(i - u->n_inflate) * SHUF_PIECE, k = u->n - o < SHUF_PIECE ? u->n - o : SHUF_PIECE;
        unshuffle(u->dst + o, u->src + o, k, u->elem);
    }
}

static int sec_get(void *ctx, void *data, size_t n, int elem) {
    srd *r = ctx;
    uint8_t *p = data;
    if (!(r->flags & SECF_SHUFFLE) || elem <= 1) return sec_read(r, p, n);
    if (elem > 8 || n % (size_t)elem) return -1;
    while (n) {
        /* whole pieces inside the window: unshuffled straight from it, in parallel */
        if (r->failed) return -1;
        if (r->wpos >= r->wlen && sec_fill(r)) return -1;
        size_t avail = r->wlen - r->wpos, whole = n <= avail ? n : avail / SHUF_PIECE * SHUF_PIECE;
        if (whole >= 2 * SHUF_PIECE && r->pool) {
            unshuf_job u = {p, r->win + r->wpos, whole, elem, NULL, 0};
            if (!r->nxt_n && r->blocks_left) {   /* the next window inflates meanwhile */
                r->nxt_first = r->nblocks - r->blocks_left;
                if (win_prepare(r, r->jobs2, &r->win2, &r->win2_cap, &r->nxt_n, &r->nxt_total)) { r->nxt_n = 0; return -1; }
                u.inflate = r->jobs2; u.n_inflate = r->nxt_n;
            }
            tp_for(r->pool, u.n_inflate + (int64_t)((whole + SHUF_PIECE - 1) / SHUF_PIECE), 1, unshuffle_fn, &u);
            r->wpos += whole; p += whole; n -= whole;
            continue;
        }
        size_t k = n < SHUF_PIECE ? n : SHUF_PIECE;
        if (sec_read(r, r->shuf, k)) return -1;
        unshuffle(p, r->shuf, k, elem);
        p += k; n -= k;
    }
    return 0;
}

/* The section's content was consumed: nothing may be left, and the CRC must match. */
static int sec_close(srd *r) {
    char lb[32];
    sec_label(r, lb, sizeof lb);
    if (r->failed) return -1;
    if (r->wpos < r->wlen || r->nxt_n || r->blocks_left || r->payload_left || r->produced != r->usize)
        return rfail(r, "corrupt snapshot (section %s is longer than its content)", lb);
    if (r->crc_acc != r->crc) return rfail(r, "corrupt snapshot (section %s: checksum mismatch)", lb);
    return 0;
}

static void sec_skip(srd *r) {
    in_skip(r, r->payload_left);
    r->payload_left = 0;
}

/* The whole (small) section into memory; max caps its size. */
static int sec_slurp(srd *r, uint64_t max, uint8_t **out, size_t *len) {
    char lb[32];
    *out = NULL; *len = 0;
    if (r->usize > max) return rfail(r, "corrupt snapshot (section %s: %llu bytes is too large)", sec_label(r, lb, sizeof lb), (unsigned long long)r->usize);
    uint8_t *p = NULL; size_t cap = 0, n = 0;
    while (n < r->usize) {
        size_t k = r->usize - n < (1u << 20) ? (size_t)(r->usize - n) : (1u << 20);
        if (n + k > cap) {
            size_t c = cap ? cap * 2 : k;
            if (c < n + k) c = n + k;
            if (c > r->usize) c = (size_t)r->usize;
            uint8_t *q = realloc(p, c);
            if (!q) { free(p); return rfail(r, "out of memory"); }
            p = q; cap = c;
        }
        if (sec_read(r, p + n, k)) { free(p); return -1; }
        n += k;
    }
    if (sec_close(r)) { free(p); return -1; }
    *out = p; *len = n;
    return 0;
}

/* Cursor over a decoded small section. */
typedef struct { const uint8_t *p; size_t n, i; int bad; } cur;
static const uint8_t *cu_take(cur *c, size_t k) {
    if (c->bad || c->n - c->i < k) { c->bad = 1; return NULL; }
    const uint8_t *q = c->p + c->i;
    c->i += k;
    return q;
}
static uint32_t cu_u32(cur *c) { const uint8_t *q = cu_take(c, 4); return q ? get_u32(q) : 0; }
static uint64_t cu_u64(cur *c) { const uint8_t *q = cu_take(c, 8); return q ? get_u64(q) : 0; }
static float cu_f32(cur *c) { uint32_t v = cu_u32(c); float f; memcpy(&f, &v, 4); return f; }
/* String: NULL for the NULL marker; allocated copy (or written into buf when buf). */
static char *cu_str(cur *c, int *is_null, char *buf, size_t bufn) {
    uint32_t n = cu_u32(c);
    *is_null = 0;
    if (c->bad) return NULL;
    if (n == UINT32_MAX) { *is_null = 1; if (buf && bufn) buf[0] = 0; return NULL; }
    if (n > MAX_STR) { c->bad = 1; return NULL; }
    const uint8_t *q = cu_take(c, n);
    if (!q || memchr(q, 0, n)) { c->bad = 1; return NULL; }
    if (buf) {
        if (n >= bufn) { c->bad = 1; return NULL; }
        memcpy(buf, q, n); buf[n] = 0;
        return buf;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) { c->bad = 1; return NULL; }
    memcpy(s, q, n); s[n] = 0;
    return s;
}

typedef struct {
    uint64_t fp; uint32_t n_layer, n_kv, head_dim, n_vocab, dim;
    char name[MODEL_STR], file[MODEL_STR];
} model_rec;

static int dec_model(const uint8_t *p, size_t n, model_rec *m) {
    cur c = {p, n, 0, 0};
    int nul;
    m->fp = cu_u64(&c);
    m->n_layer = cu_u32(&c); m->n_kv = cu_u32(&c); m->head_dim = cu_u32(&c); m->n_vocab = cu_u32(&c); m->dim = cu_u32(&c);
    cu_str(&c, &nul, m->name, sizeof m->name);
    if (nul) m->name[0] = 0;
    cu_str(&c, &nul, m->file, sizeof m->file);
    if (nul) m->file[0] = 0;
    return c.bad || c.i != n ? -1 : 0;
}

static int dec_sampler(const uint8_t *p, size_t n, const cr_model *m, sampler **out, char *why, size_t whyn) {
    cur c = {p, n, 0, 0};
    const uint8_t *mg = cu_take(&c, 4);
    if (!mg || memcmp(mg, "CRSP", 4) || cu_u32(&c) != 1) { seterr(why, whyn, "bad sampler record"); return -1; }
    sampler_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.temp = cu_f32(&c); cfg.top_k = (int)cu_u32(&c); cfg.top_p = cu_f32(&c); cfg.min_p = cu_f32(&c);
    cfg.rep_penalty = cu_f32(&c); cfg.rep_last_n = (int)cu_u32(&c); cfg.seed = cu_u64(&c);
    uint64_t rng = cu_u64(&c);
    uint32_t nv = cu_u32(&c), hn = cu_u32(&c), hp = cu_u32(&c), nh = cu_u32(&c);
    if (c.bad) { seterr(why, whyn, "truncated sampler record"); return -1; }
    if (!isfinite(cfg.temp) || !isfinite(cfg.top_p) || !isfinite(cfg.min_p) || !isfinite(cfg.rep_penalty) ||
        cfg.rep_last_n > (1 << 24) || rng == 0) { seterr(why, whyn, "bad sampler settings"); return -1; }
    if (m && nv != (uint32_t)m->hp.n_vocab) { seterr(why, whyn, "sampler vocabulary %u, the model has %d", (unsigned)nv, m->hp.n_vocab); return -1; }
    if (nv < 1 || nv > (1u << 26)) { seterr(why, whyn, "bad sampler vocabulary %u", (unsigned)nv); return -1; }
    uint32_t want = cfg.rep_last_n > 0 ? (uint32_t)cfg.rep_last_n : 0;
    if (nh != want || hn > want || hp >= (want ? want : 1) || c.n - c.i != (size_t)nh * 4) {
        seterr(why, whyn, "bad sampler history"); return -1;
    }
    sampler *s = calloc(1, sizeof *s);
    if (!s || sampler_init(s, &cfg, (int)nv)) {
        if (s) sampler_free(s);
        free(s);
        seterr(why, whyn, "out of memory"); return -1;
    }
    s->rng = rng; s->hist_n = (int)hn; s->hist_pos = (int)hp;
    for (uint32_t i = 0; i < nh; i++) s->hist[i] = (int32_t)cu_u32(&c);
    *out = s;
    return 0;
}

static void docs_free(snap_doc *d, size_t n) {
    for (size_t i = 0; d && i < n; i++) { free(d[i].path); free(d[i].title); }
    free(d);
}

static int dec_docs(const uint8_t *p, size_t n, snap_doc **out, size_t *nout) {
    cur c = {p, n, 0, 0};
    const uint8_t *mg = cu_take(&c, 4);
    if (!mg || memcmp(mg, "CRSD", 4) || cu_u32(&c) != 1) return -1;
    uint64_t cnt = cu_u64(&c);
    if (c.bad || cnt > (n - c.i) / 48) return -1;
    snap_doc *d = calloc(cnt ? (size_t)cnt : 1, sizeof *d);
    if (!d) return -1;
    for (uint64_t i = 0; i < cnt && !c.bad; i++) {
        int nul;
        d[i].size = cu_u64(&c); d[i].offset = cu_u64(&c); d[i].tokens = cu_u64(&c); d[i].tok_first = cu_u64(&c);
        d[i].flags = cu_u32(&c);
        d[i].path = cu_str(&c, &nul, NULL, 0);
        if (!c.bad && !d[i].path) c.bad = 1;           /* path is never NULL */
        d[i].title = cu_str(&c, &nul, NULL, 0);
        cu_str(&c, &nul, d[i].hash, sizeof d[i].hash);
        if (!c.bad && nul) c.bad = 1;
    }
    if (c.bad || c.i != n) { docs_free(d, (size_t)cnt); return -1; }
    *out = d; *nout = (size_t)cnt;
    return 0;
}

static int rd_open(srd *r, const char *path, char *err, size_t errlen, uint8_t *hdr) {
    memset(r, 0, sizeof *r);
    r->path = path; r->err = err; r->errlen = errlen;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) { int e = errno; r->fd = -1; return rfail(r, "cannot open snapshot: %s", strerror(e)); }
    struct stat sb;
    if (fstat(r->fd, &sb)) return rfail(r, "cannot stat snapshot: %s", strerror(errno));
    if (!S_ISREG(sb.st_mode)) return rfail(r, "not a regular file");
    r->fsize = (uint64_t)sb.st_size;
    if (r->fsize < 8) return rfail(r, "not a cascade-read snapshot (%llu bytes)", (unsigned long long)r->fsize);
    if (in_read(r, hdr, 8)) return -1;
    if (memcmp(hdr, SNAP_MAGIC, 8)) return rfail(r, "not a cascade-read snapshot (bad magic)");
    if (r->fsize < HDR_SIZE) return rfail(r, "truncated snapshot (%llu bytes)", (unsigned long long)r->fsize);
    if (in_read(r, hdr + 8, HDR_SIZE - 8)) return -1;
    uint32_t ver = get_u32(hdr + 8);
    char wv[25]; memcpy(wv, hdr + 16, 24); wv[24] = 0;
    for (char *q = wv; *q; q++) if ((unsigned char)*q < 32 || (unsigned char)*q > 126) *q = '?';
    if (ver < 1 || ver > SNAP_FORMAT_VERSION)
        return rfail(r, "snapshot format version %u (written by cascade-read %s) is not supported; cascade-read %s reads versions 1 to %d",
                     (unsigned)ver, wv, CR_VERSION, SNAP_FORMAT_VERSION);
    r->version = ver;
    if (get_u32(hdr + 60) != crc_of(hdr, 60) || get_u32(hdr + 12) != HDR_SIZE)
        return rfail(r, "corrupt snapshot (header checksum mismatch)");
    return 0;
}

static int rd_setup(srd *r, int T) {
    r->T = T < 1 ? 1 : T > 64 ? 64 : T;
    r->R = WIN_BLOCKS;
    r->jobs = calloc((size_t)r->R, sizeof *r->jobs);
    r->jobs2 = calloc((size_t)r->R, sizeof *r->jobs2);
    r->shuf = malloc(SHUF_PIECE);
    r->pool = r->T > 1 ? tp_create(r->T) : NULL;
    if (!r->jobs || !r->jobs2 || !r->shuf || (r->T > 1 && !r->pool)) return rfail(r, "out of memory");
    return 0;
}

static void rd_close(srd *r) {
    if (r->jobs) for (int i = 0; i < r->R; i++) job_free(&r->jobs[i], 1);
    if (r->jobs2) for (int i = 0; i < r->R; i++) job_free(&r->jobs2[i], 1);
    if (r->pool) tp_destroy(r->pool);
    free(r->jobs); free(r->jobs2); free(r->shuf); free(r->win); free(r->win2);
    r->pool = NULL; r->win = r->win2 = NULL; r->win_cap = r->win2_cap = 0;
    if (r->fd >= 0) close(r->fd);
    r->jobs = r->jobs2 = NULL; r->shuf = NULL; r->fd = -1;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

void snap_content_free(snap_content *c) {
    if (!c) return;
    docs_free(c->docs, c->n_docs);
    free(c->docmap); free(c->conv); free(c->extra);
    if (c->samp) { sampler_free(c->samp); free(c->samp); }
    memset(c, 0, sizeof *c);
}

int snapshot_load(const char *path, const cr_model *m, snap_content *out, cr_state *st, char *err, size_t errlen) {
    srd r;
    uint8_t hdr[HDR_SIZE];
    snap_content res;
    memset(&res, 0, sizeof res);
    memset(out, 0, sizeof *out);
    cr_state tmp;
    memset(&tmp, 0, sizeof tmp);
    cr_state *target = NULL;
    int inplace = 0, rc = -1;
    uint8_t *buf = NULL; size_t len = 0;
    char why[300];
    int T = st->tp ? tp_threads(st->tp) : tp_default_threads();
    if (rd_open(&r, path, err, errlen, hdr) || rd_setup(&r, T)) goto done;
    memcpy(res.writer, hdr + 16, 23); res.writer[23] = 0;
    res.created = (int64_t)get_u64(hdr + 40);
    res.file_bytes = r.fsize;

    /* model */
    if (sec_open(&r)) goto done;
    if (r.type != SEC_MODEL) { rfail(&r, "corrupt snapshot (first section is %s, expected model)", sec_name(r.type)); goto done; }
    if (sec_slurp(&r, 2 * MODEL_STR + 64, &buf, &len)) goto done;
    {
        model_rec *pm = malloc(sizeof *pm);
        if (!pm) { rfail(&r, "out of memory"); goto done; }
        if (dec_model(buf, len, pm)) { free(pm); rfail(&r, "corrupt snapshot (bad model record)"); goto done; }
        if (pm->fp != m->fingerprint) {
            rfail(&r, "snapshot was made with model '%s' (%s, fingerprint %016llx), not with the loaded model '%s' (%s, fingerprint %016llx)",
                  pm->name, base_name(pm->file), (unsigned long long)pm->fp, m->name, base_name(m->g.path),
                  (unsigned long long)m->fingerprint);
            free(pm); goto done;
        }
        if (pm->n_layer != (uint32_t)m->hp.n_layer || pm->n_kv != (uint32_t)m->hp.n_kv || pm->head_dim != (uint32_t)m->hp.head_dim) {
            rfail(&r, "snapshot model shape %u x %u x %u does not match model '%s'", (unsigned)pm->n_layer, (unsigned)pm->n_kv,
                  (unsigned)pm->head_dim, m->name);
            free(pm); goto done;
        }
        free(pm);
    }
    free(buf); buf = NULL;

    /* cache configuration and control state */
    state_meta meta;
    if (sec_open(&r)) goto done;
    if (r.type != SEC_CACHE) { rfail(&r, "corrupt snapshot (section %s where the cache section was expected)", sec_name(r.type)); goto done; }
    cr_istream is = {&r, sec_get};
    if (r.usize > STATE_META_MAX_BYTES) { rfail(&r, "corrupt snapshot (cache section too large)"); goto done; }
    if (state_read_meta(&is, &meta, why, sizeof why)) { if (!r.failed) rfail(&r, "corrupt snapshot (%s)", why); goto done; }
    if (sec_close(&r)) goto done;
    if (state_meta_check(&meta, m, why, sizeof why)) { rfail(&r, "%s", why); goto done; }
    /* Plausibility before allocating: the layers must fit in what is left of the file (at
     * deflate's best ratio, about 1032:1), and the cache in this machine's memory. */
    const uint64_t layer_bytes = state_layer_bytes(&meta);
    const uint64_t cache_bytes = layer_bytes * (uint64_t)meta.n_layer;
    if (cache_bytes / 1100 > r.fsize - r.off) {
        rfail(&r, "corrupt snapshot (a cache of %llu bytes cannot be stored in the %llu bytes left)",
              (unsigned long long)cache_bytes, (unsigned long long)(r.fsize - r.off));
        goto done;
    }
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0 && cache_bytes > (uint64_t)pages * (uint64_t)psz) {
        rfail(&r, "the snapshot's cache (S=%d N=%d) needs %llu MiB, more than this machine's %llu MiB of memory",
              meta.ctrl.cfg.S, meta.ctrl.cfg.N, (unsigned long long)(cache_bytes >> 20),
              (unsigned long long)(((uint64_t)pages * (uint64_t)psz) >> 20));
        goto done;
    }
    if (st->m == m && st->ctrl.seen == 0 && state_meta_fits(st, &meta)) {
        target = st; inplace = 1;
    } else {
        if (state_init(&tmp, m, &meta.ctrl.cfg, meta.max_L, st->tp ? tp_threads(st->tp) : 0, why, sizeof why)) {
            rfail(&r, "%s", why); goto done;
        }
        target = &tmp;
    }
    for (int l = 0; l < meta.n_layer; l++) {
        if (sec_open(&r)) goto done;
        if (r.type != SEC_LAYER || r.index != (uint32_t)l) {
            rfail(&r, "corrupt snapshot (section %s %u where layer %d was expected)", sec_name(r.type), (unsigned)r.index, l);
            goto done;
        }
        const int q8 = (r.flags & SECF_Q8) != 0;
        const uint64_t lb = q8 ? state_layer_bytes_q(&meta, STATE_QUANT_Q8) : layer_bytes;
        if (r.usize != lb) {
            rfail(&r, "corrupt snapshot (layer %d holds %llu bytes, expected %llu)", l, (unsigned long long)r.usize, (unsigned long long)lb);
            goto done;
        }
        if (state_read_layer_q(target, &meta, l, q8 ? STATE_QUANT_Q8 : STATE_QUANT_NONE, &is, why, sizeof why)) { if (!r.failed) rfail(&r, "corrupt snapshot (%s)", why); goto done; }
        if (sec_close(&r)) goto done;
    }

    /* optional sections, then END */
    uint32_t nsec = 2 + (uint32_t)meta.n_layer, seen_mask = 0;
    for (;;) {
        if (sec_open(&r)) goto done;
        uint32_t t = r.type;
        if (t == SEC_END) break;
        nsec++;
        if (nsec > MAX_SECTIONS) { rfail(&r, "corrupt snapshot (too many sections)"); goto done; }
        if (t >= SEC_SAMPLER && t <= SEC_EXTRA) {
            if (seen_mask & (1u << t)) { rfail(&r, "corrupt snapshot (two %s sections)", sec_name(t)); goto done; }
            seen_mask |= 1u << t;
        }
        switch (t) {
        case SEC_SAMPLER:
            if (sec_slurp(&r, 64 + 4ull * (1u << 24), &buf, &len)) goto done;
            if (dec_sampler(buf, len, m, &res.samp, why, sizeof why)) { rfail(&r, "corrupt snapshot (%s)", why); goto done; }
            break;
        case SEC_DOCS:
            if (sec_slurp(&r, 1ull << 30, &buf, &len)) goto done;
            if (dec_docs(buf, len, &res.docs, &res.n_docs)) { rfail(&r, "corrupt snapshot (bad document list)"); goto done; }
            break;
        case SEC_DOCMAP: case SEC_CONV: case SEC_EXTRA: {
            if (sec_slurp(&r, 1ull << 36, &buf, &len)) goto done;
            if (t == SEC_DOCMAP) { res.docmap = buf; res.docmap_len = len; }
            else if (t == SEC_CONV) { res.conv = buf; res.conv_len = len; }
            else { res.extra = buf; res.extra_len = len; }
            buf = NULL;
            break;
        }
        case SEC_MODEL: case SEC_CACHE: case SEC_LAYER:
            rfail(&r, "corrupt snapshot (extra %s section)", sec_name(t)); goto done;
        default:
            sec_skip(&r);    /* a newer writer's optional section */
            break;
        }
        free(buf); buf = NULL;
    }
    uint64_t end_off = r.sec_off;
    if (sec_slurp(&r, 64, &buf, &len)) goto done;
    if (len != 12 || get_u32(buf) != nsec || get_u64(buf + 4) != end_off) { rfail(&r, "corrupt snapshot (bad end section)"); goto done; }
    if (r.off != r.fsize) { rfail(&r, "corrupt snapshot (%llu bytes after the end section)", (unsigned long long)(r.fsize - r.off)); goto done; }

    state_meta_commit(target, &meta);
    if (!inplace) {
        if (st->m) state_free(st);
        *st = tmp;
        memset(&tmp, 0, sizeof tmp);
    }
    res.st = st;
    *out = res;
    memset(&res, 0, sizeof res);
    rc = 0;
done:
    free(buf);
    rd_close(&r);
    snap_content_free(&res);
    if (rc) {
        if (inplace) state_reset(st);
        if (tmp.m) state_free(&tmp);
    }
    return rc;
}

/* ---- info ---- */

int snapshot_info(const char *path, FILE *f) {
    srd r;
    uint8_t hdr[HDR_SIZE];
    char err[600];
    uint8_t *buf = NULL; size_t len = 0;
    int rc = -1;
    if (rd_open(&r, path, err, sizeof err, hdr) || rd_setup(&r, 1)) goto done;
    {
        char wv[25]; memcpy(wv, hdr + 16, 24); wv[24] = 0;
        time_t t = (time_t)get_u64(hdr + 40);
        struct tm tmv; char ts[64] = "?";
        if (gmtime_r(&t, &tmv)) strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", &tmv);
        fprintf(f, "%s: cascade-read snapshot, format version %u, written by cascade-read %s on %s, %llu bytes\n",
                path, (unsigned)get_u32(hdr + 8), wv, ts, (unsigned long long)r.fsize);
    }
    uint64_t tot_u = 0, tot_c = 0;
    for (;;) {
        if (sec_open(&r)) goto done;
        char lb[32];
        sec_label(&r, lb, sizeof lb);
        fprintf(f, "  @%-10llu %-13s %12llu -> %12llu bytes (%5.2fx) %6u block%s crc32 %08x%s%s\n",
                (unsigned long long)r.sec_off, lb, (unsigned long long)r.usize, (unsigned long long)r.csize,
                r.csize ? (double)r.usize / (double)r.csize : 0.0, (unsigned)r.nblocks, r.nblocks == 1 ? " " : "s",
                (unsigned)r.crc, (r.flags & SECF_SHUFFLE) ? " shuffled" : "", (r.flags & SECF_Q8) ? " q8_0" : "");
        tot_u += r.usize; tot_c += r.csize + SEC_HDR;
        uint32_t t = r.type;
        if (t == SEC_LAYER || (t > SEC_EXTRA && t != SEC_END) || r.usize > (64u << 20)) { sec_skip(&r); continue; }
        if (t == SEC_CACHE) {
            cr_istream is = {&r, sec_get};
            state_meta meta; char why[300];
            if (state_read_meta(&is, &meta, why, sizeof why)) { if (!r.failed) rfail(&r, "corrupt snapshot (%s)", why); goto done; }
            if (sec_close(&r)) goto done;
            const cascade_cfg *c = &meta.ctrl.cfg;
            fprintf(f, "      policy %s S=%d N=%d C=%d beta %.9g eager %d stride %d; %lld tokens seen, %d sinks, %d cached\n",
                    cascade_policy_name(c->policy), c->S, c->N, c->C, c->beta, c->eager_fill, meta.max_L,
                    (long long)meta.ctrl.seen, meta.ctrl.n_sinks, cascade_total_stored(&meta.ctrl));
            continue;
        }
        if (sec_slurp(&r, 1ull << 30, &buf, &len)) goto done;
        if (t == SEC_MODEL) {
            model_rec *pm = malloc(sizeof *pm);
            if (pm && !dec_model(buf, len, pm))
                fprintf(f, "      model '%s' (%s), fingerprint %016llx, %u layers, %u KV heads, head dim %u, vocab %u\n",
                        pm->name, pm->file, (unsigned long long)pm->fp, (unsigned)pm->n_layer, (unsigned)pm->n_kv,
                        (unsigned)pm->head_dim, (unsigned)pm->n_vocab);
            else fprintf(f, "      (bad model record)\n");
            free(pm);
        } else if (t == SEC_SAMPLER) {
            sampler *s = NULL; char why[300];
            if (!dec_sampler(buf, len, NULL, &s, why, sizeof why)) {
                fprintf(f, "      temp %g top_k %d top_p %g min_p %g rep_penalty %g last_n %d seed %llu; %d tokens of history\n",
                        s->cfg.temp, s->cfg.top_k, s->cfg.top_p, s->cfg.min_p, s->cfg.rep_penalty, s->cfg.rep_last_n,
                        (unsigned long long)s->cfg.seed, s->hist_n);
                sampler_free(s); free(s);
            } else fprintf(f, "      (%s)\n", why);
        } else if (t == SEC_DOCS) {
            snap_doc *d = NULL; size_t nd = 0;
            if (!dec_docs(buf, len, &d, &nd)) {
                for (size_t i = 0; i < nd; i++)
                    fprintf(f, "      doc %zu: %s%s%s%s, %llu bytes, read to byte %llu, %llu tokens from #%llu%s%s%s\n", i, d[i].path,
                            d[i].title ? " \"" : "", d[i].title ? d[i].title : "", d[i].title ? "\"" : "",
                            (unsigned long long)d[i].size, (unsigned long long)d[i].offset, (unsigned long long)d[i].tokens,
                            (unsigned long long)d[i].tok_first, (d[i].flags & SNAP_DOC_DONE) ? ", done" : "",
                            d[i].hash[0] ? ", " : "", d[i].hash);
                docs_free(d, nd);
            } else fprintf(f, "      (bad document list)\n");
        } else if (t == SEC_END) {
            fprintf(f, "  %llu bytes of content in %llu bytes (%.2fx)\n", (unsigned long long)tot_u,
                    (unsigned long long)(tot_c + HDR_SIZE), tot_c ? (double)tot_u / (double)(tot_c + HDR_SIZE) : 0.0);
            free(buf); buf = NULL;
            break;
        }
        free(buf); buf = NULL;
    }
    if (r.off != r.fsize) { rfail(&r, "corrupt snapshot (%llu bytes after the end section)", (unsigned long long)(r.fsize - r.off)); goto done; }
    rc = 0;
done:
    if (rc) fprintf(f, "%s\n", err);
    free(buf);
    rd_close(&r);
    return rc;
}

/* ---- document hash ---- */

int snapshot_hash_file(const char *path, char hash[SNAP_HASH_MAX], uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    uint8_t *b = malloc(1 << 20);
    if (!b) { close(fd); errno = ENOMEM; return -1; }
    uLong c = crc32(0L, Z_NULL, 0), a = adler32(0L, Z_NULL, 0);
    uint64_t n = 0;
    for (;;) {
        ssize_t k = read(fd, b, 1 << 20);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { int e = errno; free(b); close(fd); errno = e; return -1; }
        if (k == 0) break;
        c = crc32(c, b, (uInt)k); a = adler32(a, b, (uInt)k);
        n += (uint64_t)k;
    }
    free(b); close(fd);
    snprintf(hash, SNAP_HASH_MAX, "crc32+adler32:%08lx%08lx", (unsigned long)c, (unsigned long)a);
    if (size) *size = n;
    return 0;
}
