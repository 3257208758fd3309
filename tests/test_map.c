/* test_map.c - the HAMT behind every context, tested directly through
 * src/hamt.h and through the public API.
 *
 * Map shapes are forced with cx__var_set_hash() on fresh variables:
 * full-hash collisions (collision nodes), hashes that agree on their low 30
 * bits (7 bitmap levels), both at once (depth 8), and deletes that collapse
 * those shapes again. A randomized differential test compares the map with
 * a naive array model after every operation, with shared (copied) roots so
 * that both the in-place update path and the path-copy path run.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cx_test.h"
#include "cxvars.h"
#include "hamt.h"
#include "var.h"

/* ================================================================ helpers */

static cx_var *new_var(const char *name, uint32_t hash, void (*destroy)(void *))
{
    cx_var *v = NULL;
    cx_var_opts o = {.has_default = false, .default_value = NULL, .destroy = destroy};
    assert_int_equal(cx_var_new(&v, name, &o), 0);
    assert_non_null(v);
    cx__var_set_hash(v, hash);
    return v;
}

/* Sets var=value in *root like the library does (garbage released after
 * the update), then validates the map's structure. Returns true if a
 * previous binding was replaced, its value in *oldv. */
static bool map_put(cx__node **root, cx_var *var, void *value, void **oldv)
{
    void *stored;
    assert_true(cx__stored_new(var, value, &stored));
    void *old = (void *)(uintptr_t)1; /* must be overwritten when replaced */
    cx__garbage g = {.n = 0};
    cx__hamt_set_result r = cx__map_put(root, var, stored, &old, &g);
    assert_true(r == CX__HAMT_ADDED || r == CX__HAMT_REPLACED);
    assert_non_null(*root);
    bool had = r == CX__HAMT_REPLACED;
    if (had) {
        assert_true(old != (void *)(uintptr_t)1);
        if (oldv != NULL)
            *oldv = cx__stored_value(var, old);
        cx__stored_release(var, old);
    }
    cx__garbage_release(&g);
    assert_null(cx__map_check(*root));
    return had;
}

/* Deletes var from *root, then validates it. Returns true if it was there
 * (old value in *oldv). */
static bool map_remove(cx__node **root, cx_var *var, void **oldv)
{
    void *old = (void *)(uintptr_t)1;
    cx__garbage g = {.n = 0};
    cx__hamt_del_result r = cx__map_remove(root, var, &old, &g);
    assert_true(r == CX__HAMT_ABSENT || r == CX__HAMT_REMOVED);
    bool had = r == CX__HAMT_REMOVED;
    if (had) {
        assert_true(old != (void *)(uintptr_t)1);
        if (oldv != NULL)
            *oldv = cx__stored_value(var, old);
        cx__stored_release(var, old);
    }
    cx__garbage_release(&g);
    assert_null(cx__map_check(*root));
    return had;
}

static bool map_has(const cx__node *root, const cx_var *var)
{
    void *ignored;
    return cx__map_get(root, var, &ignored);
}

static void *val(uintptr_t i) { return (void *)(i * 16 + 8); }

/* Everything a foreach saw. */
#define MAXSEEN 256
typedef struct seen {
    cx_var *var[MAXSEEN];
    void *value[MAXSEEN];
    size_t n;
} seen;

static int collect(cx_var *var, void *value, void *arg)
{
    seen *s = arg;
    if (s->n == MAXSEEN)
        return -1000; /* more bindings than any test creates */
    s->var[s->n] = var;
    s->value[s->n] = value;
    s->n++;
    return 0;
}

/* The map holds exactly vars[i] -> vals[i] for i < n: by length, by every
 * lookup and by one foreach that visits each binding exactly once. */
static void check_map(const cx__node *root, cx_var *const *vars, void *const *vals, size_t n)
{
    assert_null(cx__map_check(root));
    assert_int_equal(cx__map_len(root), n);
    assert_in_range(cx__map_depth(root), n == 0 ? 0 : 1, n == 0 ? 0 : CX__HAMT_MAX_DEPTH);
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        assert_true(cx__map_get(root, vars[i], &v));
        assert_ptr_equal(v, vals[i]);
    }
    seen s = {.n = 0};
    assert_int_equal(cx__map_foreach(root, collect, &s), 0);
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++) {
        size_t hits = 0;
        for (size_t j = 0; j < s.n; j++) {
            if (s.var[j] == vars[i]) {
                hits++;
                assert_ptr_equal(s.value[j], vals[i]);
            }
        }
        assert_int_equal(hits, 1);
    }
}

/* ============================================================ basic shapes */

static int never_called(cx_var *var, void *value, void *arg)
{
    (void)var;
    (void)value;
    (*(int *)arg)++;
    return 7;
}

static void empty_map_has_nothing(void **state)
{
    (void)state;
    cx_var *a = new_var("a", 0x1234u, NULL);
    cx__node *root = NULL;
    int calls = 0;
    void *ignored;
    assert_false(cx__map_get(root, a, &ignored));
    assert_int_equal(cx__map_len(root), 0);
    assert_int_equal(cx__map_depth(root), 0);
    assert_int_equal(cx__map_foreach(root, never_called, &calls), 0);
    assert_int_equal(calls, 0);
    assert_true(cx__map_equal(NULL, NULL));
    assert_false(map_remove(&root, a, NULL));
    assert_null(root);
    cx_var_release(a);
}

static void set_overwrite_and_delete_single_binding(void **state)
{
    (void)state;
    cx_var *a = new_var("a", 0x1234u, NULL);
    cx_var *b = new_var("b", 0x1235u, NULL); /* absent, other chunk */
    cx__node *root = NULL;
    void *old = NULL;

    assert_false(map_put(&root, a, val(1), NULL));
    check_map(root, &a, (void *[]){val(1)}, 1);
    assert_int_equal(cx__map_depth(root), 1);
    assert_false(map_has(root, b));

    assert_true(map_put(&root, a, val(2), &old));
    assert_ptr_equal(old, val(1));
    check_map(root, &a, (void *[]){val(2)}, 1);

    assert_false(map_remove(&root, b, NULL));
    check_map(root, &a, (void *[]){val(2)}, 1);

    assert_true(map_remove(&root, a, &old));
    assert_ptr_equal(old, val(2));
    assert_null(root);
    assert_int_equal(cx__map_len(root), 0);
    cx_var_release(a);
    cx_var_release(b);
}

