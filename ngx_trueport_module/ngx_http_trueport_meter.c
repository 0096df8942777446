
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


/*
 * Metering: the body filter feeds a copy of every response of a gateway
 * location to the usage parser as it passes (never holding it back), and
 * the log phase writes one usage record per request to the worker's spool
 * file, which the sidecar ingests.
 */


/* free lists by size class, 16 bytes .. 64 MB */
#define NGX_HTTP_TRUEPORT_METER_CLASSES  23
#define NGX_HTTP_TRUEPORT_METER_HDR      16


struct ngx_http_trueport_meter_s {
    tp_alloc_t                   alloc;
    ngx_pool_t                  *pool;
    void                        *free[NGX_HTTP_TRUEPORT_METER_CLASSES];
    tp_usage_t                  *usage;

    unsigned                     stream:1;
    unsigned                     gzip:1;
    unsigned                     last_buf:1;
};


static ngx_int_t ngx_http_trueport_meter_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_trueport_meter_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_trueport_meter_log_handler(ngx_http_request_t *r);
static void *ngx_http_trueport_meter_alloc(void *ctx, size_t n);
static void *ngx_http_trueport_meter_realloc(void *ctx, void *p, size_t n);
static void ngx_http_trueport_meter_free(void *ctx, void *p);
static void ngx_http_trueport_meter_cleanup(void *data);
static const char *ngx_http_trueport_meter_cstr(ngx_pool_t *pool, u_char *s,
    size_t len);
static const char *ngx_http_trueport_meter_request_model(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

ngx_int_t
ngx_http_trueport_meter_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_trueport_module);

    if (tmcf->spool.len == 0) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_trueport_meter_log_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_trueport_meter_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_trueport_meter_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_meter_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                   *ct;
    ngx_table_elt_t             *ce;
    ngx_pool_cleanup_t          *cln;
    ngx_http_trueport_ctx_t     *ctx;
    ngx_http_trueport_meter_t   *m;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_trueport_module);

    if (ctx == NULL || !ctx->passed || ctx->meter != NULL
        || ctx->provider >= TP_PROVIDERS)
    {
        return ngx_http_next_header_filter(r);
    }

    m = ngx_pcalloc(r->pool, sizeof(ngx_http_trueport_meter_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    m->pool = r->pool;
    m->alloc.alloc = ngx_http_trueport_meter_alloc;
    m->alloc.realloc = ngx_http_trueport_meter_realloc;
    m->alloc.free = ngx_http_trueport_meter_free;
    m->alloc.ctx = m;

    ct = &r->headers_out.content_type;

    m->stream = (ct->len >= sizeof("text/event-stream") - 1
                 && ngx_strncasecmp(ct->data, (u_char *) "text/event-stream",
                                    sizeof("text/event-stream") - 1)
                    == 0);

    ce = r->headers_out.content_encoding;

    m->gzip = (ce != NULL && ce->hash != 0
               && ce->value.len == 4
               && ngx_strncasecmp(ce->value.data, (u_char *) "gzip", 4) == 0);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    m->usage = tp_usage_create(&m->alloc, (int) ctx->provider, m->stream,
                               m->gzip);

    /* zlib's state is freed with the request */

    cln->handler = ngx_http_trueport_meter_cleanup;
    cln->data = m;

    ctx->meter = m;

    /* no body will follow, nor its last buffer */

    m->last_buf = r->header_only;

    /* a response the proxy buffered to a file is read back for us */

    r->filter_need_in_memory = 1;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_trueport_meter_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                  *b;
    ngx_chain_t                *cl;
    ngx_http_trueport_ctx_t    *ctx;
    ngx_http_trueport_meter_t  *m;

    if (in == NULL || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_trueport_module);

    if (ctx == NULL || ctx->meter == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    m = ctx->meter;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last_buf) {
            m->last_buf = 1;
        }

        if (ngx_buf_in_memory(b)) {
            tp_usage_feed(m->usage, b->pos, b->last - b->pos);

        } else if (b->in_file) {
            /* cannot happen with filter_need_in_memory; not parsed */
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "trueport meter: file buffer not metered");
        }
    }

    return ngx_http_next_body_filter(r, in);
}


