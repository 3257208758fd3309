/* test_bind.c - bound callbacks (SPEC 5.2): cx_bind captures the current
 * context at the call; cx_callback_run runs fn in it later, in any thread;
 * cx_callback_invoke runs once and releases the reference handed over.
 * Default mode: each run in a private copy of the capture (runs overlap,
 * writes vanish). CX_BIND_SHARED: one context for every run, runs
 * serialised (a second caller waits, never CX_EBUSY).
 *
 * The whole program runs under a counting allocator (installed before any
 * other call): `live` is the number of library blocks not yet freed, so a
 * test can say "nothing leaked" and "invoke released the callback".
 * test_bind_cached.c compiles these tests again with malloc/free left in
 * place (TEST_BIND_CACHED): the library then caches blocks, so callbacks
 * come from slabs and default runs happen in the thread's own run
 * context, the paths a program normally takes. `live` stays 0 there (its
 * checks hold trivially; make check-asan-cached's LeakSanitizer checks
 * leaks), and the tests that need a failing allocator are left out.
 *
 * cmocka asserts only on the main thread: workers record what they saw,
 * the main thread asserts after joining them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>

#include <cmocka.h>

#include "cx_test.h"
#include "cx_cmocka.h"
#include "cxvars.h"

/* ================================================================ helpers */

static atomic_long live;    /* blocks handed out and not yet freed */
static atomic_int failing;  /* 1: every allocation fails */

static void *counting_malloc(size_t n)
{
    if (atomic_load(&failing))
        return NULL;
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add(&live, 1);
    return p;
}

static void counting_free(void *p)
{
    if (p != NULL)
        atomic_fetch_sub(&live, 1);
    free(p);
}

static int items[64];

/* Destroy callback counters (owned values are &items[i]). */
static atomic_int destroyed[64];
static void count_destroy(void *v) { atomic_fetch_add(&destroyed[(int *)v - items], 1); }
static void reset_destroyed(void)
{
    for (int i = 0; i < 64; i++)
        atomic_store(&destroyed[i], 0);
}

/* Makes the main thread's state, base context and reset reserve exist, so
 * that `live` measured afterwards is not disturbed by their creation. */
static void warm(void)
{
    cx_var *w = mkvar("warm", NULL);
    cx_token *t;
    assert_int_equal(cx_var_set(w, &items[0], &t), 0);
    assert_int_equal(cx_var_reset(w, t), 0);
    cx_token_release(t);
    cx_var_release(w);
}

static void deadline_in(struct timespec *ts, int seconds)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += seconds;
}

/* What fn saw of one variable at the start of a run. */
typedef struct seen {
    cx_var *x;
    int calls;
    int rc;
    void *value;
} seen;

static void *record_x(void *p)
{
    seen *s = p;
    s->calls++;
    s->rc = cx_var_get(s->x, &s->value);
    return &items[63];
}

static void *never(void *p)
{
    (void)p;
    return NULL;
}

/* ================================================================= errors */

static void bind_with_bad_arguments_returns_einval(void **state)
{
    (void)state;
    cx_callback *cb = (cx_callback *)&items[0];
    assert_int_equal(cx_bind(NULL, never, NULL, 0), CX_EINVAL);
    assert_int_equal(cx_bind(&cb, NULL, NULL, 0), CX_EINVAL);
    assert_int_equal(cx_bind(&cb, never, NULL, 2u), CX_EINVAL);
    assert_int_equal(cx_bind(&cb, never, NULL, CX_BIND_SHARED | 0x80u), CX_EINVAL);
    assert_ptr_equal(cb, (cx_callback *)&items[0]); /* untouched */
    assert_int_equal(cx_callback_run(NULL, NULL), CX_EINVAL);
    void *r = &items[1];
    assert_int_equal(cx_callback_run(NULL, &r), CX_EINVAL);
    assert_ptr_equal(r, &items[1]);
    cx_callback_invoke(NULL); /* no-op */
    assert_null(cx_callback_retain(NULL));
    cx_callback_release(NULL); /* no-op */
}

