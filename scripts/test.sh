#!/usr/bin/env bash
# make test: a throwaway Postgres (migrated once into a template database),
# every test under t/ (Test::Nginx-style files and the C unit tests), then
# teardown.  The last line is "N passed, M failed".  TP_KEEP=1 keeps the
# work folder; TP_TESTS="t/001-health.t ..." runs a subset; TP_VERBOSE=1
# prints every assertion.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

WORK=$(mktemp -d /tmp/trueport-test.XXXXXX)
chmod 755 "$WORK"
PG_PORT=$(free_port)

cleanup() {
    "$ROOT/scripts/pg.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
    if [ "${TP_KEEP:-0}" = 1 ]; then
        echo "test: work folder kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

"$ROOT/scripts/pg.sh" init "$WORK/pg" "$PG_PORT"

export TP_ROOT=$ROOT TP_BUILD=$BUILD TP_NGINX=$NGINX_BIN
export TP_MODULE=${TP_MODULE:-$BUILD/ngx_http_trueport_module.so}
export TP_SIDECAR=${TP_SIDECAR:-$BUILD/trueport-sidecar}
export TP_WORK=$WORK
export TP_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
export TP_PG_DATA=$WORK/pg/data TP_PG_HOST=$WORK/pg/sock TP_PG_PORT=$PG_PORT
export TP_PG_USER=postgres TP_PG_TEMPLATE=trueport_template

psql -h "$TP_PG_HOST" -p "$PG_PORT" -U postgres -qc \
    "CREATE DATABASE $TP_PG_TEMPLATE"
TRUEPORT_DATABASE_URL="host=$TP_PG_HOST port=$PG_PORT user=postgres dbname=$TP_PG_TEMPLATE" \
TRUEPORT_JWT_SECRET=migrate-only-secret-0123456789abcdef0123 \
TRUEPORT_MASTER_KEY=$(rand_hex 32) TRUEPORT_MIGRATIONS=$ROOT/migrations \
TRUEPORT_LOG_LEVEL=warn \
    "$TP_SIDECAR" migrate >/dev/null

cd "$ROOT"
set +e
# shellcheck disable=SC2086
perl scripts/prove-summary.pl ${TP_TESTS:-t/}
rc=$?
set -e
exit $rc
