
/*
 * Copyright (C) TruePort
 */


#ifndef _NGX_HTTP_TRUEPORT_H_INCLUDED_
#define _NGX_HTTP_TRUEPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "trueport_gateway.h"
#include "trueport_usage.h"
#include "trueport_spool.h"
#include "trueport_record.h"
#include "trueport_prompt.h"
#include "trueport_policy.h"
#include "trueport_model.h"
#include "trueport_siphash.h"
#include "trueport_endpoint.h"


#define TRUEPORT_VERSION                "0.1.0"
#define TRUEPORT_MODULE_NAME            "ngx_http_trueport_module"


/* trueport_gateway: TP_OPENAI .. TP_AZURE, or off */
#define NGX_HTTP_TRUEPORT_OFF           TP_PROVIDERS

#define NGX_HTTP_TRUEPORT_HASH_LEN      32          /* SHA-256 */


/* how the key of a request was found, for $trueport_cache_status */
#define NGX_HTTP_TRUEPORT_CACHE_MISS    1           /* asked the sidecar */
#define NGX_HTTP_TRUEPORT_CACHE_HIT     2
#define NGX_HTTP_TRUEPORT_CACHE_REFRESH 3           /* hit, refreshing */
#define NGX_HTTP_TRUEPORT_CACHE_STALE   4           /* sidecar unreachable */


/* what the sidecar did on the last call a worker made to it */

typedef struct {
    time_t                       at;          /* 0: no call reported yet */
    ngx_uint_t                   status;      /* 0: no HTTP answer at all */
    ngx_uint_t                   ok;          /* status 200..499 */
} ngx_http_trueport_sidecar_state_t;


/*
 * A chained hash table in the shared zone: O(1) lookups whatever the
 * number of keys (an rbtree of 100,000 keys is 17+ dependent cache misses
 * per lookup).  Nodes start with an ngx_http_trueport_hnode_t; the bucket
 * array is sized once, for the zone, when the zone is created.
 */

typedef struct ngx_http_trueport_hnode_s  ngx_http_trueport_hnode_t;

struct ngx_http_trueport_hnode_s {
    ngx_http_trueport_hnode_t   *next;
    uint32_t                     hash;
};

typedef struct {
    ngx_http_trueport_hnode_t  **buckets;
    ngx_uint_t                   mask;
} ngx_http_trueport_htable_t;

#define ngx_http_trueport_hash_first(t, h)  ((t)->buckets[(h) & (t)->mask])


/*
 * Lives in the shared zone and outlives reloads.  Four hash tables with
 * their LRU queues (most recently used at the head): the key cache, keyed
 * by the SHA-256 of the key and the provider, with unknown keys in a queue
 * of their own; the rate limiter, keyed by the key id; the limit on the
 * lookups each client address may make for keys not in the cache.  Each
 * owns its node layout and keeps its counters right.  Every bucket is
 * picked with SipHash under hash_key, a secret made when the zone is: an
 * input nobody can compute the bucket of cannot be chosen to chain up.
 */

/* changes with the zone's layout: a reload with a module of another
 * layout must not read the old zone as its own */
#define NGX_HTTP_TRUEPORT_ZONE_MAGIC  0x7472756570727435ULL   /* "trueprt5" */

typedef struct {
    uint64_t                           magic;
    u_char                             hash_key[TP_SIPHASH_KEY_LEN];

    ngx_http_trueport_htable_t         keys;
    ngx_queue_t                        queue;          /* known keys */
    ngx_queue_t                        neg_queue;      /* unknown keys */
    time_t                             created;
    ngx_uint_t                         entries;        /* both queues */
    ngx_uint_t                         neg_entries;
    ngx_http_trueport_sidecar_state_t  sidecar;

    ngx_http_trueport_htable_t         rl;
    ngx_queue_t                        rl_queue;
    ngx_uint_t                         rl_entries;

    ngx_http_trueport_htable_t         ml;
    ngx_queue_t                        ml_queue;
    ngx_uint_t                         ml_entries;

    /* the spool (ngx_http_trueport_spool.c), without the mutex: bytes
     * every worker has appended, refusals aggregated and dropped */
    ngx_atomic_t                       spool_written;
    ngx_atomic_t                       spool_aggregated;
    ngx_atomic_t                       spool_dropped;
} ngx_http_trueport_shctx_t;


