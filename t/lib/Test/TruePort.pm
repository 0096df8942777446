package Test::TruePort;
# The project's Test::Nginx-style harness (Test::Nginx itself is not
# installable here), on Test::Base:
#
#   use lib 't/lib';
#   use Test::TruePort;          # also Test::More, strict and warnings
#   use_sidecar();               # fresh migrated database + sidecar
#   run_tests();
#   __DATA__
#   === TEST 1: title
#   --- config
#       location /t { return 200 "ok"; }
#   --- request
#   GET /t
#   --- response_body: ok
#
# Per block, in this order:
#   1. --- init runs (Perl, package main), while the previous block's nginx
#      still runs: api() in init goes through the previous block's config;
#   2. nginx is (re)started for the block's main_config, http_config and
#      config (kept running when the rendered nginx.conf did not change);
#   3. every other section is filtered ("eval" sections run now, so they
#      see init's globals, this block's nginx and the sidecar);
#   4. the requests, each checked against error_code, response_body,
#      response_body_like, response_headers, response_headers_like;
#   5. --- wait, then --- check (Perl; $main::res is the last response,
#      @main::responses all of them), then error_log / no_error_log over
#      what nginx logged since the first request.
#
# Sections: main_config, http_config, config (inside server { listen ...}),
# init, request ("METHOD /uri [HTTP/1.x]", the rest is the body; eval: one
# string or an array of them, sent in order), request_body, more_headers
# ("Name: value" lines), error_code, response_body, response_body_like,
# response_headers ("Name: value", "!Name" for absent),
# response_headers_like ("Name: regex"), error_log, no_error_log (lines,
# or eval: an array of strings / qr//), timeout (seconds per request,
# default 10), wait (seconds), check. Every section may be "eval"; an
# array for a per-request section gives one entry per request (an array of
# one entry applies to all). Each check is one assertion named
# "TEST n: title - what". "$TEST_NGINX_*" in config, request, request_body
# and more_headers (and in body/header expectations) is replaced with the
# environment's value: SERVER_PORT, SIDECAR_PORT, SIDECAR_INTERNAL_PORT,
# MOCK_PORT, ROOT, WORK, HTML_DIR, INTERNAL_TOKEN, JWT_SECRET are set by
# the harness. nginx has two upstreams: trueport_sidecar (the API) and
# trueport_sidecar_internal (the /internal/ listener).
#
# A block also fails (without dying the file) when a section is unknown,
# init/check/an eval dies, nginx does not start, a worker crashed, the
# sidecar exited behind the harness's back, or (make test-asan: a
# sanitized module, TP_NGINX_PRELOAD naming libasan/libubsan) nginx wrote
# an ASan/UBSan report.
#
# Helpers for chained calls: api(), sidecar_api(), sidecar_internal_api(),
# http_request(), dbh(), pg_stop(), pg_start(), restart_sidecar(),
# stop_sidecar(), jwt() and more in @EXPORT below.
use strict;
use warnings;


# Code from the test file (init, check, eval sections) runs here: declared
# before any of this file's lexicals so it cannot see or clobber them, in
# package main so "$::x" and "our $x" of the test file mean the same thing.
sub _eval_main {
    package main;
    no strict 'vars';
    return eval $_[0];
}


use Test::Base;
use Cwd qw(abs_path);
use DBI;
use Digest::SHA qw(hmac_sha256);
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    run_tests use_sidecar workers server_port sidecar_port sidecar_pid
    sidecar_internal_port sidecar_internal_api
    restart_sidecar stop_sidecar start_sidecar db_dsn dbh pg_stop pg_start
    work_dir api sidecar_api http_request sidecar_log_tail error_log_tail
    jwt json_encode json_decode internal_token free_port wait_port
    nginx_reload nginx_cmd
);

# Exports the helpers and Test::More into the test file, with strict and
# warnings on.
sub import {
    my $caller = caller;
    no strict 'refs';
    *{"${caller}::$_"} = \&{"Test::TruePort::$_"} for @EXPORT;
    eval "package $caller; use Test::More; 1" or die $@;
    strict->import;
    warnings->import;
}

