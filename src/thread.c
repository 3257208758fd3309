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

/* On every way out of fn (return, pthread_exit, cancellation; the
 * library is built with -fexceptions, so glibc's unwinding runs this):
 * leave the context and drop the thread's reference, so a create_in
 * context can be entered again and a copy's owned values are destroyed,
 * in this thread. */
static void trampoline_leave(struct cx__run_frame *fr)
{
    cx_context *ctx = fr->ctx;
    cx__run_frame_leave(fr);
    cx_context_release(ctx);
    cx__tstate_end_here(); /* only if no key destructor will */
}

static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    cx__free(p);
    cx__tstate *st = cx__tstate_install(s.st);
    struct cx__run_frame fr __attribute__((cleanup(trampoline_leave), unused)) =
        cx__run_enter(st, s.ctx);
    return s.fn(s.arg);
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
    if (st != NULL)
        cx__tstate_free(st);
    cx__leave(ctx);
    cx_context_release(ctx);
    return rc;
}

int cx_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (t == NULL || fn == NULL)
        return CX_EINVAL;
    cx_context *ctx = cx__capture_private(); /* CX_VAR_LOCAL variables stay here */
    if (ctx == NULL)
        return CX_ENOMEM;
    ctx->entered = CX__CTX_ENTERED; /* a fresh copy nobody else has seen */
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
