// Matrix products with a few rows (decode: one row per sequence) in bf16 / f16, where cuBLASLt's tensor-core
// tiles leave the GPU mostly idle: C[m, n] = alpha · A[m, k] · B[n, k]ᵀ (+ bias[n]), m ≤ kGemvMaxRows. Such a
// product only has to stream B (the layer's weight) once, so the kernel is built to keep the memory system busy: a
// warp reduces one row of B (or a slice of it) against every row of A, each lane reading 16 bytes of B per load with
// several loads in flight; the rows of A are small and come from L1. Unless B has rows enough to fill the GPU with
// warps (the vocabulary head), the warps of a block split k and add their sums in shared memory. Per output element
// the order of additions depends only on k and the split, never on m, so a row's result does not change with the
// number of rows beside it.
#include <cstdint>

#include "common.cuh"
#include "engine.h"

namespace andromeda::cuda {
namespace {

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kGemvMaxRows = 8;
constexpr int kElementsPerLoad = 8;  // 16 bytes of bf16 / f16
constexpr int kUnroll = 4;           // loads in flight per lane

template <typename T>
__device__ __forceinline__ void to_float8(const uint4& raw, float* out) {
  const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; j++) out[j] = load(h + j);
}

/** acc[i] += the 8 products of B's 16 bytes `raw` (load l of the row) with the same 8 elements of A's row i. */
template <typename T, int kRowsA>
__device__ __forceinline__ void accumulate(const uint4& raw, const T* a, int64_t lda, int64_t l, float* acc) {
  float w[8];
  to_float8<T>(raw, w);
#pragma unroll
  for (int i = 0; i < kRowsA; i++) {
    float x[8];
    to_float8<T>(__ldg(reinterpret_cast<const uint4*>(a + i * lda) + l), x);
#pragma unroll
    for (int j = 0; j < 8; j++) acc[i] = fmaf(w[j], x[j], acc[i]);
  }
}

/**
 * Warp w of a block takes B row blockIdx.x · (kGemvWarps / kSplit) + w / kSplit and the (w % kSplit)-th slice of
 * k; kRowsA is m. Every lane walks its slice in 16-byte steps 512 bytes apart.
 */
template <typename T, int kRowsA, int kSplit>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const T* __restrict__ a, int64_t lda, const T* __restrict__ b,
                                                            int64_t ldb, T* __restrict__ c, int64_t ldc,
                                                            const T* __restrict__ bias, float alpha, int64_t n,
                                                            int64_t k) {
  constexpr int kRowsPerBlock = kGemvWarps / kSplit;
  __shared__ float partial[kSplit > 1 ? kGemvWarps : 1][kRowsA];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + warp / kSplit;
  const int slice = warp % kSplit;
  // The slice of k in whole 16-byte loads: loads [first, last) of the row's k / 8.
  const int64_t loads = k / kElementsPerLoad;
  const int64_t per_slice = (loads + kSplit - 1) / kSplit;
  const int64_t first = slice * per_slice, last = min(loads, first + per_slice);

  float acc[kRowsA];
#pragma unroll
  for (int i = 0; i < kRowsA; i++) acc[i] = 0.f;
  if (row < n) {
    const uint4* brow = reinterpret_cast<const uint4*>(b + row * ldb);
    int64_t l = first + lane;
    // Main loop: kUnroll loads of B issued before any is used.
    for (; l + 32 * (kUnroll - 1) < last; l += 32 * kUnroll) {
      uint4 raw[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; u++) raw[u] = __ldcs(brow + l + 32 * u);
#pragma unroll
      for (int u = 0; u < kUnroll; u++) accumulate<T, kRowsA>(raw[u], a, lda, l + 32 * u, acc);
    }
    for (; l < last; l += 32) accumulate<T, kRowsA>(__ldcs(brow + l), a, lda, l, acc);
  }
#pragma unroll
  for (int i = 0; i < kRowsA; i++)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);

  if constexpr (kSplit > 1) {
    if (lane == 0)
#pragma unroll
      for (int i = 0; i < kRowsA; i++) partial[warp][i] = acc[i];
    __syncthreads();
    if (slice != 0) return;
#pragma unroll
    for (int i = 0; i < kRowsA; i++) {
      float sum = 0.f;
#pragma unroll
      for (int s = 0; s < kSplit; s++) sum += partial[warp + s][i];  // slices in order: a fixed sum
      acc[i] = sum;
    }
  }
  if (row >= n) return;
  // Lane i writes row i of C (kRowsA ≤ 32).
  const float extra = bias ? load(bias + row) : 0.f;
#pragma unroll
  for (int i = 0; i < kRowsA; i++)
    if (lane == i) store(c + i * ldc + row, fmaf(alpha, acc[i], extra));
}

template <typename T, int kSplit>
void launch_split(const GemmArgs& g) {
  const T* a = reinterpret_cast<const T*>(g.a);
  const T* b = reinterpret_cast<const T*>(g.b);
  T* c = reinterpret_cast<T*>(g.c);
  const T* bias = reinterpret_cast<const T*>(g.bias);
  const unsigned blocks = unsigned((g.n + kGemvWarps / kSplit - 1) / (kGemvWarps / kSplit));
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

/**
 * The k split: the fewest slices per B row that still give the grid two full waves of blocks (8 resident per
 * multiprocessor at 256 threads), so that enough 16-byte loads are in flight on every multiprocessor and the
 * last wave's tail is short; at most a slice per warp of the block.
 */
template <typename T>
void launch(const GemmArgs& g) {
  const int64_t wanted_blocks = 2 * 8 * int64_t(sm_count());
  const auto blocks = [&](int split) { return (g.n * split + kGemvWarps - 1) / kGemvWarps; };
  if (blocks(1) >= wanted_blocks) launch_split<T, 1>(g);
  else if (blocks(2) >= wanted_blocks) launch_split<T, 2>(g);
  else if (blocks(4) >= wanted_blocks) launch_split<T, 4>(g);
  else launch_split<T, kGemvWarps>(g);
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
