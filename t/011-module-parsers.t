# The module's pure C parsers (usage extraction, ...): their unit-test
# binaries print TAP; each becomes a subtest here.
use strict;
use warnings;
use FindBin;
use Test::More;

my $dir = ($ENV{TP_BUILD} // "$FindBin::Bin/../build") . "/unit";
my @bins = sort grep { -x } glob("$dir/test_*");
plan skip_all => "no parser unit tests built (make unit)" unless @bins;

for my $bin (@bins) {
    my $out = `$bin 2>&1`;
    my $rc = $? >> 8;
    my @not_ok = grep { /^not ok/ } split /\n/, $out;
    my ($plan) = $out =~ /^1\.\.(\d+)$/m;
    subtest $bin =~ s{.*/}{}r => sub {
        ok(defined $plan && $plan > 0, 'printed a plan');
        for my $line (grep { /^(not )?ok \d+/ } split /\n/, $out) {
            my ($bad, $name) = $line =~ /^(not )?ok \d+ - (.*)$/;
            ok(!$bad, $name // $line);
        }
        is($rc, 0, 'exit status 0') or diag $out;
    };
}
done_testing();
