// Public entry points (attention.h): validate the problem, build the launch parameters and the rotary
// tables, and run the forward, decode or backward kernels on the engine's stream.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "backward_hopper.h"
#include "heuristics.h"
#include "launch.h"

namespace andromeda::cuda {
namespace {

using attention::Params;

constexpr int kF32 = 0, kBf16 = 2;  // andromeda::DType codes

/**
 * float32 callers: bf16 copies of the inputs go through the bf16 kernels (tensor cores take bf16), and
 * the results are widened back, so float32 attention on the GPU has bf16-operand accuracy.
 */
class Bf16Copy {
 public:
  Bf16Copy(const char* src, int64_t count) : scratch_(size_t(std::max<int64_t>(count, 8)) * 2) {
    attention::launch_to_bf16(reinterpret_cast<const float*>(src), scratch_.as<attention::bf16>(), count);
  }
  char* get() const { return scratch_.as<char>(); }

 private:
  Scratch scratch_;
};

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("attention: " + message);
}

void require_aligned(const void* ptr, const char* what) {
  require(ptr != nullptr, std::string(what) + " is null");
  require(reinterpret_cast<uintptr_t>(ptr) % 16 == 0,
          std::string(what) + " must start on a 16-byte boundary (an element offset that is a multiple of 8)");
}

/** Launch parameters plus the scratch they point into (rotary tables), alive until the launches are queued. */
struct Prepared {
  Params params{};
  bool transform = false;
  std::unique_ptr<Scratch> q_rot, k_rot;
};

/** Shapes only (enough to size float32 conversions); validate() checks everything. */
void validate_shape(const AttentionProblem& pr) {
  require(pr.batch > 0 && pr.heads > 0 && pr.kv_heads > 0 && pr.head_dim > 0 && pr.q_len >= 0 && pr.k_len >= 0,
          "batch, heads, kv_heads and head dim must be positive, lengths non-negative");
}

void validate(const AttentionProblem& pr) {
  require(pr.batch > 0 && pr.heads > 0 && pr.kv_heads > 0, "batch, heads and kv_heads must be positive");
  require(pr.heads % pr.kv_heads == 0, "heads (" + std::to_string(pr.heads) + ") must be a multiple of kv_heads (" +
                                           std::to_string(pr.kv_heads) + ")");
  require(pr.head_dim == 32 || pr.head_dim == 64 || pr.head_dim == 128,
          "head dim " + std::to_string(pr.head_dim) + " (the CUDA kernels support 32, 64 and 128)");
  require(pr.dtype == kBf16, "the CUDA kernels take bfloat16 q, k, v (dtype code " + std::to_string(pr.dtype) + ")");
  require(pr.q_len >= 0 && pr.k_len >= 0 && pr.q_len < (1ll << 31) && pr.k_len < (1ll << 31), "lengths out of range");
  require(std::llabs(pr.query_offset) < (1ll << 30), "query offset out of range");
  require(!pr.alibi_slopes || pr.heads <= attention::kMaxHeads,
          "ALiBi supports at most " + std::to_string(attention::kMaxHeads) + " heads");
  require(pr.rotary_dim >= 0 && pr.rotary_dim <= pr.head_dim && pr.rotary_dim % 16 == 0 &&
              pr.rotary_dim <= 2 * attention::kMaxRotaryPairs,
          "rotary dim " + std::to_string(pr.rotary_dim) + " must be a multiple of 16 no larger than the head dim");
  require(pr.rotary_dim == 0 || pr.rotary_inv_freq, "rotary needs its inverse frequencies");
  require(pr.xpos_scale_base == 0 || pr.rotary_dim > 0, "xPos acts on the rotary features: it needs rotary_dim > 0");
  require((pr.q_segments == nullptr) == (pr.k_segments == nullptr), "give both query and key segments, or neither");
}

/** Launch parameters with the shapes, positions, segments and scale of a problem: enough to ask the kernels' choice. */
Params shape_params(const AttentionProblem& pr) {
  Params p{};
  p.batch = pr.batch;
  p.heads = pr.heads;
  p.kv_heads = pr.kv_heads;
  p.k_heads = pr.kv_heads;
  p.q_len = int(pr.q_len);
  p.k_len = int(pr.k_len);
  p.scale = float(pr.scale);
  p.scale_log2 = float(pr.scale * 1.4426950408889634);
  p.causal = pr.causal;
  p.query_offset = int(pr.query_offset);
  p.q_pos = pr.q_positions;
  p.k_pos = pr.k_positions;
  p.q_seg = pr.q_segments;
  p.k_seg = pr.k_segments;
  p.has_alibi = pr.alibi_slopes != nullptr;
  return p;
}

Prepared prepare(const AttentionProblem& pr, const char* q, const char* k, const char* v) {
  validate(pr);
  require_aligned(q, "q");
  require_aligned(k, "k");
  require_aligned(v, "v");
  Prepared prep;
  Params& p = prep.params;
  p = shape_params(pr);
  p.q = reinterpret_cast<const attention::bf16*>(q);
  p.k = reinterpret_cast<const attention::bf16*>(k);
  p.v = reinterpret_cast<const attention::bf16*>(v);
  p.key_scale = pr.key_scale;
  if (pr.alibi_slopes) {
    p.has_alibi = 1;
    for (int h = 0; h < pr.heads; h++) p.alibi_slope_log2[h] = float(double(pr.alibi_slopes[h]) * 1.4426950408889634);
  }
  p.rotary_dim = pr.rotary_dim;
  if (pr.rotary_dim > 0) {
    const int pairs = pr.rotary_dim / 2;
    attention::InvFreq inv{};
    for (int f = 0; f < pairs; f++) inv.value[f] = pr.rotary_inv_freq[f];
    const int q_items = pr.q_positions ? pr.batch : 1, k_items = pr.k_positions ? pr.batch : 1;
    prep.k_rot = std::make_unique<Scratch>(std::max<size_t>(1, size_t(k_items) * pr.k_len * pairs) * sizeof(float2));
    attention::launch_rotary_table(prep.k_rot->as<float2>(), pr.k_positions, 0, k_items, int(pr.k_len), pairs, inv);
    p.k_rot = prep.k_rot->as<float2>();
    // Default positions whose queries sit among the keys (training; a prefill after its cache) read the queries'
    // rows of the keys' table: each row depends on its position only.
    if (!pr.q_positions && !pr.k_positions && pr.query_offset >= 0 && pr.query_offset + pr.q_len <= pr.k_len) {
      p.q_rot = p.k_rot + pr.query_offset * pairs;
    } else {
      prep.q_rot = std::make_unique<Scratch>(std::max<size_t>(1, size_t(q_items) * pr.q_len * pairs) * sizeof(float2));
      attention::launch_rotary_table(prep.q_rot->as<float2>(), pr.q_positions, pr.query_offset, q_items,
                                     int(pr.q_len), pairs, inv);
      p.q_rot = prep.q_rot->as<float2>();
    }
    p.q_rot_batch_stride = pr.q_positions ? int64_t(pr.q_len) * pairs : 0;
    p.k_rot_batch_stride = pr.k_positions ? int64_t(pr.k_len) * pairs : 0;
    if (pr.xpos_scale_base != 0) {
      p.has_xpos = 1;
      const double r = pr.rotary_dim;
      for (int f = 0; f < pairs; f++) p.xpos_rate[f] = float(std::log2((2.0 * f + 0.4 * r) / (1.4 * r)) / pr.xpos_scale_base);
    }
  }
  prep.transform = pr.rotary_dim > 0 || pr.key_scale != nullptr;
  return prep;
}

// ---- The pre-pass path: rotary / xPos / key scale once per call (pretransform.cu) ----

// ζ^(δ/B) with δ up to half the span of positions on either side of the anchor: the largest factor is
// 2^(log2(1.4/0.4)·δ/B). Keeping the exponent ≤ 60 leaves q', k' within 2^±60 of their true scale,
// far inside bf16/float32's 2^±126, with room for the tiny gradient terms that later meet the
// opposite factor (at B = 512 this allows 34,000 positions; andromeda's 32,768 reach 2^57.8).
constexpr double kMaxXposExponent = 60;
const double kLog2XposRatio = std::log2(1.4 / 0.4);  // the largest |log2 ζ_f|
// Auto leaves the transform in the kernels when the pre-pass would hold more scratch than this
// (q', k' in bf16, dQ', dK' in float32 for the backward).
constexpr double kAutoScratchLimit = 2.0 * (1ull << 30);
// Rows of the key tiles the forward kernels load (the largest, 128, is a multiple of the others).
constexpr int64_t kKeyTileRows = 128;

struct TransformPlan {
  bool prepass = false;
  // Key scale with kv_heads < heads: A and B per KV head, K'_h built per CTA by the Hopper kernels (or, in a
  // forward without rotary, the key scale moved onto q'); k is never expanded per query head.
  bool split = false;
  int anchor = 0;     // xPos anchor c: q' carries ζ^((p − c)/B), k' ζ^((c − p)/B)
  int64_t chunk = 0;  // forward only, > 0: queries in chunks of this many, each chunk its own anchor (forward_chunked)
};


/** A key scale whose heads outnumber the KV heads: a k' per query head would expand K, so it splits or stays in the kernels. */
bool key_scale_shares_kv(const AttentionProblem& pr) { return pr.key_scale && pr.kv_heads < pr.heads; }

enum class Pass { Forward, Backward };

/**
 * Queries per chunk of the chunked forward: with the anchor a at the chunk's first query, q' carries
 * ζ^((p − a)/B) ∈ [ζ^(C/B), 1] and the keys inside the chunk ζ^((a − p)/B) ∈ [1, ζ^(−C/B)]; C keeps that
 * exponent ≤ 60 (C = 16,896 at B = 512, 256 at B = 8), rounded down to whole 128-query tiles. 0: too small.
 */
int64_t xpos_chunk_queries(double scale_base) {
  const int64_t c = int64_t(std::floor(kMaxXposExponent * scale_base / kLog2XposRatio));
  return c >= 128 ? c / 128 * 128 : std::max<int64_t>(c, 0);
}

bool scratch_allowed(const AttentionChoices& choices, double bytes) {
  return choices.transform != AttentionTransform::Auto || bytes <= kAutoScratchLimit;
}

/**
 * Whether the kernels that would run can take the split key scale: the forward without rotary needs nothing (the
 * key scale moves onto q'), with rotary the Hopper forward; the backward the Hopper backward.
 */
bool split_ready(const AttentionProblem& pr, Pass pass, const AttentionChoices& choices) {
  const attention::KernelProblem kp = attention::kernel_problem(shape_params(pr), pr.head_dim, false);
  if (pass == Pass::Forward) return pr.rotary_dim == 0 || attention::forward_split_ready(kp, choices.forward);
  return attention::backward_split_ready(kp, choices.backward);
}

TransformPlan plan_transform(const AttentionProblem& pr, Pass pass, const AttentionChoices& choices) {
  TransformPlan plan;
  if ((pr.rotary_dim == 0 && !pr.key_scale) || choices.transform == AttentionTransform::Kernel) return plan;
  const bool split = key_scale_shares_kv(pr);
  if (split && !split_ready(pr, pass, choices)) return plan;
  plan.split = split;
  // k' (or A and B) per KV head.
  const double k_elements = double(pr.batch) * pr.kv_heads * double(pr.k_len) * pr.head_dim * (split ? 2 : 1);
  if (pr.xpos_scale_base != 0) {
    // One anchor needs bounded positions: custom positions qualify only when the caller gave their range.
    int64_t lo = 0, hi = 0;
    const bool custom = pr.q_positions || pr.k_positions;
    if (custom) {
      if (!pr.has_position_range) return plan;
      lo = pr.position_min;
      hi = pr.position_max;
    } else {
      bool any = false;
      auto cover = [&](int64_t first, int64_t count) {
        if (count <= 0) return;
        lo = any ? std::min(lo, first) : first;
        hi = any ? std::max(hi, first + count - 1) : first + count - 1;
        any = true;
      };
      cover(pr.query_offset, pr.q_len);
      cover(0, pr.k_len);
    }
    if (hi - lo >= (1ll << 30)) return plan;
    const int64_t c = lo + (hi - lo) / 2;
    const double exponent = kLog2XposRatio / std::fabs(pr.xpos_scale_base) * double(std::max(c - lo, hi - c));
    if (exponent > kMaxXposExponent) {
      // Past one anchor's range: the forward in query chunks, each with its own anchor, where every key a
      // chunk sees lies before the chunk's end (causal, or all keys before the first queries); default
      // positions only (the chunk's smallest position is its first query's), B > 0 (ζ^(δ/B) decays with δ).
      if (pass == Pass::Backward || custom || pr.xpos_scale_base < 0) return plan;
      const int64_t chunk = xpos_chunk_queries(pr.xpos_scale_base);
      if (chunk == 0 || (!pr.causal && pr.k_len - 1 - pr.query_offset >= chunk)) return plan;
      const double q_chunk_elements = double(pr.batch) * pr.heads * double(std::min<int64_t>(chunk, pr.q_len)) * pr.head_dim;
      if (!scratch_allowed(choices, (2 * q_chunk_elements + k_elements) * 2)) return plan;
      plan.chunk = chunk;
      plan.prepass = true;
      return plan;
    }
    plan.anchor = int(c);
  }
  const double q_elements = pr.rotary_dim > 0 || split ? double(pr.q_elements()) : 0;
  if (!scratch_allowed(choices, (q_elements + k_elements) * 6)) return plan;
  plan.prepass = true;
  return plan;
}

/** Turns the transform off in launch parameters whose q, k already carry it (the plain kernels' instantiation). */
void transform_off(Params& pp) {
  pp.rotary_dim = 0;
  pp.q_rot = pp.k_rot = nullptr;
  pp.q_rot_batch_stride = pp.k_rot_batch_stride = 0;
  pp.has_xpos = 0;
  pp.key_scale = nullptr;
  pp.grad_key_scale = nullptr;
}

/**
 * The split key scale's forward inputs for the keys [0, keys) at `anchor`: without rotary none (k as given, the key
 * scale goes onto q'), else A into a_buf (k's layout) and B into b_buf, and the launch parameters that build
 * K'_h = c_h ⊙ A + d_h ⊙ B from them.
 */
void split_keys(const Params& p, int head_dim, int anchor, int keys, attention::bf16* a_buf, attention::bf16* b_buf,
                Params& pp) {
  if (p.rotary_dim == 0) return;
  attention::launch_pretransform(p, head_dim, attention::PretransformMode::KeySplit, p.kv_heads, anchor, a_buf, 0, keys,
                                 p.k_len, b_buf);
  pp.k = a_buf;
  pp.key_split = 1;
  pp.split_b = b_buf;
  pp.split_scale = p.key_scale;
  pp.split_rotary_dim = p.rotary_dim;
}

/** Launch parameters of the plain kernels over q', k' (transform off), plus the copies they point into. */
struct Pretransformed {
  Params params{};
  std::unique_ptr<Scratch> q, k, b;
};

/**
 * q' and k' for the plain kernels. With plan.split (key scale, kv_heads < heads) no k' per query head: the forward
 * gets q' with g_h on the features past the rotary ones and A, B (split_keys); the backward gets q' and A, B (A = k
 * without rotary) and builds K'_h = c_h ⊙ A + d_h ⊙ B, g_h ⊙ A past the rotary features, in the Hopper kernel.
 */
Pretransformed pretransform(const AttentionProblem& pr, const Params& p, const TransformPlan& plan, Pass pass) {
  using attention::PretransformMode;
  Pretransformed out;
  out.params = p;
  Params& pp = out.params;
  const int D = pr.head_dim;
  const bool scale_on_q = plan.split && pass == Pass::Forward;
  if (pr.rotary_dim > 0 || scale_on_q) {
    out.q = std::make_unique<Scratch>(size_t(std::max<int64_t>(pr.q_elements(), 8)) * 2);
    attention::launch_pretransform(p, D, scale_on_q ? PretransformMode::QueryScaleRest : PretransformMode::Query, pr.heads,
                                   plan.anchor, out.q->as<attention::bf16>(), 0, p.q_len, p.q_len);
    pp.q = out.q->as<attention::bf16>();
  }
  const int64_t k_elements = std::max<int64_t>(pr.kv_elements(), 8);
  if (plan.split) {
    pp.key_split = 0;
    if (pr.rotary_dim > 0) {
      out.k = std::make_unique<Scratch>(size_t(k_elements) * 2);
      out.b = std::make_unique<Scratch>(size_t(k_elements) * 2);
      split_keys(p, D, plan.anchor, p.k_len, out.k->as<attention::bf16>(), out.b->as<attention::bf16>(), pp);
    }
    if (pass == Pass::Backward) {  // K'_h = g_h ⊙ k without rotary
      pp.key_split = 1;
      pp.split_scale = p.key_scale;
      pp.split_rotary_dim = p.rotary_dim;
      if (!pp.split_b) pp.split_b = pp.k;  // (read only on rotary features: none)
    }
  } else {
    out.k = std::make_unique<Scratch>(size_t(k_elements) * 2);
    attention::launch_pretransform(p, D, PretransformMode::Key, pr.kv_heads, plan.anchor, out.k->as<attention::bf16>(), 0,
                                   p.k_len, p.k_len);
    pp.k = out.k->as<attention::bf16>();
  }
  transform_off(pp);
  return out;
}

/**
 * The forward past one anchor's range (plan.chunk > 0): per chunk of queries [s, s + n), anchor
 * a = query_offset + s (the chunk's smallest position), q' = ζ^((p − a)/B) R(p) q into a compact
 * [batch][heads][n][D] copy, k' = ζ^((a − p)/B) R(p)(k ⊙ g) for the keys the chunk's tiles load (one buffer
 * of k's full layout, rewritten per chunk), then the plain forward on the chunk (query offset a) and its out
 * and lse copied into place. Keys far before a underflow towards 0, as their true factor ζ^((p_q − p_k)/B)
 * (smaller still) does to float precision; nothing can overflow (all keys a chunk sees lie before its end).
 */
void forward_chunked(const AttentionProblem& pr, const Params& p, const TransformPlan& plan, attention::KernelRequest kernel) {
  const int D = pr.head_dim;
  const int64_t chunk = std::min<int64_t>(plan.chunk, pr.q_len);
  const int64_t rows_per_item = int64_t(pr.batch) * pr.heads;  // (batch, head) rows of q, out and lse
  const int64_t k_elements = std::max<int64_t>(pr.kv_elements(), 8);
  // k' per KV head; with the split key scale A here and B in b_split (q' carries g_h past the rotary features).
  Scratch k_prime(size_t(k_elements) * 2);
  std::unique_ptr<Scratch> b_split;
  if (plan.split) b_split = std::make_unique<Scratch>(size_t(k_elements) * 2);
  Scratch q_chunk(size_t(std::max<int64_t>(rows_per_item * chunk * D, 8)) * 2);
  // A single chunk writes out and lse in place; several go through compact copies.
  std::unique_ptr<Scratch> out_chunk, lse_chunk, seg_chunk;
  if (chunk < pr.q_len) {
    out_chunk = std::make_unique<Scratch>(size_t(std::max<int64_t>(rows_per_item * chunk * D, 8)) * 2);
    lse_chunk = std::make_unique<Scratch>(size_t(std::max<int64_t>(rows_per_item * chunk, 1)) * sizeof(float));
    if (p.q_seg) seg_chunk = std::make_unique<Scratch>(size_t(pr.batch) * chunk * sizeof(int32_t));
  }
  Params cp = p;
  cp.k = k_prime.as<attention::bf16>();
  cp.q = q_chunk.as<attention::bf16>();
  transform_off(cp);
  using attention::PretransformMode;
  for (int64_t s = 0; s < pr.q_len; s += chunk) {
    const int rows = int(std::min(chunk, pr.q_len - s));
    const int64_t anchor = pr.query_offset + s;
    // Keys the chunk's tiles load: causal, up to its last query's position, rounded up to whole key tiles.
    int64_t keys = pr.k_len;
    if (pr.causal) {
      const int64_t visible = std::max<int64_t>(anchor + rows, 1);
      keys = std::min(pr.k_len, (visible + kKeyTileRows - 1) / kKeyTileRows * kKeyTileRows);
    }
    attention::launch_pretransform(p, D, plan.split ? PretransformMode::QueryScaleRest : PretransformMode::Query, pr.heads,
                                   int(anchor), q_chunk.as<attention::bf16>(), int(s), rows, rows);
    if (plan.split) {
      split_keys(p, D, int(anchor), int(keys), k_prime.as<attention::bf16>(), b_split->as<attention::bf16>(), cp);
    } else {
      attention::launch_pretransform(p, D, PretransformMode::Key, pr.kv_heads, int(anchor), k_prime.as<attention::bf16>(), 0,
                                     int(keys), p.k_len);
    }
    cp.q_len = rows;
    cp.query_offset = int(anchor);
    const bool whole = rows == pr.q_len;
    cp.out = whole ? p.out : out_chunk->as<attention::bf16>();
    cp.lse = whole ? p.lse : lse_chunk->as<float>();
    if (p.q_seg && !whole) {
      cp.q_seg = seg_chunk->as<int32_t>();
      check(cudaMemcpy2DAsync(seg_chunk->as<int32_t>(), size_t(rows) * 4, p.q_seg + s, size_t(pr.q_len) * 4,
                              size_t(rows) * 4, size_t(pr.batch), cudaMemcpyDeviceToDevice, stream()),
            "attention forward: the chunk's query segments");
    }
    attention::launch_forward_tiled(cp, D, false, kernel);
    if (whole) continue;
    check(cudaMemcpy2DAsync(p.out + s * D, size_t(pr.q_len) * D * 2, cp.out, size_t(rows) * D * 2, size_t(rows) * D * 2,
                            size_t(rows_per_item), cudaMemcpyDeviceToDevice, stream()),
          "attention forward: placing the chunk's output");
    check(cudaMemcpy2DAsync(p.lse + s, size_t(pr.q_len) * 4, cp.lse, size_t(rows) * 4, size_t(rows) * 4,
                            size_t(rows_per_item), cudaMemcpyDeviceToDevice, stream()),
          "attention forward: placing the chunk's lse");
  }
}

/**
 * Backward on the pre-pass path: q', k' again (nothing is kept from the forward), the plain kernels give
 * dQ' and dK' in float32, and the post-passes take them back through the transform:
 * dq = Rᵀ(z_q ⊙ dQ'), u = Rᵀ(z_k ⊙ dK'), dk = g ⊙ u, d keyScale = Σ_{b, j} k ⊙ u (one k' per KV head: no key
 * scale, or kv_heads = heads). With the split key scale the Hopper kernel gets A, B instead and leaves
 * dA = Σ_h c_h ⊙ dK'_h, dB = Σ_h d_h ⊙ dK'_h and the column sums of A ⊙ dK'_h, B ⊙ dK'_h; then
 * dk = Rᵀ(z ⊙ dA) + R J (z ⊙ dB) and d keyScale from the column sums (launch_untransform_k_split).
 * `p` is complete (gradients, δ, lse) with the transform on.
 */
void backward_prepass(const AttentionProblem& pr, const Params& p, const TransformPlan& plan, char* grad_q, char* grad_k,
                      char* grad_v, float* grad_key_scale, attention::KernelRequest kernel) {
  const int D = pr.head_dim;
  Pretransformed pt = pretransform(pr, p, plan, Pass::Backward);
  Params& pp = pt.params;
  std::unique_ptr<Scratch> dq, dk;
  // With rotary, dQ' goes back through the transform: inside the Hopper backward's dQ conversion, or from a float32
  // dQ' after the mma.sync kernels.
  const attention::DqRotary rotary{&p, plan.anchor};
  const bool rotary_in_conversion =
      pr.rotary_dim > 0 && attention::backward_kernel(pp, D, false, kernel) == attention::Kernel::Hopper;
  if (pr.rotary_dim > 0 && !rotary_in_conversion) {
    dq = std::make_unique<Scratch>(size_t(std::max<int64_t>(pr.q_elements(), 8)) * sizeof(float));
    pp.grad_q_f32 = dq->as<float>();
  }
  const int64_t kv_elements = pr.kv_elements();
  const bool shared = pr.heads != pr.kv_heads;
  const int64_t cd_chunks =
      plan.split ? int64_t(pr.batch) * ((pr.k_len + attention::kHopperBackwardKeyTile - 1) / attention::kHopperBackwardKeyTile)
                 : 0;
  // The float32 buffers the kernel adds into, in one allocation cleared by one memset (each a multiple of 4 floats:
  // kv_elements counts whole rows of D ≥ 32): dA or dK' (grouped heads), dB, the key-scale column sums, dV.
  const int64_t a_count = plan.split || shared ? kv_elements : 0;
  const int64_t b_count = plan.split && pr.rotary_dim > 0 ? kv_elements : 0;
  const int64_t cd_count = cd_chunks * pr.heads * 2 * D;
  const int64_t v_count = shared ? kv_elements : 0;
  const int64_t zeroed_count = a_count + b_count + cd_count + v_count;
  Scratch zeroed(size_t(std::max<int64_t>(zeroed_count, 8)) * sizeof(float));
  if (zeroed_count > 0)
    check(cudaMemsetAsync(zeroed.as<float>(), 0, size_t(zeroed_count) * sizeof(float), stream()),
          "attention backward: clearing the float32 gradient accumulators");
  float* const a_buf = zeroed.as<float>();
  float* const b_buf = a_buf + a_count;
  float* const cd_buf = b_buf + b_count;
  float* const v_buf = cd_buf + cd_count;
  if (plan.split) {
    pp.split_grad_a = a_buf;
    if (b_count) pp.split_grad_b = b_buf;
    pp.split_grad_cd = cd_buf;
  } else if (shared) {
    pp.grad_k_accum = a_buf;
  } else {
    dk = std::make_unique<Scratch>(size_t(std::max<int64_t>(kv_elements, 8)) * sizeof(float));  // stored, not added
    pp.grad_k_accum = dk->as<float>();
  }
  pp.grad_v_accum = shared ? v_buf : nullptr;
  attention::launch_backward(pp, D, false, kernel, rotary_in_conversion ? &rotary : nullptr);
  if (dq) attention::launch_untransform_q(p, D, plan.anchor, dq->as<float>(), reinterpret_cast<attention::bf16*>(grad_q));
  if (plan.split) {
    attention::launch_untransform_k_split(p, D, plan.anchor, a_buf, b_count ? b_buf : nullptr,
                                          reinterpret_cast<attention::bf16*>(grad_k), cd_buf, cd_chunks, grad_key_scale);
  } else {
    attention::launch_untransform_k(p, D, pr.kv_heads, plan.anchor, pp.grad_k_accum,
                                    reinterpret_cast<attention::bf16*>(grad_k), pr.key_scale ? grad_key_scale : nullptr);
  }
  if (shared) attention::launch_to_bf16(v_buf, reinterpret_cast<attention::bf16*>(grad_v), kv_elements);
}

}  // namespace

