# The gateway's key check on the four provider routes: where the key may
# come from, what each refusal looks like in each provider's error shape,
# and that only the gateway locations are touched.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;

use_sidecar();
gw_setup();

my $t = gw_tenant();
my $suspended = gw_tenant(status => 'suspended');

gw_env(
    KEY          => gw_key($t)->{key},
    KEY_DISABLED => gw_key($t, enabled => 0)->{key},
    KEY_DELETED  => gw_key($t, deleted => 1)->{key},
    KEY_EXPIRED  => gw_key($t, expires_at => time - 60)->{key},
    KEY_LATER    => gw_key($t, expires_at => time + 3600)->{key},
    KEY_GOOGLE   => gw_key($t, providers => ['google'])->{key},
    KEY_SUSP     => gw_key($suspended)->{key},
    KEY_UNKNOWN  => 'sk-' . ('u' x 43),
    LONG_KEY     => 'sk-' . ('x' x 600),
    # the four routes, one request each; the key is added per block
    OPENAI       => 'POST /trueportai-services/openai/v1/chat/completions',
    ANTHROPIC    => 'POST /trueportai-services/anthropic/v1/messages',
    GOOGLE       => 'POST /trueportai-services/google/v1beta/models/'
                    . 'gemini-2.0-flash:generateContent',
    AZURE        => 'POST /trueportai-services/azure/res1/gpt4o/chat/'
                    . 'completions?api-version=2024-06-01',
);

# the bodies every provider's mock route accepts
$ENV{TEST_NGINX_BODY} = '{"model":"m","max_tokens":16,'
    . '"messages":[{"role":"user","content":"hi"}],'
    . '"contents":[{"parts":[{"text":"hi"}]}]}';

