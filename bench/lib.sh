# Shared by bench/ingest.sh and bench/sidecar.sh: a throwaway folder with
# its own Postgres, migrated by the sidecar, and the sidecar's settings
# exported; everything stopped and removed at exit.
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

# bench_begin: WORK, PORT (Postgres), SC_PORT (sidecar), SC_INTERNAL_PORT
# (its /internal/ listener), the exit trap; the caller sets SC to the
# sidecar's pid once it runs
bench_begin() {
    WORK=$(mktemp -d /tmp/trueport-bench.XXXXXX)
    chmod 755 "$WORK"
    PORT=$(free_port)
    SC_PORT=$(free_port)
    SC_INTERNAL_PORT=$(free_port)
    SC=
    trap bench_cleanup EXIT
}

bench_cleanup() {
    [ -n "${SC:-}" ] && kill "$SC" 2>/dev/null && wait "$SC" 2>/dev/null
    "$ROOT/scripts/pg.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

# bench_db [PREFIX...]: Postgres started (under PREFIX, e.g. taskset),
# database "bench" migrated, PSQL=(psql ... bench), TRUEPORT_* exported
bench_db() {
    "$@" "$ROOT/scripts/pg.sh" init "$WORK/pg" "$PORT"
    PSQL=(psql -h "$WORK/pg/sock" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
    "${PSQL[@]}" -c "CREATE DATABASE bench"
    PSQL+=(bench)
    export TRUEPORT_DATABASE_URL="host=$WORK/pg/sock port=$PORT user=postgres dbname=bench"
    export TRUEPORT_JWT_SECRET=bench-secret-0123456789abcdef0123456789
    export TRUEPORT_MASTER_KEY=$(rand_hex 32) TRUEPORT_MIGRATIONS=$ROOT/migrations
    export TRUEPORT_LISTEN=127.0.0.1:$SC_PORT TRUEPORT_LOG_LEVEL=warn
    export TRUEPORT_INTERNAL_LISTEN=127.0.0.1:$SC_INTERNAL_PORT
    export TRUEPORT_INTERNAL_TOKEN=$(rand_hex 16)
    "$BUILD/trueport-sidecar" migrate >/dev/null
}

# bench_nginx_stop DIR: the nginx of DIR stopped (TERM, up to 10 s, then
# KILL)
bench_nginx_stop() {
    local pid i
    [ -f "$1/nginx.pid" ] || return 0
    pid=$(cat "$1/nginx.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$1/nginx.pid"
}

# bench_nginx NAME MODULE HTTP_LINES SERVER_LINES: one worker's nginx in
# $WORK/NAME (under "${SRV[@]}", the caller's CPU prefix), error log at
# ${BENCH_NGINX_LOG:-warn}
bench_nginx() {
    local d=$WORK/$1
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<CONF
${2:+load_module $2;}
$([ "$(id -u)" -eq 0 ] && echo "user root;")
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log ${BENCH_NGINX_LOG:-warn};
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/json;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 10000000;
$3
    server {
$4
    }
}
CONF
    "${SRV[@]}" "$NGINX_BIN" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" \
        || { tail "$d/error.log"; exit 1; }
}