/* shm_zone->data: a per-cycle handle on the shared zone, with this
 * cycle's bounds (trueport_zone negative= clients=) */

typedef struct {
    ngx_http_trueport_shctx_t   *sh;
    ngx_slab_pool_t             *shpool;
    ngx_uint_t                   negative_max;
    ngx_uint_t                   clients_max;
} ngx_http_trueport_zone_t;


/* what an allocation in the zone is for: who may be evicted for it */
#define NGX_HTTP_TRUEPORT_ALLOC_KEY       0
#define NGX_HTTP_TRUEPORT_ALLOC_LIMITER   1
#define NGX_HTTP_TRUEPORT_ALLOC_NEGATIVE  2
#define NGX_HTTP_TRUEPORT_ALLOC_CLIENT    3


/* a consistent copy of the zone's figures, taken under the mutex */

typedef struct {
    size_t                             size;
    size_t                             used;
    ngx_uint_t                         pages;
    ngx_uint_t                         free_pages;
    ngx_uint_t                         entries;
    ngx_uint_t                         neg_entries;
    ngx_uint_t                         ml_entries;
    time_t                             created;
    ngx_http_trueport_sidecar_state_t  sidecar;
} ngx_http_trueport_zone_stats_t;


/* the spool as a worker sees it, for trueport_health */

typedef struct {
    ngx_uint_t                         on;
    off_t                              total;
    off_t                              max_total;
    ngx_atomic_uint_t                  aggregated;
    ngx_atomic_uint_t                  dropped;
} ngx_http_trueport_spool_stats_t;


typedef struct {
    ngx_shm_zone_t              *shm_zone;

    ngx_msec_t                   cache_refresh;
    ngx_msec_t                   cache_valid;
    ngx_msec_t                   cache_stale;
    ngx_msec_t                   cache_negative;

    ngx_uint_t                   miss_limit;     /* 0: off */
    ngx_msec_t                   miss_period;

    ngx_int_t                    request_id_index;

    tp_policy_limits_t           policy_limits;  /* trueport_policy_budget */
    size_t                       policy_cache;   /* a worker's sets, bytes */

    ngx_str_t                    spool;          /* "": off; NUL-ended */
    off_t                        spool_max_size;
    time_t                       spool_max_age;
    off_t                        spool_max_total;  /* 0 until init_module */

    unsigned                     health:1;
    unsigned                     gateway:1;
} ngx_http_trueport_main_conf_t;


typedef struct {
    ngx_flag_t                   health;

    ngx_uint_t                   provider;       /* NGX_HTTP_TRUEPORT_OFF */
    ngx_str_t                    resolve;        /* "": off */
    ngx_str_t                    upstream;       /* "": the provider's */
    ngx_http_complex_value_t    *upstream_key;   /* NULL: none */
    ngx_str_t                    upstream_allow; /* tenants' endpoints */
    ngx_uint_t                   upstream_key_scope; /* ..._SCOPE_* */
    ngx_str_t                    policy;         /* "": off */
    size_t                       policy_max_body;

    unsigned                     redact:1;       /* a server's: has a gateway */
} ngx_http_trueport_loc_conf_t;


/* the errors the access phase sends, in each provider's shape */
#define NGX_HTTP_TRUEPORT_ERR_MISSING_KEY           0
#define NGX_HTTP_TRUEPORT_ERR_INVALID_KEY           1
#define NGX_HTTP_TRUEPORT_ERR_TENANT_SUSPENDED      2
#define NGX_HTTP_TRUEPORT_ERR_PROVIDER_NOT_ALLOWED  3
#define NGX_HTTP_TRUEPORT_ERR_NOT_FOUND             4
#define NGX_HTTP_TRUEPORT_ERR_RATE_LIMITED          5
#define NGX_HTTP_TRUEPORT_ERR_UNAVAILABLE           6
#define NGX_HTTP_TRUEPORT_ERR_NO_CREDENTIAL         7
#define NGX_HTTP_TRUEPORT_ERR_QUOTA_EXCEEDED        8
#define NGX_HTTP_TRUEPORT_ERR_POLICY_BLOCKED        9
#define NGX_HTTP_TRUEPORT_ERR_BAD_BODY              10
#define NGX_HTTP_TRUEPORT_ERR_TOO_LARGE             11
#define NGX_HTTP_TRUEPORT_ERR_ENDPOINT              12
#define NGX_HTTP_TRUEPORT_ERR_LOOP                  13
#define NGX_HTTP_TRUEPORT_ERR_UNSUPPORTED_ENDPOINT  14
#define NGX_HTTP_TRUEPORT_ERR_POLICY_UNAVAILABLE    15
#define NGX_HTTP_TRUEPORT_ERR_SHARED_SCOPE          16
#define NGX_HTTP_TRUEPORT_ERR_NONE                  ((ngx_uint_t) -1)

