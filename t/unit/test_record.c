/* test_record.c - spool lines are valid JSON, escaped, bounded */
#include "../../sidecar/tests/tap.h"
#include "trueport_record.h"

#include <stdlib.h>
#include <yajl/yajl_tree.h>

int tap_n, tap_failed;

int
main(void)
{
    char              buf[TP_RECORD_MAX], longp[5000], err[128];
    tp_usage_rec_t    r;
    tp_violation_rec_t v;
    size_t            n;
    yajl_val          doc;

    memset(&r, 0, sizeof(r));
    r.ts_ms = 1800000000123LL;
    r.request_id = "abc123";
    r.tenant_id = "11111111-1111-1111-1111-111111111111";
    r.key_id = "22222222-2222-2222-2222-222222222222";
    r.env = "production";
    r.provider = TP_ANTHROPIC;
    r.model = "claude-request-model";
    r.path = "/v1/messages?x=\"q\"\n";
    r.path_len = strlen(r.path);
    r.status = 200;
    r.stream = 1;
    r.usage.input_tokens = 10;
    r.usage.output_tokens = 5;
    r.usage.cached_tokens = -1;
    r.usage.reasoning_tokens = -1;
    r.usage.total_tokens = 15;
    strcpy(r.usage.model, "claude-3-5-haiku-20241022");
    r.ttfb_ms = 12;
    r.latency_ms = 40;
    r.bytes_in = 100;
    r.bytes_out = 900;
    r.client_ip = "127.0.0.1";
    r.completed = 0;

    n = tp_record_usage(buf, sizeof(buf), &r);
    ok(n > 0 && buf[n - 1] == '\n', "usage: one line ending in a newline");
    ok(memchr(buf, '\n', n - 1) == NULL, "usage: no newline inside");
    buf[n] = '\0';
    doc = yajl_tree_parse(buf, err, sizeof(err));
    ok(doc != NULL, "usage: valid JSON");
    {
        const char *p1[] = { "model", NULL }, *p2[] = { "path", NULL },
                   *p3[] = { "cached_tokens", NULL }, *p4[] = { "completed", NULL },
                   *p5[] = { "error_kind", NULL };
        yajl_val m = yajl_tree_get(doc, p1, yajl_t_string);
        is_str(m ? m->u.string : NULL, "claude-3-5-haiku-20241022",
               "usage: the response's model wins");
        m = yajl_tree_get(doc, p2, yajl_t_string);
        is_str(m ? m->u.string : NULL, "/v1/messages?x=\"q\"\n", "usage: path escaped and round-trips");
        ok(yajl_tree_get(doc, p3, yajl_t_any) == NULL, "usage: unknown counts are absent");
        ok(yajl_tree_get(doc, p4, yajl_t_false) != NULL, "usage: completed false (cut off)");
        ok(yajl_tree_get(doc, p5, yajl_t_null) != NULL, "usage: no error is null");
    }
    yajl_tree_free(doc);

    r.usage.model[0] = '\0';
    n = tp_record_usage(buf, sizeof(buf), &r);
    buf[n] = '\0';
    ok(strstr(buf, "\"model\":\"claude-request-model\"") != NULL,
       "usage: the request's model when the response had none");

    memset(longp, 'a', sizeof(longp));
    memcpy(longp + 1020, "\xc3\xa9\xc3\xa9", 4);
    r.path = longp;
    r.path_len = sizeof(longp);
    n = tp_record_usage(buf, sizeof(buf), &r);
    buf[n] = '\0';
    doc = yajl_tree_parse(buf, err, sizeof(err));
    ok(n > 0 && doc != NULL, "usage: a 5000-byte path is cut, the line stays valid UTF-8 JSON");
    yajl_tree_free(doc);

    memset(&v, 0, sizeof(v));
    v.ts_ms = 1;
    v.id = "33333333-3333-3333-3333-333333333333";
    v.request_id = "abc";
    v.tenant_id = r.tenant_id;
    v.provider = TP_OPENAI;
    v.action = "block";
    v.rule_type = "pii";
    v.detector = "email";
    v.excerpt = "j***@e***.com \x01";
    n = tp_record_violation(buf, sizeof(buf), &v);
    buf[n] = '\0';
    doc = yajl_tree_parse(buf, err, sizeof(err));
    ok(n > 0 && doc != NULL, "violation: valid JSON with a control char escaped");
    yajl_tree_free(doc);

    ok(tp_record_usage(buf, 50, &r) == 0, "usage: too small a buffer gives 0, no overflow");

    {
        char   line[TP_RECORD_MAX + TP_RECORD_COUNT_ROOM];
        size_t len;

        r.path = "/v1/chat/completions";
        r.path_len = strlen(r.path);
        len = tp_record_usage(line, TP_RECORD_MAX, &r);
        is_int(tp_record_count(line, len, sizeof(line), 1), len,
               "count: 1 is left out (absent means 1)");
        n = tp_record_count(line, len, sizeof(line), 12345);
        line[n] = '\0';
        ok(n > len && strcmp(line + n - 16, ",\"count\":12345}\n") == 0,
           "count: appended last, the line still ends with }\\n");
        doc = yajl_tree_parse(line, err, sizeof(err));
        ok(doc != NULL && YAJL_IS_INTEGER(yajl_tree_get(doc,
               (const char *[]) { "count", NULL }, yajl_t_number))
           && YAJL_GET_INTEGER(yajl_tree_get(doc,
               (const char *[]) { "count", NULL }, yajl_t_number)) == 12345,
           "count: valid JSON with the integer count");
        yajl_tree_free(doc);
        ok(tp_record_count(line, n - 1, sizeof(line), 2) == 0,
           "count: a line without its newline is refused");
        ok(tp_record_count(line, len, len + 5, 7) == 0,
           "count: too little room gives 0");
        len = tp_record_usage(line, TP_RECORD_MAX, &r);
        ok(tp_record_count(line, len, len + TP_RECORD_COUNT_ROOM,
                           UINT64_MAX) > 0,
           "count: TP_RECORD_COUNT_ROOM holds the largest count");
    }

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
