# The team through nginx: members (list, change a role, remove, the
# last-owner rule), invitations (create, list, revoke, accept by the
# invited address only), roles one step too low, another tenant's ids,
# bad tokens, malformed bodies, and the audit rows.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Org;
use Digest::SHA qw(sha256_hex);

use_sidecar();

our $dbh = dbh();
our $A = org_tenant(name => 'Acme');
our ($owner, $owner_id) = org_member($A, 'owner');
our ($admin, $admin_id) = org_member($A, 'admin');
our ($memb, $memb_id) = org_member($A, 'member');
our ($viewer, $viewer_id) = org_member($A, 'viewer');
our $B = org_tenant(name => 'Bravo');
our ($b_owner, $b_owner_id) = org_member($B, 'owner');
our ($b_memb, $b_memb_id) = org_member($B, 'member');
our $carol = org_user(email => 'carol@example.com', name => 'Carol');
our $g_carol = org_global($carol);
our ($inv_id, $token, $tok2, $x, $y);

# the token of the newest invite mail to an address
sub invite_token {
    my ($to) = @_;
    my ($body) = $dbh->selectrow_array(
        'SELECT body FROM outbox WHERE to_addr = ? ORDER BY id DESC LIMIT 1',
        undef, $to);
    return ($body // '') =~ /"token": "(inv_[0-9a-f]{64})"/ ? $1 : undef;
}

run_tests();

__DATA__

=== TEST 1: members: every role may list them, in joining order
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/members
--- more_headers eval
"Authorization: Bearer $::viewer"
--- error_code: 200
--- response_body_like eval
my $item = '\{"user_id":"[0-9a-f-]{36}","email":"user\d+-\d+@example.com","name":"User \d+","role":"%s","joined_at":"20\d\d-[^"]+Z"\}';
qr/^\{"items":\[${\ sprintf($item, 'owner')},${\ sprintf($item, 'admin')},${\ sprintf($item, 'member')},${\ sprintf($item, 'viewer')}\],"total":4,"limit":50,"offset":0\}$/
--- no_error_log
[error]



=== TEST 2: members of another tenant never show
--- init
my $r = pcall($::b_owner, GET => '/service/members');
is($r->{json}{total}, 2, 'B has 2 members');
my %ids = map { $_->{user_id} => 1 } @{ $r->{json}{items} };
ok(!$ids{$::owner_id} && !$ids{$::admin_id}, "no member of A in B's list");
# every page shape of A's four against the whole list: full with rows
# after it (counted), exactly full, the last page (offset + rows), past it
my @all = map { $_->{user_id} } @{ pcall($::viewer, GET => '/service/members')->{json}{items} };
is(scalar @all, 4, "A's whole list");
for my $limit (1 .. 5) {
    for my $offset (0 .. 5) {
        my $p = pcall($::viewer, GET => "/service/members?limit=$limit&offset=$offset");
        my @want = $offset >= @all ? () : @all[$offset .. ($offset + $limit > @all ? $#all : $offset + $limit - 1)];
        is_deeply([[map { $_->{user_id} } @{ $p->{json}{items} }], $p->{json}{total}],
                  [\@want, 4], "members limit=$limit offset=$offset: items and total");
    }
}
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/members?limit=1&offset=1
--- more_headers eval
"Authorization: Bearer $::viewer"
--- response_body_like: ^\{"items":\[\{[^\[\]]*"role":"admin"[^\[\]]*\}\],"total":4,"limit":1,"offset":1\}$



=== TEST 3: members pagination bounds
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "GET /platform/api/service/members?$_" }
 'limit=0', 'limit=201', 'limit=-1', 'limit=abc', 'limit=200', 'offset=99']
--- more_headers eval
"Authorization: Bearer $::viewer"
--- error_code eval
[400, 400, 400, 400, 200, 200]
--- response_body_like eval
['invalid_pagination', 'invalid_pagination', 'invalid_pagination',
 'invalid_pagination', '"total":4,"limit":200,"offset":0\}$',
 '^\{"items":\[\],"total":4,"limit":50,"offset":99\}$']



=== TEST 4: bad tokens: 401 on every team route
--- init
my %bad = bad_tokens($::owner_id, $::A);
my @routes = ([GET => '/service/members'],
              [PATCH => "/service/members/$::memb_id", { role => 'viewer' }],
              [DELETE => "/service/members/$::memb_id"],
              [POST => '/service/invites', { email => 'x@example.com' }],
              [GET => '/service/invites'],
              [DELETE => '/service/invites/00000000-0000-4000-8000-000000000000'],
              [POST => '/global/invites/accept', { token => 'inv_x' }]);
for my $name (sort keys %bad) {
    for my $rt (@routes) {
        my $r = pcall($bad{$name}, @$rt);
        is($r->{status}, 401, "$rt->[0] $rt->[1], $name: 401");
    }
}
is(scalar(() = $::dbh->selectrow_array('SELECT 1 FROM invites')), 0,
   'no invite was made');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/members
--- error_code: 401
--- response_body_like: "code":"unauthorized"



=== TEST 5: a member (one step below admin): 403 on every admin team route
--- init
my @routes = ([PATCH => "/service/members/$::viewer_id", { role => 'member' }],
              [DELETE => "/service/members/$::viewer_id"],
              [POST => '/service/invites', { email => 'y@example.com' }],
              [GET => '/service/invites'],
              [DELETE => '/service/invites/00000000-0000-4000-8000-000000000000']);
for my $rt (@routes) {
    my $r = pcall($::memb, @$rt);
    is($r->{status}, 403, "member: $rt->[0] $rt->[1]: 403");
    like($r->{body}, qr/"code":"insufficient_role"/, '... insufficient_role');
}
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM memberships WHERE tenant_id = ?}, undef, $::A->{id});
is($n, 4, 'nobody was removed');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"DELETE /platform/api/service/members/$::viewer_id"
--- more_headers eval
"Authorization: Bearer $::memb"
--- error_code: 403
--- response_body_like: "this action needs the admin role \(you are member\)"



