# Plans, subscriptions, tenant configs and storage through nginx: the
# catalog, activating a plan (history kept, limits applied, settings
# lowered on a downgrade), the typed config allowlist, provider keys
# encrypted at rest and never shown, storage bounds from the plan, roles,
# tenant isolation, malformed input, audit rows.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Org;
use MIME::Base64 qw(decode_base64);

use_sidecar();

our $dbh = dbh();
our $A = org_tenant(name => 'Acme');
our ($owner, $owner_id) = org_member($A, 'owner');
our ($admin, $admin_id) = org_member($A, 'admin');
our ($memb) = org_member($A, 'member');
our ($viewer) = org_member($A, 'viewer');
our $B = org_tenant(name => 'Bravo', plan => 'pro');
our ($b_admin) = org_member($B, 'admin');
our $KEY = 'sk-proj-TOPSECRET-0123456789abcdefWXYZ';

run_tests();

__DATA__

=== TEST 1: the catalog: every plan with its limits and flags, the current one marked
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/catalog/plans
--- more_headers eval
"Authorization: Bearer $::viewer"
--- error_code: 200
--- response_body chomp
{"items":[{"id":"free","name":"Free","price_cents":0,"currency":"USD","interval":"month","self_service":true,"default_credentials":false,"limits":{"default_rpm":60,"max_rpm":120,"max_keys":5,"monthly_requests":10000,"log_retention_days":7},"current":true},{"id":"pro","name":"Pro","price_cents":4900,"currency":"USD","interval":"month","self_service":false,"default_credentials":false,"limits":{"default_rpm":600,"max_rpm":3000,"max_keys":50,"monthly_requests":1000000,"log_retention_days":30},"current":false},{"id":"enterprise","name":"Enterprise","price_cents":49900,"currency":"USD","interval":"month","self_service":false,"default_credentials":false,"limits":{"default_rpm":3000,"max_rpm":30000,"max_keys":1000,"monthly_requests":100000000,"log_retention_days":365},"current":false}],"total":3,"limit":50,"offset":0}
--- no_error_log
[error]



=== TEST 2: catalog pagination
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "GET /platform/api/service/catalog/plans?$_" }
 'limit=1&offset=1', 'offset=3', 'limit=200', 'limit=0', 'limit=201',
 'limit=-1', 'limit=abc']
--- more_headers eval
"Authorization: Bearer $::viewer"
--- error_code eval
[200, 200, 200, 400, 400, 400, 400]
--- response_body_like eval
['^\{"items":\[\{"id":"pro",[^\]]*\}\],"total":3,"limit":1,"offset":1\}$',
 '^\{"items":\[\],"total":3,"limit":50,"offset":3\}$', '"limit":200',
 'invalid_pagination', 'invalid_pagination', 'invalid_pagination',
 'invalid_pagination']



=== TEST 3: bad tokens: 401 on every route; a member (below admin): 403
--- init
my %bad = bad_tokens($::owner_id, $::A);
my @routes = ([GET => '/service/catalog/plans'],
              [POST => '/service/subscriptions', { plan_id => 'pro' }],
              [GET => '/service/subscriptions'],
              [GET => '/service/configs'],
              [PUT => '/service/configs/log_prompts', { value => JSON::PP::true() }],
              [GET => '/service/storage'],
              [PUT => '/service/storage', { retention_days => 3 }]);
