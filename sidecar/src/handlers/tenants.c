/* handlers/tenants.c - organisations: create and list mine, slug
 * availability, the tenant's info; and the small helpers the other
 * organisation handlers share (org_*) */
#include "handlers.h"
#include "../audit.h"
#include "../auth.h"
#include "../db.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names that would collide with our own hosts, paths or brand. */
static const char *reserved_slugs[] = {
    "admin", "administrator", "api", "app", "apps", "assets", "auth",
    "billing", "blog", "cdn", "console", "dashboard", "default", "dev",
    "docs", "gateway", "global", "health", "help", "internal", "login",
    "logout", "mail", "me", "new", "null", "platform", "production", "root",
    "security", "service", "services", "settings", "signup", "staging",
    "static", "status", "support", "system", "trueport", "trueportai",
    "trueportai-services", "undefined", "www",
    NULL
};


/* -- shared helpers ------------------------------------------------------ */

int
org_only_fields(req_t *r, yajl_val obj, const char *const *allowed)
{
    const char *const *a;
    size_t             i;

    for (i = 0; i < obj->u.object.len; i++) {
        for (a = allowed; *a != NULL; a++) {
            if (strcmp(obj->u.object.keys[i], *a) == 0) {
                break;
            }
        }
        if (*a == NULL) {
            reply_error(r, 422, "unknown_field", "unknown field \"%s\"",
                        org_safe(r, obj->u.object.keys[i], 64));
            return -1;
        }
    }
    return 0;
}


void
org_jw_col(jw_t *w, const char *key, PGresult *res, int row, int col,
    org_col_t kind)
{
    const char *v;

    jw_key(w, key);
    if (PQgetisnull(res, row, col)) {
        jw_null(w);
        return;
    }
    v = PQgetvalue(res, row, col);
    switch (kind) {
    case ORG_NUM:
        jw_raw(w, v);
        break;
    case ORG_JSON:
        org_jw_json(w, v);
        break;
    case ORG_BOOL:
        jw_bool(w, v[0] == 't');
        break;
    default:
        jw_strn(w, v, PQgetlength(res, row, col));
    }
}


const char *
org_safe(req_t *r, const char *s, size_t max)
{
    size_t  i, n = strnlen(s, max);
    char   *out = arena_alloc(&r->arena, n + 1);

    for (i = 0; i < n; i++) {
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    }
    out[n] = '\0';
    return out;
}


/* well-formed UTF-8 without control characters */
static int
clean_utf8(const unsigned char *s)
{
    int n, i;

    while (*s) {
        if (*s < 0x20 || *s == 0x7f) {
            return 0;
        }
        n = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 : (*s & 0xf0) == 0xe0 ? 2
            : (*s & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || (n == 1 && *s < 0xc2)) {
            return 0;
        }
        for (i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80) {
                return 0;
            }
        }
        /* overlong 3- and 4-byte forms, surrogates, beyond U+10FFFF */
        if ((n == 2 && s[0] == 0xe0 && s[1] < 0xa0)
            || (n == 2 && s[0] == 0xed && s[1] >= 0xa0)
            || (n == 3 && s[0] == 0xf0 && s[1] < 0x90)
            || (n == 3 && (s[0] > 0xf4 || (s[0] == 0xf4 && s[1] >= 0x90))))
        {
            return 0;
        }
        s += n + 1;
    }
    return 1;
}


int
org_query_text(req_t *r, const char *name, size_t max, const char **out)
{
    *out = req_query(r, name);
    if (*out != NULL
        && (strlen(*out) > max || !clean_utf8((const unsigned char *) *out)))
    {
        reply_error(r, 400, "invalid_filter",
                    "%s must be text of at most %zu bytes", name, max);
        return -1;
    }
    return 0;
}


void
org_jw_json(jw_t *w, const char *json)
{
    char     err[64];
    yajl_val v;

    /* jsonb's text form spaces its separators: write ours compactly
     * (what the parser refuses, e.g. deeper than it goes, as it is) */
    if (json_parse(json, strlen(json), JSON_LAX, &v, err, sizeof(err))
        != JSON_OK)
    {
        jw_raw(w, json);
        return;
    }
    jw_tree(w, v);
    json_free(v);
}


int
org_path_id(req_t *r, const char *name, const char **out)
{
    *out = req_param(r, name);
    if (!is_uuid(*out)) {
        reply_error(r, 404, "not_found", "no such %s",
                    strcmp(name, "user_id") == 0 ? "member" : "resource");
        return -1;
    }
    return 0;
}


