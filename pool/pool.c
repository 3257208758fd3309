/* pool.c - cx_pool: workers, submit, try_submit, submit_in, shutdown, free.
 *
 * ======================================================================
 * Limits and defaults (the documentation of cxpool.h refers here)
 * ======================================================================
 *   threads     0 = the number of online CPUs, clamped to 1..1024;
 *               1..1024 as given; more than 1024: CX_EINVAL.
 *   queue_size  0 = 4096; 1..16777216 (1 << 24) as given; more: CX_EINVAL.
 *               Exactly queue_size jobs can wait (running jobs are not
 *               counted; a job cancelled while queued keeps its place
 *               until a worker takes it off the queue, which it does
 *               without running it).
 *   Errors      NULL pool, fn or out: CX_EINVAL. Allocation failure:
 *               CX_ENOMEM, nothing leaked, nothing changed. cx_pool_new:
 *               CX_EAGAIN if a thread cannot be created. After shutdown:
 *               CX_ESHUTDOWN. In a fork() child, a pool created before
 *               the fork answers CX_EFORK (submit, try_submit, submit_in,
 *               shutdown; cx_future_wait/result/cancel on its incomplete
 *               futures too), and cx_pool_free frees what it can without
 *               joining threads that do not exist in the child.
 *   In a job    cx_pool_shutdown of the job's own pool returns CX_EBUSY
 *               (it would wait for itself); cx_pool_free of it is ignored
 *               (a caller bug: the pool leaks rather than deadlocks).
 *   Waiting     A job waiting on work of its own pool still queued runs
 *               it inline (future.h, "No self-deadlock"), so waits
 *               inside jobs cannot exhaust the workers (submit_in jobs
 *               too, with the jobs ahead of them in their strand, while
 *               their context is free); except a job blocking in
 *               cx_pool_submit on its own full pool: use
 *               cx_pool_try_submit inside jobs.
 *   Signals     Workers start with every signal blocked: process-directed
 *               signals are delivered to the application's threads.
 *
 * ======================================================================
 * Design
 * ======================================================================
 * A job and its future are one refcounted object (future.h). The queue
 * (queue.h) is a bounded ring used MPMC, plus a counter of reserved
 * places that makes exactly queue_size jobs fit. Each idle worker sleeps
 * on its own event count (so a submit wakes one worker, not all of them),
 * submitters facing a full queue on the "space" event count (sleep.h:
 * ck_ec32, futex); nobody polls while waiting (ck_ec spins ~100
 * iterations before its futex sleep).
 *
 * Ownership of a job, step by step:
 *   1. submit: the context (a fresh cx_copy_context() snapshot, a new
 *      reference to the caller's ctx for submit_in, or a fresh empty one
 *      for submit_in(NULL)) and the job are created; the job owns the
 *      context; the pool holds one reference to the job, the caller a
 *      second one if it asked for a future. Any failure before the push
 *      releases both and changes nothing.
 *   2. push: the pool's reference moves into the queue.
 *   3. pop: a worker takes the queue's reference, gives the place back
 *      (waking one blocked submitter), and then either
 *        - claims the job (QUEUED -> RUNNING) and so owns its context:
 *          cx_context_run(ctx, fn, arg), releases the context, publishes
 *          DONE with the status and result (a submit_in job goes through
 *          its strand instead, strand.c: it parks, without the worker,
 *          while ctx is entered elsewhere); or
 *        - finds it cancelled (the canceller already released the
 *          context and completed it); or
 *        - when shutdown asked to cancel pending jobs, cancels it (as
 *          cx_future_cancel would);
 *      and finally drops the pool's reference.
 *   4. The caller's reference is dropped by cx_future_release; the last
 *      reference frees the job.
 *   A worker runs nothing outside cx_context_run: between jobs it is in
 *   its own empty context (its state is created with the pool, so
 *   cx_context_run cannot fail for lack of memory). A job that submits a
 *   job runs inside its own context, so cx_copy_context() in the nested
 *   submit propagates it.
 *
 * Memory ordering of each handoff (every one is also announced to
 * helgrind/DRD/TSan through annotate.h, on the address named):
 *   - submitter -> worker, through the queue: the submitter writes the job,
 *     then CX__HAPPENS_BEFORE(job) and the release store of the job into
 *     its ring slot; the worker's load of the slot and load fence, winning
 *     compare-and-swap of the ring's head, then CX__HAPPENS_AFTER(job).
 *   - the context: entered with cx_context_run's compare-and-swap
 *     (acquire, annotated on &ctx->entered) and left with an exchange
 *     (annotated likewise): the job's writes are visible to whoever enters
 *     or copies that context next.
 *   - worker -> waiter, the completion: future.c (release fence +
 *     exchange / load + acquire fence, annotated on &f->state).
 *   - the last reference: refcount.h (release fence before every
 *     decrement, acquire fence before destroying, annotated on the count).
 *   - job memory, worker -> submitter, through a worker's spare ring:
 *     the worker's release store of the ring's published count, the
 *     submitter's load and load fence, its compare-and-swap ("Job
 *     memory" below; never with a race detector present: block caching
 *     is off then).
 *   - the event counts: ck_ec's increment is a locked operation preceded
 *     by a store fence, its value read an acquire load; they only wake,
 *     they never carry data (the queue and the job do).
 *
 * Why it cannot lose a job, hang or deadlock:
 *   - A place is reserved before the push and given back by the pop,
 *     so the ring never holds more than queue_size entries and a push
 *     never waits (queue.h).
 *   - Sleeping without a lost wake-up, and without a shared write per job
 *     while nobody sleeps: a thread about to sleep first announces it in
 *     a counter (`idle` for workers, `blocked` for submitters) with a
 *     locked increment, then reads the event count, then looks again
 *     (pop, resp. reserve), and only then sleeps until the count moves.
 *     The other side changes the state first (push, resp. give-back),
 *     then a full fence (the give-back is itself locked; the push ends
 *     with a plain store, so an explicit fence follows it), then reads the
 *     counter and bumps the event count if it is not zero. By the total
 *     order of the two locked/fenced steps, either the second look sees
 *     the change or the bump follows the sleeper's read of the count, and
 *     its sleep returns at once. A worker also raises its own idle flag
 *     before its locked announcement, and a submitter that sees `idle`
 *     claims one raised flag (compare-and-swap) and bumps that worker's
 *     count: the same argument holds per worker, and a worker whose flag
 *     another submitter claimed is being woken anyway and drains the
 *     queue before it sleeps again. While every worker is busy and the
 *     queue has room, a job costs no event-count traffic at all.
 *   - Shutdown sets CLOSED with a locked operation, then bumps every
 *     count (each worker's and "space"). A submitter re-checks CLOSED after reserving a place (both
 *     locked, so totally ordered with the shutdown): either it saw CLOSED
 *     (it gives the place back, wakes all workers, fails with CX_ESHUTDOWN)
 *     or its reservation is visible to every worker that saw CLOSED. A
 *     worker leaves only when it sees CLOSED and no place reserved (read
 *     in that order), so a job whose submit succeeded is always taken off
 *     the queue. The worker whose give-back empties a CLOSED pool wakes
 *     all workers (unconditionally, like shutdown and a submitter that
 *     gives its place back unused), so no worker sleeps through the end.
 *   - Shutdown joins the workers under a mutex held by nobody else; no
 *     lock is ever held while running a job or sleeping on an event
 *     count; a future's mutex is held only around its list of
 *     listeners, a strand's around its list, the ready list's around the
 *     list. The only way to deadlock is the user's: blocking inside jobs
 *     where nothing runs inline (see "Waiting" above), or shutting down a
 *     pool while holding entered a context one of its jobs is parked on.
 *   - fork(): forkgen.h. A child never touches the parent's workers,
 *     event counts or mutexes.
 */
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "annotate.h"
#include "context.h"
#include "forkgen.h"
#include "future.h"
#include "inspect.h"
#include "queue.h"
#include "sleep.h"
#include "strand.h"

