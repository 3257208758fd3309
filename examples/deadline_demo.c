/*
 * deadline_demo.c - a deadline set once, seen everywhere: the short demo
 * of scopes for `make demo`.
 *
 * main() opens a scope with a 100 ms deadline and submits jobs to a pool,
 * no deadline argument anywhere. Each job reads the deadline from its
 * context (cx_deadline) and submits a nested job, which sees it too. Some
 * jobs are still queued when the deadline passes: they complete with
 * CX_ETIMEDOUT without running. A waiter blocked on a job that would
 * take a second returns at the deadline. Then a second scope is cancelled
 * by hand: a job waiting on a slow one wakes up with CX_ECANCELED.
 *
 * Exit status 0 when every check holds.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cxpool.h>

static cx_pool *pool;
static struct timespec t0;

static long ms_left(void)
{
    struct timespec d, now;
    if (cx_deadline(&d) != 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
}

static long ms_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
}

/* Works for `arg` 5 ms slices, giving up when the context says so. */
static void *work(void *arg)
{
    int slices = (int)(intptr_t)arg;
    for (int i = 0; i < slices; i++) {
        if (cx_check() != 0)
            return (void *)(intptr_t)cx_check();
        struct timespec slice = {0, 5 * 1000000L};
        nanosleep(&slice, NULL);
    }
    return NULL;
}

/* What stopped a work() job: its own cx_check() if it ran, or the status
 * it completed with if its scope ended before a worker took it. */
static int outcome(cx_future *f)
{
    void *r = NULL;
    int rc = cx_future_result(f, &r);
    return rc != 0 ? rc : (int)(intptr_t)r;
}

#define JOBS 3
static cx_future *nested_f[JOBS]; /* written by job i before it completes */

static void *nested(void *arg)
{
    printf("    nested job of job %d at %3ld ms: deadline in %ld ms\n", (int)(intptr_t)arg,
           ms_now(), ms_left());
    return work((void *)(intptr_t)4);
}

static void *job(void *arg)
{
    int i = (int)(intptr_t)arg;
    printf("  job %d at %3ld ms: deadline in %ld ms (from the context)\n", i, ms_now(),
           ms_left());
    (void)cx_pool_submit(pool, nested, arg, &nested_f[i]);
    return work((void *)(intptr_t)4);
}

int main(void)
{
    cx_pool_opts o = {.threads = 2, .queue_size = 0};
    if (cx_pool_new(&pool, &o) != 0)
        return 1;
    /* Workers started (slow under sanitizers) before the clock starts. */
    cx_future *warm = NULL;
    if (cx_pool_submit(pool, work, (void *)(intptr_t)0, &warm) != 0 ||
        cx_future_wait(warm, NULL) != 0)
        return 1;
    cx_future_release(warm);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int ok = 1;

    printf("1. a 100 ms deadline, set once, propagates into every job\n");
    struct timespec d = cx_deadline_in(100);
    cx_scope *s = NULL;
    if (cx_scope_new(&s, &d) != 0)
        return 1;
    cx_future *f[JOBS] = {0}, *slow = NULL;
    CX_WITH_SCOPE(s)
    {
        (void)cx_pool_submit(pool, work, (void *)(intptr_t)200, &slow); /* 1 s */
        for (int i = 0; i < JOBS; i++)
            (void)cx_pool_submit(pool, job, (void *)(intptr_t)i, &f[i]);
        int rc = cx_future_wait(slow, NULL); /* no deadline given: the scope's */
        printf("  waiting on a 1 s job returned %s at %ld ms\n", cx_err_name(rc), ms_now());
        /* (On a machine so slow that the job ended before the waiter
         * woke up, the wait reports it complete: 0.) */
        ok &= rc == CX_ETIMEDOUT || rc == 0;
    }
    int ran = 0, skipped = 0, total = 0;
    for (int i = 0; i < JOBS; i++) {
        /* Outside the scope: these waits do not return early. */
        cx_future *both[2] = {f[i], NULL};
        if (cx_future_result(f[i], NULL) == 0)
            both[1] = nested_f[i]; /* job i ran: it submitted this */
        for (int k = 0; k < 2 && both[k] != NULL; k++) {
            int rc = cx_future_result(both[k], NULL);
            ran += rc == 0;
            skipped += rc == CX_ETIMEDOUT;
            total++;
            cx_future_release(both[k]);
        }
    }
    printf("  ran: %d; still queued at the deadline, never ran: %d\n", ran,
           skipped);
    ok &= ran + skipped == total && skipped > 0;
    int seen = outcome(slow); /* it stopped itself at the deadline */
    printf("  the 1 s job gave up: %s\n", cx_err_name(seen));
    ok &= seen == CX_ETIMEDOUT;
    cx_future_release(slow);
    cx_scope_release(s);

    printf("2. cancelling a scope by hand wakes its waiters\n");
    cx_scope *c = NULL;
    if (cx_scope_new(&c, NULL) != 0)
        return 1;
    CX_WITH_SCOPE(c)
    {
        (void)cx_pool_submit(pool, work, (void *)(intptr_t)200, &slow);
        struct timespec soon = cx_deadline_in(20);
        int rc = cx_future_wait(slow, &soon);
        printf("  a wait with its own 20 ms deadline: %s\n", cx_err_name(rc));
        (void)cx_scope_cancel(c);
        rc = cx_future_wait(slow, NULL);
        printf("  after cx_scope_cancel: cx_check() = %s, the wait returns %s\n",
               cx_err_name(cx_check()), cx_err_name(rc));
        ok &= rc == CX_ECANCELED;
    }
    seen = outcome(slow);
    printf("  the job saw the cancel too: %s\n", cx_err_name(seen));
    ok &= seen == CX_ECANCELED;
    cx_future_release(slow);
    cx_scope_release(c);

    cx_pool_free(pool);
    printf("%s\n", ok ? "deadline_demo: ok" : "deadline_demo: FAILED");
    return ok ? 0 : 1;
}
