/* test_gateway.c - the gateway's request-side parsers: the sidecar's key
 * lookup answer (good, refused, malformed, hostile), the Bearer token, and
 * the query string's key argument (find, strip, redact, unescape) */
#include "../../sidecar/tests/tap.h"
#include "trueport_gateway.h"

#include <stdlib.h>

int tap_n, tap_failed;

#define ID1 "6b1f3c52-8d0e-4b7a-9a51-2f0c1d2e3f40"
#define ID2 "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a"

static tp_resolve_t  res;
static char          err[128];


static int
parse(const char *json)
{
    return tp_resolve_parse((const unsigned char *) json, strlen(json), &res,
                            err, sizeof(err));
}


static void
test_resolve(void)
{
    char   big[TP_RESOLVE_MAX + 64], deep[512];
    size_t i;

    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"production\",\"rpm\":60,\"status\":\"active\","
             "\"expires_at\":1893456000,\"credential\":\"sk-abc\","
             "\"endpoint\":\"https://r.openai.azure.com/\","
             "\"policy_revision\":7}") == 0, "a full answer parses");
    is_int(res.status, TP_KEY_ACTIVE, "status active");
    is_str(res.key_id, ID1, "key_id");
    is_str(res.tenant_id, ID2, "tenant_id");
    is_str(res.env, "production", "env");
    is_int(res.rpm, 60, "rpm");
    is_int(res.expires_at, 1893456000, "expires_at");
    is_str(res.credential, "sk-abc", "credential");
    is_int(res.credential_len, 6, "credential length");
    is_str(res.endpoint, "https://r.openai.azure.com", "endpoint, no trailing /");
    is_int(res.policy_revision, 7, "policy_revision");
    is_int(res.flags, 0, "no flags in an answer without them: neither allowed");

    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"default_credentials\":true,\"log_prompts\":true}") == 0
       && res.flags == (TP_RESOLVE_DEFAULT_CREDENTIALS | TP_RESOLVE_LOG_PROMPTS),
       "default_credentials and log_prompts true: both flags");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"default_credentials\":true,\"log_prompts\":false,"
             "\"default_credentials\":false}") == 0 && res.flags == 0,
       "false clears a flag (the last member wins)");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"default_credentials\":\"true\"}") != 0,
       "default_credentials as a string is refused");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"log_prompts\":1}") != 0, "log_prompts as a number is refused");

    ok(parse("{\"found\":false}") == 0 && res.status == TP_KEY_UNKNOWN,
       "found: false is an unknown key");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"tenant_suspended\","
             "\"expires_at\":null,\"credential\":null,\"endpoint\":null,"
             "\"extra\":{\"nested\":[1,{\"x\":\"y\"}]},\"later\":\"ok\"}") == 0,
       "nulls and unknown members (nested too) are fine");
    ok(res.status == TP_KEY_TENANT_SUSPENDED && res.expires_at == 0
       && res.credential_len == 0 && res.endpoint_len == 0,
       "... suspended, no expiry, no credential, no endpoint");

    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"provider_not_allowed\"}") == 0
       && res.status == TP_KEY_PROVIDER_NOT_ALLOWED, "provider_not_allowed");

    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"credential\":\"sk\\u0041x\"}") == 0
       && strcmp(res.credential, "skAx") == 0, "escapes are decoded");

    /* refused */
    ok(parse("") != 0, "empty");
    ok(parse("{\"found\":true") != 0, "truncated");
    ok(parse("[{\"found\":false}]") != 0, "not an object");
    ok(parse("5") != 0, "a number");
    ok(parse("{}") != 0, "found missing");
    ok(parse("{\"found\":\"yes\"}") != 0, "found not a boolean");
    ok(parse("{\"found\":false} {}") != 0, "trailing garbage");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\"}") != 0,
       "found without the rest");
    ok(parse("{\"found\":true,\"key_id\":\"x\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\"}") != 0,
       "a key_id that is no uuid");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":0,\"status\":\"active\"}") != 0, "rpm 0");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":99999999999999999999999,"
             "\"status\":\"active\"}") != 0, "rpm beyond any integer");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1.5,\"status\":\"active\"}") != 0,
       "a fractional rpm");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"whatever\"}") != 0,
       "an unknown status fails closed");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"credential\":\"sk\\r\\nX-Evil: 1\"}") != 0,
       "a credential with CR LF (header injection) is refused");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"credential\":\"sk abc\"}") != 0, "a credential with a blank");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"endpoint\":\"ftp://x\"}") != 0, "an endpoint that is not http(s)");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":\"active\","
             "\"endpoint\":\"https://x/?a=b\"}") != 0, "an endpoint with a query");
    ok(parse("{\"found\":true,\"key_id\":\"" ID1 "\",\"tenant_id\":\"" ID2 "\","
             "\"env\":\"e\",\"rpm\":1,\"status\":{\"x\":1}}") != 0,
       "a known member with an object");
    ok(strlen(err) > 0, "... with a reason (%s)", err);

    for (i = 0; i < 100; i++) {
        deep[i] = '[';
    }
    memcpy(deep + 100, "]", 2);
    snprintf(big, sizeof(big), "{\"found\":false,\"x\":%s}", deep);
    ok(parse(big) != 0, "deep nesting is refused, not recursed into");

    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    memcpy(big + sizeof(big) - 17, "\"found\":false}", 15);
    ok(parse(big) != 0, "an answer above TP_RESOLVE_MAX is refused");

    /* a long string with escapes: the arena holds yajl's decode buffer */
    memset(big, 'a', sizeof(big));
    i = snprintf(big, sizeof(big), "{\"found\":false,\"x\":\"");
    for (; i < TP_RESOLVE_MAX - 10; i += 2) {
        big[i] = '\\';
        big[i + 1] = 'n';
    }
    memcpy(big + i, "\"}", 3);
    ok(parse(big) == 0 && res.status == TP_KEY_UNKNOWN,
       "a 4 KB escaped string parses within the arena");

    /* the worst case for the decode buffer: one escape, then 4 KB */
    i = snprintf(big, sizeof(big), "{\"found\":false,\"x\":\"\\n");
    memset(big + i, 'b', TP_RESOLVE_MAX - i - 2);
    memcpy(big + TP_RESOLVE_MAX - 2, "\"}", 3);
    ok(parse(big) == 0, "a 4 KB string with an escape parses within the arena");

    is_str(tp_key_status_name(TP_KEY_DELETED), "deleted", "status names");
}


