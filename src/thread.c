/* thread.c - threads that start in a context (Thread(context=...)). */
#include <errno.h>
#include <string.h>

#include "context.h"

/* Everything the new thread needs, prepared by the creator so the new
 * thread never has to allocate (and so cannot fail) before calling fn. */
struct start {
    cx_context *ctx; /* owned reference; entered on the thread's behalf */
    cx__tstate *st;  /* the new thread's state, owned until installed */
    void *(*fn)(void *);
    void *arg;
};

static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    cx__free(p);
    cx__tstate *st = cx__tstate_install(s.st);
    cx_context *prev = cx__switch_in(st, s.ctx);
    void *r = s.fn(s.arg);
    cx__switch_out(st, s.ctx, prev);
    cx_context_release(s.ctx);
    return r;
}

static int map_errno(int e)
{
    return e == EINVAL || e == EPERM ? CX_EINVAL : CX_EAGAIN;
}

/* ctx: an owned reference, already entered for the new thread. On failure
 * the entry is undone and the reference released. */
static int spawn(pthread_t *t, const pthread_attr_t *attr, cx_context *ctx,
                 void *(*fn)(void *), void *arg)
{
    struct start *s = cx__malloc(sizeof(*s));
    cx__tstate *st = cx__tstate_new();
    int rc = CX_ENOMEM;
    if (s != NULL && st != NULL) {
        *s = (struct start){.ctx = ctx, .st = st, .fn = fn, .arg = arg};
        int e = pthread_create(t, attr, trampoline, s);
        if (e == 0)
            return 0;
        rc = map_errno(e);
    }
    cx__free(s);
    cx__free(st);
    ck_pr_store_uint(&ctx->entered, 0);
    cx_context_release(ctx);
    return rc;
}

int cx_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (t == NULL || fn == NULL)
        return CX_EINVAL;
    cx_context *ctx = cx__copy_context_private();
    if (ctx == NULL)
        return CX_ENOMEM;
    ctx->entered = 1; /* a fresh copy nobody else has seen */
    return spawn(t, attr, ctx, fn, arg);
}

int cx_thread_create_in(pthread_t *t, const pthread_attr_t *attr, cx_context *ctx,
                        void *(*fn)(void *), void *arg)
{
    if (t == NULL || ctx == NULL || fn == NULL)
        return CX_EINVAL;
    if (!cx__try_enter(ctx))
        return CX_EBUSY;
    return spawn(t, attr, cx_context_retain(ctx), fn, arg);
}
