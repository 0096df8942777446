/* test_policy.c - rule validation, every rule type and action, detectors
 * with their negatives, word boundaries, scope, priority, masked excerpts,
 * redaction through the prompt, and regexes that would backtrack forever */
#include "../../sidecar/tests/tap.h"
#include "trueport_policy.h"

#include <stdlib.h>
#include <time.h>
#include <yajl/yajl_tree.h>

int tap_n, tap_failed;

static void *m_alloc(void *c, size_t n) { (void) c; return malloc(n); }
static void *m_realloc(void *c, void *p, size_t n) { (void) c; return realloc(p, n); }
static void  m_free(void *c, void *p) { (void) c; free(p); }
static const tp_alloc_t A = { m_alloc, m_realloc, m_free, NULL };

static int left;
static void *f_alloc(void *c, size_t n) { (void) c; return left-- > 0 ? malloc(n) : NULL; }
static const tp_alloc_t F = { f_alloc, m_realloc, m_free, NULL };

static char err[512];

static tp_policy_set_t *
compile(const char *rules)
{
    tp_policy_set_t *s = tp_policy_compile(&A, rules, strlen(rules), err, sizeof(err));

    if (s == NULL) {
        printf("#   compile failed: %s\n", err);
    }
    return s;
}

/* a chat body holding txt, JSON-escaped */
static char body_buf[400000];

static const char *
chat(const char *txt)
{
    static const char hex[] = "0123456789abcdef";
    char             *o = body_buf;

    o += sprintf(o, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (; *txt; txt++) {
        unsigned char c = (unsigned char) *txt;
        if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char) c; }
        else if (c == '\n') { *o++ = '\\'; *o++ = 'n'; }
        else if (c < 0x20) { o += sprintf(o, "\\u00%c%c", hex[c >> 4], hex[c & 15]); }
        else *o++ = (char) c;
    }
    strcpy(o, "\"}]}");
    return body_buf;
}

static tp_prompt_t *
prompt_url(int provider, const char *body, const char *url_model)
{
    tp_prompt_t *p = NULL;

    if (tp_prompt_parse(&A, provider, (const unsigned char *) body, strlen(body),
                        url_model, url_model ? strlen(url_model) : 0, &p, err,
                        sizeof(err)) != TP_PROMPT_OK)
    {
        printf("#   parse failed: %s\n", err);
    }
    return p;
}

static tp_policy_ctx_t CTX = { TP_OPENAI, "production", "key-1" };

/* evaluates a one-text chat; the prompt stays alive in `last` */
static tp_prompt_t       *last;
static tp_policy_result_t R;

static const tp_policy_result_t *
run_p(const tp_policy_set_t *s, tp_prompt_t *p, const tp_policy_ctx_t *ctx)
{
    tp_prompt_destroy(last);
    last = p;
    memset(&R, 0, sizeof(R));
    if (p == NULL || tp_policy_eval(s, p, ctx, &R) != 0) {
        printf("#   eval failed\n");
    }
    return &R;
}

static const tp_policy_result_t *
run(const tp_policy_set_t *s, const char *txt)
{
    return run_p(s, prompt_url(TP_OPENAI, chat(txt), NULL), &CTX);
}

static const tp_violation_t *
find(const tp_policy_result_t *r, const char *detector)
{
    size_t i;

    for (i = 0; i < r->nviolations; i++) {
        if (strcmp(r->violations[i].detector, detector) == 0) {
            return &r->violations[i];
        }
    }
    return NULL;
}

static const char *
excerpt(const tp_policy_result_t *r, const char *detector)
{
    const tp_violation_t *v = find(r, detector);

    return v ? v->excerpt : "(no violation)";
}

static int
invalid(const char *rule, const char *why)
{
    int rc = tp_policy_validate_rule(rule, strlen(rule), err, sizeof(err));

    if (rc == 0 || strstr(err, why) == NULL) {
        printf("#   rc %d, err \"%s\", want \"%s\"\n", rc, err, why);
        return 0;
    }
    return 1;
}

static int
valid(const char *rule)
{
    int rc = tp_policy_validate_rule(rule, strlen(rule), err, sizeof(err));

    if (rc != 0) {
        printf("#   err \"%s\"\n", err);
    }
    return rc == 0;
}

/* redacts R into the last prompt's body: valid JSON, NUL-terminated */
static char red_buf[400000];

static const char *
redacted(int *json_ok)
{
    const unsigned char *o;
    size_t               n;
    yajl_val             doc;

    *json_ok = 0;
    if (tp_prompt_redact(last, R.spans, R.nspans, &o, &n) != 0 || n >= sizeof(red_buf)) {
        return "(failed)";
    }
    memcpy(red_buf, o, n);
    red_buf[n] = '\0';
    doc = yajl_tree_parse(red_buf, NULL, 0);
    *json_ok = doc != NULL;
    yajl_tree_free(doc);
    return red_buf;
}

static double
now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}


