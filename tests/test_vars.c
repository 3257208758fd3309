/* test_vars.c - variables and tokens: get precedence, names, the set/reset
 * lifecycle, token errors and their order, CX_WITH, ownership of values
 * (destroy callbacks), NULL arguments, error strings, the allocator hook,
 * and variables outliving their creator's reference.
 *
 * Tests that use the main thread's own context leave it empty (checked by
 * the teardown); the others work in fresh contexts through cx_context_run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "cx_test.h"
#include "cx_cmocka.h"
#include "cxvars.h"

/* ================================================================ helpers */

/* Teardown: the test left no binding in the main thread's context. */
/* Values with identity: &items[i]. destroy_count[i] counts destroy calls. */
#define NITEMS 32
static int items[NITEMS];
static unsigned destroy_count[NITEMS];
static unsigned destroy_foreign; /* destroy called on a non-item pointer */

static void count_destroy(void *v)
{
    int *p = v;
    if (p >= items && p < items + NITEMS)
        destroy_count[p - items]++;
    else
        destroy_foreign++;
}

static void reset_destroy_counts(void)
{
    memset(destroy_count, 0, sizeof(destroy_count));
    destroy_foreign = 0;
}

static unsigned total_destroys(void)
{
    unsigned t = destroy_foreign;
    for (int i = 0; i < NITEMS; i++)
        t += destroy_count[i];
    return t;
}

/* One API call made inside a given context (cx_context_run). */
enum op_kind { OP_SET, OP_RESET, OP_GET, OP_GET_OR };
typedef struct op {
    enum op_kind kind;
    cx_var *var;
    void *value;     /* SET: the value; GET_OR: the fallback */
    cx_token *tok;   /* RESET */
    cx_token **tokp; /* SET */
    void *out;       /* GET, GET_OR */
    int rc;
} op;

static void *do_op(void *p)
{
    op *o = p;
    switch (o->kind) {
    case OP_SET:
        o->rc = cx_var_set(o->var, o->value, o->tokp);
        break;
    case OP_RESET:
        o->rc = cx_var_reset(o->var, o->tok);
        break;
    case OP_GET:
        o->rc = cx_var_get(o->var, &o->out);
        break;
    case OP_GET_OR:
        o->out = cx_var_get_or(o->var, o->value);
        o->rc = 0;
        break;
    }
    return o;
}

static int ctx_set(cx_context *ctx, cx_var *var, void *value, cx_token **tokp)
{
    op o = {.kind = OP_SET, .var = var, .value = value, .tokp = tokp, .rc = 99};
    void *r = NULL;
    assert_int_equal(cx_context_run(ctx, do_op, &o, &r), 0);
    assert_ptr_equal(r, &o);
    return o.rc;
}

static int ctx_reset(cx_context *ctx, cx_var *var, cx_token *tok)
{
    op o = {.kind = OP_RESET, .var = var, .tok = tok, .rc = 99};
    assert_int_equal(cx_context_run(ctx, do_op, &o, NULL), 0);
    return o.rc;
}

/* cx_var_get inside ctx; *out receives the value. */
static int ctx_var_get(cx_context *ctx, cx_var *var, void **out)
{
    op o = {.kind = OP_GET, .var = var, .out = (void *)&o, .rc = 99};
    assert_int_equal(cx_context_run(ctx, do_op, &o, NULL), 0);
    *out = o.out;
    return o.rc;
}

/* ============================================================ get */

static void get_prefers_value_then_default_then_elookup(void **state)
{
    (void)state;
    int d = 0, v = 0, w = 0;
    cx_var *plain = mkvar("plain", NULL);
    cx_var_opts o = {.has_default = true, .default_value = &d, .destroy = NULL};
    cx_var *dflt = mkvar("dflt", &o);
    void *out = &w;

    assert_int_equal(cx_var_get(plain, &out), CX_ELOOKUP);
    assert_int_equal(cx_var_get(dflt, &out), 0);
    assert_ptr_equal(out, &d);

    cx_token *t1 = NULL, *t2 = NULL;
    assert_int_equal(cx_var_set(plain, &v, &t1), 0);
    assert_int_equal(cx_var_set(dflt, &v, &t2), 0);
    assert_int_equal(cx_var_get(plain, &out), 0);
    assert_ptr_equal(out, &v);
    assert_int_equal(cx_var_get(dflt, &out), 0);
    assert_ptr_equal(out, &v);

    assert_int_equal(cx_var_reset(plain, t1), 0);
    assert_int_equal(cx_var_reset(dflt, t2), 0);
    assert_int_equal(cx_var_get(plain, &out), CX_ELOOKUP);
    assert_int_equal(cx_var_get(dflt, &out), 0);
    assert_ptr_equal(out, &d);
    cx_token_release(t1);
    cx_token_release(t2);
    cx_var_release(plain);
    cx_var_release(dflt);
}

static void get_or_prefers_value_then_fallback_and_ignores_default(void **state)
{
    (void)state;
    int d = 0, v = 0, fb = 0;
    cx_var *plain = mkvar("plain", NULL);
    cx_var_opts o = {.has_default = true, .default_value = &d, .destroy = NULL};
    cx_var *dflt = mkvar("dflt", &o);

    assert_ptr_equal(cx_var_get_or(plain, &fb), &fb);
    assert_ptr_equal(cx_var_get_or(dflt, &fb), &fb); /* not &d */
    assert_null(cx_var_get_or(dflt, NULL));

    cx_token *t = NULL;
    assert_int_equal(cx_var_set(dflt, &v, &t), 0);
    assert_ptr_equal(cx_var_get_or(dflt, &fb), &v);
    assert_int_equal(cx_var_reset(dflt, t), 0);
    assert_ptr_equal(cx_var_get_or(dflt, &fb), &fb);
    cx_token_release(t);
    cx_var_release(plain);
    cx_var_release(dflt);
}

