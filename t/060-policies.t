# The policies API through nginx: create, read, list, replace and delete
# rules of every type; every validation error (the engine's own reasons);
# roles; tenant isolation; the tenant's policy_revision moving with every
# write and showing in the key lookup; the rule cap; and the internal load
# endpoint the module calls, whose answer must compile as the module
# compiles it (build/tools/policy-check).
use utf8;
use lib 't/lib';
use Test::TruePort;
use Test::More;
use Digest::SHA qw(sha256_hex);
use IPC::Open2 ();
use JSON::PP ();
use POSIX ();

use_sidecar();

our $P = '/trueportai-services/api/v1/policies';
our $dbh = dbh();
my $n = 0;

my $CHECK = ($ENV{TP_BUILD} // (($ENV{TP_ROOT} // '.') . '/build'))
          . '/tools/policy-check';

sub tenant {
    $n++;
    my ($id) = $dbh->selectrow_array(
        'INSERT INTO tenants (name, slug) VALUES (?, ?) RETURNING id', undef,
        "Tenant $n", "tenant-$n-$$");
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

# a gateway key row, as the keys API writes it: (the key, its id)
sub key {
    my ($tenant) = @_;
    $n++;
    my $key = sprintf 'sk-pol%041d', $n;
    my ($id) = $dbh->selectrow_array(
        q{INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env)
          VALUES (?, ?, ?, ?, 'production') RETURNING id}, undef,
        $tenant, "key $n", substr($key, 0, 8), sha256_hex($key));
    return ($key, $id);
}

sub call {
    my ($token, $method, $path, $body, %h) = @_;
    return api($method, "$P$path", $body,
               { ($token ? (Authorization => "Bearer $token") : ()), %h });
}

sub create {
    my ($token, $body) = @_;
    my $r = call($token, POST => '', $body);
    die "create: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json};
}

sub revision {
    my ($v) = $dbh->selectrow_array(
        'SELECT policy_revision FROM tenants WHERE id = ?', undef, shift);
    return $v;
}

sub resolve_revision {
    my $r = sidecar_internal_api(GET => '/internal/v1/keys/resolve?hash='
                        . sha256_hex(shift) . '&provider=openai', undef,
                        { 'X-TruePort-Internal-Token' => internal_token() });
    return $r->{json}{policy_revision};
}

sub internal {
    my ($query, $token) = @_;
    return sidecar_internal_api(GET => "/internal/v1/policies$query", undef,
                       { 'X-TruePort-Internal-Token' => $token // internal_token() });
}

# policy-check [ARGS] with the "rules" array of an internal answer, cut out
# byte for byte, on stdin: (exit status, output)
sub policy_check {
    my ($body, @args) = @_;
    my ($json) = $body =~ /^\{"tenant_id":"[0-9a-f-]{36}","revision":\d+,"rules":(\[.*\])\}\z/s
        or return (-1, "not an internal answer: $body");
    my $pid = IPC::Open2::open2(my $out, my $in, $CHECK, @args);
    print $in $json;
    close $in;
    local $/;
    my $text = <$out> // '';
    waitpid($pid, 0);
    return ($? >> 8, $text);
}

# the error envelope with this code, its message starting with $msg
sub err_like {
    my ($code, $msg) = @_;
    my $m = substr(json_encode($msg), 1, -1);
    return qr/^\{"error":\{"code":"\Q$code\E","message":"\Q$m\E/;
}

sub names { [map { $_->{name} } @{ shift->{json}{items} }] }

our $A = tenant();
our $admin = member($A, 'admin');
our $owner = member($A, 'owner');
our $memb = member($A, 'member');
our $viewer = member($A, 'viewer');
our $B = tenant();
our $b_admin = member($B, 'admin');
our ($akey, $akey_id) = key($A);
our ($akey2, $akey2_id) = key($A);
our ($bkey, $bkey_id) = key($B);

# one valid rule of every type
our %RULE = (
    regex => { name => 'no card numbers', type => 'regex',
               config => { patterns => ['\b4\d{15}\b', '(?i)project\s+falcon'] },
               action => 'block' },
    keywords => { name => 'competitors', type => 'keywords',
                  config => { keywords => ['acme corp', 'Initech', "c++"] },
                  action => 'log', priority => 5 },
    pii => { name => 'personal data', type => 'pii',
             config => { detectors => [qw(email phone credit_card ssn iban ipv4 secrets)] },
             action => 'redact', enabled => JSON::PP::false, priority => 0,
             scope => { providers => ['openai', 'azure'], envs => ['staging'],
                        key_ids => [uc $akey_id] } },
    model => { name => 'approved models', type => 'model',
               config => { allow => ['gpt-4o*', 'claude-*'], deny => ['*-preview'] },
               action => 'block', priority => 10000 },
    limits => { name => 'prompt size', type => 'limits',
                config => { max_prompt_chars => 12000, max_output_tokens => 4096 },
                action => 'block', scope => { providers => ['anthropic'] } },
);

our $valid = '"name": "r", "type": "regex", "action": "block"';
my $missing = '00000000-0000-4000-8000-000000000000';
# every validation error: [body, code, message]
our @BAD = (
    ['{}', 'missing_field', '"name" is required'],
    ['{"name": ""}', 'invalid_field', '"name" must not be empty'],
    ['{"name": "   "}', 'invalid_field', '"name" must be 1 to 200 characters'],
    ['{"name": "' . ('x' x 201) . '"}', 'invalid_field', '"name" must be 1 to 200 characters'],
    ['{"name": "tab\\there"}', 'invalid_field', '"name" must be 1 to 200 characters'],
    ['{"name": 42}', 'invalid_field', '"name" must be a string'],
    ['{"name": null}', 'invalid_field', '"name" must be a string'],
    ['{"name": "r", "action": "block", "config": {}}', 'missing_field', '"type" is required'],
    ['{"name": "r", "type": 5}', 'invalid_field', '"type" must be a string'],
    ['{"name": "r", "type": "semantic", "action": "block", "config": {}}', 'invalid_field',
     'type: unknown type "semantic" (expected regex, keywords, pii, model or limits)'],
    ['{"name": "r", "type": "regex", "config": {"patterns": ["a"]}}', 'missing_field', '"action" is required'],
    ['{"name": "r", "type": "regex", "action": "deny", "config": {"patterns": ["a"]}}', 'invalid_field',
     'action: unknown action "deny" (expected block, redact or log)'],
    ['{"name": "r", "type": "model", "action": "redact", "config": {"deny": ["x"]}}', 'invalid_field',
     'action: a model rule cannot redact (use block or log)'],
    ['{"name": "r", "type": "limits", "action": "redact", "config": {"max_prompt_chars": 5}}', 'invalid_field',
     'action: a limits rule cannot redact'],
    ["{$valid}", 'missing_field', '"config" is required'],
    ["{$valid, \"config\": [\"a\"]}", 'invalid_field', '"config" must be an object'],
    ["{$valid, \"config\": null}", 'invalid_field', '"config" must be an object'],
    ["{$valid, \"config\": {}}", 'invalid_field', 'config.patterns: must be an array of strings'],
    ["{$valid, \"config\": {\"patterns\": \"a\"}}", 'invalid_field', 'config.patterns: must be an array of strings'],
    ["{$valid, \"config\": {\"patterns\": []}}", 'invalid_field', 'config.patterns: must not be empty'],
    ["{$valid, \"config\": {\"patterns\": [\"\"]}}", 'invalid_field', 'config.patterns[0]: must not be empty'],
    ["{$valid, \"config\": {\"patterns\": [\"ok\", 7]}}", 'invalid_field', 'config.patterns[1]: must be a string'],
    ["{$valid, \"config\": {\"patterns\": [\"ok\", \"(unclosed\"]}}", 'invalid_field',
     'config.patterns[1]: missing closing parenthesis at offset 9'],
    ["{$valid, \"config\": {\"patterns\": [\"a{2,1}\"]}}", 'invalid_field',
     'config.patterns[0]: numbers out of order in {} quantifier'],
    ["{$valid, \"config\": {\"patterns\": [\"\\\\C\"]}}", 'invalid_field', 'config.patterns[0]: '],
    ["{$valid, \"config\": {\"patterns\": [\"" . ('a' x 4097) . "\"]}}", 'invalid_field',
     'config.patterns[0]: longer than 4096 bytes'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"], \"flags\": \"i\"}}", 'unknown_field',
     'unknown field "config.flags" for a regex rule'],
    ['{"name": "r", "type": "keywords", "action": "log", "config": {"keywords": []}}', 'invalid_field',
     'config.keywords: must not be empty'],
    ['{"name": "r", "type": "keywords", "action": "log", "config": {"keywords": ["ok", "  "]}}', 'invalid_field',
     'config.keywords[1]: must not be empty'],
    ['{"name": "r", "type": "keywords", "action": "log", "config": {"keywords": [1]}}', 'invalid_field',
     'config.keywords[0]: must be a string'],
    ['{"name": "r", "type": "keywords", "action": "log", "config": {"keyword": ["x"]}}', 'invalid_field',
     'config.keywords: must be an array of strings'],
    ['{"name": "r", "type": "pii", "action": "redact", "config": {"detectors": ["email", "passport"]}}', 'invalid_field',
     'config.detectors[1]: unknown detector "passport" (expected email, phone, credit_card, ssn, iban, ipv4 or secrets)'],
    ['{"name": "r", "type": "pii", "action": "redact", "config": {"detectors": []}}', 'invalid_field',
     'config.detectors: must not be empty'],
    ['{"name": "r", "type": "pii", "action": "redact", "config": {"detectors": "email"}}', 'invalid_field',
     'config.detectors: must be an array of detector names'],
    ['{"name": "r", "type": "model", "action": "block", "config": {}}', 'invalid_field',
     'config: a model rule needs a non-empty allow or deny list'],
    ['{"name": "r", "type": "model", "action": "block", "config": {"allow": [], "deny": []}}', 'invalid_field',
     'config: a model rule needs a non-empty allow or deny list'],
    ['{"name": "r", "type": "model", "action": "block", "config": {"allow": [""]}}', 'invalid_field',
     'config.allow[0]: must not be empty'],
    ['{"name": "r", "type": "model", "action": "block", "config": {"allow": ["a"], "models": ["b"]}}', 'unknown_field',
     'unknown field "config.models" for a model rule'],
    ['{"name": "r", "type": "limits", "action": "block", "config": {}}', 'invalid_field',
     'config: a limits rule needs max_prompt_chars or max_output_tokens'],
    ['{"name": "r", "type": "limits", "action": "block", "config": {"max_prompt_chars": 0}}', 'invalid_field',
     'config.max_prompt_chars: must be a positive integer'],
    ['{"name": "r", "type": "limits", "action": "block", "config": {"max_prompt_chars": 1.5}}', 'invalid_field',
     'config.max_prompt_chars: must be a positive integer'],
    ['{"name": "r", "type": "limits", "action": "block", "config": {"max_output_tokens": "4096"}}', 'invalid_field',
     'config.max_output_tokens: must be a positive integer'],
    ['{"name": "r", "type": "limits", "action": "block", "config": {"max_prompt_chars": 5, "max_tokens": 9}}', 'unknown_field',
     'unknown field "config.max_tokens" for a limits rule'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"enabled\": \"yes\"}", 'invalid_field', '"enabled" must be true or false'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"priority\": -1}", 'invalid_field', '"priority" must be between 0 and 10000'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"priority\": 10001}", 'invalid_field', '"priority" must be between 0 and 10000'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"priority\": 99999999999999999999}", 'invalid_field', '"priority" must be an integer'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"priority\": 1.5}", 'invalid_field', '"priority" must be an integer'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"priority\": \"1\"}", 'invalid_field', '"priority" must be an integer'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": \"all\"}", 'invalid_field', '"scope" must be an object'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"regions\": [\"eu\"]}}", 'unknown_field',
     'unknown field "scope.regions" (expected providers, envs, key_ids)'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"providers\": \"openai\"}}", 'invalid_field',
     'scope.providers: must be an array of strings'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"providers\": [\"openai\", \"mistral\"]}}", 'invalid_field',
     'scope.providers[1]: unknown provider "mistral" (expected openai, anthropic, google or azure)'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"envs\": [\"production\", \"qa\"]}}", 'invalid_field',
     "scope.envs[1]: not one of the tenant's environments (production, staging, development)"],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"envs\": [\"\"]}}", 'invalid_field',
     'scope.envs[0]: must not be empty'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"envs\": [1]}}", 'invalid_field',
     'scope.envs[0]: must be a string'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"key_ids\": [\"not-a-uuid\"]}}", 'invalid_field',
     'scope.key_ids[0]: must be a key id (a UUID)'],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"key_ids\": [\"$akey_id\", \"$missing\"]}}", 'invalid_field',
     "scope.key_ids[1]: not one of the tenant's keys"],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"scope\": {\"key_ids\": [\"$bkey_id\"]}}", 'invalid_field',
     "scope.key_ids[0]: not one of the tenant's keys"],
    ["{$valid, \"config\": {\"patterns\": [\"a\"]}, \"severity\": \"high\"}", 'unknown_field', 'unknown field "severity"'],
    ['{"name": "a\\u0000b", "type": "regex", "action": "block", "config": {"patterns": ["a"]}}', 'invalid_field',
     'strings must not contain NUL characters (\\u0000)'],
    ['{"name": "k", "type": "keywords", "action": "log", "config": {"keywords": ["foo\\u0000bar"]}}', 'invalid_field',
     'strings must not contain NUL characters'],
    ['{"name": "k", "type": "keywords", "action": "log", "config": {"keywords\\u0000x": ["foo"]}}', 'invalid_field',
     'strings must not contain NUL characters'],
);

our ($id, $id2, $bid, @made);

run_tests();

__DATA__

=== TEST 1: no token: 401
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/policies
--- error_code: 401
--- response_body_like: "code":"unauthorized"



=== TEST 2: create a regex rule: 201, the policy with its defaults
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/policies
{"name": "no card numbers", "type": "regex", "config": {"patterns": ["\\b4\\d{15}\\b"]}, "action": "block"}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 201
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"id":"[0-9a-f-]{36}","name":"no card numbers","type":"regex","config":\{"patterns":\["\\\\b4\\\\d\{15\}\\\\b"\]\},"action":"block","enabled":true,"priority":100,"scope":\{"envs":\[\],"key_ids":\[\],"providers":\[\]\},"created_by":"[0-9a-f-]{36}","created_at":"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","updated_at":"20[^"]+Z"\}$
--- no_error_log
[error]



=== TEST 3: every rule type, with every field: 201 and stored as sent
--- init
for my $t (sort keys %::RULE) {
    my $r = call($::admin, POST => '', $::RULE{$t});
    is($r->{status}, 201, "$t: 201") or diag $r->{body};
    my $want = { enabled => JSON::PP::true, priority => 100,
                 scope => { providers => [], envs => [], key_ids => [] },
                 %{ $::RULE{$t} } };
    $want->{scope} = { providers => [], envs => [], key_ids => [],
                       %{ $want->{scope} } };
    $want->{scope}{key_ids} = [map { lc } @{ $want->{scope}{key_ids} }];
    is_deeply({ map { $_ => $r->{json}{$_} } keys %$want }, $want,
              "$t: the answer holds every field as sent (key ids lowercased)");
    my $g = call($::memb, GET => "/$r->{json}{id}");
    is($g->{status}, 200, "$t: GET by id");
    is_deeply($g->{json}, $r->{json}, "$t: GET answers the same policy");
    my $row = $::dbh->selectrow_hashref(
        q{SELECT tenant_id, created_by IS NOT NULL AS by FROM policies WHERE id = ?},
        undef, $r->{json}{id});
    is($row->{tenant_id}, $::A, "$t: stored under the token's tenant");
    ok($row->{by}, "$t: created_by is set");
}
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /trueportai-services/api/v1/policies?limit=200"
--- more_headers eval
"Authorization: Bearer $::memb"
--- error_code: 200
--- response_body_like: "total":6,"limit":200,"offset":0\}$



