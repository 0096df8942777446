# The platform admin API through nginx: platform admins only (a tenant
# owner is one step too low), tenants (list, filter, detail, suspend and
# reactivate), users (search with LIKE wildcards taken literally), stats,
# the global settings allowlist (model prices merge into the price table),
# and the audit trail.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Org;

use_sidecar();

our $dbh = dbh();
our ($root, $root_id) = org_platform_admin('Root@Example.COM');
our $A = org_tenant(name => 'Acme', slug => 'acme');
our ($owner, $owner_id) = org_member($A, 'owner', email => 'owner@acme.test');
our ($memb) = org_member($A, 'member', email => 'UPPER.Case@acme.test');
our $B = org_tenant(name => 'Bravo Labs', slug => 'bravo', plan => 'pro');
our ($b_owner) = org_member($B, 'owner', email => 'per%cent@bravo.test');
our $S = org_tenant(name => 'Sleepy', slug => 'sleepy', status => 'suspended');
our $u1 = org_user(email => 'under_score@example.com');
our $u2 = org_user(email => 'underXscore@example.com');
our $g_owner = org_global($owner_id);
# the root admin scoped into a tenant is still a platform admin
our $root_scoped;
our ($x, $y);

our @ADMIN_ROUTES = (
    [GET => '/admin/tenants'],
    [GET => "/admin/tenants/$A->{id}"],
    [PUT => "/admin/tenants/$A->{id}/status", { status => 'suspended' }],
    [GET => '/admin/users'],
    [GET => '/admin/stats'],
    [GET => '/admin/configs'],
    [PUT => '/admin/configs/signup_enabled', { value => JSON::PP::false() }],
    [GET => '/admin/audit-log'],
);

run_tests();

__DATA__

=== TEST 1: a tenant owner (not a platform admin): 403 on admin routes
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/stats
--- more_headers eval
"Authorization: Bearer $::g_owner"
--- error_code: 403
--- response_body_like: platform admin only



=== TEST 1b: ... every admin route, with a global or a scoped owner token
--- init
for my $tok ($::owner, $::g_owner) {
    for my $rt (@::ADMIN_ROUTES) {
        my $r = pcall($tok, @$rt);
        is($r->{status}, 403, "owner: $rt->[0] $rt->[1]: 403");
        like($r->{body}, qr/"code":"forbidden","message":"platform admin only"/,
             '... platform admin only');
    }
}
my ($st) = $::dbh->selectrow_array('SELECT status FROM tenants WHERE id = ?',
                                   undef, $::A->{id});
is($st, 'active', 'nothing was suspended');
my ($n) = $::dbh->selectrow_array('SELECT count(*) FROM global_configs');
is($n, 0, 'nothing was configured');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/tenants
--- more_headers eval
"Authorization: Bearer $::owner"
--- error_code: 403



=== TEST 2: bad tokens: 401 on every admin route
--- init
my %bad = bad_tokens($::root_id);
for my $name (sort keys %bad) {
    for my $rt (@::ADMIN_ROUTES) {
        is(pcall($bad{$name}, @$rt)->{status}, 401, "$rt->[0] $rt->[1], $name: 401");
    }
}
# a platform admin demoted since the token was issued
my ($tok, $id) = org_platform_admin('former@example.com');
$::dbh->do('UPDATE users SET is_platform_admin = false WHERE id = ?', undef, $id);
is(pcall($tok, GET => '/admin/stats')->{status}, 403,
   'a demoted admin: 403 with the old token');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/tenants
--- error_code: 401
--- response_body_like: "code":"unauthorized"



=== TEST 3: list every tenant, oldest first, with plan and member count
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/tenants
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code: 200
--- response_body_like eval
my $t = '\{"id":"[0-9a-f-]{36}","name":"%s","slug":"%s","status":"%s","status_reason":null,"plan":"%s","members":%d,"created_at":"[^"]+","updated_at":"[^"]+"\}';
my $items = CORE::join ',', sprintf($t, 'Acme', 'acme', 'active', 'free', 2),
    sprintf($t, 'Bravo Labs', 'bravo', 'active', 'pro', 1),
    sprintf($t, 'Sleepy', 'sleepy', 'suspended', 'free', 0);
qr/^\{"items":\[$items\],"total":3,"limit":50,"offset":0\}$/
--- no_error_log
[error]