#define CX__POOL_MAX_THREADS 1024u
#define CX__POOL_DEFAULT_QUEUE 4096u

enum { CX__P_CLOSED = 1u, CX__P_CANCEL = 2u };

struct worker {
    struct ck_ec32 ec; /* this worker sleeps here when idle */
    unsigned int idle; /* 1 while it may sleep on ec and nobody has claimed
                          waking it (atomic; see wake_one) */
    cx_pool *pool;     /* borrowed: the pool outlives its workers */
    cx__tstate *st;    /* owned until the thread installs it; then the
                          thread's (freed at its exit by the core) */
    pthread_t tid;
    struct cx__wslot slot; /* what cx_pool_inspect and stats see (inspect.h) */
    /* The last precise start time this worker read (stamp below), and
     * what it learnt just before: the coarse clock, and that the queue's
     * positions below stamp_end were pushed. The job it took off the
     * queue last, and from which position (UINT64_MAX: none), until that
     * job begins. This thread's alone. */
    struct timespec stamp, stamp_tick;
    uint64_t stamp_end;
    const void *popped;
    uint64_t popped_pos;
    char pad[64];      /* keeps neighbours' ec and idle off this line */
    /* Job memory this worker freed, for submitters to reuse ("Job
     * memory" below): a ring this worker fills and submitters empty.
     * This worker's own words first (on its line above), then the
     * published count and the takers' count, each on its own line. */
    void **spare_slots;        /* owned; p->spare_size slots */
    unsigned int spare_fill;   /* slots ever filled (this worker's) */
    unsigned int spare_seen;   /* a value spare_took had (this worker's) */
    char pad2[64];
    unsigned int spare_pub;    /* slots ever published (atomic): filled
                                  ones, SPARE_BATCH at a time */
    char pad3[64];
    unsigned int spare_took;   /* slots ever emptied (atomic; submitters,
                                  compare-and-swap) */
    char pad4[64];
};

struct cx_pool {
    struct cx__queue q;
    char pad0[64];
    unsigned int idle;      /* workers about to sleep or asleep (atomic);
                               each sleeps on its own count: a submitter
                               wakes one, not all (wake_one) */
    char pad1[64];
    struct ck_ec32 space;   /* submitters facing a full queue sleep here */
    unsigned int blocked;   /* submitters about to sleep or asleep on space
                               (atomic) */
    char pad2[64];
    unsigned int flags;     /* CX__P_* (atomic; only ever set) */
    unsigned int gen;       /* fork generation at creation */
    unsigned int nthreads;
    unsigned int nslots;    /* workers whose slot is initialised (new) */
    unsigned int spare_size; /* slots of each worker's spare ring */
    struct worker *workers; /* owned, nthreads entries */
    pthread_mutex_t join_lock;
    bool joined;            /* under join_lock: all workers joined */
    /* Strand jobs handed back after parking (strand.c): they hold no
     * queue place, so they wait here, in order, not in the ring. */
    pthread_mutex_t ready_mu;
    cx_future *ready_head, *ready_tail; /* under ready_mu */
    unsigned int nready;    /* entries in the ready list (atomic; a hint
                               read without the lock) */
    unsigned int parked;    /* strand jobs parked or in the ready list
                               (atomic): workers do not leave while any */
    /* Introspection (cx_pool_inspect, cx_pool_stats_get); `submitted` is
     * the queue's count of accepted entries (queue.h). */
    uint64_t stat_other[CX__STAT_N]; /* outcomes counted by threads that
                                        are not p's workers (atomic) */
    char pad3[64];
    unsigned int spare_next; /* the worker whose spares a submit tries
                                first (atomic, a hint; submitters only) */
    char pad4[64];
};

/* The pool whose job this thread is running (NULL outside workers). */
static __thread cx_pool *self_pool __attribute__((tls_model("initial-exec")));
/* This thread's worker (NULL outside workers). */
static __thread struct worker *self_worker __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------ introspection hooks */

void cx__pool_count(cx_pool *p, enum cx__pool_stat what)
{
    struct worker *w = self_worker;
    if (__builtin_expect(w != NULL && w->pool == p, 1))
        cx__wslot_count(&w->slot, what);
    else
        ck_pr_inc_64(&p->stat_other[what]);
}

