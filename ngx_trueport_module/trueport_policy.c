/* trueport_policy.c - policy rules: validation, compilation, evaluation.
 *
 * Rules are parsed into a small tree (trueport_prompt.c's scanner), checked
 * field by field with a reason for the sidecar's 422, and compiled once:
 * PCRE2 patterns JIT-compiled, keyword lists into an Aho-Corasick automaton
 * over byte classes, glob lists and limits copied. Evaluation runs every
 * detector as one linear pass over the prompt's text; only regexes can be
 * costly, and they run under PCRE2's limits and a time budget per rule.
 *
 * Every byte a rule costs is counted as it is allocated (cget, charge) and
 * checked against the budgets before the allocation is made: a keyword
 * list that would expand to tens of MB is refused before its table
 * exists. The parsed JSON lives in a scratch arena freed after
 * compilation; what a rule keeps is copied into the set's arena. */
#include "trueport_policy.h"
#include "trueport_scan.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_RULES        10000
#define MAX_PATTERNS     64
#define MAX_PATTERN_LEN  4096
#define CALLOUT          "(?C1)"    /* before every pattern: see re_callout */
#define CALLOUT_EVERY    16         /* start positions between clock reads */
#define MAX_KEYWORDS     20000
#define MAX_KEYWORD_LEN  256
#define MAX_AC_BYTES     (32u * 1024 * 1024)   /* transition table */
#define MAX_LIST         10000                  /* globs, scope entries */
#define DEFAULT_PRIORITY 100
#define ALIGN16(n)       (((n) + 15) & ~(size_t) 15)
#define DOM_SLACK        4096       /* the envelope around the rules */

enum { T_REGEX = 0, T_KEYWORDS, T_PII, T_MODEL, T_LIMITS, T_COUNT };

static const char *type_names[T_COUNT] = {
    "regex", "keywords", "pii", "model", "limits"
};

enum {
    D_EMAIL = 0, D_PHONE, D_CARD, D_SSN, D_IBAN, D_IPV4, D_SECRETS, D_COUNT
};

static const char *det_names[D_COUNT] = {
    "email", "phone", "credit_card", "ssn", "iban", "ipv4", "secrets"
};


/* ---- compiled forms ---- */

typedef struct {
    uint8_t   cls[256];          /* byte -> class, 0: in no keyword */
    uint32_t  ncls;
    uint32_t  nstates;
    int32_t  *delta;             /* nstates x ncls, a full DFA */
    uint16_t *delta16;           /* the same when it fits: half the cache */
    uint8_t   root_stay[256];    /* from the start state this byte leads
                                    back to it: skip it without the table */
    uint8_t   exits[4];          /* the bytes that do not, when at most 4 */
    uint32_t  nexits;            /*   (else 0): found by tp_find_any4() */
    int32_t  *out;               /* keyword ending in this state, or -1 */
    int32_t  *dict;              /* next state with an output on the
                                    failure chain, or -1 */
    int32_t  *hit;               /* first state with an output: self or dict */
    uint32_t *kwlen;
    uint8_t  *kwedge;            /* 1: boundary needed before, 2: after */
} ac_t;

typedef struct {
    char       *id;
    char       *name;
    int         type;
    size_t      bytes;           /* compiled size (trueport_policy.h) */
    int         action;
    long        priority;
    size_t      order;

    unsigned    providers;       /* bit per provider, 0: all */
    char      **envs;
    size_t      nenvs;
    char      **keys;
    size_t      nkeys;

    pcre2_code **re;
    size_t       nre;
    ac_t        *ac;
    unsigned     detectors;      /* bit per D_* */
    char       **allow;
    size_t       nallow;
    char       **deny;
    size_t       ndeny;
    int64_t      max_chars;      /* -1: no limit */
    int64_t      max_out;
} rule_t;

struct tp_policy_set_s {
    tp_arena_t              arena;
    pcre2_general_context  *gctx;
    pcre2_compile_context  *cctx;
    tp_policy_limits_t      lim;
    rule_t                 *rules;
    size_t                  nrules;
    size_t                  rules_cap;    /* slots, zeroed: destroy frees
                                             the patterns of nrules + 1 */
    size_t                  bytes;        /* compiled size */
    size_t                  re_bytes;     /* of it PCRE2 and JIT code */
};


const tp_policy_limits_t  tp_policy_limits_default = {
    TP_POLICY_SET_BYTES, TP_POLICY_RULE_BYTES, TP_POLICY_REGEX_BYTES,
    TP_POLICY_MATCH_LIMIT,
    TP_POLICY_DEPTH_LIMIT, TP_POLICY_HEAP_LIMIT_KB, TP_POLICY_RULE_MS,
    TP_POLICY_EVAL_MS
};


/* ---- PCRE2 memory through tp_alloc_t ---- */

static void *
re_malloc(PCRE2_SIZE n, void *data)
{
    const tp_alloc_t *a = data;

    return a->alloc(a->ctx, n);
}


static void
re_free(void *p, void *data)
{
    const tp_alloc_t *a = data;

    if (p != NULL) {
        a->free(a->ctx, p);
    }
}


/* ---- a JSON tree for rules ---- */

enum { JV_NULL = 0, JV_FALSE, JV_TRUE, JV_NUM, JV_STR, JV_ARR, JV_OBJ };

typedef struct jv_s jv_t;

struct jv_s {
    int     type;
    char   *s;                   /* string (decoded) or number text */
    size_t  len;
    char   *key;                 /* member name in an object */
    size_t  klen;
    jv_t   *child, *last, *next;
    size_t  n;
    size_t  bytes;               /* an object or array: what it and all
                                    inside it took, for the rule's size */
};

typedef struct {
    tp_arena_t *ar;
    jv_t       *stack[TP_JSON_MAX_DEPTH];
    int         depth;
    jv_t       *root;
    char       *key;
    size_t      klen;
    size_t      bytes, limit;    /* limit 0: none */
} dom_t;

#define DOM_ENOMEM  (-20)
#define DOM_EBUDGET (-21)


/* counted; NULL past the limit (the parse then stops with DOM_EBUDGET) */
static void *
dom_alloc(dom_t *d, size_t n)
{
    d->bytes += ALIGN16(n ? n : 1);
    if (d->limit && d->bytes > d->limit) {
        return NULL;
    }
    return tp_arena_alloc(d->ar, n);
}


static int
dom_fail(dom_t *d)
{
    return d->limit && d->bytes > d->limit ? DOM_EBUDGET : DOM_ENOMEM;
}


static jv_t *
dom_add(dom_t *d, int type)
{
    jv_t *v = dom_alloc(d, sizeof(*v)), *parent;

    if (v == NULL) {
        return NULL;
    }
    memset(v, 0, sizeof(*v));
    v->type = type;
    if (d->depth == 0) {
        d->root = v;
        return v;
    }
    parent = d->stack[d->depth - 1];
    if (parent->type == JV_OBJ) {
        v->key = d->key;
        v->klen = d->klen;
    }
    if (parent->last) {
        parent->last->next = v;
    } else {
        parent->child = v;
    }
    parent->last = v;
    parent->n++;
    return v;
}


static char *
dom_str(dom_t *d, const unsigned char *raw, size_t len, int escaped,
        size_t *outlen)
{
    char *s = dom_alloc(d, len + 1);

    if (s == NULL) {
        return NULL;
    }
    if (escaped) {
        len = tp_json_unescape(raw, len, (unsigned char *) s);
    } else {
        memcpy(s, raw, len);
    }
    s[len] = '\0';
    *outlen = len;
    return s;
}


static int
dom_start(void *ctx, int array)
{
    dom_t  *d = ctx;
    size_t  b0 = d->bytes;
    jv_t   *v = dom_add(d, array ? JV_ARR : JV_OBJ);

    if (v == NULL) {
        return dom_fail(d);
    }
    v->bytes = b0;
    d->stack[d->depth++] = v;
    return 0;
}


static int
dom_end(void *ctx, int array)
{
    dom_t *d = ctx;
    jv_t  *v = d->stack[--d->depth];

    (void) array;
    v->bytes = d->bytes - v->bytes;
    return 0;
}


static int
dom_key(void *ctx, const unsigned char *raw, size_t len, int escaped)
{
    dom_t *d = ctx;

    d->key = dom_str(d, raw, len, escaped, &d->klen);
    return d->key ? 0 : dom_fail(d);
}


static int
dom_string(void *ctx, const unsigned char *raw, size_t len, int escaped)
{
    dom_t *d = ctx;
    jv_t  *v = dom_add(d, JV_STR);

    if (v == NULL || (v->s = dom_str(d, raw, len, escaped, &v->len)) == NULL) {
        return dom_fail(d);
    }
    return 0;
}


static int
dom_number(void *ctx, const unsigned char *raw, size_t len)
{
    dom_t *d = ctx;
    jv_t  *v = dom_add(d, JV_NUM);

    if (v == NULL || (v->s = dom_str(d, raw, len, 0, &v->len)) == NULL) {
        return dom_fail(d);
    }
    return 0;
}


static int
dom_literal(void *ctx, int which)
{
    dom_t *d = ctx;

    return dom_add(d, which == TP_JSON_TRUE ? JV_TRUE
                      : which == TP_JSON_FALSE ? JV_FALSE : JV_NULL)
           ? 0 : dom_fail(d);
}


static const tp_json_cb_t dom_cb = {
    dom_start, dom_end, dom_key, dom_string, dom_number, dom_literal
};


/* TP_POLICY_OK, or EINVALID (err set), ENOMEM, EBUDGET (the parsed JSON
 * alone would take more than limit bytes) */
static int
dom_parse(tp_arena_t *ar, const char *json, size_t len, size_t limit,
          jv_t **root, char *err, size_t errlen)
{
    dom_t  dom, *d = &dom;
    int    rc;

    memset(d, 0, sizeof(*d));
    d->ar = ar;
    d->limit = limit;
    rc = tp_json_scan((const unsigned char *) json, len, &dom_cb, d, err,
                      errlen);
    *root = d->root;
    return rc == 0 ? TP_POLICY_OK
           : rc == DOM_ENOMEM ? TP_POLICY_ENOMEM
           : rc == DOM_EBUDGET ? TP_POLICY_EBUDGET : TP_POLICY_EINVALID;
}


/* the last member of that name, as most JSON readers do */
static jv_t *
jget(const jv_t *obj, const char *key)
{
    jv_t   *c, *found = NULL;
    size_t  n = strlen(key);

    if (obj == NULL || obj->type != JV_OBJ) {
        return NULL;
    }
    for (c = obj->child; c; c = c->next) {
        if (c->klen == n && memcmp(c->key, key, n) == 0) {
            found = c;
        }
    }
    return found;
}


/* a string equal to s (an embedded NUL makes it unequal) */
static int
jis(const jv_t *v, const char *s)
{
    return v->type == JV_STR && v->len == strlen(s)
           && memcmp(v->s, s, v->len) == 0;
}


/* ---- validation and compilation ---- */

typedef struct {
    tp_policy_set_t *set;
    tp_arena_t      *tmp;        /* scratch: freed after compilation */
    char            *err;
    size_t           errlen;
    int              code;       /* TP_POLICY_E* of the failure */
    size_t           used;       /* the set's compiled bytes so far */
    size_t           rule_used;  /* the current rule's */
    size_t           re_used;    /* the set's PCRE2 code and JIT code */
} cc_t;


