/* fuzz_ops.c - differential fuzzer for the cxvars core.
 *
 * The input bytes decode into a sequence of operations over a few variables,
 * a few contexts and a small token table, all on one thread. Every call is
 * made twice: once on the library and once on a reference model that is
 * obviously correct because it is naive (a context is a plain array of
 * (variable, value|absent) copied on write; a token records variable,
 * context, old value and a used flag). Every result, error code and value
 * the library returns is compared with the model; any divergence prints a
 * message and calls abort(), which libFuzzer reports as a crash.
 *
 * Besides results the model also predicts ownership: each set of a variable
 * with a destroy callback hands over a fresh value id; after every operation
 * the ids that nothing live (a live context binding, or a live token's old
 * value) still holds must have been destroyed exactly once, and the others
 * not at all (SPEC §1 Values: "promptly, before the call that dropped that
 * last holder returns"). At the end of each input everything is released;
 * the destroy count must equal the successful sets of destroy variables and
 * the library's live allocation count (through cx_set_allocator) must be
 * back where it started.
 *
 * Variables are created with forced hashes (cx__var_set_hash, test-only) in
 * some inputs, so maps reach depth 8 and collision nodes with 5 variables.
 *
 * The byte layout of an input is described in fuzz_ops.h. A run or a
 * CX_WITH block takes the next n operations as its body.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxvars.h"
#include "context.h" /* struct cx_context (root), cx__map_depth, cx__map_check */
#include "var.h"     /* cx__var_set_hash */
#include "fuzz_ops.h"

#define NVSLOT 5     /* variable slots */
#define MAXVOBJ 32   /* variable objects per input (slots + renewals) */
#define NCSLOT 3     /* context handle slots */
#define MAXCOBJ 96   /* context objects per input */
#define NTSLOT 4     /* token slots */
#define MAXTOK 256   /* token objects per input */
#define MAXIDS 1024  /* destroy-variable value ids per input */
#define MAX_OPS 384  /* operations per input */
#define MAX_NEST 8   /* nested runs / CX_WITH blocks */
#define ID_BASE ((uintptr_t)0x100000)
#define RUN_SENTINEL ((void *)(uintptr_t)0x5e57)

/* ------------------------------------------------------------- failures */

static void diverge(int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_ops: DIVERGENCE (fuzz_ops.c:%d): ", line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
#define CHECK(cond, ...)                        \
    do {                                        \
        if (!(cond))                            \
            diverge(__LINE__, __VA_ARGS__);     \
    } while (0)

/* ------------------------------------------------------------ allocator */

static long live_blocks; /* single-threaded: no atomics needed */
static long alloc_calls;

static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL) {
        live_blocks++;
        alloc_calls++;
    }
    return p;
}

static void count_free(void *p)
{
    if (p != NULL)
        live_blocks--;
    free(p);
}

/* Blocks this thread keeps in its reset reserve (src/tstate.c; filled by
 * sets that return a token, freed with the thread): not leaks. */
static long own_reserve(void)
{
    const cx__tstate *st = cx__tstate_cur();
    return st != NULL ? (long)st->nreserve : 0;
}

/* ---------------------------------------------------------------- model */

struct mvar {
    cx_var *v;
    bool has_def;
    void *def;
    bool destroy;
    bool creator_released;
    char name[32];
};

struct mctx {
    cx_context *c;
    bool entered;
    bool present[MAXVOBJ];
    void *val[MAXVOBJ];
};

struct mtok {
    cx_token *t;
    bool alive;
    int var;  /* mvar index */
    int ctx;  /* mctx index */
    bool old_present;
    void *old;
    bool used;
};

static struct state {
    const uint8_t *data;
    size_t size, pos;
    int ops;
    int profile;

    struct mvar v[MAXVOBJ];
    int nv;
    int vslot[NVSLOT];

    struct mctx c[MAXCOBJ];
    int nc;
    int cslot[NCSLOT];
    int top; /* the context the whole input runs in */

    struct mtok t[MAXTOK];
    int nt;
    int tslot[NTSLOT];

    int stack[MAX_NEST + 2]; /* entered contexts, innermost last */
    int depth;
    int nest;        /* runs + CX_WITH blocks open */
    int hidden[MAX_NEST + 2]; /* tokens held by open CX_WITH blocks */
    int nhidden;

    unsigned char destroyed[MAXIDS];
    bool issued[MAXIDS];
    int nid;
    long destroy_calls;
    long destroy_sets;
} S;

static uint8_t next_byte(void)
{
    if (S.pos >= S.size)
        return 0;
    return S.data[S.pos++];
}

static bool input_left(void) { return S.pos < S.size && S.ops < MAX_OPS; }

static int cur_ctx(void) { return S.stack[S.depth - 1]; }

static void *id_ptr(int id) { return (void *)(ID_BASE + (uintptr_t)id * 16); }

