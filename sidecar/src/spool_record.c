/* spool_record.c - a single-pass reader for spool lines, with yajl behind it.
 *
 * Every spool line is a flat JSON object written by the module, so the
 * ingester does not need a tree per line: this reader walks the bytes once
 * and keeps the fields it knows. It is deliberately strict (a subset of
 * what yajl accepts); anything outside the subset goes to yajl through
 * spool_record_from_tree, so both paths give one answer per line. */
#include "spool_record.h"

#include <stdint.h>
#include <string.h>

const char *const spool_record_names[SR_FIELDS] = {
    "type", "ts", "request_id", "tenant_id", "key_id", "env",
    "provider", "model", "path", "status", "stream", "input_tokens",
    "output_tokens", "cached_tokens", "reasoning_tokens", "total_tokens",
    "ttfb_ms", "latency_ms", "bytes_in", "bytes_out", "client_ip",
    "error_kind", "completed", "count", "id", "rule_id", "rule_name",
    "rule_type", "action", "detector", "excerpt"
};


static int
sr_lookup(const char *k, size_t n, int hint)
{
    int i;

    /* the module writes keys in the contract's order: try the next one
     * first, so a usual line costs one comparison per key */
    if (hint >= 0 && hint < SR_FIELDS
        && strncmp(spool_record_names[hint], k, n) == 0
        && spool_record_names[hint][n] == '\0')
    {
        return hint;
    }
    for (i = 0; i < SR_FIELDS; i++) {
        if (strncmp(spool_record_names[i], k, n) == 0
            && spool_record_names[i][n] == '\0')
        {
            return i;
        }
    }
    return -1;
}


static const char *
sr_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}


/* length of one well-formed (RFC 3629) UTF-8 sequence at p, 0 if none */
static size_t
sr_utf8(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t        n, i;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;           /* no overlong forms */
        if (c == 0xed) hi = 0x9f;           /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;           /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t) (end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}


static int
sr_hex4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;
    int      i;

    if (end - p < 4) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned) (c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned) (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned) (c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}


/* A string after its opening quote. Without escapes the value points into
 * the line; with them it is decoded into *scratch, which then advances.
 * Returns the position after the closing quote, NULL when refused. */
static const char *
sr_string(const char *p, const char *end, char **scratch, const char **s,
    size_t *len)
{
    const char *start = p;
    char       *out = NULL;
    unsigned    cp, lo;
    size_t      n;

    while (p < end) {
        unsigned char c = (unsigned char) *p;

        if (c == '"') {
            if (out == NULL) {
                *s = start;
                *len = (size_t) (p - start);
            } else {
                *s = *scratch;
                *len = (size_t) (out - *scratch);
                *scratch = out;
            }
            return p + 1;
        }
        if (c < 0x20) {
            return NULL;
        }
        if (c < 0x80 && c != '\\') {
            if (out) *out++ = (char) c;
            p++;
            continue;
        }
        if (c >= 0x80) {
            n = sr_utf8((const unsigned char *) p, (const unsigned char *) end);
            if (n == 0) {
                return NULL;
            }
            if (out) {
                memcpy(out, p, n);
                out += n;
            }
            p += n;
            continue;
        }

        /* an escape: from here on the value is decoded */
        if (out == NULL) {
            out = *scratch;
            memcpy(out, start, (size_t) (p - start));
            out += p - start;
        }
        if (end - p < 2) {
            return NULL;
        }
        switch (p[1]) {
        case '"':  *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '/':  *out++ = '/'; break;
        case 'b':  *out++ = '\b'; break;
        case 'f':  *out++ = '\f'; break;
        case 'n':  *out++ = '\n'; break;
        case 'r':  *out++ = '\r'; break;
        case 't':  *out++ = '\t'; break;
        case 'u':
            if (sr_hex4(p + 2, end, &cp) != 0) {
                return NULL;
            }
            p += 6;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u'
                    || sr_hex4(p + 2, end, &lo) != 0
                    || lo < 0xdc00 || lo > 0xdfff)
                {
                    return NULL;        /* yajl would write '?' */
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff)) {
                return NULL;    /* truncates, or is not UTF-8, in yajl */
            }
            /* 6 escaped bytes never decode to more than 3, 12 to 4 */
            if (cp < 0x80) {
                *out++ = (char) cp;
            } else if (cp < 0x800) {
                *out++ = (char) (0xc0 | (cp >> 6));
                *out++ = (char) (0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                *out++ = (char) (0xe0 | (cp >> 12));
                *out++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *out++ = (char) (0x80 | (cp & 0x3f));
            } else {
                *out++ = (char) (0xf0 | (cp >> 18));
                *out++ = (char) (0x80 | ((cp >> 12) & 0x3f));
                *out++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *out++ = (char) (0x80 | (cp & 0x3f));
            }
            continue;
        default:
            return NULL;
        }
        p += 2;
    }
    return NULL;
}


