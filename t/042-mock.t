# The mock provider (t/mock/provider.js) against its own promises, so that
# gateway tests can trust it: each provider's answer and stream shape, its
# auth errors, the request log, and the failure modes.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::TruePort::Mock;
use HTTP::Tiny;
use IO::Uncompress::Gunzip qw(gunzip);
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time);

plan skip_all => 'node is not installed' unless `node --version 2>/dev/null`;

my $port = start_mock();
like($port, qr/^\d+$/, 'the mock reports its port');
is($ENV{TEST_NGINX_MOCK_PORT}, $port, '... and exports it');

my $base = "http://127.0.0.1:$port";
my $http = HTTP::Tiny->new(timeout => 10);
my $json = JSON::PP->new->utf8;

sub req {
    my ($method, $path, $headers, $body) = @_;
    my $res = $http->request($method, "$base$path", {
        headers => { 'content-type' => 'application/json', %{ $headers || {} } },
        defined $body ? (content => ref $body ? $json->encode($body) : $body) : (),
    });
    return $res;
}

sub body_json { my $r = shift; return eval { $json->decode($r->{content}) } }

# the data: payloads of an SSE body (comments and event: lines dropped)
sub sse_data {
    my ($text) = @_;
    return map { /^data: (.*)$/ ? $1 : () } split /\r?\n/, $text;
}

my %oa = (authorization => 'Bearer sk-upstream');
my $chat = { model => 'gpt-4o-mini', messages => [{ role => 'user', content => 'one two three' }] };

# -- OpenAI ---------------------------------------------------------------

my $r = req(POST => '/v1/chat/completions', \%oa, $chat);
is($r->{status}, 200, 'openai chat: 200');
like($r->{headers}{'x-request-id'}, qr/^req_/, 'openai chat: x-request-id');
my $j = body_json($r);
is($j->{object}, 'chat.completion', 'openai chat: object');
is($j->{model}, 'gpt-4o-mini', 'openai chat: model echoed');
is($j->{choices}[0]{message}{role}, 'assistant', 'openai chat: assistant message');
is($j->{choices}[0]{finish_reason}, 'stop', 'openai chat: finish_reason');
is($j->{usage}{prompt_tokens}, 13, 'openai chat: prompt tokens = 10 + words');
is($j->{usage}{total_tokens}, $j->{usage}{prompt_tokens} + $j->{usage}{completion_tokens},
   'openai chat: total');
is($j->{usage}{prompt_tokens_details}{cached_tokens}, 0, 'openai chat: cached_tokens');
is($j->{usage}{completion_tokens_details}{reasoning_tokens}, 0, 'openai chat: reasoning_tokens');

$r = req(POST => '/v1/chat/completions',
         { %oa, 'x-mock-usage' => 'prompt=100,completion=7,cached=40,reasoning=3',
           'x-mock-reply' => 'custom words' }, $chat);
$j = body_json($r);
is_deeply([@{ $j->{usage} }{qw(prompt_tokens completion_tokens total_tokens)},
           $j->{usage}{prompt_tokens_details}{cached_tokens},
           $j->{usage}{completion_tokens_details}{reasoning_tokens}],
          [100, 7, 107, 40, 3], 'openai chat: x-mock-usage sets every count');
is($j->{choices}[0]{message}{content}, 'custom words', 'openai chat: x-mock-reply');

