/* queue.c - the job queue (see queue.h). */
#include <ck_pr.h>
#include <string.h>

#include "annotate.h"
#include "queue.h"

int cx__queue_init(struct cx__queue *q, unsigned int cap)
{
    /* Smallest power of two above cap (queue.h: a push never waits for its
     * slot because cap < size). */
    uint64_t size = 2;
    while (size <= cap)
        size <<= 1;
    q->slots = cx__malloc((size_t)size * sizeof(*q->slots));
    if (q->slots == NULL)
        return CX_ENOMEM;
    /* 0: untagged, never a filled slot of lap 0 (whose tag is 1). */
    memset(q->slots, 0, (size_t)size * sizeof(*q->slots));
    CX__CK_UNTRACKED(q->slots, (size_t)size * sizeof(*q->slots));
    CX__CK_UNTRACKED(&q->taken, 3 * sizeof(q->taken));
    CX__CK_UNTRACKED(&q->head, 2 * sizeof(q->head));
    q->size = size;
    q->cap = cap;
    q->taken = q->given_seen = q->tail = q->head = q->unused = 0;
    return 0;
}

void cx__queue_destroy(struct cx__queue *q)
{
    CX__CK_TRACKED(q->slots, (size_t)q->size * sizeof(*q->slots));
    CX__CK_TRACKED(&q->taken, 3 * sizeof(q->taken));
    CX__CK_TRACKED(&q->head, 2 * sizeof(q->head));
    cx__free(q->slots);
}

/* The tag of position pos's lap: 1 on even laps, 0 on odd ones, so that
 * the zeroed ring reads as odd lap -1's, empty for lap 0. */
static inline uintptr_t lap_tag(const struct cx__queue *q, uint64_t pos)
{
    return (pos & q->size) == 0;
}

/* `given` now: read head first (see reserve). */
static inline uint64_t given(struct cx__queue *q)
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
bool cx__queue_reserve(struct cx__queue *q)
{
    uint64_t t = ck_pr_load_64(&q->taken);
    for (;;) {
        ck_pr_fence_load();
        uint64_t g = ck_pr_load_64(&q->given_seen);
        if (t - g >= q->cap) {
            g = given(q);
            if (t - g >= q->cap)
                return false;
            ck_pr_fence_store();
            ck_pr_store_64(&q->given_seen, g);
        }
        if (ck_pr_cas_64_value(&q->taken, t, t + 1, &t))
            return true;
    }
}

void cx__queue_unreserve_unused(struct cx__queue *q)
{
    /* The place was counted in `taken` by the reservation, before this:
     * cx__queue_accepted reads `unused` before `taken`, so it may count
     * the place for an instant, never subtract it without having added. */
    ck_pr_inc_64(&q->unused);
}

unsigned int cx__queue_reserved(struct cx__queue *q)
{
    uint64_t g = given(q);
    ck_pr_fence_load();
    return (unsigned int)(ck_pr_load_64(&q->taken) - g);
}

uint64_t cx__queue_accepted(struct cx__queue *q)
{
    uint64_t u = ck_pr_load_64(&q->unused);
    ck_pr_fence_load();
    return ck_pr_load_64(&q->taken) - u;
}

void cx__queue_push(struct cx__queue *q, void *entry)
{
    /* Our place guarantees the slot was read by its last taker (queue.h);
     * the fetch-and-add is a full barrier, ordered after the reservation
     * and before the store. */
    uint64_t pos = ck_pr_faa_64(&q->tail, 1);
    void **slot = &q->slots[pos & (q->size - 1)];
    /* The entry's contents happen-before whoever pops it. */
    CX__HAPPENS_BEFORE(entry);
    ck_pr_fence_store();
    ck_pr_store_ptr(slot, (void *)((uintptr_t)entry | lap_tag(q, pos)));
}

void *cx__queue_pop(struct cx__queue *q, uint64_t *pos)
{
    uint64_t h = ck_pr_load_64(&q->head);
    for (;;) {
        ck_pr_fence_load();
        uintptr_t e = (uintptr_t)ck_pr_load_ptr(&q->slots[h & (q->size - 1)]);
        ck_pr_fence_load();
        if ((e & 1u) != lap_tag(q, h) || e == 0) {
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

/* A slot filled with its position's lap tag was pushed for that position,
 * or for a later lap (whose push came after this position's pop): either
 * way that position was pushed before the load (queue.h: while a position
 * is not pushed, its slot holds the previous lap's entry). */
uint64_t cx__queue_pushed_end(struct cx__queue *q, uint64_t pos)
{
    uint64_t end = pos + 1;
    for (;;) {
        void **slot = &q->slots[end & (q->size - 1)];
        if (((uintptr_t)slot & 63) == 0 || end - pos >= q->size)
            return end; /* the next line: not ours to fetch */
        uintptr_t e = (uintptr_t)ck_pr_load_ptr(slot);
        if (e == 0 || (e & 1u) != lap_tag(q, end))
            return end;
        end++;
    }
}
