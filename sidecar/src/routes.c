/* routes.c - the routing table: every endpoint, its role and limit group */
#include "router.h"
#include "handlers/handlers.h"

#define PLATFORM "/platform/api"
#define SERVICES "/trueportai-services/api/v1"

const route_t routes[] = {
    /* method  pattern               handler         min role   limit group */
    { "GET",   "/health",            h_health_get,   ROLE_NONE, RL_NONE },
};

const size_t routes_count = sizeof(routes) / sizeof(routes[0]);
