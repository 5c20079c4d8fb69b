// Residual add fused with a layer or RMS norm over the last axis of contiguous [rows, cols]:
//   s = a + b · (scale · c),   out = norm(s) · weight + bias   (AddNormArgs; b, scale, weight, bias optional).
// stats [rows, 2] receive (mean, rstd) as the plain norm's do (float64 for float64, else float32). With `sum`,
// s is stored rounded to the dtype and out is the norm of that rounded s (pre-norm blocks keep s as their
// residual stream); without it s is never stored, and the backward pass recomputes it from a and b.
// Backward: grad_a = ∂L/∂s; grad_b = grad_a · scale · c; grad_scale, grad_weight, grad_bias are sums over
// rows (overwritten). Every output but grad_a may be null.
// add_norm_shift: add_norm, then its output through a decode step's token shift and into the tail pool
// (paged_token_shift_and_tail_write of out) — one pass on CUDA, the two kernels in order on the CPU.
// Forms: cpu.cc (the reference), cuda.cu; composed: src/ops/fused/add-norm.ts, src/ops/paged.ts.
#pragma once
#include "../../common/add_norm_args.h"
