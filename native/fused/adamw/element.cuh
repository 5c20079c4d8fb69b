// One AdamW element on the GPU — the float32-moment kernels (cuda.cu), the 8-bit ones after dequantizing
// (../adamw8bit/cuda.cu) and bench/cuda/adamw-layout.cu all call it, so every form takes the same step.
#pragma once
#include <cmath>

#include "../../common/kernel_args.h"
#include "clip.h"

namespace andromeda::cuda {

/**
 * A step's hyperparameters as the kernels read them: decay = 1 − lr·wd, step = lr / bias correction 1. With
 * clip_sum_of_squares set, each kernel first resolves grad_scale from the sum in device memory (clip.h).
 */
struct AdamWConstants {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
  const double* clip_sum_of_squares;
  double clip_max_norm, unclipped_grad_scale;
};

inline AdamWConstants adamw_constants(const AdamWArgs& a, const char* kernel) {
  check_clip(a, kernel);
  return {float(a.beta1),
          float(a.beta2),
          float(a.eps),
          float(1.0 - a.lr * a.weight_decay),
          float(a.lr / a.bias_correction1),
          float(1.0 / std::sqrt(a.bias_correction2)),
          float(a.grad_scale),
          a.clip_sum_of_squares,
          a.clip_max_norm,
          a.grad_scale};
}

/**
 * At a kernel's start: the clipped grad_scale where the step clips on the device (every thread reads the same
 * float64 and takes the same decision). False where the norm is not finite: the step is skipped.
 */
__device__ __forceinline__ bool resolve_clip(AdamWConstants& k) {
  if (!k.clip_sum_of_squares) return true;
  const double scale = clipped_grad_scale(*k.clip_sum_of_squares, k.clip_max_norm, k.unclipped_grad_scale);
  if (scale != scale) return false;
  k.grad_scale = float(scale);
  return true;
}

/**
 * One element's update: returns the new weight, updates the moments in place. Every operation is an explicitly
 * rounded intrinsic, so nvcc cannot fuse multiply-adds differently from one kernel to another: all give the same
 * bits (and the CPU engine's order of operations).
 */
__device__ __forceinline__ float adamw_element(float param, float grad, float& m, float& v, const AdamWConstants& k) {
  const float g = __fmul_rn(grad, k.grad_scale);
  const float mi = __fadd_rn(__fmul_rn(k.b1, m), __fmul_rn(__fsub_rn(1.0f, k.b1), g));
  const float vi = __fadd_rn(__fmul_rn(k.b2, v), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, k.b2), g), g));
  m = mi;
  v = vi;
  const float denominator = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), k.inv_sqrt_bc2), k.eps);
  return __fsub_rn(__fmul_rn(param, k.decay), __fdiv_rn(__fmul_rn(k.step, mi), denominator));
}

}  // namespace andromeda::cuda
