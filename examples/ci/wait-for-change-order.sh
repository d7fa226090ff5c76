#!/usr/bin/env bash
# Waits until a cloud change order, mirrored by changeorder-operator, has finished: exit 0 when it
# succeeded (condition Ready), 1 when it failed or was cancelled (condition Stalled), 2 on timeout
# or a usage error. For CI/CD pipelines that deploy through EDAS, SAE or AppStack and must not go
# on before the release is done.
#
# Usage: wait-for-change-order.sh -w WATCH -i CHANGE_ORDER_ID [-n NAMESPACE] [-t TIMEOUT]
#   WATCH            the ChangeOrderWatch that polls the application
#   CHANGE_ORDER_ID  EDAS/SAE ChangeOrderId or AppStack sn, as the deploy call returned it
#   TIMEOUT          the whole wait, in seconds, minutes or hours: 90s, 30m, 2h (default 30m)
set -euo pipefail

usage() {
  echo "usage: $0 -w WATCH -i CHANGE_ORDER_ID [-n NAMESPACE] [-t TIMEOUT (30s, 10m, 1h; default 30m)]" >&2
  exit 2
}

watch="" id="" namespace="" timeout="30m"
while getopts "w:i:n:t:h" opt; do
  case $opt in
    w) watch=$OPTARG ;;
    i) id=$OPTARG ;;
    n) namespace=$OPTARG ;;
    t) timeout=$OPTARG ;;
    *) usage ;;
  esac
done
[[ -n $watch && -n $id ]] || usage

kc=(kubectl)
[[ -n $namespace ]] && kc+=(--namespace "$namespace")

# 90s, 30m or 2h in seconds, for the deadline.
to_seconds() {
  local n=${1%[smh]}
  case $1 in
    *h) echo $((n * 3600)) ;; *m) echo $((n * 60)) ;; *) echo "$n" ;;
  esac
}
[[ $timeout =~ ^[0-9]+[smh]?$ ]] || usage
deadline=$((SECONDS + $(to_seconds "$timeout")))

# The operator creates the ChangeOrder on its next poll after the deploy; find it by the cloud's
# id among the watch's orders.
name=""
while [[ -z $name ]]; do
  # A kubectl error (no access, no CRDs) ends the wait with 2, never with 1 ("failed").
  name=$("${kc[@]}" get changeorders -l "changeorder.io/watch=$watch" \
    -o jsonpath="{range .items[?(@.spec.changeOrderId==\"$id\")]}{.metadata.name}{end}") || exit 2
  if [[ -z $name ]]; then
    if ((SECONDS >= deadline)); then
      echo "change order $id of watch $watch did not appear within $timeout" >&2
      exit 2
    fi
    sleep 5
  fi
done
echo "waiting for changeorder/$name (cloud id $id)"

# Wait for whichever comes first: Ready (succeeded) or Stalled (failed or cancelled).
left="$((deadline - SECONDS))s"
"${kc[@]}" wait --for=condition=Ready "changeorder/$name" --timeout="$left" >/dev/null 2>&1 &
ready_pid=$!
"${kc[@]}" wait --for=condition=Stalled "changeorder/$name" --timeout="$left" >/dev/null 2>&1 &
stalled_pid=$!
wait -n "$ready_pid" "$stalled_pid" || true
kill "$ready_pid" "$stalled_pid" 2>/dev/null || true
wait "$ready_pid" "$stalled_pid" 2>/dev/null || true

condition() {
  "${kc[@]}" get "changeorder/$name" \
    -o jsonpath="{.status.conditions[?(@.type==\"$1\")].$2}"
}
phase=$("${kc[@]}" get "changeorder/$name" -o jsonpath='{.status.phase}') || exit 2
if [[ $(condition Ready status) == True ]]; then
  echo "changeorder/$name succeeded: $(condition Ready message)"
  exit 0
elif [[ $(condition Stalled status) == True ]]; then
  echo "changeorder/$name ended in phase $phase ($(condition Stalled reason)): $(condition Stalled message)" >&2
  exit 1
fi
echo "changeorder/$name not finished within $timeout (phase ${phase:-none}): $(condition Reconciling message)" >&2
exit 2
