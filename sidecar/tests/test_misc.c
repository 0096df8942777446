/* test_misc.c - rate-limit window, migration names, uuid check, client
 * addresses, log escaping */
#include "tap.h"
#include "log.h"
#include "migrate.h"
#include "peer.h"
#include "ratelimit.h"
#include "req.h"

void
test_misc(void)
{
    rl_window_t w = { 0, 0, 0 };
    long long   t0 = 1800000000000LL;   /* a window boundary (ms) */
    int         i, admitted = 0;
    long        wait = 0;

    for (i = 0; i < 100; i++) {
        if (rl_window_hit(&w, t0 + i, 60, 60000) == 0) admitted++;
    }
    is_int(admitted, 60, "ratelimit: exactly the limit admitted in a burst");

    /* at the next window start the previous full window still weighs 100% */
    wait = rl_window_hit(&w, t0 + 60000, 60, 60000);
    ok(wait > 0, "ratelimit: no doubling at the window boundary");

    /* halfway through the next window, half the old count remains */
    admitted = 0;
    for (i = 0; i < 100; i++) {
        if (rl_window_hit(&w, t0 + 90000, 60, 60000) == 0) admitted++;
    }
    is_int(admitted, 30, "ratelimit: sliding estimate admits the remainder");
    wait = rl_window_hit(&w, t0 + 90000, 60, 60000);
    ok(wait >= 1 && wait <= 60, "ratelimit: Retry-After within a window");

    is_int(migrate_version_of("0001_core.sql"), 1, "migrate: version parsed");
    is_int(migrate_version_of("0042_keys.sql"), 42, "migrate: version 42");
    is_int(migrate_version_of("001_core.sql"), -1, "migrate: 3 digits refused");
    is_int(migrate_version_of("0001_core.sql~"), -1, "migrate: backup refused");
    is_int(migrate_version_of("abcd_core.sql"), -1, "migrate: letters refused");

    ok(is_uuid("a4d9e002-39b7-41b0-b222-bf023fb79f97"), "uuid: valid");
    ok(!is_uuid("a4d9e002-39b7-41b0-b222-bf023fb79f9"), "uuid: short");
    ok(!is_uuid("a4d9e002x39b7-41b0-b222-bf023fb79f97"), "uuid: bad dash");
    ok(!is_uuid("' OR 1=1 --"), "uuid: injection text");

    char out[64];

    ok(peer_parse("192.0.2.1", out, sizeof(out)) == 0
       && strcmp(out, "192.0.2.1") == 0, "peer: an IPv4 address");
    ok(peer_parse("2001:DB8:0:0::1", out, sizeof(out)) == 0
       && strcmp(out, "2001:db8::1") == 0, "peer: IPv6, canonical");
    ok(peer_parse("192.0.2.1, 10.0.0.1", out, sizeof(out)) != 0
       && peer_parse("192.0.2.1 ", out, sizeof(out)) != 0
       && peer_parse("evil\n", out, sizeof(out)) != 0
       && peer_parse("", out, sizeof(out)) != 0,
       "peer: lists, spaces, text and nothing refused");
    ok(peer_is_loopback("127.0.0.1") && peer_is_loopback("127.255.0.9")
       && peer_is_loopback("::1") && peer_is_loopback("::ffff:127.0.0.1")
       && !peer_is_loopback("128.0.0.1") && !peer_is_loopback("::ffff:10.0.0.1")
       && !peer_is_loopback("") && !peer_is_loopback("localhost"),
       "peer: loopback");
    peer_subscriber("192.0.2.1", out, sizeof(out));
    is_str(out, "192.0.2.1", "peer: an IPv4 client counts alone");
    peer_subscriber("2001:db8:1:2:aaaa:bbbb:cccc:dddd", out, sizeof(out));
    is_str(out, "2001:db8:1:2::/64", "peer: an IPv6 client counts as its /64");
    peer_subscriber("::ffff:192.0.2.1", out, sizeof(out));
    is_str(out, "::ffff:192.0.2.1", "peer: a mapped IPv4 address alone");

    is_str(log_escape("/a b?c=1", out, sizeof(out)), "/a b?c=1",
           "log: printable ASCII as is");
    is_str(log_escape("/x\"\\\n\r\x1b[31m\xc3\xa9", out, sizeof(out)),
           "/x\\x22\\x5c\\x0a\\x0d\\x1b[31m\\xc3\\xa9",
           "log: quote, backslash, controls and non-ASCII as \\xNN");
    is_str(log_escape(NULL, out, sizeof(out)), "-", "log: NULL is -");
    is_str(log_escape("0123456789abcdef", out, 12), "01234567...",
           "log: cut to fit, marked");
    is_str(log_escape("\n\n\n\n", out, 13), "\\x0a\\x0a...",
           "log: an escape is never cut in half");
}