static void bind_out_of_memory_returns_enomem_and_leaks_nothing(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_token *t;
    assert_int_equal(cx_var_set(x, &items[1], &t), 0);
    long before = atomic_load(&live);
    for (unsigned flags = 0; flags <= CX_BIND_SHARED; flags++) {
        cx_callback *cb = (cx_callback *)&items[0];
        atomic_store(&failing, 1);
        int rc = cx_bind(&cb, never, NULL, flags);
        atomic_store(&failing, 0);
        assert_int_equal(rc, CX_ENOMEM);
        assert_ptr_equal(cb, (cx_callback *)&items[0]);
        assert_int_equal(atomic_load(&live), before);
    }
    assert_int_equal(cx_var_reset(x, t), 0);
    cx_token_release(t);
    cx_var_release(x);
}

/* A thread's first cx call is a run while memory is exhausted: its state
 * cannot be created, fn does not run; invoke still releases. */
typedef struct nomem {
    cx_callback *run_cb, *invoke_cb;
    int rc;
} nomem;

static void *nomem_thread(void *p)
{
    nomem *n = p;
    n->rc = cx_callback_run(n->run_cb, NULL);
    cx_callback_invoke(n->invoke_cb);
    return NULL;
}

static void run_without_memory_for_the_thread_state_returns_enomem(void **state)
{
    (void)state;
    for (unsigned flags = 0; flags <= CX_BIND_SHARED; flags++) {
        seen s = {0};
        s.x = mkvar("x", NULL);
        warm();
        long before = atomic_load(&live);
        nomem n = {0};
        assert_int_equal(cx_bind(&n.run_cb, record_x, &s, flags), 0);
        assert_int_equal(cx_bind(&n.invoke_cb, record_x, &s, flags), 0);
        pthread_t th;
        atomic_store(&failing, 1);
        int crc = pthread_create(&th, NULL, nomem_thread, &n);
        if (crc == 0)
            pthread_join(th, NULL);
        atomic_store(&failing, 0);
        assert_int_equal(crc, 0);
        assert_int_equal(n.rc, CX_ENOMEM);
        assert_int_equal(s.calls, 0);
        /* invoke_cb is gone; run_cb still works. */
        assert_int_equal(cx_callback_run(n.run_cb, NULL), 0);
        assert_int_equal(s.calls, 1);
        cx_callback_release(n.run_cb);
        assert_int_equal(atomic_load(&live), before);
        cx_var_release(s.x);
    }
}

/* ============================================================ capture time */

static void bind_captures_the_context_at_the_call(void **state)
{
    (void)state;
    for (unsigned flags = 0; flags <= CX_BIND_SHARED; flags++) {
        seen before = {0}, after = {0};
        cx_var *x = mkvar("x", NULL);
        before.x = after.x = x;
        cx_callback *cb_after, *cb_before;
        /* Bound while x is unset: a value set afterwards is not seen. */
        assert_int_equal(cx_bind(&cb_after, record_x, &after, flags), 0);
        cx_token *t1, *t2;
        assert_int_equal(cx_var_set(x, &items[1], &t1), 0);
        /* Bound while x is items[1]: a later change is not seen. */
        assert_int_equal(cx_bind(&cb_before, record_x, &before, flags), 0);
        assert_int_equal(cx_var_set(x, &items[2], &t2), 0);

        void *r = NULL;
        assert_int_equal(cx_callback_run(cb_after, &r), 0);
        assert_ptr_equal(r, &items[63]);
        assert_int_equal(after.calls, 1);
        assert_int_equal(after.rc, CX_ELOOKUP);
        assert_int_equal(cx_callback_run(cb_before, NULL), 0);
        assert_int_equal(before.calls, 1);
        assert_int_equal(before.rc, 0);
        assert_ptr_equal(before.value, &items[1]);

        /* The caller's context is its own again. */
        void *v = NULL;
        assert_int_equal(cx_var_get(x, &v), 0);
        assert_ptr_equal(v, &items[2]);
        assert_int_equal(cx_var_reset(x, t2), 0);
        assert_int_equal(cx_var_reset(x, t1), 0);
        cx_token_release(t1);
        cx_token_release(t2);
        cx_callback_release(cb_after);
        cx_callback_release(cb_before);
        cx_var_release(x);
    }
}

