/* oom.c - the out-of-memory walk.
 *
 * A counting allocator installed with cx_set_allocator fails allocation
 * number k of a scenario. Each scenario runs with k = 1, 2, 3, ... until it
 * completes without meeting a failure. For every failure injected:
 *   - the call returns CX_ENOMEM (or the job's future completes with it);
 *   - the state is exactly as before: the bindings of the contexts
 *     involved (foreach/len snapshots, and cx_var_get in the current
 *     context), tokens not used, contexts not left entered;
 *   - a value of a variable with a destroy callback stays the caller's:
 *     the destroy counter does not move;
 *   - nothing leaks: the allocator's live block count after the
 *     scenario's cleanup equals the count before it.
 * Run it under memcheck or ASan too (make check-oom does) for leaks the
 * count cannot see and for use-after-free in the failure paths.
 *
 * Allocation counting is global (any thread); every scenario makes sure
 * no other thread allocates while it is armed, so the numbering is
 * deterministic. Library per-thread state is allocated on a thread's first
 * set or run: the main thread's exists before any walk, and the scenarios
 * about a thread's first use run on a fresh thread.
 *
 * Output: one line per scenario, then
 *   oom: N failure points walked, V violations
 * Exit status 1 if V > 0.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxpool.h"
#include "cxvars.h"
#include "context.h" /* struct cx_context: root, for the depth check */
#include "var.h"     /* cx__var_set_hash: exact map shapes */

#define TAG(n) ((void *)(uintptr_t)(n))
#define MAX_K 100000

/* ================================================================ allocator */

static atomic_long live_blocks;
static atomic_long armed_calls;
static atomic_long fail_at;
static atomic_bool armed;
static atomic_bool injected;
static atomic_bool fail_rest; /* fail every allocation from fail_at on */

static void *oom_malloc(size_t n)
{
    if (atomic_load(&armed)) {
        long c = atomic_fetch_add(&armed_calls, 1) + 1;
        long k = atomic_load(&fail_at);
        if (c == k || (c > k && atomic_load(&fail_rest))) {
            atomic_store(&injected, true);
            return NULL;
        }
    }
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add(&live_blocks, 1);
    return p;
}

static void oom_free(void *p)
{
    if (p != NULL)
        atomic_fetch_sub(&live_blocks, 1);
    free(p);
}

/* ================================================================ walk */

static long g_k;              /* the allocation failed in this iteration */
static const char *g_scen;
static bool g_injected;       /* the last disarm() saw a failure */
static long total_points, violations, no_alloc_checks;

static void violation(const char *fmt, ...)
{
    va_list ap;
    violations++;
    fprintf(stderr, "oom: VIOLATION in %s, failing allocation %ld: ", g_scen, g_k);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
#define EXPECT(cond, ...)            \
    do {                             \
        if (!(cond))                 \
            violation(__VA_ARGS__);  \
    } while (0)

static void arm_at(long k)
{
    atomic_store(&fail_rest, false);
    atomic_store(&armed_calls, 0);
    atomic_store(&injected, false);
    atomic_store(&fail_at, k);
    atomic_store(&armed, true);
}
static void arm(void) { arm_at(g_k); }

/* Suspends failure injection for a moment without resetting the count:
 * memory another thread freed, say. */
static void pause_arm(void) { atomic_store(&armed, false); }
static void resume_arm(void) { atomic_store(&armed, true); }

/* Persistent exhaustion: allocation k and every later one fail. */
static void arm_from(long k)
{
    arm_at(k);
    atomic_store(&fail_rest, true);
}

/* Returns (and records in g_injected) whether a failure was injected. */
static bool disarm(void)
{
    atomic_store(&armed, false);
    g_injected = atomic_load(&injected);
    return g_injected;
}

/* Blocks this thread keeps in its reset reserve (src/tstate.c: filled by
 * sets that return a token, used by resets when the allocator fails, freed
 * with the thread). They are not leaks; the balance leaves them out. */
static long own_reserve(void)
{
    const cx__tstate *st = cx__tstate_cur();
    return st != NULL ? (long)st->nreserve : 0;
}

static long g_absorbed; /* failures a call survived by design (the reserve) */

/* Runs body with k = 1, 2, ... until an iteration meets no failure. */
static void walk(const char *name, void (*body)(void))
{
    long points = 0;
    g_scen = name;
    for (g_k = 1; g_k <= MAX_K; g_k++) {
        long live0 = atomic_load(&live_blocks) - own_reserve();
        g_injected = false;
        body();
        long leaked = atomic_load(&live_blocks) - own_reserve() - live0;
        EXPECT(leaked == 0, "%ld blocks leaked (%s)", leaked,
               g_injected ? "after the failure" : "on the successful run");
        if (!g_injected)
            break;
        points++;
    }
    EXPECT(g_k <= MAX_K, "never completed");
    printf("oom: %-44s %3ld failure points\n", name, points);
    total_points += points;
}

/* ================================================================ values */

static atomic_long destroyed;
static void on_destroy(void *v)
{
    (void)v;
    atomic_fetch_add(&destroyed, 1);
}

static cx_var *new_var(const char *name, bool destroy, bool has_hash, uint32_t hash)
{
    cx_var *v = NULL;
    cx_var_opts o = {.has_default = false, .destroy = destroy ? on_destroy : NULL};
    if (cx_var_new(&v, name, &o) != 0) {
        fprintf(stderr, "oom: cx_var_new failed outside the walk\n");
        exit(2);
    }
    if (has_hash)
        cx__var_set_hash(v, hash);
    return v;
}

/* ================================================================ snapshots */

#define MAXB 64
struct snap {
    size_t len;
    int n;
    const cx_var *var[MAXB];
    void *val[MAXB];
};

static int snap_cb(cx_var *v, void *val, void *arg)
{
    struct snap *s = arg;
    if (s->n < MAXB) {
        s->var[s->n] = v;
        s->val[s->n] = val;
    }
    s->n++;
    return 0;
}

static void snap(const cx_context *c, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    s->len = cx_context_len(c);
    (void)cx_context_foreach(c, snap_cb, s);
    /* order by variable address */
    for (int i = 1; i < s->n && i < MAXB; i++)
        for (int j = i; j > 0 && s->var[j - 1] > s->var[j]; j--) {
            const cx_var *tv = s->var[j];
            void *tx = s->val[j];
            s->var[j] = s->var[j - 1];
            s->val[j] = s->val[j - 1];
            s->var[j - 1] = tv;
            s->val[j - 1] = tx;
        }
}

static bool snap_eq(const struct snap *a, const struct snap *b)
{
    if (a->len != b->len || a->n != b->n)
        return false;
    for (int i = 0; i < a->n && i < MAXB; i++)
        if (a->var[i] != b->var[i] || a->val[i] != b->val[i])
            return false;
    return true;
}

static bool snap_find(const struct snap *s, const cx_var *v, void **val)
{
    for (int i = 0; i < s->n && i < MAXB; i++)
        if (s->var[i] == v) {
            *val = s->val[i];
            return true;
        }
    return false;
}

/* *out = s with var bound to val (added or replaced), kept in order. */
static void snap_put(const struct snap *s, const cx_var *var, void *val, struct snap *out)
{
    *out = *s;
    for (int i = 0; i < out->n && i < MAXB; i++)
        if (out->var[i] == var) {
            out->val[i] = val;
            return;
        }
    if (out->n >= MAXB)
        return;
    int i = out->n++;
    out->len++;
    while (i > 0 && out->var[i - 1] > var) {
        out->var[i] = out->var[i - 1];
        out->val[i] = out->val[i - 1];
        i--;
    }
    out->var[i] = var;
    out->val[i] = val;
}

/* cx_var_get of each variable in the current context agrees with s (none
 * of the walk's variables has a default). */
static void expect_gets(const struct snap *s, cx_var *const *vars, int n, const char *when)
{
    for (int i = 0; i < n; i++) {
        void *want, *got = TAG(0xdead);
        int rc = cx_var_get(vars[i], &got);
        if (snap_find(s, vars[i], &want))
            EXPECT(rc == 0 && got == want, "%s: get(%s) = %s %p, expected %p", when,
                   cx_var_name(vars[i]), cx_err_name(rc), got, want);
        else
            EXPECT(rc == CX_ELOOKUP, "%s: get(%s) = %s %p, expected CX_ELOOKUP", when,
                   cx_var_name(vars[i]), cx_err_name(rc), got);
    }
}

/* ================================================================ fixtures */

/* Small maps: natural hashes. SD has a destroy callback. */
static cx_var *S0, *S1, *S2, *S3, *SD, *SD2;
/* Deep map: D[0..8] give a depth-8 map (7 bitmap levels and a collision
 * node of D0 and D1); DD (destroy) sits beside them at level 1. */
#define DEEP_H 0x2c6b5a93u
static cx_var *D[9], *DD;
static cx_var *DN_COLL;  /* a third variable in the collision node */
static cx_var *DN_L6;    /* a new slot in the level-6 node */
static cx_var *DN_L2;    /* a new slot in the level-2 node */
static cx_var *DN_DCOLL; /* destroy variable into the collision node */
/* Collision push-down: P0, P1 equal hashes (a collision node at level
 * 1), P2 differs only in bit 31: pushed down through 6 levels. */
#define PUSH_H 0x1357acefu
static cx_var *P0, *P1, *P2;

enum fixture { FX_EMPTY, FX_SMALL, FX_DEEP, FX_COLL };

static cx_var *fx_vars[24];
static int fx_nvars;

static void fixture_vars(enum fixture fx)
{
    fx_nvars = 0;
    switch (fx) {
    case FX_EMPTY:
    case FX_SMALL: {
        cx_var *l[] = {S0, S1, S2, S3, SD, SD2};
        for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++)
            fx_vars[fx_nvars++] = l[i];
        break;
    }
    case FX_DEEP:
        for (int i = 0; i < 9; i++)
            fx_vars[fx_nvars++] = D[i];
        fx_vars[fx_nvars++] = DD;
        fx_vars[fx_nvars++] = DN_COLL;
        fx_vars[fx_nvars++] = DN_L6;
        fx_vars[fx_nvars++] = DN_L2;
        fx_vars[fx_nvars++] = DN_DCOLL;
        break;
    case FX_COLL:
        fx_vars[fx_nvars++] = P0;
        fx_vars[fx_nvars++] = P1;
        fx_vars[fx_nvars++] = P2;
        break;
    }
}

