/* with_one_line.c - two CX_WITH (and two CX_WITH_RC) blocks opened on one
 * source line (SPEC 5.1: the macros name their hidden variables with
 * __COUNTER__, not __LINE__). Built with -Wshadow -Werror by
 * check-with-one-line: with __LINE__-named variables the inner block's
 * variable shadows the outer one's and the build fails. Then run: both
 * values are seen inside, both are reset after. Exit status 0 on success.
 */
#include <stdint.h>
#include <stdio.h>

#include "cxvars.h"

#define TAG(n) ((void *)(uintptr_t)(n))

int main(void)
{
    cx_var *a = NULL, *b = NULL;
    if (cx_var_new(&a, "a", NULL) != 0 || cx_var_new(&b, "b", NULL) != 0)
        return 1;
    int failures = 0, ran = 0;

    CX_WITH(a, TAG(1)) CX_WITH(b, TAG(2)) {
        ran++;
        if (cx_var_get_or(a, NULL) != TAG(1) || cx_var_get_or(b, NULL) != TAG(2))
            failures++;
    }

    int ra = 99, rb = 99;
    CX_WITH_RC(a, TAG(3), ra) CX_WITH_RC(b, TAG(4), rb) {
        ran++;
        if (cx_var_get_or(a, NULL) != TAG(3) || cx_var_get_or(b, NULL) != TAG(4))
            failures++;
    }
    if (ra != 0 || rb != 0)
        failures++;

    if (ran != 2 || cx_var_get_or(a, NULL) != NULL || cx_var_get_or(b, NULL) != NULL)
        failures++;
    cx_var_release(a);
    cx_var_release(b);
    printf("with_one_line: %s\n", failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
