#!/usr/bin/env bash
# Issue 13, finding 2: a worker's memory with BENCH_TENANTS (500) tenants'
# rule sets loaded.  Every tenant has a key and a rule set, inserted
# straight into the database; one request per tenant (a body the rules
# apply to) makes the one nginx worker load and compile that tenant's set.
# The worker's RSS is read before and after, per phase:
#   typical   a set of three rules (pii redact, 20 keywords, two regexes)
#   maximal   what the sidecar lets a tenant write: four keyword rules of
#             600 random words (~0.9 MB compiled each, ~3.6 MB a set)
#   unbounded the maximal sets with trueport_policy_cache 16384m: what a
#             worker held before the cache had a bound
# Also: the worker's CPU per load (the subrequest, the compilation and the
# request; the sidecar runs on the other core).
#
#   make bench-policy                     (or bench/policy-rss.sh)
#   BENCH_TENANTS=200 BENCH_POLICY_CACHE=32m bench/policy-rss.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NT=${BENCH_TENANTS:-500}
CACHE=${BENCH_POLICY_CACHE:-64m}

for t in curl taskset "$NGINX_BIN" "$BUILD/trueport-sidecar" \
         "$BUILD/ngx_http_trueport_module.so"; do
    command -v "$t" >/dev/null || [ -x "$t" ] || [ -f "$t" ] \
        || { echo "bench: $t is missing (make module sidecar)" >&2; exit 1; }
done

NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
    SRV=(taskset -c 0-$((NCPU - 2)))
    SIDE=(taskset -c $((NCPU - 1)))
else
    SRV=() SIDE=()
fi

bench_begin
export BENCH_NGINX_LOG=info    # the loads are counted in it
MOCK_PORT=$(free_port)
GW_PORT=$(free_port)

trap 'bench_nginx_stop "$WORK/gw"; bench_nginx_stop "$WORK/mock"; bench_cleanup' EXIT

bench_db "${SIDE[@]}"
mkdir -p "$WORK/spool"
export TRUEPORT_SPOOL_DIR=$WORK/spool

echo "bench: $NT tenants with a key each, and two rule sets each"
# kind 'typical' and 'maximal' rules for every tenant; a phase enables
# one kind (UPDATE ... enabled), which moves each tenant's revision
"${PSQL[@]}" <<SQL >/dev/null
INSERT INTO plans (id, name, default_rpm, max_keys, monthly_requests,
                   log_retention_days, price_cents, max_rpm,
                   default_credentials)
    VALUES ('bench', 'Bench', 100000000, 10, 0, 1, 0, 100000000, true);
INSERT INTO users (email, name, password_hash)
    VALUES ('bench@example.com', 'Bench', 'x');
INSERT INTO tenants (name, slug, status, created_by)
    SELECT 'Bench ' || i, 'bench-' || i, 'active', u.id
    FROM generate_series(1, $NT) i, users u;
INSERT INTO subscriptions (tenant_id, plan_id)
    SELECT id, 'bench' FROM tenants;
INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env, rpm, created_by)
    SELECT t.id, 'k', 'sk-bench',
           encode(sha256(('sk-bench-' || t.slug)::bytea), 'hex'),
           'production', 100000000, t.created_by
    FROM tenants t;
CREATE TEMP TABLE words AS
    SELECT r, jsonb_agg(w) AS list FROM (
        SELECT r, (SELECT string_agg(substr('abcdefghijklmnopqrstuvwxyz0123456789',
                                            1 + floor(random() * 36)::int, 1), '')
                   FROM generate_series(1, 10 + 0 * i)) AS w
        FROM generate_series(1, 4) r, generate_series(1, 600) i) x
    GROUP BY r;
INSERT INTO policies (tenant_id, name, type, config, action, enabled, priority)
    SELECT t.id, v.name, v.type, v.config::jsonb, v.action, false, v.prio
    FROM tenants t, (VALUES
        ('typical pii', 'pii', '{"detectors": ["email", "phone", "credit_card"]}', 'redact', 1),
        ('typical words', 'keywords', '{"keywords": ["falcon", "osprey", "kestrel",
            "harrier", "merlin", "hobby", "condor", "vulture", "eagle", "buzzard",
            "kite", "hawk", "goshawk", "sparrowhawk", "owl", "barn owl", "tawny",
            "heron", "egret", "bittern"]}', 'block', 2),
        ('typical ids', 'regex', '{"patterns": ["(?i)ticket-\\\\d{6}", "\\\\bINV-[0-9]{4,8}\\\\b"]}', 'log', 3)
    ) AS v(name, type, config, action, prio);
INSERT INTO policies (tenant_id, name, type, config, action, enabled, priority)
    SELECT t.id, 'maximal ' || w.r, 'keywords',
           jsonb_build_object('keywords', w.list), 'log', false, 10 + w.r
    FROM tenants t, words w;
SQL

"${SIDE[@]}" "$BUILD/trueport-sidecar" serve >"$WORK/sidecar.log" 2>&1 &
SC=$!
wait_port "$SC_PORT" 10 || { tail "$WORK/sidecar.log"; exit 1; }

