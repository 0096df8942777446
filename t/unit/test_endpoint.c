/* test_endpoint.c - tenant endpoints against the operator's allowlist:
 * the default lets through Azure resource hosts only; every spelling of
 * an IP literal, localhost, local-only and single-label names, user
 * information, other schemes and ports are refused with their reason;
 * the operator's exact patterns and ports; malformed patterns */
#include "../../sidecar/tests/tap.h"
#include "trueport_endpoint.h"

#include <string.h>

int tap_n, tap_failed;

static const char *why;

static int
check(const char *url, const char *allow)
{
    why = NULL;
    return tp_endpoint_check(url, strlen(url), allow, strlen(allow), &why);
}


static void
allowed(const char *url, const char *allow)
{
    ok(check(url, allow) == 0, "allowed under \"%s\": %s", allow, url);
    if (why) {
        printf("#   refused: %s\n", why);
    }
}


/* refused, with a reason that has want in it */
static void
refused(const char *url, const char *allow, const char *want)
{
    int rc = check(url, allow);

    ok(rc == -1 && why && strstr(why, want),
       "refused under \"%s\": %s (%s)", allow, url, want);
    if (rc != -1 || !why || !strstr(why, want)) {
        printf("#   rc %d, reason \"%s\"\n", rc, why ? why : "(none)");
    }
}


static int
pattern_ok(const char *p)
{
    const char *r;

    return tp_endpoint_pattern_valid(p, strlen(p), &r) == 0;
}