static void null_is_a_value_not_a_missing_binding(void **state)
{
    (void)state;
    int d = 0, fb = 0;
    cx_var_opts o = {.has_default = true, .default_value = &d, .destroy = NULL};
    cx_var *v = mkvar("v", &o);
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(v, NULL, &t), 0);
    void *out = &fb;
    assert_int_equal(cx_var_get(v, &out), 0);
    assert_null(out);
    assert_null(cx_var_get_or(v, &fb));
    assert_int_equal(cx_var_reset(v, t), 0);
    cx_token_release(t);
    cx_var_release(v);
}

static void default_counts_only_when_has_default_is_set(void **state)
{
    (void)state;
    int d = 0;
    /* A default_value without has_default is ignored... */
    cx_var_opts no = {.has_default = false, .default_value = &d, .destroy = NULL};
    cx_var *a = mkvar("a", &no);
    void *out = NULL;
    assert_int_equal(cx_var_get(a, &out), CX_ELOOKUP);
    /* ...and a NULL default is a real default. */
    cx_var_opts nul = {.has_default = true, .default_value = NULL, .destroy = NULL};
    cx_var *b = mkvar("b", &nul);
    out = &d;
    assert_int_equal(cx_var_get(b, &out), 0);
    assert_null(out);
    cx_var_release(a);
    cx_var_release(b);
}

/* ============================================================ names */

static void name_is_copied_and_need_not_be_unique(void **state)
{
    (void)state;
    char buf[16];
    strcpy(buf, "request_id");
    cx_var *a = mkvar(buf, NULL);
    strcpy(buf, "clobbered");
    assert_string_equal(cx_var_name(a), "request_id");
    assert_true(cx_var_name(a) != buf);

    cx_var *b = mkvar("request_id", NULL); /* same name, another key */
    assert_string_equal(cx_var_name(b), "request_id");
    int x = 0;
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(a, &x, &t), 0);
    void *out = NULL;
    assert_int_equal(cx_var_get(b, &out), CX_ELOOKUP);
    assert_int_equal(cx_var_reset(a, t), 0);
    cx_token_release(t);

    cx_var *e = mkvar("", NULL);
    assert_string_equal(cx_var_name(e), "");
    assert_null(cx_var_name(NULL));
    cx_var_release(a);
    cx_var_release(b);
    cx_var_release(e);
}

/* ============================================================ tokens */

static void token_records_var_old_value_and_used(void **state)
{
    (void)state;
    int v1 = 0, v2 = 0, fb = 0;
    cx_var_opts o = {.has_default = true, .default_value = &fb, .destroy = NULL};
    cx_var *x = mkvar("x", &o);
    cx_token *t1 = NULL, *t2 = NULL;

    assert_int_equal(cx_var_set(x, &v1, &t1), 0);
    assert_non_null(t1);
    assert_ptr_equal(cx_token_var(t1), x);
    void *old = &fb;
    /* MISSING (the default does not count as an old value) */
    assert_int_equal(cx_token_old_value(t1, &old), CX_ELOOKUP);
    assert_false(cx_token_used(t1));

    assert_int_equal(cx_var_set(x, &v2, &t2), 0);
    assert_int_equal(cx_token_old_value(t2, &old), 0);
    assert_ptr_equal(old, &v1);
    assert_false(cx_token_used(t2));

    assert_int_equal(cx_var_reset(x, t2), 0);
    assert_true(cx_token_used(t2));
    assert_false(cx_token_used(t1));
    /* The token still answers after use. */
    assert_ptr_equal(cx_token_var(t2), x);
    assert_int_equal(cx_token_old_value(t2, &old), 0);
    assert_ptr_equal(old, &v1);
    void *out = NULL;
    assert_int_equal(cx_var_get(x, &out), 0);
    assert_ptr_equal(out, &v1);

    assert_int_equal(cx_var_reset(x, t1), 0);
    assert_true(cx_token_used(t1));
    assert_int_equal(cx_var_get(x, &out), 0);
    assert_ptr_equal(out, &fb); /* back to the default */
    cx_token_release(t1);
    cx_token_release(t2);
    cx_var_release(x);
}

static void reset_twice_returns_eused(void **state)
{
    (void)state;
    int v = 0;
    cx_var *x = mkvar("x", NULL);
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(x, &v, &t), 0);
    assert_int_equal(cx_var_reset(x, t), 0);
    assert_int_equal(cx_var_reset(x, t), CX_EUSED);
    assert_true(cx_token_used(t));
    cx_token_release(t);
    cx_var_release(x);
}