void
org_db_fail(req_t *r, const char *sqlstate)
{
    const char *code;
    int         status;

    status = db_status_for(sqlstate, &code);
    reply_error(r, status, code, "%s",
                status == 409 ? "the resource conflicts with an existing one"
                : status == 503 ? "the database is unavailable, retry later"
                : status >= 500 ? "internal error" : "invalid value");
}


int
org_email(req_t *r, const char *in, char *out, size_t outlen)
{
    const char *at;
    size_t      i, n;

    n = strlen(in);
    at = strchr(in, '@');
    if (n < 3 || n > 320 || n >= outlen || at == NULL || at == in
        || at[1] == '\0' || at[1] == '.' || strchr(at + 1, '@') != NULL
        || strchr(at + 1, '.') == NULL || in[n - 1] == '.')
    {
        goto bad;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) in[i];

        if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ','
            || c == ';' || c == '"' || c == '\\')
        {
            goto bad;
        }
        out[i] = (char) tolower(c);
    }
    out[n] = '\0';
    return 0;

bad:
    reply_error(r, 422, "invalid_field", "\"email\" is not an email address");
    return -1;
}


/* The tenant's plan: its active subscription, or free when it has none
 * (a tenant made outside this API). */
#define ORG_PLAN_JOIN                                                       \
    " LEFT JOIN subscriptions s ON s.tenant_id = t.id"                      \
    "  AND s.status = 'active'"                                             \
    " JOIN plans p ON p.id = coalesce(s.plan_id, 'free')"


void
org_plan_from(PGresult *res, int row, int col, org_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", PQgetvalue(res, row, col));
    snprintf(p->name, sizeof(p->name), "%s", PQgetvalue(res, row, col + 1));
    p->price_cents = atoll(PQgetvalue(res, row, col + 2));
    p->default_rpm = atoll(PQgetvalue(res, row, col + 3));
    p->max_rpm = atoll(PQgetvalue(res, row, col + 4));
    p->max_keys = atoll(PQgetvalue(res, row, col + 5));
    p->monthly_requests = atoll(PQgetvalue(res, row, col + 6));
    p->log_retention_days = atoll(PQgetvalue(res, row, col + 7));
    p->self_service = PQgetvalue(res, row, col + 8)[0] == 't';
    p->default_credentials = PQgetvalue(res, row, col + 9)[0] == 't';
}


int
org_tenant_plan(req_t *r, const char *tenant_id, org_plan_t *p)
{
    PGresult *res;

    res = dbq(r, "SELECT" ORG_PLAN_COLS ", " ORG_TS("s.started_at")
                 " FROM tenants t" ORG_PLAN_JOIN " WHERE t.id = $1", 1,
              tenant_id);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return -1;
    }
    org_plan_from(res, 0, 0, p);
    snprintf(p->started_at, sizeof(p->started_at), "%s",
             PQgetvalue(res, 0, ORG_PLAN_NCOLS));
    return 0;
}


void
org_jw_limits(jw_t *w, const org_plan_t *p)
{
    jw_key(w, "limits");
    jw_obj(w);
    jw_kint(w, "default_rpm", p->default_rpm);
    jw_kint(w, "max_rpm", p->max_rpm);
    jw_kint(w, "max_keys", p->max_keys);
    jw_kint(w, "monthly_requests", p->monthly_requests);
    jw_kint(w, "log_retention_days", p->log_retention_days);
    jw_obj_end(w);
}


/* -- slugs --------------------------------------------------------------- */

const char *
slug_problem(const char *slug)
{
    const char **rw;
    size_t       i, n = strlen(slug);

    if (n < 3 || n > 40) {
        return "invalid: must be 3 to 40 characters";
    }
    for (i = 0; i < n; i++) {
        if (!(slug[i] >= 'a' && slug[i] <= 'z')
            && !(slug[i] >= '0' && slug[i] <= '9') && slug[i] != '-')
        {
            return "invalid: only lowercase letters, digits and hyphens";
        }
    }
    if (slug[0] == '-' || slug[n - 1] == '-') {
        return "invalid: must not start or end with a hyphen";
    }
    for (rw = reserved_slugs; *rw != NULL; rw++) {
        if (strcmp(slug, *rw) == 0) {
            return "reserved";
        }
    }
    return NULL;
}


/* 1..200 characters, something visible, no control characters */
static int
valid_name(const char *s)
{
    size_t chars = 0;
    int    visible = 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
        if ((c & 0xc0) != 0x80) {
            chars++;
        }
        if (c != ' ') {
            visible = 1;
        }
    }
    return visible && chars >= 1 && chars <= 200;
}


/* -- routes -------------------------------------------------------------- */

/* POST /global/tenants {name, slug}: the caller becomes the owner, the
 * default plan starts; one transaction. */
