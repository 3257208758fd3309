/* test_exits.c - every way out of a context (SPEC 5.1), as users meet them:
 *
 *   - a thread that ends by pthread_exit or pthread_cancel inside a
 *     context: cx_thread_create's copy is released in that thread (its
 *     owned values destroyed exactly once); the context of
 *     cx_thread_create_in, or of a cx_context_run in a plain pthread, is
 *     left (it can be entered again and holds what fn wrote) and the
 *     library's reference to it dropped;
 *   - fn releasing the caller's last reference to the context it runs in
 *     (cx_context_run holds its own);
 *   - two threads cancelling one queued job while its context's destroy
 *     callback is slow: neither returns 0 before the future is complete;
 *   - destroy callbacks that set new owned values while a thread exits,
 *     eight rounds (more than PTHREAD_DESTRUCTOR_ITERATIONS);
 *   - CX_WITH owning its value when the set fails, and CX_WITH_RC.
 *
 * Values are malloc'd boxes whose destroy callback frees them and counts:
 * memcheck sees a value that is never destroyed as a leak, ASan a value
 * destroyed twice, and the counters say so natively.
 *
 * Only the main thread asserts: other threads record what they saw, the
 * main thread checks after a join or a future wait. Every wait is bounded
 * (cx_wait.h) and the process has a watchdog, so a regression fails
 * instead of hanging.
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
#include "cxvars.h"

#define TAG(n) ((void *)(uintptr_t)(n))

/* ================================================================ allocator
 * Installed before any other cx_* call (main); counts live blocks and
 * fails every allocation while `alloc_failing` is set. */

static atomic_long alloc_live;
static atomic_bool alloc_failing;

static void *counting_malloc(size_t n)
{
    if (atomic_load(&alloc_failing))
        return NULL;
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add(&alloc_live, 1);
    return p;
}

static void counting_free(void *p)
{
    if (p != NULL)
        atomic_fetch_sub(&alloc_live, 1);
    free(p);
}

/* ================================================================ values
 * A box is an owned value: destroy frees it, counts, and remembers the
 * destroying thread. */

typedef struct box {
    int n;
} box;

static atomic_int destroyed;
static pthread_t destroyer;

static void *new_box(int n)
{
    box *b = malloc(sizeof(*b));
    assert_non_null(b);
    b->n = n;
    return b;
}

static void box_destroy(void *v)
{
    free(v);
    destroyer = pthread_self();
    atomic_fetch_add(&destroyed, 1);
}

static const cx_var_opts owned_opts = {.destroy = box_destroy};

/* ====================================================== threads that exit */

enum exit_how { EXIT_PTHREAD_EXIT, EXIT_CANCEL };

typedef struct exiter {
    enum exit_how how;
    cx_var *owned; /* set to a box (n = 11) */
    cx_var *plain; /* set to TAG(12) */
    int set_rc;
    int destroyed_before_exit;
    pthread_t self;
    cx_event ready; /* posted once the values are set */
    cx_event cancelled; /* posted by main after pthread_cancel */
} exiter;

static void exiter_init(exiter *e, enum exit_how how)
{
    memset(e, 0, sizeof(*e));
    e->how = how;
    e->owned = mkvar("owned", &owned_opts);
    e->plain = mkvar("plain", NULL);
    e->set_rc = 99;
    cx_event_init(&e->ready);
    cx_event_init(&e->cancelled);
    atomic_store(&destroyed, 0);
}

static void exiter_fini(exiter *e)
{
    cx_event_destroy(&e->ready);
    cx_event_destroy(&e->cancelled);
    cx_var_release(e->owned);
    cx_var_release(e->plain);
}

/* Sets both variables in the current context, then leaves the thread the
 * chosen way without returning. A cancelled thread waits (cancellation
 * disabled) until main has called pthread_cancel, then reaches
 * pthread_testcancel, a cancellation point, inside the context. */
