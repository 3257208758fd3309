/* test_slab.c - the memory of bound callbacks (src/slab.h): one thread
 * carves blocks out of its slabs, any thread frees them, and every slab is
 * freed once its thread gave it up and its last block came back.
 *
 * The slabs are used only while the library caches blocks (the default
 * allocator, no valgrind checker, no sanitizer); elsewhere every callback
 * is its own malloc and these tests check that no slab ever appears. The
 * native run of make check is the one that exercises them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>

#include <cmocka.h>

#include "alloc.h"
#include "cx_test.h"
#include "cxvars.h"
#include "slab.h"

static atomic_int destroyed;
static void count_destroy(void *v)
{
    (void)v;
    atomic_fetch_add(&destroyed, 1);
}

static cx_var *x;
static int value;

/* What a run saw: x's value, recorded per callback; checked by main. */
static void *record(void *p)
{
    void **seen = p;
    if (cx_var_get(x, seen) != 0)
        *seen = NULL;
    return NULL;
}

static void *ignore(void *p) { return p; }

/* Blocks in enough slabs that the retired ring overflows. */
#define MANY (CX__SLAB_BLOCKS * (CX__SLAB_RETIRED + 4u))

static void callback_memory_is_reused_not_grown(void **state)
{
    (void)state;
    unsigned base = cx__slabs_alive(), made = cx__slabs_made();
    unsigned most = base;
    for (unsigned round = 0; round < 20; round++)
        for (unsigned i = 0; i < MANY; i++) {
            cx_callback *cb;
            assert_int_equal(cx_bind(&cb, ignore, NULL, 0), 0);
            cx_callback_invoke(cb);
            unsigned now = cx__slabs_alive();
            most = now > most ? now : most;
        }
    /* The thread's current slab and the retired ones, and no more: freed
     * blocks are carved again. */
    assert_true(most <= base + 1u + CX__SLAB_RETIRED);
    assert_true(cx__slabs_made() - made <= 1u + CX__SLAB_RETIRED);
    if (cx__caching())
        assert_true(most > base); /* the slabs were used at all */
    else
        assert_int_equal(most, base);
}

/* After a burst of callbacks outstanding at once, a thread whose
 * callbacks then come back as fast as it binds keeps no ring of slabs:
 * the slabs the burst needed are freed as it goes on binding. */
static void a_burst_leaves_no_ring_behind(void **state)
{
    (void)state;
    unsigned base = cx__slabs_alive();
    cx_callback **cb = calloc(MANY, sizeof(*cb));
    assert_non_null(cb);
    for (unsigned i = 0; i < MANY; i++)
        assert_int_equal(cx_bind(&cb[i], ignore, NULL, 0), 0);
    unsigned burst = cx__slabs_alive();
    for (unsigned i = 0; i < MANY; i++)
        cx_callback_invoke(cb[i]);
    free(cb);
    /* One at a time now: each slab change gives up a spare free slab. */
    for (unsigned i = 0; i < 4u * MANY; i++) {
        cx_callback *one;
        assert_int_equal(cx_bind(&one, ignore, NULL, 0), 0);
        cx_callback_invoke(one);
    }
    unsigned after = cx__slabs_alive();
    if (cx__caching()) {
        assert_true(burst >= base + CX__SLAB_RETIRED); /* the burst needed many */
        assert_true(after <= base + 3u);               /* and they are gone */
    } else {
        assert_int_equal(burst, base);
        assert_int_equal(after, base);
    }
}

/* A binder thread: binds every callback of the array with x set, then
 * ends (its slabs are given up while the callbacks still live). */
typedef struct batch {
    cx_callback **cb;
    void **seen;
    unsigned n;
    int rc;
} batch;

static void *binder(void *p)
{
    batch *b = p;
    cx_token *t;
    b->rc = cx_var_set(x, &value, &t);
    for (unsigned i = 0; b->rc == 0 && i < b->n; i++)
        b->rc = cx_bind(&b->cb[i], record, &b->seen[i], 0);
    if (b->rc == 0)
        b->rc = cx_var_reset(x, t);
    cx_token_release(t);
    return NULL;
}