static void reset_of_missing_token_removes_the_binding(void **state)
{
    (void)state;
    int v1 = 0, v2 = 0;
    cx_var *x = mkvar("x", NULL);
    cx_var *y = mkvar("y", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *tx = NULL, *ty = NULL;
    assert_int_equal(ctx_set(ctx, y, &v2, &ty), 0);
    assert_int_equal(ctx_set(ctx, x, &v1, &tx), 0);
    assert_int_equal(ctx_set(ctx, x, &v2, NULL), 0); /* changed again */
    assert_int_equal(cx_context_len(ctx), 2);
    assert_int_equal(ctx_reset(ctx, x, tx), 0);
    /* Not bound to NULL: not bound at all. */
    assert_false(cx_context_contains(ctx, x));
    assert_int_equal(cx_context_len(ctx), 1);
    void *out = NULL;
    assert_int_equal(cx_context_get(ctx, x, &out), CX_ELOOKUP);
    assert_int_equal(ctx_var_get(ctx, x, &out), CX_ELOOKUP);
    assert_true(cx_context_contains(ctx, y));
    assert_int_equal(ctx_reset(ctx, y, ty), 0);
    assert_int_equal(cx_context_len(ctx), 0);
    cx_token_release(tx);
    cx_token_release(ty);
    cx_context_release(ctx);
    cx_var_release(x);
    cx_var_release(y);
}

static void resets_need_not_be_lifo(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *t1 = NULL, *t2 = NULL, *t3 = NULL;
    void *out = NULL;
    assert_int_equal(ctx_set(ctx, x, &items[1], &t1), 0); /* old: MISSING */
    assert_int_equal(ctx_set(ctx, x, &items[2], &t2), 0); /* old: 1 */
    assert_int_equal(ctx_set(ctx, x, &items[3], &t3), 0); /* old: 2 */

    assert_int_equal(ctx_reset(ctx, x, t1), 0);
    assert_int_equal(ctx_var_get(ctx, x, &out), CX_ELOOKUP);
    assert_int_equal(cx_context_len(ctx), 0);
    assert_int_equal(ctx_reset(ctx, x, t3), 0);
    assert_int_equal(ctx_var_get(ctx, x, &out), 0);
    assert_ptr_equal(out, &items[2]);
    assert_int_equal(ctx_reset(ctx, x, t2), 0);
    assert_int_equal(ctx_var_get(ctx, x, &out), 0);
    assert_ptr_equal(out, &items[1]);
    assert_int_equal(cx_context_len(ctx), 1);
    assert_int_equal(ctx_reset(ctx, x, t1), CX_EUSED);
    assert_int_equal(ctx_var_get(ctx, x, &out), 0);
    assert_ptr_equal(out, &items[1]);
    cx_token_release(t1);
    cx_token_release(t2);
    cx_token_release(t3);
    cx_context_release(ctx);
    cx_var_release(x);
}

static void reset_with_used_foreign_token_returns_eused_first(void **state)
{
    (void)state;
    int v = 0;
    cx_var *x = mkvar("x", NULL), *y = mkvar("y", NULL);
    cx_context *a = cx_context_new(), *b = cx_context_new();
    assert_non_null(a);
    assert_non_null(b);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(a, x, &v, &t), 0);
    assert_int_equal(ctx_reset(a, x, t), 0);
    /* Used, other variable, other context: used wins. */
    assert_int_equal(ctx_reset(b, y, t), CX_EUSED);
    /* Used, other context. */
    assert_int_equal(ctx_reset(b, x, t), CX_EUSED);
    /* Used, other variable. */
    assert_int_equal(ctx_reset(a, y, t), CX_EUSED);
    /* Used, from the thread's own context (outside any run). */
    assert_int_equal(cx_var_reset(y, t), CX_EUSED);
    assert_int_equal(cx_context_len(a), 0);
    assert_int_equal(cx_context_len(b), 0);
    cx_token_release(t);
    cx_context_release(a);
    cx_context_release(b);
    cx_var_release(x);
    cx_var_release(y);
}

static void reset_with_foreign_var_and_context_returns_evar_before_econtext(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL), *y = mkvar("y", NULL);
    cx_context *a = cx_context_new(), *b = cx_context_new();
    assert_non_null(a);
    assert_non_null(b);
    cx_token *t = NULL, *ty = NULL;
    assert_int_equal(ctx_set(a, x, &items[0], NULL), 0);
    assert_int_equal(ctx_set(a, x, &items[1], &t), 0);
    assert_int_equal(ctx_set(b, y, &items[2], &ty), 0);

    assert_int_equal(ctx_reset(b, y, t), CX_EVAR);     /* var and context wrong */
    assert_int_equal(ctx_reset(a, y, t), CX_EVAR);     /* var wrong */
    assert_int_equal(ctx_reset(b, x, t), CX_ECONTEXT); /* context wrong */
    assert_int_equal(cx_var_reset(x, t), CX_ECONTEXT); /* thread's own context */
    assert_int_equal(ctx_reset(a, x, ty), CX_EVAR);     /* var and context wrong */
    assert_int_equal(ctx_reset(b, x, ty), CX_EVAR);     /* var wrong */
    assert_int_equal(ctx_reset(a, y, ty), CX_ECONTEXT); /* context wrong */

    /* Nothing changed: token unused, values as they were. */
    assert_false(cx_token_used(t));
    assert_false(cx_token_used(ty));
    void *out = NULL;
    assert_int_equal(cx_context_get(a, x, &out), 0);
    assert_ptr_equal(out, &items[1]);
    assert_int_equal(cx_token_old_value(t, &out), 0);
    assert_ptr_equal(out, &items[0]);
    assert_int_equal(cx_context_len(a), 1);
    assert_int_equal(cx_context_get(b, y, &out), 0);
    assert_ptr_equal(out, &items[2]);
    assert_int_equal(cx_context_len(b), 1);
    assert_false(cx_context_contains(b, x));
    assert_false(cx_context_contains(a, y));

    /* And the right context and variable still work. */
    assert_int_equal(ctx_reset(a, x, t), 0);
    assert_int_equal(cx_context_get(a, x, &out), 0);
    assert_ptr_equal(out, &items[0]);
    assert_int_equal(ctx_reset(b, y, ty), 0);
    assert_int_equal(cx_context_len(b), 0);
    cx_token_release(t);
    cx_token_release(ty);
    cx_context_release(a);
    cx_context_release(b);
    cx_var_release(x);
    cx_var_release(y);
}

static void reset_with_foreign_context_token_returns_econtext(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_context *a = cx_context_new();
    assert_non_null(a);
    /* A token made in the thread's own context, reset inside a run. */
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(x, &items[3], &t), 0);
    assert_int_equal(ctx_reset(a, x, t), CX_ECONTEXT);
    assert_false(cx_token_used(t));
    /* A copy of the context the token was made in is another context. */
    cx_context *copy = cx_copy_context();
    assert_non_null(copy);
    assert_int_equal(ctx_reset(copy, x, t), CX_ECONTEXT);
    void *out = NULL;
    assert_int_equal(cx_context_get(copy, x, &out), 0);
    assert_ptr_equal(out, &items[3]);
    assert_int_equal(cx_var_get(x, &out), 0);
    assert_ptr_equal(out, &items[3]);
    assert_int_equal(cx_var_reset(x, t), 0);
    assert_int_equal(cx_var_get(x, &out), CX_ELOOKUP);
    cx_token_release(t);
    cx_context_release(copy);
    cx_context_release(a);
    cx_var_release(x);
}

