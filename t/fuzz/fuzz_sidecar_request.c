/* fuzz_sidecar_request.c - libFuzzer target for the sidecar's request
 * path: the input is a request body, parsed as every route parses it
 * (req_body_object), then the validate-or-reply helpers run on the parsed
 * object, for each of its own keys and for the routes' field names.
 * Nothing may crash, leak or read out of bounds, and:
 *   - a helper that refuses has sent exactly one 4xx, whose body is JSON
 *     json_parse takes; one that accepts has sent nothing and its value
 *     keeps its bounds;
 *   - whatever json_parse accepts, lax parsing and yajl's own tree parser
 *     (safe there: 32 levels at most) accept too, value for value, and
 *     jw_tree's re-encoding parses back to the same tree. */
#include "json.h"
#include "log.h"
#include "req.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_TRIED  32

/* the routes' body fields, so the helpers meet them present and absent */
static const char *const route_fields[] = {
    "email", "password", "name", "code", "token", "tenant_id", "slug",
    "env", "value", "rpm", "enabled", "expires_at", "type", "action",
    "priority", "config", "scope", "role", "status", "reason", NULL
};


/* same shape, same values (recursive: both trees hold 32 levels at most,
 * json_parse refused anything deeper before this runs) */
static int
same_tree(yajl_val a, yajl_val b)
{
    size_t i;

    if (a == NULL || b == NULL || a->type != b->type) {
        return 0;
    }
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0
               && a->u.number.flags == b->u.number.flags
               && (!(a->u.number.flags & YAJL_NUMBER_INT_VALID)
                   || a->u.number.i == b->u.number.i)
               && (!(a->u.number.flags & YAJL_NUMBER_DOUBLE_VALID)
                   || memcmp(&a->u.number.d, &b->u.number.d,
                             sizeof(double)) == 0);
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) {
            return 0;
        }
        for (i = 0; i < a->u.array.len; i++) {
            if (!same_tree(a->u.array.values[i], b->u.array.values[i])) {
                return 0;
            }
        }
        return 1;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) {
            return 0;
        }
        for (i = 0; i < a->u.object.len; i++) {
            if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0
                || !same_tree(a->u.object.values[i], b->u.object.values[i]))
            {
                return 0;
            }
        }
        return 1;
    default:
        return 1;
    }
}


/* what json_parse accepted, the other parsers must accept alike */
static void
check_parsers(const uint8_t *data, size_t size)
{
    yajl_val  strict, lax, y;
    char      err[256], *copy, *enc;
    jw_t      w;
    int       rc;

    rc = json_parse((const char *) data, size, 0, &strict, err, sizeof(err));
    if (rc != JSON_OK) {
        if (strict != NULL || err[0] == '\0') {
            abort();                /* a refusal says why, returns nothing */
        }
    }
    if (json_parse((const char *) data, size, JSON_LAX, &lax, err,
                   sizeof(err)) != JSON_OK)
    {
        if (rc == JSON_OK) {
            abort();                /* lax refused what strict took */
        }
        return;
    }
    if (rc == JSON_OK && !same_tree(strict, lax)) {
        abort();
    }

    /* no NUL byte in data (json_parse refuses one): a C string */
    copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    y = yajl_tree_parse(copy, err, sizeof(err));
    free(copy);
    if (y == NULL || !same_tree(lax, y)) {
        abort();                    /* a different reading than yajl's */
    }
    yajl_tree_free(y);

    if (rc == JSON_OK) {
        jw_init(&w);
        jw_tree(&w, strict);
        enc = jw_steal(&w, NULL);
        if (json_parse(enc, strlen(enc), 0, &y, err, sizeof(err)) != JSON_OK
            || !same_tree(strict, y))
        {
            abort();                /* the writer and the parser disagree */
        }
        json_free(y);
        free(enc);
    }
    json_free(strict);
    json_free(lax);
}


/* after a helper: -1 with one 4xx reply that is JSON, or 0 and none;
 * then the reply is cleared for the next helper */
static void
check_reply(req_t *r, int rc)
{
    yajl_val v;
    char     err[64];

    if (rc == 0) {
        if (r->status != 0) {
            abort();
        }
        return;
    }
    if (rc != -1 || (r->status != 400 && r->status != 415
                     && r->status != 422) || r->resp_body == NULL)
    {
        abort();
    }
    if (json_parse(r->resp_body, r->resp_len, 0, &v, err, sizeof(err))
        != JSON_OK || json_get(json_get(v, "error"), "code") == NULL)
    {
        abort();                    /* the error envelope is not JSON */
    }
    json_free(v);
    free(r->resp_body);
    r->resp_body = NULL;
    r->resp_len = 0;
    r->status = 0;
    r->err_code = NULL;
}


static void
check_fields(req_t *r, yajl_val obj, const char *key)
{
    static const size_t    maxlens[] = { 0, 1, 64, 1024 };
    static const int       flags[] = { 0, F_REQUIRED, F_NULLABLE,
                                       F_REQUIRED | F_NULLABLE };
    static const long long ranges[][2] = {
        { 1, INT_MAX }, { 0, 10000 }, { LLONG_MIN, LLONG_MAX }, { -5, 5 },
    };
    const char *s;
    long long   n;
    size_t      i;
    int         b, present, rc;

    for (i = 0; i < 4; i++) {
        rc = req_field_str(r, obj, key, flags[i], maxlens[i], &s);
        if (rc == 0 && s != NULL && maxlens[i] && strlen(s) > maxlens[i]) {
            abort();
        }
        check_reply(r, rc);

        n = 12345;
        rc = req_field_int(r, obj, key, flags[i], ranges[i][0], ranges[i][1],
                           &n, &present);
        if (rc == 0 && present && json_get(obj, key) != NULL
            && YAJL_IS_NUMBER(json_get(obj, key))
            && (n < ranges[i][0] || n > ranges[i][1]))
        {
            abort();
        }
        check_reply(r, rc);

        rc = req_field_bool(r, obj, key, flags[i], &b, &present);
        check_reply(r, rc);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    req_t    r;
    yajl_val obj;
    size_t   i;
    int      rc;

    log_level = LOG_ERROR;
    check_parsers(data, size);

    memset(&r, 0, sizeof(r));
    arena_init(&r.arena);
    strcpy(r.id, "fuzz");
    r.body = malloc(size + 1);      /* as the server keeps it */
    memcpy(r.body, data, size);
    r.body[size] = '\0';
    r.body_len = size;

    rc = req_body_object(&r, &obj);
    if (rc == 0 && (obj == NULL || !YAJL_IS_OBJECT(obj))) {
        abort();
    }
    check_reply(&r, rc);

    if (rc == 0) {
        for (i = 0; i < obj->u.object.len && i < KEYS_TRIED; i++) {
            check_fields(&r, obj, obj->u.object.keys[i]);
        }
        for (i = 0; route_fields[i] != NULL; i++) {
            check_fields(&r, obj, route_fields[i]);
        }
        /* a second call hands back the same tree, parsing nothing */
        if (req_body_object(&r, &obj) != 0 || obj != r.json) {
            abort();
        }
    }

    req_run_defers(&r);
    arena_free(&r.arena);
    free(r.resp_body);
    free(r.body);
    return 0;
}
