#!/usr/bin/env bash
# A real OCI registry for the release and install tests: CNCF Distribution's `registry`
# (release-bins.sh builds it from source), serving HTTPS with a CA of its own and htpasswd
# (bcrypt) basic auth, so anonymous pulls and pushes are refused.
#
# Usage:
#   registry.sh up DIR [--listen ADDR] [--owner-pid PID]
#       Generates a CA, a serving certificate (for 127.0.0.1, localhost and ADDR), a user with a
#       random password, and starts the registry on ADDR (default 127.0.0.1) at a free port,
#       with its data under DIR. Returns once /v2/ answers 401 to an anonymous request; prints
#       DIR/env's lines. With --owner-pid, a watchdog runs `down DIR` once PID exits.
#   registry.sh env DIR
#       Prints DIR/env: REGISTRY_HOST (ADDR:PORT), REGISTRY_CA_FILE, REGISTRY_USERNAME,
#       REGISTRY_PASSWORD_FILE. The password itself is never printed: `eval` the output, then
#       `export REGISTRY_PASSWORD=$(<"$REGISTRY_PASSWORD_FILE")` where a tool needs it.
#   registry.sh down DIR
#       Stops the registry (by its pid) and removes DIR. Safe to repeat.
#
# Needs openssl; the binaries come from release-bins.sh (cached; cold build about 4 min).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# start, stop, alive, wait_for, free_ports, start_time, gen_key, sign, tail_log.
# shellcheck source=cluster.sh
source "$here/cluster.sh"
self=$here/registry.sh

log() { printf 'registry.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

(($# >= 2)) || { sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
verb=$1 dir=$2
shift 2
[[ $dir == /* ]] || dir=$PWD/$dir
dir=${dir%/}
[[ -n $dir ]] || die "refusing to use / as DIR"
pki=$dir/pki

# /v2/ answers 401 with a Basic challenge when the registry is up and auth is on.
anonymous_refused() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$pki/ca.crt" "https://$1/v2/") || return 1
  [[ $code == 401 ]]
}

cmd_up() {
  local listen=127.0.0.1 owner_pid="" owner_start="" bin port secret
  while (($#)); do
    case $1 in
      --listen) listen=${2:?--listen needs an address}; shift 2 ;;
      --owner-pid) owner_pid=${2:?--owner-pid needs a pid}; shift 2 ;;
      *) die "up: unknown argument: $1" ;;
    esac
  done
  [[ $listen =~ ^[0-9.]+$ ]] || die "--listen: an IPv4 address, not $listen"
  if [[ -n $owner_pid ]]; then
    [[ $owner_pid =~ ^[0-9]+$ ]] || die "--owner-pid: not a pid: $owner_pid"
    owner_start=$(start_time "$owner_pid") || die "--owner-pid $owner_pid: no such process"
  fi
  [[ $dir != *"'"* && $dir != *$'\n'* ]] || die "DIR must not contain quotes or newlines"
  [[ ! -f $dir/pids/registry.pid ]] || die "$dir already has a registry (run: $self down $dir)"
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  command -v curl >/dev/null || die "curl not found (apt-get install curl)"
  bin=$("$here/release-bins.sh" --only registry,htpasswd </dev/null | tail -n 1)

  mkdir -p "$dir/logs" "$dir/pids" "$dir/data" "$pki"
  : >"$dir/.changeorder-registry"
  if [[ -n $owner_pid ]]; then
    start watchdog bash "$self" _watchdog "$dir" "$owner_pid" "$owner_start"
  fi
  trap 'rc=$?; if ((rc != 0)); then stop registry; fi' EXIT

  gen_key "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=changeorder-test-registry-ca" -days 30 \
    -sha256 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$pki/ca.crt" 2>/dev/null
  sign server "/CN=changeorder-test-registry" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:$listen"

  # The password only ever goes through files (mode 600) and stdin.
  (umask 077 && openssl rand -hex 16 >"$dir/password")
  "$bin/htpasswd" changeorder <"$dir/password" >"$dir/htpasswd"
  secret=$(openssl rand -hex 32)

  local attempt
  for attempt in 1 2 3; do
    port=$(free_ports 1)
    (umask 077 && cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog: {disabled: false}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: false}
auth:
  htpasswd:
    realm: changeorder-test-registry
    path: $dir/htpasswd
http:
  addr: $listen:$port
  secret: $secret
  tls:
    certificate: $pki/server.crt
    key: $pki/server.key
EOF
    )
    start registry "$bin/registry" serve "$dir/config.yml"
    if wait_for registry 30 "$(<"$dir/pids/registry.pid")" anonymous_refused "$listen:$port"; then
      break
    fi
    tail_log registry
    stop registry
    ((attempt < 3)) || die "the registry did not start"
  done

  {
    printf "export REGISTRY_HOST='%s'\n" "$listen:$port"
    printf "export REGISTRY_CA_FILE='%s'\n" "$pki/ca.crt"
    printf "export REGISTRY_USERNAME='%s'\n" changeorder
    printf "export REGISTRY_PASSWORD_FILE='%s'\n" "$dir/password"
    printf "export REGISTRY_DIR='%s'\n" "$dir"
  } >"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  trap - EXIT
  log "registry on https://$listen:$port (anonymous requests refused)"
  cat "$dir/env"
}

cmd_down() {
  [[ -e $dir ]] || return 0
  [[ -f $dir/.changeorder-registry ]] || die "$dir was not set up by registry.sh up; not touching it"
  stop registry
  # The watchdog last: when it is the caller, stopping it ends this script.
  [[ ${REGISTRY_FROM_WATCHDOG:-} == 1 ]] || stop watchdog
  rm -rf "$dir"
}

# _watchdog DIR PID START: internal; runs `down DIR` once the owner process (PID with that
# start time, so a reused pid does not count) is gone.
cmd_watchdog() {
  local owner=$1 owner_start=$2 now
  while :; do
    now=$(start_time "$owner") || break
    [[ $now == "$owner_start" ]] || break
    sleep 1
  done
  REGISTRY_FROM_WATCHDOG=1 cmd_down
}

case $verb in
  up) cmd_up "$@" ;;
  env) [[ -s $dir/env ]] || die "no registry in $dir"; cat "$dir/env" ;;
  down) cmd_down ;;
  _watchdog) cmd_watchdog "$@" ;;
  *) die "unknown verb $verb (up, env, down)" ;;
esac
