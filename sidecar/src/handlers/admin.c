/* handlers/admin.c - the platform admin's view: every tenant (and suspending
 * one), every user, platform numbers, the global settings allowlist and
 * the audit trail */
#include "handlers.h"
#include "../audit.h"
#include "../log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LIKE pattern for "contains s", with the user's wildcards taken literally */
#define SQL_CONTAINS(p)                                                     \
    "'%' || replace(replace(replace(" p ", '\\', '\\\\'), '%', '\\%'),"     \
    " '_', '\\_') || '%'"

#define TENANT_COLS                                                         \
    " t.id, t.name, t.slug, t.status, t.status_reason,"                     \
    " coalesce(s.plan_id, 'free'),"                                         \
    " (SELECT count(*) FROM memberships m WHERE m.tenant_id = t.id),"       \
    " " ORG_TS("t.created_at") ", " ORG_TS("t.updated_at")

#define TENANT_FROM                                                         \
    " FROM tenants t LEFT JOIN subscriptions s ON s.tenant_id = t.id"       \
    "  AND s.status = 'active'"


static void
jw_tenant_fields(jw_t *w, PGresult *res, int i)
{
    jw_kstr(w, "id", PQgetvalue(res, i, 0));
    jw_kstr(w, "name", PQgetvalue(res, i, 1));
    jw_kstr(w, "slug", PQgetvalue(res, i, 2));
    jw_kstr(w, "status", PQgetvalue(res, i, 3));
    org_jw_col(w, "status_reason", res, i, 4, ORG_STR);
    jw_kstr(w, "plan", PQgetvalue(res, i, 5));
    org_jw_col(w, "members", res, i, 6, ORG_NUM);
    jw_kstr(w, "created_at", PQgetvalue(res, i, 7));
    jw_kstr(w, "updated_at", PQgetvalue(res, i, 8));
}


/* GET /admin/tenants?status=active|suspended&q= */
void
h_admin_tenants_list(req_t *r)
{
    const char *status, *q;
    char        slimit[24], soffset[24];
    long        limit, offset;
    long long   total;
    PGresult   *res;
    jw_t        w;
    int         i;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    status = req_query(r, "status");
    if (status != NULL && strcmp(status, "active") != 0
        && strcmp(status, "suspended") != 0)
    {
        reply_error(r, 400, "invalid_filter",
                    "status must be active or suspended");
        return;
    }
    if (org_query_text(r, "q", 200, &q) != 0) {
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

#define WHERE                                                               \
    " WHERE ($1::text IS NULL OR t.status = $1)"                            \
    " AND ($2::text IS NULL OR t.slug ILIKE " SQL_CONTAINS("$2")            \
    "  OR t.name ILIKE " SQL_CONTAINS("$2") ")"

    res = dbq(r, "SELECT" TENANT_COLS ","
                 " (SELECT count(*) FROM tenants t" WHERE ")" TENANT_FROM WHERE
                 " ORDER BY t.created_at, t.id LIMIT $3 OFFSET $4", 4,
              status, q, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM tenants t" WHERE,
                   2, status, q) != 0)
    {
        return;
    }
#undef WHERE

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_obj(&w);
        jw_tenant_fields(&w, res, i);
        jw_obj_end(&w);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}


/* Live API keys of a tenant (or all), once the gateway's migration has
 * made the table; NULL (shown as null) when they cannot be counted. */
static const char *
count_keys(req_t *r, const char *tenant_id)
{
    const char *state;
    PGresult   *res;

    res = dbq_try(r, &state, "SELECT to_regclass('api_keys') IS NOT NULL", 0);
    if (res != NULL && PQgetvalue(res, 0, 0)[0] != 't') {
        return "0";
    }
    if (res != NULL) {
        res = dbq_try(r, &state,
                      "SELECT count(*) FROM api_keys WHERE deleted_at IS NULL"
                      " AND ($1::uuid IS NULL OR tenant_id = $1)", 1,
                      tenant_id);
    }
    if (res == NULL) {
        log_warn("req=%s msg=\"cannot count keys\" sqlstate=%s", r->id,
                 state[0] ? state : "-");
        return NULL;
    }
    return PQgetvalue(res, 0, 0);
}