=== TEST 4: strings round-trip exactly: quotes, backslashes, UTF-8, a literal \u0000 text
--- init
my $body = { name => "Règles « spéciales » 规则 \"q\" \\",
             type => 'keywords', action => 'log',
             config => { keywords => ["naïve", "东京", "a\"b", "back\\slash", "\\u0000"] } };
my $r = call($::admin, POST => '', $body);
is($r->{status}, 201, 'created') or diag $r->{body};
my $g = call($::admin, GET => "/$r->{json}{id}");
is($g->{json}{name}, $body->{name}, 'the name comes back byte for byte');
is_deeply($g->{json}{config}, $body->{config}, 'so does the config');
is(call($::admin, DELETE => "/$r->{json}{id}")->{status}, 204, 'cleaned up');
# an engine reason quoting a long non-ASCII value is cut at 64 bytes: the
# reply must stay valid UTF-8 JSON
$r = call($::admin, POST => '', { name => 'x', type => 'pii', action => 'block',
                                  config => { detectors => ['x' . ('é' x 40)] } });
is($r->{status}, 422, 'a long unknown detector: 422');
ok(defined $r->{json}, '... and the reply is valid JSON')
    or diag $r->{body};
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/policies?limit=1
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200



=== TEST 5: invalid rules are 422 with the reason (the gateway engine's own)
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "POST /trueportai-services/api/v1/policies\n$_->[0]" } @::BAD]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 422
--- response_body_like eval
[map { main::err_like($_->[1], $_->[2]) } @::BAD]
--- no_error_log
[error]



