// The last step of the column sums that bandwidth kernels accumulate per block (a norm's weight and bias
// gradients, a bias gradient, a per-head scale's gradient): out[j] = Σ_b partial[b · stride + j] over the
// blocks' partial rows, in a fixed order (deterministic, no atomics). Each block takes 32 columns; its 8 lanes
// of threads stride over the rows and lane 0 adds the 8 lane sums in order, so no column is one long serial
// chain of loads.
#pragma once
#include <stdexcept>
#include <string>

#include "common.cuh"

namespace andromeda::cuda {

constexpr int kPartialColumns = 32, kPartialLanes = 8;

template <typename T>
__global__ void sum_partial_rows_kernel(const compute_t<T>* partial, int64_t rows, int64_t stride, int64_t count, T* out) {
  using C = compute_t<T>;
  __shared__ C lanes[kPartialLanes][kPartialColumns + 1];
  const int64_t j = int64_t(blockIdx.x) * kPartialColumns + threadIdx.x;
  C s = 0;
  if (j < count)
    for (int64_t b = threadIdx.y; b < rows; b += kPartialLanes) s += partial[b * stride + j];
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || j >= count) return;
  for (int lane = 1; lane < kPartialLanes; lane++) s += lanes[lane][threadIdx.x];
  store(out + j, s);
}

/** out[0, count) ← the column sums of `rows` partial rows `stride` elements apart. */
template <typename T>
void sum_partial_rows(const compute_t<T>* partial, int64_t rows, int64_t stride, int64_t count, T* out, const char* what) {
  if (count == 0) return;
  const int64_t blocks = (count + kPartialColumns - 1) / kPartialColumns;
  if (blocks > 0x7fffffff) throw std::invalid_argument(std::string(what) + ": too many columns");
  sum_partial_rows_kernel<T><<<unsigned(blocks), dim3(kPartialColumns, kPartialLanes), 0, stream()>>>(partial, rows, stride, count, out);
  check_launch(what);
}

}  // namespace andromeda::cuda