static void *set_then_leave(void *p)
{
    exiter *e = p;
    e->self = pthread_self();
    int rc = cx_var_set(e->owned, new_box(11), NULL);
    if (rc == 0)
        rc = cx_var_set(e->plain, TAG(12), NULL);
    e->set_rc = rc;
    e->destroyed_before_exit = atomic_load(&destroyed);
    cx_event_post(&e->ready);
    if (e->how == EXIT_PTHREAD_EXIT)
        pthread_exit(TAG(77));
    (void)cx_event_wait(&e->cancelled, 1);
    for (;;)
        pthread_testcancel();
}

static pthread_t main_thread;

/* Main's side of a thread leaving: cancel it if that is the way, join it,
 * and check how it ended. */
static void reap(pthread_t t, exiter *e)
{
    if (e->how == EXIT_CANCEL) {
        assert_true(cx_event_wait(&e->ready, 1));
        assert_int_equal(pthread_cancel(t), 0);
        cx_event_post(&e->cancelled);
    }
    void *ret = NULL;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_ptr_equal(ret, e->how == EXIT_CANCEL ? PTHREAD_CANCELED : TAG(77));
    assert_int_equal(e->set_rc, 0);
    assert_int_equal(e->destroyed_before_exit, 0);
}

/* cx_thread_create: fn's writes live in the thread's copy; the copy goes
 * with the thread, whatever way it ends. */
static void thread_create_copy(enum exit_how how)
{
    exiter e;
    exiter_init(&e, how);
    pthread_t t;
    assert_int_equal(cx_thread_create(&t, NULL, set_then_leave, &e), 0);
    reap(t, &e);
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_true(pthread_equal(destroyer, e.self));
    assert_false(pthread_equal(destroyer, main_thread));
    /* Nothing leaked into the creator's context. */
    assert_false(cx_var_get_or(e.plain, NULL) == TAG(12));
    exiter_fini(&e);
}

static void thread_create_fn_calling_pthread_exit_destroys_its_copy_in_that_thread(void **state)
{
    (void)state;
    thread_create_copy(EXIT_PTHREAD_EXIT);
}

static void thread_create_fn_cancelled_destroys_its_copy_in_that_thread(void **state)
{
    (void)state;
    thread_create_copy(EXIT_CANCEL);
}

/* After the thread is gone, ctx can be run again and holds fn's writes. */
typedef struct seen {
    exiter *e;
    int owned_rc, plain_rc;
    void *owned_v, *plain_v;
} seen;

static void *read_back(void *p)
{
    seen *s = p;
    s->owned_rc = cx_var_get(s->e->owned, &s->owned_v);
    s->plain_rc = cx_var_get(s->e->plain, &s->plain_v);
    return TAG(5);
}

static void check_left_and_released(cx_context *ctx, exiter *e)
{
    seen s = {.e = e, .owned_rc = 99, .plain_rc = 99};
    void *r = NULL;
    /* Left: entering again works (CX_EBUSY if the exit left it entered). */
    assert_int_equal(cx_context_run(ctx, read_back, &s, &r), 0);
    assert_ptr_equal(r, TAG(5));
    assert_int_equal(s.plain_rc, 0);
    assert_ptr_equal(s.plain_v, TAG(12));
    assert_int_equal(s.owned_rc, 0);
    assert_non_null(s.owned_v);
    assert_int_equal(((box *)s.owned_v)->n, 11);
    assert_int_equal(atomic_load(&destroyed), 0);
    /* Released: ours was the last reference, the box goes now, here. */
    cx_context_release(ctx);
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_true(pthread_equal(destroyer, main_thread));
}

/* cx_thread_create_in: the thread runs in ctx itself. */
static void thread_create_in_exit(enum exit_how how)
{
    exiter e;
    exiter_init(&e, how);
    cx_context *ctx = mkctx();
    pthread_t t;
    assert_int_equal(cx_thread_create_in(&t, NULL, ctx, set_then_leave, &e), 0);
    reap(t, &e);
    check_left_and_released(ctx, &e);
    exiter_fini(&e);
}

static void thread_create_in_fn_calling_pthread_exit_leaves_the_context(void **state)
{
    (void)state;
    thread_create_in_exit(EXIT_PTHREAD_EXIT);
}

static void thread_create_in_fn_cancelled_leaves_the_context(void **state)
{
    (void)state;
    thread_create_in_exit(EXIT_CANCEL);
}

