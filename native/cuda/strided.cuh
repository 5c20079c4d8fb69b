// Strided iteration for copy and broadcast binary kernels. The host first simplifies the layout
// (drops size-1 axes, merges axes that are contiguous with their inner neighbour in every operand),
// so most transposes and broadcasts reach the kernel as two or three axes.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace andromeda::cuda {

constexpr int kMaxRank = 8;

template <int N>
struct StridedLayout {
  int rank;
  int64_t shape[kMaxRank];
  int64_t strides[N][kMaxRank];
  // Division by shape[d] as a multiply-high and shift (valid for dividends below 2^31): integer
  // division has no hardware instruction and would dominate broadcast and transpose kernels.
  uint32_t div_mul[kMaxRank];
  uint32_t div_shift[kMaxRank];
};

inline void fast_divisor(uint64_t d, uint32_t& mul, uint32_t& shift) {
  if (d == 0 || d > (uint64_t(1) << 31)) { mul = 0; shift = 0; return; }  // only the 64-bit path is used then
  uint32_t s = 0;
  while (s < 32 && (uint64_t(1) << s) < d) s++;
  mul = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  shift = s;
}

/** Simplified layout of `rank`-d `shape` read by N operands through `strides[k]`. */
template <int N>
StridedLayout<N> simplify_layout(const int64_t* shape, int rank, const int64_t* const (&strides)[N]) {
  int64_t sh[64];
  int64_t st[N][64];
  if (rank > 64) throw std::invalid_argument("tensor rank above 64");
  int r = 0;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    sh[r] = shape[d];
    for (int k = 0; k < N; k++) st[k][r] = strides[k][d];
    r++;
  }
  // Merge from the innermost axis outward: axis d folds into d+1 when it steps exactly over it.
  int out = 0;
  int64_t msh[64];
  int64_t mst[N][64];
  for (int d = r - 1; d >= 0; d--) {
    if (out > 0) {
      bool mergeable = true;
      for (int k = 0; k < N; k++)
        if (st[k][d] != mst[k][out - 1] * msh[out - 1]) mergeable = false;
      if (mergeable) {
        msh[out - 1] *= sh[d];
        continue;
      }
    }
    msh[out] = sh[d];
    for (int k = 0; k < N; k++) mst[k][out] = st[k][d];
    out++;
  }
  if (out > kMaxRank) {
    throw std::invalid_argument("strided kernel: layout has " + std::to_string(out) +
                                " axes after merging (at most " + std::to_string(kMaxRank) + " supported)");
  }
  StridedLayout<N> layout{};
  layout.rank = out;
  for (int i = 0; i < out; i++) {  // back to outermost-first order
    layout.shape[i] = msh[out - 1 - i];
    for (int k = 0; k < N; k++) layout.strides[k][i] = mst[k][out - 1 - i];
    fast_divisor(uint64_t(layout.shape[i]), layout.div_mul[i], layout.div_shift[i]);
  }
  return layout;
}

template <int N>
bool is_dense(const StridedLayout<N>& l, int k) {
  return l.rank == 0 || (l.rank == 1 && l.strides[k][0] == 1);
}

/** Element offsets of linear index i (row-major over the layout's shape) for each operand. */
template <int N>
__device__ __forceinline__ void strided_offsets(const StridedLayout<N>& l, uint64_t i, int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = 0;
  for (int d = l.rank - 1; d > 0; d--) {
    const uint64_t extent = uint64_t(l.shape[d]);
    const uint64_t q = i / extent;
    const int64_t idx = int64_t(i - q * extent);
    i = q;
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += idx * l.strides[k][d];
  }
  if (l.rank > 0) {
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += int64_t(i) * l.strides[k][0];
  }
}

/** The same for indices below 2^31, with the precomputed fast divisions. */
template <int N>
__device__ __forceinline__ void strided_offsets(const StridedLayout<N>& l, uint32_t i, int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = 0;
  for (int d = l.rank - 1; d > 0; d--) {
    const uint32_t q = (__umulhi(i, l.div_mul[d]) + i) >> l.div_shift[d];
    const int64_t idx = int64_t(i - q * uint32_t(l.shape[d]));
    i = q;
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += idx * l.strides[k][d];
  }
  if (l.rank > 0) {
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += int64_t(i) * l.strides[k][0];
  }
}

}  // namespace andromeda::cuda