static int
cfail(cc_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    if (c->code == TP_POLICY_OK) {
        c->code = TP_POLICY_EINVALID;
    }
    return -1;
}


static int
cnomem(cc_t *c)
{
    c->code = TP_POLICY_ENOMEM;
    return cfail(c, "out of memory");
}


/* n more bytes for the current rule, if the budgets allow them */
static int
charge(cc_t *c, size_t n)
{
    const tp_policy_limits_t *lim = &c->set->lim;

    if (lim->rule_bytes && c->rule_used + n > lim->rule_bytes) {
        c->code = TP_POLICY_EBUDGET;
        return cfail(c, "compiles to at least %zu bytes, over the budget of"
                     " %zu bytes for one rule", c->rule_used + n,
                     lim->rule_bytes);
    }
    if (lim->set_bytes && c->used + n > lim->set_bytes) {
        c->code = TP_POLICY_EBUDGET;
        return cfail(c, "the rules compile to at least %zu bytes, over the"
                     " budget of %zu bytes for a rule set", c->used + n,
                     lim->set_bytes);
    }
    c->rule_used += n;
    c->used += n;
    return 0;
}


/* PCRE2 code or JIT code: bytes, and within the set's regex budget (their
 * compilation costs ~6-8 ns a byte, several times anything else) */
static int
charge_re(cc_t *c, size_t n)
{
    const tp_policy_limits_t *lim = &c->set->lim;

    if (lim->regex_bytes && c->re_used + n > lim->regex_bytes) {
        c->code = TP_POLICY_EBUDGET;
        return cfail(c, "the regexes compile to at least %zu bytes of code,"
                     " over the budget of %zu bytes for a rule set's"
                     " regexes", c->re_used + n, lim->regex_bytes);
    }
    if (charge(c, n) != 0) {
        return -1;
    }
    c->re_used += n;
    return 0;
}


/* the set's memory, counted; NULL with err set */
static void *
cget(cc_t *c, size_t n)
{
    void *p;

    if (charge(c, ALIGN16(n ? n : 1)) != 0) {
        return NULL;
    }
    p = tp_arena_alloc(&c->set->arena, n);
    if (p == NULL) {
        cnomem(c);
    }
    return p;
}


/* "<path>[i]: " (i < 0: "<path>: ") before the reason already in err */
static int
cprefix(cc_t *c, const char *path, long i)
{
    char why[256];

    snprintf(why, sizeof(why), "%s", c->errlen ? c->err : "");
    if (i < 0) {
        return cfail(c, "%s: %s", path, why);
    }
    return cfail(c, "%s[%ld]: %s", path, i, why);
}


