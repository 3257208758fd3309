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
 *     The last one frees the job; when that is a worker of the job's pool,
 *     the memory may stay with the worker for a later submit to the pool
 *     (pool.c, "Job memory").
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
 *   - scope (SPEC 5.3): the scope the job was submitted under, checked when
 *     the job is taken (cancelled or past its deadline: it completes with
 *     that status without running). Borrowed from the job's own snapshot
 *     (SNAPSHOT: the snapshot's binding keeps it alive, and the check comes
 *     before the snapshot is released), an own reference for a given
 *     context (GIVEN: the context's binding may change meanwhile), NULL
 *     when none was bound (the check then costs one compare) or EMPTY.
 *     Dropped (set to NULL) together with ctx.
 *   - listeners (under mu): notified once the future is complete. A
 *     plain one (deferred false) is called under mu and only wakes a
 *     sleeper (wait_any: it bumps that wait's own event count); a
 *     deferred one is detached under mu and called after it is released,
 *     and may run anything (on_done, a group's count). Each registered
 *     listener counts in `waiters`, so that the completer takes the lock.
 *   - ec: where waiters of this future sleep (sleep.h); see future.c for
 *     the protocol. mu guards the listeners only: nobody sleeps holding
 *     it or waiting for it to be signalled.
 *
 * No self-deadlock (SPEC 5.3): a worker of the pool that waits on a
 * future of the same pool still QUEUED claims it itself (the one
 * compare-and-swap leaving QUEUED) and runs it inline, in the job's own
 * context; the worker that later takes it off the queue loses the claim
 * and drops it, as it drops a cancelled one. A submit_in job (a given
 * context) goes through its strand instead (strand.c,
 * cx__strand_run_inline): it, and the jobs ahead of it in its strand, run
 * inline when its context is free.
 */
#ifndef CX_POOL_FUTURE_H
#define CX_POOL_FUTURE_H

#include <pthread.h>
#include <stdbool.h>

#include "annotate.h"
#include "refcount.h"
#include "alloc.h"
#include "context.h"
#include "cxpool.h"
#include "scope.h"
#include "sleep.h"

enum {
    CX__F_QUEUED,
    CX__F_RUNNING,
    CX__F_DONE,
    CX__F_CANCELLING, /* cancelled; its context is being released */
    CX__F_CANCELLED
};

struct cx__listener {
    struct cx__listener *next, *prev;
    void (*fire)(struct cx__listener *l, cx_future *f); /* f borrowed, complete */
    bool deferred; /* see Ownership: listeners */
    bool linked;   /* under mu */
};

struct cx_future {
    cx__ref ref;
    unsigned int state;   /* CX__F_* (atomic) */
    unsigned int waiters; /* sleepers in wait_slow plus registered
                             listeners (atomic; see future.c) */
    unsigned int gen;     /* fork generation of the pool (forkgen.h) */
    bool sync;            /* mu and ec are initialised (a handle exists) */
    int status;           /* 0 or CX_EBUSY; valid once DONE */
    void *(*fn)(void *);
    void *arg;
    cx_context *ctx;      /* see Ownership above; &snapshot or the caller's */
    cx_context snapshot;  /* the job's own context when it is not a given
                             one: submit's copy, submit_in(NULL)'s empty */
    void *result;         /* fn's return value; valid once DONE */
    cx_pool *pool;        /* borrowed: the pool it was submitted to (it
                             outlives its jobs) */
    cx_future *next;      /* link in a strand's list or a pool's ready list
                             (owned by whichever list holds the job) */
    cx_context *strand_ctx; /* submit_in jobs: a reference to ctx held until
                               the job has handed its strand on (strand.c) */
    struct cx__strand *strand; /* submit_in jobs: a reference to ctx's strand,
                                  held until the job is freed */
    cx_scope *scope;      /* see Ownership: scope */
    unsigned char kind;   /* enum cx__job_ctx */
    struct cx__listener *listeners; /* under mu */
    pthread_mutex_t mu;   /* guards listeners; the fast paths never lock */
    /* Bumped once the state is final (when `waiters` is not 0) and by a
     * scope cancel's wake-up. Only ck's atomics touch it: hidden from
     * helgrind/DRD while the future exists (annotate.h). */
    struct ck_ec32 ec;
};

/* Where a job runs: the caller's context, or one embedded in the job. */
enum cx__job_ctx { CX__JOB_GIVEN, CX__JOB_SNAPSHOT, CX__JOB_EMPTY };
/* A job alone: no handle (fire and forget) and no strand. Once queued,
 * such a job is reached only through the pool's reference, by the one
 * thread that took it off the queue (no waiter, listener, group, strand
 * or inline run can find it), so claiming it, completing it and dropping
 * that last reference need no locked instruction (future.c). The queue's
 * handoff orders the submitter's writes before the taker's. */
static inline bool cx__future_alone(const cx_future *f) { return !f->sync && f->strand == NULL; }

/* Before the memory of a job whose last reference is gone is freed or
 * reused: helgrind and DRD forget its handoff history (two client
 * requests that cost ~25 instructions natively, so skipped there). */
static inline void cx__future_forget(cx_future *f)
{
    if (cx__detector == CX__DET_VALGRIND) {
        CX__FORGET(&f->state, sizeof(f->state));
        CX__FORGET(f, sizeof(*f));
    }
}

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

/* ---------------------------------------------------- SPEC 5.3 helpers */

/* Runs a job the caller claimed (cx__future_claim returned true): checks
 * its scope (CX_ECANCELED / CX_ETIMEDOUT: fn is not called), runs fn in
 * its context, releases the context, publishes DONE. f borrowed. */
CX__HIDDEN void cx__future_run_claimed(cx_future *f);
/* The end of a claimed job that ran (or was skipped: status) outside
 * cx__future_run_claimed (a strand job): releases its context and scope,
 * then completes it with status and result. */
CX__HIDDEN void cx__future_end(cx_future *f, int status, void *result);
/* True if the calling thread is a worker of f's pool and f's job has a
 * private context: a wait on it may run it inline (claim, run_claimed). */
CX__HIDDEN bool cx__future_inline_ok(const cx_future *f);
/* Runs f, still queued, in the calling worker of its pool (a strand job
 * only when its turn has come and its context is free). True if it ran. */
CX__HIDDEN bool cx__future_run_inline(cx_future *f);
/* Registers l on f (a future with a handle). True: l->fire will be
 * called exactly once, by whoever completes f. False: f is complete
 * already, nothing registered. f and l borrowed. */
CX__HIDDEN bool cx__future_listen(cx_future *f, struct cx__listener *l);
/* Removes a plain (not deferred) listener if still registered; once it
 * returns, l->fire is not running and will not run. */
CX__HIDDEN void cx__future_unlisten(cx_future *f, struct cx__listener *l);
/* The pool whose worker the calling thread is (pool.c), or NULL. */
CX__HIDDEN cx_pool *cx__pool_self(void);
/* Offers the memory of a dead job of p: true if the calling thread is a
 * worker of p and kept it (it is no longer the caller's), false if the
 * caller must free it. */
CX__HIDDEN bool cx__pool_job_keep(cx_pool *p, void *mem);

#endif
