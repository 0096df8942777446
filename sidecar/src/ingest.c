/* ingest.c - moves spool records into Postgres exactly once.
 *
 * nginx workers append one JSON line per record to their own spool file.
 * A pass reads each file from its checkpoint up to the last complete line,
 * COPYs the rows and moves the checkpoint in the same transaction: a crash
 * before COMMIT leaves both untouched, after COMMIT both are done. Files
 * are removed only after their last line is committed (unlink first, then
 * the checkpoint row, so a crash in between cannot re-read the file). */
#include "ingest.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "mail.h"
#include "req.h"
#include "spool_record.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH_BYTES    (4 * 1024 * 1024)   /* read per batch */
#define MAX_FILES      4096
#define OPEN_STALE_SEC 600                 /* a dead worker's .open file */

typedef struct {
    char      base[128];      /* checkpoint key: name without suffix */
    char      name[160];
    int       sealed;
    long long size;
    long long offset;
} spool_file_t;

typedef struct {
    char   *p;
    size_t  len, cap;
} buf_t;

static pthread_t       ingest_thread;
static int             ingest_running;
static volatile int    ingest_stop_flag;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static ingest_stats_t  stats;


static void
buf_put(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            log_error("msg=\"ingest: out of memory\"");
            abort();
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}


static void
buf_reserve(buf_t *b, size_t n)
{
    size_t cap;
    char  *p;

    if (b->len + n + 1 <= b->cap) {
        return;
    }
    cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n + 1) {
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        log_error("msg=\"ingest: out of memory\"");
        abort();
    }
    b->p = p;
    b->cap = cap;
}


/* one COPY text-format field, escaped; NULL when v is NULL */
static void
copy_field(buf_t *b, const char *v, size_t n, int last)
{
    const char *s, *end;
    char       *o;

    if (v == NULL) {
        buf_put(b, last ? "\\N\n" : "\\N\t", 3);
        return;
    }

    /* at worst every byte doubles: reserve once, write without checks */
    buf_reserve(b, 2 * n + 1);
    o = b->p + b->len;
    for (s = v, end = v + n; s < end; s++) {
        switch (*s) {
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:   *o++ = *s;
        }
    }
    *o++ = last ? '\n' : '\t';
    *o = '\0';
    b->len = (size_t) (o - b->p);
}


static void
copy_str(buf_t *b, const sr_value_t *v, int last)
{
    copy_field(b, v ? v->s : NULL, v ? v->len : 0, last);
}


/* a non-negative integer as decimal text, without printf */
static void
copy_int(buf_t *b, long long v, int last)
{
    char  tmp[24], *e = tmp + sizeof(tmp), *p = e;

    if (v < 0) {
        copy_field(b, NULL, 0, last);
        return;
    }
    *--p = last ? '\n' : '\t';
    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v > 0);
    buf_put(b, p, (size_t) (e - p));
}


/* string field of at most max bytes, NULL when absent or not a string */
static const sr_value_t *
rstr(const spool_record_t *r, sr_field_t f, size_t max)
{
    const sr_value_t *v = &r->f[f];

    return v->type == SR_STRING && v->len <= max ? v : NULL;
}


/* non-negative integer field, -1 when absent or not one */
static long long
rinteger(const spool_record_t *r, sr_field_t f)
{
    const sr_value_t *v = &r->f[f];

    return v->type == SR_INT && v->i >= 0 ? v->i : -1;
}


/* the same for an integer column: a value past its range would fail the
 * whole batch's COPY again and again, so it is stored as unknown */
static long long
rinteger32(const spool_record_t *r, sr_field_t f)
{
    long long v = rinteger(r, f);

    return v > 2147483647LL ? -1 : v;
}


static const char *
rbool(const spool_record_t *r, sr_field_t f, const char *dflt)
{
    if (r->f[f].type == SR_TRUE) return "t";
    if (r->f[f].type == SR_FALSE) return "f";
    return dflt;
}


static const sr_value_t *
ruuid(const spool_record_t *r, sr_field_t f)
{
    const sr_value_t *v = rstr(r, f, 36);
    size_t            i;

    if (v == NULL || v->len != 36) {
        return NULL;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (v->s[i] != '-') {
                return NULL;
            }
        } else if (!isxdigit((unsigned char) v->s[i])) {
            return NULL;
        }
    }
    return v;
}


