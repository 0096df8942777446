# A hostile tenant admin harms no one but their own tenant (issue 13,
# findings 5 and 6, the sidecar's part): paid plans are not for the
# asking (self-service plans only; a platform admin assigns the others and
# sets what a plan allows), the tenants a user creates are capped, the
# operator's default provider keys are spent only by plans that allow it
# (else 503 credential_missing), sent mail keeps no code or token and old
# rows go, log_prompts=false keeps prompt excerpts out of the spool, and a
# token scoped to one tenant is refused on the account's global routes.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Test::TruePort::Org;
use File::Path qw(make_path);
use MIME::Base64 ();
use Time::HiRes qw(sleep time);

our $W = work_dir();
our $NGX_SPOOL = "$W/ngx-spool";       # nginx writes, nobody ingests
make_path("$W/mail", "$W/sc-spool", $NGX_SPOOL, { mode => 0755 });

open my $fh, '>', "$W/sendmail.sh" or die $!;
print $fh "#!/bin/sh\nf=\$(mktemp $W/mail/msg.XXXXXX)\ncat > \"\$f\"\n";
close $fh;
chmod 0755, "$W/sendmail.sh";

# the ingester (and its retention job) reads an empty spool of its own, so
# what nginx spools stays on disk to be read here
use_sidecar(env => { TRUEPORT_SENDMAIL => "$W/sendmail.sh",
                     TRUEPORT_SPOOL_DIR => "$W/sc-spool" });
# no plan spends the routes' default keys until the operator says so
$Test::TruePort::Gateway::OPERATOR_KEYS = 0;
gw_setup(policy => 1);

our $dbh = dbh();
our $G = '/platform/api/global';
our ($root, $root_id) = org_platform_admin('root@example.com');
our $CHAT = '/trueportai-services/openai/v1/chat/completions';

# -- fixtures ------------------------------------------------------------------

# a user signed up through the API: (global token, user id)
sub signup {
    my ($email) = @_;
    my $r = sidecar_api(POST => "$G/auth/register",
                        { email => $email, password => 'correct horse battery',
                          name => 'N' });
    die "register: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    $r = sidecar_api(POST => "$G/auth/login",
                     { email => $email, password => 'correct horse battery' });
    die "login: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    return ($r->{json}{global_access_token}, undef);
}

# the platform API straight from the sidecar: an init or check section
# runs under whichever nginx config the block before it left running
sub scall {
    my ($tok, $method, $path, $body, %h) = @_;
    return sidecar_api($method, "/platform/api$path", $body,
        { (defined $tok ? (Authorization => "Bearer $tok") : ()), %h });
}

sub scall_raw {
    my ($tok, $method, $path, $raw) = @_;
    return scall($tok, $method, $path, $raw, 'Content-Type' => 'application/json');
}

sub create_tenant {
    my ($tok, $slug) = @_;
    return scall($tok, POST => '/global/tenants', { name => $slug, slug => $slug });
}

sub claims {
    my ($token) = @_;
    my $p = (split /\./, $token)[1] // '';
    $p =~ tr{-_}{+/};
    $p .= '=' x ((4 - length($p) % 4) % 4);
    return json_decode(MIME::Base64::decode_base64($p)) || {};
}

# the newest outbox row to an address, once it is no longer pending
sub settled {
    my ($to) = @_;
    my $deadline = time + 10;
    while (1) {
        my $row = $dbh->selectrow_hashref(
            'SELECT * FROM outbox WHERE to_addr = ? ORDER BY id DESC LIMIT 1',
            undef, $to);
        return $row if ($row && ($row->{sent_at} || $row->{attempts} > 0))
                       || time > $deadline;
        sleep 0.1;
    }
}

sub delivered {
    my ($pattern) = @_;
    for my $f (glob "$W/mail/msg.*") {
        open my $in, '<', $f or next;
        local $/;
        my $text = <$in>;
        return $text if $text =~ $pattern;
    }
    return '';
}

sub until_gone {
    my ($sql, @bind) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        my ($n) = $dbh->selectrow_array($sql, undef, @bind);
        return 1 if !$n;
        sleep 0.1;
    }
    return 0;
}

