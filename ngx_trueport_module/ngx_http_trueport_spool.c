
/*
 * Copyright (C) TruePort
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/statvfs.h>
#include "ngx_http_trueport.h"


/*
 * The spool: each worker appends the records of the log phase (usage) and
 * of the policies (violations) to its own file in trueport_spool's dir,
 * which the sidecar ingests.  The spool's total is bounded by max_total,
 * whatever stops the ingester: a timer scans the directory every second
 * and the zone counts what every worker has written since, so the total a
 * worker sees is exact but for what the sidecar removed since the last
 * scan (that only makes it larger).  Near the cap refusals of known keys
 * are aggregated per second, at it they are dropped and counted; the
 * records of requests that went upstream are always written.
 */


/* a tick a second; a scan each tick, or less often when files pile up
 * (an ingester away for long): a stat costs ~1.5 us, so 10 ms between
 * scans per file keeps them under 0.02 % of a worker's time; removals are
 * seen later then, which only makes the total larger */
#define NGX_HTTP_TRUEPORT_SPOOL_SCAN        1000        /* ms */
#define NGX_HTTP_TRUEPORT_SPOOL_SCAN_FILE   10          /* ms per file */
#define NGX_HTTP_TRUEPORT_SPOOL_SCAN_MAX    60000       /* ms */
#define NGX_HTTP_TRUEPORT_SPOOL_ALERT       60          /* s, per worker */

/* the default cap: a tenth of the spool's filesystem, 1 GiB at most */
#define NGX_HTTP_TRUEPORT_SPOOL_TOTAL       ((off_t) 1024 * 1024 * 1024)
#define NGX_HTTP_TRUEPORT_SPOOL_SHARE       10


static void ngx_http_trueport_spool_scan(ngx_event_t *ev);
static ngx_uint_t ngx_http_trueport_spool_level(ngx_log_t *log);
static void ngx_http_trueport_spool_emit(void *ctx, const char *line,
    size_t len);
static ngx_int_t ngx_http_trueport_spool_write(ngx_log_t *log,
    const char *line, size_t len);


static tp_spool_t       ngx_http_trueport_spool_file;
static tp_spool_agg_t   ngx_http_trueport_spool_agg;
static ngx_uint_t       ngx_http_trueport_spool_on;
static time_t           ngx_http_trueport_spool_alert;
static ngx_event_t      ngx_http_trueport_spool_timer;

static ngx_http_trueport_shctx_t  *ngx_http_trueport_spool_sh;
static off_t            ngx_http_trueport_spool_max;
static off_t            ngx_http_trueport_spool_scanned;  /* at the scan */
static ngx_atomic_uint_t  ngx_http_trueport_spool_mark;   /* written then */
static ngx_msec_t       ngx_http_trueport_spool_scan_at;
static ngx_uint_t       ngx_http_trueport_spool_full;
static time_t           ngx_http_trueport_spool_full_alert;


