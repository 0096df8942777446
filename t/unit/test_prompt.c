/* test_prompt.c - text extraction per provider format, JSON decoding
 * (escapes, surrogates, UTF-8), malformed bodies, segment joining, and
 * redaction that keeps the body valid JSON */
#include "../../sidecar/tests/tap.h"
#include "trueport_prompt.h"

#include <stdlib.h>
#include <yajl/yajl_tree.h>

int tap_n, tap_failed;

static void *m_alloc(void *c, size_t n) { (void) c; return malloc(n); }
static void *m_realloc(void *c, void *p, size_t n) { (void) c; return realloc(p, n); }
static void  m_free(void *c, void *p) { (void) c; free(p); }
static const tp_alloc_t A = { m_alloc, m_realloc, m_free, NULL };

/* an allocator that fails after `left` allocations */
static int left;
static void *f_alloc(void *c, size_t n) { (void) c; return left-- > 0 ? malloc(n) : NULL; }
static const tp_alloc_t F = { f_alloc, m_realloc, m_free, NULL };

static char err[256];

static tp_prompt_t *
parse_url(int provider, const char *body, const char *url_model)
{
    tp_prompt_t *p;
    int          rc;

    rc = tp_prompt_parse(&A, provider, (const unsigned char *) body,
                         strlen(body), url_model,
                         url_model ? strlen(url_model) : 0, &p, err,
                         sizeof(err));
    if (rc != TP_PROMPT_OK) {
        printf("#   parse failed (%d): %s\n", rc, err);
        return NULL;
    }
    return p;
}

#define parse(pr, b) parse_url(pr, b, NULL)

static const char *
text(tp_prompt_t *p)
{
    return p ? (const char *) p->text : "(parse failed)";
}

static int
malformed(int provider, const char *body)
{
    tp_prompt_t *p;
    int          rc = tp_prompt_parse(&A, provider, (const unsigned char *) body,
                                      strlen(body), NULL, 0, &p, err,
                                      sizeof(err));

    if (rc == TP_PROMPT_OK) {
        tp_prompt_destroy(p);
    }
    return rc == TP_PROMPT_EMALFORMED && p == NULL && err[0] != '\0';
}

/* the redacted body parses back and is returned NUL-terminated */
static char out_buf[65536];

static const char *
redact(tp_prompt_t *p, const tp_span_t *spans, size_t n, int *valid)
{
    const unsigned char *o;
    size_t               olen;
    yajl_val             doc;
    char                 e[128];

    *valid = 0;
    if (tp_prompt_redact(p, spans, n, &o, &olen) != 0 || olen >= sizeof(out_buf)) {
        return "(redact failed)";
    }
    memcpy(out_buf, o, olen);
    out_buf[olen] = '\0';
    doc = yajl_tree_parse(out_buf, e, sizeof(e));
    *valid = doc != NULL;
    yajl_tree_free(doc);
    return out_buf;
}

/* the span of `needle` in the prompt's text */
static tp_span_t
span_of(tp_prompt_t *p, const char *needle, const char *tag)
{
    tp_span_t   s = { 0, 0, tag };
    const char *at = strstr((const char *) p->text, needle);

    if (at != NULL) {
        s.start = (uint32_t) (at - (const char *) p->text);
        s.end = s.start + (uint32_t) strlen(needle);
    }
    return s;
}

static const char *
string_at(const char *json, const char **path)
{
    static char buf[4096];
    yajl_val    doc = yajl_tree_parse(json, NULL, 0), v;

    buf[0] = '\0';
    if (doc == NULL) {
        return "(invalid)";
    }
    v = yajl_tree_get(doc, path, yajl_t_any);
    if (v != NULL && YAJL_IS_STRING(v)) {
        snprintf(buf, sizeof(buf), "%s", YAJL_GET_STRING(v));
    } else if (v != NULL && YAJL_IS_ARRAY(v)) {
        snprintf(buf, sizeof(buf), "(array)");
    }
    yajl_tree_free(doc);
    return buf;
}

