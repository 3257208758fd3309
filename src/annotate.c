/* annotate.c - which race detector watches the process, and the
 * announcements made to it (annotate.h). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "annotate.h"

#ifndef CX__TSAN
unsigned char cx__detector;
bool cx__under_valgrind;

/* Weak: resolved only when the program links the TSan runtime
 * (-fsanitize=thread); NULL otherwise. */
extern void __tsan_acquire(void *addr) __attribute__((weak));
extern void __tsan_release(void *addr) __attribute__((weak));

/* Under valgrind: is the tool one of `names` (read from the preload of
 * its library, named for the tool)?
 * Valgrind preloads its tool's library into the client, named for the
 * tool. Only helgrind and DRD need announcements, and callgrind's
 * instruction counts should be the native path's. If the preload cannot
 * be read, assume the tool is one of them: announcing too much, or
 * caching too little, is harmless. */
static bool tool_is(const char *pre, const char *const *names)
{
    if (pre == NULL || strstr(pre, "vgpreload_") == NULL)
        return true;
    for (; *names != NULL; names++)
        if (strstr(pre, *names) != NULL)
            return true;
    return false;
}

/* Runs when the library is loaded, before any cx_* call can be made. */
__attribute__((constructor)) static void detect(void)
{
    static const char *const race[] = {"vgpreload_helgrind", "vgpreload_drd", NULL};
    static const char *const checkers[] = {"vgpreload_memcheck", "vgpreload_helgrind",
                                           "vgpreload_drd", NULL};
    unsigned char d = 0;
    const char *pre = getenv("LD_PRELOAD");
    bool vg = RUNNING_ON_VALGRIND != 0;
    /* Checkers (memcheck, helgrind, DRD) see every block's own life: the
     * block caches stay off; callgrind counts the native path. */
    cx__under_valgrind = vg && tool_is(pre, checkers);
    if (vg && tool_is(pre, race))
        d |= CX__DET_VALGRIND;
    if (__tsan_acquire != NULL && __tsan_release != NULL)
        d |= CX__DET_TSAN;
    cx__detector = d;
    cx__cache_update();
}

void cx__announce_before(const void *addr)
{
    if (cx__detector & CX__DET_VALGRIND)
        ANNOTATE_HAPPENS_BEFORE(addr);
    if (cx__detector & CX__DET_TSAN)
        __tsan_release((void *)addr);
}

void cx__announce_after(const void *addr)
{
    if (cx__detector & CX__DET_VALGRIND)
        ANNOTATE_HAPPENS_AFTER(addr);
    if (cx__detector & CX__DET_TSAN)
        __tsan_acquire((void *)addr);
}
#endif
