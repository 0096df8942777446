# Organisations through nginx: create (owner + default plan + audit in one
# transaction), the slug rules, list mine with pagination, slug
# availability, service/info, bad tokens, malformed bodies, and
# X-Tenant-Slug (honoured in dev mode only).
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Org;

use_sidecar();

our $dbh = dbh();
# one user makes more organisations here than the default cap of 5
# (tenants.max_per_user, t/097-harden-tenant.t tests the cap itself)
$dbh->do(q{INSERT INTO global_configs (key, value) VALUES
           ('tenants.max_per_user', '50')});
our $alice = org_user(email => 'alice@example.com', name => 'Alice');
our $bob = org_user(email => 'bob@example.com', name => 'Bob');
our $ga = org_global($alice);
our $gb = org_global($bob);
our ($acme, $info_tok, $other, $sa);

run_tests();

__DATA__

=== TEST 1: create a tenant: 201, the creator is its owner, on the free plan
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/tenants
{"name": "Acme Corp", "slug": "acme"}
--- more_headers eval
"Authorization: Bearer $::ga\nContent-Type: application/json"
--- error_code: 201
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"id":"[0-9a-f-]{36}","name":"Acme Corp","slug":"acme","status":"active","role":"owner","plan":"free","created_at":"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"\}$
--- no_error_log
[error]



=== TEST 2: membership, subscription and audit row were written together
--- init
my $t = $::dbh->selectrow_hashref(q{SELECT * FROM tenants WHERE slug = 'acme'});
$::acme = { id => $t->{id}, slug => 'acme' };
is($t->{created_by}, $::alice, 'created_by is the caller');
my ($role) = $::dbh->selectrow_array(
    'SELECT role FROM memberships WHERE tenant_id = ? AND user_id = ?',
    undef, $t->{id}, $::alice);
is($role, 'owner', 'the creator is owner');
my $subs = $::dbh->selectall_arrayref(
    'SELECT plan_id, status, activated_by FROM subscriptions WHERE tenant_id = ?',
    undef, $t->{id});
is_deeply($subs, [['free', 'active', $::alice]], 'one active free subscription');
my @a = audit_rows('tenant.created', $t->{id});
is(scalar @a, 1, 'audited once');
is($a[0]{actor_id}, $::alice, 'audit: actor');
is($a[0]{detail}{slug}, 'acme', 'audit: detail has the slug');
is($a[0]{client_ip}, '127.0.0.1', 'audit: the client address from X-Real-IP');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants
--- more_headers eval
"Authorization: Bearer $::ga"
--- error_code: 200
--- response_body_like: ^\{"items":\[\{"id":"[0-9a-f-]{36}","name":"Acme Corp","slug":"acme","status":"active","role":"owner","plan":"free","created_at":"[^"]+","joined_at":"[^"]+"\}\],"total":1,"limit":50,"offset":0\}$
--- no_error_log
[error]



=== TEST 3: a taken slug: 409, and nothing half-created
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/tenants
{"name": "Another Acme", "slug": "acme"}
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 409
--- response_body_like: ^\{"error":\{"code":"slug_taken","message":"slug \\"acme\\" is already taken","request_id":"[\w-]+"\}\}$



=== TEST 4: the loser of a slug race holds nothing
--- init
my ($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM memberships WHERE user_id = ?', undef, $::bob);
is($n, 0, 'bob got no membership from the 409');
my ($s) = $::dbh->selectrow_array('SELECT count(*) FROM subscriptions');
is($s, 1, 'no orphan subscription');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants
--- more_headers eval
"Authorization: Bearer $::gb"
--- response_body: {"items":[],"total":0,"limit":50,"offset":0}



=== TEST 5: reserved slugs: 422
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { qq{POST /platform/api/global/tenants\n{"name": "X", "slug": "$_"}} }
 qw(admin api www platform trueport trueportai health internal static app)]
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 422
--- response_body_like: "code":"slug_reserved"



=== TEST 6: invalid slugs: 422 with the rule broken
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { qq{POST /platform/api/global/tenants\n{"name": "X", "slug": "$_"}} }
 'ab', 'a' x 41, 'Acme', '-acme', 'acme-', 'ac_me', 'ac me', 'acm\u00e9', '']
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code eval
[422, 422, 422, 422, 422, 422, 422, 422, 422]
--- response_body_like eval
['"code":"invalid_slug".*3 to 40', '3 to 40', 'lowercase letters, digits',
 'start or end with a hyphen', 'start or end with a hyphen',
 'lowercase letters', 'lowercase letters', 'slug \\\\"acm\?\?\\\\" is invalid',
 '"code":"invalid_field".*must not be empty']