=== TEST 4: tenant filters and pagination
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "GET /platform/api/admin/tenants?$_" }
 'status=suspended', 'status=active', 'status=deleted', 'status=',
 'q=LABS', 'q=%25', 'q=a&status=active&limit=1&offset=1',
 'limit=0', 'limit=201', 'limit=-1', 'limit=abc', 'limit=200', 'offset=3',
 'q=%FF%FE', 'q=' . ('x' x 201)]
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code eval
[200, 200, 400, 400, 200, 200, 200, 400, 400, 400, 400, 200, 200, 400, 400]
--- response_body_like eval
['^\{"items":\[\{[^\]]*"slug":"sleepy"[^\]]*\}\],"total":1,',
 '"total":2,', 'status must be active or suspended', 'invalid_filter',
 '^\{"items":\[\{[^\]]*"slug":"bravo"[^\]]*\}\],"total":1,',
 '^\{"items":\[\],"total":0,',
 '^\{"items":\[\{[^\]]*"slug":"bravo"[^\]]*\}\],"total":2,"limit":1,"offset":1\}$',
 'invalid_pagination', 'invalid_pagination', 'invalid_pagination',
 'invalid_pagination', '"limit":200', '^\{"items":\[\],"total":3,"limit":50,"offset":3\}$',
 'q must be text', 'q must be text']



=== TEST 5: tenant detail: owners, plan, limits, keys, usage
--- init
$::dbh->do(q{INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env)
             VALUES (?, 'k1', 'sk-aaaaa', repeat('a', 64), 'production'),
                    (?, 'k2', 'sk-bbbbb', repeat('b', 64), 'production'),
                    (?, 'k3', 'sk-ccccc', repeat('c', 64), 'production')},
           undef, $::B->{id}, $::B->{id}, $::A->{id});
$::dbh->do(q{UPDATE api_keys SET deleted_at = now() WHERE name = 'k2'});
$::dbh->do(q{INSERT INTO usage_logs (created_at, request_id, tenant_id, provider,
             total_tokens, cost_micro_usd) VALUES (now(), 'q1', ?, 'anthropic', 10, 20),
             (now(), 'q2', ?, 'anthropic', 1, 2)}, undef, $::B->{id}, $::A->{id});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /platform/api/admin/tenants/$::B->{id}"
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code: 200
--- response_body_like eval
qr/^\{"id":"$::B->{id}","name":"Bravo Labs","slug":"bravo","status":"active","status_reason":null,"plan":"pro","members":1,"created_at":"[^"]+","updated_at":"[^"]+","owners":\[\{"user_id":"[0-9a-f-]{36}","email":"per%cent\@bravo.test","name":"[^"]+"\}\],"subscription":\{"plan":"pro","plan_name":"Pro","started_at":"[^"]+"\},"limits":\{"default_rpm":600,"max_rpm":3000,"max_keys":50,"monthly_requests":1000000,"log_retention_days":30\},"keys":1,"usage":\{"month":"\d{4}-\d\d","requests":1,"total_tokens":10,"cost_micro_usd":20\}\}$/
--- no_error_log
[error]



=== TEST 6: tenant detail: unknown and malformed ids are 404
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /platform/api/admin/tenants/00000000-0000-4000-8000-000000000000",
 "GET /platform/api/admin/tenants/not-a-uuid",
 "GET /platform/api/admin/tenants/acme",
 "GET /platform/api/admin/tenants/$::A->{id}x",
 "PUT /platform/api/admin/tenants/00000000-0000-4000-8000-000000000000/status\n{\"status\": \"active\"}",
 "PUT /platform/api/admin/tenants/zzz/status\n{\"status\": \"active\"}"]
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code: 404
--- response_body_like: "code":"not_found"