/* Small plain values, NULL included, so equal values and NULL bindings
 * occur often. */
static void *plain_value(uint8_t b) { return (void *)(uintptr_t)(b % 7); }

static void on_destroy(void *value)
{
    uintptr_t u = (uintptr_t)value;
    CHECK(u >= ID_BASE && (u - ID_BASE) % 16 == 0, "destroy(%p): not a value the fuzzer set "
          "(a default or a plain value was destroyed)", value);
    uintptr_t id = (u - ID_BASE) / 16;
    CHECK(id < (uintptr_t)S.nid && S.issued[id], "destroy(%p): id %lu never handed over", value,
          (unsigned long)id);
    S.destroyed[id]++;
    CHECK(S.destroyed[id] == 1, "value id %lu destroyed twice", (unsigned long)id);
    S.destroy_calls++;
}

/* Slot properties: 0 plain, 1 plain + default, 2 destroy, 3 destroy +
 * default, 4 plain + NULL default. */
static uint32_t profile_hash(int k)
{
    const uint32_t H = 0x2c6b5a93u;
    switch (S.profile) {
    case 1: /* all equal: one collision node */
        return H;
    case 2: /* equal but the top 2 bits: depth 7 bitmap, collisions at 8 */
        return H ^ ((uint32_t)(k & 3) << 30);
    case 3: { /* each input bit flips the low bit of one 5-bit chunk */
        uint8_t b = next_byte();
        uint32_t h = H;
        for (int i = 0; i < 7; i++)
            if (b & (1u << i))
                h ^= 1u << (5 * i);
        if (b & 0x80)
            h ^= 1u << 31;
        return h;
    }
    default:
        return 0; /* keep the address hash */
    }
}

static int new_var(int slot)
{
    if (S.nv >= MAXVOBJ)
        return -1;
    int k = S.nv;
    struct mvar *m = &S.v[k];
    memset(m, 0, sizeof(*m));
    m->has_def = slot == 1 || slot == 3 || slot == 4;
    m->def = slot == 1 ? (void *)(uintptr_t)0x77 : slot == 3 ? (void *)(uintptr_t)0x99 : NULL;
    m->destroy = slot == 2 || slot == 3;
    snprintf(m->name, sizeof(m->name), "v%d.%d", slot, k);
    cx_var_opts o = {.has_default = m->has_def, .default_value = m->def,
                     .destroy = m->destroy ? on_destroy : NULL};
    int rc = cx_var_new(&m->v, m->name, (slot == 0 && k % 2 == 0) ? NULL : &o);
    CHECK(rc == 0 && m->v != NULL, "cx_var_new: %s", cx_err_name(rc));
    uint32_t h = profile_hash(k);
    if (S.profile != 0)
        cx__var_set_hash(m->v, h);
    CHECK(strcmp(cx_var_name(m->v), m->name) == 0, "cx_var_name");
    S.nv++;
    return k;
}

static int new_mctx(cx_context *c)
{
    CHECK(c != NULL, "context creation returned NULL");
    int k = S.nc++;
    memset(&S.c[k], 0, sizeof(S.c[k]));
    S.c[k].c = c;
    return k;
}

/* ------------------------------------------------------------ liveness */

static bool ctx_live[MAXCOBJ];
static bool var_live[MAXVOBJ];

static void compute_liveness(void)
{
    memset(ctx_live, 0, sizeof(ctx_live));
    memset(var_live, 0, sizeof(var_live));
    for (int i = 0; i < NCSLOT; i++)
        if (S.cslot[i] >= 0)
            ctx_live[S.cslot[i]] = true;
    for (int i = 0; i < S.depth; i++)
        ctx_live[S.stack[i]] = true;
    for (int j = 0; j < S.nv; j++)
        var_live[j] = !S.v[j].creator_released;
    for (int i = 0; i < S.nc; i++)
        if (ctx_live[i])
            for (int j = 0; j < S.nv; j++)
                if (S.c[i].present[j])
                    var_live[j] = true;
    for (int i = 0; i < S.nt; i++)
        if (S.t[i].alive)
            var_live[S.t[i].var] = true;
}

/* Which mvar is the live variable at this address (-1: none). */
static int mvar_of(const cx_var *v)
{
    for (int j = 0; j < S.nv; j++)
        if (var_live[j] && S.v[j].v == v)
            return j;
    return -1;
}

/* --------------------------------------------------------------- checks */

struct fe_state {
    int ctx;       /* mctx being walked */
    int stop_after;
    int calls;
    bool seen[MAXVOBJ];
};

