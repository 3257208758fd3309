/* cx_test.h - helpers shared by the test programs. */
#ifndef CX_TEST_H
#define CX_TEST_H

#include <stdlib.h>

/* Defined when the test program is built with ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#define CX_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CX_TEST_TSAN 1
#endif
#endif

/* Stress sizes scale with CX_TEST_SCALE (percent, default 100): make check
 * runs valgrind with a few percent, a soak with thousands. Never below 1. */
static inline unsigned cx_test_scaled(unsigned n)
{
    const char *s = getenv("CX_TEST_SCALE");
    unsigned long pct = s != NULL ? strtoul(s, NULL, 10) : 100;
    unsigned long r = (unsigned long)n * pct / 100;
    return r == 0 ? 1 : (unsigned)r;
}

#endif
