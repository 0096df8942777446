/* json.c - bounded JSON parsing on yajl's event API into yajl_val trees,
 * and a small JSON writer */
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define JSON_STR_(x)  #x
#define JSON_STR(x)   JSON_STR_(x)


/* The parser: yajl's event API builds a tree in the yajl_val layout, so
 * callers keep YAJL_IS_* / YAJL_GET_* / json_get. yajl's own tree parser
 * would not do: it always accepts comments (which blinded the bracket
 * count this replaced) and frees recursively. Here depth is counted in
 * the start callbacks and the open containers sit on a fixed stack of
 * JSON_MAX_DEPTH frames; every node, key and string lives in one arena
 * that json_free() releases chunk by chunk. */

typedef struct {
    arena_t            arena;
    struct yajl_val_s  root;
} json_doc_t;

typedef struct {
    const char *key;            /* the member's key; NULL in an array */
    yajl_val    v;
} json_item_t;

typedef struct {
    yajl_val    node;           /* an open object or array */
    size_t      first;          /* its first child on the item stack */
} json_frame_t;

typedef struct {
    json_doc_t   *doc;
    int           flags;
    int           depth;
    int           has_root;
    int           saw_nul;      /* a string or key held U+0000 */
    size_t        values;
    const char   *key;          /* the key waiting for its value */
    json_frame_t  frames[JSON_MAX_DEPTH];
    json_item_t  *items;        /* the open containers' children, in order */
    size_t        nitems, items_cap;
    const char  **sorted;       /* scratch for the duplicate-key check */
    size_t        sorted_cap;
    char         *err;
    size_t        errlen;
} json_ctx_t;


/* Well-formed UTF-8 as RFC 3629 has it: no overlong forms, no surrogates,
 * nothing above U+10FFFF. yajl checks only the shape of a sequence and
 * writes a lone low-surrogate escape out as a surrogate. */
