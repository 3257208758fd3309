/* hamt.c - a hash array mapped trie: the immutable map inside a context.
 *
 * Why a HAMT
 * ----------
 * A context must be copyable in O(1) (cx_copy_context is called on every
 * pool submit) and settable in O(log n). A persistent map gives both: a
 * copy shares the root, a set copies only the path from the root to the
 * changed slot and shares everything else.
 *
 * What it stores
 * --------------
 * Opaque entries: a key (non-NULL) and a value, two words. The map never
 * looks inside them: the user (var.c) gives it, in a cx__hamt_ops, the hash
 * of a stored key, how to retain and release an entry, and where node
 * memory comes from. So this file knows nothing of variables, destroy
 * callbacks, threads or the reset reserve.
 *
 * Shape
 * -----
 * Every key has a 32-bit hash. A bitmap node consumes 5 bits of it per
 * level: level 0 looks at bits 0-4, level 1 at bits 5-9, ... level 6 at bits
 * 30-31. The node stores a 32-bit bitmap of which of the 32 possible chunks
 * are present and a dense array of the present entries, so an entry's index
 * is the popcount of the bitmap bits below its chunk:
 *
 *     bitmap  ...0010 0110          e[] = [ A, B, C ]
 *     chunk 1 -> A, chunk 2 -> B, chunk 5 -> C
 *
 * Entries are stored inline, two words each (CPython's layout): an entry
 * is either a key with its value, or, when its key is NULL, a link whose
 * value is a child node one level down. When two keys' chunks meet in one
 * slot, the slot becomes a link to a node split on the next 5 bits. Two
 * keys whose full 32-bit hashes are equal can never be split: they go into
 * a collision node, a flat array of entries with that one hash. So the
 * deepest path is 7 bitmap levels plus one collision level: 8
 * (CX__HAMT_MAX_DEPTH; CPython once got this bound wrong, gh-93065).
 *
 *     root(bitmap, bits 0-4)
 *      +- [3] (k1, v1)
 *      +- [9] (NULL, ->) bitmap(bits 5-9)
 *                         +- [0] (k2, v2)
 *                         +- [17] (NULL, ->) collision(hash 0x2a9)
 *                                             -> [ (k3, v3), (k4, v4) ]
 *
 * Each node also records `size`, the number of entries below it, so the
 * length of a map is O(1) and is kept up to date by every update.
 *
 * Deletion keeps the tree compact: a non-root bitmap node left with a
 * single entry, and a collision node left with one entry, collapse into
 * that entry in their parent's slot. Hence the invariants cx__hamt_check
 * verifies: a non-root bitmap node holds two entries or more below it, and
 * if it has one slot, that slot is a link (a chain towards a deep split).
 *
 * A node has room for `cap` entries, `count` rounded up to even: an owned
 * node grows in place into its spare entry, so a key that is added and
 * removed again (a set and reset of an unbound variable) allocates nothing.
 *
 * Ownership
 * ---------
 * Nodes are reference counted (refcount.h). A node holds one reference to
 * each of its children and one entry reference (ops->retain) to each of its
 * entries. Path copying retains every entry and child of the copied node.
 * That is the cost a context's owner would pay on every set, although most
 * of the time its map is not shared at all. So an update walks down with
 * `own`: true while every node on the path so far is held by exactly one
 * reference, the caller's. Such a node is invisible to everybody else
 * (readers in other threads only reach a context's root under the context
 * lock, which the updating owner holds), so it is updated in place, or
 * moved into a larger node without touching its entries' counts. The first
 * shared node on the path switches to plain path copying for the rest of
 * the way down.
 *
 * An update never releases an entry: a replaced or removed entry goes to
 * the caller with a reference, and shared nodes the caller's map stops
 * referencing go to a garbage list the caller releases later. Releasing
 * can run user code (destroy callbacks), which the caller must not run
 * while it holds its lock.
 *
 * Failure
 * -------
 * Every allocation an update needs at a level is made before anything at
 * that level (or above) is changed, so a NOMEM result leaves the map as it
 * was. Lookups cannot fail: they return an entry or NULL.
 */
#include "hamt.h"

#include <string.h>

#include "check.h"

#if CX__POPCNT_CHECKED
#include <cpuid.h>

unsigned char cx__have_popcnt;

/* Once, at load: whether the CPU has popcnt (hamt.h, cx__popcount32).
 * Until this runs the flag is 0 and lookups count bits in software, which
 * gives the same result. */
__attribute__((constructor)) static void detect_popcnt(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_POPCNT) != 0)
        cx__have_popcnt = 1;
}
#endif

enum { K_BITMAP = CX__HAMT_BITMAP, K_COLLISION = CX__HAMT_COLLISION };

