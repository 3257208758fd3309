/* annotate.c - which race detector watches the process, and the
 * announcements made to it (annotate.h). */
#include <stddef.h>

#include "annotate.h"

#ifndef CX__TSAN
unsigned char cx__detector;

/* Weak: resolved only when the program links the TSan runtime
 * (-fsanitize=thread); NULL otherwise. */
extern void __tsan_acquire(void *addr) __attribute__((weak));
extern void __tsan_release(void *addr) __attribute__((weak));

/* Runs when the library is loaded, before any cx_* call can be made. */
__attribute__((constructor)) static void detect(void)
{
    unsigned char d = 0;
    if (RUNNING_ON_VALGRIND != 0)
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
