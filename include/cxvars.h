/*
 * cxvars.h - Python's contextvars (PEP 567) for C and POSIX threads.
 *
 * A cx_var is a key; a cx_context maps keys to values; every thread has a
 * current context. cx_var_set() changes the binding in the current context
 * only and returns a token that cx_var_reset() uses to undo that change.
 * cx_copy_context() snapshots the current context in O(1); cx_context_run()
 * makes a context current for the duration of a call.
 *
 * Conventions used in every comment of this header:
 *   - "new reference": the caller owns it and must release it.
 *   - "borrowed": valid only as long as stated; never release it.
 *   - Every int-returning function returns 0 on success or a negative CX_E*
 *     code; no function aborts or prints on bad input.
 *
 * Copyright (c) 2026 The cxvars authors. BSD-2-Clause, see LICENSE.
 */
#ifndef CXVARS_H
#define CXVARS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CX_EXTERN __attribute__((visibility("default")))
#else
#define CX_EXTERN
#endif

/* ----------------------------------------------------------------- version */

/* The release these headers belong to (the Makefile, cxvars.pc and the
 * CMake package take their version from these three lines). Compare
 * CX_VERSION_NUMBER in #if; cx_version() tells which library is loaded. */
#define CX_VERSION_MAJOR 0
#define CX_VERSION_MINOR 2
#define CX_VERSION_PATCH 0
#define CX_VERSION_NUMBER                                                     \
    (CX_VERSION_MAJOR * 10000 + CX_VERSION_MINOR * 100 + CX_VERSION_PATCH)
#define CX__STR2(x) #x
#define CX__STR(x) CX__STR2(x)
#define CX_VERSION_STRING                                                     \
    CX__STR(CX_VERSION_MAJOR) "." CX__STR(CX_VERSION_MINOR) "." CX__STR(CX_VERSION_PATCH)

/* The loaded library's version, "MAJOR.MINOR.PATCH": a static string
 * (borrowed, never NULL, never freed). May differ from CX_VERSION_STRING
 * when a program runs against another build of the same soname. */
CX_EXTERN const char *cx_version(void);

/* ------------------------------------------------------------------ errors */

/* X-macro: name, value, message. cx_strerror() and cx_err_name() are
 * generated from this single table. */
#define CX_ERRNO_MAP(XX)                                                      \
    XX(ENOMEM, -1, "out of memory")                                           \
    XX(EINVAL, -2, "invalid argument")                                        \
    XX(ELOOKUP, -3, "variable has no value in this context (LookupError)")   \
    XX(EBUSY, -4, "context already entered, or future running (RuntimeError)") \
    XX(EUSED, -5, "token has already been used (RuntimeError)")               \
    XX(EVAR, -6, "token was created by a different variable (ValueError)")    \
    XX(ECONTEXT, -7, "token was created in a different context (ValueError)") \
    XX(EAGAIN, -8, "resource temporarily unavailable")                        \
    XX(ETIMEDOUT, -9, "deadline passed")                                      \
    XX(ECANCELED, -10, "job was cancelled")                                   \
    XX(ESHUTDOWN, -11, "pool is shut down")                                   \
    XX(EFORK, -12, "object was created before fork() in the parent process")

enum cx_errno {
#define CX__ERRNO_ENUM(name, value, msg) CX_##name = (value),
    CX_ERRNO_MAP(CX__ERRNO_ENUM)
#undef CX__ERRNO_ENUM
};

/* Static strings; unknown codes get "unknown error" / "UNKNOWN". */
CX_EXTERN const char *cx_strerror(int code);
CX_EXTERN const char *cx_err_name(int code);

/* --------------------------------------------------------------- allocator */

/* Every allocation of the library (core and pool) goes through this pair.
 * Call cx_set_allocator() before any other cx_* call (memory obtained from
 * one allocator is returned to whichever is installed when it is freed).
 * NULL restores malloc/free. CX_EINVAL if either function pointer is NULL. */
typedef struct cx_allocator {
    void *(*malloc)(size_t size);
    void (*free)(void *ptr);
} cx_allocator;

CX_EXTERN int cx_set_allocator(const cx_allocator *a);

/* --------------------------------------------------------------- variables */

typedef struct cx_var cx_var;         /* ContextVar */
typedef struct cx_token cx_token;     /* Token */
typedef struct cx_context cx_context; /* Context */

/* Flags of cx_var_opts.flags. */
#define CX_VAR_LOCAL 1u   /* stays on its thread: captures for new threads,
                             pool jobs, groups and callbacks leave it out */
#define CX_VAR_WATCHED 2u /* watchers get SET and RESET events for it */

