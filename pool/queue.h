/* queue.h - the job queue: a bounded ring used MPMC, plus an exact count
 * of reserved places.
 *
 * The ring has a power-of-two size above cap (the pool's queue_size); the
 * reservation counts make exactly cap entries fit: a submitter reserves a
 * place (compare-and-swap of `taken` while taken - given < cap) before it
 * pushes, and the place is given back when its entry is popped. The
 * places reserved now are taken - given. Both counts only grow (64 bits:
 * they do not wrap), so `taken` also counts every submit that got a
 * place: minus the places given back unused (`unused`, a submit refused
 * after its reservation), it is the pool's `submitted` statistic at no
 * cost of its own.
 *
 * The ring. A pusher claims the next position with a fetch-and-add of
 * `tail` and stores its entry in slot (position mod size), tagged with
 * the parity of the position's lap (bit 0 of the pointer: entries are
 * aligned). A taker reads `head`, then that position's slot; if the slot
 * holds that lap's entry, it claims the position with a compare-and-swap
 * of `head` (head -> head + 1), which succeeds only if head did not move
 * since it was read, so the entry read belongs to that position and now
 * to this taker. A slot not yet filled for head's lap reads as empty
 * (even if later positions are filled: their pushers wake a worker after
 * their own push, see pool.c, so nothing is left behind).
 *   Why the tag's one bit suffices: while head is h, slot (h mod size)
 * holds position h's entry or position h - size's (that one was pushed
 * and claimed before head passed it; none later can be pushed, see
 * below). A taker whose head is older than that may read anything, but its
 * compare-and-swap then fails.
 *   Why a push needs no check that its slot is free: a position's place is
 * given back by the compare-and-swap that claims it (`given` = head +
 * unused), after its taker has read the slot. A pusher holds a place not
 * yet pushed, so when it claims position t, fewer than cap places are
 * held by the t positions before it that are not claimed by a taker:
 * head > t - cap >= t - size, i.e. position t - size was claimed, and its
 * slot read, before this pusher learned (through `given` or its copy,
 * read before its reservation) that there was room.
 *
 * Cache lines. Submitters write `taken` and `tail` (their line); takers
 * write `head` (theirs). A push reads nothing of the takers' (only the
 * slot it fills), a pop nothing of the pushers' (only the slot it
 * empties): each job moves the slot's line from pusher to taker, and the
 * takers' line between takers. A submitter checks the bound against
 * `given_seen`, a copy of `given` kept on the submitters' line: `given`
 * only grows, so the copy is never above it and the check errs only
 * towards "full"; only then does the submitter read `head` and `unused`
 * (and refresh the copy).
 *
 * Handoff: push() announces the entry (CX__HAPPENS_BEFORE) before its
 * release store into the slot; pop() takes it (CX__HAPPENS_AFTER) after
 * its load of the slot (followed by a load fence) and its winning
 * compare-and-swap. Everything the pusher wrote to the entry before push is
 * visible to the popper.
 */
#ifndef CX_POOL_QUEUE_H
#define CX_POOL_QUEUE_H

#include <ck_pr.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "annotate.h"

/* Largest queue_size accepted (the ring then has 2^25 slots, 256 MiB,
 * zeroed when the queue is made). */
#define CX__QUEUE_MAX (1u << 24)

struct cx__queue {
    void **slots;            /* owned; size slots, each an entry tagged
                                with its lap's parity, or 0 (never used) */
    uint64_t size;           /* ring slots, a power of two above cap */
    unsigned int cap;        /* places: exactly this many entries may wait */
    char pad0[64];
    uint64_t taken;          /* places ever taken (atomic; submitters) */
    uint64_t given_seen;     /* a value `given` had (atomic; submitters) */
    uint64_t tail;           /* positions ever claimed by pushes (atomic) */
    char pad1[64];
    uint64_t head;           /* positions ever claimed by pops (atomic;
                                takers): the places given back by pops */
    uint64_t unused;         /* places given back without a push (atomic;
                                a refused submit, rare) */
    char pad2[64];
};

/* Prepares an empty queue of cap places (1 <= cap <= CX__QUEUE_MAX).
 * 0, or CX_ENOMEM (nothing allocated). */
CX__HIDDEN int cx__queue_init(struct cx__queue *q, unsigned int cap);
/* Frees the slots. The queue must be empty and unused by any thread. */
CX__HIDDEN void cx__queue_destroy(struct cx__queue *q);

/* Takes one place; false if all cap places are taken. Full barrier (locked
 * compare-and-swap). */
static inline bool cx__queue_reserve(struct cx__queue *q);
/* Gives back a place reserved by a submit that then pushed nothing (it is
 * not counted by cx__queue_accepted). Full barrier (locked increment). */
CX__HIDDEN void cx__queue_unreserve_unused(struct cx__queue *q);
/* Places taken right now (a snapshot; never below the true count at any
 * instant of the call: `given` is read before `taken`). */
