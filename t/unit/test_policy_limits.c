/* test_policy_limits.c - the engine's compile budgets (a rule's and a set's
 * compiled size, counted before the allocation that would exceed them; the
 * regexes' code) and evaluation that cannot finish: block and redact rules
 * fail closed, log rules fail open and say so, each rule its own budget */
#include "../../sidecar/tests/tap.h"
#include "trueport_policy.h"

#include <stdlib.h>

int tap_n, tap_failed;

static char err[512];
static char buf[4 * 1024 * 1024];

static tp_policy_ctx_t CTX = { TP_OPENAI, "production", "key-1" };


/* a keyword rule of n distinct 10-letter words */
static size_t
kw_rule(char *o, const char *id, const char *action, size_t n)
{
    char   *p = o;
    size_t  i;

    p += sprintf(p, "{\"id\":\"%s\",\"name\":\"kw %s\",\"type\":\"keywords\","
                 "\"action\":\"%s\",\"config\":{\"keywords\":[", id, id, action);
    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s\"w%09zu\"", i ? "," : "", i * 7919);
    }
    p += sprintf(p, "]}}");
    return (size_t) (p - o);
}


static size_t
rule_size(const char *rule, const tp_policy_limits_t *lim, int *code)
{
    size_t size = 0;

    *code = tp_policy_check_rule(rule, strlen(rule), lim, &size, err, sizeof(err));
    return size;
}


static void
test_rule_budget(void)
{
    tp_policy_limits_t lim = tp_policy_limits_default;
    size_t             s10, s100, s1000, n;
    int                code;
    char              *p;

    kw_rule(buf, "a", "block", 10);
    s10 = rule_size(buf, NULL, &code);
    ok(code == TP_POLICY_OK && s10 > 1000, "check_rule: a small rule's size (%zu bytes)", s10);
    kw_rule(buf, "a", "block", 100);
    s100 = rule_size(buf, NULL, &code);
    kw_rule(buf, "a", "block", 1000);
    s1000 = rule_size(buf, NULL, &code);
    ok(s10 < s100 && s100 < s1000 && s1000 > 5 * s100,
       "check_rule: the size grows with the keywords (%zu, %zu, %zu)", s10, s100, s1000);
    is_int(tp_policy_validate_rule(buf, strlen(buf), err, sizeof(err)), TP_POLICY_OK,
           "validate_rule: 1000 keywords are within the default rule budget");

    lim.rule_bytes = s1000;
    rule_size(buf, &lim, &code);
    is_int(code, TP_POLICY_OK, "a rule of exactly the budget compiles");
    lim.rule_bytes = s1000 - 1;
    rule_size(buf, &lim, &code);
    is_int(code, TP_POLICY_EBUDGET, "one byte less: EBUDGET");
    ok(strstr(err, "over the budget of") && strstr(err, "bytes for one rule"),
       "the reason names the budget: %s", err);

    /* 20,000 keywords of 256 random bytes would be a table of ~1.4 GB: refused
     * from the counts, before any table exists */
    p = buf;
    p += sprintf(p, "{\"type\":\"keywords\",\"action\":\"block\",\"config\":{\"keywords\":[");
    for (n = 0; n < 2000; n++) {
        size_t j;

        *p++ = n ? ',' : ' ';
        *p++ = '"';
        for (j = 0; j < 250; j++) {
            *p++ = "abcdefghijklmnopqrstuvwxyz0123456789"[(n * 131 + j * 17 + j * j) % 36];
        }
        *p++ = '"';
    }
    sprintf(p, "]}}");
    rule_size(buf, NULL, &code);
    ok(code == TP_POLICY_EBUDGET && strstr(err, "config.keywords"),
       "2000 long keywords: refused by the rule budget: %s", err);

    /* the parsed JSON alone: a 2 MB name */
    p = buf + sprintf(buf, "{\"type\":\"pii\",\"action\":\"log\",\"config\":{\"detectors\":[\"email\"]},\"name\":\"");
    memset(p, 'n', 2000000);
    strcpy(p + 2000000, "\"}");
    rule_size(buf, NULL, &code);
    ok(code == TP_POLICY_EBUDGET && strstr(err, "JSON alone"), "a 2 MB name: EBUDGET (%s)", err);

    /* a regex's compiled and JIT code */
    strcpy(buf, "{\"type\":\"regex\",\"action\":\"block\",\"config\":{\"patterns\":[\"(?:[a-z]\\\\d){900}x\"]}}");
    n = rule_size(buf, NULL, &code);
    ok(code == TP_POLICY_OK && n > 900 * 4, "a regex counts its code (%zu bytes)", n);
    lim = tp_policy_limits_default;
    lim.regex_bytes = 1024;
    rule_size(buf, &lim, &code);
    ok(code == TP_POLICY_EBUDGET && strstr(err, "config.patterns[0]") && strstr(err, "bytes of code"),
       "over the regex budget: EBUDGET naming the pattern: %s", err);

    /* not a budget: invalid stays invalid */
    strcpy(buf, "{\"type\":\"regex\",\"action\":\"block\",\"config\":{\"patterns\":[\"(\"]}}");
    rule_size(buf, NULL, &code);
    is_int(code, TP_POLICY_EINVALID, "a bad pattern is EINVALID, not EBUDGET");
}