static void must(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "oom: %s failed outside the walk: %s\n", what, cx_err_name(rc));
        exit(2);
    }
}

/* Binds the fixture's variables in the current context (disarmed). */
static void fixture_bind(enum fixture fx)
{
    switch (fx) {
    case FX_EMPTY:
        break;
    case FX_SMALL:
        must(cx_var_set(S0, TAG(10), NULL), "set");
        must(cx_var_set(S1, TAG(11), NULL), "set");
        must(cx_var_set(SD, TAG(12), NULL), "set");
        break;
    case FX_DEEP:
        for (int i = 0; i < 9; i++)
            must(cx_var_set(D[i], TAG(20 + i), NULL), "set");
        must(cx_var_set(DD, TAG(29), NULL), "set");
        break;
    case FX_COLL:
        must(cx_var_set(P0, TAG(40), NULL), "set");
        must(cx_var_set(P1, TAG(41), NULL), "set");
        break;
    }
}

static void make_vars(void)
{
    S0 = new_var("S0", false, false, 0);
    S1 = new_var("S1", false, false, 0);
    S2 = new_var("S2", false, false, 0);
    S3 = new_var("S3", false, false, 0);
    SD = new_var("SD", true, false, 0);
    SD2 = new_var("SD2", true, false, 0);
    static const uint32_t flip[9] = {0, 0, 1u << 30, 1u << 25, 1u << 20,
                                     1u << 15, 1u << 10, 1u << 5, 1u};
    char name[8];
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof(name), "D%d", i);
        D[i] = new_var(name, false, true, DEEP_H ^ flip[i]);
    }
    DD = new_var("DD", true, true, DEEP_H ^ (1u << 6));
    DN_COLL = new_var("DN_COLL", false, true, DEEP_H);
    DN_L6 = new_var("DN_L6", false, true, DEEP_H ^ (1u << 31));
    DN_L2 = new_var("DN_L2", false, true, DEEP_H ^ (1u << 12));
    DN_DCOLL = new_var("DN_DCOLL", true, true, DEEP_H);
    P0 = new_var("P0", false, true, PUSH_H);
    P1 = new_var("P1", false, true, PUSH_H);
    P2 = new_var("P2", false, true, PUSH_H ^ (1u << 31));
}

static void release_vars(void)
{
    cx_var *l[] = {S0, S1, S2, S3, SD, SD2, DD, DN_COLL, DN_L6, DN_L2, DN_DCOLL, P0, P1, P2};
    for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++)
        cx_var_release(l[i]);
    for (int i = 0; i < 9; i++)
        cx_var_release(D[i]);
}

/* Fills this thread's reset reserve (a set that returns a token tops it
 * up), so that the allocations of an iteration do not depend on what the
 * previous one used. */
