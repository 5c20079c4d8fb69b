// Bias + exact GELU on the CPU (semantics: bias_gelu.h), the reference for cuda.cu. float32 runs the vectorised
// kernels of simd_kernels.h; the other dtypes compute in float64. The bias gradient is a float64 partial per fixed
// block of rows, added in block order.
#include <cmath>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/fused_rows.h"
#include "../../cpu/simd_kernels.h"
#include "bias_gelu.h"
#include "../../cpu/kernels.h"

namespace andromeda::cpu {
namespace {
inline double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)); }
inline double gelu_grad(double x) {
  const double cdf = 0.5 * (1.0 + std::erf(x * 0.70710678118654752440));
  const double pdf = std::exp(-0.5 * x * x) * 0.39894228040143267794;
  return cdf + x * pdf;
}
}  // namespace

void bias_gelu(int dtype, const char* x, const char* bias, char* out, int64_t rows, int64_t cols) {
  if (DType(dtype) == DType::F32) {
    const F32Ops& vec = f32_ops();
    const float* X = reinterpret_cast<const float*>(x);
    const float* B = reinterpret_cast<const float*>(bias);
    float* O = reinterpret_cast<float*>(out);
    parallel_for(rows, fused_row_grain(cols), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        vec.binary_vv(0, X + i * cols, B, O + i * cols, cols);
        if (!vec.unary(5, O + i * cols, O + i * cols, cols, 0.f))
          for (int64_t j = 0; j < cols; j++) O[i * cols + j] = float(gelu(O[i * cols + j]));
      }
    });
    return;
  }
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    const T* X = reinterpret_cast<const T*>(x);
    const T* B = reinterpret_cast<const T*>(bias);
    T* O = reinterpret_cast<T*>(out);
    parallel_for(rows, fused_row_grain(cols), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++)
        for (int64_t j = 0; j < cols; j++) store(O + i * cols + j, gelu(double(load(X + i * cols + j)) + double(load(B + j))));
    });
  });
}

void bias_gelu_grad(int dtype, const char* x, const char* bias, const char* grad_out, char* grad_in, char* grad_bias,
                    int64_t rows, int64_t cols) {
  if (cols == 0) return;
  if (DType(dtype) == DType::F32) {
    const F32Ops& vec = f32_ops();
    const float* X = reinterpret_cast<const float*>(x);
    const float* B = reinterpret_cast<const float*>(bias);
    const float* GY = reinterpret_cast<const float*>(grad_out);
    float* GX = reinterpret_cast<float*>(grad_in);
    const RowBlocks blocks = row_blocks(rows, cols);
    std::vector<double> partial(size_t(blocks.count) * size_t(cols), 0.0);
    for_each_block(blocks, [&](int64_t t, int64_t begin, int64_t end) {
      std::vector<float> pre(static_cast<size_t>(cols));
      for (int64_t i = begin; i < end; i++) {
        vec.binary_vv(0, X + i * cols, B, pre.data(), cols);
        if (!vec.unary_grad(0, pre.data(), GY + i * cols, GX + i * cols, cols))
          for (int64_t j = 0; j < cols; j++) GX[i * cols + j] = float(double(GY[i * cols + j]) * gelu_grad(pre[j]));
        if (grad_bias) vec.accumulate_f64(partial.data() + size_t(t) * size_t(cols), GX + i * cols, cols);
      }
    });
    if (grad_bias) sum_block_partials(partial.data(), blocks.count, size_t(cols), cols, reinterpret_cast<float*>(grad_bias));
    return;
  }
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    const T* X = reinterpret_cast<const T*>(x);
    const T* B = reinterpret_cast<const T*>(bias);
    const T* GY = reinterpret_cast<const T*>(grad_out);
    T* GX = reinterpret_cast<T*>(grad_in);
    const RowBlocks blocks = row_blocks(rows, cols);
    std::vector<double> partial(size_t(blocks.count) * size_t(cols), 0.0);
    for_each_block(blocks, [&](int64_t t, int64_t begin, int64_t end) {
      double* p = partial.data() + size_t(t) * size_t(cols);
      for (int64_t i = begin; i < end; i++)
        for (int64_t j = 0; j < cols; j++) {
          const int64_t e = i * cols + j;
          const double g = double(load(GY + e)) * gelu_grad(double(load(X + e)) + double(load(B + j)));
          store(GX + e, g);
          p[j] += g;
        }
    });
    if (grad_bias) sum_block_partials(partial.data(), blocks.count, size_t(cols), cols, reinterpret_cast<T*>(grad_bias));
  });
}

}  // namespace andromeda::cpu
