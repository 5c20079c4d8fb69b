// The reference attention form's two kernels on the CPU: the masked softmax over explicit scores
// (ALiBi, causal and document masks added per element) and the rotary/xPos transform of q and k.
// Arithmetic is in the compute type (float for float32 and half types, double for float64); angles
// and xPos exponents are always in double.
#include "attention_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../common/dtype.h"
#include "parallel.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per task
int64_t grain_for(int64_t items_per_unit) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(items_per_unit, 1)); }

template <typename T>
void masked_softmax_rows(const MaskedSoftmaxArgs& a, const T* x, T* y) {
  using C = typename Compute<T>::type;
  const int64_t K = a.key_len, rows = a.batch * a.heads * a.query_len;
  const C neg_inf = -std::numeric_limits<C>::infinity();
  parallel_for(rows, grain_for(K), [&](int64_t begin, int64_t end_row) {
    std::vector<C> s(size_t(std::max<int64_t>(K, 1)));
    for (int64_t row = begin; row < end_row; row++) {
      const int64_t i = row % a.query_len, bh = row / a.query_len, h = bh % a.heads, b = bh / a.heads;
      const int64_t q_pos = a.query_positions ? a.query_positions[b * a.query_stride + i] : i + a.query_offset;
      const int32_t* key_pos = a.key_positions ? a.key_positions + b * a.key_stride : nullptr;
      const int32_t* key_seg = a.key_segments ? a.key_segments + b * a.key_stride : nullptr;
      const int32_t q_seg = a.query_segments ? a.query_segments[b * a.query_stride + i] : 0;
      const int64_t end = a.causal ? std::clamp<int64_t>(i + a.query_offset + 1, 0, K) : K;
      const C slope = a.alibi_slopes ? C(a.alibi_slopes[h]) : C(0);
      const T* xr = x + row * K;
      T* yr = y + row * K;
      C mx = neg_inf;
      for (int64_t j = 0; j < end; j++) {
        if (key_seg && key_seg[j] != q_seg) { s[j] = neg_inf; continue; }
        C v = load(xr + j);
        if (slope != C(0)) v += -slope * C(std::llabs(q_pos - (key_pos ? int64_t(key_pos[j]) : j)));
        s[j] = v;
        mx = std::max(mx, v);
      }
      if (mx == neg_inf) {  // no visible key: all 0 (the op layer reports such rows before calling)
        for (int64_t j = 0; j < K; j++) store(yr + j, C(0));
        continue;
      }
      C sum = 0;
      for (int64_t j = 0; j < end; j++) sum += std::exp(s[j] - mx);
      const C inv = C(1) / sum;
      for (int64_t j = 0; j < end; j++) store(yr + j, std::exp(s[j] - mx) * inv);
      for (int64_t j = end; j < K; j++) store(yr + j, C(0));
    }
  });
}

template <typename T>
void rotary_rows(const RotaryArgs& a, const T* x, T* y) {
  using C = typename Compute<T>::type;
  const int64_t n = a.length, d = a.head_dim, r = a.rotary_dim, half = r / 2, H = a.heads;
  const bool xpos = a.xpos_scale_base > 0;
  std::vector<double> log_zeta(static_cast<size_t>(half));
  for (int64_t f = 0; f < half; f++) log_zeta[f] = xpos_log_zeta(f, r);
  const double sin_sign = a.transpose ? -1.0 : 1.0;
  const C m = C(a.multiplier);
  parallel_for(a.batch * n, grain_for(H * d), [&](int64_t begin, int64_t end) {
    std::vector<C> cos_f(static_cast<size_t>(half)), sin_f(static_cast<size_t>(half));
    for (int64_t t = begin; t < end; t++) {
      const int64_t b = t / n, j = t % n;
      const double p = a.positions ? double(a.positions[b * a.position_stride + j]) : double(j + a.position_offset);
      double e = 0;
      if (xpos) e = std::max(a.xpos_sign * (p - a.xpos_anchor), a.xpos_min_distance) / a.xpos_scale_base;
      for (int64_t f = 0; f < half; f++) {
        const double theta = p * a.inv_freq[f];
        const double factor = a.multiplier * (xpos ? std::exp(log_zeta[f] * e) : 1.0);
        cos_f[f] = C(std::cos(theta) * factor);
        sin_f[f] = C(sin_sign * std::sin(theta) * factor);
      }
      for (int64_t h = 0; h < H; h++) {
        const int64_t base = ((b * H + h) * n + j) * d;
        const T* xr = x + base;
        T* yr = y + base;
        for (int64_t f = 0; f < half; f++) {
          const C x0 = load(xr + f), x1 = load(xr + f + half);
          store(yr + f, x0 * cos_f[f] - x1 * sin_f[f]);
          store(yr + f + half, x1 * cos_f[f] + x0 * sin_f[f]);
        }
        for (int64_t f = r; f < d; f++) store(yr + f, C(load(xr + f)) * m);
      }
    }
  });
}

}  // namespace

void masked_softmax(const MaskedSoftmaxArgs& a, const char* scores, char* out) {
  if (a.batch * a.heads * a.query_len == 0 || a.key_len == 0) return;
  ANDROMEDA_DISPATCH_FLOAT(a.dtype, masked_softmax_rows<T>(a, reinterpret_cast<const T*>(scores), reinterpret_cast<T*>(out)));
}

void rotary(const RotaryArgs& a, const char* x, char* out) {
  if (a.batch * a.heads * a.length * a.head_dim == 0) return;
  ANDROMEDA_DISPATCH_FLOAT(a.dtype, rotary_rows<T>(a, reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out)));
}

}  // namespace andromeda::cpu
