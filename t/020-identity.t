# Identity through nginx: register, login and its lock (10 failures per
# 15 minutes per email and client address), emailed sign-in codes,
# password reset and change (older tokens die, a token issued in the same
# second survives), select-tenant and switch-environment, the tokens a
# global route refuses, and malformed input on every route.
use lib 't/lib';
use Test::TruePort;
use Test::More;
use Digest::SHA qw(sha256_hex);
use MIME::Base64 ();

use_sidecar();

our $G = '/platform/api/global/auth';
our $PW = 'correct horse battery';
our $dbh = dbh();

# Set-up goes straight to the sidecar (nginx starts with the first block);
# from 127.0.0.1 without X-Real-IP it sees the same client address as the
# requests nginx forwards.
sub post {
    my ($path, $body, %h) = @_;
    return sidecar_api(POST => "$G/$path", $body, \%h);
}

sub register {
    my ($email, $pw) = @_;
    my $r = post('register', { email => $email, password => $pw // $PW,
                               name => 'Test User' });
    die "register $email: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json}{id};
}

sub login {
    my ($email, $pw) = @_;
    my $r = post('login', { email => $email, password => $pw // $PW });
    die "login $email: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    return $r->{json}{global_access_token};
}

sub fail_logins {
    my ($email, $n, %h) = @_;
    post('login', { email => $email, password => 'wrong password!' }, %h)
        for 1 .. $n;
}

sub last_mail {
    my ($to, $subject) = @_;
    my ($body) = $dbh->selectrow_array(
        'SELECT body FROM outbox WHERE to_addr = ? AND subject LIKE ?'
        . ' ORDER BY id DESC LIMIT 1', undef, $to, $subject);
    return $body // '';
}

sub new_code {
    my ($email) = @_;
    my $r = post('otp/request', { email => $email });
    die "otp/request: $r->{status}\n" unless $r->{status} == 202;
    return last_mail($email, '%sign-in code') =~ /code is (\d{6})\b/ ? $1 : undef;
}

sub new_reset {
    my ($email) = @_;
    my $r = post('forgot-password', { email => $email });
    die "forgot-password: $r->{status}\n" unless $r->{status} == 202;
    return last_mail($email, 'Reset%') =~ /token is ([A-Za-z0-9_-]{43})\b/
           ? $1 : undef;
}

sub claims {
    my ($token) = @_;
    my $p = (split /\./, $token)[1] // '';
    $p =~ tr{-_}{+/};
    return json_decode(MIME::Base64::decode_base64($p));
}

sub tenant {
    my ($slug, %o) = @_;
    my ($id) = $dbh->selectrow_array(
        'INSERT INTO tenants (name, slug, status, status_reason, environments)'
        . ' VALUES (?, ?, ?, ?, coalesce(?::text[],'
        . " '{production,staging,development}')) RETURNING id", undef,
        $o{name} // "Tenant $slug", $slug, $o{status} // 'active',
        $o{reason}, $o{envs});
    return $id;
}

sub join_tenant {
    my ($tenant, $user, $role) = @_;
    $dbh->do('INSERT INTO memberships (tenant_id, user_id, role)'
             . ' VALUES (?, ?, ?)', undef, $tenant, $user, $role);
}

sub body { "POST $G/$_[0]\n" . json_encode($_[1]) }

our %U;     # email => user id
$U{$_} = register("$_\@example.com")
    for qw(bob lock reset1 reset2 otp1 otp2 otp3 otp4 otp5 otp6 pw1 pw2 pw3
           st sw nm unlock);

our $acme = tenant('acme', name => 'Acme Inc');
our $gone = tenant('gone-co', status => 'suspended',
                   reason => 'unpaid invoices');
our $labs = tenant('labs', envs => '{dev,prod}');
join_tenant($acme, $U{st}, 'owner');
join_tenant($gone, $U{st}, 'admin');
join_tenant($labs, $U{st}, 'viewer');
join_tenant($acme, $U{sw}, 'member');

our $st = login('st@example.com');
our $sw_scoped;
{
    my $r = sidecar_api(POST => "$G/select-tenant", { slug => 'acme' },
                        { Authorization => "Bearer " . login('sw@example.com') });
    die "select-tenant: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    $sw_scoped = $r->{json}{scoped_access_token};
}

our ($code, $token, $old, $new, $after, $first);
our $SENT_OTP = '{"status":"accepted","message":"if an account exists for'
              . ' this address, a sign-in code has been sent to it",'
              . '"expires_in":600}';
our $SENT_RESET = '{"status":"accepted","message":"if an account exists for'
                . ' this address, a password reset token has been sent to'
                . ' it","expires_in":3600}';

run_tests();

__DATA__

=== TEST 1: register: 201 with the user (email trimmed and lowercased), never the hash
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/register
{"email": "  Alice@Example.COM ", "password": "correct horse battery", "name": " Alice Liddell "}
--- more_headers
Content-Type: application/json
--- error_code: 201
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"id":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}","email":"alice@example.com","name":"Alice Liddell","created_at":"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"\}$
--- no_error_log
[error]



=== TEST 2: the password is stored as scrypt; the same address again (any case) is 409
--- init
my ($hash) = $::dbh->selectrow_array(
    q{SELECT password_hash FROM users WHERE email = 'alice@example.com'});
like($hash, qr/^scrypt\$1024\$8\$1\$/, 'stored as scrypt with the configured N');
unlike($hash, qr/correct horse/, 'never the plaintext');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/register
{"email": "ALICE@example.com", "password": "another password", "name": "Alice 2"}
--- error_code: 409
--- response_body_like: ^\{"error":\{"code":"email_taken","message":"an account with this email already exists","request_id":"[\w-]+"\}\}$



=== TEST 3: register: a weak password is 422 with the policy's reason
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/register
{"email": "carol@example.com", "password": "short", "name": "Carol"}
--- error_code: 422
--- response_body_like: "code":"weak_password","message":"\\"password\\": password must be at least 10 characters"



=== TEST 4: register: malformed JSON 400, missing and mistyped fields 422
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[
    "POST $::G/register\n{\"email\": \"x\@example.com\", \"password\":",
    "POST $::G/register\n[\"x\@example.com\"]",
    "POST $::G/register\n",
    ::body('register', { password => $::PW }),
    ::body('register', { email => 5, password => $::PW }),
    ::body('register', { email => 'no-at-sign.example.com', password => $::PW }),
    ::body('register', { email => 'two@@example.com', password => $::PW }),
    ::body('register', { email => ('a' x 310) . '@example.com', password => $::PW }),
    ::body('register', { email => '   ', password => $::PW }),
    ::body('register', { email => 'd@example.com' }),
    ::body('register', { email => 'd@example.com', password => ['x'] }),
    ::body('register', { email => 'd@example.com', password => $::PW, name => 7 }),
    ::body('register', { email => 'd@example.com', password => $::PW, name => "a\tb" }),
    ::body('register', { email => 'd@example.com', password => $::PW, name => 'n' x 201 }),
    ::body('register', { email => 'd@example.com', password => $::PW, admin => \1 }),
]
--- error_code eval
[400, 400, 400, (422) x 12]
--- response_body_like eval
[
    '"code":"invalid_json"', '"code":"invalid_json"', '"code":"invalid_json"',
    '"code":"missing_field","message":"\\\\"email\\\\" is required"',
    '"code":"invalid_field","message":"\\\\"email\\\\" must be a string"',
    '"code":"invalid_field","message":"\\\\"email\\\\" is not an email address"',
    '"code":"invalid_field"', '"code":"invalid_field"', '"code":"invalid_field"',
    '"code":"missing_field","message":"\\\\"password\\\\" is required"',
    '"code":"invalid_field","message":"\\\\"password\\\\" must be a string"',
    '"code":"invalid_field","message":"\\\\"name\\\\" must be a string"',
    '"code":"invalid_field","message":"\\\\"name\\\\" must be at most 200',
    '"code":"invalid_field","message":"\\\\"name\\\\" must be at most 200',
    '"code":"unknown_field","message":"unknown field \\\\"admin\\\\""',
]
--- no_error_log
[error]



=== TEST 5: nothing of the refused registrations was stored
--- init
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM users WHERE email IN ('carol@example.com', 'd@example.com')});
is($n, 0, 'no user row for a refused registration');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('register', { email => 'd@example.com', password => $::PW })
--- error_code: 201
--- response_body_like: "name":""