static void top_up_reserve(void)
{
    cx_token *t = NULL;
    must(cx_var_set(S3, TAG(0x3e5), &t), "set");
    must(cx_var_reset(S3, t), "reset");
    cx_token_release(t);
}

/* ================================================================ map ops */

enum mop { M_SET, M_SET_TOK, M_RESET_RESTORE, M_RESET_REMOVE, M_WITH, M_WITH_COPY };

struct mapcase {
    const char *name;
    enum fixture fx;
    bool shared; /* a copy of the context shares its map during the op */
    enum mop op;
    cx_var **target;
    void *val;
};

static const struct mapcase *g_mc;
static int g_with_ran;

static void *map_body(void *unused)
{
    (void)unused;
    const struct mapcase *mc = g_mc;
    cx_var *target = *mc->target;
    fixture_vars(mc->fx);
    fixture_bind(mc->fx);
    cx_context *cur = cx_copy_context(); /* only to read the current map */
    if (mc->fx == FX_DEEP)
        EXPECT(cx__map_depth(cur->root) == CX__HAMT_MAX_DEPTH,
               "the deep fixture has depth %u", cx__map_depth(cur->root));
    if (mc->fx == FX_COLL)
        EXPECT(cx__map_depth(cur->root) == 2, "the collision fixture has depth %u",
               cx__map_depth(cur->root));
    struct snap orig; /* before the set a reset undoes */
    snap(cur, &orig);
    cx_token *prep = NULL;
    if (mc->op == M_RESET_RESTORE || mc->op == M_RESET_REMOVE)
        must(cx_var_set(target, TAG(0x77), &prep), "set");
    cx_context_release(cur);
    /* Every iteration starts with a full reserve (before the copy: the
     * top-up's own set would unshare the map). */
    top_up_reserve();
    cx_context *K = mc->shared ? cx_copy_context() : NULL;
    if (mc->shared && K == NULL) {
        fprintf(stderr, "oom: copy failed outside the walk\n");
        exit(2);
    }
    struct snap before, after, kbefore, kafter;
    cur = cx_copy_context();
    snap(cur, &before);
    cx_context_release(cur);
    if (K != NULL)
        snap(K, &kbefore);
    long d0 = atomic_load(&destroyed);

    cx_token *tok = NULL;
    cx_context *kept = NULL;
    int rc = CX_ENOMEM;
    arm();
    switch (mc->op) {
    case M_SET:
        rc = cx_var_set(target, mc->val, NULL);
        break;
    case M_SET_TOK:
        rc = cx_var_set(target, mc->val, &tok);
        break;
    case M_RESET_RESTORE:
    case M_RESET_REMOVE:
        rc = cx_var_reset(target, prep);
        break;
    case M_WITH:
    case M_WITH_COPY:
        CX_WITH(target, mc->val)
        {
            rc = 0;
            g_with_ran++;
            void *got = NULL;
            EXPECT(cx_var_get(target, &got) == 0 && got == mc->val, "CX_WITH: value inside");
            /* A copy inside the block makes the map shared again: the
             * reset at the end of the block must then build a new map. */
            if (mc->op == M_WITH_COPY)
                kept = cx_copy_context();
        }
        break;
    }
    bool inj = disarm();

    cur = cx_copy_context();
    snap(cur, &after);
    cx_context_release(cur);
    if (K != NULL)
        snap(K, &kafter);
    if (K != NULL)
        EXPECT(snap_eq(&kbefore, &kafter), "the copy sharing the map changed");

    if (mc->op == M_WITH || mc->op == M_WITH_COPY) {
        /* The block either did not run (set failed) or ran; either way the
         * binding must be as before once the block is left. */
        EXPECT(snap_eq(&before, &after), "bindings differ after the CX_WITH block "
               "(the reset at the block's end failed and left %s bound)", cx_var_name(target));
        expect_gets(&before, fx_vars, fx_nvars, "after CX_WITH");
        if (inj && rc != 0)
            EXPECT(atomic_load(&destroyed) == d0, "destroy ran for a value whose set failed");
    } else if (inj && rc != 0) {
        EXPECT(rc == CX_ENOMEM, "returned %s, expected CX_ENOMEM", cx_err_name(rc));
        EXPECT(snap_eq(&before, &after), "bindings changed by the failed call");
        expect_gets(&before, fx_vars, fx_nvars, "after the failure");
        EXPECT(atomic_load(&destroyed) == d0, "destroy ran %ld times (ownership must stay "
               "with the caller)", atomic_load(&destroyed) - d0);
        if (prep != NULL) {
            EXPECT(!cx_token_used(prep), "the failed reset marked the token used");
            /* the token still works */
            rc = cx_var_reset(target, prep);
            EXPECT(rc == 0, "reset after the failed one = %s", cx_err_name(rc));
        }
        EXPECT(tok == NULL, "a token was handed out by a failed set");
    } else {
        EXPECT(rc == 0, "returned %s", cx_err_name(rc));
        if (inj) {
            /* A failed allocation the call survived. Allowed by design only
             * where the library has a fallback: a set that returns a token
             * tops up the reset reserve as far as it can, and a reset takes
             * node blocks from that reserve. Anything else must fail. */
            EXPECT(mc->op == M_SET_TOK || mc->op == M_RESET_RESTORE ||
                       mc->op == M_RESET_REMOVE,
                   "a failed allocation was swallowed (returned OK)");
            g_absorbed++;
        }
        struct snap want;
        if (mc->op == M_SET || mc->op == M_SET_TOK) {
            snap_put(&before, target, mc->val, &want);
            EXPECT(tok != NULL || mc->op == M_SET, "no token");
        } else {
            want = orig;
            EXPECT(cx_token_used(prep), "the reset did not mark the token used");
        }
        EXPECT(snap_eq(&want, &after), "the bindings after the call are not what it should "
               "have made");
        expect_gets(&want, fx_vars, fx_nvars, "after the call");
    }
    cx_token_release(tok);
    cx_token_release(prep);
    cx_context_release(kept);
    cx_context_release(K);
    return NULL;
}

static void map_walk_body(void)
{
    cx_context *C = cx_context_new();
    if (C == NULL)
        exit(2);
    must(cx_context_run(C, map_body, NULL, NULL), "run");
    cx_context_release(C);
}

