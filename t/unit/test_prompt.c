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
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\",\"detail\":\"low\"}},"
        "{\"type\":\"text\",\"text\":\"def\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"lookup\",\"arguments\":\"{\\\"q\\\":\\\"x@y.com\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"result\"}]}");
    is_str(text(p), "sk-abcdef\nlookup\n{\"q\":\"x@y.com\"}\nresult",
           "openai: content parts joined, data: image skipped, function name, tool-call arguments, tool result");
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
    is_str(text(p), "Sys\nQ1\nf\n{}\n42", "openai responses: instructions, input items, call name and arguments, outputs (call ids not)");
    is_int(p ? p->max_output_tokens : 0, 1000, "openai responses: max_output_tokens");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"gpt-4o\",\"input\":\"plain\"}");
    is_str(text(p), "plain", "openai responses: input string");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                         "\"metadata\":{\"content\":\"not text\",\"messages\":\"no\"}}");
    is_str(text(p), "hi\nnot text\nno", "openai: metadata values are read too (a deny list, not known paths)");
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
    is_str(text(p), "You are terse.\nHi\nHello\nsearch\nquery\nweather\nopts\ncity\nOslo\nn\nrainy\ncold",
           "anthropic: system, string and block contents, tool name, tool_use input keys and values, tool_result (nested), no base64 image data");
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
    is_str(text(p), "Sys\nPart one part two\nf\ncity\nRome\nf\ntemp\nhot",
           "google: systemInstruction, parts joined, inlineData skipped, functionCall name and args, functionResponse");
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

    p = parse_url(TP_GOOGLE, "{\"requests\":[{\"model\":\"models/text-embedding-004\",\"content\":{\"parts\":[{\"text\":\"e1\"}]}},"
                             "{\"content\":{\"parts\":[{\"text\":\"e2\"}]}}]}", "text-embedding-004");
    is_str(text(p), "e1\ne2", "google: batchEmbedContents");
    tp_prompt_destroy(p);

    p = parse(TP_GOOGLE, "{\"messages\":[{\"role\":\"user\",\"content\":\"not gemini\"}]}");
    is_str(text(p), "not gemini", "google: another provider's shape is read too");
    tp_prompt_destroy(p);
}

