#!/usr/bin/env bash
# The planner's GPU check (issue 18): ten configurations of andromeda-3b and orca, inference and training, with and
# without activation checkpointing and 8-bit AdamW, each in its own process; predicted vs measured allocator peak
# and tokens/s as a markdown table. About 3 minutes on an H100.
#   bash bench/gpu-plan.sh OUTDIR
set -uo pipefail
out=${1:?usage: gpu-plan.sh OUTDIR}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/device.txt"
configs=(
  "infer orca 1 2048 128"
  "infer orca 16 512 128"
  "infer andromeda-3b 1 2048 128"
  "infer andromeda-3b 8 4096 64"
  "train orca 8 2048 adamw"
  "train orca 8 2048 adamw checkpoint"
  "train orca 4 4096 adamw8bit"
  "train andromeda-3b 1 2048 adamw"
  "train andromeda-3b 2 2048 adamw checkpoint"
  "train andromeda-3b 1 4096 adamw8bit checkpoint"
)
: > "$out/results.jsonl"
for c in "${configs[@]}"; do
  echo "== $c"
  timeout 90 node dist/bench/gpu-plan.js $c > "$out/run.log.tmp" 2>&1
  cat "$out/run.log.tmp" >> "$out/runs.log"
  grep '^RESULT ' "$out/run.log.tmp" | sed 's/^RESULT //' | tee -a "$out/results.jsonl" | cut -c1-300
  grep -i 'error' "$out/run.log.tmp" | head -3
done
rm -f "$out/run.log.tmp"
node bench/plan-table.mjs "$out/results.jsonl" | tee "$out/table.md"
