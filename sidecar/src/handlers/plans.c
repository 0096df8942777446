/* handlers/plans.c - the plan catalog and a tenant's subscription: one
 * active subscription per tenant, history kept; no payment processor. A
 * tenant admin activates self-service plans only; a platform admin puts a
 * tenant on any plan and sets what each plan allows. */
#include "handlers.h"
#include "../audit.h"
#include "../log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* the fields of a plan both the catalog and the admin's answer show */
static void
jw_plan_fields(jw_t *w, const org_plan_t *p)
{
    jw_kstr(w, "id", p->id);
    jw_kstr(w, "name", p->name);
    jw_kint(w, "price_cents", p->price_cents);
    jw_kstr(w, "currency", "USD");
    jw_kstr(w, "interval", "month");
    jw_kbool(w, "self_service", p->self_service);
    jw_kbool(w, "default_credentials", p->default_credentials);
    org_jw_limits(w, p);
}


/* GET /service/catalog/plans */
void
h_plans_list(req_t *r)
{
    char       slimit[24], soffset[24];
    long       limit, offset;
    long long  total;
    PGresult  *res;
    org_plan_t p;
    jw_t       w;
    int        i;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

    res = dbq(r,
              "SELECT" ORG_PLAN_COLS ", p.id = coalesce((SELECT plan_id"
              "  FROM subscriptions WHERE tenant_id = $1"
              "  AND status = 'active'), 'free'),"
              " (SELECT count(*) FROM plans)"
              " FROM plans p ORDER BY p.price_cents, p.id LIMIT $2 OFFSET $3",
              3, r->auth.tenant_id, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM plans",
                   0) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        org_plan_from(res, i, 0, &p);
        jw_obj(&w);
        jw_plan_fields(&w, &p);
        jw_kbool(&w, "current",
                 PQgetvalue(res, i, ORG_PLAN_NCOLS)[0] == 't');
        jw_obj_end(&w);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}


static void
jw_subscription(jw_t *w, const char *id, const org_plan_t *p,
    const char *previous, const char *started_at)
{
    jw_obj(w);
    jw_kstr(w, "subscription_id", id);
    jw_kstr(w, "plan", p->id);
    jw_kstr(w, "plan_name", p->name);
    jw_kint(w, "price_cents", p->price_cents);
    jw_kstr(w, "status", "active");
    jw_kstr(w, "previous_plan", previous);
    org_jw_limits(w, p);
    jw_kstr(w, "started_at", started_at);
    jw_obj_end(w);
}


/* The catalog's plan named by id (the string field "field" of body), or
 * a 422 unknown_plan. */
static int
plan_of_body(req_t *r, yajl_val body, const char *field, org_plan_t *p)
{
    const char *id;
    PGresult   *pl;

    if (req_field_str(r, body, field, F_REQUIRED, 64, &id) != 0) {
        return -1;
    }
    pl = dbq(r, "SELECT" ORG_PLAN_COLS " FROM plans p WHERE p.id = $1", 1,
             id);
    if (pl == NULL) {
        return -1;
    }
    if (PQntuples(pl) == 0) {
        reply_error(r, 422, "unknown_plan", "no plan \"%s\" in the catalog",
                    org_safe(r, id, 64));
        return -1;
    }
    org_plan_from(pl, 0, 0, p);
    return 0;
}


/* Puts the tenant on plan p and replies: ends the active subscription and
 * starts the new one (201); the plan already active is a no-op (200).
 * Settings above the new plan's limits are lowered to them. The audit row
 * (action, {from, to}) commits with the change. */
static void
plan_switch(req_t *r, const char *tenant_id, const org_plan_t *p,
    const char *action)
{
    const char *prev;
    PGresult   *cur, *ins;
    jw_t        w;

    if (db_begin(r) != 0) {
        return;
    }

    /* the tenant row serialises two activations */
    cur = dbq(r,
              "SELECT s.id, s.plan_id, " ORG_TS("s.started_at")
              " FROM tenants t LEFT JOIN subscriptions s"
              " ON s.tenant_id = t.id AND s.status = 'active'"
              " WHERE t.id = $1 FOR UPDATE OF t", 1, tenant_id);
    if (cur == NULL) {
        return;
    }
    if (PQntuples(cur) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return;
    }
    if (!PQgetisnull(cur, 0, 0) && strcmp(PQgetvalue(cur, 0, 1), p->id) == 0)
    {
        if (db_commit(r) != 0) {
            return;
        }
        jw_init(&w);
        jw_subscription(&w, PQgetvalue(cur, 0, 0), p, NULL,
                        PQgetvalue(cur, 0, 2));
        reply_json(r, 200, &w);
        return;
    }
    prev = !PQgetisnull(cur, 0, 1) ? PQgetvalue(cur, 0, 1) : NULL;

    if (dbq(r, "UPDATE subscriptions SET status = 'ended', ended_at = now()"
               " WHERE tenant_id = $1 AND status = 'active'", 1,
            tenant_id) == NULL
        || (ins = dbq(r,
                      "INSERT INTO subscriptions (tenant_id, plan_id,"
                      " activated_by) VALUES ($1, $2, $3)"
                      " RETURNING id, " ORG_TS("started_at"), 3,
                      tenant_id, p->id, r->auth.user_id)) == NULL
        || dbq(r, "UPDATE tenant_storage SET retention_days = $2"
                  " WHERE tenant_id = $1 AND retention_days > $2::int", 2,
               tenant_id,
               arena_sprintf(&r->arena, "%lld", p->log_retention_days))
           == NULL
        || dbq(r, "UPDATE tenant_configs SET value = to_jsonb($2::int)"
                  " WHERE tenant_id = $1 AND key = 'default_rpm'"
                  " AND (value #>> '{}')::numeric > $2::int", 2,
               tenant_id,
               arena_sprintf(&r->arena, "%lld", p->max_rpm)) == NULL
        || audit_record(r, tenant_id, action, p->id,
                        arena_sprintf(&r->arena,
                                      "{\"from\":%s%s%s,\"to\":\"%s\"}",
                                      prev ? "\"" : "", prev ? prev : "null",
                                      prev ? "\"" : "", p->id)) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_subscription(&w, PQgetvalue(ins, 0, 0), p, prev,
                    PQgetvalue(ins, 0, 1));
    reply_json(r, 201, &w);
}


/* POST /service/subscriptions {plan_id}: self-service plans only (a paid
 * plan without a payment processor would be free for the asking) */
void
h_subscriptions_create(req_t *r)
{
    static const char *const fields[] = { "plan_id", NULL };
    org_plan_t  p;
    yajl_val    body;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || plan_of_body(r, body, "plan_id", &p) != 0)
    {
        return;
    }
    if (!p.self_service) {
        reply_error(r, 403, "plan_not_self_service",
                    "the %s plan is not self-service: the platform operator"
                    " assigns it", p.id);
        return;
    }
    plan_switch(r, r->auth.tenant_id, &p, "plan.activated");
}


