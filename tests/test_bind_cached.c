/* test_bind_cached.c - test_bind.c's tests with the library's block caches
 * on (the default allocator, as programs run it natively): callbacks come
 * from the binding thread's slabs and default runs happen in the running
 * thread's own private context (src/slab.h, src/callback.c). Under
 * valgrind's checkers and the sanitizers the caches are off, and this is
 * test_bind again without the allocation counts. */
#define TEST_BIND_CACHED 1
/* The out-of-memory tests and the counting allocator stay unused here. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_bind.c"
