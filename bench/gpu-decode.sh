#!/usr/bin/env bash
# Issue 14's GPU decode bar in one call on one card: our InferenceEngine (bench/gpu-decode.ts: andromeda-3b bf16,
# batch-1 after 2k and 32k prompts, 64 at once; with and without CUDA graphs) and the Hugging Face Llama anchors of
# the same shape (bench/gpu-decode-anchor.py: eager, and static cache + torch.compile).
#   bash bench/gpu-decode.sh OUTDIR
set -uo pipefail
out=${1:?usage: gpu-decode.sh OUTDIR}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/device.txt"
node dist/bench/gpu-decode.js 2>&1 | tee "$out/ours.log" | grep -E 'RESULT|Error|error' | cut -c1-400
node dist/bench/gpu-decode.js single:2048 --no-graphs 2>&1 | tee "$out/ours-no-graphs.log" | grep -E 'RESULT|rror' | cut -c1-400
timeout 150 python3 bench/gpu-decode-anchor.py eager 2>&1 | grep -v -i warn | tee "$out/anchor-eager.log" | grep RESULT
timeout 300 python3 bench/gpu-decode-anchor.py compile > "$out/anchor-compile.log" 2>&1
grep RESULT "$out/anchor-compile.log"