my $ROOT = abs_path($ENV{TP_ROOT} // dirname(__FILE__) . '/../../..');
my $NGINX = $ENV{TP_NGINX} // '/usr/sbin/nginx';
my $MODULE = $ENV{TP_MODULE} // "$ROOT/build/ngx_http_trueport_module.so";
my $SIDECAR = $ENV{TP_SIDECAR} // "$ROOT/build/trueport-sidecar";
# a sanitized module in an uninstrumented nginx: the runtimes go first
my $PRELOAD = $ENV{TP_NGINX_PRELOAD} // '';
my $JWT_SECRET = 'trueport-test-jwt-secret-0123456789abcdef';
my $MASTER_KEY = '00112233445566778899aabbccddeeff' x 2;
my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

# The sections a block may have; anything else is a typo that would
# otherwise silently check nothing.
my %SECTIONS = map { $_ => 1 } qw(
    main_config http_config config init request request_body more_headers
    error_code response_body response_body_like response_headers
    response_headers_like error_log no_error_log timeout wait check
    ONLY SKIP LAST
);
# Sections that may hold one entry per request.
my @PER_REQUEST = qw(request_body more_headers error_code response_body
                     response_body_like response_headers
                     response_headers_like);

my $owner = $$;
my $name = basename($0, '.t') =~ s/[^\w]/_/gr;
my $own_tmp;
# (nothing on disk under perl -c: END, which cleans up, would not run)
my $base = $ENV{TP_WORK} // ($^C ? '/nonexistent' : do {
    $own_tmp = File::Temp::tempdir('trueport-t-XXXXXX', TMPDIR => 1);
    chmod 0755, $own_tmp;   # nginx workers and postgres must get in
    $own_tmp;
});
my $work = "$base/$name-$$";
if (!$^C) {
    make_path("$work/conf", "$work/logs", "$work/html", "$work/tmp",
              { mode => 0755 });
    chmod 0755, $work;
}

my $port = free_port();
my $workers = 2;
my ($sidecar_pid, $sidecar_port, $sidecar_env, $db_name, $dbh);
my $internal_token = sprintf '%08x%08x', int(rand(2**32)), int(rand(2**32));
my ($nginx_conf_text, $nginx_pid, $pg_stopped_by_us);

$ENV{TEST_NGINX_SERVER_PORT} = $port;
$ENV{TEST_NGINX_ROOT} = $ROOT;
$ENV{TEST_NGINX_WORK} = $work;
$ENV{TEST_NGINX_HTML_DIR} = "$work/html";
$ENV{TEST_NGINX_INTERNAL_TOKEN} = $internal_token;
$ENV{TEST_NGINX_JWT_SECRET} = $JWT_SECRET;
$ENV{TEST_NGINX_MOCK_PORT} //= free_port();
$ENV{TEST_NGINX_SIDECAR_PORT} = free_port();
$ENV{TEST_NGINX_SIDECAR_INTERNAL_PORT} = free_port();

# The harness filters each block's sections itself (_filtered, below), so
# that eval sections run after init and after nginx is up.
Test::Base::filters_delay();

# Ctrl-C, a kill or a closed output pipe ("| head") must still stop nginx
# (a daemon: it would outlive us) and the sidecar and drop the database:
# turn those signals into a normal exit, so END runs.
for my $sig (qw(INT TERM HUP PIPE)) {
    $SIG{$sig} = sub { exit 1 }
        if !defined $SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}


sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "harness: no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}


# Waits until 127.0.0.1:$p accepts; $alive (optional) is asked between
# tries and stops the wait early when it returns false.
sub wait_port {
    my ($p, $secs, $alive) = @_;
    my $deadline = time + ($secs // 10);
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                      Timeout => 1);
        if ($s) { close $s; return 1 }
        return 0 if $alive && !$alive->();
        sleep 0.05;
    }
    return 0;
}


sub workers        { $workers = shift }
sub server_port    { $port }
sub sidecar_port   { $sidecar_port }
sub sidecar_pid    { $sidecar_pid }
sub sidecar_internal_port { $ENV{TEST_NGINX_SIDECAR_INTERNAL_PORT} }
sub work_dir       { $work }
sub internal_token { $internal_token }
sub json_encode    { $JSON->encode(shift) }
sub json_decode    { my $t = shift; my $v = eval { $JSON->decode($t) }; $v }


# --- Postgres and the sidecar ----------------------------------------------

sub _pg_dbi {
    my $db = shift;
    return "dbi:Pg:host=$ENV{TP_PG_HOST};port=$ENV{TP_PG_PORT};dbname=$db";
}


sub db_dsn {
    return "host=$ENV{TP_PG_HOST} port=$ENV{TP_PG_PORT} "
         . "user=$ENV{TP_PG_USER} dbname=$db_name";
}


# The file's own database (reconnects after pg_stop/pg_start).
sub dbh {
    die "harness: dbh() needs use_sidecar()\n" unless $db_name;
    return $dbh if $dbh && $dbh->ping;
    $dbh = DBI->connect(_pg_dbi($db_name), $ENV{TP_PG_USER}, '',
                        { RaiseError => 1, PrintError => 0, AutoCommit => 1,
                          pg_server_prepare => 0 });
    return $dbh;
}


