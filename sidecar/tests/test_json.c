/* test_json.c - bounded parsing, lookups, the writer, page parsing, the
 * list rows' timestamp and jsonb writers */
#include "tap.h"
#include "json.h"
#include "req.h"

#include <stdlib.h>


/* what to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') gives for the ISO
 * text of the same timestamp */
static void
test_pg_ts(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "2026-01-31 12:00:00", "\"2026-01-31T12:00:00.000Z\"" },
        { "2026-01-31 12:00:00.5", "\"2026-01-31T12:00:00.500Z\"" },
        { "2026-01-31 12:00:00.123456", "\"2026-01-31T12:00:00.123Z\"" },
        { "2031-06-01 01:02:03.999999", "\"2031-06-01T01:02:03.999Z\"" },
        { "2026-01-01 00:00:00.000999", "\"2026-01-01T00:00:00.000Z\"" },
        { "0044-03-15 10:00:00.12 BC", "\"0044-03-15T10:00:00.120Z\"" },
        { "10000-01-01 00:00:00", "\"10000-01-01T00:00:00.000Z\"" },
        { "infinity", "null" },
        { "-infinity", "null" },
        { NULL, "null" },
    };
    size_t i;
    jw_t   w;
    char  *s;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        jw_init(&w);
        jw_pg_ts(&w, cases[i].in);
        s = jw_steal(&w, NULL);
        is_str(s, cases[i].want, "pg_ts: %s",
               cases[i].in ? cases[i].in : "NULL");
        free(s);
    }
}


/* jw_jsonb writes what parsing and jw_tree() would */
static void
test_jsonb(void)
{
    static const char *const cases[] = {
        "{\"keywords\": [\"a b\", \"q\\\"uote\", \"back\\\\slash\","
        " \"ctl\\u0001x\", \": , {}\", 1.50, 1000], \"nested\":"
        " {\"x\": [{\"y\": null, \"z\": true}]}}",
        "{\"envs\": [], \"key_ids\": [], \"providers\": [\"openai\"]}",
        "[]",
        "\"a string: with, spaces\"",
        "-1.5e3",
    };
    char     err[64], *a, *b;
    size_t   i;
    yajl_val v;
    jw_t     w;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        v = json_parse(cases[i], strlen(cases[i]), err, sizeof(err));
        jw_init(&w);
        jw_tree(&w, v);
        a = jw_steal(&w, NULL);
        yajl_tree_free(v);

        jw_init(&w);
        jw_arr(&w);
        jw_jsonb(&w, cases[i]);
        jw_jsonb(&w, NULL);
        jw_arr_end(&w);
        b = jw_steal(&w, NULL);

        ok(strncmp(b, "[", 1) == 0 && strlen(b) == strlen(a) + 7
           && strncmp(b + 1, a, strlen(a)) == 0
           && strcmp(b + 1 + strlen(a), ",null]") == 0,
           "jsonb: compact like the tree (case %zu): %s", i, b);
        free(a);
        free(b);
    }
}

/* the escaper, byte by byte, as JSON says: the reference for jw_escape's
 * eight-at-a-time path */
static size_t
ref_escape(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; i < n; i++) {
        switch (s[i]) {
        case '"':  o += (size_t) sprintf(out + o, "\\\""); break;
        case '\\': o += (size_t) sprintf(out + o, "\\\\"); break;
        case '\n': o += (size_t) sprintf(out + o, "\\n"); break;
        case '\r': o += (size_t) sprintf(out + o, "\\r"); break;
        case '\t': o += (size_t) sprintf(out + o, "\\t"); break;
        case '\b': o += (size_t) sprintf(out + o, "\\b"); break;
        case '\f': o += (size_t) sprintf(out + o, "\\f"); break;
        default:
            if (s[i] < 0x20) {
                o += (size_t) sprintf(out + o, "\\u%04x", s[i]);
            } else {
                out[o++] = (char) s[i];
            }
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}


/* random strings, dense in the bytes that matter (controls, quotes,
 * backslashes, 0x1f/0x20 and 0x7f/0x80 edges, UTF-8), at every length
 * and alignment around the eight-byte steps */
static void
test_escape_differential(void)
{
    static const unsigned char pick[] = {
        'a', 'Z', ' ', '"', '\\', 0x00, 0x01, 0x08, 0x0a, 0x1f, 0x20, 0x21,
        0x7f, 0x80, 0xc3, 0xa9, 0xff, '!', '#', '[', ']', 0x5b, 0x5d, 0x5c,
    };
    unsigned char in[70];
    char          want[70 * 6 + 8];
    unsigned int  seed = 12345;
    size_t        len, i, wlen;
    int           round, bad = 0;
    jw_t          w;

    for (round = 0; round < 20000 && !bad; round++) {
        len = (size_t) round % sizeof(in);
        for (i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            /* mostly plain letters, so long clean runs occur too */
            in[i] = (seed >> 16) % 4 ? (unsigned char) ('a' + (seed >> 20) % 26)
                                     : pick[(seed >> 20) % sizeof(pick)];
        }
        wlen = ref_escape(in, len, want);
        jw_init(&w);
        jw_strn(&w, (const char *) in, len);
        if (w.len != wlen || memcmp(w.buf, want, wlen) != 0) {
            bad = 1;
        }
        jw_free(&w);
    }
    ok(!bad, "json: the writer escapes exactly as the byte-by-byte reference"
             " (20,000 random strings)");

    /* longer than the writer's 4,096-byte reservation step, with escapes
     * on both sides of each step */
    {
        static unsigned char big[10000];
        static char          bigwant[10000 * 6 + 8];

        memset(big, 'x', sizeof(big));
        big[0] = '"';
        big[4095] = 0x01;
        big[4096] = '\\';
        big[8191] = '\n';
        big[8192] = 0x1f;
        big[9999] = '"';
        wlen = ref_escape(big, sizeof(big), bigwant);
        jw_init(&w);
        jw_strn(&w, (const char *) big, sizeof(big));
        ok(w.len == wlen && memcmp(w.buf, bigwant, wlen) == 0
           && w.buf[w.len] == '\0',
           "json: a 10,000-byte string escapes across reservation steps");
        jw_free(&w);
    }
}


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

    test_pg_ts();
    test_jsonb();
    test_escape_differential();
}
