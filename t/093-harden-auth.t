# Hardening the sidecar against strangers (issue 12, findings 4 and 5):
# a failure budget per account whatever the client address (50 in 24 h,
# then a reset by mail), wrong sign-in codes counted per account across
# codes (10 per 15 minutes), the same answers for an email without an
# account; the public routes limited per client address (30/min for those
# that run scrypt, 60/min for the others) with 429 + Retry-After, and
# X-Real-IP believed only from a trusted proxy; /health's details only for
# loopback and platform admins; the internal token required to serve; an
# escaped request log without secrets; and, while register/login floods
# the API with scrypt at N=2^15, new keys still resolve through the
# gateway (the internal listener has threads of its own, scrypt has slots).
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Test::More;
use File::Temp ();
use POSIX ();
use Time::HiRes qw(sleep time);

# the per-address limits at their defaults (the harness raises them)
use_sidecar(env => { TRUEPORT_PASSWORD_RPM => undef,
                     TRUEPORT_PUBLIC_RPM => undef });
gw_setup();

our $G = '/platform/api/global/auth';
our $PW = 'correct horse battery';
our $n = 0;

# Straight to the sidecar, from a client address of our choice (the
# harness is on loopback, a trusted proxy).
sub post {
    my ($path, $body, $ip, %h) = @_;
    return sidecar_api(POST => "$G/$path", $body,
                       { %h, ($ip ? ('X-Real-IP' => $ip) : ()) });
}

# a fresh address per call: no per-address limit is reached
sub addr { my $i = ++$n; sprintf '198.51.%d.%d', 1 + int($i / 250), $i % 250 + 1 }

sub register {
    my ($email, $pw) = @_;
    my $r = post('register', { email => $email, password => $pw // $PW,
                               name => 'Test User' }, addr());
    die "register $email: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json}{id};
}

# n wrong passwords, each from another address; the statuses
sub fail_logins {
    my ($email, $count) = @_;
    return map { post('login', { email => $email, password => 'wrong password!' },
                      addr())->{status} } 1 .. $count;
}

sub last_mail {
    my ($to, $subject) = @_;
    my ($body) = dbh()->selectrow_array(
        'SELECT body FROM outbox WHERE to_addr = ? AND subject LIKE ?'
        . ' ORDER BY id DESC LIMIT 1', undef, $to, $subject);
    return $body // '';
}

sub new_code {
    my ($email) = @_;
    my $r = post('otp/request', { email => $email }, addr());
    die "otp/request: $r->{status}\n" unless $r->{status} == 202;
    return last_mail($email, '%sign-in code') =~ /code is (\d{6})\b/ ? $1 : undef;
}

sub wrong_code { sprintf '%06d', ($_[0] + 1) % 1000000 }

# an error body without its request id, to compare two answers
sub bare { my $b = shift; $b =~ s/,"request_id":"[^"]*"//; $b }

sub body { "POST $G/$_[0]\n" . json_encode($_[1]) }

sub count_of { my ($want, @s) = @_; scalar grep { $_ == $want } @s }

register("$_\@example.com") for qw(victim race otp unlocked);
our ($locked_body, $code, $token, $admin);
($admin) = dbh()->selectrow_array(
    q{INSERT INTO users (email, name, password_hash, is_platform_admin)
      VALUES ('root@example.com', 'Root', 'x', true) RETURNING id});

run_tests();

__DATA__

=== TEST 1: 50 wrong passwords from 50 addresses lock the account: even the right one from a new address is 403
--- init
my @s = ::fail_logins('victim@example.com', 50);
is(::count_of(401, @s), 50, 'fifty failures, one per address, each a 401');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.200;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'victim@example.com', password => $::PW })
--- error_code: 403
--- response_body_like: ^\{"error":\{"code":"account_locked","message":"too many failed sign-in attempts for this account; reset the password \(forgot-password\) to unlock it","request_id":"[\w-]+"\}\}$
--- check
$::locked_body = ::bare($::res->{body});
my ($f) = dbh()->selectrow_array(
    q{SELECT failures FROM account_guard WHERE email = 'victim@example.com'});
