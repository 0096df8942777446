
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"

#include <openssl/rand.h>


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

/* $trueport_request_id: ngx_http_trueport_request_id_variable() */
static uint64_t  ngx_http_trueport_rid_prefix;
static uint64_t  ngx_http_trueport_rid_key;
static uint64_t  ngx_http_trueport_rid_seq;


ngx_int_t
ngx_http_trueport_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_trueport_header_filter;

    return NGX_OK;
}


/*
 * $trueport_request_id: 32 hex digits like $request_id, without its
 * RAND_bytes() per request (a lock and a DRBG round, 5% of a worker's time
 * at 20k req/s).  The first half is random per worker process, the second
 * a per-worker counter through splitmix64's finaliser, a bijection keyed by
 * a random offset: unique within the worker, unrelated across workers and
 * restarts, and it does not reveal how many requests were served.
 */

ngx_int_t
ngx_http_trueport_request_id_init(ngx_cycle_t *cycle)
{
    uint64_t  seed[2];

    if (RAND_bytes((u_char *) seed, sizeof(seed)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "trueport: RAND_bytes() failed for request ids");
        return NGX_ERROR;
    }

    ngx_http_trueport_rid_prefix = seed[0];
    ngx_http_trueport_rid_key = seed[1];
    ngx_http_trueport_rid_seq = 0;

    return NGX_OK;
}


static u_char *
ngx_http_trueport_hex64(u_char *p, uint64_t v)
{
    static u_char  hex[] = "0123456789abcdef";
    ngx_uint_t     i;

    for (i = 16; i-- > 0; v >>= 4) {
        p[i] = hex[v & 0xf];
    }

    return p + 16;
}


ngx_int_t
ngx_http_trueport_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char    *p;
    uint64_t   x;

    p = ngx_pnalloc(r->pool, 32);
    if (p == NULL) {
        return NGX_ERROR;
    }

    x = ngx_http_trueport_rid_key + ngx_http_trueport_rid_seq++;

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;

    ngx_http_trueport_hex64(p, ngx_http_trueport_rid_prefix);
    ngx_http_trueport_hex64(p + 16, x);

    v->len = 32;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

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
