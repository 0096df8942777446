/* test_config.c - defaults, overrides, and the refusals with clear messages */
#include "tap.h"
#include "config.h"

static const char **env;

static const char *
lookup(const char *name)
{
    int i;

    for (i = 0; env[i] != NULL; i += 2) {
        if (strcmp(env[i], name) == 0) {
            return env[i + 1];
        }
    }
    return NULL;
}

#define KEY64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define SECRET "0123456789abcdef0123456789abcdef"

static int
load(const char **e, char *err, size_t n)
{
    env = e;
    err[0] = '\0';
    return config_load_from(lookup, err, n);
}

void
test_config(void)
{
    char err[512];

    const char *good[] = { "TRUEPORT_JWT_SECRET", SECRET,
                           "TRUEPORT_MASTER_KEY", KEY64, NULL };
    ok(load(good, err, sizeof(err)) == 0, "config: minimal settings load");
    is_str(cfg.listen.host, "127.0.0.1", "config: default listen host");
    is_int(cfg.listen.port, 8081, "config: default listen port");
    is_int(cfg.internal_listen.port, 8082, "config: default internal port");
    is_int(cfg.internal_threads, 2, "config: default internal threads");
    is_int(cfg.password_rpm, 30, "config: 30 password routes/min/address");
    is_int(cfg.public_rpm, 60, "config: 60 public routes/min/address");
    ok(netlist_has(&cfg.trusted_proxies, "127.0.0.1")
       && netlist_has(&cfg.trusted_proxies, "127.9.8.7")
       && netlist_has(&cfg.trusted_proxies, "::1")
       && !netlist_has(&cfg.trusted_proxies, "10.0.0.1")
       && !netlist_has(&cfg.trusted_proxies, "::2"),
       "config: loopback is the default trusted proxy");
    ok(config_check_serve(err, sizeof(err)) != 0
       && strstr(err, "TRUEPORT_INTERNAL_TOKEN is required"),
       "config: serving without an internal token refused, named");
    is_int(cfg.threads, 4, "config: default threads");
    is_int(cfg.master_key[1], 0x11, "config: master key decoded");

    const char *nosecret[] = { "TRUEPORT_MASTER_KEY", KEY64, NULL };
    ok(load(nosecret, err, sizeof(err)) != 0
       && strstr(err, "TRUEPORT_JWT_SECRET is required"),
       "config: missing secret refused, named");

    const char *short_secret[] = { "TRUEPORT_JWT_SECRET", "short",
                                   "TRUEPORT_MASTER_KEY", KEY64, NULL };
    ok(load(short_secret, err, sizeof(err)) != 0
       && strstr(err, "at least 32"), "config: short secret refused");

    const char *badkey[] = { "TRUEPORT_JWT_SECRET", SECRET,
                             "TRUEPORT_MASTER_KEY", "zz", NULL };
    ok(load(badkey, err, sizeof(err)) != 0 && strstr(err, "64 hex"),
       "config: bad master key refused");

    const char *badport[] = { "TRUEPORT_JWT_SECRET", SECRET,
                              "TRUEPORT_MASTER_KEY", KEY64,
                              "TRUEPORT_LISTEN", "127.0.0.1:99999", NULL };
    ok(load(badport, err, sizeof(err)) != 0 && strstr(err, "bad port"),
       "config: port out of range refused");

    const char *noport[] = { "TRUEPORT_JWT_SECRET", SECRET,
                             "TRUEPORT_MASTER_KEY", KEY64,
                             "TRUEPORT_LISTEN", "localhost", NULL };
    ok(load(noport, err, sizeof(err)) != 0, "config: listen without port");

    const char *badthreads[] = { "TRUEPORT_JWT_SECRET", SECRET,
                                 "TRUEPORT_MASTER_KEY", KEY64,
                                 "TRUEPORT_THREADS", "4x", NULL };
    ok(load(badthreads, err, sizeof(err)) != 0
       && strstr(err, "TRUEPORT_THREADS"), "config: non-numeric threads");

    const char *zero[] = { "TRUEPORT_JWT_SECRET", SECRET,
                           "TRUEPORT_MASTER_KEY", KEY64,
                           "TRUEPORT_THREADS", "0", NULL };
    ok(load(zero, err, sizeof(err)) != 0, "config: zero threads refused");

    const char *badbool[] = { "TRUEPORT_JWT_SECRET", SECRET,
                              "TRUEPORT_MASTER_KEY", KEY64,
                              "TRUEPORT_DEV_MODE", "maybe", NULL };
    ok(load(badbool, err, sizeof(err)) != 0 && strstr(err, "boolean"),
       "config: bad boolean refused");

    const char *badlevel[] = { "TRUEPORT_JWT_SECRET", SECRET,
                               "TRUEPORT_MASTER_KEY", KEY64,
                               "TRUEPORT_LOG_LEVEL", "loud", NULL };
    ok(load(badlevel, err, sizeof(err)) != 0, "config: bad log level refused");

    const char *scrypt[] = { "TRUEPORT_JWT_SECRET", SECRET,
                             "TRUEPORT_MASTER_KEY", KEY64,
                             "TRUEPORT_SCRYPT_N", "1000", NULL };
    ok(load(scrypt, err, sizeof(err)) != 0 && strstr(err, "power of two"),
       "config: scrypt N must be a power of two");

    const char *over[] = { "TRUEPORT_JWT_SECRET", SECRET,
                           "TRUEPORT_MASTER_KEY", KEY64,
                           "TRUEPORT_LISTEN", "0.0.0.0:9000",
                           "TRUEPORT_DEV_MODE", "1",
                           "TRUEPORT_THREADS", "8", NULL };
    ok(load(over, err, sizeof(err)) == 0 && cfg.listen.port == 9000
       && cfg.dev_mode == 1 && cfg.threads == 8,
       "config: environment overrides defaults");

    const char *token[] = { "TRUEPORT_JWT_SECRET", SECRET,
                            "TRUEPORT_MASTER_KEY", KEY64,
                            "TRUEPORT_INTERNAL_TOKEN", "0123456789abcde",
                            NULL };
    ok(load(token, err, sizeof(err)) == 0
       && config_check_serve(err, sizeof(err)) != 0,
       "config: a 15-character internal token refused");
    token[5] = "0123456789abcdef";
    ok(load(token, err, sizeof(err)) == 0
       && config_check_serve(err, sizeof(err)) == 0,
       "config: a 16-character internal token serves");

    const char *same[] = { "TRUEPORT_JWT_SECRET", SECRET,
                           "TRUEPORT_MASTER_KEY", KEY64,
                           "TRUEPORT_INTERNAL_LISTEN", "127.0.0.1:8081", NULL };
    ok(load(same, err, sizeof(err)) != 0
       && strstr(err, "TRUEPORT_INTERNAL_LISTEN"),
       "config: the internal listener must be another address");

    const char *nets[] = { "TRUEPORT_JWT_SECRET", SECRET,
                           "TRUEPORT_MASTER_KEY", KEY64,
                           "TRUEPORT_TRUSTED_PROXIES", "10.1.0.0/16, 192.0.2.7,"
                           "2001:db8::/32", NULL };
    ok(load(nets, err, sizeof(err)) == 0
       && netlist_has(&cfg.trusted_proxies, "10.1.255.3")
       && !netlist_has(&cfg.trusted_proxies, "10.2.0.1")
       && netlist_has(&cfg.trusted_proxies, "192.0.2.7")
       && !netlist_has(&cfg.trusted_proxies, "192.0.2.8")
       && netlist_has(&cfg.trusted_proxies, "2001:db8:1::5")
       && !netlist_has(&cfg.trusted_proxies, "127.0.0.1"),
       "config: trusted proxies: prefixes and addresses, loopback not implied");

    const char *nonets[] = { "TRUEPORT_JWT_SECRET", SECRET,
                             "TRUEPORT_MASTER_KEY", KEY64,
                             "TRUEPORT_TRUSTED_PROXIES", "", NULL };
    ok(load(nonets, err, sizeof(err)) == 0 && cfg.trusted_proxies.n == 0,
       "config: no trusted proxy at all");

    const char *badnets[] = { "TRUEPORT_JWT_SECRET", SECRET,
                              "TRUEPORT_MASTER_KEY", KEY64,
                              "TRUEPORT_TRUSTED_PROXIES", "10.0.0.0/33", NULL };
    ok(load(badnets, err, sizeof(err)) != 0
       && strstr(err, "TRUEPORT_TRUSTED_PROXIES") && strstr(err, "prefix"),
       "config: a bad prefix length refused, named");
    badnets[5] = "nginx.local";
    ok(load(badnets, err, sizeof(err)) != 0 && strstr(err, "nginx.local"),
       "config: a host name refused (addresses only)");

    ok(load(good, err, sizeof(err)) == 0
       && strcmp(cfg.endpoint_allowlist, "*.openai.azure.com") == 0,
       "config: tenants' endpoints: Azure OpenAI resources by default");

    const char *allow[] = { "TRUEPORT_JWT_SECRET", SECRET,
                            "TRUEPORT_MASTER_KEY", KEY64,
                            "TRUEPORT_ENDPOINT_ALLOWLIST",
                            "*.openai.azure.com, proxy.corp.example.com:8443",
                            NULL };
    ok(load(allow, err, sizeof(err)) == 0
       && strstr(cfg.endpoint_allowlist, "proxy.corp"),
       "config: an endpoint allowlist of the operator's");
    allow[5] = "*.openai.azure.com, *.com";
    ok(load(allow, err, sizeof(err)) != 0
       && strstr(err, "TRUEPORT_ENDPOINT_ALLOWLIST") && strstr(err, "*.com")
       && strstr(err, "two fixed labels"),
       "config: a too broad wildcard refused, named");
    allow[5] = "ftp://x.example.com";
    ok(load(allow, err, sizeof(err)) != 0 && strstr(err, "scheme"),
       "config: another scheme refused");
    allow[5] = " , ";
    ok(load(allow, err, sizeof(err)) != 0 && strstr(err, "no pattern"),
       "config: an empty allowlist refused");
}