/* finding 4 (issue 13): the text the model reads, wherever it sits */
static void
test_openai_everywhere(void)
{
    tp_prompt_t *p;

    p = parse(TP_OPENAI,
        "{\"model\":\"gpt-4o\",\"user\":\"u-42\",\"messages\":[{\"role\":\"user\",\"content\":\"Q\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather of a city\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"The city\"}},"
        "\"required\":[\"city\"]}}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
        "\"functions\":[{\"name\":\"legacy\",\"description\":\"Old style\"}],"
        "\"prediction\":{\"type\":\"content\",\"content\":\"predicted text\"},"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"out\",\"schema\":{\"properties\":{\"answer\":{\"description\":\"Say it\"}}}}},"
        "\"stop\":[\"END\"],\"metadata\":{\"team\":\"blue\"},\"service_tier\":\"auto\",\"reasoning_effort\":\"low\"}");
    is_str(text(p), "Q\nget_weather\nWeather of a city\ntype\nobject\nproperties\ncity\ntype\nstring\ndescription\nThe city\n"
                    "required\ncity\nget_weather\nlegacy\nOld style\npredicted text\nout\nproperties\nanswer\ndescription\nSay it\nEND\nblue",
           "openai chat: tool and function descriptions, parameter schemas (keys too), prediction, response schema, stop, metadata; "
           "not user, type, tiers, efforts");
    is_str(p ? p->model : NULL, "gpt-4o", "openai chat: the model is not text");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI,
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\","
        "\"x_note\":\"hidden one\",\"nested\":{\"deep\":[\"hidden two\"]}},"
        "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"UklGRg==\",\"format\":\"wav\"}},"
        "{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,JVBERi0=\",\"filename\":\"r.pdf\"}}],"
        "\"name\":\"alice\",\"refusal\":\"no\",\"future_field\":\"hidden three\"}]}");
    is_str(text(p), "a\nhidden one\nhidden two\nr.pdf\nalice\nno\nhidden three",
           "openai: unknown keys under message content are read, audio and file data not");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"def f(\",\"suffix\":\"return x\"}");
    is_str(text(p), "def f(\nreturn x", "openai completions: prompt and suffix");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI,
        "{\"model\":\"gpt-4.1\",\"previous_response_id\":\"resp_123456\",\"instructions\":\"Sys\","
        "\"prompt\":{\"id\":\"pmpt_1\",\"version\":\"2\",\"variables\":{\"city\":\"Paris\"}},"
        "\"input\":[{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"look\"},"
        "{\"type\":\"input_image\",\"image_url\":\"https://img.example/cat.png\"},"
        "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,iVBORw0KGgo=\"},"
        "{\"type\":\"input_file\",\"file_id\":\"file-123456\"}]},"
        "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"thought\"}],\"encrypted_content\":\"gAAAAB\"},"
        "{\"type\":\"custom_tool_call_output\",\"call_id\":\"call_999999\",\"output\":\"tool said\"}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"description\":\"does f\",\"parameters\":{\"properties\":{}}}],"
        "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"fmt\",\"schema\":{\"title\":\"T\"}},\"verbosity\":\"low\"},"
        "\"include\":[\"reasoning.encrypted_content\"]}");
    is_str(text(p), "Sys\n2\nParis\nlook\nhttps://img.example/cat.png\nthought\ntool said\nf\ndoes f\nproperties\nfmt\ntitle\nT",
           "openai responses: instructions, prompt variables, items of every kind, tools, text.format schema; "
           "not ids, encrypted content, data: images, include");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI,
        "{\"assistant_id\":\"asst_1\",\"instructions\":\"Be kind\",\"additional_instructions\":\"More\","
        "\"additional_messages\":[{\"role\":\"user\",\"content\":\"M\"}],"
        "\"thread\":{\"messages\":[{\"role\":\"user\",\"content\":\"T\",\"attachments\":[{\"file_id\":\"f1\",\"tools\":[{\"type\":\"file_search\"}]}]}]},"
        "\"tool_outputs\":[{\"tool_call_id\":\"c1\",\"output\":\"O\"}]}");
    is_str(text(p), "Be kind\nMore\nM\nT\nO", "openai assistants and threads: instructions, messages, tool outputs");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"omni-moderation-latest\",\"input\":[{\"type\":\"text\",\"text\":\"bad\"},"
                         "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/i.png\"}}]}");
    is_str(text(p), "bad\nhttps://x/i.png", "openai moderations: text and (non-data:) image URLs");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"gpt-4o-mini-tts\",\"input\":\"Say hello\",\"voice\":\"alloy\",\"instructions\":\"cheerful\"}");
    is_str(text(p), "Say hello\ncheerful", "openai audio/speech: input and instructions, not the voice");
    tp_prompt_destroy(p);
}


