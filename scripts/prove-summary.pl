#!/usr/bin/perl
# Runs TAP test files like prove (serially, sorted, recursing into folders
# for *.t, with t/lib on @INC) and ends with exactly one line
# "N passed, M failed": N and M count assertions over every file. A file
# that dies, bails out, breaks its plan or exits non-zero counts as at least
# one failure; after a bail-out the files that did not run count one each.
# Exit status: 0 when nothing failed, 1 otherwise.
#
#   perl scripts/prove-summary.pl [file.t | dir ...]     (default: t)
use strict;
use warnings;
use File::Find;
use TAP::Harness;

my @args = @ARGV ? @ARGV : ('t');
my @files;
for my $a (@args) {
    if (-d $a) {
        find({ no_chdir => 1,
               wanted => sub { push @files, $_ if /\.t$/ && -f $_ } }, $a);
    } else {
        push @files, $a;
    }
}
@files = sort @files;

my ($passed, $failed) = (0, 0);
my %ran;

my $harness = TAP::Harness->new({ verbosity => ($ENV{TP_VERBOSE} ? 1 : 0), lib => ['t/lib'],
                                  color => 0, merge => 0 });
# Counted per file as each one ends: a bail-out makes runtests() die and
# lose its aggregator.
$harness->callback(after_test => sub {
    my ($job, $parser) = @_;
    $ran{ $job->[0] } = 1;
    my $p = () = $parser->passed;
    my $f = () = $parser->failed;
    # a plan promising more than ran, a non-zero exit or wait status, a
    # bail-out: the file failed even if no assertion did
    $f = 1 if $f == 0 && ($parser->has_problems || $parser->exit
                          || $parser->wait);
    $passed += $p;
    $failed += $f;
});

if (!eval { $harness->runtests(@files); 1 }) {
    print STDERR $@;
    my @left = grep { !$ran{$_} } @files;
    print "$_ .. not run\n" for @left;
    $failed += @left || 1;
}

print "$passed passed, $failed failed\n";
exit($failed ? 1 : 0);
