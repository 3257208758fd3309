/* group.c - task groups (errgroup, SPEC 5.3): structured concurrency on a
 * pool.
 *
 * A group owns a scope, a child of the scope current at cx_group_new.
 * cx_group_go submits a job that runs fn in a snapshot of the caller's
 * context with the group's scope current (so everything the job starts
 * inherits it). Every job, nested ones included, is counted in `pending`
 * from its go until its future is complete, however it ends (ran, skipped
 * because the scope was cancelled or expired, cancelled): a deferred
 * listener on its future (future.h) does the count. A job still running
 * is pending, so a nested go it makes is counted before its own count can
 * drop: pending reaches 0 only when every job has ended.
 *
 * The first non-zero fn return is kept and cancels the group's scope at
 * once: queued jobs then complete without running, running ones see
 * cx_cancelled(), and sleeping library calls under the scope wake up.
 *
 * Records. Each job has a record (struct gjob) holding the group's
 * reference to its future: in `live` from its submit until its listener
 * has run, then in `dead` until a later go, wait or release frees it
 * (never the listener itself: the thread completing the future is still
 * using it, and may be the group's own canceller).
 *
 * No self-deadlock: cx_group_wait in a worker of the group's pool runs
 * the group's queued jobs inline (claiming them as cx_future_wait does)
 * before it sleeps, and a go wakes such a waiter so that it can take
 * nested jobs too.
 *
 * Lifetime: the group is refcounted: the owner's reference, and one per
 * pending job, dropped by its listener after its last unlock of g->mu.
 * So whoever drops the last one (the releaser, or the listener of the
 * last job) frees the group, and every unlock of g->mu is ordered before
 * the destruction through the count (refcount.h), race detectors included.
 *
 * Locks: g->mu guards pending, the errors, the lists and nwait; nothing
 * else is called while it is held (jobs run, futures complete and scopes
 * are cancelled outside it). g->mu is never held while a scope lock is
 * taken, and the scope's wake-up (wake_group) takes no lock.
 *
 * Sleeping (cx_group_wait, cx_group_release): on the event count g->ec
 * (sleep.h), never on a condition variable (see future.c for why). A
 * sleeper, under mu, reads the count, then looks at pending (and its
 * scope's flag), counts itself in nwait and unlocks before it sleeps. A
 * thread that changes pending or adds a job does so under mu and, if it
 * saw nwait != 0 there, bumps the count once it has unlocked: its lock
 * came after the sleeper's unlock, so the bump comes after the sleeper's
 * read and the sleep returns. A scope cancel stores the flag before
 * wake_group bumps (scope.c, "Waiters"). The count's word is only touched
 * by ck's atomics: hidden from helgrind/DRD while the group exists
 * (annotate.h); pending and the errors travel under mu.
 */
#include <string.h>

#include "annotate.h"
#include "future.h"

struct gjob {
    struct cx__listener l; /* first; deferred: counts the end */
    cx_group *g;           /* borrowed: alive while the job is pending */
    int (*fn)(void *);
    void *arg;
    cx_future *f;          /* the group's reference; set before linking */
    struct gjob *next, *prev;
};

struct cx_group {
    cx__ref ref;        /* the owner's, one per pending job */
    cx_pool *pool;      /* borrowed: must outlive the group */
    cx_scope *scope;    /* owned */
    pthread_mutex_t mu;
    struct ck_ec32 ec;  /* where wait and release sleep (see Sleeping) */
    unsigned int pending; /* jobs from go to complete, under mu */
    unsigned int nwait;   /* threads sleeping on ec, under mu */
    int fn_err;   /* the first non-zero fn return, under mu */
    int skip_err; /* the first status of a job that did not run, under mu */
    struct gjob *live, *dead; /* under mu */
};

/* ---------------------------------------------------------------- jobs */

/* Drops a reference; the last one frees g (no job pending, released). */
static void group_unref(cx_group *g)
{
    if (!cx__ref_dec(&g->ref))
        return;
    /* Every sleeper and every bumper held a reference: nobody touches the
     * count any more. */
    CX__CK_TRACKED(&g->ec, sizeof(g->ec));
    pthread_mutex_destroy(&g->mu);
    cx_scope_release(g->scope);
    cx__free(g);
}

/* Keeps the first fn error and cancels the group at once. */
static void fail(cx_group *g, int rc)
{
    pthread_mutex_lock(&g->mu);
    if (g->fn_err == 0)
        g->fn_err = rc;
    pthread_mutex_unlock(&g->mu);
    (void)cx_scope_cancel(g->scope);
}

/* The pool job: fn in the job's snapshot (the group's scope current). */
static void *gjob_main(void *arg)
{
    struct gjob *j = arg;
    int rc = j->fn(j->arg);
    if (rc != 0)
        fail(j->g, rc);
    return NULL;
}

