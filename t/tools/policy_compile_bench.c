/* policy_compile_bench.c - the cost of compiling a maximal allowed rule set
 * (make bench-policy): for each shape below, one rule is grown to the
 * per-rule budget (tp_policy_check_rule, a binary search on its size), then
 * copies of it (other ids) fill the set budget, as the sidecar would let a
 * tenant write them. Prints, per shape, the rules, the set's compiled size
 * (tp_policy_size), the JSON size, and compile time (median and max of N,
 * CPU time of the compiling thread).
 *
 *   policy-compile-bench [N] [set_bytes] [rule_bytes]      N defaults to 21
 *
 * Shapes: keywords (random words, no shared prefixes, 37 byte classes),
 * keywords over many byte classes (wide), regex with big compiled code,
 * regex with big JIT code, many small pii rules, model rules of globs, and
 * the worst mix: the regex budget spent on JIT-heavy patterns, the rest on
 * keywords. */
#include "trueport_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_JSON (64u * 1024 * 1024)

typedef struct {
    const char *name;
    /* writes rule id with n items into buf; returns its length */
    size_t    (*rule)(char *buf, const char *id, size_t n);
    size_t      max_items;
} shape_t;


static unsigned long  seed = 1;

static unsigned
rnd(void)
{
    seed = seed * 6364136223846793005ul + 1442695040888963407ul;
    return (unsigned) (seed >> 33);
}


static size_t
kw_rule(char *buf, const char *id, size_t n)
{
    static const char  al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char              *o = buf;
    size_t             i, j;

    seed = 7;
    o += sprintf(o, "{\"id\":\"%s\",\"name\":\"kw %s\",\"type\":\"keywords\","
                 "\"action\":\"block\",\"config\":{\"keywords\":[", id, id);
    for (i = 0; i < n; i++) {
        *o++ = i ? ',' : '"';
        if (i) {
            *o++ = '"';
        }
        for (j = 0; j < 10; j++) {
            *o++ = al[rnd() % 36];
        }
        *o++ = '"';
    }
    return (size_t) (o - buf) + sprintf(o, "]}}");
}


/* keywords over 190 byte classes: 2-byte UTF-8 letters make the table wide */
static size_t
kw_wide_rule(char *buf, const char *id, size_t n)
{
    char   *o = buf;
    size_t  i, j;

    seed = 11;
    o += sprintf(o, "{\"id\":\"%s\",\"name\":\"wide %s\",\"type\":\"keywords\","
                 "\"action\":\"block\",\"config\":{\"keywords\":[", id, id);
    for (i = 0; i < n; i++) {
        o += sprintf(o, "%s\"", i ? "," : "");
        for (j = 0; j < 6; j++) {
            unsigned c = 0x400 + rnd() % 0x100;       /* Cyrillic: d0-d3 xx */

            *o++ = (char) (0xc0 | c >> 6);
            *o++ = (char) (0x80 | (c & 0x3f));
            c = '#' + rnd() % 57;                     /* '#' .. '[' */
            *o++ = (char) c;
        }
        *o++ = '"';
    }
    return (size_t) (o - buf) + sprintf(o, "]}}");
}


static size_t
re_code_rule(char *buf, const char *id, size_t n)
{
    char   *o = buf;
    size_t  i;

    o += sprintf(o, "{\"id\":\"%s\",\"name\":\"re %s\",\"type\":\"regex\","
                 "\"action\":\"block\",\"config\":{\"patterns\":[", id, id);
    for (i = 0; i < n; i++) {
        o += sprintf(o, "%s\"(?:[a-z]\\\\d%zu){900}x\"", i ? "," : "", i);
    }
    return (size_t) (o - buf) + sprintf(o, "]}}");
}


