/* fuzz_spool_record.c - libFuzzer target for the ingester's single-pass
 * spool line reader: it must never read or write out of bounds, and on
 * every line it accepts yajl and the ingester's own fallback (json_parse,
 * lax) must agree, field by field. The input is read as a line, and also
 * as the value of "count" in an aggregated refusal's record (t/fuzz/
 * fuzz_spool_record.dict has the keys). */
#include "json.h"
#include "spool_record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the fields from a tree agree with the fast reader's */
static void
same_fields(const spool_record_t *fast, yajl_val v)
{
    spool_record_t slow;
    int            i;

    spool_record_from_tree(&slow, v);
    for (i = 0; i < SR_FIELDS; i++) {
        const sr_value_t *a = &fast->f[i], *b = &slow.f[i];

        if (a->type != b->type
            || (a->type == SR_INT && a->i != b->i)
            || (a->type == SR_STRING
                && (a->len != b->len || memcmp(a->s, b->s, a->len) != 0)))
        {
            abort();            /* a different value */
        }
    }
}


static void
check(const uint8_t *data, size_t size)
{
    spool_record_t fast;
    char          *copy, *scratch, err[128];
    yajl_val       v;

    /* exact-size buffers, so ASan sees any overrun */
    copy = malloc(size + 1);
    scratch = malloc(size ? size : 1);
    if (copy == NULL || scratch == NULL) {
        abort();
    }
    memcpy(copy, data, size);

    if (spool_record_parse(&fast, copy, size, scratch) == 0) {
        copy[size] = '\0';
        v = yajl_tree_parse(copy, err, sizeof(err));
        if (v == NULL || !YAJL_IS_OBJECT(v)) {
            abort();            /* accepted what yajl refuses */
        }
        same_fields(&fast, v);
        yajl_tree_free(v);

        if (json_parse(copy, size, JSON_LAX, &v, err, sizeof(err)) != JSON_OK
            || !YAJL_IS_OBJECT(v))
        {
            abort();            /* accepted what the fallback refuses */
        }
        same_fields(&fast, v);
        json_free(v);
    }

    free(scratch);
    free(copy);
}


/* an aggregated refusal as the module writes it, with its count last */
#define AGG_HEAD                                                            \
    "{\"v\":1,\"type\":\"usage\",\"ts\":1800000000000,\"request_id\":\"r1\","    \
    "\"tenant_id\":\"00000001-0000-4000-8000-000000000001\",\"key_id\":"      \
    "\"00000001-0000-4000-8000-000000000002\",\"provider\":\"openai\","        \
    "\"status\":429,\"stream\":false,\"error_kind\":\"rate_limited\","        \
    "\"completed\":true,\"count\":"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t line[sizeof(AGG_HEAD) + 64];

    check(data, size);

    if (size < 64) {
        memcpy(line, AGG_HEAD, sizeof(AGG_HEAD) - 1);
        memcpy(line + sizeof(AGG_HEAD) - 1, data, size);
        line[sizeof(AGG_HEAD) - 1 + size] = '}';
        check(line, sizeof(AGG_HEAD) + size);
    }
    return 0;
}
