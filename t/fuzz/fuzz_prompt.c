/* fuzz_prompt.c - libFuzzer target for request-body parsing, evaluation
 * with a fixed rule set and redaction. Byte 0 picks the provider (its low
 * two bits) and the mode: bodies, with byte 1 picking one of the
 * provider's endpoints (its URL model goes to the parse: Gemini's model,
 * Azure's deployment), or paths for tp_prompt_endpoint and
 * tp_stateless_endpoint. The rest is the
 * body (or the path). t/fuzz/fuzz_prompt.dict holds the keys the walk
 * knows. Checks: the prompt's invariants, that yajl accepts whatever
 * the scanner accepts, and that every redacted body is valid JSON again
 * (for both parsers) whose text is exactly the original text with each
 * redacted run replaced by a marker. (Re-evaluating is no oracle: a marker
 * is a word boundary, so a keyword may match next to it.) */
#include "trueport_policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

static void *m_alloc(void *c, size_t n) { (void) c; return malloc(n); }
static void *m_realloc(void *c, void *p, size_t n) { (void) c; return realloc(p, n); }
static void  m_free(void *c, void *p) { (void) c; free(p); }
static const tp_alloc_t A = { m_alloc, m_realloc, m_free, NULL };

static const char rules[] =
    "[{\"id\":\"pii\",\"type\":\"pii\",\"action\":\"redact\",\"config\":{\"detectors\":"
    "[\"email\",\"phone\",\"credit_card\",\"ssn\",\"iban\",\"ipv4\",\"secrets\"]}},"
    " {\"id\":\"kw\",\"type\":\"keywords\",\"action\":\"redact\",\"config\":{\"keywords\":"
    "[\"secret\",\"ab\",\"a\",\"c++\",\"new york\",\"caf\\u00e9\",\"\\u5bc6\\u7801\",\"x y\"]}},"
    " {\"id\":\"re\",\"type\":\"regex\",\"action\":\"redact\",\"config\":{\"patterns\":"
    "[\"[0-9]{6}\",\"(?i)pass(word)?\\\\s*[:=]\\\\s*\\\\S+\",\"\\\\p{Greek}+\"]}},"
    " {\"id\":\"m\",\"type\":\"model\",\"action\":\"log\",\"config\":{\"allow\":[\"gpt-*\",\"claude-?-*\"]}},"
    " {\"id\":\"l\",\"type\":\"limits\",\"action\":\"log\",\"config\":{\"max_prompt_chars\":50,\"max_output_tokens\":100}}]";

static tp_policy_set_t *set;

/* an endpoint of each kind and its URL model */
static const struct { int provider; const char *path, *model; } eps[] = {
    { TP_OPENAI, "chat/completions", NULL },
    { TP_OPENAI, "responses", NULL },
    { TP_OPENAI, "completions", NULL },
    { TP_OPENAI, "embeddings", NULL },
    { TP_OPENAI, "threads/t1/runs", NULL },
    { TP_OPENAI, "v1/moderations", NULL },
    { TP_AZURE, "chat/completions", "my-deployment" },
    { TP_AZURE, "embeddings", "gpt-x" },
    { TP_ANTHROPIC, "messages", NULL },
    { TP_ANTHROPIC, "messages/batches", NULL },
    { TP_ANTHROPIC, "messages/count_tokens", NULL },
    { TP_ANTHROPIC, "complete", "claude-x" },
    { TP_GOOGLE, "models/gemini-x:generateContent", "models/gemini-x" },
    { TP_GOOGLE, "models/gemini-x:batchGenerateContent", "models/gemini-x" },
    { TP_GOOGLE, "models/e:asyncBatchEmbedContent", "models/e" },
    { TP_GOOGLE, "models/e:batchEmbedContents", "models/e" },
    { TP_GOOGLE, "models/gemini-x:countTokens", "gemini-x" },
    { TP_GOOGLE, "cachedContents", NULL },
};

#define NEPS  (sizeof(eps) / sizeof(eps[0]))

