/* alloc.h - the one door through which the library allocates (core and pool).
 * cx_set_allocator() replaces it; tests use it to fail allocation N. */
#ifndef CX_ALLOC_H
#define CX_ALLOC_H

#include <stddef.h>

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

#endif
