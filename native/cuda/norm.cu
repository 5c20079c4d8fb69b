// Layer norm and RMS norm over the last axis of contiguous [rows, cols], forward and backward.
// One block per row; statistics are kept per row (mean, rstd) for the backward pass. The weight and
// bias gradients are column sums over rows, done in two deterministic stages: per chunk of rows,
// then over the chunks.
#include <algorithm>

#include "common.cuh"

namespace andromeda::cuda {
namespace {

template <typename T>
__global__ void norm_kernel(bool rms, const T* x, const T* w, const T* b, T* out, stat_t<T>* stats, int64_t cols,
                            double eps) {
  using C = compute_t<T>;
  const int64_t off = int64_t(blockIdx.x) * cols;
  C mean = 0;
  if (!rms) {
    C s = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += C(load(x + off + j));
    mean = block_sum(s) / C(cols);
  }
  C ss = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const C d = C(load(x + off + j)) - mean;
    ss += d * d;
  }
  const C var = block_sum(ss) / C(cols);
  const C rstd = C(1) / sqrt(var + C(eps));
  if (threadIdx.x == 0) {
    stats[2 * blockIdx.x] = stat_t<T>(mean);
    stats[2 * blockIdx.x + 1] = stat_t<T>(rstd);
  }
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    C v = (C(load(x + off + j)) - mean) * rstd;
    if (w) v *= C(load(w + j));
    if (b) v += C(load(b + j));
    store(out + off + j, v);
  }
}

template <typename T>
__global__ void norm_grad_input(bool rms, const T* x, const T* w, const stat_t<T>* stats, const T* gy, T* gx,
                                int64_t cols) {
  using C = compute_t<T>;
  const int64_t row = blockIdx.x, off = row * cols;
  const C mean = C(stats[2 * row]), rstd = C(stats[2 * row + 1]);
  C sum_g = 0, sum_gx = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const C xhat = (C(load(x + off + j)) - mean) * rstd;
    const C g = w ? C(load(gy + off + j)) * C(load(w + j)) : C(load(gy + off + j));
    sum_g += g;
    sum_gx += g * xhat;
  }
  sum_g = block_sum(sum_g) / C(cols);
  sum_gx = block_sum(sum_gx) / C(cols);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const C xhat = (C(load(x + off + j)) - mean) * rstd;
    const C g = w ? C(load(gy + off + j)) * C(load(w + j)) : C(load(gy + off + j));
    const C v = rms ? rstd * (g - xhat * sum_gx) : rstd * (g - sum_g - xhat * sum_gx);
    store(gx + off + j, v);
  }
}

constexpr int kColumns = 32, kSplit = 8, kRowsPerChunk = 128;

// partial_w / partial_b: [chunks, cols] sums of gy·x̂ and gy over each chunk of rows.
template <typename T>
__global__ void norm_grad_params_partial(const T* x, const stat_t<T>* stats, const T* gy, compute_t<T>* partial_w,
                                         compute_t<T>* partial_b, int64_t rows, int64_t cols) {
  using C = compute_t<T>;
  __shared__ C sw[kSplit][kColumns + 1], sb[kSplit][kColumns + 1];
  const int64_t col = int64_t(blockIdx.x) * kColumns + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * kRowsPerChunk;
  const int64_t r1 = min(rows, r0 + kRowsPerChunk);
  C aw = 0, ab = 0;
  if (col < cols) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kSplit) {
      const C g = load(gy + r * cols + col);
      const C xhat = (C(load(x + r * cols + col)) - C(stats[2 * r])) * C(stats[2 * r + 1]);
      aw += g * xhat;
      ab += g;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int k = 1; k < kSplit; k++) { aw += sw[k][threadIdx.x]; ab += sb[k][threadIdx.x]; }
    partial_w[int64_t(blockIdx.y) * cols + col] = aw;
    partial_b[int64_t(blockIdx.y) * cols + col] = ab;
  }
}

template <typename T>
__global__ void norm_grad_params_final(const compute_t<T>* partial_w, const compute_t<T>* partial_b, int64_t chunks,
                                       int64_t cols, T* gw, T* gb) {
  using C = compute_t<T>;
  ANDROMEDA_GRID_STRIDE(col, cols) {
    C aw = 0, ab = 0;
    for (int64_t c = 0; c < chunks; c++) { aw += partial_w[c * cols + col]; ab += partial_b[c * cols + col]; }
    if (gw) store(gw + col, aw);
    if (gb) store(gb + col, ab);
  }
}

}  // namespace

void norm(bool rms, int dtype, const char* x, const char* weight, const char* bias, char* out, char* stats,
          int64_t rows, int64_t cols, double eps) {
  if (rows == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    norm_kernel<T><<<unsigned(rows), row_threads(cols), 0, stream()>>>(
        rms, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(weight), reinterpret_cast<const T*>(bias),
        reinterpret_cast<T*>(out), reinterpret_cast<stat_t<T>*>(stats), cols, eps);
  });
  check_launch("norm");
}

void norm_grad(bool rms, int dtype, const char* x, const char* weight, const char* stats, const char* grad_out,
               char* grad_in, char* grad_weight, char* grad_bias, int64_t rows, int64_t cols) {
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    using C = compute_t<T>;
    const T* X = reinterpret_cast<const T*>(x);
    const T* GY = reinterpret_cast<const T*>(grad_out);
    const stat_t<T>* S = reinterpret_cast<const stat_t<T>*>(stats);
    if (rows > 0) {
      norm_grad_input<T><<<unsigned(rows), row_threads(cols), 0, stream()>>>(
          rms, X, reinterpret_cast<const T*>(weight), S, GY, reinterpret_cast<T*>(grad_in), cols);
      check_launch("norm_grad");
    }
    if ((grad_weight || grad_bias) && cols > 0) {
      const int64_t chunks = std::max<int64_t>(1, (rows + kRowsPerChunk - 1) / kRowsPerChunk);
      Scratch partial(size_t(2 * chunks * cols) * sizeof(C));
      C* pw = partial.as<C>();
      C* pb = pw + chunks * cols;
      if (rows > 0) {
        norm_grad_params_partial<T><<<dim3(unsigned((cols + kColumns - 1) / kColumns), unsigned(chunks)), dim3(kColumns, kSplit), 0, stream()>>>(
            X, S, GY, pw, pb, rows, cols);
      } else {
        check(cudaMemsetAsync(pw, 0, size_t(2 * chunks * cols) * sizeof(C), stream()), "norm_grad (memset)");
      }
      check_launch("norm_grad");
      norm_grad_params_final<T><<<grid_for(cols), kThreads, 0, stream()>>>(pw, pb, chunks, cols, reinterpret_cast<T*>(grad_weight),
                                                                          reinterpret_cast<T*>(grad_bias));
      check_launch("norm_grad");
    }
  });
}

}  // namespace andromeda::cuda