for my $name (sort keys %bad) {
    for my $rt (@routes) {
        is(pcall($bad{$name}, @$rt)->{status}, 401,
           "$rt->[0] $rt->[1], $name: 401");
    }
}
for my $rt (@routes[1, 2, 4, 5, 6]) {
    my $r = pcall($::memb, @$rt);
    is($r->{status}, 403, "member: $rt->[0] $rt->[1]: 403");
    like($r->{body}, qr/insufficient_role/, '... insufficient_role');
}
my ($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM subscriptions WHERE tenant_id = ?', undef, $::A->{id});
is($n, 1, 'no subscription was made');
($n) = $::dbh->selectrow_array('SELECT count(*) FROM tenant_configs');
is($n, 0, 'no config was written');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/subscriptions
{"plan_id": "enterprise"}
--- more_headers eval
"Authorization: Bearer $::viewer\nContent-Type: application/json"
--- error_code: 403
--- response_body_like: "this action needs the admin role \(you are viewer\)"



=== TEST 4: activate pro: 201, the plan, its limits, the start
--- init
# the operator offers pro as self-service here: a tenant admin may only
# activate such plans (the refusal: t/097-harden-tenant.t)
$::dbh->do(q{UPDATE plans SET self_service = true WHERE id = 'pro'});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/subscriptions
{"plan_id": "pro"}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: ^\{"subscription_id":"[0-9a-f-]{36}","plan":"pro","plan_name":"Pro","price_cents":4900,"status":"active","previous_plan":"free","limits":\{"default_rpm":600,"max_rpm":3000,"max_keys":50,"monthly_requests":1000000,"log_retention_days":30\},"started_at":"20[^"]+Z"\}$
--- no_error_log
[error]



=== TEST 5: the old subscription ended, one is active, audited; info agrees
--- init
my $subs = $::dbh->selectall_arrayref(
    q{SELECT plan_id, status, ended_at IS NOT NULL, activated_by
        FROM subscriptions WHERE tenant_id = ? ORDER BY started_at}, undef,
    $::A->{id});
is_deeply($subs, [['free', 'ended', 1, undef], ['pro', 'active', 0, $::admin_id]],
          'free ended, pro active (activated by the admin)');
my @a = audit_rows('plan.activated', $::A->{id});
is(scalar @a, 1, 'audited');
is_deeply($a[0]{detail}, { from => 'free', to => 'pro' }, '... from/to');
my $r = pcall($::b_admin, GET => '/service/info');
is($r->{json}{plan}{id}, 'pro', 'B keeps its own plan');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::viewer"
--- response_body_like: "plan":\{"id":"pro","name":"Pro","price_cents":4900,"started_at":"[^"]+"\},"limits":\{"default_rpm":600,"max_rpm":3000



=== TEST 6: the active plan again: 200, nothing new
--- init
$::dbh->do('SELECT 1');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/subscriptions
{"plan_id": "pro"}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 200
--- response_body_like: "plan":"pro".*"previous_plan":null



=== TEST 7: bad subscription bodies
--- init
my ($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM subscriptions WHERE tenant_id = ?', undef, $::A->{id});
is($n, 2, 'the same plan made no row');
is(scalar(audit_rows('plan.activated', $::A->{id})), 1, '... and no audit');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /platform/api/service/subscriptions\n{\"plan_id\": \"platinum\"}",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": \"PRO\"}",
 "POST /platform/api/service/subscriptions\n{}",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": 2}",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": \"\"}",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": \"pro\", \"card\": \"4242\"}",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": \"pro\"",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": \"\\u00ff\\u0001x\"}"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[422, 422, 422, 422, 422, 422, 400, 422]
--- response_body_like eval
['"unknown_plan","message":"no plan \\\\"platinum\\\\" in the catalog"',
 'unknown_plan', 'missing_field', 'must be a string', 'must not be empty',
 'unknown_field', 'invalid_json', 'no plan \\\\"\?\?\?x\\\\"']



=== TEST 8: subscription history, newest first (admin)
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /platform/api/service/subscriptions",
 "GET /platform/api/service/subscriptions?limit=1&offset=1",
 "GET /platform/api/service/subscriptions?limit=0"]
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code eval
[200, 200, 400]
--- response_body_like eval
[qr/^\{"items":\[\{"id":"[0-9a-f-]{36}","plan":"pro","status":"active","activated_by":"$::admin_id","started_at":"[^"]+","ended_at":null\},\{"id":"[0-9a-f-]{36}","plan":"free","status":"ended","activated_by":null,"started_at":"[^"]+","ended_at":"[^"]+"\}\],"total":2,"limit":50,"offset":0\}$/,
 '^\{"items":\[\{[^\]]*"plan":"free"[^\]]*\}\],"total":2,"limit":1,"offset":1\}$',
 'invalid_pagination']



=== TEST 9: configs: every allowlisted key, defaults from the plan
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/configs
--- more_headers eval
"Authorization: Bearer $::viewer"
--- error_code: 200
--- response_body_like eval
my @e = (
  'default_rpm","type":"integer","description":"[^"]+","value":600',
  'log_prompts","type":"boolean","description":"[^"]+","value":false',
  'allowed_providers","type":"array","description":"[^"]+","value":\["openai","anthropic","google","azure"\]',
  (map { "providers.$_.api_key\",\"type\":\"secret\",\"description\":\"[^\"]+\",\"value\":\\{\"set\":false,\"last4\":null\\}" }
   qw(openai anthropic google azure)),
  'providers.azure.endpoint","type":"url","description":"[^"]+","value":null');
my $re = CORE::join ',', map { qq(\\{"key":"$_,"is_default":true,"updated_at":null,"updated_by":null\\}) } @e;
qr/^\{"items":\[$re\],"total":8,"limit":50,"offset":0\}$/
--- no_error_log
[error]



=== TEST 10: set a provider key: 200, shown masked, never the value
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PUT /platform/api/service/configs/providers.openai.api_key\n{\"value\": \"$::KEY\"}"
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
qr/^\{"key":"providers.openai.api_key","type":"secret","description":"[^"]+","value":\{"set":true,"last4":"WXYZ"\},"is_default":false,"updated_at":"[^"]+","updated_by":"$::admin_id"\}$/
--- no_error_log
[error]



=== TEST 11: the key is encrypted at rest, bound to the tenant, never echoed
--- init
my $row = $::dbh->selectrow_hashref(
    q{SELECT * FROM tenant_configs WHERE tenant_id = ? AND key = 'providers.openai.api_key'},
    undef, $::A->{id});
like($row->{secret}, qr{^v1:[A-Za-z0-9+/]+=*$}, 'stored as v1:base64');
ok(index($row->{secret}, $::KEY) < 0 && index($row->{secret}, 'TOPSECRET') < 0,
   'the column is not the plaintext');
my $raw = decode_base64(substr($row->{secret}, 3));
is(length $raw, 12 + length($::KEY) + 16, 'nonce + ciphertext + tag');
ok(index($raw, 'TOPSECRET') < 0, 'the decoded bytes are not the plaintext');
ok(!defined $row->{value}, 'no plain value');
is($row->{last4}, 'WXYZ', 'last4 kept for display');
# the same key in another tenant: another ciphertext (fresh nonce, AAD)
my $r = pcall($::b_admin, PUT => '/service/configs/providers.openai.api_key',
              { value => $::KEY });
is($r->{status}, 200, 'B sets the same key');
my ($b_secret) = $::dbh->selectrow_array(
    q{SELECT secret FROM tenant_configs WHERE tenant_id = ? AND key = 'providers.openai.api_key'},
    undef, $::B->{id});
isnt($b_secret, $row->{secret}, "B's ciphertext differs");
# nowhere in the database in clear
my $dump = CORE::join "\n", map { CORE::join '|', map { $_ // '' } @$_ } @{ $::dbh->selectall_arrayref(
    q{SELECT t::text FROM tenant_configs t UNION ALL SELECT a::text FROM audit_log a})};
ok(index($dump, 'TOPSECRET') < 0, 'not in tenant_configs or audit_log');
my @a = audit_rows('config.changed', $::A->{id});
is_deeply($a[-1]{detail}, { secret => JSON::PP::true() }, 'audit: only "secret": true');
is($a[-1]{target}, 'providers.openai.api_key', 'audit: the key name');
# re-reading never shows it
for my $tok ($::viewer, $::admin, $::owner) {
    my $g = pcall($tok, GET => '/service/configs');
    ok(index($g->{body}, 'TOPSECRET') < 0, 'GET never shows the value');
    like($g->{body}, qr/"providers.openai.api_key","type":"secret","description":"[^"]+","value":\{"set":true,"last4":"WXYZ"\}/,
         '... only set and last4');
}
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PUT /platform/api/service/configs/providers.anthropic.api_key\n{\"value\": \"sk-ant-api03-abcdefgh\"}"
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 200
--- response_body_like: "value":\{"set":true,"last4":"efgh"\}



=== TEST 12: another tenant sees none of A's settings
--- init
my $r = pcall($::b_admin, GET => '/service/configs');
like($r->{body}, qr/"providers.anthropic.api_key","type":"secret","description":"[^"]+","value":\{"set":false/,
     "A's anthropic key is not B's");
$r = pcall($::admin, PUT => '/service/configs/providers.google.api_key',
           { value => 'AIzaSy-google-0000' }, 'X-Tenant-Slug' => $::B->{slug});
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM tenant_configs WHERE tenant_id = ? AND key LIKE '%google%'},
    undef, $::B->{id});
is($n, 0, 'X-Tenant-Slug (production mode) cannot write into B');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/configs?limit=2&offset=3
--- more_headers eval
"Authorization: Bearer $::b_admin"
--- response_body_like: ^\{"items":\[\{"key":"providers.openai.api_key"[^\]]*"set":true[^\]]*\},\{"key":"providers.anthropic.api_key"[^\]]*"set":false[^\]]*\}\],"total":8,"limit":2,"offset":3\}$



=== TEST 13: plain settings: set and read back
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PUT /platform/api/service/configs/default_rpm\n{\"value\": 3000}",
 "PUT /platform/api/service/configs/default_rpm\n{\"value\": 1}",
 "PUT /platform/api/service/configs/log_prompts\n{\"value\": true}",
 "PUT /platform/api/service/configs/allowed_providers\n{\"value\": [\"anthropic\", \"openai\"]}",
 "PUT /platform/api/service/configs/allowed_providers\n{\"value\": []}",
 "PUT /platform/api/service/configs/providers.azure.endpoint\n{\"value\": \"https://acme.openai.azure.com\"}",
 "PUT /platform/api/service/configs/default_rpm\n{\"value\": 2500}"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
['"key":"default_rpm","type":"integer","description":"[^"]+","value":3000,"is_default":false',
 '"value":1,', '"key":"log_prompts".*"value":true,',
 '"value":\["anthropic","openai"\],', '"value":\[\],',
 '"value":"https://acme.openai.azure.com",', '"value":2500,']



=== TEST 14: bad values: 422, unknown keys: 404, bad bodies: 400/422
--- init
my ($before) = $::dbh->selectrow_array(
    q{SELECT count(*) || '/' || max(updated_at)::text FROM tenant_configs});
$::x = $before;
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "PUT /platform/api/service/configs/$_" }
 "default_rpm\n{\"value\": 0}",
 "default_rpm\n{\"value\": 3001}",
 "default_rpm\n{\"value\": \"60\"}",
 "default_rpm\n{\"value\": 1.5}",
 "default_rpm\n{\"value\": 99999999999999999999}",
 "log_prompts\n{\"value\": \"yes\"}",
 "log_prompts\n{\"value\": 1}",
 "allowed_providers\n{\"value\": [\"openai\", \"bing\"]}",
 "allowed_providers\n{\"value\": [\"openai\", \"openai\"]}",
 "allowed_providers\n{\"value\": \"openai\"}",
 "allowed_providers\n{\"value\": [1]}",
 "providers.openai.api_key\n{\"value\": \"short\"}",
 "providers.openai.api_key\n{\"value\": \"" . ('k' x 513) . "\"}",
 "providers.openai.api_key\n{\"value\": \"sk-with space-123\"}",
 "providers.openai.api_key\n{\"value\": \"sk-newline\\n12345\"}",
 "providers.openai.api_key\n{\"value\": 12345678}",
 "providers.azure.endpoint\n{\"value\": \"ftp://acme.example.com\"}",
 "providers.azure.endpoint\n{\"value\": \"https://\"}",
 "providers.azure.endpoint\n{\"value\": \"https:///path\"}",
 "providers.azure.endpoint\n{\"value\": \"acme.openai.azure.com\"}",
 "providers.azure.endpoint\n{\"value\": \"https://" . ('a' x 520) . "\"}",
 "no_such_key\n{\"value\": 1}",
 "providers.bing.api_key\n{\"value\": \"12345678\"}",
 "%C3%A9%01\n{\"value\": 1}",
 "log_prompts\n{}",
 "log_prompts\n{\"value\": true, \"secret\": true}",
 "log_prompts\n{\"value\": tru",
 "log_prompts\n[true]"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[(422) x 21, 404, 404, 404, 422, 422, 400, 400]
--- response_body_like eval
['between 1 and 3000 \(the pro plan', 'between 1 and 3000', 'between 1 and 3000',
 'between 1 and 3000', 'between 1 and 3000', 'true or false', 'true or false',
 'array of openai, anthropic, google, azure', 'lists \\\\"openai\\\\" twice',
 'array of openai', 'array of openai', '8 to 512 characters', '8 to 512',
 '8 to 512', '8 to 512', '8 to 512', 'https:// URL.*scheme must be',
 'https:// URL.*no host', 'https:// URL.*no host',
 'https:// URL.*scheme must be', 'https:// URL.*512 characters',
 '"unknown_config","message":"no setting \\\\"no_such_key\\\\""',
 'unknown_config', 'no setting \\\\"\?\?\?\\\\"', '"missing_field".*null resets',
 'unknown_field', 'invalid_json', 'invalid_json']



=== TEST 15: nothing changed by the refused requests; viewer and member cannot write
--- init
my ($after) = $::dbh->selectrow_array(
    q{SELECT count(*) || '/' || max(updated_at)::text FROM tenant_configs});
is($after, $::x, 'tenant_configs unchanged');
for my $tok ($::viewer, $::memb) {
    is(pcall($tok, PUT => '/service/configs/log_prompts', { value => JSON::PP::false() })->{status},
       403, 'below admin: 403');
}
--- config
    location /platform/api/ {
        client_max_body_size 8m;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PUT /platform/api/service/configs/log_prompts\n" . '{"value": "' . ('x' x (1100 * 1024)) . '"}'
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 413
--- response_body_like: payload_too_large



=== TEST 16: null resets to the default (a secret is deleted)
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PUT /platform/api/service/configs/providers.anthropic.api_key\n{\"value\": null}",
 "PUT /platform/api/service/configs/allowed_providers\n{\"value\": null}",
 "PUT /platform/api/service/configs/allowed_providers\n{\"value\": null}"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
['"value":\{"set":false,"last4":null\},"is_default":true,"updated_at":null',
 '"value":\["openai","anthropic","google","azure"\],"is_default":true',
 '"is_default":true']



=== TEST 17: the reset removed the rows and was audited
--- init
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM tenant_configs WHERE tenant_id = ?
       AND key IN ('providers.anthropic.api_key', 'allowed_providers')},
    undef, $::A->{id});
is($n, 0, 'rows gone');
my @a = grep { $_->{target} eq 'allowed_providers' } audit_rows('config.changed', $::A->{id});
is_deeply($a[-1]{detail}, { reset => JSON::PP::true() }, 'reset audited');
is_deeply($a[0]{detail}, { value => ['anthropic', 'openai'] }, 'a plain value is audited with it');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/storage
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200
--- response_body: {"retention_days":30,"store_prompts":false,"store_responses":false,"max_retention_days":30,"is_default":true,"updated_at":null,"updated_by":null}



=== TEST 18: storage: partial updates keep the other fields
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PUT /platform/api/service/storage\n{\"store_prompts\": true}",
 "PUT /platform/api/service/storage\n{\"retention_days\": 30, \"store_responses\": true}",
 "PUT /platform/api/service/storage\n{\"retention_days\": 14}",
 "PUT /platform/api/service/storage\n{\"store_prompts\": false}"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
[qr/^\{"retention_days":30,"store_prompts":true,"store_responses":false,"max_retention_days":30,"is_default":false,"updated_at":"[^"]+","updated_by":"$::admin_id"\}$/,
 '^\{"retention_days":30,"store_prompts":true,"store_responses":true,',
 '^\{"retention_days":14,"store_prompts":true,"store_responses":true,',
 '^\{"retention_days":14,"store_prompts":false,"store_responses":true,']



=== TEST 19: storage: bounds from the plan, types, empty and unknown fields
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "PUT /platform/api/service/storage\n$_" }
 '{"retention_days": 31}', '{"retention_days": 0}', '{"retention_days": -5}',
 '{"retention_days": "7"}', '{"retention_days": 7.5}',
 '{"store_prompts": "true"}', '{"store_responses": 1}', '{}',
 '{"retention_days": 7, "purge": true}', '{"retention_days": null}',
 '{"retention_days": 7', '7']
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[(422) x 10, 400, 400]
--- response_body_like eval
['between 1 and 30', 'between 1 and 30', 'between 1 and 30', 'must be an integer',
 'must be an integer', 'true or false', 'true or false', 'missing_field',
 'unknown_field', 'must be an integer', 'invalid_json', 'invalid_json']



