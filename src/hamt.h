/* hamt.h - a persistent hash map of opaque entries (design notes in
 * hamt.c). Every context's map is one, with the entries and the
 * operations of var.c; the map itself knows nothing of variables, values,
 * threads or where its memory comes from.
 *
 * A map is a root node pointer; NULL is the empty map. Maps are immutable
 * once shared: cx__hamt_set/cx__hamt_del may update a node in place only when
 * the caller's reference is the only one to it (see "Ownership" in hamt.c).
 */
#ifndef CX_HAMT_H
#define CX_HAMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "check.h"
#include "refcount.h"

/* Bitmap levels consume 5 hash bits each: shifts 0,5,...,30 (the last uses
 * the top 2 bits), then one collision level: 8 levels at most (gh-93065). */
#define CX__HAMT_MAX_DEPTH 8

/* One entry: a key (never NULL) and its value, both opaque to the map. Inside
 * a bitmap node an entry whose key is NULL is a link: its value is the child
 * node (as in CPython's hamt.c). */
typedef struct cx__entry {
    void *key;
    void *value;
} cx__entry;

typedef struct cx__node cx__node;

/* A node. Laid out here only for the inline owner's replace below
 * (cx__hamt_replace_owned); everything else is hamt.c's business. */
enum { CX__HAMT_BITMAP = 1, CX__HAMT_COLLISION = 2 };
struct cx__node {
    cx__ref ref;    /* first: cx__hamt_retain relies on it */
    uint32_t bits;  /* bitmap node: present chunks; collision node: the hash */
    uint32_t count; /* entries in use */
    uint32_t cap;   /* entries allocated (count rounded up to even) */
    uint32_t size;  /* key entries in this subtree */
    uint32_t nmark; /* key entries in this subtree that ops->marked counts */
    uint32_t kind;  /* CX__HAMT_BITMAP or CX__HAMT_COLLISION */
    cx__entry e[];
};

/* Bits set in x. The x86-64 baseline has no popcnt instruction (and
 * __builtin_popcount then becomes a libgcc call), so unless the build
 * targets it (__POPCNT__), x86 checks the CPU once at load (hamt.c) and
 * issues the instruction when it is there: one predictable load and a
 * branch instead of a dozen instructions of software count. */
#if defined(__POPCNT__) || !(defined(__x86_64__) || defined(__i386__))
#define CX__POPCNT_CHECKED 0
#else
#define CX__POPCNT_CHECKED 1
extern CX__HIDDEN unsigned char cx__have_popcnt;
#endif
static inline uint32_t cx__popcount32(uint32_t x)
{
#if defined(__POPCNT__)
    return (uint32_t)__builtin_popcount(x);
#else
#if CX__POPCNT_CHECKED
    if (__builtin_expect(cx__have_popcnt != 0, 1)) {
        uint32_t r;
        __asm__("popcnt %1, %0" : "=r"(r) : "rm"(x) : "cc");
        return r;
    }
#endif
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (x * 0x01010101u) >> 24;
#endif
}

/* The index in a bitmap node's dense entry array of the chunk whose bit
 * is `bit` (a power of two): the present chunks below it. */
static inline uint32_t cx__hamt_slot(uint32_t bits, uint32_t bit)
{
    return cx__popcount32(bits & (bit - 1));
}

/* What the map asks of its user. An entry "reference" is whatever the user
 * counts for an entry (var.c: the variable's count and a value box's): the
 * map holds one for every entry in every node, and moves them in and out
 * of its nodes as documented below. */
typedef struct cx__hamt_ops {
    /* The 32-bit hash of a key stored in the map (needed when two keys meet
     * in one slot and are split one level down). */
    uint32_t (*hash)(const void *key);
    /* A new reference to the entry (the copy of a shared node holds it too). */
    void (*retain)(const cx__entry *e);
    /* Drops a reference to the entry (a node holding it was freed); may run
     * user callbacks, so the map calls it only from cx__hamt_release. */
    void (*release)(const cx__entry *e);
    /* Memory for a node of `bytes` bytes, NULL on failure; and its return. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p, size_t bytes);
    /* Optional (NULL: none): keys the map counts separately. Every node
     * keeps the number of marked keys below it, so cx__hamt_nmarked is
     * O(1) and cx__hamt_foreach_marked visits only subtrees holding some.
     * Must depend on the key alone and never change. */
    bool (*marked)(const void *key);
} cx__hamt_ops;

