/* hamt.c - a hash array mapped trie: the immutable map inside a context.
 *
 * Why a HAMT
 * ----------
 * A context must be copyable in O(1) (cx_copy_context is called on every
 * pool submit) and settable in O(log n). A persistent map gives both: a
 * copy shares the root, a set copies only the path from the root to the
 * changed slot and shares everything else.
 *
 * Shape
 * -----
 * Every variable has a 32-bit hash. A bitmap node consumes 5 bits of it per
 * level: level 0 looks at bits 0-4, level 1 at bits 5-9, ... level 6 at bits
 * 30-31. The node stores a 32-bit bitmap of which of the 32 possible slots
 * are present and a dense array of the present ones, so a slot's index is
 * the popcount of the bitmap bits below it:
 *
 *     bitmap  ...0010 0110          slot[] = [ A, B, C ]
 *     chunk 1 -> A, chunk 2 -> B, chunk 5 -> C
 *
 * A slot holds either a binding (variable, value) or a child node. When two
 * variables' chunks meet in one slot, the slot becomes a child node one
 * level down, split on the next 5 bits. Two variables whose full 32-bit
 * hashes are equal can never be split: they go into a collision node, a
 * flat array of bindings with that one hash. So the deepest path is 7
 * bitmap levels plus one collision level: 8 (CX__HAMT_MAX_DEPTH; CPython
 * once got this bound wrong, gh-93065).
 *
 *     root(bitmap, bits 0-4)
 *      +- [3] binding(v1)
 *      +- [9] bitmap(bits 5-9)
 *              +- [0] binding(v2)
 *              +- [17] collision(hash 0x2a9) -> [ binding(v3), binding(v4) ]
 *
 * Each node also records `size`, the number of bindings below it, so the
 * length of a map is O(1) and is kept up to date by the path copy, and
 * `nlocal`, how many of them belong to CX_VAR_LOCAL variables (SPEC 5.4):
 * a capture for another thread checks the root's count (O(1) when it is 0)
 * and otherwise visits only the subtrees that hold local bindings
 * (cx__map_foreach_local), so leaving them out costs in proportion to the
 * local bindings, not to the map. A variable's flags never change, so an
 * update changes `nlocal` exactly when it changes `size`, by the same
 * amount times var_local(var) (0 or 1).
 *
 * Deletion keeps the tree compact: a non-root bitmap node left with a
 * single binding, and a collision node left with one binding, collapse into
 * that binding in their parent's slot.
 *
 * Ownership
 * ---------
 * Nodes and bindings are reference counted (refcount.h). A node owns one
 * reference to everything in its slots. Path copying normally retains every
 * slot of the copied node: an atomic increment per slot. That is the cost a
 * context's owner would pay on every set, although most of the time its map
 * is not shared at all. So an update walks down with `own`: true while every
 * node on the path so far is held by exactly one reference, the caller's.
 * Such a node is invisible to everybody else (readers in other threads
 * only reach a context's root under the context lock, which the updating
 * owner holds), so it is updated in place, or moved into a larger node
 * without touching its children's counts. The first shared node on the path
 * switches to plain path copying for the rest of the way down.
 *
 * Failure
 * -------
 * Every allocation an update needs at a level is made before anything at
 * that level (or above) is changed, so CX_ENOMEM leaves the map as it was.
 * Lookups cannot fail: they return a binding or NULL.
 */
#include "hamt.h"

#include <string.h>

#include "var.h"

struct cx__node {
    cx__obj h;
    uint32_t bits;  /* bitmap node: present chunks; collision node: the hash */
    uint32_t count; /* slots in use */
    uint32_t size;   /* bindings in this subtree */
    uint32_t nlocal; /* of which bindings of CX_VAR_LOCAL variables */
    cx__obj *slot[];
};

/* ========================================================== objects */

cx__binding *cx__binding_new(cx_var *var, void *value)
{
    cx__binding *b = cx__malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    cx__ref_init(&b->h.ref);
    b->h.kind = CX__K_BINDING;
    cx__var_retain(var);
    b->var = var;
    b->value = value;
    return b;
}

void cx__binding_discard(cx__binding *b)
{
    cx_var_release(b->var);
    cx__free(b);
}

