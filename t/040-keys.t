# The keys API through nginx: create (the key shown once, only its SHA-256
# stored), list with filters and pagination, update, soft delete, the
# plan's limits, roles, tenant isolation, malformed input.
use lib 't/lib';
use Test::TruePort;
use Test::More;
use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();

use_sidecar();

our $K = '/trueportai-services/api/v1/keys';
our $dbh = dbh();
my $n = 0;

# A tenant (free plan unless told) and its members' scoped tokens.
sub tenant {
    my ($plan) = @_;
    $n++;
    my ($id) = $dbh->selectrow_array(
        'INSERT INTO tenants (name, slug) VALUES (?, ?) RETURNING id', undef,
        "Tenant $n", "tenant-$n-$$");
    $dbh->do('INSERT INTO subscriptions (tenant_id, plan_id) VALUES (?, ?)',
             undef, $id, $plan) if $plan;
    return $id;
}

sub member {
    my ($tenant, $role, $env) = @_;
    $n++;
    my ($user) = $dbh->selectrow_array(
        q{INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id},
        undef, "user$n-$$\@example.com");
    $dbh->do('INSERT INTO memberships (tenant_id, user_id, role) VALUES (?, ?, ?)',
             undef, $tenant, $user, $role);
    return jwt({ sub => $user, tid => $tenant, role => $role,
                 env => $env // 'production' });
}

# api() with a bearer token; BODY a reference (JSON) or a raw string.
sub call {
    my ($token, $method, $path, $body, %h) = @_;
    return api($method, "$K$path", $body,
               { ($token ? (Authorization => "Bearer $token") : ()), %h });
}

sub create {
    my ($token, $body) = @_;
    my $r = call($token, POST => '', $body);
    die "create: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json};
}

our $A = tenant();
our $admin = member($A, 'admin');
our $owner = member($A, 'owner');
our $memb = member($A, 'member');
our $viewer = member($A, 'viewer');
our $admin_staging = member($A, 'admin', 'staging');
our $B = tenant();
our $b_admin = member($B, 'admin');
our $P = tenant('pro');
our $p_admin = member($P, 'admin');
our $F = tenant();
our $f_admin = member($F, 'admin');
my ($uid) = $dbh->selectrow_array('SELECT id FROM users LIMIT 1');
our $global = jwt({ sub => $uid });

our ($key, $id, $id2, $bkey, $body);

run_tests();

__DATA__

=== TEST 1: no token: 401
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/keys
--- error_code: 401
--- response_body_like: "code":"unauthorized"



=== TEST 2: create: 201, the whole key once, sk- and 43 base64url characters
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/keys
{"name": "ci pipeline"}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 201
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"id":"[0-9a-f-]{36}","key":"sk-[A-Za-z0-9_-]{43}","prefix":"sk-[A-Za-z0-9_-]{5}","name":"ci pipeline","rpm":null,"effective_rpm":60,"env":"production","enabled":true,"providers":\[\],"expires_at":null,"created_at":"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","updated_at":"[^"]+","last_used_at":null,"created_by":"[0-9a-f-]{36}","status":"active"\}$
--- no_error_log
[error]



=== TEST 3: only the SHA-256 is stored; the key never comes back
--- init
my $c = create($::admin, { name => 'shown once' });
($::key, $::id) = @$c{qw(key id)};
is($c->{prefix}, substr($::key, 0, 8), 'prefix: the first 8 characters');
my $row = $::dbh->selectrow_hashref('SELECT * FROM api_keys WHERE id = ?',
                                    undef, $::id);
is($row->{key_hash}, sha256_hex($::key), 'key_hash is the SHA-256 hex of the key');
ok(!(grep { defined && index($_, $::key) >= 0 } values %$row),
   'no column holds the key');
my $r = call($::admin, GET => '');
is($r->{status}, 200, 'list: 200');
is(index($r->{body}, $::key), -1, 'the list never shows the key');
is(index($r->{body}, $row->{key_hash}), -1, '... nor its hash');
my ($item) = grep { $_->{id} eq $::id } @{ $r->{json}{items} };
ok($item && !exists $item->{key} && !exists $item->{key_hash},
   'items have neither key nor key_hash');
is($item->{prefix}, $c->{prefix}, 'items have the prefix');
ok(exists $item->{last_used_at}, 'items have last_used_at');
my ($audit) = $::dbh->selectrow_array(
    q{SELECT detail::text FROM audit_log WHERE action = 'key.create' AND target = ?},
    undef, $::id);
ok($audit && index($audit, $::key) < 0, 'the creation is audited, without the key');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /trueportai-services/api/v1/keys/$::id"
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 405



=== TEST 4: create with every field
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/keys
{"name": "batch", "rpm": 120, "providers": ["openai", "anthropic", "openai"], "expires_at": "2099-06-30T23:30:00.250+02:00", "env": "staging"}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: "name":"batch","rpm":120,"effective_rpm":120,"env":"staging","enabled":true,"providers":\["openai","anthropic"\],"expires_at":"2099-06-30T21:30:00.250Z"
--- no_error_log
[error]



=== TEST 5: env defaults to the token's environment
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/keys
{"name": "from staging", "providers": null, "rpm": null, "expires_at": null}
--- more_headers eval
"Authorization: Bearer $::admin_staging\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: "rpm":null,"effective_rpm":60,"env":"staging","enabled":true,"providers":\[\],"expires_at":null



=== TEST 6: create: invalid values are 422 with the field named
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "POST /trueportai-services/api/v1/keys\n$_" }
 '{}',
 '{"name": ""}',
 '{"name": "   "}',
 '{"name": 42}',
 '{"name": "' . ('x' x 101) . '"}',
 "{\"name\": \"tab\\tname\"}",
 '{"name": "k", "rpm": 0}',
 '{"name": "k", "rpm": 121}',
 '{"name": "k", "rpm": "60"}',
 '{"name": "k", "rpm": 1.5}',
 '{"name": "k", "rpm": 99999999999}',
 '{"name": "k", "providers": ["openai", "mistral"]}',
 '{"name": "k", "providers": "openai"}',
 '{"name": "k", "providers": [1]}',
 '{"name": "k", "expires_at": "2020-01-01T00:00:00Z"}',
 '{"name": "k", "expires_at": "tomorrow"}',
 '{"name": "k", "expires_at": "2099-02-30T00:00:00Z"}',
 '{"name": "k", "expires_at": "2099-01-01T00:00:00"}',
 '{"name": "k", "expires_at": "2099-01-01"}',
 '{"name": "k", "expires_at": "2099-01-01T25:00:00Z"}',
 '{"name": "k", "expires_at": "infinity"}',
 '{"name": "k", "expires_at": 4102444800}',
 '{"name": "k", "env": "qa"}',
 '{"name": "k", "env": ""}',
 '{"name": "k", "key": "sk-mine"}',
]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 422
--- response_body_like eval
[qr/"code":"missing_field","message":"\\"name\\" is required"/,
 qr/"name\\" must not be empty/,
 qr/"name\\" must be 1 to 100 characters/,
 qr/"name\\" must be a string/,
 qr/"name\\" must be 1 to 100 characters/,
 qr/"name\\" must be 1 to 100 characters/,
 qr/"rpm\\" must be between 1 and/,
 qr/"rpm\\" must be between 1 and 120 on the free plan/,
 qr/"rpm\\" must be an integer/,
 qr/"rpm\\" must be an integer/,
 qr/"rpm\\" must be between 1 and/,
 qr/"providers\\" may only name openai, anthropic, google and azure/,
 qr/"providers\\" must be an array/,
 qr/"providers\\" may only name/,
 qr/"expires_at\\" must be in the future/,
 qr/"expires_at\\" must be an RFC 3339 time/,
 qr/"expires_at\\" must be an RFC 3339 time/,
 qr/"expires_at\\" must be an RFC 3339 time/,
 qr/"expires_at\\" must be an RFC 3339 time/,
 qr/"expires_at\\" must be an RFC 3339 time/,
 qr/"expires_at\\" must be an RFC 3339 time/,
 qr/"expires_at\\" must be a string/,
 qr/"env\\" must be one of the tenant's environments \(production, staging, development\)/,
 qr/"env\\" must be one of the tenant's environments/,
 qr/"code":"unknown_field","message":"unknown field \\"key\\""/,
]
--- no_error_log
[error]



