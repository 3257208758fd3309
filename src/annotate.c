/* annotate.c - which race detector watches the process, and the
 * announcements made to it (annotate.h). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "annotate.h"

#ifndef CX__TSAN
unsigned char cx__detector;
bool cx__under_valgrind;

/* Weak: resolved only when the program links the TSan runtime
 * (-fsanitize=thread); NULL otherwise. */
extern void __tsan_acquire(void *addr) __attribute__((weak));
extern void __tsan_release(void *addr) __attribute__((weak));

/* Under valgrind: is the tool one that checks races (helgrind, DRD)?
 * Valgrind preloads its tool's library into the client, named for the
 * tool; memcheck and callgrind need no announcements (and callgrind's
 * instruction counts should be the native path's). If the preload cannot
 * be read, announce: too much is harmless. */
static bool race_tool(void)
{
    const char *pre = getenv("LD_PRELOAD");
    if (pre == NULL || strstr(pre, "vgpreload_") == NULL)
        return true;
    return strstr(pre, "vgpreload_helgrind") != NULL || strstr(pre, "vgpreload_drd") != NULL;
}

/* Runs when the library is loaded, before any cx_* call can be made. */
__attribute__((constructor)) static void detect(void)
{
    unsigned char d = 0;
    cx__under_valgrind = RUNNING_ON_VALGRIND != 0;
    if (cx__under_valgrind && race_tool())
        d |= CX__DET_VALGRIND;
    if (__tsan_acquire != NULL && __tsan_release != NULL)
        d |= CX__DET_TSAN;
    cx__detector = d;
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
