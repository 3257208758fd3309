/* forkgen.c - the generation counter bumped in every fork() child. */
#include <pthread.h>

#include "annotate.h"
#include "forkgen.h"

unsigned int cx__fork_generation;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int register_err;

/* Runs in the child, which has one thread: a plain increment is enough. */
static void in_child(void) { ck_pr_store_uint(&cx__fork_generation, cx__fork_generation + 1); }

/* pthread_once orders do_register before every return of pthread_once;
 * helgrind and DRD do not see it, hence the annotations. */
static void do_register(void)
{
    register_err = pthread_atfork(NULL, NULL, in_child);
    CX__HAPPENS_BEFORE(&once);
}

int cx__forkgen_register(void)
{
    if (pthread_once(&once, do_register) != 0)
        return CX_ENOMEM;
    CX__HAPPENS_AFTER(&once);
    return register_err != 0 ? CX_ENOMEM : 0;
}
