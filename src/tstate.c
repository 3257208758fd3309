/* tstate.c - per-thread state: the current context and the lookup cache.
 *
 * The state is reached through a thread-local pointer (fast, no call) and
 * also registered under a pthread key, whose destructor frees it and the
 * thread's base context when the thread exits: no leak per thread.
 */
#include <string.h>

#include "context.h"

__thread struct cx__fast *cx__fast_tls __attribute__((tls_model("initial-exec")));

static pthread_key_t tstate_key;
static pthread_once_t tstate_once = PTHREAD_ONCE_INIT;
static int tstate_key_err;

void cx__tstate_free(cx__tstate *st)
{
    cx_context *base = st->base;
    for (unsigned i = 0; i < st->nreserve; i++)
        cx__free(st->reserve[i]);
    cx__free(st);
    if (base != NULL) {
        CX__HAPPENS_BEFORE(&base->entered);
        ck_pr_fence_release();
        ck_pr_store_uint(&base->entered, 0);
        cx_context_release(base);
    }
}

static void tstate_destroy(void *p)
{
    /* Destroy callbacks run while freeing see a thread without state; if
     * they set variables, a new state is registered and this destructor
     * runs again (POSIX repeats destructors for that case). */
    cx__tstate_set(NULL);
    cx__tstate_free(p);
}

void cx__reserve_fill(cx__tstate *st, unsigned target)
{
    while (st->nreserve < target) {
        void *b = cx__malloc(CX__RESERVE_BLOCK_BYTES);
        if (b == NULL)
            return;
        st->reserve[st->nreserve++] = b;
    }
}

void *cx__reserve_take(size_t size)
{
    cx__tstate *st = cx__tstate_cur();
    if (st == NULL || !st->reserve_armed || st->nreserve == 0 || size > CX__RESERVE_BLOCK_BYTES)
        return NULL;
    return st->reserve[--st->nreserve];
}

/* pthread_once orders tstate_key_init before every return of
 * pthread_once, but race detectors do not model that: announce it. */
static void tstate_key_init(void)
{
    tstate_key_err = pthread_key_create(&tstate_key, tstate_destroy);
    CX__HAPPENS_BEFORE(&tstate_once);
}

cx__tstate *cx__tstate_new(void)
{
    if (pthread_once(&tstate_once, tstate_key_init) != 0)
        return NULL;
    CX__HAPPENS_AFTER(&tstate_once);
    if (tstate_key_err != 0)
        return NULL;
    cx__tstate *st = cx__malloc(sizeof(*st));
    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof(*st));
    st->fast.gen = 1; /* zeroed cache entries (gen 0) are all invalid */
    return st;
}

cx__tstate *cx__tstate_create(void)
{
    cx__tstate *st = cx__tstate_new();
    return st == NULL ? NULL : cx__tstate_install(st);
}

cx__tstate *cx__tstate_install(cx__tstate *st)
{
    /* Registering under the key is what frees st at thread exit. glibc
     * cannot fail here (the key was created, its slot is preallocated). */
    (void)pthread_setspecific(tstate_key, st);
    cx__tstate_set(st);
    return st;
}


cx_context *cx__current_for_write(cx__tstate *st)
{
    if (st->cur != NULL)
        return st->cur;
    cx_context *ctx = cx_context_new();
    if (ctx == NULL)
        return NULL;
    /* Nobody else can reach a thread's base context; marking it entered
     * keeps the "one runner per context" invariant uniform. */
    ctx->entered = 1;
    ctx->private_ = true;
    st->base = ctx;
    st->cur = ctx;
    return ctx;
}
