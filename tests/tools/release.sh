#!/usr/bin/env bash
# A release's artifacts, as the tag workflow (.github/workflows/release.yml) builds them, so
# what is tested here is what runs there.
#
# Usage: tests/tools/release.sh [--out DIR] [--tag vX.Y.Z] [--binary PATH] [--registry REG]
#   --out       where the artifacts go (default target/release-artifacts)
#   --tag       the git tag being released; must be v<crate version> (the chart's version and
#               appVersion move in step with the crate, see Chart.yaml)
#   --binary    package this operator binary instead of building a release one (for trying the
#               script quickly; a real release always builds)
#   --registry  push to this OCI registry, HOST[:PORT][/PATH] (e.g. ghcr.io/OWNER): the image to
#               REG/changeorder-operator, the chart to REG/charts/changeorder-operator
#
# Environment (with --registry; secrets only ever through the environment and stdin):
#   REGISTRY_USERNAME, REGISTRY_PASSWORD  the registry login (required)
#   REGISTRY_CA_FILE   a CA to trust for the registry, on top of the system's (optional)
#   COSIGN_KEY         the cosign private key to sign with (required): a file, or env://VAR
#                      naming a variable that holds the key; its password in COSIGN_PASSWORD.
#                      Make a pair with `cosign generate-key-pair`; publish cosign.pub, which
#                      release.sh also writes into --out
#
# Does:
#   - the operator image as an OCI archive (tests/tools/image.sh: operator binary only,
#     reproducible), with its digest;
#   - the chart as a package (`helm package`), its version and appVersion checked against the
#     crate's; with --registry, the chart's values name the pushed image by digest;
#   - with --registry: pushes the image (crane) and the chart (`helm push`, an OCI artifact),
#     signs both by digest with cosign, and attaches as cosign attestations a CycloneDX SBOM of
#     the operator's crates (`cargo cyclonedx`) to the image and a SLSA provenance statement
#     (source commit, builder, digests) to both; writes release.json (references and digests)
#     and cosign.pub;
#   - SHA256SUMS over the files.
# Does NOT do (said at the end, every time, so a workflow log never reads as more than it is):
# keyless signing and a transparency log (cosign runs with --tlog-upload=false: verify with
# --insecure-ignore-tlog=true); the SBOM covers the Rust crates, not the Debian files of the
# image's base (libc6, libgcc-s1, ca-certificates).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=$root/tests/tools
log() { printf 'release.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

out=$root/target/release-artifacts tag="" binary=() registry=""
while (($#)); do
  case $1 in
    --out) out=${2:?}; shift 2 ;;
    --tag) tag=${2:?}; shift 2 ;;
    --binary) binary=(--binary "${2:?}"); shift 2 ;;
    --registry) registry=${2:?}; shift 2 ;;
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
if [[ -n $registry ]]; then
  registry=${registry%/}
  [[ $registry =~ ^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$ ]] ||
    die "--registry: expected HOST[:PORT][/PATH] (lower-case path), not $registry"
  [[ -n ${REGISTRY_USERNAME:-} && -n ${REGISTRY_PASSWORD:-} ]] ||
    die "--registry needs REGISTRY_USERNAME and REGISTRY_PASSWORD in the environment"
  [[ -n ${COSIGN_KEY:-} ]] ||
    die "--registry needs COSIGN_KEY (a cosign private key file or env://VAR) and COSIGN_PASSWORD"
  if [[ -n ${REGISTRY_CA_FILE:-} && ! -s $REGISTRY_CA_FILE ]]; then
    die "REGISTRY_CA_FILE: no such file: $REGISTRY_CA_FILE"
  fi
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "image"
image_repo=${registry:+$registry/}changeorder-operator
image=$(IMAGE_REPOSITORY=$image_repo "$tools/image.sh" "${binary[@]}" \
  --out "$out/changeorder-operator-$version.oci.tar" | tail -n 1)
