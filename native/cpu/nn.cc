// Row-wise neural-network kernels: softmax, layer/RMS norm, cross-entropy, embedding, dropout, AdamW.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <limits>
#include <stdexcept>
#include <algorithm>
#include <vector>

#include "../common/dtype.h"
#include "../fused/adamw/clip.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_kernels.h"

namespace andromeda::cpu {
namespace {
constexpr int64_t kRowGrain = 1 << 14;  // elements per task
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kRowGrain / std::max<int64_t>(cols, 1)); }
// Per-row statistics (norm mean/rstd, cross-entropy loss/lse) are float64 for float64 tensors, else float32.
template <typename T> using Stat = std::conditional_t<std::is_same<T, double>::value, double, float>;

// Scratch memory kept per thread between calls (no allocation per call in steady state).
template <typename C>
C* scratch(int slot, size_t count) {
  static thread_local std::vector<C> bufs[2];
  std::vector<C>& b = bufs[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}
}  // namespace

void softmax(int dtype, const char* x, char* out, int64_t rows, int64_t cols, bool log) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const T* in = reinterpret_cast<const T*>(x);
    T* o = reinterpret_cast<T*>(out);
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++)
          vec.softmax_row(reinterpret_cast<const float*>(in + r * cols), reinterpret_cast<float*>(o + r * cols), cols, log);
      });
      return;
    }
    parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
      C* buf = scratch<C>(0, size_t(cols));
      for (int64_t r = begin; r < end; r++) {
        const T* xr = in + r * cols;
        T* yr = o + r * cols;
        C mx = -std::numeric_limits<C>::infinity();
        for (int64_t j = 0; j < cols; j++) { buf[j] = load(xr + j); mx = std::max(mx, buf[j]); }
        if (mx == -std::numeric_limits<C>::infinity()) mx = 0;  // fully masked row: no NaN from inf − inf
        C sum = 0;
        for (int64_t j = 0; j < cols; j++) sum += std::exp(buf[j] - mx);
        if (log) {
          const C lse = mx + std::log(sum);
          for (int64_t j = 0; j < cols; j++) store(yr + j, buf[j] - lse);
        } else {
          const C inv = sum > 0 ? C(1) / sum : C(0);
          for (int64_t j = 0; j < cols; j++) store(yr + j, std::exp(buf[j] - mx) * inv);
        }
      }
    });
  });
}

void softmax_grad(int dtype, const char* y, const char* grad_out, char* grad_in, int64_t rows, int64_t cols, bool log) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const T* Y = reinterpret_cast<const T*>(y);
    const T* G = reinterpret_cast<const T*>(grad_out);
    T* GX = reinterpret_cast<T*>(grad_in);
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++)
          vec.softmax_grad_row(reinterpret_cast<const float*>(Y + r * cols), reinterpret_cast<const float*>(G + r * cols),
                               reinterpret_cast<float*>(GX + r * cols), cols, log);
      });
      return;
    }
    parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const T* yr = Y + r * cols;
        const T* gr = G + r * cols;
        T* gx = GX + r * cols;
        C dot = 0;
        if (log) {
          for (int64_t j = 0; j < cols; j++) dot += load(gr + j);
          for (int64_t j = 0; j < cols; j++) store(gx + j, load(gr + j) - std::exp(C(load(yr + j))) * dot);
        } else {
          for (int64_t j = 0; j < cols; j++) dot += C(load(gr + j)) * C(load(yr + j));
          for (int64_t j = 0; j < cols; j++) store(gx + j, C(load(yr + j)) * (C(load(gr + j)) - dot));
        }
      }
    });
  });
}

