/* config.c - settings as a table (pgbouncer style): name, type, default, bounds */
#include "config.h"
#include "log.h"
#include "trueport_endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

config_t cfg;

typedef enum { T_STR, T_INT, T_BOOL, T_LISTEN, T_HEX32, T_LEVEL, T_NETS }
    ctype_t;

/* the shortest internal token accepted (the harness's is 16 hex digits) */
#define INTERNAL_TOKEN_MIN 16

typedef struct {
    const char *name;      /* environment variable */
    ctype_t     type;
    void       *dst;
    const char *dflt;      /* NULL: required */
    long        min, max;  /* for T_INT; for T_STR the minimum length */
    const char *help;
} config_row_t;

static const config_row_t config_table[] = {
    { "TRUEPORT_LISTEN", T_LISTEN, &cfg.listen, "127.0.0.1:8081", 0, 0,
      "host:port to listen on" },
    { "TRUEPORT_INTERNAL_LISTEN", T_LISTEN, &cfg.internal_listen,
      "127.0.0.1:8082", 0, 0,
      "host:port for nginx's /internal/ calls (key lookups, policy loads),"
      " served by a pool of its own" },
    { "TRUEPORT_INTERNAL_THREADS", T_INT, &cfg.internal_threads, "2", 1, 64,
      "the internal listener's worker threads" },
    { "TRUEPORT_TRUSTED_PROXIES", T_NETS, &cfg.trusted_proxies,
      "127.0.0.0/8,::1", 0, 0,
      "peers (addresses, address/prefix, comma separated) whose X-Real-IP"
      " names the client; they alone may call /internal/" },
    { "TRUEPORT_DATABASE_URL", T_STR, &cfg.database_url,
      "host=/var/run/postgresql dbname=trueport", 1, 0, "libpq DSN" },
    { "TRUEPORT_JWT_SECRET", T_STR, &cfg.jwt_secret, NULL, 32, 0,
      "HS256 signing secret, at least 32 characters" },
    { "TRUEPORT_MASTER_KEY", T_HEX32, cfg.master_key, NULL, 0, 0,
      "64 hex characters (AES-256 key for secrets at rest)" },
    { "TRUEPORT_DEV_MODE", T_BOOL, &cfg.dev_mode, "0", 0, 1,
      "0 or 1" },
    { "TRUEPORT_LOG_LEVEL", T_LEVEL, &cfg.log_level, "info", 0, 0,
      "debug, info, warn or error" },
    { "TRUEPORT_THREADS", T_INT, &cfg.threads, "4", 1, 256,
      "worker threads (one database connection each)" },
    { "TRUEPORT_MIGRATIONS", T_STR, &cfg.migrations_dir, "migrations", 1, 0,
      "directory of NNNN_name.sql files" },
    { "TRUEPORT_MAX_BODY", T_INT, &cfg.max_body, "1048576", 1024,
      64 * 1024 * 1024, "largest request body in bytes" },
    { "TRUEPORT_SCRYPT_N", T_INT, &cfg.scrypt_n, "32768", 2, 1 << 20,
      "scrypt cost N, a power of two" },
    { "TRUEPORT_INTERNAL_TOKEN", T_STR, &cfg.internal_token, "", 0, 0,
      "secret nginx sends on /internal/ calls, at least 16 characters"
      " (required to serve)" },
    { "TRUEPORT_TOKEN_TTL", T_INT, &cfg.token_ttl, "3600", 60, 30 * 86400,
      "JWT lifetime in seconds" },
    { "TRUEPORT_SENDMAIL", T_STR, &cfg.sendmail, "", 0, 0,
      "sendmail path for the outbox (empty: outbox table only)" },
    { "TRUEPORT_OUTBOX_RETENTION_DAYS", T_INT, &cfg.outbox_retention_days,
      "7", 1, 3650, "days an outbox row (without its body) is kept" },
    { "TRUEPORT_SPOOL_DIR", T_STR, &cfg.spool_dir, "", 0, 0,
      "usage spool directory (empty: no ingestion)" },
    { "TRUEPORT_RETENTION_INTERVAL", T_INT, &cfg.retention_interval, "600",
      1, 86400, "seconds between usage retention sweeps" },
    { "TRUEPORT_RATE_LIMITS", T_BOOL, &cfg.rate_limits, "1", 0, 1,
      "1: per-user and per-address route limits; 0 only for benchmarks" },
    { "TRUEPORT_PASSWORD_RPM", T_INT, &cfg.password_rpm, "30", 1, 1000000,
      "requests per minute per client address to register, login and"
      " reset-password (each costs a scrypt)" },
    { "TRUEPORT_PUBLIC_RPM", T_INT, &cfg.public_rpm, "60", 1, 1000000,
      "requests per minute per client address to the other public routes"
      " (otp, forgot-password, check-availability, invites/accept)" },
    { "TRUEPORT_ENDPOINT_ALLOWLIST", T_STR, &cfg.endpoint_allowlist,
      TP_ENDPOINT_ALLOW_DEFAULT, 1, 0,
      "hosts a tenant's provider endpoint may name: patterns"
      " [http://|https://]host[:port|:*], comma separated, \"*\" inside"
      " one label (https and port 443 unless given)" },
    /* the gateway's compile budgets (trueport_policy_budget must be at
     * least as large): the defaults keep a maximal set's compilation to a
     * few ms of a worker's CPU (make bench-policy) */
    { "TRUEPORT_POLICY_SET_BYTES", T_INT, &cfg.policy_set_bytes, "4194304",
      65536, 64L * 1024 * 1024,
      "compiled size of a tenant's enabled policy rules, bytes" },
    { "TRUEPORT_POLICY_RULE_BYTES", T_INT, &cfg.policy_rule_bytes, "1048576",
      4096, 64L * 1024 * 1024, "compiled size of one policy rule, bytes" },
    { "TRUEPORT_POLICY_REGEX_BYTES", T_INT, &cfg.policy_regex_bytes,
      "262144", 4096, 64L * 1024 * 1024,
      "PCRE2 and JIT code of a tenant's regex rules, bytes" },
    /* at most the gateway's subrequest_output_buffer_size of its policies
     * location (1m in conf.d/trueport.conf) */
    { "TRUEPORT_POLICY_LOAD_BYTES", T_INT, &cfg.policy_load_bytes, "1048576",
      4096, 64L * 1024 * 1024,
      "JSON of a tenant's enabled policy rules as the gateway loads it,"
      " bytes" },
};

