/* handlers/storage.c - how long the tenant's logs are kept (up to the plan's
 * log_retention_days) and whether prompts and responses are stored */
#include "handlers.h"
#include "../audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* no row: the plan's retention, nothing stored */
#define STORAGE_SELECT                                                      \
    "SELECT least(coalesce(ts.retention_days, p.log_retention_days),"       \
    " p.log_retention_days), coalesce(ts.store_prompts, false),"            \
    " coalesce(ts.store_responses, false), p.log_retention_days,"           \
    " ts.tenant_id IS NULL, " ORG_TS("ts.updated_at") ", ts.updated_by"     \
    " FROM tenants t"                                                       \
    " LEFT JOIN subscriptions s ON s.tenant_id = t.id"                      \
    "  AND s.status = 'active'"                                             \
    " JOIN plans p ON p.id = coalesce(s.plan_id, 'free')"                   \
    " LEFT JOIN tenant_storage ts ON ts.tenant_id = t.id"                   \
    " WHERE t.id = $1"


static void
jw_storage(jw_t *w, PGresult *res)
{
    jw_obj(w);
    org_jw_col(w, "retention_days", res, 0, 0, ORG_NUM);
    org_jw_col(w, "store_prompts", res, 0, 1, ORG_BOOL);
    org_jw_col(w, "store_responses", res, 0, 2, ORG_BOOL);
    org_jw_col(w, "max_retention_days", res, 0, 3, ORG_NUM);
    org_jw_col(w, "is_default", res, 0, 4, ORG_BOOL);
    org_jw_col(w, "updated_at", res, 0, 5, ORG_STR);
    org_jw_col(w, "updated_by", res, 0, 6, ORG_STR);
    jw_obj_end(w);
}


static PGresult *
storage_get(req_t *r)
{
    PGresult *res;

    res = dbq(r, STORAGE_SELECT, 1, r->auth.tenant_id);
    if (res != NULL && PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return NULL;
    }
    return res;
}


/* GET /service/storage */
void
h_storage_get(req_t *r)
{
    PGresult *res;
    jw_t      w;

    res = storage_get(r);
    if (res == NULL) {
        return;
    }
    jw_init(&w);
    jw_storage(&w, res);
    reply_json(r, 200, &w);
}


/* PUT /service/storage {retention_days?, store_prompts?, store_responses?}:
 * at least one; the others keep their value */
void
h_storage_put(req_t *r)
{
    static const char *const fields[] = { "retention_days", "store_prompts",
                                          "store_responses", NULL };
    long long  days = 0;
    int        has_days, prompts = 0, has_prompts, responses = 0, has_resp;
    char       sdays[24];
    org_plan_t p;
    PGresult  *res;
    yajl_val   body;
    jw_t       w;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || org_tenant_plan(r, r->auth.tenant_id, &p) != 0
        || req_field_int(r, body, "retention_days", 0, 1,
                         p.log_retention_days, &days, &has_days) != 0
        || req_field_bool(r, body, "store_prompts", 0, &prompts,
                          &has_prompts) != 0
        || req_field_bool(r, body, "store_responses", 0, &responses,
                          &has_resp) != 0)
    {
        return;
    }
    if (!has_days && !has_prompts && !has_resp) {
        reply_error(r, 422, "missing_field",
                    "give retention_days, store_prompts or store_responses");
        return;
    }
    snprintf(sdays, sizeof(sdays), "%lld", days);

    if (db_begin(r) != 0) {
        return;
    }
    if (dbq(r,
            "INSERT INTO tenant_storage AS ts (tenant_id, retention_days,"
            " store_prompts, store_responses, updated_by)"
            " VALUES ($1, coalesce($2::int, $5::int),"
            " coalesce($3::bool, false), coalesce($4::bool, false), $6)"
            " ON CONFLICT (tenant_id) DO UPDATE SET"
            " retention_days = coalesce($2::int,"
            "  least(ts.retention_days, $5::int)),"
            " store_prompts = coalesce($3::bool, ts.store_prompts),"
            " store_responses = coalesce($4::bool, ts.store_responses),"
            " updated_at = now(), updated_by = $6", 6,
            r->auth.tenant_id, has_days ? sdays : NULL,
            has_prompts ? (prompts ? "true" : "false") : NULL,
            has_resp ? (responses ? "true" : "false") : NULL,
            arena_sprintf(&r->arena, "%lld", p.log_retention_days),
            r->auth.user_id) == NULL)
    {
        return;
    }
    res = storage_get(r);
    if (res == NULL
        || audit_record(r, r->auth.tenant_id, "storage.changed", "storage",
                        arena_sprintf(&r->arena,
                                      "{\"retention_days\":%s,"
                                      "\"store_prompts\":%s,"
                                      "\"store_responses\":%s}",
                                      PQgetvalue(res, 0, 0),
                                      PQgetvalue(res, 0, 1)[0] == 't'
                                      ? "true" : "false",
                                      PQgetvalue(res, 0, 2)[0] == 't'
                                      ? "true" : "false")) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_storage(&w, res);
    reply_json(r, 200, &w);
}