static void
test_validation(void)
{
    ok(valid("{\"name\":\"r\",\"type\":\"regex\",\"config\":{\"patterns\":[\"a+b\",\"(?i)x\"]},\"action\":\"block\"}"),
       "valid: regex");
    ok(valid("{\"type\":\"keywords\",\"config\":{\"keywords\":[\"a\",\"b c\"]},\"action\":\"redact\",\"enabled\":false,\"priority\":5}"),
       "valid: keywords, disabled, priority");
    ok(valid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\",\"phone\",\"credit_card\",\"ssn\",\"iban\",\"ipv4\",\"secrets\"]},\"action\":\"log\"}"),
       "valid: pii, every detector");
    ok(valid("{\"type\":\"model\",\"config\":{\"allow\":[\"gpt-*\"],\"deny\":null},\"action\":\"block\",\"scope\":{\"providers\":[\"openai\",\"azure\"],\"envs\":[\"production\"],\"key_ids\":[\"k\"]}}"),
       "valid: model with scope");
    ok(valid("{\"type\":\"limits\",\"config\":{\"max_prompt_chars\":1000},\"action\":\"block\",\"id\":\"x\",\"created_at\":\"2024\",\"scope\":null}"),
       "valid: limits, unknown fields ignored");

    ok(invalid("{\"type\":\"regex\",\"config\":{\"patterns\":[\"ok\",\"(unclosed\"]},\"action\":\"block\"}",
               "config.patterns[1]: missing closing parenthesis at offset 9"), "bad regex: which pattern, why, where");
    ok(invalid("{\"type\":\"regex\",\"config\":{\"patterns\":[]},\"action\":\"block\"}", "config.patterns: must not be empty"),
       "regex without patterns");
    ok(invalid("{\"type\":\"regex\",\"config\":{\"patterns\":\"a\"},\"action\":\"block\"}", "config.patterns: must be an array"),
       "patterns not an array");
    ok(invalid("{\"type\":\"regex\",\"config\":{\"patterns\":[\"\"]},\"action\":\"block\"}", "must not be empty"),
       "empty pattern");
    ok(invalid("{\"type\":\"sql\",\"config\":{},\"action\":\"block\"}", "type: unknown type \"sql\""), "unknown type");
    ok(invalid("{\"config\":{},\"action\":\"block\"}", "type: required"), "missing type");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"quarantine\"}", "action: unknown action \"quarantine\""),
       "unknown action");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]}}", "action: required"), "missing action");
    ok(invalid("{\"type\":\"keywords\",\"config\":{\"keywords\":[]},\"action\":\"block\"}", "config.keywords: must not be empty"),
       "empty keyword list");
    ok(invalid("{\"type\":\"keywords\",\"config\":{\"keywords\":[\"ok\",\"  \"]},\"action\":\"block\"}", "config.keywords[1]: must not be empty"),
       "blank keyword");
    ok(invalid("{\"type\":\"keywords\",\"config\":{\"keywords\":[1]},\"action\":\"block\"}", "config.keywords[0]: must be a string"),
       "keyword not a string");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\",\"passport\"]},\"action\":\"block\"}",
               "config.detectors[1]: unknown detector \"passport\""), "unknown detector");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[]},\"action\":\"block\"}", "config.detectors: must not be empty"),
       "no detectors");
    ok(invalid("{\"type\":\"limits\",\"config\":{\"max_prompt_chars\":0},\"action\":\"block\"}", "config.max_prompt_chars: must be a positive integer"),
       "limits: zero");
    ok(invalid("{\"type\":\"limits\",\"config\":{\"max_output_tokens\":-5},\"action\":\"block\"}", "config.max_output_tokens: must be a positive integer"),
       "limits: negative");
    ok(invalid("{\"type\":\"limits\",\"config\":{\"max_prompt_chars\":\"100\"},\"action\":\"block\"}", "positive integer"),
       "limits: a string");
    ok(invalid("{\"type\":\"limits\",\"config\":{\"max_prompt_chars\":10.5},\"action\":\"block\"}", "positive integer"),
       "limits: a fraction");
    ok(invalid("{\"type\":\"limits\",\"config\":{},\"action\":\"block\"}", "needs max_prompt_chars or max_output_tokens"),
       "limits: none set");
    ok(invalid("{\"type\":\"model\",\"config\":{\"allow\":[]},\"action\":\"block\"}", "allow or deny"), "model: no list");
    ok(invalid("{\"type\":\"model\",\"config\":{\"deny\":[\"\"]},\"action\":\"block\"}", "config.deny[0]: must not be empty"),
       "model: empty glob");
    ok(invalid("{\"type\":\"model\",\"config\":{\"allow\":[\"x\"]},\"action\":\"redact\"}", "cannot redact"),
       "model rules cannot redact");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"log\",\"scope\":{\"providers\":[\"bing\"]}}",
               "scope.providers[0]: unknown provider \"bing\""), "unknown provider in scope");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"log\",\"scope\":{\"envs\":\"prod\"}}",
               "scope.envs: must be an array"), "scope list not an array");
    ok(invalid("{\"type\":\"pii\",\"action\":\"log\"}", "config: required"), "missing config");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"log\",\"priority\":\"high\"}", "priority: must be an integer"),
       "priority not an integer");
    ok(invalid("{\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"log\",\"enabled\":\"yes\"}", "enabled: must be true or false"),
       "enabled not a boolean");
    ok(invalid("{\"type\":\"regex\\u0000x\",\"config\":{},\"action\":\"block\"}", "unknown type"),
       "an embedded NUL does not pass for a known name");
    ok(invalid("{\"type\":\"model\",\"config\":{\"allow\":[\"gpt\\u0000\"]},\"action\":\"block\"}", "must not contain NUL"),
       "no NUL in globs or scope entries");
    ok(invalid("[1]", "JSON object"), "a rule must be an object");
    ok(invalid("{\"type\":", "unexpected end"), "malformed JSON");

    {
        tp_policy_set_t *s;
        const char *rules =
            "[{\"id\":\"r1\",\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"log\"},"
            " {\"id\":\"r2\",\"type\":\"regex\",\"config\":{\"patterns\":[\"[z-a]\"]},\"action\":\"block\"}]";

        s = tp_policy_compile(&A, rules, strlen(rules), err, sizeof(err));
        ok(s == NULL && strncmp(err, "rule r2: config.patterns[0]:", 28) == 0, "compile: the failing rule named");
        printf("#   %s\n", err);

        rules = "[{\"id\":\"off\",\"type\":\"regex\",\"config\":{\"patterns\":[\"(\"]},\"action\":\"block\",\"enabled\":false},"
                " {\"id\":\"on\",\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"log\"}]";
        s = compile(rules);
        ok(s != NULL && tp_policy_applicable(s, &CTX) == 1, "compile: a disabled rule is skipped, even a broken one");
        tp_policy_destroy(s);

        rules = "{\"items\":[{\"type\":\"pii\",\"config\":{\"detectors\":[\"ssn\"]},\"action\":\"log\"}],\"total\":1,\"limit\":50,\"offset\":0}";
        s = compile(rules);
        ok(s != NULL && tp_policy_applicable(s, NULL) == 1, "compile: the API's list envelope is accepted");
        tp_policy_destroy(s);

        s = compile("[]");
        ok(s != NULL && tp_policy_applicable(s, &CTX) == 0, "compile: no rules");
        run(s, "anything");
        ok(R.action == TP_ACTION_NONE && R.nviolations == 0, "no rules: nothing happens");
        tp_policy_destroy(s);

        s = tp_policy_compile(&A, "{\"a\":1}", 7, err, sizeof(err));
        ok(s == NULL && strstr(err, "array") != NULL, "compile: not an array");
    }
}