=== TEST 7: the slug limits themselves are fine: 3 and 40 characters
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { qq{POST /platform/api/global/tenants\n{"name": "Edge", "slug": "$_"}} }
 'a-1', 'abcdefghij0123456789abcdefghij012345678z', '0rg']
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 201
--- no_error_log
[error]



=== TEST 8: missing and mistyped fields: 422
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /platform/api/global/tenants\n{\"slug\": \"no-name\"}",
 "POST /platform/api/global/tenants\n{\"name\": \"No slug\"}",
 "POST /platform/api/global/tenants\n{\"name\": 42, \"slug\": \"typed\"}",
 "POST /platform/api/global/tenants\n{\"name\": \"T\", \"slug\": [\"typed\"]}",
 "POST /platform/api/global/tenants\n{\"name\": \"   \", \"slug\": \"blank\"}",
 "POST /platform/api/global/tenants\n{\"name\": \"a\\u0007b\", \"slug\": \"ctl\"}",
 "POST /platform/api/global/tenants\n{\"name\": \"" . ('n' x 201) . "\", \"slug\": \"long-name\"}",
 "POST /platform/api/global/tenants\n{\"name\": \"T\", \"slug\": \"extra\", \"plan\": \"pro\"}"]
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 422
--- response_body_like eval
['"missing_field".*\\\\"name\\\\" is required', '\\\\"slug\\\\" is required',
 '\\\\"name\\\\" must be a string', '\\\\"slug\\\\" must be a string',
 '1 to 200 characters', '1 to 200 characters', '1 to 200 characters',
 '"unknown_field".*\\\\"plan\\\\"']



=== TEST 9: a 200-character name (multi-byte) is fine
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/tenants\n{\"name\": \"" . ("\xc3\xa9" x 200) . "\", \"slug\": \"accents\"}"
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: "slug":"accents"



=== TEST 10: malformed JSON, a non-object, an empty body: 400
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /platform/api/global/tenants\n{\"name\": \"x\", \"slug\":",
 "POST /platform/api/global/tenants\n[\"name\", \"slug\"]",
 "POST /platform/api/global/tenants\n\"acme\"",
 "POST /platform/api/global/tenants"]
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 400
--- response_body_like: "code":"invalid_json"



=== TEST 11: an oversize body: 413
--- config
    location /platform/api/ {
        client_max_body_size 8m;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/tenants\n" . '{"name": "' . ('x' x (1100 * 1024)) . '", "slug": "huge"}'
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 413
--- response_body_like: "code":"payload_too_large"



=== TEST 12: bad tokens: 401 on create and on list
--- init
my %bad = bad_tokens($::bob);
for my $name (sort keys %bad) {
    my $r = pcall($bad{$name}, POST => '/global/tenants',
                  { name => 'X', slug => "bad-$name" =~ s/ /-/gr });
    is($r->{status}, 401, "create, $name: 401");
    like($r->{body}, qr/"code":"(unauthorized|invalid_token)"/,
         "create, $name: error code");
    $r = pcall($bad{$name}, GET => '/global/tenants');
    is($r->{status}, 401, "list, $name: 401");
}
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM tenants WHERE slug LIKE 'bad-%'});
is($n, 0, 'no tenant was made by a bad token');
# a deleted user's token
my $ghost = org_global('00000000-0000-4000-8000-000000000000');
is(pcall($ghost, GET => '/global/tenants')->{status}, 401,
   'a token for no user: 401');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants
--- more_headers
Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.
--- error_code: 401



=== TEST 13: list pagination: bad bounds are 400
--- init
for my $i (1 .. 4) {
    my $r = pcall($::gb, POST => '/global/tenants',
                  { name => "Page $i", slug => "page-$i" });
    is($r->{status}, 201, "page-$i created");
}
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "GET /platform/api/global/tenants?$_" }
 'limit=0', 'limit=201', 'limit=-1', 'limit=abc', 'offset=-1', 'offset=x',
 'limit=', 'limit=1e2']
--- more_headers eval
"Authorization: Bearer $::gb"
--- error_code: 400
--- response_body_like: "code":"invalid_pagination"