static ngx_int_t
ngx_http_trueport_meter_log_handler(ngx_http_request_t *r)
{
    size_t                          len;
    ngx_uint_t                      status;
    ngx_time_t                     *tp;
    ngx_connection_t               *c;
    tp_usage_rec_t                  rec;
    ngx_http_trueport_ctx_t        *ctx;
    ngx_http_variable_value_t      *vv;
    ngx_http_trueport_meter_t      *m;
    ngx_http_trueport_main_conf_t  *tmcf;
    ngx_str_t                       id;
    u_char                          idbuf[TP_SPOOL_AGG_ID];
    char                            line[TP_RECORD_MAX];

    if (!ngx_http_trueport_spool_active()) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_trueport_module);

    /* a refused request is recorded only when its key is known */

    if (ctx == NULL || ctx->provider >= TP_PROVIDERS
        || ctx->key.key_id[0] == '\0' || ctx->key.tenant_id[0] == '\0')
    {
        return NGX_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);
    c = r->connection;
    m = ctx->meter;
    tp = ngx_timeofday();

    ngx_memzero(&rec, sizeof(tp_usage_rec_t));

    rec.ts_ms = (int64_t) r->start_sec * 1000 + r->start_msec;

    vv = ngx_http_get_indexed_variable(r, tmcf->request_id_index);

    if (vv && !vv->not_found) {
        rec.request_id = ngx_http_trueport_meter_cstr(r->pool, vv->data,
                                                      vv->len);
    }

    rec.tenant_id = ngx_http_trueport_meter_cstr(r->pool, ctx->key.tenant_id,
                                                 TP_UUID_LEN);
    rec.key_id = ngx_http_trueport_meter_cstr(r->pool, ctx->key.key_id,
                                              TP_UUID_LEN);

    if (ctx->key.env.len) {
        rec.env = ngx_http_trueport_meter_cstr(r->pool, ctx->key.env.data,
                                               ctx->key.env.len);
    }

    if (rec.tenant_id == NULL || rec.key_id == NULL) {
        return NGX_OK;
    }

    rec.provider = (int) ctx->provider;
    rec.model = NULL;
    rec.path = (const char *) r->uri.data;
    rec.path_len = r->uri.len;

    /* as $status has it */

    if (r->err_status) {
        status = r->err_status;

    } else {
        status = r->headers_out.status;
    }

    rec.status = (int) status;

    if (m != NULL && m->usage != NULL) {
        rec.stream = m->stream;
        tp_usage_result(m->usage, &rec.usage);

    } else {
        rec.usage.input_tokens = -1;
        rec.usage.output_tokens = -1;
        rec.usage.cached_tokens = -1;
        rec.usage.reasoning_tokens = -1;
        rec.usage.total_tokens = -1;
    }

    /* the model actually used is the response's; else the request's */

    if (rec.usage.model[0] == '\0') {
        rec.model = ngx_http_trueport_meter_request_model(r, ctx);
    }

    rec.ttfb_ms = -1;

    if (r->upstream && r->upstream->state
        && r->upstream->state->header_time != (ngx_msec_t) -1)
    {
        rec.ttfb_ms = r->upstream->state->header_time;
    }

    rec.latency_ms = ((int64_t) tp->sec - r->start_sec) * 1000
                     + ((int64_t) tp->msec - r->start_msec);
    if (rec.latency_ms < 0) {
        rec.latency_ms = 0;
    }

    rec.bytes_in = r->request_length;
    rec.bytes_out = c->sent;
    rec.client_ip = ngx_http_trueport_meter_cstr(r->pool, c->addr_text.data,
                                                 c->addr_text.len);

    /* a refusal is whole when sent; a proxied answer when its end was */

    rec.completed = !c->error && (m == NULL || m->last_buf);

    if (c->error || status == NGX_HTTP_CLIENT_CLOSED_REQUEST) {
        rec.error_kind = "client_abort";

    } else if (ctx->blocked) {
        rec.error_kind = "policy";

    } else if (!ctx->passed) {
        rec.error_kind = (status == NGX_HTTP_TOO_MANY_REQUESTS)
                         ? "rate_limited"
                         : (status == NGX_HTTP_UNAUTHORIZED
                            || status == NGX_HTTP_FORBIDDEN)
                           ? "auth" : "gateway";

    } else if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR
               || (m != NULL && !m->last_buf))
    {
        rec.error_kind = "upstream_error";
    }

    len = tp_record_usage(line, sizeof(line), &rec);

    if (len == 0) {
        return NGX_OK;
    }

    /*
     * Refused before going upstream (a 429, a disabled key, no route or
     * credential): free to send, so bounded by the spool's cap, per key,
     * kind, provider and status.  What went upstream, and a policy's
     * block with its violations, is always written: the limiter bounds it.
     */

    if (!ctx->passed && !ctx->blocked) {
        id.data = idbuf;
        id.len = ngx_snprintf(idbuf, sizeof(idbuf), "%*s/%s/%ui/%ui",
                              (size_t) TP_UUID_LEN, ctx->key.key_id,
                              rec.error_kind ? rec.error_kind : "-",
                              ctx->provider, status)
                 - idbuf;

        (void) ngx_http_trueport_spool_refusal(c->log, &id, line, len);

        return NGX_OK;
    }

    (void) ngx_http_trueport_spool_append(c->log, line, len);

    return NGX_OK;
}


/*
 * The model a request asked for, when its response named none (an error,
 * a cut-off stream): Gemini's paths and Azure's deployments name it in
 * the URL, the others in the body's top-level "model".  A body nginx
 * wrote to a temp file is read back in blocks; this runs only for such
 * answers, never on the success path.
 */

