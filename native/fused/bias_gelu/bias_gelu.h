// Bias add fused with the exact (erf) GELU over contiguous [rows, cols], bias [cols]:
//   forward  out = gelu(x + bias)
//   backward grad_in = grad_out · gelu'(x + bias); grad_bias (may be null) = Σ_rows grad_in, overwritten.
// Forms: cpu.cc, cuda.cu; composed: src/ops/fused/bias-gelu.ts.
#pragma once
#include <cstdint>

namespace andromeda::cpu {
void bias_gelu(int dtype, const char* x, const char* bias, char* out, int64_t rows, int64_t cols);
void bias_gelu_grad(int dtype, const char* x, const char* bias, const char* grad_out, char* grad_in, char* grad_bias,
                    int64_t rows, int64_t cols);
}  // namespace andromeda::cpu

namespace andromeda::cuda {
void bias_gelu(int dtype, const char* x, const char* bias, char* out, int64_t rows, int64_t cols);
void bias_gelu_grad(int dtype, const char* x, const char* bias, const char* grad_out, char* grad_in, char* grad_bias,
                    int64_t rows, int64_t cols);
}  // namespace andromeda::cuda