=== TEST 6: the same validation on PUT, and nothing is changed
--- init
$::id = create($::admin, { name => 'to replace', type => 'regex', action => 'log',
                           config => { patterns => ['x'] } })->{id};
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "PUT /trueportai-services/api/v1/policies/$::id\n$_->[0]" } @::BAD]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 422
--- response_body_like eval
[map { main::err_like($_->[1], $_->[2]) } @::BAD]
--- no_error_log
[error]



=== TEST 7: malformed bodies: 400; a non-JSON content type: 415
--- init
my ($name) = $::dbh->selectrow_array('SELECT name FROM policies WHERE id = ?', undef, $::id);
is($name, 'to replace', 'the rejected PUTs changed nothing');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /trueportai-services/api/v1/policies\n{\"name\": ",
 "POST /trueportai-services/api/v1/policies\n[{\"name\": \"x\"}]",
 "POST /trueportai-services/api/v1/policies\n",
 "POST /trueportai-services/api/v1/policies\n\"just a string\"",
 "POST /trueportai-services/api/v1/policies\n{\"name\": \"x\", \"config\": " . ('[' x 100) . (']' x 100) . "}",
 "POST /trueportai-services/api/v1/policies\n{\"name\": \"\xff\xfe\"}",
 "PUT /trueportai-services/api/v1/policies/$::id\n{\"name\": \"x\",}"]
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
POST /trueportai-services/api/v1/policies
name=x
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/x-www-form-urlencoded"
--- error_code: 415



