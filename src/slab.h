/* slab.h - blocks of one size that one thread allocates and any thread
 * frees: the memory of bound callbacks (callback.c).
 *
 * Why not malloc: a callback is allocated by the thread that binds and
 * freed by the executor's thread that runs it. With malloc, every such
 * block returns to the binder through the allocator's shared lists: each
 * malloc then takes a list head the executor keeps writing and reads a
 * link the executor just wrote, two cache-line transfers per callback,
 * which cost more than the rest of bind and invoke together (bench_bind).
 *
 * Here a thread carves blocks in address order out of its current slab.
 * A freed block only decrements its slab's count of blocks in use (`live`,
 * one atomic subtraction; no list, no link). A slab the thread has carved
 * to the end waits in the thread's ring of retired slabs; when the thread
 * needs a new one, it takes the oldest retired slab if every block of it
 * has been freed, and allocates otherwise. Reuse is therefore in address
 * order and long after the executor last wrote the memory, which the
 * processor's prefetcher handles like fresh memory.
 *
 * Ownership: `live` counts the blocks handed out and not yet freed, plus 1
 * while the owning thread holds the slab (current or retired). Whoever
 * brings it to 0 frees the slab: the owner when it gives the slab up (the
 * ring is full, the thread's state ends), or the thread freeing the last
 * block after that. A slab therefore outlives its thread exactly as long
 * as one of its blocks lives.
 *
 * Used only while cx__caching() (alloc.h): under a user's allocator, the
 * out-of-memory walk, valgrind and the sanitizers every block is its own
 * malloc, so each checker sees each block's life.
 */
#ifndef CX_SLAB_H
#define CX_SLAB_H

#include <stddef.h>

#include "alloc.h"

/* Blocks of CX__SLAB_BLOCK bytes, cache-line aligned, CX__SLAB_BLOCKS per
 * slab (a slab is one 4 KiB malloc block); CX__SLAB_RETIRED slabs wait
 * for reuse per thread.
 *
 * The cost of slabs: a slab is reused or freed only once every block of
 * it is back, so a callback that lives long (one per connection, kept
 * until it closes) keeps its whole slab: at worst 62 times the memory a
 * malloc'd callback would hold (4 KiB). Small slabs keep that bound low;
 * the ring keeps about 4,000 recently used blocks between a block's free
 * and its reuse, and drains when the thread's callbacks come back as fast
 * as it binds (slab_next). A block is one cache line: a callback's fields
 * without its run slot (callback.c), so a backlog of callbacks waiting in
 * an executor's queue spans half the memory (and page faults) it did with
 * 128-byte blocks. */
#define CX__SLAB_BLOCK 64u
#define CX__SLAB_BLOCKS 62u
#define CX__SLAB_RETIRED 64u

typedef struct cx__slab cx__slab;

/* A thread's slabs (in its state, tstate.h). Zeroed is empty. */
typedef struct cx__slabs {
    cx__slab *cur;  /* owned (its hold in live); NULL before the first */
    unsigned char *next, *end; /* cur's next block to carve and the end
                                  of its blocks (both NULL with cur) */
    unsigned nretired, oldest; /* ring of retired slabs */
    cx__slab *retired[CX__SLAB_RETIRED]; /* each owned (its hold) */
} cx__slabs;

/* True when cx__slab_alloc will carve from own's current slab (no call). */
static inline bool cx__slab_ready(const cx__slabs *own) { return own->next != own->end; }
/* cx__slab_alloc's part when own's current slab has no block left. */
CX__HIDDEN void *cx__slab_alloc_slow(cx__slabs *own, cx__slab **slab);
/* A block of CX__SLAB_BLOCK bytes from own's slabs (new, owned; give it
 * back with cx__slab_free from any thread), or NULL when a new slab cannot
 * be allocated (the caller falls back to cx__malloc). *slab is set to the
 * block's slab. */
static inline void *cx__slab_alloc(cx__slabs *own, cx__slab **slab)
{
    unsigned char *b = own->next;
    if (__builtin_expect(b == own->end, 0))
        return cx__slab_alloc_slow(own, slab);
    *slab = own->cur;
    own->next = b + CX__SLAB_BLOCK;
    /* The blocks are carved in address order: ask for one a few blocks
     * ahead now (for writing), so that taking it back from the cache of
     * the thread that last freed it overlaps with this bind's work. */
    __builtin_prefetch(b + 4u * CX__SLAB_BLOCK, 1, 3);
    return b;
}
/* Gives back one block of `slab` (consumed; from any thread). */
CX__HIDDEN void cx__slab_free(cx__slab *slab);
/* Gives up every slab own holds (the thread's state ends, or the
 * allocator changes): each is freed now or by its last block's free. */
CX__HIDDEN void cx__slabs_drain(cx__slabs *own);
/* For tests: cx__slabs_count turns on the process-wide counts of slabs
 * allocated and not yet freed (cx__slabs_alive) and allocated
 * (cx__slabs_made), for the slabs made from then on; call it before any
 * slab is made. */
CX__HIDDEN void cx__slabs_count(void);
CX__HIDDEN unsigned cx__slabs_alive(void);
CX__HIDDEN unsigned cx__slabs_made(void);

#endif
