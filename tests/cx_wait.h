/* cx_wait.h - bounded waits for the test programs.
 *
 * A test that checks a thread-exit or cancellation path must fail, not
 * hang, when the library gets it wrong. Every wait here gives up after
 * CX_WAIT_SECONDS (generous: valgrind runs are 50x slower) and says so;
 * cx_watchdog() arms alarm() as a backstop for the waits that cannot be
 * bounded (pthread_join): SIGALRM's default action ends the process with a
 * non-zero status.
 *
 * The events are a mutex and a condition variable, which helgrind, DRD and
 * TSan all model (sem_timedwait and pthread_timedjoin_np are not modelled
 * by every tool: they would hide real handoffs or invent races).
 */
#ifndef CX_WAIT_H
#define CX_WAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CX_WAIT_SECONDS 120

/* Ends the process with SIGALRM after `seconds` (CX_TEST_WATCHDOG, in
 * seconds, overrides; 0 disables). */
static inline void cx_watchdog(unsigned seconds)
{
    const char *s = getenv("CX_TEST_WATCHDOG");
    if (s != NULL)
        seconds = (unsigned)strtoul(s, NULL, 10);
    alarm(seconds);
}

/* An absolute CLOCK_REALTIME time `ms` milliseconds from now (the clock of
 * a default condition variable). */
static inline struct timespec cx_realtime_in_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_nsec -= 1000000000L;
        t.tv_sec++;
    }
    return t;
}

/* A counter that threads post and wait on. */
typedef struct cx_event {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned n;
} cx_event;

static inline void cx_event_init(cx_event *e)
{
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->n = 0;
}

static inline void cx_event_destroy(cx_event *e)
{
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

static inline void cx_event_post(cx_event *e)
{
    pthread_mutex_lock(&e->mu);
    e->n++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Waits until the event has been posted at least `n` times in all, or `ms`
 * milliseconds passed: true if it was. Not a cancellation point (the
 * cancellation tests must choose where a thread is cancelled, and a
 * thread cancelled inside pthread_cond_timedwait would die holding mu). */
static inline bool cx_event_wait_ms(cx_event *e, unsigned n, long ms)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    struct timespec d = cx_realtime_in_ms(ms);
    bool ok = true;
    pthread_mutex_lock(&e->mu);
    while (e->n < n) {
        if (pthread_cond_timedwait(&e->cv, &e->mu, &d) != 0 && e->n < n) {
            ok = false;
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    pthread_setcancelstate(old, NULL);
    return ok;
}

static inline bool cx_event_wait(cx_event *e, unsigned n)
{
    return cx_event_wait_ms(e, n, CX_WAIT_SECONDS * 1000L);
}

#endif
