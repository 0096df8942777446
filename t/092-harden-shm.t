# Hardening I, finding 3: what strangers can do to the shared zone.
# Unknown keys cost a client address a lookup each, at most
# trueport_key_miss_limit (20 a minute by default), then 429 in the
# provider's shape, while cached keys are never limited and known keys
# are refunded; unknown keys' entries live in their own bounded LRU and
# never evict a known key; the buckets are keyed (keys that all share one
# bucket of the old unkeyed scheme spread out), and the key, the cache
# and the limits survive a reload.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Digest::SHA qw(sha256);
use Time::HiRes qw(sleep);

use_sidecar();
gw_setup();

our $T = gw_tenant();
our %K = map { $_ => gw_key($T) } qw(limited other evict reload keyed);
our @FRESH = map { gw_key($T) } 1 .. 25;
our @HOLD = map { gw_key($T) } 1 .. 5;
our @HOLD_SMALL = map { gw_key($T) } 1 .. 5;

# the client address comes from X-Forwarded-For, as behind a CDN
our $REALIP = "    set_real_ip_from 127.0.0.1;\n"
            . "    real_ip_header X-Forwarded-For;\n";
our $HEALTH = "        location = /health {\n            trueport_health;\n"
            . "        }\n";

gw_env(
    GW_HTTP_IP => $REALIP . gw_http_config(refresh => '1h', valid => '1h'),
    GW_HTTP_FAST => $REALIP . gw_http_config(refresh => '1h', valid => '1h',
                                             miss_limit => '3/s'),
    GW_HTTP_OFF => $REALIP . gw_http_config(miss_limit => 'off'),
    GW_HTTP_CAP => $REALIP . gw_http_config(refresh => '1h', valid => '1h',
                                            negative => '1h',
                                            zone_params => 'negative=50',
                                            miss_limit => 'off'),
    GW_HTTP_SMALL => $REALIP . gw_http_config(zone => '32k', refresh => '1h',
                                              valid => '1h', negative => '1h',
                                              miss_limit => 'off'),
    GW_HTTP_KEYED => $REALIP . gw_http_config(refresh => '1h', valid => '1h',
                                              negative => '1h',
                                              miss_limit => 'off'),
    GW_HEALTH => $ENV{TEST_NGINX_GW} . $HEALTH,
    KEY_LIMITED => $K{limited}{key},
    KEY_RELOAD => $K{reload}{key},
);

our $MODELS = '/trueportai-services/openai/v1/models';

sub call {
    my ($key, $addr, $path) = @_;
    return api('GET', $path // $MODELS, undef,
               { 'x-api-key' => $key, 'X-Forwarded-For' => $addr });
}

# an unknown key of the right shape, unique to this run
our $SEQ = 0;
sub unknown { sprintf 'sk-unknown-%d-%d-%05d', $$, time, ++$SEQ }

# lookups the sidecar has answered so far
sub lookups {
    open my $fh, '<', work_dir() . '/logs/sidecar.log' or return 0;
    return scalar grep { m{path="/internal/v1/keys/resolve"} } <$fh>;
}

sub zone { api('GET', '/health')->{json}{zone} }

# $n keys whose SHA-256 puts them in one bucket of the unkeyed scheme the
# module had before (the first four bytes, little-endian, XOR the
# provider, masked by the 2048 buckets of a 1m zone): what an attacker
# computes offline
sub colliding {
    my ($n) = @_;
    my (@keys, $want);
    for (my $i = 0; @keys < $n; $i++) {
        my $k = "sk-collide-$$-$i";
        my $b = unpack('V', sha256($k)) & 2047;   # TP_OPENAI is 0
        $want //= $b;
        push @keys, $k if $b == $want;
    }
    return @keys;
}

run_tests();

__DATA__

