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

void cx__queue_unreserve_unused(struct cx__queue *q)
{
    /* The place was counted in `taken` by the reservation, before this:
     * cx__queue_accepted reads `unused` before `taken`, so it may count
     * the place for an instant, never subtract it without having added. */
    ck_pr_inc_64(&q->unused);
}

unsigned int cx__queue_reserved(struct cx__queue *q)
{
    uint64_t g = cx__queue_given(q);
    ck_pr_fence_load();
    return (unsigned int)(ck_pr_load_64(&q->taken) - g);
}

uint64_t cx__queue_accepted(struct cx__queue *q)
{
    uint64_t u = ck_pr_load_64(&q->unused);
    ck_pr_fence_load();
    return ck_pr_load_64(&q->taken) - u;
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
        if (e == 0 || (e & 1u) != cx__queue_lap_tag(q, end))
            return end;
        end++;
    }
}