long long
ingest_cost(const price_t *prices, int n, const char *provider,
    const char *model, long long input, long long output, long long cached,
    int *found)
{
    const price_t *best = NULL;
    size_t         best_len = 0, ml;
    double         cost;
    int            i;

    *found = 0;
    if (model == NULL || provider == NULL) {
        return -1;
    }

    /* exact name, else the longest priced name that is a dated or
     * suffixed variant's prefix ("gpt-4o-2024-08-06" -> "gpt-4o") */
    for (i = 0; i < n; i++) {
        if (strcmp(prices[i].provider, provider) != 0) {
            continue;
        }
        ml = strlen(prices[i].model);
        if (strcmp(prices[i].model, model) == 0) {
            best = &prices[i];
            break;
        }
        if (ml > best_len && strncmp(prices[i].model, model, ml) == 0
            && model[ml] == '-')
        {
            best = &prices[i];
            best_len = ml;
        }
    }
    if (best == NULL) {
        return -1;
    }

    if (input < 0) input = 0;
    if (output < 0) output = 0;
    if (cached < 0 || cached > input) cached = cached < 0 ? 0 : input;

    /* USD per million tokens == micro-dollars per token */
    cost = (double) (input - cached) * best->in + (double) cached * best->cached
           + (double) output * best->out;
    *found = 1;
    return llround(cost);
}


/* ms since the epoch as a timestamptz literal (out: 32 bytes), 0 when out
 * of range; the date and time part is kept per second, since a batch holds
 * thousands of records per second */
typedef struct {
    long long sec;
    int       valid;
    char      text[32];     /* "YYYY-MM-DD HH:MM:SS" */
    size_t    len;
} ts_cache_t;


static size_t
ts_text(ts_cache_t *tc, long long ms, char *out)
{
    long long sec = ms / 1000;
    int       frac = (int) (ms % 1000);
    time_t    t;
    struct tm tm;

    if (frac < 0) {
        frac += 1000;       /* C division truncates; the second floors */
        sec--;
    }
    if (!tc->valid || tc->sec != sec) {
        /* a year Postgres refuses would fail the whole batch, forever */
        t = (time_t) sec;
        if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1
            || tm.tm_year + 1900 > 9999)
        {
            return 0;
        }
        tc->len = (size_t) snprintf(tc->text, sizeof(tc->text),
                                    "%04d-%02d-%02d %02d:%02d:%02d",
                                    (tm.tm_year + 1900) % 10000,
                                    (tm.tm_mon + 1) % 100, tm.tm_mday % 100,
                                    tm.tm_hour % 100, tm.tm_min % 100,
                                    tm.tm_sec % 100);
        tc->sec = sec;
        tc->valid = 1;
    }
    memcpy(out, tc->text, tc->len);
    out[tc->len] = '.';
    out[tc->len + 1] = (char) ('0' + frac / 100);
    out[tc->len + 2] = (char) ('0' + frac / 10 % 10);
    out[tc->len + 3] = (char) ('0' + frac % 10);
    memcpy(out + tc->len + 4, "+00", 4);
    return tc->len + 7;
}


typedef struct {
    buf_t      usage, viol;
    long long  n_usage, n_viol, rejected, unpriced;
    char       months[64][8];     /* "YYYY-MM" seen in this batch */
    ts_cache_t ts;
    char      *scratch;           /* decoded strings of the current line */
    int        n_months;
    price_t   *prices;
    int        n_prices;

    /* requests per (tenant, month) in this batch, for usage_monthly */
    struct {
        char      tenant[37];
        char      month[8];
        long long n;
    }         *monthly;
    int        n_monthly, cap_monthly;
} batch_t;


static void
batch_month(batch_t *b, const char *ts)
{
    int i;

    for (i = 0; i < b->n_months; i++) {
        if (memcmp(b->months[i], ts, 7) == 0) {
            return;
        }
    }
    if (b->n_months < 64) {
        memcpy(b->months[b->n_months], ts, 7);
        b->months[b->n_months++][7] = '\0';
    }
}


