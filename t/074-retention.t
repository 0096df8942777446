# Retention: usage rows older than the tenant's retention (storage
# settings, capped by the plan) are deleted by the ingester's periodic
# sweep, and monthly partitions older than any plan keeps are dropped.
# Also: a record of a model without a price keeps cost null and is counted.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Gateway;
use Time::HiRes qw(sleep time);

my $spool = work_dir() . '/spool';
mkdir $spool or die $!;
use_sidecar(env => { TRUEPORT_SPOOL_DIR => $spool,
                     TRUEPORT_RETENTION_INTERVAL => 1 });

my $free = gw_tenant(plan => 'free');          # plan keeps 7 days
my $pro  = gw_tenant(plan => 'pro');           # plan keeps 30 days ...
dbh()->do("INSERT INTO tenant_storage (tenant_id, retention_days)"
          . " VALUES (?, 1)", undef, $pro->{id});   # ... tenant says 1

sub row {
    my ($t, $age, $id) = @_;
    dbh()->do("SELECT usage_ensure_partition(now() - ?::interval)", undef, $age);
    dbh()->do("INSERT INTO usage_logs (created_at, request_id, tenant_id,"
              . " provider) VALUES (now() - ?::interval, ?, ?, 'openai')",
              undef, $age, $id, $t->{id});
}

row($free, '1 day', 'free-new');
row($free, '10 days', 'free-old');
row($pro, '2 hours', 'pro-new');
row($pro, '3 days', 'pro-old');
row($free, '3 years', 'ancient');
my ($ancient_part) = dbh()->selectrow_array(
    "SELECT 'usage_logs_' || to_char(now() - interval '3 years', 'YYYY_MM')");
ok(dbh()->selectrow_array("SELECT to_regclass(?)", undef, $ancient_part),
   "a partition for 3 years ago exists ($ancient_part)");

my $deadline = time + 10;
my @left;
while (time < $deadline) {
    @left = map { $_->[0] } @{ dbh()->selectall_arrayref(
        "SELECT request_id FROM usage_logs WHERE tenant_id IN (?, ?)"
        . " ORDER BY request_id", undef, $free->{id}, $pro->{id}) };
    last if @left == 2;
    sleep 0.2;
}
is_deeply(\@left, ['free-new', 'pro-new'],
          'rows past the retention are gone, recent ones stay');
ok(!dbh()->selectrow_array("SELECT to_regclass(?)", undef, $ancient_part),
   'the partition older than the longest retention was dropped');
my ($this_month) = dbh()->selectrow_array(
    "SELECT to_regclass('usage_logs_' || to_char(now(), 'YYYY_MM'))");
ok($this_month, "this month's partition stays");

# an unpriced model
open my $fh, '>', "$spool/1-1-0.jsonl" or die $!;
printf $fh '{"v":1,"type":"usage","ts":%d,"request_id":"unpriced-1",'
    . '"tenant_id":"%s","provider":"openai","model":"gpt-next-secret",'
    . '"status":200,"input_tokens":10,"output_tokens":5,"total_tokens":15}' . "\n"
    . '{"v":1,"type":"usage","ts":%d,"request_id":"priced-1",'
    . '"tenant_id":"%s","provider":"openai","model":"gpt-4o-2024-08-06",'
    . '"status":200,"input_tokens":1000,"output_tokens":100,"cached_tokens":200,'
    . '"total_tokens":1100}' . "\n",
    int(time * 1000), $free->{id}, int(time * 1000), $free->{id};
close $fh;
$deadline = time + 10;
my %cost;
while (time < $deadline) {
    %cost = map { $_->[0] => $_->[1] } @{ dbh()->selectall_arrayref(
        "SELECT request_id, cost_micro_usd FROM usage_logs"
        . " WHERE request_id IN ('unpriced-1', 'priced-1')") };
    last if keys %cost == 2;
    sleep 0.2;
}
ok(exists $cost{'unpriced-1'} && !defined $cost{'unpriced-1'},
   'an unknown model is recorded with cost null, not guessed');
# gpt-4o: (1000-200) x 2.50 + 200 x 1.25 + 100 x 10 micro-dollars
is($cost{'priced-1'}, 2000 + 250 + 1000,
   'a dated model name takes its base model price, cached tokens at their rate');
my $h = sidecar_api(GET => '/health');
is($h->{json}{spool}{unpriced}, 1, '/health counts the unpriced record');

done_testing();