typedef struct cx_var_opts {
    bool has_default;
    void *default_value;        /* never destroyed by the library */
    void (*destroy)(void *value); /* optional: values become owned, see set */
    unsigned flags;             /* CX_VAR_* (0: none) */
} cx_var_opts;

/* Creates a variable. *out receives a new reference (release it with
 * cx_var_release). name is copied (NULL is CX_EINVAL); opts may be NULL. */
CX_EXTERN int cx_var_new(cx_var **out, const char *name, const cx_var_opts *opts);

/* Drops the creator's reference. Contexts, maps and tokens that still hold
 * a binding of the variable keep it alive until they are gone. NULL is a
 * no-op. */
CX_EXTERN void cx_var_release(cx_var *var);

/* Borrowed; valid while the variable is alive. NULL for a NULL var. */
CX_EXTERN const char *cx_var_name(const cx_var *var);

/* Value in the current context > the variable's default > CX_ELOOKUP.
 * *out is borrowed: valid until this thread next changes this variable in
 * its current context or leaves that context. Allocates nothing. */
CX_EXTERN int cx_var_get(const cx_var *var, void **out);

/* Value in the current context, else fallback (the variable's default is
 * not consulted: fallback takes its place, as in Python's var.get(x)).
 * Returns fallback for a NULL var. */
CX_EXTERN void *cx_var_get_or(const cx_var *var, void *fallback);

/* Binds value in the current context (creating this thread's context on
 * first use). If tok is not NULL, *tok receives a new token reference.
 * For a variable with a destroy callback, success hands one ownership unit
 * of value to the library; failure (CX_ENOMEM) leaves it with the caller and
 * changes nothing. */
CX_EXTERN int cx_var_set(cx_var *var, void *value, cx_token **tok);

/* Restores the binding tok recorded (the old value, or no binding if it was
 * MISSING). Errors, checked in this order, change nothing:
 *   CX_EUSED     the token was already used
 *   CX_EVAR      the token belongs to another variable
 *   CX_ECONTEXT  the token was made in another context than the current one
 *   CX_ENOMEM    only when a copy taken since the set shares the map, the
 *                allocator fails and this thread's reserve of node blocks
 *                (kept by sets that return a token) is used up
 * The token stays owned by the caller: release it with cx_token_release. */
CX_EXTERN int cx_var_reset(cx_var *var, cx_token *tok);

/* -------------------------------------------------- inline fast path of get
 * Not API: what follows lets cx_var_get and cx_var_get_or answer a cache
 * hit without a function call (a thread-local load and two compares; the
 * call alone costs as much as pthread_getspecific). The layout may change
 * with any release that changes the soname. Define CX_NO_INLINE before
 * including this header to always call the library. Any miss, NULL
 * argument or thread without state falls through to the real function. */
#define CX__CACHE_SLOTS 64
struct cx__cache_entry {
    uintptr_t key; /* the variable's address; bit 0 set: "no binding" */
    uint64_t gen;  /* valid iff equal to the thread's gen */
    void *value;
};
struct cx__fast {
    uint64_t gen; /* bumped by every set/reset/enter/exit in the thread */
    struct cx__cache_entry cache[CX__CACHE_SLOTS];
};
CX_EXTERN extern __thread struct cx__fast *cx__fast_tls
    __attribute__((tls_model("initial-exec")));

/* A variable's cache slot, from its address. */
static inline uint32_t cx__slot(const void *var)
{
    return (uint32_t)(((uintptr_t)var * UINT64_C(0x9E3779B97F4A7C15)) >> 58);
}

#if defined(__GNUC__) && !defined(CX_NO_INLINE)
static inline int cx__var_get_fast(const cx_var *var, void **out)
{
    const struct cx__fast *f = cx__fast_tls;
    if (__builtin_expect(f != NULL && out != NULL, 1)) {
        const struct cx__cache_entry *e = &f->cache[cx__slot(var)];
        if (__builtin_expect(e->key == (uintptr_t)var && e->gen == f->gen, 1)) {
            *out = e->value;
            return 0;
        }
    }
    return (cx_var_get)(var, out);
}
static inline void *cx__var_get_or_fast(const cx_var *var, void *fallback)
{
    const struct cx__fast *f = cx__fast_tls;
    if (__builtin_expect(f != NULL, 1)) {
        const struct cx__cache_entry *e = &f->cache[cx__slot(var)];
        /* A cached binding, or a cached "no binding" (bit 0): the
         * fallback takes the default's place, so both answer here. */
        if (__builtin_expect((e->key & ~(uintptr_t)1) == (uintptr_t)var && e->gen == f->gen, 1))
            return (e->key & 1) ? fallback : e->value;
    }
    return (cx_var_get_or)(var, fallback);
}
#define cx_var_get(var, out) cx__var_get_fast((var), (out))
#define cx_var_get_or(var, fallback) cx__var_get_or_fast((var), (fallback))
#endif

