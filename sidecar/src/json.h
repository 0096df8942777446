/* json.h - JSON in (a bounded parser into yajl_val trees, typed getters)
 * and out (a small writer) */
#ifndef TP_JSON_H
#define TP_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "arena.h"

/* Bounds every parse holds to, whatever the input (the body itself is
 * bounded by TRUEPORT_MAX_BODY, 1 MiB by default): */
#define JSON_MAX_DEPTH   32        /* nested objects and arrays */
#define JSON_MAX_VALUES  100000    /* values of any kind, the root included */

/* json_parse() flags */
#define JSON_LAX  1     /* text we wrote or stored (the spool, Postgres):
                           duplicate keys kept (json_get takes the last), a
                           U+0000 ends its C string, UTF-8 as yajl checks it */

/* json_parse() results */
#define JSON_OK         0
#define JSON_EINVALID  (-1)    /* not JSON we take: answer 400 */
#define JSON_ENUL      (-2)    /* JSON, but a string or key holds U+0000,
                                  which C strings cannot: answer 422 */

/* Parses buf[0..len) (need not be NUL-terminated) on yajl's event API:
 * comments, trailing garbage, a NUL byte, more than JSON_MAX_DEPTH levels
 * or JSON_MAX_VALUES values are refused inside the parser, and so (unless
 * JSON_LAX) are duplicate keys, ill-formed UTF-8 (overlong forms,
 * surrogates) and U+0000. Nothing recurses on the input's shape.
 * JSON_OK and *out set (free it with json_free), or JSON_EINVALID /
 * JSON_ENUL with *out NULL and a one-line reason in err. The tree has
 * yajl_tree's layout (strings NUL-terminated, numbers with r, i, d and
 * their YAJL_NUMBER_* flags, empty containers with NULL arrays), so
 * YAJL_IS_* / YAJL_GET_* / yajl_tree_get read it; it is one arena:
 * never yajl_tree_free it, free no subtree, change nothing in it. */
int json_parse(const char *buf, size_t len, int flags, yajl_val *out,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Frees a tree json_parse() returned (NULL is fine), in a loop over its
 * arena's chunks, however deep or wide it is. */
void json_free(yajl_val v);

/* Object member lookup (one level); NULL when absent or not an object. */
yajl_val json_get(yajl_val obj, const char *key);

/* Output: a growable buffer that writes commas and escapes for you. */
typedef struct {
    char   *buf;
    size_t  len;
    size_t  cap;
    int     need_comma;   /* the next value is preceded by ',' */
    int     after_key;    /* the next value follows a key */
} jw_t;

void  jw_init(jw_t *w);
void  jw_free(jw_t *w);
char *jw_steal(jw_t *w, size_t *len);   /* caller frees (malloc'd) */

void jw_obj(jw_t *w);
void jw_obj_end(jw_t *w);
void jw_arr(jw_t *w);
void jw_arr_end(jw_t *w);
void jw_key(jw_t *w, const char *k);
void jw_str(jw_t *w, const char *s);          /* NULL writes null */
void jw_strn(jw_t *w, const char *s, size_t n);
void jw_int(jw_t *w, long long v);
void jw_double(jw_t *w, double v);
void jw_bool(jw_t *w, int v);
void jw_null(jw_t *w);
void jw_raw(jw_t *w, const char *json);       /* an already-encoded value */
void jw_tree(jw_t *w, yajl_val v);            /* re-encode a parsed value
                                                 (recursive: json_parse
                                                 trees only) */

/* A jsonb column's text form, compactly: the bytes jw_tree() would write
 * after parsing it, without building the tree (Postgres writes jsonb as
 * valid JSON whose only whitespace outside strings follows ':' and ',');
 * NULL writes null. */
void jw_jsonb(jw_t *w, const char *text);

/* A timestamp column selected as (col AT TIME ZONE 'UTC') on a connection
 * with DateStyle ISO ("2026-01-31 12:00:00.123456"), written as the string
 * to_char(col AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') gives:
 * "2026-01-31T12:00:00.123Z" (milliseconds truncated); NULL and infinity
 * write null, as to_char returns NULL for them. Formatting here spares
 * Postgres a to_char per timestamp per row. */
void jw_pg_ts(jw_t *w, const char *text);

/* key + value shorthands */
#define jw_kstr(w, k, v)  (jw_key(w, k), jw_str(w, v))
#define jw_kint(w, k, v)  (jw_key(w, k), jw_int(w, v))
#define jw_kbool(w, k, v) (jw_key(w, k), jw_bool(w, v))
#define jw_knull(w, k)    (jw_key(w, k), jw_null(w))
#define jw_kraw(w, k, v)  (jw_key(w, k), jw_raw(w, v))

#endif
