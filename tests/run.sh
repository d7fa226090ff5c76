#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, unit and integration tests against the simulator and a
# real local control plane, the official SDK check and the chart checks. Safe to run repeatedly:
# tools are built once and cached outside the repository.
#
# The steps after the build run at the same time: the integration tests mostly wait (on servers,
# timers, processes), and so do the demo (a fixed 60 s) and the SDK check; the fuzz build is CPU
# work, so it runs at the lowest priority, in the gaps. Each side step's output is shown, and
# checked, at the end, in order; any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

# Suites that need packages the machine may lack. The tests skip them with a message that cargo
# test hides (it shows a passing test's output only on failure), so the same checks are made
# here: the run ends with a list of what it included and what it skipped and why, and under CI
# (CI set, as .ci/run does) a skip fails the run at once instead of passing with less tested.
suites_ran=() suites_skipped=()
# suite NAME WHY: NAME runs when WHY is empty, else it is skipped because of WHY.
suite() {
  if [ -z "$2" ]; then suites_ran+=("$1"); else suites_skipped+=("$1: $2"); fi
}
summary() {
  printf '\n==> suites\n' >&2
  local s
  for s in "${suites_ran[@]}"; do printf '  included: %s\n' "$s" >&2; done
  for s in "${suites_skipped[@]}"; do printf '  SKIPPED:  %s\n' "$s" >&2; done
}
suite "lint, unit and integration tests (simulator, local control plane, chart)" ""
suite "alert rules (promtool) and workflows (actionlint)" ""
suite "the README's demo" ""
suite "release through a real registry (Distribution, cosign sign/verify, SBOM, provenance)" \
  "$(command -v curl >/dev/null || echo "curl not installed (.ci/run installs it)")"
missing=()
for c in containerd runc ctr gcc iptables; do command -v "$c" >/dev/null || missing+=("$c"); done
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  why="${missing[*]} not installed (.ci/run installs them)"
elif [ "$(id -u)" != 0 ]; then
  why="a node needs root"
else
  why=""
fi
suite "chart on a real node (containerd, kubelet)" "$why"
suite "Argo CD health checks under Lua" "$(command -v lua5.4 >/dev/null || echo "lua5.4 not installed")"
suite "demo live view under mawk" "$(command -v mawk >/dev/null || echo "mawk not installed")"
if [ -x tests/sdk/run.sh ]; then
  suite "official Alibaba Cloud Python SDKs against the simulator" ""
fi
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  suite "fuzz targets" ""
else
  suite "fuzz targets" "no cargo-fuzz or no nightly toolchain (cargo install cargo-fuzz --locked)"
