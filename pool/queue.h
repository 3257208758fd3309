/* queue.h - the job queue: a bounded ck_ring used MPMC, plus an exact
 * count of reserved places.
 *
 * ck_ring has a power-of-two size and holds at most size - 1 entries; the
 * ring is sized so that cap (the pool's queue_size) entries fit, and the
 * `reserved` counter makes exactly cap fit: a submitter reserves a place
 * (compare-and-swap below cap) before it pushes, and a place is given back
 * only after its entry has been popped. So the ring never holds more than
 * cap entries and a push with a reservation cannot fail.
 *
 * Handoff: push() announces the entry (CX__HAPPENS_BEFORE) before the
 * ring's release store of its producer index; pop() takes it
 * (CX__HAPPENS_AFTER) after the ring's acquire load and winning
 * compare-and-swap. Everything the pusher wrote to the entry before push is
 * visible to the popper.
 */
#ifndef CX_POOL_QUEUE_H
#define CX_POOL_QUEUE_H

#include <ck_ring.h>
#include <stdbool.h>

#include "alloc.h"

/* Largest queue_size accepted (the ring then has 2^25 slots, 256 MiB of
 * address space, touched only as it is used). */
#define CX__QUEUE_MAX (1u << 24)

struct cx__queue {
    ck_ring_t ring;          /* ck's indexes, each on its own cache line */
    ck_ring_buffer_t *slots; /* owned; ring size slots */
    unsigned int cap;        /* places: exactly this many entries may wait */
    unsigned int reserved;   /* places taken (atomic): reserved, queued or
                                being pushed; given back after the pop */
};

/* Prepares an empty queue of cap places (1 <= cap <= CX__QUEUE_MAX).
 * 0, or CX_ENOMEM (nothing allocated). */
CX__HIDDEN int cx__queue_init(struct cx__queue *q, unsigned int cap);
/* Frees the slots. The queue must be empty and unused by any thread. */
CX__HIDDEN void cx__queue_destroy(struct cx__queue *q);

/* Takes one place; false if all cap places are taken. Full barrier (locked
 * compare-and-swap). */
CX__HIDDEN bool cx__queue_reserve(struct cx__queue *q);
/* Gives one place back (after a pop, or a reservation not used); true if
 * none is taken any more. Full barrier (locked decrement). */
CX__HIDDEN bool cx__queue_unreserve(struct cx__queue *q);
/* Places taken right now (a snapshot). */
CX__HIDDEN unsigned int cx__queue_reserved(struct cx__queue *q);

/* Appends entry (not NULL), using a place the caller reserved. Ownership
 * of whatever entry stands for passes to the queue. */
CX__HIDDEN void cx__queue_push(struct cx__queue *q, void *entry);
/* Removes the oldest entry and returns it (ownership passes to the
 * caller, who then gives its place back); NULL if the queue is empty. */
CX__HIDDEN void *cx__queue_pop(struct cx__queue *q);

#endif
