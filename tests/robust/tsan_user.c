/* tsan_user.c - a correct user program, built with -fsanitize=thread and
 * linked against the ordinary (uninstrumented) static library: TSan must
 * report nothing, with no suppression file (SPEC 5.1). The library is
 * expected to find the TSan runtime at load and announce each of its
 * handoffs; without that, TSan sees this program's own data cross threads
 * with nothing ordering the accesses.
 *
 * What the program does, as users do:
 *   - a request struct per job, set as an owned value (destroy frees it):
 *     written by main, read by the pool job, freed by whichever thread
 *     drops the last holder (submit -> job, value -> destroy);
 *   - job results written by the job, read by main after cx_future_result
 *     (job -> future);
 *   - cx_pool_submit_in into one context, its counter read back by main;
 *   - cx_future_cancel of queued jobs, from main and from another thread,
 *     their values destroyed by the canceller;
 *   - cx_thread_create: the thread reads the inherited request and sets
 *     its own owned value, destroyed when the thread ends;
 *   - one context handed between three threads that each loop on
 *     cx_context_run until it returns 0 (leave -> enter).
 *
 * Run with TSAN_OPTIONS=halt_on_error=1: any report ends the run with a
 * non-zero status. Otherwise the program checks its own results and exits
 * 0 or 1. Sizes scale with CX_TEST_SCALE.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx_test.h"
#include "cx_wait.h"
#include "cxpool.h"
#include "cxvars.h"

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "tsan_user: %s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                          \
            failures++;                                                        \
        }                                                                      \
    } while (0)

/* ================================================================ values */

typedef struct request {
    char id[32];
    unsigned long n;
    unsigned long checksum; /* written by main, read by jobs */
} request;

static atomic_ulong requests_freed;

static void request_free(void *v)
{
    request *r = v;
    r->n = 0; /* the destroying thread writes it: ordered after every reader */
    free(r);
    atomic_fetch_add(&requests_freed, 1);
}

static request *new_request(unsigned long n)
{
    request *r = malloc(sizeof(*r));
    if (r == NULL)
        exit(1);
    snprintf(r->id, sizeof(r->id), "req-%lu", n);
    r->n = n;
    r->checksum = n * 31 + 7;
    return r;
}

static cx_var *req_var;   /* owned: request * */
static cx_var *count_var; /* owned: unsigned long * (the counter), freed */

static void count_free(void *v) { free(v); }

/* ================================================================ jobs */

typedef struct result {
    unsigned long n;
    char id[32];
    bool ok;
} result;

/* Reads the request in the job's context, writes a result (user memory). */
static void *read_request_job(void *arg)
{
    result *res = arg;
    void *v = NULL;
    if (cx_var_get(req_var, &v) != 0)
        return NULL;
    const request *r = v;
    res->n = r->n;
    memcpy(res->id, r->id, sizeof(res->id));
    res->ok = r->checksum == r->n * 31 + 7;
    return res;
}

/* count_var = old + 1 in the current context. */
static void *bump(void *arg)
{
    (void)arg;
    void *v = NULL;
    unsigned long n = 0;
    if (cx_var_get(count_var, &v) == 0)
        n = *(unsigned long *)v;
    unsigned long *nv = malloc(sizeof(*nv));
    if (nv == NULL)
        exit(1);
    *nv = n + 1;
    if (cx_var_set(count_var, nv, NULL) != 0)
        free(nv);
    return NULL;
}

static unsigned long count_in(cx_context *ctx)
{
    void *v = NULL;
    return cx_context_get(ctx, count_var, &v) == 0 ? *(unsigned long *)v : 0;
}

/* ================================================================ pool */