/* ====================================================== default: writes vanish */

typedef struct writer {
    cx_var *x, *y;
    int calls, rc_x, rc_y, rc_set;
    void *x_at_start;
} writer;

static void *write_x_y(void *p)
{
    writer *w = p;
    w->calls++;
    w->rc_x = cx_var_get(w->x, &w->x_at_start);
    void *v;
    w->rc_y = cx_var_get(w->y, &v);
    w->rc_set = cx_var_set(w->x, &items[9], NULL) | cx_var_set(w->y, &items[8], NULL);
    return NULL;
}

static void default_runs_start_from_the_capture_and_their_writes_vanish(void **state)
{
    (void)state;
    writer w = {0};
    w.x = mkvar("x", NULL);
    w.y = mkvar("y", NULL);
    cx_token *t;
    assert_int_equal(cx_var_set(w.x, &items[1], &t), 0);
    cx_callback *cb;
    assert_int_equal(cx_bind(&cb, write_x_y, &w, 0), 0);
    for (int i = 1; i <= 3; i++) {
        w.rc_x = w.rc_y = 99;
        w.x_at_start = NULL;
        assert_int_equal(cx_callback_run(cb, NULL), 0);
        assert_int_equal(w.calls, i);
        assert_int_equal(w.rc_set, 0);
        /* Each run starts from the capture: the previous run's writes
         * are gone. */
        assert_int_equal(w.rc_x, 0);
        assert_ptr_equal(w.x_at_start, &items[1]);
        assert_int_equal(w.rc_y, CX_ELOOKUP);
    }
    /* Nor did they reach the caller. */
    void *v;
    assert_int_equal(cx_var_get(w.x, &v), 0);
    assert_ptr_equal(v, &items[1]);
    assert_int_equal(cx_var_get(w.y, &v), CX_ELOOKUP);
    /* The same through invoke, with the only reference. */
    assert_int_equal(cx_callback_run(cb, NULL), 0);
    cx_callback_invoke(cb);
    assert_int_equal(w.calls, 5);
    assert_ptr_equal(w.x_at_start, &items[1]);
    assert_int_equal(w.rc_y, CX_ELOOKUP);
    assert_int_equal(cx_var_reset(w.x, t), 0);
    cx_token_release(t);
    cx_var_release(w.x);
    cx_var_release(w.y);
}

/* A callback whose fn re-arms itself (retains its own callback) and runs
 * it again: the second run starts from the capture, not from what the
 * first (one-shot) run wrote. */
typedef struct rearm {
    cx_var *x;
    cx_callback *self;
    int depth;
    void *seen[2];
    int rc[2];
} rearm;

static void *rearm_fn(void *p)
{
    rearm *r = p;
    int d = r->depth++;
    r->rc[d] = cx_var_get(r->x, &r->seen[d]);
    /* With a token: the set the library takes inline when it can (never
     * in place into the capture, which the run's context only borrows
     * while caches are on: src/context.h). */
    cx_token *t;
    if (cx_var_set(r->x, &items[7], &t) != 0)
        r->rc[d] = -100;
    else
        cx_token_release(t);
    if (d == 0)
        cx_callback_invoke(cx_callback_retain(r->self));
    return NULL;
}

