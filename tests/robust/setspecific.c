/* setspecific.c - the library's per-thread state is freed at thread exit
 * only if it was registered under its pthread key; when
 * pthread_setspecific fails, the call that needed the state must fail
 * (CX_ENOMEM, nothing changed, the value still the caller's) instead of
 * going on with a state nobody will free.
 *
 * Linked with -Wl,--wrap=pthread_setspecific (check-setspecific), so the
 * library's calls go through __wrap_pthread_setspecific below, which fails
 * on demand. Run under memcheck too: a state kept after a failed
 * registration is a leak.
 *
 * Exit status 0 if every check passed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cx_wait.h"
#include "cxvars.h"

int __real_pthread_setspecific(pthread_key_t key, const void *value);
int __wrap_pthread_setspecific(pthread_key_t key, const void *value);

static atomic_bool failing;
static atomic_int refused;

/* Registrations fail while `failing` is set (clearing one always works,
 * as in glibc). */
int __wrap_pthread_setspecific(pthread_key_t key, const void *value)
{
    if (value != NULL && atomic_load(&failing)) {
        atomic_fetch_add(&refused, 1);
        return ENOMEM;
    }
    return __real_pthread_setspecific(key, value);
}

static int failures;
#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "setspecific: line %d: check failed: %s\n", __LINE__, \
                    #cond);                                                     \
            failures++;                                                         \
        }                                                                       \
    } while (0)

static atomic_int destroyed;
static void box_free(void *v)
{
    free(v);
    atomic_fetch_add(&destroyed, 1);
}

static cx_var *owned;

static void *noop(void *p) { return p; }

typedef struct seen {
    int set_rc, run_rc, get_rc, set2_rc;
    int destroyed_after_failure;
    void *value;
} seen;

/* A fresh thread: its first calls need the state. */
static void *first_use(void *p)
{
    seen *s = p;
    atomic_store(&failing, true);
    s->value = malloc(16);
    s->set_rc = cx_var_set(owned, s->value, NULL);
    cx_context *c = cx_context_new();
    s->run_rc = c != NULL ? cx_context_run(c, noop, NULL, NULL) : -100;
    cx_context_release(c);
    atomic_store(&failing, false);
    s->destroyed_after_failure = atomic_load(&destroyed);
    if (s->set_rc != 0)
        free(s->value); /* a failed set leaves it ours */
    void *ignored;
    s->get_rc = cx_var_get(owned, &ignored);
    /* Registration works again: this time the state is kept, and freed
     * with the value when the thread ends. */
    s->set2_rc = cx_var_set(owned, malloc(16), NULL);
    return NULL;
}

int main(void)
{
    cx_watchdog(120);
    cx_var_opts o = {.destroy = box_free};
    if (cx_var_new(&owned, "owned", &o) != 0)
        return 1;
    seen s = {99, 99, 99, 99, 0, NULL};
    pthread_t t;
    if (pthread_create(&t, NULL, first_use, &s) != 0)
        return 1;
    pthread_join(t, NULL);
    CHECK(atomic_load(&refused) > 0); /* the library did register */
    CHECK(s.set_rc == CX_ENOMEM);
    CHECK(s.run_rc == CX_ENOMEM);
    CHECK(s.destroyed_after_failure == 0);
    CHECK(s.get_rc == CX_ELOOKUP);
    CHECK(s.set2_rc == 0);
    CHECK(atomic_load(&destroyed) == 1); /* the second value, at thread exit */
    cx_var_release(owned);
    printf("setspecific: %s (%d registrations refused)\n", failures == 0 ? "ok" : "FAILED",
           atomic_load(&refused));
    return failures == 0 ? 0 : 1;
}
