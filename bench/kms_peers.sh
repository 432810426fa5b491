#!/usr/bin/env bash
# `parity kms` beside its peers in one run: nsmithuk/local-kms (built from its Go module) and
# moto's KMS, under the same signed GenerateDataKey and Decrypt load from wrk at 1, 8 and 32
# connections (bench/kms_peers.py). Server on core 0, wrk on core 1. Also the floor: wrk
# against bench/floor_server.rs, the least any HTTP server can do here.
#   usage: bench/kms_peers.sh [--seconds N] [--connections 1,8,32] [--json FILE]
#                             [--servers 'parity kms,local-kms,moto'] [--perf-dir DIR]
# --perf-dir records `perf` stacks of parity kms into DIR as folded stacks (the input of any
# flame graph tool); build with symbols for names: CARGO_PROFILE_RELEASE_STRIP=false.
# Needs: go, cargo, python3, taskset, wrk (Debian's; installed with apt-get when root).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${PARITY_CACHE:-$HOME/.cache/parity-operator}
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6
missing=()
for t in go cargo python3 taskset; do command -v "$t" >/dev/null || missing+=("$t"); done
[[ ${#missing[@]} -eq 0 ]] || { echo "bench/kms_peers.sh: missing ${missing[*]}" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[bench] installing wrk (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "bench/kms_peers.sh: needs wrk (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)" >&2; exit 1
  fi
fi
lk_dir=$cache/tools/local-kms-$LOCAL_KMS_VERSION
if [[ ! -x $lk_dir/local-kms ]]; then
  echo "[bench] building local-kms $LOCAL_KMS_VERSION from its Go module" >&2
  GOTOOLCHAIN=local GOBIN=$lk_dir go install "github.com/nsmithuk/local-kms@$LOCAL_KMS_VERSION"
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
echo "[bench] cargo build --release --bin parity" >&2
cargo build --release --bin parity >&2
# The machine's floor (bench/floor_server.rs): std only, so plain rustc builds it in a second.
floor=$cache/tools/floor_server-$(sha256sum bench/floor_server.rs | cut -c1-12)
if [[ ! -x $floor ]]; then
  mkdir -p "$(dirname "$floor")"
  rustc -O --edition 2021 -o "$floor" bench/floor_server.rs
fi
py=$(hack/pyenv)
exec "$py/python" bench/kms_peers.py --parity "$CARGO_TARGET_DIR/release/parity" \
  --local-kms "$lk_dir/local-kms" --moto "$py/moto_server" --floor "$floor" "$@"