fi
if [ ${#suites_skipped[@]} -gt 0 ] && [ -n "${CI:-}" ]; then
  summary
  echo "CI: a skipped suite is a failure; install what is missing (see .ci/run)" >&2
  exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

if [ -x tests/tools/controlplane-bins.sh ]; then
  step "control-plane binaries (built from source once, then cached)"
  CONTROLPLANE_BIN_DIR="$(tests/tools/controlplane-bins.sh --node | tail -n 1)"
  export CONTROLPLANE_BIN_DIR
fi

step "linters: promtool, actionlint (built from source once, then cached)"
LINT_BIN_DIR="$(tests/tools/lint-bins.sh | tail -n 1)"
export LINT_BIN_DIR

step "prometheus server for the dashboard test (built from source once, then cached)"
PROMETHEUS_BIN_DIR="$(tests/tools/prometheus-bin.sh | tail -n 1)"
export PROMETHEUS_BIN_DIR

step "release tools: registry, cosign, crane, cargo-cyclonedx (built from source once, then cached)"
RELEASE_BIN_DIR="$(tests/tools/release-bins.sh | tail -n 1)"
export RELEASE_BIN_DIR

# Everything cargo test, the demo and the SDK check run, built once up front (they would
# otherwise wait on each other's cargo lock).
step "cargo test --no-run"
cargo test --locked --all-targets --no-run

side_dir=$(mktemp -d)
side_names=()
side_pids=()
# side NAME CMD...: runs CMD in the background, stdout to $side_dir/N.out, stderr to N.err.
side() {
  local name=$1
  shift
  step "$name: started in the background"
  "$@" >"$side_dir/${#side_pids[@]}.out" 2>"$side_dir/${#side_pids[@]}.err" &
  side_names+=("$name")
  side_pids+=($!)
}
# A failing step ends the script; the side steps then stop too (each cleans up on TERM). The
# suite summary comes last either way.
trap 'kill "${side_pids[@]}" 2>/dev/null || true; rm -rf "$side_dir"; summary' EXIT

# Not niced: the demo must show every phase within its 60 s.
side "the README's demo, as a new user runs it (60 s)" \
  env DEMO_SECONDS=60 DEMO_DIR="$side_dir/demo-state" ./examples/demo.sh
if [ -x tests/sdk/run.sh ]; then
  side "official Alibaba Cloud Python SDKs against the simulator" nice -n 10 tests/sdk/run.sh
fi
fuzz=false
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  fuzz=true
  # Only the build here (minutes when the crate changed: optimised, instrumented); the runs come
  # after the tests, at full priority, since a starved fuzzer runs a handful of inputs.
  side "fuzz targets: build" nice -n 19 env FUZZ_BUILD_ONLY=1 tests/tools/fuzz.sh
else
  step "fuzz targets skipped: no cargo-fuzz or no nightly toolchain (cargo install cargo-fuzz --locked)"
fi

# The integration tests are one binary (tests/it) sharing a control plane; they mostly wait, so
# several run at once. The other binaries (unit tests) are quick.
step "cargo test"
cargo test --locked --all-targets -- --test-threads="${TEST_THREADS:-8}"

for i in "${!side_names[@]}"; do
  step "${side_names[$i]}"
  status=0
  wait "${side_pids[$i]}" || status=$?
  cat "$side_dir/$i.err" >&2
  # The demo (side step 0) prints a table, checked below and printed only if a check fails.
  [ "$i" -eq 0 ] || cat "$side_dir/$i.out"
  [ "$status" -eq 0 ] || { echo "${side_names[$i]}: exit status $status"; cat "$side_dir/$i.out"; exit 1; }
done

if $fuzz; then
  # A few seconds each, so the targets keep building and running against the crate; two at a
  # time (two halves of the list), one per core. The long runs and their figures are
  # `tests/tools/fuzz.sh 600`; every finding gets a regression test in cargo test, so findings
  # here do not fail the suite.
  step "fuzz targets, ${FUZZ_SECONDS:-5} s each, two at a time"
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
  half=$(((${#targets[@]} + 1) / 2))
  tests/tools/fuzz.sh "${FUZZ_SECONDS:-5}" "${targets[@]:0:half}" >"$side_dir/fuzz1" 2>&1 &
  fuzz1=$!
  tests/tools/fuzz.sh "${FUZZ_SECONDS:-5}" "${targets[@]:half}" >"$side_dir/fuzz2" 2>&1 &
  fuzz2=$!
  status=0
  wait "$fuzz1" || status=$?
  wait "$fuzz2" || status=$?
  cat "$side_dir/fuzz1" "$side_dir/fuzz2"
  [ "$status" -eq 0 ] || { echo "fuzz: exit status $status"; exit 1; }
fi

step "the demo's table"
demo_out=$side_dir/0.out
# The demo's rollout must be seen moving: Pending first, then waiting for a person, then done.
for phase in Pending Running AwaitingConfirmation AwaitingApproval Succeeded Failed; do
  grep -q "demo-edas-demo-edas-rollout .* $phase \|demo-sae-demo-sae-approval .* $phase \| $phase " "$demo_out" ||
    { echo "demo: no ChangeOrder reached $phase"; cat "$demo_out"; exit 1; }
done
grep -q "demo-edas-demo-edas-rollout .*AwaitingConfirmation" "$demo_out" ||
  { echo "demo: the EDAS rollout never waited for confirmation"; cat "$demo_out"; exit 1; }
# Each order once per state: no row before its status, no row repeating the order's last one.
awk 'NR > 1 && ($4 == "<none>" || last[$1] == $0) { bad = 1; print "demo: shown again: " $0 }
  { last[$1] = $0 } END { exit bad }' "$demo_out" || { cat "$demo_out"; exit 1; }
echo "demo: PASS"