/* trueport_upstream_key_scope */
#define NGX_HTTP_TRUEPORT_SCOPE_STATELESS  0
#define NGX_HTTP_TRUEPORT_SCOPE_ANY        1


typedef struct ngx_http_trueport_policy_set_s  ngx_http_trueport_policy_set_t;


typedef struct ngx_http_trueport_meter_s  ngx_http_trueport_meter_t;


/* a key as the cache knows it, copied to the request */

typedef struct {
    ngx_uint_t                   status;         /* TP_KEY_* */
    ngx_uint_t                   flags;          /* TP_RESOLVE_* */
    ngx_uint_t                   rpm;
    time_t                       expires_at;     /* 0: never */
    uint64_t                     policy_revision;
    u_char                       key_id[TP_UUID_LEN];
    u_char                       tenant_id[TP_UUID_LEN];
    ngx_str_t                    env;
    ngx_str_t                    credential;     /* the tenant's own */
    ngx_str_t                    endpoint;       /* the tenant's own */
} ngx_http_trueport_key_t;


typedef struct {
    ngx_uint_t                   provider;
    u_char                       hash[NGX_HTTP_TRUEPORT_HASH_LEN];

    /* the synchronous lookup: ngx_http_trueport_resolve_done() */
    ngx_http_request_t          *subrequest;
    ngx_uint_t                   sr_status;
    ngx_str_t                    sr_answer;

    ngx_http_trueport_key_t      key;
    ngx_msec_t                   age;            /* of the cached answer */
    ngx_uint_t                   cache_status;

    /* the route and what goes upstream */
    ngx_str_t                    args;           /* without "key=" */
    ngx_str_t                    upstream_url;
    ngx_str_t                    credential;
    ngx_str_t                    deployment;     /* Azure's, in r->uri */
    ngx_str_t                    hop;            /* X-TruePort-Hop to send */
    const char                  *endpoint_refused;   /* why, or NULL */
    ngx_str_t                    path;           /* after the base, in
                                                    r->uri */

    /* the limiter's figures for the x-ratelimit-* headers */
    ngx_uint_t                   rl_limit;
    ngx_uint_t                   rl_remaining;
    ngx_msec_t                   rl_reset;       /* until the bucket is full */
    ngx_msec_t                   rl_retry;       /* until one is admitted */

    ngx_http_trueport_meter_t   *meter;          /* NULL: not metered */

    /* policies: ngx_http_trueport_policy.c */
    ngx_http_trueport_policy_set_t  *policy;     /* a reference, or NULL */
    ngx_http_request_t          *policy_sr;
    ngx_uint_t                   policy_sr_status;
    ngx_str_t                    policy_sr_answer;
    ngx_uint_t                   policy_err;     /* ..._ERR_*, or _NONE */
    ngx_str_t                    policy_msg;
    ngx_uint_t                   policy_state;

    unsigned                     waiting:1;      /* subrequest in flight */
    unsigned                     have_stale:1;   /* ctx->key usable stale */
    unsigned                     rl:1;           /* rl_* are set */
    unsigned                     passed:1;       /* the checks passed */
    unsigned                     checked:1;      /* the key's checks did */
    unsigned                     blocked:1;      /* by a policy */
    unsigned                     miss_charged:1; /* to the client's limit */
    unsigned                     route_credential:1; /* the operator's */
} ngx_http_trueport_ctx_t;


/* ngx_http_trueport_module.c */

ngx_int_t ngx_http_trueport_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value);
char *ngx_http_trueport_set_location_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_trueport_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *json);

/* ngx_http_trueport_zone.c */

char *ngx_http_trueport_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_trueport_zone_stats(ngx_shm_zone_t *shm_zone,
    ngx_http_trueport_zone_stats_t *st);
void ngx_http_trueport_sidecar_report(ngx_shm_zone_t *shm_zone,
    ngx_uint_t status);
