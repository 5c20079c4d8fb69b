#!/usr/bin/env bash
# One GPU-machine session for the fused attention: the GPU attention tests (ANDROMEDA_REQUIRE_GPU=1), the
# benchmark against PyTorch SDPA (cuDNN, FlashAttention-2) in the same run, and an Nsight Compute look at the
# forward kernels. Logs go to $OUT.
#   bash bench/gpu-attention-session.sh [root]   (root: where dist/ and build/Release/ live; default .)
# ATTENTION_PROFILE=1 adds the Nsight Compute sections.
set -uo pipefail
root=${1:-.}
out=${OUT:-gpu-logs}; mkdir -p "$out"
if ! command -v node >/dev/null; then tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH; fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$out/env.txt"
ANDROMEDA_REQUIRE_GPU=1 timeout 200 node --test --test-reporter=spec "$root/dist/tests/gpu/attention.test.js" 2>&1 | tee "$out/tests.log" \
  | grep -E '^ +(tiled|decode|auto) |✔|✖|Error|error' | head -60
status=${PIPESTATUS[0]}
if [[ ${ATTENTION_PROFILE:-0} == 1 ]]; then
timeout 150 ncu --clock-control none --kernel-name regex:attention_forward --launch-count 2 \
  --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats \
  node "$root/dist/bench/gpu-attention.js" --forward-once > "$out/ncu.txt" 2>&1
timeout 100 ncu --clock-control none --kernel-name regex:'rotary|decode' --launch-skip 4 --launch-count 4 --section SpeedOfLight \
  node "$root/dist/bench/gpu-attention.js" --decode-once > "$out/ncu-decode.txt" 2>&1
grep -E 'attention_forward_kernel|rotary_table|decode|^ +(Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued)' "$out/ncu.txt" "$out/ncu-decode.txt" | cut -c1-170 | head -40
fi
timeout 240 node "$root/dist/bench/gpu-attention.js" 2>&1 | tee "$out/bench.md"
exit $status
