/* policy_check.c - compiles a rule set the way the nginx module does
 * (tp_policy_compile), and optionally evaluates one prompt against it.
 * t/060-policies.t feeds it the sidecar's /internal/v1/policies answer.
 *
 *   policy-check < rules.json                      "ok N applicable"
 *   policy-check [-p provider] [-e env] [-k key_id] TEXT < rules.json
 *       "action <block|redact|log|none>" and one line per violation:
 *       "violation <rule name> <type> <detector> <action>"
 * Exit status: 0, 1 when the set does not compile, 2 on usage errors. */
#include "trueport_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INPUT (64u * 1024 * 1024)


static char *
read_all(FILE *f, size_t *len)
{
    char   *buf = NULL, *nb;
    size_t  cap = 0, n = 0, got;

    for ( ;; ) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > MAX_INPUT || (nb = realloc(buf, cap + 1)) == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}


/* {"model":"gpt-4o","messages":[{"role":"user","content":TEXT}]} */
static char *
chat_body(const char *text, size_t *len)
{
    static const char  hex[] = "0123456789abcdef";
    const char        *head = "{\"model\":\"gpt-4o\",\"messages\":"
                              "[{\"role\":\"user\",\"content\":\"";
    char              *body, *o;
    unsigned char      c;

    body = malloc(strlen(head) + 6 * strlen(text) + 8);
    if (body == NULL) {
        return NULL;
    }
    o = body + sprintf(body, "%s", head);
    for (; *text; text++) {
        c = (unsigned char) *text;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char) c;
        } else if (c < 0x20) {
            o += sprintf(o, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        } else {
            *o++ = (char) c;
        }
    }
    o += sprintf(o, "\"}]}");
    *len = (size_t) (o - body);
    return body;
}


int
main(int argc, char **argv)
{
    tp_policy_ctx_t     ctx = { -1, NULL, NULL };
    tp_policy_result_t  res;
    tp_policy_set_t    *set;
    tp_prompt_t        *prompt;
    char                err[512], *json, *body;
    size_t              len, blen, i;
    int                 opt, rc = 0;

    while ((opt = getopt(argc, argv, "p:e:k:")) != -1) {
        switch (opt) {
        case 'p':
            ctx.provider = tp_provider_parse(optarg, strlen(optarg));
            break;
        case 'e':
            ctx.env = optarg;
            break;
        case 'k':
            ctx.key_id = optarg;
            break;
        default:
            fprintf(stderr, "usage: policy-check [-p provider] [-e env]"
                    " [-k key_id] [TEXT] < rules.json\n");
            return 2;
        }
    }

    json = read_all(stdin, &len);
    if (json == NULL) {
        fprintf(stderr, "policy-check: cannot read the rules\n");
        return 2;
    }
    set = tp_policy_compile(&tp_alloc_libc, json, len, err, sizeof(err));
    if (set == NULL) {
        printf("error %s\n", err);
        free(json);
        return 1;
    }

    if (optind >= argc) {
        printf("ok %zu applicable\n", tp_policy_applicable(set, &ctx));
        goto done;
    }

    body = chat_body(argv[optind], &blen);
    if (body == NULL
        || tp_prompt_parse(&tp_alloc_libc,
                           ctx.provider < 0 ? TP_OPENAI : ctx.provider,
                           (const unsigned char *) body, blen, NULL, 0,
                           &prompt, err, sizeof(err)) != TP_PROMPT_OK)
    {
        fprintf(stderr, "policy-check: cannot parse the prompt\n");
        free(body);
        rc = 2;
        goto done;
    }
    if (tp_policy_eval(set, prompt, &ctx, &res) != 0) {
        fprintf(stderr, "policy-check: out of memory\n");
        rc = 2;
    } else {
        printf("action %s\n", tp_policy_action_name(res.action));
        for (i = 0; i < res.nviolations; i++) {
            printf("violation %s %s %s %s\n",
                   res.violations[i].rule_name ? res.violations[i].rule_name
                                               : "-",
                   res.violations[i].type, res.violations[i].detector,
                   tp_policy_action_name(res.violations[i].action));
        }
    }
    tp_prompt_destroy(prompt);
    free(body);

done:
    tp_policy_destroy(set);
    free(json);
    return rc;
}
