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
    q->cap = cap;
    q->reserved = 0;
    return 0;
}

void cx__queue_destroy(struct cx__queue *q)
{
    CX__CK_TRACKED(q->slots, (size_t)ck_ring_capacity(&q->ring) * sizeof(*q->slots));
    CX__CK_TRACKED(&q->ring, sizeof(q->ring));
    cx__free(q->slots);
}

bool cx__queue_reserve(struct cx__queue *q)
{
    unsigned int n = ck_pr_load_uint(&q->reserved);
    do {
        if (n >= q->cap)
            return false;
    } while (!ck_pr_cas_uint_value(&q->reserved, n, n + 1, &n));
    return true;
}

bool cx__queue_unreserve(struct cx__queue *q)
{
    bool zero;
    ck_pr_dec_uint_zero(&q->reserved, &zero);
    return zero;
}

unsigned int cx__queue_reserved(struct cx__queue *q) { return ck_pr_load_uint(&q->reserved); }

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