static void
batch_count(batch_t *b, const char *tenant, const char *ts, long long n)
{
    int i;

    for (i = b->n_monthly - 1; i >= 0; i--) {
        if (memcmp(b->monthly[i].month, ts, 7) == 0
            && strcmp(b->monthly[i].tenant, tenant) == 0)
        {
            b->monthly[i].n += n;
            return;
        }
    }
    if (b->n_monthly == b->cap_monthly) {
        int   cap = b->cap_monthly ? b->cap_monthly * 2 : 16;
        void *m = realloc(b->monthly, cap * sizeof(*b->monthly));
        if (m == NULL) {
            log_error("msg=\"ingest: out of memory\"");
            abort();
        }
        b->monthly = m;
        b->cap_monthly = cap;
    }
    i = b->n_monthly++;
    snprintf(b->monthly[i].tenant, sizeof(b->monthly[i].tenant), "%s", tenant);
    memcpy(b->monthly[i].month, ts, 7);
    b->monthly[i].month[7] = '\0';
    b->monthly[i].n = n;
}


/* One spool line -> a COPY row. 0 ok, -1 rejected. */
static int
batch_line(batch_t *b, const char *line, size_t len)
{
    char                err[128], ts[32];
    spool_record_t      r;
    const sr_value_t   *type, *tenant, *provider, *model, *request_id;
    const char         *t;
    long long           ms, in, out, cached, cost, count;
    size_t              ts_len;
    yajl_val            v = NULL;
    int                 found;
    buf_t              *u;

    if (len == 0) {
        return 0;
    }

    /* the single-pass reader takes the lines the module writes; anything
     * else gets the general parser (lax: as yajl's tree parser decided,
     * comments aside) */
    if (spool_record_parse(&r, line, len, b->scratch) != 0) {
        if (json_parse(line, len, JSON_LAX, &v, err, sizeof(err)) != JSON_OK
            || !YAJL_IS_OBJECT(v))
        {
            goto bad;
        }
        spool_record_from_tree(&r, v);
    }

    type = rstr(&r, SR_TYPE, 16);
    tenant = ruuid(&r, SR_TENANT_ID);
    request_id = rstr(&r, SR_REQUEST_ID, 64);
    if (type == NULL || tenant == NULL || r.f[SR_TS].type != SR_INT
        || request_id == NULL)
    {
        goto bad;
    }
    ms = r.f[SR_TS].i;
    ts_len = ts_text(&b->ts, ms, ts);
    if (ts_len == 0) {
        goto bad;
    }

    if (type->len == 5 && memcmp(type->s, "usage", 5) == 0) {
        char tenant_s[37], provider_s[16], model_s[96];

        provider = rstr(&r, SR_PROVIDER, 15);
        if (provider == NULL) {
            goto bad;
        }

        /* the requests the record stands for: refusals aggregated near
         * the spool's cap carry their number; absent means one */
        count = 1;
        if (r.f[SR_COUNT].type != SR_ABSENT) {
            count = rinteger32(&r, SR_COUNT);
            if (count < 1) {
                goto bad;
            }
        }
        model = rstr(&r, SR_MODEL, 95);
        in = rinteger(&r, SR_INPUT_TOKENS);
        out = rinteger(&r, SR_OUTPUT_TOKENS);
        cached = rinteger(&r, SR_CACHED_TOKENS);

        /* the price lookup and the counters want C strings; a NUL inside
         * (only through yajl's \u0000) ends them there, as it always did */
        memcpy(provider_s, provider->s, provider->len);
        provider_s[provider->len] = '\0';
        if (model) {
            memcpy(model_s, model->s, model->len);
            model_s[model->len] = '\0';
        }
        memcpy(tenant_s, tenant->s, 36);
        tenant_s[36] = '\0';

        cost = -1;
        if (in >= 0 || out >= 0) {
            long long c = ingest_cost(b->prices, b->n_prices, provider_s,
                                      model ? model_s : NULL, in, out, cached,
                                      &found);
            if (found) {
                cost = c;
            } else {
                b->unpriced++;
            }
        }

        batch_month(b, ts);
        batch_count(b, tenant_s, ts, count);
        u = &b->usage;
        copy_field(u, ts, ts_len, 0);
        copy_str(u, request_id, 0);
        copy_str(u, tenant, 0);
        copy_str(u, ruuid(&r, SR_KEY_ID), 0);
        copy_str(u, rstr(&r, SR_ENV, 32), 0);
        copy_str(u, provider, 0);
        copy_str(u, model, 0);
        copy_str(u, rstr(&r, SR_PATH, 2048), 0);
        copy_int(u, rinteger32(&r, SR_STATUS), 0);
        t = rbool(&r, SR_STREAM, "f");
        copy_field(u, t, 1, 0);
        copy_int(u, in, 0);
        copy_int(u, out, 0);
        copy_int(u, cached, 0);
        copy_int(u, rinteger(&r, SR_REASONING_TOKENS), 0);
        copy_int(u, rinteger(&r, SR_TOTAL_TOKENS), 0);
        copy_int(u, cost, 0);
        copy_int(u, rinteger32(&r, SR_TTFB_MS), 0);
        copy_int(u, rinteger32(&r, SR_LATENCY_MS), 0);
        copy_int(u, rinteger(&r, SR_BYTES_IN), 0);
        copy_int(u, rinteger(&r, SR_BYTES_OUT), 0);
        copy_str(u, rstr(&r, SR_CLIENT_IP, 64), 0);
        copy_str(u, rstr(&r, SR_ERROR_KIND, 64), 0);
        t = rbool(&r, SR_COMPLETED, "t");
        copy_field(u, t, 1, 0);
        copy_int(u, count, 1);
        b->n_usage++;

    } else if (type->len == 9 && memcmp(type->s, "violation", 9) == 0) {
        if (ruuid(&r, SR_ID) == NULL || rstr(&r, SR_ACTION, 16) == NULL) {
            goto bad;
        }
        u = &b->viol;
        copy_str(u, ruuid(&r, SR_ID), 0);
        copy_field(u, ts, ts_len, 0);
        copy_str(u, request_id, 0);
        copy_str(u, tenant, 0);
        copy_str(u, ruuid(&r, SR_KEY_ID), 0);
        copy_str(u, rstr(&r, SR_ENV, 32), 0);
        copy_str(u, rstr(&r, SR_PROVIDER, 16), 0);
        copy_str(u, ruuid(&r, SR_RULE_ID), 0);
        copy_str(u, rstr(&r, SR_RULE_NAME, 200), 0);
        copy_str(u, rstr(&r, SR_RULE_TYPE, 16), 0);
        copy_str(u, rstr(&r, SR_ACTION, 16), 0);
        copy_str(u, rstr(&r, SR_DETECTOR, 64), 0);
        copy_str(u, rstr(&r, SR_EXCERPT, 512), 1);
        b->n_viol++;

    } else {
        goto bad;
    }

    json_free(v);
    return 0;

bad:
    json_free(v);
    b->rejected++;
    {
        char head[201], esc[820];

        memcpy(head, line, len > 200 ? 200 : len);
        head[len > 200 ? 200 : len] = '\0';
        log_warn("msg=\"ingest: rejected spool line\" line=\"%s\"",
                 log_escape(head, esc, sizeof(esc)));
    }
    return -1;
}


