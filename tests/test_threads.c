/* test_threads.c - contexts and threads: racing entries (exactly one
 * wins), per-thread isolation, new threads starting empty, threads that
 * inherit a copy (cx_thread_create) or run in a given context
 * (cx_thread_create_in), readers of a context that another thread is
 * changing, and many short-lived threads (the thread-exit destructor).
 *
 * cmocka asserts only on the main thread: workers record what they saw in
 * their own slots, the main thread asserts after joining them.
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
#include <time.h>

#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "cx_test.h"
#include "cx_cmocka.h"
#include "cxvars.h"

/* ================================================================ helpers */

static void deadline_in(struct timespec *ts, int seconds)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += seconds;
}

static int items[64];

/* ============================================================ racing entry */

typedef struct race {
    cx_context *ctx;
    cx_var *counter;            /* incremented by each winner inside ctx */
    pthread_barrier_t start, end;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned rounds;
    /* Natively the workers also meet at a spinning rendezvous after the
     * barrier (each bumps `ready`, then spins until both have), so that
     * they reach cx_context_run within nanoseconds of each other (a
     * barrier wakes them tens of microseconds apart). Under valgrind
     * threads are serialised anyway: the barrier alone is used, and
     * `ready` is never touched (no unsynchronised access for the race
     * tools). */
    bool spin;
    unsigned ready;
    /* per round, under mu */
    int entered, attempts, ok, busy, other;
    int timeouts;               /* total, under mu */
    int counter_errors;         /* total, under mu */
} race;

static void *race_hold(void *arg)
{
    race *r = arg;
    /* The winner: bump the counter kept in ctx (visible to the next
     * round's winner, whichever thread it is). */
    void *v = NULL;
    uintptr_t n = 0;
    if (cx_var_get(r->counter, &v) == 0)
        n = (uintptr_t)v;
    int set_rc = cx_var_set(r->counter, (void *)(n + 1), NULL);
    pthread_mutex_lock(&r->mu);
    if (set_rc != 0)
        r->counter_errors++;
    r->entered++;
    pthread_cond_broadcast(&r->cv);
    /* Hold ctx until the other thread has tried (or also entered). */
    struct timespec ts;
    deadline_in(&ts, 20);
    while (r->attempts < 1 && r->entered < 2) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) {
            r->timeouts++;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void *race_worker(void *arg)
{
    race *r = arg;
    for (unsigned i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->start);
        if (r->spin) {
            __atomic_fetch_add(&r->ready, 1u, __ATOMIC_ACQ_REL);
            while (__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE) != 2 * (i + 1))
                ;
        }
        int rc = cx_context_run(r->ctx, race_hold, r, NULL);
        pthread_mutex_lock(&r->mu);
        if (rc == 0)
            r->ok++;
        else if (rc == CX_EBUSY)
            r->busy++;
        else
            r->other++;
        r->attempts++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_barrier_wait(&r->end);
    }
    return NULL;
}

static void two_threads_racing_to_enter_one_context_exactly_one_wins(void **state)
{
    (void)state;
    race r;
    memset(&r, 0, sizeof(r));
    r.ctx = mkctx();
    r.counter = mkvar("counter", NULL);
    r.rounds = cx_test_scaled(200);
    r.spin = !RUNNING_ON_VALGRIND;
    pthread_barrier_init(&r.start, NULL, 3);
    pthread_barrier_init(&r.end, NULL, 3);
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    unsigned *bad = calloc(r.rounds, sizeof(*bad));
    assert_non_null(bad);

    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_worker, &r), 0);
    for (unsigned i = 0; i < r.rounds; i++) {
        pthread_mutex_lock(&r.mu);
        r.entered = r.attempts = r.ok = r.busy = r.other = 0;
        pthread_mutex_unlock(&r.mu);
        pthread_barrier_wait(&r.start);
        pthread_barrier_wait(&r.end);
        pthread_mutex_lock(&r.mu);
        if (!(r.entered == 1 && r.ok == 1 && r.busy == 1 && r.other == 0))
            bad[i] = 1u + (unsigned)r.entered * 10u + (unsigned)r.busy * 100u;
        pthread_mutex_unlock(&r.mu);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);

    unsigned nbad = 0, first = 0;
    for (unsigned i = 0; i < r.rounds; i++) {
        if (bad[i] != 0 && nbad++ == 0)
            first = bad[i];
    }
    assert_int_equal(first, 0);
    assert_int_equal(nbad, 0);
    assert_int_equal(r.timeouts, 0);
    assert_int_equal(r.counter_errors, 0);
    /* Every winner saw the previous winner's value. */
    void *v = NULL;
    assert_int_equal(cx_context_get(r.ctx, r.counter, &v), 0);
    assert_int_equal((uintptr_t)v, r.rounds);
    /* Nobody holds it any more. */
    assert_int_equal(cx_context_run(r.ctx, race_hold, &r, NULL), 0);

    free(bad);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.end);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    cx_context_release(r.ctx);
    cx_var_release(r.counter);
}

/* ============================================================ isolation */

