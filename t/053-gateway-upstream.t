# What reaches the provider: the credential in the provider's own header
# (the route's default, or the tenant's own), never the gateway key (in no
# header, not in the URL), the query string without "key", the client's
# other headers, Azure's two path shapes; and the shipped conf.d, rendered
# with the upstreams overridden, doing the same end to end.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;

# a tenant's endpoint on the mock's upstream{} "localhost": allowed by the
# operator (sidecar and module) for test 12
use_sidecar(env => { TRUEPORT_ENDPOINT_ALLOWLIST => 'http://localhost' });
gw_setup(extra => 'trueport_upstream_allow http://localhost;');

my $t = gw_tenant();
my $own = gw_tenant();
my $k = gw_key($t);
my $ko = gw_key($own);

gw_credential($own, $_, "tenant-$_-credential")
    for qw(openai anthropic google azure);

# a tenant with its own Azure endpoint (the configs API's
# providers.azure.endpoint) and key, reached through the upstream{}
# "localhost"
my $ep = gw_tenant();
gw_config($ep, 'providers.azure.endpoint', 'http://localhost/');
gw_credential($ep, 'azure', 'tenant-endpoint-azure-key');
our $EP = gw_key($ep)->{key};

our $KEY = $k->{key};
our $OWN = $ko->{key};
my $mock = "127.0.0.1:$ENV{TEST_NGINX_MOCK_PORT}";

gw_env(
    KEY => $KEY,
    OWN => $OWN,
    EP => $EP,
    BODY => '{"model":"m","max_tokens":16,'
            . '"messages":[{"role":"user","content":"hi"}],'
            . '"contents":[{"parts":[{"text":"hi"}]}]}',
    # the route without a default credential, an upstream{} block found by
    # name (with keepalive) and an Azure base with the resource in its host
    GW_MORE => gw_locations(no_resolve => 1, openai_key => undef,
                            anthropic_key => undef, google_key => undef,
                            azure_key => undef)
               =~ s{/trueportai-services/}{/bare/}gr . <<"CONF",

        location /az/ {
            trueport_gateway azure;
            trueport_upstream "http://{resource}";
            trueport_upstream_key az-by-name;
            include $ENV{TEST_NGINX_ROOT}/conf.d/trueport-proxy.conf;
        }

        location /named/ {
            trueport_gateway openai;
            trueport_upstream http://mockhost/v1/;
            trueport_upstream_key sk-named;
            include $ENV{TEST_NGINX_ROOT}/conf.d/trueport-proxy.conf;
        }
CONF
    GW_UPSTREAMS => <<"CONF",
    upstream localhost {
        server $mock;
        keepalive 4;
    }

    upstream mockhost {
        server $mock;
        keepalive 4;
    }
CONF
);

# the gateway locations of gw_locations() twice: under
# /trueportai-services/ with route credentials, under /bare/ without
$ENV{TEST_NGINX_GW_ALL} = "$ENV{TEST_NGINX_GW}\n$ENV{TEST_NGINX_GW_MORE}";
$ENV{TEST_NGINX_GW_HTTP_ALL} = "$ENV{TEST_NGINX_GW_HTTP}\n"
                               . $ENV{TEST_NGINX_GW_UPSTREAMS};


# conf.d as shipped (gw_shipped) with route credentials; returns
# [status, mock record, route...] per route
sub shipped {
    my $s = gw_shipped(env => {
        TRUEPORT_OPENAI_API_KEY => 'sk-shipped-openai',
        TRUEPORT_ANTHROPIC_API_KEY => 'sk-shipped-anthropic',
        TRUEPORT_GOOGLE_API_KEY => 'shipped-google',
        TRUEPORT_AZURE_API_KEY => 'shipped-azure' });

    my @seen;
    my @routes = (
        [ 'openai/v1/chat/completions?x=1', 'authorization', 'Bearer sk-shipped-openai', '/v1/chat/completions' ],
        [ 'anthropic/v1/messages', 'x-api-key', 'sk-shipped-anthropic', '/v1/messages' ],
        [ 'google/v1beta/models/g:generateContent', 'x-goog-api-key', 'shipped-google', '/v1beta/models/g:generateContent' ],
        [ 'azure/res/dep/chat/completions?api-version=1', 'api-key', 'shipped-azure', '/openai/deployments/dep/chat/completions' ],
    );
    for my $r (@routes) {
        my $res = http_request(port => $s->{port}, method => 'POST',
            uri => "/trueportai-services/$r->[0]",
            headers => [ [ 'x-api-key', $KEY ],
                         [ 'anthropic-version', '2023-06-01' ],
                         [ 'Content-Type', 'application/json' ] ],
            body => $ENV{TEST_NGINX_BODY});
        my @m = Test::TruePort::Mock::mock_requests();
        push @seen, [ $res->{status}, $m[-1], @$r ];
    }

    gw_shipped_stop($s);
    return \@seen;
}

