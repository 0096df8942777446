package Test::TruePort::Mock;
# The mock provider (t/mock/provider.js) for test files: one node process
# per test file, started on demand, stopped when the file ends.
#
#   use Test::TruePort::Mock;
#   my $port = start_mock();        # also sets $ENV{TEST_NGINX_MOCK_PORT}
#   ... requests through nginx to http://127.0.0.1:$port ...
#   my @reqs = mock_requests();     # [{method, path, query, headers, body, ts}]
#   mock_clear();
#
# $TEST_NGINX_MOCK_PORT, when set before start_mock(), picks the port;
# otherwise the mock takes a free one and reports it.
use strict;
use warnings;

use Exporter 'import';
use HTTP::Tiny;
use IO::Select;
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

our @EXPORT = qw(start_mock stop_mock mock_port mock_url mock_requests
                 mock_clear);

my ($pid, $port, $out);
my $owner = $$;
my $http = HTTP::Tiny->new(timeout => 10);
my $json = JSON::PP->new->utf8;


sub start_mock {
    return $port if $pid;

    my $root = $ENV{TP_ROOT} || '.';
    my $want = $ENV{TEST_NGINX_MOCK_PORT} || 0;
    my $log  = $ENV{TP_WORK} ? "$ENV{TP_WORK}/mock-$owner.log" : undef;

    pipe($out, my $w) or die "mock: pipe: $!";
    $pid = fork() // die "mock: fork: $!";
    if ($pid == 0) {
        close $out;
        open STDOUT, '>&', $w or POSIX::_exit(127);
        if ($log) {
            open STDERR, '>>', $log or POSIX::_exit(127);
        }
        { exec 'node', "$root/t/mock/provider.js", '--port', $want; }
        POSIX::_exit(127);
    }
    close $w;

    # "listening N" within 10 s, or the process died
    my $sel = IO::Select->new($out);
    my $deadline = Time::HiRes::time() + 10;
    my $line = '';
    while (Time::HiRes::time() < $deadline && $line !~ /\n/) {
        next unless $sel->can_read(0.1);
        my $n = sysread($out, my $buf, 256);
        last unless $n;
        $line .= $buf;
    }
    if ($line !~ /^listening (\d+)$/m) {
        stop_mock();
        die "mock: node did not start (" . ($line || 'no output')
            . ($log ? ", see $log" : '') . ")\n";
    }
    $port = $1;
    $ENV{TEST_NGINX_MOCK_PORT} = $port;
    return $port;
}


sub stop_mock {
    return unless $pid && $$ == $owner;
    kill 'TERM', $pid;
    waitpid($pid, 0);
    close $out if $out;
    ($pid, $port, $out) = ();
}


sub mock_port { $port }

sub mock_url { 'http://127.0.0.1:' . (start_mock()) }


# Every request the mock received since the last clear, oldest first.
sub mock_requests {
    my $res = $http->get(mock_url() . '/__mock/requests');
    die "mock: GET /__mock/requests: $res->{status} $res->{content}\n"
        unless $res->{success};
    return @{ $json->decode($res->{content}) };
}


sub mock_clear {
    my $res = $http->delete(mock_url() . '/__mock/requests');
    die "mock: DELETE /__mock/requests: $res->{status}\n"
        unless $res->{status} == 204;
    return;
}


END {
    my $rc = $?;
    stop_mock();
    $? = $rc;
}

1;
