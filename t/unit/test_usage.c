/* test_usage.c - usage extraction for each provider, plain and streamed,
 * split at every byte boundary, gzip, and garbage */
#include "../../sidecar/tests/tap.h"
#include "trueport_usage.h"

#include <stdlib.h>
#include <zlib.h>

int tap_n, tap_failed;

static void *m_alloc(void *c, size_t n) { (void) c; return malloc(n); }
static void *m_realloc(void *c, void *p, size_t n) { (void) c; return realloc(p, n); }
static void  m_free(void *c, void *p) { (void) c; free(p); }
static const tp_alloc_t A = { m_alloc, m_realloc, m_free, NULL };

/* feeds body in pieces of `step` bytes (0 = all at once) */
static tp_usage_result_t
run(int provider, int stream, int gzip, const char *body, size_t len,
    size_t step)
{
    tp_usage_result_t r;
    tp_usage_t       *u = tp_usage_create(&A, provider, stream, gzip);
    size_t            i, n;

    for (i = 0; i < len; i += n) {
        n = step ? step : len;
        if (i + n > len) n = len - i;
        tp_usage_feed(u, (const unsigned char *) body + i, n);
    }
    tp_usage_result(u, &r);
    tp_usage_destroy(u);
    return r;
}

#define RUNS(p, st, lit) run(p, st, 0, lit, strlen(lit), 0)

static int
same(tp_usage_result_t a, tp_usage_result_t b)
{
    return a.input_tokens == b.input_tokens && a.output_tokens == b.output_tokens
        && a.cached_tokens == b.cached_tokens
        && a.reasoning_tokens == b.reasoning_tokens
        && a.total_tokens == b.total_tokens && strcmp(a.model, b.model) == 0;
}

static void
every_split(const char *name, int provider, int stream, const char *body)
{
    tp_usage_result_t whole = run(provider, stream, 0, body, strlen(body), 0);
    size_t            step;
    int               all = 1;

    for (step = 1; step < 40; step++) {
        if (!same(whole, run(provider, stream, 0, body, strlen(body), step))) {
            all = 0;
            printf("#   differs when split every %zu bytes\n", step);
            break;
        }
    }
    ok(all, "%s: same result however the body is split", name);
}

static const char *openai_json =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-2024-08-06\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi \\\"there\\\"\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
    "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":4},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":3}}}";

static const char *openai_sse =
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"}}]}\n\n"
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\"}}],\"usage\":null}\n\n"
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n"
    "data: [DONE]\n\n";

static const char *anthropic_json =
    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5-sonnet-20241022\","
    "\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}],\"stop_reason\":\"end_turn\","
    "\"usage\":{\"input_tokens\":12,\"output_tokens\":6,\"cache_creation_input_tokens\":2,"
    "\"cache_read_input_tokens\":5}}";

static const char *anthropic_sse =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"model\":\"claude-3-5-haiku-20241022\",\"content\":[],\"usage\":{\"input_tokens\":25,"
    "\"output_tokens\":1,\"cache_read_input_tokens\":10}}}\r\n\r\n"
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n"
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\r\n\r\n"
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n"
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

static const char *gemini_sse =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}],\"role\":\"model\"}}],"
    "\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":1,\"totalTokenCount\":9},"
    "\"modelVersion\":\"gemini-2.0-flash\"}\n\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"BC\"}],\"role\":\"model\"},"
    "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":8,"
    "\"candidatesTokenCount\":5,\"totalTokenCount\":16,\"thoughtsTokenCount\":3,"
    "\"cachedContentTokenCount\":2},\"modelVersion\":\"gemini-2.0-flash\"}\n\n";

static const char *gemini_array =
    "[{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1,"
    "\"totalTokenCount\":4}},{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":3,"
    "\"candidatesTokenCount\":4,\"totalTokenCount\":7},\"modelVersion\":\"gemini-1.5-pro\"}]";

static size_t
gzip_buf(const char *in, unsigned char *out, size_t cap)
{
    z_stream z;

    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (unsigned char *) in;
    z.avail_in = (uInt) strlen(in);
    z.next_out = out;
    z.avail_out = (uInt) cap;
    deflate(&z, Z_FINISH);
    deflateEnd(&z);
    return cap - z.avail_out;
}