void cx__obj_retain(cx__obj *o) { cx__ref_inc(&o->ref); }

static void obj_destroy(cx__obj *o);

void cx__obj_release(cx__obj *o)
{
    if (o != NULL && cx__ref_dec(&o->ref))
        obj_destroy(o);
}

/* Recursion depth is bounded by CX__HAMT_MAX_DEPTH. */
static void obj_destroy(cx__obj *o)
{
    if (o->kind == CX__K_BINDING) {
        cx__binding *b = (cx__binding *)o;
        if (b->var->destroy != NULL)
            b->var->destroy(b->value);
        cx_var_release(b->var);
    } else {
        cx__node *n = (cx__node *)o;
        for (uint32_t i = 0; i < n->count; i++)
            cx__obj_release(n->slot[i]);
    }
    cx__free(o);
}

void cx__garbage_release(cx__garbage *g)
{
    for (unsigned i = 0; i < g->n; i++)
        cx__obj_release(g->obj[i]);
    g->n = 0;
}

static void garbage_add(cx__garbage *g, cx__obj *o) { g->obj[g->n++] = o; }

static uint32_t obj_size(const cx__obj *o)
{
    return o->kind == CX__K_BINDING ? 1 : ((const cx__node *)o)->size;
}

static uint32_t var_local(const cx_var *v) { return (v->flags & CX_VAR_LOCAL) != 0; }

static uint32_t obj_nlocal(const cx__obj *o)
{
    return o->kind == CX__K_BINDING ? var_local(((const cx__binding *)o)->var)
                                    : ((const cx__node *)o)->nlocal;
}

static uint32_t binding_hash(const cx__binding *b) { return b->var->hash; }

/* ========================================================== nodes */

_Static_assert(sizeof(cx__node) == CX__NODE_BYTES(0), "node header size");

static cx__node *node_alloc(uint32_t kind, uint32_t count)
{
    size_t bytes = CX__NODE_BYTES(count);
    cx__node *n = cx__malloc(bytes);
    if (n == NULL && (n = cx__reserve_take(bytes)) == NULL)
        return NULL;
    cx__ref_init(&n->h.ref);
    n->h.kind = kind;
    n->count = count;
    return n;
}

/* Fills dst->slot[] from src->slot[], leaving a hole at `at` (when
 * at < dst->count and dst is one larger) or copying 1:1 (same count). When
 * the source is shared (!own) the copied slots gain a reference; when it is
 * owned they move. `skip` (if < src->count) is not copied: the caller puts
 * something else there. */
static void copy_slots(cx__node *dst, const cx__node *src, bool own, uint32_t hole,
                       uint32_t skip)
{
    uint32_t d = 0;
    for (uint32_t s = 0; s < src->count; s++) {
        if (d == hole)
            d++;
        if (s == skip) {
            if (dst->count != src->count - 1)
                d++; /* same-size copy: keep the position for the caller */
            continue;
        }
        if (!own)
            cx__obj_retain(src->slot[s]);
        dst->slot[d++] = src->slot[s];
    }
}

static inline uint32_t chunk(uint32_t hash, unsigned shift)
{
    return (hash >> shift) & 31u;
}

/* Bits set in x. Written out because the x86-64 baseline has no popcnt
 * instruction and __builtin_popcount then becomes a libgcc call. */
static inline uint32_t popcount32(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (x * 0x01010101u) >> 24;
}

static inline uint32_t slot_index(uint32_t bits, uint32_t bit)
{
    return popcount32(bits & (bit - 1));
}

/* A subtree holding exactly a and b (both references are consumed on
 * success), rooted at the level of `shift`. NULL on ENOMEM, nothing
 * consumed. */
