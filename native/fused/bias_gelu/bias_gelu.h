// Bias add fused with the exact (erf) GELU over contiguous [rows, cols], bias [cols]:
//   forward  out = gelu(x + bias)
//   backward grad_in = grad_out · gelu'(x + bias); grad_bias (may be null) = Σ_rows grad_in, overwritten.
// Forms: cpu.cc, cuda.cu; composed: src/ops/fused/bias-gelu.ts.
#pragma once
#include <cstdint>
