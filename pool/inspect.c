/* inspect.c - the worker slots behind cx_pool_inspect and
 * cx_pool_stats_get (protocol in inspect.h). */
#include "inspect.h"

int cx__wslot_init(struct cx__wslot *s)
{
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return CX_ENOMEM;
    s->ctx = NULL;
    s->started = (struct timespec){0, 0};
    s->peek = 0;
    for (int i = 0; i < CX__STAT_N; i++)
        s->stat[i] = 0;
    /* Only atomics touch these words; the handoffs they carry are
     * announced (annotate.h). */
    CX__CK_UNTRACKED(&s->ctx, sizeof(s->ctx));
    CX__CK_UNTRACKED(&s->peek, sizeof(s->peek));
    CX__CK_UNTRACKED(s->stat, sizeof(s->stat));
    return 0;
}

void cx__wslot_destroy(struct cx__wslot *s)
{
    CX__CK_TRACKED(&s->ctx, sizeof(s->ctx));
    CX__CK_TRACKED(&s->peek, sizeof(s->peek));
    CX__CK_TRACKED(s->stat, sizeof(s->stat));
    pthread_mutex_destroy(&s->mu);
}

void cx__wslot_wait(struct cx__wslot *s)
{
    /* The inspector that set peek holds mu until its copy is made. */
    pthread_mutex_lock(&s->mu);
    pthread_mutex_unlock(&s->mu);
}

int cx__wslot_read(struct cx__wslot *s, cx_worker_info *w)
{
    int rc = 0;
    w->busy = false;
    w->started = (struct timespec){0, 0};
    w->ctx = NULL;
    pthread_mutex_lock(&s->mu);
    ck_pr_store_uint(&s->peek, 1);
    /* peek before the load of ctx (the handshake's barrier, inspect.h). */
    ck_pr_fence_memory();
    cx_context *c = ck_pr_load_ptr(&s->ctx);
    if (c != NULL) {
        /* Pairs with the release in cx__wslot_publish. */
        ck_pr_fence_acquire();
        CX__HAPPENS_AFTER(&s->ctx);
        w->busy = true;
        w->started = s->started;
        /* A consistent snapshot under the context's lock; the worker
         * cannot release c before we clear peek. */
        w->ctx = cx_context_copy(c);
        if (w->ctx == NULL)
            rc = CX_ENOMEM;
    }
    CX__HAPPENS_BEFORE(&s->peek);
    ck_pr_fence_release();
    ck_pr_store_uint(&s->peek, 0);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
