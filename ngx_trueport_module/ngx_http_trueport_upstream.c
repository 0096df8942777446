
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


#define NGX_HTTP_TRUEPORT_AZURE_PATH      "/openai/deployments/"
#define NGX_HTTP_TRUEPORT_AZURE_RESOURCE  "{resource}"


static ngx_int_t ngx_http_trueport_azure_route(ngx_http_request_t *r,
    ngx_str_t *rest, ngx_str_t *resource, ngx_str_t *deployment,
    ngx_str_t *path);
static ngx_int_t ngx_http_trueport_string_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_trueport_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_trueport_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_trueport_provider_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_trueport_cache_status_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_trueport_key_hash_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


ngx_str_t  ngx_http_trueport_provider_names[] = {
    ngx_string("openai"),
    ngx_string("anthropic"),
    ngx_string("google"),
    ngx_string("azure"),
    ngx_string("off")
};


static ngx_str_t  ngx_http_trueport_default_upstreams[] = {
    ngx_string("https://api.openai.com/v1"),
    ngx_string("https://api.anthropic.com/v1"),
    ngx_string("https://generativelanguage.googleapis.com/v1beta"),
    ngx_string("https://" NGX_HTTP_TRUEPORT_AZURE_RESOURCE ".openai.azure.com")
};


static ngx_str_t  ngx_http_trueport_cache_statuses[] = {
    ngx_null_string,
    ngx_string("MISS"),
    ngx_string("HIT"),
    ngx_string("REFRESH"),
    ngx_string("STALE")
};


static ngx_http_variable_t  ngx_http_trueport_vars[] = {

    { ngx_string("trueport_upstream_url"), NULL,
      ngx_http_trueport_string_variable,
      offsetof(ngx_http_trueport_ctx_t, upstream_url),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_auth_authorization"), NULL,
      ngx_http_trueport_auth_variable, TP_OPENAI,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_auth_x_api_key"), NULL,
      ngx_http_trueport_auth_variable, TP_ANTHROPIC,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_auth_x_goog_api_key"), NULL,
      ngx_http_trueport_auth_variable, TP_GOOGLE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_auth_api_key"), NULL,
      ngx_http_trueport_auth_variable, TP_AZURE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_key_id"), NULL,
      ngx_http_trueport_id_variable,
      offsetof(ngx_http_trueport_ctx_t, key.key_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_tenant_id"), NULL,
      ngx_http_trueport_id_variable,
      offsetof(ngx_http_trueport_ctx_t, key.tenant_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_env"), NULL,
      ngx_http_trueport_string_variable,
      offsetof(ngx_http_trueport_ctx_t, key.env),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_provider"), NULL,
      ngx_http_trueport_provider_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_cache_status"), NULL,
      ngx_http_trueport_cache_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("trueport_key_hash"), NULL,
      ngx_http_trueport_key_hash_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* cacheable: one id per request, shared with its subrequests */
    { ngx_string("trueport_request_id"), NULL,
      ngx_http_trueport_request_id_variable, 0, 0, 0 },

      ngx_http_null_variable
};


char *
ngx_http_trueport_gateway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_trueport_loc_conf_t *tlcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_trueport_main_conf_t  *tmcf;

    if (tlcf->provider != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; i <= NGX_HTTP_TRUEPORT_OFF; i++) {
        if (value[1].len == ngx_http_trueport_provider_names[i].len
            && ngx_strcmp(value[1].data,
                          ngx_http_trueport_provider_names[i].data)
               == 0)
        {
            break;
        }
    }

    if (i > NGX_HTTP_TRUEPORT_OFF) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"openai\", "
                           "\"anthropic\", \"google\", \"azure\" or \"off\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    tlcf->provider = i;

    if (i == NGX_HTTP_TRUEPORT_OFF) {
        return NGX_CONF_OK;
    }

    /* the upstream path is what follows the location's prefix */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->named
#if (NGX_PCRE)
        || clcf->regex
#endif
       )
    {
        return "must be in a prefix or exact location";
    }

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_trueport_module);
    tmcf->gateway = 1;

    ngx_http_trueport_redact_server(cf);

    return NGX_CONF_OK;
}


char *
ngx_http_trueport_upstream(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_trueport_loc_conf_t *tlcf = conf;

    size_t      i;
    ngx_str_t  *value, url;

    if (tlcf->upstream.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    if (!((url.len > sizeof("http://") - 1
           && ngx_strncasecmp(url.data, (u_char *) "http://",
                              sizeof("http://") - 1) == 0)
          || (url.len > sizeof("https://") - 1
              && ngx_strncasecmp(url.data, (u_char *) "https://",
                                 sizeof("https://") - 1) == 0)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid upstream \"%V\", an http:// or https:// "
                           "URL is expected", &url);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < url.len; i++) {
        if (url.data[i] <= ' ' || url.data[i] == '?' || url.data[i] == '#'
            || url.data[i] >= 0x7f)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid upstream \"%V\", a base URL without "
                               "query, fragment or blanks is expected", &url);
            return NGX_CONF_ERROR;
        }
    }

    while (url.data[url.len - 1] == '/') {
        url.len--;
    }

    tlcf->upstream = url;

    return NGX_CONF_OK;
}


