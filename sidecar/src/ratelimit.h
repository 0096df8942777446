/* ratelimit.h - per-user and per-address request limits for route groups
 * (sliding window) */
#ifndef TP_RATELIMIT_H
#define TP_RATELIMIT_H

#include "req.h"
#include "router.h"

/* 0: admitted; -1: 429 sent with Retry-After. */
int ratelimit_check(req_t *r, rl_group_t group)
    __attribute__((warn_unused_result));

/* 1 when the group counts per client address (checked before the token:
 * its routes are open to strangers), 0 when per user */
int ratelimit_per_address(rl_group_t group);

/* Pure core, for the unit tests: a sliding-window counter (the previous
 * fixed window's count weighted by its remaining overlap). Returns 0 when
 * admitted, else the seconds until a request would be admitted. */
typedef struct {
    long long window_start;   /* ms */
    long      count;
    long      prev;
} rl_window_t;

long rl_window_hit(rl_window_t *w, long long now_ms, long limit,
                   long window_ms);

#endif
