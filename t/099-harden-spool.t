# Hardening II, finding 6: the spool has a total cap (trueport_spool
# max_total=). With the ingester away, a stream of refused requests of one
# known key cannot fill the disk: below 90 % of the cap every refusal is a
# record; near it the refusals of a key are one record per second with a
# count; at it they are dropped and counted in the module's health JSON,
# while a request that went upstream is still recorded. Once the ingester
# runs, usage_logs and the analytics count every refusal that was
# recorded, aggregated ones by their count, nothing twice.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

our $SPOOL = work_dir() . '/spool';
make_path($SPOOL, { mode => 0755 });

# the sidecar resolves keys but does not ingest: the spool only grows
use_sidecar();
gw_setup();

our $MAX = 64 * 1024;
our $T = gw_tenant();
our $K = gw_key($T, rpm => 1000000);
our $ONE = gw_key($T, rpm => 1);
our $OFF = gw_key($T, enabled => 0);

gw_env(
    KEY => $K->{key},
    ONE => $ONE->{key},
    OFF => $OFF->{key},
    SPOOL_HTTP => gw_http_config()
                  . "    trueport_spool $SPOOL max_size=4k max_total=64k;\n",
    SPOOL_GW => gw_locations() . <<'CONF',
        location = /trueportai-services/health {
            trueport_health;
        }
CONF
);

our $MODELS = '/trueportai-services/openai/v1/models';
our (%sent, $mark, $records);   # requests sent per kind; the spool then

# the spool's files: their bytes, their records
sub spool_bytes {
    my $n = 0;
    $n += -s $_ // 0 for glob("$SPOOL/*.open"), glob("$SPOOL/*.jsonl");
    return $n;
}

sub spool_records {
    my @r;
    for my $f (sort glob("$SPOOL/*.jsonl"), glob("$SPOOL/*.open")) {
        open my $fh, '<', $f or next;
        while (my $l = <$fh>) {
            my $j = json_decode($l);
            push @r, $j if $j;
        }
    }
    return @r;
}