RESPONSE='{"id":"chatcmpl-bench","object":"chat.completion","created":1764180000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello, nothing to see here"}]}'

bench_nginx mock "" "" "        listen 127.0.0.1:$MOCK_PORT;
        location / { return 200 '$RESPONSE'; }"
wait_port "$MOCK_PORT" 10

internal() {    # the internal location of one of the sidecar's answers
    cat <<CONF
        location = /_trueport/$1 {
            internal;
            proxy_pass http://trueport_sidecar_internal/internal/v1/$2\$is_args\$args;
            proxy_pass_request_body off;
            proxy_pass_request_headers off;
            proxy_http_version 1.1;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_set_header X-TruePort-Internal-Token "$TRUEPORT_INTERNAL_TOKEN";
            proxy_set_header X-TruePort-Key-Hash \$trueport_key_hash;
            proxy_read_timeout 10s;
            subrequest_output_buffer_size 1m;
        }
CONF
}

gateway() {    # gateway CACHE
    bench_nginx gw "$BUILD/ngx_http_trueport_module.so" "
    trueport_zone zone=bench:8m;
    trueport_key_miss_limit off;
    trueport_spool $WORK/spool;
    trueport_policy_cache $1;
    upstream trueport_sidecar_internal {
        server 127.0.0.1:$SC_INTERNAL_PORT;
        keepalive 16;
    }
    upstream bench_mock { server 127.0.0.1:$MOCK_PORT; keepalive 16; }" "
        listen 127.0.0.1:$GW_PORT;
        trueport_resolve_location /_trueport/resolve;
        trueport_policy_location /_trueport/policies;
$(internal resolve keys/resolve)
$(internal policies policies)
        location /trueportai-services/openai/v1/ {
            trueport_gateway openai;
            trueport_upstream http://bench_mock/v1;
            trueport_upstream_key sk-bench-upstream;
            include $ROOT/conf.d/trueport-proxy.conf;
        }"
    wait_port "$GW_PORT" 10 || { tail "$WORK/gw/error.log"; exit 1; }
}

worker() { ps -o pid= --ppid "$(cat "$WORK/gw/nginx.pid")" | tr -d ' '; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$(worker)/status"; }
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$(worker)/stat"; }

# send ONE|ALL: a request of every tenant's key (or the first one's)
send() {
    local i n=$NT bad=0 code
    [ "$1" = one ] && n=1
    for ((i = 1; i <= n; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' \
               -H "Authorization: Bearer sk-bench-bench-$i" \
               -H 'Content-Type: application/json' --data "$BODY" \
               "http://127.0.0.1:$GW_PORT/trueportai-services/openai/v1/chat/completions")
        [ "$code" = 200 ] || bad=$((bad + 1))
    done
    [ "$bad" -eq 0 ] || { echo "bench: $bad requests not 200" >&2; tail -5 "$WORK/gw/error.log" >&2; exit 1; }
}

HZ=$(getconf CLK_TCK)

# phase NAME KIND CACHE
phase() {
    local r0 r1 t0 t1 loads bytes
    "${PSQL[@]}" -c "UPDATE policies SET enabled = (name LIKE '$2 %')" >/dev/null
    gateway "$3"
    send one
    r0=$(rss_kb)
    t0=$(ticks)
    send all
    t1=$(ticks)
    r1=$(rss_kb)
    loads=$(grep -c 'at revision [0-9]* loaded' "$WORK/gw/error.log" || true)
    bytes=$(sed -n 's/.*loaded, \([0-9]*\) bytes compiled, \([0-9]*\) in memory.*/\1 \2/p' \
            "$WORK/gw/error.log" | tail -1)
    bench_nginx_stop "$WORK/gw"
    if grep -q '\[alert\]\|\[emerg\]\|\[error\]' "$WORK/gw/error.log"; then
        grep '\[alert\]\|\[emerg\]\|\[error\]' "$WORK/gw/error.log" | head -5 >&2
    fi
    : >"$WORK/gw/error.log"
    perl -e '
        my ($name, $cache, $nt, $r0, $r1, $loads, $ct, $mem, $ticks, $hz) = @ARGV;
        printf "bench: %-9s %d tenants, cache %-4s: one set %5.2f MB compiled (%5.2f MB in memory);"
             . " worker RSS %6.1f MB before, %7.1f MB after (+%7.1f MB); %d loads, %.2f ms worker CPU each\n",
             $name, $nt, $cache, $ct / 1e6, $mem / 1e6, $r0 / 1024, $r1 / 1024,
             ($r1 - $r0) / 1024, $loads, $ticks * 1e3 / $hz / ($nt || 1);
    ' "$1" "$3" "$NT" "$r0" "$r1" "$loads" ${bytes:-0 0} "$((t1 - t0))" "$HZ" \
        | tee -a "$WORK/summary.txt"
}

phase typical typical "$CACHE"
phase maximal maximal "$CACHE"
phase unbounded maximal 16384m

echo
cat "$WORK/summary.txt"
