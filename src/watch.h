/* watch.h - context watchers (SPEC 5.4): the hooks the core calls where a
 * thread's current context switches and where a watched variable changes
 * (src/watch.c has the design).
 *
 * Cost when nobody watches: every hook first loads cx__watch_mask, one
 * word that is 0 unless a watcher is registered, in a branch predicted
 * not taken; nothing else. SET/RESET hooks then test the variable's
 * CX_VAR_WATCHED flag, so a registered watcher costs unwatched variables
 * one more load.
 */
#ifndef CX_WATCH_H
#define CX_WATCH_H

#include <ck_pr.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "var.h"

/* At most this many watchers at once (cx_watch_add: CX_EAGAIN beyond). */
#define CX__WATCH_MAX 64

/* Bit i set: registry slot i holds a registered watcher. Written under the
 * registry's mutex, read by every hook without it (atomic loads). */
extern CX__HIDDEN uint64_t cx__watch_mask;

static inline bool cx__watching(void)
{
    return __builtin_expect(ck_pr_load_64(&cx__watch_mask) != 0, 0);
}

/* Delivers ev to every registered watcher, in this thread, unless this
 * thread is already inside a watcher callback (no recursion). ev and what
 * it points to are borrowed for the calls. */
CX__HIDDEN void cx__watch_fire(const cx_watch_event *ev);
/* An ENTER or EXIT event for ctx (out of line: keeps the switch small). */
CX__HIDDEN void cx__watch_switch(int kind, const cx_context *ctx);

/* True when a change of var must be reported (SET/RESET). */
static inline bool cx__watch_var(const cx_var *var)
{
    return cx__watching() && (var->flags & CX_VAR_WATCHED) != 0;
}

#endif