/* PUT /admin/tenants/{id}/plan {plan_id}: any plan of the catalog */
void
h_admin_tenants_plan(req_t *r)
{
    static const char *const fields[] = { "plan_id", NULL };
    const char *id;
    org_plan_t  p;
    yajl_val    body;

    if (org_path_id(r, "id", &id) != 0
        || req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || plan_of_body(r, body, "plan_id", &p) != 0)
    {
        return;
    }
    plan_switch(r, id, &p, "tenant.plan_changed");
    if (r->status == 200 || r->status == 201) {
        log_info("req=%s msg=\"tenant plan set\" tenant=%s plan=%s by=%s",
                 r->id, id, p.id, r->auth.user_id);
    }
}


/* PATCH /admin/plans/{id} {self_service?, default_credentials?}: what a
 * plan allows, for every tenant on it at once */
void
h_admin_plans_update(req_t *r)
{
    static const char *const fields[] = { "self_service",
                                          "default_credentials", NULL };
    const char *id;
    int         ss, dc, has_ss, has_dc;
    PGresult   *res;
    org_plan_t  p;
    yajl_val    body;
    jw_t        w;

    id = req_param(r, "id");
    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_bool(r, body, "self_service", 0, &ss, &has_ss) != 0
        || req_field_bool(r, body, "default_credentials", 0, &dc, &has_dc)
           != 0)
    {
        return;
    }
    if (!has_ss && !has_dc) {
        reply_error(r, 422, "missing_field",
                    "give self_service, default_credentials or both");
        return;
    }

    if (db_begin(r) != 0) {
        return;
    }
    res = dbq(r, "UPDATE plans p SET"
                 " self_service = coalesce($2::boolean, p.self_service),"
                 " default_credentials = coalesce($3::boolean,"
                 "  p.default_credentials)"
                 " WHERE p.id = $1 RETURNING" ORG_PLAN_COLS, 3,
              id, has_ss ? (ss ? "true" : "false") : NULL,
              has_dc ? (dc ? "true" : "false") : NULL);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no plan \"%s\" in the catalog",
                    org_safe(r, id, 64));
        return;
    }
    org_plan_from(res, 0, 0, &p);
    if (audit_record(r, NULL, "plan.changed", p.id,
                     arena_sprintf(&r->arena,
                                   "{\"self_service\":%s,"
                                   "\"default_credentials\":%s}",
                                   p.self_service ? "true" : "false",
                                   p.default_credentials ? "true" : "false"))
        != 0
        || db_commit(r) != 0)
    {
        return;
    }
    log_info("req=%s msg=\"plan changed\" plan=%s self_service=%d"
             " default_credentials=%d by=%s", r->id, p.id, p.self_service,
             p.default_credentials, r->auth.user_id);

    jw_init(&w);
    jw_obj(&w);
    jw_plan_fields(&w, &p);
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* GET /service/subscriptions: the tenant's history, newest first */
void
h_subscriptions_list(req_t *r)
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
              "SELECT s.id, s.plan_id, s.status, s.activated_by, "
              ORG_TS("s.started_at") ", " ORG_TS("s.ended_at") ","
              " (SELECT count(*) FROM subscriptions WHERE tenant_id = $1)"
              " FROM subscriptions s WHERE s.tenant_id = $1"
              " ORDER BY s.started_at DESC, s.id LIMIT $2 OFFSET $3", 3,
              r->auth.tenant_id, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM subscriptions WHERE tenant_id = $1",
                   1, r->auth.tenant_id) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_obj(&w);
        jw_kstr(&w, "id", PQgetvalue(res, i, 0));
        jw_kstr(&w, "plan", PQgetvalue(res, i, 1));
        jw_kstr(&w, "status", PQgetvalue(res, i, 2));
        org_jw_col(&w, "activated_by", res, i, 3, ORG_STR);
        jw_kstr(&w, "started_at", PQgetvalue(res, i, 4));
        org_jw_col(&w, "ended_at", res, i, 5, ORG_STR);
        jw_obj_end(&w);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}
