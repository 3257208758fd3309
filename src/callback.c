/* callback.c - bound callbacks (SPEC 5.2): capture the current context now,
 * run a function in it later, in any thread, under any executor.
 *
 * A callback is one allocation: the function, its argument, a reference
 * count, the capture and the room its runs need (a context embedded in
 * the object: private, no lock, no separate allocation). Each mode
 * allocates only its own part. While blocks are cached, a default-mode
 * callback is a block of its binder's slabs (slab.h), not a malloc, and
 * has no run slot (below): a slab block is one cache line.
 *
 * Default mode (flags == 0). The capture is a reference to the map that
 * was current at cx_bind (`root`); it never changes. Each run builds a
 * context around that map and runs in it: a context holding one more
 * reference to it, or, for an invoke's run in the thread's run context
 * (below), one that borrows the callback's (context.h `borrowed`). Either
 * way a set inside the run path-copies and the capture stays intact: the
 * map is shared, or the context takes a reference of its own before its
 * first change (cx__owner_lock). The run's context, with everything the
 * run wrote, is released when the run ends. Runs may overlap: they only
 * read `root` and take or borrow map references.
 *
 * Where the run's context lives. While blocks are cached (no race
 * detector, no valgrind checker): in the running thread's own run
 * context (tstate.h `run_ctx`), which nobody else can reach, so the run
 * claims and leaves it with plain stores (cx__run_private) and writes
 * nothing into the callback; a run nested in another run of the same
 * thread finds it busy and goes on as below. Otherwise: in the
 * callback's run slot, a second embedded context, claimed by a
 * compare-and-swap (`slot_busy`); a run that finds the slot taken (runs
 * overlapping in several threads, or a run of the callback from inside
 * its own run), or a callback in a slab block, which has no slot (caches
 * turned off since the bind, or a nested run), allocates a context
 * instead. The common case, bind then one invoke, so allocates nothing
 * beyond the callback. Not on the runner's stack: the context's words are
 * handoff addresses for race detectors, and DRD keeps what it learnt
 * about a stack address after the frame is gone (a mutex later placed
 * there is "not a mutex"); the heap block is forgotten when freed. A run
 * in the slot holds its own reference to the callback (it releases the
 * slot after fn returns, and fn may drop the caller's reference); a run
 * in an allocated context does not touch the callback once fn is called.
 *
 * Why even a one-shot cx_callback_invoke (its caller holds the only
 * reference) runs in a copy and not in the capture itself: fn may retain
 * its own callback (a re-arming timer does) and run it again, at once in
 * another thread or later; that run must start from the capture as it was
 * at cx_bind. Running in the capture would let a set update the captured
 * map in place (its count can be 1) and race with such a run. The copy
 * costs no allocation and nothing proportional to the variables set: a
 * reference-count pair on the map for a cx_callback_run, nothing for an
 * invoke in the thread's run context (the invoke holds the callback, and
 * so its capture, until after the context's teardown: the context borrows
 * the capture).
 *
 * Shared mode (CX_BIND_SHARED). The capture is a context holding the
 * captured map, and the one context every run enters. `busy` (under
 * `mu`) says a run holds it; a caller that finds it busy sleeps on the
 * event count `ec` (no spinning, never CX_EBUSY; like taking a mutex,
 * not a cancellation point), except the thread that holds it (a run of
 * the callback from inside its own fn): waiting for itself would never
 * end, so that call is CX_EBUSY, as cx_context_run is for a recursive
 * entry. The mutex orders one run's writes to the context before the next
 * run (and race detectors see that handoff natively).
 * A shared run holds its own reference to the callback for its duration,
 * since it touches the serialiser after fn returns.
 *
 * Every way out of fn (return, pthread_exit, cancellation, an exception
 * unwinding through it) gives up what the run holds here: the run
 * context, the slot, the shared mode's busy flag, the references.
 * cx_context_run takes care of leaving the context; the cleanup handlers
 * below (pthread_cleanup_push) take care of the rest.
 */
#include <stddef.h>

#include "context.h"
#include "sleep.h"

/* The shared mode's serialiser (allocated only with CX_BIND_SHARED). */
struct serial {
    pthread_mutex_t mu;
    struct ck_ec32 ec; /* waiting callers sleep here (a futex, not a
                          condition variable: glibc's may broadcast from
                          inside a wait, which helgrind reports) */
    bool busy;        /* under mu: a run holds the context */
    unsigned waiters; /* under mu: callers sleeping on ec */
    pthread_t runner; /* under mu, valid while busy */
    cx_context ctx;   /* the capture, the one context every run enters
                         (embedded, private: one runner at a time) */
};