# the violation lines nginx spooled for a tenant
sub spooled_violations {
    my ($tid, $want) = @_;
    my $deadline = time + 5;
    my @v;
    while (1) {
        @v = ();
        for my $f (glob "$NGX_SPOOL/*") {
            open my $in, '<', $f or next;
            while (my $l = <$in>) {
                push @v, $l if $l =~ /"type":"violation"/
                               && index($l, qq("tenant_id":"$tid")) >= 0;
            }
        }
        return @v if @v >= $want || time > $deadline;
        sleep 0.1;
    }
}

# -- the gateway's tenants -------------------------------------------------------

our $FREE = gw_tenant(plan => 'free');
our $FK = gw_key($FREE);
our $PRO = gw_tenant(plan => 'pro');
our $PK = gw_key($PRO);
our $OWN = gw_tenant(plan => 'free');       # a free tenant with its own key
our $OK = gw_key($OWN);
gw_credential($OWN, 'openai', 'sk-tenant-own-openai-key');

# log_prompts: two tenants with the same blocking rule, one of them keeps
# excerpts
our ($LQ, $LL) = (gw_tenant(), gw_tenant());
for my $t ($LQ, $LL) {
    my $r = sidecar_api(POST => '/trueportai-services/api/v1/policies',
                        { name => 'no email', type => 'pii',
                          config => { detectors => ['email'] },
                          action => 'block' },
                        { Authorization => "Bearer $t->{token}" });
    die "rule: $r->{status} $r->{body}\n" unless $r->{status} == 201;
}
gw_config($LL, 'log_prompts', JSON::PP::true());
our $LQK = gw_key($LQ);
our $LLK = gw_key($LL);

gw_env(FKEY => $FK->{key}, PKEY => $PK->{key}, OKEY => $OK->{key},
       LQKEY => $LQK->{key}, LLKEY => $LLK->{key},
       GW_HTTP_SPOOL => gw_http_config()
                        . "    trueport_spool $NGX_SPOOL;\n");

our $BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}';
our $MAILBODY = '{"model":"gpt-4o-mini","messages":[{"role":"user",'
              . '"content":"write to jane.roe@example.org today"}]}';
our ($FK2, $PK2);

run_tests();

__DATA__