static void pool_submit_and_results(cx_pool *pool)
{
    unsigned n = cx_test_scaled(200);
    result *res = calloc(n, sizeof(*res));
    cx_future **f = calloc(n, sizeof(*f));
    if (res == NULL || f == NULL)
        exit(1);
    unsigned long freed_before = atomic_load(&requests_freed);
    for (unsigned i = 0; i < n; i++) {
        cx_token *tok = NULL;
        CHECK(cx_var_set(req_var, new_request(i), &tok) == 0);
        CHECK(cx_pool_submit(pool, read_request_job, &res[i], &f[i]) == 0);
        /* Main's context lets go: the job's snapshot may be the last
         * holder, and then the worker frees what main wrote. */
        CHECK(cx_var_reset(req_var, tok) == 0);
        cx_token_release(tok);
    }
    for (unsigned i = 0; i < n; i++) {
        void *r = NULL;
        CHECK(cx_future_result(f[i], &r) == 0);
        CHECK(r == &res[i]);
        CHECK(res[i].ok && res[i].n == i);
        cx_future_release(f[i]);
    }
    CHECK(atomic_load(&requests_freed) - freed_before == n);
    free(res);
    free(f);
}

static void pool_submit_in(cx_pool *pool)
{
    cx_context *ctx = cx_context_new();
    if (ctx == NULL)
        exit(1);
    unsigned n = cx_test_scaled(200);
    unsigned long ran = 0;
    /* One at a time, each waited for: the counter goes from job to job. */
    for (unsigned i = 0; i < n; i++) {
        cx_future *f = NULL;
        CHECK(cx_pool_submit_in(pool, ctx, bump, NULL, &f) == 0);
        if (cx_future_result(f, NULL) == 0)
            ran++;
        cx_future_release(f);
    }
    CHECK(ran == n);
    /* In bursts: jobs into one context may meet (version 1 completes the
     * later ones with CX_EBUSY; strands run them in turn). */
    cx_future *fs[8];
    for (unsigned round = 0; round < n / 8 + 1; round++) {
        for (unsigned i = 0; i < 8; i++)
            CHECK(cx_pool_submit_in(pool, ctx, bump, NULL, &fs[i]) == 0);
        for (unsigned i = 0; i < 8; i++) {
            int rc = cx_future_result(fs[i], NULL);
            CHECK(rc == 0 || rc == CX_EBUSY);
            if (rc == 0)
                ran++;
            cx_future_release(fs[i]);
        }
    }
    CHECK(count_in(ctx) == ran);
    cx_context_release(ctx);
}

/* Cancels of queued jobs: both workers are held by blockers, so the
 * targets wait in the queue; main cancels some, a user thread others. The
 * canceller releases the job's snapshot, the last holder of a request
 * main wrote. */
typedef struct blockers {
    cx_event running, go;
} blockers;

static void *blocker_job(void *arg)
{
    blockers *b = arg;
    cx_event_post(&b->running);
    (void)cx_event_wait(&b->go, 1);
    return NULL;
}

static void *never_job(void *arg)
{
    (void)arg;
    return NULL;
}

typedef struct cancel_arg {
    cx_future **f;
    unsigned n;
    int bad;
} cancel_arg;

static void *cancel_thread(void *p)
{
    cancel_arg *a = p;
    for (unsigned i = 0; i < a->n; i++)
        if (cx_future_cancel(a->f[i]) != 0)
            a->bad++;
    return NULL;
}

static void pool_cancel(cx_pool *pool, unsigned workers)
{
    blockers b;
    cx_event_init(&b.running);
    cx_event_init(&b.go);
    cx_future *bf[8];
    for (unsigned i = 0; i < workers; i++)
        CHECK(cx_pool_submit(pool, blocker_job, &b, &bf[i]) == 0);
    CHECK(cx_event_wait(&b.running, workers));
    enum { TARGETS = 6 };
    cx_future *f[TARGETS];
    unsigned long freed_before = atomic_load(&requests_freed);
    for (unsigned i = 0; i < TARGETS; i++) {
        cx_token *tok = NULL;
        CHECK(cx_var_set(req_var, new_request(1000 + i), &tok) == 0);
        CHECK(cx_pool_submit(pool, never_job, NULL, &f[i]) == 0);
        CHECK(cx_var_reset(req_var, tok) == 0);
        cx_token_release(tok);
    }
    /* Half by a user thread, half here. */
    cancel_arg a = {.f = f, .n = TARGETS / 2};
    pthread_t t;
    pthread_create(&t, NULL, cancel_thread, &a);
    for (unsigned i = TARGETS / 2; i < TARGETS; i++)
        CHECK(cx_future_cancel(f[i]) == 0);
    pthread_join(t, NULL);
    CHECK(a.bad == 0);
    CHECK(atomic_load(&requests_freed) - freed_before == TARGETS);
    for (unsigned i = 0; i < TARGETS; i++) {
        CHECK(cx_future_result(f[i], NULL) == CX_ECANCELED);
        cx_future_release(f[i]);
    }
    cx_event_post(&b.go);
    for (unsigned i = 0; i < workers; i++) {
        CHECK(cx_future_result(bf[i], NULL) == 0);
        cx_future_release(bf[i]);
    }
    cx_event_destroy(&b.running);
    cx_event_destroy(&b.go);
}

