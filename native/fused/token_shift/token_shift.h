// Token shift (spec "Token shift") over contiguous [batch, n, dim]: feature chunk k of chunk = dim / (shifts + 1)
// features (k = 0 … shifts) at position t comes from position t − k; zero before the start, or where `segments`
// (int32 [batch, n] document ids, or null) differ between t and t − k. Features past the last chunk pass through.
// backward moves each chunk's gradient the other way (gx[t] of chunk k = g[t + k], zero past the end or across
// a document boundary); accumulate adds the result into what `out` holds instead of overwriting it.
// x and out must not overlap. Float dtypes.
// Forms: cpu.cc, cuda.cu; composed: src/ops/fused/token-shift.ts.
#pragma once
#include <cstdint>