=== TEST 1: plans carry self_service and default_credentials (the catalog shows them)
--- init
$::PT = org_tenant(name => 'Plans');
($::admin, $::admin_id) = org_member($::PT, 'owner');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/service/catalog/plans
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code: 200
--- response_body_like eval
qr/^\{"items":\[\{"id":"free",[^{]*"self_service":true,"default_credentials":false,[^]]*\{"id":"pro",[^{]*"self_service":false,"default_credentials":false,[^]]*\{"id":"enterprise",[^{]*"self_service":false,"default_credentials":false,/
--- no_error_log
[error]



=== TEST 2: a tenant admin cannot activate a plan that is not self-service: 403 plan_not_self_service, nothing changes
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST /platform/api/service/subscriptions\n{\"plan_id\": \"enterprise\"}",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": \"pro\"}",
 "POST /platform/api/service/subscriptions\n{\"plan_id\": \"free\"}"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[403, 403, 200]
--- response_body_like eval
['^\{"error":\{"code":"plan_not_self_service","message":"the enterprise plan is not self-service: the platform operator assigns it"',
 '"code":"plan_not_self_service"', '"plan":"free"']
--- check
my $subs = $::dbh->selectall_arrayref(
    'SELECT plan_id, status FROM subscriptions WHERE tenant_id = ?', undef,
    $::PT->{id});
is_deeply($subs, [['free', 'active']], 'still on free, no new subscription');
is(scalar(audit_rows('plan.activated', $::PT->{id})), 0, 'no activation audited');
my $r = scall($::admin, GET => '/service/info');
is($r->{json}{limits}{max_rpm}, 120, "free's limits still apply");



=== TEST 3: a platform admin puts the tenant on any plan (PUT /admin/tenants/{id}/plan), audited; a tenant owner cannot
--- init
my $r = scall($::admin, PUT => "/admin/tenants/$::PT->{id}/plan", { plan_id => 'enterprise' });
is($r->{status}, 403, 'the tenant owner: 403');
like($r->{body}, qr/platform admin only/, '... platform admin only');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PUT /platform/api/admin/tenants/$::PT->{id}/plan\n{\"plan_id\": \"enterprise\"}"
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code: 201
--- response_body_like: ^\{"subscription_id":"[0-9a-f-]{36}","plan":"enterprise","plan_name":"Enterprise","price_cents":49900,"status":"active","previous_plan":"free","limits":\{"default_rpm":3000,"max_rpm":30000,
--- check
my $subs = $::dbh->selectall_arrayref(
    q{SELECT plan_id, status, activated_by FROM subscriptions
       WHERE tenant_id = ? ORDER BY started_at}, undef, $::PT->{id});
is_deeply($subs, [['free', 'ended', undef], ['enterprise', 'active', $::root_id]],
          'free ended, enterprise active, activated by the platform admin');
my @a = audit_rows('tenant.plan_changed', $::PT->{id});
is(scalar @a, 1, 'audited');
is($a[0]{actor_id}, $::root_id, '... by the platform admin');
is_deeply($a[0]{detail}, { from => 'free', to => 'enterprise' }, '... from, to');
is(scall($::admin, GET => '/service/info')->{json}{plan}{id}, 'enterprise',
   'the tenant sees its new plan');
is(scall($::root, PUT => "/admin/tenants/$::PT->{id}/plan", { plan_id => 'enterprise' })->{status},
   200, 'the same plan again: 200, a no-op');
# the tenant admin may still go back to free (self-service), not return
is(scall($::admin, POST => '/service/subscriptions', { plan_id => 'free' })->{status},
   201, 'a tenant admin may downgrade to free');
is(scall($::admin, POST => '/service/subscriptions', { plan_id => 'enterprise' })->{status},
   403, '... and cannot come back');



=== TEST 4: the admin plan route refuses bad input
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["PUT /platform/api/admin/tenants/$::PT->{id}/plan\n{\"plan_id\": \"platinum\"}",
 "PUT /platform/api/admin/tenants/$::PT->{id}/plan\n{}",
 "PUT /platform/api/admin/tenants/$::PT->{id}/plan\n{\"plan_id\": \"pro\", \"price\": 0}",
 "PUT /platform/api/admin/tenants/$::PT->{id}/plan\n{\"plan_id\": 5}",
 "PUT /platform/api/admin/tenants/$::PT->{id}/plan\n{\"plan_id\"",
 "PUT /platform/api/admin/tenants/00000000-0000-4000-8000-000000000000/plan\n{\"plan_id\": \"pro\"}",
 "PUT /platform/api/admin/tenants/not-a-uuid/plan\n{\"plan_id\": \"pro\"}"]
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code eval
[422, 422, 422, 422, 400, 404, 404]
--- response_body_like eval
['"unknown_plan"', 'missing_field', 'unknown_field', 'must be a string',
 'invalid_json', 'no such tenant', 'not_found']



=== TEST 5: a platform admin sets what a plan allows (PATCH /admin/plans/{id}): pro made self-service is open to tenant admins
--- init
my $r = scall($::admin, PATCH => '/admin/plans/pro', { self_service => JSON::PP::true() });
is($r->{status}, 403, 'a tenant owner: 403');
my ($ss) = $::dbh->selectrow_array(q{SELECT self_service FROM plans WHERE id = 'pro'});
ok(!$ss, '... and pro is unchanged');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
PATCH /platform/api/admin/plans/pro
{"self_service": true}
--- more_headers eval
"Authorization: Bearer $::root\nContent-Type: application/json"
--- error_code: 200
--- response_body_like: ^\{"id":"pro","name":"Pro","price_cents":4900,"currency":"USD","interval":"month","self_service":true,"default_credentials":false,"limits":\{
--- check
my @a = audit_rows('plan.changed');
is(scalar @a, 1, 'audited');
is($a[0]{target}, 'pro', '... the plan');
ok(!defined $a[0]{tenant_id}, '... platform-wide');
is_deeply($a[0]{detail}, { self_service => JSON::PP::true(),
                           default_credentials => JSON::PP::false() }, '... the flags');
my $r = scall($::admin, POST => '/service/subscriptions', { plan_id => 'pro' });
is($r->{status}, 201, 'a tenant admin activates pro now');
$r = scall($::root, PATCH => '/admin/plans/pro', { self_service => JSON::PP::false() });
is($r->{json}{self_service}, JSON::PP::false(), 'and back');
for my $c ([{}, 422, 'missing_field'], [{ self_service => 1 }, 422, 'true or false'],
           [{ price_cents => 0 }, 422, 'unknown_field'])
{
    $r = scall($::root, PATCH => '/admin/plans/pro', $c->[0]);
    is($r->{status}, $c->[1], "PATCH " . json_encode($c->[0]) . ": $c->[1]");
    like($r->{body}, qr/\Q$c->[2]\E/, "... $c->[2]");
}
$r = scall($::root, PATCH => '/admin/plans/platinum', { self_service => JSON::PP::true() });
is($r->{status}, 404, 'an unknown plan: 404');



=== TEST 6: tenants per user: the 6th is 403 tenant_limit_reached (tenants.max_per_user, default 5)
--- init
($::u, undef) = ::signup('many@example.com');
for my $i (1 .. 5) {
    is(::create_tenant($::u, "many-$i")->{status}, 201, "tenant $i: 201");
}
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/tenants
{"name": "Six", "slug": "many-6"}
--- more_headers eval
"Authorization: Bearer $::u\nContent-Type: application/json"
--- error_code: 403
--- response_body_like: ^\{"error":\{"code":"tenant_limit_reached","message":"you may create at most 5 organisations \(tenants.max_per_user\)"
--- check
my ($n) = $::dbh->selectrow_array(q{SELECT count(*) FROM tenants WHERE slug LIKE 'many-%'});
is($n, 5, 'five tenants, no sixth');



=== TEST 7: the cap is a global config: raised, lowered to 0, bad values refused; platform admins have none
--- init
my $r = scall($::root, PUT => '/admin/configs/tenants.max_per_user', { value => 6 });
is($r->{status}, 200, 'set to 6');
like($r->{body}, qr/"key":"tenants.max_per_user","type":"integer","description":"[^"]+","value":6,"is_default":false/, '... stored');
is(::create_tenant($::u, 'many-6')->{status}, 201, 'the 6th: 201');
is(::create_tenant($::u, 'many-7')->{status}, 403, 'the 7th: 403');
for my $bad (-1, 100001, 2.5, '"5"', 'true', '[]') {
    $r = scall_raw($::root, PUT => '/admin/configs/tenants.max_per_user', "{\"value\": $bad}");
    is($r->{status}, 422, "value $bad: 422");
}
$r = scall($::root, PUT => '/admin/configs/tenants.max_per_user', { value => 0 });
is($r->{status}, 200, 'set to 0');
my ($fresh) = ::signup('fresh@example.com');
is(::create_tenant($fresh, 'fresh-1')->{status}, 403, 'a new user: none at all');
is(::create_tenant($::root, 'root-1')->{status}, 201, 'a platform admin: no limit');
is(scalar(audit_rows('global_config.changed')), 2, 'the changes are audited');
$r = scall($::root, PUT => '/admin/configs/tenants.max_per_user', { value => undef });
like($r->{body}, qr/"value":5,"is_default":true/, 'null resets to 5');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/tenants
{"name": "Fresh", "slug": "fresh-2"}
--- more_headers eval
"Authorization: Bearer $::u\nContent-Type: application/json"
--- error_code: 403
--- response_body_like: "tenant_limit_reached"



=== TEST 8: without the opt-in a tenant without its own key does not spend the route's default key (free, and pro too): 503 credential_missing, nothing upstream
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["POST /trueportai-services/openai/v1/chat/completions\n$::BODY",
 "POST /trueportai-services/anthropic/v1/messages\n{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
 "POST /trueportai-services/openai/v1/chat/completions\n$::BODY"]
--- more_headers eval
["x-api-key: $::FK->{key}\nContent-Type: application/json",
 "x-api-key: $::FK->{key}\nanthropic-version: 2023-06-01\nContent-Type: application/json",
 "x-api-key: $::PK->{key}\nContent-Type: application/json"]
--- error_code eval
[503, 503, 503]
--- response_body_like eval
[qr/^\{"error":\{"message":"no openai credential is configured for this organisation or route","type":"server_error","param":null,"code":"credential_missing"\}\}/,
 qr/^\{"type":"error","error":\{"type":"api_error","message":"no anthropic credential is configured/,
 qr/"code":"credential_missing"/]
--- check
is(scalar(mock_requests()), 0, 'nothing reached the provider');
--- error_log
no openai credential for tenant



=== TEST 9: once the operator opts pro in, pro spends the route's key; a tenant's own key is always used
--- init
my $r = scall($::root, PATCH => '/admin/plans/pro', { default_credentials => JSON::PP::true() });
is($r->{status}, 200, 'pro: default_credentials true');
# a new key: its first lookup sees the plan as it is now
$::PK2 = gw_key($::PRO);
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
["POST $::CHAT\n$::BODY", "POST $::CHAT\n$::BODY"]
--- more_headers eval
["x-api-key: $::PK2->{key}\nContent-Type: application/json",
 "x-api-key: $::OK->{key}\nContent-Type: application/json"]
--- error_code eval
[200, 200]
--- check
my @m = mock_requests();
is(scalar @m, 2, 'both reached the provider');
is($m[0]{headers}{authorization}, 'Bearer sk-route-openai', 'pro: the route key');
is($m[1]{headers}{authorization}, 'Bearer sk-tenant-own-openai-key',
   'free with its own key: that key');
--- no_error_log
[error]



=== TEST 10: once the operator opts free in (default_credentials), a free tenant's key spends the route's key
--- init
my $r = scall($::root, PATCH => '/admin/plans/free', { default_credentials => JSON::PP::true() });
is($r->{status}, 200, 'free: default_credentials true');
# a new key: its first lookup sees the plan as it is now
$::FK2 = gw_key($::FREE);
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
"POST $::CHAT\n$::BODY"
--- more_headers eval
"x-api-key: $::FK2->{key}\nContent-Type: application/json"
--- error_code: 200
--- check
gw_upstream_saw(headers => { Authorization => 'Bearer sk-route-openai' },
                key => $::FK2->{key}, label => 'free, opted in');
my $r = scall($::root, PATCH => '/admin/plans/free', { default_credentials => JSON::PP::false() });
is($r->{status}, 200, 'and out again');
--- no_error_log
[error]



=== TEST 11: log_prompts false (the default): the violation nginx spools has no excerpt
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
"POST $::CHAT\n$::MAILBODY"
--- more_headers
x-api-key: $TEST_NGINX_LQKEY
Content-Type: application/json
--- error_code: 403
--- response_body_like: "code":"policy_violation"
--- check
my @v = main::spooled_violations($::LQ->{id}, 1);
is(scalar @v, 1, 'one violation spooled');
like($v[0], qr/"rule_type":"pii","action":"block","detector":"email"/, '... the rule and detector');
like($v[0], qr/"excerpt":null\}/, '... without an excerpt (null)');
unlike($v[0], qr/jane|roe|example\.org/, '... and nothing of the prompt');



=== TEST 12: log_prompts true: the excerpt is kept (masked)
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
"POST $::CHAT\n$::MAILBODY"
--- more_headers
x-api-key: $TEST_NGINX_LLKEY
Content-Type: application/json
--- error_code: 403
--- check
my @v = main::spooled_violations($::LL->{id}, 1);
is(scalar @v, 1, 'one violation spooled');
like($v[0], qr/"excerpt":"[^"]+"/, '... with its excerpt');
unlike($v[0], qr/jane\.roe\@example\.org/, '... masked');



=== TEST 12b: the ingester stores no excerpt for a tenant whose log_prompts is off, whatever a worker's cached answer said
--- init
# a record with an excerpt as a worker still caching log_prompts=true
# would write it, for both tenants (one of them has it off)
my ($line) = main::spooled_violations($::LL->{id}, 1);
chomp $line;
my %id = (q => '6d8f2b1e-0000-4000-8000-000000000001',
          l => '6d8f2b1e-0000-4000-8000-000000000002');
(my $q = $line) =~ s/"tenant_id":"[^"]+"/"tenant_id":"$::LQ->{id}"/;
$q =~ s/"id":"[^"]+"/"id":"$id{q}"/;
(my $l = $line) =~ s/"id":"[^"]+"/"id":"$id{l}"/;
like($q, qr/"excerpt":"[^"]+"/, 'the record carries an excerpt');
open my $out, '>', "$::W/sc-spool/9797-1-1.jsonl.tmp" or die $!;
print $out "$q\n$l\n";
close $out;
rename "$::W/sc-spool/9797-1-1.jsonl.tmp", "$::W/sc-spool/9797-1-1.jsonl" or die $!;
ok(::until_gone(q{SELECT 2 - count(*) FROM violations WHERE id IN (?, ?)},
                $id{q}, $id{l}), 'both ingested');
my $rows = $::dbh->selectall_hashref(
    'SELECT id, excerpt FROM violations WHERE id IN (?, ?)', 'id', undef,
    $id{q}, $id{l});
is($rows->{$id{q}}{excerpt}, undef, 'log_prompts off: stored without the excerpt');
like($rows->{$id{l}}{excerpt} // '', qr/\S/, 'log_prompts on: the excerpt is kept');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants/check-availability?slug=some-slug
--- error_code: 200



=== TEST 13: a sent message keeps who, what and when, not its code or token
--- init
::signup('mail@example.com');
my $r = sidecar_api(POST => "$::G/auth/otp/request", { email => 'mail@example.com' });
is($r->{status}, 202, 'otp requested');
my $row = ::settled('mail@example.com');
ok($row->{sent_at}, 'sent');
my ($code) = ::delivered(qr/sign-in code is \d{6}/) =~ /code is (\d{6})/;
ok($code, 'sendmail got the code');
is($row->{body}, undef, 'the row holds no body');
is($row->{subject}, 'Your TruePort sign-in code', '... the subject (the template) stays');
my ($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM outbox WHERE body LIKE ?', undef, "%$code%");
is($n, 0, 'the code is in no outbox row');
$r = sidecar_api(POST => "$::G/auth/forgot-password", { email => 'mail@example.com' });
$row = ::settled('mail@example.com');
ok($row->{sent_at} && !defined $row->{body}, 'the reset mail: sent, no body');
my ($token) = ::delivered(qr/reset token is \S+/) =~ /reset token is (\S+)/;
ok($token, 'sendmail got the reset token');
($n) = $::dbh->selectrow_array(
    'SELECT count(*) FROM outbox WHERE body LIKE ?', undef, "%$token%");
is($n, 0, 'the reset token is in no outbox row');
# an invite's token
my $t = org_tenant(name => 'Inviting');
my ($owner) = org_member($t, 'owner');
$r = scall($owner, POST => '/service/invites', { email => 'guest@example.com', role => 'member' });
is($r->{status}, 201, 'invited') or diag $r->{body};
$row = ::settled('guest@example.com');
ok($row->{sent_at} && !defined $row->{body}, 'the invite: sent, no body');
ok(::delivered(qr/inv_\w+/), 'sendmail got the invite token');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/auth/otp/verify\n{\"email\": \"mail\@example.com\", \"code\": \"000000\"}"
--- error_code: 401



=== TEST 14: old rows go (retention, 7 days); bodies too old to send are cleared, as mail is queued
--- init
$::dbh->do(q{INSERT INTO outbox (to_addr, subject, body, created_at) VALUES
             ('old@example.com', 'old', 'code 111111', now() - interval '8 days'),
             ('stale@example.com', 'stale', 'code 222222', now() - interval '2 days'),
             ('new@example.com', 'new', 'code 333333', now())});
my $r = sidecar_api(POST => "$::G/auth/otp/request", { email => 'mail@example.com' });
is($r->{status}, 202, 'a mail queued');
my $rows = $::dbh->selectall_hashref(
    q{SELECT to_addr, body FROM outbox WHERE to_addr IN
      ('old@example.com', 'stale@example.com', 'new@example.com')}, 'to_addr');
ok(!$rows->{'old@example.com'}, 'the 8-day-old row is gone');
ok($rows->{'stale@example.com'}, 'the 2-day-old unsent row stays');
is($rows->{'stale@example.com'}{body}, undef, '... without its body (it will never be sent)');
is($rows->{'new@example.com'}{body}, 'code 333333', 'a new unsent row keeps its body');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants/check-availability?slug=some-slug
--- error_code: 200



=== TEST 15: the retention job sweeps the outbox too (TRUEPORT_OUTBOX_RETENTION_DAYS)
--- init
$::dbh->do(q{INSERT INTO outbox (to_addr, subject, body, created_at, sent_at) VALUES
             ('sent@example.com', 's', NULL, now() - interval '3 days', now() - interval '3 days'),
             ('older@example.com', 'o', 'code 444444', now() - interval '4 days', NULL)});
# the ingester sweeps once it starts, then every retention interval
restart_sidecar(TRUEPORT_OUTBOX_RETENTION_DAYS => 2);
ok(::until_gone(q{SELECT count(*) FROM outbox WHERE to_addr IN
                  ('sent@example.com', 'older@example.com')}),
   'rows older than 2 days are gone');
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM outbox WHERE to_addr = 'new@example.com'});
is($n, 1, 'a new row stays');
like(::sidecar_log_tail(50), qr/msg="outbox swept" bodies_cleared=\d+ rows_deleted=[1-9]/,
     'logged');
restart_sidecar(TRUEPORT_OUTBOX_RETENTION_DAYS => 7);
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/global/tenants/check-availability?slug=some-slug
--- error_code: 200



=== TEST 16: issued tokens say what they are (typ); a scoped token is refused on every global route
--- init
my ($g) = ::signup('typ@example.com');
is(::claims($g)->{typ}, 'global', 'login: typ global');
my $r = ::create_tenant($g, 'typ-org');
is($r->{status}, 201, 'a tenant');
$::typ_tid = $r->{json}{id};
$r = scall($g, POST => '/global/auth/select-tenant', { tenant_id => $::typ_tid });
$::scoped = $r->{json}{scoped_access_token};
is(::claims($::scoped)->{typ}, 'scoped', 'select-tenant: typ scoped');
$::global = $g;
for my $rt ([POST => '/global/tenants', { name => 'X', slug => 'typ-two' }],
            [GET => '/global/tenants'],
            [POST => '/global/auth/select-tenant', { tenant_id => $::typ_tid }],
            [PUT => '/global/auth/password', { current_password => 'correct horse battery',
                                               new_password => 'another long password' }],
            [POST => '/global/invites/accept', { token => 'inv_x' }])
{
    $r = scall($::scoped, @$rt);
    is($r->{status}, 401, "scoped token on $rt->[0] $rt->[1]: 401");
    like($r->{body}, qr/"code":"global_token_required"/, '... global_token_required');
}
my ($n) = $::dbh->selectrow_array(q{SELECT count(*) FROM tenants WHERE slug = 'typ-two'});
is($n, 0, 'no tenant was made');
$r = scall($::global, GET => '/service/info');
is($r->{status}, 401, 'a global token on a service route: 401');
like($r->{body}, qr/scoped_token_required/, '... scoped_token_required');
is(scall($::scoped, GET => '/service/info')->{status}, 200, 'the scoped token on its own routes: 200');
is(scall($::global, GET => '/global/tenants')->{status}, 200, 'the global token on its own: 200');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/auth/select-tenant\n{\"tenant_id\": \"$::typ_tid\"}"
--- more_headers eval
"Authorization: Bearer $::scoped\nContent-Type: application/json"
--- error_code: 401
--- response_body_like: ^\{"error":\{"code":"global_token_required","message":"this route needs a global token \(login\), not a scoped one"



=== TEST 17: tokens without typ (from before the claim) or whose typ contradicts their claims are refused
--- init
my $uid = ::claims($::global)->{sub};
my %c = (sub => $uid, tid => $::typ_tid, role => 'owner', env => 'production');
my @bad = (
    ['no typ, global' => jwt({ sub => $uid, typ => undef }), '/global/tenants'],
    ['no typ, scoped' => jwt({ %c, typ => undef }), '/service/info'],
    ['typ scoped, no tenant' => jwt({ sub => $uid, typ => 'scoped' }), '/service/info'],
    ['typ global with a tenant' => jwt({ %c, typ => 'global' }), '/global/tenants'],
    ['typ unknown' => jwt({ %c, typ => 'admin' }), '/service/info'],
);
for my $b (@bad) {
    my $r = scall($b->[1], GET => $b->[2]);
    is($r->{status}, 401, "$b->[0]: 401");
    like($r->{body}, qr/"code":"invalid_token"/, '... invalid_token');
}
# admin routes take either kind of a platform admin's token
my $rs = jwt({ sub => $::root_id, tid => $::typ_tid, role => 'owner', env => 'production' });
is(scall($rs, GET => '/admin/stats')->{status}, 200, "a platform admin's scoped token on an admin route: 200");
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /platform/api/global/tenants"
--- more_headers eval
"Authorization: Bearer " . jwt({ sub => ::claims($::global)->{sub}, typ => undef })
--- error_code: 401
--- response_body_like: "message":"token has no type \(issued before an upgrade\): sign in again"
