/* gen_corpus.c - writes the seed corpus of fuzz_ops (tests/fuzz/corpus).
 *
 *   gen_corpus DIR
 *
 * Deterministic: hand-written scenarios (one file each, named after what
 * they exercise) in every hash profile where the map shape matters, plus a
 * few structured pseudo-random sequences from a fixed seed. The encoding
 * is fuzz_ops.h's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_ops.h"

static uint8_t buf[4096];
static size_t len;
static const char *outdir;

static void b1(unsigned x) { buf[len++] = (uint8_t)x; }

static int cur_profile;

static void begin(int profile)
{
    len = 0;
    cur_profile = profile;
    b1((unsigned)profile);
}

static void save(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- one encoder per operation (see fuzz_ops.h) */
static void set(int var, int tok, int ts, unsigned val)
{
    b1(FZ_SET);
    b1((unsigned)(var | (tok ? 8 : 0) | ts << 4));
    b1(val);
}
static void reset(int var, int ts, int own_var)
{
    b1(FZ_RESET);
    b1((unsigned)(var | ts << 3 | (own_var ? 32 : 0)));
}
static void get(int var, int variant, unsigned fb)
{
    b1(FZ_GET);
    b1((unsigned)(var | variant << 3));
    if (variant == 1)
        b1(fb);
}
static void copy_context(int cs) { b1(FZ_COPY_CONTEXT); b1((unsigned)cs); }
static void context_copy(int sel, int cs) { b1(FZ_CONTEXT_COPY); b1((unsigned)(sel | cs << 2)); }
static void context_new(int cs) { b1(FZ_CONTEXT_NEW); b1((unsigned)cs); }
/* body: the next `body` (1..6) operations */
static void run(int sel, int null_result, int null_fn, int body)
{
    b1(FZ_RUN);
    b1((unsigned)(sel | (null_result ? 4 : 0) | (null_fn ? 56 : 0)));
    b1((unsigned)(body - 1));
}
static void ctx_read(int sel, int var, int variant)
{
    b1(FZ_CTX_READ);
    b1((unsigned)(sel | var << 2 | variant << 5));
}
static void foreach_(int sel, int null_fn, int stop)
{
    b1(FZ_FOREACH);
    b1((unsigned)(sel | (null_fn ? 4 : 0)));
    b1((unsigned)stop);
}
static void equal(int x, int y) { b1(FZ_EQUAL); b1((unsigned)(x | y << 2)); }
static void tok_release(int ts) { b1(FZ_TOK_RELEASE); b1((unsigned)ts); }
static void ctx_release(int cs) { b1(FZ_CTX_RELEASE); b1((unsigned)cs); }
static void tok_query(int ts) { b1(FZ_TOK_QUERY); b1((unsigned)ts); }
static void retain(int sel, int cs) { b1(FZ_RETAIN); b1((unsigned)(sel | cs << 2)); }
static void var_renew(int var)
{
    b1(FZ_VAR_RENEW);
    b1((unsigned)var);
    if (cur_profile == 3)
        b1(0x15); /* the new variable's hash byte */
}
/* body: the next `body` (1..5) operations */
static void with(int var, int mode, unsigned val, int body)
{
    b1(FZ_WITH);
    b1((unsigned)(var | mode << 3));
    b1(val);
    b1((unsigned)(body - 1));
}
static void bad(int which, int ts)
{
    b1(FZ_BAD_ARGS);
    b1((unsigned)(which | ts << 4));
    if (which == 9)
        b1(0xf4); /* -12 */
}

enum { CUR = FZ_SEL_CURRENT };

/* ---- scenarios; each takes the hash profile */

static void sc_set_get(int p)
{
    begin(p);
    for (int v = 0; v < 5; v++) {
        get(v, 0, 0);
        set(v, 1, v & 3, (unsigned)(v + 1));
        get(v, 1, 3);
    }
    for (int v = 4; v >= 0; v--)
        reset(v, v & 3, 1);
    for (int v = 0; v < 5; v++)
        set(v, 0, 0, 0); /* NULL values */
    foreach_(CUR, 0, 7);
}

static void sc_all_vars_deep(int p)
{
    begin(p);
    for (int v = 0; v < 5; v++)
        set(v, v < 4, v, (unsigned)v + 2);
    copy_context(0); /* the map is shared from here: path copies */
    for (int v = 3; v >= 0; v--)
        reset(v, v, 1);
    equal(0, CUR);
    run(0, 0, 0, 5);
    set(4, 0, 0, 1);
    set(0, 0, 0, 1);
    set(1, 1, 0, 2);
    reset(1, 0, 1);
    foreach_(CUR, 0, 7);
    equal(0, 1);
}