=== TEST 6: change a role: admin makes the viewer a member
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PATCH /platform/api/service/members/$::viewer_id\n{\"role\": \"member\"}"
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
qr/^\{"user_id":"$::viewer_id","email":"[^"]+","name":"[^"]+","role":"member","joined_at":"[^"]+"\}$/
--- no_error_log
[error]



=== TEST 7: the role change is audited, and applies to the old token at once
--- init
my @a = audit_rows('member.role_changed', $::A->{id});
is(scalar @a, 1, 'one audit row');
is_deeply($a[0]{detail}, { from => 'viewer', to => 'member' }, 'from/to');
is($a[0]{target}, $::viewer_id, 'target: the user');
is($a[0]{actor_id}, $::admin_id, 'actor: the admin');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/info
--- more_headers eval
"Authorization: Bearer $::viewer"
--- response_body_like: "role":"member"



=== TEST 8: role changes nobody may make
--- init
# an admin cannot grant owner, nor touch an owner
my $r = pcall($::admin, PATCH => "/service/members/$::memb_id", { role => 'owner' });
is($r->{status}, 403, 'admin grants owner: 403');
$r = pcall($::admin, PATCH => "/service/members/$::owner_id", { role => 'member' });
is($r->{status}, 403, "admin demotes the owner: 403");
like($r->{body}, qr/only an owner/, '... only an owner can');
# the last owner cannot be demoted
$r = pcall($::owner, PATCH => "/service/members/$::owner_id", { role => 'admin' });
is($r->{status}, 409, 'the last owner demotes themself: 409');
like($r->{body}, qr/"code":"last_owner"/, '... last_owner');
# the same role is a no-op without an audit row
$r = pcall($::owner, PATCH => "/service/members/$::owner_id", { role => 'owner' });
is($r->{status}, 200, 'the same role: 200');
is(scalar(audit_rows('member.role_changed', $::A->{id})), 1, '... not audited');
# another tenant's member, bad ids
$r = pcall($::admin, PATCH => "/service/members/$::b_memb_id", { role => 'viewer' });
is($r->{status}, 404, "B's member from A: 404");
my ($role) = $::dbh->selectrow_array(
    'SELECT role FROM memberships WHERE user_id = ?', undef, $::b_memb_id);
is($role, 'member', "... and B's member is unchanged");
is(pcall($::admin, PATCH => '/service/members/nope', { role => 'viewer' })->{status},
   404, 'a non-uuid id: 404');
is(pcall($::admin, PATCH => '/service/members/00000000-0000-4000-8000-000000000000',
         { role => 'viewer' })->{status}, 404, 'an unknown id: 404');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PATCH /platform/api/service/members/$::memb_id\n{\"role\": \"owner\"}"
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 403
--- response_body_like: "you cannot grant a role above your own \(admin\)"



=== TEST 9: role change bodies: 400 malformed, 422 missing / mistyped / unknown
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PATCH /platform/api/service/members/$::memb_id\n{\"role\": ",
 "PATCH /platform/api/service/members/$::memb_id\n[]",
 "PATCH /platform/api/service/members/$::memb_id\n{}",
 "PATCH /platform/api/service/members/$::memb_id\n{\"role\": 3}",
 "PATCH /platform/api/service/members/$::memb_id\n{\"role\": \"superuser\"}",
 "PATCH /platform/api/service/members/$::memb_id\n{\"role\": \"viewer\", \"name\": \"x\"}"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[400, 400, 422, 422, 422, 422]
--- response_body_like eval
['invalid_json', 'invalid_json', 'missing_field', 'must be a string',
 'must be viewer, member, admin or owner', 'unknown_field']



=== TEST 10: remove a member: 204; the removed user's token stops working
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"DELETE /platform/api/service/members/$::memb_id"
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 204
--- response_body:
--- no_error_log
[error]



=== TEST 11: removal is audited; the old token gets 403
--- init
my @a = audit_rows('member.removed', $::A->{id});
is(scalar @a, 1, 'one audit row');
is($a[0]{target}, $::memb_id, 'target: the removed user');
is($a[0]{detail}{role}, 'member', 'detail: the role they had');
my ($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM memberships WHERE user_id = ?', undef, $::memb_id);
is($n, 0, 'the membership is gone');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/members
--- more_headers eval
"Authorization: Bearer $::memb"
--- error_code: 403
--- response_body_like: "not a member of this tenant"



=== TEST 12: removals nobody may make
--- init
my $r = pcall($::admin, DELETE => "/service/members/$::owner_id");
is($r->{status}, 403, 'an admin removes an owner: 403');
$r = pcall($::owner, DELETE => "/service/members/$::owner_id");
is($r->{status}, 409, 'the last owner removes themself: 409');
$r = pcall($::admin, DELETE => "/service/members/$::b_memb_id");
is($r->{status}, 404, "B's member from A: 404");
my ($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM memberships WHERE user_id = ?', undef, $::b_memb_id);
is($n, 1, "... and B's member stays");
is(pcall($::admin, DELETE => "/service/members/$::memb_id")->{status}, 404,
   'a member already removed: 404');
is(pcall($::admin, DELETE => '/service/members/1%27%20OR%201=1')->{status},
   404, 'a non-uuid id: 404');
($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM memberships WHERE tenant_id = ? AND role = 'owner'},
    undef, $::A->{id});
is($n, 1, 'the owner is still there');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"DELETE /platform/api/service/members/$::owner_id"
--- more_headers eval
"Authorization: Bearer $::owner"
--- error_code: 409
--- response_body_like: ^\{"error":\{"code":"last_owner","message":"cannot remove the last owner: make another member owner first"



=== TEST 13: with a second owner, an owner can be removed (and demoted)
--- init
my $r = pcall($::owner, PATCH => "/service/members/$::admin_id", { role => 'owner' });
is($r->{status}, 200, 'the owner makes the admin an owner');
$::admin = org_scoped($::admin_id, $::A, 'owner');
$r = pcall($::admin, PATCH => "/service/members/$::owner_id", { role => 'admin' });
is($r->{status}, 200, 'one owner demotes the other');
$r = pcall($::admin, PATCH => "/service/members/$::owner_id", { role => 'owner' });
is($r->{status}, 200, '... and back');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"DELETE /platform/api/service/members/$::owner_id"
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 204



=== TEST 14: invite: 201 without the token; the token goes to the outbox
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/invites
{"email": "Carol@Example.COM", "role": "admin"}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 201
--- response_body_like eval
qr/^\{"id":"[0-9a-f-]{36}","email":"carol\@example.com","role":"admin","invited_by":"$::admin_id","invited_by_email":"[^"]+","status":"pending","created_at":"[^"]+","expires_at":"[^"]+"\}$/
--- no_error_log
[error]



=== TEST 15: only the token's SHA-256 is stored; the mail says how to accept
--- init
$::token = invite_token('carol@example.com');
ok($::token, 'the outbox has an invite token');
my $row = $::dbh->selectrow_hashref(
    q{SELECT *, expires_at - created_at AS ttl FROM invites WHERE email = 'carol@example.com'});
$::inv_id = $row->{id};
is($row->{token_hash}, sha256_hex($::token), 'token_hash is the SHA-256');
ok(!(grep { defined && index($_, $::token) >= 0 } values %$row),
   'no column holds the token');
is($row->{ttl}, '7 days', 'valid for 7 days');
my ($subject, $body) = $::dbh->selectrow_array(
    q{SELECT subject, body FROM outbox WHERE to_addr = 'carol@example.com'});
like($subject, qr/invited to Acme/, 'subject names the tenant');
like($body, qr{/platform/api/global/invites/accept}, 'body names the route');
my @a = audit_rows('invite.created', $::A->{id});
is(scalar @a, 1, 'audited');
is_deeply($a[0]{detail}, { email => 'carol@example.com', role => 'admin' },
          'audit detail: email and role, no token');
unlike(join(' ', map { $_ // '' } %{ $a[0] }), qr/inv_/, 'no token in the audit row');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/invites
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200
--- response_body_like: ^\{"items":\[\{"id":"[0-9a-f-]{36}","email":"carol@example.com","role":"admin","invited_by":"[^"]+","invited_by_email":"[^"]+","status":"pending","created_at":"[^"]+","expires_at":"[^"]+"\}\],"total":1,"limit":50,"offset":0\}$



=== TEST 16: invites nobody may send
--- init
# a new admin for A (the old one is an owner now)
my ($adm) = org_member($::A, 'admin');
$::x = $adm;
my $r = pcall($adm, POST => '/service/invites', { email => 'dan@example.com', role => 'owner' });
is($r->{status}, 403, 'an admin invites an owner: 403');
$r = pcall($::admin, POST => '/service/invites', { email => 'dan@example.com', role => 'owner' });
is($r->{status}, 201, 'an owner may invite an owner');
my ($email) = $::dbh->selectrow_array('SELECT email FROM users WHERE id = ?',
                                      undef, $::viewer_id);
$r = pcall($adm, POST => '/service/invites', { email => uc $email });
is($r->{status}, 409, 'an existing member (any case): 409');
like($r->{body}, qr/already_member/, '... already_member');
$r = pcall($adm, POST => '/service/invites', { email => 'eve@example.com' });
is($r->{status}, 201, 'role defaults to member');
is($r->{json}{role}, 'member', '... member');
# B cannot see or revoke A's invites
$r = pcall($::b_owner, GET => '/service/invites');
is($r->{json}{total}, 0, "B sees none of A's invites");
$r = pcall($::b_owner, DELETE => "/service/invites/$::inv_id");
is($r->{status}, 404, "B revokes A's invite: 404");
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /platform/api/service/invites\n{\"email\": \"a\@b\"}",
 "POST /platform/api/service/invites\n{\"email\": \"no-at-sign.example.com\"}",
 "POST /platform/api/service/invites\n{\"email\": \"two\@\@example.com\"}",
 "POST /platform/api/service/invites\n{\"email\": \"sp ace\@example.com\"}",
 "POST /platform/api/service/invites\n{\"email\": \"x\@example.com\", \"role\": \"god\"}",
 "POST /platform/api/service/invites\n{\"email\": 7}",
 "POST /platform/api/service/invites\n{\"role\": \"member\"}",
 "POST /platform/api/service/invites\n{\"email\": \"x\@example.com\", \"token\": \"mine\"}",
 "POST /platform/api/service/invites\n{\"email\": \"x\@example.com\""]
--- more_headers eval
"Authorization: Bearer $::x\nContent-Type: application/json"
--- error_code eval
[422, 422, 422, 422, 422, 422, 422, 422, 400]
--- response_body_like eval
['not an email address', 'not an email address', 'not an email address',
 'not an email address', 'must be viewer, member, admin or owner',
 'must be a string', 'missing_field', 'unknown_field', 'invalid_json']



=== TEST 16b: an oversize invite body: 413 from the sidecar
--- config
    location /platform/api/ {
        client_max_body_size 8m;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/service/invites\n" . '{"email": "' . ('x' x (1100 * 1024)) . '@example.com"}'
--- more_headers eval
"Authorization: Bearer $::x\nContent-Type: application/json"
--- error_code: 413
--- response_body_like: "code":"payload_too_large"



=== TEST 17: inviting again replaces the pending invite (the old token dies)
--- init
my $r = pcall($::admin, POST => '/service/invites', { email => 'carol@example.com', role => 'viewer' });
is($r->{status}, 201, 're-invite: 201');
$::tok2 = invite_token('carol@example.com');
isnt($::tok2, $::token, 'a new token');
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM invites WHERE email = 'carol@example.com'});
is($n, 1, 'one pending invite for the address');
$r = pcall($::g_carol, POST => '/global/invites/accept', { token => $::token });
is($r->{status}, 404, 'the replaced token: 404');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/invites?limit=2&offset=0
--- more_headers eval
"Authorization: Bearer $::admin"
--- response_body_like: "total":3,"limit":2,"offset":0\}$



=== TEST 18: accept: another address is refused
--- init
$::x = org_global($::b_owner_id);
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/invites/accept\n{\"token\": \"$::tok2\"}"
--- more_headers eval
"Authorization: Bearer $::x\nContent-Type: application/json"
--- error_code: 403
--- response_body_like: "code":"invite_email_mismatch"



=== TEST 19: accept: the invited address joins with the invited role
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/invites/accept\n{\"token\": \"$::tok2\"}"
--- more_headers eval
"Authorization: Bearer $::g_carol\nContent-Type: application/json"
--- error_code: 200
--- response_body_like eval
qr/^\{"tenant":\{"id":"$::A->{id}","slug":"$::A->{slug}","name":"Acme"\},"role":"viewer"\}$/
--- no_error_log
[error]



=== TEST 20: accepted: membership, invite closed, audit; a second accept is 410
--- init
my ($role) = $::dbh->selectrow_array(
    'SELECT role FROM memberships WHERE tenant_id = ? AND user_id = ?',
    undef, $::A->{id}, $::carol);
is($role, 'viewer', 'carol is a viewer of A');
my $inv = $::dbh->selectrow_hashref(
    q{SELECT * FROM invites WHERE email = 'carol@example.com'});
ok($inv->{accepted_at}, 'the invite is accepted');
is($inv->{accepted_by}, $::carol, '... by carol');
my @a = audit_rows('invite.accepted', $::A->{id});
is(scalar @a, 1, 'audited');
is($a[0]{actor_id}, $::carol, '... with carol as the actor');
is(pcall($::admin, GET => '/service/invites')->{json}{total}, 2,
   'no longer pending');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/invites/accept\n{\"token\": \"$::tok2\"}"
--- more_headers eval
"Authorization: Bearer $::g_carol\nContent-Type: application/json"
--- error_code: 410
--- response_body_like: "code":"invite_used"



=== TEST 21: accept: expired 410, unknown 404, already a member 409, suspended 403
--- init
my $dave = org_user(email => 'dan@example.com');
$::dbh->do(q{UPDATE invites SET expires_at = now() - interval '1 second'
             WHERE email = 'dan@example.com'});
my ($t) = $::dbh->selectrow_array(
    q{SELECT body FROM outbox WHERE to_addr = 'dan@example.com'}) =~ /"token": "(inv_\w+)"/;
my $r = pcall(org_global($dave), POST => '/global/invites/accept', { token => $t });
is($r->{status}, 410, 'expired: 410');
like($r->{body}, qr/invite_expired/, '... invite_expired');
is(pcall($::admin, GET => '/service/invites')->{json}{total}, 1,
   'an expired invite is no longer listed as pending');
# invited, then added by other means before accepting
my $eve = org_user(email => 'eve@example.com');
$::dbh->do(q{INSERT INTO memberships (tenant_id, user_id, role) VALUES (?, ?, 'viewer')},
           undef, $::A->{id}, $eve);
my $te = invite_token('eve@example.com');
$r = pcall(org_global($eve), POST => '/global/invites/accept', { token => $te });
is($r->{status}, 409, 'already a member: 409');
# a suspended tenant's invite
my $frank = org_user(email => 'frank@example.com');
is(pcall($::b_owner, POST => '/service/invites', { email => 'frank@example.com' })->{status},
   201, 'B invites frank');
$::dbh->do(q{UPDATE tenants SET status = 'suspended' WHERE id = ?}, undef, $::B->{id});
$r = pcall(org_global($frank), POST => '/global/invites/accept',
           { token => invite_token('frank@example.com') });
is($r->{status}, 403, 'a suspended tenant: 403');
like($r->{body}, qr/tenant_suspended/, '... tenant_suspended');
$::dbh->do(q{UPDATE tenants SET status = 'active' WHERE id = ?}, undef, $::B->{id});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /platform/api/global/invites/accept\n{\"token\": \"inv_0000\"}",
 "POST /platform/api/global/invites/accept\n{\"token\": \"\"}",
 "POST /platform/api/global/invites/accept\n{\"token\": 1}",
 "POST /platform/api/global/invites/accept\n{}",
 "POST /platform/api/global/invites/accept\n{\"token\": \"x\", \"role\": \"owner\"}",
 "POST /platform/api/global/invites/accept\nnot json"]
--- more_headers eval
"Authorization: Bearer $::g_carol\nContent-Type: application/json"
--- error_code eval
[404, 422, 422, 422, 422, 400]
--- response_body_like eval
['invite_not_found', 'must not be empty', 'must be a string', 'missing_field',
 'unknown_field', 'invalid_json']



=== TEST 22: revoke: 204, audited, the token dies; twice is 404
--- init
my ($id) = $::dbh->selectrow_array(
    q{SELECT id FROM invites WHERE email = 'frank@example.com'});
$::y = $id;
my ($adm) = org_member($::A, 'admin');
my ($oid) = $::dbh->selectrow_array(
    q{SELECT id FROM invites WHERE email = 'dan@example.com'});
my $r = pcall($adm, DELETE => "/service/invites/$oid");
is($r->{status}, 403, "an admin revokes an owner's invite: 403");
is(pcall($::admin, DELETE => '/service/invites/not-an-id')->{status}, 404,
   'a non-uuid id: 404');
is(pcall($::admin, DELETE => "/service/invites/$id")->{status}, 404,
   "B's invite from A: 404");
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["DELETE /platform/api/service/invites/$::y",
 "DELETE /platform/api/service/invites/$::y"]
--- more_headers eval
"Authorization: Bearer $::b_owner"
--- error_code eval
[204, 404]



=== TEST 23: a revoked invite cannot be accepted
--- init
my @a = audit_rows('invite.revoked', $::B->{id});
is(scalar @a, 1, 'revocation audited');
is($a[0]{detail}{email}, 'frank@example.com', '... with the address');
$::x = org_global($::dbh->selectrow_array(
    q{SELECT id FROM users WHERE email = 'frank@example.com'}));
$::y = invite_token('frank@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/invites/accept\n{\"token\": \"$::y\"}"
--- more_headers eval
"Authorization: Bearer $::x\nContent-Type: application/json"
--- error_code: 404
--- response_body_like: invite_not_found



=== TEST 24: invites pagination bounds
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "GET /platform/api/service/invites?$_" }
 'limit=0', 'limit=201', 'limit=-1', 'limit=abc', 'limit=200', 'offset=10']
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code eval
[400, 400, 400, 400, 200, 200]
--- response_body_like eval
['invalid_pagination', 'invalid_pagination', 'invalid_pagination',
 'invalid_pagination', '"limit":200', '^\{"items":\[\],"total":1,"limit":50,"offset":10\}$']
--- no_error_log
[error]



=== TEST 25: two owners removing each other at once: one of them stays
--- init
my $lost = 0;
for my $round (1 .. 8) {
    my $t = org_tenant();
    my ($o1, $id1) = org_member($t, 'owner');
    my ($o2, $id2) = org_member($t, 'owner');
    my @kids;
    for my $pair ([$o1, $id2], [$o2, $id1]) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my $r = pcall($pair->[0], DELETE => "/service/members/$pair->[1]");
            POSIX::_exit($r->{status} == 204 ? 0 : $r->{status} =~ m{^40[39]$} ? 1 : 2);
        }
        push @kids, $pid;
    }
    my @rc = map { waitpid($_, 0); $? >> 8 } @kids;
    my ($owners) = $::dbh->selectrow_array(
        q{SELECT count(*) FROM memberships WHERE tenant_id = ? AND role = 'owner'},
        undef, $t->{id});
    $lost++ if $owners != 1 || (grep { $_ == 2 } @rc);
}
is($lost, 0, 'every round: exactly one removal won, the other got 409 (or 403)');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/members
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200



=== TEST 26: the team routes count against the management limit (300/min/user)
--- init
my ($tok) = org_member($::A, 'admin');
$::x = $tok;
my $ok = 0;
$ok += pcall($tok, GET => '/service/members?limit=1')->{status} == 200 for 1 .. 300;
is($ok, 300, '300 requests in a minute are fine');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /platform/api/service/invites", "DELETE /platform/api/service/members/$::viewer_id"]
--- more_headers eval
"Authorization: Bearer $::x"
--- error_code: 429
--- response_headers_like
Retry-After: ^\d+$
--- response_body_like: "code":"rate_limited"



=== TEST 27: ... per user: another member is not limited
--- init
my ($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM memberships WHERE user_id = ?', undef, $::viewer_id);
is($n, 1, 'the limited DELETE removed nobody');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/members
--- more_headers eval
"Authorization: Bearer $::viewer"
--- error_code: 200