=== TEST 7: suspend a tenant: 200, with the reason
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PUT /platform/api/admin/tenants/$::A->{id}/status\n{\"status\": \"suspended\", \"reason\": \"unpaid invoice\"}"
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
qr/^\{"id":"$::A->{id}","name":"Acme","slug":"acme","status":"suspended","status_reason":"unpaid invoice","plan":"free","members":2,/
--- no_error_log
[error]



=== TEST 8: suspended: its members get 403 at once; audited
--- init
my @a = audit_rows('tenant.status_changed', $::A->{id});
is(scalar @a, 1, 'audited');
is($a[0]{actor_id}, $::root_id, '... by the platform admin');
is_deeply($a[0]{detail}, { from => 'active', to => 'suspended',
                           reason => 'unpaid invoice' }, '... from, to, reason');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/members
--- more_headers eval
"Authorization: Bearer $::owner"
--- error_code: 403
--- response_body_like: "code":"tenant_suspended"



=== TEST 9: reactivate: the members are back; the reason is cleared
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PUT /platform/api/admin/tenants/$::A->{id}/status\n{\"status\": \"active\", \"reason\": null}",
 "GET /platform/api/service/info"]
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code eval
[200, 401]
--- response_body_like eval
['"status":"active","status_reason":null', 'scoped_token_required']



=== TEST 10: status bodies: 422 bad values, 400 malformed, 413 oversize
--- init
is(pcall($::owner, GET => '/service/info')->{status}, 200, 'the owner is back in');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "PUT /platform/api/admin/tenants/$::A->{id}/status\n$_" }
 '{"status": "deleted"}', '{"status": "Active"}', '{}', '{"status": true}',
 '{"status": "suspended", "reason": 5}',
 '{"status": "suspended", "reason": "' . ('r' x 501) . '"}',
 '{"status": "suspended", "notify": true}', '{"status": "suspended"',
 '[]']
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code eval
[422, 422, 422, 422, 422, 422, 422, 400, 400]
--- response_body_like eval
['must be active or suspended', 'must be active or suspended', 'missing_field',
 'must be a string', 'must be a string', 'at most 500', 'unknown_field',
 'invalid_json', 'invalid_json']



=== TEST 11: users: everyone, oldest first, with their tenant count
--- init
my ($st) = $::dbh->selectrow_array('SELECT status FROM tenants WHERE id = ?',
                                   undef, $::A->{id});
is($st, 'active', 'the refused requests changed nothing');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/users?limit=2
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code: 200
--- response_body_like eval
qr/^\{"items":\[\{"id":"$::root_id","email":"root\@example.com","name":"Platform admin","is_platform_admin":true,"tenants":0,"created_at":"[^"]+"\},\{"id":"$::owner_id","email":"owner\@acme.test","name":"User \d+","is_platform_admin":false,"tenants":1,"created_at":"[^"]+"\}\],"total":7,"limit":2,"offset":0\}$/



=== TEST 12: user search: case-insensitive substring, wildcards literal
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "GET /platform/api/admin/users?$_" }
 'email=ACME.TEST', 'email=upper.case', 'email=%25', 'email=_', 'email=under_',
 'email=%5C', 'email=nobody', 'email=', 'email=' . ('e' x 321), 'email=%FF',
 'limit=0', 'offset=100']
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 400, 400, 400, 200]
--- response_body_like eval
['^\{"items":\[\{[^\]]*"email":"owner\@acme.test"[^\]]*"email":"upper.case\@acme.test"[^\]]*\}\],"total":2,',
 '"email":"upper.case\@acme.test".*"total":1,',
 '^\{"items":\[\{[^\]]*"email":"per%cent\@bravo.test"[^\]]*\}\],"total":1,',
 '^\{"items":\[\{[^\]]*"email":"under_score\@example.com"[^\]]*\}\],"total":1,',
 '"total":1,', '"total":0,', '"total":0,', '"total":7,',
 'email must be text', 'email must be text',
 'invalid_pagination', '^\{"items":\[\],"total":7,"limit":50,"offset":100\}$']



=== TEST 13: platform stats
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/stats
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code: 200
--- response_body_like: ^\{"tenants":3,"tenants_active":2,"tenants_suspended":1,"users":7,"platform_admins":1,"keys":2,"requests":2,"total_tokens":11,"cost_micro_usd":22,"month":"\d{4}-\d\d"\}$
--- no_error_log
[error]



=== TEST 14: global settings: the allowlist with defaults and the price table
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/configs
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code: 200
--- response_body_like: ^\{"items":\[\{"key":"model_prices","type":"object","description":"[^"]+","value":\{.*"openai":\{.*"gpt-4o":\{"input":2.5,"output":10,"cached":1.25\}.*\},"is_default":true,"updated_at":null,"updated_by":null\},\{"key":"signup_enabled","type":"boolean","description":"[^"]+","value":true,"is_default":true,"updated_at":null,"updated_by":null\},\{"key":"default_plan","type":"plan","description":"[^"]+","value":"free","is_default":true,"updated_at":null,"updated_by":null\},\{"key":"tenants.max_per_user","type":"integer","description":"[^"]+","value":5,"is_default":true,"updated_at":null,"updated_by":null\}\],"total":4,"limit":50,"offset":0\}$