char *
ngx_http_trueport_spool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_trueport_main_conf_t *tmcf = conf;

    u_char      *p;
    off_t        total;
    ssize_t      size;
    ngx_str_t   *value, dir, s;
    ngx_int_t    age;
    ngx_uint_t   i;

    if (tmcf->spool.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tmcf->spool_max_size = 64 * 1024 * 1024;
    tmcf->spool_max_age = 60;
    tmcf->spool_max_total = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size < 4096) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "trueport: invalid spool size \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            tmcf->spool_max_size = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            age = ngx_parse_time(&s, 1);
            if (age == NGX_ERROR || age < 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "trueport: invalid spool age \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            tmcf->spool_max_age = age;
            continue;
        }

        /* there is no max_total=off: a cap must exist */

        if (ngx_strncmp(value[i].data, "max_total=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            total = ngx_parse_offset(&s);
            if (total == NGX_ERROR || total <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "trueport: invalid spool total \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            tmcf->spool_max_total = total;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "trueport: invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    /* a worker's open file alone may reach max_size */

    if (tmcf->spool_max_total
        && tmcf->spool_max_total < 2 * tmcf->spool_max_size)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "trueport: spool max_total=%O is less than twice "
                           "max_size=%O", tmcf->spool_max_total,
                           tmcf->spool_max_size);
        return NGX_CONF_ERROR;
    }

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ngx_str_set(&tmcf->spool, "");
        return NGX_CONF_OK;
    }

    dir = value[1];

    if (ngx_conf_full_name(cf->cycle, &dir, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the spool's file names must fit tp_spool_t's buffers */

    if (dir.len == 0 || dir.len > 400) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "trueport: invalid spool directory \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, dir.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, dir.data, dir.len);
    p[dir.len] = '\0';

    tmcf->spool.data = p;
    tmcf->spool.len = dir.len;

    return NGX_CONF_OK;
}


/*
 * In the master, once the configuration is read: the spool directory is
 * created if missing and, as nginx does for its temp paths, given to the
 * worker user, since the workers write there.  The default cap is measured
 * here, on the filesystem that holds the directory.
 */

ngx_int_t
ngx_http_trueport_spool_init_module(ngx_cycle_t *cycle)
{
    off_t                           total;
    struct statvfs                  vfs;
    ngx_file_info_t                 fi;
    ngx_core_conf_t                *ccf;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_trueport_module);

    if (tmcf == NULL || tmcf->spool.len == 0 || !tmcf->gateway) {
        return NGX_OK;
    }

    if (ngx_file_info(tmcf->spool.data, &fi) == NGX_FILE_ERROR) {

        if (ngx_create_dir(tmcf->spool.data, 0755) == NGX_FILE_ERROR
            && ngx_errno != NGX_EEXIST)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          ngx_create_dir_n " \"%s\" failed",
                          tmcf->spool.data);
            return NGX_ERROR;
        }

        if (ngx_file_info(tmcf->spool.data, &fi) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          ngx_file_info_n " \"%s\" failed", tmcf->spool.data);
            return NGX_ERROR;
        }
    }

    if (!ngx_is_dir(&fi)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "trueport: spool \"%s\" is not a directory",
                      tmcf->spool.data);
        return NGX_ERROR;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() == 0
        && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && fi.st_uid != ccf->user)
    {
        if (chown((const char *) tmcf->spool.data, ccf->user, -1) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "chown(\"%s\", %d) failed",
                          tmcf->spool.data, ccf->user);
            return NGX_ERROR;
        }
    }

    if (tmcf->spool_max_total == 0) {
        total = NGX_HTTP_TRUEPORT_SPOOL_TOTAL;

        if (statvfs((const char *) tmcf->spool.data, &vfs) == 0) {
            total = ngx_min(total, (off_t) (vfs.f_blocks
                                            / NGX_HTTP_TRUEPORT_SPOOL_SHARE)
                                   * (off_t) vfs.f_frsize);

        } else {
            ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                          "statvfs(\"%s\") failed, spool max_total=%O",
                          tmcf->spool.data, total);
        }

        /* on a small disk the default is raised to what rotation needs */

        tmcf->spool_max_total = ngx_max(total, 2 * tmcf->spool_max_size);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_trueport_spool_init_process(ngx_cycle_t *cycle)
{
    ngx_http_trueport_zone_t       *zone;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_trueport_module);

    if (tmcf == NULL || tmcf->spool.len == 0 || !tmcf->gateway) {
        return NGX_OK;
    }

    if (access((const char *) tmcf->spool.data, W_OK) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "trueport: spool \"%s\" is not writable, "
                      "usage is not recorded", tmcf->spool.data);
    }

    tp_spool_init(&ngx_http_trueport_spool_file,
                  (const char *) tmcf->spool.data, ngx_pid,
                  tmcf->spool_max_size, tmcf->spool_max_age);

    tp_spool_agg_init(&ngx_http_trueport_spool_agg,
                      ngx_http_trueport_spool_emit, NULL);

    /* a gateway has a zone (ngx_http_trueport_init) */

    zone = tmcf->shm_zone->data;

    ngx_http_trueport_spool_sh = zone->sh;
    ngx_http_trueport_spool_max = tmcf->spool_max_total;
    ngx_http_trueport_spool_on = 1;

    ngx_http_trueport_spool_timer.handler = ngx_http_trueport_spool_scan;
    ngx_http_trueport_spool_timer.log = cycle->log;
    ngx_http_trueport_spool_timer.data = tmcf;
    ngx_http_trueport_spool_timer.cancelable = 1;

    /* the first figure before the first request */

    ngx_http_trueport_spool_scan(&ngx_http_trueport_spool_timer);

    return NGX_OK;
}


