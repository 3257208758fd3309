/* forkgen.h - fork() generations. The generation is 0 in the process that
 * first used the pool and is bumped in the child by a pthread_atfork
 * handler. A pool or future remembers the generation it was born in; seeing
 * another one means "I was created before fork() in the parent": the
 * threads that would serve or complete it do not exist here, so the call
 * answers CX_EFORK instead of hanging. */
#ifndef CX_POOL_FORKGEN_H
#define CX_POOL_FORKGEN_H

#include <ck_pr.h>
#include <stdbool.h>

#include "alloc.h"

extern CX__HIDDEN unsigned int cx__fork_generation;

/* Installs the atfork handler once per process. 0, or CX_ENOMEM. */
CX__HIDDEN int cx__forkgen_register(void);

/* The current generation. Only a child's atfork handler writes it, while
 * the child has a single thread, so any thread reads it freely. */
static inline unsigned int cx__forkgen(void) { return ck_pr_load_uint(&cx__fork_generation); }

/* True if an object born in generation gen is a leftover of the parent. */
static inline bool cx__forkgen_stale(unsigned int gen) { return gen != cx__forkgen(); }

#endif
