#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback for tests and the demo:
# etcd + kube-apiserver + kube-controller-manager, no nodes, no container
# runtime. Binaries come from controlplane-bins.sh (built once, cached).
#
# Usage:
#   cluster.sh up DIR [--owner-pid PID]
#       Starts the servers with all state under DIR (created; must not hold a
#       running cluster) and returns once /readyz is OK, the `default`
#       namespace exists and the controller-manager has populated it. The
#       servers keep running detached. Prints DIR/env's lines to stdout, so
#       `eval "$(cluster.sh up DIR)"` works; progress goes to stderr.
#       With --owner-pid, a watchdog runs `down DIR` once PID exits, so a
#       crashed or killed caller does not leave servers behind.
#   cluster.sh down DIR
#       Stops everything `up DIR` started and removes DIR. Safe to repeat.
#   cluster.sh stop-apiserver DIR / cluster.sh start-apiserver DIR
#       An API-server outage on purpose (etcd and the data stay): stop it, then
#       start it again on the same port and wait for /readyz.
#
# What DIR holds afterwards:
#   kubeconfig     cluster-admin (client certificate in group system:masters)
#   env            export lines: KUBECONFIG, CONTROLPLANE_BIN_DIR,
#                  KUBE_APISERVER_URL, ETCD_ENDPOINT, CLUSTER_DIR
#   pki/           CA, serving and client certificates, service-account keys
#   logs/*.log     etcd, kube-apiserver, kube-controller-manager, watchdog
#   pids/*.pid     one per process; each is its own process-group leader
#
# Ports are picked at run time below the kernel's ephemeral range and checked
# against the listening sockets, so several clusters can run at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ---- ports -----------------------------------------------------------------

# Ports with a listening TCP socket (IPv4 or IPv6), in decimal.
listening_ports() {
  # State 0A is LISTEN; the port is the hex after the colon of local_address.
  awk 'FNR > 1 && $4 == "0A" { split($2, a, ":"); print strtonum("0x" a[2]) }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null || true
}

