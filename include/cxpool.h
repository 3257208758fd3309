/*
 * cxpool.h - a thread pool whose jobs run in their submitter's context.
 *
 * cx_pool_submit() snapshots cx_copy_context() at submit time; a worker runs
 * the job inside that snapshot with cx_context_run(), so a request id or a
 * deadline set before submit is what the job sees, and what the job sets
 * stays in its snapshot. Between jobs a worker is back in its own empty
 * context. Idle workers sleep; an idle pool uses no CPU.
 *
 * Copyright (c) 2026 The cxvars authors. BSD-2-Clause, see LICENSE.
 */
#ifndef CXPOOL_H
#define CXPOOL_H

#include <stdbool.h>
#include <time.h>

#include "cxvars.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cx_pool cx_pool;
typedef struct cx_future cx_future;

typedef struct cx_pool_opts {
    unsigned threads;    /* 0 = number of online CPUs */
    unsigned queue_size; /* exactly this many jobs can wait (running ones not
                            counted); then submit blocks and try_submit
                            returns CX_EAGAIN; 0 = a sensible default */
} cx_pool_opts;

/* Limits: threads 0 = the number of online CPUs (at most 1024); 1..1024 as
 * given, more is CX_EINVAL. queue_size 0 = 4096; 1..16777216 (1 << 24), more
 * is CX_EINVAL. A job cancelled while queued keeps its place until a worker
 * discards it.
 *
 * Errors common to every call: NULL pool, fn or out is CX_EINVAL; out of
 * memory is CX_ENOMEM with nothing leaked and nothing changed; after
 * shutdown, submits get CX_ESHUTDOWN. In a fork() child, a pool created
 * before the fork answers CX_EFORK (submit, try_submit, submit_in,
 * shutdown; wait/result/cancel of its unfinished futures too) instead of
 * hanging, and cx_pool_free of it frees what it can without joining.
 *
 * Waiting inside jobs: a wait (future, wait_any, group) in a job of pool P
 * on work of P still queued runs that work inline in the waiting worker,
 * in the work's own context, so waiting on jobs one submitted completes
 * on a pool of any size (a submit_in job too, with the jobs ahead of it in
 * its strand, while its context is not entered elsewhere). A
 * blocking cx_pool_submit from a job into its own full pool still waits
 * for a place: use cx_pool_try_submit there.
 *
 * Scopes (cxvars.h): a job whose scope (current at submit, or bound in
 * submit_in's context) is cancelled or past its deadline when a worker
 * takes it completes with CX_ECANCELED / CX_ETIMEDOUT without running.
 * Every blocking call below returns CX_ECANCELED when the caller's current
 * scope is cancelled and CX_ETIMEDOUT at its deadline, whatever deadline
 * argument it was given. Workers start with every signal blocked. */

/* Starts the workers. *out receives the pool (free it with cx_pool_free).
 * CX_EAGAIN if a thread cannot be created. */
CX_EXTERN int cx_pool_new(cx_pool **out, const cx_pool_opts *opts);

/* Queues fn(arg) to run inside a snapshot of the caller's current context
 * taken now (cx_copy_context, O(1)), less its CX_VAR_LOCAL variables; the
 * job's writes stay in the snapshot.
 * Blocks while the queue is full. *fut (if fut is not NULL) receives a new
 * reference (cx_future_release); fut == NULL is fire and forget. */
CX_EXTERN int cx_pool_submit(cx_pool *p, void *(*fn)(void *), void *arg,
                             cx_future **fut);
/* As cx_pool_submit, but CX_EAGAIN instead of blocking on a full queue. */
CX_EXTERN int cx_pool_try_submit(cx_pool *p, void *(*fn)(void *), void *arg,
                                 cx_future **fut);
/* Runs fn(arg) in ctx itself (the pool keeps its own reference until the
 * job has run), so its writes are visible in ctx afterwards. Jobs into one
 * ctx form a strand: they run one at a time, in submit order, each seeing
 * the previous one's writes, never failing with CX_EBUSY because of each
 * other (jobs from several pools into one ctx too). If ctx is entered
 * outside the pool (cx_context_enter, a run, a thread) when a job's turn
 * comes, the job waits, without holding a worker, until ctx is left; a
 * draining pool waits for it. ctx == NULL: a fresh empty context. */
CX_EXTERN int cx_pool_submit_in(cx_pool *p, cx_context *ctx,
                                void *(*fn)(void *), void *arg, cx_future **fut);
/* Refuses new jobs (CX_ESHUTDOWN; while it drains without cancel_pending,
 * the pool's own running jobs may still submit, and their nested jobs run
 * before the drain ends), waits for running jobs and, unless
 * cancel_pending, for queued ones; cancelled jobs complete with
 * CX_ECANCELED and their contexts are released. Idempotent; a later call
 * with cancel_pending cancels what an earlier call is still draining.
 * CX_EBUSY (nothing changed) when called from one of the pool's own jobs. */
CX_EXTERN int cx_pool_shutdown(cx_pool *p, bool cancel_pending);
/* cx_pool_shutdown(p, false), joins the workers, frees the pool. NULL is a
 * no-op; from one of the pool's own jobs it is ignored (a caller bug). */
