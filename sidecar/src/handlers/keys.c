/* handlers/keys.c - the gateway's API keys: create (the key is shown once,
 * only its SHA-256 is stored), list, update, soft delete; and the resolve
 * endpoint the nginx module calls on a key-cache miss */
#include "handlers.h"
#include "../audit.h"
#include "../config.h"
#include "../db.h"
#include "../log.h"
#include "../secrets.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "sk-" + base64url(32 random bytes) without padding: 3 + 43 characters */
#define KEY_RANDOM_BYTES  32
#define KEY_B64_LEN       43
#define KEY_LEN           (3 + KEY_B64_LEN)
#define KEY_PREFIX_LEN    8          /* what the API shows: "sk-AbCdE" */
#define KEY_NAME_MAX      100        /* characters */
#define KEY_ENV_MAX       32

/* Tenant settings (handlers/configs.c) the keys depend on: the default
 * rpm of keys without their own (else the plan's default_rpm), and the
 * providers any of the tenant's keys may call (a JSON array; unset: all). */
#define TENANT_RPM_KEY        "default_rpm"
#define TENANT_PROVIDERS_KEY  "allowed_providers"

/* whether violations keep prompt excerpts (the module leaves them out of
 * its records otherwise, so they never reach the spool) */
#define TENANT_LOG_PROMPTS_KEY  "log_prompts"

/* tenant_configs c's value as an rpm, NULL unless a number in 1..INT_MAX
 * (nested CASE: the cast must never see a string) */
#define CFG_RPM                                                             \
    "(CASE WHEN jsonb_typeof(c.value) <> 'number' THEN NULL"                \
    " WHEN c.value::numeric BETWEEN 1 AND 2147483647"                       \
    " THEN floor(c.value::numeric)::int END)"

/* The tenant's plan (the free plan without an active subscription) and
 * its default rpm, for the tenant $1: one row named lim. */
#define LIM_CTE                                                             \
    " lim AS (SELECT p.id AS plan, p.max_keys, p.max_rpm,"                  \
    "  least(coalesce(" CFG_RPM ", p.default_rpm), p.max_rpm) AS dflt_rpm"  \
    "  FROM tenants t"                                                      \
    "  LEFT JOIN subscriptions s ON s.tenant_id = t.id"                     \
    "   AND s.status = 'active'"                                            \
    "  JOIN plans p ON p.id = coalesce(s.plan_id, 'free')"                  \
    "  LEFT JOIN tenant_configs c ON c.tenant_id = t.id"                    \
    "   AND c.key = '" TENANT_RPM_KEY "'"                                   \
    "  WHERE t.id = $1)"

/* A key as the management API shows it (k joined with lim); jw_key_row()
 * reads them in this order (and formats the timestamps). Never the hash. */
#define KEY_COLS                                                            \
    " k.id, k.prefix, k.name, k.rpm,"                                       \
    " least(coalesce(k.rpm, lim.dflt_rpm), lim.max_rpm), k.env, k.enabled," \
    " array_to_json(k.providers), " ORG_UTC("k.expires_at") ","             \
    " " ORG_UTC("k.created_at") ", " ORG_UTC("k.updated_at") ","            \
    " " ORG_UTC("k.last_used_at") ", k.created_by,"                         \
    " CASE WHEN NOT k.enabled THEN 'disabled'"                              \
    "  WHEN k.expires_at <= now() THEN 'expired' ELSE 'active' END"

static const char *const providers[] = { "openai", "anthropic", "google",
                                         "azure", NULL };


/* -- validation ---------------------------------------------------------- */

static int
only_fields(req_t *r, yajl_val obj, const char *const *allowed)
{
    const char *const *a;
    size_t             i;

    for (i = 0; i < obj->u.object.len; i++) {
        for (a = allowed; *a != NULL; a++) {
            if (strcmp(obj->u.object.keys[i], *a) == 0) {
                break;
            }
        }
        if (*a == NULL) {
            reply_error(r, 422, "unknown_field", "unknown field \"%.64s\"%s",
                        obj->u.object.keys[i],
                        strcmp(obj->u.object.keys[i], "env") == 0
                        ? ": a key's environment cannot change" : "");
            return -1;
        }
    }
    return 0;
}


/* 1..100 characters (yajl has checked the UTF-8), no control characters,
 * something visible */
