/* var.h - the variable object (ContextVar), and the map of variables every
 * context holds: hamt.h's map with variables as keys (var.c gives it their
 * hash, their reference counts and the node memory). */
#ifndef CX_VAR_H
#define CX_VAR_H

#include <stdint.h>

#include "alloc.h"
#include "hamt.h"
#include "refcount.h"

struct cx_var {
    cx__ref ref;
    uint32_t hash;       /* from the address; tests may override it */
    bool has_default;
    /* Derived once, for the fast paths of set, reset and token release
     * (token.c), which then read one byte instead of testing destroy and
     * flags, or hashing again: */
    bool plain;          /* no destroy callback and not CX_VAR_WATCHED */
    uint8_t bank;        /* index of way 0 of its set in a thread's
                            variable bank (tstate.h), from hash */
    uint16_t cache_off;  /* byte offset of its lookup cache entry in
                            struct cx__fast's cache (cx__slot(var)) */
    void *default_value; /* borrowed from the creator, never destroyed */
    void (*destroy)(void *value);
    unsigned flags;      /* CX_VAR_LOCAL, CX_VAR_WATCHED; never change */
    char name[];
};

static inline void cx__var_retain(cx_var *v) { cx__ref_inc(&v->ref); }
/* cx_var_release, inline (var.c frees the variable after the last). */
CX__HIDDEN void cx__var_free(cx_var *v);
static inline void cx__var_release(cx_var *v)
{
    if (cx__ref_dec(&v->ref))
        cx__var_free(v);
}
/* Drops n references at once (a variable bank's slot, tstate.h). */
static inline void cx__var_release_n(cx_var *v, unsigned n)
{
    if (cx__ref_sub(&v->ref, n))
        cx__var_free(v);
}

/* Computes plain, bank and cache_off from the other fields: once, when
 * the variable is made (cx_var_new, and the scope variable at load). */
CX__HIDDEN void cx__var_derive(cx_var *v);
/* Test-only: force the hash of a variable that is bound nowhere yet, to
 * build exact map shapes (collisions, depth 8). */
CX__HIDDEN void cx__var_set_hash(cx_var *v, uint32_t hash);

/* ---------------------------------------------------------------- values
 * An entry of a variable map is (var, stored). For a plain variable the
 * stored word is the value itself. For a variable with a destroy callback
 * it is a box: the one ownership unit of the value, shared by every map,
 * copy and token holding that value; the last release of the box calls
 * destroy(value). A box carries the callback itself, so releasing it never
 * touches the variable.
 *
 * An entry in a map holds one reference to its variable (SPEC: contexts
 * that hold a binding keep the variable alive) and one to its box. */
typedef struct cx__box {
    cx__ref ref;
    void (*destroy)(void *value);
    void *value; /* owned */
} cx__box;

/* The value a stored word stands for (borrowed). */
static inline void *cx__stored_value(const cx_var *var, void *stored)
{
    return var->destroy != NULL ? ((cx__box *)stored)->value : stored;
}
/* The word to store for value: value itself, or a new box owning it. false
 * on ENOMEM (value stays the caller's). */
CX__HIDDEN bool cx__box_new(cx_var *var, void *value, void **stored);
static inline bool cx__stored_new(cx_var *var, void *value, void **stored)
{
    if (var->destroy == NULL) {
        *stored = value;
        return true;
    }
    return cx__box_new(var, value, stored);
}
/* Frees a new box that never entered a map, without destroying its value
 * (a failed set). No-op for a plain variable. */
CX__HIDDEN void cx__stored_discard(const cx_var *var, void *stored);
/* Drops one reference to a stored word's box (destroy may run: call it
 * outside any lock). No-op for a plain variable. */
CX__HIDDEN void cx__box_release(cx__box *b);
static inline void cx__stored_release(const cx_var *var, void *stored)
{
    if (var->destroy != NULL)
        cx__box_release(stored);
}
/* A new reference to a stored word's box. No-op for a plain variable. */
static inline void cx__stored_retain(const cx_var *var, void *stored)
{
    if (var->destroy != NULL)
        cx__ref_inc(&((cx__box *)stored)->ref);
}

/* ---------------------------------------------------------------- the map */

/* The operations every variable map is built with. */
extern CX__HIDDEN const cx__hamt_ops cx__var_map_ops;

