/* future.h - a job and its future are one object (pool/future.c).
 *
 * States (the `state` word, changed only by atomic operations):
 *
 *     QUEUED --claim (worker)---------> RUNNING --finish--> DONE
 *        \---cancel (caller/shutdown)--> CANCELLING -------> CANCELLED
 *
 * Exactly one compare-and-swap leaves QUEUED, so a job either runs once or
 * never. DONE and CANCELLED are final ("complete"); the step in between
 * (RUNNING, CANCELLING) is where the winner releases the job's context, so
 * that a completed future never holds a context any more (destroy
 * callbacks of its values have run before any waiter returns).
 *
 * Ownership:
 *   - References: one for the pool (taken at submit, dropped by whoever
 *     takes the job off the queue once it is finished with it) and one for
 *     the caller when it asked for a handle (dropped by cx_future_release).
 *   - ctx (the context the job runs in) is owned by the job while QUEUED;
 *     the thread whose compare-and-swap leaves QUEUED takes it over: the
 *     worker releases it after running the job, a canceller at once. It is
 *     NULL once released, and always before the future completes. For
 *     cx_pool_submit and cx_pool_submit_in(NULL) it is `snapshot`, a
 *     context embedded in the job (submit's capture leaves CX_VAR_LOCAL
 *     variables out): its release tears it down, the job's own free
 *     returns the memory. It has a lock, unlike other private copies:
 *     cx_pool_inspect copies it while the job runs (inspect.c).
 *   - status/result are written by the worker before DONE is published and
 *     read only after DONE is seen.
 */
#ifndef CX_POOL_FUTURE_H
#define CX_POOL_FUTURE_H

#include <pthread.h>
#include <stdbool.h>

#include "refcount.h"
#include "alloc.h"
#include "context.h"
#include "cxpool.h"

enum {
    CX__F_QUEUED,
    CX__F_RUNNING,
    CX__F_DONE,
    CX__F_CANCELLING, /* cancelled; its context is being released */
    CX__F_CANCELLED
};

struct cx_future {
    cx__ref ref;
    unsigned int state;   /* CX__F_* (atomic) */
    unsigned int waiters; /* threads inside the slow path of wait (atomic) */
    unsigned int gen;     /* fork generation of the pool (forkgen.h) */
    bool sync;            /* mu and cv are initialised (a handle exists) */
    int status;           /* 0 or CX_EBUSY; valid once DONE */
    void *(*fn)(void *);
    void *arg;
    cx_context *ctx;      /* see Ownership above; &snapshot or the caller's */
    cx_context snapshot;  /* the job's own context when it is not a given
                             one: submit's copy, submit_in(NULL)'s empty */
    void *result;         /* fn's return value; valid once DONE */
    cx_pool *pool;        /* borrowed: the pool it was submitted to */
    cx_future *next;      /* link in a strand's list or a pool's ready list
                             (owned by whichever list holds the job) */
    cx_context *strand_ctx; /* submit_in jobs: a reference to ctx held until
                               the job has handed its strand on (strand.c) */
    pthread_mutex_t mu;   /* with cv: sleeping waiters only; the fast */
    pthread_cond_t cv;    /* paths never lock (cv uses CLOCK_MONOTONIC) */
};

/* A QUEUED job that will run fn(arg) in ctx. ctx is consumed on success
 * (the job owns it) and left to the caller on failure. With handle, the
 * job starts with two references (pool + caller) and can be waited on;
 * without, one (pool: fire and forget). New, or NULL (CX_ENOMEM). */
/* Where a job runs: the caller's context, or one embedded in the job. */
enum cx__job_ctx { CX__JOB_GIVEN, CX__JOB_SNAPSHOT, CX__JOB_EMPTY };
CX__HIDDEN cx_future *cx__future_new(void *(*fn)(void *), void *arg, cx_context *ctx,
                                     enum cx__job_ctx kind,
                                     bool handle, unsigned int gen);

/* QUEUED -> RUNNING. True: the caller runs the job and now owns f->ctx.
 * False: it was cancelled (its context is already released). */
CX__HIDDEN bool cx__future_claim(cx_future *f);

/* RUNNING -> DONE with status and result, by the worker that claimed it,
 * after it released f->ctx. Wakes every waiter. f stays borrowed. */
CX__HIDDEN void cx__future_finish(cx_future *f, int status, void *result);

/* QUEUED -> CANCELLED; releases the job's context. True if this call
 * cancelled it, false if it had already left QUEUED. wake = false only in a
 * fork child for a future of the parent (its waiters are gone and its
 * mutex may be held forever). f stays borrowed. */
CX__HIDDEN bool cx__future_cancel_queued(cx_future *f, bool wake);

/* Drops one reference (the pool's or the caller's); the last one frees. */
CX__HIDDEN void cx__future_unref(cx_future *f);

#endif