/* A plain pthread that runs ctx with cx_context_run and ends inside fn. */
typedef struct runner {
    exiter *e;
    cx_context *ctx;
    int run_rc; /* stays 99: run never returns */
} runner;

static void *run_then_leave(void *p)
{
    runner *r = p;
    r->run_rc = cx_context_run(r->ctx, set_then_leave, r->e, NULL);
    return NULL;
}

static void plain_thread_run_exit(enum exit_how how)
{
    exiter e;
    exiter_init(&e, how);
    runner r = {.e = &e, .ctx = mkctx(), .run_rc = 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_then_leave, &r), 0);
    reap(t, &e);
    assert_int_equal(r.run_rc, 99);
    check_left_and_released(r.ctx, &e);
    exiter_fini(&e);
}

static void pthread_exit_inside_run_leaves_the_context(void **state)
{
    (void)state;
    plain_thread_run_exit(EXIT_PTHREAD_EXIT);
}

static void cancel_inside_run_leaves_the_context(void **state)
{
    (void)state;
    plain_thread_run_exit(EXIT_CANCEL);
}

/* ================================================ releasing a running context
 * fn drops the caller's only reference to the context it runs in, then
 * keeps using it. run holds its own reference: the context, and the value
 * set in it, go when run returns, not before. */

typedef struct self_release {
    cx_context *ctx;
    cx_var *owned, *plain;
    int set_owned_rc, set_plain_rc, get_rc;
    int destroyed_after_release, destroyed_at_end;
    void *got;
} self_release;

static void *release_own_context(void *p)
{
    self_release *s = p;
    s->set_owned_rc = cx_var_set(s->owned, new_box(21), NULL);
    cx_context_release(s->ctx); /* the caller's last reference */
    s->destroyed_after_release = atomic_load(&destroyed);
    if (s->destroyed_after_release != 0)
        return NULL; /* the context is gone already: do not touch it */
    s->set_plain_rc = cx_var_set(s->plain, TAG(22), NULL);
    s->get_rc = cx_var_get(s->plain, &s->got);
    s->destroyed_at_end = atomic_load(&destroyed);
    return TAG(23);
}

static void fn_releasing_the_last_reference_of_its_running_context_is_safe(void **state)
{
    (void)state;
    atomic_store(&destroyed, 0);
    self_release s = {.ctx = mkctx(), .set_owned_rc = 99, .set_plain_rc = 99, .get_rc = 99};
    s.owned = mkvar("owned", &owned_opts);
    s.plain = mkvar("plain", NULL);
    void *r = NULL;
    assert_int_equal(cx_context_run(s.ctx, release_own_context, &s, &r), 0);
    assert_int_equal(s.set_owned_rc, 0);
    assert_int_equal(s.destroyed_after_release, 0);
    assert_ptr_equal(r, TAG(23));
    assert_int_equal(s.set_plain_rc, 0);
    assert_int_equal(s.get_rc, 0);
    assert_ptr_equal(s.got, TAG(22));
    assert_int_equal(s.destroyed_at_end, 0);
    /* run returned: it dropped the last reference, exactly once. */
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_true(pthread_equal(destroyer, main_thread));
    cx_var_release(s.owned);
    cx_var_release(s.plain);
}

/* ============================================== concurrent cancel, slow destroy
 * A 1-worker pool is kept busy by a blocker job, so the target job stays
 * queued. The target's context alone holds a value whose destroy callback
 * blocks until main lets it go. Thread 1 cancels: it wins and blocks in
 * that destroy (cancel releases the job's context). Thread 2 cancels
 * meanwhile: it must not return 0 while the future is incomplete (its
 * context is still being released); once it returns 0 the future must be
 * complete at that moment (a wait with a past deadline returns 0). */

typedef struct slow {
    cx_event in_destroy, let_destroy_go;
    cx_event blocker_running, blocker_go;
    cx_event t2_calling, t2_done;
    cx_future *target;
    cx_var *slow_var;
    int t1_rc, t2_rc, t2_wait_rc;
    int slow_destroyed;
    pthread_t slow_destroyer;
    int blocker_timed_out, destroy_timed_out;
} slow;

static slow *slow_state; /* for the destroy callback */

