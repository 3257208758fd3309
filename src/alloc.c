/* alloc.c - the installable allocator. */
#include "alloc.h"

#include <stdlib.h>

cx_allocator cx__allocator = {malloc, free};

int cx_set_allocator(const cx_allocator *a)
{
    if (a == NULL) {
        cx__allocator.malloc = malloc;
        cx__allocator.free = free;
        return 0;
    }
    if (a->malloc == NULL || a->free == NULL)
        return CX_EINVAL;
    cx__allocator = *a;
    return 0;
}
