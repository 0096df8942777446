/* token.h - HS256 JWTs: issue and verify (libjwt checks neither alg nor exp) */
#ifndef TP_TOKEN_H
#define TP_TOKEN_H

typedef struct {
    char      sub[64];
    char      tid[64];     /* empty for a global token */
    char      role[16];
    char      env[32];
    long long iat, exp;
} token_claims_t;

/* Every token says what it is in a "typ" claim: "global" (sub only: the
 * account's routes, select-tenant) or "scoped" (tid, role, env: one
 * tenant's routes); the router lets each kind in only where it belongs, so
 * a token handed to a tool for one tenant cannot select another. */
#define TOKEN_TYP_GLOBAL  "global"
#define TOKEN_TYP_SCOPED  "scoped"

/* Returns a malloc'd token or NULL. tid/role/env NULL for a global token. */
char *token_issue(const char *secret, const char *sub, const char *tid,
                  const char *role, const char *env, long ttl,
                  long long now, long long *exp_out);

/* 0 when the token is a well-formed HS256 token signed with secret, not
 * expired at now, whose typ agrees with its claims (scoped: tid, role and
 * env; global: none of them); -1 with a short reason otherwise. A token
 * without typ (issued before the claim existed) is refused. */
int token_verify(const char *secret, const char *token, long long now,
                 token_claims_t *out, const char **why);

#endif
