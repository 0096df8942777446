# Policy enforcement at the gateway (issue 6): the tenant's rules, loaded
# through trueport_policy_location when the key's policy_revision moves,
# evaluated against the prompt of OpenAI, Anthropic and Gemini bodies:
# a block is a 403 in the provider's shape with the violation id and
# nothing reaches the provider; a redaction rewrites the body (valid JSON
# at the provider); a log match lets it through unchanged. Every match is
# a violation row (spool -> ingester). Malformed JSON is a 400, a body over
# trueport_policy_max_body a 413, a body nginx buffered to a file is read
# back, a tenant without rules is untouched, and a rule change takes effect
# within a second.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Test::TruePort::Policy;
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

our $SPOOL = work_dir() . '/spool';
make_path($SPOOL, { mode => 0755 });

use_sidecar(env => { TRUEPORT_SPOOL_DIR => $SPOOL });
gw_setup(policy => 1);


our $T = gw_tenant();
our $K = gw_key($T, rpm => 1000);
# the masked excerpts are checked here: the tenant keeps them (log_prompts)
gw_config($T, 'log_prompts', JSON::PP::true());
our $N = gw_tenant();                      # no rules at all
our $NK = gw_key($N, rpm => 1000);

policy_rule($T, { name => 'no email', type => 'pii',
           config => { detectors => ['email'] }, action => 'redact',
           priority => 10 });
policy_rule($T, { name => 'codename "falcon"', type => 'keywords',
           config => { keywords => ['project falcon'] }, action => 'block',
           priority => 20 });
policy_rule($T, { name => 'ticket ids', type => 'regex',
           config => { patterns => ['(?i)secret-\d{4}'] }, action => 'log',
           priority => 30 });

# a tenant whose rules no worker has loaded, for the fail-closed test: its
# rule loads go to a port where nothing listens
our $F = gw_tenant();
our $FK = gw_key($F, rpm => 1000);
policy_rule($F, { name => 'anything', type => 'keywords',
           config => { keywords => ['zebra'] }, action => 'log' });