static int
field_name(req_t *r, yajl_val body, int flags, const char **out)
{
    const unsigned char *s;
    size_t               chars = 0;
    int                  visible = 0;

    if (req_field_str(r, body, "name", flags, 4 * KEY_NAME_MAX, out) != 0) {
        return -1;
    }
    if (*out == NULL) {
        return 0;
    }
    for (s = (const unsigned char *) *out; *s; s++) {
        if (*s < 0x20 || *s == 0x7f) {
            goto bad;
        }
        if ((*s & 0xc0) != 0x80) {
            chars++;
        }
        if (*s != ' ') {
            visible = 1;
        }
    }
    if (visible && chars <= KEY_NAME_MAX) {
        return 0;
    }

bad:
    reply_error(r, 422, "invalid_field",
                "\"name\" must be 1 to %d characters, without control"
                " characters", KEY_NAME_MAX);
    return -1;
}


static int
digits(const char *s, int n, int *out)
{
    int i, v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}


/* RFC 3339 date-time ("2030-01-31T12:00:00Z", "...T12:00:00.5+02:00")
 * into unix seconds and microseconds. Postgres would take far more
 * ("tomorrow", "infinity"), hence our own parser. 0 or -1. */
static int
parse_rfc3339(const char *s, long long *sec, long *usec)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                 31 };
    struct tm tm;
    int       y, mo, d, h, mi, se, oh, om, leap, n;
    long      us = 0, scale = 100000;
    time_t    t;

    if (strlen(s) < 20
        || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo)
        || s[7] != '-' || digits(s + 8, 2, &d)
        || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        || digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi)
        || s[16] != ':' || digits(s + 17, 2, &se))
    {
        return -1;
    }
    s += 19;

    if (*s == '.') {
        for (s++, n = 0; *s >= '0' && *s <= '9'; s++, n++) {
            us += scale * (*s - '0');
            scale /= 10;
        }
        if (n == 0 || n > 9) {
            return -1;
        }
    }

    oh = om = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        if (digits(s + 1, 2, &oh) || s[3] != ':' || digits(s + 4, 2, &om)
            || oh > 23 || om > 59)
        {
            return -1;
        }
        if (*s == '-') {
            oh = -oh;
            om = -om;
        }
        s += 6;
    } else {
        return -1;
    }
    if (*s != '\0') {
        return -1;
    }

    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1
        || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59
        || se > 60)
    {
        return -1;
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    t = timegm(&tm);
    if (t == (time_t) -1) {
        return -1;
    }

    *sec = (long long) t - (oh * 3600LL + om * 60LL);
    *usec = us;
    return 0;
}


/* expires_at: absent, null (when nullable) or an RFC 3339 time in the
 * future. *out gets a UTC timestamp Postgres reads exactly, or NULL. */
static int
field_expires(req_t *r, yajl_val body, int flags, char *buf, size_t len,
    const char **out)
{
    const char *s;
    long long   sec;
    long        usec;
    time_t      t;
    struct tm   tm;

    *out = NULL;
    if (req_field_str(r, body, "expires_at", flags, 64, &s) != 0) {
        return -1;
    }
    if (s == NULL) {
        return 0;
    }
    if (parse_rfc3339(s, &sec, &usec) != 0 || sec > 253402300799LL) {
        reply_error(r, 422, "invalid_field",
                    "\"expires_at\" must be an RFC 3339 time such as"
                    " 2030-01-31T12:00:00Z");
        return -1;
    }
    if (sec <= (long long) time(NULL)) {
        reply_error(r, 422, "invalid_field",
                    "\"expires_at\" must be in the future");
        return -1;
    }

    t = (time_t) sec;
    if (gmtime_r(&t, &tm) == NULL) {
        return -1;
    }
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, usec);
    *out = buf;
    return 0;
}


/* providers: absent, null or [] (every provider), or a list of known
 * providers; *out gets a Postgres array literal ("{openai,azure}"). */
