
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_trueport.h"


#define NGX_HTTP_TRUEPORT_HEALTH_HEAD                                         \
    "{\"status\":\"ok\",\"module\":\"" TRUEPORT_MODULE_NAME "\","             \
    "\"version\":\"" TRUEPORT_VERSION "\",\"zone\":"


static ngx_int_t ngx_http_trueport_health_json(ngx_http_request_t *r,
    ngx_str_t *json);
static ngx_uint_t ngx_http_trueport_health_local(ngx_connection_t *c);


static ngx_str_t  ngx_http_trueport_health_405 = ngx_string(
    "{\"error\":{\"code\":\"method_not_allowed\","
    "\"message\":\"only GET and HEAD are allowed\"}}\n");

/* what a client from elsewhere learns: the same 200, nothing about the
 * version, the zone or the sidecar */
static ngx_str_t  ngx_http_trueport_health_public = ngx_string(
    "{\"status\":\"ok\"}\n");

static ngx_str_t  ngx_http_trueport_allow = ngx_string("Allow");
static ngx_str_t  ngx_http_trueport_get_head = ngx_string("GET, HEAD");
static ngx_str_t  ngx_http_trueport_cache_control =
    ngx_string("Cache-Control");
static ngx_str_t  ngx_http_trueport_no_store = ngx_string("no-store");


char *
ngx_http_trueport_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_trueport_loc_conf_t *tlcf = conf;

    ngx_http_trueport_main_conf_t  *tmcf;

    if (tlcf->health != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    tlcf->health = 1;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_trueport_module);
    tmcf->health = 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_trueport_health_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      json;
    ngx_http_trueport_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_trueport_module);

    if (!tlcf->health) {
        return NGX_DECLINED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_trueport_add_header(r, &ngx_http_trueport_cache_control,
                                     &ngx_http_trueport_no_store)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {

        if (ngx_http_trueport_add_header(r, &ngx_http_trueport_allow,
                                         &ngx_http_trueport_get_head)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_trueport_send_json(r, NGX_HTTP_NOT_ALLOWED,
                                           &ngx_http_trueport_health_405);
    }

    if (!ngx_http_trueport_health_local(r->connection)) {
        return ngx_http_trueport_send_json(r, NGX_HTTP_OK,
                                           &ngx_http_trueport_health_public);
    }

    if (ngx_http_trueport_health_json(r, &json) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_trueport_send_json(r, NGX_HTTP_OK, &json);
}


static ngx_int_t
ngx_http_trueport_health_json(ngx_http_request_t *r, ngx_str_t *json)
{
    size_t                          len;
    u_char                         *p;
    uintptr_t                       escape;
    ngx_str_t                      *name;
    ngx_shm_zone_t                 *shm_zone;
    ngx_http_trueport_zone_stats_t  st;
    ngx_http_trueport_spool_stats_t  sp;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_trueport_module);
    shm_zone = tmcf->shm_zone;

    len = sizeof(NGX_HTTP_TRUEPORT_HEALTH_HEAD) - 1
          + sizeof(",\"sidecar\":{\"last_ok\":false,\"last_status\":"
                   ",\"last_at\":}}\n") - 1
          + NGX_INT_T_LEN + NGX_TIME_T_LEN;

    /* the spool as this worker sees it; its counters are all workers' */

    ngx_http_trueport_spool_stats(&sp);

    len += sizeof(",\"spool\":{\"total\":,\"max_total\":,\"aggregated\":"
                  ",\"dropped\":}") - 1
           + 2 * NGX_OFF_T_LEN + 2 * NGX_ATOMIC_T_LEN;

    if (shm_zone) {
        ngx_http_trueport_zone_stats(shm_zone, &st);

        name = &shm_zone->shm.name;
        escape = ngx_escape_json(NULL, name->data, name->len);

        len += sizeof("{\"name\":\"\",\"size\":,\"used\":,\"free_pages\":"
                      ",\"entries\":,\"negative\":,\"clients\":"
                      ",\"created\":}") - 1
               + name->len + escape
               + 2 * NGX_SIZE_T_LEN + 4 * NGX_INT_T_LEN + NGX_TIME_T_LEN;

    } else {
        ngx_memzero(&st, sizeof(ngx_http_trueport_zone_stats_t));

        name = NULL;
        escape = 0;

        len += sizeof("null") - 1;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    json->data = p;

    p = ngx_cpymem(p, NGX_HTTP_TRUEPORT_HEALTH_HEAD,
                   sizeof(NGX_HTTP_TRUEPORT_HEALTH_HEAD) - 1);

    if (name) {
        p = ngx_cpymem(p, "{\"name\":\"", sizeof("{\"name\":\"") - 1);

        if (escape) {
            p = (u_char *) ngx_escape_json(p, name->data, name->len);

        } else {
            p = ngx_cpymem(p, name->data, name->len);
        }

        p = ngx_sprintf(p, "\",\"size\":%uz,\"used\":%uz,\"free_pages\":%ui,"
                           "\"entries\":%ui,\"negative\":%ui,"
                           "\"clients\":%ui,\"created\":%T}",
                        st.size, st.used, st.free_pages, st.entries,
                        st.neg_entries, st.ml_entries, st.created);

    } else {
        p = ngx_cpymem(p, "null", sizeof("null") - 1);
    }

    if (sp.on) {
        p = ngx_sprintf(p, ",\"spool\":{\"total\":%O,\"max_total\":%O,"
                           "\"aggregated\":%uA,\"dropped\":%uA}",
                        sp.total, sp.max_total, sp.aggregated, sp.dropped);

    } else {
        p = ngx_cpymem(p, ",\"spool\":null", sizeof(",\"spool\":null") - 1);
    }

    p = ngx_cpymem(p, ",\"sidecar\":{\"last_ok\":",
                   sizeof(",\"sidecar\":{\"last_ok\":") - 1);

    if (st.sidecar.at == 0) {
        p = ngx_cpymem(p, "null,\"last_status\":null,\"last_at\":null",
                       sizeof("null,\"last_status\":null,\"last_at\":null")
                       - 1);

    } else {
        if (st.sidecar.ok) {
            p = ngx_cpymem(p, "true", sizeof("true") - 1);

        } else {
            p = ngx_cpymem(p, "false", sizeof("false") - 1);
        }

        if (st.sidecar.status) {
            p = ngx_sprintf(p, ",\"last_status\":%ui", st.sidecar.status);

        } else {
            p = ngx_cpymem(p, ",\"last_status\":null",
                           sizeof(",\"last_status\":null") - 1);
        }

        p = ngx_sprintf(p, ",\"last_at\":%T", st.sidecar.at);
    }

    *p++ = '}';
    *p++ = '}';
    *p++ = LF;

    json->len = p - json->data;

    return NGX_OK;
}


/*
 * The details are the operator's: a client on loopback (or a unix socket).
 * With the realip module the address is the real client's, so a local
 * proxy in front of nginx does not make every client local.
 */

static ngx_uint_t
ngx_http_trueport_health_local(ngx_connection_t *c)
{
    u_char               *a;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (c->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) c->sockaddr;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) c->sockaddr;
        a = sin6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            return 1;
        }

        return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && a[12] == 127;
#endif

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        return 1;
#endif

    default:
        return 0;
    }
}