int
main(void)
{
    tp_usage_result_t r;
    unsigned char     gz[4096];
    size_t            gzlen;
    char              deep[4096];
    int               i;

    r = run(TP_OPENAI, 0, 0, openai_json, strlen(openai_json), 0);
    ok(r.input_tokens == 19 && r.output_tokens == 10 && r.total_tokens == 29
       && r.cached_tokens == 4 && r.reasoning_tokens == 3,
       "openai json: tokens incl. cached and reasoning details");
    is_str(r.model, "gpt-4o-2024-08-06", "openai json: model from the response");
    every_split("openai json", TP_OPENAI, 0, openai_json);

    r = run(TP_OPENAI, 1, 0, openai_sse, strlen(openai_sse), 0);
    ok(r.input_tokens == 7 && r.output_tokens == 2 && r.total_tokens == 9,
       "openai sse: the final usage chunk; [DONE] ignored");
    is_str(r.model, "gpt-4o-mini", "openai sse: model");
    is_int(r.cached_tokens, -1, "openai sse: absent details stay unknown");
    every_split("openai sse", TP_OPENAI, 1, openai_sse);

    r = run(TP_AZURE, 1, 0, openai_sse, strlen(openai_sse), 0);
    ok(r.input_tokens == 7 && r.output_tokens == 2, "azure: the OpenAI shape");

    r = run(TP_ANTHROPIC, 0, 0, anthropic_json, strlen(anthropic_json), 0);
    ok(r.input_tokens == 19 && r.output_tokens == 6 && r.cached_tokens == 5
       && r.total_tokens == 25,
       "anthropic json: cache reads/writes counted into input");
    is_str(r.model, "claude-3-5-sonnet-20241022", "anthropic json: model");

    r = run(TP_ANTHROPIC, 1, 0, anthropic_sse, strlen(anthropic_sse), 0);
    ok(r.input_tokens == 35 && r.output_tokens == 15 && r.cached_tokens == 10,
       "anthropic sse: message_start input + the last message_delta output");
    is_str(r.model, "claude-3-5-haiku-20241022", "anthropic sse: model");
    every_split("anthropic sse (CRLF)", TP_ANTHROPIC, 1, anthropic_sse);

    r = run(TP_GOOGLE, 1, 0, gemini_sse, strlen(gemini_sse), 0);
    ok(r.input_tokens == 8 && r.output_tokens == 8 && r.reasoning_tokens == 3
       && r.total_tokens == 16 && r.cached_tokens == 2,
       "gemini sse: the last running total, not a sum; thoughts as output");
    is_str(r.model, "gemini-2.0-flash", "gemini sse: modelVersion");
    every_split("gemini sse", TP_GOOGLE, 1, gemini_sse);

    r = run(TP_GOOGLE, 0, 0, gemini_array, strlen(gemini_array), 0);
    ok(r.input_tokens == 3 && r.output_tokens == 4 && r.total_tokens == 7,
       "gemini json array stream: the last chunk");

    gzlen = gzip_buf(openai_json, gz, sizeof(gz));
    r = run(TP_OPENAI, 0, 1, (const char *) gz, gzlen, 0);
    ok(r.input_tokens == 19 && r.output_tokens == 10, "gzip: metered from an inflated copy");
    r = run(TP_OPENAI, 0, 1, (const char *) gz, gzlen, 3);
    ok(r.input_tokens == 19 && r.output_tokens == 10, "gzip: split in 3-byte pieces");
    r = run(TP_OPENAI, 0, 1, openai_json, strlen(openai_json), 0);
    ok(r.input_tokens == -1, "gzip flag on plain bytes: no usage, no crash");

    r = RUNS(TP_OPENAI, 0, "<html>502 Bad Gateway</html>");
    ok(r.input_tokens == -1 && r.model[0] == '\0', "html error page: nothing");
    r = RUNS(TP_OPENAI, 0, "{\"usage\":{\"prompt_tokens\":99999999999999999999}}");
    is_int(r.input_tokens, -1, "absurd number ignored, not trusted");
    r = RUNS(TP_OPENAI, 0, "{\"usage\":{\"prompt_tokens\":-5}}");
    is_int(r.input_tokens, -1, "negative number ignored");
    r = RUNS(TP_OPENAI, 0, "{\"error\":{\"message\":\"bad\",\"code\":\"x\"}}");
    ok(r.input_tokens == -1 && r.total_tokens == -1, "provider error body: no tokens");

    for (i = 0; i < 2000; i++) deep[i] = '[';
    r = run(TP_OPENAI, 0, 0, deep, 2000, 0);
    ok(r.input_tokens == -1, "2000 levels of nesting: bounded, no crash");

    r = RUNS(TP_OPENAI, 0, "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}},"
                             "\"usage\":{\"prompt_tokens\":5}}");
    is_int(r.input_tokens, 5, "a too-deep subtree does not disturb later paths");

    r = RUNS(TP_OPENAI, 1, "data: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}");
    ok(r.input_tokens == 4 && r.total_tokens == 5, "sse: last event without a blank line still counts");

    r = RUNS(TP_OPENAI, 1, "data: {\"usage\":\ndata: {\"prompt_tokens\":6}}\n\n");
    is_int(r.input_tokens, 6, "sse: multi-line data joined with a newline");

    r = RUNS(TP_OPENAI, 1, ": keep-alive comment\n\nevent: x\ndata:{\"usage\":{\"prompt_tokens\":2}}\n\n");
    is_int(r.input_tokens, 2, "sse: comments and data: without a space");

    /* the tokenizer (trueport_usage.c is its own JSON reader) */
    r = RUNS(TP_OPENAI, 0, "{\"\\u0075sage\":{\"prompt_tokens\":8},\"mo\\u0064el\":\"g\\u00e9-\\\"q\\\"\"}");
    ok(r.input_tokens == 8 && strcmp(r.model, "g\xc3\xa9-\"q\"") == 0,
       "escaped keys and model decoded (\\u, \\\")");
    r = RUNS(TP_OPENAI, 0, "{\"choices\":[{\"text\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":1}\"}],"
                           "\"usage\" : { \"prompt_tokens\" : 3 , \"x\" : [ true , false , null , -1.5e3 ] } }");
    is_int(r.input_tokens, 3, "a lookalike inside a string is text; spaces, literals, numbers");
    r = RUNS(TP_OPENAI, 0, "{\"usage\":{\"prompt_tokens\":7}} trailing");
    is_int(r.input_tokens, 7, "bytes after the document are not read");
    r = RUNS(TP_OPENAI, 0, "{\"usage\":{\"prompt_tokens\":7,}}");
    is_int(r.input_tokens, 7, "a value seen before a syntax error stays");
    r = RUNS(TP_OPENAI, 0, "{\"usage\" {\"prompt_tokens\":7}}");
    is_int(r.input_tokens, -1, "no colon: not JSON, nothing");
    r = RUNS(TP_OPENAI, 0, "{\"usage\":{\"prompt_tokens\":7]}");
    is_int(r.input_tokens, 7, "a mismatched bracket ends the document");
    r = RUNS(TP_OPENAI, 0, "{\"model\":\"bad \\q escape\"}");
    is_str(r.model, "", "an invalid escape fails the document");
    r = RUNS(TP_OPENAI, 0, "{\"usage\":{\"prompt_tokens\":12");
    is_int(r.input_tokens, 12, "a number at the very end of a cut body counts");
    r = RUNS(TP_OPENAI, 0, "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1,"
                           "\"usage\":{\"prompt_tokens\":2}}");
    is_int(r.input_tokens, 2, "a key longer than the path buffer is skipped");
    every_split("escapes and literals", TP_OPENAI, 0,
                "{\"\\u0075sage\":{\"prompt_tokens\":8,\"x\":[true,null,-1.5e3]},\"model\":\"a\\u00e9\\\"b\"}");

    r = RUNS(TP_OPENAI, 1, "data: {\"model\":\"m1\",\"usage\":null,\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\r\n\r\n"
                           "data: {\"model\":\"m1\",\"usage\":null,\"choices\":[]}\r\n\r\n"
                           "data: {\"model\":\"m1\",\"choices\":[],\"usage\" :\t{\"prompt_tokens\":4,\"completion_tokens\":2}}\r\n\r\n"
                           "data: [DONE]\r\n\r\n");
    ok(r.input_tokens == 4 && r.output_tokens == 2 && strcmp(r.model, "m1") == 0,
       "sse: deltas skipped, a spaced usage object and CRLF lines still read");
    every_split("sse with skipped deltas", TP_OPENAI, 1,
                "data: {\"model\":\"m1\",\"usage\":null}\n\ndata: {\"usage\":null,\"x\":1}\n\n"
                "data: {\"usage\": {\"prompt_tokens\":4}}\n\ndata: {\"usage\":null}\n\n");

    r = run(TP_GOOGLE, 0, 0, "[{\"x\":1},{\"usageMetadata\":{\"promptTokenCount\":5}}]", 51, 0);
    is_int(r.input_tokens, 5, "skipping: an element after a scalar member is still read");
    r = RUNS(TP_OPENAI, 0, "{\"choices\":[{\"usage\":{\"prompt_tokens\":99}},\"}]{[\\\"\"],"
                           "\"usage\":{\"prompt_tokens\":6,\"prompt_tokens_details\":{\"x\":[1,{\"y\":2}],\"cached_tokens\":2}}}");
    ok(r.input_tokens == 6 && r.cached_tokens == 2,
       "skipping: subtrees without our paths (brackets in strings too) are passed over");
    every_split("skipped subtrees", TP_OPENAI, 0,
                "{\"choices\":[{\"a\":\"}\\\"]\"}],\"usage\":{\"x\":{\"y\":[]},\"prompt_tokens\":6},\"model\":\"m\"}");

    ok(tp_provider_parse("google", 6) == TP_GOOGLE, "provider names parse");
    ok(tp_provider_parse("googl", 5) == -1, "unknown provider name");

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