#define N_ROWS (sizeof(config_table) / sizeof(config_table[0]))


static int
parse_long(const char *s, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(s, &end, 10);
    return (errno != 0 || end == s || *end != '\0') ? -1 : 0;
}


static int
hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}


static int
set_row(const config_row_t *row, const char *v, char *err, size_t errlen)
{
    listen_t *la;
    long      n;
    int       i, hi, lo;
    char     *colon, *end, sub[160];

    switch (row->type) {

    case T_STR:
        if ((long) strlen(v) < row->min) {
            snprintf(err, errlen, "%s: must be at least %ld characters (%s)",
                     row->name, row->min, row->help);
            return -1;
        }
        free(*(char **) row->dst);
        *(char **) row->dst = strdup(v);
        return *(char **) row->dst ? 0 : -1;

    case T_INT:
        if (parse_long(v, &n) != 0 || n < row->min || n > row->max) {
            snprintf(err, errlen, "%s: \"%s\" is not a number in %ld..%ld (%s)",
                     row->name, v, row->min, row->max, row->help);
            return -1;
        }
        *(long *) row->dst = n;
        return 0;

    case T_BOOL:
        if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0
            || strcmp(v, "yes") == 0 || strcmp(v, "on") == 0)
        {
            *(int *) row->dst = 1;
        } else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0
                   || strcmp(v, "no") == 0 || strcmp(v, "off") == 0
                   || *v == '\0')
        {
            *(int *) row->dst = 0;
        } else {
            snprintf(err, errlen, "%s: \"%s\" is not a boolean (%s)",
                     row->name, v, row->help);
            return -1;
        }
        return 0;

    case T_LEVEL:
        *(int *) row->dst = log_level_parse(v);
        if (*(int *) row->dst < 0) {
            snprintf(err, errlen, "%s: \"%s\" is not a log level (%s)",
                     row->name, v, row->help);
            return -1;
        }
        return 0;

    case T_HEX32:
        if (strlen(v) != 64) {
            snprintf(err, errlen, "%s: must be %s", row->name, row->help);
            return -1;
        }
        for (i = 0; i < 32; i++) {
            hi = hexval(v[2 * i]);
            lo = hexval(v[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen, "%s: must be %s", row->name, row->help);
                return -1;
            }
            ((unsigned char *) row->dst)[i] = (unsigned char) (hi << 4 | lo);
        }
        return 0;

    case T_NETS:
        if (netlist_parse(v, row->dst, sub, sizeof(sub)) != 0) {
            snprintf(err, errlen, "%s: %s (%s)", row->name, sub, row->help);
            return -1;
        }
        return 0;

    case T_LISTEN:
        colon = strrchr(v, ':');
        if (colon == NULL || colon == v) {
            snprintf(err, errlen, "%s: \"%s\" is not host:port", row->name, v);
            return -1;
        }
        errno = 0;
        n = strtol(colon + 1, &end, 10);
        if (errno || *end != '\0' || end == colon + 1 || n < 1 || n > 65535) {
            snprintf(err, errlen, "%s: bad port in \"%s\"", row->name, v);
            return -1;
        }
        la = row->dst;
        free(la->host);
        la->host = strndup(v, colon - v);
        la->port = (int) n;
        return la->host ? 0 : -1;
    }

    return -1;
}