static const struct mapcase mapcases[] = {
    {"set: empty map", FX_EMPTY, false, M_SET, &S0, TAG(1)},
    {"set+token: empty map", FX_EMPTY, false, M_SET_TOK, &S0, TAG(1)},
    {"set destroy var: empty map", FX_EMPTY, false, M_SET_TOK, &SD2, TAG(2)},
    {"set: small map, new var", FX_SMALL, false, M_SET, &S2, TAG(3)},
    {"set: small map, new var, shared", FX_SMALL, true, M_SET, &S2, TAG(3)},
    {"set+token: small map, replace", FX_SMALL, false, M_SET_TOK, &S0, TAG(4)},
    {"set+token: small map, replace, shared", FX_SMALL, true, M_SET_TOK, &S0, TAG(4)},
    {"set destroy var: small map, replace, shared", FX_SMALL, true, M_SET_TOK, &SD, TAG(5)},
    {"set destroy var: small map, new, shared", FX_SMALL, true, M_SET, &SD2, TAG(5)},
    {"set: deep map, into collision node", FX_DEEP, false, M_SET, &DN_COLL, TAG(6)},
    {"set: deep map, into collision, shared", FX_DEEP, true, M_SET_TOK, &DN_COLL, TAG(6)},
    {"set: deep map, replace in collision, shared", FX_DEEP, true, M_SET_TOK, &D[0], TAG(7)},
    {"set: deep map, replace in collision", FX_DEEP, false, M_SET_TOK, &D[1], TAG(7)},
    {"set: deep map, level 6 slot, shared", FX_DEEP, true, M_SET, &DN_L6, TAG(8)},
    {"set: deep map, level 2 slot, shared", FX_DEEP, true, M_SET_TOK, &DN_L2, TAG(8)},
    {"set: deep map, replace level 1, shared", FX_DEEP, true, M_SET, &D[8], TAG(9)},
    {"set destroy var: deep collision, shared", FX_DEEP, true, M_SET_TOK, &DN_DCOLL, TAG(9)},
    {"set: collision push-down", FX_COLL, false, M_SET, &P2, TAG(10)},
    {"set: collision push-down, shared", FX_COLL, true, M_SET_TOK, &P2, TAG(10)},
    {"reset restore: small map", FX_SMALL, false, M_RESET_RESTORE, &S0, NULL},
    {"reset restore: small map, shared", FX_SMALL, true, M_RESET_RESTORE, &S0, NULL},
    {"reset restore destroy var: shared", FX_SMALL, true, M_RESET_RESTORE, &SD, NULL},
    {"reset remove: small map", FX_SMALL, false, M_RESET_REMOVE, &S2, NULL},
    {"reset remove: small map, shared", FX_SMALL, true, M_RESET_REMOVE, &S2, NULL},
    {"reset remove: empty map after, shared", FX_EMPTY, true, M_RESET_REMOVE, &S2, NULL},
    {"reset restore: deep collision, shared", FX_DEEP, true, M_RESET_RESTORE, &D[1], NULL},
    {"reset remove: deep collision, shared", FX_DEEP, true, M_RESET_REMOVE, &DN_COLL, NULL},
    {"reset remove: deep level 6, shared", FX_DEEP, true, M_RESET_REMOVE, &DN_L6, NULL},
    {"reset remove: deep level 2, shared", FX_DEEP, true, M_RESET_REMOVE, &DN_L2, NULL},
    {"reset remove: collision push-down, shared", FX_COLL, true, M_RESET_REMOVE, &P2, NULL},
    {"reset remove: collision, unshared", FX_DEEP, false, M_RESET_REMOVE, &DN_COLL, NULL},
    {"CX_WITH: small map", FX_SMALL, false, M_WITH, &S2, TAG(11)},
    {"CX_WITH: small map, shared", FX_SMALL, true, M_WITH, &S0, TAG(11)},
    {"CX_WITH + copy in the block: small map", FX_SMALL, false, M_WITH_COPY, &S0, TAG(12)},
    {"CX_WITH + copy in the block: deep map", FX_DEEP, false, M_WITH_COPY, &DN_COLL, TAG(12)},
};

static void walk_map_cases(void)
{
    for (size_t i = 0; i < sizeof(mapcases) / sizeof(mapcases[0]); i++) {
        g_mc = &mapcases[i];
        walk(mapcases[i].name, map_walk_body);
    }
}

/* ================================================================ threads */

static void *count_call(void *p)
{
    (*(int *)p)++;
    return TAG(1);
}

/* A thread's first set allocates its state, its base context, the binding,
 * the token and the map. */
static void *fresh_set_thread(void *unused)
{
    (void)unused;
    cx_token *tok = NULL;
    long d0 = atomic_load(&destroyed);
    arm();
    int rc = cx_var_set(SD, TAG(50), &tok);
    bool inj = disarm();
    void *got = NULL;
    int g = cx_var_get(SD, &got);
    if (inj && rc == 0) {
        /* the reset reserve's top-up failed; the set itself succeeded */
        g_absorbed++;
        EXPECT(g == 0 && got == TAG(50) && tok != NULL, "get after the set = %s",
               cx_err_name(g));
    } else if (inj) {
        EXPECT(rc == CX_ENOMEM, "returned %s", cx_err_name(rc));
        EXPECT(atomic_load(&destroyed) == d0, "destroy ran for a value whose set failed");
        EXPECT(g == CX_ELOOKUP, "get after the failed set = %s", cx_err_name(g));
        EXPECT(tok == NULL, "a token was handed out by a failed set");
        cx_context *c = cx_copy_context();
        EXPECT(c != NULL && cx_context_len(c) == 0, "the thread's context is not empty");
        cx_context_release(c);
    } else {
        EXPECT(rc == 0 && g == 0 && got == TAG(50), "set = %s, get = %s", cx_err_name(rc),
               cx_err_name(g));
    }
    cx_token_release(tok);
    return NULL;
}

static void spawn_join(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0 || pthread_join(t, NULL) != 0) {
        fprintf(stderr, "oom: pthread_create/join failed\n");
        exit(2);
    }
}

static void body_fresh_set(void) { spawn_join(fresh_set_thread, NULL); }

/* A thread's first run allocates its state. */
static void *fresh_run_thread(void *arg)
{
    int called = 0;
    arm();
    int rc = cx_context_run(arg, count_call, &called, NULL);
    bool inj = disarm();
    if (inj)
        EXPECT(rc == CX_ENOMEM && called == 0, "run = %s, fn called %d times",
               cx_err_name(rc), called);
    else
        EXPECT(rc == 0 && called == 1, "run = %s", cx_err_name(rc));
    return NULL;
}

static void body_fresh_run(void)
{
    cx_context *C = cx_context_new();
    if (C == NULL)
        exit(2);
    spawn_join(fresh_run_thread, C);
    int called = 0;
    int rc = cx_context_run(C, count_call, &called, NULL);
    EXPECT(rc == 0 && called == 1, "the context was left entered: run = %s", cx_err_name(rc));
    cx_context_release(C);
}