=== TEST 6: registration switched off by the platform admin: 403
--- init
$::dbh->do(q{INSERT INTO global_configs (key, value) VALUES ('signup_enabled', 'false')});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('register', { email => 'e@example.com', password => $::PW })
--- error_code: 403
--- response_body_like: ^\{"error":\{"code":"signup_disabled","message":"registration is disabled on this platform"



=== TEST 7: a body over the sidecar's limit is 413 in the error shape
--- init
$::dbh->do(q{DELETE FROM global_configs WHERE key = 'signup_enabled'});
--- config
    location /platform/api/ {
        client_max_body_size 8m;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST $::G/register\n" . '{"email":"e@example.com","password":"' . ('x' x (1100 * 1024)) . '"}'
--- error_code: 413
--- response_body_like: ^\{"error":\{"code":"payload_too_large"



=== TEST 8: login: 200 with a global token (HS256, sub = the user, no tenant)
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/login
{"email": " BOB@example.com", "password": "correct horse battery"}
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body_like: ^\{"global_access_token":"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]{43}","token_type":"Bearer","expires_in":3600\}$
--- no_error_log
[error]



=== TEST 9: the token's claims
--- init
my $c = ::claims(::login('bob@example.com'));
is($c->{sub}, $::U{bob}, 'sub is the user id');
ok(!exists $c->{tid} && !exists $c->{role} && !exists $c->{env},
   'a global token has no tenant claims');
ok(abs($c->{iat} - time) < 5, 'iat is now');
is($c->{exp} - $c->{iat}, 3600, 'exp = iat + TRUEPORT_TOKEN_TTL');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'bob@example.com', password => $::PW })
--- error_code: 200



=== TEST 10: a wrong password and an unknown email get the same 401
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[
    ::body('login', { email => 'bob@example.com', password => 'not the password' }),
    ::body('login', { email => 'nobody@example.com', password => 'not the password' }),
]
--- error_code: 401
--- response_body_like: ^\{"error":\{"code":"invalid_credentials","message":"the email or password is incorrect","request_id":"[\w-]+"\}\}$



=== TEST 11: login: malformed JSON 400, missing and mistyped fields 422
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[
    "POST $::G/login\n{\"email\"",
    ::body('login', { password => $::PW }),
    ::body('login', { email => 'bob@example.com' }),
    ::body('login', { email => 'bob@example.com', password => 12345678901 }),
    ::body('login', { email => 'bob@example.com', password => '' }),
    ::body('login', { email => 'bob@example.com', password => 'x' x 1025 }),
    ::body('login', { email => 'bob', password => $::PW }),
    ::body('login', { email => 'bob@example.com', password => $::PW, otp => 1 }),
]
--- error_code eval
[400, (422) x 7]
--- response_body_like eval
[
    '"code":"invalid_json"',
    '"code":"missing_field"', '"code":"missing_field"',
    '"code":"invalid_field"', '"code":"invalid_field"', '"code":"invalid_field"',
    '"code":"invalid_field"', '"code":"unknown_field"',
]



=== TEST 12: 10 failed logins, then the 11th attempt is 429
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (::body('login', { email => 'lock@example.com', password => 'wrong password!' })) x 11 ]
--- error_code eval
[ (401) x 10, 429 ]
--- response_body_like eval
[ ('"code":"invalid_credentials"') x 10,
  '^\{"error":\{"code":"too_many_attempts","message":"too many failed sign-in attempts for this address; retry in \d+ seconds"' ]



=== TEST 13: locked: even the right password is 429, with Retry-After (the oldest failure leaves the window)
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'lock@example.com', password => $::PW })
--- error_code: 429
--- response_headers_like
Retry-After: ^(?:8[5-9]\d|900)$
--- response_body_like: "code":"too_many_attempts"



