// Vectorised float32 kernels of the bandwidth-bound operations, compiled three times (AVX-512,
// AVX2+FMA, portable) in simd_kernels.cc and chosen at run time (simd.h). Each works on one
// contiguous range; the callers in elementwise.cc / nn.cc / reduce.cc split work across threads.
#pragma once
#include <cstdint>

namespace andromeda::cpu {

struct AdamWConsts {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
};

struct F32Ops {
  const char* isa;
  // out[i] = a[i] op b[i] for op 0..3 = add, sub, mul, div; _vs: b is one value, _sv: a is one value.
  void (*binary_vv)(int op, const float* a, const float* b, float* out, int64_t n);
  void (*binary_vs)(int op, const float* a, float b, float* out, int64_t n);
  void (*binary_sv)(int op, float a, const float* b, float* out, int64_t n);
  // Unary op codes of kernels.h; returns false (writing nothing) for ops without a vector version.
  bool (*unary)(int op, const float* x, float* out, int64_t n, float scalar);
  // gx = gy · f'(x) for unary_grad op codes; false when not vectorised.
  bool (*unary_grad)(int op, const float* x, const float* gy, float* gx, int64_t n);
  void (*softmax_row)(const float* x, float* y, int64_t n, bool log);
  void (*softmax_grad_row)(const float* y, const float* gy, float* gx, int64_t n, bool log);
  // Layer norm (rms = false) or RMS norm of one row; writes mean (0 for RMS) and rstd.
  void (*norm_row)(const float* x, const float* w, const float* b, float* y, int64_t n, float eps, bool rms,
                   float* mean, float* rstd);
  // One row of the norm backward: writes gx, adds g·x̂ into gw_acc and g into gb_acc (when non-null).
  void (*norm_grad_row)(const float* x, const float* w, const float* gy, float* gx, float* gw_acc, float* gb_acc,
                        int64_t n, float mean, float rstd, bool rms);
  // log Σ exp(x) over a row (max-shifted).
  float (*logsumexp_row)(const float* x, int64_t n);
  // g[j] = scale · (exp(x[j] − lse) − [j == target]).
  void (*ce_grad_row)(const float* x, float* g, int64_t n, float lse, float scale, int64_t target);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, const AdamWConsts& c);
  // Σ x² and Σ x accumulated in float64 (float lanes over short blocks).
  double (*sum_squares)(const float* x, int64_t n);
  double (*sum)(const float* x, int64_t n);
  // acc[j] += x[j] (float64 accumulators), for column sums.
  void (*accumulate_f64)(double* acc, const float* x, int64_t n);
  // dst[c·ds + r] = src[r·ss + c] for r < rows, c < cols (8 × 8 register transposes).
  void (*transpose)(const float* src, int64_t ss, float* dst, int64_t ds, int64_t rows, int64_t cols);
};

// The kernels for the instruction set in use now.
const F32Ops& f32_ops();

}  // namespace andromeda::cpu