static void
test_set_budget(void)
{
    tp_policy_limits_t  lim = tp_policy_limits_default;
    tp_policy_set_t    *s;
    size_t              one, len, i;
    char                rule[64 * 1024], id[16];
    int                 code;

    kw_rule(rule, "r", "block", 300);
    one = rule_size(rule, NULL, &code);

    /* n copies: the set's size is the sum of its rules' */
    len = 0;
    buf[len++] = '[';
    for (i = 0; i < 8; i++) {
        snprintf(id, sizeof(id), "r%zu", i);
        len += kw_rule(buf + len, id, "block", 300);
        buf[len++] = ',';
    }
    /* a disabled rule costs its JSON only */
    len += sprintf(buf + len, "{\"id\":\"off\",\"enabled\":false,\"type\":\"keywords\",\"action\":\"log\","
                   "\"config\":{\"keywords\":[\"x\"]}}]");
    s = tp_policy_compile_limits(&tp_alloc_libc, buf, len, NULL, &code, err, sizeof(err));
    ok(s && code == TP_POLICY_OK, "8 rules compile within the default set budget");
    ok(tp_policy_size(s) >= 8 * one && tp_policy_size(s) < 8 * one + 4096,
       "the set's size is its rules' sizes (%zu vs 8 x %zu)", tp_policy_size(s), one);
    is_int(tp_policy_regex_size(s), 0, "no regex code");
    tp_policy_destroy(s);

    lim.set_bytes = 8 * one + 4096;
    s = tp_policy_compile_limits(&tp_alloc_libc, buf, len, &lim, &code, err, sizeof(err));
    ok(s != NULL, "a set budget just above the 8 rules: compiles");
    tp_policy_destroy(s);
    lim.set_bytes = 7 * one + one / 2;
    s = tp_policy_compile_limits(&tp_alloc_libc, buf, len, &lim, &code, err, sizeof(err));
    ok(s == NULL && code == TP_POLICY_EBUDGET && strncmp(err, "rule r7: ", 9) == 0
       && strstr(err, "bytes for a rule set"),
       "7.5 rules' worth: EBUDGET naming the eighth rule: %s", err);

    /* the regexes of a set have their own budget */
    len = sprintf(buf, "[{\"id\":\"a\",\"type\":\"regex\",\"action\":\"log\",\"config\":{\"patterns\":[\"(?:[a-z]\\\\d){900}x\"]}},"
                  "{\"id\":\"b\",\"type\":\"regex\",\"action\":\"log\",\"config\":{\"patterns\":[\"(?:[a-z]\\\\d){900}y\"]}}]");
    s = tp_policy_compile_limits(&tp_alloc_libc, buf, len, NULL, &code, err, sizeof(err));
    ok(s && tp_policy_regex_size(s) > 0 && tp_policy_regex_size(s) <= tp_policy_size(s),
       "regex code counted in the set (%zu of %zu bytes)", tp_policy_regex_size(s), tp_policy_size(s));
    lim = tp_policy_limits_default;
    lim.regex_bytes = tp_policy_regex_size(s) - 1;
    tp_policy_destroy(s);
    s = tp_policy_compile_limits(&tp_alloc_libc, buf, len, &lim, &code, err, sizeof(err));
    ok(s == NULL && code == TP_POLICY_EBUDGET && strncmp(err, "rule b: ", 8) == 0,
       "one byte below the two regexes' code: the second is refused: %s", err);
}


