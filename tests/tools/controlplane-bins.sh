#!/usr/bin/env bash
# Builds the pinned control-plane binaries used by the integration tests and
# the demo (kube-apiserver, kube-controller-manager, kubectl, etcd, helm) from
# source through the Go module proxy, because no prebuilt release binaries can
# be downloaded here. Each tool has a build-only Go module under go/ with a
# committed go.sum, so the dependency graph is fixed.
#
# Usage: tests/tools/controlplane-bins.sh [--node] [--only NAME,...] [--estimate]
#   --node also builds what a node needs (kubelet, kube-scheduler;
#   see node.sh), from the same module, so they share the build cache.
#   --only builds just the named binaries (the demo needs no helm, and
#   against an existing cluster only kubectl), in the usual order.
#   --estimate builds nothing: prints the binaries still to build and the
#   seconds they took here (figures below), as "SECONDS NAME..." on one line.
#   Prints the bin directory as its last stdout line; progress goes to stderr.
#   Binaries are cached outside the repo, keyed by the pinned versions, so a
#   second run finds them and builds nothing.
#
# Environment:
#   CONTROLPLANE_CACHE_DIR  cache root (default
#                           ${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/controlplane)
#   CONTROLPLANE_GO_P       value for `go build -p` (default: Go's, = cores)
#
# Measured on the 2-core project machine (go 1.26.8, module cache warm, build
# cache cold, little else running), in build order:
#   kube-apiserver 309 s, kube-controller-manager 103 s and kubectl 39 s (both
#   reuse most of the apiserver's packages), etcd 46 s, helm 223 s: 12 min in
#   all (user 12 min, sys 2.6 min). With other builds sharing the cores the
#   Kubernetes part alone took 17 min. Downloading the modules on a fresh
#   machine comes on top. Warm run (all five binaries present): under 10 ms.
#   The binaries are reproducible: two cold builds were byte-identical.
# --node after that (apiserver's packages cached, other builds sharing the
# cores, load average near 20): kubelet 642 s, kube-scheduler 61 s; the kubelet
# alone was about 200 s on a quiet machine.
set -euo pipefail

K8S_VERSION=v1.34.10
# Commit time of the k8s tag, used as buildDate so the binaries are reproducible.
K8S_BUILD_DATE=2026-07-22T22:05:06Z
ETCD_VERSION=v3.6.16
HELM_VERSION=v4.3.1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${CONTROLPLANE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/controlplane}
bin_dir=$cache_root/$K8S_VERSION-$ETCD_VERSION-$HELM_VERSION/bin
binaries=(kube-apiserver kube-controller-manager kubectl etcd helm)
node_binaries=(kubelet kube-scheduler)
# Cold-build seconds from the measurements above (quiet 2-core machine). The
# controller-manager's and kubectl's assume the apiserver was built first and
# its packages are cached; alone, each takes most of the apiserver's time.
declare -A build_seconds=([kube-apiserver]=309 [kube-controller-manager]=103
  [kubectl]=39 [etcd]=46 [helm]=223 [kubelet]=200 [kube-scheduler]=61)
usage() { printf 'usage: %s [--node] [--only NAME,...] [--estimate]\n' "$0" >&2; exit 2; }
with_node=false only="" estimate=false
while (($#)); do
  case $1 in
    --node) with_node=true; binaries+=("${node_binaries[@]}") ;;
    --only) (($# > 1)) || usage; only=$2; shift ;;
    --estimate) estimate=true ;;
    *) usage ;;
  esac
  shift
done
if [[ -n $only ]]; then
  IFS=, read -r -a wanted <<<"$only"
  for b in "${wanted[@]}"; do
    [[ -n ${build_seconds[$b]:-} ]] || { printf 'controlplane-bins: unknown binary %s\n' "$b" >&2; exit 2; }
    [[ " ${node_binaries[*]} " == *" $b "* ]] && with_node=true
  done
  binaries=("${wanted[@]}")
fi
# wanted NAME: whether this run builds NAME.
wanted() { [[ " ${binaries[*]} " == *" $1 "* ]]; }

log() { printf 'controlplane-bins: %s\n' "$*" >&2; }

all_present() {
  local b
  for b in "${binaries[@]}"; do
    [[ -x $bin_dir/$b ]] || return 1
  done
}

if $estimate; then
  total=0 missing=()
  for b in "${binaries[@]}"; do
    [[ -x $bin_dir/$b ]] && continue
    missing+=("$b")
    secs=${build_seconds[$b]}
    # Without the apiserver's packages in the build cache (neither built before nor in this
    # run), the other Kubernetes binaries compile most of them themselves.
    if [[ $b == kube-controller-manager || $b == kubectl ]] && [[ ! -x $bin_dir/kube-apiserver ]] &&
      ! wanted kube-apiserver; then
      secs=${build_seconds[kube-apiserver]}
    fi
    total=$((total + secs))
  done
  printf '%s\n' "$total${missing[*]:+ ${missing[*]}}"
  printf '%s\n' "$bin_dir"
  exit 0
fi

# Fast path: no go invocation, no lock.
if all_present; then
  printf '%s\n' "$bin_dir"
  exit 0
fi

# Non-login shells (CI) may lack Go's default install location in PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || { log "go is not installed (need go >= 1.26)"; exit 1; }

mkdir -p "$bin_dir"
# Two test runs may start at once on a cold cache; the second waits for the
# first instead of building the same thing again.
exec 9>"$bin_dir/.lock"
flock 9

# Everything comes from the committed go.mod/go.sum; never let a build edit
# them, pick up a go.work from a parent directory, or fetch another toolchain.
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
go_p=()
[[ -n ${CONTROLPLANE_GO_P:-} ]] && go_p=(-p "$CONTROLPLANE_GO_P")

tmp_dir=$(mktemp -d "$bin_dir/.build.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT

# build MODULE_DIR NAME PACKAGE LDFLAGS: builds into a temp dir and moves the
# result into place, so an interrupted build never leaves a half-written binary
# that the fast path would accept.
build() {
  local mod=$1 name=$2 pkg=$3 ldflags=$4 start
  if [[ -x $bin_dir/$name ]]; then
    return 0
  fi
  log "building $name ($pkg)"
  start=$SECONDS
  (cd "$here/go/$mod" && go build "${go_p[@]}" -ldflags "$ldflags" -o "$tmp_dir/$name" "$pkg") </dev/null >&2
  mv -f "$tmp_dir/$name" "$bin_dir/$name"
  log "built $name in $((SECONDS - start))s"
}

# Same version variables that the Kubernetes release build sets: kubectl reads
# client-go's copy, the servers component-base's.
k8s_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=34"
  k8s_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$K8S_BUILD_DATE"
done
wanted kube-apiserver && build k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
wanted kube-controller-manager && build k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
wanted kubectl && build k8s kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
# etcd's version is a constant in its api module; nothing to stamp.
wanted etcd && build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
wanted helm && build helm helm helm.sh/helm/v4/cmd/helm \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
if $with_node; then
  wanted kubelet && build k8s kubelet k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
  wanted kube-scheduler && build k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
fi

all_present
log "all binaries in $bin_dir"
printf '%s\n' "$bin_dir"