static void
test_anthropic_everywhere(void)
{
    tp_prompt_t *p;

    p = parse(TP_ANTHROPIC,
        "{\"model\":\"claude-sonnet-4\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\",\"data\":\"Doc body\"},"
        "\"title\":\"Doc title\",\"context\":\"Doc context\",\"citations\":{\"enabled\":true}},"
        "{\"type\":\"document\",\"source\":{\"type\":\"content\",\"content\":[{\"type\":\"text\",\"text\":\"chunk\"}]}},"
        "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":\"application/pdf\",\"data\":\"JVBERi0xLjQ=\"}},"
        "{\"type\":\"document\",\"source\":{\"type\":\"url\",\"url\":\"https://example.com/a.pdf\"}},"
        "{\"type\":\"document\",\"source\":{\"type\":\"file\",\"file_id\":\"file_011\"}},"
        "{\"type\":\"text\",\"text\":\"question\"}]}]}");
    is_str(text(p), "Doc body\nDoc title\nDoc context\nchunk\nhttps://example.com/a.pdf\nquestion",
           "anthropic document blocks: text source data, title, context, content source; not base64 or file ids");
    tp_prompt_destroy(p);

    p = parse(TP_ANTHROPIC,
        "{\"model\":\"claude-sonnet-4\",\"max_tokens\":100,\"system\":\"S\","
        "\"tools\":[{\"name\":\"get_stock\",\"description\":\"Price of a ticker\",\"input_schema\":{\"type\":\"object\","
        "\"properties\":{\"ticker\":{\"type\":\"string\",\"description\":\"e.g. ACME\",\"enum\":[\"ACME\",\"INIT\"]}}},"
        "\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"1h\"}},"
        "{\"type\":\"web_search_20250305\",\"name\":\"web_search\",\"allowed_domains\":[\"example.com\"]}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_stock\"},\"metadata\":{\"user_id\":\"u-1\"},"
        "\"stop_sequences\":[\"STOP\"],\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
        "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"EqQBCgIYAhIM\"},"
        "{\"type\":\"redacted_thinking\",\"data\":\"EmwKAhgBEgy3va3pzix\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\",\"unknown_key\":{\"k\":\"hidden\"}}]}]}");
    is_str(text(p), "S\nget_stock\nPrice of a ticker\ntype\nobject\nproperties\nticker\ntype\nstring\ndescription\ne.g. ACME\nenum\nACME\nINIT\n"
                    "web_search\nexample.com\nget_stock\nSTOP\nhmm\nx\nhidden",
           "anthropic tools: names, descriptions, input_schema (keys too); stop sequences, thinking text, unknown keys; "
           "not signatures, redacted thinking, ttl, user ids");
    tp_prompt_destroy(p);

    p = parse(TP_ANTHROPIC,
        "{\"requests\":[{\"custom_id\":\"req-1\",\"params\":{\"model\":\"claude-3-5-haiku\",\"max_tokens\":50,"
        "\"system\":\"B1 system\",\"messages\":[{\"role\":\"user\",\"content\":\"B1 user\"}]}},"
        "{\"custom_id\":\"req-2\",\"params\":{\"model\":\"claude-3-5-haiku\",\"max_tokens\":900,"
        "\"tools\":[{\"name\":\"t\",\"description\":\"B2 tool\",\"input_schema\":{}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"B2 user\"}]}]}}]}");
    is_str(text(p), "B1 system\nB1 user\nt\nB2 tool\nB2 user", "anthropic batches: every request's params, not custom ids");
    is_str(p ? p->model : NULL, "claude-3-5-haiku", "anthropic batches: the requests' model");
    is_int(p ? p->max_output_tokens : 0, 900, "anthropic batches: the largest max_tokens");
    tp_prompt_destroy(p);

    ok(malformed(TP_ANTHROPIC,
        "{\"requests\":[{\"custom_id\":\"a\",\"params\":{\"model\":\"claude-allowed\",\"messages\":[]}},"
        "{\"custom_id\":\"b\",\"params\":{\"model\":\"claude-denied\",\"messages\":[]}}]}"),
       "anthropic batches: requests naming different models are refused (one model per check)");
    ok(strstr(err, "different models") != NULL, "  says why");

    ok(malformed(TP_ANTHROPIC,
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
        "{\"type\":\"text\",\"data\":\"secret\",\"type\":\"base64\"}}]}]}"),
       "a second \"type\" in an object is refused");
    ok(strstr(err, "duplicate \"type\"") != NULL, "  says why");
}