/*
 * trueport_upstream_allow pattern ...: the hosts a tenant's own endpoint
 * may name (trueport_endpoint.h), kept as one blank-separated list.
 */

char *
ngx_http_trueport_upstream_allow(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_trueport_loc_conf_t *tlcf = conf;

    u_char      *p;
    size_t       len;
    ngx_str_t   *value;
    ngx_uint_t   i;
    const char  *reason;

    if (tlcf->upstream_allow.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    len = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        if (tp_endpoint_pattern_valid((char *) value[i].data, value[i].len,
                                      &reason)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid pattern \"%V\": %s", &value[i],
                               reason);
            return NGX_CONF_ERROR;
        }

        len += value[i].len + 1;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    tlcf->upstream_allow.data = p;

    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_cpymem(p, value[i].data, value[i].len);
        *p++ = ' ';
    }

    tlcf->upstream_allow.len = len - 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_trueport_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_trueport_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * The upstream URL and the credential of a request whose key passed.
 * NGX_HTTP_NOT_FOUND: an Azure path of the wrong shape;
 * NGX_HTTP_SERVICE_UNAVAILABLE: no credential for the provider (none of
 * the tenant's, and the route's default is not set or not the plan's to
 * spend; or none of the tenant's own for the tenant's own endpoint);
 * NGX_DECLINED: the tenant's endpoint is not allowed, ctx->endpoint_refused
 * says why.
 */

ngx_int_t
ngx_http_trueport_upstream_route(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    u_char                        *p, *res;
    size_t                         len, prefix;
    uintptr_t                      escape;
    ngx_str_t                      base, rest, resource, deployment, path;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_trueport_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /*
     * The tenant's own endpoint (Azure's alone has one), checked again
     * here: the sidecar's allowlist may be wider than this location's, or
     * the endpoint older than either.
     */

    if (ctx->provider == TP_AZURE && ctx->key.endpoint.len
        && tp_endpoint_check((char *) ctx->key.endpoint.data,
                             ctx->key.endpoint.len,
                             (char *) tlcf->upstream_allow.data,
                             tlcf->upstream_allow.len,
                             &ctx->endpoint_refused)
           != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "trueport: endpoint \"%V\" of tenant %*s refused: %s",
                      &ctx->key.endpoint, (size_t) TP_UUID_LEN,
                      ctx->key.tenant_id, ctx->endpoint_refused);
        return NGX_DECLINED;
    }

    /*
     * The credential: the tenant's own, else the route's default when the
     * tenant's plan lets it spend the operator's keys; never the route's
     * for the tenant's own endpoint, which would hand the operator's key
     * to a host the tenant chose.
     */

    if (ctx->key.credential.len) {
        ctx->credential = ctx->key.credential;

    } else if (ctx->provider == TP_AZURE && ctx->key.endpoint.len) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;

    } else if (tlcf->upstream_key
               && (ctx->key.flags & TP_RESOLVE_DEFAULT_CREDENTIALS))
    {
        if (ngx_http_complex_value(r, tlcf->upstream_key, &ctx->credential)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->route_credential = 1;
    }

    if (ctx->credential.len == 0) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* the path after the location's prefix, as proxy_pass takes it */

    prefix = clcf->name.len;

    if (clcf->named
#if (NGX_PCRE)
        || clcf->regex
#endif
        || r->uri.len < prefix
        || ngx_strncmp(r->uri.data, clcf->name.data, prefix) != 0)
    {
        prefix = 0;
    }

    rest.data = r->uri.data + prefix;
    rest.len = r->uri.len - prefix;

    if (tlcf->upstream.len) {
        base = tlcf->upstream;

    } else {
        base = ngx_http_trueport_default_upstreams[ctx->provider];
    }

    ngx_str_null(&resource);
    res = NULL;

    if (ctx->provider == TP_AZURE) {
        if (ngx_http_trueport_azure_route(r, &rest, &resource, &deployment,
                                          &path)
            != NGX_OK)
        {
            return NGX_HTTP_NOT_FOUND;
        }

        /* the model for the model rules and, when the answer names
         * none, for the meter */
        ctx->deployment = deployment;

        /* a tenant's endpoint names its host: no "{resource}" in it */

        if (ctx->key.endpoint.len) {
            base = ctx->key.endpoint;

        } else {
            res = ngx_strlcasestrn(base.data, base.data + base.len,
                                   (u_char *) NGX_HTTP_TRUEPORT_AZURE_RESOURCE,
                                   sizeof(NGX_HTTP_TRUEPORT_AZURE_RESOURCE)
                                   - 2);
        }

    } else {
        path = rest;
        ngx_str_null(&deployment);

        while (path.len && path.data[0] == '/') {
            path.data++;
            path.len--;
        }
    }

    /* what the policies decide the endpoint by */
    ctx->path = path;

    escape = 2 * ngx_escape_uri(NULL, path.data, path.len, NGX_ESCAPE_URI);

    len = base.len + resource.len
          + sizeof(NGX_HTTP_TRUEPORT_AZURE_PATH) - 1 + deployment.len
          + sizeof("/") - 1 + path.len + escape
          + sizeof("?") - 1 + ctx->args.len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->upstream_url.data = p;

    if (res) {
        p = ngx_cpymem(p, base.data, res - base.data);
        p = ngx_cpymem(p, resource.data, resource.len);
        res += sizeof(NGX_HTTP_TRUEPORT_AZURE_RESOURCE) - 1;
        p = ngx_cpymem(p, res, base.data + base.len - res);

    } else {
        p = ngx_cpymem(p, base.data, base.len);
    }

    if (ctx->provider == TP_AZURE) {
        p = ngx_cpymem(p, NGX_HTTP_TRUEPORT_AZURE_PATH,
                       sizeof(NGX_HTTP_TRUEPORT_AZURE_PATH) - 1);
        p = ngx_cpymem(p, deployment.data, deployment.len);
    }

    if (path.len) {
        *p++ = '/';

        if (escape) {
            p = (u_char *) ngx_escape_uri(p, path.data, path.len,
                                          NGX_ESCAPE_URI);

        } else {
            p = ngx_cpymem(p, path.data, path.len);
        }
    }

    if (ctx->args.len) {
        *p++ = '?';
        p = ngx_cpymem(p, ctx->args.data, ctx->args.len);
    }

    ctx->upstream_url.len = p - ctx->upstream_url.data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport upstream \"%V\"", &ctx->upstream_url);

    return NGX_OK;
}


