#!/usr/bin/env bash
# Build the cargo-fuzz targets under fuzz/ and run each for a while, then print a table of
# target, executions and findings (crash, timeout and out-of-memory files written this run).
#
#   tests/tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 600 s, every target
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Environment:
#   FUZZ_TOOLCHAIN            rustup toolchain to build with (default: nightly)
#   FUZZ_SANITIZER            address | none (default: none: the crate forbids unsafe code, and
#                             without ASan a target runs about twice as many inputs)
#   FUZZ_STOP_ON_FINDING=1    stop a target at its first finding instead of searching on
#   FUZZ_TARGET_DIR           where the build goes (default: ~/.cache/changeorder-operator/fuzz-target)
#   FUZZ_FAIL_ON_FINDINGS=1   exit 1 when anything was found (default: only build or run
#                             failures fail; every finding gets a regression test in the crate)
#   FUZZ_BUILD_ONLY=1         build every target, run none (tests/run.sh builds in the background)
# The corpus grows in fuzz/corpus/<target> (not committed) from the seeds in fuzz/seeds/<target>;
# findings land in fuzz/artifacts/<target>, logs in fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-600}
shift || true
case $seconds in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac
toolchain=${FUZZ_TOOLCHAIN:-nightly}
sanitizer=${FUZZ_SANITIZER:-none}
cargo_fuzz=(cargo "+$toolchain" fuzz)

if ! "${cargo_fuzz[@]}" --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz with toolchain $toolchain is not available (cargo install cargo-fuzz --locked)" >&2
  exit 2
fi

mapfile -t all_targets < <("${cargo_fuzz[@]}" list --fuzz-dir fuzz)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  printf '%s\n' "${all_targets[@]}" | grep -qx "$t" || { echo "fuzz: no target $t (have: ${all_targets[*]})" >&2; exit 2; }
done

# One build for all targets; running the binaries directly keeps cargo out of the timed runs.
echo "fuzz: building ${#all_targets[@]} targets with $toolchain (sanitizer $sanitizer)" >&2
# The instrumented build of the crate and every dependency is long (tens of minutes on 2 busy
# cores), so its target directory lives in the cache outside the checkout, like the control-plane
# binaries: a fresh clone on the same machine rebuilds only the crate itself.
target_dir=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/fuzz-target}
"${cargo_fuzz[@]}" build --fuzz-dir fuzz --target-dir "$target_dir" --sanitizer "$sanitizer" --debug-assertions >&2
[ "${FUZZ_BUILD_ONLY:-0}" != 1 ] || exit 0
host=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$host/release

dict_for() {
  case $1 in
    *_reply | error_envelope) echo fuzz/dicts/reply.dict ;;
    scenario_file) echo fuzz/dicts/scenario.dict ;;
  esac
}

mkdir -p fuzz/logs
rows=()
new_files=()
total_findings=0
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
  before=$(find "fuzz/artifacts/$t" -type f | sort)
  args=(
    "fuzz/corpus/$t" "fuzz/seeds/$t"
    -max_total_time="$seconds"
    -artifact_prefix="fuzz/artifacts/$t/"
    -timeout=10
    -rss_limit_mb=2048
    -print_final_stats=1
  )
  dict=$(dict_for "$t")
  [ -z "$dict" ] || args+=(-dict="$dict")
  if [ "${FUZZ_STOP_ON_FINDING:-0}" != 1 ]; then
    # Fork mode: a crash is recorded and the search goes on, so one run reports every distinct
    # finding rather than the first.
    args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  log=fuzz/logs/$t.log
  echo "fuzz: $t for ${seconds}s (log $log)" >&2
  start=$(date +%s)
  status=0
  "$bin_dir/$t" "${args[@]}" >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  # Plain mode ends with "Done N runs"; fork mode's last progress line starts with "#N:".
  execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[:[:space:]].*/\1/p' "$log" | tail -n 1)
  new=$(comm -13 <(echo "$before") <(find "fuzz/artifacts/$t" -type f | sort) | sed '/^$/d')
  found=$(printf '%s' "$new" | grep -c . || true)
  [ -z "$new" ] || new_files+=("$new")
  total_findings=$((total_findings + found))
  note=""
  if [ "$status" -ne 0 ] && [ "$found" -eq 0 ]; then
    note="exit $status, see $log"
    failed=1
  fi
  rows+=("$(printf '%-18s %12s %8s %9s  %s' "$t" "${execs:-?}" "$found" "${elapsed}s" "$note")")
done

printf '\n%-18s %12s %8s %9s\n' TARGET EXECUTIONS FINDINGS TIME
printf '%s\n' "${rows[@]}"
if [ "$total_findings" -gt 0 ]; then
  echo
  echo "findings (reproduce: $bin_dir/<target> <file>), each with its first panic line:"
  for f in $(printf '%s\n' "${new_files[@]}"); do
    t=$(basename "$(dirname "$f")")
    why=$(timeout 60 "$bin_dir/$t" "$f" 2>&1 | grep -A1 -m1 'panicked at' | tail -n 1 | cut -c1-200 || true)
    printf '  %s\n      %s\n' "$f" "${why:-(no panic on re-run: timeout or out of memory?)}"
  done
fi
[ "$failed" -eq 0 ] || exit 1
if [ "$total_findings" -gt 0 ] && [ "${FUZZ_FAIL_ON_FINDINGS:-0}" = 1 ]; then
  exit 1
fi
