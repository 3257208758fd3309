/* alloc.c - the installable allocator. */
#include "alloc.h"

#include <stdlib.h>

cx_allocator cx__allocator = {malloc, free};
bool cx__allocator_is_default = true;
bool cx__cache_on;

void cx__cache_update(void)
{
#if CX__CACHE_BUILT
    cx__cache_on = cx__allocator_is_default && cx__detector == 0 && !cx__under_valgrind;
#endif
}

int cx_set_allocator(const cx_allocator *a)
{
    if (a != NULL && (a->malloc == NULL || a->free == NULL))
        return CX_EINVAL;
    cx__caches_drain_here();
    if (a == NULL) {
        cx__allocator.malloc = malloc;
        cx__allocator.free = free;
        cx__allocator_is_default = true;
        cx__cache_update();
        return 0;
    }
    cx__allocator = *a;
    cx__allocator_is_default = a->malloc == malloc && a->free == free;
    cx__cache_update();
    return 0;
}
