/*
 * pool_inspect.c - which request is each pool worker serving, and for how
 * long? A sibling of echo_server.c: a small echo server on a cxpool whose
 * monitor asks the pool itself (cx_pool_inspect) while clients are
 * connected, and prints one line per worker.
 *
 * The accept loop puts the request id and the client's address into
 * context variables and submits the connection; the handler (a pool job)
 * echoes lines, each prefixed with its request id, until the client says
 * "bye". With every client connected and waiting, the monitor inspects
 * the pool: each worker's context copy names the request it serves, its
 * `started` says since when:
 *
 *     worker 0: req-0002 (127.0.0.1:40122) for 3 ms
 *
 * Self-checking: every worker must be busy with a different request of a
 * connected client (the ids the clients read in their echoes), and the
 * pool's counters must add up. Exit status 0 if so, 1 otherwise, 2 on a
 * setup failure, 3 on a timeout. Loopback only; every thread is joined.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cxpool.h>

#define N_CLIENTS 3 /* one per worker: all are served at once */
#define TIME_LIMIT 30

static cx_var *request_id;  /* a plain word: 1, 2, ... */
static cx_var *client_addr; /* "127.0.0.1:40122": a heap string (owned) */

/* ------------------------------------------------------------ plumbing */

/* A counter that threads post and wait on. */
typedef struct event {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
} event;

static void event_post(event *e)
{
    pthread_mutex_lock(&e->mu);
    e->n++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void event_wait(event *e, int n)
{
    pthread_mutex_lock(&e->mu);
    while (e->n < n)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

static event echoed = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
static event inspected = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

/* One line (without its newline) into buf; false at end of stream. */
static bool read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0)
            return false;
        if (c == '\n')
            break;
        if (n + 1 < cap)
            buf[n++] = c;
    }
    buf[n] = '\0';
    return true;
}

static void write_all(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t w = write(fd, s, len);
        if (w <= 0)
            return;
        s += w;
        len -= (size_t)w;
    }
}

/* -------------------------------------------------------------- server */

/* The pool job: one connection, in the accept loop's snapshot. */
static void *handle(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned long id = (unsigned long)(uintptr_t)cx_var_get_or(request_id, NULL);
    char line[128], reply[192];
    while (read_line(fd, line, sizeof(line)) && strcmp(line, "bye") != 0) {
        snprintf(reply, sizeof(reply), "req-%04lu: %s\n", id, line);
        write_all(fd, reply);
    }
    write_all(fd, "bye\n");
    close(fd);
    return NULL;
}

struct server {
    int lfd;
    cx_pool *pool;
    int rc;
};

static void *accept_loop(void *arg)
{
    struct server *s = arg;
    for (unsigned long id = 1; id <= N_CLIENTS; id++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        int fd = accept(s->lfd, (struct sockaddr *)&peer, &len);
        if (fd < 0) {
            s->rc = 2;
            return NULL;
        }
        char *addr = malloc(32);
        if (addr == NULL) {
            close(fd);
            s->rc = 2;
            return NULL;
        }
        snprintf(addr, 32, "%s:%u", inet_ntoa(peer.sin_addr), (unsigned)ntohs(peer.sin_port));
        /* The job's snapshot carries both; CX_WITH takes ownership of the
         * address string (the library frees it with the last holder). */
        CX_WITH(client_addr, addr)
        CX_WITH(request_id, (void *)(uintptr_t)id)
        {
            if (cx_pool_submit(s->pool, handle, (void *)(intptr_t)fd, NULL) != 0) {
                close(fd);
                s->rc = 2;
            }
        }
    }
    return NULL;
}

/* -------------------------------------------------------------- client */

struct client {
    int port;
    int delay_ms; /* connects this late: requests of different ages */
    unsigned long id; /* read from the echo */
    int rc;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    nanosleep(&(struct timespec){0, c->delay_ms * 1000000L}, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        c->rc = 2;
        if (fd >= 0)
            close(fd);
        event_post(&echoed);
        return NULL;
    }
    char line[192];
    write_all(fd, "hello\n");
    if (!read_line(fd, line, sizeof(line)) || sscanf(line, "req-%lu:", &c->id) != 1)
        c->rc = 1;
    event_post(&echoed);
    /* Stay connected (and the handler busy) until the monitor has looked. */
    event_wait(&inspected, 1);
    write_all(fd, "bye\n");
    if (!read_line(fd, line, sizeof(line)) || strcmp(line, "bye") != 0)
        c->rc = 1;
    close(fd);
    return NULL;
}

