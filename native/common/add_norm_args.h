// The arguments of the residual-add + norm kernels, the same for the CPU and CUDA engines.
#pragma once
#include <cstdint>

namespace andromeda {

/** Residual add + norm over contiguous [rows, cols]: s = a + b · (scale · c), out = norm(s) · weight + bias.
 *  b, scale, weight and bias may be null (null b: a plain norm of a). */
struct AddNormArgs {
  int dtype;
  bool rms;
  const char* a;
  const char* b;
  const char* scale;
  double c;
  const char* weight;
  const char* bias;
  int64_t rows, cols;
  double eps;
};

}  // namespace andromeda
