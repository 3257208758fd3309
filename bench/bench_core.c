/* bench_core.c - speed of the core API (get, set/reset, copy, run, CX_WITH)
 * beside its anchors (a TLS read, pthread_getspecific, malloc+free of 48
 * bytes, an atomic increment+decrement pair), all in one process, linked
 * against the shared library.
 *
 * Method
 *  - Every figure is a loop of `iters` operations timed with
 *    CLOCK_MONOTONIC; the value is ns per operation (loop overhead
 *    included, for the anchors as well). `iters` is calibrated once per
 *    figure so that one sample lasts about BENCH_SAMPLE_MS (default 12 ms).
 *  - BENCH_REPS repetitions (default 7), interleaved: each repetition takes
 *    one sample of every figure in turn (round robin, starting one figure
 *    later each time), so a drift of the machine's speed hits both sides of
 *    a ratio alike. The reported value is the median of the samples.
 *  - Results are kept alive: every value read goes through an asm sink and
 *    every status is or-ed together and checked after the loop. All cx_*
 *    calls are calls into the shared library through the PLT, as for users.
 *  - BENCH_FILTER=name (or prefix*) runs only the figures named so.
 *  - Figures @N run in a thread of their own (a "lane", one per N) whose
 *    own context holds N variables: sets and resets happen where they
 *    usually do, in a thread's base context, which no other thread can
 *    reach. The main thread only dispatches (one lane at a time, nothing
 *    runs concurrently); each lane times its own loop. The anchors and the
 *    figures without @N run in the lane of N = 10, so malloc and the
 *    library's allocations share that thread's arena.
 *  - set_reset_ns@N sets and resets the lane's middle variable, except at
 *    N = 10 (the SPEC's figure), where it takes each of the 10 in turn: a
 *    variable's depth in the map is the luck of where malloc put it (its
 *    hash is its address's), and one of 10 keys over 32 root slots sits a
 *    level deeper often enough to decide a verdict (bench_icount.c).
 *  - set_reset_run_ns@10 (extra) is the same pair inside cx_context_run of
 *    a context made by cx_context_new (which other threads may read, so a
 *    set takes the context's lock).
 *  - Watchers (SPEC 5.4), lane 10; a no-op watcher is registered for the
 *    sample only (cx_watch_add before the timed loop, cx_watch_remove
 *    after it), so every other figure runs with no watcher:
 *      set_reset_watcher_ns@10   set+reset of an unwatched variable
 *      set_reset_watched_ns@10   set+reset of a CX_VAR_WATCHED variable
 *                                (a SET and a RESET event delivered)
 *      run_noop_watcher_ns       run of a no-op (ENTER and EXIT delivered)
 *    set_reset_ns@10 and run_noop_ns are the same loops with no watcher.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>

#include "bench.h"
#include "cxvars.h"

#define MAX_REPS 31
#define MAX_FIGS 64
#define MAX_N 100000

static const unsigned kN[] = {1, 10, 100, 1000, 10000, 100000};
#define NN (sizeof(kN) / sizeof(kN[0]))

typedef struct fig fig;
typedef double (*body_fn)(fig *f, uint64_t iters); /* ns per operation */

struct fig {
    char name[48];
    body_fn body;
    unsigned lane;   /* index in kN of the thread that runs it */
    cx_context *ctx; /* run the body inside this context, or NULL */
    cx_var *var;     /* the variable the body works on */
    cx_var **cycle;  /* get_walk: the variables read in turn */
    unsigned ncycle;
    uint64_t iters;
    double s[MAX_REPS];
};

static fig figs[MAX_FIGS];
static int nfigs;

static cx_var *vars[MAX_N]; /* the variables; lane N holds vars[0..N-1] */
static cx_var *var_unset;   /* bound nowhere, no default */
static cx_var *var_default; /* bound nowhere, has a default */
static cx_var *var_watched; /* CX_VAR_WATCHED, bound in lane 10 */
static cx_context *ctx_run; /* empty, for run_noop */
static cx_context *ctx_pub; /* from cx_context_new, 10 vars: set_reset_run */
static pthread_key_t key;
static __thread void *tls_slot;
static int dummy_obj;

/* ------------------------------------------------------------- bodies */