is($f, 50, 'the budget is spent, the refused attempt not counted');
like(::sidecar_log_tail(300), qr/msg="account locked: 50 failed sign-ins in 24 hours; a password reset unlocks it"/,
     'the lock is logged once, without the email');



=== TEST 2: an email without an account: the same 401s, then the same 403, the same body
--- init
my @s = ::fail_logins('ghost@example.com', 50);
is(::count_of(401, @s), 50, 'fifty 401s for the unknown address too');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.201;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'ghost@example.com', password => $::PW })
--- error_code: 403
--- check
is(::bare($::res->{body}), $::locked_body, 'byte for byte the known account\'s answer');



=== TEST 3: a locked account: otp/verify and the password change are refused too, the same for an unknown address
--- init
$::code = ::new_code('victim@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.202;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ ::body('otp/verify', { email => 'victim@example.com', code => $::code }),
  ::body('otp/verify', { email => 'ghost@example.com', code => '123456' }) ]
--- error_code eval
[403, 403]
--- response_body_like eval
[ '"code":"account_locked"', '"code":"account_locked"' ]
--- check
my ($uid) = dbh()->selectrow_array(q{SELECT id FROM users WHERE email = 'victim@example.com'});
my $tok = jwt({ sub => $uid });
my $r = sidecar_api(PUT => "$::G/password",
                    { old_password => $::PW, new_password => 'another password 1' },
                    { Authorization => "Bearer $tok" });
is($r->{status}, 403, 'password change: 403');
like($r->{body}, qr/"code":"account_locked"/, '... account_locked (a stolen token cannot guess on)');



=== TEST 4: 60 concurrent guesses from 60 addresses: no more than 50 are checked
--- init
my @ips = map { ::addr() } 1 .. 60;
my $dir = File::Temp::tempdir(CLEANUP => 1);
my @kids;
for my $i (0 .. 59) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $r = ::post('login', { email => 'race@example.com', password => 'wrong password!' },
                       $ips[$i]);
        open my $fh, '>', "$dir/$i" or POSIX::_exit(1);
        print $fh $r->{status};
        close $fh;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
my @s = map { open my $fh, '<', "$dir/$_" or die; scalar <$fh> } 0 .. 59;
my ($busy, $denied, $checked) = map { ::count_of($_, @s) } 503, 403, 401;
is($busy + $denied + $checked, 60, 'each got 401, 403 or (no scrypt slot free) 503')
    or diag "@s";
is($checked, $busy >= 10 ? 60 - $busy : 50,
   "exactly 50 checked (or all that found a slot): $checked, $denied refused, $busy busy");
my ($f) = dbh()->selectrow_array(
    q{SELECT failures FROM account_guard WHERE email = 'race@example.com'});
is($f, $checked, 'the count is the number checked');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.203;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'race@example.com', password => $::PW })
--- error_code eval
$::checked = dbh()->selectrow_array(
    q{SELECT failures FROM account_guard WHERE email = 'race@example.com'});
($::checked // 0) >= 50 ? 403 : 200



=== TEST 5: a password reset by mail unlocks the account, for every address
--- init
my $r = ::post('login', { email => 'victim@example.com', password => $::PW }, ::addr());
is($r->{status}, 403, 'still locked, from yet another address');
$r = ::post('forgot-password', { email => 'victim@example.com' }, ::addr());
is($r->{status}, 202, 'forgot-password: 202');
($::token) = ::last_mail('victim@example.com', 'Reset%') =~ /token is ([A-Za-z0-9_-]{43})\b/;
$r = ::post('reset-password', { token => $::token, password => 'a brand new password' }, ::addr());
is($r->{status}, 200, 'reset-password: 200');
my ($rows) = dbh()->selectrow_array(
    q{SELECT count(*) FROM account_guard WHERE email = 'victim@example.com'});
is($rows, 0, 'the budget is gone');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.200;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'victim@example.com', password => 'a brand new password' })
--- error_code: 200
--- response_body_like: "global_access_token"



=== TEST 6: registering an address that a stranger locked while it had no account starts with a full budget
--- init
::fail_logins('newcomer@example.com', 50);
is(::post('login', { email => 'newcomer@example.com', password => $::PW }, ::addr())->{status},
   403, 'the address without an account is locked');