_Static_assert(sizeof(cx__node) == CX__NODE_BYTES(0), "node header size");
_Static_assert(offsetof(cx__node, ref) == 0, "cx__hamt_retain casts a node to its count");

/* Largest shift of a bitmap level (bits 30-31). */
#define MAX_SHIFT 30

/* ========================================================== helpers */

static inline uint32_t chunk(uint32_t hash, unsigned shift)
{
    return (hash >> shift) & 31u;
}

static inline uint32_t slot_index(uint32_t bits, uint32_t bit) { return cx__hamt_slot(bits, bit); }

static inline bool is_link(const cx__entry *e) { return e->key == NULL; }
static inline cx__node *link_node(const cx__entry *e) { return (cx__node *)e->value; }
static inline cx__entry link_to(cx__node *n) { return (cx__entry){NULL, n}; }

static inline uint32_t entry_size(const cx__entry *e)
{
    return is_link(e) ? link_node(e)->size : 1;
}

/* 1 if ops marks the key (ops->marked may be NULL: nothing is marked). */
static inline uint32_t key_mark(const cx__hamt_ops *ops, const void *key)
{
    return ops->marked != NULL && ops->marked(key) ? 1u : 0u;
}
static inline uint32_t entry_mark(const cx__hamt_ops *ops, const cx__entry *e)
{
    return is_link(e) ? link_node(e)->nmark : key_mark(ops, e->key);
}

/* A new reference to what an entry stands for (a child node or a key). */
static void entry_retain(const cx__hamt_ops *ops, const cx__entry *e)
{
    if (is_link(e))
        cx__ref_inc(&link_node(e)->ref);
    else
        ops->retain(e);
}

/* ========================================================== nodes */

static cx__node *node_new(const cx__hamt_ops *ops, uint32_t kind, uint32_t count)
{
    uint32_t cap = (count + 1u) & ~1u;
    if (cap < 2)
        cap = 2;
    cx__node *n = ops->alloc(CX__NODE_BYTES(cap));
    if (n == NULL)
        return NULL;
    cx__ref_init(&n->ref);
    n->kind = kind;
    n->count = count;
    n->cap = cap;
    return n;
}

/* Frees a node's memory only (its entries were moved or never there). */
static void node_free_shell(const cx__hamt_ops *ops, cx__node *n)
{
    if (n != NULL)
        ops->free(n, CX__NODE_BYTES(n->cap));
}

/* dst->e[at..at+count) = src[0..count); each copied entry gains a reference
 * unless they move (own: the source node's shell is freed after). */
static void copy_entries(const cx__hamt_ops *ops, cx__node *dst, uint32_t at,
                         const cx__entry *src, uint32_t count, bool own)
{
    memcpy(&dst->e[at], src, count * sizeof(*src));
    if (!own)
        for (uint32_t i = 0; i < count; i++)
            entry_retain(ops, &src[i]);
}

/* Recursion depth is bounded by CX__HAMT_MAX_DEPTH. */
void cx__hamt_free(cx__node *n, const cx__hamt_ops *ops)
{
    for (uint32_t i = 0; i < n->count; i++) {
        if (is_link(&n->e[i]))
            cx__hamt_release(link_node(&n->e[i]), ops);
        else
            ops->release(&n->e[i]);
    }
    node_free_shell(ops, n);
}

void cx__hamt_garbage_release(cx__hamt_garbage *g, const cx__hamt_ops *ops)
{
    for (unsigned i = 0; i < g->n; i++)
        cx__hamt_release(g->node[i], ops);
    g->n = 0;
}

static void garbage_add(cx__hamt_garbage *g, cx__node *n)
{
    CX__ASSERT(g->n < sizeof(g->node) / sizeof(g->node[0]));
    g->node[g->n++] = n;
}

/* A subtree holding exactly a (an entry or a link, hash ha) and b (an
 * entry, hash hb), rooted at the level of `shift`: *out is the link to it.
 * Both entries' references move into it. false on NOMEM, nothing built. */