static void *fresh_copy_thread(void *unused)
{
    (void)unused;
    arm();
    cx_context *c = cx_copy_context();
    bool inj = disarm();
    EXPECT(inj ? c == NULL : c != NULL && cx_context_len(c) == 0, "copy_context = %p",
           (void *)c);
    cx_context_release(c);
    return NULL;
}

static void body_fresh_copy(void) { spawn_join(fresh_copy_thread, NULL); }

/* Runs fn inside a fresh context bound with the small fixture. */
struct small_call {
    void *(*fn)(void *);
    void *arg;
};

static void *small_tramp(void *p)
{
    struct small_call *c = p;
    fixture_vars(FX_SMALL);
    fixture_bind(FX_SMALL);
    return c->fn(c->arg);
}

static void in_small_context(void *(*fn)(void *), void *arg)
{
    cx_context *C = cx_context_new();
    if (C == NULL)
        exit(2);
    struct small_call call = {fn, arg};
    must(cx_context_run(C, small_tramp, &call, NULL), "run");
    cx_context_release(C);
}

/* The current context's bindings. */
static void snap_current(struct snap *s)
{
    cx_context *c = cx_copy_context();
    if (c == NULL)
        exit(2);
    snap(c, s);
    cx_context_release(c);
}

static void *copy_in_small(void *unused)
{
    (void)unused;
    struct snap before, after;
    snap_current(&before);
    arm();
    cx_context *c = cx_copy_context();
    bool inj = disarm();
    snap_current(&after);
    EXPECT(snap_eq(&before, &after), "the current context changed");
    if (inj) {
        EXPECT(c == NULL, "copy_context returned a context despite the failure");
    } else {
        struct snap cs;
        snap(c, &cs);
        EXPECT(snap_eq(&before, &cs), "the copy differs");
    }
    cx_context_release(c);
    return NULL;
}

static void body_copy_small(void) { in_small_context(copy_in_small, NULL); }

static void *bind_small(void *unused)
{
    (void)unused;
    fixture_bind(FX_SMALL);
    return NULL;
}

/* A context bound with the small fixture, not entered. */
static cx_context *small_context(void)
{
    cx_context *K = cx_context_new();
    if (K == NULL)
        exit(2);
    must(cx_context_run(K, bind_small, NULL, NULL), "run");
    return K;
}

static void body_context_copy(void)
{
    cx_context *K = small_context();
    struct snap before, after;
    snap(K, &before);
    arm();
    cx_context *c = cx_context_copy(K);
    bool inj = disarm();
    snap(K, &after);
    EXPECT(snap_eq(&before, &after), "the source context changed");
    EXPECT(inj ? c == NULL : c != NULL && cx_context_equal(c, K), "context_copy = %p",
           (void *)c);
    cx_context_release(c);
    cx_context_release(K);
}

static void body_context_new(void)
{
    arm();
    cx_context *c = cx_context_new();
    bool inj = disarm();
    EXPECT(inj ? c == NULL : c != NULL && cx_context_len(c) == 0, "context_new = %p", (void *)c);
    cx_context_release(c);
}

static void body_var_new(void)
{
    cx_var *v = TAG(0x1);
    cx_var_opts o = {.has_default = true, .default_value = TAG(3), .destroy = on_destroy};
    arm();
    int rc = cx_var_new(&v, "a rather long variable name, copied into the variable", &o);
    bool inj = disarm();
    if (inj) {
        EXPECT(rc == CX_ENOMEM, "returned %s", cx_err_name(rc));
        EXPECT(v == TAG(0x1), "*out written on failure");
    } else {
        void *got = NULL;
        EXPECT(rc == 0 && cx_var_get(v, &got) == 0 && got == TAG(3), "var_new = %s",
               cx_err_name(rc));
        cx_var_release(v);
    }
}

/* cx_thread_create from a context holding a destroy variable's value. */
struct seen {
    int ran;
    int rc_s0;
    void *s0;
    void *sd;
};

static void *seen_fn(void *p)
{
    struct seen *s = p;
    s->ran++;
    s->rc_s0 = cx_var_get(S0, &s->s0);
    s->sd = cx_var_get_or(SD, NULL);
    return NULL;
}

static void *thread_create_in_small(void *unused)
{
    (void)unused;
    struct seen s = {0};
    struct snap before, after;
    snap_current(&before);
    long d0 = atomic_load(&destroyed);
    pthread_t t;
    arm();
    int rc = cx_thread_create(&t, NULL, seen_fn, &s);
    bool inj = disarm();
    if (rc == 0)
        pthread_join(t, NULL);
    snap_current(&after);
    EXPECT(snap_eq(&before, &after), "the creator's context changed");
    if (inj) {
        EXPECT(rc == CX_ENOMEM, "returned %s", cx_err_name(rc));
        EXPECT(s.ran == 0, "fn ran although the create failed");
        EXPECT(atomic_load(&destroyed) == d0, "destroy ran: the copy's values were the "
               "creator's");
    } else {
        EXPECT(rc == 0 && s.ran == 1 && s.rc_s0 == 0 && s.s0 == TAG(10) && s.sd == TAG(12),
               "thread_create = %s; the thread saw S0=%p SD=%p", cx_err_name(rc), s.s0, s.sd);
    }
    return NULL;
}

static void body_thread_create(void) { in_small_context(thread_create_in_small, NULL); }

static void body_thread_create_in(void)
{
    cx_context *K = small_context();
    struct seen s = {0};
    struct snap before, after;
    snap(K, &before);
    long d0 = atomic_load(&destroyed);
    pthread_t t;
    arm();
    int rc = cx_thread_create_in(&t, NULL, K, seen_fn, &s);
    bool inj = disarm();
    if (rc == 0)
        pthread_join(t, NULL);
    snap(K, &after);
    EXPECT(snap_eq(&before, &after), "the context changed");
    if (inj) {
        EXPECT(rc == CX_ENOMEM, "returned %s", cx_err_name(rc));
        EXPECT(s.ran == 0, "fn ran although the create failed");
        EXPECT(atomic_load(&destroyed) == d0, "destroy ran");
    } else {
        EXPECT(rc == 0 && s.ran == 1 && s.s0 == TAG(10), "thread_create_in = %s",
               cx_err_name(rc));
    }
    int called = 0;
    rc = cx_context_run(K, count_call, &called, NULL);
    EXPECT(rc == 0 && called == 1, "the context was left entered: run = %s", cx_err_name(rc));
    cx_context_release(K);
}

/* ================================================================ pool */

static cx_pool *pool_or_die(void)
{
    cx_pool *p = NULL;
    cx_pool_opts o = {.threads = 2, .queue_size = 4};
    must(cx_pool_new(&p, &o), "cx_pool_new");
    return p;
}