/* evaluation of txt under lim */
static tp_prompt_t        *P;
static tp_policy_result_t  R;

static void
run(const char *rules, const tp_policy_limits_t *lim, const char *txt)
{
    tp_policy_set_t *s;
    char             body[300000];
    int              code;

    tp_prompt_destroy(P);
    P = NULL;
    memset(&R, 0, sizeof(R));
    s = tp_policy_compile_limits(&tp_alloc_libc, rules, strlen(rules), lim, &code, err, sizeof(err));
    if (s == NULL) {
        printf("#   compile failed: %s\n", err);
        return;
    }
    snprintf(body, sizeof(body), "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", txt);
    if (tp_prompt_parse(&tp_alloc_libc, TP_OPENAI, (const unsigned char *) body, strlen(body), NULL, 0, &P,
                        err, sizeof(err)) != TP_PROMPT_OK
        || tp_policy_eval(s, P, &CTX, &R) != 0)
    {
        printf("#   eval failed: %s\n", err);
    }
    /* the violations live with the prompt, the set may go */
    tp_policy_destroy(s);
}


static const tp_violation_t *
viol(const char *rule_id)
{
    size_t i;

    for (i = 0; i < R.nviolations; i++) {
        if (strcmp(R.violations[i].rule_id, rule_id) == 0) {
            return &R.violations[i];
        }
    }
    return NULL;
}


#define EVIL(id, action) \
    "{\"id\":\"" id "\",\"name\":\"evil " id "\",\"type\":\"regex\",\"action\":\"" action "\"," \
    "\"config\":{\"patterns\":[\"(a+)+$\"]}}"
#define SLOW(id, action) \
    "{\"id\":\"" id "\",\"type\":\"regex\",\"action\":\"" action "\"," \
    "\"config\":{\"patterns\":[\"(?:a|b){1,200}c\"]}}"
#define PLAIN(id, action, word) \
    "{\"id\":\"" id "\",\"type\":\"regex\",\"action\":\"" action "\",\"config\":{\"patterns\":[\"" word "\"]}}"

