/* strand.c - strands: the jobs cx_pool_submit_in puts into one context run
 * one at a time, in submit order, each seeing the previous one's writes
 * (an asio strand, a GCD serial queue).
 *
 * A context's strand is created by the first submit_in into it and freed
 * with the context. At most one job of a strand is *active* (in a pool's
 * queue, parked, or running); the others wait in the strand's list, each
 * holding its queue place, so the pool's queue bound still counts them.
 * When the active job ends (ran, cancelled, or discarded by a shutdown
 * that cancels), the next one goes into its pool's queue.
 *
 * Parking. When the active job's turn comes and its context is entered
 * outside the pool (cx_context_enter, a run, a thread), the worker does
 * not wait: it records the job in `parked` and sets CX__CTX_PARKED in the
 * context's entered word with a compare-and-swap that expects the word it
 * read (entered), then goes on with other work. Whoever leaves the context
 * exchanges the word for 0 (context.h, cx__leave): seeing PARKED, it hands
 * the job back to its pool's ready list (cx__strand_wake). The compare-
 * and-swap and the exchange are both locked operations on one word, so
 * either the worker's compare-and-swap fails (the word changed: it looks
 * again and may enter) or the leaver sees PARKED. No spinning, no worker
 * held, and the job never fails with CX_EBUSY.
 *
 * References: every strand job holds f->strand_ctx, a reference to its
 * context taken at submit, released once the job has handed the strand on
 * (so a completed job holds no context). The strand itself is counted: the
 * context holds one reference and every strand job another (f->strand,
 * until the job is freed), so that a thread waiting on the job can always
 * lock the strand and ask whether the job's turn has come.
 *
 * Inline runs (no self-deadlock). A worker of the job's pool that waits
 * on a strand job still queued runs it itself when it is the strand's
 * current job (every earlier one has ended) and the context is free: it
 * claims the context and the job under the strand's lock, so the worker
 * that later pops the job finds it claimed (RUNNING or DONE, never both
 * QUEUED and current again) and only drops it. A job that is not yet
 * current is reached by running the current one first, and so on, as long
 * as each is queued, of the waiter's pool, and the context is free;
 * otherwise the waiter blocks as usual.
 */
#include "strand.h"
#include "inspect.h"
#include "scope.h"

struct cx__strand {
    cx__ref ref;           /* the context's and each strand job's */
    pthread_mutex_t mu;    /* guards head, tail, current */
    cx_future *head, *tail; /* waiting behind the active job, in order */
    cx_future *current;    /* the active job (borrowed: queued, parked or
                              running), NULL when the strand is idle */
    cx_future *parked;     /* the active job while parked on the context:
                              written by the parking worker before its
                              compare-and-swap, taken by the leaver after
                              its exchange */
};

struct cx__strand *cx__strand_of(cx_context *ctx)
{
    struct cx__strand *s = ck_pr_load_ptr(&ctx->strand);
    if (s != NULL) {
        /* Pairs with the release before the installing compare-and-swap. */
        ck_pr_fence_acquire();
        CX__HAPPENS_AFTER(&ctx->strand);
        return s;
    }
    s = cx__malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        cx__free(s);
        return NULL;
    }
    cx__ref_init(&s->ref); /* the context's */
    s->head = s->tail = NULL;
    s->current = NULL;
    s->parked = NULL;
    /* Publish the initialised strand; two first submits race: one wins. */
    CX__HAPPENS_BEFORE(&ctx->strand);
    ck_pr_fence_release();
    if (ck_pr_cas_ptr(&ctx->strand, NULL, s))
        return s;
    pthread_mutex_destroy(&s->mu);
    cx__free(s);
    s = ck_pr_load_ptr(&ctx->strand);
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(&ctx->strand);
    return s;
}

bool cx__strand_idle(const struct cx__strand *s)
{
    return s->current == NULL && s->head == NULL && s->parked == NULL;
}

void cx__strand_free(struct cx__strand *s)
{
    if (s == NULL || !cx__ref_dec(&s->ref))
        return;
    pthread_mutex_destroy(&s->mu);
    cx__free(s);
}

struct cx__strand *cx__strand_retain(struct cx__strand *s)
{
    cx__ref_inc(&s->ref);
    return s;
}

void cx__strand_enqueue(struct cx__strand *s, cx_future *f)
{
    f->next = NULL;
    pthread_mutex_lock(&s->mu);
    bool first = s->current == NULL;
    if (first) {
        s->current = f;
    } else {
        if (s->tail != NULL)
            s->tail->next = f;
        else
            s->head = f;
        s->tail = f;
    }
    pthread_mutex_unlock(&s->mu);
    if (first)
        cx__pool_push(f->pool, f);
}

/* The active job is finished with the strand: the next one (if any) goes
 * into its pool's queue, else the strand goes idle. */
static void hand_on(struct cx__strand *s)
{
    pthread_mutex_lock(&s->mu);
    cx_future *next = s->head;
    if (next != NULL) {
        s->head = next->next;
        if (s->head == NULL)
            s->tail = NULL;
    }
    s->current = next; /* NULL: the strand is idle */
    pthread_mutex_unlock(&s->mu);
    if (next != NULL)
        cx__pool_push(next->pool, next);
}

