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
 * on the same address. Outside valgrind the client requests are a handful
 * of no-op instructions; in TSan builds they become __tsan_release/acquire.
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

#ifdef CX__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define CX__HAPPENS_BEFORE(addr) __tsan_release((void *)(addr))
#define CX__HAPPENS_AFTER(addr) __tsan_acquire((void *)(addr))
/* Forget the handoff history of a block being freed (helgrind only). */
#define CX__FORGET(addr, size) ((void)0)
#else
#include <valgrind/helgrind.h>
/* helgrind.h's ANNOTATE_HAPPENS_* are the same client requests DRD honours. */
#define CX__HAPPENS_BEFORE(addr) ANNOTATE_HAPPENS_BEFORE(addr)
#define CX__HAPPENS_AFTER(addr) ANNOTATE_HAPPENS_AFTER(addr)
#define CX__FORGET(addr, size) ANNOTATE_HAPPENS_BEFORE_FORGET_ALL(addr)
#endif

#endif
