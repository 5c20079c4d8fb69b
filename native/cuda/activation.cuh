// Activations shared by the elementwise kernels and the fused bias + GELU kernels, so both compute
// the same function: GELU in its exact erf form and its derivative Φ(x) + x·φ(x).
#pragma once
#include "common.cuh"

namespace andromeda::cuda {

template <typename C>
__device__ __forceinline__ C gelu(C x) { return C(0.5) * x * (C(1) + erf(x * C(0.70710678118654752440))); }

template <typename C>
__device__ __forceinline__ C gelu_grad(C x) {
  const C cdf = C(0.5) * (C(1) + erf(x * C(0.70710678118654752440)));
  const C pdf = exp(C(-0.5) * x * x) * C(0.39894228040143267794);
  return cdf + x * pdf;
}

}  // namespace andromeda::cuda
