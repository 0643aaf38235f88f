/* Interface between the CUDA host code (engine/cuda_*.c, plain C) and the kernels
 * (kernels/, one op per .cu file). Every launch wrapper is extern "C", takes device
 * pointers and a stream, launches asynchronously and does not check errors: the host
 * checks cudaGetLastError() after each call (CUDA_LAUNCHED() in cuda_util.h).
 *
 * Per-chunk values that change from call to call (positions, sink count, EMA decay, the
 * insertion plan) are read by the kernels from device memory (crk_step and the arrays
 * after it), so that a decode step can be captured once in a CUDA graph and replayed.
 *
 * Only compiled with CUDA=1 (the header itself includes no CUDA header). */
#ifndef CR_CUDA_IFACE_H
#define CR_CUDA_IFACE_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *crk_stream;   /* == cudaStream_t */

#define CRK_MAX_C 32

/* Per-chunk control values (device copy; written by the host before each chunk). */
typedef struct {
    int64_t p0;          /* position of chunk token 0 (cascade_query_pos before the chunk) */
    int64_t t0;          /* stream index of chunk token 0 (original index of new tokens) */
    int L;               /* tokens in the chunk */
    int n_sinks;         /* sinks filled before the chunk */
    int nv;              /* filled cache slots before the chunk (sum of stored) */
    int S, N, C, W;
    float decay;         /* (float)beta^L */
    int U;               /* distinct cache slots touched by the plan */
    int n_sink_ops;      /* tokens of the chunk that become sinks */
    int n_ops;
    int stored[CRK_MAX_C], start[CRK_MAX_C];
    int above[CRK_MAX_C];  /* tokens in cascades older than i (i+1 .. C-1) */
} crk_step;

/* Activation block of the quantized matrix kernels: byte-identical to q8_block (quant.h). */
typedef struct { float d, s; int8_t q[32]; } crk_q8;

/* ---- elementwise / row ops ---- */
/* x[t][0..cols) = row tok[t] - row0 of W (any supported type), t < L, where W holds the rows
 * of tokens [row0, row0 + nrows); zeros for a token outside them. */
void crk_embed(const void *w, uint32_t type, size_t row_bytes, int cols, const int32_t *tok, int L, int row0, int nrows, float *x,
               crk_stream s);
/* dst = W as bf16 (dst_bf16 = 1) or f32 (0), rows x cols, row-major. */
void crk_dequant(const void *w, uint32_t type, int64_t rows, int64_t cols, size_t row_bytes, void *dst, int dst_bf16, crk_stream s);
void crk_f32_to_bf16(const float *x, uint16_t *y, size_t n, crk_stream s);
/* y[t] = x[t] / rms(x[t]) * w (sum of squares in double, like the CPU); any of y (f32),
 * y16 (bf16) and yq (q8 blocks of the result, n % 32 == 0: the quantized matrices' input)
 * may be NULL. */
void crk_rmsnorm(const float *x, const float *w, int L, int n, float eps, float *y, uint16_t *y16, crk_q8 *yq, crk_stream s);
/* quantize_q8 of quant.c on rows x[t][0..n), n % 32 == 0: y[t][n/32]. */
void crk_quantize_q8(const float *x, int L, int n, crk_q8 *y, crk_stream s);
/* h[t][i] = silu(gu[t][i]) * gu[t][ffn + i]; h, h16 and hq (q8 blocks, ffn % 32 == 0) may be NULL. */
void crk_swiglu(const float *gu, int L, int ffn, float *h, uint16_t *h16, crk_q8 *hq, crk_stream s);

/* ---- matrix-vector (decode) ---- */
/* y[r] (+)= W[r] . x for one token. Quantized W uses xq (crk_quantize_q8 of x), float W uses x. */
void crk_matvec(const void *w, uint32_t type, int64_t rows, int64_t cols, size_t row_bytes,
                const float *x, const crk_q8 *xq, float *y, int accumulate, crk_stream s);
