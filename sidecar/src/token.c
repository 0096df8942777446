/* token.c - JWT issue/verify on libjwt 1.10, with the checks it leaves to us */
#include "token.h"

#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


char *
token_issue(const char *secret, const char *sub, const char *tid,
    const char *role, const char *env, long ttl, long long now,
    long long *exp_out)
{
    jwt_t *jwt = NULL;
    char  *out = NULL;

    if (jwt_new(&jwt) != 0) {
        return NULL;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *) secret,
                    (int) strlen(secret)) != 0)
    {
        /* jwt_encode_str would emit an unsigned token: refuse */
        goto done;
    }
    if (jwt_add_grant(jwt, "sub", sub) != 0
        || jwt_add_grant_int(jwt, "iat", now) != 0
        || jwt_add_grant_int(jwt, "exp", now + ttl) != 0)
    {
        goto done;
    }
    if (tid != NULL
        && (jwt_add_grant(jwt, "tid", tid) != 0
            || jwt_add_grant(jwt, "role", role) != 0
            || jwt_add_grant(jwt, "env", env) != 0))
    {
        goto done;
    }

    out = jwt_encode_str(jwt);
    if (exp_out) {
        *exp_out = now + ttl;
    }

done:
    jwt_free(jwt);
    return out;
}


static int
copy_grant(jwt_t *jwt, const char *name, char *dst, size_t len, int required)
{
    const char *v = jwt_get_grant(jwt, name);

    if (v == NULL) {
        dst[0] = '\0';
        return required ? -1 : 0;
    }
    if (strlen(v) >= len) {
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}


int
token_verify(const char *secret, const char *token, long long now,
    token_claims_t *out, const char **why)
{
    jwt_t *jwt = NULL;
    int    rc = -1;

    memset(out, 0, sizeof(*out));
    *why = "malformed token";

    if (token == NULL || strlen(token) > 4096) {
        return -1;
    }

    /* with a key, libjwt verifies the signature for the alg in the header;
     * an "alg":"none" header must still be refused explicitly */
    if (jwt_decode(&jwt, token, (const unsigned char *) secret,
                   (int) strlen(secret)) != 0 || jwt == NULL)
    {
        *why = "invalid token signature";
        goto done;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        *why = "token algorithm must be HS256";
        goto done;
    }

    if (copy_grant(jwt, "sub", out->sub, sizeof(out->sub), 1) != 0) {
        *why = "token has no subject";
        goto done;
    }

    out->exp = jwt_get_grant_int(jwt, "exp");
    if (out->exp == 0) {
        *why = "token has no expiry";
        goto done;
    }
    out->iat = jwt_get_grant_int(jwt, "iat");
    if (out->exp <= now) {
        *why = "token expired";
        goto done;
    }

    if (copy_grant(jwt, "tid", out->tid, sizeof(out->tid), 0) != 0
        || copy_grant(jwt, "role", out->role, sizeof(out->role),
                      out->tid[0] != '\0') != 0
        || copy_grant(jwt, "env", out->env, sizeof(out->env),
                      out->tid[0] != '\0') != 0)
    {
        *why = "token has malformed claims";
        goto done;
    }

    *why = NULL;
    rc = 0;

done:
    jwt_free(jwt);
    return rc;
}
