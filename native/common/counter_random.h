// Counter-based random numbers shared by the CPU and CUDA engines: element `index` of stream `seed`
// is a pure function of (seed, index), so a fill or a dropout mask is the same on every engine and
// needs no generator state on the device.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ANDROMEDA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ANDROMEDA_HOST_DEVICE inline
#endif

namespace andromeda {

/** Uniform in [0, 1) with 53 bits (a splitmix64 finaliser of seed and index). */
ANDROMEDA_HOST_DEVICE double uniform_from_counter(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);
}

/** Standard normal: Box–Muller on the uniforms of the pair (index & ~1, index | 1), cosine for even indices. */
ANDROMEDA_HOST_DEVICE double normal_from_counter(uint64_t seed, uint64_t index) {
  const uint64_t pair = index & ~uint64_t(1);
  const double u1 = 1.0 - uniform_from_counter(seed, pair);  // (0, 1]: log stays finite
  const double u2 = uniform_from_counter(seed, pair + 1);
  const double r = sqrt(-2.0 * log(u1));
  const double angle = 6.283185307179586 * u2;
  return (index & 1) ? r * sin(angle) : r * cos(angle);
}

}  // namespace andromeda
