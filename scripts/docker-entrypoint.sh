#!/bin/bash
# Container entrypoint: migrate, then nginx in the foreground and the
# sidecar under supervise.sh, which restarts it with back-off when it exits
# (cached keys keep being served meanwhile).  SIGTERM/SIGINT (docker stop)
# stops both; nginx exiting stops the container with a non-zero status.
set -eu

: "${TRUEPORT_DATABASE_URL:?set TRUEPORT_DATABASE_URL}"
: "${TRUEPORT_JWT_SECRET:?set TRUEPORT_JWT_SECRET}"
: "${TRUEPORT_MASTER_KEY:?set TRUEPORT_MASTER_KEY}"
export TRUEPORT_INTERNAL_TOKEN="${TRUEPORT_INTERNAL_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export TRUEPORT_SIDECAR_ADDR="$TRUEPORT_LISTEN"
export TRUEPORT_INTERNAL_LISTEN="${TRUEPORT_INTERNAL_LISTEN:-127.0.0.1:8082}"
export TRUEPORT_SIDECAR_INTERNAL_ADDR="$TRUEPORT_INTERNAL_LISTEN"
export TRUEPORT_SPOOL_DIR="${TRUEPORT_SPOOL_DIR:-/var/spool/trueport}"

trueport-sidecar migrate

TRUEPORT_CONF_SRC=/usr/share/trueport/conf.d render-conf.pl /etc/nginx/trueport
cat > /etc/nginx/nginx.conf <<CONF
load_module /usr/lib/nginx/modules/ngx_http_trueport_module.so;
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 4096; }
http {
    access_log /dev/stdout;
    include /etc/nginx/trueport/*-upstream.conf;
    include /etc/nginx/trueport/trueport.conf;
}
CONF
cd /usr/share/trueport

supervise.sh -- trueport-sidecar serve &
sup=$!
nginx -g 'daemon off;' &
nginx=$!

stopping=0
trap 'stopping=1; kill -TERM $sup $nginx 2>/dev/null' TERM INT
set +e
# whichever ends first, or a signal
wait -n -p ended "$sup" "$nginx"
rc=$?
if [ "$stopping" = 0 ]; then
    if [ "${ended:-}" = "$nginx" ]; then
        echo "trueport: nginx exited with status $rc; stopping" >&2
    else
        echo "trueport: the sidecar's supervisor exited with status $rc;" \
             "stopping" >&2
    fi
    [ "$rc" = 0 ] && rc=1
    kill -TERM "$sup" "$nginx" 2>/dev/null
else
    rc=0
fi
# until both are gone (a second signal ends wait early)
until wait; do :; done
exit "$rc"
