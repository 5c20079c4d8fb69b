#!/usr/bin/env bash
# Greedy decoding on the CPU, 2 threads pinned to the same 2 cores, one machine: our engine (InferenceEngine, as
# `andromeda generate` drives it) against PyTorch + Hugging Face transformers (`generate`, its default dynamic
# cache, inference mode), both loading one Hugging Face folder: a SmolLM2-135M-shaped Llama with seeded random
# float32 weights, written once by transformers' save_pretrained (bench/cpu-decode-torch.py save). First both
# decode 16 greedy tokens for 8 prompts and the ids must agree; then the rounds alternate ours and theirs, batch 1
# and batch 8, 128-token prompts, 128 tokens after the first. The load average before each run is logged.
#   bash bench/cpu-decode-vs-torch.sh [rounds] [torch modes] > bench/results/logs/cpu-decode/torch.log
#   (torch modes: "eager" by default; "eager compile" adds the StaticCache + torch.compile path)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
modes=${2:-eager}
model=${CPU_DECODE_MODEL_DIR:-/tmp/andromeda-cpu-decode/smollm2-135m-random}
export ANDROMEDA_THREADS=2
pin="taskset -c 0,1"
load() { echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"; }

if [ ! -f "$model/model.safetensors" ]; then
  mkdir -p "$model"
  python3 bench/cpu-decode-torch.py save "$model"
fi
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) CPUs; node $(node --version);" \
  "python $(python3 -c 'import platform; print(platform.python_version())'); model $model"

echo "# same greedy tokens: 8 prompts x 16 steps"
theirs=$($pin python3 bench/cpu-decode-torch.py tokens "$model" 16 8 2>/dev/null | grep '^TOKENS' | tr -d ' ')
ours=$($pin node dist/bench/cpu-decode-hf.js tokens "$model" 16 8 | grep '^TOKENS' | tr -d ' ')
echo "$ours"
if [ "$ours" != "$theirs" ]; then
  echo "greedy tokens differ; PyTorch's:"
  echo "$theirs"
  exit 1
fi
echo "identical"

for round in $(seq 1 "$rounds"); do
  echo "# round $round"
  load
  $pin node dist/bench/cpu-decode-hf.js bench "$model" 1 8
  for mode in $modes; do
    load
    $pin python3 bench/cpu-decode-torch.py bench "$model" "$mode" 1 8 2>&1 | grep '^RESULT'
  done
done
