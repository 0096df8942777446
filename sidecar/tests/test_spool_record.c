/* test_spool_record.c - the single-pass spool line reader, and that it
 * agrees with the general path (json_parse, lax) wherever it accepts a
 * line */
#include "tap.h"
#include "json.h"
#include "spool_record.h"

#include <stdlib.h>

/* parses s with both readers; 1 when the fast one accepted it and every
 * field came out the same as from the ingester's fallback tree */
static int
agrees(const char *s)
{
    spool_record_t fast, slow;
    char           scratch[1024], err[128];
    yajl_val       v;
    int            i, same = 1;

    if (spool_record_parse(&fast, s, strlen(s), scratch) != 0
        || json_parse(s, strlen(s), JSON_LAX, &v, err, sizeof(err)) != JSON_OK)
    {
        return 0;
    }
    spool_record_from_tree(&slow, v);
    for (i = 0; i < SR_FIELDS; i++) {
        sr_value_t *a = &fast.f[i], *b = &slow.f[i];

        if (a->type != b->type
            || (a->type == SR_INT && a->i != b->i)
            || (a->type == SR_STRING
                && (a->len != b->len || memcmp(a->s, b->s, a->len) != 0)))
        {
            same = 0;
        }
    }
    json_free(v);
    return same;
}


static int
refused(const char *s)
{
    spool_record_t r;
    char           scratch[1024];

    return spool_record_parse(&r, s, strlen(s), scratch) != 0;
}


void
test_spool_record(void)
{
    spool_record_t r;
    char           scratch[1024];
    const char    *line =
        "{\"v\":1,\"type\":\"usage\",\"ts\":1732000000123,\"request_id\":\"r1\","
        "\"tenant_id\":\"00000001-0000-4000-8000-000000000001\","
        "\"provider\":\"openai\",\"model\":\"gpt-4o\",\"status\":200,"
        "\"stream\":false,\"input_tokens\":120,\"error_kind\":null,"
        "\"completed\":true,\"extra\":-1.5e3}";

    ok(spool_record_parse(&r, line, strlen(line), scratch) == 0,
       "spool: a module line is read in one pass");
    ok(r.f[SR_TYPE].type == SR_STRING && r.f[SR_TYPE].len == 5
       && memcmp(r.f[SR_TYPE].s, "usage", 5) == 0, "spool: type string");
    ok(r.f[SR_TS].type == SR_INT && r.f[SR_TS].i == 1732000000123LL,
       "spool: ts integer");
    ok(r.f[SR_STREAM].type == SR_FALSE && r.f[SR_COMPLETED].type == SR_TRUE,
       "spool: booleans");
    ok(r.f[SR_ERROR_KIND].type == SR_NULL, "spool: null");
    ok(r.f[SR_KEY_ID].type == SR_ABSENT, "spool: absent field");
    ok(agrees(line), "spool: same fields as the yajl path");

    ok(agrees("{\"model\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u20ac\\ud83d\\ude00\"}"),
       "spool: escapes decoded like yajl (quote, backslash, \\u, pairs)");
    ok(agrees("{\"model\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}"),
       "spool: raw UTF-8 kept");
    ok(agrees("{\"ts\":1,\"ts\":2}"), "spool: the last duplicate wins");
    ok(agrees("{\"status\":-0,\"ttfb_ms\":-7,\"bytes_in\":1.5,"
              "\"bytes_out\":9223372036854775807,"
              "\"latency_ms\":9223372036854775808}"),
       "spool: integers, negatives, fractions and overflow as yajl types them");
    ok(agrees(" \t{ \"type\" : \"usage\" , \"zz\" : [] }\r") == 0,
       "spool: a nested value goes to yajl");
    ok(agrees(" {\"type\" : \"usage\"}\r "), "spool: whitespace around tokens");
    ok(agrees("{}"), "spool: empty object");

    {
        const char *agg =
            "{\"v\":1,\"type\":\"usage\",\"ts\":1,\"error_kind\":"
            "\"rate_limited\",\"completed\":true,\"count\":4096}";

        ok(spool_record_parse(&r, agg, strlen(agg), scratch) == 0
           && r.f[SR_COUNT].type == SR_INT && r.f[SR_COUNT].i == 4096,
           "spool: an aggregated refusal's count");
        ok(spool_record_parse(&r, line, strlen(line), scratch) == 0
           && r.f[SR_COUNT].type == SR_ABSENT,
           "spool: no count on a record of one request");
        ok(agrees(agg), "spool: count the same on the yajl path");
        ok(agrees("{\"count\":\"7\",\"count\":-1}"),
           "spool: odd counts typed as yajl types them");
    }

    ok(refused("not json"), "spool: garbage refused");
    ok(refused("{\"v\":1,\"type\":\"usage\",\"request_id\":\"torn"),
       "spool: torn line refused");
    ok(refused("{\"a\":1} x"), "spool: trailing garbage refused");
    ok(refused("{\"a\":01}"), "spool: leading zero refused");
    ok(refused("{\"a\":1.}"), "spool: bare fraction refused");
    ok(refused("{\"a\":\"\\u0000\"}"), "spool: \\u0000 left to yajl");
    ok(refused("{\"a\":\"\\ud800x\"}"), "spool: lone surrogate left to yajl");
    ok(refused("{\"a\":\"\\udc00\"}"), "spool: lone low surrogate left to yajl");
    ok(refused("{\"a\":\"\xc0\x80\"}"), "spool: overlong UTF-8 refused");
    ok(refused("{\"a\":\"\xed\xa0\x80\"}"), "spool: UTF-8 surrogate refused");
    ok(refused("{\"a\":\"\x01\"}"), "spool: raw control character refused");
    ok(refused("{\"a\":\"x\\q\"}"), "spool: unknown escape refused");
    ok(refused("{\"a\":tru}"), "spool: bad literal refused");
    ok(refused("{/*c*/\"a\":1}"), "spool: comments left to yajl");
    ok(refused("{\"a\":1,}"), "spool: trailing comma refused");
    ok(refused(""), "spool: empty line refused");
    ok(refused("[1]"), "spool: not an object");
}