enum { ISO_THREADS = 10, ISO_VALUES = 8 };

typedef struct iso {
    cx_var *var;   /* plain */
    cx_var *owned; /* with a destroy callback */
    pthread_barrier_t start;
    unsigned iterations;
    int mine[ISO_THREADS][ISO_VALUES];
    /* per thread, written only by that thread */
    unsigned mismatches[ISO_THREADS];
    unsigned sets_owned[ISO_THREADS];
    unsigned destroyed[ISO_THREADS];
    unsigned destroyed_elsewhere[ISO_THREADS];
    pthread_t self[ISO_THREADS];
} iso;

static iso *iso_state;

static void iso_destroy(void *v)
{
    int *p = v;
    iso *s = iso_state;
    for (int t = 0; t < ISO_THREADS; t++) {
        if (p >= s->mine[t] && p < s->mine[t] + ISO_VALUES) {
            /* Destroyed in the thread that owned it (each thread only
             * writes its own slot). */
            if (pthread_equal(pthread_self(), s->self[t]))
                s->destroyed[t]++;
            else
                s->destroyed_elsewhere[t]++;
            return;
        }
    }
}

typedef struct iso_arg {
    iso *s;
    int t;
} iso_arg;

static void *iso_worker(void *p)
{
    iso_arg *a = p;
    iso *s = a->s;
    int t = a->t;
    s->self[t] = pthread_self();
    unsigned bad = 0;
    void *v = NULL;
    pthread_barrier_wait(&s->start);
    /* A fresh thread: nothing bound yet. */
    if (cx_var_get(s->var, &v) != CX_ELOOKUP)
        bad++;
    cx_token *first = NULL;
    for (unsigned i = 0; i < s->iterations; i++) {
        int *mine = &s->mine[t][i % ISO_VALUES];
        cx_token *tok = NULL;
        if (cx_var_set(s->var, mine, i == 0 ? &first : &tok) != 0)
            bad++;
        if (cx_var_get(s->var, &v) != 0 || v != mine)
            bad++;
        if (cx_var_get_or(s->var, NULL) != mine)
            bad++;
        if (cx_var_set(s->owned, mine, NULL) == 0)
            s->sets_owned[t]++;
        else
            bad++;
        if (i % 3 == 1 && tok != NULL) {
            /* Undo: back to the previous iteration's value. */
            if (cx_var_reset(s->var, tok) != 0)
                bad++;
            int *prev = &s->mine[t][(i - 1) % ISO_VALUES];
            if (cx_var_get(s->var, &v) != 0 || v != prev)
                bad++;
            if (cx_var_set(s->var, mine, NULL) != 0)
                bad++;
        }
        cx_token_release(tok);
        CX_WITH(s->var, &s->mine[t][(i + 1) % ISO_VALUES])
        {
            if (cx_var_get(s->var, &v) != 0 || v != &s->mine[t][(i + 1) % ISO_VALUES])
                bad++;
        }
        if (cx_var_get(s->var, &v) != 0 || v != mine)
            bad++;
        if (cx_var_get(s->owned, &v) != 0 || v != mine)
            bad++;
    }
    /* Back to nothing. */
    if (first == NULL || cx_var_reset(s->var, first) != 0)
        bad++;
    cx_token_release(first);
    if (cx_var_get(s->var, &v) != CX_ELOOKUP)
        bad++;
    s->mismatches[t] = bad;
    /* s->owned stays bound: the thread-exit destructor releases it. */
    return NULL;
}

static void ten_threads_setting_one_variable_stay_isolated(void **state)
{
    (void)state;
    iso *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    iso_state = s;
    s->var = mkvar("shared", NULL);
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = iso_destroy};
    s->owned = mkvar("owned", &o);
    s->iterations = cx_test_scaled(2000);
    pthread_barrier_init(&s->start, NULL, ISO_THREADS);
    /* The main thread's own value must not leak into the workers. */
    cx_token *mt = NULL;
    assert_int_equal(cx_var_set(s->var, &items[0], &mt), 0);

    pthread_t th[ISO_THREADS];
    iso_arg args[ISO_THREADS];
    for (int t = 0; t < ISO_THREADS; t++) {
        args[t] = (iso_arg){.s = s, .t = t};
        s->mismatches[t] = 12345; /* overwritten by a finished worker */
        assert_int_equal(pthread_create(&th[t], NULL, iso_worker, &args[t]), 0);
    }
    for (int t = 0; t < ISO_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);

    for (int t = 0; t < ISO_THREADS; t++) {
        assert_int_equal(s->mismatches[t], 0);
        assert_int_equal(s->sets_owned[t], s->iterations);
        /* Every owned value destroyed once, in its own thread, the last
         * one by the thread-exit destructor. */
        assert_int_equal(s->destroyed[t], s->iterations);
        assert_int_equal(s->destroyed_elsewhere[t], 0);
    }
    void *v = NULL;
    assert_int_equal(cx_var_get(s->var, &v), 0);
    assert_ptr_equal(v, &items[0]);
    assert_int_equal(cx_var_get(s->owned, &v), CX_ELOOKUP);
    assert_int_equal(cx_var_reset(s->var, mt), 0);
    cx_token_release(mt);
    pthread_barrier_destroy(&s->start);
    cx_var_release(s->var);
    cx_var_release(s->owned);
    iso_state = NULL;
    free(s);
}

