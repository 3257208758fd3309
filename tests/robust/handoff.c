/* handoff.c - one context handed between threads through the library alone,
 * for race detectors (SPEC 5.1): run with helgrind and DRD and no
 * suppression file, it must give zero reports.
 *
 * The context holds a counter as an owned value: a malloc'd struct that the
 * thread holding the context reads, replaces by a new one it writes, and
 * whose destroy callback frees the old one. So every handoff moves user
 * data written by one thread to another that reads and frees it; only the
 * library orders those accesses (leave -> enter, value -> destroy,
 * submit -> job, job -> future).
 *
 * Scenarios (all by default, or those named on the command line):
 *   turns     3 threads take turns running the context, in a fixed order
 *             passed on by semaphores (which order them too)
 *   spin      3 threads each loop on cx_context_run until it returns 0,
 *             N times: nothing but the library orders them
 *   race      2 threads race to run it, round after round: exactly one
 *             wins each round (it holds the context until the other tried)
 *   enter     as spin, with cx_context_enter/cx_context_exit
 *   enterrace as race, with cx_context_enter
 *   createin  a thread running the context in a loop, and threads started
 *             in it by cx_thread_create_in (retried on CX_EBUSY)
 *   submitin  pool jobs submitted into the context with cx_pool_submit_in
 *             (no waits between submits), and a thread running it
 * At the end the counter equals the number of successful entries.
 *
 * Exit status: 0 if every scenario's count is right, 1 otherwise.
 * Sizes scale with CX_TEST_SCALE (percent). A watchdog ends a hung run.
 */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx_test.h"
#include "cx_wait.h"
#include "cxpool.h"
#include "cxvars.h"

/* ================================================================ counter */

typedef struct counter {
    unsigned long n;
    unsigned long writer; /* the thread that wrote it (user data) */
} counter;

static cx_var *count_var; /* owned: counter *, destroyed by counter_free */
static cx_var *who_var;   /* plain word: the last writer */
static atomic_ulong bump_errors;

static void counter_free(void *v) { free(v); }

/* In the context: count_var = old + 1, written by `who`. Returns NULL on
 * success. */
static void *bump(void *arg)
{
    unsigned long who = (unsigned long)(uintptr_t)arg;
    void *v = NULL;
    unsigned long n = 0;
    if (cx_var_get(count_var, &v) == 0) {
        const counter *c = v;
        n = c->n;
        if (c->writer > 64)
            atomic_fetch_add(&bump_errors, 1);
    }
    counter *nc = malloc(sizeof(*nc));
    if (nc == NULL) {
        atomic_fetch_add(&bump_errors, 1);
        return NULL;
    }
    nc->n = n + 1;
    nc->writer = who;
    if (cx_var_set(count_var, nc, NULL) != 0) {
        free(nc);
        atomic_fetch_add(&bump_errors, 1);
    }
    if (cx_var_set(who_var, (void *)(uintptr_t)who, NULL) != 0)
        atomic_fetch_add(&bump_errors, 1);
    return NULL;
}

static unsigned long count_of(cx_context *ctx)
{
    void *v = NULL;
    if (cx_context_get(ctx, count_var, &v) != 0)
        return 0;
    return ((const counter *)v)->n;
}

static int failures;

static void report(const char *name, unsigned long got, unsigned long want, const char *more)
{
    bool ok = got == want && atomic_load(&bump_errors) == 0;
    printf("handoff: %-9s %s: count %lu, expected %lu%s%s\n", name, ok ? "ok" : "FAILED", got,
           want, more != NULL ? ", " : "", more != NULL ? more : "");
    if (!ok) {
        failures++;
        if (atomic_load(&bump_errors) != 0)
            printf("handoff: %-9s %lu bump errors\n", name, atomic_load(&bump_errors));
    }
    atomic_store(&bump_errors, 0);
}

static cx_context *new_ctx(void)
{
    cx_context *c = cx_context_new();
    if (c == NULL) {
        fprintf(stderr, "handoff: out of memory\n");
        exit(1);
    }
    return c;
}

