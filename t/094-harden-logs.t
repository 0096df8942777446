# Issue 12, finding 6 and its "while here" items: the client's key is in
# no log line nginx writes (Gemini's ?key= scrubbed from $request and from
# the error log's request context, upstream URLs without it), the key's
# SHA-256 is in none either (not in the module's lines, not in the key
# lookup's URL); the provider's x-request-id reaches the client once and
# untouched, the gateway's id is x-trueport-request-id; provider routes
# take bodies up to 32 MB (configurable), the policy check's own limit
# refuses what it cannot read.
#
# The harness's error log is at debug, where nginx itself prints every
# request line and header: the blocks log the http{} requests at info to
# logs/info.log as well, and that file, the access log and the module's
# own debug lines are what must hold no secret.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Time::HiRes qw(sleep time);

use_sidecar();
gw_setup(policy => 1);

sub random_key {
    return 'sk-' . join '', map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9)[rand 62] }
                            1 .. 43;
}

our $T = gw_tenant();
our $K = gw_key($T, rpm => 1000);

# a tenant with a rule: its bodies are parsed by the policy check
our $PT = gw_tenant();
our $PK = gw_key($PT, rpm => 1000);
my $r = sidecar_api(POST => '/trueportai-services/api/v1/policies',
                    { name => 'zebra', type => 'keywords',
                      config => { keywords => ['zebra'] }, action => 'log' },
                    { Authorization => "Bearer $PT->{token}" });
die "rule: $r->{status} $r->{body}\n" unless $r->{status} == 201;

# keys no tenant has, each used by one block only
our @UNKNOWN = map { random_key() } 1 .. 3;

# every secret of this file: the keys and their SHA-256
our @SECRETS = map { ($_, sha256_hex($_), uc sha256_hex($_)) }
               $K->{key}, $PK->{key}, @UNKNOWN;

our $WORK = work_dir();
our $DEAD = free_port();
our $GEMINI = '/trueportai-services/google/v1beta/models/'
              . 'gemini-2.0-flash:generateContent';
our $BODY = '{"model":"m","max_tokens":16,'
            . '"messages":[{"role":"user","content":"hi"}],'
            . '"contents":[{"parts":[{"text":"hi"}]}]}';

# the shipped conf.d's route credentials
our %ROUTE_KEYS = map { ("TRUEPORT_\U$_\E_API_KEY" => "shipped-$_") }
                  qw(openai anthropic google azure);

my $logs = "    error_log $WORK/logs/info.log info;\n"
         . "    error_log $WORK/logs/error.log debug;\n";

gw_env(
    KEY => $K->{key},
    PKEY => $PK->{key},
    BAD => $UNKNOWN[0],
    GEMINI => $GEMINI,
    BODY => $BODY,
    GW_HTTP_LOGS => gw_http_config() . $logs,
    GW_HTTP_REFRESH => gw_http_config(refresh => '1ms') . $logs,
    # the provider and the sidecar where nothing listens
    GW_UP_DEAD => gw_locations(mock => "127.0.0.1:$DEAD"),
    GW_RESOLVE_DEAD => gw_locations(resolve_to => "127.0.0.1:$DEAD"),
    GW_SMALL => gw_locations(policy => 1,
                             extra => 'trueport_policy_max_body 1k;'),
);


sub slurp {
    open my $fh, '<', shift or return '';
    local $/;
    return <$fh> // '';
}


# The module's own lines of the debug log (core's print the request line
# and headers verbatim: see README, nginx's debug log)
sub module_debug_lines {
    return join "\n", grep { /\*\d+ trueport[ :]/ }
                      split /\n/, slurp("$WORK/logs/error.log");
}