/* A JSON number; integers that fit a long long are SR_INT (as yajl's
 * YAJL_IS_INTEGER), the rest SR_NUMBER. */
static const char *
sr_number(const char *p, const char *end, sr_value_t *v)
{
    unsigned long long mag = 0;
    int                neg = 0, integer = 1, overflow = 0;

    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p == end || *p < '0' || *p > '9') {
        return NULL;
    }
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            if (mag > (unsigned long long) INT64_MAX / 10
                || mag * 10 + (unsigned) (*p - '0')
                   > (unsigned long long) INT64_MAX)
            {
                overflow = 1;
            } else {
                mag = mag * 10 + (unsigned) (*p - '0');
            }
            p++;
        }
    }
    if (p < end && *p == '.') {
        integer = 0;
        p++;
        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }

    if (integer && !overflow) {
        v->type = SR_INT;
        v->i = neg ? -(long long) mag : (long long) mag;
    } else {
        v->type = SR_NUMBER;
    }
    return p;
}


static const char *
sr_word(const char *p, const char *end, const char *w, size_t n)
{
    if ((size_t) (end - p) < n || memcmp(p, w, n) != 0) {
        return NULL;
    }
    return p + n;
}


int
spool_record_parse(spool_record_t *r, const char *line, size_t len,
    char *scratch)
{
    const char *p = line, *end = line + len, *key;
    size_t      key_len;
    sr_value_t  v;
    int         f, hint = 0;

    memset(r, 0, sizeof(*r));

    p = sr_ws(p, end);
    if (p == end || *p++ != '{') {
        return -1;
    }
    p = sr_ws(p, end);
    if (p < end && *p == '}') {
        p++;
        goto tail;
    }

    for ( ;; ) {
        if (p == end || *p++ != '"') {
            return -1;
        }
        p = sr_string(p, end, &scratch, &key, &key_len);
        if (p == NULL) {
            return -1;
        }
        p = sr_ws(p, end);
        if (p == end || *p++ != ':') {
            return -1;
        }
        p = sr_ws(p, end);
        if (p == end) {
            return -1;
        }

        memset(&v, 0, sizeof(v));
        switch (*p) {
        case '"':
            v.type = SR_STRING;
            p = sr_string(p + 1, end, &scratch, &v.s, &v.len);
            break;
        case 't':
            v.type = SR_TRUE;
            p = sr_word(p, end, "true", 4);
            break;
        case 'f':
            v.type = SR_FALSE;
            p = sr_word(p, end, "false", 5);
            break;
        case 'n':
            v.type = SR_NULL;
            p = sr_word(p, end, "null", 4);
            break;
        default:
            /* objects and arrays go to yajl, as does anything odd */
            p = (*p == '-' || (*p >= '0' && *p <= '9'))
                ? sr_number(p, end, &v) : NULL;
        }
        if (p == NULL) {
            return -1;
        }

        f = sr_lookup(key, key_len, hint);
        if (f >= 0) {
            r->f[f] = v;
            hint = f + 1;
        }

        p = sr_ws(p, end);
        if (p == end) {
            return -1;
        }
        if (*p == '}') {
            p++;
            break;
        }
        if (*p++ != ',') {
            return -1;
        }
        p = sr_ws(p, end);
    }

tail:
    return sr_ws(p, end) == end ? 0 : -1;
}


void
spool_record_from_tree(spool_record_t *r, yajl_val obj)
{
    yajl_val v;
    size_t   i;
    int      f;

    memset(r, 0, sizeof(*r));
    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return;
    }

    /* in key order, so a later duplicate overwrites an earlier one */
    for (i = 0; i < obj->u.object.len; i++) {
        const char *k = obj->u.object.keys[i];

        f = sr_lookup(k, strlen(k), -1);
        if (f < 0) {
            continue;
        }
        v = obj->u.object.values[i];
        memset(&r->f[f], 0, sizeof(r->f[f]));
        if (YAJL_IS_STRING(v)) {
            r->f[f].type = SR_STRING;
            r->f[f].s = v->u.string;
            r->f[f].len = strlen(v->u.string);
        } else if (YAJL_IS_INTEGER(v)) {
            r->f[f].type = SR_INT;
            r->f[f].i = v->u.number.i;
        } else if (YAJL_IS_NUMBER(v)) {
            r->f[f].type = SR_NUMBER;
        } else if (YAJL_IS_TRUE(v)) {
            r->f[f].type = SR_TRUE;
        } else if (YAJL_IS_FALSE(v)) {
            r->f[f].type = SR_FALSE;
        } else if (YAJL_IS_NULL(v)) {
            r->f[f].type = SR_NULL;
        } else {
            r->f[f].type = SR_OTHER;
        }
    }
}
