/* token.c - set, reset and tokens (ContextVar.set/.reset, Token). */
#include "context.h"

/* A token holds its own reference to its variable (cx_token_var is valid
 * while the token lives) and, for a variable with a destroy callback, a
 * reference to the box of the old value (cx_token_old_value too). The old
 * value is kept as the stored word (var.h): the value, or its box, which
 * the reset shares with the map again. */
struct cx_token {
    cx_var *var;     /* own reference */
    bool has_old;    /* false: the variable was unbound (Token.MISSING) */
    bool used;
    uint64_t ctx_id; /* the context the set was made in (its id: the
                        token does not keep the context alive) */
    void *old;       /* stored word before the set, if has_old (owned) */
};

/* The two slots (ways) of this thread's variable bank where var's
 * references may be (tstate.h, cx__varbank_index). */
static inline cx__varbank_slot *varbank_set(cx__tstate *st, const cx_var *var)
{
    return &st->varbank[var->bank];
}

/* The way of var's set that holds var with a reference to take (take) or
 * room for one more (!take), or NULL. Borrowed. */
static inline __attribute__((always_inline)) cx__varbank_slot *
varbank_way(cx__tstate *st, const cx_var *var, bool take)
{
    cx__varbank_slot *set = varbank_set(st, var);
    for (unsigned w = 0; w < 2; w++)
        if (set[w].var == var && (take ? set[w].n != 0 : set[w].n < CX__VARBANK_MAX))
            return &set[w];
    return NULL;
}

/* The token's reference to its variable, from this thread's variable
 * bank (tstate.h) when a way of var's set has some; else refilled with
 * one atomic add into way 0, whose variable moves to way 1 (and way 1's
 * references go back to their variable first). */
static inline void var_ref_take(cx__tstate *st, cx_var *var)
{
    cx__varbank_slot *sl = varbank_way(st, var, true);
    if (__builtin_expect(sl != NULL, 1)) {
        sl->n--;
        return;
    }
    cx__varbank_slot *set = varbank_set(st, var);
    if (!cx__allocator_is_default) {
        cx__var_retain(var);
        return;
    }
    if (set[1].n != 0)
        cx__var_release_n(set[1].var, set[1].n);
    set[1] = set[0];
    /* We hold a reference (the caller's): adding is safe. */
    cx__ref_add(&var->ref, CX__VARBANK_FILL);
    set[0].var = var;
    set[0].n = CX__VARBANK_FILL - 1;
}

/* A token's reference to var, dropped: into this thread's bank when a way
 * of its set holds var, or is empty and adopts it (only while banks are
 * in use); else released. */
static inline void var_ref_drop(cx_var *var)
{
    cx__tstate *st = cx__tstate_cur();
    if (st != NULL) {
        cx__varbank_slot *sl = varbank_way(st, var, false);
        if (sl == NULL && cx__allocator_is_default) {
            cx__varbank_slot *set = varbank_set(st, var);
            sl = set[0].n == 0 ? &set[0] : set[1].n == 0 ? &set[1] : NULL;
            if (sl != NULL)
                sl->var = var;
        }
        if (sl != NULL) {
            sl->n++;
            return;
        }
    }
    cx__var_release(var);
}

/* Token memory: this thread's cache of freed tokens first (alloc.h). */
static inline cx_token *token_alloc(cx__tstate *st)
{
    cx_token *t = cx__fl_pop(&st->token_cache);
    return t != NULL ? t : cx__malloc(sizeof(cx_token));
}

static inline void token_free(cx_token *t)
{
    cx__tstate *st = cx__tstate_cur();
    if (st == NULL || !cx__fl_push(&st->token_cache, t, CX__TOKEN_CACHE))
        cx__free(t);
}

/* After a successful change in this thread: every cached lookup is stale,
 * except the one we know, which is written through. */
static inline void cache_changed(cx__tstate *st, const cx_var *var, bool found, void *value)
{
    st->fast.gen++;
    cx__cache_entry *e = (cx__cache_entry *)(void *)((char *)st->fast.cache + var->cache_off);
    CX__ASSERT(e == &st->fast.cache[cx__slot(var)]);
    cx__cache_fill(e, var, st->fast.gen, found, value);
}

