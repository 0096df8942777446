#!/usr/bin/perl
# Render conf.d/trueport.conf and conf.d/sidecar-upstream.conf into OUTDIR
# with addresses taken from the environment:
#
#   TRUEPORT_HTTP_LISTEN          listen address   (127.0.0.1:8080)
#   TRUEPORT_SIDECAR_ADDR         sidecar server   (127.0.0.1:8081)
#   TRUEPORT_OPENAI_UPSTREAM      replaces https://api.openai.com/v1
#   TRUEPORT_ANTHROPIC_UPSTREAM   replaces https://api.anthropic.com/v1
#   TRUEPORT_GOOGLE_UPSTREAM      replaces
#       https://generativelanguage.googleapis.com/v1beta
#   TRUEPORT_AZURE_UPSTREAM       replaces https://<resource>.openai.azure.com
#
# usage: scripts/render-conf.pl OUTDIR

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;

my $outdir = shift @ARGV;
die "usage: $0 OUTDIR\n" if !defined $outdir || @ARGV;

# TRUEPORT_CONF_SRC: where the conf.d templates are (an installed copy)
my $confd = $ENV{TRUEPORT_CONF_SRC}
    // File::Spec->catdir(dirname(File::Spec->rel2abs($0)),
                         File::Spec->updir, 'conf.d');

# a value goes into nginx.conf verbatim: refuse anything that could end
# the directive or open a block
sub setting {
    my ($name, $default) = @_;
    my $v = $ENV{$name};

    return $default if !defined $v || $v eq '';
    die "$0: $name=\"$v\" contains whitespace, a quote, ';', '{' or '}'\n"
        if $v =~ /[\s;{}'"\\]/;

    return $v;
}

my $listen  = setting('TRUEPORT_HTTP_LISTEN', '127.0.0.1:8080');
my $sidecar = setting('TRUEPORT_SIDECAR_ADDR', '127.0.0.1:8081');

my @providers = (
    [ 'TRUEPORT_OPENAI_UPSTREAM',    qr{https://api\.openai\.com/v1\b} ],
    [ 'TRUEPORT_ANTHROPIC_UPSTREAM', qr{https://api\.anthropic\.com/v1\b} ],
    [ 'TRUEPORT_GOOGLE_UPSTREAM',
      qr{https://generativelanguage\.googleapis\.com/v1beta\b} ],
    [ 'TRUEPORT_AZURE_UPSTREAM',
      qr{https://[^/\s;'"]+\.openai\.azure\.com\b} ],
);

sub render {
    my ($file, $edit) = @_;
    my $src = File::Spec->catfile($confd, $file);
    my $dst = File::Spec->catfile($outdir, $file);

    open my $in, '<', $src or die "$0: $src: $!\n";
    local $_ = do { local $/; <$in> };
    close $in;

    $edit->();

    for my $p (@providers) {
        my $url = setting($p->[0], undef);
        next if !defined $url;
        $url =~ s{/+$}{};
        s/$p->[1]/$url/g;
    }

    open my $out, '>', "$dst.tmp" or die "$0: $dst.tmp: $!\n";
    print {$out} $_ or die "$0: $dst.tmp: $!\n";
    close $out or die "$0: $dst.tmp: $!\n";
    rename "$dst.tmp", $dst or die "$0: $dst: $!\n";
}

make_path($outdir);

render('trueport.conf', sub {
    s/^(\s*listen\s+)[^\s;]+/$1$listen/mg
        or die "$0: no listen directive in trueport.conf\n";
});

render('sidecar-upstream.conf', sub {
    s/^(\s*server\s+)[^\s;{]+/$1$sidecar/mg
        or die "$0: no server in sidecar-upstream.conf\n";
});
