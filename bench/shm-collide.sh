#!/usr/bin/env bash
# Issue 12, finding 3: keys computed offline to share one bucket of the
# key cache.  BENCH_COLLIDE_KEYS (20000) keys that all land in the bucket
# of a real key under the unkeyed scheme of before (the first bytes of
# SHA-256, build/tools/shm-collide; cached in build/bench/), sent as
# unknown keys so that each becomes an entry of the zone; then the real
# key's cost, with wrk on BENCH_CONNECTIONS (4) connections for
# BENCH_SECONDS (10) per phase:
#   empty    the real key alone in the zone
#   loaded   the 20,000 entries in the zone, nothing else running
#   attack   the same while a second wrk (4 connections) keeps sending
#            the colliding keys (negative hits), the attack as it runs
# Per phase: the known key's requests/s and p50/p99 latency, the nginx
# worker's CPU per request it served (in "attack", the attack's too); the
# bound of issue 12 (2x) is judged on loaded/empty, p50 and CPU.  Under
# attack the known key shares the one worker with the attack's requests,
# so its latency rises with any flood: the CPU per request served is what
# tells a chain walk from plain load there.
#
# The gateway takes the entries the attack needs: trueport_key_miss_limit
# off and trueport_zone negative= above their number, so that what is
# measured is the hashing and not the limits (with the defaults one
# address gets 20 lookups a minute and at most a quarter of the zone).
# BENCH_BASE=<git revision>: the module of that commit is built in the
# throwaway folder and measured the same way first (for the unkeyed
# scheme: e.g. the commit before the keyed one), without the directives
# it does not know.
#
#   make bench-shm                        (or bench/shm-collide.sh)
#   BENCH_BASE=3f756b8 make bench-shm
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export NKEYS=${BENCH_COLLIDE_KEYS:-20000}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-4}
BASE=${BENCH_BASE:-}
# 8 MB: 16384 buckets (one per 512 bytes, a power of two) and room for
# the 20,000 entries of 256 bytes
ZONE_MB=8
BITS=14

for t in wrk taskset "$NGINX_BIN" "$BUILD/trueport-sidecar" \
         "$BUILD/ngx_http_trueport_module.so" "$BUILD/tools/shm-collide"; do
    command -v "$t" >/dev/null || [ -x "$t" ] || [ -f "$t" ] \
        || { echo "bench: $t is missing (make module sidecar bench-shm)" >&2; exit 1; }
done

NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
    SRV=(taskset -c 0-$((NCPU - 2)))
    LOAD=(taskset -c $((NCPU - 1)))
else
    SRV=() LOAD=()
fi

KEYS=$BUILD/bench/collide-$BITS-$((NKEYS + 1)).txt
if [ ! -s "$KEYS" ]; then
    mkdir -p "$BUILD/bench"
    echo "bench: computing $((NKEYS + 1)) keys for one bucket of $((1 << BITS))" \
         "(once, kept in $KEYS)"
    "$BUILD/tools/shm-collide" $((NKEYS + 1)) "$BITS" >"$KEYS.tmp"
    mv "$KEYS.tmp" "$KEYS"
fi

bench_begin
MOCK_PORT=$(free_port)
GW_PORT=$(free_port)

trap 'bench_nginx_stop "$WORK/gw"; bench_nginx_stop "$WORK/mock"; bench_cleanup' EXIT

bench_db "${SRV[@]}"
export TRUEPORT_INTERNAL_TOKEN=$(rand_hex 16) TRUEPORT_SPOOL_DIR=$WORK/spool
mkdir -p "$WORK/spool"

head -1 "$KEYS" >"$WORK/keys-known"
tail -n +2 "$KEYS" >"$WORK/keys-attack"

"${PSQL[@]}" <<SQL >/dev/null
INSERT INTO plans (id, name, default_rpm, max_keys, monthly_requests,
                   log_retention_days, price_cents, max_rpm,
                   default_credentials)
    VALUES ('bench', 'Bench', 100000000, 10, 0, 1, 0, 100000000, true);
WITH u AS (INSERT INTO users (email, name, password_hash)
           VALUES ('bench@example.com', 'Bench', 'x') RETURNING id),
     t AS (INSERT INTO tenants (name, slug, status, created_by)
           SELECT 'Bench', 'bench', 'active', id FROM u RETURNING id),
     s AS (INSERT INTO subscriptions (tenant_id, plan_id)
           SELECT id, 'bench' FROM t)
INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env, rpm, created_by)
SELECT t.id, 'known', substr('$(cat "$WORK/keys-known")', 1, 8),
       encode(sha256('$(cat "$WORK/keys-known")'::bytea), 'hex'),
       'production', 100000000, u.id FROM t, u;
SQL

"${SRV[@]}" "$BUILD/trueport-sidecar" serve >"$WORK/sidecar.log" 2>&1 &
SC=$!
wait_port "$SC_PORT" 10 || { tail "$WORK/sidecar.log"; exit 1; }

RESPONSE='{"id":"chatcmpl-bench","object":"chat.completion","created":1764180000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}\n' \
    >"$WORK/body.json"

bench_nginx mock "" "" "        listen 127.0.0.1:$MOCK_PORT;
        location / { return 200 '$RESPONSE'; }"
wait_port "$MOCK_PORT" 10

gateway() {    # gateway MODULE NEW(0|1)
    local extra= hash=
    local zone="trueport_zone zone=bench:${ZONE_MB}m;"
    if [ "$2" = 1 ]; then
        # the key's hash in a header (an older module sends it as ?hash=)
        hash="proxy_set_header X-TruePort-Key-Hash \$trueport_key_hash;"
        zone="trueport_zone zone=bench:${ZONE_MB}m negative=$((NKEYS + 100));"
        extra="trueport_key_miss_limit off;"
    fi
    bench_nginx gw "$1" "
    $zone
    $extra
    trueport_cache_refresh 10m;
    trueport_cache_valid 20m;
    trueport_cache_negative 20m;
    upstream trueport_sidecar_internal {
        server 127.0.0.1:$SC_INTERNAL_PORT;
        keepalive 16;
    }
    upstream bench_mock { server 127.0.0.1:$MOCK_PORT; keepalive 16; }" "
        listen 127.0.0.1:$GW_PORT;
        trueport_resolve_location /_trueport/resolve;
        location = /_trueport/resolve {
            internal;
            proxy_pass http://trueport_sidecar_internal/internal/v1/keys/resolve\$is_args\$args;
            proxy_pass_request_body off;
            proxy_pass_request_headers off;
            proxy_http_version 1.1;
            proxy_set_header Content-Length \"\";
            proxy_set_header Connection \"\";
            proxy_set_header X-TruePort-Internal-Token \"$TRUEPORT_INTERNAL_TOKEN\";
            $hash
            proxy_read_timeout 10s;
        }
        location = /health { trueport_health; }
        location /trueportai-services/openai/v1/ {
            trueport_gateway openai;
            trueport_upstream http://bench_mock/v1;
            trueport_upstream_key sk-bench-upstream;
            include $ROOT/conf.d/trueport-proxy.conf;
        }"
    wait_port "$GW_PORT" 10 || { tail "$WORK/gw/error.log"; exit 1; }
}

