
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>
#include "ngx_http_trueport.h"


/* a refresh whose request was torn down never reports back */
#define NGX_HTTP_TRUEPORT_REFRESH_TIMEOUT  10000

/* entries freed under the mutex for one allocation at most */
#define NGX_HTTP_TRUEPORT_EXPIRE_MAX       16


/* an LRU position younger than this is not moved on a hit: with 100,000
 * keys in use every entry would move at every hit, three cache misses on
 * other entries' lines under the zone's mutex; the queue only orders
 * evictions, and to ten seconds is close enough (the limiter's too) */
#define NGX_HTTP_TRUEPORT_LRU_DELAY        10000


typedef struct {
    ngx_http_trueport_hnode_t    hnode;           /* hash: of hash[] */
    u_char                       status;          /* TP_KEY_* */
    u_char                       provider;
    u_char                       refreshing;
    u_char                       flags;           /* TP_RESOLVE_* */
    u_short                      env_len;
    u_short                      credential_len;
    u_short                      endpoint_len;
    u_short                      size;            /* of data[] */
    ngx_queue_t                  queue;
    ngx_msec_t                   used;            /* moved in the queue */
    ngx_msec_t                   fetched;
    ngx_msec_t                   refresh_start;
    time_t                       expires_at;
    ngx_uint_t                   rpm;
    uint64_t                     policy_revision;
    u_char                       hash[NGX_HTTP_TRUEPORT_HASH_LEN];
    u_char                       key_id[TP_UUID_LEN];
    u_char                       tenant_id[TP_UUID_LEN];
    u_char                       data[1];         /* env credential endpoint */
} ngx_http_trueport_key_node_t;


typedef struct {
    u_char                       hash[NGX_HTTP_TRUEPORT_HASH_LEN];
    ngx_uint_t                   provider;
    ngx_uint_t                   done;
} ngx_http_trueport_refresh_t;


static uint32_t ngx_http_trueport_keycache_hash32(
    ngx_http_trueport_shctx_t *sh, u_char *hash, ngx_uint_t provider);
static ngx_http_trueport_key_node_t *ngx_http_trueport_keycache_find_locked(
    ngx_http_trueport_shctx_t *sh, uint32_t h, u_char *hash,
    ngx_uint_t provider, ngx_uint_t *walked);
static void ngx_http_trueport_keycache_free_locked(
    ngx_http_trueport_zone_t *zone, ngx_http_trueport_key_node_t *kn);
static ngx_int_t ngx_http_trueport_keycache_copy(ngx_http_request_t *r,
    ngx_http_trueport_key_node_t *kn, ngx_http_trueport_key_t *key);
static ngx_int_t ngx_http_trueport_keycache_store(
    ngx_http_trueport_main_conf_t *tmcf, u_char *hash, ngx_uint_t provider,
    tp_resolve_t *answer);
static void ngx_http_trueport_keycache_unflag(
    ngx_http_trueport_main_conf_t *tmcf, u_char *hash, ngx_uint_t provider);
static ngx_int_t ngx_http_trueport_keycache_subrequest(ngx_http_request_t *r,
    u_char *hash, ngx_uint_t provider, ngx_http_post_subrequest_t *ps,
    ngx_uint_t flags, ngx_http_request_t **psr);
static ngx_int_t ngx_http_trueport_keycache_refresh(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
static ngx_int_t ngx_http_trueport_resolve_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_trueport_refresh_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);


/*
 * Finds the key of the request in the cache.  NGX_OK: ctx->key holds the
 * answer to go by; NGX_AGAIN: a subrequest asks the sidecar and
 * ngx_http_trueport_keycache_answer() takes over once it is done;
 * NGX_BUSY: the client is over trueport_key_miss_limit (ctx->rl_retry).
 */

/*
 * SHA-256 of the client's key.  SHA256() fetches the algorithm from the
 * provider store on every call (EVP_Q_digest: a lock and a lookup, half of
 * the hash's cost); the worker fetches it once and reuses one context.
 */

