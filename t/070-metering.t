# Metering (issue 5): every request that passed the gateway's checks, and
# every refusal whose key is known, becomes one usage record in the
# worker's spool (trueport_spool), which the sidecar's ingester copies into
# usage_logs exactly once: tokens, model, provider, status and stream flag
# for the four providers, plain and streamed, gzip-encoded too; a client
# that goes away mid-stream leaves completed=false; a 429 of the limiter is
# recorded; the analytics API shows the rows to the tenant.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

our $SPOOL = work_dir() . '/spool';
make_path($SPOOL, { mode => 0755 });

use_sidecar(env => { TRUEPORT_SPOOL_DIR => $SPOOL });
gw_setup();

our $T = gw_tenant();
our $K = gw_key($T, rpm => 1000);
our $ONE = gw_key($T, rpm => 1);

# 400 words: the mock streams them 5 ms apart, two seconds in all
our $LONG = join ' ', map { "w$_" } 1 .. 400;

gw_env(
    KEY => $K->{key},
    ONE => $ONE->{key},
    LONG => $LONG,
    GW_HTTP_SPOOL => gw_http_config()
                     . "    trueport_spool $SPOOL max_size=1m max_age=1s;\n",
);

our %plain = (
    openai => ['/trueportai-services/openai/v1/chat/completions',
               '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
               'gpt-4o-mini'],
    anthropic => ['/trueportai-services/anthropic/v1/messages',
                  '{"model":"claude-3-5-haiku-latest","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}',
                  'claude-3-5-haiku-latest'],
    google => ['/trueportai-services/google/v1beta/models/gemini-2.0-flash:generateContent',
               '{"contents":[{"parts":[{"text":"hi"}]}]}', 'gemini-2.0-flash'],
    azure => ['/trueportai-services/azure/res/gpt4o/chat/completions?api-version=2024-06-01',
              '{"messages":[{"role":"user","content":"hi"}]}', 'gpt4o'],
);

our %stream = (
    openai => ['/trueportai-services/openai/v1/chat/completions',
               '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'],
    anthropic => ['/trueportai-services/anthropic/v1/messages',
                  '{"model":"claude-3-5-haiku-latest","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"hi"}]}'],
    google => ['/trueportai-services/google/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse',
               '{"contents":[{"parts":[{"text":"hi"}]}]}'],
    azure => ['/trueportai-services/azure/res/gpt4o/chat/completions?api-version=2024-06-01',
              '{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'],
);

our @P = qw(openai anthropic google azure);
our @IDS;      # the request id of every request this file sends

sub requests {
    my ($h) = @_;
    return [ map { "POST $h->{$_}[0]\n$h->{$_}[1]" } @P ];
}

# The usage_logs rows of these request ids, once they are all there
# (the ingester polls the spool); request_id => [rows].
sub rows_of {
    my (@ids) = @_;
    my $deadline = time + 6;
    my %by;
    while (1) {
        %by = ();
        my $rows = dbh()->selectall_arrayref(
            'SELECT * FROM usage_logs WHERE request_id = ANY(?)',
            { Slice => {} }, \@ids);
        push @{ $by{$_->{request_id}} }, $_ for @$rows;
        last if @ids == grep { $by{$_} } @ids or time > $deadline;
        sleep 0.1;
    }
    return \%by;
}

