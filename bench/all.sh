#!/usr/bin/env bash
# make bench: the three benchmarks of issue 7 in one run, then their
# summary lines together.
#   bench/gateway.sh   the gateway against plain nginx (scenarios a b c d live)
#   bench/ingest.sh    spool ingestion into Postgres, records/s
#   bench/sidecar.sh   the sidecar's list endpoints, requests/s
# Each starts and stops what it needs in its own throwaway folder.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /tmp/trueport-bench-out.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

start=$(date +%s)
echo "bench: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg)"

"$HERE/gateway.sh" 2>&1 | tee "$OUT/gateway.txt"
"$HERE/ingest.sh" 2>&1 | tee "$OUT/ingest.txt"
# five seconds per endpoint: the whole run stays under ten minutes
BENCH_SECONDS=${BENCH_SIDECAR_SECONDS:-5} "$HERE/sidecar.sh" 2>&1 | tee "$OUT/sidecar.txt"

echo
echo "bench: results ($(( $(date +%s) - start )) s)"
sed -n '/^bench: summary/,$p' "$OUT/gateway.txt" | tail -n +2
grep '^ingestion: .*records/s' "$OUT/ingest.txt" | sed 's/^/  /'
grep '^sidecar ' "$OUT/sidecar.txt" | sed 's/^/  /'
