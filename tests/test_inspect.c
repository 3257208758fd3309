/* test_inspect.c - pool introspection (SPEC 5.4): cx_pool_inspect tells
 * what each worker does (busy, since when, a copy of the context its job
 * runs in) and stops at fn's first non-zero return; cx_pool_stats_get
 * counts submitted, completed, cancelled, timed_out and failed_busy jobs
 * (the last three never overlap with completed) and shows queued,
 * running, threads. Inspection is safe at any time, from any thread,
 * while the pool carries thousands of jobs that set variables.
 *
 * Only the main thread asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "cx_test.h"
#include "cx_cmocka.h"
#include "cx_wait.h"
#include "cxpool.h"

#define TAG(n) ((void *)(uintptr_t)(n))

static cx_var *req;   /* the request id a job serves */
static cx_var *stage; /* set by the job itself while it runs */

static int setup(void **state)
{
    (void)state;
    if (cx_var_new(&req, "request", NULL) != 0 || cx_var_new(&stage, "stage", NULL) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cx_var_release(req);
    cx_var_release(stage);
    return 0;
}

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return ns_of(t);
}

/* ---------------------------------------------------------------- record */

#define MAXW 8
typedef struct snap {
    int calls;
    unsigned index[MAXW];
    bool busy[MAXW];
    int64_t started[MAXW];
    bool has_ctx[MAXW];
    void *req[MAXW], *stage[MAXW];
    int req_rc[MAXW];
    int stop_after; /* return non-zero after this many calls (0: never) */
} snap;

static int record(const cx_worker_info *w, void *arg)
{
    snap *s = arg;
    int i = s->calls++;
    if (i < MAXW) {
        s->index[i] = w->index;
        s->busy[i] = w->busy;
        s->started[i] = ns_of(w->started);
        s->has_ctx[i] = w->ctx != NULL;
        s->req_rc[i] = w->ctx != NULL ? cx_context_get(w->ctx, req, &s->req[i]) : CX_ELOOKUP;
        if (w->ctx == NULL || cx_context_get(w->ctx, stage, &s->stage[i]) != 0)
            s->stage[i] = NULL;
    }
    cx_context_release(w->ctx);
    return s->stop_after != 0 && s->calls >= s->stop_after ? 7 : 0;
}

/* ------------------------------------------------------------- arguments */

static void bad_arguments(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 1};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    snap s = {0};
    cx_pool_stats st;
    assert_int_equal(cx_pool_inspect(NULL, record, &s), CX_EINVAL);
    assert_int_equal(cx_pool_inspect(p, NULL, &s), CX_EINVAL);
    assert_int_equal(cx_pool_stats_get(NULL, &st), CX_EINVAL);
    assert_int_equal(cx_pool_stats_get(p, NULL), CX_EINVAL);
    assert_int_equal(s.calls, 0);
    cx_pool_free(p);
}

static void idle_pool(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 3};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    snap s = {0};
    assert_int_equal(cx_pool_inspect(p, record, &s), 0);
    assert_int_equal(s.calls, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(s.index[i], i);
        assert_false(s.busy[i]);
        assert_false(s.has_ctx[i]);
    }
    cx_pool_stats st;
    assert_int_equal(cx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, 0);
    assert_int_equal(st.completed, 0);
    assert_int_equal(st.cancelled, 0);
    assert_int_equal(st.timed_out, 0);
    assert_int_equal(st.failed_busy, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.threads, 3);
    cx_pool_free(p);
}

/* ---------------------------------------------------- busy workers */

typedef struct gate {
    cx_event started, go;
} gate;

static void *blocking_job(void *arg)
{
    gate *g = arg;
    /* The job's own write is part of the context it runs in. */
    (void)cx_var_set(stage, cx_var_get_or(req, TAG(0)), NULL);
    cx_event_post(&g->started);
    (void)cx_event_wait(&g->go, 1);
    return NULL;
}

