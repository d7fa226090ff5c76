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
#   DEMO_KUBECONFIG=PATH DEMO_USE_EXISTING_CLUSTER=yes
#                 run against a cluster you already have instead of a local control plane:
#                 the demo creates a throwaway namespace (changeorder-demo-...), installs the
#                 CRDs if they are missing, runs the operator on this machine scoped to that
#                 namespace, and deletes the namespace at the end. Both variables are required:
#                 the ambient KUBECONFIG or ~/.kube/config is never used, so the demo cannot
#                 land on a production cluster by accident.
#
# The first run builds the control-plane binaries it needs from source (no Helm; only kubectl
# against an existing cluster when none is on PATH) and says how long that takes before starting.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
state=${DEMO_DIR:-$root/.demo}
seconds=${DEMO_SECONDS:-0}
sim_addr=127.0.0.1:8080 # the examples' endpoint
admin_addr=${DEMO_ADMIN_ADDR:-127.0.0.1:8081}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# kubectl wait fails at once on a CRD the API server has not written a status for yet (no
# conditions to read), so ask again until it is Established.
crds_established() {
  for _ in $(seq 60); do
    kubectl wait --for=condition=Established --timeout=5s "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  kubectl wait --for=condition=Established --timeout=5s "$@" >/dev/null
}
port_busy() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }
node_mode=${DEMO_NODE:-0}
existing=false
# Against an existing cluster only with both variables, the second exactly "yes": a stray
# KUBECONFIG in the environment, or one of the two alone, must never be enough.
if [ -n "${DEMO_KUBECONFIG:-}" ] || [ -n "${DEMO_USE_EXISTING_CLUSTER:-}" ]; then
  [ -n "${DEMO_KUBECONFIG:-}" ] && [ "${DEMO_USE_EXISTING_CLUSTER:-}" = yes ] ||
    die "to run against an existing cluster set both DEMO_KUBECONFIG=<path> and DEMO_USE_EXISTING_CLUSTER=yes"
  [ "$node_mode" = 1 ] && die "DEMO_NODE=1 builds its own cluster; it cannot be combined with DEMO_KUBECONFIG"
  [ -r "$DEMO_KUBECONFIG" ] || die "DEMO_KUBECONFIG=$DEMO_KUBECONFIG is not a readable file"
  existing=true
