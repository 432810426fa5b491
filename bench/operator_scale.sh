#!/usr/bin/env bash
# Scale benchmark of the operator on the testenv: N environments (default 1000) applied at
# once. Reports time until all are Ready, reconcile duration p50/p99 (from the operator's
# histogram: includes API latency; `cargo bench --bench reconcile` measures the pure part),
# operator RSS idle and at N, writes during one forced no-op resync of every environment, and
# where the time until Ready went (bench/scale_breakdown.py: CPU seconds per component, and
# each environment's path through the operator and the cluster).
# Needs a running testenv (make testenv-up). Usage: bench/operator_scale.sh [N]
# PARITY_BIN: the executable (default: the release parity-operator); it is run as
# `parity-operator ...`, or `parity operator ...` when its name is parity.
set -euo pipefail
N=${1:-1000}
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/hack/testenv/lib.sh"
source "$TESTENV_DIR/env"
PARITY=${PARITY_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/parity-operator/target}/release/parity-operator}
[[ -x $PARITY ]] || die "build it first: cargo build --release --bin parity-operator (or set PARITY_BIN)"
sub=()
[[ $(basename "$PARITY") == parity ]] && sub=(operator)
NS=bench-scale-$$
port=$(free_port)
work=$(mktemp -d)

cleanup() {
  [[ -n ${op_pid:-} ]] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  # With the operator gone nothing removes the keyring finalizers; the namespace would hang.
  kubectl get penv -n "$NS" -o name 2>/dev/null | xargs -r -n 200 kubectl patch -n "$NS" \
    --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# RSS, and of it the anonymous part (heap, stacks); the rest is clean pages of the executable.
rss_mib() {
  awk '/^Rss:/ {r=$2} /^Anonymous:/ {a=$2} END {printf "%.1f (anonymous %.1f)", r/1024, a/1024}' \
    "/proc/$1/smaps_rollup"
}
# CPU ticks (user + system) of each control-plane process and the operator, as `name ticks`.
cpu_ticks() {
  { cat "$TESTENV_DIR/pids"; echo "$op_pid operator"; } | while read -r pid name; do
    [[ -r /proc/$pid/stat ]] && awk -v n="$name" '{print n, $14 + $15}' "/proc/$pid/stat"
  done
}
metric_sum() { curl -fsS "127.0.0.1:$port/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {print s+0}'; }

kubectl create namespace "$NS" >/dev/null
kubectl apply --server-side --force-conflicts -f "$here/crds/" >/dev/null
"$PARITY" "${sub[@]}" --watch-namespace "$NS" --metrics-addr "127.0.0.1:$port" --image parity:bench \
  --concurrency 16 > "$work/operator.log" 2>&1 &
op_pid=$!
for _ in $(seq 1 100); do curl -fsS "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
# Ten quiet seconds after its caches sync the operator drops its code pages
# (src/controller/resident.rs): the idle figure is taken after that.
sleep 15
idle=$(rss_mib "$op_pid")

for i in $(seq 1 "$N"); do
  cat <<YAML
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {name: env-$i, namespace: $NS}
spec: {tier: Local, parityLevel: 0}
---
YAML
done > "$work/envs.yaml"

cpu_ticks > "$work/cpu.before"
start=$(date +%s%3N)
kubectl apply --server-side -f "$work/envs.yaml" >/dev/null
ready=0
while (( ready < N )); do
  sleep 2
  ready=$(kubectl get penv -n "$NS" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  printf '\r[bench] %d/%d Ready after %ds' "$ready" "$N" $(( ($(date +%s%3N) - start) / 1000 )) >&2
done
echo >&2
end=$(date +%s%3N)
elapsed_ms=$(( end - start ))
cpu_ticks > "$work/cpu.after"
kubectl get penv -n "$NS" -o json > "$work/envs.json"
kubectl get deployments,secrets,serviceaccounts,services,configmaps -n "$NS" \
  -l app.kubernetes.io/managed-by=parity-operator -o json > "$work/owned.json"
curl -fsS "127.0.0.1:$port/metrics" > "$work/metrics.txt"
sleep 5
at_n_busy=$(rss_mib "$op_pid")
# And again once the operator has been quiet for ten seconds (its code pages dropped).
sleep 12
at_n=$(rss_mib "$op_pid")

quantiles=$(curl -fsS "127.0.0.1:$port/metrics" | python3 -c '
import sys
b=[]
for l in sys.stdin:
    if l.startswith("parity_operator_reconcile_duration_seconds_bucket"):
        le=l.split("le=\"")[1].split("\"")[0]; b.append((float("inf") if le=="+Inf" else float(le), float(l.split()[-1])))
total=b[-1][1]
def q(p):
    for le,c in b:
        if c>=p*total: return le
print("count=%d p50<=%.3fs p99<=%.3fs" % (total, q(0.5), q(0.99)))')

writes_before=$(metric_sum parity_operator_writes_total)
kubectl annotate penv --all -n "$NS" bench.parity.dev/poke="$(date +%s)" --overwrite >/dev/null
sleep 20
writes_after=$(metric_sum parity_operator_writes_total)

cat <<REPORT
environments:                 $N
time until all Ready:         $(( elapsed_ms / 1000 )).$(( elapsed_ms % 1000 / 100 ))s
reconcile duration (with API): $quantiles
operator RSS idle:            ${idle} MiB
operator RSS at $N, 5 s after the last Ready: ${at_n_busy} MiB
operator RSS at $N, settled:  ${at_n} MiB
writes during no-op resync:   $(( ${writes_after%.*} - ${writes_before%.*} ))
REPORT
python3 "$here/bench/scale_breakdown.py" "$work/cpu.before" "$work/cpu.after" "$work/envs.json" \
  "$work/owned.json" "$work/metrics.txt" "$start" "$end"