static size_t
re_jit_rule(char *buf, const char *id, size_t n)
{
    char   *o = buf;
    size_t  i, k;

    o += sprintf(o, "{\"id\":\"%s\",\"name\":\"jit %s\",\"type\":\"regex\","
                 "\"action\":\"block\",\"config\":{\"patterns\":[", id, id);
    for (i = 0; i < n; i++) {
        o += sprintf(o, "%s\"(?i)", i ? "," : "");
        for (k = 0; k < 60; k++) {
            o += sprintf(o, "%s\\\\w{1,9}@(?:\\\\d{1,5}\\\\.){1,3}[^\\\\s]{2,%zu}",
                         k ? "|" : "", 6 + (i + k) % 50);
        }
        *o++ = '"';
    }
    return (size_t) (o - buf) + sprintf(o, "]}}");
}


static size_t
pii_rule(char *buf, const char *id, size_t n)
{
    (void) n;
    return (size_t) sprintf(buf, "{\"id\":\"%s\",\"name\":\"pii %s\","
        "\"type\":\"pii\",\"action\":\"block\",\"config\":{\"detectors\":"
        "[\"email\",\"phone\",\"credit_card\",\"ssn\",\"iban\",\"ipv4\","
        "\"secrets\"]}}", id, id);
}


static size_t
glob_rule(char *buf, const char *id, size_t n)
{
    char   *o = buf;
    size_t  i;

    o += sprintf(o, "{\"id\":\"%s\",\"name\":\"model %s\",\"type\":\"model\","
                 "\"action\":\"block\",\"config\":{\"deny\":[", id, id);
    for (i = 0; i < n; i++) {
        o += sprintf(o, "%s\"model-%06zu-*\"", i ? "," : "", i);
    }
    return (size_t) (o - buf) + sprintf(o, "]}}");
}


/* the worst mix: the regex budget spent on JIT-heavy patterns (one per
 * rule, the first rules), the rest of the set on keywords */
static size_t
mixed_rule(char *buf, const char *id, size_t n)
{
    if (strncmp(id, "rule-", 5) == 0 && atoi(id + 5) < 2) {
        return re_jit_rule(buf, id, 1);
    }
    return kw_rule(buf, id, n);
}


static const shape_t  shapes[] = {
    { "keywords", kw_rule, 20000 },
    { "keywords-wide", kw_wide_rule, 20000 },
    { "regex-code", re_code_rule, 64 },
    { "regex-jit", re_jit_rule, 64 },
    { "pii", pii_rule, 1 },
    { "model-globs", glob_rule, 10000 },
    { "mixed", mixed_rule, 20000 },
};


static size_t
set_json(char *json, const shape_t *sh, size_t nrules, size_t items)
{
    char   *o = json, id[32];
    size_t  i;

    *o++ = '[';
    for (i = 0; i < nrules; i++) {
        snprintf(id, sizeof(id), "rule-%zu", i);
        if (i) {
            *o++ = ',';
        }
        o += sh->rule(o, id, items);
    }
    *o++ = ']';
    return (size_t) (o - json);
}


/* CPU time of this thread: what a worker spends, without the preemption
 * of a busy machine */
static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static int
dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


