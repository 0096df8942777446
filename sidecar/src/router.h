/* router.h - the routing table: method, pattern with {params}, handler,
 * minimum role, rate-limit group (redis's command table, for HTTP) */
#ifndef TP_ROUTER_H
#define TP_ROUTER_H

#include <stddef.h>
#include "req.h"

typedef void (*handler_fn)(req_t *r);

typedef enum {
    RL_NONE = 0,
    RL_MANAGEMENT,      /* 300 requests / minute / user */
    RL_ANALYTICS,       /* 60 requests / minute / user */
    RL_PASSWORD,        /* 30 / minute / client address: routes that scrypt */
    RL_PUBLIC           /* 60 / minute / client address: other public routes */
} rl_group_t;

typedef struct {
    const char  *method;
    const char  *pattern;      /* "/platform/api/service/members/{user_id}" */
    handler_fn   handler;
    role_t       min_role;
    rl_group_t   rl_group;
} route_t;

enum { ROUTE_FOUND = 0, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

typedef struct {
    const route_t *route;
    int            nparams;
    const char    *names[REQ_MAX_PARAMS];
    const char    *values[REQ_MAX_PARAMS];
    char           allow[64];               /* for 405 */
} route_match_t;

/* Pure: matches path against the table. Parameter values are copied into
 * arena. A HEAD request matches GET routes. */
int router_match(const route_t *table, size_t n, const char *method,
                 const char *path, arena_t *arena, route_match_t *m);

/* Matches, authenticates, checks role and rate limit, runs the handler. */
void router_dispatch(req_t *r);

extern const route_t routes[];
extern const size_t  routes_count;

#endif
