/*
 * from_pthread_keys.c - one small program written twice: first with
 * pthread keys, then with cxvars. Both versions run, and their output is
 * compared line by line; the program exits non-zero if it differs.
 *
 * The program handles three requests. Each request has an id (a heap
 * string: someone has to free it) and a user name (a string literal). Code
 * deep inside the request logs lines stamped with both, without receiving
 * them as arguments. Halfway through, the request does a step "as admin"
 * (a temporary override of the user that must be undone afterwards) and
 * then hands part of its work to another thread, which must log with the
 * same stamp.
 *
 * Lines marked  [gone]  in the pthread-key version are the ones the
 * migration removes: capturing values before a thread hop, re-installing
 * them on the other side, clearing them afterwards, saving and restoring
 * around an override, and freeing the request id by hand.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cxvars.h>

/* ------------------------------------------------------------ output */

/* Each version writes into its own buffer; main compares them. Only one
 * thread writes at a time (the worker is joined before the request goes
 * on), so no lock is needed. */
struct transcript {
    char text[4096];
    size_t len;
};
static struct transcript *out;

static void emit(const char *rid, const char *user, const char *msg)
{
    int n = snprintf(out->text + out->len, sizeof(out->text) - out->len, "[%s %s] %s\n",
                     rid != NULL ? rid : "-", user != NULL ? user : "-", msg);
    if (n > 0 && out->len + (size_t)n < sizeof(out->text))
        out->len += (size_t)n;
}

static char *new_request_id(int n)
{
    char *s = malloc(16);
    if (s != NULL)
        snprintf(s, 16, "req-%d", n);
    return s;
}

static const char *const users[] = {"alice", "bob", "carol"};

/* ================================================== version 1: pthread keys */

static pthread_key_t k_request; /* holds a char * the request owns */
static pthread_key_t k_user;

static void keys_log(const char *msg)
{
    emit(pthread_getspecific(k_request), pthread_getspecific(k_user), msg);
}

static void keys_audit(void) { keys_log("audit: record written"); }

/* A thread does not inherit keys: everything the worker should see has to
 * be captured by the creator and put back by the worker. */
struct carry {                  /* [gone] */
    const char *request;        /* [gone] borrowed: the creator must outlive us */
    const char *user;           /* [gone] */
};                              /* [gone] */

static void *keys_worker(void *p)
{
    struct carry *c = p;                          /* [gone] */
    pthread_setspecific(k_request, c->request);   /* [gone] */
    pthread_setspecific(k_user, c->user);         /* [gone] */

    keys_log("worker: resizing image");
    keys_audit();

    pthread_setspecific(k_request, NULL);         /* [gone] no stale pointer left */
    pthread_setspecific(k_user, NULL);            /* [gone]   behind on this thread */
    return NULL;
}

static void keys_elevated_step(void)
{
    void *saved = pthread_getspecific(k_user);    /* [gone] */
    pthread_setspecific(k_user, "admin");
    keys_log("elevated: quota raised");
    pthread_setspecific(k_user, saved);           /* [gone] and on every early return */
}

static int keys_handle(int n)
{
    char *rid = new_request_id(n);
    if (rid == NULL)
        return -1;
    pthread_setspecific(k_request, rid);
    pthread_setspecific(k_user, (void *)users[n - 1]);
    keys_log("received");
    keys_elevated_step();
    keys_log("back to normal rights");

    struct carry c = {pthread_getspecific(k_request), pthread_getspecific(k_user)}; /* [gone] */
    pthread_t t;
    if (pthread_create(&t, NULL, keys_worker, &c) != 0)
        return -1;
    pthread_join(t, NULL);

    keys_log("done");
    pthread_setspecific(k_request, NULL);         /* [gone] */
    pthread_setspecific(k_user, NULL);            /* [gone] */
    free(rid);                                    /* [gone] */
    return 0;
}

static int run_with_keys(void)
{
    if (pthread_key_create(&k_request, NULL) != 0)
        return -1;
    if (pthread_key_create(&k_user, NULL) != 0)
        return -1;
    int rc = 0;
    for (int n = 1; n <= 3 && rc == 0; n++)
        rc = keys_handle(n);
    keys_log("idle");
    pthread_key_delete(k_request);
    pthread_key_delete(k_user);
    return rc;
}

/* ====================================================== version 2: cxvars */

static cx_var *request_id; /* values are heap strings owned by the library */
static cx_var *user;       /* values are string literals, never freed */

static void cx_log(const char *msg)
{
    emit(cx_var_get_or(request_id, NULL), cx_var_get_or(user, NULL), msg);
}

static void cx_audit(void) { cx_log("audit: record written"); }

static void *cx_worker(void *unused)
{
    (void)unused;
    cx_log("worker: resizing image");
    cx_audit();
    return NULL;
}

static void cx_elevated_step(void)
{
    CX_WITH(user, "admin")
        cx_log("elevated: quota raised");
}

/* Runs inside a fresh context (see run_with_cxvars), so every value set
 * here disappears with it: no clean-up at the end. */
static void *cx_handle(void *arg)
{
    int n = *(int *)arg;
    char *rid = new_request_id(n);
    if (rid == NULL || cx_var_set(request_id, rid, NULL) != 0) {
        free(rid); /* a failed set leaves the value with us */
        return "out of memory";
    }
    if (cx_var_set(user, (void *)users[n - 1], NULL) != 0)
        return "out of memory";
    cx_log("received");
    cx_elevated_step();
    cx_log("back to normal rights");

    pthread_t t;
    if (cx_thread_create(&t, NULL, cx_worker, NULL) != 0) /* runs in a copy of our context */
        return "cannot start thread";
    pthread_join(t, NULL);

    cx_log("done");
    return NULL;
}

static int run_with_cxvars(void)
{
    cx_var_opts owned = {.destroy = free};
    if (cx_var_new(&request_id, "request_id", &owned) != 0)
        return -1;
    if (cx_var_new(&user, "user", NULL) != 0)
        return -1;
    int rc = 0;
    for (int n = 1; n <= 3 && rc == 0; n++) {
        /* One context per request, like one asyncio Task per connection. */
        cx_context *ctx = cx_context_new();
        void *err = NULL;
        if (ctx == NULL || cx_context_run(ctx, cx_handle, &n, &err) != 0 || err != NULL) {
            fprintf(stderr, "request %d failed: %s\n", n, err != NULL ? (char *)err : "run");
            rc = -1;
        }
        cx_context_release(ctx); /* frees the request id */
    }
    cx_log("idle");
    cx_var_release(request_id);
    cx_var_release(user);
    return rc;
}

/* ================================================================ main */

static void print_transcript(const char *title, const struct transcript *t)
{
    printf("---- %s\n%.*s", title, (int)t->len, t->text);
}

int main(void)
{
    static struct transcript with_keys, with_cxvars;

    out = &with_keys;
    if (run_with_keys() != 0) {
        fprintf(stderr, "pthread-key version failed\n");
        return 1;
    }
    out = &with_cxvars;
    if (run_with_cxvars() != 0) {
        fprintf(stderr, "cxvars version failed\n");
        return 1;
    }

    print_transcript("with pthread keys", &with_keys);
    print_transcript("with cxvars", &with_cxvars);
    if (with_keys.len != with_cxvars.len ||
        memcmp(with_keys.text, with_cxvars.text, with_keys.len) != 0) {
        printf("---- MISMATCH: the two versions printed different lines\n");
        return 1;
    }
    printf("---- same %zu bytes of output from both versions\n", with_keys.len);
    return 0;
}