#define NGX_HTTP_TRUEPORT_MODEL_READ  (1024 * 1024)

static const char *
ngx_http_trueport_meter_request_model(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    off_t                 off, total;
    u_char               *p, *q, *last;
    ssize_t               n;
    ngx_buf_t            *b;
    ngx_chain_t          *cl;
    tp_model_scan_t       scan;
    const char           *model;
    u_char                block[4096];

    if (ctx->deployment.len && ctx->deployment.len < TP_MODEL_MAX) {
        return ngx_http_trueport_meter_cstr(r->pool, ctx->deployment.data,
                                            ctx->deployment.len);
    }

    /* Gemini: .../models/<model>:<method> */

    p = (ctx->provider == TP_GOOGLE)
        ? ngx_strnstr(r->uri.data, "/models/", r->uri.len) : NULL;

    if (p != NULL) {
        p += sizeof("/models/") - 1;
        last = r->uri.data + r->uri.len;

        for (q = p; q < last && *q != ':' && *q != '/'; q++) {
            /* void */
        }

        if (q > p && q - p < TP_MODEL_MAX) {
            return ngx_http_trueport_meter_cstr(r->pool, p, q - p);
        }
    }

    if (r->request_body == NULL) {
        return NULL;
    }

    tp_model_scan_init(&scan);
    total = 0;

    for (cl = r->request_body->bufs; cl && !scan.done; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            if (ngx_buf_in_memory(b)) {
                tp_model_scan_feed(&scan, b->pos, b->last - b->pos);
            }

            continue;
        }

        for (off = b->file_pos;
             off < b->file_last && !scan.done
             && total < NGX_HTTP_TRUEPORT_MODEL_READ;
             off += n, total += n)
        {
            n = ngx_read_file(b->file, block,
                              ngx_min((off_t) sizeof(block),
                                      b->file_last - off),
                              off);
            if (n <= 0) {
                return NULL;
            }

            tp_model_scan_feed(&scan, block, n);
        }
    }

    model = tp_model_scan_result(&scan);

    if (model == NULL) {
        return NULL;
    }

    return ngx_http_trueport_meter_cstr(r->pool, (u_char *) model,
                                        ngx_strlen(model));
}


/*
 * The parser makes a fresh yajl handle for every SSE event; blocks freed
 * go back to a list of their size class and are reused, so a stream of any
 * length holds what one event needs, not what all of them needed.
 */

static void *
ngx_http_trueport_meter_alloc(void *ctx, size_t n)
{
    ngx_http_trueport_meter_t *m = ctx;

    u_char      *p;
    size_t       size;
    ngx_uint_t   cls;

    for (cls = 0, size = 16; size < n; cls++, size <<= 1) {
        /* void */
    }

    if (cls >= NGX_HTTP_TRUEPORT_METER_CLASSES) {
        return NULL;
    }

    if (m->free[cls] != NULL) {
        p = m->free[cls];
        m->free[cls] = *(void **) p;
        return p;
    }

    p = ngx_palloc(m->pool, NGX_HTTP_TRUEPORT_METER_HDR + size);
    if (p == NULL) {
        return NULL;
    }

    *(ngx_uint_t *) p = cls;

    return p + NGX_HTTP_TRUEPORT_METER_HDR;
}


static void *
ngx_http_trueport_meter_realloc(void *ctx, void *p, size_t n)
{
    void        *np;
    size_t       size;
    ngx_uint_t   cls;

    if (p == NULL) {
        return ngx_http_trueport_meter_alloc(ctx, n);
    }

    cls = *(ngx_uint_t *) ((u_char *) p - NGX_HTTP_TRUEPORT_METER_HDR);
    size = (size_t) 16 << cls;

    if (n <= size) {
        return p;
    }

    np = ngx_http_trueport_meter_alloc(ctx, n);
    if (np == NULL) {
        return NULL;
    }

    ngx_memcpy(np, p, size);
    ngx_http_trueport_meter_free(ctx, p);

    return np;
}


static void
ngx_http_trueport_meter_free(void *ctx, void *p)
{
    ngx_http_trueport_meter_t *m = ctx;

    ngx_uint_t  cls;

    if (p == NULL) {
        return;
    }

    cls = *(ngx_uint_t *) ((u_char *) p - NGX_HTTP_TRUEPORT_METER_HDR);

    *(void **) p = m->free[cls];
    m->free[cls] = p;
}


static void
ngx_http_trueport_meter_cleanup(void *data)
{
    ngx_http_trueport_meter_t *m = data;

    if (m->usage != NULL) {
        tp_usage_destroy(m->usage);
        m->usage = NULL;
    }
}


static const char *
ngx_http_trueport_meter_cstr(ngx_pool_t *pool, u_char *s, size_t len)
{
    u_char  *p;

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len);
    p[len] = '\0';

    return (const char *) p;
}