static void body_pool_new(void)
{
    cx_pool *p = NULL;
    cx_pool_opts o = {.threads = 3, .queue_size = 8};
    arm();
    int rc = cx_pool_new(&p, &o);
    bool inj = disarm();
    if (inj)
        EXPECT(rc == CX_ENOMEM, "returned %s", cx_err_name(rc));
    else
        EXPECT(rc == 0 && p != NULL, "returned %s", cx_err_name(rc));
    if (rc == 0)
        cx_pool_free(p);
}

enum submit_kind { SK_SUBMIT, SK_TRY, SK_IN_CTX, SK_IN_NULL, SK_NO_FUTURE };
static enum submit_kind g_sk;

struct job {
    int ran;
    int rc_s0;
    void *s0;
};

static void *job_fn(void *p)
{
    struct job *j = p;
    j->ran++;
    j->rc_s0 = cx_var_get(S0, &j->s0);
    return TAG(0x600d);
}

static void *submit_in_small(void *unused)
{
    (void)unused;
    cx_pool *p = pool_or_die();
    cx_context *K = g_sk == SK_IN_CTX ? small_context() : NULL;
    struct job j = {0};
    struct snap before, after;
    snap_current(&before);
    long d0 = atomic_load(&destroyed);
    cx_future *fut = NULL;
    cx_future **fp = g_sk == SK_NO_FUTURE ? NULL : &fut;
    void *res = NULL;
    int rrc = -100;
    arm();
    int rc;
    switch (g_sk) {
    case SK_TRY:
        rc = cx_pool_try_submit(p, job_fn, &j, fp);
        break;
    case SK_IN_CTX:
        rc = cx_pool_submit_in(p, K, job_fn, &j, fp);
        break;
    case SK_IN_NULL:
        rc = cx_pool_submit_in(p, NULL, job_fn, &j, fp);
        break;
    default:
        rc = cx_pool_submit(p, job_fn, &j, fp);
        break;
    }
    bool inj = disarm();
    if (rc == 0 && fut != NULL) {
        rrc = cx_future_result(fut, &res);
        cx_future_release(fut);
    }
    cx_pool_free(p); /* waits for every queued job */
    snap_current(&after);
    EXPECT(snap_eq(&before, &after), "the submitter's context changed");
    if (inj) {
        EXPECT(rc == CX_ENOMEM, "returned %s", cx_err_name(rc));
        EXPECT(j.ran == 0, "the job ran although the submit failed");
        EXPECT(fut == NULL, "a future was handed out by a failed submit");
        EXPECT(atomic_load(&destroyed) == d0, "destroy ran");
    } else {
        EXPECT(rc == 0 && j.ran == 1, "submit = %s, ran %d", cx_err_name(rc), j.ran);
        if (fp != NULL)
            EXPECT(rrc == 0 && res == TAG(0x600d), "future_result = %s", cx_err_name(rrc));
        if (g_sk == SK_IN_NULL)
            EXPECT(j.rc_s0 == CX_ELOOKUP, "submit_in(NULL): the job saw S0");
        else
            EXPECT(j.rc_s0 == 0 && j.s0 == TAG(10), "the job saw S0 = %s %p",
                   cx_err_name(j.rc_s0), j.s0);
    }
    cx_context_release(K);
    return NULL;
}

static void body_submit(void) { in_small_context(submit_in_small, NULL); }

/* A job that sets a variable and submits a job of its own: the inner
 * allocations happen on a worker; a failure there completes the outer
 * job's future with CX_ENOMEM (its result). */
static cx_pool *g_pool;
static struct job g_inner;

static void *inner_fn(void *p)
{
    struct job *j = p;
    j->ran++;
    j->rc_s0 = cx_var_get(S3, &j->s0);
    return TAG(0x1);
}

static void *outer_fn(void *unused)
{
    (void)unused;
    int rc = cx_var_set(S3, TAG(77), NULL);
    if (rc != 0)
        return (void *)(intptr_t)rc;
    cx_future *f = NULL;
    rc = cx_pool_submit(g_pool, inner_fn, &g_inner, &f);
    if (rc != 0)
        return (void *)(intptr_t)rc;
    void *r = NULL;
    rc = cx_future_result(f, &r);
    cx_future_release(f);
    return (void *)(intptr_t)rc;
}

static void *nested_in_small(void *unused)
{
    (void)unused;
    g_pool = pool_or_die();
    memset(&g_inner, 0, sizeof(g_inner));
    cx_future *fut = NULL;
    void *res = TAG(0x5);
    int rrc = -100;
    arm();
    int rc = cx_pool_submit(g_pool, outer_fn, NULL, &fut);
    if (rc == 0)
        rrc = cx_future_result(fut, &res); /* nobody else allocates meanwhile */
    bool inj = disarm();
    cx_future_release(fut);
    cx_pool_free(g_pool);
    intptr_t jr = (intptr_t)res;
    if (inj) {
        EXPECT(rc == CX_ENOMEM || (rc == 0 && rrc == 0 && jr == CX_ENOMEM),
               "submit = %s, the outer job returned %s", cx_err_name(rc),
               cx_err_name((int)jr));
        EXPECT(g_inner.ran == 0, "the inner job ran although a failure was injected");
    } else {
        EXPECT(rc == 0 && rrc == 0 && jr == 0, "outer job = %s", cx_err_name((int)jr));
        EXPECT(g_inner.ran == 1 && g_inner.rc_s0 == 0 && g_inner.s0 == TAG(77),
               "the inner job did not see the outer job's value");
    }
    return NULL;
}

static void body_nested_submit(void) { in_small_context(nested_in_small, NULL); }

/* ================================================================ reserve */

/* The reset reserve's promise: after a set that returned a token, its
 * reset succeeds even when every allocation fails (src/tstate.c). Checked
 * on the deepest map (a path copy of 8 nodes), restoring and removing. */
static void *reserve_one_reset(void *unused)
{
    (void)unused;
    fixture_vars(FX_DEEP);
    fixture_bind(FX_DEEP);
    for (int remove = 0; remove < 2; remove++) {
        cx_var *v = remove ? DN_COLL : D[1];
        struct snap want;
        snap_current(&want);
        cx_token *tok = NULL;
        must(cx_var_set(v, TAG(0x91), &tok), "set");
        cx_context *K = cx_copy_context(); /* shared: the reset must copy */
        arm_from(1);
        int rc = cx_var_reset(v, tok);
        disarm();
        struct snap after;
        snap_current(&after);
        EXPECT(rc == 0 && snap_eq(&want, &after), "%s reset under exhaustion = %s",
               remove ? "removing" : "restoring", cx_err_name(rc));
        cx_token_release(tok);
        cx_context_release(K);
    }
    return NULL;
}

