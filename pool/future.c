/* future.c - futures: the state machine of future.h, waiting with a
 * deadline, result, cancel, release.
 *
 * Completion handoff: the completing thread writes status/result, then
 * CX__HAPPENS_BEFORE(&f->state), a release fence and an atomic exchange of
 * the final state; a reader loads the state, and on a final one issues an
 * acquire fence and CX__HAPPENS_AFTER(&f->state) before reading anything
 * else. Waiting never spins: a thread that finds the future incomplete
 * registers in `waiters` (a locked increment, under mu) and re-checks the
 * state before sleeping on cv; the completer exchanges the state (a locked
 * operation) before it reads `waiters`. One of the two sees the other, so
 * either the waiter sees the final state or the completer sees the waiter
 * and broadcasts under mu (which the waiter holds until it sleeps). The
 * common case (nobody waiting yet) costs the completer no lock.
 */
#include <errno.h>
#include <time.h>

#include "annotate.h"
#include "forkgen.h"
#include "future.h"

static pthread_once_t attr_once = PTHREAD_ONCE_INIT;
static pthread_condattr_t cond_attr; /* CLOCK_MONOTONIC deadlines */
static int attr_err;

/* pthread_once orders attr_init before every return of pthread_once, but
 * helgrind and DRD do not see that (glibc's fast path is an atomic load):
 * the handoff is annotated like any other. */
static void attr_init(void)
{
    attr_err = pthread_condattr_init(&cond_attr);
    if (attr_err == 0)
        attr_err = pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
    CX__HAPPENS_BEFORE(&attr_once);
}

static bool attr_ready(void)
{
    if (pthread_once(&attr_once, attr_init) != 0)
        return false;
    CX__HAPPENS_AFTER(&attr_once);
    return attr_err == 0;
}

cx_future *cx__future_new(void *(*fn)(void *), void *arg, cx_context *ctx,
                          enum cx__job_ctx kind, bool handle, unsigned int gen)
{
    if (handle && !attr_ready())
        return NULL;
    /* The capture first: leaving CX_VAR_LOCAL variables out may allocate. */
    cx__node *root = NULL;
    if (kind == CX__JOB_SNAPSHOT && cx__capture_root(&root) != 0)
        return NULL;
    cx_future *f = cx__malloc(sizeof(*f));
    if (f == NULL) {
        cx__map_release(root);
        return NULL;
    }
    cx__ref_init(&f->ref);
    f->state = CX__F_QUEUED;
    f->waiters = 0;
    f->gen = gen;
    f->sync = handle;
    f->status = 0;
    f->fn = fn;
    f->arg = arg;
    f->result = NULL;
    f->pool = NULL;
    f->next = NULL;
    f->strand_ctx = NULL;
    if (handle) {
        cx__ref_inc(&f->ref); /* the caller's */
        if (pthread_mutex_init(&f->mu, NULL) != 0) {
            cx__map_release(root);
            cx__free(f);
            return NULL;
        }
        if (pthread_cond_init(&f->cv, &cond_attr) != 0) {
            pthread_mutex_destroy(&f->mu);
            cx__map_release(root);
            cx__free(f);
            return NULL;
        }
    }
    /* Last: the job's own context takes over the captured map. It has a
     * lock (not private) so that cx_pool_inspect can copy it while the job
     * sets variables in it. */
    if (kind == CX__JOB_GIVEN) {
        f->ctx = ctx;
    } else if ((f->ctx = cx__context_embed_shared(&f->snapshot, root)) == NULL) {
        if (handle) {
            pthread_cond_destroy(&f->cv);
            pthread_mutex_destroy(&f->mu);
        }
        cx__free(f);
        return NULL;
    }
    return f;
}

/* True once DONE or CANCELLED; then everything the completer wrote is
 * visible to the caller. f borrowed (as in every function below unless
 * said otherwise). */
static bool complete(cx_future *f)
{
    unsigned int s = ck_pr_load_uint(&f->state);
    if (s != CX__F_DONE && s != CX__F_CANCELLED)
        return false;
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(&f->state);
    return true;
}

/* Publishes a final state (the caller moved f out of QUEUED and released
 * its context) and wakes the sleeping waiters. */
