/* routes.c - the routing table: every endpoint, its role and limit group */
#include "router.h"
#include "handlers/handlers.h"

#define PLATFORM "/platform/api"
#define SERVICES "/trueportai-services/api/v1"

const route_t routes[] = {
    /* method  pattern               handler         min role   limit group */
    { "GET",   "/health",            h_health_get,   ROLE_NONE, RL_NONE },

    /* analytics (metering) */
    { "GET", SERVICES "/analytics/logs",            h_analytics_logs,  ROLE_MEMBER, RL_ANALYTICS },
    { "GET", SERVICES "/analytics/stats",           h_analytics_stats, ROLE_MEMBER, RL_ANALYTICS },
    { "GET", SERVICES "/analytics/violations",      h_violations_list, ROLE_MEMBER, RL_ANALYTICS },
    { "GET", SERVICES "/analytics/violations/{id}", h_violations_get,  ROLE_MEMBER, RL_ANALYTICS },

    /* keys (gateway): management API, and the module's lookup on a cache miss */
    { "POST",   SERVICES "/keys",      h_keys_create,  ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    SERVICES "/keys",      h_keys_list,    ROLE_MEMBER,   RL_MANAGEMENT },
    { "PATCH",  SERVICES "/keys/{id}", h_keys_update,  ROLE_ADMIN,    RL_MANAGEMENT },
    { "DELETE", SERVICES "/keys/{id}", h_keys_delete,  ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    "/internal/v1/keys/resolve", h_keys_resolve, ROLE_INTERNAL, RL_NONE },
    /* end keys */

    /* policies: management API, and the module's load of a tenant's rules */
    { "GET",    SERVICES "/policies",      h_policies_list,     ROLE_MEMBER,   RL_MANAGEMENT },
    { "POST",   SERVICES "/policies",      h_policies_create,   ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    SERVICES "/policies/{id}", h_policies_get,      ROLE_MEMBER,   RL_MANAGEMENT },
    { "PUT",    SERVICES "/policies/{id}", h_policies_update,   ROLE_ADMIN,    RL_MANAGEMENT },
    { "DELETE", SERVICES "/policies/{id}", h_policies_delete,   ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    "/internal/v1/policies",   h_policies_internal, ROLE_INTERNAL, RL_NONE },
    /* end policies */

    /* organisations */
    { "POST",   PLATFORM "/global/tenants",                    h_tenants_create,       ROLE_GLOBAL,   RL_MANAGEMENT },
    { "GET",    PLATFORM "/global/tenants",                    h_tenants_list,         ROLE_GLOBAL,   RL_MANAGEMENT },
    { "GET",    PLATFORM "/global/tenants/check-availability", h_tenants_check,        ROLE_NONE,     RL_PUBLIC },
    { "POST",   PLATFORM "/global/invites/accept",             h_invites_accept,       ROLE_GLOBAL,   RL_PUBLIC },
    { "GET",    PLATFORM "/service/info",                      h_service_info,         ROLE_VIEWER,   RL_MANAGEMENT },
    { "GET",    PLATFORM "/service/members",                   h_members_list,         ROLE_VIEWER,   RL_MANAGEMENT },
    { "PATCH",  PLATFORM "/service/members/{user_id}",         h_members_update,       ROLE_ADMIN,    RL_MANAGEMENT },
    { "DELETE", PLATFORM "/service/members/{user_id}",         h_members_remove,       ROLE_ADMIN,    RL_MANAGEMENT },
    { "POST",   PLATFORM "/service/invites",                   h_invites_create,       ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    PLATFORM "/service/invites",                   h_invites_list,         ROLE_ADMIN,    RL_MANAGEMENT },
    { "DELETE", PLATFORM "/service/invites/{id}",              h_invites_revoke,       ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    PLATFORM "/service/catalog/plans",             h_plans_list,           ROLE_VIEWER,   RL_MANAGEMENT },
    { "POST",   PLATFORM "/service/subscriptions",             h_subscriptions_create, ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    PLATFORM "/service/subscriptions",             h_subscriptions_list,   ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    PLATFORM "/service/configs",                   h_configs_list,         ROLE_VIEWER,   RL_MANAGEMENT },
    { "PUT",    PLATFORM "/service/configs/{key}",             h_configs_put,          ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    PLATFORM "/service/storage",                   h_storage_get,          ROLE_ADMIN,    RL_MANAGEMENT },
    { "PUT",    PLATFORM "/service/storage",                   h_storage_put,          ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    PLATFORM "/service/audit-log",                 h_audit_list,           ROLE_ADMIN,    RL_MANAGEMENT },
    { "GET",    PLATFORM "/admin/tenants",                     h_admin_tenants_list,   ROLE_PLATFORM, RL_MANAGEMENT },
    { "GET",    PLATFORM "/admin/tenants/{id}",                h_admin_tenants_get,    ROLE_PLATFORM, RL_MANAGEMENT },
    { "PUT",    PLATFORM "/admin/tenants/{id}/status",         h_admin_tenants_status, ROLE_PLATFORM, RL_MANAGEMENT },
    { "PUT",    PLATFORM "/admin/tenants/{id}/plan",           h_admin_tenants_plan,   ROLE_PLATFORM, RL_MANAGEMENT },
    { "PATCH",  PLATFORM "/admin/plans/{id}",                  h_admin_plans_update,   ROLE_PLATFORM, RL_MANAGEMENT },
    { "GET",    PLATFORM "/admin/users",                       h_admin_users_list,     ROLE_PLATFORM, RL_MANAGEMENT },
    { "GET",    PLATFORM "/admin/stats",                       h_admin_stats,          ROLE_PLATFORM, RL_MANAGEMENT },
    { "GET",    PLATFORM "/admin/configs",                     h_admin_configs_list,   ROLE_PLATFORM, RL_MANAGEMENT },
    { "PUT",    PLATFORM "/admin/configs/{key}",               h_admin_configs_put,    ROLE_PLATFORM, RL_MANAGEMENT },
    { "GET",    PLATFORM "/admin/audit-log",                   h_admin_audit_list,     ROLE_PLATFORM, RL_MANAGEMENT },
    /* end organisations */

    /* identity: the public routes are limited per client address (those
     * that hash a password harder); login, otp/verify and the password
     * change also share the sign-in limits per email and client address
     * and per account (handlers/auth.c); the token routes count as
     * management */
    { "POST", PLATFORM "/global/auth/register",               h_auth_register,           ROLE_NONE,   RL_PASSWORD },
    { "POST", PLATFORM "/global/auth/login",                  h_auth_login,              ROLE_NONE,   RL_PASSWORD },
    { "POST", PLATFORM "/global/auth/otp/request",            h_auth_otp_request,        ROLE_NONE,   RL_PUBLIC },
    { "POST", PLATFORM "/global/auth/otp/verify",             h_auth_otp_verify,         ROLE_NONE,   RL_PUBLIC },
    { "POST", PLATFORM "/global/auth/forgot-password",        h_auth_forgot_password,    ROLE_NONE,   RL_PUBLIC },
    { "POST", PLATFORM "/global/auth/reset-password",         h_auth_reset_password,     ROLE_NONE,   RL_PASSWORD },
    { "PUT",  PLATFORM "/global/auth/password",               h_auth_password_change,    ROLE_GLOBAL, RL_MANAGEMENT },
    { "POST", PLATFORM "/global/auth/select-tenant",          h_auth_select_tenant,      ROLE_GLOBAL, RL_MANAGEMENT },
    { "POST", PLATFORM "/service/auth/switch-environment",    h_auth_switch_environment, ROLE_VIEWER, RL_MANAGEMENT },
    /* end identity */
};

const size_t routes_count = sizeof(routes) / sizeof(routes[0]);
