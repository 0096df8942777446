
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


/*
 * Gemini's SDK may send the client's key as "?key=", and the request line
 * is what $request in the access log and the request context of every
 * error log line print.  In a server with a gateway location the request
 * line is replaced, in the post-read phase, by a copy with the value of
 * each "key" argument redacted: before nginx refuses a body for
 * client_max_body_size or a location's first log line.  The log phase
 * does it again, first of its handlers, for a request nginx ended while
 * it still read the headers.  r->args and the URI keep the key: the
 * access phase reads it there and strips it from what goes upstream.
 */


#define NGX_HTTP_TRUEPORT_REDACTED  "[redacted]"


static ngx_int_t ngx_http_trueport_redact_handler(ngx_http_request_t *r);


ngx_int_t
ngx_http_trueport_redact_init(ngx_conf_t *cf)
{
    ngx_uint_t                  n;
    ngx_array_t                *a;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_trueport_redact_handler;

    /* ahead of the access log's handler, which was added before */

    a = &cmcf->phases[NGX_HTTP_LOG_PHASE].handlers;

    h = ngx_array_push(a);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h = a->elts;
    n = a->nelts - 1;

    ngx_memmove(&h[1], &h[0], n * sizeof(ngx_http_handler_pt));
    h[0] = ngx_http_trueport_redact_handler;

    return NGX_OK;
}


/* a "trueport_gateway" location marks its server's configuration */

void
ngx_http_trueport_redact_server(ngx_conf_t *cf)
{
    ngx_http_core_srv_conf_t      *cscf;
    ngx_http_trueport_loc_conf_t  *slcf;

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    slcf = cscf->ctx->loc_conf[ngx_http_trueport_module.ctx_index];

    slcf->redact = 1;
}


static ngx_int_t
ngx_http_trueport_redact_handler(ngx_http_request_t *r)
{
    u_char                        *p, *q, *args, *last;
    size_t                         len;
    ngx_str_t                     *line;
    ngx_http_core_srv_conf_t      *cscf;
    ngx_http_trueport_loc_conf_t  *slcf;

    line = &r->request_line;

    if (r != r->main || r->args.len == 0 || line->len == 0) {
        return NGX_DECLINED;
    }

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
    slcf = cscf->ctx->loc_conf[ngx_http_trueport_module.ctx_index];

    if (!slcf->redact) {
        return NGX_DECLINED;
    }

    last = line->data + line->len;

    if (r->args.data >= line->data && r->args.data + r->args.len <= last) {
        args = r->args.data;

    } else {
        /*
         * HTTP/2 builds the request line from the path: its first '?'
         * starts the arguments.  A line that no longer holds r->args
         * verbatim was redacted already.
         */

        p = ngx_strlchr(line->data, last, '?');

        if (p == NULL
            || (size_t) (last - p - 1) < r->args.len
            || ngx_memcmp(p + 1, r->args.data, r->args.len) != 0)
        {
            return NGX_DECLINED;
        }

        args = p + 1;
    }

    len = tp_args_redact(args, r->args.len, "key", NGX_HTTP_TRUEPORT_REDACTED,
                         NULL);
    if (len == 0) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, line->len - r->args.len + len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = ngx_cpymem(p, line->data, args - line->data);
    q += tp_args_redact(args, r->args.len, "key", NGX_HTTP_TRUEPORT_REDACTED,
                        q);
    q = ngx_cpymem(q, args + r->args.len, last - args - r->args.len);

    line->data = p;
    line->len = q - p;

    return NGX_DECLINED;
}
