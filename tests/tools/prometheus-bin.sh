#!/usr/bin/env bash
# Builds the pinned Prometheus server (the dashboard test scrapes a running operator with it and
# runs every panel's query through its HTTP API) from source through the Go module proxy, like
# lint-bins.sh builds promtool from the same module version: a build-only Go module under
# go/prometheus with a committed go.sum, the binary cached outside the repo, keyed by the version.
#
# Usage: tests/tools/prometheus-bin.sh
#   Prints the bin directory as its last stdout line; progress goes to stderr. A second run
#   finds the binary and builds nothing.
#
# Environment:
#   PROMETHEUS_CACHE_DIR  cache root (default
#                         ${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/prometheus)
#
# Measured on the 2-core project machine, shared (load average about 7; go 1.26.8, modules
# already downloaded): 649 s wall (243 s user CPU) with an empty Go build cache; 151 s right after
# lint-bins.sh built promtool into the same build cache, as tests/run.sh runs them (promtool
# itself took 325 s under that load). Downloading the modules on a fresh machine comes on top
# (most are promtool's too). Warm run: a few ms.
#
# The web UI's assets are not embedded (no `builtinassets` tag): the test needs the HTTP API
# only. remove_all_sd leaves out every cloud's service discovery SDK; the test's scrape
# configuration lists its target statically.
set -euo pipefail

PROMETHEUS_VERSION=v0.316.0 # the Go module version of Prometheus v3.16.0, as lint-bins.sh's promtool

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${PROMETHEUS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/prometheus}
bin_dir=$cache_root/prometheus-$PROMETHEUS_VERSION/bin

log() { printf 'prometheus-bin: %s\n' "$*" >&2; }

# Fast path: no go invocation, no lock.
if [[ -x $bin_dir/prometheus ]]; then
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
if [[ -x $bin_dir/prometheus ]]; then
  printf '%s\n' "$bin_dir"
  exit 0
fi

# Only the committed go.mod/go.sum: no edits, no go.work from a parent, no toolchain download.
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

tmp_dir=$(mktemp -d "$bin_dir/.build.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT

log "building prometheus (github.com/prometheus/prometheus/cmd/prometheus $PROMETHEUS_VERSION)"
start=$SECONDS
# Built into a temp dir, then moved into place: an interrupted build never leaves a
# half-written binary that the fast path would accept.
(cd "$here/go/prometheus" && go build -tags remove_all_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=3.${PROMETHEUS_VERSION#v0.3}" \
  -o "$tmp_dir/prometheus" github.com/prometheus/prometheus/cmd/prometheus) </dev/null >&2
mv -f "$tmp_dir/prometheus" "$bin_dir/prometheus"
log "built prometheus in $((SECONDS - start))s"
printf '%s\n' "$bin_dir"
