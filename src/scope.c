/* scope.c - scopes (SPEC 5.3): a cancellation tree carried in the context.
 *
 * ======================================================================
 * Design
 * ======================================================================
 * A scope is a refcounted node: a parent pointer (an owned reference: a
 * child keeps its ancestors alive), the earliest deadline of its chain
 * (computed once, at creation: ancestors' deadlines never change), a
 * cancelled flag, a list of children and a list of waiters. The current
 * scope of a thread is the value of one built-in variable in its current
 * context; the variable's destroy callback releases a scope reference, so
 * a context (and every snapshot of it: a pool job's, a thread's, a bound
 * callback's) that holds the binding keeps the scope alive.
 *
 *     cx_scope_new ---- parent = the current scope, retained
 *          |
 *     CX_WITH_SCOPE(s)  binds s (a new reference) for the block
 *          |
 *     cx_check()        current scope: flag, then deadline vs now
 *
 * Cancel is pushed down, checks are local: cx_scope_cancel sets the flag
 * of s and of every scope below it, so a check reads one flag (and the
 * clock only if the chain has a deadline) however deep the scope is. The
 * walk is O(subtree) the first time and stops at subtrees already
 * cancelled afterwards. Invariant (under the tree lock): the subtree of a
 * cancelled scope is all cancelled; a child created under a cancelled
 * parent is born cancelled.
 *
 * Tree lock. One process-wide mutex guards every children list and every
 * cancel walk. It is taken only by cx_scope_new of a child, the end of a
 * child scope, and cx_scope_cancel: never on a check, a get or a job. A
 * walk holding it sees a frozen tree, so it needs no stack (parent and
 * sibling links lead it back up) and a scope being freed stays valid until
 * it unlinks itself under that same lock.
 *
 * Waiters. A library call about to sleep (future wait, group wait, a
 * blocking submit) registers {wake, arg} on its caller's current scope
 * under that scope's own mutex, then checks the flag before each sleep;
 * the canceller stores the flag before it takes that mutex to call the
 * wake-ups. Whichever order the two take the mutex in, either the waiter
 * sees the flag or the canceller sees the waiter. The deadline needs no
 * wake-up: the sleeper's timed wait ends at the chain's deadline.
 *
 * Cost with no scope: until the first cx_scope_new, cx__scope_current()
 * is one load of a global that is never written again; afterwards, with
 * no scope bound in the context, one cached lookup of the variable.
 */
#include <stddef.h>
#include <string.h>

#include "hamt.h"
#include "scope.h"

unsigned int cx__scopes_used;

static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;

/* The built-in variable's destroy: a binding held one scope reference. */
static void scope_value_destroy(void *value) { cx_scope_release(value); }

/* One reference that is never dropped (so it is never freed); the hash is
 * any constant (one variable: nothing to spread). */
union cx__scope_var_storage cx__scope_var_obj = {
    .v = {.ref = {1}, .hash = 0x5c09e5d1u, .destroy = scope_value_destroy},
};

#define SCOPE_VAR_NAME "cxvars.scope"

/* At load: the name, and the two lock-free words hidden from helgrind/DRD
 * before any thread can touch them. */
__attribute__((constructor)) static void scope_init(void)
{
    memcpy(cx__scope_var_obj.bytes + offsetof(cx_var, name), SCOPE_VAR_NAME,
           sizeof(SCOPE_VAR_NAME));
    cx__var_derive(&cx__scope_var_obj.v);
    CX__CK_UNTRACKED(&cx__scopes_used, sizeof(cx__scopes_used));
}

/* Borrowed; never released. */
cx_var *cx__scope_var(void) { return &cx__scope_var_obj.v; }

/* Returns s with one more reference (the one a CX_WITH_SCOPE binding
 * hands to the context); NULL for NULL. */
void *cx__scope_ref(cx_scope *s)
{
    if (s != NULL)
        cx__ref_inc(&s->ref);
    return s;
}

/* ------------------------------------------------------------ the tree */

/* Under the tree lock: links s first among parent's children. */
static void link_child(cx_scope *parent, cx_scope *s)
{
    s->prev_sib = NULL;
    s->next_sib = parent->first_child;
    if (s->next_sib != NULL)
        s->next_sib->prev_sib = s;
    parent->first_child = s;
}

/* Under the tree lock: takes s out of its parent's children. */
static void unlink_child(cx_scope *s)
{
    if (s->prev_sib != NULL)
        s->prev_sib->next_sib = s->next_sib;
    else
        s->parent->first_child = s->next_sib;
    if (s->next_sib != NULL)
        s->next_sib->prev_sib = s->prev_sib;
}

/* Under the tree lock: sets s's flag, then wakes its waiters (the store
 * comes first: see "Waiters" above). */
