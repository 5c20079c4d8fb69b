// Fused bandwidth kernels of the CPU engine, the reference for the CUDA ones (native/cuda/add_norm.cu,
// bias_gelu.cu): residual add + layer/RMS norm and bias + GELU, forward and backward. float32 runs the
// vectorised row kernels of simd_kernels.h on the residual sum (as the unfused ops would); the other
// dtypes compute in float64. Column sums (parameter gradients) are float64 partials per block of rows
// (reduction_blocks: a count set by the problem size, not the thread count) added in block order, so
// results do not depend on the number of threads or on scheduling.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "../common/dtype.h"
#include "fused.h"
#include "parallel.h"
#include "simd_kernels.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per task
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1)); }
template <typename T> using Stat = std::conditional_t<std::is_same<T, double>::value, double, float>;

/** out[j] = Σ_t partial[t · stride + j] over the blocks' partial rows of column sums, in block order. */
template <typename T>
void sum_block_partials(const double* partial, int64_t blocks, size_t stride, int64_t cols, T* out) {
  for (int64_t j = 0; j < cols; j++) {
    double total = 0;
    for (int64_t t = 0; t < blocks; t++) total += partial[size_t(t) * stride + size_t(j)];
    store(out + j, total);
  }
}

template <typename T>
struct Residual {
  const T* a;
  const T* b;
  const T* scale;
  double c;
  int64_t cols;
};

template <typename T>
Residual<T> residual_of(const AddNormArgs& a) {
  return {reinterpret_cast<const T*>(a.a), reinterpret_cast<const T*>(a.b), reinterpret_cast<const T*>(a.scale), a.c, a.cols};
}

/** s = a + b · (scale · c) for one row in A (double, or float for float32), rounded to T when `round`. */
template <typename T, typename A>
void residual_row(const Residual<T>& r, int64_t row, bool round, A* s) {
  for (int64_t j = 0; j < r.cols; j++) {
    A v = A(load(r.a + row + j));
    if (r.b) {
      const A f = r.scale ? A(load(r.scale + j)) * A(r.c) : A(r.c);
      v += A(load(r.b + row + j)) * f;
    }
    if (round) {
      T t;
      store(&t, v);
      v = A(load(&t));
    }
    s[j] = v;
  }
}

void add_norm_f32(const AddNormArgs& a, float* out, float* sum, float* stats) {
  const Residual<float> r = residual_of<float>(a);
  const F32Ops& vec = f32_ops();
  const int64_t cols = a.cols;
  parallel_for(a.rows, row_grain(cols), [&](int64_t begin, int64_t end) {
    std::vector<float> s(static_cast<size_t>(cols));
    for (int64_t i = begin; i < end; i++) {
      float* si = sum ? sum + i * cols : s.data();
      residual_row(r, i * cols, false, si);
      vec.norm_row(si, reinterpret_cast<const float*>(a.weight), reinterpret_cast<const float*>(a.bias), out + i * cols,
                   cols, float(a.eps), a.rms, stats + 2 * i, stats + 2 * i + 1);
    }
  });
}

void add_norm_grad_f32(const AddNormArgs& a, const float* stats, const float* gy, float* ga, float* gb, float* gscale,
                       float* gw, float* gbias) {
  const Residual<float> r = residual_of<float>(a);
  const F32Ops& vec = f32_ops();
  const int64_t cols = a.cols, rows = a.rows;
  const int64_t blocks = reduction_blocks(rows, rows * cols);
  std::vector<double> partial(size_t(blocks) * 3 * size_t(cols), 0.0);
  parallel_tasks(blocks, [&](int64_t t, int) {
    const int64_t begin = rows * t / blocks, end = rows * (t + 1) / blocks;
    double* pw = partial.data() + size_t(t) * 3 * size_t(cols);
    double* pb = pw + cols;
    double* ps = pb + cols;
    // float accumulators over blocks of 32 rows, flushed into the float64 partials (as the norm backward does).
    std::vector<float> s(static_cast<size_t>(cols)), acc(size_t(cols) * 3);
    float* aw = acc.data();
    float* ab = aw + cols;
    float* as = ab + cols;
    for (int64_t r0 = begin; r0 < end; r0 += 32) {
      std::fill(acc.begin(), acc.end(), 0.f);
      const int64_t r1 = std::min(end, r0 + 32);
      for (int64_t i = r0; i < r1; i++) {
        const int64_t row = i * cols;
        residual_row(r, row, false, s.data());
        vec.norm_grad_row(s.data(), reinterpret_cast<const float*>(a.weight), gy + row, ga + row, gw ? aw : nullptr,
                          gbias ? ab : nullptr, cols, stats[2 * i], stats[2 * i + 1], a.rms);
        if (!gb && !gscale) continue;
        for (int64_t j = 0; j < cols; j++) {
          const float f = r.scale ? r.scale[j] * float(r.c) : float(r.c);
          if (gb) gb[row + j] = ga[row + j] * f;
          if (gscale) as[j] += ga[row + j] * r.b[row + j] * float(r.c);
        }
      }
      if (gw) vec.accumulate_f64(pw, aw, cols);
      if (gbias) vec.accumulate_f64(pb, ab, cols);
      if (gscale) vec.accumulate_f64(ps, as, cols);
    }
  });
  float* outs[3] = {gw, gbias, gscale};
  for (int q = 0; q < 3; q++)
    if (outs[q]) sum_block_partials(partial.data() + size_t(q) * size_t(cols), blocks, 3 * size_t(cols), cols, outs[q]);
}

}  // namespace

