# Supervision (issue 12, finding 2): the stack as `make run` starts it
# (scripts/stack.sh, on this file's database and free ports) keeps nginx
# serving cached keys when the sidecar is killed, restarts the sidecar with
# back-off (0.5 s, doubling; reset after a stable run) and logs it; Ctrl-C
# and `make stop` stop everything, and nginx exiting stops the stack.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use File::Path qw(make_path);
use POSIX ();
use Time::HiRes qw(sleep time);

use_sidecar();      # the database (the harness's own sidecar is not used)
my $mock = '127.0.0.1:' . start_mock();
my $T = gw_tenant();
my %K = map { $_ => gw_key($T) } qw(cached fresh later);
my $MODELS = '/trueportai-services/openai/v1/models';
my $ROOT = $ENV{TP_ROOT} // '.';
my @stacks;

sub alive {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    return (<$fh> // '') !~ /^\d+ \(.*\) Z/;
}

sub slurp {
    open my $fh, '<', shift or return undef;
    local $/;
    my $s = <$fh>;
    return defined $s ? $s =~ s/\n\z//r : undef;
}

# polls $cond every 0.1 s for up to $secs (a liveness wait, not a timing);
# $cond returns true, false, or -1 to give up
sub eventually {
    my ($secs, $cond) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $v = $cond->();
        return $v > 0 ? 1 : 0 if $v;    # -1: give up
        sleep 0.1;
    }
    my $v = $cond->();
    return $v && $v > 0 ? 1 : 0;
}