=== TEST 14: the refused attempts were not counted; the lock is per client address
--- init
my ($n) = $::dbh->selectrow_array(
    q{SELECT count(*) FROM login_attempts WHERE email = 'lock@example.com'});
is($n, 10, 'ten failures logged, the refused attempts not');
my $r = ::post('login', { email => 'lock@example.com', password => $::PW },
               'X-Real-IP' => '192.0.2.7');
is($r->{status}, 200, 'another client address signs in');
$r = ::post('login', { email => 'LOCK@example.com', password => $::PW });
is($r->{status}, 429, 'the address in any case is the same key');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'lock@example.com', password => $::PW })
--- error_code: 429



=== TEST 15: once the failures are older than 15 minutes, login works again
--- init
$::dbh->do(q{UPDATE login_attempts SET created_at = created_at - interval '15 minutes 1 second'
             WHERE email = 'lock@example.com'});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'lock@example.com', password => $::PW })
--- error_code: 200
--- response_body_like: "global_access_token"



=== TEST 16: the window slides: the 10 most recent failures decide, Retry-After follows the oldest
--- init
$::dbh->do(q{DELETE FROM login_attempts WHERE email = 'lock@example.com'});
$::dbh->do(q{INSERT INTO login_attempts (email, client_ip, created_at)
             SELECT 'lock@example.com', '127.0.0.1', now() - interval '10 minutes'
             FROM generate_series(1, 5)});
::fail_logins('lock@example.com', 5);
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'lock@example.com', password => $::PW })
--- error_code: 429
--- response_headers_like
Retry-After: ^(?:29\d|30[01])$



=== TEST 17: a success resets the count (9 failures, success, 10 more failures before the lock)
--- init
$::dbh->do(q{DELETE FROM login_attempts WHERE email = 'lock@example.com'});
::fail_logins('lock@example.com', 9);
is(::post('login', { email => 'lock@example.com', password => $::PW })->{status},
   200, 'the 10th attempt, right, succeeds');
::fail_logins('lock@example.com', 9);
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (::body('login', { email => 'lock@example.com', password => 'wrong password!' })) x 2 ]
--- error_code eval
[401, 429]



=== TEST 18: unknown addresses are limited the same way (the lock reveals no account)
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (::body('login', { email => 'ghost@example.com', password => 'wrong password!' })) x 11 ]
--- error_code eval
[ (401) x 10, 429 ]



=== TEST 19: otp/request: the same 202 for a known and an unknown address
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ ::body('otp/request', { email => 'OTP1@example.com ' }),
  ::body('otp/request', { email => 'nobody@example.com' }) ]
--- error_code: 202
--- response_body eval
[ $::SENT_OTP, $::SENT_OTP ]
--- no_error_log
[error]



