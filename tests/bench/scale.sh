#!/usr/bin/env bash
# Benchmark: the operator at scale against a fresh local control plane and the simulator. It
# prints one table and asserts nothing; it is not part of the test suite.
#
#   tests/bench/scale.sh [WATCHES] [ORDERS_PER_WATCH]   default 200 × 50 = 10,000 orders
#   tests/bench/scale.sh 20 50                          a quick check (1,000 orders)
#
# In one run: a baseline (a plain kube client, tests/bench/baseline.rs, writing the same objects:
# create, then status, with the operator's concurrency), then the operator's cold sync of the
# same scenario from SAE watches with one order in flight each, then a quiet minute in which
# nothing changes in the cloud. API requests are counted by the API server itself (/metrics).
# Environment: BENCH_CONCURRENCY (8, the operator's default), BENCH_QUIET_SECONDS (60),
# BENCH_BASELINE=0 skips the baseline (for memory runs: it leaves the operator's figures alone),
# BENCH_BASELINE_APPLY=1 makes the baseline write with server-side apply, as the operator does
# (what that costs the API server, apart from the operator's own work),
# BENCH_WRAP runs the operator under a tool (`heaptrack -o FILE`; the process figures are then
# the tool's), BENCH_PROFILE=profiling builds with symbols.
set -euo pipefail
cd "$(dirname "$0")/../.."

watches=${1:-200}
per_watch=${2:-50}
concurrency=${BENCH_CONCURRENCY:-8}
quiet=${BENCH_QUIET_SECONDS:-60}
want=$((watches * per_watch))

. tests/bench/common.sh

# The simulator's scenario: per watch one SAE order in flight (2 batches, at the first), the
# rest finished. baseline.rs builds the same objects.
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

echo "starting a control plane" >&2
eval "$(tests/tools/cluster.sh up "$state/cluster" --owner-pid $$ 2>/dev/null)"
export KUBECONFIG
"$simulator" --listen "127.0.0.1:$sim_port" --scenario "$state/scenario.yaml" >"$state/sim.log" 2>&1 &
pids+=($!)
kubectl apply --server-side -f crds/ >/dev/null
# kubectl wait fails at once on a CRD without a status yet: ask again.
for _ in $(seq 60); do kubectl wait --for=condition=Established --timeout=5s crd --all >/dev/null 2>&1 && break; sleep 1; done
kubectl wait --for=condition=Established --timeout=5s crd --all >/dev/null
kubectl create namespace baseline >/dev/null
kubectl create namespace bench >/dev/null

# Requests the API server served on the resources the operator uses, by verb: "VERB COUNT" lines.
requests() {
  kubectl get --raw /metrics | awk '
    /^apiserver_request_total\{/ && /resource="(changeorders|changeorderwatches|events|secrets)"/ {
      match($0, /verb="[A-Z]+"/); v = substr($0, RSTART + 6, RLENGTH - 7); n[v] += $NF }
    END { for (v in n) print v, n[v] }' | sort
}
# Difference of two `requests` snapshots, as "VERB n, VERB n" (zero counts left out).
delta() {
  join -a 2 -e 0 -o 0,1.2,2.2 "$1" "$2" | awk '{ d = $3 - $2; if (d > 0) { printf "%s%s %d", sep, $1, d; sep = ", " } }
    END { if (sep == "") printf "none" }'
}
writes() {
  join -a 2 -e 0 -o 0,1.2,2.2 "$1" "$2" | awk '$1 ~ /^(POST|PUT|PATCH|DELETE|APPLY)$/ { s += $3 - $2 } END { print s + 0 }'
}
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# CPU seconds the API server and etcd have used so far: what a write costs on the server side.
server_cpu() {
  local total=0 name
  for name in kube-apiserver etcd; do
    total=$(echo "$total + $(cpu_seconds "$(<"$state/cluster/pids/$name.pid")")" | bc)
  done
  echo "$total"
}

base_how="create + status"
[ "${BENCH_BASELINE_APPLY:-0}" = 1 ] && base_how="apply + status apply"
export BENCH_BASELINE_APPLY
[ "${BENCH_BASELINE:-1}" = 0 ] || echo "baseline: $want objects, $base_how, $concurrency at a time" >&2
server0=$(server_cpu)
if [ "${BENCH_BASELINE:-1}" = 0 ]; then
  base_secs= base_cpu=
else
  read -r _ base_secs base_cpu < <("$baseline" write baseline "$watches" "$per_watch" "$concurrency")
fi
server1=$(server_cpu)

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
requests >"$state/req0"
server2=$(server_cpu)
"$baseline" wait bench "$want" >"$state/synced" &
waiter=$!
sleep 1 # the waiter's watch is open before the first write
# Serving only its namespace: the baseline's objects stay (deleting 10,000 takes the API server
# minutes) and carry the same labels, so a cluster-wide cache would hold them too.
${BENCH_WRAP:-} "$operator" run --namespaces bench --admin-listen "127.0.0.1:$admin_port" --calls-per-minute 60000 \
  --concurrency "$concurrency" --allowed-endpoints "http://127.0.0.1:*" >"$state/operator.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")
