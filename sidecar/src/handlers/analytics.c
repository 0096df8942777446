/* handlers/analytics.c - usage logs, aggregated stats and policy violations
 * of the token's tenant (rows come from the spool ingester) */
#include "handlers.h"
#include "../db.h"

#include <stdlib.h>
#include <string.h>

static const char *providers[] = { "openai", "anthropic", "google", "azure",
                                   NULL };


static int
in_list(const char *s, const char **list)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0) {
            return 1;
        }
    }
    return 0;
}


/* A column as JSON: NULL -> null, numbers raw, the rest as strings. */
static void
jw_col(jw_t *w, const char *key, PGresult *res, int row, int col, int numeric)
{
    jw_key(w, key);
    if (PQgetisnull(res, row, col)) {
        jw_null(w);
    } else if (numeric) {
        jw_raw(w, PQgetvalue(res, row, col));
    } else {
        jw_str(w, PQgetvalue(res, row, col));
    }
}


static void
jw_bool_col(jw_t *w, const char *key, PGresult *res, int row, int col)
{
    jw_key(w, key);
    if (PQgetisnull(res, row, col)) {
        jw_null(w);
    } else {
        jw_bool(w, PQgetvalue(res, row, col)[0] == 't');
    }
}


typedef struct {
    const char *key_id, *provider, *model, *status, *env, *from, *to;
    const char *rule_id, *action;
} filters_t;


/* Validate-or-reply for the query-string filters. */
static int
parse_filters(req_t *r, filters_t *f)
{
    const char *s;
    char       *end;
    long        st;

    memset(f, 0, sizeof(*f));

    f->key_id = req_query(r, "key_id");
    f->rule_id = req_query(r, "rule_id");
    if ((f->key_id && !is_uuid(f->key_id))
        || (f->rule_id && !is_uuid(f->rule_id)))
    {
        reply_error(r, 400, "invalid_filter", "key_id and rule_id must be ids");
        return -1;
    }

    f->provider = req_query(r, "provider");
    if (f->provider && !in_list(f->provider, providers)) {
        reply_error(r, 400, "invalid_filter",
                    "provider must be openai, anthropic, google or azure");
        return -1;
    }

    f->model = req_query(r, "model");
    f->env = req_query(r, "env");
    if ((f->model && strlen(f->model) > 128)
        || (f->env && strlen(f->env) > 32))
    {
        reply_error(r, 400, "invalid_filter", "model or env is too long");
        return -1;
    }

    s = req_query(r, "status");
    if (s != NULL) {
        st = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0' || st < 100 || st > 599) {
            reply_error(r, 400, "invalid_filter",
                        "status must be an HTTP status code");
            return -1;
        }
        f->status = s;
    }

    s = req_query(r, "action");
    if (s != NULL && strcmp(s, "block") != 0 && strcmp(s, "redact") != 0
        && strcmp(s, "log") != 0)
    {
        reply_error(r, 400, "invalid_filter",
                    "action must be block, redact or log");
        return -1;
    }
    f->action = s;

    f->from = req_query(r, "from");
    f->to = req_query(r, "to");
    return 0;
}


/* from/to are RFC 3339 (or anything Postgres reads as a timestamptz); a
 * bad one is the client's mistake, not a server error */
static PGresult *
query_filtered(req_t *r, const char *sql, int n, const char **p)
{
    const char *state, *code;
    PGresult   *res;
    int         status;

    res = dbq_try(r, &state, sql, n, p[0], p[1], p[2], p[3], p[4], p[5],
                  p[6], p[7], p[8], p[9], p[10]);
    if (res != NULL) {
        return res;
    }
    if (strncmp(state, "22", 2) == 0) {
        reply_error(r, 400, "invalid_filter",
                    "from and to must be timestamps (RFC 3339)");
        return NULL;
    }
    status = db_status_for(state, &code);
    reply_error(r, status, code, "%s", status == 503
                ? "the database is unavailable, retry later" : "internal error");
    return NULL;
}


#define LOG_WHERE                                                         \
    " WHERE tenant_id = $1"                                               \
    " AND ($2::uuid IS NULL OR key_id = $2)"                              \
    " AND ($3::text IS NULL OR provider = $3)"                            \
    " AND ($4::text IS NULL OR model = $4)"                               \
    " AND ($5::int IS NULL OR status = $5)"                               \
    " AND ($6::text IS NULL OR env = $6)" LOG_RANGE("$7", "$8")

