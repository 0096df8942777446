package Test::TruePort;
# The project's Test::Nginx-style harness (Test::Nginx itself is not
# installable here), on Test::Base:
#
#   use lib 't/lib';
#   use Test::TruePort;
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
# Sections: main_config, http_config, config, init (Perl run before the
# block; eval sections are evaluated after it), request (eval: one string
# or an array of them), request_body, more_headers, error_code,
# response_body, response_body_like, response_headers (Name: value, !Name
# for absent), response_headers_like, error_log, no_error_log, timeout,
# wait. "$TEST_NGINX_*" in config, requests and headers are replaced with
# the environment's values (SERVER_PORT, SIDECAR_PORT, MOCK_PORT, ROOT,
# WORK, HTML_DIR, INTERNAL_TOKEN, JWT_SECRET are set by the harness).
#
# Helpers for chained calls: api(), sidecar_api(), dbh(), pg_stop(),
# pg_start(), restart_sidecar(), stop_sidecar(), jwt() and more below.
use strict;
use warnings;

use Test::Base;
use Cwd qw(abs_path);
use DBI;
use Digest::SHA qw(hmac_sha256);
use File::Basename qw(basename dirname);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    run_tests use_sidecar workers server_port sidecar_port sidecar_pid
    restart_sidecar stop_sidecar start_sidecar db_dsn dbh pg_stop pg_start
    work_dir api sidecar_api http_request sidecar_log_tail error_log_tail
    jwt json_encode json_decode internal_token free_port wait_port
    nginx_reload
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
my $JWT_SECRET = 'trueport-test-jwt-secret-0123456789abcdef';
my $MASTER_KEY = '00112233445566778899aabbccddeeff' x 2;
my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

my $owner = $$;
my $name = basename($0, '.t') =~ s/[^\w]/_/gr;
my $work = ($ENV{TP_WORK} // do {
    require File::Temp;
    File::Temp::tempdir('trueport-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
}) . "/$name-$$";
make_path("$work/conf", "$work/logs", "$work/html", "$work/tmp",
          { mode => 0755 });
chmod 0755, $work;

my $port = free_port();
my $workers = 2;
my ($sidecar_pid, $sidecar_port, $sidecar_env, $db_name, $dbh);
my $internal_token = sprintf '%08x%08x', int(rand(2**32)), int(rand(2**32));
my ($nginx_conf_text, $nginx_running, $pg_stopped_by_us);

$ENV{TEST_NGINX_SERVER_PORT} = $port;
$ENV{TEST_NGINX_ROOT} = $ROOT;
$ENV{TEST_NGINX_WORK} = $work;
$ENV{TEST_NGINX_HTML_DIR} = "$work/html";
$ENV{TEST_NGINX_INTERNAL_TOKEN} = $internal_token;
$ENV{TEST_NGINX_JWT_SECRET} = $JWT_SECRET;
$ENV{TEST_NGINX_MOCK_PORT} //= free_port();
$ENV{TEST_NGINX_SIDECAR_PORT} = free_port();

Test::Base::filters_delay();


sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "harness: no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}


sub wait_port {
    my ($p, $secs) = @_;
    my $deadline = time + ($secs // 10);
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                      Timeout => 1);
        if ($s) { close $s; return 1 }
        sleep 0.05;
    }
    return 0;
}


sub workers        { $workers = shift }
sub server_port    { $port }
sub sidecar_port   { $sidecar_port }
sub sidecar_pid    { $sidecar_pid }
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


