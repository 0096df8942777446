# Streaming through the gateway: SSE reaches the client event by event as
# the provider sends it (timed on a raw socket), for all four providers;
# a provider that drops the connection mid-stream makes the client's
# response end abnormally (no last chunk); and every answer, streamed,
# proxied error or the gateway's own, carries x-trueport-request-id.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

use_sidecar();
gw_setup();

my $t = gw_tenant();
our $KEY = gw_key($t, rpm => 1000)->{key};
our $ONE = gw_key($t, rpm => 1)->{key};

# 80 words: the mock sends one event per word, 5 ms apart
our $REPLY = join ' ', map { "w$_" } 1 .. 80;

gw_env(
    KEY => $KEY,
    ONE => $ONE,
    REPLY => $REPLY,
    GW_ECHO => gw_locations(extra => 'add_header X-Echo-Id $trueport_request_id always;'),
);

our %stream = (
    openai => ['/trueportai-services/openai/v1/chat/completions',
               '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'],
    anthropic => ['/trueportai-services/anthropic/v1/messages',
                  '{"model":"claude-3-5-haiku-latest","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"hi"}]}'],
    google => ['/trueportai-services/google/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse',
               '{"contents":[{"parts":[{"text":"hi"}]}]}'],
    azure => ['/trueportai-services/azure/res/gpt4o/chat/completions?api-version=2024-06-01',
              '{"stream":true,"messages":[{"role":"user","content":"hi"}]}'],
);

# the four streaming requests, as --- request eval takes them
sub streams {
    return [ map { "POST $stream{$_}[0]\n$stream{$_}[1]" }
             qw(openai anthropic google azure) ];
}

# A streamed request on a raw socket: when the headers, the first event
# and the end arrived, and in how many reads.
sub timed {
    my ($provider) = @_;
    my ($uri, $body) = @{ $stream{$provider} };
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => server_port()) or die $!;
    my $t0 = time;
    print $s "POST $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           . "x-api-key: $KEY\r\nanthropic-version: 2023-06-01\r\n"
           . "x-mock-reply: $REPLY\r\nContent-Type: application/json\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my ($raw, $first, $reads) = ('', undef, 0);
    my $sel = IO::Select->new($s);
    while ($sel->can_read(10)) {
        my $n = sysread $s, my $buf, 65536;
        last unless $n;
        $reads++;
        $raw .= $buf;
        $first //= time - $t0 if $raw =~ /\r\n\r\n.*data:/s;
    }
    return { first => $first, end => time - $t0, reads => $reads,
             raw => $raw };
}

run_tests();

__DATA__

=== TEST 1: SSE from all four providers passes through, unbuffered headers included
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::streams()
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- response_headers_like
Content-Type: ^text/event-stream
x-trueport-request-id: ^[0-9a-f]{32}$
x-ratelimit-remaining-requests: ^\d+$
--- response_body_like eval
[qr/data: \[DONE\]\n\n\z/, qr/event: message_stop\ndata: \{"type":"message_stop"\}\n\n\z/,
 qr/"finishReason":"STOP"/, qr/data: \[DONE\]\n\n\z/]
--- check
ok(!$_->{truncated}, 'the stream ended cleanly') for @main::responses;
--- no_error_log
[error]



=== TEST 2: events reach the client as the provider sends them
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- check
for my $p (qw(openai anthropic google azure)) {
    my $r = main::timed($p);
    like($r->{raw}, qr/^HTTP\/1\.1 200 /, "$p: 200");
    ok(defined $r->{first} && $r->{end} - $r->{first} > 0.25,
       sprintf('%s: the first event came %.0f ms before the end (%.0f ms)',
               $p, 1000 * (($r->{end} // 0) - ($r->{first} // 0)),
               1000 * $r->{end}));
    ok($r->{reads} >= 10, "$p: in $r->{reads} reads, not one");
    diag sprintf('%s: first event after %.0f ms, end after %.0f ms, %d reads',
                 $p, 1000 * ($r->{first} // -1), 1000 * $r->{end},
                 $r->{reads});
}
--- no_error_log
[error]



=== TEST 3: a provider that drops the stream: the client's response ends abnormally
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::streams()
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
x-mock-behavior: drop-mid-stream
Content-Type: application/json
--- response_headers
Transfer-Encoding: chunked
--- response_body_like: ^(event: \w+\n)?data: 
--- check
for my $r (@main::responses) {
    is($r->{truncated}, 1, 'no last chunk: the client sees the stream broken');
    unlike($r->{raw}, qr/\r\n0\r\n\r\n\z/, '... and no terminating chunk at all');
    unlike($r->{body}, qr/\[DONE\]|message_stop|"finishReason":"STOP"/, '... nor a clean end of events');
}
--- error_log
upstream prematurely closed connection



=== TEST 4: a dropped plain response is cut short too
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
POST /trueportai-services/openai/v1/chat/completions
{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}
--- more_headers
x-api-key: $TEST_NGINX_KEY
x-mock-behavior: drop-mid-stream
Content-Type: application/json
--- check
is($main::res->{status}, 200, 'the headers were sent');
is($main::res->{truncated}, 1, 'the body is shorter than its Content-Length');
--- error_log
upstream prematurely closed connection



=== TEST 5: a gzip stream is passed as the provider sent it
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[main::streams()->[0]]
--- more_headers
x-api-key: $TEST_NGINX_KEY
x-mock-behavior: gzip
Content-Type: application/json
--- response_headers
Content-Encoding: gzip
--- response_body_like: ^\x1f\x8b
--- no_error_log
[error]



=== TEST 6: x-trueport-request-id is the request's $trueport_request_id, on every kind of answer
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_ECHO
--- request eval
["POST /trueportai-services/openai/v1/chat/completions\n{\"stream\":true,\"messages\":[]}",
 "GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/google/v1beta/models",
 "POST /trueportai-services/anthropic/v1/messages\n{}",
 "POST /trueportai-services/azure/bad.res/d/chat/completions\n{}"]
--- more_headers
x-api-key: $TEST_NGINX_ONE
--- error_code eval
[200, 429, 429, 429, 404]
--- check
my %seen;
for my $r (@main::responses) {
    my $id = $r->{headers}{'x-trueport-request-id'} // '';
    like($id, qr/^[0-9a-f]{32}$/, "$r->{status}: has the request id");
    is($id, $r->{headers}{'x-echo-id'}, "$r->{status}: it is \$trueport_request_id");
    $seen{$id}++;
}
is(scalar keys %seen, 5, 'one id per request');
my $anthropic = $main::responses[3];
like($anthropic->{body}, qr/"request_id":"$anthropic->{headers}{'x-trueport-request-id'}"/,
     "Anthropic's error body names the same id");



=== TEST 7: and on the errors raised before the key is known
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_ECHO
--- request eval
["GET /trueportai-services/openai/v1/models", "GET /trueportai-services/google/v1beta/models?key=sk-nope"]
--- error_code: 401
--- response_headers_like
x-trueport-request-id: ^[0-9a-f]{32}$
--- check
is($_->{headers}{'x-trueport-request-id'}, $_->{headers}{'x-echo-id'}, 'the same id')
    for @main::responses;
