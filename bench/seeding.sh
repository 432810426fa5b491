#!/usr/bin/env bash
# Seeding throughput against the emulator's ceiling, in one run: raw SDK BatchWriteItem into
# moto server (the best of 1-32 batches in flight) and `parity bootstrap --seeds` of the same
# 10,000 items, alternating rounds on fresh servers; prints the medians and their ratio.
# Usage: bench/seeding.sh   (PARITY_BENCH_ROUNDS=3; CARGO_TARGET_DIR is honoured)
# The dev profile: moto's Python dominates, and both sides share the same build.
set -euo pipefail
cd "$(dirname "$0")/.."
PARITY_PYTHON_BIN="${PARITY_PYTHON_BIN:-$(hack/pyenv)}"
export PARITY_PYTHON_BIN
exec cargo bench --profile dev --bench seed -- ceiling