static void token_from_a_run_resets_in_a_later_run_of_the_same_context(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_context *a = cx_context_new();
    assert_non_null(a);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(a, x, &items[0], &t), 0);
    assert_true(cx_context_contains(a, x));
    assert_int_equal(ctx_reset(a, x, t), 0);
    assert_false(cx_context_contains(a, x));
    cx_token_release(t);
    cx_context_release(a);
    cx_var_release(x);
}

static void set_without_token_is_allowed(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_context *a = cx_context_new();
    assert_non_null(a);
    assert_int_equal(ctx_set(a, x, &items[0], NULL), 0);
    assert_int_equal(ctx_set(a, x, &items[1], NULL), 0);
    void *out = NULL;
    assert_int_equal(ctx_var_get(a, x, &out), 0);
    assert_ptr_equal(out, &items[1]);
    assert_int_equal(cx_context_len(a), 1);
    cx_context_release(a);
    cx_var_release(x);
}

/* ============================================================ CX_WITH */

static void with_resets_on_normal_exit(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    void *out = NULL;
    int ran = 0;
    CX_WITH(x, &items[1])
    {
        assert_int_equal(cx_var_get(x, &out), 0);
        assert_ptr_equal(out, &items[1]);
        ran++;
    }
    assert_int_equal(ran, 1);
    assert_int_equal(cx_var_get(x, &out), CX_ELOOKUP);

    /* Around an existing value: restores it. */
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(x, &items[0], &t), 0);
    CX_WITH(x, &items[2])
    {
        assert_int_equal(cx_var_get(x, &out), 0);
        assert_ptr_equal(out, &items[2]);
        ran++;
    }
    assert_int_equal(ran, 2);
    assert_int_equal(cx_var_get(x, &out), 0);
    assert_ptr_equal(out, &items[0]);
    assert_int_equal(cx_var_reset(x, t), 0);
    cx_token_release(t);
    cx_var_release(x);
}

static void with_break_leaves_only_the_with_block(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    void *out = NULL;
    int iterations = 0, bodies = 0, after_break = 0;
    for (int i = 0; i < 6; i++) {
        CX_WITH(x, &items[i])
        {
            bodies++;
            assert_int_equal(cx_var_get(x, &out), 0);
            assert_ptr_equal(out, &items[i]);
            if (i % 2 == 0)
                break;
            after_break++;
        }
        /* reset even though the block was left by break */
        assert_int_equal(cx_var_get(x, &out), CX_ELOOKUP);
        iterations++;
    }
    assert_int_equal(iterations, 6);
    assert_int_equal(bodies, 6);
    assert_int_equal(after_break, 3);
    cx_var_release(x);
}

static void with_continue_resets_and_runs_the_block_once(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    void *out = NULL;
    int iterations = 0, bodies = 0;
    for (int i = 0; i < 4; i++) {
        CX_WITH(x, &items[i])
        {
            bodies++;
            if (i >= 0)
                continue;
            bodies += 100;
        }
        assert_int_equal(cx_var_get(x, &out), CX_ELOOKUP);
        iterations++;
    }
    assert_int_equal(iterations, 4);
    assert_int_equal(bodies, 4);
    cx_var_release(x);
}

static void nested_with_restores_each_level(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL), *y = mkvar("y", NULL);
    void *out = NULL;
    int inner_runs = 0;
    CX_WITH(x, &items[1])
    {
        CX_WITH(x, &items[2])
        {
            assert_int_equal(cx_var_get(x, &out), 0);
            assert_ptr_equal(out, &items[2]);
            CX_WITH(y, &items[3])
            {
                assert_int_equal(cx_var_get(y, &out), 0);
                assert_ptr_equal(out, &items[3]);
                inner_runs++;
                break; /* leaves the y block only */
            }
            assert_int_equal(cx_var_get(y, &out), CX_ELOOKUP);
            assert_int_equal(cx_var_get(x, &out), 0);
            assert_ptr_equal(out, &items[2]);
            inner_runs++;
        }
        assert_int_equal(cx_var_get(x, &out), 0);
        assert_ptr_equal(out, &items[1]);
        inner_runs++;
    }
    assert_int_equal(inner_runs, 3);
    assert_int_equal(cx_var_get(x, &out), CX_ELOOKUP);
    assert_int_equal(cx_var_get(y, &out), CX_ELOOKUP);
    cx_var_release(x);
    cx_var_release(y);
}

static void with_destroys_its_value_at_the_end_of_the_block(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    CX_WITH(x, &items[7])
    {
        assert_int_equal(destroy_count[7], 0);
    }
    assert_int_equal(destroy_count[7], 1);
    assert_int_equal(total_destroys(), 1);
    cx_var_release(x);
}

/* ============================================================ destroy */

static cx_var *owned_var(const char *name, void *dflt)
{
    cx_var_opts o = {.has_default = dflt != NULL, .default_value = dflt, .destroy = count_destroy};
    return mkvar(name, &o);
}