static char *
cstrdup(cc_t *c, const char *s, size_t n)
{
    char *d = cget(c, n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}


/* an integer in [min, max] written without fraction or exponent */
static int
jint(const jv_t *v, long long min, long long max, long long *out)
{
    char      *end;
    long long  n;

    if (v->type != JV_NUM || strpbrk(v->s, ".eE") != NULL) {
        return -1;
    }
    n = strtoll(v->s, &end, 10);
    if (*end != '\0' || n < min || n > max) {
        return -1;
    }
    *out = n;
    return 0;
}


/* an array of non-empty strings (null or absent: empty) */
static int
str_list(cc_t *c, const jv_t *v, const char *path, size_t max, char ***out,
         size_t *n)
{
    jv_t   *e;
    size_t  i = 0;
    char  **list;

    *out = NULL;
    *n = 0;
    if (v == NULL || v->type == JV_NULL) {
        return 0;
    }
    if (v->type != JV_ARR) {
        return cfail(c, "%s: must be an array of strings", path);
    }
    if (v->n > max) {
        return cfail(c, "%s: more than %zu entries", path, max);
    }
    if (v->n == 0) {
        return 0;
    }
    list = cget(c, v->n * sizeof(char *));
    if (list == NULL) {
        return -1;
    }
    for (e = v->child; e; e = e->next, i++) {
        if (e->type != JV_STR) {
            return cfail(c, "%s[%zu]: must be a string", path, i);
        }
        if (e->len == 0) {
            return cfail(c, "%s[%zu]: must not be empty", path, i);
        }
        if (memchr(e->s, '\0', e->len) != NULL) {
            return cfail(c, "%s[%zu]: must not contain NUL", path, i);
        }
        list[i] = cstrdup(c, e->s, e->len);
        if (list[i] == NULL) {
            return -1;
        }
    }
    *out = list;
    *n = i;
    return 0;
}


/*
 * The pattern with CALLOUT before it, after the options PCRE2 reads only at
 * the very start ("(*UTF)", "(*LIMIT_MATCH=10)", "(*NO_START_OPT)" ...):
 * the callout runs at every start position a match is tried from, where
 * re_callout checks the time. PCRE2's match limit is counted per start
 * position, so without it one pcre2_match call could run for seconds.
 */
static size_t
with_callout(const char *pat, size_t len, char *out)
{
    size_t i = 0, j;

    while (i + 2 < len && pat[i] == '(' && pat[i + 1] == '*') {
        for (j = i + 2; j < len && ((pat[j] >= 'A' && pat[j] <= 'Z')
                                    || (pat[j] >= '0' && pat[j] <= '9')
                                    || pat[j] == '_' || pat[j] == '=');
             j++)
        {
            /* void */
        }
        if (j == i + 2 || j == len || pat[j] != ')') {
            break;
        }
        i = j + 1;
    }
    memcpy(out, pat, i);
    memcpy(out + i, CALLOUT, sizeof(CALLOUT) - 1);
    memcpy(out + i + sizeof(CALLOUT) - 1, pat + i, len - i);
    return len + sizeof(CALLOUT) - 1;
}


static int
compile_regex(cc_t *c, rule_t *r, const jv_t *cfg)
{
    const jv_t  *pats = jget(cfg, "patterns"), *e;
    pcre2_code  *code;
    PCRE2_UCHAR  msg[160];
    PCRE2_SIZE   eoff;
    uint32_t     flags;
    size_t       i = 0, size, jsize, n;
    char         buf[MAX_PATTERN_LEN + sizeof(CALLOUT)];
    int          ecode;

    if (pats == NULL || pats->type != JV_ARR) {
        return cfail(c, "config.patterns: must be an array of strings");
    }
    if (pats->n == 0) {
        return cfail(c, "config.patterns: must not be empty");
    }
    if (pats->n > MAX_PATTERNS) {
        return cfail(c, "config.patterns: more than %d patterns",
                     MAX_PATTERNS);
    }
    r->re = cget(c, pats->n * sizeof(pcre2_code *));
    if (r->re == NULL) {
        return -1;
    }
    flags = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF
            | PCRE2_NEVER_BACKSLASH_C;
    for (e = pats->child; e; e = e->next, i++) {
        if (e->type != JV_STR) {
            return cfail(c, "config.patterns[%zu]: must be a string", i);
        }
        if (e->len == 0) {
            return cfail(c, "config.patterns[%zu]: must not be empty", i);
        }
        if (e->len > MAX_PATTERN_LEN) {
            return cfail(c, "config.patterns[%zu]: longer than %d bytes", i,
                         MAX_PATTERN_LEN);
        }
        n = with_callout(e->s, e->len, buf);
        code = pcre2_compile((PCRE2_SPTR) buf, n, flags, &ecode, &eoff,
                             c->set->cctx);
        if (code == NULL) {
            /* the reason and offset of the pattern as written */
            code = pcre2_compile((PCRE2_SPTR) e->s, e->len, flags, &ecode,
                                 &eoff, c->set->cctx);
        }
        if (code == NULL) {
            if (ecode == PCRE2_ERROR_HEAP_FAILED
                || ecode == PCRE2_ERROR_NOMEMORY)
            {
                return cnomem(c);
            }
            pcre2_get_error_message(ecode, msg, sizeof(msg));
            return cfail(c, "config.patterns[%zu]: %s at offset %zu", i,
                         (char *) msg, (size_t) eoff);
        }
        r->re[r->nre++] = code;        /* destroy frees it from here */

        /* the code, then its JIT code: each is counted before the next
         * step costs anything more */
        if (pcre2_pattern_info(code, PCRE2_INFO_SIZE, &size) != 0) {
            size = e->len;
        }
        if (charge_re(c, ALIGN16(size)) != 0) {
            return cprefix(c, "config.patterns", (long) i);
        }
        /* without JIT (an unsupported CPU) the interpreter runs instead,
         * under the same limits */
        (void) pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        if (pcre2_pattern_info(code, PCRE2_INFO_JITSIZE, &jsize) == 0
            && charge_re(c, ALIGN16(jsize)) != 0)
        {
            return cprefix(c, "config.patterns", (long) i);
        }
    }
    return 0;
}


static int
cp_word_first(const unsigned char *s, size_t n)
{
    return tp_utf8_word_at(s, n, 0);
}


static int
cp_word_last(const unsigned char *s, size_t n)
{
    return tp_utf8_word_before(s, n);
}


typedef struct {
    const unsigned char *s;
    uint32_t             len;
} kw_t;


static int
kw_cmp(const void *a, const void *b)
{
    const kw_t *x = a, *y = b;
    int         d = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

    return d ? d : (x->len > y->len) - (x->len < y->len);
}


/* The trie's states: the root and one per distinct prefix, counted over
 * the sorted keywords (each adds what it does not share with the one
 * before), so the table is allocated, and counted, at its real size. */
static size_t
trie_states(tp_arena_t *tmp, unsigned char **folded, const uint32_t *len,
            size_t nkw)
{
    kw_t    *k;
    size_t   i, j, n = 1;

    k = tp_arena_alloc(tmp, nkw * sizeof(kw_t));
    if (k == NULL) {
        return 0;
    }
    for (i = 0; i < nkw; i++) {
        k[i].s = folded[i];
        k[i].len = len[i];
    }
    qsort(k, nkw, sizeof(kw_t), kw_cmp);
    for (i = 0; i < nkw; i++) {
        j = 0;
        if (i > 0) {
            while (j < k[i].len && j < k[i - 1].len
                   && k[i].s[j] == k[i - 1].s[j])
            {
                j++;
            }
        }
        n += k[i].len - j;
    }
    return n;
}


/* Aho-Corasick over byte classes: a full DFA, so scanning is one table
 * lookup per byte whatever the number of keywords. */
static int
compile_keywords(cc_t *c, rule_t *r, const jv_t *cfg)
{
    tp_arena_t     *tmp = c->tmp;
    const jv_t     *kws = jget(cfg, "keywords"), *e;
    unsigned char **folded;
    ac_t           *ac;
    size_t          i = 0, j, nkw, cells, nstates;
    uint32_t        ncls = 1, nst = 1, *fail, *queue, qh = 0, qt = 0;
    int32_t         s, u, v, f;
    unsigned        b;

    if (kws == NULL || kws->type != JV_ARR) {
        return cfail(c, "config.keywords: must be an array of strings");
    }
    if (kws->n == 0) {
        return cfail(c, "config.keywords: must not be empty");
    }
    if (kws->n > MAX_KEYWORDS) {
        return cfail(c, "config.keywords: more than %d keywords",
                     MAX_KEYWORDS);
    }
    nkw = kws->n;
    ac = cget(c, sizeof(*ac));
    if (ac == NULL) {
        return -1;
    }
    memset(ac, 0, sizeof(*ac));
    ac->kwlen = cget(c, nkw * sizeof(uint32_t));
    ac->kwedge = ac->kwlen ? cget(c, nkw) : NULL;
    if (ac->kwedge == NULL) {
        return -1;
    }
    folded = tp_arena_alloc(tmp, nkw * sizeof(*folded));
    if (folded == NULL) {
        return cnomem(c);
    }

    for (e = kws->child; e; e = e->next, i++) {
        if (e->type != JV_STR) {
            return cfail(c, "config.keywords[%zu]: must be a string", i);
        }
        for (j = 0; j < e->len; j++) {
            if (e->s[j] != ' ' && e->s[j] != '\t' && e->s[j] != '\n'
                && e->s[j] != '\r')
            {
                break;
            }
        }
        if (j == e->len) {
            return cfail(c, "config.keywords[%zu]: must not be empty", i);
        }
        if (e->len > MAX_KEYWORD_LEN) {
            return cfail(c, "config.keywords[%zu]: longer than %d bytes", i,
                         MAX_KEYWORD_LEN);
        }
        folded[i] = tp_arena_alloc(tmp, e->len);
        if (folded[i] == NULL) {
            return cnomem(c);
        }
        tp_utf8_fold_buf((const unsigned char *) e->s, e->len, folded[i]);
        ac->kwlen[i] = (uint32_t) e->len;
        ac->kwedge[i] = (uint8_t) (cp_word_first(folded[i], e->len)
                                   | cp_word_last(folded[i], e->len) << 1);
        for (j = 0; j < e->len; j++) {
            b = folded[i][j];
            if (ac->cls[b] == 0) {
                ac->cls[b] = (uint8_t) ncls++;
            }
        }
    }

    /* the automaton's size is known before it is built: the budgets
     * refuse it before its table exists */
    nstates = trie_states(tmp, folded, ac->kwlen, nkw);
    if (nstates == 0) {
        return cnomem(c);
    }
    cells = nstates * ncls;
    if (cells > MAX_AC_BYTES / sizeof(int32_t)) {
        c->code = TP_POLICY_EBUDGET;
        return cfail(c, "config.keywords: the keyword list is too large"
                     " (a %zu-byte table)", cells * sizeof(int32_t));
    }
    ac->ncls = ncls;
    if ((ac->delta = cget(c, cells * sizeof(int32_t))) == NULL
        || (ac->out = cget(c, nstates * sizeof(int32_t))) == NULL
        || (ac->dict = cget(c, nstates * sizeof(int32_t))) == NULL
        || (ac->hit = cget(c, nstates * sizeof(int32_t))) == NULL
        || (cells * 2 <= 0xffff
            && (ac->delta16 = cget(c, cells * sizeof(uint16_t))) == NULL))
    {
        return c->code == TP_POLICY_EBUDGET
               ? cprefix(c, "config.keywords", -1) : -1;
    }
    fail = tp_arena_alloc(tmp, nstates * sizeof(uint32_t));
    queue = tp_arena_alloc(tmp, nstates * sizeof(uint32_t));
    if (fail == NULL || queue == NULL) {
        return cnomem(c);
    }
    memset(ac->delta, 0xff, cells * sizeof(int32_t));
    memset(ac->out, 0xff, nstates * sizeof(int32_t));

    /* the trie */
    for (i = 0; i < nkw; i++) {
        s = 0;
        for (j = 0; j < ac->kwlen[i]; j++) {
            int32_t *t = &ac->delta[(size_t) s * ncls + ac->cls[folded[i][j]]];

            if (*t < 0) {
                *t = (int32_t) nst++;
            }
            s = *t;
        }
        if (ac->out[s] < 0) {
            ac->out[s] = (int32_t) i;       /* duplicates: the first one */
        }
    }
    ac->nstates = nst;

    /* failure links breadth first, filling the missing transitions */
    fail[0] = 0;
    ac->dict[0] = -1;
    for (b = 0; b < ncls; b++) {
        v = ac->delta[b];
        if (v < 0) {
            ac->delta[b] = 0;
        } else {
            fail[v] = 0;
            ac->dict[v] = -1;
            queue[qt++] = (uint32_t) v;
        }
    }
    while (qh < qt) {
        u = (int32_t) queue[qh++];
        for (b = 0; b < ncls; b++) {
            int32_t *t = &ac->delta[(size_t) u * ncls + b];

            f = ac->delta[(size_t) fail[u] * ncls + b];
            if (*t < 0) {
                *t = f;
                continue;
            }
            v = *t;
            fail[v] = (uint32_t) f;
            ac->dict[v] = ac->out[f] >= 0 ? f : ac->dict[f];
            queue[qt++] = (uint32_t) v;
        }
    }
    for (i = 0; i < nst; i++) {
        ac->hit[i] = ac->out[i] >= 0 ? (int32_t) i : ac->dict[i];
    }
    /* scanning wants the row offset of the next state, and whether it has
     * an output, in one load: (state * ncls) << 1 | output */
    for (i = 0; i < cells; i++) {
        v = ac->delta[i];
        ac->delta[i] = (int32_t) (((uint32_t) v * ncls) << 1
                                  | (ac->hit[v] >= 0));
    }
    /* A..Z as a..z (keywords are folded, so A..Z were in no class): an
     * ASCII text is scanned as it is, without a folded copy */
    for (b = 'A'; b <= 'Z'; b++) {
        ac->cls[b] = ac->cls[b + 32];
    }
    for (b = 0; b < 256; b++) {
        ac->root_stay[b] = ac->delta[ac->cls[b]] == 0;
        if (!ac->root_stay[b] && ac->nexits++ < 4) {
            ac->exits[ac->nexits - 1] = (uint8_t) b;
        }
    }
    if (ac->nexits > 4) {
        ac->nexits = 0;
    }
    for (b = ac->nexits; b > 0 && b < 4; b++) {
        ac->exits[b] = ac->exits[0];
    }
    if (ac->delta16 != NULL) {
        for (i = 0; i < cells; i++) {
            ac->delta16[i] = (uint16_t) ac->delta[i];
        }
    }
    r->ac = ac;
    return 0;
}


static int
compile_pii(cc_t *c, rule_t *r, const jv_t *cfg)
{
    const jv_t *dets = jget(cfg, "detectors"), *e;
    size_t      i = 0;
    int         d;

    if (dets == NULL || dets->type != JV_ARR) {
        return cfail(c, "config.detectors: must be an array of detector "
                     "names");
    }
    if (dets->n == 0) {
        return cfail(c, "config.detectors: must not be empty");
    }
    for (e = dets->child; e; e = e->next, i++) {
        if (e->type != JV_STR) {
            return cfail(c, "config.detectors[%zu]: must be a string", i);
        }
        for (d = 0; d < D_COUNT; d++) {
            if (jis(e, det_names[d])) {
                break;
            }
        }
        if (d == D_COUNT) {
            return cfail(c, "config.detectors[%zu]: unknown detector \"%.64s\" "
                         "(expected email, phone, credit_card, ssn, iban, "
                         "ipv4 or secrets)", i, e->s);
        }
        r->detectors |= 1u << d;
    }
    return 0;
}


static int
compile_model(cc_t *c, rule_t *r, const jv_t *cfg)
{
    if (str_list(c, jget(cfg, "allow"), "config.allow", MAX_LIST, &r->allow,
                 &r->nallow) != 0
        || str_list(c, jget(cfg, "deny"), "config.deny", MAX_LIST, &r->deny,
                    &r->ndeny) != 0)
    {
        return -1;
    }
    if (r->nallow == 0 && r->ndeny == 0) {
        return cfail(c, "config: a model rule needs a non-empty allow or "
                     "deny list");
    }
    return 0;
}


static int
compile_limits(cc_t *c, rule_t *r, const jv_t *cfg)
{
    static const char *names[2] = { "max_prompt_chars", "max_output_tokens" };
    int64_t           *dst[2] = { &r->max_chars, &r->max_out };
    const jv_t        *v;
    long long          n;
    int                i;

    for (i = 0; i < 2; i++) {
        *dst[i] = -1;
        v = jget(cfg, names[i]);
        if (v == NULL || v->type == JV_NULL) {
            continue;
        }
        if (jint(v, 1, 1LL << 53, &n) != 0) {
            return cfail(c, "config.%s: must be a positive integer",
                         names[i]);
        }
        *dst[i] = n;
    }
    if (r->max_chars < 0 && r->max_out < 0) {
        return cfail(c, "config: a limits rule needs max_prompt_chars or "
                     "max_output_tokens");
    }
    return 0;
}


static int
compile_scope(cc_t *c, rule_t *r, const jv_t *scope)
{
    char   **prov;
    size_t   np, i;
    int      p;

    if (scope == NULL || scope->type == JV_NULL) {
        return 0;
    }
    if (scope->type != JV_OBJ) {
        return cfail(c, "scope: must be an object");
    }
    if (str_list(c, jget(scope, "providers"), "scope.providers", MAX_LIST,
                 &prov, &np) != 0
        || str_list(c, jget(scope, "envs"), "scope.envs", MAX_LIST, &r->envs,
                    &r->nenvs) != 0
        || str_list(c, jget(scope, "key_ids"), "scope.key_ids", MAX_LIST,
                    &r->keys, &r->nkeys) != 0)
    {
        return -1;
    }
    for (i = 0; i < np; i++) {
        p = tp_provider_parse(prov[i], strlen(prov[i]));
        if (p < 0) {
            return cfail(c, "scope.providers[%zu]: unknown provider \"%.64s\" "
                         "(expected openai, anthropic, google or azure)",
                         i, prov[i]);
        }
        r->providers |= 1u << p;
    }
    return 0;
}


/* 0 compiled, 1 disabled (skipped unless validating), -1 invalid */
static int
compile_rule(cc_t *c, const jv_t *obj, rule_t *r, int validating)
{
    const jv_t *v, *cfg;
    long long   n;
    int         i;

    memset(r, 0, sizeof(*r));
    r->priority = DEFAULT_PRIORITY;
    r->max_chars = r->max_out = -1;

    if (obj->type != JV_OBJ) {
        return cfail(c, "a rule must be a JSON object");
    }

    /* the id first, for the error message of any budget failure below */
    v = jget(obj, "id");
    if (v != NULL && (v->type == JV_STR || v->type == JV_NUM)) {
        r->id = v->s;
    } else if (v != NULL && v->type != JV_NULL) {
        return cfail(c, "id: must be a string");
    }

    /* its parsed JSON and its slot count, whether enabled or not */
    c->rule_used = 0;
    if (charge(c, obj->bytes + ALIGN16(sizeof(rule_t))) != 0) {
        return -1;
    }
    if (r->id != NULL && (r->id = cstrdup(c, r->id, strlen(r->id))) == NULL)
    {
        return -1;
    }

    v = jget(obj, "name");
    if (v != NULL && v->type == JV_STR) {
        if ((r->name = cstrdup(c, v->s, strlen(v->s))) == NULL) {
            return -1;
        }
    } else if (v != NULL && v->type != JV_NULL) {
        return cfail(c, "name: must be a string");
    }

    v = jget(obj, "enabled");
    if (v != NULL && v->type != JV_NULL && v->type != JV_TRUE
        && v->type != JV_FALSE)
    {
        return cfail(c, "enabled: must be true or false");
    }
    if (v != NULL && v->type == JV_FALSE && !validating) {
        return 1;
    }

    v = jget(obj, "type");
    if (v == NULL || v->type != JV_STR) {
        return cfail(c, "type: required (regex, keywords, pii, model or "
                     "limits)");
    }
    for (i = 0; i < T_COUNT; i++) {
        if (jis(v, type_names[i])) {
            break;
        }
    }
    if (i == T_COUNT) {
        return cfail(c, "type: unknown type \"%.64s\" (expected regex, "
                     "keywords, pii, model or limits)", v->s);
    }
    r->type = i;

    v = jget(obj, "action");
    if (v == NULL || v->type != JV_STR) {
        return cfail(c, "action: required (block, redact or log)");
    }
    if (jis(v, "block")) {
        r->action = TP_ACTION_BLOCK;
    } else if (jis(v, "redact")) {
        r->action = TP_ACTION_REDACT;
    } else if (jis(v, "log")) {
        r->action = TP_ACTION_LOG;
    } else {
        return cfail(c, "action: unknown action \"%.64s\" (expected block, "
                     "redact or log)", v->s);
    }
    if (r->action == TP_ACTION_REDACT
        && (r->type == T_MODEL || r->type == T_LIMITS))
    {
        return cfail(c, "action: a %s rule cannot redact (use block or log)",
                     type_names[r->type]);
    }

    v = jget(obj, "priority");
    if (v != NULL && v->type != JV_NULL) {
        if (jint(v, -1000000000, 1000000000, &n) != 0) {
            return cfail(c, "priority: must be an integer");
        }
        r->priority = (long) n;
    }

    if (compile_scope(c, r, jget(obj, "scope")) != 0) {
        return -1;
    }

    cfg = jget(obj, "config");
    if (cfg == NULL || cfg->type != JV_OBJ) {
        return cfail(c, "config: required, an object");
    }
    switch (r->type) {
    case T_REGEX:    i = compile_regex(c, r, cfg); break;
    case T_KEYWORDS: i = compile_keywords(c, r, cfg); break;
    case T_PII:      i = compile_pii(c, r, cfg); break;
    case T_MODEL:    i = compile_model(c, r, cfg); break;
    default:         i = compile_limits(c, r, cfg);
    }
    r->bytes = c->rule_used;
    return i;
}


static int
rule_cmp(const void *a, const void *b)
{
    const rule_t *x = a, *y = b;

    if (x->priority != y->priority) {
        return x->priority < y->priority ? -1 : 1;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}


void
tp_policy_destroy(tp_policy_set_t *set)
{
    tp_arena_t ar;
    size_t     i, k, n;

    if (set == NULL) {
        return;
    }
    /* the compiled rules, and the one that failed to compile, if any */
    n = set->nrules < set->rules_cap ? set->nrules + 1 : set->nrules;
    for (i = 0; i < n; i++) {
        for (k = 0; k < set->rules[i].nre; k++) {
            pcre2_code_free(set->rules[i].re[k]);
        }
    }
    pcre2_compile_context_free(set->cctx);
    pcre2_general_context_free(set->gctx);
    ar = set->arena;
    tp_arena_free(&ar);
}


static tp_policy_set_t *
set_new(const tp_alloc_t *a, const tp_policy_limits_t *lim)
{
    tp_arena_t       ar;
    tp_policy_set_t *set;

    tp_arena_init(&ar, a);
    set = tp_arena_alloc(&ar, sizeof(*set));
    if (set == NULL) {
        tp_arena_free(&ar);
        return NULL;
    }
    memset(set, 0, sizeof(*set));
    set->arena = ar;
    set->lim = lim ? *lim : tp_policy_limits_default;
    set->gctx = pcre2_general_context_create(re_malloc, re_free,
                                             &set->arena.a);
    if (set->gctx != NULL) {
        set->cctx = pcre2_compile_context_create(set->gctx);
    }
    if (set->cctx == NULL) {
        tp_policy_destroy(set);
        return NULL;
    }
    pcre2_set_max_pattern_length(set->cctx,
                                 MAX_PATTERN_LEN + sizeof(CALLOUT) - 1);
    return set;
}


static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}


static size_t
dom_limit(size_t budget)
{
    return budget ? budget + DOM_SLACK : 0;
}


tp_policy_set_t *
tp_policy_compile_limits(const tp_alloc_t *a, const char *json, size_t len,
                         const tp_policy_limits_t *lim, int *code, char *err,
                         size_t errlen)
{
    tp_policy_set_t *set;
    tp_arena_t       tmp;
    const jv_t      *e;
    jv_t            *root;
    cc_t             c;
    char             why[256];
    size_t           i = 0;
    int              rc, dummy;

    if (code == NULL) {
        code = &dummy;
    }
    *code = TP_POLICY_ENOMEM;
    set_err(err, errlen, "%s", "");
    set = set_new(a, lim);
    if (set == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    tp_arena_init(&tmp, a);

    rc = dom_parse(&tmp, json, len, dom_limit(set->lim.set_bytes), &root,
                   why, sizeof(why));
    if (rc != TP_POLICY_OK) {
        *code = rc;
        set_err(err, errlen, "%s", rc == TP_POLICY_ENOMEM ? "out of memory"
                : rc == TP_POLICY_EBUDGET ? "the rules' JSON alone is over"
                  " the budget of a rule set" : why);
        goto failed;
    }
    *code = TP_POLICY_EINVALID;
    if (root->type == JV_OBJ) {        /* the API's list, the gateway's load */
        root = jget(root, "items") ? jget(root, "items") : jget(root, "rules");
    }
    if (root == NULL || root->type != JV_ARR) {
        set_err(err, errlen, "the rules must be a JSON array");
        goto failed;
    }
    if (root->n > MAX_RULES) {
        set_err(err, errlen, "more than %d rules", MAX_RULES);
        goto failed;
    }
    if (root->n) {
        /* not counted here: every rule counts its own slot */
        set->rules = tp_arena_alloc(&set->arena, root->n * sizeof(rule_t));
        if (set->rules == NULL) {
            *code = TP_POLICY_ENOMEM;
            set_err(err, errlen, "out of memory");
            goto failed;
        }
        memset(set->rules, 0, root->n * sizeof(rule_t));
        set->rules_cap = root->n;
    }

    memset(&c, 0, sizeof(c));
    c.set = set;
    c.tmp = &tmp;
    c.err = why;
    c.errlen = sizeof(why);
    for (e = root->child; e; e = e->next, i++) {
        rule_t *r = &set->rules[set->nrules];

        rc = compile_rule(&c, e, r, 0);
        if (rc == 1) {
            continue;
        }
        if (rc != 0) {
            *code = c.code;
            if (r->id != NULL) {
                set_err(err, errlen, "rule %.64s: %s", r->id, why);
            } else {
                set_err(err, errlen, "rule #%zu: %s", i, why);
            }
            goto failed;
        }
        r->order = i;
        set->nrules++;
    }
    if (set->nrules > 1) {
        qsort(set->rules, set->nrules, sizeof(rule_t), rule_cmp);
    }
    set->bytes = c.used;
    set->re_bytes = c.re_used;
    tp_arena_free(&tmp);
    *code = TP_POLICY_OK;
    return set;

failed:
    tp_arena_free(&tmp);
    tp_policy_destroy(set);
    return NULL;
}


tp_policy_set_t *
tp_policy_compile(const tp_alloc_t *a, const char *json, size_t len,
                  char *err, size_t errlen)
{
    return tp_policy_compile_limits(a, json, len, NULL, NULL, err, errlen);
}


size_t
tp_policy_size(const tp_policy_set_t *set)
{
    return set ? set->bytes : 0;
}


size_t
tp_policy_regex_size(const tp_policy_set_t *set)
{
    return set ? set->re_bytes : 0;
}


static void *
libc_alloc(void *ctx, size_t n)
{
    (void) ctx;
    return malloc(n);
}


static void *
libc_realloc(void *ctx, void *p, size_t n)
{
    (void) ctx;
    return realloc(p, n);
}


static void
libc_free(void *ctx, void *p)
{
    (void) ctx;
    free(p);
}


const tp_alloc_t tp_alloc_libc = { libc_alloc, libc_realloc, libc_free, NULL };


int
tp_policy_check_rule(const char *json, size_t len,
                     const tp_policy_limits_t *lim, size_t *size, char *err,
                     size_t errlen)
{
    tp_policy_set_t  *set;
    tp_arena_t        tmp;
    jv_t             *root;
    rule_t            r;
    cc_t              c;
    int               rc;

    set_err(err, errlen, "%s", "");
    set = set_new(&tp_alloc_libc, lim);
    if (set == NULL) {
        set_err(err, errlen, "out of memory");
        return TP_POLICY_ENOMEM;
    }
    /* one rule: only the per-rule budget applies */
    set->lim.set_bytes = 0;
    tp_arena_init(&tmp, &tp_alloc_libc);
    memset(&r, 0, sizeof(r));
    set->rules = &r;                   /* for destroy: its patterns */
    set->rules_cap = 1;

    rc = dom_parse(&tmp, json, len, dom_limit(set->lim.rule_bytes), &root,
                   err, errlen);
    if (rc == TP_POLICY_OK) {
        memset(&c, 0, sizeof(c));
        c.set = set;
        c.tmp = &tmp;
        c.err = err;
        c.errlen = errlen;
        rc = compile_rule(&c, root, &r, 1) == 0 ? TP_POLICY_OK : c.code;
        if (size != NULL) {
            *size = c.rule_used;
        }
    } else if (rc == TP_POLICY_ENOMEM) {
        set_err(err, errlen, "out of memory");
    } else if (rc == TP_POLICY_EBUDGET) {
        set_err(err, errlen, "the rule's JSON alone is over the budget of"
                " %zu bytes for one rule", set->lim.rule_bytes);
    }
    tp_arena_free(&tmp);
    tp_policy_destroy(set);
    return rc;
}


int
tp_policy_validate_rule(const char *json, size_t len, char *err,
                        size_t errlen)
{
    return tp_policy_check_rule(json, len, NULL, NULL, err, errlen);
}


/* ---- evaluation ---- */

typedef struct {
    const tp_policy_set_t *set;
    tp_prompt_t           *p;
    tp_policy_result_t    *out;
    size_t                 vcap, scap;
    pcre2_match_context   *mctx;     /* this evaluation's: limits, callout */
    int64_t                eval_end; /* deadlines, CLOCK_MONOTONIC ns */
    int64_t                rule_end;
    unsigned               callouts;
    const char            *why;      /* why the current rule stopped */
    int                    nomem;
} ev_t;

typedef struct {
    ev_t       *ev;
    const char *tag;
    int         all;             /* every match (redact), else the first */
    unsigned    count;
    size_t      s, e;            /* the first match */
    size_t      digit0;          /* the text's first ASCII digit (n: none):
                                    found once for the five detectors that
                                    start at one */
} emit_t;


static int
emit(emit_t *m, size_t s, size_t e)
{
    ev_t      *ev = m->ev;
    tp_span_t *ns;

    if (m->count++ == 0) {
        m->s = s;
        m->e = e;
    }
    if (!m->all) {
        return 0;
    }
    if (ev->out->nspans == ev->scap) {
        ev->scap = ev->scap ? ev->scap * 2 : 32;
        ns = tp_arena_alloc(&ev->p->arena, ev->scap * sizeof(*ns));
        if (ns == NULL) {
            ev->nomem = 1;
            return 0;
        }
        if (ev->out->nspans) {
            memcpy(ns, ev->out->spans, ev->out->nspans * sizeof(*ns));
        }
        ev->out->spans = ns;
    }
    ns = &ev->out->spans[ev->out->nspans++];
    ns->start = (uint32_t) s;
    ns->end = (uint32_t) e;
    ns->tag = m->tag;
    return 1;
}


#define IS_DIGIT(c)  ((unsigned) ((c) - '0') < 10)
#define IS_UPPER(c)  ((unsigned) ((c) - 'A') < 26)
#define IS_LOWER(c)  ((unsigned) ((c) - 'a') < 26)
#define IS_ALNUM(c)  (IS_DIGIT(c) || IS_UPPER(c) || IS_LOWER(c))

/* word boundaries with an ASCII fast path */
static inline int
wb(const unsigned char *t, size_t i)
{
    unsigned c;

    if (i == 0) {
        return 0;
    }
    c = t[i - 1];
    return c < 0x80 ? IS_ALNUM(c) || c == '_' : tp_utf8_word_before(t, i);
}


static inline int
wa(const unsigned char *t, size_t n, size_t i)
{
    unsigned c;

    if (i >= n) {
        return 0;
    }
    c = t[i];
    return c < 0x80 ? IS_ALNUM(c) || c == '_' : tp_utf8_word_at(t, n, i);
}


/* the next ASCII digit at or after i (n when none), sixteen bytes at a time
 * with SSE2, else eight: most text has few digits, and five detectors
 * start at one */
static size_t
next_digit(const unsigned char *t, size_t i, size_t n)
{
#if defined(__SSE2__)
    __m128i  x;
    unsigned bits;

    while (i + 16 <= n) {
        x = _mm_loadu_si128((const __m128i *) (t + i));
        /* signed compares: bytes >= 0x80 are negative, never digits */
        bits = (unsigned) _mm_movemask_epi8(
                   _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)),
                                 _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1))));
        if (bits) {
            return i + __builtin_ctz(bits);
        }
        i += 16;
    }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x, m;

    while (i + 8 <= n) {
        memcpy(&x, t + i, 8);
        x ^= 0x3030303030303030ULL;             /* digits become 0..9 */
        m = (x - 0x0a0a0a0a0a0a0a0aULL) & ~x & 0x8080808080808080ULL;
        if (m) {
            return i + (__builtin_ctzll(m) >> 3);
        }
        i += 8;
    }
