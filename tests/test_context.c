/* test_context.c - contexts and cx_context_run: empty contexts, O(1)
 * copies that diverge independently, changes made inside run staying in
 * the run's context, nesting and recursion (CX_EBUSY), the mapping reads
 * (contains/len/get/foreach/equal) and reference counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cx_test.h"
#include "cx_cmocka.h"
#include "cxvars.h"

/* ================================================================ helpers */

#define NITEMS 32
static int items[NITEMS];
static unsigned destroy_count[NITEMS];

static void count_destroy(void *v)
{
    int *p = v;
    if (p >= items && p < items + NITEMS)
        destroy_count[p - items]++;
}

typedef struct set_op {
    cx_var *var;
    void *value;
    int rc;
} set_op;

static void *do_set(void *p)
{
    set_op *o = p;
    o->rc = cx_var_set(o->var, o->value, NULL);
    return NULL;
}

/* cx_var_set(var, value) inside ctx; returns the set's status. */
static int ctx_set(cx_context *ctx, cx_var *var, void *value)
{
    set_op o = {.var = var, .value = value, .rc = 99};
    assert_int_equal(cx_context_run(ctx, do_set, &o, NULL), 0);
    return o.rc;
}

/* ctx maps var to value (through get, contains). */
static void assert_maps(const cx_context *ctx, const cx_var *var, void *value)
{
    void *out = NULL;
    assert_int_equal(cx_context_get(ctx, var, &out), 0);
    assert_ptr_equal(out, value);
    assert_true(cx_context_contains(ctx, var));
}

static void assert_unbound(const cx_context *ctx, const cx_var *var)
{
    void *out = NULL;
    assert_int_equal(cx_context_get(ctx, var, &out), CX_ELOOKUP);
    assert_false(cx_context_contains(ctx, var));
}

static int count_calls(cx_var *var, void *value, void *arg)
{
    (void)var;
    (void)value;
    (*(int *)arg)++;
    return 0;
}

static void *return_arg(void *arg) { return arg; }

/* ============================================================ basics */

static void *get_in_run(void *arg)
{
    void **io = arg; /* io[0]: var, io[1]: out, io[2]: rc */
    io[1] = (void *)&items[31];
    io[2] = (void *)(intptr_t)cx_var_get(io[0], &io[1]);
    return NULL;
}

static void new_context_is_empty(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_context *c = mkctx(), *d = mkctx();
    assert_int_equal(cx_context_len(c), 0);
    assert_unbound(c, x);
    int calls = 0;
    assert_int_equal(cx_context_foreach(c, count_calls, &calls), 0);
    assert_int_equal(calls, 0);
    assert_true(cx_context_equal(c, d));
    assert_true(c != d);
    void *io[3] = {x, NULL, NULL};
    assert_int_equal(cx_context_run(c, get_in_run, io, NULL), 0);
    assert_int_equal((intptr_t)io[2], CX_ELOOKUP);
    cx_context *cc = cx_context_copy(c);
    assert_non_null(cc);
    assert_int_equal(cx_context_len(cc), 0);
    cx_context_release(cc);
    cx_context_release(c);
    cx_context_release(d);
    cx_var_release(x);
}

static void new_context_does_not_inherit_the_current_one(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(x, &items[1], &t), 0);
    cx_context *c = mkctx();
    assert_unbound(c, x);
    void *io[3] = {x, NULL, NULL};
    assert_int_equal(cx_context_run(c, get_in_run, io, NULL), 0);
    assert_int_equal((intptr_t)io[2], CX_ELOOKUP);
    /* Back outside: the thread's own value again. */
    void *out = NULL;
    assert_int_equal(cx_var_get(x, &out), 0);
    assert_ptr_equal(out, &items[1]);
    assert_int_equal(cx_var_reset(x, t), 0);
    cx_token_release(t);
    cx_context_release(c);
    cx_var_release(x);
}

/* ============================================================ copies */

static void *copy_in_run(void *arg)
{
    (void)arg;
    return cx_copy_context();
}