=== TEST 7: malformed bodies: 400, a non-JSON content type: 415
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /trueportai-services/api/v1/keys\n{\"name\": ",
 "POST /trueportai-services/api/v1/keys\n[\"name\"]",
 "POST /trueportai-services/api/v1/keys\n",
 "POST /trueportai-services/api/v1/keys\n" . ('[' x 100) . (']' x 100)]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 400
--- response_body_like: "code":"invalid_json"
--- no_error_log
[error]



=== TEST 8: a form body: 415
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/keys
name=x
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/x-www-form-urlencoded"
--- error_code: 415



=== TEST 9: the rpm cap is the plan's (pro: 3000)
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /trueportai-services/api/v1/keys\n{\"name\": \"fast\", \"rpm\": 3000}",
 "POST /trueportai-services/api/v1/keys\n{\"name\": \"faster\", \"rpm\": 3001}",
 "POST /trueportai-services/api/v1/keys\n{\"name\": \"default\"}"]
--- more_headers eval
"Authorization: Bearer $::p_admin\nContent-Type: application/json"
--- error_code eval
[201, 422, 201]
--- response_body_like eval
['"rpm":3000,"effective_rpm":3000',
 'between 1 and 3000 on the pro plan',
 '"rpm":null,"effective_rpm":600']



