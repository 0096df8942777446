# The gateway's key lookup, GET /internal/v1/keys/resolve: only on the
# sidecar's internal listener, with the internal token, never through
# nginx's public routes; found/unknown and every status; the effective
# rpm; the tenant's decrypted credential; last_used_at; 503 while Postgres
# is down.
use lib 't/lib';
use Test::TruePort;
use Test::More;
use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use Time::HiRes ();

plan skip_all => 'node is not installed (it encrypts the test credentials)'
    unless `node --version 2>/dev/null`;

# our own master key, to encrypt credentials the way the sidecar does
my $MASTER = 'a1' x 32;
use_sidecar(env => { TRUEPORT_MASTER_KEY => $MASTER });

our $dbh = dbh();
my $n = 0;

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

# A key row as the keys API writes it; returns (the key, its id).
sub key {
    my ($tenant, %c) = @_;
    $n++;
    my $key = sprintf 'sk-test%040d', $n;
    my ($id) = $dbh->selectrow_array(
        q{INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env, rpm,
                                providers, enabled, expires_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id}, undef,
        $tenant, "key $n", substr($key, 0, 8), sha256_hex($key),
        $c{env} // 'production', $c{rpm}, $c{providers} // [],
        $c{enabled} // 1, $c{expires_at});
    return ($key, $id);
}

# "v1:" base64(nonce | ciphertext | tag), AES-256-GCM, as secrets.c writes
sub encrypt {
    my ($plain, $aad) = @_;
    my $js = q{
        const c = require('crypto');
        const [key, plain, aad] = process.argv.slice(1);
        const iv = c.randomBytes(12);
        const e = c.createCipheriv('aes-256-gcm', Buffer.from(key, 'hex'), iv);
        e.setAAD(Buffer.from(aad));
        const ct = Buffer.concat([e.update(plain, 'utf8'), e.final()]);
        process.stdout.write('v1:' + Buffer.concat([iv, ct, e.getAuthTag()]).toString('base64'));
    };
    open my $fh, '-|', 'node', '-e', $js, $MASTER, $plain, $aad or die $!;
    local $/;
    my $enc = <$fh>;
    close $fh or die "node failed\n";
    return $enc;
}

sub set_config {
    my ($tenant, $key, $value) = @_;
    $dbh->do('DELETE FROM tenant_configs WHERE tenant_id = ? AND key = ?',
             undef, $tenant, $key);
    $dbh->do('INSERT INTO tenant_configs (tenant_id, key, value) VALUES (?, ?, ?::jsonb)',
             undef, $tenant, $key, $value) if defined $value;
}

sub set_credential {
    my ($tenant, $provider, $plain, $enc) = @_;
    my $k = "providers.$provider.api_key";
    $enc //= encrypt($plain, "tenant:$tenant/$k");
    $dbh->do('DELETE FROM tenant_configs WHERE tenant_id = ? AND key = ?',
             undef, $tenant, $k);
    $dbh->do(q{INSERT INTO tenant_configs (tenant_id, key, secret, last4)
               VALUES (?, ?, ?, ?)}, undef, $tenant, $k, $enc,
             substr($plain // 'xxxx', -4));
}

sub resolve {
    my ($key_or_hash, $provider, $token) = @_;
    my $h = ($key_or_hash // '') =~ /^sk-/ ? sha256_hex($key_or_hash)
                                           : $key_or_hash;
    my $q = join '&', (defined $h ? "hash=$h" : ()),
                      (defined $provider ? "provider=$provider" : ());
    return sidecar_internal_api(GET => "/internal/v1/keys/resolve?$q", undef,
                       { 'X-TruePort-Internal-Token' => $token // internal_token() });
}

sub status_of { resolve(@_)->{json}{status} }

my ($r, $key, $id);

# -- who may ask ------------------------------------------------------------

our $T = tenant();
($key, $id) = key($T);
our $hash = sha256_hex($key);

$r = resolve($key, 'openai');
is($r->{status}, 200, 'with the internal token: 200');
$r = sidecar_internal_api(GET => "/internal/v1/keys/resolve?hash=$hash&provider=openai");
is($r->{status}, 404, 'without the internal token: 404');
like($r->{body}, qr/"code":"not_found"/, '... as if there were no such route');
is(resolve($key, 'openai', 'wrong')->{status}, 404, 'a wrong internal token: 404');
is(resolve($key, 'openai', internal_token() . 'x')->{status}, 404,
   'a longer internal token: 404');
$r = sidecar_internal_api(GET => "/internal/v1/keys/resolve?hash=$hash&provider=openai",
                 undef, { Authorization => 'Bearer ' . jwt({ sub => $T }) });
is($r->{status}, 404, 'a bearer token is no substitute: 404');
$r = sidecar_internal_api(POST => "/internal/v1/keys/resolve?hash=$hash&provider=openai",
                 {}, { 'X-TruePort-Internal-Token' => internal_token() });
is($r->{status}, 405, 'POST: 405');
$r = sidecar_api(GET => "/internal/v1/keys/resolve?hash=$hash&provider=openai",
                 undef, { 'X-TruePort-Internal-Token' => internal_token() });
is($r->{status}, 404, "the API's listener does not serve it, token or not");
like($r->{body}, qr/"code":"not_found"/, '... as if there were no such route');
is(sidecar_internal_api(GET => '/health')->{status}, 404,
   'and the internal listener serves nothing else');

# -- bad input ---------------------------------------------------------------

for my $c ([undef, 'no hash'], ['abc', 'a short hash'],
           [uc $hash, 'an uppercase hash'],
           [substr($hash, 0, 63) . 'g', 'a non-hex hash'],
           ["${hash}0", 'a 65-character hash'],
           ['%00' x 64, 'NUL bytes'])
{
    $r = resolve($c->[0], 'openai');
    is($r->{status}, 400, "$c->[1]: 400");
    like($r->{body}, qr/"code":"invalid_hash"/, "$c->[1]: invalid_hash");
}
for my $p (undef, '', 'OpenAI', 'mistral', 'openai,azure') {
    $r = resolve($key, $p);
    is($r->{status}, 400, 'provider ' . ($p // 'missing') . ': 400');
    like($r->{body}, qr/"code":"invalid_provider"/, '... invalid_provider');
}

# -- found, unknown ------------------------------------------------------------

$r = resolve('0' x 64, 'openai');
is($r->{status}, 200, 'an unknown hash: 200');
is($r->{body}, '{"found":false}', '... {"found":false}, a definitive answer');

$r = resolve($key, 'openai');
is_deeply($r->{json}, {
    found => JSON::PP::true, key_id => $id, tenant_id => $T, env => 'production',
    rpm => 60, status => 'active', expires_at => undef, credential => undef,
    endpoint => undef, policy_revision => 0,
    default_credentials => JSON::PP::false, log_prompts => JSON::PP::false,
}, 'a live key on the free plan: every field');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');

my ($k2) = key($T, env => 'staging', expires_at => '2099-01-02T03:04:05Z');
$r = resolve($k2, 'anthropic');
is($r->{json}{env}, 'staging', "the key's environment");
is($r->{json}{expires_at}, 4071006245, 'expires_at in unix seconds');

# -- the effective rpm ---------------------------------------------------------

my ($k100) = key($T, rpm => 100);
is(resolve($k100, 'openai')->{json}{rpm}, 100, "the key's own rpm");
set_config($T, 'default_rpm', '77');
is(resolve($key, 'openai')->{json}{rpm}, 77, "no rpm: the tenant's default_rpm");
is(resolve($k100, 'openai')->{json}{rpm}, 100, "the key's rpm wins over the tenant's");
for my $bad ('"77"', '0', '-5', '1e300', '[]', 'null') {
    set_config($T, 'default_rpm', $bad);
    is(resolve($key, 'openai')->{json}{rpm}, 60, "a default_rpm of $bad is ignored: the plan's");
}
set_config($T, 'default_rpm', undef);

our $PRO = tenant('pro');
my ($kpro) = key($PRO);
my ($kfast) = key($PRO, rpm => 3000);
is(resolve($kpro, 'openai')->{json}{rpm}, 600, "the pro plan's default");
is(resolve($kfast, 'openai')->{json}{rpm}, 3000, 'a key at the pro cap');
$dbh->do(q{UPDATE subscriptions SET status = 'ended', ended_at = now() WHERE tenant_id = ?},
         undef, $PRO);
$dbh->do(q{INSERT INTO subscriptions (tenant_id, plan_id) VALUES (?, 'free')}, undef, $PRO);
is(resolve($kfast, 'openai')->{json}{rpm}, 120, "after a downgrade: capped at the new plan's max_rpm");
is(resolve($kpro, 'openai')->{json}{rpm}, 60, "... and the default is the new plan's");

# -- every status, and which one wins ----------------------------------------------

my ($kd, $kdid) = key($T, enabled => 0);
is(status_of($kd, 'openai'), 'disabled', 'disabled');
my ($ke, $keid) = key($T, expires_at => '2001-01-01T00:00:00Z');
is(status_of($ke, 'openai'), 'expired', 'expired');
$r = resolve($ke, 'openai');
is($r->{json}{expires_at}, 978307200, '... with its expiry');
$dbh->do(q{UPDATE api_keys SET expires_at = now() + interval '1 second' WHERE id = ?}, undef, $keid);
is(status_of($ke, 'openai'), 'active', 'a second before expiry: active');
Time::HiRes::sleep(1.5);
is(status_of($ke, 'openai'), 'expired', 'a moment after: expired');

my ($kx, $kxid) = key($T);
$dbh->do('UPDATE api_keys SET deleted_at = now() WHERE id = ?', undef, $kxid);
is(status_of($kx, 'openai'), 'deleted', 'deleted: found, with the status');

my ($kp) = key($T, providers => ['anthropic', 'google']);
is(status_of($kp, 'openai'), 'provider_not_allowed', "a provider outside the key's list");
is(status_of($kp, 'google'), 'active', "a provider in the key's list");
set_config($T, 'allowed_providers', '["google", "azure"]');
is(status_of($kp, 'anthropic'), 'provider_not_allowed', "a provider the tenant does not allow");
is(status_of($kp, 'google'), 'active', 'allowed by both');
is(status_of($key, 'azure'), 'active', "a key for every provider, within the tenant's list");
is(status_of($key, 'openai'), 'provider_not_allowed', "... and outside it");
set_config($T, 'allowed_providers', '[]');
is(status_of($key, 'google'), 'provider_not_allowed', 'the tenant allows nothing');
set_config($T, 'allowed_providers', undef);

# precedence: deleted, tenant_suspended, disabled, expired, provider_not_allowed
my ($kall, $kallid) = key($T, enabled => 0, expires_at => '2001-01-01T00:00:00Z',
                          providers => ['google']);
is(status_of($kall, 'openai'), 'disabled', 'disabled before expired and provider');
$dbh->do(q{UPDATE tenants SET status = 'suspended' WHERE id = ?}, undef, $T);
is(status_of($kall, 'openai'), 'tenant_suspended', 'tenant_suspended before disabled');
is(status_of($key, 'openai'), 'tenant_suspended', 'a suspended tenant: every key');
$dbh->do('UPDATE api_keys SET deleted_at = now() WHERE id = ?', undef, $kallid);
is(status_of($kall, 'openai'), 'deleted', 'deleted before everything');
$dbh->do(q{UPDATE tenants SET status = 'active' WHERE id = ?}, undef, $T);
is(status_of($key, 'openai'), 'active', 'the tenant active again');

# -- the tenant's credential ---------------------------------------------------------

set_credential($T, 'openai', 'sk-upstream-openai-"quoted"\\');
set_credential($T, 'azure', 'az-0123456789');
set_config($T, 'providers.azure.endpoint', '"https://acme.openai.azure.com"');
$r = resolve($key, 'openai');
is($r->{json}{credential}, 'sk-upstream-openai-"quoted"\\', "the tenant's openai key, decrypted");
is($r->{json}{endpoint}, undef, 'no endpoint for openai');
$r = resolve($key, 'azure');
is($r->{json}{credential}, 'az-0123456789', 'per provider: azure');
is($r->{json}{endpoint}, 'https://acme.openai.azure.com', "azure: the tenant's endpoint");
is(resolve($key, 'anthropic')->{json}{credential}, undef,
   'no credential set: null (the gateway uses its own default)');
is(resolve($kd, 'openai')->{json}{credential}, undef, 'a disabled key: never the credential');
is(resolve($kp, 'openai')->{json}{credential}, undef, 'a provider not allowed: never the credential');
is(resolve($kx, 'openai')->{json}{credential}, undef, 'a deleted key: never the credential');

# a ciphertext is bound to its tenant and key: moved elsewhere it fails,
# and the lookup fails closed rather than fall back to the gateway's default
our $OTHER = tenant();
my ($ko) = key($OTHER);
my ($enc) = $dbh->selectrow_array(
    q{SELECT secret FROM tenant_configs WHERE tenant_id = ? AND key = 'providers.openai.api_key'},
    undef, $T);
set_credential($OTHER, 'openai', undef, $enc);
$r = resolve($ko, 'openai');
is($r->{status}, 500, "another tenant's ciphertext: 500, fail closed");
like($r->{body}, qr/"code":"credential_unavailable"/, '... credential_unavailable');
unlike($r->{body}, qr/quoted/, '... and nothing of the secret');
set_credential($OTHER, 'openai', undef, substr($enc, 0, -6) . 'AAAA==');
is(resolve($ko, 'openai')->{status}, 500, 'an altered ciphertext: 500');
like(sidecar_log_tail(50), qr/cannot decrypt a provider credential/, '... logged');
is(resolve($ko, 'google')->{status}, 200, "the tenant's other providers still resolve");

# -- last_used_at ---------------------------------------------------------------------

my ($ku, $kuid) = key($T);
sub last_used {
    my ($v) = $dbh->selectrow_array(
        q{SELECT extract(epoch FROM now() - last_used_at) FROM api_keys WHERE id = ?},
        undef, shift);
    return $v;
}
is(last_used($kuid), undef, 'never used: null');
resolve($ku, 'openai');
ok(defined last_used($kuid) && last_used($kuid) < 5, 'a lookup sets last_used_at');
$dbh->do(q{UPDATE api_keys SET last_used_at = now() - interval '30 seconds' WHERE id = ?},
         undef, $kuid);
resolve($ku, 'openai');
ok(last_used($kuid) >= 29, 'within a minute of the last: not written again');
$dbh->do(q{UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = ?},
         undef, $kuid);
resolve($ku, 'openai');
ok(last_used($kuid) < 5, 'older than a minute: written');
resolve($kd, 'openai');
is(last_used($kdid), undef, 'a disabled key is not marked used');

# a key row locked by another transaction: the lookup neither waits nor fails
$dbh->do(q{UPDATE api_keys SET last_used_at = NULL WHERE id = ?}, undef, $kuid);
my $lock = DBI->connect("dbi:Pg:" . join(';', map { s/ /;/gr } db_dsn()), '', '',
                        { RaiseError => 1, AutoCommit => 0 });
$lock->do('SELECT 1 FROM api_keys WHERE id = ? FOR UPDATE', undef, $kuid);
my $t0 = Time::HiRes::time();
$r = resolve($ku, 'openai');
ok(Time::HiRes::time() - $t0 < 2, 'a locked key row does not block the lookup');
is($r->{json}{status}, 'active', '... which answers');
$lock->rollback;
$lock->disconnect;

# -- the database ------------------------------------------------------------------------

pg_stop();
$r = resolve($key, 'openai');
is($r->{status}, 503, 'Postgres down: 503 (the module keeps its stale entry)');
like($r->{body}, qr/"code":"database_unavailable"/, '... database_unavailable');
pg_start();
$dbh = dbh();
my @after = map { resolve($key, 'openai')->{status} } 1 .. 8;
is_deeply(\@after, [(200) x 8], 'Postgres back: every thread answers again');

run_tests();

__DATA__

=== TEST 1: nginx's public routes never reach /internal/
--- config
    location ^~ /internal/ {
        return 404 '{"error":{"code":"not_found","message":"not found"}}\n';
    }
    location / {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /internal/v1/keys/resolve?hash=$::hash&provider=openai"
--- error_code: 404
--- response_body_like: "not_found"



=== TEST 2: even a catch-all proxy to the sidecar gets 404 without the token
--- config
    location / {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /internal/v1/keys/resolve?hash=$::hash&provider=openai"
--- more_headers
X-TruePort-Internal-Token: guessed
--- error_code: 404
--- response_body_like: ^\{"error":\{"code":"not_found","message":"no route for GET /internal/v1/keys/resolve"



=== TEST 3: the way the module asks: a location that adds the token
--- config
    location /t/resolve {
        proxy_set_header X-TruePort-Internal-Token $TEST_NGINX_INTERNAL_TOKEN;
        proxy_pass http://trueport_sidecar_internal/internal/v1/keys/resolve;
    }
--- request eval
"GET /t/resolve?hash=$::hash&provider=openai"
--- error_code: 200
--- response_body_like: ^\{"found":true,"key_id":"[0-9a-f-]{36}","tenant_id":"[0-9a-f-]{36}","env":"production","rpm":60,"status":"active","expires_at":null,"credential":"sk-upstream-openai-\\"quoted\\"\\\\","endpoint":null,"policy_revision":0,"default_credentials":false,"log_prompts":false\}$
--- no_error_log
[error]