static void publish(cx_future *f, unsigned int final, bool wake)
{
    CX__HAPPENS_BEFORE(&f->state);
    ck_pr_fence_release();
    (void)ck_pr_fas_uint(&f->state, final);
    if (!f->sync || !wake)
        return;
    /* The exchange above is a locked operation: the load below cannot be
     * satisfied before it (see the file comment). */
    ck_pr_fence_atomic_load();
    if (ck_pr_load_uint(&f->waiters) != 0) {
        pthread_mutex_lock(&f->mu);
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
}

bool cx__future_claim(cx_future *f)
{
    return ck_pr_cas_uint(&f->state, CX__F_QUEUED, CX__F_RUNNING);
}

void cx__future_finish(cx_future *f, int status, void *result)
{
    f->status = status;
    f->result = result;
    publish(f, CX__F_DONE, true);
}

bool cx__future_cancel_queued(cx_future *f, bool wake)
{
    if (!ck_pr_cas_uint(&f->state, CX__F_QUEUED, CX__F_CANCELLING))
        return false;
    /* Won: the job's context is ours (future.h, Ownership). */
    cx_context *ctx = f->ctx;
    f->ctx = NULL;
    cx_context_release(ctx);
    publish(f, CX__F_CANCELLED, wake);
    return true;
}

void cx__future_unref(cx_future *f)
{
    if (!cx__ref_dec(&f->ref))
        return;
    /* Only a parent's job left queued in a fork child can still hold one. */
    cx_context_release(f->ctx);
    cx_context_release(f->strand_ctx);
    /* In a fork child a parent's mutex or condition variable may look
     * locked or waited on forever: destroying them could block. Their
     * memory is all there is to free. */
    if (f->sync && !cx__forkgen_stale(f->gen)) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
    }
    CX__FORGET(&f->state, sizeof(f->state));
    CX__FORGET(f, sizeof(*f));
    cx__free(f);
}

/* ------------------------------------------------------------ public API */

static bool valid_deadline(const struct timespec *d)
{
    return d == NULL || (d->tv_sec >= 0 && d->tv_nsec >= 0 && d->tv_nsec < 1000000000L);
}

/* Sleeps on cv until f completes or the deadline passes: 0 or
 * CX_ETIMEDOUT. */
static int wait_slow(cx_future *f, const struct timespec *deadline)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    ck_pr_inc_uint(&f->waiters); /* locked: ordered before the load below */
    ck_pr_fence_atomic_load();
    while (!complete(f)) {
        int e = deadline != NULL ? pthread_cond_timedwait(&f->cv, &f->mu, deadline)
                                 : pthread_cond_wait(&f->cv, &f->mu);
        if (e == ETIMEDOUT) {
            if (!complete(f))
                rc = CX_ETIMEDOUT;
            break;
        }
    }
    ck_pr_dec_uint(&f->waiters);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* Waits until f completes (0) or the absolute CLOCK_MONOTONIC deadline
 * passes (CX_ETIMEDOUT; NULL: no deadline). The caller's reference must
 * stay alive during the wait (do not release it from another thread). */
int cx_future_wait(cx_future *f, const struct timespec *deadline)
{
    if (f == NULL || !valid_deadline(deadline))
        return CX_EINVAL;
    if (complete(f))
        return 0;
    /* The parent's worker that would complete it does not exist here. */
    if (cx__forkgen_stale(f->gen))
        return CX_EFORK;
    return wait_slow(f, deadline);
}

/* Waits, then 0 and the job's return value in *result (if result), or the
 * job's status: CX_EBUSY (its context was entered elsewhere) or
 * CX_ECANCELED; *result is then left alone. */
int cx_future_result(cx_future *f, void **result)
{
    int rc = cx_future_wait(f, NULL);
    if (rc != 0)
        return rc;
    if (ck_pr_load_uint(&f->state) == CX__F_CANCELLED)
        return CX_ECANCELED;
    if (f->status != 0)
        return f->status;
    if (result != NULL)
        *result = f->result;
    return 0;
}

/* 0 if the job will never run (cancelled now or before: its context is
 * released and the future complete when this returns); CX_EBUSY if it is
 * running or done. */
int cx_future_cancel(cx_future *f)
{
    if (f == NULL)
        return CX_EINVAL;
    unsigned int s = ck_pr_load_uint(&f->state);
    if (s == CX__F_QUEUED) {
        if (cx__forkgen_stale(f->gen))
            return CX_EFORK;
        if (cx__future_cancel_queued(f, true))
            return 0;
        s = ck_pr_load_uint(&f->state);
    }
    if (s == CX__F_CANCELLING) {
        /* Another canceller won and is still releasing the job's context
         * (a destroy callback may be slow): 0 means "complete", so wait
         * for its publication like any waiter (it wakes us). */
        (void)wait_slow(f, NULL);
        return 0;
    }
    return s == CX__F_CANCELLED ? 0 : CX_EBUSY;
}

/* Drops the caller's reference (NULL is a no-op); the job itself is not
 * affected (fire and forget from then on). */
void cx_future_release(cx_future *f)
{
    if (f != NULL)
        cx__future_unref(f);
}
