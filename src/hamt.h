/* hamt.h - the persistent map behind every context (design notes in hamt.c).
 *
 * A map is a root node pointer; NULL is the empty map. Maps are immutable
 * once shared: cx__map_set/cx__map_del may update a node in place only when
 * the caller's reference is the only one to it (see "Ownership" in hamt.c).
 */
#ifndef CX_HAMT_H
#define CX_HAMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "refcount.h"

/* Bitmap levels consume 5 hash bits each: shifts 0,5,...,30 (the last uses
 * the top 2 bits), then one collision level: 8 levels at most (gh-93065). */
#define CX__HAMT_MAX_DEPTH 8

/* Bytes of a node with `count` slots (hamt.c checks the header size). */
#define CX__NODE_BYTES(count) (24u + (size_t)(count) * sizeof(void *))

/* Memory for a node when the allocator said no: a block from the calling
 * thread's reset reserve (tstate.c), or NULL. */
CX__HIDDEN void *cx__reserve_take(size_t size);

enum cx__kind { CX__K_BINDING = 1, CX__K_BITMAP = 2, CX__K_COLLISION = 3 };

/* Common header of everything a node slot can point to. */
typedef struct cx__obj {
    cx__ref ref;
    uint32_t kind;
} cx__obj;

/* One (variable, value) pair, shared by every map, copy and token that
 * holds it. Owns a reference to var and, when var has a destroy callback,
 * the ownership unit of value: the last release calls destroy(value). */
typedef struct cx__binding {
    cx__obj h;
    cx_var *var;  /* owned reference */
    void *value;  /* owned iff var->destroy */
} cx__binding;

typedef struct cx__node cx__node;

/* Objects released after an update, once the context lock is dropped (their
 * release may run user destroy callbacks). */
typedef struct cx__garbage {
    cx__obj *obj[CX__HAMT_MAX_DEPTH + 2];
    unsigned n;
} cx__garbage;

/* New binding holding a new reference to var; NULL on ENOMEM (value stays
 * with the caller). */
CX__HIDDEN cx__binding *cx__binding_new(cx_var *var, void *value);
/* Frees a binding that never entered a map without destroying its value or
 * touching var's count beyond the reference binding_new took. */
CX__HIDDEN void cx__binding_discard(cx__binding *b);

CX__HIDDEN void cx__obj_retain(cx__obj *o);
CX__HIDDEN void cx__obj_release(cx__obj *o); /* NULL is a no-op */
static inline void cx__map_retain(cx__node *root)
{
    if (root != NULL)
        cx__obj_retain((cx__obj *)root);
}
static inline void cx__map_release(cx__node *root) { cx__obj_release((cx__obj *)root); }
CX__HIDDEN void cx__garbage_release(cx__garbage *g);

/* Borrowed binding for var, or NULL. No allocation, no atomics. */
CX__HIDDEN const cx__binding *cx__map_find(const cx__node *root, const cx_var *var);
CX__HIDDEN size_t cx__map_len(const cx__node *root);

/* *rootp is a reference the caller owns; it is replaced by the updated map.
 * set: b is consumed on success. *old receives the binding that was
 * replaced (a reference the caller now owns) or NULL.
 * del: *old receives the removed binding (owned) or NULL if var was absent.
 * Either: objects the caller must release after unlocking go to g.
 * CX_ENOMEM leaves *rootp, b and everything reachable unchanged. */
CX__HIDDEN int cx__map_set(cx__node **rootp, cx__binding *b, cx__binding **old,
                           cx__garbage *g);
CX__HIDDEN int cx__map_del(cx__node **rootp, const cx_var *var, cx__binding **old,
                           cx__garbage *g);

/* Calls fn for every binding (borrowed); stops at the first non-zero
 * return and returns it. Allocation-free: an explicit stack of
 * CX__HAMT_MAX_DEPTH frames covers the deepest tree. */
CX__HIDDEN int cx__map_foreach(const cx__node *root,
                               int (*fn)(cx_var *var, void *value, void *arg),
                               void *arg);
CX__HIDDEN bool cx__map_equal(const cx__node *a, const cx__node *b);

/* Bindings of CX_VAR_LOCAL variables in the map: O(1). */
CX__HIDDEN uint32_t cx__map_nlocal(const cx__node *root);
/* Calls fn for every binding of a CX_VAR_LOCAL variable (borrowed), visiting
 * only the subtrees that hold some: cost in proportion to those bindings
 * (times the depth). Stops at the first non-zero return and returns it. */
CX__HIDDEN int cx__map_foreach_local(const cx__node *root,
                                     int (*fn)(cx__binding *b, void *arg), void *arg);

/* Test-only introspection: depth of the deepest node (0 for empty). */
CX__HIDDEN unsigned cx__map_depth(const cx__node *root);

#endif
