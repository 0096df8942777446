/* trueport_policy.h - policy rules: validation, compilation into a rule
 * set, and evaluation against a request's prompt (trueport_prompt.h).
 * Plain C, no nginx types; memory from the caller's allocator only.
 *
 * A rule, as the sidecar's policy API stores it:
 *   {"id", "name", "type", "config": {..}, "action", "enabled", "priority",
 *    "scope": {"providers": [..], "envs": [..], "key_ids": [..]}}
 * type and config:
 *   regex     {"patterns": ["..", ..]}          PCRE2, UTF + UCP, as written
 *                                               ((?i) for case-insensitive)
 *   keywords  {"keywords": ["..", ..]}          case-insensitive, whole words
 *   pii       {"detectors": [email, phone, credit_card, ssn, iban, ipv4,
 *                            secrets]}
 *   model     {"allow": [glob..], "deny": [glob..]}   '*' and '?', ASCII
 *                                               case-insensitive
 *   limits    {"max_prompt_chars": N, "max_output_tokens": N}
 * action: block, redact (regex, keywords, pii only), log. enabled defaults
 * to true, priority to 100; other fields (created_at ...) are ignored.
 *
 * Evaluation order: enabled rules by ascending priority (lower number
 * first), ties in the order of the array. A rule applies when every
 * non-empty scope list holds the request's value (an unknown env or key id
 * never matches a non-empty list). The first block match ends evaluation;
 * redact and log matches before it are all collected.
 *
 * Matching details:
 * - keywords: one Aho-Corasick pass over the case-folded text; a match
 *   needs a word boundary on each side where the keyword's own edge
 *   character is a word character ("ass" does not match "class"; "c++"
 *   matches "c++,").
 * - pii: hand-written linear scanners. email; phone (NANP with separators,
 *   or '+' and 8-15 digits); credit_card (13-19 digits, card prefixes,
 *   Luhn); ssn (ddd-dd-dddd, valid area/group/serial); iban (country, check
 *   digits, mod-97); ipv4 (dotted quad, octets <= 255); secrets (AWS access
 *   key ids, -----BEGIN ... PRIVATE KEY----- blocks, sk-/sk_live_/ghp_/
 *   github_pat_/xox?-/glpat-/AIza keys, JWTs).
 * - regex: compiled with UTF, UCP, MATCH_INVALID_UTF and
 *   NEVER_BACKSLASH_C, JIT-compiled, run under a match limit, a depth limit
 *   and a heap limit; regex work stops once an evaluation has run for
 *   TP_POLICY_REGEX_BUDGET_MS. A pattern that hits a limit counts as not
 *   matching from there on (fail open, so a bad rule cannot take the
 *   gateway down); result.match_errors and match_error_rule say so, for
 *   the module to log (or to fail closed, if it chooses). Empty matches
 *   are ignored.
 * - model: a violation when the model matches a deny glob, or when there is
 *   an allow list and the model (or no model at all) matches none of it.
 * - limits: max_prompt_chars counts Unicode characters of the extracted
 *   text; max_output_tokens is compared with the request's largest token
 *   limit (a request without one passes).
 *
 * Violations: one per rule and detector that matched (count = matches; for
 * block and log rules scanning stops at the first match, so count is 1),
 * with a masked excerpt that never holds the matched value:
 *   email j***@e***.com   credit_card 4111********1111   ssn ***-**-6789
 *   phone ******2671, +*******2671   iban DE89************3000
 *   ipv4 192.168.*.*   secrets sk-****…abcd, AKIA****…MPLE, eyJ****…wxyz,
 *   -----BEGIN RSA PRIVATE KEY-----****…
 *   regex, keyword  first and last character, '*' between (at most 8;
 *   four characters or fewer: ***)
 *   model  the model name   limits  "12001 > 12000"
 * (at most 12 '*' stand for the hidden characters). Excerpts are UTF-8,
 * control characters shown as '?'.
 * Redaction markers: [REDACTED:<detector>] for pii, [REDACTED:regex],
 * [REDACTED:keyword]. */