/* ------------------------------------------------------------------ tokens */

/* Borrowed; valid while the token is alive. NULL for NULL. */
CX_EXTERN cx_var *cx_token_var(const cx_token *tok);
/* The value before the set; CX_ELOOKUP if there was none (Token.MISSING).
 * *out is borrowed: valid while the token is alive. */
CX_EXTERN int cx_token_old_value(const cx_token *tok, void **out);
CX_EXTERN bool cx_token_used(const cx_token *tok);
CX_EXTERN void cx_token_release(cx_token *tok); /* NULL is a no-op */

/* Python 3.14's `with var.set(value): ...`: sets, runs the block, resets and
 * releases the token when the block ends normally or by break/continue
 * (break leaves the CX_WITH block only, not an enclosing loop). Leaving the
 * block by return or goto skips the reset: do not. CX_WITH takes ownership
 * of an owned value (a variable with a destroy callback) in every case: if
 * the set fails (out of memory, NULL var), the block does not run and the
 * value is destroyed at once (for a NULL var nothing can be destroyed).
 * CX_WITH_RC(var, value, rc) is the same and stores the set's status in
 * the int lvalue rc (0, CX_ENOMEM, CX_EINVAL); the block runs only when
 * rc == 0. The reset at the end cannot fail for lack of memory, even when
 * the block copied the context: the block runs only once this thread holds
 * enough reserve memory for the reset of every open CX_WITH block
 * (guaranteed up to 8 nested blocks). Names come from __COUNTER__: any
 * number of CX_WITH on one line or nested compile without shadowing. */
struct cx__with {
    cx_var *var;
    cx_token *tok;
    int once;
    int status; /* the set's status (CX_WITH_RC's rc) */
};
CX_EXTERN struct cx__with cx__with_enter(cx_var *var, void *value);
CX_EXTERN void cx__with_exit(struct cx__with *w);
#define CX__CAT2(a, b) a##b
#define CX__CAT(a, b) CX__CAT2(a, b)
#define CX__WITH_N(var, value, w)                                             \
    for (struct cx__with w = cx__with_enter((var), (value)); w.tok != NULL;   \
         cx__with_exit(&w))                                                   \
        for (; w.once; w.once = 0)
#define CX__WITH_RC_N(var, value, rc, w)                                      \
    for (struct cx__with w = cx__with_enter((var), (value));                  \
         ((rc) = w.status, w.tok != NULL); cx__with_exit(&w))                     \
        for (; w.once; w.once = 0)
#define CX_WITH(var, value) CX__WITH_N(var, value, CX__CAT(cx__w_, __COUNTER__))
#define CX_WITH_RC(var, value, rc)                                            \
    CX__WITH_RC_N(var, value, rc, CX__CAT(cx__w_, __COUNTER__))

/* ---------------------------------------------------------------- contexts */

/* Context(): a new, empty context. New reference; NULL when out of memory. */
CX_EXTERN cx_context *cx_context_new(void);
/* copy_context(): a new context holding the current context's map, O(1).
 * New reference; NULL when out of memory. */
CX_EXTERN cx_context *cx_copy_context(void);
/* Context.copy(): a new context with ctx's map, O(1). New reference; NULL
 * for a NULL ctx or when out of memory. Safe while another thread runs in
 * ctx (the copy is one consistent snapshot). */
CX_EXTERN cx_context *cx_context_copy(const cx_context *ctx);
/* Returns ctx (the same pointer, one more reference). */
CX_EXTERN cx_context *cx_context_retain(cx_context *ctx);
/* Drops a reference; NULL is a no-op. Releasing the last reference of a
 * context while a cx_context_run is in it is safe: the run keeps it alive
 * and it is torn down when the run returns. */
CX_EXTERN void cx_context_release(cx_context *ctx);

/* Context.run(): makes ctx current in this thread, calls fn(arg), restores
 * the previous context on every way out of fn: return, pthread_exit,
 * cancellation at a cancellation point in fn, a C++ exception unwinding
 * through it (contexts fn entered with cx_context_enter and did not exit
 * are left too). *result (if result is not NULL) receives fn's return
 * value. CX_EBUSY, calling nothing, if ctx is already entered by this
 * thread (recursion) or any other. The run keeps ctx alive: fn may release
 * the caller's last reference. */
