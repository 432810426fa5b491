#!/usr/bin/env bash
# Dashboard benchmark (release): a 10,000-item table in moto, a release `parity dashboard`
# over it, then benches/dashboard.rs: page and API latency, WebSocket fan-out (100 clients,
# 1,000 changes/s for 30 s, p99 delivery latency and server RSS) and the end-to-end path
# through moto's Streams. Prints the dashboard process's RSS before and after.
# Usage: bench/dashboard.sh [http|fanout|e2e]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/parity-operator/target}
pybin=${PARITY_PYTHON_BIN:-$(hack/pyenv)}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }

echo "== cargo build --release --bin parity" >&2
cargo build --release --bin parity >&2
parity=$CARGO_TARGET_DIR/release/parity

moto_port=$(free_port)
"$pybin/moto_server" -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 &
pids+=($!)
ddb=http://127.0.0.1:$moto_port
for _ in $(seq 100); do curl -s -o /dev/null "$ddb" && break; sleep 0.1; done

cat >"$work/topology.yaml" <<'YAML'
tables:
  - name: bench
    partitionKey: { name: pk, type: S }
    sortKey: { name: sk, type: N }
    streamViewType: NEW_AND_OLD_IMAGES
YAML
mkdir "$work/seeds"
# 1,000 partitions of 10 items, ~200 bytes each.
python3 - "$work/seeds/bench.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for c in range(1000):
        for o in range(10):
            f.write(json.dumps({"pk": f"CUSTOMER#{c:04}", "sk": o, "status": "open",
                "total": f"{c % 97}.{o}9", "email": f"c{c}@example.com",
                "note": "lorem ipsum dolor sit amet " * 3}) + "\n")
PY
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
start=$(date +%s.%N)
"$parity" bootstrap --endpoint "$ddb" -f "$work/topology.yaml" --seeds "$work/seeds" >&2
echo "seeded 10,000 items in $(python3 -c "print(round($(date +%s.%N)-$start,1))")s" >&2

dash_port=$(free_port)
RUST_LOG=warn "$parity" dashboard --listen "127.0.0.1:$dash_port" --topology "$work/topology.yaml" \
  --dynamodb-endpoint "$ddb" --tier ci &
pids+=($!)
dash_pid=$!
url=http://127.0.0.1:$dash_port
for _ in $(seq 300); do curl -sf -o /dev/null "$url/readyz" && break; sleep 0.1; done
echo "dashboard RSS after start: $(rss "$dash_pid")"

PARITY_BENCH_URL=$url PARITY_BENCH_DYNAMODB=$ddb cargo bench --bench dashboard -- "$@"
echo "dashboard RSS after the HTTP and end-to-end runs: $(rss "$dash_pid")"