/* The start time of a job of w's pool that it took off the queue from
 * position pos (UINT64_MAX: none known, a strand job or one run inline):
 * the worker's previous precise reading when that one is still good
 * enough, else a new one.
 *
 * Good enough means both:
 *   - pos < stamp_end: the job had been pushed, so its submit had begun,
 *     before the loads that preceded the reading (queue.h,
 *     cx__queue_pushed_end); so the reading came after the submit began
 *     (any time its caller read before calling submit is not later); and
 *     it came before this job started (it is an older one of this
 *     worker). So the time is between the submit and the start, as a
 *     precise reading now would be.
 *   - the coarse clock still shows the tick it showed just before that
 *     reading: at most one tick (CLOCK_MONOTONIC_COARSE's resolution, a
 *     few milliseconds) has passed since.
 * A worker running queued jobs back to back thus reads the precise clock
 * (a vDSO call of ~40 ns, most of a trivial job's cost after the queue's)
 * about once per run of jobs it finds pushed on one cache line of the
 * queue, and the cheap coarse one (~10 ns) per job; a job pushed after
 * the worker's last reading, or a worker back from sleeping, reads it
 * anew. What it learns comes from the queue's slots, which it reads
 * anyway: no load of a counter the submitters write per job (that line
 * would travel to the worker and back for every submit).
 *
 * Ordering: the slot loads are made before the precise clock is read:
 * the clock call is opaque to the compiler, and the vDSO orders its
 * counter read after earlier loads (lfence or rdtscp on x86, isb on arm64);
 * the load fence covers the rest. */
static inline __attribute__((always_inline)) void stamp(struct worker *w, uint64_t pos,
                                                       struct timespec *out)
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &tick);
    if (pos < w->stamp_end && tick.tv_nsec == w->stamp_tick.tv_nsec &&
        tick.tv_sec == w->stamp_tick.tv_sec) {
        *out = w->stamp;
        return;
    }
    w->stamp_tick = tick;
    w->stamp_end = pos != UINT64_MAX ? cx__queue_pushed_end(&w->pool->q, pos) : 0;
    ck_pr_fence_load();
#else
    (void)pos;
#endif
    clock_gettime(CLOCK_MONOTONIC, &w->stamp);
    *out = w->stamp;
}

void cx__pool_job_begin_queued(struct cx__job_mark *m, cx_context *ctx, const void *job)
{
    struct worker *w = self_worker;
    m->w = w;
    m->prev = NULL;
    if (w == NULL)
        return;
    /* Only the job just taken off the queue has a known position; it
     * begins once. */
    uint64_t pos = job == w->popped ? w->popped_pos : UINT64_MAX;
    w->popped = NULL;
    /* A job run inside another (a wait that runs queued work inline)
     * shows for its duration, then the outer one again. */
    m->prev = ck_pr_load_ptr(&w->slot.ctx);
    m->prev_started = w->slot.started;
    if (m->prev != NULL)
        cx__wslot_withdraw(&w->slot);
    struct timespec t;
    stamp(w, pos, &t);
    cx__wslot_publish(&w->slot, ctx, &t);
}

void cx__pool_job_begin(struct cx__job_mark *m, cx_context *ctx)
{
    cx__pool_job_begin_queued(m, ctx, NULL);
}

void cx__pool_job_end(struct cx__job_mark *m)
{
    struct worker *w = m->w;
    if (w == NULL)
        return;
    cx__wslot_withdraw(&w->slot);
    if (m->prev != NULL)
        cx__wslot_publish(&w->slot, m->prev, &m->prev_started);
}

/* ------------------------------------------------------------- job memory */

/* Job memory. A fire-and-forget job is allocated by its submitter and
 * freed by the worker that ran it. With malloc that free crosses threads:
 * it misses the worker's own cache and goes to the submitter's arena
 * under the arena's lock, and the submitter's next malloc misses its
 * cache too (some 350 instructions per job, and a lock both sides take).
 * So a worker that drops the last reference to a job of its own pool
 * keeps the memory in its spare ring (no locked instruction), and a
 * submit to that pool takes it back (one compare-and-swap), from the
 * worker named by spare_next or the one after it. A full ring frees, an
 * empty one mallocs. Only while block caching is on (alloc.h: malloc/free
 * is the allocator and no checker or sanitizer watches, so each of those
 * sees every block's own life), and never for a pool of the parent in a
 * fork child. The rings are emptied, with cx__free, when the pool is
 * destroyed; a job whose last reference goes elsewhere (a caller's
 * cx_future_release, maybe after the pool is gone) is freed as before.
 *
 * The ring, per worker: the worker fills slots (spare_fill, its own) and
 * publishes them SPARE_BATCH at a time (spare_pub); submitters take
 * published slots (spare_took, compare-and-swap; a slot is read before
 * the compare-and-swap that claims it, ck_ring's way). Publishing in
 * batches moves the published count's line, and the slots' lines, to a
 * submitter once per batch instead of once per job; the worker checks
 * room against its copy of spare_took (spare_seen, never above it) and
 * reads spare_took itself only when the copy says full. Up to
 * SPARE_BATCH - 1 blocks wait unpublished: only memory, no job waits on
 * them (a submit that finds nothing published mallocs).
 *
 * Ordering: everything the worker did with the job (it held the last
 * reference: refcount.h's acquire fence ordered every other holder's
 * accesses before) happens before its store fence and release of
 * spare_pub; the submitter loads spare_pub, then a load fence, reads the
 * slot and wins the compare-and-swap before it writes the memory. The
 * worker refills a slot only after it has read a spare_took past it,
 * followed by an acquire fence (load-load and load-store): the taker read
 * that slot before its compare-and-swap. */

#define SPARE_BATCH 8u

/* A block of sizeof(cx_future) a worker of p kept, now the caller's, or
 * NULL (then malloc). The caller checked p's generation (check). */
static inline void *job_mem(cx_pool *p)
{
    if (!cx__caching())
        return NULL;
    unsigned int n = p->nthreads;
    unsigned int mask = p->spare_size - 1;
    unsigned int i = ck_pr_load_uint(&p->spare_next);
    if (i >= n)
        i = 0;
    for (unsigned int k = 0; k < 2 && k < n; k++) {
        struct worker *w = &p->workers[i];
        unsigned int c = ck_pr_load_uint(&w->spare_took);
        for (;;) {
            ck_pr_fence_load();
            if (c == ck_pr_load_uint(&w->spare_pub))
                break;
            ck_pr_fence_load();
            void *mem = ck_pr_load_ptr(&w->spare_slots[c & mask]);
            if (ck_pr_cas_uint_value(&w->spare_took, c, c + 1, &c)) {
                if (k != 0)
                    ck_pr_store_uint(&p->spare_next, i);
                return mem;
            }
        }
        i = i + 1 < n ? i + 1 : 0;
    }
    return NULL;
}

/* cx__pool_job_keep by w, a worker of p (of this generation). */
static inline bool keep(cx_pool *p, struct worker *w, void *mem)
{
    if (!cx__caching())
        return false;
    unsigned int f = w->spare_fill;
    if (f - w->spare_seen >= p->spare_size) {
        w->spare_seen = ck_pr_load_uint(&w->spare_took);
        ck_pr_fence_acquire();
        if (f - w->spare_seen >= p->spare_size)
            return false;
    }
    ck_pr_store_ptr(&w->spare_slots[f & (p->spare_size - 1)], mem);
    w->spare_fill = ++f;
    if (f % SPARE_BATCH == 0) {
        ck_pr_fence_store();
        ck_pr_store_uint(&w->spare_pub, f);
    }
    return true;
}

