/* cx_scope_test.h - helpers shared by test_scope.c and test_group.c
 * (include after <cmocka.h>): gates that hold a job until the main thread
 * opens them, pools, deadlines, and a peek at library internals that
 * tells when a thread has gone to sleep in a wait (ordering by observed
 * state, never by sleeping). */
#ifndef CX_SCOPE_TEST_H
#define CX_SCOPE_TEST_H

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cxpool.h"
#include "cxvars.h"
#include "../pool/future.h" /* struct cx_future: waiters (test-only peek) */

#define TAG(n) ((void *)(uintptr_t)(n))
/* A deadline no correct test reaches: a wait that hits it is a failure,
 * not a hang. */
#define LONG_MS 30000

static inline struct timespec ms_from_now(long ms) { return cx_deadline_in(ms); }

static inline cx_pool *new_pool(unsigned threads, unsigned queue_size)
{
    cx_pool *p = NULL;
    cx_pool_opts o = {.threads = threads, .queue_size = queue_size};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    assert_non_null(p);
    return p;
}

static inline cx_scope *new_scope(const struct timespec *deadline)
{
    cx_scope *s = NULL;
    assert_int_equal(cx_scope_new(&s, deadline), 0);
    assert_non_null(s);
    return s;
}

/* A gate: a job that enters it blocks its worker until it is opened. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered;
    bool open;
};

static inline void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->entered = false;
    g->open = false;
}

static inline void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static inline void *gate_job(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return TAG(0x6a7e);
}

static inline void gate_wait_entered(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static inline void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A 1-thread pool whose only worker is held in a gate job. */
static inline cx_pool *held_pool(struct gate *g, unsigned queue_size, cx_future **gate_fut)
{
    cx_pool *p = new_pool(1, queue_size);
    gate_init(g);
    assert_int_equal(cx_pool_submit(p, gate_job, g, gate_fut), 0);
    gate_wait_entered(g);
    return p;
}

/* Returns once some thread sleeps (or is about to, holding the future's
 * lock) in a wait on f. */
static inline void until_someone_waits_on(cx_future *f)
{
    while (__atomic_load_n(&f->waiters, __ATOMIC_ACQUIRE) == 0)
        sched_yield();
}

static inline void *noop_job(void *arg) { return arg; }

#endif