# The archive's one manifest: what is pushed, and what every signature names.
image_digest=$(tar -xOf "$image" index.json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')

helm_dir=$("$tools/controlplane-bins.sh" --only helm </dev/null | tail -n 1)
helm=$helm_dir/helm
cp -r "$chart" "$work/chart"
if [[ -n $registry ]]; then
  # The packaged chart runs exactly the pushed image: its repository, pinned by digest.
  python3 - "$work/chart/values.yaml" "$image_repo" "$image_digest" <<'PY'
import re, sys
path, repo, digest = sys.argv[1:]
text = open(path).read()
new, n1 = re.subn(r"(?m)^(image:\n(?:  .*\n|\s*#.*\n)*?  repository: ).*$", r"\g<1>" + repo, text)
new, n2 = re.subn(r'(?m)^(image:\n(?:  .*\n|\s*#.*\n)*?  digest: )"".*$', r'\g<1>"' + digest + '"', new)
if (n1, n2) != (1, 1):
    sys.exit("values.yaml: image.repository or image.digest not found where expected")
open(path, "w").write(new)
PY
fi
log "chart"
"$helm" lint --strict "$work/chart" >&2
"$helm" package "$work/chart" --destination "$out" >&2
package=$out/changeorder-operator-$version.tgz
[[ -s $package ]] || die "helm package wrote no $package"
files=("$(basename "$image")" "$(basename "$package")")

not_done=()
if [[ -z $registry ]]; then
  not_done+=("no image or chart was pushed anywhere (no --registry given)"
    "nothing was signed, and no SBOM or provenance was attached (they need a registry)")
else
  bins=$("$tools/release-bins.sh" --only cosign,crane,cargo-cyclonedx </dev/null | tail -n 1)
  host=${registry%%/*}
  # Logins go to a private config (removed at exit) that crane, cosign and helm all read.
  export DOCKER_CONFIG=$work/docker HELM_REGISTRY_CONFIG=$work/docker/config.json
  if [[ -n ${REGISTRY_CA_FILE:-} ]]; then
    # The registry's CA on top of the system's, for every Go tool (they read SSL_CERT_FILE).
    cat /etc/ssl/certs/ca-certificates.crt "$REGISTRY_CA_FILE" >"$work/ca.pem" 2>/dev/null ||
      cat "$REGISTRY_CA_FILE" >"$work/ca.pem"
    export SSL_CERT_FILE=$work/ca.pem
  fi
  printf '%s\n' "$REGISTRY_PASSWORD" |
    "$bins/crane" auth login "$host" --username "$REGISTRY_USERNAME" --password-stdin >/dev/null 2>&1 ||
    die "could not store the login for $host"

  log "push the image to $image_repo"
  mkdir "$work/layout"
  tar -xf "$image" -C "$work/layout"
  # crane only stores the login; a wrong one is refused here, at the first push.
  "$bins/crane" push "$work/layout" "$image_repo:$version" --image-refs "$work/image-ref" >&2 ||
    die "pushing to $image_repo failed (above); are REGISTRY_USERNAME and REGISTRY_PASSWORD right?"
  pushed=$(<"$work/image-ref")
  [[ $pushed == "$image_repo@$image_digest" ]] ||
    die "the registry holds $pushed, not the archive's $image_digest"

  log "push the chart to oci://$registry/charts"
  "$helm" push "$package" "oci://$registry/charts" >"$work/helm-push" 2>&1 ||
    { cat "$work/helm-push" >&2; die "helm push failed"; }
  cat "$work/helm-push" >&2
  chart_repo=$registry/charts/changeorder-operator
  chart_digest=$(sed -n 's/^Digest: *//p' "$work/helm-push" | tail -n 1)
  [[ $chart_digest == sha256:* ]] || die "helm push printed no digest"
  [[ $("$bins/crane" digest "$chart_repo:$version") == "$chart_digest" ]] ||
    die "$chart_repo:$version is not the digest helm push printed"

  key=$COSIGN_KEY
  "$bins/cosign" public-key --key "$key" >"$out/cosign.pub" 2>"$work/public-key" ||
    { cat "$work/public-key" >&2; die "COSIGN_KEY: cosign cannot read the key (wrong COSIGN_PASSWORD?)"; }
  # No transparency log or signing services here: key signatures only, stored in the registry.
  offline=(--key "$key" --yes --use-signing-config=false --tlog-upload=false)
  log "sign $image_repo@$image_digest and $chart_repo@$chart_digest"
  # cosign warns that --tlog-upload is deprecated in favour of a signing-config file; the flag is
  # what says "no transparency log" here, so the warning is dropped (cosign's status still counts).
  quiet() { grep -v '^Flag --tlog-upload' >&2 || true; }
  "$bins/cosign" sign "${offline[@]}" "$image_repo@$image_digest" 2>&1 | quiet
  "$bins/cosign" sign "${offline[@]}" "$chart_repo@$chart_digest" 2>&1 | quiet

  log "SBOM of the operator's crates (cargo cyclonedx)"
  # One SBOM per binary, written next to each workspace member's manifest as BIN_bin.cdx.json:
  # the operator's is kept, the simulator's and the plugin's (not in the image) are removed.
  sboms=("$root/changeorder-operator_bin.cdx.json" "$root/crates/sim/changeorder-sim_bin.cdx.json"
    "$root/crates/plugin/kubectl-changeorder_bin.cdx.json")
  rm -f "${sboms[@]}"
  (cd "$root" && "$bins/cargo-cyclonedx" cyclonedx --format json --spec-version 1.5 \
    --describe binaries --no-build-deps -q >&2)
  sbom=$out/changeorder-operator-$version.cdx.json
  [[ -s ${sboms[0]} ]] || die "cargo cyclonedx wrote no SBOM for the operator"
  mv "${sboms[0]}" "$sbom"
  rm -f "${sboms[@]}"

  log "provenance"
  provenance=$out/changeorder-operator-$version.provenance.json
  python3 "$tools/provenance.py" --root "$root" --out "$provenance" \
    --subject "$image_repo@$image_digest" --subject "$chart_repo@$chart_digest" \
    --material "$(basename "$sbom")=sha256:$(sha256sum "$sbom" | cut -d' ' -f1)" \
    --tool "cosign=$("$bins/cosign" version 2>/dev/null | sed -n 's/^GitVersion: *//p')" \
    --tool "helm=$("$helm" version --short 2>/dev/null)" \
    --tool "rustc=$(rustc --version 2>/dev/null || echo unknown)" \
    --tool "go=$(go version 2>/dev/null || echo unknown)"

  log "attest: SBOM and provenance on the image, provenance on the chart"
  attest() { "$bins/cosign" attest "${offline[@]}" "$@" 2>&1 | quiet; }
  attest --type cyclonedx --predicate "$sbom" "$image_repo@$image_digest"
  attest --type slsaprovenance1 --predicate "$provenance" "$image_repo@$image_digest"
  attest --type slsaprovenance1 --predicate "$provenance" "$chart_repo@$chart_digest"

  python3 - "$out/release.json" <<PY
import json, sys
json.dump({
    "version": "$version",
    "image": {"repository": "$image_repo", "digest": "$image_digest", "tag": "$version"},
    "chart": {"repository": "$chart_repo", "digest": "$chart_digest", "version": "$version",
              "oci": "oci://$chart_repo"},
    "publicKey": "cosign.pub",
    "sbom": "$(basename "$sbom")",
    "provenance": "$(basename "$provenance")",
}, open(sys.argv[1], "w"), indent=2)
PY
  files+=(cosign.pub release.json "$(basename "$sbom")" "$(basename "$provenance")")
  log "pushed and signed:"
  log "  image $image_repo@$image_digest (tag $version)"
  log "  chart oci://$chart_repo --version $version ($chart_digest)"
  log "verify: cosign verify --key $out/cosign.pub --insecure-ignore-tlog=true $image_repo@$image_digest"
  not_done+=("no transparency log and no keyless signature (cosign --tlog-upload=false; verify with --insecure-ignore-tlog=true)"
    "the SBOM lists the operator's Rust crates, not the image base's Debian files (libc6, libgcc-s1, ca-certificates)")
fi

(cd "$out" && sha256sum "${files[@]}" >SHA256SUMS)
log "artifacts in $out:"
sed 's/^/  /' "$out/SHA256SUMS" >&2

log "NOT DONE:"
for n in "${not_done[@]}"; do
  log "  - $n"
done
printf '%s\n' "$out"