static void
test_openai(void)
{
    tp_prompt_t *p;

    p = parse(TP_OPENAI,
        "{\"model\":\"gpt-4o\",\"max_tokens\":256,\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Hello there\"}],\"temperature\":0.2}");
    is_str(text(p), "Be brief.\nHello there", "openai: string contents, one message per line");
    is_str(p ? p->model : NULL, "gpt-4o", "openai: model");
    is_int(p ? p->max_output_tokens : 0, 256, "openai: max_tokens");
    is_int(p ? (long long) p->nsegs : 0, 2, "openai: two segments");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI,
        "{\"model\":\"gpt-4o\",\"max_completion_tokens\":99,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"sk-abc\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}},"
        "{\"type\":\"text\",\"text\":\"def\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"lookup\",\"arguments\":\"{\\\"q\\\":\\\"x@y.com\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"result\"}]}");
    is_str(text(p), "sk-abcdef\n{\"q\":\"x@y.com\"}\nresult",
           "openai: content parts joined, image skipped, tool-call arguments, tool result");
    is_int(p ? p->max_output_tokens : 0, 99, "openai: max_completion_tokens");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":[\"one\",\"two\"],\"max_tokens\":5}");
    is_str(text(p), "one\ntwo", "openai completions: prompt array");
    tp_prompt_destroy(p);
    p = parse(TP_OPENAI, "{\"model\":\"m\",\"prompt\":\"single\"}");
    is_str(text(p), "single", "openai completions: prompt string");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"text-embedding-3-small\",\"input\":[\"alpha\",\"beta\"]}");
    is_str(text(p), "alpha\nbeta", "openai embeddings: input array");
    tp_prompt_destroy(p);
    p = parse(TP_OPENAI, "{\"model\":\"text-embedding-3-small\",\"input\":[[1,2,3]]}");
    is_str(text(p), "", "openai embeddings: token arrays carry no text");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI,
        "{\"model\":\"gpt-4.1\",\"instructions\":\"Sys\",\"max_output_tokens\":1000,\"input\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"Q1\"}]},"
        "{\"type\":\"function_call\",\"call_id\":\"a\",\"name\":\"f\",\"arguments\":\"{}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"a\",\"output\":\"42\"}]}");
    is_str(text(p), "Sys\nQ1\n{}\n42", "openai responses: instructions, input items, call arguments, outputs");
    is_int(p ? p->max_output_tokens : 0, 1000, "openai responses: max_output_tokens");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"gpt-4o\",\"input\":\"plain\"}");
    is_str(text(p), "plain", "openai responses: input string");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                         "\"metadata\":{\"content\":\"not text\",\"messages\":\"no\"}}");
    is_str(text(p), "hi", "openai: same key names elsewhere are not text");
    ok(p && p->model == NULL && p->max_output_tokens == -1, "openai: no model, no token limit");
    tp_prompt_destroy(p);

    p = parse_url(TP_AZURE, "{\"messages\":[{\"role\":\"user\",\"content\":\"az\"}],\"max_tokens\":7}", "my-gpt4-deployment");
    is_str(text(p), "az", "azure: chat format");
    is_str(p ? p->model : NULL, "my-gpt4-deployment", "azure: the deployment when the body has no model");
    tp_prompt_destroy(p);
    p = parse_url(TP_AZURE, "{\"model\":\"gpt-4o\",\"messages\":[]}", "dep");
    is_str(p ? p->model : NULL, "dep", "azure: the deployment wins (Azure ignores the body's model)");
    tp_prompt_destroy(p);
    p = parse_url(TP_AZURE, "{\"model\":\"gpt-4o\",\"messages\":[]}", NULL);
    is_str(p ? p->model : NULL, "gpt-4o", "azure: the body's model without a deployment");
    tp_prompt_destroy(p);
}