static void
test_keywords(void)
{
    tp_policy_set_t *s;
    char             rules[20000], *o;
    int              i;

    s = compile("[{\"id\":\"kw\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"ass\",\"Credit Card\",\"c++\","
                "\"\xd0\x9f\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c\",\"caf\xc3\xa9\",\"\xe5\xaf\x86\xe7\xa0\x81\"]},\"action\":\"log\"}]");
    run(s, "We had a class on classic passengers.");
    ok(R.nviolations == 0, "keywords: \"class\", \"classic\", \"passengers\" do not match \"ass\"");
    run(s, "You ASS!");
    ok(R.nviolations == 1 && R.action == TP_ACTION_LOG, "keywords: case-insensitive, whole word");
    is_str(excerpt(&R, "keyword"), "***", "keywords: a short match is all stars");
    run(s, "my CREDIT card number");
    is_str(excerpt(&R, "keyword"), "C********d", "keywords: multi-word; excerpt masked (at most 8 stars)");
    run(s, "credit  card");
    ok(R.nviolations == 0, "keywords: spaces must match as written");
    run(s, "I write c++, daily");
    ok(R.nviolations == 1, "keywords: an edge that is not a word character needs no boundary");
    run(s, "\xd0\x9c\xd0\xbe\xd0\xb9 \xd0\x9f\xd0\x90\xd0\xa0\xd0\x9e\xd0\x9b\xd0\xac: x");
    ok(R.nviolations == 1, "keywords: Cyrillic folded (ПАРОЛЬ)");
    run(s, "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c\xd1\x8f");
    ok(R.nviolations == 0, "keywords: a Cyrillic word boundary (пароля)");
    run(s, "CAF\xc3\x89 au lait");
    ok(R.nviolations == 1, "keywords: Latin-1 folded (CAFÉ)");
    run(s, "\xe6\x88\x91\xe7\x9a\x84\xe5\xaf\x86\xe7\xa0\x81\xe6\x98\xaf");
    ok(R.nviolations == 1, "keywords: CJK matches inside text without spaces");

    /* escapes decoded before matching */
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[{\"content\":\"un caf\\u00e9\"}]}", NULL), &CTX);
    ok(R.nviolations == 1, "keywords: \\u00e9 decoded before matching");

    /* no false boundary between two parts of one message ... */
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":["
                                   "{\"type\":\"text\",\"text\":\"the cl\"},{\"type\":\"text\",\"text\":\"ass notes\"}]}]}", NULL), &CTX);
    ok(R.nviolations == 0, "keywords: parts \"cl\" + \"ass\" read as \"class\", no match");
    /* ... but two messages are separate */
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"the cl\"},"
                                   "{\"role\":\"user\",\"content\":\"ass notes\"}]}", NULL), &CTX);
    ok(R.nviolations == 1, "keywords: a new message starts a word");
    tp_policy_destroy(s);

    /* hundreds of keywords, one pass */
    o = rules + sprintf(rules, "[{\"id\":\"many\",\"type\":\"keywords\",\"action\":\"redact\",\"config\":{\"keywords\":[");
    for (i = 0; i < 500; i++) {
        o += sprintf(o, "%s\"word%03d\"", i ? "," : "", i);
    }
    strcpy(o, ",\"new york\",\"york\"]}}]");
    s = compile(rules);
    run(s, "say WORD250 and word499 but not word2500 or sword001; New York!");
    is_int(R.nviolations, 1, "500 keywords: one violation per rule");
    is_int(R.violations ? R.violations[0].count : 0, 4, "500 keywords: every match counted, overlaps too");
    {
        int ok_json;
        const char *out = redacted(&ok_json);
        ok(ok_json && strstr(out, "say [REDACTED:keyword] and [REDACTED:keyword] but not word2500 or sword001; [REDACTED:keyword]!")
           != NULL, "500 keywords: redacted, overlapping \"new york\"/\"york\" merged");
    }
    tp_policy_destroy(s);
}

