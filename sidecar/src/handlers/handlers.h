/* handlers.h - every route handler, h_<resource>_<action> */
#ifndef TP_HANDLERS_H
#define TP_HANDLERS_H

#include "../req.h"

/* health.c */
void h_health_get(req_t *r);

/* analytics.c */
void h_analytics_logs(req_t *r);
void h_analytics_stats(req_t *r);
void h_violations_list(req_t *r);
void h_violations_get(req_t *r);

/* keys.c (gateway) */
void h_keys_create(req_t *r);
void h_keys_list(req_t *r);
void h_keys_update(req_t *r);
void h_keys_delete(req_t *r);
void h_keys_resolve(req_t *r);
/* end keys */

/* policies.c */
void h_policies_list(req_t *r);
void h_policies_get(req_t *r);
void h_policies_create(req_t *r);
void h_policies_update(req_t *r);
void h_policies_delete(req_t *r);
void h_policies_internal(req_t *r);
/* end policies */

/* organisations: tenants.c, members.c, invites.c, plans.c, configs.c,
 * storage.c, admin.c (the org_* helpers live in tenants.c) */
#include <libpq-fe.h>

void h_tenants_create(req_t *r);
void h_tenants_list(req_t *r);
void h_tenants_check(req_t *r);
void h_service_info(req_t *r);
void h_members_list(req_t *r);
void h_members_update(req_t *r);
void h_members_remove(req_t *r);
void h_invites_create(req_t *r);
void h_invites_list(req_t *r);
void h_invites_revoke(req_t *r);
void h_invites_accept(req_t *r);
void h_plans_list(req_t *r);
void h_subscriptions_create(req_t *r);
void h_subscriptions_list(req_t *r);
void h_admin_tenants_plan(req_t *r);
void h_admin_plans_update(req_t *r);
void h_configs_list(req_t *r);
void h_configs_put(req_t *r);
void h_storage_get(req_t *r);
void h_storage_put(req_t *r);
void h_audit_list(req_t *r);
void h_admin_tenants_list(req_t *r);
void h_admin_tenants_get(req_t *r);
void h_admin_tenants_status(req_t *r);
void h_admin_users_list(req_t *r);
void h_admin_stats(req_t *r);
void h_admin_configs_list(req_t *r);
void h_admin_configs_put(req_t *r);
void h_admin_audit_list(req_t *r);

/* NULL when slug may name a tenant, else "reserved" or "invalid: why" */
const char *slug_problem(const char *slug);

/* A global boolean setting (admin configs, e.g. "signup_enabled"), or dflt
 * when unset or unreadable. Sends no reply. */
int global_config_bool(req_t *r, const char *key, int dflt);

/* A global integer setting ("tenants.max_per_user"), or its default from
 * the allowlist when unset or unreadable. Sends no reply. */
long long global_config_int(req_t *r, const char *key);

/* timestamptz column as RFC 3339 UTC with milliseconds */
#define ORG_TS(col) "to_char(" col " AT TIME ZONE 'UTC',"                   \
                    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* the same for jw_pg_ts() to format: the lists' rows, where a to_char
 * per timestamp per row is a good part of Postgres's work */
#define ORG_UTC(col) "(" col " AT TIME ZONE 'UTC')"

/* a plan's columns (ORG_PLAN_NCOLS), from plans p, for org_plan_from() */
#define ORG_PLAN_COLS                                                       \
    " p.id, p.name, p.price_cents, p.default_rpm, p.max_rpm, p.max_keys,"   \
    " p.monthly_requests, p.log_retention_days, p.self_service,"            \
    " p.default_credentials"
#define ORG_PLAN_NCOLS  10

typedef struct {
    char       id[40];
    char       name[80];
    char       started_at[40];     /* "" when there is no subscription */
    long long  price_cents, default_rpm, max_rpm, max_keys;
    long long  monthly_requests, log_retention_days;
    int        self_service;        /* a tenant admin may activate it */
    int        default_credentials; /* may spend the route's default key */
} org_plan_t;

typedef enum { ORG_STR, ORG_NUM, ORG_BOOL, ORG_JSON } org_col_t;

/* Validate-or-reply helpers (send the 4xx, return -1). */
int org_only_fields(req_t *r, yajl_val obj, const char *const *allowed)
    __attribute__((warn_unused_result));                    /* 422 */
int org_path_id(req_t *r, const char *name, const char **out)
    __attribute__((warn_unused_result));                    /* 404 */
int org_email(req_t *r, const char *in, char *out, size_t outlen)
    __attribute__((warn_unused_result));                    /* 422, lowercased */
int org_query_text(req_t *r, const char *name, size_t max, const char **out)
    __attribute__((warn_unused_result));                    /* 400 */
int org_tenant_plan(req_t *r, const char *tenant_id, org_plan_t *p)
    __attribute__((warn_unused_result));

void org_plan_from(PGresult *res, int row, int col, org_plan_t *p);
void org_jw_limits(jw_t *w, const org_plan_t *p);
/* a JSON text (jsonb output) re-encoded compactly */
void org_jw_json(jw_t *w, const char *json);
void org_jw_col(jw_t *w, const char *key, PGresult *res, int row, int col,
                org_col_t kind);
/* a printable-ASCII copy of untrusted s, at most max bytes, for messages */
const char *org_safe(req_t *r, const char *s, size_t max);
/* the error reply for a dbq_try() failure */
void org_db_fail(req_t *r, const char *sqlstate);
/* end organisations */

/* identity: auth.c (register, sign in, passwords, tenant selection) */
void h_auth_register(req_t *r);
void h_auth_login(req_t *r);
void h_auth_otp_request(req_t *r);
void h_auth_otp_verify(req_t *r);
void h_auth_forgot_password(req_t *r);
void h_auth_reset_password(req_t *r);
void h_auth_password_change(req_t *r);
void h_auth_select_tenant(req_t *r);
void h_auth_switch_environment(req_t *r);
/* end identity */

#endif
