# Requests per minute per key: the exact number a burst gets through, the
# headers on every proxied response, Retry-After, a budget shared by all
# routes and by all workers (parallel clients on a reuseport listener),
# and a continuous refill (GCRA: no fresh window to double the limit).
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use JSON::PP ();
use Time::HiRes qw(time sleep);

workers(4);
use_sidecar();
gw_setup();

our $T = gw_tenant();
our %K = (
    burst   => gw_key($T, rpm => 5),
    shapes  => gw_key($T, rpm => 1),
    routes  => gw_key($T, rpm => 4),
    every   => gw_key($T, rpm => 100),
    retry   => gw_key($T, rpm => 30),
    workers => gw_key($T, rpm => 20),
    change  => gw_key($T, rpm => 2),
);
our $P2 = free_port();

gw_env(
    map({ ("KEY_\U$_" => $K{$_}{key}) } keys %K),
    # a second server on a reuseport listener: the kernel spreads its
    # connections over the workers, each answer names its worker
    GW_WORKERS => "$ENV{TEST_NGINX_GW_HTTP}
    server {
        listen 127.0.0.1:$P2 reuseport;
" . gw_locations(extra => 'add_header X-Pid $pid always;') . "
    }",
);

our $MODELS = 'GET /trueportai-services/openai/v1/models';
our $DURATION = qr/^(?:\d+ms|(?:\d+m)?\d+(?:\.\d+)?s)$/;

run_tests();

__DATA__

=== TEST 1: a burst gets exactly rpm requests through
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[($main::MODELS) x 8]
--- more_headers
x-api-key: $TEST_NGINX_KEY_BURST
--- error_code eval
[200, 200, 200, 200, 200, 429, 429, 429]
--- response_headers
x-ratelimit-limit-requests: 5
--- check
is(join(',', map { $_->{headers}{'x-ratelimit-remaining-requests'} } @main::responses),
   '4,3,2,1,0,0,0,0', 'remaining counts down to 0');
like($_->{headers}{'x-ratelimit-reset-requests'}, $main::DURATION, 'reset is a duration')
    for @main::responses;
is($main::responses[0]{headers}{'x-ratelimit-reset-requests'}, '12s',
   'one request of a 5 rpm bucket is back after 12 s');
like($main::responses[4]{headers}{'x-ratelimit-reset-requests'}, qr/^(59\.\d+s|1m0s)$/,
     'a spent bucket is full again after a minute');
my $r = $main::responses[5];
is($r->{headers}{'retry-after'}, '12', 'Retry-After: the seconds until one more is admitted');
like($r->{body}, qr/^\{"error":\{"message":"rate limit of 5 requests per minute reached for this API key, retry in 1[12]\d\d\d ms","type":"requests","param":null,"code":"rate_limit_exceeded"\}\}\n\z/,
     'the 429 in OpenAI\'s shape');
like($r->{headers}{'x-trueport-request-id'}, qr/^[0-9a-f]{32}$/, 'the 429 has the request id');
ok(!exists $main::responses[0]{headers}{'retry-after'}, 'no Retry-After on a 200');
--- no_error_log
[error]



=== TEST 2: the 429 in each provider's shape
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["GET /trueportai-services/openai/v1/models",
 "POST /trueportai-services/openai/v1/chat/completions\n{}",
 "POST /trueportai-services/anthropic/v1/messages\n{}",
 "POST /trueportai-services/google/v1beta/models/g:generateContent\n{}",
 "POST /trueportai-services/azure/r/d/chat/completions?api-version=1\n{}"]