=== TEST 14: list pagination: limit=200, a page, beyond the end
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /platform/api/global/tenants?limit=200",
 "GET /platform/api/global/tenants?limit=2&offset=4",
 "GET /platform/api/global/tenants?offset=50"]
--- more_headers eval
"Authorization: Bearer $::gb"
--- error_code: 200
--- response_body_like eval
['"total":8,"limit":200,"offset":0\}$',
 '^\{"items":\[\{[^\]]*"slug":"page-1"[^\]]*\},\{[^\]]*"slug":"page-2".*\],"total":8,"limit":2,"offset":4\}$',
 '^\{"items":\[\],"total":8,"limit":50,"offset":50\}$']



=== TEST 15: my list never shows another user's tenants
--- init
my $r = pcall($::ga, GET => '/global/tenants?limit=200');
is_deeply([map { $_->{slug} } @{ $r->{json}{items} }], ['acme'],
          'alice sees only acme');
$r = pcall($::gb, GET => '/global/tenants?limit=200');
ok(!(grep { $_->{slug} eq 'acme' } @{ $r->{json}{items} }),
   'bob does not see acme');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants
--- more_headers eval
"Authorization: Bearer $::ga"
--- response_body_like: "total":1,



=== TEST 16: slug availability (public): available, taken, reserved, invalid
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /platform/api/global/tenants/check-availability?slug=new-co",
 "GET /platform/api/global/tenants/check-availability?slug=acme",
 "GET /platform/api/global/tenants/check-availability?slug=admin",
 "GET /platform/api/global/tenants/check-availability?slug=Acme",
 "GET /platform/api/global/tenants/check-availability?slug=ab",
 "GET /platform/api/global/tenants/check-availability?slug=-ab-",
 "GET /platform/api/global/tenants/check-availability?slug=caf%C3%A9%22%01",
 "GET /platform/api/global/tenants/check-availability?slug="]
--- error_code: 200
--- response_body eval
['{"slug":"new-co","available":true,"reason":null}',
 '{"slug":"acme","available":false,"reason":"taken"}',
 '{"slug":"admin","available":false,"reason":"reserved"}',
 '{"slug":"Acme","available":false,"reason":"invalid: only lowercase letters, digits and hyphens"}',
 '{"slug":"ab","available":false,"reason":"invalid: must be 3 to 40 characters"}',
 '{"slug":"-ab-","available":false,"reason":"invalid: must not start or end with a hyphen"}',
 '{"slug":"caf??\"?","available":false,"reason":"invalid: only lowercase letters, digits and hyphens"}',
 '{"slug":"","available":false,"reason":"invalid: must be 3 to 40 characters"}']
--- no_error_log
[error]



=== TEST 17: slug availability without a slug: 400
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants/check-availability
--- error_code: 400
--- response_body_like: "code":"missing_parameter"



=== TEST 18: the default plan is an admin setting
--- init
$::dbh->do(q{INSERT INTO global_configs (key, value) VALUES ('default_plan', '"pro"')});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/tenants
{"name": "Pro Co", "slug": "pro-co"}
--- more_headers eval
"Authorization: Bearer $::gb\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: "slug":"pro-co","status":"active","role":"owner","plan":"pro"



=== TEST 19: service/info: tenant, role, env, plan, limits, usage
--- init
$::dbh->do(q{DELETE FROM global_configs WHERE key = 'default_plan'});
$::info_tok = org_scoped($::alice, $::acme, 'owner', env => 'staging');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::info_tok"
--- error_code: 200
--- response_body_like: ^\{"tenant":\{"id":"[0-9a-f-]{36}","name":"Acme Corp","slug":"acme","status":"active","created_at":"[^"]+","environments":\["production","staging","development"\]\},"role":"owner","env":"staging","plan":\{"id":"free","name":"Free","price_cents":0,"started_at":"[^"]+"\},"limits":\{"default_rpm":60,"max_rpm":120,"max_keys":5,"monthly_requests":10000,"log_retention_days":7\},"usage":\{"month":"\d{4}-\d\d","requests":0,"total_tokens":0,"cost_micro_usd":0\}\}$
--- no_error_log
[error]



