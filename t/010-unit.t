# The sidecar's C unit tests (router, JSON, pagination, config, tokens,
# passwords, rate-limit window, migration names): their TAP goes to prove.
use strict;
use warnings;
use FindBin;

# make test-asan names its sanitized build in TP_UNIT_TESTS
my $bin = $ENV{TP_UNIT_TESTS}
          // ($ENV{TP_BUILD} // "$FindBin::Bin/../build") . "/unit-tests";
if (!-x $bin) {
    print "1..0 # SKIP $bin not built (make unit)\n";
    exit 0;
}
exec $bin or die "cannot run $bin: $!";