void add_norm(const AddNormArgs& a, char* out_raw, char* sum_raw, char* stats_raw) {
  if (a.rows == 0 || a.cols == 0) return;
  if (DType(a.dtype) == DType::F32) {
    add_norm_f32(a, reinterpret_cast<float*>(out_raw), reinterpret_cast<float*>(sum_raw), reinterpret_cast<float*>(stats_raw));
    return;
  }
  ANDROMEDA_DISPATCH_FLOAT(a.dtype, {
    const Residual<T> r = residual_of<T>(a);
    const T* W = reinterpret_cast<const T*>(a.weight);
    const T* B = reinterpret_cast<const T*>(a.bias);
    T* out = reinterpret_cast<T*>(out_raw);
    T* sum = reinterpret_cast<T*>(sum_raw);
    Stat<T>* stats = reinterpret_cast<Stat<T>*>(stats_raw);
    const int64_t cols = a.cols;
    parallel_for(a.rows, row_grain(cols), [&](int64_t begin, int64_t end) {
      std::vector<double> s(static_cast<size_t>(cols));
      for (int64_t i = begin; i < end; i++) {
        const int64_t row = i * cols;
        residual_row<T, double>(r, row, sum != nullptr, s.data());
        double mean = 0;
        if (!a.rms) {
          for (int64_t j = 0; j < cols; j++) mean += s[j];
          mean /= double(cols);
        }
        double var = 0;
        for (int64_t j = 0; j < cols; j++) var += (s[j] - mean) * (s[j] - mean);
        const double rstd = 1.0 / std::sqrt(var / double(cols) + a.eps);
        stats[2 * i] = Stat<T>(mean);
        stats[2 * i + 1] = Stat<T>(rstd);
        for (int64_t j = 0; j < cols; j++) {
          if (sum) store(sum + row + j, s[j]);
          double v = (s[j] - mean) * rstd;
          if (W) v *= double(load(W + j));
          if (B) v += double(load(B + j));
          store(out + row + j, v);
        }
      }
    });
  });
}

