/* refcount.h - atomic reference counts shared by every refcounted object
 * (variables, map nodes, value boxes, contexts, futures). Tokens are not
 * refcounted: each has one owner, who releases it.
 *
 * Ordering: all writes a thread made to an object must be visible to the
 * thread that destroys it. So each decrement is preceded by a release fence
 * (our writes happen-before the decrement) and the thread that sees zero
 * issues an acquire fence before destroying (every other holder's writes
 * happen-before the destruction). Increments need no ordering: a thread can
 * only increment a count it already holds a reference through. On x86 the
 * fences are compiler barriers; the locked decrement orders the rest.
 */
#ifndef CX_REFCOUNT_H
#define CX_REFCOUNT_H

#include <ck_pr.h>
#include <stdbool.h>

#include "annotate.h"

typedef struct cx__ref {
    unsigned int n;
} cx__ref;

static inline void cx__ref_init(cx__ref *r) { r->n = 1; }

static inline void cx__ref_inc(cx__ref *r) { ck_pr_inc_uint(&r->n); }

/* n more references at once (the caller holds one). */
static inline void cx__ref_add(cx__ref *r, unsigned n) { ck_pr_add_uint(&r->n, n); }

/* Drops n references that are known not to be the last (the caller keeps
 * one more): no teardown, so no acquire. */
static inline void cx__ref_sub_nonlast(cx__ref *r, unsigned n)
{
    CX__HAPPENS_BEFORE(r);
    ck_pr_fence_release();
    ck_pr_sub_uint(&r->n, n);
}

/* Drops one reference; true when it was the last (the caller destroys). */
static inline bool cx__ref_dec(cx__ref *r)
{
    bool zero;
    /* Publish this holder's writes to whoever destroys the object. */
    CX__HAPPENS_BEFORE(r);
    /* A count of 1 is our own reference: nobody else holds one, and only
     * a holder can add one, so no other thread can touch the count. The
     * last release (the common case) then needs no locked instruction. */
    if (ck_pr_load_uint(&r->n) == 1) {
        ck_pr_fence_acquire();
        CX__HAPPENS_AFTER(r);
        return true;
    }
    ck_pr_fence_release();
    ck_pr_dec_uint_zero(&r->n, &zero);
    if (zero) {
        /* See every other holder's writes before tearing down. */
        ck_pr_fence_acquire();
        CX__HAPPENS_AFTER(r);
    }
    return zero;
}

/* Drops n references at once; true when they were the last (the caller
 * destroys). Ordered as cx__ref_dec. */
static inline bool cx__ref_sub(cx__ref *r, unsigned n)
{
    CX__HAPPENS_BEFORE(r);
    ck_pr_fence_release();
    unsigned old = ck_pr_faa_uint(&r->n, -n);
    if (old != n)
        return false;
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(r);
    return true;
}

/* True if the caller holds the only reference (so nobody else can see the
 * object unless the caller hands it out). The acquire pairs with the
 * release in cx__ref_dec of the holder that left. */
static inline bool cx__ref_unique(cx__ref *r)
{
    if (ck_pr_load_uint(&r->n) != 1)
        return false;
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(r);
    return true;
}
/* cx__ref_unique without the announcement to race detectors: for paths
 * that run only when none is attached (alloc.h's cx__caching() is false
 * under every detector), so that they make no call. */
static inline bool cx__ref_unique_unannounced(cx__ref *r)
{
    if (ck_pr_load_uint(&r->n) != 1)
        return false;
    ck_pr_fence_acquire();
    return true;
}

#endif