/* tp_prompt_endpoint on arbitrary bytes: a pattern it returns matches
 * again without the leading slashes and version it ignored */
static void
fuzz_path(const uint8_t *data, size_t size)
{
    const char *e, *e2;
    size_t      i;
    int         pr;

    for (pr = 0; pr <= TP_PROVIDERS; pr++) {
        e = tp_prompt_endpoint(pr, data, size);
        if (e == NULL) {
            continue;
        }
        if (pr == TP_PROVIDERS || strchr(e, '*') == NULL) {
            /* an exact pattern is the path's own tail */
            if (pr == TP_PROVIDERS || size < strlen(e)
                || memcmp(data + size - strlen(e), e, strlen(e)) != 0)
            {
                abort();
            }
        }
        for (i = 0; i < size && data[i] == '/'; i++) {
        }
        e2 = tp_prompt_endpoint(pr, data + i, size - i);
        if (e2 != e) {
            abort();
        }
    }
    /* what a shared credential may reach: a GET reaches at least what any
     * method does, the same without the leading slashes */
    for (pr = 0; pr <= TP_PROVIDERS; pr++) {
        e = tp_stateless_endpoint(pr, 0, data, size);
        e2 = tp_stateless_endpoint(pr, 1, data, size);
        if ((e != NULL && e2 != e) || (pr == TP_PROVIDERS && e2 != NULL)) {
            abort();
        }
        for (i = 0; i < size && data[i] == '/'; i++) {
        }
        if (tp_stateless_endpoint(pr, 1, data + i, size - i) != e2) {
            abort();
        }
    }
}

/* markers become one \x01, and runs of \x01 one */
static size_t
normalize(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0, k;

    while (i < n) {
        if (n - i > 11 && memcmp(in + i, "[REDACTED:", 10) == 0) {
            for (k = i + 10; k < n && ((in[k] >= 'a' && in[k] <= 'z')
                                       || (in[k] >= '0' && in[k] <= '9')
                                       || in[k] == '_'); k++)
            {
            }
            if (k > i + 10 && k < n && in[k] == ']') {
                if (o == 0 || out[o - 1] != 1) {
                    out[o++] = 1;
                }
                i = k + 1;
                continue;
            }
        }
        if (in[i] != 1 || o == 0 || out[o - 1] != 1) {
            out[o++] = in[i];
        }
        i++;
    }
    return o;
}

/* the text the redacted body should have */
static size_t
expected(const tp_prompt_t *p, const tp_policy_result_t *r, unsigned char *out)
{
    unsigned char *mask = calloc(p->text_len + 1, 2), *inseg = mask + p->text_len + 1;
    size_t         i, j, o = 0;

    for (i = 0; i < r->nspans; i++) {
        memset(mask + r->spans[i].start, 1, r->spans[i].end - r->spans[i].start);
    }
    for (i = 0; i < p->nsegs; i++) {
        memset(inseg + p->segs[i].text_off, 1, p->segs[i].text_len);
    }
    for (j = 0; j < p->text_len; j++) {
        if (inseg[j] && mask[j]) {
            if (o == 0 || out[o - 1] != 1) {
                out[o++] = 1;
            }
        } else {
            out[o++] = p->text[j];
        }
    }
    free(mask);
    return o;
}

