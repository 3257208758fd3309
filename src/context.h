/* context.h - contexts and the per-thread current-context machinery. */
#ifndef CX_CONTEXT_H
#define CX_CONTEXT_H

#include <pthread.h>
#include <stdint.h>

#include "hamt.h"
#include "var.h"

/* A context is a mutable holder of an immutable map.
 *
 * Invariants:
 *  - `entered` is 1 while some thread has the context current (run, a
 *    thread's own base context, cx_thread_create_in). It is taken with a
 *    compare-and-swap, so of two racing threads exactly one enters.
 *  - Only the thread that entered the context changes `root`, and it does
 *    so holding `lock`. Other threads read `root` only under `lock`, long
 *    enough to take a reference (a snapshot); so the owner, holding the
 *    lock, knows a root with count 1 is seen by nobody and may update it in
 *    place (hamt.c, "Ownership"). The owner itself reads `root` without the
 *    lock: nobody else writes it.
 */
struct cx_context {
    cx__ref ref;
    unsigned int entered;
    /* True when no thread but the runner can reach this context (a
     * thread's base context, a snapshot the pool or a thread trampoline
     * keeps to itself): there are no readers to exclude, so the owner
     * skips the lock. */
    bool private_;
    /* The storage belongs to another object (a pool job embeds its private
     * snapshot): the last release tears the context down without freeing
     * it, and, being private, it has no lock to initialise or destroy. */
    bool embedded_;
    /* A mutex, not a spinlock: it is held for a few instructions, only
     * for contexts other threads can reach, and every race detector
     * models mutexes natively (helgrind misreads glibc's spinlocks). */
    pthread_mutex_t lock;
    uint64_t id;    /* unique for the life of the process; tokens keep it */
    cx__node *root; /* owned; NULL is the empty map */
};

/* The owner's lock around an update of ctx->root (see private_). */
static inline void cx__owner_lock(cx_context *ctx)
{
    if (!ctx->private_)
        pthread_mutex_lock(&ctx->lock);
}
static inline void cx__owner_unlock(cx_context *ctx)
{
    if (!ctx->private_)
        pthread_mutex_unlock(&ctx->lock);
}

/* The lookup cache (struct cx__fast, laid out in cxvars.h so that the
 * inline get can read it): one direct-mapped entry per slot. An entry is
 * valid iff its gen equals the thread's gen; every set/reset/enter/exit in
 * the thread bumps gen, which invalidates all entries at once. Values are
 * borrowed from the current map. */
typedef struct cx__cache_entry cx__cache_entry;

static inline void cx__cache_fill(cx__cache_entry *e, const cx_var *var, uint64_t gen,
                                  bool found, void *value)
{
    e->key = (uintptr_t)var | (found ? 0u : 1u);
    e->gen = gen;
    e->value = value;
}

/* The reset reserve. The reset that ends a CX_WITH block must not fail:
 * the block has no way to report it, and a failed reset leaves bound a
 * value whose scope ended. A reset allocates only when the map is shared
 * (a copy was taken since the set), at most one node per level plus the
 * nodes of one split: CX__RESERVE_BLOCKS node-sized blocks. Each thread
 * keeps that many for every open CX_WITH block (up to CX__WITH_COVERED
 * nested blocks), plus one set for a plain reset; sets that return a token
 * take them from the allocator, and only a reset may use them when the
 * allocator fails. CX_WITH runs its block only once the reserve covers it
 * (token.c). */
#define CX__RESERVE_BLOCKS (CX__HAMT_MAX_DEPTH + 2)
#define CX__RESERVE_BLOCK_BYTES CX__NODE_BYTES(32)
#define CX__WITH_COVERED 8
#define CX__RESERVE_MAX (CX__RESERVE_BLOCKS * (CX__WITH_COVERED + 1))

typedef struct cx__tstate {
    struct cx__fast fast; /* first: cx__fast_tls points here */
    unsigned nreserve;
    unsigned with_depth; /* CX_WITH blocks open in this thread */
    bool reserve_armed;  /* a reset is under way: the reserve may be used */
    void *reserve[CX__RESERVE_MAX]; /* owned blocks */
    cx_context *cur;  /* borrowed from whoever entered it (run, thread
                         trampoline), or == base */
    cx_context *base; /* owned; created by the first set outside any run */
} cx__tstate;

/* This thread's state or NULL (never allocated by readers). The pointer
 * is cxvars.h's cx__fast_tls, pointing at the state's first member. The
 * shared library uses the initial-exec TLS model: the default
 * (global-dynamic) model adds a call to __tls_get_addr on every access. */
static inline cx__tstate *cx__tstate_cur(void) { return (cx__tstate *)(void *)cx__fast_tls; }
static inline void cx__tstate_set(cx__tstate *st) { cx__fast_tls = st != NULL ? &st->fast : NULL; }

/* Creates and installs this thread's state; NULL on ENOMEM. Borrowed. */
CX__HIDDEN cx__tstate *cx__tstate_create(void);
/* This thread's state, created on first need; NULL on ENOMEM. Borrowed. */
static inline cx__tstate *cx__tstate_get(void)
{
    cx__tstate *st = cx__tstate_cur();
    return st != NULL ? st : cx__tstate_create();
}
/* A fresh state not yet bound to any thread (new, owned); NULL on ENOMEM. */
CX__HIDDEN cx__tstate *cx__tstate_new(void);
/* Makes st (consumed) this thread's state; returns it borrowed. */
CX__HIDDEN cx__tstate *cx__tstate_install(cx__tstate *st);
/* Frees a state (consumed) that no thread runs on any more: its reserve
 * and its base context. */
CX__HIDDEN void cx__tstate_free(cx__tstate *st);
/* Blocks the reserve should hold with `open` CX_WITH blocks open. */
static inline unsigned cx__reserve_target(unsigned open)
{
    return CX__RESERVE_BLOCKS * (1 + (open < CX__WITH_COVERED ? open : CX__WITH_COVERED));
}
/* Tops st's reserve up to `target` blocks; a failed allocation just leaves
 * it short. */
CX__HIDDEN void cx__reserve_fill(cx__tstate *st, unsigned target);
/* The current context for a write, creating the base context; NULL on
 * ENOMEM. Borrowed. */
CX__HIDDEN cx_context *cx__current_for_write(cx__tstate *st);

/* Atomically claims ctx->entered; false if already entered. */
static inline bool cx__try_enter(cx_context *ctx)
{
    if (!ck_pr_cas_uint(&ctx->entered, 0, 1))
        return false;
    /* Pairs with the release in cx__switch_out of the previous runner:
     * its changes to ctx->root are visible to us. */
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(&ctx->entered);
    return true;
}

/* Enter/leave for an already-claimed context (entered == 1 is owned by
 * the caller). switch_in returns the previous current context (borrowed). */
static inline cx_context *cx__switch_in(cx__tstate *st, cx_context *ctx)
{
    cx_context *prev = st->cur;
    st->cur = ctx;
    st->fast.gen++;
    return prev;
}
static inline void cx__switch_out(cx__tstate *st, cx_context *ctx, cx_context *prev)
{
    st->cur = prev;
    st->fast.gen++;
    /* Publish our changes to ctx before another thread can enter it. */
    CX__HAPPENS_BEFORE(&ctx->entered);
    ck_pr_fence_release();
    ck_pr_store_uint(&ctx->entered, 0);
}

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
/* cx__context_embed of a snapshot of the current context. */
CX__HIDDEN cx_context *cx__copy_context_into(cx_context *storage);

#endif
