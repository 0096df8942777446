/* trueport_gateway.c - key extraction, query-string editing and the parser
 * of the sidecar's key lookup answer.
 *
 * The answer is parsed with yajl's event parser in an arena on the stack:
 * the input is bounded (TP_RESOLVE_MAX) and so is everything yajl can ask
 * for (its handle, its lexer and a decode buffer that at most doubles
 * past the longest string), so the arena cannot run dry and nothing here
 * calls malloc.  Numbers are taken raw (yajl stops on integers above
 * LLONG_MAX otherwise) and nesting is refused past a few levels. */
#include "trueport_gateway.h"

#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define ARENA_SIZE   (8 * TP_RESOLVE_MAX + 4096)
#define MAX_DEPTH    8

enum {
    F_NONE = 0, F_FOUND, F_KEY_ID, F_TENANT_ID, F_ENV, F_RPM, F_STATUS,
    F_EXPIRES_AT, F_CREDENTIAL, F_ENDPOINT, F_POLICY_REVISION,
    F_DEFAULT_CREDENTIALS, F_LOG_PROMPTS, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    NULL, "found", "key_id", "tenant_id", "env", "rpm", "status",
    "expires_at", "credential", "endpoint", "policy_revision",
    "default_credentials", "log_prompts"
};

static const char *const status_names[TP_KEY_STATUSES] = {
    "unknown", "active", "disabled", "expired", "deleted",
    "tenant_suspended", "provider_not_allowed", "quota_exceeded"
};

typedef struct {
    unsigned char  *pos;
    unsigned char  *end;
} arena_t;

typedef struct {
    tp_resolve_t   *out;
    int             depth;
    int             field;
    int             found;
    unsigned        seen;
    char           *err;
    size_t          errlen;
} parse_t;


/* -- the arena yajl allocates from ------------------------------------ */

#define ALIGN(n)  (((n) + 15) & ~(size_t) 15)

static void *
a_malloc(void *ctx, size_t n)
{
    arena_t        *a = ctx;
    unsigned char  *p;

    n = ALIGN(n) + 16;
    if (n > (size_t) (a->end - a->pos)) {
        return NULL;
    }
    p = a->pos;
    a->pos += n;
    memcpy(p, &n, sizeof(size_t));
    return p + 16;
}


static void *
a_realloc(void *ctx, void *old, size_t n)
{
    size_t          have;
    unsigned char  *p;

    p = a_malloc(ctx, n);
    if (p == NULL || old == NULL) {
        return p;
    }
    memcpy(&have, (unsigned char *) old - 16, sizeof(size_t));
    have -= 16;
    memcpy(p, old, have < n ? have : n);
    return p;
}


static void
a_free(void *ctx, void *p)
{
    (void) ctx;
    (void) p;
}


/* -- helpers ------------------------------------------------------------ */

static int
fail(parse_t *ps, const char *what, int field)
{
    if (ps->err[0] == '\0') {
        if (field != F_NONE) {
            snprintf(ps->err, ps->errlen, "%s: %s", field_names[field], what);
        } else {
            snprintf(ps->err, ps->errlen, "%s", what);
        }
    }
    return 0;
}


static int
printable(const unsigned char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}


static int
uuid_like(const unsigned char *s, size_t len)
{
    size_t  i;

    if (len != TP_UUID_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }
        } else if (!((s[i] >= '0' && s[i] <= '9')
                     || (s[i] >= 'a' && s[i] <= 'f')
                     || (s[i] >= 'A' && s[i] <= 'F')))
        {
            return 0;
        }
    }
    return 1;
}


/* a non-negative integer without sign, fraction or exponent */
static int
uint_of(const char *s, size_t len, uint64_t max, uint64_t *v)
{
    size_t    i;
    uint64_t  n = 0;

    if (len == 0 || len > 20) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        if (n > (max - (uint64_t) (s[i] - '0')) / 10) {
            return -1;
        }
        n = n * 10 + (uint64_t) (s[i] - '0');
    }
    *v = n;
    return 0;
}


/* a value of the top-level object: 1 to take it, 0 to skip it (nested
 * in a member we do not know), -1 when it stands where none may */
static int
at_value(parse_t *ps)
{
    if (ps->depth == 0) {
        return -1;
    }
    if (ps->depth > 1 || ps->field == F_NONE) {
        return 0;
    }
    ps->seen |= 1u << ps->field;
    return 1;
}


/* -- yajl callbacks ------------------------------------------------------ */

