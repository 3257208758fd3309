/* test_scope.c - scopes, deadlines and cancellation in the context (SPEC
 * 5.3), and what they do to the pool's futures: early returns of blocking
 * calls, jobs skipped, result_until, wait_any, on_done, inline runs of
 * queued work (no self-deadlock), drain with nested submits.
 *
 * Only the main thread asserts. Jobs and helper threads record what they
 * saw; the main thread reads it after a synchronising call (a future's
 * completion, a join, a semaphore). Ordering is by gates and semaphores,
 * or by watching a thread register as a waiter; never by sleeping.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cx_cmocka.h"
#include "cx_scope_test.h"
#include "cx_test.h"

/* ================================================================ scopes */

static void scope_bad_arguments_are_einval(void **state)
{
    (void)state;
    cx_scope *s = NULL;
    struct timespec bad = {.tv_sec = 1, .tv_nsec = 1000000000L};
    struct timespec neg = {.tv_sec = 1, .tv_nsec = -1};
    assert_int_equal(cx_scope_new(NULL, NULL), CX_EINVAL);
    assert_int_equal(cx_scope_new(&s, &bad), CX_EINVAL);
    assert_int_equal(cx_scope_new(&s, &neg), CX_EINVAL);
    assert_null(s);
    assert_int_equal(cx_scope_cancel(NULL), CX_EINVAL);
    assert_int_equal(cx_deadline(NULL), CX_EINVAL);
    cx_scope_release(NULL);
    /* A past deadline (even a negative tv_sec) is valid: expired at once. */
    struct timespec past = {.tv_sec = -5, .tv_nsec = 0};
    s = new_scope(&past);
    CX_WITH_SCOPE(s) { assert_int_equal(cx_check(), CX_ETIMEDOUT); }
    cx_scope_release(s);
}

/* Scopes bound but none with a deadline: cx_deadline says CX_ELOOKUP; a
 * second cancel is harmless (0) and changes nothing. */
static void deadline_of_a_chain_without_one_and_cancel_twice(void **state)
{
    (void)state;
    cx_scope *outer = new_scope(NULL);
    struct timespec d;
    CX_WITH_SCOPE(outer) {
        cx_scope *inner = new_scope(NULL);
        CX_WITH_SCOPE(inner) {
            assert_int_equal(cx_deadline(&d), CX_ELOOKUP);
            assert_int_equal(cx_check(), 0);
            assert_int_equal(cx_scope_cancel(outer), 0);
            assert_int_equal(cx_check(), CX_ECANCELED);
            assert_int_equal(cx_scope_cancel(outer), 0);
            assert_int_equal(cx_scope_cancel(inner), 0);
            assert_int_equal(cx_check(), CX_ECANCELED);
            assert_true(cx_cancelled());
        }
        cx_scope_release(inner);
    }
    cx_scope_release(outer);
    assert_int_equal(cx_check(), 0);
}

static void no_scope_costs_nothing_and_says_nothing(void **state)
{
    (void)state;
    struct timespec d;
    assert_int_equal(cx_check(), 0);
    assert_false(cx_cancelled());
    assert_int_equal(cx_deadline(&d), CX_ELOOKUP);
    /* NULL bound explicitly: no scope for the block, even under one. */
    cx_scope *s = new_scope(NULL);
    assert_int_equal(cx_scope_cancel(s), 0);
    CX_WITH_SCOPE(s)
    {
        assert_int_equal(cx_check(), CX_ECANCELED);
        CX_WITH_SCOPE(NULL) { assert_int_equal(cx_check(), 0); }
        assert_int_equal(cx_check(), CX_ECANCELED);
    }
    assert_int_equal(cx_check(), 0);
    cx_scope_release(s);
}

static void with_scope_makes_it_current_and_cancel_is_seen(void **state)
{
    (void)state;
    cx_scope *s = new_scope(NULL);
    CX_WITH_SCOPE(s)
    {
        assert_int_equal(cx_check(), 0);
        assert_false(cx_cancelled());
        assert_int_equal(cx_scope_cancel(s), 0);
        assert_int_equal(cx_check(), CX_ECANCELED);
        assert_true(cx_cancelled());
        assert_int_equal(cx_scope_cancel(s), 0); /* idempotent */
    }
    assert_int_equal(cx_check(), 0); /* the block ended: no scope */
    cx_scope_release(s);
}

