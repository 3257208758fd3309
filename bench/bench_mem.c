/* bench_mem.c - memory figures through the allocator hook.
 *
 * A counting allocator is installed with cx_set_allocator() before any other
 * cx_* call (which is why this is a program of its own). It counts the
 * bytes the library asks for (requested sizes, not malloc's own overhead)
 * and the bytes still live. Single-threaded: plain counters.
 *
 * Figures (bytes, averages over many variables where it applies):
 *   copy_context_bytes      allocated by one cx_copy_context(), max over N
 *   set_bytes@N             allocated by one cx_var_set(existing var, v, NULL)
 *                           in a context holding N variables, map unshared
 *                           (the owner updates it in place)
 *   set_shared_bytes@N      the same while a copy of the context is alive,
 *                           so the set path-copies (what every set pays
 *                           after a copy_context or a pool submit)
 *   token_bytes             extra bytes when the set also returns a token
 *   map_bytes_per_var@N     live bytes of a context's map per variable
 *                           (the variables themselves not counted)
 *   thread_state_bytes      what stays live once every object is released:
 *                           the calling thread's state (freed at its exit)
 */
#include "bench.h"
#include "cxvars.h"

#define MAX_N 100000
static const unsigned kN[] = {1, 10, 100, 1000, 10000, 100000};
#define NN (sizeof(kN) / sizeof(kN[0]))

typedef union {
    size_t size;
    max_align_t align;
} hdr;

static uint64_t allocated, live;

static void *count_malloc(size_t n)
{
    hdr *h = malloc(sizeof(hdr) + n);
    if (h == NULL)
        return NULL;
    h->size = n;
    allocated += n;
    live += n;
    return h + 1;
}

static void count_free(void *p)
{
    if (p == NULL)
        return;
    hdr *h = (hdr *)p - 1;
    live -= h->size;
    free(h);
}

static cx_var *vars[MAX_N + 1];

struct job {
    unsigned n;
    double set_bytes, shared_bytes, token_bytes, copy_bytes, map_bytes;
};

static void *measure(void *arg)
{
    struct job *j = arg;
    unsigned n = j->n;

    uint64_t live0 = live;
    for (unsigned i = 0; i < n; i++)
        BENCH_CHECK(cx_var_set(vars[i], (void *)(uintptr_t)(i + 1), NULL) == 0);
    j->map_bytes = (double)(live - live0) / n;

    unsigned m = n < 1000 ? n : 1000;
    uint64_t sum = 0, sum_shared = 0, sum_tok = 0;
    for (unsigned i = 0; i < m; i++) {
        cx_var *v = vars[(uint64_t)i * n / m];
        uint64_t a0 = allocated;
        BENCH_CHECK(cx_var_set(v, (void *)(uintptr_t)(i + 7), NULL) == 0);
        sum += allocated - a0;

        cx_context *c = cx_copy_context();
        BENCH_CHECK(c != NULL);
        a0 = allocated;
        BENCH_CHECK(cx_var_set(v, (void *)(uintptr_t)(i + 8), NULL) == 0);
        sum_shared += allocated - a0;
        cx_context_release(c);

        cx_token *tok;
        a0 = allocated;
        BENCH_CHECK(cx_var_set(v, (void *)(uintptr_t)(i + 9), &tok) == 0);
        sum_tok += allocated - a0;
        BENCH_CHECK(cx_var_reset(v, tok) == 0);
        cx_token_release(tok);
    }
    j->set_bytes = (double)sum / m;
    j->shared_bytes = (double)sum_shared / m;
    j->token_bytes = (double)sum_tok / m - j->set_bytes;

    uint64_t a0 = allocated;
    cx_context *c = cx_copy_context();
    BENCH_CHECK(c != NULL);
    j->copy_bytes = (double)(allocated - a0);
    cx_context_release(c);
    return NULL;
}

int main(void)
{
    cx_allocator a = {count_malloc, count_free};
    BENCH_CHECK(cx_set_allocator(&a) == 0); /* before any other call */
    for (unsigned i = 0; i < MAX_N; i++)
        BENCH_CHECK(cx_var_new(&vars[i], "bench.var", NULL) == 0);

    struct job jobs[NN];
    double copy_max = 0;
    for (unsigned k = 0; k < NN; k++) {
        jobs[k] = (struct job){.n = kN[k]};
        cx_context *ctx = cx_context_new();
        BENCH_CHECK(ctx != NULL);
        BENCH_CHECK(cx_context_run(ctx, measure, &jobs[k], NULL) == 0);
        cx_context_release(ctx);
        if (jobs[k].copy_bytes > copy_max)
            copy_max = jobs[k].copy_bytes;
    }
    char nm[48];
    bench_print("copy_context_bytes", copy_max, "B");
    for (unsigned k = 0; k < NN; k++) {
        snprintf(nm, sizeof(nm), "set_bytes@%u", kN[k]);
        bench_print(nm, jobs[k].set_bytes, "B");
    }
    for (unsigned k = 0; k < NN; k++) {
        snprintf(nm, sizeof(nm), "set_shared_bytes@%u", kN[k]);
        bench_print(nm, jobs[k].shared_bytes, "B");
    }
    bench_print("token_bytes", jobs[1].token_bytes, "B");
    for (unsigned k = 0; k < NN; k++) {
        snprintf(nm, sizeof(nm), "map_bytes_per_var@%u", kN[k]);
        bench_print(nm, jobs[k].map_bytes, "B");
    }

    for (unsigned i = 0; i < MAX_N; i++)
        cx_var_release(vars[i]);
    /* Everything is released now but this thread's own state (the lookup
     * cache, freed at thread exit). */
    bench_print("thread_state_bytes", (double)live, "B");
    return 0;
}
