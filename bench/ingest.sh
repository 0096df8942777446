#!/usr/bin/env bash
# Spool ingestion throughput: N usage records (default 200000) in spool
# files, a fresh Postgres, the sidecar started; prints records/s until the
# last one is committed. Everything lives in a throwaway folder.
#   bench/ingest.sh [N]
# The last line is the summary, against INGEST_TARGET (default 50000).
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

N=${1:-200000}
TARGET=${INGEST_TARGET:-50000}
WORK=$(mktemp -d /tmp/trueport-bench.XXXXXX)
chmod 755 "$WORK"
PORT=$(free_port)
SC_PORT=$(free_port)
cleanup() {
    [ -n "${SC:-}" ] && kill "$SC" 2>/dev/null && wait "$SC" 2>/dev/null
    "$ROOT/scripts/pg.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$ROOT/scripts/pg.sh" init "$WORK/pg" "$PORT"
psql -h "$WORK/pg/sock" -p "$PORT" -U postgres -qc "CREATE DATABASE bench"
export TRUEPORT_DATABASE_URL="host=$WORK/pg/sock port=$PORT user=postgres dbname=bench"
export TRUEPORT_JWT_SECRET=bench-secret-0123456789abcdef0123456789
export TRUEPORT_MASTER_KEY=$(rand_hex 32) TRUEPORT_MIGRATIONS=$ROOT/migrations
export TRUEPORT_LISTEN=127.0.0.1:$SC_PORT TRUEPORT_SPOOL_DIR=$WORK/spool
export TRUEPORT_LOG_LEVEL=warn
"$BUILD/trueport-sidecar" migrate >/dev/null
mkdir -p "$WORK/spool"

# 8 worker files, as 8 nginx workers would leave them
perl -e '
    my ($n, $dir) = @ARGV;
    my @t = map { sprintf "%08x-0000-4000-8000-%012x", $_, $_ } 1 .. 50;
    my $ts = time * 1000;
    for my $w (1 .. 8) {
        open my $fh, ">", "$dir/$w-1-0.jsonl" or die;
        for my $i (1 .. $n / 8) {
            printf $fh q({"v":1,"type":"usage","ts":%d,"request_id":"r%d-%d","tenant_id":"%s","key_id":"%s","env":"production","provider":"openai","model":"gpt-4o-mini","path":"/v1/chat/completions","status":200,"stream":false,"input_tokens":120,"output_tokens":30,"cached_tokens":0,"total_tokens":150,"ttfb_ms":12,"latency_ms":40,"bytes_in":420,"bytes_out":900,"client_ip":"127.0.0.1","error_kind":null,"completed":true}) . "\n",
                $ts + $i, $w, $i, $t[$i % 50], $t[($i * 7) % 50];
        }
    }' "$N" "$WORK/spool"

start=$(date +%s.%N)
"$BUILD/trueport-sidecar" serve >"$WORK/sidecar.log" 2>&1 &
SC=$!
# compgen, not ls: ls fails when a file goes between the glob and its stat
while compgen -G "$WORK/spool/*.jsonl" >/dev/null; do sleep 0.05; done
end=$(date +%s.%N)
rows=$(psql -h "$WORK/pg/sock" -p "$PORT" -U postgres -tAc "SELECT count(*) FROM usage_logs" bench)
[ "$rows" -eq "$N" ] || { echo "expected $N rows, got $rows" >&2; exit 1; }
perl -e '
    my ($rows, $t0, $t1, $target) = @ARGV;
    my $rate = $rows / ($t1 - $t0);
    sub commas { my $n = reverse sprintf "%.0f", shift; $n =~ s/(\d{3})(?=\d)/$1,/g; scalar reverse $n }
    printf "ingestion: %d records in %.2f s\n", $rows, $t1 - $t0;
    printf "ingestion: %s records/s (target %s) %s\n", commas($rate),
        commas($target), $rate >= $target ? "ok" : "BELOW TARGET";
' "$rows" "$start" "$end" "$TARGET"
