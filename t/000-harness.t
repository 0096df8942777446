# Self-tests of the harness (t/lib/Test/TruePort.pm) against a real nginx
# with plain locations: every section, the config kept across blocks and
# restarted when it changes, init before eval sections, the error log cut
# to the block. Failure detection is checked by running small test files
# in a child perl and reading their TAP; scripts/prove-summary.pl the same
# way. The sidecar part runs only with the test Postgres (make test).
use lib 't/lib';
use Test::TruePort;
use Cwd qw(getcwd);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

our $W = work_dir();
my $n = 0;


# Runs perl code as a test file of its own; returns (exit status, output).
sub child {
    my ($code, %env) = @_;
    my $file = "$W/child-" . ++$n . ".t";
    open my $fh, '>', $file or die $!;
    print $fh $code;
    close $fh;
    local @ENV{keys %env} = values %env;
    delete $ENV{$_} for grep { !defined $env{$_} } keys %env;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec $^X, '-Ilib', '-It/lib', $file;
        exit 127;
    }
    local $/;
    my $text = <$out>;
    close $out;
    return ($? >> 8, $text);
}


# A process that has not exited (a zombie waiting for init has).
sub alive {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    return (<$fh> // '') !~ /^\d+ \(.*\) Z/;
}


# --- the client on its own ------------------------------------------------

{
    # a listener that never answers: the request must give up in time
    my $l = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1) or die $!;
    my $t0 = time;
    my $r = http_request(port => $l->sockport, method => 'GET', uri => '/',
                         timeout => 1);
    my $took = time - $t0;
    ok($r->{timed_out}, 'client: a silent server times out');
    ok($took >= 0.9 && $took < 3, "client: ... after the timeout ($took s)");
    is($r->{status}, 0, 'client: ... with status 0');

    my $closed = free_port();
    $r = http_request(port => $closed, method => 'GET', uri => '/');
    like($r->{error}, qr/^connect:/, 'client: a closed port is an error');
}


# --- failures are reported, and the file goes on ------------------------

my ($rc, $tap) = child(<<'T');
use lib 't/lib';
use Test::TruePort;
run_tests();
__DATA__
=== TEST 1: wrong body
--- config
    location = /t { return 200 "right"; }
--- request
GET /t
--- response_body: wrong
=== TEST 2: unknown section
--- config
    location = /t { return 200 "right"; }
--- request
GET /t
--- response_bdy: right
=== TEST 3: bad config
--- config
    location = /t { no_such_directive on; }
--- request
GET /t
=== TEST 4: init dies
--- config
    location = /t { return 200 "right"; }
--- init
die "init broke\n";
--- request
GET /t
=== TEST 5: eval dies
--- config
    location = /t { return 200 "right"; }
--- request
GET /t
--- response_body_like eval
die "eval broke\n";
=== TEST 6: counts differ, code differs
--- config
    location = /t { return 200 "right"; }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 200, 200]
=== TEST 7: status and headers
--- config
    location = /t { add_header X-A 1; return 200 "right"; }
--- request
GET /t
--- error_code: 201
--- response_headers
X-A: 2
!X-A
--- response_headers_like
X-A: ^\d{2}$
=== TEST 8: log checks
--- config
    location / { root $TEST_NGINX_HTML_DIR; }
--- request
GET /nothing-here
--- error_code: 404
--- error_log
this line is not there
--- no_error_log
[error]
=== TEST 9: a worker crash
--- config
    location = /t { return 200 "right"; }