=== TEST 20: the code went to the outbox (6 digits), only its SHA-256 is stored; it signs in
--- init
my $mail = ::last_mail('otp1@example.com', '%sign-in code');
($::code) = $mail =~ /code is (\d{6})\b/;
ok($::code, 'the outbox has the code') or diag $mail;
is(::last_mail('nobody@example.com', '%'), '', 'nothing queued for an unknown address');
my ($hash, $left) = $::dbh->selectrow_array(
    'SELECT code_hash, extract(epoch FROM expires_at - now()) FROM otp_codes WHERE user_id = ?',
    undef, $::U{otp1});
is($hash, sha256_hex("$::U{otp1}:$::code"), 'stored: SHA-256 of user id and code');
ok($left > 590 && $left <= 600, 'valid for 10 minutes');
unlike(::sidecar_log_tail(400), qr/\b$::code\b/, 'production mode never logs the code');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('otp/verify', { email => 'otp1@example.com', code => $::code })
--- error_code: 200
--- response_body_like: ^\{"global_access_token":"[\w-]+\.[\w-]+\.[\w-]+","token_type":"Bearer","expires_in":3600\}$
--- no_error_log
[error]



=== TEST 21: a code works once
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('otp/verify', { email => 'otp1@example.com', code => $::code })
--- error_code: 401
--- response_body_like: "code":"code_used"



=== TEST 22: an expired code is refused
--- init
$::code = ::new_code('otp2@example.com');
$::dbh->do(q{UPDATE otp_codes SET expires_at = now() - interval '1 second' WHERE user_id = ?},
           undef, $::U{otp2});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('otp/verify', { email => 'otp2@example.com', code => $::code })
--- error_code: 401
--- response_body_like: "code":"code_expired","message":"this code has expired; request a new one"



=== TEST 23: five wrong codes use the code up: the right one is then refused too
--- init
$::code = ::new_code('otp3@example.com');
our $wrong = sprintf '%06d', ($::code + 1) % 1000000;
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (::body('otp/verify', { email => 'otp3@example.com', code => $::wrong })) x 5,
  ::body('otp/verify', { email => 'otp3@example.com', code => $::code }) ]
--- error_code: 401
--- response_body_like eval
[ ('"code":"invalid_code","message":"the code is wrong or was not requested"') x 5,
  '"code":"code_exhausted"' ]



=== TEST 24: a new request supersedes the old code (and resets the tries)
--- init
$::first = ::new_code('otp3@example.com');
$::code = ::new_code('otp3@example.com');
# in the rare case both draws are equal, the first one is the current one
$::first = sprintf '%06d', ($::code + 1) % 1000000 if $::first eq $::code;
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ ::body('otp/verify', { email => 'otp3@example.com', code => $::first }),
  ::body('otp/verify', { email => 'otp3@example.com', code => $::code }) ]
--- error_code eval
[401, 200]



=== TEST 25: an unknown address or no code requested: the same 401 as a wrong code
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ ::body('otp/verify', { email => 'nobody@example.com', code => '123456' }),
  ::body('otp/verify', { email => 'otp4@example.com', code => '123456' }) ]
--- error_code: 401
--- response_body_like: ^\{"error":\{"code":"invalid_code","message":"the code is wrong or was not requested","request_id":"[\w-]+"\}\}$



=== TEST 26: otp routes: malformed JSON 400, missing and mistyped fields 422
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ "POST $::G/otp/request\nnot json",
  ::body('otp/request', {}),
  ::body('otp/request', { email => 'not an email' }),
  "POST $::G/otp/verify\n{\"email\":",
  ::body('otp/verify', { email => 'otp4@example.com' }),
  ::body('otp/verify', { email => 'otp4@example.com', code => 123456 }),
  ::body('otp/verify', { email => 'otp4@example.com', code => '12345' }),
  ::body('otp/verify', { email => 'otp4@example.com', code => '12345a' }),
  ::body('otp/verify', { email => 'otp4@example.com', code => '1234567' }),
  ::body('otp/verify', { code => '123456' }) ]
--- error_code eval
[400, 422, 422, 400, (422) x 6]
--- response_body_like eval
[ '"invalid_json"', '"missing_field"', '"invalid_field"', '"invalid_json"',
  '"missing_field"', '"invalid_field"', '"\\\\"code\\\\" must be 6 digits"',
  '"\\\\"code\\\\" must be 6 digits"', '"\\\\"code\\\\" must be 6 digits"',
  '"missing_field"' ]



=== TEST 27: wrong codes count as failed sign-ins: the 11th attempt is 429
--- init
::new_code('otp5@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (::body('otp/verify', { email => 'otp5@example.com', code => '000000' })) x 11 ]
--- error_code eval
[ (401) x 10, 429 ]
--- response_body_like eval
[ ('"code":"invalid_code"') x 5, ('"code":"code_exhausted"') x 5,
  '"code":"too_many_attempts"' ]



=== TEST 28: no mailbox flooding: 5 codes per address per 15 minutes, then the same 202 and nothing sent
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (::body('otp/request', { email => 'otp6@example.com' })) x 7,
  (::body('forgot-password', { email => 'otp6@example.com' })) x 6 ]