=== TEST 1: unknown keys from one address: 20, then 429 in each provider's shape
--- http_config: $TEST_NGINX_GW_HTTP_IP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
X-Forwarded-For: 192.0.2.1
--- response_headers
X-Cache: MISS
--- check
my $before = main::lookups();
my @codes = map { main::call(main::unknown(), '192.0.2.1')->{status} } 1 .. 20;
is(join(',', @codes), join(',', (401) x 20), 'the first 20 unknown keys: 401');
my $r = main::call(main::unknown(), '192.0.2.1');
is($r->{status}, 429, 'the 21st: 429');
is($r->{headers}{'retry-after'}, '3', 'Retry-After: one lookup back every 3 s');
like($r->{body}, qr/^\{"error":\{"message":"too many requests with API keys the gateway does not know from this address, retry later","type":"requests","param":null,"code":"rate_limit_exceeded"\}\}\n\z/,
     'in OpenAI\'s shape');
like($r->{headers}{'x-trueport-request-id'}, qr/^[0-9a-f]{32}$/, '... with the request id');
ok(!exists $r->{headers}{'x-ratelimit-limit-requests'}, '... and no key limit headers');
for my $p (['/trueportai-services/anthropic/v1/messages',
            qr/^\{"type":"error","error":\{"type":"rate_limit_error","message":"too many requests with API keys/],
           ['/trueportai-services/google/v1beta/models',
            qr/^\{"error":\{"code":429,"message":"too many .*","status":"RESOURCE_EXHAUSTED".*"reason":"RATE_LIMIT_EXCEEDED"/],
           ['/trueportai-services/azure/r/d/chat/completions',
            qr/"code":"rate_limit_exceeded"/]) {
    $r = main::call(main::unknown(), '192.0.2.1', $p->[0]);
    is($r->{status}, 429, "$p->[0]: 429");
    like($r->{body}, $p->[1], "$p->[0]: in the provider's shape");
    like($r->{headers}{'retry-after'}, qr/^[1-3]$/, "$p->[0]: Retry-After");
}
is(main::lookups() - $before, 20, 'the sidecar was asked 20 times, not 24');
$r = main::call($main::K{limited}{key}, '192.0.2.1');
is($r->{status}, 200, 'a cached key from the same address: 200');
is($r->{headers}{'x-cache'}, 'HIT', '... from the cache');
is(main::call(main::unknown(), '192.0.2.2')->{status}, 401,
   'another address has its own budget');
$r = main::call($main::K{other}{key}, '192.0.2.2');
is($r->{status}, 200, 'a new known key from it resolves');
is($r->{headers}{'x-cache'}, 'MISS', '... asking the sidecar');
--- no_error_log
[error]
[alert]



=== TEST 2: known keys are refunded: 25 new keys, then still 20 unknown ones
--- http_config: $TEST_NGINX_GW_HTTP_IP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
X-Forwarded-For: 198.51.100.1
--- check
my @r = map { main::call($_->{key}, '198.51.100.7') } @main::FRESH;
is(join(',', map { $_->{status} } @r), join(',', (200) x 25),
   '25 keys the cache did not hold, one address: all 200');
is(join(',', map { $_->{headers}{'x-cache'} } @r), join(',', ('MISS') x 25),
   '... each asked of the sidecar');
my @codes = map { main::call(main::unknown(), '198.51.100.7')->{status} } 1 .. 21;
is(join(',', @codes), join(',', (401) x 20, 429),
   'the known keys cost nothing: then 20 unknown keys, and 429');
--- no_error_log
[error]



=== TEST 3: trueport_key_miss_limit 3/s: three at once, one back every 333 ms; a negative hit is free
--- http_config: $TEST_NGINX_GW_HTTP_FAST
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
X-Forwarded-For: 203.0.113.1
--- check
my $same = main::unknown();
my @codes = (main::call($same, '203.0.113.3')->{status},
             map { main::call(main::unknown(), '203.0.113.3')->{status} } 1 .. 3);
is(join(',', @codes), '401,401,401,429', '3 lookups, then 429');
my $r = main::call(main::unknown(), '203.0.113.3');
is($r->{headers}{'retry-after'}, '1', 'Retry-After: 1 s (rounded up)');
$r = main::call($same, '203.0.113.3');
is($r->{status}, 401, 'an unknown key answered from the cache: 401, not limited');
is($r->{headers}{'x-cache'}, 'HIT', '... a negative hit, no lookup');
is(main::call($main::K{limited}{key}, '203.0.113.3')->{status}, 200,
   'the cached key: 200');
sleep 1.1;
@codes = map { main::call(main::unknown(), '203.0.113.3')->{status} } 1 .. 4;
is(join(',', @codes), '401,401,401,429', 'a second later: the bucket is full again');
--- no_error_log
[error]



=== TEST 4: trueport_key_miss_limit off
--- http_config: $TEST_NGINX_GW_HTTP_OFF
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
X-Forwarded-For: 203.0.113.10
--- check
my @codes = map { main::call(main::unknown(), '203.0.113.11')->{status} } 1 .. 30;
is(scalar(grep { $_ == 401 } @codes), 30, '30 unknown keys from one address: all 401');
--- no_error_log
[error]



=== TEST 5: trueport_zone negative=50: a flood of unknown keys evicts only unknown keys
--- http_config: $TEST_NGINX_GW_HTTP_CAP
--- config: $TEST_NGINX_GW_HEALTH
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
X-Forwarded-For: 203.0.113.20
--- check
for my $k (@main::HOLD) {
    is(main::call($k->{key}, '203.0.113.21')->{headers}{'x-cache'}, 'MISS',
       'a known key, cached');
}
my $first = main::unknown();
main::call($first, '203.0.113.22');
main::call(main::unknown(), '203.0.113.22') for 1 .. 300;
my $last = main::unknown();
main::call($last, '203.0.113.22');
my $z = main::zone();
is($z->{negative}, 50, 'unknown keys: 50 entries, the bound');
is($z->{entries}, 56, '... besides the six known keys');
is(main::call($last, '203.0.113.22')->{headers}{'x-cache'}, 'HIT',
   'the newest unknown key is cached');
stop_sidecar();
is(main::call($first, '203.0.113.22')->{status}, 503,
   'the oldest was evicted (no answer with the sidecar gone)');
for my $k (@main::HOLD) {
    my $r = main::call($k->{key}, '203.0.113.21');
    is($r->{status}, 200, 'with the sidecar gone, a known key: 200');
    is($r->{headers}{'x-cache'}, 'HIT', '... from the cache');
}
start_sidecar();
--- no_error_log
[alert]
[crit]



=== TEST 6: by default, unknown keys filling a small zone do not evict known keys
--- http_config: $TEST_NGINX_GW_HTTP_SMALL
--- config: $TEST_NGINX_GW_HEALTH
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
X-Forwarded-For: 203.0.113.30
--- check
main::call($_->{key}, '203.0.113.31') for @main::HOLD_SMALL;
main::call(main::unknown(), '203.0.113.32') for 1 .. 400;
my $z = main::zone();
ok($z->{negative} > 10 && $z->{negative} <= 32,
   "unknown keys: $z->{negative} entries, a quarter of the 32k zone at most");
stop_sidecar();
for my $k ($main::K{limited}, @main::HOLD_SMALL) {
    my $r = main::call($k->{key}, '203.0.113.31');
    is($r->{status}, 200, 'with the sidecar gone, a known key: 200');
    is($r->{headers}{'x-cache'}, 'HIT', '... from the cache');
}
start_sidecar();
--- no_error_log
[alert]
[crit]



=== TEST 7: the buckets are keyed: 200 keys of one unkeyed bucket walk short chains
--- http_config: $TEST_NGINX_GW_HTTP_KEYED
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
X-Forwarded-For: 203.0.113.40
--- check
my @keys = main::colliding(200);
main::call($_, '203.0.113.41') for @keys;
my $log = work_dir() . '/logs/error.log';
my $from = -s $log;
my @r = map { main::call($_, '203.0.113.41') } @keys;
is(scalar(grep { $_->{headers}{'x-cache'} eq 'HIT' } @r), 200,
   'the 200 keys are cached (negative hits)');
open my $fh, '<', $log or die $!;
seek $fh, $from, 0;
my @walked = map { /trueport key cache: (\d+) nodes walked/ ? $1 : () } <$fh>;
is(scalar @walked, 200, 'a chain length logged per lookup');
my ($max) = sort { $b <=> $a } @walked;
ok(defined $max && $max <= 8,
   "the longest chain walked: " . ($max // 'none') . " (unkeyed: up to 200)");
--- no_error_log
[error]



=== TEST 8: the zone's secret, its cache and its limits survive a reload
--- http_config: $TEST_NGINX_GW_HTTP_IP
--- config: $TEST_NGINX_GW_HEALTH
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_RELOAD
X-Forwarded-For: 203.0.113.50
--- response_headers
X-Cache: MISS
--- check
my $neg = main::unknown();
main::call($neg, '203.0.113.51');
main::call(main::unknown(), '203.0.113.51') for 1 .. 19;
is(main::call(main::unknown(), '203.0.113.51')->{status}, 429, 'an address over its limit');
my $created = main::zone()->{created};
nginx_reload();
is(main::zone()->{created}, $created, 'the reload kept the zone');
stop_sidecar();
# a bucket picked under a new secret would not find these entries: with
# the sidecar gone, a miss would be a 503
my $r = main::call($main::K{reload}{key}, '203.0.113.50');
is($r->{status}, 200, 'after the reload a cached key: 200');
is($r->{headers}{'x-cache'}, 'HIT', '... found in the zone');
$r = main::call($neg, '203.0.113.50');
is($r->{status}, 401, 'an unknown key\'s negative entry: 401');
is($r->{headers}{'x-cache'}, 'HIT', '... found in the zone');
start_sidecar();
is(main::call(main::unknown(), '203.0.113.51')->{status}, 429,
   'the address is still over its limit');
--- no_error_log
[alert]



=== TEST 9: bad values of the new directives are refused
--- http_config: $TEST_NGINX_GW_HTTP_IP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_LIMITED
--- check
my @cases = (
    [ 'trueport_zone zone=z:1m negative=0;', qr/invalid parameter "negative=0"/ ],
    [ 'trueport_zone zone=z:1m clients=x;', qr/invalid parameter "clients=x"/ ],
    [ 'trueport_zone zone=z:1m size=2;', qr/invalid parameter "size=2"/ ],
    [ 'trueport_zone zone=z:1m; trueport_key_miss_limit 20;', qr/invalid key miss limit "20"/ ],
    [ 'trueport_zone zone=z:1m; trueport_key_miss_limit 0/m;', qr/invalid key miss limit "0\/m"/ ],
    [ 'trueport_zone zone=z:1m; trueport_key_miss_limit 20/x;', qr/invalid key miss limit "20\/x"/ ],
    [ 'trueport_zone zone=z:1m; trueport_key_miss_limit 20/m; trueport_key_miss_limit off;',
      qr/"trueport_key_miss_limit" directive is duplicate/ ],
);
my $dir = work_dir();
my $module = $ENV{TP_MODULE} // "$ENV{TEST_NGINX_ROOT}/build/ngx_http_trueport_module.so";
for my $c (@cases) {
    open my $fh, '>', "$dir/conf/bad.conf" or die $!;
    print $fh "load_module $module;\nerror_log $dir/logs/bad.log;\n"
            . "pid $dir/logs/bad.pid;\nevents {}\n"
            . "http { $c->[0] server { listen 127.0.0.1:1; } }\n";
    close $fh;
    my $out = `@{[ nginx_cmd() ]} -t -q -p $dir/ -c $dir/conf/bad.conf 2>&1`;
    like($out, $c->[1], "refused: $c->[1]");
}
my @good = ('trueport_zone zone=z:1m negative=100 clients=100; trueport_key_miss_limit 5/10s;',
            'trueport_zone zone=z:1m; trueport_key_miss_limit 100/h;');
for my $g (@good) {
    open my $fh, '>', "$dir/conf/good.conf" or die $!;
    print $fh "load_module $module;\nerror_log $dir/logs/bad.log;\n"
            . "pid $dir/logs/bad.pid;\nevents {}\n"
            . "http { $g server { listen 127.0.0.1:1; } }\n";
    close $fh;
    my $out = `@{[ nginx_cmd() ]} -t -q -p $dir/ -c $dir/conf/good.conf 2>&1`;
    is($? >> 8, 0, "accepted: $g") or diag $out;
}
