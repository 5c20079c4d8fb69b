#!/usr/bin/env bash
# The Hopper attention forward on a GPU machine, one process per step so that a kernel that crashes the CUDA
# context cannot hide the others: the Hopper kernel's float64-reference tests, the dispatch tests, the existing
# attention tests (forward on the automatic choice, backward from its out/lse), then timings of each kernel, packed
# documents against one sequence (bench/gpu-attention-hopper-packed.ts) and PyTorch SDPA (cuDNN) at the same size.
# Logs go to $OUT (default gpu-logs).
#   bash bench/gpu-attention-hopper.sh [n]      (n: tokens for the timings, default 32768)
set -uo pipefail
n=${1:-32768}
source bench/gpu-steps.sh
step test-hopper env ANDROMEDA_REQUIRE_GPU=1 node --test --test-reporter=spec --test-name-pattern="^Hopper attention forward" dist/tests/gpu/attention-hopper.test.js
step test-dispatch env ANDROMEDA_REQUIRE_GPU=1 node --test --test-reporter=spec --test-name-pattern="automatic choice|named where it cannot run" dist/tests/gpu/attention-hopper.test.js
step test-attention env ANDROMEDA_REQUIRE_GPU=1 node --test --test-reporter=spec dist/tests/gpu/attention.test.js
for k in mma hopper; do
  echo "== bench $k"
  timeout 240 node dist/bench/gpu-attention-hopper.js "$n" --kernel "$k" 2>&1 | tee "$out/bench-$k.md" | grep '^|' | grep -v -- '---' | grep -v '^| kernel'
done
echo "== packed documents of 512 vs one sequence (forward and backward, automatic choice)"
timeout 240 node dist/bench/gpu-attention-hopper-packed.js 512 2>&1 | tee "$out/bench-packed.md" | grep '^|' | grep -v -- '---'
echo "== PyTorch SDPA (causal, $n tokens, 24×128 and 8×64)"
timeout 240 python3 bench/gpu-attention-sdpa.py "$n" 24 128 "$n" 8 64 2>&1 | tee "$out/sdpa.jsonl"
exit $status
