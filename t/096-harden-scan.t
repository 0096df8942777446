# Scan everything the model reads (issue 13, finding 4): policies used to
# read known paths only, so text in an Anthropic document block or tool
# description, an OpenAI function description or prediction, an Anthropic
# or Gemini batch, or Gemini's function declarations went upstream
# unchecked, and so did any body on an endpoint the scanner did not know.
# Now a block rule blocks each of them (nothing reaches the provider), a
# redact rule rewrites each in place (valid JSON, JSON escapes kept), and
# an endpoint the extractor does not understand is refused with 400
# policy_unsupported_endpoint in the provider's shape when a rule applies
# to the request; without an applicable rule, or without a body, it passes.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Test::TruePort::Policy;
use Encode qw(encode_utf8);

use_sidecar();
# batches, assistants and the like through the routes' keys: this
# gateway's operator lets its shared credentials reach them (t/098 tests
# the default, which does not)
gw_setup(policy => 1, extra => 'trueport_upstream_key_scope any;');

our $T = gw_tenant();
our $K = gw_key($T, rpm => 10000);
our $N = gw_tenant();                      # no rules
our $NK = gw_key($N, rpm => 10000);
our $S = gw_tenant();                      # a rule for Anthropic only
our $SK = gw_key($S, rpm => 10000);

policy_rule($T, { name => 'codename', type => 'keywords',
           config => { keywords => ['project falcon'] }, action => 'block' });
policy_rule($T, { name => 'no email', type => 'pii',
           config => { detectors => ['email'] }, action => 'redact' });
policy_rule($S, { name => 'anthropic only', type => 'keywords',
           config => { keywords => ['project falcon'] }, action => 'block',
           scope => { providers => ['anthropic'] } });

gw_env(KEY => $K->{key}, NKEY => $NK->{key}, SKEY => $SK->{key});

my $GW = '/trueportai-services';

# Each field of the finding: the route, the body with TEXT where the text
# goes (a JSON string literal), the mock's answer when the request passes,
# and where the text sits in the decoded body.
our @CASES = (
    [ 'anthropic document (text source)', "$GW/anthropic/v1/messages",
      '{"model":"claude-3-5-haiku-latest","max_tokens":100,"messages":[{"role":"user","content":['
      . '{"type":"document","source":{"type":"text","media_type":"text/plain","data":TEXT},"title":"Q3 notes"},'
      . '{"type":"text","text":"Summarise the document"}]}]}',
      200, sub { $_[0]{messages}[0]{content}[0]{source}{data} } ],
    [ 'anthropic document (context of a PDF, data before type)', "$GW/anthropic/v1/messages",
      '{"model":"claude-3-5-haiku-latest","max_tokens":100,"messages":[{"role":"user","content":['
      . '{"source":{"data":"JVBERi0xLjQK","media_type":"application/pdf","type":"base64"},"type":"document","context":TEXT},'
      . '{"type":"text","text":"Summarise"}]}]}',
      200, sub { $_[0]{messages}[0]{content}[0]{context} } ],
    [ 'anthropic tool description', "$GW/anthropic/v1/messages",
      '{"model":"claude-3-5-haiku-latest","max_tokens":100,"tools":[{"name":"lookup","description":TEXT,'
      . '"input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],'
      . '"messages":[{"role":"user","content":"hello"}]}',
      200, sub { $_[0]{tools}[0]{description} } ],
    [ 'openai function description', "$GW/openai/v1/chat/completions",
      '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"tools":[{"type":"function",'
      . '"function":{"name":"lookup","description":TEXT,"parameters":{"type":"object","properties":{}}}}]}',
      200, sub { $_[0]{tools}[0]{function}{description} } ],
    [ 'openai prediction', "$GW/openai/v1/chat/completions",
      '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"fix the typo"}],'
      . '"prediction":{"type":"content","content":TEXT}}',
      200, sub { $_[0]{prediction}{content} } ],
    [ 'azure function parameter description', "$GW/azure/res1/gpt4o/chat/completions?api-version=2024-06-01",
      '{"messages":[{"role":"user","content":"hello"}],"tools":[{"type":"function","function":{"name":"f",'
      . '"parameters":{"type":"object","properties":{"q":{"type":"string","description":TEXT}}}}}]}',
      200, sub { $_[0]{tools}[0]{function}{parameters}{properties}{q}{description} } ],
    [ 'anthropic batch', "$GW/anthropic/v1/messages/batches",
      '{"requests":[{"custom_id":"r1","params":{"model":"claude-3-5-haiku-latest","max_tokens":100,'
      . '"messages":[{"role":"user","content":"hi"}]}},{"custom_id":"r2","params":{"model":"claude-3-5-haiku-latest",'
      . '"max_tokens":100,"messages":[{"role":"user","content":TEXT}]}}]}',
      404, sub { $_[0]{requests}[1]{params}{messages}[0]{content} } ],
    [ 'gemini batchGenerateContent', "$GW/google/v1beta/models/gemini-2.0-flash:batchGenerateContent",
      '{"batch":{"display_name":"nightly","input_config":{"requests":{"requests":['
      . '{"request":{"contents":[{"parts":[{"text":TEXT}]}]},"metadata":{"key":"r1"}}]}}}}',
      404, sub { $_[0]{batch}{input_config}{requests}{requests}[0]{request}{contents}[0]{parts}[0]{text} } ],
    [ 'gemini asyncBatchEmbedContent', "$GW/google/v1beta/models/text-embedding-004:asyncBatchEmbedContent",
      '{"batch":{"inputConfig":{"requests":{"requests":[{"request":{"model":"models/text-embedding-004",'
      . '"content":{"parts":[{"text":TEXT}]}}}]}}}}',
      404, sub { $_[0]{batch}{inputConfig}{requests}{requests}[0]{request}{content}{parts}[0]{text} } ],
    [ 'gemini functionDeclarations', "$GW/google/v1beta/models/gemini-2.0-flash:generateContent",
      '{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"lookup",'
      . '"description":TEXT,"parameters":{"type":"OBJECT","properties":{"q":{"type":"STRING"}}}}]}]}',
      200, sub { $_[0]{tools}[0]{functionDeclarations}[0]{description} } ],
);