void norm(bool rms, int dtype, const char* x, const char* weight, const char* bias, char* out, char* stats_raw,
          int64_t rows, int64_t cols, double eps) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    Stat<T>* stats = reinterpret_cast<Stat<T>*>(stats_raw);
    const T* X = reinterpret_cast<const T*>(x);
    const T* W = reinterpret_cast<const T*>(weight);
    const T* B = reinterpret_cast<const T*>(bias);
    T* Y = reinterpret_cast<T*>(out);
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      float* st = reinterpret_cast<float*>(stats_raw);
      parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++)
          vec.norm_row(reinterpret_cast<const float*>(X + r * cols), reinterpret_cast<const float*>(W),
                       reinterpret_cast<const float*>(B), reinterpret_cast<float*>(Y + r * cols), cols, float(eps), rms,
                       st + 2 * r, st + 2 * r + 1);
      });
      return;
    }
    parallel_for(rows, row_grain(cols), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const T* xr = X + r * cols;
        T* yr = Y + r * cols;
        double mean = 0;
        if (!rms) {
          for (int64_t j = 0; j < cols; j++) mean += double(load(xr + j));
          mean /= double(cols);
        }
        double var = 0;
        for (int64_t j = 0; j < cols; j++) { const double d = double(load(xr + j)) - mean; var += d * d; }
        var /= double(cols);
        const double rstd = 1.0 / std::sqrt(var + eps);
        stats[2 * r] = Stat<T>(mean);
        stats[2 * r + 1] = Stat<T>(rstd);
        const C m = C(mean), s = C(rstd);
        for (int64_t j = 0; j < cols; j++) {
          C v = (C(load(xr + j)) - m) * s;
          if (W) v *= C(load(W + j));
          if (B) v += C(load(B + j));
          store(yr + j, v);
        }
      }
    });
  });
}

void norm_grad(bool rms, int dtype, const char* x, const char* weight, const char* stats_raw, const char* grad_out,
               char* grad_in, char* grad_weight, char* grad_bias, int64_t rows, int64_t cols) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const Stat<T>* stats = reinterpret_cast<const Stat<T>*>(stats_raw);
    const T* X = reinterpret_cast<const T*>(x);
    const T* W = reinterpret_cast<const T*>(weight);
    const T* G = reinterpret_cast<const T*>(grad_out);
    T* GX = reinterpret_cast<T*>(grad_in);
    const int64_t blocks = reduction_blocks(rows, rows * cols);
    const bool want_gw = grad_weight != nullptr, want_gb = grad_bias != nullptr;
    // Per-block float64 partial sums of the weight/bias gradients, added in block order below.
    double* gw_part = scratch<double>(0, size_t(blocks) * cols * 2);
    double* gb_part = gw_part + size_t(blocks) * cols;
    std::fill(gw_part, gw_part + size_t(blocks) * cols * 2, 0.0);
    parallel_tasks(blocks, [&](int64_t t, int) {
      const int64_t begin = rows * t / blocks, end = rows * (t + 1) / blocks;
      double* gw = gw_part + size_t(t) * cols;
      double* gb = gb_part + size_t(t) * cols;
      if (std::is_same<T, float>::value) {
        // float accumulators over blocks of 32 rows, flushed into the float64 partials.
        const F32Ops& vec = f32_ops();
        float* acc = scratch<float>(1, size_t(cols) * 2);
        float* gwf = acc;
        float* gbf = acc + cols;
        for (int64_t r0 = begin; r0 < end; r0 += 32) {
          std::fill(acc, acc + 2 * cols, 0.f);
          const int64_t r1 = std::min(end, r0 + 32);
          for (int64_t r = r0; r < r1; r++)
            vec.norm_grad_row(reinterpret_cast<const float*>(X + r * cols), reinterpret_cast<const float*>(W),
                              reinterpret_cast<const float*>(G + r * cols), reinterpret_cast<float*>(GX + r * cols),
                              want_gw ? gwf : nullptr, want_gb ? gbf : nullptr, cols, float(stats[2 * r]),
                              float(stats[2 * r + 1]), rms);
          if (want_gw) vec.accumulate_f64(gw, gwf, cols);
          if (want_gb) vec.accumulate_f64(gb, gbf, cols);
        }
        return;
      }
      double* xhat = scratch<double>(1, size_t(cols) * 2);
      double* gxhat = xhat + cols;
      for (int64_t r = begin; r < end; r++) {
        const T* xr = X + r * cols;
        const T* gr = G + r * cols;
        const double mean = stats[2 * r], rstd = stats[2 * r + 1];
        double sum_g = 0, sum_gx = 0;
        for (int64_t j = 0; j < cols; j++) {
          const double g = double(load(gr + j));
          xhat[j] = (double(load(xr + j)) - mean) * rstd;
          gxhat[j] = W ? g * double(load(W + j)) : g;
          gw[j] += g * xhat[j];
          gb[j] += g;
          sum_g += gxhat[j];
          sum_gx += gxhat[j] * xhat[j];
        }
        const double n = double(cols);
        for (int64_t j = 0; j < cols; j++) {
          const double v = rms ? rstd * (gxhat[j] - xhat[j] * sum_gx / n)
                               : rstd * (gxhat[j] - sum_g / n - xhat[j] * sum_gx / n);
          store(GX + r * cols + j, C(v));
        }
      }
    });
    if (grad_weight || grad_bias) {
      T* GW = reinterpret_cast<T*>(grad_weight);
      T* GB = reinterpret_cast<T*>(grad_bias);
      for (int64_t j = 0; j < cols; j++) {
        double sw = 0, sb = 0;
        for (int64_t t = 0; t < blocks; t++) { sw += gw_part[size_t(t) * cols + j]; sb += gb_part[size_t(t) * cols + j]; }
        if (GW) store(GW + j, C(sw));
        if (GB) store(GB + j, C(sb));
      }
    }
  });
}

