/* db.c - the connection pool: a connection per worker thread (no locking),
 * checked before each use so a restarted server is noticed at once. */
#include "db.h"
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* statements prepared on this thread's connection, by their SQL text */
#define DB_STMTS 128

typedef struct {
    unsigned long  hash;
    char          *sql;
    const char    *last;       /* the caller's text at its last use */
} db_stmt_t;

static __thread PGconn    *thread_conn;
static __thread db_stmt_t  thread_stmts[DB_STMTS];
static __thread int        thread_n_stmts;

/* closes a worker thread's connection when the thread exits */
static pthread_key_t   conn_key;
static pthread_once_t  conn_key_once = PTHREAD_ONCE_INIT;


static void
conn_key_destroy(void *c)
{
    PQfinish(c);
}


static void
conn_key_create(void)
{
    (void) pthread_key_create(&conn_key, conn_key_destroy);
}


/* libpq prints server notices (and the FATAL of a shutdown) on stderr by
 * default: keep them in our log format instead */
static void
db_notice(void *arg, const char *msg)
{
    char esc[512];

    (void) arg;
    log_debug("msg=\"postgres notice\" notice=\"%s\"",
              log_escape(msg, esc, sizeof(esc)));
}


PGconn *
db_connect_once(const char *dsn, char *err, size_t errlen)
{
    /* connect_timeout bounds a hang on an unreachable server; the DSN's own
     * value wins because later keywords override earlier ones */
    const char *keys[] = { "connect_timeout", "application_name",
                           "dbname", NULL };
    const char *vals[] = { "3", "trueport-sidecar", dsn, NULL };
    PGconn     *c;

    c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        if (err) {
            snprintf(err, errlen, "%s",
                     c ? PQerrorMessage(c) : "out of memory");
            char *nl = strchr(err, '\n');
            if (nl) {
                *nl = '\0';
            }
        }
        PQfinish(c);
        return NULL;
    }

    PQsetNoticeProcessor(c, db_notice, NULL);

    /* a query must never hold a worker thread forever */
    PQclear(PQexec(c, "SET statement_timeout = '10s'"));

    /* timestamps come back in the form jw_pg_ts() reads, whatever the
     * server's default (only the output style; the input order stays) */
    PQclear(PQexec(c, "SET DateStyle = ISO"));
    return c;
}


/* A server that shut down or restarted has already sent us a FATAL or
 * closed the socket: the socket is readable while we sit idle. */
static int
db_conn_alive(PGconn *c)
{
    struct pollfd pfd;

    if (PQstatus(c) != CONNECTION_OK) {
        return 0;
    }

    pfd.fd = PQsocket(c);
    pfd.events = POLLIN;
    pfd.revents = 0;

    if (pfd.fd < 0) {
        return 0;
    }
    /* we never LISTEN: anything arriving on an idle connection is the
     * server's goodbye (FATAL, then EOF), even if libpq has not yet seen
     * the EOF and still calls the connection OK */
    return poll(&pfd, 1, 0) == 0;
}


/* prepared statements die with their connection */
static void
db_stmts_forget(void)
{
    int i;

    for (i = 0; i < thread_n_stmts; i++) {
        free(thread_stmts[i].sql);
    }
    thread_n_stmts = 0;
}


PGconn *
db_conn(void)
{
    char err[256];

    if (thread_conn != NULL && db_conn_alive(thread_conn)) {
        return thread_conn;
    }

    if (thread_conn != NULL) {
        log_warn("msg=\"database connection lost, reconnecting\"");
        PQfinish(thread_conn);
        thread_conn = NULL;
    }
    db_stmts_forget();

    thread_conn = db_connect_once(cfg.database_url, err, sizeof(err));
    pthread_once(&conn_key_once, conn_key_create);
    pthread_setspecific(conn_key, thread_conn);
    if (thread_conn == NULL) {
        char esc[512];

        log_error("msg=\"database unavailable\" error=\"%s\"",
                  log_escape(err, esc, sizeof(esc)));
    }
    return thread_conn;
}


void
db_close(void)
{
    db_stmts_forget();
    if (thread_conn != NULL) {
        PQfinish(thread_conn);
        thread_conn = NULL;
        pthread_setspecific(conn_key, NULL);
    }
}


