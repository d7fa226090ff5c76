#!/usr/bin/env bash
# Benchmark: a fleet in one ChangeOrderWatchSet (issue 23). One set covers APPS applications of
# one namespace (SAE) or logical region (EDAS), each with 50 orders finished before the first
# list; the operator runs with --enable-watch-sets and a push receiver. It prints, in one table:
#
#   - cold sync: from the operator's start until every app has its watch and every order its
#     ChangeOrder with a phase;
#   - the operator's peak RSS (VmHWM) and its RSS after the quiet window;
#   - history backfill: how long until every order is described (the watches' status.history
#     remaining 0) at BENCH_QUOTA calls a minute;
#   - cloud calls per minute at rest, by action, over a quiet window of one watch interval after
#     the backfill (counted by the simulator, GET /__sim/stats): generated SAE watches name their
#     namespace and find new orders with one shared ListNamespaceChangeOrders per interval, so
#     this should not grow with the number of apps;
#   - push-to-status latency p50/p99: new orders appear in the cloud one by one; right after each
#     appears a signed push goes to its app's ChangeOrderReceiver, and the latency runs until its
#     ChangeOrder has a phase.
#
# It asserts nothing; not part of the test suite.
#
#   tests/bench/fleet.sh [APPS] [PROVIDER]     default 100 sae; PROVIDER sae or edas
#   tests/bench/fleet.sh 1000                  1000 apps (BENCH_QUOTA=30000 keeps the backfill short)
#   BENCH_ORDERS=5 tests/bench/fleet.sh 10     a quick check
#
# Environment: BENCH_ORDERS (orders per app, 50), BENCH_QUOTA (calls per minute, 3000),
# BENCH_INTERVAL (the template's interval and the set's discoveryInterval, 2m), BENCH_QUIET_SECONDS
# (the quiet window, default one interval), BENCH_PUSHES (push samples, 20), BENCH_PUSH_GAP
# (seconds between two new orders, 5).
#
# The simulator cannot add orders while it runs, and the moment the push phase starts is not
# known in advance (sync and backfill take what they take), so for that phase the simulator is
# restarted on the same port with the same orders (absolute creation times, identical replies)
# plus the new ones, created a few seconds after the restart.
set -euo pipefail
cd "$(dirname "$0")/../.."

apps=${1:-${BENCH_APPS:-100}}
provider=${2:-${BENCH_PROVIDER:-sae}}
per_app=${BENCH_ORDERS:-50}
quota=${BENCH_QUOTA:-3000}
interval=${BENCH_INTERVAL:-2m}
pushes=${BENCH_PUSHES:-20}
push_gap=${BENCH_PUSH_GAP:-5}
case "$provider" in sae | edas) ;; *) echo "provider must be sae or edas, not $provider" >&2; exit 2 ;; esac
interval_s=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)([sm])', sys.argv[1]); print(int(m[1]) * (60 if m[2] == 'm' else 1))" "$interval")
quiet=${BENCH_QUIET_SECONDS:-$interval_s}
want=$((apps * per_app))
region="cn-hangzhou:fleet"

. tests/bench/common.sh
receiver_port=$(free_port)
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