static void copies_are_independent_in_both_directions(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL), *y = mkvar("y", NULL);
    cx_context *a = mkctx();
    assert_int_equal(ctx_set(a, x, &items[1]), 0);
    /* copy_context() inside a, and Context.copy() from outside. */
    cx_context *b = NULL;
    assert_int_equal(cx_context_run(a, copy_in_run, NULL, (void **)&b), 0);
    assert_non_null(b);
    cx_context *c = cx_context_copy(a);
    assert_non_null(c);
    assert_true(b != a && c != a && b != c);
    assert_maps(b, x, &items[1]);
    assert_maps(c, x, &items[1]);
    assert_true(cx_context_equal(a, b));
    assert_true(cx_context_equal(a, c));

    /* The original changes: the copies do not. */
    assert_int_equal(ctx_set(a, x, &items[2]), 0);
    assert_maps(a, x, &items[2]);
    assert_maps(b, x, &items[1]);
    assert_maps(c, x, &items[1]);
    assert_false(cx_context_equal(a, b));

    /* A copy changes: the original and the other copy do not. */
    assert_int_equal(ctx_set(b, x, &items[3]), 0);
    assert_int_equal(ctx_set(b, y, &items[4]), 0);
    assert_maps(b, x, &items[3]);
    assert_maps(b, y, &items[4]);
    assert_maps(a, x, &items[2]);
    assert_unbound(a, y);
    assert_maps(c, x, &items[1]);
    assert_unbound(c, y);
    assert_int_equal(cx_context_len(a), 1);
    assert_int_equal(cx_context_len(b), 2);
    assert_int_equal(cx_context_len(c), 1);

    assert_int_equal(ctx_set(c, y, &items[5]), 0);
    assert_maps(c, y, &items[5]);
    assert_maps(b, y, &items[4]);
    assert_unbound(a, y);
    cx_context_release(a);
    /* Copies outlive the original. */
    assert_maps(b, x, &items[3]);
    assert_maps(c, x, &items[1]);
    cx_context_release(b);
    cx_context_release(c);
    cx_var_release(x);
    cx_var_release(y);
}

static void copy_context_inside_run_copies_the_run_context(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(x, &items[1], &t), 0); /* thread's own */
    cx_context *a = mkctx();
    assert_int_equal(ctx_set(a, x, &items[2]), 0);
    cx_context *b = NULL;
    assert_int_equal(cx_context_run(a, copy_in_run, NULL, (void **)&b), 0);
    assert_non_null(b);
    assert_maps(b, x, &items[2]);
    /* Outside any run: a copy of the thread's own context. */
    cx_context *own = cx_copy_context();
    assert_non_null(own);
    assert_maps(own, x, &items[1]);
    assert_int_equal(cx_var_reset(x, t), 0);
    cx_token_release(t);
    assert_maps(own, x, &items[1]); /* a snapshot */
    cx_context_release(own);
    cx_context_release(a);
    cx_context_release(b);
    cx_var_release(x);
}

static void copy_of_many_bindings_is_equal_and_diverges(void **state)
{
    (void)state;
    enum { N = 200 };
    cx_var *v[N];
    char name[16];
    cx_context *a = mkctx();
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "v%d", i);
        v[i] = mkvar(name, NULL);
        assert_int_equal(ctx_set(a, v[i], &items[i % NITEMS]), 0);
    }
    cx_context *b = cx_context_copy(a);
    assert_non_null(b);
    assert_int_equal(cx_context_len(b), N);
    assert_true(cx_context_equal(a, b));
    for (int i = 0; i < N; i += 7)
        assert_int_equal(ctx_set(b, v[i], &items[(i + 1) % NITEMS]), 0);
    for (int i = 0; i < N; i++) {
        assert_maps(a, v[i], &items[i % NITEMS]);
        assert_maps(b, v[i], &items[(i % 7 == 0 ? i + 1 : i) % NITEMS]);
    }
    assert_false(cx_context_equal(a, b));
    cx_context_release(a);
    cx_context_release(b);
    for (int i = 0; i < N; i++)
        cx_var_release(v[i]);
}

/* ============================================================ run */

typedef struct doc_example {
    cx_var *var;
    cx_context *ctx;
    const char *before_get, *before_ctx, *after_get, *after_ctx;
    int rc_before, rc_after;
} doc_example;

