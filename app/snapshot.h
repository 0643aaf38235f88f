/* Snapshots (.cas files): everything needed to continue a session exactly where it stopped
 * (the cascading KV cache and its control state, the documents read so far and how far,
 * the document map, the conversation, the sampler).
 *
 * File format (little-endian), version SNAP_FORMAT_VERSION:
 *   header (64 bytes): magic "\x89CAS\r\n\x1a\n", u32 format version, u32 header size,
 *           char[24] writer version (CR_VERSION), u64 creation time (Unix seconds),
 *           12 reserved bytes, u32 CRC-32 of the 60 bytes before it.
 *   sections, in this order: MODEL, CACHE, LAYER 0..n_layer-1, then SAMPLER, DOCS, DOCMAP,
 *           CONV, EXTRA (each optional, at most once), then END. A loader skips section types
 *           it does not know. Each section: a 48-byte header
 *             "CRSC", u32 type, u32 index (layer), u32 flags (bit 0: byte-plane shuffle),
 *             u64 uncompressed size, u64 payload size (compressed, block headers included),
 *             u32 CRC-32 (zlib) of the uncompressed bytes, u32 block count, u32 block size,
 *             u32 CRC-32 of the 44 bytes before it;
 *           then blocks of at most `block size` (512 KiB) uncompressed bytes, each
 *           independent of the others:
 *             u32 uncompressed size, u32 stored size, u32 CRC-32 of its uncompressed bytes,
 *             u32 codec, data. Codecs: 0 stored; 1 one raw deflate stream; 2 (version 2
 *             on) chunks: u32 chunk count, per chunk u32 size and u32 stored size, then the
 *             chunks' data in order, each stored (stored size = size) or a raw deflate
 *             stream (stored size < size); the sizes add up to the block's exactly.
 *           Blocks are compressed / decompressed in parallel and written in order.
 * Codec per chunk (version 2): the writer ends chunks at byte-plane and array boundaries
 * (at least 4 KiB apart), and deflates a chunk only where that saves at least 1/8 of it:
 * fp16 mantissa planes, nearly random, are stored (loading them is a copy and a CRC),
 * exponent planes are deflated, with LZ77 where the chunk has long repeats and Huffman
 * coding with runs (Z_RLE, twice as fast to inflate) where it has none. Version 1 files
 * (one codec per block) load as before.
 *   The END section holds the section count and its own offset; the file ends right after it.
 * Byte-plane shuffle: in sections with flag bit 0, every array of 2-, 4- or 8-byte values
 * (fp16 K/V, fp32 scores, int64 indices) is stored in pieces of 64 KiB whose bytes are
 * transposed (all first bytes of the piece's values, then all second bytes, ...), so the
 * fp16 exponent bytes sit together and deflate finds them.
 *
 * Writes are atomic: PATH.tmp in the same directory, fsync, rename over PATH, fsync of the
 * directory. A failure (full disk, EFBIG, I/O error) removes PATH.tmp and leaves PATH as it
 * was. While it writes, a default SIGXFSZ disposition is set to ignore (and restored), so
 * that a file size limit gives EFBIG instead of killing the process.
 *
 * Loading checks the magic, versions, every section size against the file size, every CRC,
 * the model fingerprint (a different model is an error naming both models), the cache state
 * (engine/state_io.h: counters against the closed form, og indices, scores) and the sampler.
 * Errors are one line, "PATH: problem". */
#ifndef CR_SNAPSHOT_H
#define CR_SNAPSHOT_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "sampler.h"
#include "state.h"

#define SNAP_FORMAT_VERSION 2
#define SNAP_HASH_MAX 72            /* hash text, NUL included */

enum { SNAP_DOC_DONE = 1 };         /* snap_doc.flags: the document was read to its end */
enum { SNAP_QUANT_NONE = 0, SNAP_QUANT_Q8 = 1 };   /* snap_content.quant */