static void distinct_root_chunks_stay_at_depth_one(void **state)
{
    (void)state;
    enum { N = 32 };
    cx_var *v[N];
    void *vals[N];
    char name[8];
    cx__node *root = NULL;
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "v%u", i);
        v[i] = new_var(name, i | 0xABCD00u, NULL); /* chunk 0 = i */
        vals[i] = val(i);
        assert_false(map_put(&root, v[i], vals[i], NULL));
        check_map(root, v, vals, i + 1);
        assert_int_equal(cx__map_depth(root), 1);
    }
    cx__map_release(root);
    for (unsigned i = 0; i < N; i++)
        cx_var_release(v[i]);
}

/* Deletes from a full root node, in a scattered order: it shrinks in
 * place and stays at depth 1. */
static void root_deletes_in_any_order(void **state)
{
    (void)state;
    enum { N = 32 };
    cx_var *all[N];
    char name[8];
    cx__node *root = NULL;
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "r%u", i);
        all[i] = new_var(name, i, NULL);
        map_put(&root, all[i], val(i), NULL);
    }
    bool gone[N] = {false};
    for (unsigned k = 0; k < N; k++) {
        unsigned i = (k * 7u + 3u) % N;
        assert_true(map_remove(&root, all[i], NULL));
        gone[i] = true;
        cx_var *live[N];
        void *lv[N];
        size_t n = 0;
        for (unsigned j = 0; j < N; j++) {
            if (!gone[j]) {
                live[n] = all[j];
                lv[n] = val(j);
                n++;
            } else {
                assert_false(map_has(root, all[j]));
            }
        }
        check_map(root, live, lv, n);
        assert_int_equal(cx__map_depth(root), n == 0 ? 0 : 1);
    }
    assert_null(root);
    for (unsigned i = 0; i < N; i++)
        cx_var_release(all[i]);
}

/* ============================================================ collisions */

static void full_hash_collisions_share_one_collision_node(void **state)
{
    (void)state;
    const uint32_t h = 0x2A9u;
    cx_var *v[4] = {new_var("c0", h, NULL), new_var("c1", h, NULL), new_var("c2", h, NULL),
                    new_var("c3", h, NULL)};
    void *vals[4] = {val(10), val(11), val(12), val(13)};
    cx__node *root = NULL;
    void *old;

    map_put(&root, v[0], vals[0], NULL);
    assert_int_equal(cx__map_depth(root), 1);
    map_put(&root, v[1], vals[1], NULL);
    /* root bitmap + collision node */
    assert_int_equal(cx__map_depth(root), 2);
    check_map(root, v, vals, 2);
    assert_false(map_has(root, v[2]));
    map_put(&root, v[2], vals[2], NULL);
    map_put(&root, v[3], vals[3], NULL);
    assert_int_equal(cx__map_depth(root), 2);
    check_map(root, v, vals, 4);

    /* Overwrite inside the collision node. */
    assert_true(map_put(&root, v[2], val(99), &old));
    assert_ptr_equal(old, vals[2]);
    vals[2] = val(99);
    check_map(root, v, vals, 4);

    /* Shrink: 4 -> 3 -> 2 stay a collision node, 1 collapses to a binding. */
    assert_true(map_remove(&root, v[1], &old));
    assert_ptr_equal(old, val(11));
    check_map(root, (cx_var *[]){v[0], v[2], v[3]}, (void *[]){vals[0], vals[2], vals[3]}, 3);
    assert_int_equal(cx__map_depth(root), 2);
    assert_true(map_remove(&root, v[3], NULL));
    check_map(root, (cx_var *[]){v[0], v[2]}, (void *[]){vals[0], vals[2]}, 2);
    assert_int_equal(cx__map_depth(root), 2);
    assert_true(map_remove(&root, v[0], NULL));
    check_map(root, (cx_var *[]){v[2]}, (void *[]){vals[2]}, 1);
    assert_int_equal(cx__map_depth(root), 1);
    assert_false(map_remove(&root, v[0], NULL));
    assert_true(map_remove(&root, v[2], NULL));
    assert_null(root);
    for (int i = 0; i < 4; i++)
        cx_var_release(v[i]);
}

static void collision_beside_other_root_bindings(void **state)
{
    (void)state;
    /* Two colliding vars and two ordinary ones, one of them sharing the
     * collision's root chunk (so the collision is pushed one level down). */
    cx_var *c0 = new_var("c0", 0x00000421u, NULL);
    cx_var *c1 = new_var("c1", 0x00000421u, NULL);
    cx_var *o = new_var("other", 0x00000002u, NULL);
    cx_var *s = new_var("sibling", 0x00000001u, NULL); /* chunk0 = 1 like c0 */
    cx__node *root = NULL;
    map_put(&root, c0, val(1), NULL);
    map_put(&root, o, val(2), NULL);
    map_put(&root, c1, val(3), NULL);
    check_map(root, (cx_var *[]){c0, o, c1}, (void *[]){val(1), val(2), val(3)}, 3);
    assert_int_equal(cx__map_depth(root), 2);
    /* s reaches the collision node with another hash: it is split below. */
    map_put(&root, s, val(4), NULL);
    check_map(root, (cx_var *[]){c0, o, c1, s}, (void *[]){val(1), val(2), val(3), val(4)}, 4);
    assert_int_equal(cx__map_depth(root), 3);
    /* Removing s brings the collision node back up only when allowed; the
     * map must stay correct either way. */
    assert_true(map_remove(&root, s, NULL));
    check_map(root, (cx_var *[]){c0, o, c1}, (void *[]){val(1), val(2), val(3)}, 3);
    assert_true(map_remove(&root, c1, NULL));
    check_map(root, (cx_var *[]){c0, o}, (void *[]){val(1), val(2)}, 2);
    assert_int_equal(cx__map_depth(root), 1);
    assert_true(map_remove(&root, c0, NULL));
    assert_true(map_remove(&root, o, NULL));
    assert_null(root);
    cx_var_release(c0);
    cx_var_release(c1);
    cx_var_release(o);
    cx_var_release(s);
}

/* ============================================================ depth 8 */

/* a and b collide fully; c agrees with them on bits 0-29 only. */
#define DEEP_H 0x15A5A5A5u
#define DEEP_C (DEEP_H ^ 0x40000000u)

static void hashes_differing_only_in_top_bits_need_seven_levels(void **state)
{
    (void)state;
    cx_var *a = new_var("a", DEEP_H, NULL);
    cx_var *c = new_var("c", DEEP_C, NULL);
    cx__node *root = NULL;
    map_put(&root, a, val(1), NULL);
    map_put(&root, c, val(2), NULL);
    assert_int_equal(cx__map_depth(root), 7);
    check_map(root, (cx_var *[]){a, c}, (void *[]){val(1), val(2)}, 2);
    /* Deleting either collapses the whole chain back into the root. */
    assert_true(map_remove(&root, a, NULL));
    assert_int_equal(cx__map_depth(root), 1);
    check_map(root, &c, (void *[]){val(2)}, 1);
    assert_true(map_remove(&root, c, NULL));
    assert_null(root);
    cx_var_release(a);
    cx_var_release(c);
}