static void
test_anthropic(void)
{
    tp_prompt_t *p;

    p = parse(TP_ANTHROPIC,
        "{\"model\":\"claude-3-5-sonnet-20241022\",\"max_tokens\":1024,\"system\":\"You are terse.\","
        "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Hel\"},{\"type\":\"text\",\"text\":\"lo\"},"
        "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"search\",\"input\":{\"query\":\"weather\",\"opts\":{\"city\":\"Oslo\",\"n\":3}}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":[{\"type\":\"text\",\"text\":\"rainy\"}]},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"t2\",\"content\":\"cold\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"AAAA\"}}]}]}");
    is_str(text(p), "You are terse.\nHi\nHello\nweather\nOslo\nrainy\ncold",
           "anthropic: system, string and block contents, tool_use input, tool_result (nested), no image data");
    is_str(p ? p->model : NULL, "claude-3-5-sonnet-20241022", "anthropic: model");
    is_int(p ? p->max_output_tokens : 0, 1024, "anthropic: max_tokens");
    tp_prompt_destroy(p);

    p = parse(TP_ANTHROPIC,
        "{\"model\":\"claude-3-haiku\",\"max_tokens\":10,\"system\":[{\"type\":\"text\",\"text\":\"S1\"},"
        "{\"type\":\"text\",\"text\":\"S2\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"U\"}]}");
    is_str(text(p), "S1S2\nU", "anthropic: system blocks joined");
    tp_prompt_destroy(p);
}

static void
test_google(void)
{
    tp_prompt_t *p;

    p = parse_url(TP_GOOGLE,
        "{\"systemInstruction\":{\"parts\":[{\"text\":\"Sys\"}]},"
        "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Part one \"},{\"text\":\"part two\"},"
        "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"AAAA\"}}]},"
        "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"city\":\"Rome\"}}}]},"
        "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"f\",\"response\":{\"temp\":\"hot\"}}}]}],"
        "\"generationConfig\":{\"temperature\":1,\"maxOutputTokens\":2048}}",
        "models/gemini-1.5-pro");
    is_str(text(p), "Sys\nPart one part two\nRome\nhot",
           "google: systemInstruction, parts joined, functionCall args, functionResponse");
    is_str(p ? p->model : NULL, "gemini-1.5-pro", "google: model from the URL, models/ dropped");
    is_int(p ? p->max_output_tokens : 0, 2048, "google: generationConfig.maxOutputTokens");
    tp_prompt_destroy(p);

    p = parse_url(TP_GOOGLE, "{\"model\":\"x\",\"system_instruction\":{\"parts\":[{\"text\":\"a\"}]},"
                             "\"contents\":[{\"parts\":[{\"text\":\"b\"}]}],"
                             "\"generation_config\":{\"max_output_tokens\":5}}", "gemini-2.0-flash");
    is_str(text(p), "a\nb", "google: snake_case field names");
    is_str(p ? p->model : NULL, "gemini-2.0-flash", "google: the URL's model wins");
    is_int(p ? p->max_output_tokens : 0, 5, "google: generation_config.max_output_tokens");
    tp_prompt_destroy(p);

    p = parse_url(TP_GOOGLE, "{\"requests\":[{\"model\":\"models/e\",\"content\":{\"parts\":[{\"text\":\"e1\"}]}},"
                             "{\"content\":{\"parts\":[{\"text\":\"e2\"}]}}]}", "text-embedding-004");
    is_str(text(p), "e1\ne2", "google: batchEmbedContents");
    tp_prompt_destroy(p);

    p = parse(TP_GOOGLE, "{\"messages\":[{\"role\":\"user\",\"content\":\"not gemini\"}]}");
    is_str(text(p), "", "google: another provider's shape is not read");
    tp_prompt_destroy(p);
}

static void
test_decoding(void)
{
    tp_prompt_t *p;

    p = parse(TP_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":"
                         "\"q\\\"uote\\\\ slash\\/ nl\\n tab\\t caf\\u00e9 \\u4e2d \\ud83d\\ude00 end\"}]}");
    is_str(text(p), "q\"uote\\ slash/ nl\n tab\t caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 end",
           "escapes decoded, surrogate pair to one 4-byte character");
    is_int(p ? (long long) p->chars : 0, 36, "characters counted, not bytes");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"messages\":[{\"content\":\"a\\ud800b\\udc00c\\ud800\\u0041\"}]}");
    is_str(text(p), "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd" "A", "lone surrogates become U+FFFD");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"messages\":[{\"content\":\"raw \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]}");
    is_str(text(p), "raw \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "raw UTF-8 kept");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"mo\\u0064el\":\"esc-model\",\"messages\":[{\"cont\\u0065nt\":\"k\"}]}");
    is_str(p ? p->model : NULL, "esc-model", "escaped keys are decoded before matching");
    is_str(text(p), "k", "escaped content key");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, " \n\t{ \"messages\" : [ { \"content\" : \"ws\" } ] , \"max_tokens\" : 1e3 } \r\n");
    is_str(text(p), "ws", "whitespace everywhere");
    is_int(p ? p->max_output_tokens : 0, 1000, "a token limit written as 1e3");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"max_tokens\":100,\"max_completion_tokens\":300}");
    is_int(p ? p->max_output_tokens : 0, 300, "the largest token limit counts");
    tp_prompt_destroy(p);
    p = parse(TP_OPENAI, "{\"max_tokens\":123456789012345678901234567890}");
    ok(p && p->max_output_tokens == INT64_MAX, "a huge token limit saturates");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"messages\":[{\"content\":\"\"},{\"content\":\"x\"},{\"content\":\"\"}]}");
    is_str(text(p), "x", "empty strings add nothing");
    tp_prompt_destroy(p);
}

