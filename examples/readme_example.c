/* The example of README.md, as it appears there (make check runs it, and
 * builds it against an installed copy through pkg-config). */
#include <stdio.h>
#include <cxpool.h>

static cx_var *request_id;

static void *handle(void *job)
{
    /* No argument carries the id: it comes from the submitter's context. */
    printf("%s ran for %s\n", (char *)job, (char *)cx_var_get_or(request_id, "nobody"));
    return NULL;
}

int main(void)
{
    cx_pool *pool;
    cx_var_new(&request_id, "request_id", NULL);
    cx_pool_new(&pool, NULL);
    CX_WITH(request_id, "req-42")
        cx_pool_submit(pool, handle, "job A", NULL); /* snapshots req-42 */
    CX_WITH(request_id, "req-43")
        cx_pool_submit(pool, handle, "job B", NULL); /* snapshots req-43 */
    cx_pool_free(pool); /* runs what is queued, then joins the workers */
    cx_var_release(request_id);
    return 0;
}
