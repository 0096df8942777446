#!/bin/sh
# Container entrypoint: migrate, start the sidecar, run nginx in the
# foreground; if either process dies the container stops.
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

trueport-sidecar serve &
sidecar=$!
nginx -g 'daemon off;' &
nginx=$!

trap 'kill -TERM $sidecar $nginx 2>/dev/null' TERM INT
# whichever exits first takes the other down
while kill -0 $sidecar 2>/dev/null && kill -0 $nginx 2>/dev/null; do
    sleep 1
done
kill -TERM $sidecar $nginx 2>/dev/null || true
wait
