/* var.h - the variable object (ContextVar). */
#ifndef CX_VAR_H
#define CX_VAR_H

#include <stdint.h>

#include "alloc.h"
#include "refcount.h"

struct cx_var {
    cx__ref ref;
    uint32_t hash;       /* from the address; tests may override it */
    bool has_default;
    void *default_value; /* borrowed from the creator, never destroyed */
    void (*destroy)(void *value);
    unsigned flags;      /* CX_VAR_LOCAL, CX_VAR_WATCHED; never change */
    char name[];
};

static inline void cx__var_retain(cx_var *v) { cx__ref_inc(&v->ref); }

/* Test-only: force the hash of a variable that is bound nowhere yet, to
 * build exact map shapes (collisions, depth 8). */
CX__HIDDEN void cx__var_set_hash(cx_var *v, uint32_t hash);

#endif