--- error_code: 202
--- response_body eval
[ ($::SENT_OTP) x 7, ($::SENT_RESET) x 6 ]



=== TEST 29: ... five of each were sent; the last code sent still works
--- init
my ($codes, $resets) = $::dbh->selectrow_array(
    q{SELECT count(*) FILTER (WHERE subject LIKE '%sign-in code'),
             count(*) FILTER (WHERE subject LIKE 'Reset%')
      FROM outbox WHERE to_addr = 'otp6@example.com'});
is($codes, 5, 'five codes sent');
is($resets, 5, 'five reset mails sent');
($::code) = ::last_mail('otp6@example.com', '%sign-in code') =~ /code is (\d{6})\b/;
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('otp/verify', { email => 'otp6@example.com', code => $::code })
--- error_code: 200



=== TEST 30: forgot-password: the same 202 for a known and an unknown address
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ ::body('forgot-password', { email => 'Reset1@example.com' }),
  ::body('forgot-password', { email => 'nobody-else@example.com' }) ]
--- error_code: 202
--- response_body eval
[ $::SENT_RESET, $::SENT_RESET ]
--- no_error_log
[error]



=== TEST 31: the reset token (43 base64url characters) went to the outbox, only its SHA-256 is kept; it sets the password
--- init
my $mail = ::last_mail('reset1@example.com', 'Reset%');
($::token) = $mail =~ /token is ([A-Za-z0-9_-]{43})\b/;
ok($::token, 'the outbox has the token') or diag $mail;
is(::last_mail('nobody-else@example.com', '%'), '', 'nothing queued for an unknown address');
my ($hash, $left) = $::dbh->selectrow_array(
    'SELECT token_hash, extract(epoch FROM expires_at - now()) FROM password_resets WHERE user_id = ?',
    undef, $::U{reset1});
is($hash, sha256_hex($::token), 'stored: the SHA-256 of the token');
ok($left > 3590 && $left <= 3600, 'valid for 1 hour');
$::old = ::login('reset1@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('reset-password', { token => $::token, password => 'brand new password' })
--- error_code: 200
--- response_body_like: ^\{"global_access_token":"[\w-]+\.[\w-]+\.[\w-]+","token_type":"Bearer","expires_in":\d+\}$
--- no_error_log
[error]



=== TEST 32: after the reset: the new password works, the old one does not, older tokens are refused
--- init
is(::post('login', { email => 'reset1@example.com', password => $::PW })->{status},
   401, 'the old password is refused');
is(::post('login', { email => 'reset1@example.com', password => 'brand new password' })->{status},
   200, 'the new password signs in');
like(::last_mail('reset1@example.com', '%password was changed'), qr/was reset/,
     'the owner is told by mail');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/select-tenant
{}
--- more_headers eval
"Authorization: Bearer $::old"
--- error_code: 401
--- response_body_like: "code":"invalid_token","message":"token was issued before a password change"



=== TEST 33: a reset token works once
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('reset-password', { token => $::token, password => 'yet another password' })
--- error_code: 401
--- response_body_like: "code":"reset_token_used"



=== TEST 34: using one reset token voids every earlier one of the user
--- init
$::first = ::new_reset('reset2@example.com');
$::token = ::new_reset('reset2@example.com');
isnt($::first, $::token, 'two different tokens');
is(::post('reset-password', { token => $::token, password => 'second password!' })->{status},
   200, 'the newer token resets');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('reset-password', { token => $::first, password => 'third password!!' })
--- error_code: 401
--- response_body_like: "code":"reset_token_used"



=== TEST 35: an expired reset token is refused
--- init
$::token = ::new_reset('reset2@example.com');
$::dbh->do(q{UPDATE password_resets SET expires_at = now() - interval '1 second'
             WHERE token_hash = ?}, undef, sha256_hex($::token));
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('reset-password', { token => $::token, password => 'third password!!' })
--- error_code: 401
--- response_body_like: "code":"reset_token_expired"



=== TEST 36: reset-password: unknown token 401; weak password 422 (and the token stays usable); bad input
--- init
$::token = ::new_reset('reset2@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ ::body('reset-password', { token => 'A' x 43, password => 'long enough password' }),
  ::body('reset-password', { token => $::token, password => 'short' }),
  ::body('reset-password', { token => $::token }),
  ::body('reset-password', { password => 'long enough password' }),
  ::body('reset-password', { token => 42, password => 'long enough password' }),
  ::body('reset-password', { token => 'x' x 300, password => 'long enough password' }),
  "POST $::G/reset-password\n{\"token\" 1}",
  ::body('forgot-password', { email => 5 }),
  ::body('reset-password', { token => $::token, password => 'fourth password!' }) ]
--- error_code eval
[401, 422, 422, 422, 422, 422, 400, 422, 200]
--- response_body_like eval
[ '"code":"invalid_reset_token"', '"code":"weak_password"', '"missing_field"',
  '"missing_field"', '"invalid_field"', '"invalid_field"', '"invalid_json"',
  '"invalid_field"', '"global_access_token"' ]



=== TEST 37: a reset lifts the sign-in lock on every client address
--- init
::fail_logins('unlock@example.com', 10);
::fail_logins('unlock@example.com', 10, 'X-Real-IP' => '192.0.2.9');
is(::post('login', { email => 'unlock@example.com', password => $::PW })->{status},
   429, 'locked');
my $t = ::new_reset('unlock@example.com');
is(::post('reset-password', { token => $t, password => 'unlocked password' })->{status},
   200, 'reset');
is(::post('login', { email => 'unlock@example.com', password => 'unlocked password' },
          'X-Real-IP' => '192.0.2.9')->{status}, 200, 'the other address is unlocked too');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'unlock@example.com', password => 'unlocked password' })
