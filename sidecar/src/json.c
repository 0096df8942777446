/* json.c - bounded JSON parsing on yajl's tree API and a small JSON writer */
#include "json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* yajl's tree parser recurses once per nesting level: check the depth with
 * a scan that understands strings before handing the text over. */
static int
json_depth_ok(const char *buf, size_t len)
{
    size_t i;
    int    depth = 0, in_str = 0;

    for (i = 0; i < len; i++) {
        char c = buf[i];

        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }

        switch (c) {
        case '"':
            in_str = 1;
            break;
        case '{':
        case '[':
            if (++depth > JSON_MAX_DEPTH) {
                return 0;
            }
            break;
        case '}':
        case ']':
            depth--;
            break;
        }
    }
    return 1;
}


yajl_val
json_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    char     *copy, yerr[256];
    yajl_val  v;

    if (len == 0) {
        snprintf(err, errlen, "request body is empty");
        return NULL;
    }
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(err, errlen, "request body contains a NUL byte");
        return NULL;
    }
    if (!json_depth_ok(buf, len)) {
        snprintf(err, errlen, "JSON nested deeper than %d levels",
                 JSON_MAX_DEPTH);
        return NULL;
    }

    copy = malloc(len + 1);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(copy, buf, len);
    copy[len] = '\0';

    yerr[0] = '\0';
    v = yajl_tree_parse(copy, yerr, sizeof(yerr));
    free(copy);

    if (v == NULL) {
        /* yajl's message spans lines and quotes the input: keep line one */
        char *nl = strchr(yerr, '\n');
        if (nl) {
            *nl = '\0';
        }
        snprintf(err, errlen, "malformed JSON: %s",
                 yerr[0] ? yerr : "parse error");
    }
    return v;
}


yajl_val
json_get(yajl_val obj, const char *key)
{
    size_t i;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }
    /* yajl keeps duplicate keys: the last one wins, as in most parsers */
    for (i = obj->u.object.len; i > 0; i--) {
        if (strcmp(obj->u.object.keys[i - 1], key) == 0) {
            return obj->u.object.values[i - 1];
        }
    }
    return NULL;
}


void
jw_init(jw_t *w)
{
    memset(w, 0, sizeof(*w));
}


void
jw_free(jw_t *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}


char *
jw_steal(jw_t *w, size_t *len)
{
    char *b = w->buf;

    if (b == NULL) {
        b = strdup("");
    }
    if (len) {
        *len = w->len;
    }
    w->buf = NULL;
    w->len = w->cap = 0;
    return b;
}


static void
jw_grow(jw_t *w, size_t n)
{
    size_t  cap = w->cap ? w->cap : 256;
    char   *b;

    while (cap < w->len + n + 1) {
        cap *= 2;
    }
    b = realloc(w->buf, cap);
    if (b == NULL) {
        fprintf(stderr, "trueport-sidecar: out of memory\n");
        abort();
    }
    w->buf = b;
    w->cap = cap;
}


/* room for n more bytes and the terminator */
static inline void
jw_reserve(jw_t *w, size_t n)
{
    if (w->len + n + 1 > w->cap) {
        jw_grow(w, n);
    }
}


static inline void
jw_put(jw_t *w, const char *s, size_t n)
{
    jw_reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}


/* called before every value and key */
static void
jw_sep(jw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->need_comma) {
        jw_put(w, ",", 1);
    }
}