static void submit_with_req(cx_pool *p, uintptr_t id, void *(*fn)(void *), void *arg,
                            cx_future **f)
{
    cx_token *t;
    assert_int_equal(cx_var_set(req, TAG(id), &t), 0);
    assert_int_equal(cx_pool_submit(p, fn, arg, f), 0);
    assert_int_equal(cx_var_reset(req, t), 0);
    cx_token_release(t);
}

static void busy_workers_show_their_request(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 3};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    gate g;
    cx_event_init(&g.started);
    cx_event_init(&g.go);
    int64_t t0 = now_ns();
    cx_future *f[3];
    for (uintptr_t i = 0; i < 3; i++)
        submit_with_req(p, 101 + i, blocking_job, &g, &f[i]);
    assert_true(cx_event_wait(&g.started, 3));
    snap s = {0};
    assert_int_equal(cx_pool_inspect(p, record, &s), 0);
    int64_t t1 = now_ns();
    assert_int_equal(s.calls, 3);
    unsigned seen = 0;
    for (int i = 0; i < 3; i++) {
        assert_true(s.busy[i]);
        assert_true(s.has_ctx[i]);
        assert_int_equal(s.req_rc[i], 0);
        uintptr_t id = (uintptr_t)s.req[i];
        assert_true(id >= 101 && id <= 103);
        seen |= 1u << (id - 101);
        assert_ptr_equal(s.stage[i], s.req[i]); /* the job's own set */
        /* Not before the submit, not after the inspection. */
        assert_true(s.started[i] >= t0 && s.started[i] <= t1);
    }
    assert_int_equal(seen, 7u);
    cx_pool_stats st;
    assert_int_equal(cx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, 3);
    assert_int_equal(st.running, 3);
    assert_int_equal(st.completed, 0);
    cx_event_post(&g.go);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cx_future_result(f[i], NULL), 0);
        cx_future_release(f[i]);
    }
    /* A completed future's job is counted and no longer shown. */
    assert_int_equal(cx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.completed, 3);
    assert_int_equal(st.running, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cx_pool_inspect(p, record, &s), 0);
    for (int i = 0; i < 3; i++)
        assert_false(s.busy[i]);
    cx_pool_free(p);
    cx_event_destroy(&g.started);
    cx_event_destroy(&g.go);
}

/* A job's start time is its own: taken when the worker started it, not
 * when somebody first looked (the job waits ~20 ms before the look). */
static void started_is_the_jobs_start(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 1};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    snap s = {0};
    gate g;
    cx_event_init(&g.started);
    cx_event_init(&g.go);
    int64_t t0 = now_ns();
    cx_future *f;
    submit_with_req(p, 1, blocking_job, &g, &f);
    assert_true(cx_event_wait(&g.started, 1));
    int64_t t1 = now_ns();
    nanosleep(&(struct timespec){0, 20000000}, NULL); /* duration, not ordering */
    assert_int_equal(cx_pool_inspect(p, record, &s), 0);
    assert_true(s.busy[0]);
    assert_true(s.started[0] >= t0 && s.started[0] <= t1);
    assert_true(now_ns() - s.started[0] >= 20000000);
    cx_event_post(&g.go);
    assert_int_equal(cx_future_result(f, NULL), 0);
    cx_future_release(f);
    cx_pool_free(p);
    cx_event_destroy(&g.started);
    cx_event_destroy(&g.go);
}

/* A worker may reuse its last precise clock reading for the next job,
 * but never for a job submitted after that reading: B, submitted while A
 * runs, shows a time of its own, not before its submit. Repeated: rounds
 * take microseconds, so a reuse within one coarse tick would show. */