#endif
    while (i < n && !IS_DIGIT(t[i])) {
        i++;
    }
    return i;
}

/* ---- detectors: each one linear pass; emit() returning 0 stops it ---- */

static int
is_local(unsigned c)
{
    return IS_ALNUM(c) || c == '.' || c == '_' || c == '%' || c == '+'
           || c == '-' || c == '\'';
}


static int
is_domain(unsigned c)
{
    return IS_ALNUM(c) || c == '.' || c == '-';
}


static void
det_email(const unsigned char *t, size_t n, emit_t *m)
{
    const unsigned char *at;
    size_t               a, l, r, d, i = 0, k;
    int                  ok;

    while (i < n && (at = memchr(t + i, '@', n - i)) != NULL) {
        a = at - t;
        l = a;
        while (l > 0 && a - l < 256 && is_local(t[l - 1])) {
            l--;
        }
        while (l < a && t[l] == '.') {
            l++;
        }
        r = a + 1;
        while (r < n && r - a < 256 && is_domain(t[r])) {
            r++;
        }
        while (r > a + 1 && (t[r - 1] == '.' || t[r - 1] == '-')) {
            r--;
        }
        ok = l < a && r > a + 1 && IS_ALNUM(t[a + 1]);
        d = 0;
        for (k = a + 1; ok && k < r; k++) {
            if (t[k] == '.') {
                if (t[k - 1] == '.' || t[k - 1] == '-' || t[k + 1] == '-') {
                    ok = 0;
                }
                d = k;
            }
        }
        if (ok && d != 0 && r - d > 2) {
            for (k = d + 1; k < r && (IS_UPPER(t[k]) || IS_LOWER(t[k])); k++) {
                /* the top-level domain: letters */
            }
            if (k == r) {
                if (!emit(m, l, r)) {
                    return;
                }
                i = r;
                continue;
            }
        }
        i = a + 1;
    }
}


