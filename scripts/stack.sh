#!/usr/bin/env bash
# make run / make stop: the whole stack on 127.0.0.1:8080 with its state in
# run/ (Postgres data, secrets, logs).  Ctrl-C stops everything; with
# TRUEPORT_DETACH=1 it returns and `make stop` stops it later.  The sidecar
# runs under scripts/supervise.sh, which restarts it with back-off when it
# exits, so nginx goes on serving cached keys meanwhile; nginx exiting stops
# the stack.  TRUEPORT_DATABASE_URL names an existing database to use
# instead of the project-local Postgres.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${TRUEPORT_RUN_DIR:-$ROOT/run}
PG_PORT=${TRUEPORT_PG_PORT:-15432}
HTTP_LISTEN=${TRUEPORT_HTTP_LISTEN:-127.0.0.1:8080}
SIDECAR_ADDR=${TRUEPORT_SIDECAR_ADDR:-127.0.0.1:8081}
SIDECAR_INTERNAL_ADDR=${TRUEPORT_SIDECAR_INTERNAL_ADDR:-127.0.0.1:8082}
# an existing database, or "" for the project-local Postgres
DATABASE_URL=${TRUEPORT_DATABASE_URL:-}

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

# stops what a run of this script started, from this or any other shell
stop_all() {
    local sup i
    # the supervisor's pid file goes first: the foreground loop below takes
    # its absence for a clean stop
    sup=$(cat "$RUN/supervisor.pid" 2>/dev/null || true)
    rm -f "$RUN/supervisor.pid"
    if [ -f "$RUN/nginx/nginx.pid" ]; then
        "$NGINX_BIN" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -s quit \
            2>/dev/null || true
    fi
    if [ -n "$sup" ] && kill -TERM "$sup" 2>/dev/null; then
        # it stops the sidecar (SIGKILL after 10 s) before it exits
        for ((i = 0; i < 150; i++)); do
            kill -0 "$sup" 2>/dev/null || break
            sleep 0.1
        done
    fi
    # a sidecar whose supervisor was killed
    if [ -f "$RUN/sidecar.pid" ]; then
        kill -TERM "$(cat "$RUN/sidecar.pid")" 2>/dev/null || true
        rm -f "$RUN/sidecar.pid"
    fi
    [ -n "$DATABASE_URL" ] || "$ROOT/scripts/pg.sh" stop "$(pg_dir)" \
        2>/dev/null || true
    echo "trueport: stopped"
}

start_all() {
    local pgd dsn=$DATABASE_URL
    mkdir -p "$RUN/logs"
    chmod 755 "$RUN"

    if [ -z "$dsn" ]; then
        pgd=$(pg_dir)
        if [ ! -f "$pgd/data/PG_VERSION" ]; then
            echo "trueport: creating Postgres in $pgd"
            mkdir -p "$pgd"
            "$ROOT/scripts/pg.sh" init "$pgd" "$PG_PORT"
        elif ! "$ROOT/scripts/pg.sh" status "$pgd"; then
            "$ROOT/scripts/pg.sh" start "$pgd"
        fi
        psql -h "$pgd/sock" -p "$PG_PORT" -U postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'trueport'" \
            | grep -q 1 \
            || psql -h "$pgd/sock" -p "$PG_PORT" -U postgres -qc \
                "CREATE DATABASE trueport"
        dsn="host=$pgd/sock port=$PG_PORT user=postgres dbname=trueport"
    fi

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

    export TRUEPORT_DATABASE_URL=$dsn TRUEPORT_LISTEN=$SIDECAR_ADDR \
        TRUEPORT_INTERNAL_LISTEN=$SIDECAR_INTERNAL_ADDR \
        TRUEPORT_MIGRATIONS=$ROOT/migrations \
        TRUEPORT_DEV_MODE=${TRUEPORT_DEV_MODE:-1} \
        TRUEPORT_SPOOL_DIR=$RUN/spool
    "$BUILD/trueport-sidecar" migrate

    # its own session: Ctrl-C reaches this script, which stops things in
    # order; the supervisor logs the sidecar's exits and restarts beside
    # the sidecar's own lines
    setsid "$ROOT/scripts/supervise.sh" --child-pidfile "$RUN/sidecar.pid" \
        -- "$BUILD/trueport-sidecar" serve >>"$RUN/logs/sidecar.log" 2>&1 &
    echo $! >"$RUN/supervisor.pid"
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
    if [ -f "$RUN/supervisor.pid" ] || [ -f "$RUN/sidecar.pid" ]; then
        stop_all >/dev/null
    fi
    # Ctrl-C while starting stops what has started
    trap 'stop_all; exit 130' INT TERM
    start_all
    if [ "${TRUEPORT_DETACH:-0}" = 1 ]; then
        echo "trueport: detached; 'make stop' stops it"
        exit 0
    fi
    trap 'stop_all; exit 0' INT TERM
    echo "trueport: Ctrl-C stops everything"
    nginx_pid=$(cat "$RUN/nginx/nginx.pid")
    sup_pid=$(cat "$RUN/supervisor.pid")
    # the sidecar may come and go (its supervisor restarts it); nginx or
    # the supervisor gone means the stack is down, the supervisor's pid
    # file gone that `make stop` stopped it
    while [ -f "$RUN/supervisor.pid" ]; do
        down=
        kill -0 "$nginx_pid" 2>/dev/null \
            || down="nginx exited; see $RUN/nginx/logs/error.log"
        kill -0 "$sup_pid" 2>/dev/null \
            || down="the sidecar's supervisor exited"
        if [ -n "$down" ] && [ -f "$RUN/supervisor.pid" ]; then
            echo "trueport: $down" >&2
            stop_all
            exit 1
        fi
        # in the background, so that Ctrl-C is handled at once
        sleep 1 &
        wait $! || true
    done
    exit 0
    ;;
stop)
    stop_all
    ;;
*)
    echo "usage: stack.sh run|stop" >&2
    exit 2
    ;;
esac