static void started_not_before_submit(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 1};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    for (int round = 0; round < 20; round++) {
        gate a, b;
        cx_event_init(&a.started);
        cx_event_init(&a.go);
        cx_event_init(&b.started);
        cx_event_init(&b.go);
        cx_future *fa, *fb;
        submit_with_req(p, 1, blocking_job, &a, &fa);
        assert_true(cx_event_wait(&a.started, 1));
        int64_t t0 = now_ns();
        submit_with_req(p, 2, blocking_job, &b, &fb);
        cx_event_post(&a.go);
        assert_true(cx_event_wait(&b.started, 1));
        int64_t t1 = now_ns();
        snap s = {0};
        assert_int_equal(cx_pool_inspect(p, record, &s), 0);
        assert_true(s.busy[0]);
        assert_ptr_equal(s.req[0], TAG(2));
        assert_true(s.started[0] >= t0 && s.started[0] <= t1);
        cx_event_post(&b.go);
        assert_int_equal(cx_future_result(fa, NULL), 0);
        assert_int_equal(cx_future_result(fb, NULL), 0);
        cx_future_release(fa);
        cx_future_release(fb);
        cx_event_destroy(&a.started);
        cx_event_destroy(&a.go);
        cx_event_destroy(&b.started);
        cx_event_destroy(&b.go);
    }
    cx_pool_free(p);
}

/* A reading is reused for at most one tick of the coarse clock: B, queued
 * before A started (so it may take A's reading), starts after A ran for
 * several ticks and shows a time within a tick of its start, not A's. */
static void started_not_reused_across_ticks(void **state)
{
    (void)state;
    struct timespec res = {0, 10000000};
#ifdef CLOCK_MONOTONIC_COARSE
    (void)clock_getres(CLOCK_MONOTONIC_COARSE, &res);
#endif
    int64_t tick = ns_of(res);
    cx_pool *p;
    cx_pool_opts o = {.threads = 1};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    gate x, a, b;
    gate *gs[] = {&x, &a, &b};
    for (int i = 0; i < 3; i++) {
        cx_event_init(&gs[i]->started);
        cx_event_init(&gs[i]->go);
    }
    cx_future *f[3];
    submit_with_req(p, 1, blocking_job, &x, &f[0]);
    assert_true(cx_event_wait(&x.started, 1));
    submit_with_req(p, 2, blocking_job, &a, &f[1]);
    submit_with_req(p, 3, blocking_job, &b, &f[2]);
    cx_event_post(&x.go);
    assert_true(cx_event_wait(&a.started, 1));
    /* A runs for three ticks and more (a duration, not an ordering). */
    int64_t d = 3 * tick + 5000000;
    nanosleep(&(struct timespec){(time_t)(d / 1000000000), (long)(d % 1000000000)}, NULL);
    int64_t t_release = now_ns();
    cx_event_post(&a.go);
    assert_true(cx_event_wait(&b.started, 1));
    snap s = {0};
    assert_int_equal(cx_pool_inspect(p, record, &s), 0);
    assert_true(s.busy[0]);
    assert_ptr_equal(s.req[0], TAG(3));
    assert_true(s.started[0] >= t_release - tick);
    assert_true(s.started[0] <= now_ns());
    cx_event_post(&b.go);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cx_future_result(f[i], NULL), 0);
        cx_future_release(f[i]);
        cx_event_destroy(&gs[i]->started);
        cx_event_destroy(&gs[i]->go);
    }
    cx_pool_free(p);
}

static void inspect_stops_at_first_nonzero(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 4};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    snap s = {.stop_after = 2};
    assert_int_equal(cx_pool_inspect(p, record, &s), 7);
    assert_int_equal(s.calls, 2);
    cx_pool_free(p);
}

/* --------------------------------------------------------------- stats */

static void *noop(void *p) { return p; }

