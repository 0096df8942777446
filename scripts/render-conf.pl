#!/usr/bin/perl
# Render conf.d/trueport.conf, sidecar-upstream.conf, trueport-proxy.conf
# and providers-upstream.conf into OUTDIR with settings taken from the
# environment:
#
#   TRUEPORT_HTTP_LISTEN          listen address   (127.0.0.1:8080)
#   TRUEPORT_SIDECAR_ADDR         sidecar server   (127.0.0.1:8081)
#   TRUEPORT_SIDECAR_INTERNAL_ADDR
#                                 the sidecar's /internal/ listener, its
#                                 TRUEPORT_INTERNAL_LISTEN (127.0.0.1:8082)
#   TRUEPORT_INTERNAL_TOKEN       the sidecar's token for /internal/ (needed)
#   TRUEPORT_OPENAI_UPSTREAM      replaces https://api.openai.com/v1
#   TRUEPORT_ANTHROPIC_UPSTREAM   replaces https://api.anthropic.com/v1
#   TRUEPORT_GOOGLE_UPSTREAM      replaces
#       https://generativelanguage.googleapis.com/v1beta
#   TRUEPORT_AZURE_UPSTREAM       replaces https://{resource}.openai.azure.com
#       (a base to which /openai/deployments/{deployment}/{path} is added;
#       it may keep "{resource}" to put the route's resource in it)
#   TRUEPORT_{OPENAI,ANTHROPIC,GOOGLE,AZURE}_API_KEY
#                                 the route's default provider credential
#   TRUEPORT_SPOOL_DIR            turns metering on: nginx's spool directory
#   TRUEPORT_RESOLVER             name server for Azure's hosts (default:
#                                 the first one in /etc/resolv.conf)
#   TRUEPORT_PROVIDER_MAX_BODY    the provider routes' largest request body
#                                 (32m; nginx sizes: 20m, 512k)
#   TRUEPORT_POLICY_MAX_BODY      the largest body the policies check (1m,
#                                 at most 16m): a larger one is refused when
#                                 a rule applies
#   TRUEPORT_ENDPOINT_ALLOWLIST   hosts tenants' own endpoints may name, the
#                                 sidecar's setting of the same name
#                                 (*.openai.azure.com; patterns separated by
#                                 commas or blanks)
#
# trueport.conf's includes of trueport-proxy.conf become absolute paths
# into OUTDIR.  An
# upstream{} block of providers-upstream.conf is left out when its
# provider's upstream is overridden or its host does not resolve now
# (nginx would refuse to start); requests then use the resolver.
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

# an nginx size: digits and an optional k or m
sub size {
    my ($name) = @_;
    my $v = setting($name, undef) // return undef;
    die "$0: $name=\"$v\" is not a size (like 32m, 512k or 1048576)\n"
        unless $v =~ /^\d+[kKmM]?$/;
    return $v;
}

my $listen  = setting('TRUEPORT_HTTP_LISTEN', '127.0.0.1:8080');
my $sidecar = setting('TRUEPORT_SIDECAR_ADDR', '127.0.0.1:8081');
my $internal = setting('TRUEPORT_SIDECAR_INTERNAL_ADDR', '127.0.0.1:8082');
my $token   = setting('TRUEPORT_INTERNAL_TOKEN', undef)
    // die "$0: TRUEPORT_INTERNAL_TOKEN is not set (the sidecar's token for"
         . " /internal/)\n";