static int
cb_null(void *ctx)
{
    parse_t  *ps = ctx;
    int       rc, f;

    rc = at_value(ps);
    if (rc <= 0) {
        return rc == 0 ? 1 : fail(ps, "not an object", F_NONE);
    }
    f = ps->field;
    ps->field = F_NONE;

    switch (f) {
    case F_EXPIRES_AT:
        ps->out->expires_at = 0;
        return 1;
    case F_CREDENTIAL:
        ps->out->credential_len = 0;
        return 1;
    case F_ENDPOINT:
        ps->out->endpoint_len = 0;
        return 1;
    default:
        return fail(ps, "must not be null", f);
    }
}


static int
cb_boolean(void *ctx, int b)
{
    parse_t  *ps = ctx;
    int       rc, f;
    unsigned  bit;

    rc = at_value(ps);
    if (rc <= 0) {
        return rc == 0 ? 1 : fail(ps, "not an object", F_NONE);
    }
    f = ps->field;
    ps->field = F_NONE;

    switch (f) {
    case F_FOUND:
        ps->found = b ? 1 : 0;
        return 1;
    case F_DEFAULT_CREDENTIALS:
    case F_LOG_PROMPTS:
        bit = f == F_LOG_PROMPTS ? TP_RESOLVE_LOG_PROMPTS
                                 : TP_RESOLVE_DEFAULT_CREDENTIALS;
        ps->out->flags = b ? ps->out->flags | bit : ps->out->flags & ~bit;
        return 1;
    default:
        return fail(ps, "must not be a boolean", f);
    }
}


static int
cb_number(void *ctx, const char *s, size_t len)
{
    parse_t   *ps = ctx;
    int        rc, f;
    uint64_t   v;

    rc = at_value(ps);
    if (rc <= 0) {
        return rc == 0 ? 1 : fail(ps, "not an object", F_NONE);
    }
    f = ps->field;
    ps->field = F_NONE;

    switch (f) {
    case F_RPM:
        if (uint_of(s, len, 2147483647, &v) != 0 || v == 0) {
            return fail(ps, "must be an integer from 1 to 2147483647", f);
        }
        ps->out->rpm = (uint32_t) v;
        return 1;
    case F_EXPIRES_AT:
        if (uint_of(s, len, INT64_MAX, &v) != 0) {
            return fail(ps, "must be a non-negative integer", f);
        }
        ps->out->expires_at = (int64_t) v;
        return 1;
    case F_POLICY_REVISION:
        if (uint_of(s, len, UINT64_MAX, &v) != 0) {
            return fail(ps, "must be a non-negative integer", f);
        }
        ps->out->policy_revision = v;
        return 1;
    default:
        return fail(ps, "must not be a number", f);
    }
}


static int
cb_string(void *ctx, const unsigned char *s, size_t len)
{
    parse_t       *ps = ctx;
    int            rc, f, i;
    tp_resolve_t  *out = ps->out;

    rc = at_value(ps);
    if (rc <= 0) {
        return rc == 0 ? 1 : fail(ps, "not an object", F_NONE);
    }
    f = ps->field;
    ps->field = F_NONE;

    switch (f) {
    case F_KEY_ID:
    case F_TENANT_ID:
        if (!uuid_like(s, len)) {
            return fail(ps, "must be a uuid", f);
        }
        memcpy(f == F_KEY_ID ? out->key_id : out->tenant_id, s, len);
        (f == F_KEY_ID ? out->key_id : out->tenant_id)[len] = '\0';
        return 1;

    case F_ENV:
        if (len == 0 || len > TP_ENV_MAX || !printable(s, len)) {
            return fail(ps, "must be 1 to 32 printable characters", f);
        }
        memcpy(out->env, s, len);
        out->env[len] = '\0';
        out->env_len = len;
        return 1;

    case F_STATUS:
        for (i = TP_KEY_ACTIVE; i < TP_KEY_STATUSES; i++) {
            if (strlen(status_names[i]) == len
                && memcmp(status_names[i], s, len) == 0)
            {
                out->status = i;
                return 1;
            }
        }
        return fail(ps, "unknown status", f);

    case F_CREDENTIAL:
        /* it goes into a request header: no blanks, no control bytes */
        if (len > TP_CREDENTIAL_MAX || !printable(s, len)) {
            return fail(ps, "must be up to 1024 printable characters", f);
        }
        memcpy(out->credential, s, len);
        out->credential[len] = '\0';
        out->credential_len = len;
        return 1;

    case F_ENDPOINT:
        if (len == 0) {
            out->endpoint_len = 0;
            return 1;
        }
        if (len > TP_ENDPOINT_MAX || !printable(s, len)
            || !((len > 7 && memcmp(s, "http://", 7) == 0)
                 || (len > 8 && memcmp(s, "https://", 8) == 0)))
        {
            return fail(ps, "must be an http(s) URL", f);
        }
        /* the base of an upstream URL: no query, no fragment */
        if (memchr(s, '?', len) || memchr(s, '#', len)) {
            return fail(ps, "must be an http(s) URL", f);
        }
        while (len > 0 && s[len - 1] == '/') {
            len--;
        }
        memcpy(out->endpoint, s, len);
        out->endpoint[len] = '\0';
        out->endpoint_len = len;
        return 1;

    default:
        return fail(ps, "must not be a string", f);
    }
}


