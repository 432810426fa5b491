#!/usr/bin/env bash
# Time to Ready on the real node (hack/testenv/up --real-node), images warm:
#   1. one Local level-3 environment (engine Moto, seeds with an encrypted field, secrets-api,
#      decrypting dashboard): apply -> Ready, per condition, and per pod created -> started ->
#      ready, plus the bootstrap Job's run time;
#   2. ten CI level-2 environments applied at once: apply -> all Ready;
#   3. memory (RSS) of the node's components.
# Usage: bench/real_node.sh   (starts and stops its own testenv unless one is running)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/testenv/lib.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_ROOT/target}
PARITY=${PARITY_BIN:-$CARGO_TARGET_DIR/debug/parity}
[[ -x $PARITY ]] || cargo build --bin parity
ours=0
if [[ ! -f $TESTENV_DIR/pids ]]; then
  PARITY_BIN=$PARITY hack/testenv/up --real-node
  ours=1
fi
source "$TESTENV_DIR/env"
[[ ${PARITY_REAL_NODE:-0} == 1 ]] || die "the testenv at $TESTENV_DIR has no real node"
ns=bench-$RANDOM
op_pid=
cleanup() {
  [[ -n $op_pid ]] && kill "$op_pid" 2>/dev/null || true
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  [[ $ours == 1 ]] && hack/testenv/down >/dev/null 2>&1 || true
}
trap cleanup EXIT

kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/parityenvironments.parity.dev --timeout=30s >/dev/null
kubectl -n "$ns" create configmap app-secrets-schema --from-file=examples/secrets.schema.json >/dev/null
kubectl -n "$ns" create configmap app-seeds --from-file=examples/fixtures/ >/dev/null
"$PARITY" operator --watch-namespace "$ns" --image docker.io/library/parity-operator:dev \
  --image-pull-policy Never --metrics-addr "127.0.0.1:$(free_port)" > "$TESTENV_DIR/logs/bench-operator.log" 2>&1 &
op_pid=$!

now_ms() { date +%s%3N; }
# Seconds from $1 (ms) until every named environment is Ready.
wait_ready() { # start_ms name...
  local start=$1; shift
  for n in "$@"; do
    kubectl -n "$ns" wait --for=condition=Ready "penv/$n" --timeout=900s >/dev/null
  done
  local ms=$(( $(now_ms) - start ))
  printf '%d.%d\n' $((ms / 1000)) $((ms % 1000 / 100))
}

local_env() {
  cat <<YAML
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {name: dev}
spec:
  tier: Local
  parityLevel: 3
  topology: {tables: [{name: customers, partitionKey: {name: id, type: S}}, {name: orders, partitionKey: {name: pk, type: S}, sortKey: {name: sk, type: S}}]}
  dynamodb: {engine: Moto, seed: {configMapRef: {name: app-seeds}}}
  keys: {deletionPolicy: Delete}
  secrets: {provider: Local, schema: {name: app-secrets-schema, key: secrets.schema.json}}
  dashboard: {enabled: true, decryption: Server}
YAML
}

echo "== 1. one Local level-3 environment, apply -> Ready"
t0=$(now_ms)
local_env | kubectl -n "$ns" apply -f - >/dev/null
took=$(wait_ready "$t0" dev)
echo "apply -> Ready: ${took}s"
kubectl -n "$ns" get penv dev -o json | python3 -c '
import json, sys, datetime
e = json.load(sys.stdin)
created = datetime.datetime.fromisoformat(e["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
for c in e["status"]["conditions"]:
    if c["type"] in ("KeysReady", "SecretsReady", "DynamoDBReady", "DashboardReady", "Ready"):
        t = datetime.datetime.fromisoformat(c["lastTransitionTime"].replace("Z", "+00:00"))
        kind, secs = c["type"], (t - created).total_seconds()
        print(f"  {kind:15} at {secs:5.0f}s")
'
kubectl -n "$ns" get pods -o json | python3 -c '
import json, sys, datetime
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
for p in json.load(sys.stdin)["items"]:
    name = p["metadata"]["labels"].get("parity.dev/component", p["metadata"]["name"])
    created = ts(p["metadata"]["creationTimestamp"])
    started = [ts(c["state"].get("running", c["state"].get("terminated", {})).get("startedAt"))
               for c in p["status"].get("containerStatuses", [])
               if c["state"].get("running", c["state"].get("terminated", {})).get("startedAt")]
    ready = [ts(c["lastTransitionTime"]) for c in p["status"].get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"]
    s = f"{(max(started) - created).total_seconds():4.0f}s" if started else "   -"
    r = f"{(ready[0] - created).total_seconds():4.0f}s" if ready else "   -"
    print(f"  pod {name:12} created -> started {s}, -> ready {r}")
'
kubectl -n "$ns" get jobs -o json | python3 -c '
import json, sys, datetime
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
for j in json.load(sys.stdin)["items"]:
    s = j["status"]
    if s.get("completionTime"):
        secs = (ts(s["completionTime"]) - ts(s["startTime"])).total_seconds()
        print(f"  bootstrap Job ran {secs:.0f}s")
'

echo "== 2. ten CI level-2 environments at once, apply -> all Ready"
kubectl -n "$ns" delete penv dev --wait=true >/dev/null
names=()
for i in $(seq 1 10); do names+=("ci-$i"); done
t0=$(now_ms)
for i in $(seq 1 10); do
  cat <<YAML
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {name: ci-$i}
spec:
  tier: CI
  parityLevel: 2
  topology: {tables: [{name: orders, partitionKey: {name: pk, type: S}}]}
  dynamodb: {engine: Moto}
  keys: {deletionPolicy: Delete}
  dashboard: {enabled: true}
---
YAML
done | kubectl -n "$ns" apply -f - >/dev/null
took=$(wait_ready "$t0" "${names[@]}")
echo "10 CI environments: all Ready after ${took}s"

echo "== 3. memory of the node's components (RSS)"
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
while read -r pid name; do
  case $name in kubelet|containerd|kube-proxy|kube-router|coredns) echo "  $name: $(rss "$pid") MiB" ;; esac
done < "$TESTENV_DIR/pids"
shims=$(pgrep -f containerd-shim-runc-v2 || true)
total=0; n=0
for p in $shims; do total=$(( total + $(rss "$p") )); n=$((n + 1)); done
echo "  containerd-shim-runc-v2: $n shims, $total MiB together"
