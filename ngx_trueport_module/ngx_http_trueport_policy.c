
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <uuid/uuid.h>
#include "ngx_http_trueport.h"


/*
 * Policy enforcement, once the key's checks have passed.  Each worker keeps
 * the tenants' compiled rule sets; a key whose policy_revision is newer
 * than the worker's set has the rules loaded with a subrequest first.  Only
 * when a rule applies to the key is the body read (as the mirror module
 * reads it), its prompt extracted and evaluated: a block is refused in the
 * provider's shape, a redaction rewrites the body, a log match lets it
 * through; every match becomes a violation record in the spool.
 *
 * The gateway fails closed: rules that cannot be loaded or compiled refuse
 * the tenant's requests with 503, a body on an endpoint the prompt
 * extraction does not understand (tp_prompt_endpoint) with 400, a block or
 * redact rule whose evaluation could not finish (a regex out of its
 * limits or its time) with 403 policy_unavailable, and an evaluation that
 * runs out of memory with 500.  A tenant whose revision is 0 never had a
 * rule and costs nothing.
 *
 * Compilation runs under the budgets of trueport_policy_budget (the
 * engine counts what a set costs and stops before the allocation that
 * would exceed one), so one tenant's rules cost a worker a few ms at most.
 * A set that cannot be compiled is cached as unusable at its revision:
 * the tenant's requests are refused without compiling it again until its
 * rules change.  The cache holds the memory its sets really allocated, at
 * most trueport_policy_cache bytes per worker; beyond that the least
 * recently used tenants' sets are dropped (and loaded again when needed).
 */


#define NGX_HTTP_TRUEPORT_POLICY_START    0
#define NGX_HTTP_TRUEPORT_POLICY_LOADING  1
#define NGX_HTTP_TRUEPORT_POLICY_READING  2
#define NGX_HTTP_TRUEPORT_POLICY_DONE     3

/* ctx->policy_err after an internal failure: 500 */
#define NGX_HTTP_TRUEPORT_POLICY_FAILED   ((ngx_uint_t) -2)

#define NGX_HTTP_TRUEPORT_ALLOC_HDR       16
#define NGX_HTTP_TRUEPORT_UUID_STR        (TP_UUID_LEN + 1)


/*
 * A compiled rule set with the pool it lives in.  The cache holds one
 * reference and every request evaluating it another, so a set replaced by
 * a newer revision lives on until the last request using it is done.
 */

/* a pool for tp_alloc_t, and the bytes taken from it */

typedef struct {
    ngx_pool_t                  *pool;
    size_t                       bytes;
} ngx_http_trueport_policy_mem_t;


struct ngx_http_trueport_policy_set_s {
    tp_policy_set_t             *set;        /* NULL: unusable at revision */
    tp_alloc_t                   alloc;
    ngx_http_trueport_policy_mem_t  mem;
    uint64_t                     revision;
    ngx_uint_t                   refs;
    size_t                       bytes;      /* what the cache counts */
};


typedef struct {
    ngx_str_node_t                   sn;         /* str: the tenant id */
    ngx_queue_t                      lru;
    u_char                           tenant_id[TP_UUID_LEN];
    ngx_http_trueport_policy_set_t  *current;
} ngx_http_trueport_policy_node_t;