/* Decode's gate|up product with SwiGLU in the epilogue, for F16 / BF16 rows (cols % 256 == 0,
 * 16-byte aligned): w holds the gate rows 0 .. ffn - 1 then the up rows; h[i] = silu(gate_i . x)
 * * (up_i . x): below 8192 columns the same bits as crk_matvec over the 2 ffn rows then
 * crk_swiglu (above, crk_matvec sums a row in four parts). Returns -1 (nothing launched) for
 * other types or shapes. */
int crk_matvec_glu(const void *w, uint32_t type, int64_t ffn, int64_t cols, size_t row_bytes, const float *x, float *h, crk_stream s);

/* ---- q, k, v after the projections ---- */
typedef struct {
    float *qkv; int ld;            /* token t: q at qkv + t*ld, k at + qd, v at + qd + kvd (f32) */
    const float *bq, *bk, *bv;     /* biases or NULL */
    int L, n_head, n_kv, hd, rope_pairs, neox;
    const float *rope_cs;          /* [pos][rope_pairs][2] cos, sin */
    const crk_step *st;            /* p0 */
    uint16_t *k16, *v16;           /* [L][n_kv*hd] fp16 pre-RoPE */
    uint16_t *q16;                 /* [L][n_head*hd] fp16 RoPE'd q, or NULL */
} crk_qkv_args;
/* Adds biases, rounds k and v to fp16, rotates q in place (positions p0 + t). */
void crk_qkv_post(const crk_qkv_args *a, crk_stream s);

/* ---- cascade positions ---- */
/* pos[slot] = S + rank or -1 (== cascade_positions of the control state in st). */
void crk_slot_pos(const crk_step *st, int N, int32_t *pos, crk_stream s);
/* list[0] = the number of 16-key steps of [S | N | L] holding a valid key, list[1 ..] those
 * steps (key / 16, ascending, at most cap), -1 up to cap (== cascade_step_list; one block) */
void crk_step_list(const crk_step *st, int32_t *list, int cap, crk_stream s);
/* The decode attention's nearly-empty variant (crk_attn.skip_empty = 3) takes at most this
 * many steps: 32 warps of 8 steps per KV head */
#define CRK_DEC_LIST_CAP 256

/* ---- chunk attention (kernels/attn_chunk.cu) and decode attention (attn_decode.cu) ----
 * Keys of KV head h, in index order: [S sinks (valid below n_sinks) | N slots (valid
 * when slot_pos >= 0) | L chunk keys (key j visible to queries m >= j)].
 * r[h * r_stride + k] = max over the group of sum_m w_m p_g[m][k] for valid keys, 0 otherwise. */