/* from (inclusive) and to (exclusive), each optional */
#define LOG_RANGE(from, to)                                               \
    " AND created_at >= coalesce(" from "::timestamptz, '-infinity')"     \
    " AND created_at < coalesce(" to "::timestamptz, 'infinity')"


void
h_analytics_logs(req_t *r)
{
    filters_t   f;
    long        limit, offset;
    char        slimit[24], soffset[24];
    const char *p[11], *cp[11];
    PGresult   *res, *cnt;
    jw_t        w;
    int         i;

    if (req_page(r, &limit, &offset) != 0 || parse_filters(r, &f) != 0) {
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

    p[0] = r->auth.tenant_id;
    p[1] = f.key_id;
    p[2] = f.provider;
    p[3] = f.model;
    p[4] = f.status;
    p[5] = f.env;
    p[6] = f.from;
    p[7] = f.to;
    p[8] = slimit;
    p[9] = soffset;
    p[10] = NULL;

    /* The exact total is a count over the tenant's rows in the range, the
     * bulk of this route's cost (its rate limit is what bounds it). With
     * no filter on columns outside an index the count names only indexed
     * columns, so Postgres can answer it from the (tenant_id, created_at)
     * or (tenant_id, key_id, created_at) index alone instead of visiting
     * every row (the generic plan's "$n IS NULL OR col = $n" needs the
     * row). */
    if (f.provider == NULL && f.model == NULL && f.status == NULL
        && f.env == NULL)
    {
        cp[0] = r->auth.tenant_id;
        cp[1] = f.from;
        cp[2] = f.to;
        cp[3] = f.key_id;
        cp[4] = NULL;
        cnt = f.key_id == NULL
            ? query_filtered(r, "SELECT count(*) FROM usage_logs"
                                " WHERE tenant_id = $1" LOG_RANGE("$2", "$3"),
                             3, cp)
            : query_filtered(r, "SELECT count(*) FROM usage_logs"
                                " WHERE tenant_id = $1 AND key_id = $4"
                                LOG_RANGE("$2", "$3"), 4, cp);
    } else {
        cnt = query_filtered(r, "SELECT count(*) FROM usage_logs" LOG_WHERE
                                " AND $9::int > 0 AND $10::int >= 0", 10, p);
    }
    if (cnt == NULL) {
        return;
    }
    res = query_filtered(r,
        "SELECT request_id, to_char(created_at AT TIME ZONE 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), key_id, env, provider, model,"
        " path, status, stream, input_tokens, output_tokens, cached_tokens,"
        " reasoning_tokens, total_tokens, cost_micro_usd, ttfb_ms, latency_ms,"
        " bytes_in, bytes_out, error_kind, completed, count"
        " FROM usage_logs" LOG_WHERE
        " ORDER BY created_at DESC, request_id DESC LIMIT $9 OFFSET $10",
        10, p);
    if (res == NULL) {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_obj(&w);
        jw_col(&w, "request_id", res, i, 0, 0);
        jw_col(&w, "created_at", res, i, 1, 0);
        jw_col(&w, "key_id", res, i, 2, 0);
        jw_col(&w, "env", res, i, 3, 0);
        jw_col(&w, "provider", res, i, 4, 0);
        jw_col(&w, "model", res, i, 5, 0);
        jw_col(&w, "path", res, i, 6, 0);
        jw_col(&w, "status", res, i, 7, 1);
        jw_bool_col(&w, "stream", res, i, 8);
        jw_col(&w, "input_tokens", res, i, 9, 1);
        jw_col(&w, "output_tokens", res, i, 10, 1);
        jw_col(&w, "cached_tokens", res, i, 11, 1);
        jw_col(&w, "reasoning_tokens", res, i, 12, 1);
        jw_col(&w, "total_tokens", res, i, 13, 1);
        jw_col(&w, "cost_micro_usd", res, i, 14, 1);
        jw_col(&w, "ttfb_ms", res, i, 15, 1);
        jw_col(&w, "latency_ms", res, i, 16, 1);
        jw_col(&w, "bytes_in", res, i, 17, 1);
        jw_col(&w, "bytes_out", res, i, 18, 1);
        jw_col(&w, "error_kind", res, i, 19, 0);
        jw_bool_col(&w, "completed", res, i, 20);
        jw_col(&w, "count", res, i, 21, 1);
        jw_obj_end(&w);
    }
    jw_page_end(&w, atoll(PQgetvalue(cnt, 0, 0)), limit, offset);
    reply_json(r, 200, &w);
}


/* the SELECT list shared by totals and series rows; a row stands for
 * "count" requests (refusals aggregated near the spool's cap) */
#define STATS_COLS                                                        \
    " coalesce(sum(count), 0),"                                           \
    " coalesce(sum(count) FILTER (WHERE status >= 400 OR error_kind IS NOT NULL), 0)," \
    " coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"   \
    " coalesce(sum(cached_tokens), 0), coalesce(sum(reasoning_tokens), 0),"\
    " coalesce(sum(total_tokens), 0), coalesce(sum(cost_micro_usd), 0),"  \
    " coalesce(sum(count) FILTER (WHERE cost_micro_usd IS NULL"           \
    "                  AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)), 0),"\
    " round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)),"    \
    " round(percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms))"

#define STATS_WHERE                                                       \
    " FROM usage_logs WHERE tenant_id = $1"                               \
    " AND created_at >= coalesce($2::timestamptz, now() - interval '30 days')" \
    " AND created_at < coalesce($3::timestamptz, 'infinity')"             \
    " AND ($4::text IS NULL OR env = $4)"                                 \
    " AND ($5::text IS NULL OR provider = $5)"                            \
    " AND ($6::uuid IS NULL OR key_id = $6)"                              \
    " AND ($7::text IS NULL OR model = $7)"                               \
    " AND ($8::int IS NULL OR status = $8)"


static void
jw_stats(jw_t *w, PGresult *res, int row, int c)
{
    jw_col(w, "requests", res, row, c + 0, 1);
    jw_col(w, "errors", res, row, c + 1, 1);
    jw_col(w, "input_tokens", res, row, c + 2, 1);
    jw_col(w, "output_tokens", res, row, c + 3, 1);
    jw_col(w, "cached_tokens", res, row, c + 4, 1);
    jw_col(w, "reasoning_tokens", res, row, c + 5, 1);
    jw_col(w, "total_tokens", res, row, c + 6, 1);
    jw_col(w, "cost_micro_usd", res, row, c + 7, 1);
    jw_col(w, "unpriced_requests", res, row, c + 8, 1);
    jw_col(w, "latency_p50_ms", res, row, c + 9, 1);
    jw_col(w, "latency_p95_ms", res, row, c + 10, 1);
}


void
h_analytics_stats(req_t *r)
{
    static const struct {
        const char *name;
        const char *expr;      /* the series' bucket */
    } groups[] = {
        { "day",      "to_char(date_trunc('day', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')" },
        { "hour",     "to_char(date_trunc('hour', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')" },
        { "model",    "coalesce(model, 'unknown')" },
        { "provider", "provider" },
        { "key",      "coalesce(key_id::text, 'none')" },
    };
    filters_t   f;
    const char *group, *p[11];
    PGresult   *tot, *ser = NULL;
    char       *sql;
    jw_t        w;
    size_t      g;
    int         i;

    if (parse_filters(r, &f) != 0) {
        return;
    }

    group = req_query(r, "group_by");
    g = 0;
    if (group != NULL) {
        for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
            if (strcmp(group, groups[g].name) == 0) {
                break;
            }
        }
        if (g == sizeof(groups) / sizeof(groups[0])) {
            reply_error(r, 400, "invalid_group_by",
                        "group_by must be day, hour, model, provider or key");
            return;
        }
    }

    memset(p, 0, sizeof(p));
    p[0] = r->auth.tenant_id;
    p[1] = f.from;
    p[2] = f.to;
    p[3] = f.env;
    p[4] = f.provider;
    p[5] = f.key_id;
    p[6] = f.model;
    p[7] = f.status;

    tot = query_filtered(r, "SELECT" STATS_COLS STATS_WHERE, 8, p);
    if (tot == NULL) {
        return;
    }

    if (group != NULL) {
        sql = arena_sprintf(&r->arena,
                            "SELECT %s AS bucket," STATS_COLS STATS_WHERE
                            " GROUP BY 1 ORDER BY 1 LIMIT 1000",
                            groups[g].expr);
        ser = query_filtered(r, sql, 8, p);
        if (ser == NULL) {
            return;
        }
    }

    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "from", f.from);
    jw_kstr(&w, "to", f.to);
    jw_key(&w, "totals");
    jw_obj(&w);
    jw_stats(&w, tot, 0, 0);
    jw_obj_end(&w);
    if (ser != NULL) {
        jw_kstr(&w, "group_by", group);
        jw_key(&w, "series");
        jw_arr(&w);
        for (i = 0; i < PQntuples(ser); i++) {
            jw_obj(&w);
            jw_col(&w, groups[g].name, ser, i, 0, 0);
            jw_stats(&w, ser, i, 1);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
    }
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


#define VIOL_COLS                                                         \
    " id, to_char(created_at AT TIME ZONE 'UTC',"                         \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), request_id, key_id, env,"     \
    " provider, rule_id, rule_name, rule_type, action, detector, excerpt"