static ngx_int_t ngx_http_trueport_policy_lookup(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
static ngx_int_t ngx_http_trueport_policy_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_trueport_policy_loaded(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
static ngx_http_trueport_policy_node_t *ngx_http_trueport_policy_find(
    u_char *tenant_id);
static ngx_http_trueport_policy_set_t *ngx_http_trueport_policy_compile(
    ngx_http_request_t *r, u_char *tenant_id, ngx_str_t *json,
    uint64_t revision);
static ngx_int_t ngx_http_trueport_policy_store(ngx_http_request_t *r,
    ngx_http_trueport_policy_node_t *node, u_char *tenant_id,
    ngx_http_trueport_policy_set_t *ps);
static ngx_int_t ngx_http_trueport_policy_use(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_http_trueport_policy_node_t *node);
static ngx_int_t ngx_http_trueport_policy_ref(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_http_trueport_policy_set_t *ps);
static void ngx_http_trueport_policy_release(void *data);
static void ngx_http_trueport_policy_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_trueport_policy_check(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx);
static ngx_int_t ngx_http_trueport_policy_body(ngx_http_request_t *r,
    size_t max, ngx_str_t *body);
static ngx_int_t ngx_http_trueport_policy_replace(ngx_http_request_t *r,
    const u_char *body, size_t len);
static ngx_int_t ngx_http_trueport_policy_ctx(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, tp_policy_ctx_t *pctx);
static void ngx_http_trueport_policy_record(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, tp_policy_ctx_t *pctx,
    const tp_violation_t *v, u_char *id);
static ngx_int_t ngx_http_trueport_policy_fail(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_uint_t err, const char *what,
    const char *detail, size_t detail_len);
static void *ngx_http_trueport_policy_alloc(void *ctx, size_t n);
static void *ngx_http_trueport_policy_realloc(void *ctx, void *p, size_t n);
static void ngx_http_trueport_policy_free(void *ctx, void *p);
static void ngx_http_trueport_policy_prompt_cleanup(void *data);


static ngx_str_t  ngx_http_trueport_policy_unavailable = ngx_string(
    "the gateway cannot load the organisation's policies right now, "
    "retry later");

static ngx_str_t  ngx_http_trueport_policy_unusable = ngx_string(
    "the organisation's policies cannot be compiled by the gateway (over "
    "its compile budget, or invalid); an administrator must change them");

static const char  ngx_http_trueport_policy_unsupported[] =
    "the organisation's policies apply to this request, and the gateway "
    "cannot check the body of this endpoint (policy_unsupported_endpoint): ";

static ngx_str_t  ngx_http_trueport_policy_header =
    ngx_string("X-TruePort-Violation-Id");


/* the worker's cache: tenant id -> current set, most recently used first */

static ngx_rbtree_t        ngx_http_trueport_policy_tree;
static ngx_rbtree_node_t   ngx_http_trueport_policy_sentinel;
static ngx_queue_t         ngx_http_trueport_policy_lru;
static size_t              ngx_http_trueport_policy_bytes;
static ngx_uint_t          ngx_http_trueport_policy_ready;


/*
 * The access phase after the key's checks, entered again after the rule
 * load and after the body is read.  NGX_OK: the request may go upstream
 * (ctx->passed); NGX_AGAIN / NGX_DONE: waiting; anything else: refused.
 */

ngx_int_t
ngx_http_trueport_policy(ngx_http_request_t *r, ngx_http_trueport_ctx_t *ctx)
{
    ngx_int_t                      rc;
    ngx_uint_t                     err;
    tp_policy_ctx_t                pctx;
    ngx_http_trueport_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

    switch (ctx->policy_state) {

    case NGX_HTTP_TRUEPORT_POLICY_START:

        if (tlcf->policy.len == 0 || ctx->key.policy_revision == 0) {
            goto pass;
        }

        rc = ngx_http_trueport_policy_lookup(r, ctx);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        break;

    case NGX_HTTP_TRUEPORT_POLICY_LOADING:

        rc = ngx_http_trueport_policy_loaded(r, ctx);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_trueport_error(r, ctx,
                                        NGX_HTTP_TRUEPORT_ERR_UNAVAILABLE,
                                        &ngx_http_trueport_policy_unavailable);
        }

        break;

    case NGX_HTTP_TRUEPORT_POLICY_READING:
        return NGX_AGAIN;

    default: /* NGX_HTTP_TRUEPORT_POLICY_DONE */

        err = ctx->policy_err;

        if (err == NGX_HTTP_TRUEPORT_POLICY_FAILED) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (err != NGX_HTTP_TRUEPORT_ERR_NONE) {
            return ngx_http_trueport_error(r, ctx, err, &ctx->policy_msg);
        }

        goto pass;
    }

    /* ctx->policy holds the tenant's set */

    if (ctx->policy->set == NULL) {
        return ngx_http_trueport_error(r, ctx,
                                       NGX_HTTP_TRUEPORT_ERR_UNAVAILABLE,
                                       &ngx_http_trueport_policy_unusable);
    }

    if (ngx_http_trueport_policy_ctx(r, ctx, &pctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (tp_policy_applicable(ctx->policy->set, &pctx) == 0) {
        goto pass;
    }

    /* a request without a body sends no prompt */

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        goto pass;
    }

    /*
     * fail closed: a body the prompt extraction does not understand
     * (uploads, batches of uploaded files ...) cannot be checked
     */

    if (tp_prompt_endpoint((int) ctx->provider, ctx->path.data, ctx->path.len)
        == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "trueport: policies apply and \"%V\" is not an "
                      "endpoint they can check", &ctx->path);

        return ngx_http_trueport_policy_fail(r, ctx,
                                   NGX_HTTP_TRUEPORT_ERR_UNSUPPORTED_ENDPOINT,
                                   ngx_http_trueport_policy_unsupported,
                                   (const char *) ctx->path.data,
                                   ctx->path.len);
    }

    if (r->headers_in.content_length_n > (off_t) tlcf->policy_max_body) {
        return ngx_http_trueport_policy_fail(r, ctx,
                                             NGX_HTTP_TRUEPORT_ERR_TOO_LARGE,
                                             NULL, NULL, 0);
    }

    ctx->policy_state = NGX_HTTP_TRUEPORT_POLICY_READING;
    ctx->policy_err = NGX_HTTP_TRUEPORT_ERR_NONE;

    rc = ngx_http_read_client_request_body(r,
                                       ngx_http_trueport_policy_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;

pass:

    ctx->passed = 1;

    /*
     * The upstream closes a body's temp file when it finishes; the meter
     * may read the request's model from it in the log phase.  The file is
     * already unlinked, so this only keeps its descriptor until the end.
     */

    r->main->preserve_body = 1;

    return NGX_OK;
}


/*
 * NGX_OK: ctx->policy is the cached set, recent enough for the key's
 * revision; NGX_AGAIN: a subrequest loads the rules.
 */

static ngx_int_t
ngx_http_trueport_policy_lookup(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    u_char                           *p;
    ngx_str_t                         args;
    ngx_http_request_t               *sr;
    ngx_http_post_subrequest_t       *ps;
    ngx_http_trueport_loc_conf_t     *tlcf;
    ngx_http_trueport_policy_node_t  *node;

    node = ngx_http_trueport_policy_find(ctx->key.tenant_id);

    if (node && node->current->revision >= ctx->key.policy_revision) {
        return ngx_http_trueport_policy_use(r, ctx, node);
    }

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

    args.len = sizeof("tenant_id=") - 1 + TP_UUID_LEN;
    args.data = ngx_pnalloc(r->pool, args.len);
    if (args.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(args.data, "tenant_id=", sizeof("tenant_id=") - 1);
    ngx_memcpy(p, ctx->key.tenant_id, TP_UUID_LEN);

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_trueport_policy_done;
    ps->data = ctx;

    if (ngx_http_subrequest(r, &tlcf->policy, &args, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* as for the key lookup: the load must not touch the client's body */

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_ERROR;
    }

    sr->headers_in.content_length_n = -1;
    sr->headers_in.chunked = 0;

    ctx->policy_sr = sr;
    ctx->policy_state = NGX_HTTP_TRUEPORT_POLICY_LOADING;
    ctx->waiting = 1;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_trueport_policy_done(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_http_trueport_ctx_t  *ctx = data;

    ctx->policy_sr_status = ngx_http_trueport_answer_of(r, rc,
                                                     &ctx->policy_sr_answer);
    ctx->waiting = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "trueport policy load done s:%ui", ctx->policy_sr_status);

    return rc;
}


/*
 * The load is done.  NGX_OK: ctx->policy is set; NGX_DECLINED: no usable
 * rules, the request is refused.
 */

static ngx_int_t
ngx_http_trueport_policy_loaded(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    u_char                           *p, *last;
    uint64_t                          revision;
    ngx_str_t                        *answer;
    ngx_http_trueport_policy_set_t   *ps;
    ngx_http_trueport_policy_node_t  *node;

    answer = &ctx->policy_sr_answer;

    if (ctx->policy_sr_status != NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "trueport: policy load \"%V?%V\" failed with status %ui",
                      &ctx->policy_sr->uri, &ctx->policy_sr->args,
                      ctx->policy_sr_status);
        return NGX_DECLINED;
    }

    /*
     * the rules are at least as recent as the key's revision; the answer's
     * own revision, when it says so, keeps the cache from loading again
     * for keys cached before the last change
     */

    revision = ctx->key.policy_revision;

    p = ngx_strnstr(answer->data, "\"revision\":", answer->len);

    if (p) {
        p += sizeof("\"revision\":") - 1;
        last = answer->data + answer->len;

        if (p < last && *p >= '0' && *p <= '9') {
            revision = 0;

            while (p < last && *p >= '0' && *p <= '9'
                   && revision < (UINT64_MAX - 9) / 10)
            {
                revision = revision * 10 + (*p++ - '0');
            }
        }
    }

    node = ngx_http_trueport_policy_find(ctx->key.tenant_id);

    if (node && node->current->revision >= revision) {
        /* another request of this worker loaded them meanwhile */
        return ngx_http_trueport_policy_use(r, ctx, node);
    }

    ps = ngx_http_trueport_policy_compile(r, ctx->key.tenant_id, answer,
                                          revision);
    if (ps == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_trueport_policy_store(r, node, ctx->key.tenant_id, ps)
        != NGX_OK)
    {
        ngx_http_trueport_policy_release(ps);
        return NGX_ERROR;
    }

    if (ps->set) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "trueport: policies of tenant %*s at revision %uL "
                      "loaded, %uz bytes compiled, %uz in memory",
                      (size_t) TP_UUID_LEN, ctx->key.tenant_id, revision,
                      tp_policy_size(ps->set), ps->bytes);
    }

    return ngx_http_trueport_policy_ref(r, ctx, ps);
}


static ngx_http_trueport_policy_node_t *
ngx_http_trueport_policy_find(u_char *tenant_id)
{
    ngx_str_t  name;

    if (!ngx_http_trueport_policy_ready) {
        return NULL;
    }

    name.data = tenant_id;
    name.len = TP_UUID_LEN;

    return (ngx_http_trueport_policy_node_t *)
               ngx_str_rbtree_lookup(&ngx_http_trueport_policy_tree, &name,
                                     ngx_crc32_short(tenant_id, TP_UUID_LEN));
}


/*
 * The set, or an unusable one (set NULL) when the rules are invalid or over
 * a budget: cached like a set, so they are not compiled again at that
 * revision.  NULL: out of memory, nothing to cache.
 */

static ngx_http_trueport_policy_set_t *
ngx_http_trueport_policy_compile(ngx_http_request_t *r, u_char *tenant_id,
    ngx_str_t *json, uint64_t revision)
{
    int                              code;
    char                             err[256];
    ngx_pool_t                      *pool;
    ngx_http_trueport_policy_set_t  *ps;
    ngx_http_trueport_main_conf_t   *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    ps = ngx_pcalloc(pool, sizeof(ngx_http_trueport_policy_set_t));
    if (ps == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    ps->mem.pool = pool;
    ps->revision = revision;
    ps->refs = 1;                       /* the cache's */

    ps->alloc.alloc = ngx_http_trueport_policy_alloc;
    ps->alloc.realloc = ngx_http_trueport_policy_realloc;
    ps->alloc.free = ngx_http_trueport_policy_free;
    ps->alloc.ctx = &ps->mem;

    ps->set = tp_policy_compile_limits(&ps->alloc, (const char *) json->data,
                                       json->len, &tmcf->policy_limits,
                                       &code, err, sizeof(err));

    if (ps->set == NULL) {
        ngx_log_error((ngx_uint_t) (code == TP_POLICY_ENOMEM ? NGX_LOG_ALERT
                                                             : NGX_LOG_ERR),
                      r->connection->log, 0,
                      "trueport: policies of tenant %*s at revision %uL not "
                      "usable: %s", (size_t) TP_UUID_LEN, tenant_id,
                      revision, err);

        if (code == TP_POLICY_ENOMEM) {
            ngx_destroy_pool(pool);
            return NULL;
        }
    }

    /* the pool's own block, and what the compilation kept of it */

    ps->bytes = NGX_DEFAULT_POOL_SIZE + ps->mem.bytes;

    return ps;
}


static ngx_int_t
ngx_http_trueport_policy_store(ngx_http_request_t *r,
    ngx_http_trueport_policy_node_t *node, u_char *tenant_id,
    ngx_http_trueport_policy_set_t *ps)
{
    ngx_queue_t                      *q;
    ngx_http_trueport_policy_node_t  *old;
    ngx_http_trueport_main_conf_t    *tmcf;

    if (!ngx_http_trueport_policy_ready) {
        ngx_rbtree_init(&ngx_http_trueport_policy_tree,
                        &ngx_http_trueport_policy_sentinel,
                        ngx_str_rbtree_insert_value);
        ngx_queue_init(&ngx_http_trueport_policy_lru);
        ngx_http_trueport_policy_ready = 1;
    }

    if (node) {
        ngx_http_trueport_policy_bytes -= node->current->bytes;
        ngx_http_trueport_policy_release(node->current);
        ngx_queue_remove(&node->lru);

    } else {
        node = ngx_alloc(sizeof(ngx_http_trueport_policy_node_t),
                         ngx_cycle->log);
        if (node == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(node, sizeof(ngx_http_trueport_policy_node_t));
        ngx_memcpy(node->tenant_id, tenant_id, TP_UUID_LEN);

        node->sn.str.data = node->tenant_id;
        node->sn.str.len = TP_UUID_LEN;
        node->sn.node.key = ngx_crc32_short(tenant_id, TP_UUID_LEN);

        ngx_rbtree_insert(&ngx_http_trueport_policy_tree, &node->sn.node);
    }

    node->current = ps;
    ngx_http_trueport_policy_bytes += ps->bytes;
    ngx_queue_insert_head(&ngx_http_trueport_policy_lru, &node->lru);

    /*
     * the least recently used sets beyond the cache's size go; a request
     * still evaluating one keeps it until it is done
     */

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);

    while (ngx_http_trueport_policy_bytes > tmcf->policy_cache) {
        q = ngx_queue_last(&ngx_http_trueport_policy_lru);
        old = ngx_queue_data(q, ngx_http_trueport_policy_node_t, lru);

        if (old == node) {
            break;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "trueport policy cache: evict %*s",
                       (size_t) TP_UUID_LEN, old->tenant_id);

        ngx_queue_remove(q);
        ngx_rbtree_delete(&ngx_http_trueport_policy_tree, &old->sn.node);
        ngx_http_trueport_policy_bytes -= old->current->bytes;
        ngx_http_trueport_policy_release(old->current);
        ngx_free(old);
    }

    return NGX_OK;
}


/* a cached set: the most recently used now */

static ngx_int_t
ngx_http_trueport_policy_use(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_http_trueport_policy_node_t *node)
{
    ngx_queue_remove(&node->lru);
    ngx_queue_insert_head(&ngx_http_trueport_policy_lru, &node->lru);

    return ngx_http_trueport_policy_ref(r, ctx, node->current);
}


static ngx_int_t
ngx_http_trueport_policy_ref(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_http_trueport_policy_set_t *ps)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    ps->refs++;

    cln->handler = ngx_http_trueport_policy_release;
    cln->data = ps;

    ctx->policy = ps;

    return NGX_OK;
}


static void
ngx_http_trueport_policy_release(void *data)
{
    ngx_http_trueport_policy_set_t *ps = data;

    if (--ps->refs) {
        return;
    }

    tp_policy_destroy(ps->set);
    ngx_destroy_pool(ps->mem.pool);
}


static void
ngx_http_trueport_policy_body_handler(ngx_http_request_t *r)
{
    ngx_http_trueport_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_trueport_module);

    if (ngx_http_trueport_policy_check(r, ctx) != NGX_OK) {
        ctx->policy_err = NGX_HTTP_TRUEPORT_POLICY_FAILED;
    }

    ctx->policy_state = NGX_HTTP_TRUEPORT_POLICY_DONE;

    r->preserve_body = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * The body is read: evaluates it and says in ctx->policy_err what the
 * access phase is to send, if anything.  NGX_ERROR: an internal failure,
 * the request is refused.
 */

static ngx_int_t
ngx_http_trueport_policy_check(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx)
{
    u_char                         *p, *q, *last, *msg;
    u_char                          ids[TP_POLICY_MAX_VIOLATIONS]
                                       [NGX_HTTP_TRUEPORT_UUID_STR];
    char                            err[256];
    size_t                          i, model_len, len, out_len;
    ngx_int_t                       rc;
    ngx_str_t                       body, id;
    tp_alloc_t                     *a;
    tp_prompt_t                    *prompt;
    ngx_http_trueport_policy_mem_t *mem;
    const char                     *model, *name;
    const u_char                   *out;
    tp_policy_ctx_t                 pctx;
    ngx_pool_cleanup_t             *cln;
    tp_policy_result_t              res;
    const tp_violation_t           *v;
    ngx_http_trueport_loc_conf_t   *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

    rc = ngx_http_trueport_policy_body(r, tlcf->policy_max_body, &body);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_trueport_policy_fail(r, ctx,
                                             NGX_HTTP_TRUEPORT_ERR_TOO_LARGE,
                                             NULL, NULL, 0);
    }

    if (body.len == 0) {
        return NGX_OK;
    }

    a = ngx_palloc(r->pool, sizeof(tp_alloc_t));
    mem = ngx_pcalloc(r->pool, sizeof(ngx_http_trueport_policy_mem_t));
    if (a == NULL || mem == NULL) {
        return NGX_ERROR;
    }

    mem->pool = r->pool;

    a->alloc = ngx_http_trueport_policy_alloc;
    a->realloc = ngx_http_trueport_policy_realloc;
    a->free = ngx_http_trueport_policy_free;
    a->ctx = mem;

    /*
     * Gemini names the model in the path: .../models/<model>:<method>.
     * Azure serves the deployment in the path whatever "model" the body
     * claims (or without one): model rules must match the deployment, or
     * a deny list could be passed by naming another model in the body.
     */

    model = NULL;
    model_len = 0;

    p = ngx_strnstr(r->uri.data, "/models/", r->uri.len);

    if (ctx->provider == TP_GOOGLE && p) {
        p += sizeof("/models/") - 1;
        last = r->uri.data + r->uri.len;

        for (q = p; q < last && *q != ':' && *q != '/'; q++) {
            /* void */
        }

        model = (const char *) p;
        model_len = q - p;

    } else if (ctx->provider == TP_AZURE && ctx->deployment.len) {
        model = (const char *) ctx->deployment.data;
        model_len = ctx->deployment.len;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    rc = tp_prompt_parse(a, (int) ctx->provider, body.data, body.len, model,
                         model_len, &prompt, err, sizeof(err));

    switch (rc) {

    case TP_PROMPT_OK:
        break;

    case TP_PROMPT_EMALFORMED:
        return ngx_http_trueport_policy_fail(r, ctx,
                                             NGX_HTTP_TRUEPORT_ERR_BAD_BODY,
                                             "the request body is not a "
                                             "valid JSON request: ",
                                             err, ngx_strlen(err));

    case TP_PROMPT_ETOOBIG:
        return ngx_http_trueport_policy_fail(r, ctx,
                                             NGX_HTTP_TRUEPORT_ERR_TOO_LARGE,
                                             NULL, NULL, 0);

    default:
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "trueport: prompt not parsed: %s", err);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_trueport_policy_prompt_cleanup;
    cln->data = prompt;

    if (ngx_http_trueport_policy_ctx(r, ctx, &pctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (tp_policy_eval(ctx->policy->set, prompt, &pctx, &res) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "trueport: policy evaluation ran out of memory");
        return NGX_ERROR;
    }

    if (res.match_errors) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "trueport: %ui regex rules could not finish, the "
                      "first %s%s", (ngx_uint_t) res.match_errors,
                      res.match_error_rule ? res.match_error_rule : "?",
                      res.unfinished ? ": request refused" : "");
    }

    ngx_str_null(&id);

    for (i = 0; i < res.nviolations; i++) {
        v = &res.violations[i];

        ngx_http_trueport_policy_record(r, ctx, &pctx, v, ids[i]);

        if (v == res.blocked_by) {
            /*
             * the response header is sent after this function returns:
             * it must not point into ids[], which is on the stack
             */

            id.data = ngx_pnalloc(r->pool, TP_UUID_LEN);
            if (id.data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(id.data, ids[i], TP_UUID_LEN);
            id.len = TP_UUID_LEN;
        }
    }

    if (res.dropped) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "trueport: %uz more violations not recorded",
                      res.dropped);
    }

    switch (res.action) {

    case TP_ACTION_BLOCK:

        v = res.blocked_by;

        if (v == NULL || id.len == 0) {
            return NGX_ERROR;
        }

        ctx->blocked = 1;

        if (ngx_http_trueport_add_header(r, &ngx_http_trueport_policy_header,
                                         &id)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        name = v->rule_name ? v->rule_name : "";
        len = ngx_strlen(name);

        msg = ngx_pnalloc(r->pool, len + ngx_escape_json(NULL, (u_char *) name,
                                                         len)
                                   + ngx_strlen(v->detector)
                                   + TP_POLICY_EXCERPT_MAX + 128);
        if (msg == NULL) {
            return NGX_ERROR;
        }

        if (v == res.unfinished) {
            /* fail closed: the rule could not say whether it matches */
            p = ngx_cpymem(msg, "policy '", sizeof("policy '") - 1);
            p = (u_char *) ngx_escape_json(p, (u_char *) name, len);
            p = ngx_sprintf(p, "' could not finish checking the request "
                            "(%s); violation %V", v->excerpt, &id);

            ctx->policy_err = NGX_HTTP_TRUEPORT_ERR_POLICY_UNAVAILABLE;

        } else {
            p = ngx_cpymem(msg, "request blocked by policy '",
                           sizeof("request blocked by policy '") - 1);
            p = (u_char *) ngx_escape_json(p, (u_char *) name, len);
            p = ngx_sprintf(p, "' (%s); violation %V", v->detector, &id);

            ctx->policy_err = NGX_HTTP_TRUEPORT_ERR_POLICY_BLOCKED;
        }

        ctx->policy_msg.data = msg;
        ctx->policy_msg.len = p - msg;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "trueport: request refused by rule %s (%s), "
                      "violation %V", v->rule_id, v->detector, &id);

        return NGX_OK;

    case TP_ACTION_REDACT:

        if (tp_prompt_redact(prompt, res.spans, res.nspans, &out, &out_len)
            != 0)
        {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "trueport: redaction ran out of memory");
            return NGX_ERROR;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "trueport policy redacted %uz spans, body %uz",
                       res.nspans, out_len);

        return ngx_http_trueport_policy_replace(r, out, out_len);

    default: /* TP_ACTION_LOG, TP_ACTION_NONE */
        return NGX_OK;
    }
}


