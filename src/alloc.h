/* alloc.h - the one door through which the library allocates (core and pool).
 * cx_set_allocator() replaces it; tests use it to fail allocation N. */
#ifndef CX_ALLOC_H
#define CX_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

#include "annotate.h"
#include "cxvars.h"

#define CX__HIDDEN __attribute__((visibility("hidden")))

/* The installed pair. Read on every allocation without synchronisation:
 * the contract is that it is set before any other call. */
extern CX__HIDDEN cx_allocator cx__allocator;

/* New block or NULL. Never called with size 0. */
static inline void *cx__malloc(size_t size) { return cx__allocator.malloc(size); }
/* NULL is a no-op. */
static inline void cx__free(void *p)
{
    if (p != NULL)
        cx__allocator.free(p);
}

/* Per-thread caches of fixed-size blocks (tokens) save a malloc+free pair
 * per operation. They are used only while malloc/free is the allocator
 * (a user's allocator, and the out-of-memory walk's, sees every allocation
 * and free as they happen) and no checker watches: not under valgrind's
 * memcheck, helgrind or DRD (cx__under_valgrind), not in ASan or TSan builds, not when a TSan
 * program loaded the library (cx__detector): each must see every block's
 * own life. A cached block is freed with
 * cx__free when its thread's state ends. */
#if defined(CX_TEST_CACHES) && !defined(CX__TSAN)
/* make check-asan-cached: an ASan build with the caches on, so that the
 * sanitizer checks the caches' own code (slabs, banks, run contexts). */
#define CX__CACHE_BUILT 1
#elif defined(__SANITIZE_ADDRESS__) || defined(CX__TSAN)
#define CX__CACHE_BUILT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CX__CACHE_BUILT 0
#endif
#endif
#ifndef CX__CACHE_BUILT
#define CX__CACHE_BUILT 1
#endif
/* Frees the calling thread's cached blocks (tstate.c): cx_set_allocator
 * does so before it switches, so that this thread never hands a cached
 * malloc block to a program that counts its allocator's blocks. Caches of
 * other threads are freed with whichever allocator is installed when they
 * end (as every block: see cx_set_allocator in cxvars.h). */
CX__HIDDEN void cx__caches_drain_here(void);
/* True while the allocator is malloc/free (cx_set_allocator keeps it). */
extern CX__HIDDEN bool cx__allocator_is_default;
/* Recomputes cx__caching()'s flag (alloc.c). */
CX__HIDDEN void cx__cache_update(void);
/* A per-thread cache of fixed-size blocks, linked through their first
 * word. Pop gives NULL when empty or when caching is off; push returns
 * false (the caller frees) when full or off. */
typedef struct cx__freelist {
    void *head;
    unsigned n;
} cx__freelist;
static inline bool cx__caching(void);
/* Pops a block the caller knows is there (n != 0, caching on). */
static inline void *cx__fl_take(cx__freelist *fl)
{
    void *b = fl->head;
    fl->head = *(void **)b;
    fl->n--;
    return b;
}
static inline void *cx__fl_pop(cx__freelist *fl)
{
    if (fl->n == 0 || !cx__caching())
        return NULL;
    return cx__fl_take(fl);
}
static inline bool cx__fl_push(cx__freelist *fl, void *b, unsigned max)
{
    if (fl->n >= max || !cx__caching())
        return false;
    *(void **)b = fl->head;
    fl->head = b;
    fl->n++;
    return true;
}
/* Frees every cached block (with the installed allocator). */
static inline void cx__fl_drain(cx__freelist *fl)
{
    while (fl->n != 0)
        cx__free(cx__fl_take(fl));
}
#if CX__CACHE_BUILT
/* cx__allocator_is_default && no detector && not under valgrind's
 * checkers, kept in one flag (one load per use): recomputed by
 * cx__cache_update when one of them changes (at load, by
 * cx_set_allocator). False until the load-time detection ran. */
extern CX__HIDDEN bool cx__cache_on;
static inline bool cx__caching(void) { return cx__cache_on; }
#else
static inline bool cx__caching(void) { return false; }
#endif

#endif