::register('newcomer@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.204;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('login', { email => 'newcomer@example.com', password => $::PW })
--- error_code: 200



=== TEST 7: a new code does not reset the tries: 5 wrong on one code, 5 on the next, and the third code is refused (429) even when right
--- init
my $c1 = ::new_code('otp@example.com');
my @s = map { ::post('otp/verify', { email => 'otp@example.com', code => ::wrong_code($c1) },
                     ::addr())->{status} } 1 .. 5;
my $c2 = ::new_code('otp@example.com');
push @s, map { ::post('otp/verify', { email => 'otp@example.com', code => ::wrong_code($c2) },
                      ::addr())->{status} } 1 .. 5;
is(::count_of(401, @s), 10, 'ten wrong codes over two codes, each a 401');
$::code = ::new_code('otp@example.com');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.205;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('otp/verify', { email => 'otp@example.com', code => $::code })
--- error_code: 429
--- response_headers_like
Retry-After: ^(?:8[5-9]\d|900)$
--- response_body_like: ^\{"error":\{"code":"too_many_attempts","message":"too many wrong codes for this account; retry in \d+ seconds"



=== TEST 8: the same for an email without an account: 10 wrong codes, then 429
--- init
my @s = map { ::post('otp/verify', { email => 'nobody@example.com', code => '123456' },
                     ::addr())->{status} } 1 .. 10;
is(::count_of(401, @s), 10, 'ten 401s');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.206;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('otp/verify', { email => 'nobody@example.com', code => '123456' })
--- error_code: 429
--- response_headers_like
Retry-After: ^(?:8[5-9]\d|900)$
--- response_body_like: "code":"too_many_attempts","message":"too many wrong codes for this account; retry in \d+ seconds"



=== TEST 9: once the 15 minutes are over, the last code works (and the wrong codes still count toward the 50)
--- init
dbh()->do(q{UPDATE account_guard SET otp_window_start = otp_window_start - interval '15 minutes 1 second'
             WHERE email = 'otp@example.com'});
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 192.0.2.205;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
::body('otp/verify', { email => 'otp@example.com', code => $::code })
--- error_code: 200
--- check
my ($f, $o) = dbh()->selectrow_array(
    q{SELECT failures, otp_failures FROM account_guard WHERE email = 'otp@example.com'});
is($f, 10, 'ten failures in the 24-hour budget');
is($o, 0, 'the success gave its reservation back');



=== TEST 10: login from one address: 30 a minute (whatever the emails), then 429 with Retry-After
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 203.0.113.10;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ map { ::body('login', { email => "spray$_\@example.com", password => 'wrong password!' }) } 1 .. 31 ]
--- error_code eval
[ (401) x 30, 429 ]
--- response_body_like eval
[ ('"code":"invalid_credentials"') x 30,
  '^\{"error":\{"code":"rate_limited","message":"password limit of 30 requests per minute per client address exceeded, retry in \d+ s","request_id":"[\w-]+"\}\}$' ]
--- response_headers_like eval
[ ("X-Request-Id: .") x 30, "Retry-After: ^(?:[1-9]|[1-5]\\d|60)\$" ]



=== TEST 11: the limit is the address's: another one logs in; the same one may still use the other public routes
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 203.0.113.10;
        proxy_pass http://trueport_sidecar;
    }
    location /other/ {
        proxy_set_header X-Real-IP 203.0.113.11;
        proxy_pass http://trueport_sidecar/platform/api/;
    }
--- request eval
[ "POST /other/global/auth/login\n" . ::json_encode({ email => 'unlocked@example.com', password => $::PW }),
  "GET /platform/api/global/tenants/check-availability?slug=free-co",
  ::body('register', { email => 'late@example.com', password => $::PW }),
  ::body('reset-password', { token => 'x' x 43, password => $::PW }) ]
--- error_code eval
[200, 200, 429, 429]



=== TEST 12: register and reset-password share the scrypt routes' 30 a minute
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 203.0.113.12;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (map { ::body('register', { email => "reg$_\@example.com", password => $::PW }) } 1 .. 20),
  (map { ::body('reset-password', { token => 'x' x 43, password => $::PW }) } 1 .. 11) ]
--- error_code eval
[ (201) x 20, (401) x 10, 429 ]