static void *doc_main(void *arg)
{
    doc_example *d = arg;
    void *v = NULL, *c = NULL;
    /* var was set to "spam" before copy_context() and run(main): */
    d->rc_before = cx_var_get(d->var, &v) | cx_context_get(d->ctx, d->var, &c);
    d->before_get = v;
    d->before_ctx = c;
    cx_token *t = NULL;
    if (cx_var_set(d->var, (void *)"ham", &t) != 0)
        return NULL;
    cx_token_release(t);
    d->rc_after = cx_var_get(d->var, &v) | cx_context_get(d->ctx, d->var, &c);
    d->after_get = v;
    d->after_ctx = c;
    return d;
}

static void run_keeps_changes_in_its_context_documentation_example(void **state)
{
    (void)state;
    static const char spam[] = "spam";
    doc_example d;
    memset(&d, 0, sizeof(d));
    d.var = mkvar("var", NULL);
    cx_token *t = NULL;
    assert_int_equal(cx_var_set(d.var, (void *)spam, &t), 0);
    d.ctx = cx_copy_context();
    assert_non_null(d.ctx);
    void *r = NULL;
    assert_int_equal(cx_context_run(d.ctx, doc_main, &d, &r), 0);
    assert_ptr_equal(r, &d);
    assert_int_equal(d.rc_before, 0);
    assert_ptr_equal(d.before_get, spam);
    assert_ptr_equal(d.before_ctx, spam);
    assert_int_equal(d.rc_after, 0);
    assert_string_equal(d.after_get, "ham");
    assert_ptr_equal(d.after_ctx, d.after_get);
    /* ctx[var] == 'ham' */
    void *v = NULL;
    assert_int_equal(cx_context_get(d.ctx, d.var, &v), 0);
    assert_string_equal(v, "ham");
    /* outside ctx, var is still 'spam' */
    assert_int_equal(cx_var_get(d.var, &v), 0);
    assert_ptr_equal(v, spam);
    assert_int_equal(cx_var_reset(d.var, t), 0);
    cx_token_release(t);
    cx_context_release(d.ctx);
    cx_var_release(d.var);
}

typedef struct early {
    cx_var *a, *b;
    int stop_early;
    int reached_end;
} early;

static void *set_then_maybe_return(void *arg)
{
    early *e = arg;
    if (cx_var_set(e->a, &items[1], NULL) != 0)
        return NULL;
    if (e->stop_early)
        return &items[2];
    if (cx_var_set(e->b, &items[3], NULL) != 0)
        return NULL;
    e->reached_end = 1;
    return &items[4];
}

static void run_keeps_changes_when_fn_returns_early(void **state)
{
    (void)state;
    early e = {.a = mkvar("a", NULL), .b = mkvar("b", NULL), .stop_early = 1};
    cx_context *c = mkctx();
    void *r = NULL;
    assert_int_equal(cx_context_run(c, set_then_maybe_return, &e, &r), 0);
    assert_ptr_equal(r, &items[2]);
    assert_int_equal(e.reached_end, 0);
    assert_maps(c, e.a, &items[1]);
    assert_unbound(c, e.b);
    assert_int_equal(cx_context_len(c), 1);
    e.stop_early = 0;
    assert_int_equal(cx_context_run(c, set_then_maybe_return, &e, &r), 0);
    assert_ptr_equal(r, &items[4]);
    assert_maps(c, e.b, &items[3]);
    assert_int_equal(cx_context_len(c), 2);
    /* The thread's own context saw none of it. */
    void *out = NULL;
    assert_int_equal(cx_var_get(e.a, &out), CX_ELOOKUP);
    cx_context_release(c);
    cx_var_release(e.a);
    cx_var_release(e.b);
}

static int calls_seen;
static void *count_call(void *arg)
{
    calls_seen++;
    return arg;
}

static void run_stores_fn_result_and_allows_null_result(void **state)
{
    (void)state;
    cx_context *c = mkctx();
    void *r = &items[0];
    calls_seen = 0;
    assert_int_equal(cx_context_run(c, count_call, &items[5], &r), 0);
    assert_ptr_equal(r, &items[5]);
    assert_int_equal(cx_context_run(c, count_call, NULL, &r), 0);
    assert_null(r);
    assert_int_equal(cx_context_run(c, count_call, &items[6], NULL), 0);
    assert_int_equal(calls_seen, 3);
    cx_context_release(c);
}