/* ------------------------------------------------------------ fast paths
 * cx_var_set, cx_var_reset and cx_token_release first try the common case
 * inline, with no call, and only while blocks are cached (cx__caching():
 * the default allocator, no race detector, no valgrind checker): a plain
 * variable (var->plain: no box, no watcher) already bound in the calling
 * thread's own context (private_: no lock; no bank of references out, so
 * the map may be unique; its root owned, not borrowed: context.h) on a
 * path the context alone holds (cx__hamt_replace_owned; unannounced,
 * since no detector is attached), a token from the thread's cache and the
 * token's variable reference from a way of the variable bank. Every check
 * is made before anything changes; any that fails hands the whole call,
 * untouched, to the general path below, which handles every case. The
 * native tests and check-asan-cached run the inline paths; valgrind's
 * tools and the other sanitizer builds run only the general ones. The
 * slow branches are tail calls, so the common case needs no stack frame
 * and saves few registers. */
static int var_set_general(cx_var *var, void *value, cx_token **tokp);
static int var_reset_general(cx_var *var, cx_token *tok);
static void token_release_general(cx_token *tok);
/* The fast set's top-up of the reserve (as the general set's), out of line
 * and returning the set's result, so that the fast set tail-calls it. */
static __attribute__((noinline)) int reserve_fill_after_set(cx__tstate *st, unsigned target)
{
    cx__reserve_fill(st, target);
    return 0;
}

int cx_var_set(cx_var *var, void *value, cx_token **tokp)
{
    cx__tstate *st = cx__tstate_cur();
    cx_context *ctx;
    if (__builtin_expect(var == NULL || tokp == NULL || st == NULL || !var->plain ||
                             (ctx = st->cur) == NULL || !ctx->private_ || ctx->bank != 0 ||
                             ctx->borrowed || st->token_cache.n == 0 || !cx__caching(),
                         0))
        return var_set_general(var, value, tokp);
    /* The token's variable reference: from either way of var's set. */
    cx__varbank_slot *way = varbank_way(st, var, true);
    if (__builtin_expect(way == NULL, 0))
        return var_set_general(var, value, tokp);
    cx__entry e = {var, value}, prev;
    if (__builtin_expect(!cx__hamt_replace_owned_unannounced(ctx->root, &e, var->hash, &prev), 0))
        return var_set_general(var, value, tokp);
    /* Done in the map (the old value is plain: nothing to release). */
    way->n--; /* the token's reference to var */
    cx_token *tok = cx__fl_take(&st->token_cache); /* checked above */
    tok->var = var;
    tok->ctx_id = ctx->id;
    tok->has_old = true;
    tok->old = prev.value;
    tok->used = false;
    *tokp = tok;
    cache_changed(st, var, true, value);
    unsigned target = cx__reserve_target(st->with_depth);
    if (__builtin_expect(st->nreserve < target, 0))
        return reserve_fill_after_set(st, target);
    return 0;
}

int cx_var_reset(cx_var *var, cx_token *tok)
{
    cx__tstate *st = cx__tstate_cur();
    cx_context *ctx;
    if (__builtin_expect(var == NULL || tok == NULL || tok->var != var || tok->used ||
                             !tok->has_old || !var->plain || st == NULL ||
                             (ctx = st->cur) == NULL || ctx->id != tok->ctx_id ||
                             !ctx->private_ || ctx->bank != 0 || !cx__caching(),
                         0))
        return var_reset_general(var, tok);
    /* The token's set was made in ctx, and every set owns a borrowed
     * root first (the fast one goes general, cx__owner_lock). */
    CX__ASSERT(!ctx->borrowed);
    cx__entry e = {var, tok->old}, prev;
    if (__builtin_expect(!cx__hamt_replace_owned_unannounced(ctx->root, &e, var->hash, &prev), 0))
        return var_reset_general(var, tok);
    /* The displaced value is plain: nothing to release. */
    tok->used = true;
    cache_changed(st, var, true, tok->old);
    return 0;
}

