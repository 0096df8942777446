/* token.c - JWT issue/verify on libjwt 1.10, with the checks it leaves to us */
#include "token.h"

#include <jwt.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
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
        || jwt_add_grant(jwt, "typ", tid != NULL ? TOKEN_TYP_SCOPED
                                                 : TOKEN_TYP_GLOBAL) != 0
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


/*
 * Tokens already verified, per thread (no locks): a client sends the same
 * token with every request, and decoding it (base64, a JSON parse, an
 * HMAC) was a fifth of a list request's sidecar time. A hit needs the
 * very same bytes and the same secret, so it proves what the signature
 * check proved; expiry is checked again on every use. Only good tokens
 * are kept: a bad one is refused the slow way each time.
 */
#define TOKEN_CACHE_SLOTS  32
#define TOKEN_MAX_LEN      4096

typedef struct {
    char            *token;        /* malloc'd copy; NULL: empty slot */
    size_t           len;
    char            *secret;       /* after the token, in the same block */
    token_claims_t   claims;
} token_slot_t;

static __thread token_slot_t  token_cache[TOKEN_CACHE_SLOTS];

/* frees a worker thread's copies when the thread exits */
static pthread_key_t   token_key;
static pthread_once_t  token_key_once = PTHREAD_ONCE_INIT;


static void
token_cache_free(void *cache)
{
    token_slot_t *slots = cache;
    size_t        i;

    for (i = 0; i < TOKEN_CACHE_SLOTS; i++) {
        free(slots[i].token);
        slots[i].token = NULL;
    }
}


static void
token_key_create(void)
{
    (void) pthread_key_create(&token_key, token_cache_free);
}


/* the slot of a token: its last bytes are signature, as good as random */
static token_slot_t *
token_slot(const char *token, size_t len)
{
    uint32_t h = 2166136261u;
    size_t   i;

    for (i = len > 8 ? len - 8 : 0; i < len; i++) {
        h = (h ^ (unsigned char) token[i]) * 16777619u;
    }
    return &token_cache[h % TOKEN_CACHE_SLOTS];
}


static void
token_remember(token_slot_t *slot, const char *secret, const char *token,
    size_t len, const token_claims_t *claims)
{
    size_t  slen = strlen(secret) + 1;
    char   *copy = malloc(len + slen);

    if (copy == NULL) {
        return;                            /* only a cache */
    }
    memcpy(copy, token, len);
    memcpy(copy + len, secret, slen);
    if (slot->token == NULL) {
        pthread_once(&token_key_once, token_key_create);
        (void) pthread_setspecific(token_key, token_cache);
    }
    free(slot->token);
    slot->token = copy;
    slot->len = len;
    slot->secret = copy + len;
    slot->claims = *claims;
}


int
token_verify(const char *secret, const char *token, long long now,
    token_claims_t *out, const char **why)
{
    token_slot_t *slot;
    jwt_t        *jwt = NULL;
    const char   *typ;
    size_t        len;
    int           rc = -1, scoped;

    memset(out, 0, sizeof(*out));
    *why = "malformed token";

    if (token == NULL || (len = strnlen(token, TOKEN_MAX_LEN + 1))
                         > TOKEN_MAX_LEN)
    {
        return -1;
    }

    slot = token_slot(token, len);
    if (slot->token != NULL && slot->len == len && slot->claims.exp > now
        && CRYPTO_memcmp(slot->token, token, len) == 0
        && strcmp(slot->secret, secret) == 0)
    {
        *out = slot->claims;
        *why = NULL;
        return 0;
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

    typ = jwt_get_grant(jwt, "typ");
    if (typ == NULL) {
        *why = "token has no type (issued before an upgrade): sign in again";
        goto done;
    }
    scoped = strcmp(typ, TOKEN_TYP_SCOPED) == 0;
    if (!scoped && strcmp(typ, TOKEN_TYP_GLOBAL) != 0) {
        *why = "token has an unknown type";
        goto done;
    }

    /* a scoped token names its tenant, role and env; a global one none */
    if (copy_grant(jwt, "tid", out->tid, sizeof(out->tid), scoped) != 0
        || copy_grant(jwt, "role", out->role, sizeof(out->role), scoped) != 0
        || copy_grant(jwt, "env", out->env, sizeof(out->env), scoped) != 0
        || (scoped && out->tid[0] == '\0')
        || (!scoped && (out->tid[0] || out->role[0] || out->env[0])))
    {
        *why = "token has malformed claims";
        goto done;
    }

    *why = NULL;
    rc = 0;
    token_remember(slot, secret, token, len, out);

done:
    jwt_free(jwt);
    return rc;
}
