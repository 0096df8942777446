
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


/*
 * trueport_key_miss_limit: how many lookups of keys the cache holds no
 * good answer for a client address may cost the sidecar.  Each is a
 * subrequest, a sidecar thread and a Postgres query, and anybody can send
 * random keys; a cached key costs nothing and is never counted, a key
 * that turns out to exist is refunded.  The same GCRA as the rpm limiter:
 * a full bucket of "n" lookups at once, one back every period / n.
 *
 * An address is an IPv4 address or an IPv6 /64 (one subscriber's share:
 * counting single IPv6 addresses would give each attacker 2^64 buckets).
 * The table is bounded (trueport_zone clients=) and, when full, forgets
 * the least recently seen address first.
 */


#define NGX_HTTP_TRUEPORT_ADDR_LEN  9        /* family, then 4 or 8 bytes */
#define NGX_HTTP_TRUEPORT_ML_EXPIRE_MAX  16


typedef struct {
    ngx_http_trueport_hnode_t    hnode;          /* hash: of addr[] */
    ngx_queue_t                  queue;
    ngx_msec_t                   used;           /* moved in the queue */
    uint64_t                     tat;            /* microseconds */
    u_char                       len;
    u_char                       addr[NGX_HTTP_TRUEPORT_ADDR_LEN];
} ngx_http_trueport_ml_node_t;


static size_t ngx_http_trueport_misslimit_addr(ngx_connection_t *c,
    u_char *out);
static ngx_http_trueport_ml_node_t *ngx_http_trueport_misslimit_find_locked(
    ngx_http_trueport_shctx_t *sh, uint32_t hash, u_char *addr, size_t len);
static uint64_t ngx_http_trueport_misslimit_interval(
    ngx_http_trueport_main_conf_t *tmcf);


/* trueport_key_miss_limit off | N/s | N/m | N/h | N/<time> */

char *
ngx_http_trueport_miss_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_trueport_main_conf_t *tmcf = conf;

    u_char      *slash;
    ngx_int_t    n, ms;
    ngx_str_t   *value, period;

    if (tmcf->miss_limit != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        tmcf->miss_limit = 0;
        tmcf->miss_period = 0;
        return NGX_CONF_OK;
    }

    slash = ngx_strlchr(value[1].data, value[1].data + value[1].len, '/');
    if (slash == NULL) {
        goto invalid;
    }

    n = ngx_atoi(value[1].data, slash - value[1].data);

    period.data = slash + 1;
    period.len = value[1].data + value[1].len - period.data;

    if (period.len == 1 && period.data[0] == 's') {
        ms = 1000;

    } else if (period.len == 1 && period.data[0] == 'm') {
        ms = 60000;

    } else if (period.len == 1 && period.data[0] == 'h') {
        ms = 3600000;

    } else {
        ms = ngx_parse_time(&period, 0);
    }

    if (n <= 0 || n > 1000000 || ms <= 0 || ms == NGX_ERROR
        || ms > 86400000)
    {
        goto invalid;
    }

    tmcf->miss_limit = n;
    tmcf->miss_period = ms;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid key miss limit \"%V\", expected \"off\" or "
                       "a number per period, e.g. \"20/m\"", &value[1]);
    return NGX_CONF_ERROR;
}


/*
 * Charges one lookup to the client's address.  NGX_OK: admitted and
 * charged (ctx->miss_charged); NGX_BUSY: over the limit, ctx->rl_retry
 * says for how long; NGX_DECLINED: no limit.
 */

ngx_int_t
ngx_http_trueport_misslimit(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    size_t                          len;
    u_char                          addr[NGX_HTTP_TRUEPORT_ADDR_LEN];
    uint32_t                        hash;
    uint64_t                        now, interval, burst, wait;
    ngx_int_t                       rc;
    ngx_http_trueport_zone_t       *zone;
    ngx_http_trueport_ml_node_t    *ml;
    ngx_http_trueport_main_conf_t  *tmcf;

    static time_t                   nomem_logged;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    if (tmcf->miss_limit == 0) {
        return NGX_DECLINED;
    }

    zone = tmcf->shm_zone->data;

    interval = ngx_http_trueport_misslimit_interval(tmcf);
    burst = interval * tmcf->miss_limit;

    len = ngx_http_trueport_misslimit_addr(r->connection, addr);
    hash = ngx_http_trueport_hash(zone->sh, addr, len);

    ngx_shmtx_lock(&zone->shpool->mutex);

    now = (uint64_t) ngx_current_msec * 1000;

    ml = ngx_http_trueport_misslimit_find_locked(zone->sh, hash, addr, len);

    if (ml == NULL) {

        while (zone->sh->ml_entries >= zone->clients_max) {
            if (ngx_http_trueport_misslimit_expire_locked(tmcf, 1) == 0) {
                break;
            }
        }

        ml = ngx_http_trueport_zone_alloc_locked(tmcf,
                 sizeof(ngx_http_trueport_ml_node_t),
                 NGX_HTTP_TRUEPORT_ALLOC_CLIENT);

        if (ml == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            /*
             * Fail closed: an address the zone cannot count is not let
             * through uncounted.  Known keys hold the whole zone, which
             * is too small; said once a second at most.
             */

            if (nomem_logged != ngx_time()) {
                nomem_logged = ngx_time();
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "trueport: no room for a client address in "
                              "the zone, new keys are refused: make "
                              "trueport_zone larger");
            }

            ctx->rl_retry = 1000;

            return NGX_BUSY;
        }

        ml->hnode.hash = hash;
        ml->tat = now;
        ml->used = ngx_current_msec;
        ml->len = (u_char) len;
        ngx_memcpy(ml->addr, addr, len);

        ngx_http_trueport_hash_insert(&zone->sh->ml, &ml->hnode);
        ngx_queue_insert_head(&zone->sh->ml_queue, &ml->queue);
        zone->sh->ml_entries++;

    } else if (ngx_current_msec - ml->used >= 10000) {
        /* as in the key cache: the LRU order is exact to ten seconds */
        ml->used = ngx_current_msec;
        ngx_queue_remove(&ml->queue);
        ngx_queue_insert_head(&zone->sh->ml_queue, &ml->queue);
    }

    rc = ngx_http_trueport_gcra(&ml->tat, now, interval, burst, &wait);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (rc == NGX_BUSY) {
        ctx->rl_retry = (ngx_msec_t) ((wait + 999) / 1000);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "trueport: client over the key miss limit of %ui "
                      "per %M ms", tmcf->miss_limit, tmcf->miss_period);

        return NGX_BUSY;
    }

    ctx->miss_charged = 1;

    return NGX_OK;
}