void cx_token_release(cx_token *tok)
{
    cx__tstate *st = cx__tstate_cur();
    cx_var *var;
    if (__builtin_expect(tok == NULL || st == NULL || !(var = tok->var)->plain, 0))
        return token_release_general(tok);
    /* Back into the way of var's set that holds var (the general path's
     * var_ref_drop also lets an empty way adopt it). The push reuses the
     * token's first word: it comes last. */
    cx__varbank_slot *way = varbank_way(st, var, false);
    if (__builtin_expect(way == NULL || !cx__fl_push(&st->token_cache, tok, CX__TOKEN_CACHE), 0))
        return token_release_general(tok);
    way->n++;
}

/* ---------------------------------------------------------- general paths */

static __attribute__((noinline)) int var_set_general(cx_var *var, void *value, cx_token **tokp)
{
    if (var == NULL)
        return CX_EINVAL;
    cx__tstate *st = cx__tstate_get();
    if (st == NULL)
        return CX_ENOMEM;
    cx_context *ctx = cx__current_for_write(st);
    if (ctx == NULL)
        return CX_ENOMEM;
    void *stored;
    if (!cx__stored_new(var, value, &stored))
        return CX_ENOMEM;
    cx_token *tok = NULL;
    if (tokp != NULL && (tok = token_alloc(st)) == NULL) {
        cx__stored_discard(var, stored);
        return CX_ENOMEM;
    }

    cx__garbage g;
    g.n = 0; /* (an initializer would zero the whole array) */
    void *old = NULL;
    cx__owner_lock(ctx);
    cx__hamt_set_result r = cx__map_put(&ctx->root, var, stored, &old, &g);
    cx__owner_unlock(ctx);
    if (r == CX__HAMT_SET_NOMEM) {
        if (tok != NULL)
            token_free(tok);
        cx__stored_discard(var, stored); /* the value stays the caller's */
        return CX_ENOMEM;
    }
    cache_changed(st, var, true, value);
    if (cx__watch_var(var)) {
        /* Before anything is released: the old value is still alive for
         * the callbacks (a default is not a binding: had_old false). */
        cx_watch_event ev = {.kind = CX_WATCH_SET, .ctx = ctx, .var = var,
                             .old_value = r == CX__HAMT_REPLACED ? cx__stored_value(var, old) : NULL,
                             .new_value = value,
                             .had_old = r == CX__HAMT_REPLACED, .has_new = true};
        cx__watch_fire(&ev);
    }

    bool had = r == CX__HAMT_REPLACED;
    if (tok != NULL) {
        var_ref_take(st, var); /* the token's own */
        tok->var = var;
        tok->ctx_id = ctx->id;
        tok->has_old = had;
        tok->old = old; /* the replaced word's box reference moves here */
        tok->used = false;
        *tokp = tok;
        unsigned target = cx__reserve_target(st->with_depth);
        if (st->nreserve < target)
            cx__reserve_fill(st, target); /* for the reset this token allows */
    } else if (had) {
        cx__stored_release(var, old); /* destroy may run: outside the lock */
    }
    cx__garbage_release(&g);
    return 0;
}

