# The official SDKs through the gateway, as a user runs them: the OpenAI
# Node SDK (chat, streaming with its async iterator, with and without
# stream_options.include_usage, an invalid key as AuthenticationError),
# the Anthropic SDK (x-api-key and Bearer) and the AzureOpenAI class, all
# against the mock provider; the provider sees the tenant's credential,
# never the gateway key. The SDKs are pinned in t/sdk/package-lock.json
# and installed with "npm ci" when t/sdk/node_modules is missing.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;

our $ROOT = $ENV{TP_ROOT} || '.';

if (!-d "$ROOT/t/sdk/node_modules") {
    plan skip_all => 'npm is not installed'
        if system('sh', '-c', 'command -v npm >/dev/null 2>&1') != 0;
    my $out = `npm ci --prefix '$ROOT/t/sdk' --no-audit --no-fund --silent 2>&1`;
    die "npm ci --prefix t/sdk failed (exit $?):\n$out" if $?;
}

use_sidecar();
gw_setup();

my $t = gw_tenant();
our $KEY = gw_key($t)->{key};
our $BAD = 'sk-' . ('x' x 43);
gw_credential($t, $_, "tenant-$_-credential") for qw(openai anthropic azure);

# 30 words: one streamed chunk each
our $REPLY = join ' ', map { "word$_" } 1 .. 30;

gw_env(KEY => $KEY);

# Runs t/sdk/<script>.mjs with the given environment; its JSON, or a
# failed test and undef.
sub sdk {
    my ($script, %env) = @_;
    local %ENV = (%ENV, TP_KEY => $KEY, TP_BAD_KEY => $BAD, %env);
    my $out = `node $ROOT/t/sdk/$script.mjs 2>&1`;
    my $r = $? == 0 ? json_decode($out) : undef;
    ok($r, "$script.mjs ran and printed JSON") or diag($out);
    return $r;
}

sub base { 'http://127.0.0.1:' . server_port() . "/trueportai-services/$_[0]" }

# Every request the mock saw since the block began: the credential in the
# provider's header, the gateway key nowhere.
sub upstream_clean {
    my ($n, $header, $want) = @_;
    my @m = Test::TruePort::Mock::mock_requests();
    is(scalar @m, $n, "the mock received $n requests");
    is(scalar(grep { ($_->{headers}{$header} // '') eq $want } @m), $n,
       "every one with $header: $want");
    ok(index(json_encode(\@m), $KEY) < 0, 'the gateway key is nowhere upstream');
    ok(index(json_encode(\@m), $BAD) < 0, 'nor the invalid key');
}

run_tests();

__DATA__

=== TEST 1: the OpenAI SDK: chat, streaming, usage, an invalid key
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY
--- response_body_like: "object":"list"
--- check
Test::TruePort::Mock::mock_clear();
my $r = main::sdk('openai', TP_BASE => main::base('openai/v1'),
                  TP_REPLY => $main::REPLY) or return;
my $c = $r->{chat};
is($c->{content}, $main::REPLY, 'chat: the content');
is($c->{finish}, 'stop', 'chat: finish_reason');
is_deeply([ @{ $c->{usage} }{qw(prompt_tokens completion_tokens total_tokens)} ],
          [ 12, 30, 42 ], 'chat: usage');
like($c->{requestId} // '', qr/^[0-9a-f]{32}$/, 'chat: x-trueport-request-id');

my $s = $r->{stream};
is($s->{text}, $main::REPLY, 'stream: the concatenated text');
is($s->{chunks}, 32, 'stream: every chunk (role, 30 words, finish)');
is($s->{finish}, 'stop', 'stream: finish_reason');
is($s->{usage}, undef, 'stream: no usage without include_usage');

my $u = $r->{stream_usage};
is($u->{text}, $main::REPLY, 'include_usage: the concatenated text');
is($u->{chunks}, 33, 'include_usage: every chunk and the usage chunk');
is_deeply([ @{ $u->{usage} || {} }{qw(prompt_tokens completion_tokens total_tokens)} ],
          [ 12, 30, 42 ], 'include_usage: usage in the last chunk');

my $e = $r->{invalid_key}{threw} || {};
is($e->{class}, 'AuthenticationError', 'invalid key: AuthenticationError');
ok($e->{auth}, 'invalid key: instanceof AuthenticationError');
is($e->{status}, 401, 'invalid key: status 401');
is($e->{message}, '401 invalid API key', "invalid key: the gateway's message");
is($e->{code}, 'invalid_api_key', 'invalid key: code');

is_deeply($r->{models}{ids}, ['gpt-4o', 'gpt-4o-mini', 'o3-mini', 'text-embedding-3-small'],
          'models.list');

# chat, two streams, models; the invalid key never reached it
main::upstream_clean(4, authorization => 'Bearer tenant-openai-credential');
--- no_error_log
[error]



=== TEST 2: the Anthropic SDK: x-api-key, Bearer (authToken), streaming, an invalid key
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- response_body_like: "object":"list"
--- check
Test::TruePort::Mock::mock_clear();
my $r = main::sdk('anthropic', TP_BASE => main::base('anthropic')) or return;
my $reply = 'Hello from the mock provider, how can I help?';
is($r->{x_api_key}{text}, $reply, 'x-api-key: the text');
is($r->{x_api_key}{usage}{input_tokens}, 12, 'x-api-key: input_tokens');
is($r->{x_api_key}{usage}{output_tokens}, 9, 'x-api-key: output_tokens');
is($r->{x_api_key}{stop}, 'end_turn', 'x-api-key: stop_reason');
is($r->{bearer}{text}, $reply, 'Bearer: the text');
is($r->{stream}{text}, $reply, 'stream: the concatenated text');
is($r->{stream}{events}, 14, 'stream: every event (the SDK drops ping)');
is($r->{stream}{input}, 12, 'stream: input_tokens in message_start');
is($r->{stream}{output}, 9, 'stream: output_tokens in message_delta');
my $e = $r->{invalid_key}{threw} || {};
is($e->{class}, 'AuthenticationError', 'invalid key: AuthenticationError');
is($e->{status}, 401, 'invalid key: status 401');
like($e->{message} // '', qr/^401 .*invalid API key/, "invalid key: the gateway's message");
main::upstream_clean(3, 'x-api-key' => 'tenant-anthropic-credential');
--- no_error_log
[error]



=== TEST 3: the AzureOpenAI class: /{resource}/openai/deployments/{dep}/...
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- response_body_like: "object":"list"
--- check
Test::TruePort::Mock::mock_clear();
my $r = main::sdk('azure', TP_ENDPOINT => main::base('azure/myres')) or return;
my $reply = 'Hello from the mock provider, how can I help?';
is($r->{chat}{content}, $reply, 'chat: the content');
is($r->{chat}{usage}{total_tokens}, 21, 'chat: usage');
is($r->{stream}{text}, $reply, 'stream: the concatenated text');
is($r->{stream}{usage}{completion_tokens}, 9, 'stream: usage');
my @m = Test::TruePort::Mock::mock_requests();
is($m[0]{path}, '/openai/deployments/gpt-4o-prod/chat/completions', 'the deployment path upstream');
is($m[0]{query}{'api-version'}, '2024-10-21', 'api-version upstream');
main::upstream_clean(2, 'api-key' => 'tenant-azure-credential');
--- no_error_log
[error]