# Waits until each of %want (file => [qr//, ...]) shows up, then checks
# that no secret of this file is in the access log, the info log, the
# module's debug lines or the extra files.
sub logs_clean {
    my ($label, %o) = @_;
    my %want = (access => "$WORK/logs/access.log",
                info => "$WORK/logs/info.log", %{ $o{files} || {} });
    my $deadline = time + 5;
    for my $w (@{ $o{want} || [] }) {
        my ($file, $re) = @$w;
        my $text;
        sleep 0.05 until ($text = slurp($want{$file})) =~ $re
                         or time > $deadline;
        like($text, $re, "$label: the $file log has the line");
    }
    my %text = map { $_ => slurp($want{$_}) } keys %want;
    $text{'module debug'} = module_debug_lines();
    for my $f (sort keys %text) {
        my @hits = grep { index($text{$f}, $_) >= 0 } @main::SECRETS;
        ok(!@hits, "$label: no key or key hash in the $f log")
            or diag(join "\n", grep { my $l = $_; grep { index($l, $_) >= 0 } @hits }
                               split /\n/, $text{$f});
    }
}


# the values of a response header, however many times it was sent
sub header_values {
    my ($res, $name) = @_;
    my ($head) = split /\r\n\r\n/, $res->{raw}, 2;
    return map { /^[^:]+:\s*(.*?)\s*$/ ? $1 : () }
           grep { /^\Q$name\E:/i } split /\r\n/, $head // '';
}

run_tests();

__DATA__

