/* auth.h - who is calling: bearer tokens, roles, platform admins, nginx */
#ifndef TP_AUTH_H
#define TP_AUTH_H

#include "req.h"

/* Verifies the caller for a route's minimum role and fills r->auth.
 * 0: allowed; -1: 401/403 already sent. */
int auth_require(req_t *r, role_t min) __attribute__((warn_unused_result));

/* 1 when the request carries a valid token of a platform admin, else 0;
 * replies nothing (for routes whose answer is only richer for them). */
int auth_is_platform_admin(req_t *r);

role_t      role_parse(const char *s);       /* ROLE_NONE when unknown */
const char *role_name(role_t role);

#endif