/* Claims ctx for f, or parks f on it. True: claimed (entered). */
static bool enter_or_park(struct cx__strand *s, cx_context *ctx, cx_future *f)
{
    for (;;) {
        unsigned int e = ck_pr_load_uint(&ctx->entered);
        if (e == 0) {
            if (cx__try_enter(ctx))
                return true; /* the common case: no counter touched */
            continue;
        }
        /* Entered elsewhere: park. Counted, and `parked` written, before
         * the compare-and-swap can make the job visible to a leaver (which
         * reads `parked` after its exchange sees the flag), so a draining
         * pool never sees "nothing parked" while f is. */
        cx__pool_parked(f->pool, 1);
        s->parked = f;
        CX__HAPPENS_BEFORE(&s->parked);
        ck_pr_fence_release();
        if (ck_pr_cas_uint(&ctx->entered, e, e | CX__CTX_PARKED))
            return false;
        s->parked = NULL; /* the word changed: look again */
        cx__pool_parked(f->pool, -1);
    }
}

void cx__strand_wake(cx_context *ctx)
{
    struct cx__strand *s = ctx->strand;
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(&s->parked);
    cx_future *f = s->parked;
    s->parked = NULL;
    cx__pool_ready(f->pool, f);
}

/* Releases what a strand job holds once the strand is handed on. */
static void drop_strand_ref(cx_future *f)
{
    cx_context *ctx = f->strand_ctx;
    f->strand_ctx = NULL;
    cx_context_release(ctx);
}

static void run_entered(cx__tstate *st, struct cx__strand *s, cx_context *ctx, cx_future *f,
                        bool own_ref);

bool cx__strand_handle(cx__tstate *st, cx_future *f, bool cancel)
{
    struct cx__strand *s = f->strand;
    if (cancel)
        (void)cx__future_cancel_queued(f, true);
    /* Under the lock, f cannot be claimed inline (that takes the lock
     * too): a queued f still holds strand_ctx, and our own reference
     * keeps ctx alive whatever a waiter does after the unlock. */
    pthread_mutex_lock(&s->mu);
    unsigned int state = ck_pr_load_uint(&f->state);
    cx_context *ctx = state == CX__F_QUEUED ? cx_context_retain(f->strand_ctx) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (state == CX__F_RUNNING || state == CX__F_DONE)
        return false; /* run inline by a waiter, which handed on */
    if (ctx == NULL) {
        /* Cancelled: it never runs; its canceller released f->ctx. */
        cx__pool_count(f->pool, CX__STAT_CANCELLED);
        hand_on(s);
        drop_strand_ref(f);
        return false;
    }
    if (!enter_or_park(s, ctx, f)) {
        cx_context_release(ctx); /* not the last: f holds strand_ctx */
        return true; /* handed back to the pool when ctx is left */
    }
    if (!cx__future_claim(f)) {
        cx__leave(ctx);
        unsigned int now = ck_pr_load_uint(&f->state);
        if (now != CX__F_RUNNING && now != CX__F_DONE) {
            cx__pool_count(f->pool, CX__STAT_CANCELLED);
            hand_on(s); /* cancelled meanwhile */
            drop_strand_ref(f);
        } /* else a waiter runs it inline and hands on */
        cx_context_release(ctx);
        return false;
    }
    run_entered(st, s, ctx, f, true);
    return false;
}

/* f is claimed and ctx entered: run (or skip, for an ended scope), leave,
 * hand the strand on, complete f. own_ref: the caller holds a reference
 * to ctx of its own, dropped here before f completes (a completed job
 * holds no context). */
static void run_entered(cx__tstate *st, struct cx__strand *s, cx_context *ctx, cx_future *f,
                        bool own_ref)
{
    /* A job whose scope was cancelled or expired before its turn does not
     * run (its scope is alive: f->ctx still holds it). */
    int rc = f->scope != NULL ? cx__scope_check(f->scope) : 0;
    void *result = NULL;
    if (rc == 0) {
        /* Shown to cx_pool_inspect while it runs (a worker's slot). */
        struct cx__job_mark m;
        cx__pool_job_begin(&m, ctx);
        result = cx__run_claimed(st, ctx, f->fn, f->arg);
        cx__pool_job_end(&m); /* before the strand lets ctx go */
        cx__pool_count(f->pool, CX__STAT_COMPLETED);
    } else {
        cx__leave(ctx);
        cx__pool_count(f->pool, rc == CX_ETIMEDOUT ? CX__STAT_TIMED_OUT : CX__STAT_CANCELLED);
    }
    hand_on(s);
    drop_strand_ref(f);
    if (own_ref)
        cx_context_release(ctx);
    cx__future_end(f, rc, result);
}

bool cx__strand_run_inline(cx_future *f)
{
    struct cx__strand *s = f->strand;
    /* Jobs ahead of f in its strand are run first, in order, as long as
     * each is the current one, still queued, of this worker's pool, and
     * the context is free; any other state means another thread has the
     * strand in hand, and the caller waits. */
    for (;;) {
        pthread_mutex_lock(&s->mu);
        cx_future *cur = s->current;
        /* Current: every earlier job has ended, and cur still holds
         * strand_ctx (dropped only after it hands on, which needs this
         * lock). */
        bool ok = cur != NULL && cur->pool == f->pool &&
                  ck_pr_load_uint(&cur->state) == CX__F_QUEUED;
        cx_context *ctx = ok ? cur->strand_ctx : NULL;
        if (ok && !cx__try_enter(ctx))
            ok = false; /* entered elsewhere: the strand waits for it */
        if (ok && !cx__future_claim(cur)) {
            cx__leave(ctx); /* cancelled meanwhile */
            ok = false;
        }
        pthread_mutex_unlock(&s->mu);
        if (!ok)
            return false;
        run_entered(cx__tstate_cur(), s, ctx, cur, false);
        if (cur == f)
            return true;
    }
}
