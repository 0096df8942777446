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
    is_str(cfg.listen_host, "127.0.0.1", "config: default listen host");
    is_int(cfg.listen_port, 8081, "config: default listen port");
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
    ok(load(over, err, sizeof(err)) == 0 && cfg.listen_port == 9000
       && cfg.dev_mode == 1 && cfg.threads == 8,
       "config: environment overrides defaults");
}