fi
if [ "$node_mode" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "DEMO_NODE=1 runs a kubelet and containerd, which need root"
else
  port_busy "$sim_addr" && die "$sim_addr is in use; the examples point the watches there. Stop whatever listens on it."
fi

# What this mode needs: Helm only for the node's chart install; against an existing cluster
# just kubectl, and none at all when one is on PATH.
if [ "$node_mode" = 1 ]; then
  bins_args=(--node)
elif $existing; then
  bins_args=(--only kubectl)
else
  bins_args=(--only kube-apiserver,kube-controller-manager,kubectl,etcd)
fi
if $existing && command -v kubectl >/dev/null; then
  bin_dir=$(dirname "$(command -v kubectl)")
  say "using $(command -v kubectl)"
else
  read -r est_seconds est_missing < <(tests/tools/controlplane-bins.sh "${bins_args[@]}" --estimate | head -n 1)
  if [ "$est_seconds" -gt 0 ]; then
    say "first run: building $est_missing from source (once; cached for later runs)"
    printf '    This took about %d min on a quiet 2-core machine, longer with other builds running\n' \
      $(((est_seconds + 30) / 60)) >&2
    printf '    (figures in tests/tools/controlplane-bins.sh); downloading Go modules comes on top.\n' >&2
  fi
  bin_dir=$(tests/tools/controlplane-bins.sh "${bins_args[@]}" | tail -n 1)
fi
export PATH="$bin_dir:$PATH"

# Shows each order once per state. `kubectl get --watch` prints an order when the operator creates
# it and again when its status is written a moment later, and again on writes that change no
# column; examples/order-rows.sh keeps the first row with a phase, then only rows that differ
# from the order's last one (in bash: mawk, Debian's awk, holds a pipe's lines until it closes).
# Custom columns put the phase at a fixed field (the type, which may contain spaces, goes last).
show_orders() {
  local columns='NAME:.metadata.name,PROVIDER:.spec.provider,ORDER ID:.spec.changeOrderId'
  columns+=',PHASE:.status.phase,BATCH:.status.currentBatch,BATCHES:.status.batchCount'
  columns+=',REASON:.status.reason,TYPE:.spec.type'
  local watch_cmd=(kubectl get changeorders -n "$1" --watch -o "custom-columns=$columns")
  if [ "$seconds" -gt 0 ]; then
    timeout "$seconds" "${watch_cmd[@]}" | examples/order-rows.sh || true
  else
    "${watch_cmd[@]}" | examples/order-rows.sh || true
  fi
}

say "building changeorder-operator and changeorder-sim"
cargo build --quiet -p changeorder-operator -p changeorder-sim
operator=${CARGO_TARGET_DIR:-$root/target}/debug/changeorder-operator
simulator=${CARGO_TARGET_DIR:-$root/target}/debug/changeorder-sim

pids=()
ns=demo
created_ns=false # on an existing cluster, delete only a namespace this run created
cleanup() {
  trap - EXIT INT TERM
  say "cleaning up"
  if $existing && $created_ns; then
    # The namespace first, while the operator still runs: it holds everything the demo made
    # there. Nothing outside it is touched (the CRDs stay: deleting a CRD deletes every object
    # of that kind in the cluster).
    kubectl delete namespace "$ns" --ignore-not-found --wait=true --timeout=120s >/dev/null 2>&1 ||
      printf 'demo: namespace %s is still being deleted; check with kubectl get namespace %s\n' "$ns" "$ns" >&2
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  $existing || tests/tools/cluster.sh down "$state/cluster" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$state"
mkdir -p "$state"

if $existing; then
  export KUBECONFIG=$DEMO_KUBECONFIG
  context=$(kubectl config current-context 2>/dev/null) || die "$KUBECONFIG has no current context"
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  kubectl --request-timeout=10s get --raw /version >/dev/null ||
    die "cannot reach the cluster of context $context ($server)"
  # A fresh name, so the demo never reuses (and at the end never deletes) a namespace it did
  # not create.
  ns=changeorder-demo-$(date +%s)-$RANDOM
  say "using the existing cluster: context $context, server $server; throwaway namespace $ns"
  if [ -t 2 ]; then
    printf '    Starting in 5 s; Ctrl-C now if this is not the cluster you meant.\n' >&2
    sleep 5
  fi
  kubectl create namespace "$ns" >/dev/null
  created_ns=true
  kubectl label namespace "$ns" app.kubernetes.io/created-by=changeorder-demo >/dev/null
  if kubectl get crd changeorders.changeorder.io changeorderwatches.changeorder.io >/dev/null 2>&1; then
    # Possibly a real installation's CRDs (and operator): leave their version alone.
    say "the ChangeOrder CRDs are installed already; using them as they are"
    printf '    An operator already running cluster-wide would act on the demo watches too.\n' >&2
  else
    say "installing the CRDs (cluster-wide; left in place at the end: kubectl delete -f crds/ removes them)"
    kubectl apply --server-side -f crds/ >/dev/null
    crds_established crd/changeorders.changeorder.io crd/changeorderwatches.changeorder.io
  fi
else
  say "starting a local control plane (etcd, kube-apiserver, kube-controller-manager)"
  eval "$(tests/tools/cluster.sh up "$state/cluster" --owner-pid $$)"
  export KUBECONFIG
fi

if [ "$node_mode" = 1 ]; then
  say "building the operator image (release build; tests/tools/image.sh)"
  image=$(tests/tools/image.sh --out "$state/changeorder-operator.oci.tar" | tail -n 1)
  say "adding a node (kubelet, containerd, bridge network) and loading the image"
  eval "$(tests/tools/node.sh up "$state/cluster")"
  tests/tools/node.sh load "$state/cluster" "$image" 2>/dev/null

  # The image holds the operator only; the simulator runs on this machine, on the node's bridge
  # address, which the pods reach.
  gateway=${NODE_POD_SUBNET%.0/*}.1
  say "starting the cloud simulator on http://$gateway:8080 (the pods' side of the host)"
  "$simulator" --listen "$gateway:8080" >"$state/simulator.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do port_busy "$gateway:8080" && break; sleep 0.1; done
  port_busy "$gateway:8080" || die "the simulator did not start; see $state/simulator.log"
  sim_url=http://$gateway:8080
  kubectl create namespace demo >/dev/null

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
  show_orders demo
  exit 0
fi

say "starting the cloud simulator on http://$sim_addr"
"$simulator" --listen "$sim_addr" >"$state/simulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do port_busy "$sim_addr" && break; sleep 0.1; done
port_busy "$sim_addr" || die "the simulator did not start; see $state/simulator.log"

if ! $existing; then
  say "installing the CRDs"
  kubectl apply --server-side -f crds/ >/dev/null
  crds_established crd --all
  kubectl create namespace "$ns" >/dev/null
fi
say "applying the example watches (namespace $ns)"
kubectl apply -n "$ns" -f examples/edas/ -f examples/sae/ -f examples/appstack/ >/dev/null
# Poll faster than the examples' production settings, so the demo moves visibly.
for watch in $(kubectl get -n "$ns" changeorderwatches -o name); do
  kubectl patch -n "$ns" "$watch" --type merge -p '{"spec":{"inFlightInterval":"3s","interval":"10s"}}' >/dev/null
done

say "starting the operator for namespace $ns (log: $state/operator.log, metrics: http://$admin_addr/metrics)"
# The simulator has no real quota; a larger call budget keeps every order moving on screen.
# The simulator is plain http on 127.0.0.1, outside the default endpoint policy
# (https://*.aliyuncs.com): allow it explicitly. Scoped to the demo's namespace, so on an
# existing cluster it reads and writes nothing else.
"$operator" run --admin-listen "$admin_addr" --calls-per-minute 300 --namespaces "$ns" \
  --allowed-endpoints 'http://127.0.0.1:*' >"$state/operator.log" 2>&1 &
pids+=($!)

cat >&2 <<EOF

  The cluster is yours while the demo runs:
    export KUBECONFIG=$KUBECONFIG PATH=$bin_dir:\$PATH
    kubectl get changeorderwatches -n $ns
    kubectl describe changeorder -n $ns demo-edas-demo-edas-rollout
    kubectl wait -n $ns --for=condition=Ready changeorder/demo-edas-demo-edas-rollout --timeout=5m

  Orders of the simulator's demo move for about two minutes. Ctrl-C stops everything.

EOF

show_orders "$ns"