sub dbh {
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
            'no test Postgres: run through make test (scripts/test.sh)');
    }
    die "harness: $SIDECAR is not built (make sidecar)\n" unless -x $SIDECAR;

    $db_name = "tp_${name}_$$";
    my $admin = DBI->connect(_pg_dbi('postgres'), $ENV{TP_PG_USER}, '',
                             { RaiseError => 1, PrintError => 0 });
    $admin->do(qq{CREATE DATABASE "$db_name" TEMPLATE "$ENV{TP_PG_TEMPLATE}"});
    $admin->disconnect;

    $sidecar_port = $ENV{TEST_NGINX_SIDECAR_PORT};
    $sidecar_env = {
        TRUEPORT_LISTEN         => "127.0.0.1:$sidecar_port",
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


sub start_sidecar {
    my $log = "$work/logs/sidecar.log";
    my $pid = fork() // die "harness: fork: $!";
    if ($pid == 0) {
        POSIX::setsid();
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        @ENV{keys %$sidecar_env} = values %$sidecar_env;
        exec $SIDECAR, 'serve' or POSIX::_exit(127);
    }
    $sidecar_pid = $pid;
    if (!wait_port($sidecar_port, 10)) {
        my $tail = sidecar_log_tail(20);
        Test::More::BAIL_OUT("sidecar did not start:\n$tail");
    }
}


sub stop_sidecar {
    my $sig = shift // 'TERM';
    return unless $sidecar_pid;
    kill $sig, $sidecar_pid;
    my $deadline = time + 5;
    while (time < $deadline) {
        last if waitpid($sidecar_pid, POSIX::WNOHANG()) == $sidecar_pid;
        sleep 0.05;
    }
    if (kill 0, $sidecar_pid) {
        kill 'KILL', $sidecar_pid;
        waitpid($sidecar_pid, 0);
    }
    undef $sidecar_pid;
}


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

sub sidecar_log_tail { _tail("$work/logs/sidecar.log", shift // 30) }
sub error_log_tail   { _tail("$work/logs/error.log", shift // 30) }


sub _pg_ctl {
    my $what = shift;
    my @cmd = ("$ENV{TP_PG_BIN}/pg_ctl", '-D', $ENV{TP_PG_DATA}, '-w',
               '-t', '30', '-l', "$ENV{TP_PG_DATA}/../server.log",
               $what eq 'stop' ? ('-m', 'fast') : (), $what);
    unshift @cmd, 'runuser', '-u', 'postgres', '--' if $> == 0;
    # from /: the postgres user may not be able to enter our cwd
    system("cd / && @cmd >/dev/null 2>&1") == 0
        or die "harness: pg_ctl $what failed\n";
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


# HS256 JWT with the harness's secret (the sidecar checks these).
sub jwt {
    my ($claims, %o) = @_;
    my $b64 = sub { encode_base64(shift, '') =~ tr{+/}{-_}r =~ s/=+$//r };
    my $head = $b64->($JSON->encode({ alg => $o{alg} // 'HS256',
                                      typ => 'JWT' }));
    my $now = time;
    my %c = (iat => int($now), exp => int($now) + 3600, %$claims);
    my $body = $b64->($JSON->encode(\%c));
    return "$head.$body." if ($o{alg} // '') eq 'none';
    my $sig = $b64->(hmac_sha256("$head.$body", $o{secret} // $JWT_SECRET));
    return "$head.$body.$sig";
}


# --- nginx -----------------------------------------------------------------

sub _subst {
    my $s = shift;
    return $s unless defined $s;
    $s =~ s/\$(TEST_NGINX_\w+)/exists $ENV{$1} ? $ENV{$1} : "\$$1"/ge;
    return $s;
}


sub _nginx_conf {
    my $block = shift;
    my $load = -f $MODULE ? "load_module $MODULE;" : '';
    my $user = $> == 0 ? 'user root;' : '';
    my $sc = $sidecar_port // $ENV{TEST_NGINX_SIDECAR_PORT};
    my $main = _subst($block->main_config // '');
    my $http = _subst($block->http_config // '');
    my $config = _subst($block->config // '');

    return <<"CONF";
$load
$user
worker_processes $workers;
daemon on;
master_process on;
pid $work/logs/nginx.pid;
error_log $work/logs/error.log debug;
$main
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

$http

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

$config
    }
}
CONF
}


sub _nginx_pid {
    open my $fh, '<', "$work/logs/nginx.pid" or return;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}


sub _stop_nginx {
    return unless $nginx_running;
    my $pid = _nginx_pid();
    if ($pid && kill 'QUIT', $pid) {
        my $deadline = time + 5;
        sleep 0.02 while kill(0, $pid) && time < $deadline;
        kill 'KILL', $pid if kill 0, $pid;
    }
    unlink "$work/logs/nginx.pid";
    undef $nginx_running;
    undef $nginx_conf_text;
}


# (Re)starts nginx when the config changed; returns an error text or undef.
sub _ensure_nginx {
    my $text = shift;
    return undef if $nginx_running && $nginx_conf_text eq $text;

    _stop_nginx();
    open my $fh, '>', "$work/conf/nginx.conf" or die $!;
    print $fh $text;
    close $fh;

    my $out = `$NGINX -p $work/ -c $work/conf/nginx.conf -e $work/logs/error.log 2>&1`;
    if ($? != 0) {
        return "nginx failed to start: $out" . error_log_tail(10);
    }
    if (!wait_port($port, 10)) {
        return "nginx did not listen on $port:\n" . error_log_tail(10);
    }
    # the master is up; give the workers a moment to be ready
    sleep 0.05;
    $nginx_running = 1;
    $nginx_conf_text = $text;
    return undef;
}


sub nginx_reload {
    my $pid = _nginx_pid() or return;
    kill 'HUP', $pid;
    sleep 0.5;
}


# --- HTTP client -----------------------------------------------------------

# One request on a fresh connection. Returns {status, headers (lowercase
# names; repeated headers joined by ", "), body, raw, truncated}.
sub http_request {
    my (%a) = @_;
    my $p = $a{port} // $port;
    my $timeout = $a{timeout} // 10;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                     Timeout => $timeout)
        or return { status => 0, error => "connect: $!", headers => {},
                    body => '' };
    binmode $sock;

    my $req = "$a{method} $a{uri} HTTP/1.1\r\n";
    my $h = $a{headers} || [];
    my %have = map { lc($_->[0]) => 1 } @$h;
    $req .= "Host: localhost\r\n" unless $have{host};
    $req .= "Connection: close\r\n" unless $have{connection};
    if (defined $a{body} && !$have{'content-length'}
        && !$have{'transfer-encoding'})
    {
        $req .= "Content-Length: " . length($a{body}) . "\r\n";
    }
    $req .= "$_->[0]: $_->[1]\r\n" for @$h;
    $req .= "\r\n";
    $req .= $a{body} if defined $a{body};

    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($sock, $req, length($req) - $off, $off);
        last unless defined $n;     # the server may answer early (413)
        $off += $n;
    }

    my $raw = '';
    my $sel = IO::Select->new($sock);
    my $deadline = time + $timeout;
    my $timed_out = 0;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { $timed_out = 1; last }
        last unless $sel->can_read($left);
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }
    $timed_out = 1 if time >= $deadline;
    close $sock;

    return _parse_response($raw, $a{method}, $timed_out);
}


sub _parse_response {
    my ($raw, $method, $timed_out) = @_;
    my %r = (status => 0, headers => {}, body => '', raw => $raw,
             timed_out => $timed_out);
    my $i = index($raw, "\r\n\r\n");
    return \%r if $i < 0;

    my ($status_line, @lines) = split /\r\n/, substr($raw, 0, $i);
    ($r{status}) = $status_line =~ m{^HTTP/\d\.\d (\d{3})};
    $r{status} //= 0;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $r{headers}{$k} = exists $r{headers}{$k} ? "$r{headers}{$k}, $v" : $v;
    }

    my $body = substr($raw, $i + 4);
    if ($method eq 'HEAD') {
        $body = '';
    } elsif (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        $r{truncated} = 1;
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            if ($len == 0) { $r{truncated} = 0; last }
            last if length($body) < $len + 2;
            $out .= substr($body, 0, $len);
            substr($body, 0, $len + 2) = '';
        }
        $body = $out;
    } elsif (defined $r{headers}{'content-length'}) {
        $r{truncated} = length($body) < $r{headers}{'content-length'} ? 1 : 0;
    }
    $r{body} = $body;
    $r{json} = json_decode($body) if length $body;
    return \%r;
}


# api(METHOD, PATH, BODY, HEADERS): through nginx. BODY: a reference is
# sent as JSON, a string as is. HEADERS: hashref or arrayref of pairs.
sub _call {
    my ($p, $method, $path, $body, $headers) = @_;
    my @h = ref $headers eq 'HASH' ? map { [$_, $headers->{$_}] } sort keys %$headers
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
sub sidecar_api { _call($sidecar_port, @_) }


# --- running blocks --------------------------------------------------------

sub _list {
    my $v = shift;
    return ref $v eq 'ARRAY' ? @$v : ($v);
}


sub _headers_of {
    my $text = _subst(shift // '');
    my @h;
    for my $line (split /\n/, $text) {
        next unless $line =~ /\S/;
        my ($k, $v) = $line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/ or next;
        push @h, [$k, $v];
    }
    return \@h;
}


sub _request_of {
    my ($text, $body_override) = @_;
    $text = _subst($text);
    my ($first, $rest) = split /\n/, $text, 2;
    my ($method, $uri) = $first =~ /^\s*(\S+)\s+(\S+)/
        or die "harness: bad request line \"$first\"\n";
    my $body = $body_override // $rest;
    if (defined $body) {
        $body =~ s/\n\z//;
        $body = _subst($body);
        undef $body if $body eq '' && !defined $body_override;
    }
    return ($method, $uri, $body);
}


sub _log_since {
    my $off = shift;
    open my $fh, '<', "$work/logs/error.log" or return '';
    seek $fh, $off, 0;
    local $/;
    return <$fh> // '';
}


sub _check_log {
    my ($block, $label, $log) = @_;
    for my $sec (qw(error_log no_error_log)) {
        my $want = $block->$sec;
        next unless defined $want;
        my @pats = ref $want eq 'ARRAY' ? @$want
                 : ref $want eq 'Regexp' ? ($want)
                 : grep { /\S/ } split /\n/, $want;
        for my $pat (@pats) {
            my $hit = ref $pat eq 'Regexp' ? $log =~ $pat
                                           : index($log, $pat) >= 0;
            if ($sec eq 'error_log') {
                Test::More::ok($hit, "$label - error_log has \"$pat\"");
            } else {
                Test::More::ok(!$hit, "$label - no_error_log \"$pat\"")
                    or Test::More::diag(join "\n",
                        grep { ref $pat ? /$pat/ : index($_, $pat) >= 0 }
                        split /\n/, $log);
            }
        }
    }
}


sub _run_block {
    my $block = shift;
    my $label = $block->name;

    if (defined(my $init = $block->init)) {
        package main;
        eval $init;
        die "harness: --- init of \"$label\" failed: $@" if $@;
    }

    $block->run_filters unless $block->is_filtered;

    my $err = _ensure_nginx(_nginx_conf($block));
    if ($err) {
        Test::More::fail("$label - nginx starts");
        Test::More::diag($err);
        return;
    }

    my $log_off = -s "$work/logs/error.log" // 0;
    my @requests = _list($block->request);
    my @codes = defined $block->error_code ? _list($block->error_code) : ();
    my @bodies = defined $block->response_body
               ? _list($block->response_body) : ();
    my @likes = defined $block->response_body_like
              ? _list($block->response_body_like) : ();
    my $headers = _headers_of($block->more_headers);
    my $timeout = $block->timeout // 10;

    for my $i (0 .. $#requests) {
        my ($method, $uri, $body) =
            _request_of($requests[$i], $block->request_body);
        my $l = @requests > 1 ? "$label - request $i" : $label;
        my $t0 = time;
        my $res = http_request(method => $method, uri => $uri,
                               body => $body, headers => $headers,
                               timeout => $timeout);

        if ($res->{timed_out}) {
            Test::More::fail("$l - answered within ${timeout}s");
        }

        my $want = @codes > 1 ? $codes[$i] : $codes[0];
        $want //= 200 unless @codes;
        Test::More::is($res->{status}, $want, "$l - status code")
            or Test::More::diag("body: $res->{body}");

        if (@bodies) {
            my $wb = @bodies > 1 ? $bodies[$i] : $bodies[0];
            $wb = _subst($wb);
            Test::More::is($res->{body}, $wb, "$l - response_body");
        }
        if (@likes) {
            my $wl = @likes > 1 ? $likes[$i] : $likes[0];
            if (defined $wl) {
                my $re = ref $wl eq 'Regexp' ? $wl : do {
                    my $t = _subst($wl);
                    $t =~ s/\n\z//;
                    qr/$t/s;
                };
                Test::More::like($res->{body}, $re,
                                 "$l - response_body_like");
            }
        }
        if (defined(my $rh = $block->response_headers)) {
            for my $line (grep { /\S/ } split /\n/, _subst($rh)) {
                if ($line =~ /^\s*!\s*(\S+)/) {
                    Test::More::ok(!exists $res->{headers}{lc $1},
                                   "$l - header $1 absent");
                } elsif ($line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/) {
                    Test::More::is($res->{headers}{lc $1}, $2,
                                   "$l - header $1");
                }
            }
        }
        if (defined(my $rh = $block->response_headers_like)) {
            for my $line (grep { /\S/ } split /\n/, _subst($rh)) {
                my ($k, $v) = $line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/
                    or next;
                Test::More::like($res->{headers}{lc $k} // '', qr/$v/,
                                 "$l - header $k like");
            }
        }
    }

    sleep($block->wait) if $block->wait;
    # nginx writes its log synchronously; a tiny pause covers the worker
    # finishing the log phase after the response went out
    sleep 0.05;
    _check_log($block, $label, _log_since($log_off));
}


sub run_tests {
    for my $block (Test::Base::blocks()) {
        _run_block($block);
    }
    Test::More::done_testing();
}


END {
    return unless $$ == $owner;
    my $rc = $?;
    _stop_nginx();
    stop_sidecar();
    pg_start() if $pg_stopped_by_us;
    if ($db_name) {
        undef $dbh;
        my $admin = eval {
            DBI->connect(_pg_dbi('postgres'), $ENV{TP_PG_USER}, '',
                         { RaiseError => 1, PrintError => 0 });
        };
        eval { $admin->do(qq{DROP DATABASE IF EXISTS "$db_name" WITH (FORCE)}) }
            if $admin;
    }
    $? = $rc;
}

1;
