/* router.c - route matching and the checks every route gets before its handler */
#include "router.h"
#include "auth.h"
#include "log.h"
#include "ratelimit.h"

#include <string.h>


/* Compares one pattern with the path segment by segment; {name} takes one
 * non-empty segment. Returns the number of params or -1. */
static int
match_pattern(const char *pat, const char *path, arena_t *arena,
    route_match_t *m)
{
    const char *p = pat, *s = path, *pe, *se;
    int         n = 0;

    while (*p && *s) {
        if (*p != '/' || *s != '/') {
            return -1;
        }
        p++;
        s++;
        pe = strchr(p, '/');
        se = strchr(s, '/');
        if (pe == NULL) pe = p + strlen(p);
        if (se == NULL) se = s + strlen(s);

        if (*p == '{') {
            if (se == s || n == REQ_MAX_PARAMS) {
                return -1;
            }
            m->names[n] = arena_strndup(arena, p + 1, pe - p - 2);
            m->values[n] = arena_strndup(arena, s, se - s);
            n++;
        } else if (pe - p != se - s || memcmp(p, s, pe - p) != 0) {
            return -1;
        }
        p = pe;
        s = se;
    }

    return (*p == '\0' && *s == '\0') ? n : -1;
}


/* internal: -1 every row, 0 the API's rows, 1 the internal ones */
static int
match_table(const route_t *table, size_t n, int internal, const char *method,
    const char *path, arena_t *arena, route_match_t *m)
{
    size_t i, alen = 0;
    int    np, path_matched = 0;

    memset(m, 0, sizeof(*m));
    if (strcmp(method, "HEAD") == 0) {
        method = "GET";
    }

    for (i = 0; i < n; i++) {
        if (internal >= 0
            && (table[i].min_role == ROLE_INTERNAL) != (internal != 0))
        {
            continue;
        }
        np = match_pattern(table[i].pattern, path, arena, m);
        if (np < 0) {
            continue;
        }
        if (strcmp(table[i].method, method) == 0) {
            m->route = &table[i];
            m->nparams = np;
            return ROUTE_FOUND;
        }
        /* remember the methods this path does take, for Allow */
        if (alen + strlen(table[i].method) + 3 < sizeof(m->allow)) {
            if (path_matched) {
                memcpy(m->allow + alen, ", ", 2);
                alen += 2;
            }
            memcpy(m->allow + alen, table[i].method, strlen(table[i].method));
            alen += strlen(table[i].method);
            m->allow[alen] = '\0';
        }
        path_matched = 1;
    }

    return path_matched ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}


int
router_match(const route_t *table, size_t n, const char *method,
    const char *path, arena_t *arena, route_match_t *m)
{
    return match_table(table, n, -1, method, path, arena, m);
}


void
router_dispatch(req_t *r)
{
    route_match_t m;
    int           rc, i;

    /* the internal listener serves the internal routes and nothing else;
     * the API listener does not know them */
    rc = match_table(routes, routes_count, r->internal, r->method, r->path,
                     &r->arena, &m);

    if (rc == ROUTE_NOT_FOUND) {
        reply_error(r, 404, "not_found", "no route for %s %s", r->method,
                    r->path);
        return;
    }
    if (rc == ROUTE_BAD_METHOD) {
        r->allow = arena_strdup(&r->arena, m.allow);
        reply_error(r, 405, "method_not_allowed",
                    "%s is not allowed here (allowed: %s)", r->method,
                    m.allow);
        return;
    }

    r->nparams = m.nparams;
    for (i = 0; i < m.nparams; i++) {
        r->param_names[i] = m.names[i];
        r->params[i] = m.values[i];
    }

    /* a per-address limit comes before the token: those routes are open
     * to strangers, and a refusal must cost them nothing more */
    if (m.route->rl_group != RL_NONE
        && ratelimit_per_address(m.route->rl_group)
        && ratelimit_check(r, m.route->rl_group) != 0)
    {
        return;
    }

    if (m.route->min_role != ROLE_NONE
        && auth_require(r, m.route->min_role) != 0)
    {
        return;
    }

    if (m.route->rl_group != RL_NONE
        && !ratelimit_per_address(m.route->rl_group)
        && ratelimit_check(r, m.route->rl_group) != 0)
    {
        return;
    }

    m.route->handler(r);

    if (r->in_txn) {
        db_rollback(r);
    }

    if (!req_replied(r)) {
        log_error("req=%s msg=\"handler did not reply\" route=\"%s %s\"",
                  r->id, m.route->method, m.route->pattern);
        reply_error(r, 500, "internal_error", "internal error");
    }
}
