/* annotate.c - whether race-detector client requests are worth making. */
#include "annotate.h"

#ifndef CX__TSAN
bool cx__under_valgrind;

/* Runs when the library is loaded, before any cx_* call can be made. */
__attribute__((constructor)) static void detect_valgrind(void)
{
    cx__under_valgrind = RUNNING_ON_VALGRIND != 0;
}
#endif
