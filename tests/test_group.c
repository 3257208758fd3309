/* test_group.c - task groups (SPEC 5.3): jobs in the caller's snapshot
 * under the group's scope, first error cancels the rest, nested go is
 * counted, wait with deadlines and scopes, release neither leaks nor
 * hangs, waits inside jobs of a one-worker pool run queued work inline.
 *
 * Only the main thread asserts; jobs record what they saw into fields the
 * main thread reads after cx_group_wait/cx_group_release, a join or a
 * semaphore. Ordering by gates and semaphores, never by sleeping.
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

static int ok_fn(void *arg)
{
    (void)arg;
    return 0;
}

static int count_fn(void *arg)
{
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_RELAXED);
    return 0;
}

static void group_bad_arguments_are_einval(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1, 0);
    cx_group *g = NULL;
    struct timespec bad = {.tv_sec = 0, .tv_nsec = 1000000000L};
    assert_int_equal(cx_group_new(NULL, p), CX_EINVAL);
    assert_int_equal(cx_group_new(&g, NULL), CX_EINVAL);
    assert_null(g);
    assert_int_equal(cx_group_new(&g, p), 0);
    assert_int_equal(cx_group_go(NULL, ok_fn, NULL), CX_EINVAL);
    assert_int_equal(cx_group_go(g, NULL, NULL), CX_EINVAL);
    assert_int_equal(cx_group_wait(NULL, NULL), CX_EINVAL);
    assert_int_equal(cx_group_wait(g, &bad), CX_EINVAL);
    assert_int_equal(cx_group_cancel(NULL), CX_EINVAL);
    cx_group_release(NULL);
    /* An empty group: wait is 0 at once; release frees it. */
    assert_int_equal(cx_group_wait(g, NULL), 0);
    cx_group_release(g);
    cx_pool_free(p);
}

/* ------------------------------------------------------ propagation */

static cx_var *req_var;
struct seen {
    void *req;
    int check;
    int deadline_rc;
    struct timespec deadline;
};

static int record_fn(void *arg)
{
    struct seen *s = arg;
    s->req = cx_var_get_or(req_var, NULL);
    s->check = cx_check();
    s->deadline_rc = cx_deadline(&s->deadline);
    return 0;
}