const char* attention_transform_plan(const AttentionProblem& problem, const AttentionChoices& choices) {
  if (problem.rotary_dim == 0 && !problem.key_scale) return "none";
  const TransformPlan forward = plan_transform(problem, Pass::Forward, choices),
                      backward = plan_transform(problem, Pass::Backward, choices);
  if (forward.chunk > 0) {
    if (backward.prepass) throw std::logic_error("attention: a chunked forward with a pre-pass backward");
    return forward.split ? "chunked-split" : "chunked";
  }
  if (forward.prepass && backward.prepass) return forward.split ? "split" : "prepass";
  if (forward.prepass) return forward.split ? "split-forward" : "prepass-forward";
  if (backward.prepass) return backward.split ? "split-backward" : "prepass-backward";
  return "kernel";
}

void attention_forward(const AttentionProblem& problem, const char* q, const char* k, const char* v, char* out,
                       float* lse, const AttentionChoices& choices) {
  if (problem.dtype == kF32) {
    validate_shape(problem);
    const int64_t nq = problem.q_elements(), nk = problem.kv_elements();
    const Bf16Copy q16(q, nq), k16(k, nk), v16(v, nk);
    Scratch out_bf16(size_t(std::max<int64_t>(nq, 8)) * 2);
    AttentionProblem narrow = problem;
    narrow.dtype = kBf16;
    attention_forward(narrow, q16.get(), k16.get(), v16.get(), out_bf16.as<char>(), lse, choices);
    attention::launch_to_f32(out_bf16.as<attention::bf16>(), reinterpret_cast<float*>(out), nq);
    return;
  }
  Prepared prep = prepare(problem, q, k, v);
  Params& p = prep.params;
  require_aligned(out, "out");
  require(lse != nullptr, "lse is null");
  p.out = reinterpret_cast<attention::bf16*>(out);
  p.lse = lse;
  if (problem.q_len == 0) return;
  const bool decode = choices.path == AttentionPath::Decode ||
                      (choices.path == AttentionPath::Auto && attention::prefer_decode(problem.heads, problem.kv_heads, problem.q_len));
  if (decode) {
    attention::launch_decode(p, problem.head_dim);  // applies the transform itself (to q only)
    return;
  }
  const TransformPlan plan = prep.transform ? plan_transform(problem, Pass::Forward, choices) : TransformPlan{};
  if (plan.chunk > 0) {
    forward_chunked(problem, p, plan, choices.forward);
  } else if (plan.prepass) {
    const Pretransformed pt = pretransform(problem, p, plan, Pass::Forward);
    attention::launch_forward_tiled(pt.params, problem.head_dim, false, choices.forward);
  } else {
    attention::launch_forward_tiled(p, problem.head_dim, prep.transform, choices.forward);
  }
}