static void
test_malformed(void)
{
    char deep[700];
    int  i;

    ok(malformed(TP_OPENAI, ""), "empty body");
    ok(malformed(TP_OPENAI, "{\"messages\":[{\"content\":\"x\"}]"), "truncated");
    ok(malformed(TP_OPENAI, "{\"a\":1} x"), "trailing data");
    ok(malformed(TP_OPENAI, "{\"a\":1,}"), "trailing comma");
    ok(malformed(TP_OPENAI, "{'a':1}"), "single quotes");
    ok(malformed(TP_OPENAI, "{\"a\":01}"), "leading zero");
    ok(malformed(TP_OPENAI, "{\"a\":-}"), "bare minus");
    ok(malformed(TP_OPENAI, "{\"a\":1.}"), "bad fraction");
    ok(malformed(TP_OPENAI, "{\"a\":tru}"), "bad literal");
    ok(malformed(TP_OPENAI, "{\"a\":\"x\\q\"}"), "bad escape");
    ok(malformed(TP_OPENAI, "{\"a\":\"x\\u12g4\"}"), "bad \\u escape");
    ok(malformed(TP_OPENAI, "{\"a\":\"x\ny\"}"), "raw control character in a string");
    ok(malformed(TP_OPENAI, "{\"a\":\"\xc3\x28\"}"), "invalid UTF-8");
    ok(malformed(TP_OPENAI, "{\"a\":\"\xed\xa0\x80\"}"), "UTF-8 encoded surrogate");
    ok(malformed(TP_OPENAI, "{\"a\":\"\xc0\xaf\"}"), "overlong UTF-8");
    ok(malformed(TP_OPENAI, "{\"a\":\"\xf4\x90\x80\x80\"}"), "beyond U+10FFFF");
    ok(malformed(TP_OPENAI, "[{\"content\":\"x\"}]"), "top-level array");
    ok(strstr(err, "JSON object") != NULL, "  says the body must be an object");
    ok(malformed(TP_OPENAI, "\"text\""), "top-level string");
    ok(malformed(TP_OPENAI, "{\"model\":\"a\",\"model\":\"b\"}"), "duplicate model");
    ok(malformed(TP_OPENAI, "{\"a\" 1}"), "missing colon");
    ok(malformed(TP_OPENAI, "{\"a\":1 \"b\":2}"), "missing comma");
    ok(malformed(TP_OPENAI, "{\"a\":[1,2}"), "mismatched bracket");

    deep[0] = '{';
    memcpy(deep + 1, "\"a\":", 4);
    for (i = 5; i < 5 + 600; i++) deep[i] = '[';
    deep[i] = '\0';
    ok(malformed(TP_OPENAI, deep), "600 levels of nesting refused, no recursion");
    ok(strstr(err, "deep") != NULL, "  says why");

    {
        tp_prompt_t *p;
        int rc = tp_prompt_parse(&A, TP_OPENAI, (const unsigned char *) "{}",
                                 TP_PROMPT_MAX_BODY + 1, NULL, 0, &p, err, sizeof(err));
        is_int(rc, TP_PROMPT_ETOOBIG, "a body over the bound: ETOOBIG (413)");
        rc = tp_prompt_parse(&A, 9, (const unsigned char *) "{}", 2, NULL, 0, &p, err, sizeof(err));
        is_int(rc, TP_PROMPT_EMALFORMED, "unknown provider refused");
    }
}

static void
test_many_segments(void)
{
    static char  body[200000], want[200000];
    char        *o = body, *w = want;
    tp_prompt_t *p;
    int          i;

    /* lots of segments and a big non-text field: the text buffer grows
     * past its first 4 KB, offsets stay right */
    o += sprintf(o, "{\"model\":\"m\",\"messages\":[");
    for (i = 0; i < 3000; i++) {
        o += sprintf(o, "%s{\"role\":\"user\",\"content\":\"m%d \\u00e9\"}", i ? "," : "", i);
        w += sprintf(w, "%sm%d \xc3\xa9", i ? "\n" : "", i);
    }
    o += sprintf(o, "],\"image\":\"");
    memset(o, 'A', 50000);
    o += 50000;
    strcpy(o, "\"}");
    p = parse(TP_OPENAI, body);
    is_str(text(p), want, "3000 messages: the text buffer grows, every segment in place");
    ok(p && p->nsegs == 3000 && memcmp(p->text + p->segs[2999].text_off, "m2999 \xc3\xa9", 8) == 0,
       "3000 messages: segment offsets");
    tp_prompt_destroy(p);
}

