/* bench_icount.c - instructions per operation, counted by callgrind
 * (`make bench-icount`), for the SPEC section 5.5 instruction targets.
 *
 * Usage: bench_icount OP N
 * Sets up what OP needs (variables bound, a warm-up of WARMUP operations so
 * that first-use allocations are over), then calls measured(OP, N), which
 * does N operations. bench.mk runs it under
 *     valgrind --tool=callgrind --toggle-collect=measured
 * once with N = N1 and once with N = N2: the instructions counted inside
 * measured() differ by exactly (N2 - N1) operations, so everything that is
 * not the operation itself (setup, the call of measured, the first
 * iteration's cold paths) cancels out. Loop overhead (an increment, a
 * compare and a branch: 3 instructions) is included in every figure, the
 * anchors as well.
 *
 * Under valgrind the library announces every handoff to the race
 * detectors (annotate.h), which it never does natively. The program is
 * linked statically against libcxvars.a so that it can switch the
 * announcements off (cx__detector, a hidden symbol of the library: visible
 * within one static link) and count what a native run executes. The calls
 * thus go straight to the library's functions instead of through the PLT
 * (one jump instruction per call less than a program using the shared
 * library).
 *
 * Operations:
 *   malloc_free    malloc(48) + free: the SPEC's anchor
 *   atomic_pair    a locked increment and decrement of one word: the anchor
 *                  of run (what a context claim and release cost at least)
 *   set_reset      cx_var_set(var, v, &tok) + cx_var_reset + token release,
 *                  10 variables bound in the thread's own context, var each
 *                  of them in turn (bench_core's set_reset_ns@10). In turn,
 *                  not one: a variable's depth in the map depends on where
 *                  malloc put it (its hash is its address's), and with 10
 *                  keys over 32 root slots two or three usually share one
 *                  and sit a level deeper (about 68 instructions more for
 *                  the two walks); one variable's figure would be the luck
 *                  of the heap's layout, the average over the 10 is not.
 *   set_reset_new  the same for a variable not yet bound (insert + delete)
 *   with           CX_WITH(var, v) {} on a bound variable
 *   copy_release@N cx_copy_context + cx_context_release with N variables
 *                  bound (N = 1, 100000)
 *   run_noop       cx_context_run of a no-op in an empty context
 *   get_hit        cx_var_get of a bound variable (the inline cache hit)
 *   get_miss       cx_var_get cycling over 1000 bound variables of 100000
 *                  (the per-thread cache misses: map walks)
 *   bind_invoke    cx_bind of a no-op (default mode) + cx_callback_invoke
 *                  of it, in one thread, 10 variables bound: what making a
 *                  foreign executor's item context-aware costs in
 *                  instructions (bench_bind measures it across threads)
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxvars.h"

/* Internal to the library (annotate.h); reachable in a static link. */
extern unsigned char cx__detector;

#define SINK(x) __asm__ volatile("" : : "r"(x) : "memory")
#define WARMUP 2000
#define MAXV 100000

static cx_var *vars[MAXV];
static cx_var *var_unset;
static cx_context *ctx_empty;
static unsigned nvars;
static unsigned shared_word;

static void *noop(void *arg) { return arg; }

static void fail(const char *what)
{
    fprintf(stderr, "bench_icount: %s failed\n", what);
    exit(2);
}

__attribute__((noinline)) static void op_malloc_free(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        void *p = malloc(48);
        SINK(p);
        free(p);
    }
}

__attribute__((noinline)) static void op_atomic_pair(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        __atomic_fetch_add(&shared_word, 1, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&shared_word, 1, __ATOMIC_RELEASE);
    }
}

__attribute__((noinline)) static int op_set_reset(cx_var *v, unsigned long n)
{
    int rc = 0;
    for (unsigned long i = 0; i < n; i++) {
        cx_token *tok;
        rc |= cx_var_set(v, (void *)(uintptr_t)(i | 1), &tok);
        rc |= cx_var_reset(v, tok);
        cx_token_release(tok);
    }
    return rc;
}

/* op_set_reset over every bound variable in turn (see set_reset). */
__attribute__((noinline)) static int op_set_reset_all(unsigned long n)
{
    int rc = 0;
    for (unsigned long i = 0; i < n; i += nvars) /* n: a multiple of nvars */
        for (unsigned k = 0; k < nvars; k++) {
            cx_token *tok;
            rc |= cx_var_set(vars[k], (void *)(uintptr_t)(i | 1), &tok);
            rc |= cx_var_reset(vars[k], tok);
            cx_token_release(tok);
        }
    return rc;
}