--- error_code: 200



=== TEST 38: change password: a wrong current password is 403 invalid_password
--- init
$::old = ::login('pw1@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
PUT /platform/api/global/auth/password
{"old_password": "not my password", "new_password": "my new password"}
--- more_headers eval
"Authorization: Bearer $::old"
--- error_code: 403
--- response_body_like: ^\{"error":\{"code":"invalid_password","message":"the current password is incorrect"



=== TEST 39: change password: validation (422), no token (401), wrong method (405)
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ "PUT $::G/password\n" . ::json_encode({ old_password => $::PW, new_password => 'short' }),
  "PUT $::G/password\n" . ::json_encode({ old_password => $::PW, new_password => $::PW }),
  "PUT $::G/password\n" . ::json_encode({ old_password => $::PW }),
  "PUT $::G/password\n" . ::json_encode({ new_password => 'my new password' }),
  "PUT $::G/password\n" . ::json_encode({ old_password => 1, new_password => 'my new password' }),
  "PUT $::G/password\n{",
  "POST $::G/password\n{}" ]
--- more_headers eval
"Authorization: Bearer $::old"
--- error_code eval
[422, 422, 422, 422, 422, 400, 405]
--- response_body_like eval
[ '"code":"weak_password","message":"\\\\"new_password\\\\": password must be at least 10',
  '"code":"password_unchanged"', '"missing_field"', '"missing_field"',
  '"invalid_field"', '"invalid_json"', '"method_not_allowed"' ]



=== TEST 40: change password: 200 with a new global token
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
PUT /platform/api/global/auth/password
{"old_password": "correct horse battery", "new_password": "my new password"}
--- more_headers eval
"Authorization: Bearer $::old"
--- error_code: 200
--- response_body_like: ^\{"global_access_token":"[\w-]+\.[\w-]+\.[\w-]+","token_type":"Bearer","expires_in":\d+\}$
--- no_error_log
[error]



=== TEST 41: the token used for the change is refused now
--- init
like(::last_mail('pw1@example.com', '%password was changed'), qr/was changed/,
     'the owner is told by mail');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
PUT /platform/api/global/auth/password
{"old_password": "my new password", "new_password": "my newer password"}
--- more_headers eval
"Authorization: Bearer $::old"
--- error_code: 401
--- response_body_like: "code":"invalid_token","message":"token was issued before a password change"



=== TEST 42: same second: the token from before the change dies, the ones issued right after live
--- init
$::old = ::login('pw2@example.com');
my $r = sidecar_api(PUT => "$::G/password",
                    { old_password => $::PW, new_password => 'pw2 new password' },
                    { Authorization => "Bearer $::old" });
is($r->{status}, 200, 'changed');
$::new = $r->{json}{global_access_token};
$::after = ::login('pw2@example.com', 'pw2 new password');
my ($va) = $::dbh->selectrow_array('SELECT tokens_valid_after FROM users WHERE id = ?',
                                   undef, $::U{pw2});
cmp_ok(::claims($::old)->{iat}, '<', $va, 'the old token is older than tokens_valid_after');
is(::claims($::new)->{iat}, $va, 'the new token: iat = tokens_valid_after (now + 1)');
cmp_ok(::claims($::after)->{iat}, '>=', $va, 'a login right after: iat >= tokens_valid_after');
is(::claims($::new)->{exp} - ::claims($::new)->{iat}, 3600, 'the full lifetime');
is(sidecar_api(POST => "$::G/select-tenant", {}, { Authorization => "Bearer $::old" })->{status},
   401, 'the old token is refused');
is(sidecar_api(POST => "$::G/select-tenant", {}, { Authorization => "Bearer $::after" })->{status},
   422, 'the login token after the change is accepted');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/select-tenant
{}
--- more_headers eval
"Authorization: Bearer $::new"
--- error_code: 422
--- response_body_like: give either



=== TEST 43: two changes in one second: the token issued between them dies too
--- init
my $t0 = ::login('pw3@example.com');
my $r = sidecar_api(PUT => "$::G/password",
                    { old_password => $::PW, new_password => 'pw3 password one' },
                    { Authorization => "Bearer $t0" });
is($r->{status}, 200, 'first change');
$::first = $r->{json}{global_access_token};
$r = sidecar_api(PUT => "$::G/password",
                 { old_password => 'pw3 password one', new_password => 'pw3 password two' },
                 { Authorization => "Bearer $::first" });
is($r->{status}, 200, 'second change, with the token of the first');
$::new = $r->{json}{global_access_token};
cmp_ok(::claims($::new)->{iat}, '>', ::claims($::first)->{iat},
       'tokens_valid_after only goes up');
is(sidecar_api(POST => "$::G/select-tenant", {}, { Authorization => "Bearer $::new" })->{status},
   422, 'the newest token is accepted');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/select-tenant
{}
--- more_headers eval
"Authorization: Bearer $::first"
--- error_code: 401
--- response_body_like: token was issued before a password change



=== TEST 44: missing, malformed, tampered, alg:none, expired and foreign tokens are 401 on a global route
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/select-tenant
{"slug": "acme"}
--- more_headers eval
my $good = $::st;
my ($h, $p, $s) = split /\./, $good;
my $other = $s =~ /^A/ ? 'B' : 'A';
@::bad = (
    '',                                              # no header at all
    'Authorization: Basic c3Q6cGFzcw==',
    'Authorization: Bearer ',
    'Authorization: Bearer not.a.token',
    "Authorization: Bearer $h.$p." . $other . substr($s, 1),
    "Authorization: Bearer $h." . ::jwt({ sub => $::U{nm} }) =~ s/^[^.]+\.([^.]+)\..*/$1/r . ".$s",
    'Authorization: Bearer ' . ::jwt({ sub => $::U{st} }, alg => 'none'),
    'Authorization: Bearer ' . ::jwt({ sub => $::U{st}, iat => time - 7200, exp => time - 10 }),
    'Authorization: Bearer ' . ::jwt({ sub => $::U{st} }, secret => 'another-secret-0123456789abcdef0123456789'),
    'Authorization: Bearer ' . ::jwt({ sub => $::U{st}, exp => undef }),
    'Authorization: Bearer ' . ::jwt({ sub => 'not-a-uuid' }),
    'Authorization: Bearer ' . ::jwt({ sub => '00000000-0000-4000-8000-000000000000' }),
);
$::bad[0]
--- error_code: 401
--- response_body_like: "code":"unauthorized"



=== TEST 45: every bad token of the list is refused with 401 invalid_token
--- init
is(scalar @::bad, 12, 'the list of bad tokens was built');
for my $i (1 .. $#::bad) {
    my ($k, $v) = $::bad[$i] =~ /^([^:]+):\s*(.*)$/;
    my $r = api(POST => "$::G/select-tenant", { slug => 'acme' }, { $k => $v });
    is($r->{status}, 401, "bad token $i: 401");
    like($r->{body}, $i <= 2 ? qr/"code":"unauthorized"/ : qr/"code":"invalid_token"/,
         "bad token $i: code");
}
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/select-tenant
{"slug": "acme"}
--- more_headers eval
"Authorization: Bearer $::st"
--- error_code: 200



=== TEST 46: select-tenant by slug: a scoped token, the tenant, the role, env production
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/select-tenant
{"slug": "acme"}
--- more_headers eval
"Authorization: Bearer $::st"
--- error_code: 200
--- response_body_like eval
qr/^\{"scoped_access_token":"[\w-]+\.[\w-]+\.[\w-]+","token_type":"Bearer","expires_in":3600,"tenant":\{"id":"$::acme","slug":"acme","name":"Acme Inc"\},"role":"owner","env":"production"\}$/
--- no_error_log
[error]



=== TEST 47: select-tenant by id; the scoped token's claims; it opens service routes
--- init
my $r = sidecar_api(POST => "$::G/select-tenant", { tenant_id => $::labs },
                    { Authorization => "Bearer $::st" });
is($r->{status}, 200, 'by tenant_id');
is($r->{json}{role}, 'viewer', 'the role of the membership');
is($r->{json}{env}, 'dev', 'a tenant without production: its first environment');
my $c = ::claims($r->{json}{scoped_access_token});
is_deeply([@$c{qw(sub tid role env)}], [$::U{st}, $::labs, 'viewer', 'dev'],
          'claims: sub, tid, role, env');
$::token = $r->{json}{scoped_access_token};
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/auth/switch-environment
{"env": "prod"}
--- more_headers eval
"Authorization: Bearer $::token"
--- error_code: 200
--- response_body_like: "role":"viewer","env":"prod"\}$



=== TEST 48: not a member, no such slug, no such id: the same 403
--- init
$::token = ::login('nm@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ "POST $::G/select-tenant\n{\"slug\": \"acme\"}",
  "POST $::G/select-tenant\n{\"slug\": \"no-such-tenant\"}",
  "POST $::G/select-tenant\n{\"tenant_id\": \"00000000-0000-4000-8000-000000000000\"}",
  "POST $::G/select-tenant\n{\"tenant_id\": \"$::acme\"}" ]
--- more_headers eval
"Authorization: Bearer $::token"
--- error_code: 403
--- response_body_like: ^\{"error":\{"code":"not_a_member","message":"you are not a member of this tenant \(or it does not exist\)","request_id":"[\w-]+"\}\}$



=== TEST 49: a suspended tenant: 403 tenant_suspended, with the reason
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/select-tenant
{"slug": "gone-co"}
--- more_headers eval
"Authorization: Bearer $::st"
--- error_code: 403
--- response_body_like: "code":"tenant_suspended","message":"the tenant \\"gone-co\\" is suspended: unpaid invoices; contact the platform administrator"



=== TEST 50: select-tenant: bad input is 400/422
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ "POST $::G/select-tenant\n{}",
  "POST $::G/select-tenant\n{\"slug\": \"acme\", \"tenant_id\": \"$::acme\"}",
  "POST $::G/select-tenant\n{\"tenant_id\": \"acme\"}",
  "POST $::G/select-tenant\n{\"tenant_id\": 5}",
  "POST $::G/select-tenant\n{\"slug\": [\"acme\"]}",
  "POST $::G/select-tenant\n{\"slug\": \"acme\", \"env\": \"staging\"}",
  "POST $::G/select-tenant\n{\"slug\": \"acme\"",
  "GET $::G/select-tenant" ]