/* The job's future is complete: moves the record to `dead`, counts the
 * end, keeps the status of a job that did not run. f borrowed. */
static void gjob_done(struct cx__listener *l, cx_future *f)
{
    struct gjob *j = (struct gjob *)l;
    cx_group *g = j->g;
    /* f is complete: its status is visible (future.c's handoff). */
    int st = ck_pr_load_uint(&f->state) == CX__F_CANCELLED ? CX_ECANCELED : f->status;
    pthread_mutex_lock(&g->mu);
    if (st != 0 && g->skip_err == 0)
        g->skip_err = st;
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        g->live = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    j->next = g->dead;
    g->dead = j;
    g->pending--;
    bool wake = g->nwait != 0;
    pthread_mutex_unlock(&g->mu);
    if (wake)
        cx__ec_bump(&g->ec); /* g is alive: the job's reference */
    group_unref(g); /* the job's: g may be gone from here on */
}

/* Frees the records of ended jobs and drops their futures. */
static void reap(cx_group *g)
{
    pthread_mutex_lock(&g->mu);
    struct gjob *j = g->dead;
    g->dead = NULL;
    pthread_mutex_unlock(&g->mu);
    while (j != NULL) {
        struct gjob *next = j->next;
        cx_future_release(j->f);
        cx__free(j);
        j = next;
    }
}

/* Under mu: a job of g still queued (a new reference to its future), or
 * NULL. */
static cx_future *queued_job(cx_group *g)
{
    for (struct gjob *j = g->live; j != NULL; j = j->next) {
        if (ck_pr_load_uint(&j->f->state) == CX__F_QUEUED) {
            cx__ref_inc(&j->f->ref);
            return j->f;
        }
    }
    return NULL;
}

/* A scope cancel's wake-up of a thread sleeping in cx_group_wait (called
 * under the scope's lock: it only bumps; the sleeper holds the owner's
 * reference and deregisters before it returns). */
static void wake_group(void *arg) { cx__ec_bump(&((cx_group *)arg)->ec); }

/* -------------------------------------------------------------- public */

/* *out receives a new group whose jobs run in pool (borrowed: it must
 * outlive the group); its scope is a child of the current scope.
 * CX_EINVAL, CX_ENOMEM. */
int cx_group_new(cx_group **out, cx_pool *pool)
{
    if (out == NULL || pool == NULL)
        return CX_EINVAL;
    cx_group *g = cx__malloc(sizeof(*g));
    if (g == NULL)
        return CX_ENOMEM;
    memset(g, 0, sizeof(*g));
    cx__ref_init(&g->ref);
    g->pool = pool;
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        cx__free(g);
        return CX_ENOMEM;
    }
    int rc = cx_scope_new(&g->scope, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&g->mu);
        cx__free(g);
        return rc;
    }
    cx__ec_init(&g->ec);
    CX__CK_UNTRACKED(&g->ec, sizeof(g->ec)); /* until group_unref frees g */
    *out = g;
    return 0;
}

struct go_args {
    struct gjob *j;
    int rc;
};

/* Runs in a private copy of the caller's context: makes the group's scope
 * current there, then submits (the job's snapshot is taken of the copy). */
static void *go_in_copy(void *p)
{
    struct go_args *a = p;
    cx_group *g = a->j->g;
    a->rc = cx_var_set(cx__scope_var(), cx__scope_ref(g->scope), NULL);
    if (a->rc != 0) {
        cx_scope_release(g->scope); /* the failed set's reference: not the last */
        return NULL;
    }
    a->rc = cx_pool_submit(g->pool, gjob_main, a->j, &a->j->f);
    return NULL;
}

/* Submits fn(arg) into the group's pool, in a snapshot of the current
 * context with the group's scope current. Once the group is cancelled
 * (first error, cx_group_cancel, a deadline of its chain), nothing is
 * submitted: 0, and the job counts as one that did not run. Errors of the
 * submit: CX_ENOMEM, CX_ESHUTDOWN, CX_EFORK; blocking on a full queue
 * returns early like a blocking cx_pool_submit (the group's scope is
 * current then). CX_EINVAL for NULL g or fn. */