wait "$waiter" || { tail -20 "$state/operator.log"; exit 1; }
op_secs=$(cat "$state/synced")
sync_cpu=$(cpu_seconds "$op_pid")
server3=$(server_cpu)
requests >"$state/req1"

metric() { curl -s "127.0.0.1:$admin_port/metrics" | awk -v m="$1" '$1 ~ "^"m"(\\{|$)" { s += $2 } END { print s + 0 }'; }
echo "quiet: settling 15 s, then $quiet s with nothing changing in the cloud" >&2
sleep 15
requests >"$state/req2"
calls0=$(metric changeorder_cloud_calls_total)
polls0=$(metric changeorder_polls_total)
sleep "$quiet"
requests >"$state/req3"
calls1=$(metric changeorder_cloud_calls_total)
polls1=$(metric changeorder_polls_total)
kill -0 "$op_pid" 2>/dev/null || { echo "the operator exited:" >&2; tail -20 "$state/operator.log" >&2; exit 1; }
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$op_pid/status")

op_rate=$(echo "scale=1; $want / $op_secs" | bc)
if [ -n "$base_secs" ]; then
  base_rate="$(echo "scale=1; $want / $base_secs" | bc) orders/s ($base_secs s)"
  ratio="$(echo "scale=2; $op_rate / ($want / $base_secs)" | bc)×"
else
  base_rate="not run (BENCH_BASELINE=0)" ratio="n/a"
fi
polls=$((polls1 - polls0))
per_poll=$( ((polls > 0)) && echo "scale=2; ($calls1 - $calls0) / $polls" | bc || echo "n/a")

cat <<EOF

| $watches SAE watches × $per_watch orders = $want orders ($watches in flight), $(nproc) cores | |
|---|---|
| cold sync, baseline kube client ($base_how, $concurrency at a time) | $base_rate |
| cold sync, operator | $op_rate orders/s ($op_secs s) |
| operator ÷ baseline | ${ratio} |
| operator peak RSS (RSS after the quiet minute) | $((hwm / 1024)) MiB ($((rss / 1024)) MiB) |
| client CPU during the cold sync: baseline, operator | ${base_cpu:-n/a} s, ${sync_cpu} s |
| API server + etcd CPU during the cold sync: baseline, operator | $(echo "$server1 - $server0" | bc) s, $(echo "$server3 - $server2" | bc) s |
| API requests during the cold sync | $(delta "$state/req0" "$state/req1") |
| API requests in a quiet ${quiet} s | $(delta "$state/req2" "$state/req3") |
| of which writes | $(writes "$state/req2" "$state/req3") |
| cloud calls per poll in the quiet ${quiet} s | $per_poll ($((calls1 - calls0)) calls, $polls polls) |
EOF
