/*
 * request_id_logging.c - a logger that stamps every line with the current
 * request id, across nested pool jobs.
 *
 * log_line() takes a message and nothing else. The request id and the
 * "span" (which step of the request is running, as a path like
 * handle/render/audit) come from context variables. The request handler
 * runs on a pool worker and fans out into nested jobs, which fan out
 * again; each job adds its own step to the span in its own copy of the
 * context, so the parent's span is untouched and nobody resets anything.
 *
 * The lines of three concurrent requests come out interleaved, as they do
 * in a real server; the program then shows them grouped by request id
 * (what grep would give you) and checks that every job saw the request it
 * was started for, that each request logged all its lines, and that the
 * library freed every id and span string once the last job holding it
 * had finished. Exit status 0 if so, 1 otherwise.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cxpool.h>

#define N_REQUESTS 3
#define LINES_PER_REQUEST 6

static cx_var *request_id; /* char *, heap, freed by the library */
static cx_var *span;       /* char *, heap, freed by the library */
static cx_pool *pool;

static atomic_int strings_freed;
static atomic_int mismatches;

static void free_string(void *s)
{
    free(s);
    atomic_fetch_add(&strings_freed, 1);
}

/* ================================================================ logger */

#define MAX_LINES 64
#define LINE_LEN 128

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char lines[MAX_LINES][LINE_LEN];
static int n_lines;

/* The whole logger. Call it from anywhere: a request's stamp comes from
 * the context the caller runs in. */
static void log_line(const char *fmt, ...)
{
    char msg[64], line[LINE_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "req=%-7s span=%-20s %s",
             (char *)cx_var_get_or(request_id, "-"), (char *)cx_var_get_or(span, "-"), msg);

    pthread_mutex_lock(&log_lock);
    if (n_lines < MAX_LINES)
        memcpy(lines[n_lines++], line, sizeof(line));
    printf("  %s\n", line);
    fflush(stdout);
    pthread_mutex_unlock(&log_lock);
}

/* Adds a step to the current span, in the current context only: in a job,
 * that is the job's own copy, which disappears when the job ends. */
static void enter_span(const char *name)
{
    const char *parent = cx_var_get_or(span, NULL);
    size_t n = (parent != NULL ? strlen(parent) + 1 : 0) + strlen(name) + 1;
    char *s = malloc(n);
    if (s == NULL)
        return;
    snprintf(s, n, "%s%s%s", parent != NULL ? parent : "", parent != NULL ? "/" : "", name);
    if (cx_var_set(span, s, NULL) != 0)
        free(s); /* a failed set leaves the string with us */
}

/* ====================================================== outstanding jobs */

/* main waits until every job, however deeply nested, has finished; a job
 * never waits for another (that could take all the workers). */
static pthread_mutex_t wg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wg_cond = PTHREAD_COND_INITIALIZER;
static int outstanding;

static void job_done(void)
{
    pthread_mutex_lock(&wg_lock);
    if (--outstanding == 0)
        pthread_cond_broadcast(&wg_cond);
    pthread_mutex_unlock(&wg_lock);
}

/* The argument is the id the request was started with, for the self-check
 * only: the logger never looks at it. */
static void spawn(void *(*fn)(void *), const char *expected_id)
{
    pthread_mutex_lock(&wg_lock);
    outstanding++;
    pthread_mutex_unlock(&wg_lock);
    int rc = cx_pool_submit(pool, fn, (void *)expected_id, NULL);
    if (rc != 0) {
        log_line("cannot submit a job: %s", cx_strerror(rc));
        atomic_fetch_add(&mismatches, 1);
        job_done();
    }
}

static void expect(const char *expected_id)
{
    const char *seen = cx_var_get_or(request_id, "-");
    if (strcmp(seen, expected_id) != 0) {
        printf("MISMATCH: a job of %s saw %s\n", expected_id, seen);
        atomic_fetch_add(&mismatches, 1);
    }
}

/* =========================================================== the request */

static void *audit(void *expected_id)
{
    enter_span("audit");
    expect(expected_id);
    log_line("audit record written");
    job_done();
    return NULL;
}

static void *render(void *expected_id)
{
    enter_span("render");
    expect(expected_id);
    log_line("page rendered");
    spawn(audit, expected_id); /* two hops from the handler */
    job_done();
    return NULL;
}

static void *load_user(void *expected_id)
{
    enter_span("db");
    expect(expected_id);
    log_line("SELECT * FROM users");
    log_line("user loaded");
    job_done();
    return NULL;
}

static void *handle(void *expected_id)
{
    enter_span("handle");
    expect(expected_id);
    log_line("request received");
    spawn(load_user, expected_id);
    spawn(render, expected_id);
    /* The children added "db" and "render" to the span in their own
     * copies; ours still says "handle". */
    log_line("handler done, children running");
    job_done();
    return NULL;
}

/* ================================================================== main */

static const char *request_names[N_REQUESTS] = {"req-101", "req-102", "req-103"};

int main(void)
{
    int rc;
    cx_var_opts owned = {.destroy = free_string};
    if ((rc = cx_var_new(&request_id, "request_id", &owned)) != 0 ||
        (rc = cx_var_new(&span, "span", &owned)) != 0 ||
        (rc = cx_pool_new(&pool, &(cx_pool_opts){.threads = 3})) != 0) {
        fprintf(stderr, "request_id_logging: %s\n", cx_strerror(rc));
        return 1;
    }

    printf("---- log lines as they are written (three requests at once)\n");
    log_line("server starting");
    for (int i = 0; i < N_REQUESTS; i++) {
        /* What an accept loop does: set the id, hand the request to the
         * pool, undo the set. */
        cx_token *tok;
        char *id = strdup(request_names[i]);
        if (id == NULL || cx_var_set(request_id, id, &tok) != 0) {
            free(id);
            return 1;
        }
        spawn(handle, request_names[i]);
        cx_var_reset(request_id, tok);
        cx_token_release(tok);
    }
    log_line("all requests dispatched");

    pthread_mutex_lock(&wg_lock);
    while (outstanding > 0)
        pthread_cond_wait(&wg_cond, &wg_lock);
    pthread_mutex_unlock(&wg_lock);
    cx_pool_free(pool);

    printf("---- the same lines grouped by request id\n");
    int per_request[N_REQUESTS] = {0};
    for (int r = 0; r < N_REQUESTS; r++) {
        char key[32];
        snprintf(key, sizeof(key), "req=%-7s ", request_names[r]);
        for (int i = 0; i < n_lines; i++)
            if (strncmp(lines[i], key, strlen(key)) == 0) {
                printf("  %s\n", lines[i]);
                per_request[r]++;
            }
    }

    int ok = atomic_load(&mismatches) == 0;
    for (int r = 0; r < N_REQUESTS; r++)
        if (per_request[r] != LINES_PER_REQUEST) {
            printf("%s logged %d lines, expected %d\n", request_names[r], per_request[r],
                   LINES_PER_REQUEST);
            ok = 0;
        }
    /* One id per request, one span per job (4 jobs per request). */
    int want_freed = N_REQUESTS * (1 + 4);
    if (atomic_load(&strings_freed) != want_freed) {
        printf("%d strings freed by the library, expected %d\n", atomic_load(&strings_freed),
               want_freed);
        ok = 0;
    }
    cx_var_release(request_id);
    cx_var_release(span);
    printf("request_id_logging: %d lines, every job saw its own request id, %d strings freed "
           "by the library: %s\n",
           n_lines, atomic_load(&strings_freed), ok ? "all checks passed" : "FAILED");
    return ok ? 0 : 1;
}