static double body_tls(fig *f, uint64_t n)
{
    (void)f;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        BENCH_BARRIER(); /* forces a fresh load of the TLS slot */
        void *p = tls_slot;
        BENCH_SINK(p);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

static double body_getspecific(fig *f, uint64_t n)
{
    (void)f;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        void *p = pthread_getspecific(key);
        BENCH_SINK(p);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

static double body_malloc(fig *f, uint64_t n)
{
    (void)f;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        void *p = malloc(48);
        BENCH_SINK(p); /* escapes: the pair cannot be elided */
        free(p);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

/* The anchor of run (SPEC 5.5): a locked increment and decrement of one
 * word, what claiming and releasing a context cost at the least. */
static unsigned atomic_word;
static double body_atomic_pair(fig *f, uint64_t n)
{
    (void)f;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        __atomic_fetch_add(&atomic_word, 1, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&atomic_word, 1, __ATOMIC_RELEASE);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

static double body_get(fig *f, uint64_t n)
{
    const cx_var *v = f->var;
    int rc = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        void *out;
        rc |= cx_var_get(v, &out);
        BENCH_SINK(out);
    }
    double r = (double)(bench_now_ns() - t0) / (double)n;
    BENCH_CHECK(rc == 0);
    return r;
}

static double body_get_walk(fig *f, uint64_t n)
{
    cx_var **cyc = f->cycle;
    unsigned m = f->ncycle, j = 0;
    int rc = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        void *out;
        rc |= cx_var_get(cyc[j], &out);
        BENCH_SINK(out);
        if (++j == m)
            j = 0;
    }
    double r = (double)(bench_now_ns() - t0) / (double)n;
    BENCH_CHECK(rc == 0);
    return r;
}

static double body_get_or(fig *f, uint64_t n)
{
    const cx_var *v = f->var;
    void *fallback = &dummy_obj;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        void *out = cx_var_get_or(v, fallback);
        BENCH_SINK(out);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

/* One pair: set (with a token) + reset with that token + token release. */
static double body_set_reset(fig *f, uint64_t n)
{
    cx_var *v = f->var;
    int rc = 0;
    unsigned k = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        if (f->ncycle != 0) { /* every variable of the lane in turn */
            v = f->cycle[k];
            k = k + 1 == f->ncycle ? 0 : k + 1;
        }
        cx_token *tok;
        rc |= cx_var_set(v, (void *)(uintptr_t)(i | 1), &tok);
        rc |= cx_var_reset(v, tok);
        cx_token_release(tok);
    }
    double r = (double)(bench_now_ns() - t0) / (double)n;
    BENCH_CHECK(rc == 0);
    return r;
}

static double body_copy(fig *f, uint64_t n)
{
    (void)f;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        cx_context *c = cx_copy_context();
        BENCH_SINK(c);
        cx_context_release(c);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

static void *noop(void *arg) { return arg; }

static double body_run(fig *f, uint64_t n)
{
    (void)f;
    int rc = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
        rc |= cx_context_run(ctx_run, noop, NULL, NULL);
    double r = (double)(bench_now_ns() - t0) / (double)n;
    BENCH_CHECK(rc == 0);
    return r;
}

static void watch_noop(const cx_watch_event *ev, void *arg)
{
    BENCH_SINK(ev);
    (void)arg;
}

/* body(f, n) with a no-op watcher registered around its timed loop. */
static double with_watcher(double (*body)(fig *, uint64_t), fig *f, uint64_t n)
{
    cx_watcher *w;
    BENCH_CHECK(cx_watch_add(&w, watch_noop, NULL) == 0);
    double r = body(f, n);
    cx_watch_remove(w);
    return r;
}

static double body_set_reset_watcher(fig *f, uint64_t n)
{
    return with_watcher(body_set_reset, f, n);
}

static double body_run_watcher(fig *f, uint64_t n) { return with_watcher(body_run, f, n); }

static double body_with(fig *f, uint64_t n)
{
    cx_var *v = f->var;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        CX_WITH(v, &dummy_obj) { BENCH_BARRIER(); }
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

/* ------------------------------------------------------------- driver */

struct call {
    fig *f;
    uint64_t iters;
    double result;
};

static void *call_body(void *arg)
{
    struct call *c = arg;
    c->result = c->f->body(c->f, c->iters);
    return NULL;
}

typedef struct lane {
    pthread_t thread;
    unsigned n;
    sem_t go, done;
    struct call call; /* the request; call.f == NULL: exit */
} lane;

static lane lanes[NN];

static void lane_setup(lane *l)
{
    BENCH_CHECK(pthread_setspecific(key, &dummy_obj) == 0);
    tls_slot = &dummy_obj;
    for (unsigned i = 0; i < l->n; i++)
        BENCH_CHECK(cx_var_set(vars[i], (void *)(uintptr_t)(i + 1), NULL) == 0);
    void *v;
    BENCH_CHECK(cx_var_get(vars[l->n / 2], &v) == 0 && v == (void *)(uintptr_t)(l->n / 2 + 1));
    cx_context *c = cx_copy_context();
    BENCH_CHECK(c != NULL && cx_context_len(c) == l->n);
    cx_context_release(c);
}

static void *fill(void *arg)
{
    unsigned n = *(unsigned *)arg;
    for (unsigned i = 0; i < n; i++)
        BENCH_CHECK(cx_var_set(vars[i], (void *)(uintptr_t)(i + 1), NULL) == 0);
    return NULL;
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    lane_setup(l);
    if (l->n == 10) {
        BENCH_CHECK(cx_var_set(var_watched, &dummy_obj, NULL) == 0);
        ctx_run = cx_context_new();
        ctx_pub = cx_context_new();
        BENCH_CHECK(ctx_run != NULL && ctx_pub != NULL);
        BENCH_CHECK(cx_context_run(ctx_pub, fill, &l->n, NULL) == 0);
    }
    sem_post(&l->done);
    for (;;) {
        while (sem_wait(&l->go) != 0)
            ;
        struct call *c = &l->call;
        if (c->f == NULL)
            break;
        if (c->f->ctx == NULL)
            call_body(c);
        else
            BENCH_CHECK(cx_context_run(c->f->ctx, call_body, c, NULL) == 0);
        sem_post(&l->done);
    }
    if (l->n == 10) {
        cx_context_release(ctx_run);
        cx_context_release(ctx_pub);
    }
    return NULL;
}

static void lane_wait(lane *l)
{
    while (sem_wait(&l->done) != 0)
        ;
}

static double sample(fig *f, uint64_t iters)
{
    lane *l = &lanes[f->lane];
    l->call = (struct call){f, iters, 0};
    sem_post(&l->go);
    lane_wait(l);
    return l->call.result;
}

static unsigned lane_of(unsigned n)
{
    for (unsigned k = 0; k < NN; k++)
        if (kN[k] == n)
            return k;
    abort();
}

static fig *add(const char *name, body_fn body, unsigned lane, cx_var *var)
{
    BENCH_CHECK(nfigs < MAX_FIGS);
    fig *f = &figs[nfigs++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->body = body;
    f->lane = lane;
    f->var = var;
    return f;
}

static void setup(void)
{
    BENCH_CHECK(pthread_key_create(&key, NULL) == 0);
    for (unsigned i = 0; i < MAX_N; i++)
        BENCH_CHECK(cx_var_new(&vars[i], "bench.var", NULL) == 0);
    BENCH_CHECK(cx_var_new(&var_unset, "bench.unset", NULL) == 0);
    cx_var_opts o = {.has_default = true, .default_value = &dummy_obj};
    BENCH_CHECK(cx_var_new(&var_default, "bench.default", &o) == 0);
    cx_var_opts wo = {.flags = CX_VAR_WATCHED};
    BENCH_CHECK(cx_var_new(&var_watched, "bench.watched", &wo) == 0);
    for (unsigned k = 0; k < NN; k++) {
        lane *l = &lanes[k];
        l->n = kN[k];
        BENCH_CHECK(sem_init(&l->go, 0, 0) == 0 && sem_init(&l->done, 0, 0) == 0);
        BENCH_CHECK(pthread_create(&l->thread, NULL, lane_main, l) == 0);
        lane_wait(l);
    }
}

static void teardown(void)
{
    for (unsigned k = 0; k < NN; k++) {
        lane *l = &lanes[k];
        l->call.f = NULL;
        sem_post(&l->go);
        BENCH_CHECK(pthread_join(l->thread, NULL) == 0);
        sem_destroy(&l->go);
        sem_destroy(&l->done);
    }
    for (unsigned i = 0; i < MAX_N; i++)
        cx_var_release(vars[i]);
    cx_var_release(var_unset);
    cx_var_release(var_default);
    cx_var_release(var_watched);
    for (int i = 0; i < nfigs; i++)
        free(figs[i].cycle);
}

int main(void)
{
    int reps = (int)bench_env_long("BENCH_REPS", 7);
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    double sample_ns = (double)bench_env_long("BENCH_SAMPLE_MS", 12) * 1e6;

    setup();
    char nm[48];
    const unsigned l10 = lane_of(10);
    add("tls_read_ns", body_tls, l10, NULL);
    add("pthread_getspecific_ns", body_getspecific, l10, NULL);
    add("malloc_free_ns", body_malloc, l10, NULL);
    add("atomic_pair_ns", body_atomic_pair, l10, NULL);
    for (unsigned k = 0; k < NN; k++) {
        snprintf(nm, sizeof(nm), "get_hit_ns@%u", kN[k]);
        add(nm, body_get, k, vars[kN[k] / 2]);
    }
    /* Extra, not in SPEC: reads cycling over 1000 different bound
     * variables, far more than the 64-entry per-thread cache holds, so
     * nearly every read walks the map (the uncached path). */
    for (unsigned k = 0; k < NN; k++) {
        if (kN[k] < 1000)
            continue;
        snprintf(nm, sizeof(nm), "get_walk_ns@%u", kN[k]);
        fig *f = add(nm, body_get_walk, k, NULL);
        f->ncycle = 1000;
        f->cycle = malloc(f->ncycle * sizeof(*f->cycle));
        BENCH_CHECK(f->cycle != NULL);
        for (unsigned i = 0; i < f->ncycle; i++)
            f->cycle[i] = vars[(uint64_t)i * kN[k] / f->ncycle];
    }
    add("get_default_ns", body_get, l10, var_default);
    add("get_or_miss_ns", body_get_or, l10, var_unset);
    for (unsigned k = 0; k < NN; k++) {
        snprintf(nm, sizeof(nm), "set_reset_ns@%u", kN[k]);
        fig *f = add(nm, body_set_reset, k, vars[kN[k] / 2]);
        if (kN[k] == 10) {
            /* The SPEC's figure: each of the 10 in turn, as bench_icount
             * does (a variable's depth in the map is the luck of where
             * malloc put it; the average over the 10 is not). */
            f->ncycle = 10;
            f->cycle = malloc(f->ncycle * sizeof(*f->cycle));
            BENCH_CHECK(f->cycle != NULL);
            for (unsigned i = 0; i < f->ncycle; i++)
                f->cycle[i] = vars[i];
        }
    }
    /* set of a variable not yet bound (an insert), reset (a delete). */
    for (unsigned k = 0; k < NN; k++) {
        snprintf(nm, sizeof(nm), "set_reset_new_ns@%u", kN[k]);
        add(nm, body_set_reset, k, var_unset);
    }
    add("set_reset_run_ns@10", body_set_reset, l10, vars[5])->ctx = ctx_pub;
    for (unsigned k = 0; k < NN; k++) {
        snprintf(nm, sizeof(nm), "copy_context_ns@%u", kN[k]);
        add(nm, body_copy, k, NULL);
    }
    add("run_noop_ns", body_run, l10, NULL);
    add("set_reset_watcher_ns@10", body_set_reset_watcher, l10, vars[5]);
    add("set_reset_watched_ns@10", body_set_reset_watcher, l10, var_watched);
    add("run_noop_watcher_ns", body_run_watcher, l10, NULL);
    add("with_scope_ns", body_with, l10, var_unset);

    /* BENCH_FILTER=name keeps only that figure, BENCH_FILTER=prefix* the
     * figures whose name starts with prefix (to profile one with perf). */
    const char *filter = getenv("BENCH_FILTER");
    if (filter != NULL && *filter != '\0') {
        size_t fl = strlen(filter);
        bool prefix = filter[fl - 1] == '*';
        int kept = 0;
        for (int i = 0; i < nfigs; i++) {
            if (prefix ? strncmp(figs[i].name, filter, fl - 1) == 0
                       : strcmp(figs[i].name, filter) == 0)
                figs[kept++] = figs[i];
            else
                free(figs[i].cycle);
        }
        nfigs = kept;
    }

    /* Calibration (doubles as warm-up): grow until a run lasts >= 1/8 of
     * a sample, then scale to a full sample. */
    for (int i = 0; i < nfigs; i++) {
        fig *f = &figs[i];
        uint64_t it = 256;
        double per;
        for (;;) {
            per = sample(f, it);
            if (per * (double)it >= sample_ns / 8 || it >= (1ull << 40))
                break;
            it *= 4;
        }
        f->iters = (uint64_t)(sample_ns / (per > 0.01 ? per : 0.01));
        if (f->iters < 16)
            f->iters = 16;
    }
    for (int r = 0; r < reps; r++)
        for (int j = 0; j < nfigs; j++) {
            fig *f = &figs[(j + r) % nfigs];
            f->s[r] = sample(f, f->iters);
        }
    for (int i = 0; i < nfigs; i++) {
        fig *f = &figs[i];
        if (getenv("BENCH_VERBOSE") != NULL) {
            double lo = f->s[0], hi = f->s[0];
            for (int r = 1; r < reps; r++) {
                lo = f->s[r] < lo ? f->s[r] : lo;
                hi = f->s[r] > hi ? f->s[r] : hi;
            }
            fprintf(stderr, "  %-26s min %8.3f max %8.3f iters %llu\n", f->name, lo, hi,
                    (unsigned long long)f->iters);
        }
        bench_print(f->name, bench_median(f->s, reps), "ns");
    }

    teardown();
    return 0;
}
