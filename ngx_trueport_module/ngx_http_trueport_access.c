
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"



/*
 * An error in the shape each provider's SDK reads: the status, OpenAI's
 * (and Azure's) code and type, Anthropic's type, Google's status; the
 * code in capitals is the reason of Google's ErrorInfo detail.
 */

typedef struct {
    ngx_uint_t                   status;
    ngx_str_t                    code;
    ngx_str_t                    openai_type;
    ngx_str_t                    anthropic_type;
    ngx_str_t                    google_status;
} ngx_http_trueport_error_t;


static ngx_int_t ngx_http_trueport_access_check(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
static ngx_int_t ngx_http_trueport_find_key(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_int_t ngx_http_trueport_scrub(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);


static ngx_http_trueport_error_t  ngx_http_trueport_errors[] = {

    { NGX_HTTP_UNAUTHORIZED, ngx_string("missing_api_key"),
      ngx_string("invalid_request_error"), ngx_string("authentication_error"),
      ngx_string("UNAUTHENTICATED") },

    { NGX_HTTP_UNAUTHORIZED, ngx_string("invalid_api_key"),
      ngx_string("invalid_request_error"), ngx_string("authentication_error"),
      ngx_string("UNAUTHENTICATED") },

    { NGX_HTTP_FORBIDDEN, ngx_string("tenant_suspended"),
      ngx_string("request_forbidden"), ngx_string("permission_error"),
      ngx_string("PERMISSION_DENIED") },

    { NGX_HTTP_FORBIDDEN, ngx_string("provider_not_allowed"),
      ngx_string("request_forbidden"), ngx_string("permission_error"),
      ngx_string("PERMISSION_DENIED") },

    { NGX_HTTP_NOT_FOUND, ngx_string("not_found"),
      ngx_string("invalid_request_error"), ngx_string("not_found_error"),
      ngx_string("NOT_FOUND") },

    { NGX_HTTP_TOO_MANY_REQUESTS, ngx_string("rate_limit_exceeded"),
      ngx_string("requests"), ngx_string("rate_limit_error"),
      ngx_string("RESOURCE_EXHAUSTED") },

    { NGX_HTTP_SERVICE_UNAVAILABLE, ngx_string("gateway_unavailable"),
      ngx_string("server_error"), ngx_string("api_error"),
      ngx_string("UNAVAILABLE") },

    { NGX_HTTP_SERVICE_UNAVAILABLE, ngx_string("credential_missing"),
      ngx_string("server_error"), ngx_string("api_error"),
      ngx_string("UNAVAILABLE") },

    /* OpenAI's own type for a used-up quota */
    { NGX_HTTP_TOO_MANY_REQUESTS, ngx_string("quota_exceeded"),
      ngx_string("insufficient_quota"), ngx_string("rate_limit_error"),
      ngx_string("RESOURCE_EXHAUSTED") },

    { NGX_HTTP_FORBIDDEN, ngx_string("policy_violation"),
      ngx_string("invalid_request_error"), ngx_string("permission_error"),
      ngx_string("PERMISSION_DENIED") },

    { NGX_HTTP_BAD_REQUEST, ngx_string("invalid_request_body"),
      ngx_string("invalid_request_error"), ngx_string("invalid_request_error"),
      ngx_string("INVALID_ARGUMENT") },

    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, ngx_string("request_too_large"),
      ngx_string("invalid_request_error"), ngx_string("request_too_large"),
      ngx_string("INVALID_ARGUMENT") },

    { NGX_HTTP_SERVICE_UNAVAILABLE, ngx_string("endpoint_not_allowed"),
      ngx_string("server_error"), ngx_string("api_error"),
      ngx_string("UNAVAILABLE") },

    /* 508 Loop Detected (RFC 5842) */
    { 508, ngx_string("loop_detected"),
      ngx_string("server_error"), ngx_string("api_error"),
      ngx_string("FAILED_PRECONDITION") },

    { NGX_HTTP_BAD_REQUEST, ngx_string("policy_unsupported_endpoint"),
      ngx_string("invalid_request_error"), ngx_string("invalid_request_error"),
      ngx_string("INVALID_ARGUMENT") },

    /* a block or redact rule could not finish checking the request */
    { NGX_HTTP_FORBIDDEN, ngx_string("policy_unavailable"),
      ngx_string("invalid_request_error"), ngx_string("permission_error"),
      ngx_string("PERMISSION_DENIED") },

    /* an account endpoint through the operator's shared credential */
    { NGX_HTTP_FORBIDDEN, ngx_string("own_credential_required"),
      ngx_string("request_forbidden"), ngx_string("permission_error"),
      ngx_string("PERMISSION_DENIED") }
};


/* the message of a refusal, by the key's status */

static ngx_str_t  ngx_http_trueport_refusals[] = {
    ngx_string("invalid API key"),
    ngx_null_string,
    ngx_string("the API key is disabled"),
    ngx_string("the API key has expired"),
    ngx_string("the API key has been deleted"),
    ngx_string("the organisation of the API key is suspended"),
    ngx_string("the API key may not call this provider"),
    ngx_string("the organisation's monthly request quota is used up")
};


static ngx_str_t  ngx_http_trueport_missing = ngx_string(
    "missing API key: send it in the Authorization (Bearer), x-api-key, "
    "x-goog-api-key or api-key header");

static ngx_str_t  ngx_http_trueport_unavailable = ngx_string(
    "the gateway cannot check the API key right now, retry later");

static ngx_str_t  ngx_http_trueport_no_route = ngx_string(
    "no such route: Azure OpenAI takes /{resource}/{deployment}/{path} or "
    "/{resource}/openai/deployments/{deployment}/{path}");

static ngx_str_t  ngx_http_trueport_retry_after = ngx_string("Retry-After");

static ngx_str_t  ngx_http_trueport_miss_limited = ngx_string(
    "too many requests with API keys the gateway does not know from this "
    "address, retry later");

static ngx_str_t  ngx_http_trueport_loop = ngx_string(
    "request loop: this request has already passed this gateway (an "
    "endpoint names the gateway itself)");

static ngx_str_t  ngx_http_trueport_client_keys[] = {
    ngx_string("x-api-key"),
    ngx_string("x-goog-api-key"),
    ngx_string("api-key"),
    ngx_null_string
};


/*
 * Headers that pick an account or a billing project at the provider: the
 * client's own with its own credential, never with the operator's (they
 * would bill or reach another organisation, project or Google Cloud
 * project of the operator's).  Anthropic's account is the key's alone:
 * anthropic-beta selects features, not an account, and passes.
 */

static ngx_str_t  ngx_http_trueport_account_headers[] = {
    ngx_string("openai-organization"),
    ngx_string("openai-project"),
    ngx_string("x-goog-user-project"),
    ngx_null_string
};


ngx_int_t
ngx_http_trueport_access_handler(ngx_http_request_t *r)
{
    size_t                         len;
    ngx_int_t                      rc;
    ngx_str_t                      key;
    const u_char                  *v;
    ngx_http_trueport_ctx_t       *ctx;
    ngx_http_trueport_loc_conf_t  *tlcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

    if (tlcf->provider == NGX_HTTP_TRUEPORT_OFF) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_trueport_module);

    if (ctx != NULL) {

        if (ctx->waiting) {
            return NGX_AGAIN;
        }

        if (ctx->passed) {
            return NGX_OK;
        }

        if (ctx->checked) {
            return ngx_http_trueport_policy(r, ctx);
        }

        rc = ngx_http_trueport_keycache_answer(r, ctx);

        goto check;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport access handler");

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_trueport_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->provider = tlcf->provider;

    ngx_http_set_ctx(r, ctx, ngx_http_trueport_module);

    rc = ngx_http_trueport_hop_check(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_trueport_error(r, ctx, NGX_HTTP_TRUEPORT_ERR_LOOP,
                                       &ngx_http_trueport_loop);
    }

    rc = ngx_http_trueport_find_key(r, &key);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_MISSING_KEY,
                                       &ngx_http_trueport_missing);
    }

    if (!tp_key_valid(key.data, key.len)) {
        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_INVALID_KEY,
                                       &ngx_http_trueport_refusals[0]);
    }

    /* the query string that goes upstream: without Gemini's "key" */

    ctx->args = r->args;

    if (r->args.len
        && tp_args_get(r->args.data, r->args.len, "key", &v, &len) == 0)
    {
        ctx->args.data = ngx_pnalloc(r->pool, r->args.len);
        if (ctx->args.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->args.len = tp_args_strip(r->args.data, r->args.len, "key",
                                      ctx->args.data);
    }

    rc = ngx_http_trueport_keycache_lookup(r, ctx, &key);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

check:

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_BUSY) {
        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_RATE_LIMITED,
                                       &ngx_http_trueport_miss_limited);
    }

    if (rc == NGX_HTTP_SERVICE_UNAVAILABLE) {
        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_UNAVAILABLE,
                                       &ngx_http_trueport_unavailable);
    }

    rc = ngx_http_trueport_access_check(r, ctx);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_trueport_policy(r, ctx);
}


