#!/usr/bin/env bash
# One GPU-machine session: environment facts, the GPU test suite (ANDROMEDA_REQUIRE_GPU=1), the
# matmul sweep and PyTorch's ceiling in the same run. Logs go to $OUT (or ./gpu-logs).
#   bash bench/gpu-session.sh [tests|bench|all] [extra test files...]
set -uo pipefail
out=${OUT:-gpu-logs}; mkdir -p "$out"
what=${1:-all}; shift || true
if ! command -v node >/dev/null; then tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH; fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if [[ -z "${ANDROMEDA_CUBLASLT:-}" ]] && ! ldconfig -p | grep -q libcublasLt.so; then
  lib=$(find /usr /opt -name 'libcublasLt.so.1[23]' 2>/dev/null | head -1)
  [[ -n "$lib" ]] && export ANDROMEDA_CUBLASLT=$lib
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/env.txt"
echo "ANDROMEDA_CUBLASLT=${ANDROMEDA_CUBLASLT:-<default search>}" | tee -a "$out/env.txt"
status=0
if [[ $what == tests || $what == all ]]; then
  files=("$@"); [[ ${#files[@]} -eq 0 ]] && files=(dist/tests/gpu/*.test.js)
  ANDROMEDA_REQUIRE_GPU=1 node --test --test-reporter=spec "${files[@]}" 2>&1 | tee "$out/tests.log" | grep -v '^ *at ' | tail -120
  status=${PIPESTATUS[0]}
fi
if [[ $what == bench || $what == all ]]; then
  node dist/bench/gpu-matmul.js 2>&1 | tee "$out/matmul.md"
  PYTHONUNBUFFERED=1 python3 bench/gpu-torch-ceiling.py 2>&1 | tee "$out/torch.md"
fi
exit $status