static int
json_utf8_ok(const unsigned char *s, size_t n)
{
    size_t   i = 0, k;
    uint64_t x;

    while (i < n) {
        if (n - i >= 8) {
            memcpy(&x, s + i, 8);
            if ((x & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        k = s[i] >= 0xc2 && s[i] <= 0xdf ? 1
            : (s[i] & 0xf0) == 0xe0 ? 2
            : s[i] >= 0xf0 && s[i] <= 0xf4 ? 3 : 0;
        if (k == 0 || n - i <= k) {
            return 0;
        }
        if ((s[i + 1] & 0xc0) != 0x80
            || (k > 1 && (s[i + 2] & 0xc0) != 0x80)
            || (k > 2 && (s[i + 3] & 0xc0) != 0x80)
            || (s[i] == 0xe0 && s[i + 1] < 0xa0)       /* overlong */
            || (s[i] == 0xed && s[i + 1] >= 0xa0)      /* surrogate */
            || (s[i] == 0xf0 && s[i + 1] < 0x90)       /* overlong */
            || (s[i] == 0xf4 && s[i + 1] >= 0x90))     /* > U+10FFFF */
        {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}


/* fails the parse: the callback returns this, yajl cancels */
static int
json_fail(json_ctx_t *c, const char *msg)
{
    snprintf(c->err, c->errlen, "%s", msg);
    return 0;
}


/* a string or key as the tree holds it; NULL (and the parse failed) when
 * it is not well-formed */
static char *
json_text(json_ctx_t *c, const unsigned char *s, size_t n)
{
    if (memchr(s, '\0', n) != NULL) {
        /* lax: the C string ends there, as yajl's tree had it; strict:
         * refused once the whole text has parsed (a 422, not a 400) */
        c->saw_nul = 1;
    }
    if (!(c->flags & JSON_LAX) && !json_utf8_ok(s, n)) {
        json_fail(c, "malformed JSON: a string is not valid UTF-8");
        return NULL;
    }
    return arena_strndup(&c->doc->arena, (const char *) s, n);
}


/* a new value in the open container (or the root); NULL when the values
 * are used up (the parse failed) */
static yajl_val
json_value(json_ctx_t *c, yajl_type type)
{
    json_item_t *it;
    yajl_val     v;
    size_t       cap;

    if (++c->values > JSON_MAX_VALUES) {
        json_fail(c, "JSON holds more than " JSON_STR(JSON_MAX_VALUES)
                     " values");
        return NULL;
    }

    if (c->depth == 0) {
        v = &c->doc->root;                  /* yajl takes one value only */
        c->has_root = 1;
    } else {
        if (c->nitems == c->items_cap) {
            cap = c->items_cap ? 2 * c->items_cap : 64;
            it = realloc(c->items, cap * sizeof(*it));
            if (it == NULL) {
                json_fail(c, "out of memory");
                return NULL;
            }
            c->items = it;
            c->items_cap = cap;
        }
        v = arena_alloc(&c->doc->arena, sizeof(*v));
        c->items[c->nitems].key = c->key;
        c->items[c->nitems].v = v;
        c->nitems++;
        c->key = NULL;
    }
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}


static int
json_on_null(void *ctx)
{
    return json_value(ctx, yajl_t_null) != NULL;
}


static int
json_on_bool(void *ctx, int b)
{
    return json_value(ctx, b ? yajl_t_true : yajl_t_false) != NULL;
}


/* -?digits that fit a long long, as yajl's tree decides (its integer
 * parser also refuses LLONG_MIN); a fraction or exponent is no integer */
static int
json_integer(const char *s, long long *out)
{
    unsigned long long m = 0, d;
    int                neg = *s == '-';

    s += neg;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        d = (unsigned long long) (*s - '0');
        if (m > (LLONG_MAX - d) / 10) {
            return 0;
        }
        m = m * 10 + d;
    }
    *out = neg ? -(long long) m : (long long) m;
    return 1;
}


/* numbers come raw (no stop above LLONG_MAX): the text is kept in r, and
 * i and d with yajl_tree's validity flags */
static int
json_on_number(void *ctx, const char *s, size_t n)
{
    json_ctx_t *c = ctx;
    yajl_val    v = json_value(c, yajl_t_number);
    char       *end;

    if (v == NULL) {
        return 0;
    }
    v->u.number.r = arena_strndup(&c->doc->arena, s, n);
    if (json_integer(v->u.number.r, &v->u.number.i)) {
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    } else {
        v->u.number.i = 0;
    }
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (errno == 0 && *end == '\0') {
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    }
    return 1;
}


static int
json_on_string(void *ctx, const unsigned char *s, size_t n)
{
    json_ctx_t *c = ctx;
    char       *t = json_text(c, s, n);
    yajl_val    v;

    if (t == NULL || (v = json_value(c, yajl_t_string)) == NULL) {
        return 0;
    }
    v->u.string = t;
    return 1;
}


static int
json_on_key(void *ctx, const unsigned char *s, size_t n)
{
    json_ctx_t *c = ctx;

    c->key = json_text(c, s, n);
    return c->key != NULL;
}


static int
json_open(json_ctx_t *c, yajl_type type)
{
    yajl_val v;

    if (c->depth == JSON_MAX_DEPTH) {
        return json_fail(c, "JSON nested deeper than "
                            JSON_STR(JSON_MAX_DEPTH) " levels");
    }
    v = json_value(c, type);
    if (v == NULL) {
        return 0;
    }
    c->frames[c->depth].node = v;
    c->frames[c->depth].first = c->nitems;
    c->depth++;
    return 1;
}


static int
json_on_start_map(void *ctx)
{
    return json_open(ctx, yajl_t_object);
}


static int
json_on_start_array(void *ctx)
{
    return json_open(ctx, yajl_t_array);
}


static int
json_cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}


/* NULL, or a key the object has twice: sorted, so a wide object costs
 * n log n, not n^2 */
static const char *
json_duplicate(json_ctx_t *c, const char **keys, size_t n)
{
    const char **k;
    size_t       i, j;

    if (n <= 8) {
        for (i = 1; i < n; i++) {
            for (j = 0; j < i; j++) {
                if (strcmp(keys[i], keys[j]) == 0) {
                    return keys[i];
                }
            }
        }
        return NULL;
    }
    if (n > c->sorted_cap) {
        k = realloc(c->sorted, n * sizeof(*k));
        if (k == NULL) {
            return keys[0];           /* refused either way; rare */
        }
        c->sorted = k;
        c->sorted_cap = n;
    }
    memcpy(c->sorted, keys, n * sizeof(*keys));
    qsort(c->sorted, n, sizeof(*c->sorted), json_cmp_keys);
    for (i = 1; i < n; i++) {
        if (strcmp(c->sorted[i], c->sorted[i - 1]) == 0) {
            return c->sorted[i];
        }
    }
    return NULL;
}


/* the container's children move from the item stack into arrays of their
 * exact size */
static int
json_close(json_ctx_t *c)
{
    json_frame_t *f = &c->frames[--c->depth];
    json_item_t  *it = c->items + f->first;
    yajl_val      v = f->node;
    const char   *dup;
    size_t        n = c->nitems - f->first, i;

    c->nitems = f->first;
    if (n == 0) {
        return 1;                           /* NULL arrays, as yajl's tree */
    }

    if (v->type == yajl_t_array) {
        v->u.array.values = arena_alloc(&c->doc->arena, n * sizeof(yajl_val));
        for (i = 0; i < n; i++) {
            v->u.array.values[i] = it[i].v;
        }
        v->u.array.len = n;
        return 1;
    }

    v->u.object.keys = arena_alloc(&c->doc->arena, n * sizeof(char *));
    v->u.object.values = arena_alloc(&c->doc->arena, n * sizeof(yajl_val));
    for (i = 0; i < n; i++) {
        v->u.object.keys[i] = it[i].key;
        v->u.object.values[i] = it[i].v;
    }
    v->u.object.len = n;

    /* which of two equal keys counts is each reader's guess: strict
     * parsing refuses them (lax keeps both, json_get takes the last) */
    if (!(c->flags & JSON_LAX)
        && (dup = json_duplicate(c, v->u.object.keys, n)) != NULL)
    {
        if (strlen(dup) <= 64 && !c->saw_nul) {
            snprintf(c->err, c->errlen, "duplicate key \"%s\"", dup);
        } else {
            snprintf(c->err, c->errlen, "an object has a duplicate key");
        }
        return 0;
    }
    return 1;
}


static int
json_on_end(void *ctx)
{
    return json_close(ctx);
}


static const yajl_callbacks json_callbacks = {
    json_on_null,
    json_on_bool,
    NULL,                       /* integers and doubles: as raw numbers */
    NULL,
    json_on_number,
    json_on_string,
    json_on_start_map,
    json_on_key,
    json_on_end,
    json_on_start_array,
    json_on_end,
};


int
json_parse(const char *buf, size_t len, int flags, yajl_val *out, char *err,
    size_t errlen)
{
    json_ctx_t     c;
    yajl_handle    h;
    yajl_status    st;
    unsigned char *msg;
    char          *nl;
    int            rc = JSON_EINVALID;

    *out = NULL;
    if (len == 0) {
        snprintf(err, errlen, "request body is empty");
        return JSON_EINVALID;
    }
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(err, errlen, "request body contains a NUL byte");
        return JSON_EINVALID;
    }

    memset(&c, 0, sizeof(c));
    c.flags = flags;
    c.err = err;
    c.errlen = errlen;
    c.doc = malloc(sizeof(*c.doc));
    h = c.doc ? yajl_alloc(&json_callbacks, NULL, &c) : NULL;
    if (h == NULL) {
        free(c.doc);
        snprintf(err, errlen, "out of memory");
        return JSON_EINVALID;
    }
    arena_init(&c.doc->arena);
    yajl_config(h, yajl_allow_comments, 0);
    yajl_config(h, yajl_dont_validate_strings, 0);

    err[0] = '\0';
    st = yajl_parse(h, (const unsigned char *) buf, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    if (st == yajl_status_ok && c.has_root) {
        if (c.saw_nul && !(flags & JSON_LAX)) {
            snprintf(err, errlen,
                     "strings must not contain NUL characters (\\u0000)");
            rc = JSON_ENUL;
        } else {
            *out = &c.doc->root;
            rc = JSON_OK;
        }
    } else if (st != yajl_status_client_canceled || err[0] == '\0') {
        /* yajl's verbose message quotes the input: the short one */
        msg = yajl_get_error(h, 0, NULL, 0);
        nl = msg ? strchr((char *) msg, '\n') : NULL;
        if (nl) {
            *nl = '\0';
        }
        snprintf(err, errlen, "malformed JSON: %s",
                 msg && msg[0] ? (char *) msg : "parse error");
        yajl_free_error(h, msg);
    }

    yajl_free(h);
    free(c.items);
    free(c.sorted);
    if (rc != JSON_OK) {
        arena_free(&c.doc->arena);
        free(c.doc);
    }
    return rc;
}


void
json_free(yajl_val v)
{
    json_doc_t *doc;

    if (v == NULL) {
        return;
    }
    doc = (json_doc_t *) ((char *) v - offsetof(json_doc_t, root));
    arena_free(&doc->arena);
    free(doc);
}


yajl_val
json_get(yajl_val obj, const char *key)
{
    size_t i;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }
    /* lax trees keep duplicate keys: the last one wins, as in most
     * parsers */
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


/* Postgres's jsonb text has no comments, so a bracket count that skips
 * strings is exact there: jw_jsonb() uses it to write what org_jw_json()
 * (json_parse, then jw_tree) would. Not a parser's bound: json_parse
 * counts its depth itself. */
static int
jsonb_depth_ok(const char *buf, size_t len)
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
    if (!jsonb_depth_ok(text, len)) {
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