void
h_tenants_create(req_t *r)
{
    static const char *const fields[] = { "name", "slug", NULL };
    const char *name, *slug, *why, *state, *tid;
    PGresult   *t, *s, *n;
    long long   max;
    yajl_val    body;
    jw_t        w;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "name", F_REQUIRED, 1000, &name) != 0
        || req_field_str(r, body, "slug", F_REQUIRED, 1000, &slug) != 0)
    {
        return;
    }
    if (!valid_name(name)) {
        reply_error(r, 422, "invalid_field",
                    "\"name\" must be 1 to 200 characters, without control"
                    " characters");
        return;
    }
    why = slug_problem(slug);
    if (why != NULL) {
        reply_error(r, 422, strcmp(why, "reserved") == 0 ? "slug_reserved"
                                                         : "invalid_slug",
                    "slug \"%s\" is %s", org_safe(r, slug, 40),
                    strcmp(why, "reserved") == 0 ? "reserved" : why);
        return;
    }

    /* anyone can register: the tenants a user creates are capped (each
     * starts a plan and may spend what it grants); the user's row
     * serialises two creations. Platform admins are the operator's. */
    max = global_config_int(r, "tenants.max_per_user");

    if (db_begin(r) != 0) {
        return;
    }

    if (!r->auth.platform_admin) {
        n = dbq(r, "SELECT (SELECT count(*) FROM tenants"
                   " WHERE created_by = u.id) FROM users u"
                   " WHERE u.id = $1 FOR UPDATE", 1, r->auth.user_id);
        if (n == NULL) {
            return;
        }
        if (PQntuples(n) == 1 && atoll(PQgetvalue(n, 0, 0)) >= max) {
            reply_error(r, 403, "tenant_limit_reached",
                        "you may create at most %lld organisations"
                        " (tenants.max_per_user)", max);
            return;
        }
    }

    t = dbq_try(r, &state,
                "INSERT INTO tenants (name, slug, created_by)"
                " VALUES ($1, $2, $3)"
                " RETURNING id, status, " ORG_TS("created_at"),
                3, name, slug, r->auth.user_id);
    if (t == NULL) {
        if (strcmp(state, "23505") == 0) {
            reply_error(r, 409, "slug_taken", "slug \"%s\" is already taken",
                        slug);
        } else {
            org_db_fail(r, state);
        }
        return;
    }
    tid = PQgetvalue(t, 0, 0);

    /* the default plan is an admin setting; a plan removed since falls
     * back to free */
    if (dbq(r, "INSERT INTO memberships (tenant_id, user_id, role)"
               " VALUES ($1, $2, 'owner')", 2, tid, r->auth.user_id) == NULL
        || (s = dbq(r,
                    "INSERT INTO subscriptions (tenant_id, plan_id,"
                    " activated_by)"
                    " SELECT $1, coalesce((SELECT p.id FROM global_configs g"
                    "  JOIN plans p ON p.id = g.value #>> '{}'"
                    "  WHERE g.key = 'default_plan'), 'free'), $2"
                    " RETURNING plan_id", 2, tid, r->auth.user_id)) == NULL
        || audit_record(r, tid, "tenant.created", tid,
                        arena_sprintf(&r->arena,
                                      "{\"slug\":\"%s\",\"plan\":\"%s\"}",
                                      slug, PQgetvalue(s, 0, 0))) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "id", tid);
    jw_kstr(&w, "name", name);
    jw_kstr(&w, "slug", slug);
    jw_kstr(&w, "status", PQgetvalue(t, 0, 1));
    jw_kstr(&w, "role", "owner");
    jw_kstr(&w, "plan", PQgetvalue(s, 0, 0));
    jw_kstr(&w, "created_at", PQgetvalue(t, 0, 2));
    jw_obj_end(&w);
    reply_json(r, 201, &w);
}


/* GET /global/tenants: the caller's organisations with their role */
void
h_tenants_list(req_t *r)
{
    char      slimit[24], soffset[24];
    long      limit, offset;
    long long total;
    PGresult *res;
    jw_t      w;
    int       i;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

    res = dbq(r,
              "SELECT t.id, t.name, t.slug, t.status, m.role,"
              " coalesce(s.plan_id, 'free'), " ORG_TS("t.created_at") ","
              " " ORG_TS("m.created_at") ","
              " (SELECT count(*) FROM memberships WHERE user_id = $1)"
              " FROM memberships m JOIN tenants t ON t.id = m.tenant_id"
              " LEFT JOIN subscriptions s ON s.tenant_id = t.id"
              "  AND s.status = 'active'"
              " WHERE m.user_id = $1"
              " ORDER BY m.created_at, t.id LIMIT $2 OFFSET $3", 3,
              r->auth.user_id, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM memberships WHERE user_id = $1",
                   1, r->auth.user_id) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_obj(&w);
        jw_kstr(&w, "id", PQgetvalue(res, i, 0));
        jw_kstr(&w, "name", PQgetvalue(res, i, 1));
        jw_kstr(&w, "slug", PQgetvalue(res, i, 2));
        jw_kstr(&w, "status", PQgetvalue(res, i, 3));
        jw_kstr(&w, "role", PQgetvalue(res, i, 4));
        jw_kstr(&w, "plan", PQgetvalue(res, i, 5));
        jw_kstr(&w, "created_at", PQgetvalue(res, i, 6));
        jw_kstr(&w, "joined_at", PQgetvalue(res, i, 7));
        jw_obj_end(&w);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}