struct cx_callback {
    cx__ref ref;
    cx__slab *slab; /* the slab the callback's memory is in (slab.h), or
                       NULL: its own cx__malloc block */
    unsigned flags;
    unsigned slot_busy; /* default mode: 1 while a run uses `slot` */
    void *(*fn)(void *);
    void *arg;
    cx__node *root; /* default mode: the capture, a map reference (owned;
                       never changes); shared mode: NULL */
    union {
        cx_context slot;  /* default mode: a run's context */
        struct serial sh; /* CX_BIND_SHARED */
    } u;
};

/* Each mode allocates only its part of the union. */
#define DEFAULT_SIZE (offsetof(struct cx_callback, u) + sizeof(cx_context))
#define SHARED_SIZE (offsetof(struct cx_callback, u) + sizeof(struct serial))
#define SLAB_SIZE offsetof(struct cx_callback, u)
_Static_assert(SLAB_SIZE <= CX__SLAB_BLOCK, "a slab callback fits a slab block");

static void callback_mem_free(cx_callback *cb)
{
    if (cb->slab != NULL)
        cx__slab_free(cb->slab);
    else
        cx__free(cb);
}

/* The fields every callback sets, the capture (root) last; then the
 * callback is published (see below) and handed out. */
static int bind_finish(cx_callback **out, cx_callback *cb, void *(*fn)(void *), void *arg,
                       unsigned flags, cx__node *root)
{
    cx__ref_init(&cb->ref);
    cb->flags = flags;
    cb->slot_busy = 0;
    cb->fn = fn;
    cb->arg = arg;
    cb->root = root;
    /* Publishes the callback (and whatever the caller wrote before
     * binding, e.g. fn's argument) to every run. A run can only start
     * after cx_bind returned and the pointer travelled through some
     * executor; that executor's own synchronisation (a futex-based queue,
     * an atomic ring) may be invisible to race detectors: this handoff is
     * announced here and taken in each run (bind -> run). */
    CX__HAPPENS_BEFORE(&cb->fn);
    *out = cb;
    return 0;
}

/* cx_bind with CX_BIND_SHARED (out of line: its mutex and the race
 * detectors' requests weigh on the default mode's frame). */
static __attribute__((noinline)) int bind_shared(cx_callback **out, void *(*fn)(void *),
                                                 void *arg)
{
    cx_callback *cb = cx__malloc(SHARED_SIZE);
    if (cb == NULL)
        return CX_ENOMEM;
    cb->slab = NULL;
    if (pthread_mutex_init(&cb->u.sh.mu, NULL) != 0) {
        cx__free(cb);
        return CX_ENOMEM;
    }
    cx__ec_init(&cb->u.sh.ec);
    /* Only ck's atomics touch it: hidden from helgrind/DRD until the
     * callback is freed; the handoff is the mutex. */
    CX__CK_UNTRACKED(&cb->u.sh.ec, sizeof(cb->u.sh.ec));
    cb->u.sh.busy = false;
    cb->u.sh.waiters = 0;
    /* Last, once nothing else can fail: the current context's map minus
     * its CX_VAR_LOCAL variables (context.h; O(1) when none is bound). */
    cx__node *root;
    int rc = cx__capture_root(&root);
    if (rc != 0) {
        CX__CK_TRACKED(&cb->u.sh.ec, sizeof(cb->u.sh.ec));
        pthread_mutex_destroy(&cb->u.sh.mu);
        cx__free(cb);
        return rc;
    }
    cx__context_embed(&cb->u.sh.ctx, root);
    return bind_finish(out, cb, fn, arg, CX_BIND_SHARED, NULL);
}

/* cx_bind's every case (out of line: see cx_bind). */
static __attribute__((noinline)) int bind_general(cx_callback **out, void *(*fn)(void *),
                                                  void *arg, unsigned flags)
{
    if (out == NULL || fn == NULL || (flags & ~CX_BIND_SHARED) != 0)
        return CX_EINVAL;
    if (flags & CX_BIND_SHARED)
        return bind_shared(out, fn, arg);
    /* Default mode. The memory: from this thread's slabs while blocks
     * are cached (slab.h: a callback is typically freed by another
     * thread, the executor's), else (or if a slab cannot be had) a block
     * of its own. */
    cx_callback *cb = NULL;
    cx__slab *slab = NULL;
    cx__tstate *st = cx__caching() ? cx__tstate_get() : NULL;
    if (st != NULL)
        cb = cx__slab_alloc(&st->slabs, &slab);
    if (cb == NULL && (cb = cx__malloc(DEFAULT_SIZE)) == NULL)
        return CX_ENOMEM;
    cb->slab = slab;
    /* The capture: as in bind_shared. */
    cx__node *root;
    int rc = cx__capture_root(&root);
    if (rc != 0) {
        callback_mem_free(cb);
        return rc;
    }
    return bind_finish(out, cb, fn, arg, 0, root);
}

