/* context.h - contexts and the per-thread current-context machinery. */
#ifndef CX_CONTEXT_H
#define CX_CONTEXT_H

#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "hamt.h"
#include "tstate.h"
#include "var.h"
#include "watch.h"

/* A context is a mutable holder of an immutable map.
 *
 * Invariants:
 *  - `entered` has CX__CTX_ENTERED while some thread has the context
 *    current (run, enter, a thread's own base context, create_in, a pool
 *    job). It is taken with a compare-and-swap, so of two racing threads
 *    exactly one enters, and given up with one exchange (cx__leave).
 *  - Only the thread that entered the context changes `root`, and it does
 *    so holding `lock`. Other threads read `root` only under `lock`, long
 *    enough to take a reference (a snapshot); so the owner, holding the
 *    lock, knows a root with count 1 is seen by nobody and may update it in
 *    place (hamt.c, "Ownership"). The owner itself reads `root` without the
 *    lock: nobody else writes it.
 */
struct cx_context {
    cx__ref ref;
    unsigned int entered; /* CX__CTX_* (atomic, see below) */
    /* True when no thread but the runner can reach this context (a
     * thread's base context, a snapshot the pool or a thread trampoline
     * keeps to itself): there are no readers to exclude, so the owner
     * skips the lock. */
    bool private_;
    /* The storage belongs to another object (a pool job embeds its private
     * snapshot): the last release tears the context down without freeing
     * it, and, being private, it has no lock to initialise or destroy. */
    bool embedded_;
    uint64_t id;    /* unique for the life of the process; tokens keep it */
    /* While claimed (entered), written and read by the claiming thread
     * only: */
    cx_context *enter_prev;  /* current before the run or enter that made
                                this context current (borrowed) */
    cx_context *enter_below; /* cx_context_enter: that thread's enter_top
                                before (borrowed) */
    struct cx__strand *strand; /* pool jobs queued into this context
                                  (strand.c); NULL until the first */
    cx__node *root; /* owned, unless `borrowed` (below); NULL is the
                       empty map */
    /* The bank: references to root the context holds beyond its own
     * (0 when root is NULL), taken and given back by its runner alone
     * without locked instructions (cx__owner_root_ref; context.c).
     * A capture (copy, submit, bind, thread create) takes one from here:
     * when the bank is empty it is filled with CX__BANK_FILL references
     * in one atomic add, so the count of a root that every job of a
     * submitter shares is not written once per capture. The runner empties
     * the bank before it changes root (cx__owner_lock: a root held
     * by its context alone is updated in place), and the context's
     * teardown drops it with root: banked references never outlive the
     * context's own, so they never delay a destroy. Written, like root,
     * only by the thread that has the context entered. */
    unsigned bank;
    /* Whether root binds no CX_VAR_LOCAL variable: read off root when the
     * bank is filled, and valid while the bank is not empty (root changes
     * only after cx__owner_drop_bank): a capture from the bank then never
     * reads the root node, whose count line the threads that release
     * captures keep writing. Owned like bank. */
    bool bank_plain;
    /* root is borrowed, not owned: the context holds no reference of its
     * own to it (a default-mode callback's run, callback.c: the invoke
     * holds the callback, which holds its capture, until after the
     * context's teardown; two locked operations per invoke saved). The
     * runner takes a reference of its own before it changes root
     * (cx__owner_lock), and the teardown drops root only if owned. Owned
     * like bank. */
    bool borrowed;
};

/* References a bank takes at once when empty, and holds at most. */
#define CX__BANK_FILL 256u
#define CX__BANK_MAX 512u

/* Context memory through the calling thread's cache (tstate.h). */
static inline void *cx__context_mem_alloc(void)
{
    cx__tstate *st = cx__tstate_cur();
    void *c = st != NULL ? cx__fl_pop(&st->ctx_cache) : NULL;
    return c != NULL ? c : cx__malloc(sizeof(cx_context));
}
static inline void cx__context_mem_free(void *p)
{
    cx__tstate *st = cx__tstate_cur();
    if (st == NULL || !cx__fl_push(&st->ctx_cache, p, CX__CONTEXT_CACHE))
        cx__free(p);
}

