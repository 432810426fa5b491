#!/usr/bin/env bash
# One ephemeral parity environment per pull request, in its own namespace.
#
#   examples/ci/pr-environment.sh up     PR   # operator (helm, if missing), namespace, ConfigMaps, apply, wait Ready
#   examples/ci/pr-environment.sh env    PR   # the app's variables: into $GITHUB_ENV, else `export` lines
#   examples/ci/pr-environment.sh status PR   # `parity status` of the environment (for a failed run)
#   examples/ci/pr-environment.sh down   PR   # delete the environment and wait, then the namespace
#
# PR is a pull request number or any name; the namespace is $PARITY_NAMESPACE_PREFIX + PR.
# Runs with macOS's bash 3.2 and BSD tools as well as on Linux; needs kubectl, helm (for up),
# and parity (for env and status; $PARITY). See docs/ci.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Every setting, with its default; override any from the environment.
PARITY=${PARITY:-parity}                                     # the parity binary (or a path to it)
PARITY_IMAGE=${PARITY_IMAGE:-parity-operator:dev}            # the operator image, when up installs the chart
PARITY_IMAGE_PULL_POLICY=${PARITY_IMAGE_PULL_POLICY:-IfNotPresent}
PARITY_CHART=${PARITY_CHART:-$ROOT/charts/parity-operator}   # a directory or an oci:// reference
PARITY_RELEASE=${PARITY_RELEASE:-parity}
PARITY_RELEASE_NAMESPACE=${PARITY_RELEASE_NAMESPACE:-parity-system}
PARITY_HELM_ARGS=${PARITY_HELM_ARGS:-}                       # extra `helm install` arguments (word-split)
PARITY_NAMESPACE_PREFIX=${PARITY_NAMESPACE_PREFIX:-pr-}
PARITY_MANIFEST=${PARITY_MANIFEST:-$ROOT/examples/ci.yaml}
PARITY_ENV=${PARITY_ENV:-ci}                                 # the environment's name in the manifest
PARITY_TOPOLOGY=${PARITY_TOPOLOGY:-$ROOT/examples/topology.yaml}
PARITY_SCHEMA=${PARITY_SCHEMA:-$ROOT/examples/secrets.schema.json}
PARITY_SEEDS=${PARITY_SEEDS:-$ROOT/examples/fixtures}
PARITY_WAIT=${PARITY_WAIT:-300s}
# port-forward: local ports forwarded to the environment's Services, so tests on the CI host
# reach them (a CI tier has no NodePorts). cluster: the in-cluster URLs, for tests run in a pod.
PARITY_CONNECT=${PARITY_CONNECT:-port-forward}

log() { printf '[pr-environment] %s\n' "$*" >&2; }
die() { printf '[pr-environment] error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found (not on PATH, not a file): $2"
}

[ $# -ge 1 ] || usage
phase=$1
case $phase in
  up | env | status | down) ;;
  -h | --help | help) usage ;;
  *) printf '[pr-environment] error: unknown phase %s\n' "$phase" >&2; usage ;;
