/* sleep.h - where library threads sleep: ck_ec32 event counts whose slow path
 * is a futex (src/sleep.c). Each idle worker sleeps on its own count,
 * submitters blocked on a full queue on the pool's "space" count. Nobody spins or
 * polls once asleep: a waiter returns when the count moves.
 *
 * Usage (no lost wake-up):
 *     uint32_t seen = cx__ec_value(ec);   read BEFORE looking at the state
 *     if (condition holds) ...;           e.g. try to dequeue
 *     cx__ec_wait(ec, seen);              returns once the count != seen
 * and the other side changes the state first, then calls cx__ec_bump(ec).
 */
#ifndef CX_POOL_SLEEP_H
#define CX_POOL_SLEEP_H

#include <ck_ec.h>

#include "alloc.h"

/* Multi-producer mode: any thread may bump any event count. */
extern CX__HIDDEN const struct ck_ec_mode cx__ec_mode;

static inline void cx__ec_init(struct ck_ec32 *ec) { ck_ec32_init(ec, 0); }

/* The count now (an acquire read). */
static inline uint32_t cx__ec_value(const struct ck_ec32 *ec) { return ck_ec32_value(ec); }

/* Publishes every earlier write (a store-atomic fence, then a locked
 * increment) and wakes every thread sleeping on ec; the futex system call
 * is made only when a sleeper has flagged the count. */
static inline void cx__ec_bump(struct ck_ec32 *ec) { ck_ec32_inc(ec, &cx__ec_mode); }

/* Sleeps until the count differs from seen. No deadline: the pool's sleeps
 * all end with a bump (new work, free space, shutdown). */
static inline void cx__ec_wait(struct ck_ec32 *ec, uint32_t seen)
{
    (void)ck_ec32_wait(ec, &cx__ec_mode, seen, NULL);
}

/* As cx__ec_wait, until the absolute CLOCK_MONOTONIC deadline (NULL:
 * none): false if it passed first. */
static inline bool cx__ec_wait_until(struct ck_ec32 *ec, uint32_t seen,
                                     const struct timespec *deadline)
{
    return ck_ec32_wait(ec, &cx__ec_mode, seen, deadline) == 0;
}

#endif