void
ngx_http_trueport_spool_exit_process(ngx_cycle_t *cycle)
{
    /* nothing aggregated is lost; sealed, the file can be ingested whole
     * and removed */

    if (ngx_http_trueport_spool_on) {
        (void) tp_spool_agg_flush(&ngx_http_trueport_spool_agg, -1);
        tp_spool_seal(&ngx_http_trueport_spool_file);
        ngx_http_trueport_spool_on = 0;
    }
}


ngx_uint_t
ngx_http_trueport_spool_active(void)
{
    return ngx_http_trueport_spool_on;
}


/*
 * Every second the aggregates of past seconds are written, and when due
 * the directory is scanned (a readdir and a stat of each of the spool's
 * files, usually few), with the zone's count of written bytes read first,
 * so a write racing the scan is counted twice at worst, never missed.
 */

static void
ngx_http_trueport_spool_scan(ngx_event_t *ev)
{
    off_t                           total;
    unsigned                        files;
    ngx_msec_t                      wait;
    ngx_atomic_uint_t               mark;
    ngx_http_trueport_main_conf_t  *tmcf;

    tmcf = ev->data;

    if ((ngx_msec_int_t) (ngx_current_msec - ngx_http_trueport_spool_scan_at)
        >= 0)
    {
        mark = ngx_http_trueport_spool_sh->spool_written;

        total = tp_spool_scan((const char *) tmcf->spool.data, &files);

        if (total >= 0) {
            ngx_http_trueport_spool_scanned = total;
            ngx_http_trueport_spool_mark = mark;
        }

        wait = ngx_max(NGX_HTTP_TRUEPORT_SPOOL_SCAN,
                       ngx_min((ngx_msec_t) files
                               * NGX_HTTP_TRUEPORT_SPOOL_SCAN_FILE,
                               NGX_HTTP_TRUEPORT_SPOOL_SCAN_MAX));

        ngx_http_trueport_spool_scan_at = ngx_current_msec + wait;
    }

    (void) tp_spool_agg_flush(&ngx_http_trueport_spool_agg, ngx_time());

    (void) ngx_http_trueport_spool_level(ev->log);

    if (!ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_add_timer(ev, NGX_HTTP_TRUEPORT_SPOOL_SCAN);
    }
}


static off_t
ngx_http_trueport_spool_total(void)
{
    return ngx_http_trueport_spool_scanned
           + (off_t) (ngx_http_trueport_spool_sh->spool_written
                      - ngx_http_trueport_spool_mark);
}


/* where the spool stands, said in the error log when it changes */

static ngx_uint_t
ngx_http_trueport_spool_level(ngx_log_t *log)
{
    off_t       total;
    time_t      now;
    ngx_uint_t  level;

    total = ngx_http_trueport_spool_total();
    level = tp_spool_level(total, ngx_http_trueport_spool_max);
    now = ngx_time();

    if (level == TP_SPOOL_FULL) {

        if (now - ngx_http_trueport_spool_full_alert
            >= NGX_HTTP_TRUEPORT_SPOOL_ALERT)
        {
            ngx_http_trueport_spool_full_alert = now;

            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "trueport: spool \"%s\" reached max_total=%O "
                          "(%O bytes): refusals are not recorded, "
                          "%uA dropped", ngx_http_trueport_spool_file.dir,
                          ngx_http_trueport_spool_max, total,
                          ngx_http_trueport_spool_sh->spool_dropped);
        }

        ngx_http_trueport_spool_full = 1;

    } else if (level == TP_SPOOL_BELOW && ngx_http_trueport_spool_full) {
        ngx_http_trueport_spool_full = 0;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "trueport: spool \"%s\" is below 90%% of "
                      "max_total=%O again (%O bytes)",
                      ngx_http_trueport_spool_file.dir,
                      ngx_http_trueport_spool_max, total);
    }

    return level;
}