static bool make_pair(const cx__hamt_ops *ops, unsigned shift, const cx__entry *a, uint32_t ha,
                      const cx__entry *b, uint32_t hb, cx__entry *out)
{
    if (ha == hb) {
        CX__ASSERT(!is_link(a)); /* a collision node meets only other hashes */
        cx__node *c = node_new(ops, K_COLLISION, 2);
        if (c == NULL)
            return false;
        c->bits = ha;
        c->size = 2;
        c->nmark = entry_mark(ops, a) + entry_mark(ops, b);
        c->e[0] = *a;
        c->e[1] = *b;
        *out = link_to(c);
        return true;
    }
    CX__ASSERT(shift <= MAX_SHIFT);
    uint32_t ia = chunk(ha, shift), ib = chunk(hb, shift);
    if (ia == ib) {
        cx__node *n = node_new(ops, K_BITMAP, 1);
        if (n == NULL)
            return false;
        cx__entry sub;
        if (!make_pair(ops, shift + 5, a, ha, b, hb, &sub)) {
            node_free_shell(ops, n);
            return false;
        }
        n->bits = 1u << ia;
        n->size = link_node(&sub)->size;
        n->nmark = link_node(&sub)->nmark;
        n->e[0] = sub;
        *out = link_to(n);
        return true;
    }
    cx__node *n = node_new(ops, K_BITMAP, 2);
    if (n == NULL)
        return false;
    n->bits = (1u << ia) | (1u << ib);
    n->size = entry_size(a) + 1;
    n->nmark = entry_mark(ops, a) + entry_mark(ops, b);
    n->e[ia < ib ? 0 : 1] = *a;
    n->e[ia < ib ? 1 : 0] = *b;
    *out = link_to(n);
    return true;
}

/* ========================================================== lookup */

const cx__entry *cx__hamt_find(const cx__node *n, const void *key, uint32_t hash)
{
    for (unsigned shift = 0; n != NULL; shift += 5) {
        if (n->kind == K_COLLISION) {
            for (uint32_t i = 0; i < n->count; i++)
                if (n->e[i].key == key)
                    return &n->e[i];
            return NULL;
        }
        uint32_t bit = 1u << chunk(hash, shift);
        if (!(n->bits & bit))
            return NULL;
        const cx__entry *e = &n->e[slot_index(n->bits, bit)];
        if (e->key == key)
            return e;
        if (!is_link(e))
            return NULL;
        n = link_node(e);
    }
    return NULL;
}

size_t cx__hamt_len(const cx__node *root) { return root == NULL ? 0 : root->size; }

size_t cx__hamt_nmarked(const cx__node *root) { return root == NULL ? 0 : root->nmark; }

/* Depth-first over the subtrees whose nmark is not 0 (bounded recursion:
 * CX__HAMT_MAX_DEPTH). */
