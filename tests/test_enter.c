/* test_enter.c - cx_context_enter / cx_context_exit (SPEC 5.2, CPython's
 * PyContext_Enter / PyContext_Exit): making a context current without a
 * callback, in LIFO order, with the same one-thread-at-a-time rule as
 * cx_context_run; exit checks it leaves the innermost context entered by
 * enter; enter holds a reference until exit; a thread that ends with
 * contexts entered leaves them.
 *
 * Only the main thread asserts: other threads record what they saw, the
 * main thread checks after joining them. Every wait is bounded
 * (cx_wait.h), so a regression fails instead of hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "cx_test.h"
#include "cx_cmocka.h"
#include "cx_wait.h"
#include "cxvars.h"

#define TAG(n) ((void *)(uintptr_t)(n))

/* ================================================================ helpers */

static cx_var *x; /* plain word variable shared by the tests */

/* x's value in the current context, or TAG(0) when unbound. */
static void *xval(void) { return cx_var_get_or(x, TAG(0)); }

static void *set_x_fn(void *p)
{
    return (void *)(intptr_t)cx_var_set(x, p, NULL);
}

/* A new context (new reference) with x bound to v. */
static cx_context *ctx_with_x(void *v)
{
    cx_context *c = mkctx();
    void *rc = TAG(99);
    assert_int_equal(cx_context_run(c, set_x_fn, v, &rc), 0);
    assert_ptr_equal(rc, TAG(0));
    return c;
}

static void *noop(void *p) { return p; }

/* Owned boxes: destroy frees, counts, and logs the order. */
typedef struct box {
    int n;
} box;

static atomic_int destroyed;
static int destroy_log[16];

static void *new_box(int n)
{
    box *b = malloc(sizeof(*b));
    assert_non_null(b);
    b->n = n;
    return b;
}

static void box_destroy(void *v)
{
    int k = atomic_fetch_add(&destroyed, 1);
    if (k < 16)
        destroy_log[k] = ((box *)v)->n;
    free(v);
}

static const cx_var_opts owned_opts = {.destroy = box_destroy};

/* ========================================================== bad arguments */

static void enter_and_exit_of_null_are_einval(void **state)
{
    (void)state;
    assert_int_equal(cx_context_enter(NULL), CX_EINVAL);
    assert_int_equal(cx_context_exit(NULL), CX_EINVAL);
}

/* ====================================================== enter and exit */

static void enter_makes_the_context_current_and_exit_restores_the_previous(void **state)
{
    (void)state;
    cx_var *y = mkvar("y", NULL);
    cx_token *tok = NULL;
    assert_int_equal(cx_var_set(x, TAG(1), &tok), 0);
    assert_ptr_equal(xval(), TAG(1)); /* cached: enter must invalidate */
    cx_context *c = ctx_with_x(TAG(2));

    assert_int_equal(cx_context_enter(c), 0);
    assert_ptr_equal(xval(), TAG(2));
    assert_int_equal(cx_var_set(y, TAG(3), NULL), 0); /* lands in c */
    assert_ptr_equal(cx_var_get_or(y, NULL), TAG(3));
    assert_int_equal(cx_context_exit(c), 0);

    assert_ptr_equal(xval(), TAG(1));
    assert_null(cx_var_get_or(y, NULL));
    void *v = NULL;
    assert_int_equal(cx_context_get(c, y, &v), 0);
    assert_ptr_equal(v, TAG(3));
    assert_int_equal(cx_context_get(c, x, &v), 0);
    assert_ptr_equal(v, TAG(2));

    assert_int_equal(cx_var_reset(x, tok), 0);
    cx_token_release(tok);
    cx_context_release(c);
    cx_var_release(y);
}

static void enter_of_a_context_this_thread_entered_is_ebusy(void **state)
{
    (void)state;
    cx_context *c = ctx_with_x(TAG(2));
    cx_context *d = ctx_with_x(TAG(3));
    assert_int_equal(cx_context_enter(c), 0);
    assert_int_equal(cx_context_enter(c), CX_EBUSY); /* recursion */
    assert_ptr_equal(xval(), TAG(2));                /* nothing changed */
    assert_int_equal(cx_context_enter(d), 0);
    assert_int_equal(cx_context_enter(c), CX_EBUSY); /* deeper down */
    assert_ptr_equal(xval(), TAG(3));
    assert_int_equal(cx_context_exit(d), 0);
    assert_int_equal(cx_context_exit(c), 0);
    assert_ptr_equal(xval(), TAG(0));
    cx_context_release(c);
    cx_context_release(d);
}