my @providers = (
    [ 'TRUEPORT_OPENAI_UPSTREAM',    qr{https://api\.openai\.com/v1\b},
      'openai', 'api.openai.com' ],
    [ 'TRUEPORT_ANTHROPIC_UPSTREAM', qr{https://api\.anthropic\.com/v1\b},
      'anthropic', 'api.anthropic.com' ],
    [ 'TRUEPORT_GOOGLE_UPSTREAM',
      qr{https://generativelanguage\.googleapis\.com/v1beta\b},
      'google', 'generativelanguage.googleapis.com' ],
    [ 'TRUEPORT_AZURE_UPSTREAM',
      qr{https://[^/\s;'"]+\.openai\.azure\.com\b}, 'azure', undef ],
);

sub resolver {
    my $r = setting('TRUEPORT_RESOLVER', undef);
    return $r if defined $r;
    if (open my $fh, '<', '/etc/resolv.conf') {
        while (my $line = <$fh>) {
            next unless $line =~ /^\s*nameserver\s+(\S+)/;
            my $ns = $1;
            $ns =~ s/%.*//;
            return $ns =~ /:/ ? "[$ns]" : $ns;
        }
    }
    return '127.0.0.1';
}

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

    s/\@TRUEPORT_INTERNAL_TOKEN\@/$token/g
        or die "$0: no internal token placeholder in trueport.conf\n";

    my $policy = size('TRUEPORT_POLICY_MAX_BODY');
    (s/^(\s*trueport_policy_max_body\s+)[^\s;]+/$1$policy/m
        or die "$0: no trueport_policy_max_body in trueport.conf\n")
        if defined $policy;

    # patterns: the module checks them at start, this keeps out only what
    # could end the directive
    my $allow = $ENV{TRUEPORT_ENDPOINT_ALLOWLIST} // '';
    my @allow = grep { length } split /[\s,]+/, $allow;
    if (@allow) {
        for my $p (@allow) {
            die "$0: TRUEPORT_ENDPOINT_ALLOWLIST: \"$p\" contains a quote,"
                . " a backslash, '\$', ';', '{' or '}'\n" if $p =~ /[;{}'"\\\$]/;
        }
        s/^(\s*trueport_upstream_allow\s+)[^;]+/$1@allow/m
            or die "$0: no trueport_upstream_allow in trueport.conf\n";
    }

    my $spool = setting('TRUEPORT_SPOOL_DIR', undef);
    s/^#(trueport_spool\s+)[^\s;]+/$1$spool/m if defined $spool;

    my $ns = resolver();
    s/^(\s*resolver\s+)[^\s;]+/$1$ns/mg;

    my $abs = File::Spec->rel2abs($outdir);
    s/^(\s*include\s+)(trueport-proxy\.conf;)/$1$abs\/$2/mg;

    for my $p (@providers) {
        my $key = setting(uc("TRUEPORT_$p->[2]_API_KEY"), undef) // next;
        s/^(\s*)(trueport_gateway\s+$p->[2];\n)/$1$2$1trueport_upstream_key $key;\n/m;
    }
});

render('sidecar-upstream.conf', sub {
    s/^(upstream trueport_sidecar \{\n\s*server\s+)[^\s;{]+/$1$sidecar/m
        or die "$0: no trueport_sidecar server in sidecar-upstream.conf\n";
    s/^(upstream trueport_sidecar_internal \{\n\s*server\s+)[^\s;{]+/$1$internal/m
        or die "$0: no trueport_sidecar_internal server in"
             . " sidecar-upstream.conf\n";
});

render('trueport-proxy.conf', sub {
    my $max = size('TRUEPORT_PROVIDER_MAX_BODY') // return;
    s/^(\s*client_max_body_size\s+)[^\s;]+/$1$max/m
        or die "$0: no client_max_body_size in trueport-proxy.conf\n";
});

render('providers-upstream.conf', sub {
    for my $p (@providers) {
        my $host = $p->[3] // next;

        if (defined setting($p->[0], undef)) {
            # the route goes elsewhere: no need for the provider's host
        } elsif (!gethostbyname($host)) {
            warn "$0: leaving out upstream $host: it does not resolve\n";
        } else {
            next;
        }

        s/^upstream \Q$host\E \{.*?^\}\n\n?//ms
            or die "$0: no upstream $host in providers-upstream.conf\n";
    }
});
