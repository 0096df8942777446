/* server.c - libmicrohttpd glue: two listeners (the API and nginx's
 * /internal/ calls, each with its own thread pool), body accumulation with
 * a limit, request ids, the client's address, dispatch, one escaped log
 * line per request, graceful shutdown. */
#include "server.h"
#include "config.h"
#include "db.h"
#include "ingest.h"
#include "mail.h"
#include "log.h"
#include "password.h"
#include "peer.h"
#include "router.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <uuid/uuid.h>

/* the listener a connection came in on, as the daemons' closure */
static int listener_api = 0, listener_internal = 1;


static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static int
valid_request_id(const char *s)
{
    size_t i, n;

    if (s == NULL || (n = strlen(s)) == 0 || n > 64) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '_') {
            return 0;
        }
    }
    return 1;
}


static void
req_start(req_t *r, struct MHD_Connection *conn, const char *method,
    const char *url, int internal)
{
    const union MHD_ConnectionInfo *ci;
    const char                     *h;
    uuid_t                          u;

    arena_init(&r->arena);
    r->conn = conn;
    r->internal = internal;
    r->t_start = now_ms();
    r->method = arena_strdup(&r->arena, method);
    r->path = arena_strdup(&r->arena, url);

    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    peer_text(ci != NULL ? ci->client_addr : NULL, r->peer_ip,
              sizeof(r->peer_ip));
    r->peer_trusted = netlist_has(&cfg.trusted_proxies, r->peer_ip);

    /* nginx in front names the client (after its real_ip module, when a
     * CDN is in front of it); nobody else may. X-Forwarded-For is a chain
     * the client starts itself, so it is never read here. */
    h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Real-IP");
    if (!r->peer_trusted || h == NULL
        || peer_parse(h, r->client_ip, sizeof(r->client_ip)) != 0)
    {
        memcpy(r->client_ip, r->peer_ip, sizeof(r->client_ip));
    }

    h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (valid_request_id(h)) {
        memcpy(r->id, h, strlen(h) + 1);
    } else {
        uuid_generate_random(u);
        uuid_unparse_lower(u, r->id);
    }
}


static int
body_append(req_t *r, const char *data, size_t n)
{
    size_t cap;
    char  *b;

    if (r->body_too_large || r->body_len + n > (size_t) cfg.max_body) {
        r->body_too_large = 1;
        return 0;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + n + 1) {
            cap *= 2;
        }
        b = realloc(r->body, cap);
        if (b == NULL) {
            return -1;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}


static enum MHD_Result
queue_reply(req_t *r)
{
    struct MHD_Response *resp;
    enum MHD_Result      rc;

    resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        return MHD_NO;
    }
    r->resp_body = NULL;     /* owned by the response now */

    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (r->retry_after != NULL) {
        MHD_add_response_header(resp, "Retry-After", r->retry_after);
    }
    if (r->allow != NULL) {
        MHD_add_response_header(resp, "Allow", r->allow);
    }

    rc = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}


static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
    req_t      *r = *con_cls;
    const char *cl;

    (void) version;

    if (r == NULL) {
        r = calloc(1, sizeof(req_t));
        if (r == NULL) {
            return MHD_NO;
        }
        req_start(r, conn, method, url, *(int *) cls);
        *con_cls = r;

        /* a declared oversize body is read and dropped, then refused:
         * answering before it is read makes a proxy in front report 502 */
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         "Content-Length");
        if (cl != NULL && strtoull(cl, NULL, 10) > (unsigned long long)
                                                   cfg.max_body)
        {
            r->body_too_large = 1;
        }
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        if (body_append(r, upload_data, *upload_data_size) != 0) {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (r->body_too_large) {
        reply_error(r, 413, "payload_too_large",
                    "request body exceeds %ld bytes", cfg.max_body);
        return queue_reply(r);
    }

    router_dispatch(r);
    return queue_reply(r);
}