typedef struct in_run {
    cx_context *other;
    int enter_self_rc, enter_other_rc, exit_other_rc;
    void *x_in_other, *x_after;
} in_run;

static void *enter_inside_run(void *p)
{
    in_run *r = p;
    r->enter_other_rc = cx_context_enter(r->other);
    r->x_in_other = xval();
    r->exit_other_rc = cx_context_exit(r->other);
    r->x_after = xval();
    return NULL;
}

static void *enter_running_self(void *p)
{
    cx_context *self = p;
    return (void *)(intptr_t)cx_context_enter(self);
}

static void enter_of_a_context_being_run_is_ebusy(void **state)
{
    (void)state;
    cx_context *c = ctx_with_x(TAG(2));
    cx_context *d = ctx_with_x(TAG(3));
    void *rc = TAG(99);
    assert_int_equal(cx_context_run(c, enter_running_self, c, &rc), 0);
    assert_ptr_equal(rc, (void *)(intptr_t)CX_EBUSY);

    /* Entering another context inside a run, and leaving it, is fine. */
    in_run r = {.other = d, .enter_other_rc = 99, .exit_other_rc = 99};
    assert_int_equal(cx_context_run(c, enter_inside_run, &r, NULL), 0);
    assert_int_equal(r.enter_other_rc, 0);
    assert_ptr_equal(r.x_in_other, TAG(3));
    assert_int_equal(r.exit_other_rc, 0);
    assert_ptr_equal(r.x_after, TAG(2));

    /* And the other way round: an entered context cannot be run. */
    assert_int_equal(cx_context_enter(c), 0);
    assert_int_equal(cx_context_run(c, noop, NULL, NULL), CX_EBUSY);
    pthread_t t;
    assert_int_equal(cx_thread_create_in(&t, NULL, c, noop, NULL), CX_EBUSY);
    assert_int_equal(cx_context_exit(c), 0);
    assert_int_equal(cx_context_run(c, noop, NULL, NULL), 0);
    cx_context_release(c);
    cx_context_release(d);
}

/* Another thread holds c entered (by enter, by run, or as the context of
 * cx_thread_create_in) until main says go. */
enum hold_how { HOLD_ENTER, HOLD_RUN, HOLD_CREATE_IN };

typedef struct holder {
    enum hold_how how;
    cx_context *c;
    cx_event in, go;
    int enter_rc, set_rc, exit_rc, run_rc;
    int go_timed_out;
} holder;

static void *hold_body(void *p)
{
    holder *h = p;
    h->set_rc = cx_var_set(x, TAG(9), NULL);
    cx_event_post(&h->in);
    if (!cx_event_wait(&h->go, 1))
        h->go_timed_out = 1;
    return NULL;
}

static void *hold_thread(void *p)
{
    holder *h = p;
    if (h->how == HOLD_ENTER) {
        h->enter_rc = cx_context_enter(h->c);
        if (h->enter_rc != 0) {
            cx_event_post(&h->in);
            return NULL;
        }
        hold_body(h);
        h->exit_rc = cx_context_exit(h->c);
    } else {
        h->run_rc = cx_context_run(h->c, hold_body, h, NULL);
    }
    return NULL;
}

static void entered_by(enum hold_how how)
{
    holder h;
    memset(&h, 0, sizeof(h));
    h.how = how;
    h.c = mkctx();
    h.enter_rc = h.set_rc = h.exit_rc = h.run_rc = 99;
    cx_event_init(&h.in);
    cx_event_init(&h.go);
    pthread_t t;
    if (how == HOLD_CREATE_IN)
        assert_int_equal(cx_thread_create_in(&t, NULL, h.c, hold_body, &h), 0);
    else
        assert_int_equal(pthread_create(&t, NULL, hold_thread, &h), 0);
    assert_true(cx_event_wait(&h.in, 1));
    assert_int_equal(cx_context_enter(h.c), CX_EBUSY);
    assert_ptr_equal(xval(), TAG(0)); /* nothing changed here */
    assert_int_equal(cx_context_exit(h.c), CX_ECONTEXT);
    cx_event_post(&h.go);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(h.go_timed_out, 0);
    assert_int_equal(h.set_rc, 0);
    if (how == HOLD_ENTER) {
        assert_int_equal(h.enter_rc, 0);
        assert_int_equal(h.exit_rc, 0);
    } else if (how == HOLD_RUN) {
        assert_int_equal(h.run_rc, 0);
    }
    /* Left: now this thread enters it and sees the other's write. */
    assert_int_equal(cx_context_enter(h.c), 0);
    assert_ptr_equal(xval(), TAG(9));
    assert_int_equal(cx_context_exit(h.c), 0);
    cx_context_release(h.c);
    cx_event_destroy(&h.in);
    cx_event_destroy(&h.go);
}

