/* fuzz_policy.c - libFuzzer target for rule compilation and evaluation:
 * the input is rules JSON, then "\n--\n", then a request body (a few fixed
 * bodies are evaluated too). Byte 0 picks the provider and the context,
 * and with bit 0x80 tight budgets and limits (a few KB compiled, a small
 * match limit, no time), so refusals and unfinished rules are driven too.
 * Checks that a compiled set stays within its budgets, evaluates (a rule
 * that could not finish blocks unless it only logs) and redacts to valid
 * JSON, and runs tp_policy_check_rule over the bytes a set did not compile
 * from. */
#include "trueport_policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *m_alloc(void *c, size_t n) { (void) c; return malloc(n); }
static void *m_realloc(void *c, void *p, size_t n) { (void) c; return realloc(p, n); }
static void  m_free(void *c, void *p) { (void) c; free(p); }
static const tp_alloc_t A = { m_alloc, m_realloc, m_free, NULL };

static const char *bodies[] = {
    "{\"model\":\"gpt-4o\",\"max_tokens\":500,\"messages\":[{\"role\":\"user\",\"content\":"
    "\"mail a@b.io, card 4111 1111 1111 1111, key sk-abcdefghijklmnopqrstuvwx, caf\\u00e9 \\ud83d\\ude00 password: hunter2\"}]}",
    "{\"model\":\"claude-3-5-sonnet\",\"max_tokens\":5,\"system\":\"s\",\"messages\":[{\"role\":\"user\",\"content\":["
    "{\"type\":\"text\",\"text\":\"AKIAIOSF\"},{\"type\":\"text\",\"text\":\"ODNN7EXAMPLE 10.0.0.1 123-45-6789\"}]}]}",
    "{\"contents\":[{\"parts\":[{\"text\":\"DE89 3704 0044 0532 0130 00 +1 (415) 555-2671 foo bar\"}]}]}",
    /* issue 13: tools, documents, batches, predictions */
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"description\":\"mail a@b.io\",\"parameters\":{\"properties\":{\"k\":"
    "{\"description\":\"key sk-abcdefghijklmnopqrstuvwx\"}}}}}],\"prediction\":{\"type\":\"content\",\"content\":\"10.0.0.1\"}}",
    "{\"requests\":[{\"custom_id\":\"r\",\"params\":{\"model\":\"claude-x\",\"max_tokens\":9,\"tools\":[{\"name\":\"t\","
    "\"description\":\"card 4111 1111 1111 1111\",\"input_schema\":{\"a@b.io\":1}}],\"messages\":[{\"role\":\"user\","
    "\"content\":[{\"source\":{\"data\":\"QUFB\",\"type\":\"base64\"},\"type\":\"document\",\"context\":\"123-45-6789\"},"
    "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"data\":\"password: hunter2\"}}]}]}}]}",
    "{\"batch\":{\"input_config\":{\"requests\":{\"requests\":[{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"a@b.io\"}]}],"
    "\"tools\":[{\"functionDeclarations\":[{\"name\":\"g\",\"description\":\"DE89 3704 0044 0532 0130 00\"}]}]}}]}}}}",
};

/* the provider of each fixed body */
static const int body_providers[] = {
    TP_OPENAI, TP_ANTHROPIC, TP_GOOGLE, TP_OPENAI, TP_ANTHROPIC, TP_GOOGLE
};

static const tp_policy_limits_t  tight = {
    8192, 4096, 4096, 1000, 100, 64, 0, 0
};

static void
check(tp_policy_set_t *set, int provider, const unsigned char *body, size_t len,
      const tp_policy_ctx_t *ctx)
{
    tp_policy_result_t   r;
    tp_prompt_t         *p, *p2;
    const unsigned char *out;
    size_t               outlen, i;
    char                 err[256];

    /* as the module: a URL model for Gemini only (Azure's is the deployment) */
    if (tp_prompt_parse(&A, provider, body, len, provider == TP_GOOGLE ? "gemini-pro" : NULL,
                        provider == TP_GOOGLE ? 10 : 0, &p, err, sizeof(err)) != TP_PROMPT_OK) {
        return;
    }
    if (tp_policy_eval(set, p, ctx, &r) != 0) {
        abort();
    }
    if ((r.action == TP_ACTION_BLOCK) != (r.blocked_by != NULL) || r.nviolations > TP_POLICY_MAX_VIOLATIONS) {
        abort();
    }
    if (r.unfinished != NULL
        && (r.action != TP_ACTION_BLOCK || r.blocked_by != r.unfinished
            || r.unfinished->action == TP_ACTION_LOG
            || strcmp(r.unfinished->detector, "unfinished") != 0 || r.unfinished->excerpt[0] == '\0'))
    {
        abort();
    }
    for (i = 0; i < r.nviolations; i++) {
        if (r.violations[i].action > r.action || strlen(r.violations[i].excerpt) >= TP_POLICY_EXCERPT_MAX) {
            abort();
        }
    }
    if (tp_prompt_redact(p, r.spans, r.nspans, &out, &outlen) != 0) {
        abort();
    }
    if (r.nspans) {
        if (tp_prompt_parse(&A, provider, out, outlen, NULL, 0, &p2, err, sizeof(err)) != TP_PROMPT_OK) {
            abort();
        }
        tp_prompt_destroy(p2);
    }
    tp_prompt_destroy(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char  *envs[] = { NULL, "production", "dev" };
    tp_policy_ctx_t           ctx;
    tp_policy_set_t          *set;
    const tp_policy_limits_t *lim;
    const uint8_t            *sep = NULL;
    size_t                    rlen, i, rsize;
    char                      err[256];
    int                       code, rc;

    if (size < 1) {
        return 0;
    }
    ctx.provider = data[0] % TP_PROVIDERS;
    ctx.env = envs[(data[0] >> 2) % 3];
    ctx.key_id = (data[0] & 0x40) ? "key-1" : NULL;
    lim = (data[0] & 0x80) ? &tight : &tp_policy_limits_default;
    data++;
    size--;

    for (i = 0; i + 4 <= size; i++) {
        if (memcmp(data + i, "\n--\n", 4) == 0) {
            sep = data + i;
            break;
        }
    }
    rlen = sep ? (size_t) (sep - data) : size;

    set = tp_policy_compile_limits(&A, (const char *) data, rlen, lim, &code, err, sizeof(err));
    if (set == NULL) {
        if (err[0] == '\0' || code == TP_POLICY_OK) {
            abort();
        }
        /* a lone rule object must be judged the same way */
        rc = tp_policy_check_rule((const char *) data, rlen, lim, &rsize, err, sizeof(err));
        if ((rc == TP_POLICY_OK && rsize > lim->rule_bytes) || (rc != TP_POLICY_OK && err[0] == '\0')) {
            abort();
        }
        return 0;
    }
    if (code != TP_POLICY_OK || tp_policy_size(set) > lim->set_bytes
        || tp_policy_regex_size(set) > lim->regex_bytes || tp_policy_regex_size(set) > tp_policy_size(set))
    {
        abort();
    }
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        check(set, body_providers[i], (const unsigned char *) bodies[i],
              strlen(bodies[i]), &ctx);
    }
    if (sep) {
        check(set, ctx.provider, sep + 4, size - rlen - 4, &ctx);
    }
    tp_policy_destroy(set);
    return 0;
}