--- more_headers eval
"Authorization: Bearer $::st"
--- error_code eval
[422, 422, 422, 422, 422, 422, 400, 405]
--- response_body_like eval
[ 'give either', 'give either', '\\\\"tenant_id\\\\" must be a uuid', 'must be a string',
  'must be a string', '"unknown_field"', '"invalid_json"', '"method_not_allowed"' ]



=== TEST 51: switch-environment: a new scoped token for the same tenant and role
--- init
my $c = ::claims($::sw_scoped);
is($c->{env}, 'production', 'the token starts in production');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/auth/switch-environment
{"env": "staging"}
--- more_headers eval
"Authorization: Bearer $::sw_scoped"
--- error_code: 200
--- response_body_like eval
qr/^\{"scoped_access_token":"[\w-]+\.[\w-]+\.[\w-]+","token_type":"Bearer","expires_in":3600,"tenant":\{"id":"$::acme","slug":"acme","name":"Acme Inc"\},"role":"member","env":"staging"\}$/
--- no_error_log
[error]



=== TEST 52: the staging token carries env staging and works on service routes
--- init
my $r = sidecar_api(POST => '/platform/api/service/auth/switch-environment',
                    { env => 'staging' }, { Authorization => "Bearer $::sw_scoped" });
$::token = $r->{json}{scoped_access_token};
my $c = ::claims($::token);
is_deeply([@$c{qw(sub tid role env)}], [$::U{sw}, $::acme, 'member', 'staging'],
          'claims: same user, tenant and role, env staging');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/auth/switch-environment
{"env": "development"}
--- more_headers eval
"Authorization: Bearer $::token"
--- error_code: 200
--- response_body_like: "env":"development"\}$



