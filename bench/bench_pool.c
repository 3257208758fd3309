/* bench_pool.c - end-to-end cost per trivial job: cxpool (with and without
 * context propagation, with K variables set) against GLib's GThreadPool and
 * against GThreadPool carrying K pthread keys by hand.
 *
 * Workload of every figure: one submitting thread pushes BENCH_JOBS jobs
 * into a pool of 2 worker threads, then waits until all
 * have run; the figure is (elapsed time) / jobs, from the first submit to
 * the wake-up after the last job. Jobs are fire-and-forget (no futures):
 * each job counts its completion in a shared atomic counter and the job
 * that completes the last one posts a semaphore the submitter waits on.
 * The same completion scheme is used for every pool.
 *
 * Figures (median of BENCH_REPS interleaved repetitions, default 25, of
 * BENCH_JOBS jobs each, default 200,000: many short samples taken in
 * turn, so that a burst of load from elsewhere hits every figure alike and
 * the median rides over it; each figure is followed by name_spread, the
 * interquartile range of its samples divided by their median):
 *   pool_job_ns             cx_pool_submit from a context holding 1
 *                           variable (the job does not read it)
 *   pool_job_noprop_ns      cx_pool_submit_in(NULL): a fresh empty context
 *   pool_job_scope_ns       as pool_job_ns, submitted inside CX_WITH_SCOPE
 *                           of a scope that is never cancelled and has no
 *                           deadline (SPEC 5.5: <= 1.05 x pool_job_ns)
 *   gthreadpool_job_ns      GThreadPool (2 exclusive threads)
 *   pool_job_busy_ns        pool_job_ns while a spinning thread of the
 *                           benchmark keeps one CPU busy (SPEC 5.5: the
 *                           pool must keep its lead when a CPU is taken)
 *   gthreadpool_job_busy_ns gthreadpool_job_ns, the same spinner running
 *   manual_keys_job_ns@K    what C users write today, with GThreadPool as
 *                           the carrier: at submit the job struct is
 *                           malloc'ed and captures K pthread keys' values;
 *                           the worker saves its own values of the K keys,
 *                           sets the captured ones with pthread_setspecific,
 *                           runs the job (which reads key 0), restores the
 *                           saved values and frees the struct
 *   cxpool_vars_job_ns@K    cx_pool_submit from a context with K variables
 *                           set; the job reads one of them with cx_var_get
 *   pool_job_local_unbound_ns  as pool_job_ns, in a program that has a
 *                           CX_VAR_LOCAL variable (SPEC 5.4), not bound in
 *                           the submitter's context: the capture stays O(1)
 *   pool_job_local_bound_ns as pool_job_ns with that local variable bound
 *                           too: each capture leaves it out (a delete from
 *                           a private copy of the map)
 *   pool_job_inspected_ns   as pool_job_ns while a monitor thread calls
 *                           cx_pool_inspect on the pool every millisecond
 *                           (each call copies the running jobs' contexts)
 * BENCH_FILTER=name (or prefix*), or a comma-separated list of them,
 * runs only the figures named so.
 * Jobs that read a propagated value check it (a wrong value aborts the run:
 * the figure would be meaningless).
 *
 * GThreadPool's queue is unbounded; cxpool's is bounded (submit blocks when
 * full). So that a slow consumer cannot make GLib's queue hold a million
 * jobs (and their memory), the GLib submitter pauses while more than
 * GLIB_BACKLOG jobs wait, checked every 1024 pushes.
 */
#include <glib.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bench.h"
#include "cxpool.h"

#define MAX_REPS 63
#define MAX_K 64
#define WORKERS 2
#define GLIB_BACKLOG 65536

static const unsigned kK[] = {1, 8, 64};
#define NK (sizeof(kK) / sizeof(kK[0]))

typedef struct counter {
    _Alignas(64) atomic_ulong done;
    _Alignas(64) unsigned long target;
    sem_t sem;
} counter;

