/* test_strand.c - strands: cx_pool_submit_in jobs into one context run one
 * at a time, in submit order, each seeing the previous one's writes, and
 * wait (without a worker) while the context is entered elsewhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "cx_cmocka.h"
#include "cx_test.h"
#include "cx_wait.h"
#include "cxpool.h"

#define TAG(n) ((void *)(uintptr_t)(n))

static cx_pool *new_pool(unsigned threads)
{
    cx_pool *p = NULL;
    cx_pool_opts o = {.threads = threads, .queue_size = 0};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    return p;
}

/* ------------------------------------------------ order and exclusion */

struct order {
    cx_var *count;     /* bound in the strand's context: jobs run so far */
    unsigned inside;   /* jobs inside fn now (atomic) */
    unsigned max_inside;
    unsigned nlog;     /* written by the jobs, one at a time */
    unsigned *log;     /* producer << 16 | seq, in run order */
    unsigned mismatches; /* a job that did not see the previous one's count */
};

struct job {
    struct order *o;
    unsigned producer, seq;
};

static void *ordered_job(void *arg)
{
    struct job *j = arg;
    struct order *o = j->o;
    unsigned now = __atomic_add_fetch(&o->inside, 1, __ATOMIC_SEQ_CST);
    unsigned m = __atomic_load_n(&o->max_inside, __ATOMIC_SEQ_CST);
    while (now > m && !__atomic_compare_exchange_n(&o->max_inside, &m, now, false,
                                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    /* The previous job's write is visible: count equals jobs run so far. */
    uintptr_t seen = (uintptr_t)cx_var_get_or(o->count, TAG(0));
    if (seen != o->nlog)
        o->mismatches++;
    o->log[o->nlog++] = j->producer << 16 | j->seq;
    if (cx_var_set(o->count, TAG(seen + 1), NULL) != 0)
        o->mismatches++;
    __atomic_sub_fetch(&o->inside, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

struct producer {
    cx_pool *pool;
    cx_context *ctx;
    struct job *jobs;
    cx_future **futs;
    unsigned n;
    int bad_rc; /* first non-zero submit status */
};

static void *produce(void *arg)
{
    struct producer *pr = arg;
    for (unsigned i = 0; i < pr->n; i++) {
        int rc = cx_pool_submit_in(pr->pool, pr->ctx, ordered_job, &pr->jobs[i], &pr->futs[i]);
        if (rc != 0 && pr->bad_rc == 0)
            pr->bad_rc = rc;
    }
    return NULL;
}

static void jobs_into_one_context_run_one_at_a_time_in_order(void **state)
{
    (void)state;
    unsigned per = cx_test_scaled(200);
    if (per < 20)
        per = 20;
    cx_pool *p = new_pool(2);
    cx_context *ctx = mkctx();
    struct order o = {.count = mkvar("count", NULL)};
    o.log = calloc(2 * per, sizeof(*o.log));
    struct producer pr[2];
    for (unsigned k = 0; k < 2; k++) {
        pr[k] = (struct producer){.pool = p, .ctx = ctx, .n = per};
        pr[k].jobs = calloc(per, sizeof(struct job));
        pr[k].futs = calloc(per, sizeof(cx_future *));
        for (unsigned i = 0; i < per; i++)
            pr[k].jobs[i] = (struct job){.o = &o, .producer = k, .seq = i};
    }
    pthread_t t[2];
    for (unsigned k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, produce, &pr[k]), 0);
    for (unsigned k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    unsigned not_ok = 0;
    for (unsigned k = 0; k < 2; k++) {
        assert_int_equal(pr[k].bad_rc, 0);
        for (unsigned i = 0; i < per; i++) {
            if (cx_future_result(pr[k].futs[i], NULL) != 0) /* never CX_EBUSY */
                not_ok++;
            cx_future_release(pr[k].futs[i]);
        }
    }
    cx_pool_free(p);
    assert_int_equal(not_ok, 0);
    assert_int_equal(o.max_inside, 1);
    assert_int_equal(o.mismatches, 0);
    assert_int_equal(o.nlog, 2 * per);
    unsigned next[2] = {0, 0};
    for (unsigned i = 0; i < o.nlog; i++) {
        unsigned k = o.log[i] >> 16, seq = o.log[i] & 0xffffu;
        assert_true(k < 2);
        assert_int_equal(seq, next[k]); /* each producer's order kept */
        next[k]++;
    }
    void *v = NULL;
    assert_int_equal(cx_context_get(ctx, o.count, &v), 0);
    assert_ptr_equal(v, TAG(2 * per)); /* the writes stayed in ctx */
    for (unsigned k = 0; k < 2; k++) {
        free(pr[k].jobs);
        free(pr[k].futs);
    }
    free(o.log);
    cx_context_release(ctx);
    cx_var_release(o.count);
}

/* ----------------------------------------- entered elsewhere: parking */

struct seen {
    cx_var *var;
    void *value; /* what the job saw */
    unsigned ran;
};

static void *see_job(void *arg)
{
    struct seen *s = arg;
    s->value = cx_var_get_or(s->var, TAG(0));
    s->ran++;
    return TAG(0x5ee);
}

static void *plain_job(void *arg)
{
    (*(unsigned *)arg)++;
    return NULL;
}

/* A 1-worker pool: the job into a context this thread has entered waits
 * without holding the worker (a later plain job runs), and runs once the
 * context is left, seeing what was written in it meanwhile. */
static void entered_context_holds_its_jobs_back_but_not_the_worker(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1);
    cx_context *ctx = mkctx();
    struct seen s = {.var = mkvar("v", NULL)};
    unsigned plain = 0;
    cx_future *fs, *fp;
    assert_int_equal(cx_context_enter(ctx), 0);
    assert_int_equal(cx_pool_submit_in(p, ctx, see_job, &s, &fs), 0);
    assert_int_equal(cx_pool_submit_in(p, NULL, plain_job, &plain, &fp), 0);
    assert_int_equal(cx_future_result(fp, NULL), 0); /* the worker was free */
    cx_future_release(fp);
    struct timespec past = {0, 0};
    assert_int_equal(cx_future_wait(fs, &past), CX_ETIMEDOUT); /* held back */
    assert_int_equal(s.ran, 0);
    assert_int_equal(cx_var_set(s.var, TAG(0xabc), NULL), 0);
    assert_int_equal(cx_context_exit(ctx), 0);
    void *r = NULL;
    assert_int_equal(cx_future_result(fs, &r), 0);
    assert_ptr_equal(r, TAG(0x5ee));
    cx_future_release(fs);
    assert_int_equal(s.ran, 1);
    assert_ptr_equal(s.value, TAG(0xabc));
    assert_int_equal(plain, 1);
    cx_pool_free(p);
    cx_context_release(ctx);
    cx_var_release(s.var);
}

/* The same with a cx_context_run in another thread holding the context:
 * the job waits for the run to return and sees what the run wrote. */
struct holder {
    cx_context *ctx;
    cx_var *var;
    cx_event inside, release;
    int rc;
};

static void *hold_fn(void *arg)
{
    struct holder *h = arg;
    (void)cx_var_set(h->var, TAG(0x777), NULL);
    cx_event_post(&h->inside);
    (void)cx_event_wait(&h->release, 1);
    return NULL;
}

static void *hold_thread(void *arg)
{
    struct holder *h = arg;
    h->rc = cx_context_run(h->ctx, hold_fn, h, NULL);
    return NULL;
}

static void job_waits_for_a_run_in_its_context_to_return(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1);
    struct holder h = {.ctx = mkctx(), .var = mkvar("v", NULL)};
    cx_event_init(&h.inside);
    cx_event_init(&h.release);
    struct seen s = {.var = h.var};
    unsigned plain = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_thread, &h), 0);
    assert_true(cx_event_wait(&h.inside, 1));
    cx_future *fs, *fp;
    assert_int_equal(cx_pool_submit_in(p, h.ctx, see_job, &s, &fs), 0);
    assert_int_equal(cx_pool_submit_in(p, NULL, plain_job, &plain, &fp), 0);
    assert_int_equal(cx_future_result(fp, NULL), 0); /* the worker was free */
    cx_future_release(fp);
    struct timespec past = {0, 0};
    assert_int_equal(cx_future_wait(fs, &past), CX_ETIMEDOUT);
    cx_event_post(&h.release);
    pthread_join(t, NULL);
    assert_int_equal(h.rc, 0);
    assert_int_equal(cx_future_result(fs, NULL), 0);
    cx_future_release(fs);
    assert_int_equal(s.ran, 1);
    assert_ptr_equal(s.value, TAG(0x777));
    cx_pool_free(p);
    cx_event_destroy(&h.inside);
    cx_event_destroy(&h.release);
    cx_context_release(h.ctx);
    cx_var_release(h.var);
}