sub ids_of {
    my @ids = map { $_->{headers}{'x-trueport-request-id'} // 'none' } @_;
    push @IDS, @ids;
    return @ids;
}

# checks the usage rows of the responses: one each, with these figures
sub check_usage {
    my ($what, $responses, %want) = @_;
    my @ids = ids_of(@$responses);
    my $by = rows_of(@ids);
    for my $i (0 .. $#P) {
        my $p = $P[$i];
        my $rows = $by->{$ids[$i]} || [];
        is(scalar @$rows, 1, "$what $p: one row") or next;
        my $r = $rows->[0];
        is($r->{provider}, $p, "$what $p: provider");
        is($r->{model}, $plain{$p}[2], "$what $p: model");
        is($r->{tenant_id}, $T->{id}, "$what $p: tenant");
        is($r->{key_id}, $K->{id}, "$what $p: key");
        is($r->{env}, 'production', "$what $p: env");
        is($r->{status}, 200, "$what $p: status");
        is($r->{$_}, $want{$_}, "$what $p: $_")
            for qw(stream input_tokens output_tokens cached_tokens
                   total_tokens);
        ok($r->{completed}, "$what $p: completed");
        is($r->{error_kind}, undef, "$what $p: no error");
        like($r->{path}, qr{^/trueportai-services/$p/}, "$what $p: path");
        ok($r->{latency_ms} >= 0 && $r->{ttfb_ms} >= 0
           && $r->{bytes_in} > 0 && $r->{bytes_out} > 0,
           "$what $p: timings and sizes");
        is($r->{client_ip}, '127.0.0.1', "$what $p: client ip");
    }
}

# A streamed request on a raw socket, closed after the first event;
# returns its request id.
sub abandon {
    my ($p) = @_;
    my ($uri, $body) = @{ $stream{$p} };
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => server_port()) or die $!;
    print $s "POST $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           . "x-api-key: $K->{key}\r\nanthropic-version: 2023-06-01\r\n"
           . "x-mock-reply: $LONG\r\nContent-Type: application/json\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $raw = '';
    my $sel = IO::Select->new($s);
    while ($raw !~ /\r\n\r\n.*data:/s && $sel->can_read(5)) {
        sysread($s, my $buf, 65536) or last;
        $raw .= $buf;
    }
    close $s;
    my ($id) = $raw =~ /x-trueport-request-id: (\w+)/i;
    push @IDS, $id // 'none';
    return $id // 'none';
}

run_tests();

__DATA__

=== TEST 1: plain answers of the four providers are metered
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests(\%main::plain)
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
x-mock-usage: prompt=100,completion=20,cached=30
Content-Type: application/json
--- error_code eval
[200, 200, 200, 200]
--- check
main::check_usage('plain', \@main::responses, stream => 0,
                  input_tokens => 100, output_tokens => 20,
                  cached_tokens => 30, total_tokens => 120);
--- no_error_log
[error]
[alert]



=== TEST 2: streamed answers of the four providers are metered
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests(\%main::stream)
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
x-mock-usage: prompt=100,completion=20,cached=30
Content-Type: application/json
--- response_headers_like
Content-Type: ^text/event-stream
--- check
main::check_usage('stream', \@main::responses, stream => 1,
                  input_tokens => 100, output_tokens => 20,
                  cached_tokens => 30, total_tokens => 120);
--- no_error_log
[error]
[alert]



=== TEST 3: gzip-encoded answers, plain and streamed, are metered
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
[main::requests(\%main::plain)->[0], main::requests(\%main::stream)->[1]]
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
x-mock-usage: prompt=7,completion=5
x-mock-behavior: gzip
Content-Type: application/json
--- response_headers
Content-Encoding: gzip
--- check
my @ids = main::ids_of(@main::responses);
my $by = main::rows_of(@ids);
for my $i (0, 1) {
    my $r = ($by->{$ids[$i]} || [])->[0] or do { fail("gzip $i: no row"); next };
    is($r->{stream}, $i, "gzip $i: stream flag");
    is("$r->{input_tokens}/$r->{output_tokens}/$r->{total_tokens}", '7/5/12',
       "gzip $i: tokens");
    ok($r->{completed}, "gzip $i: completed");
}
--- no_error_log
[error]
[alert]



=== TEST 4: a client that goes away mid-stream: completed=false
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- check
main::ids_of(@main::responses);
my @ids = map { main::abandon($_) } qw(openai anthropic);
like($_, qr/^[0-9a-f]{32}$/, 'the stream had begun') for @ids;
my $by = main::rows_of(@ids);
for my $id (@ids) {
    my $rows = $by->{$id} || [];
    is(scalar @$rows, 1, 'one row') or next;
    my $r = $rows->[0];
    ok(!$r->{completed}, 'not completed');
    is($r->{error_kind}, 'client_abort', 'error_kind client_abort');
    ok($r->{stream}, 'stream');
    ok($r->{latency_ms} < 1500, "recorded when the client left ($r->{latency_ms} ms)");
}
--- no_error_log
[alert]



