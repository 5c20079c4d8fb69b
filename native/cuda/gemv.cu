// Matrix products with a few rows (decode: one row per sequence) in bf16 / f16, where cuBLASLt's tensor-core
// tiles leave the GPU mostly idle: C[m, n] = alpha · A[m, k] · B[n, k]ᵀ (+ bias[n]), m ≤ kGemvMaxRows. Such a
// product only has to stream B (the layer's weight) once, so the kernel is built to keep the memory system busy: a
// warp reduces one row of B (or a slice of it) against every row of A, each lane reading 16 bytes of B per load with
// several loads in flight; the rows of A are small and come from L1. Unless B has rows enough to fill the GPU with
// warps (the vocabulary head), the warps of a block split k and add their sums in shared memory (how many ways:
// gemv_split in gemv_kernel.cuh). Per output element the order of additions depends only on n, k and the split,
// never on m, so a row's result does not change with the number of rows beside it.
#include <cstdint>

#include "common.cuh"
#include "engine.h"
#include "gemv_kernel.cuh"

namespace andromeda::cuda {
namespace {

using namespace gemv_kernels;

template <typename T, int kSplit>
void launch_split(const GemmArgs& g) {
  const T* a = reinterpret_cast<const T*>(g.a);
  const T* b = reinterpret_cast<const T*>(g.b);
  T* c = reinterpret_cast<T*>(g.c);
  const T* bias = reinterpret_cast<const T*>(g.bias);
  const unsigned blocks = unsigned(gemv_blocks(g.n, kSplit));
  const float alpha = float(g.alpha);
#define ANDROMEDA_GEMV_CASE(M)                                                                                 \
  case M:                                                                                                      \
    gemv_kernel<T, M, kSplit><<<blocks, kGemvThreads, 0, stream()>>>(a, g.lda, b, g.ldb, c, g.ldc, bias, alpha, \
                                                                     g.n, g.k);                                \
    break;
  switch (int(g.m)) {
    ANDROMEDA_GEMV_CASE(1)
    ANDROMEDA_GEMV_CASE(2)
    ANDROMEDA_GEMV_CASE(3)
    ANDROMEDA_GEMV_CASE(4)
    ANDROMEDA_GEMV_CASE(5)
    ANDROMEDA_GEMV_CASE(6)
    ANDROMEDA_GEMV_CASE(7)
    ANDROMEDA_GEMV_CASE(8)
  }
#undef ANDROMEDA_GEMV_CASE
  check_launch("matmul (few rows)");
}

template <typename T>
void launch(const GemmArgs& g) {
  switch (gemv_split(g.n, g.k, sm_count())) {
    case 1: launch_split<T, 1>(g); break;
    case 2: launch_split<T, 2>(g); break;
    case 4: launch_split<T, 4>(g); break;
    default: launch_split<T, kGemvWarps>(g);
  }
}

}  // namespace

bool gemv_applies(const GemmArgs& g) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return (g.dtype == int(DType::BF16) || g.dtype == int(DType::F16)) && !g.trans_a && g.trans_b && g.batch == 1 &&
         g.m >= 1 && g.m <= kGemvMaxRows && g.beta == 0 && g.k % kElementsPerLoad == 0 &&
         g.lda % kElementsPerLoad == 0 && g.ldb % kElementsPerLoad == 0 && aligned(g.a) && aligned(g.b) &&
         g.n < (int64_t(1) << 31);
}

void gemv(const GemmArgs& g) {
  if (g.dtype == int(DType::BF16)) launch<bf16>(g);
  else launch<f16>(g);
}

}  // namespace andromeda::cuda
