/* stress.c - the stress/soak program.
 *
 * Three parts run at the same time:
 *
 *  1. Pool propagation. N producer threads each submit M jobs to a pool
 *     (submit, try_submit, submit_in of a copy; some with futures, some
 *     fire and forget). Before each submit the producer sets several
 *     variables, one of them owning a heap value (destroy callback), to
 *     values unique to that job, and after it changes some of them back
 *     (tokens): the job must see exactly the values at submit time. Every
 *     few jobs, the job sets a variable and submits a nested job (to the
 *     same pool with try_submit, else to a second pool) that must see the
 *     producer's values plus the job's own. Each job also checks that
 *     nothing a previous job set on the same worker is visible. After the
 *     pools are freed every job must have run exactly once (lost = jobs
 *     that never ran).
 *
 *  2. Readers and writers. Writer threads run inside shared contexts
 *     (cx_context_run) and set variables in a fixed order every iteration;
 *     reader threads inspect those contexts meanwhile (copy, get, len,
 *     contains, foreach, equal) and check that every snapshot is one
 *     consistent map: A >= B >= C >= D >= A - 1, len = the bindings
 *     foreach visits, values of a destroy variable alive while a copy
 *     holds them, A never decreasing.
 *
 *  3. Thread churn. The main thread creates and joins short-lived threads
 *     with cx_thread_create (every 8th with cx_thread_create_in); each
 *     checks the context it inherited. The resident set size may not grow
 *     by more than a bound between the first and the second half.
 *
 * At the end the library's live allocation count (a counting allocator
 * installed with cx_set_allocator) must be back to where it started, and
 * every owned value destroyed exactly once.
 *
 * Sizes (environment; jobs, iterations and threads scale with
 * CX_TEST_SCALE, percent, unless given explicitly):
 *   STRESS_PRODUCERS (4)  STRESS_JOBS (3000 per producer)  STRESS_NEST (4:
 *   every 4th job nests)  STRESS_POOL_THREADS (4)  STRESS_QUEUE (64)
 *   STRESS_WRITERS (2)  STRESS_READERS (2)  STRESS_ITERS (20000)
 *   STRESS_THREADS (10000)  STRESS_RSS_KB (8192: allowed growth)
 *
 * Prints: stress: jobs=... mismatches=0 lost=0 threads=...
 * Exit status 1 if anything is off.
 */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cx_test.h"
#include "cxpool.h"
#include "cxvars.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define STRESS_SANITIZER 1
#endif
#endif
#ifndef STRESS_SANITIZER
#include <valgrind/valgrind.h>
#endif

#define TAG(n) ((void *)(uintptr_t)(n))

/* ================================================================ config */

static unsigned n_producers, n_jobs, nest_every, pool_threads, queue_size;
static unsigned n_writers, n_readers, n_iters, n_threads;
static long rss_bound_kb;

static unsigned env_or(const char *name, unsigned dflt, bool scaled)
{
    const char *s = getenv(name);
    if (s != NULL && *s != '\0')
        return (unsigned)strtoul(s, NULL, 10);
    return scaled ? cx_test_scaled(dflt) : dflt;
}

/* ================================================================ failures */