static void
test_google_everywhere(void)
{
    tp_prompt_t *p;

    p = parse_url(TP_GOOGLE,
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"},{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"print(1)\"}},"
        "{\"fileData\":{\"mimeType\":\"application/pdf\",\"fileUri\":\"https://generativelanguage.googleapis.com/v1beta/files/abc\"}},"
        "{\"text\":\"signed\",\"thoughtSignature\":\"CiQBVKhc7f\"}]}],"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"find_flight\",\"description\":\"Finds a flight\","
        "\"parameters\":{\"type\":\"OBJECT\",\"properties\":{\"dest\":{\"type\":\"STRING\",\"description\":\"Airport\"}}}}]},"
        "{\"googleSearch\":{}}],\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\",\"allowedFunctionNames\":[\"find_flight\"]}},"
        "\"safetySettings\":[{\"category\":\"HARM_CATEGORY_HARASSMENT\",\"threshold\":\"BLOCK_NONE\"}],"
        "\"cachedContent\":\"cachedContents/abc123\",\"labels\":{\"team\":\"red\"},"
        "\"generationConfig\":{\"stopSequences\":[\"QUIT\"],\"responseMimeType\":\"application/json\","
        "\"responseSchema\":{\"type\":\"OBJECT\",\"description\":\"Reply\"},\"maxOutputTokens\":77}}",
        "gemini-2.5-pro");
    is_str(text(p), "hi\nprint(1)\nhttps://generativelanguage.googleapis.com/v1beta/files/abc\nsigned\n"
                    "find_flight\nFinds a flight\ntype\nOBJECT\nproperties\ndest\ntype\nSTRING\ndescription\nAirport\n"
                    "find_flight\nred\nQUIT\ntype\nOBJECT\ndescription\nReply",
           "google: functionDeclarations (description, parameters with keys), code, file URIs, labels, stop sequences, "
           "response schema; not signatures, enums, the cache reference");
    is_int(p ? p->max_output_tokens : 0, 77, "google: maxOutputTokens still read");
    tp_prompt_destroy(p);

    p = parse(TP_GOOGLE,
        "{\"model\":\"models/gemini-1.5-flash-001\",\"displayName\":\"cache one\",\"ttl\":\"300s\","
        "\"system_instruction\":{\"parts\":[{\"text\":\"cached sys\"}]},"
        "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"cached doc\"},{\"inline_data\":{\"mime_type\":\"text/plain\",\"data\":\"aGVsbG8=\"}}]}],"
        "\"tools\":[{\"function_declarations\":[{\"name\":\"g\",\"description\":\"cached tool\"}]}]}");
    is_str(text(p), "cache one\ncached sys\ncached doc\ng\ncached tool",
           "google cachedContents: system instruction, contents, tools (base64 inline data is not decoded)");
    is_str(p ? p->model : NULL, "gemini-1.5-flash-001", "google cachedContents: the body's model, models/ dropped");
    tp_prompt_destroy(p);

    p = parse_url(TP_GOOGLE,
        "{\"batch\":{\"display_name\":\"nightly\",\"input_config\":{\"requests\":{\"requests\":["
        "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"batch one\"}]}],\"generationConfig\":{\"maxOutputTokens\":3000}},\"metadata\":{\"key\":\"r1\"}},"
        "{\"request\":{\"model\":\"models/gemini-2.0-flash\",\"contents\":[{\"parts\":[{\"text\":\"batch two\"}]}],"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"h\",\"description\":\"batch tool\"}]}]}}]}}}}",
        "models/gemini-2.0-flash");
    is_str(text(p), "nightly\nbatch one\nr1\nbatch two\nh\nbatch tool",
           "google batchGenerateContent: every inlined request, their tools");
    is_int(p ? p->max_output_tokens : 0, 3000, "google batchGenerateContent: a request's maxOutputTokens");
    is_str(p ? p->model : NULL, "gemini-2.0-flash", "google batchGenerateContent: the URL's model");
    tp_prompt_destroy(p);

    p = parse_url(TP_GOOGLE,
        "{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":[{\"request\":{\"model\":\"models/text-embedding-004\","
        "\"content\":{\"parts\":[{\"text\":\"embed me\"}]},\"taskType\":\"RETRIEVAL_DOCUMENT\",\"title\":\"T1\"}}]}}}}",
        "text-embedding-004");
    is_str(text(p), "embed me\nT1", "google asyncBatchEmbedContent: the requests' content and title, not the task type");
    tp_prompt_destroy(p);

    p = parse_url(TP_GOOGLE, "{\"generateContentRequest\":{\"model\":\"models/gemini-2.0-flash\","
                             "\"contents\":[{\"parts\":[{\"text\":\"count me\"}]}]}}", "gemini-2.0-flash");
    is_str(text(p), "count me", "google countTokens: generateContentRequest");
    tp_prompt_destroy(p);

    ok(malformed(TP_GOOGLE, "{\"requests\":[{\"model\":\"models/gemini-2.0-flash\",\"content\":{\"parts\":[{\"text\":\"a\"}]}},"
                            "{\"model\":\"models/denied-model\",\"content\":{\"parts\":[{\"text\":\"b\"}]}}]}"),
       "google batches: requests naming different models are refused");
    {
        tp_prompt_t *q;
        const char  *b = "{\"requests\":[{\"model\":\"models/other\",\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}";
        int          rc = tp_prompt_parse(&A, TP_GOOGLE, (const unsigned char *) b, strlen(b),
                                          "models/text-embedding-004", 25, &q, err, sizeof(err));

        is_int(rc, TP_PROMPT_EMALFORMED, "google batches: a request's model other than the URL's is refused");
    }
}


/* "data" whose object says base64 only after it: read again without it */
static void
test_data_before_type(void)
{
    tp_prompt_t *p;
    tp_span_t    s[1];
    const char  *o;
    int          valid;

    p = parse(TP_ANTHROPIC,
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
        "{\"data\":\"c2VjcmV0IGhlcmU=\",\"note\":\"after data\",\"media_type\":\"image/png\",\"type\":\"base64\"}},"
        "{\"type\":\"document\",\"source\":{\"data\":\"plain doc\",\"media_type\":\"text/plain\",\"type\":\"text\"}},"
        "{\"type\":\"text\",\"text\":\"mail a@b.io\"}]}]}");
    is_str(text(p), "after data\nplain doc\nmail a@b.io",
           "data before its type: base64 skipped (a second pass), text kept, later segments in order");
    ok(p && p->nsegs == 3 && p->chars == 30, "  segments and characters of the second pass only");
    if (p) {
        s[0] = span_of(p, "a@b.io", "email");
        o = redact(p, s, 1, &valid);
        ok(valid && strstr(o, "\"text\":\"mail [REDACTED:email]\"") != NULL
           && strstr(o, "\"data\":\"c2VjcmV0IGhlcmU=\"") != NULL,
           "  redaction after the second pass lands at the right offset");
    }
    tp_prompt_destroy(p);

    p = parse(TP_ANTHROPIC,
        "{\"system\":[{\"data\":\"AAAA\",\"inner\":{\"data\":\"inner text\",\"type\":\"text\"},\"type\":\"base64\"},"
        "{\"data\":\"BBBB\",\"type\":\"redacted_thinking\"}],\"messages\":[]}");
    is_str(text(p), "inner text", "nested objects decide their own data");
    tp_prompt_destroy(p);

    p = parse(TP_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
                            "{\"typ\\u0065\":\"base\\u0036\\u0034\",\"data\":\"QUFB\"}}]}]}");
    is_str(text(p), "", "an escaped type key and value are decoded");
    tp_prompt_destroy(p);

    p = parse(TP_GOOGLE, "{\"contents\":[{\"parts\":[{\"inlineData\":{\"data\":\"aGk=\",\"mimeType\":\"image/png\"}},"
                         "{\"text\":\"t\"}]}]}");
    is_str(text(p), "t", "gemini inlineData: data skipped whatever the key order");
    tp_prompt_destroy(p);
}


static void
test_keys(void)
{
    tp_prompt_t *p;
    char         body[1024], *o = body;
    int          i;

    p = parse(TP_OPENAI, "{\"\\u006d\\u0061\\u0078\\u005f\\u0063\\u006f\\u006d\\u0070\\u006c\\u0065\\u0074\\u0069\\u006f\\u006e"
                         "\\u005f\\u0074\\u006f\\u006b\\u0065\\u006e\\u0073\":9000,\"r\\u006fle\":\"user\"}");
    is_int(p ? p->max_output_tokens : 0, 9000, "a fully escaped max_completion_tokens is still a token limit");
    is_str(text(p), "", "an escaped denied key is still denied");
    tp_prompt_destroy(p);

    o += sprintf(o, "{\"");
    for (i = 0; i < 70; i++) {
        o += sprintf(o, "\\u0061");
    }
    sprintf(o, "\":\"long key value\"}");
    p = parse(TP_OPENAI, body);
    is_str(text(p), "long key value", "a key longer than any known one is text");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"call_123456\",\"content\":\"r\"}],"
                         "\"vector_store_ids\":[\"vs_1\"],\"thread_id\":\"t\"}");
    is_str(text(p), "r", "*_id and *_ids keys are not text");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"role\":{\"oops\":\"object under a denied key\"},\"include\":[[\"x\"],{\"y\":\"read\"}]}");
    is_str(text(p), "object under a denied key\nread", "only strings are denied: objects under a denied key are read");
    tp_prompt_destroy(p);
}


