/* tstate.c - per-thread state: the current context and the lookup cache.
 *
 * The state is reached through a thread-local pointer (fast, no call) and
 * also registered under a pthread key, whose destructor ends it when the
 * thread exits: the contexts the thread still has entered are left, its
 * base context released. The thread calling exit() (or returning from
 * main) ends its state in a library destructor, so values only the main
 * thread's context holds are destroyed too.
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
    cx__caches_drain(st);
    /* Busy only if a run's cleanup was itself cut short (a cancellation
     * acted on inside a destroy callback it ran): nothing can resume that
     * run once the state ends, so its storage goes too. */
    cx__free(st->run_ctx);
    cx__free(st);
    if (base != NULL) {
        cx__leave(base);
        cx_context_release(base);
    }
}

/* Ends one state of this thread: leaves what it entered, releases its
 * base context. st is consumed. Destroy callbacks running meanwhile see a
 * thread without state; if they set variables, a new state appears. */
static void end_one(cx__tstate *st)
{
    cx__exit_all_entered(st);
    cx__tstate_set(NULL);
    cx__tstate_free(st);
}

/* Ends this thread's state and every state that destroy callbacks create
 * while it ends, however many rounds that takes (POSIX repeats key
 * destructors only PTHREAD_DESTRUCTOR_ITERATIONS times: 4 on glibc). */
static void end_thread(cx__tstate *st)
{
    while (st != NULL) {
        end_one(st);
        st = cx__tstate_cur();
    }
    /* A state created meanwhile registered itself under the key; it is
     * gone now, and POSIX must not call the destructor with it again. */
    if (tstate_key_err == 0)
        (void)pthread_setspecific(tstate_key, NULL);
}

static void tstate_destroy(void *p) { end_thread(p); }

void cx__tstate_end_here(void)
{
    cx__tstate *st = cx__tstate_cur();
    if (st != NULL && !st->registered)
        end_thread(st);
}

/* The thread that calls exit() (or returns from main) ends its state:
 * values held by the main thread's context alone are destroyed, so their
 * destroy callbacks (flush a log, close a span) run. Runs after the
 * program's own atexit handlers. Other threads are left alone. */
__attribute__((destructor)) static void process_end(void)
{
    cx__tstate *st = cx__tstate_cur();
    if (st != NULL)
        end_thread(st);
}

void cx__varbank_drain(cx__tstate *st)
{
    for (unsigned i = 0; i < CX__VARBANK; i++) {
        cx__varbank_slot *sl = &st->varbank[i];
        if (sl->n != 0)
            cx__var_release_n(sl->var, sl->n);
        sl->n = 0;
    }
}

void cx__caches_drain(cx__tstate *st)
{
    cx__fl_drain(&st->token_cache);
    cx__fl_drain(&st->ctx_cache);
    cx__varbank_drain(st);
    cx__slabs_drain(&st->slabs);
    if (!st->run_ctx_busy) {
        cx__free(st->run_ctx);
        st->run_ctx = NULL;
    }
}

void cx__caches_drain_here(void)
{
    cx__tstate *st = cx__tstate_cur();
    if (st != NULL)
        cx__caches_drain(st);
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
    if (st == NULL)
        return NULL;
    /* Registering under the key is what ends st at thread exit. glibc
     * allocates the slots of keys past the first 32 here: on failure the
     * state would leak at exit, so the caller gets CX_ENOMEM instead. */
    if (pthread_setspecific(tstate_key, st) != 0) {
        cx__tstate_free(st);
        return NULL;
    }
    st->registered = true;
    cx__tstate_set(st);
    return st;
}

cx__tstate *cx__tstate_install(cx__tstate *st)
{
    st->registered = pthread_setspecific(tstate_key, st) == 0;
    cx__tstate_set(st);
    return st;
}


cx_context *cx__base_create(cx__tstate *st)
{
    cx_context *ctx = cx_context_new();
    if (ctx == NULL)
        return NULL;
    /* Nobody else can reach a thread's base context; marking it entered
     * keeps the "one runner per context" invariant uniform. */
    ctx->entered = CX__CTX_ENTERED;
    ctx->private_ = true;
    st->base = ctx;
    st->cur = ctx;
    return ctx;
}
