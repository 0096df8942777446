/* test_json.c - bounded parsing, lookups, the writer, page parsing */
#include "tap.h"
#include "json.h"
#include "req.h"

#include <stdlib.h>

void
test_json(void)
{
    char        err[256], deep[200];
    yajl_val    v;
    jw_t        w;
    char       *s;
    long        limit, offset;
    const char *perr;
    int         i;

    v = json_parse("{\"a\":1,\"b\":\"x\",\"a\":2}", 21, err, sizeof(err));
    ok(v != NULL, "json: parses an object (not NUL-terminated input ok)");
    ok(json_get(v, "a") && YAJL_GET_INTEGER(json_get(v, "a")) == 2,
       "json: duplicate key, the last wins");
    ok(json_get(v, "zz") == NULL, "json: absent key is NULL");
    yajl_tree_free(v);

    ok(json_parse("{\"a\":", 5, err, sizeof(err)) == NULL,
       "json: truncated input is refused");
    ok(strncmp(err, "malformed JSON", 14) == 0, "json: error says malformed");
    ok(strchr(err, '\n') == NULL, "json: error message is one line");
    ok(json_parse("", 0, err, sizeof(err)) == NULL, "json: empty refused");
    ok(json_parse("{\"a\":\"\0\"}", 9, err, sizeof(err)) == NULL,
       "json: NUL byte refused");

    for (i = 0; i < 100; i++) deep[i] = '[';
    for (i = 0; i < 100; i++) deep[100 + i] = ']';
    ok(json_parse(deep, 200, err, sizeof(err)) == NULL,
       "json: 100 levels deep refused before yajl recurses");
    memset(deep, '[', 60);
    deep[0] = '[';
    deep[1] = '"';
    deep[58] = '"';
    deep[59] = ']';
    v = json_parse(deep, 60, err, sizeof(err));
    ok(v != NULL,
       "json: brackets inside strings do not count as depth");
    yajl_tree_free(v);

    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "s", "q\"\\\n\t\x01 é");
    jw_kint(&w, "n", -42);
    jw_kbool(&w, "t", 1);
    jw_knull(&w, "z");
    jw_key(&w, "a");
    jw_arr(&w);
    jw_int(&w, 1);
    jw_str(&w, NULL);
    jw_obj(&w);
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_obj_end(&w);
    s = jw_steal(&w, NULL);
    is_str(s, "{\"s\":\"q\\\"\\\\\\n\\t\\u0001 é\",\"n\":-42,\"t\":true,"
              "\"z\":null,\"a\":[1,null,{}]}", "json: writer output");
    v = json_parse(s, strlen(s), err, sizeof(err));
    ok(v != NULL, "json: writer output parses back");
    jw_init(&w);
    jw_tree(&w, v);
    free(jw_steal(&w, NULL));
    yajl_tree_free(v);
    free(s);

    jw_init(&w);
    jw_page_begin(&w);
    jw_int(&w, 7);
    jw_page_end(&w, 120, 50, 100);
    s = jw_steal(&w, NULL);
    is_str(s, "{\"items\":[7],\"total\":120,\"limit\":50,\"offset\":100}",
           "json: pagination envelope");
    free(s);

    ok(page_parse(NULL, NULL, &limit, &offset, &perr) == 0 && limit == 50
       && offset == 0, "page: defaults 50/0");
    ok(page_parse("200", "5", &limit, &offset, &perr) == 0 && limit == 200
       && offset == 5, "page: max limit accepted");
    ok(page_parse("201", NULL, &limit, &offset, &perr) != 0,
       "page: limit over 200 refused");
    ok(page_parse("0", NULL, &limit, &offset, &perr) != 0,
       "page: limit 0 refused");
    ok(page_parse("-1", NULL, &limit, &offset, &perr) != 0,
       "page: negative limit refused");
    ok(page_parse("10x", NULL, &limit, &offset, &perr) != 0,
       "page: trailing junk refused");
    ok(page_parse(NULL, "-3", &limit, &offset, &perr) != 0,
       "page: negative offset refused");
    ok(page_parse(NULL, "99999999999999999999", &limit, &offset, &perr) != 0,
       "page: overflowing offset refused");
    ok(page_parse("", NULL, &limit, &offset, &perr) != 0,
       "page: empty limit refused");
}
