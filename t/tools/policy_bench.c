/* policy_bench.c - the policy engine's cost on bench/gateway.sh's scenario
 * b: its five rules (nothing matches) over its ~2 KB chat body. Prints ns
 * per call of prompt extraction (tp_prompt_parse) and of tp_policy_eval.
 * Deterministic enough for callgrind with a small N.
 *
 *   policy-bench [N] [body.json]      N defaults to 100000 */
#include "trueport_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* the rules as the sidecar serves them for scenario b (bench/gateway.sh) */
static char *
rules_json(void)
{
    static char  buf[8192];
    char        *o = buf;
    int          i;

    o += sprintf(o, "{\"rules\":["
        "{\"id\":\"r1\",\"name\":\"ticket ids\",\"type\":\"regex\","
        "\"config\":{\"patterns\":[\"(?i)\\\\bticket-\\\\d{6}\\\\b\"]},"
        "\"action\":\"log\",\"priority\":10},"
        "{\"id\":\"r2\",\"name\":\"codewords\",\"type\":\"keywords\","
        "\"config\":{\"keywords\":[");
    for (i = 1; i <= 50; i++) {
        o += sprintf(o, "%s\"codeword%d\"", i > 1 ? "," : "", i);
    }
    sprintf(o, "]},\"action\":\"block\",\"priority\":20},"
        "{\"id\":\"r3\",\"name\":\"contact data\",\"type\":\"pii\","
        "\"config\":{\"detectors\":[\"email\",\"phone\"]},"
        "\"action\":\"redact\",\"priority\":30},"
        "{\"id\":\"r4\",\"name\":\"payment and ids\",\"type\":\"pii\","
        "\"config\":{\"detectors\":[\"credit_card\",\"ssn\",\"iban\","
        "\"ipv4\"]},\"action\":\"block\",\"priority\":40},"
        "{\"id\":\"r5\",\"name\":\"credentials\",\"type\":\"pii\","
        "\"config\":{\"detectors\":[\"secrets\"]},\"action\":\"block\","
        "\"priority\":50}]}");
    return buf;
}


/* body-large.json of bench/gateway.sh */
static char *
bench_body(size_t *len)
{
    static const char l[] = "Here is a longer passage the assistant should "
        "condense into three bullet points, covering connection reuse, TLS "
        "session resumption and request buffering trade-offs. ";
    char   *b, *o;
    int     i;

    b = malloc(sizeof(l) * 11 + 512);
    if (b == NULL) {
        return NULL;
    }
    o = b + sprintf(b, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":"
                    "\"system\",\"content\":\"You are a helpful assistant.\"},"
                    "{\"role\":\"user\",\"content\":\"");
    for (i = 0; i < 11; i++) {
        o += sprintf(o, "%s", l);
    }
    o += sprintf(o, "\"}],\"temperature\":0.2,\"max_tokens\":256,"
                 "\"user\":\"bench\"}\n");
    *len = (size_t) (o - b);
    return b;
}


static char *
read_file(const char *path, size_t *len)
{
    FILE   *f = fopen(path, "rb");
    char   *b;
    long    n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0 || (b = malloc(n + 1)) == NULL
        || fread(b, 1, n, f) != (size_t) n)
    {
        if (f) {
            fclose(f);
        }
        return NULL;
    }
    fclose(f);
    *len = (size_t) n;
    return b;
}


static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}


int
main(int argc, char **argv)
{
    tp_policy_ctx_t     ctx = { TP_OPENAI, "production", NULL };
    tp_policy_result_t  res;
    tp_policy_set_t    *set;
    tp_prompt_t        *p;
    const char         *rules;
    char                err[512], *body;
    size_t              blen;
    long                n, i;
    double              t0, t_parse = 0, t_eval = 0;

    n = argc > 1 ? atol(argv[1]) : 100000;
    body = argc > 2 ? read_file(argv[2], &blen) : bench_body(&blen);
    if (n <= 0 || body == NULL) {
        fprintf(stderr, "usage: policy-bench [N] [body.json]\n");
        return 2;
    }
    rules = rules_json();
    set = tp_policy_compile(&tp_alloc_libc, rules, strlen(rules), err,
                            sizeof(err));
    if (set == NULL) {
        fprintf(stderr, "policy-bench: %s\n", err);
        return 1;
    }

    for (i = 0; i < n; i++) {
        t0 = now_ns();
        if (tp_prompt_parse(&tp_alloc_libc, TP_OPENAI,
                            (const unsigned char *) body, blen, NULL, 0, &p,
                            err, sizeof(err)) != TP_PROMPT_OK)
        {
            fprintf(stderr, "policy-bench: %s\n", err);
            return 1;
        }
        t_parse += now_ns() - t0;
        t0 = now_ns();
        if (tp_policy_eval(set, p, &ctx, &res) != 0) {
            fprintf(stderr, "policy-bench: out of memory\n");
            return 1;
        }
        t_eval += now_ns() - t0;
        if (i == 0) {
            printf("body %zu bytes, text %zu bytes, action %s, "
                   "%zu violations\n", blen, p->text_len,
                   tp_policy_action_name(res.action), res.nviolations);
        }
        tp_prompt_destroy(p);
    }
    printf("extract %.0f ns/call, eval %.0f ns/call (%ld calls)\n",
           t_parse / n, t_eval / n, n);
    tp_policy_destroy(set);
    free(body);
    return 0;
}
