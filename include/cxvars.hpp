/*
 * cxvars.hpp - C++17 layer over cxvars.h, header-only.
 *
 * `#include <cxvars.hpp>` is enough (it includes cxvars.h); link with
 * -lcxvars as for C. Everything lives in namespace cx:
 *
 *   cx::error          the exception this header throws for a CX_E* status
 *   cx::scoped_set     var.set(value) for the lifetime of a block (RAII)
 *   cx::run(ctx, f)    Context.run() for any callable: result and exception
 *   cx::bind(f)        capture the current context now, call f in it later
 *   cx::context        an owning cx_context handle (retain/release)
 *
 * Exceptions and the C frames. The library is C; no C++ exception thrown by
 * a callable of this header ever unwinds through it. cx::run and cx::bind
 * call cx_context_run with a trampoline that catches everything the callable
 * throws into a std::exception_ptr, lets cx_context_run return normally
 * (ctx is left, the previous context is current again) and only then
 * rethrows it: the caller catches the very object that was thrown (same
 * type, same message). The one thing the trampoline lets through is
 * libstdc++'s abi::__forced_unwind (pthread_exit or pthread_cancel acted on
 * inside the callable): swallowing it would abort the process, so it goes
 * on unwinding, through the library's frames, as a pthread_exit from a C
 * callback does.
 *
 * Errors of the C API are reported as cx::error (derived from
 * std::runtime_error): code() is the CX_E* value, what() is
 * cx_strerror(code()), name() is cx_err_name(code()). Nothing here throws
 * anything else of its own; what the callables throw passes through as it is.
 *
 * Copyright (c) 2026 The cxvars authors. BSD-2-Clause, see LICENSE.
 */
#ifndef CXVARS_HPP
#define CXVARS_HPP

#include "cxvars.h"

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#define CX__HPP_FORCED_UNWIND 1
#else
#define CX__HPP_FORCED_UNWIND 0
#endif

namespace cx {

/* ------------------------------------------------------------------ error */

/* A failed call of the C API: code() is its CX_E* status (negative). */
class error : public std::runtime_error {
public:
    explicit error(int code) : std::runtime_error(cx_strerror(code)), code_(code) {}
    int code() const noexcept { return code_; }
    /* The code's name ("CX_EBUSY"): a static string, never NULL. */
    const char *name() const noexcept { return cx_err_name(code_); }

private:
    int code_;
};

/* ---------------------------------------------------------------- context */

/* Owns one reference to a cx_context (or nothing). Copying retains, the
 * destructor releases: the reference is released exactly once, by the last
 * holder, in whichever thread that is. Not synchronised itself: one handle
 * object is used by one thread at a time (copies may go to other threads). */
class context {
public:
    context() noexcept = default; /* holds nothing */

    /* Takes over a reference the caller owns (e.g. cx_copy_context's). */
    static context adopt(cx_context *ctx) noexcept
    {
        context c;
        c.p_ = ctx;
        return c;
    }
    /* Takes a new reference to ctx (which stays the caller's too). */
    static context retain(cx_context *ctx) noexcept
    {
        return adopt(ctx != nullptr ? cx_context_retain(ctx) : nullptr);
    }
    /* Context(): a new empty context. Throws cx::error(CX_ENOMEM). */
    static context make_new() { return checked(cx_context_new()); }
    /* copy_context(): a copy of this thread's current context, O(1).
     * Throws cx::error(CX_ENOMEM). */
    static context copy_current() { return checked(cx_copy_context()); }
    /* Context.copy(): a new context with this one's bindings. Throws
     * cx::error: CX_EINVAL if this handle is empty, CX_ENOMEM. */
    context copy() const
    {
        if (p_ == nullptr)
            throw error(CX_EINVAL);
        return checked(cx_context_copy(p_));
    }