=== TEST 13: the other public routes (otp, forgot-password, check-availability, invites/accept): 60 a minute per address
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP 203.0.113.13;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ (map { "GET /platform/api/global/tenants/check-availability?slug=co-$_" } 1 .. 20),
  (map { ::body('otp/request', { email => "p$_\@example.com" }) } 1 .. 10),
  (map { ::body('otp/verify', { email => "p$_\@example.com", code => '000000' }) } 1 .. 10),
  (map { ::body('forgot-password', { email => "p$_\@example.com" }) } 1 .. 10),
  (map { "POST /platform/api/global/invites/accept\n{\"token\":\"t\"}" } 1 .. 10),
  "GET /platform/api/global/tenants/check-availability?slug=one-more" ]
--- error_code eval
[ (200) x 20, (202) x 10, (401) x 10, (202) x 10, (401) x 10, 429 ]
--- response_headers_like eval
[ ("X-Request-Id: .") x 60, "Retry-After: ^\\d+\$" ]
--- response_body_like eval
[ ('.') x 60, '"code":"rate_limited","message":"public limit of 60 requests per minute per client address exceeded' ]



=== TEST 13b: IPv6 clients count per /64: 60 addresses of one /64 share one budget, another /64 has its own
--- config
    location ~ ^/v6/([\w:]+)/(\w+)/(.*)$ {
        proxy_set_header X-Real-IP 2001:db8:$1::$2;
        proxy_pass http://trueport_sidecar/platform/api/$3$is_args$args;
    }
--- request eval
[ (map { "GET /v6/5:6/$_/global/tenants/check-availability?slug=v6-$_" } map { sprintf '%x', $_ } 1 .. 61),
  "GET /v6/5:7/1/global/tenants/check-availability?slug=v6-other" ]
--- error_code eval
[ (200) x 60, 429, 200 ]



=== TEST 14: X-Real-IP is believed only from a trusted proxy: with nginx's address not listed, every client is nginx
--- init
restart_sidecar(TRUEPORT_TRUSTED_PROXIES => '192.0.2.1');
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP $http_x_client;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ map { ::body('login', { email => "spray$_\@example.com", password => 'wrong password!' }) } 1 .. 31 ]
--- more_headers eval
[ map { "X-Client: 203.0.114.$_" } 1 .. 31 ]
--- error_code eval
[ (401) x 30, 429 ]
--- check
my $r = sidecar_internal_api(GET => '/internal/v1/keys/resolve?hash=' . ('a' x 64) . '&provider=openai',
                             undef, { 'X-TruePort-Internal-Token' => internal_token() });
is($r->{status}, 404, 'and /internal/ answers only trusted proxies, token or not');