static int
field_providers(req_t *r, yajl_val body, char *buf, size_t len,
    const char **out, int *present)
{
    yajl_val    v, e;
    unsigned    mask = 0;
    size_t      i, n;
    int         p;

    *out = NULL;
    *present = 0;
    v = json_get(body, "providers");
    if (v == NULL) {
        return 0;
    }
    *present = 1;

    if (!YAJL_IS_NULL(v)) {
        if (!YAJL_IS_ARRAY(v)) {
            reply_error(r, 422, "invalid_field",
                        "\"providers\" must be an array of provider names");
            return -1;
        }
        for (i = 0; i < v->u.array.len; i++) {
            e = v->u.array.values[i];
            for (p = 0; providers[p] != NULL; p++) {
                if (YAJL_IS_STRING(e) && strcmp(e->u.string, providers[p]) == 0)
                {
                    break;
                }
            }
            if (providers[p] == NULL) {
                reply_error(r, 422, "invalid_field",
                            "\"providers\" may only name openai, anthropic,"
                            " google and azure");
                return -1;
            }
            mask |= 1u << p;
        }
    }

    n = 0;
    buf[n++] = '{';
    for (p = 0; providers[p] != NULL; p++) {
        if (mask & (1u << p)) {
            n += snprintf(buf + n, len - n, "%s%s", n > 1 ? "," : "",
                          providers[p]);
        }
    }
    snprintf(buf + n, len - n, "}");
    *out = buf;
    return 0;
}


/* -- output -------------------------------------------------------------- */

static void
jw_col(jw_t *w, const char *key, PGresult *res, int row, int col, int raw)
{
    jw_key(w, key);
    if (PQgetisnull(res, row, col)) {
        jw_null(w);
    } else if (raw) {
        jw_raw(w, PQgetvalue(res, row, col));
    } else {
        jw_strn(w, PQgetvalue(res, row, col), PQgetlength(res, row, col));
    }
}


/* One key from KEY_COLS; key is the full key (only at creation) or NULL. */
static void
jw_key_row(jw_t *w, PGresult *res, int row, const char *key)
{
    jw_obj(w);
    jw_col(w, "id", res, row, 0, 0);
    if (key != NULL) {
        jw_kstr(w, "key", key);
    }
    jw_col(w, "prefix", res, row, 1, 0);
    jw_col(w, "name", res, row, 2, 0);
    jw_col(w, "rpm", res, row, 3, 1);
    jw_col(w, "effective_rpm", res, row, 4, 1);
    jw_col(w, "env", res, row, 5, 0);
    jw_kbool(w, "enabled", PQgetvalue(res, row, 6)[0] == 't');
    jw_col(w, "providers", res, row, 7, 1);
    jw_key(w, "expires_at");
    jw_pg_ts(w, PQgetisnull(res, row, 8) ? NULL : PQgetvalue(res, row, 8));
    jw_key(w, "created_at");
    jw_pg_ts(w, PQgetvalue(res, row, 9));
    jw_key(w, "updated_at");
    jw_pg_ts(w, PQgetvalue(res, row, 10));
    jw_key(w, "last_used_at");
    jw_pg_ts(w, PQgetisnull(res, row, 11) ? NULL : PQgetvalue(res, row, 11));
    jw_col(w, "created_by", res, row, 12, 0);
    jw_col(w, "status", res, row, 13, 0);
    jw_obj_end(w);
}


/* -- key material -------------------------------------------------------- */

/* A new key into key (KEY_LEN + 1) and its SHA-256 in lowercase hex into
 * hash (65). 0 or -1. */
static int
key_generate(char key[KEY_LEN + 1], char hash[65])
{
    unsigned char raw[KEY_RANDOM_BYTES], md[32];
    char          b64[4 * ((KEY_RANDOM_BYTES + 2) / 3) + 1];
    unsigned int  mdlen = 0;
    int           i, rc = -1;

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        goto done;
    }

    /* base64 to base64url, padding dropped */
    EVP_EncodeBlock((unsigned char *) b64, raw, sizeof(raw));
    for (i = 0; i < KEY_B64_LEN; i++) {
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    }
    memcpy(key, "sk-", 3);
    memcpy(key + 3, b64, KEY_B64_LEN);
    key[KEY_LEN] = '\0';

    if (EVP_Digest(key, KEY_LEN, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen != sizeof(md))
    {
        goto done;
    }
    for (i = 0; i < 32; i++) {
        snprintf(hash + 2 * i, 3, "%02x", md[i]);
    }
    rc = 0;

done:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b64, sizeof(b64));
    return rc;
}


/* -- routes -------------------------------------------------------------- */

/* POST /trueportai-services/api/v1/keys
 * {name, rpm?, expires_at?, providers?, env?} -> 201 with the key, once.
 * The tenant row is locked so that two creations cannot both take the
 * plan's last key. */