    context(const context &o) noexcept : p_(o.p_ != nullptr ? cx_context_retain(o.p_) : nullptr) {}
    context(context &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    context &operator=(context o) noexcept
    {
        std::swap(p_, o.p_);
        return *this;
    }
    ~context() { cx_context_release(p_); }

    /* Borrowed: valid while this handle holds it. */
    cx_context *get() const noexcept { return p_; }
    /* Hands the reference to the caller (who must release it); the handle
     * is empty afterwards. */
    cx_context *detach() noexcept { return std::exchange(p_, nullptr); }
    explicit operator bool() const noexcept { return p_ != nullptr; }

private:
    static context checked(cx_context *fresh)
    {
        if (fresh == nullptr)
            throw error(CX_ENOMEM);
        return adopt(fresh);
    }
    cx_context *p_ = nullptr;
};

/* ------------------------------------------------------------- scoped_set */

/* `cx::scoped_set s(var, value);` sets var to value in the current context
 * and resets it (cx_var_reset with the token of that set) when s goes out
 * of scope, also when the scope is left by an exception. Scopes nest; the
 * resets then run innermost first, as destructors do.
 *
 * A failed set throws cx::error (CX_EINVAL for a NULL var, CX_ENOMEM) and
 * changes nothing. Ownership, for a variable with a destroy callback: a
 * successful set hands the value to the library (it is destroyed once no
 * context or token holds it, which the reset at scope end brings about);
 * a failed set leaves it with the caller, as in C: free it in the handler.
 *
 * The destructor cannot report a failed reset; the reset fails only if s is
 * destroyed in another context than the one it was made in (the block
 * entered a context and did not leave it: a bug) or, in rare cases, for
 * lack of memory (see cx_var_reset). The binding then stays.
 *
 * Write it as a named object: `cx::scoped_set(var, value);` alone is a
 * temporary that resets at the end of that statement. Neither copyable nor
 * movable. */
class scoped_set {
public:
    scoped_set(cx_var *var, void *value) : var_(var)
    {
        int rc = cx_var_set(var, value, &tok_);
        if (rc != 0)
            throw error(rc);
    }
    ~scoped_set()
    {
        (void)cx_var_reset(var_, tok_);
        cx_token_release(tok_);
    }
    scoped_set(const scoped_set &) = delete;
    scoped_set &operator=(const scoped_set &) = delete;

