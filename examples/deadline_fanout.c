/*
 * deadline_fanout.c - a request handler with a 200 ms deadline fans out
 * to 8 lookups; one of them hangs. The deadline, carried in the context,
 * stops everything at once.
 *
 * handle_request() runs under a scope whose deadline is cx_deadline_in(200)
 * (CX_WITH_SCOPE) and starts a task group of 8 lookups on a pool of 2
 * workers. Nothing passes the deadline around: every lookup inherits it
 * with the rest of the context.
 *   - lookup 0 asks a backend that never answers: it blocks in
 *     cx_future_wait on the backend's future, a library wait that returns
 *     CX_ETIMEDOUT as soon as the deadline of its scope passes;
 *   - lookups 1..7 each do 60 ms of work in 5 ms slices, checking
 *     cx_check() between slices: those running at the deadline stop, and
 *     those still queued then complete without running.
 * The handler's cx_group_wait returns CX_ETIMEDOUT at the deadline, and
 * cx_group_release cancels what has not run and waits for what runs.
 * (Lookup 0's CX_ETIMEDOUT is the group's first error, which cancels the
 * group at once: a lookup that looks after that sees CX_ECANCELED, one
 * that looked between the deadline and the cancel sees CX_ETIMEDOUT.)
 *
 * Checks (exit status 1 if one fails): the handler returns CX_ETIMEDOUT
 * after 150..1000 ms; every lookup either answered, stopped or never ran;
 * the hung lookup's wait returned early; the pools then shut down (no
 * thread is left blocked: cx_pool_free joins every worker).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cxpool.h>

#define N_LOOKUPS 8
#define SLICES 12 /* x 5 ms = 60 ms of work per lookup */

static cx_pool *workers, *backend;
static cx_var *request_id;

/* The backend that never answers, until main unplugs it at the end. */
static pthread_mutex_t plug_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t plug_cv = PTHREAD_COND_INITIALIZER;
static int unplugged;

static void *backend_call(void *arg)
{
    pthread_mutex_lock(&plug_mu);
    while (!unplugged)
        pthread_cond_wait(&plug_cv, &plug_mu);
    pthread_mutex_unlock(&plug_mu);
    return arg;
}

enum { NOT_RUN, ANSWERED, STOPPED };
static atomic_int outcome[N_LOOKUPS];
static int hung_rc = 1;

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static int lookup(void *arg)
{
    int i = (int)(intptr_t)arg;
    const char *req = cx_var_get_or(request_id, "?");
    if (i == 0) {
        /* The backend call inherits our scope too; we wait for it with
         * no deadline of our own: the context's applies. */
        cx_future *f = NULL;
        int rc = cx_pool_submit(backend, backend_call, NULL, &f);
        if (rc == 0) {
            rc = cx_future_wait(f, NULL);
            cx_future_release(f);
        }
        hung_rc = rc;
        printf("  lookup 0 (%s): backend wait ended: %s\n", req, cx_err_name(rc));
        atomic_store(&outcome[i], STOPPED);
        return rc;
    }
    for (int s = 0; s < SLICES; s++) {
        int rc = cx_check();
        if (rc != 0) {
            printf("  lookup %d (%s): stopped after %d ms of work: %s\n", i, req, s * 5,
                   cx_err_name(rc));
            atomic_store(&outcome[i], STOPPED);
            return rc;
        }
        struct timespec slice = {0, 5 * 1000000L};
        nanosleep(&slice, NULL);
    }
    printf("  lookup %d (%s): answered\n", i, req);
    atomic_store(&outcome[i], ANSWERED);
    return 0;
}

/* The handler: no deadline argument anywhere below this line. */
static int handle_request(void)
{
    cx_group *g = NULL;
    int rc = cx_group_new(&g, workers);
    if (rc != 0)
        return rc;
    for (int i = 0; i < N_LOOKUPS && rc == 0; i++)
        rc = cx_group_go(g, lookup, (void *)(intptr_t)i);
    if (rc == 0)
        rc = cx_group_wait(g, NULL); /* CX_ETIMEDOUT at the scope's deadline */
    cx_group_release(g);             /* cancels the rest, waits for the running */
    return rc;
}

int main(void)
{
    cx_pool_opts two = {.threads = 2, .queue_size = 0}, one = {.threads = 1, .queue_size = 0};
    if (cx_pool_new(&workers, &two) != 0 || cx_pool_new(&backend, &one) != 0 ||
        cx_var_new(&request_id, "request_id", NULL) != 0)
        return 1;

    struct timespec deadline = cx_deadline_in(200), t0;
    cx_scope *scope = NULL;
    if (cx_scope_new(&scope, &deadline) != 0)
        return 1;
    int rc = 1;
    long ms = 0;
    printf("request req-7 with a 200 ms deadline, 8 lookups on 2 workers\n");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CX_WITH(request_id, "req-7")
    CX_WITH_SCOPE(scope)
    {
        rc = handle_request();
        ms = ms_since(&t0);
    }
    cx_scope_release(scope);

    int answered = 0, stopped = 0, not_run = 0;
    for (int i = 0; i < N_LOOKUPS; i++) {
        int o = atomic_load(&outcome[i]);
        answered += o == ANSWERED;
        stopped += o == STOPPED;
        not_run += o == NOT_RUN;
    }
    printf("handler returned %s after %ld ms: %d answered, %d stopped, %d never ran\n",
           cx_err_name(rc), ms, answered, stopped, not_run);

    /* Unplug the backend so that its worker can finish, then shut down. */
    pthread_mutex_lock(&plug_mu);
    unplugged = 1;
    pthread_cond_broadcast(&plug_cv);
    pthread_mutex_unlock(&plug_mu);
    cx_pool_free(workers);
    cx_pool_free(backend);
    cx_var_release(request_id);

    /* The hung lookup's wait ends at the deadline (CX_ETIMEDOUT), or just
     * before, when the handler's wait, ending at the same deadline, got
     * there first and its cx_group_release cancelled the group. */
    int ok = rc == CX_ETIMEDOUT && ms >= 150 && ms <= 1000 &&
             (hung_rc == CX_ETIMEDOUT || hung_rc == CX_ECANCELED) &&
             answered + stopped + not_run == N_LOOKUPS && answered < N_LOOKUPS - 1;
    printf("%s\n", ok ? "deadline_fanout: ok (deadline propagated, nothing left blocked)"
                      : "deadline_fanout: FAILED");
    return ok ? 0 : 1;
}