/* Bytes of a node with room for `cap` entries (hamt.c checks the header). */
#define CX__NODE_BYTES(cap) (32u + (size_t)(cap) * sizeof(cx__entry))
/* The largest bitmap node (32 entries); collision nodes may be larger. */
#define CX__NODE_MAX_BYTES CX__NODE_BYTES(32)

/* Nodes an update displaced from the caller's map (a shared node that was
 * copied): the caller releases them with cx__hamt_garbage_release once it
 * may run user callbacks again (var.c: after the context lock is
 * dropped). One per level at most. */
typedef struct cx__hamt_garbage {
    cx__node *node[CX__HAMT_MAX_DEPTH + 1];
    unsigned n;
} cx__hamt_garbage;

/* Typed results (as CPython's W_ and F_ codes): an update either fails for
 * memory, changing nothing, or tells what it did. */
typedef enum cx__hamt_set_result {
    CX__HAMT_SET_NOMEM = -1,
    CX__HAMT_ADDED = 0,    /* the key was absent */
    CX__HAMT_REPLACED = 1, /* the key was present: *old is its entry */
} cx__hamt_set_result;

typedef enum cx__hamt_del_result {
    CX__HAMT_DEL_NOMEM = -1,
    CX__HAMT_ABSENT = 0,  /* nothing changed */
    CX__HAMT_REMOVED = 1, /* *old is the removed entry */
} cx__hamt_del_result;

/* A new reference to the map (NULL: no-op). */
static inline void cx__hamt_retain(cx__node *root)
{
    if (root != NULL)
        cx__ref_inc((cx__ref *)(void *)root);
}
/* n new references to the map at once (root not NULL). */
static inline void cx__hamt_retain_n(cx__node *root, unsigned n)
{
    cx__ref_add((cx__ref *)(void *)root, n);
}
/* Drops n references the caller knows are not the last (root not NULL). */
static inline void cx__hamt_unref_nonlast(cx__node *root, unsigned n)
{
    CX__ASSERT(ck_pr_load_uint(&((cx__ref *)(void *)root)->n) > n);
    cx__ref_sub_nonlast((cx__ref *)(void *)root, n);
}
/* Tears down a node whose last reference was just dropped: releases every
 * entry and child (user callbacks may run) and frees it. */
CX__HIDDEN void cx__hamt_free(cx__node *n, const cx__hamt_ops *ops);
/* Drops a reference; the last one tears the map down (cx__hamt_free).
 * NULL is a no-op. Inline: most releases are not the last. */
static inline void cx__hamt_release(cx__node *root, const cx__hamt_ops *ops)
{
    if (root != NULL && cx__ref_dec((cx__ref *)(void *)root))
        cx__hamt_free(root, ops);
}
CX__HIDDEN void cx__hamt_garbage_release(cx__hamt_garbage *g, const cx__hamt_ops *ops);

/* The entry for key (hash: its hash), borrowed from the map, or NULL. No
 * allocation, no atomics. */
CX__HIDDEN const cx__entry *cx__hamt_find(const cx__node *root, const void *key,
                                         uint32_t hash);
CX__HIDDEN size_t cx__hamt_len(const cx__node *root);
/* Marked keys in the map (ops->marked), O(1). */
CX__HIDDEN size_t cx__hamt_nmarked(const cx__node *root);
/* Calls fn for every marked entry (borrowed), visiting only the subtrees
 * that hold some: cost in proportion to them (times the depth). Stops at
 * the first non-zero return and returns it. */
CX__HIDDEN int cx__hamt_foreach_marked(const cx__node *root, const cx__hamt_ops *ops,
                                       int (*fn)(const cx__entry *e, void *arg), void *arg);

