#!/usr/bin/env bash
# Batch-1 greedy decode on the CPU, 2 threads, one run on one machine: our engine (`small` preset, float32) against
# llama.cpp (node-llama-cpp's prebuilt binaries) on Llama GGUF files of the same size with random weights (F32 and
# Q8_0, written by bench/gguf/write-llama-gguf.ts). Rounds alternate the three so drift hits all alike.
#   bash bench/cpu-decode-vs-llamacpp.sh [rounds] > bench/results/logs/cpu-decode/run.log
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
work=${LLAMACPP_DIR:-/tmp/andromeda-llamacpp}
mkdir -p "$work"
if [ ! -d "$work/node_modules/node-llama-cpp" ]; then
  (cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund node-llama-cpp@3.22.1 >/dev/null)
fi
cp bench/gguf/llamacpp-decode.mjs "$work/"
node dist/bench/gguf/write-llama-gguf.js "$work/small-f32.gguf" f32
node dist/bench/gguf/write-llama-gguf.js "$work/small-q8_0.gguf" q8_0
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) node $(node --version) node-llama-cpp 3.22.1"
for round in $(seq 1 "$rounds"); do
  echo "# round $round"
  ANDROMEDA_THREADS=2 taskset -c 0,1 node dist/bench/cpu-decode.js small 16 256
  (cd "$work" && taskset -c 0,1 node llamacpp-decode.mjs small-f32.gguf 2 16 256)
  (cd "$work" && taskset -c 0,1 node llamacpp-decode.mjs small-q8_0.gguf 2 16 256)
done
