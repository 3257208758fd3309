/* test_watch.c - context watchers (SPEC 5.4): ENTER/EXIT on every switch
 * of a thread's current context (run, enter/exit, pool jobs, thread start
 * and end), in the switching thread, nested as ENTER a, ENTER b, EXIT b,
 * EXIT a; SET/RESET for CX_VAR_WATCHED variables only, with had_old /
 * has_new per the SPEC; nothing for a refused run or a failed set/reset;
 * no recursion; cx_watch_remove returns only when the callback runs
 * nowhere and never will again.
 *
 * Events are logged with the thread that delivered them and checked in
 * order per thread. Only the main thread asserts.
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

/* ================================================================ the log */

typedef struct rec {
    pthread_t thread;
    cx_watch_event ev;
} rec;

#define LOG_MAX 4096
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static rec log_[LOG_MAX];
static int nlog;

static void log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    nlog = 0;
    pthread_mutex_unlock(&log_mu);
}

static void logger(const cx_watch_event *ev, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    if (nlog < LOG_MAX)
        log_[nlog++] = (rec){pthread_self(), *ev};
    pthread_mutex_unlock(&log_mu);
}

/* The events of thread t, in order, into out (at most max); their count. */
static int events_of(pthread_t t, rec *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < nlog && n < max; i++)
        if (pthread_equal(log_[i].thread, t))
            out[n++] = log_[i];
    pthread_mutex_unlock(&log_mu);
    return n;
}