=== TEST 10: list: the page envelope, newest first, filters
--- init
$::dbh->do('DELETE FROM api_keys');
my @made = map { create($::admin, { name => "k$_" }) } 1 .. 3;
create($::admin_staging, { name => 'k4' });
call($::admin, PATCH => "/$made[0]{id}", { enabled => \0 });
my $r = call($::admin, GET => '');
is($r->{json}{total}, 4, 'list: total');
is_deeply([map { $_->{name} } @{ $r->{json}{items} }], [qw(k4 k3 k2 k1)],
          'list: newest first');
$r = call($::admin, GET => '?limit=2&offset=1');
is_deeply([map { $_->{name} } @{ $r->{json}{items} }], [qw(k3 k2)], 'page 2 of 2');
is_deeply([@{ $r->{json} }{qw(total limit offset)}], [4, 2, 1], 'page envelope');
$r = call($::admin, GET => '?offset=10');
is_deeply([scalar @{ $r->{json}{items} }, $r->{json}{total}], [0, 4],
          'past the end: no items, the total still');
# every page shape (full, last, exactly full, past the end) against the
# whole list: the total is counted only for a page with rows after it
for my $limit (1 .. 5) {
    for my $offset (0 .. 5) {
        my $p = call($::admin, GET => "?limit=$limit&offset=$offset");
        my @want = (qw(k4 k3 k2 k1))[$offset .. ($offset + $limit > 4 ? 3 : $offset + $limit - 1)];
        @want = () if $offset >= 4;
        is_deeply([[map { $_->{name} } @{ $p->{json}{items} }], $p->{json}{total}],
                  [\@want, 4], "limit=$limit offset=$offset: items and total");
    }
}
$r = call($::admin, GET => '?enabled=true&limit=1&offset=1');
is_deeply([[map { $_->{name} } @{ $r->{json}{items} }], $r->{json}{total}],
          [['k3'], 3], 'a filtered page with rows after it counts with the filter');
$r = call($::admin, GET => '?enabled=true&limit=2&offset=1');
is_deeply([[map { $_->{name} } @{ $r->{json}{items} }], $r->{json}{total}],
          [[qw(k3 k2)], 3], 'a filtered last page: offset + rows');
$r = call($::admin, GET => '?env=staging');
is_deeply([map { $_->{name} } @{ $r->{json}{items} }], ['k4'], 'env filter');
$r = call($::admin, GET => '?env=nowhere');
is($r->{json}{total}, 0, 'env filter: an unknown env matches nothing');
$r = call($::admin, GET => '?enabled=false');
is_deeply([map { [$_->{name}, $_->{status}] } @{ $r->{json}{items} }],
          [['k1', 'disabled']], 'enabled=false');