static void enter_of_a_context_another_thread_entered_is_ebusy(void **state)
{
    (void)state;
    entered_by(HOLD_ENTER);
}

static void enter_of_a_context_another_thread_runs_is_ebusy(void **state)
{
    (void)state;
    entered_by(HOLD_RUN);
}

static void enter_of_the_context_of_a_thread_create_in_thread_is_ebusy(void **state)
{
    (void)state;
    entered_by(HOLD_CREATE_IN);
}

/* ==================================================== exit's checks */

static void exit_of_a_context_not_innermost_is_econtext(void **state)
{
    (void)state;
    cx_context *a = ctx_with_x(TAG(1));
    cx_context *b = ctx_with_x(TAG(2));
    cx_context *never = ctx_with_x(TAG(3));
    assert_int_equal(cx_context_exit(never), CX_ECONTEXT);
    assert_int_equal(cx_context_enter(a), 0);
    assert_int_equal(cx_context_enter(b), 0);
    assert_int_equal(cx_context_exit(a), CX_ECONTEXT);
    assert_ptr_equal(xval(), TAG(2)); /* still in b */
    assert_int_equal(cx_context_exit(never), CX_ECONTEXT);
    assert_int_equal(cx_context_exit(b), 0);
    assert_ptr_equal(xval(), TAG(1));
    assert_int_equal(cx_context_exit(b), CX_ECONTEXT); /* already left */
    assert_int_equal(cx_context_exit(a), 0);
    assert_ptr_equal(xval(), TAG(0));
    assert_int_equal(cx_context_exit(a), CX_ECONTEXT);
    /* None of them is left entered. */
    assert_int_equal(cx_context_run(a, noop, NULL, NULL), 0);
    assert_int_equal(cx_context_run(b, noop, NULL, NULL), 0);
    assert_int_equal(cx_context_run(never, noop, NULL, NULL), 0);
    cx_context_release(a);
    cx_context_release(b);
    cx_context_release(never);
}

typedef struct exit_in_run {
    cx_context *outer, *self;
    int exit_outer_rc, exit_self_rc;
    void *x_after;
} exit_in_run;

static void *exit_inside_run(void *p)
{
    exit_in_run *e = p;
    e->exit_outer_rc = cx_context_exit(e->outer);
    e->exit_self_rc = cx_context_exit(e->self); /* entered by run */
    e->x_after = xval();
    return NULL;
}

static void exit_inside_a_run_of_a_context_entered_outside_it_is_econtext(void **state)
{
    (void)state;
    cx_context *a = ctx_with_x(TAG(1));
    cx_context *b = ctx_with_x(TAG(2));
    assert_int_equal(cx_context_enter(a), 0);
    exit_in_run e = {.outer = a, .self = b, .exit_outer_rc = 99, .exit_self_rc = 99};
    assert_int_equal(cx_context_run(b, exit_inside_run, &e, NULL), 0);
    assert_int_equal(e.exit_outer_rc, CX_ECONTEXT);
    assert_int_equal(e.exit_self_rc, CX_ECONTEXT);
    assert_ptr_equal(e.x_after, TAG(2)); /* still in b */
    assert_ptr_equal(xval(), TAG(1));    /* run restored a */
    assert_int_equal(cx_context_exit(a), 0);
    assert_ptr_equal(xval(), TAG(0));
    cx_context_release(a);
    cx_context_release(b);
}

typedef struct exit_elsewhere {
    cx_context *c;
    int rc;
} exit_elsewhere;

static void *exit_from_thread(void *p)
{
    exit_elsewhere *e = p;
    e->rc = cx_context_exit(e->c);
    return NULL;
}

