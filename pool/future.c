/* future.c - futures: the state machine of future.h, waiting with a
 * deadline, result, cancel, release.
 *
 * Completion handoff: the completing thread writes status/result, then
 * CX__HAPPENS_BEFORE(&f->state), a release fence and an atomic exchange of
 * the final state; a reader loads the state, and on a final one issues an
 * acquire fence and CX__HAPPENS_AFTER(&f->state) before reading anything
 * else.
 *
 * Sleeping. A waiter that finds the future incomplete sleeps on the
 * future's event count f->ec (sleep.h: a futex behind a short spin), never
 * on a condition variable, and holds no lock while it waits:
 *
 *     waiter (wait_slow)                  completer (publish)
 *     waiters++ (locked)                  state = final (locked exchange)
 *     loop: seen = ec value               if (waiters != 0)
 *           final state? done                 bump ec, then lock mu and
 *           scope cancelled? done                 notify the listeners
 *           sleep while ec == seen
 *
 * Both sides make a locked write before their load of the other's word
 * (plus ck_pr_fence_atomic_load for the weaker architectures), so one of
 * the two sees the other: either the waiter sees the final state, or the
 * completer sees the waiter and bumps after it changed the state, so after
 * the waiter's read of seen, and the sleep returns. A scope cancel stores
 * the scope's flag before its wake-up (wake_future) bumps the same count
 * (scope.c, "Waiters"). A registered listener counts in `waiters` too, so
 * the completer takes mu whenever there is anyone to tell; the common case
 * (nobody waiting yet) costs the completer one load: no lock, no bump.
 * wait_any sleeps the same way on a count of its own, bumped by its
 * listeners and its scope's wake-up.
 *
 * Why not a condition variable: glibc's may signal from inside a waiter,
 * without the mutex (a replacement for a wake-up it may have stolen, e.g.
 * a timed wait racing a broadcast), which helgrind and DRD report as a
 * misuse. The event count needs no mutex around the sleep at all. Its word
 * is only touched by ck's atomics, so it is hidden from helgrind and DRD
 * for its lifetime (annotate.h); what the waiter reads after waking is
 * announced on &f->state as above.
 */
#include <time.h>

#include "annotate.h"
#include "forkgen.h"
#include "future.h"
#include "inspect.h"
#include "strand.h"

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

/* The job's scope goes with its context: a borrowed one becomes invalid
 * once the snapshot is released, a given context's own reference is
 * dropped. */
static void drop_scope(cx_future *f)
{
    if (f->kind == CX__JOB_GIVEN)
        cx_scope_release(f->scope);
    f->scope = NULL;
}

/* Detaches f's listeners (the caller holds mu, or is alone: fork child),
 * calls the plain ones now (unless wake is false: a fork child, where no
 * sleeper exists) and returns the deferred ones in registration order. */
static struct cx__listener *detach_listeners(cx_future *f, bool wake)
{
    struct cx__listener *l = f->listeners, *deferred = NULL;
    unsigned int n = 0;
    f->listeners = NULL;
    while (l != NULL) {
        struct cx__listener *next = l->next; /* l may go once fired */
        l->linked = false;
        n++;
        if (l->deferred) {
            l->next = deferred; /* registration was LIFO: this restores it */
            deferred = l;
        } else if (wake) {
            l->fire(l, f);
        }
        l = next;
    }
    if (n != 0)
        ck_pr_sub_uint(&f->waiters, n);
    return deferred;
}

static void fire_deferred(cx_future *f, struct cx__listener *l)
{
    while (l != NULL) {
        struct cx__listener *next = l->next;
        l->fire(l, f);
        l = next;
    }
}

/* Publishes a final state (the caller moved f out of QUEUED and released
 * its context), wakes the sleeping waiters and notifies the listeners. */