/* The lock of a context (the "lock" of the invariants above): one of
 * CX__CTX_LOCKS mutexes, picked by the context's address. A context has no
 * mutex of its own: none to initialise or destroy per copy (glibc's init
 * alone is ~40 instructions), and a lock is held for a few instructions
 * only, never while another is taken, so contexts sharing one cannot
 * deadlock. A mutex, not a spinlock: every race detector models mutexes
 * natively (helgrind misreads glibc's spinlocks). */
#define CX__CTX_LOCKS 64
extern CX__HIDDEN pthread_mutex_t cx__ctx_locks[CX__CTX_LOCKS];
static inline pthread_mutex_t *cx__context_lock(const cx_context *ctx)
{
    uintptr_t a = (uintptr_t)ctx;
    return &cx__ctx_locks[((a >> 6) ^ (a >> 12)) % CX__CTX_LOCKS];
}


/* This thread's current context (borrowed), or NULL. */
static inline cx_context *cx__current(void)
{
    cx__tstate *st = cx__tstate_cur();
    return st != NULL ? st->cur : NULL;
}

/* A new reference to ctx's map (NULL: empty), for its runner (the calling
 * thread has ctx entered): from the bank, refilled when empty. */
static inline cx__node *cx__owner_root_ref(cx_context *ctx)
{
    cx__node *root = ctx->root;
    if (root == NULL)
        return NULL;
    if (__builtin_expect(ctx->bank == 0, 0)) {
        /* root is held (the context's reference, or its lender's while
         * borrowed) as long as the runner runs: adding is safe. */
        cx__hamt_retain_n(root, CX__BANK_FILL);
        ctx->bank = CX__BANK_FILL;
        ctx->bank_plain = cx__map_nlocal(root) == 0;
    }
    ctx->bank--;
    return root;
}
/* Empties ctx's bank, for its runner, before it changes ctx->root: the
 * banked references go back to the count in one atomic subtraction, so
 * that a root held by the context alone is seen unique again (and updated
 * in place). Never the last: the context keeps its own reference (or its
 * lender does, while root is borrowed). */
static inline void cx__owner_drop_bank(cx_context *ctx)
{
    if (__builtin_expect(ctx->bank != 0, 0)) {
        cx__hamt_unref_nonlast(ctx->root, ctx->bank);
        ctx->bank = 0;
    }
}

/* The owner's lock around an update of ctx->root (see private_). Every
 * change of root goes through it, so it first empties the bank
 * (cx__owner_drop_bank) and turns a borrowed root into an owned one. */
static inline void cx__owner_lock(cx_context *ctx)
{
    cx__owner_drop_bank(ctx);
    if (__builtin_expect(ctx->borrowed, 0)) {
        /* Ours now: the change releases it (a path copy), never the
         * lender's. */
        cx__map_retain(ctx->root);
        ctx->borrowed = false;
    }
    if (!ctx->private_)
        pthread_mutex_lock(cx__context_lock(ctx));
}
static inline void cx__owner_unlock(cx_context *ctx)
{
    if (!ctx->private_)
        pthread_mutex_unlock(cx__context_lock(ctx));
}

/* The current context for a write, creating the base context; NULL on
 * ENOMEM. Borrowed. */
CX__HIDDEN cx_context *cx__base_create(cx__tstate *st);
static inline cx_context *cx__current_for_write(cx__tstate *st)
{
    return __builtin_expect(st->cur != NULL, 1) ? st->cur : cx__base_create(st);
}

