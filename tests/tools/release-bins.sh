#!/usr/bin/env bash
# Builds the pinned tools a release needs, from source, like lint-bins.sh: the registry server
# the tests push to (CNCF Distribution's `registry`, with a small bcrypt `htpasswd` helper),
# `cosign` (signing and verifying), `crane` (pushing the image's OCI layout) through the Go
# module proxy, each from a build-only module under go/ with a committed go.sum; and
# `cargo-cyclonedx` (the SBOM of the operator's crates) from crates.io with `cargo install
# --locked`. Cached outside the repo, keyed by the pinned versions.
#
# Usage: tests/tools/release-bins.sh [--only NAME,...]
#   NAME: registry, htpasswd, cosign, crane, cargo-cyclonedx. Prints the bin directory as its
#   last stdout line; progress goes to stderr. A second run finds the binaries and builds nothing.
#
# Environment:
#   RELEASE_BINS_CACHE_DIR  cache root (default
#                           ${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/release)
#
# Measured on the 2-core project machine (go 1.26.8, modules downloaded, Go build cache cold,
# other helpers' builds sharing the cores, load average 7-11): registry 202 s, htpasswd under
# 1 s, cosign 360 s, crane 1 s after cosign (it shares cosign's go-containerregistry packages):
# 9.4 min for the Go tools; cargo-cyclonedx 400 s (230 s of CPU). Downloading the Go modules
# on a fresh machine comes on top (about 70 s here). Warm run: a few ms.
set -euo pipefail

REGISTRY_VERSION=v3.1.2 # github.com/distribution/distribution/v3
COSIGN_VERSION=v3.1.3   # github.com/sigstore/cosign/v3
CRANE_VERSION=v0.22.1   # github.com/google/go-containerregistry
CYCLONEDX_VERSION=0.5.9 # crates.io cargo-cyclonedx

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${RELEASE_BINS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/release}
# The htpasswd helper is our own source: its hash is part of the key, so an edit rebuilds it.
helper=$(sha256sum "$here/go/registry/main.go" | cut -c1-8)
bin_dir=$cache_root/registry-$REGISTRY_VERSION-cosign-$COSIGN_VERSION-crane-$CRANE_VERSION-cyclonedx-$CYCLONEDX_VERSION-htpasswd-$helper/bin
all=(registry htpasswd cosign crane cargo-cyclonedx)
binaries=("${all[@]}")
usage() { printf 'usage: %s [--only NAME,...]\n' "$0" >&2; exit 2; }
while (($#)); do
  case $1 in
    --only) (($# > 1)) || usage; IFS=, read -r -a binaries <<<"$2"; shift ;;
    *) usage ;;
  esac
  shift
done
for b in "${binaries[@]}"; do
  [[ " ${all[*]} " == *" $b "* ]] || { printf 'release-bins: unknown binary %s\n' "$b" >&2; exit 2; }
done

log() { printf 'release-bins: %s\n' "$*" >&2; }

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

mkdir -p "$bin_dir"
# Two test runs may start at once on a cold cache; the second waits for the first.
exec 9>"$bin_dir/.lock"
flock 9

tmp_dir=$(mktemp -d "$bin_dir/.build.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT

wanted() { [[ ! -x $bin_dir/$1 && " ${binaries[*]} " == *" $1 "* ]]; }

# build MODULE_DIR NAME PACKAGE LDFLAGS: into a temp dir, then moved into place, so an
# interrupted build never leaves a half-written binary that the fast path would accept.
build() {
  local mod=$1 name=$2 pkg=$3 ldflags=$4 start
  wanted "$name" || return 0
  command -v go >/dev/null || { log "go is not installed (need go >= 1.26)"; exit 1; }
  log "building $name ($pkg)"
  start=$SECONDS
  # Only the committed go.mod/go.sum: no edits, no go.work from a parent, no toolchain download.
  (cd "$here/go/$mod" &&
    GOFLAGS="-mod=readonly -trimpath -buildvcs=false" GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 \
      go build -ldflags "$ldflags" -o "$tmp_dir/$name" "$pkg") </dev/null >&2
  mv -f "$tmp_dir/$name" "$bin_dir/$name"
  log "built $name in $((SECONDS - start))s"
}

build registry registry github.com/distribution/distribution/v3/cmd/registry \
  "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION"
build registry htpasswd . "-s -w"
build cosign cosign github.com/sigstore/cosign/v3/cmd/cosign \
  "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION"
build cosign crane github.com/google/go-containerregistry/cmd/crane \
  "-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$CRANE_VERSION"

if wanted cargo-cyclonedx; then
  command -v cargo >/dev/null || { log "cargo is not installed"; exit 1; }
  log "installing cargo-cyclonedx $CYCLONEDX_VERSION (cargo install --locked)"
  start=$SECONDS
  # Its own target directory (removed with tmp_dir), so no project build is disturbed.
  CARGO_TARGET_DIR=$tmp_dir/target cargo install --locked --quiet --version "$CYCLONEDX_VERSION" \
    --root "$tmp_dir/cargo" cargo-cyclonedx </dev/null >&2
  mv -f "$tmp_dir/cargo/bin/cargo-cyclonedx" "$bin_dir/cargo-cyclonedx"
  log "built cargo-cyclonedx in $((SECONDS - start))s"
fi

all_present
log "all binaries in $bin_dir"
printf '%s\n' "$bin_dir"
