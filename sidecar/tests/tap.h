/* tap.h - a minimal TAP producer for the C unit tests (prove reads it) */
#ifndef TP_TAP_H
#define TP_TAP_H

#include <stdio.h>
#include <string.h>

extern int tap_n, tap_failed;

#define ok(cond, ...) do {                                              \
    int ok_ = (cond) ? 1 : 0;                                           \
    tap_n++;                                                            \
    if (!ok_) tap_failed++;                                             \
    printf("%sok %d - ", ok_ ? "" : "not ", tap_n);                     \
    printf(__VA_ARGS__);                                                \
    printf("\n");                                                       \
    if (!ok_) printf("#   failed at %s:%d\n", __FILE__, __LINE__);      \
} while (0)

#define is_int(got, want, ...) do {                                     \
    long long g_ = (got), w_ = (want);                                  \
    ok(g_ == w_, __VA_ARGS__);                                          \
    if (g_ != w_) printf("#   got %lld, want %lld\n", g_, w_);          \
} while (0)

#define is_str(got, want, ...) do {                                     \
    const char *g_ = (got), *w_ = (want);                               \
    int e_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_;               \
    ok(e_, __VA_ARGS__);                                                \
    if (!e_) printf("#   got \"%s\"\n#  want \"%s\"\n",                 \
                    g_ ? g_ : "(null)", w_ ? w_ : "(null)");            \
} while (0)

void test_router(void);
void test_json(void);
void test_config(void);
void test_token(void);
void test_misc(void);
void test_secrets(void);     /* organisations: secrets at rest, slugs */
void test_spool_record(void); /* the ingester's single-pass line reader */

#endif