static void run_with_null_arguments_returns_einval(void **state)
{
    (void)state;
    cx_context *c = mkctx();
    void *r = &items[0];
    calls_seen = 0;
    assert_int_equal(cx_context_run(NULL, count_call, NULL, &r), CX_EINVAL);
    assert_int_equal(cx_context_run(c, NULL, NULL, &r), CX_EINVAL);
    assert_int_equal(calls_seen, 0);
    assert_ptr_equal(r, &items[0]);
    /* c was not left entered. */
    assert_int_equal(cx_context_run(c, count_call, NULL, NULL), 0);
    assert_int_equal(calls_seen, 1);
    cx_context_release(c);
}

/* Nested runs: each level sets x and records what it sees. */
typedef struct nest {
    cx_context *ctx[3];
    cx_var *x;
    int rc_inner_before[3];
    void *seen_after_inner[3];
    int rc_after_inner[3];
    int depth;
    int run_rc[3];
} nest;

static void *nest_level(void *arg)
{
    nest *n = arg;
    int d = n->depth;
    void *v = NULL;
    /* Contexts do not inherit from the one they are entered from. */
    n->rc_inner_before[d] = cx_var_get(n->x, &v);
    if (cx_var_set(n->x, &items[10 + d], NULL) != 0)
        return NULL;
    if (d + 1 < 3) {
        n->depth = d + 1;
        n->run_rc[d + 1] = cx_context_run(n->ctx[d + 1], nest_level, n, NULL);
        n->depth = d;
    }
    n->rc_after_inner[d] = cx_var_get(n->x, &n->seen_after_inner[d]);
    return NULL;
}

static void nested_runs_of_different_contexts_restore_each_level(void **state)
{
    (void)state;
    nest n;
    memset(&n, 0, sizeof(n));
    n.x = mkvar("x", NULL);
    for (int i = 0; i < 3; i++)
        n.ctx[i] = mkctx();
    n.run_rc[0] = cx_context_run(n.ctx[0], nest_level, &n, NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(n.run_rc[i], 0);
        assert_int_equal(n.rc_inner_before[i], CX_ELOOKUP);
        assert_int_equal(n.rc_after_inner[i], 0);
        assert_ptr_equal(n.seen_after_inner[i], &items[10 + i]);
        assert_maps(n.ctx[i], n.x, &items[10 + i]);
        assert_int_equal(cx_context_len(n.ctx[i]), 1);
    }
    void *out = NULL;
    assert_int_equal(cx_var_get(n.x, &out), CX_ELOOKUP);
    for (int i = 0; i < 3; i++)
        cx_context_release(n.ctx[i]);
    cx_var_release(n.x);
}

typedef struct recur {
    cx_context *self, *other;
    int rc_direct, rc_indirect;
    int inner_calls;
} recur;

static void *recur_inner(void *arg)
{
    recur *r = arg;
    r->inner_calls++;
    return NULL;
}

static void *recur_via_other(void *arg)
{
    recur *r = arg;
    r->rc_indirect = cx_context_run(r->self, recur_inner, r, NULL);
    return NULL;
}

static void *recur_outer(void *arg)
{
    recur *r = arg;
    r->rc_direct = cx_context_run(r->self, recur_inner, r, NULL);
    /* self -> other -> self */
    if (cx_context_run(r->other, recur_via_other, r, NULL) != 0)
        r->rc_indirect = 1000;
    return NULL;
}

static void recursive_run_of_the_same_context_returns_ebusy(void **state)
{
    (void)state;
    recur r = {.self = mkctx(), .other = mkctx(), .rc_direct = 99, .rc_indirect = 99};
    assert_int_equal(cx_context_run(r.self, recur_outer, &r, NULL), 0);
    assert_int_equal(r.rc_direct, CX_EBUSY);
    assert_int_equal(r.rc_indirect, CX_EBUSY);
    assert_int_equal(r.inner_calls, 0);
    /* Left: it can be entered again. */
    assert_int_equal(cx_context_run(r.self, recur_inner, &r, NULL), 0);
    assert_int_equal(r.inner_calls, 1);
    cx_context_release(r.self);
    cx_context_release(r.other);
}