/* the bytes a JSON string cannot hold as they are */
static const unsigned char jw_must_escape[256] = {
    [0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1,
};


#define ONES        0x0101010101010101ULL
#define JW_CHUNK    4096          /* bytes escaped per reservation */

/* Escapes n bytes at p, which has room for 6 * n (every byte as \u00XX),
 * and returns the end. Plain bytes go eight at a time (SWAR): list pages
 * write thousands of short strings, where copying runs with memcpy cost
 * more than it saved. */
static unsigned char *
jw_escape_run(unsigned char *p, const unsigned char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    static const char short_esc[256] = {
        ['"'] = '"', ['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r',
        ['\t'] = 't', ['\b'] = 'b', ['\f'] = 'f',
    };
    size_t            i;

    for (i = 0; i < n; i++) {
        unsigned char c;

        /* none below 0x20, no '"' and no '\\' in the next eight (bytes
         * from 0x80 up are UTF-8, copied as they are) */
        while (n - i >= 8) {
            uint64_t x, q, b;

            memcpy(&x, src + i, 8);
            q = x ^ (ONES * '"');
            b = x ^ (ONES * '\\');
            if ((((x - ONES * 0x20) | (q - ONES) | (b - ONES))
                 & ~x & (ONES * 0x80)) != 0)
            {
                break;
            }
            memcpy(p, &x, 8);
            p += 8;
            i += 8;
        }
        if (i == n) {
            break;
        }

        c = src[i];
        if (!jw_must_escape[c]) {
            *p++ = c;
            continue;
        }
        *p++ = '\\';
        if (short_esc[c]) {
            *p++ = short_esc[c];
        } else {
            memcpy(p, "u00", 3);
            p[3] = hex[c >> 4];
            p[4] = hex[c & 15];
            p += 5;
        }
    }
    return p;
}


/* a quoted JSON string; the room reserved is bounded by JW_CHUNK, not by
 * six times the whole input */
static void
jw_escape(jw_t *w, const char *s, size_t n)
{
    const unsigned char *src = (const unsigned char *) s;
    unsigned char       *p;
    size_t               k;

    jw_put(w, "\"", 1);
    while (n > 0) {
        k = n < JW_CHUNK ? n : JW_CHUNK;
        jw_reserve(w, 6 * k);
        p = jw_escape_run((unsigned char *) w->buf + w->len, src, k);
        w->len = (size_t) ((char *) p - w->buf);
        src += k;
        n -= k;
    }
    jw_put(w, "\"", 1);
}


void
jw_obj(jw_t *w)
{
    jw_sep(w);
    jw_put(w, "{", 1);
    w->need_comma = 0;
}


void
jw_obj_end(jw_t *w)
{
    jw_put(w, "}", 1);
    w->need_comma = 1;
}


void
jw_arr(jw_t *w)
{
    jw_sep(w);
    jw_put(w, "[", 1);
    w->need_comma = 0;
}


void
jw_arr_end(jw_t *w)
{
    jw_put(w, "]", 1);
    w->need_comma = 1;
}


void
jw_key(jw_t *w, const char *k)
{
    jw_sep(w);
    jw_escape(w, k, strlen(k));
    jw_put(w, ":", 1);
    w->after_key = 1;
}


void
jw_strn(jw_t *w, const char *s, size_t n)
{
    jw_sep(w);
    jw_escape(w, s, n);
    w->need_comma = 1;
}


void
jw_str(jw_t *w, const char *s)
{
    if (s == NULL) {
        jw_null(w);
        return;
    }
    jw_strn(w, s, strlen(s));
}


void
jw_int(jw_t *w, long long v)
{
    char b[32];
    int  n = snprintf(b, sizeof(b), "%lld", v);

    jw_sep(w);
    jw_put(w, b, n);
    w->need_comma = 1;
}


void
jw_double(jw_t *w, double v)
{
    char b[64];
    int  n = snprintf(b, sizeof(b), "%.17g", v);

    jw_sep(w);
    jw_put(w, b, n);
    w->need_comma = 1;
}


void
jw_bool(jw_t *w, int v)
{
    jw_sep(w);
    jw_put(w, v ? "true" : "false", v ? 4 : 5);
    w->need_comma = 1;
}


void
jw_null(jw_t *w)
{
    jw_sep(w);
    jw_put(w, "null", 4);
    w->need_comma = 1;
}


void
jw_raw(jw_t *w, const char *json)
{
    jw_sep(w);
    jw_put(w, json, strlen(json));
    w->need_comma = 1;
}


void
jw_jsonb(jw_t *w, const char *text)
{
    size_t      len, n = 0;
    const char *s;
    char       *d;
    int         in_str = 0;

    if (text == NULL) {
        jw_null(w);
        return;
    }
    len = strlen(text);

    /* what json_parse() refuses, org_jw_json() writes as it is */
    if (!json_depth_ok(text, len)) {
        jw_raw(w, text);
        return;
    }

    jw_sep(w);
    jw_reserve(w, len);                    /* compacting only shrinks it */

    d = w->buf + w->len;
    for (s = text; *s; s++) {
        if (in_str) {
            if (*s == '\\' && s[1] != '\0') {
                d[n++] = *s++;
            } else if (*s == '"') {
                in_str = 0;
            }
        } else if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') {
            continue;
        } else if (*s == '"') {
            in_str = 1;
        }
        d[n++] = *s;
    }
    w->len += n;
    w->buf[w->len] = '\0';
    w->need_comma = 1;
}


void
jw_pg_ts(jw_t *w, const char *text)
{
    const char *t, *frac, *end;
    char        b[48];
    size_t      n, date, i;

    /* "YYYY-MM-DD HH:MM:SS[.ffffff][ BC]"; the year may be longer */
    t = text ? strchr(text, ' ') : NULL;
    if (t == NULL || text[0] < '0' || text[0] > '9' || strlen(t) < 9) {
        jw_null(w);                        /* NULL, infinity, -infinity */
        return;
    }
    date = (size_t) (t - text);
    if (date + 24 > sizeof(b)) {
        jw_null(w);
        return;
    }

    memcpy(b, text, date);
    n = date;
    b[n++] = 'T';
    memcpy(b + n, t + 1, 8);               /* HH:MM:SS */
    n += 8;
    b[n++] = '.';

    /* to_char's MS truncates the microseconds; the era ("BC") is not
     * part of YYYY */
    frac = t + 9;
    end = frac;
    if (*frac == '.') {
        for (end = frac + 1; *end >= '0' && *end <= '9'; end++) {
            /* the digits */
        }
        frac++;
    }
    for (i = 0; i < 3; i++) {
        b[n++] = (frac + i < end) ? frac[i] : '0';
    }
    b[n++] = 'Z';

    jw_strn(w, b, n);
}


void
jw_tree(jw_t *w, yajl_val v)
{
    size_t i;

    if (v == NULL || YAJL_IS_NULL(v)) {
        jw_null(w);
    } else if (YAJL_IS_STRING(v)) {
        jw_str(w, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        jw_raw(w, v->u.number.r);
    } else if (YAJL_IS_TRUE(v)) {
        jw_bool(w, 1);
    } else if (YAJL_IS_FALSE(v)) {
        jw_bool(w, 0);
    } else if (YAJL_IS_ARRAY(v)) {
        jw_arr(w);
        for (i = 0; i < v->u.array.len; i++) {
            jw_tree(w, v->u.array.values[i]);
        }
        jw_arr_end(w);
    } else if (YAJL_IS_OBJECT(v)) {
        jw_obj(w);
        for (i = 0; i < v->u.object.len; i++) {
            jw_key(w, v->u.object.keys[i]);
            jw_tree(w, v->u.object.values[i]);
        }
        jw_obj_end(w);
    }
}
