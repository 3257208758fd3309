/*
 * glib_executors.c - GLib's GThreadPool and g_main_context_invoke carrying
 * the submitter's context, with no change to GLib.
 *
 * Both take a plain function and a gpointer. Bind at submit and hand GLib
 * the callback:
 *
 *     cx_bind(&cb, handle, task, 0);                       // capture
 *     g_thread_pool_push(pool, cb, NULL);                  // pool func:
 *         static void run_bound(gpointer cb, gpointer u) { cx_callback_invoke(cb); }
 *
 *     g_main_context_invoke_full(ctx, G_PRIORITY_DEFAULT, run_once, cb,
 *                                (GDestroyNotify)cx_callback_release);
 *         static gboolean run_once(gpointer cb) {
 *             cx_callback_run(cb, NULL); return G_SOURCE_REMOVE; }
 *
 * (The second form lets GLib release the callback even if the source is
 * destroyed without running, e.g. when its main context goes away.)
 *
 * Several submitter threads each serve their own requests (a heap object
 * held by a context variable and freed by the library) and send every
 * request once through the pool and once to a main loop running in its
 * own thread. Every handler checks it sees exactly its submitter's
 * request. Exit status 0 if all is right, 1 otherwise. CX_TEST_SCALE
 * (percent) sizes the run; at the default, 4 submitters send 2,000
 * callbacks through each executor.
 */
#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cxvars.h>

#define SUBMITTERS 4
#define POOL_THREADS 3

typedef struct request {
    unsigned long id;
} request;

static cx_var *current_request; /* request *, owned: freed by the library */
static unsigned per_submitter;
static unsigned long total;

static GThreadPool *pool;
static GMainContext *loop_ctx;
static GMainLoop *loop;

static atomic_ulong pool_handled, loop_handled, mismatches, requests_freed, failures;
static unsigned long loop_calls; /* the loop thread's only */

static void free_request(void *p)
{
    free(p);
    atomic_fetch_add(&requests_freed, 1);
}

static unsigned long request_id_here(void)
{
    void *v = NULL;
    if (cx_var_get(current_request, &v) != 0 || v == NULL)
        return 0;
    return ((const request *)v)->id;
}

typedef struct task {
    unsigned long expected;
    atomic_ulong *count;
    const char *where;
} task;

static void *handle(void *p)
{
    task *t = p;
    unsigned long id = request_id_here();
    if (id != t->expected && atomic_fetch_add(&mismatches, 1) < 5)
        fprintf(stderr, "glib_executors: %s task for request %lu saw request %lu\n", t->where,
                t->expected, id);
    atomic_fetch_add(t->count, 1);
    free(t);
    return NULL;
}

/* ----------------------------------------------------- GThreadPool */

static void run_bound(gpointer cb, gpointer unused)
{
    (void)unused;
    cx_callback_invoke(cb);
    /* The worker's own context holds nothing of the request. */
    if (request_id_here() != 0)
        atomic_fetch_add(&mismatches, 1);
}

/* ------------------------------------------- g_main_context_invoke */

static gboolean run_once(gpointer cb)
{
    if (cx_callback_run(cb, NULL) != 0)
        atomic_fetch_add(&failures, 1);
    if (request_id_here() != 0)
        atomic_fetch_add(&mismatches, 1);
    /* The last callback stops the loop (GLib releases cb afterwards). */
    if (++loop_calls == total)
        g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

static void *loop_thread(void *unused)
{
    (void)unused;
    g_main_context_push_thread_default(loop_ctx);
    g_main_loop_run(loop);
    g_main_context_pop_thread_default(loop_ctx);
    return NULL;
}

/* ------------------------------------------------------- submitters */

static task *new_task(unsigned long id, atomic_ulong *count, const char *where)
{
    task *t = malloc(sizeof(*t));
    if (t != NULL)
        *t = (task){.expected = id, .count = count, .where = where};
    return t;
}

static void submit_both(unsigned long id)
{
    task *tp = new_task(id, &pool_handled, "GThreadPool");
    task *tl = new_task(id, &loop_handled, "g_main_context_invoke");
    request *r = malloc(sizeof(*r));
    cx_token *tok = NULL;
    if (tp == NULL || tl == NULL || r == NULL) {
        free(r);
        goto fail;
    }
    r->id = id;
    if (cx_var_set(current_request, r, &tok) != 0) {
        free(r); /* a failed set leaves r with us */
        goto fail;
    }
    cx_callback *cb;
    if (cx_bind(&cb, handle, tp, 0) != 0 || !g_thread_pool_push(pool, cb, NULL))
        goto fail; /* (push cannot fail for a non-exclusive pool) */
    tp = NULL;
    if (cx_bind(&cb, handle, tl, 0) != 0)
        goto fail;
    g_main_context_invoke_full(loop_ctx, G_PRIORITY_DEFAULT, run_once, cb,
                               (GDestroyNotify)cx_callback_release);
    tl = NULL;
    if (cx_var_reset(current_request, tok) != 0)
        atomic_fetch_add(&failures, 1);
    cx_token_release(tok);
    return;
fail:
    atomic_fetch_add(&failures, 1);
    free(tp);
    free(tl);
    if (tok != NULL) {
        (void)cx_var_reset(current_request, tok);
        cx_token_release(tok);
    }
}

static void *submitter(void *p)
{
    unsigned long s = (unsigned long)(uintptr_t)p;
    for (unsigned i = 0; i < per_submitter; i++)
        submit_both(s * 1000000 + i + 1);
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
    total = (unsigned long)SUBMITTERS * per_submitter;
    cx_var_opts opts = {.destroy = free_request};
    if (cx_var_new(&current_request, "request", &opts) != 0)
        return 1;
    pool = g_thread_pool_new(run_bound, NULL, POOL_THREADS, FALSE, NULL);
    loop_ctx = g_main_context_new();
    loop = g_main_loop_new(loop_ctx, FALSE);
    pthread_t lt, s[SUBMITTERS];
    if (pthread_create(&lt, NULL, loop_thread, NULL) != 0)
        return 1;
    for (int i = 0; i < SUBMITTERS; i++)
        if (pthread_create(&s[i], NULL, submitter, (void *)(uintptr_t)(i + 1)) != 0)
            return 1;
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_join(s[i], NULL);
    g_thread_pool_free(pool, FALSE, TRUE); /* runs what is queued, waits */
    if (atomic_load(&failures) != 0) {
        /* Not every loop callback was sent: the loop would not stop. */
        fprintf(stderr, "glib_executors: %lu submissions failed\n", atomic_load(&failures));
        return 1;
    }
    pthread_join(lt, NULL);
    g_main_loop_unref(loop);
    g_main_context_unref(loop_ctx);
    /* GLib keeps idle pool threads for reuse: stop them (leak checkers). */
    g_thread_pool_set_max_unused_threads(0);
    g_thread_pool_stop_unused_threads();
    cx_var_release(current_request);

    bool ok = atomic_load(&pool_handled) == total && atomic_load(&loop_handled) == total &&
              atomic_load(&mismatches) == 0 && atomic_load(&requests_freed) == total &&
              atomic_load(&failures) == 0;
    printf("glib_executors: %lu requests from %d submitters: %lu via GThreadPool, %lu via "
           "g_main_context_invoke, %lu mismatches, %lu requests freed, %lu failures: %s\n",
           total, SUBMITTERS, atomic_load(&pool_handled), atomic_load(&loop_handled),
           atomic_load(&mismatches), atomic_load(&requests_freed), atomic_load(&failures),
           ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
