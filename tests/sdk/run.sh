#!/usr/bin/env bash
# Check the simulator against the official Alibaba Cloud Python SDKs.
#
# Creates (once) a virtualenv under the user's cache directory keyed by the hash of
# requirements.txt, builds the binary, starts `changeorder-sim` on a free port,
# runs check_sdk.py against it and stops it. Unattended: no prompts, exit status 0 only when
# every check passed.
#
# Environment:
#   PYTHON                     interpreter to create the venv with (default python3)
#   CHANGEORDER_SIM_BIN        use this simulator binary instead of building one with cargo
#   CARGO_TARGET_DIR           where cargo builds (default <repo>/target)
#   XDG_CACHE_HOME             cache root (default ~/.cache)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
req="$here/requirements.txt"
python="${PYTHON:-python3}"

say() { printf 'sdk: %s\n' "$*"; }
fail() { printf 'sdk: FAIL %s\n' "$*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || fail "$python not found (set PYTHON)"

# --- virtualenv, reused while requirements.txt is unchanged -----------------------------------
hash="$(sha256sum "$req" | cut -c1-16)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator"
venv="$cache/venv-$hash"
if [[ ! -f "$venv/.complete" ]]; then
    say "creating $venv"
    mkdir -p "$cache"
    rm -rf "$venv" # a leftover without the completion marker is unusable
    # Build in a scratch directory and move it into place, so an interrupted or concurrent run
    # never leaves a half-installed venv behind. Only bin/python is used, which works after the
    # move (console scripts with absolute shebangs would not, and are not used).
    tmp="$(mktemp -d "$cache/venv-$hash.tmp.XXXXXX")"
    "$python" -m venv "$tmp"
    "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
    touch "$tmp/.complete"
    if ! mv -T "$tmp" "$venv" 2>/dev/null; then
        rm -rf "$tmp" # another run won the race; use its venv
    fi
fi
[[ -f "$venv/.complete" ]] || fail "virtualenv $venv is incomplete"

# --- binary ------------------------------------------------------------------------------------
bin="${CHANGEORDER_SIM_BIN:-}"
if [[ -z "$bin" ]]; then
    say "building changeorder-sim"
    (cd "$root" && cargo build --quiet -p changeorder-sim --bin changeorder-sim)
    bin="${CARGO_TARGET_DIR:-$root/target}/debug/changeorder-sim"
fi
[[ -x "$bin" ]] || fail "binary $bin not found"

# --- simulator ---------------------------------------------------------------------------------
work="$(mktemp -d)"
sim_pid=""
cleanup() {
    if [[ -n "$sim_pid" ]] && kill -0 "$sim_pid" 2>/dev/null; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

key_id="sdk-check-key"
secret="sdk-check-secret-$RANDOM$RANDOM"
# Explicit flags, and no inherited CHANGEORDER_SIM_* settings: the checks expect the demo.
env -u CHANGEORDER_SIM_SCENARIO -u CHANGEORDER_SIM_TIME_SCALE -u CHANGEORDER_SIM_SECURITY_TOKEN \
    -u CHANGEORDER_SIM_PRINT_SCENARIO \
    "$bin" --listen 127.0.0.1:0 --access-key-id "$key_id" --access-key-secret "$secret" \
    >"$work/sim.out" 2>"$work/sim.err" </dev/null &
sim_pid=$!

url=""
for _ in $(seq 1 100); do
    line="$(head -n1 "$work/sim.out" 2>/dev/null || true)"
    if [[ "$line" == "listening on "* ]]; then
        url="${line#listening on }"
        break
    fi
    kill -0 "$sim_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$url" ]]; then
    cat "$work/sim.err" >&2 || true
    fail "simulator did not start"
fi
say "simulator at $url"

# --- checks ------------------------------------------------------------------------------------
status=0
"$venv/bin/python" "$here/check_sdk.py" --url "$url" --access-key-id "$key_id" --access-key-secret "$secret" \
    </dev/null || status=$?
if [[ $status -ne 0 ]]; then
    say "simulator log:"
    sed 's/^/  /' "$work/sim.err" >&2 || true
    fail "SDK checks failed"
fi
say "PASS"