static counter cnt;
static atomic_ulong bad_values;

static inline void count_one(counter *c)
{
    if (atomic_fetch_add_explicit(&c->done, 1, memory_order_acq_rel) + 1 == c->target)
        sem_post(&c->sem);
}

static void counter_arm(counter *c, unsigned long n)
{
    atomic_store(&c->done, 0);
    c->target = n;
}

static void counter_wait(counter *c)
{
    while (sem_wait(&c->sem) != 0)
        ;
}

/* ------------------------------------------------------------ cxpool */

static cx_pool *pool;
static cx_var *var_local;     /* CX_VAR_LOCAL */
static cx_context *ctx_local; /* vars[0] = 1 and var_local bound */
static cx_var *vars[MAX_K];
static cx_context *ctx_k[NK]; /* K variables set: vars[i] = i + 1 */

static void *job_trivial(void *arg)
{
    count_one(arg);
    return NULL;
}

static void *job_read(void *arg)
{
    void *v;
    if (cx_var_get(vars[0], &v) != 0 || v != (void *)1)
        atomic_fetch_add_explicit(&bad_values, 1, memory_order_relaxed);
    count_one(arg);
    return NULL;
}

struct submit_args {
    unsigned long n;
    bool prop;
    void *(*fn)(void *);
    double result;
    cx_scope *scope; /* if not NULL: the loop runs in CX_WITH_SCOPE(scope) */
};

static void submit_timed(struct submit_args *a)
{
    unsigned long n = a->n;
    int rc = 0;
    counter_arm(&cnt, n);
    uint64_t t0 = bench_now_ns();
    if (a->prop)
        for (unsigned long i = 0; i < n; i++)
            rc |= cx_pool_submit(pool, a->fn, &cnt, NULL);
    else
        for (unsigned long i = 0; i < n; i++)
            rc |= cx_pool_submit_in(pool, NULL, a->fn, &cnt, NULL);
    counter_wait(&cnt);
    a->result = (double)(bench_now_ns() - t0) / (double)n;
    BENCH_CHECK(rc == 0);
}

/* Runs in the submitter's context (entered by cx_context_run). */
static void *submit_loop(void *arg)
{
    struct submit_args *a = arg;
    if (a->scope != NULL) {
        bool ran = false;
        CX_WITH_SCOPE(a->scope)
        {
            submit_timed(a);
            ran = true;
        }
        BENCH_CHECK(ran);
    } else {
        submit_timed(a);
    }
    return NULL;
}

static double run_cxpool_in(cx_context *ctx, bool prop, void *(*fn)(void *), unsigned long n,
                            cx_scope *scope)
{
    struct submit_args a = {n, prop, fn, 0, scope};
    BENCH_CHECK(cx_context_run(ctx, submit_loop, &a, NULL) == 0);
    return a.result;
}

static double run_cxpool(cx_context *ctx, bool prop, void *(*fn)(void *), unsigned long n)
{
    return run_cxpool_in(ctx, prop, fn, n, NULL);
}

static int inspect_one(const cx_worker_info *w, void *arg)
{
    (void)arg;
    cx_context_release(w->ctx);
    return 0;
}

static atomic_int monitor_stop;