typedef cx__hamt_garbage cx__garbage;
/* Releases what an update displaced (destroy callbacks may run). */
static inline void cx__garbage_release(cx__garbage *g)
{
    if (g->n != 0)
        cx__hamt_garbage_release(g, &cx__var_map_ops);
}
static inline void cx__map_release(cx__node *root) { cx__hamt_release(root, &cx__var_map_ops); }
static inline void cx__map_retain(cx__node *root) { cx__hamt_retain(root); }
static inline size_t cx__map_len(const cx__node *root) { return cx__hamt_len(root); }
static inline unsigned cx__map_depth(const cx__node *root) { return cx__hamt_depth(root); }
/* The structural validator (hamt.h): NULL, or the first broken invariant. */
static inline const char *cx__map_check(const cx__node *root)
{
    return cx__hamt_check(root, &cx__var_map_ops);
}

/* var's value in the map: true and *value (borrowed), or false. */
static inline bool cx__map_get(const cx__node *root, const cx_var *var, void **value)
{
    const cx__entry *e = cx__hamt_find(root, var, var->hash);
    if (e == NULL)
        return false;
    *value = cx__stored_value(var, e->value);
    return true;
}

/* Binds var to `stored` in *rootp (a reference the caller owns and which is
 * replaced by the updated map). The map's reference to var is taken here;
 * the box reference in `stored` is handed over. On CX__HAMT_REPLACED,
 * *old receives the stored word that was replaced, with its box reference
 * (now the caller's). Nodes to release later go to g. NOMEM changes
 * nothing. The caller holds the context's lock if it has one. Always
 * inline (token.c alone calls it): the in-place replace of an owned map,
 * the common set and reset, then costs no call at all. */
static inline __attribute__((always_inline)) cx__hamt_set_result
cx__map_put(cx__node **rootp, cx_var *var, void *stored, void **old, cx__garbage *g)
{
    cx__entry e = {var, stored}, prev;
    if (cx__hamt_replace_owned(*rootp, &e, var->hash, &prev)) {
        *old = prev.value; /* the entry's reference to var stays */
        return CX__HAMT_REPLACED;
    }
    cx__hamt_set_result r = cx__hamt_set(rootp, &e, var->hash, &cx__var_map_ops, &prev, g);
    /* A replaced entry's reference to var serves the new entry (same
     * key): only an added one takes a reference, after the fact, which is
     * safe because the caller holds var and, if others can read the map,
     * the lock. */
    if (r == CX__HAMT_ADDED)
        cx__var_retain(var);
    else if (r == CX__HAMT_REPLACED)
        *old = prev.value;
    return r;
}
/* Unbinds var. On CX__HAMT_REMOVED, *old receives the removed stored word,
 * with its box reference (now the caller's); the map's reference to var
 * is dropped (never the last one: the caller holds var). */
static inline cx__hamt_del_result cx__map_remove(cx__node **rootp, const cx_var *var,
                                                 void **old, cx__garbage *g)
{
    cx__entry prev;
    cx__hamt_del_result r = cx__hamt_del(rootp, var, var->hash, &cx__var_map_ops, &prev, g);
    if (r == CX__HAMT_REMOVED) {
        *old = prev.value;
        cx__var_release(prev.key); /* never the last: the caller holds var */
    }
    return r;
}

/* Bindings of CX_VAR_LOCAL variables in the map: O(1). */
static inline size_t cx__map_nlocal(const cx__node *root) { return cx__hamt_nmarked(root); }
/* Calls fn for every entry of a CX_VAR_LOCAL variable (borrowed; e->key is
 * the variable), visiting only the subtrees that hold some. Stops at the
 * first non-zero return and returns it. */
static inline int cx__map_foreach_local(const cx__node *root,
                                        int (*fn)(const cx__entry *e, void *arg), void *arg)
{
    return cx__hamt_foreach_marked(root, &cx__var_map_ops, fn, arg);
}

/* Calls fn(var, value, arg) for every binding (both borrowed); stops at the
 * first non-zero return and returns it. */
CX__HIDDEN int cx__map_foreach(const cx__node *root,
                               int (*fn)(cx_var *var, void *value, void *arg), void *arg);
/* Same variables bound to pointer-equal values. */
CX__HIDDEN bool cx__map_equal(const cx__node *a, const cx__node *b);

#endif
