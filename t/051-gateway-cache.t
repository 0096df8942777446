# The key cache: a hit costs no I/O (the sidecar may even be gone),
# unknown keys are remembered briefly, old entries are refreshed in the
# background, revocation reaches every worker within a second, and with
# the sidecar down cached keys keep working for the stale period while
# unknown ones get a 503 no later than the lookup's timeout.  Eviction
# when the zone is full, and the zone across a reload.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use IO::Socket::INET;
use JSON::PP ();
use Time::HiRes qw(time sleep);

use_sidecar();
gw_setup();

our $T = gw_tenant();
our %K = map { $_ => gw_key($T) } qw(hit refresh disable delete suspend idle
                                     down stale reload);
our $SUSP = gw_tenant();
$K{suspend} = gw_key($SUSP);
our $UNKNOWN = 'sk-' . ('n' x 43);

# a listener that accepts connections and never answers
our $HOLE = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
    or die "no listener: $!";

gw_env(
    map({ ("KEY_\U$_" => $K{$_}{key}) } keys %K),
    UNKNOWN => $UNKNOWN,
    # no refresh, no revalidation: every hit is a hit
    GW_HTTP_LONG => gw_http_config(refresh => '1h', valid => '1h'),
    GW_HTTP_NEG => gw_http_config(refresh => '1h', valid => '1h',
                                  negative => '1s'),
    GW_HTTP_REFRESH => gw_http_config(refresh => '300ms', valid => '1h'),
    GW_HTTP_STALE => gw_http_config(stale => '2s'),
    # 401 unknown keys from one address: no key miss limit here
    GW_HTTP_SMALL => gw_http_config(zone => '32k', refresh => '1h',
                                    valid => '1h', negative => '1h',
                                    miss_limit => 'off'),
    GW_HOLE => gw_locations(resolve_to => '127.0.0.1:' . $HOLE->sockport,
                            resolve_timeout => '1s'),
);

our $MODELS = '/trueportai-services/openai/v1/models';