static void
test_key(void)
{
    const unsigned char *k;
    size_t               n;

#define BEARER(s) tp_key_from_bearer((const unsigned char *) (s), strlen(s), &k, &n)

    ok(BEARER("Bearer sk-1") == 0 && n == 4 && memcmp(k, "sk-1", 4) == 0,
       "Bearer token");
    ok(BEARER("bEaReR \t sk-2  ") == 0 && n == 4 && memcmp(k, "sk-2", 4) == 0,
       "scheme case-insensitive, blanks trimmed");
    ok(BEARER("Bearer") != 0, "no token");
    ok(BEARER("Bearer   ") != 0, "only blanks");
    ok(BEARER("Basic abc") != 0, "another scheme");
    ok(BEARER("Bearerabc") != 0, "no blank after the scheme");

    ok(tp_key_valid((const unsigned char *) "sk-abc_DEF", 10), "a key");
    ok(!tp_key_valid((const unsigned char *) "", 0), "empty");
    ok(!tp_key_valid((const unsigned char *) "sk abc", 6), "a blank inside");
    ok(!tp_key_valid((const unsigned char *) "sk\x01", 3), "a control byte");
}


static void
test_args(void)
{
    const unsigned char *v;
    unsigned char        out[64];
    size_t               n;

#define GET(a, name) tp_args_get((const unsigned char *) (a), strlen(a), name, &v, &n)
#define STRIP(a) (out[tp_args_strip((const unsigned char *) (a), strlen(a), "key", out)] = '\0', (char *) out)

    ok(GET("alt=sse&key=AIza%2Bx&b=1", "key") == 0 && n == 8
       && memcmp(v, "AIza%2Bx", 8) == 0, "key= found, raw");
    ok(GET("apikey=1&key2=3&akey=4", "key") != 0, "only the name key");
    ok(GET("key", "key") == 0 && n == 0, "key without a value");
    ok(GET("", "key") != 0, "no args");

    is_str(STRIP("alt=sse&key=abc&b=1"), "alt=sse&b=1", "key= stripped");
    is_str(STRIP("key=abc"), "", "key= alone");
    is_str(STRIP("key=a&key=b&x=1&key"), "x=1", "every key= stripped");
    is_str(STRIP("a=1&&b=2&keys=3"), "a=1&b=2&keys=3", "empty args dropped, keys= kept");

#define REDACT(a) (n = tp_args_redact((const unsigned char *) (a), strlen(a), "key", "[r]", out), out[n] = '\0', (char *) out)
#define REDACT_LEN(a) tp_args_redact((const unsigned char *) (a), strlen(a), "key", "[r]", NULL)

    is_str(REDACT("alt=sse&key=AIza%2Bx&b=1"), "alt=sse&key=[r]&b=1", "key= redacted");
    is_str(REDACT("key=a&x=1&key=bcdefg"), "key=[r]&x=1&key=[r]", "every key= redacted");
    is_str(REDACT("&key=a&&b=&"), "&key=[r]&&b=&", "the rest kept byte for byte");
    is_str(REDACT("key=s&key=[r]"), "key=[r]&key=[r]", "with one already redacted");
    ok(REDACT_LEN("alt=sse&key=AIza%2Bx&b=1") == 19, "measured: the same length");
    ok(REDACT_LEN("key=[r]&key=[r]") == 0, "already redacted: nothing to do");
    ok(REDACT_LEN("key&key=&apikey=1&keys=2&b=key=3") == 0,
       "no value, other names: nothing to do");
    ok(REDACT_LEN("") == 0, "no args: nothing to do");

    n = tp_args_unescape((const unsigned char *) "a%2Bb+c%zz%4", 12, out);
    out[n] = '\0';
    is_str((char *) out, "a+b c%zz%4", "unescape: %%XX and +, bad escapes kept");
}


int
main(void)
{
    test_resolve();
    test_key();
    test_args();

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
