#!/usr/bin/env bash
# A release's artifacts, as the tag workflow (.github/workflows/release.yml) builds them, so
# what is tested here is what runs there.
#
# Usage: tests/tools/release.sh [--out DIR] [--tag vX.Y.Z] [--binary PATH]
#   --out     where the artifacts go (default target/release-artifacts)
#   --tag     the git tag being released; must be v<crate version> (the chart's version and
#             appVersion move in step with the crate, see Chart.yaml)
#   --binary  package this operator binary instead of building a release one (for trying the
#             script quickly; a real release always builds)
#
# Does now:
#   - the operator image as an OCI archive (tests/tools/image.sh: operator binary only,
#     reproducible), with its digest;
#   - the chart as a package (`helm package`), its version and appVersion checked against the
#     crate's;
#   - SHA256SUMS over both.
# Does NOT do yet (issue 22, step 1: they need a registry and cosign, which this script will
# drive once tests/tools/registry.sh exists): push the image and the chart (`helm push`), sign
# them, attach an SBOM and a provenance statement. It says so at the end, every time, so a
# workflow log never reads as a published release.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=$root/tests/tools
log() { printf 'release.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

out=$root/target/release-artifacts tag="" binary=()
while (($#)); do
  case $1 in
    --out) out=${2:?}; shift 2 ;;
    --tag) tag=${2:?}; shift 2 ;;
    --binary) binary=(--binary "${2:?}"); shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
chart=$root/charts/changeorder-operator
chart_version=$(sed -n 's/^version: *//p' "$chart/Chart.yaml")
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")
[[ $chart_version == "$version" && $app_version == "$version" ]] ||
  die "Chart.yaml has version $chart_version, appVersion $app_version; the crate is $version"
if [[ -n $tag && $tag != "v$version" ]]; then
  die "tag $tag does not match the crate version $version (expected v$version)"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)

log "image"
image=$("$tools/image.sh" "${binary[@]}" --out "$out/changeorder-operator-$version.oci.tar" | tail -n 1)

log "chart"
helm_dir=$("$tools/controlplane-bins.sh" --only helm </dev/null | tail -n 1)
"$helm_dir/helm" lint --strict "$chart" >&2
"$helm_dir/helm" package "$chart" --destination "$out" >&2
package=$out/changeorder-operator-$version.tgz
[[ -s $package ]] || die "helm package wrote no $package"

(cd "$out" && sha256sum "$(basename "$image")" "$(basename "$package")" >SHA256SUMS)
log "artifacts in $out:"
sed 's/^/  /' "$out/SHA256SUMS" >&2

cat >&2 <<'NOTE'
release.sh: NOT DONE (needs a registry and cosign; issue 22 step 1):
  - no image or chart was pushed anywhere (no registry is configured)
  - nothing was signed (no cosign), and no SBOM or provenance was attached
  The artifacts above are unsigned local files; do not publish them as a release.
NOTE
printf '%s\n' "$out"