static void *monitor(void *arg)
{
    (void)arg;
    while (!atomic_load(&monitor_stop)) {
        BENCH_CHECK(cx_pool_inspect(pool, inspect_one, NULL) == 0);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return NULL;
}

static double run_inspected(cx_context *ctx, unsigned long n)
{
    pthread_t t;
    atomic_store(&monitor_stop, 0);
    BENCH_CHECK(pthread_create(&t, NULL, monitor, NULL) == 0);
    double r = run_cxpool(ctx, true, job_trivial, n);
    atomic_store(&monitor_stop, 1);
    BENCH_CHECK(pthread_join(t, NULL) == 0);
    return r;
}

static cx_scope *bench_scope; /* never cancelled, no deadline */

/* ------------------------------------------------------------ GLib */

static GThreadPool *gpool, *gpool_manual;
static pthread_key_t keys[MAX_K];

static void gjob_trivial(gpointer data, gpointer user)
{
    (void)user;
    count_one(data);
}

typedef struct manual_job {
    counter *c;
    unsigned k;
    void *vals[];
} manual_job;

static void gjob_manual(gpointer data, gpointer user)
{
    (void)user;
    manual_job *j = data;
    unsigned k = j->k;
    void *saved[MAX_K];
    for (unsigned i = 0; i < k; i++) {
        saved[i] = pthread_getspecific(keys[i]);
        pthread_setspecific(keys[i], j->vals[i]);
    }
    /* the job itself: reads one propagated value */
    if (pthread_getspecific(keys[0]) != (void *)1)
        atomic_fetch_add_explicit(&bad_values, 1, memory_order_relaxed);
    for (unsigned i = 0; i < k; i++)
        pthread_setspecific(keys[i], saved[i]);
    counter *c = j->c;
    free(j);
    count_one(c);
}

static void glib_throttle(GThreadPool *gp, unsigned long i)
{
    if ((i & 1023) == 0)
        while (g_thread_pool_unprocessed(gp) > GLIB_BACKLOG)
            usleep(50);
}

static double run_gthreadpool(unsigned long n)
{
    counter_arm(&cnt, n);
    uint64_t t0 = bench_now_ns();
    for (unsigned long i = 0; i < n; i++) {
        g_thread_pool_push(gpool, &cnt, NULL); /* data must not be NULL */
        glib_throttle(gpool, i);
    }
    counter_wait(&cnt);
    return (double)(bench_now_ns() - t0) / (double)n;
}

static double run_manual(unsigned k, unsigned long n)
{
    counter_arm(&cnt, n);
    uint64_t t0 = bench_now_ns();
    for (unsigned long i = 0; i < n; i++) {
        manual_job *j = malloc(sizeof(*j) + k * sizeof(void *));
        BENCH_CHECK(j != NULL);
        j->c = &cnt;
        j->k = k;
        for (unsigned x = 0; x < k; x++)
            j->vals[x] = pthread_getspecific(keys[x]);
        g_thread_pool_push(gpool_manual, j, NULL);
        glib_throttle(gpool_manual, i);
    }
    counter_wait(&cnt);
    return (double)(bench_now_ns() - t0) / (double)n;
}

/* ------------------------------------------------------------ driver */

enum kind { F_POOL, F_NOPROP, F_GLIB, F_MANUAL, F_VARS, F_POOL_BUSY, F_GLIB_BUSY, F_SCOPE,
            F_LOCAL_UNBOUND, F_LOCAL_BOUND, F_INSPECTED };

/* ------------------------------------------------------------ busy CPU */

static atomic_bool spin_stop;
static pthread_t spinner;

static void *spin(void *arg)
{
    (void)arg;
    unsigned long x = 0;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
        BENCH_SINK(++x);
    return NULL;
}

static void busy_start(void)
{
    atomic_store(&spin_stop, false);
    BENCH_CHECK(pthread_create(&spinner, NULL, spin, NULL) == 0);
}

static void busy_stop(void)
{
    atomic_store(&spin_stop, true);
    BENCH_CHECK(pthread_join(spinner, NULL) == 0);
}

typedef struct fig {
    char name[48];
    enum kind kind;
    unsigned ki; /* index in kK */
    double s[MAX_REPS];
} fig;

static fig figs[32];
static int nfigs;

static double sample(const fig *f, unsigned long n)
{
    switch (f->kind) {
    case F_POOL:
        return run_cxpool(ctx_k[0], true, job_trivial, n);
    case F_NOPROP:
        return run_cxpool(ctx_k[0], false, job_trivial, n);
    case F_LOCAL_UNBOUND:
        return run_cxpool(ctx_k[0], true, job_trivial, n);
    case F_LOCAL_BOUND:
        return run_cxpool(ctx_local, true, job_trivial, n);
    case F_INSPECTED:
        return run_inspected(ctx_k[0], n);
    case F_SCOPE:
        return run_cxpool_in(ctx_k[0], true, job_trivial, n, bench_scope);
    case F_GLIB:
        return run_gthreadpool(n);
    case F_MANUAL:
        return run_manual(kK[f->ki], n);
    case F_VARS:
        return run_cxpool(ctx_k[f->ki], true, job_read, n);
    case F_POOL_BUSY:
    case F_GLIB_BUSY: {
        busy_start();
        double r = f->kind == F_POOL_BUSY ? run_cxpool(ctx_k[0], true, job_trivial, n)
                                          : run_gthreadpool(n);
        busy_stop();
        return r;
    }
    }
    return 0;
}

static void add(enum kind kind, unsigned ki, const char *name)
{
    fig *f = &figs[nfigs++];
    f->kind = kind;
    f->ki = ki;
    snprintf(f->name, sizeof(f->name), "%s", name);
}

static void *set_local(void *arg)
{
    BENCH_CHECK(cx_var_set(var_local, (void *)1, NULL) == 0);
    return arg;
}

static void *fill(void *arg)
{
    unsigned k = *(unsigned *)arg;
    for (unsigned i = 0; i < k; i++)
        BENCH_CHECK(cx_var_set(vars[i], (void *)(uintptr_t)(i + 1), NULL) == 0);
    return NULL;
}

int main(void)
{
    unsigned long jobs = (unsigned long)bench_env_long("BENCH_JOBS", 200000);
    /* More repetitions than the core figures: wake-ups of sleeping workers
     * make single pool samples much noisier. */
    int reps = (int)bench_env_long("BENCH_REPS", 25);
    if (reps > MAX_REPS)
        reps = MAX_REPS;

    BENCH_CHECK(sem_init(&cnt.sem, 0, 0) == 0);
    cx_pool_opts o = {.threads = WORKERS, .queue_size = 0};
    BENCH_CHECK(cx_pool_new(&pool, &o) == 0);
    cx_var_opts lo = {.flags = CX_VAR_LOCAL};
    BENCH_CHECK(cx_var_new(&var_local, "bench.local", &lo) == 0);
    for (unsigned i = 0; i < MAX_K; i++) {
        BENCH_CHECK(cx_var_new(&vars[i], "bench.var", NULL) == 0);
        BENCH_CHECK(pthread_key_create(&keys[i], NULL) == 0);
        BENCH_CHECK(pthread_setspecific(keys[i], (void *)(uintptr_t)(i + 1)) == 0);
    }
    for (unsigned k = 0; k < NK; k++) {
        ctx_k[k] = cx_context_new();
        BENCH_CHECK(ctx_k[k] != NULL);
        BENCH_CHECK(cx_context_run(ctx_k[k], fill, (void *)&kK[k], NULL) == 0);
    }
    BENCH_CHECK(cx_scope_new(&bench_scope, NULL) == 0);
    ctx_local = cx_context_new();
    BENCH_CHECK(ctx_local != NULL);
    BENCH_CHECK(cx_context_run(ctx_local, fill, (void *)&kK[0], NULL) == 0);
    BENCH_CHECK(cx_context_run(ctx_local, set_local, NULL, NULL) == 0);
    GError *err = NULL;
    gpool = g_thread_pool_new(gjob_trivial, NULL, WORKERS, TRUE, &err);
    BENCH_CHECK(gpool != NULL);
    gpool_manual = g_thread_pool_new(gjob_manual, NULL, WORKERS, TRUE, &err);
    BENCH_CHECK(gpool_manual != NULL);

    char nm[48];
    add(F_POOL, 0, "pool_job_ns");
    add(F_NOPROP, 0, "pool_job_noprop_ns");
    add(F_SCOPE, 0, "pool_job_scope_ns");
    add(F_GLIB, 0, "gthreadpool_job_ns");
    add(F_POOL_BUSY, 0, "pool_job_busy_ns");
    add(F_GLIB_BUSY, 0, "gthreadpool_job_busy_ns");
    for (unsigned k = 0; k < NK; k++) {
        snprintf(nm, sizeof(nm), "manual_keys_job_ns@%u", kK[k]);
        add(F_MANUAL, k, nm);
    }
    for (unsigned k = 0; k < NK; k++) {
        snprintf(nm, sizeof(nm), "cxpool_vars_job_ns@%u", kK[k]);
        add(F_VARS, k, nm);
    }
    add(F_LOCAL_UNBOUND, 0, "pool_job_local_unbound_ns");
    add(F_LOCAL_BOUND, 0, "pool_job_local_bound_ns");
    add(F_INSPECTED, 0, "pool_job_inspected_ns");

    /* BENCH_FILTER=name (or prefix*), or several separated by commas:
     * only those figures (for profiling, or a ratio and its anchor). */
    const char *filter = getenv("BENCH_FILTER");
    if (filter != NULL && *filter != '\0') {
        int kept = 0;
        for (int i = 0; i < nfigs; i++) {
            bool keep = false;
            for (const char *f = filter; *f != '\0' && !keep;) {
                size_t fl = strcspn(f, ",");
                bool prefix = fl > 0 && f[fl - 1] == '*';
                if (fl > 0)
                    keep = prefix ? strncmp(figs[i].name, f, fl - 1) == 0
                                  : strlen(figs[i].name) == fl &&
                                        strncmp(figs[i].name, f, fl) == 0;
                f += fl + (f[fl] == ',');
            }
            if (keep)
                figs[kept++] = figs[i];
        }
        nfigs = kept;
    }

    /* Warm-up: threads started, allocator pools and queues grown. */
    for (int i = 0; i < nfigs; i++)
        (void)sample(&figs[i], jobs / 10 + 1);
    for (int r = 0; r < reps; r++)
        for (int j = 0; j < nfigs; j++) {
            fig *f = &figs[(j + r) % nfigs];
            f->s[r] = sample(f, jobs);
        }
    BENCH_CHECK(atomic_load(&bad_values) == 0);
    for (int i = 0; i < nfigs; i++) {
        fig *f = &figs[i];
        if (getenv("BENCH_VERBOSE") != NULL) {
            double lo = f->s[0], hi = f->s[0];
            for (int r = 1; r < reps; r++) {
                lo = f->s[r] < lo ? f->s[r] : lo;
                hi = f->s[r] > hi ? f->s[r] : hi;
            }
            fprintf(stderr, "  %-26s min %8.2f max %8.2f:", f->name, lo, hi);
            for (int r = 0; r < reps; r++)
                fprintf(stderr, " %.0f", f->s[r]);
            fprintf(stderr, "\n");
        }
        double med = bench_median(f->s, reps); /* sorts f->s */
        bench_print(f->name, med, "ns");
        char sp[72];
        snprintf(sp, sizeof(sp), "%.48s_spread", f->name);
        bench_print(sp, (f->s[(3 * reps) / 4] - f->s[reps / 4]) / med, "frac");
    }

    g_thread_pool_free(gpool, FALSE, TRUE);
    g_thread_pool_free(gpool_manual, FALSE, TRUE);
    cx_pool_free(pool);
    cx_scope_release(bench_scope);
    cx_context_release(ctx_local);
    cx_var_release(var_local);
    for (unsigned k = 0; k < NK; k++)
        cx_context_release(ctx_k[k]);
    for (unsigned i = 0; i < MAX_K; i++)
        cx_var_release(vars[i]);
    sem_destroy(&cnt.sem);
    return 0;
}