#define PH_GROUPS 16

/* A run of digit groups joined by up to two of " -.()" is read once; a
 * number with '+' is 8-15 digits from the run's start, otherwise any three
 * consecutive groups shaped as a NANP number (optionally after a "1")
 * match, so "ref 12 (415) 555-2671 4111..." still finds the phone. */
static void
det_phone(const unsigned char *t, size_t n, emit_t *m)
{
    size_t gs[PH_GROUPS], ge[PH_GROUPS], ng, i, j, k, g, sep, digits,
           best, start, end;

    i = m->digit0;

    while ((i = next_digit(t, i, n)) < n) {
        if (i > 0 && (t[i - 1] == '+' || t[i - 1] == '(')) {
            i--;
        }
        if (wb(t, i)) {
            for (j = i + 1; j < n && IS_DIGIT(t[j]); j++) {
            }
            i = j;
            continue;
        }
        j = t[i] == '+' || t[i] == '(' ? i + 1 : i;
        ng = 0;
        for ( ;; ) {
            gs[ng] = j;
            while (j < n && IS_DIGIT(t[j])) {
                j++;
            }
            ge[ng++] = j;
            if (ng == PH_GROUPS) {
                break;
            }
            for (sep = 0, k = j; k < n && sep < 2
                 && (t[k] == ' ' || t[k] == '-' || t[k] == '.' || t[k] == '('
                     || t[k] == ')'); sep++)
            {
                k++;
            }
            if (sep == 0 || k == n || !IS_DIGIT(t[k])) {
                break;
            }
            j = k;
        }

        if (t[i] == '+' && t[i + 1] != '0') {
            best = (size_t) -1;
            digits = 0;
            for (g = 0; g < ng; g++) {
                digits += ge[g] - gs[g];
                if (digits > 15) {
                    break;
                }
                if (digits >= 8 && !wa(t, n, ge[g])) {
                    best = g;
                }
            }
            if (best != (size_t) -1) {
                if (!emit(m, i, ge[best])) {
                    return;
                }
                i = ge[best];
                continue;
            }
        }
        for (g = 0; g < ng; g++) {
            k = ge[g] - gs[g] == 1 && t[gs[g]] == '1' && g + 3 < ng ? 1 : 0;
            if (g + k + 2 >= ng
                || ge[g + k] - gs[g + k] != 3
                || ge[g + k + 1] - gs[g + k + 1] != 3
                || ge[g + k + 2] - gs[g + k + 2] != 4
                || t[gs[g + k]] < '2' || t[gs[g + k + 1]] < '2'
                || wa(t, n, ge[g + k + 2]))
            {
                continue;
            }
            start = g == 0 ? i : gs[g] > 0 && t[gs[g] - 1] == '(' ? gs[g] - 1
                                                                  : gs[g];
            end = ge[g + k + 2];
            if (!emit(m, start, end)) {
                return;
            }
            g += k + 2;
        }
        i = ge[ng - 1] > i ? ge[ng - 1] : i + 1;
    }
}


static int
luhn(const unsigned char *d, size_t n)
{
    size_t i;
    int    sum = 0, x;

    for (i = 0; i < n; i++) {
        x = d[n - 1 - i] - '0';
        if (i & 1) {
            x *= 2;
            if (x > 9) {
                x -= 9;
            }
        }
        sum += x;
    }
    return sum % 10 == 0;
}


static int
card_prefix(const unsigned char *d, size_t n)
{
    int two = (d[0] - '0') * 10 + d[1] - '0';
    int four = two * 100 + (d[2] - '0') * 10 + d[3] - '0';

    switch (d[0]) {
    case '4':
        return 1;                                        /* Visa */
    case '5':
        return two >= 51 && two <= 55 && n == 16;        /* Mastercard */
    case '2':
        return four >= 2221 && four <= 2720 && n == 16;
    case '3':
        if (two == 34 || two == 37) {
            return n == 15;                              /* Amex */
        }
        return two == 35 || two == 36 || two == 38 || two == 39
               || two == 30;                             /* JCB, Diners */
    case '6':
        return n >= 16;                          /* Discover, UnionPay */
    }
    return 0;
}


#define CARD_GROUPS 64

static void
det_card(const unsigned char *t, size_t n, emit_t *m)
{
    size_t        gs[CARD_GROUPS], ge[CARD_GROUPS], ng, i, j, s, e, best,
                  digits, k, dn;
    unsigned char d[19];

    i = m->digit0;

    while ((i = next_digit(t, i, n)) < n) {
        if (wb(t, i)) {
            while (i < n && IS_DIGIT(t[i])) {
                i++;
            }
            continue;
        }
        /* a run of digit groups joined by one space or dash */
        ng = 0;
        j = i;
        for ( ;; ) {
            gs[ng] = j;
            while (j < n && IS_DIGIT(t[j])) {
                j++;
            }
            ge[ng++] = j;
            if (ng == CARD_GROUPS || j + 1 >= n
                || (t[j] != ' ' && t[j] != '-') || !IS_DIGIT(t[j + 1]))
            {
                break;
            }
            j++;
        }
        /* the longest window of whole groups that is a card */
        for (s = 0; s < ng; s = best + 1) {
            best = (size_t) -1;
            digits = 0;
            for (e = s; e < ng; e++) {
                digits += ge[e] - gs[e];
                if (digits > 19) {
                    break;
                }
                if (digits < 13) {
                    continue;
                }
                if (e == ng - 1 && wa(t, n, ge[e])) {
                    continue;
                }
                dn = 0;
                for (k = s; k <= e; k++) {
                    memcpy(d + dn, t + gs[k], ge[k] - gs[k]);
                    dn += ge[k] - gs[k];
                }
                if (card_prefix(d, dn) && luhn(d, dn)) {
                    best = e;
                }
            }
            if (best == (size_t) -1) {
                best = s;
                continue;
            }
            if (!emit(m, gs[s], ge[best])) {
                return;
            }
        }
        i = ge[ng - 1];
    }
}


static void
det_ssn(const unsigned char *t, size_t n, emit_t *m)
{
    size_t   i;
    unsigned sep;
    int      area, group, serial;

    for (i = m->digit0; i + 11 <= n; i = next_digit(t, i + 1, n)) {
        sep = t[i + 3];
        if ((sep != '-' && sep != ' ') || t[i + 6] != sep
            || !IS_DIGIT(t[i + 1]) || !IS_DIGIT(t[i + 2])
            || !IS_DIGIT(t[i + 4]) || !IS_DIGIT(t[i + 5])
            || !IS_DIGIT(t[i + 7]) || !IS_DIGIT(t[i + 8])
            || !IS_DIGIT(t[i + 9]) || !IS_DIGIT(t[i + 10]))
        {
            continue;
        }
        if (wb(t, i) || wa(t, n, i + 11)
            || (i >= 2 && (t[i - 1] == '-' || t[i - 1] == '.')
                && IS_DIGIT(t[i - 2]))
            || (i + 12 < n && (t[i + 11] == '-' || t[i + 11] == '.')
                && IS_DIGIT(t[i + 12])))
        {
            continue;
        }
        area = (t[i] - '0') * 100 + (t[i + 1] - '0') * 10 + t[i + 2] - '0';
        group = (t[i + 4] - '0') * 10 + t[i + 5] - '0';
        serial = (t[i + 7] - '0') * 1000 + (t[i + 8] - '0') * 100
                 + (t[i + 9] - '0') * 10 + t[i + 10] - '0';
        if (area == 0 || area == 666 || area >= 900 || group == 0
            || serial == 0)
        {
            continue;
        }
        if (!emit(m, i, i + 11)) {
            return;
        }
        i += 10;
    }
}