static void destroy_runs_once_on_overwrite_and_never_for_the_default(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", &items[0]); /* default: items[0] */
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    void *out = NULL;
    assert_int_equal(ctx_var_get(ctx, x, &out), 0);
    assert_ptr_equal(out, &items[0]);

    assert_int_equal(ctx_set(ctx, x, &items[1], NULL), 0);
    assert_int_equal(total_destroys(), 0);
    assert_int_equal(ctx_set(ctx, x, &items[2], NULL), 0);
    assert_int_equal(destroy_count[1], 1); /* during that set */
    assert_int_equal(total_destroys(), 1);
    /* Setting the same pointer again: two ownership units, two destroys. */
    assert_int_equal(ctx_set(ctx, x, &items[2], NULL), 0);
    assert_int_equal(destroy_count[2], 1);
    assert_int_equal(ctx_set(ctx, x, &items[3], NULL), 0);
    assert_int_equal(destroy_count[2], 2);

    cx_context_release(ctx); /* the last holder of items[3] */
    assert_int_equal(destroy_count[3], 1);
    assert_int_equal(destroy_count[0], 0);
    assert_int_equal(total_destroys(), 4);
    cx_var_release(x);
    assert_int_equal(destroy_count[0], 0);
}

static void destroy_runs_on_reset_to_missing(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(ctx, x, &items[4], &t), 0);
    assert_int_equal(ctx_reset(ctx, x, t), 0);
    assert_int_equal(destroy_count[4], 1); /* before reset returned */
    cx_token_release(t);
    assert_int_equal(destroy_count[4], 1);
    cx_context_release(ctx);
    assert_int_equal(total_destroys(), 1);
    cx_var_release(x);
}

static void token_holding_old_value_keeps_it_until_released(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(ctx, x, &items[1], NULL), 0);
    assert_int_equal(ctx_set(ctx, x, &items[2], &t), 0);
    assert_int_equal(destroy_count[1], 0); /* the token holds it */
    void *old = NULL;
    assert_int_equal(cx_token_old_value(t, &old), 0);
    assert_ptr_equal(old, &items[1]);
    cx_token_release(t); /* never used */
    assert_int_equal(destroy_count[1], 1);
    assert_int_equal(destroy_count[2], 0);
    cx_context_release(ctx);
    assert_int_equal(destroy_count[2], 1);
    assert_int_equal(total_destroys(), 2);
    cx_var_release(x);
}

static void reset_to_old_value_destroys_the_newer_one(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(ctx, x, &items[1], NULL), 0);
    assert_int_equal(ctx_set(ctx, x, &items[2], &t), 0);
    assert_int_equal(ctx_reset(ctx, x, t), 0);
    assert_int_equal(destroy_count[2], 1);
    assert_int_equal(destroy_count[1], 0); /* bound again */
    void *out = NULL;
    assert_int_equal(cx_context_get(ctx, x, &out), 0);
    assert_ptr_equal(out, &items[1]);
    cx_token_release(t);
    assert_int_equal(destroy_count[1], 0); /* the map still holds it */
    cx_context_release(ctx);
    assert_int_equal(destroy_count[1], 1);
    assert_int_equal(total_destroys(), 2);
    cx_var_release(x);
}

static void used_token_keeps_its_old_value_alive(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(ctx, x, &items[1], NULL), 0);
    assert_int_equal(ctx_set(ctx, x, &items[2], &t), 0);
    assert_int_equal(ctx_reset(ctx, x, t), 0); /* items[1] bound again */
    /* Overwritten again: cx_token_old_value borrows from the token, so
     * items[1] must live as long as the token. */
    assert_int_equal(ctx_set(ctx, x, &items[3], NULL), 0);
    assert_int_equal(destroy_count[1], 0);
    void *old = NULL;
    assert_int_equal(cx_token_old_value(t, &old), 0);
    assert_ptr_equal(old, &items[1]);
    cx_token_release(t);
    assert_int_equal(destroy_count[1], 1);
    assert_int_equal(destroy_count[2], 1);
    cx_context_release(ctx);
    assert_int_equal(destroy_count[3], 1);
    assert_int_equal(total_destroys(), 3);
    cx_var_release(x);
}

static void context_copies_keep_values_alive(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    assert_int_equal(ctx_set(ctx, x, &items[1], NULL), 0);
    cx_context *c1 = cx_context_copy(ctx);
    cx_context *c2 = cx_context_copy(c1);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_int_equal(ctx_set(ctx, x, &items[2], NULL), 0);
    assert_int_equal(destroy_count[1], 0);
    cx_context_release(c1);
    assert_int_equal(destroy_count[1], 0);
    cx_context_release(c2);
    assert_int_equal(destroy_count[1], 1); /* before release returned */
    cx_context_release(ctx);
    assert_int_equal(destroy_count[2], 1);
    assert_int_equal(total_destroys(), 2);
    cx_var_release(x);
}

static void retained_context_destroys_values_at_last_release(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL), *y = owned_var("y", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    assert_int_equal(ctx_set(ctx, x, &items[5], NULL), 0);
    assert_int_equal(ctx_set(ctx, y, &items[6], NULL), 0);
    assert_ptr_equal(cx_context_retain(ctx), ctx);
    cx_context_release(ctx);
    assert_int_equal(total_destroys(), 0);
    cx_context_release(ctx);
    assert_int_equal(destroy_count[5], 1);
    assert_int_equal(destroy_count[6], 1);
    assert_int_equal(total_destroys(), 2);
    cx_var_release(x);
    cx_var_release(y);
}

/* Allocator that fails every allocation while `failing` is set. */
static int failing;
static void *maybe_malloc(size_t n) { return failing ? NULL : malloc(n); }

static void *failing_set_body(void *arg)
{
    cx_var *x = arg;
    cx_token *t = (cx_token *)&items[0];
    failing = 1;
    int rc = cx_var_set(x, &items[9], &t);
    failing = 0;
    return rc == CX_ENOMEM && t == (cx_token *)&items[0] ? &items[1] : &items[2];
}

