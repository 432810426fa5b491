# Shared by hack/testenv/{build,up,down,sa-kubeconfig}. Sourced, not run.
# shellcheck shell=bash

# Linux only: the testenv and its real node need Linux's namespaces, cgroups, iptables and
# /proc, and these scripts bash 4 (associative arrays, mapfile). Say so before anything else.
if [ "$(uname -s)" != Linux ]; then
  printf '[testenv] error: hack/testenv needs Linux (this host is %s): on a Mac, use a kind cluster instead (make kind-up, README.md)\n' "$(uname -s)" >&2
  exit 1
fi
if [ -z "${BASH_VERSINFO:-}" ] || [ "${BASH_VERSINFO[0]}" -lt 4 ]; then
  printf '[testenv] error: hack/testenv needs bash 4 or newer (this is %s)\n' "${BASH_VERSION:-not bash}" >&2
  exit 1
fi

TESTENV_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTENV_HERE/../.." && pwd)
# shellcheck source=versions.env
source "$TESTENV_HERE/versions.env"

CACHE_ROOT=${PARITY_CACHE:-$HOME/.cache/parity-operator}
# Where `up` keeps certificates, data, logs and PID files; `down` removes it.
TESTENV_DIR=${PARITY_TESTENV_DIR:-$REPO_ROOT/.testenv}
COMPONENTS=(etcd k8s kwok helm)
# Built only for the real node (build --real-node, up --real-node).
NODE_COMPONENTS=(node-k8s containerd coredns kube-router)
# Image names of the node's own images (hack/testenv/images); any name works for a pinned image.
PAUSE_IMAGE=localhost/parity-testenv/pause:1
COREDNS_IMAGE=localhost/parity-testenv/coredns:$COREDNS_VERSION

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] error: %s\n' "$*" >&2; exit 1; }

# The version a component is built at, for its cache key.
component_version() {
  case $1 in
    etcd) echo "$ETCD_VERSION" ;;
    k8s) echo "$K8S_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    node-k8s) echo "$K8S_VERSION" ;;
    containerd) echo "$CONTAINERD_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    kube-router) echo "$KUBE_ROUTER_VERSION" ;;
    *) die "unknown component $1" ;;
  esac
}

# Cache key: the version plus a hash of the module files and the Go version,
# so a change to any of them rebuilds that component and nothing else.
component_dir() {
  local comp=$1 hash
  hash=$( { go env GOVERSION; cat "$TESTENV_HERE/src/$comp"/go.mod "$TESTENV_HERE/src/$comp"/go.sum; \
            cat "$TESTENV_HERE/src/$comp"/*.go 2>/dev/null || true; } | sha256sum | cut -c1-12)
  echo "$CACHE_ROOT/testenv/$comp-$(component_version "$comp")-$hash"
}

# A directory of symlinks to every built binary; put it first on PATH.
bin_dir() { echo "$CACHE_ROOT/testenv/bin"; }

# A free TCP port on 127.0.0.1 (the kernel picks it; a race with another
# process taking it before we bind is possible but harmless: startup then fails loudly).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