static int
pq_ok(PGconn *c, PGresult *res, const char *what)
{
    ExecStatusType st = PQresultStatus(res);
    int            ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    char           esc[512];

    if (!ok) {
        pthread_mutex_lock(&stats_lock);
        snprintf(stats.last_error, sizeof(stats.last_error), "%s: %s", what,
                 PQstatus(c) == CONNECTION_OK ? PQresultErrorMessage(res)
                                              : "connection lost");
        char *nl = strchr(stats.last_error, '\n');
        if (nl) {
            *nl = '\0';
        }
        pthread_mutex_unlock(&stats_lock);
        log_warn("msg=\"ingest: %s failed\" error=\"%s\"", what,
                 log_escape(PQresultErrorMessage(res), esc, sizeof(esc)));
    }
    PQclear(res);
    return ok ? 0 : -1;
}


/* The counters the gateway's quota reads, moved in the same transaction
 * as the rows they count. */
static int
flush_monthly(PGconn *c, batch_t *b)
{
    char        month[16], n[24];
    const char *p[3];
    int         i;

    for (i = 0; i < b->n_monthly; i++) {
        snprintf(month, sizeof(month), "%s-01", b->monthly[i].month);
        snprintf(n, sizeof(n), "%lld", b->monthly[i].n);
        p[0] = b->monthly[i].tenant;
        p[1] = month;
        p[2] = n;
        if (pq_ok(c, PQexecParams(c,
                      "INSERT INTO usage_monthly (tenant_id, month, requests)"
                      " VALUES ($1, $2, $3) ON CONFLICT (tenant_id, month)"
                      " DO UPDATE SET requests = usage_monthly.requests"
                      " + EXCLUDED.requests", 3, NULL, p, NULL, NULL, 0),
                  "monthly") != 0)
        {
            return -1;
        }
    }
    return 0;
}


