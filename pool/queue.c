/* queue.c - the job queue (see queue.h). */
#include <ck_pr.h>

#include "annotate.h"
#include "queue.h"

int cx__queue_init(struct cx__queue *q, unsigned int cap)
{
    /* Smallest power of two above cap: ck_ring keeps one slot empty. */
    unsigned int size = 2;
    while (size <= cap)
        size <<= 1;
    q->slots = cx__malloc((size_t)size * sizeof(*q->slots));
    if (q->slots == NULL)
        return CX_ENOMEM;
    ck_ring_init(&q->ring, size);
    CX__CK_UNTRACKED(&q->ring, sizeof(q->ring));
    CX__CK_UNTRACKED(q->slots, (size_t)size * sizeof(*q->slots));
    CX__CK_UNTRACKED(&q->taken, 2 * sizeof(q->taken));
    CX__CK_UNTRACKED(&q->given, 2 * sizeof(q->given));
    q->cap = cap;
    q->taken = q->given_seen = q->given = q->unused = 0;
    return 0;
}

void cx__queue_destroy(struct cx__queue *q)
{
    CX__CK_TRACKED(q->slots, (size_t)ck_ring_capacity(&q->ring) * sizeof(*q->slots));
    CX__CK_TRACKED(&q->ring, sizeof(q->ring));
    CX__CK_TRACKED(&q->taken, 2 * sizeof(q->taken));
    CX__CK_TRACKED(&q->given, 2 * sizeof(q->given));
    cx__free(q->slots);
}

/* `taken` is read before `given` (or its copy). A refusal means the
 * places were all taken when `given` itself was read: given and taken only
 * grow, so taken - given at that instant was at least what we computed. A
 * success means `taken` was still t at the compare-and-swap, and `given`
 * then no smaller than g (a value it had earlier, read directly or through
 * the copy): fewer than cap places were taken. The copy is refreshed with
 * a plain store; concurrent refreshes may leave an older value, which is
 * still one `given` had. */
bool cx__queue_reserve(struct cx__queue *q, uint64_t *ticket)
{
    uint64_t t = ck_pr_load_64(&q->taken);
    for (;;) {
        ck_pr_fence_load();
        uint64_t g = ck_pr_load_64(&q->given_seen);
        if (t - g >= q->cap) {
            g = ck_pr_load_64(&q->given);
            if (t - g >= q->cap)
                return false;
            ck_pr_store_64(&q->given_seen, g);
        }
        if (ck_pr_cas_64_value(&q->taken, t, t + 1, &t)) {
            *ticket = t;
            return true;
        }
    }
}

void cx__queue_unreserve(struct cx__queue *q) { ck_pr_inc_64(&q->given); }

void cx__queue_unreserve_unused(struct cx__queue *q)
{
    /* The place was counted in `taken` by the reservation, before this:
     * cx__queue_accepted reads `unused` before `taken`, so it may count
     * the place for an instant, never subtract it without having added. */
    ck_pr_inc_64(&q->unused);
    ck_pr_inc_64(&q->given);
}

unsigned int cx__queue_reserved(struct cx__queue *q)
{
    uint64_t g = ck_pr_load_64(&q->given);
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
    /* The entry's contents happen-before whoever pops it. */
    CX__HAPPENS_BEFORE(entry);
    /* Cannot fail: the caller's reservation guarantees a free slot (see
     * queue.h). The loop only guards against a broken invariant: losing a
     * job would be worse than retrying. */
    while (!ck_ring_enqueue_mpmc(&q->ring, q->slots, entry))
        ck_pr_stall();
}

void *cx__queue_pop(struct cx__queue *q)
{
    void *entry;
    if (!ck_ring_dequeue_mpmc(&q->ring, q->slots, &entry))
        return NULL;
    CX__HAPPENS_AFTER(entry);
    return entry;
}
