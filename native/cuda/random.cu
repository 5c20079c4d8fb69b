// Random fills (parameter initialisation) on the device, with the CPU engine's counter-based numbers:
// building a model on the GPU needs no host-side generator pass and no upload.
#include "../common/counter_random.h"
#include "common.cuh"

namespace andromeda::cuda {
namespace {

template <typename T>
__global__ void random_fill_kernel(T* out, int64_t n, bool normal, double a, double b, uint64_t seed) {
  ANDROMEDA_GRID_STRIDE(i, n) {
    const double value = normal ? a + b * normal_from_counter(seed, uint64_t(i))
                                : a + (b - a) * uniform_from_counter(seed, uint64_t(i));
    store(out + i, value);
  }
}

}  // namespace

void random_fill(int dtype, char* dst, int64_t count, bool normal, double a, double b, uint64_t seed) {
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    random_fill_kernel<T><<<grid_for(count), kThreads, 0, stream()>>>(reinterpret_cast<T*>(dst), count, normal, a, b, seed);
  });
  check_launch("random fill");
}

}  // namespace andromeda::cuda
