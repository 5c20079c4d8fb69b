// Global-norm clipping inside an AdamW step (AdamWArgs.clip_sum_of_squares), for both moment kinds and both
// engines. The rule is src/optim/clip.ts's clipGradNorm, in float64 as there: norm = √(Σ g²); a norm that is not
// finite skips the step (no weight, moment or copy changes: the trainer's divergence guard skips it too); a norm
// above max_norm multiplies the step's grad_scale by max_norm / (norm + 1e-6). The kernels then round that scale
// to float32 as they round a grad_scale passed in, so clipping here and clipping on the host give the same bits.
#pragma once
#include <cfloat>
#include <cmath>
#include <stdexcept>
#include <string>

#include "../../common/kernel_args.h"

#if defined(__CUDACC__)
#define ANDROMEDA_CLIP_HD __host__ __device__
#else
#define ANDROMEDA_CLIP_HD
#endif

namespace andromeda {

/** The step's gradient scale after clipping to max_norm; NaN where the norm is not finite (the step is skipped). */
ANDROMEDA_CLIP_HD inline double clipped_grad_scale(double sum_of_squares, double max_norm, double grad_scale) {
  const double norm = sqrt(sum_of_squares);
  if (!(norm <= DBL_MAX)) return NAN;  // NaN or +inf (a sum of squares is never negative but for NaN)
  return norm > max_norm ? grad_scale * (max_norm / (norm + 1e-6)) : grad_scale;
}

/** Checks a step's clipping arguments before any work: the norm clipped to must be positive (+inf: no clipping). */
inline void check_clip(const AdamWArgs& a, const char* kernel) {
  if (a.clip_sum_of_squares && !(a.clip_max_norm > 0))
    throw std::invalid_argument(std::string(kernel) + ": the norm to clip to must be positive, got " +
                                std::to_string(a.clip_max_norm));
}

/**
 * The CPU engine's form: the sum is in host memory, so the scale is resolved once before the step. Returns false
 * where the step is skipped; otherwise `a` holds the clipped grad_scale and no clipping of its own.
 */
inline bool resolve_clip_on_host(AdamWArgs& a, const char* kernel) {
  check_clip(a, kernel);
  if (!a.clip_sum_of_squares) return true;
  const double scale = clipped_grad_scale(*a.clip_sum_of_squares, a.clip_max_norm, a.grad_scale);
  if (std::isnan(scale)) return false;
  a.grad_scale = scale;
  a.clip_sum_of_squares = nullptr;
  return true;
}

}  // namespace andromeda