static void
jw_violation(jw_t *w, PGresult *res, int i)
{
    jw_obj(w);
    jw_col(w, "id", res, i, 0, 0);
    jw_col(w, "created_at", res, i, 1, 0);
    jw_col(w, "request_id", res, i, 2, 0);
    jw_col(w, "key_id", res, i, 3, 0);
    jw_col(w, "env", res, i, 4, 0);
    jw_col(w, "provider", res, i, 5, 0);
    jw_col(w, "rule_id", res, i, 6, 0);
    jw_col(w, "rule_name", res, i, 7, 0);
    jw_col(w, "rule_type", res, i, 8, 0);
    jw_col(w, "action", res, i, 9, 0);
    jw_col(w, "detector", res, i, 10, 0);
    jw_col(w, "excerpt", res, i, 11, 0);
    jw_obj_end(w);
}


#define VIOL_WHERE                                                        \
    " FROM violations WHERE tenant_id = $1"                               \
    " AND ($2::uuid IS NULL OR rule_id = $2)"                             \
    " AND ($3::uuid IS NULL OR key_id = $3)"                              \
    " AND ($4::text IS NULL OR action = $4)"                              \
    " AND created_at >= coalesce($5::timestamptz, '-infinity')"           \
    " AND created_at < coalesce($6::timestamptz, 'infinity')"