int
db_status_for(const char *sqlstate, const char **code)
{
    static const struct {
        const char *prefix;
        int         status;
        const char *code;
    } map[] = {
        { "23505", 409, "conflict" },            /* unique_violation */
        { "23503", 409, "conflict" },            /* foreign_key_violation */
        { "23514", 422, "invalid_value" },       /* check_violation */
        { "23502", 422, "invalid_value" },       /* not_null_violation */
        { "22P02", 400, "bad_request" },         /* invalid_text_representation */
        { "22021", 400, "bad_request" },         /* invalid UTF-8 sent to us */
        { "22003", 422, "invalid_value" },       /* numeric out of range */
        { "22007", 422, "invalid_value" },       /* invalid datetime format */
        { "22008", 422, "invalid_value" },       /* datetime out of range */
        { "22001", 422, "invalid_value" },       /* string too long */
        { "40001", 503, "retry" },               /* serialization failure */
        { "40P01", 503, "retry" },               /* deadlock */
        { "57014", 503, "database_timeout" },    /* query_canceled */
        { "08",    503, "database_unavailable" },/* connection exceptions */
        { "57P",   503, "database_unavailable" },/* admin shutdown etc. */
        { "53",    503, "database_unavailable" },/* insufficient resources */
    };
    size_t i;

    if (sqlstate == NULL || *sqlstate == '\0') {
        *code = "database_unavailable";
        return 503;
    }

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strncmp(sqlstate, map[i].prefix, strlen(map[i].prefix)) == 0) {
            *code = map[i].code;
            return map[i].status;
        }
    }

    *code = "internal_error";
    return 500;
}


/* Only plain DML is worth preparing; BEGIN, COMMIT, SET and the like run
 * as they are. */
static int
db_preparable(const char *sql)
{
    static const char *const verbs[] = { "SELECT", "WITH", "INSERT",
                                         "UPDATE", "DELETE", NULL };
    int                      i;
    size_t                   n;

    while (isspace((unsigned char) *sql)) {
        sql++;
    }
    for (i = 0; verbs[i] != NULL; i++) {
        n = strlen(verbs[i]);
        if (strncasecmp(sql, verbs[i], n) == 0
            && !isalnum((unsigned char) sql[n]))
        {
            return 1;
        }
    }
    return 0;
}


/* The statement prepared for this SQL text, or -1 (*hash set for adding
 * it). The handlers' SQL is string literals: the same address as last
 * time finds it without hashing a kilobyte of text; strcmp still decides,
 * as a reused buffer may hold another statement. */
static int
db_stmt_find(const char *sql, unsigned long *hash)
{
    unsigned long  h = 5381;
    const char    *s;
    int            i;

    for (i = 0; i < thread_n_stmts; i++) {
        if (thread_stmts[i].last == sql
            && strcmp(thread_stmts[i].sql, sql) == 0)
        {
            return i;
        }
    }

    for (s = sql; *s; s++) {
        h = h * 33 + (unsigned char) *s;
    }
    *hash = h;
    for (i = 0; i < thread_n_stmts; i++) {
        if (thread_stmts[i].hash == h && strcmp(thread_stmts[i].sql, sql) == 0) {
            thread_stmts[i].last = sql;
            return i;
        }
    }
    return -1;
}


PGresult *
db_exec(PGconn *c, const char *sql, int nparams, const char *const *vals)
{
    unsigned long  h = 0;
    const char    *s;
    char           name[16];
    PGresult      *res;
    int            i;

    if (c != thread_conn || !db_preparable(sql)) {
        return PQexecParams(c, sql, nparams, NULL, vals, NULL, NULL, 0);
    }

    i = db_stmt_find(sql, &h);
    if (i >= 0) {
        snprintf(name, sizeof(name), "tp_q%d", i);
        res = PQexecPrepared(c, name, nparams, vals, NULL, NULL, 0);
        s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (s != NULL && strcmp(s, "26000") == 0) {
            /* our statements are gone (a DISCARD ALL, a pooler between
             * us): start over, unprepared this time */
            PQclear(res);
            db_stmts_forget();
            res = PQexecParams(c, sql, nparams, NULL, vals, NULL, NULL, 0);
        }
        return res;
    }

    /* a full cache (dynamic SQL beyond DB_STMTS texts) runs unprepared */
    if (thread_n_stmts == DB_STMTS) {
        return PQexecParams(c, sql, nparams, NULL, vals, NULL, NULL, 0);
    }
    i = thread_n_stmts;
    snprintf(name, sizeof(name), "tp_q%d", i);
    res = PQprepare(c, name, sql, nparams, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        /* the caller sees the error PQexecParams would have given (it
         * comes from the same parse); running it again could only add
         * "transaction is aborted" on top */
        return res;
    }
    PQclear(res);

    thread_stmts[i].sql = strdup(sql);
    if (thread_stmts[i].sql == NULL) {
        /* prepared but not remembered: the name stays taken, so the
         * cache stops growing here rather than reuse it */
        thread_n_stmts = DB_STMTS;
        return PQexecParams(c, sql, nparams, NULL, vals, NULL, NULL, 0);
    }
    thread_stmts[i].hash = h;
    thread_stmts[i].last = sql;
    thread_n_stmts++;
    return PQexecPrepared(c, name, nparams, vals, NULL, NULL, 0);
}
