/* var.c - ContextVar objects and the read path (get, get_or).
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
    cx__var_set_hash(v, address_hash(v));
    v->has_default = opts != NULL && opts->has_default;
    v->default_value = v->has_default ? opts->default_value : NULL;
    v->destroy = opts != NULL ? opts->destroy : NULL;
    v->flags = opts != NULL ? opts->flags : 0;
    memcpy(v->name, name, len + 1);
    *out = v;
    return 0;
}

void cx_var_release(cx_var *var)
{
    if (var != NULL && cx__ref_dec(&var->ref))
        cx__free(var);
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
    const cx__binding *b = cx__map_find(st->cur->root, var);
    cx__cache_fill(e, var, st->fast.gen, b != NULL, b != NULL ? b->value : NULL);
    if (b != NULL)
        *value = b->value;
    return b != NULL;
}

/* The header's inline cx_var_get/cx_var_get_or answer a cache hit with a
 * binding themselves and call these for everything else (or for every
 * call under CX_NO_INLINE); lookup() covers every cache case, so nothing
 * is probed twice. */
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