/* The `entered` word. 0: nobody runs in the context. ENTERED: one thread
 * has it current (it alone writes root). ZOMBIE: the last reference was
 * dropped while it was entered (cx_context_run holds no count of its own):
 * whoever leaves it tears it down. PARKED: a strand job waits for it to be
 * left (strand.c); whoever leaves it hands the job back to its pool.
 * ZOMBIE and PARKED are only ever set together with ENTERED, and leaving
 * clears the word whole with one exchange. */
enum { CX__CTX_ENTERED = 1u, CX__CTX_ZOMBIE = 2u, CX__CTX_PARKED = 4u };

/* The handoff announcements on ctx->entered (annotate.h), out of line:
 * the word's address is then computed only where it is announced, not
 * kept in a register across a run. */
CX__HIDDEN void cx__entered_announce_after(cx_context *ctx);
CX__HIDDEN void cx__entered_announce_before(cx_context *ctx);
static inline void cx__entered_after(cx_context *ctx)
{
    if (__builtin_expect(cx__detector != 0, 0))
        cx__entered_announce_after(ctx);
}
static inline void cx__entered_before(cx_context *ctx)
{
    if (__builtin_expect(cx__detector != 0, 0))
        cx__entered_announce_before(ctx);
}

/* Atomically claims ctx->entered; false if already entered. */
static inline bool cx__try_enter(cx_context *ctx)
{
    /* The acquire pairs with the release in cx__leave of the previous
     * runner: its changes to ctx->root are visible to us. Announced on a
     * failed claim too: the loser read the word the last leaver wrote.
     * The word itself is hidden from helgrind/DRD (context.c, track_word):
     * its accesses are all atomic, and these announcements carry the
     * ordering. (Two returns: the outcome is branched on at once, not
     * kept across the announcement.) */
    if (__builtin_expect(!ck_pr_cas_uint(&ctx->entered, 0, CX__CTX_ENTERED), 0)) {
        ck_pr_fence_acquire();
        cx__entered_after(ctx);
        return false;
    }
    ck_pr_fence_acquire();
    cx__entered_after(ctx);
    return true;
}

/* Strands (pool/strand.c): the pool jobs cx_pool_submit_in queued into a
 * context. The core calls back into them only from these points. */
struct cx__strand;
/* True when no job of the strand is queued, parked or running. */
CX__HIDDEN bool cx__strand_idle(const struct cx__strand *s);
/* Drops one reference to a strand (NULL: no-op): the context's, when it is
 * destroyed, or a strand job's; the last frees it. */
CX__HIDDEN void cx__strand_free(struct cx__strand *s);
/* ctx was left while its strand's next job was parked on it: hands that
 * job back to its pool. */
CX__HIDDEN void cx__strand_wake(cx_context *ctx);

/* Slow part of cx__leave: the word held ZOMBIE or PARKED (old). */
CX__HIDDEN void cx__leave_slow(cx_context *ctx, unsigned int old);

/* Gives ctx up (the caller claimed it). After this the caller must not
 * touch ctx unless it holds a reference. */
static inline void cx__leave(cx_context *ctx)
{
    /* Publish our changes to ctx before another thread can enter it. */
    cx__entered_before(ctx);
    ck_pr_fence_release();
    /* An exchange, not a store: a releaser or a parking strand job may
     * have flagged the word meanwhile, and exactly one of us must see the
     * other (cx_context_release, strand.c). */
    unsigned int old = ck_pr_fas_uint(&ctx->entered, 0);
    if (__builtin_expect(old != CX__CTX_ENTERED, 0))
        cx__leave_slow(ctx, old);
}

/* Enter/leave for an already-claimed context (entered is owned by the
 * caller). switch_in returns the previous current context (borrowed).
 * Every switch of a thread's current context goes through these two (run,
 * enter/exit, thread trampolines, pool jobs, strands), so they are where
 * watchers hear of it: ENTER once ctx is current, EXIT while it still is
 * (a callback reads the context being entered or left). */