/* A context entered by this thread's run is busy also for a copy made of
 * the run's own pointer (the copy is another context: not busy). */
static void *run_copy_inside(void *arg)
{
    cx_context *self = arg;
    cx_context *copy = cx_context_copy(self);
    int rc = copy == NULL ? -100 : cx_context_run(copy, return_arg, NULL, NULL);
    cx_context_release(copy);
    return (void *)(intptr_t)rc;
}

static void copy_of_an_entered_context_can_be_entered(void **state)
{
    (void)state;
    cx_context *c = mkctx();
    void *r = (void *)(intptr_t)99;
    assert_int_equal(cx_context_run(c, run_copy_inside, c, &r), 0);
    assert_int_equal((intptr_t)r, 0);
    cx_context_release(c);
}

/* ============================================================ reads */

typedef struct expect {
    cx_var *var[8];
    void *value[8];
    int n;
    int visits[8];
    int unknown;
} expect;

static int check_visit(cx_var *var, void *value, void *arg)
{
    expect *e = arg;
    for (int i = 0; i < e->n; i++) {
        if (e->var[i] == var) {
            e->visits[i]++;
            return value == e->value[i] ? 0 : 100 + i;
        }
    }
    e->unknown++;
    return 0;
}

static int stop_at_second(cx_var *var, void *value, void *arg)
{
    (void)var;
    (void)value;
    return ++*(int *)arg == 2 ? -42 : 0;
}

