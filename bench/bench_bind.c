/* bench_bind.c - what making a foreign executor context-aware costs:
 * cx_bind at submit + cx_callback_invoke in the executor, against the same
 * executor carrying a bare function pointer and argument (SPEC 5.5).
 *
 * The executor is a plain pthread work queue, the kind C programs write
 * themselves (examples/pthread_queue.c): a bounded ring of (fn, arg)
 * pairs under one mutex, a condition variable per side, signalled only
 * when the other side sleeps. One producer thread pushes BENCH_JOBS items
 * (default 500,000), one consumer thread pops and calls them; the figure
 * is (elapsed time) / items, from the first push to the consumer having
 * run the last one (a final marker item posts a semaphore).
 *
 * Figures (median of BENCH_REPS interleaved repetitions, default 9):
 *   queue_bare_ns    the item is (work, arg): the consumer calls work(arg)
 *   bind_invoke_ns   the producer, whose context holds 1 variable, calls
 *                    cx_bind(&cb, work, arg, 0) and pushes
 *                    (cx_callback_invoke, cb); the consumer calls
 *                    cx_callback_invoke(cb): work(arg) in a copy of the
 *                    producer's context, then the callback is released
 *   queue_malloc_free_ns  for scale: the item is (free, malloc(96)), a
 *                    block the size of a callback allocated by the producer
 *                    and freed by the consumer: what the allocator alone
 *                    adds when a block crosses threads
 *   gthreadpool_bare_ns, gthreadpool_bind_ns  the same pair on GLib's
 *                    GThreadPool (1 exclusive thread), the executor C
 *                    programs most often use instead of their own queue:
 *                    g_thread_pool_push(pool, arg) with a func calling
 *                    work(arg), against g_thread_pool_push(pool, cb) with
 *                    a func calling cx_callback_invoke(cb); BENCH_JOBS / 5
 *                    items per sample (a GLib item costs ~10x more)
 * work() does the same in all (bumps a counter of the consumer's). Before
 * timing, one bound item checks that the consumer sees the producer's
 * value (a wrong value aborts the run).
 */
#include <glib.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>

#include "bench.h"
#include "cxvars.h"

#define MAX_REPS 31

/* ----------------------------------------------------------- the queue */

/* Unbounded, as GLib's GAsyncQueue and libuv's work queue are: the
 * producer never waits; the consumer sleeps when the queue is empty and
 * the producer signals only a sleeping consumer. (The ring is allocated
 * once, large enough for a whole sample: "unbounded" without a resize
 * in the measurement.) */
typedef struct item {
    void (*fn)(void *);
    void *arg;
} item;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty;
    item *ring;
    size_t cap, head, count;
    bool consumer_waits;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .not_empty = PTHREAD_COND_INITIALIZER};

static void push(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&q.mu);
    BENCH_CHECK(q.count < q.cap);
    q.ring[(q.head + q.count++) % q.cap] = (item){fn, arg};
    if (q.consumer_waits) {
        q.consumer_waits = false;
        pthread_cond_signal(&q.not_empty);
    }
    pthread_mutex_unlock(&q.mu);
}

static item pop(void)
{
    pthread_mutex_lock(&q.mu);
    while (q.count == 0) {
        q.consumer_waits = true;
        pthread_cond_wait(&q.not_empty, &q.mu);
    }
    item it = q.ring[q.head];
    q.head = (q.head + 1) % q.cap;
    q.count--;
    pthread_mutex_unlock(&q.mu);
    return it;
}

static void *consumer(void *unused)
{
    (void)unused;
    for (;;) {
        item it = pop();
        if (it.fn == NULL)
            return NULL;
        it.fn(it.arg);
    }
}

/* ----------------------------------------------------------- the work */

static unsigned long work_done; /* the consumer's */
static sem_t sample_done;

static void *work(void *arg)
{
    BENCH_SINK(arg);
    work_done++;
    return NULL;
}

static void bare_work(void *arg) { (void)work(arg); }

static void marker(void *unused)
{
    (void)unused;
    sem_post(&sample_done);
}

static void wait_marker(void)
{
    while (sem_wait(&sample_done) != 0)
        ;
}

/* GThreadPool: one pool per figure (a pool has one func); the marker is
 * an item whose data is &sample_done. */
static GThreadPool *gpool_bare, *gpool_bind;

static void gfunc_bare(gpointer data, gpointer unused)
{
    (void)unused;
    if (data == &sample_done)
        sem_post(&sample_done);
    else
        (void)work(data);
}

static void gfunc_bind(gpointer data, gpointer unused)
{
    (void)unused;
    if (data == &sample_done)
        sem_post(&sample_done);
    else
        cx_callback_invoke(data);
}

enum { F_BARE, F_BIND, F_MALLOC, F_GBARE, F_GBIND, NFIGS };
#define CALLBACK_BYTES 96 /* sizeof a default-mode callback on x86-64 */

