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

CX_EXTERN int cx_pool_new(cx_pool **out, const cx_pool_opts *opts);
CX_EXTERN int cx_pool_submit(cx_pool *p, void *(*fn)(void *), void *arg,
                             cx_future **fut);
CX_EXTERN int cx_pool_try_submit(cx_pool *p, void *(*fn)(void *), void *arg,
                                 cx_future **fut);
CX_EXTERN int cx_pool_submit_in(cx_pool *p, cx_context *ctx,
                                void *(*fn)(void *), void *arg, cx_future **fut);
CX_EXTERN int cx_pool_shutdown(cx_pool *p, bool cancel_pending);
CX_EXTERN void cx_pool_free(cx_pool *p);

CX_EXTERN int cx_future_wait(cx_future *f, const struct timespec *deadline);
CX_EXTERN int cx_future_result(cx_future *f, void **result);
CX_EXTERN int cx_future_cancel(cx_future *f);
CX_EXTERN void cx_future_release(cx_future *f);

#ifdef __cplusplus
}
#endif
#endif /* CXPOOL_H */