void add_norm_grad(const AddNormArgs& a, const char* stats_raw, const char* grad_out, char* grad_a, char* grad_b,
                   char* grad_scale, char* grad_weight, char* grad_bias) {
  if (a.cols == 0) return;
  if (grad_scale && (!a.scale || !a.b)) throw std::invalid_argument("addNormGrad: a scale gradient needs b and a scale");
  if (DType(a.dtype) == DType::F32) {
    add_norm_grad_f32(a, reinterpret_cast<const float*>(stats_raw), reinterpret_cast<const float*>(grad_out),
                      reinterpret_cast<float*>(grad_a), reinterpret_cast<float*>(grad_b), reinterpret_cast<float*>(grad_scale),
                      reinterpret_cast<float*>(grad_weight), reinterpret_cast<float*>(grad_bias));
    return;
  }
  ANDROMEDA_DISPATCH_FLOAT(a.dtype, {
    const Residual<T> r = residual_of<T>(a);
    const T* W = reinterpret_cast<const T*>(a.weight);
    const Stat<T>* stats = reinterpret_cast<const Stat<T>*>(stats_raw);
    const T* GY = reinterpret_cast<const T*>(grad_out);
    T* GA = reinterpret_cast<T*>(grad_a);
    T* GB = reinterpret_cast<T*>(grad_b);
    const int64_t cols = a.cols, rows = a.rows;
    const int64_t blocks = reduction_blocks(rows, rows * cols);
    // Per block: column partials of Σ gy·x̂ (weight), Σ gy (bias), Σ ∂s·b·c (scale).
    std::vector<double> partial(size_t(blocks) * 3 * size_t(cols), 0.0);
    parallel_tasks(blocks, [&](int64_t t, int) {
      const int64_t begin = rows * t / blocks, end = rows * (t + 1) / blocks;
      double* pw = partial.data() + size_t(t) * 3 * size_t(cols);
      double* pb = pw + cols;
      double* ps = pb + cols;
      std::vector<double> s(static_cast<size_t>(cols)), xhat(static_cast<size_t>(cols)), g(static_cast<size_t>(cols));
      for (int64_t i = begin; i < end; i++) {
        const int64_t row = i * cols;
        residual_row<T, double>(r, row, false, s.data());
        const double mean = double(stats[2 * i]), rstd = double(stats[2 * i + 1]);
        double sum_g = 0, sum_gx = 0;
        for (int64_t j = 0; j < cols; j++) {
          const double gy = double(load(GY + row + j));
          xhat[j] = (s[j] - mean) * rstd;
          g[j] = W ? gy * double(load(W + j)) : gy;
          pw[j] += gy * xhat[j];
          pb[j] += gy;
          sum_g += g[j];
          sum_gx += g[j] * xhat[j];
        }
        sum_g /= double(cols);
        sum_gx /= double(cols);
        for (int64_t j = 0; j < cols; j++) {
          const double gs = a.rms ? rstd * (g[j] - xhat[j] * sum_gx) : rstd * (g[j] - sum_g - xhat[j] * sum_gx);
          store(GA + row + j, gs);
          const double f = r.scale ? double(load(r.scale + j)) * r.c : r.c;
          if (GB) store(GB + row + j, gs * f);
          if (grad_scale) ps[j] += gs * double(load(r.b + row + j)) * r.c;
        }
      }
    });
    T* outs[3] = {reinterpret_cast<T*>(grad_weight), reinterpret_cast<T*>(grad_bias), reinterpret_cast<T*>(grad_scale)};
    for (int q = 0; q < 3; q++)
      if (outs[q]) sum_block_partials(partial.data() + size_t(q) * size_t(cols), blocks, 3 * size_t(cols), cols, outs[q]);
  });
}

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
    parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
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
    parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
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
    const int64_t blocks = reduction_blocks(rows, rows * cols);
    std::vector<double> partial(size_t(blocks) * size_t(cols), 0.0);
    parallel_tasks(blocks, [&](int64_t t, int) {
      const int64_t begin = rows * t / blocks, end = rows * (t + 1) / blocks;
      std::vector<float> pre(static_cast<size_t>(cols));
      for (int64_t i = begin; i < end; i++) {
        vec.binary_vv(0, X + i * cols, B, pre.data(), cols);
        if (!vec.unary_grad(0, pre.data(), GY + i * cols, GX + i * cols, cols))
          for (int64_t j = 0; j < cols; j++) GX[i * cols + j] = float(double(GY[i * cols + j]) * gelu_grad(pre[j]));
        if (grad_bias) vec.accumulate_f64(partial.data() + size_t(t) * size_t(cols), GX + i * cols, cols);
      }
    });
    if (grad_bias) sum_block_partials(partial.data(), blocks, size_t(cols), cols, reinterpret_cast<float*>(grad_bias));
    return;
  }
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    const T* X = reinterpret_cast<const T*>(x);
    const T* B = reinterpret_cast<const T*>(bias);
    const T* GY = reinterpret_cast<const T*>(grad_out);
    T* GX = reinterpret_cast<T*>(grad_in);
    const int64_t blocks = reduction_blocks(rows, rows * cols);
    std::vector<double> partial(size_t(blocks) * size_t(cols), 0.0);
    parallel_tasks(blocks, [&](int64_t t, int) {
      const int64_t begin = rows * t / blocks, end = rows * (t + 1) / blocks;
      double* p = partial.data() + size_t(t) * size_t(cols);
      for (int64_t i = begin; i < end; i++)
        for (int64_t j = 0; j < cols; j++) {
          const int64_t e = i * cols + j;
          const double g = double(load(GY + e)) * gelu_grad(double(load(X + e)) + double(load(B + j)));
          store(GX + e, g);
          p[j] += g;
        }
    });
    if (grad_bias) sum_block_partials(partial.data(), blocks, size_t(cols), cols, reinterpret_cast<T*>(grad_bias));
  });
}

}  // namespace andromeda::cpu
