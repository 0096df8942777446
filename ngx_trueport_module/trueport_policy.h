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
 *   NEVER_BACKSLASH_C, JIT-compiled, run under PCRE2's match, depth and
 *   heap limits (TP_POLICY_*_LIMIT, per pcre2_match call) and a time budget
 *   of its own per rule (rule_ms), checked at every start position (a
 *   callout the engine puts before the pattern) and between calls, within
 *   a ceiling for the whole evaluation (eval_ms). A rule whose regex could
 *   not finish fails closed when it blocks or redacts: the result's action
 *   is BLOCK, unfinished (and blocked_by) point to a violation with
 *   detector "unfinished" and the reason as excerpt ("match limit", "depth
 *   limit", "heap limit", "JIT stack limit", "time budget", "evaluation
 *   time budget"). A log rule fails open: the same violation with action
 *   log, and evaluation goes on. Empty matches are ignored.
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

/*
 * Budgets. A rule's compiled size is what compiling it allocates, counted
 * by the engine itself: the parsed JSON of the rule, its rule_t, copies of
 * its strings and lists, the keyword automaton, PCRE2's compiled code
 * (PCRE2_INFO_SIZE) and JIT code (PCRE2_INFO_JITSIZE). A set's size is the
 * sum over its rules; memory the set holds after compilation is at most
 * that. Compilation stops as soon as a budget would be exceeded, before
 * the allocation that would exceed it (so the cost of a refused rule is
 * bounded by the budget too). Compiling regexes costs ~6-8 ns per byte of
 * PCRE2 code and again per byte of JIT code, several times anything else
 * (~1 ns a byte): their code and JIT code have a budget of their own
 * (regex_bytes, a set's, counted in set_bytes as well). With these figures
 * a maximal set compiles in a few ms (make bench-policy).
 */
#define TP_POLICY_SET_BYTES       (4u * 1024 * 1024)   /* a tenant's set */
#define TP_POLICY_RULE_BYTES      (1024u * 1024)       /* one rule */
#define TP_POLICY_REGEX_BYTES     (256u * 1024)        /* a set's regexes */
#define TP_POLICY_RULE_MS         10     /* regex time of one rule */
#define TP_POLICY_EVAL_MS         50     /* regex time of one evaluation */
#define TP_POLICY_MATCH_LIMIT     200000 /* PCRE2, per pcre2_match call */
#define TP_POLICY_DEPTH_LIMIT     10000
#define TP_POLICY_HEAP_LIMIT_KB   4096

typedef struct {
    size_t      set_bytes;               /* 0: no limit */
    size_t      rule_bytes;              /* 0: no limit */
    size_t      regex_bytes;             /* 0: no limit */
    uint32_t    match_limit;
    uint32_t    depth_limit;
    uint32_t    heap_limit_kb;
    uint32_t    rule_ms;                 /* 0: out of time at once (tests) */
    uint32_t    eval_ms;
} tp_policy_limits_t;

/* the TP_POLICY_* figures above */
extern const tp_policy_limits_t tp_policy_limits_default;

/* results of compilation and validation */
enum {
    TP_POLICY_OK = 0,
    TP_POLICY_EINVALID = -1,             /* the sidecar's 422 */
    TP_POLICY_ENOMEM = -2,
    TP_POLICY_EBUDGET = -3               /* a budget above: 422 / 503 */
};

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
    const tp_violation_t *unfinished;    /* a block or redact rule that could
                                            not finish: refuse the request */
    unsigned              match_errors;  /* regex limits hit (see above) */
    const char           *match_error_rule;   /* id of the first such rule */
} tp_policy_result_t;

/* Compiles the enabled rules of a JSON array (or of {"items": [..]}, the
 * API's list, or {"rules": [..]}, the sidecar's internal load answer)
 * under lim (NULL: tp_policy_limits_default). NULL with *code (may be
 * NULL) set to TP_POLICY_E* and err ("rule <id>: <reason>") when a rule is
 * invalid, a budget is exceeded or memory runs out. The set is read-only
 * afterwards: any number of evaluations may share it, from any thread. */
tp_policy_set_t *tp_policy_compile_limits(const tp_alloc_t *a,
                                          const char *json, size_t len,
                                          const tp_policy_limits_t *lim,
                                          int *code, char *err,
                                          size_t errlen);
/* the same with the default limits */
tp_policy_set_t *tp_policy_compile(const tp_alloc_t *a, const char *json,
                                   size_t len, char *err, size_t errlen);
void tp_policy_destroy(tp_policy_set_t *set);

/* The set's compiled size in bytes, and the part of it that is PCRE2 and
 * JIT code (see Budgets). */
size_t tp_policy_size(const tp_policy_set_t *set);
size_t tp_policy_regex_size(const tp_policy_set_t *set);

/* malloc, realloc and free, for callers outside nginx (the sidecar, the
 * tools) */
extern const tp_alloc_t tp_alloc_libc;

/* Validates one rule object for the sidecar: TP_POLICY_OK and *size (may
 * be NULL) its compiled size, or TP_POLICY_E* and a reason such as
 * "config.patterns[1]: missing closing parenthesis at offset 4". The id is
 * optional here; a disabled rule is compiled all the same. lim->rule_bytes
 * is its budget (NULL: the defaults). Uses malloc for the time of the
 * call. */
int tp_policy_check_rule(const char *json, size_t len,
                         const tp_policy_limits_t *lim, size_t *size,
                         char *err, size_t errlen);
/* the same with the default limits */
int tp_policy_validate_rule(const char *json, size_t len, char *err,
                            size_t errlen);

/* Number of compiled rules that apply to ctx: 0 means the body need not be
 * read. */
size_t tp_policy_applicable(const tp_policy_set_t *set,
                            const tp_policy_ctx_t *ctx);

/* Evaluates the set; *out (and everything it points to) lives as long as
 * the prompt. 0, or -1 when out of memory (out then holds what was found
 * so far; fail closed). A regex that could not finish is not an error:
 * see "regex" above. */
int tp_policy_eval(const tp_policy_set_t *set, tp_prompt_t *prompt,
                   const tp_policy_ctx_t *ctx, tp_policy_result_t *out);

const char *tp_policy_action_name(int action);

/* Glob with '*' and '?', ASCII case-insensitive; exposed for tests. */
int tp_policy_glob(const char *pat, const char *s);

#endif
