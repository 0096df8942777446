#!/usr/bin/env bash
# make run / make stop: the whole stack on 127.0.0.1:8080 with its state in
# run/ (Postgres data, secrets, logs).  Ctrl-C stops everything; with
# TRUEPORT_DETACH=1 it returns and `make stop` stops it later.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${TRUEPORT_RUN_DIR:-$ROOT/run}
PG_PORT=${TRUEPORT_PG_PORT:-15432}
HTTP_LISTEN=${TRUEPORT_HTTP_LISTEN:-127.0.0.1:8080}
SIDECAR_ADDR=${TRUEPORT_SIDECAR_ADDR:-127.0.0.1:8081}
SIDECAR_INTERNAL_ADDR=${TRUEPORT_SIDECAR_INTERNAL_ADDR:-127.0.0.1:8082}

# Postgres runs as the postgres user, which must reach its folder: when the
# project sits under a private home, keep the cluster in /var/tmp instead.
pg_dir() {
    local d=$RUN
    while [ "$d" != / ]; do
        d=$(dirname "$d")
        if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
            echo "/var/tmp/trueport-pg-$(echo "$ROOT" | md5sum | cut -c1-12)"
            return
        fi
    done
    echo "$RUN/pg"
}

stop_all() {
    local pgd
    pgd=$(pg_dir)
    if [ -f "$RUN/nginx/nginx.pid" ]; then
        "$NGINX_BIN" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -s quit \
            2>/dev/null || true
    fi
    if [ -f "$RUN/sidecar.pid" ]; then
        kill -TERM "$(cat "$RUN/sidecar.pid")" 2>/dev/null || true
        rm -f "$RUN/sidecar.pid"
    fi
    "$ROOT/scripts/pg.sh" stop "$pgd" 2>/dev/null || true
    echo "trueport: stopped"
}

start_all() {
    local pgd dsn
    mkdir -p "$RUN/logs"
    chmod 755 "$RUN"
    pgd=$(pg_dir)

    if [ ! -f "$pgd/data/PG_VERSION" ]; then
        echo "trueport: creating Postgres in $pgd"
        mkdir -p "$pgd"
        "$ROOT/scripts/pg.sh" init "$pgd" "$PG_PORT"
    elif ! "$ROOT/scripts/pg.sh" status "$pgd"; then
        "$ROOT/scripts/pg.sh" start "$pgd"
    fi
    psql -h "$pgd/sock" -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'trueport'" | grep -q 1 \
        || psql -h "$pgd/sock" -p "$PG_PORT" -U postgres -qc \
            "CREATE DATABASE trueport"

    # secrets are made once and kept, so tokens survive a restart
    if [ ! -f "$RUN/secrets.env" ]; then
        umask 077
        cat >"$RUN/secrets.env" <<S
TRUEPORT_JWT_SECRET=$(rand_hex 32)
TRUEPORT_MASTER_KEY=$(rand_hex 32)
TRUEPORT_INTERNAL_TOKEN=$(rand_hex 16)
S
        umask 022
    fi
    set -a
    . "$RUN/secrets.env"
    set +a

    dsn="host=$pgd/sock port=$PG_PORT user=postgres dbname=trueport"
    export TRUEPORT_DATABASE_URL=$dsn TRUEPORT_LISTEN=$SIDECAR_ADDR \
        TRUEPORT_INTERNAL_LISTEN=$SIDECAR_INTERNAL_ADDR \
        TRUEPORT_MIGRATIONS=$ROOT/migrations \
        TRUEPORT_DEV_MODE=${TRUEPORT_DEV_MODE:-1} \
        TRUEPORT_SPOOL_DIR=$RUN/spool
    "$BUILD/trueport-sidecar" migrate

    # its own session: Ctrl-C reaches this script, which stops things in order
    setsid "$BUILD/trueport-sidecar" serve >>"$RUN/logs/sidecar.log" 2>&1 &
    echo $! >"$RUN/sidecar.pid"
    wait_port "${SIDECAR_ADDR##*:}" 10 \
        || { tail "$RUN/logs/sidecar.log"; stop_all; exit 1; }

    TRUEPORT_HTTP_LISTEN=$HTTP_LISTEN TRUEPORT_SIDECAR_ADDR=$SIDECAR_ADDR \
        TRUEPORT_SIDECAR_INTERNAL_ADDR=$SIDECAR_INTERNAL_ADDR \
        "$ROOT/scripts/render-conf.pl" "$RUN/nginx/conf"
    write_nginx_conf "$RUN/nginx" "$RUN/nginx/conf"
    "$NGINX_BIN" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" \
        -e "$RUN/nginx/logs/error.log" \
        || { tail "$RUN/nginx/logs/error.log"; stop_all; exit 1; }

    cat <<MSG
trueport: running
  platform API   http://$HTTP_LISTEN/platform/api/
  management API http://$HTTP_LISTEN/trueportai-services/api/v1/
  gateway        http://$HTTP_LISTEN/trueportai-services/{openai,anthropic,google,azure}/...
  health         http://$HTTP_LISTEN/health
                 http://$HTTP_LISTEN/trueportai-services/health
  logs           $RUN/logs/sidecar.log, $RUN/nginx/logs/error.log
MSG
}

case "${1:-run}" in
run)
    # a leftover detached stack is stopped first
    [ -f "$RUN/sidecar.pid" ] && stop_all >/dev/null
    start_all
    if [ "${TRUEPORT_DETACH:-0}" = 1 ]; then
        echo "trueport: detached; 'make stop' stops it"
        exit 0
    fi
    trap 'stop_all; exit 0' INT TERM
    echo "trueport: Ctrl-C stops everything"
    while kill -0 "$(cat "$RUN/sidecar.pid")" 2>/dev/null; do
        sleep 1
    done
    echo "trueport: the sidecar exited; see $RUN/logs/sidecar.log"
    stop_all
    exit 1
    ;;
stop)
    stop_all
    ;;
*)
    echo "usage: stack.sh run|stop" >&2
    exit 2
    ;;
esac
