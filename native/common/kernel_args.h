// Argument structs that both engines' kernels take (native/abi/kernels.mjs gathers their fields with `into`).
// Pointers already include the element offset; dtype arguments are codes of andromeda::DType. Each engine's
// namespace names them (cpu/kernels.h, cuda/engine.h), the CUDA engine's GemmArgs adding a bias.
#pragma once
#include <cstdint>

namespace andromeda {

struct GemmArgs {
  int dtype;
  bool trans_a, trans_b;
  int64_t m, n, k;
  double alpha, beta;
  const char* a; int64_t lda, stride_a;
  const char* b; int64_t ldb, stride_b;
  char* c; int64_t ldc, stride_c;
  int64_t batch;
};

struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2, grad_scale;
};

}  // namespace andromeda
