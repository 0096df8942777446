
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


/*
 * The loop guard.  An endpoint that names the gateway itself (a tenant's,
 * where the operator's allowlist lets it, or an operator's mistake) sends
 * every request round again, each turn holding a connection and a slot
 * of the tenant's limits.  Every request the gateway sends upstream
 * carries X-TruePort-Hop: the ids of the TruePort gateways it has passed,
 * this one's last; a request that arrives with this gateway's id in it
 * has come round and is refused, and so is one that has passed more
 * gateways than any chain an operator builds.
 *
 * The id is the SipHash of a fixed string under the zone's secret: the
 * same in every worker and across reloads, another one in each install
 * (so that two gateways may be chained), and it tells nothing about the
 * secret itself.
 */


#define NGX_HTTP_TRUEPORT_HOP_ID_LEN  16
#define NGX_HTTP_TRUEPORT_HOP_MAX     8


#define ngx_http_trueport_hop_hex(c)                                        \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f')               \
     || ((c) >= 'A' && (c) <= 'F'))


static ngx_str_t  ngx_http_trueport_hop_name = ngx_string("X-TruePort-Hop");
static u_char     ngx_http_trueport_hop_lc[] = "x-trueport-hop";


/*
 * NGX_OK and ctx->hop set to what goes upstream, NGX_DECLINED: the
 * request has been here before (or through too many gateways).
 */

ngx_int_t
ngx_http_trueport_hop_check(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    u_char                         *buf, *q, *p, *s, *last;
    u_char                          id[NGX_HTTP_TRUEPORT_HOP_ID_LEN];
    ngx_uint_t                      i, n;
    ngx_list_part_t                *part;
    ngx_table_elt_t                *h;
    ngx_http_trueport_zone_t       *zone;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);
    zone = tmcf->shm_zone->data;

    ngx_sprintf(id, "%016uxL",
                tp_siphash24(zone->sh->hash_key, "trueport loop guard",
                             sizeof("trueport loop guard") - 1));

    buf = ngx_pnalloc(r->pool,
                      NGX_HTTP_TRUEPORT_HOP_MAX
                      * (NGX_HTTP_TRUEPORT_HOP_ID_LEN + sizeof(", ") - 1));
    if (buf == NULL) {
        return NGX_ERROR;
    }

    q = buf;
    n = 0;

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

        if (!ngx_http_trueport_hop_is(&h[i])) {
            continue;
        }

        /* ids separated by commas and blanks; anything else is dropped */

        s = h[i].value.data;
        last = s + h[i].value.len;

        while (s < last) {

            while (s < last && (*s == ',' || *s == ' ' || *s == '\t')) {
                s++;
            }

            for (p = s; p < last && ngx_http_trueport_hop_hex(*p); p++) {
                /* void */
            }

            if (p - s != NGX_HTTP_TRUEPORT_HOP_ID_LEN
                || (p < last && *p != ',' && *p != ' ' && *p != '\t'))
            {
                while (p < last && *p != ',' && *p != ' ' && *p != '\t') {
                    p++;
                }

                s = p;
                continue;
            }

            if (ngx_strncasecmp(s, id, NGX_HTTP_TRUEPORT_HOP_ID_LEN) == 0) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "trueport: request loop: the request has "
                              "passed this gateway before (%V: \"%V\")",
                              &ngx_http_trueport_hop_name, &h[i].value);
                return NGX_DECLINED;
            }

            if (++n >= NGX_HTTP_TRUEPORT_HOP_MAX) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "trueport: request loop: the request has "
                              "passed %d gateways or more",
                              NGX_HTTP_TRUEPORT_HOP_MAX);
                return NGX_DECLINED;
            }

            q = ngx_cpymem(q, s, NGX_HTTP_TRUEPORT_HOP_ID_LEN);
            *q++ = ',';
            *q++ = ' ';

            s = p;
        }
    }

    q = ngx_cpymem(q, id, NGX_HTTP_TRUEPORT_HOP_ID_LEN);

    ctx->hop.data = buf;
    ctx->hop.len = q - buf;

    return NGX_OK;
}


/* is h the hop header (which the gateway replaces with its own) */

ngx_uint_t
ngx_http_trueport_hop_is(ngx_table_elt_t *h)
{
    return h->key.len == sizeof(ngx_http_trueport_hop_lc) - 1
           && ngx_strncmp(h->lowcase_key, ngx_http_trueport_hop_lc,
                          h->key.len)
              == 0;
}


/* the gateway's own hop header, into the headers that go upstream */

ngx_int_t
ngx_http_trueport_hop_header(ngx_http_trueport_ctx_t *ctx,
    ngx_list_t *headers)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key = ngx_http_trueport_hop_name;
    h->lowcase_key = ngx_http_trueport_hop_lc;
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);
    h->value = ctx->hop;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}