=== TEST 15: model prices merge: set, change, remove (null)
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
PUT /platform/api/admin/configs/model_prices
{"value": {"openai": {"gpt-5": {"input": 1.25, "output": 10, "cached": 0.125}, "gpt-4o": {"input": 2, "output": 8}, "gpt-4o-mini": null}, "google": {"gemini-2.5-pro": {"input": 1.25, "output": 10, "cached": null}}}}
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
qr/^\{"key":"model_prices","type":"object","description":"[^"]+","value":\{.*"gpt-5":\{"input":1.25,"output":10,"cached":0.125\}.*\},"is_default":false,"updated_at":"[^"]+","updated_by":"$::root_id"\}$/
--- no_error_log
[error]



=== TEST 16: the price table the ingester reads has the change; audited
--- init
my $p = $::dbh->selectall_hashref(
    q{SELECT provider || '/' || model AS k, input_per_m::float8 AS i,
             output_per_m::float8 AS o, cached_per_m::float8 AS c
        FROM model_prices}, 'k');
is_deeply([@{ $p->{'openai/gpt-5'} }{qw(i o c)}], [1.25, 10, 0.125], 'gpt-5 added');
is_deeply([@{ $p->{'openai/gpt-4o'} }{qw(i o c)}], [2, 8, undef], 'gpt-4o changed');
ok(!$p->{'openai/gpt-4o-mini'}, 'gpt-4o-mini removed');
ok($p->{'anthropic/claude-3-5-haiku-20241022'}, 'others untouched');
is_deeply([@{ $p->{'google/gemini-2.5-pro'} }{qw(i o c)}], [1.25, 10, undef],
          'cached may be null');
my @a = audit_rows('global_config.changed');
is(scalar @a, 1, 'audited');
is($a[0]{target}, 'model_prices', '... the key');
ok(!defined $a[0]{tenant_id}, '... platform-wide (no tenant)');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/admin/configs?limit=1
--- more_headers eval
"Authorization: Bearer $::root"
--- response_body_like: "gpt-5":\{"input":1.25,"output":10,"cached":0.125\}.*"is_default":false.*"total":4,"limit":1,"offset":0\}$



=== TEST 17: bad model prices: 422, and nothing changes
--- init
($::x) = $::dbh->selectrow_array(
    q{SELECT count(*) || '/' || sum(input_per_m + output_per_m) FROM model_prices});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "PUT /platform/api/admin/configs/model_prices\n{\"value\": $_}" }
 'null', '[]', '"cheap"', '{"bing": {"m": {"input": 1, "output": 1}}}',
 '{"openai": []}', '{"openai": {"m": 5}}',
 '{"openai": {"m": {"input": -1, "output": 1}}}',
 '{"openai": {"m": {"input": "1", "output": 1}}}',
 '{"openai": {"m": {"input": 1}}}',
 '{"openai": {"m": {"input": 1, "output": 1, "cached": -0.5}}}',
 '{"openai": {"m": {"input": 1, "output": 10000001}}}',
 '{"openai": {"m": {"input": 1, "output": 1e400}}}',
 '{"openai": {"m": {"input": 1, "output": 1, "per": "token"}}}',
 '{"openai": {"has space": {"input": 1, "output": 1}}}',
 '{"openai": {"": {"input": 1, "output": 1}}}',
 '{"openai": {"' . ('m' x 129) . '": {"input": 1, "output": 1}}}']
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code: 422
--- response_body_like eval
['cannot be reset', 'model_prices must be', 'model_prices must be',
 'unknown provider \\\\"bing\\\\"', 'model_prices must be', 'model_prices must be',
 'openai/m: input and output', 'openai/m: input and output',
 'openai/m: input and output', 'openai/m: input and output',
 'from 0 to 1000000', 'from 0 to 1000000', 'model_prices must be',
 'model names are 1 to 128', 'model names are 1 to 128',
 'model names are 1 to 128']



=== TEST 18: signup can be switched off (registration refuses), default plan set
--- init
my ($now) = $::dbh->selectrow_array(
    q{SELECT count(*) || '/' || sum(input_per_m + output_per_m) FROM model_prices});
is($now, $::x, 'the refused price updates changed nothing');
my $r = pcall($::root, PUT => '/admin/configs/signup_enabled', { value => JSON::PP::false() });
is($r->{status}, 200, 'signup_enabled false: 200');
like($r->{body}, qr/"value":false,"is_default":false/, '... stored');
$r = pcall(undef, POST => '/global/auth/register',
           { email => 'newbie@example.com', password => 'a long enough password', name => 'N' });