bool cx__pool_job_keep(cx_pool *p, void *mem)
{
    struct worker *w = self_worker;
    if (w == NULL || w->pool != p || cx__forkgen_stale(p->gen))
        return false;
    return keep(p, w, mem);
}

/* A QUEUED job of pool (borrowed; f->pool) that will run fn(arg) in ctx.
 * ctx is consumed on success (the job owns it) and left to the caller on
 * failure. With handle, the job starts with two references (pool +
 * caller) and can be waited on; without, one (pool: fire and forget).
 * gen: the pool's fork generation (the caller checked it is this one).
 * New, or NULL (CX_ENOMEM). Its memory may be a spare of pool's workers
 * ("Job memory" above). Inline in submit: kind and handle are constants
 * there. Fields only a handle's waiters and listeners read (waiters,
 * listeners) are set only with one; next is set by whichever list takes
 * the job (strand.c, cx__pool_ready), status and result by its end. */
static inline __attribute__((always_inline)) cx_future *
future_new(cx_pool *pool, void *(*fn)(void *), void *arg, cx_context *ctx, enum cx__job_ctx kind,
           bool handle, unsigned int gen)
{
    /* The capture first: leaving CX_VAR_LOCAL variables out may allocate. */
    cx__node *root = NULL;
    if (kind == CX__JOB_SNAPSHOT && cx__capture_root(&root) != 0)
        return NULL;
    cx_future *f = job_mem(pool);
    if (f == NULL && (f = cx__malloc(sizeof(*f))) == NULL) {
        cx__map_release(root);
        return NULL;
    }
    cx__ref_init(&f->ref);
    f->state = CX__F_QUEUED;
    f->gen = gen;
    f->sync = handle;
    f->status = 0; /* a cancelled job's (never read: outcome) */
    f->fn = fn;
    f->arg = arg;
    f->pool = pool;
    f->strand_ctx = NULL;
    f->strand = NULL;
    f->kind = (unsigned char)kind;
    if (handle) {
        f->waiters = 0;
        f->listeners = NULL;
        cx__ref_inc(&f->ref); /* the caller's */
        if (pthread_mutex_init(&f->mu, NULL) != 0) {
            cx__map_release(root);
            cx__free(f); /* a spare too: the pool's rings lose nothing */
            return NULL;
        }
        cx__ec_init(&f->ec);
        CX__CK_UNTRACKED(&f->ec, sizeof(f->ec)); /* until cx__future_unref */
    }
    /* Last: the job's own context takes over the captured map. It has a
     * lock (not private), so that cx_pool_inspect can copy it while the
     * job sets variables in it. The scope: the one the snapshot holds
     * (borrowed: the current map's binding is shared with the capture),
     * or ctx's (retained). */
    if (kind != CX__JOB_GIVEN)
        f->ctx = cx__context_embed_shared(&f->snapshot, root);
    if (kind == CX__JOB_SNAPSHOT) {
        f->scope = cx__scope_current();
    } else if (kind == CX__JOB_EMPTY) {
        f->scope = NULL;
    } else {
        f->ctx = ctx;
        f->scope = cx__scope_of(ctx);
    }
    return f;
}

/* Frees the memory kept in every worker's spare ring, published or not
 * (destroy: the workers are gone, or never ran). */
static void drop_spares(cx_pool *p)
{
    for (unsigned int i = 0; i < p->nthreads; i++) {
        struct worker *w = &p->workers[i];
        if (w->spare_slots == NULL)
            continue;
        for (unsigned int c = w->spare_took; c != w->spare_fill; c++)
            cx__free(w->spare_slots[c & (p->spare_size - 1)]);
        cx__free(w->spare_slots);
    }
}

/* ------------------------------------------------ SPEC 5.3 (scopes) hooks */

cx_pool *cx__pool_self(void) { return self_pool; }

/* Drain keeps nested work: a closed pool refuses a submit, except one
 * made by a job of its own while it drains (not when cancelling). Such a
 * submitter is a worker in the middle of a job, so it has not left, and
 * it takes the job off the queue itself if every other worker has: the
 * "cannot lose a job" argument below holds as for any submit. */
static bool refuses(cx_pool *p)
{
    unsigned int fl = ck_pr_load_uint(&p->flags);
    return (fl & CX__P_CLOSED) && (self_pool != p || (fl & CX__P_CANCEL));
}

/* A scope cancel's wake-up of the submitters blocked on a full queue
 * (each looks at its own scope and sleeps again if it is not its). */
static void wake_space(void *arg) { cx__ec_bump(&((cx_pool *)arg)->space); }

/* The blocking part of submit: waits for a place, announced in `blocked`
 * (locked) before each retry: a worker that gives a place back before the
 * announcement is seen by the retry, one that gives it back after sees
 * `blocked` and bumps `space` after our read of the count, so the wait
 * returns. Returns early with the caller's scope: CX_ECANCELED, or
 * CX_ETIMEDOUT at its deadline. 0 with a place reserved, or a CX_E*. */
static int wait_for_place(cx_pool *p)
{
    struct cx__scope_waiter sw;
    struct timespec buf;
    const struct timespec *until;
    int rc = cx__scope_wait_begin(&sw, wake_space, p, NULL, &buf, &until);
    if (rc != 0)
        return rc;
    ck_pr_inc_uint(&p->blocked);
    for (;;) {
        ck_pr_fence_atomic_load();
        uint32_t seen = cx__ec_value(&p->space);
        if (refuses(p)) {
            rc = CX_ESHUTDOWN;
            break;
        }
        if (cx__queue_reserve(&p->q))
            break;
        /* The canceller stores the flag before it bumps `space`. */
        if (sw.scope != NULL && cx__scope_cancelled(sw.scope)) {
            rc = CX_ECANCELED;
            break;
        }
        if (!cx__ec_wait_until(&p->space, seen, until)) {
            rc = CX_ETIMEDOUT;
            break;
        }
    }
    ck_pr_dec_uint(&p->blocked);
    cx__scope_wait_end(&sw);
    return rc;
}

/* ---------------------------------------------------------------- workers */