=== TEST 53: switch-environment: an env the tenant does not have is 422; bad input
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ "POST /platform/api/service/auth/switch-environment\n{\"env\": \"qa\"}",
  "POST /platform/api/service/auth/switch-environment\n{\"env\": \"\"}",
  "POST /platform/api/service/auth/switch-environment\n{\"env\": 1}",
  "POST /platform/api/service/auth/switch-environment\n{}",
  "POST /platform/api/service/auth/switch-environment\n{\"env\": \"" . ('s' x 40) . "\"}",
  "POST /platform/api/service/auth/switch-environment\n{\"env\"" ]
--- more_headers eval
"Authorization: Bearer $::sw_scoped"
--- error_code eval
[422, 422, 422, 422, 422, 400]
--- response_body_like eval
[ '"code":"invalid_environment","message":"\\\\"env\\\\" must be one of the tenant\'s environments: production, staging, development"',
  '"invalid_field"', '"invalid_field"', '"missing_field"', '"invalid_field"', '"invalid_json"' ]



=== TEST 54: switch-environment needs a scoped token
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/auth/switch-environment
{"env": "staging"}
--- more_headers eval
"Authorization: Bearer $::st"
--- error_code: 401
--- response_body_like: "code":"scoped_token_required"



=== TEST 55: a suspended tenant's scoped token cannot switch either
--- init
$::token = ::jwt({ sub => $::U{st}, tid => $::gone, role => 'admin', env => 'production' });
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/service/auth/switch-environment
{"env": "staging"}
--- more_headers eval
"Authorization: Bearer $::token"
--- error_code: 403
--- response_body_like: "code":"tenant_suspended"



=== TEST 56: the mail stays in the outbox (no sendmail configured); the sidecar is healthy
--- init
my ($n, $sent) = $::dbh->selectrow_array(
    'SELECT count(*), count(sent_at) FROM outbox');
cmp_ok($n, '>=', 10, 'codes, reset tokens and notices were queued');
is($sent, 0, 'none marked sent without sendmail');
unlike(::sidecar_log_tail(2000), qr/sign-in code is|reset token is/,
       'production mode logs no message body');
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200
--- response_body_like: "status":"ok"