/* ================================================================ turns */

enum { NTHREADS = 3 };

typedef struct turns {
    cx_context *ctx;
    sem_t turn[NTHREADS];
    unsigned rounds;
    int bad_rc[NTHREADS];
} turns;

typedef struct turn_arg {
    turns *t;
    unsigned id;
} turn_arg;

static void *turn_thread(void *p)
{
    turn_arg *a = p;
    turns *t = a->t;
    for (unsigned i = 0; i < t->rounds; i++) {
        sem_wait(&t->turn[a->id]);
        if (cx_context_run(t->ctx, bump, (void *)(uintptr_t)(a->id + 1), NULL) != 0)
            t->bad_rc[a->id]++;
        sem_post(&t->turn[(a->id + 1) % NTHREADS]);
    }
    return NULL;
}

static void scenario_turns(void)
{
    turns t;
    memset(&t, 0, sizeof(t));
    t.ctx = new_ctx();
    t.rounds = cx_test_scaled(300);
    turn_arg a[NTHREADS];
    pthread_t th[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++)
        sem_init(&t.turn[i], 0, i == 0 ? 1 : 0);
    for (unsigned i = 0; i < NTHREADS; i++) {
        a[i] = (turn_arg){.t = &t, .id = i};
        pthread_create(&th[i], NULL, turn_thread, &a[i]);
    }
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    int bad = t.bad_rc[0] + t.bad_rc[1] + t.bad_rc[2];
    char more[64];
    snprintf(more, sizeof(more), "%d runs refused", bad);
    if (bad != 0)
        failures++;
    report("turns", count_of(t.ctx), NTHREADS * (unsigned long)t.rounds, more);
    for (unsigned i = 0; i < NTHREADS; i++)
        sem_destroy(&t.turn[i]);
    cx_context_release(t.ctx);
}

/* ================================================================ spin */

typedef struct spin {
    cx_context *ctx;
    bool use_enter; /* cx_context_enter/exit instead of cx_context_run */
    unsigned successes;
    unsigned long busy[NTHREADS];
    int bad_rc[NTHREADS];
} spin;

typedef struct spin_arg {
    spin *s;
    unsigned id;
} spin_arg;

/* One entry into ctx that bumps; 0, CX_EBUSY or another error. */
static int enter_and_bump(cx_context *ctx, bool use_enter, unsigned long who)
{
    if (!use_enter)
        return cx_context_run(ctx, bump, (void *)(uintptr_t)who, NULL);
    int rc = cx_context_enter(ctx);
    if (rc != 0)
        return rc;
    bump((void *)(uintptr_t)who);
    return cx_context_exit(ctx);
}

static void *spin_thread(void *p)
{
    spin_arg *a = p;
    spin *s = a->s;
    for (unsigned done = 0; done < s->successes;) {
        int rc = enter_and_bump(s->ctx, s->use_enter, a->id + 1);
        if (rc == 0) {
            done++;
            sched_yield(); /* let the others in (valgrind runs one thread
                              at a time, for long slices) */
        } else if (rc == CX_EBUSY) {
            s->busy[a->id]++;
            sched_yield();
        } else {
            s->bad_rc[a->id]++;
            break;
        }
    }
    return NULL;
}

static void scenario_spin(const char *name, bool use_enter)
{
    spin s;
    memset(&s, 0, sizeof(s));
    s.ctx = new_ctx();
    s.use_enter = use_enter;
    s.successes = cx_test_scaled(300);
    spin_arg a[NTHREADS];
    pthread_t th[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        a[i] = (spin_arg){.s = &s, .id = i};
        pthread_create(&th[i], NULL, spin_thread, &a[i]);
    }
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    char more[96];
    snprintf(more, sizeof(more), "%lu CX_EBUSY retries, %d other errors",
             s.busy[0] + s.busy[1] + s.busy[2], s.bad_rc[0] + s.bad_rc[1] + s.bad_rc[2]);
    if (s.bad_rc[0] + s.bad_rc[1] + s.bad_rc[2] != 0)
        failures++;
    report(name, count_of(s.ctx), NTHREADS * (unsigned long)s.successes, more);
    cx_context_release(s.ctx);
}