static void jobs_run_in_the_callers_snapshot_under_the_groups_scope(void **state)
{
    (void)state;
    req_var = mkvar("req", NULL);
    cx_pool *p = new_pool(2, 0);
    struct timespec d = ms_from_now(LONG_MS);
    cx_scope *s = new_scope(&d);
    struct seen seen[8];
    memset(seen, 0, sizeof(seen));
    cx_group *g = NULL;
    CX_WITH_SCOPE(s)
    {
        assert_int_equal(cx_group_new(&g, p), 0);
        CX_WITH(req_var, TAG(42))
        {
            for (int i = 0; i < 8; i++)
                assert_int_equal(cx_group_go(g, record_fn, &seen[i]), 0);
        }
        assert_int_equal(cx_group_wait(g, NULL), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_ptr_equal(seen[i].req, TAG(42));
        assert_int_equal(seen[i].check, 0);
        assert_int_equal(seen[i].deadline_rc, 0); /* the caller's chain */
        assert_int_equal(seen[i].deadline.tv_sec, d.tv_sec);
        assert_int_equal(seen[i].deadline.tv_nsec, d.tv_nsec);
    }
    /* The group's scope is a child: cancelling it leaves the caller's. */
    assert_int_equal(cx_group_cancel(g), 0);
    CX_WITH_SCOPE(s) { assert_int_equal(cx_check(), 0); }
    cx_group_release(g);
    cx_scope_release(s);
    cx_pool_free(p);
    cx_var_release(req_var);
}

/* ------------------------------------------------------ first error */

struct blocker {
    cx_future *never; /* a future that completes only at the end */
    sem_t started;
    int rc;
    int ran;
};

/* Blocks in a library wait until the group's scope is cancelled. */
static int blocked_fn(void *arg)
{
    struct blocker *b = arg;
    b->ran++;
    sem_post(&b->started);
    b->rc = cx_future_wait(b->never, NULL);
    return b->rc;
}

static int fail_fn(void *arg) { return (int)(intptr_t)arg; }

static void first_error_cancels_the_rest(void **state)
{
    (void)state;
    /* One worker: the failing job runs first; the queued ones never run. */
    cx_pool *p = new_pool(1, 0);
    cx_group *g = NULL;
    int ran = 0;
    assert_int_equal(cx_group_new(&g, p), 0);
    assert_int_equal(cx_group_go(g, fail_fn, TAG(-42)), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(cx_group_go(g, count_fn, &ran), 0);
    assert_int_equal(cx_group_wait(g, NULL), -42);
    assert_int_equal(ran, 0);
    assert_int_equal(cx_group_wait(g, NULL), -42); /* kept */
    cx_group_release(g);

    /* A running job sees the cancel: its library wait returns. */
    struct gate never_gate;
    cx_future *never = NULL;
    cx_pool *other = held_pool(&never_gate, 0, &never);
    struct blocker b = {.never = never, .rc = 1};
    sem_init(&b.started, 0, 0);
    cx_pool *p2 = new_pool(2, 0);
    assert_int_equal(cx_group_new(&g, p2), 0);
    assert_int_equal(cx_group_go(g, blocked_fn, &b), 0);
    while (sem_wait(&b.started) != 0)
        ;
    assert_int_equal(cx_group_go(g, fail_fn, TAG(-7)), 0);
    assert_int_equal(cx_group_wait(g, NULL), -7); /* the first error, not the blocker's */
    assert_int_equal(b.rc, CX_ECANCELED);
    assert_int_equal(b.ran, 1);
    cx_group_release(g);
    gate_open(&never_gate);
    cx_future_release(never);
    cx_pool_free(other);
    cx_pool_free(p2);
    cx_pool_free(p);
    sem_destroy(&b.started);
    gate_destroy(&never_gate);
}

static void go_after_cancel_runs_nothing(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1, 0);
    cx_group *g = NULL;
    int ran = 0;
    assert_int_equal(cx_group_new(&g, p), 0);
    assert_int_equal(cx_group_cancel(g), 0);
    assert_int_equal(cx_group_go(g, count_fn, &ran), 0);
    assert_int_equal(cx_group_wait(g, NULL), CX_ECANCELED);
    assert_int_equal(ran, 0);
    cx_group_release(g);

    /* Under an expired scope: jobs are skipped, wait says why. */
    struct timespec past = ms_from_now(-1);
    cx_scope *s = new_scope(&past);
    CX_WITH_SCOPE(s) { assert_int_equal(cx_group_new(&g, p), 0); }
    assert_int_equal(cx_group_go(g, count_fn, &ran), 0);
    assert_int_equal(cx_group_wait(g, NULL), CX_ETIMEDOUT);
    assert_int_equal(ran, 0);
    cx_group_release(g);
    cx_scope_release(s);
    cx_pool_free(p);
}

/* ------------------------------------------------------ nested go */

struct nest {
    cx_group *g;
    struct gate c_gate; /* holds C until the opener thread lets it go */
    int a, b, c;
    int go_rc[2];
};

static int c_fn(void *arg)
{
    struct nest *n = arg;
    gate_job(&n->c_gate);
    n->c = 1;
    return 0;
}

static int b_fn(void *arg)
{
    struct nest *n = arg;
    n->go_rc[1] = cx_group_go(n->g, c_fn, n);
    n->b = 1;
    return 0;
}

static int a_fn(void *arg)
{
    struct nest *n = arg;
    n->go_rc[0] = cx_group_go(n->g, b_fn, n);
    n->a = 1;
    return 0;
}

static void *open_when_entered(void *arg)
{
    struct gate *g = arg;
    gate_wait_entered(g);
    gate_open(g);
    return NULL;
}

static void nested_go_is_counted(void **state)
{
    (void)state;
    cx_pool *p = new_pool(2, 0);
    struct nest n = {0};
    gate_init(&n.c_gate);
    assert_int_equal(cx_group_new(&n.g, p), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, open_when_entered, &n.c_gate), 0);
    assert_int_equal(cx_group_go(n.g, a_fn, &n), 0);
    assert_int_equal(cx_group_wait(n.g, NULL), 0);
    /* C, two levels down and held until after A and B ended, has ended. */
    assert_int_equal(n.a + n.b + n.c, 3);
    assert_int_equal(n.go_rc[0], 0);
    assert_int_equal(n.go_rc[1], 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    cx_group_release(n.g);
    cx_pool_free(p);
    gate_destroy(&n.c_gate);
}

/* ------------------------------------------------------ wait */

static int gated_fn(void *arg)
{
    gate_job(arg);
    return 0;
}

static void wait_returns_at_deadlines_and_jobs_go_on(void **state)
{
    (void)state;
    cx_pool *p = new_pool(1, 0);
    struct gate g;
    gate_init(&g);
    cx_group *gr = NULL;
    assert_int_equal(cx_group_new(&gr, p), 0);
    assert_int_equal(cx_group_go(gr, gated_fn, &g), 0);
    gate_wait_entered(&g);
    struct timespec soon = ms_from_now(10);
    assert_int_equal(cx_group_wait(gr, &soon), CX_ETIMEDOUT);
    /* The caller's scope: its deadline, its cancel. */
    struct timespec d = ms_from_now(10);
    cx_scope *sd = new_scope(&d), *sc = new_scope(NULL);
    CX_WITH_SCOPE(sd) { assert_int_equal(cx_group_wait(gr, NULL), CX_ETIMEDOUT); }
    assert_int_equal(cx_scope_cancel(sc), 0);
    CX_WITH_SCOPE(sc) { assert_int_equal(cx_group_wait(gr, NULL), CX_ECANCELED); }
    gate_open(&g); /* the job went on meanwhile */
    assert_int_equal(cx_group_wait(gr, NULL), 0);
    cx_group_release(gr);
    cx_scope_release(sd);
    cx_scope_release(sc);
    cx_pool_free(p);
    gate_destroy(&g);
}

/* ------------------------------------------------------ release */

static void release_cancels_queued_jobs_and_waits_for_running_ones(void **state)
{
    (void)state;
    struct gate never_gate;
    cx_future *never = NULL;
    cx_pool *other = held_pool(&never_gate, 0, &never);
    cx_pool *p = new_pool(1, 0);
    struct blocker b = {.never = never, .rc = 1};
    sem_init(&b.started, 0, 0);
    int ran = 0;
    cx_group *g = NULL;
    assert_int_equal(cx_group_new(&g, p), 0);
    assert_int_equal(cx_group_go(g, blocked_fn, &b), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cx_group_go(g, count_fn, &ran), 0);
    while (sem_wait(&b.started) != 0)
        ;
    cx_group_release(g); /* returns: the runner woke, the queued never ran */
    assert_int_equal(b.rc, CX_ECANCELED);
    assert_int_equal(ran, 0);
    cx_pool_free(p); /* the cancelled jobs' places are given back */
    assert_int_equal(ran, 0);

    /* Release after wait, and of a group whose jobs all ended. */
    p = new_pool(2, 0);
    assert_int_equal(cx_group_new(&g, p), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(cx_group_go(g, count_fn, &ran), 0);
    assert_int_equal(cx_group_wait(g, NULL), 0);
    assert_int_equal(ran, 16);
    cx_group_release(g);
    cx_pool_free(p);

    gate_open(&never_gate);
    cx_future_release(never);
    cx_pool_free(other);
    sem_destroy(&b.started);
    gate_destroy(&never_gate);
}

/* ------------------------------------------------------ inline waits */

static cx_pool *one;
struct level {
    int depth;
    int rc;
    int ran;
};
static struct level levels[4];

/* Level d makes a group on the one-worker pool, goes level d - 1 twice
 * (the second is counted too) and waits for it from inside the job. */
static int level_fn(void *arg)
{
    struct level *l = arg;
    l->ran++;
    if (l->depth == 0)
        return 0;
    cx_group *g = NULL;
    int rc = cx_group_new(&g, one);
    if (rc == 0) {
        rc = cx_group_go(g, level_fn, &levels[l->depth - 1]);
        if (rc == 0)
            rc = cx_group_go(g, level_fn, &levels[l->depth - 1]);
        if (rc == 0)
            rc = cx_group_wait(g, NULL);
        cx_group_release(g);
    }
    l->rc = rc;
    return rc;
}

static void *level_job(void *arg) { return TAG(level_fn(arg) + 100); }

static void group_wait_in_a_job_of_a_one_worker_pool_runs_queued_work_inline(void **state)
{
    (void)state;
    memset(levels, 0, sizeof(levels));
    for (int d = 0; d < 4; d++)
        levels[d].depth = d;
    one = new_pool(1, 0);
    cx_future *f = NULL;
    assert_int_equal(cx_pool_submit(one, level_job, &levels[3], &f), 0);
    struct timespec dl = ms_from_now(LONG_MS);
    void *r = NULL;
    assert_int_equal(cx_future_result_until(f, &dl, &r), 0);
    assert_ptr_equal(r, TAG(100));
    for (int d = 1; d < 4; d++)
        assert_int_equal(levels[d].rc, 0);
    assert_int_equal(levels[3].ran, 1);
    assert_int_equal(levels[2].ran, 2);
    assert_int_equal(levels[1].ran, 4);
    assert_int_equal(levels[0].ran, 8);
    cx_future_release(f);
    cx_pool_free(one);
}

/* ------------------------------------------------------ stress */

struct fan {
    cx_group *g;
    int left; /* levels of nesting still to make */
    int *count;
};

static int fan_fn(void *arg)
{
    struct fan *f = arg;
    __atomic_add_fetch(f->count, 1, __ATOMIC_RELAXED);
    if (f->left == 0)
        return 0;
    int rc = cx_group_go(f->g, fan_fn, f - 1);
    return rc == 0 ? cx_group_go(f->g, fan_fn, f - 1) : rc;
}

static void many_groups_with_nested_jobs_end_exactly(void **state)
{
    (void)state;
    cx_pool *p = new_pool(3, 64);
    unsigned rounds = cx_test_scaled(200);
    for (unsigned r = 0; r < rounds; r++) {
        int count = 0;
        cx_group *g = NULL;
        assert_int_equal(cx_group_new(&g, p), 0);
        struct fan levels3[4];
        for (int i = 0; i < 4; i++)
            levels3[i] = (struct fan){.g = g, .left = i, .count = &count};
        assert_int_equal(cx_group_go(g, fan_fn, &levels3[3]), 0);
        assert_int_equal(cx_group_wait(g, NULL), 0);
        assert_int_equal(count, 15); /* 1 + 2 + 4 + 8 */
        if (r % 2 == 1)
            assert_int_equal(cx_group_go(g, fan_fn, &levels3[3]), 0);
        cx_group_release(g); /* may cancel the second round mid-way */
    }
    cx_pool_free(p);
}

/* ------------------------------------------------------ out of memory */

static unsigned long alloc_count, alloc_fail_at, alloc_live;
static void *failing_malloc(size_t n)
{
    unsigned long k = __atomic_add_fetch(&alloc_count, 1, __ATOMIC_SEQ_CST);
    if (k == alloc_fail_at)
        return NULL;
    void *ptr = malloc(n);
    if (ptr != NULL)
        __atomic_add_fetch(&alloc_live, 1, __ATOMIC_SEQ_CST);
    return ptr;
}
static void counting_free(void *ptr)
{
    if (ptr != NULL)
        __atomic_sub_fetch(&alloc_live, 1, __ATOMIC_SEQ_CST);
    free(ptr);
}

static void on_done_count(cx_future *f, void *arg)
{
    (void)f;
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* The scope and group API with allocation number fail_at failing: each
 * call that fails says CX_ENOMEM and changes nothing (it is retried).
 * Returns whether a failure was injected. */
static bool oom_run(unsigned long fail_at)
{
    alloc_count = 0;
    alloc_fail_at = fail_at;
    int failures = 0, rc, ran = 0, done = 0;
    cx_pool *p = NULL;
    cx_pool_opts o = {.threads = 2, .queue_size = 16};
    while ((rc = cx_pool_new(&p, &o)) == CX_ENOMEM)
        failures++;
    assert_int_equal(rc, 0);
    struct timespec d = ms_from_now(LONG_MS);
    cx_scope *s = NULL;
    while ((rc = cx_scope_new(&s, &d)) == CX_ENOMEM)
        failures++;
    assert_int_equal(rc, 0);
    cx_group *g = NULL;
    while ((rc = cx_group_new(&g, p)) == CX_ENOMEM)
        failures++;
    assert_int_equal(rc, 0);
    for (int i = 0; i < 3; i++) {
        while ((rc = cx_group_go(g, count_fn, &ran)) == CX_ENOMEM)
            failures++;
        assert_int_equal(rc, 0);
    }
    assert_int_equal(cx_group_wait(g, NULL), 0);
    assert_int_equal(ran, 3);
    cx_group_release(g);

    /* on_done and a wait_any of more than 8 (listeners on the heap). */
    struct gate gt;
    gate_init(&gt);
    cx_future *gf = NULL;
    while ((rc = cx_pool_submit(p, gate_job, &gt, &gf)) == CX_ENOMEM)
        failures++;
    assert_int_equal(rc, 0);
    while ((rc = cx_future_on_done(gf, on_done_count, &done)) == CX_ENOMEM)
        failures++;
    assert_int_equal(rc, 0);
    cx_future *many[9];
    for (int i = 0; i < 9; i++)
        many[i] = gf;
    size_t idx;
    struct timespec soon = ms_from_now(1);
    while ((rc = cx_future_wait_any(many, 9, &soon, &idx)) == CX_ENOMEM)
        failures++;
    assert_true(rc == CX_ETIMEDOUT || rc == 0);
    gate_open(&gt);
    assert_int_equal(cx_future_wait(gf, NULL), 0);
    cx_pool_free(p); /* the on_done callback has run by now */
    assert_int_equal(done, 1);
    cx_future_release(gf);
    gate_destroy(&gt);
    cx_scope_release(s);
    assert_int_equal(alloc_live, 0);
    return failures > 0;
}

static void every_allocation_failure_is_enomem_and_leaks_nothing(void **state)
{
    (void)state;
    cx_allocator a = {.malloc = failing_malloc, .free = counting_free};
    /* The main thread's state exists already: only the calls' own
     * allocations are counted. */
    cx_var *v = mkvar("warm", NULL);
    CX_WITH(v, TAG(1)) { assert_int_equal(cx_check(), 0); }
    assert_int_equal(cx_set_allocator(&a), 0);
    unsigned long n = 1;
    while (oom_run(n))
        n++;
    assert_true(n > 8);
    assert_int_equal(cx_set_allocator(NULL), 0);
    cx_var_release(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(group_bad_arguments_are_einval, base_context_is_empty),
        cmocka_unit_test_teardown(jobs_run_in_the_callers_snapshot_under_the_groups_scope,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(first_error_cancels_the_rest, base_context_is_empty),
        cmocka_unit_test_teardown(go_after_cancel_runs_nothing, base_context_is_empty),
        cmocka_unit_test_teardown(nested_go_is_counted, base_context_is_empty),
        cmocka_unit_test_teardown(wait_returns_at_deadlines_and_jobs_go_on, base_context_is_empty),
        cmocka_unit_test_teardown(release_cancels_queued_jobs_and_waits_for_running_ones,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(
            group_wait_in_a_job_of_a_one_worker_pool_runs_queued_work_inline,
            base_context_is_empty),
        cmocka_unit_test_teardown(many_groups_with_nested_jobs_end_exactly, base_context_is_empty),
        cmocka_unit_test_teardown(every_allocation_failure_is_enomem_and_leaks_nothing,
                                  base_context_is_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