enum { CRK_ATTN_AUTO = 0, CRK_ATTN_PRECISE = 1, CRK_ATTN_FAST = 2 };
typedef struct {
    int L, n_head, n_kv, hd, rope_pairs, neox, S, N;
    const crk_step *st;                 /* n_sinks, p0 */
    const float *rope_cs;
    const uint32_t *rope_cs16;          /* decode, optional: rope_cs as fp16 (cos, sin) pairs [pos][rope_pairs] (crk_rope_cs16); NULL = not used */
    const int32_t *slot_pos;            /* [N] */
    const uint16_t *sink_k, *sink_v;    /* this layer: [n_kv][S][hd] fp16 pre-RoPE */
    const uint16_t *ck, *cv;            /* this layer: [n_kv][N][hd] */
    const float *q; size_t q_stride;    /* RoPE'd f32 query m, head g: q + m*q_stride + g*hd */
    const uint16_t *q16;                /* RoPE'd fp16 [L][n_head*hd] (fast path), or NULL */
    const uint16_t *kc, *vc; size_t kv_stride;  /* chunk key j: kc + j*kv_stride + h*hd */
    const float *w;                     /* [L] EMA weights */
    float *out; uint16_t *out16; size_t out_stride;  /* out + m*out_stride + g*hd; out16 may be NULL */
    crk_q8 *out_q8;                     /* decode only: also the q8 blocks of out (or NULL) */
    float *r; size_t r_stride;          /* [n_kv][r_stride >= S+N+L] */
    float *work;                        /* crk_attn_work_floats() floats */
    int mode;                           /* CRK_ATTN_* */
    /* fast path only: the visible keys of every KV head, rotated, in the compact order
     * [n_sinks sinks | nv filled slots in slot order | L chunk keys] (that of attn_chunk_cpu),
     * and the [S | N | L] index of each compact key (where its score column goes). */
    uint16_t *kbuf, *vbuf;              /* [n_kv][kv_rows][hd] */
    int32_t *kdst;                      /* [kv_rows] */
    int kv_rows;                        /* >= S + N + L + 64 */
    /* decode only, optional: the attention probe (engine/attn_probe.h). For every valid key,
     * the softmax probability summed over the query heads of its group is added (atomically)
     * to probe[og], og = the key's original index (sinks: their index; slots: og[h*N + slot];
     * the token itself: st->t0). NULL = off. */
    float *probe; const int64_t *og;    /* og: this layer's [n_kv][N] */
    /* decode only, where crk_attn_decode_fuses_qkv: the q/k/v post-processing done by the
     * attention kernel. q is then the projections' raw query (biases bq not added, not
     * rotated: rotated in registers at position st->p0, as crk_qkv_post does), and the kernel
     * writes the token's key and value (kraw + bk, vraw + bv, rounded to fp16) to kc / vc
     * itself. 0 = q already post-processed by crk_qkv_post. */
    int fuse_qkv; const float *bq, *bk, *bv, *kraw, *vraw;
    /* decode only: 1 while some sink or slot is unfilled. The register-direct kernel then ends
     * splits with no valid key early (a kernel variant: correct either way, and the plain one
     * measured faster with a full cache). 2 while the cache is nearly empty (the start of a
     * session, a short prompt): it also walks only the 16-key steps that hold a valid key, the
     * 4 warps of a block taking its steps in turn (measured slower than 1 with half the cache
     * filled). */
    int skip_empty;
    /* skip_empty = 3 (the register-direct kernel; others take it as 1): the steps to walk,
     * crk_step_list's [1 + CRK_DEC_LIST_CAP] (count <= CRK_DEC_LIST_CAP). CRK_DEC_LIST_CAP / 8
     * warps per KV head take the listed steps in turn (warp w: entries w, w + 32, ...), and
     * only the listed keys get logits and score columns: the others' columns are left as
     * they are (no reader looks at an unfilled key's column). */
    const int32_t *steps;
} crk_attn;
size_t crk_attn_work_floats(int S, int N, int max_L, int n_head, int hd);
/* 1 when the tensor-core path handles this shape (head dim 64 or 128, rope dims % 16 == 0).
 * That path writes r only for valid keys (the others are never read). */
int crk_attn_fast_ok(int hd, int rope_pairs);
/* The tensor-core path's kernels where crk_attn_wg_ok (compute capability 9.0, head dim 64 or
 * 128; kernels/attn_chunk_wg.cu): CRK_ATTN_IMPL_AUTO and CRK_ATTN_IMPL_WG_WS2 run both passes
 * on wgmma, warp-specialized (a TMA producer, two wgmma consumer warpgroups: attn_p1_wgws,
 * attn_p2_wgws); CRK_ATTN_IMPL_WG_WS specializes pass 1 only; CRK_ATTN_IMPL_WG neither;
 * CRK_ATTN_IMPL_MMA runs both passes on mma.sync (kernels/attn_chunk.cu; the only kernels
 * elsewhere). Tests and benchmarks compare them. Returns the previous setting. */
