
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/rand.h>
#include "ngx_http_trueport.h"


#define NGX_HTTP_TRUEPORT_ZONE_MIN_PAGES  8

/*
 * The bounds on what strangers can make the zone hold, unless
 * trueport_zone says otherwise: unknown keys' entries (a 256-byte slab
 * chunk each) in a quarter of the zone, client addresses (64 bytes each)
 * in a sixteenth of it.
 */
#define NGX_HTTP_TRUEPORT_NEGATIVE_SHARE  (4 * 256)
#define NGX_HTTP_TRUEPORT_CLIENTS_SHARE   (16 * 64)



static ngx_int_t ngx_http_trueport_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


char *
ngx_http_trueport_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_trueport_main_conf_t *tmcf = conf;

    u_char                    *p;
    ssize_t                    size;
    ngx_int_t                  n;
    ngx_str_t                 *value, name, s;
    ngx_uint_t                 i, negative, clients;
    ngx_shm_zone_t            *shm_zone;
    ngx_http_trueport_zone_t  *zone;

    if (tmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data + 5;

    p = (u_char *) ngx_strchr(name.data, ':');

    if (p == NULL || p == name.data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected zone=name:size",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.len = p - name.data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (NGX_HTTP_TRUEPORT_ZONE_MIN_PAGES * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, the minimum is %uz",
                           &value[1],
                           NGX_HTTP_TRUEPORT_ZONE_MIN_PAGES * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    negative = 0;
    clients = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "negative=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n <= 0) {
                goto invalid;
            }

            negative = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "clients=", 8) == 0) {
            n = ngx_atoi(value[i].data + 8, value[i].len - 8);
            if (n <= 0) {
                goto invalid;
            }

            clients = n;
            continue;
        }

        goto invalid;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_trueport_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (negative == 0) {
        negative = (size_t) size / NGX_HTTP_TRUEPORT_NEGATIVE_SHARE;
    }

    if (clients == 0) {
        clients = (size_t) size / NGX_HTTP_TRUEPORT_CLIENTS_SHARE;
    }

    zone->negative_max = negative;
    zone->clients_max = clients;

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_trueport_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" is already defined",
                           &cmd->name, &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_trueport_init_zone;
    shm_zone->data = zone;

    tmcf->shm_zone = shm_zone;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_trueport_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_trueport_zone_t  *ozone = data;

    size_t                     len, n;
    ngx_http_trueport_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;

        goto check;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;

        goto check;
    }

    zone->sh = ngx_slab_calloc(zone->shpool,
                               sizeof(ngx_http_trueport_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    /*
     * A bucket per 512 bytes of zone, a power of two: a key entry takes a
     * 512-byte slab chunk or more, so a full zone keeps the chains of the
     * key table at one node or less on average; the limiter's nodes are
     * smaller but there is one per key id, not more.
     */

    for (n = 64; n < shm_zone->shm.size / 512; n <<= 1) { /* void */ }

    zone->sh->keys.buckets = ngx_slab_calloc(zone->shpool, n * sizeof(void *));
    zone->sh->rl.buckets = ngx_slab_calloc(zone->shpool, n * sizeof(void *));
    zone->sh->ml.buckets = ngx_slab_calloc(zone->shpool, n * sizeof(void *));

    if (zone->sh->keys.buckets == NULL || zone->sh->rl.buckets == NULL
        || zone->sh->ml.buckets == NULL)
    {
        return NGX_ERROR;
    }

    /*
     * The buckets' secret, made once, here, before any worker starts; a
     * reload goes on with the old zone and with it (above).  Without it
     * the zone would be open to colliding keys: no zone then.
     */

    if (RAND_bytes(zone->sh->hash_key, TP_SIPHASH_KEY_LEN) != 1) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "trueport zone \"%V\": RAND_bytes() failed, no key "
                      "for its hash tables", &shm_zone->shm.name);
        return NGX_ERROR;
    }

    zone->sh->magic = NGX_HTTP_TRUEPORT_ZONE_MAGIC;
    zone->sh->keys.mask = n - 1;
    zone->sh->rl.mask = n - 1;
    zone->sh->ml.mask = n - 1;

    ngx_queue_init(&zone->sh->queue);
    ngx_queue_init(&zone->sh->neg_queue);
    ngx_queue_init(&zone->sh->rl_queue);
    ngx_queue_init(&zone->sh->ml_queue);

    zone->sh->created = ngx_time();

    len = sizeof(" in trueport zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in trueport zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* the users of the zone evict and log themselves when it is full */

    zone->shpool->log_nomem = 0;

    return NGX_OK;

check:

    if (zone->sh->magic != NGX_HTTP_TRUEPORT_ZONE_MAGIC) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "trueport zone \"%V\" was made by another version "
                      "of the module: restart nginx, or rename the zone",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The hash of a table's key, under the zone's secret: read without the
 * mutex, it is written once before the workers start.
 */

uint32_t
ngx_http_trueport_hash(ngx_http_trueport_shctx_t *sh, const void *data,
    size_t len)
{
    return (uint32_t) tp_siphash24(sh->hash_key, data, len);
}


void
ngx_http_trueport_hash_insert(ngx_http_trueport_htable_t *t,
    ngx_http_trueport_hnode_t *n)
{
    ngx_http_trueport_hnode_t  **head;

    head = &t->buckets[n->hash & t->mask];

    n->next = *head;
    *head = n;
}


void
ngx_http_trueport_hash_delete(ngx_http_trueport_htable_t *t,
    ngx_http_trueport_hnode_t *n)
{
    ngx_http_trueport_hnode_t  **p;

    for (p = &t->buckets[n->hash & t->mask]; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            return;
        }
    }
}


