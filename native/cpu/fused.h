// Fused bandwidth kernels of the CPU engine (fused.cc); semantics as in native/cuda/engine.h.
#pragma once
#include <cstdint>

#include "../common/add_norm_args.h"

namespace andromeda::cpu {

/** stats as in `norm`; `sum` (may be null) receives s rounded to the dtype, and out is then the norm of that. */
void add_norm(const AddNormArgs& args, char* out, char* sum, char* stats);
/** grad_a = ∂L/∂s; grad_b = grad_a · scale · c; grad_scale, grad_weight, grad_bias: sums over rows
 *  (overwritten). Every output but grad_a may be null. s is recomputed from a and b. */
void add_norm_grad(const AddNormArgs& args, const char* stats, const char* grad_out, char* grad_a, char* grad_b,
                   char* grad_scale, char* grad_weight, char* grad_bias);
/** out = gelu(x + bias) over contiguous [rows, cols], bias [cols] (exact erf GELU). */
void bias_gelu(int dtype, const char* x, const char* bias, char* out, int64_t rows, int64_t cols);
/** grad_in = grad_out · gelu'(x + bias); grad_bias (may be null) = Σ_rows grad_in, overwritten. */
void bias_gelu_grad(int dtype, const char* x, const char* bias, const char* grad_out, char* grad_in, char* grad_bias,
                    int64_t rows, int64_t cols);

}  // namespace andromeda::cpu
