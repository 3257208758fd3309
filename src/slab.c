/* slab.c - blocks one thread allocates and any thread frees (slab.h). */
#include <ck_pr.h>
#include <stdint.h>

#include "check.h"
#include "slab.h"

struct cx__slab {
    /* Blocks in use plus the owner's hold (slab.h). Decremented by every
     * free with release ordering (the freeing thread's use of the block
     * happens before any reuse); whoever reads 1 (the owner, deciding to
     * reuse) or reaches 0 (freeing the slab) does so with acquire. */
    unsigned live;
    bool counted; /* made while the test counters were on */
};

/* The slab's first block: the first cache line boundary after its header
 * (the slab is the cx__malloc block itself). */
static unsigned char *slab_blocks(cx__slab *s)
{
    return (unsigned char *)(((uintptr_t)(s + 1) + 63u) & ~(uintptr_t)63u);
}

/* Counters for tests (cx__slabs_count): slabs allocated and not freed,
 * and allocated. Off unless a test turns them on: they are atomics on
 * lines every binding and every freeing thread would otherwise share. */
static bool counting;
static unsigned alive, made;

void cx__slabs_count(void) { counting = true; }
unsigned cx__slabs_alive(void) { return ck_pr_load_uint(&alive); }
unsigned cx__slabs_made(void) { return ck_pr_load_uint(&made); }

#define SLAB_BYTES (sizeof(struct cx__slab) + 64u + (size_t)CX__SLAB_BLOCKS * CX__SLAB_BLOCK)
/* One malloc block of 4 KiB at most (glibc's header included). */
_Static_assert(SLAB_BYTES + 16u <= 4096u, "a slab fits 4 KiB");

static void slab_destroy(cx__slab *s)
{
    if (s->counted)
        ck_pr_dec_uint(&alive);
    cx__free(s);
}

/* Drops one count of s's live; frees s if it was the last. */
static void slab_put(cx__slab *s, unsigned n)
{
    bool zero;
    ck_pr_fence_release();
    if (n == 1) {
        ck_pr_dec_uint_zero(&s->live, &zero);
    } else {
        unsigned before = ck_pr_faa_uint(&s->live, -n);
        CX__ASSERT(before >= n);
        zero = before == n;
    }
    if (zero) {
        ck_pr_fence_acquire();
        slab_destroy(s);
    }
}

void cx__slab_free(cx__slab *s) { slab_put(s, 1); }

/* A slab whose every block is free, held by the caller: the oldest
 * retired one if its blocks all came back, else a new one; NULL on
 * ENOMEM. */
static cx__slab *slab_next(cx__slabs *own)
{
    if (own->nretired != 0) {
        cx__slab *old = own->retired[own->oldest];
        if (ck_pr_load_uint(&old->live) == 1) {
            /* Only our hold is left: no other thread can reach old. */
            ck_pr_fence_acquire();
            own->oldest = (own->oldest + 1) % CX__SLAB_RETIRED;
            own->nretired--;
            /* The ring drains when the thread's callbacks come back as
             * fast as it binds: a next-oldest slab already free is one
             * more than the thread needs, given up here (freed now: only
             * our hold is left). A burst therefore leaves no lasting
             * ring behind. */
            if (own->nretired != 0) {
                cx__slab *next = own->retired[own->oldest];
                if (ck_pr_load_uint(&next->live) == 1) {
                    own->oldest = (own->oldest + 1) % CX__SLAB_RETIRED;
                    own->nretired--;
                    slab_put(next, 1);
                }
            }
            return old;
        }
    }
    cx__slab *s = cx__malloc(SLAB_BYTES);
    if (s == NULL)
        return NULL;
    s->live = 1;
    s->counted = counting;
    if (s->counted) {
        ck_pr_inc_uint(&alive);
        ck_pr_inc_uint(&made);
    }
    return s;
}

/* Moves own's carved-out current slab to the retired ring; when the ring
 * is full, its oldest slab is given up (freed by its last block). */
static void retire(cx__slabs *own)
{
    if (own->nretired == CX__SLAB_RETIRED) {
        slab_put(own->retired[own->oldest], 1);
        own->oldest = (own->oldest + 1) % CX__SLAB_RETIRED;
        own->nretired--;
    }
    own->retired[(own->oldest + own->nretired) % CX__SLAB_RETIRED] = own->cur;
    own->nretired++;
    own->cur = NULL;
    own->next = own->end = NULL;
}

void *cx__slab_alloc_slow(cx__slabs *own, cx__slab **slab)
{
    if (own->cur != NULL)
        retire(own);
    cx__slab *s = slab_next(own);
    if (s == NULL)
        return NULL;
    /* Every block counted as in use now, with one atomic write per slab,
     * not one per block: the blocks not carved yet are given back when
     * the slab is given up (cx__slabs_drain). The slab is ours alone here
     * (live was 1): a plain store. */
    ck_pr_store_uint(&s->live, 1u + CX__SLAB_BLOCKS);
    own->cur = s;
    own->next = slab_blocks(s);
    own->end = own->next + (size_t)CX__SLAB_BLOCKS * CX__SLAB_BLOCK;
    return cx__slab_alloc(own, slab);
}

void cx__slabs_drain(cx__slabs *own)
{
    if (own->cur != NULL) {
        /* The blocks not carved, and the hold. */
        slab_put(own->cur, (unsigned)((size_t)(own->end - own->next) / CX__SLAB_BLOCK) + 1u);
        own->cur = NULL;
        own->next = own->end = NULL;
    }
    while (own->nretired != 0) {
        slab_put(own->retired[own->oldest], 1);
        own->oldest = (own->oldest + 1) % CX__SLAB_RETIRED;
        own->nretired--;
    }
}