int cx_bind(cx_callback **out, void *(*fn)(void *), void *arg, unsigned flags)
{
    /* The common case, with no call on its way (so no register to save):
     * default mode, blocks cached, a block left in this thread's current
     * slab, and a reference in the current context's bank to a map
     * without local variables (or an empty map). The producer of a
     * foreign executor pays this on every item. */
    cx__tstate *st = cx__tstate_cur();
    if (__builtin_expect(flags == 0 && out != NULL && fn != NULL && st != NULL && cx__caching(), 1)) {
        cx_context *cur = st->cur;
        if (cx__slab_ready(&st->slabs) && cur != NULL && cx__capture_root_ready(cur)) {
            cx__slab *slab;
            cx_callback *cb = cx__slab_alloc(&st->slabs, &slab);
            cb->slab = slab;
            return bind_finish(out, cb, fn, arg, 0, cx__owner_root_ref(cur));
        }
    }
    return bind_general(out, fn, arg, flags);
}

cx_callback *cx_callback_retain(cx_callback *cb)
{
    if (cb != NULL)
        cx__ref_inc(&cb->ref);
    return cb;
}

void cx_callback_release(cx_callback *cb)
{
    /* cx__ref_dec orders every holder's writes (runs' included) before the
     * teardown, with its fences and race-detector annotations. */
    if (cb == NULL || !cx__ref_dec(&cb->ref))
        return;
    /* Destroy callbacks of owned values may run here, in this thread. */
    if (cb->flags & CX_BIND_SHARED) {
        cx_context_release(&cb->u.sh.ctx); /* embedded: frees nothing */
        CX__CK_TRACKED(&cb->u.sh.ec, sizeof(cb->u.sh.ec));
        pthread_mutex_destroy(&cb->u.sh.mu);
    } else {
        cx__map_release(cb->root);
    }
    callback_mem_free(cb);
}

/* ------------------------------------------------------------ default mode */

/* What a default run holds until it ends, however it ends. */
struct copy_run {
    cx_context *ctx;  /* the run's context (a reference) */
    cx_callback *ref; /* a reference to release at the end, or NULL */
    cx_callback *slot_of; /* ctx is this callback's slot, or NULL */
    cx__tstate *st_of;    /* ctx is this thread state's run_ctx, or NULL */
};

/* The end of a default run, however it ends (a cleanup handler).
 * p: the run's struct copy_run, whose references it drops. */
static void copy_run_end(void *p)
{
    struct copy_run *r = p;
    /* Drops the map reference and whatever the run wrote (destroy
     * callbacks run here, in this thread). cx_context_run has left ctx by
     * now, and holds no reference to it any more. */
    cx_context_release(r->ctx);
    if (r->st_of != NULL)
        r->st_of->run_ctx_busy = false;
    if (r->slot_of != NULL) {
        /* The slot's teardown is visible to the next run that claims it
         * (its compare-and-swap, then CX__HAPPENS_AFTER). */
        CX__HAPPENS_BEFORE(&r->slot_of->slot_busy);
        ck_pr_fence_release();
        ck_pr_store_uint(&r->slot_of->slot_busy, 0);
    }
    cx_callback_release(r->ref);
}

/* fn(arg) in a private copy of the capture. own: a reference to release
 * when the run ends (consumed), or NULL. cb is borrowed; if the run is not
 * in cb's slot, it is not touched once fn is called. */
static int run_copy(cx_callback *cb, void **result, cx_callback *own)
{
    struct copy_run r = {.ref = own};
    void *(*fn)(void *) = cb->fn;
    void *arg = cb->arg;
    int rc;
    /* The capture never changes in default mode: reading it needs no
     * lock. The run's context holds a reference of its own (taken here),
     * which makes the map shared, so the run's sets never update it in
     * place; or it borrows the callback's (below). */
    cx__node *root = cb->root;
    cx__tstate *st = cx__caching() ? cx__tstate_cur() : NULL;
    if (st != NULL && !st->run_ctx_busy &&
        (st->run_ctx != NULL || (st->run_ctx = cx__malloc(sizeof(cx_context))) != NULL)) {
        /* The common case while blocks are cached: this thread's own run
         * context (tstate.h), which nobody else can reach, run without
         * locked instructions (cx__run_private); the run writes nothing
         * into the callback. (Under a race detector blocks are not
         * cached: every run is in the slot or a block of its own, below.)
         * A run of a callback from inside another run of this thread
         * goes on below (the slot; a slab callback has none: a context
         * of its own). An invoke's run holds its reference to cb until
         * after the context's teardown (copy_run_end), and cb holds the
         * capture: the context borrows it, and takes a reference only if
         * fn changes it (context.h, `borrowed`). A run from
         * cx_callback_run holds no reference (fn may drop the caller's). */
        st->run_ctx_busy = true;
        if (own == cb) {
            r.ctx = cx__context_embed_borrowed(st->run_ctx, root);
        } else {
            cx__map_retain(root);
            r.ctx = cx__context_embed(st->run_ctx, root);
        }
        r.st_of = st;
    } else {
        cx__map_retain(root);
        if (cb->slab == NULL && ck_pr_cas_uint(&cb->slot_busy, 0, 1)) {
            /* The previous user of the slot is done with it. */
            ck_pr_fence_acquire();
            CX__HAPPENS_AFTER(&cb->slot_busy);
            r.ctx = cx__context_embed(&cb->u.slot, root);
            r.slot_of = cb;
            if (r.ref == NULL)
                r.ref = cx_callback_retain(cb);
        } else {
            r.ctx = cx__context_with_root(root); /* consumes root */
            if (r.ctx == NULL) {
                cx_callback_release(own);
                return CX_ENOMEM;
            }
        }
    }
    pthread_cleanup_push(copy_run_end, &r);
    if (r.st_of != NULL) {
        void *res = cx__run_private(st, r.ctx, fn, arg);
        if (result != NULL)
            *result = res;
        rc = 0;
    } else {
        rc = cx_context_run(r.ctx, fn, arg, result);
    }
    pthread_cleanup_pop(1);
    return rc;
}