sub use_sidecar {
    my %opts = @_;

    if (!$ENV{TP_PG_HOST}) {
        Test::More::plan(skip_all =>
            'no test Postgres (TP_PG_HOST unset): run through make test');
    }
    die "harness: $SIDECAR is not built (make sidecar)\n" unless -x $SIDECAR;

    $db_name = "tp_${name}_$$";
    my $admin = DBI->connect(_pg_dbi('postgres'), $ENV{TP_PG_USER}, '',
                             { RaiseError => 1, PrintError => 0 });
    $admin->do(qq{CREATE DATABASE "$db_name" TEMPLATE "$ENV{TP_PG_TEMPLATE}"});
    $admin->disconnect;

    $sidecar_port = $ENV{TEST_NGINX_SIDECAR_PORT};
    # Every request of a test comes from 127.0.0.1, where a deployment
    # sees many clients: the per-address limits of the public routes are
    # raised out of the way (t/093-harden-auth.t checks them at their
    # defaults). An env value of undef leaves the setting at its default.
    $sidecar_env = {
        TRUEPORT_LISTEN         => "127.0.0.1:$sidecar_port",
        TRUEPORT_INTERNAL_LISTEN =>
            "127.0.0.1:$ENV{TEST_NGINX_SIDECAR_INTERNAL_PORT}",
        TRUEPORT_PASSWORD_RPM   => 1000000,
        TRUEPORT_PUBLIC_RPM     => 1000000,
        TRUEPORT_DATABASE_URL   => db_dsn(),
        TRUEPORT_JWT_SECRET     => $JWT_SECRET,
        TRUEPORT_MASTER_KEY     => $MASTER_KEY,
        TRUEPORT_DEV_MODE       => 0,
        TRUEPORT_LOG_LEVEL      => 'debug',
        TRUEPORT_THREADS        => 4,
        TRUEPORT_SCRYPT_N       => 1024,
        TRUEPORT_INTERNAL_TOKEN => $internal_token,
        TRUEPORT_MIGRATIONS     => "$ROOT/migrations",
        %{ $opts{env} || {} },
    };
    start_sidecar();
}


sub _reaped {
    my $pid = shift;
    return waitpid($pid, POSIX::WNOHANG()) == $pid;
}


sub start_sidecar {
    die "harness: start_sidecar() needs use_sidecar()\n" unless $sidecar_env;
    my $log = "$work/logs/sidecar.log";
    my $pid = fork() // die "harness: fork: $!";
    if ($pid == 0) {
        POSIX::setsid();    # its own group: a Ctrl-C goes to the harness
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        for my $k (keys %$sidecar_env) {
            if (defined $sidecar_env->{$k}) {
                $ENV{$k} = $sidecar_env->{$k};
            } else {
                delete $ENV{$k};
            }
        }
        { exec $SIDECAR, 'serve' }
        POSIX::_exit(127);
    }
    $sidecar_pid = $pid;
    my $exited;
    if (!wait_port($sidecar_port, 10, sub { !($exited = _reaped($pid)) })
        || !wait_port(sidecar_internal_port(), 2,
                      sub { !($exited = _reaped($pid)) }))
    {
        undef $sidecar_pid if $exited;
        Test::More::BAIL_OUT('sidecar did not start'
            . ($exited ? " (exit status $?)" : ' within 10 s')
            . ":\n" . sidecar_log_tail(20));
    }
}


sub stop_sidecar {
    my $sig = shift // 'TERM';
    return unless $sidecar_pid;
    kill $sig, $sidecar_pid;
    my $deadline = time + 5;
    my $gone;
    until (($gone = _reaped($sidecar_pid)) || time > $deadline) {
        sleep 0.02;
    }
    if (!$gone) {
        kill 'KILL', -$sidecar_pid;
        waitpid($sidecar_pid, 0);
    }
    undef $sidecar_pid;
}


# Stops and starts the sidecar; %env changes its environment from now on.
sub restart_sidecar {
    my %env = @_;
    stop_sidecar();
    @{$sidecar_env}{keys %env} = values %env;
    start_sidecar();
}