static int foreach_marked(const cx__node *n, const cx__hamt_ops *ops,
                          int (*fn)(const cx__entry *e, void *arg), void *arg)
{
    for (uint32_t i = 0; i < n->count; i++) {
        const cx__entry *e = &n->e[i];
        int rc = 0;
        if (is_link(e)) {
            if (link_node(e)->nmark != 0)
                rc = foreach_marked(link_node(e), ops, fn, arg);
        } else if (key_mark(ops, e->key)) {
            rc = fn(e, arg);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int cx__hamt_foreach_marked(const cx__node *root, const cx__hamt_ops *ops,
                            int (*fn)(const cx__entry *e, void *arg), void *arg)
{
    return root == NULL || root->nmark == 0 ? 0 : foreach_marked(root, ops, fn, arg);
}

/* ========================================================== set */

/* State of one update, threaded through the recursion. */
typedef struct upd {
    const cx__hamt_ops *ops;
    cx__entry ent;  /* set: the entry to store */
    const void *key;
    uint32_t hash;
    cx__entry *old; /* out: the replaced/removed entry, with a reference */
    cx__hamt_garbage *g;
    uint32_t m;     /* key_mark of key: what an added/removed entry counts */
} upd;

/* The entry leaving the map goes to the caller with a reference: the
 * node's own when the node was owned (it moves), else a new one. */
static void take_old(upd *u, const cx__entry *e, bool own)
{
    if (!own)
        u->ops->retain(e);
    *u->old = *e;
}

static cx__hamt_set_result node_set(cx__node *n, bool own, unsigned shift, upd *u,
                                   cx__node **out);

/* Contract of every *_set below: with own, the caller's reference to n is
 * consumed (n updated in place, or moved into *out); without, it is left
 * alone and *out is a new node holding references of its own. */
static cx__hamt_set_result collision_set(cx__node *n, bool own, unsigned shift, upd *u,
                                        cx__node **out)
{
    const cx__hamt_ops *ops = u->ops;
    if (u->hash != n->bits) {
        /* A different hash reached this collision node (its prefix matched
         * so far): push the node one level down beside the new entry. The
         * pair takes over the caller's reference to n, or a new one. */
        cx__entry a = link_to(n), p;
        if (!make_pair(ops, shift, &a, n->bits, &u->ent, u->hash, &p))
            return CX__HAMT_SET_NOMEM;
        if (!own)
            cx__ref_inc(&n->ref);
        *out = link_node(&p);
        return CX__HAMT_ADDED;
    }
    for (uint32_t i = 0; i < n->count; i++) {
        if (n->e[i].key != u->key)
            continue;
        if (own) {
            take_old(u, &n->e[i], true);
            n->e[i] = u->ent;
            *out = n;
            return CX__HAMT_REPLACED;
        }
        cx__node *c = node_new(ops, K_COLLISION, n->count);
        if (c == NULL)
            return CX__HAMT_SET_NOMEM;
        c->bits = n->bits;
        c->size = n->size;
        c->nmark = n->nmark;
        copy_entries(ops, c, 0, n->e, i, false);
        copy_entries(ops, c, i + 1, &n->e[i + 1], n->count - i - 1, false);
        take_old(u, &n->e[i], false);
        c->e[i] = u->ent;
        *out = c;
        return CX__HAMT_REPLACED;
    }
    if (own && n->count < n->cap) {
        n->e[n->count++] = u->ent;
        n->size++;
        n->nmark += u->m;
        *out = n;
        return CX__HAMT_ADDED;
    }
    cx__node *c = node_new(ops, K_COLLISION, n->count + 1);
    if (c == NULL)
        return CX__HAMT_SET_NOMEM;
    c->bits = n->bits;
    c->size = n->size + 1;
    c->nmark = n->nmark + u->m;
    copy_entries(ops, c, 0, n->e, n->count, own);
    c->e[n->count] = u->ent;
    if (own)
        node_free_shell(ops, n); /* its entries moved to c */
    *out = c;
    return CX__HAMT_ADDED;
}

static cx__hamt_set_result bitmap_set(cx__node *n, bool own, unsigned shift, upd *u,
                                     cx__node **out)
{
    const cx__hamt_ops *ops = u->ops;
    CX__ASSERT(shift <= MAX_SHIFT);
    uint32_t bit = 1u << chunk(u->hash, shift);
    uint32_t idx = slot_index(n->bits, bit);

    if (!(n->bits & bit)) {
        /* Free chunk: into the spare entry, or a node one entry larger. */
        if (own && n->count < n->cap) {
            memmove(&n->e[idx + 1], &n->e[idx], (n->count - idx) * sizeof(n->e[0]));
            n->e[idx] = u->ent;
            n->bits |= bit;
            n->count++;
            n->size++;
            n->nmark += u->m;
            *out = n;
            return CX__HAMT_ADDED;
        }
        cx__node *c = node_new(ops, K_BITMAP, n->count + 1);
        if (c == NULL)
            return CX__HAMT_SET_NOMEM;
        c->bits = n->bits | bit;
        c->size = n->size + 1;
        c->nmark = n->nmark + u->m;
        copy_entries(ops, c, 0, n->e, idx, own);
        copy_entries(ops, c, idx + 1, &n->e[idx], n->count - idx, own);
        c->e[idx] = u->ent;
        if (own)
            node_free_shell(ops, n);
        *out = c;
        return CX__HAMT_ADDED;
    }

    cx__entry *e = &n->e[idx];
    cx__entry repl; /* what goes into slot idx */
    cx__hamt_set_result r;
    cx__node *c = NULL;
    if (!own) {
        /* Shared: the copy is allocated first so nothing below it can be
         * left half-done by a later failure. */
        c = node_new(ops, K_BITMAP, n->count);
        if (c == NULL)
            return CX__HAMT_SET_NOMEM;
    }
    if (e->key == u->key) {
        take_old(u, e, own);
        repl = u->ent;
        r = CX__HAMT_REPLACED;
    } else if (!is_link(e)) {
        /* Two keys in one chunk: push both one level down. The pair takes
         * over this slot's reference to e (or a new one if shared). */
        if (!make_pair(ops, shift + 5, e, ops->hash(e->key), &u->ent, u->hash, &repl)) {
            node_free_shell(ops, c);
            return CX__HAMT_SET_NOMEM;
        }
        if (!own)
            ops->retain(e);
        r = CX__HAMT_ADDED;
    } else {
        cx__node *child = link_node(e), *nc;
        bool child_own = own && cx__ref_unique(&child->ref);
        r = node_set(child, child_own, shift + 5, u, &nc);
        if (r == CX__HAMT_SET_NOMEM) {
            node_free_shell(ops, c);
            return r;
        }
        /* A shared child was copied: this (owned) node's reference to it
         * goes, once the caller may run user code. */
        if (own && !child_own)
            garbage_add(u->g, child);
        repl = link_to(nc);
    }
    uint32_t grown = r == CX__HAMT_ADDED ? 1 : 0;
    if (own) {
        *e = repl;
        n->size += grown;
        n->nmark += grown * u->m;
        *out = n;
        return r;
    }
    c->bits = n->bits;
    c->size = n->size + grown;
    c->nmark = n->nmark + grown * u->m;
    copy_entries(ops, c, 0, n->e, idx, false);
    copy_entries(ops, c, idx + 1, &n->e[idx + 1], n->count - idx - 1, false);
    c->e[idx] = repl;
    *out = c;
    return r;
}

static cx__hamt_set_result node_set(cx__node *n, bool own, unsigned shift, upd *u,
                                   cx__node **out)
{
    if (n->kind == K_COLLISION)
        return collision_set(n, own, shift, u, out);
    return bitmap_set(n, own, shift, u, out);
}

/* ========================================================== fast paths
 * The common updates of a context's owner, without recursion: every node
 * on the path is owned (count 1) and nothing is allocated, freed, split or
 * collapsed. They return TRY_GENERAL, having changed nothing, whenever
 * anything else is needed. */

enum { TRY_GENERAL = -2 };

/* Replaces the key's entry in place, or adds it into a spare entry of the
 * node its chunk lands in. */
static int set_in_place(const cx__hamt_ops *ops, cx__node *n, const cx__entry *ent,
                        uint32_t hash, cx__entry *old)
{
    cx__node *path[CX__HAMT_MAX_DEPTH];
    unsigned depth = 0;
    for (unsigned shift = 0;; shift += 5) {
        if (n->kind != K_BITMAP || !cx__ref_unique(&n->ref))
            return TRY_GENERAL;
        path[depth++] = n;
        uint32_t bit = 1u << chunk(hash, shift);
        uint32_t idx = slot_index(n->bits, bit);
        if (!(n->bits & bit)) {
            if (n->count == n->cap)
                return TRY_GENERAL;
            memmove(&n->e[idx + 1], &n->e[idx], (n->count - idx) * sizeof(n->e[0]));
            n->e[idx] = *ent;
            n->bits |= bit;
            n->count++;
            uint32_t m = key_mark(ops, ent->key);
            for (unsigned i = 0; i < depth; i++) {
                path[i]->size++;
                path[i]->nmark += m;
            }
            return CX__HAMT_ADDED;
        }
        cx__entry *e = &n->e[idx];
        if (e->key == ent->key) {
            *old = *e; /* the node's reference moves to the caller */
            *e = *ent;
            return CX__HAMT_REPLACED;
        }
        if (!is_link(e))
            return TRY_GENERAL; /* a split */
        n = link_node(e);
    }
}

/* Removes the key's entry in place when its node stays a valid node: the
 * root with another entry left, or a deeper node left with two entries or
 * with a link (so nothing collapses). */
static int del_in_place(const cx__hamt_ops *ops, cx__node *n, const void *key, uint32_t hash,
                        cx__entry *old)
{
    cx__node *path[CX__HAMT_MAX_DEPTH];
    unsigned depth = 0;
    for (unsigned shift = 0;; shift += 5) {
        if (n->kind != K_BITMAP)
            return TRY_GENERAL;
        uint32_t bit = 1u << chunk(hash, shift);
        if (!(n->bits & bit))
            return CX__HAMT_ABSENT;
        if (!cx__ref_unique(&n->ref))
            return TRY_GENERAL;
        path[depth++] = n;
        uint32_t idx = slot_index(n->bits, bit);
        cx__entry *e = &n->e[idx];
        if (is_link(e)) {
            n = link_node(e);
            continue;
        }
        if (e->key != key)
            return CX__HAMT_ABSENT;
        bool keeps = shift == 0 ? n->count >= 2
                                : n->count >= 3 || (n->count == 2 && is_link(&n->e[1 - idx]));
        if (!keeps)
            return TRY_GENERAL;
        *old = *e; /* the node's reference moves to the caller */
        memmove(&n->e[idx], &n->e[idx + 1], (n->count - idx - 1) * sizeof(n->e[0]));
        n->count--;
        n->bits &= ~bit;
        uint32_t m = key_mark(ops, key);
        for (unsigned i = 0; i < depth; i++) {
            path[i]->size--;
            path[i]->nmark -= m;
        }
        return CX__HAMT_REMOVED;
    }
}

/* ========================================================== entry points */

/* The general paths are kept out of line so that the fast ones stay cheap
 * to call (no frame to save the registers the recursion needs). */
static __attribute__((noinline)) cx__hamt_set_result
set_general(cx__node **rootp, const cx__entry *e, uint32_t hash, const cx__hamt_ops *ops,
            cx__entry *old, cx__hamt_garbage *g);
static __attribute__((noinline)) cx__hamt_del_result
del_general(cx__node **rootp, const void *key, uint32_t hash, const cx__hamt_ops *ops,
            cx__entry *old, cx__hamt_garbage *g);

cx__hamt_set_result cx__hamt_set(cx__node **rootp, const cx__entry *e, uint32_t hash,
                                 const cx__hamt_ops *ops, cx__entry *old, cx__hamt_garbage *g)
{
    CX__ASSERT(e->key != NULL);
    if (*rootp != NULL) {
        int fast = set_in_place(ops, *rootp, e, hash, old);
        if (fast != TRY_GENERAL)
            return (cx__hamt_set_result)fast;
    }
    return set_general(rootp, e, hash, ops, old, g);
}

cx__hamt_del_result cx__hamt_del(cx__node **rootp, const void *key, uint32_t hash,
                                 const cx__hamt_ops *ops, cx__entry *old, cx__hamt_garbage *g)
{
    if (*rootp == NULL)
        return CX__HAMT_ABSENT;
    int fast = del_in_place(ops, *rootp, key, hash, old);
    if (fast != TRY_GENERAL)
        return (cx__hamt_del_result)fast;
    return del_general(rootp, key, hash, ops, old, g);
}

static cx__hamt_set_result set_general(cx__node **rootp, const cx__entry *e, uint32_t hash,
                                       const cx__hamt_ops *ops, cx__entry *old,
                                       cx__hamt_garbage *g)
{
    upd u = {.ops = ops, .ent = *e, .key = e->key, .hash = hash, .old = old, .g = g,
             .m = key_mark(ops, e->key)};
    cx__node *root = *rootp, *res;
    if (root == NULL) {
        res = node_new(ops, K_BITMAP, 1);
        if (res == NULL)
            return CX__HAMT_SET_NOMEM;
        res->bits = 1u << chunk(hash, 0);
        res->size = 1;
        res->nmark = u.m;
        res->e[0] = *e;
        *rootp = res;
        return CX__HAMT_ADDED;
    }
    bool own = cx__ref_unique(&root->ref);
    cx__hamt_set_result r = node_set(root, own, 0, &u, &res);
    if (r == CX__HAMT_SET_NOMEM)
        return r;
    if (!own)
        garbage_add(g, root); /* the caller's reference to the old root */
    *rootp = res;
    return r;
}

/* ========================================================== delete */

/* Result of a delete below a slot: absent, the node emptied (only the root
 * can), or done with *out to put in the slot. */
enum { DEL_NOMEM = -1, DEL_ABSENT, DEL_EMPTY, DEL_DONE };

static int node_del(cx__node *n, bool own, unsigned shift, upd *u, cx__entry *out);

/* Removes entry idx of n (bitmap bit `bit`, or 0 for a collision node).
 * If own, n is compacted in place (keeping its capacity); else *out links
 * to a new node (NOMEM possible). The entry's reference is not touched. */
static int remove_slot(const cx__hamt_ops *ops, cx__node *n, bool own, uint32_t idx, uint32_t bit,
                       cx__entry *out)
{
    uint32_t m = entry_mark(ops, &n->e[idx]); /* a key entry: the one deleted */
    if (own) {
        memmove(&n->e[idx], &n->e[idx + 1], (n->count - idx - 1) * sizeof(n->e[0]));
        n->count--;
        n->bits &= ~bit;
        n->size--;
        n->nmark -= m;
        *out = link_to(n);
        return DEL_DONE;
    }
    cx__node *c = node_new(ops, n->kind, n->count - 1);
    if (c == NULL)
        return DEL_NOMEM;
    c->bits = n->bits & ~bit;
    c->size = n->size - 1;
    c->nmark = n->nmark - m;
    copy_entries(ops, c, 0, n->e, idx, false);
    copy_entries(ops, c, idx, &n->e[idx + 1], n->count - idx - 1, false);
    *out = link_to(c);
    return DEL_DONE;
}

/* The single remaining entry of a node that collapses into its parent's
 * slot: moved out of an owned node (whose shell is freed), else retained. */
static cx__entry collapse(const cx__hamt_ops *ops, cx__node *n, bool own, uint32_t keep)
{
    cx__entry e = n->e[keep];
    if (own)
        node_free_shell(ops, n);
    else
        entry_retain(ops, &e);
    return e;
}

static int collision_del(cx__node *n, bool own, upd *u, cx__entry *out)
{
    for (uint32_t i = 0; i < n->count; i++) {
        if (n->e[i].key != u->key)
            continue;
        cx__entry victim = n->e[i];
        if (n->count == 2) {
            *out = collapse(u->ops, n, own, 1 - i);
        } else if (remove_slot(u->ops, n, own, i, 0, out) == DEL_NOMEM) {
            return DEL_NOMEM;
        }
        take_old(u, &victim, own);
        return DEL_DONE;
    }
    return DEL_ABSENT;
}

static int bitmap_del(cx__node *n, bool own, unsigned shift, upd *u, cx__entry *out)
{
    const cx__hamt_ops *ops = u->ops;
    uint32_t bit = 1u << chunk(u->hash, shift);
    if (!(n->bits & bit))
        return DEL_ABSENT;
    uint32_t idx = slot_index(n->bits, bit);
    cx__entry e = n->e[idx];

    if (!is_link(&e)) {
        if (e.key != u->key)
            return DEL_ABSENT;
        if (n->count == 1) {
            /* Only the root holds a single key entry (see Shape). */
            CX__ASSERT(shift == 0);
            if (own)
                node_free_shell(ops, n);
            take_old(u, &e, own);
            return DEL_EMPTY;
        }
        if (n->count == 2 && shift > 0 && !is_link(&n->e[1 - idx])) {
            *out = collapse(ops, n, own, 1 - idx);
        } else if (remove_slot(ops, n, own, idx, bit, out) == DEL_NOMEM) {
            return DEL_NOMEM;
        }
        take_old(u, &e, own);
        return DEL_DONE;
    }

    cx__node *child = link_node(&e);
    cx__node *c = NULL;
    if (!own) {
        c = node_new(ops, K_BITMAP, n->count); /* before anything changes */
        if (c == NULL)
            return DEL_NOMEM;
    }
    bool child_own = own && cx__ref_unique(&child->ref);
    cx__entry ne;
    int r = node_del(child, child_own, shift + 5, u, &ne);
    if (r == DEL_NOMEM || r == DEL_ABSENT) {
        node_free_shell(ops, c);
        return r;
    }
    /* A non-root node holds two entries or more below it, so one delete
     * leaves it one at least: a child never empties. */
    CX__ASSERT(r == DEL_DONE);
    if (own && !child_own)
        garbage_add(u->g, child);
    if (n->count == 1 && shift > 0 && !is_link(&ne)) {
        /* This chain node is now just one entry: collapse it upwards too. */
        if (own)
            node_free_shell(ops, n);
        else
            node_free_shell(ops, c);
        *out = ne;
        return DEL_DONE;
    }
    if (own) {
        n->e[idx] = ne;
        n->size--;
        n->nmark -= u->m;
        *out = link_to(n);
        return DEL_DONE;
    }
    c->bits = n->bits;
    c->size = n->size - 1;
    c->nmark = n->nmark - u->m;
    copy_entries(ops, c, 0, n->e, idx, false);
    copy_entries(ops, c, idx + 1, &n->e[idx + 1], n->count - idx - 1, false);
    c->e[idx] = ne;
    *out = link_to(c);
    return DEL_DONE;
}

static int node_del(cx__node *n, bool own, unsigned shift, upd *u, cx__entry *out)
{
    if (n->kind == K_COLLISION)
        return collision_del(n, own, u, out);
    return bitmap_del(n, own, shift, u, out);
}

static cx__hamt_del_result del_general(cx__node **rootp, const void *key, uint32_t hash,
                                       const cx__hamt_ops *ops, cx__entry *old,
                                       cx__hamt_garbage *g)
{
    cx__node *root = *rootp;
    upd u = {.ops = ops, .key = key, .hash = hash, .old = old, .g = g, .m = key_mark(ops, key)};
    bool own = cx__ref_unique(&root->ref);
    cx__entry res;
    int r = node_del(root, own, 0, &u, &res);
    if (r == DEL_NOMEM)
        return CX__HAMT_DEL_NOMEM;
    if (r == DEL_ABSENT)
        return CX__HAMT_ABSENT;
    if (!own)
        garbage_add(g, root);
    /* The root never collapses into an entry: collapsing stops at shift 0. */
    CX__ASSERT(r == DEL_EMPTY || is_link(&res));
    *rootp = r == DEL_EMPTY ? NULL : link_node(&res);
    return CX__HAMT_REMOVED;
}

/* ========================================================== iteration */

int cx__hamt_foreach(const cx__node *root, int (*fn)(const cx__entry *e, void *arg), void *arg)
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
        const cx__entry *e = &n->e[pos[top]++];
        if (!is_link(e)) {
            int rc = fn(e, arg);
            if (rc != 0)
                return rc;
        } else {
            CX__ASSERT(top + 1 < CX__HAMT_MAX_DEPTH);
            top++;
            stack[top] = link_node(e);
            pos[top] = 0;
        }
    }
    return 0;
}

typedef struct equal_arg {
    const cx__node *other;
    const cx__hamt_ops *ops;
    bool (*same)(const cx__entry *, const cx__entry *);
} equal_arg;

static int equal_visit(const cx__entry *e, void *arg)
{
    const equal_arg *a = arg;
    const cx__entry *o = cx__hamt_find(a->other, e->key, a->ops->hash(e->key));
    return (o == NULL || !a->same(e, o)) ? 1 : 0;
}

bool cx__hamt_equal(const cx__node *a, const cx__node *b, const cx__hamt_ops *ops,
                   bool (*same)(const cx__entry *ea, const cx__entry *eb))
{
    if (a == b)
        return true;
    if (cx__hamt_len(a) != cx__hamt_len(b))
        return false;
    equal_arg arg = {b, ops, same};
    return cx__hamt_foreach(a, equal_visit, &arg) == 0;
}

unsigned cx__hamt_depth(const cx__node *n)
{
    if (n == NULL)
        return 0;
    unsigned deepest = 0;
    for (uint32_t i = 0; i < n->count; i++) {
        if (is_link(&n->e[i])) {
            unsigned d = cx__hamt_depth(link_node(&n->e[i]));
            if (d > deepest)
                deepest = d;
        }
    }
    return deepest + 1;
}

/* ========================================================== validator */

/* Checks n, found at `level` on the path whose chunks give `prefix` (the
 * low 5*level bits every key below must have); *size receives the entries
 * below it. */
static const char *check_node(const cx__node *n, unsigned level, uint32_t prefix,
                              const cx__hamt_ops *ops, uint32_t *size)
{
    if (level >= CX__HAMT_MAX_DEPTH)
        return "deeper than CX__HAMT_MAX_DEPTH";
    if (ck_pr_load_uint(&n->ref.n) == 0)
        return "a reachable node has a count of 0";
    if (n->count > n->cap)
        return "more entries than room";
    uint32_t mask = level == 0 ? 0 : (uint32_t)((UINT64_C(1) << (5 * level)) - 1);
    if (n->kind == K_COLLISION) {
        if (level == 0)
            return "a collision node at the root";
        if (n->count < 2)
            return "a collision node with fewer than 2 entries";
        if ((n->bits & mask) != prefix)
            return "a collision node off its hash's path";
        for (uint32_t i = 0; i < n->count; i++) {
            if (is_link(&n->e[i]))
                return "a link in a collision node";
            if (ops->hash(n->e[i].key) != n->bits)
                return "a key of another hash in a collision node";
            for (uint32_t j = 0; j < i; j++)
                if (n->e[j].key == n->e[i].key)
                    return "a key twice in a collision node";
        }
        if (n->size != n->count)
            return "a collision node's size is not its count";
        uint32_t marked = 0;
        for (uint32_t i = 0; i < n->count; i++)
            marked += key_mark(ops, n->e[i].key);
        if (n->nmark != marked)
            return "a collision node's marked count is wrong";
        *size = n->size;
        return NULL;
    }
    if (n->kind != K_BITMAP)
        return "a node of unknown kind";
    if (level * 5 > MAX_SHIFT)
        return "a bitmap node below the last bitmap level";
    if (cx__popcount32(n->bits) != n->count)
        return "bitmap popcount differs from the entry count";
    if (n->count == 0)
        return "an empty node";
    if (level > 0 && n->count == 1 && !is_link(&n->e[0]))
        return "a non-root node with a single entry";
    uint32_t total = 0, marked = 0, bits = n->bits;
    for (uint32_t i = 0; i < n->count; i++) {
        uint32_t c = (uint32_t)__builtin_ctz(bits);
        bits &= bits - 1;
        uint32_t sub_prefix = prefix | (c << (5 * level));
        uint32_t sub_mask = level * 5 + 5 >= 32 ? UINT32_MAX
                                                 : (uint32_t)((UINT64_C(1) << (5 * level + 5)) - 1);
        const cx__entry *e = &n->e[i];
        if (is_link(e)) {
            if (e->value == NULL)
                return "a link to nothing";
            uint32_t s;
            const char *why = check_node(link_node(e), level + 1, sub_prefix, ops, &s);
            if (why != NULL)
                return why;
            total += s;
            marked += link_node(e)->nmark;
        } else {
            if ((ops->hash(e->key) & sub_mask) != sub_prefix)
                return "a key off its hash's path";
            total++;
            marked += key_mark(ops, e->key);
        }
    }
    if (marked != n->nmark || n->nmark > n->size)
        return "a node's marked count differs from the entries below it";
    if (total != n->size)
        return "a node's size differs from the entries below it";
    if (level > 0 && total < 2)
        return "a non-root node with fewer than 2 entries below it";
    *size = total;
    return NULL;
}

const char *cx__hamt_check(const cx__node *root, const cx__hamt_ops *ops)
{
    uint32_t size;
    return root == NULL ? NULL : check_node(root, 0, 0, ops, &size);
}
