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
 * context taken at submit, released only after the job has handed the
 * strand on: the strand (which lives in the context) outlives every use.
 */
#include "strand.h"

#include "inspect.h"

struct cx__strand {
    pthread_mutex_t mu;    /* guards head, tail, active */
    cx_future *head, *tail; /* waiting behind the active job, in order */
    bool active;           /* a job of this strand is queued, parked or
                              running */
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
    s->head = s->tail = NULL;
    s->active = false;
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
    return !s->active && s->head == NULL && s->parked == NULL;
}

void cx__strand_free(struct cx__strand *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->mu);
    cx__free(s);
}

void cx__strand_enqueue(struct cx__strand *s, cx_future *f)
{
    f->next = NULL;
    pthread_mutex_lock(&s->mu);
    bool first = !s->active;
    if (first) {
        s->active = true;
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
    } else {
        s->active = false;
    }
    pthread_mutex_unlock(&s->mu);
    if (next != NULL)
        cx__pool_push(next->pool, next);
}

/* Claims ctx for f, or parks f on it. True: claimed (entered). */
static bool enter_or_park(struct cx__strand *s, cx_context *ctx, cx_future *f)
{
    /* Counted before the compare-and-swap can make it visible, so that a
     * draining pool never sees "nothing parked" while f is. */
    cx__pool_parked(f->pool, 1);
    s->parked = f;
    for (;;) {
        unsigned int e = ck_pr_load_uint(&ctx->entered);
        if (e == 0) {
            if (cx__try_enter(ctx)) {
                s->parked = NULL;
                cx__pool_parked(f->pool, -1);
                return true;
            }
            continue;
        }
        /* Entered elsewhere: park. The leaver reads `parked` after its
         * exchange sees the flag. */
        CX__HAPPENS_BEFORE(&s->parked);
        ck_pr_fence_release();
        if (ck_pr_cas_uint(&ctx->entered, e, e | CX__CTX_PARKED))
            return false;
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

void cx__strand_handle(cx__tstate *st, cx_future *f, bool cancel)
{
    cx_context *ctx = f->strand_ctx;
    struct cx__strand *s = ctx->strand;
    if (cancel)
        (void)cx__future_cancel_queued(f, true);
    if (ck_pr_load_uint(&f->state) != CX__F_QUEUED) {
        /* Cancelled: it never runs; its canceller released f->ctx. */
        cx__pool_count(f->pool, CX__STAT_CANCELLED);
        hand_on(s);
        drop_strand_ref(f);
        return;
    }
    if (!enter_or_park(s, ctx, f))
        return; /* handed back to the pool when ctx is left */
    if (!cx__future_claim(f)) {
        cx__leave(ctx); /* cancelled meanwhile */
        cx__pool_count(f->pool, CX__STAT_CANCELLED);
        hand_on(s);
        drop_strand_ref(f);
        return;
    }
    struct cx__job_mark m;
    cx__pool_job_begin(&m, ctx);
    void *result = cx__run_claimed(st, ctx, f->fn, f->arg);
    cx__pool_job_end(&m); /* before the strand lets ctx go */
    cx__pool_count(f->pool, CX__STAT_COMPLETED);
    hand_on(s);
    drop_strand_ref(f);
    cx_context_release(f->ctx);
    f->ctx = NULL;
    cx__future_finish(f, 0, result);
}
