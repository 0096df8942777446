
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


static ngx_int_t ngx_http_trueport_preconfiguration(ngx_conf_t *cf);
static void *ngx_http_trueport_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_trueport_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_trueport_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_trueport_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_trueport_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_trueport_init_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_trueport_key_scopes[] = {
    { ngx_string("stateless"), NGX_HTTP_TRUEPORT_SCOPE_STATELESS },
    { ngx_string("any"), NGX_HTTP_TRUEPORT_SCOPE_ANY },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_trueport_commands[] = {

    { ngx_string("trueport_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_trueport_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_spool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_trueport_spool,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_trueport_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_gateway"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_trueport_gateway,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_resolve_location"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_trueport_set_location_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_trueport_loc_conf_t, resolve),
      NULL },

    { ngx_string("trueport_policy_location"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_trueport_set_location_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_trueport_loc_conf_t, policy),
      NULL },

    { ngx_string("trueport_policy_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_trueport_loc_conf_t, policy_max_body),
      NULL },

    { ngx_string("trueport_policy_budget"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_trueport_policy_budget,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_policy_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_trueport_main_conf_t, policy_cache),
      NULL },

    { ngx_string("trueport_upstream"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_trueport_upstream,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_upstream_key_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_trueport_loc_conf_t, upstream_key_scope),
      &ngx_http_trueport_key_scopes },

    { ngx_string("trueport_upstream_allow"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_trueport_upstream_allow,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("trueport_upstream_key"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_trueport_loc_conf_t, upstream_key),
      NULL },

    { ngx_string("trueport_cache_refresh"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_trueport_main_conf_t, cache_refresh),
      NULL },

    { ngx_string("trueport_cache_valid"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_trueport_main_conf_t, cache_valid),
      NULL },

    { ngx_string("trueport_cache_stale"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_trueport_main_conf_t, cache_stale),
      NULL },

    { ngx_string("trueport_cache_negative"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_trueport_main_conf_t, cache_negative),
      NULL },

    { ngx_string("trueport_key_miss_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_trueport_miss_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_trueport_module_ctx = {
    ngx_http_trueport_preconfiguration,    /* preconfiguration */
    ngx_http_trueport_init,                /* postconfiguration */

    ngx_http_trueport_create_main_conf,    /* create main configuration */
    ngx_http_trueport_init_main_conf,      /* init main configuration */

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
    ngx_http_trueport_spool_init_module,   /* init module */
    ngx_http_trueport_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_trueport_spool_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_trueport_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_trueport_add_variables(cf);
}


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
     *     tmcf->spool = { 0, NULL };
     *     tmcf->health = 0;
     *     tmcf->gateway = 0;
     */

    tmcf->cache_refresh = NGX_CONF_UNSET_MSEC;
    tmcf->cache_valid = NGX_CONF_UNSET_MSEC;
    tmcf->cache_stale = NGX_CONF_UNSET_MSEC;
    tmcf->cache_negative = NGX_CONF_UNSET_MSEC;
    tmcf->miss_limit = NGX_CONF_UNSET_UINT;
    tmcf->request_id_index = NGX_ERROR;
    tmcf->policy_limits = tp_policy_limits_default;
    tmcf->policy_cache = NGX_CONF_UNSET_SIZE;

    return tmcf;
}


static char *
ngx_http_trueport_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_trueport_main_conf_t *tmcf = conf;

    /*
     * A revoked key must be refused within a second: a hit older than
     * "valid" waits for the sidecar, one older than "refresh" is served
     * while a background subrequest asks again.
     */

    ngx_conf_init_msec_value(tmcf->cache_refresh, 500);
    ngx_conf_init_msec_value(tmcf->cache_valid, 1000);
    ngx_conf_init_msec_value(tmcf->cache_stale, 300000);
    ngx_conf_init_msec_value(tmcf->cache_negative, 5000);

    /*
     * Lookups of keys the cache has nothing good for, per client address:
     * 20 at once, then one every 3 s.  A client with a mistyped or
     * revoked key retries it at most once per trueport_cache_negative (5 s
     * by default: 12 a minute); an office behind one address that rolls
     * out new keys has them refunded; a stranger trying random keys gets
     * 20 a minute instead of as many as it can send.
     */

    if (tmcf->miss_limit == NGX_CONF_UNSET_UINT) {
        tmcf->miss_limit = 20;
        tmcf->miss_period = 60000;
    }

    if (tmcf->cache_valid == 0) {
        return "\"trueport_cache_valid\" must be more than 0";
    }

    if (tmcf->cache_refresh >= tmcf->cache_valid) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"trueport_cache_refresh\" %M is not below "
                           "\"trueport_cache_valid\" %M: cached keys are "
                           "never refreshed in the background",
                           tmcf->cache_refresh, tmcf->cache_valid);
    }

    if (tmcf->cache_stale < tmcf->cache_valid) {
        tmcf->cache_stale = tmcf->cache_valid;
    }

    /*
     * A worker keeps the compiled rule sets of the tenants it serves, the
     * least recently used evicted beyond 64 MB: 32 maximal sets, or a few
     * thousand of typical ones (a few KB each).  One set must fit.
     */

    ngx_conf_init_size_value(tmcf->policy_cache, 64 * 1024 * 1024);

    if (tmcf->policy_cache < tmcf->policy_limits.set_bytes) {
        return "\"trueport_policy_cache\" must be at least the set budget "
               "of \"trueport_policy_budget\"";
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_trueport_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_trueport_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_trueport_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->resolve = { 0, NULL };
     *     conf->upstream = { 0, NULL };
     *     conf->upstream_allow = { 0, NULL };
     *     conf->policy = { 0, NULL };
     *     conf->redact = 0;
     */

    conf->health = NGX_CONF_UNSET;
    conf->provider = NGX_CONF_UNSET_UINT;
    conf->upstream_key = NGX_CONF_UNSET_PTR;
    conf->policy_max_body = NGX_CONF_UNSET_SIZE;
    conf->upstream_key_scope = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_trueport_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_trueport_loc_conf_t *prev = parent;
    ngx_http_trueport_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->health, prev->health, 0);
    ngx_conf_merge_uint_value(conf->provider, prev->provider,
                              NGX_HTTP_TRUEPORT_OFF);

    if (conf->resolve.data == NULL) {
        conf->resolve = prev->resolve;
    }

    if (conf->upstream.data == NULL) {
        conf->upstream = prev->upstream;
    }

    ngx_conf_merge_ptr_value(conf->upstream_key, prev->upstream_key, NULL);

    ngx_conf_merge_uint_value(conf->upstream_key_scope,
                              prev->upstream_key_scope,
                              NGX_HTTP_TRUEPORT_SCOPE_STATELESS);

    if (conf->upstream_allow.data == NULL) {
        conf->upstream_allow = prev->upstream_allow;
    }

    if (conf->upstream_allow.data == NULL) {
        ngx_str_set(&conf->upstream_allow, TP_ENDPOINT_ALLOW_DEFAULT);
    }

    if (conf->policy.data == NULL) {
        conf->policy = prev->policy;
    }

    ngx_conf_merge_size_value(conf->policy_max_body, prev->policy_max_body,
                              1024 * 1024);

    if (conf->policy_max_body > TP_PROMPT_MAX_BODY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"trueport_policy_max_body\" may not exceed %uz",
                           (size_t) TP_PROMPT_MAX_BODY);
        return NGX_CONF_ERROR;
    }

    if (conf->provider != NGX_HTTP_TRUEPORT_OFF && conf->resolve.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"trueport_gateway\" requires "
                           "\"trueport_resolve_location\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_trueport_init(ngx_conf_t *cf)
{
    ngx_str_t                       name;
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_trueport_module);

    /* an http{} block that does not use the module pays nothing for it */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    if (tmcf->health) {
        h = ngx_array_push(&cmcf->phases[NGX_HTTP_CONTENT_PHASE].handlers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = ngx_http_trueport_health_handler;
    }

    if (!tmcf->gateway) {
        return NGX_OK;
    }

    if (tmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"trueport_gateway\" requires \"trueport_zone\"");
        return NGX_ERROR;
    }

    ngx_str_set(&name, "trueport_request_id");

    tmcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (tmcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_trueport_access_handler;

    if (ngx_http_trueport_redact_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_trueport_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_trueport_meter_init(cf);
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


static ngx_int_t
ngx_http_trueport_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_trueport_request_id_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_trueport_spool_init_process(cycle);
}


/*
 * trueport_resolve_location, trueport_policy_location: the URI of an
 * internal location for the module's subrequests, or "off"; an unset
 * ngx_str_t (data NULL) inherits, "off" is an empty string.
 */

char *
ngx_http_trueport_set_location_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_str_t  *field, *value;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        field->len = 0;
        field->data = (u_char *) "";

        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid location \"%V\", a URI is expected",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    *field = value[1];

    return NGX_CONF_OK;
}