# The scenario: every app's orders finished hours before the run (absolute times, so the
# restarted simulator answers the same), and the push phase's new orders ($1: their first
# creation time in unix seconds; none when empty).
scenario() {
  python3 - "$provider" "$apps" "$per_app" "$region" "$start_wall" "$pushes" "$push_gap" "${1:-}" <<'EOF'
import sys, datetime
provider, apps, per_app, region, t0, pushes, gap, push_at = sys.argv[1:9]
apps, per_app, t0, pushes, gap = int(apps), int(per_app), float(t0), int(pushes), float(gap)
def iso(t): return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
new = {}
if push_at:
    for i in range(pushes):
        new.setdefault(i % apps + 1 if apps < pushes else i * apps // pushes + 1, []).append(i)
lines = ["apps:"]
for a in range(1, apps + 1):
    app = f"app-{a:04d}"
    lines += [f"  - provider: {provider}", f"    appId: {app}", f'    namespaceId: "{region}"', "    changeOrders:"]
    for k in range(1, per_app + 1):
        lines.append(f'      - {{ id: {app}-h{k:02d}, createdAt: "{iso(t0 - k * 3600 - a)}", status: 2, batchCount: 2 }}')
    for i in new.get(a, []):
        lines.append(f'      - {{ id: {app}-p{i:02d}, createdAt: "{iso(float(push_at) + i * gap)}", status: 1, batchCount: 2, currentBatch: 1 }}')
print("\n".join(lines))
EOF
}
# The push samples: "INDEX APP ORDER_ID" lines, as the scenario places them.
samples() {
  python3 - "$apps" "$pushes" <<'EOF'
import sys
apps, pushes = int(sys.argv[1]), int(sys.argv[2])
for i in range(pushes):
    a = i % apps + 1 if apps < pushes else i * apps // pushes + 1
    print(i, f"app-{a:04d}", f"app-{a:04d}-p{i:02d}")
EOF
}

start_wall=$(date +%s)
scenario >"$state/scenario.yaml"

fresh_cluster cluster
kubectl create namespace bench >/dev/null
kubectl create secret generic -n bench cloud --from-literal=accessKeyId=demo-key-id \
  --from-literal=accessKeySecret=demo-key-secret >/dev/null
kubectl create secret generic -n bench hook --from-literal=token="$token" >/dev/null

"$simulator" --listen "127.0.0.1:$sim_port" --scenario "$state/scenario.yaml" >"$state/sim.log" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")

if [ "$provider" = sae ]; then generator="sae: {namespaceId: \"$region\"}"; else generator="edas: {logicalRegionId: \"$region\"}"; fi
{
  cat <<EOF
apiVersion: changeorder.io/v1alpha1
kind: ChangeOrderWatchSet
metadata: {name: fleet, namespace: bench}
spec:
  provider: $provider
  endpoint: http://127.0.0.1:$sim_port
  credentialsSecretRef: {name: cloud}
  generator: {$generator}
  discoveryInterval: $interval
  template:
    interval: $interval
    inFlightInterval: 15s
    retention: {maxFinished: $((per_app + 10))}
EOF
  # One receiver per app a push goes to, as each app's pipeline would have.
  samples | awk '{ print $2 }' | sort -u | while read -r app; do
    cat <<EOF
---
apiVersion: changeorder.io/v1alpha1
kind: ChangeOrderReceiver
metadata: {name: $app, namespace: bench}
spec:
  watches: [fleet-$app]
  secretRef: {name: hook}
EOF
  done
} | kubectl apply -f - >/dev/null

# Every status change of every ChangeOrder, with the time it was seen: "UNIX_SECONDS NAME PHASE
# BATCH" lines (one watch, no repeated lists).
"$baseline" lag bench "$state/seen" &
pids+=($!)
sleep 1
echo "operator: $apps $provider apps × $per_app orders = $want, $quota calls/min, interval $interval" >&2
start=$(date +%s.%N)
"$operator" run --namespaces bench --admin-listen "127.0.0.1:$admin_port" --calls-per-minute "$quota" \
  --enable-watch-sets --receiver-listen "127.0.0.1:$receiver_port" \
  --allowed-endpoints "http://127.0.0.1:*" >"$state/operator.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")

elapsed() { python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.1f}')" "$(date +%s.%N)" "$start"; }
alive() { kill -0 "$op_pid" 2>/dev/null || { echo "the operator exited:" >&2; tail -20 "$state/operator.log" >&2; exit 1; }; }
# ChangeOrders seen with a phase so far, and the time the last of them first had one.
phased() {
  python3 - "$state/seen" <<'EOF'
import sys
first = {}
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split(" ")
    if len(p) == 4 and p[2] and p[1] not in first:
        first[p[1]] = float(p[0])
print(len(first), max(first.values(), default=0))
EOF
}