# the requests of every case with $lit (a JSON string literal) as the text
sub requests {
    my ($lit) = @_;
    return [ map { my $b = $_->[2]; $b =~ s/TEXT/$lit/; "POST $_->[1]\n$b" } @CASES ];
}

sub mock_bodies_with {
    my ($s) = @_;
    return grep { index($_->{body}, $s) >= 0 } mock_requests();
}

# the endpoints the extractor does not understand, one per provider and
# kind: uploads, a batch of uploaded files, audio
our @UNKNOWN = (
    [ 'openai', "$GW/openai/v1/files" ],
    [ 'openai', "$GW/openai/v1/batches" ],
    [ 'openai', "$GW/openai/v1/audio/transcriptions" ],
    [ 'azure', "$GW/azure/res1/gpt4o/fine_tuning/jobs?api-version=2024-06-01" ],
    [ 'anthropic', "$GW/anthropic/v1/files" ],
    [ 'google', "$GW/google/v1beta/files" ],
    [ 'google', "$GW/google/v1beta/tunedModels/t1:generateContent" ],
);

sub unknown_requests {
    return [ map { "POST $_->[1]\n" . '{"note":"zz-unknown-body project falcon"}' } @UNKNOWN ];
}

run_tests();

__DATA__

=== TEST 1: a block rule blocks text in every field of the finding, nothing upstream
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::requests('"all about Project Falcon today"')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[(403) x @main::CASES]
--- check
for my $i (0 .. $#main::CASES) {
    like($main::responses[$i]{body}, qr/request blocked by policy 'codename' \(keyword\)/,
         "$main::CASES[$i][0]: blocked by the keyword rule");
}
is(scalar main::mock_bodies_with('Falcon'), 0, 'nothing reached the provider');
--- no_error_log
[error]
[alert]



