// Rotary position embedding with xPos for the reference attention form: one thread per (token,
// feature pair) computes the angle and the xPos factor once and applies them to that pair in every
// head. Angles reach 10^5 rad: the product and its reduction to [−π, π] are done in double, the
// sine and cosine of the remainder in float (in double for float64 tensors).
#include <string>

#include "common.cuh"
#include "reference_attention.h"

namespace andromeda::cuda {
namespace {

constexpr int kMaxPairs = 128;  // rotary_dim ≤ 256

struct RotaryParams {
  int64_t tokens, heads, length, head_dim, half, rest, position_stride, position_offset;
  const int32_t* positions;
  double xpos_inv_base, xpos_anchor, xpos_sign, xpos_min_distance, multiplier, sin_sign;
  int has_xpos;
  double inv_freq[kMaxPairs];
  double log_zeta[kMaxPairs];
};

template <typename C>
__device__ __forceinline__ void sincos_of(double theta, C* s, C* c);

template <>
__device__ __forceinline__ void sincos_of<float>(double theta, float* s, float* c) {
  const double turns = rint(theta * 0.15915494309189535);  // 1 / 2π
  sincosf(float(fma(-turns, 6.283185307179586, theta)), s, c);
}

template <>
__device__ __forceinline__ void sincos_of<double>(double theta, double* s, double* c) {
  sincos(theta, s, c);
}

template <typename T>
__global__ void rotary_kernel(const T* x, T* y, const RotaryParams p) {
  using C = compute_t<T>;
  const int64_t columns = p.half + p.rest;
  ANDROMEDA_GRID_STRIDE(idx, p.tokens * columns) {
    const int64_t t = idx / columns, col = idx % columns;
    const int64_t b = t / p.length, j = t % p.length;
    const int64_t head_stride = p.length * p.head_dim;
    const int64_t first = (b * p.heads * p.length + j) * p.head_dim;
    if (col < p.half) {
      const double pos = p.positions ? double(p.positions[b * p.position_stride + j]) : double(j + p.position_offset);
      C s, c;
      sincos_of<C>(pos * p.inv_freq[col], &s, &c);
      double factor = p.multiplier;
      if (p.has_xpos) {
        const double e = fmax(p.xpos_sign * (pos - p.xpos_anchor), p.xpos_min_distance) * p.xpos_inv_base;
        factor *= exp(p.log_zeta[col] * e);
      }
      const C cf = c * C(factor), sf = s * C(factor * p.sin_sign);
      for (int64_t h = 0; h < p.heads; h++) {
        const int64_t at = first + h * head_stride + col;
        const C x0 = load(x + at), x1 = load(x + at + p.half);
        store(y + at, x0 * cf - x1 * sf);
        store(y + at + p.half, x1 * cf + x0 * sf);
      }
    } else {
      const C m = C(p.multiplier);
      const int64_t f = 2 * p.half + (col - p.half);
      for (int64_t h = 0; h < p.heads; h++) {
        const int64_t at = first + h * head_stride + f;
        store(y + at, C(load(x + at)) * m);
      }
    }
  }
}

}  // namespace

void rotary(const RotaryArgs& a, const char* x, char* out) {
  const int64_t tokens = a.batch * a.length;
  if (tokens == 0 || a.heads == 0 || a.head_dim == 0) return;
  const int64_t half = a.rotary_dim / 2;
  if (half > kMaxPairs) throw std::invalid_argument("rotary: at most " + std::to_string(2 * kMaxPairs) + " rotated features on CUDA, got " + std::to_string(a.rotary_dim));
  RotaryParams p{};
  p.tokens = tokens;
  p.heads = a.heads;
  p.length = a.length;
  p.head_dim = a.head_dim;
  p.half = half;
  p.rest = a.head_dim - a.rotary_dim;
  p.position_stride = a.position_stride;
  p.position_offset = a.position_offset;
  p.positions = a.positions;
  p.has_xpos = a.xpos_scale_base > 0;
  p.xpos_inv_base = p.has_xpos ? 1.0 / a.xpos_scale_base : 0.0;
  p.xpos_anchor = a.xpos_anchor;
  p.xpos_sign = a.xpos_sign;
  p.xpos_min_distance = a.xpos_min_distance;
  p.multiplier = a.multiplier;
  p.sin_sign = a.transpose ? -1.0 : 1.0;
  for (int64_t f = 0; f < half; f++) {
    p.inv_freq[f] = a.inv_freq[f];
    p.log_zeta[f] = xpos_log_zeta(f, a.rotary_dim);
  }
  const int64_t items = tokens * (half + p.rest);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    rotary_kernel<T><<<grid_for(items), kThreads, 0, stream()>>>(reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out), p);
  });
  check_launch("rotary");
}

}  // namespace andromeda::cuda