void
h_violations_list(req_t *r)
{
    filters_t   f;
    long        limit, offset;
    char        slimit[24], soffset[24];
    const char *p[11];
    PGresult   *res, *cnt;
    jw_t        w;
    int         i;

    if (req_page(r, &limit, &offset) != 0 || parse_filters(r, &f) != 0) {
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

    memset(p, 0, sizeof(p));
    p[0] = r->auth.tenant_id;
    p[1] = f.rule_id;
    p[2] = f.key_id;
    p[3] = f.action;
    p[4] = f.from;
    p[5] = f.to;
    p[6] = slimit;
    p[7] = soffset;

    cnt = query_filtered(r, "SELECT count(*)" VIOL_WHERE, 6, p);
    if (cnt == NULL) {
        return;
    }
    res = query_filtered(r, "SELECT" VIOL_COLS VIOL_WHERE
                            " ORDER BY created_at DESC, id LIMIT $7 OFFSET $8",
                         8, p);
    if (res == NULL) {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_violation(&w, res, i);
    }
    jw_page_end(&w, atoll(PQgetvalue(cnt, 0, 0)), limit, offset);
    reply_json(r, 200, &w);
}


void
h_violations_get(req_t *r)
{
    const char *id = req_param(r, "id");
    PGresult   *res;
    jw_t        w;

    if (!is_uuid(id)) {
        reply_error(r, 404, "not_found", "no such violation");
        return;
    }
    res = dbq(r, "SELECT" VIOL_COLS " FROM violations"
                 " WHERE id = $1 AND tenant_id = $2", 2, id,
              r->auth.tenant_id);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such violation");
        return;
    }
    jw_init(&w);
    jw_violation(&w, res, 0);
    reply_json(r, 200, &w);
}