static inline cx_context *cx__switch_in_quiet(cx__tstate *st, cx_context *ctx);
static inline cx_context *cx__switch_in(cx__tstate *st, cx_context *ctx)
{
    cx_context *prev = cx__switch_in_quiet(st, ctx);
    if (cx__watching())
        cx__watch_switch(CX_WATCH_ENTER, ctx);
    return prev;
}
/* cx__switch_in without the watchers' ENTER: for a caller that has just
 * seen none registered. */
static inline cx_context *cx__switch_in_quiet(cx__tstate *st, cx_context *ctx)
{
    cx_context *prev = st->cur;
    st->cur = ctx;
    st->fast.gen++;
    return prev;
}
static inline void cx__switch_out(cx__tstate *st, cx_context *ctx, cx_context *prev)
{
    if (cx__watching())
        cx__watch_switch(CX_WATCH_EXIT, ctx);
    (void)cx__switch_in_quiet(st, prev); /* prev current again, cache stale */
    cx__leave(ctx);
}

/* Leaves every context this thread entered with cx_context_enter,
 * innermost first, dropping the enters' references: for thread end. */
CX__HIDDEN void cx__exit_all_entered(cx__tstate *st);
/* Leaves the contexts this thread entered with cx_context_enter while it
 * ran in ctx and did not exit, innermost first, until ctx is current
 * again; drops the enters' references. For the end of a run in ctx. */
CX__HIDDEN void cx__exit_entered_into(cx__tstate *st, cx_context *ctx);

/* The state of a run in progress, for the cleanup that leaves it on every
 * way out of fn (return, pthread_exit, cancellation, a C++ exception).
 * What fn entered with cx_context_enter and did not exit needs no record
 * of its own: a run's fn can exit only what it entered itself (the exit
 * requires its context to be current, and the run's own context is never
 * an entered one), and every inner run has restored the current context
 * by the time this frame leaves. So, after fn, the current context is
 * ctx exactly when fn left nothing entered; otherwise it is the
 * innermost of what fn left, and those contexts are the top of the
 * thread's enter stack down to ctx. Less state across the call of fn:
 * fewer registers to save per run. */
struct cx__run_frame {
    cx__tstate *st;
    cx_context *ctx; /* claimed by the run; ctx->enter_prev is the context
                        current before it (the run has the claimed
                        context's fields to itself: one register less to
                        save across fn) */
};
/* Makes ctx, claimed by the caller, st's current context for a run. */
static inline struct cx__run_frame cx__run_enter(cx__tstate *st, cx_context *ctx)
{
    ctx->enter_prev = cx__switch_in(st, ctx);
    return (struct cx__run_frame){.st = st, .ctx = ctx};
}
/* Runs on every way out of a run's frame: return, and the unwinding of
 * pthread_exit, cancellation and C++ exceptions (the library is built
 * with -fexceptions, so the cleanup attribute that names this is honoured
 * by all three). Contexts fn entered and did not exit are left first. */
static inline __attribute__((always_inline)) void cx__run_frame_leave(struct cx__run_frame *fr)
{
    if (__builtin_expect(fr->st->cur != fr->ctx, 0))
        cx__exit_entered_into(fr->st, fr->ctx);
    cx__switch_out(fr->st, fr->ctx, fr->ctx->enter_prev);
}
/* cx_context_run for a context the caller has already claimed
 * (cx__try_enter); it is left when this returns, however fn ends. */
CX__HIDDEN void *cx__run_claimed(cx__tstate *st, cx_context *ctx, void *(*fn)(void *),
                                 void *arg);
/* cx_context_run for a private context that no other thread can reach
 * (embedded in storage of the calling thread's, never shown to anyone:
 * nobody can enter it, release it, flag it or park a strand job on it):
 * claimed and left with plain stores, not the compare-and-swap and
 * exchange that a context others may enter needs. Only while blocks are
 * cached (no race detector is announced to, which would need the claim's
 * announcements). Left when this returns, however fn ends. */