void
h_keys_create(req_t *r)
{
    static const char *const fields[] = { "name", "rpm", "expires_at",
                                          "providers", "env", NULL };
    char        key[KEY_LEN + 1], hash[65], sprov[64], sexp[48], srpm[24];
    char        prefix[KEY_PREFIX_LEN + 1];
    const char *name, *exp, *prov, *env;
    long long   rpm = 0, max_rpm;
    int         rpm_set, prov_set;
    yajl_val    body;
    PGresult   *res;
    jw_t        w, d;
    char       *detail;

    if (req_json_body(r, &body) != 0
        || only_fields(r, body, fields) != 0
        || field_name(r, body, F_REQUIRED, &name) != 0
        || req_field_int(r, body, "rpm", F_NULLABLE, 1, INT_MAX, &rpm,
                         &rpm_set) != 0
        || field_expires(r, body, F_NULLABLE, sexp, sizeof(sexp), &exp) != 0
        || field_providers(r, body, sprov, sizeof(sprov), &prov, &prov_set)
           != 0
        || req_field_str(r, body, "env", F_NULLABLE, KEY_ENV_MAX, &env) != 0)
    {
        return;
    }
    if (rpm_set && json_get(body, "rpm") != NULL
        && YAJL_IS_NULL(json_get(body, "rpm")))
    {
        rpm_set = 0;                       /* null: the default */
    }
    if (env == NULL) {
        env = r->auth.env;
    }

    if (db_begin(r) != 0) {
        return;
    }

    res = dbq(r,
              "WITH" LIM_CTE
              " SELECT lim.plan, lim.max_rpm, $2 = ANY (t.environments),"
              " array_to_string(t.environments, ', ')"
              " FROM tenants t, lim WHERE t.id = $1 FOR NO KEY UPDATE OF t",
              2, r->auth.tenant_id, env);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return;
    }

    max_rpm = atoll(PQgetvalue(res, 0, 1));
    if (rpm_set && rpm > max_rpm) {
        reply_error(r, 422, "invalid_field",
                    "\"rpm\" must be between 1 and %lld on the %s plan",
                    max_rpm, PQgetvalue(res, 0, 0));
        return;
    }
    if (PQgetvalue(res, 0, 2)[0] != 't') {
        reply_error(r, 422, "invalid_field",
                    "\"env\" must be one of the tenant's environments (%s)",
                    PQgetvalue(res, 0, 3));
        return;
    }

    if (key_generate(key, hash) != 0) {
        log_error("req=%s msg=\"cannot generate a key\"", r->id);
        reply_error(r, 500, "internal_error", "internal error");
        return;
    }
    memcpy(prefix, key, KEY_PREFIX_LEN);
    prefix[KEY_PREFIX_LEN] = '\0';
    snprintf(srpm, sizeof(srpm), "%lld", rpm);

    /* the count sees every key committed before our lock was granted */
    res = dbq(r,
              "WITH" LIM_CTE ","
              " k AS (INSERT INTO api_keys (tenant_id, name, prefix, key_hash,"
              "  env, rpm, providers, expires_at, created_by)"
              "  SELECT $1, $2, $3, $4, $5, $6::int,"
              "   coalesce($7::text[], '{}'), $8::timestamptz, $9"
              "  FROM lim WHERE (SELECT count(*) FROM api_keys"
              "   WHERE tenant_id = $1 AND deleted_at IS NULL) < lim.max_keys"
              "  RETURNING *)"
              " SELECT" KEY_COLS " FROM k, lim",
              9, r->auth.tenant_id, name, prefix, hash, env,
              rpm_set ? srpm : NULL, prov, exp, r->auth.user_id);
    if (res == NULL) {
        goto done;
    }
    if (PQntuples(res) == 0) {
        res = dbq(r, "WITH" LIM_CTE " SELECT plan, max_keys FROM lim", 1,
                  r->auth.tenant_id);
        if (res != NULL && PQntuples(res) == 1) {
            reply_error(r, 409, "key_limit_reached",
                        "the %s plan allows %s keys: delete a key or change"
                        " the plan", PQgetvalue(res, 0, 0),
                        PQgetvalue(res, 0, 1));
        } else if (res != NULL) {
            reply_error(r, 404, "not_found", "no such tenant");
        }
        goto done;
    }

    jw_init(&d);
    jw_obj(&d);
    jw_kstr(&d, "name", name);
    jw_kstr(&d, "prefix", prefix);
    jw_kstr(&d, "env", env);
    jw_obj_end(&d);
    detail = jw_steal(&d, NULL);
    if (audit_record(r, r->auth.tenant_id, "key.create",
                     PQgetvalue(res, 0, 0), detail) != 0
        || db_commit(r) != 0)
    {
        free(detail);
        goto done;
    }
    free(detail);

    jw_init(&w);
    jw_key_row(&w, res, 0, key);
    reply_json(r, 201, &w);