/* GET /global/tenants/check-availability?slug= (public) */
void
h_tenants_check(req_t *r)
{
    const char *slug, *why;
    PGresult   *res;
    jw_t        w;

    slug = req_query(r, "slug");
    if (slug == NULL) {
        reply_error(r, 400, "missing_parameter", "the slug parameter is"
                    " required (?slug=)");
        return;
    }

    why = slug_problem(slug);
    if (why == NULL) {
        res = dbq(r, "SELECT 1 FROM tenants WHERE slug = $1", 1, slug);
        if (res == NULL) {
            return;
        }
        if (PQntuples(res) > 0) {
            why = "taken";
        }
    }

    jw_init(&w);
    jw_obj(&w);
    /* an invalid slug can be anything: echo a bounded, printable copy */
    jw_kstr(&w, "slug", why == NULL ? slug : org_safe(r, slug, 64));
    jw_kbool(&w, "available", why == NULL);
    jw_kstr(&w, "reason", why);
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* GET /service/info: the token's tenant, plan, limits, usage this month */
void
h_service_info(req_t *r)
{
    org_plan_t p;
    PGresult  *t, *u;
    jw_t       w;

    t = dbq(r,
            "SELECT t.id, t.name, t.slug, t.status,"
            " " ORG_TS("t.created_at") ", array_to_json(t.environments),"
            " to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'),"
            ORG_PLAN_COLS ", " ORG_TS("s.started_at")
            " FROM tenants t" ORG_PLAN_JOIN " WHERE t.id = $1", 1,
            r->auth.tenant_id);
    if (t == NULL) {
        return;
    }
    if (PQntuples(t) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return;
    }
    org_plan_from(t, 0, 7, &p);
    snprintf(p.started_at, sizeof(p.started_at), "%s",
             PQgetvalue(t, 0, 7 + ORG_PLAN_NCOLS));

    u = dbq(r,
            "SELECT coalesce(sum(count), 0), coalesce(sum(total_tokens), 0),"
            " coalesce(sum(cost_micro_usd), 0) FROM usage_logs"
            " WHERE tenant_id = $1 AND created_at >="
            " date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            1, r->auth.tenant_id);
    if (u == NULL) {
        return;
    }

    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "tenant");
    jw_obj(&w);
    jw_kstr(&w, "id", PQgetvalue(t, 0, 0));
    jw_kstr(&w, "name", PQgetvalue(t, 0, 1));
    jw_kstr(&w, "slug", PQgetvalue(t, 0, 2));
    jw_kstr(&w, "status", PQgetvalue(t, 0, 3));
    jw_kstr(&w, "created_at", PQgetvalue(t, 0, 4));
    jw_kraw(&w, "environments", PQgetvalue(t, 0, 5));
    jw_obj_end(&w);
    jw_kstr(&w, "role", role_name(r->auth.role));
    jw_kstr(&w, "env", r->auth.env);
    jw_key(&w, "plan");
    jw_obj(&w);
    jw_kstr(&w, "id", p.id);
    jw_kstr(&w, "name", p.name);
    jw_kint(&w, "price_cents", p.price_cents);
    jw_kstr(&w, "started_at", p.started_at[0] ? p.started_at : NULL);
    jw_obj_end(&w);
    org_jw_limits(&w, &p);
    jw_key(&w, "usage");
    jw_obj(&w);
    jw_kstr(&w, "month", PQgetvalue(t, 0, 6));
    jw_kraw(&w, "requests", PQgetvalue(u, 0, 0));
    jw_kraw(&w, "total_tokens", PQgetvalue(u, 0, 1));
    jw_kraw(&w, "cost_micro_usd", PQgetvalue(u, 0, 2));
    jw_obj_end(&w);
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* GET /service/audit-log?action=: the tenant's trail, newest first */
void
h_audit_list(req_t *r)
{
    jw_t w;

    jw_init(&w);
    if (audit_list(r, r->auth.tenant_id, &w) != 0) {
        jw_free(&w);
        return;
    }
    reply_json(r, 200, &w);
}
