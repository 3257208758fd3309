/*
 * pthread_queue.c - a plain pthread work queue, the kind many C programs
 * carry around, made context-aware without changing it.
 *
 * The queue knows nothing about cxvars: it stores (function, argument)
 * pairs, void (*)(void *) and void *, and its workers call them. Making
 * it carry the submitter's context takes one call on each side of the
 * queue, and nothing in the executor:
 *
 *     cx_callback *cb;
 *     cx_bind(&cb, handle, task, 0);              // capture, at submit
 *     queue_push(q, cx_callback_invoke, cb);      // the executor runs it
 *
 * cx_callback_invoke runs handle(task) in a private copy of what the
 * submitter's context held at cx_bind, then releases the callback.
 *
 * Several submitter threads each serve their own requests: the request is
 * a heap object held by a context variable (the library frees it once the
 * last context holding it is gone). Every handler checks that it sees
 * exactly the request it was submitted for; the workers check that
 * nothing of a request stays in their own context between items. Exit
 * status 0 if all is right, 1 otherwise. CX_TEST_SCALE (percent) sizes the
 * run; at the default, 4 submitters send 2,000 callbacks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cxvars.h>

#define SUBMITTERS 4
#define WORKERS 3
#define QUEUE_CAP 64

/* ============================================== the queue (knows no cxvars) */

typedef struct work_item {
    void (*fn)(void *);
    void *arg;
} work_item;

typedef struct work_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    work_item slots[QUEUE_CAP];
    unsigned head, count;
    bool closed;
} work_queue;

static void queue_init(work_queue *q)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->head = q->count = 0;
    q->closed = false;
}

static void queue_push(work_queue *q, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == QUEUE_CAP)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->slots[(q->head + q->count++) % QUEUE_CAP] = (work_item){fn, arg};
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

/* false once the queue is closed and empty */
static bool queue_pop(work_queue *q, work_item *out)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->mu);
    bool got = q->count > 0;
    if (got) {
        *out = q->slots[q->head];
        q->head = (q->head + 1) % QUEUE_CAP;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return got;
}

static void queue_close(work_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static void queue_destroy(work_queue *q)
{
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
}

/* ====================================================== the application */

typedef struct request {
    unsigned long id;
} request;

static cx_var *current_request; /* request *, owned: freed by the library */
static work_queue queue;
static unsigned per_submitter;

static atomic_ulong handled, mismatches, requests_freed, leaked_into_worker, failures;

static void free_request(void *p)
{
    free(p);
    atomic_fetch_add(&requests_freed, 1);
}

/* What a handler receives: only what it needs besides the context. */
typedef struct task {
    unsigned long expected; /* the id its submitter was serving */
} task;

/* Code deep inside a handler: finds the request in the context. */
static unsigned long request_id_here(void)
{
    void *v = NULL;
    if (cx_var_get(current_request, &v) != 0 || v == NULL)
        return 0;
    return ((const request *)v)->id;
}

static void *handle(void *p)
{
    task *t = p;
    if (request_id_here() != t->expected) {
        if (atomic_fetch_add(&mismatches, 1) < 5)
            fprintf(stderr, "pthread_queue: task for request %lu saw request %lu\n", t->expected,
                    request_id_here());
    }
    free(t);
    atomic_fetch_add(&handled, 1);
    return NULL;
}

static void *worker(void *unused)
{
    (void)unused;
    work_item it;
    while (queue_pop(&queue, &it)) {
        it.fn(it.arg);
        /* The item ran in its own context: nothing of it is left here. */
        if (request_id_here() != 0)
            atomic_fetch_add(&leaked_into_worker, 1);
    }
    return NULL;
}

static void *submitter(void *p)
{
    unsigned long s = (unsigned long)(uintptr_t)p;
    for (unsigned i = 0; i < per_submitter; i++) {
        request *r = malloc(sizeof(*r));
        task *t = malloc(sizeof(*t));
        if (r == NULL || t == NULL) {
            free(r);
            free(t);
            atomic_fetch_add(&failures, 1);
            continue;
        }
        r->id = t->expected = s * 1000000 + i + 1;
        /* This thread serves request r until the reset. */
        cx_token *tok;
        if (cx_var_set(current_request, r, &tok) != 0) {
            free(r); /* a failed set leaves r with us */
            free(t);
            atomic_fetch_add(&failures, 1);
            continue;
        }
        cx_callback *cb;
        if (cx_bind(&cb, handle, t, 0) == 0) {
            queue_push(&queue, cx_callback_invoke, cb);
        } else {
            free(t);
            atomic_fetch_add(&failures, 1);
        }
        if (cx_var_reset(current_request, tok) != 0)
            atomic_fetch_add(&failures, 1);
        cx_token_release(tok);
    }
    return NULL;
}

static unsigned scaled(unsigned n, unsigned floor)
{
    const char *s = getenv("CX_TEST_SCALE");
    unsigned long pct = s != NULL ? strtoul(s, NULL, 10) : 100;
    unsigned long r = (unsigned long)n * pct / 100;
    return r < floor ? floor : (unsigned)r;
}

int main(void)
{
    per_submitter = scaled(500, 25);
    cx_var_opts opts = {.destroy = free_request};
    if (cx_var_new(&current_request, "request", &opts) != 0)
        return 1;
    queue_init(&queue);

    pthread_t w[WORKERS], s[SUBMITTERS];
    for (int i = 0; i < WORKERS; i++)
        if (pthread_create(&w[i], NULL, worker, NULL) != 0)
            return 1;
    for (int i = 0; i < SUBMITTERS; i++)
        if (pthread_create(&s[i], NULL, submitter, (void *)(uintptr_t)(i + 1)) != 0)
            return 1;
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_join(s[i], NULL);
    queue_close(&queue);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(w[i], NULL);
    queue_destroy(&queue);
    cx_var_release(current_request);

    unsigned long total = (unsigned long)SUBMITTERS * per_submitter;
    bool ok = atomic_load(&handled) == total && atomic_load(&mismatches) == 0 &&
              atomic_load(&requests_freed) == total && atomic_load(&leaked_into_worker) == 0 &&
              atomic_load(&failures) == 0;
    printf("pthread_queue: %lu callbacks from %d submitters on %d workers: %lu handled, "
           "%lu mismatches, %lu requests freed, %lu leaks, %lu failures: %s\n",
           total, SUBMITTERS, WORKERS, atomic_load(&handled), atomic_load(&mismatches),
           atomic_load(&requests_freed), atomic_load(&leaked_into_worker),
           atomic_load(&failures), ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