static void failed_set_leaves_the_value_with_the_caller(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    assert_int_equal(ctx_set(ctx, x, &items[8], NULL), 0);
    cx_allocator a = {maybe_malloc, free};
    assert_int_equal(cx_set_allocator(&a), 0);
    void *r = NULL;
    assert_int_equal(cx_context_run(ctx, failing_set_body, x, &r), 0);
    assert_int_equal(cx_set_allocator(NULL), 0);
    assert_ptr_equal(r, &items[1]);
    assert_int_equal(total_destroys(), 0);
    void *out = NULL;
    assert_int_equal(cx_context_get(ctx, x, &out), 0);
    assert_ptr_equal(out, &items[8]); /* unchanged */
    cx_context_release(ctx);
    assert_int_equal(destroy_count[8], 1);
    assert_int_equal(destroy_count[9], 0);
    cx_var_release(x);
}

/* The reset at the end of a CX_WITH block has to copy the map when the
 * block took a copy of the context; it must succeed even when the
 * allocator fails by then (the per-thread reserve), or the block's value
 * would stay bound. Covers the restore (x was bound) and remove (y was
 * not) paths, with maps of 1 and of 40 variables. */
static void with_block_resets_even_when_allocation_fails_after_a_copy(void **state)
{
    (void)state;
    enum { MANY = 40 };
    cx_var *x = mkvar("x", NULL), *y = mkvar("y", NULL), *many[MANY];
    for (int size = 1; size <= MANY; size += MANY - 1) {
        cx_token *filler[MANY];
        for (int i = 0; i < size; i++) {
            many[i] = mkvar("filler", NULL);
            assert_int_equal(cx_var_set(many[i], &items[i % 10], &filler[i]), 0);
        }
        cx_token *tx;
        assert_int_equal(cx_var_set(x, &items[1], &tx), 0);
        cx_allocator a = {maybe_malloc, free};
        assert_int_equal(cx_set_allocator(&a), 0);
        cx_context *copies[2] = {NULL, NULL};
        int ran = 0;
        CX_WITH(x, &items[2])
        {
            CX_WITH(y, &items[3])
            {
                copies[0] = cx_copy_context();
                ran++;
                failing = 1;
            }
            copies[1] = cx_copy_context(); /* fails: failing is set */
        }
        failing = 0;
        assert_int_equal(cx_set_allocator(NULL), 0);
        assert_int_equal(ran, 1);
        assert_non_null(copies[0]);
        assert_null(copies[1]);
        void *out = NULL;
        assert_int_equal(cx_var_get(x, &out), 0);
        assert_ptr_equal(out, &items[1]);
        assert_int_equal(cx_var_get(y, &out), CX_ELOOKUP);
        /* The copy kept the block's values. */
        assert_int_equal(cx_context_get(copies[0], x, &out), 0);
        assert_ptr_equal(out, &items[2]);
        assert_int_equal(cx_context_get(copies[0], y, &out), 0);
        assert_ptr_equal(out, &items[3]);
        cx_context_release(copies[0]);
        for (int i = size - 1; i >= 0; i--) {
            assert_int_equal(cx_var_reset(many[i], filler[i]), 0);
            cx_token_release(filler[i]);
            cx_var_release(many[i]);
        }
        assert_int_equal(cx_var_reset(x, tx), 0);
        cx_token_release(tx);
    }
    cx_var_release(x);
    cx_var_release(y);
}

/* A destroy callback may use the API: it runs after the change took
 * effect and outside any lock. */
typedef struct reentry {
    cx_var *x, *y;
    int calls;
    int rc_get;
    void *seen;
    int rc_set;
} reentry;
static reentry *reentry_state;

static void reentrant_destroy(void *v)
{
    reentry *r = reentry_state;
    (void)v;
    r->calls++;
    r->rc_get = cx_var_get(r->x, &r->seen);
    r->rc_set = cx_var_set(r->y, &items[15], NULL);
}

static void *overwrite_x(void *arg)
{
    reentry *r = arg;
    if (cx_var_set(r->x, &items[13], NULL) != 0 || cx_var_set(r->x, &items[14], NULL) != 0)
        return NULL;
    return arg;
}

static void *release_ctx(void *ctx)
{
    cx_context_release(ctx);
    return NULL;
}

static void destroy_callback_may_use_the_api(void **state)
{
    (void)state;
    reentry r;
    memset(&r, 0, sizeof(r));
    reentry_state = &r;
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = reentrant_destroy};
    r.x = mkvar("x", &o);
    r.y = mkvar("y", NULL);
    r.rc_get = r.rc_set = 99;
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    void *res = NULL;
    assert_int_equal(cx_context_run(ctx, overwrite_x, &r, &res), 0);
    assert_ptr_equal(res, &r);
    assert_int_equal(r.calls, 1); /* items[13], during the second set */
    assert_int_equal(r.rc_get, 0);
    assert_ptr_equal(r.seen, &items[14]); /* the new value is already bound */
    assert_int_equal(r.rc_set, 0);
    void *out = NULL;
    assert_int_equal(cx_context_get(ctx, r.y, &out), 0);
    assert_ptr_equal(out, &items[15]);
    /* Released while another context is current: the callback runs in
     * this thread, in that context. */
    r.rc_set = 99;
    cx_context *scratch = cx_context_new();
    assert_non_null(scratch);
    assert_int_equal(cx_context_run(scratch, release_ctx, ctx, NULL), 0);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.rc_get, CX_ELOOKUP); /* x is not bound in scratch */
    assert_int_equal(r.rc_set, 0);
    assert_int_equal(cx_context_get(scratch, r.y, &out), 0);
    assert_ptr_equal(out, &items[15]);
    cx_context_release(scratch);
    cx_var_release(r.x);
    cx_var_release(r.y);
    reentry_state = NULL;
}

