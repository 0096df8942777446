# The outbox and its delivery: with TRUEPORT_SENDMAIL set, committed
# messages are piped to `sendmail -t -i` by a background thread and marked
# sent; a failing sendmail is retried later with the reason kept; headers
# cannot be injected; stale mail is never sent; dev mode logs that a
# message was queued, but never its body (the code is a secret: no log
# line carries one, in any mode).
use lib 't/lib';
use Test::TruePort;
use Test::More;
use Time::HiRes qw(sleep time);

our $W = work_dir();
our $G = '/platform/api/global/auth';
mkdir "$W/mail";

sub script {
    my ($name, $text) = @_;
    open my $fh, '>', "$W/$name" or die "$W/$name: $!";
    print $fh "#!/bin/sh\n$text";
    close $fh;
    chmod 0755, "$W/$name";
    return "$W/$name";
}

# one file per message: the arguments on the first line, then stdin
script('sendmail.sh', <<"SH");
f=\$(mktemp $W/mail/msg.XXXXXX)
echo "args: \$*" > "\$f"
cat >> "\$f"
SH
script('failing.sh', "cat >/dev/null\necho 'relay refused' >&2\nexit 3\n");

use_sidecar(env => { TRUEPORT_DEV_MODE => 1,
                     TRUEPORT_SENDMAIL => "$W/sendmail.sh" });

our $dbh = dbh();
sidecar_api(POST => "$G/register",
            { email => "$_\@example.com", password => 'correct horse battery' })
    for qw(ann ben);

# waits until the outbox row of the newest message to $to is no longer
# pending (sent or failed once); returns the row
sub settled {
    my ($to) = @_;
    my $deadline = time + 10;
    while (1) {
        my $row = $dbh->selectrow_hashref(
            'SELECT * FROM outbox WHERE to_addr = ? ORDER BY id DESC LIMIT 1',
            undef, $to);
        return $row if $row && ($row->{sent_at} || $row->{attempts} > 0);
        return $row if time > $deadline;
        sleep 0.1;
    }
}

sub delivered {
    my ($pattern) = @_;
    for my $f (glob "$W/mail/msg.*") {
        open my $fh, '<', $f or next;
        local $/;
        my $text = <$fh>;
        return $text if $text =~ $pattern;
    }
    return '';
}

our $code;

run_tests();

__DATA__

=== TEST 1: otp/request answers at once; the code is queued
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/otp/request
{"email": "ann@example.com"}
--- error_code: 202
--- no_error_log
[error]



=== TEST 2: delivered through sendmail -t -i, marked sent; dev mode logs the mail, not the code
--- init
my $row = ::settled('ann@example.com');
ok($row->{sent_at}, 'sent_at is set') or diag explain $row;
is($row->{attempts}, 1, 'one attempt');
is($row->{last_error}, undef, 'no error');
# the code is read from what sendmail got: once sent, the row keeps no
# body (issue 13, t/097-harden-tenant.t)
my $mail = ::delivered(qr/code is \d{6}/);
($::code) = $mail =~ /code is (\d{6})/;
is($row->{body}, undef, 'the sent row keeps no body');
like($mail, qr/^args: -t -i\n/, 'sendmail ran with -t -i');
like($mail, qr/^To: ann\@example\.com$/m, 'To header');
like($mail, qr/^Subject: Your TruePort sign-in code$/m, 'Subject header');
like($mail, qr{^Content-Type: text/plain; charset=UTF-8$}m, 'Content-Type header');
like($mail, qr/\n\nYour sign-in code is $::code\n/, 'the body after the headers');
my $log = ::sidecar_log_tail(200);
like($log,
     qr/msg="mail queued \(dev mode\): the body is in the outbox table" outbox_id=\d+ to=ann\@example\.com subject="Your TruePort sign-in code"$/m,
     'dev mode logs the message, without its body');