static int fe_cb(cx_var *var, void *value, void *arg)
{
    struct fe_state *f = arg;
    int j = mvar_of(var);
    CHECK(j >= 0, "foreach yielded an unknown variable %p", (void *)var);
    CHECK(strcmp(cx_var_name(var), S.v[j].name) == 0, "foreach: variable name");
    CHECK(!f->seen[j], "foreach yielded %s twice", S.v[j].name);
    f->seen[j] = true;
    CHECK(S.c[f->ctx].present[j], "foreach yielded %s which the model lacks", S.v[j].name);
    CHECK(S.c[f->ctx].val[j] == value, "foreach: %s = %p, model %p", S.v[j].name, value,
          S.c[f->ctx].val[j]);
    f->calls++;
    return f->calls > f->stop_after ? 7 : 0;
}

static size_t model_len(int ci)
{
    size_t n = 0;
    for (int j = 0; j < S.nv; j++)
        n += S.c[ci].present[j];
    return n;
}

static void check_foreach(int ci, int stop_after)
{
    struct fe_state f = {.ctx = ci, .stop_after = stop_after};
    int rc = cx_context_foreach(S.c[ci].c, fe_cb, &f);
    int len = (int)model_len(ci);
    if (stop_after < len) {
        CHECK(rc == 7, "foreach stopping after %d of %d returned %d", stop_after + 1, len, rc);
        CHECK(f.calls == stop_after + 1, "foreach made %d calls, expected %d", f.calls,
              stop_after + 1);
    } else {
        CHECK(rc == 0, "foreach returned %d", rc);
        CHECK(f.calls == len, "foreach made %d calls, model has %d bindings", f.calls, len);
    }
}

static void check_ctx(int ci)
{
    const struct mctx *m = &S.c[ci];
    CHECK(cx_context_len(m->c) == model_len(ci), "len %zu, model %zu", cx_context_len(m->c),
          model_len(ci));
    for (int j = 0; j < S.nv; j++) {
        if (!var_live[j])
            continue;
        void *out = (void *)(uintptr_t)0xdead;
        int rc = cx_context_get(m->c, S.v[j].v, &out);
        if (m->present[j]) {
            CHECK(rc == 0 && out == m->val[j], "context_get(%s) = %s %p, model %p", S.v[j].name,
                  cx_err_name(rc), out, m->val[j]);
        } else {
            CHECK(rc == CX_ELOOKUP, "context_get(%s) = %s, model: absent", S.v[j].name,
                  cx_err_name(rc));
            CHECK(out == (void *)(uintptr_t)0xdead, "context_get wrote *out on ELOOKUP");
        }
        CHECK(cx_context_contains(m->c, S.v[j].v) == m->present[j], "contains(%s)",
              S.v[j].name);
    }
    check_foreach(ci, 1 << 20);
    CHECK(cx__map_depth(m->c->root) <= CX__HAMT_MAX_DEPTH, "map depth %u > %d",
          cx__map_depth(m->c->root), CX__HAMT_MAX_DEPTH);
    /* Every structural invariant of the map (hamt.c), after every operation. */
    const char *why = cx__map_check(m->c->root);
    CHECK(why == NULL, "map invariant broken: %s", why);
}

/* get in the current context: binding > default > ELOOKUP. */
static void check_current(void)
{
    const struct mctx *m = &S.c[cur_ctx()];
    for (int j = 0; j < S.nv; j++) {
        if (!var_live[j])
            continue;
        const struct mvar *mv = &S.v[j];
        void *out = (void *)(uintptr_t)0xbeef;
        int rc = cx_var_get(mv->v, &out);
        if (m->present[j])
            CHECK(rc == 0 && out == m->val[j], "get(%s) = %s %p, model %p", mv->name,
                  cx_err_name(rc), out, m->val[j]);
        else if (mv->has_def)
            CHECK(rc == 0 && out == mv->def, "get(%s) = %s %p, model default %p", mv->name,
                  cx_err_name(rc), out, mv->def);
        else
            CHECK(rc == CX_ELOOKUP && out == (void *)(uintptr_t)0xbeef,
                  "get(%s) = %s, model ELOOKUP", mv->name, cx_err_name(rc));
        void *fb = (void *)(uintptr_t)0xfb;
        void *g = cx_var_get_or(mv->v, fb);
        CHECK(g == (m->present[j] ? m->val[j] : fb), "get_or(%s) = %p", mv->name, g);
    }
}

/* Destroyed exactly the values nothing live holds any more. */
static void check_values(void)
{
    static bool held[MAXIDS];
    memset(held, 0, sizeof(bool) * (size_t)S.nid);
    for (int i = 0; i < S.nc; i++) {
        if (!ctx_live[i])
            continue;
        for (int j = 0; j < S.nv; j++) {
            uintptr_t u = (uintptr_t)S.c[i].val[j];
            if (S.c[i].present[j] && S.v[j].destroy)
                held[(u - ID_BASE) / 16] = true;
        }
    }
    for (int i = 0; i < S.nt; i++) {
        const struct mtok *t = &S.t[i];
        if (t->alive && t->old_present && S.v[t->var].destroy)
            held[((uintptr_t)t->old - ID_BASE) / 16] = true;
    }
    for (int id = 0; id < S.nid; id++) {
        if (!S.issued[id])
            continue;
        CHECK(S.destroyed[id] == (held[id] ? 0 : 1),
              "value id %d: destroyed %d times, model says %s", id, S.destroyed[id],
              held[id] ? "still held" : "no holder left");
    }
}