/* A parked job can be cancelled: it never runs, and the strand goes on. */
static void parked_job_can_be_cancelled_and_the_strand_goes_on(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1);
    cx_context *ctx = mkctx();
    struct seen a = {.var = mkvar("v", NULL)}, b = {.var = a.var};
    unsigned plain = 0;
    cx_future *fa, *fb, *fp;
    assert_int_equal(cx_context_enter(ctx), 0);
    assert_int_equal(cx_pool_submit_in(p, ctx, see_job, &a, &fa), 0);
    assert_int_equal(cx_pool_submit_in(p, ctx, see_job, &b, &fb), 0);
    assert_int_equal(cx_pool_submit_in(p, NULL, plain_job, &plain, &fp), 0);
    assert_int_equal(cx_future_result(fp, NULL), 0); /* a is parked */
    cx_future_release(fp);
    assert_int_equal(cx_future_cancel(fa), 0);
    assert_int_equal(cx_future_result(fa, NULL), CX_ECANCELED);
    assert_int_equal(cx_context_exit(ctx), 0);
    assert_int_equal(cx_future_result(fb, NULL), 0);
    assert_int_equal(a.ran, 0);
    assert_int_equal(b.ran, 1);
    cx_future_release(fa);
    cx_future_release(fb);
    cx_pool_free(p);
    cx_context_release(ctx);
    cx_var_release(a.var);
}

