/* auth.c - route authentication: the token proves who, the database says
 * what they may do now (role changes, removals, suspensions and password
 * changes apply to tokens already issued). */
#include "auth.h"
#include "config.h"
#include "log.h"
#include "token.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *role_names[] = {
    [ROLE_VIEWER] = "viewer", [ROLE_MEMBER] = "member",
    [ROLE_ADMIN] = "admin",   [ROLE_OWNER] = "owner",
};


role_t
role_parse(const char *s)
{
    role_t r;

    for (r = ROLE_VIEWER; r <= ROLE_OWNER; r++) {
        if (s != NULL && strcmp(s, role_names[r]) == 0) {
            return r;
        }
    }
    return ROLE_NONE;
}


const char *
role_name(role_t role)
{
    return (role >= ROLE_VIEWER && role <= ROLE_OWNER) ? role_names[role]
                                                       : "none";
}


/* nginx's internal locations add X-TruePort-Internal-Token (required: the
 * sidecar does not serve without one); they reach the internal listener
 * from a trusted proxy address (loopback by default). */
static int
auth_internal(req_t *r)
{
    const char *tok = req_header(r, "X-TruePort-Internal-Token");
    size_t      n = strlen(cfg.internal_token);

    if (!r->peer_trusted || n == 0 || tok == NULL || strlen(tok) != n
        || CRYPTO_memcmp(tok, cfg.internal_token, n) != 0)
    {
        reply_error(r, 404, "not_found", "no route for %s %s", r->method,
                    r->path);
        return -1;
    }
    return 0;
}


int
auth_require(req_t *r, role_t min)
{
    token_claims_t  c;
    const char     *h, *why, *slug;
    PGresult       *res;
    long long       valid_after;
    role_t          role;

    if (min == ROLE_INTERNAL) {
        return auth_internal(r);
    }

    h = req_header(r, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
        reply_error(r, 401, "unauthorized",
                    "missing bearer token (Authorization: Bearer <token>)");
        return -1;
    }

    if (token_verify(cfg.jwt_secret, h + 7, (long long) time(NULL), &c, &why)
        != 0 || !is_uuid(c.sub) || (c.tid[0] && !is_uuid(c.tid)))
    {
        reply_error(r, 401, "invalid_token", "%s",
                    why ? why : "malformed token");
        return -1;
    }

    /* dev mode only: pick the tenant by slug (the membership still counts) */
    slug = cfg.dev_mode ? req_header(r, "X-Tenant-Slug") : NULL;

    res = dbq(r,
              "SELECT u.is_platform_admin, u.tokens_valid_after, m.role,"
              " t.status, t.id"
              " FROM users u"
              " LEFT JOIN tenants t ON ($3::text IS NULL AND t.id = $2::uuid)"
              "                     OR t.slug = $3"
              " LEFT JOIN memberships m ON m.user_id = u.id"
              "                        AND m.tenant_id = t.id"
              " WHERE u.id = $1", 3,
              c.sub, c.tid[0] ? c.tid : NULL, slug);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 401, "invalid_token", "the token's user no longer exists");
        return -1;
    }

    valid_after = atoll(PQgetvalue(res, 0, 1));
    if (c.iat < valid_after) {
        reply_error(r, 401, "invalid_token",
                    "token was issued before a password change");
        return -1;
    }

    r->auth.ok = 1;
    r->auth.platform_admin = PQgetvalue(res, 0, 0)[0] == 't';
    r->auth.iat = c.iat;
    r->auth.exp = c.exp;
    memcpy(r->auth.user_id, c.sub, strlen(c.sub) + 1);

    if (min == ROLE_GLOBAL) {
        /* the account's routes (new tenants, select-tenant, the password)
         * are not for a token scoped to one tenant */
        if (c.tid[0] != '\0') {
            reply_error(r, 401, "global_token_required",
                        "this route needs a global token (login), not a"
                        " scoped one");
            return -1;
        }
        return 0;
    }
    if (min == ROLE_PLATFORM) {
        if (!r->auth.platform_admin) {
            reply_error(r, 403, "forbidden", "platform admin only");
            return -1;
        }
        return 0;
    }

    /* tenant routes */
    if (c.tid[0] == '\0' && slug == NULL) {
        reply_error(r, 401, "scoped_token_required",
                    "this route needs a scoped token (select-tenant)");
        return -1;
    }
    if (PQgetisnull(res, 0, 2)) {
        reply_error(r, 403, "forbidden", "not a member of this tenant");
        return -1;
    }
    if (strcmp(PQgetvalue(res, 0, 3), "active") != 0) {
        reply_error(r, 403, "tenant_suspended", "the tenant is suspended");
        return -1;
    }

    role = role_parse(PQgetvalue(res, 0, 2));
    r->auth.scoped = 1;
    r->auth.role = role;
    snprintf(r->auth.tenant_id, sizeof(r->auth.tenant_id), "%s",
             PQgetvalue(res, 0, 4));
    snprintf(r->auth.env, sizeof(r->auth.env), "%s",
             c.env[0] ? c.env : "production");

    if (role < min) {
        reply_error(r, 403, "insufficient_role",
                    "this action needs the %s role (you are %s)",
                    role_name(min), role_name(role));
        return -1;
    }
    return 0;
}


int
auth_is_platform_admin(req_t *r)
{
    token_claims_t  c;
    const char     *h, *why, *state;
    PGresult       *res;

    h = req_header(r, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0
        || token_verify(cfg.jwt_secret, h + 7, (long long) time(NULL), &c,
                        &why) != 0
        || !is_uuid(c.sub))
    {
        return 0;
    }
    res = dbq_try(r, &state,
                  "SELECT 1 FROM users WHERE id = $1 AND is_platform_admin"
                  " AND tokens_valid_after <= $2::bigint", 2, c.sub,
                  arena_sprintf(&r->arena, "%lld", c.iat));
    return res != NULL && PQntuples(res) == 1;
}