static int
iban_ok(const unsigned char *c, size_t n)
{
    unsigned r = 0;
    size_t   i;
    unsigned x;

    if (n < 15 || n > 34) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        x = c[(i + 4) % n];
        if (IS_DIGIT(x)) {
            r = (r * 10 + (x - '0')) % 97;
        } else {
            r = (r * 100 + (x - 'A' + 10)) % 97;
        }
    }
    return r == 1;
}


#define IS_IBANCH(c) (IS_DIGIT(c) || IS_UPPER(c))

static void
det_iban(const unsigned char *t, size_t n, emit_t *m)
{
    unsigned char c[40];
    size_t        d, i, j, k, cnt, cand_n[16], cand_e[16], nc, g;

    for (d = next_digit(t, m->digit0 > 2 ? m->digit0 : 2, n); d + 13 <= n;
         d = next_digit(t, d + 1, n))
    {
        /* the check digits follow the two letters of the country */
        i = d - 2;
        if (!IS_UPPER(t[i]) || !IS_UPPER(t[i + 1]) || !IS_DIGIT(t[i + 3])
            || wb(t, i))
        {
            continue;
        }
        memcpy(c, t + i, 4);
        cnt = 4;
        nc = 0;
        j = i + 4;
        if (j < n && IS_IBANCH(t[j])) {
            /* compact: one run */
            while (j < n && IS_IBANCH(t[j]) && cnt < 35) {
                c[cnt++] = t[j++];
            }
            if (cnt <= 34 && !wa(t, n, j)) {
                cand_n[nc] = cnt;
                cand_e[nc++] = j;
            }
        } else {
            /* printed: groups of four after single spaces, the last one
             * may be shorter; any group end may be the end */
            while (j + 1 < n && t[j] == ' ' && IS_IBANCH(t[j + 1])
                   && nc < 16)
            {
                k = j + 1;
                for (g = 0; k < n && IS_IBANCH(t[k]) && g < 5; g++) {
                    k++;
                }
                if (g == 5 || cnt + g > 34 || wa(t, n, k)) {
                    break;
                }
                memcpy(c + cnt, t + j + 1, g);
                cnt += g;
                cand_n[nc] = cnt;
                cand_e[nc++] = k;
                j = k;
                if (g < 4) {
                    break;
                }
            }
        }
        while (nc > 0) {
            nc--;
            if (iban_ok(c, cand_n[nc])) {
                if (!emit(m, i, cand_e[nc])) {
                    return;
                }
                d = cand_e[nc] - 1;
                break;
            }
        }
    }
}


static void
det_ipv4(const unsigned char *t, size_t n, emit_t *m)
{
    size_t i, j, k, len;
    int    oct, ok;

    i = m->digit0;

    while ((i = next_digit(t, i, n)) < n) {
        ok = !wb(t, i) && !(i > 0 && t[i - 1] == '.');
        j = i;
        for (k = 0; ok && k < 4; k++) {
            if (k > 0) {
                if (j + 1 >= n || t[j] != '.' || !IS_DIGIT(t[j + 1])) {
                    ok = 0;
                    break;
                }
                j++;
            }
            oct = 0;
            len = 0;
            while (j < n && IS_DIGIT(t[j]) && len < 4) {
                oct = oct * 10 + t[j++] - '0';
                len++;
            }
            if (len == 0 || len > 3 || oct > 255
                || (len > 1 && t[j - len] == '0'))
            {
                ok = 0;
            }
        }
        if (ok && (wa(t, n, j)
                   || (j + 1 < n && t[j] == '.' && IS_DIGIT(t[j + 1]))))
        {
            ok = 0;
        }
        if (ok) {
            if (!emit(m, i, j)) {
                return;
            }
            i = j;
            continue;
        }
        while (i < n && (IS_DIGIT(t[i]) || t[i] == '.')) {
            i++;
        }
    }
}


static const struct {
    const char *prefix;
    size_t      len;
    size_t      min;          /* characters after the prefix */
} key_prefixes[] = {
    { "sk-", 3, 20 }, { "sk_live_", 8, 16 }, { "sk_test_", 8, 16 },
    { "rk_live_", 8, 16 }, { "rk_test_", 8, 16 },
    { "ghp_", 4, 30 }, { "gho_", 4, 30 }, { "ghu_", 4, 30 },
    { "ghs_", 4, 30 }, { "ghr_", 4, 30 }, { "github_pat_", 11, 30 },
    { "xoxb-", 5, 10 }, { "xoxp-", 5, 10 }, { "xoxa-", 5, 10 },
    { "xoxr-", 5, 10 }, { "xoxs-", 5, 10 },
    { "glpat-", 6, 20 }, { "AIza", 4, 30 },
    { NULL, 0, 0 }
};

static const char *aws_prefixes[] = {
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA",
    "ACCA", NULL
};

#define IS_KEYCH(c) (IS_ALNUM(c) || (c) == '_' || (c) == '-')


static size_t
key_run(const unsigned char *t, size_t n, size_t j)
{
    while (j < n && IS_KEYCH(t[j])) {
        j++;
    }
    return j;
}


static const unsigned char *
find(const unsigned char *h, size_t n, const char *needle, size_t len)
{
    const unsigned char *p = h, *end = h + n;

    while ((size_t) (end - p) >= len
           && (p = memchr(p, needle[0], end - p - len + 1)) != NULL)
    {
        if (memcmp(p, needle, len) == 0) {
            return p;
        }
        p++;
    }
    return NULL;
}


/* the end of a private key block whose header ends at h */
typedef struct {
    size_t from;              /* searched from here ... */
    size_t at, end;           /* ... and found an END line here, or none */
    int    none;
} pk_cache_t;


static size_t
pk_block_end(const unsigned char *t, size_t n, size_t h, pk_cache_t *pc)
{
    const unsigned char *e, *k;
    size_t               pos;

    if (!(pc->from <= h && (pc->none || pc->at >= h))) {
        pc->from = h;
        pc->none = 1;
        pos = h;
        while (pos < n
               && (e = find(t + pos, n - pos, "-----END ", 9)) != NULL)
        {
            pos = e - t;
            k = find(e, n - pos < 72 ? n - pos : 72, "PRIVATE KEY-----", 16);
            if (k != NULL) {
                pc->none = 0;
                pc->at = pos;
                pc->end = (k - t) + 16;
                break;
            }
            pos += 9;
        }
    }
    if (!pc->none) {
        return pc->end;
    }
    /* no END line: the base64 body that follows */
    pos = h;
    while (pos < n && (IS_ALNUM(t[pos]) || t[pos] == '+' || t[pos] == '/'
                       || t[pos] == '=' || t[pos] == '\n' || t[pos] == '\r'
                       || t[pos] == ' ' || t[pos] == '\t' || t[pos] == ':'
                       || t[pos] == ','))
    {
        pos++;
    }
    return pos;
}


/* a secret starts with one of these byte pairs: "ey", "sk", "rk", "gh",
 * "gi", "gl", "xo", "A" + capital, "--"; the first byte's bits and the
 * second's must meet */
static const unsigned char secret_first[256] = {
    ['e'] = 1, ['s'] = 2, ['r'] = 2, ['g'] = 4, ['x'] = 8, ['A'] = 16,
    ['-'] = 32
};

static const unsigned char secret_second[256] = {
    ['y'] = 1, ['k'] = 2, ['h'] = 4, ['i'] = 4, ['l'] = 4, ['o'] = 8,
    ['A'] = 16, ['B'] = 16, ['C'] = 16, ['D'] = 16, ['E'] = 16, ['F'] = 16,
    ['G'] = 16, ['H'] = 16, ['I'] = 16, ['J'] = 16, ['K'] = 16, ['L'] = 16,
    ['M'] = 16, ['N'] = 16, ['O'] = 16, ['P'] = 16, ['Q'] = 16, ['R'] = 16,
    ['S'] = 16, ['T'] = 16, ['U'] = 16, ['V'] = 16, ['W'] = 16, ['X'] = 16,
    ['Y'] = 16, ['Z'] = 16, ['-'] = 32
};


/* the end of the secret that starts at t[i], or 0 */
static size_t
secret_at(const unsigned char *t, size_t n, size_t i, pk_cache_t *pc)
{
    unsigned c = t[i];
    size_t   j, k;
    int      p;

    if (!(secret_first[c] & secret_second[t[i + 1]])) {
        return 0;
    }
    if (c == '-') {
        /* -----BEGIN [RSA |EC |OPENSSH |ENCRYPTED ]PRIVATE KEY----- */
        if (n - i < 27 || memcmp(t + i, "-----BEGIN ", 11) != 0) {
            return 0;
        }
        for (j = i + 11; j < n && j - i < 72
             && (IS_UPPER(t[j]) || IS_DIGIT(t[j]) || t[j] == ' '); j++)
        {
        }
        if (j - (i + 11) < 11 || memcmp(t + j - 11, "PRIVATE KEY", 11) != 0
            || n - j < 5 || memcmp(t + j, "-----", 5) != 0)
        {
            return 0;
        }
        return pk_block_end(t, n, j + 5, pc);
    }

    /* cheap prefix tests before the boundary test */
    switch (c) {
    case 'e':
        p = n - i >= 3 && t[i + 1] == 'y' && t[i + 2] == 'J';
        break;
    case 's':
    case 'r':
        p = n - i >= 3 && t[i + 1] == 'k'
            && (t[i + 2] == '-' || t[i + 2] == '_');
        break;
    case 'g':
        p = n - i >= 4 && (t[i + 1] == 'h' || t[i + 1] == 'i'
                           || t[i + 1] == 'l');
        break;
    case 'x':
        p = n - i >= 4 && t[i + 1] == 'o' && t[i + 2] == 'x';
        break;
    default:                                             /* 'A' */
        p = n - i >= 4 && IS_UPPER(t[i + 1]);
    }
    if (!p || wb(t, i) || (i > 0 && t[i - 1] == '-')) {
        return 0;
    }

    if (c == 'A' && n - i >= 20) {
        for (p = 0; aws_prefixes[p]; p++) {
            if (memcmp(t + i, aws_prefixes[p], 4) == 0) {
                break;
            }
        }
        if (aws_prefixes[p]) {
            for (j = i + 4;
                 j < i + 20 && (IS_UPPER(t[j]) || IS_DIGIT(t[j])); j++)
            {
                /* 16 more */
            }
            if (j == i + 20 && !wa(t, n, j)) {
                return j;
            }
        }
    }

    if (c == 'e' && n - i >= 3 && t[i + 1] == 'y' && t[i + 2] == 'J') {
        /* a JWT: three base64url parts, the first "eyJ" ({") */
        j = key_run(t, n, i);
        if (j - i >= 10 && j < n && t[j] == '.') {
            k = key_run(t, n, j + 1);
            if (k - j - 1 >= 4 && k < n && t[k] == '.') {
                return key_run(t, n, k + 1);
            }
        }
    }

    for (p = 0; key_prefixes[p].prefix; p++) {
        if (n - i > key_prefixes[p].len
            && memcmp(t + i, key_prefixes[p].prefix, key_prefixes[p].len)
               == 0)
        {
            j = key_run(t, n, i + key_prefixes[p].len);
            if (j - i - key_prefixes[p].len >= key_prefixes[p].min) {
                return j;
            }
            break;
        }
    }
    return 0;
}