/* the key was found after all: its lookup is given back */

void
ngx_http_trueport_misslimit_refund(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    size_t                          len;
    u_char                          addr[NGX_HTTP_TRUEPORT_ADDR_LEN];
    uint32_t                        hash;
    uint64_t                        interval;
    ngx_http_trueport_zone_t       *zone;
    ngx_http_trueport_ml_node_t    *ml;
    ngx_http_trueport_main_conf_t  *tmcf;

    ctx->miss_charged = 0;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    if (tmcf->miss_limit == 0) {
        return;
    }

    zone = tmcf->shm_zone->data;

    interval = ngx_http_trueport_misslimit_interval(tmcf);

    len = ngx_http_trueport_misslimit_addr(r->connection, addr);
    hash = ngx_http_trueport_hash(zone->sh, addr, len);

    ngx_shmtx_lock(&zone->shpool->mutex);

    ml = ngx_http_trueport_misslimit_find_locked(zone->sh, hash, addr, len);

    /* a time before now is a full bucket: no need to stop at now */

    if (ml && ml->tat >= interval) {
        ml->tat -= interval;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * force == 0 frees the addresses at the tail of the LRU queue whose
 *            bucket is full again (no different from one never seen);
 * force == 1 frees the least recently seen address whatever its state,
 *            and the idle ones behind it.
 */

ngx_uint_t
ngx_http_trueport_misslimit_expire_locked(ngx_http_trueport_main_conf_t *tmcf,
    ngx_uint_t force)
{
    uint64_t                      now;
    ngx_uint_t                    freed;
    ngx_queue_t                  *q;
    ngx_http_trueport_zone_t     *zone;
    ngx_http_trueport_ml_node_t  *ml;

    zone = tmcf->shm_zone->data;
    now = (uint64_t) ngx_current_msec * 1000;

    for (freed = 0; freed < NGX_HTTP_TRUEPORT_ML_EXPIRE_MAX; freed++) {

        if (ngx_queue_empty(&zone->sh->ml_queue)) {
            break;
        }

        q = ngx_queue_last(&zone->sh->ml_queue);

        ml = ngx_queue_data(q, ngx_http_trueport_ml_node_t, queue);

        if (!force && ml->tat > now) {
            break;
        }

        force = 0;

        ngx_queue_remove(q);
        ngx_http_trueport_hash_delete(&zone->sh->ml, &ml->hnode);
        ngx_slab_free_locked(zone->shpool, ml);

        zone->sh->ml_entries--;
    }

    return freed;
}


/* the client as the limit counts it: family, then address or /64 */

static size_t
ngx_http_trueport_misslimit_addr(ngx_connection_t *c, u_char *out)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    u_char               *p;
    struct sockaddr_in6  *sin6;
#endif

    switch (c->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) c->sockaddr;
        out[0] = 4;
        ngx_memcpy(out + 1, &sin->sin_addr, 4);
        return 5;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) c->sockaddr;
        p = sin6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            out[0] = 4;
            ngx_memcpy(out + 1, p + 12, 4);
            return 5;
        }

        out[0] = 6;
        ngx_memcpy(out + 1, p, 8);
        return 9;
#endif

    default:
        /* a unix socket: every client is the same one */
        out[0] = 0;
        return 1;
    }
}


static ngx_http_trueport_ml_node_t *
ngx_http_trueport_misslimit_find_locked(ngx_http_trueport_shctx_t *sh,
    uint32_t hash, u_char *addr, size_t len)
{
    ngx_http_trueport_hnode_t    *n;
    ngx_http_trueport_ml_node_t  *ml;

    for (n = ngx_http_trueport_hash_first(&sh->ml, hash); n; n = n->next) {

        if (n->hash != hash) {
            continue;
        }

        ml = (ngx_http_trueport_ml_node_t *) n;

        if (ml->len == len && ngx_memcmp(addr, ml->addr, len) == 0) {
            return ml;
        }
    }

    return NULL;
}


static uint64_t
ngx_http_trueport_misslimit_interval(ngx_http_trueport_main_conf_t *tmcf)
{
    uint64_t  interval;

    interval = (uint64_t) tmcf->miss_period * 1000 / tmcf->miss_limit;

    return interval ? interval : 1;
}