static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
    req_t *r = *con_cls;

    (void) cls;
    (void) conn;

    if (r == NULL) {
        return;
    }

    /* the path as MHD decoded it (the query string is not part of it:
     * it may carry a key or token) and the method, escaped */
    if (log_level <= LOG_INFO) {
        char m[40], p[520], c[80];

        log_info("req=%s method=%s path=\"%s\" status=%d dur_ms=%.2f"
                 " client=%s user=%s tenant=%s err=%s%s",
                 r->id, log_escape(r->method, m, sizeof(m)),
                 log_escape(r->path, p, sizeof(p)), r->status,
                 now_ms() - r->t_start, log_escape(r->client_ip, c, sizeof(c)),
                 r->auth.ok ? r->auth.user_id : "-",
                 r->auth.scoped ? r->auth.tenant_id : "-",
                 r->err_code ? r->err_code : "-",
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                                                            : " aborted=1");
    }

    if (r->in_txn) {
        db_rollback(r);
    }
    req_run_defers(r);
    free(r->body);
    free(r->resp_body);
    arena_free(&r->arena);
    free(r);
    *con_cls = NULL;
}


static struct MHD_Daemon *
listen_on(const listen_t *l, long threads, unsigned int conns, int *which)
{
    struct MHD_Daemon  *d;
    struct sockaddr_in  sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) l->port);
    if (inet_pton(AF_INET, l->host, &sa.sin_addr) != 1) {
        log_error("msg=\"the listen host must be an IPv4 address\""
                  " host=\"%s\"", l->host);
        return NULL;
    }

    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL
                         | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, on_request, which,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) threads,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 60,
                         MHD_OPTION_CONNECTION_LIMIT, conns,
                         MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int) 1,
                         MHD_OPTION_END);
    if (d == NULL) {
        log_error("msg=\"cannot listen\" listen=%s:%d", l->host, l->port);
    }
    return d;
}


int
server_run(void)
{
    struct MHD_Daemon  *d, *di;
    sigset_t            set;
    int                 sig;
    long                slots;

    /* scrypt may take at most half the API's threads, so the other half
     * stays free for the routes that do not hash */
    slots = cfg.threads / 2 > 1 ? cfg.threads / 2 : 1;
    if (password_init(cfg.scrypt_n, (int) slots) != 0) {
        log_error("msg=\"cannot set up password hashing\"");
        return -1;
    }

    /* signals go to the thread that waits for them, not to the pool */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* nginx's key lookups and policy loads have a listener and threads of
     * their own: no flood of public requests can occupy them */
    d = listen_on(&cfg.listen, cfg.threads, 1024, &listener_api);
    if (d == NULL) {
        return -1;
    }
    di = listen_on(&cfg.internal_listen, cfg.internal_threads, 256,
                   &listener_internal);
    if (di == NULL) {
        MHD_stop_daemon(d);
        return -1;
    }

    log_info("msg=\"listening\" listen=%s:%d threads=%ld internal=%s:%d"
             " internal_threads=%ld scrypt_slots=%ld dev_mode=%d",
             cfg.listen.host, cfg.listen.port, cfg.threads,
             cfg.internal_listen.host, cfg.internal_listen.port,
             cfg.internal_threads, slots, cfg.dev_mode);

    if (ingest_start() != 0) {
        MHD_stop_daemon(di);
        MHD_stop_daemon(d);
        return -1;
    }
    /* mail left unsent before a restart goes out now */
    if (mail_start() != 0) {
        log_warn("msg=\"mail delivery thread did not start\"");
    }

    sigwait(&set, &sig);
    log_info("msg=\"shutting down\" signal=%d", sig);

    /* stop accepting, then let requests in flight finish */
    MHD_quiesce_daemon(d);
    MHD_quiesce_daemon(di);
    MHD_stop_daemon(d);
    MHD_stop_daemon(di);
    ingest_stop();

    log_info("msg=\"stopped\"");
    return 0;
}