run_tests();

__DATA__

=== TEST 1: OpenAI: Bearer credential, every client key header and key= gone
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
POST /trueportai-services/openai/v1/chat/completions?foo=bar&key=$TEST_NGINX_KEY&baz=1
$TEST_NGINX_BODY
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY
x-api-key: $TEST_NGINX_KEY
x-goog-api-key: $TEST_NGINX_KEY
api-key: $TEST_NGINX_KEY
OpenAI-Beta: assistants=v2
X-Forwarded-For: 192.0.2.7
Content-Type: application/json
--- response_body_like: "object":"chat\.completion"
--- check
gw_upstream_saw(label => 'openai', key => $main::KEY,
    path => '/v1/chat/completions', query => { foo => 'bar', baz => '1' },
    headers => { authorization => 'Bearer sk-route-openai',
                 'x-api-key' => undef, 'x-goog-api-key' => undef,
                 'api-key' => undef, 'openai-beta' => 'assistants=v2',
                 'x-forwarded-for' => undef, 'x-request-id' => undef,
                 'content-type' => 'application/json',
                 connection => undef });
--- no_error_log
[error]



=== TEST 2: Anthropic: x-api-key credential, anthropic-version passed through
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
POST /trueportai-services/anthropic/v1/messages?beta=true&key=$TEST_NGINX_KEY
$TEST_NGINX_BODY
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
anthropic-beta: prompt-caching-2024-07-31
Content-Type: application/json
--- response_body_like: "type":"message"
--- check
gw_upstream_saw(label => 'anthropic', key => $main::KEY,
    path => '/v1/messages', query => { beta => 'true' },
    headers => { 'x-api-key' => 'sk-ant-route', authorization => undef,
                 'x-goog-api-key' => undef, 'api-key' => undef,
                 'anthropic-version' => '2023-06-01',
                 'anthropic-beta' => 'prompt-caching-2024-07-31' });
--- no_error_log
[error]



