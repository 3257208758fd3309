/* queue.h - the job queue: a bounded ck_ring used MPMC, plus an exact
 * count of reserved places.
 *
 * ck_ring has a power-of-two size and holds at most size - 1 entries; the
 * ring is sized so that cap (the pool's queue_size) entries fit, and the
 * reservation counts make exactly cap fit: a submitter reserves a place
 * (compare-and-swap of `taken` while taken - given < cap) before it
 * pushes, and a place is given back (`given` incremented) only after its
 * entry has been popped. So the ring never holds more than cap entries
 * and a push with a reservation cannot fail.
 *
 * The places reserved now are taken - given. Both counts only grow
 * (64 bits: they do not wrap), so `taken` also counts every submit that
 * got a place: minus the places given back unused (`unused`, a submit
 * refused after its reservation), it is the pool's `submitted` statistic
 * at no cost of its own.
 *
 * Submitters write `taken`, takers `given`, each on its own cache line,
 * so that neither side's locked operation waits for the other's line on
 * every job. A submitter checks the bound against `given_seen`, a copy of
 * `given` kept on the submitters' line: `given` only grows, so the copy
 * is never above it and the check errs only towards "full"; only then
 * does the submitter read `given` itself (and refresh the copy). With
 * room in the queue, a submit touches the takers' line not at all.
 *
 * Handoff: push() announces the entry (CX__HAPPENS_BEFORE) before the
 * ring's release store of its producer index; pop() takes it
 * (CX__HAPPENS_AFTER) after the ring's acquire load and winning
 * compare-and-swap. Everything the pusher wrote to the entry before push is
 * visible to the popper.
 */
#ifndef CX_POOL_QUEUE_H
#define CX_POOL_QUEUE_H

#include <ck_pr.h>
#include <ck_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"

/* Largest queue_size accepted (the ring then has 2^25 slots, 256 MiB of
 * address space, touched only as it is used). */
#define CX__QUEUE_MAX (1u << 24)

struct cx__queue {
    ck_ring_t ring;          /* ck's indexes, each on its own cache line */
    ck_ring_buffer_t *slots; /* owned; ring size slots (read-only after
                                init, beside the ring's size and mask) */
    unsigned int cap;        /* places: exactly this many entries may wait */
    char pad0[64];
    uint64_t taken;          /* places ever taken (atomic; submitters) */
    uint64_t given_seen;     /* a value `given` had (atomic; submitters) */
    char pad1[64];
    uint64_t given;          /* places ever given back (atomic; takers):
                                after the pop, or unused */
    uint64_t unused;         /* of those, given back without a push
                                (atomic; a refused submit, rare) */
    char pad2[64];
};

/* Prepares an empty queue of cap places (1 <= cap <= CX__QUEUE_MAX).
 * 0, or CX_ENOMEM (nothing allocated). */
CX__HIDDEN int cx__queue_init(struct cx__queue *q, unsigned int cap);
/* Frees the slots. The queue must be empty and unused by any thread. */
CX__HIDDEN void cx__queue_destroy(struct cx__queue *q);

/* Takes one place; false if all cap places are taken. Full barrier (locked
 * compare-and-swap). *ticket receives the place's ordinal: `taken` before
 * the compare-and-swap (so any load of `taken` that returns more than
 * *ticket was made after this reservation). */
CX__HIDDEN bool cx__queue_reserve(struct cx__queue *q, uint64_t *ticket);
/* Places ever taken (an atomic load: see cx__queue_reserve's ticket). */
static inline uint64_t cx__queue_taken(struct cx__queue *q) { return ck_pr_load_64(&q->taken); }
/* Gives one place back after the pop of its entry. Full barrier (locked
 * increment). */
CX__HIDDEN void cx__queue_unreserve(struct cx__queue *q);
/* Gives back a place reserved by a submit that then pushed nothing (it is
 * not counted by cx__queue_accepted). Full barrier (locked increments). */
CX__HIDDEN void cx__queue_unreserve_unused(struct cx__queue *q);
/* Places taken right now (a snapshot; never below the true count at any
 * instant of the call: `given` is read before `taken`). */
CX__HIDDEN unsigned int cx__queue_reserved(struct cx__queue *q);
/* Entries ever accepted: places taken minus those given back unused.
 * Exact once the submits in progress have returned; meanwhile a submit
 * about to be refused may show (`unused` is read first). */
CX__HIDDEN uint64_t cx__queue_accepted(struct cx__queue *q);

/* Appends entry (not NULL), using a place the caller reserved. Ownership
 * of whatever entry stands for passes to the queue. */
CX__HIDDEN void cx__queue_push(struct cx__queue *q, void *entry);
/* Removes the oldest entry and returns it (ownership passes to the
 * caller, who then gives its place back); NULL if the queue is empty. */
CX__HIDDEN void *cx__queue_pop(struct cx__queue *q);

#endif