static PGresult *
month_usage(req_t *r, const char *tenant_id)
{
    return dbq(r,
               "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'),"
               " coalesce(sum(count), 0),"
               " coalesce(sum(total_tokens), 0),"
               " coalesce(sum(cost_micro_usd), 0) FROM usage_logs"
               " WHERE ($1::uuid IS NULL OR tenant_id = $1) AND created_at >="
               " date_trunc('month', now() AT TIME ZONE 'UTC')"
               " AT TIME ZONE 'UTC'", 1, tenant_id);
}


static PGresult *
tenant_row(req_t *r, const char *id)
{
    PGresult *res;

    res = dbq(r, "SELECT" TENANT_COLS TENANT_FROM " WHERE t.id = $1", 1, id);
    if (res != NULL && PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return NULL;
    }
    return res;
}


/* GET /admin/tenants/{id} */
void
h_admin_tenants_get(req_t *r)
{
    const char *id, *keys;
    PGresult   *t, *owners, *u;
    org_plan_t  p;
    jw_t        w;
    int         i;

    if (org_path_id(r, "id", &id) != 0 || (t = tenant_row(r, id)) == NULL
        || org_tenant_plan(r, id, &p) != 0)
    {
        return;
    }
    owners = dbq(r,
                 "SELECT u.id, u.email, u.name FROM memberships m"
                 " JOIN users u ON u.id = m.user_id"
                 " WHERE m.tenant_id = $1 AND m.role = 'owner'"
                 " ORDER BY m.created_at, u.id", 1, id);
    if (owners == NULL || (u = month_usage(r, id)) == NULL) {
        return;
    }
    keys = count_keys(r, id);

    jw_init(&w);
    jw_obj(&w);
    jw_tenant_fields(&w, t, 0);
    jw_key(&w, "owners");
    jw_arr(&w);
    for (i = 0; i < PQntuples(owners); i++) {
        jw_obj(&w);
        jw_kstr(&w, "user_id", PQgetvalue(owners, i, 0));
        jw_kstr(&w, "email", PQgetvalue(owners, i, 1));
        jw_kstr(&w, "name", PQgetvalue(owners, i, 2));
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "subscription");
    jw_obj(&w);
    jw_kstr(&w, "plan", p.id);
    jw_kstr(&w, "plan_name", p.name);
    jw_kstr(&w, "started_at", p.started_at[0] ? p.started_at : NULL);
    jw_obj_end(&w);
    org_jw_limits(&w, &p);
    if (keys != NULL) {
        jw_kraw(&w, "keys", keys);
    } else {
        jw_knull(&w, "keys");
    }
    jw_key(&w, "usage");
    jw_obj(&w);
    jw_kstr(&w, "month", PQgetvalue(u, 0, 0));
    jw_kraw(&w, "requests", PQgetvalue(u, 0, 1));
    jw_kraw(&w, "total_tokens", PQgetvalue(u, 0, 2));
    jw_kraw(&w, "cost_micro_usd", PQgetvalue(u, 0, 3));
    jw_obj_end(&w);
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* PUT /admin/tenants/{id}/status {status, reason?}: a suspended tenant's
 * members get 403 on every service route at once (auth.c reads the
 * status on each request) */
void
h_admin_tenants_status(req_t *r)
{
    static const char *const fields[] = { "status", "reason", NULL };
    const char *id, *status, *reason;
    PGresult   *cur, *t;
    yajl_val    body;
    jw_t        w, d;

    if (org_path_id(r, "id", &id) != 0
        || req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "status", F_REQUIRED, 16, &status) != 0
        || req_field_str(r, body, "reason", F_NULLABLE, 500, &reason) != 0)
    {
        return;
    }
    if (strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0) {
        reply_error(r, 422, "invalid_field",
                    "\"status\" must be active or suspended");
        return;
    }

    if (db_begin(r) != 0) {
        return;
    }
    cur = dbq(r, "SELECT status FROM tenants WHERE id = $1 FOR UPDATE", 1,
              id);
    if (cur == NULL) {
        return;
    }
    if (PQntuples(cur) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return;
    }

    jw_init(&d);
    jw_obj(&d);
    jw_kstr(&d, "from", PQgetvalue(cur, 0, 0));
    jw_kstr(&d, "to", status);
    jw_kstr(&d, "reason", reason);
    jw_obj_end(&d);

    if (dbq(r, "UPDATE tenants SET status = $2, status_reason = $3,"
               " updated_at = now() WHERE id = $1", 3, id, status, reason)
        == NULL
        || audit_record(r, id, "tenant.status_changed", id, d.buf) != 0
        || (t = tenant_row(r, id)) == NULL
        || db_commit(r) != 0)
    {
        jw_free(&d);
        return;
    }
    jw_free(&d);
    log_info("req=%s msg=\"tenant status changed\" tenant=%s status=%s"
             " by=%s", r->id, id, status, r->auth.user_id);

    jw_init(&w);
    jw_obj(&w);
    jw_tenant_fields(&w, t, 0);
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* GET /admin/users?email= (case-insensitive substring) */
void
h_admin_users_list(req_t *r)
{
    const char *email;
    char        slimit[24], soffset[24];
    long        limit, offset;
    long long   total;
    PGresult   *res;
    jw_t        w;
    int         i;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    if (org_query_text(r, "email", 320, &email) != 0) {
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

#define WHERE " WHERE ($1::text IS NULL OR u.email ILIKE " SQL_CONTAINS("$1") ")"

    res = dbq(r,
              "SELECT u.id, u.email, u.name, u.is_platform_admin,"
              " (SELECT count(*) FROM memberships m WHERE m.user_id = u.id),"
              " " ORG_TS("u.created_at") ","
              " (SELECT count(*) FROM users u" WHERE ")"
              " FROM users u" WHERE
              " ORDER BY u.created_at, u.id LIMIT $2 OFFSET $3", 3,
              email, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM users u" WHERE,
                   1, email) != 0)
    {
        return;
    }
#undef WHERE

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_obj(&w);
        jw_kstr(&w, "id", PQgetvalue(res, i, 0));
        jw_kstr(&w, "email", PQgetvalue(res, i, 1));
        jw_kstr(&w, "name", PQgetvalue(res, i, 2));
        org_jw_col(&w, "is_platform_admin", res, i, 3, ORG_BOOL);
        org_jw_col(&w, "tenants", res, i, 4, ORG_NUM);
        jw_kstr(&w, "created_at", PQgetvalue(res, i, 5));
        jw_obj_end(&w);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}


/* GET /admin/stats: requests are this month's (usage_logs is partitioned
 * by month; an all-time count would scan every partition) */
void
h_admin_stats(req_t *r)
{
    const char *keys;
    PGresult   *res, *u;
    jw_t        w;

    res = dbq(r,
              "SELECT (SELECT count(*) FROM tenants),"
              " (SELECT count(*) FROM tenants WHERE status = 'active'),"
              " (SELECT count(*) FROM tenants WHERE status = 'suspended'),"
              " (SELECT count(*) FROM users),"
              " (SELECT count(*) FROM users WHERE is_platform_admin)", 0);
    if (res == NULL || (u = month_usage(r, NULL)) == NULL) {
        return;
    }
    keys = count_keys(r, NULL);

    jw_init(&w);
    jw_obj(&w);
    jw_kraw(&w, "tenants", PQgetvalue(res, 0, 0));
    jw_kraw(&w, "tenants_active", PQgetvalue(res, 0, 1));
    jw_kraw(&w, "tenants_suspended", PQgetvalue(res, 0, 2));
    jw_kraw(&w, "users", PQgetvalue(res, 0, 3));
    jw_kraw(&w, "platform_admins", PQgetvalue(res, 0, 4));
    if (keys != NULL) {
        jw_kraw(&w, "keys", keys);
    } else {
        jw_knull(&w, "keys");
    }
    jw_kraw(&w, "requests", PQgetvalue(u, 0, 1));
    jw_kraw(&w, "total_tokens", PQgetvalue(u, 0, 2));
    jw_kraw(&w, "cost_micro_usd", PQgetvalue(u, 0, 3));
    jw_kstr(&w, "month", PQgetvalue(u, 0, 0));
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* GET /admin/audit-log?tenant_id=&action= */
void
h_admin_audit_list(req_t *r)
{
    const char *tid;
    jw_t        w;

    tid = req_query(r, "tenant_id");
    if (tid != NULL && !is_uuid(tid)) {
        reply_error(r, 400, "invalid_filter", "tenant_id must be an id");
        return;
    }
    jw_init(&w);
    if (audit_list(r, tid, &w) != 0) {
        jw_free(&w);
        return;
    }
    reply_json(r, 200, &w);
}


/* -- global settings ------------------------------------------------------ */

typedef enum { GT_PRICES, GT_BOOL, GT_PLAN, GT_INT } gtype_t;

typedef struct {
    const char *key;
    gtype_t     type;
    const char *dflt;       /* JSON */
    const char *help;
    long long   min, max;   /* GT_INT */
} gconf_t;

static const gconf_t gconfs[] = {
    { "model_prices", GT_PRICES, NULL,
      "USD per million tokens: {provider: {model: {input, output, cached}}};"
      " a PUT merges, a model set to null is removed", 0, 0 },
    { "signup_enabled", GT_BOOL, "true", "whether anyone may register", 0, 0 },
    { "default_plan", GT_PLAN, "\"free\"", "the plan a new tenant starts on",
      0, 0 },
    { "tenants.max_per_user", GT_INT, "5",
      "organisations a user may create (platform admins: no limit)",
      0, 100000 },
};

#define N_GCONFS (sizeof(gconfs) / sizeof(gconfs[0]))

static const char *gtype_names[] = {
    [GT_PRICES] = "object", [GT_BOOL] = "boolean", [GT_PLAN] = "plan",
    [GT_INT] = "integer",
};

static const char *price_providers[] = { "openai", "anthropic", "google",
                                         "azure", NULL };

/* the price table as {provider: {model: {input, output, cached}}}, in a
 * stable order (json, not jsonb, keeps it) */
#define PRICES_JSON                                                         \
    "(SELECT coalesce(json_object_agg(provider, models ORDER BY provider),"  \
    " '{}') FROM (SELECT provider, json_object_agg(model,"                  \
    "  json_build_object('input', trim_scale(input_per_m),"                 \
    "  'output', trim_scale(output_per_m),"                                 \
    "  'cached', trim_scale(cached_per_m)) ORDER BY model) AS models"        \
    "  FROM model_prices GROUP BY provider) x)"

#define GCONF_COLS                                                          \
    " key, CASE WHEN key = 'model_prices' THEN " PRICES_JSON "::text"       \
    " ELSE value::text END, " ORG_TS("updated_at") ", updated_by"


static const gconf_t *
gconf_find(const char *key)
{
    size_t i;

    for (i = 0; i < N_GCONFS; i++) {
        if (strcmp(gconfs[i].key, key) == 0) {
            return &gconfs[i];
        }
    }
    return NULL;
}


static void
jw_gentry(jw_t *w, const gconf_t *c, PGresult *res, int row,
    const char *prices)
{
    jw_obj(w);
    jw_kstr(w, "key", c->key);
    jw_kstr(w, "type", gtype_names[c->type]);
    jw_kstr(w, "description", c->help);
    jw_key(w, "value");
    if (res != NULL) {
        org_jw_json(w, PQgetvalue(res, row, 1));
    } else {
        org_jw_json(w, c->type == GT_PRICES ? prices : c->dflt);
    }
    jw_kbool(w, "is_default", res == NULL);
    if (res != NULL) {
        jw_kstr(w, "updated_at", PQgetvalue(res, row, 2));
        org_jw_col(w, "updated_by", res, row, 3, ORG_STR);
    } else {
        jw_knull(w, "updated_at");
        jw_knull(w, "updated_by");
    }
    jw_obj_end(w);
}


/* GET /admin/configs */
void
h_admin_configs_list(req_t *r)
{
    long      limit, offset, i;
    int       j;
    PGresult *res, *prices;
    jw_t      w;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    res = dbq(r, "SELECT" GCONF_COLS " FROM global_configs", 0);
    if (res == NULL || (prices = dbq(r, "SELECT" PRICES_JSON, 0)) == NULL) {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = offset; i < (long) N_GCONFS && i < offset + limit; i++) {
        for (j = 0; j < PQntuples(res); j++) {
            if (strcmp(PQgetvalue(res, j, 0), gconfs[i].key) == 0) {
                break;
            }
        }
        jw_gentry(&w, &gconfs[i], j < PQntuples(res) ? res : NULL, j,
                  PQgetvalue(prices, 0, 0));
    }
    jw_page_end(&w, N_GCONFS, limit, offset);
    reply_json(r, 200, &w);
}


static int
price_number(yajl_val v, int nullable)
{
    char  *end;
    double d;

    if (v == NULL || YAJL_IS_NULL(v)) {
        return nullable;
    }
    if (!YAJL_IS_NUMBER(v)) {
        return 0;
    }
    d = strtod(v->u.number.r, &end);
    return *end == '\0' && isfinite(d) && d >= 0 && d <= 1000000;
}


/* {provider: {model: {input, output, cached?} | null}} */
static int
check_prices(req_t *r, yajl_val v)
{
    size_t      i, j, k, total = 0;
    const char **pp;
    yajl_val    models, e;

    if (!YAJL_IS_OBJECT(v)) {
        goto bad;
    }
    for (i = 0; i < v->u.object.len; i++) {
        for (pp = price_providers; *pp; pp++) {
            if (strcmp(*pp, v->u.object.keys[i]) == 0) {
                break;
            }
        }
        if (*pp == NULL) {
            reply_error(r, 422, "invalid_value",
                        "model_prices: unknown provider \"%s\"",
                        org_safe(r, v->u.object.keys[i], 32));
            return -1;
        }
        models = v->u.object.values[i];
        if (!YAJL_IS_OBJECT(models)) {
            goto bad;
        }
        for (j = 0; j < models->u.object.len; j++) {
            const char *model = models->u.object.keys[j];
            size_t      n = strlen(model);

            if (n == 0 || n > 128) {
                goto bad_model;
            }
            for (k = 0; k < n; k++) {
                if ((unsigned char) model[k] <= ' ' || model[k] == 0x7f) {
                    goto bad_model;
                }
            }
            e = models->u.object.values[j];
            if (YAJL_IS_NULL(e)) {
                continue;
            }
            if (!YAJL_IS_OBJECT(e)) {
                goto bad;
            }
            for (k = 0; k < e->u.object.len; k++) {
                const char *f = e->u.object.keys[k];

                if (strcmp(f, "input") != 0 && strcmp(f, "output") != 0
                    && strcmp(f, "cached") != 0)
                {
                    goto bad;
                }
            }
            if (!price_number(json_get(e, "input"), 0)
                || !price_number(json_get(e, "output"), 0)
                || !price_number(json_get(e, "cached"), 1))
            {
                reply_error(r, 422, "invalid_value",
                            "model_prices: %s/%s: input and output (and"
                            " cached, if given) must be numbers from 0 to"
                            " 1000000", v->u.object.keys[i],
                            org_safe(r, model, 128));
                return -1;
            }
            if (++total > 1000) {
                reply_error(r, 422, "invalid_value",
                            "model_prices: at most 1000 models per update");
                return -1;
            }
        }
    }
    return 0;

bad_model:
    reply_error(r, 422, "invalid_value",
                "model_prices: model names are 1 to 128 characters without"
                " spaces");
    return -1;

bad:
    reply_error(r, 422, "invalid_value",
                "model_prices must be {provider: {model: {\"input\": n,"
                " \"output\": n, \"cached\": n}}} (USD per million tokens)");
    return -1;
}


/* PUT /admin/configs/{key} {value}: null resets to the default */
void
h_admin_configs_put(req_t *r)
{
    static const char *const fields[] = { "value", NULL };
    const gconf_t *c;
    const char    *key, *json;
    PGresult      *res, *pl;
    yajl_val       body, v;
    jw_t           vj;

    key = req_param(r, "key");
    c = gconf_find(key);
    if (c == NULL) {
        reply_error(r, 404, "unknown_config", "no setting \"%s\"",
                    org_safe(r, key, 100));
        return;
    }
    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0)
    {
        return;
    }
    v = json_get(body, "value");
    if (v == NULL) {
        reply_error(r, 422, "missing_field",
                    "\"value\" is required (null resets to the default)");
        return;
    }

    switch (c->type) {
    case GT_PRICES:
        if (YAJL_IS_NULL(v)) {
            reply_error(r, 422, "invalid_value",
                        "model_prices cannot be reset; set a model to null"
                        " to remove its price");
            return;
        }
        if (check_prices(r, v) != 0) {
            return;
        }
        break;
    case GT_BOOL:
        if (!YAJL_IS_NULL(v) && !YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            reply_error(r, 422, "invalid_value", "%s must be true or false",
                        c->key);
            return;
        }
        break;
    case GT_INT:
        if (!YAJL_IS_NULL(v)
            && (!YAJL_IS_INTEGER(v) || v->u.number.i < c->min
                || v->u.number.i > c->max))
        {
            reply_error(r, 422, "invalid_value",
                        "%s must be an integer from %lld to %lld", c->key,
                        c->min, c->max);
            return;
        }
        break;
    case GT_PLAN:
        if (YAJL_IS_NULL(v)) {
            break;
        }
        if (!YAJL_IS_STRING(v) || strlen(v->u.string) > 64) {
            reply_error(r, 422, "invalid_value", "%s must be a plan id",
                        c->key);
            return;
        }
        pl = dbq(r, "SELECT 1 FROM plans WHERE id = $1", 1, v->u.string);
        if (pl == NULL) {
            return;
        }
        if (PQntuples(pl) == 0) {
            reply_error(r, 422, "unknown_plan",
                        "no plan \"%s\" in the catalog", v->u.string);
            return;
        }
        break;
    }

    jw_init(&vj);
    jw_tree(&vj, v);
    json = arena_strdup(&r->arena, vj.buf);
    jw_free(&vj);

    if (db_begin(r) != 0) {
        return;
    }

    if (c->type == GT_PRICES) {
        if (dbq(r,
                "INSERT INTO model_prices (provider, model, input_per_m,"
                " output_per_m, cached_per_m, updated_at)"
                " SELECT p.key, m.key, (m.value ->> 'input')::numeric,"
                " (m.value ->> 'output')::numeric,"
                " (m.value ->> 'cached')::numeric, now()"
                " FROM jsonb_each($1::jsonb) p, jsonb_each(p.value) m"
                " WHERE jsonb_typeof(m.value) = 'object'"
                " ON CONFLICT (provider, model) DO UPDATE SET"
                " input_per_m = EXCLUDED.input_per_m,"
                " output_per_m = EXCLUDED.output_per_m,"
                " cached_per_m = EXCLUDED.cached_per_m, updated_at = now()",
                1, json) == NULL
            || dbq(r,
                   "DELETE FROM model_prices mp USING jsonb_each($1::jsonb) p,"
                   " jsonb_each(p.value) m WHERE jsonb_typeof(m.value) = 'null'"
                   " AND mp.provider = p.key AND mp.model = m.key", 1, json)
               == NULL
            || dbq(r,
                   "INSERT INTO global_configs (key, value, updated_by)"
                   " SELECT 'model_prices', " PRICES_JSON "::jsonb, $1"
                   " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
                   " updated_at = now(), updated_by = EXCLUDED.updated_by", 1,
                   r->auth.user_id) == NULL)
        {
            return;
        }
    } else if (YAJL_IS_NULL(v)) {
        if (dbq(r, "DELETE FROM global_configs WHERE key = $1", 1, c->key)
            == NULL)
        {
            return;
        }
    } else if (dbq(r,
                   "INSERT INTO global_configs (key, value, updated_by)"
                   " VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE"
                   " SET value = EXCLUDED.value, updated_at = now(),"
                   " updated_by = EXCLUDED.updated_by", 3,
                   c->key, json, r->auth.user_id) == NULL)
    {
        return;
    }

    res = dbq(r, "SELECT" GCONF_COLS " FROM global_configs WHERE key = $1", 1,
              c->key);
    if (res == NULL
        || audit_record(r, NULL, "global_config.changed", c->key,
                        arena_sprintf(&r->arena, "{\"value\":%s}", json)) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&vj);
    jw_gentry(&vj, c, PQntuples(res) ? res : NULL, 0, c->dflt);
    reply_json(r, 200, &vj);
}


int
global_config_bool(req_t *r, const char *key, int dflt)
{
    const char *state;
    PGresult   *res;

    res = dbq_try(r, &state, "SELECT jsonb_typeof(value), value #>> '{}'"
                             " FROM global_configs WHERE key = $1", 1, key);
    if (res == NULL || PQntuples(res) == 0
        || strcmp(PQgetvalue(res, 0, 0), "boolean") != 0)
    {
        return dflt;
    }
    return strcmp(PQgetvalue(res, 0, 1), "true") == 0;
}


long long
global_config_int(req_t *r, const char *key)
{
    const gconf_t *c = gconf_find(key);
    const char    *state;
    PGresult      *res;
    long long      v;

    if (c == NULL || c->type != GT_INT) {
        return 0;
    }
    v = atoll(c->dflt);
    res = dbq_try(r, &state, "SELECT value #>> '{}' FROM global_configs"
                             " WHERE key = $1 AND jsonb_typeof(value)"
                             " = 'number'", 1, key);
    if (res != NULL && PQntuples(res) == 1) {
        v = atoll(PQgetvalue(res, 0, 0));
    }
    return v < c->min ? c->min : v > c->max ? c->max : v;
}