static cx__node *make_pair(unsigned shift, cx__obj *a, uint32_t ha, cx__binding *b)
{
    uint32_t hb = binding_hash(b);
    if (ha == hb) {
        cx__node *c = node_alloc(CX__K_COLLISION, 2);
        if (c == NULL)
            return NULL;
        c->bits = ha;
        c->size = 2;
        c->nlocal = obj_nlocal(a) + var_local(b->var);
        c->slot[0] = a;
        c->slot[1] = &b->h;
        return c;
    }
    uint32_t ia = chunk(ha, shift), ib = chunk(hb, shift);
    if (ia == ib) {
        cx__node *n = node_alloc(CX__K_BITMAP, 1);
        if (n == NULL)
            return NULL;
        cx__node *sub = make_pair(shift + 5, a, ha, b);
        if (sub == NULL) {
            cx__free(n);
            return NULL;
        }
        n->bits = 1u << ia;
        n->size = sub->size;
        n->nlocal = sub->nlocal;
        n->slot[0] = &sub->h;
        return n;
    }
    cx__node *n = node_alloc(CX__K_BITMAP, 2);
    if (n == NULL)
        return NULL;
    n->bits = (1u << ia) | (1u << ib);
    n->size = obj_size(a) + 1;
    n->nlocal = obj_nlocal(a) + var_local(b->var);
    n->slot[ia < ib ? 0 : 1] = a;
    n->slot[ia < ib ? 1 : 0] = &b->h;
    return n;
}

/* ========================================================== lookup */

const cx__binding *cx__map_find(const cx__node *n, const cx_var *var)
{
    uint32_t hash = var->hash;
    for (unsigned shift = 0; n != NULL; shift += 5) {
        if (n->h.kind == CX__K_COLLISION) {
            for (uint32_t i = 0; i < n->count; i++)
                if (((const cx__binding *)n->slot[i])->var == var)
                    return (const cx__binding *)n->slot[i];
            return NULL;
        }
        uint32_t bit = 1u << chunk(hash, shift);
        if (!(n->bits & bit))
            return NULL;
        const cx__obj *o = n->slot[slot_index(n->bits, bit)];
        if (o->kind == CX__K_BINDING)
            return ((const cx__binding *)o)->var == var ? (const cx__binding *)o : NULL;
        n = (const cx__node *)o;
    }
    return NULL;
}

size_t cx__map_len(const cx__node *root) { return root == NULL ? 0 : root->size; }

/* ========================================================== set */

/* State of one update, threaded through the recursion. */
typedef struct upd {
    cx__binding *b;    /* set: the binding to insert (consumed on success) */
    const cx_var *var; /* the key */
    uint32_t hash;
    cx__binding *old;  /* out: replaced/removed binding, owned */
    cx__garbage *g;
} upd;

static int node_set(cx__node *n, bool own, unsigned shift, upd *u, cx__node **out);

/* The binding being replaced leaves the map: its reference moves to the
 * caller when the node was owned, else the caller gets a new one. */
static void take_old(upd *u, cx__obj *o, bool own)
{
    if (!own)
        cx__obj_retain(o);
    u->old = (cx__binding *)o;
}

static int collision_set(cx__node *n, bool own, unsigned shift, upd *u, cx__node **out)
{
    if (u->hash != n->bits) {
        /* A different hash reached this collision node (its prefix matched
         * so far): push the node one level down beside the new binding. The
         * pair takes over the parent's reference to n, or a new one when n
         * is shared. */
        cx__node *p = make_pair(shift, &n->h, n->bits, u->b);
        if (p == NULL)
            return CX_ENOMEM;
        if (!own)
            cx__obj_retain(&n->h);
        *out = p;
        return 0;
    }
    for (uint32_t i = 0; i < n->count; i++) {
        if (((cx__binding *)n->slot[i])->var != u->var)
            continue;
        if (own) {
            take_old(u, n->slot[i], true);
            n->slot[i] = &u->b->h;
            *out = n;
            return 0;
        }
        cx__node *c = node_alloc(CX__K_COLLISION, n->count);
        if (c == NULL)
            return CX_ENOMEM;
        c->bits = n->bits;
        c->size = n->size;
        c->nlocal = n->nlocal;
        copy_slots(c, n, false, UINT32_MAX, i);
        take_old(u, n->slot[i], false);
        c->slot[i] = &u->b->h;
        *out = c;
        return 0;
    }
    cx__node *c = node_alloc(CX__K_COLLISION, n->count + 1);
    if (c == NULL)
        return CX_ENOMEM;
    c->bits = n->bits;
    c->size = n->size + 1;
    c->nlocal = n->nlocal + var_local(u->var);
    copy_slots(c, n, own, UINT32_MAX, UINT32_MAX);
    c->slot[n->count] = &u->b->h;
    if (own)
        cx__free(n); /* its slots moved to c */
    *out = c;
    return 0;
}