sub call {
    my ($key, $path) = @_;
    return api('GET', $path // $MODELS, undef, { 'x-api-key' => $key });
}

# lookups the sidecar has answered so far
sub lookups {
    open my $fh, '<', work_dir() . '/logs/sidecar.log' or return 0;
    return scalar grep { m{path="/internal/v1/keys/resolve"} } <$fh>;
}

sub patch_key {
    my ($k, $body) = @_;
    my $r = sidecar_api('PATCH', "/trueportai-services/api/v1/keys/$k->{id}",
                        $body, { Authorization => "Bearer $T->{token}" });
    is($r->{status}, 200, 'PATCH the key') or diag $r->{body};
}

# Requests every 50 ms from $t0 on; the first refusal must come within a
# second and nothing may pass after it.
sub refused_within_a_second {
    my ($k, $t0, $want) = @_;
    my (@codes, $first);
    for (1 .. 40) {
        my $r = call($k->{key});
        push @codes, $r->{status};
        $first //= time - $t0 if $r->{status} == $want;
        sleep 0.05;
    }
    ok(defined $first && $first < 1.0,
       sprintf('refused within 1 s (first refusal after %.3f s)',
               $first // -1));
    my $i = 0;
    $i++ while $i < @codes && $codes[$i] != $want;
    is(scalar(grep { $_ != $want } @codes[$i .. $#codes]), 0,
       'every request after the first refusal is refused')
        or diag "@codes";
    diag sprintf('revocation seen after %.0f ms', 1000 * $first)
        if defined $first;
}

run_tests();

__DATA__

=== TEST 1: a hit costs no lookup: ten requests, one sidecar call
--- http_config: $TEST_NGINX_GW_HTTP_LONG
--- config: $TEST_NGINX_GW
--- init
our $before = main::lookups();
--- request eval
[("GET /trueportai-services/openai/v1/models") x 10]
--- more_headers
x-api-key: $TEST_NGINX_KEY_HIT
--- response_body_like: "object":"list"
--- check
is(join(',', map { $_->{headers}{'x-cache'} } @main::responses),
   join(',', 'MISS', ('HIT') x 9), 'one miss, then hits');
is(main::lookups() - $main::before, 1, 'the sidecar was asked once');
--- no_error_log
[error]



=== TEST 2: a hit needs no sidecar at all
--- http_config: $TEST_NGINX_GW_HTTP_LONG
--- config: $TEST_NGINX_GW
--- init
stop_sidecar();
--- request eval
["GET /trueportai-services/openai/v1/models", "GET /trueportai-services/anthropic/v1/messages"]
--- more_headers
x-api-key: $TEST_NGINX_KEY_HIT
--- error_code eval
[200, 503]
--- response_headers_like
X-Cache: ^(HIT|MISS)$
--- check
is($main::responses[0]{headers}{'x-cache'}, 'HIT', 'openai: a hit, with the sidecar gone');
# the cache is per provider: the same key on another route is a miss
is($main::responses[1]{headers}{'x-cache'}, 'MISS', 'anthropic: a miss');
like($main::responses[1]{body}, qr/"type":"api_error"/, 'anthropic: 503 in its shape');
start_sidecar();



=== TEST 3: an unknown key is remembered for trueport_cache_negative
--- http_config: $TEST_NGINX_GW_HTTP_NEG
--- config: $TEST_NGINX_GW
--- request eval
["GET /trueportai-services/openai/v1/models", "GET /trueportai-services/openai/v1/models"]
--- more_headers
x-api-key: $TEST_NGINX_UNKNOWN
--- error_code: 401
--- response_body_like: "code":"invalid_api_key"
--- check
is($main::responses[0]{headers}{'x-cache'}, 'MISS', 'first: a miss');
is($main::responses[1]{headers}{'x-cache'}, 'HIT', 'second: the negative answer');
gw_key($main::T, key => $main::UNKNOWN);
my $r = main::call($main::UNKNOWN);
is($r->{status}, 401, 'the key now exists but the negative answer holds');
sleep 1.1;
$r = main::call($main::UNKNOWN);
is($r->{status}, 200, 'after trueport_cache_negative the key works');
is($r->{headers}{'x-cache'}, 'MISS', '... asked again');
--- no_error_log
[error]



=== TEST 4: past trueport_cache_refresh a hit is served and refreshed in the background
--- http_config: $TEST_NGINX_GW_HTTP_REFRESH
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_REFRESH
--- response_headers
X-Cache: MISS
--- check
my $k = $main::K{refresh};
my $n = main::lookups();
sleep 0.4;
my $r = main::call($k->{key});
is($r->{status}, 200, 'old entry: served');
is($r->{headers}{'x-cache'}, 'REFRESH', '... and refreshed');
sleep 0.1;
is(main::lookups() - $n, 1, 'one lookup, in the background');
$r = main::call($k->{key});
is($r->{headers}{'x-cache'}, 'HIT', 'then a plain hit');
Test::TruePort::dbh()->do('UPDATE api_keys SET enabled = false WHERE id = ?',
                          undef, $k->{id});
sleep 0.4;
$r = main::call($k->{key});
is($r->{status}, 200, 'a change is not seen by the request that refreshes');
sleep 0.1;
$r = main::call($k->{key});
is($r->{status}, 401, '... but by the next one');
is($r->{headers}{'x-cache'}, 'HIT', '... from the cache');
--- no_error_log
[error]



=== TEST 5: disabling a key through the API is refused within 1 s, re-enabling too
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[("GET /trueportai-services/openai/v1/models") x 4]
--- more_headers
x-api-key: $TEST_NGINX_KEY_DISABLE
--- check
my $k = $main::K{disable};
main::patch_key($k, { enabled => JSON::PP::false });
main::refused_within_a_second($k, time, 401);
main::patch_key($k, { enabled => JSON::PP::true });
my $t0 = time;
my $back;
for (1 .. 40) {
    last if main::call($k->{key})->{status} == 200 && ($back = time - $t0);
    sleep 0.05;
}
ok(defined $back && $back < 1.0,
   sprintf('re-enabled within 1 s (%.3f s)', $back // -1));
--- no_error_log
[error]



=== TEST 6: deleting a key through the API is refused within 1 s
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[("GET /trueportai-services/openai/v1/models") x 4]
--- more_headers
x-api-key: $TEST_NGINX_KEY_DELETE
--- check
my $k = $main::K{delete};
my $r = sidecar_api('DELETE', "/trueportai-services/api/v1/keys/$k->{id}",
                    undef, { Authorization => "Bearer $main::T->{token}" });
like($r->{status}, qr/^20[04]$/, 'DELETE the key');
main::refused_within_a_second($k, time, 401);
like(main::call($k->{key})->{body}, qr/has been deleted/, 'deleted');
--- no_error_log
[error]



=== TEST 7: suspending the tenant is refused within 1 s
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[("GET /trueportai-services/openai/v1/models") x 4]
--- more_headers
x-api-key: $TEST_NGINX_KEY_SUSPEND
--- check
Test::TruePort::dbh()->do(q{UPDATE tenants SET status = 'suspended'
                             WHERE id = ?}, undef, $main::SUSP->{id});
main::refused_within_a_second($main::K{suspend}, time, 403);
--- no_error_log
[error]



=== TEST 8: a key idle past trueport_cache_valid is checked before it is used
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_IDLE
--- check
my $k = $main::K{idle};
Test::TruePort::dbh()->do('UPDATE api_keys SET enabled = false WHERE id = ?',
                          undef, $k->{id});
sleep 1.05;
my $r = main::call($k->{key});
is($r->{status}, 401, 'the first request after the change is refused');
is($r->{headers}{'x-cache'}, 'MISS', '... after asking the sidecar');
--- no_error_log
[error]



=== TEST 9: sidecar down: cached keys keep working, unknown keys get 503 at once
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_DOWN
--- check
my $k = $main::K{down};
stop_sidecar();
sleep 1.1;
my $r = main::call($k->{key});
is($r->{status}, 200, 'a cached key past trueport_cache_valid works');
is($r->{headers}{'x-cache'}, 'STALE', '... from the stale entry');
my $t0 = time;
$r = main::call($main::UNKNOWN . 'x');
my $took = time - $t0;
is($r->{status}, 503, 'an unknown key: 503');
like($r->{body}, qr/^\{"error":\{"message":"the gateway cannot check the API key right now, retry later","type":"server_error","param":null,"code":"gateway_unavailable"\}\}/,
     '... gateway_unavailable');
ok($took < 1, sprintf('... at once (%.3f s)', $took));
like($r->{headers}{'x-trueport-request-id'}, qr/^[0-9a-f]{32}$/, '... with the request id');
for my $p (['/trueportai-services/anthropic/v1/messages', qr/^\{"type":"error","error":\{"type":"api_error"/],
           ['/trueportai-services/google/v1beta/models', qr/"status":"UNAVAILABLE".*"reason":"GATEWAY_UNAVAILABLE"/],
           ['/trueportai-services/azure/r/d/chat/completions', qr/"code":"gateway_unavailable"/]) {
    $r = main::call($main::UNKNOWN . 'y', $p->[0]);
    is($r->{status}, 503, "$p->[0]: 503");
    like($r->{body}, $p->[1], "$p->[0]: in the provider's shape");
}
$r = main::call($k->{key});
is($r->{status}, 200, 'the cached key still works');
start_sidecar();
my $seen = '';
for (1 .. 30) {
    $r = main::call($k->{key});
    $seen = $r->{headers}{'x-cache'};
    last if $seen eq 'HIT';
    sleep 0.1;
}
is($seen, 'HIT', 'back to plain hits once the sidecar is back');
is(main::call($main::UNKNOWN . 'x')->{status}, 401, 'unknown keys: 401 again');



=== TEST 10: sidecar down past trueport_cache_stale: 503 even for cached keys
--- http_config: $TEST_NGINX_GW_HTTP_STALE
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_STALE
--- check
stop_sidecar();
sleep 1.2;
is(main::call($main::K{stale}{key})->{status}, 200, 'within the stale period: 200');
sleep 1.0;
my $r = main::call($main::K{stale}{key});
is($r->{status}, 503, 'past it: 503');
like($r->{body}, qr/"code":"gateway_unavailable"/, '... gateway_unavailable');
start_sidecar();



=== TEST 11: a sidecar that hangs costs no more than the lookup's timeout
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_HOLE
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_UNKNOWN
--- error_code: 503
--- timeout: 5
--- check
my $t0 = time;
my $r = main::call($main::UNKNOWN . 'z');
my $took = time - $t0;
is($r->{status}, 503, 'an unknown key: 503');
ok($took >= 0.9 && $took < 1.6, sprintf('after the 1 s timeout (%.3f s)', $took));
--- error_log
upstream timed out



=== TEST 12: the database down: the sidecar's 503 counts as unavailable
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_HIT
--- check
pg_stop();
sleep 1.1;
my $r = main::call($main::K{hit}{key});
is($r->{status}, 200, 'cached key: 200');
is($r->{headers}{'x-cache'}, 'STALE', '... stale');
$r = main::call($main::UNKNOWN . 'w');
is($r->{status}, 503, 'unknown key: 503');
pg_start();
--- error_log
failed with status 503



=== TEST 13: a full zone evicts the least recently used entries
--- http_config
$TEST_NGINX_GW_HTTP_SMALL
--- config
$TEST_NGINX_GW
        location = /health {
            trueport_health;
        }
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_HIT
--- check
my $first = main::call($main::UNKNOWN . '0');
is($first->{status}, 401, 'an unknown key');
for my $i (1 .. 400) {
    main::call($main::UNKNOWN . $i);
}
my $h = api('GET', '/health');
my $entries = $h->{json}{zone}{entries};
ok($entries > 20 && $entries < 400, "the zone holds $entries entries, not 400");
is(main::call($main::UNKNOWN . '400')->{headers}{'x-cache'}, 'HIT', 'the newest entry is cached');
is(main::call($main::UNKNOWN . '0')->{headers}{'x-cache'}, 'MISS', 'the oldest was evicted');
is(main::call($main::K{hit}{key})->{status}, 200, 'keys still work');
--- no_error_log
could not allocate
[alert]
[crit]



=== TEST 14: the cache survives a reload
--- http_config: $TEST_NGINX_GW_HTTP_LONG
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_RELOAD
--- response_headers
X-Cache: MISS
--- check
nginx_reload();
my $r = main::call($main::K{reload}{key});
is($r->{status}, 200, 'after the reload: 200');
is($r->{headers}{'x-cache'}, 'HIT', '... from the cache kept in the zone');
--- no_error_log
[error]
[alert]