/* Two tokens, one copy, then exhaustion: the second reset finds the
 * reserve used by the first. The header allows CX_ENOMEM for an explicit
 * reset (state unchanged); the outcome is printed. */
static const char *g_second_reset;

static void *reserve_two_resets(void *unused)
{
    (void)unused;
    fixture_vars(FX_DEEP);
    fixture_bind(FX_DEEP);
    struct snap s0, s1, s2;
    snap_current(&s0);
    cx_token *t1 = NULL, *t2 = NULL;
    must(cx_var_set(D[1], TAG(0x92), &t1), "set");
    snap_current(&s1);
    must(cx_var_set(DN_COLL, TAG(0x93), &t2), "set");
    cx_context *K = cx_copy_context();
    arm_from(1);
    int rc2 = cx_var_reset(DN_COLL, t2);
    int rc1 = cx_var_reset(D[1], t1);
    disarm();
    snap_current(&s2);
    EXPECT(rc2 == 0, "first reset under exhaustion = %s", cx_err_name(rc2));
    if (rc1 == 0)
        EXPECT(snap_eq(&s0, &s2), "bindings after both resets");
    else
        EXPECT(rc1 == CX_ENOMEM && snap_eq(&s1, &s2) && !cx_token_used(t1),
               "second reset = %s and the state changed", cx_err_name(rc1));
    g_second_reset = cx_err_name(rc1);
    cx_token_release(t1);
    cx_token_release(t2);
    cx_context_release(K);
    return NULL;
}

/* Nested CX_WITH blocks and a copy inside, the allocator failing from
 * allocation k on: whatever fails, both bindings must be as before once
 * the blocks are left (CX_WITH cannot report a failed reset). */
static enum fixture g_nest_fx;
static bool g_nest_copy_outer; /* the outer block copies too, after the inner */
static bool g_nest_copies_succeed; /* the copies are made with injection paused */

static void *nested_with_body(void *unused)
{
    (void)unused;
    fixture_vars(g_nest_fx);
    fixture_bind(g_nest_fx);
    cx_var *a = g_nest_fx == FX_DEEP ? D[1] : S0;
    cx_var *b = g_nest_fx == FX_DEEP ? DN_COLL : S2;
    struct snap before, after;
    snap_current(&before);
    top_up_reserve();
    cx_context *kept = NULL, *kept2 = NULL;
    int ran = 0;
    arm_from(g_k);
    CX_WITH(a, TAG(0xa1))
    {
        CX_WITH(b, TAG(0xa2))
        {
            ran++;
            if (g_nest_copies_succeed)
                pause_arm();
            kept = cx_copy_context();
            if (g_nest_copies_succeed)
                resume_arm();
        }
        /* a second copy: the outer reset must copy the path again, after
         * the inner one used the reserve */
        if (g_nest_copy_outer) {
            if (g_nest_copies_succeed)
                pause_arm();
            kept2 = cx_copy_context();
            if (g_nest_copies_succeed)
                resume_arm();
        }
    }
    disarm();
    snap_current(&after);
    EXPECT(snap_eq(&before, &after), "bindings differ after the nested CX_WITH blocks "
           "(%s: %s, %s: %s; the inner block %s, its copy %s)",
           cx_var_name(a), cx_var_get_or(a, NULL) == TAG(0xa1) ? "left bound" : "ok",
           cx_var_name(b), cx_var_get_or(b, NULL) == TAG(0xa2) ? "left bound" : "ok",
           ran ? "ran" : "did not run", kept != NULL ? "was made" : "failed");
    expect_gets(&before, fx_vars, fx_nvars, "after the nested CX_WITH blocks");
    cx_context_release(kept);
    cx_context_release(kept2);
    return NULL;
}

static void body_nested_with(void)
{
    cx_context *C = cx_context_new();
    if (C == NULL)
        exit(2);
    must(cx_context_run(C, nested_with_body, NULL, NULL), "run");
    cx_context_release(C);
}

/* The documented bound: the reset ending a CX_WITH block cannot fail for
 * lack of memory with up to 8 nested blocks (cxvars.h). Eight blocks on
 * the depth-8 map, each copying the context after its inner block (the
 * copies succeed), every other allocation failing from k on. */
#define CHAIN 8
static cx_var **chain_vars(void)
{
    static cx_var *c[CHAIN];
    c[0] = D[1], c[1] = DN_COLL, c[2] = D[0], c[3] = D[2];
    c[4] = D[3], c[5] = DN_L6, c[6] = DN_L2, c[7] = D[8];
    return c;
}

static void nest_level(cx_var **vars, int l, cx_context **kept, int *ran)
{
    if (l == CHAIN)
        return;
    CX_WITH(vars[l], TAG(0xb0 + l))
    {
        (*ran)++;
        nest_level(vars, l + 1, kept, ran);
        pause_arm();
        kept[l] = cx_copy_context();
        resume_arm();
    }
}

static void *chain_body(void *unused)
{
    (void)unused;
    fixture_vars(FX_DEEP);
    fixture_bind(FX_DEEP);
    struct snap before, after;
    snap_current(&before);
    top_up_reserve();
    cx_context *kept[CHAIN] = {0};
    int ran = 0;
    arm_from(g_k);
    nest_level(chain_vars(), 0, kept, &ran);
    disarm();
    snap_current(&after);
    EXPECT(snap_eq(&before, &after), "bindings differ after %d nested CX_WITH blocks (%d ran)",
           CHAIN, ran);
    expect_gets(&before, fx_vars, fx_nvars, "after the nested CX_WITH blocks");
    for (int i = 0; i < CHAIN; i++)
        cx_context_release(kept[i]);
    return NULL;
}

static void body_chain(void)
{
    cx_context *C = cx_context_new();
    if (C == NULL)
        exit(2);
    must(cx_context_run(C, chain_body, NULL, NULL), "run");
    cx_context_release(C);
}

/* Runs body once on this thread, in a fresh context, with the leak check. */
static void once(const char *name, void *(*body)(void *))
{
    g_scen = name;
    g_k = 0;
    long live0 = atomic_load(&live_blocks) - own_reserve();
    cx_context *C = cx_context_new();
    if (C == NULL)
        exit(2);
    must(cx_context_run(C, body, NULL, NULL), "run");
    cx_context_release(C);
    long leaked = atomic_load(&live_blocks) - own_reserve() - live0;
    EXPECT(leaked == 0, "%ld blocks leaked", leaked);
}

/* ================================================================ no-alloc */

/* Calls documented (or expected) to allocate nothing, armed to fail the
 * first allocation: none may be attempted. */