CX_EXTERN void cx_pool_free(cx_pool *p);

/* Waits until the job completed or the absolute CLOCK_MONOTONIC deadline
 * passed (NULL: forever): 0, CX_ETIMEDOUT, or CX_EINVAL for a bad timespec. */
CX_EXTERN int cx_future_wait(cx_future *f, const struct timespec *deadline);
/* Waits, then 0 and the job's return value in *result (if not NULL), or
 * the job's status: CX_ECANCELED (cancelled, or its scope was before it
 * ran), CX_ETIMEDOUT (its scope's deadline passed before it ran). When a
 * future completes, the pool has already released the
 * job's context, so its destroy callbacks have run. */
CX_EXTERN int cx_future_result(cx_future *f, void **result);
/* 0 if the job will never run (also if already cancelled): its context is
 * released and the future completes with CX_ECANCELED; CX_EBUSY if it is
 * running or done. */
CX_EXTERN int cx_future_cancel(cx_future *f);
/* Drops the caller's reference; NULL is a no-op. Must not be called while
 * another thread waits on f. */
CX_EXTERN void cx_future_release(cx_future *f);

/* Waits and returns the result in one call: as cx_future_result, or
 * CX_ETIMEDOUT at the absolute CLOCK_MONOTONIC deadline (NULL: none). */
CX_EXTERN int cx_future_result_until(cx_future *f, const struct timespec *deadline,
                                     void **result);
/* Waits until one of fs[0..n) is complete; *index receives the lowest
 * complete position. CX_ETIMEDOUT at the deadline (NULL: none);
 * CX_ENOMEM only for n > 8 (the listeners of fewer live on the stack). */
CX_EXTERN int cx_future_wait_any(cx_future *const *fs, size_t n,
                                 const struct timespec *deadline, size_t *index);
/* fn(f, arg) runs once when the job ends, however it ends, with f already
 * complete: at once in the caller if it already has; in the context that
 * was current when cx_future_on_done was called. */
CX_EXTERN int cx_future_on_done(cx_future *f, void (*fn)(cx_future *f, void *arg),
                                void *arg);

/* ------------------------------------------------------------------ groups */

/* errgroup: structured concurrency on a pool. */
typedef struct cx_group cx_group;
/* A group owning a child scope of the current scope; jobs run in pool
 * (borrowed: it must outlive the group). */
CX_EXTERN int cx_group_new(cx_group **out, cx_pool *pool);
/* Submits fn(arg) in a snapshot of the current context with the group's
 * scope current; jobs of g may call cx_group_go on g themselves (counted).
 * Once the group is cancelled, submits nothing and returns 0 (the job
 * counts as one that did not run). */
CX_EXTERN int cx_group_go(cx_group *g, int (*fn)(void *), void *arg);
/* Until every job of g (nested ones included) has ended: 0 or the first
 * non-zero fn return (which cancelled the group at once), else the status
 * of the first job that did not run; CX_ETIMEDOUT at the deadline (jobs
 * go on). In a worker of the group's pool, queued jobs of g run inline. */
CX_EXTERN int cx_group_wait(cx_group *g, const struct timespec *deadline);
CX_EXTERN int cx_group_cancel(cx_group *g);
/* Cancels what has not run, waits for what runs, frees g. Not from a job
 * of g. NULL is a no-op. */
CX_EXTERN void cx_group_release(cx_group *g);

/* ----------------------------------------------------------- introspection */

typedef struct cx_worker_info {
    unsigned index;          /* 0 .. threads-1 */
    bool busy;
    struct timespec started; /* CLOCK_MONOTONIC start of the current job:
                                not before its submit, at most one tick of
                                CLOCK_MONOTONIC_COARSE before its start */
    cx_context *ctx;         /* new reference: a copy of the context the job
                                runs in (NULL when idle); release it */
} cx_worker_info;
/* Calls fn once per worker, in index order, with what it does now; stops
 * at and returns the first non-zero. w->ctx (busy workers) is a new
 * reference to a consistent copy of the job's context, its own writes
 * included: fn releases it. Safe at any time from any thread; a worker
 * waits at most for the copy of its context. CX_EINVAL (NULL p or fn),
 * CX_EFORK, CX_ENOMEM (a copy failed: no call for that worker or later). */
CX_EXTERN int cx_pool_inspect(cx_pool *p, int (*fn)(const cx_worker_info *w, void *arg),
                              void *arg);
/* completed: jobs that ran; cancelled, timed_out (deadline passed),
 * failed_busy (always 0 since strands): jobs that did not; each job is
 * counted once, before its future completes. queued: waiting (a job
 * cancelled while queued until a worker takes it off); running: busy
 * workers. A snapshot of exact counters. */
typedef struct cx_pool_stats {
    unsigned long long submitted, completed, cancelled, timed_out, failed_busy;
    unsigned queued, running, threads;
} cx_pool_stats;
/* CX_EINVAL (NULL p or out), CX_EFORK. */
CX_EXTERN int cx_pool_stats_get(cx_pool *p, cx_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* CXPOOL_H */
