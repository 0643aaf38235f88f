/* GPU inference state: the CUDA twin of cr_state (state.h). The cascade's control state
 * stays on the host (the caller keeps its cascade_ctrl and plans each chunk with
 * cascade_plan_chunk, exactly as the CPU path does); the GPU holds the weights, the cache
 * contents of every (layer, KV head) (sinks, slots, scores, original indices) and the chunk
 * scratch. cuda_forward runs one chunk (prefill, L > 1) or one decode step (L == 1) given
 * the control state before the chunk and the chunk's plan.
 *
 * Compiled only with CUDA=1 (engine/cuda_*.c); callers guard with #ifdef CR_CUDA. */
#ifndef CR_CUDA_STATE_H
#define CR_CUDA_STATE_H
#include <stddef.h>
#include <stdint.h>
#include "cascade.h"
#include "model.h"

typedef struct cuda_state cuda_state;

enum { CUDA_WEIGHTS_AUTO, CUDA_WEIGHTS_RESIDENT, CUDA_WEIGHTS_STREAM };
enum { CUDA_GEMM_AUTO, CUDA_GEMM_BF16, CUDA_GEMM_FP32 };
enum { CUDA_ATTN_AUTO, CUDA_ATTN_PRECISE, CUDA_ATTN_FAST };

typedef struct {
    int weights;         /* CUDA_WEIGHTS_*: AUTO keeps bf16 copies of the matrices resident
                            when they fit (free memory after everything else, 1 GiB margin),
                            else dequantizes a layer's matrices per chunk into a workspace */
    int gemm;            /* CUDA_GEMM_*: AUTO = fp32 for F32 matrices, bf16 (fp32 accumulate) otherwise */
    int attn;            /* CUDA_ATTN_*: AUTO = tensor cores for head dim 64/128 unless every GEMM is fp32 */
    int graph;           /* capture decode steps (L == 1) in CUDA graphs; default 1 */
    int random_weights;  /* benchmarks: fill the matrices with random values on the GPU instead
                            of uploading the model's data (norms and biases still come from m) */
    uint64_t seed;
    int device;          /* CUDA device of this state (default 0) */
    size_t stage_bytes;  /* tests: the cache update's staging budget (0: 256 MiB; it sets how many
                          * layers one gather/scatter moves) */
    /* tensor parallelism (engine/cuda_tp.h): this state is rank tp_rank of a sharded model
     * (model_shard.h); after the attention output and the FFN down projections, rank 0 adds
     * its partial product to the residual and the other ranks write theirs over it, then
     * allreduce(tp_ctx, rank, x, floats, stream) sums x over the ranks in place (on the
     * state's cudaStream_t, before it returns or in stream order). NULL: one GPU. */
    int tp_rank;
    /* a share of the vocabulary (tensor parallelism, model_shard_vocab): m's tok_embd and
     * output hold the rows of tokens [vocab_off, vocab_off + vocab_n) (0, 0: the whole
     * vocabulary). A token outside the share embeds as zeros (the all-reduce after the
     * embedding sums the ranks' rows); cuda_forward's outputs become this share's:
     * CR_OUT_LAST / ALL write logits [vocab_off, vocab_off + vocab_n) of each n_vocab-wide
     * row of out (nothing else), CUDA_OUT_ARGMAX out[0] = the share's greedy token id and
     * out[1] = its logit, CR_OUT_NLL out[2t], out[2t + 1] = crk_nll_part's pair (combined by
     * logits_nll_combine of sampler.h). */
    int vocab_off, vocab_n;
    int (*allreduce)(void *tp_ctx, int rank, float *x, size_t floats, void *stream);
    void *tp_ctx;
} cuda_opts;
void cuda_opts_default(cuda_opts *o);

/* Number of usable CUDA devices (0 when none, or when the device is older than sm_90);
 * desc gets a one-line description or the reason. */
int cuda_device_info(char *desc, size_t n);

/* Allocates everything on device 0 for chunks of up to max_L tokens and a cache of
 * ctrl->cfg (S, N, C); uploads the weights. NULL with err on failure; running out of GPU
 * memory gives a message with what was needed and what is free, suggesting --cache. */
cuda_state *cuda_state_create(const cr_model *m, const cascade_ctrl *ctrl, int max_L, char *err, size_t n);
cuda_state *cuda_state_create_ex(const cr_model *m, const cascade_ctrl *ctrl, int max_L, const cuda_opts *o, char *err, size_t n);
void cuda_state_free(cuda_state *g);
/* Empty cache (zero K/V/scores, og = -1); pair with cascade_ctrl_reset on the host. */
void cuda_state_reset(cuda_state *g);

/* Extra output mode: out[0] = greedy token id (as a float) of the last token, computed on
 * the GPU without copying the logits. */
#define CUDA_OUT_ARGMAX 16

/* One chunk of L <= max_L tokens. pre: the control state before the chunk; plan: the plan
 * cascade_plan_chunk made from it (plan->L == L). out_mode: CR_OUT_NONE / LAST / ALL / NLL
 * (as forward() in state.h) or CUDA_OUT_ARGMAX. With CR_OUT_NONE the call returns before
 * the GPU has finished (the next call or a download waits). 0, or -1 with err. */
int cuda_forward(cuda_state *g, const cascade_ctrl *pre, const cascade_plan *plan, const int32_t *tok, int L,
                 int out_mode, const int32_t *targets, float *out, char *err, size_t n);
/* Attention probe for decode steps (engine/attn_probe.h): while on, every L == 1 step adds,
 * for the layers in [layer_from, layer_to) (0, 0 = all), the probability each key receives
 * (summed over its group's query heads) into a dense device array indexed by original token
 * index, of at least cap entries (grown as needed). Decode steps then run without CUDA
 * graphs. cuda_probe_take copies entries [0, n) to host and zeroes them. 0, or -1 + err. */
int cuda_probe_set(cuda_state *g, int on, int layer_from, int layer_to, int64_t cap, char *err, size_t n);
int cuda_probe_take(cuda_state *g, float *host, int64_t n);
/* Wait for queued work. 0, or -1 with err (an asynchronous CUDA error). */
int cuda_sync(cuda_state *g, char *err, size_t n);

/* Copy the cache contents of every (layer, KV head) to / from host heads[n_layer * n_kv]
 * (cascade_head_alloc'd with the same S, N, D; og may be NULL on download to skip it). */
int cuda_state_download(cuda_state *g, cascade_head *heads);
int cuda_state_upload(cuda_state *g, const cascade_head *heads);

size_t cuda_state_cache_bytes(const cuda_state *g);
size_t cuda_state_device_bytes(const cuda_state *g);
/* One line: device, weight residency, GEMM precision, attention path. */
const char *cuda_state_describe(const cuda_state *g);

/* For benchmarks: time in milliseconds of the last cuda_forward's GPU work, measured
 * with events when CR_CUDA_TIMING=1 is set in the environment (else 0). */
float cuda_state_last_ms(const cuda_state *g);
/* For benchmarks: turn that event timing on or off (it synchronizes after every forward). */
void cuda_state_set_timing(cuda_state *g, int on);
/* For benchmarks only: decode steps leave out these kernels (the results are then wrong; the
 * time saved is each kind's marginal cost in the step). 0 restores the whole step. */
enum { CUDA_SKIP_NORM = 1, CUDA_SKIP_SWIGLU = 2, CUDA_SKIP_ATTN = 4, CUDA_SKIP_MATVEC = 8, CUDA_SKIP_UPDATE = 16 };
void cuda_state_set_bench_skip(cuda_state *g, int mask);
#endif