static void slow_destroy(void *v)
{
    slow *s = slow_state;
    free(v);
    s->slow_destroyer = pthread_self();
    cx_event_post(&s->in_destroy);
    if (!cx_event_wait(&s->let_destroy_go, 1))
        s->destroy_timed_out = 1;
    s->slow_destroyed++;
}

static void *blocker_job(void *p)
{
    slow *s = p;
    cx_event_post(&s->blocker_running);
    if (!cx_event_wait(&s->blocker_go, 1))
        s->blocker_timed_out = 1;
    return NULL;
}

static void *target_job(void *p)
{
    (void)p;
    return TAG(1); /* must never run */
}

typedef struct submit_arg {
    cx_pool *pool;
    slow *s;
    int set_rc, submit_rc;
} submit_arg;

/* Inside a private context: set the slow value and submit the target, whose
 * snapshot then shares the map holding it. */
static void *set_and_submit_target(void *p)
{
    submit_arg *a = p;
    a->set_rc = cx_var_set(a->s->slow_var, new_box(31), NULL);
    a->submit_rc = cx_pool_submit(a->pool, target_job, NULL, &a->s->target);
    return NULL;
}

static void *canceller_1(void *p)
{
    slow *s = p;
    s->t1_rc = cx_future_cancel(s->target);
    return NULL;
}

static void *canceller_2(void *p)
{
    slow *s = p;
    cx_event_post(&s->t2_calling);
    s->t2_rc = cx_future_cancel(s->target);
    /* At the moment cancel returned: complete or not? */
    const struct timespec past = {0, 0};
    s->t2_wait_rc = cx_future_wait(s->target, &past);
    cx_event_post(&s->t2_done);
    return NULL;
}

static void concurrent_cancels_return_0_only_once_the_future_is_complete(void **state)
{
    (void)state;
    slow s;
    memset(&s, 0, sizeof(s));
    s.t1_rc = s.t2_rc = s.t2_wait_rc = 99;
    cx_event_init(&s.in_destroy);
    cx_event_init(&s.let_destroy_go);
    cx_event_init(&s.blocker_running);
    cx_event_init(&s.blocker_go);
    cx_event_init(&s.t2_calling);
    cx_event_init(&s.t2_done);
    slow_state = &s;
    cx_var_opts so = {.destroy = slow_destroy};
    s.slow_var = mkvar("slow", &so);

    cx_pool *pool = NULL;
    cx_pool_opts po = {.threads = 1, .queue_size = 4};
    assert_int_equal(cx_pool_new(&pool, &po), 0);
    cx_future *blocker = NULL;
    assert_int_equal(cx_pool_submit(pool, blocker_job, &s, &blocker), 0);
    assert_true(cx_event_wait(&s.blocker_running, 1));

    cx_context *ctx = mkctx();
    submit_arg a = {.pool = pool, .s = &s, .set_rc = 99, .submit_rc = 99};
    assert_int_equal(cx_context_run(ctx, set_and_submit_target, &a, NULL), 0);
    assert_int_equal(a.set_rc, 0);
    assert_int_equal(a.submit_rc, 0);
    cx_context_release(ctx); /* the target's snapshot alone holds the value */
    assert_int_equal(s.slow_destroyed, 0);

    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, canceller_1, &s), 0);
    assert_true(cx_event_wait(&s.in_destroy, 1));
    assert_int_equal(pthread_create(&t2, NULL, canceller_2, &s), 0);
    assert_true(cx_event_wait(&s.t2_calling, 1));
    /* Give thread 2 time to get through cancel if it (wrongly) does not
     * wait; when cancel waits, this times out, as it should. */
    (void)cx_event_wait_ms(&s.t2_done, 1, 500);
    cx_event_post(&s.let_destroy_go);
    assert_int_equal(pthread_join(t1, NULL), 0);
    assert_int_equal(pthread_join(t2, NULL), 0);

    assert_int_equal(s.destroy_timed_out, 0);
    assert_int_equal(s.slow_destroyed, 1);
    assert_true(pthread_equal(s.slow_destroyer, t1));
    assert_int_equal(s.t1_rc, 0);
    assert_int_equal(s.t2_rc, 0);
    /* The point: thread 2's 0 came only once the future was complete. */
    assert_int_equal(s.t2_wait_rc, 0);
    assert_int_equal(cx_future_result(s.target, NULL), CX_ECANCELED);

    cx_event_post(&s.blocker_go);
    assert_int_equal(cx_future_result(blocker, NULL), 0);
    assert_int_equal(s.blocker_timed_out, 0);
    cx_future_release(blocker);
    cx_future_release(s.target);
    cx_pool_free(pool);
    cx_var_release(s.slow_var);
    slow_state = NULL;
    cx_event_destroy(&s.in_destroy);
    cx_event_destroy(&s.let_destroy_go);
    cx_event_destroy(&s.blocker_running);
    cx_event_destroy(&s.blocker_go);
    cx_event_destroy(&s.t2_calling);
    cx_event_destroy(&s.t2_done);
}