/* ============================================================ new threads */

typedef struct fresh {
    cx_var *plain, *dflt;
    int rc_plain, rc_dflt;
    void *v_dflt, *v_or;
    size_t copy_len;
    int copy_null;
    int rc_plain_after;
    void *v_after;
} fresh;

static void *fresh_worker(void *p)
{
    fresh *f = p;
    void *v = NULL;
    f->rc_plain = cx_var_get(f->plain, &v);
    f->rc_dflt = cx_var_get(f->dflt, &f->v_dflt);
    f->v_or = cx_var_get_or(f->plain, &items[3]);
    cx_context *c = cx_copy_context();
    f->copy_null = c == NULL;
    f->copy_len = c != NULL ? cx_context_len(c) : 999;
    cx_context_release(c);
    /* Its own sets work and vanish with the thread. */
    if (cx_var_set(f->plain, &items[4], NULL) == 0)
        f->rc_plain_after = cx_var_get(f->plain, &f->v_after);
    return NULL;
}

static void new_thread_starts_with_an_empty_context(void **state)
{
    (void)state;
    fresh f;
    memset(&f, 0, sizeof(f));
    f.plain = mkvar("plain", NULL);
    cx_var_opts o = {.has_default = true, .default_value = &items[2], .destroy = NULL};
    f.dflt = mkvar("dflt", &o);
    cx_token *t1 = NULL, *t2 = NULL;
    assert_int_equal(cx_var_set(f.plain, &items[1], &t1), 0);
    assert_int_equal(cx_var_set(f.dflt, &items[1], &t2), 0);
    f.rc_plain_after = 99;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fresh_worker, &f), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(f.rc_plain, CX_ELOOKUP);
    assert_int_equal(f.rc_dflt, 0);
    assert_ptr_equal(f.v_dflt, &items[2]);
    assert_ptr_equal(f.v_or, &items[3]);
    assert_int_equal(f.copy_null, 0);
    assert_int_equal(f.copy_len, 0);
    assert_int_equal(f.rc_plain_after, 0);
    assert_ptr_equal(f.v_after, &items[4]);
    void *v = NULL;
    assert_int_equal(cx_var_get(f.plain, &v), 0);
    assert_ptr_equal(v, &items[1]);
    assert_int_equal(cx_var_reset(f.plain, t1), 0);
    assert_int_equal(cx_var_reset(f.dflt, t2), 0);
    cx_token_release(t1);
    cx_token_release(t2);
    cx_var_release(f.plain);
    cx_var_release(f.dflt);
}

/* cx_thread_create: the thread runs in a copy of the creator's context. */
typedef struct inherit {
    cx_var *x, *y;
    pthread_barrier_t step;
    int rc_first, rc_set, rc_after_creator, rc_y;
    void *first, *after_creator;
    size_t len;
    /* the creator's view, recorded between the steps */
    int main_rc;
    void *main_seen;
    int main_rc_y;
} inherit;

static void *inherit_worker(void *p)
{
    inherit *h = p;
    h->rc_first = cx_var_get(h->x, &h->first);
    h->rc_set = cx_var_set(h->x, &items[11], NULL) | cx_var_set(h->y, &items[12], NULL);
    pthread_barrier_wait(&h->step); /* 1: the creator looks */
    pthread_barrier_wait(&h->step); /* 2: the creator has changed x */
    h->rc_after_creator = cx_var_get(h->x, &h->after_creator);
    void *v = NULL;
    h->rc_y = cx_var_get(h->y, &v);
    cx_context *c = cx_copy_context();
    h->len = c != NULL ? cx_context_len(c) : 999;
    cx_context_release(c);
    return NULL;
}

static void thread_create_inherits_a_copy_of_the_creator_context(void **state)
{
    (void)state;
    inherit h;
    memset(&h, 0, sizeof(h));
    h.x = mkvar("x", NULL);
    h.y = mkvar("y", NULL);
    pthread_barrier_init(&h.step, NULL, 2);
    cx_token *t = NULL, *t2 = NULL;
    assert_int_equal(cx_var_set(h.x, &items[10], &t), 0);
    pthread_t th;
    assert_int_equal(cx_thread_create(&th, NULL, inherit_worker, &h), 0);
    pthread_barrier_wait(&h.step);
    /* The thread's sets are not seen here (no assert before the join:
     * a failure would leave the worker waiting). */
    h.main_rc = cx_var_get(h.x, &h.main_seen);
    void *v = NULL;
    h.main_rc_y = cx_var_get(h.y, &v);
    int rc_main_set = cx_var_set(h.x, &items[13], &t2);
    pthread_barrier_wait(&h.step);
    assert_int_equal(pthread_join(th, NULL), 0);

    assert_int_equal(h.rc_first, 0);
    assert_ptr_equal(h.first, &items[10]);
    assert_int_equal(h.rc_set, 0);
    assert_int_equal(h.main_rc, 0);
    assert_ptr_equal(h.main_seen, &items[10]);
    assert_int_equal(h.main_rc_y, CX_ELOOKUP);
    assert_int_equal(rc_main_set, 0);
    /* The creator's later set is not seen by the thread. */
    assert_int_equal(h.rc_after_creator, 0);
    assert_ptr_equal(h.after_creator, &items[11]);
    assert_int_equal(h.rc_y, 0);
    assert_int_equal(h.len, 2);

    assert_int_equal(cx_var_get(h.x, &v), 0);
    assert_ptr_equal(v, &items[13]);
    assert_int_equal(cx_var_reset(h.x, t2), 0);
    assert_int_equal(cx_var_reset(h.x, t), 0);
    cx_token_release(t);
    cx_token_release(t2);
    pthread_barrier_destroy(&h.step);
    cx_var_release(h.x);
    cx_var_release(h.y);
}

