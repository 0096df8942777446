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

# one spool file of $n records, written as a worker would
sub spool_file {
    my ($name, $n) = @_;
    open my $fh, '>>', "$spool/$name" or die $!;
    my $t = int(time * 1000);
    for (1 .. $n) {
        $seq++;
        printf $fh '{"v":1,"type":"usage","ts":%d,"request_id":"req-%06d",'
            . '"tenant_id":"%s","key_id":"%s","env":"production",'
            . '"provider":"openai","model":"gpt-4o-mini","path":"/v1/chat/completions",'
            . '"status":200,"stream":false,"input_tokens":100,"output_tokens":10,'
            . '"cached_tokens":0,"total_tokens":110,"ttfb_ms":5,"latency_ms":9,'
            . '"bytes_in":300,"bytes_out":700,"client_ip":"127.0.0.1",'
            . '"error_kind":null,"completed":true}' . "\n",
            $t + $seq, $seq, $tenant, $key;
    }
    close $fh;
}

sub counts {
    return dbh()->selectrow_array(
        'SELECT count(*), count(DISTINCT request_id) FROM usage_logs WHERE tenant_id = $1',
        undef, $tenant);
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
