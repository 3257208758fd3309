/* annotate.h - the single place where cross-thread handoffs are explained
 * to race detectors.
 *
 * ck_pr atomics are inline assembly: helgrind, DRD and TSan do not see them
 * as synchronisation, so on correct code they report every object handed
 * from one thread to another (a refcount dropping to zero, a queue slot, a
 * future's completion) as a race. Every such handoff in cxvars is written
 *
 *     CX__HAPPENS_BEFORE(addr);   by the publishing thread, before the
 *                                 releasing atomic
 *     CX__HAPPENS_AFTER(addr);    by the consuming thread, after the
 *                                 acquiring atomic
 *
 * on the same address. Natively they cost one predicted branch; under
 * valgrind they are client requests; when a -fsanitize=thread program
 * loads this (uninstrumented) library they become calls to the TSan
 * runtime's __tsan_release/__tsan_acquire; in a TSan build of the library
 * itself they are those calls directly.
 */
#ifndef CX_ANNOTATE_H
#define CX_ANNOTATE_H

#if defined(__SANITIZE_THREAD__)
#define CX__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CX__TSAN 1
#endif
#endif

/*
 * Words that are only ever accessed atomically and carry no data (ck's own
 * words: a ring's indexes and slots, an event count's counter; and the
 * pool's per-worker idle flags, a wake-up hint) are hidden from helgrind
 * and DRD instead:
 *
 *     CX__CK_UNTRACKED(addr, size);   when the words are created
 *     CX__CK_TRACKED(addr, size);     before their memory is freed
 *
 * ck's inline-assembly atomics on them would otherwise be reported as
 * races, and a suppression naming ck's functions cannot match them
 * reliably: a ck load inlined at the target of a jump is reported at the
 * jump, in cxvars code. Nothing is published through those words: what
 * travels alongside them is annotated with CX__HAPPENS_* like every handoff.
 * TSan does not instrument inline assembly, so a TSan build of the
 * library needs no suppression (tests/tsan.supp holds no rule).
 */
#ifdef CX__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
/* A TSan build of the library itself always announces (see below). */
enum { CX__DET_VALGRIND = 1, CX__DET_TSAN = 2 };
#define cx__detector ((unsigned char)CX__DET_TSAN)
#define cx__under_valgrind false
#define CX__HAPPENS_BEFORE(addr) __tsan_release((void *)(addr))
#define CX__HAPPENS_AFTER(addr) __tsan_acquire((void *)(addr))
#define CX__CK_UNTRACKED(addr, size) ((void)(addr), (void)(size))
#define CX__CK_TRACKED(addr, size) ((void)(addr), (void)(size))
/* Forget the handoff history of an address being freed (valgrind only). */
#define CX__FORGET(addr, size) ((void)(addr), (void)(size))
#else
#include <stdbool.h>
#include <valgrind/helgrind.h>
/* Which race detector watches the process, found once when the library is
 * loaded (annotate.c): CX__DET_VALGRIND when it runs under valgrind's
 * race checkers (helgrind, DRD), CX__DET_TSAN when the program was built with
 * -fsanitize=thread (the TSan runtime's __tsan_acquire/__tsan_release are
 * then linked in, and this uninstrumented library announces its handoffs
 * to it, so the user's own accesses on either side are ordered). The hot
 * paths (refcount drops, entering and leaving a context) test this byte
 * and skip the announcement natively, where it would still cost ~2 ns per
 * call. It never changes after load, so the branch is predicted. */
enum { CX__DET_VALGRIND = 1, CX__DET_TSAN = 2 };
extern __attribute__((visibility("hidden"))) unsigned char cx__detector;
/* True under valgrind's checkers (memcheck, helgrind, DRD; not callgrind,
 * which should count the native path): the per-thread block caches stay
 * off there, so that memcheck sees every block's own life. Read once at
 * load, like cx__detector. */
extern __attribute__((visibility("hidden"))) bool cx__under_valgrind;
/* Out of line: the announcements for whichever detectors are present. */
__attribute__((visibility("hidden"))) void cx__announce_before(const void *addr);
__attribute__((visibility("hidden"))) void cx__announce_after(const void *addr);
/* helgrind.h's client requests are honoured by DRD as well. */
#define CX__HAPPENS_BEFORE(addr)                               \
    do {                                                       \
        if (__builtin_expect(cx__detector != 0, 0))            \
            cx__announce_before(addr);                         \
    } while (0)
#define CX__HAPPENS_AFTER(addr)                                \
    do {                                                       \
        if (__builtin_expect(cx__detector != 0, 0))            \
            cx__announce_after(addr);                          \
    } while (0)
#define CX__CK_UNTRACKED(addr, size) VALGRIND_HG_DISABLE_CHECKING((addr), (size))
#define CX__CK_TRACKED(addr, size) VALGRIND_HG_ENABLE_CHECKING((addr), (size))
#define CX__FORGET(addr, size) ANNOTATE_HAPPENS_BEFORE_FORGET_ALL(addr)
#endif

#endif