/* COPY FROM STDIN: PQexec answers PGRES_COPY_IN, then we stream the rows */
static int
copy_in(PGconn *c, const char *sql, buf_t *rows, const char *what)
{
    PGresult *res;

    if (rows->len == 0) {
        return 0;
    }
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        return pq_ok(c, res, what);
    }
    PQclear(res);

    if (PQputCopyData(c, rows->p, (int) rows->len) != 1
        || PQputCopyEnd(c, NULL) != 1)
    {
        return pq_ok(c, PQgetResult(c), what);
    }

    res = PQgetResult(c);
    if (pq_ok(c, res, what) != 0) {
        while ((res = PQgetResult(c)) != NULL) {
            PQclear(res);
        }
        return -1;
    }
    while ((res = PQgetResult(c)) != NULL) {
        PQclear(res);
    }
    return 0;
}


static int
commit_batch(PGconn *c, batch_t *b, spool_file_t *f, long long new_offset)
{
    char        off[24], recs[24], month[16];
    const char *p[3];
    int         i;

    if (pq_ok(c, PQexec(c, "BEGIN"), "begin") != 0) {
        return -1;
    }

    for (i = 0; i < b->n_months; i++) {
        snprintf(month, sizeof(month), "%s-01", b->months[i]);
        p[0] = month;
        if (pq_ok(c, PQexecParams(c, "SELECT usage_ensure_partition($1)", 1,
                                  NULL, p, NULL, NULL, 0), "partition") != 0)
        {
            goto fail;
        }
    }

    if (copy_in(c, "COPY usage_logs (created_at, request_id, tenant_id,"
                   " key_id, env, provider, model, path, status, stream,"
                   " input_tokens, output_tokens, cached_tokens,"
                   " reasoning_tokens, total_tokens, cost_micro_usd, ttfb_ms,"
                   " latency_ms, bytes_in, bytes_out, client_ip, error_kind,"
                   " completed, count) FROM STDIN", &b->usage, "copy usage")
        != 0)
    {
        goto fail;
    }

    if (flush_monthly(c, b) != 0) {
        goto fail;
    }

    if (b->viol.len > 0) {
        /* a violation id is the module's, shown to the client: keep the
         * first copy if a record ever came twice */
        if (pq_ok(c, PQexec(c, "CREATE TEMP TABLE IF NOT EXISTS viol_stage"
                               " (LIKE violations) ON COMMIT DELETE ROWS"),
                  "stage") != 0
            || copy_in(c, "COPY viol_stage (id, created_at, request_id,"
                          " tenant_id, key_id, env, provider, rule_id,"
                          " rule_name, rule_type, action, detector, excerpt)"
                          " FROM STDIN", &b->viol, "copy violations") != 0
            /* a worker's cached answer may predate the tenant turning
             * log_prompts off: prompt excerpts pass only while it is on
             * (a model name, a count or the reason a rule could not
             * finish is not one; policy.c) */
            || pq_ok(c, PQexec(c, "UPDATE viol_stage s SET excerpt = NULL"
                                  " WHERE excerpt IS NOT NULL AND rule_type"
                                  " NOT IN ('model', 'limits')"
                                  " AND detector <> 'unfinished'"
                                  " AND NOT EXISTS (SELECT 1 FROM"
                                  " tenant_configs lp WHERE lp.tenant_id ="
                                  " s.tenant_id AND lp.key = 'log_prompts'"
                                  " AND lp.value = 'true'::jsonb)"),
                     "excerpts") != 0
            || pq_ok(c, PQexec(c, "INSERT INTO violations SELECT * FROM"
                                  " viol_stage ON CONFLICT (id) DO NOTHING"),
                     "violations") != 0)
        {
            goto fail;
        }
    }

    snprintf(off, sizeof(off), "%lld", new_offset);
    snprintf(recs, sizeof(recs), "%lld", b->n_usage + b->n_viol);
    p[0] = f->base;
    p[1] = off;
    p[2] = recs;
    if (pq_ok(c, PQexecParams(c,
                  "INSERT INTO spool_offsets (file, \"offset\", records)"
                  " VALUES ($1, $2, $3) ON CONFLICT (file) DO UPDATE"
                  " SET \"offset\" = EXCLUDED.\"offset\","
                  " records = spool_offsets.records + EXCLUDED.records,"
                  " updated_at = now()", 3, NULL, p, NULL, NULL, 0),
              "checkpoint") != 0)
    {
        goto fail;
    }

    return pq_ok(c, PQexec(c, "COMMIT"), "commit");

fail:
    PQclear(PQexec(c, "ROLLBACK"));
    return -1;
}