/* ======================================================= thread_create */

typedef struct child {
    unsigned long seen_n;
    bool ok;
} child;

static void *child_thread(void *p)
{
    child *c = p;
    void *v = NULL;
    if (cx_var_get(req_var, &v) == 0) {
        const request *r = v;
        c->seen_n = r->n;
        c->ok = r->checksum == r->n * 31 + 7;
    }
    /* Its own value, in its own copy: destroyed when the thread ends. */
    if (cx_var_set(req_var, new_request(2000), NULL) != 0)
        c->ok = false;
    return NULL;
}

static void threads_created_in_a_copy(void)
{
    cx_token *tok = NULL;
    CHECK(cx_var_set(req_var, new_request(77), &tok) == 0);
    unsigned long freed_before = atomic_load(&requests_freed);
    child c[3];
    pthread_t t[3];
    memset(c, 0, sizeof(c));
    for (unsigned i = 0; i < 3; i++)
        CHECK(cx_thread_create(&t[i], NULL, child_thread, &c[i]) == 0);
    for (unsigned i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CHECK(c[i].ok && c[i].seen_n == 77);
    }
    CHECK(atomic_load(&requests_freed) - freed_before == 3);
    CHECK(cx_var_reset(req_var, tok) == 0); /* and 77 goes now */
    cx_token_release(tok);
    CHECK(atomic_load(&requests_freed) - freed_before == 4);
}

/* ==================================================== context handoff */

typedef struct spinner {
    cx_context *ctx;
    unsigned n;
    int errors;
} spinner;

static void *spin_thread(void *p)
{
    spinner *s = p;
    for (unsigned done = 0; done < s->n;) {
        int rc = cx_context_run(s->ctx, bump, NULL, NULL);
        if (rc == 0) {
            done++;
        } else if (rc == CX_EBUSY) {
            sched_yield();
        } else {
            s->errors++;
            break;
        }
    }
    return NULL;
}

static void context_handed_between_threads(void)
{
    cx_context *ctx = cx_context_new();
    if (ctx == NULL)
        exit(1);
    spinner s[3];
    pthread_t t[3];
    for (unsigned i = 0; i < 3; i++) {
        s[i] = (spinner){.ctx = ctx, .n = cx_test_scaled(500)};
        pthread_create(&t[i], NULL, spin_thread, &s[i]);
    }
    for (unsigned i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CHECK(s[i].errors == 0);
    }
    CHECK(count_in(ctx) == 3ul * cx_test_scaled(500));
    /* And once more through cx_thread_create_in. */
    pthread_t t2;
    CHECK(cx_thread_create_in(&t2, NULL, ctx, bump, NULL) == 0);
    pthread_join(t2, NULL);
    CHECK(count_in(ctx) == 3ul * cx_test_scaled(500) + 1);
    cx_context_release(ctx);
}

/* ================================================================ main */

int main(void)
{
    cx_watchdog(600);
    cx_var_opts ro = {.destroy = request_free};
    cx_var_opts co = {.destroy = count_free};
    if (cx_var_new(&req_var, "request", &ro) != 0 || cx_var_new(&count_var, "count", &co) != 0)
        return 1;
    enum { WORKERS = 2 };
    cx_pool *pool = NULL;
    cx_pool_opts po = {.threads = WORKERS, .queue_size = 32};
    if (cx_pool_new(&pool, &po) != 0)
        return 1;

    pool_submit_and_results(pool);
    pool_submit_in(pool);
    pool_cancel(pool, WORKERS);
    threads_created_in_a_copy();
    context_handed_between_threads();

    cx_pool_free(pool);
    cx_var_release(req_var);
    cx_var_release(count_var);
    printf("tsan_user: %s\n", failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