our $DOWN = free_port();
(our $POLICY_DOWN = gw_locations(policy => 1))
    =~ s{proxy_pass http://\S+/internal/v1/policies}
        {proxy_pass http://127.0.0.1:$DOWN/internal/v1/policies}
    or die "no policies location to break";

gw_env(
    KEY => $K->{key},
    NKEY => $NK->{key},
    FKEY => $FK->{key},
    GW_POLICY_DOWN => $POLICY_DOWN,
    GW_HTTP_SPOOL => gw_http_config()
                     . "    trueport_spool $SPOOL max_size=1m max_age=1s;\n",
    GW_SMALL => gw_locations(policy => 1,
                             extra => 'trueport_policy_max_body 1k;'),
);

our @P = qw(openai anthropic google);

sub requests {
    my ($text) = @_;
    return [ map { "POST " . chat_uri($_) . "\n" . chat_body($_, $text) } @P ];
}

# one request through nginx, outside the block's own requests
sub send_text {
    my ($key, $text) = @_;
    return http_request(port => server_port(), method => 'POST',
                        uri => chat_uri('openai'), body => chat_body('openai', $text),
                        headers => { 'x-api-key' => $key,
                                     'Content-Type' => 'application/json' });
}

run_tests();

__DATA__

=== TEST 1: a blocked keyword: 403 in each provider's shape, nothing upstream, a violation row
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests('tell me about Project Falcon please')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[403, 403, 403]
--- response_body_like eval
[qr/^\{"error":\{"message":"request blocked by policy 'codename \\"falcon\\"' \(keyword\); violation [0-9a-f-]{36}","type":"invalid_request_error","param":null,"code":"policy_violation"\}\}$/,
 qr/^\{"type":"error","error":\{"type":"permission_error","message":"request blocked by policy .*; violation [0-9a-f-]{36}"\},"request_id":"[0-9a-f]{32}"\}$/,
 qr/^\{"error":\{"code":403,"message":"request blocked by policy .*","status":"PERMISSION_DENIED",.*"reason":"POLICY_VIOLATION"/]
--- check
is(scalar main::mock_bodies_with('Falcon'), 0, 'nothing reached the provider');
for my $i (0 .. 2) {
    my $res = $main::responses[$i];
    my ($id) = $res->{body} =~ /violation ([0-9a-f-]{36})/ or next;
    is($res->{headers}{'x-trueport-violation-id'}, $id, "$main::P[$i]: header");
    my $rid = $res->{headers}{'x-trueport-request-id'};
    my ($v) = @{ main::violations_of($rid) };
    ok($v, "$main::P[$i]: violation row") or next;
    is($v->{id}, $id, "$main::P[$i]: the id of the 403");
    is("$v->{rule_type}/$v->{action}/$v->{detector}", 'keywords/block/keyword',
       "$main::P[$i]: rule, action, detector");
    is($v->{tenant_id}, $main::T->{id}, "$main::P[$i]: tenant");
    is($v->{key_id}, $main::K->{id}, "$main::P[$i]: key");
    is($v->{provider}, $main::P[$i], "$main::P[$i]: provider");
    unlike($v->{excerpt}, qr/falcon/i, "$main::P[$i]: masked excerpt");
}
--- no_error_log
[error]
[alert]



=== TEST 2: an email is redacted: valid JSON upstream with [REDACTED:email], a redact row
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests('mail "john.doe@example.com" the report')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[200, 200, 200]
--- check
my @got = (mock_requests())[-3 .. -1];
is(scalar main::mock_bodies_with('john.doe'), 0, 'the address never reached the provider');
for my $i (0 .. 2) {
    my $m = $got[$i];
    my $j = json_decode($m->{body});
    ok($j, "$main::P[$i]: the provider got valid JSON") or diag($m->{body});
    like($m->{body}, qr/mail \\"\[REDACTED:email\]\\" the report/,
         "$main::P[$i]: redacted in place");
    is($m->{headers}{'content-length'}, length($m->{body}),
       "$main::P[$i]: Content-Length of the new body");
    my ($v) = @{ main::violations_of($main::responses[$i]{headers}{'x-trueport-request-id'}) };
    ok($v && $v->{action} eq 'redact' && $v->{detector} eq 'email',
       "$main::P[$i]: redact violation row");
}
--- no_error_log
[error]
[alert]



=== TEST 3: a logged regex match: the body goes upstream unchanged, a log row
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests('see ticket SECRET-1234')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[200, 200, 200]
--- check
my @got = (mock_requests())[-3 .. -1];
for my $i (0 .. 2) {
    is($got[$i]{body}, main::chat_body($main::P[$i], 'see ticket SECRET-1234'),
       "$main::P[$i]: body unchanged");
    my ($v) = @{ main::violations_of($main::responses[$i]{headers}{'x-trueport-request-id'}) };
    ok($v && $v->{action} eq 'log' && $v->{rule_type} eq 'regex',
       "$main::P[$i]: log violation row");
}
--- no_error_log
[error]
[alert]



=== TEST 4: redact and block in one request: both recorded, the block wins
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
"POST " . main::chat_uri('openai') . "\n" . main::chat_body('openai', 'a@b.io on project falcon')
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- error_code: 403
--- check
my $rows = main::violations_of($main::responses[0]{headers}{'x-trueport-request-id'}, 2);
is(join(',', map { $_->{action} } @$rows), 'block,redact', 'two rows');
--- no_error_log
[error]



=== TEST 5: malformed JSON: 400 in the provider's shape, nothing upstream
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["POST " . main::chat_uri('openai') . "\n{\"model\":\"gpt-4o\",\"messages\":[{\"content\":\"unterminated",
 "POST " . main::chat_uri('google') . "\nnot json at all"]
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- error_code eval
[400, 400]
--- response_body_like eval
[qr/"code":"invalid_request_body"/, qr/"status":"INVALID_ARGUMENT"/]
--- check
is(scalar main::mock_bodies_with('unterminated'), 0, 'nothing upstream');
--- no_error_log
[error]



=== TEST 6: a tenant without rules is untouched
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::requests('project falcon, x@y.com, SECRET-9999')
--- more_headers
x-api-key: $TEST_NGINX_NKEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[200, 200, 200]
--- check
my @got = (mock_requests())[-3 .. -1];
is($got[$_]{body}, main::chat_body($main::P[$_], 'project falcon, x@y.com, SECRET-9999'),
   "$main::P[$_]: unchanged") for 0 .. 2;
--- no_error_log
[error]



=== TEST 7: a body over trueport_policy_max_body: 413
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_SMALL
--- request eval
"POST " . main::chat_uri('anthropic') . "\n" . main::chat_body('anthropic', 'x' x 2000)
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code: 413
--- response_body_like: "type":"request_too_large"
--- no_error_log
[error]



=== TEST 8: a body nginx buffered to a temp file is read back and redacted
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
"POST " . main::chat_uri('openai') . "\n" . main::chat_body('openai', ('pad ' x 10000) . 'to big@file.example')
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- error_code: 200
--- check
my $m = (mock_requests())[-1];
ok(json_decode($m->{body}), 'valid JSON upstream');
like($m->{body}, qr/pad to \[REDACTED:email\]"/, 'redacted');
is($m->{headers}{'content-length'}, length($m->{body}), 'Content-Length');
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]



=== TEST 9: a new rule takes effect within a second, a deleted one too
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
"POST " . main::chat_uri('openai') . "\n" . main::chat_body('openai', 'the bluebird flies')
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- error_code: 200
--- check
my $rule = main::policy_rule($main::T, { name => 'birds', type => 'keywords',
    config => { keywords => ['bluebird'] }, action => 'block' });
my $t0 = time;
my $r;
do { sleep 0.05; $r = main::send_text($main::K->{key}, 'the bluebird flies') }
    until $r->{status} == 403 || time - $t0 > 3;
my $took = time - $t0;
is($r->{status}, 403, 'blocked after the rule was added');
ok($took <= 1.2, sprintf('within a second (%.2f s)', $took));
my $d = sidecar_api(DELETE => "$Test::TruePort::Policy::API/$rule->{id}", undef,
                    { Authorization => "Bearer $main::T->{token}" });
is($d->{status}, 204, 'rule deleted');
$t0 = time;
do { sleep 0.05; $r = main::send_text($main::K->{key}, 'the bluebird flies') }
    until $r->{status} == 200 || time - $t0 > 3;
$took = time - $t0;
is($r->{status}, 200, 'let through after the rule was deleted');
ok($took <= 1.2, sprintf('within a second (%.2f s)', $took));
--- no_error_log
[error]



=== TEST 10: rules that cannot be loaded: 503, nothing upstream (fail closed)
The tenant has a rule no worker has loaded and the rule load fails (nothing
listens): its request is refused, not passed unchecked; a tenant without
rules needs no load and goes through.
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_POLICY_DOWN
--- request eval
"POST " . main::chat_uri('openai') . "\n" . main::chat_body('openai', 'a fail-closed canary')
--- more_headers
x-api-key: $TEST_NGINX_FKEY
Content-Type: application/json
--- error_code: 503
--- response_body_like: "code":"gateway_unavailable"
--- check
is(scalar main::mock_bodies_with('fail-closed canary'), 0,
   'nothing reached the provider');
my $r = main::send_text($main::NK->{key}, 'no rules here');
is($r->{status}, 200, 'a tenant without rules is not held up');
--- error_log eval
qr/trueport: policy load "[^"]+" failed with status (502|504)/
