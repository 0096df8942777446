
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


/*
 * Requests per minute per key, with the generic cell rate algorithm: a
 * key may spend its whole minute at once (a bucket of "rpm" requests)
 * and gets one request back every 60 / rpm seconds.  Unlike a fixed
 * window nothing resets at a boundary, so twice the limit can never pass
 * around one.  The state is one theoretical arrival time per key id, in
 * microseconds of the ngx_current_msec clock every worker shares.
 */

#define NGX_HTTP_TRUEPORT_MINUTE_US       60000000


typedef struct {
    ngx_http_trueport_hnode_t    hnode;          /* hash: of key_id */
    ngx_queue_t                  queue;
    ngx_msec_t                   used;           /* moved in the queue */
    uint64_t                     tat;
    u_char                       key_id[TP_UUID_LEN];
} ngx_http_trueport_rl_node_t;


static ngx_http_trueport_rl_node_t *ngx_http_trueport_ratelimit_find_locked(
    ngx_http_trueport_shctx_t *sh, uint32_t hash, u_char *key_id);


/*
 * NGX_OK: admitted; NGX_BUSY: over the limit (ctx->rl_retry says for how
 * long); NGX_DECLINED: not limited, the zone could not hold the key.
 */

ngx_int_t
ngx_http_trueport_ratelimit(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    size_t                          size;
    uint32_t                        hash;
    uint64_t                        now, tat, interval, burst, wait;
    ngx_int_t                       rc;
    ngx_uint_t                      rpm, remaining;
    ngx_http_trueport_zone_t       *zone;
    ngx_http_trueport_rl_node_t    *rl;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);
    zone = tmcf->shm_zone->data;

    rpm = ctx->key.rpm;

    if (rpm == 0) {
        return NGX_DECLINED;
    }

    interval = NGX_HTTP_TRUEPORT_MINUTE_US / rpm;

    if (interval == 0) {
        interval = 1;
    }

    burst = interval * rpm;

    hash = ngx_http_trueport_hash(zone->sh, ctx->key.key_id, TP_UUID_LEN);

    ngx_shmtx_lock(&zone->shpool->mutex);

    now = (uint64_t) ngx_current_msec * 1000;

    rl = ngx_http_trueport_ratelimit_find_locked(zone->sh, hash,
                                                 ctx->key.key_id);

    if (rl == NULL) {
        size = sizeof(ngx_http_trueport_rl_node_t);

        rl = ngx_http_trueport_zone_alloc_locked(
                 tmcf, size, NGX_HTTP_TRUEPORT_ALLOC_LIMITER);
        if (rl == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_DECLINED;
        }

        rl->hnode.hash = hash;
        rl->tat = now;
        rl->used = ngx_current_msec;
        ngx_memcpy(rl->key_id, ctx->key.key_id, TP_UUID_LEN);

        ngx_http_trueport_hash_insert(&zone->sh->rl, &rl->hnode);
        ngx_queue_insert_head(&zone->sh->rl_queue, &rl->queue);
        zone->sh->rl_entries++;

    } else if (ngx_current_msec - rl->used >= 10000) {
        /* as in the key cache: the LRU order is exact to ten seconds */
        rl->used = ngx_current_msec;
        ngx_queue_remove(&rl->queue);
        ngx_queue_insert_head(&zone->sh->rl_queue, &rl->queue);
    }

    rc = ngx_http_trueport_gcra(&rl->tat, now, interval, burst, &wait);

    tat = ngx_max(rl->tat, now);
    remaining = (rc == NGX_OK) ? (ngx_uint_t) ((burst - (tat - now)) / interval)
                               : 0;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ctx->rl = 1;
    ctx->rl_limit = rpm;
    ctx->rl_remaining = remaining;
    ctx->rl_reset = (ngx_msec_t) ((tat - now + 999) / 1000);
    ctx->rl_retry = (ngx_msec_t) ((wait + 999) / 1000);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport limit rpm:%ui remaining:%ui reset:%M retry:%M",
                   rpm, remaining, ctx->rl_reset, ctx->rl_retry);

    return rc;
}


/*
 * One request against a GCRA state: NGX_OK, and *tat moved on by one
 * interval; or NGX_BUSY, *tat as it was and *wait the microseconds until
 * one more is admitted.  burst: interval times the requests a full bucket
 * lets through at once.
 */

ngx_int_t
ngx_http_trueport_gcra(uint64_t *tat, uint64_t now, uint64_t interval,
    uint64_t burst, uint64_t *wait)
{
    uint64_t  next;

    next = ngx_max(*tat, now) + interval;

    if (next - now > burst) {
        *wait = next - burst - now;
        return NGX_BUSY;
    }

    *tat = next;
    *wait = 0;

    return NGX_OK;
}


static ngx_http_trueport_rl_node_t *
ngx_http_trueport_ratelimit_find_locked(ngx_http_trueport_shctx_t *sh,
    uint32_t hash, u_char *key_id)
{
    ngx_http_trueport_hnode_t    *n;
    ngx_http_trueport_rl_node_t  *rl;

    for (n = ngx_http_trueport_hash_first(&sh->rl, hash); n; n = n->next) {

        if (n->hash != hash) {
            continue;
        }

        rl = (ngx_http_trueport_rl_node_t *) n;

        if (ngx_memcmp(key_id, rl->key_id, TP_UUID_LEN) == 0) {
            return rl;
        }
    }

    return NULL;
}


/*
 * force == 0 frees the idle keys at the tail of the LRU queue: a key whose
 *            bucket is full again is no different from one never seen;
 * force == 1 frees the least recently used key whatever its state, and
 *            the idle ones behind it.
 */

ngx_uint_t
ngx_http_trueport_ratelimit_expire_locked(ngx_http_trueport_main_conf_t *tmcf,
    ngx_uint_t force)
{
    uint64_t                      now;
    ngx_uint_t                    freed;
    ngx_queue_t                  *q;
    ngx_http_trueport_zone_t     *zone;
    ngx_http_trueport_rl_node_t  *rl;

    zone = tmcf->shm_zone->data;
    now = (uint64_t) ngx_current_msec * 1000;

    for (freed = 0; freed < 16; freed++) {

        if (ngx_queue_empty(&zone->sh->rl_queue)) {
            break;
        }

        q = ngx_queue_last(&zone->sh->rl_queue);

        rl = ngx_queue_data(q, ngx_http_trueport_rl_node_t, queue);

        if (!force && rl->tat > now) {
            break;
        }

        force = 0;

        ngx_queue_remove(q);
        ngx_http_trueport_hash_delete(&zone->sh->rl, &rl->hnode);
        ngx_slab_free_locked(zone->shpool, rl);

        zone->sh->rl_entries--;
    }

    return freed;
}


/* a duration the way OpenAI writes it: "250ms", "7s", "1m0s", "6.5s" */

u_char *
ngx_http_trueport_duration(u_char *p, ngx_msec_t ms)
{
    ngx_msec_t  m, s, frac;

    if (ms < 1000) {
        return ngx_sprintf(p, "%Mms", ms);
    }

    m = ms / 60000;
    s = ms % 60000 / 1000;
    frac = ms % 1000;

    if (m) {
        p = ngx_sprintf(p, "%Mm", m);
    }

    p = ngx_sprintf(p, "%M", s);

    if (frac) {
        p = ngx_sprintf(p, ".%03M", frac);

        while (p[-1] == '0') {
            p--;
        }
    }

    *p++ = 's';

    return p;
}