int cx_group_go(cx_group *g, int (*fn)(void *), void *arg)
{
    if (g == NULL || fn == NULL)
        return CX_EINVAL;
    reap(g);
    int st = cx__scope_check(g->scope);
    if (st != 0) {
        pthread_mutex_lock(&g->mu);
        if (g->skip_err == 0)
            g->skip_err = st;
        pthread_mutex_unlock(&g->mu);
        return 0;
    }
    struct gjob *j = cx__malloc(sizeof(*j));
    if (j == NULL)
        return CX_ENOMEM;
    j->g = g;
    j->fn = fn;
    j->arg = arg;
    j->f = NULL;
    j->l.fire = gjob_done;
    j->l.deferred = true;
    cx__ref_inc(&g->ref); /* the job's, dropped by its listener */
    pthread_mutex_lock(&g->mu);
    g->pending++; /* before the job can run (and go again) */
    pthread_mutex_unlock(&g->mu);

    struct go_args a = {.j = j, .rc = CX_ENOMEM};
    cx_context *copy = cx__capture_private(); /* CX_VAR_LOCAL left out (SPEC 5.4) */
    if (copy != NULL) {
        (void)cx_context_run(copy, go_in_copy, &a, NULL); /* private: cannot be busy */
        cx_context_release(copy);
    }
    pthread_mutex_lock(&g->mu);
    bool wake = g->nwait != 0; /* the caller holds the owner's reference */
    if (a.rc != 0) {
        g->pending--;
        pthread_mutex_unlock(&g->mu);
        if (wake)
            cx__ec_bump(&g->ec);
        cx__free(j);
        group_unref(g); /* never the last: the caller holds the owner's */
        return a.rc;
    }
    /* Linked once j->f is set; its listener (below) unlinks it. */
    j->prev = NULL;
    j->next = g->live;
    if (j->next != NULL)
        j->next->prev = j;
    g->live = j;
    pthread_mutex_unlock(&g->mu);
    if (wake)
        cx__ec_bump(&g->ec); /* an inline-capable waiter: new work */
    if (!cx__future_listen(j->f, &j->l))
        gjob_done(&j->l, j->f); /* ended already */
    return 0;
}

/* Until every job of g, nested ones included, has ended: then 0, or the
 * first non-zero fn return, or (none) the status of the first job that
 * did not run (CX_ECANCELED, CX_ETIMEDOUT). CX_ETIMEDOUT at the deadline
 * (absolute CLOCK_MONOTONIC, NULL: none) or the caller's scope's, and
 * CX_ECANCELED if the caller's scope is cancelled: the jobs go on. In a
 * worker of the group's pool, the group's queued jobs run inline. */
int cx_group_wait(cx_group *g, const struct timespec *deadline)
{
    if (g == NULL || !cx__deadline_ok(deadline))
        return CX_EINVAL;
    bool worker = cx__pool_self() == g->pool;
    struct cx__scope_waiter sw;
    struct timespec buf;
    const struct timespec *until;
    int rc = cx__scope_wait_begin(&sw, wake_group, g, deadline, &buf, &until);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        /* Read before the looks below (see Sleeping). */
        uint32_t seen = cx__ec_value(&g->ec);
        if (g->pending == 0) {
            rc = g->fn_err != 0 ? g->fn_err : g->skip_err;
            break;
        }
        if (sw.scope != NULL && cx__scope_cancelled(sw.scope)) {
            rc = CX_ECANCELED;
            break;
        }
        cx_future *f = worker ? queued_job(g) : NULL;
        if (f != NULL) {
            pthread_mutex_unlock(&g->mu);
            (void)cx__future_run_inline(f); /* false: taken meanwhile */
            cx__future_unref(f);
            pthread_mutex_lock(&g->mu);
            continue;
        }
        g->nwait++;
        pthread_mutex_unlock(&g->mu);
        bool moved = cx__ec_wait_until(&g->ec, seen, until);
        pthread_mutex_lock(&g->mu);
        g->nwait--;
        if (!moved && g->pending != 0) {
            rc = CX_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
    cx__scope_wait_end(&sw);
    reap(g);
    return rc;
}

/* Cancels the group's scope (and every scope below it). */
int cx_group_cancel(cx_group *g)
{
    if (g == NULL)
        return CX_EINVAL;
    return cx_scope_cancel(g->scope);
}

/* Cancels the group's scope, cancels its queued jobs (they never run),
 * waits for the running ones, frees everything. NULL is a no-op. Not from
 * a job of g itself (it would wait for itself). */
void cx_group_release(cx_group *g)
{
    if (g == NULL)
        return;
    (void)cx_scope_cancel(g->scope);
    pthread_mutex_lock(&g->mu);
    for (;;) {
        uint32_t seen = cx__ec_value(&g->ec); /* before the looks */
        if (g->pending == 0)
            break;
        cx_future *f = queued_job(g);
        if (f != NULL) {
            pthread_mutex_unlock(&g->mu);
            (void)cx__future_cancel_queued(f, true); /* its listener counts it */
            cx__future_unref(f);
            pthread_mutex_lock(&g->mu);
            continue;
        }
        g->nwait++;
        pthread_mutex_unlock(&g->mu);
        cx__ec_wait(&g->ec, seen);
        pthread_mutex_lock(&g->mu);
        g->nwait--;
    }
    pthread_mutex_unlock(&g->mu);
    reap(g);
    group_unref(g); /* the owner's; the last job's listener may hold one */
}