/*
 * One record, usage or violation, to the worker's spool file.  NGX_DECLINED:
 * no spool is configured; NGX_ERROR: the line was not written (logged).
 */

ngx_int_t
ngx_http_trueport_spool_append(ngx_log_t *log, const char *line, size_t len)
{
    ngx_int_t  rc;

    if (!ngx_http_trueport_spool_on) {
        return NGX_DECLINED;
    }

    rc = ngx_http_trueport_spool_write(log, line, len);

    (void) ngx_http_trueport_spool_level(log);

    return rc;
}


/*
 * The record of a refusal of a known key (a 429, a disabled key): written
 * below 90 % of max_total, counted in the aggregate of its id (key, kind,
 * provider, status) and second near the cap, dropped at it.  A refusal
 * costs the client nothing: without this a stream of them fills the disk.
 */

ngx_int_t
ngx_http_trueport_spool_refusal(ngx_log_t *log, ngx_str_t *id,
    const char *line, size_t len)
{
    ngx_http_trueport_shctx_t  *sh;

    if (!ngx_http_trueport_spool_on) {
        return NGX_DECLINED;
    }

    sh = ngx_http_trueport_spool_sh;

    switch (ngx_http_trueport_spool_level(log)) {

    case TP_SPOOL_BELOW:
        return ngx_http_trueport_spool_write(log, line, len);

    case TP_SPOOL_NEAR:
        (void) ngx_atomic_fetch_add(&sh->spool_aggregated, 1);

        tp_spool_agg_add(&ngx_http_trueport_spool_agg, (const char *) id->data,
                         id->len, ngx_time(), line, len);

        return NGX_OK;

    default:
        (void) ngx_atomic_fetch_add(&sh->spool_dropped, 1);
        return NGX_DECLINED;
    }
}


/* an aggregate's line: refusals already counted, so written even at the
 * cap (a slot per id, a line per second each) */

static void
ngx_http_trueport_spool_emit(void *ctx, const char *line, size_t len)
{
    (void) ngx_http_trueport_spool_write(ngx_cycle->log, line, len);
}


static ngx_int_t
ngx_http_trueport_spool_write(ngx_log_t *log, const char *line, size_t len)
{
    uint64_t     before;
    ngx_int_t    rc;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    before = ngx_http_trueport_spool_file.written;

    rc = tp_spool_append(&ngx_http_trueport_spool_file, line, len,
                         (int64_t) tp->sec * 1000 + tp->msec);

    if (ngx_http_trueport_spool_file.written != before) {
        (void) ngx_atomic_fetch_add(&ngx_http_trueport_spool_sh->spool_written,
                                    ngx_http_trueport_spool_file.written
                                    - before);
    }

    if (rc == 0) {
        return NGX_OK;
    }

    /* one line a second at most: the disk may be full for long */

    if (ngx_http_trueport_spool_alert != tp->sec) {
        ngx_http_trueport_spool_alert = tp->sec;

        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "trueport: record not spooled in \"%s\", "
                      "%ui failed", ngx_http_trueport_spool_file.dir,
                      (ngx_uint_t) ngx_http_trueport_spool_file.errors);
    }

    return NGX_ERROR;
}


void
ngx_http_trueport_spool_stats(ngx_http_trueport_spool_stats_t *st)
{
    ngx_memzero(st, sizeof(ngx_http_trueport_spool_stats_t));

    if (!ngx_http_trueport_spool_on) {
        return;
    }

    st->on = 1;
    st->total = ngx_http_trueport_spool_total();
    st->max_total = ngx_http_trueport_spool_max;
    st->aggregated = ngx_http_trueport_spool_sh->spool_aggregated;
    st->dropped = ngx_http_trueport_spool_sh->spool_dropped;
}