$r = call($::admin, GET => '?enabled=true&env=production');
is($r->{json}{total}, 2, 'enabled=true and env together');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /trueportai-services/api/v1/keys?enabled=yes",
 "GET /trueportai-services/api/v1/keys?enabled=",
 "GET /trueportai-services/api/v1/keys?env=",
 "GET /trueportai-services/api/v1/keys?env=" . ('e' x 33),
 "GET /trueportai-services/api/v1/keys?limit=0",
 "GET /trueportai-services/api/v1/keys?limit=201",
 "GET /trueportai-services/api/v1/keys?offset=-1",
 "GET /trueportai-services/api/v1/keys?limit=ten"]
--- more_headers eval
"Authorization: Bearer $::memb"
--- error_code: 400
--- response_body_like eval
['"code":"invalid_filter","message":"enabled must be true or false"',
 'enabled must be true or false',
 'env must be 1 to 32 characters',
 'env must be 1 to 32 characters',
 '"code":"invalid_pagination"',
 '"code":"invalid_pagination"',
 '"code":"invalid_pagination"',
 '"code":"invalid_pagination"']
--- no_error_log
[error]



=== TEST 11: patch: each field, and the answer is the key without its secret
--- init
my $c = create($::admin, { name => 'to patch', rpm => 100,
                           expires_at => '2099-01-01T00:00:00Z' });
$::id = $c->{id};
my $r = call($::admin, PATCH => "/$::id", { enabled => \0 });
is($r->{status}, 200, 'patch enabled: 200');
is_deeply([@{ $r->{json} }{qw(enabled status)}], [JSON::PP::false, 'disabled'],
          'patch enabled: disabled');
ok(!exists $r->{json}{key} && index($r->{body}, $c->{key}) < 0, 'patch: never the key');
$r = call($::admin, PATCH => "/$::id", { name => 'renamed', rpm => 50 });
is_deeply([@{ $r->{json} }{qw(name rpm effective_rpm enabled)}],
          ['renamed', 50, 50, JSON::PP::false], 'patch name and rpm, the rest unchanged');
$r = call($::admin, PATCH => "/$::id", { rpm => undef, expires_at => undef });
is_deeply([@{ $r->{json} }{qw(rpm effective_rpm expires_at)}], [undef, 60, undef],
          'rpm null: the plan default; expires_at null: never');
$r = call($::admin, PATCH => "/$::id", { providers => ['google'], enabled => \1,
                                         expires_at => '2098-05-05T05:05:05Z' });
is_deeply([@{ $r->{json} }{qw(providers enabled expires_at)}],
          [['google'], JSON::PP::true, '2098-05-05T05:05:05.000Z'],
          'patch providers, enabled, expires_at');
$r = call($::admin, PATCH => "/$::id", { providers => [] });
is_deeply($r->{json}{providers}, [], 'providers []: every provider');
ok($r->{json}{updated_at} gt $c->{updated_at}, 'updated_at moves');
my ($count) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM audit_log WHERE action = 'key.update' AND target = ?},
    undef, $::id);
is($count, 5, 'every patch is audited');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "PATCH /trueportai-services/api/v1/keys/$::id\n$_" }
 '{}',
 '{"enabled": "no"}',
 '{"enabled": null}',
 '{"name": null}',
 '{"name": ""}',
 '{"rpm": 0}',
 '{"rpm": 121}',
 '{"expires_at": "2001-01-01T00:00:00Z"}',
 '{"expires_at": "soon"}',
 '{"providers": ["bedrock"]}',
 '{"env": "staging"}',
 '{"key": "sk-x"}',
]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 422
--- response_body_like eval
['"code":"nothing_to_update"',
 '"enabled\\\\" must be true or false',
 '"enabled\\\\" must be true or false',
 '"name\\\\" must be a string',
 '"name\\\\" must be 1 to 100 characters',
 '"rpm\\\\" must be between 1 and',
 '"rpm\\\\" must be between 1 and 120 on the free plan',
 '"expires_at\\\\" must be in the future',
 '"expires_at\\\\" must be an RFC 3339 time',
 '"providers\\\\" may only name',
 'unknown field \\\\"env\\\\": a key.s environment cannot change',
 'unknown field \\\\"key\\\\"']
--- no_error_log
[error]