void attention_decode(const AttentionProblem& problem, const char* q, const char* k, const char* v, char* out, float* lse) {
  AttentionChoices choices;
  choices.path = AttentionPath::Decode;
  attention_forward(problem, q, k, v, out, lse, choices);
}

void attention_backward(const AttentionProblem& problem, const char* q, const char* k, const char* v, const char* out,
                        const float* lse, const char* grad_out, char* grad_q, char* grad_k, char* grad_v,
                        float* grad_key_scale, const AttentionChoices& choices) {
  if (problem.dtype == kF32) {
    validate_shape(problem);
    const int64_t nq = problem.q_elements(), nk = problem.kv_elements();
    const Bf16Copy q16(q, nq), k16(k, nk), v16(v, nk), out16(out, nq), go16(grad_out, nq);
    Scratch grads(size_t(std::max<int64_t>(nq + 2 * nk, 8)) * 2);
    attention::bf16* gq = grads.as<attention::bf16>();
    AttentionProblem narrow = problem;
    narrow.dtype = kBf16;
    attention_backward(narrow, q16.get(), k16.get(), v16.get(), out16.get(), lse, go16.get(), reinterpret_cast<char*>(gq),
                       reinterpret_cast<char*>(gq + nq), reinterpret_cast<char*>(gq + nq + nk), grad_key_scale, choices);
    attention::launch_to_f32(gq, reinterpret_cast<float*>(grad_q), nq);
    attention::launch_to_f32(gq + nq, reinterpret_cast<float*>(grad_k), nk);
    attention::launch_to_f32(gq + nq + nk, reinterpret_cast<float*>(grad_v), nk);
    return;
  }
  Prepared prep = prepare(problem, q, k, v);
  Params& p = prep.params;
  require_aligned(out, "out");
  require_aligned(grad_out, "grad_out");
  require_aligned(grad_q, "grad_q");
  require_aligned(grad_k, "grad_k");
  require_aligned(grad_v, "grad_v");
  require(lse != nullptr, "lse is null");
  require(!problem.key_scale || grad_key_scale, "a key scale needs grad_key_scale");
  p.lse = const_cast<float*>(lse);
  p.grad_out = reinterpret_cast<const attention::bf16*>(grad_out);
  p.grad_q = reinterpret_cast<attention::bf16*>(grad_q);
  p.grad_k = reinterpret_cast<attention::bf16*>(grad_k);
  p.grad_v = reinterpret_cast<attention::bf16*>(grad_v);
  const int D = problem.head_dim;
  // The pre-pass path's post-passes overwrite grad_key_scale; elsewhere the kernels add into it.
  const auto clear_grad_key_scale = [&] {
    if (problem.key_scale)
      check(cudaMemsetAsync(grad_key_scale, 0, size_t(problem.heads) * D * sizeof(float), stream()),
            "attention backward: clearing grad_key_scale");
  };
  if (problem.key_scale) p.grad_key_scale = grad_key_scale;
  const int64_t kv_elements = int64_t(problem.batch) * problem.kv_heads * problem.k_len * D;
  if (kv_elements == 0) {
    // No keys: every query saw nothing, so dQ (and the key scale's gradient) is zero.
    clear_grad_key_scale();
    const int64_t q_elements = int64_t(problem.batch) * problem.heads * problem.q_len * D;
    check(cudaMemsetAsync(grad_q, 0, size_t(q_elements) * 2, stream()), "attention backward: clearing grad_q");
    return;
  }
  Scratch delta(std::max<size_t>(1, size_t(problem.batch) * problem.heads * problem.q_len) * sizeof(float));
  p.delta = delta.as<float>();
  attention::launch_delta(p, reinterpret_cast<const attention::bf16*>(out), delta.as<float>(), D);
  if (prep.transform) {
    const TransformPlan plan = plan_transform(problem, Pass::Backward, choices);
    if (plan.prepass) return backward_prepass(problem, p, plan, grad_q, grad_k, grad_v, grad_key_scale, choices.backward);
  }
  clear_grad_key_scale();

  const bool grouped = problem.heads != problem.kv_heads;
  std::unique_ptr<Scratch> accum;
  if (grouped) {
    accum = std::make_unique<Scratch>(size_t(2 * kv_elements) * sizeof(float));
    check(cudaMemsetAsync(accum->as<float>(), 0, size_t(2 * kv_elements) * sizeof(float), stream()),
          "attention backward: clearing the dK/dV accumulators");
    p.grad_k_accum = accum->as<float>();
    p.grad_v_accum = accum->as<float>() + kv_elements;
  }
  attention::launch_backward(p, D, prep.transform, choices.backward);
  if (grouped) {
    attention::launch_to_bf16(p.grad_k_accum, p.grad_k, kv_elements);
    attention::launch_to_bf16(p.grad_v_accum, p.grad_v, kv_elements);
  }
}

}  // namespace andromeda::cuda
