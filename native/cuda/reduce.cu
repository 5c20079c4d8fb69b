// Reductions over the middle axis of [outer, size, inner], and the float64 sum of squares used for
// global-norm clipping. Half and float32 inputs accumulate in float, float64 and int32 in double.
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

template <typename T>
__global__ void sum_squares_partial(const T* x, int64_t n, double* partials) {
  double acc = 0;
  ANDROMEDA_GRID_STRIDE(i, n) {
    const double v = double(load(x + i));
    acc += v * v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_partials(const double* partials, int64_t count, double* result) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *result = acc;
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

double sum_of_squares(int dtype, const char* x, int64_t count) {
  const SquaresInput input{dtype, x, count};
  return sum_of_squares_many(&input, 1);
}

double sum_of_squares_many(const SquaresInput* inputs, size_t n) {
  // One partial sum per block of every input, one final sum, one wait for the host.
  std::vector<unsigned> blocks(n);
  size_t total_blocks = 0;
  for (size_t i = 0; i < n; i++) {
    blocks[i] = inputs[i].count > 0 ? std::min<unsigned>(grid_for(inputs[i].count), 264) : 0;
    total_blocks += blocks[i];
  }
  if (total_blocks == 0) return 0;
  Scratch scratch((total_blocks + 1) * sizeof(double));
  double* partials = scratch.as<double>();
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    if (!blocks[i]) continue;
    ANDROMEDA_CUDA_DISPATCH_FLOAT(inputs[i].dtype, {
      sum_squares_partial<T><<<blocks[i], kThreads, 0, stream()>>>(reinterpret_cast<const T*>(inputs[i].x), inputs[i].count,
                                                                  partials + at);
    });
    check_launch("sum_of_squares");
    at += blocks[i];
  }
  sum_partials<<<1, 1024, 0, stream()>>>(partials, int64_t(total_blocks), partials + total_blocks);
  check_launch("sum_of_squares");
  double result = 0;
  download(&result, reinterpret_cast<const char*>(partials + total_blocks), sizeof(double));
  return result;
}

}  // namespace andromeda::cuda
