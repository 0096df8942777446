/* test_secrets.c - organisations: AES-256-GCM secrets at rest (round trip,
 * tampering, wrong key or AAD, malformed input), the tenant slug rules,
 * and the route table's guards on /service and /admin */
#include "tap.h"
#include "secrets.h"
#include "handlers/handlers.h"
#include "router.h"

#include <stdlib.h>

static const unsigned char key1[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char key2[32] = "fedcba9876543210fedcba9876543210";


static void
test_crypto(void)
{
    char *e1, *e2, *p, *t, big[SECRET_MAX_PLAIN + 2];
    size_t n;

    e1 = secret_encrypt(key1, "sk-live-abcdef123456", "tenant:a/k");
    ok(e1 != NULL && strncmp(e1, "v1:", 3) == 0, "secrets: v1: prefix");
    ok(e1 != NULL && strstr(e1, "abcdef123456") == NULL,
       "secrets: the plaintext does not appear");

    p = secret_decrypt(key1, e1, "tenant:a/k");
    is_str(p, "sk-live-abcdef123456", "secrets: round trip");
    secret_free(p);

    e2 = secret_encrypt(key1, "sk-live-abcdef123456", "tenant:a/k");
    ok(e2 != NULL && strcmp(e1, e2) != 0, "secrets: a fresh nonce each time");
    free(e2);

    ok(secret_decrypt(key2, e1, "tenant:a/k") == NULL,
       "secrets: the wrong key fails");
    ok(secret_decrypt(key1, e1, "tenant:b/k") == NULL,
       "secrets: another tenant's AAD fails");
    ok(secret_decrypt(key1, e1, NULL) == NULL, "secrets: no AAD fails");

    /* flip one character of the ciphertext, of the nonce, of the tag */
    t = strdup(e1);
    n = strlen(t);
    t[n / 2] = t[n / 2] == 'A' ? 'B' : 'A';
    ok(secret_decrypt(key1, t, "tenant:a/k") == NULL,
       "secrets: a changed ciphertext fails");
    memcpy(t, e1, n);
    t[4] = t[4] == 'A' ? 'B' : 'A';
    ok(secret_decrypt(key1, t, "tenant:a/k") == NULL,
       "secrets: a changed nonce fails");
    memcpy(t, e1, n);
    t[n - 3] = t[n - 3] == 'A' ? 'B' : 'A';
    ok(secret_decrypt(key1, t, "tenant:a/k") == NULL,
       "secrets: a changed tag fails");

    /* truncation and garbage */
    t[n - 4] = '\0';
    memcpy(t, e1, n - 4);
    ok(secret_decrypt(key1, t, "tenant:a/k") == NULL,
       "secrets: a truncated value fails");
    ok(secret_decrypt(key1, "v1:", NULL) == NULL, "secrets: empty fails");
    ok(secret_decrypt(key1, "v1:AAAA", NULL) == NULL, "secrets: short fails");
    ok(secret_decrypt(key1, "v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL)
       == NULL, "secrets: unknown version fails");
    ok(secret_decrypt(key1, "v1:!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL)
       == NULL, "secrets: bad base64 fails");
    ok(secret_decrypt(key1, NULL, NULL) == NULL, "secrets: NULL fails");
    free(t);
    free(e1);

    /* edge sizes */
    e1 = secret_encrypt(key1, "", NULL);
    p = secret_decrypt(key1, e1, NULL);
    is_str(p, "", "secrets: empty plaintext round trip");
    secret_free(p);
    free(e1);

    for (n = 1; n <= 5; n++) {
        char s[6] = "abcde";
        s[n] = '\0';
        e1 = secret_encrypt(key1, s, "x");
        p = secret_decrypt(key1, e1, "x");
        is_str(p, s, "secrets: %zu-byte plaintext (base64 padding)", n);
        secret_free(p);
        free(e1);
    }

    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ok(secret_encrypt(key1, big, NULL) == NULL,
       "secrets: over SECRET_MAX_PLAIN refused");
    big[SECRET_MAX_PLAIN] = '\0';
    e1 = secret_encrypt(key1, big, NULL);
    p = secret_decrypt(key1, e1, NULL);
    ok(p != NULL && strlen(p) == SECRET_MAX_PLAIN,
       "secrets: SECRET_MAX_PLAIN round trip");
    secret_free(p);
    free(e1);
}


static void
test_slugs(void)
{
    ok(slug_problem("acme") == NULL, "slug: acme ok");
    ok(slug_problem("a-1") == NULL, "slug: a-1 ok (3 characters)");
    ok(slug_problem("abcdefghij0123456789abcdefghij0123456789") == NULL,
       "slug: 40 characters ok");
    is_str(slug_problem("ab"), "invalid: must be 3 to 40 characters",
           "slug: 2 characters");
    is_str(slug_problem("abcdefghij0123456789abcdefghij0123456789x"),
           "invalid: must be 3 to 40 characters", "slug: 41 characters");
    is_str(slug_problem(""), "invalid: must be 3 to 40 characters",
           "slug: empty");
    is_str(slug_problem("Acme"),
           "invalid: only lowercase letters, digits and hyphens",
           "slug: uppercase");
    is_str(slug_problem("ac_me"),
           "invalid: only lowercase letters, digits and hyphens",
           "slug: underscore");
    is_str(slug_problem("acm\xc3\xa9"),
           "invalid: only lowercase letters, digits and hyphens",
           "slug: non-ASCII");
    is_str(slug_problem("-acme"), "invalid: must not start or end with a"
           " hyphen", "slug: leading hyphen");
    is_str(slug_problem("acme-"), "invalid: must not start or end with a"
           " hyphen", "slug: trailing hyphen");
    is_str(slug_problem("admin"), "reserved", "slug: admin reserved");
    is_str(slug_problem("trueportai"), "reserved", "slug: trueportai reserved");
    is_str(slug_problem("www"), "reserved", "slug: www reserved");
    ok(slug_problem("admins") == NULL, "slug: admins is not reserved");
}


/* every tenant route needs a scoped role, every admin route a platform
 * admin, and both count against the management limit */
static void
test_route_guards(void)
{
    size_t i, bad_service = 0, bad_admin = 0, n_service = 0, n_admin = 0;

    for (i = 0; i < routes_count; i++) {
        const route_t *rt = &routes[i];

        if (strncmp(rt->pattern, "/platform/api/service/", 22) == 0) {
            n_service++;
            if (rt->min_role < ROLE_VIEWER || rt->min_role > ROLE_OWNER
                || rt->rl_group != RL_MANAGEMENT)
            {
                bad_service++;
                printf("#   %s %s\n", rt->method, rt->pattern);
            }
        } else if (strncmp(rt->pattern, "/platform/api/admin/", 20) == 0) {
            n_admin++;
            if (rt->min_role != ROLE_PLATFORM || rt->rl_group != RL_MANAGEMENT)
            {
                bad_admin++;
                printf("#   %s %s\n", rt->method, rt->pattern);
            }
        }
    }
    ok(n_service >= 16 && bad_service == 0,
       "routes: %zu service routes, all scoped and RL_MANAGEMENT", n_service);
    ok(n_admin >= 7 && bad_admin == 0,
       "routes: %zu admin routes, all ROLE_PLATFORM and RL_MANAGEMENT",
       n_admin);
}


void
test_secrets(void)
{
    test_crypto();
    test_slugs();
    test_route_guards();
}