/* ================================================ destroy chains at thread exit
 * Each destroy sets an owned value of the next variable in the current
 * context, for CHAIN rounds: the thread's exit must go on releasing until
 * nothing is left (POSIX repeats key destructors only
 * PTHREAD_DESTRUCTOR_ITERATIONS = 4 times). */

enum { CHAIN = 8 };
static cx_var *chain_vars[CHAIN];
static atomic_int chain_destroyed, chain_set_errors;

static void chain_destroy(void *v)
{
    int n = ((box *)v)->n;
    free(v);
    atomic_fetch_add(&chain_destroyed, 1);
    if (n < CHAIN) {
        void *next = new_box(n + 1);
        if (cx_var_set(chain_vars[n], next, NULL) != 0) {
            free(next); /* a failed set leaves it ours */
            atomic_fetch_add(&chain_set_errors, 1);
        }
    }
}

static void chain_init(void)
{
    cx_var_opts o = {.destroy = chain_destroy};
    for (int i = 0; i < CHAIN; i++)
        chain_vars[i] = mkvar("chain", &o);
    atomic_store(&chain_destroyed, 0);
    atomic_store(&chain_set_errors, 0);
}

static void chain_fini(void)
{
    for (int i = 0; i < CHAIN; i++)
        cx_var_release(chain_vars[i]);
}

static void *chain_start(void *p)
{
    int *rc = p;
    *rc = cx_var_set(chain_vars[0], new_box(1), NULL);
    return NULL;
}

static void destroy_chain_in_a_threads_base_context_runs_every_round_at_exit(void **state)
{
    (void)state;
    chain_init();
    int rc = 99;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, chain_start, &rc), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(atomic_load(&chain_set_errors), 0);
    assert_int_equal(atomic_load(&chain_destroyed), CHAIN);
    chain_fini();
}

