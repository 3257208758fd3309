/* bench.h - helpers shared by the benchmark programs (timing, sinks,
 * medians, output). Header-only: each program is one translation unit.
 *
 * Output format of every program: one line per figure,
 *     name<TAB>value<TAB>unit
 * on stdout, nothing else there; diagnostics go to stderr.
 */
#ifndef CX_BENCH_H
#define CX_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keeps a value alive: the compiler must materialise x in a register and
 * assume the asm reads and writes any memory. */
#define BENCH_SINK(x) __asm__ volatile("" : : "r"(x) : "memory")
/* A compiler barrier: no load or store moves across it, none is elided. */
#define BENCH_BARRIER() __asm__ volatile("" : : : "memory")

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n samples (the array is sorted in place). */
static inline double bench_median(double *s, int n)
{
    qsort(s, (size_t)n, sizeof(*s), bench_cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* A positive integer from the environment, or def. */
static inline long bench_env_long(const char *name, long def)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return def;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v <= 0) {
        fprintf(stderr, "bench: ignoring %s=%s (not a positive integer)\n", name, s);
        return def;
    }
    return v;
}

static inline void bench_print(const char *name, double value, const char *unit)
{
    printf("%s\t%.*f\t%s\n", name, value < 10 ? 3 : value < 1000 ? 2 : 1, value, unit);
    fflush(stdout);
}

#define BENCH_CHECK(cond)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "bench: %s:%d: check failed: %s\n", __FILE__,     \
                    __LINE__, #cond);                                         \
            exit(2);                                                          \
        }                                                                     \
    } while (0)

#endif
