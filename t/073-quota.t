# The plan's monthly request quota, enforced at the gateway: requests
# counted by the spool ingester (usage_monthly) reach the key's resolve
# answer, and over the quota every provider refuses with 429
# quota_exceeded in its own error shape.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Time::HiRes qw(sleep time);

my $spool = work_dir() . '/spool';
mkdir $spool or die $!;
use_sidecar(env => { TRUEPORT_SPOOL_DIR => $spool });
gw_setup(valid => '300ms', refresh => '100ms');

# a plan of 3 requests a month (per-file database: nobody else sees it);
# its tenants spend the route's credential, which a plan must allow
dbh()->do("INSERT INTO plans (id, name, default_rpm, max_keys,"
          . " monthly_requests, log_retention_days, price_cents, max_rpm,"
          . " default_credentials)"
          . " VALUES ('tiny', 'Tiny', 60, 5, 3, 1, 0, 60, true)");
our $T = gw_tenant(plan => 'tiny');
our $K = gw_key($T);
our $O = gw_tenant(plan => 'tiny');      # another tenant, untouched
our $KO = gw_key($O);
gw_env(KEY => $K->{key}, KEY_OTHER => $KO->{key},
       SPOOL => $spool,
       GW_HTTP => "$ENV{TEST_NGINX_GW_HTTP}    trueport_spool $spool;\n");

our $CHAT = qq{POST /trueportai-services/openai/v1/chat/completions\n}
    . qq{{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}};

# waits until the ingester has counted n requests of tenant t
sub counted {
    my ($t, $n) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        my ($c) = dbh()->selectrow_array(
            "SELECT coalesce(sum(requests), 0) FROM usage_monthly"
            . " WHERE tenant_id = ?", undef, $t->{id});
        return $c if $c >= $n;
        sleep 0.1;
    }
    return -1;
}

run_tests();

__DATA__

=== TEST 1: under the quota, requests pass and are counted
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[($main::CHAT) x 3]
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY
Content-Type: application/json
--- error_code eval
[200, 200, 200]
--- check
is(main::counted($main::T, 3), 3, 'the ingester counted 3 requests this month');



=== TEST 2: over the quota: 429 quota_exceeded, OpenAI's insufficient_quota shape
--- init
sleep 0.5;
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
$main::CHAT
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY
Content-Type: application/json
--- error_code: 429
--- response_body_like: "type":"insufficient_quota".*"code":"quota_exceeded"|"code":"quota_exceeded".*"type":"insufficient_quota"
--- check
my @sent = grep { $_->{path} =~ m{/chat/completions} } mock_requests();
is(scalar @sent, 3, 'the refused request never reached the provider');



=== TEST 3: Anthropic and Gemini shapes
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["POST /trueportai-services/anthropic/v1/messages\n{\"model\":\"claude-3-5-haiku-20241022\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
 "POST /trueportai-services/google/v1beta/models/gemini-2.0-flash:generateContent\n{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}"]
--- more_headers
x-api-key: $TEST_NGINX_KEY
x-goog-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[429, 429]
--- response_body_like eval
[qr/"type":"error".*"rate_limit_error"/, qr/"status":"RESOURCE_EXHAUSTED"/]



=== TEST 4: another tenant on the same plan is not affected
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
$main::CHAT
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY_OTHER
Content-Type: application/json
--- error_code: 200



=== TEST 5: a plan with more requests lifts the refusal
--- init
dbh()->do("UPDATE plans SET monthly_requests = 1000 WHERE id = 'tiny'");
sleep 0.5;
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
$main::CHAT
--- more_headers
Authorization: Bearer $TEST_NGINX_KEY
Content-Type: application/json
--- error_code: 200
