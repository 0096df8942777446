#!/usr/bin/env bash
# Sidecar list endpoints under load: a fresh Postgres, one tenant with an
# admin, 200 keys, 50 policies, 20 members and 10,000 usage rows among 99
# other tenants of the same size (a shared multi-tenant schema, so the
# planner sees what it sees in production), then wrk
# (BENCH_CONNECTIONS connections, default 32) against each GET list route
# for BENCH_SECONDS (default 10). Prints one line per endpoint (requests/s,
# p50, p99, CPU per request of the sidecar and Postgres, non-2xx) and a
# summary line per pass against SIDECAR_TARGET (default 5000 requests/s)
# over the management lists; the rate-limited analytics logs get a line of
# their own (see RATE_LIMITED). With 2+ cores the first pass runs wrk on
# the last core and the sidecar and Postgres on the others (the cost per
# core), and a second pass lets the servers use every core, as deployed;
# the target is judged on that one (BENCH_PIN=0 or one core: that pass
# only). Route rate limits are off for the run
# (TRUEPORT_RATE_LIMITS=0): the bench measures handlers, not 429s.
# Everything lives in a throwaway folder and is stopped at exit.
#   bench/sidecar.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SECONDS_PER=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-32}
TARGET=${SIDECAR_TARGET:-5000}
THREADS=${BENCH_SIDECAR_THREADS:-4}

command -v wrk >/dev/null || { echo "bench/sidecar.sh: wrk is missing" >&2; exit 2; }
[ -x "$BUILD/trueport-sidecar" ] || { echo "bench/sidecar.sh: build the sidecar first (make sidecar)" >&2; exit 2; }

bench_begin

# with 2+ cores, wrk gets the last one and the sidecar and Postgres the
# rest, so the load generator does not steal the server's time
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ] && [ "${BENCH_PIN:-1}" != 0 ] \
    && command -v taskset >/dev/null
then
    SERVER_CPUS="0-$((NCPU - 2))"
    CLIENT_PIN=(taskset -c "$((NCPU - 1))")
    SERVER_PIN=(taskset -c "$SERVER_CPUS")
else
    SERVER_CPUS=all
    CLIENT_PIN=()
    SERVER_PIN=()
fi

bench_db "${SERVER_PIN[@]}"
export TRUEPORT_RATE_LIMITS=0 TRUEPORT_THREADS=$THREADS

# the fixtures, straight in the database (as the tests' Org.pm does)
read -r TENANT USER_ID < <("${PSQL[@]}" -F ' ' <<'SQL'
WITH t AS (
    INSERT INTO tenants (name, slug, status)
    VALUES ('Bench', 'bench', 'active') RETURNING id
), s AS (
    INSERT INTO subscriptions (tenant_id, plan_id) SELECT id, 'free' FROM t
), u AS (
    INSERT INTO users (email, name, password_hash)
    VALUES ('admin@bench.example', 'Bench Admin', 'x') RETURNING id
), m AS (
    INSERT INTO memberships (tenant_id, user_id, role)
    SELECT t.id, u.id, 'admin' FROM t, u
)
SELECT t.id, u.id FROM t, u;
SQL
)
"${PSQL[@]}" >/dev/null <<SQL
INSERT INTO users (email, name, password_hash)
SELECT 'member' || i || '@bench.example', 'Member ' || i, 'x'
FROM generate_series(1, 19) i;
INSERT INTO memberships (tenant_id, user_id, role)
SELECT '$TENANT', id, 'member' FROM users WHERE email LIKE 'member%';

INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env, created_by)
SELECT '$TENANT', 'key ' || i, 'sk-' || lpad(i::text, 5, '0'),
       encode(sha256(('bench-key-' || i)::bytea), 'hex'), 'production',
       '$USER_ID'
FROM generate_series(1, 200) i;

INSERT INTO policies (tenant_id, name, type, config, action, priority)
SELECT '$TENANT', 'policy ' || i, 'keywords',
       jsonb_build_object('keywords', jsonb_build_array('secret' || i)),
       'log', i
FROM generate_series(1, 50) i;

-- the other tenants: as many keys, policies and members each
INSERT INTO tenants (name, slug, status)
SELECT 'Other ' || i, 'other-' || i, 'active' FROM generate_series(1, 99) i;
INSERT INTO users (email, name, password_hash)
SELECT 'user' || i || '@other.example', 'User ' || i, 'x'
FROM generate_series(1, 99 * 20) i;
INSERT INTO memberships (tenant_id, user_id, role)
SELECT t.id, u.id, 'member'
FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM tenants
      WHERE slug LIKE 'other-%') t
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users
      WHERE email LIKE '%@other.example') u ON u.n / 20 = t.n;
