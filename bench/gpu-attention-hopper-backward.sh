#!/usr/bin/env bash
# The Hopper attention backward on a GPU machine, one process per step so that a kernel that crashes the CUDA
# context cannot hide the others: the Hopper kernel's float64-reference tests (dq, dk, dv; every case printed with
# its errors), the dispatch tests, the existing attention tests on the automatic choice (forward and backward),
# then per kernel its agreement with the mma.sync backward and its timings (plain and ALiBi causal 24×128 at n
# tokens, andromeda-3b's 2,048 × 24/1 × 128 plain and with all features, plain causal 8×64), and PyTorch SDPA's
# backward (cuDNN, FlashAttention-2) at the same sizes. Logs go to $OUT (default gpu-logs).
#   bash bench/gpu-attention-hopper-backward.sh [n]      (n: tokens for the timings, default 32768)
# Last, Nsight Compute on one Hopper backward (ATTENTION_PROFILE=0: none).
set -uo pipefail
n=${1:-32768}
STEP_LINES=70
source bench/gpu-steps.sh
step test-hopper env ANDROMEDA_REQUIRE_GPU=1 node --test --test-reporter=spec --test-name-pattern="^Hopper attention backward" dist/tests/gpu/attention-hopper-backward.test.js
step test-dispatch env ANDROMEDA_REQUIRE_GPU=1 node --test --test-reporter=spec --test-name-pattern="automatic choice|named where it cannot run" dist/tests/gpu/attention-hopper-backward.test.js
step test-attention env ANDROMEDA_REQUIRE_GPU=1 node --test --test-reporter=spec dist/tests/gpu/attention.test.js
for k in mma hopper; do
  echo "== bench $k"
  timeout 240 node dist/bench/gpu-attention-hopper-backward.js "$n" --kernel "$k" 2>&1 | tee "$out/bench-$k.md" | grep '^|' | grep -v -- '---' | grep -v '^| kernel'
done
echo "== PyTorch SDPA (causal; fwd_ms, bwd_ms): $n × 24×128, 2048 × 24×128, $n × 8×64"
timeout 240 python3 bench/gpu-attention-sdpa.py "$n" 24 128 2048 24 128 "$n" 8 64 2>&1 | tee "$out/sdpa.jsonl"
# Nsight Compute on one Hopper backward (plain causal 24×128, n/4 tokens); ATTENTION_PROFILE=0 skips it.
profile=${ATTENTION_PROFILE:-1}
if [[ $profile != 0 ]] && command -v ncu >/dev/null; then
  for k in hopper; do
    echo "== ncu $k ($((n / 4)) tokens)"
    timeout 200 ncu --clock-control none --kernel-name regex:attention_backward_hopper --launch-count 1 \
      --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis \
      --section MemoryWorkloadAnalysis node dist/bench/gpu-attention-hopper-backward.js $((n / 4)) --kernel "$k" --once > "$out/ncu-$k.txt" 2>&1
    grep -E '^ +(Duration|Compute \(SM\) Throughput|Memory Throughput|L2 Cache Throughput|DRAM Throughput|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Executed Ipc Active|Stall)' "$out/ncu-$k.txt" | cut -c1-150 | head -16
  done
fi
exit $status
