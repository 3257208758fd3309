/* sleep.c - the operating-system half of ck_ec: time and futex wait/wake.
 *
 * ck_ec32_wait() first spins a few dozen iterations (the count often moves
 * within microseconds while the pool is busy), then flags the count and
 * sleeps in futex_wait, with a short exponential back-off during the first
 * second (a safety net of ck_ec's for its single-producer mode; we only use
 * the multi-producer mode, where the flag is never lost), and without any
 * time limit after that. An idle pool thread therefore wakes up a handful
 * of times in the first second of idleness and never again until a bump.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sleep.h"

static int ec_gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
    (void)ops;
    return clock_gettime(CLOCK_MONOTONIC, out);
}

/* Sleeps while *addr == expected, until the absolute CLOCK_MONOTONIC
 * deadline (NULL: forever). May return early (signal, spurious wake-up):
 * ck_ec re-checks the count and calls again. */
static void ec_wait32(const struct ck_ec_wait_state *ws, const uint32_t *addr,
                      uint32_t expected, const struct timespec *deadline)
{
    struct timespec rel, *timeout = NULL;
    (void)ws;
    if (deadline != NULL) {
        struct timespec now;
        if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
            return;
        rel.tv_sec = deadline->tv_sec - now.tv_sec;
        rel.tv_nsec = deadline->tv_nsec - now.tv_nsec;
        if (rel.tv_nsec < 0) {
            rel.tv_nsec += 1000000000L;
            rel.tv_sec--;
        }
        if (rel.tv_sec < 0)
            return; /* already past */
        /* ck_ec's "infinite" deadline is far in the future: a timeout of
         * more than a day is as good as none (and cannot overflow). */
        if (rel.tv_sec < 86400)
            timeout = &rel;
    }
    (void)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, timeout, NULL, 0);
}

/* Wakes every thread sleeping on addr (ck_ec's contract: all of them). */
static void ec_wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
    (void)ops;
    (void)syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static const struct ck_ec_ops ec_ops = {
    .gettime = ec_gettime,
    .wait32 = ec_wait32,
    .wake32 = ec_wake32,
    /* 0 selects ck's defaults: 100 spins, then 2 ms growing 8x per sleep
     * until one second has passed, then no time limit. */
};

const struct ck_ec_mode cx__ec_mode = {.ops = &ec_ops, .single_producer = false};