static void cancel_reaches_every_descendant_and_no_ancestor(void **state)
{
    (void)state;
    cx_scope *root = new_scope(NULL), *a = NULL, *b = NULL, *a1 = NULL, *a2 = NULL, *a1x = NULL;
    CX_WITH_SCOPE(root)
    {
        a = new_scope(NULL);
        b = new_scope(NULL);
        CX_WITH_SCOPE(a)
        {
            a1 = new_scope(NULL);
            a2 = new_scope(NULL);
            CX_WITH_SCOPE(a1) { a1x = new_scope(NULL); }
        }
    }
    assert_int_equal(cx_scope_cancel(a), 0);
    cx_scope *cancelled[] = {a, a1, a2, a1x}, *not_cancelled[] = {root, b};
    for (size_t i = 0; i < 4; i++)
        CX_WITH_SCOPE(cancelled[i]) { assert_int_equal(cx_check(), CX_ECANCELED); }
    for (size_t i = 0; i < 2; i++)
        CX_WITH_SCOPE(not_cancelled[i]) { assert_int_equal(cx_check(), 0); }
    /* Cancelling the root now reaches b too (a's subtree is skipped). */
    assert_int_equal(cx_scope_cancel(root), 0);
    CX_WITH_SCOPE(b) { assert_int_equal(cx_check(), CX_ECANCELED); }
    /* Release in an order that frees parents last. */
    cx_scope_release(root);
    cx_scope_release(a);
    cx_scope_release(a1x);
    cx_scope_release(b);
    cx_scope_release(a1);
    cx_scope_release(a2);
}

static void child_of_a_cancelled_scope_is_born_cancelled(void **state)
{
    (void)state;
    cx_scope *p = new_scope(NULL), *c = NULL;
    assert_int_equal(cx_scope_cancel(p), 0);
    CX_WITH_SCOPE(p) { c = new_scope(NULL); }
    CX_WITH_SCOPE(c) { assert_int_equal(cx_check(), CX_ECANCELED); }
    cx_scope_release(p); /* c keeps p alive */
    cx_scope_release(c);
}

