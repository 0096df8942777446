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

/* Returns a malloc'd token or NULL. tid/role/env NULL for a global token. */
char *token_issue(const char *secret, const char *sub, const char *tid,
                  const char *role, const char *env, long ttl,
                  long long now, long long *exp_out);

/* 0 when the token is a well-formed HS256 token signed with secret, not
 * expired at now; -1 with a short reason otherwise. */
int token_verify(const char *secret, const char *token, long long now,
                 token_claims_t *out, const char **why);

#endif
