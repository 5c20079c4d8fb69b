#!/usr/bin/env bash
# pagedAttention timings on a GPU machine (bench/gpu-paged-attention.ts), after `npm run build` and the CUDA engine's
# build (this script builds nothing): andromeda-3b attention at batch 1 with 2k / 32k / 100k keys and 64 sequences
# × 2k keys, beside the dense decode kernel. Output to stdout and $OUT/gpu-paged-attention.md (OUT default gpu-logs).
#   bash bench/gpu-paged-attention.sh [--reps N]
set -euo pipefail
out=${OUT:-gpu-logs}; mkdir -p "$out"
if ! command -v node >/dev/null; then tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH; fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$out/env.txt"
timeout 300 node dist/bench/gpu-paged-attention.js "$@" 2>&1 | tee "$out/gpu-paged-attention.md"
