/* req.h - one HTTP request as handlers see it, and the reply helpers */
#ifndef TP_REQ_H
#define TP_REQ_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <yajl/yajl_tree.h>

#include "arena.h"
#include "json.h"

#define REQ_MAX_PARAMS 4

/* Roles, ordered; the router compares them. */
typedef enum {
    ROLE_NONE = 0,      /* public route */
    ROLE_GLOBAL,        /* any valid global token */
    ROLE_VIEWER,        /* scoped token, role >= viewer */
    ROLE_MEMBER,
    ROLE_ADMIN,
    ROLE_OWNER,
    ROLE_PLATFORM,      /* platform admin (global or scoped token) */
    ROLE_INTERNAL       /* nginx's internal calls only */
} role_t;

typedef struct {
    int       ok;                /* a token was verified */
    int       scoped;            /* token carries tid/role/env */
    char      user_id[40];
    char      tenant_id[40];
    char      env[32];
    role_t    role;
    int       platform_admin;
    long long iat, exp;
} auth_t;

typedef struct req_defer req_defer_t;

typedef struct req {
    arena_t                 arena;
    struct MHD_Connection  *conn;
    const char             *method;
    const char             *path;
    char                    id[65];
    char                    client_ip[64];   /* X-Real-IP from nginx, else peer */
    char                    peer_ip[64];
    int                     peer_trusted;    /* in TRUEPORT_TRUSTED_PROXIES */
    int                     internal;        /* on the internal listener */
    double                  t_start;

    char                   *body;          /* malloc'd, NUL-terminated */
    size_t                  body_len;
    size_t                  body_cap;
    int                     body_too_large;

    const char             *param_names[REQ_MAX_PARAMS];
    const char             *params[REQ_MAX_PARAMS];
    int                     nparams;

    auth_t                  auth;
    yajl_val                json;          /* parsed body, freed at the end */
    req_defer_t            *defers;
    int                     in_txn;
    int                     scrypt_slot;   /* holds a password.c slot */

    /* the reply, queued by the server once the handler returns */
    int                     status;
    char                   *resp_body;     /* malloc'd */
    size_t                  resp_len;
    const char             *retry_after;   /* Retry-After value */
    const char             *allow;         /* Allow header for 405 */
    const char             *err_code;      /* for the log line */
} req_t;

/* Runs fn(ptr) when the request completes (PQclear, json_free ...). */
void req_defer(req_t *r, void (*fn)(void *), void *ptr);
void req_run_defers(req_t *r);

const char *req_header(req_t *r, const char *name);
const char *req_query(req_t *r, const char *name);
const char *req_param(req_t *r, const char *name);

/* Replies. Exactly one per request; a second one is ignored (and logged). */
void reply_json(req_t *r, int status, jw_t *w);          /* takes w's buffer */
void reply_raw(req_t *r, int status, const char *json);
void reply_error(req_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int  req_replied(req_t *r);

/* Validate-or-reply helpers: on bad input they send the 4xx and return -1,
 * the handler just returns. */
int req_json_body(req_t *r, yajl_val *out) __attribute__((warn_unused_result));
/* Its part that needs no connection (no Content-Type check): r->body
 * parsed by json_parse() into r->json (freed when the request completes),
 * which must be an object; 400 invalid_json, or 422 invalid_field for a
 * U+0000 in a string. The fuzz target drives it. */
int req_body_object(req_t *r, yajl_val *out)
    __attribute__((warn_unused_result));
#define F_REQUIRED 1
#define F_NULLABLE 2
int req_field_str(req_t *r, yajl_val obj, const char *key, int flags,
                  size_t maxlen, const char **out)
    __attribute__((warn_unused_result));
int req_field_int(req_t *r, yajl_val obj, const char *key, int flags,
                  long long min, long long max, long long *out, int *present)
    __attribute__((warn_unused_result));
int req_field_bool(req_t *r, yajl_val obj, const char *key, int flags,
                   int *out, int *present)
    __attribute__((warn_unused_result));

/* ?limit=&offset= : default 50, limit 1..200, offset >= 0; 400 otherwise */
#define PAGE_DEFAULT_LIMIT 50
#define PAGE_MAX_LIMIT     200
int req_page(req_t *r, long *limit, long *offset)
    __attribute__((warn_unused_result));

/* Pure parser behind req_page, for the unit tests: 0 or -1 with err set. */
int page_parse(const char *slimit, const char *soffset, long *limit,
               long *offset, const char **err);

/* Page envelope: jw_page_begin writes {"items":[ ; the caller writes the
 * items; jw_page_end closes with total, limit, offset. */
void jw_page_begin(jw_t *w);
void jw_page_end(jw_t *w, long long total, long limit, long offset);

/* A list's total from its page query, which carries an uncorrelated
 * (SELECT count(*) ...) as its last column: one round trip instead of two.
 * A NULL there (PAGE_TOTAL_IF_MORE on the last page) makes the total
 * offset + the rows. An empty page has no row to carry it: at offset 0 the
 * total is 0, past it count_sql (with its parameters, as for dbq()) counts.
 * -1 when that count failed (the error reply is sent). */
int page_total(req_t *r, PGresult *res, long offset, long long *total,
               const char *count_sql, int nparams, ...)
    __attribute__((warn_unused_result));

/* Counting a tenant's every row for the total costs more than the page
 * itself once there are a few hundred. PAGE_TOTAL_IF_MORE(limit, offset,
 * rows, count) is a column of the page query: rows is the page's
 * "FROM ... WHERE ... ORDER BY ..." (with its limit and offset parameters,
 * "$4" ...), and count runs only when a row follows the page (an InitPlan
 * in a CASE branch runs when reached). Else it is NULL: the page is the
 * last one, and page_total() makes the total offset + rows. The probe and
 * the count are index-only scans where the list's index covers its
 * filters (0011_list_indexes.sql). */
#define PAGE_TOTAL_IF_MORE(lim, off, rows_sql, count_sql)                   \
    " CASE WHEN EXISTS (SELECT 1 " rows_sql                                 \
    "  OFFSET " off "::bigint + " lim "::bigint LIMIT 1)"                   \
    " THEN (" count_sql ") END"

/* Database access on this thread's connection. On failure the error reply
 * is sent (SQLSTATE mapped to a status in one place) and NULL returned.
 * The result is freed when the request completes. */
PGresult *dbq(req_t *r, const char *sql, int nparams, ...);
/* The same without replying: *sqlstate gets the SQLSTATE (or "" for a
 * connection error); the caller owns nothing (freed at completion). */
PGresult *dbq_try(req_t *r, const char **sqlstate, const char *sql,
                  int nparams, ...);
int db_begin(req_t *r) __attribute__((warn_unused_result));
int db_commit(req_t *r) __attribute__((warn_unused_result));
void db_rollback(req_t *r);

int is_uuid(const char *s);

#endif