static void
test_redact(void)
{
    tp_prompt_t *p;
    tp_span_t    s[4];
    const char  *o;
    int          valid;
    const char  *body;
    body = "{ \"model\" : \"gpt-4o\",\n  \"messages\": [ {\"role\":\"user\", \"content\": \"mail john@example.com now\"} ],\n  \"n\": 1.50 }";
    p = parse(TP_OPENAI, body);
    s[0] = span_of(p, "john@example.com", "email");
    o = redact(p, s, 1, &valid);
    is_str(o, "{ \"model\" : \"gpt-4o\",\n  \"messages\": [ {\"role\":\"user\", \"content\": \"mail [REDACTED:email] now\"} ],\n  \"n\": 1.50 }",
           "redaction: the span replaced, every other byte kept (whitespace, 1.50)");
    ok(valid, "redaction: valid JSON");
    ok(tp_prompt_redact(p, s, 0, (const unsigned char **) &o, &(size_t){0}) == 0
       && o == body, "redaction: nothing to do returns the body itself");
    tp_prompt_destroy(p);

    /* a secret split over two content parts: both pieces redacted */
    p = parse(TP_OPENAI,
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"key sk-proj-AAAA\"},"
        "{\"type\":\"text\",\"text\":\"BBBBCCCCDDDDEEEE1234 end\"}]}]}");
    is_str(text(p), "key sk-proj-AAAABBBBCCCCDDDDEEEE1234 end", "split secret: joined text");
    s[0] = span_of(p, "sk-proj-AAAABBBBCCCCDDDDEEEE1234", "secrets");
    o = redact(p, s, 1, &valid);
    ok(valid, "split secret: valid JSON");
    ok(strstr(o, "\"text\":\"key [REDACTED:secrets]\"") != NULL
       && strstr(o, "\"text\":\"[REDACTED:secrets] end\"") != NULL,
       "split secret: each part's piece redacted");
    ok(strstr(o, "AAAA") == NULL && strstr(o, "1234") == NULL, "split secret: no piece left");
    tp_prompt_destroy(p);

    /* escaped strings are re-escaped, other strings untouched */
    p = parse(TP_OPENAI,
        "{\"messages\":[{\"content\":\"say \\\"hi\\\"\\nto caf\\u00e9 \\/ bob@x.io\\t!\"},"
        "{\"content\":\"keep \\u00e9\\/ as is\"}]}");
    s[0] = span_of(p, "bob@x.io", "email");
    o = redact(p, s, 1, &valid);
    ok(valid, "escaped: valid JSON");
    ok(strstr(o, "\"say \\\"hi\\\"\\nto caf\xc3\xa9 / [REDACTED:email]\\t!\"") != NULL,
       "escaped: the string holding the span re-escaped minimally");
    ok(strstr(o, "\"keep \\u00e9\\/ as is\"") != NULL, "escaped: other strings byte for byte");
    tp_prompt_destroy(p);

    /* overlapping and adjacent spans, a span at the very start and end */
    p = parse(TP_ANTHROPIC, "{\"system\":\"abcdefghij\",\"messages\":[{\"role\":\"user\",\"content\":\"0123456789\"}]}");
    s[0] = (tp_span_t) { 0, 3, "regex" };
    s[1] = (tp_span_t) { 2, 5, "keyword" };
    s[2] = (tp_span_t) { 5, 6, "email" };
    s[3] = (tp_span_t) { 9, 13, "ssn" };      /* "j\n01": crosses the separator */
    o = redact(p, s, 4, &valid);
    is_str(o, "{\"system\":\"[REDACTED:regex][REDACTED:email]ghi[REDACTED:ssn]\",\"messages\":[{\"role\":\"user\",\"content\":\"[REDACTED:ssn]23456789\"}]}",
           "spans: overlaps merged (first tag), adjacent kept apart, a span over two messages");
    ok(valid, "spans: valid JSON");
    tp_prompt_destroy(p);

    /* a whole string, control characters and quotes inside the text */
    p = parse(TP_GOOGLE, "{\"contents\":[{\"parts\":[{\"text\":\"\\u0001\\\"x\\\\\"},{\"text\":\"secret\"}]}]}");
    s[0] = span_of(p, "secret", "regex");
    o = redact(p, s, 1, &valid);
    ok(valid && strstr(o, "{\"text\":\"[REDACTED:regex]\"}") != NULL, "a whole part redacted");
    ok(strstr(o, "\\u0001\\\"x\\\\") != NULL, "the other part keeps its escapes");
    tp_prompt_destroy(p);

    /* unicode around the span */
    p = parse(TP_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud83d\\ude00 4111 1111 1111 1111 \xe4\xb8\xad\"}]}");
    s[0] = span_of(p, "4111 1111 1111 1111", "credit_card");
    o = redact(p, s, 1, &valid);
    ok(valid && strstr(o, "\"\xf0\x9f\x98\x80 [REDACTED:credit_card] \xe4\xb8\xad\"") != NULL,
       "unicode around a span: decoded characters written as UTF-8");
    is_str(string_at(o, (const char *[]) { "model", NULL }), "", "  (no model field appears)");
    tp_prompt_destroy(p);

    /* tool-call arguments: the inner JSON stays valid too */
    p = parse(TP_OPENAI, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
                         "\"arguments\":\"{\\\"email\\\":\\\"a@b.co\\\"}\"}}]}]}");
    s[0] = span_of(p, "a@b.co", "email");
    o = redact(p, s, 1, &valid);
    ok(valid && strstr(o, "\"arguments\":\"{\\\"email\\\":\\\"[REDACTED:email]\\\"}\"") != NULL,
       "tool-call arguments redacted inside their JSON");
    tp_prompt_destroy(p);
}