static void collision_below_seven_bitmap_levels_reaches_depth_eight(void **state)
{
    (void)state;
    /* Three insertion orders reach the same depth-8 shape. */
    static const int orders[3][3] = {{0, 1, 2}, {0, 2, 1}, {2, 0, 1}};
    for (int o = 0; o < 3; o++) {
        cx_var *v[3] = {new_var("a", DEEP_H, NULL), new_var("b", DEEP_H, NULL),
                        new_var("c", DEEP_C, NULL)};
        void *vals[3] = {val(1), val(2), val(3)};
        cx__node *root = NULL;
        for (int i = 0; i < 3; i++)
            map_put(&root, v[orders[o][i]], vals[orders[o][i]], NULL);
        assert_int_equal(cx__map_depth(root), CX__HAMT_MAX_DEPTH);
        assert_int_equal(cx__map_depth(root), 8);
        check_map(root, v, vals, 3);

        /* A fourth variable at the root does not change the depth. */
        cx_var *d = new_var("d", DEEP_H ^ 1u, NULL);
        map_put(&root, d, val(4), NULL);
        assert_int_equal(cx__map_depth(root), 8);
        check_map(root, (cx_var *[]){v[0], v[1], v[2], d},
                  (void *[]){vals[0], vals[1], vals[2], val(4)}, 4);

        /* Overwrite at depth 8. */
        void *old;
        assert_true(map_put(&root, v[1], val(22), &old));
        assert_ptr_equal(old, val(2));
        vals[1] = val(22);
        check_map(root, (cx_var *[]){v[0], v[1], v[2], d},
                  (void *[]){vals[0], vals[1], vals[2], val(4)}, 4);

        /* The collision node collapses into one binding: 7 levels left. */
        assert_true(map_remove(&root, v[1], &old));
        assert_ptr_equal(old, val(22));
        assert_int_equal(cx__map_depth(root), 7);
        check_map(root, (cx_var *[]){v[0], v[2], d}, (void *[]){vals[0], vals[2], val(4)}, 3);
        /* Then the chain of single-slot nodes collapses into the root. */
        assert_true(map_remove(&root, v[2], NULL));
        assert_int_equal(cx__map_depth(root), 1);
        check_map(root, (cx_var *[]){v[0], d}, (void *[]){vals[0], val(4)}, 2);
        assert_true(map_remove(&root, d, NULL));
        assert_true(map_remove(&root, v[0], NULL));
        assert_null(root);
        for (int i = 0; i < 3; i++)
            cx_var_release(v[i]);
        cx_var_release(d);
    }
}

static void deleting_the_top_bit_sibling_keeps_the_collision_reachable(void **state)
{
    (void)state;
    cx_var *a = new_var("a", DEEP_H, NULL);
    cx_var *b = new_var("b", DEEP_H, NULL);
    cx_var *c = new_var("c", DEEP_C, NULL);
    cx__node *root = NULL;
    map_put(&root, a, val(1), NULL);
    map_put(&root, b, val(2), NULL);
    map_put(&root, c, val(3), NULL);
    assert_int_equal(cx__map_depth(root), 8);
    assert_true(map_remove(&root, c, NULL));
    check_map(root, (cx_var *[]){a, b}, (void *[]){val(1), val(2)}, 2);
    assert_in_range(cx__map_depth(root), 2, 8);
    /* Re-adding c and another collider works from whatever shape is left. */
    map_put(&root, c, val(3), NULL);
    assert_int_equal(cx__map_depth(root), 8);
    check_map(root, (cx_var *[]){a, b, c}, (void *[]){val(1), val(2), val(3)}, 3);
    assert_true(map_remove(&root, a, NULL));
    assert_true(map_remove(&root, b, NULL));
    check_map(root, &c, (void *[]){val(3)}, 1);
    assert_int_equal(cx__map_depth(root), 1);
    assert_true(map_remove(&root, c, NULL));
    assert_null(root);
    cx_var_release(a);
    cx_var_release(b);
    cx_var_release(c);
}

/* Every chunk boundary: two vars that first differ at level k make a map
 * of depth k+1; removing one brings it back to depth 1. */
static void first_differing_chunk_sets_the_depth(void **state)
{
    (void)state;
    for (unsigned level = 0; level < 7; level++) {
        uint32_t h1 = 0x0F0F0F0Fu;
        uint32_t h2 = h1 ^ (1u << (5 * level)); /* differs in chunk `level` */
        cx_var *x = new_var("x", h1, NULL), *y = new_var("y", h2, NULL);
        cx__node *root = NULL;
        map_put(&root, x, val(1), NULL);
        map_put(&root, y, val(2), NULL);
        assert_int_equal(cx__map_depth(root), level + 1);
        check_map(root, (cx_var *[]){x, y}, (void *[]){val(1), val(2)}, 2);
        assert_true(map_remove(&root, y, NULL));
        assert_int_equal(cx__map_depth(root), 1);
        check_map(root, &x, (void *[]){val(1)}, 1);
        assert_true(map_remove(&root, x, NULL));
        assert_null(root);
        cx_var_release(x);
        cx_var_release(y);
    }
}

/* ============================================================ iteration */

typedef struct stopper {
    int calls;
    int stop_at;
    int ret;
} stopper;

static int stop_after(cx_var *var, void *value, void *arg)
{
    (void)var;
    (void)value;
    stopper *s = arg;
    return ++s->calls == s->stop_at ? s->ret : 0;
}

static void foreach_stops_at_first_nonzero_and_returns_it(void **state)
{
    (void)state;
    enum { N = 12 };
    /* A mixed shape: root bindings, a collision node, a depth-8 branch. */
    static const uint32_t hashes[N] = {1, 2, 3, 0x2A9, 0x2A9, 0x2A9, DEEP_H, DEEP_H, DEEP_C,
                                       0x41, 0x81, 0xC1};
    cx_var *v[N];
    cx__node *root = NULL;
    for (int i = 0; i < N; i++) {
        v[i] = new_var("f", hashes[i], NULL);
        map_put(&root, v[i], val((uintptr_t)i), NULL);
    }
    assert_int_equal(cx__map_depth(root), 8);
    for (int stop = 1; stop <= N; stop++) {
        stopper s = {.calls = 0, .stop_at = stop, .ret = 40 + stop};
        assert_int_equal(cx__map_foreach(root, stop_after, &s), 40 + stop);
        assert_int_equal(s.calls, stop);
    }
    stopper neg = {.calls = 0, .stop_at = 5, .ret = -3};
    assert_int_equal(cx__map_foreach(root, stop_after, &neg), -3);
    assert_int_equal(neg.calls, 5);
    stopper never = {.calls = 0, .stop_at = N + 1, .ret = 1};
    assert_int_equal(cx__map_foreach(root, stop_after, &never), 0);
    assert_int_equal(never.calls, N);
    cx__map_release(root);
    for (int i = 0; i < N; i++)
        cx_var_release(v[i]);
}