static int
yajl_accepts(const unsigned char *buf, size_t len)
{
    char     *s = malloc(len + 1);
    yajl_val  v;

    memcpy(s, buf, len);
    s[len] = '\0';
    v = yajl_tree_parse(s, NULL, 0);
    free(s);
    yajl_tree_free(v);
    return v != NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_policy_ctx_t      ctx = { 0, "production", "k" };
    tp_policy_result_t   r;
    tp_prompt_t         *p, *p2;
    const unsigned char *out;
    size_t               outlen, i, um_len;
    char                 err[256];
    const char          *url_model;
    int                  provider, rc;

    if (set == NULL) {
        set = tp_policy_compile(&A, rules, sizeof(rules) - 1, err, sizeof(err));
        if (set == NULL) {
            abort();
        }
    }
    if (size < 1) {
        return 0;
    }
    if (((data[0] >> 2) & 3) == 3) {
        fuzz_path(data + 1, size - 1);
        return 0;
    }
    provider = data[0] % TP_PROVIDERS;
    url_model = "gpt-x";
    if (size >= 2 && (data[0] & 0x10)) {
        /* an endpoint of any provider: its provider and URL model */
        i = data[1] % NEPS;
        provider = eps[i].provider;
        url_model = eps[i].model;
        if (tp_prompt_endpoint(provider, (const unsigned char *) eps[i].path,
                               strlen(eps[i].path)) == NULL)
        {
            abort();
        }
        data++;
        size--;
    }
    ctx.provider = provider;
    data++;
    size--;
    um_len = url_model ? strlen(url_model) : 0;

    rc = tp_prompt_parse(&A, provider, data, size, url_model, um_len, &p, err, sizeof(err));
    if (rc != TP_PROMPT_OK) {
        if (p != NULL || err[0] == '\0') {
            abort();
        }
        return 0;
    }
    /* yajl (unlike us) reads NUL-terminated text only */
    if (memchr(data, '\0', size) == NULL && !yajl_accepts(data, size)) {
        abort();
    }
    if (p->text_len > size || p->chars > p->text_len || p->text[p->text_len] != '\0') {
        abort();
    }
    for (i = 0; i < p->nsegs; i++) {
        const tp_segment_t *s = &p->segs[i];
        if ((size_t) s->raw_off + s->raw_len > size || s->text_len > s->raw_len
            || (size_t) s->text_off + s->text_len > p->text_len
            || (i > 0 && s->raw_off < p->segs[i - 1].raw_off + p->segs[i - 1].raw_len)
            || s->raw_off == 0 || data[s->raw_off - 1] != '"'
            || (size_t) s->raw_off + s->raw_len >= size || data[s->raw_off + s->raw_len] != '"'
            || (i > 0 && s->text_off < p->segs[i - 1].text_off + p->segs[i - 1].text_len))
        {
            abort();            /* a segment is a whole string, in order */
        }
    }
    /* chars and non_ascii (counted a word at a time) against the bytes */
    {
        size_t cps = 0, k;
        int    high = 0;

        for (i = 0; i < p->nsegs; i++) {
            for (k = p->segs[i].text_off; k < p->segs[i].text_off + p->segs[i].text_len; k++) {
                cps += (p->text[k] & 0xc0) != 0x80;
                high |= p->text[k] >= 0x80;
            }
        }
        if (cps != p->chars || high != p->non_ascii) {
            abort();
        }
    }

    if (tp_policy_eval(set, p, &ctx, &r) != 0) {
        abort();
    }
    for (i = 0; i < r.nspans; i++) {
        if (r.spans[i].start >= r.spans[i].end || r.spans[i].end > p->text_len) {
            abort();
        }
    }
    for (i = 0; i < r.nviolations; i++) {
        if (strlen(r.violations[i].excerpt) >= TP_POLICY_EXCERPT_MAX) {
            abort();
        }
    }
    if (tp_prompt_redact(p, r.spans, r.nspans, &out, &outlen) != 0) {
        abort();
    }
    if (r.nspans > 0) {
        rc = tp_prompt_parse(&A, provider, out, outlen, url_model, um_len, &p2, err, sizeof(err));
        if (rc != TP_PROMPT_OK || !yajl_accepts(out, outlen)) {
            abort();
        }
        if (p2->nsegs != p->nsegs) {
            abort();
        }
        {
            unsigned char *e = malloc(p->text_len + 1), *en = malloc(p->text_len + 1),
                          *an = malloc(p2->text_len + 1);
            size_t         el = expected(p, &r, e);

            el = normalize(e, el, en);
            if (el != normalize(p2->text, p2->text_len, an) || memcmp(en, an, el) != 0) {
                abort();
            }
            free(e);
            free(en);
            free(an);
        }
        tp_prompt_destroy(p2);
    }
    tp_prompt_destroy(p);
    return 0;
}