CX_EXTERN int cx_context_run(cx_context *ctx, void *(*fn)(void *), void *arg,
                             void **result);

/* Mapping reads. Each is safe while another thread runs in ctx and sets
 * variables: it sees one consistent map. Values are borrowed from that map
 * (see cx_var_get for how long they stay valid). */
CX_EXTERN int cx_context_get(const cx_context *ctx, const cx_var *var,
                             void **out); /* ignores defaults; CX_ELOOKUP */
CX_EXTERN bool cx_context_contains(const cx_context *ctx, const cx_var *var);
CX_EXTERN size_t cx_context_len(const cx_context *ctx);
/* Calls fn(var, value, arg) for every binding (var and value borrowed for
 * the call); stops at the first non-zero return of fn and returns it.
 * Allocates nothing. fn may use the cx_* API freely. */
CX_EXTERN int cx_context_foreach(const cx_context *ctx,
                                 int (*fn)(cx_var *var, void *value, void *arg),
                                 void *arg);
/* Same variables bound to the same (pointer-equal) values. */
CX_EXTERN bool cx_context_equal(const cx_context *a, const cx_context *b);

/* ----------------------------------------------------------------- threads */

/* pthread_create() whose thread runs fn(arg) in a copy of the caller's
 * current context (Python 3.14's Thread(context=copy_context())), less its
 * CX_VAR_LOCAL variables (O(1) when none is bound). Errors:
 * CX_EINVAL, CX_ENOMEM, CX_EAGAIN (pthread_create refused). */
CX_EXTERN int cx_thread_create(pthread_t *t, const pthread_attr_t *attr,
                               void *(*fn)(void *), void *arg);
/* As above but the thread runs in ctx itself: ctx is entered on the new
 * thread's behalf before this call returns, so CX_EBUSY (and no thread) if
 * ctx is already entered anywhere. The library holds a reference to ctx
 * until the thread's fn returns. */
CX_EXTERN int cx_thread_create_in(pthread_t *t, const pthread_attr_t *attr,
                                  cx_context *ctx, void *(*fn)(void *), void *arg);

/* --------------------------------------------------------- enter and exit */

/* CPython's PyContext_Enter: makes ctx current in this thread and holds a
 * reference to it until the matching cx_context_exit. CX_EBUSY (nothing
 * changes) if ctx is entered anywhere; CX_EINVAL for NULL; CX_ENOMEM if this
 * thread's state cannot be created. A thread that ends with contexts still
 * entered leaves them (innermost first) and drops their references. */
CX_EXTERN int cx_context_enter(cx_context *ctx);
/* PyContext_Exit: ctx must be this thread's innermost context entered by
 * cx_context_enter (not by a run still in progress), else CX_ECONTEXT and
 * nothing changes. Restores the context that was current before the
 * matching enter and drops the reference enter took. */
CX_EXTERN int cx_context_exit(cx_context *ctx);

/* -------------------------------------------------------------- callbacks */

/* Capture now, run later, in any thread: for executors other than cxpool
 * (docs/integrating.md). cx_bind captures the current context, O(1)
 * (leaving CX_VAR_LOCAL variables out), and returns a new callback
 * reference in *out. CX_EINVAL for NULL out or fn, or unknown flags;
 * CX_ENOMEM (nothing held, *out untouched).
 *   flags == 0:     every run starts from the capture in a private copy;
 *                   runs may overlap; a run's writes are gone when it ends.
 *   CX_BIND_SHARED: all runs share one context; a run sees what the previous
 *                   one wrote; concurrent runs are serialised (a second
 *                   caller waits, without spinning; never CX_EBUSY; the
 *                   wait is not a cancellation point). */
typedef struct cx_callback cx_callback;
#define CX_BIND_SHARED 1u
CX_EXTERN int cx_bind(cx_callback **out, void *(*fn)(void *), void *arg, unsigned flags);
/* fn(arg) in the capture; *result (if result) receives fn's return value.
 * cb is borrowed (the run holds what it needs: fn may release the caller's
 * last reference). CX_EINVAL for NULL; CX_ENOMEM (fn not called) if this
 * thread's state, or the context of a run overlapping another run of cb,
 * cannot be allocated; CX_EBUSY (fn not called) for a CX_BIND_SHARED
 * callback run from inside its own run. */
CX_EXTERN int cx_callback_run(cx_callback *cb, void **result);
/* For executors taking void (*)(void *): runs cb (a cx_callback *) once,
 * as cx_callback_run, then releases the reference the caller handed over
 * with it (consumed; also when fn could not run). NULL is a no-op. */