static void check_all(void)
{
    compute_liveness();
    for (int i = 0; i < S.nc; i++)
        if (ctx_live[i])
            check_ctx(i);
    check_current();
    check_values();
}

/* ----------------------------------------------------------- operations */

static void exec_ops(int n);

static void tok_slot_release(int s)
{
    int ti = S.tslot[s];
    if (ti < 0)
        return;
    cx_token_release(S.t[ti].t);
    S.t[ti].alive = false;
    S.tslot[s] = -1;
}

static void ctx_slot_release(int s)
{
    int ci = S.cslot[s];
    if (ci < 0)
        return;
    cx_context_release(S.c[ci].c);
    S.cslot[s] = -1;
}

/* Selector 0..2: a handle slot (may be empty: -1); 3: the current context. */
static int ctx_sel(uint8_t x)
{
    x &= 3;
    return x == 3 ? cur_ctx() : S.cslot[x];
}

static cx_context *ctx_ptr(int ci) { return ci < 0 ? NULL : S.c[ci].c; }

/* Model of a successful set in the current context; returns the token. */
static int model_set(int j, void *val, bool want_tok)
{
    struct mctx *m = &S.c[cur_ctx()];
    int ti = -1;
    if (want_tok) {
        ti = S.nt++;
        S.t[ti] = (struct mtok){.alive = true, .var = j, .ctx = cur_ctx(),
                                .old_present = m->present[j], .old = m->val[j]};
    }
    m->present[j] = true;
    m->val[j] = val;
    if (S.v[j].destroy)
        S.destroy_sets++;
    return ti;
}

/* A value for variable j: a fresh id for a destroy variable (-1: ids
 * exhausted). */
static bool pick_value(int j, uint8_t b, void **val, int *id)
{
    *id = -1;
    if (!S.v[j].destroy) {
        *val = plain_value(b);
        return true;
    }
    if (S.nid >= MAXIDS)
        return false;
    *id = S.nid++;
    *val = id_ptr(*id);
    return true;
}

static void op_set(void)
{
    uint8_t a = next_byte(), b = next_byte();
    int j = S.vslot[(a & 7) % NVSLOT];
    bool want_tok = (a >> 3) & 1;
    int ts = (a >> 4) & 3;
    if (want_tok && S.nt >= MAXTOK)
        return;
    void *val;
    int id;
    if (!pick_value(j, b, &val, &id))
        return;
    if (want_tok)
        tok_slot_release(ts);
    cx_token *tok = (cx_token *)(uintptr_t)0x1;
    int rc = cx_var_set(S.v[j].v, val, want_tok ? &tok : NULL);
    CHECK(rc == 0, "set(%s) = %s", S.v[j].name, cx_err_name(rc));
    if (id >= 0)
        S.issued[id] = true;
    int ti = model_set(j, val, want_tok);
    if (want_tok) {
        CHECK(tok != NULL && tok != (cx_token *)(uintptr_t)0x1, "set gave no token");
        S.t[ti].t = tok;
        S.tslot[ts] = ti;
    }
}

/* Expected result of reset(var j, token ti) in the current context. */
static int model_reset(int j, int ti)
{
    if (ti < 0)
        return CX_EINVAL;
    struct mtok *t = &S.t[ti];
    if (t->used)
        return CX_EUSED;
    if (t->var != j)
        return CX_EVAR;
    if (t->ctx != cur_ctx())
        return CX_ECONTEXT;
    struct mctx *m = &S.c[cur_ctx()];
    m->present[j] = t->old_present;
    m->val[j] = t->old_present ? t->old : NULL;
    t->used = true;
    return 0;
}

static void op_reset(void)
{
    uint8_t a = next_byte();
    int ti = S.tslot[(a >> 3) & 3];
    int j;
    if ((a >> 5) & 1 && ti >= 0) {
        /* the token's own variable (through cx_token_var) */
        j = S.t[ti].var;
        CHECK(cx_token_var(S.t[ti].t) == S.v[j].v, "token_var");
    } else {
        j = S.vslot[(a & 7) % NVSLOT];
    }
    int rc = cx_var_reset(S.v[j].v, ti < 0 ? NULL : S.t[ti].t);
    int want = model_reset(j, ti);
    CHECK(rc == want, "reset(%s, token %d) = %s, model %s", S.v[j].name, ti, cx_err_name(rc),
          cx_err_name(want));
}

