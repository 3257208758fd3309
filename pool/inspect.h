/* inspect.h - what a worker shows of itself to cx_pool_inspect and
 * cx_pool_stats_get (SPEC 5.4): the context of the job it runs, since
 * when, and its own counters (pool/inspect.c).
 *
 * The slot protocol (a Dekker handshake, so the worker never takes a lock
 * unless an inspector is reading its slot at that very moment):
 *   worker, job start:  started = ...; release; ctx = the job's context
 *   worker, job end:    exchange ctx with NULL (a locked operation, so a
 *                       full barrier); if peek is set, lock and unlock mu
 *                       (waits for that inspector's copy); only then may
 *                       the job's context be released
 *   inspector:          lock mu; peek = 1; full barrier; load ctx; if not
 *                       NULL, copy it (cx_context_copy) and read started;
 *                       peek = 0; unlock mu
 * Either the worker's exchange comes first in the total order of the two
 * barriers (the inspector loads NULL, or the next job's context, and never
 * touches the old one), or the inspector's peek store does (the worker
 * sees it and waits on mu, which the inspector holds until its copy is
 * made). So a worker waits at most for the copies of the inspectors
 * reading its slot right then, and only when it ends a job meanwhile.
 * The context must be safe to read from another thread while its runner
 * sets variables: a pool job's own context has a lock (future.c), a
 * submit_in context is one the user could already read from anywhere.
 *
 * Counters are written by the worker alone (atomic 64-bit stores of the
 * incremented value: no locked instruction) and summed by
 * cx_pool_stats_get with atomic loads.
 */
#ifndef CX_POOL_INSPECT_H
#define CX_POOL_INSPECT_H

#include <ck_pr.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "alloc.h"
#include "annotate.h"
#include "cxpool.h"

enum cx__pool_stat {
    CX__STAT_COMPLETED,   /* ran */
    CX__STAT_CANCELLED,   /* did not run: cancelled */
    CX__STAT_TIMED_OUT,   /* did not run: its deadline had passed */
    CX__STAT_FAILED_BUSY, /* did not run: CX_EBUSY (never, since strands) */
    CX__STAT_N
};

struct cx__wslot {
    cx_context *ctx;         /* atomic: the running job's context, NULL when
                                idle (borrowed from the job) */
    struct timespec started; /* the job's start (CLOCK_MONOTONIC); written
                                before ctx is published */
    unsigned int peek;       /* atomic: an inspector may be reading ctx */
    uint64_t stat[CX__STAT_N]; /* written by the worker only (atomic) */
    pthread_mutex_t mu;      /* serialises inspectors; the worker takes it
                                only to wait for one (see above) */
};

/* 0 or CX_ENOMEM. */
CX__HIDDEN int cx__wslot_init(struct cx__wslot *s);
CX__HIDDEN void cx__wslot_destroy(struct cx__wslot *s);

/* Worker: the job about to run in ctx (borrowed: alive until withdrawn). */
static inline void cx__wslot_publish(struct cx__wslot *s, cx_context *ctx,
                                     const struct timespec *started)
{
    s->started = *started;
    /* started (and the context's own initialisation) before ctx. */
    CX__HAPPENS_BEFORE(&s->ctx);
    ck_pr_fence_store();
    ck_pr_store_ptr(&s->ctx, ctx);
}

CX__HIDDEN void cx__wslot_wait(struct cx__wslot *s);

/* Worker: the job is over; when this returns, no inspector reads its
 * context any more and the worker may release it. */
static inline void cx__wslot_withdraw(struct cx__wslot *s)
{
    (void)ck_pr_fas_ptr(&s->ctx, NULL); /* locked: the barrier of the handshake */
    if (__builtin_expect(ck_pr_load_uint(&s->peek) != 0, 0))
        cx__wslot_wait(s);
    /* Pairs with an inspector's release before it cleared peek: its
     * reading of started happened before the next job's write of it. */
    CX__HAPPENS_AFTER(&s->peek);
}

/* Worker: one more job with this outcome. */
static inline void cx__wslot_count(struct cx__wslot *s, enum cx__pool_stat what)
{
    ck_pr_store_64(&s->stat[what], s->stat[what] + 1);
}

static inline uint64_t cx__wslot_counter(struct cx__wslot *s, enum cx__pool_stat what)
{
    return ck_pr_load_64(&s->stat[what]);
}

static inline bool cx__wslot_busy(struct cx__wslot *s) { return ck_pr_load_ptr(&s->ctx) != NULL; }

/* Inspector: fills w->busy, w->started and w->ctx (a new reference to a
 * copy, or NULL when idle). 0 or CX_ENOMEM (then w->ctx is NULL). */
CX__HIDDEN int cx__wslot_read(struct cx__wslot *s, cx_worker_info *w);

/* ----------------------------------------------- hooks for the pool's files */

/* A job about to run in the calling worker (a no-op in other threads):
 * publishes ctx (borrowed; alive until cx__pool_job_end) and the start
 * time in the worker's slot. Jobs may nest (a wait that runs queued work
 * inline): the mark restores the outer one. job: the job (its future),
 * which the worker may have just taken off the queue; its queue position
 * then lets the worker reuse its last precise clock reading (pool.c,
 * stamp); cx__pool_job_begin knows none and reads the clock. */
struct cx__job_mark {
    void *w;                      /* the worker, or NULL */
    cx_context *prev;             /* the outer job's context, or NULL */
    struct timespec prev_started;
};
CX__HIDDEN void cx__pool_job_begin_queued(struct cx__job_mark *m, cx_context *ctx,
                                          const void *job);
CX__HIDDEN void cx__pool_job_begin(struct cx__job_mark *m, cx_context *ctx);
/* The job is over: after this, no inspector reads its context. */
CX__HIDDEN void cx__pool_job_end(struct cx__job_mark *m);

/* One job of p ended with this outcome: counted in the calling worker's
 * own counter (no shared write), or in p's shared one from any other
 * thread. Call it before the job's future completes. */
CX__HIDDEN void cx__pool_count(cx_pool *p, enum cx__pool_stat what);

#endif