done:
    OPENSSL_cleanse(key, sizeof(key));
}


/* GET /trueportai-services/api/v1/keys?env=&enabled=&limit=&offset= */
void
h_keys_list(req_t *r)
{
    const char *env, *enabled;
    char        slimit[24], soffset[24];
    long        limit, offset;
    long long   total;
    PGresult   *res;
    jw_t        w;
    int         i;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    env = req_query(r, "env");
    if (env != NULL && (env[0] == '\0' || strlen(env) > KEY_ENV_MAX)) {
        reply_error(r, 400, "invalid_filter",
                    "env must be 1 to %d characters", KEY_ENV_MAX);
        return;
    }
    enabled = req_query(r, "enabled");
    if (enabled != NULL && strcmp(enabled, "true") != 0
        && strcmp(enabled, "false") != 0)
    {
        reply_error(r, 400, "invalid_filter", "enabled must be true or false");
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

#define KEYS_WHERE                                                          \
    " WHERE k.tenant_id = $1 AND k.deleted_at IS NULL"                      \
    " AND ($2::text IS NULL OR k.env = $2)"                                 \
    " AND ($3::boolean IS NULL OR k.enabled = $3)"

#define KEYS_PAGE                                                           \
    "FROM api_keys k" KEYS_WHERE " ORDER BY k.created_at DESC, k.id DESC"

    /* the page first, then its columns: formatting only the rows shown,
     * not every key the sort looked at; the total rides along (see
     * PAGE_TOTAL_IF_MORE) */
    res = dbq(r,
              "WITH" LIM_CTE
              " SELECT" KEY_COLS ","
              PAGE_TOTAL_IF_MORE("$4", "$5", KEYS_PAGE,
                                 "SELECT count(*) FROM api_keys k" KEYS_WHERE)
              " FROM (SELECT * " KEYS_PAGE " LIMIT $4 OFFSET $5) k"
              " CROSS JOIN lim ORDER BY k.created_at DESC, k.id DESC",
              5, r->auth.tenant_id, env, enabled, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM api_keys k" KEYS_WHERE,
                   3, r->auth.tenant_id, env, enabled) != 0)
    {
        return;
    }
#undef KEYS_PAGE
#undef KEYS_WHERE

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_key_row(&w, res, i, NULL);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}


/* PATCH /trueportai-services/api/v1/keys/{id}
 * any of {enabled, name, rpm (null: default), expires_at (null: never),
 * providers (null or []: all)} -> 200 the key */
