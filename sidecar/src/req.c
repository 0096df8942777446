/* req.c - request accessors, replies, validate-or-reply helpers, dbq */
#include "req.h"
#include "db.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct req_defer {
    req_defer_t  *next;
    void        (*fn)(void *);
    void         *ptr;
};


void
req_defer(req_t *r, void (*fn)(void *), void *ptr)
{
    req_defer_t *d = arena_alloc(&r->arena, sizeof(*d));

    d->fn = fn;
    d->ptr = ptr;
    d->next = r->defers;
    r->defers = d;
}


void
req_run_defers(req_t *r)
{
    req_defer_t *d;

    for (d = r->defers; d != NULL; d = d->next) {
        d->fn(d->ptr);
    }
    r->defers = NULL;
}


const char *
req_header(req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}


const char *
req_query(req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}


const char *
req_param(req_t *r, const char *name)
{
    int i;

    for (i = 0; i < r->nparams; i++) {
        if (strcmp(r->param_names[i], name) == 0) {
            return r->params[i];
        }
    }
    return NULL;
}


int
req_replied(req_t *r)
{
    return r->status != 0;
}


void
reply_json(req_t *r, int status, jw_t *w)
{
    if (req_replied(r)) {
        log_error("req=%s msg=\"second reply ignored\" status=%d", r->id,
                  status);
        jw_free(w);
        return;
    }
    r->status = status;
    r->resp_body = jw_steal(w, &r->resp_len);
}


void
reply_raw(req_t *r, int status, const char *json)
{
    jw_t w;

    jw_init(&w);
    jw_raw(&w, json);
    reply_json(r, status, &w);
}


void
reply_error(req_t *r, int status, const char *code, const char *fmt, ...)
{
    char    msg[512];
    va_list ap;
    jw_t    w;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "error");
    jw_obj(&w);
    jw_kstr(&w, "code", code);
    jw_kstr(&w, "message", msg);
    jw_kstr(&w, "request_id", r->id);
    jw_obj_end(&w);
    jw_obj_end(&w);

    if (!req_replied(r)) {
        r->err_code = code;
    }
    reply_json(r, status, &w);
}


static void
free_tree(void *p)
{
    json_free(p);
}


int
req_json_body(req_t *r, yajl_val *out)
{
    const char *ct;

    if (r->json != NULL) {
        *out = r->json;
        return 0;
    }

    ct = req_header(r, "Content-Type");
    if (ct != NULL && strncasecmp(ct, "application/json", 16) != 0) {
        reply_error(r, 415, "unsupported_media_type",
                    "Content-Type must be application/json");
        return -1;
    }
    return req_body_object(r, out);
}


int
req_body_object(req_t *r, yajl_val *out)
{
    char err[300];
    int  rc;

    if (r->json != NULL) {
        *out = r->json;
        return 0;
    }

    rc = json_parse(r->body, r->body_len, 0, &r->json, err, sizeof(err));
    if (rc == JSON_ENUL) {
        reply_error(r, 422, "invalid_field", "%s", err);
        return -1;
    }
    if (rc != JSON_OK) {
        reply_error(r, 400, "invalid_json", "%s", err);
        return -1;
    }
    req_defer(r, free_tree, r->json);

    if (!YAJL_IS_OBJECT(r->json)) {
        reply_error(r, 400, "invalid_json", "request body must be a JSON object");
        return -1;
    }

    *out = r->json;
    return 0;
}


/* Shared start of the field helpers: 1 = value present, 0 = absent and
 * allowed, -1 = replied. */
static int
field_lookup(req_t *r, yajl_val obj, const char *key, int flags, yajl_val *v)
{
    *v = json_get(obj, key);

    if (*v == NULL || (YAJL_IS_NULL(*v) && (flags & F_NULLABLE))) {
        if ((flags & F_REQUIRED) && *v == NULL) {
            reply_error(r, 422, "missing_field", "\"%s\" is required", key);
            return -1;
        }
        *v = NULL;
        return 0;
    }
    return 1;
}