=== TEST 15: a trusted proxy names the client: spoofed forms of X-Real-IP are ignored, not believed
--- init
restart_sidecar(TRUEPORT_TRUSTED_PROXIES => undef);
--- config
    location /platform/api/ {
        proxy_set_header X-Real-IP "203.0.113.15, 10.0.0.1";
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[ map { ::body('login', { email => "list$_\@example.com", password => 'wrong password!' }) } 1 .. 31 ]
--- error_code eval
[ (401) x 30, 429 ]
--- check
like(::sidecar_log_tail(5), qr/client=127\.0\.0\.1 /, 'a list is not an address: the peer counts');



=== TEST 16: /health for a stranger: the status and nothing else
--- config
    location = /health {
        proxy_set_header X-Real-IP 203.0.113.20;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200
--- response_body: {"status":"ok"}



=== TEST 17: /health for a platform admin's token, from anywhere: the details
--- config
    location = /health {
        proxy_set_header X-Real-IP 203.0.113.20;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- more_headers eval
"Authorization: Bearer " . jwt({ sub => $::admin })
--- error_code: 200
--- response_body_like: ^\{"status":"ok","database":"ok","schema_version":\d+\}$



=== TEST 18: /health from loopback: the details; a user's token (not an admin) is a stranger's
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
    location = /remote-health {
        proxy_set_header X-Real-IP 203.0.113.21;
        proxy_pass http://trueport_sidecar/health;
    }
--- request eval
[ "GET /health", "GET /remote-health", "GET /remote-health" ]
--- more_headers eval
[ "", "Authorization: Bearer " . jwt({ sub => dbh()->selectrow_array(q{SELECT id FROM users WHERE email = 'otp@example.com'}) }),
  "Authorization: Bearer " . jwt({ sub => $::admin }, secret => 'x' x 40) ]
--- response_body_like eval
[ '^\{"status":"ok","database":"ok","schema_version":\d+\}$', '^\{"status":"ok"\}$', '^\{"status":"ok"\}$' ]



=== TEST 19: /health with Postgres down: a stranger still gets only the status (503)
--- init
pg_stop();
--- config
    location = /health {
        proxy_set_header X-Real-IP 203.0.113.20;
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- timeout: 5
--- error_code: 503
--- response_body: {"status":"degraded"}
--- check
pg_start();



=== TEST 20: the sidecar refuses to serve without an internal token (or with a short one), naming the setting
--- init
for my $tok (undef, '0123456789abcde') {
    my $log = work_dir() . '/no-token.log';
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        $ENV{TRUEPORT_LISTEN} = '127.0.0.1:' . free_port();
        $ENV{TRUEPORT_INTERNAL_LISTEN} = '127.0.0.1:' . free_port();
        $ENV{TRUEPORT_DATABASE_URL} = db_dsn();
        $ENV{TRUEPORT_JWT_SECRET} = 'x' x 40;
        $ENV{TRUEPORT_MASTER_KEY} = '0' x 64;
        $ENV{TRUEPORT_SCRYPT_N} = 1024;
        if (defined $tok) { $ENV{TRUEPORT_INTERNAL_TOKEN} = $tok }
        else { delete $ENV{TRUEPORT_INTERNAL_TOKEN} }
        { exec($ENV{TP_SIDECAR} // "$ENV{TP_ROOT}/build/trueport-sidecar", 'serve') }
        POSIX::_exit(127);
    }
    my $deadline = time + 5;
    my $gone;
    until (($gone = waitpid($pid, POSIX::WNOHANG()) == $pid) || time > $deadline) {
        sleep 0.05;
    }
    my $what = defined $tok ? 'a 15-character token' : 'no token';
    if (!$gone) {
        kill 'TERM', $pid;
        waitpid($pid, 0);
        fail("$what: the sidecar exits");
        next;
    }
    is($? >> 8, 2, "$what: exit status 2");
    open my $fh, '<', $log or die;
    like(join('', <$fh>), qr/^trueport-sidecar: configuration error: TRUEPORT_INTERNAL_TOKEN is required to serve: at least 16 characters/,
         "$what: the error names the setting");
}
--- config
--- request
GET /nothing
--- error_code: 404



=== TEST 21: the request log escapes the path and never prints the query string or a header's secret
--- init
my $r = http_request(port => sidecar_port(), method => 'GET',
    uri => '/platform/api/x%0aforged=1%22q%5c%1b%5b31m%c3%a9%7f?token=sk-leak-query-1&password=pw-leak-2',
    headers => [[ Authorization => 'Bearer tok-leak-header-3' ],
                [ 'X-TruePort-Internal-Token' => internal_token() ]]);
is($r->{status}, 404, 'an unknown path: 404');
--- config
--- request
GET /nothing
--- error_code: 404
--- check
my $log = ::sidecar_log_tail(50);
like($log, qr{ method=GET path="/platform/api/x\\x0aforged=1\\x22q\\x5c\\x1b\[31m\\xc3\\xa9\\x7f" status=404 },
     'control characters, quotes, backslashes and non-ASCII as \xNN');
unlike($log, qr/^forged/m, 'no forged line');
unlike($log, qr/\x1b/, 'no terminal escape');
my $tok = internal_token();
unlike($log, qr/sk-leak-query-1|pw-leak-2|tok-leak-header-3|\Q$tok\E/,
       'no query string, no Authorization, no internal token');



=== TEST 22: no password, code, reset token, key or key hash in the log, even at debug level
--- init
my $key = gw_key(gw_tenant())->{key};
our $hash = sha256_hex($key);
our @secrets = ($hash, $key, 'pw-secret-register-1', 'pw-secret-login-2');
::post('register', { email => 'quiet@example.com', password => $secrets[2] }, ::addr());
::post('login', { email => 'quiet@example.com', password => $secrets[3] }, ::addr());
::post('login', { email => 'quiet@example.com', password => 'pw-secret-wrong-3' }, ::addr());
push @secrets, 'pw-secret-wrong-3';
my $c = ::new_code('quiet@example.com');
::post('otp/verify', { email => 'quiet@example.com', code => ::wrong_code($c) }, ::addr());
::post('otp/verify', { email => 'quiet@example.com', code => $c }, ::addr());
push @secrets, $c, ::wrong_code($c);
::post('forgot-password', { email => 'quiet@example.com' }, ::addr());
my ($t) = ::last_mail('quiet@example.com', 'Reset%') =~ /token is ([A-Za-z0-9_-]{43})\b/;
::post('reset-password', { token => $t, password => 'pw-secret-reset-4' }, ::addr());
push @secrets, $t, 'pw-secret-reset-4';
my $r = sidecar_internal_api(GET => "/internal/v1/keys/resolve?hash=$hash&provider=openai",
                             undef, { 'X-TruePort-Internal-Token' => internal_token() });
is($r->{status}, 200, 'the key resolves');
--- config
--- request
GET /nothing
--- error_code: 404
--- check
my $log = do { open my $fh, '<', work_dir() . '/logs/sidecar.log' or die; local $/; <$fh> };
like($log, qr/level=debug/, 'the sidecar logs at debug level');
for my $s (@::secrets) {
    unlike($log, qr/\b\Q$s\E\b/, "not in the log: " . substr($s, 0, 6) . '...');
}



=== TEST 23: while register and login flood the API with scrypt at N=2^15, new keys still resolve through the gateway
--- init
restart_sidecar(TRUEPORT_SCRYPT_N => 32768);
our $flood = File::Temp::tempdir(CLEANUP => 1);
our @flooders;
for my $c (1 .. 24) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open my $out, '>', "$flood/$c" or POSIX::_exit(1);
        my $deadline = time + 60;
        my $i = 0;
        while (!-e "$flood/stop" && time < $deadline) {
            $i++;
            my $ip = join '.', 10, $c, int($i / 200), $i % 200 + 1;
            my $path = $i % 2 ? 'register' : 'login';
            my $r = ::post($path, { email => "flood-$c-$i-$$\@example.com",
                                    password => 'flood password 123' }, $ip);
            print $out "$r->{status}\n";
        }
        close $out;
        POSIX::_exit(0);
    }
    push @flooders, $pid;
}
# the flood is on once every slot is busy and requests are turned away
my $deadline = time + 20;
until (time > $deadline
       || grep { open my $fh, '<', $_ or next; grep { /^503$/ } <$fh> } glob("$flood/[0-9]*")) {
    sleep 0.1;
}
my $t = gw_tenant();
gw_env(map { ("NEW_KEY$_" => gw_key($t)->{key}) } 1 .. 3);
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[ ("POST /trueportai-services/openai/v1/chat/completions\n"
   . '{"model":"m","messages":[{"role":"user","content":"hi"}]}') x 3 ]
--- more_headers eval
[ map { "Authorization: Bearer $ENV{\"TEST_NGINX_NEW_KEY$_\"}" } 1 .. 3 ]
--- error_code eval
[200, 200, 200]
--- response_headers eval
[ "X-Cache: MISS" ]
--- check
open my $stop, '>', "$::flood/stop" or die;
close $stop;
waitpid($_, 0) for @::flooders;
my @s = map { open my $fh, '<', $_ or die; map { chomp; $_ } <$fh> } glob("$::flood/[0-9]*");
my %by;
$by{$_}++ for @s;
diag(join ', ', map { "$_: $by{$_}" } sort keys %by);
ok(($by{201} // 0) + ($by{401} // 0) > 0, 'the flood ran scrypt (201 registrations, 401 logins)');
ok(($by{503} // 0) > 0, '... and was turned away with 503 when every scrypt slot was busy');
is(scalar(grep { !/^(?:201|401|503)$/ } @s), 0, 'nothing else (no 429: every request from its own address)');
like(::sidecar_log_tail(2000), qr/"busy"|err=busy/, 'the 503s are "busy"');