void ngx_http_trueport_hash_insert(ngx_http_trueport_htable_t *t,
    ngx_http_trueport_hnode_t *n);
void ngx_http_trueport_hash_delete(ngx_http_trueport_htable_t *t,
    ngx_http_trueport_hnode_t *n);
uint32_t ngx_http_trueport_hash(ngx_http_trueport_shctx_t *sh,
    const void *data, size_t len);
void *ngx_http_trueport_zone_alloc_locked(ngx_http_trueport_main_conf_t *tmcf,
    size_t size, ngx_uint_t kind);

/* ngx_http_trueport_health.c */

char *ngx_http_trueport_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_trueport_health_handler(ngx_http_request_t *r);

/* ngx_http_trueport_keycache.c */

ngx_int_t ngx_http_trueport_keycache_lookup(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_str_t *key);
ngx_int_t ngx_http_trueport_keycache_answer(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
ngx_uint_t ngx_http_trueport_answer_of(ngx_http_request_t *sr, ngx_int_t rc,
    ngx_str_t *answer);
ngx_uint_t ngx_http_trueport_keycache_expire_locked(
    ngx_http_trueport_main_conf_t *tmcf, ngx_uint_t force,
    ngx_uint_t negative);

/* ngx_http_trueport_ratelimit.c */

ngx_int_t ngx_http_trueport_ratelimit(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
ngx_uint_t ngx_http_trueport_ratelimit_expire_locked(
    ngx_http_trueport_main_conf_t *tmcf, ngx_uint_t force);
ngx_int_t ngx_http_trueport_gcra(uint64_t *tat, uint64_t now,
    uint64_t interval, uint64_t burst, uint64_t *wait);
u_char *ngx_http_trueport_duration(u_char *p, ngx_msec_t ms);

/* ngx_http_trueport_misslimit.c */

char *ngx_http_trueport_miss_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_trueport_misslimit(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
void ngx_http_trueport_misslimit_refund(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
ngx_uint_t ngx_http_trueport_misslimit_expire_locked(
    ngx_http_trueport_main_conf_t *tmcf, ngx_uint_t force);

/* ngx_http_trueport_access.c */

ngx_int_t ngx_http_trueport_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_trueport_error(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_uint_t err, ngx_str_t *msg);

/* ngx_http_trueport_policy.c */

ngx_int_t ngx_http_trueport_policy(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
char *ngx_http_trueport_policy_budget(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_trueport_upstream.c */

char *ngx_http_trueport_gateway(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_trueport_upstream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_trueport_upstream_allow(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_trueport_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_trueport_upstream_route(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
extern ngx_str_t  ngx_http_trueport_provider_names[];

/* ngx_http_trueport_hop.c */

ngx_int_t ngx_http_trueport_hop_check(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
ngx_uint_t ngx_http_trueport_hop_is(ngx_table_elt_t *h);
ngx_int_t ngx_http_trueport_hop_header(ngx_http_trueport_ctx_t *ctx,
    ngx_list_t *headers);

/* ngx_http_trueport_redact.c */

ngx_int_t ngx_http_trueport_redact_init(ngx_conf_t *cf);
void ngx_http_trueport_redact_server(ngx_conf_t *cf);

/* ngx_http_trueport_filter.c */

ngx_int_t ngx_http_trueport_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_trueport_request_id_init(ngx_cycle_t *cycle);
ngx_int_t ngx_http_trueport_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

/* ngx_http_trueport_meter.c */

ngx_int_t ngx_http_trueport_meter_init(ngx_conf_t *cf);

/* ngx_http_trueport_spool.c */

char *ngx_http_trueport_spool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_trueport_spool_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_trueport_spool_init_process(ngx_cycle_t *cycle);
void ngx_http_trueport_spool_exit_process(ngx_cycle_t *cycle);
ngx_uint_t ngx_http_trueport_spool_active(void);
ngx_int_t ngx_http_trueport_spool_append(ngx_log_t *log, const char *line,
    size_t len);
ngx_int_t ngx_http_trueport_spool_refusal(ngx_log_t *log, ngx_str_t *id,
    const char *line, size_t len);
void ngx_http_trueport_spool_stats(ngx_http_trueport_spool_stats_t *st);


extern ngx_module_t  ngx_http_trueport_module;


#endif /* _NGX_HTTP_TRUEPORT_H_INCLUDED_ */