static __attribute__((noinline)) int var_reset_general(cx_var *var, cx_token *tok)
{
    if (var == NULL || tok == NULL)
        return CX_EINVAL;
    if (tok->used)
        return CX_EUSED;
    if (tok->var != var)
        return CX_EVAR;
    cx__tstate *st = cx__tstate_cur();
    if (st == NULL || st->cur == NULL || st->cur->id != tok->ctx_id)
        return CX_ECONTEXT;
    cx_context *ctx = st->cur;

    cx__garbage g;
    g.n = 0; /* (an initializer would zero the whole array) */
    void *removed = NULL;
    bool displaced; /* `removed` holds a word the map let go of */
    int rc = 0;
    cx__owner_lock(ctx);
    st->reserve_armed = true;
    if (tok->has_old) {
        cx__stored_retain(var, tok->old); /* the map's; the token keeps its own */
        cx__hamt_set_result r = cx__map_put(&ctx->root, var, tok->old, &removed, &g);
        rc = r == CX__HAMT_SET_NOMEM ? CX_ENOMEM : 0;
        displaced = r == CX__HAMT_REPLACED;
    } else {
        cx__hamt_del_result r = cx__map_remove(&ctx->root, var, &removed, &g);
        rc = r == CX__HAMT_DEL_NOMEM ? CX_ENOMEM : 0;
        displaced = r == CX__HAMT_REMOVED;
    }
    st->reserve_armed = false;
    cx__owner_unlock(ctx);
    if (rc != 0) {
        if (tok->has_old)
            cx__stored_release(var, tok->old); /* not the last: the token holds one */
        return rc;
    }
    tok->used = true;
    cache_changed(st, var, tok->has_old,
                  tok->has_old ? cx__stored_value(var, tok->old) : NULL);
    if (cx__watch_var(var)) {
        /* old: the value the reset removed (none if a non-LIFO reset had
         * removed var already); new: the one it restored, if any. */
        cx_watch_event ev = {.kind = CX_WATCH_RESET, .ctx = ctx, .var = var,
                             .old_value = displaced ? cx__stored_value(var, removed) : NULL,
                             .new_value = tok->has_old ? cx__stored_value(var, tok->old) : NULL,
                             .had_old = displaced, .has_new = tok->has_old};
        cx__watch_fire(&ev);
    }
    if (displaced)
        cx__stored_release(var, removed); /* its destroy is due now */
    cx__garbage_release(&g);
    return 0;
}

cx_var *cx_token_var(const cx_token *tok) { return tok == NULL ? NULL : tok->var; }

int cx_token_old_value(const cx_token *tok, void **out)
{
    if (tok == NULL || out == NULL)
        return CX_EINVAL;
    if (!tok->has_old)
        return CX_ELOOKUP;
    *out = cx__stored_value(tok->var, tok->old);
    return 0;
}

bool cx_token_used(const cx_token *tok) { return tok != NULL && tok->used; }

static __attribute__((noinline)) void token_release_general(cx_token *tok)
{
    if (tok == NULL)
        return;
    if (tok->has_old)
        cx__stored_release(tok->var, tok->old);
    var_ref_drop(tok->var);
    token_free(tok);
}

/* The block runs only if the set succeeded and the reserve covers the
 * reset of every open CX_WITH block, this one included: otherwise the set
 * is undone (in place: nothing copied the map since, so no allocation;
 * the undo destroys an owned value) and the block is skipped with
 * CX_ENOMEM. When the set itself fails, an owned value is destroyed here:
 * CX_WITH always takes ownership. */
struct cx__with cx__with_enter(cx_var *var, void *value)
{
    struct cx__with w = {.var = var, .tok = NULL, .once = 1, .status = 0};
    cx__tstate *st = cx__tstate_get();
    w.status = var == NULL ? CX_EINVAL : st == NULL ? CX_ENOMEM : cx_var_set(var, value, &w.tok);
    if (w.status != 0) {
        if (var != NULL && var->destroy != NULL)
            var->destroy(value);
        w.once = 0;
        return w;
    }
    unsigned target = cx__reserve_target(st->with_depth + 1);
    if (st->nreserve < target)
        cx__reserve_fill(st, target);
    if (st->nreserve < target && st->with_depth < CX__WITH_COVERED) {
        (void)cx_var_reset(var, w.tok);
        cx_token_release(w.tok);
        w.tok = NULL;
        w.once = 0;
        w.status = CX_ENOMEM;
        return w;
    }
    st->with_depth++;
    return w;
}

void cx__with_exit(struct cx__with *w)
{
    /* Cannot fail for lack of memory (the reserve); it could only fail if
     * the block left the context it started in, which the CX_WITH contract
     * forbids. The token is released regardless. */
    (void)cx_var_reset(w->var, w->tok);
    cx_token_release(w->tok);
    w->tok = NULL;
    cx__tstate_cur()->with_depth--;
}
