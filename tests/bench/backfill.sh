#!/usr/bin/env bash
# Benchmark: history backfill completion time at a given budget. One SAE watch whose app has
# BENCH_HISTORY orders, all finished before the watch first lists them (so written from the list,
# without batches), on an account limited to BENCH_QUOTA calls a minute. It prints how long the
# first list takes to show them, how long until every one is described (`status.detailed`), the
# describes per minute that took and the cloud calls per minute. It asserts nothing; not part of
# the test suite.
#
#   tests/bench/backfill.sh                                  120 orders at 60 calls a minute
#   BENCH_HISTORY=300 BENCH_QUOTA=120 tests/bench/backfill.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

history=${BENCH_HISTORY:-120}
quota=${BENCH_QUOTA:-60}
interval=60

. tests/bench/common.sh

python3 - "$state" "$history" <<'EOF'
import sys
state, n = sys.argv[1], int(sys.argv[2])
lines = ["apps:", "  - provider: sae", "    appId: history", "    changeOrders:"]
for i in range(1, n + 1):
    lines.append(f"      - {{ id: h{i:04d}, createdAt: -{i}h, status: 2, batchCount: 2 }}")
open(f"{state}/scenario.yaml", "w").write("\n".join(lines) + "\n")
EOF

fresh_cluster cluster
kubectl create namespace bench >/dev/null
kubectl create secret generic -n bench cloud --from-literal=accessKeyId=demo-key-id \
  --from-literal=accessKeySecret=demo-key-secret >/dev/null
"$simulator" --listen "127.0.0.1:$sim_port" --scenario "$state/scenario.yaml" >"$state/sim.log" 2>&1 &
pids+=($!)
kubectl apply -f - >/dev/null <<EOF
apiVersion: changeorder.io/v1alpha1
kind: ChangeOrderWatch
metadata: {name: history, namespace: bench}
spec:
  provider: sae
  endpoint: http://127.0.0.1:$sim_port
  appId: history
  credentialsSecretRef: {name: cloud}
  interval: ${interval}s
  retention: {maxFinished: $history}
EOF
start=$(date +%s.%N)
"$operator" run --admin-listen "127.0.0.1:$admin_port" --calls-per-minute "$quota" \
  --allowed-endpoints "http://127.0.0.1:*" >"$state/operator.log" 2>&1 &
pids+=($!)

# Counts of (ChangeOrders, detailed ones), every second.
count() {
  kubectl get changeorders -n bench -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(len(items), sum(1 for o in items if (o.get("status") or {}).get("detailed")))'
}
listed=""
limit=$(( history * 180 / quota + 120 ))
while :; do
  read -r total detailed < <(count)
  now=$(date +%s.%N)
  if [ -z "$listed" ] && [ "$total" -ge "$history" ]; then listed=$now; fi
  if [ "$detailed" -ge "$history" ]; then done_at=$now; break; fi
  if python3 -c "import sys; sys.exit(0 if $now - $start > $limit else 1)"; then
    echo "gave up after ${limit} s: $detailed of $history described" >&2
    done_at=""
    break
  fi
  sleep 1
done
calls=$(curl -s "127.0.0.1:$admin_port/metrics" | awk '/^changeorder_cloud_calls_total/ { s += $2 } END { print s + 0 }')
history_status=$(kubectl get changeorderwatch -n bench history -o jsonpath='{.status.history}')

python3 - "$start" "$listed" "$done_at" "$history" "$quota" "$calls" "$history_status" <<'EOF'
import sys
start, listed, done, n, quota, calls, hist = sys.argv[1:8]
start, n, quota, calls = float(start), int(n), float(quota), float(calls)
print()
print(f"| history backfill: 1 SAE watch, {n} finished orders, {int(quota)} calls/min | |")
print("|---|---|")
if listed:
    print(f"| first list shows them all | {float(listed) - start:.1f} s after the operator started |")
if done:
    took = float(done) - float(listed or start)
    print(f"| every order described (status.detailed) | {float(done) - start:.1f} s after start, {took:.1f} s after the list |")
    # Times are whole seconds: a short history may be described within the list's own second.
    rate = f"{n / took * 60:.1f}" if took > 0 else f"all {n} within the list's second"
    print(f"| describes per minute while backfilling | {rate} (budget {int(quota)}; the floor is {n} orders at the full budget: {n / quota * 60:.0f} s) |")
    whole = float(done) - start
    print(f"| cloud calls per minute, whole run | {f'{calls / whole * 60:.1f}' if whole > 0 else 'n/a (under a second)'} |")
else:
    print("| every order described | not within the time limit |")
print(f"| watch status.history at the end | {hist} |")
EOF