static void publish(cx_future *f, unsigned int final, bool wake)
{
    CX__HAPPENS_BEFORE(&f->state);
    ck_pr_fence_release();
    if (cx__future_alone(f)) {
        /* Nobody else reads it (future.h): no exchange needed. */
        ck_pr_store_uint(&f->state, final);
        return;
    }
    (void)ck_pr_fas_uint(&f->state, final);
    if (!f->sync)
        return;
    if (!wake) {
        /* Fork child, a parent's future: its mutex, and a group's that a
         * listener would lock, may be held forever by a thread that is
         * gone. Listeners are dropped uncalled (an on_done record is then
         * lost with the rest of the parent's pool in the child). */
        (void)detach_listeners(f, false);
        return;
    }
    /* The exchange above is a locked operation: the load below cannot be
     * satisfied before it (see the file comment). */
    ck_pr_fence_atomic_load();
    if (ck_pr_load_uint(&f->waiters) != 0) {
        /* The state is final before this bump: a sleeper that read the
         * count before it sees the state when it looks again. Our
         * reference keeps f (and ec) alive through the bump. */
        cx__ec_bump(&f->ec);
        pthread_mutex_lock(&f->mu);
        struct cx__listener *deferred = detach_listeners(f, true);
        pthread_mutex_unlock(&f->mu);
        fire_deferred(f, deferred);
    }
}

bool cx__future_claim(cx_future *f)
{
    /* (A job alone never comes here: its taker runs it with run_alone,
     * pool.c, or cancels it.) */
    CX__ASSERT(!cx__future_alone(f));
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
    drop_scope(f);
    publish(f, CX__F_CANCELLED, wake);
    return true;
}

void cx__future_unref(cx_future *f)
{
    /* A job alone has one reference, the pool's (future.h): its holder
     * drops the last one without a locked decrement. */
    if (!cx__future_alone(f) && !cx__ref_dec(&f->ref))
        return;
    /* Only a parent's job left queued in a fork child can still hold one
     * (or a job that was never queued: submit's failure path). */
    cx_context_release(f->ctx);
    cx_context_release(f->strand_ctx);
    cx__strand_free(f->strand);
    drop_scope(f);
    if (f->sync) {
        /* Nobody sleeps on or bumps ec any more: every sleeper and every
         * completer held a reference. */
        CX__CK_TRACKED(&f->ec, sizeof(f->ec));
        /* In a fork child a parent's mutex may look locked forever:
         * destroying it is undefined. Its memory is all there is to free. */
        if (!cx__forkgen_stale(f->gen))
            pthread_mutex_destroy(&f->mu);
    }
    cx__future_forget(f);
    /* The last reference dropped by a worker of f's pool: the pool is
     * alive, and the memory may stay for its next submit (pool.c). */
    if (f->pool != NULL && cx__pool_job_keep(f->pool, f))
        return;
    cx__free(f);
}

/* ------------------------------------------------------------ public API */

/* A scope cancel's wake-up of a thread sleeping in wait_slow (called
 * under the scope's lock: it only bumps; the sleeper holds a reference to
 * f and deregisters before it returns). */
static void wake_future(void *arg) { cx__ec_bump(&((cx_future *)arg)->ec); }

/* Sleeps on f->ec until f completes, the deadline or the caller's scope's
 * passes (CX_ETIMEDOUT), or that scope is cancelled (CX_ECANCELED). The
 * protocol is the file comment's. */
static int wait_slow(cx_future *f, const struct timespec *deadline)
{
    struct cx__scope_waiter sw;
    struct timespec buf;
    const struct timespec *until; /* the earlier of deadline and the scope's */
    int rc = cx__scope_wait_begin(&sw, wake_future, f, deadline, &buf, &until);
    if (rc != 0)
        return rc;
    ck_pr_inc_uint(&f->waiters); /* locked: ordered before the loads below */
    ck_pr_fence_atomic_load();
    for (;;) {
        /* Read before looking at the state: a bump after this read (a
         * completion, a cancel of the scope) makes the sleep return. */
        uint32_t seen = cx__ec_value(&f->ec);
        if (complete(f))
            break;
        /* Registered before this look (scope.c, "Waiters"). */
        if (sw.scope != NULL && cx__scope_cancelled(sw.scope)) {
            rc = CX_ECANCELED;
            break;
        }
        if (!cx__ec_wait_until(&f->ec, seen, until)) {
            if (!complete(f))
                rc = CX_ETIMEDOUT;
            break;
        }
    }
    ck_pr_dec_uint(&f->waiters);
    cx__scope_wait_end(&sw);
    return rc;
}

/* Sleeps until f is complete, whatever the caller's scope says: for a
 * canceller waiting out another's release of the context (short, and its
 * 0 must mean "complete"). Same protocol as wait_slow. */