__attribute__((noinline)) static void op_with(cx_var *v, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        CX_WITH(v, (void *)(uintptr_t)(i | 1)) { SINK(i); }
    }
}

__attribute__((noinline)) static void op_copy_release(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        cx_context *c = cx_copy_context();
        SINK(c);
        cx_context_release(c);
    }
}

__attribute__((noinline)) static int op_run_noop(unsigned long n)
{
    int rc = 0;
    for (unsigned long i = 0; i < n; i++)
        rc |= cx_context_run(ctx_empty, noop, NULL, NULL);
    return rc;
}

__attribute__((noinline)) static int op_get_hit(const cx_var *v, unsigned long n)
{
    int rc = 0;
    for (unsigned long i = 0; i < n; i++) {
        void *out;
        rc |= cx_var_get(v, &out);
        SINK(out);
    }
    return rc;
}

__attribute__((noinline)) static int op_get_miss(unsigned long n)
{
    int rc = 0;
    unsigned j = 0, step = nvars / 1000;
    for (unsigned long i = 0; i < n; i++) {
        void *out;
        rc |= cx_var_get(vars[j], &out);
        SINK(out);
        j += step;
        if (j >= nvars)
            j = 0;
    }
    return rc;
}

__attribute__((noinline)) static int op_bind_invoke(unsigned long n)
{
    int rc = 0;
    for (unsigned long i = 0; i < n; i++) {
        cx_callback *cb;
        rc |= cx_bind(&cb, noop, NULL, 0);
        cx_callback_invoke(cb);
    }
    return rc;
}

/* The only function callgrind counts in (--toggle-collect=measured). */
__attribute__((noinline)) void measured(const char *op, unsigned long n);
void measured(const char *op, unsigned long n)
{
    int rc = 0;
    if (strcmp(op, "malloc_free") == 0)
        op_malloc_free(n);
    else if (strcmp(op, "atomic_pair") == 0)
        op_atomic_pair(n);
    else if (strcmp(op, "set_reset") == 0)
        rc = op_set_reset_all(n);
    else if (strcmp(op, "set_reset_new") == 0)
        rc = op_set_reset(var_unset, n);
    else if (strcmp(op, "with") == 0)
        op_with(vars[5], n);
    else if (strncmp(op, "copy_release@", 13) == 0)
        op_copy_release(n);
    else if (strcmp(op, "run_noop") == 0)
        rc = op_run_noop(n);
    else if (strcmp(op, "get_hit") == 0)
        rc = op_get_hit(vars[5], n);
    else if (strcmp(op, "get_miss") == 0)
        rc = op_get_miss(n);
    else if (strcmp(op, "bind_invoke") == 0)
        rc = op_bind_invoke(n);
    else
        fail(op);
    if (rc != 0)
        fail("an operation");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_icount OP N\n");
        return 2;
    }
    const char *op = argv[1];
    unsigned long n = strtoul(argv[2], NULL, 10);
    cx__detector = 0; /* count what a native run executes */

    nvars = 10;
    if (strncmp(op, "copy_release@", 13) == 0)
        nvars = (unsigned)strtoul(op + 13, NULL, 10);
    else if (strcmp(op, "get_miss") == 0)
        nvars = MAXV;
    if (nvars < 1 || nvars > MAXV)
        fail("the variable count");
    for (unsigned i = 0; i < nvars; i++) {
        if (cx_var_new(&vars[i], "icount", NULL) != 0)
            fail("cx_var_new");
        if (cx_var_set(vars[i], (void *)(uintptr_t)(i + 1), NULL) != 0)
            fail("cx_var_set");
    }
    if (cx_var_new(&var_unset, "icount.unset", NULL) != 0)
        fail("cx_var_new");
    ctx_empty = cx_context_new();
    if (ctx_empty == NULL)
        fail("cx_context_new");

    measured(op, WARMUP); /* not counted: callgrind counts the runs' difference */
    measured(op, n);

    cx_context_release(ctx_empty);
    for (unsigned i = 0; i < nvars; i++)
        cx_var_release(vars[i]);
    cx_var_release(var_unset);
    return 0;
}
