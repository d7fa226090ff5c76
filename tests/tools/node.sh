#!/usr/bin/env bash
# A real node for the local control plane (cluster.sh): kubelet + containerd (CRI) + runc, a
# bridge CNI network, a locally built pause image, kube-scheduler, and the controllers that turn
# Deployments into pods. Pods run for real (probes, ServiceAccount tokens, security contexts),
# so the Helm chart can be tested as a cluster admin would see it.
#
# Usage:
#   node.sh up DIR [--registry REGDIR]
#                        DIR is a running `cluster.sh up DIR`. Returns once the Node is Ready
#                        and schedulable; prints DIR/node/env's lines (NODE_NAME, NODE_IP,
#                        NODE_CONTAINERD_SOCK, ...). State, logs and pids go to DIR/node.
#                        With --registry (a running `registry.sh up REGDIR`), containerd trusts
#                        that registry's CA (a hosts.toml under its config_path) and logs in to
#                        it (the CRI plugin's registry auth), so pods pull from it like from
#                        any private registry.
#   node.sh load DIR FILE...   imports OCI image archives (image.sh output) into the node.
#   node.sh down DIR     deletes the node's pods, stops what `up` started (by pid), unmounts,
#                        removes the bridge, the iptables rule and the cgroups, restores the
#                        sysctls kubelet and the bridge plugin changed. Safe to repeat;
#                        `cluster.sh down DIR` runs it first.
#
# Needs root, containerd, runc and containernetworking-plugins (Debian packages; .ci/run
# installs them), gcc (static pause image), iptables. kubelet and kube-scheduler are
# built from source by `controlplane-bins.sh --node` (cached; the first build takes about 4 min
# on a quiet 2-core machine, 12 min under heavy load, see there). Up to Ready: about 4 s. Several nodes (one per cluster) can run at once: ports, bridge, subnet and cgroup root
# are picked per node.
#
# How pods reach the API server: cluster.sh serves on 127.0.0.1 only, so the `kubernetes`
# Service (10.0.0.1:443, in the serving certificate) is DNATed to it for this node's pod subnet,
# with route_localnet on the bridge: what kube-proxy does for a Service, for the one Service
# the operator needs (kube-proxy itself cannot target a loopback endpoint).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node_sh=$here/node.sh
# Process, certificate and readiness helpers: start, stop, alive, wait_for, sign, free_ports,
# write_kubeconfig.
# shellcheck source=cluster.sh
source "$here/cluster.sh"