static int
load_prices(PGconn *c, price_t **out)
{
    PGresult *res;
    price_t  *p;
    int       i, n;

    /* the table is the base; admin configs' model_prices (if any) is
     * applied over it by the admin handler writing into the same table */
    res = PQexec(c, "SELECT provider, model, input_per_m, output_per_m,"
                    " coalesce(cached_per_m, input_per_m) FROM model_prices");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    n = PQntuples(res);
    p = calloc(n ? n : 1, sizeof(price_t));
    if (p == NULL) {
        PQclear(res);
        return -1;
    }
    for (i = 0; i < n; i++) {
        snprintf(p[i].provider, sizeof(p[i].provider), "%s",
                 PQgetvalue(res, i, 0));
        snprintf(p[i].model, sizeof(p[i].model), "%s", PQgetvalue(res, i, 1));
        p[i].in = atof(PQgetvalue(res, i, 2));
        p[i].out = atof(PQgetvalue(res, i, 3));
        p[i].cached = atof(PQgetvalue(res, i, 4));
    }
    PQclear(res);
    *out = p;
    return n;
}


static int
cmp_files(const void *a, const void *b)
{
    return strcmp(((const spool_file_t *) a)->name,
                  ((const spool_file_t *) b)->name);
}


static int
list_spool(const char *dir, spool_file_t **out)
{
    DIR           *d;
    struct dirent *e;
    struct stat    sb;
    spool_file_t  *files;
    char           path[4096];
    size_t         nl;
    int            n = 0;
    long           pid;

    d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    files = calloc(MAX_FILES, sizeof(spool_file_t));
    if (files == NULL) {
        closedir(d);
        return -1;
    }

    while ((e = readdir(d)) != NULL && n < MAX_FILES) {
        spool_file_t *f = &files[n];
        int           sealed;

        nl = strlen(e->d_name);
        if (nl > 6 && strcmp(e->d_name + nl - 6, ".jsonl") == 0) {
            sealed = 1;
            nl -= 6;
        } else if (nl > 5 && strcmp(e->d_name + nl - 5, ".open") == 0) {
            sealed = 0;
            nl -= 5;
        } else {
            continue;
        }
        if (nl >= sizeof(f->base) || strlen(e->d_name) >= sizeof(f->name)) {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            continue;
        }

        if (!sealed) {
            /* a worker that died without rotating leaves .open behind */
            pid = strtol(e->d_name, NULL, 10);
            if (pid > 0 && kill((pid_t) pid, 0) != 0 && errno == ESRCH
                && time(NULL) - sb.st_mtime > OPEN_STALE_SEC)
            {
                sealed = 1;
            }
        }

        memcpy(f->base, e->d_name, nl);
        f->base[nl] = '\0';
        memcpy(f->name, e->d_name, strlen(e->d_name) + 1);
        f->sealed = sealed;
        f->size = sb.st_size;
        n++;
    }
    closedir(d);

    qsort(files, n, sizeof(spool_file_t), cmp_files);
    *out = files;
    return n;
}


static int
load_offsets(PGconn *c, spool_file_t *files, int n)
{
    PGresult *res;
    int       i, j;

    res = PQexec(c, "SELECT file, \"offset\" FROM spool_offsets");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        return pq_ok(c, res, "offsets");
    }
    for (i = 0; i < n; i++) {
        files[i].offset = 0;
        for (j = 0; j < PQntuples(res); j++) {
            if (strcmp(PQgetvalue(res, j, 0), files[i].base) == 0) {
                files[i].offset = atoll(PQgetvalue(res, j, 1));
                break;
            }
        }
    }
    PQclear(res);
    return 0;
}