# 1. Cold sync.
limit=$((120 + want / 20))
while :; do
  alive
  read -r n last < <(phased)
  if [ "$n" -ge "$want" ]; then break; fi
  if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $start > $limit else 1)"; then
    echo "gave up after ${limit} s: $n of $want orders have a phase" >&2
    exit 1
  fi
  sleep 1
done
sync_secs=$(python3 -c "print(f'{$last - $start:.1f}')")
sync_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
watch_count=$(kubectl get changeorderwatches -n bench -l changeorder.io/watch-set=fleet --no-headers | wc -l)
echo "cold sync: ${sync_secs} s, $watch_count watches" >&2

# 2. History backfill, done when every order is described: cheap checks first (the watches'
# status.history shows nothing remaining, the simulator has described every order once), then
# the ChangeOrders themselves (`status.detailed`). A watch whose whole history was described in
# its first step may show no status.history at all, so the watches alone do not tell.
history() {
  kubectl get changeorderwatches -n bench -l changeorder.io/watch-set=fleet -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
h = [(o.get("status") or {}).get("history") for o in items]
print(sum(1 for x in h if x), sum(x["remaining"] for x in h if x), sum(x["described"] for x in h if x))'
}
sim_stats() { curl -s "127.0.0.1:$sim_port/__sim/stats"; }
cloud_described() { sim_stats | python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("described") or {}))'; }
detailed() {
  kubectl get changeorders -n bench -o json | python3 -c '
import json, sys
print(sum(1 for o in json.load(sys.stdin)["items"] if (o.get("status") or {}).get("detailed")))'
}
limit=$((300 + want * 180 / quota))
backfill_at="" detailed_n=0
while :; do
  alive
  read -r with remaining described < <(history)
  t=$(date +%s.%N)
  if [ "$remaining" -eq 0 ] && [ "$(cloud_described)" -ge "$want" ]; then
    detailed_n=$(detailed)
    if [ "$detailed_n" -ge "$want" ]; then backfill_at=$t; break; fi
  fi
  if python3 -c "import sys; sys.exit(0 if $t - $start > $limit else 1)"; then
    echo "gave up after ${limit} s: $remaining orders still to describe ($with watches report), $detailed_n detailed" >&2
    break
  fi
  sleep 2
done
echo "backfill: $detailed_n of $want detailed at $(elapsed) s; $with of $apps watches show status.history ($described described, $remaining remaining)" >&2
if [ "$with" -lt "$apps" ]; then
  echo "watches without status.history: $(kubectl get changeorderwatches -n bench -l changeorder.io/watch-set=fleet -o json |
    python3 -c 'import json, sys; print(" ".join(o["metadata"]["name"] for o in json.load(sys.stdin)["items"] if not (o.get("status") or {}).get("history"))[:300])')" >&2
fi

# 3. The quiet window: nothing changes in the cloud.
echo "quiet: ${quiet} s" >&2
sleep 5
sim_stats >"$state/stats0"
sleep "$quiet"
sim_stats >"$state/stats1"
alive
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$op_pid/status")
load_quiet=$(cut -d' ' -f1-3 /proc/loadavg)

# 4. Pushes: the simulator comes back with new orders, one every $push_gap s.
push_at=$(($(date +%s) + 10))
scenario "$push_at" >"$state/scenario2.yaml"
mapfile -t urls < <(kubectl get changeorderreceivers -n bench -o jsonpath='{range .items[*]}{.metadata.name}={.status.url}{"\n"}{end}')
url_of() { local u; for u in "${urls[@]}"; do [ "${u%%=*}" != "$1" ] || { echo "${u#*=}"; return; }; done; }
kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
"$simulator" --listen "127.0.0.1:$sim_port" --scenario "$state/scenario2.yaml" >"$state/sim2.log" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")
echo "pushes: $pushes new orders, one every ${push_gap} s" >&2
: >"$state/pushed"
while read -r i app id; do
  url=$(url_of "$app")
  [ -n "$url" ] || { echo "receiver $app has no url" >&2; continue; }
  # Right after the order appears in the cloud.
  python3 -c "import time; time.sleep(max(0, $push_at + $i * $push_gap + 0.05 - time.time()))"
  ts=$(date +%s)
  body='{"release":"started"}'
  sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$token" -hex | sed 's/^.* //')
  t=$(date +%s.%N)
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Changeorder-Timestamp: $ts" \
    -H "X-Changeorder-Signature: sha256=$sig" --data "$body" "http://127.0.0.1:$receiver_port$url")
  echo "$t fleet-$app-$id $code" >>"$state/pushed"
