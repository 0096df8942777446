
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


/*
 * Every response of a gateway location, the proxied ones and the errors
 * the gateway raises, carries the request id, and once the key is known
 * the limiter's figures; the upstream's own x-ratelimit-*-requests (the
 * operator's account, not the key) are replaced by them.
 */


static ngx_int_t ngx_http_trueport_header_filter(ngx_http_request_t *r);
static void ngx_http_trueport_hide_headers(ngx_http_request_t *r);


static ngx_str_t  ngx_http_trueport_request_id =
    ngx_string("x-trueport-request-id");

static ngx_str_t  ngx_http_trueport_rl_headers[] = {
    ngx_string("x-ratelimit-limit-requests"),
    ngx_string("x-ratelimit-remaining-requests"),
    ngx_string("x-ratelimit-reset-requests")
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


ngx_int_t
ngx_http_trueport_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_trueport_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_header_filter(ngx_http_request_t *r)
{
    u_char                         *p;
    ngx_str_t                       value;
    ngx_http_trueport_ctx_t        *ctx;
    ngx_http_variable_value_t      *vv;
    ngx_http_trueport_loc_conf_t   *tlcf;
    ngx_http_trueport_main_conf_t  *tmcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_trueport_module);

    if (ctx == NULL) {
        tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

        if (tlcf->provider == NGX_HTTP_TRUEPORT_OFF) {
            return ngx_http_next_header_filter(r);
        }
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    vv = ngx_http_get_indexed_variable(r, tmcf->request_id_index);

    if (vv && !vv->not_found) {
        value.data = vv->data;
        value.len = vv->len;

        if (ngx_http_trueport_add_header(r, &ngx_http_trueport_request_id,
                                         &value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ctx == NULL || !ctx->rl) {
        return ngx_http_next_header_filter(r);
    }

    ngx_http_trueport_hide_headers(r);

    p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN + 32);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%ui", ctx->rl_limit) - p;
    p += value.len;

    if (ngx_http_trueport_add_header(r, &ngx_http_trueport_rl_headers[0],
                                     &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%ui", ctx->rl_remaining) - p;
    p += value.len;

    if (ngx_http_trueport_add_header(r, &ngx_http_trueport_rl_headers[1],
                                     &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_http_trueport_duration(p, ctx->rl_reset) - p;

    if (ngx_http_trueport_add_header(r, &ngx_http_trueport_rl_headers[2],
                                     &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static void
ngx_http_trueport_hide_headers(ngx_http_request_t *r)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
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

        if (h[i].hash == 0) {
            continue;
        }

        for (n = 0; n < 3; n++) {
            if (h[i].key.len == ngx_http_trueport_rl_headers[n].len
                && ngx_strncasecmp(h[i].key.data,
                                   ngx_http_trueport_rl_headers[n].data,
                                   h[i].key.len)
                   == 0)
            {
                h[i].hash = 0;
                break;
            }
        }
    }
}