/* Every secret holds one of '-', '_', 'A', 'J' at most SECRET_BACK bytes
 * from its start: "-----BEGIN", "sk-" / "sk_" / "rk_" at +2, "gh?_" at +3,
 * "xox?-" at +4, "glpat-" at +5, "github_pat_" at +6, "A..." at 0 (AWS,
 * AIza), "eyJ" at +2. Those bytes are rare in prose, so the scan jumps
 * from one to the next and tries only the few starts before each. */
#define SECRET_BACK 6

static void
det_secrets(const unsigned char *t, size_t n, emit_t *m)
{
    pk_cache_t pc = { (size_t) -1, 0, 0, 0 };
    size_t     i = 0, s, trig, k;

    /* starts below i are done; a start with no trigger within
     * SECRET_BACK bytes after it cannot be a secret */
    while (i + 1 < n) {
        trig = tp_find_any4(t, i, n, '-', '_', 'A', 'J');
        if (trig == n) {
            break;
        }
        s = trig >= i + SECRET_BACK ? trig - SECRET_BACK : i;
        for (k = 0; s <= trig && s + 1 < n; s++) {
            k = secret_at(t, n, s, &pc);
            if (k != 0) {
                break;
            }
        }
        if (k == 0) {
            i = trig + 1;
            continue;
        }
        if (!emit(m, s, k)) {
            return;
        }
        i = k;
    }
}


typedef void (*det_fn)(const unsigned char *t, size_t n, emit_t *m);

static const det_fn detectors[D_COUNT] = {
    det_email, det_phone, det_card, det_ssn, det_iban, det_ipv4, det_secrets
};


/* ---- masked excerpts ---- */

typedef struct {
    char   *b;
    size_t  len;
} xb_t;


static void
xput(xb_t *x, const char *s, size_t n)
{
    if (x->len + n >= TP_POLICY_EXCERPT_MAX) {
        n = TP_POLICY_EXCERPT_MAX - 1 - x->len;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    memcpy(x->b + x->len, s, n);
    x->len += n;
    x->b[x->len] = '\0';
}


static void
xstars(xb_t *x, size_t n)
{
    static const char stars[] = "************";

    xput(x, stars, n < 12 ? n : 12);
}


/* a printable code point of the text at i, or '?' */
static void
xchar(xb_t *x, const unsigned char *t, size_t n, size_t i)
{
    size_t len = 1;

    if (t[i] >= 0x80) {
        while (i + len < n && len < 4 && (t[i + len] & 0xc0) == 0x80) {
            len++;
        }
    } else if (t[i] < 0x20 || t[i] == 0x7f) {
        xput(x, "?", 1);
        return;
    }
    xput(x, (const char *) t + i, len);
}


static void
mask_generic(xb_t *x, const unsigned char *t, size_t s, size_t e)
{
    size_t chars = 0, i, last = s;

    for (i = s; i < e; i++) {
        if ((t[i] & 0xc0) != 0x80) {
            chars++;
            last = i;
        }
    }
    if (chars <= 4) {
        xput(x, "***", 3);
        return;
    }
    xchar(x, t, e, s);
    xstars(x, chars - 2 > 8 ? 8 : chars - 2);
    xchar(x, t, e, last);
}


static void
mask_digits(xb_t *x, const unsigned char *t, size_t s, size_t e, size_t head,
            size_t tail)
{
    unsigned char d[64];
    size_t        n = 0, i;

    for (i = s; i < e && n < sizeof(d); i++) {
        if (IS_ALNUM(t[i])) {
            d[n++] = t[i];
        }
    }
    if (head + tail >= n) {
        head = 0;
        tail = n > 4 ? n / 4 : 0;
    }
    xput(x, (const char *) d, head);
    xstars(x, n - head - tail);
    xput(x, (const char *) d + n - tail, tail);
}


static void
mask(xb_t *x, const char *tag, const unsigned char *t, size_t s, size_t e)
{
    const unsigned char *at, *dot;
    size_t               i, k, dots;

    if (strcmp(tag, "email") == 0
        && (at = memchr(t + s, '@', e - s)) != NULL)
    {
        xput(x, (const char *) t + s, 1);
        xput(x, "***@", 4);
        xput(x, (const char *) at + 1, 1);
        xput(x, "***", 3);
        for (dot = t + e - 1; dot > at && *dot != '.'; dot--) {
            /* the top-level domain */
        }
        xput(x, (const char *) dot, t + e - dot);
        return;
    }
    if (strcmp(tag, "credit_card") == 0 || strcmp(tag, "iban") == 0) {
        mask_digits(x, t, s, e, 4, 4);
        return;
    }
    if (strcmp(tag, "phone") == 0) {
        if (t[s] == '+') {
            xput(x, "+", 1);
        }
        mask_digits(x, t, s, e, 0, 4);
        return;
    }
    if (strcmp(tag, "ssn") == 0) {
        xput(x, "***-**-", 7);
        xput(x, (const char *) t + e - 4, 4);
        return;
    }
    if (strcmp(tag, "ipv4") == 0) {
        for (i = s, dots = 0; i < e && dots < 2; i++) {
            dots += t[i] == '.';
        }
        xput(x, (const char *) t + s, i - s);
        xput(x, "*.*", 3);
        return;
    }
    if (strcmp(tag, "secrets") == 0) {
        if (t[s] == '-') {
            /* the header line only */
            for (k = s + 11; k < e && t[k] != '-'; k++) {
            }
            xput(x, (const char *) t + s, k + 5 <= e ? k + 5 - s : k - s);
            xput(x, "****\xe2\x80\xa6", 7);
            return;
        }
        for (k = 0; key_prefixes[k].prefix; k++) {
            if (e - s > key_prefixes[k].len
                && memcmp(t + s, key_prefixes[k].prefix, key_prefixes[k].len)
                   == 0)
            {
                break;
            }
        }
        i = key_prefixes[k].prefix ? key_prefixes[k].len
            : t[s] == 'e' ? 3 : 4;
        xput(x, (const char *) t + s, i);
        xput(x, "****\xe2\x80\xa6", 7);
        if (e - s >= i + 12) {
            xput(x, (const char *) t + e - 4, 4);
        }
        return;
    }
    mask_generic(x, t, s, e);
}


/* ---- the evaluation ---- */

/* keep: the violation refuses the request, and is always reported */
static tp_violation_t *
add_violation(ev_t *ev, const rule_t *r, const char *detector,
              unsigned count, int keep)
{
    tp_policy_result_t *out = ev->out;
    tp_violation_t     *v, *nv;
    size_t              cap;

    if (out->nviolations == TP_POLICY_MAX_VIOLATIONS) {
        out->dropped++;
        if (!keep) {
            return NULL;
        }
        /* it takes the last place */
        out->nviolations--;
    }
    if (out->nviolations == ev->vcap) {
        cap = ev->vcap ? ev->vcap * 2 : 8;
        nv = tp_arena_alloc(&ev->p->arena, cap * sizeof(*nv));
        if (nv == NULL) {
            ev->nomem = 1;
            return NULL;
        }
        if (out->nviolations) {
            memcpy(nv, out->violations, out->nviolations * sizeof(*nv));
        }
        out->violations = nv;
        ev->vcap = cap;
    }
    v = &out->violations[out->nviolations];
    memset(v, 0, sizeof(*v));
    v->rule_id = r->id ? tp_arena_strndup(&ev->p->arena, r->id, strlen(r->id))
                 : NULL;
    v->rule_name = r->name ? tp_arena_strndup(&ev->p->arena, r->name,
                                              strlen(r->name))
                   : NULL;
    if ((r->id && !v->rule_id) || (r->name && !v->rule_name)) {
        ev->nomem = 1;
        return NULL;
    }
    out->nviolations++;
    v->type = type_names[r->type];
    v->detector = detector;
    v->action = r->action;
    v->count = count;
    if (r->action > out->action) {
        out->action = r->action;
    }
    return v;
}


static void
found(ev_t *ev, const rule_t *r, emit_t *m, const unsigned char *t)
{
    tp_violation_t *v;
    xb_t            x;

    if (m->count == 0) {
        return;
    }
    v = add_violation(ev, r, m->tag, m->count, r->action == TP_ACTION_BLOCK);
    if (v == NULL) {
        return;
    }
    x.b = v->excerpt;
    x.len = 0;
    v->excerpt[0] = '\0';
    mask(&x, m->tag, t, m->s, m->e);
    if (r->action == TP_ACTION_BLOCK) {
        ev->out->blocked_by = v;
    }
}


static int64_t
now_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}


/* sets ev->why when the rule's or the evaluation's time is up */
static int
out_of_time(ev_t *ev)
{
    int64_t now = now_ns();

    if (now >= ev->eval_end) {
        ev->why = "evaluation time budget";
    } else if (now >= ev->rule_end) {
        ev->why = "time budget";
    }
    return ev->why != NULL;
}


/* CALLOUT, at each start position: a negative answer ends the match */
static int
re_callout(pcre2_callout_block *cb, void *data)
{
    ev_t *ev = data;

    (void) cb;
    if (++ev->callouts % CALLOUT_EVERY == 0 && out_of_time(ev)) {
        return PCRE2_ERROR_CALLOUT;
    }
    return 0;
}


static void
prompt_re_free(tp_prompt_t *p)
{
    pcre2_match_data_free(p->re_md);
    pcre2_general_context_free(p->re_gctx);
    p->re_md = p->re_gctx = NULL;
}


static pcre2_match_data *
match_data(ev_t *ev)
{
    const tp_policy_limits_t *lim = &ev->set->lim;
    tp_prompt_t              *p = ev->p;

    if (p->re_md == NULL) {
        if (p->re_gctx == NULL) {
            p->re_gctx = pcre2_general_context_create(re_malloc, re_free,
                                                      &p->arena.a);
            if (p->re_gctx == NULL) {
                return NULL;
            }
            p->re_free = prompt_re_free;
        }
        p->re_md = pcre2_match_data_create(1, p->re_gctx);
    }
    if (p->re_md != NULL && ev->mctx == NULL) {
        /* not the set's: the callout's data is this evaluation */
        ev->mctx = pcre2_match_context_create(p->re_gctx);
        if (ev->mctx == NULL) {
            return NULL;
        }
        pcre2_set_match_limit(ev->mctx, lim->match_limit);
        pcre2_set_depth_limit(ev->mctx, lim->depth_limit);
        pcre2_set_heap_limit(ev->mctx, lim->heap_limit_kb);
        pcre2_set_callout(ev->mctx, re_callout, ev);
    }
    return p->re_md;
}


static void
match_error(ev_t *ev, const rule_t *r)
{
    if (ev->out->match_errors++ == 0 && r->id != NULL) {
        ev->out->match_error_rule = tp_arena_strndup(&ev->p->arena, r->id,
                                                     strlen(r->id));
    }
}


/* A regex of r could not finish (ev->why): a violation that says so. A
 * block or redact rule refuses the request; a log rule lets it through. */