sub cmdline {
    my $c = slurp('/proc/' . (shift // 0) . '/cmdline') // '';
    return $c =~ tr/\0/ /r;
}

# scripts/stack.sh run in a folder of its own; {pid} is stack.sh's (in the
# foreground) and {out} what it printed
sub stack_start {
    my ($name, %env) = @_;
    my $dir = work_dir() . "/stack-$name";
    make_path($dir);
    my $s = { name => $name, dir => $dir, http => free_port(),
              sidecar => free_port(), out => "$dir/stack.out" };
    $s->{env} = {
        TRUEPORT_RUN_DIR => $dir,
        TRUEPORT_HTTP_LISTEN => "127.0.0.1:$s->{http}",
        TRUEPORT_SIDECAR_ADDR => "127.0.0.1:$s->{sidecar}",
        TRUEPORT_DATABASE_URL => db_dsn(),
        TRUEPORT_OPENAI_UPSTREAM => "http://$mock/v1",
        TRUEPORT_ANTHROPIC_UPSTREAM => "http://$mock/v1",
        TRUEPORT_GOOGLE_UPSTREAM => "http://$mock/v1beta",
        TRUEPORT_AZURE_UPSTREAM => "http://$mock",
        TRUEPORT_OPENAI_API_KEY => 'sk-route-openai',
        TRUEPORT_RESOLVER => '127.0.0.1',
        NGINX_BIN => $ENV{TP_NGINX} // '/usr/sbin/nginx',
        %env,
    };
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        POSIX::setsid();    # a Ctrl-C in the terminal is for prove
        open STDOUT, '>>', $s->{out} or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        @ENV{keys %{ $s->{env} }} = values %{ $s->{env} };
        { exec "$ROOT/scripts/stack.sh", 'run' }
        POSIX::_exit(127);
    }
    $s->{pid} = $pid;
    push @stacks, $s;
    # "running" (or "detached") printed and the port open; a foreground
    # stack.sh that exited will not get there
    my $up = eventually(60, sub {
        if (!$s->{reaped} && waitpid($pid, POSIX::WNOHANG()) == $pid) {
            @$s{qw(status reaped)} = ($?, 1);
        }
        return -1 if $s->{reaped} && !$env{TRUEPORT_DETACH};
        return (slurp($s->{out}) // '') =~ /^trueport: (running|detached)/m
               && wait_port($s->{http}, 1);
    });
    ok($up, "$name: stack.sh started the stack")
        or diag(slurp($s->{out}) // '', "\n", sidecar_log($s));
    return $s;
}

sub pids {
    my $s = shift;
    return (sup => slurp("$s->{dir}/supervisor.pid"),
            sidecar => slurp("$s->{dir}/sidecar.pid"),
            nginx => slurp("$s->{dir}/nginx/nginx.pid"));
}

sub sidecar_log { slurp("$_[0]{dir}/logs/sidecar.log") // '' }

sub gw {
    my ($s, $key) = @_;
    return http_request(port => $s->{http}, method => 'GET', uri => $MODELS,
                        headers => [['x-api-key', $key]]);
}

sub health_ok {
    my $s = shift;
    return http_request(port => $s->{sidecar}, method => 'GET',
                        uri => '/health', timeout => 2)->{status} == 200;
}

# waits for stack.sh (our child) to exit; its status, or undef
sub stack_exit {
    my ($s, $secs) = @_;
    return $s->{status} if $s->{reaped};
    eventually($secs, sub { waitpid($s->{pid}, POSIX::WNOHANG()) == $s->{pid}
                            && ($s->{status} = $?, $s->{reaped} = 1) });
    return $s->{reaped} ? $s->{status} : undef;
}

# a sidecar restarted after $old, answering /health; its pid or undef
sub next_sidecar {
    my ($s, $old) = @_;
    my $new;
    eventually(15, sub {
        $new = slurp("$s->{dir}/sidecar.pid");
        return $new && $new ne $old && alive($new) && health_ok($s);
    }) or return undef;
    return $new;
}

sub all_gone {
    my ($s, %p) = @_;
    ok(eventually(15, sub { !grep { alive($_) } values %p }),
       "$s->{name}: nginx, the supervisor and the sidecar are gone")
        or diag(join ' ', map { "$_=" . ($p{$_} // '-') . (alive($p{$_}) ? '(alive)' : '') } sort keys %p);
    ok(!-e "$s->{dir}/supervisor.pid" && !-e "$s->{dir}/sidecar.pid",
       "$s->{name}: the pid files are removed");
}

END {
    # whatever a failure left running
    for my $s (@stacks) {
        local %ENV = (%ENV, %{ $s->{env} });
        system("$ROOT/scripts/stack.sh stop >/dev/null 2>&1");
    }
}


# -- a killed sidecar: nginx serves on, the supervisor restarts it ---------

my $sa = stack_start('a');
my %p = pids($sa);
like(cmdline($p{sidecar}), qr/trueport-sidecar serve/, 'a: the sidecar runs');
ok(alive($p{sup}) && alive($p{nginx}), 'a: so do its supervisor and nginx');

my $r = gw($sa, $K{cached}{key});
is($r->{status}, 200, 'a: a gateway call through the mock') or diag $r->{body};
like($r->{body}, qr/"object":"list"/, '... answered by the mock');
is(gw($sa, $K{cached}{key})->{status}, 200, '... and again, from the cache');

# the supervisor held still, so that the sidecar stays down while we look
kill 'STOP', $p{sup} if $p{sup};
kill 'KILL', $p{sidecar};
ok(eventually(5, sub { !wait_port($sa->{sidecar}, 0.1) }),
   'a: the sidecar, killed with SIGKILL, is down');
$r = gw($sa, $K{cached}{key});
is($r->{status}, 200, 'a: the cached key still gets 200 through nginx')
    or diag $r->{body};
$r = gw($sa, $K{fresh}{key});
is($r->{status}, 503, 'a: a key nginx has not seen gets 503 meanwhile');
ok(alive($p{nginx}), 'a: nginx is still running');
ok(!$sa->{reaped} && waitpid($sa->{pid}, POSIX::WNOHANG()) == 0,
   'a: stack.sh is still running');
kill 'CONT', $p{sup} if $p{sup};

my $second = next_sidecar($sa, $p{sidecar});
ok($second, 'a: a new sidecar (another pid) answers /health within seconds')
    or diag sidecar_log($sa);
like(cmdline($second), qr/trueport-sidecar serve/, '... and it is the sidecar');
my $log = sidecar_log($sa);
like($log, qr/level=error msg="supervisor: exited, restarting" cmd=trueport-sidecar pid=$p{sidecar} signal=KILL ran=\d+s restart_in=0\.5s/,
     'a: the log says the sidecar was killed and is restarted in 0.5 s');
like($log, qr/msg="supervisor: started" cmd=trueport-sidecar pid=$second\b/,
     '... and that it started again, with the new pid');
is(slurp("$sa->{dir}/nginx/nginx.pid"), $p{nginx}, 'a: the same nginx serves');
is(gw($sa, $K{cached}{key})->{status}, 200, 'a: the cached key: 200');
$r = gw($sa, $K{fresh}{key});
is($r->{status}, 200, 'a: a new key resolves again') or diag $r->{body};

# killed again soon: the back-off doubles
kill 'KILL', $second if $second;
my $third = next_sidecar($sa, $second);
ok($third, 'a: killed again, a third sidecar answers /health')
    or diag sidecar_log($sa);
like(sidecar_log($sa), qr/pid=$second signal=KILL ran=\d+s restart_in=1s/,
     '... restarted after 1 s: the back-off doubled');

# Ctrl-C stops everything, in order, with status 0
%p = (pids($sa), sidecar => $third);
kill 'INT', $sa->{pid};
is(stack_exit($sa, 30), 0, 'a: Ctrl-C: stack.sh exits with status 0');
all_gone($sa, %p);
like(sidecar_log($sa), qr/msg="supervisor: stopped" cmd=trueport-sidecar/,
     'a: the supervisor logged its stop');
unlike(sidecar_log($sa), qr/pid=$third signal=/, '... and no crash for it');
ok(!wait_port($sa->{http}, 0.1), 'a: nothing listens on the gateway port');


# -- detached: make stop stops everything ------------------------------------

my $sb = stack_start('b', TRUEPORT_DETACH => 1);
is(stack_exit($sb, 30), 0, 'b: detached: stack.sh returns with status 0');
%p = pids($sb);
ok(alive($p{sup}) && alive($p{sidecar}) && alive($p{nginx}),
   'b: the stack runs on without it');
is(gw($sb, $K{later}{key})->{status}, 200, 'b: a gateway call');
{
    local %ENV = (%ENV, %{ $sb->{env} });
    my $out = `$ROOT/scripts/stack.sh stop 2>&1`;
    is($?, 0, 'b: stack.sh stop exits with status 0') or diag $out;
}
all_gone($sb, %p);


# -- a stable run resets the back-off; nginx exiting stops the stack --------

my $sc = stack_start('c', TRUEPORT_SUPERVISE_STABLE => 1);
%p = pids($sc);
ok(eventually(10, sub { health_ok($sc) }), 'c: the sidecar answers');
sleep 2.1;      # longer than TRUEPORT_SUPERVISE_STABLE
kill 'KILL', $p{sidecar};
$second = next_sidecar($sc, $p{sidecar});
ok($second, 'c: restarted');
ok(eventually(10, sub { health_ok($sc) }), '... and answering');
sleep 2.1;
kill 'KILL', $second if $second;
$third = next_sidecar($sc, $second);
ok($third, 'c: restarted again');
like(sidecar_log($sc), qr/pid=$second signal=KILL ran=[2-9]s restart_in=0\.5s/,
     'c: after a stable run the back-off starts again at 0.5 s')
    or diag sidecar_log($sc);

%p = (pids($sc), sidecar => $third);
kill 'TERM', $p{nginx};     # nginx's fast shutdown: the master exits
my $st = stack_exit($sc, 30);
ok(defined $st && $st != 0, 'c: nginx gone: stack.sh exits with an error')
    or diag slurp($sc->{out});
like(slurp($sc->{out}), qr/^trueport: nginx exited/m, '... and says why');
all_gone($sc, %p);

done_testing();