static void
test_unfinished(void)
{
    tp_policy_limits_t    lim = tp_policy_limits_default;
    const tp_violation_t *v;
    static char           evil[200000];
    char                  rules[4096];

    /* aaaa...! : (a+)+$ backtracks at every start position */
    memset(evil, 'a', 60000);
    strcpy(evil + 60000, "! and a secret");

    /* PCRE2's match limit, deterministically: a small one, time enough */
    lim.match_limit = 10000;
    lim.rule_ms = lim.eval_ms = 100000;
    run("[" EVIL("e", "block") "]", &lim, evil);
    v = R.unfinished;
    ok(R.action == TP_ACTION_BLOCK && v && R.blocked_by == v, "block rule, match limit: refused");
    ok(v && strcmp(v->detector, "unfinished") == 0 && strcmp(v->excerpt, "match limit") == 0
       && v->action == TP_ACTION_BLOCK && strcmp(v->rule_id, "e") == 0 && strcmp(v->type, "regex") == 0,
       "the violation: rule e, detector unfinished, reason \"%s\"", v ? v->excerpt : "-");
    is_int(R.match_errors, 1, "match_errors counts it");

    run("[" EVIL("e", "redact") "]", &lim, evil);
    ok(R.action == TP_ACTION_BLOCK && R.unfinished && R.unfinished->action == TP_ACTION_REDACT,
       "redact rule, match limit: refused, not passed unredacted");

    run("[" EVIL("e", "log") "," PLAIN("s", "redact", "secret") "]", &lim, evil);
    v = viol("e");
    ok(R.action == TP_ACTION_REDACT && R.unfinished == NULL && R.nspans == 1,
       "log rule, match limit: fails open, the later redact rule still runs");
    ok(v && v->action == TP_ACTION_LOG && strcmp(v->detector, "unfinished") == 0
       && strcmp(v->excerpt, "match limit") == 0, "the log rule records that it did not finish");

    /* the time budget, deterministically: none at all */
    lim = tp_policy_limits_default;
    lim.rule_ms = 0;
    run("[" PLAIN("p", "block", "zebra") "]", &lim, "no stripes here");
    ok(R.action == TP_ACTION_BLOCK && R.unfinished && strcmp(R.unfinished->excerpt, "time budget") == 0,
       "rule_ms 0: a block regex could not run: refused (\"%s\")", R.unfinished ? R.unfinished->excerpt : "-");
    run("[" PLAIN("p", "log", "zebra") ",{\"id\":\"k\",\"type\":\"keywords\",\"action\":\"block\","
        "\"config\":{\"keywords\":[\"stripes\"]}}]", &lim, "no stripes here");
    ok(R.action == TP_ACTION_BLOCK && R.unfinished == NULL && R.blocked_by
       && strcmp(R.blocked_by->rule_id, "k") == 0 && viol("p") && viol("p")->action == TP_ACTION_LOG,
       "rule_ms 0: the log regex fails open, the keyword rule (no regex) blocks");
    lim = tp_policy_limits_default;
    lim.eval_ms = 0;
    run("[" PLAIN("p", "redact", "zebra") "]", &lim, "no stripes here");
    ok(R.unfinished && strcmp(R.unfinished->excerpt, "evaluation time budget") == 0,
       "eval_ms 0: \"evaluation time budget\"");

    /* a block rule that matched before it ran out: a plain block */
    lim = tp_policy_limits_default;
    lim.match_limit = 10000;
    run("[{\"id\":\"m\",\"type\":\"regex\",\"action\":\"block\",\"config\":{\"patterns\":[\"secret\",\"(a+)+$\"]}}]",
        &lim, evil);
    ok(R.action == TP_ACTION_BLOCK && R.unfinished == NULL && strcmp(R.blocked_by->detector, "regex") == 0,
       "a block rule whose first pattern matched: blocked by the match");

    /* each rule its own time: an early rule that runs out of its budget
     * leaves the later ones theirs. SLOW costs ~0.5 us at each of the 60,000
     * start positions (~30 ms in all, far above rule_ms) and never reaches
     * PCRE2's limits: only the clock stops it */
    lim = tp_policy_limits_default;
    lim.rule_ms = 5;
    lim.eval_ms = 100000;
    snprintf(rules, sizeof(rules), "[%s,%s,%s]", SLOW("e1", "log"), SLOW("e2", "log"),
             PLAIN("s", "block", "secret"));
    run(rules, &lim, evil);
    ok(viol("e1") && strcmp(viol("e1")->excerpt, "time budget") == 0
       && viol("e2") && strcmp(viol("e2")->excerpt, "time budget") == 0,
       "two log rules that backtrack: each stopped by its own time budget");
    ok(R.action == TP_ACTION_BLOCK && R.unfinished == NULL && R.blocked_by
       && strcmp(R.blocked_by->rule_id, "s") == 0,
       "the block rule after them still had its budget: blocked by its match");

    /* the evaluation's ceiling: once it is spent, later block rules refuse */
    lim.eval_ms = 8;
    run(rules, &lim, evil);
    ok(R.action == TP_ACTION_BLOCK && R.unfinished && strcmp(R.unfinished->rule_id, "s") == 0
       && strcmp(R.unfinished->excerpt, "evaluation time budget") == 0,
       "the evaluation's ceiling spent by the log rules: the block rule fails closed (%s)",
       R.unfinished ? R.unfinished->excerpt : "-");

    tp_prompt_destroy(P);
    P = NULL;
}


int
main(void)
{
    test_rule_budget();
    test_set_budget();
    test_unfinished();

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
