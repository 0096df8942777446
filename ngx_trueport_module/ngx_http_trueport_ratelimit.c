
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
    u_char                       color;
    u_char                       dummy;
    u_short                      len;
    ngx_queue_t                  queue;
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
    uint64_t                        now, tat, next, interval, burst, wait;
    ngx_int_t                       rc;
    ngx_uint_t                      rpm, remaining;
    ngx_rbtree_node_t              *node;
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

    hash = ngx_crc32_short(ctx->key.key_id, TP_UUID_LEN);

    ngx_shmtx_lock(&zone->shpool->mutex);

    now = (uint64_t) ngx_current_msec * 1000;

    rl = ngx_http_trueport_ratelimit_find_locked(zone->sh, hash,
                                                 ctx->key.key_id);

    if (rl == NULL) {
        size = offsetof(ngx_rbtree_node_t, color)
               + sizeof(ngx_http_trueport_rl_node_t);

        node = ngx_http_trueport_zone_alloc_locked(tmcf, size, 1);
        if (node == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_DECLINED;
        }

        node->key = hash;

        rl = (ngx_http_trueport_rl_node_t *) &node->color;

        rl->len = TP_UUID_LEN;
        rl->tat = now;
        ngx_memcpy(rl->key_id, ctx->key.key_id, TP_UUID_LEN);

        ngx_rbtree_insert(&zone->sh->rl_rbtree, node);
        zone->sh->rl_entries++;

    } else {
        ngx_queue_remove(&rl->queue);
    }

    ngx_queue_insert_head(&zone->sh->rl_queue, &rl->queue);

    tat = ngx_max(rl->tat, now);
    next = tat + interval;

    if (next - now > burst) {
        wait = next - burst - now;
        remaining = 0;
        rc = NGX_BUSY;

    } else {
        rl->tat = next;
        tat = next;
        wait = 0;
        remaining = (ngx_uint_t) ((burst - (next - now)) / interval);
        rc = NGX_OK;
    }

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


static ngx_http_trueport_rl_node_t *
ngx_http_trueport_ratelimit_find_locked(ngx_http_trueport_shctx_t *sh,
    uint32_t hash, u_char *key_id)
{
    ngx_int_t                     rc;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_trueport_rl_node_t  *rl;

    node = sh->rl_rbtree.root;
    sentinel = sh->rl_rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        rl = (ngx_http_trueport_rl_node_t *) &node->color;

        rc = ngx_memcmp(key_id, rl->key_id, TP_UUID_LEN);

        if (rc == 0) {
            return rl;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


void
ngx_http_trueport_ratelimit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t            **p;
    ngx_http_trueport_rl_node_t   *rl, *rlt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            rl = (ngx_http_trueport_rl_node_t *) &node->color;
            rlt = (ngx_http_trueport_rl_node_t *) &temp->color;

            p = (ngx_memcmp(rl->key_id, rlt->key_id, TP_UUID_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
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
    ngx_rbtree_node_t            *node;
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

        node = (ngx_rbtree_node_t *)
                   ((u_char *) rl - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&zone->sh->rl_rbtree, node);

        ngx_slab_free_locked(zone->shpool, node);

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