static ngx_int_t
ngx_http_trueport_access_check(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    u_char                         buf[256];
    ngx_int_t                      rc;
    ngx_str_t                     *name, msg;
    ngx_uint_t                     err, status;
    ngx_http_trueport_key_t       *key;
    ngx_http_trueport_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);
    key = &ctx->key;
    status = key->status;

    if (status == TP_KEY_ACTIVE && key->expires_at != 0
        && key->expires_at <= ngx_time())
    {
        status = TP_KEY_EXPIRED;
    }

    if (status != TP_KEY_ACTIVE) {

        switch (status) {

        case TP_KEY_TENANT_SUSPENDED:
            err = NGX_HTTP_TRUEPORT_ERR_TENANT_SUSPENDED;
            break;

        case TP_KEY_PROVIDER_NOT_ALLOWED:
            err = NGX_HTTP_TRUEPORT_ERR_PROVIDER_NOT_ALLOWED;
            break;

        case TP_KEY_QUOTA_EXCEEDED:
            err = NGX_HTTP_TRUEPORT_ERR_QUOTA_EXCEEDED;
            break;

        default:
            err = NGX_HTTP_TRUEPORT_ERR_INVALID_KEY;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "trueport: key refused: %s", tp_key_status_name(status));

        if (status != TP_KEY_PROVIDER_NOT_ALLOWED) {
            return ngx_http_trueport_error(r, ctx, err,
                                           &ngx_http_trueport_refusals[status]);
        }

        name = &ngx_http_trueport_provider_names[ctx->provider];

        msg.data = buf;
        msg.len = ngx_snprintf(buf, sizeof(buf), "the API key may not call %V",
                               name)
                  - buf;

        return ngx_http_trueport_error(r, ctx, err, &msg);
    }

    rc = ngx_http_trueport_upstream_route(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_HTTP_NOT_FOUND) {
        return ngx_http_trueport_error(r, ctx, NGX_HTTP_TRUEPORT_ERR_NOT_FOUND,
                                       &ngx_http_trueport_no_route);
    }

    if (rc == NGX_DECLINED) {
        msg.data = buf;
        msg.len = ngx_snprintf(buf, sizeof(buf), "the organisation's own "
                               "endpoint is not allowed by this gateway: %s",
                               ctx->endpoint_refused)
                  - buf;

        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_ENDPOINT,
                                       &msg);
    }

    if (rc == NGX_HTTP_SERVICE_UNAVAILABLE) {
        name = &ngx_http_trueport_provider_names[ctx->provider];

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "trueport: no %V credential for tenant %*s%s", name,
                      (size_t) TP_UUID_LEN, key->tenant_id,
                      key->endpoint.len ? " (its own endpoint needs its own)"
                                        : "");

        msg.data = buf;
        msg.len = (key->endpoint.len
                   ? ngx_snprintf(buf, sizeof(buf), "the organisation's own "
                                  "%V endpoint needs the organisation's own "
                                  "%V credential", name, name)
                   : ngx_snprintf(buf, sizeof(buf), "no %V credential is "
                                  "configured for this organisation or route",
                                  name))
                  - buf;

        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_NO_CREDENTIAL,
                                       &msg);
    }

    /*
     * The operator's credential serves every tenant whose plan may spend
     * it: files, batches, assistants and the like it holds in the
     * provider's account would be listed and read by all of them.  Only
     * endpoints that keep nothing there go through it.
     */

    if (ctx->route_credential
        && tlcf->upstream_key_scope == NGX_HTTP_TRUEPORT_SCOPE_STATELESS
        && tp_stateless_endpoint((int) ctx->provider,
                                 (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
                                 != 0, ctx->path.data, ctx->path.len)
           == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "trueport: \"%V\" refused with the route's shared "
                      "credential for tenant %*s", &ctx->path,
                      (size_t) TP_UUID_LEN, key->tenant_id);

        ngx_str_set(&msg, "this endpoint keeps data in the provider "
                    "account, which the gateway's shared credential serves "
                    "to other organisations too: it needs the "
                    "organisation's own provider key");

        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_SHARED_SCOPE,
                                       &msg);
    }

    rc = ngx_http_trueport_ratelimit(r, ctx);

    if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "trueport: key %*s over its limit of %ui rpm",
                      (size_t) TP_UUID_LEN, key->key_id, ctx->rl_limit);

        msg.data = buf;
        msg.len = ngx_snprintf(buf, sizeof(buf), "rate limit of %ui requests "
                               "per minute reached for this API key, retry "
                               "in %M ms", ctx->rl_limit, ctx->rl_retry)
                  - buf;

        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_RATE_LIMITED,
                                       &msg);
    }

    if (ngx_http_trueport_scrub(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the policies (ngx_http_trueport_policy()) come next */

    ctx->checked = 1;

    return NGX_OK;
}


/*
 * The key, from the first of the places the SDKs put it: x-api-key
 * (Anthropic), Authorization: Bearer (OpenAI, Anthropic 1.x), x-goog-api-key
 * (Gemini), api-key (Azure), or Gemini's "key" argument.  NGX_DECLINED:
 * no key at all.
 */

static ngx_int_t
ngx_http_trueport_find_key(ngx_http_request_t *r, ngx_str_t *key)
{
    size_t             len;
    u_char            *p;
    ngx_uint_t         i, n, best;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h, *found[3];
    const u_char      *v;

    found[0] = NULL;
    found[1] = NULL;
    found[2] = NULL;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        for (n = 0; ngx_http_trueport_client_keys[n].len; n++) {
            if (h[i].key.len == ngx_http_trueport_client_keys[n].len
                && found[n] == NULL
                && ngx_strncmp(h[i].lowcase_key,
                               ngx_http_trueport_client_keys[n].data,
                               h[i].key.len)
                   == 0)
            {
                found[n] = &h[i];
                break;
            }
        }
    }

    if (found[0]) {
        key->data = found[0]->value.data;
        key->len = found[0]->value.len;
        return NGX_OK;
    }

    h = r->headers_in.authorization;

    if (h && tp_key_from_bearer(h->value.data, h->value.len, &v, &len) == 0) {
        key->data = (u_char *) v;
        key->len = len;
        return NGX_OK;
    }

    for (best = 1; best < 3; best++) {
        if (found[best]) {
            key->data = found[best]->value.data;
            key->len = found[best]->value.len;
            return NGX_OK;
        }
    }

    if (r->args.len
        && tp_args_get(r->args.data, r->args.len, "key", &v, &len) == 0)
    {
        p = ngx_pnalloc(r->pool, len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        key->data = p;
        key->len = tp_args_unescape(v, len, p);

        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * Whatever the proxy configuration says, the client's key goes no
 * further: the headers that may carry it leave the request, and so does
 * the "key" argument (ctx->args is what $trueport_upstream_url uses).
 * Cookies are the gateway's domain's, never the provider's; the account
 * headers go only with the tenant's own credential; the hop header is
 * replaced with the gateway's own (ngx_http_trueport_hop.c).
 */

static ngx_int_t
ngx_http_trueport_scrub(ngx_http_request_t *r, ngx_http_trueport_ctx_t *ctx)
{
    ngx_uint_t        i, n, drop;
    ngx_list_t        headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    if (ctx->args.data != r->args.data || ctx->args.len != r->args.len) {
        r->args = ctx->args;
        r->valid_unparsed_uri = 0;
    }

    r->headers_in.authorization = NULL;

    if (ngx_list_init(&headers, r->pool, 20, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        drop = (h[i].key.len == sizeof("authorization") - 1
                && ngx_strncmp(h[i].lowcase_key, "authorization",
                               sizeof("authorization") - 1) == 0)
               || (h[i].key.len == sizeof("cookie") - 1
                   && ngx_strncmp(h[i].lowcase_key, "cookie",
                                  sizeof("cookie") - 1) == 0)
               || ngx_http_trueport_hop_is(&h[i]);

        for (n = 0; !drop && ngx_http_trueport_client_keys[n].len; n++) {
            drop = (h[i].key.len == ngx_http_trueport_client_keys[n].len
                    && ngx_strncmp(h[i].lowcase_key,
                                   ngx_http_trueport_client_keys[n].data,
                                   h[i].key.len)
                       == 0);
        }

        for (n = 0; !drop && ctx->route_credential
                    && ngx_http_trueport_account_headers[n].len; n++)
        {
            drop = (h[i].key.len == ngx_http_trueport_account_headers[n].len
                    && ngx_strncmp(h[i].lowcase_key,
                                   ngx_http_trueport_account_headers[n].data,
                                   h[i].key.len)
                       == 0);
        }

        if (drop) {
            continue;
        }

        nh = ngx_list_push(&headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    if (ngx_http_trueport_hop_header(ctx, &headers) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_in.headers = headers;

    return NGX_OK;
}


/*
 * Sends the error in the provider's shape and finalizes the request; the
 * client's body, unread yet, is discarded.
 */

ngx_int_t
ngx_http_trueport_error(ngx_http_request_t *r, ngx_http_trueport_ctx_t *ctx,
    ngx_uint_t err, ngx_str_t *msg)
{
    u_char                         *p;
    size_t                          size;
    ngx_int_t                       rc;
    ngx_str_t                       json, rid, value;
    ngx_uint_t                      i;
    ngx_http_variable_value_t      *vv;
    ngx_http_trueport_error_t      *e;
    ngx_http_trueport_main_conf_t  *tmcf;

    e = &ngx_http_trueport_errors[err];

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    ngx_str_null(&rid);

    vv = ngx_http_get_indexed_variable(r, tmcf->request_id_index);

    if (vv && !vv->not_found) {
        rid.data = vv->data;
        rid.len = vv->len;
    }

    /* the longest of the three shapes, Google's */

    size = sizeof("{\"error\":{\"code\":,\"message\":\"\",\"status\":\"\","
                  "\"details\":[{\"@type\":\"type.googleapis.com/"
                  "google.rpc.ErrorInfo\",\"reason\":\"\","
                  "\"domain\":\"trueport\"}]}}\n")
           + sizeof("\"request_id\":\"\"") + rid.len
           + NGX_INT_T_LEN + msg->len + 2 * e->code.len
           + e->openai_type.len + e->anthropic_type.len
           + e->google_status.len;

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json.data = p;

    switch (ctx->provider) {

    case TP_ANTHROPIC:
        p = ngx_sprintf(p, "{\"type\":\"error\",\"error\":{\"type\":\"%V\","
                           "\"message\":\"%V\"},\"request_id\":\"%V\"}\n",
                        &e->anthropic_type, msg, &rid);
        break;

    case TP_GOOGLE:
        p = ngx_sprintf(p, "{\"error\":{\"code\":%ui,\"message\":\"%V\","
                           "\"status\":\"%V\",\"details\":[{\"@type\":"
                           "\"type.googleapis.com/google.rpc.ErrorInfo\","
                           "\"reason\":\"",
                        e->status, msg, &e->google_status);

        for (i = 0; i < e->code.len; i++) {
            *p++ = ngx_toupper(e->code.data[i]);
        }

        p = ngx_sprintf(p, "\",\"domain\":\"trueport\"}]}}\n");
        break;

    default: /* TP_OPENAI, TP_AZURE */
        p = ngx_sprintf(p, "{\"error\":{\"message\":\"%V\",\"type\":\"%V\","
                           "\"param\":null,\"code\":\"%V\"}}\n",
                        msg, &e->openai_type, &e->code);
    }

    json.len = p - json.data;

    if (e->status == NGX_HTTP_TOO_MANY_REQUESTS) {
        value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* whole seconds, rounded up: the client must not come back early */

        value.len = ngx_sprintf(value.data, "%M",
                                ngx_max((ctx->rl_retry + 999) / 1000, 1))
                    - value.data;

        if (ngx_http_trueport_add_header(r, &ngx_http_trueport_retry_after,
                                         &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (e->status == 508) {
        /* nginx has no reason phrase of its own for it */
        ngx_str_set(&r->headers_out.status_line, "508 Loop Detected");
    }

    rc = ngx_http_trueport_send_json(r, e->status, &json);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}
