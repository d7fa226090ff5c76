#!/usr/bin/env bash
# The one-command demo: a local Kubernetes control plane, the bundled cloud simulator, the
# operator, the example watches, and `kubectl get changeorders --watch` as orders move through
# their phases. Ctrl-C stops everything and removes the demo's state.
#
# Environment:
#   DEMO_SECONDS  stop by itself after this many seconds (default: run until Ctrl-C)
#   DEMO_DIR      where state and logs go (default: .demo in the repository)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
state=${DEMO_DIR:-$root/.demo}
seconds=${DEMO_SECONDS:-0}
sim_addr=127.0.0.1:8080 # the examples' endpoint
admin_addr=${DEMO_ADMIN_ADDR:-127.0.0.1:8081}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }
port_busy "$sim_addr" && die "$sim_addr is in use; the examples point the watches there. Stop whatever listens on it."

say "control-plane binaries (built from source on the first run, then cached)"
bin_dir=$(tests/tools/controlplane-bins.sh | tail -n 1)
export PATH="$bin_dir:$PATH"

say "building changeorder-operator"
cargo build --quiet
operator=${CARGO_TARGET_DIR:-$root/target}/debug/changeorder-operator

pids=()
cleanup() {
  trap - EXIT INT TERM
  say "cleaning up"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tests/tools/cluster.sh down "$state/cluster" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$state"
mkdir -p "$state"

say "starting a local control plane (etcd, kube-apiserver, kube-controller-manager)"
eval "$(tests/tools/cluster.sh up "$state/cluster" --owner-pid $$)"
export KUBECONFIG

say "starting the cloud simulator on http://$sim_addr"
"$operator" simulate --listen "$sim_addr" >"$state/simulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do port_busy "$sim_addr" && break; sleep 0.1; done
port_busy "$sim_addr" || die "the simulator did not start; see $state/simulator.log"

say "installing the CRDs and the example watches (namespace demo)"
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null
kubectl create namespace demo >/dev/null
kubectl apply -n demo -f examples/edas/ -f examples/sae/ -f examples/appstack/ >/dev/null
# Poll faster than the examples' production settings, so the demo moves visibly.
for watch in $(kubectl get -n demo changeorderwatches -o name); do
  kubectl patch -n demo "$watch" --type merge -p '{"spec":{"inFlightInterval":"3s","interval":"10s"}}' >/dev/null
done

say "starting the operator (log: $state/operator.log, metrics: http://$admin_addr/metrics)"
# The simulator has no real quota; a larger call budget keeps every order moving on screen.
# The simulator is plain http on 127.0.0.1, outside the default endpoint policy
# (https://*.aliyuncs.com): allow it explicitly.
"$operator" run --admin-listen "$admin_addr" --calls-per-minute 300 \
  --allowed-endpoints 'http://127.0.0.1:*' >"$state/operator.log" 2>&1 &
pids+=($!)

cat >&2 <<EOF

  The cluster is yours while the demo runs:
    export KUBECONFIG=$KUBECONFIG PATH=$bin_dir:\$PATH
    kubectl get changeorderwatches -n demo
    kubectl describe changeorder -n demo demo-edas-demo-edas-rollout
    kubectl wait -n demo --for=condition=Ready changeorder/demo-edas-demo-edas-rollout --timeout=5m

  Orders of the simulator's demo move for about two minutes. Ctrl-C stops everything.

EOF

watch_cmd=(kubectl get changeorders -n demo --watch)
if [ "$seconds" -gt 0 ]; then
  timeout "$seconds" "${watch_cmd[@]}" || true
else
  "${watch_cmd[@]}"
fi