void
h_keys_update(req_t *r)
{
    static const char *const fields[] = { "enabled", "name", "rpm",
                                          "expires_at", "providers", NULL };
    char        sprov[64], sexp[48], srpm[24];
    const char *id, *name, *exp, *prov;
    long long   rpm = 0;
    int         enabled = 0, en_set, rpm_set, rpm_null, exp_set, prov_set;
    yajl_val    body;
    PGresult   *res;
    jw_t        w, d;
    char       *detail;
    int         rc;

    id = req_param(r, "id");
    if (!is_uuid(id)) {
        reply_error(r, 404, "not_found", "no such key");
        return;
    }

    if (req_json_body(r, &body) != 0
        || only_fields(r, body, fields) != 0
        || req_field_bool(r, body, "enabled", 0, &enabled, &en_set) != 0
        || field_name(r, body, 0, &name) != 0
        || req_field_int(r, body, "rpm", F_NULLABLE, 1, INT_MAX, &rpm,
                         &rpm_set) != 0
        || field_expires(r, body, F_NULLABLE, sexp, sizeof(sexp), &exp) != 0
        || field_providers(r, body, sprov, sizeof(sprov), &prov, &prov_set)
           != 0)
    {
        return;
    }
    if (body->u.object.len == 0) {
        reply_error(r, 422, "nothing_to_update",
                    "give at least one of enabled, name, rpm, expires_at,"
                    " providers");
        return;
    }
    exp_set = json_get(body, "expires_at") != NULL;
    rpm_null = rpm_set && YAJL_IS_NULL(json_get(body, "rpm"));
    snprintf(srpm, sizeof(srpm), "%lld", rpm);

    /* the rpm cap is the plan's; rpm null (the default) needs no check */
    if (rpm_set && !rpm_null) {
        res = dbq(r, "WITH" LIM_CTE " SELECT plan, max_rpm FROM lim", 1,
                  r->auth.tenant_id);
        if (res == NULL) {
            return;
        }
        if (PQntuples(res) == 1 && rpm > atoll(PQgetvalue(res, 0, 1))) {
            reply_error(r, 422, "invalid_field",
                        "\"rpm\" must be between 1 and %s on the %s plan",
                        PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
            return;
        }
    }

    if (db_begin(r) != 0) {
        return;
    }
    res = dbq(r,
              "WITH" LIM_CTE ","
              " k AS (UPDATE api_keys SET"
              "  enabled = coalesce($3::boolean, enabled),"
              "  name = coalesce($4, name),"
              "  rpm = CASE WHEN $5::boolean THEN $6::int"
              "        ELSE rpm END,"
              "  expires_at = CASE WHEN $7::boolean THEN $8::timestamptz"
              "               ELSE expires_at END,"
              "  providers = coalesce($9::text[], providers),"
              "  updated_at = now()"
              "  WHERE id = $2 AND tenant_id = $1 AND deleted_at IS NULL"
              "  RETURNING *)"
              " SELECT" KEY_COLS " FROM k, lim",
              9, r->auth.tenant_id, id, en_set ? (enabled ? "t" : "f") : NULL,
              name, rpm_set ? "t" : "f", rpm_null ? NULL : srpm,
              exp_set ? "t" : "f", exp, prov);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such key");
        return;
    }

    /* the body holds only the fields above: no secret in it */
    jw_init(&d);
    jw_tree(&d, body);
    detail = jw_steal(&d, NULL);
    rc = audit_record(r, r->auth.tenant_id, "key.update", id, detail);
    free(detail);
    if (rc != 0 || db_commit(r) != 0) {
        return;
    }

    jw_init(&w);
    jw_key_row(&w, res, 0, NULL);
    reply_json(r, 200, &w);
}


/* DELETE /trueportai-services/api/v1/keys/{id} -> 204. The row stays,
 * marked deleted, so the gateway answers "deleted" rather than "unknown". */
void
h_keys_delete(req_t *r)
{
    const char *id;
    PGresult   *res;
    char       *detail;
    jw_t        d;
    int         rc;

    id = req_param(r, "id");
    if (!is_uuid(id)) {
        reply_error(r, 404, "not_found", "no such key");
        return;
    }

    if (db_begin(r) != 0) {
        return;
    }
    res = dbq(r,
              "UPDATE api_keys SET deleted_at = now(), updated_at = now()"
              " WHERE id = $2 AND tenant_id = $1 AND deleted_at IS NULL"
              " RETURNING name, prefix", 2, r->auth.tenant_id, id);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such key");
        return;
    }

    jw_init(&d);
    jw_obj(&d);
    jw_kstr(&d, "name", PQgetvalue(res, 0, 0));
    jw_kstr(&d, "prefix", PQgetvalue(res, 0, 1));
    jw_obj_end(&d);
    detail = jw_steal(&d, NULL);
    rc = audit_record(r, r->auth.tenant_id, "key.delete", id, detail);
    free(detail);
    if (rc != 0 || db_commit(r) != 0) {
        return;
    }

    reply_raw(r, 204, "");
}


/* -- the gateway's lookup ------------------------------------------------ */