static int bitmap_set(cx__node *n, bool own, unsigned shift, upd *u, cx__node **out)
{
    uint32_t bit = 1u << chunk(u->hash, shift);
    uint32_t idx = slot_index(n->bits, bit);

    if (!(n->bits & bit)) {
        /* Free chunk: a node one slot larger. */
        cx__node *c = node_alloc(CX__K_BITMAP, n->count + 1);
        if (c == NULL)
            return CX_ENOMEM;
        c->bits = n->bits | bit;
        c->size = n->size + 1;
        c->nlocal = n->nlocal + var_local(u->var);
        copy_slots(c, n, own, idx, UINT32_MAX);
        c->slot[idx] = &u->b->h;
        if (own)
            cx__free(n);
        *out = c;
        return 0;
    }

    cx__obj *o = n->slot[idx];
    cx__obj *repl; /* what goes into slot idx */
    cx__node *c = NULL;
    if (!own) {
        /* Shared: the copy is allocated first so nothing below it can be
         * left half-done by a later failure. */
        c = node_alloc(CX__K_BITMAP, n->count);
        if (c == NULL)
            return CX_ENOMEM;
    }
    if (o->kind == CX__K_BINDING && ((cx__binding *)o)->var == u->var) {
        take_old(u, o, own);
        repl = &u->b->h;
    } else if (o->kind == CX__K_BINDING) {
        /* Two variables in one chunk: push both one level down. The pair
         * takes over this slot's reference to o (or a new one if shared). */
        cx__node *p = make_pair(shift + 5, o, binding_hash((cx__binding *)o), u->b);
        if (p == NULL) {
            cx__free(c);
            return CX_ENOMEM;
        }
        if (!own)
            cx__obj_retain(o);
        repl = &p->h;
    } else {
        cx__node *child = (cx__node *)o, *nc;
        bool child_own = own && cx__ref_unique(&child->h.ref);
        int rc = node_set(child, child_own, shift + 5, u, &nc);
        if (rc != 0) {
            cx__free(c);
            return rc;
        }
        /* A shared child that was copied loses the reference this (owned)
         * node held; released once the context lock is dropped. */
        if (own && !child_own && nc != child)
            garbage_add(u->g, &child->h);
        repl = &nc->h;
    }
    /* A replaced binding leaves both counts as they were (the common
     * set/reset of a bound variable: no work here). */
    if (own) {
        n->slot[idx] = repl;
        if (u->old == NULL) {
            n->size++;
            n->nlocal += var_local(u->var);
        }
        *out = n;
        return 0;
    }
    c->bits = n->bits;
    c->size = n->size;
    c->nlocal = n->nlocal;
    if (u->old == NULL) {
        c->size++;
        c->nlocal += var_local(u->var);
    }
    copy_slots(c, n, false, UINT32_MAX, idx);
    c->slot[idx] = repl;
    *out = c;
    return 0;
}

static int node_set(cx__node *n, bool own, unsigned shift, upd *u, cx__node **out)
{
    if (n->h.kind == CX__K_COLLISION)
        return collision_set(n, own, shift, u, out);
    return bitmap_set(n, own, shift, u, out);
}

int cx__map_set(cx__node **rootp, cx__binding *b, cx__binding **old, cx__garbage *g)
{
    upd u = {.b = b, .var = b->var, .hash = binding_hash(b), .old = NULL, .g = g};
    cx__node *root = *rootp, *res;
    if (root == NULL) {
        res = node_alloc(CX__K_BITMAP, 1);
        if (res == NULL)
            return CX_ENOMEM;
        res->bits = 1u << chunk(u.hash, 0);
        res->size = 1;
        res->nlocal = var_local(b->var);
        res->slot[0] = &b->h;
    } else {
        bool own = cx__ref_unique(&root->h.ref);
        int rc = node_set(root, own, 0, &u, &res);
        if (rc != 0)
            return rc;
        if (!own)
            garbage_add(g, &root->h);
    }
    *rootp = res;
    *old = u.old;
    return 0;
}

/* ========================================================== delete */

/* Result of a delete below a slot. */
enum { DEL_ABSENT, DEL_EMPTY, DEL_DONE };