int
req_field_str(req_t *r, yajl_val obj, const char *key, int flags,
    size_t maxlen, const char **out)
{
    yajl_val v;
    int      rc;

    *out = NULL;
    rc = field_lookup(r, obj, key, flags, &v);
    if (rc <= 0) {
        return rc;
    }
    if (!YAJL_IS_STRING(v)) {
        reply_error(r, 422, "invalid_field", "\"%s\" must be a string", key);
        return -1;
    }
    if (maxlen && strlen(v->u.string) > maxlen) {
        reply_error(r, 422, "invalid_field",
                    "\"%s\" must be at most %zu characters", key, maxlen);
        return -1;
    }
    if ((flags & F_REQUIRED) && v->u.string[0] == '\0') {
        reply_error(r, 422, "invalid_field", "\"%s\" must not be empty", key);
        return -1;
    }
    *out = v->u.string;
    return 0;
}


int
req_field_int(req_t *r, yajl_val obj, const char *key, int flags,
    long long min, long long max, long long *out, int *present)
{
    yajl_val v;
    int      rc;

    if (present) {
        *present = 0;
    }
    rc = field_lookup(r, obj, key, flags, &v);
    if (rc <= 0) {
        if (rc == 0 && present && json_get(obj, key) != NULL) {
            *present = 1;     /* explicit null */
        }
        return rc;
    }
    if (!YAJL_IS_INTEGER(v)) {
        reply_error(r, 422, "invalid_field", "\"%s\" must be an integer", key);
        return -1;
    }
    if (v->u.number.i < min || v->u.number.i > max) {
        reply_error(r, 422, "invalid_field",
                    "\"%s\" must be between %lld and %lld", key, min, max);
        return -1;
    }
    *out = v->u.number.i;
    if (present) {
        *present = 1;
    }
    return 0;
}


int
req_field_bool(req_t *r, yajl_val obj, const char *key, int flags, int *out,
    int *present)
{
    yajl_val v;
    int      rc;

    if (present) {
        *present = 0;
    }
    rc = field_lookup(r, obj, key, flags, &v);
    if (rc <= 0) {
        return rc;
    }
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        reply_error(r, 422, "invalid_field", "\"%s\" must be true or false",
                    key);
        return -1;
    }
    *out = YAJL_IS_TRUE(v);
    if (present) {
        *present = 1;
    }
    return 0;
}


static int
parse_nonneg(const char *s, long *out)
{
    char *end;
    long  v;

    if (s == NULL || *s == '\0' || !isdigit((unsigned char) *s)) {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}


int
page_parse(const char *slimit, const char *soffset, long *limit,
    long *offset, const char **err)
{
    *limit = PAGE_DEFAULT_LIMIT;
    *offset = 0;

    if (slimit != NULL
        && (parse_nonneg(slimit, limit) != 0 || *limit < 1
            || *limit > PAGE_MAX_LIMIT))
    {
        *err = "limit must be an integer between 1 and 200";
        return -1;
    }
    if (soffset != NULL
        && (parse_nonneg(soffset, offset) != 0 || *offset > 100000000))
    {
        *err = "offset must be a non-negative integer";
        return -1;
    }
    return 0;
}


int
req_page(req_t *r, long *limit, long *offset)
{
    const char *err;

    if (page_parse(req_query(r, "limit"), req_query(r, "offset"), limit,
                   offset, &err) != 0)
    {
        reply_error(r, 400, "invalid_pagination", "%s", err);
        return -1;
    }
    return 0;
}


void
jw_page_begin(jw_t *w)
{
    jw_obj(w);
    jw_key(w, "items");
    jw_arr(w);
}


void
jw_page_end(jw_t *w, long long total, long limit, long offset)
{
    jw_arr_end(w);
    jw_kint(w, "total", total);
    jw_kint(w, "limit", limit);
    jw_kint(w, "offset", offset);
    jw_obj_end(w);
}


static void
free_result(void *p)
{
    PQclear(p);
}


static PGresult *
dbq_v(req_t *r, const char **sqlstate, const char *sql, int nparams,
    va_list ap)
{
    const char *vals[16];
    PGconn     *c;
    PGresult   *res;
    int         i;

    *sqlstate = "";
    if (nparams > 16) {
        log_error("req=%s msg=\"too many query parameters\"", r->id);
        *sqlstate = "XX000";
        return NULL;
    }
    for (i = 0; i < nparams; i++) {
        vals[i] = va_arg(ap, const char *);
    }

    c = db_conn();
    if (c == NULL) {
        return NULL;
    }

    res = db_exec(c, sql, nparams, vals);
    if (res == NULL) {
        return NULL;
    }
    req_defer(r, free_result, res);

    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        return res;
    default:
        break;
    }

    *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (*sqlstate == NULL) {
        *sqlstate = "";
    }
    if (PQstatus(c) != CONNECTION_OK) {
        db_close();
        *sqlstate = "";
    }
    if (log_level <= LOG_DEBUG) {
        char esc[512];

        log_debug("req=%s msg=\"query failed\" sqlstate=%s error=\"%s\"",
                  r->id, *sqlstate,
                  log_escape(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                             esc, sizeof(esc)));
    }
    return NULL;
}