/* cx_thread_create_in: the thread runs in ctx itself. */
typedef struct runin {
    cx_var *x, *y;
    cx_context *ctx;
    pthread_barrier_t step;
    int use_barrier;
    int calls;
    int rc_get;
    void *seen;
    int rc_set;
    int rc_run_same; /* entering ctx again from inside: EBUSY */
} runin;

static void *noop(void *p) { return p; }

static void *runin_worker(void *p)
{
    runin *r = p;
    r->calls++;
    if (r->use_barrier)
        pthread_barrier_wait(&r->step); /* 1: the creator tries to enter */
    r->rc_get = cx_var_get(r->x, &r->seen);
    r->rc_set = cx_var_set(r->x, &items[21], NULL) | cx_var_set(r->y, &items[22], NULL);
    r->rc_run_same = r->ctx != NULL ? cx_context_run(r->ctx, noop, NULL, NULL) : CX_EBUSY;
    if (r->use_barrier)
        pthread_barrier_wait(&r->step); /* 2 */
    return NULL;
}

static void *set_x(void *p)
{
    runin *r = p;
    return (void *)(intptr_t)cx_var_set(r->x, &items[20], NULL);
}

static void thread_create_in_runs_in_the_given_context(void **state)
{
    (void)state;
    runin r;
    memset(&r, 0, sizeof(r));
    r.x = mkvar("x", NULL);
    r.y = mkvar("y", NULL);
    r.ctx = mkctx();
    void *res = (void *)1;
    assert_int_equal(cx_context_run(r.ctx, set_x, &r, &res), 0);
    assert_null(res);
    r.use_barrier = 1;
    pthread_barrier_init(&r.step, NULL, 2);
    pthread_t th;
    assert_int_equal(cx_thread_create_in(&th, NULL, r.ctx, runin_worker, &r), 0);
    pthread_barrier_wait(&r.step);
    /* Entered on the thread's behalf: busy for everybody else. */
    int rc_run = cx_context_run(r.ctx, noop, NULL, NULL);
    pthread_t th2;
    runin other;
    memset(&other, 0, sizeof(other));
    int rc_in = cx_thread_create_in(&th2, NULL, r.ctx, runin_worker, &other);
    pthread_barrier_wait(&r.step);
    assert_int_equal(pthread_join(th, NULL), 0);

    assert_int_equal(rc_run, CX_EBUSY);
    assert_int_equal(rc_in, CX_EBUSY);
    assert_int_equal(other.calls, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc_get, 0);
    assert_ptr_equal(r.seen, &items[20]);
    assert_int_equal(r.rc_set, 0);
    assert_int_equal(r.rc_run_same, CX_EBUSY);
    /* Its sets are in ctx after the join. */
    void *v = NULL;
    assert_int_equal(cx_context_get(r.ctx, r.x, &v), 0);
    assert_ptr_equal(v, &items[21]);
    assert_int_equal(cx_context_get(r.ctx, r.y, &v), 0);
    assert_ptr_equal(v, &items[22]);
    assert_int_equal(cx_context_len(r.ctx), 2);
    /* And the main thread's own context saw nothing. */
    assert_int_equal(cx_var_get(r.x, &v), CX_ELOOKUP);
    /* Left: ctx can be entered again. */
    assert_int_equal(cx_context_run(r.ctx, noop, NULL, NULL), 0);
    pthread_barrier_destroy(&r.step);
    cx_context_release(r.ctx);
    cx_var_release(r.x);
    cx_var_release(r.y);
}

/* From inside a run of ctx: the thread cannot be started in ctx. */
static void *create_in_self(void *p)
{
    runin *r = p;
    pthread_t th;
    int rc = cx_thread_create_in(&th, NULL, r->ctx, runin_worker, r);
    if (rc == 0)
        pthread_join(th, NULL);
    return (void *)(intptr_t)rc;
}