static void op_get(void)
{
    uint8_t a = next_byte();
    int j = S.vslot[(a & 7) % NVSLOT];
    void *out;
    switch ((a >> 3) & 3) {
    case 0:
        (void)cx_var_get(S.v[j].v, &out); /* compared by check_current */
        break;
    case 1: {
        void *fb = plain_value(next_byte());
        const struct mctx *m = &S.c[cur_ctx()];
        void *g = cx_var_get_or(S.v[j].v, fb);
        CHECK(g == (m->present[j] ? m->val[j] : fb), "get_or");
        break;
    }
    case 2:
        CHECK(cx_var_get(NULL, &out) == CX_EINVAL, "get(NULL var)");
        break;
    default:
        CHECK(cx_var_get(S.v[j].v, NULL) == CX_EINVAL, "get(out NULL)");
        break;
    }
}

static void put_ctx(int slot, cx_context *c, int from)
{
    if (S.nc >= MAXCOBJ) {
        cx_context_release(c);
        return;
    }
    int k = new_mctx(c);
    if (from >= 0) {
        memcpy(S.c[k].present, S.c[from].present, sizeof(S.c[k].present));
        memcpy(S.c[k].val, S.c[from].val, sizeof(S.c[k].val));
    }
    ctx_slot_release(slot);
    S.cslot[slot] = k;
}

static void op_copy_context(void)
{
    uint8_t a = next_byte();
    put_ctx((a & 3) % NCSLOT, cx_copy_context(), cur_ctx());
}

static void op_context_copy(void)
{
    uint8_t a = next_byte();
    int src = ctx_sel(a);
    cx_context *c = cx_context_copy(ctx_ptr(src));
    if (src < 0) {
        CHECK(c == NULL, "context_copy(NULL) returned a context");
        return;
    }
    put_ctx(((a >> 2) & 3) % NCSLOT, c, src);
}

static void op_context_new(void)
{
    uint8_t a = next_byte();
    put_ctx((a & 3) % NCSLOT, cx_context_new(), -1);
}

static void op_retain(void)
{
    uint8_t a = next_byte();
    int src = ctx_sel(a);
    int dst = ((a >> 2) & 3) % NCSLOT;
    CHECK(cx_context_retain(ctx_ptr(src)) == ctx_ptr(src), "retain returned another pointer");
    if (src < 0)
        return;
    ctx_slot_release(dst);
    S.cslot[dst] = src;
}

struct run_arg {
    int body;
    int calls;
};

static void *run_cb(void *p)
{
    struct run_arg *ra = p;
    ra->calls++;
    exec_ops(ra->body);
    return RUN_SENTINEL;
}

static void op_run(void)
{
    uint8_t a = next_byte(), b = next_byte();
    int ci = ctx_sel(a);
    bool null_result = (a >> 2) & 1;
    bool null_fn = ((a >> 3) & 7) == 7;
    struct run_arg ra = {.body = 1 + b % 6, .calls = 0};
    if (S.nest >= MAX_NEST) {
        exec_ops(ra.body);
        return;
    }
    int want;
    if (ci < 0 || null_fn)
        want = CX_EINVAL;
    else if (S.c[ci].entered)
        want = CX_EBUSY;
    else
        want = 0;
    void *res = (void *)(uintptr_t)0xabc;
    cx_context *c = ctx_ptr(ci);
    if (want == 0) {
        /* A careful caller keeps its own reference during the run, so the
         * body may release the handle slot. */
        cx_context_retain(c);
        S.c[ci].entered = true;
        S.stack[S.depth++] = ci;
    }
    S.nest++;
    int rc = cx_context_run(c, null_fn ? NULL : run_cb, &ra, null_result ? NULL : &res);
    S.nest--;
    if (want == 0) {
        S.depth--;
        S.c[ci].entered = false;
    }
    CHECK(rc == want, "run = %s, model %s", cx_err_name(rc), cx_err_name(want));
    if (want == 0) {
        CHECK(ra.calls == 1, "run called fn %d times", ra.calls);
        CHECK(null_result ? res == (void *)(uintptr_t)0xabc : res == RUN_SENTINEL,
              "run result %p", res);
        /* Our reference goes before the next check: the model no longer
         * counts it. */
        cx_context_release(c);
    } else {
        CHECK(ra.calls == 0, "failed run called fn");
        CHECK(res == (void *)(uintptr_t)0xabc, "failed run wrote *result");
        /* The body still runs, in the current context, so decoding stays
         * independent of the outcome. */
        S.nest++;
        exec_ops(ra.body);
        S.nest--;
    }
}