static ngx_int_t
ngx_http_trueport_keycache_hash(ngx_log_t *log, ngx_str_t *key, u_char *out)
{
    unsigned int         n;
    static EVP_MD       *md;
    static EVP_MD_CTX   *mdctx;

    if (mdctx == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        mdctx = EVP_MD_CTX_new();

        if (md == NULL || mdctx == NULL) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "trueport: SHA-256 not available");
            EVP_MD_free(md);
            EVP_MD_CTX_free(mdctx);
            md = NULL;
            mdctx = NULL;
            return NGX_ERROR;
        }
    }

    if (EVP_DigestInit_ex2(mdctx, md, NULL) != 1
        || EVP_DigestUpdate(mdctx, key->data, key->len) != 1
        || EVP_DigestFinal_ex(mdctx, out, &n) != 1
        || n != NGX_HTTP_TRUEPORT_HASH_LEN)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "trueport: SHA-256 failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_trueport_keycache_lookup(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_str_t *key)
{
    uint32_t                        h;
    ngx_int_t                       rc;
    ngx_msec_t                      now, limit;
    ngx_msec_int_t                  age;
    ngx_uint_t                      fresh, stale, refresh, claim, flags;
    ngx_uint_t                      walked, unknown;
    ngx_http_request_t             *sr;
    ngx_http_post_subrequest_t     *ps;
    ngx_http_trueport_zone_t       *zone;
    ngx_http_trueport_key_node_t   *kn;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);
    zone = tmcf->shm_zone->data;

    if (ngx_http_trueport_keycache_hash(r->connection->log, key, ctx->hash)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    h = ngx_http_trueport_keycache_hash32(zone->sh, ctx->hash, ctx->provider);

    now = ngx_current_msec;

    ngx_shmtx_lock(&zone->shpool->mutex);

    kn = ngx_http_trueport_keycache_find_locked(zone->sh, h, ctx->hash,
                                                ctx->provider, &walked);
    if (kn == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "trueport key cache: %ui nodes walked", walked);

        unknown = 1;
        goto miss;
    }

    if (now - kn->used >= NGX_HTTP_TRUEPORT_LRU_DELAY) {
        kn->used = now;
        ngx_queue_remove(&kn->queue);
        ngx_queue_insert_head(kn->status == TP_KEY_UNKNOWN
                              ? &zone->sh->neg_queue : &zone->sh->queue,
                              &kn->queue);
    }

    age = (ngx_msec_int_t) (now - kn->fetched);
    if (age < 0) {
        age = 0;
    }

    if (ngx_http_trueport_keycache_copy(r, kn, &ctx->key) != NGX_OK) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_ERROR;
    }

    if (kn->status == TP_KEY_UNKNOWN) {
        limit = tmcf->cache_negative;
        refresh = 0;

    } else {
        limit = tmcf->cache_valid;
        refresh = ((ngx_msec_t) age >= tmcf->cache_refresh);
    }

    fresh = ((ngx_msec_t) age < limit);
    stale = 0;

    if (!fresh && (ngx_msec_t) age < tmcf->cache_stale
        && zone->sh->sidecar.at != 0 && !zone->sh->sidecar.ok
        && ngx_time() - zone->sh->sidecar.at <= 1)
    {
        /*
         * the sidecar has just failed: rather than making every request
         * wait for it, go by the cached answer and probe in the background
         */

        stale = 1;
        refresh = 1;
    }

    claim = 0;

    if ((fresh || stale) && refresh
        && (!kn->refreshing
            || now - kn->refresh_start >= NGX_HTTP_TRUEPORT_REFRESH_TIMEOUT))
    {
        kn->refreshing = 1;
        kn->refresh_start = now;
        claim = 1;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    /* the chain's length, for the tests: the buckets are keyed */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport key cache: %ui nodes walked", walked);

    ctx->age = age;

    if (fresh || stale) {

        if (stale) {
            ctx->cache_status = NGX_HTTP_TRUEPORT_CACHE_STALE;

        } else if (claim) {
            ctx->cache_status = NGX_HTTP_TRUEPORT_CACHE_REFRESH;

        } else {
            ctx->cache_status = NGX_HTTP_TRUEPORT_CACHE_HIT;
        }

        if (claim) {
            rc = ngx_http_trueport_keycache_refresh(r, ctx);

            if (rc != NGX_OK) {
                ngx_http_trueport_keycache_unflag(tmcf, ctx->hash,
                                                  ctx->provider);
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    /* too old to go by without asking; still good if the sidecar fails */

    ctx->have_stale = ((ngx_msec_t) age < tmcf->cache_stale);

    unknown = (ctx->key.status == TP_KEY_UNKNOWN);

miss:

    /*
     * A key the cache knows nothing good about costs the sidecar a lookup:
     * the client's address pays for it (refunded if the key is known);
     * a known key, even one too old to go by, never waits on the limit.
     */

    if (unknown) {
        rc = ngx_http_trueport_misslimit(r, ctx);

        if (rc == NGX_BUSY || rc == NGX_ERROR) {
            return rc;
        }
    }

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_trueport_resolve_done;
    ps->data = ctx;

    flags = NGX_HTTP_SUBREQUEST_IN_MEMORY|NGX_HTTP_SUBREQUEST_WAITED;

    if (ngx_http_trueport_keycache_subrequest(r, ctx->hash, ctx->provider, ps,
                                              flags, &sr)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->subrequest = sr;
    ctx->waiting = 1;
    ctx->cache_status = NGX_HTTP_TRUEPORT_CACHE_MISS;

    return NGX_AGAIN;
}


/*
 * The synchronous lookup is done.  NGX_OK: ctx->key holds the answer (or
 * the cached one, too old to be used without asking, when the sidecar
 * failed); NGX_HTTP_SERVICE_UNAVAILABLE: there is nothing to go by.
 */

ngx_int_t
ngx_http_trueport_keycache_answer(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    char                            err[128];
    ngx_uint_t                      level;
    tp_resolve_t                   *answer;
    ngx_http_trueport_key_t        *key;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    ngx_http_trueport_sidecar_report(tmcf->shm_zone, ctx->sr_status);

    if (ctx->sr_status != NGX_HTTP_OK) {
        level = ctx->have_stale ? NGX_LOG_WARN : NGX_LOG_ERR;

        /* no URI: the lookup's is the resolve location's, not the key's */

        ngx_log_error(level, r->connection->log, 0,
                      "trueport: %V key lookup failed with status %ui%s",
                      &ngx_http_trueport_provider_names[ctx->provider],
                      ctx->sr_status,
                      ctx->sr_status == NGX_HTTP_BAD_REQUEST
                      ? " (does the resolve location send "
                        "\"X-TruePort-Key-Hash: $trueport_key_hash\"?)"
                      : "");
        goto failed;
    }

    answer = ngx_palloc(r->pool, sizeof(tp_resolve_t));
    if (answer == NULL) {
        return NGX_ERROR;
    }

    if (tp_resolve_parse(ctx->sr_answer.data, ctx->sr_answer.len, answer,
                         err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "trueport: invalid key lookup answer: %s", err);
        goto failed;
    }

    if (ctx->miss_charged && answer->status != TP_KEY_UNKNOWN) {
        ngx_http_trueport_misslimit_refund(r, ctx);
    }

    /* a full zone is logged by the allocator; the request goes on */

    (void) ngx_http_trueport_keycache_store(tmcf, ctx->hash, ctx->provider,
                                            answer);

    key = &ctx->key;

    key->status = answer->status;
    key->flags = answer->flags;
    key->rpm = answer->rpm;
    key->expires_at = (time_t) answer->expires_at;
    key->policy_revision = answer->policy_revision;

    ngx_memcpy(key->key_id, answer->key_id, TP_UUID_LEN);
    ngx_memcpy(key->tenant_id, answer->tenant_id, TP_UUID_LEN);

    key->env.len = answer->env_len;
    key->env.data = (u_char *) answer->env;
    key->credential.len = answer->credential_len;
    key->credential.data = (u_char *) answer->credential;
    key->endpoint.len = answer->endpoint_len;
    key->endpoint.data = (u_char *) answer->endpoint;

    ctx->age = 0;

    return NGX_OK;

failed:

    if (ctx->have_stale) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "trueport: the sidecar is unavailable, going by a "
                      "cached answer %M ms old", ctx->age);

        ctx->cache_status = NGX_HTTP_TRUEPORT_CACHE_STALE;

        return NGX_OK;
    }

    return NGX_HTTP_SERVICE_UNAVAILABLE;
}


static ngx_int_t
ngx_http_trueport_keycache_refresh(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    ngx_uint_t                    flags;
    ngx_http_request_t           *sr;
    ngx_http_post_subrequest_t   *ps;
    ngx_http_trueport_refresh_t  *rf;

    /* the main request's pool lives as long as its subrequests do */

    rf = ngx_palloc(r->pool, sizeof(ngx_http_trueport_refresh_t));
    if (rf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(rf->hash, ctx->hash, NGX_HTTP_TRUEPORT_HASH_LEN);
    rf->provider = ctx->provider;
    rf->done = 0;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_trueport_refresh_done;
    ps->data = rf;

    flags = NGX_HTTP_SUBREQUEST_IN_MEMORY|NGX_HTTP_SUBREQUEST_BACKGROUND;

    return ngx_http_trueport_keycache_subrequest(r, ctx->hash, ctx->provider,
                                                 ps, flags, &sr);
}


static ngx_int_t
ngx_http_trueport_keycache_subrequest(ngx_http_request_t *r, u_char *hash,
    ngx_uint_t provider, ngx_http_post_subrequest_t *ps, ngx_uint_t flags,
    ngx_http_request_t **psr)
{
    u_char                        *p;
    ngx_str_t                      args, *name;
    ngx_http_request_t            *sr;
    ngx_http_trueport_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

    name = &ngx_http_trueport_provider_names[provider];

    /*
     * The key's hash goes in a header ($trueport_key_hash), not in the
     * URI, which nginx prints in the error line of a failed lookup: it is
     * a bearer value for the resolve endpoint.
     */

    args.len = sizeof("provider=") - 1 + name->len;

    args.data = ngx_pnalloc(r->pool, args.len);
    if (args.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(args.data, "provider=", sizeof("provider=") - 1);
    ngx_memcpy(p, name->data, name->len);

    if (ngx_http_subrequest(r, &tlcf->resolve, &args, &sr, ps, flags)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * a fake request body, as auth_request has it: the lookup must
     * neither read the client's body nor close a file already read; and
     * no length, or nginx weighs the client's body against the lookup
     * location's client_max_body_size (a 413 for the lookup, a 503 for
     * a body the provider route accepts)
     */

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_ERROR;
    }

    sr->headers_in.content_length_n = -1;
    sr->headers_in.chunked = 0;

    *psr = sr;

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_resolve_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_trueport_ctx_t  *ctx = data;

    /* called again when the subrequest ends in a special response */

    ctx->sr_status = ngx_http_trueport_answer_of(r, rc, &ctx->sr_answer);
    ctx->waiting = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport key lookup done s:%ui", ctx->sr_status);

    return rc;
}


static ngx_int_t
ngx_http_trueport_refresh_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_trueport_refresh_t *rf = data;

    char                            err[128];
    ngx_str_t                       body;
    ngx_uint_t                      status;
    tp_resolve_t                    answer;
    ngx_http_trueport_main_conf_t  *tmcf;

    if (rf->done) {
        return rc;
    }

    rf->done = 1;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    status = ngx_http_trueport_answer_of(r, rc, &body);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport key refresh done s:%ui", status);

    ngx_http_trueport_sidecar_report(tmcf->shm_zone, status);

    if (status != NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "trueport: %V key refresh failed with status %ui",
                      &ngx_http_trueport_provider_names[rf->provider],
                      status);
        goto failed;
    }

    if (tp_resolve_parse(body.data, body.len, &answer, err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "trueport: invalid key lookup answer: %s", err);
        goto failed;
    }

    if (ngx_http_trueport_keycache_store(tmcf, rf->hash, rf->provider,
                                         &answer)
        == NGX_OK)
    {
        return rc;
    }

failed:

    /* the entry stays as it was, and the next hit tries again */

    ngx_http_trueport_keycache_unflag(tmcf, rf->hash, rf->provider);

    return rc;
}


ngx_uint_t
ngx_http_trueport_answer_of(ngx_http_request_t *sr, ngx_int_t rc,
    ngx_str_t *answer)
{
    ngx_buf_t  *b;

    answer->len = 0;
    answer->data = NULL;

    if (rc == NGX_ERROR) {
        return 0;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    if (sr->headers_out.status != NGX_HTTP_OK) {
        return sr->headers_out.status;
    }

    if (sr->out == NULL || sr->out->buf == NULL) {
        return NGX_HTTP_NO_CONTENT;
    }

    b = sr->out->buf;

    answer->data = b->pos;
    answer->len = b->last - b->pos;

    return NGX_HTTP_OK;
}


/*
 * The bucket of a key: SipHash under the zone's secret over the key's
 * SHA-256 and the provider.  The SHA-256 alone would let anyone make keys
 * for one bucket, offline, and have every lookup walk their chain under
 * the mutex all the workers share.
 */

static uint32_t
ngx_http_trueport_keycache_hash32(ngx_http_trueport_shctx_t *sh, u_char *hash,
    ngx_uint_t provider)
{
    u_char  in[NGX_HTTP_TRUEPORT_HASH_LEN + 1];

    ngx_memcpy(in, hash, NGX_HTTP_TRUEPORT_HASH_LEN);
    in[NGX_HTTP_TRUEPORT_HASH_LEN] = (u_char) provider;

    return ngx_http_trueport_hash(sh, in, sizeof(in));
}


static ngx_http_trueport_key_node_t *
ngx_http_trueport_keycache_find_locked(ngx_http_trueport_shctx_t *sh,
    uint32_t h, u_char *hash, ngx_uint_t provider, ngx_uint_t *walked)
{
    ngx_uint_t                     n_walked;
    ngx_http_trueport_hnode_t     *n;
    ngx_http_trueport_key_node_t  *kn;

    kn = NULL;
    n_walked = 0;

    for (n = ngx_http_trueport_hash_first(&sh->keys, h); n; n = n->next) {

        n_walked++;

        if (n->hash != h) {
            continue;
        }

        kn = (ngx_http_trueport_key_node_t *) n;

        if (kn->provider == provider
            && ngx_memcmp(hash, kn->hash, NGX_HTTP_TRUEPORT_HASH_LEN) == 0)
        {
            break;
        }

        kn = NULL;
    }

    if (walked) {
        *walked = n_walked;
    }

    return kn;
}


/* unlinks and frees an entry; the counters follow its kind */

static void
ngx_http_trueport_keycache_free_locked(ngx_http_trueport_zone_t *zone,
    ngx_http_trueport_key_node_t *kn)
{
    ngx_queue_remove(&kn->queue);
    ngx_http_trueport_hash_delete(&zone->sh->keys, &kn->hnode);

    if (kn->status == TP_KEY_UNKNOWN) {
        zone->sh->neg_entries--;
    }

    zone->sh->entries--;

    ngx_slab_free_locked(zone->shpool, kn);
}


static ngx_int_t
ngx_http_trueport_keycache_copy(ngx_http_request_t *r,
    ngx_http_trueport_key_node_t *kn, ngx_http_trueport_key_t *key)
{
    u_char  *p;
    size_t   len;

    key->status = kn->status;
    key->flags = kn->flags;
    key->rpm = kn->rpm;
    key->expires_at = kn->expires_at;
    key->policy_revision = kn->policy_revision;

    ngx_memcpy(key->key_id, kn->key_id, TP_UUID_LEN);
    ngx_memcpy(key->tenant_id, kn->tenant_id, TP_UUID_LEN);

    len = kn->env_len + kn->credential_len + kn->endpoint_len;

    if (len == 0) {
        ngx_str_null(&key->env);
        ngx_str_null(&key->credential);
        ngx_str_null(&key->endpoint);

        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, kn->data, len);

    key->env.data = p;
    key->env.len = kn->env_len;
    p += kn->env_len;

    key->credential.data = p;
    key->credential.len = kn->credential_len;
    p += kn->credential_len;

    key->endpoint.data = p;
    key->endpoint.len = kn->endpoint_len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_keycache_store(ngx_http_trueport_main_conf_t *tmcf,
    u_char *hash, ngx_uint_t provider, tp_resolve_t *answer)
{
    u_char                        *p;
    size_t                         len, size;
    uint32_t                       h;
    ngx_uint_t                     negative;
    ngx_http_trueport_zone_t      *zone;
    ngx_http_trueport_key_node_t  *kn;

    zone = tmcf->shm_zone->data;

    len = answer->env_len + answer->credential_len + answer->endpoint_len;
    negative = (answer->status == TP_KEY_UNKNOWN);

    h = ngx_http_trueport_keycache_hash32(zone->sh, hash, provider);

    ngx_shmtx_lock(&zone->shpool->mutex);

    kn = ngx_http_trueport_keycache_find_locked(zone->sh, h, hash, provider,
                                                NULL);

    if (kn && kn->size < len) {
        ngx_http_trueport_keycache_free_locked(zone, kn);
        kn = NULL;
    }

    if (kn == NULL) {

        /*
         * Unknown keys are anybody's to send: their entries make room
         * among themselves, the least recently used first, and take no
         * more than their share of the zone from the known keys.
         */

        while (negative && zone->sh->neg_entries >= zone->negative_max) {
            if (ngx_http_trueport_keycache_expire_locked(tmcf, 1, 1) == 0) {
                break;
            }
        }

        size = offsetof(ngx_http_trueport_key_node_t, data) + len;

        kn = ngx_http_trueport_zone_alloc_locked(tmcf, size,
                 negative ? NGX_HTTP_TRUEPORT_ALLOC_NEGATIVE
                          : NGX_HTTP_TRUEPORT_ALLOC_KEY);
        if (kn == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_ERROR;
        }

        kn->hnode.hash = h;
        kn->size = (u_short) len;
        kn->provider = (u_char) provider;
        ngx_memcpy(kn->hash, hash, NGX_HTTP_TRUEPORT_HASH_LEN);

        ngx_http_trueport_hash_insert(&zone->sh->keys, &kn->hnode);
        zone->sh->entries++;
        zone->sh->neg_entries += negative;

    } else {
        ngx_queue_remove(&kn->queue);

        /* a key deleted or created since: the entry changes queues */

        if (negative != (kn->status == TP_KEY_UNKNOWN)) {
            if (negative) {
                zone->sh->neg_entries++;

            } else {
                zone->sh->neg_entries--;
            }
        }
    }

    ngx_queue_insert_head(negative ? &zone->sh->neg_queue : &zone->sh->queue,
                          &kn->queue);
    kn->used = ngx_current_msec;

    kn->status = (u_char) answer->status;
    kn->flags = (u_char) answer->flags;
    kn->refreshing = 0;
    kn->fetched = ngx_current_msec;
    kn->refresh_start = 0;
    kn->expires_at = (time_t) answer->expires_at;
    kn->rpm = answer->rpm;
    kn->policy_revision = answer->policy_revision;

    ngx_memcpy(kn->key_id, answer->key_id, TP_UUID_LEN);
    ngx_memcpy(kn->tenant_id, answer->tenant_id, TP_UUID_LEN);

    kn->env_len = (u_short) answer->env_len;
    kn->credential_len = (u_short) answer->credential_len;
    kn->endpoint_len = (u_short) answer->endpoint_len;

    p = ngx_cpymem(kn->data, answer->env, answer->env_len);
    p = ngx_cpymem(p, answer->credential, answer->credential_len);
    ngx_memcpy(p, answer->endpoint, answer->endpoint_len);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


static void
ngx_http_trueport_keycache_unflag(ngx_http_trueport_main_conf_t *tmcf,
    u_char *hash, ngx_uint_t provider)
{
    uint32_t                       h;
    ngx_http_trueport_zone_t      *zone;
    ngx_http_trueport_key_node_t  *kn;

    zone = tmcf->shm_zone->data;

    h = ngx_http_trueport_keycache_hash32(zone->sh, hash, provider);

    ngx_shmtx_lock(&zone->shpool->mutex);

    kn = ngx_http_trueport_keycache_find_locked(zone->sh, h, hash, provider,
                                                NULL);

    if (kn) {
        kn->refreshing = 0;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * force == 0 frees the entries at the tail of the LRU queue that are past
 *            the stale limit, which nobody may go by any more;
 * force == 1 frees the least recently used entry whatever its age, and
 *            the expired ones behind it;
 * negative:  of the unknown keys' queue, or else of the known keys'.
 */

ngx_uint_t
ngx_http_trueport_keycache_expire_locked(ngx_http_trueport_main_conf_t *tmcf,
    ngx_uint_t force, ngx_uint_t negative)
{
    ngx_uint_t                     freed;
    ngx_msec_t                     now;
    ngx_queue_t                   *q, *queue;
    ngx_msec_int_t                 age;
    ngx_http_trueport_zone_t      *zone;
    ngx_http_trueport_key_node_t  *kn;

    zone = tmcf->shm_zone->data;
    now = ngx_current_msec;

    queue = negative ? &zone->sh->neg_queue : &zone->sh->queue;

    for (freed = 0; freed < NGX_HTTP_TRUEPORT_EXPIRE_MAX; freed++) {

        if (ngx_queue_empty(queue)) {
            break;
        }

        q = ngx_queue_last(queue);

        kn = ngx_queue_data(q, ngx_http_trueport_key_node_t, queue);

        if (!force) {
            age = (ngx_msec_int_t) (now - kn->fetched);

            if (age >= 0 && (ngx_msec_t) age < tmcf->cache_stale) {
                break;
            }
        }

        force = 0;

        ngx_http_trueport_keycache_free_locked(zone, kn);
    }

    return freed;
}
