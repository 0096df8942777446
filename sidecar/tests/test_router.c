/* test_router.c - pattern matching, params, 404 vs 405, HEAD */
#include "tap.h"
#include "router.h"

static void h_dummy(req_t *r) { (void) r; }

static const route_t table[] = {
    { "GET",    "/health",                        h_dummy, ROLE_NONE,  RL_NONE },
    { "GET",    "/api/v1/keys",                   h_dummy, ROLE_MEMBER, RL_MANAGEMENT },
    { "POST",   "/api/v1/keys",                   h_dummy, ROLE_ADMIN, RL_MANAGEMENT },
    { "PATCH",  "/api/v1/keys/{id}",              h_dummy, ROLE_ADMIN, RL_MANAGEMENT },
    { "DELETE", "/api/v1/keys/{id}",              h_dummy, ROLE_ADMIN, RL_MANAGEMENT },
    { "PUT",    "/admin/tenants/{id}/status",     h_dummy, ROLE_PLATFORM, RL_NONE },
    { "GET",    "/a/{x}/b/{y}",                   h_dummy, ROLE_NONE,  RL_NONE },
};
#define N (sizeof(table) / sizeof(table[0]))

void
test_router(void)
{
    arena_t       a;
    route_match_t m;

    arena_init(&a);

    is_int(router_match(table, N, "GET", "/health", &a, &m), ROUTE_FOUND,
           "router: exact path");
    ok(m.route == &table[0], "router: the right row");
    is_int(router_match(table, N, "HEAD", "/health", &a, &m), ROUTE_FOUND,
           "router: HEAD matches GET");
    is_int(router_match(table, N, "GET", "/health/", &a, &m), ROUTE_NOT_FOUND,
           "router: trailing slash is another path");
    is_int(router_match(table, N, "GET", "/healthz", &a, &m), ROUTE_NOT_FOUND,
           "router: prefix is not a match");
    is_int(router_match(table, N, "GET", "", &a, &m), ROUTE_NOT_FOUND,
           "router: empty path");
    is_int(router_match(table, N, "POST", "/api/v1/keys", &a, &m), ROUTE_FOUND,
           "router: method picks the row");
    ok(m.route == &table[2], "router: POST row");
    is_int(router_match(table, N, "PATCH", "/api/v1/keys/abc-1", &a, &m),
           ROUTE_FOUND, "router: {id} param");
    is_int(m.nparams, 1, "router: one param");
    is_str(m.names[0], "id", "router: param name");
    is_str(m.values[0], "abc-1", "router: param value");
    is_int(router_match(table, N, "PATCH", "/api/v1/keys/", &a, &m),
           ROUTE_NOT_FOUND, "router: empty param segment does not match");
    is_int(router_match(table, N, "PATCH", "/api/v1/keys/a/b", &a, &m),
           ROUTE_NOT_FOUND, "router: extra segment does not match");
    is_int(router_match(table, N, "PUT", "/api/v1/keys/x", &a, &m),
           ROUTE_BAD_METHOD, "router: known path, wrong method");
    is_str(m.allow, "PATCH, DELETE", "router: Allow lists the methods");
    is_int(router_match(table, N, "PUT", "/admin/tenants/t1/status", &a, &m),
           ROUTE_FOUND, "router: param in the middle");
    is_str(m.values[0], "t1", "router: middle param value");
    is_int(router_match(table, N, "GET", "/a/1/b/2", &a, &m), ROUTE_FOUND,
           "router: two params");
    is_str(m.values[1], "2", "router: second param value");
    is_int(router_match(table, N, "GET", "//health", &a, &m), ROUTE_NOT_FOUND,
           "router: doubled slash is not normalised into a match");

    arena_free(&a);
}