static void op_ctx_read(void)
{
    uint8_t a = next_byte();
    int ci = ctx_sel(a);
    int j = S.vslot[((a >> 2) & 7) % NVSLOT];
    cx_context *c = ctx_ptr(ci);
    void *out = (void *)(uintptr_t)0x42;
    int rc;
    switch ((a >> 5) & 3) {
    case 0:
        rc = cx_context_get(c, S.v[j].v, &out);
        if (ci < 0)
            CHECK(rc == CX_EINVAL, "context_get(NULL ctx) = %s", cx_err_name(rc));
        else if (S.c[ci].present[j])
            CHECK(rc == 0 && out == S.c[ci].val[j], "context_get");
        else
            CHECK(rc == CX_ELOOKUP, "context_get = %s, model ELOOKUP", cx_err_name(rc));
        break;
    case 1:
        CHECK(cx_context_contains(c, S.v[j].v) == (ci >= 0 && S.c[ci].present[j]),
              "contains");
        break;
    case 2:
        CHECK(cx_context_get(c, S.v[j].v, NULL) == CX_EINVAL, "context_get(out NULL)");
        CHECK(cx_context_get(c, NULL, &out) == CX_EINVAL, "context_get(var NULL)");
        CHECK(!cx_context_contains(c, NULL), "contains(var NULL)");
        break;
    default:
        CHECK(cx_context_len(c) == (ci < 0 ? 0 : model_len(ci)), "len");
        break;
    }
}

static void op_foreach(void)
{
    uint8_t a = next_byte(), b = next_byte();
    int ci = ctx_sel(a);
    if (ci < 0) {
        CHECK(cx_context_foreach(NULL, fe_cb, NULL) == CX_EINVAL, "foreach(NULL ctx)");
        return;
    }
    if ((a >> 2) & 1) {
        CHECK(cx_context_foreach(S.c[ci].c, NULL, NULL) == CX_EINVAL, "foreach(NULL fn)");
        return;
    }
    compute_liveness();
    check_foreach(ci, b % 8);
}

static bool model_equal(int x, int y)
{
    for (int j = 0; j < S.nv; j++) {
        if (S.c[x].present[j] != S.c[y].present[j])
            return false;
        if (S.c[x].present[j] && S.c[x].val[j] != S.c[y].val[j])
            return false;
    }
    return true;
}

static void op_equal(void)
{
    uint8_t a = next_byte();
    int x = ctx_sel(a), y = ctx_sel(a >> 2);
    bool want = (x < 0 || y < 0) ? x == y : model_equal(x, y);
    bool got = cx_context_equal(ctx_ptr(x), ctx_ptr(y));
    CHECK(got == want, "equal(%d, %d) = %d, model %d", x, y, got, want);
    CHECK(cx_context_equal(ctx_ptr(y), ctx_ptr(x)) == want, "equal is not symmetric");
}

static void op_tok_release(void) { tok_slot_release(next_byte() & 3); }

static void op_ctx_release(void) { ctx_slot_release((next_byte() & 3) % NCSLOT); }

static void op_tok_query(void)
{
    int ti = S.tslot[next_byte() & 3];
    void *out = (void *)(uintptr_t)0x33;
    if (ti < 0) {
        CHECK(cx_token_var(NULL) == NULL, "token_var(NULL)");
        CHECK(cx_token_old_value(NULL, &out) == CX_EINVAL, "token_old_value(NULL)");
        CHECK(!cx_token_used(NULL), "token_used(NULL)");
        return;
    }
    const struct mtok *t = &S.t[ti];
    CHECK(cx_token_var(t->t) == S.v[t->var].v, "token_var");
    CHECK(cx_token_used(t->t) == t->used, "token_used = %d, model %d", cx_token_used(t->t),
          t->used);
    int rc = cx_token_old_value(t->t, &out);
    if (t->old_present)
        CHECK(rc == 0 && out == t->old, "token_old_value = %s %p, model %p", cx_err_name(rc),
              out, t->old);
    else
        CHECK(rc == CX_ELOOKUP, "token_old_value = %s, model MISSING", cx_err_name(rc));
    CHECK(cx_token_old_value(t->t, NULL) == CX_EINVAL, "token_old_value(out NULL)");
}

static void op_var_renew(void)
{
    int s = (next_byte() & 7) % NVSLOT;
    if (S.nv >= MAXVOBJ)
        return;
    int old = S.vslot[s];
    cx_var_release(S.v[old].v);
    S.v[old].creator_released = true;
    S.vslot[s] = new_var(s);
}