static int
cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    parse_t  *ps = ctx;
    int       i;

    ps->field = F_NONE;

    if (ps->depth != 1) {
        return 1;
    }
    for (i = F_FOUND; i < F_COUNT; i++) {
        if (strlen(field_names[i]) == len
            && memcmp(field_names[i], s, len) == 0)
        {
            ps->field = i;
            break;
        }
    }
    return 1;
}


static int
cb_start(void *ctx, int is_map)
{
    parse_t  *ps = ctx;

    if (ps->depth == 0) {
        if (!is_map) {
            return fail(ps, "not an object", F_NONE);
        }
        ps->depth = 1;
        return 1;
    }
    if (ps->depth == 1 && ps->field != F_NONE) {
        return fail(ps, "must not be an object or an array", ps->field);
    }
    if (++ps->depth > MAX_DEPTH) {
        return fail(ps, "nested too deeply", F_NONE);
    }
    ps->field = F_NONE;
    return 1;
}


static int
cb_start_map(void *ctx)
{
    return cb_start(ctx, 1);
}


static int
cb_start_array(void *ctx)
{
    return cb_start(ctx, 0);
}


static int
cb_end(void *ctx)
{
    parse_t  *ps = ctx;

    ps->depth--;
    ps->field = F_NONE;
    return 1;
}


static const yajl_callbacks callbacks = {
    cb_null, cb_boolean, NULL, NULL, cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end, cb_start_array, cb_end
};


/* -- the answer ---------------------------------------------------------- */

int
tp_resolve_parse(const unsigned char *buf, size_t len, tp_resolve_t *out,
                 char *err, size_t errlen)
{
    unsigned char   arena[ARENA_SIZE];
    arena_t         a;
    parse_t         ps;
    yajl_handle     y;
    yajl_status     st;
    yajl_alloc_funcs  af;
    char            tmp[1];
    unsigned        need;

    if (err == NULL || errlen == 0) {
        err = tmp;
        errlen = sizeof(tmp);
    }
    err[0] = '\0';

    memset(out, 0, sizeof(tp_resolve_t));
    memset(&ps, 0, sizeof(parse_t));
    ps.out = out;
    ps.err = err;
    ps.errlen = errlen;

    if (len == 0 || len > TP_RESOLVE_MAX) {
        snprintf(err, errlen, "answer of %zu bytes", len);
        return -1;
    }

    a.pos = arena;
    a.end = arena + sizeof(arena);
    af.malloc = a_malloc;
    af.realloc = a_realloc;
    af.free = a_free;
    af.ctx = &a;

    y = yajl_alloc(&callbacks, &af, &ps);
    if (y == NULL) {
        snprintf(err, errlen, "no memory for the parser");
        return -1;
    }

    st = yajl_parse(y, buf, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(y);
    }
    if (st != yajl_status_ok) {
        if (err[0] == '\0') {
            snprintf(err, errlen, "invalid JSON");
        }
        yajl_free(y);
        return -1;
    }
    yajl_free(y);

    if (!(ps.seen & (1u << F_FOUND))) {
        snprintf(err, errlen, "found: missing");
        return -1;
    }

    if (!ps.found) {
        memset(out, 0, sizeof(tp_resolve_t));
        out->status = TP_KEY_UNKNOWN;
        return 0;
    }

    need = (1u << F_KEY_ID) | (1u << F_TENANT_ID) | (1u << F_ENV)
           | (1u << F_RPM) | (1u << F_STATUS);

    if ((ps.seen & need) != need) {
        snprintf(err, errlen, "key_id, tenant_id, env, rpm or status missing");
        return -1;
    }

    return 0;
}