done < <(samples)
sleep 30
alive
final_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$state" "$provider" "$apps" "$per_app" "$quota" "$interval" "$quiet" "$start" "$sync_secs" \
  "$watch_count" "$sync_hwm" "$hwm" "$rss" "$final_hwm" "$backfill_at" "$with" "$load_quiet" "$load_end" <<'EOF'
import json, sys, datetime, os
(state, provider, apps, per_app, quota, interval, quiet, start, sync_secs, watch_count, sync_hwm, hwm,
 rss, final_hwm, backfill_at, with_history, load_quiet, load_end) = sys.argv[1:19]
apps, per_app, quiet, start = int(apps), int(per_app), float(quiet), float(start)
want = apps * per_app
mib = lambda kib: f"{int(kib) / 1024:.0f} MiB"

def calls(path):
    s = json.load(open(path))
    out = {}
    for product, actions in (s.get("products") or {}).items():
        for action, a in actions.items():
            out[f"{product} {action}"] = a["calls"]
    return out, len(s.get("described") or {})
c0, _ = calls(f"{state}/stats0")
c1, described = calls(f"{state}/stats1")
rest = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
rest = {k: v for k, v in rest.items() if v}
total = sum(rest.values())
by_action = ", ".join(f"{k.split(' ', 1)[1]} {v / quiet * 60:.2f}" for k, v in sorted(rest.items())) or "none"

first = {}
for line in open(f"{state}/seen"):
    p = line.rstrip("\n").split(" ")
    if len(p) == 4 and p[2] and p[1] not in first:
        first[p[1]] = float(p[0])
lat, missed, refused = [], 0, 0
for line in open(f"{state}/pushed"):
    t, name, code = line.split()
    if code != "202":
        refused += 1
    if name in first:
        lat.append(first[name] - float(t))
    else:
        missed += 1
lat.sort()
def pct(p): return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] if lat else float("nan")

print()
print(f"| fleet: 1 {provider.upper()} watch set, {apps} apps × {per_app} orders = {want}, {quota} calls/min, "
      f"interval {interval}, {os.cpu_count()} cores, {datetime.date.today()} | |")
print("|---|---|")
print(f"| cold sync (operator start until {watch_count} watches and every order has a phase) | {float(sync_secs):.1f} s ({want / float(sync_secs):.0f} orders/s) |")
print(f"| operator peak RSS (VmHWM): at sync end, after the quiet window, at the end | {mib(sync_hwm)}, {mib(hwm)}, {mib(final_hwm)} |")
print(f"| operator RSS after the quiet window | {mib(rss)} |")
if backfill_at:
    b = float(backfill_at) - start
    print(f"| history backfill done (every order `status.detailed`) | {b:.1f} s after start, "
          f"{b - float(sync_secs):.1f} s after the cold sync; orders described per minute: {want / b * 60:.0f} since the start, "
          f"{want / (b - float(sync_secs)) * 60:.0f} after the cold sync ({with_history} of {apps} watches show status.history) |")
else:
    print(f"| history backfill done | not within the time limit ({described} orders described) |")
print(f"| cloud calls per minute at rest ({quiet:.0f} s window) | {total / quiet * 60:.2f} ({total} calls) |")
print(f"| of which, by action (per minute) | {by_action} |")
print(f"| push to status (phase), {len(lat)} pushes | p50 {pct(50):.2f} s, p99 {pct(99):.2f} s, max {lat[-1] if lat else float('nan'):.2f} s"
      f"{f'; {missed} never shown' if missed else ''}{f'; {refused} pushes not accepted' if refused else ''} |")
print(f"| load average: after the quiet window, at the end | {load_quiet}; {load_end} |")
EOF
