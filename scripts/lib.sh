# Shared by stack.sh and test.sh: paths, free ports, secrets, waiting.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                      LocalPort => 0, ReuseAddr => 1) or die;
        print $s->sockport, "\n";'
}

wait_port() {    # wait_port PORT SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# nginx main config around the rendered conf.d files
write_nginx_conf() {    # write_nginx_conf PREFIX CONFDIR
    local prefix=$1 confdir=$2
    mkdir -p "$prefix/logs" "$prefix/tmp"
    cat >"$prefix/nginx.conf" <<CONF
load_module $BUILD/ngx_http_trueport_module.so;
user root;
worker_processes auto;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log info;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    access_log $prefix/logs/access.log;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    sendfile on;
    keepalive_timeout 65;
    include $confdir/sidecar-upstream.conf;
    include $confdir/providers-upstream.conf;
    include $confdir/trueport.conf;
}
CONF
}

# server_ticks SIDECAR_PID PG_DIR: the CPU ticks (utime + stime) used so far
# by the sidecar and every process of the Postgres cluster in PG_DIR
server_ticks() {
    local pm p
    pm=$(head -1 "$2/data/postmaster.pid")
    for p in "$1" "$pm" $(ps -o pid= --ppid "$pm"); do
        cat "/proc/$p/stat" 2>/dev/null
    done | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