static void
unfinished(ev_t *ev, const rule_t *r)
{
    tp_policy_result_t *out = ev->out;
    tp_violation_t     *v;
    int                 closed = r->action != TP_ACTION_LOG;

    match_error(ev, r);
    v = add_violation(ev, r, "unfinished", 1, closed);
    if (v != NULL) {
        snprintf(v->excerpt, sizeof(v->excerpt), "%s", ev->why);
    }
    if (closed) {
        out->action = TP_ACTION_BLOCK;
        out->blocked_by = v;
        out->unfinished = v;
    }
}


/* 0, or -1 when the pattern could not finish (ev->why set) or memory ran
 * out (ev->nomem) */
static int
run_regex(ev_t *ev, pcre2_code *code, emit_t *m)
{
    const unsigned char *t = ev->p->text;
    size_t               n = ev->p->text_len, off = 0, s, e;
    pcre2_match_data    *md = match_data(ev);
    PCRE2_SIZE          *ov;
    int                  rc;

    if (md == NULL) {
        ev->nomem = 1;
        return -1;
    }
    while (off <= n) {
        if (out_of_time(ev)) {
            return -1;
        }
        rc = pcre2_match(code, t, n, off, 0, md, ev->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
            return 0;
        }
        if (rc < 0) {
            switch (rc) {
            case PCRE2_ERROR_CALLOUT:        break;   /* ev->why is set */
            case PCRE2_ERROR_MATCHLIMIT:     ev->why = "match limit"; break;
            case PCRE2_ERROR_DEPTHLIMIT:     ev->why = "depth limit"; break;
            case PCRE2_ERROR_HEAPLIMIT:      ev->why = "heap limit"; break;
            case PCRE2_ERROR_JIT_STACKLIMIT: ev->why = "JIT stack limit";
                                             break;
            case PCRE2_ERROR_NOMEMORY:       ev->nomem = 1; break;
            default:                         ev->why = "match error";
            }
            if (ev->why == NULL && !ev->nomem) {
                ev->why = "match error";
            }
            return -1;
        }
        ov = pcre2_get_ovector_pointer(md);
        s = ov[0];
        e = ov[1];
        if (e > s && s >= off) {
            if (!emit(m, s, e)) {
                return ev->nomem ? -1 : 0;
            }
            off = e;
            continue;
        }
        /* an empty match: step over one character */
        off = (e > off ? e : off) + 1;
        while (off < n && (t[off] & 0xc0) == 0x80) {
            off++;
        }
    }
    return 0;
}


static int
ac_hit(const ac_t *ac, const unsigned char *t, size_t n, size_t i,
       uint32_t row, emit_t *m)
{
    size_t  start;
    int32_t h, k;

    for (h = ac->hit[row / ac->ncls]; h >= 0; h = ac->dict[h]) {
        k = ac->out[h];
        start = i + 1 - ac->kwlen[k];
        if (((ac->kwedge[k] & 1) && wb(t, start))
            || ((ac->kwedge[k] & 2) && wa(t, n, i + 1)))
        {
            continue;
        }
        if (!emit(m, start, i + 1)) {
            return 0;
        }
    }
    return 1;
}


/* from the start state, the next byte that leaves it (n when none) */
static inline size_t
ac_skip(const ac_t *ac, const unsigned char *t, size_t i, size_t n)
{
    if (ac->nexits) {
        return tp_find_any4(t, i, n, ac->exits[0], ac->exits[1],
                            ac->exits[2], ac->exits[3]);
    }
    while (i < n && ac->root_stay[t[i]]) {
        i++;
    }
    return i;
}


/* one dependent load per byte: (next row << 1 | has output) */
static void
ac_scan(const ac_t *ac, const unsigned char *t, size_t n, emit_t *m)
{
    const uint8_t *cls = ac->cls;
    size_t         i;
    uint32_t       row = 0, v;

    if (ac->delta16 != NULL) {
        const uint16_t *d = ac->delta16;

        for (i = 0; i < n; i++) {
            if (row == 0 && (i = ac_skip(ac, t, i, n)) == n) {
                break;
            }
            v = d[row + cls[t[i]]];
            row = v >> 1;
            if ((v & 1) && !ac_hit(ac, t, n, i, row, m)) {
                return;
            }
        }
        return;
    }
    for (i = 0; i < n; i++) {
        if (row == 0 && (i = ac_skip(ac, t, i, n)) == n) {
            break;
        }
        v = (uint32_t) ac->delta[row + cls[t[i]]];
        row = v >> 1;
        if ((v & 1) && !ac_hit(ac, t, n, i, row, m)) {
            return;
        }
    }
}


#define LOWER(c)  (IS_UPPER((unsigned char) (c)) ? (c) + 32 : (c))

int
tp_policy_glob(const char *pat, const char *s)
{
    const char *star = NULL, *mark = NULL;

    /* greedy with one backtrack point: linear enough for model names */
    while (*s) {
        if (*pat == '*') {
            star = ++pat;
            mark = s;
            continue;
        }
        if (*pat == '?' || (*pat && LOWER(*pat) == LOWER(*s)))
        {
            pat++;
            s++;
            continue;
        }
        if (star == NULL) {
            return 0;
        }
        pat = star;
        s = ++mark;
    }
    while (*pat == '*') {
        pat++;
    }
    return *pat == '\0';
}


static int
in_list(char **list, size_t n, const char *v)
{
    size_t i;

    if (v == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (strcmp(list[i], v) == 0) {
            return 1;
        }
    }
    return 0;
}


static int
applies(const rule_t *r, const tp_policy_ctx_t *ctx)
{
    static const tp_policy_ctx_t none = { -1, NULL, NULL };

    if (ctx == NULL) {
        ctx = &none;
    }
    if (r->providers
        && (ctx->provider < 0 || ctx->provider >= TP_PROVIDERS
            || !(r->providers & (1u << ctx->provider))))
    {
        return 0;
    }
    return (r->nenvs == 0 || in_list(r->envs, r->nenvs, ctx->env))
           && (r->nkeys == 0 || in_list(r->keys, r->nkeys, ctx->key_id));
}


size_t
tp_policy_applicable(const tp_policy_set_t *set, const tp_policy_ctx_t *ctx)
{
    size_t i, n = 0;

    for (i = 0; set != NULL && i < set->nrules; i++) {
        n += applies(&set->rules[i], ctx);
    }
    return n;
}


static void
eval_model(ev_t *ev, const rule_t *r)
{
    const char     *model = ev->p->model;
    tp_violation_t *v;
    size_t          i;
    int             bad = 0;

    for (i = 0; model && i < r->ndeny && !bad; i++) {
        bad = tp_policy_glob(r->deny[i], model);
    }
    if (!bad && r->nallow) {
        bad = 1;
        for (i = 0; model && i < r->nallow && bad; i++) {
            bad = !tp_policy_glob(r->allow[i], model);
        }
    }
    if (!bad || (v = add_violation(ev, r, "model", 1,
                                        r->action == TP_ACTION_BLOCK))
                  == NULL) {
        return;
    }
    snprintf(v->excerpt, sizeof(v->excerpt), "%s", model ? model : "(none)");
    if (r->action == TP_ACTION_BLOCK) {
        ev->out->blocked_by = v;
    }
}


static void
eval_limits(ev_t *ev, const rule_t *r)
{
    tp_violation_t *v = NULL;
    tp_prompt_t    *p = ev->p;

    if (r->max_chars >= 0 && (int64_t) p->chars > r->max_chars) {
        v = add_violation(ev, r, "max_prompt_chars", 1,
                          r->action == TP_ACTION_BLOCK);
        if (v != NULL) {
            snprintf(v->excerpt, sizeof(v->excerpt), "%zu > %lld", p->chars,
                     (long long) r->max_chars);
            if (r->action == TP_ACTION_BLOCK) {
                ev->out->blocked_by = v;
            }
        }
    }
    if (r->max_out >= 0 && p->max_output_tokens > r->max_out) {
        v = add_violation(ev, r, "max_output_tokens", 1,
                          r->action == TP_ACTION_BLOCK);
        if (v != NULL) {
            snprintf(v->excerpt, sizeof(v->excerpt), "%lld > %lld",
                     (long long) p->max_output_tokens,
                     (long long) r->max_out);
            if (r->action == TP_ACTION_BLOCK && ev->out->blocked_by == NULL) {
                ev->out->blocked_by = v;
            }
        }
    }
}


int
tp_policy_eval(const tp_policy_set_t *set, tp_prompt_t *p,
               const tp_policy_ctx_t *ctx, tp_policy_result_t *out)
{
    const unsigned char *text = p->text, *folded;
    const rule_t        *r;
    ev_t                 ev;
    emit_t               m;
    size_t               i, k, n = p->text_len;
    int                  d;

    memset(out, 0, sizeof(*out));
    memset(&ev, 0, sizeof(ev));
    ev.set = set;
    ev.p = p;
    ev.out = out;
    if (set != NULL) {
        ev.eval_end = now_ns() + (int64_t) set->lim.eval_ms * 1000000;
    }
    m.digit0 = next_digit(text, 0, n);

    for (i = 0; set != NULL && i < set->nrules && !ev.nomem
                && out->action != TP_ACTION_BLOCK; i++)
    {
        r = &set->rules[i];
        if (!applies(r, ctx)) {
            continue;
        }
        m.ev = &ev;
        m.all = r->action == TP_ACTION_REDACT;
        m.count = 0;

        switch (r->type) {

        case T_REGEX:
            /* each rule its own time, within the evaluation's */
            m.tag = "regex";
            ev.why = NULL;
            ev.rule_end = now_ns() + (int64_t) set->lim.rule_ms * 1000000;
            for (k = 0; k < r->nre && n > 0; k++) {
                if (run_regex(&ev, r->re[k], &m) != 0) {
                    break;
                }
                if (m.count && !m.all) {
                    break;
                }
            }
            if (ev.nomem) {
                break;
            }
            if (ev.why != NULL && (m.count == 0 || m.all)) {
                /* a block or log rule that matched before is just a
                 * match; anything else could not finish */
                unfinished(&ev, r);
                break;
            }
            found(&ev, r, &m, text);
            break;

        case T_KEYWORDS:
            if (n == 0) {
                break;
            }
            /* the automaton folds ASCII itself (compile_keywords) */
            folded = p->non_ascii ? tp_prompt_folded(p) : text;
            if (folded == NULL) {
                ev.nomem = 1;
                break;
            }
            m.tag = "keyword";
            ac_scan(r->ac, folded, n, &m);
            found(&ev, r, &m, text);
            break;

        case T_PII:
            for (d = 0; d < D_COUNT && n > 0 && !ev.nomem
                        && out->action != TP_ACTION_BLOCK; d++)
            {
                if (!(r->detectors & (1u << d))) {
                    continue;
                }
                m.tag = det_names[d];
                m.count = 0;
                detectors[d](text, n, &m);
                found(&ev, r, &m, text);
            }
            break;

        case T_MODEL:
            eval_model(&ev, r);
            break;

        case T_LIMITS:
            eval_limits(&ev, r);
            break;
        }
    }
    pcre2_match_context_free(ev.mctx);
    return ev.nomem ? -1 : 0;
}


const char *
tp_policy_action_name(int action)
{
    switch (action) {
    case TP_ACTION_LOG:    return "log";
    case TP_ACTION_REDACT: return "redact";
    case TP_ACTION_BLOCK:  return "block";
    }
    return "none";
}