PGresult *
dbq_try(req_t *r, const char **sqlstate, const char *sql, int nparams, ...)
{
    PGresult *res;
    va_list   ap;

    va_start(ap, nparams);
    res = dbq_v(r, sqlstate, sql, nparams, ap);
    va_end(ap);
    return res;
}


/* dbq() on a va_list: on failure the error reply is sent */
static PGresult *
dbq_reply_v(req_t *r, const char *sql, int nparams, va_list ap)
{
    const char *state, *code;
    PGresult   *res;
    int         status;

    res = dbq_v(r, &state, sql, nparams, ap);

    if (res == NULL) {
        status = db_status_for(state, &code);
        if (status >= 500) {
            log_error("req=%s msg=\"query failed\" sqlstate=%s", r->id,
                      state[0] ? state : "-");
        }
        reply_error(r, status, code, "%s",
                    status == 409 ? "the resource conflicts with an existing one"
                    : status == 503 ? "the database is unavailable, retry later"
                    : status == 500 ? "internal error"
                    : "invalid value");
    }
    return res;
}


PGresult *
dbq(req_t *r, const char *sql, int nparams, ...)
{
    PGresult *res;
    va_list   ap;

    va_start(ap, nparams);
    res = dbq_reply_v(r, sql, nparams, ap);
    va_end(ap);
    return res;
}


int
page_total(req_t *r, PGresult *res, long offset, long long *total,
    const char *count_sql, int nparams, ...)
{
    int        last = PQnfields(res) - 1;
    PGresult  *cnt;
    va_list    ap;

    if (PQntuples(res) > 0) {
        *total = PQgetisnull(res, 0, last)
                 ? offset + PQntuples(res)
                 : atoll(PQgetvalue(res, 0, last));
        return 0;
    }
    if (offset == 0) {
        *total = 0;
        return 0;
    }

    /* an empty page past the end carries no total: count */
    va_start(ap, nparams);
    cnt = dbq_reply_v(r, count_sql, nparams, ap);
    va_end(ap);
    if (cnt == NULL) {
        return -1;
    }
    *total = atoll(PQgetvalue(cnt, 0, 0));
    return 0;
}


int
db_begin(req_t *r)
{
    if (dbq(r, "BEGIN", 0) == NULL) {
        return -1;
    }
    r->in_txn = 1;
    return 0;
}


int
db_commit(req_t *r)
{
    r->in_txn = 0;
    return dbq(r, "COMMIT", 0) == NULL ? -1 : 0;
}


void
db_rollback(req_t *r)
{
    PGconn *c;

    if (!r->in_txn) {
        return;
    }
    r->in_txn = 0;
    c = db_conn();
    if (c != NULL) {
        PQclear(PQexec(c, "ROLLBACK"));
    }
}


int
is_uuid(const char *s)
{
    int i;

    if (s == NULL || strlen(s) != 36) {
        return 0;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }
        } else if (!isxdigit((unsigned char) s[i])) {
            return 0;
        }
    }
    return 1;
}
