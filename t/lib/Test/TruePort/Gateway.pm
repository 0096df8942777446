package Test::TruePort::Gateway;
# Set-up shared by the gateway tests (t/05*-gateway-*.t): tenants and keys
# straight in the database, the resolve location and the four provider
# locations pointed at the mock provider, as nginx config text.
#
#   use Test::TruePort;
#   use Test::TruePort::Mock;
#   use Test::TruePort::Gateway;
#   use_sidecar();
#   gw_setup();                 # mock + $TEST_NGINX_GW_HTTP/$TEST_NGINX_GW
#   my $t = gw_tenant();        # {id, user_id, token}
#   my $k = gw_key($t, rpm => 5);   # {key, id, hash}
#   my $s = gw_shipped(env => {...});   # conf.d as shipped: {port, dir}
#   gw_shipped_stop($s);
#
# Blocks then use "--- http_config: $TEST_NGINX_GW_HTTP" and
# "--- config: $TEST_NGINX_GW" (the harness fills those in), and find keys
# in variables set with gw_env(NAME => value).
use strict;
use warnings;

use Exporter 'import';
use Digest::SHA qw(sha256_hex);
use File::Path qw(make_path);
use MIME::Base64 qw(encode_base64);
use Test::TruePort ();
use Test::TruePort::Mock qw(start_mock mock_requests);

our @EXPORT = qw(gw_setup gw_http_config gw_locations gw_tenant gw_key
                 gw_env gw_credential gw_config gw_upstream_saw sha256_hex
                 gw_shipped gw_shipped_stop);

my $seq = 0;


sub _random_key {
    my $raw = join '', map { chr int rand 256 } 1 .. 32;
    my $b64 = encode_base64($raw, '') =~ tr{+/}{-_}r =~ s/=+$//r;
    return "sk-$b64";
}


# The http{}-level lines: the zone ("zone_params": e.g. "negative=50"),
# the cache timings and "miss_limit" (trueport_key_miss_limit).
sub gw_http_config {
    my (%o) = @_;
    my $zone = $o{zone} // '1m';
    my $params = defined $o{zone_params} ? " $o{zone_params}" : '';
    my $c = "    trueport_zone zone=tp:$zone$params;\n";
    for my $d (qw(refresh valid stale negative)) {
        $c .= "    trueport_cache_$d $o{$d};\n" if defined $o{$d};
    }
    $c .= "    trueport_key_miss_limit $o{miss_limit};\n"
        if defined $o{miss_limit};
    return $c;
}


# The server{}-level lines: the resolve location (to the sidecar's
# internal listener, or to
# "resolve_to" host:port; none with "no_resolve") and the four provider
# locations on the mock ("<provider>_key": the route's credential, undef
# for none; "extra": more lines in each; "policy": the policy load
# location and trueport_policy_location).
sub gw_locations {
    my (%o) = @_;
    my $mock = $o{mock} // "127.0.0.1:$ENV{TEST_NGINX_MOCK_PORT}";
    my $root = $ENV{TEST_NGINX_ROOT};
    my $token = Test::TruePort::internal_token();
    my $to = $o{resolve_to} // 'trueport_sidecar_internal';
    my $timeout = $o{resolve_timeout} // '1s';
    my $extra = $o{extra} // '';
    my %key = (openai => 'sk-route-openai', anthropic => 'sk-ant-route',
               google => 'AIza-route-google', azure => 'route-azure-key');
    my %up = (openai => "http://$mock/v1", anthropic => "http://$mock/v1",
              google => "http://$mock/v1beta", azure => "http://$mock");
    my %path = (openai => 'openai/v1', anthropic => 'anthropic/v1',
                google => 'google/v1beta', azure => 'azure');

    my $c = $o{no_resolve} ? '' : <<"CONF";
        trueport_resolve_location /_trueport/resolve;

        location = /_trueport/resolve {
            internal;
            proxy_pass http://$to/internal/v1/keys/resolve\$is_args\$args;
            proxy_pass_request_body off;
            proxy_pass_request_headers off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_http_version 1.1;
            proxy_set_header X-TruePort-Internal-Token "$token";
            proxy_set_header X-TruePort-Key-Hash \$trueport_key_hash;
            proxy_connect_timeout $timeout;
            proxy_send_timeout $timeout;
            proxy_read_timeout $timeout;
        }
CONF
    # "policy": the rule loads of trueport_policy_location (issue 6)
    $c .= <<"CONF" if $o{policy};
        trueport_policy_location /_trueport/policies;

        location = /_trueport/policies {
            internal;
            proxy_pass http://$to/internal/v1/policies\$is_args\$args;
            proxy_pass_request_body off;
            proxy_pass_request_headers off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_http_version 1.1;
            proxy_set_header X-TruePort-Internal-Token "$token";
            proxy_connect_timeout $timeout;
            proxy_send_timeout $timeout;
            proxy_read_timeout $timeout;
            subrequest_output_buffer_size 1m;
        }
CONF
    for my $p (qw(openai anthropic google azure)) {
        my $k = exists $o{"${p}_key"} ? $o{"${p}_key"} : $key{$p};
        my $kl = defined $k ? "trueport_upstream_key $k;" : '';
        $c .= <<"CONF";

        location /trueportai-services/$path{$p}/ {
            trueport_gateway $p;
            trueport_upstream $up{$p};
            $kl
            include $root/conf.d/trueport-proxy.conf;
            add_header X-Cache \$trueport_cache_status always;
            add_header X-Key-Id \$trueport_key_id always;
            add_header X-Tenant-Id \$trueport_tenant_id always;
            $extra
        }
CONF
    }
    return $c;
}


