/*
 * The CMake consumer's program: uses the installed headers and library
 * through the target cxvars::cxvars only. A job submitted under a request
 * id must see it; cx_version() must agree with the headers and with the
 * version of the CMake package. Prints "consumer: OK" and exits 0, or says
 * what is wrong and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include <cxpool.h>

static cx_var *request_id;

static void *job(void *arg)
{
    (void)arg;
    return cx_var_get_or(request_id, "nobody");
}

int main(void)
{
    cx_pool *pool = NULL;
    cx_future *fut = NULL;
    void *seen = NULL;
    int rc;

    printf("consumer: cx_version() %s, CX_VERSION_STRING %s, package %s\n",
           cx_version(), CX_VERSION_STRING, CONSUMER_EXPECT_VERSION);
    if (strcmp(cx_version(), CX_VERSION_STRING) != 0 ||
        strcmp(cx_version(), CONSUMER_EXPECT_VERSION) != 0) {
        printf("consumer: versions differ\n");
        return 1;
    }
    if ((rc = cx_var_new(&request_id, "request_id", NULL)) != 0 ||
        (rc = cx_pool_new(&pool, &(cx_pool_opts){.threads = 1})) != 0) {
        printf("consumer: setup failed: %s\n", cx_err_name(rc));
        return 1;
    }
    CX_WITH(request_id, "req-7")
        rc = cx_pool_submit(pool, job, NULL, &fut);
    if (rc == 0)
        rc = cx_future_result(fut, &seen);
    cx_future_release(fut);
    cx_pool_free(pool);
    cx_var_release(request_id);
    if (rc != 0 || seen == NULL || strcmp(seen, "req-7") != 0) {
        printf("consumer: the job saw %s (%s)\n", seen ? (char *)seen : "NULL",
               cx_err_name(rc));
        return 1;
    }
    printf("consumer: OK, the job ran for %s\n", (char *)seen);
    return 0;
}
