// qk-norm with the head permute on the CPU (semantics: head_norm.h). A row's squared norm and dot products are
// summed in float64 by one thread; the forward computes in float64 from r rounded to the statistics dtype, so the
// backward, which reads r back, sees the same r. grad_g is summed per fixed block of positions and then over the
// blocks in order: the same bits for any thread count. Any head dim.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/fused_rows.h"
#include "head_norm.h"
#include "../../cpu/kernels.h"

namespace andromeda::cpu {
namespace {

template <typename T> using Stat = std::conditional_t<std::is_same<T, double>::value, double, float>;

struct Layout {
  int64_t batch, n, heads, dim;
  int64_t in_row(int64_t position, int64_t head) const { return (position * heads + head) * dim; }
  int64_t out_row(int64_t position, int64_t head) const {
    const int64_t b = position / n, t = position - b * n;
    return ((b * heads + head) * n + t) * dim;
  }
};

Layout layout_of(const HeadNormArgs& a) {
  if (a.batch < 0 || a.n < 0 || a.heads <= 0 || a.dim <= 0) {
    throw std::invalid_argument("headNorm: batch and n must be ≥ 0, heads and head dim ≥ 1");
  }
  return {a.batch, a.n, a.heads, a.dim};
}

constexpr int64_t kPositionsPerBlock = 64;

/**
 * yr = xr · r · g (g: the head's scale row, or null: ones) over `dim` elements, r = 1 / sqrt(‖xr‖² + eps²) summed and
 * applied in float64 after rounding to the statistics dtype (what the backward reads back); returns that r.
 */
template <typename T>
Stat<T> norm_row(const T* xr, const T* g, T* yr, int64_t dim, double eps2) {
  double ss = 0;
  for (int64_t j = 0; j < dim; j++) {
    const double v = double(load(xr + j));
    ss += v * v;
  }
  const Stat<T> stored = Stat<T>(1.0 / std::sqrt(ss + eps2));
  const double inv = double(stored);
  for (int64_t j = 0; j < dim; j++) {
    const double scale = g ? double(load(g + j)) : 1.0;
    store(yr + j, double(load(xr + j)) * inv * scale);
  }
  return stored;
}

template <typename T>
void forward(const HeadNormArgs& a, const T* x, const T* g, T* y, Stat<T>* rstd) {
  const Layout l = layout_of(a);
  const double eps2 = a.eps * a.eps;
  parallel_for(l.batch * l.n * l.heads, fused_row_grain(l.dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t p = r / l.heads, h = r - p * l.heads;
      rstd[r] = norm_row(x + l.in_row(p, h), g ? g + h * l.dim : nullptr, y + l.out_row(p, h), l.dim, eps2);
    }
  });
}

template <typename T>
void backward(const HeadNormArgs& a, const T* x, const T* g, const Stat<T>* rstd, const T* gy, T* gx, T* grad_g) {
  const Layout l = layout_of(a);
  const int64_t positions = l.batch * l.n, width = l.heads * l.dim;
  const int64_t blocks = (positions + kPositionsPerBlock - 1) / kPositionsPerBlock;
  std::vector<double> partial(grad_g ? size_t(blocks) * size_t(width) : 0, 0.0);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> gg(size_t(l.dim));
    for (int64_t block = b0; block < b1; block++) {
      double* pg = grad_g ? partial.data() + size_t(block) * size_t(width) : nullptr;
      const int64_t p1 = std::min(positions, (block + 1) * kPositionsPerBlock);
      for (int64_t p = block * kPositionsPerBlock; p < p1; p++)
        for (int64_t h = 0; h < l.heads; h++) {
          const double r = double(rstd[p * l.heads + h]);
          const T* xr = x + l.in_row(p, h);
          const T* gyr = gy + l.out_row(p, h);
          T* gxr = gx + l.in_row(p, h);
          double dot = 0;
          for (int64_t j = 0; j < l.dim; j++) {
            const double v = double(load(xr + j)), go = double(load(gyr + j));
            gg[j] = g ? go * double(load(g + h * l.dim + j)) : go;
            dot += gg[j] * v;
            if (pg) pg[h * l.dim + j] += go * v * r;
          }
          dot *= r * r;
          for (int64_t j = 0; j < l.dim; j++) store(gxr + j, r * (gg[j] - double(load(xr + j)) * dot));
        }
    }
  });
  if (grad_g) sum_block_partials(partial.data(), blocks, size_t(width), width, grad_g);
}

/** Item `it`'s row r, head h: normed as `forward` norms a row (norm_row: the same bits), or copied. */
template <typename T>
void head_rows(const HeadNormRowsItem& it, double eps2, int64_t r, int64_t h) {
  const int64_t target = it.index ? int64_t(it.index[r]) : r;
  if (target < 0 || target >= (it.index ? it.rows : it.count)) return;
  const T* xr = reinterpret_cast<const T*>(it.x) + (r * it.heads + h) * it.dim;
  T* yr = reinterpret_cast<T*>(it.y) + (target * it.heads + h) * it.dim;
  if (!it.normalize) {
    for (int64_t j = 0; j < it.dim; j++) yr[j] = xr[j];
    return;
  }
  const T* g = reinterpret_cast<const T*>(it.weight);
  norm_row(xr, g ? g + h * it.dim : nullptr, yr, it.dim, eps2);
}

}  // namespace

void head_norm(const HeadNormArgs& a, const char* x, const char* g, char* y, char* rstd) {
  ANDROMEDA_DISPATCH_FLOAT(a.dtype, {
    forward<T>(a, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(g), reinterpret_cast<T*>(y),
               reinterpret_cast<Stat<T>*>(rstd));
  });
}

void head_norm_grad(const HeadNormArgs& a, const char* x, const char* g, const char* rstd, const char* gy, char* gx,
                    char* grad_g) {
  ANDROMEDA_DISPATCH_FLOAT(a.dtype, {
    backward<T>(a, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(g), reinterpret_cast<const Stat<T>*>(rstd),
                reinterpret_cast<const T*>(gy), reinterpret_cast<T*>(gx), reinterpret_cast<T*>(grad_g));
  });
}

void head_norm_rows(const HeadNormRowsItem* items, size_t n, double eps) {
  if (n == 0) return;
  for (size_t i = 0; i < n; i++)
    if (items[i].dtype != items[0].dtype) throw std::invalid_argument("headNormRows: every item must have one dtype");
  // Rows of all items laid end to end: (item, row, head) from one flat index, a fixed amount of work each.
  std::vector<int64_t> ends(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) ends[i] = total += items[i].count * items[i].heads;
  int64_t widest = 1;
  for (size_t i = 0; i < n; i++) widest = std::max(widest, items[i].dim);
  const double eps2 = eps * eps;
  ANDROMEDA_DISPATCH_FLOAT(items[0].dtype, {
    parallel_for(total, fused_row_grain(widest), [&](int64_t begin, int64_t end) {
      size_t i = 0;
      for (int64_t f = begin; f < end; f++) {
        while (f >= ends[i]) i++;
        const HeadNormRowsItem& it = items[i];
        const int64_t local = f - (ends[i] - it.count * it.heads);
        head_rows<T>(it, eps2, local / it.heads, local % it.heads);
      }
    });
  });
}

}  // namespace andromeda::cpu