unlike($log, qr/\b\Q$::code\E\b/, '... and the code is in no log line');
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST $::G/otp/verify\n{\"email\": \"ann\@example.com\", \"code\": \"$::code\"}"
--- error_code: 200



=== TEST 3: a subject cannot add headers; UTF-8 subjects are RFC 2047 encoded; stale mail is not sent
--- init
$::dbh->do(q{INSERT INTO outbox (to_addr, subject, body) VALUES
             ('x@example.com', E'Hello\nBcc: evil@example.com', 'one'),
             ('y@example.com', U&'Caf\00E9 f\00FCr Zo\00EB', 'two')});
$::dbh->do(q{INSERT INTO outbox (to_addr, subject, body, created_at) VALUES
             ('z@example.com', 'old news', 'three', now() - interval '25 hours')});
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/forgot-password
{"email": "ben@example.com"}
--- error_code: 202



=== TEST 4: ... checked
--- init
ok(::settled('ben@example.com')->{sent_at}, 'the reset mail went out');
ok(::settled('x@example.com')->{sent_at}, 'the hand-written row went out');
my $one = ::delivered(qr/\n\none\n/);
like($one, qr/^Subject: Hello Bcc: evil\@example\.com$/m, 'the newline became a space');
unlike($one, qr/^Bcc:/m, 'no Bcc header');
ok(::settled('y@example.com')->{sent_at}, 'the UTF-8 row went out');
like(::delivered(qr/\n\ntwo\n/), qr/^Subject: =\?UTF-8\?B\?Q2Fmw6kgZsO8ciBab8Or\?=$/m,
     'encoded word');
my ($old) = $::dbh->selectrow_array(
    q{SELECT sent_at IS NULL AND attempts = 0 FROM outbox WHERE to_addr = 'z@example.com'});
ok($old, 'mail older than a day stays unsent');
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200



=== TEST 5: a failing sendmail: the request still succeeds, the row keeps the reason and is retried later
--- init
restart_sidecar(TRUEPORT_SENDMAIL => "$::W/failing.sh");
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/otp/request
{"email": "ben@example.com"}
--- error_code: 202



=== TEST 6: ... checked
--- init
my $row = ::settled('ben@example.com');
is($row->{sent_at}, undef, 'not sent');
is($row->{attempts}, 1, 'one attempt');
is($row->{last_error}, 'sendmail failed (exit 3): relay refused', 'the reason, with what sendmail said');
my ($wait) = $::dbh->selectrow_array(
    'SELECT extract(epoch FROM next_attempt_at - now()) FROM outbox WHERE id = ?',
    undef, $row->{id});
ok($wait > 50 && $wait <= 60, 'next attempt in a minute');
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200



=== TEST 7: a sendmail that cannot run is a failed attempt too
--- init
restart_sidecar(TRUEPORT_SENDMAIL => "$::W/no-such-sendmail");
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/forgot-password
{"email": "ann@example.com"}
--- error_code: 202



=== TEST 8: ... checked; due retries go out once sendmail works again
--- init
my $row = ::settled('ann@example.com');
is($row->{attempts}, 1, 'one attempt');
like($row->{last_error}, qr/^cannot run .*no-such-sendmail: No such file/, 'the reason');
$::dbh->do(q{UPDATE outbox SET next_attempt_at = now() WHERE sent_at IS NULL
             AND created_at > now() - interval '1 day'});
restart_sidecar(TRUEPORT_SENDMAIL => "$::W/sendmail.sh");
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/otp/request
{"email": "ann@example.com"}
--- error_code: 202



=== TEST 9: ... every due message was delivered on the next wake-up
--- init
::settled('ann@example.com');
my $deadline = time + 10;
my $left;
while (time < $deadline) {
    ($left) = $::dbh->selectrow_array(
        q{SELECT count(*) FROM outbox WHERE sent_at IS NULL
          AND created_at > now() - interval '1 day'});
    last if $left == 0;
    sleep 0.1;
}
is($left, 0, 'no recent mail left unsent');
my ($attempts) = $::dbh->selectrow_array(
    q{SELECT attempts FROM outbox WHERE to_addr = 'ben@example.com'
      AND subject LIKE '%sign-in code' ORDER BY id DESC LIMIT 1});
is($attempts, 2, 'the failed one went out on its second attempt');
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200