=== TEST 20: storage changes are audited; viewer and member get 403
--- init
my @a = audit_rows('storage.changed', $::A->{id});
is(scalar @a, 4, 'four changes audited');
is_deeply($a[-1]{detail}, { retention_days => 14, store_prompts => JSON::PP::false(),
                            store_responses => JSON::PP::true() }, '... with the result');
for my $tok ($::viewer, $::memb) {
    is(pcall($tok, GET => '/service/storage')->{status}, 403, 'GET below admin: 403');
}
my $r = pcall($::b_admin, GET => '/service/storage');
is($r->{json}{is_default}, JSON::PP::true(), "B's storage is untouched");
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
PUT /platform/api/service/storage
{"retention_days": 3}
--- more_headers eval
"Authorization: Bearer $::memb\nContent-Type: application/json"
--- error_code: 403



=== TEST 21: a downgrade lowers what the new plan does not allow
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/subscriptions
{"plan_id": "free"}
--- more_headers eval
"Authorization: Bearer $::owner\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: "plan":"free".*"previous_plan":"pro".*"log_retention_days":7



=== TEST 22: after the downgrade: rpm 120, retention 7, limits of free
--- init
my $r = pcall($::admin, GET => '/service/configs');
my ($rpm) = grep { $_->{key} eq 'default_rpm' } @{ $r->{json}{items} };
is($rpm->{value}, 120, 'default_rpm lowered to the free maximum');
is(pcall($::admin, PUT => '/service/configs/default_rpm', { value => 121 })->{status},
   422, '121 is now refused');
is(pcall($::admin, PUT => '/service/storage', { retention_days => 8 })->{status},
   422, 'retention 8 is now refused');
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM subscriptions WHERE tenant_id = ? AND status = 'active'},
    undef, $::A->{id});
is($n, 1, 'still exactly one active subscription');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/storage
--- more_headers eval
"Authorization: Bearer $::admin"
--- response_body_like: ^\{"retention_days":7,"store_prompts":false,"store_responses":true,"max_retention_days":7,"is_default":false
--- no_error_log
[error]



=== TEST 23: the one-active-subscription rule holds in the database too
--- init
eval {
    $::dbh->do(q{INSERT INTO subscriptions (tenant_id, plan_id) VALUES (?, 'pro')},
               undef, $::A->{id});
};
like($@, qr/subscriptions_one_active_idx/, 'a second active row is refused');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::viewer"
--- response_body_like: "plan":\{"id":"free"
