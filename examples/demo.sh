#!/usr/bin/env bash
# The one-command demo: a local Kubernetes control plane, the bundled cloud simulator, the
# operator, the example watches, and `kubectl get changeorders --watch` as orders move through
# their phases. Ctrl-C stops everything and removes the demo's state.
#
# Environment:
#   DEMO_SECONDS  stop by itself after this many seconds (default: run until Ctrl-C)
#   DEMO_DIR      where state and logs go (default: .demo in the repository)
#   DEMO_NODE=1   the production shape instead: a real node (kubelet + containerd, needs root;
#                 tests/tools/node.sh), the operator image built without Docker
#                 (tests/tools/image.sh, release build), the Helm chart installed onto the node,
#                 and the simulator as a pod from the same image. Slower to start.
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
node_mode=${DEMO_NODE:-0}
if [ "$node_mode" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "DEMO_NODE=1 runs a kubelet and containerd, which need root"
else
  port_busy "$sim_addr" && die "$sim_addr is in use; the examples point the watches there. Stop whatever listens on it."
fi

say "control-plane binaries (built from source on the first run, then cached)"
if [ "$node_mode" = 1 ]; then
  bin_dir=$(tests/tools/controlplane-bins.sh --node | tail -n 1)
else
  bin_dir=$(tests/tools/controlplane-bins.sh | tail -n 1)
fi
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

if [ "$node_mode" = 1 ]; then
  say "building the operator image (release build; tests/tools/image.sh)"
  image=$(tests/tools/image.sh --out "$state/changeorder-operator.oci.tar" | tail -n 1)
  say "adding a node (kubelet, containerd, bridge network) and loading the image"
  tests/tools/node.sh up "$state/cluster" >/dev/null
  tests/tools/node.sh load "$state/cluster" "$image" 2>/dev/null
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

  say "starting the cloud simulator as a pod from the same image (namespace demo)"
  kubectl create namespace demo >/dev/null
  kubectl run simulator -n demo --image="changeorder-operator:$version" --image-pull-policy=Never \
    --port=8080 --overrides='{"spec":{"automountServiceAccountToken":false}}' \
    -- simulate --listen 0.0.0.0:8080 >/dev/null
  kubectl wait -n demo --for=condition=Ready pod/simulator --timeout=120s >/dev/null
  sim_url=http://$(kubectl get pod -n demo simulator -o jsonpath='{.status.podIP}'):8080

  say "helm install changeorder-operator onto the node (namespace changeorder-system, restricted)"
  kubectl create namespace changeorder-system >/dev/null
  kubectl label namespace changeorder-system pod-security.kubernetes.io/enforce=restricted >/dev/null
  allowed=()
  # Charts with an endpoint policy must allow the simulator pod's address.
  if grep -q '^allowedEndpoints:' charts/changeorder-operator/values.yaml; then
    allowed=(--set "allowedEndpoints[0]=$sim_url")
  fi
  helm install changeorder-operator charts/changeorder-operator -n changeorder-system \
    --set operator.callsPerMinute=300 "${allowed[@]}" --wait --timeout 5m >/dev/null

  say "applying the example watches, pointed at the simulator pod"
  kubectl apply -n demo -f examples/edas/ -f examples/sae/ -f examples/appstack/ >/dev/null
  for watch in $(kubectl get -n demo changeorderwatches -o name); do
    kubectl patch -n demo "$watch" --type merge \
      -p "{\"spec\":{\"endpoint\":\"$sim_url\",\"inFlightInterval\":\"3s\",\"interval\":\"10s\"}}" >/dev/null
  done
  cat >&2 <<EOF

  The operator runs as the chart's pods on a real node:
    export KUBECONFIG=$KUBECONFIG PATH=$bin_dir:\$PATH
    kubectl get pods -n changeorder-system -o wide
    kubectl logs -n changeorder-system deploy/changeorder-operator
    helm test changeorder-operator -n changeorder-system --logs
    kubectl get changeorderwatches -n demo

  Ctrl-C stops everything (pods, node, control plane).

EOF
  watch_cmd=(kubectl get changeorders -n demo --watch)
  if [ "$seconds" -gt 0 ]; then
    timeout "$seconds" "${watch_cmd[@]}" || true
  else
    "${watch_cmd[@]}"
  fi
  exit 0
fi

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
