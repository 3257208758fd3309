/* scope.h - scopes (SPEC 5.3): the internal interface of src/scope.c.
 *
 * A scope is a node of a cancellation tree carried in the context by one
 * built-in variable (its destroy callback releases a scope reference, so a
 * context holding the binding keeps the scope alive). What the rest of the
 * library needs:
 *
 *   - cx__scope_current(): the calling thread's current scope, borrowed,
 *     or NULL. While no scope was ever created in the process it is one
 *     load of a global; afterwards one lookup of the built-in variable.
 *   - cx__scope_check(s): 0, CX_ECANCELED, CX_ETIMEDOUT for a scope whose
 *     holder keeps it alive. The cancelled flag of every scope below a
 *     cancelled one is set by the cancel itself, and the deadline is the
 *     earliest of the chain, computed at creation: one load, and a clock
 *     read only when the chain has a deadline.
 *   - Waiters: a library call about to sleep registers a wake-up callback
 *     on the caller's current scope (cx__scope_wait_begin), sleeps with a
 *     deadline that is the earlier of its own and the scope chain's, looks
 *     at cx__scope_cancelled() before each sleep, and deregisters
 *     (cx__scope_wait_end) after. cx_scope_cancel calls the callback of
 *     every waiter registered anywhere in the cancelled subtree.
 *
 * Lock order: the tree lock (scope.c) > a scope's waiter lock > whatever
 * lock a wake-up callback takes (today's callbacks take none: each bumps
 * the sleeper's event count, src/sleep.h). A callback must only wake: it
 * must not call back into scopes, release anything, or run user code.
 */
#ifndef CX_SCOPE_H
#define CX_SCOPE_H

#include <ck_pr.h>
#include <stdbool.h>
#include <time.h>

#include "alloc.h"
#include "annotate.h"
#include "context.h"

struct cx__scope_waiter {
    struct cx__scope_waiter *next, *prev; /* in scope->waiters, under its lock */
    void (*wake)(void *arg);
    void *arg;
    cx_scope *scope; /* borrowed (the caller's context holds it); NULL: none */
};

struct cx_scope {
    cx__ref ref;
    /* 1 once cancelled (atomic; only ever set, under the tree lock). Hidden
     * from helgrind/DRD: a flag read without a lock by design, carrying no
     * data (a waiter's wake-up is a bump of its own event count). */
    unsigned int cancelled;
    bool has_deadline;        /* the chain has a deadline: the earliest */
    struct timespec deadline; /* of this scope's own and its ancestors' */
    cx_scope *parent;         /* owned reference, or NULL */
    /* The tree, under the tree lock: children are linked while alive (a
     * dying child unlinks itself before its memory goes). */
    cx_scope *first_child, *next_sib, *prev_sib;
    pthread_mutex_t mu;                /* guards waiters */
    struct cx__scope_waiter *waiters;  /* registered sleepers */
};

/* Nonzero once the first scope was created (atomic, only ever set; hidden
 * from helgrind/DRD like the flag above). A context can only hold a scope
 * binding made after that store, and whatever handed the context to this
 * thread ordered the store before us: seeing 0 proves "no scope here". */
extern CX__HIDDEN unsigned int cx__scopes_used;
/* The built-in variable: static storage (the union leaves room for its
 * name), one reference that is never dropped, so it is never freed. */
union cx__scope_var_storage {
    cx_var v;
    char bytes[sizeof(cx_var) + 16];
};
extern CX__HIDDEN union cx__scope_var_storage cx__scope_var_obj;

/* The current scope of the calling thread (borrowed: valid while its
 * current context keeps the binding), or NULL. */
static inline cx_scope *cx__scope_current(void)
{
    if (__builtin_expect(ck_pr_load_uint(&cx__scopes_used) == 0, 1))
        return NULL;
    /* cxvars.h's inline get_or answers from the lookup cache both ways
     * (a binding, and "no binding": the common "no scope" case). */
    return cx_var_get_or(&cx__scope_var_obj.v, NULL);
}

/* The scope bound in ctx (a new reference), or NULL. Safe while another
 * thread runs in ctx. */
CX__HIDDEN cx_scope *cx__scope_of(const cx_context *ctx);

/* True once s (borrowed, not NULL) or an ancestor is cancelled. */
static inline bool cx__scope_cancelled(const cx_scope *s)
{
    return ck_pr_load_uint(&((cx_scope *)s)->cancelled) != 0;
}

/* 0, CX_ECANCELED or CX_ETIMEDOUT for s (borrowed, not NULL). */
CX__HIDDEN int cx__scope_check_slow(const cx_scope *s);
static inline int cx__scope_check(const cx_scope *s)
{
    if (cx__scope_cancelled(s))
        return CX_ECANCELED;
    return s->has_deadline ? cx__scope_check_slow(s) : 0;
}

/* Before a sleep: registers w (caller's storage, kept until wait_end) on
 * the current scope, with wake(arg) as its wake-up. Returns the scope's
 * status now (0, CX_ECANCELED, CX_ETIMEDOUT; nothing registered unless 0).
 * *until receives the deadline to sleep to: the earlier of deadline (may
 * be NULL) and the chain's, stored in *buf when it is the chain's; NULL
 * for none. With no current scope: 0, *until = deadline, no lock taken. */
CX__HIDDEN int cx__scope_wait_begin(struct cx__scope_waiter *w, void (*wake)(void *arg),
                                    void *arg, const struct timespec *deadline,
                                    struct timespec *buf, const struct timespec **until);
/* After the sleep: deregisters w (a no-op if nothing was registered).
 * Once it returns, wake(arg) is not running and will not run. */
CX__HIDDEN void cx__scope_wait_end(struct cx__scope_waiter *w);

/* Deadline validity shared by every call taking one: tv_nsec in range
 * (a negative tv_sec is a time in the past, allowed where stated). */
static inline bool cx__timespec_ok(const struct timespec *t)
{
    return t->tv_nsec >= 0 && t->tv_nsec < 1000000000L;
}
/* A deadline argument of a waiting call: NULL (none), or a valid timespec
 * with tv_sec >= 0 (cx_future_wait and cx_group_wait refuse a negative one,
 * as version 1 did). */
static inline bool cx__deadline_ok(const struct timespec *d)
{
    return d == NULL || (d->tv_sec >= 0 && cx__timespec_ok(d));
}
/* a < b */
static inline bool cx__timespec_lt(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

#endif
