#!/usr/bin/env bash
# Benchmark: many watches and orders against a local control plane and the simulator. Prints
# figures (time to the first full sync, cloud calls and API writes per steady-state poll, the
# controller's memory); it asserts nothing, and is not part of the test suite.
#
# Usage: tests/bench/scale.sh [APPS] [ORDERS_PER_APP]   (default 50 × 20)
set -euo pipefail
cd "$(dirname "$0")/../.."

apps=${1:-50}
per_app=${2:-20}
state=$(mktemp -d)
sim_port=18180
admin_port=18181

bin_dir=$(tests/tools/controlplane-bins.sh | tail -n 1)
export PATH="$bin_dir:$PATH"
cargo build --release --quiet
operator=${CARGO_TARGET_DIR:-target}/release/changeorder-operator

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tests/tools/cluster.sh down "$state/cluster" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

# A scenario of `apps` SAE apps; in each, one order in flight and the rest finished.
{
  echo "apps:"
  for a in $(seq "$apps"); do
    echo "  - provider: sae"
    echo "    appId: bench-$a"
    echo "    changeOrders:"
    echo "      - { id: bench-$a-live, createdAt: -1m, status: 1, batchCount: 2, currentBatch: 1 }"
    for o in $(seq 2 "$per_app"); do
      echo "      - { id: bench-$a-$o, createdAt: -${o}h, status: 2 }"
    done
  done
} >"$state/scenario.yaml"

eval "$(tests/tools/cluster.sh up "$state/cluster" --owner-pid $$ 2>/dev/null)"
export KUBECONFIG
"$operator" simulate --listen "127.0.0.1:$sim_port" --scenario "$state/scenario.yaml" >"$state/sim.log" 2>&1 &
pids+=($!)
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null
kubectl create namespace bench >/dev/null
kubectl create secret generic -n bench cloud --from-literal=accessKeyId=demo-key-id \
  --from-literal=accessKeySecret=demo-key-secret >/dev/null
for a in $(seq "$apps"); do
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
EOF
done | kubectl apply -f - >/dev/null

want=$((apps * per_app))
start=$(date +%s.%N)
"$operator" run --admin-listen "127.0.0.1:$admin_port" --calls-per-minute 6000 >"$state/operator.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")
until [ "$(kubectl get changeorders -n bench -o jsonpath='{range .items[?(@.status.phase)]}x{end}' | wc -c)" -ge "$want" ]; do
  sleep 0.5
done
synced=$(echo "$(date +%s.%N) - $start" | bc)

calls() { curl -s "127.0.0.1:$admin_port/metrics" | awk '/^changeorder_cloud_calls_total/ {s += $2} END {print s + 0}'; }
versions() { kubectl get changeorders,changeorderwatches -n bench -o jsonpath='{range .items[*]}{.metadata.resourceVersion}{"\n"}{end}' | sort; }
sleep 15 # let the last status writes land
calls_before=$(calls)
versions >"$state/before"
sleep 60
calls_after=$(calls)
versions >"$state/after"
writes=$(comm -13 "$state/before" "$state/after" | wc -l)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$op_pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")

echo "watches: $apps, orders: $want ($apps in flight)"
echo "first full sync: ${synced}s"
echo "steady state, 60 s: $((calls_after - calls_before)) cloud calls (in-flight watches poll every 10 s: 1 list + 1 describe each), $writes objects written"
echo "controller memory: RSS ${rss} KiB, peak ${hwm} KiB"