sub _tail {
    my ($file, $n) = @_;
    open my $fh, '<', $file or return '';
    my @l = <$fh>;
    return join '', @l[($#l - $n + 1 < 0 ? 0 : $#l - $n + 1) .. $#l];
}

sub _head {
    my ($file, $n) = @_;
    open my $fh, '<', $file or return '';
    my @l;
    while (@l < $n and defined(my $line = <$fh>)) {
        push @l, $line;
    }
    return join '', @l;
}

sub sidecar_log_tail { _tail("$work/logs/sidecar.log", shift // 30) }
sub error_log_tail   { _tail("$work/logs/error.log", shift // 30) }


sub _pg_ctl {
    my $what = shift;
    die "harness: TP_PG_BIN/TP_PG_DATA unset\n"
        unless $ENV{TP_PG_BIN} && $ENV{TP_PG_DATA};
    my @cmd = ("$ENV{TP_PG_BIN}/pg_ctl", '-D', $ENV{TP_PG_DATA}, '-w',
               '-t', '30', '-l', "$ENV{TP_PG_DATA}/../server.log",
               $what eq 'stop' ? ('-m', 'fast') : (), $what);
    unshift @cmd, 'runuser', '-u', 'postgres', '--' if $> == 0;
    my $pid = fork() // die "harness: fork: $!";
    if ($pid == 0) {
        # from /: the postgres user may not be able to enter our cwd
        chdir '/';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        { exec @cmd }
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    die "harness: pg_ctl $what failed (status $?)\n" if $?;
}


sub pg_stop {
    undef $dbh;
    _pg_ctl('stop');
    $pg_stopped_by_us = 1;
}


sub pg_start {
    _pg_ctl('start');
    $pg_stopped_by_us = 0;
}


# HS256 JWT with the harness's secret (the sidecar checks these). The typ
# claim follows the claims (tid: "scoped", else "global") unless given;
# typ => undef leaves it out (a token from before the claim existed).
sub jwt {
    my ($claims, %o) = @_;
    my $b64 = sub { encode_base64(shift, '') =~ tr{+/}{-_}r =~ s/=+$//r };
    my $head = $b64->($JSON->encode({ alg => $o{alg} // 'HS256',
                                      typ => 'JWT' }));
    my $now = time;
    my %c = (iat => int($now), exp => int($now) + 3600,
             typ => exists $claims->{tid} ? 'scoped' : 'global', %$claims);
    delete $c{typ} unless defined $c{typ};
    my $body = $b64->($JSON->encode(\%c));
    return "$head.$body." if ($o{alg} // '') eq 'none';
    my $sig = $b64->(hmac_sha256("$head.$body", $o{secret} // $JWT_SECRET));
    return "$head.$body.$sig";
}


# --- nginx -----------------------------------------------------------------

# "$TEST_NGINX_NAME" and "${TEST_NGINX_NAME}" from the environment; unknown
# names are left as they are.
sub _subst {
    my $s = shift;
    return $s unless defined $s && !ref $s;
    $s =~ s/\$(?:\{(TEST_NGINX_\w+)\}|(TEST_NGINX_\w+))/
            my $n = $1 \/\/ $2; exists $ENV{$n} ? $ENV{$n} : "\$$n"/ge;
    return $s;
}


sub _nginx_conf {
    my $block = shift;
    my $load = -f $MODULE ? "load_module $MODULE;" : '';
    my $user = $> == 0 ? 'user root;' : '';
    my $sc = $sidecar_port // $ENV{TEST_NGINX_SIDECAR_PORT};
    my $sci = $ENV{TEST_NGINX_SIDECAR_INTERNAL_PORT};
    my %s = map { $_ => _subst(_filtered($block, $_) // '') }
            qw(main_config http_config config);
    for my $k (sort keys %s) {
        die "--- $k: \$$1 is not set\n" if $s{$k} =~ /\$\{?(TEST_NGINX_\w+)/;
    }

    return <<"CONF";
$load
$user
worker_processes $workers;
daemon on;
master_process on;
pid $work/logs/nginx.pid;
error_log $work/logs/error.log debug;
$s{main_config}
events {
    worker_connections 1024;
}
http {
    access_log $work/logs/access.log;
    default_type text/plain;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;

    upstream trueport_sidecar {
        server 127.0.0.1:$sc;
        keepalive 16;
    }

    upstream trueport_sidecar_internal {
        server 127.0.0.1:$sci;
        keepalive 8;
    }

$s{http_config}

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

$s{config}
    }
}
CONF
}


sub _read_pid {
    open my $fh, '<', "$work/logs/nginx.pid" or return;
    my $pid = <$fh> // return;
    return $pid =~ /^(\d+)/ ? $1 : undef;
}


# The daemonized master is not our child: once it exits it stays a zombie
# until init reaps it, which may take seconds, and kill 0 still succeeds.
sub _alive {
    my $pid = shift;
    return 0 unless kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    return (<$fh> // '') !~ /^\d+ \(.*\) Z/;
}


sub _stop_nginx {
    my $pid = $nginx_pid // _read_pid();
    undef $nginx_pid;
    undef $nginx_conf_text;
    return unless $pid;
    if (kill 'QUIT', $pid) {
        my $deadline = time + 5;
        sleep 0.01 while _alive($pid) && time < $deadline;
        # the master and its workers share a process group
        kill 'KILL', -$pid if _alive($pid);
        sleep 0.01 while _alive($pid) && time < $deadline + 2;
    }
    unlink "$work/logs/nginx.pid";
}


# The environment nginx runs in under TP_NGINX_PRELOAD: reports to files
# (a daemon's stderr is the error log); no leak check (nginx frees its
# pools at exit by destroying them); a crash stays a crash (signal 11 in
# the error log, which the harness looks for) rather than an ASan report.
sub _sanitizer_env {
    return () unless $PRELOAD;
    return (LD_PRELOAD => $PRELOAD,
            ASAN_OPTIONS => "log_path=$work/logs/asan:detect_leaks=0"
                . ':detect_stack_use_after_return=1:handle_segv=0'
                . ':handle_sigbus=0:handle_sigfpe=0:handle_abort=0',
            UBSAN_OPTIONS => "log_path=$work/logs/ubsan"
                . ':print_stacktrace=1:halt_on_error=0');
}


# nginx as a shell command, for a test that runs it itself (nginx -t, a
# second instance): under make test-asan with the sanitizer environment.
sub nginx_cmd {
    my %e = _sanitizer_env();
    return join ' ', (map { "$_='$e{$_}'" } sort keys %e), $NGINX;
}


# Runs nginx (it daemonizes); returns its exit status and what it printed.
sub _spawn_nginx {
    my @cmd = ($NGINX, '-p', "$work/", '-c', "$work/conf/nginx.conf",
               '-e', "$work/logs/error.log");
    my $pid = open(my $out, '-|') // die "harness: fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        %ENV = (%ENV, _sanitizer_env());
        { exec @cmd }
        print "harness: exec $NGINX: $!\n";
        POSIX::_exit(127);
    }
    local $/;
    my $text = <$out> // '';
    close $out;
    return ($?, $text);
}


# (Re)starts nginx unless it already runs this exact config; returns an
# error text or undef.
sub _ensure_nginx {
    my $text = shift;
    return undef if defined $nginx_conf_text && $nginx_conf_text eq $text
                    && $nginx_pid && _alive($nginx_pid);

    _stop_nginx();
    open my $fh, '>', "$work/conf/nginx.conf" or die "harness: $!";
    print $fh $text;
    close $fh;

    my $from = -s "$work/logs/error.log" || 0;
    my ($status, $out) = _spawn_nginx();
    if ($status != 0) {
        return "nginx failed to start (status $status):\n$out"
             . _log_since($from);
    }
    # The foreground process exits once the listeners are open; the master
    # writes its pid just after. Without the pid nginx could not be stopped.
    my $deadline = time + 5;
    my $pid;
    sleep 0.01 until ($pid = _read_pid()) && _alive($pid)
                     or time > $deadline;
    return "nginx wrote no pid file:\n" . _log_since($from) unless $pid;
    $nginx_pid = $pid;
    if (!wait_port($port, 5)) {
        _stop_nginx();
        return "nginx did not listen on $port:\n" . _log_since($from);
    }
    $nginx_conf_text = $text;
    return undef;
}


sub nginx_reload {
    my $pid = $nginx_pid // _read_pid() or return;
    kill 'HUP', $pid;
    sleep 0.5;
}


# --- HTTP client -----------------------------------------------------------

# One request on a fresh connection, written byte for byte:
#   http_request(method => 'POST', uri => '/x', body => '...',
#                headers => [[Name => value], ...] or {Name => value},
#                port => server_port(), timeout => 10, version => '1.1')
# Host, Connection: close and Content-Length (when there is a body) are
# added unless given. Returns {status, headers (lowercase names, repeated
# ones joined by ", "), body (de-chunked), json (decoded body or undef),
# raw, timed_out, truncated, error}.
sub http_request {
    my (%a) = @_;
    my $p = $a{port} // $port;
    my $timeout = $a{timeout} // 10;
    my $deadline = time + $timeout;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                     Timeout => $timeout)
        or return { status => 0, error => "connect: $!", headers => {},
                    body => '', raw => '', timed_out => 0 };
    binmode $sock;

    my $h = ref $a{headers} eq 'HASH'
          ? [map { [$_, $a{headers}{$_}] } sort keys %{ $a{headers} }]
          : $a{headers} || [];
    my %have = map { lc($_->[0]) => 1 } @$h;
    my $req = "$a{method} $a{uri} HTTP/" . ($a{version} // '1.1') . "\r\n";
    $req .= "Host: localhost\r\n" unless $have{host};
    $req .= "Connection: close\r\n" unless $have{connection};
    $req .= "Content-Length: " . length($a{body}) . "\r\n"
        if defined $a{body} && !$have{'content-length'}
           && !$have{'transfer-encoding'};
    $req .= "$_->[0]: $_->[1]\r\n" for @$h;
    $req .= "\r\n";
    $req .= $a{body} if defined $a{body};

    # The server may answer early (413) and close: a write error then is
    # not the test's failure, the response is.
    {
        local $SIG{PIPE} = 'IGNORE';
        my $sel = IO::Select->new($sock);
        my $off = 0;
        while ($off < length $req) {
            last unless $sel->can_write(_left($deadline));
            my $n = syswrite($sock, $req, length($req) - $off, $off);
            last unless $n;
            $off += $n;
        }
    }

    my ($raw, $timed_out) = ('', 0);
    my $sel = IO::Select->new($sock);
    my $done;
    until ($done) {
        my $left = $deadline - time;
        if ($left <= 0 || !$sel->can_read($left)) {
            $timed_out = 1;
            last;
        }
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
        # stop at the end of the message even if the server keeps the
        # connection open (a test may ask for keep-alive)
        $done = _parse_response($raw, $a{method}, 0, 1)->{complete};
    }
    close $sock;

    return _parse_response($raw, $a{method}, $timed_out);
}


sub _left { my $l = shift() - time; $l > 0 ? $l : 0 }


# Parses what was read so far; {complete} says whether the message ended
# ($partial: only that is wanted, skip decoding JSON).
sub _parse_response {
    my ($raw, $method, $timed_out, $partial) = @_;
    my %r = (status => 0, headers => {}, body => '', raw => $raw,
             timed_out => $timed_out, complete => 0, truncated => 1);
    my $head_end;
    # skip interim 1xx answers (100 Continue)
    while (1) {
        my $i = index($raw, "\r\n\r\n", $head_end // 0);
        return \%r if $i < 0;
        my $start = $head_end // 0;
        my ($code) = substr($raw, $start, 12) =~ m{^HTTP/\d\.\d (\d{3})};
        $head_end = $i + 4;
        if (($code // 0) >= 200 || ($code // 0) < 100) {
            $r{head} = substr($raw, $start, $i - $start);
            last;
        }
    }

    my ($status_line, @lines) = split /\r\n/, $r{head};
    ($r{status}) = $status_line =~ m{^HTTP/\d\.\d (\d{3})};
    $r{status} //= 0;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $r{headers}{$k} = exists $r{headers}{$k} ? "$r{headers}{$k}, $v" : $v;
    }

    my $body = substr($raw, $head_end);
    my $cl = $r{headers}{'content-length'};
    if ($method eq 'HEAD' || $r{status} == 204 || $r{status} == 304) {
        ($body, $r{complete}) = ('', 1);
    } elsif (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        ($body, $r{complete}) = _dechunk($body);
    } elsif (defined $cl && $cl =~ /^\d+$/) {
        $r{complete} = length($body) >= $cl;
        $body = substr($body, 0, $cl) if $r{complete};
    } else {
        $r{complete} = 0;   # until the server closes
        $r{truncated} = 0 unless $timed_out;
    }
    $r{truncated} = 0 if $r{complete};
    $r{body} = $body;
    $r{json} = json_decode($body) if length $body && !$partial;
    return \%r;
}


# Returns the decoded body so far and whether the last chunk was seen.
sub _dechunk {
    my $in = shift;
    my ($out, $pos) = ('', 0);
    while ((my $eol = index($in, "\r\n", $pos)) >= 0) {
        my ($hex) = substr($in, $pos, $eol - $pos) =~ /^([0-9a-fA-F]+)/
            or last;
        my $len = hex $hex;
        return ($out, 1) if $len == 0;
        last if length($in) < $eol + 2 + $len + 2;
        $out .= substr($in, $eol + 2, $len);
        $pos = $eol + 2 + $len + 2;
    }
    return ($out, 0);
}


# api(METHOD, PATH, BODY, HEADERS) through nginx, sidecar_api() straight
# to the sidecar, sidecar_internal_api() to its /internal/ listener. BODY: a reference is sent as JSON (with Content-Type),
# a string as is. HEADERS: hashref or arrayref of [name, value] pairs.
sub _call {
    my ($p, $method, $path, $body, $headers) = @_;
    my @h = ref $headers eq 'HASH'
          ? map { [$_, $headers->{$_}] } sort keys %$headers
          : ref $headers eq 'ARRAY' ? @$headers : ();
    if (ref $body) {
        $body = $JSON->encode($body);
        push @h, ['Content-Type', 'application/json']
            unless grep { lc $_->[0] eq 'content-type' } @h;
    }
    return http_request(port => $p, method => $method, uri => $path,
                        body => $body, headers => \@h);
}

sub api         { _call($port, @_) }
sub sidecar_api { _call($sidecar_port // $ENV{TEST_NGINX_SIDECAR_PORT}, @_) }
sub sidecar_internal_api { _call(sidecar_internal_port(), @_) }


# --- sections --------------------------------------------------------------

sub _has { exists $_[0]->{$_[1]} }

sub _is_eval {
    my ($block, $type) = @_;
    return ($block->_section_map->{$type}{filters} // '') =~ /\beval\b/;
}


# A section's value after its filters: Test::Base's (default norm and trim,
# then the section's own), except that "eval" runs the code in package
# main and dies on an error (Test::Base would return the error text as
# the value). Several values come back as an array ref.
sub _filtered {
    my ($block, $type) = @_;
    return undef unless _has($block, $type);
    my @value = $block->$type;
    my $spec = $block->_section_map->{$type}{filters};
    for my $f ($block->_get_filters($type, $spec)) {
        local $Test::Base::Filter::arguments =
            $f =~ s/=(.*)$// ? $1 : undef;
        no strict 'refs';
        if ($f eq 'eval') {
            @value = _eval_main(_code($block->name, "$type eval",
                                      join '', @value));
            die "--- $type eval: $@" if $@;
        } elsif (defined &{"main::$f"}) {
            local $_ = join '', @value;
            my @r = &{"main::$f"}(@value);
            # a filter returning a count munged $_ (Test::Base's rule)
            @value = (!@r || (@r == 1 && defined $r[0]
                              && $r[0] =~ /\A(\d+|)\z/)) ? ($_) : @r;
        } else {
            my $o = $block->blocks_object->filter_class->new;
            die "--- $type: no filter \"$f\"\n" unless $o->can($f);
            $o->current_block($block);
            @value = $o->$f(@value);
        }
    }
    return @value > 1 ? [@value] : $value[0];
}


# "3", "0.5", "10s"
sub _seconds { defined $_[0] && $_[0] =~ /^\s*(\d+(?:\.\d+)?)/ ? $1 : undef }


# The entry for request $i of a per-request section: an array gives one
# per request (an array of one entry applies to all).
sub _pick {
    my ($v, $i) = @_;
    return $v unless ref $v eq 'ARRAY';
    return @$v == 1 ? $v->[0] : $v->[$i];
}


sub _headers_of {
    my $v = shift;
    return [] unless defined $v;
    return [map { [$_, $v->{$_}] } sort keys %$v] if ref $v eq 'HASH';
    my @h;
    for my $line (split /\n/, _subst($v)) {
        next unless $line =~ /\S/;
        my ($k, $val) = $line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/
            or die "--- more_headers: bad line \"$line\"\n";
        push @h, [$k, $val];
    }
    return \@h;
}


# "METHOD /uri [HTTP/1.x]\nbody": one final newline of the body is
# dropped (an eval'd --- request_body is sent exactly as given).
sub _request_of {
    my ($text, $body, $exact) = @_;
    my ($first, $rest) = split /\n/, _subst($text), 2;
    my ($method, $uri, $ver) =
        ($first // '') =~ m{^\s*(\S+)\s+(\S+)(?:\s+HTTP/(\d\.\d))?\s*$}
        or die "bad request line \"" . ($first // '') . "\"\n";
    if (defined $body) {
        $body = _subst($body);
        $body =~ s/\n\z// unless $exact;
    } elsif (defined $rest) {
        $rest =~ s/\n\z//;
        $body = $rest if length $rest;
    }
    return ($method, $uri, $ver, $body);
}


# the sanitizer reports nginx wrote since the last call (TP_NGINX_PRELOAD)
my %sanitizer_seen;

sub _sanitizer_reports {
    my @new = grep { !$sanitizer_seen{$_}++ }
              glob("$work/logs/asan.* $work/logs/ubsan.*");
    return join '', map { "$_:\n" . _head($_, 40) } @new;
}


sub _log_since {
    my $off = shift;
    open my $fh, '<', "$work/logs/error.log" or return '';
    seek $fh, $off, 0;
    local $/;
    return <$fh> // '';
}


sub _check_log {
    my ($s, $label, $log) = @_;
    for my $sec (qw(error_log no_error_log)) {
        my $want = $s->{$sec};
        next unless defined $want;
        my @pats = ref $want eq 'ARRAY' ? @$want
                 : ref $want eq 'Regexp' ? ($want)
                 : grep { /\S/ } split /\n/, $want;
        for my $pat (@pats) {
            $pat = _subst($pat);
            my $hit = ref $pat ? $log =~ $pat : index($log, $pat) >= 0;
            if ($sec eq 'error_log') {
                Test::More::ok($hit, "$label - error_log has \"$pat\"");
            } else {
                Test::More::ok(!$hit, "$label - no_error_log \"$pat\"")
                    or Test::More::diag(join "\n", grep {
                        ref $pat ? /$pat/ : index($_, $pat) >= 0
                    } split /\n/, $log);
            }
        }
    }
    # a module bug shows as a worker killed by a signal, whatever the block
    # checks
    if (my @crash = $log =~ /^(.*exited on signal.*)$/mg) {
        Test::More::fail("$label - no nginx worker crashed");
        Test::More::diag(join "\n", @crash);
    }
}


sub _check_response {
    my ($s, $i, $l, $res, $timeout) = @_;

    Test::More::fail("$l - answered within ${timeout}s") if $res->{timed_out};

    my $code = _pick($s->{error_code}, $i);
    $code = 200 unless defined $s->{error_code};
    $code =~ s/^\s+|\s+$//g if defined $code;     # "--- error_code\n404\n"
    if (defined $code) {
        Test::More::is($res->{status}, $code, "$l - status code")
            or Test::More::diag("body: $res->{body}"
                                . ($res->{error} ? "\n$res->{error}" : ''));
    }

    my $body = _pick($s->{response_body}, $i);
    if (defined $body) {
        _is_string($res->{body}, _subst($body), "$l - response_body");
    }

    my $like = _pick($s->{response_body_like}, $i);
    if (defined $like) {
        my $re = ref $like eq 'Regexp' ? $like
               : do { my $t = _subst($like); $t =~ s/\n\z//; qr/$t/s };
        Test::More::like($res->{body}, $re, "$l - response_body_like");
    }

    my $rh = _pick($s->{response_headers}, $i);
    for my $line (grep { /\S/ } split /\n/, _subst($rh // '')) {
        if ($line =~ /^\s*!\s*(\S+)/) {
            Test::More::ok(!exists $res->{headers}{lc $1},
                           "$l - header $1 absent")
                or Test::More::diag("$1: $res->{headers}{lc $1}");
        } elsif ($line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/) {
            Test::More::is($res->{headers}{lc $1}, $2, "$l - header $1");
        }
    }

    my $rhl = _pick($s->{response_headers_like}, $i);
    for my $line (grep { /\S/ } split /\n/, _subst($rhl // '')) {
        my ($k, $v) = $line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/ or next;
        Test::More::like($res->{headers}{lc $k} // '', qr/$v/,
                         "$l - header $k like");
    }
}


# Test::LongString's is_string shows where long bodies differ.
my $has_longstring = eval { require Test::LongString; 1 };
sub _is_string {
    return &Test::LongString::is_string(@_) if $has_longstring;
    return &Test::More::is(@_);
}


# --- running blocks --------------------------------------------------------

# Code of a section, so that errors and warnings name the block.
sub _code {
    my ($label, $what, $code) = @_;
    $label =~ tr/"\n/' /;
    return qq{#line 1 "$label --- $what"\n$code};
}


sub _fail {
    my ($what, $why) = @_;
    Test::More::fail($what);
    Test::More::diag($why) if defined $why;
}


sub _run_block {
    my $block = shift;
    my $label = $block->name;

    my @unknown = grep { !$SECTIONS{$_} } @{ $block->_section_order };
    return _fail("$label - known sections", "unknown: @unknown") if @unknown;

    # 1. init, on the nginx still running from the block before (tests
    # rely on that to set up state through the previous block's config)
    if (defined(my $init = $block->init)) {
        _eval_main(_code($label, 'init', $init));
        return _fail("$label - init", $@) if $@;
    }

    # 2. nginx for this block's config (which init may have shaped)
    my $conf = eval { _nginx_conf($block) };
    return _fail("$label - config", $@) unless defined $conf;
    if (defined(my $err = _ensure_nginx($conf))) {
        return _fail("$label - nginx starts", $err);
    }

    # 3. the other sections, now that init ran and nginx is up
    my %s;
    for my $type (qw(request request_body more_headers error_code
                     response_body response_body_like response_headers
                     response_headers_like error_log no_error_log timeout
                     wait))
    {
        next unless _has($block, $type);
        $s{$type} = eval { _filtered($block, $type) };
        return _fail("$label - $type", $@) if $@;
    }
    $block->is_filtered(1);

    my @requests = ref $s{request} eq 'ARRAY' ? @{ $s{request} }
                 : defined $s{request} ? ($s{request}) : ();
    for my $type (@PER_REQUEST) {
        my $v = $s{$type};
        next unless ref $v eq 'ARRAY' && @$v > 1 && @$v != @requests;
        _fail("$label - $type has " . @$v . " entries for "
              . @requests . " requests");
    }
    my $timeout = _seconds($s{timeout}) // 10;
    my $exact_body = _is_eval($block, 'request_body');
    my $log_off = -s "$work/logs/error.log" || 0;
    my @all;

    # 4. the requests
    for my $i (0 .. $#requests) {
        my $l = @requests > 1 ? "$label - request $i" : $label;
        my ($method, $uri, $ver, $body, $headers) = eval {
            (_request_of($requests[$i], _pick($s{request_body}, $i),
                         $exact_body),
             _headers_of(_pick($s{more_headers}, $i)));
        };
        if ($@) {
            _fail("$l - request", $@);
            next;
        }
        my $res = http_request(method => $method, uri => $uri,
                               version => $ver, body => $body,
                               headers => $headers, timeout => $timeout);
        push @all, $res;
        _check_response(\%s, $i, $l, $res, $timeout);
    }

    # 5. wait, check, the log
    sleep(_seconds($s{wait})) if _seconds($s{wait});
    if (defined(my $check = $block->check)) {
        no warnings 'once';
        $main::res = $all[-1];
        @main::responses = @all;
        _eval_main(_code($label, 'check', $check));
        _fail("$label - check", $@) if $@;
    }

    # nginx writes its log synchronously; a tiny pause covers a worker
    # still in the log phase after the response went out
    sleep 0.05;
    _check_log(\%s, $label, _log_since($log_off));

    if ($PRELOAD) {
        my $reports = _sanitizer_reports();
        _fail("$label - no ASan/UBSan report from nginx", $reports)
            if length $reports;
    }

    if ($sidecar_pid && _reaped($sidecar_pid)) {
        _fail("$label - the sidecar is still running",
              "it exited with status $?:\n" . sidecar_log_tail(20));
        undef $sidecar_pid;
    }
}


sub run_tests {
    for my $block (Test::Base::blocks()) {
        _run_block($block);
    }
    _stop_nginx();
    if ($PRELOAD) {
        my $reports = _sanitizer_reports();
        _fail("no ASan/UBSan report from nginx at exit", $reports)
            if length $reports;
    }
    Test::More::done_testing();
}


END {
    if ($$ == $owner) {
        my $rc = $?;
        _stop_nginx();
        stop_sidecar();
        eval { pg_start() } if $pg_stopped_by_us;
        if ($db_name) {
            undef $dbh;
            my $admin = eval {
                DBI->connect(_pg_dbi('postgres'), $ENV{TP_PG_USER}, '',
                             { RaiseError => 1, PrintError => 0 });
            };
            eval {
                $admin->do(qq{DROP DATABASE IF EXISTS "$db_name" WITH (FORCE)})
            } if $admin;
        }
        remove_tree($own_tmp) if $own_tmp && !$ENV{TP_KEEP};
        $? = $rc;
    }
}

1;
