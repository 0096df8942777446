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
};

const size_t routes_count = sizeof(routes) / sizeof(routes[0]);