=== TEST 3: Google: x-goog-api-key credential, Gemini's key= removed from the URL
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
POST /trueportai-services/google/v1beta/models/gemini-2.0-flash:generateContent?key=$TEST_NGINX_KEY&alt=json&key=again
$TEST_NGINX_BODY
--- more_headers
Content-Type: application/json
--- response_body_like: "candidates":\[
--- check
gw_upstream_saw(label => 'google', key => $main::KEY,
    path => '/v1beta/models/gemini-2.0-flash:generateContent',
    query => { alt => 'json' },
    headers => { 'x-goog-api-key' => 'AIza-route-google',
                 authorization => undef, 'x-api-key' => undef,
                 'api-key' => undef });
--- no_error_log
[error]



=== TEST 4: Azure /{resource}/{deployment}/{path}: api-key credential
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
POST /trueportai-services/azure/myres/gpt-4o.prod_1/chat/completions?api-version=2024-06-01
$TEST_NGINX_BODY
--- more_headers
api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- response_body_like: "object":"chat\.completion"
--- check
gw_upstream_saw(label => 'azure', key => $main::KEY,
    path => '/openai/deployments/gpt-4o.prod_1/chat/completions',
    query => { 'api-version' => '2024-06-01' },
    headers => { 'api-key' => 'route-azure-key', authorization => undef,
                 'x-api-key' => undef, 'x-goog-api-key' => undef });
--- no_error_log
[error]



=== TEST 5: Azure /{resource}/openai/deployments/{deployment}/{path}, as AzureOpenAI builds it
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
POST /trueportai-services/azure/myres/openai/deployments/emb-3/embeddings?api-version=2024-06-01
{"input":"hello"}
--- more_headers
api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- response_body_like: "object":"list"
--- check
gw_upstream_saw(label => 'azure', key => $main::KEY,
    path => '/openai/deployments/emb-3/embeddings',
    query => { 'api-version' => '2024-06-01' },
    headers => { 'api-key' => 'route-azure-key' });
--- no_error_log
[error]



=== TEST 6: the tenant's own credential overrides the route's, on all four routes
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request eval
["POST /trueportai-services/openai/v1/chat/completions\n$ENV{TEST_NGINX_BODY}",
 "POST /trueportai-services/anthropic/v1/messages\n$ENV{TEST_NGINX_BODY}",
 "POST /trueportai-services/google/v1beta/models/g:generateContent\n$ENV{TEST_NGINX_BODY}",
 "POST /trueportai-services/azure/r/d/chat/completions?api-version=1\n$ENV{TEST_NGINX_BODY}"]
--- more_headers
x-api-key: $TEST_NGINX_OWN
anthropic-version: 2023-06-01
Content-Type: application/json
--- check
my @m = (Test::TruePort::Mock::mock_requests())[-4 .. -1];
is($m[0]{headers}{authorization}, 'Bearer tenant-openai-credential', 'openai: the tenant credential');
is($m[1]{headers}{'x-api-key'}, 'tenant-anthropic-credential', 'anthropic: the tenant credential');
is($m[2]{headers}{'x-goog-api-key'}, 'tenant-google-credential', 'google: the tenant credential');
is($m[3]{headers}{'api-key'}, 'tenant-azure-credential', 'azure: the tenant credential');
is(scalar(grep { $_->{status} == 200 } @main::responses), 4, 'all four answered 200');
ok(index(json_encode(\@m), $main::OWN) < 0, 'the gateway key is nowhere upstream');
--- no_error_log
[error]



=== TEST 7: the tenant's own credential where the route has none
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
POST /bare/openai/v1/chat/completions
$TEST_NGINX_BODY
--- more_headers
Authorization: Bearer $TEST_NGINX_OWN
Content-Type: application/json
--- response_body_like: "object":"chat\.completion"
--- check
gw_upstream_saw(label => 'openai', key => $main::OWN,
    headers => { authorization => 'Bearer tenant-openai-credential' });



=== TEST 8: no credential at all: 503 in the provider's shape, nothing sent
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
["POST /bare/openai/v1/chat/completions\n{}",
 "POST /bare/anthropic/v1/messages\n{}",
 "POST /bare/google/v1beta/models/g:generateContent\n{}",
 "POST /bare/azure/r/d/chat/completions\n{}"]
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- error_code: 503
--- response_body_like eval
[qr/^\{"error":\{"message":"no openai credential is configured for this organisation or route","type":"server_error","param":null,"code":"credential_missing"\}\}/,
 qr/^\{"type":"error","error":\{"type":"api_error","message":"no anthropic credential is configured/,
 qr/^\{"error":\{"code":503,"message":"no google credential is configured for this organisation or route","status":"UNAVAILABLE",.*"reason":"CREDENTIAL_MISSING"/,
 qr/"code":"credential_missing"/]
--- check
is(scalar(Test::TruePort::Mock::mock_requests()), 0, 'nothing reached the provider');
--- error_log
trueport: no openai credential for tenant



=== TEST 9: an upstream{} block found by name through the variable
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request eval
["GET /named/models", "GET /named/models"]
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- response_body_like: "object":"list"
--- check
gw_upstream_saw(label => 'named', key => $main::KEY, path => '/v1/models',
    headers => { host => 'mockhost', authorization => 'Bearer sk-named' });
--- no_error_log
[error]



=== TEST 10: Azure: the route's resource goes where the base says {resource}
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
POST /az/localhost/dep/chat/completions?api-version=2024-10-21
$TEST_NGINX_BODY
--- more_headers
api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- response_body_like: "object":"chat\.completion"
--- check
gw_upstream_saw(label => 'azure', key => $main::KEY,
    path => '/openai/deployments/dep/chat/completions',
    headers => { host => 'localhost', 'api-key' => 'az-by-name' });
--- no_error_log
[error]



=== TEST 11: the path goes upstream escaped as the client sent it
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
GET /trueportai-services/openai/v1/models/ft%3Agpt%204o?x=%20y
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- error_code: 404
--- check
gw_upstream_saw(label => 'openai', key => $main::KEY,
    path => '/v1/models/ft:gpt%204o', query => { x => ' y' });



=== TEST 12: a tenant's own Azure endpoint replaces the route's base, with the tenant's own key
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request eval
["POST /trueportai-services/azure/ignored/dep/chat/completions?api-version=1\n$ENV{TEST_NGINX_BODY}",
 "POST /trueportai-services/azure/ignored/openai/deployments/dep/chat/completions?api-version=1\n$ENV{TEST_NGINX_BODY}"]
--- more_headers
api-key: $TEST_NGINX_EP
Content-Type: application/json
--- response_body_like: "object":"chat\.completion"
--- check
gw_upstream_saw(label => 'azure endpoint', key => $main::EP,
    path => '/openai/deployments/dep/chat/completions',
    headers => { host => 'localhost',
                 'api-key' => 'tenant-endpoint-azure-key' });
--- no_error_log
[error]



=== TEST 13: the shipped conf.d, rendered with the upstreams overridden
--- http_config: $TEST_NGINX_GW_HTTP_ALL
--- config: $TEST_NGINX_GW_ALL
--- request
GET /trueportai-services/openai/v1/models
--- more_headers
x-api-key: $TEST_NGINX_KEY
--- response_body_like: "object":"list"
--- check
my $seen = main::shipped();
ref $seen or BAIL_OUT($seen);
for my $s (@$seen) {
    my ($status, $m, $route, $h, $v, $path) = @$s;
    is($status, 200, "shipped $route: 200");
    is($m->{path}, $path, "shipped $route: upstream path");
    is($m->{headers}{$h}, $v, "shipped $route: $h");
    ok(index(json_encode($m), $main::KEY) < 0, "shipped $route: no gateway key");
}
