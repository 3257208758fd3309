/* main_exit.c - values held only by the main thread's contexts are
 * destroyed at normal process exit (SPEC 5.1): destroy callbacks that
 * flush or close things run, and leak checkers report nothing.
 *
 * For each way of ending, the parent forks a child that sets owned values
 * in its main thread's context, releases its own variable references, and
 * ends; each destroy callback writes the value's byte to a pipe. The
 * parent reads the pipe to the end and checks that every byte came exactly
 * once, and that the child exited with status 0 (under memcheck with
 * --error-exitcode, a leak in the child makes that status non-zero).
 *
 *   return  the child returns from main                      expects "ab"
 *   exit    the child calls exit(0) from a nested function   expects "ab"
 *   enter   as return, with a third value set in a context the child
 *           entered with cx_context_enter and never left (its own
 *           reference released: enter's is the last)         expects "abe"
 *
 * Modes may be named on the command line (default: all). Exit status 0 if
 * every mode passed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cx_wait.h"
#include "cxvars.h"

static int pipe_fd = -1; /* the child's write end */

static void write_byte(void *v)
{
    char c = (char)(uintptr_t)v;
    ssize_t w;
    do {
        w = write(pipe_fd, &c, 1);
    } while (w < 0 && errno == EINTR);
}

enum mode { M_RETURN, M_EXIT, M_ENTER, M_COUNT };
static const char *const mode_name[M_COUNT] = {"return", "exit", "enter"};
static const char *const expected[M_COUNT] = {"ab", "ab", "abe"};

/* In the child: bind the values; false on a library error. */
static bool child_setup(enum mode m)
{
    cx_var_opts o = {.destroy = write_byte};
    cx_var *a = NULL, *b = NULL, *e = NULL;
    if (cx_var_new(&a, "a", &o) != 0 || cx_var_new(&b, "b", &o) != 0 ||
        cx_var_new(&e, "e", &o) != 0)
        return false;
    if (cx_var_set(a, (void *)(uintptr_t)'a', NULL) != 0 ||
        cx_var_set(b, (void *)(uintptr_t)'b', NULL) != 0)
        return false;
    if (m == M_ENTER) {
        cx_context *c = cx_context_new();
        if (c == NULL || cx_context_enter(c) != 0)
            return false;
        cx_context_release(c); /* enter's reference is the last */
        if (cx_var_set(e, (void *)(uintptr_t)'e', NULL) != 0)
            return false;
    }
    /* The contexts keep the variables alive. */
    cx_var_release(a);
    cx_var_release(b);
    cx_var_release(e);
    return true;
}

static void __attribute__((noreturn)) child_exit_nested(void) { exit(0); }

static int cmp_char(const void *x, const void *y)
{
    return *(const char *)x - *(const char *)y;
}

/* In the parent: read the child's bytes and status. */
static bool parent_check(enum mode m, pid_t pid, int rfd)
{
    char got[64];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(rfd, got + n, sizeof(got) - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof(got) - 1)
            break;
    }
    close(rfd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    got[n] = '\0';
    qsort(got, n, 1, cmp_char);
    bool bytes_ok = strcmp(got, expected[m]) == 0;
    bool status_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("main_exit: %-6s %s: destroyed \"%s\", expected \"%s\"; child ", mode_name[m],
           bytes_ok && status_ok ? "ok" : "FAILED", got, expected[m]);
    if (WIFEXITED(status))
        printf("exit status %d\n", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("killed by signal %d\n", WTERMSIG(status));
    else
        printf("status 0x%x\n", status);
    return bytes_ok && status_ok;
}

int main(int argc, char **argv)
{
    cx_watchdog(300);
    int failures = 0;
    for (int m = 0; m < M_COUNT; m++) {
        bool want = argc < 2;
        for (int i = 1; i < argc; i++)
            if (strcmp(argv[i], mode_name[m]) == 0)
                want = true;
        if (!want)
            continue;
        int fds[2];
        if (pipe(fds) != 0) {
            perror("main_exit: pipe");
            return 1;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("main_exit: fork");
            return 1;
        }
        if (pid == 0) {
            cx_watchdog(120); /* fork cleared the parent's alarm */
            close(fds[0]);
            pipe_fd = fds[1];
            if (!child_setup((enum mode)m))
                return 3;
            if (m == M_EXIT)
                child_exit_nested();
            return 0; /* return from main: the values must go now */
        }
        close(fds[1]);
        if (!parent_check((enum mode)m, pid, fds[0]))
            failures++;
    }
    printf("main_exit: %s\n", failures == 0 ? "all modes passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
