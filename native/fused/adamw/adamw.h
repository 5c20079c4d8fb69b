// AdamW over many tensors with shared hyperparameters: each tensor takes exactly the one-tensor `adamw` step
// (float32 master weights and moments, a gradient of any float dtype; same arithmetic, same bits), and when
// `shadow` is set the updated weights are also stored there rounded to `shadow_dtype` (bfloat16 or float16: the
// compute copy of the masters), in the same pass.
// Forms: cpu.cc, cuda.cu (which also holds the CUDA one-tensor kernel); composed: adamw then a cast copy.
#pragma once
#include <cstddef>
#include <cstdint>

namespace andromeda {

struct AdamWTensorArgs {
  float* param;
  int grad_dtype;
  const char* grad;
  float* m;
  float* v;
  int64_t count;
  int shadow_dtype;
  char* shadow;  // null: no low-precision copy
};

}  // namespace andromeda
