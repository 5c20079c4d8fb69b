// Reductions over the middle axis of [outer, size, inner] (the float64 sum of squares of clipping is in
// sum_squares.cu). Half and float32 inputs accumulate in float, float64 and int32 in double.
#include <algorithm>
#include <string>
#include <vector>

#include "common.cuh"

namespace andromeda::cuda {
namespace {

template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };
template <> struct Acc<int32_t> { using type = double; };

// op: 0 sum, 1 max, 2 min. NaN wins max and min, as on the CPU.
template <typename A>
__device__ __forceinline__ A combine(int op, A acc, A v) {
  if (op == 0) return acc + v;
  if (isnan(acc)) return acc;
  if (isnan(v)) return v;
  return op == 1 ? (v > acc ? v : acc) : (v < acc ? v : acc);
}

template <typename A>
__device__ __forceinline__ A identity(int op) {
  return op == 0 ? A(0) : (op == 1 ? -A(INFINITY) : A(INFINITY));
}

template <typename A>
__device__ __forceinline__ A warp_combine(int op, A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = combine(op, v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// inner == 1, short rows: one warp per row.
template <typename T>
__global__ void reduce_rows_warp(int op, const T* x, T* out, int64_t rows, int64_t size) {
  using A = typename Acc<T>::type;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* xr = x + row * size;
  A acc = identity<A>(op);
  for (int64_t j = lane; j < size; j += 32) acc = combine(op, acc, A(load(xr + j)));
  acc = warp_combine(op, acc);
  if (lane == 0) store(out + row, acc);
}

// inner == 1, long rows: one block per row.
template <typename T>
__global__ void reduce_rows_block(int op, const T* x, T* out, int64_t size) {
  using A = typename Acc<T>::type;
  __shared__ A partial[32];
  const T* xr = x + int64_t(blockIdx.x) * size;
  A acc = identity<A>(op);
  for (int64_t j = threadIdx.x; j < size; j += blockDim.x) acc = combine(op, acc, A(load(xr + j)));
  acc = warp_combine(op, acc);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < int(blockDim.x >> 5) ? partial[lane] : identity<A>(op);
    acc = warp_combine(op, acc);
    if (lane == 0) store(out + blockIdx.x, acc);
  }
}

// inner > 1: a block covers 32 inner positions of one outer index; its 8 rows of threads split `size`.
constexpr int kColumns = 32, kSplit = 8;

template <typename T>
__global__ void reduce_columns(int op, const T* x, T* out, int64_t size, int64_t inner, int64_t column_blocks) {
  using A = typename Acc<T>::type;
  __shared__ A partial[kSplit][kColumns + 1];
  const int64_t o = int64_t(blockIdx.x) / column_blocks;
  const int64_t col = (int64_t(blockIdx.x) % column_blocks) * kColumns + threadIdx.x;
  A acc = identity<A>(op);
  if (col < inner) {
    const T* base = x + o * size * inner + col;
    for (int64_t s = threadIdx.y; s < size; s += kSplit) acc = combine(op, acc, A(load(base + s * inner)));
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < inner) {
    for (int k = 1; k < kSplit; k++) acc = combine(op, acc, partial[k][threadIdx.x]);
    store(out + o * inner + col, acc);
  }
}

}  // namespace

void reduce(int op, int dtype, const char* x, char* out, int64_t outer, int64_t size, int64_t inner) {
  if (op < 0 || op > 2) throw std::invalid_argument("reduce: unknown op code " + std::to_string(op));
  if (outer == 0 || inner == 0) return;
  ANDROMEDA_CUDA_DISPATCH_ALL(dtype, {
    const T* in = reinterpret_cast<const T*>(x);
    T* o = reinterpret_cast<T*>(out);
    if (inner == 1) {
      if (size <= 512) {
        const int warps = 8;
        reduce_rows_warp<T><<<unsigned((outer + warps - 1) / warps), warps * 32, 0, stream()>>>(op, in, o, outer, size);
      } else {
        reduce_rows_block<T><<<unsigned(outer), row_threads(size), 0, stream()>>>(op, in, o, size);
      }
    } else {
      const int64_t column_blocks = (inner + kColumns - 1) / kColumns;
      reduce_columns<T><<<unsigned(outer * column_blocks), dim3(kColumns, kSplit), 0, stream()>>>(op, in, o, size, inner, column_blocks);
    }
  });
  check_launch("reduce");
}

}  // namespace andromeda::cuda