void cross_entropy(int dtype, const char* logits, const int32_t* targets, char* losses_raw, char* lse_raw, int64_t rows,
                   int64_t vocab, int64_t ignore_index) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    Stat<T>* losses = reinterpret_cast<Stat<T>*>(losses_raw);
    Stat<T>* lse = reinterpret_cast<Stat<T>*>(lse_raw);
    const T* L = reinterpret_cast<const T*>(logits);
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      parallel_for(rows, row_grain(vocab), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++) {
          const float* lr = reinterpret_cast<const float*>(L + r * vocab);
          const float l = vec.logsumexp_row(lr, vocab);
          lse[r] = Stat<T>(l);
          const int32_t t = targets[r];
          losses[r] = t == ignore_index ? Stat<T>(0) : Stat<T>(l - lr[t]);
        }
      });
      return;
    }
    parallel_for(rows, row_grain(vocab), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const T* lr = L + r * vocab;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < vocab; j++) mx = std::max(mx, double(load(lr + j)));
        double sum = 0;
        for (int64_t j = 0; j < vocab; j++) sum += std::exp(double(load(lr + j)) - mx);
        const double l = mx + std::log(sum);
        lse[r] = Stat<T>(l);
        const int32_t t = targets[r];
        losses[r] = t == ignore_index ? Stat<T>(0) : Stat<T>(l - double(load(lr + t)));
      }
    });
  });
}

void cross_entropy_grad(int dtype, const char* logits, const int32_t* targets, const char* lse_raw,
                        const char* grad_loss_raw, char* grad_logits, int64_t rows, int64_t vocab, int64_t ignore_index) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const Stat<T>* lse = reinterpret_cast<const Stat<T>*>(lse_raw);
    const Stat<T>* grad_loss = reinterpret_cast<const Stat<T>*>(grad_loss_raw);
    const T* L = reinterpret_cast<const T*>(logits);
    T* G = reinterpret_cast<T*>(grad_logits);
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      parallel_for(rows, row_grain(vocab), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++) {
          float* gr = reinterpret_cast<float*>(G + r * vocab);
          const int32_t t = targets[r];
          if (t == ignore_index) {
            std::memset(static_cast<void*>(gr), 0, sizeof(float) * size_t(vocab));
            continue;
          }
          vec.ce_grad_row(reinterpret_cast<const float*>(L + r * vocab), gr, vocab, float(lse[r]), float(grad_loss[r]), t);
        }
      });
      return;
    }
    parallel_for(rows, row_grain(vocab), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const T* lr = L + r * vocab;
        T* gr = G + r * vocab;
        const int32_t t = targets[r];
        if (t == ignore_index) {
          for (int64_t j = 0; j < vocab; j++) store(gr + j, C(0));
          continue;
        }
        const double l = lse[r];
        const double g = grad_loss[r];
        for (int64_t j = 0; j < vocab; j++) {
          const double p = std::exp(double(load(lr + j)) - l);
          store(gr + j, C(g * (p - (j == t ? 1.0 : 0.0))));
        }
      }
    });
  });
}

