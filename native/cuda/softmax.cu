// Row-wise softmax / log-softmax over contiguous [rows, cols] and their gradients. One block per
// row; the forward pass reads the row twice (online max-and-sum, then the write), with float
// arithmetic for float32 and half types and double for float64.
#include "common.cuh"
#include "online_softmax.cuh"

namespace andromeda::cuda {
namespace {

template <typename T>
__global__ void softmax_kernel(const T* x, T* out, int64_t cols, bool log_softmax) {
  using C = compute_t<T>;
  const int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  T* yr = out + row * cols;
  MaxSum<C> acc;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) acc.add(C(load(xr + j)));
  acc = block_max_sum(acc);
  const C mx = acc.max == -C(INFINITY) ? C(0) : acc.max;  // fully masked row: no NaN from −∞ − −∞
  const C sum = acc.max == -C(INFINITY) ? C(0) : acc.sum;
  if (log_softmax) {
    const C lse = mx + log(sum);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) store(yr + j, C(load(xr + j)) - lse);
  } else {
    const C inv = sum > C(0) ? C(1) / sum : C(0);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) store(yr + j, exp(C(load(xr + j)) - mx) * inv);
  }
}

template <typename T>
__global__ void softmax_grad_kernel(const T* y, const T* gy, T* gx, int64_t cols, bool log_softmax) {
  using C = compute_t<T>;
  const int64_t off = int64_t(blockIdx.x) * cols;
  C dot = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    dot += log_softmax ? C(load(gy + off + j)) : C(load(gy + off + j)) * C(load(y + off + j));
  dot = block_sum(dot);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const C g = load(gy + off + j), yv = load(y + off + j);
    store(gx + off + j, log_softmax ? g - exp(yv) * dot : yv * (g - dot));
  }
}

}  // namespace

void softmax(int dtype, const char* x, char* out, int64_t rows, int64_t cols, bool log) {
  if (rows == 0 || cols == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    softmax_kernel<T><<<unsigned(rows), row_threads(cols), 0, stream()>>>(reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out), cols, log);
  });
  check_launch("softmax");
}

void softmax_grad(int dtype, const char* y, const char* grad_out, char* grad_in, int64_t rows, int64_t cols, bool log) {
  if (rows == 0 || cols == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    softmax_grad_kernel<T><<<unsigned(rows), row_threads(cols), 0, stream()>>>(
        reinterpret_cast<const T*>(y), reinterpret_cast<const T*>(grad_out), reinterpret_cast<T*>(grad_in), cols, log);
  });
  check_launch("softmax_grad");
}

}  // namespace andromeda::cuda
