# The real node of hack/testenv (up --real-node): containerd + runc, kubelet, kube-proxy
# (iptables), the bridge CNI, kube-router (NetworkPolicy only) and CoreDNS. Sourced by
# up, down and selftest after lib.sh; not run on its own.
#
# Everything it creates is named so `down` can find it again, and only that:
#   /run/parity-node/          containerd state and socket, shim sockets, runc state, netns
#                              mounts, CNI IPAM, the sysctl values to restore; its presence is
#                              the "a real node runs on this host" lock
#   $TESTENV_DIR/node/         configs, containerd's root (images, snapshots), kubelet's root
#   links parity-node0/1       the veth pair holding the node IP
#   link parity-cni0           the pods' bridge (and the pods' veths on it)
#   iptables chains KUBE-*, CNI-*, PARITY-NODE-*; ipsets KUBE-*, kube-router-*
# shellcheck shell=bash

NODE_RUN=/run/parity-node
NODE_NAME=parity-node
# The node IP sits on a veth of its own (the kernel may lack the dummy module): not loopback,
# so pods can reach the apiserver and kube-proxy can DNAT to it.
NODE_IP=${TESTENV_NODE_IP:-172.30.255.1}
NODE_LINK=parity-node0
NODE_LINK_PEER=parity-node1
CNI_BRIDGE=parity-cni0
POD_SUBNET=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.0.0.0/16
DNS_IP=10.0.0.10
CLUSTER_DOMAIN=cluster.local
# Sysctls something here changes (we: ip_forward; kube-proxy: route_localnet; kubelet:
# kernel defaults). `down` writes back the values they had before `up`.
NODE_SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait net.ipv4.conf.all.forwarding)
# iptables chains and ipsets that belong to the node (kube-proxy, kubelet, CNI plugins,
# kube-router, our egress guard). Only one real node runs per host, so these are ours.
NODE_CHAIN_RE='^(KUBE-|CNI-|PARITY-NODE-)'
# Host paths the node's programs create at fixed places whatever they are configured with
# (kubelet's /var/log/containers symlinks, for one). `down` removes those that did not exist
# before `up`.
NODE_HOST_PATHS=(/var/log/containers /var/log/pods /var/lib/kubelet /var/lib/cni /var/lib/containerd
  /run/containerd /run/netns /etc/cni /var/lib/kube-router /etc/kubernetes)
NODE_IPSET_RE='^(KUBE-|kube-router)'

node_dir() { echo "$TESTENV_DIR/node"; }

# --- checks -------------------------------------------------------------------------------

# Dies when a real node already runs on this host (one per host: fixed names, one set of chains).
node_refuse_if_running() {
  if [[ -e $NODE_RUN ]]; then
    local owner
    owner=$(cat "$NODE_RUN/testenv-dir" 2>/dev/null || echo unknown)
    die "a real node is already running on this host (testenv $owner; $NODE_RUN exists). Stop it with: PARITY_TESTENV_DIR=$owner hack/testenv/down"
  fi
}

# --- start (up --real-node) ---------------------------------------------------------------