INSERT INTO api_keys (tenant_id, name, prefix, key_hash, env, created_by)
SELECT t.id, 'key ' || i, 'sk-' || lpad(i::text, 5, '0'),
       encode(sha256((t.slug || '-key-' || i)::bytea), 'hex'), 'production',
       '$USER_ID'
FROM tenants t, generate_series(1, 200) i WHERE t.slug LIKE 'other-%';
INSERT INTO policies (tenant_id, name, type, config, action, priority)
SELECT t.id, 'policy ' || i, 'keywords',
       jsonb_build_object('keywords', jsonb_build_array('secret' || i)),
       'log', i
FROM tenants t, generate_series(1, 50) i WHERE t.slug LIKE 'other-%';

INSERT INTO usage_logs (created_at, request_id, tenant_id, key_id, env,
    provider, model, path, status, input_tokens, output_tokens,
    total_tokens, cost_micro_usd, ttfb_ms, latency_ms, bytes_in, bytes_out,
    client_ip)
SELECT now() - i * interval '1 second', 'req-' || i, '$TENANT',
       (SELECT id FROM api_keys ORDER BY created_at, id LIMIT 1), 'production',
       'openai', 'gpt-4o-mini', '/v1/chat/completions', 200, 120, 30, 150,
       36, 12, 40, 420, 900, '127.0.0.1'
FROM generate_series(1, 10000) i;
VACUUM ANALYZE;
CHECKPOINT;
SQL

