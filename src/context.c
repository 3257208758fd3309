/* context.c - Context objects: creation, copies, run, and mapping reads. */
#include "context.h"

/* Context ids: unique, never reused, so a token can recognise the context
 * it was made in without keeping it alive (an address could be reused).
 * Each thread takes a block of ids at a time: no shared counter on the
 * copy_context path. */
#define ID_BLOCK (1u << 16)

/* The striped context locks (context.h, cx__context_lock). */
pthread_mutex_t cx__ctx_locks[CX__CTX_LOCKS] = {
#define CX__L4 PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, \
               PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER
#define CX__L16 CX__L4, CX__L4, CX__L4, CX__L4
    CX__L16, CX__L16, CX__L16, CX__L16
#undef CX__L16
#undef CX__L4
};
_Static_assert(CX__CTX_LOCKS == 64, "the initialiser above has 64 mutexes");
static uint64_t id_global = ID_BLOCK;
static __thread uint64_t id_next __attribute__((tls_model("initial-exec")));
static __thread uint64_t id_end __attribute__((tls_model("initial-exec")));

static uint64_t next_id(void)
{
    if (id_next == id_end) {
        id_next = ck_pr_faa_64(&id_global, ID_BLOCK);
        id_end = id_next + ID_BLOCK;
    }
    return id_next++;
}

/* The entered word is only ever accessed atomically and carries no data
 * itself: helgrind and DRD would report the claim's compare-and-swap
 * against the previous runner's exchange (ck's atomics are inline
 * assembly to them), so the word is hidden from them and the handoff is
 * announced instead (cx__try_enter, cx__leave). Only under valgrind. */
static __attribute__((noinline)) void track_word_vg(cx_context *ctx, bool track)
{
    if (track)
        CX__CK_TRACKED(&ctx->entered, sizeof(ctx->entered));
    else
        CX__CK_UNTRACKED(&ctx->entered, sizeof(ctx->entered));
}
static inline void track_word(cx_context *ctx, bool track)
{
    if (__builtin_expect(cx__detector & CX__DET_VALGRIND, 0))
        track_word_vg(ctx, track);
}

/* The announcements of context.h. noipa: GCC would otherwise clone them
 * into versions taking &ctx->entered, and the callers would keep that
 * address in a register across a run again. */
#if defined(__GNUC__) && !defined(__clang__)
#define NOIPA __attribute__((noipa))
#else
#define NOIPA
#endif
NOIPA void cx__entered_announce_after(cx_context *ctx) { CX__HAPPENS_AFTER(&ctx->entered); }
NOIPA void cx__entered_announce_before(cx_context *ctx) { CX__HAPPENS_BEFORE(&ctx->entered); }

/* Every field. root: a map reference (consumed). */
static cx_context *context_init(cx_context *ctx, cx__node *root, bool private_, bool embedded)
{
    cx__ref_init(&ctx->ref);
    ctx->entered = 0;
    track_word(ctx, false);
    ctx->private_ = private_;
    ctx->embedded_ = embedded;
    ctx->id = next_id();
    ctx->root = root;
    ctx->bank = 0;
    ctx->borrowed = false;
    ctx->enter_prev = NULL;
    ctx->enter_below = NULL;
    ctx->strand = NULL;
    return ctx;
}

/* A new reference to the calling thread's current map (NULL: empty). The
 * caller is that context's runner, its only writer: no lock. */
static cx__node *current_root_ref(void)
{
    cx_context *cur = cx__current();
    return cur != NULL ? cx__owner_root_ref(cur) : NULL;
}

/* Drops a map reference (consumed; NULL: no-op) in the calling thread: if
 * it is a reference to the map of the thread's current context, it goes
 * into that context's bank (no locked instruction; the context holds the
 * map anyway, so no destroy is delayed), else it is released. */
static inline void map_give_back(cx__node *root)
{
    cx_context *cur = cx__current();
    /* cur is entered by this thread: its bank is ours to change. root is
     * not cur's last reference (cur holds its own, or cur's lender while
     * borrowed), so keeping it banked delays nothing. */
    if (root != NULL && cur != NULL && cur->root == root && cur->bank < CX__BANK_MAX) {
        cur->bank++;
        return;
    }
    cx__map_release(root);
}

cx_context *cx_context_new(void)
{
    cx_context *ctx = cx__context_mem_alloc();
    if (ctx == NULL)
        return NULL;
    return context_init(ctx, NULL, false, false);
}

cx_context *cx__context_with_root(cx__node *root)
{
    cx_context *ctx = cx_context_new();
    if (ctx == NULL) {
        cx__map_release(root);
        return NULL;
    }
    ctx->root = root;
    return ctx;
}