/* A job this worker took off the queue without running it: counted as
 * cancelled unless an inline run (which counted it) claimed it first. Each
 * job is taken off the queue once, so it is counted once. */
static void count_if_cancelled(cx_pool *p, cx_future *f)
{
    unsigned int st = ck_pr_load_uint(&f->state);
    if (st == CX__F_CANCELLING || st == CX__F_CANCELLED)
        cx__pool_count(p, CX__STAT_CANCELLED);
}

/* Runs or discards one job taken off the queue; consumes the pool's
 * reference to it. */
static void handle(cx_pool *p, cx_future *f)
{
    if (f->strand != NULL) {
        if (cx__strand_handle(cx__tstate_cur(), f,
                              (ck_pr_load_uint(&p->flags) & CX__P_CANCEL) != 0))
            return; /* parked: our reference went with it */
    } else if (ck_pr_load_uint(&p->flags) & CX__P_CANCEL) {
        (void)cx__future_cancel_queued(f, true);
        count_if_cancelled(p, f);
    } else if (cx__future_claim(f)) {
        /* Skipped without running if its scope is cancelled or expired
         * (future.c); claimed already by an inline run: dropped. Counted
         * there. */
        cx__future_run_claimed(f);
    } else {
        count_if_cancelled(p, f);
    }
    cx__future_unref(f);
}

/* Worker w runs a job alone (future.h: fire and forget, no strand) it
 * just took off the queue, and drops the pool's reference, its last:
 * cx__future_claim, cx__future_run_claimed and cx__future_unref, with
 * what they do for other jobs left out. Nobody else can reach the job,
 * so it needs no claim; this is not a nested run (the
 * worker's slot is empty), so the slot needs no outer job restored; the
 * worker is of p, so the outcome goes to its own counter and the memory
 * to its spare ring (a worker exists only in the generation its pool was
 * made in: no fork check). Its state, status and result are written by
 * nobody: no one reads them before the memory is freed or reused (a new
 * job's creation sets them). */
static void run_alone(cx_pool *p, struct worker *w, cx_future *f)
{
    /* The scope is alive: the context holding it is not released yet. */
    int rc = f->scope != NULL ? cx__scope_check(f->scope) : 0;
    enum cx__pool_stat what;
    if (rc == 0) {
        struct timespec t;
        stamp(w, w->popped_pos, &t);
        cx__wslot_publish(&w->slot, f->ctx, &t);
        rc = cx_context_run(f->ctx, f->fn, f->arg, NULL);
        cx__wslot_withdraw(&w->slot); /* before the context goes */
        what = rc == 0 ? CX__STAT_COMPLETED : CX__STAT_FAILED_BUSY;
    } else {
        what = rc == CX_ETIMEDOUT ? CX__STAT_TIMED_OUT : CX__STAT_CANCELLED;
    }
    cx__wslot_count(&w->slot, what);
    /* The scope is borrowed from the context (an alone job's is its own:
     * given contexts come with a strand), so it goes with it. */
    cx_context_release(f->ctx);
    cx__future_forget(f);
    if (!keep(p, w, f))
        cx__free(f);
}

/* True when a worker may leave: the pool is closed and no place is
 * reserved (so no job is queued or about to be). Read in that order. */
static bool finished(cx_pool *p)
{
    if (!(ck_pr_load_uint(&p->flags) & CX__P_CLOSED))
        return false;
    ck_pr_fence_load();
    return cx__queue_reserved(&p->q) == 0 && ck_pr_load_uint(&p->parked) == 0;
}

/* Bumps every worker's count: the end, seen by all. p borrowed. */
static void wake_all(cx_pool *p)
{
    for (unsigned int i = 0; i < p->nthreads; i++)
        cx__ec_bump(&p->workers[i].ec);
}

/* Wakes one idle worker, if there is one: claims its idle flag with a
 * compare-and-swap (two submitters never spend their wake-up on the same
 * sleeper), then bumps that worker's own count, which wakes it alone. A
 * shared count would wake every sleeper for each job, and all but one go
 * straight back to sleep. Scans from worker 0: the same few workers stay
 * warm while the load is light. p borrowed. */
static void wake_one(cx_pool *p)
{
    for (unsigned int i = 0; i < p->nthreads; i++) {
        struct worker *w = &p->workers[i];
        if (ck_pr_load_uint(&w->idle) != 0 && ck_pr_cas_uint(&w->idle, 1, 0)) {
            cx__ec_bump(&w->ec);
            return;
        }
    }
}

/* Takes the next job off the queue and gives its place back (waking a
 * blocked submitter if there is one); NULL if the queue is empty. The
 * caller owns the queue's reference to the job. */
static inline __attribute__((always_inline)) cx_future *take(cx_pool *p, struct worker *w)
{
    if (ck_pr_load_uint(&p->nready) != 0) {
        pthread_mutex_lock(&p->ready_mu);
        cx_future *r = p->ready_head;
        if (r != NULL) {
            p->ready_head = r->next;
            if (p->ready_head == NULL)
                p->ready_tail = NULL;
            ck_pr_dec_uint(&p->nready);
        }
        pthread_mutex_unlock(&p->ready_mu);
        if (r != NULL) {
            cx__pool_parked(p, -1); /* a worker holds it now */
            return r;
        }
    }
    uint64_t pos;
    cx_future *f = cx__queue_pop(&p->q, &pos);
    if (f == NULL)
        return NULL;
    w->popped = f; /* the start time's hint (stamp) */
    w->popped_pos = pos;
    /* The pop gave the place back with a locked operation: a submitter that
     * registered in `blocked` before it is seen here, and one that
     * registers after it finds the place (see submit). */
    ck_pr_fence_atomic_load();
    if (ck_pr_load_uint(&p->blocked) != 0)
        cx__ec_bump(&p->space);
    /* Let the sleeping workers see the end. Of the give-backs that empty
     * a closed pool, the last one's look sees no place taken (a place
     * taken meanwhile belongs to a submitter that wakes all itself when
     * refused, or to a job of the pool's own, whose worker takes it). The
     * submitters' line is read only once the pool is closed. */
    if ((ck_pr_load_uint(&p->flags) & CX__P_CLOSED) && cx__queue_reserved(&p->q) == 0)
        wake_all(p);
    return f;
}