static void token_outlives_the_context_it_was_made_in(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("x", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(ctx, x, &items[17], NULL), 0);
    assert_int_equal(ctx_set(ctx, x, &items[18], &t), 0);
    cx_context_release(ctx);
    assert_int_equal(destroy_count[18], 1);
    assert_int_equal(destroy_count[17], 0); /* the token's old value */
    void *old = NULL;
    assert_int_equal(cx_token_old_value(t, &old), 0);
    assert_ptr_equal(old, &items[17]);
    assert_ptr_equal(cx_token_var(t), x);
    /* Its context is gone: no context is it, even one at the same address. */
    cx_context *again = cx_context_new();
    assert_non_null(again);
    assert_int_equal(ctx_reset(again, x, t), CX_ECONTEXT);
    assert_int_equal(cx_var_reset(x, t), CX_ECONTEXT);
    assert_false(cx_token_used(t));
    cx_token_release(t);
    assert_int_equal(destroy_count[17], 1);
    cx_context_release(again);
    cx_var_release(x);
}

/* ============================================================ NULLs */

static void null_arguments_return_einval(void **state)
{
    (void)state;
    cx_var *v = (cx_var *)&items[0];
    assert_int_equal(cx_var_new(NULL, "x", NULL), CX_EINVAL);
    assert_int_equal(cx_var_new(&v, NULL, NULL), CX_EINVAL);
    assert_ptr_equal(v, (cx_var *)&items[0]);

    cx_var *x = mkvar("x", NULL);
    void *out = &items[1];
    assert_int_equal(cx_var_get(NULL, &out), CX_EINVAL);
    assert_int_equal(cx_var_get(x, NULL), CX_EINVAL);
    assert_ptr_equal(cx_var_get_or(NULL, &items[2]), &items[2]);
    cx_token *t = (cx_token *)&items[3];
    assert_int_equal(cx_var_set(NULL, &items[4], &t), CX_EINVAL);
    assert_ptr_equal(t, (cx_token *)&items[3]);
    assert_int_equal(cx_var_reset(x, NULL), CX_EINVAL);

    t = NULL;
    assert_int_equal(cx_var_set(x, &items[4], &t), 0);
    assert_int_equal(cx_var_reset(NULL, t), CX_EINVAL);
    assert_false(cx_token_used(t));
    assert_int_equal(cx_token_old_value(t, NULL), CX_EINVAL);
    assert_null(cx_token_var(NULL));
    assert_int_equal(cx_token_old_value(NULL, &out), CX_EINVAL);
    assert_false(cx_token_used(NULL));
    assert_null(cx_var_name(NULL));
    cx_token_release(NULL);
    cx_var_release(NULL);
    assert_int_equal(cx_var_reset(x, t), 0);
    cx_token_release(t);
    cx_var_release(x);
}

/* ============================================================ errors */

static void every_error_code_has_a_name_and_message(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {CX_ENOMEM, "CX_ENOMEM"},     {CX_EINVAL, "CX_EINVAL"},     {CX_ELOOKUP, "CX_ELOOKUP"},
        {CX_EBUSY, "CX_EBUSY"},       {CX_EUSED, "CX_EUSED"},       {CX_EVAR, "CX_EVAR"},
        {CX_ECONTEXT, "CX_ECONTEXT"}, {CX_EAGAIN, "CX_EAGAIN"},     {CX_ETIMEDOUT, "CX_ETIMEDOUT"},
        {CX_ECANCELED, "CX_ECANCELED"}, {CX_ESHUTDOWN, "CX_ESHUTDOWN"}, {CX_EFORK, "CX_EFORK"},
    };
    const size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i].code < 0);
        assert_string_equal(cx_err_name(codes[i].code), codes[i].name);
        const char *msg = cx_strerror(codes[i].code);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(msg, "unknown error");
        assert_string_not_equal(msg, "success");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i].code, codes[j].code);
            assert_string_not_equal(msg, cx_strerror(codes[j].code));
        }
    }
    assert_string_equal(cx_strerror(CX_ENOMEM), "out of memory");
    assert_string_equal(cx_strerror(CX_EINVAL), "invalid argument");
    assert_string_equal(cx_err_name(0), "OK");
    assert_string_equal(cx_strerror(0), "success");
    static const int unknown[] = {1, 5, -13, -100, 12345, -2147483647 - 1, 2147483647};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(cx_strerror(unknown[i]), "unknown error");
        assert_string_equal(cx_err_name(unknown[i]), "UNKNOWN");
    }
}

/* ============================================================ allocator */

static size_t counted_mallocs, counted_frees;
static void *counting_malloc(size_t n)
{
    counted_mallocs++;
    return malloc(n);
}
static void counting_free(void *p)
{
    counted_frees++;
    free(p);
}

static void allocator_hook_is_used_and_null_restores_default(void **state)
{
    (void)state;
    counted_mallocs = counted_frees = 0;
    cx_allocator a = {counting_malloc, counting_free};
    assert_int_equal(cx_set_allocator(&a), 0);
    cx_var *x = mkvar("x", NULL);
    assert_int_equal(counted_mallocs, 1);
    cx_var_release(x);
    assert_int_equal(counted_frees, 1);

    /* Half-filled allocators are refused and change nothing. */
    cx_allocator half1 = {counting_malloc, NULL};
    cx_allocator half2 = {NULL, counting_free};
    cx_allocator none = {NULL, NULL};
    assert_int_equal(cx_set_allocator(&half1), CX_EINVAL);
    assert_int_equal(cx_set_allocator(&half2), CX_EINVAL);
    assert_int_equal(cx_set_allocator(&none), CX_EINVAL);
    x = mkvar("x", NULL);
    assert_int_equal(counted_mallocs, 2); /* still the counting one */
    cx_var_release(x);
    assert_int_equal(counted_frees, 2);

    assert_int_equal(cx_set_allocator(NULL), 0);
    x = mkvar("x", NULL);
    cx_context *c = cx_context_new();
    assert_non_null(c);
    cx_context_release(c);
    cx_var_release(x);
    assert_int_equal(counted_mallocs, 2);
    assert_int_equal(counted_frees, 2);
}

/* ============================================================ lifetime */

