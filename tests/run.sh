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
  CONTROLPLANE_BIN_DIR="$(tests/tools/controlplane-bins.sh | tail -n 1)"
  export CONTROLPLANE_BIN_DIR
fi

step "cargo test"
cargo test --locked --all-targets -- --test-threads="${TEST_THREADS:-2}"

if [ -x tests/sdk/run.sh ]; then
  step "official Alibaba Cloud Python SDKs against the simulator"
  tests/sdk/run.sh
fi
