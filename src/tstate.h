/* tstate.h - the per-thread state: current context, the contexts this
 * thread entered with cx_context_enter, the lookup cache and the reset
 * reserve. Its own header so that the pool reaches it through this narrow
 * interface (create a state for a worker, install it, free it) and the map
 * reaches only the reserve. */
#ifndef CX_TSTATE_H
#define CX_TSTATE_H

#include "hamt.h"
#include "slab.h"

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
#define CX__RESERVE_BLOCK_BYTES CX__NODE_MAX_BYTES
#define CX__WITH_COVERED 8
#define CX__RESERVE_MAX (CX__RESERVE_BLOCKS * (CX__WITH_COVERED + 1))

/* The variable bank: references to variables the thread keeps for the
 * tokens it makes (token.c). A token holds a reference to its variable
 * (cx_token_var stays valid while it lives); taking it from here and giving
 * it back here, not with an atomic increment and decrement of a count that
 * every thread setting the variable shares, takes two locked instructions
 * out of each set+reset. A slot holds `n` references to `var` (var is
 * meaningless when n is 0), filled CX__VARBANK_FILL at a time, at most
 * CX__VARBANK_MAX; a variable's references may be in either slot (way)
 * of the set its hash picks, so two variables a thread sets in turn that
 * meet in one set do not evict each other on every set (token.c). Used only
 * while the allocator is malloc/free (a counting allocator sees a released
 * variable freed at once); a thread's bank is emptied when its state ends
 * and by cx_set_allocator, so a variable outlives its last user reference
 * only while some thread that set it lives. (Releasing a variable has no
 * effect a program can observe but the memory: its default is never
 * destroyed.) */
#define CX__VARBANK_SETS 16u
#define CX__VARBANK (CX__VARBANK_SETS * 2u)
#define CX__VARBANK_FILL 16u
#define CX__VARBANK_MAX 64u
typedef struct cx__varbank_slot {
    cx_var *var;
    unsigned n;
} cx__varbank_slot;
/* Index in a thread's varbank of way 0 of the set that the variable of
 * this hash uses (cx_var's `bank`). Picked by the hash's top bits: the low
 * ones choose the map's root slot, and variables that share one there
 * would share a set here too. */
static inline unsigned cx__varbank_index(uint32_t hash)
{
    return ((hash >> 24) % CX__VARBANK_SETS) * 2u;
}

typedef struct cx__tstate {
    struct cx__fast fast; /* first: cx__fast_tls points here */
    unsigned nreserve;
    unsigned with_depth; /* CX_WITH blocks open in this thread */
    bool reserve_armed;  /* a reset is under way: the reserve may be used */
    void *reserve[CX__RESERVE_MAX]; /* owned blocks */
    cx_context *cur;  /* borrowed from whoever entered it (run, enter, the
                         thread trampoline, a pool worker), or == base */
    cx_context *base; /* owned; created by the first set outside any run */
    bool registered;  /* registered under the key: its destructor ends the
                         state at thread exit (else cx__tstate_end_here) */
    cx__freelist token_cache; /* freed tokens kept for reuse (alloc.h) */
    cx__freelist ctx_cache;   /* freed contexts, the same way */
    cx__varbank_slot varbank[CX__VARBANK]; /* references owned (above) */
    cx__slabs slabs; /* memory of the callbacks this thread binds (slab.h) */
    /* Storage for the context of a default-mode callback run in this
     * thread (callback.c), while blocks are cached: private to the thread,
     * so the run claims and leaves it with plain stores (cx__run_private)
     * and writes nothing into the callback. Owned (sizeof(cx_context),
     * freed with the state); NULL until the first such run. */
    void *run_ctx;
    bool run_ctx_busy; /* a run of this thread is in run_ctx */
    cx_context *enter_top; /* innermost context entered by cx_context_enter
                              (the enter's reference; each entered context
                              links to the one below), or NULL */
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
/* Makes st (consumed) this thread's state and registers it for the end of
 * the thread; returns it borrowed. Cannot fail: if the registration does
 * (glibc allocates the slots of keys past the first 32), st->registered is
 * false and the thread's own trampoline ends it (cx__tstate_end_here). */
CX__HIDDEN cx__tstate *cx__tstate_install(cx__tstate *st);
/* Ends this thread's state now if no key destructor will: for the
 * trampolines of threads the library starts. */
CX__HIDDEN void cx__tstate_end_here(void);
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
/* Tokens a thread keeps for reuse, at most; freed with its state. */
#define CX__TOKEN_CACHE 16
/* Context memory (sizeof(cx_context)) through this thread's cache of
 * freed contexts (alloc.h, cx__caching): cx_copy_context + release
 * without a malloc+free pair. */
#define CX__CONTEXT_CACHE 16
/* cx__context_mem_alloc, cx__context_mem_free: context.h. */
/* Gives every reference st's variable bank holds back to its variable
 * (the last frees it). */
CX__HIDDEN void cx__varbank_drain(cx__tstate *st);
/* Frees the blocks st's caches hold (with the installed allocator),
 * empties its variable bank and gives up its slabs. */
CX__HIDDEN void cx__caches_drain(cx__tstate *st);
/* Memory for a map node when the allocator said no: a block from the
 * calling thread's reset reserve while a reset is under way
 * (reserve_armed), or NULL. */
CX__HIDDEN void *cx__reserve_take(size_t size);
#endif