static int node_del(cx__node *n, bool own, unsigned shift, upd *u, cx__obj **out);

/* Removes slot idx of n (bitmap bit `bit`, or 0 for a collision node).
 * If own, n is compacted in place; else *out is a new node (CX_ENOMEM
 * possible). The slot's object is not released here. */
static int remove_slot(cx__node *n, bool own, uint32_t idx, uint32_t bit, uint32_t local,
                       cx__obj **out)
{
    if (own) {
        memmove(&n->slot[idx], &n->slot[idx + 1], (n->count - idx - 1) * sizeof(n->slot[0]));
        n->count--;
        n->bits &= ~bit;
        n->size--;
        n->nlocal -= local;
        *out = &n->h;
        return 0;
    }
    cx__node *c = node_alloc(n->h.kind, n->count - 1);
    if (c == NULL)
        return CX_ENOMEM;
    c->bits = n->bits & ~bit;
    c->size = n->size - 1;
    c->nlocal = n->nlocal - local;
    copy_slots(c, n, false, UINT32_MAX, idx);
    *out = &c->h;
    return 0;
}

/* The single remaining binding of a node that collapses into its parent's
 * slot: moved out of an owned node (whose shell is freed), else retained. */
static cx__obj *collapse(cx__node *n, bool own, uint32_t keep)
{
    cx__obj *b = n->slot[keep];
    if (own)
        cx__free(n);
    else
        cx__obj_retain(b);
    return b;
}

static int collision_del(cx__node *n, bool own, upd *u, cx__obj **out)
{
    for (uint32_t i = 0; i < n->count; i++) {
        if (((cx__binding *)n->slot[i])->var != u->var)
            continue;
        cx__obj *victim = n->slot[i];
        if (n->count == 2) {
            *out = collapse(n, own, 1 - i);
        } else {
            int rc = remove_slot(n, own, i, 0, var_local(u->var), out);
            if (rc != 0)
                return rc;
        }
        take_old(u, victim, own);
        return DEL_DONE;
    }
    return DEL_ABSENT;
}

static int bitmap_del(cx__node *n, bool own, unsigned shift, upd *u, cx__obj **out)
{
    uint32_t bit = 1u << chunk(u->hash, shift);
    if (!(n->bits & bit))
        return DEL_ABSENT;
    uint32_t idx = slot_index(n->bits, bit);
    cx__obj *o = n->slot[idx];

    if (o->kind == CX__K_BINDING) {
        if (((cx__binding *)o)->var != u->var)
            return DEL_ABSENT;
        if (n->count == 1) {
            if (own)
                cx__free(n);
            take_old(u, o, own);
            return DEL_EMPTY;
        }
        if (n->count == 2 && shift > 0 && n->slot[1 - idx]->kind == CX__K_BINDING) {
            *out = collapse(n, own, 1 - idx);
        } else {
            int rc = remove_slot(n, own, idx, bit, var_local(u->var), out);
            if (rc != 0)
                return rc;
        }
        take_old(u, o, own);
        return DEL_DONE;
    }

    cx__node *child = (cx__node *)o;
    cx__node *c = NULL;
    if (!own) {
        c = node_alloc(CX__K_BITMAP, n->count); /* before anything changes */
        if (c == NULL)
            return CX_ENOMEM;
    }
    bool child_own = own && cx__ref_unique(&child->h.ref);
    cx__obj *nc = NULL;
    int r = node_del(child, child_own, shift + 5, u, &nc);
    if (r < 0 || r == DEL_ABSENT) {
        cx__free(c);
        return r;
    }
    /* r is DEL_DONE: a child never empties. A non-root node holds two
     * bindings or more (make_pair builds it so, and a delete that leaves
     * one collapses it into a binding), so one delete leaves it one. */
    if (own && !child_own && nc != &child->h)
        garbage_add(u->g, &child->h);
    if (n->count == 1 && shift > 0 && nc->kind == CX__K_BINDING) {
        /* This node is now just one binding: collapse it upwards too. */
        if (own)
            cx__free(n);
        else
            cx__free(c);
        *out = nc;
        return DEL_DONE;
    }
    if (own) {
        n->slot[idx] = nc;
        n->size--;
        n->nlocal -= var_local(u->var);
        *out = &n->h;
        return DEL_DONE;
    }
    c->bits = n->bits;
    c->size = n->size - 1;
    c->nlocal = n->nlocal - var_local(u->var);
    copy_slots(c, n, false, UINT32_MAX, idx);
    c->slot[idx] = nc;
    *out = &c->h;
    return DEL_DONE;
}