static void
test_redact_everywhere(void)
{
    tp_prompt_t *p;
    tp_span_t    s[2];
    const char  *o;
    int          valid;

    /* a tool description with escapes and a surrogate pair */
    p = parse(TP_ANTHROPIC,
        "{\"model\":\"m\",\"max_tokens\":1,\"tools\":[{\"name\":\"t\",\"description\":\"caf\\u00e9 \\\"q\\\"\\n"
        "mail bob@x.io \\ud83d\\ude00\",\"input_schema\":{\"type\":\"object\"}}],\"messages\":[]}");
    s[0] = span_of(p, "bob@x.io", "email");
    o = redact(p, s, 1, &valid);
    ok(valid && strstr(o, "\"description\":\"caf\xc3\xa9 \\\"q\\\"\\nmail [REDACTED:email] \xf0\x9f\x98\x80\"") != NULL,
       "redaction in an Anthropic tool description: re-escaped, UTF-8 kept");
    ok(strstr(o, "\"input_schema\":{\"type\":\"object\"}") != NULL, "  the rest byte for byte");
    tp_prompt_destroy(p);

    /* a free-form key and a value: both rewritten, still valid */
    p = parse(TP_GOOGLE,
        "{\"contents\":[{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"al\\u0069ce@x.io\":\"bob@y.io\"}}}]}],"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"f\",\"description\":\"write to carol@z.io\"}]}]}");
    s[0] = span_of(p, "alice@x.io", "email");
    s[1] = span_of(p, "carol@z.io", "email");
    o = redact(p, s, 2, &valid);
    ok(valid && strstr(o, "\"args\":{\"[REDACTED:email]\":\"bob@y.io\"}") != NULL,
       "redaction of a free-form key (escaped in the body)");
    ok(strstr(o, "\"description\":\"write to [REDACTED:email]\"") != NULL,
       "redaction in a Gemini functionDeclarations description");
    tp_prompt_destroy(p);

    /* a document's text source and an OpenAI prediction */
    p = parse(TP_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"document\","
                            "\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\",\"data\":\"SSN 123-45-6789.\"}}]}]}");
    s[0] = span_of(p, "123-45-6789", "ssn");
    o = redact(p, s, 1, &valid);
    ok(valid && strstr(o, "\"data\":\"SSN [REDACTED:ssn].\"") != NULL, "redaction in a document's text source");
    tp_prompt_destroy(p);

    p = parse(TP_OPENAI, "{\"model\":\"gpt-4o\",\"messages\":[],\"prediction\":{\"type\":\"content\",\"content\":\"key: sk-live\\/9\"}}");
    s[0] = span_of(p, "sk-live/9", "secrets");
    o = redact(p, s, 1, &valid);
    ok(valid && strstr(o, "\"content\":\"key: [REDACTED:secrets]\"") != NULL, "redaction in an OpenAI prediction");
    tp_prompt_destroy(p);
}


