#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, unit and integration tests against the simulator and a
# real local control plane, the official SDK check and the chart checks. Safe to run repeatedly:
# tools are built once and cached outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

if [ -x tests/tools/controlplane-bins.sh ]; then
  step "control-plane binaries (built from source once, then cached)"
  CONTROLPLANE_BIN_DIR="$(tests/tools/controlplane-bins.sh --node | tail -n 1)"
  export CONTROLPLANE_BIN_DIR
fi

step "cargo test (build)"
cargo test --locked --all-targets --no-run

# The README's demo runs for a fixed 60 s and mostly waits, so it runs next to the tests instead
# of after them; its output is checked at the end. It builds nothing (the build above is done),
# and it listens on the examples' fixed ports, which no test uses.
step "the README's demo, as a new user runs it (60 s, in the background)"
demo_out=$(mktemp)
demo_err=$(mktemp)
DEMO_SECONDS=60 DEMO_DIR="$(mktemp -d)/demo" ./examples/demo.sh >"$demo_out" 2>"$demo_err" &
demo_pid=$!
# A failing step ends the script; the demo then stops too (it cleans up on TERM).
trap 'kill "$demo_pid" 2>/dev/null || true' EXIT

# Most integration tests wait on servers, timers and processes rather than the CPU, so the one
# integration binary (tests/it) runs several at once; the other binaries are quick.
step "cargo test"
cargo test --locked --all-targets -- --test-threads="${TEST_THREADS:-8}"

if cargo +nightly fuzz --version >/dev/null 2>&1; then
  # A few seconds each, so the targets keep building against the crate. The long runs and their
  # figures are `tests/tools/fuzz.sh 600`; every finding gets a regression test in cargo test,
  # so findings here do not fail the suite.
  step "fuzz targets, ${FUZZ_SECONDS:-5} s each"
  tests/tools/fuzz.sh "${FUZZ_SECONDS:-5}"
else
  step "fuzz targets skipped: no cargo-fuzz or no nightly toolchain (cargo install cargo-fuzz --locked)"
fi

if [ -x tests/sdk/run.sh ]; then
  step "official Alibaba Cloud Python SDKs against the simulator"
  tests/sdk/run.sh
fi

step "the README's demo (started before cargo test)"
wait "$demo_pid" || { echo "demo: exit status $?"; cat "$demo_err" "$demo_out"; exit 1; }
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
rm -f "$demo_out" "$demo_err"
echo "demo: PASS"