/*
 * The whole body in one piece of memory; a body nginx buffered to a temp
 * file is read back from it.  NGX_DECLINED: larger than max.
 */

static ngx_int_t
ngx_http_trueport_policy_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body)
{
    u_char       *p;
    off_t         len, size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = NULL;

    if (r->request_body == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) max) {
        return NGX_DECLINED;
    }

    if (len == 0) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (ngx_buf_in_memory(cl->buf) && cl->buf->last - cl->buf->pos == len) {
        body->data = cl->buf->pos;
        body->len = (size_t) len;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = (size_t) len;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);

        if (size == 0) {
            continue;
        }

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, (size_t) size);
            continue;
        }

        if (!b->in_file || b->file == NULL) {
            return NGX_ERROR;
        }

        n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);

        if (n != (ssize_t) size) {
            ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                          "trueport: request body not read back from "
                          "\"%V\": %z of %O bytes", &b->file->name, n, size);
            return NGX_ERROR;
        }

        p += size;
    }

    return NGX_OK;
}


/* the redacted body replaces the client's, Content-Length with it */

static ngx_int_t
ngx_http_trueport_policy_replace(ngx_http_request_t *r, const u_char *body,
    size_t len)
{
    ngx_buf_t        *b;
    ngx_chain_t      *cl;
    ngx_table_elt_t  *h;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->start = (u_char *) body;
    b->pos = b->start;
    b->last = b->start + len;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    r->request_body->bufs = cl;
    r->request_body->buf = b;

    r->headers_in.content_length_n = len;

    h = r->headers_in.content_length;

    if (h) {
        h->value.data = ngx_pnalloc(r->pool, NGX_SIZE_T_LEN);
        if (h->value.data == NULL) {
            return NGX_ERROR;
        }

        h->value.len = ngx_sprintf(h->value.data, "%uz", len)
                       - h->value.data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_trueport_policy_ctx(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, tp_policy_ctx_t *pctx)
{
    u_char  *p;

    pctx->provider = (int) ctx->provider;
    pctx->env = NULL;

    p = ngx_pnalloc(r->pool, TP_UUID_LEN + 1 + ctx->key.env.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    pctx->key_id = (const char *) p;
    p = ngx_cpymem(p, ctx->key.key_id, TP_UUID_LEN);
    *p++ = '\0';

    if (ctx->key.env.len) {
        pctx->env = (const char *) p;
        p = ngx_cpymem(p, ctx->key.env.data, ctx->key.env.len);
        *p = '\0';
    }

    return NGX_OK;
}


/* one violation to the spool; id gets the record's uuid */

static void
ngx_http_trueport_policy_record(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, tp_policy_ctx_t *pctx,
    const tp_violation_t *v, u_char *id)
{
    u_char                         *p;
    size_t                          len;
    uuid_t                          uu;
    ngx_time_t                     *tp;
    tp_violation_rec_t              rec;
    ngx_http_variable_value_t      *vv;
    ngx_http_trueport_main_conf_t  *tmcf;
    char                            line[TP_RECORD_MAX];
    u_char                          tenant[TP_UUID_LEN + 1];

    uuid_generate_random(uu);
    uuid_unparse_lower(uu, (char *) id);

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);
    tp = ngx_timeofday();

    ngx_memzero(&rec, sizeof(tp_violation_rec_t));

    rec.ts_ms = (int64_t) tp->sec * 1000 + tp->msec;
    rec.id = (const char *) id;

    vv = ngx_http_get_indexed_variable(r, tmcf->request_id_index);

    if (vv && !vv->not_found) {
        p = ngx_pnalloc(r->pool, vv->len + 1);
        if (p == NULL) {
            return;
        }

        *ngx_cpymem(p, vv->data, vv->len) = '\0';
        rec.request_id = (const char *) p;
    }

    *ngx_cpymem(tenant, ctx->key.tenant_id, TP_UUID_LEN) = '\0';

    rec.tenant_id = (const char *) tenant;
    rec.key_id = pctx->key_id;
    rec.env = pctx->env;
    rec.provider = (int) ctx->provider;
    rec.rule_id = v->rule_id;
    rec.rule_name = v->rule_name;
    rec.rule_type = v->type;
    rec.action = tp_policy_action_name(v->action);
    rec.detector = v->detector;

    /* an excerpt of the prompt (masked, but still the prompt) only when the
     * tenant's log_prompts says so; a model name, a count or the reason a
     * rule could not finish is not one */
    if ((ctx->key.flags & TP_RESOLVE_LOG_PROMPTS)
        || ngx_strcmp(v->type, "model") == 0
        || ngx_strcmp(v->type, "limits") == 0
        || ngx_strcmp(v->detector, "unfinished") == 0)
    {
        rec.excerpt = v->excerpt;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "trueport: policy violation %s: rule %s %s %s %s",
                  id, v->rule_id, v->type, v->detector, rec.action);

    len = tp_record_violation(line, sizeof(line), &rec);

    if (len == 0) {
        return;
    }

    (void) ngx_http_trueport_spool_append(r->connection->log, line, len);
}


/* a refusal for the access phase to send: what and detail, JSON-escaped */

static ngx_int_t
ngx_http_trueport_policy_fail(ngx_http_request_t *r,
    ngx_http_trueport_ctx_t *ctx, ngx_uint_t err, const char *what,
    const char *detail, size_t detail_len)
{
    u_char                        *p;
    size_t                         len;
    ngx_http_trueport_loc_conf_t  *tlcf;

    if (err == NGX_HTTP_TRUEPORT_ERR_TOO_LARGE) {
        tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

        p = ngx_pnalloc(r->pool, 128);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->policy_msg.data = p;
        ctx->policy_msg.len = ngx_sprintf(p, "the request body is larger "
                                          "than the %uz bytes the gateway's "
                                          "policies check",
                                          tlcf->policy_max_body)
                              - p;

    } else {
        len = ngx_strlen(what);

        p = ngx_pnalloc(r->pool, len + detail_len
                                 + ngx_escape_json(NULL, (u_char *) detail,
                                                   detail_len));
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->policy_msg.data = p;
        p = ngx_cpymem(p, what, len);
        p = (u_char *) ngx_escape_json(p, (u_char *) detail, detail_len);
        ctx->policy_msg.len = p - ctx->policy_msg.data;
    }

    ctx->policy_err = err;

    if (ctx->policy_state != NGX_HTTP_TRUEPORT_POLICY_READING) {
        /* still in the access phase: send it now */
        return ngx_http_trueport_error(r, ctx, err, &ctx->policy_msg);
    }

    return NGX_OK;
}


/*
 * tp_alloc_t over an nginx pool (ngx_http_trueport_policy_mem_t): a size
 * header for realloc, and the bytes in use counted; only large blocks are
 * ever given back (ngx_pfree), the rest goes with the pool.
 */

static void *
ngx_http_trueport_policy_alloc(void *ctx, size_t n)
{
    u_char                          *p;
    ngx_http_trueport_policy_mem_t  *mem = ctx;

    p = ngx_palloc(mem->pool, NGX_HTTP_TRUEPORT_ALLOC_HDR + n);
    if (p == NULL) {
        return NULL;
    }

    *(size_t *) p = n;
    mem->bytes += NGX_HTTP_TRUEPORT_ALLOC_HDR + n;

    return p + NGX_HTTP_TRUEPORT_ALLOC_HDR;
}


static void *
ngx_http_trueport_policy_realloc(void *ctx, void *p, size_t n)
{
    void    *np;
    size_t   size;

    if (p == NULL) {
        return ngx_http_trueport_policy_alloc(ctx, n);
    }

    size = *(size_t *) ((u_char *) p - NGX_HTTP_TRUEPORT_ALLOC_HDR);

    if (n <= size) {
        return p;
    }

    np = ngx_http_trueport_policy_alloc(ctx, n);
    if (np == NULL) {
        return NULL;
    }

    ngx_memcpy(np, p, size);
    ngx_http_trueport_policy_free(ctx, p);

    return np;
}


static void
ngx_http_trueport_policy_free(void *ctx, void *p)
{
    u_char                          *b;
    size_t                           size;
    ngx_http_trueport_policy_mem_t  *mem = ctx;

    if (p == NULL) {
        return;
    }

    b = (u_char *) p - NGX_HTTP_TRUEPORT_ALLOC_HDR;
    size = NGX_HTTP_TRUEPORT_ALLOC_HDR + *(size_t *) b;

    /* a small block stays in the pool, and counted, until it goes */

    if (ngx_pfree(mem->pool, b) == NGX_OK) {
        mem->bytes -= size;
    }
}


static void
ngx_http_trueport_policy_prompt_cleanup(void *data)
{
    tp_prompt_t *prompt = data;

    if (prompt != NULL) {
        tp_prompt_destroy(prompt);
    }
}


/*
 * trueport_policy_budget [set=size] [rule=size] [regex=size]: the compile
 * budgets of a tenant's rule set, of one rule and of a set's regex code
 * (tp_policy_limits_t).  The sidecar refuses rules over its own
 * TRUEPORT_POLICY_*_BYTES at write time; those must not be larger than
 * these, or the gateway refuses (503) what the sidecar accepted.
 */

char *
ngx_http_trueport_policy_budget(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_trueport_main_conf_t *tmcf = conf;

    size_t              *field;
    ssize_t              size;
    ngx_str_t           *value, v;
    ngx_uint_t           i;
    tp_policy_limits_t  *lim;

    lim = &tmcf->policy_limits;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "set=", 4) == 0) {
            field = &lim->set_bytes;
            v.data = value[i].data + 4;

        } else if (ngx_strncmp(value[i].data, "rule=", 5) == 0) {
            field = &lim->rule_bytes;
            v.data = value[i].data + 5;

        } else if (ngx_strncmp(value[i].data, "regex=", 6) == 0) {
            field = &lim->regex_bytes;
            v.data = value[i].data + 6;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        v.len = value[i].data + value[i].len - v.data;
        size = ngx_parse_size(&v);

        /* as the sidecar's settings: 4k .. 64m */

        if (size == NGX_ERROR || size < 4096 || size > 64 * 1024 * 1024) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid size \"%V\", 4k to 64m", &value[i]);
            return NGX_CONF_ERROR;
        }

        *field = (size_t) size;
    }

    if (lim->rule_bytes > lim->set_bytes || lim->regex_bytes > lim->set_bytes)
    {
        return "the budgets of a rule and of regexes may not exceed the "
               "budget of a set";
    }

    return NGX_CONF_OK;
}