static void a_rearmed_callback_starts_again_from_the_capture(void **state)
{
    (void)state;
    rearm r = {0};
    r.x = mkvar("x", NULL);
    warm();
    long before = atomic_load(&live);
    cx_token *t;
    assert_int_equal(cx_var_set(r.x, &items[1], &t), 0);
    assert_int_equal(cx_bind(&r.self, rearm_fn, &r, 0), 0);
    assert_int_equal(cx_var_reset(r.x, t), 0);
    cx_token_release(t);
    cx_callback_invoke(r.self); /* the only reference */
    assert_int_equal(r.depth, 2);
    assert_int_equal(r.rc[0], 0);
    assert_ptr_equal(r.seen[0], &items[1]);
    assert_int_equal(r.rc[1], 0);
    assert_ptr_equal(r.seen[1], &items[1]);
    assert_int_equal(atomic_load(&live), before); /* the callback is gone */
    cx_var_release(r.x);
}

/* A run from inside a run of the same callback needs a context of its
 * own (the first run holds the callback's run slot): without memory for
 * it, CX_ENOMEM and fn is not called; with memory, it runs from the
 * capture. */
typedef struct nested {
    cx_var *x;
    cx_callback *self;
    int depth, calls;
    int inner_rc[2];
    void *inner_seen;
} nested;

static void *nested_fn(void *p)
{
    nested *n = p;
    n->calls++;
    if (n->depth > 0) {
        (void)cx_var_get(n->x, &n->inner_seen);
        return NULL;
    }
    n->depth++;
    (void)cx_var_set(n->x, &items[7], NULL);
    atomic_store(&failing, 1);
    n->inner_rc[0] = cx_callback_run(n->self, NULL);
    atomic_store(&failing, 0);
    n->inner_rc[1] = cx_callback_run(n->self, NULL);
    n->depth--;
    return NULL;
}

static void a_nested_run_without_memory_returns_enomem(void **state)
{
    (void)state;
    nested n = {0};
    n.x = mkvar("x", NULL);
    warm();
    long before = atomic_load(&live);
    cx_token *t;
    assert_int_equal(cx_var_set(n.x, &items[1], &t), 0);
    assert_int_equal(cx_bind(&n.self, nested_fn, &n, 0), 0);
    assert_int_equal(cx_var_reset(n.x, t), 0);
    cx_token_release(t);
    assert_int_equal(cx_callback_run(n.self, NULL), 0);
    assert_int_equal(n.inner_rc[0], CX_ENOMEM);
    assert_int_equal(n.inner_rc[1], 0);
    assert_int_equal(n.calls, 2); /* the outer run and the second inner one */
    assert_ptr_equal(n.inner_seen, &items[1]);
    cx_callback_release(n.self);
    assert_int_equal(atomic_load(&live), before);
    cx_var_release(n.x);
}

/* ====================================================== default: overlapping */

/* Two runs of one callback at once: each waits inside fn until the other
 * is inside too. Serialised runs would never meet: the rendezvous gives up
 * after a long deadline and records the failure instead of hanging. Each
 * run also sets x to its own value and reads it back after the meeting:
 * private copies do not see each other's writes. */
typedef struct overlap {
    cx_var *x;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside;      /* under mu */
    int max_inside;  /* under mu */
    int timeouts;    /* under mu */
    int errors;      /* under mu */
    int next_id;     /* under mu */
    cx_callback *cb;
    int run_rc[2];
} overlap;

static void *overlap_fn(void *p)
{
    overlap *o = p;
    pthread_mutex_lock(&o->mu);
    int id = o->next_id++;
    o->inside++;
    if (o->inside > o->max_inside)
        o->max_inside = o->inside;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);

    int err = 0;
    void *v;
    if (cx_var_get(o->x, &v) != 0 || v != &items[1])
        err++;
    if (cx_var_set(o->x, &items[10 + id], NULL) != 0)
        err++;

    struct timespec dl;
    deadline_in(&dl, 60);
    pthread_mutex_lock(&o->mu);
    while (o->max_inside < 2) {
        if (pthread_cond_timedwait(&o->cv, &o->mu, &dl) == ETIMEDOUT) {
            o->timeouts++;
            break;
        }
    }
    o->inside--;
    pthread_mutex_unlock(&o->mu);

    if (cx_var_get(o->x, &v) != 0 || v != &items[10 + id])
        err++;
    pthread_mutex_lock(&o->mu);
    o->errors += err;
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