=== TEST 9: list: evaluation order (priority, then creation), the page envelope, filters
--- init
$::dbh->do('DELETE FROM policies');
@::made = map { create($::admin, { name => "p$_->[0]", type => 'regex', action => 'log',
                                   priority => $_->[1], enabled => $_->[2] ? JSON::PP::true : JSON::PP::false,
                                   config => { patterns => ["p$_->[0]"] } }) }
          ([1, 300, 1], [2, 10, 1], [3, 10, 0], [4, 0, 1], [5, 10, 1]);
create($::admin, { name => 'kw', type => 'keywords', action => 'log', priority => 50,
                   config => { keywords => ['x'] } });
my $r = call($::memb, GET => '');
is_deeply(names($r), [qw(p4 p2 p3 p5 kw p1)], 'priority ascending, ties by creation');
is_deeply([@{ $r->{json} }{qw(total limit offset)}], [6, 50, 0], 'the envelope, default limit 50');
$r = call($::memb, GET => '?limit=2&offset=2');
is_deeply(names($r), [qw(p3 p5)], 'a page in the middle');
is_deeply([@{ $r->{json} }{qw(total limit offset)}], [6, 2, 2], '... its envelope');
$r = call($::memb, GET => '?offset=6');
is_deeply([scalar @{ $r->{json}{items} }, $r->{json}{total}], [0, 6], 'past the end: no items, the total still');
# every page shape: full with rows after it (counted), exactly full, the
# last page (offset + rows), past the end
for my $limit (1 .. 7) {
    for my $offset (0 .. 7) {
        my $p = call($::memb, GET => "?limit=$limit&offset=$offset");
        my @all = qw(p4 p2 p3 p5 kw p1);
        my @want = $offset >= @all ? () : @all[$offset .. ($offset + $limit > @all ? $#all : $offset + $limit - 1)];
        is_deeply([names($p), $p->{json}{total}], [\@want, 6], "limit=$limit offset=$offset: items and total");
    }
}
$r = call($::memb, GET => '?type=keywords');
is_deeply(names($r), ['kw'], 'type filter');
$r = call($::memb, GET => '?enabled=false');
is_deeply(names($r), ['p3'], 'enabled=false');
$r = call($::memb, GET => '?enabled=true&type=regex&limit=1');
is_deeply([names($r), $r->{json}{total}], [['p4'], 4], 'filters together, with a limit');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /trueportai-services/api/v1/policies?type=semantic",
 "GET /trueportai-services/api/v1/policies?type=",
 "GET /trueportai-services/api/v1/policies?enabled=yes",
 "GET /trueportai-services/api/v1/policies?limit=0",
 "GET /trueportai-services/api/v1/policies?limit=201",
 "GET /trueportai-services/api/v1/policies?offset=-1",
 "GET /trueportai-services/api/v1/policies?limit=ten"]
--- more_headers eval
"Authorization: Bearer $::memb"
--- error_code: 400
--- response_body_like eval
['"code":"invalid_filter","message":"type must be regex, keywords, pii, model or limits"',
 '"code":"invalid_filter"',
 '"code":"invalid_filter","message":"enabled must be true or false"',
 '"code":"invalid_pagination"',
 '"code":"invalid_pagination"',
 '"code":"invalid_pagination"',
 '"code":"invalid_pagination"']
--- no_error_log
[error]



=== TEST 10: PUT is a full replacement: what the body leaves out takes its default
--- init
my $c = create($::admin, { name => 'full', type => 'pii', action => 'redact', enabled => JSON::PP::false,
                           priority => 7, scope => { envs => ['staging'] },
                           config => { detectors => ['email'] } });
$::id = $c->{id};
select(undef, undef, undef, 0.01);
my $r = call($::admin, PUT => "/$::id", { name => 'replaced', type => 'keywords', action => 'block',
                                          config => { keywords => ['secret project'] } });
is($r->{status}, 200, 'PUT: 200') or diag $r->{body};
is_deeply({ map { $_ => $r->{json}{$_} } qw(id name type action enabled priority config scope created_at created_by) },
          { id => $::id, name => 'replaced', type => 'keywords', action => 'block',
            enabled => JSON::PP::true, priority => 100, config => { keywords => ['secret project'] },
            scope => { providers => [], envs => [], key_ids => [] },
            created_at => $c->{created_at}, created_by => $c->{created_by} },
          'every field replaced, defaults for the omitted ones, id and creation kept');
ok($r->{json}{updated_at} gt $c->{updated_at}, 'updated_at moves');
# what GET answered may be sent back as it is: the read-only fields are ignored
my $g = call($::admin, GET => "/$::id");
my $back = { %{ $g->{json} }, priority => 3, updated_at => '2000-01-01T00:00:00Z',
             created_at => '2000-01-01T00:00:00Z', created_by => $::A };
$r = call($::admin, PUT => "/$::id", $back);
is($r->{status}, 200, 'a GET answer sent back: 200') or diag $r->{body};
is_deeply([@{ $r->{json} }{qw(priority created_at created_by)}],
          [3, $c->{created_at}, $c->{created_by}], '... only the writable fields change');
$r = call($::admin, PUT => "/$::id", { %$back, id => $::A });
is($r->{status}, 422, 'an id naming another policy: 422');
like($r->{body}, qr/"id\\" does not match the policy in the path/, '... says so');
$r = call($::admin, PUT => "/$::id", { %$back, id => uc $::id });
is($r->{status}, 200, 'the same id in capitals: 200');
$r = call($::admin, PUT => "/$::id", { name => 'scoped', type => 'model', action => 'log',
                                       config => { deny => ['gpt-3*'] },
                                       scope => { key_ids => [$::akey_id, $::akey2_id], envs => ['production', 'staging'],
                                                  providers => ['google'] } });
is_deeply($r->{json}{scope}, { key_ids => [$::akey_id, $::akey2_id], envs => ['production', 'staging'],
                               providers => ['google'] }, 'a scope with every list');
$::dbh->do('UPDATE api_keys SET deleted_at = now() WHERE id = ?', undef, $::akey2_id);
$r = call($::admin, PUT => "/$::id", { %{ $r->{json} }, name => 'still scoped' });
is($r->{status}, 200, 'a rule naming a since-deleted key can still be sent back unchanged')
    or diag $r->{body};
my ($count) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM audit_log WHERE action = 'policy.update' AND target = ?}, undef, $::id);
is($count, 5, 'every successful PUT is audited');
my ($detail) = $::dbh->selectrow_array(
    q{SELECT detail::text FROM audit_log WHERE action = 'policy.update' AND target = ? ORDER BY id DESC LIMIT 1},
    undef, $::id);