enum { CRK_ATTN_IMPL_AUTO = 0, CRK_ATTN_IMPL_MMA = 1, CRK_ATTN_IMPL_WG = 2, CRK_ATTN_IMPL_WG_WS = 3, CRK_ATTN_IMPL_WG_WS2 = 4 };
int crk_attn_set_impl(int impl);
/* The warp-specialized pass 1's variant: 0 (default) the two consumer warpgroups issue freely, 1 they ping-pong.
 * The environment's CRK_WS_VARIANT=0/1 sets it on first use. Returns the previous setting. */
int crk_attn_set_ws_variant(int v);
int crk_attn_wg_ok(int hd);
/* blocks per SM of the mma.sync pass 2 (the default where wgmma is not available; hd 64 or 128); 3 is the measured-best occupancy */
int crk_attn_p2_blocks_per_sm(int hd);
/* passes 1 (phases & 2) and 2 (phases & 4) on wgmma, after crk_kv_gather; ws: bit 0 pass 1
 * warp-specialized, bit 1 pass 2 warp-specialized */
void crk_attn_wg(const crk_attn *a, crk_stream s, int phases, int ws);
void crk_attn_chunk(const crk_attn *a, crk_stream s);
/* Benchmarks: only some phases of the tensor-core path (bit 0 the key gather, bit 1 pass 1,
 * bit 2 pass 2); -1 (nothing launched) when the call would take the precise path. */
int crk_attn_chunk_phases(const crk_attn *a, crk_stream s, int phases);
/* fast path, step 1 (kernels/attn_gather.cu): fill kbuf/vbuf/kdst for the chunk. */
void crk_kv_gather(const crk_attn *a, crk_stream s);
/* L == 1 (flash-decoding: the keys split across blocks); falls back to crk_attn_chunk for
 * shapes it does not handle. */
void crk_attn_decode(const crk_attn *a, crk_stream s);
/* cs16[i] = fp16 cos | fp16 sin << 16 of cs[2i], cs[2i + 1] (round to nearest), i < n_pairs:
 * the table of the register-direct decode kernel (crk_attn.rope_cs16) */
void crk_rope_cs16(const float *cs, size_t n_pairs, uint32_t *cs16, crk_stream s);
/* The decode kernel crk_attn_decode picks for a (benchmarks, tests): 0 register-direct tensor
 * cores (needs rope_cs16; neox only with full rotary), 1 tensor cores through shared memory, 2 fp32 SIMT */
int crk_attn_decode_kind(const crk_attn *a);
/* 1 when crk_attn_decode can do a's q/k/v post-processing itself (the register-direct kernel;
 * CRK_DEC_FUSE=0 turns it off): the caller then skips crk_qkv_post and sets fuse_qkv. One
 * kernel less per layer: H200, session 10, same run, 8B Q4_K decode 2.76-2.78 -> 2.71 ms,
 * 8B bf16 5.40-5.41 -> 5.34-5.35 */
int crk_attn_decode_fuses_qkv(const crk_attn *a);
/* switches that on or off (tests); returns the previous setting */
int crk_attn_decode_set_fuse(int on);
/* The register-direct decode kernel reads keys and values straight into registers (0) or
 * through 2 (the default: H200, 8B layer 36.5 against 40.0 us) or 3 stages of shared memory
 * per warp; returns the previous setting (benchmarks, tests; also CRK_DRD_STAGES) */
int crk_attn_decode_set_stages(int nst);
/* Programmatic dependent launch of the decode step's kernels (matrix-vector, RMSNorm, q/k/v
 * post-processing, SwiGLU, decode attention): each may start while the previous one runs and
 * loads its weights (or, for the attention, cached keys and values) before waiting for it.
 * On by default (CRK_PDL=0 turns it off); returns the previous setting. */
int crk_set_pdl(int on);