static void stats_count_each_outcome(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 1};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    gate g;
    cx_event_init(&g.started);
    cx_event_init(&g.go);
    cx_future *blocker, *f[4];
    submit_with_req(p, 1, blocking_job, &g, &blocker);
    assert_true(cx_event_wait(&g.started, 1));
    for (int i = 0; i < 4; i++)
        assert_int_equal(cx_pool_submit(p, noop, NULL, &f[i]), 0);
    /* One whose scope's deadline has passed: it will not run. */
    cx_scope *sc;
    struct timespec past = cx_deadline_in(-1000);
    assert_int_equal(cx_scope_new(&sc, &past), 0);
    cx_future *late = NULL;
    CX_WITH_SCOPE(sc) { assert_int_equal(cx_pool_try_submit(p, noop, NULL, &late), 0); }
    cx_scope_release(sc);
    assert_non_null(late);
    assert_int_equal(cx_future_cancel(f[1]), 0);
    assert_int_equal(cx_future_cancel(f[3]), 0);
    cx_pool_stats st;
    assert_int_equal(cx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, 6);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.queued, 5); /* cancelled ones keep their place */
    cx_event_post(&g.go);
    assert_int_equal(cx_future_result(blocker, NULL), 0);
    assert_int_equal(cx_future_result(f[0], NULL), 0);
    assert_int_equal(cx_future_result(f[2], NULL), 0);
    assert_int_equal(cx_future_result(late, NULL), CX_ETIMEDOUT);
    /* The drain: every job is off the queue once shutdown returns. */
    assert_int_equal(cx_pool_shutdown(p, false), 0);
    assert_int_equal(cx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, 6);
    assert_int_equal(st.completed, 3);
    assert_int_equal(st.cancelled, 2);
    assert_int_equal(st.timed_out, 1);
    assert_int_equal(st.failed_busy, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.threads, 1);
    cx_future_release(blocker);
    cx_future_release(late);
    for (int i = 0; i < 4; i++)
        cx_future_release(f[i]);
    cx_pool_free(p);
    cx_event_destroy(&g.started);
    cx_event_destroy(&g.go);
}

/* A strand job whose context is entered elsewhere waits, then runs: it
 * never fails busy, and shows as running only while it runs. */
static void strands_never_fail_busy(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 2};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    cx_context *c = mkctx();
    assert_int_equal(cx_context_enter(c), 0);
    cx_future *f;
    assert_int_equal(cx_pool_submit_in(p, c, noop, NULL, &f), 0);
    assert_int_equal(cx_future_wait(f, &(struct timespec){0, 0}), CX_ETIMEDOUT);
    assert_int_equal(cx_context_exit(c), 0);
    assert_int_equal(cx_future_result(f, NULL), 0);
    cx_pool_stats st;
    assert_int_equal(cx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, 1);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.failed_busy, 0);
    cx_future_release(f);
    cx_pool_free(p);
    cx_context_release(c);
}

/* ------------------------------------- inspection under a heavy load */

struct load {
    cx_pool *p;
    unsigned n;
    atomic_int done;
    atomic_uint ran, bad_job;
    cx_event seen; /* posted by an inspector that found a busy worker */
    atomic_int held_ok; /* the job that waited for it was released by it */
};

static void *load_job(void *arg)
{
    struct load *l = arg;
    uintptr_t id = (uintptr_t)cx_var_get_or(req, TAG(0));
    if (id == 0 || id > l->n)
        atomic_fetch_add(&l->bad_job, 1);
    /* Writes while an inspector may copy the context, for long enough
     * (some microseconds) that inspectors find jobs running. */
    for (uintptr_t k = 0; k < 64; k++)
        (void)cx_var_set(stage, TAG(id * 8 + (k & 7)), NULL);
    /* One job stays running until an inspector has seen a busy worker, so
     * that the check below does not depend on timing. */
    if (id == l->n / 2 && cx_event_wait(&l->seen, 1))
        atomic_store(&l->held_ok, 1);
    atomic_fetch_add(&l->ran, 1);
    return NULL;
}

static void *submitter(void *arg)
{
    struct load *l = arg;
    for (uintptr_t i = 1; i <= l->n; i++) {
        cx_token *t;
        if (cx_var_set(req, TAG(i), &t) != 0)
            break;
        (void)cx_pool_submit(l->p, load_job, l, NULL);
        (void)cx_var_reset(req, t);
        cx_token_release(t);
    }
    atomic_store(&l->done, 1);
    return NULL;
}