static void wait_complete(cx_future *f)
{
    ck_pr_inc_uint(&f->waiters); /* locked: ordered before the loads below */
    ck_pr_fence_atomic_load();
    for (;;) {
        uint32_t seen = cx__ec_value(&f->ec);
        if (complete(f))
            break;
        cx__ec_wait(&f->ec, seen);
    }
    ck_pr_dec_uint(&f->waiters);
}

/* Waits until f completes (0), the absolute CLOCK_MONOTONIC deadline
 * passes (CX_ETIMEDOUT; NULL: no deadline), or the caller's scope is
 * cancelled (CX_ECANCELED) or past its deadline (CX_ETIMEDOUT). In a
 * worker of f's pool, a job still queued runs inline instead. The
 * caller's reference must stay alive during the wait (do not release it
 * from another thread). */
int cx_future_wait(cx_future *f, const struct timespec *deadline)
{
    if (f == NULL || !cx__deadline_ok(deadline))
        return CX_EINVAL;
    if (complete(f))
        return 0;
    /* The parent's worker that would complete it does not exist here. */
    if (cx__forkgen_stale(f->gen))
        return CX_EFORK;
    if (cx__future_inline_ok(f)) {
        int rc = cx_check();
        if (rc != 0)
            return rc;
        if (cx__future_run_inline(f))
            return 0;
    }
    return wait_slow(f, deadline);
}

/* The outcome of a complete f: 0 and its result, or its status. */
static int outcome(cx_future *f, void **result)
{
    if (ck_pr_load_uint(&f->state) == CX__F_CANCELLED)
        return CX_ECANCELED;
    if (f->status != 0)
        return f->status;
    if (result != NULL)
        *result = f->result;
    return 0;
}

/* Waits, then 0 and the job's return value in *result (if result), or the
 * job's status: CX_ECANCELED
 * (cancelled, or its scope was cancelled before it ran), CX_ETIMEDOUT (its
 * scope's deadline passed before it ran); *result is then left alone. */
int cx_future_result(cx_future *f, void **result)
{
    int rc = cx_future_wait(f, NULL);
    return rc != 0 ? rc : outcome(f, result);
}

