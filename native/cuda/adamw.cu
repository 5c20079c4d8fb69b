// AdamW on float32 master weights with float32 moments; the gradient may be any float dtype. The
// arithmetic is the CPU engine's, operation for operation, so both engines take the same step.
#include <cmath>

#include "common.cuh"

namespace andromeda::cuda {
namespace {

struct AdamWConstants {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
};

template <typename T>
__global__ void adamw_kernel(float* param, const T* grad, float* m, float* v, int64_t n, AdamWConstants k) {
  ANDROMEDA_GRID_STRIDE(i, n) {
    const float g = float(load(grad + i)) * k.grad_scale;
    const float mi = k.b1 * m[i] + (1.0f - k.b1) * g;
    const float vi = k.b2 * v[i] + (1.0f - k.b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * k.decay - k.step * mi / (sqrtf(vi) * k.inv_sqrt_bc2 + k.eps);
  }
}

}  // namespace

void adamw(float* param, int grad_dtype, const char* grad, float* m, float* v, int64_t count, const AdamWArgs& a) {
  if (count == 0) return;
  const AdamWConstants k{float(a.beta1), float(a.beta2), float(a.eps), float(1.0 - a.lr * a.weight_decay),
                         float(a.lr / a.bias_correction1), float(1.0 / std::sqrt(a.bias_correction2)),
                         float(a.grad_scale)};
  ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
    adamw_kernel<T><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const T*>(grad), m, v, count, k);
  });
  check_launch("adamw");
}

}  // namespace andromeda::cuda