static void mapping_reads_report_the_bindings(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL), *y = mkvar("y", NULL), *z = mkvar("z", NULL);
    cx_var *w = mkvar("w", NULL);
    cx_context *c = mkctx();
    assert_int_equal(ctx_set(c, x, &items[1]), 0);
    assert_int_equal(ctx_set(c, y, &items[2]), 0);
    assert_int_equal(ctx_set(c, z, NULL), 0); /* NULL is a value */
    assert_int_equal(ctx_set(c, x, &items[3]), 0);

    assert_int_equal(cx_context_len(c), 3);
    assert_maps(c, x, &items[3]);
    assert_maps(c, y, &items[2]);
    assert_maps(c, z, NULL);
    assert_unbound(c, w);

    expect e = {.var = {x, y, z}, .value = {&items[3], &items[2], NULL}, .n = 3};
    assert_int_equal(cx_context_foreach(c, check_visit, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(e.visits[i], 1);
    assert_int_equal(e.unknown, 0);

    int calls = 0;
    assert_int_equal(cx_context_foreach(c, stop_at_second, &calls), -42);
    assert_int_equal(calls, 2);

    cx_context_release(c);
    cx_var_release(x);
    cx_var_release(y);
    cx_var_release(z);
    cx_var_release(w);
}

static void mapping_reads_reject_null(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_context *c = mkctx();
    void *out = &items[0];
    int calls = 0;
    assert_int_equal(cx_context_get(NULL, x, &out), CX_EINVAL);
    assert_int_equal(cx_context_get(c, NULL, &out), CX_EINVAL);
    assert_int_equal(cx_context_get(c, x, NULL), CX_EINVAL);
    assert_ptr_equal(out, &items[0]);
    assert_false(cx_context_contains(NULL, x));
    assert_false(cx_context_contains(c, NULL));
    assert_int_equal(cx_context_len(NULL), 0);
    assert_int_equal(cx_context_foreach(NULL, count_calls, &calls), CX_EINVAL);
    assert_int_equal(cx_context_foreach(c, NULL, &calls), CX_EINVAL);
    assert_int_equal(calls, 0);
    assert_null(cx_context_copy(NULL));
    assert_null(cx_context_retain(NULL));
    cx_context_release(NULL);
    cx_context_release(c);
    cx_var_release(x);
}

static void context_get_ignores_the_variable_default(void **state)
{
    (void)state;
    cx_var_opts o = {.has_default = true, .default_value = &items[7], .destroy = NULL};
    cx_var *x = mkvar("x", &o);
    cx_context *c = mkctx();
    assert_unbound(c, x);
    assert_int_equal(cx_context_len(c), 0);
    /* Inside the run, get sees the default, the mapping does not. */
    void *io[3] = {x, NULL, NULL};
    assert_int_equal(cx_context_run(c, get_in_run, io, NULL), 0);
    assert_int_equal((intptr_t)io[2], 0);
    assert_ptr_equal(io[1], &items[7]);
    assert_unbound(c, x);
    assert_int_equal(ctx_set(c, x, &items[8]), 0);
    assert_maps(c, x, &items[8]);
    cx_context_release(c);
    cx_var_release(x);
}

static void equal_means_same_variables_with_pointer_equal_values(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL), *y = mkvar("y", NULL), *z = mkvar("z", NULL);
    cx_context *a = mkctx(), *b = mkctx(), *e = mkctx();

    /* Same bindings, built in another order. */
    assert_int_equal(ctx_set(a, x, &items[1]), 0);
    assert_int_equal(ctx_set(a, y, &items[2]), 0);
    assert_int_equal(ctx_set(b, y, &items[2]), 0);
    assert_int_equal(ctx_set(b, x, &items[9]), 0);
    assert_int_equal(ctx_set(b, x, &items[1]), 0);
    assert_true(cx_context_equal(a, b));
    assert_true(cx_context_equal(b, a));
    assert_true(cx_context_equal(a, a));

    /* Differing value. */
    assert_int_equal(ctx_set(b, y, &items[3]), 0);
    assert_false(cx_context_equal(a, b));
    assert_false(cx_context_equal(b, a));
    /* Equal contents at other addresses are not equal values. */
    static char s1[] = "same", s2[] = "same";
    assert_int_equal(ctx_set(a, y, s1), 0);
    assert_int_equal(ctx_set(b, y, s2), 0);
    assert_false(cx_context_equal(a, b));
    assert_int_equal(ctx_set(b, y, s1), 0);
    assert_true(cx_context_equal(a, b));

    /* Differing variable sets of the same size, and of other sizes. */
    cx_context *c = mkctx();
    assert_int_equal(ctx_set(c, x, &items[1]), 0);
    assert_int_equal(ctx_set(c, z, s1), 0);
    assert_int_equal(cx_context_len(c), cx_context_len(a));
    assert_false(cx_context_equal(a, c));
    assert_false(cx_context_equal(c, a));
    assert_int_equal(ctx_set(c, y, s1), 0);
    assert_false(cx_context_equal(a, c));
    assert_false(cx_context_equal(c, a));

    /* Empty contexts, NULL. */
    cx_context *e2 = mkctx();
    assert_true(cx_context_equal(e, e2));
    assert_false(cx_context_equal(e, a));
    assert_false(cx_context_equal(a, e));
    assert_true(cx_context_equal(NULL, NULL));
    assert_false(cx_context_equal(a, NULL));
    assert_false(cx_context_equal(NULL, a));
    assert_false(cx_context_equal(e, NULL));
    assert_false(cx_context_equal(NULL, e));

    cx_context_release(a);
    cx_context_release(b);
    cx_context_release(c);
    cx_context_release(e);
    cx_context_release(e2);
    cx_var_release(x);
    cx_var_release(y);
    cx_var_release(z);
}

static void *equal_inside_run(void *arg)
{
    cx_context **p = arg;
    /* p[0] is the running context, p[1] a copy of it from before. */
    bool before = cx_context_equal(p[0], p[1]);
    cx_var *v = (cx_var *)p[2];
    if (cx_var_set(v, &items[20], NULL) != 0)
        return NULL;
    bool after = cx_context_equal(p[0], p[1]);
    return before && !after ? &items[21] : &items[22];
}

static void equal_works_on_the_running_context(void **state)
{
    (void)state;
    cx_var *x = mkvar("x", NULL);
    cx_context *a = mkctx();
    assert_int_equal(ctx_set(a, x, &items[1]), 0);
    cx_context *copy = cx_context_copy(a);
    assert_non_null(copy);
    void *p[3] = {a, copy, x};
    void *r = NULL;
    assert_int_equal(cx_context_run(a, equal_inside_run, p, &r), 0);
    assert_ptr_equal(r, &items[21]);
    cx_context_release(a);
    cx_context_release(copy);
    cx_var_release(x);
}