CX_EXTERN void cx_callback_invoke(void *cb);
CX_EXTERN cx_callback *cx_callback_retain(cx_callback *cb); /* returns cb; NULL: NULL */
/* Drops a reference; the last one releases the capture (owned values are
 * destroyed then, in this thread). NULL is a no-op. */
CX_EXTERN void cx_callback_release(cx_callback *cb);

/* ------------------------------------------------------------------ scopes */

/* A scope is a node of a cancellation tree, carried in the context by a
 * built-in variable: jobs, callbacks and threads started under it inherit
 * it. Scopes are reference counted. */
typedef struct cx_scope cx_scope;
/* A new scope (new reference in *out), child of the current context's scope
 * if any (it keeps its parent alive; born cancelled under a cancelled one).
 * deadline: absolute CLOCK_MONOTONIC, NULL for none of its own (an
 * ancestor's still applies); a time past (even a negative tv_sec) is
 * allowed: expired at once. CX_EINVAL for NULL out or tv_nsec outside
 * 0..999999999; CX_ENOMEM. */
CX_EXTERN int cx_scope_new(cx_scope **out, const struct timespec *deadline);
/* Cancels s and every scope below it; wakes the library's blocked waiters.
 * Idempotent, any thread; s borrowed. CX_EINVAL for NULL. */
CX_EXTERN int cx_scope_cancel(cx_scope *s);
CX_EXTERN void cx_scope_release(cx_scope *s); /* NULL: no-op */
/* The current scope or an ancestor is cancelled or past its deadline. */
CX_EXTERN bool cx_cancelled(void);
/* 0, CX_ECANCELED, or CX_ETIMEDOUT (a deadline on the chain passed);
 * cancelled wins over expired. With no scope bound: 0, one lookup. */
CX_EXTERN int cx_check(void);
/* Earliest deadline on the current chain; CX_ELOOKUP if none. */
CX_EXTERN int cx_deadline(struct timespec *out);
/* now + ms, CLOCK_MONOTONIC (ms < 0: a time past), tv_nsec normalised. */
CX_EXTERN struct timespec cx_deadline_in(long ms);
/* The built-in variable holding the current scope (borrowed, never
 * released). Not meant for direct use: see CX_WITH_SCOPE. */
CX_EXTERN cx_var *cx__scope_var(void);
/* s is the current scope for the block (a CX_WITH of the built-in
 * variable; the block holds its own reference to s, so s may be released
 * inside). CX_WITH_SCOPE(NULL): no scope in the block (detached). */
#define CX_WITH_SCOPE(s) CX_WITH(cx__scope_var(), cx__scope_ref(s))
/* Not API: s with one more reference (NULL for NULL), handed to the
 * binding that CX_WITH_SCOPE makes. */
CX_EXTERN void *cx__scope_ref(cx_scope *s);

/* ---------------------------------------------------------------- watchers */

enum { CX_WATCH_ENTER = 1, CX_WATCH_EXIT, CX_WATCH_SET, CX_WATCH_RESET };
typedef struct cx_watch_event {
    int kind;                /* CX_WATCH_* */
    const cx_context *ctx;   /* entered / left / changed context */
    const cx_var *var;       /* SET, RESET: the variable, else NULL */
    void *old_value, *new_value;
    bool had_old, has_new;
} cx_watch_event;
typedef struct cx_watcher cx_watcher;
/* Registers fn(ev, arg), called in the thread where each event happens:
 * ENTER/EXIT on every switch of a thread's current context (run,
 * enter/exit, pool jobs, thread start and end; fn runs with the entered or
 * left context current), SET/RESET after a successful set/reset of a
 * CX_VAR_WATCHED variable (had_old false when there was no binding: a
 * default is not one; has_new false when a reset removes the variable).
 * Nothing for a refused run/enter/exit or a failed set/reset; events
 * caused inside a callback, in its thread, are not delivered. ev and what
 * it points to are borrowed for the call. *out receives the watcher.
 * CX_EINVAL (NULL out or fn), CX_ENOMEM, CX_EAGAIN (64 registered). With
 * no watcher registered, the hooks cost one predicted load. */
CX_EXTERN int cx_watch_add(cx_watcher **out,
                           void (*fn)(const cx_watch_event *ev, void *arg), void *arg);
/* Unregisters and frees w (NULL: no-op). When it returns, fn runs nowhere
 * and will not run again (it sleeps until the callbacks running in other
 * threads return). From inside a callback it unregisters w at once and
 * the thread finishes the removal when its callback returns. */
CX_EXTERN void cx_watch_remove(cx_watcher *w);

#ifdef __cplusplus
}
#endif
#endif /* CXVARS_H */
