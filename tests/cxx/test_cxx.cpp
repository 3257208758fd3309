/* test_cxx.cpp - the C++ layer (include/cxvars.hpp): cx::scoped_set,
 * cx::run, cx::bind, cx::context, cx::error.
 *
 * A plain program (no test framework): every CHECK that fails prints its
 * place and the run ends with exit status 1. Checks run on the main thread
 * only; worker threads record what they saw in a struct that the main
 * thread reads after pthread_join. Built with g++ and clang++ (C++17) by
 * tests/cxx/cxx.mk.
 *
 * Allocation failure is injected through cx_set_allocator on fresh threads
 * (their per-thread state cannot be allocated, so the first call fails with
 * CX_ENOMEM whatever the library's reserves), while no other thread runs.
 */
#include <cxvars.hpp> /* first: it must stand on its own */

#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

/* ================================================================ harness */

static int failures;
static const char *current_test = "";

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            std::fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__,  \
                         __LINE__, current_test, #cond);                     \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define RUN(test)                                                            \
    do {                                                                     \
        int before_ = failures;                                              \
        current_test = #test;                                                \
        test();                                                              \
        std::printf("%s %s\n", failures == before_ ? "ok  " : "FAIL", #test); \
    } while (0)

static void *tag(uintptr_t n) { return reinterpret_cast<void *>(n); }

static cx_var *V, *W, *OWNED;

/* The value of var in the current context, NULL if it has none. */
static void *cur(cx_var *var) { return cx_var_get_or(var, nullptr); }

static std::atomic<int> destroyed{0};
static void destroy_int(void *p)
{
    destroyed.fetch_add(1);
    delete static_cast<int *>(p);
}

/* Every allocation of the library; fails while fail_alloc is set. */
static std::atomic<bool> fail_alloc{false};
static void *test_malloc(size_t n) { return fail_alloc.load() ? nullptr : std::malloc(n); }
static void test_free(void *p) { std::free(p); }

/* Runs body() on a new plain pthread (which starts in an empty context) and
 * joins it. body must not throw. */
template <class F>
static void in_thread(F &body)
{
    pthread_t t;
    int rc = pthread_create(
        &t, nullptr,
        [](void *arg) -> void * {
            (*static_cast<F *>(arg))();
            return nullptr;
        },
        &body);
    CHECK(rc == 0);
    if (rc == 0)
        pthread_join(t, nullptr);
}

/* As in_thread, with allocation failing for the thread's whole life. */
template <class F>
static void in_thread_without_memory(F &body)
{
    fail_alloc.store(true);
    in_thread(body);
    fail_alloc.store(false);
}

/* An exception type of the test's own, with a payload. */
struct my_error : std::runtime_error {
    my_error(const std::string &msg, int v) : std::runtime_error(msg), value(v) {}
    int value;
};

static void *noop(void *arg) { return arg; }

/* ============================================================ scoped_set */

static void scoped_set_sets_and_resets_at_scope_end()
{
    void *out = nullptr;
    CHECK(cx_var_get(V, &out) == CX_ELOOKUP);
    {
        cx::scoped_set s(V, tag(1));
        CHECK(cur(V) == tag(1));
        void *old = tag(99);
        CHECK(cx_token_old_value(s.token(), &old) == CX_ELOOKUP); /* MISSING */
        CHECK(!cx_token_used(s.token()));
    }
    CHECK(cx_var_get(V, &out) == CX_ELOOKUP); /* removed again */
}

static void scoped_set_nested_restores_each_level()
{
    {
        cx::scoped_set a(V, tag(1));
        {
            cx::scoped_set b(V, tag(2));
            cx::scoped_set c(W, tag(3));
            CHECK(cur(V) == tag(2));
            CHECK(cur(W) == tag(3));
            void *old = nullptr;
            CHECK(cx_token_old_value(b.token(), &old) == 0 && old == tag(1));
        }
        CHECK(cur(V) == tag(1));
        CHECK(cur(W) == nullptr);
    }
    CHECK(cur(V) == nullptr);
}

static void scoped_set_exception_unwinding_restores()
{
    cx::scoped_set outer(V, tag(1));
    bool caught = false;
    try {
        cx::scoped_set a(V, tag(2));
        cx::scoped_set b(W, tag(3));
        throw my_error("unwind", 5);
    } catch (const my_error &e) {
        caught = true;
        CHECK(cur(V) == tag(1)); /* both resets ran during unwinding */
        CHECK(cur(W) == nullptr);
    }
    CHECK(caught);
    CHECK(cur(V) == tag(1));
}

static void scoped_set_failed_set_throws_cx_error()
{
    bool caught = false;
    try {
        cx::scoped_set s(nullptr, tag(1));
    } catch (const cx::error &e) {
        caught = true;
        CHECK(e.code() == CX_EINVAL);
        CHECK(std::strcmp(e.what(), cx_strerror(CX_EINVAL)) == 0);
        CHECK(std::strcmp(e.name(), "CX_EINVAL") == 0);
    }
    CHECK(caught);
    static_assert(std::is_base_of_v<std::runtime_error, cx::error>);
    static_assert(!std::is_copy_constructible_v<cx::scoped_set>);
    static_assert(!std::is_copy_assignable_v<cx::scoped_set>);
}

/* A value of a variable with a destroy callback: the library owns it after
 * a successful set and destroys it at the reset; a failed set leaves it with
 * the caller (nothing destroyed). */
static void scoped_set_owned_value_ownership()
{
    int before = destroyed.load();
    {
        cx::scoped_set s(OWNED, new int(7));
        CHECK(*static_cast<int *>(cur(OWNED)) == 7);
        CHECK(destroyed.load() == before);
    }
    CHECK(destroyed.load() == before + 1); /* the reset dropped the last holder */

    struct {
        int code = 0;
        bool threw_other = false;
        int *value = nullptr;
    } rec;
    auto body = [&] {
        rec.value = new int(8);
        try {
            cx::scoped_set s(OWNED, rec.value);
        } catch (const cx::error &e) {
            rec.code = e.code();
        } catch (...) {
            rec.threw_other = true;
        }
    };
    in_thread_without_memory(body);
    CHECK(rec.code == CX_ENOMEM);
    CHECK(!rec.threw_other);
    CHECK(destroyed.load() == before + 1); /* still the caller's */
    delete rec.value;
}

/* =================================================================== run */

static void run_returns_the_result_inside_ctx()
{
    cx::scoped_set outer(V, tag(1));
    cx::context ctx = cx::context::make_new();
    void *seen = tag(99);
    int r = cx::run(ctx, [&] {
        seen = cur(V); /* ctx is empty: V unset */
        return 42;
    });
    CHECK(r == 42);
    CHECK(seen == nullptr);
    CHECK(cur(V) == tag(1));
}

static void run_void_callable()
{
    cx::context ctx = cx::context::make_new();
    bool called = false;
    auto nothing = [] {};
    static_assert(std::is_void_v<decltype(cx::run(ctx, nothing))>);
    cx::run(ctx, [&] { called = true; });
    CHECK(called);
}

static void run_move_only_result_and_callable()
{
    cx::context ctx = cx::context::make_new();
    std::unique_ptr<int> p = cx::run(ctx, [] { return std::make_unique<int>(7); });
    CHECK(p != nullptr && *p == 7);

    auto owner = std::make_unique<int>(8);
    std::unique_ptr<int> q =
        cx::run(ctx.get(), [o = std::move(owner)]() mutable { return std::move(o); });
    CHECK(q != nullptr && *q == 8);
}

static void run_reference_result()
{
    cx::context ctx = cx::context::make_new();
    int x = 1;
    int &r = cx::run(ctx, [&]() -> int & { return x; });
    CHECK(&r == &x);
}

static void run_writes_stay_in_ctx()
{
    cx::scoped_set outer(V, tag(1));
    cx::context ctx = cx::context::make_new();
    cx::run(ctx, [] { CHECK(cx_var_set(V, tag(2), nullptr) == 0); });
    CHECK(cur(V) == tag(1));
    void *in_ctx = nullptr;
    CHECK(cx_context_get(ctx.get(), V, &in_ctx) == 0 && in_ctx == tag(2));
    void *seen = cx::run(ctx, [] { return cur(V); }); /* entered again */
    CHECK(seen == tag(2));
}

/* The exception reaches the catch site as thrown, after ctx is left: the
 * previous context is current there, ctx can be entered again and keeps
 * what the callable set before throwing (and not what a scoped_set inside
 * it had set: that was reset, in ctx, during the unwinding). */
static void run_exception_intact_after_leaving_ctx()
{
    cx::scoped_set outer(V, tag(1));
    cx::context ctx = cx::context::make_new();
    bool caught = false;
    try {
        cx::run(ctx, [&]() -> int {
            CHECK(cx_var_set(V, tag(2), nullptr) == 0);
            cx::scoped_set inner(W, tag(3));
            throw my_error("boom in ctx", 17);
        });
    } catch (const my_error &e) {
        caught = true;
        CHECK(std::string(e.what()) == "boom in ctx");
        CHECK(e.value == 17);
        CHECK(cur(V) == tag(1)); /* the previous context is current */
        CHECK(cx_context_run(ctx.get(), noop, nullptr, nullptr) == 0); /* ctx left */
    }
    CHECK(caught);
    void *in_ctx = nullptr;
    CHECK(cx_context_get(ctx.get(), V, &in_ctx) == 0 && in_ctx == tag(2));
    CHECK(!cx_context_contains(ctx.get(), W));

    /* Not derived from std::exception, and the same object is rethrown. */
    const int *object = nullptr;
    caught = false;
    try {
        cx::run(ctx, [&] {
            try {
                throw 42;
            } catch (int &i) {
                object = &i;
                throw;
            }
        });
    } catch (int &i) {
        caught = true;
        CHECK(i == 42);
        CHECK(&i == object);
        CHECK(cur(V) == tag(1));
    }
    CHECK(caught);
    CHECK(cx::run(ctx, [] { return cur(V); }) == tag(2));
}

/* Nested runs: an exception from the inner one is caught in the outer
 * context, then rethrown from the outer one and caught in the caller's. */
static void run_nested_exception_restores_each_level()
{
    cx::scoped_set outer(V, tag(1));
    cx::context a = cx::context::make_new();
    cx::context b = cx::context::make_new();
    cx::run(a, [] { CHECK(cx_var_set(V, tag(2), nullptr) == 0); });
    bool caught_in_a = false, caught_outside = false;
    try {
        cx::run(a, [&] {
            try {
                cx::run(b, [] { throw std::logic_error("from b"); });
            } catch (const std::logic_error &) {
                caught_in_a = true;
                CHECK(cur(V) == tag(2));
                throw;
            }
        });
    } catch (const std::logic_error &e) {
        caught_outside = true;
        CHECK(std::string(e.what()) == "from b");
        CHECK(cur(V) == tag(1));
    }
    CHECK(caught_in_a);
    CHECK(caught_outside);
}

static void run_refused_throws_cx_error_and_calls_nothing()
{
    cx::scoped_set outer(V, tag(1));
    cx::context ctx = cx::context::make_new();
    bool inner_called = false;
    int code = 0;
    try {
        cx::run(ctx, [&] { cx::run(ctx, [&] { inner_called = true; }); });
    } catch (const cx::error &e) {
        code = e.code();
        CHECK(cur(V) == tag(1));
    }
    CHECK(code == CX_EBUSY);
    CHECK(!inner_called);
    CHECK(cx_context_run(ctx.get(), noop, nullptr, nullptr) == 0);

    code = 0;
    try {
        cx::run(static_cast<cx_context *>(nullptr), [&] { inner_called = true; });
    } catch (const cx::error &e) {
        code = e.code();
    }
    CHECK(code == CX_EINVAL);

    code = 0;
    try {
        cx::run(cx::context(), [&] { inner_called = true; }); /* empty handle */
    } catch (const cx::error &e) {
        code = e.code();
    }
    CHECK(code == CX_EINVAL);
    CHECK(!inner_called);

    struct {
        int code = 0;
        bool called = false;
    } rec;
    auto body = [&] {
        try {
            cx::run(ctx, [&] { rec.called = true; });
        } catch (const cx::error &e) {
            rec.code = e.code();
        }
    };
    in_thread_without_memory(body); /* no thread state: CX_ENOMEM */
    CHECK(rec.code == CX_ENOMEM);
    CHECK(!rec.called);
    CHECK(cx_context_run(ctx.get(), noop, nullptr, nullptr) == 0);
}

/* ================================================================== bind */

static void bind_captures_at_bind_time()
{
    cx::scoped_set outer(V, tag(1));
    auto cb = cx::bind([] { return cur(V); });
    cx::scoped_set later(V, tag(2));
    CHECK(cb() == tag(1));
    CHECK(cur(V) == tag(2));
    void *captured = nullptr;
    CHECK(cx_context_get(cb.captured(), V, &captured) == 0 && captured == tag(1));
}

static void bind_runs_in_any_thread()
{
    cx::scoped_set outer(V, tag(1));
    auto cb = cx::bind([](uintptr_t add) { return reinterpret_cast<uintptr_t>(cur(V)) + add; });
    struct {
        uintptr_t got = 0;
        void *before = tag(99), *after = tag(99), *own_after = tag(99);
        bool threw = false;
    } rec;
    auto body = [&, cb] { /* a copy of cb goes to the thread */
        rec.before = cur(V); /* a plain thread: empty context */
        try {
            rec.got = cb(10);
            rec.after = cur(V);
            cx_var_set(W, tag(5), nullptr);
            cb(0);
            rec.own_after = cur(W); /* its own context is current again */
        } catch (...) {
            rec.threw = true;
        }
    };
    in_thread(body);
    CHECK(!rec.threw);
    CHECK(rec.before == nullptr);
    CHECK(rec.got == 11);
    CHECK(rec.after == nullptr);
    CHECK(rec.own_after == tag(5));
}

static void bind_each_call_in_a_private_copy()
{
    cx::scoped_set outer(V, tag(1));
    auto cb = cx::bind([] {
        void *before = cur(V);
        CHECK(cx_var_set(V, tag(50), nullptr) == 0);
        return before;
    });
    CHECK(cb() == tag(1));
    CHECK(cb() == tag(1)); /* the first call's write is gone */
    void *captured = nullptr;
    CHECK(cx_context_get(cb.captured(), V, &captured) == 0 && captured == tag(1));
    CHECK(cur(V) == tag(1));
}

/* Two threads call one bound object at the same time: each is inside its
 * own copy (no CX_EBUSY), each sees its own write. Each call waits, inside,
 * until the other call is inside too; a thread whose call fails says so on
 * its semaphore so that the other does not wait forever. */
namespace overlap {
struct rec {
    sem_t inside;
    bool failed = false;
    void *seen = nullptr;
};
static rec recs[2];
}

static void bind_calls_overlap_in_threads()
{
    using overlap::recs;
    for (auto &r : recs) {
        sem_init(&r.inside, 0, 0);
        r.failed = false;
        r.seen = nullptr;
    }
    const auto cb = cx::bind([](int i) {
        if (cx_var_set(V, tag(100 + static_cast<uintptr_t>(i)), nullptr) != 0)
            throw std::runtime_error("set failed"); /* recorded as failed */
        sem_post(&recs[i].inside);
        sem_wait(&recs[1 - i].inside);
        return cur(V);
    });
    struct arg {
        const decltype(cb) *bound;
        int i;
    } args[2] = {{&cb, 0}, {&cb, 1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        int rc = pthread_create(
            &t[i], nullptr,
            [](void *p) -> void * {
                arg *a = static_cast<arg *>(p);
                try {
                    recs[a->i].seen = (*a->bound)(a->i);
                } catch (...) {
                    recs[a->i].failed = true;
                    sem_post(&recs[a->i].inside);
                }
                return nullptr;
            },
            &args[i]);
        CHECK(rc == 0);
        if (rc != 0)
            std::exit(1); /* the other thread would wait forever */
    }
    for (pthread_t th : t)
        pthread_join(th, nullptr);
    for (int i = 0; i < 2; i++) {
        CHECK(!recs[i].failed);
        CHECK(recs[i].seen == tag(100 + static_cast<uintptr_t>(i)));
        sem_destroy(&recs[i].inside);
    }
}

static void bind_exception_propagates()
{
    cx::scoped_set outer(V, tag(1));
    auto cb = cx::bind([] {
        if (cx_var_set(V, tag(2), nullptr) != 0) /* runs in a thread too */
            throw std::runtime_error("set failed");
        throw my_error("from bound", 23);
    });
    bool caught = false;
    try {
        cb();
    } catch (const my_error &e) {
        caught = true;
        CHECK(std::string(e.what()) == "from bound");
        CHECK(e.value == 23);
        CHECK(cur(V) == tag(1));
    }
    CHECK(caught);

    struct {
        std::string what;
        int value = 0;
        void *after = tag(99);
    } rec;
    auto body = [&] {
        try {
            cb();
        } catch (const my_error &e) {
            rec.what = e.what();
            rec.value = e.value;
            rec.after = cur(V);
        } catch (...) {
        }
    };
    in_thread(body);
    CHECK(rec.what == "from bound");
    CHECK(rec.value == 23);
    CHECK(rec.after == nullptr); /* the thread's own (empty) context */
}

/* The capture is shared by the copies of a bound object and released once,
 * by the last: an owned value held only by the capture is destroyed then,
 * exactly once. */
static void bind_capture_released_exactly_once()
{
    int before = destroyed.load();
    auto make = [] {
        cx::scoped_set s(OWNED, new int(9));
        return cx::bind([] { return *static_cast<int *>(cur(OWNED)); });
    };
    {
        auto cb = make();
        CHECK(destroyed.load() == before); /* the capture holds it */
        {
            auto copy = cb;
            CHECK(copy() == 9);
            CHECK(cx_context_len(copy.captured()) == 1);
        }
        CHECK(destroyed.load() == before);
        auto moved = std::move(cb);
        CHECK(moved() == 9);
        int code = 0;
        try {
            cb(); /* moved from: no capture */
        } catch (const cx::error &e) {
            code = e.code();
        }
        CHECK(code == CX_EINVAL);
        CHECK(destroyed.load() == before);
    }
    CHECK(destroyed.load() == before + 1);
}

static void bind_out_of_memory_throws()
{
    struct {
        int bind_code = 0, call_code = 0;
        bool called = false;
    } rec;
    auto bind_body = [&] {
        try {
            auto cb = cx::bind([&] { rec.called = true; });
        } catch (const cx::error &e) {
            rec.bind_code = e.code();
        }
    };
    in_thread_without_memory(bind_body);
    CHECK(rec.bind_code == CX_ENOMEM);

    auto cb = cx::bind([&] { rec.called = true; });
    auto call_body = [&] {
        try {
            cb();
        } catch (const cx::error &e) {
            rec.call_code = e.code();
        }
    };
    in_thread_without_memory(call_body);
    CHECK(rec.call_code == CX_ENOMEM);
    CHECK(!rec.called);
    cb();
    CHECK(rec.called);
}

/* =============================================================== context */

static void context_handle_owns_one_reference()
{
    int before = destroyed.load();
    cx::context a = cx::context::make_new();
    cx::run(a, [] { CHECK(cx_var_set(OWNED, new int(1), nullptr) == 0); });
    {
        cx::context b = a; /* retain */
        cx::context c = cx::context::retain(a.get());
        cx::context d = std::move(c);
        CHECK(!c);
        CHECK(d.get() == a.get());
        cx::context e = a.copy(); /* a new context, same bindings */
        CHECK(e.get() != a.get());
        CHECK(cx_context_equal(e.get(), a.get()));
    }
    CHECK(destroyed.load() == before);
    cx_context *raw = a.detach();
    CHECK(!a);
    cx::context back = cx::context::adopt(raw);
    CHECK(destroyed.load() == before);
    back = cx::context();
    CHECK(destroyed.load() == before + 1);

    int code = 0;
    try {
        (void)back.copy();
    } catch (const cx::error &e) {
        code = e.code();
    }
    CHECK(code == CX_EINVAL);

    cx::scoped_set s(V, tag(4));
    cx::context snap = cx::context::copy_current();
    CHECK(cx::run(snap, [] { return cur(V); }) == tag(4));
}

/* ================================================================== main */

int main()
{
    cx_allocator alloc = {test_malloc, test_free};
    if (cx_set_allocator(&alloc) != 0)
        return 1;
    cx_var_opts owned = {};
    owned.destroy = destroy_int;
    if (cx_var_new(&V, "V", nullptr) != 0 || cx_var_new(&W, "W", nullptr) != 0 ||
        cx_var_new(&OWNED, "OWNED", &owned) != 0)
        return 1;

    RUN(scoped_set_sets_and_resets_at_scope_end);
    RUN(scoped_set_nested_restores_each_level);
    RUN(scoped_set_exception_unwinding_restores);
    RUN(scoped_set_failed_set_throws_cx_error);
    RUN(scoped_set_owned_value_ownership);
    RUN(run_returns_the_result_inside_ctx);
    RUN(run_void_callable);
    RUN(run_move_only_result_and_callable);
    RUN(run_reference_result);
    RUN(run_writes_stay_in_ctx);
    RUN(run_exception_intact_after_leaving_ctx);
    RUN(run_nested_exception_restores_each_level);
    RUN(run_refused_throws_cx_error_and_calls_nothing);
    RUN(bind_captures_at_bind_time);
    RUN(bind_runs_in_any_thread);
    RUN(bind_each_call_in_a_private_copy);
    RUN(bind_calls_overlap_in_threads);
    RUN(bind_exception_propagates);
    RUN(bind_capture_released_exactly_once);
    RUN(bind_out_of_memory_throws);
    RUN(context_handle_owns_one_reference);

    cx_var_release(V);
    cx_var_release(W);
    cx_var_release(OWNED);
    std::printf("test_cxx: %s\n", failures == 0 ? "all passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
