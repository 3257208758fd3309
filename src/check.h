/* check.h - invariants as code.
 *
 * CX__ASSERT(cond) states an invariant the library relies on. In checked
 * builds (CX_CHECKED defined: the sanitizer builds of make check, and the
 * fuzzer) a violation prints where and aborts; otherwise the condition is
 * compiled (so it stays valid code) but never evaluated. Never used for
 * anything a caller can get wrong: bad input gets a CX_E* code. */
#ifndef CX_CHECK_H
#define CX_CHECK_H

#ifdef CX_CHECKED
#include <stdio.h>
#include <stdlib.h>
#define CX__ASSERT(cond)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "cxvars: invariant broken at %s:%d: %s\n",        \
                    __FILE__, __LINE__, #cond);                               \
            abort();                                                          \
        }                                                                     \
    } while (0)
#else
#define CX__ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#endif
