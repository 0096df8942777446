package Test::TruePort::Org;
# Fixtures for the organisation tests (t/030-033): users, tenants and
# memberships straight in the database, tokens minted with the harness's
# secret, and api() calls under /platform/api with a bearer token.
#
#   use Test::TruePort::Org;
#   my $t = org_tenant(plan => 'pro');        # {id, slug}
#   my ($tok, $uid) = org_member($t, 'admin');
#   my $r = pcall($tok, GET => '/service/info');
use strict;
use warnings;

use Exporter 'import';
use Test::TruePort qw();

our @EXPORT = qw(org_user org_tenant org_member org_scoped org_global
                 org_platform_admin pcall pcall_raw audit_rows bad_tokens
                 $PLATFORM);

our $PLATFORM = '/platform/api';
my $n = 0;


sub _dbh { Test::TruePort::dbh() }


# A user (no password needed: tokens are minted); returns its id.
sub org_user {
    my (%o) = @_;
    $n++;
    my $email = $o{email} // "user$n-$$\@example.com";
    my ($id) = _dbh()->selectrow_array(
        q{INSERT INTO users (email, name, password_hash, is_platform_admin)
          VALUES (?, ?, 'x', ?) RETURNING id}, undef,
        lc $email, $o{name} // "User $n", $o{platform_admin} ? 1 : 0);
    return $id;
}


# A tenant with an active subscription to plan (default free).
sub org_tenant {
    my (%o) = @_;
    $n++;
    my $slug = $o{slug} // "org-$n-$$";
    my ($id) = _dbh()->selectrow_array(
        'INSERT INTO tenants (name, slug, status) VALUES (?, ?, ?) RETURNING id',
        undef, $o{name} // "Org $n", $slug, $o{status} // 'active');
    _dbh()->do(q{INSERT INTO subscriptions (tenant_id, plan_id) VALUES (?, ?)},
               undef, $id, $o{plan} // 'free');
    return { id => $id, slug => $slug };
}


sub org_scoped {
    my ($uid, $tenant, $role, %c) = @_;
    return Test::TruePort::jwt({ sub => $uid, tid => $tenant->{id},
                                 role => $role, env => 'production', %c });
}


sub org_global {
    my ($uid, %c) = @_;
    return Test::TruePort::jwt({ sub => $uid, %c });
}


# A new user with role in tenant: (scoped token, user id, email).
sub org_member {
    my ($tenant, $role, %o) = @_;
    my $uid = org_user(%o);
    _dbh()->do('INSERT INTO memberships (tenant_id, user_id, role)'
               . ' VALUES (?, ?, ?)', undef, $tenant->{id}, $uid, $role);
    my ($email) = _dbh()->selectrow_array(
        'SELECT email FROM users WHERE id = ?', undef, $uid);
    return (org_scoped($uid, $tenant, $role), $uid, $email);
}


# A platform admin made the documented way (create-admin on the command
# line); returns (global token, user id).
sub org_platform_admin {
    my ($email) = @_;
    $email //= "root-$$\@example.com";
    local %ENV = (%ENV, TRUEPORT_DATABASE_URL => Test::TruePort::db_dsn(),
                  TRUEPORT_JWT_SECRET => 'x' x 32,
                  TRUEPORT_MASTER_KEY => '0' x 64,
                  TRUEPORT_SCRYPT_N => 1024, TRUEPORT_LOG_LEVEL => 'error');
    my $out = `printf 'correct horse battery staple\\n' | '$ENV{TP_SIDECAR}' create-admin --email '$email' --password-stdin 2>&1`;
    die "create-admin: $out" if $?;
    my ($uid) = _dbh()->selectrow_array(
        'SELECT id FROM users WHERE email = ? AND is_platform_admin', undef,
        lc $email);
    die "create-admin made no admin: $out" unless $uid;
    return (org_global($uid), $uid);
}


# api() under /platform/api with "Authorization: Bearer token" (no header
# when token is undef); body: a reference is sent as JSON.
sub pcall {
    my ($token, $method, $path, $body, %h) = @_;
    return Test::TruePort::api($method, "$PLATFORM$path", $body,
        { (defined $token ? (Authorization => "Bearer $token") : ()), %h });
}

# the same with a raw string body sent as application/json
sub pcall_raw {
    my ($token, $method, $path, $raw, %h) = @_;
    return pcall($token, $method, $path, $raw,
                 'Content-Type' => 'application/json', %h);
}


# audit_log rows of an action (and tenant), oldest first, detail decoded
sub audit_rows {
    my ($action, $tenant_id) = @_;
    my $rows = _dbh()->selectall_arrayref(
        q{SELECT tenant_id, actor_id, action, target, detail::text AS detail,
                 client_ip
            FROM audit_log WHERE action = ?
             AND (?::uuid IS NULL OR tenant_id = ?::uuid) ORDER BY id},
        { Slice => {} }, $action, $tenant_id, $tenant_id);
    $_->{detail} = Test::TruePort::json_decode($_->{detail}) for @$rows;
    return @$rows;
}


# Tokens the sidecar must refuse with 401, named: for a user id and its
# tenant (scoped claims when tenant is given).
sub bad_tokens {
    my ($uid, $tenant) = @_;
    my %c = (sub => $uid, $tenant ? (tid => $tenant->{id}, role => 'owner',
                                     env => 'production') : ());
    my $good = Test::TruePort::jwt(\%c);
    my ($h, $b, $s) = split /\./, $good;
    substr($s, 5, 1) = substr($s, 5, 1) eq 'A' ? 'B' : 'A';
    return (
        'no token'        => undef,
        'expired'         => Test::TruePort::jwt({ %c, iat => time - 7200,
                                                   exp => time - 3600 }),
        'tampered'        => "$h.$b.$s",
        'alg none'        => Test::TruePort::jwt(\%c, alg => 'none'),
        'other secret'    => Test::TruePort::jwt(\%c,
                                 secret => 'another-secret-0123456789abcdef0123'),
        'garbage'         => 'not.a.token',
    );
}

1;