typedef struct overlap_arg {
    overlap *o;
    int idx;
} overlap_arg;

static void *overlap_thread(void *p)
{
    overlap_arg *a = p;
    a->o->run_rc[a->idx] = cx_callback_run(a->o->cb, NULL);
    return NULL;
}

static void default_runs_overlap_in_several_threads(void **state)
{
    (void)state;
    overlap o;
    memset(&o, 0, sizeof(o));
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    o.x = mkvar("x", NULL);
    cx_token *t;
    assert_int_equal(cx_var_set(o.x, &items[1], &t), 0);
    assert_int_equal(cx_bind(&o.cb, overlap_fn, &o, 0), 0);
    assert_int_equal(cx_var_reset(o.x, t), 0);
    cx_token_release(t);
    pthread_t th[2];
    overlap_arg a[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (overlap_arg){.o = &o, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, overlap_thread, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(o.run_rc[0], 0);
    assert_int_equal(o.run_rc[1], 0);
    assert_int_equal(o.timeouts, 0);
    assert_int_equal(o.max_inside, 2);
    assert_int_equal(o.errors, 0);
    cx_callback_release(o.cb);
    cx_var_release(o.x);
    pthread_cond_destroy(&o.cv);
    pthread_mutex_destroy(&o.mu);
}

/* ============================================================= shared mode */

enum { SH_THREADS = 4, SH_RUNS = 200 };

typedef struct shared {
    cx_var *count;
    cx_callback *cb;
    atomic_int inside, max_inside;
    pthread_barrier_t start;
    int rc_errors[SH_THREADS];
    int fn_errors; /* only touched inside runs (serialised) */
} shared;

static void *shared_fn(void *p)
{
    shared *s = p;
    int now = atomic_fetch_add(&s->inside, 1) + 1;
    int m = atomic_load(&s->max_inside);
    while (now > m && !atomic_compare_exchange_weak(&s->max_inside, &m, now))
        ;
    void *v = NULL;
    uintptr_t n = 0;
    if (cx_var_get(s->count, &v) == 0)
        n = (uintptr_t)v;
    /* Give another thread every chance to come in (if it could). */
    sched_yield();
    int rc = cx_var_set(s->count, (void *)(n + 1), NULL);
    atomic_fetch_sub(&s->inside, 1);
    if (rc != 0)
        s->fn_errors++;
    return (void *)(n + 1);
}

typedef struct shared_arg {
    shared *s;
    int idx;
} shared_arg;

static void *shared_thread(void *p)
{
    shared_arg *a = p;
    pthread_barrier_wait(&a->s->start);
    for (int i = 0; i < SH_RUNS; i++) {
        if (i % 2 == 0) {
            if (cx_callback_run(a->s->cb, NULL) != 0)
                a->s->rc_errors[a->idx]++;
        } else {
            cx_callback_invoke(cx_callback_retain(a->s->cb));
        }
    }
    return NULL;
}

static void shared_runs_are_serialised_and_see_each_other(void **state)
{
    (void)state;
    shared s;
    memset(&s, 0, sizeof(s));
    s.count = mkvar("count", NULL);
    assert_int_equal(cx_bind(&s.cb, shared_fn, &s, CX_BIND_SHARED), 0);
    pthread_barrier_init(&s.start, NULL, SH_THREADS);
    pthread_t th[SH_THREADS];
    shared_arg a[SH_THREADS];
    for (int i = 0; i < SH_THREADS; i++) {
        a[i] = (shared_arg){.s = &s, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, shared_thread, &a[i]), 0);
    }
    for (int i = 0; i < SH_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < SH_THREADS; i++)
        assert_int_equal(s.rc_errors[i], 0);
    assert_int_equal(s.fn_errors, 0);
    assert_int_equal(atomic_load(&s.max_inside), 1);
    /* One more run reads the counter kept in the shared context. */
    void *r = NULL;
    assert_int_equal(cx_callback_run(s.cb, &r), 0);
    assert_int_equal((uintptr_t)r, SH_THREADS * SH_RUNS + 1);
    /* None of it reached this thread's context. */
    void *v;
    assert_int_equal(cx_var_get(s.count, &v), CX_ELOOKUP);
    cx_callback_release(s.cb);
    pthread_barrier_destroy(&s.start);
    cx_var_release(s.count);
}

/* A shared callback run from inside its own run would wait for itself. */
typedef struct self_run {
    cx_callback *cb;
    int depth, inner_rc;
} self_run;

static void *self_run_fn(void *p)
{
    self_run *s = p;
    if (s->depth++ == 0)
        s->inner_rc = cx_callback_run(s->cb, NULL);
    return NULL;
}

static void shared_run_from_its_own_run_returns_ebusy(void **state)
{
    (void)state;
    self_run s = {0};
    assert_int_equal(cx_bind(&s.cb, self_run_fn, &s, CX_BIND_SHARED), 0);
    assert_int_equal(cx_callback_run(s.cb, NULL), 0);
    assert_int_equal(s.depth, 1);
    assert_int_equal(s.inner_rc, CX_EBUSY);
    /* It is not stuck: the next run works. */
    s.depth = 0;
    assert_int_equal(cx_callback_run(s.cb, NULL), 0);
    assert_int_equal(s.depth, 1);
    cx_callback_release(s.cb);
}

/* A caller waiting for a shared run is cancelled meanwhile: the wait is
 * like taking a mutex, not a cancellation point; the caller runs fn when
 * its turn comes and the cancel is acted upon afterwards. */
typedef struct cancel_wait {
    cx_callback *cb;
    sem_t inside, release, arriving;
    int calls; /* inside runs only */
    int holder_rc, waiter_rc;
} cancel_wait;

static void *cancel_wait_fn(void *p)
{
    cancel_wait *c = p;
    if (c->calls++ == 0) {
        sem_post(&c->inside);
        while (sem_wait(&c->release) != 0)
            ;
    }
    return NULL;
}

static void *cancel_holder(void *p)
{
    cancel_wait *c = p;
    c->holder_rc = cx_callback_run(c->cb, NULL);
    return NULL;
}

static void *cancel_waiter(void *p)
{
    cancel_wait *c = p;
    /* No cancellation point before the run (sem_post is not one). */
    sem_post(&c->arriving);
    c->waiter_rc = cx_callback_run(c->cb, NULL);
    pthread_testcancel();
    return &items[5]; /* not reached */
}

static void shared_wait_is_not_a_cancellation_point(void **state)
{
    (void)state;
    cancel_wait c;
    memset(&c, 0, sizeof(c));
    c.waiter_rc = 99;
    sem_init(&c.inside, 0, 0);
    sem_init(&c.release, 0, 0);
    sem_init(&c.arriving, 0, 0);
    assert_int_equal(cx_bind(&c.cb, cancel_wait_fn, &c, CX_BIND_SHARED), 0);
    pthread_t holder, waiter;
    assert_int_equal(pthread_create(&holder, NULL, cancel_holder, &c), 0);
    while (sem_wait(&c.inside) != 0)
        ;
    assert_int_equal(pthread_create(&waiter, NULL, cancel_waiter, &c), 0);
    /* The waiter is about to wait (the cancel finds it waiting, or about
     * to: either way the wait must not act on it). */
    while (sem_wait(&c.arriving) != 0)
        ;
    int cancel_rc = pthread_cancel(waiter);
    sem_post(&c.release);
    void *wr = NULL;
    assert_int_equal(pthread_join(holder, NULL), 0);
    assert_int_equal(pthread_join(waiter, &wr), 0);
    assert_int_equal(cancel_rc, 0);
    assert_ptr_equal(wr, PTHREAD_CANCELED);
    assert_int_equal(c.holder_rc, 0);
    assert_int_equal(c.waiter_rc, 0);
    assert_int_equal(c.calls, 2); /* the waiter ran fn */
    assert_int_equal(cx_callback_run(c.cb, NULL), 0);
    assert_int_equal(c.calls, 3);
    cx_callback_release(c.cb);
    sem_destroy(&c.inside);
    sem_destroy(&c.release);
    sem_destroy(&c.arriving);
}

/* ==================================================== references, invoke */

static void invoke_releases_the_reference_handed_over(void **state)
{
    (void)state;
    reset_destroyed();
    cx_var_opts o = {.destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    for (unsigned flags = 0; flags <= CX_BIND_SHARED; flags++) {
        seen s = {.x = x};
        warm();
        long before = atomic_load(&live);
        cx_token *t;
        int idx = 20 + (int)flags;
        assert_int_equal(cx_var_set(x, &items[idx], &t), 0);
        cx_callback *cb;
        assert_int_equal(cx_bind(&cb, record_x, &s, flags), 0);
        assert_int_equal(cx_var_reset(x, t), 0);
        cx_token_release(t);
        /* Now only the capture holds the owned value. */
        assert_int_equal(atomic_load(&destroyed[idx]), 0);
        assert_ptr_equal(cx_callback_retain(cb), cb);
        cx_callback_invoke(cb); /* one of two references */
        assert_int_equal(s.calls, 1);
        assert_ptr_equal(s.value, &items[idx]);
        assert_int_equal(atomic_load(&destroyed[idx]), 0);
        cx_callback_invoke(cb); /* the last */
        assert_int_equal(s.calls, 2);
        assert_ptr_equal(s.value, &items[idx]);
        assert_int_equal(atomic_load(&destroyed[idx]), 1);
        assert_int_equal(atomic_load(&live), before);
    }
    cx_var_release(x);
}

/* Invoked by another thread (an executor's worker): the values captured
 * are destroyed once, by the worker, when it drops the last reference. */
typedef struct executor {
    cx_callback *cb[8];
    int n;
} executor;

static void *executor_thread(void *p)
{
    executor *e = p;
    for (int i = 0; i < e->n; i++)
        cx_callback_invoke(e->cb[i]);
    return NULL;
}

typedef struct owned_seen {
    cx_var *x;
    void *value;
    int rc;
} owned_seen;

static void *record_owned(void *p)
{
    owned_seen *s = p;
    s->rc = cx_var_get(s->x, &s->value);
    /* A write in the run: an owned value the run's copy alone holds. */
    if (cx_var_set(s->x, &items[40], NULL) != 0)
        s->rc = -100;
    return NULL;
}

static void invoke_in_another_thread_destroys_captured_values_once(void **state)
{
    (void)state;
    reset_destroyed();
    cx_var_opts o = {.destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    executor e = {.n = 8};
    owned_seen s[8];
    warm();
    long before = atomic_load(&live);
    for (int i = 0; i < 8; i++) {
        cx_token *t;
        s[i] = (owned_seen){.x = x, .rc = 99};
        assert_int_equal(cx_var_set(x, &items[30 + i], &t), 0);
        assert_int_equal(cx_bind(&e.cb[i], record_owned, &s[i], i % 2 ? CX_BIND_SHARED : 0), 0);
        assert_int_equal(cx_var_reset(x, t), 0);
        cx_token_release(t);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, executor_thread, &e), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(s[i].rc, 0);
        assert_ptr_equal(s[i].value, &items[30 + i]);
        assert_int_equal(atomic_load(&destroyed[30 + i]), 1);
    }
    /* Every run's own write was destroyed too, once per run. */
    assert_int_equal(atomic_load(&destroyed[40]), 8);
    assert_int_equal(atomic_load(&live), before);
    cx_var_release(x);
}

/* fn drops the caller's last reference while it runs (a one-shot object
 * that frees itself): the run must not touch the callback afterwards. */
typedef struct self_free {
    cx_callback *cb;
    int calls;
} self_free;

static void *self_free_fn(void *p)
{
    self_free *s = p;
    s->calls++;
    cx_callback_release(s->cb);
    s->cb = NULL;
    return &items[3];
}

static void fn_may_release_the_last_reference_during_its_run(void **state)
{
    (void)state;
    for (unsigned flags = 0; flags <= CX_BIND_SHARED; flags++) {
        self_free s = {0};
        warm();
        long before = atomic_load(&live);
        assert_int_equal(cx_bind(&s.cb, self_free_fn, &s, flags), 0);
        void *r = NULL;
        assert_int_equal(cx_callback_run(s.cb, &r), 0);
        assert_int_equal(s.calls, 1);
        assert_ptr_equal(r, &items[3]);
        assert_int_equal(atomic_load(&live), before);
    }
}

/* fn leaves its thread with pthread_exit: the run's copy and invoke's
 * reference are released on the way out. */
static void *exit_fn(void *p)
{
    (void)p;
    pthread_exit(&items[4]);
}

static void *exit_thread(void *p)
{
    cx_callback_invoke(p);
    return NULL; /* not reached */
}

static void pthread_exit_inside_a_default_run_releases_the_callback(void **state)
{
    (void)state;
    reset_destroyed();
    cx_var_opts o = {.destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    warm();
    long before = atomic_load(&live);
    cx_token *t;
    assert_int_equal(cx_var_set(x, &items[50], &t), 0);
    cx_callback *cb;
    assert_int_equal(cx_bind(&cb, exit_fn, NULL, 0), 0);
    assert_int_equal(cx_var_reset(x, t), 0);
    cx_token_release(t);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, exit_thread, cb), 0);
    void *r = NULL;
    assert_int_equal(pthread_join(th, &r), 0);
    assert_ptr_equal(r, &items[4]);
    assert_int_equal(atomic_load(&destroyed[50]), 1);
    assert_int_equal(atomic_load(&live), before);
    cx_var_release(x);
}

#define T(f) cmocka_unit_test_teardown(f, base_context_is_empty)

int main(void)
{
#ifndef TEST_BIND_CACHED
    cx_allocator a = {counting_malloc, counting_free};
    if (cx_set_allocator(&a) != 0)
        return 1;
#endif
    const struct CMUnitTest tests[] = {
        T(bind_with_bad_arguments_returns_einval),
#ifndef TEST_BIND_CACHED
        T(bind_out_of_memory_returns_enomem_and_leaks_nothing),
        T(run_without_memory_for_the_thread_state_returns_enomem),
#endif
        T(bind_captures_the_context_at_the_call),
        T(default_runs_start_from_the_capture_and_their_writes_vanish),
        T(a_rearmed_callback_starts_again_from_the_capture),
#ifndef TEST_BIND_CACHED
        T(a_nested_run_without_memory_returns_enomem),
#endif
        T(default_runs_overlap_in_several_threads),
        T(shared_runs_are_serialised_and_see_each_other),
        T(shared_run_from_its_own_run_returns_ebusy),
        T(shared_wait_is_not_a_cancellation_point),
        T(invoke_releases_the_reference_handed_over),
        T(invoke_in_another_thread_destroys_captured_values_once),
        T(fn_may_release_the_last_reference_during_its_run),
        T(pthread_exit_inside_a_default_run_releases_the_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
