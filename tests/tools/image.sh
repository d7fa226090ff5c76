#!/usr/bin/env bash
# Builds the operator's container image without Docker: an OCI image archive with the same
# content the Dockerfile describes (the root filesystem comes from image-rootfs.sh, which the
# Dockerfile runs too, and the configuration - user, entrypoint, labels, port - is read from the
# Dockerfile's final stage), so both stay one image. Reproducible: the same checkout, toolchain
# and Debian packages give a byte-identical archive (times come from the last commit).
#
# Usage: tests/tools/image.sh [--binary PATH] [--out FILE]
#   Builds `cargo build --release --locked -p changeorder-operator --bin changeorder-operator`
#   (the operator only: the simulator and the plugin never enter the image) unless --binary
#   names a binary to package. Writes
#   FILE (default target/image/changeorder-operator-VERSION.oci.tar), prints its path as the last
#   stdout line and the image name, digest and size on stderr.
#   Load it: ctr -n k8s.io images import FILE | podman load -i FILE |
#            skopeo copy oci-archive:FILE docker-daemon:changeorder-operator:VERSION
#
# Environment: IMAGE_REPOSITORY (default changeorder-operator, as in the chart's values.yaml).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=$root/tests/tools
log() { printf 'image.sh: %s\n' "$*" >&2; }

binary="" out=""
while (($#)); do
  case $1 in
    --binary) binary=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done

# The tag is the crate's version, which the chart's appVersion follows.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[[ -n $version ]] || { log "no version in Cargo.toml"; exit 1; }
name=${IMAGE_REPOSITORY:-changeorder-operator}:$version
out=${out:-$root/target/image/changeorder-operator-$version.oci.tar}
# Times in the image are the last commit's, not the build's, so rebuilds are identical.
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

if [[ -z $binary ]]; then
  log "cargo build --release --locked -p changeorder-operator --bin changeorder-operator"
  (cd "$root" && cargo build --release --locked -p changeorder-operator --bin changeorder-operator >&2)
  binary=$root/target/release/changeorder-operator
fi

mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tools/image-rootfs.sh" "$work/rootfs" "$binary"
digest=$(python3 "$tools/oci-image.py" --rootfs "$work/rootfs" --name "$name" --out "$out" \
  --epoch "$epoch" --dockerfile "$root/Dockerfile" \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
log "$name $digest"
log "size: $(du -k --apparent-size "$out" | cut -f1) KiB archive (compressed layer);" \
  "$(du -sk --apparent-size "$work/rootfs" | cut -f1) KiB unpacked"
printf '%s\n' "$out"
