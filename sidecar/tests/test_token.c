/* test_token.c - JWT issue/verify, and the forgeries libjwt lets through */
#include "tap.h"
#include "token.h"
#include "password.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW 1800000000LL

static char *
b64url_n(const void *s, size_t len)
{
    static char out[512];
    int         n, i, j = 0;

    n = EVP_EncodeBlock((unsigned char *) out, s, (int) len);
    for (i = 0; i < n; i++) {
        if (out[i] == '=') break;
        out[j++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    out[j] = '\0';
    return out;
}

static char *
b64url(const char *s)
{
    return b64url_n(s, strlen(s));
}


/* an HS256 token of the claims, signed with SECRET */
static char *
signed_token(const char *claims)
{
    static char   tok[1024];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int  n;

    snprintf(tok, sizeof(tok), "%s.",
             b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"));
    strcat(tok, b64url(claims));
    HMAC(EVP_sha256(), SECRET, (int) strlen(SECRET), (unsigned char *) tok,
         strlen(tok), mac, &n);
    strcat(tok, ".");
    strcat(tok, b64url_n(mac, n));
    return tok;
}


/* the typ claim: every token says what it is and its claims agree */
static void
test_token_typ(void)
{
    static const struct { const char *claims, *why; } bad[] = {
        { "{\"sub\":\"u1\",\"iat\":1800000000,\"exp\":1900000000}",
          "no typ (issued before the claim)" },
        { "{\"sub\":\"u1\",\"tid\":\"t1\",\"role\":\"owner\","
          "\"env\":\"production\",\"iat\":1800000000,\"exp\":1900000000}",
          "scoped claims without typ" },
        { "{\"sub\":\"u1\",\"typ\":\"scoped\",\"iat\":1800000000,"
          "\"exp\":1900000000}", "typ scoped without a tenant" },
        { "{\"sub\":\"u1\",\"typ\":\"global\",\"tid\":\"t1\","
          "\"role\":\"owner\",\"env\":\"production\","
          "\"iat\":1800000000,\"exp\":1900000000}", "typ global with a tenant" },
        { "{\"sub\":\"u1\",\"typ\":\"admin\",\"iat\":1800000000,"
          "\"exp\":1900000000}", "an unknown typ" },
        { "{\"sub\":\"u1\",\"typ\":7,\"iat\":1800000000,"
          "\"exp\":1900000000}", "typ not a string" },
    };
    token_claims_t c;
    const char    *why;
    char          *t;
    size_t         i;

    t = signed_token("{\"sub\":\"u1\",\"typ\":\"global\","
                     "\"iat\":1800000000,\"exp\":1900000000}");
    ok(token_verify(SECRET, t, NOW, &c, &why) == 0 && c.tid[0] == '\0',
       "typ: a hand-signed global token verifies (the signing is right)");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = signed_token(bad[i].claims);
        ok(token_verify(SECRET, t, NOW, &c, &why) != 0,
           "typ: %s is refused (%s)", bad[i].why, why);
    }

    t = token_issue(SECRET, "u1", NULL, NULL, NULL, 60, NOW, NULL);
    ok(token_verify(SECRET, t, NOW, &c, &why) == 0 && c.tid[0] == '\0',
       "typ: an issued global token verifies as global");
    free(t);
    t = token_issue(SECRET, "u1", "t1", "owner", "production", 60, NOW, NULL);
    ok(t != NULL && token_verify(SECRET, t, NOW, &c, &why) == 0
       && strcmp(c.tid, "t1") == 0, "typ: an issued scoped token verifies");
    free(t);
}


void
test_token(void)
{
    token_claims_t c;
    const char    *why;
    char          *t, forged[1024], *dot;
    long long      exp;

    t = token_issue(SECRET, "u1", NULL, NULL, NULL, 60, NOW, &exp);
    ok(t != NULL, "token: issue a global token");
    is_int(exp, NOW + 60, "token: exp = now + ttl");
    ok(token_verify(SECRET, t, NOW, &c, &why) == 0, "token: verifies");
    is_str(c.sub, "u1", "token: sub");
    is_str(c.tid, "", "token: global token has no tid");
    ok(token_verify(SECRET, t, NOW + 60, &c, &why) != 0
       && strcmp(why, "token expired") == 0, "token: expired is refused");
    ok(token_verify("another-secret-0123456789abcdef0", t, NOW, &c, &why) != 0,
       "token: wrong secret refused");

    /* flip a signature character */
    snprintf(forged, sizeof(forged), "%s", t);
    forged[strlen(forged) - 2] ^= 1;
    ok(token_verify(SECRET, forged, NOW, &c, &why) != 0,
       "token: tampered signature refused");

    /* tamper the payload, keep the signature */
    dot = strchr(t, '.');
    snprintf(forged, sizeof(forged), "%s.", b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"));
    strcat(forged, b64url("{\"sub\":\"admin\",\"iat\":1800000000,\"exp\":1900000000}"));
    strcat(forged, strrchr(t, '.'));
    ok(token_verify(SECRET, forged, NOW, &c, &why) != 0,
       "token: tampered payload refused");
    (void) dot;
    free(t);

    /* alg none, no signature */
    snprintf(forged, sizeof(forged), "%s.", b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}"));
    strcat(forged, b64url("{\"sub\":\"u1\",\"iat\":1800000000,\"exp\":1900000000}"));
    strcat(forged, ".");
    ok(token_verify(SECRET, forged, NOW, &c, &why) != 0,
       "token: alg none refused");

    t = token_issue(SECRET, "u2", "t9", "admin", "staging", 60, NOW, NULL);
    ok(token_verify(SECRET, t, NOW, &c, &why) == 0
       && strcmp(c.tid, "t9") == 0 && strcmp(c.role, "admin") == 0
       && strcmp(c.env, "staging") == 0, "token: scoped claims round-trip");

    /* the second use comes from the per-thread cache: same answer, and
     * nothing but the very same bytes and secret hit it */
    memset(&c, 0, sizeof(c));
    ok(token_verify(SECRET, t, NOW + 1, &c, &why) == 0 && why == NULL
       && strcmp(c.sub, "u2") == 0 && strcmp(c.tid, "t9") == 0
       && c.exp == NOW + 60, "token cache: a hit gives the claims");
    ok(token_verify("another-secret-0123456789abcdef0", t, NOW, &c, &why)
       != 0, "token cache: another secret misses and is refused");
    ok(token_verify(SECRET, t, NOW + 60, &c, &why) != 0
       && strcmp(why, "token expired") == 0,
       "token cache: expiry is checked on a hit");
    snprintf(forged, sizeof(forged), "%s", t);
    dot = strchr(forged, '.');
    dot[3] ^= 1;                           /* payload, signature kept */
    ok(token_verify(SECRET, forged, NOW, &c, &why) != 0,
       "token cache: a token that differs from a cached one is refused");
    snprintf(forged, sizeof(forged), "%sx", t);
    ok(token_verify(SECRET, forged, NOW, &c, &why) != 0,
       "token cache: a longer token with a cached prefix is refused");
    free(t);

    ok(token_verify(SECRET, "garbage", NOW, &c, &why) != 0,
       "token: garbage refused");
    ok(token_verify(SECRET, "a.b.c", NOW, &c, &why) != 0,
       "token: three junk parts refused");

    test_token_typ();

    /* passwords */
    ok(password_policy("short") != NULL, "password: under 10 refused");
    ok(password_policy("0123456789") == NULL, "password: 10 accepted");
    ok(password_policy("ééééééééé") != NULL,
       "password: counts characters, not bytes");
    t = password_hash("correct horse battery", 1024);
    ok(t != NULL && strncmp(t, "scrypt$1024$8$1$", 16) == 0,
       "password: encoded hash");
    ok(password_verify("correct horse battery", t), "password: verifies");
    ok(!password_verify("correct horse batterz", t), "password: wrong one");
    ok(!password_verify("x", "scrypt$garbage"), "password: bad encoding");
    free(t);
}