$r = req(POST => '/v1/chat/completions', \%oa, { %$chat, stream => JSON::PP::true });
is($r->{status}, 200, 'openai stream: 200');
like($r->{headers}{'content-type'}, qr{^text/event-stream}, 'openai stream: event stream');
my @d = sse_data($r->{content});
is($d[-1], '[DONE]', 'openai stream: ends with [DONE]');
my @chunks = map { $json->decode($_) } @d[0 .. $#d - 1];
ok(!(grep { $_->{object} ne 'chat.completion.chunk' } @chunks), 'openai stream: every chunk a chat.completion.chunk');
ok(!(grep { !@{ $_->{choices} } } @chunks), 'openai stream: no usage chunk without include_usage');
is($chunks[-1]{choices}[0]{finish_reason}, 'stop', 'openai stream: last chunk has finish_reason');
is(join('', map { $_->{choices}[0]{delta}{content} // '' } @chunks),
   'Hello from the mock provider, how can I help?', 'openai stream: deltas make the reply');

$r = req(POST => '/v1/chat/completions', \%oa,
         { %$chat, stream => JSON::PP::true, stream_options => { include_usage => JSON::PP::true } });
@d = sse_data($r->{content});
my $last = $json->decode($d[-2]);
is_deeply($last->{choices}, [], 'openai stream + include_usage: usage chunk has empty choices');
is($last->{usage}{prompt_tokens}, 13, 'openai stream + include_usage: usage in it');
is($json->decode($d[0])->{usage}, undef, '... and usage is null before it');

$r = req(POST => '/v1/embeddings', \%oa, { model => 'text-embedding-3-small', input => ['a b', 'c'] });
$j = body_json($r);
is($j->{object}, 'list', 'openai embeddings: list');
is(scalar @{ $j->{data} }, 2, 'openai embeddings: one per input');
is(scalar @{ $j->{data}[0]{embedding} }, 8, 'openai embeddings: floats by default');
is($j->{usage}{prompt_tokens}, 13, 'openai embeddings: usage');
$r = req(POST => '/v1/embeddings', \%oa, { model => 'm', input => 'x', encoding_format => 'base64' });
is(length(decode_base64(body_json($r)->{data}[0]{embedding})), 32,
   'openai embeddings: base64 float32 (what the SDK asks for)');

$r = req(GET => '/v1/models', \%oa);
is(body_json($r)->{data}[0]{object}, 'model', 'openai models: list');

$r = req(POST => '/v1/chat/completions', {}, $chat);
is($r->{status}, 401, 'openai without a key: 401');
is(body_json($r)->{error}{type}, 'invalid_request_error', '... in openai\'s error shape');

$r = req(POST => '/v1/nope', \%oa, {});
is($r->{status}, 404, 'openai unknown path: 404');
like(body_json($r)->{error}{message}, qr/Invalid URL \(POST \/v1\/nope\)/, '... like openai says it');

$r = req(POST => '/v1/chat/completions', \%oa, '{"model":');
is($r->{status}, 400, 'malformed JSON: 400');

# -- Anthropic --------------------------------------------------------------

my %an = ('x-api-key' => 'sk-ant', 'anthropic-version' => '2023-06-01');
my $msg = { model => 'claude-3-5-haiku-latest', max_tokens => 64,
            messages => [{ role => 'user', content => 'hi there' }] };

$r = req(POST => '/v1/messages', \%an, $msg);
is($r->{status}, 200, 'anthropic: 200');
like($r->{headers}{'request-id'}, qr/^req_/, 'anthropic: request-id');
$j = body_json($r);
is($j->{type}, 'message', 'anthropic: a message');
is($j->{content}[0]{type}, 'text', 'anthropic: text content');
is($j->{stop_reason}, 'end_turn', 'anthropic: stop_reason');
is_deeply([sort keys %{ $j->{usage} }],
          [qw(cache_creation_input_tokens cache_read_input_tokens input_tokens output_tokens)],
          'anthropic: usage fields');

$r = req(POST => '/v1/messages', { %an, 'x-mock-usage' => 'prompt=100,cached=30,cache_creation=20' }, $msg);
$j = body_json($r)->{usage};
is_deeply([@$j{qw(input_tokens cache_read_input_tokens cache_creation_input_tokens)}], [50, 30, 20],
          'anthropic: input_tokens excludes cache reads and writes');

$r = req(POST => '/v1/messages', { 'authorization' => 'Bearer sk-ant', 'anthropic-version' => '2023-06-01' }, $msg);
is($r->{status}, 200, 'anthropic: Authorization: Bearer is accepted too (SDK 1.x)');

$r = req(POST => '/v1/messages', \%an, { %$msg, stream => JSON::PP::true });
my @events = $r->{content} =~ /^event: (\w+)$/mg;
is_deeply([grep { $_ ne 'content_block_delta' } @events],
          [qw(message_start content_block_start ping content_block_stop message_delta message_stop)],
          'anthropic stream: the event sequence');
ok((grep { $_ eq 'content_block_delta' } @events) > 1, 'anthropic stream: several deltas');
@d = map { $json->decode($_) } sse_data($r->{content});
is($d[0]{message}{usage}{input_tokens}, 12, 'anthropic stream: input tokens in message_start');
my ($md) = grep { $_->{type} eq 'message_delta' } @d;
is($md->{usage}{output_tokens}, 9, 'anthropic stream: output tokens in message_delta');

$r = req(POST => '/v1/messages', { 'x-api-key' => 'k' }, $msg);
is($r->{status}, 400, 'anthropic without anthropic-version: 400');
like($r->{content}, qr/anthropic-version/, '... saying so');

$r = req(POST => '/v1/messages', { 'anthropic-version' => '2023-06-01' }, $msg);
is($r->{status}, 401, 'anthropic without a key: 401');
is(body_json($r)->{error}{type}, 'authentication_error', '... in anthropic\'s error shape');

$r = req(POST => '/v1/messages', \%an, { model => 'x', messages => [] });
is($r->{status}, 400, 'anthropic without max_tokens: 400');

# -- Gemini ---------------------------------------------------------------

my $gen = { contents => [{ role => 'user', parts => [{ text => 'hello gemini' }] }] };
$r = req(POST => '/v1beta/models/gemini-2.0-flash:generateContent', { 'x-goog-api-key' => 'g' }, $gen);
is($r->{status}, 200, 'gemini: 200');
$j = body_json($r);
is($j->{modelVersion}, 'gemini-2.0-flash', 'gemini: modelVersion');
is($j->{candidates}[0]{finishReason}, 'STOP', 'gemini: finishReason');
is($j->{usageMetadata}{promptTokenCount}, 12, 'gemini: usageMetadata');

$r = req(POST => '/v1beta/models/gemini-2.0-flash:generateContent?key=g', {}, $gen);
is($r->{status}, 200, 'gemini: ?key= works too');

$r = req(POST => '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse', { 'x-goog-api-key' => 'g' }, $gen);
is($r->{status}, 200, 'gemini stream: 200');
like($r->{content}, qr/^data: \{.*\}\r\n\r\ndata: /s, 'gemini stream: CRLF-separated events, like Google');
@d = map { $json->decode($_) } sse_data($r->{content});
ok(@d > 2, 'gemini stream: several chunks');
my @totals = map { $_->{usageMetadata}{candidatesTokenCount} } @d;
is_deeply(\@totals, [sort { $a <=> $b } @totals], 'gemini stream: a running total');
is($totals[-1], 9, 'gemini stream: the last chunk has the final count');
ok(!(grep { !$_->{modelVersion} } @d), 'gemini stream: modelVersion in every chunk');

$r = req(POST => '/v1beta/models/gemini-2.0-flash:streamGenerateContent', { 'x-goog-api-key' => 'g' }, $gen);
is(ref($json->decode($r->{content})), 'ARRAY', 'gemini stream without alt=sse: one JSON array');

$r = req(POST => '/v1beta/models/gemini-2.0-flash:generateContent', {}, $gen);
is($r->{status}, 403, 'gemini without a key: 403, as Google answers');
is(body_json($r)->{error}{status}, 'PERMISSION_DENIED', '... in Google\'s error shape');

# -- Azure ----------------------------------------------------------------

my $az = '/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21';
$r = req(POST => $az, { 'api-key' => 'az' }, { messages => $chat->{messages} });
is($r->{status}, 200, 'azure: 200');
$j = body_json($r);
is($j->{object}, 'chat.completion', 'azure: openai shape');
ok($j->{prompt_filter_results}, 'azure: prompt_filter_results');

$r = req(POST => $az, { 'api-key' => 'az' }, { messages => $chat->{messages}, stream => JSON::PP::true });
@d = sse_data($r->{content});
is_deeply($json->decode($d[0])->{choices}, [], 'azure stream: the first chunk has no choices');
is($d[-1], '[DONE]', 'azure stream: [DONE]');

$r = req(POST => '/openai/deployments/my-gpt4o/embeddings?api-version=2024-10-21', { 'api-key' => 'az' },
         { input => 'x' });
is(body_json($r)->{object}, 'list', 'azure embeddings');

$r = req(POST => '/openai/deployments/my-gpt4o/chat/completions', { 'api-key' => 'az' }, $chat);
is($r->{status}, 404, 'azure without api-version: 404');

$r = req(POST => $az, {}, $chat);
is($r->{status}, 401, 'azure without api-key: 401');
is(body_json($r)->{error}{code}, '401', '... in azure\'s error shape');

# -- the request log ------------------------------------------------------

mock_clear();
is(scalar(mock_requests()), 0, 'mock_clear empties the log');
req(POST => '/v1/chat/completions?x=1', { %oa, 'x-custom' => 'abc' }, $chat);
req(GET => '/v1/models', \%oa);
my @reqs = mock_requests();
is(scalar @reqs, 2, 'every request is recorded (not the /__mock/ ones)');
is($reqs[0]{method}, 'POST', 'record: method');
is($reqs[0]{path}, '/v1/chat/completions', 'record: path');
is_deeply($reqs[0]{query}, { x => 1 }, 'record: query');
is($reqs[0]{headers}{'x-custom'}, 'abc', 'record: headers (lowercase names)');
is($reqs[0]{headers}{authorization}, 'Bearer sk-upstream', 'record: the credential that arrived');
is_deeply($json->decode($reqs[0]{body}), $chat, 'record: body');

# -- failure modes --------------------------------------------------------

for my $p (['openai', '/v1/chat/completions', \%oa, $chat, sub { $_[0]{error}{code} eq 'rate_limit_exceeded' }],
           ['anthropic', '/v1/messages', \%an, $msg, sub { $_[0]{error}{type} eq 'rate_limit_error' }],
           ['gemini', '/v1beta/models/m:generateContent', { 'x-goog-api-key' => 'g' }, $gen,
            sub { $_[0]{error}{status} eq 'RESOURCE_EXHAUSTED' }],
           ['azure', $az, { 'api-key' => 'a' }, $chat, sub { $_[0]{error}{code} eq '429' }]) {
    my ($name, $path, $h, $body, $check) = @$p;
    $r = req(POST => $path, { %$h, 'x-mock-behavior' => 'status-429' }, $body);
    is($r->{status}, 429, "$name status-429: 429");
    is($r->{headers}{'retry-after'}, '1', "$name status-429: retry-after");
    ok($check->(body_json($r)), "$name status-429: the provider's error shape");
    $r = req(POST => $path, { %$h, 'x-mock-behavior' => 'status-500' }, $body);
    is($r->{status}, 500, "$name status-500: 500");
}

my $t0 = time;
$r = req(POST => '/v1/chat/completions', { %oa, 'x-mock-behavior' => 'slow-300' }, $chat);
my $dt = time - $t0;
ok($dt >= 0.3, "slow-300 waits before answering (${\ sprintf '%.2f', $dt}s)");
is($r->{status}, 200, 'slow-300 then answers');

$r = req(POST => '/v1/chat/completions', { %oa, 'x-mock-behavior' => 'gzip' }, $chat);
is($r->{headers}{'content-encoding'}, 'gzip', 'gzip: Content-Encoding');
gunzip(\$r->{content} => \my $plain) or die;
is($json->decode($plain)->{object}, 'chat.completion', 'gzip: the body gunzips to the answer');

$r = req(POST => '/v1/messages', { %an, 'x-mock-behavior' => 'gzip' }, { %$msg, stream => JSON::PP::true });
gunzip(\$r->{content} => \$plain) or die;
like($plain, qr/event: message_stop/, 'gzip: a stream gzipped as a whole');

$r = req(POST => '/v1/chat/completions', { %oa, 'x-mock-behavior' => 'drop-mid-stream' },
         { %$chat, stream => JSON::PP::true });
is($r->{status}, 599, 'drop-mid-stream: the connection breaks');
my $got = '';
$http->request('POST', "$base/v1/chat/completions", {
    headers => { %oa, 'x-mock-behavior' => 'drop-mid-stream', 'content-type' => 'application/json' },
    content => $json->encode({ %$chat, stream => JSON::PP::true }),
    data_callback => sub { $got .= $_[0] },
});
like($got, qr/chat\.completion\.chunk/, 'drop-mid-stream: after part of the stream');
unlike($got, qr/\[DONE\]/, 'drop-mid-stream: before its end');

$r = req(POST => '/v1/chat/completions', { %oa, 'x-mock-behavior' => 'drop-mid-stream' }, $chat);
is($r->{status}, 599, 'drop-mid-stream without streaming: the body is cut short');

$r = req(POST => '/v1/chat/completions', { %oa, 'x-mock-behavior' => 'slow-50, status-500' }, $chat);
is($r->{status}, 500, 'behaviors combine');

$r = req(GET => '/v1/models', \%oa);
is($r->{status}, 200, 'the mock still answers after all of that');

stop_mock();
ok(!HTTP::Tiny->new(timeout => 2)->get("$base/v1/models")->{success}, 'stop_mock stops it');

done_testing();