static void mark(cx_scope *s)
{
    ck_pr_store_uint(&s->cancelled, 1);
    pthread_mutex_lock(&s->mu);
    for (struct cx__scope_waiter *w = s->waiters; w != NULL; w = w->next)
        w->wake(w->arg);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ public */

/* *out receives a new scope (a new reference), child of the current
 * scope if there is one (retained by the child). deadline: absolute
 * CLOCK_MONOTONIC or NULL; a time already past is allowed (the scope is
 * expired at once). CX_EINVAL for NULL out or tv_nsec out of range,
 * CX_ENOMEM. */
int cx_scope_new(cx_scope **out, const struct timespec *deadline)
{
    if (out == NULL || (deadline != NULL && !cx__timespec_ok(deadline)))
        return CX_EINVAL;
    cx_scope *s = cx__malloc(sizeof(*s));
    if (s == NULL)
        return CX_ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        cx__free(s);
        return CX_ENOMEM;
    }
    cx__ref_init(&s->ref);
    s->cancelled = 0;
    CX__CK_UNTRACKED(&s->cancelled, sizeof(s->cancelled));
    s->waiters = NULL;
    s->first_child = s->next_sib = s->prev_sib = NULL;
    s->has_deadline = deadline != NULL;
    if (deadline != NULL)
        s->deadline = *deadline;
    cx_scope *parent = cx__scope_current(); /* borrowed from our context */
    s->parent = parent;
    if (parent != NULL) {
        cx__ref_inc(&parent->ref); /* the child's */
        if (parent->has_deadline &&
            (!s->has_deadline || cx__timespec_lt(&parent->deadline, &s->deadline))) {
            s->deadline = parent->deadline;
            s->has_deadline = true;
        }
        pthread_mutex_lock(&tree_lock);
        link_child(parent, s);
        /* Born cancelled under a cancelled parent (the invariant). */
        if (cx__scope_cancelled(parent))
            ck_pr_store_uint(&s->cancelled, 1);
        pthread_mutex_unlock(&tree_lock);
    }
    /* Before s can be bound anywhere (see scope.h). */
    ck_pr_store_uint(&cx__scopes_used, 1);
    *out = s;
    return 0;
}

/* Drops a reference; the last one unlinks the scope from its parent's
 * children and drops its reference to the parent (iteratively: a long
 * chain going at once does not recurse). NULL is a no-op. */
void cx_scope_release(cx_scope *s)
{
    while (s != NULL && cx__ref_dec(&s->ref)) {
        cx_scope *parent = s->parent;
        if (parent != NULL) {
            pthread_mutex_lock(&tree_lock);
            unlink_child(s);
            pthread_mutex_unlock(&tree_lock);
        }
        pthread_mutex_destroy(&s->mu);
        CX__CK_TRACKED(&s->cancelled, sizeof(s->cancelled));
        cx__free(s);
        s = parent;
    }
}

/* Cancels s and every scope below it, waking every library call blocked
 * under them. Idempotent. s borrowed. */
int cx_scope_cancel(cx_scope *s)
{
    if (s == NULL)
        return CX_EINVAL;
    pthread_mutex_lock(&tree_lock);
    if (!cx__scope_cancelled(s)) {
        /* Pre-order walk of the frozen tree, skipping subtrees already
         * cancelled (wholly cancelled, by the invariant). */
        cx_scope *n = s;
        mark(n);
        cx_scope *c = n->first_child;
        for (;;) {
            while (c != NULL && cx__scope_cancelled(c))
                c = c->next_sib;
            if (c != NULL) {
                n = c;
                mark(n);
                c = n->first_child;
                continue;
            }
            if (n == s)
                break;
            c = n->next_sib;
            n = n->parent;
        }
    }
    pthread_mutex_unlock(&tree_lock);
    return 0;
}

int cx__scope_check_slow(const cx_scope *s)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return cx__timespec_lt(&now, &s->deadline) ? 0 : CX_ETIMEDOUT;
}

/* 0, CX_ECANCELED (the current scope or an ancestor was cancelled) or
 * CX_ETIMEDOUT (a deadline of the chain passed). With no current scope:
 * 0, after one lookup. */
int cx_check(void)
{
    cx_scope *s = cx__scope_current();
    return s != NULL ? cx__scope_check(s) : 0;
}

bool cx_cancelled(void) { return cx_check() != 0; }

/* The earliest deadline of the current chain; CX_ELOOKUP if none. */
int cx_deadline(struct timespec *out)
{
    if (out == NULL)
        return CX_EINVAL;
    cx_scope *s = cx__scope_current();
    if (s == NULL || !s->has_deadline)
        return CX_ELOOKUP;
    *out = s->deadline;
    return 0;
}

/* now + ms on CLOCK_MONOTONIC (ms may be negative: a time past). */
struct timespec cx_deadline_in(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_nsec -= 1000000000L;
        t.tv_sec++;
    } else if (t.tv_nsec < 0) {
        t.tv_nsec += 1000000000L;
        t.tv_sec--;
    }
    return t;
}

/* ------------------------------------------------------------ internal */

cx_scope *cx__scope_of(const cx_context *ctx)
{
    if (ck_pr_load_uint(&cx__scopes_used) == 0)
        return NULL;
    /* A map reference of our own keeps the binding, hence the scope, alive
     * while we take a reference to it, whatever ctx's runner does. */
    cx__node *root = cx__context_snapshot(ctx);
    void *value;
    cx_scope *s = cx__map_get(root, &cx__scope_var_obj.v, &value) ? cx__scope_ref(value) : NULL;
    cx__map_release(root); /* may drop the binding: s holds its own */
    return s;
}

int cx__scope_wait_begin(struct cx__scope_waiter *w, void (*wake)(void *arg), void *arg,
                         const struct timespec *deadline, struct timespec *buf,
                         const struct timespec **until)
{
    w->scope = NULL;
    *until = deadline;
    cx_scope *s = cx__scope_current();
    if (s == NULL)
        return 0;
    int rc = cx__scope_check(s);
    if (rc != 0)
        return rc;
    if (s->has_deadline && (deadline == NULL || cx__timespec_lt(&s->deadline, deadline))) {
        *buf = s->deadline;
        *until = buf;
    }
    w->wake = wake;
    w->arg = arg;
    w->scope = s;
    w->prev = NULL;
    pthread_mutex_lock(&s->mu);
    w->next = s->waiters;
    if (w->next != NULL)
        w->next->prev = w;
    s->waiters = w;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void cx__scope_wait_end(struct cx__scope_waiter *w)
{
    cx_scope *s = w->scope;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        s->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&s->mu);
    w->scope = NULL;
}
