#!/usr/bin/env bash
# The write-path figures in one run on this machine: scale.sh at 10,000 and at 50,000 orders
# (client-go rate, operator rate and their ratio, peak and settled RSS, writes in a quiet
# minute), then lag.sh (p99 against the quota minimum). Prints each script's own table as it
# goes, then one summary table. Asserts nothing; about 35 minutes on 2 cores.
#
#   tests/bench/perf.sh
#
# Environment: BENCH_SPEEDUP for lag.sh (4, about 3 minutes; 1 for real time, about 10),
# BENCH_SAME_PEER for scale.sh (watch), BENCH_OUT, a directory to keep the three tables in
# (default: a fresh temporary one, named at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"
started=$(date -u +'%Y-%m-%d %H:%M')

tests/bench/scale.sh 200 50 | tee "$out/scale-10k.md"
tests/bench/scale.sh 1000 50 | tee "$out/scale-50k.md"
BENCH_SPEEDUP=${BENCH_SPEEDUP:-4} tests/bench/lag.sh | tee "$out/lag.md"

# The value column of the row whose label starts with $2, in table $1.
row() {
  grep -F "| $2" "$1" | head -n1 | cut -d'|' -f3 | sed 's/^ *//; s/ *$//'
}

echo
echo "| perf summary, $(nproc) cores, started $started UTC | 10,000 orders | 50,000 orders |"
echo "|---|---|---|"
for label in "cold sync, client-go" "cold sync, operator" "operator ÷ client-go" \
  "cold sync, client-go writing the operator's own objects" "operator ÷ that" \
  "operator peak RSS" "operator RSS: 15 s after sync" "operator CPU during" "API server + etcd CPU" \
  "of which writes"; do
  echo "| $label | $(row "$out/scale-10k.md" "$label") | $(row "$out/scale-50k.md" "$label") |"
done
echo "| lag p99 (lag.sh, ×${BENCH_SPEEDUP:-4}) | $(row "$out/lag.md" "lag p99") | |"
echo "tables kept in $out" >&2