void
ngx_http_trueport_zone_stats(ngx_shm_zone_t *shm_zone,
    ngx_http_trueport_zone_stats_t *st)
{
    ngx_http_trueport_zone_t  *zone;

    zone = shm_zone->data;

    st->size = shm_zone->shm.size;
    st->pages = (zone->shpool->end - zone->shpool->start) / ngx_pagesize;

    ngx_shmtx_lock(&zone->shpool->mutex);

    st->free_pages = zone->shpool->pfree;
    st->entries = zone->sh->entries;
    st->neg_entries = zone->sh->neg_entries;
    st->ml_entries = zone->sh->ml_entries;
    st->created = zone->sh->created;
    st->sidecar = zone->sh->sidecar;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    st->used = (st->pages - st->free_pages) * ngx_pagesize;
}


void
ngx_http_trueport_sidecar_report(ngx_shm_zone_t *shm_zone, ngx_uint_t status)
{
    ngx_http_trueport_zone_t  *zone;

    if (shm_zone == NULL) {
        return;
    }

    zone = shm_zone->data;

    ngx_shmtx_lock(&zone->shpool->mutex);

    zone->sh->sidecar.at = ngx_time();
    zone->sh->sidecar.status = status;

    /* a 4xx is an answer (e.g. an unknown key), a 5xx or none is not */

    zone->sh->sidecar.ok = (status >= NGX_HTTP_OK
                            && status < NGX_HTTP_INTERNAL_SERVER_ERROR);

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * Allocation for the key cache and the limiters, which share the zone.
 * When the slab is full, entries nobody may use any more go first (the
 * expired ones at the tails of the LRU queues), then unknown keys' entries
 * (asking again for one costs nobody anything but a lookup), then the
 * least recently used of the same kind, one at a time: slab pages are kept
 * per size class, and a chunk of another class set free need not help.
 * What strangers make the zone hold (unknown keys, client addresses) is
 * never allocated at the expense of a known key or its limiter.
 */

void *
ngx_http_trueport_zone_alloc_locked(ngx_http_trueport_main_conf_t *tmcf,
    size_t size, ngx_uint_t kind)
{
    void                      *p;
    ngx_uint_t                 freed;
    ngx_http_trueport_zone_t  *zone;

    zone = tmcf->shm_zone->data;

    p = ngx_slab_alloc_locked(zone->shpool, size);
    if (p) {
        return p;
    }

    freed = ngx_http_trueport_keycache_expire_locked(tmcf, 0, 1)
            + ngx_http_trueport_keycache_expire_locked(tmcf, 0, 0)
            + ngx_http_trueport_ratelimit_expire_locked(tmcf, 0)
            + ngx_http_trueport_misslimit_expire_locked(tmcf, 0);

    if (freed) {
        p = ngx_slab_alloc_locked(zone->shpool, size);
        if (p) {
            return p;
        }
    }

    for ( ;; ) {

        freed = ngx_http_trueport_keycache_expire_locked(tmcf, 1, 1);

        if (freed == 0) {

            switch (kind) {

            case NGX_HTTP_TRUEPORT_ALLOC_NEGATIVE:
                break;

            case NGX_HTTP_TRUEPORT_ALLOC_CLIENT:
                freed = ngx_http_trueport_misslimit_expire_locked(tmcf, 1);
                break;

            case NGX_HTTP_TRUEPORT_ALLOC_LIMITER:
                freed = ngx_http_trueport_ratelimit_expire_locked(tmcf, 1);

                if (freed == 0) {
                    freed = ngx_http_trueport_keycache_expire_locked(tmcf, 1,
                                                                      0);
                }

                break;

            default: /* NGX_HTTP_TRUEPORT_ALLOC_KEY */
                freed = ngx_http_trueport_keycache_expire_locked(tmcf, 1, 0);

                if (freed == 0) {
                    freed = ngx_http_trueport_ratelimit_expire_locked(tmcf, 1);
                }
            }
        }

        if (freed == 0) {
            break;
        }

        p = ngx_slab_alloc_locked(zone->shpool, size);
        if (p) {
            return p;
        }
    }

    /* a stranger's entry that does not fit is the caller's to report:
     * here, one alert per unknown key would be the stranger's to write */

    if (kind == NGX_HTTP_TRUEPORT_ALLOC_KEY
        || kind == NGX_HTTP_TRUEPORT_ALLOC_LIMITER)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "trueport: could not allocate %uz bytes, nothing left "
                      "to free%s", size, zone->shpool->log_ctx);
    }

    return NULL;
}