int64_t embedding(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab) {
  for (int64_t i = 0; i < count; i++)
    if (ids[i] < 0 || ids[i] >= vocab) return i;
  ANDROMEDA_DISPATCH_ALL(dtype, {
    const T* W = reinterpret_cast<const T*>(table);
    T* O = reinterpret_cast<T*>(out);
    parallel_for(count, row_grain(dim), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) std::memcpy(O + i * dim, W + int64_t(ids[i]) * dim, sizeof(T) * dim);
    });
  });
  return -1;
}

void embedding_grad(int dtype, const int32_t* ids, const char* grad_out, char* grad_table, int64_t count, int64_t dim,
                    int64_t rows) {
  // The CUDA engine's order (native/cuda/embedding.cu): positions grouped by id, each group in position order, its
  // rows summed in the compute type onto the table's value and rounded to the table's dtype once. A frequent id's
  // hundreds of rows would otherwise lose to a bfloat16 rounding at every add.
  std::vector<int64_t> order;
  order.reserve(size_t(count));
  for (int64_t i = 0; i < count; i++)
    if (ids[i] >= 0 && ids[i] < rows) order.push_back(i);  // others name no row (the binding refuses such ids first)
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ids[a] < ids[b]; });
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const T* G = reinterpret_cast<const T*>(grad_out);
    T* GT = reinterpret_cast<T*>(grad_table);
    // Parallel over feature columns so that no two threads add into the same element.
    parallel_for(dim, 16, [&](int64_t begin, int64_t end) {
      std::vector<C> acc(size_t(end - begin));
      for (size_t run = 0; run < order.size();) {
        size_t run_end = run + 1;
        while (run_end < order.size() && ids[order[run_end]] == ids[order[run]]) run_end++;
        T* row = GT + int64_t(ids[order[run]]) * dim;
        for (int64_t j = begin; j < end; j++) acc[size_t(j - begin)] = C(load(row + j));
        for (size_t q = run; q < run_end; q++) {
          const T* g = G + order[q] * dim;
          for (int64_t j = begin; j < end; j++) acc[size_t(j - begin)] += C(load(g + j));
        }
        for (int64_t j = begin; j < end; j++) store(row + j, acc[size_t(j - begin)]);
        run = run_end;
      }
    });
  });
}

void dropout(int dtype, const char* x, char* out, int64_t count, double p, uint64_t seed) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const T* X = reinterpret_cast<const T*>(x);
    T* O = reinterpret_cast<T*>(out);
    const C keep_scale = C(1.0 / (1.0 - p));
    parallel_for(count, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        const bool keep = uniform_from_counter(seed, uint64_t(i)) >= p;
        store(O + i, keep ? C(load(X + i)) * keep_scale : C(0));
      }
    });
  });
}

void adamw(float* param, int grad_dtype, const char* grad, float* m, float* v, int64_t count, const AdamWArgs& args) {
  AdamWArgs a = args;
  if (!resolve_clip_on_host(a, "adamw")) return;  // a norm that is not finite: the step is skipped
  ANDROMEDA_DISPATCH_FLOAT(grad_dtype, {
    const T* G = reinterpret_cast<const T*>(grad);
    const float lr = float(a.lr), b1 = float(a.beta1), b2 = float(a.beta2), eps = float(a.eps);
    const float decay = float(1.0 - a.lr * a.weight_decay);
    const float step = float(a.lr / a.bias_correction1);
    const float inv_sqrt_bc2 = float(1.0 / std::sqrt(a.bias_correction2));
    const float gs = float(a.grad_scale);
    (void)lr;
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      const AdamWConsts c{b1, b2, eps, decay, step, inv_sqrt_bc2, gs};
      const float* gf = reinterpret_cast<const float*>(G);
      parallel_for(count, 1 << 14, [&](int64_t begin, int64_t end) {
        vec.adamw(param + begin, gf + begin, m + begin, v + begin, end - begin, c);
      });
      return;
    }
    parallel_for(count, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        const float g = float(load(G + i)) * gs;
        const float mi = b1 * m[i] + (1.0f - b1) * g;
        const float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] * decay - step * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
      }
    });
  });
}

}  // namespace andromeda::cpu
