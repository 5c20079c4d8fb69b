// Residual add + layer/RMS norm on the CPU (semantics: add_norm.h), the reference for cuda.cu. float32 runs the
// vectorised row kernels of simd_kernels.h on the residual sum (as the unfused ops would); the other dtypes compute
// in float64. Column sums (parameter gradients) are float64 partials per fixed block of rows, added in block order.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/fused_rows.h"
#include "../../cpu/simd_kernels.h"
#include "add_norm.h"
#include "../../cpu/kernels.h"

namespace andromeda::cpu {
namespace {

template <typename T> using Stat = std::conditional_t<std::is_same<T, double>::value, double, float>;

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
  parallel_for(a.rows, fused_row_grain(cols), [&](int64_t begin, int64_t end) {
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
  const RowBlocks blocks = row_blocks(rows, cols);
  std::vector<double> partial(size_t(blocks.count) * 3 * size_t(cols), 0.0);
  for_each_block(blocks, [&](int64_t t, int64_t begin, int64_t end) {
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
    if (outs[q]) sum_block_partials(partial.data() + size_t(q) * size_t(cols), blocks.count, 3 * size_t(cols), cols, outs[q]);
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
    parallel_for(a.rows, fused_row_grain(cols), [&](int64_t begin, int64_t end) {
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
    const RowBlocks blocks = row_blocks(rows, cols);
    // Per block: column partials of Σ gy·x̂ (weight), Σ gy (bias), Σ ∂s·b·c (scale).
    std::vector<double> partial(size_t(blocks.count) * 3 * size_t(cols), 0.0);
    for_each_block(blocks, [&](int64_t t, int64_t begin, int64_t end) {
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
      if (outs[q]) sum_block_partials(partial.data() + size_t(q) * size_t(cols), blocks.count, 3 * size_t(cols), cols, outs[q]);
  });
}

// The CPU gains nothing from one pass (no launches to save): the two ops in order, which is the semantics.
void add_norm_shift(const AddNormArgs& a, char* out, char* sum, char* stats, char* tails, char* shifted, int shifts,
                    int64_t ring, const PagedBatch& batch) {
  add_norm(a, out, sum, stats);
  paged_token_shift_and_tail_write(a.dtype, out, tails, shifted, a.cols, shifts, ring, batch);
}

}  // namespace andromeda::cpu