/* Draining waits for a parked job; the job runs once the context is left. */
struct shutter {
    cx_pool *pool;
    cx_event done;
    int rc;
};

static void *shut_down(void *arg)
{
    struct shutter *sh = arg;
    sh->rc = cx_pool_shutdown(sh->pool, false);
    cx_event_post(&sh->done);
    return NULL;
}

static void drain_waits_for_a_parked_job(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1);
    cx_context *ctx = mkctx();
    struct seen s = {.var = mkvar("v", NULL)};
    unsigned plain = 0;
    cx_future *fs, *fp;
    assert_int_equal(cx_context_enter(ctx), 0);
    assert_int_equal(cx_pool_submit_in(p, ctx, see_job, &s, &fs), 0);
    assert_int_equal(cx_pool_submit_in(p, NULL, plain_job, &plain, &fp), 0);
    assert_int_equal(cx_future_result(fp, NULL), 0);
    cx_future_release(fp);
    struct shutter sh = {.pool = p};
    cx_event_init(&sh.done);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shut_down, &sh), 0);
    /* The drain cannot end while the job is parked. */
    assert_false(cx_event_wait_ms(&sh.done, 1, 50));
    assert_int_equal(cx_context_exit(ctx), 0);
    pthread_join(t, NULL);
    assert_int_equal(sh.rc, 0);
    assert_int_equal(s.ran, 1);
    assert_int_equal(cx_future_result(fs, NULL), 0);
    cx_future_release(fs);
    cx_event_destroy(&sh.done);
    cx_pool_free(p);
    cx_context_release(ctx);
    cx_var_release(s.var);
}

/* shutdown(p, true) cancels the jobs waiting in a strand. */
struct gate {
    cx_event entered, open;
};

static void *gate_job(void *arg)
{
    struct gate *g = arg;
    cx_event_post(&g->entered);
    (void)cx_event_wait(&g->open, 1);
    return NULL;
}

struct canceller {
    cx_pool *pool;
    int rc;
};

static void *shut_down_cancelling(void *arg)
{
    struct canceller *c = arg;
    c->rc = cx_pool_shutdown(c->pool, true);
    return NULL;
}

static void shutdown_cancelling_cancels_waiting_strand_jobs(void **state)
{
    (void)state;
    cx_pool *p = new_pool(2);
    cx_context *ctx = mkctx();
    struct gate g;
    cx_event_init(&g.entered);
    cx_event_init(&g.open);
    struct seen s = {.var = mkvar("v", NULL)};
    cx_future *fg, *f[4];
    assert_int_equal(cx_pool_submit_in(p, ctx, gate_job, &g, &fg), 0);
    assert_true(cx_event_wait(&g.entered, 1));
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(cx_pool_submit_in(p, ctx, see_job, &s, &f[i]), 0);
    struct canceller c = {.pool = p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shut_down_cancelling, &c), 0);
    /* The shutdown is under way when the gate job ends; if it is not yet,
     * the jobs simply run: accept both, but never a lost or busy job. */
    cx_event_post(&g.open);
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0);
    assert_int_equal(cx_future_result(fg, NULL), 0);
    unsigned ran = 0, cancelled = 0;
    for (unsigned i = 0; i < 4; i++) {
        int rc = cx_future_result(f[i], NULL);
        assert_true(rc == 0 || rc == CX_ECANCELED);
        ran += rc == 0;
        cancelled += rc == CX_ECANCELED;
        cx_future_release(f[i]);
    }
    cx_future_release(fg);
    assert_int_equal(ran + cancelled, 4);
    assert_int_equal(s.ran, ran);
    cx_pool_free(p);
    cx_event_destroy(&g.entered);
    cx_event_destroy(&g.open);
    cx_context_release(ctx);
    cx_var_release(s.var);
}

