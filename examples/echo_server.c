/*
 * echo_server.c - the echo server of Python's contextvars documentation,
 * done the C way: threads and a cxpool instead of asyncio tasks.
 *
 * The accept loop learns who connected and gives the connection a request
 * id. It puts both into context variables, not into the job's argument,
 * and submits the connection to a pool worker. cx_pool_submit() snapshots
 * the context, so the worker's code - and a second job it submits to send
 * the goodbye - read the address and the id from the context wherever they
 * need them: in the echo replies, in the goodbye, in every log line.
 *
 * To be a self-checking demo the program also plays the clients: it starts
 * the server on 127.0.0.1 (a port the kernel picks), connects N_CLIENTS
 * clients at once, prints what each got back and the server's log, and
 * checks that each client saw its own address and the id the accept loop
 * gave it, and that every log line of a request names that request's
 * client. Exit status 0 if everything matched, 1 otherwise, 2 on a setup
 * failure, 3 if it took longer than TIME_LIMIT seconds.
 *
 * Loopback only; every thread it starts is joined before it exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cxpool.h>

#define N_CLIENTS 8
#define LINES_PER_CLIENT 2
#define POOL_THREADS 4
#define TIME_LIMIT 20 /* seconds, for the whole program */
#define ID_LEN 32   /* "req-0001", with room for any unsigned long */
#define STR2(x) #x
#define STR(x) STR2(x)

/* ====================================================== context variables */

/* "127.0.0.1:40122": a heap string. The variable has a destroy callback,
 * so each cx_var_set() hands the string to the library, which frees it when
 * the last context holding it is gone - here, when the last job of that
 * connection has finished. */
static cx_var *client_addr;
/* The request number as a plain word (uintptr_t in a void *); 0 = none. */
static cx_var *request_id;

static atomic_int addr_strings_freed;

static void free_addr(void *s)
{
    free(s);
    atomic_fetch_add(&addr_strings_freed, 1);
}

/* The two values, as text, from the current context. */
static const char *current_addr(void) { return cx_var_get_or(client_addr, "-"); }

static const char *current_id(char buf[ID_LEN])
{
    uintptr_t id = (uintptr_t)cx_var_get_or(request_id, NULL);
    if (id == 0)
        return "-";
    snprintf(buf, ID_LEN, "req-%04lu", (unsigned long)id);
    return buf;
}

/* ================================================================ logging */

#define MAX_LOG 256
#define LOG_LEN 160

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[MAX_LOG][LOG_LEN]; /* kept for the checks at the end */
static int n_log;

/* Every line is stamped with the request id and client address of the
 * context it is called in; callers pass only the message. */
static void server_log(const char *fmt, ...)
{
    char msg[LOG_LEN - 48], idbuf[ID_LEN], line[LOG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "[%s %s] %s", current_id(idbuf), current_addr(), msg);

    pthread_mutex_lock(&log_lock);
    if (n_log < MAX_LOG)
        memcpy(log_lines[n_log++], line, sizeof(line));
    printf("server | %s\n", line);
    fflush(stdout);
    pthread_mutex_unlock(&log_lock);
}

/* ============================================================ the server */

static cx_pool *pool;
static atomic_bool stop_accepting;

/* What the accept loop itself saw, for the checks: port -> id. */
static struct {
    unsigned port;
    unsigned long id;
} accepted[N_CLIENTS];
static int n_accepted;

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A buffered line reader: one line without its "\n" / "\r\n" into line.
 * Returns 1, or 0 at end of input (or error, or time-out). */
struct reader {
    int fd;
    char buf[512];
    size_t len;
};

static int read_line(struct reader *r, char *line, size_t size)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - r->buf);
            size_t keep = n > 0 && r->buf[n - 1] == '\r' ? n - 1 : n;
            if (keep >= size)
                keep = size - 1;
            memcpy(line, r->buf, keep);
            line[keep] = '\0';
            memmove(r->buf, nl + 1, r->len - n - 1);
            r->len -= n + 1;
            return 1;
        }
        if (r->len == sizeof(r->buf))
            return 0; /* a line longer than we accept */
        ssize_t got = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        r->len += (size_t)got;
    }
}