static int
is_key_hash(const char *s)
{
    int i;

    if (s == NULL || strlen(s) != 64) {
        return 0;
    }
    for (i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}


/* Status precedence: deleted, tenant_suspended, disabled, expired,
 * quota_exceeded (the plan's monthly requests, counted by the ingester),
 * provider_not_allowed (by the key's providers or the tenant's
 * allowed_providers setting), active. last_used_at moves at most once a
 * minute, and never waits for a row another transaction holds. */
#define RESOLVE_SQL                                                         \
    "WITH k AS (SELECT k.id, k.tenant_id, k.env,"                           \
    "  least(coalesce(k.rpm, " CFG_RPM ", p.default_rpm), p.max_rpm) AS rpm," \
    "  CASE WHEN k.deleted_at IS NOT NULL THEN 'deleted'"                   \
    "   WHEN t.status <> 'active' THEN 'tenant_suspended'"                  \
    "   WHEN NOT k.enabled THEN 'disabled'"                                 \
    "   WHEN k.expires_at <= now() THEN 'expired'"                          \
    "   WHEN p.monthly_requests > 0 AND coalesce(um.requests, 0)"           \
    "        >= p.monthly_requests THEN 'quota_exceeded'"                   \
    "   WHEN (cardinality(k.providers) > 0"                                 \
    "         AND NOT $2::text = ANY (k.providers))"                        \
    "    OR (jsonb_typeof(ap.value) = 'array' AND NOT ap.value ? $2)"       \
    "    THEN 'provider_not_allowed'"                                       \
    "   ELSE 'active' END AS status,"                                       \
    "  floor(extract(epoch FROM k.expires_at))::bigint AS expires,"         \
    "  cred.secret, ep.value #>> '{}' AS endpoint, k.last_used_at,"         \
    "  t.policy_revision, p.default_credentials,"                           \
    "  coalesce(lp.value = 'true'::jsonb, false) AS log_prompts"            \
    "  FROM api_keys k"                                                     \
    "  JOIN tenants t ON t.id = k.tenant_id"                                \
    "  LEFT JOIN subscriptions s ON s.tenant_id = k.tenant_id"              \
    "   AND s.status = 'active'"                                            \
    "  JOIN plans p ON p.id = coalesce(s.plan_id, 'free')"                  \
    "  LEFT JOIN tenant_configs c ON c.tenant_id = k.tenant_id"             \
    "   AND c.key = '" TENANT_RPM_KEY "'"                                   \
    "  LEFT JOIN tenant_configs ap ON ap.tenant_id = k.tenant_id"           \
    "   AND ap.key = '" TENANT_PROVIDERS_KEY "'"                            \
    "  LEFT JOIN tenant_configs cred ON cred.tenant_id = k.tenant_id"       \
    "   AND cred.key = 'providers.' || $2 || '.api_key'"                    \
    "  LEFT JOIN tenant_configs ep ON ep.tenant_id = k.tenant_id"           \
    "   AND ep.key = 'providers.' || $2 || '.endpoint'"                     \
    "  LEFT JOIN tenant_configs lp ON lp.tenant_id = k.tenant_id"           \
    "   AND lp.key = '" TENANT_LOG_PROMPTS_KEY "'"                          \
    "  LEFT JOIN usage_monthly um ON um.tenant_id = k.tenant_id"            \
    "   AND um.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date" \
    "  WHERE k.key_hash = $1),"                                             \
    " touch AS (UPDATE api_keys SET last_used_at = now() WHERE id IN"       \
    "  (SELECT a.id FROM api_keys a, k WHERE a.id = k.id"                   \
    "   AND k.status = 'active'"                                            \
    "   AND (a.last_used_at IS NULL"                                        \
    "        OR a.last_used_at < now() - interval '1 minute')"              \
    "   FOR UPDATE OF a SKIP LOCKED))"                                      \
    " SELECT id, tenant_id, env, rpm, status, expires, secret, endpoint,"   \
    " policy_revision, default_credentials, log_prompts FROM k"


static void
clear_result(void *res)
{
    PQclear(res);
}


/* Runs RESOLVE_SQL as a statement prepared once per database connection:
 * planning it costs far more than running it, and this is the gateway's
 * cache-miss path. A connection found dead (the server restarted) is
 * replaced and the query tried once more. Replies and returns NULL on
 * failure, like dbq(). */
static PGresult *
resolve_exec(req_t *r, const char *hash, const char *provider)
{
    static __thread PGconn *prepared_conn;
    static __thread int     prepared_pid;
    const char             *vals[2] = { hash, provider };
    const char             *state = NULL, *code, *msg = NULL;
    PGresult               *res;
    PGconn                 *c;
    int                     attempt, status;
    char                    esc[512];

    for (attempt = 0; attempt < 2; attempt++) {
        c = db_conn();
        if (c == NULL) {
            state = NULL;
            break;
        }

        /* a reconnection is a new backend, without our statement */
        res = NULL;
        if (c != prepared_conn || PQbackendPID(c) != prepared_pid) {
            prepared_conn = NULL;
            res = PQprepare(c, "tp_keys_resolve", RESOLVE_SQL, 2, NULL);
            req_defer(r, clear_result, res);
            if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
                prepared_conn = c;
                prepared_pid = PQbackendPID(c);
                res = NULL;
            }
        }
        if (res == NULL) {
            res = PQexecPrepared(c, "tp_keys_resolve", 2, vals, NULL, NULL,
                                 0);
            req_defer(r, clear_result, res);
            if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
                return res;
            }
        }

        state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        prepared_conn = NULL;
        if (PQstatus(c) != CONNECTION_OK) {
            db_close();
            state = NULL;
            continue;
        }
        /* 26000: our statement is gone (a DISCARD ALL): prepare again */
        if (state == NULL || strcmp(state, "26000") != 0) {
            break;
        }
    }

    status = db_status_for(state, &code);
    log_error("req=%s msg=\"key resolve query failed\" sqlstate=%s"
              " error=\"%s\"", r->id, state ? state : "-",
              log_escape(msg, esc, sizeof(esc)));
    reply_error(r, status, code, "%s",
                status == 503 ? "the database is unavailable, retry later"
                              : "internal error");
    return NULL;
}