/* ------------------------------------------------------------- monitor */

struct seen {
    unsigned long ids[N_CLIENTS];
    int busy, lines;
};

static int print_worker(const cx_worker_info *w, void *arg)
{
    struct seen *s = arg;
    s->lines++;
    if (!w->busy) {
        printf("worker %u: idle\n", w->index);
        return 0;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (long)((now.tv_sec - w->started.tv_sec) * 1000 +
                     (now.tv_nsec - w->started.tv_nsec) / 1000000);
    void *id = NULL, *addr = "-";
    (void)cx_context_get(w->ctx, request_id, &id);
    (void)cx_context_get(w->ctx, client_addr, &addr);
    /* addr stays valid while we hold the copy (it holds the binding). */
    printf("worker %u: req-%04lu (%s) for %ld ms\n", w->index, (unsigned long)(uintptr_t)id,
           (const char *)addr, ms);
    if (s->busy < N_CLIENTS)
        s->ids[s->busy] = (unsigned long)(uintptr_t)id;
    s->busy++;
    cx_context_release(w->ctx);
    return 0;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "pool_inspect: %s: %s\n", what, cx_strerror(rc));
    return 2;
}

int main(void)
{
    alarm(TIME_LIMIT); /* SIGALRM ends a hung run (exit status != 0) */
    int rc;
    cx_var_opts own = {.destroy = free};
    if ((rc = cx_var_new(&request_id, "request_id", NULL)) != 0 ||
        (rc = cx_var_new(&client_addr, "client_addr", &own)) != 0)
        return fail("cx_var_new", rc);
    cx_pool *pool;
    cx_pool_opts o = {.threads = N_CLIENTS};
    if ((rc = cx_pool_new(&pool, &o)) != 0)
        return fail("cx_pool_new", rc);

    struct server srv = {.lfd = socket(AF_INET, SOCK_STREAM, 0), .pool = pool};
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(srv.lfd, N_CLIENTS) != 0 || getsockname(srv.lfd, (struct sockaddr *)&a, &alen) != 0)
        return 2;
    pthread_t acceptor, clients[N_CLIENTS];
    struct client cl[N_CLIENTS];
    pthread_create(&acceptor, NULL, accept_loop, &srv);
    for (int i = 0; i < N_CLIENTS; i++) {
        cl[i] = (struct client){.port = ntohs(a.sin_port), .delay_ms = 40 * i};
        pthread_create(&clients[i], NULL, client_main, &cl[i]);
    }

    /* Every client has its echo: every handler is busy with its client. */
    event_wait(&echoed, N_CLIENTS);
    struct seen s = {0};
    printf("-- cx_pool_inspect, %d clients connected:\n", N_CLIENTS);
    rc = cx_pool_inspect(pool, print_worker, &s);
    event_post(&inspected);

    pthread_join(acceptor, NULL);
    for (int i = 0; i < N_CLIENTS; i++)
        pthread_join(clients[i], NULL);
    cx_pool_shutdown(pool, false);
    cx_pool_stats st;
    int src = cx_pool_stats_get(pool, &st);
    cx_pool_free(pool);
    close(srv.lfd);

    /* The checks. */
    int bad = rc != 0 || src != 0 || srv.rc != 0 || s.lines != N_CLIENTS || s.busy != N_CLIENTS;
    for (int i = 0; i < N_CLIENTS; i++) {
        bad |= cl[i].rc != 0;
        int found = 0;
        for (int k = 0; k < N_CLIENTS && k < s.busy; k++)
            found += s.ids[k] == cl[i].id;
        bad |= found != 1; /* each client's request on exactly one worker */
    }
    bad |= st.submitted != N_CLIENTS || st.completed != N_CLIENTS || st.running != 0;
    printf("-- stats: submitted %llu, completed %llu, cancelled %llu, queued %u, running %u\n",
           st.submitted, st.completed, st.cancelled, st.queued, st.running);
    cx_var_release(request_id);
    cx_var_release(client_addr);
    printf("%s\n", bad ? "pool_inspect: MISMATCH" : "pool_inspect: every worker showed its client's request");
    return bad ? 1 : 0;
}