static void exit_from_another_thread_is_econtext(void **state)
{
    (void)state;
    cx_context *a = ctx_with_x(TAG(1));
    assert_int_equal(cx_context_enter(a), 0);
    exit_elsewhere e = {.c = a, .rc = 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, exit_from_thread, &e), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(e.rc, CX_ECONTEXT);
    assert_ptr_equal(xval(), TAG(1));
    assert_int_equal(cx_context_exit(a), 0);
    cx_context_release(a);
}

static void enters_and_exits_nest_in_lifo_order(void **state)
{
    (void)state;
    enum { N = 5 };
    cx_context *c[N];
    for (int i = 0; i < N; i++)
        c[i] = ctx_with_x(TAG(i + 1));
    for (int i = 0; i < N; i++) {
        assert_int_equal(cx_context_enter(c[i]), 0);
        assert_ptr_equal(xval(), TAG(i + 1));
    }
    for (int i = N - 1; i >= 0; i--) {
        assert_ptr_equal(xval(), TAG(i + 1));
        assert_int_equal(cx_context_exit(c[i]), 0);
        assert_ptr_equal(xval(), TAG(i)); /* TAG(0): unbound in the base */
    }
    for (int i = 0; i < N; i++)
        cx_context_release(c[i]);
}

static void token_made_in_an_entered_context_resets_only_there(void **state)
{
    (void)state;
    cx_context *a = mkctx();
    cx_token *tok = NULL;
    assert_int_equal(cx_context_enter(a), 0);
    assert_int_equal(cx_var_set(x, TAG(5), &tok), 0);
    assert_int_equal(cx_context_exit(a), 0);
    assert_int_equal(cx_var_reset(x, tok), CX_ECONTEXT);
    assert_false(cx_token_used(tok));
    assert_int_equal(cx_context_enter(a), 0);
    assert_ptr_equal(xval(), TAG(5));
    assert_int_equal(cx_var_reset(x, tok), 0);
    assert_ptr_equal(xval(), TAG(0));
    assert_int_equal(cx_context_exit(a), 0);
    cx_token_release(tok);
    assert_int_equal(cx_context_len(a), 0);
    cx_context_release(a);
}

/* ====================================================== references */

static void enter_holds_a_reference_until_exit(void **state)
{
    (void)state;
    cx_var *o = mkvar("owned", &owned_opts);
    atomic_store(&destroyed, 0);
    cx_context *c = mkctx();
    assert_int_equal(cx_context_enter(c), 0);
    assert_int_equal(cx_var_set(o, new_box(7), NULL), 0);
    cx_context_release(c); /* the caller's; enter's stays */
    assert_int_equal(atomic_load(&destroyed), 0);
    void *v = NULL;
    assert_int_equal(cx_var_get(o, &v), 0);
    assert_int_equal(((box *)v)->n, 7);
    assert_int_equal(cx_context_exit(c), 0); /* the last reference */
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_null(cx_var_get_or(o, NULL));
    cx_var_release(o);
}

/* ============================================ threads ending while entered */

enum end_how { END_RETURN, END_PTHREAD_EXIT };

typedef struct ender {
    enum end_how how;
    cx_context *a, *b;
    cx_var *o;
    int rc[4];
    cx_event entered, released;
    int released_timed_out;
} ender;

/* Enters a (x = 61, owned box 1) then b (x = 62, owned box 2), and ends
 * without leaving either. */
static void *end_while_entered(void *p)
{
    ender *e = p;
    e->rc[0] = cx_context_enter(e->a);
    e->rc[1] = cx_var_set(x, TAG(61), NULL);
    if (e->o != NULL && e->rc[1] == 0)
        e->rc[1] = cx_var_set(e->o, new_box(1), NULL);
    e->rc[2] = cx_context_enter(e->b);
    e->rc[3] = cx_var_set(x, TAG(62), NULL);
    if (e->o != NULL && e->rc[3] == 0)
        e->rc[3] = cx_var_set(e->o, new_box(2), NULL);
    cx_event_post(&e->entered);
    if (!cx_event_wait(&e->released, 1))
        e->released_timed_out = 1;
    if (e->how == END_PTHREAD_EXIT)
        pthread_exit(NULL);
    return NULL;
}

