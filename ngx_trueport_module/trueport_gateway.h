/* trueport_gateway.h - the gateway's request-side parsers: the client's key
 * from its header or query string, the query string without the key, and
 * the sidecar's answer to a key lookup (GET /internal/v1/keys/resolve).
 * Plain C on plain buffers: no nginx types and no allocation (yajl works
 * in an arena on the stack), so they can be unit-tested and fuzzed alone. */
#ifndef TRUEPORT_GATEWAY_H
#define TRUEPORT_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#define TP_KEY_MAX           512      /* longest gateway key accepted */
#define TP_RESOLVE_MAX       4096     /* longest resolve answer accepted */
#define TP_UUID_LEN          36
#define TP_ENV_MAX           32
#define TP_CREDENTIAL_MAX    1024
#define TP_ENDPOINT_MAX      512

/* what the sidecar says about a key (the order is the cache's too) */
enum {
    TP_KEY_UNKNOWN = 0,               /* {"found":false} */
    TP_KEY_ACTIVE,
    TP_KEY_DISABLED,
    TP_KEY_EXPIRED,
    TP_KEY_DELETED,
    TP_KEY_TENANT_SUSPENDED,
    TP_KEY_PROVIDER_NOT_ALLOWED,
    TP_KEY_QUOTA_EXCEEDED,            /* the plan's monthly requests */
    TP_KEY_STATUSES
};

/* what the tenant's plan and settings allow (tp_resolve_t.flags); an
 * answer without them allows neither */
#define TP_RESOLVE_DEFAULT_CREDENTIALS  0x01   /* the route's default key */
#define TP_RESOLVE_LOG_PROMPTS          0x02   /* excerpts in violations */

typedef struct {
    int        status;                /* TP_KEY_* */
    unsigned   flags;                 /* TP_RESOLVE_* */
    uint32_t   rpm;
    int64_t    expires_at;            /* unix seconds, 0: never */
    uint64_t   policy_revision;
    char       key_id[TP_UUID_LEN + 1];
    char       tenant_id[TP_UUID_LEN + 1];
    size_t     env_len;
    char       env[TP_ENV_MAX + 1];
    size_t     credential_len;        /* 0: none, the route's default if
                                         TP_RESOLVE_DEFAULT_CREDENTIALS */
    char       credential[TP_CREDENTIAL_MAX + 1];
    size_t     endpoint_len;          /* 0: none */
    char       endpoint[TP_ENDPOINT_MAX + 1];
} tp_resolve_t;

/* 0 and *out filled, or -1 with a reason in err (never a partial answer
 * taken for a good one: every string that will end up in a header is
 * checked to be printable ASCII) */
int tp_resolve_parse(const unsigned char *buf, size_t len, tp_resolve_t *out,
                     char *err, size_t errlen);

const char *tp_key_status_name(int status);

/* A gateway key: 1..TP_KEY_MAX printable ASCII characters, no spaces. */
int tp_key_valid(const unsigned char *key, size_t len);

/* The token of "Bearer <token>" (scheme case-insensitive, blanks around
 * the token ignored): 0 and *key, *klen point into v, -1 otherwise. */
int tp_key_from_bearer(const unsigned char *v, size_t len,
                       const unsigned char **key, size_t *klen);

/* The raw (still percent-encoded) value of the first "name=" argument of
 * a query string: 0 and *val, *vlen point into args, -1 when absent. */
int tp_args_get(const unsigned char *args, size_t len, const char *name,
                const unsigned char **val, size_t *vlen);

/* The query string without any "name" argument (with or without a value),
 * written to out (at least len bytes); returns its length. */
size_t tp_args_strip(const unsigned char *args, size_t len, const char *name,
                     unsigned char *out);

/* The query string with the value of every "name" argument replaced by
 * mark, written to out (NULL: only measured); returns its length, or 0
 * when there is nothing to replace (no "name" argument with a value other
 * than mark). */
size_t tp_args_redact(const unsigned char *args, size_t len, const char *name,
                      const char *mark, unsigned char *out);

/* Percent-decoding of a query value ('+' is a space) into out (at least
 * len bytes); returns the decoded length.  A malformed escape stays as is. */
size_t tp_args_unescape(const unsigned char *v, size_t len,
                        unsigned char *out);

#endif
