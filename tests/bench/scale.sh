#!/usr/bin/env bash
# Benchmark: the operator's cold sync at scale against client-go writing the same number of
# ChangeOrders, each on a fresh local control plane, in one run. It prints one table per size
# and asserts nothing; it is not part of the test suite.
#
#   tests/bench/scale.sh [WATCHES] [ORDERS_PER_WATCH]   default 200 × 50 = 10,000 orders
#   tests/bench/scale.sh 1000 50                        50,000 orders
#   tests/bench/scale.sh 20 50                          a quick check (1,000 orders)
#
# The peer is the client-go baseline `rawclient` (../shared/bench/rawclient, or RAWCLIENT_SRC):
# a dynamic client creating each object and then writing its status, 8 workers, no rate limit.
# The operator then syncs the same number of orders from SAE watches (one order in flight each,
# the rest finished) on a second fresh control plane, timed from its start until every order has
# a phase; then a quiet minute in which nothing changes in the cloud. Requests are counted by the
# API server itself (/metrics: apiserver_request_total and _duration_seconds, by verb and
# resource).
#
# A second peer, `samepeer` (tests/bench/samepeer), is client-go writing the operator's own
# objects: copies of one ChangeOrder the operator stored in this run (labels, owner, spec, status
# with its five conditions), on a third fresh control plane, with a watch on the namespace open as
# an informer would have it (BENCH_SAME_PEER=watch, the default), without (plain), both, or 0 to
# skip. It tells what is written from how: the contract's objects cost the API server more than
# rawclient's.
#
# The operator is timed by its own view (the `changeorder_orders` gauge, refreshed every second,
# read every 0.25 s), so no second watcher loads the API server as the peers have none;
# BENCH_TIMER=watch times it with an external watch instead (as before 2026-12-06).
# Environment: BENCH_CONCURRENCY (8, the operator's default and the peer's workers),
# BENCH_QUIET_SECONDS (60), BENCH_PEER=0 skips the peer (memory runs), BENCH_WRAP runs the
# operator under a tool (`heaptrack -o FILE`), BENCH_PROFILE=profiling builds with symbols.
set -euo pipefail
cd "$(dirname "$0")/../.."

watches=${1:-200}
per_watch=${2:-50}
concurrency=${BENCH_CONCURRENCY:-8}
quiet=${BENCH_QUIET_SECONDS:-60}
want=$((watches * per_watch))

. tests/bench/common.sh

# The client-go peer, built once and cached next to the control-plane binaries.
rawclient_src=${RAWCLIENT_SRC:-../shared/bench/rawclient}
rawclient=
if [ "${BENCH_PEER:-1}" != 0 ]; then
  [ -f "$rawclient_src/main.go" ] || { echo "no client-go baseline at $rawclient_src (set RAWCLIENT_SRC, or BENCH_PEER=0)" >&2; exit 1; }
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/bench
  rawclient=$cache/rawclient-$(cat "$rawclient_src"/go.mod "$rawclient_src"/go.sum "$rawclient_src"/main.go | sha256sum | cut -c1-12)
  if [ ! -x "$rawclient" ]; then
    echo "building the client-go baseline (once)" >&2
    mkdir -p "$cache"
    (cd "$rawclient_src" && go build -o "$rawclient.tmp" .) && mv "$rawclient.tmp" "$rawclient"
  fi
fi

# The simulator's scenario: per watch one SAE order in flight (2 batches, at the first), the
# rest finished.
{
  echo "apps:"
  for a in $(seq "$watches"); do
    echo "  - provider: sae"
    echo "    appId: bench-$a"
    echo "    changeOrders:"
    echo "      - { id: bench-$a-live, createdAt: -1m, status: 1, batchCount: 2, currentBatch: 1 }"
    for o in $(seq 2 "$per_watch"); do
      echo "      - { id: bench-$a-$o, createdAt: -${o}h, status: 2 }"
    done
  done
} >"$state/scenario.yaml"

