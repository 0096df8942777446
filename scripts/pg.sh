#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in a folder of ours, run as the postgres
# user (initdb refuses root).  Usage:
#   scripts/pg.sh init  DIR PORT    initdb + start + createdb trueport
#   scripts/pg.sh start DIR | stop DIR | status DIR
# The socket lives in DIR/sock; the server also listens on 127.0.0.1:PORT.
set -euo pipefail

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
cmd=${1:?usage: pg.sh init|start|stop|status DIR [PORT]}
dir=$(realpath -m "${2:?DIR}")

as_pg() {
    # from /: the postgres user may not be able to enter the caller's cwd
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

case "$cmd" in
init)
    port=${3:?PORT}
    mkdir -p "$dir/sock"
    # the postgres user must reach the folder through every parent
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
log_min_messages = warning
CONF
    "$0" start "$dir"
    ;;
start)
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        start >/dev/null
    ;;
stop)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    ;;
status)
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null
    ;;
*)
    echo "usage: pg.sh init|start|stop|status DIR [PORT]" >&2
    exit 2
    ;;
esac