#ifndef TRUEPORT_POLICY_H
#define TRUEPORT_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "trueport_prompt.h"
#include "trueport_usage.h"

#define TP_POLICY_EXCERPT_MAX     64
#define TP_POLICY_MAX_VIOLATIONS  64      /* per evaluation; more are counted */
#define TP_POLICY_REGEX_BUDGET_MS 50
#define TP_POLICY_MATCH_LIMIT     200000
#define TP_POLICY_DEPTH_LIMIT     10000
#define TP_POLICY_HEAP_LIMIT_KB   4096

enum {
    TP_ACTION_NONE = 0,
    TP_ACTION_LOG,
    TP_ACTION_REDACT,
    TP_ACTION_BLOCK
};

typedef struct tp_policy_set_s tp_policy_set_t;

/* who sends the request; NULL / -1 = unknown */
typedef struct {
    int         provider;                /* TP_OPENAI ... */
    const char *env;
    const char *key_id;
} tp_policy_ctx_t;

typedef struct {
    const char *rule_id;                 /* copies owned by the prompt */
    const char *rule_name;
    const char *type;                    /* "regex", "keywords", "pii", ... */
    const char *detector;                /* "email" ..., "regex", "keyword",
                                            "model", "max_prompt_chars",
                                            "max_output_tokens" */
    int         action;                  /* TP_ACTION_* */
    unsigned    count;
    char        excerpt[TP_POLICY_EXCERPT_MAX];
} tp_violation_t;

typedef struct {
    int                   action;        /* the strongest action matched */
    const tp_violation_t *blocked_by;    /* when action is BLOCK */
    tp_violation_t       *violations;
    size_t                nviolations;
    size_t                dropped;       /* beyond TP_POLICY_MAX_VIOLATIONS */
    tp_span_t            *spans;         /* of redact rules: give them to */
    size_t                nspans;        /*   tp_prompt_redact() */
    unsigned              match_errors;  /* regex limits hit (see above) */
    const char           *match_error_rule;   /* id of the first such rule */
} tp_policy_result_t;

/* Compiles the enabled rules of a JSON array (or of {"items": [..]}, the
 * API's list, or {"rules": [..]}, the sidecar's internal load answer).
 * NULL with err ("rule <id>: <reason>") when a rule is invalid or memory
 * runs out. The set is read-only afterwards: any number of evaluations may
 * share it, from any thread. */
tp_policy_set_t *tp_policy_compile(const tp_alloc_t *a, const char *json,
                                   size_t len, char *err, size_t errlen);
void tp_policy_destroy(tp_policy_set_t *set);

/* malloc, realloc and free, for callers outside nginx (the sidecar, the
 * tools) */
extern const tp_alloc_t tp_alloc_libc;

/* Validates one rule object for the sidecar (0, or -1 and a reason such as
 * "config.patterns[1]: missing closing parenthesis at offset 4"). The id
 * is optional here. Uses malloc for the time of the call. */
int tp_policy_validate_rule(const char *json, size_t len, char *err,
                            size_t errlen);

/* Number of compiled rules that apply to ctx: 0 means the body need not be
 * read. */
size_t tp_policy_applicable(const tp_policy_set_t *set,
                            const tp_policy_ctx_t *ctx);

/* Evaluates the set; *out (and everything it points to) lives as long as
 * the prompt. 0, or -1 when out of memory (out then holds what was found
 * so far; fail closed). */
int tp_policy_eval(const tp_policy_set_t *set, tp_prompt_t *prompt,
                   const tp_policy_ctx_t *ctx, tp_policy_result_t *out);

const char *tp_policy_action_name(int action);

/* Glob with '*' and '?', ASCII case-insensitive; exposed for tests. */
int tp_policy_glob(const char *pat, const char *s);

#endif