/* Like render_goodbye() in Python's documentation: nothing is passed in,
 * the client's address comes from the context. */
static int render_goodbye(char *buf, size_t size)
{
    char idbuf[ID_LEN];
    return snprintf(buf, size, "Good bye, client @ %s (request %s)\n", current_addr(),
                    current_id(idbuf));
}

static int render_echo(char *buf, size_t size, const char *line)
{
    char idbuf[ID_LEN];
    return snprintf(buf, size, "echo [%s %s]: %s\n", current_id(idbuf), current_addr(), line);
}

/* Second job of a request: says goodbye and closes the connection. It was
 * submitted by handle_request(), so it runs in a copy of that job's
 * context: same address, same id. */
static void *say_goodbye(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char reply[160];
    int n = render_goodbye(reply, sizeof(reply));
    if (send_all(fd, reply, (size_t)n) != 0)
        server_log("could not send the goodbye: %s", strerror(errno));
    close(fd);
    server_log("said goodbye, connection closed");
    return NULL;
}

/* First job of a request, on a pool worker: echoes lines until an empty
 * one, then hands the connection to a second job. */
static void *handle_request(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct reader r = {.fd = fd, .len = 0};
    char line[256], reply[400];
    server_log("handling the request on a pool worker");
    while (read_line(&r, line, sizeof(line)) && line[0] != '\0') {
        server_log("got \"%s\"", line);
        int n = render_echo(reply, sizeof(reply), line);
        if (send_all(fd, reply, (size_t)n) != 0)
            break;
    }
    /* Fire and forget: the request's context travels with the job. If the
     * pool refuses (shutting down), finish the request here instead. */
    int rc = cx_pool_submit(pool, say_goodbye, arg, NULL);
    if (rc != 0) {
        server_log("cannot submit the goodbye (%s); sending it here", cx_err_name(rc));
        say_goodbye(arg);
    }
    return NULL;
}

/* Sets the two variables for one connection, submits it, and restores the
 * accept loop's context. addr is handed over to client_addr. */
static int dispatch(int fd, char *addr, uintptr_t id)
{
    cx_token *addr_tok, *id_tok;
    int rc = cx_var_set(client_addr, addr, &addr_tok);
    if (rc != 0) {
        free(addr); /* a failed set leaves the string with us */
        return rc;
    }
    rc = cx_var_set(request_id, (void *)id, &id_tok);
    if (rc == 0) {
        server_log("accepted");
        /* The job gets the connection as its argument; who the client is
         * and which request this is travel in the context. */
        rc = cx_pool_submit(pool, handle_request, (void *)(intptr_t)fd, NULL);
        cx_var_reset(request_id, id_tok);
        cx_token_release(id_tok);
    }
    cx_var_reset(client_addr, addr_tok);
    cx_token_release(addr_tok);
    return rc;
}

static void *accept_loop(void *arg)
{
    int lfd = *(int *)arg;
    uintptr_t next_id = 1;
    server_log("accept loop running");
    while (!atomic_load(&stop_accepting)) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue; /* time-out (check the stop flag) or EINTR */
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        int fd = accept(lfd, (struct sockaddr *)&peer, &len);
        if (fd < 0)
            continue;
        /* A client that never finishes its request must not hold a worker
         * forever. */
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

        char ip[INET_ADDRSTRLEN], *addr = malloc(32);
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
        if (addr != NULL)
            snprintf(addr, 32, "%s:%u", ip, (unsigned)ntohs(peer.sin_port));
        if (n_accepted < N_CLIENTS) {
            accepted[n_accepted].port = ntohs(peer.sin_port);
            accepted[n_accepted].id = next_id;
            n_accepted++;
        }
        int rc = addr == NULL ? CX_ENOMEM : dispatch(fd, addr, next_id);
        if (rc != 0) {
            server_log("dropping a connection: %s", cx_strerror(rc));
            close(fd);
        }
        next_id++;
    }
    server_log("accept loop stopped");
    return NULL;
}

