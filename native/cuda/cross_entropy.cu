// Cross-entropy over the vocabulary: the forward pass streams each row of logits once (online
// log-sum-exp) and keeps only per-row loss and lse; the backward pass recomputes softmax from lse,
// so no float32 copy of the logits is ever materialised.
#include "common.cuh"
#include "online_softmax.cuh"

namespace andromeda::cuda {
namespace {

template <typename T>
__global__ void cross_entropy_kernel(const T* logits, const int32_t* targets, stat_t<T>* losses, stat_t<T>* lse_out,
                                     int64_t vocab, int64_t ignore_index) {
  using C = compute_t<T>;
  const int64_t row = blockIdx.x;
  const T* lr = logits + row * vocab;
  MaxSum<C> acc;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) acc.add(C(load(lr + j)));
  acc = block_max_sum(acc);
  if (threadIdx.x == 0) {
    const C lse = acc.max + log(acc.sum);
    lse_out[row] = stat_t<T>(lse);
    const int32_t t = targets[row];
    if (t == ignore_index) losses[row] = stat_t<T>(0);
    else if (t < 0 || t >= vocab) losses[row] = stat_t<T>(NAN);  // an out-of-range target shows up as NaN
    else losses[row] = stat_t<T>(lse - C(load(lr + t)));
  }
}

constexpr int kGradThreads = 256, kGradPerThread = 8;

// grid: x = row, y = chunk of the vocabulary.
template <typename T>
__global__ void cross_entropy_grad_kernel(const T* logits, const int32_t* targets, const stat_t<T>* lse,
                                          const stat_t<T>* grad_loss, T* grad_logits, int64_t vocab,
                                          int64_t ignore_index) {
  using C = compute_t<T>;
  const int64_t row = blockIdx.x;
  const int64_t begin = int64_t(blockIdx.y) * kGradThreads * kGradPerThread;
  const int64_t end = min(vocab, begin + int64_t(kGradThreads) * kGradPerThread);
  const int32_t t = targets[row];
  T* gr = grad_logits + row * vocab;
  if (t == ignore_index) {
    for (int64_t j = begin + threadIdx.x; j < end; j += kGradThreads) store(gr + j, C(0));
    return;
  }
  const T* lr = logits + row * vocab;
  const C l = C(lse[row]), g = C(grad_loss[row]);
  for (int64_t j = begin + threadIdx.x; j < end; j += kGradThreads) {
    const C p = exp(C(load(lr + j)) - l);
    store(gr + j, g * (p - (j == t ? C(1) : C(0))));
  }
}

}  // namespace

void cross_entropy(int dtype, const char* logits, const int32_t* targets, char* losses, char* lse, int64_t rows,
                   int64_t vocab, int64_t ignore_index) {
  if (rows == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    cross_entropy_kernel<T><<<unsigned(rows), row_threads(vocab), 0, stream()>>>(
        reinterpret_cast<const T*>(logits), targets, reinterpret_cast<stat_t<T>*>(losses), reinterpret_cast<stat_t<T>*>(lse),
        vocab, ignore_index);
  });
  check_launch("cross_entropy");
}

void cross_entropy_grad(int dtype, const char* logits, const int32_t* targets, const char* lse, const char* grad_loss,
                        char* grad_logits, int64_t rows, int64_t vocab, int64_t ignore_index) {
  if (rows == 0 || vocab == 0) return;
  const int64_t chunks = (vocab + kGradThreads * kGradPerThread - 1) / (kGradThreads * kGradPerThread);
  if (chunks > 65535) throw std::invalid_argument("cross_entropy_grad: vocabulary too large");
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    cross_entropy_grad_kernel<T><<<dim3(unsigned(rows), unsigned(chunks)), kGradThreads, 0, stream()>>>(
        reinterpret_cast<const T*>(logits), targets, reinterpret_cast<const stat_t<T>*>(lse),
        reinterpret_cast<const stat_t<T>*>(grad_loss), reinterpret_cast<T*>(grad_logits), vocab, ignore_index);
  });
  check_launch("cross_entropy_grad");
}

}  // namespace andromeda::cuda