struct check {
    struct load *l;
    unsigned busy_seen, bad;
};

static int check_worker(const cx_worker_info *w, void *arg)
{
    struct check *c = arg;
    if (w->busy != (w->ctx != NULL))
        c->bad++;
    if (w->ctx != NULL) {
        c->busy_seen++;
        cx_event_post(&c->l->seen);
        void *id, *st;
        if (cx_context_get(w->ctx, req, &id) != 0 || (uintptr_t)id == 0 ||
            (uintptr_t)id > c->l->n)
            c->bad++;
        /* stage, if the job has set it yet, belongs to that request */
        if (cx_context_get(w->ctx, stage, &st) == 0 && (uintptr_t)st / 8 != (uintptr_t)id)
            c->bad++;
        cx_context_release(w->ctx);
    }
    return 0;
}

static void *inspector(void *arg)
{
    struct check *c = arg;
    while (!atomic_load(&c->l->done) || atomic_load(&c->l->ran) < c->l->n) {
        if (cx_pool_inspect(c->l->p, check_worker, c) != 0)
            c->bad++;
        cx_pool_stats st;
        if (cx_pool_stats_get(c->l->p, &st) != 0 || st.completed > st.submitted)
            c->bad++;
    }
    return NULL;
}

static void inspection_under_load(void **state)
{
    (void)state;
    unsigned n = cx_test_scaled(10000);
    if (n < 300)
        n = 300;
    cx_pool *p;
    cx_pool_opts o = {.threads = 3, .queue_size = 64};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    struct load l = {.p = p, .n = n};
    cx_event_init(&l.seen);
    struct check c1 = {.l = &l}, c2 = {.l = &l};
    pthread_t s, i1, i2;
    assert_int_equal(pthread_create(&i1, NULL, inspector, &c1), 0);
    assert_int_equal(pthread_create(&i2, NULL, inspector, &c2), 0);
    assert_int_equal(pthread_create(&s, NULL, submitter, &l), 0);
    assert_int_equal(pthread_join(s, NULL), 0);
    assert_int_equal(pthread_join(i1, NULL), 0);
    assert_int_equal(pthread_join(i2, NULL), 0);
    assert_int_equal(cx_pool_shutdown(p, false), 0);
    assert_int_equal(atomic_load(&l.ran), n);
    assert_int_equal(atomic_load(&l.bad_job), 0);
    assert_int_equal(c1.bad, 0);
    assert_int_equal(c2.bad, 0);
    assert_true(c1.busy_seen + c2.busy_seen > 0); /* it did read running jobs */
    assert_int_equal(atomic_load(&l.held_ok), 1);
    cx_event_destroy(&l.seen);
    cx_pool_stats st;
    assert_int_equal(cx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, n);
    assert_int_equal(st.completed, n);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    print_message("inspection under load: %u jobs, busy workers seen %u times\n", n,
                  c1.busy_seen + c2.busy_seen);
    cx_pool_free(p);
}

int main(void)
{
    cx_watchdog(600);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(bad_arguments, base_context_is_empty),
        cmocka_unit_test_teardown(idle_pool, base_context_is_empty),
        cmocka_unit_test_teardown(busy_workers_show_their_request, base_context_is_empty),
        cmocka_unit_test_teardown(started_is_the_jobs_start, base_context_is_empty),
        cmocka_unit_test_teardown(started_not_before_submit, base_context_is_empty),
        cmocka_unit_test_teardown(started_not_reused_across_ticks, base_context_is_empty),
        cmocka_unit_test_teardown(inspect_stops_at_first_nonzero, base_context_is_empty),
        cmocka_unit_test_teardown(stats_count_each_outcome, base_context_is_empty),
        cmocka_unit_test_teardown(strands_never_fail_busy, base_context_is_empty),
        cmocka_unit_test_teardown(inspection_under_load, base_context_is_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