/* ============================================================ the clients */

static unsigned server_port;
static pthread_barrier_t all_connected;

struct client {
    int index;
    unsigned port; /* our local port: the server sees 127.0.0.1:port */
    char sent[LINES_PER_CLIENT][64];
    char got[1024];
    size_t got_len;
    const char *error;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        c->error = "cannot connect";
    else {
        struct sockaddr_in me;
        socklen_t len = sizeof(me);
        getsockname(fd, (struct sockaddr *)&me, &len);
        c->port = ntohs(me.sin_port);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    /* Everybody connects first, then all talk at once. */
    pthread_barrier_wait(&all_connected);

    if (c->error == NULL) {
        char req[256] = "";
        for (int i = 0; i < LINES_PER_CLIENT; i++) {
            snprintf(c->sent[i], sizeof(c->sent[i]), "line %d from client %d", i + 1, c->index);
            strcat(req, c->sent[i]);
            strcat(req, "\r\n");
        }
        strcat(req, "\r\n"); /* an empty line ends the request */
        if (send_all(fd, req, strlen(req)) != 0)
            c->error = "cannot send";
        for (;;) {
            ssize_t n = recv(fd, c->got + c->got_len, sizeof(c->got) - 1 - c->got_len, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                c->error = "no reply in time";
            if (n <= 0)
                break;
            c->got_len += (size_t)n;
        }
        c->got[c->got_len] = '\0';
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* ============================================================ the checks */

static long id_of_port(unsigned port)
{
    for (int i = 0; i < n_accepted; i++)
        if (accepted[i].port == port)
            return (long)accepted[i].id;
    return -1;
}

/* The exact reply a client must get if the context carried its own
 * address and id through both jobs. */
static int check_client(struct client *c)
{
    if (c->error != NULL)
        return 0;
    long id = id_of_port(c->port);
    if (id < 0) {
        c->error = "the server never accepted this port";
        return 0;
    }
    char want[1024];
    size_t n = 0;
    for (int i = 0; i < LINES_PER_CLIENT; i++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "echo [req-%04ld 127.0.0.1:%u]: %s\n", id,
                              c->port, c->sent[i]);
    snprintf(want + n, sizeof(want) - n, "Good bye, client @ 127.0.0.1:%u (request req-%04ld)\n",
             c->port, id);
    if (strcmp(want, c->got) != 0) {
        c->error = "reply does not carry this client's own address and id";
        return 0;
    }
    return 1;
}

/* Every log line stamped with a request id must name the client the
 * accept loop gave that id to; each request logs exactly 5 lines
 * (accepted, handling, one per line received, said goodbye). */
static int check_log(void)
{
    int bad = 0, per_id[N_CLIENTS + 1] = {0};
    for (int i = 0; i < n_log; i++) {
        unsigned long id;
        unsigned port;
        if (sscanf(log_lines[i], "[req-%lu 127.0.0.1:%u]", &id, &port) != 2)
            continue; /* a line outside any request: "[- -] ..." */
        if (id < 1 || id > N_CLIENTS || id_of_port(port) != (long)id) {
            printf("check  | MISMATCH in server log: %s\n", log_lines[i]);
            bad++;
        } else {
            per_id[id]++;
        }
    }
    for (int id = 1; id <= N_CLIENTS; id++)
        if (per_id[id] != 3 + LINES_PER_CLIENT) {
            printf("check  | request %d has %d log lines, expected %d\n", id, per_id[id],
                   3 + LINES_PER_CLIENT);
            bad++;
        }
    return bad == 0;
}

/* A job started with no context at all: whatever the previous jobs on the
 * same worker set must not be visible here. */
static void *housekeeping(void *unused)
{
    (void)unused;
    server_log("housekeeping job: no request, no client");
    return (void *)(uintptr_t)(cx_var_get_or(request_id, NULL) == NULL &&
                               cx_var_get_or(client_addr, NULL) == NULL);
}

/* ================================================================== main */

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "echo_server: gave up after " STR(TIME_LIMIT) " seconds\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(3);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "echo_server: %s: %s\n", what, rc < 0 ? cx_strerror(rc) : strerror(errno));
    return 2;
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm(TIME_LIMIT);

    int rc;
    cx_var_opts owned = {.destroy = free_addr};
    if ((rc = cx_var_new(&client_addr, "client_addr", &owned)) != 0 ||
        (rc = cx_var_new(&request_id, "request_id", NULL)) != 0)
        return fail("cx_var_new", rc);
    cx_pool_opts po = {.threads = POOL_THREADS};
    if ((rc = cx_pool_new(&pool, &po)) != 0)
        return fail("cx_pool_new", rc);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return fail("listen on 127.0.0.1", 0);
    server_port = ntohs(sa.sin_port);
    printf("echo_server: listening on 127.0.0.1:%u, %d pool workers, %d clients\n", server_port,
           POOL_THREADS, N_CLIENTS);
    printf("---- the server's log, as it happens: [request id, client address] message\n");
    fflush(stdout);

    pthread_t server;
    if (pthread_create(&server, NULL, accept_loop, &lfd) != 0)
        return fail("start the server thread", 0);

    static struct client clients[N_CLIENTS];
    pthread_t ct[N_CLIENTS];
    pthread_barrier_init(&all_connected, NULL, N_CLIENTS);
    for (int i = 0; i < N_CLIENTS; i++) {
        clients[i].index = i + 1;
        if (pthread_create(&ct[i], NULL, client_main, &clients[i]) != 0)
            return fail("start a client thread", 0);
    }
    for (int i = 0; i < N_CLIENTS; i++)
        pthread_join(ct[i], NULL);
    pthread_barrier_destroy(&all_connected);

    /* A job with no context (submit_in NULL), after all the others. */
    cx_future *fut;
    void *clean = NULL;
    if ((rc = cx_pool_submit_in(pool, NULL, housekeeping, NULL, &fut)) != 0)
        return fail("cx_pool_submit_in", rc);
    rc = cx_future_result(fut, &clean);
    cx_future_release(fut);

    /* Shut down: stop accepting, let the pool finish, join everything. */
    atomic_store(&stop_accepting, true);
    pthread_join(server, NULL);
    cx_pool_free(pool);
    close(lfd);

    /* ---- report */
    printf("---- what each client got back\n");
    int ok = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        struct client *c = &clients[i];
        int good = check_client(c);
        ok += good;
        printf("client %d | local address 127.0.0.1:%u, got back:\n", c->index, c->port);
        for (const char *p = c->got; *p != '\0';) {
            size_t n = strcspn(p, "\n");
            printf("client %d |   %.*s\n", c->index, (int)n, p);
            p += n + (p[n] == '\n');
        }
        printf("client %d |   %s\n", c->index, good ? "OK: its own address and request id"
                                                     : c->error);
    }
    printf("---- checks\n");
    int log_ok = check_log();
    int housekeeping_ok = rc == 0 && clean != NULL;
    if (!housekeeping_ok)
        printf("check  | the context-free job saw a request's values (%s)\n", cx_err_name(rc));
    int freed = atomic_load(&addr_strings_freed);
    if (freed != n_accepted)
        printf("check  | %d address strings freed by the library, expected %d\n", freed,
               n_accepted);

    cx_var_release(client_addr);
    cx_var_release(request_id);

    int all_ok = ok == N_CLIENTS && log_ok && housekeeping_ok && freed == n_accepted;
    printf("echo_server: %d/%d clients got their own address and id; %d log lines %s; "
           "%d address strings freed by the library; %s\n",
           ok, N_CLIENTS, n_log, log_ok ? "consistent" : "INCONSISTENT", freed,
           all_ok ? "all checks passed" : "FAILED");
    return all_ok ? 0 : 1;
}
