// Bias add fused with GELU over contiguous [rows, cols] (the feed-forward's first linear layer):
//   forward  out = gelu(x + bias)
//   backward gradIn = gradOut · gelu'(x + bias), gradBias = Σ_rows gradIn
// x is the matrix product without its bias, so no broadcast copy of the bias precedes the product.
// The bias gradient is summed in float over chunks of rows (one partial row per chunk), then over the
// chunks in order: deterministic, no atomics.
#include <algorithm>

#include "bias_gelu.h"
#include "../../cuda/engine.h"
#include "../../cuda/activation.cuh"
#include "../../cuda/common.cuh"
#include "../../cuda/partial_sums.cuh"
#include "../../cuda/vec.cuh"

namespace andromeda::cuda {
namespace {

template <typename T, int W>
__global__ void bias_gelu_kernel(const T* x, const T* bias, T* out, int64_t total, int64_t cols) {
  using C = compute_t<T>;
  ANDROMEDA_GRID_STRIDE(p, total / W) {
    const int64_t i = p * W, col = i % cols;
    const Pack<T, W> px = load_pack<T, W>(x + i), pb = load_pack<T, W>(bias + col);
    Pack<T, W> o;
#pragma unroll
    for (int k = 0; k < W; k++) store(&o.v[k], gelu(C(load(&px.v[k])) + C(load(&pb.v[k]))));
    store_pack<T, W>(out + i, o);
  }
}

constexpr int kPackColumns = 32, kRowLanes = 8;

// grid: x = block of 32 packs of columns, y = chunk of rows. partial: [chunks, cols] or null.
template <typename T, int W>
__global__ void bias_gelu_grad_kernel(const T* x, const T* bias, const T* gy, T* gx, compute_t<T>* partial,
                                      int64_t rows, int64_t cols, int64_t rows_per_chunk) {
  using C = compute_t<T>;
  __shared__ C lanes[kRowLanes][kPackColumns][W];
  const int64_t col = (int64_t(blockIdx.x) * kPackColumns + threadIdx.x) * W;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  C acc[W];
#pragma unroll
  for (int k = 0; k < W; k++) acc[k] = C(0);
  if (col < cols) {
    const Pack<T, W> pb = load_pack<T, W>(bias + col);
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) {
      const int64_t i = r * cols + col;
      const Pack<T, W> px = load_pack<T, W>(x + i), pg = load_pack<T, W>(gy + i);
      Pack<T, W> o;
#pragma unroll
      for (int k = 0; k < W; k++) {
        const C g = C(load(&pg.v[k])) * gelu_grad(C(load(&px.v[k])) + C(load(&pb.v[k])));
        store(&o.v[k], g);
        acc[k] += g;
      }
      store_pack<T, W>(gx + i, o);
    }
  }
  if (!partial) return;
#pragma unroll
  for (int k = 0; k < W; k++) lanes[threadIdx.y][threadIdx.x][k] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int lane = 1; lane < kRowLanes; lane++)
#pragma unroll
      for (int k = 0; k < W; k++) acc[k] += lanes[lane][threadIdx.x][k];
#pragma unroll
    for (int k = 0; k < W; k++) partial[int64_t(blockIdx.y) * cols + col + k] = acc[k];
  }
}

}  // namespace

void bias_gelu(int dtype, const char* x, const char* bias, char* out, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  if (total == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    const bool vec = cols % int64_t(16 / sizeof(T)) == 0 && all_aligned16({x, bias, out});
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      bias_gelu_kernel<T, W><<<grid_for(total / W), kThreads, 0, stream()>>>(
          reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(bias), reinterpret_cast<T*>(out), total, cols);
    });
  });
  check_launch("biasGelu");
}

void bias_gelu_grad(int dtype, const char* x, const char* bias, const char* grad_out, char* grad_in, char* grad_bias,
                    int64_t rows, int64_t cols) {
  if (cols == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    using C = compute_t<T>;
    const bool vec = cols % int64_t(16 / sizeof(T)) == 0 && all_aligned16({x, bias, grad_out, grad_in});
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      const int64_t column_blocks = (cols / W + kPackColumns - 1) / kPackColumns;
      // Enough chunks of rows to keep every SM full (the kernel is bound by loads in flight), each chunk
      // at least one row per lane.
      const int64_t wanted = std::max<int64_t>(1, (16 * int64_t(sm_count()) + column_blocks - 1) / column_blocks);
      const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>({wanted, (rows + kRowLanes - 1) / kRowLanes, 65535}));
      const int64_t rows_per_chunk = std::max<int64_t>(1, (rows + chunks - 1) / chunks);
      Scratch partial(grad_bias ? size_t(chunks * cols) * sizeof(C) : 1);
      if (column_blocks > 0x7fffffff) throw std::invalid_argument("biasGeluGrad: too many columns");
      bias_gelu_grad_kernel<T, W><<<dim3(unsigned(column_blocks), unsigned(chunks)), dim3(kPackColumns, kRowLanes), 0, stream()>>>(
          reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(bias), reinterpret_cast<const T*>(grad_out),
          reinterpret_cast<T*>(grad_in), grad_bias ? partial.as<C>() : nullptr, rows, cols, rows_per_chunk);
      check_launch("biasGeluGrad");
      if (grad_bias) {
        sum_partial_rows<T>(partial.as<C>(), chunks, cols, cols, reinterpret_cast<T*>(grad_bias), "biasGeluGrad");
      }
    });
  });
}

}  // namespace andromeda::cuda