/* foreach of the running context while the callback sets variables. */
enum { SNAP_N = 5 };
typedef struct snapiter {
    cx_var *x[SNAP_N], *y[SNAP_N];
    cx_context *ctx;
    int visits[SNAP_N];
    int wrong;
    int set_failures;
    int calls;
    int rc;
    size_t len_after;
} snapiter;

static int set_while_iterating(cx_var *var, void *value, void *arg)
{
    snapiter *s = arg;
    int k = -1;
    for (int i = 0; i < SNAP_N; i++)
        if (s->x[i] == var)
            k = i;
    s->calls++;
    if (k < 0 || value != &items[k]) {
        s->wrong++;
        return 0;
    }
    s->visits[k]++;
    /* Overwrite the visited variable and add a new one. */
    if (cx_var_set(s->x[k], &items[20 + k], NULL) != 0 ||
        cx_var_set(s->y[k], &items[25 + k], NULL) != 0)
        s->set_failures++;
    return 0;
}

static void *iterate_current(void *arg)
{
    snapiter *s = arg;
    for (int i = 0; i < SNAP_N; i++)
        if (cx_var_set(s->x[i], &items[i], NULL) != 0)
            s->set_failures++;
    s->rc = cx_context_foreach(s->ctx, set_while_iterating, s);
    s->len_after = cx_context_len(s->ctx);
    return NULL;
}

static void foreach_inside_run_iterates_a_snapshot_while_fn_sets(void **state)
{
    (void)state;
    snapiter s;
    memset(&s, 0, sizeof(s));
    char name[8];
    for (int i = 0; i < SNAP_N; i++) {
        snprintf(name, sizeof(name), "x%d", i);
        s.x[i] = mkvar(name, NULL);
        snprintf(name, sizeof(name), "y%d", i);
        s.y[i] = mkvar(name, NULL);
    }
    s.ctx = mkctx();
    assert_int_equal(cx_context_run(s.ctx, iterate_current, &s, NULL), 0);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.set_failures, 0);
    assert_int_equal(s.wrong, 0);
    assert_int_equal(s.calls, SNAP_N);
    for (int i = 0; i < SNAP_N; i++)
        assert_int_equal(s.visits[i], 1);
    assert_int_equal(s.len_after, 2 * SNAP_N);
    for (int i = 0; i < SNAP_N; i++) {
        assert_maps(s.ctx, s.x[i], &items[20 + i]);
        assert_maps(s.ctx, s.y[i], &items[25 + i]);
    }
    cx_context_release(s.ctx);
    for (int i = 0; i < SNAP_N; i++) {
        cx_var_release(s.x[i]);
        cx_var_release(s.y[i]);
    }
}

/* ============================================================ counts */

static void retain_returns_the_context_and_release_frees_at_zero(void **state)
{
    (void)state;
    memset(destroy_count, 0, sizeof(destroy_count));
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    cx_context *c = mkctx();
    assert_int_equal(ctx_set(c, x, &items[12]), 0);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(cx_context_retain(c), c);
    for (int i = 0; i < 3; i++) {
        cx_context_release(c);
        /* Still alive and usable. */
        assert_int_equal(cx_context_len(c), 1);
        assert_maps(c, x, &items[12]);
        assert_int_equal(destroy_count[12], 0);
    }
    cx_context_release(c); /* the last reference: the map goes with it */
    assert_int_equal(destroy_count[12], 1);
    cx_var_release(x);
}

static void copies_hold_their_own_references(void **state)
{
    (void)state;
    memset(destroy_count, 0, sizeof(destroy_count));
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    cx_context *a = mkctx();
    assert_int_equal(ctx_set(a, x, &items[13]), 0);
    cx_context *b = cx_context_copy(a);
    cx_context *c = cx_context_copy(b);
    assert_non_null(b);
    assert_non_null(c);
    cx_context_release(a);
    cx_context_release(b);
    assert_int_equal(destroy_count[13], 0);
    assert_maps(c, x, &items[13]);
    cx_context_release(c);
    assert_int_equal(destroy_count[13], 1);
    cx_var_release(x);
}