static void op_with(void)
{
    uint8_t a = next_byte(), b = next_byte(), c = next_byte();
    int j = S.vslot[(a & 7) % NVSLOT];
    int mode = ((a >> 3) & 3) % 3; /* 0 normal, 1 break, 2 continue */
    int body = 1 + c % 5;
    void *val;
    int id;
    if (S.nest >= MAX_NEST || S.nt >= MAXTOK || !pick_value(j, b, &val, &id)) {
        exec_ops(body);
        return;
    }
    int ti = -1, entered = 0;
    CX_WITH(S.v[j].v, val)
    {
        entered++;
        if (id >= 0)
            S.issued[id] = true;
        ti = model_set(j, val, true);
        S.hidden[S.nhidden++] = ti;
        S.t[ti].t = NULL; /* not reachable by the fuzzer */
        check_all();
        S.nest++;
        exec_ops(body);
        S.nest--;
        if (mode == 1)
            break;
        if (mode == 2)
            continue;
        entered += 100; /* reached only without break/continue */
    }
    CHECK(entered == (mode == 0 ? 101 : 1), "CX_WITH block ran %d", entered);
    /* The exit reset: the body cannot leave the context it started in. */
    int rc = model_reset(j, ti);
    CHECK(rc == 0, "model: CX_WITH reset %s", cx_err_name(rc));
    S.t[ti].alive = false;
    S.nhidden--;
}

static void op_bad_args(void)
{
    uint8_t a = next_byte();
    cx_var *v = S.v[S.vslot[0]].v;
    cx_context *cur = S.c[cur_ctx()].c;
    cx_var *tmp = (cx_var *)(uintptr_t)0x1;
    pthread_t th;
    int rc;
    switch (a & 15) {
    case 0:
        CHECK(cx_var_new(NULL, "x", NULL) == CX_EINVAL, "var_new(NULL out)");
        break;
    case 1:
        CHECK(cx_var_new(&tmp, NULL, NULL) == CX_EINVAL, "var_new(NULL name)");
        CHECK(tmp == (cx_var *)(uintptr_t)0x1, "var_new wrote *out on EINVAL");
        break;
    case 2:
        CHECK(cx_var_set(NULL, NULL, NULL) == CX_EINVAL, "set(NULL)");
        break;
    case 3: {
        int ti = S.tslot[(a >> 4) & 3];
        cx_token *t = ti < 0 ? NULL : S.t[ti].t;
        CHECK(cx_var_reset(NULL, t) == CX_EINVAL, "reset(NULL var)");
        break;
    }
    case 4:
        CHECK(cx_context_run(NULL, run_cb, NULL, NULL) == CX_EINVAL, "run(NULL)");
        break;
    case 5:
        CHECK(cx_context_equal(NULL, NULL), "equal(NULL, NULL)");
        CHECK(!cx_context_equal(cur, NULL) && !cx_context_equal(NULL, cur), "equal(x, NULL)");
        CHECK(cx_context_equal(cur, cur), "equal(x, x)");
        break;
    case 6:
        CHECK(cx_context_len(NULL) == 0, "len(NULL)");
        CHECK(!cx_context_contains(NULL, v), "contains(NULL)");
        CHECK(cx_context_copy(NULL) == NULL, "copy(NULL)");
        CHECK(cx_context_retain(NULL) == NULL, "retain(NULL)");
        cx_context_release(NULL);
        cx_token_release(NULL);
        cx_var_release(NULL);
        CHECK(cx_var_name(NULL) == NULL, "var_name(NULL)");
        break;
    case 7:
        CHECK(cx_var_get_or(NULL, (void *)(uintptr_t)9) == (void *)(uintptr_t)9,
              "get_or(NULL)");
        break;
    case 8: {
        cx_allocator bad1 = {count_malloc, NULL}, bad2 = {NULL, count_free};
        CHECK(cx_set_allocator(&bad1) == CX_EINVAL && cx_set_allocator(&bad2) == CX_EINVAL,
              "set_allocator(NULL member)");
        break;
    }
    case 9: {
        int code = (int)(int8_t)next_byte();
        const char *s = cx_strerror(code), *n = cx_err_name(code);
        CHECK(s != NULL && n != NULL && *s && *n, "strerror/err_name(%d)", code);
        bool known = code <= 0 && code >= -12;
        CHECK(known ? strcmp(n, "UNKNOWN") != 0 : strcmp(n, "UNKNOWN") == 0,
              "err_name(%d) = %s", code, n);
        CHECK(known ? strcmp(s, "unknown error") != 0 : strcmp(s, "unknown error") == 0,
              "strerror(%d) = %s", code, s);
        break;
    }
    case 10:
        CHECK(cx_thread_create(NULL, NULL, run_cb, NULL) == CX_EINVAL, "thread_create(NULL t)");
        CHECK(cx_thread_create(&th, NULL, NULL, NULL) == CX_EINVAL, "thread_create(NULL fn)");
        break;
    case 11:
        CHECK(cx_thread_create_in(&th, NULL, NULL, run_cb, NULL) == CX_EINVAL,
              "thread_create_in(NULL ctx)");
        CHECK(cx_thread_create_in(NULL, NULL, cur, run_cb, NULL) == CX_EINVAL,
              "thread_create_in(NULL t)");
        CHECK(cx_thread_create_in(&th, NULL, cur, NULL, NULL) == CX_EINVAL,
              "thread_create_in(NULL fn)");
        break;
    case 12:
        /* The current context is entered (by us): no thread may enter it. */
        rc = cx_thread_create_in(&th, NULL, cur, run_cb, NULL);
        CHECK(rc == CX_EBUSY, "thread_create_in(entered ctx) = %s", cx_err_name(rc));
        break;
    case 13: {
        int ti = S.tslot[(a >> 4) & 3];
        if (ti >= 0)
            CHECK(cx_var_reset(v, NULL) == CX_EINVAL, "reset(var, NULL)");
        break;
    }
    case 14:
        CHECK(cx_context_foreach(cur, NULL, NULL) == CX_EINVAL, "foreach(NULL fn)");
        CHECK(cx_context_run(cur, NULL, NULL, NULL) == CX_EINVAL, "run(ctx, NULL fn)");
        break;
    default:
        CHECK(cx_token_old_value(NULL, NULL) == CX_EINVAL, "token_old_value(NULL, NULL)");
        break;
    }
}