static void ender_run(ender *e, enum end_how how, bool main_keeps_refs)
{
    e->how = how;
    for (int i = 0; i < 4; i++)
        e->rc[i] = 99;
    cx_event_init(&e->entered);
    cx_event_init(&e->released);
    e->a = mkctx();
    e->b = mkctx();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, end_while_entered, e), 0);
    assert_true(cx_event_wait(&e->entered, 1));
    if (!main_keeps_refs) {
        cx_context_release(e->a);
        cx_context_release(e->b);
    }
    cx_event_post(&e->released);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(e->released_timed_out, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(e->rc[i], 0);
    cx_event_destroy(&e->entered);
    cx_event_destroy(&e->released);
}

/* The contexts are left: another thread (main) can enter them, and they
 * hold what the thread wrote. */
static void thread_ending_with_contexts_entered_leaves_them(enum end_how how)
{
    ender e;
    memset(&e, 0, sizeof(e));
    ender_run(&e, how, true);
    assert_int_equal(cx_context_enter(e.a), 0);
    assert_ptr_equal(xval(), TAG(61));
    assert_int_equal(cx_context_enter(e.b), 0);
    assert_ptr_equal(xval(), TAG(62));
    assert_int_equal(cx_context_exit(e.b), 0);
    assert_int_equal(cx_context_exit(e.a), 0);
    assert_int_equal(cx_context_run(e.b, noop, NULL, NULL), 0);
    cx_context_release(e.a);
    cx_context_release(e.b);
}

static void thread_returning_with_contexts_entered_leaves_them(void **state)
{
    (void)state;
    thread_ending_with_contexts_entered_leaves_them(END_RETURN);
}

static void thread_calling_pthread_exit_with_contexts_entered_leaves_them(void **state)
{
    (void)state;
    thread_ending_with_contexts_entered_leaves_them(END_PTHREAD_EXIT);
}

/* The thread held the only references (main released its own while the
 * thread had them entered): its end drops them, innermost first, so b's
 * value goes before a's. */
static void thread_ending_with_contexts_entered_drops_their_references(enum end_how how)
{
    ender e;
    memset(&e, 0, sizeof(e));
    e.o = mkvar("owned", &owned_opts);
    atomic_store(&destroyed, 0);
    ender_run(&e, how, false);
    assert_int_equal(atomic_load(&destroyed), 2);
    assert_int_equal(destroy_log[0], 2);
    assert_int_equal(destroy_log[1], 1);
    cx_var_release(e.o);
}

static void thread_returning_with_contexts_entered_drops_their_references(void **state)
{
    (void)state;
    thread_ending_with_contexts_entered_drops_their_references(END_RETURN);
}

static void thread_calling_pthread_exit_with_contexts_entered_drops_their_references(void **state)
{
    (void)state;
    thread_ending_with_contexts_entered_drops_their_references(END_PTHREAD_EXIT);
}

/* ====================================================== racing enters */

enum { RACERS = 2 };

typedef struct race {
    cx_context *c;
    pthread_barrier_t start;
    cx_event lost; /* posted by each loser, once per round */
    unsigned rounds;
    int *wins;      /* [round]: winners, under mu */
    int *busy;      /* [round]: CX_EBUSY answers, under mu */
    pthread_mutex_t mu;
    int other_rc, exit_errors, timed_out;
    bool stop; /* under mu: a round went wrong, both racers stop */
} race;

static void *racer(void *p)
{
    race *r = p;
    for (unsigned i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->start);
        int rc = cx_context_enter(r->c);
        if (rc == 0) {
            /* Hold c until the other racer has tried (if both won,
             * nobody posts: give up after a while). */
            bool ok = cx_event_wait_ms(&r->lost, i + 1, 10000);
            uintptr_t n = (uintptr_t)cx_var_get_or(x, TAG(0));
            int set_rc = cx_var_set(x, (void *)(n + 1), NULL);
            int exit_rc = cx_context_exit(r->c);
            pthread_mutex_lock(&r->mu);
            r->wins[i]++;
            if (!ok) {
                r->timed_out++;
                r->stop = true;
            }
            if (set_rc != 0 || exit_rc != 0)
                r->exit_errors++;
            pthread_mutex_unlock(&r->mu);
        } else {
            pthread_mutex_lock(&r->mu);
            if (rc == CX_EBUSY)
                r->busy[i]++;
            else
                r->other_rc = rc;
            pthread_mutex_unlock(&r->mu);
            cx_event_post(&r->lost);
        }
        pthread_barrier_wait(&r->start); /* the round is over */
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
    }
    return NULL;
}

