#include "threadpool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

struct threadpool {
    int n;                       /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int gen;              /* job generation */
    atomic_int sleeping;
    atomic_int busy;             /* workers still in the current job */
    atomic_int quit;
    /* current job */
    tp_fn fn; void *ctx; int64_t n_items, grain, head;   /* head: items of each thread's own block */
    atomic_llong next;
};

/* tp_for_blocked: the share of the items split evenly up front (decode tg128 with 2 threads:
 * Q4_K 217 -> 322 t/s at 75%, 328 at 90%; the rest stays dynamic for a shared machine). */
#define TP_HEAD_PCT 80
typedef struct { threadpool *tp; int tid; } worker_arg;

static void run_job(threadpool *tp, int tid) {
    if (tp->head) tp->fn(tp->ctx, tid * tp->head, (tid + 1) * tp->head, tid);
    for (;;) {
        int64_t b = atomic_fetch_add(&tp->next, tp->grain);
        if (b >= tp->n_items) break;
        int64_t e = b + tp->grain < tp->n_items ? b + tp->grain : tp->n_items;
        tp->fn(tp->ctx, b, e, tid);
    }
}

static void *worker(void *p) {
    worker_arg *a = p; threadpool *tp = a->tp; int tid = a->tid; free(a);
    int seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&tp->gen, memory_order_acquire) == seen && !atomic_load(&tp->quit)) {
            if (++spins < 200000) { cpu_relax(); continue; }
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleeping, 1);
            while (atomic_load(&tp->gen) == seen && !atomic_load(&tp->quit)) pthread_cond_wait(&tp->cv, &tp->mu);
            atomic_fetch_sub(&tp->sleeping, 1);
            pthread_mutex_unlock(&tp->mu);
            spins = 0;
        }
        if (atomic_load(&tp->quit)) return NULL;
        seen = atomic_load(&tp->gen);
        run_job(tp, tid);
        atomic_fetch_sub_explicit(&tp->busy, 1, memory_order_release);
    }
}

int tp_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

threadpool *tp_create(int n) {
    threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->n = n < 1 ? 1 : n;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    tp->th = calloc((size_t)tp->n, sizeof *tp->th);
    for (int i = 1; i < tp->n; i++) {
        worker_arg *a = malloc(sizeof *a); a->tp = tp; a->tid = i;
        pthread_create(&tp->th[i], NULL, worker, a);
    }
    return tp;
}

void tp_destroy(threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->quit, 1);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->th[i], NULL);
    pthread_mutex_destroy(&tp->mu); pthread_cond_destroy(&tp->cv);
    free(tp->th); free(tp);
}

int tp_threads(const threadpool *tp) { return tp ? tp->n : 1; }

static void tp_run(threadpool *tp, int64_t n, int64_t grain, int64_t head, tp_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!tp || tp->n == 1 || n <= grain) { fn(ctx, 0, n, 0); return; }
    tp->fn = fn; tp->ctx = ctx; tp->n_items = n; tp->grain = grain; tp->head = head;
    atomic_store(&tp->next, head * tp->n);
    atomic_store(&tp->busy, tp->n - 1);
    /* gen++ then look for sleepers; a worker does sleeping++ then looks at gen
     * (both sequentially consistent), so one of the two always sees the other. */
    atomic_fetch_add(&tp->gen, 1);
    if (atomic_load(&tp->sleeping)) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->cv);
        pthread_mutex_unlock(&tp->mu);
    }
    run_job(tp, 0);
    while (atomic_load_explicit(&tp->busy, memory_order_acquire) > 0) cpu_relax();
}

void tp_for(threadpool *tp, int64_t n, int64_t grain, tp_fn fn, void *ctx) { tp_run(tp, n, grain, 0, fn, ctx); }

void tp_for_blocked(threadpool *tp, int64_t n, int64_t grain, tp_fn fn, void *ctx) {
    int nt = tp_threads(tp);
    tp_run(tp, n, grain, n * TP_HEAD_PCT / 100 / nt, fn, ctx);
}

static double serial_bytes = -1;
static void serial_bytes_init(void) {
    const char *e = getenv("CR_TP_SERIAL_BYTES");
    serial_bytes = e ? atof(e) : 128 * 1024;
}
threadpool *tp_or_serial(threadpool *tp, double bytes) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, serial_bytes_init);
    return bytes < serial_bytes ? NULL : tp;
}
