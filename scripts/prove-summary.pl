#!/usr/bin/perl
# Runs the TAP test files (like prove, serially) and ends with exactly one
# line "N passed, M failed": N and M count assertions over every file; a
# file that dies, bails out or breaks its plan counts at least one failure.
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

my $harness = TAP::Harness->new({ verbosity => 0, lib => ['t/lib'],
                                  color => 0, merge => 0 });
my $agg = $harness->runtests(@files);

my ($passed, $failed) = (0, 0);
for my $file ($agg->descriptions) {
    my ($parser) = $agg->parsers($file);
    my $p = scalar $parser->passed;
    my $f = scalar $parser->failed;
    # a plan promising more than ran, a non-zero exit or a bail-out
    $f = 1 if $f == 0 && ($parser->has_problems || $parser->exit
                          || $parser->wait);
    $passed += $p;
    $failed += $f;
}
print "$passed passed, $failed failed\n";
exit($failed ? 1 : 0);