static void
test_endpoints(void)
{
    static const struct { int pr; const char *path; const char *want; } c[] = {
        { TP_OPENAI, "chat/completions", "chat/completions" },
        { TP_OPENAI, "/chat/completions", "chat/completions" },
        { TP_OPENAI, "v1/chat/completions", "chat/completions" },
        { TP_OPENAI, "completions", "completions" },
        { TP_OPENAI, "embeddings", "embeddings" },
        { TP_OPENAI, "responses", "responses" },
        { TP_OPENAI, "threads/thread_abc/messages", "threads/*/messages" },
        { TP_OPENAI, "threads/thread_abc/runs/run_1/submit_tool_outputs", "threads/*/runs/*/submit_tool_outputs" },
        { TP_OPENAI, "files", NULL },
        { TP_OPENAI, "batches", NULL },
        { TP_OPENAI, "audio/transcriptions", NULL },
        { TP_OPENAI, "images/edits", NULL },
        { TP_OPENAI, "chat/completions/", NULL },
        { TP_OPENAI, "chat/completionsx", NULL },
        { TP_OPENAI, "threads//messages", NULL },
        { TP_OPENAI, "", NULL },
        { TP_AZURE, "chat/completions", "chat/completions" },
        { TP_AZURE, "fine_tuning/jobs", NULL },
        { TP_ANTHROPIC, "messages", "messages" },
        { TP_ANTHROPIC, "messages/count_tokens", "messages/count_tokens" },
        { TP_ANTHROPIC, "messages/batches", "messages/batches" },
        { TP_ANTHROPIC, "complete", "complete" },
        { TP_ANTHROPIC, "files", NULL },
        { TP_ANTHROPIC, "messages/batches/msgbatch_1/cancel", NULL },
        { TP_ANTHROPIC, "chat/completions", NULL },
        { TP_GOOGLE, "models/gemini-2.0-flash:generateContent", "models/*:generateContent" },
        { TP_GOOGLE, "v1beta/models/gemini-2.0-flash:streamGenerateContent", "models/*:streamGenerateContent" },
        { TP_GOOGLE, "models/gemini-2.0-flash:batchGenerateContent", "models/*:batchGenerateContent" },
        { TP_GOOGLE, "models/text-embedding-004:asyncBatchEmbedContent", "models/*:asyncBatchEmbedContent" },
        { TP_GOOGLE, "models/text-embedding-004:batchEmbedContents", "models/*:batchEmbedContents" },
        { TP_GOOGLE, "cachedContents", "cachedContents" },
        { TP_GOOGLE, "cachedContents/abc", "cachedContents/*" },
        { TP_GOOGLE, "models/:generateContent", NULL },
        { TP_GOOGLE, "models/a/b:generateContent", NULL },
        { TP_GOOGLE, "tunedModels/x:generateContent", NULL },
        { TP_GOOGLE, "files", NULL },
        { TP_GOOGLE, "models/gemini:generateContent:x", NULL },
        { 9, "chat/completions", NULL },
    };
    size_t      i;
    int         all = 1;
    const char *got;

    for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        got = tp_prompt_endpoint(c[i].pr, (const unsigned char *) c[i].path, strlen(c[i].path));
        if (!(got == c[i].want || (got && c[i].want && strcmp(got, c[i].want) == 0))) {
            printf("#   %d %s: got %s, want %s\n", c[i].pr, c[i].path, got ? got : "NULL",
                   c[i].want ? c[i].want : "NULL");
            all = 0;
        }
    }
    ok(all, "endpoints: each provider's understood paths, versions and slashes, unknown ones NULL");
}


