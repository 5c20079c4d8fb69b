// Matrix products with a few rows (decode: one row per sequence) in bf16 / f16, where cuBLASLt's tensor-core
// tiles leave the GPU mostly idle: C[m, n] = alpha · A[m, k] · B[n, k]ᵀ (+ bias[n]), m ≤ kGemvMaxRows. Such a
// product only has to stream B (the layer's weight) once, so the kernel is built to keep the memory system busy: a
// warp reduces one row of B (or a slice of it) against every row of A, each lane reading 16 bytes of B per load with
// several loads in flight; the rows of A are small and come from L1. Unless B has rows enough to fill the GPU with
// warps (the vocabulary head), the warps of a block split k and add their sums in shared memory (how many ways:
// gemv_split in gemv_kernel.cuh). Per output element the order of additions depends only on n, k and the split,
// never on m, so a row's result does not change with the number of rows beside it.
// Two inference entry points use the same kernel: gemm_shared_input (Engine.matmulSharedInput: up to three weights
// that share A — a decode step's query, key and value projections — in one launch, their rows numbered one after
// another) and gemm_bias_gelu (Engine.matmulBiasGelu: the bias and the exact GELU in the epilogue).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common.cuh"
#include "engine.h"
#include "gemv_kernel.cuh"

namespace andromeda::cuda {
namespace {

using namespace gemv_kernels;

template <typename T, int kSplit>
void launch_split(const T* a, int64_t lda, const GemvParts<T>& parts, float alpha, int64_t m, int64_t k) {
  const unsigned blocks = unsigned(gemv_blocks(parts.rows(), kSplit));
#define ANDROMEDA_GEMV_CASE(M)                                                                               \
  case M:                                                                                                    \
    gemv_kernel<T, M, kSplit><<<blocks, kGemvThreads, 0, stream()>>>(a, lda, parts, alpha, k);               \
    break;
  switch (int(m)) {
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
void launch(const T* a, int64_t lda, const GemvParts<T>& parts, float alpha, int64_t m, int64_t k) {
  switch (gemv_split(parts.rows(), k, sm_count())) {
    case 1: launch_split<T, 1>(a, lda, parts, alpha, m, k); break;
    case 2: launch_split<T, 2>(a, lda, parts, alpha, m, k); break;
    case 4: launch_split<T, 4>(a, lda, parts, alpha, m, k); break;
    default: launch_split<T, kGemvWarps>(a, lda, parts, alpha, m, k);
  }
}

template <typename T>
void launch_single(const GemmArgs& g, bool gelu) {
  auto parts = gemv_single(reinterpret_cast<const T*>(g.b), g.ldb, reinterpret_cast<T*>(g.c), g.ldc,
                           reinterpret_cast<const T*>(g.bias), g.n);
  parts.gelu = gelu;
  launch(reinterpret_cast<const T*>(g.a), g.lda, parts, float(g.alpha), g.m, g.k);
}

/** The products of `parts` (at most kGemvMaxParts, each C_p = A · B_pᵀ with contiguous rows) in one launch. */
template <typename T>
void launch_shared_input(const char* a, int64_t m, int64_t k, const SharedInputPart* parts, size_t count) {
  GemvParts<T> g{};
  int64_t rows = 0;
  for (size_t p = 0; p < count; p++) {
    g.b[p] = reinterpret_cast<const T*>(parts[p].b);
    g.c[p] = reinterpret_cast<T*>(parts[p].c);
    g.bias[p] = nullptr;
    g.ldb[p] = k;
    g.ldc[p] = parts[p].n;
    g.end[p] = rows += parts[p].n;
  }
  g.count = int(count);
  launch(reinterpret_cast<const T*>(a), k, g, 1.f, m, k);
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
  if (g.dtype == int(DType::BF16)) launch_single<bf16>(g, false);
  else launch_single<f16>(g, false);
}

void gemm_bias_gelu(int dtype, int64_t m, int64_t n, int64_t k, const char* a, const char* b, const char* bias,
                    char* out) {
  if (m == 0 || n == 0) return;
  GemmArgs g{andromeda::linear_product(dtype, m, n, k, a, b, out)};
  g.bias = bias;
  if (gemv_applies(g)) {  // a few rows: the bias and the GELU in the streaming product's epilogue
    if (dtype == int(DType::BF16)) launch_single<bf16>(g, true);
    else launch_single<f16>(g, true);
    return;
  }
  // Otherwise as linear then biasGelu: the product, then the bias and the GELU in place.
  g.bias = nullptr;
  gemm(g);
  bias_gelu(dtype, out, bias, out, m, n);
}

void gemm_shared_input(int dtype, int64_t m, int64_t k, const char* a, const SharedInputPart* parts, size_t count) {
  const auto fail = [](const std::string& why) { throw std::invalid_argument("matmulSharedInput: " + why); };
  for (size_t p = 0; p < count; p++) {
    if (parts[p].dtype != dtype || parts[p].m != m || parts[p].k != k)
      fail("part " + std::to_string(p) + " differs from A in dtype, m or k");
  }
  if (m == 0 || count == 0) return;
  if (k == 0) fail("k == 0 (the caller fills C instead)");
  // Few rows in bf16 / f16, as matmul would stream them: one launch for up to kGemvMaxParts products.
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  bool streamed = (dtype == int(DType::BF16) || dtype == int(DType::F16)) && m <= kGemvMaxRows &&
                  k % kElementsPerLoad == 0 && aligned(a);
  int64_t rows = 0;
  for (size_t p = 0; p < count; p++) {
    streamed = streamed && aligned(parts[p].b);
    rows += parts[p].n;
  }
  streamed = streamed && rows < (int64_t(1) << 31);
  for (size_t first = 0; first < count; first += kGemvMaxParts) {
    const size_t group = std::min<size_t>(kGemvMaxParts, count - first);
    if (streamed) {
      if (dtype == int(DType::BF16)) launch_shared_input<bf16>(a, m, k, parts + first, group);
      else launch_shared_input<f16>(a, m, k, parts + first, group);
      continue;
    }
    for (size_t p = first; p < first + group; p++) {
      if (parts[p].n == 0) continue;
      gemm(GemmArgs{andromeda::linear_product(dtype, m, parts[p].n, k, a, parts[p].b, parts[p].c)});
    }
  }
}

}  // namespace andromeda::cuda
