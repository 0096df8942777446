# The spool ingester: records land exactly once although the sidecar is
# killed with SIGKILL again and again during ingestion, and although
# Postgres goes away while records keep arriving.
use lib 't/lib';
use Test::TruePort;
use Time::HiRes qw(sleep time);

my $spool = work_dir() . '/spool';
mkdir $spool or die "mkdir $spool: $!";
use_sidecar(env => { TRUEPORT_SPOOL_DIR => $spool, TRUEPORT_LOG_LEVEL => 'info' });

my $tenant = '11111111-2222-3333-4444-555555555555';
my $key    = '99999999-8888-7777-6666-555555555555';
my $seq = 0;

# one spool file of $n records, written as a worker would ($count: each
# an aggregated refusal standing for that many requests)
sub spool_file {
    my ($name, $n, $count) = @_;
    my $tail = $count ? qq{,"error_kind":"rate_limited","completed":true,"count":$count}
                      : qq{,"error_kind":null,"completed":true};
    open my $fh, '>>', "$spool/$name" or die $!;
    my $t = int(time * 1000);
    for (1 .. $n) {
        $seq++;
        printf $fh '{"v":1,"type":"usage","ts":%d,"request_id":"req-%06d",'
            . '"tenant_id":"%s","key_id":"%s","env":"production",'
            . '"provider":"openai","model":"gpt-4o-mini","path":"/v1/chat/completions",'
            . '"status":200,"stream":false,"input_tokens":100,"output_tokens":10,'
            . '"cached_tokens":0,"total_tokens":110,"ttfb_ms":5,"latency_ms":9,'
            . '"bytes_in":300,"bytes_out":700,"client_ip":"127.0.0.1"'
            . $tail . '}' . "\n",
            $t + $seq, $seq, $tenant, $key;
    }
    close $fh;
}

sub counts {
    return dbh()->selectrow_array(
        'SELECT count(*), count(DISTINCT request_id) FROM usage_logs WHERE tenant_id = $1',
        undef, $tenant);
}

sub wait_for_gone {
    my ($file, $secs) = @_;
    my $deadline = time + $secs;
    sleep 0.2 while -e $file && time < $deadline;
    return !-e $file;
}

sub wait_ingested {
    my ($want, $secs) = @_;
    my $deadline = time + $secs;
    my ($n, $d);
    while (time < $deadline) {
        ($n, $d) = counts();
        return ($n, $d) if $n >= $want && !glob("$spool/*.jsonl");
        sleep 0.2;
    }
    return counts();
}

# -- SIGKILL during ingestion ---------------------------------------------

stop_sidecar();
spool_file(sprintf('4242-%d-%d.jsonl', 1000 + $_, $_), 2500) for 1 .. 12;
spool_file('4243-5000-0.open', 3000);      # a live worker's file
my $total = $seq;

start_sidecar();
my ($kills, $mid) = (0, 0);
for (1 .. 10) {
    sleep 0.02 + rand(0.08);
    stop_sidecar('KILL');
    $kills++;
    # killed while part of the spool was still waiting?
    my ($in) = counts();
    $mid++ if $in > 0 && $in < $total;
    start_sidecar();
}
ok($kills == 10, 'the sidecar was SIGKILLed 10 times');
ok($mid >= 1, "$mid of the kills came in the middle of ingestion");

my ($n, $distinct) = wait_ingested($total, 30);
is($n, $total, "after $kills kills: every record is in usage_logs (no loss)");
is($distinct, $total, 'and none twice (no duplicates)');
ok(!glob("$spool/*.jsonl"), 'sealed files are removed once ingested');
ok(-e "$spool/4243-5000-0.open", 'a live worker file stays');

my $h = sidecar_api(GET => '/health');
is($h->{json}{spool}{backlog_records}, 0, '/health: no backlog left');
is($h->{json}{spool}{last_error}, undef, '/health: no ingest error');

my ($cost) = dbh()->selectrow_array(
    'SELECT sum(cost_micro_usd) FROM usage_logs WHERE tenant_id = $1', undef, $tenant);
# gpt-4o-mini: 0.15 $/M input, 0.60 $/M output => 15 + 6 micro-dollars
is($cost, $total * 21, 'cost on each record from the price table');

