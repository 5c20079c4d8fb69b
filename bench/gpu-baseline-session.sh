#!/usr/bin/env bash
# One GPU call: GPU tests, then model-level figures with the x-transformers anchors re-measured in the
# same call (prefill with last-position and all-position logits, 3B training at 2,048 and 8,192).
# Logs go to $OUT (or ./gpu-logs).
set -uo pipefail
out=${OUT:-gpu-logs}; mkdir -p "$out"
if ! command -v node >/dev/null; then tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH; fi
mkdir -p build/Release && cp .device/release/*.node build/Release/
if [[ -z "${ANDROMEDA_CUBLASLT:-}" ]] && ! ldconfig -p | grep -q libcublasLt.so; then
  lib=$(find /usr /opt -name 'libcublasLt.so.1[23]' 2>/dev/null | head -1); [[ -n "$lib" ]] && export ANDROMEDA_CUBLASLT=$lib
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$out/env.txt"
for step in "$@"; do
  echo "=== $step" | tee -a "$out/session.log"
  case $step in
    tests) ANDROMEDA_REQUIRE_GPU=1 node --test dist/tests/gpu/*.test.js 2>&1 | tee "$out/tests.log" | grep -E '^# (pass|fail)|^not ok' ;;
    tests-failures) grep -A12 '^not ok' "$out/tests.log" | grep -E "^not ok|error:|Error" | head -40 ;;
    prefill) node dist/bench/gpu-prefill.js orca:32768,100000,200000 andromeda-3b:8192,32768 2>&1 | tee "$out/prefill.log" | grep -E 'RESULT|built|rror' ;;
    train) for c in "andromeda-3b 1 2048 12" "orca 4 8192 6"; do node dist/bench/gpu-train-step.js $c 2>&1 | tail -2; done | tee "$out/train.log" ;;
    train-documents) for c in "andromeda-3b 1 2048 8" "orca 4 8192 6"; do ANDROMEDA_BENCH_DOCUMENT_TOKENS=512 node dist/bench/gpu-train-step.js $c 2>&1 | tail -2; done | tee "$out/train-documents.log" ;;
    train-long) ANDROMEDA_BENCH_CHECKPOINT=1 node dist/bench/gpu-train-step.js andromeda-3b 1 8192 3 2>&1 | tail -2 | tee "$out/train-long.log" ;;
    train-ref) for c in "andromeda-3b 1 2048 5" "orca 4 8192 4"; do ANDROMEDA_BENCH_ATTENTION=reference node dist/bench/gpu-train-step.js $c 2>&1 | tail -2; done | tee "$out/train-ref.log" ;;
    profile) ANDROMEDA_CUDA_PROFILE=1 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 3 2>&1 | tail -32 | tee "$out/profile.log" ;;
    profile-events) ANDROMEDA_CUDA_PROFILE=events ANDROMEDA_CUDA_PROFILE_ROWS=80 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 3 2>&1 | tail -90 | tee "$out/profile-events.log" ;;
    profile-prefill) ANDROMEDA_CUDA_PROFILE=events ANDROMEDA_BENCH_LOGITS=last node dist/bench/gpu-prefill.js andromeda-3b:32768 2>&1 | tail -36 | tee "$out/profile-prefill.log" ;;
    optimizer) node dist/bench/gpu-optimizer.js 2>&1 | tee "$out/optimizer.log" | tail -12 ;;
    attention) node dist/bench/gpu-attention.js --transforms 2>&1 | tee "$out/attention-transforms.log" | tail -30; node dist/bench/gpu-reference-attention.js 2048 2>&1 | tee "$out/reference-attention.log" | tail -20 ;;
    hopper-tests) ANDROMEDA_REQUIRE_GPU=1 timeout 200 node --test dist/tests/gpu/attention-hopper.test.js 2>&1 | grep -E '^# (pass|fail)|^not ok' ;;
    prefill-last) ANDROMEDA_BENCH_LOGITS=last node dist/bench/gpu-prefill.js orca:32768,100000,200000 andromeda-3b:8192,32768 2>&1 | tee "$out/prefill.log" | grep -E 'RESULT|rror' ;;
    hopper-bwd-tests) ANDROMEDA_REQUIRE_GPU=1 timeout 200 node --test --test-reporter=spec dist/tests/gpu/attention-hopper-backward.test.js 2>&1 | tee "$out/hopper-bwd-tests.log" | grep -E '^ +hopper |✖|ℹ (pass|fail)' | head -40 ;;
    matmul) node dist/bench/gpu-matmul.js 2>&1 | tee "$out/matmul.md" | grep -E '8192 × 8192 × 8192|16384'; PYTHONUNBUFFERED=1 python3 bench/gpu-torch-ceiling.py 2>&1 | tee "$out/torch.md" | grep -E '8192|16384' ;;
    prefill-quick) node dist/bench/gpu-prefill.js orca:32768 andromeda-3b:8192 2>&1 | grep -E 'RESULT' ;;
    anchors) XT_DIR=.device/xt python3 bench/gpu-anchor-xt.py train:andromeda:2048x1 prefill:andromeda:8192 prefill:orca:8192 train:orca:8192x4 2>&1 | grep RESULT | tee "$out/anchors.log" ;;
    *) echo "unknown step $step" ;;
  esac
done 2>&1 | tee -a "$out/session.log"
