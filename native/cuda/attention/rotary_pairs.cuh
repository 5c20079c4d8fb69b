// One rotary frequency pair per feature pair, in float32 registers: what the pre-pass (pretransform.cu) and the Hopper
// backward's dQ conversion (backward_hopper_kernel.cuh) apply to a row's features, or take back from its gradient.
//
// Work item: a "quad" of four features of one row. Quad t < r/4 holds rotary frequencies 2t and 2t + 1,
// i.e. features (2t, 2t + 1) and their partners (2t + r/2, 2t + 1 + r/2); the others hold four adjacent
// features past the rotary part. Either way: two adjacent pairs, at offsets lo and hi.
#pragma once
#include "params.cuh"
#include "tile.cuh"

namespace andromeda::cuda::attention {

struct QuadOffsets {
  int lo, hi;
  bool rotary;
};

__device__ __forceinline__ QuadOffsets quad_offsets(int t, int rotary_dim) {
  if (t < rotary_dim / 4) return {2 * t, 2 * t + rotary_dim / 2, true};
  const int lo = rotary_dim + 4 * (t - rotary_dim / 4);
  return {lo, lo + 2, false};
}

/** cos, sin and xPos factor of the quad's two frequencies for one row. */
struct RotaryFactors {
  float c0, s0, c1, s1, z0, z1;
};

// Cap of the xPos exponent: the planned factors stay ≤ 2^60 (plus the rows of a partly visible key tile);
// anything larger would only meet masked scores, and must stay finite there.
constexpr float kMaxXposExponent = 96.f;

/** xpos_delta: p − anchor for q rows, anchor − p for k rows. */
__device__ __forceinline__ RotaryFactors rotary_factors(const Params& p, bool key_side, int b, int row, int f,
                                                        float xpos_delta) {
  const float4 cs = *reinterpret_cast<const float4*>(rotary_rows(p, key_side, b, row) + f);  // c0 s0 c1 s1
  RotaryFactors r{cs.x, cs.y, cs.z, cs.w, 1.f, 1.f};
  if (p.has_xpos) {
    r.z0 = exp2f(fminf(p.xpos_rate[f] * xpos_delta, kMaxXposExponent));
    r.z1 = exp2f(fminf(p.xpos_rate[f + 1] * xpos_delta, kMaxXposExponent));
  }
  return r;
}

/** x' = z ⊙ R x on the pairs (lo, hi) of the quad's frequencies. */
__device__ __forceinline__ void rotate(float2& lo, float2& hi, const RotaryFactors& r) {
  const float2 a = lo, c = hi;
  lo = make_float2((a.x * r.c0 - c.x * r.s0) * r.z0, (a.y * r.c1 - c.y * r.s1) * r.z1);
  hi = make_float2((c.x * r.c0 + a.x * r.s0) * r.z0, (c.y * r.c1 + a.y * r.s1) * r.z1);
}

/** x̄ = Rᵀ(z ⊙ x̄'): the gradient wrt x of a gradient wrt x' = z ⊙ R x. */
__device__ __forceinline__ void rotate_back(float2& lo, float2& hi, const RotaryFactors& r) {
  const float2 y1 = make_float2(lo.x * r.z0, lo.y * r.z1), y2 = make_float2(hi.x * r.z0, hi.y * r.z1);
  lo = make_float2(y1.x * r.c0 + y2.x * r.s0, y1.y * r.c1 + y2.y * r.s1);
  hi = make_float2(y2.x * r.c0 - y1.x * r.s0, y2.y * r.c1 - y1.y * r.s1);
}

}  // namespace andromeda::cuda::attention