static double sample(int kind, unsigned long n)
{
    uint64_t t0 = bench_now_ns();
    if (kind == F_BARE) {
        for (unsigned long i = 0; i < n; i++)
            push(bare_work, (void *)(uintptr_t)i);
    } else if (kind == F_MALLOC) {
        for (unsigned long i = 0; i < n; i++) {
            void *p = malloc(CALLBACK_BYTES);
            BENCH_CHECK(p != NULL);
            push(free, p);
        }
    } else if (kind == F_BIND) {
        for (unsigned long i = 0; i < n; i++) {
            cx_callback *cb;
            BENCH_CHECK(cx_bind(&cb, work, (void *)(uintptr_t)i, 0) == 0);
            push(cx_callback_invoke, cb);
        }
    } else if (kind == F_GBARE) {
        for (unsigned long i = 0; i < n; i++)
            g_thread_pool_push(gpool_bare, (gpointer)(uintptr_t)(i + 1), NULL);
        g_thread_pool_push(gpool_bare, &sample_done, NULL);
    } else {
        for (unsigned long i = 0; i < n; i++) {
            cx_callback *cb;
            BENCH_CHECK(cx_bind(&cb, work, (void *)(uintptr_t)i, 0) == 0);
            g_thread_pool_push(gpool_bind, cb, NULL);
        }
        g_thread_pool_push(gpool_bind, &sample_done, NULL);
    }
    if (kind < F_GBARE)
        push(marker, NULL);
    wait_marker();
    return (double)(bench_now_ns() - t0) / (double)n;
}

/* The check: the consumer sees the producer's value. */
static cx_var *var;
static void *read_var(void *expected)
{
    void *v = NULL;
    if (cx_var_get(var, &v) != 0 || v != expected) {
        fprintf(stderr, "bench_bind: the consumer saw %p, not %p\n", v, expected);
        exit(2);
    }
    return NULL;
}

int main(void)
{
    unsigned long jobs = (unsigned long)bench_env_long("BENCH_JOBS", 500000);
    int reps = (int)bench_env_long("BENCH_REPS", 9);
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    BENCH_CHECK(sem_init(&sample_done, 0, 0) == 0);
    q.cap = jobs + 16;
    q.ring = malloc(q.cap * sizeof(*q.ring));
    BENCH_CHECK(q.ring != NULL);
    BENCH_CHECK(cx_var_new(&var, "bench.request", NULL) == 0);
    static int request;
    BENCH_CHECK(cx_var_set(var, &request, NULL) == 0);
    pthread_t th;
    BENCH_CHECK(pthread_create(&th, NULL, consumer, NULL) == 0);

    cx_callback *cb;
    BENCH_CHECK(cx_bind(&cb, read_var, &request, 0) == 0);
    push(cx_callback_invoke, cb);

    static const char *const names[NFIGS] = {"queue_bare_ns", "bind_invoke_ns",
                                             "queue_malloc_free_ns", "gthreadpool_bare_ns",
                                             "gthreadpool_bind_ns"};
    GError *err = NULL;
    gpool_bare = g_thread_pool_new(gfunc_bare, NULL, 1, TRUE, &err);
    gpool_bind = g_thread_pool_new(gfunc_bind, NULL, 1, TRUE, &err);
    BENCH_CHECK(gpool_bare != NULL && gpool_bind != NULL);
    const char *filter = getenv("BENCH_FILTER");
    bool on[NFIGS];
    for (int k = 0; k < NFIGS; k++) {
        on[k] = true;
        if (filter != NULL && *filter != '\0') {
            size_t fl = strlen(filter);
            on[k] = filter[fl - 1] == '*' ? strncmp(names[k], filter, fl - 1) == 0
                                          : strcmp(names[k], filter) == 0;
        }
    }
    /* Warm-up: the consumer running, the allocator's pools grown. */
    for (int k = 0; k < NFIGS; k++)
        if (on[k])
            (void)sample(k, jobs / 10 + 1);
    unsigned long gjobs = jobs / 5 + 1;
    double s[NFIGS][MAX_REPS];
    for (int r = 0; r < reps; r++)
        for (int j = 0; j < NFIGS; j++) {
            int k = (j + r) % NFIGS;
            if (on[k])
                s[k][r] = sample(k, k >= F_GBARE ? gjobs : jobs);
        }
    push(NULL, NULL);
    BENCH_CHECK(pthread_join(th, NULL) == 0);
    g_thread_pool_free(gpool_bare, FALSE, TRUE);
    g_thread_pool_free(gpool_bind, FALSE, TRUE);
    for (int k = 0; k < NFIGS; k++) {
        if (!on[k])
            continue;
        if (getenv("BENCH_VERBOSE") != NULL) {
            fprintf(stderr, "  %-26s", names[k]);
            for (int r = 0; r < reps; r++)
                fprintf(stderr, " %.1f", s[k][r]);
            fprintf(stderr, "\n");
        }
        bench_print(names[k], bench_median(s[k], reps), "ns");
    }
    cx_var_release(var);
    sem_destroy(&sample_done);
    free(q.ring);
    return 0;
}