=== TEST 20: service/info counts this month's usage of this tenant only
--- init
$::other = org_tenant();
$::dbh->do(q{INSERT INTO usage_logs (created_at, request_id, tenant_id, provider,
             total_tokens, cost_micro_usd) VALUES
             (now(), 'r1', ?, 'openai', 100, 250), (now(), 'r2', ?, 'openai', 50, 5),
             (now() - interval '40 days', 'r0', ?, 'openai', 1000, 1000),
             (now(), 'r3', ?, 'openai', 7, 7)},
           undef, $::acme->{id}, $::acme->{id}, $::acme->{id}, $::other->{id});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::info_tok"
--- error_code: 200
--- response_body_like: "usage":\{"month":"\d{4}-\d\d","requests":2,"total_tokens":150,"cost_micro_usd":255\}\}$



=== TEST 21: service/info: every role may read it; tokens that may not
--- init
for my $role (qw(viewer member admin)) {
    my ($tok) = org_member($::acme, $role);
    my $r = pcall($tok, GET => '/service/info');
    is($r->{status}, 200, "$role: 200");
    is($r->{json}{role}, $role, "$role: the role is the membership's");
}
my %bad = bad_tokens($::alice, $::acme);
for my $name (sort keys %bad) {
    is(pcall($bad{$name}, GET => '/service/info')->{status}, 401,
       "info, $name: 401");
}
my $r = pcall($::ga, GET => '/service/info');
is($r->{status}, 401, 'a global token: 401');
like($r->{body}, qr/scoped_token_required/, '... asks for a scoped token');
# a token naming a tenant the user does not belong to
$r = pcall(org_scoped($::bob, $::acme, 'owner'), GET => '/service/info');
is($r->{status}, 403, 'a non-member with a forged role claim: 403');
unlike($r->{body}, qr/Acme/, '... and nothing of the tenant');
# the membership, not the token, decides the role
my $tok = org_scoped($::alice, $::acme, 'viewer');
is(pcall($tok, GET => '/service/info')->{json}{role}, 'owner',
   'the role claim is not trusted');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- error_code: 401



=== TEST 22: a suspended tenant: 403 on service routes; still listed as mine
--- init
$::dbh->do(q{UPDATE tenants SET status = 'suspended' WHERE id = ?}, undef,
           $::other->{id});
my ($tok) = org_member($::other, 'owner');
$::sa = $tok;
my $r = pcall($::ga, GET => '/global/tenants');
is($r->{status}, 200, 'the global list still works');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::sa"
--- error_code: 403
--- response_body_like: "code":"tenant_suspended"



=== TEST 23: production mode: X-Tenant-Slug is ignored
--- init
# alice is a viewer of pro-co too: only dev mode could switch her to it
my ($pid) = $::dbh->selectrow_array(q{SELECT id FROM tenants WHERE slug = 'pro-co'});
$::dbh->do(q{INSERT INTO memberships (tenant_id, user_id, role) VALUES (?, ?, 'viewer')},
           undef, $pid, $::alice);
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::info_tok\nX-Tenant-Slug: pro-co"
--- error_code: 200
--- response_body_like: "slug":"acme".*"role":"owner"



=== TEST 24: dev mode: X-Tenant-Slug picks the tenant (membership still required)
--- init
restart_sidecar(TRUEPORT_DEV_MODE => 1);
my $r = pcall($::info_tok, GET => '/service/info', undef,
              'X-Tenant-Slug' => 'acme');
is($r->{json}{tenant}{slug}, 'acme', 'dev mode: own slug');
$r = pcall($::info_tok, GET => '/service/info', undef,
           'X-Tenant-Slug' => $::other->{slug});
is($r->{status}, 403, 'dev mode: a tenant the user is not in: 403');
$r = pcall($::info_tok, GET => '/service/info', undef,
           'X-Tenant-Slug' => 'no-such-tenant');
is($r->{status}, 403, 'dev mode: an unknown slug: 403');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::info_tok\nX-Tenant-Slug: pro-co"
--- error_code: 200
--- response_body_like: "slug":"pro-co".*"role":"viewer".*"plan":\{"id":"pro"



=== TEST 25: back in production mode, the header is ignored again
--- init
restart_sidecar(TRUEPORT_DEV_MODE => 0);
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::info_tok\nX-Tenant-Slug: pro-co"
--- error_code: 200
--- response_body_like: "slug":"acme"



=== TEST 26: wrong methods: 405 with Allow
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["DELETE /platform/api/global/tenants", "POST /platform/api/service/info"]
--- error_code: 405
--- response_headers_like
Allow: ^(POST, GET|GET)$
--- no_error_log
[error]
