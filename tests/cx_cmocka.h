/* cx_cmocka.h - helpers shared by the cmocka suites (include after
 * <cmocka.h>). */
#ifndef CX_CMOCKA_H
#define CX_CMOCKA_H

#include "cxvars.h"

/* Teardown: every test must leave the main thread's own context empty. */
static inline int base_context_is_empty(void **state)
{
    (void)state;
    cx_context *c = cx_copy_context();
    if (c == NULL)
        return -1;
    size_t n = cx_context_len(c);
    cx_context_release(c);
    if (n != 0) {
        print_error("the test left %zu binding(s) in the thread's context\n", n);
        return -1;
    }
    return 0;
}

/* A new variable (new reference), asserted to exist. */
static inline cx_var *mkvar(const char *name, const cx_var_opts *opts)
{
    cx_var *v = NULL;
    assert_int_equal(cx_var_new(&v, name, opts), 0);
    assert_non_null(v);
    return v;
}

/* A new empty context (new reference), asserted to exist. */
static inline cx_context *mkctx(void)
{
    cx_context *c = cx_context_new();
    assert_non_null(c);
    return c;
}

#endif