static void *no_alloc_in_small(void *unused)
{
    (void)unused;
    cx_context *K = small_context();
    cx_context *E = cx_context_new();
    cx_token *tok = NULL, *used = NULL;
    must(cx_var_set(S2, TAG(5), &tok), "set");
    must(cx_var_set(S3, TAG(6), &used), "set");
    must(cx_var_reset(S3, used), "reset");
    cx_pool *p = pool_or_die();
    cx_future *fut = NULL;
    struct job j = {0};
    must(cx_pool_submit(p, job_fn, &j, &fut), "submit");
    must(cx_future_wait(fut, NULL), "wait");
    cx_context *self = cx_copy_context();
    if (K == NULL || E == NULL || self == NULL)
        exit(2);
    void *v;
    int called = 0;
    struct snap s;
    arm_at(1);
    int n = 0;
#define NOALLOC(expr) ((void)(expr), n++)
    NOALLOC(cx_var_get(S0, &v));
    NOALLOC(cx_var_get(S3, &v));
    NOALLOC(cx_var_get_or(S1, NULL));
    NOALLOC(cx_var_name(S0));
    NOALLOC(cx_context_get(K, S0, &v));
    NOALLOC(cx_context_get(self, S0, &v));
    NOALLOC(cx_context_contains(K, S2));
    NOALLOC(cx_context_len(K));
    NOALLOC(snap(K, &s));
    NOALLOC(cx_context_equal(K, self));
    NOALLOC(cx_context_equal(K, E));
    NOALLOC(cx_context_release(cx_context_retain(K)));
    NOALLOC(cx_context_run(E, count_call, &called, NULL));
    NOALLOC(cx_context_run(K, count_call, &called, NULL));
    NOALLOC(cx_token_var(tok));
    NOALLOC(cx_token_old_value(tok, &v));
    NOALLOC(cx_token_used(tok));
    NOALLOC(cx_var_reset(S3, used));  /* CX_EUSED */
    NOALLOC(cx_var_reset(S0, tok));   /* CX_EVAR */
    NOALLOC(cx_strerror(CX_ENOMEM));
    NOALLOC(cx_err_name(CX_EFORK));
    NOALLOC(cx_future_wait(fut, NULL));
    NOALLOC(cx_future_result(fut, &v));
    NOALLOC(cx_future_cancel(fut));
    NOALLOC(cx_future_release(fut));
    NOALLOC(cx_pool_shutdown(p, false));
    NOALLOC(cx_token_release(used));
    NOALLOC(cx_context_release(E));
#undef NOALLOC
    bool inj = disarm();
    long calls = atomic_load(&armed_calls);
    EXPECT(!inj && calls == 0, "%ld allocations attempted by calls that should make none",
           calls);
    no_alloc_checks += n;
    cx_pool_free(p);
    cx_token_release(tok);
    cx_context_release(self);
    cx_context_release(K);
    return NULL;
}

/* ================================================================ main */

struct scenario {
    const char *name;
    void (*body)(void);
};

static const struct scenario scenarios[] = {
    {"set: thread without state (first set)", body_fresh_set},
    {"run: thread without state (first run)", body_fresh_run},
    {"copy_context: thread without state", body_fresh_copy},
    {"copy_context: small map", body_copy_small},
    {"context_copy: from another context", body_context_copy},
    {"context_new", body_context_new},
    {"cx_var_new", body_var_new},
    {"cx_thread_create", body_thread_create},
    {"cx_thread_create_in", body_thread_create_in},
    {"cx_pool_new", body_pool_new},
};

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    cx_allocator a = {oom_malloc, oom_free};
    if (cx_set_allocator(&a) != 0)
        return 2;
    long live_start = atomic_load(&live_blocks);
    make_vars();
    /* this thread's state, once for all */
    cx_context *warm = cx_context_new();
    int called = 0;
    if (warm == NULL || cx_context_run(warm, count_call, &called, NULL) != 0)
        return 2;
    cx_context_release(warm);

    walk_map_cases();
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        walk(scenarios[i].name, scenarios[i].body);
    static const char *const sk_names[] = {"cx_pool_submit + future", "cx_pool_try_submit + future",
                                           "cx_pool_submit_in(ctx) + future",
                                           "cx_pool_submit_in(NULL) + future",
                                           "cx_pool_submit, no future"};
    for (int k = SK_SUBMIT; k <= SK_NO_FUTURE; k++) {
        g_sk = (enum submit_kind)k;
        walk(sk_names[k], body_submit);
    }
    walk("nested submit from a job (future result)", body_nested_submit);

    long v0 = violations;
    once("reset reserve: one reset, every allocation failing", reserve_one_reset);
    printf("oom: %-44s %s\n", g_scen, violations == v0 ? "ok" : "FAILED");
    once("reset reserve: two resets, every allocation failing", reserve_two_resets);
    printf("oom: %-44s second reset %s\n", g_scen, g_second_reset);
    g_nest_fx = FX_SMALL;
    walk("nested CX_WITH + copy, failing from k on: small", body_nested_with);
    g_nest_fx = FX_DEEP;
    walk("nested CX_WITH + copy, failing from k on: deep", body_nested_with);
    g_nest_copy_outer = true;
    g_nest_fx = FX_SMALL;
    walk("nested CX_WITH, copies in both: small", body_nested_with);
    g_nest_fx = FX_DEEP;
    walk("nested CX_WITH, copies in both: deep", body_nested_with);
    /* Intermittent exhaustion: the copies succeed, every other allocation
     * fails from k on. The outer reset then needs a second path copy
     * after the inner one took blocks from the reserve. */
    g_nest_copies_succeed = true;
    g_nest_fx = FX_SMALL;
    walk("nested CX_WITH, copies succeed: small", body_nested_with);
    g_nest_fx = FX_DEEP;
    walk("nested CX_WITH, copies succeed: deep", body_nested_with);
    walk("8 nested CX_WITH, copies succeed: deep", body_chain);

    g_scen = "allocation-free calls";
    g_k = 1;
    in_small_context(no_alloc_in_small, NULL);
    printf("oom: %-44s %3ld calls made no allocation\n", g_scen, no_alloc_checks);

    release_vars();
    g_scen = "end";
    /* what remains is this thread's state (freed at exit) */
    EXPECT(atomic_load(&live_blocks) - own_reserve() - live_start == 1,
           "%ld blocks live at the end", atomic_load(&live_blocks) - own_reserve() - live_start);
    printf("oom: %ld failures absorbed by the reset reserve (calls that succeeded anyway)\n",
           g_absorbed);
    printf("oom: %ld failure points walked, %ld violations\n", total_points, violations);
    return violations == 0 ? 0 : 1;
}