static int node_del(cx__node *n, bool own, unsigned shift, upd *u, cx__obj **out)
{
    if (n->h.kind == CX__K_COLLISION)
        return collision_del(n, own, u, out);
    return bitmap_del(n, own, shift, u, out);
}

int cx__map_del(cx__node **rootp, const cx_var *var, cx__binding **old, cx__garbage *g)
{
    upd u = {.b = NULL, .var = var, .hash = var->hash, .old = NULL, .g = g};
    cx__node *root = *rootp;
    *old = NULL;
    if (root == NULL)
        return 0;
    bool own = cx__ref_unique(&root->h.ref);
    cx__obj *res = NULL;
    int r = node_del(root, own, 0, &u, &res);
    if (r < 0)
        return r;
    if (r == DEL_ABSENT)
        return 0;
    if (!own)
        garbage_add(g, &root->h);
    /* The root never collapses into a binding: collapsing stops at shift 0. */
    *rootp = r == DEL_EMPTY ? NULL : (cx__node *)res;
    *old = u.old;
    return 0;
}

/* ========================================================== iteration */

int cx__map_foreach(const cx__node *root, int (*fn)(cx_var *var, void *value, void *arg),
                    void *arg)
{
    const cx__node *stack[CX__HAMT_MAX_DEPTH];
    uint32_t pos[CX__HAMT_MAX_DEPTH];
    int top = 0;
    if (root == NULL)
        return 0;
    stack[0] = root;
    pos[0] = 0;
    while (top >= 0) {
        const cx__node *n = stack[top];
        if (pos[top] == n->count) {
            top--;
            continue;
        }
        const cx__obj *o = n->slot[pos[top]++];
        if (o->kind == CX__K_BINDING) {
            const cx__binding *b = (const cx__binding *)o;
            int rc = fn(b->var, b->value, arg);
            if (rc != 0)
                return rc;
        } else {
            top++;
            stack[top] = (const cx__node *)o;
            pos[top] = 0;
        }
    }
    return 0;
}

uint32_t cx__map_nlocal(const cx__node *root) { return root == NULL ? 0 : root->nlocal; }

/* Depth is bounded by CX__HAMT_MAX_DEPTH; subtrees without local bindings
 * are skipped whole. */
static int foreach_local(const cx__node *n, int (*fn)(cx__binding *b, void *arg), void *arg)
{
    for (uint32_t i = 0; i < n->count; i++) {
        cx__obj *o = n->slot[i];
        int rc = 0;
        if (o->kind == CX__K_BINDING) {
            if (var_local(((cx__binding *)o)->var))
                rc = fn((cx__binding *)o, arg);
        } else if (((const cx__node *)o)->nlocal != 0) {
            rc = foreach_local((const cx__node *)o, fn, arg);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int cx__map_foreach_local(const cx__node *root, int (*fn)(cx__binding *b, void *arg), void *arg)
{
    return cx__map_nlocal(root) == 0 ? 0 : foreach_local(root, fn, arg);
}

static int equal_visit(cx_var *var, void *value, void *arg)
{
    const cx__binding *b = cx__map_find((const cx__node *)arg, var);
    return (b == NULL || b->value != value) ? 1 : 0;
}

bool cx__map_equal(const cx__node *a, const cx__node *b)
{
    if (a == b)
        return true;
    if (cx__map_len(a) != cx__map_len(b))
        return false;
    return cx__map_foreach(a, equal_visit, (void *)b) == 0;
}

unsigned cx__map_depth(const cx__node *n)
{
    if (n == NULL)
        return 0;
    unsigned deepest = 0;
    for (uint32_t i = 0; i < n->count; i++) {
        if (n->slot[i]->kind != CX__K_BINDING) {
            unsigned d = cx__map_depth((const cx__node *)n->slot[i]);
            if (d > deepest)
                deepest = d;
        }
    }
    return deepest + 1;
}
