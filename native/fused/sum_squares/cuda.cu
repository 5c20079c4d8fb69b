// Σ x² over one or many float buffers in float64 (the global gradient norm of clipping: 4.9 GB of bf16
// gradients for andromeda-3b), returned to the host or left in device memory for a clipping AdamW step, read at
// memory speed: one launch over a chunk table (fixed-size chunks of every buffer, each chunk naming its buffer),
// 16-byte loads with several in flight per thread, one float64 partial per chunk, then one fixed-order sum of the
// partials (deterministic, independent of the grid).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "sum_squares.h"
#include "../../cuda/engine.h"
#include "../../cuda/chunk_table.h"
#include "../../cuda/common.cuh"
#include "../../cuda/vec.cuh"

namespace andromeda::cuda {
namespace {

constexpr int64_t kChunk = 1 << 16;  // elements per chunk: a multiple of every pack width
constexpr int kBlocksPerSm = 8;      // 8 × 256 threads fill a multiprocessor

struct SquaresBuffer {
  const void* x;
  int64_t count;
  int64_t first_chunk;  // index of the buffer's first chunk in the table
  int dtype;
  int vectorized;       // starts on a 16-byte boundary
};

/** The sum of squares of x[begin, end) over this block's threads (each thread's part; not yet reduced). */
template <typename T>
__device__ __forceinline__ double thread_squares(const T* x, int64_t begin, int64_t end, bool vectorized) {
  constexpr int P = int(16 / sizeof(T));
  double acc0 = 0, acc1 = 0;
  int64_t tail = begin;
  if (vectorized) {
    const int packs = int((end - begin) / P);
#pragma unroll 4
    for (int q = threadIdx.x; q < packs; q += blockDim.x) {
      const Pack<T, P> pk = load_pack<T, P>(x + begin + int64_t(q) * P);
#pragma unroll
      for (int e = 0; e < P; e += 2) {
        const double a = double(load(&pk.v[e])), b = double(load(&pk.v[e + 1]));
        acc0 += a * a;
        acc1 += b * b;
      }
    }
    tail = begin + int64_t(packs) * P;
  }
  for (int64_t i = tail + threadIdx.x; i < end; i += blockDim.x) {
    const double a = double(load(x + i));
    acc0 += a * a;
  }
  return acc0 + acc1;
}

__global__ void __launch_bounds__(kThreads)
    squares_chunks_kernel(const SquaresBuffer* buffers, const int32_t* chunk_buffer, int64_t chunks, double* partials) {
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const SquaresBuffer b = buffers[chunk_buffer[c]];
    const int64_t begin = (c - b.first_chunk) * kChunk, end = min(b.count, begin + kChunk);
    double acc = 0;
    switch (DType(b.dtype)) {
      case DType::F32: acc = thread_squares(static_cast<const float*>(b.x), begin, end, b.vectorized); break;
      case DType::F64: acc = thread_squares(static_cast<const double*>(b.x), begin, end, b.vectorized); break;
      case DType::BF16: acc = thread_squares(static_cast<const bf16*>(b.x), begin, end, b.vectorized); break;
      default: acc = thread_squares(static_cast<const f16*>(b.x), begin, end, b.vectorized); break;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[c] = acc;
  }
}

__global__ void sum_partials(const double* partials, int64_t count, double* result) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *result = acc;
}

}  // namespace

double sum_of_squares(int dtype, const char* x, int64_t count) {
  const SquaresInput input{dtype, x, count};
  return sum_of_squares_many(&input, 1);
}

namespace {

/** Enqueues the sum of squares into `out` (device memory); false where there is nothing to sum. */
bool enqueue_sum_of_squares(const SquaresInput* inputs, size_t n, double* out) {
  ChunkTable<SquaresBuffer> table;
  for (size_t i = 0; i < n; i++) {
    const SquaresInput& in = inputs[i];
    if (in.dtype != int(DType::F32) && in.dtype != int(DType::F64) && in.dtype != int(DType::BF16) &&
        in.dtype != int(DType::F16))
      throw std::invalid_argument("sumOfSquares: buffer " + std::to_string(i) + " is not a float dtype (code " +
                                  std::to_string(in.dtype) + ")");
    if (in.count <= 0) continue;
    table.add({in.x, in.count, table.next_chunk(), in.dtype, aligned16(in.x) ? 1 : 0}, in.count, kChunk);
  }
  if (table.entries.empty()) return false;
  const int64_t chunks = table.chunks();
  const DeviceChunkTable<SquaresBuffer> device(table, "sumOfSquares (chunk table)");
  Scratch partials(size_t(chunks) * sizeof(double));
  const unsigned grid = unsigned(std::min<int64_t>(chunks, int64_t(sm_count()) * kBlocksPerSm));
  squares_chunks_kernel<<<grid, kThreads, 0, stream()>>>(device.entries(), device.chunk_entry(), chunks, partials.as<double>());
  check_launch("sumOfSquares");
  sum_partials<<<1, 1024, 0, stream()>>>(partials.as<double>(), chunks, out);
  check_launch("sumOfSquares (partials)");
  return true;
}

}  // namespace

double sum_of_squares_many(const SquaresInput* inputs, size_t n) {
  Scratch result(sizeof(double));
  if (!enqueue_sum_of_squares(inputs, n, result.as<double>())) return 0;
  double sum = 0;
  download(&sum, reinterpret_cast<const char*>(result.as<double>()), sizeof(double));
  return sum;
}

void sum_of_squares_many_to(const SquaresInput* inputs, size_t n, double* out) {
  if (!enqueue_sum_of_squares(inputs, n, out))
    check(cudaMemsetAsync(out, 0, sizeof(double), stream()), "sumOfSquaresManyTo (no elements: 0)");
}

}  // namespace andromeda::cuda
