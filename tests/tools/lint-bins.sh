#!/usr/bin/env bash
# Builds the pinned linters the tests run on files people write by hand (promtool for the
# chart's alert rules, actionlint for the GitHub workflows, kubeconform for the rendered chart)
# from source through the Go module
# proxy, like controlplane-bins.sh: each tool has a build-only Go module under go/ with a
# committed go.sum, and the binaries are cached outside the repo, keyed by the pinned versions.
#
# Usage: tests/tools/lint-bins.sh [--only NAME,...]
#   Prints the bin directory as its last stdout line; progress goes to stderr. A second run
#   finds the binaries and builds nothing.
#
# Environment:
#   LINT_CACHE_DIR  cache root (default
#                   ${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/lint)
#
# Measured on the 2-core project machine (go 1.26.8, modules downloaded, build cache cold, a
# Rust build sharing the cores): promtool 99 s (with the remove_all_sd tag: without it every
# cloud's service discovery SDK is compiled too), actionlint under 10 s, kubeconform about 20 s. Downloading the modules on a
# fresh machine comes on top (about 30 s here). Warm run: a few ms.
set -euo pipefail

PROMETHEUS_VERSION=v0.316.0 # the Go module version of Prometheus v3.16.0
ACTIONLINT_VERSION=v1.7.12
KUBECONFORM_VERSION=v0.8.0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${LINT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/lint}
bin_dir=$cache_root/promtool-$PROMETHEUS_VERSION-actionlint-$ACTIONLINT_VERSION-kubeconform-$KUBECONFORM_VERSION/bin
binaries=(promtool actionlint kubeconform)
usage() { printf 'usage: %s [--only NAME,...]\n' "$0" >&2; exit 2; }
while (($#)); do
  case $1 in
    --only) (($# > 1)) || usage; IFS=, read -r -a binaries <<<"$2"; shift ;;
    *) usage ;;
  esac
  shift
done
for b in "${binaries[@]}"; do
  [[ $b == promtool || $b == actionlint || $b == kubeconform ]] || { printf 'lint-bins: unknown binary %s\n' "$b" >&2; exit 2; }
done

log() { printf 'lint-bins: %s\n' "$*" >&2; }

all_present() {
  local b
  for b in "${binaries[@]}"; do
    [[ -x $bin_dir/$b ]] || return 1
  done
}

# Fast path: no go invocation, no lock.
if all_present; then
  printf '%s\n' "$bin_dir"
  exit 0
fi

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || { log "go is not installed (need go >= 1.26)"; exit 1; }

mkdir -p "$bin_dir"
# Two test runs may start at once on a cold cache; the second waits for the first.
exec 9>"$bin_dir/.lock"
flock 9

# Only the committed go.mod/go.sum: no edits, no go.work from a parent, no toolchain download.
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

tmp_dir=$(mktemp -d "$bin_dir/.build.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT

# build MODULE_DIR NAME PACKAGE TAGS LDFLAGS: into a temp dir, then moved into place, so an
# interrupted build never leaves a half-written binary that the fast path would accept.
build() {
  local mod=$1 name=$2 pkg=$3 tags=$4 ldflags=$5 start
  [[ -x $bin_dir/$name ]] && return 0
  [[ " ${binaries[*]} " == *" $name "* ]] || return 0
  log "building $name ($pkg)"
  start=$SECONDS
  (cd "$here/go/$mod" && go build -tags "$tags" -ldflags "$ldflags" -o "$tmp_dir/$name" "$pkg") </dev/null >&2
  mv -f "$tmp_dir/$name" "$bin_dir/$name"
  log "built $name in $((SECONDS - start))s"
}

# promtool tests rules and needs no service discovery: remove_all_sd leaves out the cloud SDKs.
build promtool promtool github.com/prometheus/prometheus/cmd/promtool remove_all_sd \
  "-s -w -X github.com/prometheus/common/version.Version=3.${PROMETHEUS_VERSION#v0.3}"
build actionlint actionlint github.com/rhysd/actionlint/cmd/actionlint "" \
  "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
build kubeconform kubeconform github.com/yannh/kubeconform/cmd/kubeconform "" \
  "-s -w -X main.version=$KUBECONFORM_VERSION"

all_present
log "all binaries in $bin_dir"
printf '%s\n' "$bin_dir"