# the provider's success shapes, in route order
our @ok = (qr/"object":"chat\.completion"/, qr/"type":"message"/,
           qr/"candidates":\[/, qr/"object":"chat\.completion"/);

# an error as each provider shapes it: OpenAI, Anthropic, Google, Azure
sub shapes {
    my ($status, $code, $oa_type, $an_type, $g_status, $msg) = @_;
    my $m = quotemeta $msg;
    my $reason = uc $code;
    my $oa = qr/^\{"error":\{"message":"$m","type":"$oa_type","param":null,"code":"$code"\}\}\n\z/;
    return [
        $oa,
        qr/^\{"type":"error","error":\{"type":"$an_type","message":"$m"\},"request_id":"[0-9a-f]{32}"\}\n\z/,
        qr/^\{"error":\{"code":$status,"message":"$m","status":"$g_status","details":\[\{"\@type":"type\.googleapis\.com\/google\.rpc\.ErrorInfo","reason":"$reason","domain":"trueport"\}\]\}\}\n\z/,
        $oa,
    ];
}

# the four routes with the body, and "extra" arguments when given
sub reqs {
    my $args = shift;
    return [ map {
        my $r = $ENV{"TEST_NGINX_$_"};
        $r .= ($r =~ /\?/ ? '&' : '?') . $args if defined $args;
        "$r\n$ENV{TEST_NGINX_BODY}";
    } qw(OPENAI ANTHROPIC GOOGLE AZURE) ];
}

sub invalid {
    shapes(401, 'invalid_api_key', 'invalid_request_error',
           'authentication_error', 'UNAUTHENTICATED', shift);
}

run_tests();

__DATA__

=== TEST 1: Authorization: Bearer is accepted by all four routes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- response_body_like eval
\@main::ok
--- response_headers_like
x-trueport-request-id: ^[0-9a-f]{32}$
--- no_error_log
[error]



=== TEST 2: the Bearer scheme is case-insensitive
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
Authorization: bearer   $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- response_body_like eval
\@main::ok
--- no_error_log
[error]



=== TEST 3: x-api-key is accepted by all four routes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- response_body_like eval
\@main::ok
--- no_error_log
[error]



=== TEST 4: x-goog-api-key is accepted by all four routes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
x-goog-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- response_body_like eval
\@main::ok
--- no_error_log
[error]



=== TEST 5: api-key is accepted by all four routes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- response_body_like eval
\@main::ok
--- no_error_log
[error]



=== TEST 6: Gemini's ?key= is accepted by all four routes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs("key=$ENV{TEST_NGINX_KEY}")
--- more_headers
anthropic-version: 2023-06-01
Content-Type: application/json
--- response_body_like eval
\@main::ok
--- no_error_log
[error]



=== TEST 7: a key that is not Bearer in Authorization is no key
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
Authorization: Basic $TEST_NGINX_KEY
--- error_code: 401
--- response_body_like eval
main::shapes(401, 'missing_api_key', 'invalid_request_error',
             'authentication_error', 'UNAUTHENTICATED',
             'missing API key: send it in the Authorization (Bearer), '
             . 'x-api-key, x-goog-api-key or api-key header')
--- response_headers_like
x-trueport-request-id: ^[0-9a-f]{32}$
Content-Type: ^application/json$



=== TEST 8: no key at all: 401 in each provider's shape
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- error_code: 401
--- response_body_like eval
main::shapes(401, 'missing_api_key', 'invalid_request_error',
             'authentication_error', 'UNAUTHENTICATED',
             'missing API key: send it in the Authorization (Bearer), '
             . 'x-api-key, x-goog-api-key or api-key header')
--- response_headers_like
x-trueport-request-id: ^[0-9a-f]{32}$
--- response_headers
!X-Key-Id



=== TEST 9: an unknown key: 401
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
x-api-key: $TEST_NGINX_KEY_UNKNOWN
--- error_code: 401
--- response_body_like eval
main::invalid('invalid API key')
--- no_error_log
[error]



=== TEST 10: a disabled key: 401
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY_DISABLED
--- error_code: 401
--- response_body_like eval
main::invalid('the API key is disabled')
--- response_headers_like
X-Key-Id: ^[0-9a-f-]{36}$
--- no_error_log
[error]



=== TEST 11: a deleted key: 401
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
x-goog-api-key: $TEST_NGINX_KEY_DELETED
--- error_code: 401
--- response_body_like eval
main::invalid('the API key has been deleted')
--- no_error_log
[error]



=== TEST 12: an expired key: 401
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
api-key: $TEST_NGINX_KEY_EXPIRED
--- error_code: 401
--- response_body_like eval
main::invalid('the API key has expired')
--- no_error_log
[error]



=== TEST 13: a key that expires later works
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
x-api-key: $TEST_NGINX_KEY_LATER
anthropic-version: 2023-06-01
--- response_body_like eval
\@main::ok
--- no_error_log
[error]



=== TEST 14: a key of a suspended tenant: 403
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
x-api-key: $TEST_NGINX_KEY_SUSP
--- error_code: 403
--- response_body_like eval
main::shapes(403, 'tenant_suspended', 'request_forbidden',
             'permission_error', 'PERMISSION_DENIED',
             'the organisation of the API key is suspended')
--- no_error_log
[error]



=== TEST 15: a key limited to Google: 403 on the three other routes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()
--- more_headers
x-api-key: $TEST_NGINX_KEY_GOOGLE
anthropic-version: 2023-06-01
--- error_code eval
[403, 403, 200, 403]
--- response_body_like eval
my @m = map { my $p = $_; qr/the API key may not call $p/ }
        qw(openai anthropic google azure);
[$m[0], $m[1], $main::ok[2], $m[3]]
--- no_error_log
[error]



=== TEST 16: the provider_not_allowed shapes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[@{ main::reqs() }[0, 1]]
--- more_headers
x-api-key: $TEST_NGINX_KEY_GOOGLE
--- error_code: 403
--- response_body_like eval
[qr/^\{"error":\{"message":"the API key may not call openai","type":"request_forbidden","param":null,"code":"provider_not_allowed"\}\}\n\z/,
 qr/^\{"type":"error","error":\{"type":"permission_error","message":"the API key may not call anthropic"\},"request_id":"[0-9a-f]{32}"\}\n\z/]



=== TEST 17: a key longer than any gateway key is refused without a lookup
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
main::reqs()->[0]
--- more_headers
x-api-key: $TEST_NGINX_LONG_KEY
--- error_code: 401
--- response_body_like: "code":"invalid_api_key"
--- no_error_log
/_trueport/resolve



=== TEST 18: an Azure path of the wrong shape: 404 (after the key check)
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["POST /trueportai-services/azure/res.evil.com/dep/chat/completions\n{}",
 "POST /trueportai-services/azure/res1\n{}",
 "POST /trueportai-services/azure/res1/de%20p/chat/completions\n{}",
 "POST /trueportai-services/azure/\n{}"]
--- more_headers
api-key: $TEST_NGINX_KEY
--- error_code eval
[404, 404, 404, 404]
--- response_body_like: ^\{"error":\{"message":"no such route: Azure OpenAI takes /\{resource\}/\{deployment\}/\{path\} or /\{resource\}/openai/deployments/\{deployment\}/\{path\}","type":"invalid_request_error","param":null,"code":"not_found"\}\}
--- no_error_log
[error]



=== TEST 19: without a key, a malformed Azure path is still a 401
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
POST /trueportai-services/azure/res.evil.com/dep/chat/completions
{}
--- error_code: 401
--- response_body_like: "code":"missing_api_key"



=== TEST 20: locations without trueport_gateway are left alone
--- http_config: $TEST_NGINX_GW_HTTP
--- config
$TEST_NGINX_GW
        location /plain/ {
            return 200 "plain\n";
        }
--- request
GET /plain/x?key=whatever
--- more_headers
Authorization: Bearer nothing-to-see
--- response_body
plain
--- response_headers
!x-trueport-request-id
!x-ratelimit-limit-requests
--- no_error_log
trueport access handler



=== TEST 21: trueport_gateway off in a nested location
--- http_config: $TEST_NGINX_GW_HTTP
--- config
$TEST_NGINX_GW
        location /open/ {
            trueport_gateway openai;
            trueport_upstream http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1;
            trueport_upstream_key sk-route;
            include $TEST_NGINX_ROOT/conf.d/trueport-proxy.conf;

            location /open/public/ {
                trueport_gateway off;
                return 200 "public\n";
            }
        }
--- request eval
["GET /open/public/x", "GET /open/models"]
--- error_code eval
[200, 401]
--- response_body_like eval
[qr/^public$/, qr/missing_api_key/]



=== TEST 22: configuration mistakes are refused (or warned about) at start
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- error_code: 401
--- check
my @cases = (
    [ 'trueport_zone zone=z:1m;',
      'location /a/ { trueport_gateway openai; }',
      qr/"trueport_gateway" requires "trueport_resolve_location"/ ],
    [ '',
      'trueport_resolve_location /r; location /a/ { trueport_gateway openai; }',
      qr/"trueport_gateway" requires "trueport_zone"/ ],
    [ 'trueport_zone zone=z:1m;',
      'trueport_resolve_location /r; location /a/ { trueport_gateway mistral; }',
      qr/invalid value "mistral"/ ],
    [ 'trueport_zone zone=z:1m;',
      'trueport_resolve_location /r; location ~ ^/a/ { trueport_gateway openai; }',
      qr/"trueport_gateway" directive must be in a prefix or exact location/ ],
    [ 'trueport_zone zone=z:1m;',
      'trueport_resolve_location /r; location /a/ { trueport_gateway openai; trueport_upstream ftp://x; }',
      qr/invalid upstream "ftp:\/\/x"/ ],
    [ 'trueport_zone zone=z:1m;',
      'trueport_resolve_location r; location /a/ { trueport_gateway openai; }',
      qr/invalid location "r"/ ],
    [ 'trueport_zone zone=z:1m; trueport_cache_valid 0;',
      'trueport_resolve_location /r; location /a/ { trueport_gateway openai; }',
      qr/"trueport_cache_valid" must be more than 0/ ],
    [ 'trueport_zone zone=z:1m; trueport_cache_refresh 2s;',
      'trueport_resolve_location /r; location /a/ { trueport_gateway openai; }',
      qr/\[warn\].*"trueport_cache_refresh" 2000 is not below "trueport_cache_valid" 1000/ ],
);
my $dir = work_dir();
my $module = $ENV{TP_MODULE} // "$ENV{TEST_NGINX_ROOT}/build/ngx_http_trueport_module.so";
for my $c (@cases) {
    open my $fh, '>', "$dir/conf/bad.conf" or die $!;
    print $fh "load_module $module;\nerror_log $dir/logs/bad.log;\n"
            . "pid $dir/logs/bad.pid;\nevents {}\n"
            . "http { $c->[0] server { listen 127.0.0.1:1; $c->[1] } }\n";
    close $fh;
    my $out = `@{[ nginx_cmd() ]} -t -q -p $dir/ -c $dir/conf/bad.conf 2>&1`;
    like($out, $c->[2], "refused: $c->[2]");
}