static bool ts_eq(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void earliest_deadline_of_the_chain_applies(void **state)
{
    (void)state;
    struct timespec d10 = ms_from_now(10000), d20 = ms_from_now(20000), d5 = ms_from_now(5000);
    struct timespec past = ms_from_now(-1), got;
    cx_scope *outer = new_scope(&d10), *later = NULL, *sooner = NULL, *none = NULL, *gone = NULL;
    CX_WITH_SCOPE(outer)
    {
        assert_int_equal(cx_deadline(&got), 0);
        assert_true(ts_eq(got, d10));
        later = new_scope(&d20);
        sooner = new_scope(&d5);
        none = new_scope(NULL);
        gone = new_scope(&past);
    }
    CX_WITH_SCOPE(later)
    {
        assert_int_equal(cx_deadline(&got), 0);
        assert_true(ts_eq(got, d10));
        assert_int_equal(cx_check(), 0);
    }
    CX_WITH_SCOPE(sooner)
    {
        assert_int_equal(cx_deadline(&got), 0);
        assert_true(ts_eq(got, d5));
    }
    CX_WITH_SCOPE(none)
    {
        assert_int_equal(cx_deadline(&got), 0);
        assert_true(ts_eq(got, d10));
    }
    CX_WITH_SCOPE(gone)
    {
        assert_int_equal(cx_check(), CX_ETIMEDOUT);
        assert_true(cx_cancelled());
        /* Cancelled wins over expired. */
        assert_int_equal(cx_scope_cancel(gone), 0);
        assert_int_equal(cx_check(), CX_ECANCELED);
    }
    cx_scope_release(outer);
    cx_scope_release(later);
    cx_scope_release(sooner);
    cx_scope_release(none);
    cx_scope_release(gone);
}

static long ms_between(struct timespec a, struct timespec b)
{
    return (long)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

static void deadline_in_is_now_plus_ms(void **state)
{
    (void)state;
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    struct timespec d = cx_deadline_in(1500), n = cx_deadline_in(-1500);
    clock_gettime(CLOCK_MONOTONIC, &after);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    assert_true(n.tv_nsec >= 0 && n.tv_nsec < 1000000000L);
    assert_true(ms_between(before, d) >= 1499 && ms_between(after, d) <= 1500);
    assert_true(ms_between(n, before) <= 1500 && ms_between(n, after) >= 1499);
}

/* What a thread or job saw of the current scope. */
static void *check_job(void *arg)
{
    (void)arg;
    return TAG(cx_check() + 100);
}

static void *deadline_job(void *arg)
{
    struct timespec *out = arg;
    return TAG(cx_deadline(out) + 100);
}

static void scope_outlives_release_while_a_context_holds_it(void **state)
{
    (void)state;
    struct timespec d = ms_from_now(60000), got = {0, 0};
    cx_scope *s = new_scope(&d);
    cx_context *copy = NULL;
    CX_WITH_SCOPE(s)
    {
        cx_scope_release(s); /* the block holds its own reference */
        assert_int_equal(cx_check(), 0);
        copy = cx_copy_context();
        assert_non_null(copy);
    }
    /* Only the copy holds s now. */
    void *r = NULL;
    assert_int_equal(cx_context_run(copy, deadline_job, &got, &r), 0);
    assert_ptr_equal(r, TAG(100));
    assert_true(ts_eq(got, d));
    cx_context_release(copy); /* frees s: memcheck sees no leak */
}

static void threads_and_jobs_inherit_the_scope(void **state)
{
    (void)state;
    struct gate g;
    cx_future *gf = NULL, *f = NULL;
    cx_pool *p = new_pool(2, 0);
    cx_scope *s = new_scope(NULL);
    gate_init(&g);
    pthread_t t;
    void *tr = NULL;
    CX_WITH_SCOPE(s)
    {
        assert_int_equal(cx_pool_submit(p, gate_job, &g, &gf), 0);
        assert_int_equal(cx_thread_create(&t, NULL, check_job, NULL), 0);
        assert_int_equal(pthread_join(t, &tr), 0);
    }
    assert_ptr_equal(tr, TAG(100));
    gate_wait_entered(&g); /* the job runs: cancelling now does not skip it */
    assert_int_equal(cx_scope_cancel(s), 0);
    CX_WITH_SCOPE(s)
    {
        assert_int_equal(cx_thread_create(&t, NULL, check_job, NULL), 0);
        assert_int_equal(pthread_join(t, &tr), 0);
    }
    assert_ptr_equal(tr, TAG(100 + CX_ECANCELED));
    gate_open(&g);
    assert_int_equal(cx_future_result(gf, NULL), 0);
    /* Submitted from outside the scope: not affected. */
    assert_int_equal(cx_pool_submit(p, check_job, NULL, &f), 0);
    void *r = NULL;
    assert_int_equal(cx_future_result(f, &r), 0);
    assert_ptr_equal(r, TAG(100));
    cx_future_release(f);
    cx_future_release(gf);
    cx_pool_free(p);
    cx_scope_release(s);
    gate_destroy(&g);
}

/* ================================================= blocking calls return */

struct waiter {
    cx_scope *s;
    cx_future *f;
    int how; /* 0 wait, 1 result, 2 result_until, 3 wait_any */
    int rc;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct timespec d = ms_from_now(LONG_MS);
    size_t idx = 99;
    CX_WITH_SCOPE(w->s)
    {
        switch (w->how) {
        case 0: w->rc = cx_future_wait(w->f, &d); break;
        case 1: w->rc = cx_future_result(w->f, NULL); break;
        case 2: w->rc = cx_future_result_until(w->f, &d, NULL); break;
        default: w->rc = cx_future_wait_any(&w->f, 1, &d, &idx); break;
        }
    }
    return NULL;
}

static void cancel_wakes_a_wait_blocked_in_another_thread(void **state)
{
    (void)state;
    for (int how = 0; how < 4; how++) {
        struct gate g;
        cx_future *gf = NULL;
        cx_pool *p = held_pool(&g, 0, &gf);
        struct waiter w = {.s = new_scope(NULL), .f = gf, .how = how, .rc = 1};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
        until_someone_waits_on(gf); /* asleep on the future, not before */
        assert_int_equal(cx_scope_cancel(w.s), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.rc, CX_ECANCELED);
        gate_open(&g);
        assert_int_equal(cx_future_wait(gf, NULL), 0); /* no scope here */
        cx_future_release(gf);
        cx_pool_free(p);
        cx_scope_release(w.s);
        gate_destroy(&g);
    }
}

static void scope_deadline_ends_a_blocked_wait(void **state)
{
    (void)state;
    struct gate g;
    cx_future *gf = NULL;
    cx_pool *p = held_pool(&g, 0, &gf);
    struct timespec d = ms_from_now(30), later = ms_from_now(LONG_MS), t0, t1;
    cx_scope *s = new_scope(&d);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CX_WITH_SCOPE(s)
    {
        /* The argument's deadline is later: the scope's applies. */
        assert_int_equal(cx_future_wait(gf, &later), CX_ETIMEDOUT);
        assert_int_equal(cx_future_result(gf, NULL), CX_ETIMEDOUT);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(ms_between(t0, t1) < LONG_MS);
    /* An argument earlier than the scope's still applies. */
    cx_scope *far = new_scope(&later);
    struct timespec soon = ms_from_now(10);
    CX_WITH_SCOPE(far) { assert_int_equal(cx_future_wait(gf, &soon), CX_ETIMEDOUT); }
    gate_open(&g);
    CX_WITH_SCOPE(far)
    {
        /* Complete: 0, whatever the scope. */
        assert_int_equal(cx_future_wait(gf, NULL), 0);
        assert_int_equal(cx_scope_cancel(far), 0);
        assert_int_equal(cx_future_wait(gf, NULL), 0);
        assert_int_equal(cx_future_result(gf, NULL), 0);
    }
    cx_future_release(gf);
    cx_pool_free(p);
    cx_scope_release(s);
    cx_scope_release(far);
    gate_destroy(&g);
}

static void *flag_job(void *arg)
{
    (*(int *)arg)++;
    return TAG(1);
}

static void job_of_a_cancelled_or_expired_scope_completes_without_running(void **state)
{
    (void)state;
    struct gate g;
    cx_future *gf = NULL, *fc = NULL, *ft = NULL, *fin = NULL, *fok = NULL;
    cx_pool *p = held_pool(&g, 0, &gf);
    int ran_c = 0, ran_t = 0, ran_in = 0, ran_ok = 0;
    struct timespec past = ms_from_now(-1);
    cx_scope *sc = new_scope(NULL), *st = new_scope(&past), *sin = new_scope(NULL);
    CX_WITH_SCOPE(sc) { assert_int_equal(cx_pool_submit(p, flag_job, &ran_c, &fc), 0); }
    CX_WITH_SCOPE(st) { assert_int_equal(cx_pool_submit(p, flag_job, &ran_t, &ft), 0); }
    /* submit_in: the scope bound in the given context counts. */
    cx_context *ctx = NULL;
    CX_WITH_SCOPE(sin) { ctx = cx_copy_context(); }
    assert_int_equal(cx_pool_submit_in(p, ctx, flag_job, &ran_in, &fin), 0);
    assert_int_equal(cx_pool_submit(p, flag_job, &ran_ok, &fok), 0);
    assert_int_equal(cx_scope_cancel(sc), 0); /* queued: not taken yet */
    assert_int_equal(cx_scope_cancel(sin), 0);
    gate_open(&g);
    void *r = NULL;
    assert_int_equal(cx_future_result(fc, &r), CX_ECANCELED);
    assert_null(r);
    assert_int_equal(cx_future_result(ft, NULL), CX_ETIMEDOUT);
    assert_int_equal(cx_future_result(fin, NULL), CX_ECANCELED);
    assert_int_equal(cx_future_result(fok, &r), 0);
    assert_ptr_equal(r, TAG(1));
    assert_int_equal(ran_c + ran_t + ran_in, 0);
    assert_int_equal(ran_ok, 1);
    cx_future_release(fc);
    cx_future_release(ft);
    cx_future_release(fin);
    cx_future_release(fok);
    cx_future_release(gf);
    cx_pool_free(p);
    cx_context_release(ctx);
    cx_scope_release(sc);
    cx_scope_release(st);
    cx_scope_release(sin);
    gate_destroy(&g);
}

struct submitter {
    cx_pool *p;
    cx_scope *s;
    sem_t started;
    int rc;
};

static void *submitter_main(void *arg)
{
    struct submitter *a = arg;
    CX_WITH_SCOPE(a->s)
    {
        sem_post(&a->started);
        a->rc = cx_pool_submit(a->p, noop_job, NULL, NULL); /* queue full */
    }
    return NULL;
}

static void blocking_submit_returns_on_cancel_and_at_the_deadline(void **state)
{
    (void)state;
    struct gate g;
    cx_future *gf = NULL;
    cx_pool *p = held_pool(&g, 1, &gf);
    assert_int_equal(cx_pool_submit(p, noop_job, NULL, NULL), 0); /* fills the queue */
    assert_int_equal(cx_pool_try_submit(p, noop_job, NULL, NULL), CX_EAGAIN);

    struct submitter a = {.p = p, .s = new_scope(NULL), .rc = 1};
    sem_init(&a.started, 0, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, submitter_main, &a), 0);
    while (sem_wait(&a.started) != 0)
        ;
    assert_int_equal(cx_scope_cancel(a.s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, CX_ECANCELED);

    struct timespec d = ms_from_now(20);
    cx_scope *s = new_scope(&d);
    CX_WITH_SCOPE(s) { assert_int_equal(cx_pool_submit(p, noop_job, NULL, NULL), CX_ETIMEDOUT); }

    gate_open(&g);
    cx_future_release(gf);
    cx_pool_free(p);
    cx_scope_release(a.s);
    cx_scope_release(s);
    sem_destroy(&a.started);
    gate_destroy(&g);
}

/* ============================================================= futures */

static void result_until_times_out_then_returns_the_result(void **state)
{
    (void)state;
    struct gate g;
    cx_future *gf = NULL;
    cx_pool *p = held_pool(&g, 0, &gf);
    struct timespec soon = ms_from_now(10), bad = {.tv_sec = 0, .tv_nsec = -1};
    void *r = TAG(5);
    assert_int_equal(cx_future_result_until(NULL, NULL, &r), CX_EINVAL);
    assert_int_equal(cx_future_result_until(gf, &bad, &r), CX_EINVAL);
    assert_int_equal(cx_future_result_until(gf, &soon, &r), CX_ETIMEDOUT);
    assert_ptr_equal(r, TAG(5));
    gate_open(&g);
    struct timespec later = ms_from_now(LONG_MS);
    assert_int_equal(cx_future_result_until(gf, &later, &r), 0);
    assert_ptr_equal(r, TAG(0x6a7e));
    assert_int_equal(cx_future_result_until(gf, NULL, NULL), 0);
    cx_future_release(gf);
    cx_pool_free(p);
    gate_destroy(&g);
}

struct opener {
    struct gate *g;
    cx_future *wait_for; /* open once someone waits on it */
};

static void *opener_main(void *arg)
{
    struct opener *o = arg;
    until_someone_waits_on(o->wait_for);
    gate_open(o->g);
    return NULL;
}

static void wait_any_returns_a_complete_one(void **state)
{
    (void)state;
    struct gate g;
    cx_future *gf = NULL, *done = NULL;
    cx_pool *p = held_pool(&g, 0, &gf);
    cx_pool *q = new_pool(1, 0);
    assert_int_equal(cx_pool_submit(q, noop_job, NULL, &done), 0);
    assert_int_equal(cx_future_wait(done, NULL), 0);
    size_t idx = 99;
    cx_future *both[2] = {gf, done}, *none[1] = {NULL};
    struct timespec soon = ms_from_now(10), bad = {.tv_sec = -1, .tv_nsec = 0};
    assert_int_equal(cx_future_wait_any(NULL, 1, NULL, &idx), CX_EINVAL);
    assert_int_equal(cx_future_wait_any(both, 0, NULL, &idx), CX_EINVAL);
    assert_int_equal(cx_future_wait_any(both, 2, NULL, NULL), CX_EINVAL);
    assert_int_equal(cx_future_wait_any(none, 1, NULL, &idx), CX_EINVAL);
    assert_int_equal(cx_future_wait_any(both, 2, &bad, &idx), CX_EINVAL);
    assert_int_equal(idx, 99);
    /* One complete already. */
    assert_int_equal(cx_future_wait_any(both, 2, NULL, &idx), 0);
    assert_int_equal(idx, 1);
    /* None complete: the deadline. */
    assert_int_equal(cx_future_wait_any(both, 1, &soon, &idx), CX_ETIMEDOUT);
    /* Many (listeners on the heap), one completes while we sleep. */
    cx_future *many[12];
    for (size_t i = 0; i < 12; i++)
        many[i] = gf;
    struct opener o = {.g = &g, .wait_for = gf};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, opener_main, &o), 0);
    struct timespec later = ms_from_now(LONG_MS);
    assert_int_equal(cx_future_wait_any(many, 12, &later, &idx), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    cx_future_release(gf);
    cx_future_release(done);
    cx_pool_free(p);
    cx_pool_free(q);
    gate_destroy(&g);
}

/* on_done: what the callback saw. */
static cx_var *od_var;
struct od {
    int calls;
    int result;
    void *var_value;
    sem_t called;
};

static void od_fn(cx_future *f, void *arg)
{
    struct od *o = arg;
    o->calls++;
    o->result = cx_future_result(f, NULL); /* complete: does not wait */
    o->var_value = cx_var_get_or(od_var, NULL);
    sem_post(&o->called);
}

static void *set_and_return(void *arg)
{
    (void)cx_var_set(od_var, TAG(0xb0b), NULL); /* the job's snapshot only */
    return arg;
}

static void on_done_runs_once_in_the_registration_context(void **state)
{
    (void)state;
    od_var = mkvar("od", NULL);
    struct gate g;
    cx_future *gf = NULL, *fl = NULL, *fq = NULL;
    cx_pool *p = held_pool(&g, 0, &gf);
    struct od now = {0}, later = {0}, cancelled = {0}, twice = {0};
    sem_init(&now.called, 0, 0);
    sem_init(&later.called, 0, 0);
    sem_init(&cancelled.called, 0, 0);
    sem_init(&twice.called, 0, 0);
    assert_int_equal(cx_future_on_done(NULL, od_fn, &now), CX_EINVAL);
    assert_int_equal(cx_future_on_done(gf, NULL, &now), CX_EINVAL);

    assert_int_equal(cx_pool_submit(p, set_and_return, NULL, &fl), 0); /* queued */
    assert_int_equal(cx_pool_submit(p, noop_job, NULL, &fq), 0);       /* queued */
    CX_WITH(od_var, TAG(0x1a7e))
    {
        assert_int_equal(cx_future_on_done(fl, od_fn, &later), 0);
        assert_int_equal(cx_future_on_done(fl, od_fn, &twice), 0);
    }
    CX_WITH(od_var, TAG(0xca))
    {
        assert_int_equal(cx_future_on_done(fq, od_fn, &cancelled), 0);
        assert_int_equal(cx_future_cancel(fq), 0); /* fires here, in this thread */
        assert_int_equal(cancelled.calls, 1);
    }
    assert_int_equal(cancelled.result, CX_ECANCELED);
    assert_ptr_equal(cancelled.var_value, TAG(0xca));
    assert_int_equal(later.calls, 0); /* not before the job ends */
    gate_open(&g);
    while (sem_wait(&later.called) != 0)
        ;
    while (sem_wait(&twice.called) != 0)
        ;
    assert_int_equal(later.result, 0);
    assert_ptr_equal(later.var_value, TAG(0x1a7e)); /* not the job's 0xb0b */
    assert_ptr_equal(twice.var_value, TAG(0x1a7e));
    /* Complete already: at once, in the caller, in its context. */
    CX_WITH(od_var, TAG(0x2))
    {
        assert_int_equal(cx_future_on_done(fl, od_fn, &now), 0);
        assert_int_equal(now.calls, 1);
        assert_ptr_equal(now.var_value, TAG(0x2));
    }
    cx_pool_free(p);
    assert_int_equal(later.calls, 1);
    assert_int_equal(twice.calls, 1);
    assert_int_equal(cancelled.calls, 1);
    cx_future_release(fl);
    cx_future_release(fq);
    cx_future_release(gf);
    sem_destroy(&now.called);
    sem_destroy(&later.called);
    sem_destroy(&cancelled.called);
    sem_destroy(&twice.called);
    gate_destroy(&g);
    cx_var_release(od_var);
}

static void on_done_sees_a_job_skipped_by_its_scope(void **state)
{
    (void)state;
    od_var = mkvar("od", NULL);
    struct gate g;
    cx_future *gf = NULL, *f = NULL;
    cx_pool *p = held_pool(&g, 0, &gf);
    struct od o = {0};
    sem_init(&o.called, 0, 0);
    cx_scope *s = new_scope(NULL);
    int ran = 0;
    CX_WITH_SCOPE(s) { assert_int_equal(cx_pool_submit(p, flag_job, &ran, &f), 0); }
    assert_int_equal(cx_future_on_done(f, od_fn, &o), 0);
    assert_int_equal(cx_scope_cancel(s), 0);
    gate_open(&g);
    while (sem_wait(&o.called) != 0)
        ;
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.result, CX_ECANCELED);
    assert_int_equal(ran, 0);
    cx_pool_free(p);
    cx_future_release(f);
    cx_future_release(gf);
    cx_scope_release(s);
    sem_destroy(&o.called);
    gate_destroy(&g);
    cx_var_release(od_var);
}

/* ==================================================== no self-deadlock */

static cx_pool *chain_pool;
static cx_var *chain_var;
struct chain_seen {
    void *parent_value[4]; /* what level d saw of the variable */
    pthread_t thread[4];
    int rc[4];
    int how; /* 0 result, 1 wait, 2 wait_any */
};
static struct chain_seen chain_seen;

/* Level d submits level d - 1 to the same pool and waits for it. */
static void *chain_job(void *arg)
{
    uintptr_t d = (uintptr_t)arg;
    chain_seen.parent_value[d] = cx_var_get_or(chain_var, NULL);
    chain_seen.thread[d] = pthread_self();
    if (d == 0)
        return TAG(1);
    (void)cx_var_set(chain_var, TAG(d), NULL);
    cx_future *f = NULL;
    int rc = cx_pool_submit(chain_pool, chain_job, TAG(d - 1), &f);
    void *r = NULL;
    size_t idx = 9;
    if (rc == 0) {
        struct timespec dl = ms_from_now(LONG_MS);
        if (chain_seen.how == 0)
            rc = cx_future_result(f, &r);
        else if (chain_seen.how == 1)
            rc = cx_future_wait(f, &dl) != 0 ? -100 : cx_future_result(f, &r);
        else
            rc = cx_future_wait_any(&f, 1, &dl, &idx) != 0 ? -100 : cx_future_result(f, &r);
        cx_future_release(f);
    }
    chain_seen.rc[d] = rc;
    return TAG((uintptr_t)r + 1);
}

static void wait_chain_of_depth_3_on_a_one_worker_pool(void **state)
{
    (void)state;
    chain_var = mkvar("chain", NULL);
    for (int how = 0; how < 3; how++) {
        memset(&chain_seen, 0, sizeof(chain_seen));
        chain_seen.how = how;
        chain_pool = new_pool(1, 0);
        cx_future *f = NULL;
        assert_int_equal(cx_pool_submit(chain_pool, chain_job, TAG(3), &f), 0);
        struct timespec dl = ms_from_now(LONG_MS);
        void *r = NULL;
        assert_int_equal(cx_future_result_until(f, &dl, &r), 0);
        assert_ptr_equal(r, TAG(4));
        for (int d = 1; d <= 3; d++)
            assert_int_equal(chain_seen.rc[d], 0);
        /* Each level ran inline in the one worker, in its own snapshot
         * (it saw what its parent set before submitting it). */
        assert_null(chain_seen.parent_value[3]);
        for (int d = 0; d < 3; d++) {
            assert_ptr_equal(chain_seen.parent_value[d], TAG(d + 1));
            assert_true(pthread_equal(chain_seen.thread[d], chain_seen.thread[3]));
        }
        cx_future_release(f);
        cx_pool_free(chain_pool);
    }
    cx_var_release(chain_var);
}

/* ============================================ drain keeps nested work */

struct drain {
    cx_pool *p;
    struct gate g;
    int nested_rc;
    int nested_ran;
    bool use_free;
};

static void *nested_submitter(void *arg)
{
    struct drain *d = arg;
    gate_job(&d->g); /* held until the drain has begun */
    d->nested_rc = cx_pool_submit(d->p, flag_job, &d->nested_ran, NULL);
    return NULL;
}

static void *drainer_main(void *arg)
{
    struct drain *d = arg;
    if (d->use_free)
        cx_pool_free(d->p);
    else
        (void)cx_pool_shutdown(d->p, false);
    return NULL;
}

static void drain_keeps_nested_submits_and_refuses_outside_ones(void **state)
{
    (void)state;
    for (int use_free = 0; use_free < 2; use_free++) {
        struct drain d = {.p = new_pool(2, 0), .nested_rc = 1, .use_free = use_free};
        gate_init(&d.g);
        assert_int_equal(cx_pool_submit(d.p, nested_submitter, &d, NULL), 0);
        gate_wait_entered(&d.g);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, drainer_main, &d), 0);
        /* Wait until the pool refuses outsiders: the drain has begun. */
        int rc;
        while ((rc = cx_pool_try_submit(d.p, noop_job, NULL, NULL)) != CX_ESHUTDOWN) {
            assert_true(rc == 0 || rc == CX_EAGAIN);
            sched_yield();
        }
        gate_open(&d.g);
        assert_int_equal(pthread_join(t, NULL), 0);
        /* The drain ended after the nested job ran. */
        assert_int_equal(d.nested_rc, 0);
        assert_int_equal(d.nested_ran, 1);
        if (!use_free) {
            assert_int_equal(cx_pool_submit(d.p, noop_job, NULL, NULL), CX_ESHUTDOWN);
            cx_pool_free(d.p);
        }
        gate_destroy(&d.g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(scope_bad_arguments_are_einval, base_context_is_empty),
        cmocka_unit_test_teardown(no_scope_costs_nothing_and_says_nothing, base_context_is_empty),
        cmocka_unit_test_teardown(deadline_of_a_chain_without_one_and_cancel_twice, base_context_is_empty),
        cmocka_unit_test_teardown(with_scope_makes_it_current_and_cancel_is_seen,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(cancel_reaches_every_descendant_and_no_ancestor,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(child_of_a_cancelled_scope_is_born_cancelled,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(earliest_deadline_of_the_chain_applies, base_context_is_empty),
        cmocka_unit_test_teardown(deadline_in_is_now_plus_ms, base_context_is_empty),
        cmocka_unit_test_teardown(scope_outlives_release_while_a_context_holds_it,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(threads_and_jobs_inherit_the_scope, base_context_is_empty),
        cmocka_unit_test_teardown(cancel_wakes_a_wait_blocked_in_another_thread,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(scope_deadline_ends_a_blocked_wait, base_context_is_empty),
        cmocka_unit_test_teardown(job_of_a_cancelled_or_expired_scope_completes_without_running,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(blocking_submit_returns_on_cancel_and_at_the_deadline,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(result_until_times_out_then_returns_the_result,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(wait_any_returns_a_complete_one, base_context_is_empty),
        cmocka_unit_test_teardown(on_done_runs_once_in_the_registration_context,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(on_done_sees_a_job_skipped_by_its_scope, base_context_is_empty),
        cmocka_unit_test_teardown(wait_chain_of_depth_3_on_a_one_worker_pool,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(drain_keeps_nested_submits_and_refuses_outside_ones,
                                  base_context_is_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