static int log_count(void)
{
    pthread_mutex_lock(&log_mu);
    int n = nlog;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static cx_watcher *add_logger(void)
{
    cx_watcher *w = NULL;
    assert_int_equal(cx_watch_add(&w, logger, NULL), 0);
    assert_non_null(w);
    log_reset();
    return w;
}

static void assert_switch(const rec *r, int kind, const cx_context *ctx)
{
    assert_int_equal(r->ev.kind, kind);
    assert_ptr_equal(r->ev.ctx, ctx);
    assert_null(r->ev.var);
}

static void assert_change(const rec *r, int kind, const cx_var *var, bool had_old, void *old,
                          bool has_new, void *new_value)
{
    assert_int_equal(r->ev.kind, kind);
    assert_ptr_equal(r->ev.var, var);
    assert_int_equal(r->ev.had_old, had_old);
    if (had_old)
        assert_ptr_equal(r->ev.old_value, old);
    assert_int_equal(r->ev.has_new, has_new);
    if (has_new)
        assert_ptr_equal(r->ev.new_value, new_value);
}

static cx_var *wv;   /* CX_VAR_WATCHED, default TAG(77) */
static cx_var *uv;   /* not watched */

static int setup(void **state)
{
    (void)state;
    cx_var_opts o = {.flags = CX_VAR_WATCHED, .has_default = true, .default_value = TAG(77)};
    if (cx_var_new(&wv, "watched", &o) != 0 || cx_var_new(&uv, "unwatched", NULL) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cx_var_release(wv);
    cx_var_release(uv);
    return 0;
}

static void *noop(void *p) { return p; }

/* ============================================================ arguments */

static void add_remove_bad_arguments(void **state)
{
    (void)state;
    cx_watcher *w = NULL;
    assert_int_equal(cx_watch_add(NULL, logger, NULL), CX_EINVAL);
    assert_int_equal(cx_watch_add(&w, NULL, NULL), CX_EINVAL);
    assert_null(w);
    cx_watch_remove(NULL); /* no-op */
}

static void registry_is_bounded(void **state)
{
    (void)state;
    cx_watcher *w[65];
    int n = 0;
    while (n < 65 && cx_watch_add(&w[n], logger, NULL) == 0)
        n++;
    assert_int_equal(n, 64);
    cx_watcher *extra;
    assert_int_equal(cx_watch_add(&extra, logger, NULL), CX_EAGAIN);
    cx_watch_remove(w[10]);
    assert_int_equal(cx_watch_add(&w[10], logger, NULL), 0); /* its slot is free again */
    for (int i = 0; i < n; i++)
        cx_watch_remove(w[i]);
}

/* ======================================================== ENTER and EXIT */

struct nest {
    cx_context *b;
    int inner_rc, again_rc;
};

static void *run_b(void *p)
{
    struct nest *n = p;
    n->inner_rc = cx_context_run(n->b, noop, NULL, NULL);
    return NULL;
}

static void *run_self(void *p)
{
    struct nest *n = p;
    n->again_rc = cx_context_run(n->b, noop, NULL, NULL); /* already entered: refused */
    return NULL;
}

static void nested_runs_in_order(void **state)
{
    (void)state;
    cx_context *a = mkctx(), *b = mkctx();
    cx_watcher *w = add_logger();
    struct nest n = {.b = b};
    assert_int_equal(cx_context_run(a, run_b, &n, NULL), 0);
    assert_int_equal(n.inner_rc, 0);
    cx_watch_remove(w);
    rec r[8];
    assert_int_equal(events_of(pthread_self(), r, 8), 4);
    assert_switch(&r[0], CX_WATCH_ENTER, a);
    assert_switch(&r[1], CX_WATCH_ENTER, b);
    assert_switch(&r[2], CX_WATCH_EXIT, b);
    assert_switch(&r[3], CX_WATCH_EXIT, a);
    cx_context_release(a);
    cx_context_release(b);
}

static void refused_run_fires_nothing(void **state)
{
    (void)state;
    cx_context *b = mkctx();
    cx_watcher *w = add_logger();
    struct nest n = {.b = b};
    assert_int_equal(cx_context_run(b, run_self, &n, NULL), 0);
    assert_int_equal(n.again_rc, CX_EBUSY);
    cx_watch_remove(w);
    rec r[8];
    assert_int_equal(events_of(pthread_self(), r, 8), 2);
    assert_switch(&r[0], CX_WATCH_ENTER, b);
    assert_switch(&r[1], CX_WATCH_EXIT, b);
    cx_context_release(b);
}

static void enter_exit_fire(void **state)
{
    (void)state;
    cx_context *a = mkctx(), *b = mkctx();
    cx_watcher *w = add_logger();
    assert_int_equal(cx_context_enter(a), 0);
    assert_int_equal(cx_context_enter(b), 0);
    assert_int_equal(cx_context_enter(a), CX_EBUSY); /* nothing */
    assert_int_equal(cx_context_exit(a), CX_ECONTEXT); /* nothing */
    assert_int_equal(cx_context_exit(b), 0);
    assert_int_equal(cx_context_exit(a), 0);
    cx_watch_remove(w);
    rec r[8];
    assert_int_equal(events_of(pthread_self(), r, 8), 4);
    assert_switch(&r[0], CX_WATCH_ENTER, a);
    assert_switch(&r[1], CX_WATCH_ENTER, b);
    assert_switch(&r[2], CX_WATCH_EXIT, b);
    assert_switch(&r[3], CX_WATCH_EXIT, a);
    cx_context_release(a);
    cx_context_release(b);
}

/* The callback runs in the context being entered or left. */
static atomic_int saw_value;
static void reader(const cx_watch_event *ev, void *arg)
{
    (void)arg;
    if (ev->kind == CX_WATCH_ENTER || ev->kind == CX_WATCH_EXIT)
        atomic_store(&saw_value, (int)(uintptr_t)cx_var_get_or(uv, TAG(0)));
}

static void *set_uv(void *p)
{
    (void)cx_var_set(uv, p, NULL);
    return NULL;
}

static void callback_runs_in_the_switched_context(void **state)
{
    (void)state;
    cx_context *a = mkctx();
    assert_int_equal(cx_context_run(a, set_uv, TAG(5), NULL), 0);
    cx_watcher *w;
    assert_int_equal(cx_watch_add(&w, reader, NULL), 0);
    atomic_store(&saw_value, -1);
    assert_int_equal(cx_context_enter(a), 0);
    assert_int_equal(atomic_load(&saw_value), 5);
    atomic_store(&saw_value, -1);
    assert_int_equal(cx_context_exit(a), 0);
    assert_int_equal(atomic_load(&saw_value), 5);
    cx_watch_remove(w);
    cx_context_release(a);
}

struct tinfo {
    pthread_t self;
    cx_context *ctx; /* the context the thread ran in */
};

static void *thread_body(void *p)
{
    struct tinfo *t = p;
    t->self = pthread_self();
    cx_context *c = cx_copy_context();
    cx_context_release(c);
    return NULL;
}

static void *thread_body_in(void *p)
{
    struct tinfo *t = p;
    t->self = pthread_self();
    return NULL;
}

static void thread_start_and_end_fire(void **state)
{
    (void)state;
    cx_watcher *w = add_logger();
    struct tinfo t1 = {0}, t2 = {0};
    pthread_t th;
    rec r[8];
    assert_int_equal(cx_thread_create(&th, NULL, thread_body, &t1), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(events_of(t1.self, r, 8), 2);
    assert_int_equal(r[0].ev.kind, CX_WATCH_ENTER);
    assert_non_null(r[0].ev.ctx);
    assert_switch(&r[1], CX_WATCH_EXIT, r[0].ev.ctx);
    assert_int_equal(log_count(), 2);
    log_reset(); /* a later thread may get the same pthread_t */
    cx_context *c = mkctx();
    assert_int_equal(cx_thread_create_in(&th, NULL, c, thread_body_in, &t2), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    cx_watch_remove(w);
    assert_int_equal(events_of(t2.self, r, 8), 2);
    assert_switch(&r[0], CX_WATCH_ENTER, c);
    assert_switch(&r[1], CX_WATCH_EXIT, c);
    assert_int_equal(events_of(pthread_self(), r, 8), 0);
    cx_context_release(c);
}

/* A thread that ends with a context entered leaves it: EXIT, in it. */
static void *enter_and_end(void *p)
{
    struct tinfo *t = p;
    t->self = pthread_self();
    (void)cx_context_enter(t->ctx);
    return NULL;
}

static void thread_end_exits_entered_context(void **state)
{
    (void)state;
    cx_context *c = mkctx();
    cx_watcher *w = add_logger();
    struct tinfo t = {.ctx = c};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, enter_and_end, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    cx_watch_remove(w);
    rec r[8];
    assert_int_equal(events_of(t.self, r, 8), 2);
    assert_switch(&r[0], CX_WATCH_ENTER, c);
    assert_switch(&r[1], CX_WATCH_EXIT, c);
    cx_context_release(c);
}

struct jobinfo {
    pthread_t self;
};

static void *job(void *p)
{
    struct jobinfo *j = p;
    j->self = pthread_self();
    return NULL;
}

static void pool_jobs_fire_in_the_worker(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 1};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    cx_watcher *w = add_logger();
    struct jobinfo j1, j2;
    cx_future *f1, *f2;
    cx_context *c = mkctx();
    assert_int_equal(cx_pool_submit(p, job, &j1, &f1), 0);
    assert_int_equal(cx_future_wait(f1, NULL), 0);
    assert_int_equal(cx_pool_submit_in(p, c, job, &j2, &f2), 0);
    assert_int_equal(cx_future_wait(f2, NULL), 0);
    cx_watch_remove(w);
    assert_true(pthread_equal(j1.self, j2.self)); /* one worker */
    rec r[8];
    assert_int_equal(events_of(j1.self, r, 8), 4);
    assert_int_equal(r[0].ev.kind, CX_WATCH_ENTER);
    assert_switch(&r[1], CX_WATCH_EXIT, r[0].ev.ctx);
    assert_switch(&r[2], CX_WATCH_ENTER, c);
    assert_switch(&r[3], CX_WATCH_EXIT, c);
    assert_int_equal(events_of(pthread_self(), r, 8), 0);
    cx_future_release(f1);
    cx_future_release(f2);
    cx_pool_free(p);
    cx_context_release(c);
}

/* ========================================================== SET and RESET */

static void set_and_reset_events(void **state)
{
    (void)state;
    cx_watcher *w = add_logger();
    cx_token *t1, *t2, *t3;
    assert_int_equal(cx_var_set(wv, TAG(1), &t1), 0); /* default is not a binding */
    assert_int_equal(cx_var_set(wv, TAG(2), &t2), 0);
    assert_int_equal(cx_var_set(uv, TAG(3), &t3), 0); /* not watched */
    assert_int_equal(cx_var_reset(wv, t2), 0);          /* back to 1 */
    assert_int_equal(cx_var_reset(wv, t2), CX_EUSED);   /* failed: nothing */
    assert_int_equal(cx_var_reset(wv, t3), CX_EVAR);    /* failed: nothing */
    assert_int_equal(cx_var_reset(wv, t1), 0);          /* removed */
    assert_int_equal(cx_var_reset(uv, t3), 0);
    cx_watch_remove(w);
    rec r[8];
    int n = events_of(pthread_self(), r, 8);
    assert_int_equal(n, 4);
    assert_change(&r[0], CX_WATCH_SET, wv, false, NULL, true, TAG(1));
    assert_change(&r[1], CX_WATCH_SET, wv, true, TAG(1), true, TAG(2));
    assert_change(&r[2], CX_WATCH_RESET, wv, true, TAG(2), true, TAG(1));
    assert_change(&r[3], CX_WATCH_RESET, wv, true, TAG(1), false, NULL);
    assert_non_null(r[0].ev.ctx);
    assert_ptr_equal(r[3].ev.ctx, r[0].ev.ctx);
    cx_token_release(t1);
    cx_token_release(t2);
    cx_token_release(t3);
}

/* A non-LIFO reset whose variable an earlier reset removed: old absent.
 * Runs in a context of its own (the base context stays empty). */
struct nonlifo {
    int rc[3];
};

static void *nonlifo_body(void *p)
{
    struct nonlifo *n = p;
    cx_token *t1, *t2;
    n->rc[0] = cx_var_set(wv, TAG(1), &t1);
    n->rc[1] = cx_var_set(wv, TAG(2), &t2);
    n->rc[2] = cx_var_reset(wv, t1); /* removes wv */
    log_reset();
    (void)cx_var_reset(wv, t2); /* restores 1 */
    cx_token_release(t1);
    cx_token_release(t2);
    return NULL;
}

static void reset_of_removed_variable(void **state)
{
    (void)state;
    cx_context *c = mkctx();
    cx_watcher *w = add_logger();
    struct nonlifo n;
    assert_int_equal(cx_context_run(c, nonlifo_body, &n, NULL), 0);
    cx_watch_remove(w);
    for (int i = 0; i < 3; i++)
        assert_int_equal(n.rc[i], 0);
    rec r[4];
    assert_int_equal(events_of(pthread_self(), r, 4), 2);
    assert_change(&r[0], CX_WATCH_RESET, wv, false, NULL, true, TAG(1));
    assert_ptr_equal(r[0].ev.ctx, c);
    assert_switch(&r[1], CX_WATCH_EXIT, c);
    cx_context_release(c);
}

/* Failed sets (out of memory) fire nothing. */
static atomic_int fail_all;
static void *fail_malloc(size_t n) { return atomic_load(&fail_all) ? NULL : malloc(n); }

static void failed_set_fires_nothing(void **state)
{
    (void)state;
    cx_token *t0;
    assert_int_equal(cx_var_set(uv, TAG(1), &t0), 0); /* state exists */
    cx_watcher *w = add_logger();
    cx_allocator a = {fail_malloc, free};
    assert_int_equal(cx_set_allocator(&a), 0);
    atomic_store(&fail_all, 1);
    cx_token *t;
    assert_int_equal(cx_var_set(wv, TAG(1), &t), CX_ENOMEM);
    atomic_store(&fail_all, 0);
    assert_int_equal(cx_set_allocator(NULL), 0);
    assert_int_equal(cx_var_set(NULL, TAG(1), NULL), CX_EINVAL);
    cx_watch_remove(w);
    assert_int_equal(log_count(), 0);
    assert_int_equal(cx_var_reset(uv, t0), 0);
    cx_token_release(t0);
}

/* cx_watch_add out of memory: CX_ENOMEM, *out untouched, nothing
 * registered (a switch afterwards is heard by nobody). */
static void add_out_of_memory_registers_nothing(void **state)
{
    (void)state;
    log_reset();
    cx_watcher *w = TAG(0x5eed);
    cx_allocator a = {fail_malloc, free};
    assert_int_equal(cx_set_allocator(&a), 0);
    atomic_store(&fail_all, 1);
    int rc = cx_watch_add(&w, logger, NULL);
    atomic_store(&fail_all, 0);
    assert_int_equal(cx_set_allocator(NULL), 0);
    assert_int_equal(rc, CX_ENOMEM);
    assert_ptr_equal(w, TAG(0x5eed));
    cx_context *c = cx_context_new();
    assert_non_null(c);
    assert_int_equal(cx_context_enter(c), 0);
    assert_int_equal(cx_context_exit(c), 0);
    cx_context_release(c);
    assert_int_equal(log_count(), 0);
}

/* ============================================================ recursion */

static atomic_int rec_calls;
static cx_context *rec_ctx;
static void recursive(const cx_watch_event *ev, void *arg)
{
    (void)arg;
    atomic_fetch_add(&rec_calls, 1);
    if (ev->kind == CX_WATCH_SET && ev->new_value == TAG(1)) {
        cx_token *t;
        if (cx_var_set(wv, TAG(2), &t) == 0) { /* SET, RESET: not delivered */
            (void)cx_var_reset(wv, t);
            cx_token_release(t);
        }
        (void)cx_context_run(rec_ctx, noop, NULL, NULL); /* not delivered */
    }
}

static void no_recursion(void **state)
{
    (void)state;
    rec_ctx = mkctx();
    atomic_store(&rec_calls, 0);
    cx_watcher *w;
    assert_int_equal(cx_watch_add(&w, recursive, NULL), 0);
    cx_token *t;
    assert_int_equal(cx_var_set(wv, TAG(1), &t), 0);
    assert_int_equal(atomic_load(&rec_calls), 1);
    assert_int_equal(cx_var_reset(wv, t), 0);
    assert_int_equal(atomic_load(&rec_calls), 2);
    cx_watch_remove(w);
    cx_token_release(t);
    cx_context_release(rec_ctx);
}

/* ================================================================ remove */

static void removed_watcher_hears_nothing(void **state)
{
    (void)state;
    cx_context *a = mkctx();
    cx_watcher *w = add_logger();
    assert_int_equal(cx_context_run(a, noop, NULL, NULL), 0);
    assert_int_equal(log_count(), 2);
    cx_watch_remove(w);
    assert_int_equal(cx_context_run(a, noop, NULL, NULL), 0);
    assert_int_equal(log_count(), 2);
    cx_context_release(a);
}

/* A callback that removes its own watcher: heard once, never again, and
 * its memory is freed (memcheck). */
static atomic_int self_calls;
static cx_watcher *self_w;
static void remove_self(const cx_watch_event *ev, void *arg)
{
    (void)ev;
    (void)arg;
    atomic_fetch_add(&self_calls, 1);
    cx_watch_remove(self_w);
}

static void remove_inside_callback(void **state)
{
    (void)state;
    cx_context *a = mkctx();
    atomic_store(&self_calls, 0);
    assert_int_equal(cx_watch_add(&self_w, remove_self, NULL), 0);
    cx_watcher *w = add_logger(); /* another one, still called */
    assert_int_equal(cx_context_run(a, noop, NULL, NULL), 0);
    assert_int_equal(atomic_load(&self_calls), 1);
    assert_int_equal(log_count(), 2);
    cx_watch_remove(w);
    cx_context_release(a);
}

/* Remove against a thread that keeps switching contexts: when remove
 * returns, the callback is running nowhere (each call checks, after a
 * pause, that remove has not returned yet) and is never called again. */
static atomic_int busy_calls, violations, removing, removed, stop;
static atomic_uint runs;

static void slow_cb(const cx_watch_event *ev, void *arg)
{
    (void)ev;
    (void)arg;
    if (atomic_load(&removed))
        atomic_fetch_add(&violations, 1); /* called after remove returned */
    atomic_fetch_add(&busy_calls, 1);
    if (atomic_load(&removing)) {
        /* Widen the window in which remove must wait for us. */
        for (volatile int i = 0; i < 20000; i++)
            ;
        if (atomic_load(&removed))
            atomic_fetch_add(&violations, 1); /* remove returned while we ran */
    }
}

static void *switcher(void *p)
{
    cx_context *c = p;
    while (!atomic_load(&stop)) {
        (void)cx_context_run(c, noop, NULL, NULL);
        atomic_fetch_add(&runs, 1);
    }
    return NULL;
}

static void remove_waits_for_running_callbacks(void **state)
{
    (void)state;
    unsigned rounds = cx_test_scaled(40);
    if (rounds < 3)
        rounds = 3;
    enum { NT = 2 };
    cx_context *c[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        c[i] = mkctx();
        assert_int_equal(pthread_create(&th[i], NULL, switcher, c[i]), 0);
    }
    for (unsigned r = 0; r < rounds; r++) {
        atomic_store(&busy_calls, 0);
        atomic_store(&removing, 0);
        atomic_store(&removed, 0);
        cx_watcher *w;
        assert_int_equal(cx_watch_add(&w, slow_cb, NULL), 0);
        /* Until the switchers have called it a few times. */
        while (atomic_load(&busy_calls) < 4)
            sched_yield();
        atomic_store(&removing, 1);
        cx_watch_remove(w);
        atomic_store(&removed, 1);
        /* Let the switchers go on for a while with no watcher. */
        unsigned seen = atomic_load(&runs);
        while (atomic_load(&runs) < seen + 2 * NT)
            sched_yield();
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NT; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        cx_context_release(c[i]);
    }
    assert_int_equal(atomic_load(&violations), 0);
}

/* Two watchers, added and removed by several threads at once, while
 * others switch: nothing is lost or freed twice (memcheck, helgrind). */
static void *add_remove_loop(void *p)
{
    unsigned n = *(unsigned *)p;
    for (unsigned i = 0; i < n; i++) {
        cx_watcher *w;
        if (cx_watch_add(&w, logger, NULL) == 0)
            cx_watch_remove(w);
    }
    return NULL;
}

static void concurrent_add_remove(void **state)
{
    (void)state;
    atomic_store(&stop, 0);
    cx_context *c = mkctx();
    pthread_t sw, ar[2];
    assert_int_equal(pthread_create(&sw, NULL, switcher, c), 0);
    unsigned n = cx_test_scaled(300);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&ar[i], NULL, add_remove_loop, &n), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(ar[i], NULL), 0);
    atomic_store(&stop, 1);
    assert_int_equal(pthread_join(sw, NULL), 0);
    cx_context_release(c);
    log_reset();
    assert_int_equal(cx_context_run(c = mkctx(), noop, NULL, NULL), 0);
    assert_int_equal(log_count(), 0); /* every watcher is gone */
    cx_context_release(c);
}

int main(void)
{
    cx_watchdog(600);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(add_remove_bad_arguments, base_context_is_empty),
        cmocka_unit_test_teardown(registry_is_bounded, base_context_is_empty),
        cmocka_unit_test_teardown(nested_runs_in_order, base_context_is_empty),
        cmocka_unit_test_teardown(refused_run_fires_nothing, base_context_is_empty),
        cmocka_unit_test_teardown(enter_exit_fire, base_context_is_empty),
        cmocka_unit_test_teardown(callback_runs_in_the_switched_context, base_context_is_empty),
        cmocka_unit_test_teardown(thread_start_and_end_fire, base_context_is_empty),
        cmocka_unit_test_teardown(thread_end_exits_entered_context, base_context_is_empty),
        cmocka_unit_test_teardown(pool_jobs_fire_in_the_worker, base_context_is_empty),
        cmocka_unit_test_teardown(set_and_reset_events, base_context_is_empty),
        cmocka_unit_test_teardown(reset_of_removed_variable, base_context_is_empty),
        cmocka_unit_test_teardown(failed_set_fires_nothing, base_context_is_empty),
        cmocka_unit_test_teardown(add_out_of_memory_registers_nothing, base_context_is_empty),
        cmocka_unit_test_teardown(no_recursion, base_context_is_empty),
        cmocka_unit_test_teardown(removed_watcher_hears_nothing, base_context_is_empty),
        cmocka_unit_test_teardown(remove_inside_callback, base_context_is_empty),
        cmocka_unit_test_teardown(remove_waits_for_running_callbacks, base_context_is_empty),
        cmocka_unit_test_teardown(concurrent_add_remove, base_context_is_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
