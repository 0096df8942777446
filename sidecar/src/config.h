/* config.h - the sidecar's settings: one declarative table, environment overrides */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include <stddef.h>

#include "peer.h"

typedef struct {
    char  *host;                 /* IPv4 address */
    int    port;
} listen_t;

typedef struct {
    listen_t listen;             /* TRUEPORT_LISTEN: the API, /health */
    listen_t internal_listen;    /* TRUEPORT_INTERNAL_LISTEN: /internal/ */
    long   internal_threads;     /* the internal listener's own pool */
    netlist_t trusted_proxies;   /* peers whose X-Real-IP is believed */
    char  *database_url;         /* libpq DSN */
    char  *jwt_secret;           /* HS256 secret, >= 32 bytes */
    unsigned char master_key[32];/* AES-256-GCM key for secrets at rest */
    int    dev_mode;
    int    log_level;
    long   threads;
    char  *migrations_dir;
    long   max_body;             /* bytes */
    long   scrypt_n;             /* power of two */
    char  *internal_token;       /* shared with nginx for /internal/ */
    long   token_ttl;            /* seconds, global and scoped JWTs */
    char  *sendmail;             /* optional sendmail path for the outbox */
    long   outbox_retention_days;/* then outbox rows are deleted */
    char  *spool_dir;            /* usage spool written by nginx workers */
    long   retention_interval;   /* seconds between retention sweeps */
    int    rate_limits;          /* 0: route limits off (benchmarks) */
    long   password_rpm;         /* per address: routes that run scrypt */
    long   public_rpm;           /* per address: the other public routes */
    char  *endpoint_allowlist;   /* hosts tenants' provider endpoints may
                                    name (trueport_endpoint.h) */
    long   policy_set_bytes;     /* a tenant's enabled rules, compiled */
    long   policy_rule_bytes;    /* one rule, compiled */
    long   policy_regex_bytes;   /* a tenant's regexes, PCRE2 + JIT code */
    long   policy_load_bytes;    /* their JSON, as the gateway loads it */
} config_t;

extern config_t cfg;

/* Loads defaults, then the environment (getenv), validates everything.
 * On error writes a clear message into err and returns -1. */
int config_load(char *err, size_t errlen) __attribute__((warn_unused_result));

/* Same, reading the variables through a lookup function (unit tests). */
int config_load_from(const char *(*lookup)(const char *name), char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* What serving needs beyond config_load (migrate and create-admin do
 * without): the internal token. 0, or -1 with the reason in err. */
int config_check_serve(char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