/* A worker thread. arg: its struct worker (borrowed from the pool, which
 * outlives the thread); installs the state prepared for it (which the
 * thread then owns) and serves the queue until finished(). */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    cx_pool *p = w->pool;
    (void)cx__tstate_install(w->st);
    self_pool = p;
    self_worker = w;
    for (;;) {
        cx_future *f = take(p, w);
        if (f == NULL) {
            if (finished(p))
                break;
            /* Give the CPU to whoever else is ready to run on it (most
             * often the submitter, with more CPU-bound threads than CPUs)
             * and look once more before announcing the sleep: a worker
             * that drains the queue faster than it fills would otherwise
             * sleep and be woken for nearly every job, a futex wait and
             * wake (two context switches, and the waker's system call)
             * each time. With nobody else ready, the yield returns at
             * once. Once, not in a loop: an idle pool does not poll. */
            sched_yield();
            f = take(p, w);
        }
        if (f == NULL) {
            /* Read our count, raise our flag, announce the sleep
             * (locked), then look again: a submitter that pushed before
             * the announcement is seen by this second look; one that
             * pushes after it sees `idle`, finds our flag (raised before
             * the locked announcement) unless another submitter claimed
             * it, and the claimer bumps our count after our read of it,
             * so the wait returns. A claim we did not need (we found work
             * ourselves) only makes a later wait return early. */
            uint32_t seen = cx__ec_value(&w->ec);
            ck_pr_store_uint(&w->idle, 1);
            ck_pr_inc_uint(&p->idle);
            ck_pr_fence_atomic_load();
            f = take(p, w);
            if (f == NULL && !finished(p))
                cx__ec_wait(&w->ec, seen);
            ck_pr_dec_uint(&p->idle);
            ck_pr_store_uint(&w->idle, 0);
            if (f == NULL)
                continue;
        }
        if (cx__future_alone(f) && !(ck_pr_load_uint(&p->flags) & CX__P_CANCEL))
            run_alone(p, w, f);
        else
            handle(p, f);
        w->popped = NULL; /* f may be gone, its memory reused */
    }
    self_pool = NULL;
    self_worker = NULL;
    cx__tstate_end_here(); /* only if no key destructor will */
    return NULL;
}

/* Joins every worker once (later callers wait for the first). p borrowed. */
static void join_all(cx_pool *p)
{
    pthread_mutex_lock(&p->join_lock);
    if (!p->joined) {
        for (unsigned int i = 0; i < p->nthreads; i++)
            pthread_join(p->workers[i].tid, NULL);
        p->joined = true;
    }
    pthread_mutex_unlock(&p->join_lock);
}

/* Sets flags (CLOSED at least) and wakes every sleeper. p borrowed. */
static void close_pool(cx_pool *p, unsigned int flags)
{
    ck_pr_or_uint(&p->flags, flags);
    wake_all(p);
    cx__ec_bump(&p->space);
}

/* Frees the pool's memory (p is consumed); workers gone, queue empty. */
static void destroy(cx_pool *p)
{
    for (unsigned int i = 0; i < p->nthreads; i++) {
        CX__CK_TRACKED(&p->workers[i].ec, sizeof(p->workers[i].ec));
        CX__CK_TRACKED(&p->workers[i].idle, sizeof(p->workers[i].idle));
    }
    for (unsigned int i = 0; i < p->nslots; i++)
        cx__wslot_destroy(&p->workers[i].slot);
    drop_spares(p);
    CX__CK_TRACKED(&p->space, sizeof(p->space));
    CX__CK_TRACKED(p->stat_other, sizeof(p->stat_other));
    cx__queue_destroy(&p->q);
    cx__free(p->workers);
    cx__free(p);
}

/* ------------------------------------------------------------------- new */

static unsigned int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > (long)CX__POOL_MAX_THREADS ? CX__POOL_MAX_THREADS : (unsigned int)n;
}

/* Starts the workers with every signal blocked. 0, or CX_EAGAIN after
 * stopping and joining the ones started (the others' states freed). */
static int start_workers(cx_pool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    unsigned int i;
    int e = 0;
    for (i = 0; i < p->nthreads; i++) {
        e = pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]);
        if (e != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e == 0)
        return 0;
    close_pool(p, CX__P_CLOSED);
    for (unsigned int j = 0; j < i; j++)
        pthread_join(p->workers[j].tid, NULL);
    for (unsigned int j = i; j < p->nthreads; j++)
        cx__free(p->workers[j].st);
    return CX_EAGAIN;
}