static void foreach_visits_every_binding_of_every_shape_once(void **state)
{
    (void)state;
    /* Grow a map one binding at a time through all the shapes above and
     * check the full contents after every step, then shrink it again. */
    enum { N = 20 };
    static const uint32_t hashes[N] = {
        DEEP_H, DEEP_C, DEEP_H, 0x2A9, 0x2A9, 0, 0x40000000u, 0x80000000u, 0xC0000000u,
        0, 0x20, 0x400, 0x8000, 0x100000, 0x2000000, 31, 0xFFFFFFFFu, 0x7FFFFFFFu,
        0xFFFFFFFFu, DEEP_H};
    cx_var *v[N];
    void *x[N];
    cx__node *root = NULL;
    for (int i = 0; i < N; i++) {
        v[i] = new_var("s", hashes[i], NULL);
        x[i] = val((uintptr_t)i + 100);
        map_put(&root, v[i], x[i], NULL);
        check_map(root, v, x, (size_t)i + 1);
    }
    assert_int_equal(cx__map_depth(root), 8);
    for (int i = 0; i < N; i++) {
        assert_true(map_remove(&root, v[i], NULL));
        check_map(root, v + i + 1, x + i + 1, (size_t)(N - i - 1));
    }
    assert_null(root);
    for (int i = 0; i < N; i++)
        cx_var_release(v[i]);
}

/* ============================================================ equality */

static void equal_compares_bindings_not_shapes(void **state)
{
    (void)state;
    enum { N = 9 };
    static const uint32_t hashes[N] = {DEEP_H, DEEP_H, DEEP_C, 5, 0x2A9, 0x2A9, 0x2A9, 37, 69};
    cx_var *v[N];
    for (int i = 0; i < N; i++)
        v[i] = new_var("e", hashes[i], NULL);
    cx__node *a = NULL, *b = NULL;
    for (int i = 0; i < N; i++)
        map_put(&a, v[i], val((uintptr_t)i), NULL);
    for (int i = N - 1; i >= 0; i--) /* other insertion order */
        map_put(&b, v[i], val((uintptr_t)i), NULL);
    assert_true(cx__map_equal(a, b));
    assert_true(cx__map_equal(b, a));
    assert_true(cx__map_equal(a, a));

    /* Same vars, one value differs. */
    map_put(&b, v[4], val(77), NULL);
    assert_false(cx__map_equal(a, b));
    assert_false(cx__map_equal(b, a));
    map_put(&b, v[4], val(4), NULL);
    assert_true(cx__map_equal(a, b));

    /* Same length, different var sets. */
    cx_var *w = new_var("w", 0x2A9, NULL);
    assert_true(map_remove(&b, v[5], NULL));
    map_put(&b, w, val(5), NULL);
    assert_int_equal(cx__map_len(a), cx__map_len(b));
    assert_false(cx__map_equal(a, b));
    assert_false(cx__map_equal(b, a));

    /* Different lengths; empty against non-empty. */
    assert_true(map_remove(&b, w, NULL));
    assert_false(cx__map_equal(a, b));
    assert_false(cx__map_equal(NULL, a));
    assert_false(cx__map_equal(a, NULL));
    cx__map_release(a);
    cx__map_release(b);
    for (int i = 0; i < N; i++)
        cx_var_release(v[i]);
    cx_var_release(w);
}

/* ============================================================ sharing */

static int destroyed_count[64];
static void count_destroy(void *v) { destroyed_count[(uintptr_t)v]++; }