static long long
count_lines(int fd, long long from, long long to)
{
    char      buf[65536];
    long long n = 0;
    ssize_t   r;
    char     *p, *end;

    while (from < to) {
        r = pread(fd, buf, (size_t) (to - from < (long long) sizeof(buf)
                                     ? to - from : (long long) sizeof(buf)),
                  from);
        if (r <= 0) {
            break;
        }
        for (p = buf, end = buf + r; (p = memchr(p, '\n', end - p)); p++) {
            n++;
        }
        from += r;
    }
    return n;
}


/* Ingests one file from its checkpoint. Returns records or -1. */
static long long
ingest_file(PGconn *c, const char *dir, spool_file_t *f, price_t *prices,
    int n_prices, ingest_stats_t *st)
{
    char      path[4096], *data = NULL, *scratch = NULL;
    batch_t   b;
    long long total = 0, want, end;
    ssize_t   r;
    int       fd;
    char     *p, *nl, *last;

    snprintf(path, sizeof(path), "%s/%s", dir, f->name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;       /* rotated or removed meanwhile: next pass */
    }

    if (f->offset > f->size) {
        /* a checkpoint past the end means the file is not the one we
         * read: refuse to guess, and say so */
        log_error("msg=\"ingest: checkpoint beyond end of file\" file=%s",
                  f->name);
        close(fd);
        return 0;
    }

    data = malloc(BATCH_BYTES + 1);
    scratch = malloc(BATCH_BYTES + 1);
    if (data == NULL || scratch == NULL) {
        free(data);
        free(scratch);
        close(fd);
        return -1;
    }

    while (f->offset < f->size && !ingest_stop_flag) {
        want = f->size - f->offset;
        if (want > BATCH_BYTES) {
            want = BATCH_BYTES;
        }
        r = pread(fd, data, (size_t) want, f->offset);
        if (r <= 0) {
            break;
        }

        last = memrchr(data, '\n', (size_t) r);
        if (last == NULL) {
            if (r == BATCH_BYTES || f->sealed) {
                /* an oversize line, or the torn tail of a sealed file:
                 * skip it so the file can be finished */
                end = f->offset + r;
                memset(&b, 0, sizeof(b));
                b.rejected = 1;
                log_warn("msg=\"ingest: skipped incomplete data\" file=%s"
                         " bytes=%zd", f->name, r);
            } else {
                break;  /* a line being written: next pass */
            }
        } else {
            memset(&b, 0, sizeof(b));
            b.prices = prices;
            b.n_prices = n_prices;
            b.scratch = scratch;
            for (p = data; p <= last; p = nl + 1) {
                nl = memchr(p, '\n', last - p + 1);
                (void) batch_line(&b, p, nl - p);
            }
            end = f->offset + (last - data) + 1;
        }

        if (commit_batch(c, &b, f, end) != 0) {
            free(b.usage.p);
            free(b.viol.p);
            free(b.monthly);
            total = -1;
            break;
        }

        f->offset = end;
        total += b.n_usage + b.n_viol;
        st->ingested += b.n_usage + b.n_viol;
        st->rejected += b.rejected;
        st->unpriced += b.unpriced;
        st->batches++;
        free(b.usage.p);
        free(b.viol.p);
        free(b.monthly);
    }

    free(data);
    free(scratch);
    close(fd);
    return total;
}


long long
ingest_pass(PGconn *c, const char *dir, ingest_stats_t *st)
{
    spool_file_t *files = NULL;
    price_t      *prices = NULL;
    long long     total = 0, got, backlog = 0, backlog_recs = 0;
    char          path[4096];
    const char   *p[1];
    int           n, n_prices, i, fd;

    n = list_spool(dir, &files);
    if (n < 0) {
        return 0;
    }
    if (n == 0) {
        st->backlog_bytes = st->backlog_records = st->files = 0;
        free(files);
        return 0;
    }

    if (load_offsets(c, files, n) != 0
        || (n_prices = load_prices(c, &prices)) < 0)
    {
        total = -1;
        goto backlog;
    }

    for (i = 0; i < n && !ingest_stop_flag; i++) {
        got = ingest_file(c, dir, &files[i], prices, n_prices, st);
        if (got < 0) {
            total = -1;
            break;
        }
        total += got;

        if (files[i].sealed && files[i].offset == files[i].size) {
            snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
            if (unlink(path) == 0 || errno == ENOENT) {
                p[0] = files[i].base;
                PQclear(PQexecParams(c, "DELETE FROM spool_offsets"
                                        " WHERE file = $1", 1, NULL, p, NULL,
                                     NULL, 0));
                files[i].size = 0;
                files[i].offset = 0;
            }
        }
    }

backlog:
    for (i = 0; i < n; i++) {
        if (files[i].size > files[i].offset) {
            backlog += files[i].size - files[i].offset;
            snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                backlog_recs += count_lines(fd, files[i].offset,
                                            files[i].size);
                close(fd);
            }
        }
    }
    st->backlog_bytes = backlog;
    st->backlog_records = backlog_recs;
    st->files = n;

    free(prices);
    free(files);
    return total;
}