=== TEST 12: patch and delete: unknown, malformed and foreign ids are 404
--- init
$::bkey = create($::b_admin, { name => 'tenant b' })->{id};
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PATCH /trueportai-services/api/v1/keys/00000000-0000-4000-8000-000000000000\n{\"enabled\": false}",
 "PATCH /trueportai-services/api/v1/keys/not-a-uuid\n{\"enabled\": false}",
 "PATCH /trueportai-services/api/v1/keys/$::bkey\n{\"enabled\": false}",
 "DELETE /trueportai-services/api/v1/keys/00000000-0000-4000-8000-000000000000",
 "DELETE /trueportai-services/api/v1/keys/%27%20OR%201=1%20--",
 "DELETE /trueportai-services/api/v1/keys/$::bkey"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 404
--- response_body_like: "code":"not_found","message":"no such key"
--- no_error_log
[error]



=== TEST 13: tenant B's admin sees none of A's keys and cannot touch them
--- init
my $r = call($::b_admin, GET => '');
is_deeply([map { $_->{name} } @{ $r->{json}{items} }], ['tenant b'],
          "B's list has only B's key");
my ($en, $del) = $::dbh->selectrow_array(
    'SELECT enabled, deleted_at FROM api_keys WHERE id = ?', undef, $::bkey);
ok($en && !defined $del, "A's attempts left B's key alone");
$r = call($::admin, GET => '');
ok(!(grep { $_->{name} eq 'tenant b' } @{ $r->{json}{items} }),
   "A's list does not show B's key");
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PATCH /trueportai-services/api/v1/keys/$::id\n{\"name\": \"stolen\"}"
--- more_headers eval
"Authorization: Bearer $::b_admin\nContent-Type: application/json"
--- error_code: 404



=== TEST 14: delete: 204, then gone from the list, 404 for patch and delete
--- init
# room under the free plan's 5 keys
$::dbh->do('UPDATE api_keys SET deleted_at = now() WHERE tenant_id = ? AND id <> ?',
           undef, $::A, $::id);
$::id2 = create($::admin, { name => 'to delete' })->{id};
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["DELETE /trueportai-services/api/v1/keys/$::id2",
 "GET /trueportai-services/api/v1/keys",
 "PATCH /trueportai-services/api/v1/keys/$::id2\n{\"enabled\": true}",
 "DELETE /trueportai-services/api/v1/keys/$::id2"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[204, 200, 404, 404]
--- response_body_like eval
['^$', qr/^(?!.*\Q$::id2\E)/s, 'no such key', 'no such key']
--- no_error_log
[error]



=== TEST 15: a deleted key keeps its row (the gateway says "deleted")
--- init
my ($del, $audit) = $::dbh->selectrow_array(
    q{SELECT deleted_at IS NOT NULL,
             (SELECT count(*) FROM audit_log WHERE action = 'key.delete' AND target = ?)
        FROM api_keys WHERE id = ?}, undef, $::id2, $::id2);
ok($del, 'the row is marked deleted');
is($audit, 1, 'the deletion is audited');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/keys?limit=1
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200



=== TEST 16: the plan's key limit (free: 5 live keys), 409 key_limit_reached
--- init
create($::f_admin, { name => "f$_" }) for 1 .. 5;
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/keys
{"name": "sixth"}
--- more_headers eval
"Authorization: Bearer $::f_admin\nContent-Type: application/json"
--- error_code: 409
--- response_body_like: ^\{"error":\{"code":"key_limit_reached","message":"the free plan allows 5 keys: delete a key or change the plan"
--- no_error_log
[error]



=== TEST 17: a deleted key frees its slot
--- init
my $r = call($::f_admin, GET => '?limit=1');
my $gone = $r->{json}{items}[0]{id};
is(call($::f_admin, DELETE => "/$gone")->{status}, 204, 'one key deleted');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /trueportai-services/api/v1/keys\n{\"name\": \"sixth\"}",
 "POST /trueportai-services/api/v1/keys\n{\"name\": \"seventh\"}"]
--- more_headers eval
"Authorization: Bearer $::f_admin\nContent-Type: application/json"
--- error_code eval
[201, 409]



=== TEST 18: concurrent creations cannot pass the limit together
--- init
my $T = tenant();
my $tok = member($T, 'admin');
create($tok, { name => "c$_" }) for 1 .. 3;
my @kids;
for my $i (1 .. 6) {
    my $pid = fork() // die;
    if (!$pid) {
        my $r = call($tok, POST => '', { name => "race $i" });
        POSIX::_exit($r->{status} == 201 ? 0 : $r->{status} == 409 ? 1 : 2);
    }
    push @kids, $pid;
}
my %rc;
for (@kids) { waitpid($_, 0); $rc{$? >> 8}++ }
is_deeply(\%rc, { 0 => 2, 1 => 4 }, 'six racing creations for two slots: two 201, four 409');
my ($live) = $::dbh->selectrow_array(
    'SELECT count(*) FROM api_keys WHERE tenant_id = ? AND deleted_at IS NULL', undef, $T);
is($live, 5, 'the tenant has exactly its 5 keys');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/keys
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200



=== TEST 19: roles: viewer cannot list; member lists but cannot change
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /trueportai-services/api/v1/keys",
 "POST /trueportai-services/api/v1/keys\n{\"name\": \"x\"}",
 "PATCH /trueportai-services/api/v1/keys/$::id\n{\"enabled\": false}",
 "DELETE /trueportai-services/api/v1/keys/$::id"]
--- more_headers eval
"Authorization: Bearer $::viewer\nContent-Type: application/json"
--- error_code: 403
--- response_body_like: "code":"insufficient_role","message":"this action needs the (member|admin) role \(you are viewer\)"



=== TEST 20: a member may list, not create, patch or delete
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /trueportai-services/api/v1/keys",
 "POST /trueportai-services/api/v1/keys\n{\"name\": \"x\"}",
 "PATCH /trueportai-services/api/v1/keys/$::id\n{\"enabled\": false}",
 "DELETE /trueportai-services/api/v1/keys/$::id"]
--- more_headers eval
"Authorization: Bearer $::memb\nContent-Type: application/json"
--- error_code eval
[200, 403, 403, 403]
--- response_body_like eval
['"items":\[', 'needs the admin role \(you are member\)', 'needs the admin role', 'needs the admin role']



=== TEST 21: an owner may do what an admin may
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/keys
{"name": "owner's key"}
--- more_headers eval
"Authorization: Bearer $::owner\nContent-Type: application/json"
--- error_code: 201



=== TEST 22: tokens: global (no tenant) 401, tampered 401, not a member 403
--- init
my $r = call($::global, GET => '');
is($r->{status}, 401, 'a global token: 401');
like($r->{body}, qr/"code":"scoped_token_required"/, '... scoped_token_required');
my $bad = $::admin;
substr($bad, -2, 1) = substr($bad, -2, 1) eq 'A' ? 'B' : 'A';
$r = call($bad, GET => '');
is($r->{status}, 401, 'a tampered token: 401');
like($r->{body}, qr/"code":"invalid_token"/, '... invalid_token');
my $claims = JSON::PP::decode_json(MIME::Base64::decode_base64url((split /\./, $::b_admin)[1]));
$r = call(jwt({ sub => $claims->{sub}, tid => $::A, role => 'owner', env => 'production' }), GET => '');
is($r->{status}, 403, "B's admin with a token naming tenant A: 403");
like($r->{body}, qr/"code":"forbidden"/, '... not a member');
$r = call(jwt({ sub => $claims->{sub}, tid => $::A, role => 'owner', env => 'production' }, alg => 'none'), GET => '');
is($r->{status}, 401, 'alg none: 401');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/keys
--- more_headers
Authorization: Bearer not.a.token
--- error_code: 401



=== TEST 23: a suspended tenant's keys cannot be managed
--- init
$::dbh->do(q{UPDATE tenants SET status = 'suspended' WHERE id = ?}, undef, $::P);
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/keys
--- more_headers eval
"Authorization: Bearer $::p_admin"
--- error_code: 403
--- response_body_like: "code":"tenant_suspended"



=== TEST 24: nothing in this file made the sidecar answer 5xx
--- init
open my $fh, '<', work_dir() . '/logs/sidecar.log' or die $!;
my @bad = grep { / status=5\d\d / } <$fh>;
is(scalar @bad, 0, 'no 5xx in the sidecar log') or diag @bad;
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/keys
--- error_code: 401
