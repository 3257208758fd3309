/* test_cxx_unwind.cpp - unwinding through the library's C frames (SPEC
 * 5.1): cx_context_run leaves its context and restores the previous one
 * when a C++ exception, a pthread_exit or a pthread_cancel unwinds through
 * it. Needs a library built with -fexceptions that leaves the context from
 * a cleanup handler.
 *
 *   - an exception thrown by a plain C-style callback given to
 *     cx_context_run directly (no cx::run trampoline in between);
 *   - pthread_exit and pthread_cancel inside cx::run: the trampoline lets
 *     the forced unwind through (swallowing it would abort the process) and
 *     the library leaves the context on the way out of the thread.
 *
 * After each: the previous context is current again (where that can be
 * seen), the context can be entered again and holds what the callback set.
 * Plain program; checks on the main thread only; exit status 1 on failure.
 */
#include <cxvars.hpp>

#include <pthread.h>
#include <semaphore.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

static int failures;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                         #cond);                                                 \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static cx_var *V;
static void *tag(uintptr_t n) { return reinterpret_cast<void *>(n); }
static void *cur(cx_var *var) { return cx_var_get_or(var, nullptr); }

struct my_error : std::runtime_error {
    my_error(const std::string &msg, int v) : std::runtime_error(msg), value(v) {}
    int value;
};

extern "C" {
static void *noop(void *arg) { return arg; }

/* A callback as a C program would pass it, except that it throws. */
static void *set_and_throw(void *arg)
{
    if (cx_var_set(V, arg, nullptr) != 0)
        return nullptr; /* the catch site then sees no exception */
    throw my_error("through the C frames", 31);
}
}

static bool entered_again_and_holds(cx_context *ctx, void *value)
{
    void *in_ctx = nullptr;
    return cx_context_run(ctx, noop, nullptr, nullptr) == 0 &&
           cx_context_get(ctx, V, &in_ctx) == 0 && in_ctx == value;
}

static void exception_through_cx_context_run()
{
    cx_token *tok = nullptr;
    CHECK(cx_var_set(V, tag(1), &tok) == 0);
    cx_context *ctx = cx_context_new();
    CHECK(ctx != nullptr);
    bool caught = false;
    try {
        (void)cx_context_run(ctx, set_and_throw, tag(2), nullptr);
    } catch (const my_error &e) {
        caught = true;
        CHECK(std::string(e.what()) == "through the C frames");
        CHECK(e.value == 31);
        CHECK(cur(V) == tag(1)); /* the previous context is current again */
    }
    CHECK(caught);
    bool left = entered_again_and_holds(ctx, tag(2));
    CHECK(left);
    CHECK(cx_var_reset(V, tok) == 0); /* and it is the same context as before */
    cx_token_release(tok);
    if (left) /* else it is still current here: keep it alive */
        cx_context_release(ctx);
}

/* A thread that ends inside cx::run, by pthread_exit or by cancellation. */
struct ending {
    cx_context *ctx;
    bool cancel;
    sem_t started;
    bool after_run = false; /* must stay false: the thread ends in the run */
};

static void *ending_thread(void *p)
{
    ending *e = static_cast<ending *>(p);
    cx::run(e->ctx, [e] {
        if (cx_var_set(V, tag(7), nullptr) != 0)
            return;
        if (!e->cancel)
            pthread_exit(tag(77));
        sem_post(&e->started);
        sem_t never;
        sem_init(&never, 0, 0);
        sem_wait(&never); /* a cancellation point, acted on here */
    });
    e->after_run = true;
    return nullptr;
}

static void thread_end_inside_cx_run(bool cancel)
{
    ending e;
    e.ctx = cx_context_new();
    e.cancel = cancel;
    sem_init(&e.started, 0, 0);
    CHECK(e.ctx != nullptr);
    pthread_t t;
    if (pthread_create(&t, nullptr, ending_thread, &e) != 0) {
        CHECK(!"pthread_create");
        return;
    }
    if (cancel) {
        sem_wait(&e.started);
        pthread_cancel(t);
    }
    void *ret = nullptr;
    pthread_join(t, &ret);
    CHECK(ret == (cancel ? PTHREAD_CANCELED : tag(77)));
    CHECK(!e.after_run);
    bool left = entered_again_and_holds(e.ctx, tag(7));
    CHECK(left);
    sem_destroy(&e.started);
    if (left) /* else it is still marked entered: keep it alive */
        cx_context_release(e.ctx);
}

int main()
{
    if (cx_var_new(&V, "V", nullptr) != 0)
        return 1;
    exception_through_cx_context_run();
    thread_end_inside_cx_run(false);
    thread_end_inside_cx_run(true);
    cx_var_release(V);
    std::printf("test_cxx_unwind: %s\n", failures == 0 ? "all passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
