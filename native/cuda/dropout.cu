// Dropout with the CPU engine's counter-based generator: element i of seed s is kept when
// uniform(s, i) ≥ p, so the same seed gives the same mask on either engine.
#include "../common/counter_random.h"
#include "common.cuh"

namespace andromeda::cuda {
namespace {

template <typename T>
__global__ void dropout_kernel(const T* x, T* out, int64_t n, double p, uint64_t seed, compute_t<T> keep_scale) {
  using C = compute_t<T>;
  ANDROMEDA_GRID_STRIDE(i, n) {
    const bool keep = uniform_from_counter(seed, uint64_t(i)) >= p;
    store(out + i, keep ? C(load(x + i)) * keep_scale : C(0));
  }
}

}  // namespace

void dropout(int dtype, const char* x, char* out, int64_t count, double p, uint64_t seed) {
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    using C = compute_t<T>;
    dropout_kernel<T><<<grid_for(count), kThreads, 0, stream()>>>(reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out),
                                                                  count, p, seed, C(1.0 / (1.0 - p)));
  });
  check_launch("dropout");
}

}  // namespace andromeda::cuda