/* Two variables with equal hashes first (a collision node high up), then
 * others whose hashes differ only deeper: the collision node is pushed
 * down, in place and in a shared map. */
static void sc_collision_pushdown(int p)
{
    begin(p);
    set(0, 0, 0, 1);
    set(4, 1, 0, 2);
    if (p & 1)
        copy_context(0);
    set(1, 1, 1, 3);
    set(2, 1, 2, 0);
    copy_context(1);
    set(3, 1, 3, 0);
    reset(4, 0, 1);
    reset(1, 1, 1);
    foreach_(CUR, 0, 7);
    equal(0, 1);
}

static void sc_unshared_deletes(int p)
{
    begin(p);
    for (int v = 0; v < 4; v++)
        set(v, 1, v, (unsigned)v + 1);
    for (int v = 0; v < 4; v++)
        reset(v, v, 1); /* in-place deletes, collapses */
    for (int v = 0; v < 4; v++)
        set(v, 1, v, 9);
    for (int v = 3; v >= 0; v--)
        reset(v, v, 1);
    ctx_read(CUR, 0, 3);
}

static void sc_reset_errors(void)
{
    begin(0);
    set(0, 1, 0, 1);
    reset(1, 0, 0);   /* foreign var: EVAR */
    reset(0, 0, 0);   /* good */
    reset(0, 0, 0);   /* used: EUSED */
    reset(0, 1, 0);   /* empty slot: EINVAL */
    context_new(0);
    run(0, 0, 0, 4);
    set(2, 1, 1, 5);  /* token made inside the run */
    reset(2, 1, 1);   /* fine in there */
    set(2, 1, 2, 6);
    set(2, 1, 3, 7);  /* old value present */
    tok_query(3);
    reset(2, 2, 1);   /* outside: ECONTEXT */
    reset(0, 2, 0);   /* wrong variable and context: CX_EVAR first */
    tok_query(2);
    run(0, 0, 0, 1);
    reset(2, 2, 1);   /* back in its context: fine */
    tok_query(2);
    tok_query(3);
    save("reset_errors");
}

static void sc_nested_runs(void)
{
    begin(0);
    set(0, 0, 0, 1);
    context_new(0);
    copy_context(1);
    run(0, 0, 0, 4);
    set(0, 0, 0, 2);
    run(1, 1, 0, 3);
    run(0, 0, 0, 1);   /* entered by the outer run: EBUSY */
    set(1, 0, 0, 3);
    run(CUR, 0, 0, 1); /* recursion: EBUSY */
    get(0, 0, 0);
    run(0, 0, 1, 1);   /* NULL fn */
    ctx_read(0, 0, 0);
    equal(0, 1);
    save("nested_runs");
}

static void sc_run_releases_own_handle(void)
{
    begin(0);
    context_new(0);
    run(0, 0, 0, 3);
    set(2, 0, 0, 1);
    set(3, 1, 1, 1);
    ctx_release(0);    /* the running context's only handle */
    tok_query(1);
    foreach_(1, 0, 7);
    save("run_releases_own_handle");
}

static void sc_destroy_holders(int p)
{
    begin(p);
    set(2, 1, 0, 0);
    set(2, 1, 1, 0);
    set(3, 1, 2, 0);
    copy_context(0);
    set(2, 0, 0, 0);
    reset(2, 1, 1);    /* back to the first value */
    tok_release(0);
    context_copy(0, 1);
    ctx_release(0);
    set(3, 0, 0, 0);
    reset(3, 2, 1);
    tok_release(2);
    run(1, 0, 0, 3);
    set(2, 1, 3, 0);
    set(3, 0, 0, 0);
    reset(2, 3, 1);
    ctx_release(1);
    tok_release(3);
}

static void sc_var_renew(int p)
{
    begin(p);
    set(0, 1, 0, 1);
    set(2, 1, 1, 0);
    copy_context(0);
    var_renew(0);
    var_renew(2);
    foreach_(0, 0, 7);
    reset(0, 0, 0);    /* new var, old token: EVAR */
    reset(0, 0, 1);    /* the token's own (released) var: fine */
    set(0, 0, 0, 2);
    set(2, 0, 0, 0);
    equal(0, CUR);
    ctx_release(0);
    tok_release(1);
    var_renew(2);
}

