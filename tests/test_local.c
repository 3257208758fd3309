/* test_local.c - CX_VAR_LOCAL (SPEC 5.4): a local variable stays on its
 * thread. The captures of cx_thread_create, cx_pool_submit,
 * cx_pool_try_submit and cx_group_go leave it out; cx_copy_context,
 * cx_context_copy, cx_thread_create_in and cx_pool_submit_in carry
 * everything. A capture shares the map when no local variable is bound
 * (O(1)) and otherwise drops only the local bindings; owned local values
 * are destroyed exactly once.
 *
 * Only the main thread asserts: other threads record what they saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "context.h" /* test-only: the capture and the map's local count */
#include "cx_test.h"
#include "cx_cmocka.h"
#include "cx_wait.h"
#include "cxpool.h"
#include "var.h"

#define TAG(n) ((void *)(uintptr_t)(n))

static cx_var *loc;   /* CX_VAR_LOCAL, plain words */
static cx_var *plain; /* an ordinary variable */

static const cx_var_opts local_opts = {.flags = CX_VAR_LOCAL};

static int setup(void **state)
{
    (void)state;
    if (cx_var_new(&loc, "local", &local_opts) != 0 || cx_var_new(&plain, "plain", NULL) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cx_var_release(loc);
    cx_var_release(plain);
    return 0;
}

/* What a thread or job saw of loc and plain. */
typedef struct seen {
    int loc_rc, plain_rc;
    void *loc_v, *plain_v;
    size_t len;
} seen;

static void *look(void *p)
{
    seen *s = p;
    s->loc_rc = cx_var_get(loc, &s->loc_v);
    s->plain_rc = cx_var_get(plain, &s->plain_v);
    cx_context *c = cx_copy_context();
    s->len = c != NULL ? cx_context_len(c) : (size_t)-1;
    cx_context_release(c);
    return NULL;
}

/* ------------------------------------------------------------- flags */

static void var_new_rejects_unknown_flags(void **state)
{
    (void)state;
    cx_var *v = NULL;
    cx_var_opts o = {.flags = 4u};
    assert_int_equal(cx_var_new(&v, "bad", &o), CX_EINVAL);
    assert_null(v);
    o.flags = CX_VAR_LOCAL | CX_VAR_WATCHED;
    assert_int_equal(cx_var_new(&v, "both", &o), 0);
    cx_var_release(v);
}

/* ------------------------------------------------- what carries what */

struct bound {
    cx_token *tl, *tp;
};

static void bind_both(struct bound *b, void *lv, void *pv)
{
    assert_int_equal(cx_var_set(loc, lv, &b->tl), 0);
    assert_int_equal(cx_var_set(plain, pv, &b->tp), 0);
}

static void unbind_both(struct bound *b)
{
    assert_int_equal(cx_var_reset(plain, b->tp), 0);
    assert_int_equal(cx_var_reset(loc, b->tl), 0);
    cx_token_release(b->tp);
    cx_token_release(b->tl);
}

static void copies_carry_local_variables(void **state)
{
    (void)state;
    struct bound b;
    bind_both(&b, TAG(1), TAG(2));
    cx_context *c = cx_copy_context();
    assert_non_null(c);
    void *v;
    assert_int_equal(cx_context_get(c, loc, &v), 0);
    assert_ptr_equal(v, TAG(1));
    cx_context *c2 = cx_context_copy(c);
    assert_int_equal(cx_context_get(c2, loc, &v), 0);
    assert_ptr_equal(v, TAG(1));
    /* Running in a copy sees it too (the copy is this thread's). */
    seen s;
    assert_int_equal(cx_context_run(c2, look, &s, NULL), 0);
    assert_int_equal(s.loc_rc, 0);
    assert_ptr_equal(s.loc_v, TAG(1));
    cx_context_release(c2);
    cx_context_release(c);
    unbind_both(&b);
}

static void thread_create_leaves_local_out(void **state)
{
    (void)state;
    struct bound b;
    bind_both(&b, TAG(1), TAG(2));
    seen s;
    pthread_t t;
    assert_int_equal(cx_thread_create(&t, NULL, look, &s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(s.loc_rc, CX_ELOOKUP);
    assert_int_equal(s.plain_rc, 0);
    assert_ptr_equal(s.plain_v, TAG(2));
    assert_int_equal(s.len, 1);
    /* This thread still has it. */
    void *v;
    assert_int_equal(cx_var_get(loc, &v), 0);
    assert_ptr_equal(v, TAG(1));
    unbind_both(&b);
}

/* Captures take their map reference from a bank that also remembers
 * whether the map binds a local variable (context.h): binding one after
 * plain captures must make the next capture leave it out, and unbinding
 * it must make captures plain again. */
static void captures_follow_local_bindings_made_between_them(void **state)
{
    (void)state;
    cx_token *tp;
    assert_int_equal(cx_var_set(plain, TAG(2), &tp), 0);
    for (int round = 0; round < 3; round++) {
        /* Plain captures first (they fill the bank). */
        for (int i = 0; i < 3; i++)
            cx_context_release(cx_copy_context());
        seen s;
        pthread_t t;
        assert_int_equal(cx_thread_create(&t, NULL, look, &s), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(s.plain_rc, 0);
        assert_int_equal(s.loc_rc, CX_ELOOKUP);
        cx_token *tl;
        assert_int_equal(cx_var_set(loc, TAG(1), &tl), 0);
        assert_int_equal(cx_thread_create(&t, NULL, look, &s), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(s.loc_rc, CX_ELOOKUP);
        assert_int_equal(s.plain_rc, 0);
        assert_ptr_equal(s.plain_v, TAG(2));
        assert_int_equal(s.len, 1);
        /* The copy carries it, the capture just taken did not. */
        cx_context *c = cx_copy_context();
        assert_int_equal(cx_context_len(c), 2);
        cx_context_release(c);
        assert_int_equal(cx_var_reset(loc, tl), 0);
        cx_token_release(tl);
    }
    assert_int_equal(cx_var_reset(plain, tp), 0);
    cx_token_release(tp);
}

/* cx_bind leaves local variables out, in both modes; a run in this very
 * thread still does not see them (the capture is what was taken). */
static void bind_leaves_local_out(void **state)
{
    (void)state;
    struct bound b;
    bind_both(&b, TAG(1), TAG(2));
    for (unsigned flags = 0; flags <= CX_BIND_SHARED; flags += CX_BIND_SHARED) {
        seen s;
        cx_callback *cb = NULL;
        assert_int_equal(cx_bind(&cb, look, &s, flags), 0);
        assert_int_equal(cx_callback_run(cb, NULL), 0);
        assert_int_equal(s.loc_rc, CX_ELOOKUP);
        assert_int_equal(s.plain_rc, 0);
        assert_ptr_equal(s.plain_v, TAG(2));
        assert_int_equal(s.len, 1);
        cx_callback_release(cb);
    }
    unbind_both(&b);
}

static void thread_create_in_carries_local(void **state)
{
    (void)state;
    struct bound b;
    bind_both(&b, TAG(3), TAG(4));
    cx_context *c = cx_copy_context();
    seen s;
    pthread_t t;
    assert_int_equal(cx_thread_create_in(&t, NULL, c, look, &s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(s.loc_rc, 0);
    assert_ptr_equal(s.loc_v, TAG(3));
    assert_int_equal(s.len, 2);
    cx_context_release(c);
    unbind_both(&b);
}

static void *look_job(void *p)
{
    look(p);
    return p;
}

static void pool_captures_leave_local_out(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 2};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    struct bound b;
    bind_both(&b, TAG(5), TAG(6));
    seen s1, s2, s3, s4;
    cx_future *f1, *f2, *f3, *f4;
    assert_int_equal(cx_pool_submit(p, look_job, &s1, &f1), 0);
    assert_int_equal(cx_pool_try_submit(p, look_job, &s2, &f2), 0);
    cx_context *c = cx_copy_context();
    assert_int_equal(cx_pool_submit_in(p, c, look_job, &s3, &f3), 0);
    assert_int_equal(cx_pool_submit_in(p, NULL, look_job, &s4, &f4), 0);
    assert_int_equal(cx_future_result(f1, NULL), 0);
    assert_int_equal(cx_future_result(f2, NULL), 0);
    assert_int_equal(cx_future_result(f3, NULL), 0);
    assert_int_equal(cx_future_result(f4, NULL), 0);
    assert_int_equal(s1.loc_rc, CX_ELOOKUP);
    assert_int_equal(s1.plain_rc, 0);
    assert_ptr_equal(s1.plain_v, TAG(6));
    assert_int_equal(s1.len, 1);
    assert_int_equal(s2.loc_rc, CX_ELOOKUP);
    assert_int_equal(s2.plain_rc, 0);
    assert_int_equal(s3.loc_rc, 0); /* submit_in: the context itself */
    assert_ptr_equal(s3.loc_v, TAG(5));
    assert_int_equal(s3.len, 2);
    assert_int_equal(s4.len, 0);
    cx_future_release(f1);
    cx_future_release(f2);
    cx_future_release(f3);
    cx_future_release(f4);
    cx_context_release(c);
    unbind_both(&b);
    cx_pool_free(p);
}

/* A job's own submit: the job's context holds no local variable (it was
 * left out), and a local set inside the job stays in that job. */
struct nested {
    cx_pool *p;
    int set_rc, sub_rc;
    seen inner;
    cx_future *f;
};

static void *outer_job(void *arg)
{
    struct nested *n = arg;
    n->set_rc = cx_var_set(loc, TAG(9), NULL);
    n->sub_rc = cx_pool_submit(n->p, look_job, &n->inner, &n->f);
    return NULL;
}

static void job_local_set_stays_in_job(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 2};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    struct nested n = {.p = p};
    cx_future *f;
    assert_int_equal(cx_pool_submit(p, outer_job, &n, &f), 0);
    assert_int_equal(cx_future_result(f, NULL), 0);
    assert_int_equal(n.set_rc, 0);
    assert_int_equal(n.sub_rc, 0);
    assert_int_equal(cx_future_result(n.f, NULL), 0);
    assert_int_equal(n.inner.loc_rc, CX_ELOOKUP);
    cx_future_release(n.f);
    cx_future_release(f);
    cx_pool_free(p);
}

static int group_fn(void *arg)
{
    look(arg);
    return 0;
}

static void group_go_leaves_local_out(void **state)
{
    (void)state;
    cx_pool *p;
    cx_pool_opts o = {.threads = 2};
    assert_int_equal(cx_pool_new(&p, &o), 0);
    struct bound b;
    bind_both(&b, TAG(7), TAG(8));
    cx_group *g;
    assert_int_equal(cx_group_new(&g, p), 0);
    seen s;
    assert_int_equal(cx_group_go(g, group_fn, &s), 0);
    assert_int_equal(cx_group_wait(g, NULL), 0);
    cx_group_release(g);
    assert_int_equal(s.loc_rc, CX_ELOOKUP);
    assert_int_equal(s.plain_rc, 0);
    assert_ptr_equal(s.plain_v, TAG(8));
    unbind_both(&b);
    cx_pool_free(p);
}

/* A local variable's default still applies where it was left out. */
static void local_default_applies_elsewhere(void **state)
{
    (void)state;
    cx_var *d;
    cx_var_opts o = {.flags = CX_VAR_LOCAL, .has_default = true, .default_value = TAG(42)};
    assert_int_equal(cx_var_new(&d, "local.default", &o), 0);
    cx_token *t;
    assert_int_equal(cx_var_set(d, TAG(1), &t), 0);
    cx_var *save = loc;
    loc = d;
    seen s;
    pthread_t th;
    assert_int_equal(cx_thread_create(&th, NULL, look, &s), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    loc = save;
    assert_int_equal(s.loc_rc, 0);
    assert_ptr_equal(s.loc_v, TAG(42));
    assert_int_equal(cx_var_reset(d, t), 0);
    cx_token_release(t);
    cx_var_release(d);
}

/* ------------------------------------------------------ the capture */

static cx_context *current(void) { return cx__tstate_cur()->cur; }

/* No local variable bound: the capture is the very same map (O(1)). */
static void capture_shares_map_without_locals(void **state)
{
    (void)state;
    cx_token *t;
    assert_int_equal(cx_var_set(plain, TAG(1), &t), 0);
    cx__node *root;
    assert_int_equal(cx__capture_root(&root), 0);
    assert_ptr_equal(root, current()->root);
    assert_int_equal(cx__map_nlocal(root), 0);
    cx__map_release(root);
    /* One local bound: another map, without it. */
    cx_token *tl;
    assert_int_equal(cx_var_set(loc, TAG(2), &tl), 0);
    assert_int_equal(cx__map_nlocal(current()->root), 1);
    assert_int_equal(cx__capture_root(&root), 0);
    assert_ptr_not_equal(root, current()->root);
    assert_int_equal(cx__map_len(root), 1);
    assert_int_equal(cx__map_nlocal(root), 0);
    assert_false(cx__map_get(root, loc, &(void *){NULL}));
    assert_true(cx__map_get(root, plain, &(void *){NULL}));
    cx__map_release(root);
    /* The original is untouched. */
    assert_int_equal(cx__map_len(current()->root), 2);
    /* Only local bindings left: the capture is the empty map. */
    assert_int_equal(cx_var_reset(plain, t), 0);
    cx_token_release(t);
    assert_int_equal(cx__capture_root(&root), 0);
    assert_null(root);
    assert_int_equal(cx_var_set(plain, TAG(1), &t), 0);
    assert_int_equal(cx_var_reset(loc, tl), 0);
    assert_int_equal(cx__map_nlocal(current()->root), 0);
    assert_int_equal(cx_var_reset(plain, t), 0);
    cx_token_release(tl);
    cx_token_release(t);
}

/* Random sets and deletes of local and plain variables whose hashes are
 * forced into few values (collision nodes, deep paths, mixed nodes): the
 * map's local count is always the number of local bindings, and a capture
 * holds exactly the plain ones. */
#define NV 48

static void *fuzz_shapes(void *arg)
{
    int *bad = arg;
    cx_var *v[NV];
    bool is_local[NV], bound[NV];
    for (int i = 0; i < NV; i++) {
        is_local[i] = (i % 3) == 0;
        cx_var_opts o = {.flags = is_local[i] ? CX_VAR_LOCAL : 0};
        if (cx_var_new(&v[i], "f", &o) != 0) {
            (*bad)++;
            return NULL;
        }
        /* 6 distinct hashes sharing their low 10 bits: collisions and
         * paths 3 levels deep. */
        cx__var_set_hash(v[i], 0x2a5u | ((uint32_t)(i % 6) << 10) | ((uint32_t)(i % 2) << 30));
        bound[i] = false;
    }
    unsigned seed = 12345;
    cx__node *held = NULL; /* a capture kept: the map stays shared a while */
    unsigned rounds = cx_test_scaled(4000);
    for (unsigned r = 0; r < rounds; r++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % NV);
        if (bound[i] && (seed & 0x10000)) {
            /* delete: a reset to MISSING via a fresh token pair */
            cx_context *c = current();
            cx__garbage g;
            g.n = 0;
            void *old = NULL;
            cx__owner_lock(c); /* as cx_var_reset does: it empties the bank */
            cx__hamt_del_result dr = cx__map_remove(&c->root, v[i], &old, &g);
            cx__owner_unlock(c);
            if (dr != CX__HAMT_REMOVED)
                (*bad)++;
            else
                cx__stored_release(v[i], old);
            cx__garbage_release(&g);
            if (cx__map_check(c->root) != NULL)
                (*bad)++;
            cx__tstate_cur()->fast.gen++; /* the lookup cache */
            bound[i] = false;
        } else {
            if (cx_var_set(v[i], TAG(r + 1), NULL) != 0)
                (*bad)++;
            bound[i] = true;
        }
        /* Every 64 rounds, a capture shared with a copy (so the next
         * updates path-copy) and checked. */
        unsigned nl = 0, np = 0;
        for (int k = 0; k < NV; k++) {
            nl += bound[k] && is_local[k];
            np += bound[k] && !is_local[k];
        }
        if (cx__map_nlocal(current()->root) != nl || cx__map_len(current()->root) != nl + np)
            (*bad)++;
        if (r % 64 == 0) {
            cx__node *root;
            if (cx__capture_root(&root) != 0) {
                (*bad)++;
                continue;
            }
            if (cx__map_len(root) != np || cx__map_nlocal(root) != 0)
                (*bad)++;
            for (int k = 0; k < NV; k++)
                if (cx__map_get(root, v[k], &(void *){NULL}) != (bound[k] && !is_local[k]))
                    (*bad)++;
            cx__map_release(held);
            held = (r % 128 == 0) ? NULL : root;
            if (held == NULL)
                cx__map_release(root);
            /* Keep the current map shared too, now and then: the next
             * updates path-copy instead of updating in place. */
            if (r % 192 == 0) {
                cx__map_release(held);
                held = current()->root;
                cx__map_retain(held);
            }
        }
    }
    cx__map_release(held);
    for (int i = 0; i < NV; i++)
        cx_var_release(v[i]);
    return NULL;
}

static void local_counts_hold_in_every_map_shape(void **state)
{
    (void)state;
    int bad = 0;
    pthread_t t; /* its own base context, emptied when it ends */
    assert_int_equal(pthread_create(&t, NULL, fuzz_shapes, &bad), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bad, 0);
}

/* ----------------------------------------------- owned values, memory */

static atomic_int destroyed;
static void count_destroy(void *v)
{
    (void)v;
    atomic_fetch_add(&destroyed, 1);
}

static void *noop_job(void *p) { return p; }

static void owned_local_value_destroyed_once(void **state)
{
    (void)state;
    cx_var *ol;
    cx_var_opts o = {.flags = CX_VAR_LOCAL, .destroy = count_destroy};
    assert_int_equal(cx_var_new(&ol, "owned.local", &o), 0);
    atomic_store(&destroyed, 0);
    cx_pool *p;
    cx_pool_opts po = {.threads = 2};
    assert_int_equal(cx_pool_new(&p, &po), 0);
    int box;
    cx_token *t, *tp;
    assert_int_equal(cx_var_set(ol, &box, &t), 0);
    assert_int_equal(cx_var_set(plain, TAG(1), &tp), 0);
    unsigned n = cx_test_scaled(200);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(cx_pool_submit(p, noop_job, NULL, NULL), 0);
    pthread_t th;
    seen s;
    assert_int_equal(cx_thread_create(&th, NULL, look, &s), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    cx_context *c = cx_copy_context(); /* carries it: a second holder */
    assert_int_equal(cx_pool_shutdown(p, false), 0);
    assert_int_equal(atomic_load(&destroyed), 0);
    assert_int_equal(cx_var_reset(ol, t), 0);
    cx_token_release(t);
    assert_int_equal(atomic_load(&destroyed), 0); /* the copy holds it */
    cx_context_release(c);
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_int_equal(cx_var_reset(plain, tp), 0);
    cx_token_release(tp);
    cx_pool_free(p);
    cx_var_release(ol);
    assert_int_equal(atomic_load(&destroyed), 1);
}

/* Out of memory in a capture that must drop a local: CX_ENOMEM, nothing
 * changed, nothing leaked (memcheck), for every allocation in turn. */
static atomic_int fail_at; /* 1-based index of the allocation to fail; 0: none */
static atomic_int alloc_n;
static void *failing_malloc(size_t n)
{
    int k = atomic_fetch_add(&alloc_n, 1) + 1;
    if (atomic_load(&fail_at) != 0 && k == atomic_load(&fail_at))
        return NULL;
    return malloc(n);
}

static void capture_out_of_memory_changes_nothing(void **state)
{
    (void)state;
    struct bound b;
    bind_both(&b, TAG(1), TAG(2));
    /* Installed while no other thread of the library runs (the contract
     * of cx_set_allocator): the pool's workers start after it, and are
     * joined before it is taken away. It frees with free: memory from
     * either allocator may be freed under the other. */
    cx_allocator a = {failing_malloc, free};
    assert_int_equal(cx_set_allocator(&a), 0);
    cx_pool *p;
    cx_pool_opts po = {.threads = 1};
    assert_int_equal(cx_pool_new(&p, &po), 0);
    int failures = 0;
    for (int k = 1; k < 64; k++) {
        atomic_store(&alloc_n, 0);
        atomic_store(&fail_at, k);
        seen s;
        cx_future *f = NULL;
        int rc = cx_pool_submit(p, look_job, &s, &f);
        atomic_store(&fail_at, 0);
        if (rc == 0) {
            assert_int_equal(cx_future_result(f, NULL), 0);
            cx_future_release(f);
            assert_int_equal(s.loc_rc, CX_ELOOKUP);
            break;
        }
        assert_int_equal(rc, CX_ENOMEM);
        failures++;
        void *v;
        assert_int_equal(cx_var_get(loc, &v), 0);
        assert_ptr_equal(v, TAG(1));
        cx_context *c = cx_copy_context();
        assert_int_equal(cx_context_len(c), 2);
        cx_context_release(c);
    }
    assert_true(failures >= 2); /* the capture's copy and the job at least */
    /* Same for a thread. */
    failures = 0;
    for (int k = 1; k < 64; k++) {
        atomic_store(&alloc_n, 0);
        atomic_store(&fail_at, k);
        seen s;
        pthread_t th;
        int rc = cx_thread_create(&th, NULL, look, &s);
        atomic_store(&fail_at, 0);
        if (rc == 0) {
            assert_int_equal(pthread_join(th, NULL), 0);
            assert_int_equal(s.loc_rc, CX_ELOOKUP);
            break;
        }
        assert_int_equal(rc, CX_ENOMEM);
        failures++;
    }
    assert_true(failures >= 1);
    cx_pool_free(p);
    assert_int_equal(cx_set_allocator(NULL), 0);
    unbind_both(&b);
}

int main(void)
{
    cx_watchdog(600);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(var_new_rejects_unknown_flags, base_context_is_empty),
        cmocka_unit_test_teardown(copies_carry_local_variables, base_context_is_empty),
        cmocka_unit_test_teardown(thread_create_leaves_local_out, base_context_is_empty),
        cmocka_unit_test_teardown(thread_create_in_carries_local, base_context_is_empty),
        cmocka_unit_test_teardown(bind_leaves_local_out, base_context_is_empty),
        cmocka_unit_test_teardown(captures_follow_local_bindings_made_between_them,
                                  base_context_is_empty),
        cmocka_unit_test_teardown(pool_captures_leave_local_out, base_context_is_empty),
        cmocka_unit_test_teardown(job_local_set_stays_in_job, base_context_is_empty),
        cmocka_unit_test_teardown(group_go_leaves_local_out, base_context_is_empty),
        cmocka_unit_test_teardown(local_default_applies_elsewhere, base_context_is_empty),
        cmocka_unit_test_teardown(capture_shares_map_without_locals, base_context_is_empty),
        cmocka_unit_test_teardown(local_counts_hold_in_every_map_shape, base_context_is_empty),
        cmocka_unit_test_teardown(owned_local_value_destroyed_once, base_context_is_empty),
        cmocka_unit_test_teardown(capture_out_of_memory_changes_nothing, base_context_is_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