# Requests the API server served on the resources writers use: "VERB RESOURCE COUNT SECONDS"
# lines (RESOURCE with its subresource, e.g. changeorders/status; SECONDS: the server's summed
# request durations, WATCH left out as it lasts as long as it is open).
requests() {
  kubectl get --raw /metrics | awk '
    /^apiserver_request_(total|duration_seconds_sum)\{/ && /resource="(changeorders|changeorderwatches|events|secrets|leases)"/ {
      match($0, /verb="[A-Z]+"/); v = substr($0, RSTART + 6, RLENGTH - 7)
      match($0, /resource="[a-z]+"/); r = substr($0, RSTART + 10, RLENGTH - 11)
      match($0, /subresource="[a-z]*"/); s = substr($0, RSTART + 13, RLENGTH - 14)
      if (s != "") r = r "/" s
      k = v " " r
      if ($0 ~ /^apiserver_request_total/) n[k] += $NF; else if (v != "WATCH") d[k] += $NF }
    END { for (k in n) printf "%s %d %.3f\n", k, n[k], d[k] + 0 }' | sort
}
# Difference of two `requests` snapshots, one "VERB resource: N (S s server time)" per line.
delta() {
  join -a 2 -e 0 -o 0,1.2,1.3,2.2,2.3 <(sed 's/ /|/' "$1") <(sed 's/ /|/' "$2") | awk '
    { n = $4 - $2; s = $5 - $3; sub(/\|/, " ", $1); if (n > 0) { printf "%s%s %d (%.1f s)", sep, $1, n, s; sep = ", " } }
    END { if (sep == "") printf "none" }'
}
# Write requests between two snapshots, the leader's lease renewals apart (they are the
# leader election's heartbeat, not caused by any change).
writes() {
  join -a 2 -e 0 -o 0,1.2,2.2 <(sed 's/ /|/' "$1") <(sed 's/ /|/' "$2") |
    awk '$1 ~ /^(POST|PUT|PATCH|DELETE|APPLY)\|/ && $1 !~ /leases$/ { s += $3 - $2 } END { print s + 0 }'
}
per_order() {
  join -a 2 -e 0 -o 0,1.2,2.2 <(sed 's/ /|/' "$1") <(sed 's/ /|/' "$2") |
    awk -v n="$want" '$1 !~ /^WATCH\|/ { s += $3 - $2 } END { printf "%.2f", s / n }'
}
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# CPU seconds the API server and etcd of cluster $1 have used so far.
server_cpu() {
  local total=0 name
  for name in kube-apiserver etcd; do
    total=$(echo "$total + $(cpu_seconds "$(<"$state/$1/pids/$name.pid")")" | bc)
  done
  echo "$total"
}

peer_rate= peer_line="not run (BENCH_PEER=0)" peer_requests="" peer_server="" peer_per_order=""
if [ -n "$rawclient" ]; then
  fresh_cluster peer
  kubectl create namespace raw >/dev/null
  requests >"$state/peer0"
  s0=$(server_cpu peer)
  echo "client-go: $want objects, create + status, $concurrency workers" >&2
  "$rawclient" -n "$want" -workers "$concurrency" -namespace raw | tee "$state/peer.out" >&2
  s1=$(server_cpu peer)
  requests >"$state/peer1"
  peer_rate=$(sed -n 's/.* = \([0-9.]*\) objects\/s.*/\1/p' "$state/peer.out")
  peer_line="$peer_rate orders/s ($(sed -n 's/.* in \([0-9.]*\) s = .*/\1/p' "$state/peer.out") s, $(sed -n 's/.*objects\/s, \([0-9]*\) failures/\1/p' "$state/peer.out") failures)"
  peer_requests=$(delta "$state/peer0" "$state/peer1")
  peer_per_order=$(per_order "$state/peer0" "$state/peer1")
  peer_server=$(echo "$s1 - $s0" | bc)
  tests/tools/cluster.sh down "$state/peer" >/dev/null 2>&1
fi

fresh_cluster op
"$simulator" --listen "127.0.0.1:$sim_port" --scenario "$state/scenario.yaml" >"$state/sim.log" 2>&1 &
pids+=($!)
kubectl create namespace bench >/dev/null
kubectl create secret generic -n bench cloud --from-literal=accessKeyId=demo-key-id \
  --from-literal=accessKeySecret=demo-key-secret >/dev/null
for a in $(seq "$watches"); do
  cat <<EOF
---
apiVersion: changeorder.io/v1alpha1
kind: ChangeOrderWatch
metadata: {name: bench-$a, namespace: bench}
spec:
  provider: sae
  endpoint: http://127.0.0.1:$sim_port
  appId: bench-$a
  credentialsSecretRef: {name: cloud}
  interval: 30s
  inFlightInterval: 10s
  retention: {maxFinished: $per_watch}
EOF
done | kubectl apply -f - >/dev/null

echo "operator: cold sync of $want orders from $watches watches" >&2
requests >"$state/op0"
s2=$(server_cpu op)
timer=${BENCH_TIMER:-self}
if [ "$timer" = watch ]; then
  "$baseline" wait bench "$want" >"$state/synced" &
  waiter=$!
  sleep 1 # the waiter's watch is open before the first write
fi
started=$(date +%s.%N)
${BENCH_WRAP:-} "$operator" run --namespaces bench --admin-listen "127.0.0.1:$admin_port" --calls-per-minute 60000 \
  --concurrency "$concurrency" --allowed-endpoints "http://127.0.0.1:*" >"$state/operator.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")