static atomic_ulong mismatches;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static void mismatch(const char *fmt, ...)
{
    unsigned long n = atomic_fetch_add(&mismatches, 1);
    if (n >= 20)
        return; /* the count says enough */
    va_list ap;
    pthread_mutex_lock(&report_lock);
    fprintf(stderr, "stress: MISMATCH: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&report_lock);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "stress: %s failed: %s\n", what, cx_err_name(rc));
    exit(2);
}

/* ================================================================ allocator */

static atomic_long live_blocks;

static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

static void count_free(void *p)
{
    if (p != NULL)
        atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
    free(p);
}

/* ================================================================ values */

#define MAGIC_LIVE 0x5a5a1234u
#define MAGIC_DEAD 0xdeadbeefu

/* The heap values of the destroy variables. */
struct owned {
    unsigned magic;
    unsigned long a, b; /* producer/job, or writer iteration */
};

static atomic_ulong owned_made, owned_destroyed;

static struct owned *owned_new(unsigned long a, unsigned long b)
{
    struct owned *o = malloc(sizeof(*o));
    if (o == NULL)
        die("malloc", CX_ENOMEM);
    o->magic = MAGIC_LIVE;
    o->a = a;
    o->b = b;
    atomic_fetch_add(&owned_made, 1);
    return o;
}

static void owned_destroy(void *p)
{
    struct owned *o = p;
    if (o->magic != MAGIC_LIVE)
        mismatch("destroy of a value that is not live (magic %x)", o->magic);
    o->magic = MAGIC_DEAD;
    free(o);
    atomic_fetch_add(&owned_destroyed, 1);
}

static cx_var *var_new(const char *name, bool owned)
{
    cx_var *v = NULL;
    cx_var_opts o = {.destroy = owned ? owned_destroy : NULL};
    int rc = cx_var_new(&v, name, &o);
    if (rc != 0)
        die("cx_var_new", rc);
    return v;
}

static void set_or_die(cx_var *v, void *val, cx_token **tok)
{
    int rc = cx_var_set(v, val, tok);
    if (rc != 0)
        die("cx_var_set", rc);
}

/* ================================================================ part 1 */

#define NV 4
static cx_var *PV[NV]; /* set by producers */
static cx_var *PD;     /* producer's owned value */
static cx_var *PJ;     /* set by a job before nesting */
static cx_var *PL;     /* set by every job: must never leak to the next */
static cx_pool *pool_a, *pool_b;

struct rec {
    unsigned long p, j;
    void *want[NV];
    struct owned *want_d;
    bool nest;
    int ran;       /* written by the one job that runs it */
    int submitted; /* nested: 1 if the job submitted it */
    void *want_j;
    struct rec *child;
};

static struct rec *recs, *child_recs;

static void check_view(struct rec *r, const char *who)
{
    for (int k = 0; k < NV; k++) {
        void *got = NULL;
        int rc = cx_var_get(PV[k], &got);
        if (rc != 0 || got != r->want[k])
            mismatch("%s p%lu j%lu: var %d = %s %p, submitted with %p", who, r->p, r->j, k,
                     cx_err_name(rc), got, r->want[k]);
    }
    void *d = NULL;
    if (cx_var_get(PD, &d) != 0 || d != r->want_d) {
        mismatch("%s p%lu j%lu: owned value %p, submitted with %p", who, r->p, r->j, d,
                 (void *)r->want_d);
    } else {
        const struct owned *o = d;
        if (o->magic != MAGIC_LIVE || o->a != r->p || o->b != r->j)
            mismatch("%s p%lu j%lu: owned value not live or wrong (%x %lu %lu)", who, r->p,
                     r->j, o->magic, o->a, o->b);
    }
    void *l;
    if (cx_var_get(PL, &l) != CX_ELOOKUP)
        mismatch("%s p%lu j%lu: sees a variable a previous job set", who, r->p, r->j);
}

static void *nested_job(void *arg)
{
    struct rec *r = arg;
    r->ran++;
    check_view(r, "nested job");
    void *jv = NULL;
    if (cx_var_get(PJ, &jv) != 0 || jv != r->want_j)
        mismatch("nested job p%lu j%lu: the parent job's value %p, expected %p", r->p, r->j,
                 jv, r->want_j);
    set_or_die(PL, TAG(2), NULL);
    return r;
}

static void *job(void *arg)
{
    struct rec *r = arg;
    r->ran++;
    check_view(r, "job");
    if (r->nest) {
        /* The nested job runs in a copy of this job's context, taken now:
         * it sees the producer's values and PJ. */
        struct rec *c = r->child;
        c->p = r->p;
        c->j = r->j;
        memcpy(c->want, r->want, sizeof(c->want));
        c->want_d = r->want_d;
        c->want_j = TAG(0x10000 + r->j);
        set_or_die(PJ, c->want_j, NULL);
        c->submitted = 1;
        int rc = cx_pool_try_submit(pool_a, nested_job, c, NULL);
        if (rc == CX_EAGAIN)
            rc = cx_pool_submit(pool_b, nested_job, c, NULL);
        if (rc != 0) {
            c->submitted = 0;
            mismatch("job p%lu j%lu: nested submit = %s", r->p, r->j, cx_err_name(rc));
        }
    }
    /* Stays in this job's copy: no later job on this worker may see it. */
    set_or_die(PL, TAG(1), NULL);
    set_or_die(PV[NV - 1], TAG(0xbad), NULL);
    return r;
}

#define FUT_RING 8

struct producer {
    pthread_t t;
    unsigned long id;
    unsigned long fut_checked;
};

static void wait_future(cx_future *f, struct rec *r)
{
    void *res = NULL;
    int rc = cx_future_result(f, &res);
    if (rc != 0 || res != r)
        mismatch("future of p%lu j%lu: %s %p", r->p, r->j, cx_err_name(rc), res);
    cx_future_release(f);
}

static void *producer_main(void *arg)
{
    struct producer *pr = arg;
    cx_future *ring[FUT_RING] = {0};
    struct rec *ring_rec[FUT_RING] = {0};
    unsigned head = 0;
    for (unsigned long j = 0; j < n_jobs; j++) {
        struct rec *r = &recs[pr->id * n_jobs + j];
        r->p = pr->id;
        r->j = j;
        r->nest = nest_every != 0 && j % nest_every == nest_every - 1;
        r->child = &child_recs[pr->id * n_jobs + j];
        cx_token *tok[2] = {NULL, NULL};
        for (int k = 0; k < NV; k++) {
            r->want[k] = TAG((pr->id + 1) << 40 | j << 4 | (unsigned long)k);
            set_or_die(PV[k], r->want[k], k < 2 ? &tok[k] : NULL);
        }
        r->want_d = owned_new(pr->id, j);
        set_or_die(PD, r->want_d, NULL);

        cx_future *f = NULL;
        bool with_future = j % 3 == 0;
        int rc;
        switch (j % 4) {
        case 0:
            rc = cx_pool_submit(pool_a, job, r, with_future ? &f : NULL);
            break;
        case 1: {
            /* try_submit; a full queue is fine: retry blocking */
            rc = cx_pool_try_submit(pool_a, job, r, with_future ? &f : NULL);
            if (rc == CX_EAGAIN)
                rc = cx_pool_submit(pool_a, job, r, with_future ? &f : NULL);
            break;
        }
        case 2: {
            cx_context *c = cx_copy_context();
            if (c == NULL)
                die("cx_copy_context", CX_ENOMEM);
            rc = cx_pool_submit_in(pool_a, c, job, r, with_future ? &f : NULL);
            cx_context_release(c); /* the job holds its own reference */
            break;
        }
        default:
            rc = cx_pool_submit(pool_a, job, r, with_future ? &f : NULL);
            break;
        }
        if (rc != 0)
            mismatch("producer %lu: submit of job %lu = %s", pr->id, j, cx_err_name(rc));

        /* Changes after the submit must not reach the job. */
        for (int k = 0; k < 2; k++) {
            rc = cx_var_reset(PV[k], tok[k]);
            if (rc != 0)
                mismatch("producer %lu: reset = %s", pr->id, cx_err_name(rc));
            cx_token_release(tok[k]);
        }
        set_or_die(PV[2], TAG(0xaf7e5), NULL);

        if (f != NULL) {
            if (ring[head] != NULL) {
                wait_future(ring[head], ring_rec[head]);
                pr->fut_checked++;
            }
            ring[head] = f;
            ring_rec[head] = r;
            head = (head + 1) % FUT_RING;
        }
    }
    for (unsigned i = 0; i < FUT_RING; i++)
        if (ring[i] != NULL) {
            wait_future(ring[i], ring_rec[i]);
            pr->fut_checked++;
        }
    return NULL;
}

/* ================================================================ part 2 */

static cx_var *WA, *WB, *WC, *WD, *WE;
static cx_context **wctx;
static pthread_barrier_t rw_start;

struct writer {
    pthread_t t;
    unsigned id;
    unsigned long writes;
};

static void *writer_body(void *arg)
{
    struct writer *w = arg;
    cx_token *te = NULL;
    cx_context *held = NULL;
    for (unsigned long i = 1; i <= n_iters; i++) {
        set_or_die(WA, TAG(i), NULL);
        set_or_die(WB, TAG(i), NULL);
        set_or_die(WC, TAG(i), NULL);
        set_or_die(WD, owned_new(w->id, i), NULL);
        if (i % 2 == 1) {
            set_or_die(WE, TAG(i), &te);
        } else {
            int rc = cx_var_reset(WE, te);
            if (rc != 0)
                mismatch("writer %u: reset = %s", w->id, cx_err_name(rc));
            cx_token_release(te);
            te = NULL;
        }
        w->writes += 5;
        void *a = NULL;
        if (cx_var_get(WA, &a) != 0 || a != TAG(i))
            mismatch("writer %u: its own get of A = %p at %lu", w->id, a, i);
        if (i % 64 == 0) {
            /* keep a copy for a while: the next sets copy paths */
            cx_context_release(held);
            held = cx_copy_context();
        }
    }
    if (te != NULL) {
        (void)cx_var_reset(WE, te);
        cx_token_release(te);
    }
    cx_context_release(held);
    return NULL;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_barrier_wait(&rw_start);
    int rc = cx_context_run(wctx[w->id], writer_body, w, NULL);
    if (rc != 0)
        mismatch("writer %u: run = %s", w->id, cx_err_name(rc));
    return NULL;
}

struct snapv {
    unsigned long a, b, c, d, e;
    bool has_e;
    size_t n;
};

static int collect(cx_var *v, void *val, void *arg)
{
    struct snapv *s = arg;
    s->n++;
    if (v == WA)
        s->a = (uintptr_t)val;
    else if (v == WB)
        s->b = (uintptr_t)val;
    else if (v == WC)
        s->c = (uintptr_t)val;
    else if (v == WD) {
        const struct owned *o = val;
        /* borrowed for the call: foreach holds its own snapshot */
        if (o->magic != MAGIC_LIVE)
            return -1;
        s->d = o->b;
    } else if (v == WE) {
        s->has_e = true;
        s->e = (uintptr_t)val;
    } else {
        return -2;
    }
    return 0;
}

static bool consistent(const struct snapv *s)
{
    if (!(s->a >= s->b && s->b >= s->c && s->c >= s->d && s->d + 1 >= s->a))
        return false;
    if (s->has_e && !(s->e <= s->a && s->e + 2 >= s->a && s->e % 2 == 1))
        return false;
    return true;
}

static unsigned long get_word(const cx_context *c, cx_var *v)
{
    void *x = NULL;
    return cx_context_get(c, v, &x) == 0 ? (uintptr_t)x : 0;
}

struct reader {
    pthread_t t;
    unsigned id;
    unsigned long reads;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    unsigned long *last_a = calloc(n_writers, sizeof(*last_a));
    if (last_a == NULL)
        die("calloc", CX_ENOMEM);
    pthread_barrier_wait(&rw_start);
    for (unsigned long it = 0; it < n_iters; it++) {
        unsigned w = (unsigned)((it + rd->id) % n_writers);
        cx_context *k = wctx[w];

        /* a copy: one consistent, stable map */
        cx_context *c = cx_context_copy(k);
        if (c == NULL)
            die("cx_context_copy", CX_ENOMEM);
        struct snapv s = {0};
        int rc = cx_context_foreach(c, collect, &s);
        void *dv = NULL;
        if (cx_context_get(c, WD, &dv) == 0) {
            const struct owned *o = dv; /* held by c */
            if (o->magic != MAGIC_LIVE || o->b != s.d)
                mismatch("reader: owned value in a copy not live or wrong");
        }
        if (rc != 0 || s.n != cx_context_len(c) || !consistent(&s))
            mismatch("reader %u: copy of writer %u inconsistent: rc %d n %zu len %zu "
                     "a %lu b %lu c %lu d %lu e %lu/%d",
                     rd->id, w, rc, s.n, cx_context_len(c), s.a, s.b, s.c, s.d, s.e, s.has_e);
        if (s.a != get_word(c, WA) || s.c != get_word(c, WC) ||
            cx_context_contains(c, WE) != s.has_e)
            mismatch("reader %u: copy: get/contains disagree with foreach", rd->id);
        cx_context *c2 = cx_context_copy(c);
        if (c2 == NULL || !cx_context_equal(c, c2) || !cx_context_equal(c2, c))
            mismatch("reader %u: a copy of a copy is not equal", rd->id);
        cx_context_release(c2);
        if (s.a < last_a[w])
            mismatch("reader %u: A went back from %lu to %lu", rd->id, last_a[w], s.a);
        last_a[w] = s.a;

        /* the live context itself */
        struct snapv l = {0};
        rc = cx_context_foreach(k, collect, &l);
        if (rc != 0 || !consistent(&l))
            mismatch("reader %u: foreach of live writer %u inconsistent: rc %d a %lu b %lu "
                     "c %lu d %lu",
                     rd->id, w, rc, l.a, l.b, l.c, l.d);
        if (l.a < last_a[w])
            mismatch("reader %u: A went back (live foreach)", rd->id);
        last_a[w] = l.a;
        unsigned long a = get_word(k, WA);
        if (a < last_a[w])
            mismatch("reader %u: A went back (live get)", rd->id);
        last_a[w] = a;
        size_t n = cx_context_len(k);
        if (n > 5 || (a > 0 && !cx_context_contains(k, WA)))
            mismatch("reader %u: live len %zu / contains", rd->id, n);
        (void)cx_context_equal(k, c);
        cx_context_release(c);
        rd->reads += 8;
        if (it % 32 == 0)
            sched_yield();
    }
    free(last_a);
    return NULL;
}

/* ================================================================ part 3 */

static cx_var *TV, *TW, *TCNT;

struct churn_arg {
    unsigned long t;
    int ok;
};

static void *churn_fn(void *p)
{
    struct churn_arg *a = p;
    void *v = NULL;
    a->ok = cx_var_get(TV, &v) == 0 && v == TAG(0xc0ffee);
    /* a set in the thread's own copy */
    if (cx_var_set(TW, TAG(a->t), NULL) != 0 || cx_var_get_or(TW, NULL) != TAG(a->t))
        a->ok = 0;
    return NULL;
}

static void *churn_in_fn(void *p)
{
    struct churn_arg *a = p;
    uintptr_t n = (uintptr_t)cx_var_get_or(TCNT, TAG(0));
    a->ok = cx_var_set(TCNT, TAG(n + 1), NULL) == 0;
    return NULL;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned long churned;
static long rss_half = -1, rss_end = -1;

static int create_retry(pthread_t *t, cx_context *in, void *(*fn)(void *), void *arg)
{
    for (int tries = 0;; tries++) {
        int rc = in != NULL ? cx_thread_create_in(t, NULL, in, fn, arg)
                            : cx_thread_create(t, NULL, fn, arg);
        if (rc != CX_EAGAIN || tries == 1000)
            return rc;
        usleep(1000); /* out of threads for a moment */
    }
}

static void *churn_body(void *unused)
{
    (void)unused;
    set_or_die(TV, TAG(0xc0ffee), NULL);
    cx_context *kc = cx_context_new();
    if (kc == NULL)
        die("cx_context_new", CX_ENOMEM);
    unsigned long in_count = 0;
    for (unsigned long t = 0; t < n_threads; t++) {
        if (t == n_threads / 2)
            rss_half = rss_kb();
        pthread_t th;
        struct churn_arg a = {.t = t, .ok = 0};
        bool in = t % 8 == 7;
        int rc = create_retry(&th, in ? kc : NULL, in ? churn_in_fn : churn_fn, &a);
        if (rc != 0) {
            mismatch("thread %lu: create = %s", t, cx_err_name(rc));
            continue;
        }
        pthread_join(th, NULL);
        churned++;
        if (!a.ok)
            mismatch("thread %lu did not see its creator's context", t);
        if (in) {
            in_count++;
            void *n = NULL;
            if (cx_context_get(kc, TCNT, &n) != 0 || n != TAG(in_count))
                mismatch("thread_create_in: the context holds %p after %lu threads", n,
                         in_count);
        }
        if (cx_var_get_or(TW, NULL) != NULL)
            mismatch("a thread's set reached its creator");
    }
    rss_end = rss_kb();
    cx_context_release(kc);
    return NULL;
}

/* ================================================================ main */

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    n_producers = env_or("STRESS_PRODUCERS", 4, false);
    n_jobs = env_or("STRESS_JOBS", 3000, true);
    nest_every = env_or("STRESS_NEST", 4, false);
    pool_threads = env_or("STRESS_POOL_THREADS", 4, false);
    queue_size = env_or("STRESS_QUEUE", 64, false);
    n_writers = env_or("STRESS_WRITERS", 2, false);
    n_readers = env_or("STRESS_READERS", 2, false);
    n_iters = env_or("STRESS_ITERS", 20000, true);
    n_threads = env_or("STRESS_THREADS", 10000, true);
    rss_bound_kb = (long)env_or("STRESS_RSS_KB", 8192, false);
    if (n_producers == 0 || n_writers == 0 || pool_threads == 0) {
        fprintf(stderr, "stress: producers, writers and pool threads must be > 0\n");
        return 2;
    }

    cx_allocator al = {count_malloc, count_free};
    if (cx_set_allocator(&al) != 0)
        return 2;
    long live0 = atomic_load(&live_blocks);

    char name[16];
    for (int k = 0; k < NV; k++) {
        snprintf(name, sizeof(name), "PV%d", k);
        PV[k] = var_new(name, false);
    }
    PD = var_new("PD", true);
    PJ = var_new("PJ", false);
    PL = var_new("PL", false);
    WA = var_new("WA", false);
    WB = var_new("WB", false);
    WC = var_new("WC", false);
    WD = var_new("WD", true);
    WE = var_new("WE", false);
    TV = var_new("TV", false);
    TW = var_new("TW", false);
    TCNT = var_new("TCNT", false);

    recs = calloc((size_t)n_producers * n_jobs + 1, sizeof(*recs));
    child_recs = calloc((size_t)n_producers * n_jobs + 1, sizeof(*child_recs));
    wctx = calloc(n_writers, sizeof(*wctx));
    struct producer *prod = calloc(n_producers, sizeof(*prod));
    struct writer *wr = calloc(n_writers, sizeof(*wr));
    struct reader *rdr = calloc(n_readers + 1, sizeof(*rdr));
    if (!recs || !child_recs || !wctx || !prod || !wr || !rdr)
        die("calloc", CX_ENOMEM);

    int rc;
    /* part 2 */
    if (pthread_barrier_init(&rw_start, NULL, n_writers + n_readers) != 0)
        die("pthread_barrier_init", CX_EAGAIN);
    for (unsigned w = 0; w < n_writers; w++) {
        wctx[w] = cx_context_new();
        if (wctx[w] == NULL)
            die("cx_context_new", CX_ENOMEM);
        wr[w].id = w;
        if (pthread_create(&wr[w].t, NULL, writer_main, &wr[w]) != 0)
            die("pthread_create", CX_EAGAIN);
    }
    for (unsigned r = 0; r < n_readers; r++) {
        rdr[r].id = r;
        if (pthread_create(&rdr[r].t, NULL, reader_main, &rdr[r]) != 0)
            die("pthread_create", CX_EAGAIN);
    }
    /* part 1 (after part 2 has started: the writers' and readers' first
     * calls race with the pools' creation, as first uses in a real
     * program may) */
    cx_pool_opts oa = {.threads = pool_threads, .queue_size = queue_size};
    cx_pool_opts ob = {.threads = 2, .queue_size = queue_size};
    rc = cx_pool_new(&pool_a, &oa);
    if (rc == 0)
        rc = cx_pool_new(&pool_b, &ob);
    if (rc != 0)
        die("cx_pool_new", rc);
    for (unsigned p = 0; p < n_producers; p++) {
        prod[p].id = p;
        if (pthread_create(&prod[p].t, NULL, producer_main, &prod[p]) != 0)
            die("pthread_create", CX_EAGAIN);
    }
    /* part 3, on this thread, inside a context of its own */
    cx_context *main_ctx = cx_context_new();
    if (main_ctx == NULL)
        die("cx_context_new", CX_ENOMEM);
    rc = cx_context_run(main_ctx, churn_body, NULL, NULL);
    if (rc != 0)
        die("cx_context_run", rc);
    cx_context_release(main_ctx);

    unsigned long futs = 0;
    for (unsigned p = 0; p < n_producers; p++) {
        pthread_join(prod[p].t, NULL);
        futs += prod[p].fut_checked;
    }
    /* Every job, nested ones included, has run once both pools are gone:
     * pool A first (its jobs submit to B), then B. */
    cx_pool_free(pool_a);
    cx_pool_free(pool_b);
    unsigned long reads = 0, writes = 0;
    for (unsigned r = 0; r < n_readers; r++) {
        pthread_join(rdr[r].t, NULL);
        reads += rdr[r].reads;
    }
    for (unsigned w = 0; w < n_writers; w++) {
        pthread_join(wr[w].t, NULL);
        writes += wr[w].writes;
    }

    unsigned long jobs = 0, lost = 0, expected = 0;
    for (size_t i = 0; i < (size_t)n_producers * n_jobs; i++) {
        expected++;
        jobs += (unsigned long)recs[i].ran;
        if (recs[i].ran == 0)
            lost++;
        else if (recs[i].ran > 1)
            mismatch("job p%lu j%lu ran %d times", recs[i].p, recs[i].j, recs[i].ran);
        if (recs[i].nest && recs[i].ran > 0) {
            expected++;
            struct rec *c = &child_recs[i];
            jobs += (unsigned long)c->ran;
            if (c->ran == 0)
                lost++;
            else if (c->ran > 1)
                mismatch("nested job p%lu j%lu ran %d times", c->p, c->j, c->ran);
        }
    }

    for (unsigned w = 0; w < n_writers; w++)
        cx_context_release(wctx[w]);
    pthread_barrier_destroy(&rw_start);
    cx_var *all[] = {PV[0], PV[1], PV[2], PV[3], PD, PJ, PL, WA, WB, WC, WD, WE, TV, TW, TCNT};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        cx_var_release(all[i]);

    /* The producers' and the churn threads' states went with them; the
     * main thread's state remains (one block, freed at exit). */
    long leaked = atomic_load(&live_blocks) - live0 - 1;
    unsigned long made = atomic_load(&owned_made), gone = atomic_load(&owned_destroyed);
    bool rss_checked = rss_half > 0 && rss_end > 0;
#ifdef STRESS_SANITIZER
    rss_checked = false; /* ASan's quarantine and TSan's shadow grow by design */
#else
    if (RUNNING_ON_VALGRIND)
        rss_checked = false; /* the tool's own memory */
#endif
    long growth = rss_checked ? rss_end - rss_half : 0;
    printf("stress: jobs=%lu (expected %lu, %lu futures checked) mismatches=%lu lost=%lu "
           "threads=%lu reads=%lu writes=%lu owned=%lu/%lu leaked_blocks=%ld "
           "rss_growth_kb=%s%ld\n",
           jobs, expected, futs, atomic_load(&mismatches), lost, churned, reads, writes, gone,
           made, leaked, rss_checked ? "" : "unchecked:", growth);
    bool ok = atomic_load(&mismatches) == 0 && lost == 0 && jobs == expected &&
              churned == n_threads && leaked == 0 && made == gone &&
              (!rss_checked || growth <= rss_bound_kb);
    if (!ok)
        fprintf(stderr, "stress: FAILED\n");
    free(recs);
    free(child_recs);
    free(wctx);
    free(prod);
    free(wr);
    free(rdr);
    return ok ? 0 : 1;
}
