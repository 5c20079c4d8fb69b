// qk-norm on the attention's head layout, fused with the permute the attention needs:
//   y[b, h, t, :] = x[b, t, h, :] · r · g[h, :],   r = 1 / sqrt(‖x[b, t, h, :]‖² + eps²)
// x [batch, n, heads, dim] and y [batch, heads, n, dim] contiguous, g [heads, dim] or null; rstd [batch·n, heads]
// keeps r in the norms' statistics dtype (float64 for float64, else float32), and the backward pass reads it:
//   gx = r · (gg − x · r² · (gg · x)) with gg = gy ⊙ g,   grad_g[h, :] = Σ_{b,t} gy ⊙ x · r (overwritten; null: not wanted)
// Float dtypes; the CUDA form takes head dims up to 256 (a warp keeps a row in registers).
// Forms: cpu.cc, cuda.cu; composed: src/ops/fused/head-norm.ts.
//
// head_norm_rows, the same forward for a paged step's attention inputs (no permute: n = 1), several tensors in one
// launch: item i moves `count` rows of `heads` head rows of `dim` elements from x [count, heads, dim] into y
// [rows, heads, dim] — row index[r] of y, or row r without an index — head-normed (scaled by weight [heads, dim]
// when given) when `normalize`, else copied. So a decode step's query norm, key norm + scatter into the key pool and
// value scatter are one kernel. Index values outside [0, rows) skip their row (a step's slots are device data,
// never read on the host). No statistics are kept (inference); every item has the first one's dtype. A normed row
// has head_norm's bits. Composed: src/ops/paged.ts writeHeadRows.
#pragma once
#include <cstdint>

namespace andromeda {

struct HeadNormArgs {
  int dtype;
  int64_t batch, n, heads, dim;
  double eps;
};

struct HeadNormRowsItem {
  int dtype;
  int64_t count, heads, dim, rows;
  bool normalize;
  const char* x;
  const char* weight;     // or null
  const int32_t* index;   // or null: row r → row r (rows ≥ count)
  char* y;
};

}  // namespace andromeda
