// qk-norm on the attention's head layout, fused with the permute the attention needs:
//   y[b, h, t, :] = x[b, t, h, :] · r · g[h, :],   r = 1 / sqrt(‖x[b, t, h, :]‖² + eps²)
// x [batch, n, heads, dim] and y [batch, heads, n, dim] contiguous, g [heads, dim] or null; rstd [batch·n, heads]
// keeps r in the norms' statistics dtype (float64 for float64, else float32), and the backward pass reads it:
//   gx = r · (gg − x · r² · (gg · x)) with gg = gy ⊙ g,   grad_g[h, :] = Σ_{b,t} gy ⊙ x · r (overwritten; null: not wanted)
// Float dtypes; the CUDA form takes head dims up to 256 (a warp keeps a row in registers).
// Forms: cpu.cc, cuda.cu; composed: src/ops/fused/head-norm.ts.
#pragma once
#include <cstdint>

namespace andromeda {

struct HeadNormArgs {
  int dtype;
  int64_t batch, n, heads, dim;
  double eps;
};

}  // namespace andromeda
