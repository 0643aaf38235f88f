/* Serialization of the inference state (cr_state): the cache configuration, the control
 * state and the stride ("meta"), then per layer the storage of every KV head (sinks, K/V
 * slots as fp16 bits, fp32 EMA scores, int64 original indices).
 *
 * The engine knows nothing about files or compression: bytes go to / come from a small
 * stream interface. Each call carries the element size of the data (1, 2, 4 or 8 bytes) as
 * a hint, so the owner of the stream can e.g. split fp16 values into byte planes before
 * deflate (app/snapshot.c does) — a reader must receive the same (n, elem) sequence as the
 * writer produced, which holds because both sides walk the same layout.
 *
 * Byte order: little-endian (the host's; big-endian hosts are refused at compile time).
 *
 * Layout (all integers little-endian):
 *   meta   "CRSM" u32 version=1, n_layer, n_kv, head_dim, max_L, ctrl_len,
 *          then ctrl_len bytes of cascade_ctrl_write (magic CRCC, cfg, counters, CRC).
 *   layer  "CRSL" u32 version=1, layer, n_kv, head_dim, S, N; then per KV head:
 *          sink_k[S*D] u16, sink_v[S*D] u16, k[N*D] u16, v[N*D] u16, score[N] f32, og[N] i64.
 * Whole arrays are written (unfilled parts are zero and compress to nothing), so a loaded
 * state is byte-for-byte the saved one and forward() continues bit-exactly.
 *
 * Loading validates: magic, versions, shape against the model, the control state with
 * cascade_ctrl_read (counters equal the closed form for the token count), and per head that
 * exactly the filled slots have og >= 0 (the others -1), that sinks + cascades in retained
 * order hold strictly increasing indices below the token count, that the newest token is
 * cached, and that every score and every fp16 K/V value is finite (no Inf / NaN: the
 * forward pass would turn them into NaN activations). */
#ifndef CR_STATE_IO_H
#define CR_STATE_IO_H
#include <stddef.h>
#include <stdint.h>
#include "state.h"

/* put/get: 0 ok, -1 error (the stream's owner keeps the reason). n is a multiple of elem. */
typedef struct cr_ostream {
    void *ctx;
    int (*put)(void *ctx, const void *data, size_t n, int elem);
} cr_ostream;
typedef struct cr_istream {
    void *ctx;
    int (*get)(void *ctx, void *data, size_t n, int elem);
} cr_istream;

typedef struct {
    int n_layer, n_kv, head_dim;   /* model shape the cache belongs to */
    int max_L;                     /* stride (chunk length) the state was built with */
    cascade_ctrl ctrl;             /* validated by cascade_ctrl_read */
} state_meta;

#define STATE_META_MAX_BYTES (28 + 60 + 8 * CR_MAX_CASCADES)

/* Meta of a state (no I/O). */
void state_meta_of(const cr_state *s, state_meta *out);
/* Write / read the meta record. read: 0, or -1 with a one-line err. */
int  state_write_meta(const cr_state *s, const cr_ostream *o);
int  state_read_meta(const cr_istream *in, state_meta *meta, char *err, size_t errlen);
/* 0 if meta fits model m (layers, KV heads, head dim), else -1 with err. */
int  state_meta_check(const state_meta *meta, const cr_model *m, char *err, size_t errlen);
/* 1 if s (initialized) has meta's model shape, cache configuration and stride, so it can
 * receive the layers without state_init. */
int  state_meta_fits(const cr_state *s, const state_meta *meta);

/* Bytes of one layer record for meta's shape and configuration (for size checks). */
uint64_t state_layer_bytes(const state_meta *meta);

/* Lossy layer records (STATE_QUANT_Q8): the slot keys and values (not the sinks) of every
 * head as q8_0 over the flat [N*D] array: per 32 values an fp16 scale d = max|x|/127 and 32
 * int8 round(x/d), all scales of the array (elem 2) then all quants (elem 1); the reader
 * dequantizes to fp16 (q*d rounded), so the loaded state differs from the saved one by at
 * most d/2 per value (plus the fp16 rounding). Nothing in the record says it is quantized:
 * the container must (app/snapshot.c: a section flag). quant 0 = the lossless layout. */
enum { STATE_QUANT_NONE = 0, STATE_QUANT_Q8 = 1 };
uint64_t state_layer_bytes_q(const state_meta *meta, int quant);
int  state_write_layer_q(const cr_state *s, int layer, int quant, const cr_ostream *o);
int  state_read_layer_q(cr_state *s, const state_meta *meta, int layer, int quant, const cr_istream *in,
                        char *err, size_t errlen);

/* One layer's heads. read fills s's heads of that layer (s must fit meta: state_meta_fits)
 * and validates them against meta->ctrl; on error the layer is partly overwritten. */
int  state_write_layer(const cr_state *s, int layer, const cr_ostream *o);
int  state_read_layer(cr_state *s, const state_meta *meta, int layer, const cr_istream *in,
                      char *err, size_t errlen);
/* After every layer was read: install the control state. */
void state_meta_commit(cr_state *s, const state_meta *meta);

/* Conveniences: meta then every layer. state_load re-initializes *s for model m with the
 * stream's configuration and stride when s is zeroed or does not fit (n_threads: 0 = keep
 * the current count, or the default for a zeroed s); on error s is reset (emptied). */
int  state_save(const cr_state *s, const cr_ostream *o);
int  state_load(cr_state *s, const cr_model *m, const cr_istream *in, int n_threads,
                char *err, size_t errlen);

#endif