/*
 * {resource}/{deployment}/{path} or, as the AzureOpenAI client builds it,
 * {resource}/openai/deployments/{deployment}/{path}.  The resource becomes
 * part of a host name and the deployment a path segment: both are checked.
 */

static ngx_int_t
ngx_http_trueport_azure_route(ngx_http_request_t *r, ngx_str_t *rest,
    ngx_str_t *resource, ngx_str_t *deployment, ngx_str_t *path)
{
    u_char  *p, *last, *s;

    p = rest->data;
    last = rest->data + rest->len;

    while (p < last && *p == '/') {
        p++;
    }

    for (s = p; p < last && *p != '/'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-'))
        {
            return NGX_DECLINED;
        }
    }

    resource->data = s;
    resource->len = p - s;

    if (resource->len == 0 || resource->len > 64 || p == last) {
        return NGX_DECLINED;
    }

    p++;

    if ((size_t) (last - p) > sizeof("openai/deployments/") - 1
        && ngx_strncmp(p, "openai/deployments/",
                       sizeof("openai/deployments/") - 1) == 0)
    {
        p += sizeof("openai/deployments/") - 1;
    }

    for (s = p; p < last && *p != '/'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
              || *p == '.'))
        {
            return NGX_DECLINED;
        }
    }

    deployment->data = s;
    deployment->len = p - s;

    if (deployment->len == 0 || deployment->len > 128
        || (deployment->len == 1 && s[0] == '.')
        || (deployment->len == 2 && s[0] == '.' && s[1] == '.'))
    {
        return NGX_DECLINED;
    }

    while (p < last && *p == '/') {
        p++;
    }

    path->data = p;
    path->len = last - p;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport azure resource:\"%V\" deployment:\"%V\" "
                   "path:\"%V\"", resource, deployment, path);

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_string_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *s;
    ngx_http_trueport_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_trueport_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


/*
 * The SHA-256 of the request's key, in hex, for the header of the key
 * lookups; empty in the main request, so that no log format can print it.
 */

static ngx_int_t
ngx_http_trueport_key_hash_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_trueport_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_trueport_module);

    if (ctx == NULL || r == r->main) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 2 * NGX_HTTP_TRUEPORT_HASH_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_hex_dump(p, ctx->hash, NGX_HTTP_TRUEPORT_HASH_LEN) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/* the credential for the header the provider wants, empty for the others */

static ngx_int_t
ngx_http_trueport_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_trueport_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_trueport_module);

    if (ctx == NULL || !ctx->passed || ctx->provider != data
        || ctx->credential.len == 0)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == TP_OPENAI) {
        p = ngx_pnalloc(r->pool, sizeof("Bearer ") - 1 + ctx->credential.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        p = ngx_cpymem(p, "Bearer ", sizeof("Bearer ") - 1);
        p = ngx_cpymem(p, ctx->credential.data, ctx->credential.len);
        v->len = p - v->data;

    } else {
        v->data = ctx->credential.data;
        v->len = ctx->credential.len;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *id;
    ngx_http_trueport_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_trueport_module);

    if (ctx == NULL || ctx->key.status == TP_KEY_UNKNOWN) {
        v->not_found = 1;
        return NGX_OK;
    }

    id = (u_char *) ctx + data;

    v->len = TP_UUID_LEN;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = id;

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_provider_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_trueport_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_trueport_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_trueport_provider_names[ctx->provider].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_trueport_provider_names[ctx->provider].data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_cache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_trueport_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_trueport_module);

    if (ctx == NULL || ctx->cache_status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_trueport_cache_statuses[ctx->cache_status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_trueport_cache_statuses[ctx->cache_status].data;

    return NGX_OK;
}