static void
test_fold(void)
{
    const char    *in = "ABC xyz \xc3\x80\xc3\x89\xc3\x97 \xc4\x80\xc5\x81\xc5\xb8 \xce\x91\xce\xa3\xcf\x82 \xd0\x90\xd0\xaf\xd0\x81 \xe4\xb8\xad";
    const char    *want = "abc xyz \xc3\xa0\xc3\xa9\xc3\x97 \xc4\x81\xc5\x82\xc3\xbf \xce\xb1\xcf\x83\xcf\x83 \xd0\xb0\xd1\x8f\xd1\x91 \xe4\xb8\xad";
    unsigned char  out[128];
    size_t         n = strlen(in);

    tp_utf8_fold_buf((const unsigned char *) in, n, out);
    out[n] = '\0';
    is_str((char *) out, want, "case folding keeps lengths: ASCII, Latin-1 (not x), Latin Ext-A, Greek, Cyrillic");
    ok(tp_utf8_is_word('a') && tp_utf8_is_word(0xe9) && tp_utf8_is_word(0x436)
       && !tp_utf8_is_word(' ') && !tp_utf8_is_word(0x2014) && !tp_utf8_is_word(0x4e2d)
       && !tp_utf8_is_word(0x1f600), "word characters: letters of spaced scripts, not punctuation, CJK, emoji");
}

static void
test_nomem(void)
{
    const char  *body = "{\"model\":\"m\",\"messages\":[{\"content\":\"a\"},{\"content\":\"b\"},"
                        "{\"content\":\"c\"},{\"content\":\"d\"},{\"content\":\"e\"},{\"content\":\"f\"},"
                        "{\"content\":\"g\"},{\"content\":\"h\"},{\"content\":\"i\"},{\"content\":\"j\"},"
                        "{\"content\":\"k\"},{\"content\":\"l\"},{\"content\":\"m\"},{\"content\":\"n\"},"
                        "{\"content\":\"o\"},{\"content\":\"p\"},{\"content\":\"q\"},{\"content\":\"r\"}]}";
    tp_prompt_t *p;
    int          i, rc, all = 1, okays = 0;

    for (i = 0; i < 12; i++) {
        left = i;
        rc = tp_prompt_parse(&F, TP_OPENAI, (const unsigned char *) body, strlen(body),
                             NULL, 0, &p, err, sizeof(err));
        if (rc == TP_PROMPT_OK) {
            okays++;
            tp_prompt_destroy(p);
        } else if (rc != TP_PROMPT_ENOMEM || p != NULL) {
            all = 0;
        }
    }
    ok(all && okays > 0, "allocation failures: ENOMEM, nothing leaked (ASan), success once memory suffices");
}

int
main(void)
{
    test_openai();
    test_anthropic();
    test_google();
    test_decoding();
    test_malformed();
    test_many_segments();
    test_redact();
    test_fold();
    test_nomem();

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