static void shared_root_is_path_copied_and_snapshot_unchanged(void **state)
{
    (void)state;
    memset(destroyed_count, 0, sizeof(destroyed_count));
    enum { N = 6 };
    static const uint32_t hashes[N] = {DEEP_H, DEEP_H, DEEP_C, 7, 0x2A9, 0x2A9};
    cx_var *v[N];
    void *x[N];
    cx__node *root = NULL;
    for (int i = 0; i < N; i++) {
        v[i] = new_var("p", hashes[i], count_destroy);
        x[i] = (void *)(uintptr_t)(i + 1);
        map_put(&root, v[i], x[i], NULL);
    }
    /* Snapshot, then change every binding in the live map. */
    cx__node *snap = root;
    cx__map_retain(snap);
    for (int i = 0; i < N; i++)
        map_put(&root, v[i], (void *)(uintptr_t)(i + 20), NULL);
    assert_true(root != snap);
    check_map(snap, v, x, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(destroyed_count[i + 1], 0); /* the snapshot holds them */
    /* Delete from the live map; the snapshot is unchanged. */
    assert_true(map_remove(&root, v[1], NULL));
    assert_true(map_remove(&root, v[2], NULL));
    check_map(snap, v, x, N);
    assert_int_equal(destroyed_count[21], 1);
    assert_int_equal(destroyed_count[22], 1);
    /* Dropping the snapshot destroys its values, exactly once. */
    cx__map_release(snap);
    for (int i = 0; i < N; i++)
        assert_int_equal(destroyed_count[i + 1], 1);
    check_map(root, (cx_var *[]){v[0], v[3], v[4], v[5]},
              (void *[]){(void *)20, (void *)23, (void *)24, (void *)25}, 4);
    /* Now unique again: updated in place, still correct. */
    map_put(&root, v[0], (void *)(uintptr_t)30, NULL);
    assert_int_equal(destroyed_count[20], 1);
    cx__map_release(root);
    assert_int_equal(destroyed_count[30], 1);
    assert_int_equal(destroyed_count[23], 1);
    for (int i = 0; i < N; i++)
        cx_var_release(v[i]);
}

/* ============================================================ differential */

#define DV 64
#define MAXSNAP 6

typedef struct model {
    bool has[DV];
    uintptr_t val[DV];
    size_t len;
} model;

typedef struct snapshot {
    cx__node *root;
    model m;
} snapshot;

static unsigned *diff_destroyed; /* indexed by value id */
static size_t diff_ids;

static void diff_destroy(void *v)
{
    uintptr_t id = (uintptr_t)v;
    if (id < diff_ids)
        diff_destroyed[id]++;
}

static uint64_t rng_state;
static uint32_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static int model_visit(cx_var *var, void *value, void *arg)
{
    void **ctx = arg;
    cx_var *const *vars = ctx[0];
    const model *m = ctx[1];
    unsigned *visits = ctx[2];
    for (int i = 0; i < DV; i++) {
        if (vars[i] == var) {
            visits[i]++;
            if (!m->has[i] || (uintptr_t)value != m->val[i])
                return 1000 + i;
            return 0;
        }
    }
    return -1; /* a variable the test never created */
}

static void check_against_model(const cx__node *root, cx_var *const *vars, const model *m)
{
    assert_null(cx__map_check(root));
    assert_int_equal(cx__map_len(root), m->len);
    assert_true(cx__map_depth(root) <= CX__HAMT_MAX_DEPTH);
    for (int i = 0; i < DV; i++) {
        void *v = NULL;
        bool found = cx__map_get(root, vars[i], &v);
        assert_int_equal(found, m->has[i]);
        if (found)
            assert_int_equal((uintptr_t)v, m->val[i]);
    }
    unsigned visits[DV] = {0};
    void *arg[3] = {(void *)vars, (void *)m, visits};
    assert_int_equal(cx__map_foreach(root, model_visit, arg), 0);
    for (int i = 0; i < DV; i++)
        assert_int_equal(visits[i], m->has[i] ? 1 : 0);
}

static bool models_equal(const model *a, const model *b)
{
    for (int i = 0; i < DV; i++) {
        if (a->has[i] != b->has[i] || (a->has[i] && a->val[i] != b->val[i]))
            return false;
    }
    return true;
}

static void drop_snapshot(snapshot *snaps, int *nsnap, int k, cx_var *const *vars)
{
    check_against_model(snaps[k].root, vars, &snaps[k].m);
    cx__map_release(snaps[k].root);
    snaps[k] = snaps[--*nsnap];
}

static void run_differential(uint64_t seed, unsigned nhashes, unsigned ops)
{
    static const uint32_t tiny[] = {
        0x00000000u, 0x40000000u, 0x80000000u, 0xC0000000u, /* share bits 0-29 */
        0x00000020u, 0x00000001u,                           /* split at chunk 1, 0 */
        0x3FFFFFFFu, 0x7FFFFFFFu, 0xFFFFFFFFu,              /* share bits 0-29 */
        0x2AAAAAAAu, 0x6AAAAAAAu, 0x2AAAAAABu, 0x2AAAA2AAu, /* deep + shallow splits */
    };
    if (nhashes > sizeof(tiny) / sizeof(tiny[0]))
        nhashes = sizeof(tiny) / sizeof(tiny[0]);
    rng_state = seed;
    cx_var *vars[DV];
    char name[16];
    for (int i = 0; i < DV; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        vars[i] = new_var(name, tiny[rnd() % nhashes], diff_destroy);
    }
    diff_ids = (size_t)ops + 2;
    diff_destroyed = calloc(diff_ids, sizeof(*diff_destroyed));
    assert_non_null(diff_destroyed);
    uintptr_t next_id = 1;

    cx__node *root = NULL;
    model m;
    memset(&m, 0, sizeof(m));
    snapshot snaps[MAXSNAP];
    int nsnap = 0;
    unsigned nset = 0, ndel = 0, ncopy = 0, ndrop = 0;

    for (unsigned op = 0; op < ops; op++) {
        unsigned r = rnd() % 100;
        int i = (int)(rnd() % DV);
        if (r < 45) {
            uintptr_t id = next_id++;
            void *old = NULL;
            bool had = map_put(&root, vars[i], (void *)id, &old);
            assert_int_equal(had, m.has[i]);
            if (had)
                assert_int_equal((uintptr_t)old, m.val[i]);
            else
                m.len++;
            m.has[i] = true;
            m.val[i] = id;
            nset++;
        } else if (r < 75) {
            void *old = NULL;
            bool had = map_remove(&root, vars[i], &old);
            assert_int_equal(had, m.has[i]);
            if (had) {
                assert_int_equal((uintptr_t)old, m.val[i]);
                m.has[i] = false;
                m.len--;
            }
            ndel++;
        } else if (r < 85) {
            if (nsnap == MAXSNAP)
                drop_snapshot(snaps, &nsnap, (int)(rnd() % MAXSNAP), vars);
            cx__map_retain(root);
            snaps[nsnap].root = root;
            snaps[nsnap].m = m;
            nsnap++;
            ncopy++;
        } else if (r < 92) {
            if (nsnap > 0) {
                drop_snapshot(snaps, &nsnap, (int)(rnd() % (unsigned)nsnap), vars);
                ndrop++;
            }
        } else {
            void *v = NULL;
            bool found = cx__map_get(root, vars[i], &v);
            assert_int_equal(found, m.has[i]);
            if (found)
                assert_int_equal((uintptr_t)v, m.val[i]);
        }
        check_against_model(root, vars, &m);
        for (int k = 0; k < nsnap; k++) {
            check_against_model(snaps[k].root, vars, &snaps[k].m);
            assert_int_equal(cx__map_equal(root, snaps[k].root), models_equal(&m, &snaps[k].m));
        }
    }
    /* Every kind of operation ran. */
    assert_true(nset > 0 && ndel > 0 && ncopy > 0);
    (void)ndrop;

    /* Variables die with their last binding, not with our reference: from
     * here on only bound variables may be dereferenced (memcheck). */
    for (int i = 0; i < DV; i++)
        cx_var_release(vars[i]);
    while (nsnap > 0)
        cx__map_release(snaps[--nsnap].root);
    /* Values still live are exactly the model's; nothing else is left. */
    for (uintptr_t id = 1; id < next_id; id++) {
        bool live = false;
        for (int i = 0; i < DV; i++)
            live |= m.has[i] && m.val[i] == id;
        assert_int_equal(diff_destroyed[id], live ? 0 : 1);
    }
    cx__map_release(root);
    for (uintptr_t id = 1; id < next_id; id++)
        assert_int_equal(diff_destroyed[id], 1);
    free(diff_destroyed);
    diff_destroyed = NULL;
    diff_ids = 0;
}

static void random_ops_match_reference_model(void **state)
{
    (void)state;
    unsigned ops = cx_test_scaled(4000);
    run_differential(0x9E3779B97F4A7C15ULL, 13, ops);
    run_differential(0xD1B54A32D192ED03ULL, 4, ops);  /* all at depth 7-8 */
    run_differential(0x8CB92BA72F3D8DD7ULL, 2, ops);  /* two big collision nodes */
    run_differential(0x2545F4914F6CDD1DULL, 9, ops);
}

/* ============================================================ opaque map */

/* hamt.c knows nothing of variables: a map of plain integer keys with
 * ops that count every entry reference and every byte of node memory. */
#define OK_KEYS 300
static long ok_refs[OK_KEYS + 1]; /* entry references held, per key */
static long ok_live_bytes, ok_allocs;

static uint32_t ok_hash(const void *key)
{
    uintptr_t k = (uintptr_t)key;
    /* Keys 1..40 collide in groups of 4; the others spread. */
    return k <= 40 ? (uint32_t)((k - 1) / 4) * 0x9E3779B1u : (uint32_t)(k * 0x85EBCA6Bu);
}
static void ok_retain(const cx__entry *e) { ok_refs[(uintptr_t)e->key]++; }
static void ok_release(const cx__entry *e) { ok_refs[(uintptr_t)e->key]--; }
static void *ok_alloc(size_t bytes)
{
    ok_live_bytes += (long)bytes;
    ok_allocs++;
    return malloc(bytes);
}
static void ok_free(void *p, size_t bytes)
{
    ok_live_bytes -= (long)bytes;
    free(p);
}
/* Odd keys are marked: the validator then checks every node's count of
 * them through all the shapes below. */
static bool ok_marked(const void *key) { return ((uintptr_t)key & 1u) != 0; }
static const cx__hamt_ops ok_ops = {ok_hash, ok_retain, ok_release, ok_alloc, ok_free, ok_marked};

static void ok_put(cx__node **root, uintptr_t k, uintptr_t v)
{
    cx__entry e = {(void *)k, (void *)v}, old;
    cx__hamt_garbage g = {.n = 0};
    ok_refs[k]++; /* the reference handed over with e */
    cx__hamt_set_result r = cx__hamt_set(root, &e, ok_hash(e.key), &ok_ops, &old, &g);
    assert_true(r == CX__HAMT_ADDED || r == CX__HAMT_REPLACED);
    if (r == CX__HAMT_REPLACED) {
        assert_ptr_equal(old.key, (void *)k);
        ok_release(&old);
    }
    cx__hamt_garbage_release(&g, &ok_ops);
    assert_null(cx__hamt_check(*root, &ok_ops));
}

static void map_of_opaque_keys_uses_only_the_given_ops(void **state)
{
    (void)state;
    memset(ok_refs, 0, sizeof(ok_refs));
    ok_live_bytes = ok_allocs = 0;
    cx__node *root = NULL;
    for (uintptr_t k = 1; k <= OK_KEYS; k++)
        ok_put(&root, k, k * 10);
    assert_int_equal(cx__hamt_len(root), OK_KEYS);
    for (uintptr_t k = 1; k <= OK_KEYS; k++) {
        assert_int_equal(ok_refs[k], 1);
        const cx__entry *e = cx__hamt_find(root, (void *)k, ok_hash((void *)k));
        assert_non_null(e);
        assert_ptr_equal(e->value, (void *)(k * 10));
    }
    /* A snapshot shares everything; updates path-copy and retain. */
    cx__node *snap = root;
    cx__hamt_retain(snap);
    for (uintptr_t k = 1; k <= OK_KEYS; k += 3)
        ok_put(&root, k, k * 10 + 1);
    for (uintptr_t k = 2; k <= OK_KEYS; k += 3) {
        cx__entry old;
        cx__hamt_garbage g = {.n = 0};
        assert_int_equal(cx__hamt_del(&root, (void *)k, ok_hash((void *)k), &ok_ops, &old, &g),
                         CX__HAMT_REMOVED);
        ok_release(&old);
        cx__hamt_garbage_release(&g, &ok_ops);
        assert_null(cx__hamt_check(root, &ok_ops));
    }
    assert_null(cx__hamt_check(snap, &ok_ops));
    assert_int_equal(cx__hamt_len(snap), OK_KEYS);
    assert_int_equal(cx__hamt_len(root), OK_KEYS - (OK_KEYS + 1) / 3);
    cx__hamt_release(snap, &ok_ops);
    assert_null(cx__hamt_check(root, &ok_ops));
    for (uintptr_t k = 1; k <= OK_KEYS; k++)
        assert_int_equal(ok_refs[k], k % 3 == 2 ? 0 : 1);
    cx__hamt_release(root, &ok_ops);
    for (uintptr_t k = 1; k <= OK_KEYS; k++)
        assert_int_equal(ok_refs[k], 0);
    assert_int_equal(ok_live_bytes, 0);
    assert_true(ok_allocs > 0);
}

/* An owned node keeps a spare entry: adding and removing one key again
 * and again allocates nothing after the first time. */
static void add_and_remove_in_an_owned_map_allocates_nothing(void **state)
{
    (void)state;
    memset(ok_refs, 0, sizeof(ok_refs));
    ok_live_bytes = ok_allocs = 0;
    cx__node *root = NULL;
    for (uintptr_t k = 41; k <= 50; k++)
        ok_put(&root, k, k);
    long allocs = ok_allocs;
    for (int i = 0; i < 100; i++) {
        ok_put(&root, 60, 1);
        cx__entry old;
        cx__hamt_garbage g = {.n = 0};
        assert_int_equal(cx__hamt_del(&root, (void *)60, ok_hash((void *)60), &ok_ops, &old, &g),
                         CX__HAMT_REMOVED);
        ok_release(&old);
        assert_int_equal(g.n, 0);
    }
    assert_true(ok_allocs <= allocs + 1);
    cx__hamt_release(root, &ok_ops);
    assert_int_equal(ok_live_bytes, 0);
}

/* The validator is not vacuous: a key whose hash no longer matches its
 * place in the map is reported. */
static void validator_reports_a_key_off_its_path(void **state)
{
    (void)state;
    cx_var *a = new_var("a", 0x11u, NULL), *b = new_var("b", 0x31u, NULL);
    cx__node *root = NULL;
    map_put(&root, a, val(1), NULL);
    map_put(&root, b, val(2), NULL); /* same root chunk: one level down */
    assert_null(cx__map_check(root));
    cx__var_set_hash(b, 0x12u);
    assert_non_null(cx__map_check(root));
    cx__var_set_hash(b, 0x31u);
    assert_null(cx__map_check(root));
    cx__map_release(root);
    cx_var_release(a);
    cx_var_release(b);
}

/* ============================================================ public API */

typedef struct api_case {
    cx_var **vars;
    int n;
    int failures;
} api_case;

static int api_visit(cx_var *var, void *value, void *arg)
{
    api_case *c = arg;
    for (int i = 0; i < c->n; i++) {
        if (c->vars[i] == var)
            return value == val((uintptr_t)i) ? 0 : 1;
    }
    return 2;
}

static void *api_deep_shapes(void *arg)
{
    api_case *c = arg;
    cx_token *tok[16];
    /* Set all (overwriting each once), read back through every path. */
    for (int i = 0; i < c->n; i++) {
        if (cx_var_set(c->vars[i], val(1000), NULL) != 0)
            c->failures++;
        if (cx_var_set(c->vars[i], val((uintptr_t)i), &tok[i]) != 0)
            c->failures++;
    }
    for (int i = 0; i < c->n; i++) {
        void *v = NULL;
        if (cx_var_get(c->vars[i], &v) != 0 || v != val((uintptr_t)i))
            c->failures++;
        if (cx_var_get_or(c->vars[i], NULL) != val((uintptr_t)i))
            c->failures++;
    }
    cx_context *me = cx_copy_context();
    if (me == NULL || cx_context_len(me) != (size_t)c->n ||
        cx_context_foreach(me, api_visit, c) != 0)
        c->failures++;
    /* Reset in an order that unwinds the depth-8 branch from the middle:
     * each reset restores val(1000). */
    for (int k = 0; k < c->n; k++) {
        int i = (k * 3 + 2) % c->n; /* a permutation for n = 10 */
        if (cx_var_reset(c->vars[i], tok[i]) != 0)
            c->failures++;
        void *v = NULL;
        if (cx_var_get(c->vars[i], &v) != 0 || v != val(1000))
            c->failures++;
        cx_token_release(tok[i]);
    }
    /* The copy taken before is unchanged. */
    if (me == NULL || cx_context_len(me) != (size_t)c->n ||
        cx_context_foreach(me, api_visit, c) != 0)
        c->failures++;
    cx_context_release(me);
    return NULL;
}

static void public_api_handles_collisions_and_depth_eight(void **state)
{
    (void)state;
    enum { N = 10 };
    static const uint32_t hashes[N] = {DEEP_H, DEEP_H, DEEP_C, DEEP_H, 0x2A9, 0x2A9, 0x2A9,
                                       0, 0x40000000u, 0x40000000u};
    cx_var *v[N];
    for (int i = 0; i < N; i++)
        v[i] = new_var("api", hashes[i], NULL);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    api_case c = {.vars = v, .n = N, .failures = 0};
    assert_int_equal(cx_context_run(ctx, api_deep_shapes, &c, NULL), 0);
    assert_int_equal(c.failures, 0);
    assert_int_equal(cx_context_len(ctx), N);
    for (int i = 0; i < N; i++) {
        void *x = NULL;
        assert_int_equal(cx_context_get(ctx, v[i], &x), 0);
        assert_ptr_equal(x, val(1000));
        assert_true(cx_context_contains(ctx, v[i]));
    }
    cx_context_release(ctx);
    for (int i = 0; i < N; i++)
        cx_var_release(v[i]);
}

/* Random set/reset (non-LIFO) with tokens, and copies, through the public
 * API, against a model. Runs inside one context. */
typedef struct api_diff {
    cx_var *vars[32];
    unsigned ops;
    unsigned failures;
    unsigned first_failure_op;
} api_diff;

typedef struct pending {
    cx_token *tok;
    int var;
    bool had;
    uintptr_t old;
} pending;

static void api_fail(api_diff *d, unsigned op)
{
    if (d->failures++ == 0)
        d->first_failure_op = op + 1;
}

/* ctx holds exactly m; if current, cx_var_get agrees too. */
static void api_check(api_diff *d, unsigned op, const model *m, const cx_context *ctx,
                      bool current)
{
    if (cx_context_len(ctx) != m->len)
        api_fail(d, op);
    for (int i = 0; i < 32; i++) {
        void *v = NULL, *w = NULL;
        int rc = current ? cx_var_get(d->vars[i], &v) : 0;
        int rc2 = cx_context_get(ctx, d->vars[i], &w);
        if (!current)
            v = w;
        if (m->has[i]) {
            if (rc != 0 || rc2 != 0 || (uintptr_t)v != m->val[i] || (uintptr_t)w != m->val[i])
                api_fail(d, op);
        } else if ((current && rc != CX_ELOOKUP) || rc2 != CX_ELOOKUP) {
            api_fail(d, op);
        }
    }
}

static void *api_diff_body(void *arg)
{
    api_diff *d = arg;
    model m;
    memset(&m, 0, sizeof(m));
    pending pend[24];
    int npend = 0;
    cx_context *snap[4] = {NULL, NULL, NULL, NULL};
    model snapm[4];
    uintptr_t next = 1;
    for (unsigned op = 0; op < d->ops; op++) {
        unsigned r = rnd() % 100;
        int i = (int)(rnd() % 32);
        if (r < 50 && npend < 24) {
            pending p = {.tok = NULL, .var = i, .had = m.has[i], .old = m.val[i]};
            if (cx_var_set(d->vars[i], (void *)next, &p.tok) != 0) {
                api_fail(d, op);
                continue;
            }
            void *ov = NULL;
            int orc = cx_token_old_value(p.tok, &ov);
            if (p.had ? (orc != 0 || (uintptr_t)ov != p.old) : orc != CX_ELOOKUP)
                api_fail(d, op);
            if (!m.has[i])
                m.len++;
            m.has[i] = true;
            m.val[i] = next++;
            pend[npend++] = p;
        } else if (r < 85 && npend > 0) {
            int k = (int)(rnd() % (unsigned)npend);
            pending p = pend[k];
            pend[k] = pend[--npend];
            if (cx_var_reset(d->vars[p.var], p.tok) != 0)
                api_fail(d, op);
            if (cx_var_reset(d->vars[p.var], p.tok) != CX_EUSED)
                api_fail(d, op);
            cx_token_release(p.tok);
            if (p.had && !m.has[p.var])
                m.len++;
            if (!p.had && m.has[p.var])
                m.len--;
            m.has[p.var] = p.had;
            m.val[p.var] = p.had ? p.old : 0;
        } else {
            int k = (int)(rnd() % 4);
            if (snap[k] != NULL) {
                api_check(d, op, &snapm[k], snap[k], false);
                cx_context_release(snap[k]);
            }
            snap[k] = cx_copy_context();
            snapm[k] = m;
            if (snap[k] == NULL)
                api_fail(d, op);
        }
        /* The current context, seen two ways. */
        cx_context *cur = cx_copy_context();
        api_check(d, op, &m, cur, true);
        cx_context_release(cur);
        for (int k = 0; k < 4; k++) {
            if (snap[k] == NULL)
                continue;
            /* A copy is checked from outside: its own len/get. */
            if (cx_context_len(snap[k]) != snapm[k].len)
                api_fail(d, op);
            for (int j = 0; j < 32; j++) {
                void *v = NULL;
                int rc = cx_context_get(snap[k], d->vars[j], &v);
                if (snapm[k].has[j] ? (rc != 0 || (uintptr_t)v != snapm[k].val[j])
                                    : rc != CX_ELOOKUP)
                    api_fail(d, op);
            }
        }
    }
    for (int k = 0; k < npend; k++)
        cx_token_release(pend[k].tok);
    for (int k = 0; k < 4; k++)
        cx_context_release(snap[k]);
    return NULL;
}

static void public_api_random_set_reset_matches_model(void **state)
{
    (void)state;
    static const uint32_t tiny[] = {0, 0x40000000u, 0x80000000u, 0x20, 1, 0x3FFFFFFFu};
    api_diff d;
    memset(&d, 0, sizeof(d));
    rng_state = 0x5DEECE66DULL;
    for (int i = 0; i < 32; i++)
        d.vars[i] = new_var("pub", tiny[rnd() % 6], NULL);
    d.ops = cx_test_scaled(3000);
    cx_context *ctx = cx_context_new();
    assert_non_null(ctx);
    assert_int_equal(cx_context_run(ctx, api_diff_body, &d, NULL), 0);
    assert_int_equal(d.first_failure_op, 0);
    assert_int_equal(d.failures, 0);
    cx_context_release(ctx);
    for (int i = 0; i < 32; i++)
        cx_var_release(d.vars[i]);
}

/* ===================================== in-place updates after a release
 * A reset that updates a node in place must announce (to race detectors)
 * the release that made the node unique again: here another thread read
 * the node through a copy of the context and then released the copy, and
 * nothing else orders that thread's read before the reset's write. Under
 * ThreadSanitizer the two threads meet only through a relaxed flag, so a
 * reset that skipped the announcement is a reported race (check-tsan
 * halts on it). Elsewhere the thread is joined first (helgrind and DRD
 * would report the flag itself), and the test checks the values. */
static cx_var *shared_x;
static int shared_read_done;

static void *read_shared_x(void *arg)
{
    (void)arg;
    void *v = NULL;
    return cx_var_get(shared_x, &v) == 0 ? v : NULL;
}

static void *copy_reader(void *p)
{
    cx_context *c = p;
    void *seen = NULL;
    if (cx_context_run(c, read_shared_x, NULL, &seen) != 0)
        seen = NULL;
    cx_context_release(c);
    __atomic_store_n(&shared_read_done, 1, __ATOMIC_RELAXED);
    return seen;
}

static void reset_in_place_after_another_thread_released_its_copy(void **state)
{
    (void)state;
    static int val[6];
    /* x and y share their root slot (low 5 bits 1): a child node N. */
    shared_x = new_var("x", 0x01u, NULL);
    cx_var *y = new_var("y", 0x21u, NULL);
    cx_var *z = new_var("z", 0x02u, NULL);
    cx_token *tx[3], *ty, *tz[2];
    for (int i = 0; i < 3; i++)
        assert_int_equal(cx_var_set(shared_x, &val[i], &tx[i]), 0);
    assert_int_equal(cx_var_set(y, &val[3], &ty), 0);
    assert_int_equal(cx_var_set(z, &val[4], &tz[0]), 0);
    cx_context *c = cx_copy_context();
    assert_non_null(c);
    /* The root is copied, N stays shared with the copy. */
    assert_int_equal(cx_var_set(z, &val[5], &tz[1]), 0);
    __atomic_store_n(&shared_read_done, 0, __ATOMIC_RELAXED);
    pthread_t th;
    void *seen = NULL;
    assert_int_equal(pthread_create(&th, NULL, copy_reader, c), 0);
#ifdef CX_TEST_TSAN
    while (!__atomic_load_n(&shared_read_done, __ATOMIC_RELAXED))
        sched_yield();
    /* N is unique again: the reset updates it in place. */
    assert_int_equal(cx_var_reset(shared_x, tx[2]), 0);
    assert_int_equal(pthread_join(th, &seen), 0);
#else
    assert_int_equal(pthread_join(th, &seen), 0);
    assert_int_equal(cx_var_reset(shared_x, tx[2]), 0);
#endif
    assert_ptr_equal(seen, &val[2]);
    void *v;
    assert_int_equal(cx_var_get(shared_x, &v), 0);
    assert_ptr_equal(v, &val[1]);
    assert_int_equal(cx_var_reset(z, tz[1]), 0);
    assert_int_equal(cx_var_reset(z, tz[0]), 0);
    assert_int_equal(cx_var_reset(y, ty), 0);
    assert_int_equal(cx_var_reset(shared_x, tx[1]), 0);
    assert_int_equal(cx_var_reset(shared_x, tx[0]), 0);
    for (int i = 0; i < 3; i++)
        cx_token_release(tx[i]);
    cx_token_release(ty);
    cx_token_release(tz[0]);
    cx_token_release(tz[1]);
    cx_var_release(shared_x);
    cx_var_release(y);
    cx_var_release(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_map_has_nothing),
        cmocka_unit_test(set_overwrite_and_delete_single_binding),
        cmocka_unit_test(distinct_root_chunks_stay_at_depth_one),
        cmocka_unit_test(root_deletes_in_any_order),
        cmocka_unit_test(full_hash_collisions_share_one_collision_node),
        cmocka_unit_test(collision_beside_other_root_bindings),
        cmocka_unit_test(hashes_differing_only_in_top_bits_need_seven_levels),
        cmocka_unit_test(collision_below_seven_bitmap_levels_reaches_depth_eight),
        cmocka_unit_test(deleting_the_top_bit_sibling_keeps_the_collision_reachable),
        cmocka_unit_test(first_differing_chunk_sets_the_depth),
        cmocka_unit_test(foreach_stops_at_first_nonzero_and_returns_it),
        cmocka_unit_test(foreach_visits_every_binding_of_every_shape_once),
        cmocka_unit_test(equal_compares_bindings_not_shapes),
        cmocka_unit_test(shared_root_is_path_copied_and_snapshot_unchanged),
        cmocka_unit_test(random_ops_match_reference_model),
        cmocka_unit_test(map_of_opaque_keys_uses_only_the_given_ops),
        cmocka_unit_test(add_and_remove_in_an_owned_map_allocates_nothing),
        cmocka_unit_test(validator_reports_a_key_off_its_path),
        cmocka_unit_test(public_api_handles_collisions_and_depth_eight),
        cmocka_unit_test(public_api_random_set_reset_matches_model),
        cmocka_unit_test(reset_in_place_after_another_thread_released_its_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