/* cx_future_wait(f, deadline), then as cx_future_result. */
int cx_future_result_until(cx_future *f, const struct timespec *deadline, void **result)
{
    int rc = cx_future_wait(f, deadline);
    return rc != 0 ? rc : outcome(f, result);
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
        wait_complete(f);
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

/* ------------------------------------------------ SPEC 5.3: scopes, inline */

void cx__future_run_claimed(cx_future *f)
{
    void *result = NULL;
    /* The scope is alive: the context holding it is not released yet. */
    int rc = f->scope != NULL ? cx__scope_check(f->scope) : 0;
    if (rc == 0) {
        /* Shown to cx_pool_inspect while it runs (a worker's slot). */
        struct cx__job_mark m;
        cx__pool_job_begin_queued(&m, f->ctx, f);
        rc = cx_context_run(f->ctx, f->fn, f->arg, &result);
        cx__pool_job_end(&m); /* before the context goes */
        cx__pool_count(f->pool, rc == 0 ? CX__STAT_COMPLETED : CX__STAT_FAILED_BUSY);
    } else {
        cx__pool_count(f->pool, rc == CX_ETIMEDOUT ? CX__STAT_TIMED_OUT : CX__STAT_CANCELLED);
    }
    /* Counted before the future completes: whoever sees it complete finds
     * it counted. */
    cx__future_end(f, rc, result);
}

void cx__future_end(cx_future *f, int status, void *result)
{
    cx_context *ctx = f->ctx;
    f->ctx = NULL;
    cx_context_release(ctx);
    drop_scope(f);
    cx__future_finish(f, status, result);
}

bool cx__future_inline_ok(const cx_future *f)
{
    return f->pool != NULL && f->pool == cx__pool_self();
}

bool cx__future_run_inline(cx_future *f)
{
    if (f->strand != NULL)
        return cx__strand_run_inline(f);
    if (!cx__future_claim(f))
        return false;
    cx__future_run_claimed(f);
    return true;
}

bool cx__future_listen(cx_future *f, struct cx__listener *l)
{
    pthread_mutex_lock(&f->mu);
    ck_pr_inc_uint(&f->waiters); /* locked: ordered before the load below */
    ck_pr_fence_atomic_load();
    if (complete(f)) {
        ck_pr_dec_uint(&f->waiters);
        pthread_mutex_unlock(&f->mu);
        return false;
    }
    l->prev = NULL;
    l->next = f->listeners;
    if (l->next != NULL)
        l->next->prev = l;
    f->listeners = l;
    l->linked = true;
    pthread_mutex_unlock(&f->mu);
    /* The caller may hold no reference of its own (a group's go works
     * with the group's, which another thread may drop as soon as the
     * listener has fired). The unlock above is over before that, but
     * helgrind and DRD order only what precedes an unlock with the next
     * lock: tell them the whole unlock precedes the last reference's
     * destruction (refcount.h announces that on &f->ref). */
    CX__HAPPENS_BEFORE(&f->ref);
    return true;
}

void cx__future_unlisten(cx_future *f, struct cx__listener *l)
{
    pthread_mutex_lock(&f->mu);
    if (l->linked) {
        if (l->prev != NULL)
            l->prev->next = l->next;
        else
            f->listeners = l->next;
        if (l->next != NULL)
            l->next->prev = l->prev;
        l->linked = false;
        ck_pr_dec_uint(&f->waiters);
    }
    pthread_mutex_unlock(&f->mu);
}

/* ------------------------------------------------------------ wait_any */

/* A wait_any's listener (one per future, plain: called under the
 * future's lock by its completer, after the state is final): it bumps the
 * waiting thread's own event count, as does a cancel of its scope. */
struct any_listener {
    struct cx__listener l; /* first */
    struct ck_ec32 *ec;    /* borrowed: on the waiter's stack, alive until
                              every listener is unregistered */
};

static void any_wake(void *arg) { cx__ec_bump(arg); }

static void any_fire(struct cx__listener *l, cx_future *f)
{
    (void)f;
    cx__ec_bump(((struct any_listener *)l)->ec);
}

/* The lowest index of a complete future, or n. */
static size_t first_complete(cx_future *const *fs, size_t n)
{
    size_t i = 0;
    while (i < n && !complete(fs[i]))
        i++;
    return i;
}

#define ANY_ON_STACK 8

/* Sleeps until one of fs[0..n) completes: listeners on each, registered
 * until one is found complete, bump a count on our stack (the file
 * comment's protocol: read the count, look at every state, sleep). 0 (one
 * is complete, or was seen complete) or CX_ETIMEDOUT / CX_ECANCELED /
 * CX_ENOMEM; the caller looks at the states again in every case. */
static int wait_any_slow(cx_future *const *fs, size_t n, const struct timespec *deadline)
{
    struct any_listener stack[ANY_ON_STACK], *ls = stack;
    if (n > ANY_ON_STACK) {
        if (n > SIZE_MAX / sizeof(*ls) || (ls = cx__malloc(n * sizeof(*ls))) == NULL)
            return CX_ENOMEM;
    }
    /* Only ck's atomics touch it: hidden from helgrind/DRD until nobody
     * can bump it any more (below), as the pool's counts are. */
    struct ck_ec32 ec;
    cx__ec_init(&ec);
    CX__CK_UNTRACKED(&ec, sizeof(ec));
    bool done = false;
    size_t reg = 0;
    for (; reg < n; reg++) {
        ls[reg].l.fire = any_fire;
        ls[reg].l.deferred = false;
        ls[reg].ec = &ec;
        if (!cx__future_listen(fs[reg], &ls[reg].l)) {
            done = true; /* complete already: no need to sleep */
            break;
        }
    }
    struct cx__scope_waiter sw;
    struct timespec buf;
    const struct timespec *until;
    int rc = done ? 0 : cx__scope_wait_begin(&sw, any_wake, &ec, deadline, &buf, &until);
    if (!done && rc == 0) {
        for (;;) {
            uint32_t seen = cx__ec_value(&ec); /* before the looks */
            if (first_complete(fs, n) < n)
                break;
            if (sw.scope != NULL && cx__scope_cancelled(sw.scope)) {
                rc = CX_ECANCELED;
                break;
            }
            if (!cx__ec_wait_until(&ec, seen, until)) {
                rc = CX_ETIMEDOUT; /* unless one completed meanwhile: the
                                      caller looks again */
                break;
            }
        }
        cx__scope_wait_end(&sw); /* any_wake is not running and will not run */
    }
    /* After this, no listener of ours is called any more (a plain
     * listener fires under the future's lock, which unlisten takes). */
    for (size_t i = 0; i < reg; i++)
        cx__future_unlisten(fs[i], &ls[i].l);
    CX__CK_TRACKED(&ec, sizeof(ec));
    if (ls != stack)
        cx__free(ls);
    return rc;
}

/* Waits until one of fs[0..n) is complete; *index receives the lowest
 * complete position. CX_EINVAL (fs, an element or index NULL, n == 0, bad
 * deadline), CX_ETIMEDOUT (deadline or the caller's scope's), CX_ECANCELED
 * (the caller's scope), CX_EFORK, CX_ENOMEM (n > 8 and no memory for the
 * listeners). In a worker of their pool, a queued one runs inline. */
int cx_future_wait_any(cx_future *const *fs, size_t n, const struct timespec *deadline,
                       size_t *index)
{
    if (fs == NULL || n == 0 || index == NULL || !cx__deadline_ok(deadline))
        return CX_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (fs[i] == NULL)
            return CX_EINVAL;
    size_t i = first_complete(fs, n);
    if (i == n) {
        for (size_t k = 0; k < n; k++)
            if (cx__forkgen_stale(fs[k]->gen))
                return CX_EFORK;
        for (size_t k = 0; k < n; k++) {
            if (!cx__future_inline_ok(fs[k]))
                continue;
            int rc = cx_check();
            if (rc != 0)
                return rc;
            if (cx__future_run_inline(fs[k]))
                break;
        }
        i = first_complete(fs, n);
    }
    if (i == n) {
        int rc = wait_any_slow(fs, n, deadline);
        i = first_complete(fs, n);
        if (i == n)
            return rc != 0 ? rc : CX_ETIMEDOUT; /* rc is never 0 here */
    }
    *index = i;
    return 0;
}

/* ------------------------------------------------------------- on_done */

/* A registration: runs fn(f, arg) in a private copy of the registering
 * thread's context, once, then frees itself. */
struct on_done {
    struct cx__listener l; /* first; deferred */
    void (*fn)(cx_future *f, void *arg);
    void *arg;
    cx_context *ctx; /* owned */
    cx_future *f;    /* borrowed for the call */
};

static void *on_done_call(void *p)
{
    struct on_done *d = p;
    d->fn(d->f, d->arg);
    return NULL;
}

static void on_done_fire(struct cx__listener *l, cx_future *f)
{
    struct on_done *d = (struct on_done *)l;
    d->f = f;
    /* The copy is private and entered by nobody else: run can fail only
     * when this thread has no state and no memory to make one; fn runs
     * anyway then, in this thread's context (it must run once). */
    if (cx_context_run(d->ctx, on_done_call, d, NULL) != 0)
        d->fn(f, d->arg);
    cx_context_release(d->ctx);
    cx__free(d);
}

/* fn(f, arg) once f is complete: at once, in the caller, if it is;
 * otherwise in whichever thread completes it, inside a copy of the
 * context current now (taken here). CX_EINVAL (f or fn NULL), CX_ENOMEM
 * (nothing registered). Any number of registrations; they run in order. */
int cx_future_on_done(cx_future *f, void (*fn)(cx_future *f, void *arg), void *arg)
{
    if (f == NULL || fn == NULL)
        return CX_EINVAL;
    if (complete(f)) {
        fn(f, arg);
        return 0;
    }
    if (cx__forkgen_stale(f->gen))
        return CX_EFORK;
    struct on_done *d = cx__malloc(sizeof(*d));
    if (d == NULL)
        return CX_ENOMEM;
    d->ctx = cx__copy_context_private();
    if (d->ctx == NULL) {
        cx__free(d);
        return CX_ENOMEM;
    }
    d->l.fire = on_done_fire;
    d->l.deferred = true;
    d->fn = fn;
    d->arg = arg;
    if (!cx__future_listen(f, &d->l)) {
        /* Completed meanwhile: here and now, in the caller's context. */
        cx_context_release(d->ctx);
        cx__free(d);
        fn(f, arg);
    }
    return 0;
}