log() { printf 'node.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

(($# >= 2)) || { sed -n '2,/^set -euo/p' "$node_sh" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
verb=$1 cluster_dir=$2
shift 2
[[ $cluster_dir == /* ]] || cluster_dir=$PWD/$cluster_dir
cluster_dir=${cluster_dir%/}
# cluster.sh's helpers keep pids and logs under $dir and sign with the CA under $pki.
dir=$cluster_dir/node
pki=$cluster_dir/pki
pause_ref=localhost/changeorder-pause:1
# Sysctls kubelet sets (kernel panic/oom/keys) and the bridge plugin sets (ip_forward).
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)

kubectl_c() { "$bin/kubectl" --kubeconfig "$cluster_dir/kubeconfig" --request-timeout=10s "$@"; }
ctr_n() { ctr --address "$dir/containerd.sock" --namespace k8s.io "$@"; }

# The pause image archive, built once per pause.c and cached next to the binaries.
pause_archive() {
  local cache sum out work
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/changeorder-operator/node
  sum=$(sha256sum "$here/pause/pause.c" "$here/oci-image.py" | sha256sum | cut -c1-16)
  out=$cache/pause-$sum.oci.tar
  if [[ ! -s $out ]]; then
    mkdir -p "$cache"
    work=$(mktemp -d)
    gcc -static -Os -s -o "$work/pause" "$here/pause/pause.c"
    mkdir -p "$work/rootfs"
    mv "$work/pause" "$work/rootfs/pause"
    python3 "$here/oci-image.py" --rootfs "$work/rootfs" --name "$pause_ref" \
      --entrypoint '["/pause"]' --user 65535:65535 --out "$out" >/dev/null
    rm -rf "$work"
  fi
  printf '%s\n' "$out"
}

# A bridge/subnet index (10.200.N.0/24 on bridge cobrN) that no other node here uses.
pick_index() {
  local n
  for ((n = 1; n < 255; n++)); do
    ip link show "cobr$n" >/dev/null 2>&1 && continue
    [[ -n $(ip -4 route show "10.200.$n.0/24") ]] && continue
    [[ -d /sys/fs/cgroup/memory/changeorder-node-$n ]] && continue
    echo "$n"
    return
  done
  die "no free bridge index"
}

# The machine's own address: kubelet refuses a loopback node IP, and the API server then reaches
# the kubelet by hostname, which /etc/hosts maps to 127.0.0.1.
node_ip() { ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }'; }

cgroup_dirs() {
  local c
  for c in /sys/fs/cgroup/*/; do
    [[ $c == */unified/ ]] && continue
    [[ -e $c/cgroup.procs ]] && printf '%s\n' "${c%/}/$cgroup_root"
  done
}

# The registry's hosts.toml (its CA) and the login, when node.sh up was given --registry.
write_registry_config() {
  local host ca user password
  # shellcheck disable=SC1091 # written by registry.sh up
  host=$(source "$registry_dir/env" && echo "$REGISTRY_HOST")
  # shellcheck disable=SC1091
  ca=$(source "$registry_dir/env" && echo "$REGISTRY_CA_FILE")
  # shellcheck disable=SC1091
  user=$(source "$registry_dir/env" && echo "$REGISTRY_USERNAME")
  # shellcheck disable=SC1091
  password=$(source "$registry_dir/env" && cat "$REGISTRY_PASSWORD_FILE")
  mkdir -p "$dir/certs.d/$host"
  cp "$ca" "$dir/certs.d/$host/ca.crt"
  cat >"$dir/certs.d/$host/hosts.toml" <<EOF
server = "https://$host"
[host."https://$host"]
  capabilities = ["pull", "resolve"]
  ca = "$dir/certs.d/$host/ca.crt"
EOF
  # The password is in this file only (mode 600, made so by write_containerd_config), where
  # containerd reads it.
  cat >>"$dir/containerd.toml" <<EOF
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
    [plugins."io.containerd.grpc.v1.cri".registry.configs."$host".auth]
      username = "$user"
      password = "$password"
EOF
  log "containerd trusts and logs in to the registry at $host"
}

write_containerd_config() {
  (umask 077 && : >"$dir/containerd.toml")
  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
# Snapshotters and plugins this node never uses, so they neither probe the host nor log errors.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  disable_apparmor = true
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory (not /var/run/netns), so down finds them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
}

write_cni_config() {
  mkdir -p "$dir/cni/net.d" "$dir/cni/ipam"
  # No masquerade and no portmap: pods only talk to the host and each other, so the host's
  # iptables stay untouched apart from the one rule below.
  cat >"$dir/cni/net.d/10-changeorder.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "changeorder-node-$idx",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cobr$idx",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "10.200.$idx.0/24", "gateway": "10.200.$idx.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
}

write_kubelet_config() {
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Served on loopback: the API server dials the kubelet by hostname, which resolves to 127.0.0.1.
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
# A test node: the API server is the only client.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_root
containerRuntimeEndpoint: unix://$dir/containerd.sock
failSwapOn: false
makeIPTablesUtilChains: false
resolvConf: ""
podLogsDir: $dir/pod-logs
volumePluginDir: $dir/volume-plugins
# The disk is shared with everything else on the machine: never evict or collect images.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 30
EOF
}

cmd_up() {
  local t0=$SECONDS pause node_name t_ready
  while (($#)); do
    case $1 in
      --registry) registry_dir=${2:?--registry needs a registry.sh directory}; shift 2 ;;
      *) die "up: unknown argument: $1" ;;
    esac
  done
  if [[ -n $registry_dir ]]; then
    [[ -f $registry_dir/env ]] || die "--registry: $registry_dir is not a running registry.sh registry"
  fi
  [[ -f $cluster_dir/.changeorder-cluster && -f $cluster_dir/env ]] ||
    die "$cluster_dir is not a running cluster.sh cluster"
  if compgen -G "$dir/pids/*.pid" >/dev/null; then
    die "$cluster_dir already has a node (run: $node_sh down $cluster_dir)"
  fi
  ((EUID == 0)) || die "needs root (containerd, mounts, bridge)"
  local cmd
  for cmd in containerd containerd-shim-runc-v2 ctr runc gcc iptables ip; do
    command -v "$cmd" >/dev/null || die "$cmd not found (apt-get install containerd runc containernetworking-plugins gcc iptables iproute2)"
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] ||
    die "CNI plugins not found in /usr/lib/cni (apt-get install containernetworking-plugins)"

  # shellcheck disable=SC1091 # written by cluster.sh up
  source "$cluster_dir/env"
  bin=$("$here/controlplane-bins.sh" --node </dev/null | tail -n 1)
  pause=$(pause_archive)
  local t_bins=$((SECONDS - t0))

  mkdir -p "$dir/logs" "$dir/pids"
  : >"$dir/.changeorder-node"
  # Anything failing half-way is undone, but the logs are kept for the caller to read.
  trap 'rc=$?; if ((rc != 0)); then log "up failed; tearing down"; KEEP_LOGS=1 cmd_down || true; fi' EXIT

  # Two nodes starting at once must not pick the same bridge: hold a machine-wide lock until
  # ours exists.
  exec 8>/run/lock/changeorder-node.lock
  flock 8
  idx=$(pick_index)
  cgroup_root=changeorder-node-$idx
  local ports
  mapfile -t ports < <(free_ports 2)
  kubelet_port=${ports[0]} healthz_port=${ports[1]}
  node_name=$(hostname)
  local ip
  ip=$(node_ip)
  [[ -n $ip ]] || die "no non-loopback IPv4 address for the node"
  {
    echo "idx=$idx"
    echo "cgroup_root=$cgroup_root"
    echo "node_name=$node_name"
    echo "apiserver_port=${KUBE_APISERVER_URL##*:}"
  } >"$dir/state"

  local s v
  : >"$dir/sysctls"
  for s in "${sysctls[@]}"; do
    v=$(sysctl -n "$s" 2>/dev/null) && printf '%s=%s\n' "$s" "$v" >>"$dir/sysctls"
  done

  # kubelet requires its cgroup root to exist; cpuset children start empty in cgroup v1, so
  # give ours the parent's CPUs and memory nodes.
  local cg
  while read -r cg; do
    mkdir -p "$cg"
    if [[ $cg == /sys/fs/cgroup/cpuset/* ]]; then
      cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$cg/cpuset.cpus"
      cat /sys/fs/cgroup/cpuset/cpuset.mems >"$cg/cpuset.mems"
    fi
  done < <(cgroup_dirs)

  # The bridge exists before the first pod so the Service rule can name it.
  ip link add "cobr$idx" type bridge
  ip addr add "10.200.$idx.1/24" dev "cobr$idx"
  ip link set "cobr$idx" up
  flock -u 8
  exec 8>&-
  sysctl -qw "net.ipv4.conf.cobr$idx.route_localnet=1"
  local rule=(PREROUTING -s "10.200.$idx.0/24" -d 10.0.0.1/32 -p tcp --dport 443
    -m comment --comment "changeorder-node-$idx kubernetes Service"
    -j DNAT --to-destination "127.0.0.1:${KUBE_APISERVER_URL##*:}")
  printf '%q ' "${rule[@]}" >"$dir/iptables-rule"
  iptables -t nat -A "${rule[@]}"

  write_containerd_config
  [[ -z $registry_dir ]] || write_registry_config
  write_cni_config
  start containerd containerd --config "$dir/containerd.toml"
  wait_for containerd 30 "$(<"$dir/pids/containerd.pid")" ctr_n version ||
    { tail_log containerd; die "containerd did not start"; }
  ctr_n images import --all-platforms "$pause" >/dev/null

  # The kubelet's identity: a client certificate from the cluster CA. RBAC is the only
  # authorizer in cluster.sh (no Node authorizer), so it is in system:masters like the
  # controller-manager.
  sign kubelet "/O=system:masters/CN=system:node:$node_name" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  apiserver_url=$KUBE_APISERVER_URL
  write_kubeconfig "$dir/kubelet.kubeconfig" kubelet
  write_kubelet_config
  mkdir -p "$dir/kubelet" "$dir/pod-logs" "$dir/volume-plugins"
  start kubelet "$bin/kubelet" \
    --config="$dir/kubelet.yaml" \
    --kubeconfig="$dir/kubelet.kubeconfig" \
    --root-dir="$dir/kubelet" \
    --cert-dir="$dir/kubelet/pki" \
    --node-ip="$ip" \
    --v=1
  # Placement, and Deployments/ReplicaSets/PDBs/Jobs, which cluster.sh's controller-manager
  # leaves out (it serves nodeless tests).
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$cluster_dir/controller-manager.kubeconfig" \
    --leader-elect=false --secure-port=0 --v=1
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$cluster_dir/controller-manager.kubeconfig" \
    --controllers=deployment-controller,replicaset-controller,disruption-controller,job-controller,pod-garbage-collector-controller,endpointslice-controller \
    --leader-elect=false --secure-port=0 --v=1

  node_ready() {
    [[ $(kubectl_c get node "$node_name" \
      -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
  }
  wait_for "node $node_name" 120 "$(<"$dir/pids/kubelet.pid")" node_ready ||
    { tail_log kubelet; die "the node did not become Ready"; }
  t_ready=$((SECONDS - t0))
  # Nothing here runs the node-lifecycle controller, which would lift this taint.
  kubectl_c taint node "$node_name" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true

  {
    printf "export NODE_NAME='%s'\n" "$node_name"
    printf "export NODE_IP='%s'\n" "$ip"
    printf "export NODE_CONTAINERD_SOCK='%s'\n" "$dir/containerd.sock"
    printf "export NODE_POD_SUBNET='%s'\n" "10.200.$idx.0/24"
    printf "export NODE_DIR='%s'\n" "$dir"
  } >"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  trap - EXIT
  log "node $node_name Ready in $((t_ready - t_bins))s (binaries ${t_bins}s); pods on 10.200.$idx.0/24"
  cat "$dir/env"
}

cmd_load() {
  (($# > 0)) || die "load: no archive given"
  [[ -S $dir/containerd.sock ]] || die "no node in $cluster_dir"
  local f
  for f in "$@"; do
    ctr_n images import --all-platforms "$f" >&2
  done
}

# Every mount under DIR, deepest first.
our_mounts() { awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r; }

# The PIDs of containerd-shims serving this node's containerd (found by its socket, which no
# other containerd uses): they outlive containerd by design.
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "-address $dir/containerd.sock " &&
      echo "${p#/proc/}"
  done
  return 0
}

cmd_down() {
  [[ -e $dir ]] || return 0
  [[ -f $dir/.changeorder-node ]] || die "$dir was not set up by node.sh up; not touching it"
  local idx="" cgroup_root="" node_name="" apiserver_port="" i
  # shellcheck disable=SC1091 # written by up
  [[ -f $dir/state ]] && source "$dir/state"
  bin=$("$here/controlplane-bins.sh" </dev/null | tail -n 1)

  # Nothing may recreate pods while they are removed; then the kubelet stops them properly,
  # which runs CNI DEL and removes their network namespaces.
  stop kube-controller-manager kube-scheduler
  if [[ -S $dir/containerd.sock && -n $node_name ]] && kubectl_c get --raw=/readyz >/dev/null 2>&1; then
    kubectl_c delete pods --all-namespaces --field-selector "spec.nodeName=$node_name" \
      --grace-period=2 --wait=false >/dev/null 2>&1 || true
    for ((i = 0; i < 60; i++)); do
      [[ -z $(ctr_n tasks ls -q 2>/dev/null) ]] && break
      sleep 0.5
    done
  fi
  stop kubelet
  # What the kubelet did not stop in time: kill the tasks and remove their containers (their
  # network namespaces are mounts under DIR, removed below).
  if [[ -S $dir/containerd.sock ]]; then
    local t c
    for t in $(ctr_n tasks ls -q 2>/dev/null); do
      ctr_n tasks kill -s KILL "$t" >/dev/null 2>&1 || true
    done
    for c in $(ctr_n containers ls -q 2>/dev/null); do
      ctr_n tasks rm -f "$c" >/dev/null 2>&1 || true
      ctr_n containers rm "$c" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  local shim
  for shim in $(our_shims); do
    kill -KILL "$shim" 2>/dev/null || true
  done

  local m
  for m in $(our_mounts); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done

  if [[ -n $idx ]]; then
    ip link del "cobr$idx" 2>/dev/null || true
    rm -rf "/var/lib/cni/results/changeorder-node-$idx-"* 2>/dev/null || true
    # containerd's CNI library keeps its result cache there; leave no empty directories behind.
    rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
  fi
  if [[ -s $dir/iptables-rule ]]; then
    local -a rule
    eval "rule=($(<"$dir/iptables-rule"))"
    while iptables -t nat -D "${rule[@]}" 2>/dev/null; do :; done
  fi
  if [[ -s $dir/sysctls ]]; then
    local line
    while read -r line; do
      sysctl -qw "$line" 2>/dev/null || log "could not restore $line"
    done <"$dir/sysctls"
  fi
  # Pod cgroups are empty once their processes are gone; remove them leaves first.
  if [[ -n $cgroup_root ]]; then
    local cg
    while read -r cg; do
      [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done < <(cgroup_dirs)
  fi
  if [[ -n $node_name ]] && kubectl_c get --raw=/readyz >/dev/null 2>&1; then
    kubectl_c delete node "$node_name" --wait=false >/dev/null 2>&1 || true
  fi
  if [[ ${KEEP_LOGS:-} == 1 ]]; then
    rm -rf "$dir/containerd" "$dir/kubelet" "$dir/pids"
  else
    rm -rf "$dir"
  fi
}

bin="" idx="" cgroup_root="" kubelet_port="" healthz_port="" apiserver_url="" registry_dir=""
case $verb in
  up) cmd_up "$@" ;;
  load) cmd_load "$@" ;;
  down) cmd_down ;;
  *) die "unknown verb $verb (up, load, down)" ;;
esac
