/* test_json.c - bounded parsing, lookups, the writer, page parsing, the
 * list rows' timestamp and jsonb writers */
#include "tap.h"
#include "json.h"
#include "req.h"

#include <stdlib.h>
#include <yajl/yajl_tree.h>


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
        if (json_parse(cases[i], strlen(cases[i]), JSON_LAX, &v, err,
                       sizeof(err)) != JSON_OK)
        {
            v = NULL;
        }
        jw_init(&w);
        jw_tree(&w, v);
        a = jw_steal(&w, NULL);
        json_free(v);

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


/* json_parse() on s (NUL-terminated here for brevity): its result code */
static int
parse_rc(const char *s, int flags, char *err, size_t errlen)
{
    yajl_val v;
    int      rc = json_parse(s, strlen(s), flags, &v, err, errlen);

    if ((rc == JSON_OK) != (v != NULL)) {
        return 99;                  /* *out and the result disagree */
    }
    json_free(v);
    return rc;
}


/* a malloc'd text: open, then mid, then close, each n times */
static char *
repeat3(const char *open, size_t n, const char *mid, const char *close)
{
    size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close), i;
    char  *s = malloc(n * (lo + lc) + lm + 1), *p = s;

    for (i = 0; i < n; i++, p += lo) {
        memcpy(p, open, lo);
    }
    memcpy(p, mid, lm);
    p += lm;
    for (i = 0; i < n; i++, p += lc) {
        memcpy(p, close, lc);
    }
    *p = '\0';
    return s;
}