/* ---- cascade update (kernels/cascade_update.cu) ----
 * The host turns a cascade_plan into: ops[x] = (kind, loc) where loc is the index of the op's
 * slot in touched[0..U) (the distinct slots of the plan), or the sink index for SINK ops;
 * sink_ops[i] = (sink index, chunk token j). resolve runs per (layer, KV head): the EMA
 * update of the N slot scores, then the plan on the scores only (each token's ops last to
 * first, COMPETE with >=), giving the final score of every touched slot and where its
 * content comes from: src[u] = u' < U: the content slot touched[u'] had before the chunk,
 * U + j: chunk token j. move then copies K, V and og accordingly (gather into a staging
 * buffer, then scatter), for the layers [l0, l1). */
typedef struct {
    int n_layer, n_kv, S, N, L;
    int U_max;                          /* bound of st->U (the kernels read the count from st) */
    const crk_step *st;                 /* decay, U */
    const int32_t *slot_pos;            /* [N] before the chunk */
    const int32_t *tfo;                 /* [L + 1] */
    const int32_t *ops;                 /* [n_ops][2] */
    const int32_t *touched;             /* [st->U] */
    const float *r; size_t r_stride, r_layer_stride;
    float *score;                       /* [n_layer][n_kv][N] */
    int32_t *src;                       /* out: [n_layer][n_kv][st->U] */
    void *scratch;                      /* [n_layer*n_kv][U_max] x 8 bytes, used when U_max is too large for shared memory */
} crk_resolve_args;
void crk_cascade_resolve(const crk_resolve_args *a, crk_stream s);
int crk_cascade_resolve_smem_max(void);   /* largest U handled in shared memory */

typedef struct {
    int l0, l1, n_kv, S, N, hd;
    int U_max;                          /* bound of st->U */
    const crk_step *st;                 /* t0, U, n_sink_ops */
    const int32_t *touched, *src;       /* src [n_layer][n_kv][U] */
    const int32_t *sink_ops;            /* [n_sink_ops][2] */
    const uint16_t *k16, *v16; size_t kv_layer_stride;  /* token j, layer l, head h: k16 + l*kv_layer_stride + j*n_kv*hd + h*hd */
    uint16_t *ck, *cv;                  /* [n_layer][n_kv][N][hd] */
    uint16_t *sink_k, *sink_v;          /* [n_layer][n_kv][S][hd] */
    int64_t *og;                        /* [n_layer][n_kv][N] */
    uint16_t *stage_k, *stage_v;        /* [(l1-l0)][n_kv][U][hd] (U = st->U) */
    int64_t *stage_og;                  /* [(l1-l0)][n_kv][U] */
} crk_move_args;
void crk_cascade_move(const crk_move_args *a, crk_stream s);

/* ---- logits ---- */
/* out[0] = index of the largest x (first on ties, like argmax() of sampler.c); *maxval (when
 * not NULL) = that largest value (-inf when every x is NaN). */
void crk_argmax(const float *x, int n, int32_t *out, float *maxval, crk_stream s);
/* out[t] = logsumexp(logits[t]) - logits[t][targets[t]] (NaN for a bad target). */
void crk_nll(const float *logits, int rows, int V, const int32_t *targets, float *out, crk_stream s);
/* A share of the vocabulary: logits[t][0..V) are the logits of tokens [v0, v0 + V).
 * out[2t] = logsumexp(logits[t]), out[2t + 1] = the logit of targets[t] when it lies in the
 * share, else NaN. logits_nll_combine (sampler.h; engine/cuda_tp.c) puts the shares together. */
void crk_nll_part(const float *logits, int rows, int V, const int32_t *targets, int v0, float *out, crk_stream s);

/* ---- benchmarks: random weights of a given type (valid blocks, values ~ +-scale) ---- */
void crk_fill_random(void *dst, uint32_t type, int64_t rows, int64_t cols, size_t row_bytes, uint64_t seed, float scale, crk_stream s);
void crk_fill_random_f16(uint16_t *dst, size_t n, uint64_t seed, float scale, int bf16, crk_stream s);
void crk_fill_random_f32(float *dst, size_t n, uint64_t seed, float scale, crk_stream s);

#ifdef __cplusplus
}
#endif
#endif
