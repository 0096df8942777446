/* ratelimit.c - in-process limits: per user for the management (300/min)
 * and analytics (60/min) groups, per client address for the public routes
 * (register, login and reset-password 30/min: each costs a scrypt; the
 * other public routes 60/min; TRUEPORT_PASSWORD_RPM, TRUEPORT_PUBLIC_RPM).
 * Counters live in this process: one sidecar serves a node, and a bucket
 * in memory costs nothing on every request. The table has a fixed size
 * and its slots are chosen by a keyed hash, so nobody can aim many keys
 * at one slot to evict someone else's count. (The sign-in limits must hold
 * across processes and live in Postgres.) */
#include "ratelimit.h"
#include "config.h"
#include "log.h"
#include "peer.h"

#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RL_SLOTS 16384          /* power of two */

typedef struct {
    char        key[80];        /* group + user id or address */
    rl_window_t w;
} rl_slot_t;

static rl_slot_t       rl_slots[RL_SLOTS];
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char   rl_key[16];
static pthread_once_t  rl_key_once = PTHREAD_ONCE_INIT;

static const long management_rpm = 300, analytics_rpm = 60;

static const struct {
    const long *limit;          /* per window */
    long        window_ms;
    int         per_address;    /* else per user */
    const char *name;
} rl_groups[] = {
    [RL_NONE]       = { NULL, 0, 0, "none" },
    [RL_MANAGEMENT] = { &management_rpm, 60000, 0, "management" },
    [RL_ANALYTICS]  = { &analytics_rpm, 60000, 0, "analytics" },
    [RL_PASSWORD]   = { &cfg.password_rpm, 60000, 1, "password" },
    [RL_PUBLIC]     = { &cfg.public_rpm, 60000, 1, "public" },
};


long
rl_window_hit(rl_window_t *w, long long now_ms, long limit, long window_ms)
{
    long long start = now_ms - now_ms % window_ms;
    double    weight, estimate;
    long      wait_ms;

    if (w->window_start != start) {
        w->prev = (w->window_start == start - window_ms) ? w->count : 0;
        w->count = 0;
        w->window_start = start;
    }

    weight = 1.0 - (double) (now_ms - start) / window_ms;
    estimate = w->prev * weight + w->count;

    if (estimate + 1 > limit) {
        /* the estimate falls by prev/window per ms; with prev == 0 the
         * next window opens the door */
        if (w->prev > 0 && w->count < limit) {
            wait_ms = (long) ((estimate + 1 - limit) * window_ms / w->prev);
        } else {
            wait_ms = (long) (start + window_ms - now_ms);
        }
        return wait_ms / 1000 + 1;
    }

    w->count++;
    return 0;
}


static void
rl_key_init(void)
{
    if (RAND_bytes(rl_key, sizeof(rl_key)) != 1) {
        /* the table still works, only its slots become predictable */
        log_warn("msg=\"ratelimit: no random hash key\"");
    }
}


/* the slot index: HMAC-SHA-256 under a key drawn at start */
static unsigned long
hash(const char *s)
{
    unsigned char md[32];
    unsigned int  n = 0;
    unsigned long h;

    pthread_once(&rl_key_once, rl_key_init);
    if (HMAC(EVP_sha256(), rl_key, sizeof(rl_key),
             (const unsigned char *) s, strlen(s), md, &n) == NULL)
    {
        return 0;
    }
    memcpy(&h, md, sizeof(h));
    return h;
}


int
ratelimit_per_address(rl_group_t group)
{
    return rl_groups[group].per_address;
}


int
ratelimit_check(req_t *r, rl_group_t group)
{
    struct timespec ts;
    long long       now_ms;
    unsigned long   i, h;
    rl_slot_t      *slot = NULL, *oldest = NULL;
    char            key[80], who[64], retry[24];
    long            wait, limit;

    /* TRUEPORT_RATE_LIMITS=0: a benchmark measures the handlers, not
     * the 429s (the login limit in Postgres is not affected) */
    if (!cfg.rate_limits) {
        return 0;
    }

    if (r->auth.ok && !rl_groups[group].per_address) {
        snprintf(who, sizeof(who), "%s", r->auth.user_id);
    } else {
        peer_subscriber(r->client_ip, who, sizeof(who));
    }
    snprintf(key, sizeof(key), "%d:%s", (int) group, who);
    limit = *rl_groups[group].limit;

    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    h = hash(key);

    pthread_mutex_lock(&rl_lock);

    /* open addressing over a short probe; a stale or the oldest slot is
     * reused when the probe finds no free one */
    for (i = 0; i < 8; i++) {
        rl_slot_t *s = &rl_slots[(h + i) & (RL_SLOTS - 1)];

        if (strcmp(s->key, key) == 0) {
            slot = s;
            break;
        }
        if (oldest == NULL || s->w.window_start < oldest->w.window_start) {
            oldest = s;
        }
    }
    if (slot == NULL) {
        slot = oldest;
        memset(slot, 0, sizeof(*slot));
        snprintf(slot->key, sizeof(slot->key), "%s", key);
    }

    wait = rl_window_hit(&slot->w, now_ms, limit, rl_groups[group].window_ms);

    pthread_mutex_unlock(&rl_lock);

    if (wait == 0) {
        return 0;
    }

    snprintf(retry, sizeof(retry), "%ld", wait);
    r->retry_after = arena_strdup(&r->arena, retry);
    reply_error(r, 429, "rate_limited",
                "%s limit of %ld requests per minute %s exceeded, retry in"
                " %ld s", rl_groups[group].name, limit,
                rl_groups[group].per_address ? "per client address"
                                             : "per user", wait);
    return -1;
}