# the worker's CPU ticks (utime + stime) so far
worker_ticks() {
    local w
    for w in $(ps -o pid= --ppid "$(cat "$WORK/gw/nginx.pid")"); do
        cat "/proc/$w/stat"
    done | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

wrk_run() {    # wrk_run OUT KEYS CONNS SECONDS [seq OFFSET]
    local out=$1 keys=$2 c=$3 s=$4
    shift 4
    "${LOAD[@]}" wrk -t1 -c"$c" -d"${s}s" --latency -s "$ROOT/bench/chat.lua" \
        "http://127.0.0.1:$GW_PORT" -- "$WORK/body.json" "$keys" "$@" \
        >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
}

HZ=$(getconf CLK_TCK)

# phase NAME LABEL [attack]: the known key for SECS (with "attack", the
# colliding keys on 4 more connections meanwhile); prints "name rps p50
# p99 cpu_us", the worker's CPU per request over every request it served
phase() {
    local t0 t1 att= out=$WORK/$1-$2.txt
    t0=$(worker_ticks)
    if [ "${3:-}" = attack ]; then
        wrk_run "$WORK/$1-$2-attack.txt" "$WORK/keys-attack" 4 "$SECS" &
        att=$!
    fi
    wrk_run "$out" "$WORK/keys-known" "$CONNS" "$SECS"
    [ -n "$att" ] && wait "$att"
    t1=$(worker_ticks)
    perl -e '
        my ($f, $fa, $ticks, $hz, $name) = @ARGV;
        my %u = (us => 1, ms => 1e3, s => 1e6);
        my (%r, $na);
        open my $fh, "<", $f or die;
        while (<$fh>) {
            $r{n} = $1 if /^\s*(\d+) requests in/;
            $r{rps} = $1 if /^Requests\/sec:\s+([\d.]+)/;
            $r{"p$1"} = $2 * $u{$3} if /^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$/;
            $r{bad} = $1 if /Non-2xx or 3xx responses:\s+(\d+)/;
        }
        die "$f: errors: $r{bad}\n" if $r{bad};
        $na = 0;
        if (open my $fa_h, "<", $fa) {
            while (<$fa_h>) { $na = $1 if /^\s*(\d+) requests in/ }
        }
        printf "%s %.0f %.0f %.0f %.1f\n", $name, $r{rps}, $r{p50}, $r{p99},
            $r{n} + $na ? $ticks * 1e6 / $hz / ($r{n} + $na) : 0;
    ' "$out" "$WORK/$1-$2-attack.txt" "$((t1 - t0))" "$HZ" "$1"
}

# measure LABEL MODULE NEW: the three phases of one module
measure() {
    local label=$1 entries i off n res=() line
    echo "bench: $label: starting the gateway"
    gateway "$2" "$3"
    # the known key first: the oldest entry of its chain, at its tail
    wrk_run "$WORK/warm.txt" "$WORK/keys-known" 1 1
    res+=("$(phase empty "$label")")
    echo "bench: $label: loading $NKEYS colliding unknown keys"
    off=0
    for ((i = 0; i < 100 && off < NKEYS; i++)); do
        wrk_run "$WORK/load.txt" "$WORK/keys-attack" 8 5 seq "$off"
        n=$(sed -n 's/^completed //p' "$WORK/load.txt")
        off=$((off + n))
    done
    # a second pass: the few keys a cut-off run did not send
    wrk_run "$WORK/load.txt" "$WORK/keys-attack" 8 2 seq 0
    entries=$(curl -s "http://127.0.0.1:$GW_PORT/health" \
              | perl -ne 'print $1 if /"entries":(\d+)/')
    echo "bench: $label: the zone holds $entries entries"
    [ "${entries:-0}" -gt "$NKEYS" ] \
        || { echo "bench: the colliding keys are not all in the zone" >&2; exit 1; }
    res+=("$(phase loaded "$label")")
    # the attack as it runs: the colliding keys sent on 4 more connections
    res+=("$(phase attack "$label" attack)")
    bench_nginx_stop "$WORK/gw"
    if grep -q '\[alert\]\|\[emerg\]' "$WORK/gw/error.log"; then
        grep '\[alert\]\|\[emerg\]' "$WORK/gw/error.log" | sort | uniq -c | head -5 >&2
    fi
    : >"$WORK/gw/error.log"
    printf '%s\n' "${res[@]}" | perl -ne '
        BEGIN { $l = shift }
        my ($p, $rps, $p50, $p99, $cpu) = split;
        $e{$p} = [$rps, $p50, $p99, $cpu];
        printf "bench: %s %-6s %6d req/s  p50 %6d us  p99 %6d us  worker CPU %7.1f us/request\n",
            $l, $p, $rps, $p50, $p99, $cpu;
        END {
            my ($b, $x, $a) = @e{qw(empty loaded attack)};
            # the bound of issue 12: the known key with the keys in the zone
            printf "summary: %s: known key with %s colliding entries / without:"
                . " p50 %.2fx, worker CPU per request %.2fx (bound 2x: %s);"
                . " under attack: p50 %.2fx, CPU per request served %.2fx\n",
                $l, $ENV{NKEYS}, $x->[1] / $b->[1], $x->[3] / $b->[3],
                ($x->[1] / $b->[1] <= 2 && $x->[3] / $b->[3] <= 2) ? "ok" : "EXCEEDED",
                $a->[1] / $b->[1], $a->[3] / $b->[3];
        }' "$label" | tee -a "$WORK/summary.txt"
}

if [ -n "$BASE" ]; then
    echo "bench: building the module of $BASE (the unkeyed scheme)"
    mkdir -p "$WORK/base"
    git -C "$ROOT" archive "$BASE" | tar -x -C "$WORK/base"
    TRUEPORT_BUILD="$WORK/base/build" "$WORK/base/scripts/build-module.sh" \
        >"$WORK/base-build.log" 2>&1 \
        || { tail -20 "$WORK/base-build.log" >&2; exit 1; }
    measure "base($BASE)" "$WORK/base/build/ngx_http_trueport_module.so" 0
fi
measure keyed "$BUILD/ngx_http_trueport_module.so" 1

echo
echo "bench: shm-collide, $NKEYS keys in one unkeyed bucket of $((1 << BITS))," \
     "$CONNS connections, ${SECS} s per phase"
grep '^summary' "$WORK/summary.txt"