int
main(int argc, char **argv)
{
    tp_policy_limits_t  lim = tp_policy_limits_default;
    tp_policy_set_t    *set;
    const shape_t      *sh;
    size_t              lo, hi, mid, size, rsize, len, nrules;
    double              t0, *ms, worst = 0;
    char               *rule, *json, err[512];
    int                 n, j, code, last;

    n = argc > 1 ? atoi(argv[1]) : 21;
    if (argc > 2) {
        lim.set_bytes = strtoul(argv[2], NULL, 10);
    }
    if (argc > 3) {
        lim.rule_bytes = strtoul(argv[3], NULL, 10);
    }
    rule = malloc(MAX_JSON);
    json = malloc(MAX_JSON);
    ms = malloc(sizeof(double) * (n > 0 ? n : 1));
    if (n <= 0 || rule == NULL || json == NULL || ms == NULL) {
        fprintf(stderr, "usage: policy-compile-bench [N] [set_bytes] "
                "[rule_bytes]\n");
        return 2;
    }
    printf("set budget %zu bytes, rule budget %zu bytes, %d compiles each\n",
           lim.set_bytes, lim.rule_bytes, n);
    printf("%-14s %6s %6s %10s %10s %9s %9s\n", "shape", "items", "rules",
           "bytes", "json", "median", "max");

    for (sh = shapes; sh < shapes + sizeof(shapes) / sizeof(shapes[0]); sh++) {
        /* the largest rule of this shape the rule budget admits */
        lo = 1;
        hi = sh->max_items;
        while (lo < hi) {
            mid = (lo + hi + 1) / 2;
            sh->rule(rule, "r", mid);
            code = tp_policy_check_rule(rule, strlen(rule), &lim, &size, err,
                                        sizeof(err));
            if (code == TP_POLICY_OK) {
                lo = mid;
            } else if (code == TP_POLICY_EBUDGET) {
                hi = mid - 1;
            } else {
                fprintf(stderr, "%s: %s\n", sh->name, err);
                return 1;
            }
        }
        sh->rule(rule, "r", lo);
        if (tp_policy_check_rule(rule, strlen(rule), &lim, &rsize, err,
                                 sizeof(err)) != TP_POLICY_OK)
        {
            fprintf(stderr, "%s: %s\n", sh->name, err);
            return 1;
        }

        /* copies until the set budget (the sidecar caps a tenant at 1000
         * rules): from the estimate up while it compiles, else down */
        nrules = lim.set_bytes ? lim.set_bytes / rsize : 1;
        nrules = nrules < 1 ? 1 : nrules > 1000 ? 1000 : nrules;
        last = 0;
        for ( ;; ) {
            len = set_json(json, sh, nrules, lo);
            set = tp_policy_compile_limits(&tp_alloc_libc, json, len, &lim,
                                           &code, err, sizeof(err));
            if (set == NULL && code != TP_POLICY_EBUDGET) {
                fprintf(stderr, "%s: %s\n", sh->name, err);
                return 1;
            }
            tp_policy_destroy(set);
            if (set != NULL && last >= 0 && nrules < 1000) {
                last = 1;                  /* going up */
                nrules++;
                continue;
            }
            if (set != NULL) {
                break;                     /* going down: the first fit */
            }
            if (last == 1) {
                nrules--;                  /* one too many */
                break;
            }
            if (nrules == 1) {
                fprintf(stderr, "%s: %s\n", sh->name, err);
                return 1;
            }
            last = -1;
            nrules--;
        }
        len = set_json(json, sh, nrules, lo);
        set = tp_policy_compile_limits(&tp_alloc_libc, json, len, &lim,
                                       NULL, err, sizeof(err));
        if (set == NULL) {
            fprintf(stderr, "%s: %s\n", sh->name, err);
            return 1;
        }
        size = tp_policy_size(set);
        tp_policy_destroy(set);

        for (j = 0; j < n; j++) {
            t0 = now_ms();
            set = tp_policy_compile_limits(&tp_alloc_libc, json, len, &lim,
                                           NULL, err, sizeof(err));
            ms[j] = now_ms() - t0;
            if (set == NULL) {
                fprintf(stderr, "%s: %s\n", sh->name, err);
                return 1;
            }
            tp_policy_destroy(set);
        }
        qsort(ms, n, sizeof(double), dbl_cmp);
        printf("%-14s %6zu %6zu %10zu %10zu %6.2f ms %6.2f ms\n", sh->name,
               lo, nrules, size, len, ms[n / 2], ms[n - 1]);
        if (ms[n / 2] > worst) {
            worst = ms[n / 2];
        }
    }
    printf("worst median %.2f ms\n", worst);

    free(ms);
    free(json);
    free(rule);
    return 0;
}