--- more_headers
x-api-key: $TEST_NGINX_KEY_SHAPES
--- error_code eval
[200, 429, 429, 429, 429]
--- response_body_like eval
[qr/"object":"list"/,
 qr/^\{"error":\{"message":"rate limit of 1 requests per minute reached for this API key, retry in \d+ ms","type":"requests","param":null,"code":"rate_limit_exceeded"\}\}\n\z/,
 qr/^\{"type":"error","error":\{"type":"rate_limit_error","message":"rate limit of 1 requests per minute reached for this API key, retry in \d+ ms"\},"request_id":"[0-9a-f]{32}"\}\n\z/,
 qr/^\{"error":\{"code":429,"message":"rate limit of 1 requests per minute reached for this API key, retry in \d+ ms","status":"RESOURCE_EXHAUSTED","details":\[\{"\@type":"type\.googleapis\.com\/google\.rpc\.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"trueport"\}\]\}\}\n\z/,
 qr/"code":"rate_limit_exceeded"/]
--- response_headers
x-ratelimit-limit-requests: 1
--- check
like($_->{headers}{'retry-after'}, qr/^(59|60)$/, "Retry-After on the 429")
    for @main::responses[1 .. 4];



=== TEST 3: one budget per key, whatever the route
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["GET /trueportai-services/openai/v1/models",
 "POST /trueportai-services/anthropic/v1/messages\n{\"max_tokens\":1,\"messages\":[]}",
 "GET /trueportai-services/google/v1beta/models",
 "POST /trueportai-services/azure/r/d/chat/completions?api-version=1\n{}",
 "GET /trueportai-services/openai/v1/models"]
--- more_headers
x-api-key: $TEST_NGINX_KEY_ROUTES
anthropic-version: 2023-06-01
--- error_code eval
[200, 200, 200, 200, 429]
--- check
is(join(',', map { $_->{headers}{'x-ratelimit-remaining-requests'} } @main::responses),
   '3,2,1,0,0', 'the routes draw on one budget');
--- no_error_log
[error]



=== TEST 4: the headers are on upstream errors too, and replace the upstream's own
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["GET /trueportai-services/openai/v1/models", "GET /trueportai-services/openai/v1/models"]
--- more_headers
x-api-key: $TEST_NGINX_KEY_EVERY
x-mock-behavior: status-429
--- error_code: 429
--- response_headers
x-ratelimit-limit-requests: 100
retry-after: 1
--- response_body_like: Rate limit reached for requests
--- check
is(join(',', map { $_->{headers}{'x-ratelimit-remaining-requests'} } @main::responses),
   '99,98', 'ours, not the upstream\'s "0", and only once');
like($_->{headers}{'x-ratelimit-reset-requests'}, qr/^\d+(\.\d+)?s$|^\d+ms$/, 'reset: ours')
    for @main::responses;
like($_->{headers}{'x-trueport-request-id'}, qr/^[0-9a-f]{32}$/, 'the request id')
    for @main::responses;



=== TEST 5: an upstream 500 carries them as well
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
POST /trueportai-services/anthropic/v1/messages
{"max_tokens":1,"messages":[]}
--- more_headers
x-api-key: $TEST_NGINX_KEY_EVERY
anthropic-version: 2023-06-01
x-mock-behavior: status-500
--- error_code: 500
--- response_headers
x-ratelimit-limit-requests: 100
--- response_headers_like
x-ratelimit-remaining-requests: ^\d+$
x-ratelimit-reset-requests: ^\d+(\.\d+)?s$|^\d+ms$
x-trueport-request-id: ^[0-9a-f]{32}$
--- response_body_like: "type":"api_error"



=== TEST 6: Retry-After is honest, and the bucket refills continuously
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[($main::MODELS) x 31]
--- more_headers
x-api-key: $TEST_NGINX_KEY_RETRY
--- error_code eval
[(200) x 30, 429]
--- check
my $k = $main::K{retry}{key};
my $wait = $main::responses[-1]{headers}{'retry-after'};
is($wait, 2, 'a 30 rpm key waits 2 s for the next request');
sleep $wait;
my @codes = map { api('GET', '/trueportai-services/openai/v1/models', undef,
                      { 'x-api-key' => $k })->{status} } 1 .. 3;
is("@codes", '200 429 429', 'after Retry-After one request, not a fresh window');
--- no_error_log
[error]



=== TEST 7: parallel clients spread over four workers share one budget
--- http_config: $TEST_NGINX_GW_WORKERS
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY_EVERY
--- check
my $k = $main::K{workers}{key};
pipe my $rd, my $wr or die $!;
my @kids;
for my $c (1 .. 4) {
    my $pid = fork // die $!;
    if ($pid == 0) {
        close $rd;
        for (1 .. 10) {
            my $r = http_request(port => $main::P2, method => 'GET',
                                 uri => '/trueportai-services/openai/v1/models',
                                 headers => [[ 'x-api-key', $k ]]);
            syswrite $wr, "$r->{status} " . ($r->{headers}{'x-pid'} // '-') . "\n";
        }
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
close $wr;
my @lines = <$rd>;
waitpid $_, 0 for @kids;
my %pids = map { (split)[1] => 1 } @lines;
is(scalar @lines, 40, '40 answers');
is(scalar(grep { /^200 / } @lines), 20, 'exactly 20 admitted of 40');
is(scalar(grep { /^429 / } @lines), 20, 'the other 20 refused');
ok(keys(%pids) >= 2, 'answered by ' . keys(%pids) . ' workers');
--- no_error_log
[error]



=== TEST 8: a new rpm applies once the cache has it
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[($main::MODELS) x 3]
--- more_headers
x-api-key: $TEST_NGINX_KEY_CHANGE
--- error_code eval
[200, 200, 429]
--- check
my $k = $main::K{change};
my $r = sidecar_api('PATCH', "/trueportai-services/api/v1/keys/$k->{id}",
                    { rpm => 100 }, { Authorization => "Bearer $main::T->{token}" });
is($r->{status}, 200, 'PATCH rpm 100');
sleep 1.2;
$r = api('GET', '/trueportai-services/openai/v1/models', undef, { 'x-api-key' => $k->{key} });
is($r->{status}, 200, 'admitted again');
is($r->{headers}{'x-ratelimit-limit-requests'}, '100', 'under the new limit');
--- no_error_log
[error]