static void destroy_chain_in_a_thread_create_copy_runs_every_round_at_exit(void **state)
{
    (void)state;
    chain_init();
    int rc = 99;
    pthread_t t;
    assert_int_equal(cx_thread_create(&t, NULL, chain_start, &rc), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(atomic_load(&chain_set_errors), 0);
    assert_int_equal(atomic_load(&chain_destroyed), CHAIN);
    chain_fini();
}

/* ==================================================== CX_WITH owns its value */

static void ensure_thread_state(cx_var *v)
{
    /* A set and reset with working memory: this thread's state and base
     * context exist before the allocator is made to fail. */
    cx_token *tok = NULL;
    assert_int_equal(cx_var_set(v, new_box(0), &tok), 0);
    assert_int_equal(cx_var_reset(v, tok), 0);
    cx_token_release(tok);
}

static void with_whose_set_fails_destroys_the_value_and_skips_the_block(void **state)
{
    (void)state;
    cx_var *v = mkvar("with", &owned_opts);
    ensure_thread_state(v);
    atomic_store(&destroyed, 0);
    long live = atomic_load(&alloc_live);
    int ran = 0;
    atomic_store(&alloc_failing, true);
    CX_WITH(v, new_box(41)) {
        ran = 1;
    }
    atomic_store(&alloc_failing, false);
    assert_int_equal(ran, 0);
    assert_int_equal(atomic_load(&destroyed), 1); /* not leaked */
    assert_int_equal(atomic_load(&alloc_live), live);
    assert_null(cx_var_get_or(v, NULL));
    cx_var_release(v);
}

static void with_rc_stores_zero_and_runs_the_block(void **state)
{
    (void)state;
    cx_var *v = mkvar("with", &owned_opts);
    atomic_store(&destroyed, 0);
    int rc = 99, ran = 0, get_rc = 99;
    void *got = NULL;
    CX_WITH_RC(v, new_box(42), rc) {
        ran = 1;
        get_rc = cx_var_get(v, &got);
        assert_int_equal(atomic_load(&destroyed), 0);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(ran, 1);
    assert_int_equal(get_rc, 0);
    assert_non_null(got);
    /* The block ended: the reset dropped the library's unit. */
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_int_equal(cx_var_get(v, &got), CX_ELOOKUP);
    cx_var_release(v);
}

static void with_rc_stores_enomem_skips_the_block_and_destroys_the_value(void **state)
{
    (void)state;
    cx_var *v = mkvar("with", &owned_opts);
    ensure_thread_state(v);
    atomic_store(&destroyed, 0);
    long live = atomic_load(&alloc_live);
    struct { int pad, rc; } out = {0, 99}; /* any int lvalue */
    int ran = 0;
    atomic_store(&alloc_failing, true);
    CX_WITH_RC(v, new_box(43), out.rc) {
        ran = 1;
    }
    atomic_store(&alloc_failing, false);
    assert_int_equal(out.rc, CX_ENOMEM);
    assert_int_equal(ran, 0);
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_int_equal(atomic_load(&alloc_live), live);
    void *got = NULL;
    assert_int_equal(cx_var_get(v, &got), CX_ELOOKUP);
    cx_var_release(v);
}

static void with_rc_of_a_null_variable_is_einval_and_skips_the_block(void **state)
{
    (void)state;
    int rc = 99, ran = 0;
    CX_WITH_RC(NULL, TAG(44), rc) {
        ran = 1;
    }
    assert_int_equal(rc, CX_EINVAL);
    assert_int_equal(ran, 0);
}

static void with_rc_block_left_by_break_resets(void **state)
{
    (void)state;
    cx_var *v = mkvar("with", NULL);
    int rc = 99, after = 0;
    for (int i = 0; i < 3; i++) {
        CX_WITH_RC(v, TAG(45), rc) {
            if (i == 1)
                break; /* leaves the CX_WITH_RC block only */
        }
        after++;
        void *got = NULL;
        assert_int_equal(cx_var_get(v, &got), CX_ELOOKUP);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(after, 3);
    cx_var_release(v);
}

/* ================================================================ main */

#define T(f) cmocka_unit_test_teardown(f, base_context_is_empty)

int main(void)
{
    cx_allocator a = {.malloc = counting_malloc, .free = counting_free};
    if (cx_set_allocator(&a) != 0)
        return 1;
    main_thread = pthread_self();
    cx_watchdog(900);
    const struct CMUnitTest tests[] = {
        T(thread_create_fn_calling_pthread_exit_destroys_its_copy_in_that_thread),
        T(thread_create_fn_cancelled_destroys_its_copy_in_that_thread),
        T(thread_create_in_fn_calling_pthread_exit_leaves_the_context),
        T(thread_create_in_fn_cancelled_leaves_the_context),
        T(pthread_exit_inside_run_leaves_the_context),
        T(cancel_inside_run_leaves_the_context),
        T(concurrent_cancels_return_0_only_once_the_future_is_complete),
        T(destroy_chain_in_a_threads_base_context_runs_every_round_at_exit),
        T(destroy_chain_in_a_thread_create_copy_runs_every_round_at_exit),
        T(with_whose_set_fails_destroys_the_value_and_skips_the_block),
        T(with_rc_stores_zero_and_runs_the_block),
        T(with_rc_stores_enomem_skips_the_block_and_destroys_the_value),
        T(with_rc_of_a_null_variable_is_einval_and_skips_the_block),
        T(with_rc_block_left_by_break_resets),
        /* Last: on a library that frees the running context, the rest of
         * the process may not survive it. */
        T(fn_releasing_the_last_reference_of_its_running_context_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