typedef struct {
    char *path;                     /* file path or URL */
    char *title;                    /* display title, or NULL */
    uint64_t size;                  /* source size in bytes, 0 = unknown (stdin, stream) */
    char hash[SNAP_HASH_MAX];       /* digest text (snapshot_hash_file), "" = none */
    uint64_t offset;                /* how far it was read, in the app's reading coordinates
                                     * (e.g. the docmap's extracted-stream byte offset):
                                     * resume reading here */
    uint64_t tokens;                /* tokens fed from this document */
    uint64_t tok_first;             /* session index of its first token */
    uint32_t flags;                 /* SNAP_DOC_* */
} snap_doc;

typedef struct {
    /* snapshot_save: inputs, read only (zero what is not used). snapshot_load: outputs,
     * allocated; release them with snap_content_free. */
    const cr_state *st;             /* save: the state to save (required); load: the filled state */
    snap_doc *docs;   size_t n_docs;
    void *docmap;     size_t docmap_len;   /* opaque (e.g. docmap_write into open_memstream) */
    void *conv;       size_t conv_len;     /* opaque conversation so far */
    void *extra;      size_t extra_len;    /* opaque app-extra */
    sampler *samp;                  /* save: NULL = none; load: a restored sampler or NULL */
    /* save options (0 = default) */
    int level;                      /* 0: default (1); 1..9 zlib level; -1: store uncompressed */
    int no_shuffle;                 /* 1: no byte-plane shuffle (benchmarks) */
    int n_threads;                  /* compression threads; 0: the state's thread count
                                     * (memory: about (n_threads + 4) MiB of block buffers) */
    int quant;                      /* SNAP_QUANT_NONE (lossless) or SNAP_QUANT_Q8 (lossy K/V) */
    /* load: what the header says */
    char writer[24];                /* CR_VERSION of the writer */
    int64_t created;                /* Unix time of the save */
    uint64_t file_bytes;            /* size of the file */
} snap_content;

/* Write c to path atomically. 0, or -1 with a one-line err ("cannot save snapshot PATH:
 * reason; the previous snapshot is unchanged"). */
int  snapshot_save(const char *path, const snap_content *c, char *err, size_t errlen);

/* Load path for model m. out is overwritten (not freed first). st is either zeroed or an
 * initialized state of model m; on success it holds the snapshot's cache, configuration and
 * stride (re-initialized with them when they differ from st's; the thread count is kept, or
 * the default for a zeroed st): st->max_L is then the stride to feed with. On error (-1,
 * one-line err) *st is unchanged and out holds nothing to free. An empty st (no token seen)
 * of the snapshot's configuration is filled in place; otherwise the snapshot is loaded into
 * a new state that replaces *st only once everything checked out (two caches in memory
 * meanwhile). Blocks are decompressed on st's thread count. */
int  snapshot_load(const char *path, const cr_model *m, snap_content *out, cr_state *st,
                   char *err, size_t errlen);
void snap_content_free(snap_content *c);     /* what snapshot_load allocated; zeroes c */

/* Print the header and the sections (sizes, compression, CRC, decoded small sections) to f.
 * Layer payloads are listed, not decompressed. 0, or -1 after printing the problem. */
int  snapshot_info(const char *path, FILE *f);

/* Digest of a file for snap_doc.hash ("crc32+adler32:XXXXXXXXXXXXXXXX") and its size.
 * 0, or -1 with errno set. */
int  snapshot_hash_file(const char *path, char hash[SNAP_HASH_MAX], uint64_t *size);

/* Tests only: make the save's writes fail with errno err_no once `after` bytes of the file
 * have been written (after < 0: off). Not thread-safe. */
void snapshot_test_fault(int64_t after, int err_no);
/* Tests only: the reader's window holds at most this many bytes (always at least one block;
 * 0: the default 32 MiB), so that small files span several windows. Not thread-safe. */
void snapshot_test_window(size_t bytes);
/* Tests only: 1 makes snapshot_save write format version 1 (one codec per block, as
 * cascade-read wrote before version 2), anything else the current version. Not thread-safe. */
void snapshot_test_format(int version);

#endif