if [ "$timer" = watch ]; then
  wait "$waiter" || { tail -20 "$state/operator.log"; exit 1; }
  op_secs=$(cat "$state/synced")
else
  # Orders with a phase in the operator's cache: written, and seen back through its watch.
  while :; do
    kill -0 "$op_pid" 2>/dev/null || { tail -20 "$state/operator.log" >&2; exit 1; }
    # Nothing to read until the admin port listens.
    seen=$({ curl -s "127.0.0.1:$admin_port/metrics" || true; } | awk '$1 ~ /^changeorder_orders\{/ { s += $2 } END { print s + 0 }')
    [ "$seen" -lt "$want" ] || break
    sleep 0.25
  done
  op_secs=$(printf '%.3f' "$(echo "$(date +%s.%N) - $started" | bc)")
fi
sync_cpu=$(cpu_seconds "$op_pid")
sync_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
s3=$(server_cpu op)
requests >"$state/op1"

metric() { curl -s "127.0.0.1:$admin_port/metrics" | awk -v m="$1" '$1 ~ "^"m"(\\{|$)" { s += $2 } END { print s + 0 }'; }
echo "quiet: settling 15 s, then $quiet s with nothing changing in the cloud" >&2
sleep 15
settle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$op_pid/status")
requests >"$state/op2"
calls0=$(metric changeorder_cloud_calls_total)
polls0=$(metric changeorder_polls_total)
sleep "$quiet"
requests >"$state/op3"
calls1=$(metric changeorder_cloud_calls_total)
polls1=$(metric changeorder_polls_total)
kill -0 "$op_pid" 2>/dev/null || { echo "the operator exited:" >&2; tail -20 "$state/operator.log" >&2; exit 1; }
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$op_pid/status")

# The client-go peer writing the operator's own objects, on a fresh control plane.
same_lines=()
same_mode=${BENCH_SAME_PEER:-watch}
if [ "$same_mode" != 0 ]; then
  sample=$state/sample.json
  kubectl get changeorders -n bench -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
