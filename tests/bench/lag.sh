#!/usr/bin/env bash
# Benchmark: freshness under the cloud's quota. 20 SAE watches share one account limited to 60
# calls a minute; 30 orders are in flight (10 watches with 2, 10 with 1) and move to their next
# batch at random moments on the simulator's timeline. For every change it measures the lag from
# the change in the cloud to the moment the ChangeOrder's status shows it in the API server, and
# prints p50/p99 against the theoretical minimum. It asserts nothing; not part of the test suite.
#
#   tests/bench/lag.sh                 the case as stated (about 8 minutes)
#   BENCH_SPEEDUP=4 tests/bench/lag.sh a quick check: quota, timeline and intervals 4× faster,
#                                      lags reported in unscaled seconds
set -euo pipefail
cd "$(dirname "$0")/../.."

speedup=${BENCH_SPEEDUP:-1}
watches=20
quota=60           # calls per minute per account (SAE)
interval=60        # each watch's interval, seconds: its discovery list
warmup=90          # seconds of scenario time before the first change
window=360         # seconds of scenario time with changes

. tests/bench/common.sh

# The scenario, and beside it the change times (scenario seconds) the lags are measured from.
python3 - "$state" "$watches" "$warmup" "$window" "$speedup" <<'EOF'
import random, sys
state, watches, warmup, window, speedup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
random.seed(7)
lines = [f"timeScale: {speedup}", "apps:"]
changes = []
for w in range(1, watches + 1):
    lines += ["  - provider: sae", f"    appId: lag-{w}", "    changeOrders:"]
    for o in range(1, (2 if w <= 10 else 1) + 1):
        oid = f"lag-{w}-live{o}"
        steps, t, batch = [], warmup + random.uniform(0, 60), 1
        while t < warmup + window:
            batch += 1
            steps.append(f"{{ after: {int(t)}s, status: 1, currentBatch: {batch} }}")
            changes.append((f"lag-{w}-{oid}", batch, int(t)))
            t += random.uniform(60, 100)
        lines.append(f"      - {{ id: {oid}, createdAt: -1m, status: 1, batchCount: {batch + 1}, currentBatch: 1,")
        lines.append(f"          timeline: [{', '.join(steps)}] }}")
    for o in range(1, 6):
        lines.append(f"      - {{ id: lag-{w}-done{o}, createdAt: -{o}h, status: 2 }}")
open(f"{state}/scenario.yaml", "w").write("\n".join(lines) + "\n")
open(f"{state}/changes", "w").write("".join(f"{n} {b} {t}\n" for n, b, t in changes))
EOF

fresh_cluster cluster
kubectl create namespace bench >/dev/null
kubectl create secret generic -n bench cloud --from-literal=accessKeyId=demo-key-id \
  --from-literal=accessKeySecret=demo-key-secret >/dev/null
in_flight_interval=$(python3 -c "print(max(1, round(10 / $speedup)))")
watch_interval=$(python3 -c "print(max(1, round($interval / $speedup)))")
for w in $(seq "$watches"); do
  cat <<EOF
---
apiVersion: changeorder.io/v1alpha1
kind: ChangeOrderWatch
metadata: {name: lag-$w, namespace: bench}
spec:
  provider: sae
  endpoint: http://127.0.0.1:$sim_port
  appId: lag-$w
  credentialsSecretRef: {name: cloud}
  interval: ${watch_interval}s
  inFlightInterval: ${in_flight_interval}s
EOF
done | kubectl apply -f - >/dev/null

"$baseline" lag bench "$state/seen" &
pids+=($!)
sleep 1
sim_start=$(date +%s.%N)
"$simulator" --listen "127.0.0.1:$sim_port" --scenario "$state/scenario.yaml" >"$state/sim.log" 2>&1 &
pids+=($!)
"$operator" run --admin-listen "127.0.0.1:$admin_port" \
  --calls-per-minute "$(python3 -c "print(round($quota * $speedup))")" \
  --allowed-endpoints "http://127.0.0.1:*" >"$state/operator.log" 2>&1 &
pids+=($!)
total=$(python3 -c "print(($warmup + $window + 120) / $speedup)")
echo "running ${total} s" >&2
sleep "$total"
calls=$(curl -s "127.0.0.1:$admin_port/metrics" | awk '/^changeorder_cloud_calls_total/ { s += $2 } END { print s + 0 }')

python3 - "$state" "$sim_start" "$speedup" "$watches" "$quota" "$interval" "$calls" "$total" <<'EOF'
import sys, collections
state, sim_start, speedup, watches, quota, interval, calls, total = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
seen = collections.defaultdict(list)  # name -> [(t, batch)]
for line in open(f"{state}/seen"):
    parts = line.split()
    if len(parts) == 4:
        seen[parts[1]].append((float(parts[0]), int(parts[3])))
lags, per_watch, missed = [], collections.defaultdict(list), 0
for line in open(f"{state}/changes"):
    name, batch, after = line.split(); batch = int(batch)
    at = sim_start + float(after) / speedup
    shown = [t for t, b in seen.get(name, []) if b >= batch]
    if not shown:
        missed += 1; continue
    lag = (min(shown) - at) * speedup  # unscaled seconds
    lags.append(lag); per_watch[name.rsplit("-", 1)[0]].append(lag)
lags.sort()
def pct(xs, p): return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")
n_orders = 30
# Every in-flight order needs one describe per observation; discovery lists every watch once per
# interval. The shortest round in which every order is observed once:
round_min = n_orders / (quota / 60 - watches / interval)
print()
print(f"| {watches} SAE watches on one account, {int(quota)} calls/min, {n_orders} orders in flight, {len(lags)} changes{'' if speedup == 1 else f', run {speedup:g}× faster, figures unscaled'} | |")
print("|---|---|")
print(f"| theoretical minimum round (30 describes; lists at each watch's {int(interval)} s interval) | {round_min:.1f} s: lag p50 ≥ {round_min/2:.1f} s, p99 ≥ {0.99*round_min:.1f} s |")
print(f"| lag p50 | {pct(lags, 50):.1f} s ({pct(lags, 50)/(round_min/2):.2f}× the minimum) |")
print(f"| lag p99 | {pct(lags, 99):.1f} s ({pct(lags, 99)/(0.99*round_min):.2f}× the minimum) |")
print(f"| lag max | {lags[-1] if lags else float('nan'):.1f} s |")
worst = max(per_watch.items(), key=lambda kv: max(kv[1])) if per_watch else ("-", [float("nan")])
print(f"| worst watch (max lag) | {worst[0]}: {max(worst[1]):.1f} s; watches with changes seen: {len(per_watch)} of {watches} |")
print(f"| changes shown more than one minimum round after they happened | {sum(l > round_min for l in lags)} of {len(lags)} |")
print(f"| changes never shown | {missed} |")
print(f"| cloud calls per minute | {calls / total * 60 / speedup:.1f} (quota {int(quota)}) |")
EOF