/* ================================================================ race */

typedef struct race {
    cx_context *ctx;
    bool use_enter;
    unsigned rounds;
    pthread_barrier_t start;
    cx_event lost; /* posted by each loser */
    pthread_mutex_t mu;
    unsigned long wins, losses, bad_rounds, other_errors; /* under mu */
    unsigned *round_wins;                                 /* under mu */
    bool stop;                                            /* under mu */
} race;

typedef struct race_arg {
    race *r;
    unsigned id, round;
} race_arg;

/* The winner, inside ctx: bump, then hold ctx until the loser has tried. */
static void *race_hold(void *p)
{
    race_arg *a = p;
    bump((void *)(uintptr_t)(a->id + 1));
    if (!cx_event_wait_ms(&a->r->lost, a->round + 1, 10000)) {
        pthread_mutex_lock(&a->r->mu);
        a->r->stop = true; /* both won: nobody posts */
        pthread_mutex_unlock(&a->r->mu);
    }
    return NULL;
}

static void *race_thread(void *p)
{
    race_arg *a = p;
    race *r = a->r;
    for (unsigned i = 0; i < r->rounds; i++) {
        a->round = i;
        pthread_barrier_wait(&r->start);
        int rc;
        if (r->use_enter) {
            rc = cx_context_enter(r->ctx);
            if (rc == 0) {
                race_hold(a);
                rc = cx_context_exit(r->ctx);
                if (rc != 0)
                    rc = 1; /* an exit error, not a loss */
            }
        } else {
            rc = cx_context_run(r->ctx, race_hold, a, NULL);
        }
        pthread_mutex_lock(&r->mu);
        if (rc == 0) {
            r->wins++;
            r->round_wins[i]++;
        } else if (rc == CX_EBUSY) {
            r->losses++;
        } else {
            r->other_errors++;
        }
        pthread_mutex_unlock(&r->mu);
        if (rc != 0)
            cx_event_post(&r->lost);
        pthread_barrier_wait(&r->start); /* the round is over */
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
    }
    return NULL;
}

static void scenario_race(const char *name, bool use_enter)
{
    race r;
    memset(&r, 0, sizeof(r));
    r.ctx = new_ctx();
    r.use_enter = use_enter;
    r.rounds = cx_test_scaled(100);
    r.round_wins = calloc(r.rounds, sizeof(*r.round_wins));
    if (r.round_wins == NULL)
        exit(1);
    pthread_barrier_init(&r.start, NULL, 2);
    pthread_mutex_init(&r.mu, NULL);
    cx_event_init(&r.lost);
    race_arg a[2];
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++) {
        a[i] = (race_arg){.r = &r, .id = i};
        pthread_create(&th[i], NULL, race_thread, &a[i]);
    }
    for (unsigned i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (unsigned i = 0; i < r.rounds; i++)
        if (r.round_wins[i] != 1)
            r.bad_rounds++;
    char more[128];
    snprintf(more, sizeof(more), "%lu wins, %lu CX_EBUSY, %lu rounds without exactly one winner, "
             "%lu other errors", r.wins, r.losses, r.bad_rounds, r.other_errors);
    if (r.bad_rounds != 0 || r.other_errors != 0 || r.stop)
        failures++;
    report(name, count_of(r.ctx), r.rounds, more);
    cx_event_destroy(&r.lost);
    pthread_mutex_destroy(&r.mu);
    pthread_barrier_destroy(&r.start);
    free(r.round_wins);
    cx_context_release(r.ctx);
}

/* ============================================================ create_in */