cx_context *cx_context_retain(cx_context *ctx)
{
    if (ctx != NULL)
        cx__ref_inc(&ctx->ref);
    return ctx;
}

/* Tears down a context nobody holds any more and nobody runs in. */
static void context_destroy(cx_context *ctx)
{
    CX__ASSERT(ctx->strand == NULL || cx__strand_idle(ctx->strand));
    if (ctx->strand != NULL)
        cx__strand_free(ctx->strand);
    /* Nobody runs in ctx: its bank is nobody's now. Its last runner's
     * writes to it (and to root) were published by that runner's leave
     * and taken by whoever brought us here (cx_context_release,
     * cx__leave_slow). */
    if (ctx->bank != 0)
        cx__hamt_unref_nonlast(ctx->root, ctx->bank);
    if (!ctx->borrowed)
        map_give_back(ctx->root);
    track_word(ctx, true);
    if (ctx->embedded_)
        return; /* its owner frees the storage */
    cx__context_mem_free(ctx);
}

void cx_context_release(cx_context *ctx)
{
    if (ctx == NULL || !cx__ref_dec(&ctx->ref))
        return;
    /* The last reference. cx_context_run keeps no count of its own (two
     * locked operations per run saved): if a run is in the context, flag
     * it and let the runner tear it down when it leaves. The runner's
     * exchange and our compare-and-swap are ordered: either we see the
     * word cleared (and destroy) or it sees ZOMBIE (and does). */
    unsigned int e = ck_pr_load_uint(&ctx->entered);
    while (e & CX__CTX_ENTERED) {
        if (ck_pr_cas_uint_value(&ctx->entered, e, e | CX__CTX_ZOMBIE, &e))
            return;
    }
    ck_pr_fence_acquire();
    context_destroy(ctx);
}

void cx__leave_slow(cx_context *ctx, unsigned int old)
{
    if (old & CX__CTX_PARKED)
        cx__strand_wake(ctx); /* a parked job holds a reference: no ZOMBIE */
    if (old & CX__CTX_ZOMBIE) {
        /* The releaser's writes (it announced them on the count) happen
         * before this teardown. */
        ck_pr_fence_acquire();
        CX__HAPPENS_AFTER(&ctx->ref);
        context_destroy(ctx);
    }
}

/* True if the calling thread runs in ctx: it is then the only writer of
 * ctx->root and may read it without the lock. */
static bool is_owner(const cx_context *ctx)
{
    const cx__tstate *st = cx__tstate_cur();
    return st != NULL && st->cur == ctx;
}

cx__node *cx__context_snapshot(const cx_context *ctx)
{
    cx_context *c = (cx_context *)ctx;
    cx__node *root;
    if (is_owner(ctx))
        return cx__owner_root_ref(c);
    /* The owner cannot swap or update the root in place while we hold the
     * lock, and it only updates in place what nobody else references: our
     * reference, taken here, makes the root shared from now on. */
    pthread_mutex_lock(cx__context_lock(c));
    root = c->root;
    cx__map_retain(root);
    pthread_mutex_unlock(cx__context_lock(c));
    return root;
}

cx_context *cx__copy_context_private(void)
{
    cx_context *ctx = cx_copy_context();
    if (ctx != NULL)
        ctx->private_ = true;
    return ctx;
}

cx_context *cx__context_embed(cx_context *ctx, cx__node *root)
{
    return context_init(ctx, root, true, true); /* private: no lock */
}

cx_context *cx__context_embed_borrowed(cx_context *ctx, cx__node *root)
{
    context_init(ctx, root, true, true);
    ctx->borrowed = true;
    return ctx;
}

cx_context *cx__context_embed_shared(cx_context *ctx, cx__node *root)
{
    /* Its reader lock is the striped one of its address, as for every
     * context that is not private: nothing to initialise. */
    return context_init(ctx, root, false, true);
}

cx_context *cx_copy_context(void) { return cx__context_with_root(current_root_ref()); }

/* --- captures (context.h) */

struct strip {
    cx__node *copy; /* the map being stripped (owned) */
    int rc;
};

static int strip_one(const cx__entry *e, void *arg)
{
    struct strip *s = arg;
    cx__garbage g;
    g.n = 0;
    void *old = NULL;
    cx_var *var = e->key;
    /* The walk reads the original map, which holds a reference to every
     * node of it: the deletes below path-copy those nodes (shared) and
     * update in place only the copies they made (owned), so the walk
     * never sees a change. */
    cx__hamt_del_result r = cx__map_remove(&s->copy, var, &old, &g);
    if (r == CX__HAMT_DEL_NOMEM) {
        s->rc = CX_ENOMEM;
        return 1;
    }
    /* Not the last holder: the original map still has it, so no destroy
     * callback runs here. */
    if (r == CX__HAMT_REMOVED)
        cx__stored_release(var, old);
    cx__garbage_release(&g);
    return 0;
}