struct det_case {
    const char *detector;
    const char *text;
    const char *raw;          /* the matched value */
    const char *mask;
};

static const struct det_case positives[] = {
    { "email", "write to John.Doe+x@mail.Example.com today", "John.Doe+x@mail.Example.com", "J***@m***.com" },
    { "phone", "call +1 (415) 555-2671 now", "+1 (415) 555-2671", "+*******2671" },
    { "phone", "call 415-555-2671.", "415-555-2671", "******2671" },
    { "phone", "call (415) 555.2671", "(415) 555.2671", "******2671" },
    { "phone", "uk +44 20 7946 0958", "+44 20 7946 0958", "+********0958" },
    { "phone", "ref 12 (415) 555-2671", "(415) 555-2671", "******2671" },
    { "credit_card", "card 4111 1111 1111 1111, exp", "4111 1111 1111 1111", "4111********1111" },
    { "credit_card", "mc:5555-5555-5555-4444", "5555-5555-5555-4444", "5555********4444" },
    { "credit_card", "amex 378282246310005", "378282246310005", "3782*******0005" },
    { "credit_card", "order 12 4111 1111 1111 1111", "4111 1111 1111 1111", "4111********1111" },
    { "ssn", "ssn 123-45-6789.", "123-45-6789", "***-**-6789" },
    { "ssn", "ssn 078 05 1120", "078 05 1120", "***-**-1120" },
    { "iban", "pay DE89 3704 0044 0532 0130 00 today", "DE89 3704 0044 0532 0130 00", "DE89************3000" },
    { "iban", "iban GB82WEST12345698765432.", "GB82WEST12345698765432", "GB82************5432" },
    { "ipv4", "host 192.168.1.20:8080", "192.168.1.20", "192.168.*.*" },
    { "secrets", "aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE", "AKIA****\xe2\x80\xa6MPLE" },
    { "secrets", "key=sk-proj-abcdefghijklmnopqrstuvwxyz123456", "sk-proj-abcdefghijklmnopqrstuvwxyz123456", "sk-****\xe2\x80\xa6" "3456" },
    { "secrets", "key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", "sk-****\xe2\x80\xa6UvWx" },
    { "secrets", "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_****\xe2\x80\xa6" "6789" },
    { "secrets", "tok eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJ****\xe2\x80\xa6sR8U" },
    { "secrets", "here:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq9\nx/y+z==\n-----END RSA PRIVATE KEY-----\nthanks",
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq9\nx/y+z==\n-----END RSA PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----****\xe2\x80\xa6" },
    /* the scan jumps to '-', '_', 'A' or 'J' and looks back: keys whose
     * first such byte is farthest from their start, at both ends of the text */
    { "secrets", "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz", "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz",
      "github_pat_****\xe2\x80\xa6wxyz" },
    { "secrets", "ci: glpat-abcdefghij0123456789xy", "glpat-abcdefghij0123456789xy", "glpat-****\xe2\x80\xa6" "89xy" },
    { "secrets", "slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij", "xoxb-****\xe2\x80\xa6ghij" },
    { "secrets", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n(truncated)",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", "-----BEGIN OPENSSH PRIVATE KEY-----****\xe2\x80\xa6" },
    { NULL, NULL, NULL, NULL }
};

static const struct det_case negatives[] = {
    { "email", "a@b, user@localhost, @example.com, x@-bad.com, me@site.c", NULL, NULL },
    { "phone", "dates 2024-01-15, ts 1700000000, ssn 123-45-6789, ip 192.168.100.200, 555-1234, (015) 555-2671", NULL, NULL },
    { "credit_card", "4111 1111 1111 1112 fails Luhn; 1234567812345678; 4111111111111111111111; id4111111111111111", NULL, NULL },
    { "credit_card", "79927398713 is Luhn-valid but too short; 0000 0000 0000 0000 has no card prefix", NULL, NULL },
    { "ssn", "000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000 123-45-67890 1123-45-6789 123-45 6789", NULL, NULL },
    { "iban", "DE89 3704 0044 0532 0130 01 and GB82WEST12345698765433 fail mod-97; XX12", NULL, NULL },
    { "ipv4", "256.1.1.1, 1.2.3, 1.2.3.4.5, 01.2.3.4, v1.2.3.4, 1.2.3.4567", NULL, NULL },
    { "secrets", "task-abcdefghijklmnopqrstuvwxyz, sk-short, AKIAIOSFODNN7EXAMPL, AKIAIOSFODNN7EXAMPLEX, eyJhbGci.x, "
                 "-----BEGIN PUBLIC KEY-----", NULL, NULL },
    { NULL, NULL, NULL, NULL }
};

static void
test_pii(void)
{
    const struct det_case *c;
    tp_policy_set_t       *s;
    char                   rule[256];
    int                    json_ok;
    const char            *out;

    for (c = positives; c->detector; c++) {
        snprintf(rule, sizeof(rule), "[{\"id\":\"p\",\"type\":\"pii\",\"config\":{\"detectors\":[\"%s\"]},\"action\":\"redact\"}]",
                 c->detector);
        s = compile(rule);
        run(s, c->text);
        is_str(excerpt(&R, c->detector), c->mask, "%s: case %d found, masked", c->detector, (int) (c - positives));
        ok(find(&R, c->detector) == NULL || strstr(find(&R, c->detector)->excerpt, c->raw) == NULL,
           "%s: the excerpt does not hold the value", c->detector);
        ok(R.nspans == 1 && R.spans[0].end - R.spans[0].start == strlen(c->raw)
           && memcmp(last->text + R.spans[0].start, c->raw, strlen(c->raw)) == 0,
           "%s: the span is exactly the value", c->detector);
        out = redacted(&json_ok);
        ok(json_ok && strstr(out, c->raw) == NULL, "%s: redacted body is valid JSON without the value", c->detector);
        tp_policy_destroy(s);
    }
    for (c = negatives; c->detector; c++) {
        snprintf(rule, sizeof(rule), "[{\"id\":\"n\",\"type\":\"pii\",\"config\":{\"detectors\":[\"%s\"]},\"action\":\"log\"}]",
                 c->detector);
        s = compile(rule);
        run(s, c->text);
        ok(R.nviolations == 0, "%s: no false positive in case %d", c->detector, (int) (c - negatives));
        if (R.nviolations) {
            printf("#   excerpt %s\n", R.violations[0].excerpt);
        }
        tp_policy_destroy(s);
    }

    /* every detector at once; each match of a redact rule is collected */
    s = compile("[{\"id\":\"all\",\"name\":\"All PII\",\"type\":\"pii\",\"action\":\"redact\",\"config\":{\"detectors\":"
                "[\"email\",\"phone\",\"credit_card\",\"ssn\",\"iban\",\"ipv4\",\"secrets\"]}}]");
    run(s, "a@b.io c@d.io 415-555-2671 4111111111111111 123-45-6789 DE89370400440532013000 10.0.0.1 AKIAIOSFODNN7EXAMPLE");
    is_int(R.nviolations, 7, "all detectors: one violation each");
    is_int(find(&R, "email") ? find(&R, "email")->count : 0, 2, "all detectors: two emails counted");
    ok(R.action == TP_ACTION_REDACT && R.blocked_by == NULL, "all detectors: action redact");
    ok(R.violations && strcmp(R.violations[0].rule_id, "all") == 0 && strcmp(R.violations[0].rule_name, "All PII") == 0
       && strcmp(R.violations[0].type, "pii") == 0 && R.violations[0].action == TP_ACTION_REDACT,
       "violation: rule id, name, type, action");
    out = redacted(&json_ok);
    ok(json_ok, "all detectors: redacted body is valid JSON");
    ok(strstr(out, "[REDACTED:email] [REDACTED:email] [REDACTED:phone] [REDACTED:credit_card] [REDACTED:ssn] "
                   "[REDACTED:iban] [REDACTED:ipv4] [REDACTED:secrets]") != NULL, "all detectors: every value replaced");
    tp_policy_destroy(s);
}

static void
test_split_and_escapes(void)
{
    tp_policy_set_t *s;
    int              json_ok;
    const char      *out;
    const char      *body =
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"my key is sk-proj-AAAAbbbb\"},"
        "{\"type\":\"text\",\"text\":\"CCCCdddd1234 and mail bo\"},"
        "{\"type\":\"text\",\"text\":\"b@example.org\"}]}]}";

    s = compile("[{\"id\":\"sec\",\"type\":\"pii\",\"config\":{\"detectors\":[\"secrets\",\"email\"]},\"action\":\"redact\"}]");
    run_p(s, prompt_url(TP_OPENAI, body, NULL), &CTX);
    ok(find(&R, "secrets") && find(&R, "email"), "split across parts: the secret and the email are found");
    out = redacted(&json_ok);
    ok(json_ok, "split across parts: valid JSON");
    ok(strstr(out, "\"my key is [REDACTED:secrets]\"") && strstr(out, "\"[REDACTED:secrets] and mail [REDACTED:email]\"")
       && strstr(out, "\"[REDACTED:email]\""), "split across parts: every part's piece redacted");
    ok(strstr(out, "AAAA") == NULL && strstr(out, "1234") == NULL && strstr(out, "example") == NULL,
       "split across parts: nothing of either left");
    tp_policy_destroy(s);

    s = compile("[{\"id\":\"sec\",\"type\":\"pii\",\"config\":{\"detectors\":[\"secrets\"]},\"action\":\"block\"}]");
    run_p(s, prompt_url(TP_ANTHROPIC, "{\"model\":\"claude-3-5-sonnet\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
                                      "{\"type\":\"text\",\"text\":\"AKIAIOSF\"},{\"type\":\"text\",\"text\":\"ODNN7EXAMPLE\"}]}]}", NULL), &CTX);
    ok(R.action == TP_ACTION_BLOCK && R.blocked_by && strcmp(R.blocked_by->rule_id, "sec") == 0,
       "split across anthropic blocks: blocked");
    run_p(s, prompt_url(TP_GOOGLE, "{\"contents\":[{\"parts\":[{\"text\":\"sk-\"},{\"text\":\"abcdefghijklmnopqrstuvwxyz\"}]}]}",
                        "gemini-pro"), &CTX);
    ok(R.action == TP_ACTION_BLOCK, "split across gemini parts: blocked");

    /* escaped forms decoded before matching: "\u002d" is "-", "\/" is "/" */
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[{\"content\":\"k=sk\\u002dproj\\u002dabcdefghijklmnopqrstuvwxyz\"}]}", NULL), &CTX);
    ok(R.action == TP_ACTION_BLOCK, "escaped secret (\\u002d) found");
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[{\"content\":\"-----BEGIN PRIVATE KEY-----\\nMIIB\\/x+y\\n-----END PRIVATE KEY-----\"}]}",
                        NULL), &CTX);
    ok(R.action == TP_ACTION_BLOCK, "escaped private key block (\\n, \\/) found");
    tp_policy_destroy(s);

    s = compile("[{\"id\":\"e\",\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"redact\"}]");
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[{\"content\":\"\\u00c9crire \\u00e0 \\\"ann\\u0040corp.fr\\\" \\ud83d\\ude00\"}]}",
                        NULL), &CTX);
    is_str(excerpt(&R, "email"), "a***@c***.fr", "unicode text and \\u0040: email found");
    out = redacted(&json_ok);
    ok(json_ok && strstr(out, "\"\xc3\x89" "crire \xc3\xa0 \\\"[REDACTED:email]\\\" \xf0\x9f\x98\x80\"") != NULL,
       "unicode text: re-escaped as UTF-8, quotes kept escaped");
    tp_policy_destroy(s);
}

static void
test_regex(void)
{
    tp_policy_set_t *s;
    double           t0, dt;
    static char      big[120000];
    int              json_ok;

    s = compile("[{\"id\":\"re\",\"type\":\"regex\",\"config\":{\"patterns\":[\"\\\\bPROJ-[0-9]{4,}\\\\b\",\"(?i)top secret\"]},\"action\":\"redact\"}]");
    run(s, "see PROJ-12345 and proj-12345 and Top Secret plans, PROJ-12");
    is_int(R.violations ? R.violations[0].count : 0, 2, "regex: both patterns, case as written");
    is_str(excerpt(&R, "regex"), "P********5", "regex: excerpt masked");
    ok(strstr(redacted(&json_ok), "see [REDACTED:regex] and proj-12345 and [REDACTED:regex] plans, PROJ-12") && json_ok,
       "regex: redacted");
    tp_policy_destroy(s);

    s = compile("[{\"id\":\"u\",\"type\":\"regex\",\"config\":{\"patterns\":[\"\\\\w+\\u00e9\\\\b\",\"x*\"]},\"action\":\"log\"}]");
    run(s, "un sorbet glac\xc3\xa9 noir");
    is_str(excerpt(&R, "regex"), "g***\xc3\xa9", "regex: UTF-8 and \\w under UCP; the excerpt keeps whole characters");
    run(s, "nothing here");
    ok(R.nviolations == 0 && R.match_errors == 0, "regex: empty matches (x*) are ignored");
    tp_policy_destroy(s);

    /* catastrophic backtracking: limited, counted, not a match */
    memset(big, 'a', 100000);
    big[100000] = '!';
    big[100001] = '\0';
    s = compile("[{\"id\":\"evil\",\"type\":\"regex\",\"config\":{\"patterns\":[\"(a+)+$\",\"(a|aa)+$\",\"^(\\\\w+\\\\s?)*$\"]},\"action\":\"block\"},"
                " {\"id\":\"after\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"b\"]},\"action\":\"log\"}]");
    t0 = now_s();
    run(s, big);
    dt = now_s() - t0;
    ok(R.action == TP_ACTION_BLOCK && R.unfinished && R.blocked_by == R.unfinished
       && R.match_errors == 1 && R.match_error_rule && strcmp(R.match_error_rule, "evil") == 0,
       "(a+)+$ on 100k characters: a limit hit, reported, the block rule fails closed"
       " (test_policy_limits.c)");
    ok(dt < 1.0, "(a+)+$ on 100k characters: returns quickly (%.1f ms)", dt * 1000);
    tp_policy_destroy(s);
}

static void
test_model_limits(void)
{
    tp_policy_set_t *s;

    ok(tp_policy_glob("gpt-4o*", "gpt-4o-mini") && tp_policy_glob("gpt-4o*", "GPT-4O")
       && tp_policy_glob("*-preview", "o1-preview") && tp_policy_glob("claude-3-?-sonnet*", "claude-3-5-sonnet-20241022")
       && tp_policy_glob("*", "") && tp_policy_glob("a*b*c", "aXbYbZc"), "glob: matches");
    ok(!tp_policy_glob("gpt-4o*", "gpt-4") && !tp_policy_glob("?", "") && !tp_policy_glob("a*b", "aXbc")
       && !tp_policy_glob("gpt-4", "gpt-4o"), "glob: non-matches");

    s = compile("[{\"id\":\"m\",\"type\":\"model\",\"config\":{\"allow\":[\"gpt-4o*\",\"gemini-*\",\"claude-3-5-*\"],\"deny\":[\"*-preview\"]},\"action\":\"block\"}]");
    run_p(s, prompt_url(TP_OPENAI, "{\"model\":\"gpt-4o-mini\",\"messages\":[]}", NULL), &CTX);
    ok(R.action == TP_ACTION_NONE, "model: allowed");
    run_p(s, prompt_url(TP_OPENAI, "{\"model\":\"gpt-4o-realtime-preview\",\"messages\":[]}", NULL), &CTX);
    ok(R.action == TP_ACTION_BLOCK, "model: deny wins over allow");
    is_str(excerpt(&R, "model"), "gpt-4o-realtime-preview", "model: the excerpt is the model");
    run_p(s, prompt_url(TP_OPENAI, "{\"model\":\"gpt-3.5-turbo\",\"messages\":[]}", NULL), &CTX);
    ok(R.action == TP_ACTION_BLOCK && strcmp(R.blocked_by->detector, "model") == 0, "model: not in the allow list");
    run_p(s, prompt_url(TP_GOOGLE, "{\"contents\":[]}", "models/gemini-1.5-pro"), &CTX);
    ok(R.action == TP_ACTION_NONE, "model: gemini's model from the URL");
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[]}", NULL), &CTX);
    ok(R.action == TP_ACTION_BLOCK, "model: no model at all fails an allow list");
    is_str(excerpt(&R, "model"), "(none)", "model: excerpt for no model");
    tp_policy_destroy(s);

    s = compile("[{\"id\":\"d\",\"type\":\"model\",\"config\":{\"deny\":[\"o1*\"]},\"action\":\"log\"}]");
    run_p(s, prompt_url(TP_OPENAI, "{\"messages\":[]}", NULL), &CTX);
    ok(R.action == TP_ACTION_NONE, "model: deny-only list passes a request without a model");
    run_p(s, prompt_url(TP_OPENAI, "{\"model\":\"o1-mini\"}", NULL), &CTX);
    ok(R.action == TP_ACTION_LOG, "model: deny-only list logs o1-mini");
    tp_policy_destroy(s);

    s = compile("[{\"id\":\"l\",\"type\":\"limits\",\"config\":{\"max_prompt_chars\":10,\"max_output_tokens\":1000},\"action\":\"block\"}]");
    run(s, "0123456789");
    ok(R.action == TP_ACTION_NONE, "limits: 10 characters pass max_prompt_chars 10");
    run(s, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    ok(R.action == TP_ACTION_NONE, "limits: characters, not bytes (10 x é)");
    run(s, "01234567890");
    ok(R.action == TP_ACTION_BLOCK && strcmp(R.blocked_by->detector, "max_prompt_chars") == 0, "limits: 11 characters blocked");
    is_str(excerpt(&R, "max_prompt_chars"), "11 > 10", "limits: excerpt");
    run_p(s, prompt_url(TP_OPENAI, "{\"model\":\"m\",\"max_tokens\":4000,\"messages\":[{\"content\":\"hi\"}]}", NULL), &CTX);
    ok(R.action == TP_ACTION_BLOCK && strcmp(R.blocked_by->detector, "max_output_tokens") == 0, "limits: max_tokens 4000 > 1000");
    run_p(s, prompt_url(TP_GOOGLE, "{\"contents\":[],\"generationConfig\":{\"maxOutputTokens\":1001}}", "g"), &CTX);
    ok(R.action == TP_ACTION_BLOCK, "limits: gemini maxOutputTokens");
    run_p(s, prompt_url(TP_OPENAI, "{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", NULL), &CTX);
    ok(R.action == TP_ACTION_NONE, "limits: no token limit in the request passes");
    run_p(s, prompt_url(TP_OPENAI, "{\"max_tokens\":2000,\"messages\":[{\"content\":\"0123456789abc\"}]}", NULL), &CTX);
    ok(R.nviolations == 2 && strcmp(R.blocked_by->detector, "max_prompt_chars") == 0,
       "limits: both exceeded, both reported, the first blocks");
    tp_policy_destroy(s);
}

static void
test_scope_priority(void)
{
    tp_policy_set_t  *s;
    tp_policy_ctx_t   c;

    s = compile("[{\"id\":\"anth\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"x\"]},\"action\":\"log\",\"scope\":{\"providers\":[\"anthropic\"]}},"
                " {\"id\":\"prod\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"x\"]},\"action\":\"log\",\"scope\":{\"envs\":[\"production\"]}},"
                " {\"id\":\"key\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"x\"]},\"action\":\"log\",\"scope\":{\"key_ids\":[\"key-2\",\"key-3\"]}},"
                " {\"id\":\"all\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"x\"]},\"action\":\"log\",\"scope\":{\"providers\":[],\"envs\":null}}]");
    c = CTX;
    run_p(s, prompt_url(TP_OPENAI, chat("x"), NULL), &c);
    ok(R.nviolations == 2 && strcmp(R.violations[0].rule_id, "prod") == 0 && strcmp(R.violations[1].rule_id, "all") == 0,
       "scope: openai/production/key-1 gets prod and all");
    c.provider = TP_ANTHROPIC;
    c.env = "staging";
    c.key_id = "key-3";
    is_int(tp_policy_applicable(s, &c), 3, "scope: anthropic/staging/key-3 has three rules");
    run_p(s, prompt_url(TP_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL), &c);
    ok(R.nviolations == 3 && strcmp(R.violations[0].rule_id, "anth") == 0 && strcmp(R.violations[1].rule_id, "key") == 0,
       "scope: anthropic/staging/key-3 gets anth, key and all");
    is_int(tp_policy_applicable(s, NULL), 1, "scope: an unknown context only gets unscoped rules");
    tp_policy_destroy(s);

    /* lower priority number first; ties keep the array order; the first
     * block ends evaluation; matches before it are kept */
    s = compile("[{\"id\":\"late-block\",\"priority\":50,\"type\":\"keywords\",\"config\":{\"keywords\":[\"foo\"]},\"action\":\"block\"},"
                " {\"id\":\"log-first\",\"priority\":1,\"type\":\"keywords\",\"config\":{\"keywords\":[\"foo\"]},\"action\":\"log\"},"
                " {\"id\":\"redact-b\",\"priority\":10,\"type\":\"keywords\",\"config\":{\"keywords\":[\"foo\"]},\"action\":\"redact\"},"
                " {\"id\":\"block-a\",\"priority\":20,\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"block\"},"
                " {\"id\":\"block-tie\",\"priority\":20,\"type\":\"pii\",\"config\":{\"detectors\":[\"email\"]},\"action\":\"block\"},"
                " {\"id\":\"never\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"foo\"]},\"action\":\"log\"}]");
    run(s, "foo a@b.io");
    ok(R.action == TP_ACTION_BLOCK && R.blocked_by && strcmp(R.blocked_by->rule_id, "block-a") == 0,
       "priority: the lowest-numbered block wins, array order breaks ties");
    is_int(R.nviolations, 3, "priority: log and redact before the block are kept, nothing after");
    ok(R.nviolations == 3 && strcmp(R.violations[0].rule_id, "log-first") == 0
       && strcmp(R.violations[1].rule_id, "redact-b") == 0 && R.nspans == 1, "priority: in evaluation order");
    run(s, "foo only");
    ok(R.action == TP_ACTION_BLOCK && strcmp(R.blocked_by->rule_id, "late-block") == 0 && R.nviolations == 3,
       "priority: a later block still applies when earlier ones do not match");
    run(s, "nothing");
    ok(R.action == TP_ACTION_NONE && R.nviolations == 0 && R.nspans == 0, "no match: nothing");
    tp_policy_destroy(s);

    s = compile("[{\"id\":\"l\",\"type\":\"pii\",\"config\":{\"detectors\":[\"email\",\"ipv4\"]},\"action\":\"log\"},"
                " {\"id\":\"r\",\"type\":\"pii\",\"config\":{\"detectors\":[\"ipv4\"]},\"action\":\"redact\"}]");
    run(s, "a@b.io 1.2.3.4 5.6.7.8");
    ok(R.action == TP_ACTION_REDACT && R.nviolations == 3 && R.nspans == 2,
       "log and redact together: all collected, only redact rules give spans");
    ok(find(&R, "email")->count == 1 && find(&R, "email")->action == TP_ACTION_LOG, "log rules stop at the first match");
    tp_policy_destroy(s);
}

static void
test_nomem(void)
{
    const char *rules = "[{\"id\":\"a\",\"type\":\"regex\",\"config\":{\"patterns\":[\"b+c\",\"[0-9]{3}\"]},\"action\":\"redact\"},"
                        " {\"id\":\"b\",\"type\":\"keywords\",\"config\":{\"keywords\":[\"one\",\"two\",\"three\"]},\"action\":\"redact\"},"
                        " {\"id\":\"c\",\"type\":\"pii\",\"config\":{\"detectors\":[\"email\",\"ipv4\"]},\"action\":\"log\"},"
                        " {\"id\":\"d\",\"type\":\"model\",\"config\":{\"deny\":[\"x*\"]},\"action\":\"log\"}]";
    tp_policy_set_t    *s;
    tp_prompt_t        *p;
    tp_policy_result_t  r;
    const unsigned char *o;
    size_t              olen;
    const char         *body = chat("bbc one two 123 456 a@b.io 1.2.3.4");
    int                 i, fails = 0, oks = 0, good = 1;

    for (i = 0; i < 80; i++) {
        left = i;
        s = tp_policy_compile(&F, rules, strlen(rules), err, sizeof(err));
        if (s == NULL) {
            fails++;
            good &= strstr(err, "out of memory") != NULL;
            continue;
        }
        oks++;
        tp_policy_destroy(s);
    }
    ok(good && fails > 0 && oks > 0, "compile: allocation failures reported, nothing leaked (ASan)");

    s = compile(rules);
    fails = oks = 0;
    for (i = 0; i < 40; i++) {
        left = i;
        if (tp_prompt_parse(&F, TP_OPENAI, (const unsigned char *) body, strlen(body), NULL, 0, &p, err, sizeof(err))
            != TP_PROMPT_OK)
        {
            continue;
        }
        if (tp_policy_eval(s, p, &CTX, &r) != 0 || tp_prompt_redact(p, r.spans, r.nspans, &o, &olen) != 0) {
            fails++;
        } else {
            oks++;
        }
        tp_prompt_destroy(p);
    }
    ok(fails > 0 && oks > 0, "eval and redact: allocation failures return -1, nothing leaked");
    tp_policy_destroy(s);
}

int
main(void)
{
    test_validation();
    test_keywords();
    test_pii();
    test_split_and_escapes();
    test_regex();
    test_model_limits();
    test_scope_priority();
    test_nomem();
    tp_prompt_destroy(last);

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
