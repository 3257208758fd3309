/* untracked.h - words that only ck's own code touches, hidden from
 * helgrind and DRD.
 *
 * ck_pr's atomics are inline assembly: helgrind and DRD see ck's plain
 * loads, stores and locked instructions on the words it synchronises on
 * (the ring's indexes and slots, the event counts' counters) and report
 * them as races. No cxvars code ever reads or writes those words; what
 * travels through them (a job) is annotated through annotate.h like every
 * handoff. Valgrind's stack traces for these accesses cannot be matched by
 * a suppression naming ck's functions: a ck load inlined at the target of
 * a jump is reported at the jump, in cxvars code. So the words themselves
 * are marked untracked when they are created, and tracked again before
 * they are freed (the memory may then hold anything).
 *
 * TSan does not instrument inline assembly at all; only the ring's copies
 * of slot contents (a plain memcpy inside ck_ring) reach it, and
 * tests/tsan.supp names those ck functions.
 */
#ifndef CX_POOL_UNTRACKED_H
#define CX_POOL_UNTRACKED_H

#include "annotate.h"

#ifdef CX__TSAN
#define CX__CK_UNTRACKED(addr, size) ((void)(addr), (void)(size))
#define CX__CK_TRACKED(addr, size) ((void)(addr), (void)(size))
#else
#include <valgrind/helgrind.h>
/* The same client requests are honoured by DRD. */
#define CX__CK_UNTRACKED(addr, size) VALGRIND_HG_DISABLE_CHECKING((addr), (size))
#define CX__CK_TRACKED(addr, size) VALGRIND_HG_ENABLE_CHECKING((addr), (size))
#endif

#endif