/* root (a reference, consumed) minus its local bindings: *rootp receives
 * the result (a new reference). 0 or CX_ENOMEM (then *rootp is still the
 * caller's reference, unchanged). */
static int map_strip_local(cx__node **rootp)
{
    cx__node *root = *rootp;
    if (__builtin_expect(cx__map_nlocal(root) == 0, 1))
        return 0;
    if (cx__map_nlocal(root) == cx__map_len(root)) {
        /* Only local bindings: the capture is the empty map. */
        cx__map_release(root);
        *rootp = NULL;
        return 0;
    }
    struct strip s = {.copy = root, .rc = 0};
    cx__map_retain(root); /* shared from now on: deletes copy, never touch root */
    if (cx__map_foreach_local(root, strip_one, &s) != 0) {
        cx__map_release(s.copy);
        return s.rc;
    }
    cx__map_release(root);
    *rootp = s.copy;
    return 0;
}

int cx__capture_strip(cx__node *root, cx__node **out)
{
    int rc = map_strip_local(&root);
    if (rc != 0) {
        cx__map_release(root);
        return rc;
    }
    *out = root;
    return 0;
}

cx_context *cx__capture_private(void)
{
    cx__node *root;
    if (cx__capture_root(&root) != 0)
        return NULL;
    cx_context *ctx = cx__context_with_root(root);
    if (ctx != NULL)
        ctx->private_ = true;
    return ctx;
}

cx_context *cx_context_copy(const cx_context *ctx)
{
    if (ctx == NULL)
        return NULL;
    return cx__context_with_root(cx__context_snapshot(ctx));
}

/* --- entering and leaving */

/* Leaves ctx, this thread's innermost enter, and drops the enter's
 * reference. */
static void exit_top(cx__tstate *st)
{
    cx_context *ctx = st->enter_top;
    st->enter_top = ctx->enter_below;
    cx__switch_out(st, ctx, ctx->enter_prev);
    cx_context_release(ctx);
}

void cx__exit_all_entered(cx__tstate *st)
{
    while (st->enter_top != NULL)
        exit_top(st);
}

void cx__exit_entered_into(cx__tstate *st, cx_context *ctx)
{
    while (st->cur != ctx) {
        CX__ASSERT(st->enter_top != NULL && st->enter_top == st->cur);
        exit_top(st);
    }
}

/* cx_context_run with every hook: a thread without state yet, a race
 * detector to tell of the handoff, watchers to tell of the switch. */
static __attribute__((noinline)) int run_general(cx_context *ctx, void *(*fn)(void *), void *arg,
                                                 void **result)
{
    cx__tstate *st = cx__tstate_get();
    if (st == NULL)
        return CX_ENOMEM;
    if (!cx__try_enter(ctx))
        return CX_EBUSY;
    /* No reference is taken: if fn drops the last one, the context is
     * flagged ZOMBIE and torn down when the run leaves it. */
    void *r = cx__run_claimed(st, ctx, fn, arg);
    if (result != NULL)
        *result = r;
    return 0;
}

int cx_context_run(cx_context *ctx, void *(*fn)(void *), void *arg, void **result)
{
    if (ctx == NULL || fn == NULL)
        return CX_EINVAL;
    /* The common case, checked once up front: a thread with state, no
     * detector, no watcher. Everything before fn that could call out is
     * then in run_general, so fn and arg need no saved register here.
     * (The leave still checks for watchers and the detector: a watcher
     * may come while fn runs.) */
    cx__tstate *st = cx__tstate_cur();
    if (__builtin_expect(st == NULL || cx__detector != 0 || cx__watching(), 0))
        return run_general(ctx, fn, arg, result);
    /* cx__try_enter without the announcement (no detector). */
    if (__builtin_expect(!ck_pr_cas_uint(&ctx->entered, 0, CX__CTX_ENTERED), 0)) {
        ck_pr_fence_acquire();
        return CX_EBUSY;
    }
    ck_pr_fence_acquire();
    ctx->enter_prev = cx__switch_in_quiet(st, ctx);
    struct cx__run_frame fr __attribute__((cleanup(cx__run_frame_leave), unused)) = {
        .st = st, .ctx = ctx};
    void *r = fn(arg);
    if (result != NULL)
        *result = r;
    return 0;
}