static void two_threads_racing_to_enter_one_context_exactly_one_wins(void **state)
{
    (void)state;
    race r;
    memset(&r, 0, sizeof(r));
    r.rounds = cx_test_scaled(200);
    r.wins = calloc(r.rounds, sizeof(int));
    r.busy = calloc(r.rounds, sizeof(int));
    assert_non_null(r.wins);
    assert_non_null(r.busy);
    r.c = mkctx();
    pthread_barrier_init(&r.start, NULL, RACERS);
    pthread_mutex_init(&r.mu, NULL);
    cx_event_init(&r.lost);
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(r.other_rc, 0);
    assert_int_equal(r.timed_out, 0);
    assert_int_equal(r.exit_errors, 0);
    for (unsigned i = 0; i < r.rounds; i++) {
        assert_int_equal(r.wins[i], 1);
        assert_int_equal(r.busy[i], RACERS - 1);
    }
    void *v = NULL;
    assert_int_equal(cx_context_get(r.c, x, &v), 0);
    assert_int_equal((uintptr_t)v, r.rounds);
    cx_event_destroy(&r.lost);
    pthread_mutex_destroy(&r.mu);
    pthread_barrier_destroy(&r.start);
    cx_context_release(r.c);
    free(r.wins);
    free(r.busy);
}

/* ================================================================ main */

/* fn of a run enters two contexts and returns without exiting them: the
 * run's end leaves them (innermost first), drops the enters' references,
 * and restores the context current before the run. */
struct leaky {
    cx_context *a, *b;
    int rc_a, rc_b;
};

static void *enter_two_and_return(void *p)
{
    struct leaky *l = p;
    l->rc_a = cx_context_enter(l->a);
    l->rc_b = cx_context_enter(l->b);
    (void)cx_var_set(x, TAG(0xb), NULL); /* lands in b */
    return NULL;
}

static void run_leaves_contexts_its_fn_entered_and_did_not_exit(void **state)
{
    (void)state;
    cx_context *outer = ctx_with_x(TAG(0x1));
    struct leaky l = {.a = cx_context_new(), .b = cx_context_new()};
    assert_non_null(l.a);
    assert_non_null(l.b);
    assert_int_equal(cx_context_run(outer, enter_two_and_return, &l, NULL), 0);
    assert_int_equal(l.rc_a, 0);
    assert_int_equal(l.rc_b, 0);
    assert_ptr_equal(xval(), TAG(0)); /* back in the thread's own context */
    /* Both left: they can be entered again, here. */
    assert_int_equal(cx_context_enter(l.b), 0);
    assert_ptr_equal(xval(), TAG(0xb));
    assert_int_equal(cx_context_exit(l.b), 0);
    assert_int_equal(cx_context_run(l.a, noop, NULL, NULL), 0);
    /* And the outer run's context was left too. */
    assert_int_equal(cx_context_run(outer, noop, NULL, NULL), 0);
    cx_context_release(l.a);
    cx_context_release(l.b);
    cx_context_release(outer);
}

#define T(f) cmocka_unit_test_teardown(f, base_context_is_empty)

int main(void)
{
    cx_watchdog(900);
    if (cx_var_new(&x, "x", NULL) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        T(enter_and_exit_of_null_are_einval),
        T(enter_makes_the_context_current_and_exit_restores_the_previous),
        T(enter_of_a_context_this_thread_entered_is_ebusy),
        T(enter_of_a_context_being_run_is_ebusy),
        T(enter_of_a_context_another_thread_entered_is_ebusy),
        T(enter_of_a_context_another_thread_runs_is_ebusy),
        T(enter_of_the_context_of_a_thread_create_in_thread_is_ebusy),
        T(exit_of_a_context_not_innermost_is_econtext),
        T(exit_inside_a_run_of_a_context_entered_outside_it_is_econtext),
        T(exit_from_another_thread_is_econtext),
        T(enters_and_exits_nest_in_lifo_order),
        T(token_made_in_an_entered_context_resets_only_there),
        T(enter_holds_a_reference_until_exit),
        T(thread_returning_with_contexts_entered_leaves_them),
        T(thread_calling_pthread_exit_with_contexts_entered_leaves_them),
        T(thread_returning_with_contexts_entered_drops_their_references),
        T(thread_calling_pthread_exit_with_contexts_entered_drops_their_references),
        T(two_threads_racing_to_enter_one_context_exactly_one_wins),
        T(run_leaves_contexts_its_fn_entered_and_did_not_exit),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cx_var_release(x);
    return rc;
}
