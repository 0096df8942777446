
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


static void *ngx_http_trueport_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_trueport_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_trueport_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_trueport_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_trueport_commands[] = {

    { ngx_string("trueport_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_trueport_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_trueport_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_trueport_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_trueport_init,                /* postconfiguration */

    ngx_http_trueport_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_trueport_create_loc_conf,     /* create location configuration */
    ngx_http_trueport_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_trueport_module = {
    NGX_MODULE_V1,
    &ngx_http_trueport_module_ctx,         /* module context */
    ngx_http_trueport_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_trueport_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_trueport_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tmcf->shm_zone = NULL;
     *     tmcf->health = 0;
     */

    return tmcf;
}


static void *
ngx_http_trueport_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_trueport_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_trueport_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->health = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_trueport_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_trueport_loc_conf_t *prev = parent;
    ngx_http_trueport_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->health, prev->health, 0);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_trueport_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_trueport_module);

    /* an http{} block that does not use the module pays nothing for it */

    if (!tmcf->health) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_CONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_trueport_health_handler;

    return NGX_OK;
}


ngx_int_t
ngx_http_trueport_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key = *key;
    h->value = *value;

    return NGX_OK;
}


ngx_int_t
ngx_http_trueport_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *json)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = json->len;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = json->data;
    b->last = json->data + json->len;
    b->memory = (json->len != 0);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