static void thread_create_in_an_entered_context_returns_ebusy(void **state)
{
    (void)state;
    runin r;
    memset(&r, 0, sizeof(r));
    r.x = mkvar("x", NULL);
    r.y = mkvar("y", NULL);
    r.ctx = mkctx();
    void *res = NULL;
    assert_int_equal(cx_context_run(r.ctx, create_in_self, &r, &res), 0);
    assert_int_equal((intptr_t)res, CX_EBUSY);
    assert_int_equal(r.calls, 0);
    assert_int_equal(cx_context_len(r.ctx), 0);
    /* The failed attempt did not leave ctx entered (or un-entered it while
     * this thread was inside: the run above returned normally). */
    pthread_t th;
    assert_int_equal(cx_thread_create_in(&th, NULL, r.ctx, runin_worker, &r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(cx_context_len(r.ctx), 2);
    cx_context_release(r.ctx);
    cx_var_release(r.x);
    cx_var_release(r.y);
}

static void thread_create_with_null_arguments_returns_einval(void **state)
{
    (void)state;
    cx_context *c = mkctx();
    pthread_t th;
    assert_int_equal(cx_thread_create(NULL, NULL, noop, NULL), CX_EINVAL);
    assert_int_equal(cx_thread_create(&th, NULL, NULL, NULL), CX_EINVAL);
    assert_int_equal(cx_thread_create_in(NULL, NULL, c, noop, NULL), CX_EINVAL);
    assert_int_equal(cx_thread_create_in(&th, NULL, NULL, noop, NULL), CX_EINVAL);
    assert_int_equal(cx_thread_create_in(&th, NULL, c, NULL, NULL), CX_EINVAL);
    /* None of them left c entered. */
    assert_int_equal(cx_context_run(c, noop, NULL, NULL), 0);
    cx_context_release(c);
}

/* The library keeps ctx alive until the thread's fn returns. */
static unsigned kept_destroyed;
static void kept_destroy(void *v)
{
    (void)v;
    kept_destroyed++;
}

typedef struct kept {
    cx_var *x;
    pthread_barrier_t step;
    int rc;
} kept;

static void *kept_worker(void *p)
{
    kept *k = p;
    pthread_barrier_wait(&k->step); /* the creator has released ctx */
    k->rc = cx_var_set(k->x, &items[30], NULL);
    return NULL;
}

static void thread_create_in_keeps_the_context_alive(void **state)
{
    (void)state;
    kept k;
    memset(&k, 0, sizeof(k));
    kept_destroyed = 0;
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = kept_destroy};
    k.x = mkvar("x", &o);
    k.rc = 99;
    pthread_barrier_init(&k.step, NULL, 2);
    cx_context *c = mkctx();
    pthread_t th;
    assert_int_equal(cx_thread_create_in(&th, NULL, c, kept_worker, &k), 0);
    cx_context_release(c); /* ours; the thread's stays */
    pthread_barrier_wait(&k.step);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(k.rc, 0);
    /* The thread dropped the last reference when fn returned. */
    assert_int_equal(kept_destroyed, 1);
    pthread_barrier_destroy(&k.step);
    cx_var_release(k.x);
}

/* ============================================================ readers */

enum { RD_PLAIN = 6, RD_OWNED = 2, RD_VALUES = 16, RD_READERS = 2 };
#define RD_MAGIC 0x5eedf00du

typedef struct owned_val {
    unsigned magic;
    int var;
} owned_val;

typedef struct reader_errs {
    unsigned bad_rc, bad_len, bad_value, bad_foreach, bad_owned, bad_copy, went_back;
    unsigned reads;
} reader_errs;

typedef struct readers {
    cx_context *ctx;
    cx_var *plain[RD_PLAIN];
    cx_var *owned[RD_OWNED];
    cx_var *clock;
    int vals[RD_PLAIN][RD_VALUES];
    unsigned iterations;
    pthread_mutex_t done_mu; /* taken by the owner only once, at the end */
    unsigned done;
    unsigned owned_sets, owner_errors;
    reader_errs errs[RD_READERS];
    /* destroy calls per thread: [0] main, [1] owner, [2..] readers; the
     * last holder of a value may be any of them */
    unsigned destroyed_by[2 + RD_READERS];
    pthread_barrier_t start;
} readers;

static _Thread_local unsigned *destroy_slot;
static unsigned destroy_unknown_thread;

static void owned_free(void *v)
{
    owned_val *o = v;
    o->magic = 0xdeadu;
    if (destroy_slot != NULL)
        (*destroy_slot)++;
    else
        destroy_unknown_thread++;
    free(o);
}

static unsigned total_owned_destroyed(const readers *r)
{
    unsigned n = 0;
    for (int i = 0; i < 2 + RD_READERS; i++)
        n += r->destroyed_by[i];
    return n;
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *owner_loop(void *p)
{
    readers *r = p;
    uint64_t seed = 0x1234567u;
    cx_token *pending[12];
    int npend = 0;
    for (unsigned i = 0; i < r->iterations; i++) {
        /* A clock the readers must never see go back. */
        if (cx_var_set(r->clock, (void *)(uintptr_t)(i + 1), NULL) != 0)
            r->owner_errors++;
        unsigned op = (unsigned)(xs(&seed) % 10);
        if (op < 5 && npend < 12) {
            int k = (int)(xs(&seed) % RD_PLAIN);
            void *v = &r->vals[k][xs(&seed) % RD_VALUES];
            if (cx_var_set(r->plain[k], v, &pending[npend]) == 0)
                npend++;
            else
                r->owner_errors++;
        } else if (op < 8 && npend > 0) {
            int j = (int)(xs(&seed) % (unsigned)npend);
            cx_token *t = pending[j];
            pending[j] = pending[--npend];
            if (cx_var_reset(cx_token_var(t), t) != 0)
                r->owner_errors++;
            cx_token_release(t);
        } else {
            int k = (int)(xs(&seed) % RD_OWNED);
            owned_val *o = malloc(sizeof(*o));
            if (o == NULL) {
                r->owner_errors++;
                continue;
            }
            o->magic = RD_MAGIC;
            o->var = k;
            if (cx_var_set(r->owned[k], o, NULL) == 0)
                r->owned_sets++;
            else
                free(o), r->owner_errors++;
        }
    }
    while (npend > 0) {
        cx_token *t = pending[--npend];
        if (cx_var_reset(cx_token_var(t), t) != 0)
            r->owner_errors++;
        cx_token_release(t);
    }
    return NULL;
}

static void *owner_thread(void *p)
{
    readers *r = p;
    destroy_slot = &r->destroyed_by[1];
    pthread_barrier_wait(&r->start);
    if (cx_context_run(r->ctx, owner_loop, r, NULL) != 0)
        r->owner_errors++;
    pthread_mutex_lock(&r->done_mu);
    r->done = 1;
    pthread_mutex_unlock(&r->done_mu);
    return NULL;
}

typedef struct visit_state {
    readers *r;
    reader_errs *e;
    unsigned seen_plain[RD_PLAIN], seen_owned[RD_OWNED], seen_clock, count;
} visit_state;

static bool plain_value_ok(readers *r, int k, void *v)
{
    int *p = v;
    return p >= r->vals[k] && p < r->vals[k] + RD_VALUES;
}

static int reader_visit(cx_var *var, void *value, void *arg)
{
    visit_state *s = arg;
    readers *r = s->r;
    s->count++;
    if (var == r->clock) {
        s->seen_clock++;
        return 0;
    }
    for (int k = 0; k < RD_PLAIN; k++) {
        if (var == r->plain[k]) {
            s->seen_plain[k]++;
            if (!plain_value_ok(r, k, value))
                s->e->bad_value++;
            return 0;
        }
    }
    for (int k = 0; k < RD_OWNED; k++) {
        if (var == r->owned[k]) {
            s->seen_owned[k]++;
            /* Held by the snapshot: safe to read. */
            const owned_val *o = value;
            if (o == NULL || o->magic != RD_MAGIC || o->var != k)
                s->e->bad_owned++;
            return 0;
        }
    }
    s->e->bad_foreach++;
    return 0;
}

/* foreach over c; returns the number of bindings, checks each seen once. */
static unsigned reader_foreach(readers *r, reader_errs *e, const cx_context *c)
{
    visit_state s;
    memset(&s, 0, sizeof(s));
    s.r = r;
    s.e = e;
    if (cx_context_foreach(c, reader_visit, &s) != 0)
        e->bad_rc++;
    for (int k = 0; k < RD_PLAIN; k++)
        if (s.seen_plain[k] > 1)
            e->bad_foreach++;
    for (int k = 0; k < RD_OWNED; k++)
        if (s.seen_owned[k] > 1)
            e->bad_foreach++;
    if (s.seen_clock > 1)
        e->bad_foreach++;
    if (s.count > RD_PLAIN + RD_OWNED + 1)
        e->bad_len++;
    return s.count;
}

typedef struct reader_arg {
    readers *r;
    int idx;
} reader_arg;

static void *reader_thread(void *p)
{
    reader_arg *a = p;
    readers *r = a->r;
    reader_errs *e = &r->errs[a->idx];
    uintptr_t last_clock = 0;
    destroy_slot = &r->destroyed_by[2 + a->idx];
    pthread_barrier_wait(&r->start);
    for (;;) {
        pthread_mutex_lock(&r->done_mu);
        unsigned finished = r->done;
        pthread_mutex_unlock(&r->done_mu);
        e->reads++;
        size_t len = cx_context_len(r->ctx);
        if (len > RD_PLAIN + RD_OWNED + 1)
            e->bad_len++;
        void *v = NULL;
        int rc = cx_context_get(r->ctx, r->clock, &v);
        if (rc == 0) {
            if ((uintptr_t)v < last_clock || (uintptr_t)v > r->iterations)
                e->went_back++;
            last_clock = (uintptr_t)v;
        } else if (rc != CX_ELOOKUP || last_clock != 0) {
            e->bad_rc++;
        }
        for (int k = 0; k < RD_PLAIN; k++) {
            rc = cx_context_get(r->ctx, r->plain[k], &v);
            if (rc == 0) {
                if (!plain_value_ok(r, k, v))
                    e->bad_value++;
            } else if (rc != CX_ELOOKUP) {
                e->bad_rc++;
            }
            (void)cx_context_contains(r->ctx, r->plain[k]);
        }
        for (int k = 0; k < RD_OWNED; k++) {
            /* The value may be freed right after: only look at the rc. */
            rc = cx_context_get(r->ctx, r->owned[k], &v);
            if (rc != 0 && rc != CX_ELOOKUP)
                e->bad_rc++;
        }
        (void)reader_foreach(r, e, r->ctx);

        /* A copy is one consistent, frozen snapshot. */
        cx_context *c1 = cx_context_copy(r->ctx);
        if (c1 == NULL) {
            e->bad_copy++;
        } else {
            unsigned n1 = reader_foreach(r, e, c1);
            if (n1 != cx_context_len(c1))
                e->bad_copy++;
            cx_context *c2 = cx_context_copy(c1);
            if (c2 == NULL || !cx_context_equal(c1, c2) || !cx_context_equal(c2, c1) ||
                reader_foreach(r, e, c2) != n1)
                e->bad_copy++;
            /* Either answer is right while the owner runs; it must not crash. */
            (void)cx_context_equal(r->ctx, c1);
            (void)cx_context_equal(c1, r->ctx);
            /* The snapshot's clock cannot be older than one seen before. */
            if (cx_context_get(c1, r->clock, &v) == 0) {
                if ((uintptr_t)v < last_clock)
                    e->went_back++;
                last_clock = (uintptr_t)v;
            }
            /* Owned values in a copy live as long as the copy. */
            for (int k = 0; k < RD_OWNED; k++) {
                if (cx_context_get(c1, r->owned[k], &v) == 0) {
                    const owned_val *o = v;
                    if (o->magic != RD_MAGIC || o->var != k)
                        e->bad_owned++;
                }
            }
            cx_context_release(c2);
            cx_context_release(c1);
        }
        if (finished)
            break;
        /* Give the owner its turn: natively a no-op on a busy machine,
         * under valgrind (one thread at a time) it keeps the readers from
         * re-taking the context lock round after round. */
        sched_yield();
    }
    return NULL;
}

static void readers_see_consistent_maps_while_the_owner_sets(void **state)
{
    (void)state;
    readers *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    pthread_mutex_init(&r->done_mu, NULL);
    destroy_slot = &r->destroyed_by[0];
    destroy_unknown_thread = 0;
    r->ctx = mkctx();
    char name[16];
    for (int k = 0; k < RD_PLAIN; k++) {
        snprintf(name, sizeof(name), "p%d", k);
        r->plain[k] = mkvar(name, NULL);
    }
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = owned_free};
    for (int k = 0; k < RD_OWNED; k++) {
        snprintf(name, sizeof(name), "o%d", k);
        r->owned[k] = mkvar(name, &o);
    }
    r->clock = mkvar("clock", NULL);
    r->iterations = cx_test_scaled(20000);
    pthread_barrier_init(&r->start, NULL, 1 + RD_READERS);

    pthread_t owner, rd[RD_READERS];
    reader_arg ra[RD_READERS];
    assert_int_equal(pthread_create(&owner, NULL, owner_thread, r), 0);
    for (int i = 0; i < RD_READERS; i++) {
        ra[i] = (reader_arg){.r = r, .idx = i};
        assert_int_equal(pthread_create(&rd[i], NULL, reader_thread, &ra[i]), 0);
    }
    assert_int_equal(pthread_join(owner, NULL), 0);
    for (int i = 0; i < RD_READERS; i++)
        assert_int_equal(pthread_join(rd[i], NULL), 0);

    assert_int_equal(r->owner_errors, 0);
    for (int i = 0; i < RD_READERS; i++) {
        reader_errs *e = &r->errs[i];
        assert_true(e->reads > 0);
        assert_int_equal(e->bad_rc, 0);
        assert_int_equal(e->bad_len, 0);
        assert_int_equal(e->bad_value, 0);
        assert_int_equal(e->bad_foreach, 0);
        assert_int_equal(e->bad_owned, 0);
        assert_int_equal(e->bad_copy, 0);
        assert_int_equal(e->went_back, 0);
    }
    void *v = NULL;
    assert_int_equal(cx_context_get(r->ctx, r->clock, &v), 0);
    assert_int_equal((uintptr_t)v, r->iterations);
    for (int k = 0; k < RD_PLAIN; k++) {
        /* Non-LIFO resets may leave a variable bound, to one of its values. */
        if (cx_context_get(r->ctx, r->plain[k], &v) == 0)
            assert_true(plain_value_ok(r, k, v));
    }
    size_t bound_owned = 0;
    for (int k = 0; k < RD_OWNED; k++)
        bound_owned += cx_context_contains(r->ctx, r->owned[k]);
    assert_int_equal(total_owned_destroyed(r), r->owned_sets - bound_owned);
    cx_context_release(r->ctx);
    assert_int_equal(r->destroyed_by[0], bound_owned); /* by that release */
    assert_int_equal(total_owned_destroyed(r), r->owned_sets);
    assert_int_equal(destroy_unknown_thread, 0);
    destroy_slot = NULL;
    pthread_mutex_destroy(&r->done_mu);

    pthread_barrier_destroy(&r->start);
    for (int k = 0; k < RD_PLAIN; k++)
        cx_var_release(r->plain[k]);
    for (int k = 0; k < RD_OWNED; k++)
        cx_var_release(r->owned[k]);
    cx_var_release(r->clock);
    free(r);
}

/* ============================================================ short-lived */

enum { SL_BATCH = 8 };

typedef struct short_lived {
    cx_var *owned, *plain;
    unsigned *destroyed; /* per thread index, written by that thread */
    unsigned *saw_parent; /* per thread index */
    unsigned n;
} short_lived;

static short_lived *sl_state;

typedef struct sl_val {
    unsigned idx;
} sl_val;

static void sl_destroy(void *v)
{
    sl_val *s = v;
    sl_state->destroyed[s->idx]++;
    free(s);
}

typedef struct sl_arg {
    short_lived *s;
    unsigned idx;
} sl_arg;

static void *sl_worker(void *p)
{
    sl_arg *a = p;
    short_lived *s = a->s;
    void *v = NULL;
    /* cx_thread_create threads see the parent's plain value; plain
     * pthreads start empty. */
    if (cx_var_get(s->plain, &v) == 0 && v == &items[40])
        s->saw_parent[a->idx] = 1;
    else if (cx_var_get(s->plain, &v) == CX_ELOOKUP)
        s->saw_parent[a->idx] = 2;
    sl_val *val = malloc(sizeof(*val));
    if (val == NULL)
        return NULL;
    val->idx = a->idx;
    if (cx_var_set(s->owned, val, NULL) != 0) {
        free(val);
        return NULL;
    }
    (void)cx_var_set(s->plain, &items[41], NULL);
    return NULL;
}

static void short_lived_threads_release_their_context_at_exit(void **state)
{
    (void)state;
    short_lived *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    sl_state = s;
    s->n = cx_test_scaled(10000);
    s->destroyed = calloc(s->n, sizeof(unsigned));
    s->saw_parent = calloc(s->n, sizeof(unsigned));
    sl_arg *args = calloc(s->n, sizeof(*args));
    assert_non_null(s->destroyed);
    assert_non_null(s->saw_parent);
    assert_non_null(args);
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = sl_destroy};
    s->owned = mkvar("owned", &o);
    s->plain = mkvar("plain", NULL);
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(s->plain, &items[40], &t), 0);

    unsigned create_failures = 0, join_failures = 0;
    for (unsigned base = 0; base < s->n; base += SL_BATCH) {
        pthread_t th[SL_BATCH];
        bool started[SL_BATCH] = {false};
        for (unsigned j = 0; j < SL_BATCH && base + j < s->n; j++) {
            unsigned i = base + j;
            args[i] = (sl_arg){.s = s, .idx = i};
            int rc = (i % 2 == 0) ? pthread_create(&th[j], NULL, sl_worker, &args[i])
                                  : cx_thread_create(&th[j], NULL, sl_worker, &args[i]);
            if (rc == 0)
                started[j] = true;
            else
                create_failures++;
        }
        for (unsigned j = 0; j < SL_BATCH; j++)
            if (started[j] && pthread_join(th[j], NULL) != 0)
                join_failures++;
    }
    assert_int_equal(create_failures, 0);
    assert_int_equal(join_failures, 0);
    unsigned bad_destroy = 0, bad_parent = 0;
    for (unsigned i = 0; i < s->n; i++) {
        /* Destroyed exactly once, before pthread_join returned. */
        if (s->destroyed[i] != 1)
            bad_destroy++;
        if (s->saw_parent[i] != (i % 2 == 0 ? 2u : 1u))
            bad_parent++;
    }
    assert_int_equal(bad_destroy, 0);
    assert_int_equal(bad_parent, 0);
    /* The parent's value never changed. */
    void *v = NULL;
    assert_int_equal(cx_var_get(s->plain, &v), 0);
    assert_ptr_equal(v, &items[40]);
    assert_int_equal(cx_var_reset(s->plain, t), 0);
    cx_token_release(t);
    cx_var_release(s->owned);
    cx_var_release(s->plain);
    free(args);
    free(s->destroyed);
    free(s->saw_parent);
    free(s);
    sl_state = NULL;
}

#define T(f) cmocka_unit_test_teardown(f, base_context_is_empty)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(two_threads_racing_to_enter_one_context_exactly_one_wins),
        T(ten_threads_setting_one_variable_stay_isolated),
        T(new_thread_starts_with_an_empty_context),
        T(thread_create_inherits_a_copy_of_the_creator_context),
        T(thread_create_in_runs_in_the_given_context),
        T(thread_create_in_an_entered_context_returns_ebusy),
        T(thread_create_with_null_arguments_returns_einval),
        T(thread_create_in_keeps_the_context_alive),
        T(readers_see_consistent_maps_while_the_owner_sets),
        T(short_lived_threads_release_their_context_at_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