int
config_load_from(const char *(*lookup)(const char *name), char *err,
    size_t errlen)
{
    const config_row_t *row;
    const char         *v, *reason, *bad;
    size_t              i, bad_len;

    for (i = 0; i < N_ROWS; i++) {
        row = &config_table[i];
        v = lookup(row->name);

        if (v == NULL) {
            if (row->dflt == NULL) {
                snprintf(err, errlen, "%s is required: %s", row->name,
                         row->help);
                return -1;
            }
            v = row->dflt;
        }

        if (set_row(row, v, err, errlen) != 0) {
            return -1;
        }
    }

    if (cfg.policy_rule_bytes > cfg.policy_set_bytes
        || cfg.policy_regex_bytes > cfg.policy_set_bytes)
    {
        snprintf(err, errlen, "TRUEPORT_POLICY_RULE_BYTES and"
                 " TRUEPORT_POLICY_REGEX_BYTES may not exceed"
                 " TRUEPORT_POLICY_SET_BYTES (%ld)", cfg.policy_set_bytes);
        return -1;
    }

    if (cfg.scrypt_n & (cfg.scrypt_n - 1)) {
        snprintf(err, errlen, "TRUEPORT_SCRYPT_N: %ld is not a power of two",
                 cfg.scrypt_n);
        return -1;
    }

    if (tp_endpoint_allow_valid(cfg.endpoint_allowlist,
                                strlen(cfg.endpoint_allowlist), &reason, &bad,
                                &bad_len) != 0)
    {
        snprintf(err, errlen, "TRUEPORT_ENDPOINT_ALLOWLIST: \"%.*s\": %s",
                 (int) bad_len, bad, reason);
        return -1;
    }

    if (cfg.listen.port == cfg.internal_listen.port
        && strcmp(cfg.listen.host, cfg.internal_listen.host) == 0)
    {
        snprintf(err, errlen, "TRUEPORT_INTERNAL_LISTEN: must differ from"
                 " TRUEPORT_LISTEN (%s:%d): the internal calls have a"
                 " listener of their own", cfg.listen.host, cfg.listen.port);
        return -1;
    }

    return 0;
}


int
config_check_serve(char *err, size_t errlen)
{
    if (strlen(cfg.internal_token) < INTERNAL_TOKEN_MIN) {
        snprintf(err, errlen, "TRUEPORT_INTERNAL_TOKEN is required to serve:"
                 " at least %d characters, the same secret nginx sends on"
                 " /internal/ calls (scripts/render-conf.pl writes it into"
                 " trueport.conf)", INTERNAL_TOKEN_MIN);
        return -1;
    }
    return 0;
}


static const char *
env_lookup(const char *name)
{
    return getenv(name);
}


int
config_load(char *err, size_t errlen)
{
    return config_load_from(env_lookup, err, errlen);
}
