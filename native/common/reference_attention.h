// Arguments of the two kernels behind the reference (explicit n × n scores) attention, shared by the
// CPU and CUDA engines: the masked softmax over the scores and the rotary/xPos transform of q and k.
// Semantics are those of MaskedSoftmaxArgs and RotaryArgs in src/engine/engine.ts.
#pragma once
#include <cmath>
#include <cstdint>

namespace andromeda {

/** Row softmax of scores [batch, heads, query_len, key_len] with ALiBi and the causal/segment masks added in the kernel. */
struct MaskedSoftmaxArgs {
  int dtype;
  int64_t batch, heads, query_len, key_len;
  bool causal;
  int64_t query_offset;             // key j visible to row i when j ≤ i + query_offset; default query position i + query_offset
  const double* alibi_slopes;       // host [heads], or null
  const int32_t* query_positions;   // device/host [batch] rows of query_stride, or null (defaults)
  const int32_t* key_positions;     // rows of key_stride, or null (position j)
  const int32_t* query_segments;    // or null (no document mask)
  const int32_t* key_segments;
  int64_t query_stride, key_stride;
};

/**
 * out = multiplier · ζ^e · R(p) x on the first rotary_dim features of x [batch, heads, length, head_dim],
 * multiplier · x on the rest; R(p)ᵀ when transpose. R rotates the pair (f, f + rotary_dim/2) by p · inv_freq[f].
 * xPos (xpos_scale_base > 0): ζ_f = (2f + 0.4 r) / (1.4 r), e = max(sign · (p − anchor), min_distance) / base.
 */
struct RotaryArgs {
  int dtype;
  int64_t batch, heads, length, head_dim, rotary_dim;
  const double* inv_freq;           // host [rotary_dim / 2]
  const int32_t* positions;         // [batch] rows of position_stride, or null: j + position_offset
  int64_t position_stride, position_offset;
  double xpos_scale_base, xpos_anchor, xpos_sign, xpos_min_distance;
  double multiplier;
  bool transpose;
};

/** ln ζ_f of xPos for pair f of a rotary_dim-feature rotation. */
inline double xpos_log_zeta(int64_t f, int64_t rotary_dim) {
  const double r = double(rotary_dim);
  return std::log((2.0 * double(f) + 0.4 * r) / (1.4 * r));
}

}  // namespace andromeda