CX__HIDDEN void *cx__run_private(cx__tstate *st, cx_context *ctx, void *(*fn)(void *),
                                 void *arg);

/* A reference to ctx's current map, consistent even while the owner sets
 * (new reference, may be NULL for empty). */
CX__HIDDEN cx__node *cx__context_snapshot(const cx_context *ctx);
/* A new context holding the given map reference (consumed). NULL on
 * ENOMEM (the reference is then released). */
CX__HIDDEN cx_context *cx__context_with_root(cx__node *root);
/* cx_copy_context() for a copy whose pointer the caller never shows to
 * another thread (it may run it, or hand it to one runner). New reference. */
CX__HIDDEN cx_context *cx__copy_context_private(void);
/* A private context built in storage the caller provides (and frees
 * after the last release), holding `root` (a map reference, consumed; NULL
 * for an empty context): no allocation, cannot fail. Returns storage,
 * holding one reference. */
CX__HIDDEN cx_context *cx__context_embed(cx_context *storage, cx__node *root);
/* As cx__context_embed, but root is borrowed (not consumed): the caller
 * keeps it alive, unchanged, until after the context's teardown, and the
 * context takes a reference of its own only if its runner changes it
 * (`borrowed`). */
CX__HIDDEN cx_context *cx__context_embed_borrowed(cx_context *storage, cx__node *root);
/* As cx__context_embed, but the context is not private: other threads may
 * read it (cx_context_copy, cx_context_get) under its striped lock while
 * its runner sets variables in it, as a pool job's context is read by
 * cx_pool_inspect. Its owner frees the storage after the last release.
 * Cannot fail; returns storage. */
CX__HIDDEN cx_context *cx__context_embed_shared(cx_context *storage, cx__node *root);

/* --- captures (SPEC 5.4): what crosses to another thread or a later run.
 *
 * cx_thread_create, cx_pool_submit, cx_pool_try_submit, cx_group_go and
 * cx_bind capture the current context *minus its CX_VAR_LOCAL variables*;
 * cx_copy_context, cx_context_copy, submit_in and create_in carry
 * everything (Python's semantics). Every such capture goes through the
 * functions below. With no local variable bound in the current map (its
 * root's count, one load) a capture is the plain O(1) snapshot; otherwise
 * it costs in proportion to the local bindings: each is deleted from a
 * private copy of the map (which may allocate, hence CX_ENOMEM). The
 * original map is never changed, so owned values stay with it and are
 * destroyed exactly once, when their last holder goes. */

/* cx__capture_root's slow part: root (a reference, consumed) binds local
 * variables; *out receives it minus those. 0 or CX_ENOMEM (then nothing
 * is held and *out is untouched). */
CX__HIDDEN int cx__capture_strip(cx__node *root, cx__node **out);
/* True when cx__capture_root's answer for cur (the current context) is
 * cx__owner_root_ref(cur), taken from its bank with no call: its map is
 * empty, or its bank holds a reference and the map binds no local
 * variable. */
static inline bool cx__capture_root_ready(const cx_context *cur)
{
    return cur->root == NULL || (cur->bank != 0 && cur->bank_plain);
}
/* A new map reference in *out (NULL: empty) for the current context minus
 * its local variables. 0 or CX_ENOMEM (*out untouched). */
static inline int cx__capture_root(cx__node **out)
{
    cx_context *cur = cx__current();
    cx__node *root = cur != NULL ? cx__owner_root_ref(cur) : NULL;
    /* The common case: no local variable bound (known from the bank,
     * without touching the root node). */
    if (__builtin_expect(root == NULL || cur->bank_plain, 1)) {
        *out = root;
        return 0;
    }
    return cx__capture_strip(root, out);
}
/* A private context (new reference) holding a capture: for
 * cx_thread_create and cx_group_go. NULL on ENOMEM. */
CX__HIDDEN cx_context *cx__capture_private(void);

#endif