/* *out receives a new pool (free it with cx_pool_free). */
int cx_pool_new(cx_pool **out, const cx_pool_opts *opts)
{
    if (out == NULL)
        return CX_EINVAL;
    unsigned int threads = opts != NULL ? opts->threads : 0;
    unsigned int qsize = opts != NULL ? opts->queue_size : 0;
    if (threads > CX__POOL_MAX_THREADS || qsize > CX__QUEUE_MAX)
        return CX_EINVAL;
    if (threads == 0)
        threads = online_cpus();
    if (qsize == 0)
        qsize = CX__POOL_DEFAULT_QUEUE;
    int rc = cx__forkgen_register();
    if (rc != 0)
        return rc;

    cx_pool *p = cx__malloc(sizeof(*p));
    if (p == NULL)
        return CX_ENOMEM;
    memset(p, 0, sizeof(*p));
    if (cx__queue_init(&p->q, qsize) != 0) {
        cx__free(p);
        return CX_ENOMEM;
    }
    p->workers = cx__malloc(threads * sizeof(*p->workers));
    if (p->workers == NULL) {
        cx__queue_destroy(&p->q);
        cx__free(p);
        return CX_ENOMEM;
    }
    p->nthreads = threads;
    /* Spare rings: together about a full queue's worth of jobs (a burst
     * of submits that fills the queue is followed by as many frees), 16
     * to 4096 each (two batches at least): at most about twice the memory
     * of a full queue's jobs stays with the pool between bursts. */
    p->spare_size = 16;
    while (p->spare_size < 4096 && p->spare_size <= qsize / threads)
        p->spare_size <<= 1;
    CX__CK_UNTRACKED(p->stat_other, sizeof(p->stat_other));
    for (unsigned int i = 0; i < threads; i++) {
        p->workers[i].spare_slots = NULL;
        p->workers[i].spare_fill = p->workers[i].spare_seen = 0;
        p->workers[i].spare_pub = p->workers[i].spare_took = 0;
    }
    for (unsigned int i = 0; i < threads; i++) {
        struct worker *w = &p->workers[i];
        w->spare_slots = cx__malloc(p->spare_size * sizeof(*w->spare_slots));
        if (w->spare_slots == NULL) {
            while (i-- > 0)
                cx__tstate_free(p->workers[i].st);
            destroy(p);
            return CX_ENOMEM;
        }
        if (cx__wslot_init(&p->workers[i].slot) != 0) {
            while (i-- > 0)
                cx__tstate_free(p->workers[i].st);
            destroy(p);
            return CX_ENOMEM;
        }
        p->nslots++;
        p->workers[i].pool = p;
        p->workers[i].idle = 0;
        p->workers[i].stamp_end = 0; /* no reading yet: none is reused */
        p->workers[i].popped = NULL;
        p->workers[i].popped_pos = UINT64_MAX;
        p->workers[i].stamp = p->workers[i].stamp_tick = (struct timespec){0, 0};
        cx__ec_init(&p->workers[i].ec);
        CX__CK_UNTRACKED(&p->workers[i].ec, sizeof(p->workers[i].ec));
        CX__CK_UNTRACKED(&p->workers[i].idle, sizeof(p->workers[i].idle));
        p->workers[i].st = cx__tstate_new();
        if (p->workers[i].st == NULL) {
            while (i-- > 0)
                cx__tstate_free(p->workers[i].st);
            destroy(p);
            return CX_ENOMEM;
        }
    }
    if (pthread_mutex_init(&p->join_lock, NULL) != 0) {
        for (unsigned int i = 0; i < threads; i++)
            cx__tstate_free(p->workers[i].st);
        destroy(p);
        return CX_ENOMEM;
    }
    if (pthread_mutex_init(&p->ready_mu, NULL) != 0) {
        pthread_mutex_destroy(&p->join_lock);
        for (unsigned int i = 0; i < threads; i++)
            cx__tstate_free(p->workers[i].st);
        destroy(p);
        return CX_ENOMEM;
    }
    cx__ec_init(&p->space);
    CX__CK_UNTRACKED(&p->space, sizeof(p->space));
    p->gen = cx__forkgen();
    rc = start_workers(p);
    if (rc != 0) {
        pthread_mutex_destroy(&p->ready_mu);
        pthread_mutex_destroy(&p->join_lock);
        destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---------------------------------------------------------------- submit */

/* Queues fn(arg) to run in ctx (an owned reference, consumed: released on
 * failure). *fut (if fut) receives a new reference to the future.
 * kind GIVEN: ctx is a reference to the context the job runs in
 * (consumed). SNAPSHOT (the caller's current context minus its
 * CX_VAR_LOCAL variables, captured now) and EMPTY (a fresh empty context)
 * live inside the job: one allocation per job. Only the job's runner
 * writes them; cx_pool_inspect may read them, under their striped lock. */
static inline void push(cx_pool *p, cx_future *f);

static inline __attribute__((always_inline)) int submit(cx_pool *p, enum cx__job_ctx kind,
                                                       cx_context *ctx, void *(*fn)(void *),
                                                       void *arg, cx_future **fut, bool block)
{
    /* A given context's jobs form its strand; the strand is made first,
     * so nothing can fail after the job is queued. */
    struct cx__strand *strand = NULL;
    if (kind == CX__JOB_GIVEN && (strand = cx__strand_of(ctx)) == NULL) {
        cx_context_release(ctx);
        return CX_ENOMEM;
    }
    /* f->pool = p also lets a waiting worker of p run it inline. */
    cx_future *f = future_new(p, fn, arg, ctx, kind, fut != NULL, p->gen);
    if (f == NULL) {
        cx_context_release(ctx);
        return CX_ENOMEM;
    }
    if (strand != NULL) {
        f->strand_ctx = cx_context_retain(ctx);
        f->strand = cx__strand_retain(strand);
    }
    int rc;
    if (!cx__queue_reserve(&p->q)) {
        if (!block) {
            rc = CX_EAGAIN;
            goto fail;
        }
        rc = wait_for_place(p);
        if (rc != 0)
            goto fail;
    }
    /* Ordered after the reservation (both locked): see "Why it cannot
     * lose a job" above. */
    ck_pr_fence_atomic_load();
    if (refuses(p)) {
        cx__queue_unreserve_unused(&p->q);
        wake_all(p);
        rc = CX_ESHUTDOWN;
        goto fail;
    }
    /* Counted as submitted by its reservation (queue.h), before the
     * push: nobody sees it complete uncounted. */
    if (fut != NULL)
        *fut = f; /* before the push: afterwards f may complete any time */
    if (strand != NULL)
        cx__strand_enqueue(strand, f);
    else
        push(p, f);
    return 0;
fail:
    /* Nobody else ever saw f: its last reference undoes it whole (its
     * context, strand references and scope; cx__future_unref). */
    if (fut != NULL)
        cx__future_unref(f);
    cx__future_unref(f);
    return rc;
}

/* Pushes f, which holds a queue place, and wakes an idle worker (inline
 * in submit; cx__pool_push for strand.c). */
static inline __attribute__((always_inline)) void push(cx_pool *p, cx_future *f)
{
    cx__queue_push(&p->q, f);
    /* The push ends with a plain store: a full fence orders it before the
     * read of `idle` (see worker_main). No idle worker: no bump, no shared
     * write. The C11 sequentially consistent fence is a locked no-op on
     * the stack on x86-64 (ck_pr_fence_memory's mfence costs more, and
     * orders nothing more that matters here: no non-temporal stores). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (ck_pr_load_uint(&p->idle) != 0)
        wake_one(p);
}

void cx__pool_push(cx_pool *p, cx_future *f) { push(p, f); }

/* A parked strand job comes back (strand.c): behind the others handed
 * back, ahead of the queue (it waited its turn already). The same wake-up
 * protocol as a push: the locked increment of nready, then the read of
 * `idle`, against the sleeper's announcement, then its second look. */
void cx__pool_ready(cx_pool *p, cx_future *f)
{
    f->next = NULL;
    pthread_mutex_lock(&p->ready_mu);
    if (p->ready_tail != NULL)
        p->ready_tail->next = f;
    else
        p->ready_head = f;
    p->ready_tail = f;
    ck_pr_inc_uint(&p->nready);
    pthread_mutex_unlock(&p->ready_mu);
    ck_pr_fence_atomic_load();
    if (ck_pr_load_uint(&p->idle) != 0)
        wake_one(p);
}

void cx__pool_parked(cx_pool *p, int delta)
{
    if (delta > 0) {
        ck_pr_inc_uint(&p->parked);
        return;
    }
    bool zero;
    ck_pr_dec_uint_zero(&p->parked, &zero);
    /* The last parked job of a draining pool is taken: sleepers that
     * stayed for it may leave (finished()). */
    if (zero && (ck_pr_load_uint(&p->flags) & CX__P_CLOSED))
        wake_all(p);
}

/* Checks shared by every submit; 0 if p (borrowed) may take a job. */
static inline __attribute__((always_inline)) int check(cx_pool *p, void *(*fn)(void *))
{
    if (p == NULL || fn == NULL)
        return CX_EINVAL;
    if (cx__forkgen_stale(p->gen))
        return CX_EFORK;
    if (refuses(p))
        return CX_ESHUTDOWN;
    return 0;
}

/* fn(arg) will run in a copy of the caller's current context, taken now.
 * *fut (if fut) receives a new future reference. Blocks while the queue
 * is full. */
int cx_pool_submit(cx_pool *p, void *(*fn)(void *), void *arg, cx_future **fut)
{
    int rc = check(p, fn);
    return rc != 0 ? rc : submit(p, CX__JOB_SNAPSHOT, NULL, fn, arg, fut, true);
}

/* As cx_pool_submit, but CX_EAGAIN instead of blocking. */
int cx_pool_try_submit(cx_pool *p, void *(*fn)(void *), void *arg, cx_future **fut)
{
    int rc = check(p, fn);
    return rc != 0 ? rc : submit(p, CX__JOB_SNAPSHOT, NULL, fn, arg, fut, false);
}

/* fn(arg) will run in ctx itself (borrowed by the caller; the job takes
 * its own reference until it has run), or in a new empty context if ctx
 * is NULL. Blocks while the queue is full. */
int cx_pool_submit_in(cx_pool *p, cx_context *ctx, void *(*fn)(void *), void *arg,
                      cx_future **fut)
{
    int rc = check(p, fn);
    if (rc != 0)
        return rc;
    if (ctx == NULL)
        return submit(p, CX__JOB_EMPTY, NULL, fn, arg, fut, true);
    return submit(p, CX__JOB_GIVEN, cx_context_retain(ctx), fn, arg, fut, true);
}

/* -------------------------------------------------------- shutdown, free */

/* Closes p (borrowed: still to be freed with cx_pool_free) and waits for
 * its workers to finish the running jobs and, unless cancel_pending, the
 * queued ones; cancelled jobs complete with CX_ECANCELED and their
 * contexts are released. Idempotent; a later call with cancel_pending
 * cancels what an earlier one is still draining. */
int cx_pool_shutdown(cx_pool *p, bool cancel_pending)
{
    if (p == NULL)
        return CX_EINVAL;
    if (cx__forkgen_stale(p->gen))
        return CX_EFORK;
    if (self_pool == p)
        return CX_EBUSY;
    close_pool(p, CX__P_CLOSED | (cancel_pending ? CX__P_CANCEL : 0u));
    join_all(p);
    return 0;
}

/* In a fork child: cancels the parent's queued jobs (no waiter to wake:
 * the parent's threads are gone) and frees the pool and the states of the
 * workers that were alive at the fork. Jobs that were running then are
 * lost with the threads that ran them. */
static void free_stale(cx_pool *p)
{
    cx_future *f;
    uint64_t pos;
    while ((f = cx__queue_pop(&p->q, &pos)) != NULL) {
        (void)cx__future_cancel_queued(f, false);
        cx__future_unref(f);
    }
    /* Workers still had their states unless shutdown had begun (they may
     * then have exited and freed them). */
    if (!(ck_pr_load_uint(&p->flags) & CX__P_CLOSED)) {
        for (unsigned int i = 0; i < p->nthreads; i++) {
            cx__tstate_free(p->workers[i].st);
        }
    }
    destroy(p);
}

/* cx_pool_shutdown(p, false), then frees p (consumed). Futures obtained
 * from p stay valid (each is released by its holder). */
void cx_pool_free(cx_pool *p)
{
    if (p == NULL)
        return;
    if (cx__forkgen_stale(p->gen)) {
        free_stale(p);
        return;
    }
    if (self_pool == p)
        return;
    (void)cx_pool_shutdown(p, false);
    pthread_mutex_destroy(&p->ready_mu);
    pthread_mutex_destroy(&p->join_lock);
    destroy(p);
}

/* ----------------------------------------------------------- introspection */

/* Calls fn once per worker with what it does now (see cxpool.h); stops at
 * and returns fn's first non-zero return. CX_EINVAL for NULL p or fn,
 * CX_EFORK in a fork child, CX_ENOMEM if a worker's context cannot be
 * copied (fn is not called for it, nor for the workers after it). Each
 * w->ctx is a new reference that fn's caller (fn) must release. */
int cx_pool_inspect(cx_pool *p, int (*fn)(const cx_worker_info *w, void *arg), void *arg)
{
    if (p == NULL || fn == NULL)
        return CX_EINVAL;
    if (cx__forkgen_stale(p->gen))
        return CX_EFORK;
    for (unsigned int i = 0; i < p->nthreads; i++) {
        cx_worker_info w;
        int rc = cx__wslot_read(&p->workers[i].slot, &w);
        if (rc != 0)
            return rc;
        w.index = i;
        /* fn runs outside the slot's lock: it may take its time. */
        rc = fn(&w, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Sums the workers' counters (each exact, the sum a snapshot: the
 * counters are read one after the other while jobs go on). */
int cx_pool_stats_get(cx_pool *p, cx_pool_stats *out)
{
    if (p == NULL || out == NULL)
        return CX_EINVAL;
    if (cx__forkgen_stale(p->gen))
        return CX_EFORK;
    uint64_t sum[CX__STAT_N];
    unsigned int running = 0;
    for (int k = 0; k < CX__STAT_N; k++)
        sum[k] = ck_pr_load_64(&p->stat_other[k]);
    for (unsigned int i = 0; i < p->nthreads; i++) {
        struct cx__wslot *s = &p->workers[i].slot;
        for (int k = 0; k < CX__STAT_N; k++)
            sum[k] += cx__wslot_counter(s, (enum cx__pool_stat)k);
        running += cx__wslot_busy(s);
    }
    out->submitted = cx__queue_accepted(&p->q);
    out->completed = sum[CX__STAT_COMPLETED];
    out->cancelled = sum[CX__STAT_CANCELLED];
    out->timed_out = sum[CX__STAT_TIMED_OUT];
    out->failed_busy = sum[CX__STAT_FAILED_BUSY];
    out->queued = cx__queue_reserved(&p->q) + ck_pr_load_uint(&p->parked);
    out->running = running;
    out->threads = p->nthreads;
    return 0;
}