TOKEN=$(perl -MDigest::SHA=hmac_sha256 -MMIME::Base64 -e '
    my ($secret, $sub, $tid) = @ARGV;
    my $b64 = sub { my $s = encode_base64(shift, ""); $s =~ tr{+/}{-_}; $s =~ s/=+$//; $s };
    my $now = time;
    my $head = $b64->(q({"alg":"HS256","typ":"JWT"}));
    my $body = $b64->(sprintf q({"sub":"%s","typ":"scoped","tid":"%s","role":"admin","env":"production","iat":%d,"exp":%d}),
                      $sub, $tid, $now, $now + 3600);
    print "$head.$body.", $b64->(hmac_sha256("$head.$body", $secret));
' "$TRUEPORT_JWT_SECRET" "$USER_ID" "$TENANT")

"${SERVER_PIN[@]}" "$BUILD/trueport-sidecar" serve >"$WORK/sidecar.log" 2>&1 &
SC=$!
wait_port "$SC_PORT" 10 || { echo "sidecar did not start" >&2; cat "$WORK/sidecar.log" >&2; exit 1; }

ENDPOINTS=(
    /trueportai-services/api/v1/keys
    /trueportai-services/api/v1/policies
    /platform/api/service/members
)
# Timed and shown on a line of their own, outside the target's min: the
# spec limits the analytics routes to 60 requests/min per user, and the
# logs' total is an exact count over the tenant's usage rows, so their
# throughput is not what the management lists' target is about.
RATE_LIMITED=(
    /trueportai-services/api/v1/analytics/logs
)

# every endpoint answers 200 before it is timed
for path in "${ENDPOINTS[@]}" "${RATE_LIMITED[@]}"; do
    code=$(curl -s -o "$WORK/probe.json" -w '%{http_code}' \
                -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$SC_PORT$path")
    if [ "$code" != 200 ]; then
        echo "GET $path answered $code:" >&2
        cat "$WORK/probe.json" >&2
        exit 1
    fi
done

# CPU time of the sidecar and Postgres (server_ticks, scripts/lib.sh) per
# request: the steadiest figure on a machine shared with other work
PG_MAIN=$(head -1 "$WORK/pg/data/postmaster.pid")
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run_endpoint PATH KIND MODE: one wrk run; a line, and the figures
# appended to $RESULTS.MODE (the management lists) or $OTHERS
run_endpoint() {
    local path=$1 kind=$2 mode=$3 t0 cpu_us
    t0=$(server_ticks "$SC" "$WORK/pg")
    "${CLIENT_PIN[@]}" wrk -c"$CONNS" -t1 -d"${SECONDS_PER}s" --latency \
        -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$SC_PORT$path" \
        >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out" >&2; exit 1; }
    cpu_us=$(( ($(server_ticks "$SC" "$WORK/pg") - t0) * TICK_US ))
    perl -ne '
        BEGIN { ($path, $out, $cpu) = splice @ARGV, 0, 3; $bad = 0; $err = 0 }
        $rps = $1 if /^Requests\/sec:\s+([\d.]+)/;
        $total = $1 if /^\s*(\d+) requests in/;
        $p50 = $1 if /^\s+50%\s+(\S+)/;
        $p99 = $1 if /^\s+99%\s+(\S+)/;
        $bad = $1 if /Non-2xx or 3xx responses:\s+(\d+)/;
        $err += $_ for /(?:connect|read|write|timeout) (\d+)/g;
        END {
            printf "%-46s %8.0f req/s  p50 %-8s p99 %-8s %4.0f us CPU/req  non-2xx %d%s\n",
                $path, $rps, $p50, $p99, $total ? $cpu / $total : 0, $bad,
                $err ? " socket errors $err" : "";
            open my $fh, ">>", $out or die;
            print $fh "$path $rps $bad $err $total\n";
        }' "$path" "$([ "$kind" = target ] && echo "$RESULTS.$mode" || echo "$OTHERS")" \
           "$cpu_us" "$WORK/wrk.out"
}

export RESULTS=$WORK/results OTHERS=$WORK/others
: >"$OTHERS"

# a second per endpoint first, not counted: the statements get prepared and
# past their first plans, the caches warm
for path in "${ENDPOINTS[@]}" "${RATE_LIMITED[@]}"; do
    "${CLIENT_PIN[@]}" wrk -c"$CONNS" -t1 -d1s \
        -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$SC_PORT$path" >/dev/null
done

# 1. pinned: the servers on their cores, wrk on another (the cost per
# core); unpinned, this is already the whole machine
FIRST=$([ "$SERVER_CPUS" = all ] && echo machine || echo core)
MODES=$FIRST
: >"$RESULTS.$FIRST"
echo "sidecar: $THREADS threads on cpus $SERVER_CPUS, wrk -c$CONNS -t1 -d${SECONDS_PER}s${CLIENT_PIN:+ on cpu ${CLIENT_PIN[2]}}"
for path in "${ENDPOINTS[@]}"; do
    run_endpoint "$path" target "$FIRST"
done
for path in "${RATE_LIMITED[@]}"; do
    run_endpoint "$path" other "$FIRST"
done

# 2. the whole machine, as a deployment would run it: the servers may use
# every core, wrk (one thread) shares them
if [ "$FIRST" = core ]; then
    MODES="core machine"
    : >"$RESULTS.machine"
    for pid in "$SC" "$PG_MAIN" $(pgrep -P "$PG_MAIN"); do
        taskset -a -p -c "0-$((NCPU - 1))" "$pid" >/dev/null
    done
    CLIENT_PIN=()
    echo "sidecar: the whole machine ($NCPU cpus, wrk sharing them)"
    for path in "${ENDPOINTS[@]}"; do
        run_endpoint "$path" target machine
    done
fi

perl -ne '
    my ($path, $rps, $bad, $err) = split;
    printf "rate-limited, not in the target: %s %.0f req/s%s\n", $path, $rps,
        $bad + $err ? ", " . ($bad + $err) . " failed requests" : "";
' "$OTHERS"

# one summary line per mode; the target is judged on the last (the whole
# machine where there are two cores or more)
for mode in $MODES; do
    perl -e '
        my ($target, $mode, $judged) = @ARGV;
        my ($min, $fail, $worst) = (undef, 0, "");
        open my $fh, "<", "$ENV{RESULTS}.$mode" or die;
        while (<$fh>) {
            my ($path, $rps, $bad, $err) = split;
            $fail += $bad + $err;
            ($min, $worst) = ($rps, $path) if !defined $min || $rps < $min;
        }
        sub commas { my $n = reverse sprintf "%.0f", shift; $n =~ s/(\d{3})(?=\d)/$1,/g; scalar reverse $n }
        my $ok = $min >= $target && $fail == 0;
        printf "sidecar lists (%s): min %s req/s (%s; target %s)%s %s\n",
            $mode eq "core" ? "servers on one core" : "whole machine",
            commas($min), $worst, commas($target),
            $fail ? ", $fail failed requests" : "",
            !$judged ? "(not judged)" : $ok ? "ok" : "BELOW TARGET";
    ' "$TARGET" "$mode" "$([ "$mode" = "${MODES##* }" ] && echo 1 || echo 0)"
done