/* The runner of a context takes the references its captures need from a
 * bank it fills several at a time (context.h). Banked references must
 * never keep a value alive: not once the runner changes the variable, not
 * once the context goes. */
struct bank_op {
    cx_var *var;
    int copies;
    void *before, *after; /* set before the copies; after them (or NULL) */
    int rc;
    unsigned destroyed_before_after; /* destroy_count of `before` just
                                        after the second set */
};

static void *copy_then_set(void *p)
{
    struct bank_op *o = p;
    o->rc = cx_var_set(o->var, o->before, NULL);
    for (int i = 0; i < o->copies && o->rc == 0; i++) {
        cx_context *c = cx_copy_context();
        if (c == NULL)
            o->rc = -1;
        cx_context_release(c);
    }
    if (o->rc == 0 && o->after != NULL) {
        o->rc = cx_var_set(o->var, o->after, NULL);
        o->destroyed_before_after = destroy_count[(int *)o->before - items];
    }
    return NULL;
}

static void copies_released_in_a_run_keep_no_old_value_alive(void **state)
{
    (void)state;
    memset(destroy_count, 0, sizeof(destroy_count));
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    cx_context *c = mkctx();
    /* Enough copies to fill the bank more than once. */
    struct bank_op op = {.var = x, .copies = 40, .before = &items[14], .after = &items[15],
                         .rc = 99};
    assert_int_equal(cx_context_run(c, copy_then_set, &op, NULL), 0);
    assert_int_equal(op.rc, 0);
    /* Nothing holds the old value but the replaced binding: gone at the set. */
    assert_int_equal(op.destroyed_before_after, 1);
    assert_maps(c, x, &items[15]);
    cx_context_release(c);
    assert_int_equal(destroy_count[15], 1);
    cx_var_release(x);
}

static void a_context_whose_runner_copied_it_frees_its_values_with_it(void **state)
{
    (void)state;
    memset(destroy_count, 0, sizeof(destroy_count));
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = count_destroy};
    cx_var *x = mkvar("x", &o);
    for (int copies = 1; copies <= 40; copies += 13) {
        memset(destroy_count, 0, sizeof(destroy_count));
        cx_context *c = mkctx();
        struct bank_op op = {.var = x, .copies = copies, .before = &items[16], .rc = 99};
        assert_int_equal(cx_context_run(c, copy_then_set, &op, NULL), 0);
        assert_int_equal(op.rc, 0);
        assert_int_equal(destroy_count[16], 0);
        cx_context_release(c); /* its bank goes with it */
        assert_int_equal(destroy_count[16], 1);
    }
    cx_var_release(x);
}

#define T(f) cmocka_unit_test_teardown(f, base_context_is_empty)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(new_context_is_empty),
        T(new_context_does_not_inherit_the_current_one),
        T(copies_are_independent_in_both_directions),
        T(copy_context_inside_run_copies_the_run_context),
        T(copy_of_many_bindings_is_equal_and_diverges),
        T(run_keeps_changes_in_its_context_documentation_example),
        T(run_keeps_changes_when_fn_returns_early),
        T(run_stores_fn_result_and_allows_null_result),
        T(run_with_null_arguments_returns_einval),
        T(nested_runs_of_different_contexts_restore_each_level),
        T(recursive_run_of_the_same_context_returns_ebusy),
        T(copy_of_an_entered_context_can_be_entered),
        T(mapping_reads_report_the_bindings),
        T(mapping_reads_reject_null),
        T(context_get_ignores_the_variable_default),
        T(equal_means_same_variables_with_pointer_equal_values),
        T(equal_works_on_the_running_context),
        T(foreach_inside_run_iterates_a_snapshot_while_fn_sets),
        T(retain_returns_the_context_and_release_frees_at_zero),
        T(copies_hold_their_own_references),
        T(copies_released_in_a_run_keep_no_old_value_alive),
        T(a_context_whose_runner_copied_it_frees_its_values_with_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
