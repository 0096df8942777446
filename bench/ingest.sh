#!/usr/bin/env bash
# Spool ingestion throughput: N usage records (default 200000) in spool
# files, a fresh Postgres, the sidecar started; prints records/s until the
# last one is committed. Everything lives in a throwaway folder.
#   bench/ingest.sh [N]
# The last line is the summary, against INGEST_TARGET (default 50000).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${1:-200000}
TARGET=${INGEST_TARGET:-50000}
bench_begin
bench_db
export TRUEPORT_SPOOL_DIR=$WORK/spool
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
rows=$("${PSQL[@]}" -c "SELECT count(*) FROM usage_logs")
[ "$rows" -eq "$N" ] || { echo "expected $N rows, got $rows" >&2; exit 1; }
perl -e '
    my ($rows, $t0, $t1, $target) = @ARGV;
    my $rate = $rows / ($t1 - $t0);
    sub commas { my $n = reverse sprintf "%.0f", shift; $n =~ s/(\d{3})(?=\d)/$1,/g; scalar reverse $n }
    printf "ingestion: %d records in %.2f s\n", $rows, $t1 - $t0;
    printf "ingestion: %s records/s (target %s) %s\n", commas($rate),
        commas($target), $rate >= $target ? "ok" : "BELOW TARGET";
' "$rows" "$start" "$end" "$TARGET"