const char *
tp_key_status_name(int status)
{
    if (status < 0 || status >= TP_KEY_STATUSES) {
        return "invalid";
    }
    return status_names[status];
}


/* -- the key ------------------------------------------------------------- */

int
tp_key_valid(const unsigned char *key, size_t len)
{
    return len > 0 && len <= TP_KEY_MAX && printable(key, len);
}


int
tp_key_from_bearer(const unsigned char *v, size_t len,
                   const unsigned char **key, size_t *klen)
{
    static const char  scheme[] = "bearer";
    size_t             i;

    if (len <= sizeof(scheme) - 1) {
        return -1;
    }
    for (i = 0; i < sizeof(scheme) - 1; i++) {
        if ((v[i] | 0x20) != scheme[i]) {
            return -1;
        }
    }
    if (v[i] != ' ' && v[i] != '\t') {
        return -1;
    }
    while (i < len && (v[i] == ' ' || v[i] == '\t')) {
        i++;
    }
    while (len > i && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }
    if (i == len) {
        return -1;
    }
    *key = v + i;
    *klen = len - i;
    return 0;
}


/* -- the query string ---------------------------------------------------- */

/* the name of the argument at args[i] (up to '=' or '&') is name */
static int
arg_is(const unsigned char *args, size_t len, size_t i, const char *name,
       size_t nlen)
{
    return len - i >= nlen && memcmp(args + i, name, nlen) == 0
           && (i + nlen == len || args[i + nlen] == '='
               || args[i + nlen] == '&');
}


int
tp_args_get(const unsigned char *args, size_t len, const char *name,
            const unsigned char **val, size_t *vlen)
{
    size_t  i, nlen, end;

    nlen = strlen(name);

    for (i = 0; i < len; i = end + 1) {
        for (end = i; end < len && args[end] != '&'; end++) {
            /* void */
        }
        if (arg_is(args, len, i, name, nlen)) {
            i += nlen;
            if (i < end) {
                i++;            /* '=' */
            }
            *val = args + i;
            *vlen = end - i;
            return 0;
        }
    }
    return -1;
}


size_t
tp_args_strip(const unsigned char *args, size_t len, const char *name,
              unsigned char *out)
{
    size_t  i, nlen, end, n = 0;

    nlen = strlen(name);

    for (i = 0; i < len; i = end + 1) {
        for (end = i; end < len && args[end] != '&'; end++) {
            /* void */
        }
        if (end == i || arg_is(args, len, i, name, nlen)) {
            continue;
        }
        if (n) {
            out[n++] = '&';
        }
        memcpy(out + n, args + i, end - i);
        n += end - i;
    }
    return n;
}


size_t
tp_args_redact(const unsigned char *args, size_t len, const char *name,
               const char *mark, unsigned char *out)
{
    size_t  i, v, nlen, mlen, end, n = 0;
    int     found = 0;

    nlen = strlen(name);
    mlen = strlen(mark);

    for (i = 0; i < len; i = end + 1) {
        for (end = i; end < len && args[end] != '&'; end++) {
            /* void */
        }

        v = i + nlen + 1;       /* the value, after "name=" */

        if (arg_is(args, len, i, name, nlen) && v < end
            && !(end - v == mlen && memcmp(args + v, mark, mlen) == 0))
        {
            found = 1;
            if (out) {
                memcpy(out + n, args + i, v - i);
                memcpy(out + n + v - i, mark, mlen);
            }
            n += v - i + mlen;

        } else {
            if (out) {
                memcpy(out + n, args + i, end - i);
            }
            n += end - i;
        }

        if (end < len) {
            if (out) {
                out[n] = '&';
            }
            n++;
        }
    }

    return found ? n : 0;
}


static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


size_t
tp_args_unescape(const unsigned char *v, size_t len, unsigned char *out)
{
    size_t  i, n = 0;
    int     h, l;

    for (i = 0; i < len; i++) {
        if (v[i] == '+') {
            out[n++] = ' ';
            continue;
        }
        if (v[i] == '%' && len - i >= 3
            && (h = hexval(v[i + 1])) >= 0 && (l = hexval(v[i + 2])) >= 0)
        {
            out[n++] = (unsigned char) (h << 4 | l);
            i += 2;
            continue;
        }
        out[n++] = v[i];
    }
    return n;
}