=== TEST 5: a provider that drops the stream: completed=false, upstream_error
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
[main::requests(\%main::stream)->[0]]
--- more_headers
x-api-key: $TEST_NGINX_KEY
x-mock-behavior: drop-mid-stream
Content-Type: application/json
--- check
my @ids = main::ids_of(@main::responses);
my $r = (main::rows_of(@ids)->{$ids[0]} || [])->[0];
ok($r, 'a row');
ok($r && !$r->{completed}, 'not completed');
is($r && $r->{error_kind}, 'upstream_error', 'upstream_error');
--- error_log
upstream prematurely closed connection



=== TEST 6: the limiter's 429 is recorded
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
["GET /trueportai-services/openai/v1/models", "GET /trueportai-services/openai/v1/models"]
--- more_headers
x-api-key: $TEST_NGINX_ONE
--- error_code eval
[200, 429]
--- check
my @ids = main::ids_of(@main::responses);
my $by = main::rows_of(@ids);
my ($ok, $no) = map { ($by->{$_} || [])->[0] } @ids;
is($ok && $ok->{status}, 200, 'the admitted request: 200');
is($no && $no->{status}, 429, 'the refused one: 429');
is($no && $no->{error_kind}, 'rate_limited', '... rate_limited');
is($no && $no->{key_id}, $main::ONE->{id}, '... of its key');
is($no && $no->{tenant_id}, $main::T->{id}, '... and tenant');
ok($no && $no->{completed}, '... sent whole');
--- no_error_log
[alert]



=== TEST 7: an answer without a model records the request's model
The provider fails with no model in its error body: the record takes the
model the request named (body "model", Gemini's path, Azure's deployment),
from a body nginx wrote to a temp file too (64 KB, "model" last).
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
[ @{ main::requests(\%main::plain) },
  "POST /trueportai-services/openai/v1/chat/completions\n"
  . '{"messages":[{"role":"user","content":"' . ('x' x 65536)
  . '"}],"model":"gpt-4.1-from-a-file"}' ]
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
x-mock-behavior: status-500
Content-Type: application/json
--- error_code eval
[500, 500, 500, 500, 500]
--- check
my @ids = main::ids_of(@main::responses);
my $by = main::rows_of(@ids);
my @want = ((map { $main::plain{$_}[2] } @main::P), 'gpt-4.1-from-a-file');
for my $i (0 .. $#want) {
    my $r = ($by->{$ids[$i]} || [])->[0] or do { fail("row $i"); next };
    is($r->{model}, $want[$i], "model of request $i: $want[$i]");
    is($r->{error_kind}, 'upstream_error', "request $i: upstream_error");
}
--- no_error_log
[alert]



=== TEST 8: exactly once, and the analytics API lists them for the tenant
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- check
main::ids_of(@main::responses);
my $by = main::rows_of(@main::IDS);
sleep 1.5;     # a record ingested twice would show by now
my ($n, $distinct) = dbh()->selectrow_array(
    'SELECT count(*), count(DISTINCT request_id) FROM usage_logs'
    . ' WHERE tenant_id = ?', undef, $main::T->{id});
is($n, scalar @main::IDS, "one row per request ($n)");
is($distinct, $n, 'no request twice');
is(scalar(grep { !$by->{$_} } @main::IDS), 0, 'every request has its row');
my $r = sidecar_api('GET',
    '/trueportai-services/api/v1/analytics/logs?limit=100', undef,
    { Authorization => "Bearer $main::T->{token}" });
is($r->{status}, 200, 'analytics/logs: 200');
is($r->{json}{total}, $n, 'analytics/logs: the total');
my %seen = map { $_->{request_id} => $_ } @{ $r->{json}{items} || [] };
is(scalar(grep { $seen{$_} } @main::IDS), scalar @main::IDS,
   'analytics/logs: every request listed');
my $other = gw_tenant();
$r = sidecar_api('GET', '/trueportai-services/api/v1/analytics/logs',
                 undef, { Authorization => "Bearer $other->{token}" });
is($r->{json}{total}, 0, "another tenant sees none of them");
--- no_error_log
[alert]
