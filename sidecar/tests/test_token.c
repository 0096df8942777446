/* test_token.c - JWT issue/verify, and the forgeries libjwt lets through */
#include "tap.h"
#include "token.h"
#include "password.h"

#include <openssl/evp.h>
#include <stdlib.h>

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW 1800000000LL

static char *
b64url(const char *s)
{
    static char out[512];
    int         n, i, j = 0;

    n = EVP_EncodeBlock((unsigned char *) out, (const unsigned char *) s,
                        (int) strlen(s));
    for (i = 0; i < n; i++) {
        if (out[i] == '=') break;
        out[j++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    out[j] = '\0';
    return out;
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