int
main(void)
{
    const char  *d = TP_ENDPOINT_ALLOW_DEFAULT, *r, *bad;
    size_t       bad_len;
    static const char *const ips[] = {
        "https://127.0.0.1", "http://127.0.0.1:19999", "https://127.1",
        "https://2130706433", "https://017700000001", "https://0x7f000001",
        "https://0x7f.1", "https://0X7F.0.0.1", "https://0177.0.0.1",
        "https://169.254.169.254", "https://10.0.0.1", "https://172.16.0.1",
        "https://192.168.1.1", "https://0", "https://0x", "https://[::1]",
        "https://[::ffff:127.0.0.1]", "https://[fe80::1]",
        "https://[fd00::1]:443", "https://1.2.3.4.5", NULL
    };
    const char *const *u;

    /* the default: Azure OpenAI resources only */
    allowed("https://acme.openai.azure.com", d);
    allowed("https://acme.openai.azure.com/", d);
    allowed("https://Acme-1.OpenAI.Azure.COM", d);
    allowed("HTTPS://acme.openai.azure.com:443/", d);
    allowed("https://acme.openai.azure.com/some/base_path-1.~x", d);
    refused("https://a.b.openai.azure.com", d, "not in the operator's");
    refused("https://openai.azure.com", d, "not in the operator's");
    refused("https://acme.openai.azure.com.evil.example", d,
            "not in the operator's");
    refused("https://evilopenai.azure.com", d, "not in the operator's");
    refused("https://acme.openai.azure.co", d, "not in the operator's");
    refused("https://evil.example.com/acme.openai.azure.com", d,
            "not in the operator's");
    refused("http://acme.openai.azure.com", d, "must be https://");
    refused("ftp://acme.openai.azure.com", d, "must be https://");
    refused("acme.openai.azure.com", d, "must be https://");
    refused("//acme.openai.azure.com", d, "must be https://");
    refused("https:/acme.openai.azure.com", d, "must be https://");
    refused("https://acme.openai.azure.com:8443", d, "port is not allowed");
    refused("https://acme.openai.azure.com:80", d, "port is not allowed");

    /* user information: the host would be what follows the "@" */
    refused("https://acme.openai.azure.com@evil.example.com", d,
            "user information");
    refused("https://user:pw@acme.openai.azure.com", d, "user information");
    refused("https://@acme.openai.azure.com", d, "user information");

    /* IP literals in every spelling, whatever the allowlist's wildcards */
    for (u = ips; *u; u++) {
        refused(*u, d, "IP address literals");
        refused(*u, "*.0.0.1, *.example.com, https://*.*.com", "IP address");
    }

    refused("https://localhost", d, "localhost");
    refused("https://LocalHost:443", d, "localhost");
    refused("https://x.localhost", "*.*.localhost, *.x.localhost", "localhost");
    refused("https://metadata.google.internal", "*.google.internal",
            "local-only");
    refused("https://printer.local", d, "local-only");
    refused("https://nas.home.arpa", d, "local-only");
    refused("https://gw.localdomain", d, "local-only");
    refused("https://metadata", d, "single-label");
    refused("https://trueport_sidecar_internal", d, "letters, digits");
    refused("https://mockhost:8080", d, "single-label");

    /* malformed */
    refused("https://", d, "no host");
    refused("https:///path", d, "no host");
    refused("https://:443", d, "no host");
    refused("https://acme.openai.azure.com.", d, "empty label");
    refused("https://acme..openai.azure.com", d, "empty label");
    refused("https://.openai.azure.com", d, "empty label");
    refused("https://-acme.openai.azure.com", d, "hyphen");
    refused("https://acme-.openai.azure.com", d, "hyphen");
    refused("https://acme_x.openai.azure.com", d, "letters, digits");
    refused("https://acme.openai.azure.com:", d, "port must be");
    refused("https://acme.openai.azure.com:0", d, "port must be");
    refused("https://acme.openai.azure.com:0443", d, "port must be");
    refused("https://acme.openai.azure.com:65536", d, "port must be");
    refused("https://acme.openai.azure.com:4431234", d, "port must be");
    refused("https://acme.openai.azure.com:44x", d, "port must be");
    refused("https://[::1", d, "IPv6");
    refused("https://[::1]x", d, "IPv6");
    refused("https://[]", d, "IPv6");
    refused("https://[1.2.3.4]", d, "IPv6");
    refused("https://[::1%25eth0]", d, "percent");
    refused("https://acme.openai.azure.com/a?b", d, "query");
    refused("https://acme.openai.azure.com#f", d, "query");
    refused("https://acme.openai.azure.com\\@evil.com", d, "backslash");
    refused("https://acme%2eopenai.azure.com", d, "percent");
    refused("https://acme.openai.azure.com/a b", d, "blanks");
    refused("https://acme.openai.azure.com/\x01", d, "control");
    refused("https://acme.openai.azure.com/\xc3\xa9", d, "non-ASCII");
    refused("https://acme.openai.azure.com/../x", d, "dot segments");
    refused("https://acme.openai.azure.com/a/./x", d, "dot segments");
    refused("https://acme.openai.azure.com/a/..", d, "dot segments");
    refused("https://acme.openai.azure.com/a;b", d, "the path may only");
    refused("https://acme.openai.azure.com/{resource}", d, "the path may");
    refused("https://{resource}.openai.azure.com", d, "letters, digits");
    refused("https://a*.openai.azure.com", d, "letters, digits");

    {
        char host[300];

        memset(host, 'a', sizeof(host));
        memcpy(host, "https://", 8);
        memcpy(host + 8 + 64, ".openai.azure.com", 18);
        refused(host, d, "longer than 63");
    }

    /* the operator's own patterns */
    allowed("https://proxy.corp.example.com/azure", "*.openai.azure.com,"
            " proxy.corp.example.com");
    allowed("https://proxy-eu.corp.example.com", "proxy-*.corp.example.com");
    refused("https://proxy-.corp.example.com", "proxy-*.corp.example.com",
            "hyphen");
    refused("https://proxy.corp.example.com", "proxy-*.corp.example.com",
            "not in the operator's");
    allowed("https://x.corp.example.com:8443", "https://*.corp.example.com:*");
    allowed("https://x.corp.example.com:8443",
            "*.corp.example.com:8443 *.corp.example.com");
    refused("https://x.corp.example.com:8444", "*.corp.example.com:8443",
            "port is not allowed");
    allowed("http://127.0.0.1:8080", "http://127.0.0.1:8080");
    allowed("http://127.0.0.1:8080/x", "http://127.0.0.1:*");
    refused("http://127.0.0.1:8081", "http://127.0.0.1:8080",
            "port is not allowed");
    refused("https://127.0.0.1:8080", "http://127.0.0.1:8080",
            "only http://");
    refused("http://127.0.0.2:8080", "http://127.0.0.1:8080", "IP address");
    allowed("http://localhost", "http://localhost");
    allowed("http://LOCALHOST:80/", "http://localhost");
    allowed("https://[::1]:8443", "[::1]:8443");
    allowed("https://mockhost", "mockhost");
    allowed("http://acme.openai.azure.com", "http://*.openai.azure.com");
    refused("https://acme.openai.azure.com", "http://*.openai.azure.com",
            "only http://");
    refused("https://acme.openai.azure.com", "", "not in the operator's");
    refused("https://acme.openai.azure.com", "*, *.com, ftp://x.y.z",
            "not in the operator's");

    /* patterns */
    ok(pattern_ok("*.openai.azure.com"), "pattern: the default");
    ok(pattern_ok("https://*.openai.azure.com:443"), "pattern: https, port");
    ok(pattern_ok("http://127.0.0.1:*"), "pattern: http, any port");
    ok(pattern_ok("a.*.example.com"), "pattern: a wildcard in the middle");
    ok(pattern_ok("[::1]"), "pattern: an IPv6 literal");
    ok(pattern_ok("localhost"), "pattern: exact localhost");
    ok(!pattern_ok("*"), "pattern: * alone refused");
    ok(!pattern_ok("*.com"), "pattern: *.com refused");
    ok(!pattern_ok("example.*.com"), "pattern: *.com at the end refused");
    ok(!pattern_ok("example.com.*"), "pattern: a wildcard TLD refused");
    ok(!pattern_ok("*.example.*"), "pattern: *.example.* refused");
    ok(!pattern_ok("ftp://x.example.com"), "pattern: ftp refused");
    ok(!pattern_ok("https://x.example.com/path"), "pattern: a path refused");
    ok(!pattern_ok("user@x.example.com"), "pattern: user info refused");
    ok(!pattern_ok("x.example.com:0"), "pattern: port 0 refused");
    ok(!pattern_ok("x.example.com:**"), "pattern: port ** refused");
    ok(!pattern_ok(""), "pattern: empty refused");

    ok(tp_endpoint_allow_valid(d, strlen(d), &r, &bad, &bad_len) == 0,
       "allowlist: the default is valid");
    ok(tp_endpoint_allow_valid("a.example.com, ,\t*.b.example.com", 32, &r,
                               &bad, &bad_len) == 0,
       "allowlist: commas and blanks separate");
    ok(tp_endpoint_allow_valid("a.example.com,*.com", 19, &r, &bad,
                               &bad_len) == -1
       && bad_len == 5 && memcmp(bad, "*.com", 5) == 0
       && strstr(r, "two fixed labels"),
       "allowlist: the bad pattern is named");
    ok(tp_endpoint_allow_valid(" , ", 3, &r, &bad, &bad_len) == -1
       && strstr(r, "no pattern"), "allowlist: empty refused");

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