# free_ports N: prints N distinct ports that nothing listens on. Chosen at
# random in 20000-31999 (below Linux's default ephemeral range, so outgoing
# connections do not take them) to keep concurrent `up`s apart; a start that
# still loses a race is retried with new ports.
free_ports() {
  local n=$1 used port picked=()
  used=" $(listening_ports | tr '\n' ' ') "
  while ((${#picked[@]} < n)); do
    port=$((20000 + RANDOM % 12000))
    [[ $used == *" $port "* ]] && continue
    [[ " ${picked[*]} " == *" $port "* ]] && continue
    picked+=("$port")
  done
  printf '%s\n' "${picked[@]}"
}

# ---- processes -------------------------------------------------------------

# start NAME CMD...: runs CMD detached in its own session (so it is its own
# process group and outlives the caller's terminal), output to logs/NAME.log,
# pid to pids/NAME.pid. The pid is written by the process itself just before
# it execs CMD, because setsid forks when its caller already leads a group
# (as under `bash -m`), and then $! would name the wrong process.
start() {
  local name=$1 pidfile=$dir/pids/$1.pid i
  shift
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$dir/logs/$name.log" 2>&1 &
  for ((i = 0; i < 100; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.05
  done
  die "$name did not start"
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop NAME...: TERM each process group, all at once, and KILL what is left
# after 2 s. The data is thrown away anyway, so a clean shutdown is not worth
# the apiserver's few seconds of draining.
stop() {
  local name pidfile pid i i_pid pids=()
  for name in "$@"; do
    pidfile=$dir/pids/$name.pid
    [[ -f $pidfile ]] || continue
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < 20 && ${#pids[@]} > 0; i++)); do
    for i_pid in "${!pids[@]}"; do
      alive "${pids[$i_pid]}" || unset "pids[$i_pid]"
    done
    ((${#pids[@]} == 0)) || sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  for name in "$@"; do
    rm -f "$dir/pids/$name.pid"
  done
}

# The start time of a process (clock ticks since boot), which together with
# the pid identifies it even after the pid is reused.
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # Fields after the parenthesised command name; starttime is field 22.
  stat=${stat##*) }
  # shellcheck disable=SC2086 # splitting into fields is the point
  set -- $stat
  echo "${20}"
}

# ---- readiness -------------------------------------------------------------

# wait_for WHAT SECONDS PID CMD...: polls CMD until it succeeds; fails early if
# PID (the server being waited for) exits.
wait_for() {
  local what=$1 secs=$2 pid=$3 deadline
  shift 3
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      log "$what: process $pid exited; tail of its log:"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$what: not ready after ${secs}s"
      return 1
    fi
    sleep 0.2
  done
}

# etcd answers /health with {"health":"true",...}; bash's /dev/tcp avoids
# needing curl.
etcd_healthy() {
  local port=$1 reply
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  reply=$(timeout 2 cat <&3) || true
  exec 3<&-
  [[ $reply == *'"health":"true"'* ]]
}

kubectl_ok() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=5s "$@"; }

# ---- certificates ----------------------------------------------------------

# EC P-256 everywhere (except the service-account signing key, below): quick to
# generate, accepted by the apiserver, etcd clients, kubectl and rustls.
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME SUBJECT EXTENSIONS: key + certificate signed by the cluster CA.
sign() {
  local name=$1 subj=$2 ext=$3
  gen_key "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 30 -sha256 \
    -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
  mkdir -p "$pki"
  gen_key "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=changeorder-test-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/ca.crt" 2>/dev/null
  local leaf="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment"
  # 10.0.0.1 is the `kubernetes` Service's ClusterIP, which pods on a node (node.sh) use.
  sign apiserver "/CN=kube-apiserver" "$leaf
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # system:masters bypasses RBAC: the admin of a test cluster, and the
  # controller-manager, which then needs no per-controller credentials.
  sign admin "/O=system:masters/CN=changeorder-test-admin" "$leaf
extendedKeyUsage=clientAuth"
  sign controller-manager "/O=system:masters/CN=system:kube-controller-manager" "$leaf
extendedKeyUsage=clientAuth"
  # Signs ServiceAccount tokens (TokenRequest and legacy token Secrets).
  # RSA, as on ACK, so service-account tokens are RS256 (the keyless tests verify them).
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key
}

# write_kubeconfig FILE USER: certificates embedded, so the file can be copied.
write_kubeconfig() {
  local file=$1 user=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: changeorder-test
  cluster:
    server: $apiserver_url
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$pki/$user.crt")
    client-key-data: $(base64 -w0 "$pki/$user.key")
contexts:
- name: changeorder-test
  context:
    cluster: changeorder-test
    user: $user
    namespace: default
current-context: changeorder-test
EOF
  chmod 600 "$file"
}

# ---- up --------------------------------------------------------------------

start_etcd() {
  local client=$1 peer=$2
  start etcd "$bin/etcd" \
    --name=changeorder-test \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$client" \
    --advertise-client-urls="http://127.0.0.1:$client" \
    --listen-peer-urls="http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
    --initial-cluster="changeorder-test=http://127.0.0.1:$peer" \
    --unsafe-no-fsync=true \
    --log-level=warn
}

start_apiserver() {
  local port=$1
  # RBAC only; the default admission plugins include NamespaceLifecycle,
  # ServiceAccount and PodSecurity. The service-account flags enable the
  # TokenRequest API. With no nodes there is no point in publishing the
  # `kubernetes` Service's endpoints (and 127.0.0.1 would be rejected there).
  start kube-apiserver "$bin/kube-apiserver" \
    --bind-address=127.0.0.1 \
    --secure-port="$port" \
    --etcd-servers="$etcd_url" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none \
    --enable-priority-and-fairness=false \
    --profiling=false \
    --v=1
}

start_controller_manager() {
  # Only what a cluster without nodes needs: ownerReference garbage
  # collection, namespace deletion, the `default` ServiceAccount and its
  # tokens, kube-root-ca.crt, and aggregated ClusterRoles.
  # --secure-port=0: nothing scrapes it, and it saves a port.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/controller-manager.kubeconfig" \
    --controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --leader-elect=false \
    --secure-port=0 \
    --v=1
}

tail_log() { tail -n 30 "$dir/logs/$1.log" >&2 || true; }

write_env() {
  local tmp=$dir/env.tmp
  {
    printf "export KUBECONFIG='%s'\n" "$dir/kubeconfig"
    printf "export CONTROLPLANE_BIN_DIR='%s'\n" "$bin"
    printf "export KUBE_APISERVER_URL='%s'\n" "$apiserver_url"
    printf "export ETCD_ENDPOINT='%s'\n" "$etcd_url"
    printf "export CLUSTER_DIR='%s'\n" "$dir"
  } >"$tmp"
  mv "$tmp" "$dir/env"
}

cmd_up() {
  local owner_pid="" owner_start="" attempt ports
  while (($#)); do
    case $1 in
      --owner-pid) owner_pid=${2:?--owner-pid needs a pid}; shift 2 ;;
      --owner-pid=*) owner_pid=${1#*=}; shift ;;
      *) die "up: unknown argument: $1" ;;
    esac
  done
  if [[ -n $owner_pid ]]; then
    [[ $owner_pid =~ ^[0-9]+$ ]] || die "--owner-pid: not a pid: $owner_pid"
    owner_start=$(start_time "$owner_pid") || die "--owner-pid $owner_pid: no such process"
  fi

  if [[ -d $dir/pids ]] && compgen -G "$dir/pids/*.pid" >/dev/null; then
    die "$dir already has a cluster (run: $self down $dir)"
  fi
  [[ $dir != *"'"* && $dir != *$'\n'* ]] || die "DIR must not contain quotes or newlines"

  local t0=$SECONDS
  # Only what a control plane runs: helm (a long build) is for the chart tests, not for `up`.
  bin=$("$here/controlplane-bins.sh" --only kube-apiserver,kube-controller-manager,kubectl,etcd </dev/null | tail -n 1)
  [[ -x $bin/kube-apiserver ]] || die "controlplane-bins.sh gave no usable bin dir"

  mkdir -p "$dir/logs" "$dir/pids"
  # Marks DIR as ours, so `down` only ever deletes a directory `up` set up.
  : >"$dir/.changeorder-cluster"
  pki=$dir/pki
  make_pki

  # The watchdog starts first, so even a failure half-way through `up` is
  # cleaned up once the owner goes away.
  if [[ -n $owner_pid ]]; then
    start watchdog bash "$self" _watchdog "$dir" "$owner_pid" "$owner_start"
  fi
  # If `up` itself fails, leave nothing running (but keep DIR for the logs).
  trap 'rc=$?; if ((rc != 0)); then stop_servers; fi' EXIT

  for attempt in 1 2 3; do
    mapfile -t ports < <(free_ports 3)
    etcd_url=http://127.0.0.1:${ports[0]}
    apiserver_url=https://127.0.0.1:${ports[2]}
    rm -rf "$dir/etcd"
    start_etcd "${ports[0]}" "${ports[1]}"
    if wait_for etcd 30 "$(<"$dir/pids/etcd.pid")" etcd_healthy "${ports[0]}"; then
      break
    fi
    tail_log etcd
    stop etcd
    ((attempt < 3)) || die "etcd did not start"
    log "retrying etcd with other ports"
  done

  for attempt in 1 2 3; do
    write_kubeconfig "$dir/kubeconfig" admin
    start_apiserver "${ports[2]}"
    if wait_for kube-apiserver 120 "$(<"$dir/pids/kube-apiserver.pid")" \
      kubectl_ok get --raw=/readyz; then
      break
    fi
    tail_log kube-apiserver
    stop kube-apiserver
    ((attempt < 3)) || die "kube-apiserver did not start"
    log "retrying kube-apiserver with another port"
    mapfile -t ports < <(free_ports 3)
    apiserver_url=https://127.0.0.1:${ports[2]}
  done
  wait_for "namespace default" 60 "$(<"$dir/pids/kube-apiserver.pid")" \
    kubectl_ok get namespace default || die "the default namespace did not appear"

  write_kubeconfig "$dir/controller-manager.kubeconfig" controller-manager
  start_controller_manager
  # The serviceaccount controller filling in `default` shows the
  # controller-manager is connected and its controllers run.
  wait_for kube-controller-manager 60 "$(<"$dir/pids/kube-controller-manager.pid")" \
    kubectl_ok get serviceaccount default --namespace default ||
    { tail_log kube-controller-manager; die "kube-controller-manager did not start"; }

  write_env
  trap - EXIT
  log "up in $((SECONDS - t0))s: $apiserver_url (data in $dir)"
  cat "$dir/env"
}

stop_servers() { stop kube-controller-manager kube-apiserver etcd; }

# ---- down ------------------------------------------------------------------

cmd_down() {
  [[ -e $dir ]] || return 0
  [[ -f $dir/.changeorder-cluster ]] || die "$dir was not set up by cluster.sh up; not touching it"
  # A node (node.sh) needs the API server to delete its pods, and its mounts must go before DIR.
  if [[ -f $dir/node/.changeorder-node ]]; then
    "$here/node.sh" down "$dir" || log "node.sh down failed; see $dir/node/logs"
  fi
  stop_servers
  # When the watchdog itself runs `down`, it is the process being stopped.
  if [[ ${CLUSTER_SH_WATCHDOG:-} != 1 ]]; then
    stop watchdog
  fi
  rm -rf "$dir"
}

# _watchdog DIR PID START: internal; runs `down DIR` once the owner process
# (PID with that start time, so a reused pid does not count) is gone.
cmd_watchdog() {
  local owner=$1 owner_start=$2 now
  while :; do
    now=$(start_time "$owner") || break
    [[ $now == "$owner_start" ]] || break
    sleep 1
  done
  echo "owner $owner exited; stopping the cluster in $dir"
  CLUSTER_SH_WATCHDOG=1 cmd_down
}

# ---- outage ----------------------------------------------------------------

cmd_stop_apiserver() { stop kube-apiserver; }

cmd_start_apiserver() {
  [[ -f $dir/env ]] || die "$dir holds no cluster"
  # shellcheck source=/dev/null
  source "$dir/env"
  bin=$CONTROLPLANE_BIN_DIR etcd_url=$ETCD_ENDPOINT apiserver_url=$KUBE_APISERVER_URL
  start_apiserver "${apiserver_url##*:}"
  wait_for kube-apiserver 120 "$(<"$dir/pids/kube-apiserver.pid")" kubectl_ok get --raw=/readyz ||
    die "kube-apiserver did not come back"
}

# ---- main ------------------------------------------------------------------

# node.sh sources this file for its helpers (start, stop, wait_for, sign, ...).
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

(($# >= 2)) || usage
verb=$1 dir=$2
shift 2
[[ $dir == /* ]] || dir=$PWD/$dir
dir=${dir%/}
[[ -n $dir ]] || die "refusing to use / as DIR"
bin="" pki=$dir/pki etcd_url="" apiserver_url=""

case $verb in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  _watchdog) cmd_watchdog "$@" ;;
  *) usage ;;
esac