final = [o for o in items if o.get("status", {}).get("phase") == "Succeeded"]
print(json.dumps(final[0]))' >"$sample"
  owner=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["ownerReferences"][0]["name"])' "$sample")
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/bench
  samepeer=$cache/samepeer-$(cat tests/bench/samepeer/go.mod tests/bench/samepeer/go.sum tests/bench/samepeer/main.go | sha256sum | cut -c1-12)
  if [ ! -x "$samepeer" ]; then
    echo "building samepeer (once)" >&2
    mkdir -p "$cache"
    (cd tests/bench/samepeer && go build -o "$samepeer.tmp" .) && mv "$samepeer.tmp" "$samepeer"
  fi
  case $same_mode in both) modes="plain watch" ;; *) modes=$same_mode ;; esac
  saved_kubeconfig=$KUBECONFIG
  for mode in $modes; do
    fresh_cluster "same-$mode"
    kubectl create namespace same >/dev/null
    printf '%s\n' "apiVersion: changeorder.io/v1alpha1" "kind: ChangeOrderWatch" \
      "metadata: {name: $owner, namespace: same}" \
      "spec: {provider: sae, endpoint: 'http://127.0.0.1:1', appId: owner, credentialsSecretRef: {name: cloud}}" |
      kubectl apply -f - >/dev/null
    x0=$(server_cpu "same-$mode")
    flag=
    [ "$mode" = plain ] || flag=-watch
    out=$("$samepeer" -n "$want" -workers "$concurrency" -namespace same -sample "$sample" $flag)
    x1=$(server_cpu "same-$mode")
    echo "$out" >&2
    rate=$(echo "$out" | sed -n 's/.* = \([0-9.]*\) objects\/s.*/\1/p')
    label="without a watch"
    [ "$mode" = plain ] || label="with a watch open, as an informer has"
    same_lines+=("| cold sync, client-go writing the operator's own objects ($label) | $rate orders/s; API server + etcd CPU $(echo "$x1 - $x0" | bc) s |")
    same_lines+=("| operator ÷ that | $(printf '%.2f' "$(echo "scale=3; $want / $op_secs / $rate" | bc)")× |")
    tests/tools/cluster.sh down "$state/same-$mode" >/dev/null 2>&1
  done
  export KUBECONFIG=$saved_kubeconfig
fi

same_table=
for line in "${same_lines[@]}"; do same_table+="$line"$'\n'; done
op_rate=$(echo "scale=1; $want / $op_secs" | bc)
ratio="n/a"
[ -z "$peer_rate" ] || ratio="$(printf '%.2f' "$(echo "scale=3; $op_rate / $peer_rate" | bc)")×"
polls=$((polls1 - polls0))
per_poll=$( ((polls > 0)) && echo "scale=2; ($calls1 - $calls0) / $polls" | bc || echo "n/a")

cat <<EOF

| $watches SAE watches × $per_watch orders = $want orders ($watches in flight), $(nproc) cores, $(date -u +%Y-%m-%d) | |
|---|---|
| cold sync, client-go (create + status, $concurrency workers) | ${peer_line} |
| cold sync, operator (start-up until every order has a phase) | $op_rate orders/s ($op_secs s) |
| operator ÷ client-go | ${ratio} |
${same_table}| operator peak RSS: at sync end, after the quiet minute | $((sync_hwm / 1024)) MiB, $((hwm / 1024)) MiB |
| operator RSS: 15 s after sync, after the quiet minute | $((settle_rss / 1024)) MiB, $((rss / 1024)) MiB |
| operator CPU during the cold sync | ${sync_cpu} s |
| API server + etcd CPU during the cold sync: client-go, operator | ${peer_server:-n/a} s, $(echo "$s3 - $s2" | bc) s |
| API requests per order (all but WATCH): client-go, operator | ${peer_per_order:-n/a}, $(per_order "$state/op0" "$state/op1") |
| API requests during the sync, client-go | ${peer_requests:-n/a} |
| API requests during the sync, operator | $(delta "$state/op0" "$state/op1") |
| API requests in a quiet ${quiet} s | $(delta "$state/op2" "$state/op3") |
| of which writes (the leader's lease renewals apart) | $(writes "$state/op2" "$state/op3") |
| cloud calls per poll in the quiet ${quiet} s | $per_poll ($((calls1 - calls0)) calls, $polls polls) |
EOF
