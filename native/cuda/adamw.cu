// AdamW on float32 master weights with float32 moments; the gradient may be any float dtype. The
// arithmetic is the CPU engine's, operation for operation, so both engines take the same step.
#include <cmath>

#include "common.cuh"

namespace andromeda::cuda {
namespace {

struct AdamWConstants {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
};

struct NoShadow {};
template <typename S>
__device__ __forceinline__ void write_shadow(S* shadow, int64_t i, float p) { store(shadow + i, p); }
__device__ __forceinline__ void write_shadow(NoShadow*, int64_t, float) {}

template <typename T, typename S>
__global__ void adamw_kernel(float* param, const T* grad, float* m, float* v, int64_t n, AdamWConstants k, S* shadow) {
  ANDROMEDA_GRID_STRIDE(i, n) {
    const float g = float(load(grad + i)) * k.grad_scale;
    const float mi = k.b1 * m[i] + (1.0f - k.b1) * g;
    const float vi = k.b2 * v[i] + (1.0f - k.b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = param[i] * k.decay - k.step * mi / (sqrtf(vi) * k.inv_sqrt_bc2 + k.eps);
    param[i] = p;
    write_shadow(shadow, i, p);
  }
}

}  // namespace

void adamw(float* param, int grad_dtype, const char* grad, float* m, float* v, int64_t count, const AdamWArgs& a,
           int shadow_dtype, char* shadow) {
  if (count == 0) return;
  const AdamWConstants k{float(a.beta1), float(a.beta2), float(a.eps), float(1.0 - a.lr * a.weight_decay),
                         float(a.lr / a.bias_correction1), float(1.0 / std::sqrt(a.bias_correction2)),
                         float(a.grad_scale)};
  ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
    using G = T;
    if (!shadow) {
      adamw_kernel<G, NoShadow><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, nullptr);
    } else if (shadow_dtype == int(DType::BF16)) {
      adamw_kernel<G, bf16><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, reinterpret_cast<bf16*>(shadow));
    } else if (shadow_dtype == int(DType::F16)) {
      adamw_kernel<G, f16><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, reinterpret_cast<f16*>(shadow));
    } else {
      throw std::invalid_argument("adamw: the weight copy must be bfloat16 or float16");
    }
  });
  check_launch("adamw");
}

}  // namespace andromeda::cuda
