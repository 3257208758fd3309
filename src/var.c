/* var.c - ContextVar objects, the map of variables (the entry operations
 * and node memory hamt.c is given, value boxes) and the read path (get,
 * get_or).
 *
 * The read path is the hottest code of the library. A hit in the per-thread
 * cache is answered inline in cxvars.h (a thread-local load and two
 * compares, no call); everything else comes here: a miss walks the map
 * once and fills the entry. The cache holds borrowed values of the current
 * map, and every operation that can change which map is current or what it
 * holds (set, reset, entering, leaving) bumps the thread's gen, which
 * invalidates every entry at once. Only this thread writes its cache, so
 * none of this needs atomics (unlike CPython's per-variable cache, which is
 * shared by all threads).
 */
#include <string.h>

#include "context.h"

/* ================================================================ the map
 * What hamt.c needs to know of variable entries (var.h, "values"). */

static uint32_t var_hash(const void *key) { return ((const cx_var *)key)->hash; }

static void entry_retain(const cx__entry *e)
{
    cx_var *var = e->key;
    cx__var_retain(var);
    cx__stored_retain(var, e->value);
}

static void entry_release(const cx__entry *e)
{
    cx_var *var = e->key;
    cx__stored_release(var, e->value);
    cx_var_release(var);
}

/* Node memory: the allocator's, or, when it fails during a reset, a block
 * of this thread's reset reserve (tstate.h). */
static void *node_alloc(size_t bytes)
{
    void *p = cx__malloc(bytes);
    return p != NULL ? p : cx__reserve_take(bytes);
}

static void node_free(void *p, size_t bytes)
{
    (void)bytes;
    cx__free(p);
}

/* CX_VAR_LOCAL variables are counted per node: a capture that must leave
 * them out knows in O(1) whether there is anything to leave out. */
static bool var_is_local(const void *key)
{
    return (((const cx_var *)key)->flags & CX_VAR_LOCAL) != 0;
}

const cx__hamt_ops cx__var_map_ops = {
    .hash = var_hash,
    .marked = var_is_local,
    .retain = entry_retain,
    .release = entry_release,
    .alloc = node_alloc,
    .free = node_free,
};

bool cx__box_new(cx_var *var, void *value, void **stored)
{
    cx__box *b = cx__malloc(sizeof(*b));
    if (b == NULL)
        return false;
    cx__ref_init(&b->ref);
    b->destroy = var->destroy;
    b->value = value;
    *stored = b;
    return true;
}

void cx__stored_discard(const cx_var *var, void *stored)
{
    if (var->destroy != NULL)
        cx__free(stored);
}

void cx__box_release(cx__box *b)
{
    if (cx__ref_dec(&b->ref)) {
        b->destroy(b->value);
        cx__free(b);
    }
}

typedef struct foreach_arg {
    int (*fn)(cx_var *var, void *value, void *arg);
    void *arg;
} foreach_arg;

static int foreach_visit(const cx__entry *e, void *arg)
{
    const foreach_arg *a = arg;
    cx_var *var = e->key;
    return a->fn(var, cx__stored_value(var, e->value), a->arg);
}

int cx__map_foreach(const cx__node *root, int (*fn)(cx_var *var, void *value, void *arg),
                    void *arg)
{
    foreach_arg a = {fn, arg};
    return cx__hamt_foreach(root, foreach_visit, &a);
}

static bool same_value(const cx__entry *a, const cx__entry *b)
{
    const cx_var *var = a->key;
    return cx__stored_value(var, a->value) == cx__stored_value(var, b->value);
}

bool cx__map_equal(const cx__node *a, const cx__node *b)
{
    return cx__hamt_equal(a, b, &cx__var_map_ops, same_value);
}

/* ================================================================ variables */

/* The variable's address, mixed so that neighbouring allocations spread
 * over the root node and the cache (murmur3's 64-bit finaliser). */
static uint32_t address_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

void cx__var_set_hash(cx_var *v, uint32_t hash)
{
    v->hash = hash;
    cx__var_derive(v); /* bank follows the hash */
}

void cx__var_derive(cx_var *v)
{
    v->plain = v->destroy == NULL && (v->flags & CX_VAR_WATCHED) == 0;
    v->bank = (uint8_t)cx__varbank_index(v->hash);
    v->cache_off = (uint16_t)(cx__slot(v) * sizeof(struct cx__cache_entry));
}

int cx_var_new(cx_var **out, const char *name, const cx_var_opts *opts)
{
    if (out == NULL || name == NULL)
        return CX_EINVAL;
    if (opts != NULL && (opts->flags & ~(CX_VAR_LOCAL | CX_VAR_WATCHED)) != 0)
        return CX_EINVAL;
    size_t len = strlen(name);
    cx_var *v = cx__malloc(sizeof(*v) + len + 1);
    if (v == NULL)
        return CX_ENOMEM;
    cx__ref_init(&v->ref);
    v->hash = address_hash(v);
    v->has_default = opts != NULL && opts->has_default;
    v->default_value = v->has_default ? opts->default_value : NULL;
    v->destroy = opts != NULL ? opts->destroy : NULL;
    v->flags = opts != NULL ? opts->flags : 0;
    cx__var_derive(v);
    memcpy(v->name, name, len + 1);
    *out = v;
    return 0;
}

void cx__var_free(cx_var *var) { cx__free(var); }

void cx_var_release(cx_var *var)
{
    if (var != NULL)
        cx__var_release(var);
}

const char *cx_var_name(const cx_var *var) { return var == NULL ? NULL : var->name; }

/* The answer for var in this thread's current map, through the cache:
 * true and *value, or false for "no binding". Allocates nothing: a thread
 * without state or context simply has no bindings. */
static bool lookup(const cx_var *var, void **value)
{
    cx__tstate *st = cx__tstate_cur();
    if (st == NULL || st->cur == NULL)
        return false;
    cx__cache_entry *e = &st->fast.cache[cx__slot(var)];
    if (e->gen == st->fast.gen && (e->key & ~(uintptr_t)1) == (uintptr_t)var) {
        *value = e->value;
        return !(e->key & 1);
    }
    void *v = NULL;
    bool found = cx__map_get(st->cur->root, var, &v);
    cx__cache_fill(e, var, st->fast.gen, found, v);
    *value = v;
    return found;
}

/* The header's inline functions answer from the cache themselves: get a
 * cached binding, get_or a cached binding or a cached "no binding". They
 * call these for everything else (or for every call under CX_NO_INLINE):
 * lookup() then covers every cache case, so only get's cached "no
 * binding" (its default is here) is looked at twice. */
int(cx_var_get)(const cx_var *var, void **out)
{
    if (var == NULL || out == NULL)
        return CX_EINVAL;
    void *v;
    if (lookup(var, &v)) {
        *out = v;
        return 0;
    }
    if (var->has_default) {
        *out = var->default_value;
        return 0;
    }
    return CX_ELOOKUP;
}

void *(cx_var_get_or)(const cx_var *var, void *fallback)
{
    void *v;
    if (var != NULL && lookup(var, &v))
        return v;
    return fallback;
}
