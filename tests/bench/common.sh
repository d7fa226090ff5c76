# Sourced by the benchmark scripts: release binaries, free ports, and cleanup of everything a
# script starts (add pids to `pids`; control planes live in directories under "$state").
state=$(mktemp -d)
bin_dir=$(tests/tools/controlplane-bins.sh | tail -n 1)
export PATH="$bin_dir:$PATH"
# BENCH_PROFILE=profiling keeps symbols, for perf and callgrind.
profile=${BENCH_PROFILE:-release}
cargo build --profile "$profile" --quiet -p changeorder-operator -p changeorder-sim --bin changeorder-operator --bin changeorder-sim --example bench-baseline
target=${CARGO_TARGET_DIR:-target}/$profile
operator=$target/changeorder-operator
baseline=$target/examples/bench-baseline
simulator=$target/changeorder-sim
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port=$(free_port)
admin_port=$(free_port)

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for dir in "$state"/*/; do
    [ ! -d "$dir/pids" ] || tests/tools/cluster.sh down "$dir" >/dev/null 2>&1 || true
  done
  rm -rf "$state"
}
trap cleanup EXIT

# A fresh control plane with the CRDs established, in $state/$1; exports KUBECONFIG.
fresh_cluster() {
  echo "starting a control plane ($1)" >&2
  eval "$(tests/tools/cluster.sh up "$state/$1" --owner-pid $$ 2>/dev/null)"
  export KUBECONFIG
  kubectl apply --server-side -f crds/ >/dev/null
  # kubectl wait fails at once on a CRD without a status yet: ask again.
  for _ in $(seq 60); do kubectl wait --for=condition=Established --timeout=5s crd --all >/dev/null 2>&1 && break; sleep 1; done
  kubectl wait --for=condition=Established --timeout=5s crd --all >/dev/null
}