/* ------------------------------------------------------------- shared mode */

/* The end of a shared run, however it ends. p: where the run's reference
 * to the callback (consumed) is. */
static void shared_run_end(void *p)
{
    cx_callback *cb = *(cx_callback **)p;
    struct serial *s = &cb->u.sh;
    pthread_mutex_lock(&s->mu);
    s->busy = false;
    bool wake = s->waiters > 0;
    pthread_mutex_unlock(&s->mu);
    /* After the state change (under mu), as sleep.h's protocol asks: a
     * waiter read the count under mu before it slept, so it sees the
     * bump. Every sleeper wakes; one takes the turn, the others sleep
     * again. The run's reference (released below) keeps cb alive. */
    if (wake)
        cx__ec_bump(&s->ec);
    cx_callback_release(cb);
}

/* fn(arg) in the capture itself, one run at a time. own: as run_copy. */
static int run_shared(cx_callback *cb, void **result, cx_callback *own)
{
    struct serial *s = &cb->u.sh;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&s->mu);
    if (s->busy && pthread_equal(s->runner, self)) {
        /* A run of cb from inside its own run: it would wait for itself. */
        pthread_mutex_unlock(&s->mu);
        cx_callback_release(own);
        return CX_EBUSY;
    }
    if (s->busy) {
        /* Waiting for our turn is not a cancellation point: a cancel is
         * acted upon at the next cancellation point, in fn or after the
         * run. That keeps the wait free of cleanup. */
        int old;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
        s->waiters++;
        do {
            uint32_t seen = cx__ec_value(&s->ec); /* under mu: see shared_run_end */
            pthread_mutex_unlock(&s->mu);
            cx__ec_wait(&s->ec, seen);
            pthread_mutex_lock(&s->mu);
        } while (s->busy);
        s->waiters--;
        pthread_setcancelstate(old, NULL);
    }
    s->busy = true;
    s->runner = self;
    pthread_mutex_unlock(&s->mu);

    /* Our turn: nobody else enters s->ctx until busy is cleared, so
     * cx_context_run cannot see CX_EBUSY from another run. The run's own
     * reference (fn may drop the caller's) is invoke's, if it gave one. */
    cx_callback *ref = own != NULL ? own : cx_callback_retain(cb);
    int rc;
    /* (By address: a constant, which setjmp-based cleanup can keep.) */
    pthread_cleanup_push(shared_run_end, &ref);
    rc = cx_context_run(&s->ctx, cb->fn, cb->arg, result);
    pthread_cleanup_pop(1);
    return rc;
}

/* ---------------------------------------------------------------- running */

/* One run of cb, either mode; own: as run_copy (the reference a one-shot
 * invoke hands over, released when the run ends, or NULL). */
static int run(cx_callback *cb, void **result, cx_callback *own)
{
    CX__HAPPENS_AFTER(&cb->fn); /* bind -> run, see cx_bind */
    if (cb->flags & CX_BIND_SHARED)
        return run_shared(cb, result, own);
    return run_copy(cb, result, own);
}

int cx_callback_run(cx_callback *cb, void **result)
{
    if (cb == NULL)
        return CX_EINVAL;
    return run(cb, result, NULL);
}

void cx_callback_invoke(void *p)
{
    cx_callback *cb = p;
    if (cb == NULL)
        return;
    /* The run releases the reference handed over with cb when it ends, on
     * every way out (also when it could not run: out of memory for this
     * thread's state, or a shared callback invoked from its own run). */
    (void)run(cb, NULL, cb);
}