# Starts the mock and sets $TEST_NGINX_GW_HTTP and $TEST_NGINX_GW.
sub gw_setup {
    my (%o) = @_;
    start_mock();
    gw_env(GW_HTTP => gw_http_config(%o));
    gw_env(GW => gw_locations(%o));
}


sub gw_env {
    my (%v) = @_;
    $ENV{"TEST_NGINX_$_"} = $v{$_} for keys %v;
}


# The operator lets the pro plan (gw_tenant's default) spend the routes'
# default keys (trueport_upstream_key): no plan does unless told. A test
# of that opt-in itself sets this to 0 before its first gw_tenant.
our $OPERATOR_KEYS = 1;
my $opted_in;

# A user, a tenant (status, plan) and the user's owner membership.
sub gw_tenant {
    my (%o) = @_;
    my $dbh = Test::TruePort::dbh();
    $dbh->do(q{UPDATE plans SET default_credentials = true WHERE id = 'pro'})
        if $OPERATOR_KEYS && !$opted_in++;
    my $n = ++$seq;
    my ($uid) = $dbh->selectrow_array(
        "INSERT INTO users (email, name, password_hash) VALUES (?, ?, 'x')"
        . " RETURNING id", undef, "gw$n-$$\@example.com", "Gateway $n");
    my ($tid) = $dbh->selectrow_array(
        "INSERT INTO tenants (name, slug, status, created_by)"
        . " VALUES (?, ?, ?, ?) RETURNING id", undef,
        "Gateway $n", "gw-$n-$$", $o{status} // 'active', $uid);
    $dbh->do("INSERT INTO memberships (tenant_id, user_id, role)"
             . " VALUES (?, ?, 'owner')", undef, $tid, $uid);
    $dbh->do("INSERT INTO subscriptions (tenant_id, plan_id)"
             . " VALUES (?, ?)", undef, $tid, $o{plan} // 'pro');
    my $token = Test::TruePort::jwt({ sub => $uid, tid => $tid,
                                      role => 'owner', env => 'production' });
    return { id => $tid, user_id => $uid, token => $token };
}


# A key of the tenant, in the database as the keys API stores it.
# Options: rpm, enabled (1), expires_at (unix), providers [...], deleted.
sub gw_key {
    my ($t, %o) = @_;
    my $key = $o{key} // _random_key();
    my $hash = sha256_hex($key);
    my $prov = '{' . join(',', @{ $o{providers} || [] }) . '}';
    my ($id) = Test::TruePort::dbh()->selectrow_array(
        "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env, rpm,"
        . " providers, enabled, expires_at, deleted_at, created_by)"
        . " VALUES (?, ?, ?, ?, 'production', ?, ?::text[], ?,"
        . " to_timestamp(?), CASE WHEN ? THEN now() END, ?) RETURNING id",
        undef, $t->{id}, "key $hash", substr($key, 0, 8), $hash, $o{rpm},
        $prov, ($o{enabled} // 1) ? 'true' : 'false', $o{expires_at},
        $o{deleted} ? 'true' : 'false', $t->{user_id});
    return { key => $key, id => $id, hash => $hash };
}


# The tenant's own credential for a provider, through the configs API.
sub gw_credential {
    my ($t, $provider, $value) = @_;
    my $r = Test::TruePort::sidecar_api(
        'PUT', "/platform/api/service/configs/providers.$provider.api_key",
        { value => $value }, { Authorization => "Bearer $t->{token}" });
    die "gw_credential: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    return $r;
}

# A tenant setting through the configs API (PUT configs/{key}).
sub gw_config {
    my ($t, $key, $value) = @_;
    my $r = Test::TruePort::sidecar_api(
        'PUT', "/platform/api/service/configs/$key", { value => $value },
        { Authorization => "Bearer $t->{token}" });
    die "gw_config $key: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    return $r;
}


# Checks the last request the mock received (for --- check sections):
# the path, the query, headers that must be there (name => value) or
# absent (name => undef), and that the gateway key is nowhere in it.
sub gw_upstream_saw {
    my (%o) = @_;
    my @all = mock_requests();
    my $m = $all[-1];
    my $l = $o{label} // 'upstream';
    if (!$m) {
        Test::More::fail("$l: the mock received a request");
        return;
    }
    Test::More::is($m->{path}, $o{path}, "$l: path") if exists $o{path};
    Test::More::is_deeply($m->{query}, $o{query}, "$l: query")
        if exists $o{query};
    for my $h (sort keys %{ $o{headers} || {} }) {
        my $want = $o{headers}{$h};
        if (defined $want) {
            Test::More::is($m->{headers}{lc $h}, $want, "$l: header $h");
        } else {
            Test::More::ok(!exists $m->{headers}{lc $h}, "$l: no header $h")
                or Test::More::diag("$h: $m->{headers}{lc $h}");
        }
    }
    if (defined $o{key}) {
        my $all = Test::TruePort::json_encode($m);
        Test::More::ok(index($all, $o{key}) < 0,
                       "$l: the gateway key is nowhere upstream")
            or Test::More::diag($all);
    }
    return $m;
}

my @shipped;     # the gw_shipped() nginx still running, stopped at END

# conf.d as shipped, rendered by scripts/render-conf.pl with the four
# upstreams on the mock, in an nginx of its own (error_log at info, the
# access log in the default combined format, both in $dir/logs); "env":
# more render-conf.pl settings, "name": the folder under the work dir.
# Returns {port, dir}, or dies.
sub gw_shipped {
    my (%o) = @_;
    my $dir = Test::TruePort::work_dir() . '/' . ($o{name} // 'shipped');
    my $port = Test::TruePort::free_port();
    my $mock = "127.0.0.1:$ENV{TEST_NGINX_MOCK_PORT}";
    make_path("$dir/conf", "$dir/logs", "$dir/tmp");

    {
        local %ENV = (%ENV,
            TRUEPORT_HTTP_LISTEN => "127.0.0.1:$port",
            TRUEPORT_SIDECAR_ADDR => '127.0.0.1:'
                                     . Test::TruePort::sidecar_port(),
            TRUEPORT_SIDECAR_INTERNAL_ADDR => '127.0.0.1:'
                              . Test::TruePort::sidecar_internal_port(),
            TRUEPORT_INTERNAL_TOKEN => Test::TruePort::internal_token(),
            TRUEPORT_OPENAI_UPSTREAM => "http://$mock/v1",
            TRUEPORT_ANTHROPIC_UPSTREAM => "http://$mock/v1/",
            TRUEPORT_GOOGLE_UPSTREAM => "http://$mock/v1beta",
            TRUEPORT_AZURE_UPSTREAM => "http://$mock",
            TRUEPORT_RESOLVER => '127.0.0.1',
            %{ $o{env} || {} });

        system("$ENV{TEST_NGINX_ROOT}/scripts/render-conf.pl", "$dir/conf")
            == 0 or die "gw_shipped: render-conf.pl failed\n";
    }

    my $module = $ENV{TP_MODULE}
                 // "$ENV{TEST_NGINX_ROOT}/build/ngx_http_trueport_module.so";
    open my $fh, '>', "$dir/nginx.conf" or die "gw_shipped: $!\n";
    print $fh <<"CONF";
load_module $module;
@{[ $> == 0 ? 'user root;' : '' ]}
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 256; }
http {
    access_log $dir/logs/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/conf/sidecar-upstream.conf;
    include $dir/conf/providers-upstream.conf;
    include $dir/conf/trueport.conf;
}
CONF
    close $fh;

    my $cmd = Test::TruePort::nginx_cmd();
    my $out = `$cmd -p $dir/ -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    die "gw_shipped: nginx did not start: $out\n" if $?;
    Test::TruePort::wait_port($port, 5)
        or die "gw_shipped: nginx does not listen on $port\n";

    my $s = { port => $port, dir => $dir };
    push @shipped, $s;
    return $s;
}


sub gw_shipped_stop {
    my ($s) = @_;
    @shipped = grep { $_ != $s } @shipped;
    open my $fh, '<', "$s->{dir}/nginx.pid" or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid;
    kill 'QUIT', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        select undef, undef, undef, 0.05;
    }
}

END {
    my $rc = $?;
    gw_shipped_stop($_) for @shipped;
    $? = $rc;
}

1;