# -- the worker appends more to its open file: picked up from the checkpoint

spool_file('4243-5000-0.open', 500);
$total = $seq;
($n, $distinct) = wait_ingested($total, 15);
is($n, $total, 'appended records in an open file are ingested from the checkpoint');
is($distinct, $total, '... exactly once');

# -- Postgres away while records keep arriving -----------------------------

pg_stop();
spool_file(sprintf('4244-%d-0.jsonl', 6000 + $_), 1000) for 1 .. 3;
sleep 1.5;
my $down = sidecar_api(GET => '/health');
is($down->{status}, 503, '/health says 503 while Postgres is down');
spool_file(sprintf('4244-%d-0.jsonl', 7000 + $_), 1000) for 1 .. 2;
pg_start();
$total = $seq;

($n, $distinct) = wait_ingested($total, 30);
is($n, $total, 'after the outage: every record written meanwhile is in (no loss)');
is($distinct, $total, '... exactly once');

# -- aggregated refusals (a count each): SIGKILL during their ingestion ---

sub requests {
    return dbh()->selectrow_array(
        'SELECT coalesce(sum(count), 0) FROM usage_logs WHERE tenant_id = $1',
        undef, $tenant);
}

my ($rows0) = counts();
my $req0 = requests();
stop_sidecar();
spool_file(sprintf('4246-%d-0.jsonl', 9000 + $_), 2500, 7) for 1 .. 10;
my $agg_rows = 10 * 2500;
start_sidecar();
($kills, $mid) = (0, 0);
for (1 .. 6) {
    sleep 0.02 + rand(0.08);
    stop_sidecar('KILL');
    $kills++;
    my ($in) = counts();
    $mid++ if $in > $rows0 && $in < $rows0 + $agg_rows;
    start_sidecar();
}
ok($mid >= 1, "$mid of $kills kills came in the middle of the aggregated records");
($n, $distinct) = wait_ingested($rows0 + $agg_rows, 30);
is($n, $rows0 + $agg_rows, 'every aggregated record is in, once');
is($distinct, $n, '... no request id twice');
is(requests() - $req0, 7 * $agg_rows, '... and they count 7 requests each');
my ($month) = dbh()->selectrow_array(
    'SELECT sum(requests) FROM usage_monthly WHERE tenant_id = $1', undef,
    $tenant);
is($month, requests(), 'usage_monthly counts the same requests');

# a count that is not one is rejected, not guessed
open my $bad, '>', "$spool/4247-9500-0.jsonl" or die $!;
for my $c ('0', '-3', '"7"', '1.5', '2147483648') {
    printf $bad '{"v":1,"type":"usage","ts":%d,"request_id":"bad-count-%s",'
        . '"tenant_id":"%s","provider":"openai","count":%s}' . "\n",
        int(time * 1000), $c =~ tr/"-.//dr, $tenant, $c;
}
close $bad;
ok(wait_for_gone("$spool/4247-9500-0.jsonl", 15), 'the file is finished');
my ($badn) = dbh()->selectrow_array(
    q{SELECT count(*) FROM usage_logs WHERE request_id LIKE 'bad-count-%'});
is($badn, 0, 'records with a count of 0, < 0, a string, a fraction or'
   . ' past 2^31-1 are rejected');

# -- a torn line and garbage are skipped, counted, and do not block --------

open my $fh, '>', "$spool/4245-8000-0.jsonl" or die $!;
print $fh "this is not json\n";
close $fh;
spool_file('4245-8000-0.jsonl', 10);
open $fh, '>>', "$spool/4245-8000-0.jsonl" or die $!;
print $fh '{"v":1,"type":"usage","ts":1,"request_id":"torn';
close $fh;
$total = $seq;
($n, $distinct) = wait_ingested($total, 15);
is($n, $total, 'records around a bad line and a torn tail are ingested');
$h = sidecar_api(GET => '/health');
ok($h->{json}{spool}{rejected} >= 1, '/health counts the rejected line');
ok(!-e "$spool/4245-8000-0.jsonl", 'the file with a torn tail is finished and removed');

done_testing();
