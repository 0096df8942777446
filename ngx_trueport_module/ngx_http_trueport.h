
/*
 * Copyright (C) TruePort
 */


#ifndef _NGX_HTTP_TRUEPORT_H_INCLUDED_
#define _NGX_HTTP_TRUEPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define TRUEPORT_VERSION                "0.1.0"
#define TRUEPORT_MODULE_NAME            "ngx_http_trueport_module"


/* what the sidecar did on the last call a worker made to it */

typedef struct {
    time_t                       at;          /* 0: no call reported yet */
    ngx_uint_t                   status;      /* 0: no HTTP answer at all */
    ngx_uint_t                   ok;          /* status 200..499 */
} ngx_http_trueport_sidecar_state_t;


/*
 * Lives in the shared zone and outlives reloads.  The rbtree is keyed by
 * ngx_rbtree_key_t and the LRU queue has the most recently used entry at
 * its head; the key cache owns the node layout and keeps "entries" right.
 */

typedef struct {
    ngx_rbtree_t                       rbtree;
    ngx_rbtree_node_t                  sentinel;
    ngx_queue_t                        queue;
    time_t                             created;
    ngx_uint_t                         entries;
    ngx_http_trueport_sidecar_state_t  sidecar;
} ngx_http_trueport_shctx_t;


/* shm_zone->data: a per-cycle handle on the shared zone */

typedef struct {
    ngx_http_trueport_shctx_t   *sh;
    ngx_slab_pool_t             *shpool;
} ngx_http_trueport_zone_t;


/* a consistent copy of the zone's figures, taken under the mutex */

typedef struct {
    size_t                             size;
    size_t                             used;
    ngx_uint_t                         pages;
    ngx_uint_t                         free_pages;
    ngx_uint_t                         entries;
    time_t                             created;
    ngx_http_trueport_sidecar_state_t  sidecar;
} ngx_http_trueport_zone_stats_t;


typedef struct {
    ngx_shm_zone_t              *shm_zone;
    unsigned                     health:1;
} ngx_http_trueport_main_conf_t;


typedef struct {
    ngx_flag_t                   health;
} ngx_http_trueport_loc_conf_t;


ngx_int_t ngx_http_trueport_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value);
ngx_int_t ngx_http_trueport_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *json);

char *ngx_http_trueport_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_trueport_zone_stats(ngx_shm_zone_t *shm_zone,
    ngx_http_trueport_zone_stats_t *st);
void ngx_http_trueport_sidecar_report(ngx_shm_zone_t *shm_zone,
    ngx_uint_t status);

char *ngx_http_trueport_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_trueport_health_handler(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_trueport_module;


#endif /* _NGX_HTTP_TRUEPORT_H_INCLUDED_ */