/* Jobs of one strand from two pools still run one at a time. */
static void a_strand_spans_pools(void **state)
{
    (void)state;
    cx_pool *p1 = new_pool(1), *p2 = new_pool(1);
    cx_context *ctx = mkctx();
    unsigned n = cx_test_scaled(100);
    struct order o = {.count = mkvar("count", NULL)};
    o.log = calloc(n, sizeof(*o.log));
    struct job *jobs = calloc(n, sizeof(*jobs));
    cx_future **futs = calloc(n, sizeof(*futs));
    for (unsigned i = 0; i < n; i++) {
        jobs[i] = (struct job){.o = &o, .producer = i & 1, .seq = i};
        assert_int_equal(cx_pool_submit_in(i & 1 ? p2 : p1, ctx, ordered_job, &jobs[i], &futs[i]), 0);
    }
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(cx_future_result(futs[i], NULL), 0);
        cx_future_release(futs[i]);
    }
    cx_pool_free(p1);
    cx_pool_free(p2);
    assert_int_equal(o.max_inside, 1);
    assert_int_equal(o.mismatches, 0);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(o.log[i] & 0xffffu, i); /* submit order */
    free(o.log);
    free(jobs);
    free(futs);
    cx_context_release(ctx);
    cx_var_release(o.count);
}

/* No self-deadlock: a job of a 1-worker pool submits two jobs into one
 * context and waits for the second; the worker runs both inline, in
 * order. */
struct nest {
    cx_pool *pool;
    cx_context *ctx;
    struct order *o;
    struct job jobs[2];
    int rc[2];
    int wait_rc;
};

static void *submit_two_and_wait(void *arg)
{
    struct nest *n = arg;
    cx_future *f[2] = {NULL, NULL};
    for (unsigned i = 0; i < 2; i++)
        n->rc[i] = cx_pool_submit_in(n->pool, n->ctx, ordered_job, &n->jobs[i], &f[i]);
    n->wait_rc = f[1] != NULL ? cx_future_result(f[1], NULL) : -1;
    if (f[0] != NULL && cx_future_result(f[0], NULL) != 0)
        n->wait_rc = -2;
    cx_future_release(f[0]);
    cx_future_release(f[1]);
    return NULL;
}

static void waiting_on_own_strand_work_runs_it_inline(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1);
    struct order o = {.count = mkvar("count", NULL)};
    unsigned log[2];
    o.log = log;
    struct nest n = {.pool = p, .ctx = mkctx(), .o = &o};
    for (unsigned i = 0; i < 2; i++)
        n.jobs[i] = (struct job){.o = &o, .producer = 0, .seq = i};
    cx_future *f;
    assert_int_equal(cx_pool_submit(p, submit_two_and_wait, &n, &f), 0);
    assert_int_equal(cx_future_result(f, NULL), 0);
    cx_future_release(f);
    cx_pool_free(p);
    assert_int_equal(n.rc[0], 0);
    assert_int_equal(n.rc[1], 0);
    assert_int_equal(n.wait_rc, 0);
    assert_int_equal(o.nlog, 2);
    assert_int_equal(log[0] & 0xffffu, 0);
    assert_int_equal(log[1] & 0xffffu, 1);
    assert_int_equal(o.mismatches, 0);
    cx_context_release(n.ctx);
    cx_var_release(o.count);
}

int main(void)
{
    cx_watchdog(600);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(jobs_into_one_context_run_one_at_a_time_in_order,
                                  base_context_is_empty),
        cmocka_unit_test(entered_context_holds_its_jobs_back_but_not_the_worker),
        cmocka_unit_test(job_waits_for_a_run_in_its_context_to_return),
        cmocka_unit_test(parked_job_can_be_cancelled_and_the_strand_goes_on),
        cmocka_unit_test(drain_waits_for_a_parked_job),
        cmocka_unit_test(shutdown_cancelling_cancels_waiting_strand_jobs),
        cmocka_unit_test(a_strand_spans_pools),
        cmocka_unit_test(waiting_on_own_strand_work_runs_it_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