/* GET /internal/v1/keys/resolve?provider=<name> with the key's SHA-256 in
 * hex in X-TruePort-Key-Hash (nginx only; a "hash" argument is taken too,
 * for direct callers: nginx keeps the hash out of the URI, which it logs).
 * 200 is a definitive answer the module may cache; anything else is not
 * (503: the database is down, keep the stale entry). */
void
h_keys_resolve(req_t *r)
{
    const char *hash, *provider, *status, *enc;
    char        aad[128], ckey[64];
    char       *cred = NULL;
    PGresult   *res;
    jw_t        w;
    int         p;

    hash = req_header(r, "X-TruePort-Key-Hash");
    if (hash == NULL) {
        hash = req_query(r, "hash");
    }
    provider = req_query(r, "provider");
    if (!is_key_hash(hash)) {
        reply_error(r, 400, "invalid_hash",
                    "X-TruePort-Key-Hash (or hash) must be 64 lowercase hex"
                    " characters");
        return;
    }
    for (p = 0; providers[p] != NULL; p++) {
        if (provider != NULL && strcmp(provider, providers[p]) == 0) {
            break;
        }
    }
    if (providers[p] == NULL) {
        reply_error(r, 400, "invalid_provider",
                    "provider must be openai, anthropic, google or azure");
        return;
    }

    res = resolve_exec(r, hash, provider);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_raw(r, 200, "{\"found\":false}");
        return;
    }

    /* the tenant's own credential, only for a key that may use it */
    status = PQgetvalue(res, 0, 4);
    if (strcmp(status, "active") == 0 && !PQgetisnull(res, 0, 6)) {
        enc = PQgetvalue(res, 0, 6);
        snprintf(ckey, sizeof(ckey), "providers.%s.api_key", provider);
        secret_tenant_aad(aad, sizeof(aad), PQgetvalue(res, 0, 1), ckey);
        cred = secret_decrypt(cfg.master_key, enc, aad);
        if (cred == NULL) {
            /* wrong master key or a damaged row: fail closed rather than
             * let the gateway fall back to its default credential */
            log_error("req=%s msg=\"cannot decrypt a provider credential\""
                      " tenant=%s key=%s", r->id, PQgetvalue(res, 0, 1),
                      ckey);
            reply_error(r, 500, "credential_unavailable",
                        "the tenant's %s credential cannot be decrypted",
                        provider);
            return;
        }
    }

    jw_init(&w);
    jw_obj(&w);
    jw_kbool(&w, "found", 1);
    jw_kstr(&w, "key_id", PQgetvalue(res, 0, 0));
    jw_kstr(&w, "tenant_id", PQgetvalue(res, 0, 1));
    jw_kstr(&w, "env", PQgetvalue(res, 0, 2));
    jw_kraw(&w, "rpm", PQgetvalue(res, 0, 3));
    jw_kstr(&w, "status", status);
    jw_col(&w, "expires_at", res, 0, 5, 1);
    jw_kstr(&w, "credential", cred);
    jw_col(&w, "endpoint", res, 0, 7, 0);
    /* the tenant's rules changed when this moved (handlers/policies.c) */
    jw_kraw(&w, "policy_revision", PQgetvalue(res, 0, 8));
    /* the plan lets the tenant spend the route's default credential */
    jw_kbool(&w, "default_credentials", PQgetvalue(res, 0, 9)[0] == 't');
    jw_kbool(&w, "log_prompts", PQgetvalue(res, 0, 10)[0] == 't');
    jw_obj_end(&w);
    secret_free(cred);

    reply_json(r, 200, &w);
}