static void scenario_create_in(void)
{
    spin s;
    memset(&s, 0, sizeof(s));
    s.ctx = new_ctx();
    s.successes = cx_test_scaled(100);
    spin_arg a = {.s = &s, .id = 0};
    pthread_t runner;
    pthread_create(&runner, NULL, spin_thread, &a);
    unsigned threads = cx_test_scaled(100), started = 0;
    unsigned long busy = 0, errors = 0;
    while (started < threads) {
        pthread_t t;
        int rc = cx_thread_create_in(&t, NULL, s.ctx, bump, (void *)(uintptr_t)2);
        if (rc == 0) {
            started++;
            pthread_join(t, NULL);
        } else if (rc == CX_EBUSY) {
            busy++;
            sched_yield();
        } else {
            errors++;
            break;
        }
    }
    pthread_join(runner, NULL);
    char more[96];
    snprintf(more, sizeof(more), "%lu CX_EBUSY retries, %lu other errors", busy + s.busy[0],
             errors + (unsigned long)s.bad_rc[0]);
    if (errors != 0 || s.bad_rc[0] != 0)
        failures++;
    report("createin", count_of(s.ctx), (unsigned long)s.successes + threads, more);
    cx_context_release(s.ctx);
}

/* ============================================================ submit_in */

static void scenario_submit_in(void)
{
    cx_pool *pool = NULL;
    cx_pool_opts o = {.threads = 2, .queue_size = 16};
    if (cx_pool_new(&pool, &o) != 0) {
        fprintf(stderr, "handoff: cx_pool_new failed\n");
        exit(1);
    }
    spin s;
    memset(&s, 0, sizeof(s));
    s.ctx = new_ctx();
    s.successes = cx_test_scaled(100);
    spin_arg a = {.s = &s, .id = 0};
    pthread_t runner;
    pthread_create(&runner, NULL, spin_thread, &a);
    unsigned jobs = cx_test_scaled(300);
    cx_future **f = calloc(jobs, sizeof(*f));
    if (f == NULL)
        exit(1);
    unsigned long ran = 0, busy = 0, errors = 0;
    for (unsigned i = 0; i < jobs; i++)
        if (cx_pool_submit_in(pool, s.ctx, bump, (void *)(uintptr_t)3, &f[i]) != 0)
            errors++;
    for (unsigned i = 0; i < jobs; i++) {
        if (f[i] == NULL)
            continue;
        int rc = cx_future_result(f[i], NULL);
        if (rc == 0)
            ran++;
        else if (rc == CX_EBUSY)
            busy++; /* version 1: the context was entered by the runner */
        else
            errors++;
        cx_future_release(f[i]);
    }
    pthread_join(runner, NULL);
    cx_pool_free(pool);
    free(f);
    char more[128];
    snprintf(more, sizeof(more), "%lu jobs ran, %lu jobs CX_EBUSY, %lu other errors", ran, busy,
             errors + (unsigned long)s.bad_rc[0]);
    if (errors != 0 || s.bad_rc[0] != 0)
        failures++;
    report("submitin", count_of(s.ctx), (unsigned long)s.successes + ran, more);
    cx_context_release(s.ctx);
}

/* ================================================================ main */

static bool wanted(int argc, char **argv, const char *name)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    cx_watchdog(600);
    cx_var_opts owned = {.destroy = counter_free};
    if (cx_var_new(&count_var, "count", &owned) != 0 || cx_var_new(&who_var, "who", NULL) != 0) {
        fprintf(stderr, "handoff: cx_var_new failed\n");
        return 1;
    }
    if (wanted(argc, argv, "turns"))
        scenario_turns();
    if (wanted(argc, argv, "spin"))
        scenario_spin("spin", false);
    if (wanted(argc, argv, "race"))
        scenario_race("race", false);
    if (wanted(argc, argv, "enter"))
        scenario_spin("enter", true);
    if (wanted(argc, argv, "enterrace"))
        scenario_race("enterrace", true);
    if (wanted(argc, argv, "createin"))
        scenario_create_in();
    if (wanted(argc, argv, "submitin"))
        scenario_submit_in();
    cx_var_release(count_var);
    cx_var_release(who_var);
    printf("handoff: %s\n", failures == 0 ? "all scenarios passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
