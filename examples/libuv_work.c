/*
 * libuv_work.c - libuv's thread pool (uv_queue_work) carrying the
 * submitter's context into the work callback and back to the after-work
 * callback on the loop thread.
 *
 * libuv runs the work callback on one of its pool threads and the
 * after-work callback on the loop's thread; neither knows anything of the
 * request the loop was serving when it queued the work. Bind at submit,
 * run the same callback in both places:
 *
 *     cx_bind(&job->cb, step, job, CX_BIND_SHARED);   // capture, at submit
 *     uv_queue_work(loop, &job->req, work_cb, after_cb);
 *     ...
 *     work_cb:  cx_callback_run(job->cb, NULL);        // pool thread
 *     after_cb: cx_callback_run(job->cb, NULL);        // loop thread
 *               cx_callback_release(job->cb);
 *
 * CX_BIND_SHARED makes both runs share one context: what the work step
 * sets (here: its result) the after-work step sees, and nothing of it
 * reaches the loop's own context. (With flags 0 each run would start
 * afresh from the capture.)
 *
 * Several loop threads (each with its own uv_loop_t, all sharing libuv's
 * one thread pool) each serve their own requests: the request is a heap
 * object held by a context variable and freed by the library. Every work
 * and after-work step checks it sees exactly its submitter's request.
 * Exit status 0 if all is right, 1 otherwise. CX_TEST_SCALE (percent)
 * sizes the run; at the default, 4 loops queue 2,000 jobs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cxvars.h>
#include <uv.h>

#define LOOPS 4

typedef struct request {
    unsigned long id;
} request;

static cx_var *current_request; /* request *, owned: freed by the library */
static cx_var *work_result;     /* plain word, set by the work step */
static unsigned per_loop;

static atomic_ulong works, afters, mismatches, requests_freed, failures;

static void free_request(void *p)
{
    free(p);
    atomic_fetch_add(&requests_freed, 1);
}

static unsigned long request_id_here(void)
{
    void *v = NULL;
    if (cx_var_get(current_request, &v) != 0 || v == NULL)
        return 0;
    return ((const request *)v)->id;
}

static void mismatch(const char *where, unsigned long expected, unsigned long seen)
{
    if (atomic_fetch_add(&mismatches, 1) < 5)
        fprintf(stderr, "libuv_work: %s for request %lu saw %lu\n", where, expected, seen);
}

typedef struct job {
    uv_work_t req;
    cx_callback *cb;
    unsigned long expected;
    bool after; /* which step the next run of cb is */
} job;

/* Both steps of a job, run in the job's one (shared) context. */
static void *step(void *p)
{
    job *j = p;
    unsigned long id = request_id_here();
    if (id != j->expected)
        mismatch(j->after ? "after-work" : "work", j->expected, id);
    if (!j->after) {
        /* The work: its result goes into the context. */
        if (cx_var_set(work_result, (void *)(uintptr_t)(id * 2), NULL) != 0)
            atomic_fetch_add(&failures, 1);
        atomic_fetch_add(&works, 1);
    } else {
        void *r = NULL;
        if (cx_var_get(work_result, &r) != 0 || (uintptr_t)r != j->expected * 2)
            mismatch("after-work result", j->expected * 2, (uintptr_t)r);
        atomic_fetch_add(&afters, 1);
    }
    return NULL;
}

static void work_cb(uv_work_t *req)
{
    job *j = req->data;
    j->after = false;
    if (cx_callback_run(j->cb, NULL) != 0)
        atomic_fetch_add(&failures, 1);
}

static void after_cb(uv_work_t *req, int status)
{
    job *j = req->data;
    j->after = true;
    if (status != 0 || cx_callback_run(j->cb, NULL) != 0)
        atomic_fetch_add(&failures, 1);
    /* Nothing of the job stays in the loop's own context. */
    void *r;
    if (request_id_here() != 0 || cx_var_get(work_result, &r) != CX_ELOOKUP)
        mismatch("loop context after the job", 0, request_id_here());
    cx_callback_release(j->cb);
    free(j);
}

/* Queues one job while serving request id (in the loop thread). */
static void submit(uv_loop_t *loop, unsigned long id)
{
    request *r = malloc(sizeof(*r));
    job *j = malloc(sizeof(*j));
    if (r == NULL || j == NULL) {
        free(r);
        free(j);
        atomic_fetch_add(&failures, 1);
        return;
    }
    r->id = j->expected = id;
    j->req.data = j;
    cx_token *tok;
    if (cx_var_set(current_request, r, &tok) != 0) {
        free(r); /* a failed set leaves r with us */
        free(j);
        atomic_fetch_add(&failures, 1);
        return;
    }
    if (cx_bind(&j->cb, step, j, CX_BIND_SHARED) != 0) {
        free(j);
        atomic_fetch_add(&failures, 1);
    } else if (uv_queue_work(loop, &j->req, work_cb, after_cb) != 0) {
        cx_callback_release(j->cb);
        free(j);
        atomic_fetch_add(&failures, 1);
    }
    if (cx_var_reset(current_request, tok) != 0)
        atomic_fetch_add(&failures, 1);
    cx_token_release(tok);
}

/* One loop per thread; initialised by main before the thread starts
 * (libuv's first uv_loop_init sets up process-wide state). */
static uv_loop_t loops[LOOPS];

static void *loop_thread(void *p)
{
    unsigned long n = (unsigned long)(uintptr_t)p;
    uv_loop_t *loop = &loops[n - 1];
    for (unsigned i = 0; i < per_loop; i++)
        submit(loop, n * 1000000 + i + 1);
    if (uv_run(loop, UV_RUN_DEFAULT) != 0)
        atomic_fetch_add(&failures, 1);
    return NULL;
}

static unsigned scaled(unsigned n, unsigned floor)
{
    const char *s = getenv("CX_TEST_SCALE");
    unsigned long pct = s != NULL ? strtoul(s, NULL, 10) : 100;
    unsigned long r = (unsigned long)n * pct / 100;
    return r < floor ? floor : (unsigned)r;
}

int main(void)
{
    per_loop = scaled(500, 25);
    cx_var_opts opts = {.destroy = free_request};
    if (cx_var_new(&current_request, "request", &opts) != 0 ||
        cx_var_new(&work_result, "work_result", NULL) != 0)
        return 1;
    pthread_t t[LOOPS];
    for (int i = 0; i < LOOPS; i++)
        if (uv_loop_init(&loops[i]) != 0)
            return 1;
    for (int i = 0; i < LOOPS; i++)
        if (pthread_create(&t[i], NULL, loop_thread, (void *)(uintptr_t)(i + 1)) != 0)
            return 1;
    for (int i = 0; i < LOOPS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < LOOPS; i++)
        if (uv_loop_close(&loops[i]) != 0)
            atomic_fetch_add(&failures, 1);
    cx_var_release(current_request);
    cx_var_release(work_result);

    unsigned long total = (unsigned long)LOOPS * per_loop;
    bool ok = atomic_load(&works) == total && atomic_load(&afters) == total &&
              atomic_load(&mismatches) == 0 && atomic_load(&requests_freed) == total &&
              atomic_load(&failures) == 0;
    printf("libuv_work: %lu jobs from %d loops: %lu work and %lu after-work steps, "
           "%lu mismatches, %lu requests freed, %lu failures: %s\n",
           total, LOOPS, atomic_load(&works), atomic_load(&afters), atomic_load(&mismatches),
           atomic_load(&requests_freed), atomic_load(&failures), ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