static void callbacks_outlive_the_thread_that_bound_them(void **state)
{
    (void)state;
    unsigned base = cx__slabs_alive();
    batch b = {.n = MANY};
    b.cb = calloc(b.n, sizeof(*b.cb));
    b.seen = calloc(b.n, sizeof(*b.seen));
    assert_non_null(b.cb);
    assert_non_null(b.seen);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, binder, &b), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(b.rc, 0);
    /* The binder has ended: its slabs live on through their blocks. */
    if (cx__caching())
        assert_true(cx__slabs_alive() > base);
    for (unsigned i = 0; i < b.n; i++)
        cx_callback_invoke(b.cb[i]);
    for (unsigned i = 0; i < b.n; i++)
        assert_ptr_equal(b.seen[i], &value);
    assert_int_equal(cx__slabs_alive(), base);
    free(b.cb);
    free(b.seen);
}

/* A binder and an executor at the same time, handing callbacks over
 * through an array under a mutex (which race detectors see). */
#define HANDOFF 4000u
static cx_callback *slot[HANDOFF];
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static bool producer_failed; /* under slot_mu: the executor stops */
static void *seen_by[HANDOFF];
static unsigned handoff_n; /* <= HANDOFF, scaled for the checkers */

static void *producer(void *p)
{
    int *rc = p;
    cx_token *t;
    *rc = cx_var_set(x, &value, &t);
    for (unsigned i = 0; *rc == 0 && i < handoff_n; i++) {
        cx_callback *cb;
        *rc = cx_bind(&cb, record, &seen_by[i], 0);
        if (*rc == 0) {
            pthread_mutex_lock(&slot_mu);
            slot[i] = cb;
            pthread_mutex_unlock(&slot_mu);
        }
    }
    if (*rc == 0)
        *rc = cx_var_reset(x, t);
    cx_token_release(t);
    pthread_mutex_lock(&slot_mu);
    producer_failed = *rc != 0;
    pthread_mutex_unlock(&slot_mu);
    return NULL;
}

static void *executor(void *p)
{
    (void)p;
    for (unsigned i = 0; i < handoff_n; i++) {
        cx_callback *cb;
        for (;;) {
            pthread_mutex_lock(&slot_mu);
            cb = slot[i];
            bool stop = producer_failed;
            pthread_mutex_unlock(&slot_mu);
            if (cb != NULL)
                break;
            if (stop)
                return NULL;
            sched_yield();
        }
        cx_callback_invoke(cb);
    }
    return NULL;
}

static void blocks_freed_by_an_executor_while_their_binder_runs(void **state)
{
    (void)state;
    unsigned base = cx__slabs_alive();
    handoff_n = cx_test_scaled(HANDOFF);
    if (handoff_n > HANDOFF)
        handoff_n = HANDOFF;
    int rc = -1;
    pthread_t p, e;
    assert_int_equal(pthread_create(&e, NULL, executor, NULL), 0);
    assert_int_equal(pthread_create(&p, NULL, producer, &rc), 0);
    assert_int_equal(pthread_join(p, NULL), 0);
    assert_int_equal(pthread_join(e, NULL), 0);
    assert_int_equal(rc, 0);
    for (unsigned i = 0; i < handoff_n; i++)
        assert_ptr_equal(seen_by[i], &value);
    assert_int_equal(cx__slabs_alive(), base);
}

static void captured_values_are_destroyed_with_the_last_callback(void **state)
{
    (void)state;
    cx_var_opts o = {.destroy = count_destroy};
    cx_var *owned;
    assert_int_equal(cx_var_new(&owned, "owned", &o), 0);
    atomic_store(&destroyed, 0);
    cx_callback *cb[3];
    cx_token *t;
    assert_int_equal(cx_var_set(owned, &value, &t), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cx_bind(&cb[i], ignore, NULL, 0), 0);
    assert_int_equal(cx_var_reset(owned, t), 0);
    cx_token_release(t);
    cx_callback_invoke(cb[0]);
    cx_callback_release(cb[1]);
    assert_int_equal(atomic_load(&destroyed), 0);
    cx_callback_invoke(cb[2]);
    assert_int_equal(atomic_load(&destroyed), 1);
    cx_var_release(owned);
}

static int setup(void **state)
{
    (void)state;
    cx__slabs_count(); /* before the first slab */
    return cx_var_new(&x, "x", NULL);
}

static int teardown(void **state)
{
    (void)state;
    cx_var_release(x);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(callback_memory_is_reused_not_grown),
        cmocka_unit_test(a_burst_leaves_no_ring_behind),
        cmocka_unit_test(callbacks_outlive_the_thread_that_bound_them),
        cmocka_unit_test(blocks_freed_by_an_executor_while_their_binder_runs),
        cmocka_unit_test(captured_values_are_destroyed_with_the_last_callback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
