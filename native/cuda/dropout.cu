// Dropout with the CPU engine's counter-based generator: element i of seed s is kept when
// uniform(s, i) ≥ p, so the same seed gives the same mask on either engine.
#include "common.cuh"

namespace andromeda::cuda {
namespace {

// Same bits as uniform_from_counter in native/cpu/kernels.h.
__device__ __forceinline__ double uniform_from_counter(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);
}

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