=== TEST 1: a Gemini call with ?key= succeeds and neither log holds the key
--- http_config: $TEST_NGINX_GW_HTTP_LOGS
--- config: $TEST_NGINX_GW
--- request
POST $TEST_NGINX_GEMINI?alt=json&key=$TEST_NGINX_KEY
$TEST_NGINX_BODY
--- more_headers
Content-Type: application/json
--- error_code: 200
--- response_body_like: "candidates":\[
--- check
gw_upstream_saw(label => 'gemini', key => $main::K->{key},
                query => { alt => 'json' });
main::logs_clean('success', want => [
    [ access => qr{"POST /trueportai-services/google/v1beta/models/gemini-2\.0-flash:generateContent\?alt=json&key=\[redacted\] HTTP/1\.1" 200 } ] ]);
--- no_error_log
[error]



=== TEST 2: a bad ?key= is refused (401) and logged as [redacted]
--- http_config: $TEST_NGINX_GW_HTTP_LOGS
--- config: $TEST_NGINX_GW
--- request
POST $TEST_NGINX_GEMINI?key=$TEST_NGINX_BAD&alt=json
$TEST_NGINX_BODY
--- more_headers
Content-Type: application/json
--- error_code: 401
--- response_body_like: "status":"UNAUTHENTICATED"
--- check
main::logs_clean('bad key', want => [
    [ info => qr{trueport: key refused: unknown[^\n]*request: "POST /trueportai-services/google/v1beta/models/gemini-2\.0-flash:generateContent\?key=\[redacted\]&alt=json HTTP/1\.1"} ],
    [ access => qr{"POST [^"]*\?key=\[redacted\]&alt=json HTTP/1\.1" 401 } ] ]);



=== TEST 3: request errors before and after the key check keep it out too
--- http_config: $TEST_NGINX_GW_HTTP_LOGS
--- config: $TEST_NGINX_GW
--- request eval
[ "POST $main::GEMINI?key=$main::PK->{key}\n{\"contents\": [",
  "POST $main::GEMINI?alt=sse&key=$main::PK->{key}&key=$main::K->{key}" ]
--- more_headers eval
[ "Content-Type: application/json",
  "Content-Type: application/json\nContent-Length: 34603009" ]
--- error_code eval
[400, 413]
--- response_body_like eval
[ qr/"status":"INVALID_ARGUMENT"/, qr/too large/i ]
--- check
main::logs_clean('request errors', want => [
    [ access => qr{"POST [^"]*:generateContent\?key=\[redacted\] HTTP/1\.1" 400 } ],
    [ info => qr{client intended to send too large body: 34603009 bytes, client: [^\n]*request: "POST [^"]*\?alt=sse&key=\[redacted\]&key=\[redacted\] HTTP/1\.1"} ],
    [ access => qr{"POST [^"]*\?alt=sse&key=\[redacted\]&key=\[redacted\] HTTP/1\.1" 413 } ] ]);



=== TEST 4: an unreachable provider: the upstream URL in the error line has no key
--- http_config: $TEST_NGINX_GW_HTTP_LOGS
--- config: $TEST_NGINX_GW_UP_DEAD
--- request
POST $TEST_NGINX_GEMINI?key=$TEST_NGINX_KEY&alt=json
$TEST_NGINX_BODY
--- more_headers
Content-Type: application/json
--- error_code: 502
--- check
main::logs_clean('provider down', want => [
    [ info => qr{connect\(\) failed [^\n]*request: "POST [^"]*\?key=\[redacted\]&alt=json HTTP/1\.1", upstream: "http://127\.0\.0\.1:$main::DEAD/v1beta/models/gemini-2\.0-flash:generateContent\?alt=json"} ] ]);



=== TEST 5: an unreachable sidecar: neither the lookup's URL nor the module's line has the key hash
--- http_config: $TEST_NGINX_GW_HTTP_LOGS
--- config: $TEST_NGINX_GW_RESOLVE_DEAD
--- request eval
"POST $main::GEMINI?key=$main::UNKNOWN[1]\n$main::BODY"
--- more_headers
Content-Type: application/json
--- error_code: 503
--- response_body_like: "status":"UNAVAILABLE"
--- check
main::logs_clean('sidecar down', want => [
    [ info => qr{connect\(\) failed [^\n]*request: "POST [^"]*\?key=\[redacted\] HTTP/1\.1", subrequest: "/_trueport/resolve", upstream: "http://127\.0\.0\.1:$main::DEAD/internal/v1/keys/resolve\?provider=google"} ],
    [ info => qr{trueport: google key lookup failed with status 502} ] ]);
--- error_log
key lookup failed



=== TEST 6: a failed background refresh logs no key hash
--- http_config: $TEST_NGINX_GW_HTTP_REFRESH
--- config: $TEST_NGINX_GW
--- check
my %req = (method => 'POST', uri => "$main::GEMINI?key=$main::K->{key}",
           body => $main::BODY,
           headers => { 'Content-Type' => 'application/json' });
is(http_request(%req)->{status}, 200, 'cached');
sleep 0.05;
stop_sidecar();
my $res = http_request(%req);
sleep 0.3;
start_sidecar();
is($res->{status}, 200, 'served from the cache while the sidecar is down');
main::logs_clean('refresh', want => [
    [ info => qr{trueport: google key refresh failed with status 502} ] ]);



=== TEST 7: the shipped conf.d: the provider's request id once and untouched, the gateway's in x-trueport-request-id
--- http_config: $TEST_NGINX_GW_HTTP_LOGS
--- config: $TEST_NGINX_GW
--- check
my $s = gw_shipped(name => 'ids', env => { %main::ROUTE_KEYS });
my $call = sub {
    my ($uri, %o) = @_;
    return http_request(port => $s->{port}, method => $o{method} // 'POST',
        uri => $uri, body => $o{body} // ($o{method} ? undef : $main::BODY),
        headers => [ [ 'Content-Type', 'application/json' ],
                     [ 'anthropic-version', '2023-06-01' ],
                     @{ $o{headers} || [] } ]);
};
my $key = [ [ 'x-api-key', $main::K->{key} ] ];

for my $c ([ openai => '/trueportai-services/openai/v1/chat/completions', 'x-request-id', 'request-id' ],
           [ azure => '/trueportai-services/azure/res/dep/chat/completions?api-version=1', 'x-request-id', 'request-id' ],
           [ anthropic => '/trueportai-services/anthropic/v1/messages', 'request-id', 'x-request-id' ]) {
    my ($p, $uri, $name, $other) = @$c;
    my $res = $call->($uri, headers => $key);
    is($res->{status}, 200, "$p: 200");
    my $m = (mock_requests())[-1];
    my @ids = main::header_values($res, $name);
    is(scalar @ids, 1, "$p: one $name header");
    is($ids[0], $m->{response_request_id}, "$p: $name is the provider's");
    is(scalar main::header_values($res, $other), 0, "$p: no $other");
    my @gw = main::header_values($res, 'x-trueport-request-id');
    ok(@gw == 1 && $gw[0] =~ /^[0-9a-f]{32}$/, "$p: x-trueport-request-id")
        or diag("@gw");
}

# the gateway's own answers: its id in x-trueport-request-id only
for my $c ([ 'a refused key', $call->('/trueportai-services/openai/v1/chat/completions',
                                      headers => [ [ 'x-api-key', $main::UNKNOWN[2] ] ]), 401 ],
           [ 'a body over the limit', $call->('/trueportai-services/openai/v1/chat/completions',
                                              headers => [ @$key, [ 'Content-Length', 34603009 ] ],
                                              body => ''), 413 ],
           [ 'a provider without a request id', $call->("$main::GEMINI?key=$main::K->{key}"), 200 ]) {
    my ($what, $res, $status) = @$c;
    is($res->{status}, $status, "$what: $status");
    is(scalar main::header_values($res, 'x-request-id'), 0, "$what: no x-request-id");
    my @gw = main::header_values($res, 'x-trueport-request-id');
    ok(@gw == 1 && $gw[0] =~ /^[0-9a-f]{32}$/, "$what: one x-trueport-request-id")
        or diag("@gw");
}

# the sidecar's routes and nginx's own answers outside the gateway: one
# X-Request-Id, the gateway's
for my $c ([ 'platform API', '/platform/api/nothing', 'GET', 404 ],
           [ 'management API', '/trueportai-services/api/v1/keys', 'GET', 401 ],
           [ 'health', '/health', 'GET', 200 ],
           [ 'gateway health', '/trueportai-services/health', 'GET', 200 ],
           [ 'no route', '/nowhere', 'GET', 404 ],
           [ 'platform body over 1m', '/platform/api/global/auth/login', 'POST', 413 ]) {
    my ($what, $uri, $method, $status) = @$c;
    my $res = $call->($uri, method => $method,
                      $status == 413 ? (headers => [ [ 'Content-Length', 2 * 1024 * 1024 ] ],
                                        body => '') : ());
    is($res->{status}, $status, "$what: $status");
    my @ids = main::header_values($res, 'x-request-id');
    ok(@ids == 1 && $ids[0] =~ /^[0-9a-f]{32}$/, "$what: one X-Request-Id")
        or diag("@ids");
    is(scalar main::header_values($res, 'x-trueport-request-id'), 0,
       "$what: no x-trueport-request-id");
}

gw_shipped_stop($s);
main::logs_clean('shipped', want => [
    [ shipped => qr{"POST [^"]*:generateContent\?key=\[redacted\] HTTP/1\.1" 200 } ] ],
    files => { shipped => "$s->{dir}/logs/access.log",
               'shipped error' => "$s->{dir}/logs/error.log" });



=== TEST 8: a provider route takes a 20 MB body, refuses one over 32 MB
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- check
my $text = 'x' x (20 * 1024 * 1024);
my $body = qq({"model":"gpt-4o","messages":[{"role":"user","content":"$text"}]});
my %h = ('x-api-key' => $main::K->{key}, 'Content-Type' => 'application/json');
my $uri = '/trueportai-services/openai/v1/chat/completions';
mock_clear();
my $res = http_request(method => 'POST', uri => $uri, body => $body,
                       headers => \%h, timeout => 30);
is($res->{status}, 200, '20 MB: 200');
my @m = mock_requests();
is($m[-1]{body_length}, length($body), '... the provider got all of it');
mock_clear();

$res = http_request(method => 'POST', uri => $uri, body => '',
                    headers => { %h, 'Content-Length' => 32 * 1024 * 1024 + 1 });
is($res->{status}, 413, '32 MB + 1 declared: 413');

my $chunk = 'y' x (1024 * 1024);
my $chunked = join('', map { sprintf("%x\r\n%s\r\n", length $chunk, $chunk) } 1 .. 33)
              . "0\r\n\r\n";
$res = http_request(method => 'POST', uri => $uri, body => $chunked,
                    headers => { %h, 'Transfer-Encoding' => 'chunked' },
                    timeout => 30);
is($res->{status}, 413, '33 MB chunked: 413');
is(scalar(mock_requests()), 0, 'nothing over the limit reached the provider');
--- error_log
client intended to send too large body: 33554433 bytes
client intended to send too large chunked body



=== TEST 9: TRUEPORT_PROVIDER_MAX_BODY and TRUEPORT_POLICY_MAX_BODY set the two limits
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- check
my $s = gw_shipped(name => 'limits',
                   env => { %main::ROUTE_KEYS,
                            TRUEPORT_PROVIDER_MAX_BODY => '2m',
                            TRUEPORT_POLICY_MAX_BODY => '4k' });
my $uri = '/trueportai-services/openai/v1/chat/completions';
my $send = sub {
    my ($key, %o) = @_;
    return http_request(port => $s->{port}, method => 'POST', uri => $uri,
        body => $o{body} // '',
        headers => [ [ 'x-api-key', $key ],
                     [ 'Content-Type', 'application/json' ],
                     @{ $o{headers} || [] } ]);
};
my $big = qq({"model":"m","messages":[{"role":"user","content":")
          . ('z' x (1536 * 1024)) . '"}]}';
is($send->($main::K->{key}, body => $big)->{status}, 200, '1.5 MB under 2m: 200');
is($send->($main::K->{key}, headers => [ [ 'Content-Length', 2 * 1024 * 1024 + 1 ] ])->{status},
   413, '2m + 1 declared: 413');
my $res = $send->($main::PK->{key}, body => $big);
is($res->{status}, 413, 'a tenant with rules, 1.5 MB over the policy limit of 4k: 413');
like($res->{body}, qr/larger than the 4096 bytes the gateway's policies check/, '... saying why');
gw_shipped_stop($s);

my $conf = main::slurp("$s->{dir}/conf/trueport-proxy.conf")
           . main::slurp("$s->{dir}/conf/trueport.conf");
like($conf, qr/^\s*client_max_body_size 2m;/m, 'rendered: client_max_body_size 2m');
like($conf, qr/^\s*trueport_policy_max_body 4k;/m, 'rendered: trueport_policy_max_body 4k');

local $ENV{TRUEPORT_PROVIDER_MAX_BODY} = 'lots';
local $ENV{TRUEPORT_INTERNAL_TOKEN} = 't';
my $out = `$ENV{TEST_NGINX_ROOT}/scripts/render-conf.pl $main::WORK/bad-conf 2>&1`;
isnt($?, 0, 'a bad size is refused');
like($out, qr/TRUEPORT_PROVIDER_MAX_BODY/, '... naming the variable');



=== TEST 10: a chunked body over trueport_policy_max_body is refused, not sent unchecked
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_SMALL
--- init
mock_clear();
--- request
POST /trueportai-services/anthropic/v1/messages
--- request_body eval
my $b = '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"'
        . ('q' x 2000) . '"}]}';
sprintf("%x\r\n%s\r\n0\r\n\r\n", length $b, $b)
--- more_headers
x-api-key: $TEST_NGINX_PKEY
anthropic-version: 2023-06-01
Content-Type: application/json
Transfer-Encoding: chunked
--- error_code: 413
--- response_body_like: ^\{"type":"error","error":\{"type":"request_too_large","message":"the request body is larger than the 1024 bytes the gateway's policies check"\}
--- check
is(scalar(mock_requests()), 0, 'the provider got nothing');
--- no_error_log
[error]



=== TEST 11: a request nginx refuses while reading the headers: the access log has it redacted
--- http_config: $TEST_NGINX_GW_HTTP_LOGS
--- config: $TEST_NGINX_GW
--- check
# (nginx's own info line for it is written before any module runs: not
# checked, see the README)
my $key = main::random_key();
my $res = http_request(method => 'GET', uri => "$main::GEMINI?key=$key",
                       headers => [ [ Host => 'a' ], [ Host => 'b' ] ]);
is($res->{status}, 400, 'two Host headers: 400');
my $deadline = time + 5;
my $log;
sleep 0.05 until ($log = main::slurp("$main::WORK/logs/access.log"))
                 =~ /"GET [^"]*\?key=\[redacted\] HTTP\/1\.1" 400 /
                 or time > $deadline;
like($log, qr/"GET [^"]*\?key=\[redacted\] HTTP\/1\.1" 400 /, 'logged redacted');
ok(index($log, $key) < 0, 'the key is not in the access log');