static void exec_one(void)
{
    uint8_t op = next_byte() % FZ_OP_COUNT;
    S.ops++;
    switch (op) {
    case FZ_SET:
    case FZ_SET2: op_set(); break;
    case FZ_RESET:
    case FZ_RESET2: op_reset(); break;
    case FZ_GET: op_get(); break;
    case FZ_COPY_CONTEXT: op_copy_context(); break;
    case FZ_CONTEXT_COPY: op_context_copy(); break;
    case FZ_CONTEXT_NEW: op_context_new(); break;
    case FZ_RUN: op_run(); break;
    case FZ_CTX_READ: op_ctx_read(); break;
    case FZ_FOREACH: op_foreach(); break;
    case FZ_EQUAL: op_equal(); break;
    case FZ_TOK_RELEASE: op_tok_release(); break;
    case FZ_CTX_RELEASE: op_ctx_release(); break;
    case FZ_TOK_QUERY: op_tok_query(); break;
    case FZ_RETAIN: op_retain(); break;
    case FZ_VAR_RENEW: op_var_renew(); break;
    case FZ_WITH: op_with(); break;
    default: op_bad_args(); break;
    }
    check_all();
}

/* n operations (n < 0: until the input ends). */
static void exec_ops(int n)
{
    while ((n < 0 || n-- > 0) && input_left())
        exec_one();
}

static void *driver(void *unused)
{
    (void)unused;
    check_all();
    exec_ops(-1);
    /* Release everything the fuzzer holds, checking as the holders go. */
    for (int s = 0; s < NTSLOT; s++) {
        tok_slot_release(s);
        check_all();
    }
    for (int s = 0; s < NCSLOT; s++) {
        ctx_slot_release(s);
        check_all();
    }
    return RUN_SENTINEL;
}

static void *noop(void *p) { return p; }

static void setup_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    cx_allocator a = {count_malloc, count_free};
    if (cx_set_allocator(&a) != 0)
        abort();
    /* This thread's state is allocated by its first run; do it now so
     * every input starts from the same live count. */
    cx_context *c = cx_context_new();
    void *r;
    if (c == NULL || cx_context_run(c, noop, NULL, &r) != 0)
        abort();
    cx_context_release(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    long base = live_blocks - own_reserve();
    memset(&S, 0, sizeof(S));
    S.data = data;
    S.size = size;
    S.profile = next_byte() % 4;
    for (int i = 0; i < NCSLOT; i++)
        S.cslot[i] = -1;
    for (int i = 0; i < NTSLOT; i++)
        S.tslot[i] = -1;
    for (int s = 0; s < NVSLOT; s++)
        S.vslot[s] = new_var(s);

    S.top = new_mctx(cx_context_new());
    S.stack[0] = S.top;
    S.depth = 1;
    S.c[S.top].entered = true;
    void *res = NULL;
    int rc = cx_context_run(S.c[S.top].c, driver, NULL, &res);
    CHECK(rc == 0 && res == RUN_SENTINEL, "top run = %s", cx_err_name(rc));
    S.c[S.top].entered = false;
    S.depth = 0;
    cx_context_release(S.c[S.top].c);
    for (int s = 0; s < NVSLOT; s++) {
        cx_var_release(S.v[S.vslot[s]].v);
        S.v[S.vslot[s]].creator_released = true;
    }
    compute_liveness();
    check_values();
    CHECK(S.destroy_calls == S.destroy_sets, "destroy called %ld times for %ld sets",
          S.destroy_calls, S.destroy_sets);
    for (int id = 0; id < S.nid; id++)
        CHECK(S.destroyed[id] == (S.issued[id] ? 1 : 0), "value id %d destroyed %d times", id,
              S.destroyed[id]);
    CHECK(live_blocks - own_reserve() == base, "%ld blocks leaked by this input",
          live_blocks - own_reserve() - base);
    return 0;
}