static void
test_parse(void)
{
    char     err[256];
    yajl_val v;

    ok(json_parse("{\"a\":1,\"b\":\"x\"}xyz", 15, 0, &v, err, sizeof(err))
       == JSON_OK, "json: parses an object (not NUL-terminated input ok)");
    ok(json_get(v, "a") && YAJL_GET_INTEGER(json_get(v, "a")) == 1
       && strcmp(json_get(v, "b")->u.string, "x") == 0,
       "json: members read back");
    ok(json_get(v, "zz") == NULL, "json: absent key is NULL");
    json_free(v);
    json_free(NULL);

    ok(parse_rc("{\"a\":1,\"b\":\"x\",\"a\":2}", 0, err, sizeof(err))
       == JSON_EINVALID && strcmp(err, "duplicate key \"a\"") == 0,
       "json: a duplicate key is refused, and named: %s", err);
    ok(json_parse("{\"a\":1,\"b\":\"x\",\"a\":2}", 21, JSON_LAX, &v, err,
                  sizeof(err)) == JSON_OK
       && YAJL_GET_INTEGER(json_get(v, "a")) == 2
       && v->u.object.len == 3, "json: lax keeps duplicates, the last wins");
    json_free(v);
    ok(parse_rc("[{\"a\":1},{\"a\":2},{\"b\":{\"a\":1,\"c\":[],\"a\":3}}]",
                0, err, sizeof(err)) == JSON_EINVALID,
       "json: a duplicate key deep inside is refused too");

    ok(parse_rc("{\"a\":", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: truncated input is refused");
    ok(strncmp(err, "malformed JSON", 14) == 0, "json: error says malformed");
    ok(strchr(err, '\n') == NULL, "json: error message is one line");
    ok(json_parse("", 0, 0, &v, err, sizeof(err)) == JSON_EINVALID
       && v == NULL, "json: empty refused");
    ok(parse_rc(" \t\r\n", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: blank refused");
    ok(json_parse("{\"a\":\"\0\"}", 9, 0, &v, err, sizeof(err))
       == JSON_EINVALID, "json: NUL byte refused");

    /* comments in every form and place; lax does not allow them either */
    ok(parse_rc("/**/{}", 0, err, sizeof(err)) == JSON_EINVALID
       && strstr(err, "comment") != NULL, "json: a leading comment is refused"
       " (%s)", err);
    ok(parse_rc("{\"a\"://x\n1}", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: a line comment is refused");
    ok(parse_rc("[1/*\"*/]", JSON_LAX, err, sizeof(err)) == JSON_EINVALID,
       "json: a comment holding a quote is refused (lax too)");
    ok(parse_rc("{} /* */", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: a trailing comment is refused");
    ok(parse_rc("{}x", 0, err, sizeof(err)) == JSON_EINVALID
       && strstr(err, "trailing garbage") != NULL,
       "json: trailing garbage is refused (%s)", err);
    ok(parse_rc("{}{}", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: a second document is refused");
    ok(parse_rc(" {} \n", 0, err, sizeof(err)) == JSON_OK,
       "json: surrounding whitespace is fine");
    ok(parse_rc("[1,]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("{\"a\":1,}", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("'a'", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("{a:1}", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("NaN", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("01", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: trailing commas, single quotes, bare keys, NaN, 01 refused");
}


/* depth counted in the parser; the value bound; deep and wide trees are
 * built and freed without recursion (ASan's build checks the frees) */
static void
test_parse_bounds(void)
{
    char      err[256], *s;
    yajl_val  v, x;
    int       i, ok_depth;
    size_t    n;

    s = repeat3("[", JSON_MAX_DEPTH, "", "]");
    ok(json_parse(s, strlen(s), 0, &v, err, sizeof(err)) == JSON_OK,
       "json: %d levels parse", JSON_MAX_DEPTH);
    for (x = v, i = 1, ok_depth = 1; i < JSON_MAX_DEPTH; i++) {
        if (!YAJL_IS_ARRAY(x) || x->u.array.len != 1) {
            ok_depth = 0;
            break;
        }
        x = x->u.array.values[0];
    }
    ok(ok_depth && YAJL_IS_ARRAY(x) && x->u.array.len == 0
       && x->u.array.values == NULL, "json: ... into %d nested arrays",
       JSON_MAX_DEPTH);
    json_free(v);
    free(s);

    s = repeat3("[", JSON_MAX_DEPTH + 1, "", "]");
    ok(parse_rc(s, 0, err, sizeof(err)) == JSON_EINVALID
       && strcmp(err, "JSON nested deeper than 32 levels") == 0,
       "json: %d levels refused: %s", JSON_MAX_DEPTH + 1, err);
    free(s);
    s = repeat3("{\"k\":", JSON_MAX_DEPTH + 1, "1", "}");
    ok(parse_rc(s, 0, err, sizeof(err)) == JSON_EINVALID
       && strstr(err, "nested deeper") != NULL,
       "json: %d nested objects refused", JSON_MAX_DEPTH + 1);
    free(s);
    s = repeat3("{\"k\":", JSON_MAX_DEPTH, "[]", "}");
    ok(parse_rc(s, 0, err, sizeof(err)) == JSON_EINVALID,
       "json: objects and arrays count alike");
    free(s);

    /* issue 12, finding 1: a comment holding a quote blinded the old
     * bracket count, then yajl's recursive free overflowed the stack */
    s = repeat3("[", 524000, "", "]");
    ok(parse_rc(s, 0, err, sizeof(err)) == JSON_EINVALID
       && strstr(err, "nested deeper") != NULL,
       "json: 524,000 levels refused at level 33");
    free(s);
    s = repeat3("[", 524000, "", "]");
    memcpy(s, "/*\"*/", 5);
    ok(parse_rc(s, 0, err, sizeof(err)) == JSON_EINVALID
       && strstr(err, "comment") != NULL,
       "json: the 1 MB comment-and-brackets body is refused: %s", err);
    free(s);
    {
        /* brackets inside a string are text */
        char *b = malloc(100006);

        memcpy(b, "[\"", 2);
        for (n = 0; n < 100000; n++) {
            b[2 + n] = "[{]}"[n % 4];
        }
        memcpy(b + 100002, "\"]", 3);
        ok(json_parse(b, 100004, 0, &v, err, sizeof(err)) == JSON_OK
           && strlen(v->u.array.values[0]->u.string) == 100000,
           "json: 100,000 brackets inside a string are no depth");
        json_free(v);
        free(b);
    }

    /* the value bound: the root counts, keys do not */
    {
        size_t cap = 2 * JSON_MAX_VALUES + 16, l;
        char  *b = malloc(cap);

        l = 0;
        b[l++] = '[';
        for (n = 0; n < JSON_MAX_VALUES - 1; n++) {
            b[l++] = '0';
            b[l++] = ',';
        }
        b[l - 1] = ']';
        b[l] = '\0';
        ok(json_parse(b, l, 0, &v, err, sizeof(err)) == JSON_OK
           && v->u.array.len == JSON_MAX_VALUES - 1,
           "json: %d values parse (a wide tree, freed in one go)",
           JSON_MAX_VALUES);
        json_free(v);
        b[l - 1] = ',';
        b[l++] = '0';
        b[l++] = ']';
        b[l] = '\0';
        ok(json_parse(b, l, 0, &v, err, sizeof(err)) == JSON_EINVALID
           && strcmp(err, "JSON holds more than 100000 values") == 0,
           "json: one more is refused: %s", err);
        free(b);
    }

    /* wide at every level of a deep tree: all of it is freed (ASan) */
    {
        size_t l = 0;
        char  *b = malloc(1 << 20);
        int    d;

        /* an object per level, the innermost {} at the last one */
        for (d = 0; d < JSON_MAX_DEPTH - 2; d++) {
            l += (size_t) sprintf(b + l, "{\"s\":\"%0200d\",\"n\":[1,2.5,"
                                  "\"x\",true,null,{}],\"o\":", d);
        }
        l += (size_t) sprintf(b + l, "[]");
        for (d = 0; d < JSON_MAX_DEPTH - 2; d++) {
            b[l++] = '}';
        }
        b[l] = '\0';
        ok(json_parse(b, l, 0, &v, err, sizeof(err)) == JSON_OK,
           "json: a deep and wide tree parses (%s)", err);
        for (x = v, d = 0; x != NULL && YAJL_IS_OBJECT(x); d++) {
            x = json_get(x, "o");
        }
        ok(d == JSON_MAX_DEPTH - 2 && x != NULL && YAJL_IS_ARRAY(x),
           "json: ... %d objects down to the innermost array", d);
        json_free(v);
        free(b);
    }
}


static void
test_parse_strings(void)
{
    char        err[256];
    yajl_val    v;
    const char *t;

    static const char esc[] = "[\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u00e9"
                              "\\u20ac\\ud83d\\ude00\"]";

    ok(json_parse(esc, sizeof(esc) - 1, 0, &v, err, sizeof(err)) == JSON_OK,
       "json: escapes parse (%s)", err);
    t = v ? YAJL_GET_STRING(v->u.array.values[0]) : NULL;
    is_str(t, "q\"b\\s/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
           "json: ... decoded, NUL-terminated");
    json_free(v);

    ok(parse_rc("[\"na\xc3\xafve \xe4\xb8\x9c \xf4\x8f\xbf\xbf\"]", 0, err,
                sizeof(err)) == JSON_OK, "json: raw UTF-8 up to U+10FFFF is taken");
    ok(parse_rc("[\"\xff\"]", 0, err, sizeof(err)) == JSON_EINVALID
       && strstr(err, "UTF") != NULL, "json: a stray byte is refused: %s",
       err);
    ok(parse_rc("[\"\xc0\xaf\"]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[\"\xe0\x80\xaf\"]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[\"\xf0\x80\x80\xaf\"]", 0, err, sizeof(err))
          == JSON_EINVALID, "json: overlong forms are refused");
    ok(parse_rc("[\"\xed\xa0\x80\"]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[\"\\udc00\"]", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: surrogates, raw or a lone low escape, are refused");
    ok(parse_rc("[\"\xf4\x90\x80\x80\"]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[\"\xf8\x88\x80\x80\x80\"]", 0, err, sizeof(err))
          == JSON_EINVALID, "json: beyond U+10FFFF is refused");
    ok(parse_rc("[\"\xc3\"]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("{\"\xc3\":1}", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: a cut sequence is refused, in a key too");
    ok(parse_rc("[\"\xed\xa0\x80\"]", JSON_LAX, err, sizeof(err)) == JSON_OK,
       "json: lax leaves UTF-8 to yajl's own check");

    ok(parse_rc("[\"a\\u0000b\"]", 0, err, sizeof(err)) == JSON_ENUL
       && strcmp(err, "strings must not contain NUL characters (\\u0000)") == 0,
       "json: U+0000 in a string: JSON_ENUL (%s)", err);
    ok(parse_rc("{\"a\\u0000\":1}", 0, err, sizeof(err)) == JSON_ENUL,
       "json: U+0000 in a key: JSON_ENUL");
    ok(parse_rc("[\"\\u0000\"", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: malformed text with a U+0000 is malformed first");
    ok(parse_rc("[\"a\\\\u0000b\"]", 0, err, sizeof(err)) == JSON_OK,
       "json: an escaped backslash before u0000 is text");
    ok(json_parse("[\"a\\u0000b\"]", 12, JSON_LAX, &v, err, sizeof(err))
       == JSON_OK && strcmp(v->u.array.values[0]->u.string, "a") == 0,
       "json: lax: U+0000 ends the C string, as yajl's tree had it");
    json_free(v);
}


static void
test_parse_numbers(void)
{
    static const struct {
        const char *text;
        unsigned    flags;
        long long   i;
    } cases[] = {
        { "0", 3, 0 },
        { "-0", 3, 0 },
        { "42", 3, 42 },
        { "-17", 3, -17 },
        { "9223372036854775807", 3, 9223372036854775807LL },
        { "-9223372036854775807", 3, -9223372036854775807LL },
        { "-9223372036854775808", 2, 0 },      /* yajl's tree: no int */
        { "9223372036854775808", 2, 0 },
        { "99999999999999999999", 2, 0 },
        { "1.5", 2, 0 },
        { "1e3", 2, 0 },
        { "60.0", 2, 0 },
        { "1E400", 0, 0 },                     /* strtod: ERANGE */
        { "-1e999999", 0, 0 },
        { "1e-400", 0, 0 },
    };
    char     err[128], *big;
    size_t   i;
    yajl_val v, n;
    int      good = 1;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char t[64];

        snprintf(t, sizeof(t), "[%s]", cases[i].text);
        if (json_parse(t, strlen(t), 0, &v, err, sizeof(err)) != JSON_OK) {
            good = 0;
            printf("#   " "number %s refused: %s" "\n", cases[i].text, err);
            continue;
        }
        n = v->u.array.values[0];
        if (!YAJL_IS_NUMBER(n) || strcmp(n->u.number.r, cases[i].text) != 0
            || n->u.number.flags != cases[i].flags
            || ((cases[i].flags & YAJL_NUMBER_INT_VALID)
                && n->u.number.i != cases[i].i)
            || YAJL_IS_INTEGER(n) != (int) (cases[i].flags & 1)
            || YAJL_IS_DOUBLE(n) != (int) ((cases[i].flags & 2) >> 1))
        {
            good = 0;
            printf("#   " "number %s: flags %u i %lld" "\n", cases[i].text,
                 n->u.number.flags, n->u.number.i);
        }
        json_free(v);
    }
    ok(good, "json: numbers keep their text, i and d with yajl_tree's flags");
    ok(parse_rc("[1.5e3]", 0, err, sizeof(err)) == JSON_OK
       && json_parse("[1.5e3]", 7, 0, &v, err, sizeof(err)) == JSON_OK
       && YAJL_GET_DOUBLE(v->u.array.values[0]) == 1500.0,
       "json: a double's value");
    json_free(v);

    big = malloc(500003);
    big[0] = '[';
    memset(big + 1, '9', 500000);
    big[500001] = ']';
    big[500002] = '\0';
    ok(json_parse(big, 500002, 0, &v, err, sizeof(err)) == JSON_OK
       && strlen(v->u.array.values[0]->u.number.r) == 500000
       && v->u.array.values[0]->u.number.flags == 0,
       "json: a 500,000-digit number is a number, neither int nor double");
    json_free(v);
    free(big);
    ok(parse_rc("[-]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[1.]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[.5]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[+1]", 0, err, sizeof(err)) == JSON_EINVALID
       && parse_rc("[1e]", 0, err, sizeof(err)) == JSON_EINVALID,
       "json: malformed numbers are refused");
}


/* the tree has yajl_tree's shape: yajl_tree_get walks it */
static void
test_parse_tree(void)
{
    static const char *path[] = { "a", "b", NULL };
    char      err[128];
    yajl_val  v, x;

    static const char t[] = "{\"a\":{\"b\":[true,false,null,\"s\",{},[]]},"
                            "\"c\":7}";

    ok(json_parse(t, sizeof(t) - 1, 0, &v, err, sizeof(err)) == JSON_OK,
       "json: a mixed tree parses (%s)", err);
    x = yajl_tree_get(v, path, yajl_t_array);
    ok(x != NULL && x->u.array.len == 6 && YAJL_IS_TRUE(x->u.array.values[0])
       && YAJL_IS_FALSE(x->u.array.values[1])
       && YAJL_IS_NULL(x->u.array.values[2])
       && YAJL_IS_STRING(x->u.array.values[3])
       && strcmp(x->u.array.values[3]->u.string, "s") == 0
       && YAJL_IS_OBJECT(x->u.array.values[4])
       && x->u.array.values[4]->u.object.len == 0
       && x->u.array.values[4]->u.object.keys == NULL
       && YAJL_IS_ARRAY(x->u.array.values[5]),
       "json: yajl_tree_get finds a.b; every type in place");
    ok(v->u.object.len == 2 && strcmp(v->u.object.keys[1], "c") == 0
       && YAJL_GET_INTEGER(v->u.object.values[1]) == 7,
       "json: members keep their order");
    json_free(v);

    ok(parse_rc("\"top\"", 0, err, sizeof(err)) == JSON_OK
       && parse_rc("12", 0, err, sizeof(err)) == JSON_OK
       && parse_rc("null", 0, err, sizeof(err)) == JSON_OK,
       "json: a scalar may be the root");
}


void
test_json(void)
{
    jw_t        w;
    char       *s, err[256];
    yajl_val    v;
    long        limit, offset;
    const char *perr;

    test_parse();
    test_parse_bounds();
    test_parse_strings();
    test_parse_numbers();
    test_parse_tree();

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
    ok(json_parse(s, strlen(s), 0, &v, err, sizeof(err)) == JSON_OK,
       "json: writer output parses back");
    jw_init(&w);
    jw_tree(&w, v);
    free(jw_steal(&w, NULL));
    json_free(v);
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
