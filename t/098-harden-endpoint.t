# Hardening II (issue 13), finding 1 and the account headers of finding 6:
# a tenant's Azure endpoint (providers.azure.endpoint) may send the
# tenant's requests only to https hosts of the operator's allowlist
# (TRUEPORT_ENDPOINT_ALLOWLIST for the sidecar, trueport_upstream_allow
# for the module, *.openai.azure.com by default): refused at write time
# with 422 and the reason, and again by the module before each use (503
# endpoint_not_allowed); never with the route's credential (503
# credential_missing); a request that comes round through the gateway is
# refused (508 loop_detected, X-TruePort-Hop); the client's account
# headers go upstream only with the tenant's own credential, cookies
# never. A listener on loopback, which a tenant points its endpoint at,
# records whatever reaches it: nothing but the one request the operator
# allowed, and never an operator key.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use IO::Select;
use IO::Socket::INET;
use POSIX ();

use_sidecar();

# the listener: appends each request it receives (head and body) to a
# file, answers with a small chat completion
our $LFILE = work_dir() . '/listener.log';
our ($LPORT, $lpid);
{
    my $srv = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                    LocalPort => 0, ReuseAddr => 1)
        or die "listener: $!";
    $LPORT = $srv->sockport;
    open my $fh, '>', $LFILE or die "listener: $!";
    close $fh;
    $lpid = fork() // die "listener: fork: $!";
    if ($lpid == 0) {
        my $ans = '{"id":"l","object":"chat.completion","model":"m",'
                  . '"choices":[],"usage":{"prompt_tokens":1,'
                  . '"completion_tokens":1,"total_tokens":2}}';
        while (my $c = $srv->accept) {
            my ($buf, $sel) = ('', IO::Select->new($c));
            while ($sel->can_read(2)) {
                last unless sysread($c, $buf, 65536, length $buf);
                my $end = index($buf, "\r\n\r\n");
                next if $end < 0;
                my ($cl) = substr($buf, 0, $end) =~ /^content-length:\s*(\d+)/mi;
                last if length($buf) >= $end + 4 + ($cl // 0);
            }
            open my $out, '>>', $LFILE or POSIX::_exit(1);
            print $out "$buf\n=== end of request\n";
            close $out;
            syswrite $c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         . "Content-Length: " . length($ans)
                         . "\r\nConnection: close\r\n\r\n$ans";
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
}
END {
    my $rc = $?;
    if ($lpid) { kill 'TERM', $lpid; waitpid($lpid, 0) }
    $? = $rc;
}

sub listener_saw { open my $fh, '<', $LFILE or return ''; local $/; <$fh> }
sub listener_count { scalar(() = listener_saw() =~ /=== end of request/g) }

gw_setup();

our $GWPORT = server_port();
our @ROUTE_KEYS = qw(sk-route-openai sk-ant-route AIza-route-google
                     route-azure-key);
our $ALLOW = "*.openai.azure.com, http://127.0.0.1:$LPORT,"
             . " http://127.0.0.1:$GWPORT";
our $BODY = '{"model":"m","max_tokens":16,'
            . '"messages":[{"role":"user","content":"hi"}],'
            . '"contents":[{"parts":[{"text":"hi"}]}]}';
our $AZ = '/trueportai-services/azure/res/dep/chat/completions?api-version=1';

# A tenant with a key; "endpoint" straight into tenant_configs (as the
# configs API stored any http(s) URL before this issue: old rows, or a
# sidecar with a wider allowlist than the module's), "own": its own Azure
# key through the API.
sub tenant {
    my (%o) = @_;
    my $t = gw_tenant();
    $t->{key} = gw_key($t)->{key};
    gw_credential($t, 'azure', $o{own}) if defined $o{own};
    dbh()->do("INSERT INTO tenant_configs (tenant_id, key, value)"
              . " VALUES (?, 'providers.azure.endpoint', ?::jsonb)", undef,
              $t->{id}, json_encode($o{endpoint}))
        if defined $o{endpoint};
    return $t;
}

sub put_endpoint {
    my ($t, $v) = @_;
    return sidecar_api(PUT => '/platform/api/service/configs/'
                              . 'providers.azure.endpoint', { value => $v },
                       { Authorization => "Bearer $t->{token}" });
}

our $WR = gw_tenant();                        # writes through the API
our $REPRO = tenant(endpoint => "http://127.0.0.1:$LPORT");
our $REPRO_OWN = tenant(endpoint => "http://127.0.0.1:$LPORT",
                        own => 'tenant-own-azure-key-1');
our @HOSTILE = ('https://169.254.169.254', 'https://2130706433',
                'https://0x7f.1', 'https://[::1]', 'https://localhost',
                'https://metadata.google.internal', 'https://metadata',
                'https://evil.example.com', 'http://acme.openai.azure.com',
                'https://acme.openai.azure.com:8443',
                'https://u@acme.openai.azure.com',
                "http://127.0.0.1:$GWPORT");
our @HT = map { tenant(endpoint => $_, own => 'tenant-own-azure-key-2') }
          @HOSTILE;
our $OWN = gw_tenant();
gw_credential($OWN, $_, "tenant-$_-credential") for qw(openai google);
our $OWN_KEY = gw_key($OWN)->{key};
our $PLAIN_KEY = gw_key(gw_tenant())->{key};

gw_env(
    BODY => $BODY,
    REPRO => $REPRO->{key},
    REPRO_OWN => $REPRO_OWN->{key},
    OWN => $OWN_KEY,
    PLAIN => $PLAIN_KEY,
    GW_ANY => gw_locations(extra => 'trueport_upstream_key_scope any;'),
    GW_ALLOW => gw_locations(extra => "trueport_upstream_allow $ALLOW;"
                                      =~ s/,//gr),
);

run_tests();

__DATA__

=== TEST 1: write time: every hostile endpoint is refused with 422 and its reason, nothing stored
--- init
$::tries = [
    [ "http://127.0.0.1:19999", 'IP address literals' ],
    [ "https://127.0.0.1", 'IP address literals' ],
    [ "https://2130706433/", 'IP address literals' ],
    [ "https://017700000001", 'IP address literals' ],
    [ "https://0x7f.0.0.1", 'IP address literals' ],
    [ "https://127.1", 'IP address literals' ],
    [ "https://169.254.169.254/latest/meta-data", 'IP address literals' ],
    [ "https://10.0.0.8", 'IP address literals' ],
    [ "https://192.168.0.1", 'IP address literals' ],
    [ "https://[::1]", 'IP address literals' ],
    [ "https://[::ffff:169.254.169.254]", 'IP address literals' ],
    [ "https://localhost", 'localhost' ],
    [ "https://x.localhost", 'localhost' ],
    [ "https://metadata.google.internal", 'local-only' ],
    [ "https://metadata", 'single-label' ],
    [ "http://trueport_sidecar_internal/internal/v1/keys/resolve", 'letters, digits' ],
    [ "https://evil.example.com", 'not in the operator' ],
    [ "https://acme.openai.azure.com.evil.example.com", 'not in the operator' ],
    [ "https://acme.openai.azure.com\@evil.example.com", 'user information' ],
    [ "https://user:pw\@acme.openai.azure.com", 'user information' ],
    [ "http://acme.openai.azure.com", 'must be https://' ],
    [ "ftp://acme.openai.azure.com", 'must be https://' ],
    [ "https://acme.openai.azure.com:8443", 'port is not allowed' ],
    [ "https://acme.openai.azure.com/x?y=1", 'query' ],
    [ "https://acme.openai.azure.com/../x", 'dot segments' ],
    [ "https://{resource}.openai.azure.com", 'letters, digits' ],
];
--- config
    location = /t { return 200; }
--- request
GET /t
--- check
for my $c (@$::tries) {
    my $r = main::put_endpoint($::WR, $c->[0]);
    is($r->{status}, 422, "$c->[0]: 422");
    like($r->{json}{error}{message} // '', qr/\Q$c->[1]\E/,
         "$c->[0]: the reason ($c->[1])");
    is($r->{json}{error}{code}, 'invalid_value', "$c->[0]: invalid_value");
}
my ($n) = dbh()->selectrow_array(
    "SELECT count(*) FROM tenant_configs WHERE tenant_id = ?"
    . " AND key = 'providers.azure.endpoint'", undef, $::WR->{id});
is($n, 0, 'nothing was stored');



=== TEST 2: write time: Azure OpenAI resource hosts are accepted
--- config
    location = /t { return 200; }
--- request
GET /t
--- check
for my $u ('https://acme.openai.azure.com', 'https://Acme-EU.OpenAI.Azure.com/',
           'https://acme.openai.azure.com:443/base') {
    my $r = main::put_endpoint($::WR, $u);
    is($r->{status}, 200, "$u: 200");
    is($r->{json}{value}, $u, "$u: stored as given");
}
is(main::put_endpoint($::WR, undef)->{status}, 200, 'reset to the default');



=== TEST 3: finding 1 reproduced: an endpoint on loopback (stored before this check) with no own key: 503 endpoint_not_allowed, the listener gets nothing
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
"POST $::AZ\n$::BODY"
--- more_headers
api-key: $TEST_NGINX_REPRO
Content-Type: application/json
--- error_code: 503
--- response_body_like: ^\{"error":\{"message":"the organisation's own endpoint is not allowed by this gateway: IP address literals are not allowed \(in any spelling\)","type":"server_error","param":null,"code":"endpoint_not_allowed"\}\}
--- check
is(main::listener_count(), 0, 'the listener received nothing');
--- error_log eval
qr/\[warn\].*trueport: endpoint "http:\/\/127\.0\.0\.1:\d+" of tenant [0-9a-f-]{36} refused: IP address literals/



=== TEST 4: ... and with the tenant's own key: the module refuses it all the same
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
"POST $::AZ\n$::BODY"
--- more_headers
api-key: $TEST_NGINX_REPRO_OWN
Content-Type: application/json
--- error_code: 503
--- response_body_like: "code":"endpoint_not_allowed"
--- check
is(main::listener_count(), 0, 'the listener received nothing');



=== TEST 5: the module refuses every hostile endpoint the sidecar would (stored behind its back)
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
[map { "POST $::AZ\n$::BODY" } @::HT]
--- more_headers eval
[map { "api-key: $_->{key}\nContent-Type: application/json" } @::HT]
--- error_code eval
[(503) x @::HT]
--- response_body_like eval
[map { qr/"code":"endpoint_not_allowed"/ } @::HT]
--- check
is(scalar(Test::TruePort::Mock::mock_requests()), 0,
   'nothing reached the route\'s upstream either');
is(main::listener_count(), 0, 'nor the listener');
like($main::responses[$_]{body}, qr/not allowed by this gateway: [a-zA-Z]/,
     "$::HOSTILE[$_]: a reason") for 0 .. $#::HT;



=== TEST 6: the operator allows the listener (both allowlists); no own key: 503 credential_missing, the operator's key goes nowhere
--- init
restart_sidecar(TRUEPORT_ENDPOINT_ALLOWLIST => $::ALLOW);
$::T6 = main::tenant();
my $r = main::put_endpoint($::T6, "http://127.0.0.1:$::LPORT");
die "put: $r->{status} $r->{body}" unless $r->{status} == 200;
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_ALLOW
--- request eval
"POST $::AZ\n$::BODY"
--- more_headers eval
"api-key: $::T6->{key}\nContent-Type: application/json"
--- error_code: 503
--- response_body_like: ^\{"error":\{"message":"the organisation's own azure endpoint needs the organisation's own azure credential","type":"server_error","param":null,"code":"credential_missing"\}\}
--- check
is(main::listener_count(), 0, 'the listener received nothing');
--- error_log
trueport: no azure credential for tenant



=== TEST 7: ... with the tenant's own key the request goes there, with that key and the hop header
--- init
$::T7 = main::tenant(own => 'tenant-own-azure-key-7');
my $r = main::put_endpoint($::T7, "http://127.0.0.1:$::LPORT/base");
die "put: $r->{status} $r->{body}" unless $r->{status} == 200;
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_ALLOW
--- request eval
"POST $::AZ\n$::BODY"
--- more_headers eval
"api-key: $::T7->{key}\nContent-Type: application/json\nCookie: session=gateway-domain"
--- error_code: 200
--- response_body_like: "object":"chat\.completion"
--- check
my $saw = main::listener_saw();
is(main::listener_count(), 1, 'the listener received the one request');
like($saw, qr{^POST /base/openai/deployments/dep/chat/completions\?api-version=1 }m,
     'the base path of the endpoint, then the route');
like($saw, qr/^api-key: tenant-own-azure-key-7\r$/mi, "the tenant's own key");
like($saw, qr/^x-trueport-hop: [0-9a-f]{16}\r$/mi, 'the hop header');
unlike($saw, qr/^cookie:/mi, 'no cookie');
unlike($saw, qr/\Q$::T7->{key}\E/, 'not the gateway key');
--- no_error_log
[error]



=== TEST 8: the sidecar's allowlist is not the module's: the same endpoint under the default trueport_upstream_allow is refused
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
"POST $::AZ\n$::BODY"
--- more_headers eval
"api-key: $::T7->{key}\nContent-Type: application/json"
--- error_code: 503
--- response_body_like: "code":"endpoint_not_allowed"
--- check
is(main::listener_count(), 1, 'the listener received nothing more');



=== TEST 9: an endpoint that names the gateway itself, with the tenant's gateway key as its "own" key: refused on its second pass (508), not a loop
--- init
$::T9 = main::tenant();
gw_credential($::T9, 'azure', $::T9->{key});
my $r = main::put_endpoint($::T9,
    "http://127.0.0.1:$::GWPORT/trueportai-services/azure/loop");
die "put: $r->{status} $r->{body}" unless $r->{status} == 200;
Test::TruePort::Mock::mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_ALLOW
--- request eval
"POST $::AZ\n$::BODY"
--- more_headers eval
"api-key: $::T9->{key}\nContent-Type: application/json"
--- error_code: 508
--- response_body_like: ^\{"error":\{"message":"request loop: this request has already passed this gateway \(an endpoint names the gateway itself\)","type":"server_error","param":null,"code":"loop_detected"\}\}
--- check
is(scalar(Test::TruePort::Mock::mock_requests()), 0, 'nothing reached the mock');
open my $fh, '<', work_dir() . '/logs/access.log' or die $!;
my @loop = grep { m{/trueportai-services/azure/(res|loop)/} } <$fh>;
my @inner = grep { m{/azure/loop/openai/deployments/dep/} } @loop[-2 .. -1];
is(scalar(@inner), 1, 'two passes: the request, and its one way round');
--- error_log eval
qr/\[error\].*trueport: request loop: the request has passed this gateway before \(X-TruePort-Hop: "[0-9a-f]{16}"\)/



=== TEST 10: the hop header: the gateway's id upstream, after those of other gateways; eight of them are a loop
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
["GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models"]
--- more_headers eval
["x-api-key: $ENV{TEST_NGINX_PLAIN}",
 "x-api-key: $ENV{TEST_NGINX_PLAIN}\nX-TruePort-Hop: 0123456789abcdef",
 "x-api-key: $ENV{TEST_NGINX_PLAIN}\nX-TruePort-Hop: not-an-id, 0123456789ABCDEF,fedcba9876543210x\nX-TruePort-Hop: aaaaaaaaaaaaaaaa",
 "x-api-key: $ENV{TEST_NGINX_PLAIN}\nX-TruePort-Hop: " . join(', ', map { sprintf '%016x', $_ } 1 .. 7),
 "x-api-key: $ENV{TEST_NGINX_PLAIN}\nX-TruePort-Hop: " . join(', ', map { sprintf '%016x', $_ } 1 .. 8)]
--- error_code eval
[200, 200, 200, 200, 508]
--- response_body_like eval
[qr/"object":"list"/, qr/"object":"list"/, qr/"object":"list"/,
 qr/"object":"list"/, qr/"code":"loop_detected"/]
--- check
my @m = Test::TruePort::Mock::mock_requests();
is(scalar(@m), 4, 'four went upstream');
my $id = $m[0]{headers}{'x-trueport-hop'} // '';
like($id, qr/^[0-9a-f]{16}$/, "the gateway's id alone");
is($m[1]{headers}{'x-trueport-hop'}, "0123456789abcdef, $id",
   "another gateway's id first");
is($m[2]{headers}{'x-trueport-hop'}, "0123456789ABCDEF, aaaaaaaaaaaaaaaa, $id",
   'what is not an id is dropped, several headers joined');
is($m[3]{headers}{'x-trueport-hop'},
   join(', ', (map { sprintf '%016x', $_ } 1 .. 7), $id), 'seven others pass');
--- error_log
passed 8 gateways or more



=== TEST 11: the operator's credential: the client's account headers and cookies stay here; feature headers pass
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
["POST /trueportai-services/openai/v1/chat/completions\n$::BODY",
 "POST /trueportai-services/anthropic/v1/messages\n$::BODY",
 "POST /trueportai-services/google/v1beta/models/g:generateContent\n$::BODY"]
--- more_headers eval
"x-api-key: $ENV{TEST_NGINX_PLAIN}
Content-Type: application/json
anthropic-version: 2023-06-01
OpenAI-Organization: org-of-someone-else
OpenAI-Project: proj_of_someone_else
x-goog-user-project: someone-elses-project
Cookie: session=gateway-domain; other=1
anthropic-beta: prompt-caching-2024-07-31
OpenAI-Beta: assistants=v2"
--- error_code: 200
--- check
my @m = Test::TruePort::Mock::mock_requests();
is(scalar(@m), 3, 'three went upstream');
for my $i (0 .. 2) {
    my $h = $m[$i]{headers};
    my $l = (qw(openai anthropic google))[$i];
    ok(!exists $h->{$_}, "$l: no $_ upstream")
        for qw(openai-organization openai-project x-goog-user-project cookie);
    is($h->{'anthropic-beta'}, 'prompt-caching-2024-07-31', "$l: anthropic-beta passes");
    is($h->{'openai-beta'}, 'assistants=v2', "$l: openai-beta passes");
}
is($m[0]{headers}{authorization}, 'Bearer sk-route-openai', "the route's credential");
--- no_error_log
[error]



=== TEST 12: the tenant's own credential: its account headers pass, cookies still not
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
["POST /trueportai-services/openai/v1/chat/completions\n$::BODY",
 "POST /trueportai-services/google/v1beta/models/g:generateContent\n$::BODY"]
--- more_headers
x-api-key: $TEST_NGINX_OWN
Content-Type: application/json
OpenAI-Organization: org-own
OpenAI-Project: proj_own
x-goog-user-project: own-project
Cookie: session=gateway-domain
--- error_code: 200
--- check
my @m = Test::TruePort::Mock::mock_requests();
is($m[0]{headers}{authorization}, 'Bearer tenant-openai-credential', 'openai: own credential');
is($m[0]{headers}{'openai-organization'}, 'org-own', 'openai: OpenAI-Organization passes');
is($m[0]{headers}{'openai-project'}, 'proj_own', 'openai: OpenAI-Project passes');
is($m[1]{headers}{'x-goog-api-key'}, 'tenant-google-credential', 'google: own credential');
is($m[1]{headers}{'x-goog-user-project'}, 'own-project', 'google: x-goog-user-project passes');
ok(!exists $_->{headers}{cookie}, 'no cookie upstream') for @m;
--- no_error_log
[error]



=== TEST 13: trueport_upstream_allow mistakes are refused at start
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request
GET /trueportai-services/openai/v1/models
--- error_code: 401
--- check
my @cases = (
    [ 'trueport_upstream_allow *.com;', qr/invalid pattern "\*\.com": a wildcard needs two fixed labels/ ],
    [ 'trueport_upstream_allow *.openai.azure.com ftp://x.example.com;', qr/invalid pattern "ftp:\/\/x\.example\.com": the scheme must be http/ ],
    [ 'trueport_upstream_allow https://x.example.com/path;', qr/without a path/ ],
    [ 'trueport_upstream_allow a.example.com; trueport_upstream_allow b.example.com;', qr/"trueport_upstream_allow" directive is duplicate/ ],
    [ 'trueport_upstream_allow;', qr/invalid number of arguments in "trueport_upstream_allow"/ ],
);
my $dir = work_dir();
my $module = $ENV{TP_MODULE} // "$ENV{TEST_NGINX_ROOT}/build/ngx_http_trueport_module.so";
for my $c (@cases) {
    open my $fh, '>', "$dir/conf/bad.conf" or die $!;
    print $fh "load_module $module;\nevents {}\nhttp { trueport_zone zone=z:1m;"
              . " trueport_resolve_location /r; server { location /a/ {"
              . " trueport_gateway azure; $c->[0] } } }\n";
    close $fh;
    my $cmd = Test::TruePort::nginx_cmd();
    my $out = `$cmd -t -p $dir/ -c $dir/conf/bad.conf -e $dir/logs/bad.log 2>&1`;
    isnt($?, 0, "refused: $c->[0]");
    like($out, $c->[1], "the reason: $c->[0]");
}



=== TEST 14: the operator's credential on endpoints that keep data in its account: 403 own_credential_required, nothing upstream
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
["GET /trueportai-services/openai/v1/files",
 "POST /trueportai-services/openai/v1/batches\n{\"input_file_id\":\"file-1\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}",
 "GET /trueportai-services/openai/v1/assistants",
 "GET /trueportai-services/openai/v1/vector_stores",
 "DELETE /trueportai-services/openai/v1/models/ft:gpt-4o:acme::x1",
 "GET /trueportai-services/anthropic/v1/messages/batches",
 "GET /trueportai-services/anthropic/v1/files",
 "GET /trueportai-services/google/v1beta/cachedContents",
 "GET /trueportai-services/google/v1beta/files",
 "POST /trueportai-services/google/v1beta/models/g:batchGenerateContent\n$::BODY"]
--- more_headers eval
"x-api-key: $ENV{TEST_NGINX_PLAIN}
Content-Type: application/json
anthropic-version: 2023-06-01"
--- error_code: 403
--- response_body_like eval
[(qr/^\{"error":\{"message":"this endpoint keeps data in the provider account, which the gateway's shared credential serves to other organisations too: it needs the organisation's own provider key","type":"request_forbidden","param":null,"code":"own_credential_required"\}\}$/) x 5,
 (qr/^\{"type":"error","error":\{"type":"permission_error","message":"this endpoint keeps data in the provider account/) x 2,
 (qr/^\{"error":\{"code":403,"message":"this endpoint keeps data in the provider account.*"status":"PERMISSION_DENIED"/) x 3]
--- check
is(scalar(Test::TruePort::Mock::mock_requests()), 0, 'nothing went upstream');



=== TEST 15: ... inference and reading the models go through it
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
["POST /trueportai-services/openai/v1/chat/completions\n$::BODY",
 "GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models/ft:gpt-4o:acme::x1",
 "POST /trueportai-services/anthropic/v1/messages\n$::BODY",
 "GET /trueportai-services/anthropic/v1/models",
 "POST /trueportai-services/google/v1beta/models/g:generateContent\n$::BODY",
 "GET /trueportai-services/google/v1beta/models/g"]
--- more_headers eval
"x-api-key: $ENV{TEST_NGINX_PLAIN}
Content-Type: application/json
anthropic-version: 2023-06-01"
--- error_code eval
# the mock's own answers: it knows no fine-tuned model, serves /v1/models
# as OpenAI does (asking for a Bearer key) and no Gemini model info
[200, 200, 404, 200, 401, 200, 404]
--- check
my @st = map { $_->{status} } @main::responses;
is(scalar(grep { $_ == 403 } @st), 0, 'none refused') or diag "@st";
is(scalar(Test::TruePort::Mock::mock_requests()), 7, 'all seven went upstream');



=== TEST 16: ... with the tenant's own credential every endpoint goes upstream, with that credential
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- init
Test::TruePort::Mock::mock_clear();
--- request eval
["GET /trueportai-services/openai/v1/files",
 "GET /trueportai-services/google/v1beta/cachedContents"]
--- more_headers eval
"x-api-key: $ENV{TEST_NGINX_OWN}"
--- error_code eval
[404, 404]
--- check
my @m = Test::TruePort::Mock::mock_requests();
is(scalar(@m), 2, 'both went upstream');
is($m[0]{headers}{authorization}, 'Bearer tenant-openai-credential', "openai: the tenant's credential");
is($m[1]{headers}{'x-goog-api-key'}, 'tenant-google-credential', "google: the tenant's credential");



=== TEST 17: trueport_upstream_key_scope any: the operator lets its shared credential reach them
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW_ANY
--- init
Test::TruePort::Mock::mock_clear();
--- request
GET /trueportai-services/openai/v1/files
--- more_headers eval
"x-api-key: $ENV{TEST_NGINX_PLAIN}"
--- error_code: 404
--- check
my @m = Test::TruePort::Mock::mock_requests();
is(scalar(@m), 1, 'it went upstream');
is($m[0]{headers}{authorization}, 'Bearer sk-route-openai', "with the route's credential");



=== TEST 18: over the whole file: the listener received one request, never an operator key nor a gateway key
--- config
    location = /t { return 200; }
--- request
GET /t
--- check
my $saw = main::listener_saw();
is(main::listener_count(), 1, 'one request, the one the operator allowed');
unlike($saw, qr/\Q$_\E/, "no $_") for @::ROUTE_KEYS;
unlike($saw, qr/\bsk-[A-Za-z0-9_-]{20,}/, 'no gateway key');