static void
set_error(const char *what, const char *err)
{
    pthread_mutex_lock(&stats_lock);
    snprintf(stats.last_error, sizeof(stats.last_error), "%.40s: %.110s", what,
             err);
    pthread_mutex_unlock(&stats_lock);
}


static void *
ingest_main(void *arg)
{
    ingest_stats_t local;
    PGconn        *c = NULL;
    char           err[256];
    long long      got;
    time_t         last_sweep = 0;
    int            backoff_ms = 250;

    (void) arg;
    memset(&local, 0, sizeof(local));

    while (!ingest_stop_flag) {
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = db_connect_once(cfg.database_url, err, sizeof(err));
        }

        if (c == NULL) {
            /* the database is away: records wait in the spool, the last
             * backlog figures stay in /health with the error */
            set_error("connect", err);
            got = -1;
        } else {
            got = ingest_pass(c, cfg.spool_dir, &local);

            pthread_mutex_lock(&stats_lock);
            if (got < 0) {
                memcpy(local.last_error, stats.last_error,
                       sizeof(local.last_error));
            } else {
                local.last_error[0] = '\0';
            }
            stats = local;
            pthread_mutex_unlock(&stats_lock);
        }

        if (got < 0) {
            usleep(backoff_ms * 1000);
            backoff_ms = backoff_ms < 4000 ? backoff_ms * 2 : 5000;
            continue;
        }

        backoff_ms = 250;

        /* old usage goes by the tenants' retention, between passes */
        if (time(NULL) - last_sweep >= cfg.retention_interval) {
            PGresult *res = PQexec(c, "SELECT usage_retention()");

            if (PQresultStatus(res) == PGRES_TUPLES_OK) {
                last_sweep = time(NULL);
                if (atoll(PQgetvalue(res, 0, 0)) > 0) {
                    log_info("msg=\"retention: usage rows deleted\" rows=%s",
                             PQgetvalue(res, 0, 0));
                }
            } else {
                char esc[512];

                log_warn("msg=\"retention sweep failed\" error=\"%s\"",
                         log_escape(PQresultErrorMessage(res), esc,
                                    sizeof(esc)));
            }
            PQclear(res);
            /* and the outbox's old rows (mail.c) */
            (void) mail_sweep(c);
        }

        if (got == 0) {
            usleep(200 * 1000);
        }
    }

    PQfinish(c);
    return NULL;
}


int
ingest_start(void)
{
    if (cfg.spool_dir == NULL || cfg.spool_dir[0] == '\0') {
        return 0;
    }
    if (mkdir(cfg.spool_dir, 0755) != 0 && errno != EEXIST) {
        log_error("msg=\"cannot create spool directory\" dir=\"%s\" error=\"%s\"",
                  cfg.spool_dir, strerror(errno));
        return -1;
    }
    ingest_stop_flag = 0;
    if (pthread_create(&ingest_thread, NULL, ingest_main, NULL) != 0) {
        return -1;
    }
    ingest_running = 1;
    log_info("msg=\"ingester started\" spool=\"%s\"", cfg.spool_dir);
    return 0;
}


void
ingest_stop(void)
{
    if (!ingest_running) {
        return;
    }
    ingest_stop_flag = 1;
    pthread_join(ingest_thread, NULL);
    ingest_running = 0;
}


void
ingest_stats(ingest_stats_t *out)
{
    pthread_mutex_lock(&stats_lock);
    *out = stats;
    pthread_mutex_unlock(&stats_lock);
}