--- request
GET /t
--- check
open my $fh, '<', work_dir() . '/logs/nginx.pid' or die;
chomp(my $master = <$fh>);
my ($w) = grep { ((`cat /proc/$_/stat 2>/dev/null` =~ /^\d+ \(nginx\) \S+ (\d+)/)[0] // 0)
                 == $master } map { m{/proc/(\d+)$} } glob '/proc/[0-9]*';
kill 'SEGV', $w;
sleep 0.5;
=== TEST 10: check dies
--- config
    location = /t { return 200 "right"; }
--- request
GET /t
--- check
die "check broke\n";
=== TEST 11: a good block after all that
--- config
    location = /t { return 200 "right"; }
--- request
GET /t
--- response_body: right
T

isnt($rc, 0, 'failures: the child exits non-zero');
my %want_fail = (
    'TEST 1: wrong body - response_body' => '',
    'TEST 2: unknown section - known sections' => 'unknown: response_bdy',
    'TEST 3: bad config - nginx starts' => 'unknown directive "no_such_directive"',
    'TEST 4: init dies - init' => 'init broke',
    'TEST 5: eval dies - response_body_like' => 'eval broke',
    'TEST 6: counts differ, code differs - error_code has 3 entries for 2 requests' => '',
    'TEST 7: status and headers - status code' => "got: '200'",
    'TEST 7: status and headers - header X-A' => "expected: '2'",
    'TEST 7: status and headers - header X-A absent' => '',
    'TEST 7: status and headers - header X-A like' => '',
    'TEST 8: log checks - error_log has "this line is not there"' => '',
    'TEST 8: log checks - no_error_log "[error]"' => 'No such file or directory',
    'TEST 9: a worker crash - no nginx worker crashed' => 'exited on signal 11',
    'TEST 10: check dies - check' => 'check broke',
);
for my $name (sort keys %want_fail) {
    # (under prove, Test::More puts an empty line before a failure's diag)
    my $re = qr/^not ok \d+ - \Q$name\E\n((?:#.*\n|\n)*)/m;
    like($tap, $re, "failures: \"$name\" fails");
    my ($diag) = $tap =~ $re;
    like($diag // '', qr/\Q$want_fail{$name}\E/, '... explaining why')
        if length $want_fail{$name};
}
like($tap, qr/^ok \d+ - TEST 8: log checks - status code$/m,
     'failures: what holds still passes');
like($tap, qr/^ok \d+ - TEST 11: a good block after all that - response_body$/m,
     'failures: the blocks after them still run');
like($tap, qr/^1\.\.\d+$/m, 'failures: the child printed its plan');
my $failures = () = $tap =~ /^not ok/mg;
is($failures, scalar keys %want_fail, 'failures: no others')
    or diag($tap);


# --- use_sidecar -------------------------------------------------------------

($rc, $tap) = child(<<'T', TP_PG_HOST => undef);
use lib 't/lib';
use Test::TruePort;
use_sidecar();
ok(0, 'not reached');
T
is($rc, 0, 'sidecar: no test Postgres, the file is skipped');
like($tap, qr/^1\.\.0 # SKIP .*TP_PG_HOST/m, '... with a reason');

SKIP: {
    skip 'no test Postgres (make test runs this)', 11 unless $ENV{TP_PG_HOST};

    ($rc, $tap) = child(<<'T');
use lib 't/lib';
use Test::TruePort;
use_sidecar(env => { TRUEPORT_LOG_LEVEL => 'info' });
my ($db) = dbh()->selectrow_array('SELECT current_database()');
print "# db=$db\n";
like(db_dsn(), qr/dbname=\Q$db\E$/, 'db_dsn names the database');
my $r = sidecar_api(GET => '/health');
is($r->{status}, 200, 'the sidecar answers');
is($r->{json}{database}, 'ok', '... with its database');
my $pid = sidecar_pid();
restart_sidecar();
isnt(sidecar_pid(), $pid, 'restart_sidecar: a new process');
print "# sidecar=", sidecar_pid(), "\n";
run_tests();
__DATA__
=== TEST 1: through nginx to the sidecar
--- config
    location = /health { proxy_pass http://trueport_sidecar; }
--- request
GET /health
--- response_body_like: "database":"ok"
--- check
print "# nginx=", `cat $ENV{TEST_NGINX_WORK}/logs/nginx.pid`;
=== TEST 2: the sidecar dies
--- config
    location = /health { proxy_pass http://trueport_sidecar; }
--- request
GET /health
--- check
kill 'KILL', sidecar_pid();
sleep 0.2;
T
    my ($db) = $tap =~ /^# db=(\S+)/m;
    my ($sc) = $tap =~ /^# sidecar=(\d+)/m;
    my ($ngx) = $tap =~ /^# nginx=(\d+)/m;
    like($db // '', qr/^tp_child_\d+_\d+$/, 'sidecar: a database of its own')
        or diag($tap);
    for my $t ('db_dsn names the database', 'the sidecar answers',
               '... with its database', 'restart_sidecar: a new process',
               'TEST 1: through nginx to the sidecar - response_body_like')
    {
        like($tap, qr/^ok \d+ - \Q$t\E$/m, "sidecar: $t");
    }
    like($tap, qr/^not ok \d+ - TEST 2: the sidecar dies - the sidecar is still running\n(?:#.*\n|\n)*?# it exited/m,
         'sidecar: its death is a failure of the block');
    isnt($rc, 0, '... and of the file');
    ok($sc && !alive($sc), 'sidecar: gone after the file');
    ok($ngx && !alive($ngx), 'nginx: gone after the file');
    my $h = DBI->connect("dbi:Pg:host=$ENV{TP_PG_HOST};port=$ENV{TP_PG_PORT};dbname=postgres",
                         $ENV{TP_PG_USER}, '', { RaiseError => 1 });
    my ($left) = $h->selectrow_array(
        'SELECT count(*) FROM pg_database WHERE datname = ?', undef, $db);
    is($left, 0, 'sidecar: the database is dropped after the file');
}


# --- scripts/prove-summary.pl --------------------------------------------

{
    my $d = "$W/summary";
    mkdir $d;
    mkdir "$d/sub";
    my %f = (
        'a.t'     => "use Test::More; ok(1) for 1..3; done_testing;",
        'sub/b.t' => "use Test::More tests => 2; ok(1); ok(0);",
        'c.t'     => "use Test::More; ok(1); die 'boom';",
        'd.t'     => "use Test::More tests => 3; ok(1); ok(1);",
        'e.t'     => "use Test::More; plan skip_all => 'nothing';",
        'y.t'     => "use Test::More; ok(1); BAIL_OUT('stop');",
        'z.t'     => "use Test::More; ok(1); done_testing;",
        'x.txt'   => "not a test",
    );
    for my $f (keys %f) {
        open my $fh, '>', "$d/$f" or die $!;
        print $fh "$f{$f}\n";
        close $fh;
    }
    my $out = `$^X scripts/prove-summary.pl $d 2>&1`;
    my $status = $? >> 8;
    # sorted: a 3/0, c 1/1 (died), d 2/1 (plan), e skipped, sub/b 1/1,
    # y 1/1 (bail-out), z not run: 0/1
    my @lines = split /\n/, $out;
    is($lines[-1], '8 passed, 5 failed', 'summary: the last line counts')
        or diag($out);
    is($status, 1, 'summary: exits non-zero on failures');
    like($out, qr{a\.t \.+ ok}, 'summary: prove-like lines per file');
    like($out, qr{z\.t \.+ not run}, 'summary: files a bail-out skipped');
    unlike($out, qr{x\.txt}, 'summary: only *.t files');

    $out = `$^X scripts/prove-summary.pl $d/a.t $d/e.t 2>&1`;
    is((split /\n/, $out)[-1], '3 passed, 0 failed', 'summary: all good');
    is($? >> 8, 0, 'summary: exit 0');
}


# --- blocks through nginx -------------------------------------------------

run_tests();

__DATA__

=== TEST 1: exact body, default status 200, response headers
--- config
    location = /t {
        add_header X-A "one";
        return 200 "hello";
    }
--- request
GET /t
--- response_body: hello
--- response_headers
X-A: one
Content-Length: 5
!X-Missing
--- response_headers_like
Content-Type: ^text/plain$
--- no_error_log
[error]



=== TEST 2: the same config: nginx keeps running
--- config
    location = /t {
        add_header X-A "one";
        return 200 "hello";
    }
--- init
open my $fh, '<', "$::W/logs/nginx.pid" or die $!;
chomp($::pid1 = <$fh>);
--- request
GET /t
--- response_body_like: ^hel+o$
--- check
open my $fh, '<', "$::W/logs/nginx.pid" or die $!;
chomp(my $pid = <$fh>);
is($pid, $::pid1, 'TEST 2 - the same nginx master');



=== TEST 3: another config: nginx restarted, multi-line exact body
--- config
    location = /t {
        return 200 "line 1\nline 2\n";
    }
--- request
GET /t
--- response_body
line 1
line 2
--- check
open my $fh, '<', "$::W/logs/nginx.pid" or die $!;
chomp(my $pid = <$fh>);
isnt($pid, $::pid1, 'TEST 3 - a new nginx master');
ok(!::alive($::pid1), 'TEST 3 - the old one is gone');



=== TEST 4: several requests with per-request codes and bodies
--- config
    location = /a { return 200 "a"; }
    location = /b { return 403 "b"; }
    location = /c { return 201 "c"; }
--- request eval
["GET /a", "GET /b", "POST /c"]
--- error_code eval
[200, 403, 201]
--- response_body eval
["a", "b", "c"]
--- response_body_like eval
[qr/^a$/, "^b", undef]



=== TEST 5: one entry applies to every request
--- config
    location / { return 200 "any $uri"; }
--- request eval
["GET /x", "GET /y"]
--- error_code eval
[200]
--- response_body_like: ^any /[xy]$



=== TEST 6: more_headers, with $TEST_NGINX_ variables
--- config
    location = /h { return 200 "foo=$http_x_foo bar=$http_x_bar port=$server_port"; }
--- request
GET /h
--- more_headers
X-Foo: hello world
X-Bar: $TEST_NGINX_SERVER_PORT
--- response_body eval
"foo=hello world bar=$ENV{TEST_NGINX_SERVER_PORT} port=$ENV{TEST_NGINX_SERVER_PORT}"



=== TEST 7: init sets globals for eval sections; more_headers per request
--- config
    location = /h { return 200 "foo=$http_x_foo"; }
--- init
$::token = 'tok-' . int(rand(1000));
--- request eval
["GET /h", "GET /h"]
--- more_headers eval
["X-Foo: $::token", "X-Foo: other"]
--- response_body eval
["foo=$::token", "foo=other"]



=== TEST 8: a config eval reads init's globals
--- config eval
"location = /g { return 200 '$::greeting'; }"
--- init
$::greeting = 'set by init';
--- request
GET /g
--- response_body: set by init



=== TEST 9: the request body: from --- request, from --- request_body
--- config
    location = /echo {
        client_body_in_single_buffer on;
        proxy_set_header X-Body $request_body;
        proxy_set_header X-Len $content_length;
        proxy_set_header X-Method $request_method;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink;
    }
    location = /sink { return 200 "$http_x_method $http_x_len [$http_x_body]"; }
--- request eval
["POST /echo\n{\"a\": 1}", 'PUT /echo' . "\n" . 'port $TEST_NGINX_SERVER_PORT', "PATCH /echo"]
--- response_body eval
["POST 8 [{\"a\": 1}]", "PUT 10 [port $ENV{TEST_NGINX_SERVER_PORT}]", "PATCH  []"]



=== TEST 10: --- request_body replaces the body (one final newline dropped)
--- config
    location = /echo {
        client_body_in_single_buffer on;
        proxy_set_header X-Body $request_body;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink;
    }
    location = /sink { return 200 "[$http_x_body]"; }
--- request
POST /echo
ignored
--- request_body
from request_body
--- response_body: [from request_body]



=== TEST 11: an eval'd request_body is sent exactly
--- config
    location = /len { client_body_in_single_buffer on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink; }
    location = /sink { return 200 "len=$content_length"; }
--- request
POST /len
--- request_body eval
"two\n\n"
--- response_body: len=5



=== TEST 12: error_log and no_error_log see this block's lines
--- config
    location / { root $TEST_NGINX_HTML_DIR; }
--- request
GET /missing-file
--- error_code: 404
--- error_log
[error]
/missing-file" failed (2: No such file or directory)
--- no_error_log
[crit]



=== TEST 13: ... and only this block's (same nginx, the last block's lines are older)
--- config
    location / { root $TEST_NGINX_HTML_DIR; }
--- init
open my $fh, '>', "$::W/html/present" or die $!;
print $fh "here\n";
--- request
GET /present
--- response_body
here
--- no_error_log
[error]
No such file or directory



=== TEST 14: error_log eval: strings and regexes
--- config
    location / { root $TEST_NGINX_HTML_DIR; }
--- request
GET /gone
--- error_code: 404
--- error_log eval
[qr/open\(\) "[^"]+\/gone" failed/, "No such file"]
--- no_error_log eval
qr/\[emerg\]/



=== TEST 15: main_config and http_config land where they belong
--- main_config
worker_rlimit_nofile 2048;
--- http_config
    map $uri $mapped {
        default "from-http-config";
    }
--- config
    location = /m { return 200 $mapped; }
--- request
GET /m
--- response_body: from-http-config
--- check
open my $fh, '<', "$::W/conf/nginx.conf" or die $!;
my $c = do { local $/; <$fh> };
like($c, qr/^worker_rlimit_nofile 2048;\n+events \{/m,
     'TEST 15 - main_config at the top level');
like($c, qr/^http \{.*map \$uri \$mapped.*server \{/ms,
     'TEST 15 - http_config in http{}, before the server');
like($c, qr/upstream trueport_sidecar \{\s*server 127\.0\.0\.1:\d+;\s*keepalive 16;/,
     'TEST 15 - the sidecar upstream is always there');



=== TEST 16: workers() changes the next config (set in init: restart)
--- init
workers(3);
--- config
    location = /w { return 200 "w"; }
--- request
GET /w
--- check
open my $fh, '<', "$::W/logs/nginx.pid" or die $!;
chomp(my $master = <$fh>);
# (a worker may still be starting: under ASan that takes a while)
my @w;
for (my $deadline = Time::HiRes::time() + 5; ; Time::HiRes::sleep(0.05)) {
    @w = grep { ((`cat /proc/$_/stat 2>/dev/null` =~ /^\d+ \(nginx\) \S+ (\d+)/)[0] // 0) == $master }
         map { m{/proc/(\d+)$} } glob '/proc/[0-9]*';
    last if @w >= 3 || Time::HiRes::time() > $deadline;
}
is(scalar @w, 3, 'TEST 16 - three workers');
workers(2);



=== TEST 17: HTTP/1.0 on the request line; a chunked response
--- config
    location = /v { return 200 "$server_protocol"; }
    location = /chunked {
        sub_filter_types *;
        sub_filter_once off;
        sub_filter 'a' 'b';
        return 200 "aaa";
    }
--- request eval
["GET /v HTTP/1.0", "GET /chunked"]
--- response_body eval
["HTTP/1.0", "bbb"]
--- response_headers eval
["!Transfer-Encoding", "Transfer-Encoding: chunked\n!Content-Length"]



=== TEST 18: a keep-alive response ends at its length, not at the close
--- config
    keepalive_timeout 60s;
    location = /k { return 200 "kept"; }
--- request
GET /k
--- more_headers
Connection: keep-alive
--- timeout: 3
--- response_body: kept
--- response_headers
Connection: keep-alive



=== TEST 19: api() through nginx: JSON both ways, lowercase headers
--- config
    location = /j {
        default_type application/json;
        add_header X-Seen $http_content_type;
        return 200 '{"a":1,"list":[true]}';
    }
--- request
GET /j
--- check
my $r = api(POST => '/j', { x => 1 }, { 'X-Any' => 'y' });
is($r->{status}, 200, 'TEST 19 - api status');
is($r->{json}{a}, 1, 'TEST 19 - api json');
is($r->{headers}{'x-seen'}, 'application/json', 'TEST 19 - api sent JSON');
is($main::res->{json}{list}[0], JSON::PP::true(), 'TEST 19 - $main::res');
is(server_port(), $ENV{TEST_NGINX_SERVER_PORT}, 'TEST 19 - server_port');



=== TEST 20: 4xx/5xx bodies are kept
--- config
    location = /e { return 503 "busy"; }
--- request
DELETE /e
--- error_code: 503
--- response_body: busy



=== TEST 21: init runs on the previous block's nginx, eval sections on this one's
--- init
$::before = api(GET => '/e')->{status};
--- config
    location = /e { return 200 "calm"; }
--- request
GET /e
--- response_body eval
api(GET => '/e')->{body}
--- check
is($::before, 503, 'TEST 21 - init saw the previous config');



=== TEST 22: sections on lines of their own; timeout and wait with units
--- config
    location = /n { return 404 "none"; }
--- request
GET /n
--- error_code
404
--- timeout
5s
--- wait
0.1s
--- response_body_like
^none$
