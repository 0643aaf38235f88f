/* A small persistent thread pool: parallel_for over [0, n) with the calling
 * thread taking part. Workers spin briefly between jobs (decode issues a job
 * per matrix, so a condition-variable wake-up per job would dominate), then sleep. */
#ifndef CR_THREADPOOL_H
#define CR_THREADPOOL_H
#include <stdint.h>

typedef struct threadpool threadpool;
/* fn(ctx, begin, end, thread_index) handles items [begin, end). */
typedef void (*tp_fn)(void *ctx, int64_t begin, int64_t end, int tid);

threadpool *tp_create(int n_threads);          /* n_threads >= 1 (1 = no workers) */
void tp_destroy(threadpool *tp);
int tp_threads(const threadpool *tp);
/* Split [0,n) into chunks of `grain` items handed out dynamically. */
void tp_for(threadpool *tp, int64_t n, int64_t grain, tp_fn fn, void *ctx);
/* Same, but thread t first takes the contiguous block [t*h, (t+1)*h), h = 80% of n split
 * evenly (one stream of memory per thread, no shared counter), then the rest in chunks of
 * `grain` handed out dynamically (for the skew of a shared machine). */
void tp_for_blocked(threadpool *tp, int64_t n, int64_t grain, tp_fn fn, void *ctx);
/* A job streaming fewer bytes than 128 KB runs on the caller alone (pass tp_or_serial()'s result
 * as the pool): handing a job to the other threads and waiting for them costs microseconds,
 * more than a small matrix-vector product (the story models' decode: every layer matrix is
 * below it). Overridable with CR_TP_SERIAL_BYTES for measurements. */
threadpool *tp_or_serial(threadpool *tp, double bytes);
/* Number of online CPUs. */
int tp_default_threads(void);
#endif
