/* Inference state: the cascading KV cache of every (layer, KV head), its
 * shared control state, and the scratch buffers of one chunk (memory is
 * bounded by the cache size and the chunk length, never by the input length). */
#ifndef CR_STATE_H
#define CR_STATE_H
#include "cascade.h"
#include "model.h"
#include "quant.h"
#include "threadpool.h"

enum cr_out { CR_OUT_NONE, CR_OUT_LAST, CR_OUT_ALL, CR_OUT_NLL };

struct cuda_state;
struct cuda_tp;

typedef struct cr_state {
    const cr_model *m;
    struct cuda_state *gpu;    /* non-NULL: forward() runs on the GPU (state_device.c); the
                                * cache lives there and `heads` is a host mirror */
    struct cuda_tp *gpu_tp;    /* or several GPUs, tensor parallel (engine/cuda_tp.h); gpu is NULL then */
    int heads_stale;           /* the GPU cache changed since the mirror was last synced */
    cascade_ctrl ctrl;
    cascade_plan plan;
    cascade_head *heads;       /* [n_layer * n_kv] */
    int max_L;                 /* longest chunk */
    threadpool *tp;
    /* chunk scratch */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;   /* [max_L][dim | qd | kvd | ffn] */
    uint16_t *k16, *v16;       /* [max_L][n_kv * head_dim] fp16 pre-RoPE keys / values */
    q8_block *xq;              /* [max_L][max(dim, ffn) / 32] */
    float *s_new;              /* [n_kv][max_L] scores of the chunk's tokens */
    float *ema_w;              /* [max_L] */
    int32_t *slot_pos;         /* [N] S + rank, or -1 (cache state at the chunk's start) */
    int32_t *vslots;           /* [N] filled slots in physical order */
    float *rope_cs;            /* [rope_max][rope_dim/2][2] cos, sin */
    int64_t rope_max;
    float *tscratch;           /* per-thread attention scratch */
    size_t tscratch_floats;
    float *logits;             /* [16][n_vocab] */
    size_t cache_bytes;
    /* tensor-parallel simulation (state_set_tp_sim): the attention output and FFN down
     * projections computed as tp_sim column-sliced partial products summed in shard order,
     * as an all-reduce over tp_sim ranks would; 0 or 1 = off */
    int tp_sim;
    float *tp_x, *tp_part;     /* [max_L][max(qd, ffn) / tp_sim], [max_L][dim] */
    struct cr_probe *probe;    /* attention probe (engine/attn_probe.h), NULL = off */
    /* last chunk's attention to cached tokens, for citations: per cached slot
     * (layer-averaged max over heads) — see forward_cpu.c */
} cr_state;

int state_init(cr_state *s, const cr_model *m, const cascade_cfg *cfg, int max_L, int n_threads, char *err, size_t errlen);
/* Simulate tensor parallelism over n ranks on the CPU (issue 10): query/KV heads and FFN
 * columns split n ways, partial sums of the two row-parallel projections added in rank order.
 * Needs n_head, n_kv, ffn divisible by n and slices that are whole quant blocks. 0 / -1 + err. */
int state_set_tp_sim(cr_state *s, int n, char *err, size_t errlen);
void state_free(cr_state *s);
void state_reset(cr_state *s);

/* Run L <= max_L tokens. out: CR_OUT_LAST logits[n_vocab] of the last token;
 * CR_OUT_ALL logits[L][n_vocab]; CR_OUT_NLL out[j] = -log p(targets[j]) at token j.
 * Returns 0, or -1 with err (bad token id, cache policy overflow). */
int forward(cr_state *s, const int32_t *tok, int L, int out_mode, const int32_t *targets, float *out, char *err, size_t errlen);

/* Devices (state_device.c). state_use_cuda moves the cache and the weights to the GPU
 * (an empty state, or its current cache is uploaded): -1 + err when this build has no CUDA,
 * no usable GPU is present, or it does not fit (the message says what was requested and
 * what is free, and which --cache would fit). */
int  state_use_cuda(cr_state *s, char *err, size_t errlen);
/* The same over n GPUs (devices 0..n-1), tensor parallel; n = 1 is state_use_cuda. With
 * CR_GPUS_SIMULATE=1 in the environment every rank lives on GPU 0 (a check of the sharding on
 * one GPU, see cuda_tp.h). */
int  state_use_cuda_ranks(cr_state *s, int n, char *err, size_t errlen);
int  state_on_gpu(const cr_state *s);              /* forward() runs on one GPU or several */
int  state_gpu_ranks(const cr_state *s);           /* 0 on the CPU, else the number of GPUs */
void state_gpu_free(cr_state *s);                  /* back to the CPU engine (state_free, state_init) */
void state_gpu_reset(cr_state *s);                 /* empty the GPU cache (state_reset) */
int  state_cuda_available(char *desc, size_t n);   /* usable GPUs (0 without CUDA) */
const char *state_device_name(const cr_state *s);  /* "cpu" or the GPU's description */
/* Bring the host mirror (s->heads) up to date with the GPU before reading it (snapshots,
 * citations, cache maps): no-op on the CPU. 0, or -1 + err. */
int  state_sync_host(cr_state *s, char *err, size_t errlen);
/* After s->heads were written on the host (snapshot load): upload them. */
int  state_sync_device(cr_state *s, char *err, size_t errlen);
int  forward_gpu(cr_state *s, const int32_t *tok, int L, int out_mode, const int32_t *targets, float *out, char *err, size_t errlen);

#endif
