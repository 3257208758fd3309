/* strand.h - jobs cx_pool_submit_in queues into one context run one at a
 * time, in submit order (pool/strand.c). The pool's side of the contract. */
#ifndef CX_POOL_STRAND_H
#define CX_POOL_STRAND_H

#include "future.h"

/* ctx's strand, created on first use; NULL on ENOMEM. Borrowed: it lives
 * as long as ctx (the caller holds a reference to ctx). */
CX__HIDDEN struct cx__strand *cx__strand_of(cx_context *ctx);

/* Another reference to s (a strand job's, dropped with cx__strand_free
 * when the job is freed). Returns s. */
CX__HIDDEN struct cx__strand *cx__strand_retain(struct cx__strand *s);

/* Runs the strand job f inline in the calling worker of f's pool, with the
 * jobs ahead of it in its strand first, as long as each is the strand's
 * current job, still queued, of the same pool, and the context is free.
 * True if f ran. */
CX__HIDDEN bool cx__strand_run_inline(cx_future *f);

/* Puts f (a job holding a queue place and f->strand_ctx) into its strand:
 * straight into its pool's queue if no job of the strand is active, else
 * behind the last one. */
CX__HIDDEN void cx__strand_enqueue(struct cx__strand *s, cx_future *f);

/* Runs or discards the strand job f, which a worker of f's pool took off
 * its queue or ready list (st: that worker's state). If f's context is
 * entered elsewhere, f is parked on it instead (the worker goes on with
 * other jobs) and handed back when the context is left: then the pool's
 * reference to f goes with it and this returns true. Otherwise (false) the
 * pool's reference stays the caller's. cancel: the pool cancels pending
 * jobs. */
CX__HIDDEN bool cx__strand_handle(cx__tstate *st, cx_future *f, bool cancel);

/* Provided by pool.c for the strand: push a job that holds a queue place
 * (waking a worker), and hand a parked job back to its pool. */
CX__HIDDEN void cx__pool_push(cx_pool *p, cx_future *f);
CX__HIDDEN void cx__pool_ready(cx_pool *p, cx_future *f);
/* A parked job is on its way back (or was not parked after all). */
CX__HIDDEN void cx__pool_parked(cx_pool *p, int delta);

#endif