/* *rootp is a reference the caller owns; it is replaced by the updated map.
 * set: *e (with the entry reference the caller hands over) is stored under
 * e->key. On CX__HAMT_REPLACED, *old receives the entry it replaced, with a
 * reference the caller now owns.
 * del: on CX__HAMT_REMOVED, *old receives the removed entry, with a
 * reference the caller now owns.
 * Either: nodes the caller must release later go to g (up to its
 * capacity). A NOMEM result leaves *rootp, e and everything reachable
 * unchanged. Neither calls ops->release: nothing user-visible happens
 * inside an update. */
CX__HIDDEN cx__hamt_set_result cx__hamt_set(cx__node **rootp, const cx__entry *e, uint32_t hash,
                                          const cx__hamt_ops *ops, cx__entry *old,
                                          cx__hamt_garbage *g);
CX__HIDDEN cx__hamt_del_result cx__hamt_del(cx__node **rootp, const void *key, uint32_t hash,
                                          const cx__hamt_ops *ops, cx__entry *old,
                                          cx__hamt_garbage *g);

/* The cheapest update of a context's owner, inline: when key already has
 * an entry and every node on its path is held by the caller's reference
 * alone (hamt.c, "Ownership"), replaces that entry in place, with the
 * contract of cx__hamt_set returning CX__HAMT_REPLACED (*e's reference is
 * handed over, *old receives the replaced entry with its reference) and
 * returns true. Otherwise changes nothing and returns false: call
 * cx__hamt_set. Nothing is allocated, nothing changes size, and no
 * locked instruction runs. `announce`: tell race detectors about each
 * node found unique (a constant: false only on paths that never run
 * under one, which then make no call at all). */
static inline __attribute__((always_inline)) bool
cx__hamt_replace_owned_(cx__node *n, const cx__entry *e, uint32_t hash, cx__entry *old,
                        bool announce)
{
    /* Bitmap levels have shifts 0..30; below the last one only collision
     * nodes hang, which stop the walk. */
    for (unsigned shift = 0; n != NULL; shift += 5) {
        if (n->kind != CX__HAMT_BITMAP ||
            !(announce ? cx__ref_unique(&n->ref) : cx__ref_unique_unannounced(&n->ref)))
            return false;
        uint32_t bit = 1u << ((hash >> shift) & 31u);
        if (!(n->bits & bit))
            return false;
        cx__entry *slot = &n->e[cx__hamt_slot(n->bits, bit)];
        if (slot->key == e->key) {
            *old = *slot; /* the node's reference moves to the caller */
            *slot = *e;
            return true;
        }
        if (slot->key != NULL)
            return false; /* another key: the set would split */
        n = (cx__node *)slot->value; /* a link */
    }
    return false;
}
static inline bool cx__hamt_replace_owned(cx__node *n, const cx__entry *e, uint32_t hash,
                                          cx__entry *old)
{
    return cx__hamt_replace_owned_(n, e, hash, old, true);
}
/* The same for callers that run only while no race detector is attached. */
static inline bool cx__hamt_replace_owned_unannounced(cx__node *n, const cx__entry *e,
                                                      uint32_t hash, cx__entry *old)
{
    return cx__hamt_replace_owned_(n, e, hash, old, false);
}

/* Calls fn for every entry (borrowed); stops at the first non-zero return
 * and returns it. Allocation-free: an explicit stack of CX__HAMT_MAX_DEPTH
 * frames covers the deepest tree. */
CX__HIDDEN int cx__hamt_foreach(const cx__node *root,
                               int (*fn)(const cx__entry *e, void *arg), void *arg);
/* Same keys, and same(ea, eb) for each key's two entries. */
CX__HIDDEN bool cx__hamt_equal(const cx__node *a, const cx__node *b, const cx__hamt_ops *ops,
                              bool (*same)(const cx__entry *ea, const cx__entry *eb));

/* Depth of the deepest node (0 for empty). */
CX__HIDDEN unsigned cx__hamt_depth(const cx__node *root);

/* The structural validator: NULL if every invariant of hamt.c holds in the
 * map (bitmaps against counts, sizes, depth <= 8, no single-entry inner
 * node, collision nodes holding keys of one hash, every key on the path
 * its hash selects), else a static description of the first violation.
 * Walks the whole map; for tests, the fuzzer and CX_CHECKED builds. */
CX__HIDDEN const char *cx__hamt_check(const cx__node *root, const cx__hamt_ops *ops);

#endif