    /* The set's token, borrowed: valid while s lives (old value:
     * cx_token_old_value). Do not reset it yourself. */
    cx_token *token() const noexcept { return tok_; }

private:
    cx_var *var_;
    cx_token *tok_ = nullptr;
};

/* -------------------------------------------------------------------- run */

namespace detail {

/* Holds a callable's result across the C frames of cx_context_run: a value
 * (std::optional, so move-only types work), a reference (a pointer), or
 * nothing. */
template <class R>
struct result_slot {
    std::optional<R> v;
    template <class F>
    void fill(F &&f)
    {
        v.emplace(std::invoke(std::forward<F>(f)));
    }
    R take() { return std::move(*v); }
};
template <class R>
struct result_slot<R &> {
    R *p = nullptr;
    template <class F>
    void fill(F &&f)
    {
        p = std::addressof(std::invoke(std::forward<F>(f)));
    }
    R &take() { return *p; }
};
template <class R>
struct result_slot<R &&> {
    R *p = nullptr;
    template <class F>
    void fill(F &&f)
    {
        R &&r = std::invoke(std::forward<F>(f));
        p = std::addressof(r);
    }
    R &&take() { return std::move(*p); }
};
template <>
struct result_slot<void> {
    template <class F>
    void fill(F &&f)
    {
        std::invoke(std::forward<F>(f));
    }
    void take() {}
};

/* One cx::run call: the callable (borrowed from run's caller), where its
 * result goes, and what it threw. Lives in run's stack frame. */
template <class F>
struct run_frame {
    using result_type = std::invoke_result_t<F>;
    F &&fn;
    result_slot<result_type> result;
    std::exception_ptr exc;
};

/* The function cx_context_run calls. Nothing thrown by the callable leaves
 * it except a forced unwind (thread exit or cancellation), which must not be
 * swallowed. */
template <class F>
void *trampoline(void *arg)
{
    run_frame<F> *fr = static_cast<run_frame<F> *>(arg);
    try {
        fr->result.fill(std::forward<F>(fr->fn));
    }
#if CX__HPP_FORCED_UNWIND
    catch (abi::__forced_unwind &) {
        throw;
    }
#endif
    catch (...) {
        fr->exc = std::current_exception();
    }
    return nullptr;
}

} // namespace detail

/* Context.run(): makes ctx current in this thread, calls fn(), makes the
 * previous context current again, returns fn's result (a value, also of a
 * move-only type; a reference; or void). ctx is borrowed: keep it alive
 * until run returns. Everything fn sets stays in ctx.
 *
 * If fn throws, run rethrows that same exception object (type and message
 * intact) once ctx is left and the previous context is current again: the
 * catch site, and every destructor on the way to it, runs in the caller's
 * context, and ctx can be entered again.
 *
 * If the run is refused, fn is not called and run throws cx::error:
 * CX_EBUSY (ctx is entered, by this thread or another), CX_EINVAL (NULL
 * ctx), CX_ENOMEM (this thread's state could not be allocated). */
template <class F>
std::invoke_result_t<F> run(cx_context *ctx, F &&fn)
{
    detail::run_frame<F> fr{std::forward<F>(fn), {}, {}};
    int rc = cx_context_run(ctx, &detail::trampoline<F>, &fr, nullptr);
    if (rc != 0)
        throw error(rc);
    if (fr.exc)
        std::rethrow_exception(fr.exc);
    return fr.result.take();
}

/* The same, in the context a handle holds (CX_EINVAL if it is empty). */
template <class F>
std::invoke_result_t<F> run(const context &ctx, F &&fn)
{
    return cx::run(ctx.get(), std::forward<F>(fn));
}

/* ------------------------------------------------------------------- bind */

/* What cx::bind returns: a callable holding a copy of fn and a reference to
 * the context captured at bind time (a cx::context: copies of the bound
 * object share the capture; the last one releases it, exactly once).
 *
 * Each call makes a private copy of the capture (cx_context_copy, O(1)),
 * runs fn(args...) in it through cx::run and releases it: every call starts
 * from the bind-time values, what a call sets is gone when it returns, and
 * calls may run at the same time in several threads (like cx_bind's default
 * mode). The result is returned and an exception rethrown as cx::run does,
 * after the caller's context is current again. Throws cx::error(CX_ENOMEM)
 * if the copy cannot be made, CX_EINVAL if the object was moved from.
 *
 * fn is called as an lvalue (const if the bound object is const). Calls
 * that overlap on one bound object share that object's fn: give each
 * thread its own copy of the bound object if fn has state it changes. */
template <class F>
class bound {
public:
    bound(F fn, context capture) : fn_(std::move(fn)), capture_(std::move(capture)) {}

    template <class... A>
    std::invoke_result_t<F &, A...> operator()(A &&...args)
    {
        return call(fn_, std::forward<A>(args)...);
    }
    template <class... A>
    std::invoke_result_t<const F &, A...> operator()(A &&...args) const
    {
        return call(fn_, std::forward<A>(args)...);
    }

    /* The capture, borrowed (e.g. for cx_context_get). */
    cx_context *captured() const noexcept { return capture_.get(); }

private:
    template <class G, class... A>
    std::invoke_result_t<G &, A...> call(G &fn, A &&...args) const
    {
        context run_in = capture_.copy(); /* released after the run */
        return cx::run(run_in.get(), [&]() -> decltype(auto) {
            return std::invoke(fn, std::forward<A>(args)...);
        });
    }

    F fn_;
    context capture_;
};

/* Captures the current context now (cx_copy_context: every variable,
 * CX_VAR_LOCAL ones included) and returns a callable that runs fn later,
 * in any thread, in a private copy of that capture; see cx::bound.
 * Throws cx::error(CX_ENOMEM) if the capture cannot be made. */
template <class F>
bound<std::decay_t<F>> bind(F &&fn)
{
    context capture = context::copy_current();
    return bound<std::decay_t<F>>(std::forward<F>(fn), std::move(capture));
}

} // namespace cx

#undef CX__HPP_FORCED_UNWIND
#endif /* CXVARS_HPP */
