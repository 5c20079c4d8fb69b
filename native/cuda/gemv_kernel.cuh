// The few-row matrix product's kernel (C[m, n] = alpha · A[m, k] · B[n, k]ᵀ (+ bias[n]), m ≤ kGemvMaxRows) and the
// choice of its k split, apart from the engine's launch (gemv.cu) so that bench/cuda/gemv-splits.cu times the
// same kernel and the same choice. How it streams B: see gemv.cu's header. One launch may take several products
// that share A (GemvParts: a decode step's query, key and value projections): their B rows are numbered one after
// another, so the grid covers them as one B of the rows of all.
#pragma once
#include <cstdint>

#include "activation.cuh"
#include "common.cuh"

namespace andromeda::cuda::gemv_kernels {

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

constexpr int kGemvMaxParts = 3;

/**
 * The products of one launch: part p is C_p[m, n_p] = alpha · A · B_pᵀ (+ bias_p), and takes the launch's B rows
 * [end[p − 1], end[p]) (end[−1] = 0), so end[count − 1] is the launch's n.
 */
template <typename T>
struct GemvParts {
  const T* b[kGemvMaxParts];
  T* c[kGemvMaxParts];
  const T* bias[kGemvMaxParts];  // or null
  int64_t ldb[kGemvMaxParts], ldc[kGemvMaxParts];
  int64_t end[kGemvMaxParts];
  int count;
  bool gelu;  // C = gelu(alpha · A · Bᵀ + bias) (exact GELU, in float before the one rounding)

  int64_t rows() const { return end[count - 1]; }
};

/** One product as GemvParts. */
template <typename T>
GemvParts<T> gemv_single(const T* b, int64_t ldb, T* c, int64_t ldc, const T* bias, int64_t n) {
  GemvParts<T> parts{};
  parts.b[0] = b, parts.c[0] = c, parts.bias[0] = bias, parts.ldb[0] = ldb, parts.ldc[0] = ldc, parts.end[0] = n;
  parts.count = 1;
  return parts;
}

/**
 * Warp w of a block takes B row blockIdx.x · (kGemvWarps / kSplit) + w / kSplit (of the parts' rows, in order)
 * and the (w % kSplit)-th slice of k; kRowsA is m. Every lane walks its slice in 16-byte steps 512 bytes apart.
 */
template <typename T, int kRowsA, int kSplit>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const T* __restrict__ a, int64_t lda,
                                                            const __grid_constant__ GemvParts<T> parts, float alpha,
                                                            int64_t k) {
  constexpr int kRowsPerBlock = kGemvWarps / kSplit;
  __shared__ float partial[kSplit > 1 ? kGemvWarps : 1][kRowsA];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t launch_row = int64_t(blockIdx.x) * kRowsPerBlock + warp / kSplit;
  int part = 0;
  while (part + 1 < parts.count && launch_row >= parts.end[part]) part++;
  const int64_t row = launch_row - (part > 0 ? parts.end[part - 1] : 0);
  const int64_t n = parts.end[part] - (part > 0 ? parts.end[part - 1] : 0);
  const T* __restrict__ b = parts.b[part];
  const int64_t ldb = parts.ldb[part];
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
    // Rounds of up to kUnroll loads of B, all issued before any is used; the last round's loads past the slice are
    // left out, so a slice costs ⌈loads a lane / kUnroll⌉ round trips to memory (a tail taken a load at a time would
    // cost one per load: andromeda-3b's output product has 6 loads a lane, 2 rounds instead of 3). kUnroll 4 keeps
    // the kernel at 39 registers a thread; 8 takes 64 and runs the layer's small products slower
    // (bench/results/gpu-decode.md). Each lane adds its products in the order of l, as a plain loop would.
    for (int64_t l = first + lane; l < last; l += 32 * kUnroll) {
      uint4 raw[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; u++)
        if (l + 32 * u < last) raw[u] = __ldcs(brow + l + 32 * u);
#pragma unroll
      for (int u = 0; u < kUnroll; u++)
        if (l + 32 * u < last) accumulate<T, kRowsA>(raw[u], a, lda, l + 32 * u, acc);
    }
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
  T* __restrict__ c = parts.c[part];
  const int64_t ldc = parts.ldc[part];
  const float extra = parts.bias[part] ? load(parts.bias[part] + row) : 0.f;
#pragma unroll
  for (int i = 0; i < kRowsA; i++)
    if (lane == i) {
      const float v = fmaf(alpha, acc[i], extra);
      store(c + i * ldc + row, parts.gelu ? gelu(v) : v);
    }
}

/** Blocks of the grid for n rows of B split `split` ways. */
inline int64_t gemv_blocks(int64_t n, int split) { return (n * split + kGemvWarps - 1) / kGemvWarps; }

/** Fewest 16-byte loads of B per lane a split leaves: with fewer, a warp's work is one round trip to memory. */
constexpr int64_t kGemvMinLoadsPerLane = 4;

/**
 * The k split. Splitting k gives the grid more blocks (more loads in flight, a shorter last wave) but each warp
 * fewer loads, and a warp that issues one or two loads waits a whole memory round trip for a few hundred bytes.
 * So: among the splits that keep kGemvMinLoadsPerLane loads per lane (split 1 always qualifies), the fewest
 * that give two full waves of blocks (8 resident per multiprocessor at 256 threads), else the most.
 */
inline int gemv_split(int64_t n, int64_t k, int sm_count) {
  const int64_t wanted_blocks = 2 * 8 * int64_t(sm_count);
  const int64_t loads = k / kElementsPerLoad;
  int split = 1;
  while (split < kGemvWarps && gemv_blocks(n, split) < wanted_blocks &&
         loads / (2 * split) >= 32 * kGemvMinLoadsPerLane)
    split *= 2;
  return split;
}

}  // namespace andromeda::cuda::gemv_kernels