esac
[ $# -eq 2 ] || die "$phase needs one argument, the pull request number or a name (e.g. $0 $phase 1234)"

# A DNS-1123 label: lower case, [a-z0-9-], at most 63 characters, no leading/trailing dash.
ns=$(printf '%s%s' "$PARITY_NAMESPACE_PREFIX" "$2" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9-' '-' | cut -c1-63)
ns=$(printf '%s\n' "$ns" | sed -e 's/^-*//' -e 's/-*$//')
[ -n "$ns" ] || die "no namespace name can be made from '$2'"
STATE=${PARITY_STATE_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}}/parity-$ns
env_ref="penv/$PARITY_ENV"

need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"

parity_status() {
  if command -v "$PARITY" >/dev/null 2>&1; then
    "$PARITY" status "$PARITY_ENV" -n "$ns" || true
  else
    log "$PARITY not found (set PARITY): showing the environment with kubectl instead"
    kubectl -n "$ns" get "$env_ref" -o yaml || true
  fi
}

install_operator() {
  if helm status "$PARITY_RELEASE" -n "$PARITY_RELEASE_NAMESPACE" >/dev/null 2>&1; then
    log "operator: helm release $PARITY_RELEASE in $PARITY_RELEASE_NAMESPACE is installed"
    return
  fi
  local repo=$PARITY_IMAGE tag=latest
  # A tag is a ':' after the last '/' (a registry may have a port: host:5000/parity-operator).
  case ${PARITY_IMAGE##*/} in
    *:*) repo=${PARITY_IMAGE%:*} tag=${PARITY_IMAGE##*:} ;;
  esac
  log "operator: helm install $PARITY_RELEASE ($repo:$tag) in $PARITY_RELEASE_NAMESPACE"
  # shellcheck disable=SC2086 # PARITY_HELM_ARGS is a list of arguments
  helm install "$PARITY_RELEASE" "$PARITY_CHART" --namespace "$PARITY_RELEASE_NAMESPACE" --create-namespace \
    --set "image.repository=$repo" --set "image.tag=$tag" --set "image.pullPolicy=$PARITY_IMAGE_PULL_POLICY" \
    --wait --timeout "$PARITY_WAIT" $PARITY_HELM_ARGS >/dev/null
}

# kubectl apply of a ConfigMap made from files, so a rerun updates it.
config_map() {
  local name=$1
  shift
  kubectl create configmap "$name" -n "$ns" "$@" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

up() {
  need helm "install helm (https://helm.sh/docs/intro/install/)"
  local f
  for f in "$PARITY_MANIFEST" "$PARITY_TOPOLOGY" "$PARITY_SCHEMA"; do
    [ -f "$f" ] || die "$f not found (set PARITY_MANIFEST, PARITY_TOPOLOGY or PARITY_SCHEMA)"
  done
  [ -d "$PARITY_SEEDS" ] || die "$PARITY_SEEDS is not a directory (set PARITY_SEEDS)"
  install_operator
  log "namespace $ns"
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  # Lets a janitor find namespaces a cancelled run left: kubectl get ns -l parity.dev/pr-environment
  kubectl label namespace "$ns" parity.dev/pr-environment=true --overwrite >/dev/null
  config_map app-topology --from-file="topology.yaml=$PARITY_TOPOLOGY"
  config_map app-secrets-schema --from-file="secrets.schema.json=$PARITY_SCHEMA"
  config_map app-seeds --from-file="$PARITY_SEEDS/"
  kubectl apply -n "$ns" -f "$PARITY_MANIFEST" >/dev/null
  log "waiting up to $PARITY_WAIT for $env_ref in $ns to be Ready"
  if ! kubectl wait -n "$ns" --for=condition=Ready "$env_ref" --timeout="$PARITY_WAIT" >/dev/null; then
    log "$env_ref is not Ready:"
    parity_status >&2
    exit 1
  fi
  log "$env_ref in $ns is Ready"
}

stop_forwards() {
  local pid
  [ -f "$STATE/pids" ] || return 0
  # Only the kubectl port-forward processes this script started (their PIDs were recorded).
  while read -r pid; do
    kill "$pid" 2>/dev/null || true
  done <"$STATE/pids"
  rm -f "$STATE/pids" "$STATE"/pf-*.log
}

# Starts `kubectl port-forward` to a Service and sets $forwarded to the local port it bound.
forward() {
  local svc=$1 port=$2 logf="$STATE/pf-$1.log" i pid
  # All three streams redirected: a caller reading our output ($(...), a CI step) does not
  # wait for the forward to end.
  kubectl port-forward -n "$ns" --address 127.0.0.1 "svc/$svc" ":$port" >"$logf" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >>"$STATE/pids"
  forwarded=
  i=0
  while [ $i -lt 150 ]; do
    forwarded=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$logf" | head -n 1)
    [ -z "$forwarded" ] || return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
    i=$((i + 1))
  done
  die "kubectl port-forward to svc/$svc:$port in $ns did not start: $(cat "$logf")"
}

# Writes one variable: GitHub's multi-line syntax into $GITHUB_ENV, else a shell export line.
emit() {
  local name=$1 value=$2 line
  if [ -n "${GITHUB_ENV:-}" ]; then
    case $name in
      AWS_ENDPOINT_URL_* | INFISICAL_SITE_URL | PARITY_DASHBOARD_URL | AWS_REGION | AWS_DEFAULT_REGION | PARITY_KMS_KEY_ID) ;;
      *) # Credentials and generated secrets: masked in the job's log, line by line.
        if [ "${GITHUB_ACTIONS:-}" = true ]; then
          printf '%s\n' "$value" | while IFS= read -r line; do
            [ -z "$line" ] || printf '::add-mask::%s\n' "$line"
          done
        fi ;;
    esac
    printf '%s<<PARITY_EOF_%s\n%s\nPARITY_EOF_%s\n' "$name" "$$" "$value" "$$" >>"$GITHUB_ENV"
  else
    printf "export %s='%s'\n" "$name" "$(printf '%s' "$value" | sed "s/'/'\\\\''/g")"
  fi
}

connection_env() {
  need "$PARITY" "parity is needed for env (set PARITY to its path; the image holds it at /usr/local/bin/parity)"
  local vars names name n value url svc svcns port old new
  vars=$("$PARITY" env "$PARITY_ENV" -n "$ns" -o shell) || die "parity env $PARITY_ENV -n $ns failed"
  names=$(printf '%s\n' "$vars" | sed -n 's/^export \([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p')
  eval "$vars"
  if [ "$PARITY_CONNECT" = port-forward ]; then
    stop_forwards
    mkdir -p "$STATE"
    local pattern='^http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?:([0-9]+)'
    for name in AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_KMS INFISICAL_SITE_URL PARITY_DASHBOARD_URL; do
      url=${!name:-}
      [[ $url =~ $pattern ]] || continue
      svc=${BASH_REMATCH[1]} svcns=${BASH_REMATCH[2]} port=${BASH_REMATCH[4]}
      [ "$svcns" = "$ns" ] || continue
      old=${BASH_REMATCH[0]}
      forward "$svc" "$port"
      new="http://127.0.0.1:$forwarded"
      log "svc/$svc:$port -> $new"
      # Every variable: URLs also appear inside generated secrets (endpointUrl).
      for n in $names; do
        value=${!n}
        # No glob characters in a Service URL: $old matches literally.
        printf -v "$n" '%s' "${value//$old/$new}"
      done
    done
  elif [ "$PARITY_CONNECT" != cluster ]; then
    die "PARITY_CONNECT must be port-forward or cluster, not '$PARITY_CONNECT'"
  fi
  for name in $names; do
    emit "$name" "${!name}"
  done
  if [ -n "${GITHUB_ENV:-}" ]; then
    log "wrote $(printf '%s\n' "$names" | grep -c .) variables to \$GITHUB_ENV"
  fi
}

down() {
  stop_forwards
  rmdir "$STATE" 2>/dev/null || true
  if ! kubectl get namespace "$ns" >/dev/null 2>&1; then
    log "namespace $ns does not exist: nothing to clean up"
    return
  fi
  # The environments first, while the operator runs: their finalizer settles the keyring.
  # Deleting the namespace alone would race the operator's finalizer against the namespace's
  # own cleanup of the Secrets.
  log "deleting the environments in $ns and waiting"
  if kubectl api-resources --api-group=parity.dev -o name 2>/dev/null | grep -q parityenvironments; then
    kubectl delete penv --all -n "$ns" --wait=true --timeout="$PARITY_WAIT" >/dev/null ||
      die "the environments in $ns were not deleted within $PARITY_WAIT (is the operator running? docs/uninstall.md)"
  fi
  log "deleting namespace $ns"
  kubectl delete namespace "$ns" --wait=true --timeout="$PARITY_WAIT" >/dev/null ||
    die "namespace $ns was not deleted within $PARITY_WAIT: kubectl get namespace $ns -o yaml"
}

case $phase in
  up) up ;;
  env) connection_env ;;
  status) parity_status ;;
  down) down ;;
esac