static int name_of_bound(cx_var *var, void *value, void *arg)
{
    (void)value;
    const char **name = arg;
    *name = cx_var_name(var);
    return strcmp(*name, "kept") == 0 ? 0 : 1;
}

static void variable_outlives_its_creator_reference_while_bound(void **state)
{
    (void)state;
    reset_destroy_counts();
    cx_var *x = owned_var("kept", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    assert_int_equal(ctx_set(ctx, x, &items[11], NULL), 0);
    cx_var_release(x); /* the context keeps it alive */
    x = NULL;
    const char *name = NULL;
    assert_int_equal(cx_context_foreach(ctx, name_of_bound, &name), 0);
    assert_string_equal(name, "kept");
    cx_context *copy = cx_context_copy(ctx);
    assert_non_null(copy);
    cx_context_release(ctx);
    assert_int_equal(total_destroys(), 0);
    name = NULL;
    assert_int_equal(cx_context_foreach(copy, name_of_bound, &name), 0);
    assert_string_equal(name, "kept");
    cx_context_release(copy); /* the binding, then the variable, go */
    assert_int_equal(destroy_count[11], 1);
}

static void token_keeps_its_variable_alive(void **state)
{
    (void)state;
    cx_var *x = mkvar("kept", NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    cx_token *t = NULL;
    assert_int_equal(ctx_set(ctx, x, &items[1], &t), 0);
    assert_int_equal(ctx_reset(ctx, x, t), 0); /* unbound: only t holds x */
    cx_var_release(x);
    assert_string_equal(cx_var_name(cx_token_var(t)), "kept");
    assert_int_equal(cx_context_len(ctx), 0);
    assert_int_equal(ctx_reset(ctx, cx_token_var(t), t), CX_EUSED);
    cx_token_release(t);
    cx_context_release(ctx);
}

/* Tokens take their variable reference from a per-thread bank of a few
 * slots (src/tstate.h) and give it back there, possibly in another
 * thread. Whatever the churn (more variables than slots, tokens released
 * in other threads that then end, the creator's reference dropped while
 * tokens live), every token's variable stays valid while the token lives
 * and every variable is freed once: memcheck (make check) reports any
 * leak or use after free here. */
#define BANK_VARS 100 /* well over the bank's 32 slots: every set of it is evicted often */

static void *release_tokens(void *p)
{
    cx_token **toks = p;
    for (int i = 0; i < BANK_VARS; i++)
        cx_token_release(toks[i]);
    return NULL;
}

static void token_variable_references_survive_any_churn(void **state)
{
    (void)state;
    cx_var *v[BANK_VARS];
    char name[16];
    for (int i = 0; i < BANK_VARS; i++) {
        snprintf(name, sizeof(name), "bank%d", i);
        assert_int_equal(cx_var_new(&v[i], name, NULL), 0);
    }
    /* Churn: every slot refilled and evicted many times. */
    for (int round = 0; round < 50; round++)
        for (int i = 0; i < BANK_VARS; i++) {
            cx_token *t;
            assert_int_equal(cx_var_set(v[i], (void *)(uintptr_t)(round + 1), &t), 0);
            assert_int_equal(cx_var_reset(v[i], t), 0);
            cx_token_release(t);
        }
    /* Tokens outliving their creators' references, released elsewhere. */
    cx_token *toks[BANK_VARS];
    for (int i = 0; i < BANK_VARS; i++) {
        assert_int_equal(cx_var_set(v[i], &toks[i], &toks[i]), 0);
        assert_int_equal(cx_var_reset(v[i], toks[i]), 0);
        cx_var_release(v[i]); /* the token's reference keeps it */
    }
    for (int i = 0; i < BANK_VARS; i++) {
        snprintf(name, sizeof(name), "bank%d", i);
        assert_string_equal(cx_var_name(cx_token_var(toks[i])), name);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_tokens, toks), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

#define T(f) cmocka_unit_test_teardown(f, base_context_is_empty)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(get_prefers_value_then_default_then_elookup),
        T(get_or_prefers_value_then_fallback_and_ignores_default),
        T(null_is_a_value_not_a_missing_binding),
        T(default_counts_only_when_has_default_is_set),
        T(name_is_copied_and_need_not_be_unique),
        T(token_records_var_old_value_and_used),
        T(reset_twice_returns_eused),
        T(reset_of_missing_token_removes_the_binding),
        T(resets_need_not_be_lifo),
        T(reset_with_used_foreign_token_returns_eused_first),
        T(reset_with_foreign_var_and_context_returns_evar_before_econtext),
        T(reset_with_foreign_context_token_returns_econtext),
        T(token_from_a_run_resets_in_a_later_run_of_the_same_context),
        T(set_without_token_is_allowed),
        T(with_resets_on_normal_exit),
        T(with_break_leaves_only_the_with_block),
        T(with_continue_resets_and_runs_the_block_once),
        T(nested_with_restores_each_level),
        T(with_destroys_its_value_at_the_end_of_the_block),
        T(destroy_runs_once_on_overwrite_and_never_for_the_default),
        T(destroy_runs_on_reset_to_missing),
        T(token_holding_old_value_keeps_it_until_released),
        T(reset_to_old_value_destroys_the_newer_one),
        T(used_token_keeps_its_old_value_alive),
        T(context_copies_keep_values_alive),
        T(retained_context_destroys_values_at_last_release),
        T(failed_set_leaves_the_value_with_the_caller),
        T(with_block_resets_even_when_allocation_fails_after_a_copy),
        T(destroy_callback_may_use_the_api),
        T(token_outlives_the_context_it_was_made_in),
        T(null_arguments_return_einval),
        T(every_error_code_has_a_name_and_message),
        T(allocator_hook_is_used_and_null_restores_default),
        T(variable_outlives_its_creator_reference_while_bound),
        T(token_keeps_its_variable_alive),
        T(token_variable_references_survive_any_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