/* what a credential shared by tenants may reach: inference, and models on
 * a GET */
static void
test_stateless(void)
{
    static const struct { int pr, read; const char *path, *want; } c[] = {
        { TP_OPENAI, 0, "/v1/chat/completions", "chat/completions" },
        { TP_OPENAI, 0, "responses", "responses" },
        { TP_OPENAI, 0, "audio/transcriptions", "audio/transcriptions" },
        { TP_OPENAI, 1, "models", "models" },
        { TP_OPENAI, 1, "models/ft:gpt-4o:acme::x1", "models/+" },
        { TP_OPENAI, 0, "models/ft:gpt-4o:acme::x1", NULL },
        { TP_OPENAI, 1, "models/a/b", NULL },
        { TP_OPENAI, 1, "files", NULL },
        { TP_OPENAI, 0, "batches", NULL },
        { TP_OPENAI, 1, "responses/resp_1", NULL },
        { TP_OPENAI, 0, "assistants", NULL },
        { TP_OPENAI, 1, "threads/t1/messages", NULL },
        { TP_OPENAI, 1, "vector_stores", NULL },
        { TP_OPENAI, 0, "fine_tuning/jobs", NULL },
        { TP_AZURE, 0, "chat/completions", "chat/completions" },
        { TP_AZURE, 1, "files", NULL },
        { TP_ANTHROPIC, 0, "messages", "messages" },
        { TP_ANTHROPIC, 1, "models/claude-3-5-haiku-latest", "models/*" },
        { TP_ANTHROPIC, 1, "messages/batches", NULL },
        { TP_ANTHROPIC, 0, "messages/batches", NULL },
        { TP_ANTHROPIC, 1, "files", NULL },
        { TP_GOOGLE, 0, "v1beta/models/g:generateContent", "models/*:generateContent" },
        { TP_GOOGLE, 1, "models/g", "models/*" },
        { TP_GOOGLE, 1, "models/g:batchGenerateContent", NULL },
        { TP_GOOGLE, 0, "models/g:asyncBatchEmbedContent", NULL },
        { TP_GOOGLE, 0, "models/g:predictLongRunning", NULL },
        { TP_GOOGLE, 1, "cachedContents", NULL },
        { TP_GOOGLE, 1, "files", NULL },
        { TP_GOOGLE, 1, "tunedModels", NULL },
        { 9, 1, "models", NULL },
    };
    size_t      i;
    int         all = 1;
    const char *got;

    for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        got = tp_stateless_endpoint(c[i].pr, c[i].read, (const unsigned char *) c[i].path,
                                    strlen(c[i].path));
        if (!(got == c[i].want || (got && c[i].want && strcmp(got, c[i].want) == 0))) {
            printf("#   %d %d %s: got %s, want %s\n", c[i].pr, c[i].read, c[i].path,
                   got ? got : "NULL", c[i].want ? c[i].want : "NULL");
            all = 0;
        }
    }
    ok(all, "stateless endpoints: inference, models on a GET; files, batches, stores NULL");
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
    o += sprintf(o, "],\"image_url\":\"data:image/png;base64,");
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
    test_openai_everywhere();
    test_anthropic_everywhere();
    test_google_everywhere();
    test_data_before_type();
    test_keys();
    test_redact_everywhere();
    test_endpoints();
    test_stateless();
    test_decoding();
    test_malformed();
    test_many_segments();
    test_redact();
    test_fold();
    test_nomem();

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
