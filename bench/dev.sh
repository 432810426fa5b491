#!/usr/bin/env bash
# `parity dev` benchmark: examples/local.yaml (mirroring staging.yaml, parity level 3, with a
# seed fixture) as local processes.
#   warm  start to "ready" with the managed moto venv installed and the keys and secrets
#         already generated (three runs; target 10 s or less)
#   cold  the first run: a fresh managed venv (pip installs moto[server] from PyPI) and new
#         keys and secrets (skip with BENCH_COLD=0)
#   rss   resident memory of all children together once ready, and of parity dev itself
# Usage: bench/dev.sh   (PARITY_BIN picks the binary; default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/parity-operator/target}
if [[ -z ${PARITY_BIN:-} ]]; then
  echo "== cargo build --release --bin parity" >&2
  cargo build --release --bin parity >&2
  PARITY_BIN=$CARGO_TARGET_DIR/release/parity
fi
work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

mkdir -p "$work/app/fixtures"
echo '{"id": "42", "email": "c42@example.com", "card": "4111-1111-1111-1111"}' > "$work/app/fixtures/customers.jsonl"
printf 'encrypt: [card]\ncontext:\n  id: "{id}"\n' > "$work/app/fixtures/customers.fixture.yaml"
args=(-f "$PWD/examples/local.yaml" --mirror-source "$PWD/examples/staging.yaml" --seeds "$work/app/fixtures"
      --kms-port "$(free_port)" --dynamodb-port "$(free_port)" --secrets-port "$(free_port)" --dashboard-port "$(free_port)")

# start LABEL [env...]: runs parity dev until "ready", prints seconds, leaves it running in $pid.
start() {
  local label=$1; shift
  local log=$work/$label.log t0
  t0=$(date +%s.%N)
  (cd "$work/app" && exec env "$@" "$PARITY_BIN" dev "${args[@]}") >"$log" 2>&1 &
  pid=$!
  until grep -q "ready in" "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "parity dev exited" >&2; exit 1; fi
    sleep 0.05
  done
  echo "$label: ready after $(awk "BEGIN {printf \"%.2f\", $(date +%s.%N) - $t0}") s (parity dev says: $(grep -o 'ready in [0-9.]*s' "$log"))"
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
children_rss() {
  local total=0 p
  for p in $(python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(open(sys.argv[1]))["components"].values() if "pid" in c))' "$work/app/.parity/dev/state.json"); do
    total=$((total + $(kib "$p")))
  done
  echo "rss: children together $((total / 1024)) MiB; parity dev itself $(( $(kib "$pid") / 1024 )) MiB"
}

if [[ ${BENCH_COLD:-1} != 0 ]]; then
  start cold XDG_CACHE_HOME="$work/cache"
  stop
  rm -rf "$work/app/.parity"
fi
# Warm: the managed venv in the user's cache (installed now if missing, not timed).
start prepare >/dev/null
stop
for i in 1 2 3; do
  start "warm-$i"
  if [[ $i == 3 ]]; then sleep 2; children_rss; fi
  stop
done