CX__HIDDEN unsigned int cx__queue_reserved(struct cx__queue *q);
/* Entries ever accepted: places taken minus those given back unused.
 * Exact once the submits in progress have returned; meanwhile a submit
 * about to be refused may show (`unused` is read first). */
CX__HIDDEN uint64_t cx__queue_accepted(struct cx__queue *q);

/* Appends entry (not NULL, at least 2-byte aligned), using a place the
 * caller reserved. Ownership of whatever entry stands for passes to the
 * queue. Ends with a plain store. */
static inline void cx__queue_push(struct cx__queue *q, void *entry);
/* Removes the oldest entry and returns it, its place given back
 * (ownership passes to the caller), and its position in *pos; NULL if the
 * queue is empty. Full barrier when it returns an entry (locked
 * compare-and-swap). */
static inline void *cx__queue_pop(struct cx__queue *q, uint64_t *pos);
/* For a position pos the caller popped: a bound end > pos such that every
 * position below end was pushed (its submit had reserved its place)
 * before this call's loads. It looks at the slots after pos's on the same
 * cache line only (already in the caller's cache, most often), so end is
 * often just pos + 1. */
CX__HIDDEN uint64_t cx__queue_pushed_end(struct cx__queue *q, uint64_t pos);

/* ------------------------------------------------------------------------
 * The per-job operations, inline: each is called once per job on the
 * pool's hot paths (a call layer there costs a sizeable share of a
 * trivial job's instructions). */

/* The tag of position pos's lap: 1 on even laps, 0 on odd ones, so that
 * the zeroed ring reads as odd lap -1's, empty for lap 0. */
static inline uintptr_t cx__queue_lap_tag(const struct cx__queue *q, uint64_t pos)
{
    return (pos & q->size) == 0;
}

/* `given` now: read head first (see reserve). */
static inline uint64_t cx__queue_given(struct cx__queue *q)
{
    uint64_t h = ck_pr_load_64(&q->head);
    ck_pr_fence_load();
    return h + ck_pr_load_64(&q->unused);
}

/* `taken` is read before `given` (or its copy). A refusal means the
 * places were all taken when `head` was read: given and taken only grow,
 * so taken - given at that instant was at least what we computed (the
 * sum read is no smaller than `given` then, as `unused` is read after).
 * A success means `taken` was still t at the compare-and-swap, and
 * `given` then no smaller than g (no larger than its value at the second
 * load, directly or through the copy): fewer than cap places were taken.
 * The copy is refreshed with a release store (its readers' load fence
 * pairs with it: queue.h's argument that a push's slot is free follows
 * these values); concurrent refreshes may leave an older value, which is
 * still one `given` had. */
static inline bool cx__queue_reserve(struct cx__queue *q)
{
    uint64_t t = ck_pr_load_64(&q->taken);
    for (;;) {
        ck_pr_fence_load();
        uint64_t g = ck_pr_load_64(&q->given_seen);
        if (t - g >= q->cap) {
            g = cx__queue_given(q);
            if (t - g >= q->cap)
                return false;
            ck_pr_fence_store();
            ck_pr_store_64(&q->given_seen, g);
        }
        if (ck_pr_cas_64_value(&q->taken, t, t + 1, &t))
            return true;
    }
}

static inline void cx__queue_push(struct cx__queue *q, void *entry)
{
    /* Our place guarantees the slot was read by its last taker (queue.h);
     * the fetch-and-add is a full barrier, ordered after the reservation
     * and before the store. */
    uint64_t pos = ck_pr_faa_64(&q->tail, 1);
    void **slot = &q->slots[pos & (q->size - 1)];
    /* The entry's contents happen-before whoever pops it. */
    CX__HAPPENS_BEFORE(entry);
    ck_pr_fence_store();
    ck_pr_store_ptr(slot, (void *)((uintptr_t)entry | cx__queue_lap_tag(q, pos)));
}

static inline void *cx__queue_pop(struct cx__queue *q, uint64_t *pos)
{
    uint64_t h = ck_pr_load_64(&q->head);
    for (;;) {
        ck_pr_fence_load();
        uintptr_t e = (uintptr_t)ck_pr_load_ptr(&q->slots[h & (q->size - 1)]);
        ck_pr_fence_load();
        if ((e & 1u) != cx__queue_lap_tag(q, h) || e == 0) {
            /* Not filled for head's lap: empty, unless head moved since
             * we read it (then the slot may be another position's). */
            uint64_t h2 = ck_pr_load_64(&q->head);
            if (h2 == h)
                return NULL;
            h = h2;
            continue;
        }
        /* The compare-and-swap succeeds only if head is still h, so e is
         * position h's entry (queue.h); it gives the place back. */
        if (ck_pr_cas_64_value(&q->head, h, h + 1, &h)) {
            void *entry = (void *)(e & ~(uintptr_t)1);
            CX__HAPPENS_AFTER(entry);
            *pos = h;
            return entry;
        }
    }
}

#endif