sub refusals {
    my ($key) = @_;
    return grep { ($_->{key_id} // '') eq $key->{id} && $_->{error_kind} }
           spool_records();
}

sub health {
    my $r = api(GET => '/trueportai-services/health');
    return $r->{json}{spool} || {};
}

# successful requests until the spool reaches $bytes
sub fill_to {
    my ($bytes) = @_;
    while (spool_bytes() < $bytes) {
        my $r = api(GET => $MODELS, undef, { 'x-api-key' => $K->{key} });
        die "fill: $r->{status}\n" unless $r->{status} == 200;
        $sent{ok}++;
    }
}

sub send_refused {
    my ($key, $n, $want) = @_;
    my $bad = 0;
    for (1 .. $n) {
        my $r = api(GET => $MODELS, undef, { 'x-api-key' => $key->{key} });
        $bad++ unless $r->{status} == $want;
    }
    return $bad;
}

sub wait_for {
    my ($cond, $secs) = @_;
    my $deadline = time + $secs;
    until ($cond->()) {
        return 0 if time > $deadline;
        sleep 0.1;
    }
    return 1;
}

run_tests();

__DATA__

=== TEST 1: below 90 % of max_total every refusal is a record of its own
--- http_config: $TEST_NGINX_SPOOL_HTTP
--- config: $TEST_NGINX_SPOOL_GW
--- request eval
["GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models",
 "GET /trueportai-services/openai/v1/models"]
--- more_headers
x-api-key: $TEST_NGINX_ONE
--- error_code eval
[200, 429, 429, 429]
--- check
$main::sent{ok}++;
$main::sent{refused} += 3;
sleep 0.2;
my @r = main::refusals($main::ONE);
is(scalar @r, 3, 'three refusal records');
is(scalar(grep { exists $_->{count} } @r), 0, '... none with a count');
is(scalar(grep { $_->{error_kind} eq 'rate_limited' } @r), 3,
   '... all rate_limited');
my $h = main::health();
is($h->{max_total}, $main::MAX, 'health: spool.max_total');
is($h->{total}, main::spool_bytes(), 'health: spool.total is the bytes on disk');
is($h->{aggregated}, 0, 'health: nothing aggregated');
is($h->{dropped}, 0, 'health: nothing dropped');
--- no_error_log
[error]
[alert]



=== TEST 2: near the cap the refusals of a key are one record per second
A disabled key's refusals (auth) are aggregated apart from the limiter's.
--- http_config: $TEST_NGINX_SPOOL_HTTP
--- config: $TEST_NGINX_SPOOL_GW
--- request
GET /trueportai-services/health
--- check
main::fill_to(int($main::MAX * 0.9) + 1);
sleep 0.2;
$main::mark = main::spool_bytes();
ok($main::mark < $main::MAX, "filled to 90 % ($main::mark bytes), below the cap");
my $t0 = int(time * 1000);
my $bad = main::send_refused($main::ONE, 40, 429)
          + main::send_refused($main::OFF, 10, 401);
is($bad, 0, '40 refusals of the limiter and 10 of a disabled key');
$main::sent{refused} += 40;
# the aggregates are written once their second is over
ok(main::wait_for(sub { main::health()->{aggregated} == 50
                        && do { my @r = main::refusals($main::OFF); @r } }, 5),
   'the aggregates are written');
sleep 1.2;
my @r = grep { $_->{ts} >= $t0 } main::refusals($main::ONE);
my $sum = 0;
$sum += $_->{count} // 1 for @r;
is($sum, 40, 'the new records of the key count all 40 refusals');
ok(@r >= 1 && @r <= 6, scalar(@r) . ' records for them (one per second)');
ok((grep { ($_->{count} // 1) > 1 } @r), 'with a count');
my @off = main::refusals($main::OFF);
my $offsum = 0;
$offsum += $_->{count} // 1 for @off;
is($offsum, 10, "the disabled key's 10 in records of their own");
is(scalar(grep { $_->{error_kind} ne 'auth' } @off), 0, '... as auth');
my $h = main::health();
is($h->{aggregated}, 50, 'health: spool.aggregated 50');
is($h->{dropped}, 0, 'health: nothing dropped yet');
my $grown = main::spool_bytes() - $main::mark;
ok($grown < 10 * 700, "50 refusals took $grown bytes (one each: 50 lines)");
--- no_error_log
[error]
[alert]



=== TEST 3: at the cap refusals are dropped and counted, a success is not
--- http_config: $TEST_NGINX_SPOOL_HTTP
--- config: $TEST_NGINX_SPOOL_GW
--- request
GET /trueportai-services/health
--- check
main::fill_to($main::MAX);
sleep 0.2;
$main::mark = main::spool_bytes();
ok($main::mark >= $main::MAX, "filled to the cap ($main::mark bytes)");
my $bad = main::send_refused($main::ONE, 30, 429);
is($bad, 0, '30 refusals past the cap');
$main::sent{dropped} += 30;
my $h = main::health();
is($h->{dropped}, 30, 'health: spool.dropped 30');
is($h->{aggregated}, 50, 'health: spool.aggregated unchanged');
sleep 1.2;
is(main::spool_bytes(), $main::mark, 'the refusals wrote nothing');
my $r = api(GET => $main::MODELS, undef, { 'x-api-key' => $main::K->{key} });
is($r->{status}, 200, 'a request past the cap goes through');
$main::sent{ok}++;
my $id = $r->{headers}{'x-trueport-request-id'};
ok(main::wait_for(sub { grep { ($_->{request_id} // '') eq $id }
                        main::spool_records() }, 3),
   '... and is recorded');
my $total = main::spool_bytes();
ok($total <= $main::MAX + 2 * 700,
   "the spool stays at the cap plus the successful records ($total bytes)");
is(main::health()->{total}, $total, 'health: spool.total');
--- error_log
reached max_total=65536
--- no_error_log
[error]



=== TEST 4: once ingested, every recorded refusal counts, nothing twice
--- http_config: $TEST_NGINX_SPOOL_HTTP
--- config: $TEST_NGINX_SPOOL_GW
--- request
GET /trueportai-services/health
--- check
$main::records = () = main::spool_records();
restart_sidecar(TRUEPORT_SPOOL_DIR => $main::SPOOL);
my $q = 'SELECT coalesce(sum(count), 0), count(*), count(DISTINCT request_id)'
      . ' FROM usage_logs WHERE key_id = ? AND error_kind = ?';
ok(main::wait_for(sub { !glob("$main::SPOOL/*.jsonl") }, 30),
   'the ingester took the sealed files');
ok(main::wait_for(sub {
       my ($n) = dbh()->selectrow_array(
           'SELECT count(*) FROM usage_logs WHERE tenant_id = ?', undef,
           $main::T->{id});
       $n >= $main::records }, 10),
   "and every record of the spool ($main::records lines)");
sleep 1;
my ($sum, $rows, $ids) = dbh()->selectrow_array($q, undef, $main::ONE->{id},
                                               'rate_limited');
is($sum, $main::sent{refused}, "usage_logs: the key's $main::sent{refused}"
   . " recorded refusals (not the $main::sent{dropped} dropped)");
ok($rows < $sum, "... in $rows rows");
is($ids, $rows, '... none twice');
($sum, $rows) = dbh()->selectrow_array($q, undef, $main::OFF->{id}, 'auth');
is($sum, 10, "usage_logs: the disabled key's 10 refusals");
my ($ok, $okrows, $okids, $max) = dbh()->selectrow_array(
    'SELECT coalesce(sum(count), 0), count(*), count(DISTINCT request_id),'
    . ' max(count) FROM usage_logs WHERE tenant_id = ? AND error_kind IS NULL',
    undef, $main::T->{id});
is($ok, $main::sent{ok}, "every successful request ($main::sent{ok}) recorded");
is($okrows, $ok, '... one row each');
is($okids, $okrows, '... none twice');
is($max, 1, '... never aggregated');
my $want = $main::sent{ok} + $main::sent{refused} + 10;
my $r = sidecar_api('GET', '/trueportai-services/api/v1/analytics/stats',
                    undef, { Authorization => "Bearer $main::T->{token}" });
is($r->{json}{totals}{requests}, $want, "analytics: $want requests");
is($r->{json}{totals}{errors}, $main::sent{refused} + 10,
   'analytics: the refusals among them');
my ($month) = dbh()->selectrow_array(
    'SELECT requests FROM usage_monthly WHERE tenant_id = ?', undef,
    $main::T->{id});
is($month, $want, 'usage_monthly counts them the same');
$r = sidecar_api('GET', '/trueportai-services/api/v1/analytics/logs'
                 . "?key_id=$main::ONE->{id}&limit=100", undef,
                 { Authorization => "Bearer $main::T->{token}" });
my ($agg) = grep { ($_->{count} // 1) > 1 } @{ $r->{json}{items} || [] };
ok($agg, 'analytics/logs: an aggregated row shows its count');
ok(main::wait_for(sub { main::health()->{total} < $main::MAX * 0.9 }, 5),
   'health: the spool is below 90 % again');
sleep 0.2;
--- error_log
is below 90% of max_total=65536 again
--- no_error_log
[error]