=== TEST 2: a redact rule rewrites the text in every field: valid JSON, escapes kept, a new Content-Length
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::requests('"write \"to\" leak.me@example.com caf\u00e9 \\\\ now"')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[map { $_->[3] } @main::CASES]
--- check
my @got = (mock_requests())[-@main::CASES .. -1];
is(scalar main::mock_bodies_with('leak.me'), 0, 'the address never reached the provider');
for my $i (0 .. $#main::CASES) {
    my ($name, $uri, undef, undef, $at) = @{ $main::CASES[$i] };
    my $m = $got[$i];
    my $bytes = encode_utf8($m->{body});
    my $j = json_decode($bytes);
    ok($j, "$name: the provider got valid JSON") or diag($m->{body}), next;
    is($at->($j), "write \"to\" [REDACTED:email] caf\x{e9} \\ now", "$name: redacted in place");
    is($m->{headers}{'content-length'}, length($bytes), "$name: Content-Length of the new body");
    (my $path = $uri) =~ s/\?.*//;
    $path =~ s{^/trueportai-services/(openai|anthropic|google|azure/res1/gpt4o)}{};
    like($m->{path}, qr/\Q$path\E$/, "$name: to the same endpoint");
}
--- no_error_log
[error]
[alert]



=== TEST 3: an endpoint the extractor does not understand, with a rule: 400 in the provider's shape, nothing upstream
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::unknown_requests()
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[(400) x @main::UNKNOWN]
--- check
for my $i (0 .. $#main::UNKNOWN) {
    my ($p, $uri) = @{ $main::UNKNOWN[$i] };
    my $j = $main::responses[$i]{json};
    my $l = "$p $uri";
    if ($p eq 'anthropic') {
        ok($j && $j->{type} eq 'error' && $j->{error}{type} eq 'invalid_request_error'
           && $j->{error}{message} =~ /policy_unsupported_endpoint/, "$l: anthropic shape");
    } elsif ($p eq 'google') {
        ok($j && $j->{error}{code} == 400 && $j->{error}{status} eq 'INVALID_ARGUMENT'
           && $j->{error}{details}[0]{reason} eq 'POLICY_UNSUPPORTED_ENDPOINT', "$l: gemini shape");
    } else {
        ok($j && $j->{error}{code} eq 'policy_unsupported_endpoint'
           && $j->{error}{type} eq 'invalid_request_error', "$l: openai shape");
    }
    like($j ? $j->{error}{message} : '', qr/cannot check the body of this endpoint/, "$l: says why");
}
is(scalar main::mock_bodies_with('zz-unknown-body'), 0, 'nothing reached the provider');
--- no_error_log
[error]
[alert]



=== TEST 4: the same endpoints for a tenant without rules pass as before
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::unknown_requests()
--- more_headers
x-api-key: $TEST_NGINX_NKEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[map { $_->[1] =~ m{anthropic/v1/files} ? 401 : 404 } @main::UNKNOWN]
--- check
# the mock knows none of them (404); it takes /v1/files for OpenAI's and
# wants a Bearer token (401)
is(scalar main::mock_bodies_with('zz-unknown-body'), scalar @main::UNKNOWN,
   'every request reached the provider');
--- no_error_log
[error]



=== TEST 5: with a rule, a request without a body to any endpoint passes; a rule scoped to another provider does not apply
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/files",
 "POST /trueportai-services/openai/v1/files\n{\"note\":\"zz-scoped-1\"}",
 "POST /trueportai-services/anthropic/v1/files\n{\"note\":\"zz-scoped-2\"}"]
--- more_headers eval
["x-api-key: $ENV{TEST_NGINX_KEY}",
 "x-api-key: $ENV{TEST_NGINX_KEY}",
 "x-api-key: $ENV{TEST_NGINX_SKEY}\nContent-Type: application/json",
 "x-api-key: $ENV{TEST_NGINX_SKEY}\nanthropic-version: 2023-06-01\nContent-Type: application/json"]
--- error_code eval
[200, 404, 404, 400]
--- check
is(scalar main::mock_bodies_with('zz-scoped-1'), 1, 'openai: the anthropic-only rule does not apply, the upload passes');
is(scalar main::mock_bodies_with('zz-scoped-2'), 0, 'anthropic: it applies, the upload is refused');
like($main::responses[3]{body}, qr/policy_unsupported_endpoint/, '  with policy_unsupported_endpoint');
--- no_error_log
[error]