static void sc_with(void)
{
    begin(0);
    with(0, 0, 1, 3);
    get(0, 0, 0);
    with(2, 1, 0, 2);
    set(0, 0, 0, 2);
    with(3, 2, 0, 1);
    copy_context(0);
    get(0, 0, 0);
    with(1, 0, 4, 2);
    run(0, 0, 0, 1);
    set(1, 0, 0, 5);
    save("with_blocks");
}

static void sc_foreach_stops(void)
{
    begin(0);
    for (int v = 0; v < 5; v++)
        set(v, 0, 0, 1);
    for (int s = 0; s < 6; s++)
        foreach_(CUR, 0, s);
    foreach_(CUR, 1, 0);
    foreach_(2, 0, 0);
    save("foreach_stops");
}

static void sc_contexts(void)
{
    begin(0);
    set(1, 0, 0, 3);
    copy_context(0);
    context_copy(0, 1);
    context_new(2);
    equal(0, 1);
    equal(0, 2);
    retain(0, 2);
    ctx_release(0);
    ctx_read(2, 1, 0);
    ctx_read(2, 1, 1);
    ctx_read(2, 1, 2);
    ctx_read(2, 1, 3);
    context_copy(CUR, 0);
    retain(CUR, 1);
    equal(1, CUR);
    set(1, 0, 0, 4);
    equal(1, CUR);
    equal(0, 2);
    ctx_release(1);
    ctx_read(1, 1, 0);
    context_copy(1, 1);
    save("contexts");
}

static void sc_bad_args(void)
{
    begin(0);
    set(0, 1, 0, 1);
    for (int w = 0; w < 16; w++)
        bad(w, 0);
    get(0, 2, 0);
    get(0, 3, 0);
    save("bad_args");
}

/* ---- structured pseudo-random sequences */

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)((rng >> 11) % n);
}

static void random_seq(int p, int nops)
{
    begin(p);
    for (int i = 0; i < nops; i++) {
        switch (rnd(12)) {
        case 0: case 1: case 2: set((int)rnd(5), (int)rnd(2), (int)rnd(4), rnd(7)); break;
        case 3: case 4: reset((int)rnd(5), (int)rnd(4), (int)rnd(2)); break;
        case 5: copy_context((int)rnd(3)); break;
        case 6: context_copy((int)rnd(4), (int)rnd(3)); break;
        case 7: run((int)rnd(4), 0, 0, 1 + (int)rnd(4)); break;
        case 8: equal((int)rnd(4), (int)rnd(4)); break;
        case 9: ctx_release((int)rnd(3)); break;
        case 10: tok_release((int)rnd(4)); break;
        default: with((int)rnd(5), (int)rnd(3), rnd(7), 1 + (int)rnd(3)); break;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    outdir = argv[1];
    char name[64];
    static void (*const per_profile[])(int) = {sc_set_get, sc_all_vars_deep, sc_unshared_deletes,
                                               sc_destroy_holders, sc_var_renew,
                                               sc_collision_pushdown};
    static const char *const names[] = {"set_get", "deep_shared", "unshared_deletes",
                                        "destroy_holders", "var_renew", "collision_pushdown"};
    for (size_t s = 0; s < sizeof(names) / sizeof(names[0]); s++) {
        for (int p = 0; p < 4; p++) {
            per_profile[s](p);
            /* profile 3 reads one hash byte per variable: vary them */
            snprintf(name, sizeof(name), "%s_p%d", names[s], p);
            if (p == 3) {
                memmove(buf + 6, buf + 1, len - 1);
                static const uint8_t hb[5] = {0x00, 0x7f, 0x40, 0x41, 0xc0};
                memcpy(buf + 1, hb, 5);
                len += 5;
            }
            save(name);
        }
    }
    sc_reset_errors();
    sc_nested_runs();
    sc_run_releases_own_handle();
    sc_with();
    sc_foreach_stops();
    sc_contexts();
    sc_bad_args();
    for (int i = 0; i < 12; i++) {
        random_seq(i % 4, 24 + (int)rnd(40));
        if (i % 4 == 3) {
            memmove(buf + 6, buf + 1, len - 1);
            for (int k = 1; k <= 5; k++)
                buf[k] = (uint8_t)rnd(256);
            len += 5;
        }
        snprintf(name, sizeof(name), "random_%02d", i);
        save(name);
    }
    return 0;
}