like($detail, qr/"name": "still scoped"/, '... with the rule\'s name');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /trueportai-services/api/v1/policies/$::id"
--- more_headers eval
"Authorization: Bearer $::memb"
--- error_code: 200
--- response_body_like: "name":"still scoped"



=== TEST 11: unknown, malformed and foreign ids are 404 for GET, PUT and DELETE
--- init
$::bid = create($::b_admin, { name => 'tenant b rule', type => 'regex', action => 'block',
                              config => { patterns => ['b'] } })->{id};
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
my $ok = '{"name": "x", "type": "regex", "action": "log", "config": {"patterns": ["x"]}}';
["GET /trueportai-services/api/v1/policies/00000000-0000-4000-8000-000000000000",
 "GET /trueportai-services/api/v1/policies/not-a-uuid",
 "GET /trueportai-services/api/v1/policies/$::bid",
 "PUT /trueportai-services/api/v1/policies/00000000-0000-4000-8000-000000000000\n$ok",
 "PUT /trueportai-services/api/v1/policies/%27%20OR%201=1%20--\n$ok",
 "PUT /trueportai-services/api/v1/policies/$::bid\n$ok",
 "DELETE /trueportai-services/api/v1/policies/00000000-0000-4000-8000-000000000000",
 "DELETE /trueportai-services/api/v1/policies/12345",
 "DELETE /trueportai-services/api/v1/policies/$::bid"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 404
--- response_body_like: "code":"not_found","message":"no such policy"
--- no_error_log
[error]



=== TEST 12: tenant B sees only its own rules; A's attempts left B's rule alone
--- init
my $r = call($::b_admin, GET => '');
is_deeply(names($r), ['tenant b rule'], "B's list has only B's rule");
my ($name, $count) = $::dbh->selectrow_array(
    'SELECT name, (SELECT count(*) FROM policies WHERE tenant_id = ?) FROM policies WHERE id = ?',
    undef, $::B, $::bid);
is_deeply([$name, $count], ['tenant b rule', 1], "B's rule is untouched");
$r = call($::admin, GET => '?limit=200');
ok(!(grep { $_ eq 'tenant b rule' } @{ names($r) }), "A's list does not show B's rule");
$r = call($::b_admin, PUT => "/$::id", { name => 'stolen', type => 'regex', action => 'log',
                                         config => { patterns => ['x'] } });
is($r->{status}, 404, "B cannot replace A's rule");
is(call($::b_admin, GET => "/$::id")->{status}, 404, "B cannot read A's rule");
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"DELETE /trueportai-services/api/v1/policies/$::id"
--- more_headers eval
"Authorization: Bearer $::b_admin"
--- error_code: 404



=== TEST 13: delete: 204, then gone; audited
--- init
$::id2 = create($::admin, { name => 'to delete', type => 'pii', action => 'log',
                            config => { detectors => ['ssn'] } })->{id};
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["DELETE /trueportai-services/api/v1/policies/$::id2",
 "GET /trueportai-services/api/v1/policies/$::id2",
 "GET /trueportai-services/api/v1/policies?limit=200",
 "PUT /trueportai-services/api/v1/policies/$::id2\n{\"name\": \"x\", \"type\": \"pii\", \"action\": \"log\", \"config\": {\"detectors\": [\"ssn\"]}}",
 "DELETE /trueportai-services/api/v1/policies/$::id2"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[204, 404, 200, 404, 404]
--- response_body_like eval
['^$', 'no such policy', qr/^(?!.*\Q$::id2\E)/s, 'no such policy', 'no such policy']
--- no_error_log
[error]



=== TEST 14: the audit trail: create, update and delete, never the config
--- init
my $rows = $::dbh->selectall_arrayref(
    q{SELECT action, detail::text FROM audit_log WHERE target = ? ORDER BY id}, undef, $::id2);
is_deeply([map { $_->[0] } @$rows], ['policy.create', 'policy.delete'], 'created, then deleted');
like($rows->[0][1], qr/"name": "to delete"/, 'the detail names the rule');
unlike(join('', map { $_->[1] } @$rows), qr/detectors|ssn/, '... and holds no config');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/policies?limit=1
--- more_headers eval
"Authorization: Bearer $::owner"
--- error_code: 200



=== TEST 15: roles: a viewer may not even list
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
my $ok = '{"name": "x", "type": "regex", "action": "log", "config": {"patterns": ["x"]}}';
["GET /trueportai-services/api/v1/policies",
 "GET /trueportai-services/api/v1/policies/$::id",
 "POST /trueportai-services/api/v1/policies\n$ok",
 "PUT /trueportai-services/api/v1/policies/$::id\n$ok",
 "DELETE /trueportai-services/api/v1/policies/$::id"]
--- more_headers eval
"Authorization: Bearer $::viewer\nContent-Type: application/json"
--- error_code: 403
--- response_body_like: "code":"insufficient_role","message":"this action needs the (member|admin) role \(you are viewer\)"



=== TEST 16: a member may read, not write; an owner may write
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
my $ok = '{"name": "x", "type": "regex", "action": "log", "config": {"patterns": ["x"]}}';
["GET /trueportai-services/api/v1/policies",
 "GET /trueportai-services/api/v1/policies/$::id",
 "POST /trueportai-services/api/v1/policies\n$ok",
 "PUT /trueportai-services/api/v1/policies/$::id\n$ok",
 "DELETE /trueportai-services/api/v1/policies/$::id"]
--- more_headers eval
"Authorization: Bearer $::memb\nContent-Type: application/json"
--- error_code eval
[200, 200, 403, 403, 403]
--- response_body_like eval
['"items":\[', '"id":"', 'needs the admin role \(you are member\)', 'needs the admin role', 'needs the admin role']



=== TEST 17: the revision moves with every write, only with writes, and shows in the key lookup
--- init
my $T = tenant();
my $tok = member($T, 'admin');
my ($key) = key($T);
my ($other) = key($::B);
my $b0 = revision($::B);
is(revision($T), 0, 'a new tenant: revision 0');
is(resolve_revision($key), 0, '... and the key lookup says 0');
my $ok = { name => 'r', type => 'regex', action => 'block', config => { patterns => ['x'] } };
my $c = create($tok, $ok);
is(revision($T), 1, 'create: 1');
is(resolve_revision($key), 1, 'the key lookup carries it');
is(call($tok, PUT => "/$c->{id}", { %$ok, enabled => JSON::PP::false })->{status}, 200, 'disable');
is(revision($T), 2, 'update: 2');
my $c2 = create($tok, { %$ok, name => 'r2' });
is(revision($T), 3, 'another create: 3');
is(call($tok, DELETE => "/$c->{id}")->{status}, 204, 'delete');
is(revision($T), 4, 'delete: 4');
is(resolve_revision($key), 4, 'the key lookup follows');
call($tok, GET => '');
call($tok, GET => "/$c2->{id}");
is(call($tok, POST => '', { %$ok, config => { patterns => ['('] } })->{status}, 422, 'a rejected create');
is(call($tok, PUT => "/$c2->{id}", { %$ok, action => 'stop' })->{status}, 422, 'a rejected update');
is(call($tok, PUT => "/$c->{id}", $ok)->{status}, 404, 'an update of a deleted rule');
is(call($tok, DELETE => "/$c->{id}")->{status}, 404, 'a second delete');
is(revision($T), 4, 'reads and failed writes leave it alone');
is(call($tok, DELETE => "/$c2->{id}")->{status}, 204, 'the last rule deleted');
is(revision($T), 5, 'no rules left: the revision still moves forward (5)');
is(revision($::B), $b0, "another tenant's revision never moved");
is(resolve_revision($other), $b0, "... nor its keys' answer");
# whoever writes: an operator's SQL moves it too (the trigger)
$::dbh->do(q{INSERT INTO policies (tenant_id, name, type, config, action)
             VALUES (?, 'sql', 'pii', '{"detectors": ["email"]}', 'log')}, undef, $T);
$::dbh->do(q{UPDATE policies SET enabled = false WHERE tenant_id = ?}, undef, $T);
is(revision($T), 7, 'SQL insert and update: 7');
# six writers at once: six revisions, none lost
my @kids;
for my $i (1 .. 6) {
    my $pid = fork() // die;
    if (!$pid) {
        my $r = call($tok, POST => '', { %$ok, name => "race $i" });
        POSIX::_exit($r->{status} == 201 ? 0 : 1);
    }
    push @kids, $pid;
}
my $fails = 0;
for (@kids) { waitpid($_, 0); $fails++ if $? }
is($fails, 0, 'six concurrent creations: 201 each');
is(revision($T), 13, '... and six revisions');
--- config
    location /t/resolve {
        proxy_set_header X-TruePort-Internal-Token $TEST_NGINX_INTERNAL_TOKEN;
        proxy_pass http://trueport_sidecar_internal/internal/v1/keys/resolve;
    }
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /t/resolve?hash=" . main::sha256_hex($::akey) . "&provider=openai"
--- error_code: 200
--- response_body_like eval
my ($rev) = $::dbh->selectrow_array('SELECT policy_revision FROM tenants WHERE id = ?', undef, $::A);
qr/"status":"active",.*"policy_revision":$rev[,}]/



=== TEST 18: the internal load: enabled rules in evaluation order, with the revision
--- init
$::dbh->do('DELETE FROM policies WHERE tenant_id = ?', undef, $::A);
my @ids = map { create($::admin, $_)->{id} }
    { name => 'late', type => 'regex', action => 'block', priority => 300,
      config => { patterns => ['(?i)project\s+falcon'] } },
    { name => 'emails', type => 'pii', action => 'redact', priority => 10,
      config => { detectors => ['email'] } },
    { name => 'off', type => 'keywords', action => 'block', priority => 1, enabled => JSON::PP::false,
      config => { keywords => ['anything'] } },
    { name => 'words', type => 'keywords', action => 'log', priority => 10,
      config => { keywords => ['initech'] }, scope => { envs => ['staging'] } },
    { name => 'models', type => 'model', action => 'block', priority => 20,
      config => { deny => ['gpt-3.5*'] }, scope => { key_ids => [$::akey_id], providers => ['openai'] } },
    { name => 'size', type => 'limits', action => 'block', priority => 20,
      config => { max_prompt_chars => 200 } };
my $r = internal("?tenant_id=$::A");
is($r->{status}, 200, 'with the internal token: 200');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
is($r->{json}{tenant_id}, $::A, 'tenant_id');
is($r->{json}{revision}, revision($::A), 'the current revision');
is_deeply([map { $_->{name} } @{ $r->{json}{rules} }], [qw(emails words models size late)],
          'only enabled rules, by priority, ties by creation');
is_deeply($r->{json}{rules}[2], {
    id => $ids[4], name => 'models', type => 'model', config => { deny => ['gpt-3.5*'] },
    action => 'block', enabled => JSON::PP::true, priority => 20,
    scope => { providers => ['openai'], envs => [], key_ids => [$::akey_id] },
}, 'a rule: every field the engine reads');
# compiled and evaluated the way the module does
my ($rc, $out) = policy_check($r->{body});
is($rc, 0, 'the answer compiles with tp_policy_compile') or diag $out;
($rc, $out) = policy_check($r->{body}, '-p', 'openai', '-e', 'production', '-k', $::akey_id,
                           'mail me at jane@example.com about Project  Falcon');
like($out, qr/^action block\n/, 'evaluated: the falcon rule blocks');
like($out, qr/^violation emails pii email redact$/m, '... after the email rule redacted');
unlike($out, qr/words/, 'a rule scoped to staging does not apply in production');
($rc, $out) = policy_check($r->{body}, '-e', 'staging', 'ask initech');
like($out, qr/^violation words keywords keyword log$/m, '... and applies in staging');
# B's rules and an empty tenant
$r = internal("?tenant_id=$::B");
is_deeply([map { $_->{name} } @{ $r->{json}{rules} }], ['tenant b rule'], "B's load: B's rules only");
my $E = tenant();
$r = internal("?tenant_id=" . uc $E);
is($r->{body}, qq({"tenant_id":"$E","revision":0,"rules":[]}), 'a tenant without rules (id in capitals)');
($rc, $out) = policy_check($r->{body});
is($rc, 0, '... which compiles too');
# who may ask, and bad questions
is(internal("?tenant_id=$::A", 'wrong')->{status}, 404, 'a wrong internal token: 404');
$r = sidecar_internal_api(GET => "/internal/v1/policies?tenant_id=$::A");
is($r->{status}, 404, 'no internal token: 404');
like($r->{body}, qr/"code":"not_found"/, '... as if there were no such route');
$r = sidecar_internal_api(GET => "/internal/v1/policies?tenant_id=$::A", undef,
                 { Authorization => "Bearer $::owner" });
is($r->{status}, 404, 'a bearer token is no substitute: 404');
is(sidecar_internal_api(POST => "/internal/v1/policies?tenant_id=$::A", {},
               { 'X-TruePort-Internal-Token' => internal_token() })->{status}, 405, 'POST: 405');
for my $q ('', '?tenant_id=', '?tenant_id=nope', "?tenant_id=$::A%27", '?tenant_id=%00') {
    $r = internal($q);
    is($r->{status}, 400, "tenant_id \"$q\": 400");
    like($r->{body}, qr/"code":"invalid_tenant_id"/, '... invalid_tenant_id');
}
$r = internal('?tenant_id=00000000-0000-4000-8000-000000000000');
is($r->{status}, 404, 'an unknown tenant: 404');
like($r->{body}, qr/"code":"not_found","message":"no such tenant"/, '... no such tenant');
--- config
    location /t/policies {
        proxy_set_header X-TruePort-Internal-Token $TEST_NGINX_INTERNAL_TOKEN;
        proxy_pass http://trueport_sidecar_internal/internal/v1/policies;
    }
    location / {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /t/policies?tenant_id=$::A",
 "GET /internal/v1/policies?tenant_id=$::A"]
--- more_headers
X-TruePort-Internal-Token: guessed
--- error_code eval
[200, 404]
--- response_body_like eval
[qr/^\{"tenant_id":"\Q$::A\E","revision":\d+,"rules":\[\{"id":"[0-9a-f-]{36}","name":"emails","type":"pii","config":\{"detectors": \["email"\]\},"action":"redact","enabled":true,"priority":10,"scope":\{"envs": \[\], "key_ids": \[\], "providers": \[\]\}\},/,
 qr/"code":"not_found"/]
--- no_error_log
[error]



=== TEST 19: a tenant may have 1000 rules; concurrent creations cannot pass the cap
--- init
my $T = tenant();
my $tok = member($T, 'admin');
$::dbh->do(q{INSERT INTO policies (tenant_id, name, type, config, action)
             SELECT ?, 'bulk ' || i, 'keywords', '{"keywords": ["w"]}', 'log'
             FROM generate_series(1, 997) i}, undef, $T);
my @kids;
for my $i (1 .. 6) {
    my $pid = fork() // die;
    if (!$pid) {
        my $r = call($tok, POST => '', { name => "race $i", type => 'regex', action => 'log',
                                         config => { patterns => ['x'] } });
        POSIX::_exit($r->{status} == 201 ? 0 : $r->{status} == 409 ? 1 : 2);
    }
    push @kids, $pid;
}
my %rc;
for (@kids) { waitpid($_, 0); $rc{$? >> 8}++ }
is_deeply(\%rc, { 0 => 3, 1 => 3 }, 'six racing creations for three places: three 201, three 409');
my ($count) = $::dbh->selectrow_array('SELECT count(*) FROM policies WHERE tenant_id = ?', undef, $T);
is($count, 1000, 'exactly 1000 rules');
my $r = internal("?tenant_id=$T");
is(scalar @{ $r->{json}{rules} }, 1000, 'the internal load answers all of them');
my ($rc, $out) = policy_check($r->{body});
is($rc, 0, '... and they compile') or diag $out;
$::tok = $tok;
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /trueportai-services/api/v1/policies
{"name": "one too many", "type": "regex", "action": "log", "config": {"patterns": ["x"]}}
--- more_headers eval
"Authorization: Bearer $::tok\nContent-Type: application/json"
--- error_code: 409
--- response_body_like: ^\{"error":\{"code":"policy_limit_reached","message":"a tenant may have at most 1000 policies: delete one first"



=== TEST 20: a suspended tenant's rules cannot be managed (the gateway still loads them)
--- init
$::dbh->do(q{UPDATE tenants SET status = 'suspended' WHERE id = ?}, undef, $::B);
is(internal("?tenant_id=$::B")->{status}, 200, 'the internal load still answers');
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/policies
--- more_headers eval
"Authorization: Bearer $::b_admin"
--- error_code: 403
--- response_body_like: "code":"tenant_suspended"



=== TEST 21: deleting a tenant deletes its rules
--- init
my $T = tenant();
my $tok = member($T, 'admin');
create($tok, { name => 'r', type => 'regex', action => 'log', config => { patterns => ['x'] } });
$::dbh->do('DELETE FROM tenants WHERE id = ?', undef, $T);
my ($count) = $::dbh->selectrow_array('SELECT count(*) FROM policies WHERE tenant_id = ?', undef, $T);
is($count, 0, 'no rule outlives its tenant');
$::gone = $T;
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/policies?limit=1
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200



=== TEST 22: nothing in this file made the sidecar answer 5xx
--- init
open my $fh, '<', work_dir() . '/logs/sidecar.log' or die $!;
my @bad = grep { / status=5\d\d / } <$fh>;
is(scalar @bad, 0, 'no 5xx in the sidecar log') or diag @bad;
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/policies
--- error_code: 401