is($r->{status}, 403, 'registration is refused');
$r = pcall($::root, PUT => '/admin/configs/signup_enabled', { value => undef });
like($r->{body}, qr/"value":true,"is_default":true/, 'null resets to the default');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PUT /platform/api/admin/configs/default_plan\n{\"value\": \"enterprise\"}",
 "PUT /platform/api/admin/configs/default_plan\n{\"value\": \"gold\"}",
 "PUT /platform/api/admin/configs/default_plan\n{\"value\": 3}",
 "PUT /platform/api/admin/configs/signup_enabled\n{\"value\": \"no\"}",
 "PUT /platform/api/admin/configs/no_such\n{\"value\": 1}",
 "PUT /platform/api/admin/configs/signup_enabled\n{}",
 "PUT /platform/api/admin/configs/signup_enabled\n{\"value\": true, \"x\": 1}",
 "PUT /platform/api/admin/configs/signup_enabled\n{\"value\": tr"]
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code eval
[200, 422, 422, 422, 404, 422, 422, 400]
--- response_body_like eval
['"key":"default_plan","type":"plan","description":"[^"]+","value":"enterprise","is_default":false',
 'no plan \\\\"gold\\\\"', 'must be a plan id', 'true or false',
 '"unknown_config","message":"no setting \\\\"no_such\\\\""', 'missing_field',
 'unknown_field', 'invalid_json']



=== TEST 19: a new tenant starts on the admin's default plan
--- init
$::x = org_global($::u1);
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/tenants
{"name": "Big Co", "slug": "big-co"}
--- more_headers eval
"Authorization: Bearer $::x\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: "plan":"enterprise"



=== TEST 20: an oversize admin body: 413
--- config
    location /platform/api/ {
        client_max_body_size 8m;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PUT /platform/api/admin/configs/model_prices\n" . '{"value": {"openai": {"' . ('m' x (1100 * 1024)) . '": {"input": 1, "output": 1}}}}'
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code: 413
--- response_body_like: payload_too_large



=== TEST 21: the platform audit trail, filtered by tenant and action
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /platform/api/admin/audit-log?tenant_id=$::A->{id}",
 "GET /platform/api/admin/audit-log?action=global_config.",
 "GET /platform/api/admin/audit-log?action=tenant.created",
 "GET /platform/api/admin/audit-log?limit=1",
 "GET /platform/api/admin/audit-log?tenant_id=acme",
 "GET /platform/api/admin/audit-log?action=DROP%20TABLE",
 "GET /platform/api/admin/audit-log?action=",
 "GET /platform/api/admin/audit-log?limit=201"]
--- more_headers eval
"Authorization: Bearer $::root"
--- error_code eval
[200, 200, 200, 200, 400, 400, 400, 400]
--- response_body_like eval
[qr/^\{"items":\[\{"id":\d+,"tenant_id":"$::A->{id}","actor_id":"$::root_id","actor_email":"root\@example.com","action":"tenant.status_changed","target":"$::A->{id}","detail":\{"to":"active","from":"suspended","reason":null\},"client_ip":"127.0.0.1","created_at":"[^"]+"\},\{[^\]]*"detail":\{"to":"suspended","from":"active","reason":"unpaid invoice"\}[^\]]*\}\],"total":2,"limit":50,"offset":0\}$/,
 '"total":4,', '^\{"items":\[\{[^\]]*"target":"[0-9a-f-]{36}"[^\]]*\}\],"total":1,',
 '"total":7,"limit":1,', 'tenant_id must be an id', 'action must be',
 'action must be', 'invalid_pagination']



=== TEST 22: a tenant admin sees its own trail only; a member cannot
--- init
my $r = pcall($::owner, GET => '/service/audit-log');
is($r->{status}, 200, 'owner: 200');
is($r->{json}{total}, 2, "A's two status changes");
ok(!(grep { $_->{tenant_id} ne $::A->{id} } @{ $r->{json}{items} }),
   'only rows of A');
is(pcall($::memb, GET => '/service/audit-log')->{status}, 403, 'member: 403');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/audit-log?action=member.
--- more_headers eval
"Authorization: Bearer $::owner"
--- error_code: 200
--- response_body: {"items":[],"total":0,"limit":50,"offset":0}