void *cx__run_claimed(cx__tstate *st, cx_context *ctx, void *(*fn)(void *), void *arg)
{
    struct cx__run_frame fr __attribute__((cleanup(cx__run_frame_leave), unused)) =
        cx__run_enter(st, ctx);
    return fn(arg);
}

/* The end of cx__run_private, however fn ends (cleanup attribute, as
 * cx__run_frame_leave). */
static inline __attribute__((always_inline)) void run_private_leave(struct cx__run_frame *fr)
{
    cx_context *ctx = fr->ctx;
    if (__builtin_expect(fr->st->cur != ctx, 0))
        cx__exit_entered_into(fr->st, ctx);
    if (cx__watching())
        cx__watch_switch(CX_WATCH_EXIT, ctx);
    (void)cx__switch_in_quiet(fr->st, ctx->enter_prev);
    /* Nobody else can have flagged the word (cx__run_private). */
    CX__ASSERT(ck_pr_load_uint(&ctx->entered) == CX__CTX_ENTERED);
    ck_pr_store_uint(&ctx->entered, 0);
}

void *cx__run_private(cx__tstate *st, cx_context *ctx, void *(*fn)(void *), void *arg)
{
    CX__ASSERT(ctx->private_ && ctx->embedded_ && ctx->entered == 0 && cx__detector == 0);
    ck_pr_store_uint(&ctx->entered, CX__CTX_ENTERED);
    struct cx__run_frame fr __attribute__((cleanup(run_private_leave), unused)) =
        cx__run_enter(st, ctx);
    return fn(arg);
}

int cx_context_enter(cx_context *ctx)
{
    if (ctx == NULL)
        return CX_EINVAL;
    cx__tstate *st = cx__tstate_get();
    if (st == NULL)
        return CX_ENOMEM;
    if (!cx__try_enter(ctx))
        return CX_EBUSY;
    cx__ref_inc(&ctx->ref); /* the enter's own, dropped by the exit */
    ctx->enter_below = st->enter_top;
    ctx->enter_prev = cx__switch_in(st, ctx);
    st->enter_top = ctx;
    return 0;
}

int cx_context_exit(cx_context *ctx)
{
    if (ctx == NULL)
        return CX_EINVAL;
    cx__tstate *st = cx__tstate_cur();
    /* Innermost enter, and current: a run entered after it (and still in
     * progress) makes cur differ. */
    if (st == NULL || st->enter_top != ctx || st->cur != ctx)
        return CX_ECONTEXT;
    exit_top(st);
    return 0;
}

/* --- mapping reads. The owner reads its root directly; anyone else looks
 * up under the lock and copies the value out before unlocking (the owner
 * may release the value right after). No reference is taken. */

static bool lookup(const cx_context *ctx, const cx_var *var, void **value)
{
    cx_context *c = (cx_context *)ctx;
    if (is_owner(ctx))
        return cx__map_get(c->root, var, value);
    pthread_mutex_lock(cx__context_lock(c));
    bool found = cx__map_get(c->root, var, value);
    pthread_mutex_unlock(cx__context_lock(c));
    return found;
}

int cx_context_get(const cx_context *ctx, const cx_var *var, void **out)
{
    if (ctx == NULL || var == NULL || out == NULL)
        return CX_EINVAL;
    return lookup(ctx, var, out) ? 0 : CX_ELOOKUP;
}

bool cx_context_contains(const cx_context *ctx, const cx_var *var)
{
    void *ignored;
    return ctx != NULL && var != NULL && lookup(ctx, var, &ignored);
}

size_t cx_context_len(const cx_context *ctx)
{
    if (ctx == NULL)
        return 0;
    cx_context *c = (cx_context *)ctx;
    if (is_owner(ctx))
        return cx__map_len(c->root);
    pthread_mutex_lock(cx__context_lock(c));
    size_t n = cx__map_len(c->root);
    pthread_mutex_unlock(cx__context_lock(c));
    return n;
}

int cx_context_foreach(const cx_context *ctx, int (*fn)(cx_var *var, void *value, void *arg),
                       void *arg)
{
    if (ctx == NULL || fn == NULL)
        return CX_EINVAL;
    /* fn may do anything, including setting variables in ctx: iterate a
     * snapshot of our own. */
    cx__node *root = cx__context_snapshot(ctx);
    int rc = cx__map_foreach(root, fn, arg);
    cx__map_release(root);
    return rc;
}

bool cx_context_equal(const cx_context *a, const cx_context *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a == b)
        return true;
    cx__node *ra = cx__context_snapshot(a);
    cx__node *rb = cx__context_snapshot(b);
    bool eq = cx__map_equal(ra, rb);
    cx__map_release(ra);
    cx__map_release(rb);
    return eq;
}
