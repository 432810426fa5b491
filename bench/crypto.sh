#!/usr/bin/env bash
# Envelope throughput (criterion, release) beside `openssl speed -evp aes-256-gcm` on the
# same machine in the same run, single core each; prints the ratio per size.
# Both AES-GCM backends are measured: the aes-gcm crate (default) and AWS-LC (--features aws-lc).
# Usage: bench/crypto.sh [aes-gcm|aws-lc ...]   (default: both; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== openssl $(openssl version | cut -d' ' -f2) speed -evp aes-256-gcm (1 core)" >&2
for bytes in 1024 16384 1048576; do
  openssl speed -mr -seconds 3 -bytes "$bytes" -evp aes-256-gcm 2>/dev/null \
    | awk -F: -v b="$bytes" '/^\+F:/ {print b, $4}' >>"$out/openssl"
done

backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(aes-gcm aws-lc)
for backend in "${backends[@]}"; do
  features=()
  [[ $backend == aws-lc ]] && features=(--features aws-lc)
  echo "== cargo bench --bench envelope ${features[*]}" >&2
  cargo bench "${features[@]}" --bench envelope -- --noplot --warm-up-time 1 --measurement-time 3 2>/dev/null | tee "$out/criterion-$backend" >&2
done

for backend in "${backends[@]}"; do
echo
echo "backend: $backend (envelope vs openssl speed -evp aes-256-gcm, 1 core each)"
python3 - "$out/openssl" "$out/criterion-$backend" <<'PY'
import re, sys
units = {"B/s": 1, "KiB/s": 1024, "MiB/s": 1024**2, "GiB/s": 1024**3}
openssl = {int(b): float(v) for b, v in (l.split() for l in open(sys.argv[1]))}
ours, current = {}, None
for line in open(sys.argv[2]):
    m = re.match(r"envelope/(encrypt|decrypt)/(\d+)", line.strip())
    if m:
        current = (m.group(1), int(m.group(2)))
    m = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+) ", line)
    if m and current:
        ours[current] = float(m.group(1)) * units[m.group(2)]
        current = None
print(f"{'size':>8} {'openssl MB/s':>13} {'encrypt MB/s':>13} {'ratio':>6} {'decrypt MB/s':>13} {'ratio':>6}")
for size in sorted(openssl):
    o = openssl[size]
    e, d = ours.get(("encrypt", size), 0), ours.get(("decrypt", size), 0)
    print(f"{size:>8} {o/1e6:>13.0f} {e/1e6:>13.0f} {e/o:>6.2f} {d/1e6:>13.0f} {d/o:>6.2f}")
PY
done
