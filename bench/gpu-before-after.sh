#!/usr/bin/env bash
# The model-level GPU figures of two builds on the same card in the same call, alternating so that clock and
# thermal drift fall on both: the andromeda-3b training step (1 × 2,048), andromeda-3b prefill (8k, 32k) and orca
# prefill (32k, 100k), last-position logits. "before" is a tarball of another build's dist/src, dist/bench and
# build/Release (made on the development machine from an earlier commit); "after" is this checkout's dist and build.
#   bash bench/gpu-before-after.sh before.tar.xz [rounds]
# Prints one RESULT line per measurement, tagged before/after; logs go to $OUT (or ./gpu-logs).
set -uo pipefail
before_tar=$1
rounds=${2:-2}
out=${OUT:-gpu-logs}; mkdir -p "$out"
if ! command -v node >/dev/null; then tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH; fi
if [[ -z "${ANDROMEDA_CUBLASLT:-}" ]] && ! ldconfig -p | grep -q libcublasLt.so; then
  lib=$(find /usr /opt -name 'libcublasLt.so.1[23]' 2>/dev/null | head -1); [[ -n "$lib" ]] && export ANDROMEDA_CUBLASLT=$lib
fi
before=$(mktemp -d); tar xJf "$before_tar" -C "$before"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$out/env.txt"

measure() {  # $1 = tag, $2 = root holding dist/ and build/
  local tag=$1 root=$2
  node "$root/dist/bench/gpu-train-step.js" andromeda-3b 1 2048 12 2>&1 | tail -2 | sed "s/^/[$tag] /"
  ANDROMEDA_BENCH_LOGITS=last node "$root/dist/bench/gpu-prefill.js" andromeda-3b:8192,32768 orca:32768,100000 2>&1 |
    grep -E 'RESULT|rror' | sed "s/^/[$tag] /"
}

for ((r = 1; r <= rounds; r++)); do
  echo "=== round $r" | tee -a "$out/before-after.log"
  measure before "$before" 2>&1 | tee -a "$out/before-after.log"
  measure after . 2>&1 | tee -a "$out/before-after.log"
done