# Before the apiserver starts: the lock, the sysctl baseline, the node IP.
node_prepare() {
  # mkdir is the lock: of two concurrent ups only one creates it.
  mkdir "$NODE_RUN" 2>/dev/null || node_refuse_if_running
  mkdir -p "$(node_dir)"
  echo "$TESTENV_DIR" > "$NODE_RUN/testenv-dir"
  local k
  for k in "${NODE_SYSCTLS[@]}"; do
    [[ -e /proc/sys/${k//.//} ]] && echo "$k=$(sysctl -n "$k")"
  done > "$NODE_RUN/sysctl.before"
  for k in "${NODE_HOST_PATHS[@]}"; do [[ -e $k ]] && echo "$k"; done > "$NODE_RUN/paths.before"
  # containerd puts each container's cgroup at /<namespace>/<id> in every hierarchy.
  for k in /sys/fs/cgroup/*/k8s.io; do [[ -d $k ]] && echo "$k"; done > "$NODE_RUN/cgroups.before"
  ip link add "$NODE_LINK" type veth peer name "$NODE_LINK_PEER" \
    || die "could not create the veth pair $NODE_LINK/$NODE_LINK_PEER for the node IP (needs root and veth support)"
  ip addr add "$NODE_IP/32" dev "$NODE_LINK"
  ip link set "$NODE_LINK_PEER" up
  ip link set "$NODE_LINK" up
  # Routing between the pods' bridge and the host (Service DNAT to a pod, replies from the
  # apiserver on the node IP) needs forwarding; bridged pod-to-pod traffic must traverse
  # iptables for kube-proxy and the NetworkPolicy rules.
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
  # Pods talk to the node and each other only: anything from the pod range that would be
  # forwarded out of another interface is dropped, so no pod reaches outside this host.
  iptables -N PARITY-NODE-EGRESS
  iptables -A PARITY-NODE-EGRESS -s "$CLUSTER_CIDR" ! -o "$CNI_BRIDGE" -j DROP
  iptables -I FORWARD 1 -j PARITY-NODE-EGRESS
}

# Certificates for the node's components, signed by the testenv CA (after up made it).
node_certs() {
  local PKI=$TESTENV_DIR/pki
  client_cert kubelet "system:node:$NODE_NAME" system:nodes
  client_cert kube-proxy system:kube-proxy
  client_cert kube-router system:kube-router
  # The apiserver's client identity towards kubelets (logs, exec, port-forward).
  client_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/kubelet-serving.key" \
    -out "$PKI/kubelet-serving.csr" -subj "/CN=system:node:$NODE_NAME"
  openssl_quiet x509 -req -in "$PKI/kubelet-serving.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -out "$PKI/kubelet-serving.crt" -days 2 \
    -extfile <(printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$NODE_IP" "$NODE_NAME")
  kubeconfig "$TESTENV_DIR/kubelet.kubeconfig" kubelet "$PKI/kubelet.crt" "$PKI/kubelet.key"
  kubeconfig "$TESTENV_DIR/kube-proxy.kubeconfig" kube-proxy "$PKI/kube-proxy.crt" "$PKI/kube-proxy.key"
  kubeconfig "$TESTENV_DIR/kube-router.kubeconfig" kube-router "$PKI/kube-router.crt" "$PKI/kube-router.key"
}

# After the control plane is up: containerd, images, kubelet, kube-proxy, kube-router, CoreDNS.
node_start() {
  local dir PKI=$TESTENV_DIR/pki
  dir=$(node_dir)
  mkdir -p "$dir/cni" "$dir/containerd" "$dir/kubelet" "$NODE_RUN/state"
  local sock=$NODE_RUN/containerd.sock

  # containerd (config version 3). restrict_oom_score_adj: we lack CAP_SYS_RESOURCE, so runc
  # must not lower a container's OOM score below containerd's. netns mounts, runc state and
  # shim sockets live under $NODE_RUN so `down` finds every one of them.
  cat > "$dir/containerd.toml" <<TOML
version = 3
# Nothing from the host's /etc/containerd: this containerd is the testenv's alone.
imports = []
root = "$dir/containerd"
state = "$NODE_RUN/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$NODE_RUN/s"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$NODE_RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$dir/cni"
    max_conf_num = 1
TOML
  # The pods' network: one bridge, host-local addresses from the node's /24, hostPorts.
  cat > "$dir/cni/10-parity.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "parity-node",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$NODE_RUN/cni-ipam",
              "ranges": [[{"subnet": "$POD_SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  launch containerd containerd --config "$dir/containerd.toml" --log-level warn
  local i
  for i in $(seq 1 100); do ctr --address "$sock" version >/dev/null 2>&1 && break; sleep 0.2; done
  ctr --address "$sock" version >/dev/null 2>&1 || die "containerd did not answer on $sock within 20s (see $TESTENV_DIR/logs/containerd.log)"
  log "containerd ready after $(elapsed)s; importing images"
  "$TESTENV_HERE/images" --import "$sock" $NODE_IMAGES >/dev/null \
    || die "building or importing the node's images failed (hack/testenv/images)"
  log "images imported after $(elapsed)s"

  # Pods get only the cluster's DNS: an empty host resolv.conf adds no outside nameserver.
  : > "$dir/resolv.conf"
  local KUBELET_PORT
  KUBELET_PORT=$(free_port)
  cat > "$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzPort: 0
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$sock
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $dir/resolv.conf
podLogsDir: $dir/pod-logs
# This host: cgroup v1 (hybrid), no systemd managing us, swap possible, no CAP_SYS_RESOURCE.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
oomScoreAdj: 0
protectKernelDefaults: false
# Never evict or garbage-collect the imported images because of the shared disk.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
YAML
  launch kubelet kubelet --config "$dir/kubelet.yaml" --kubeconfig "$TESTENV_DIR/kubelet.kubeconfig" \
    --root-dir "$dir/kubelet" --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" --v=1

  local PROXY_HEALTH PROXY_METRICS
  PROXY_HEALTH=$(free_port); PROXY_METRICS=$(free_port)
  cat > "$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $TESTENV_DIR/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:$PROXY_HEALTH
metricsBindAddress: 127.0.0.1:$PROXY_METRICS
# NodePorts answer on the node IP and on 127.0.0.1 (kube-proxy sets route_localnet for that).
nodePortAddresses: [$NODE_IP/32, 127.0.0.1/32]
iptables: {localhostNodePorts: true}
oomScoreAdj: 0
# Leave the conntrack sysctls as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  launch kube-proxy kube-proxy --config "$dir/kube-proxy.yaml" --v=1

  # kube-router: the NetworkPolicy firewall only (no routing, no service proxy), with read
  # access to what policies select on.
  kubectl apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: testenv:kube-router}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, endpoints, nodes]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: testenv:kube-router}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: testenv:kube-router}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: system:kube-router}]
YAML
  launch kube-router env NODE_NAME="$NODE_NAME" kube-router --kubeconfig "$TESTENV_DIR/kube-router.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --hostname-override "$NODE_NAME" --service-cluster-ip-range "$SERVICE_CIDR" \
    --enable-ipv4=true --enable-ipv6=false --health-port 0 --metrics-port 0 --v=1

  for _ in $(seq 1 600); do
    [[ $(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] && break
    sleep 0.2
  done
  [[ $(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] \
    || die "node $NODE_NAME did not become Ready in 120s (see $TESTENV_DIR/logs/kubelet.log)"
  log "node $NODE_NAME Ready after $(elapsed)s"
  node_coredns
}

# CoreDNS as a Deployment in kube-system behind the kube-dns Service at $DNS_IP. It listens on
# port 53 itself, as in kind and most clusters, because NetworkPolicies see the pod's port after
# the Service's DNAT: a policy allowing DNS egress on 53 (like the CI dashboard's) must work
# here as it does there. As uid 65532 it may bind 53 through the pod's own (namespaced, "safe")
# sysctl net.ipv4.ip_unprivileged_port_start, with no capability.
node_coredns() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: testenv:coredns}
rules:
- apiGroups: [""]
  resources: [services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: testenv:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: testenv:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "53"}]
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 53, protocol: TCP}
YAML
  kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null \
    || die "CoreDNS did not become ready in 120s (kubectl -n kube-system describe pod -l k8s-app=kube-dns)"
  log "CoreDNS ready at $DNS_IP after $(elapsed)s"
}

# --- stop (down) --------------------------------------------------------------------------

# Is a real node (or what is left of one) owned by this testenv?
node_present() {
  [[ -d $(node_dir) ]] || [[ $(cat "$NODE_RUN/testenv-dir" 2>/dev/null) == "$TESTENV_DIR" ]]
}

# While the apiserver still runs: stop the controllers that would recreate pods, then delete
# every pod so kubelet tears each down through the CRI (CNI DEL, netns, mounts).
node_drain() {
  local pids=$TESTENV_DIR/pids pid name kubelet
  [[ -f $TESTENV_DIR/kubeconfig && -f $pids ]] || return 0
  kubelet=$(awk '$2 == "kubelet" {print $1}' "$pids")
  # Without a live kubelet nobody would tear the pods down: node_cleanup does it by force.
  [[ -n $kubelet && -e /proc/$kubelet && $(awk '{print $3}' "/proc/$kubelet/stat" 2>/dev/null) != Z ]] || return 0
  while read -r pid name; do
    case $name in kube-controller-manager|kube-scheduler) kill -TERM "$pid" 2>/dev/null || true ;; esac
  done < "$pids"
  local kc=(kubectl --kubeconfig "$TESTENV_DIR/kubeconfig" --request-timeout 5s)
  "${kc[@]}" delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 || return 0
  local deadline=$((SECONDS + 30))
  until [[ -z $("${kc[@]}" get pods -A -o name 2>/dev/null) ]]; do
    if [[ $SECONDS -ge $deadline ]]; then
      log "some pods were not torn down by kubelet within 30s; removing them by force"
      return 0
    fi
    sleep 0.3
  done
}

# The PIDs of the shims of our containerd and of every process below them (the containers).
node_container_pids() {
  local sock=$NODE_RUN/containerd.sock p shims=()
  for p in /proc/[0-9]*; do
    [[ $( { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null) == *containerd-shim-runc-v2*"-address $sock"* ]] && shims+=("${p#/proc/}")
  done
  [[ ${#shims[@]} -gt 0 ]] || return 0
  # Walk the process tree (ppid) down from the shims.
  ps -e -o pid=,ppid= | awk -v roots="${shims[*]}" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      changed = 1
      while (changed) { changed = 0
        for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } } }
      for (p in keep) print p
    }'
}

# After the processes in the PID file are gone: whatever the node left behind.
node_cleanup() {
  local p dir
  dir=$(node_dir)
  # 1. Containers our containerd left: runc deletes each (kills its processes, removes its
  #    cgroups), then the shims and anything still below them go (containerd does not stop
  #    them when it exits).
  local runc_root=$NODE_RUN/runc/k8s.io id
  if [[ -d $runc_root ]]; then
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1 || log "warning: runc delete --force $id failed"
    done
  fi
  mapfile -t p < <(node_container_pids)
  if [[ ${#p[@]} -gt 0 ]]; then
    kill -KILL "${p[@]}" 2>/dev/null || true
    for _ in $(seq 1 50); do
      [[ -z $(node_container_pids) ]] && break
      sleep 0.1
    done
    [[ -z $(node_container_pids) ]] || log "warning: container processes still running: $(node_container_pids | tr '\n' ' ')"
  fi
  # Cgroups of containers that exited without runc deleting them, by the ids containerd knew.
  for id in "$dir"/containerd/io.containerd.grpc.v1.cri/{containers,sandboxes}/*; do
    [[ -e $id ]] || continue
    for p in /sys/fs/cgroup/*/k8s.io/"${id##*/}"; do
      [[ -d $p ]] && { rmdir "$p" 2>/dev/null || log "warning: could not remove cgroup $p"; }
    done
  done
  for p in /sys/fs/cgroup/*/k8s.io; do
    [[ -d $p ]] && ! grep -qxF "$p" "$NODE_RUN/cgroups.before" 2>/dev/null && { rmdir "$p" 2>/dev/null || log "warning: could not remove cgroup $p (not empty?)"; }
  done
  # 2. Mounts under our directories, deepest first (tmpfs volumes, overlay rootfs, netns, shm).
  local m
  mapfile -t m < <(awk '{print $5}' /proc/self/mountinfo | grep -E "^($NODE_RUN|$dir)(/|$)" | sort -r)
  for p in "${m[@]}"; do umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || log "warning: could not unmount $p"; done
  # 3. Links: the node IP's veth pair (its peer goes with it), the pods' bridge and any pod
  #    veth still attached to it.
  for p in $(ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$p" 2>/dev/null || true
  done
  for p in "$CNI_BRIDGE" "$NODE_LINK"; do
    ip link show "$p" >/dev/null 2>&1 && { ip link del "$p" || log "warning: could not delete link $p"; }
  done
  # 4. iptables (both families): delete the rules that jump into our chains, then flush and
  #    delete the chains, one atomic iptables-restore --noflush per family.
  local cmd
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    "$cmd-save" 2>/dev/null | awk -v re="$NODE_CHAIN_RE" '
      /^\*/ { table = $0; tables[++nt] = table; next }
      /^:/ { c = substr($1, 2); if (c ~ re) chains[table] = chains[table] " " c; next }
      /^-A / {
        if ($2 ~ re) next
        for (i = 3; i <= NF; i++) if (($i == "-j" || $i == "-g") && $(i + 1) ~ re) { sub(/^-A /, "-D "); dels[table] = dels[table] $0 "\n"; break }
      }
      END {
        for (t = 1; t <= nt; t++) {
          tb = tables[t]; if (dels[tb] == "" && chains[tb] == "") continue
          print tb; printf "%s", dels[tb]
          n = split(chains[tb], cs, " "); for (i = 1; i <= n; i++) print "-F " cs[i]
          for (i = 1; i <= n; i++) print "-X " cs[i]
          print "COMMIT"
        }
      }' > "$TESTENV_DIR/.$cmd-cleanup" || true
    if [[ -s $TESTENV_DIR/.$cmd-cleanup ]]; then
      "$cmd-restore" --noflush < "$TESTENV_DIR/.$cmd-cleanup" \
        || log "warning: removing the node's $cmd rules failed (input kept in $TESTENV_DIR/.$cmd-cleanup)"
    fi
  done
  # 5. ipsets (after the rules that referenced them are gone).
  if command -v ipset >/dev/null; then
    for p in $(ipset list -n 2>/dev/null | grep -E "$NODE_IPSET_RE"); do
      ipset destroy "$p" 2>/dev/null || log "warning: could not destroy ipset $p"
    done
  fi
  # 6. Sysctls back to what they were before up.
  if [[ -f $NODE_RUN/sysctl.before ]]; then
    while IFS= read -r p; do
      [[ $(sysctl -n "${p%%=*}" 2>/dev/null) == "${p#*=}" ]] || sysctl -qw "$p" 2>/dev/null || log "warning: could not restore $p"
    done < "$NODE_RUN/sysctl.before"
  fi
  # 7. Fixed host paths that appeared with the node (kubelet's log symlink directory...).
  if [[ -f $NODE_RUN/paths.before ]]; then
    for p in "${NODE_HOST_PATHS[@]}"; do
      [[ -e $p ]] && ! grep -qxF "$p" "$NODE_RUN/paths.before" && rm -rf "$p"
    done
  fi
  # 8. State: containerd's root and state, kubelet's root, IPAM, shim sockets, the lock.
  rm -rf "$dir" "$NODE_RUN" "$TESTENV_DIR"/.ip*tables-cleanup
}
