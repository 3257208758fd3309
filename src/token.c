/* token.c - set, reset and tokens (ContextVar.set/.reset, Token). */
#include "context.h"

/* A token keeps its variable alive without a reference of its own when it
 * can: `held` is a binding of that variable and holds one. Before the
 * reset, `held` is the binding the set replaced (NULL for MISSING). For a
 * variable without destroy callback the value is a plain word the token
 * keeps a copy of (old_value), so the reset *swaps*: `held` moves back into
 * the map and the binding the reset removed moves into the token, which
 * keeps it until released; no reference count changes at all. A variable
 * with a destroy callback shares `held` with the map instead (the removed
 * binding must go now: its value's destroy is due), so old_value stays
 * alive while the token lives. */
struct cx_token {
    cx_var *var;       /* borrowed from `held`; an own reference of the
                          token's exactly when `held` is NULL */
    bool has_old;      /* false: the variable was unbound (Token.MISSING) */
    bool used;
    uint64_t ctx_id;   /* the context the set was made in (its id: the
                          token does not keep the context alive) */
    cx__binding *held; /* owned reference, or NULL */
    void *old_value;
};

/* After a successful change in this thread: every cached lookup is stale,
 * except the one we know, which is written through. */
static void cache_changed(cx__tstate *st, const cx_var *var, const cx__binding *now)
{
    st->fast.gen++;
    cx__cache_entry *e = &st->fast.cache[cx__slot(var)];
    cx__cache_fill(e, var, st->fast.gen, now != NULL, now != NULL ? now->value : NULL);
}

int cx_var_set(cx_var *var, void *value, cx_token **tokp)
{
    if (var == NULL)
        return CX_EINVAL;
    cx__tstate *st = cx__tstate_get();
    if (st == NULL)
        return CX_ENOMEM;
    cx_context *ctx = cx__current_for_write(st);
    if (ctx == NULL)
        return CX_ENOMEM;
    cx__binding *b = cx__binding_new(var, value);
    if (b == NULL)
        return CX_ENOMEM;
    cx_token *tok = NULL;
    if (tokp != NULL && (tok = cx__malloc(sizeof(*tok))) == NULL) {
        cx__binding_discard(b);
        return CX_ENOMEM;
    }

    cx__garbage g = {.n = 0};
    cx__binding *old;
    cx__owner_lock(ctx);
    int rc = cx__map_set(&ctx->root, b, &old, &g);
    cx__owner_unlock(ctx);
    if (rc != 0) {
        cx__free(tok);
        cx__binding_discard(b); /* the value stays the caller's */
        return rc;
    }
    cache_changed(st, var, b);
    if (cx__watch_var(var)) {
        /* Before anything is released: the old value is still alive for
         * the callbacks (a default is not a binding: had_old false). */
        cx_watch_event ev = {.kind = CX_WATCH_SET, .ctx = ctx, .var = var,
                             .old_value = old != NULL ? old->value : NULL, .new_value = value,
                             .had_old = old != NULL, .has_new = true};
        cx__watch_fire(&ev);
    }

    if (tok != NULL) {
        if (old == NULL)
            cx__var_retain(var); /* nothing held keeps var alive */
        tok->var = var;
        tok->ctx_id = ctx->id;
        tok->held = old; /* the map's reference moves to the token */
        tok->has_old = old != NULL;
        tok->old_value = old != NULL ? old->value : NULL;
        tok->used = false;
        *tokp = tok;
        unsigned target = cx__reserve_target(st->with_depth);
        if (st->nreserve < target)
            cx__reserve_fill(st, target); /* for the reset this token allows */
    } else {
        cx__obj_release((cx__obj *)old);
    }
    /* Released outside the lock: destroy callbacks may run. */
    cx__garbage_release(&g);
    return 0;
}

int cx_var_reset(cx_var *var, cx_token *tok)
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

    cx__garbage g = {.n = 0};
    cx__binding *removed;
    int rc;
    cx__owner_lock(ctx);
    st->reserve_armed = true;
    cx__binding *back = tok->has_old ? tok->held : NULL;
    bool move = back != NULL && var->destroy == NULL;
    if (back != NULL) {
        if (!move)
            cx__obj_retain(&back->h); /* one for the map, the token keeps its own */
        rc = cx__map_set(&ctx->root, back, &removed, &g);
    } else {
        rc = cx__map_del(&ctx->root, var, &removed, &g);
    }
    st->reserve_armed = false;
    cx__owner_unlock(ctx);
    if (rc != 0) {
        if (back != NULL && !move)
            cx__obj_release(&back->h); /* not the last: the token holds one */
        return rc;
    }
    tok->used = true;
    cache_changed(st, var, back);
    if (cx__watch_var(var)) {
        /* old: the binding the reset removed (none if a non-LIFO reset
         * had removed var already); new: the one it restored, if any. */
        cx_watch_event ev = {.kind = CX_WATCH_RESET, .ctx = ctx, .var = var,
                             .old_value = removed != NULL ? removed->value : NULL,
                             .new_value = back != NULL ? back->value : NULL,
                             .had_old = removed != NULL, .has_new = back != NULL};
        cx__watch_fire(&ev);
    }
    if (move) {
        /* The swap: `back`'s reference is the map's now, and the binding
         * the reset replaced (same variable, plain word) keeps var alive
         * for the token. None if a non-LIFO reset had removed var. */
        tok->held = removed;
        removed = NULL;
        if (tok->held == NULL)
            cx__var_retain(var); /* nothing held keeps var alive */
    }
    cx__obj_release((cx__obj *)removed);
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
    *out = tok->old_value;
    return 0;
}

bool cx_token_used(const cx_token *tok) { return tok != NULL && tok->used; }

void cx_token_release(cx_token *tok)
{
    if (tok == NULL)
        return;
    if (tok->held != NULL)
        cx__obj_release(&tok->held->h);
    else
        cx_var_release(tok->var);
    cx__free(tok);
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
