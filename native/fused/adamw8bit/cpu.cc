// 8-bit AdamW over many tensors on the CPU (semantics: adamw8bit.h). The quantization blocks of all tensors are
// gathered into chunks of kChunkBlocks blocks and the chunks spread over the threads; a block is dequantized,
// updated and requantized in a thread's local arrays. Blocks are independent and the absmax is a maximum (exact
// in any order), so any thread count gives the same bits.
//
// Two forms of the block, chosen at run time (simd.h) and giving the same bits:
//  - portable: one element at a time, with adamw8bit.h's branching nearest-code search. Random moments make that
//    search's walk unpredictable, and its mispredictions are most of this form's time.
//  - AVX-512: sixteen elements at a time. The update is the same float32 operations as separate vector
//    multiplies, adds, square roots and divides (never fused into FMAs), and the nearest-code search reads the
//    index's start and the map values above it by gathers and picks among them with masks, with no branch on the
//    data. That covers every map whose search walks at most three steps from its start (bitsandbytes' maps do);
//    other maps take the portable form.
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/kernels.h"
#include "../../cpu/parallel.h"
#include "../../cpu/simd.h"
#include "../../cpu/target_region.h"
#include "adamw8bit.h"
#include "../adamw/clip.h"

#if defined(__x86_64__)
#include <immintrin.h>
// GCC 12 reports its own AVX-512 helpers (which start from an undefined vector) as uninitialised.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace andromeda::cpu {
namespace {

constexpr int64_t kChunkBlocks = 64;

struct Constants {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
};

struct Chunk {
  const AdamW8bitTensorArgs* tensor;
  int64_t first_block, end_block;
};

/** A map with the index of its nearest-code search. */
struct IndexedMap {
  const float* values;
  AdamW8bitCodeIndex index;
};

/** Requantizes one block's new moments (x[0..n)) into codes and returns their absmax. */
float requantize(const float* x, int64_t n, const IndexedMap& map, uint8_t* codes) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; i++) absmax = std::max(absmax, std::fabs(x[i]));
  const float inverse = adamw8bit_inverse_scale(absmax);
  for (int64_t i = 0; i < n; i++) codes[i] = adamw8bit_nearest_code(map.values, map.index.start, adamw8bit_scaled(x[i], inverse));
  return absmax;
}

template <typename G>
void update_block_portable(const AdamW8bitTensorArgs& t, int64_t block, const IndexedMap& signed_map,
                  const IndexedMap& unsigned_map, const Constants& k) {
  const int64_t begin = block * kAdamW8bitBlock, n = std::min(t.count, begin + kAdamW8bitBlock) - begin;
  const G* grad = reinterpret_cast<const G*>(t.grad) + begin;
  float* param = t.param + begin;
  uint8_t* m_codes = t.m + begin;
  uint8_t* v_codes = t.v + begin;
  const float m_scale = t.m_absmax[block], v_scale = t.v_absmax[block];
  float m[kAdamW8bitBlock], v[kAdamW8bitBlock];
  for (int64_t i = 0; i < n; i++) {
    const float g = float(load(grad + i)) * k.grad_scale;
    const float m_old = signed_map.values[m_codes[i]] * m_scale, v_old = unsigned_map.values[v_codes[i]] * v_scale;
    const float mi = k.b1 * m_old + (1.0f - k.b1) * g;
    const float vi = k.b2 * v_old + (1.0f - k.b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denominator = std::sqrt(vi) * k.inv_sqrt_bc2 + k.eps;
    param[i] = param[i] * k.decay - (k.step * mi) / denominator;
  }
  t.m_absmax[block] = requantize(m, n, signed_map, m_codes);
  t.v_absmax[block] = requantize(v, n, unsigned_map, v_codes);
  if (!t.shadow) return;
  if (DType(t.shadow_dtype) == DType::BF16) {
    bf16* copy = reinterpret_cast<bf16*>(t.shadow) + begin;
    for (int64_t i = 0; i < n; i++) store(copy + i, param[i]);
  } else {
    f16* copy = reinterpret_cast<f16*>(t.shadow) + begin;
    for (int64_t i = 0; i < n; i++) store(copy + i, param[i]);
  }
}

/**
 * One map's nearest-code search in the form the vector block reads: the index's start codes widened to 32 bits
 * (gathers read 32-bit elements) and the map followed by +inf, so that the values up to kMaxWalk + 1 above any
 * start can be read without a bounds check (+inf is above every x the search sees, so the walk never steps onto
 * them).
 */
struct GatherSearch {
  static constexpr int kMaxWalk = kAdamW8bitMaxWalk;
  static constexpr int kPadding = kMaxWalk + 1;
  int32_t start[AdamW8bitCodeIndex::kBuckets];
  float map[kAdamW8bitMapSize + kPadding];
  bool exact;  // no search of this map walks further than kMaxWalk, so the vector search is exact for it

  explicit GatherSearch(const IndexedMap& indexed) {
    for (int b = 0; b < AdamW8bitCodeIndex::kBuckets; b++) start[b] = indexed.index.start[b];
    for (int i = 0; i < kAdamW8bitMapSize; i++) map[i] = indexed.values[i];
    for (int i = kAdamW8bitMapSize; i < kAdamW8bitMapSize + kPadding; i++) map[i] = INFINITY;
    exact = indexed.index.max_walk <= kMaxWalk;
  }
};

#if defined(__x86_64__)
ANDROMEDA_TARGET_BEGIN("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
// The portable form's float32 operations, each rounded: GCC fuses a multiply and an add into an FMA in C++ (in
// every -std mode) wherever the target has one, and the baseline target has none. Clang fuses only within one
// expression of the source, never the separate intrinsics here.
#if !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
namespace avx512 {

constexpr int kLanes = 16;

/** The lanes of a block's group of 16 that hold elements: all, or the block's tail. */
inline __mmask16 lanes_in(int64_t remaining) {
  return remaining >= kLanes ? __mmask16(0xffff) : __mmask16((1u << remaining) - 1);
}

/** 16 gradients as float32: exact widening for bfloat16 and float16 (as dtype.h's load), rounding for float64. */
template <typename G>
__m512 load_gradients(const G* p, __mmask16 lanes);
template <>
__m512 load_gradients<float>(const float* p, __mmask16 lanes) {
  return _mm512_maskz_loadu_ps(lanes, p);
}
template <>
__m512 load_gradients<double>(const double* p, __mmask16 lanes) {
  const __m256 low = _mm512_cvtpd_ps(_mm512_maskz_loadu_pd(__mmask8(lanes), p));
  const __m256 high = _mm512_cvtpd_ps(_mm512_maskz_loadu_pd(__mmask8(lanes >> 8), p + 8));
  return _mm512_insertf32x8(_mm512_castps256_ps512(low), high, 1);
}
template <>
__m512 load_gradients<bf16>(const bf16* p, __mmask16 lanes) {
  const __m512i halves = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(halves, 16));
}
template <>
__m512 load_gradients<f16>(const f16* p, __mmask16 lanes) {
  // Exact for every value; a signalling NaN comes back quieted, which the multiply by the gradient scale does to
  // dtype.h's unquieted one as well.
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, p));
}

/** 16 codes' map values. */
inline __m512 dequantize(const uint8_t* codes, __mmask16 lanes, const float* map) {
  const __m512i index = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, codes));
  return _mm512_i32gather_ps(index, map, 4);
}

/** AdamW8bitCodeIndex::bucket of 16 values. */
inline __m512i buckets(__m512 x) {
  using Index = AdamW8bitCodeIndex;
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i abs_bits = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
  const __m512i low = _mm512_set1_epi32(int32_t(Index::kLowestBinade << 23));
  const __m512i part = _mm512_add_epi32(_mm512_srli_epi32(_mm512_sub_epi32(abs_bits, low), 23 - Index::kSubBits),
                                        _mm512_set1_epi32(1));
  const __mmask16 tiny = _mm512_cmplt_epu32_mask(abs_bits, low);
  const __m512i magnitude =
      _mm512_maskz_mov_epi32(__mmask16(~tiny), _mm512_min_epu32(part, _mm512_set1_epi32(Index::kMagnitudes - 1)));
  const __mmask16 negative = _mm512_movepi32_mask(bits);
  return _mm512_mask_sub_epi32(_mm512_add_epi32(_mm512_set1_epi32(Index::kMagnitudes), magnitude), negative,
                               _mm512_set1_epi32(Index::kMagnitudes - 1), magnitude);
}

/**
 * adamw8bit_nearest_code of 16 values, for a map whose search walks at most kMaxWalk steps: the walk's
 * comparisons are made at once against the kMaxWalk values above the start, and the nearer of the values around
 * the code they reach is taken with the scalar form's comparison of the two float32 differences.
 */
inline __m512i nearest_codes(__m512 x, const GatherSearch& search) {
  constexpr int kMaxWalk = GatherSearch::kMaxWalk;
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i start = _mm512_i32gather_epi32(buckets(x), search.start, 4);
  __m512 from_start[kMaxWalk + 2];  // map[start + j]
  for (int j = 0; j < kMaxWalk + 2; j++) from_start[j] = _mm512_i32gather_ps(start, search.map + j, 4);
  // The map rises, so a lane that takes step j has taken the steps before it.
  __m512i lower = start;
  __m512 below = from_start[0], above = from_start[1];
  for (int j = 1; j <= kMaxWalk; j++) {
    const __mmask16 steps = _mm512_cmp_ps_mask(from_start[j], x, _CMP_LE_OQ);
    lower = _mm512_mask_add_epi32(lower, steps, lower, one);
    below = _mm512_mask_blend_ps(steps, below, from_start[j]);
    above = _mm512_mask_blend_ps(steps, above, from_start[j + 1]);
  }
  const __mmask16 upper_nearer =
      _mm512_cmp_ps_mask(_mm512_sub_ps(above, x), _mm512_sub_ps(x, below), _CMP_LT_OQ);
  const __m512i walked = _mm512_mask_add_epi32(lower, upper_nearer, lower, one);
  // Outside (map[0], map[255]) the scalar form answers first: 0 at or below map[0] (and for NaN), 255 at or above.
  const __mmask16 above_first = _mm512_cmp_ps_mask(x, _mm512_set1_ps(search.map[0]), _CMP_GT_OQ);
  const __mmask16 below_last =
      _mm512_cmp_ps_mask(x, _mm512_set1_ps(search.map[kAdamW8bitMapSize - 1]), _CMP_LT_OQ);
  return _mm512_maskz_mov_epi32(above_first,
                                _mm512_mask_mov_epi32(_mm512_set1_epi32(kAdamW8bitMapSize - 1), below_last, walked));
}

/** requantize's absmax and codes for one block's moments x[0..n), 16 at a time. */
inline float requantize(const float* x, int64_t n, const GatherSearch& search, uint8_t* codes) {
  // max(|x|, running) keeps the running maximum when |x| is NaN, as requantize's std::max(running, |x|) does.
  __m512 running = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += kLanes)
    running = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(lanes_in(n - i), x + i)), running);
  const float absmax = _mm512_reduce_max_ps(running);
  const float inverse_scale = adamw8bit_inverse_scale(absmax);
  const __m512 inverse = _mm512_set1_ps(inverse_scale);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 lanes = lanes_in(n - i);
    const __m512 scaled =
        inverse_scale > 0.0f ? _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, x + i), inverse) : _mm512_setzero_ps();
    _mm512_mask_cvtepi32_storeu_epi8(codes + i, lanes, nearest_codes(scaled, search));
  }
  return absmax;
}

/** dtype.h's float_to_bf16 of 16 values: round to nearest even; NaN quieted and truncated. */
inline void store_bf16(bf16* out, __m512 x, __mmask16 lanes) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i high = _mm512_srli_epi32(bits, 16);
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(high, _mm512_set1_epi32(1)))),
      16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i halves = _mm512_mask_or_epi32(rounded, nan, high, _mm512_set1_epi32(0x40));
  _mm512_mask_cvtepi32_storeu_epi16(out, lanes, halves);
}

/** dtype.h's float_to_f16 of 16 values: IEEE round to nearest even; every NaN becomes the sign and 0x7e00. */
inline void store_f16(f16* out, __m512 x, __mmask16 lanes) {
  const __m256i rounded = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i nan_halves = _mm512_or_si512(
      _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 16), _mm512_set1_epi32(0x8000)),
      _mm512_set1_epi32(0x7e00));
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m256i halves = _mm256_mask_blend_epi16(nan, rounded, _mm512_cvtepi32_epi16(nan_halves));
  _mm256_mask_storeu_epi16(out, lanes, halves);
}

/** update_block_portable's results for one block, 16 elements at a time. */
template <typename G>
void update_block(const AdamW8bitTensorArgs& t, int64_t block, const IndexedMap& signed_map,
                  const IndexedMap& unsigned_map, const GatherSearch& signed_search,
                  const GatherSearch& unsigned_search, const Constants& k) {
  const int64_t begin = block * kAdamW8bitBlock, n = std::min(t.count, begin + kAdamW8bitBlock) - begin;
  const G* grad = reinterpret_cast<const G*>(t.grad) + begin;
  float* param = t.param + begin;
  uint8_t* m_codes = t.m + begin;
  uint8_t* v_codes = t.v + begin;
  const __m512 m_scale = _mm512_set1_ps(t.m_absmax[block]), v_scale = _mm512_set1_ps(t.v_absmax[block]);
  const __m512 b1 = _mm512_set1_ps(k.b1), b2 = _mm512_set1_ps(k.b2);
  const __m512 one_minus_b1 = _mm512_set1_ps(1.0f - k.b1), one_minus_b2 = _mm512_set1_ps(1.0f - k.b2);
  const __m512 eps = _mm512_set1_ps(k.eps), decay = _mm512_set1_ps(k.decay), step = _mm512_set1_ps(k.step);
  const __m512 inv_sqrt_bc2 = _mm512_set1_ps(k.inv_sqrt_bc2), grad_scale = _mm512_set1_ps(k.grad_scale);
  alignas(64) float m[kAdamW8bitBlock], v[kAdamW8bitBlock];
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 lanes = lanes_in(n - i);
    const __m512 g = _mm512_mul_ps(load_gradients(grad + i, lanes), grad_scale);
    const __m512 m_old = _mm512_mul_ps(dequantize(m_codes + i, lanes, signed_map.values), m_scale);
    const __m512 v_old = _mm512_mul_ps(dequantize(v_codes + i, lanes, unsigned_map.values), v_scale);
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, m_old), _mm512_mul_ps(one_minus_b1, g));
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, v_old), _mm512_mul_ps(_mm512_mul_ps(one_minus_b2, g), g));
    _mm512_store_ps(m + i, mi);
    _mm512_store_ps(v + i, vi);
    const __m512 denominator = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), inv_sqrt_bc2), eps);
    const __m512 updated = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, param + i), decay),
                                         _mm512_div_ps(_mm512_mul_ps(step, mi), denominator));
    _mm512_mask_storeu_ps(param + i, lanes, updated);
  }
  t.m_absmax[block] = requantize(m, n, signed_search, m_codes);
  t.v_absmax[block] = requantize(v, n, unsigned_search, v_codes);
  if (!t.shadow) return;
  const bool bf16_copy = DType(t.shadow_dtype) == DType::BF16;
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 lanes = lanes_in(n - i);
    const __m512 p = _mm512_maskz_loadu_ps(lanes, param + i);
    if (bf16_copy) {
      store_bf16(reinterpret_cast<bf16*>(t.shadow) + begin + i, p, lanes);
    } else {
      store_f16(reinterpret_cast<f16*>(t.shadow) + begin + i, p, lanes);
    }
  }
}

}  // namespace avx512
ANDROMEDA_TARGET_END
#endif

void check_maps(const float* signed_map, const float* unsigned_map) {
  for (int i = 0; i < kAdamW8bitMapSize; i++) {
    const bool finite = std::isfinite(signed_map[i]) && std::isfinite(unsigned_map[i]);
    if (!finite || (i > 0 && (!(signed_map[i - 1] < signed_map[i]) || !(unsigned_map[i - 1] < unsigned_map[i])))) {
      throw std::invalid_argument("adamw8bitMany: the quantization maps must be finite and strictly increasing");
    }
  }
}

}  // namespace

void adamw8bit_many(const AdamW8bitTensorArgs* tensors, size_t n, const float* signed_map, const float* unsigned_map,
                    const AdamWArgs& args) {
  check_maps(signed_map, unsigned_map);
  AdamWArgs a = args;
  const bool step = resolve_clip_on_host(a, "adamw8bitMany");
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < n; i++) {
    const AdamW8bitTensorArgs& t = tensors[i];
    if (t.shadow && t.shadow_dtype != int(DType::BF16) && t.shadow_dtype != int(DType::F16)) {
      throw std::invalid_argument("adamw8bitMany: the weight copy of tensor " + std::to_string(i) + " must be bfloat16 or float16");
    }
    if (t.grad_dtype < 0 || t.grad_dtype > int(DType::F16)) {
      throw std::invalid_argument("adamw8bitMany: the gradient of tensor " + std::to_string(i) + " is not a float dtype");
    }
    const int64_t blocks = (t.count + kAdamW8bitBlock - 1) / kAdamW8bitBlock;
    for (int64_t b = 0; b < blocks; b += kChunkBlocks) chunks.push_back({&t, b, std::min(blocks, b + kChunkBlocks)});
  }
  if (!step) return;  // a norm that is not finite: the step is skipped
  IndexedMap signed_indexed{signed_map, {}}, unsigned_indexed{unsigned_map, {}};
  signed_indexed.index.build(signed_map);
  unsigned_indexed.index.build(unsigned_map);
  const Constants k{float(a.beta1), float(a.beta2), float(a.eps), float(1.0 - a.lr * a.weight_decay),
                    float(a.lr / a.bias_correction1), float(1.0 / std::sqrt(a.bias_correction2)), float(a.grad_scale)};
#if defined(__x86_64__)
  if (active_isa() == Isa::Avx512) {
    const auto signed_search = std::make_unique<GatherSearch>(signed_indexed);
    const auto unsigned_search = std::make_unique<GatherSearch>(unsigned_indexed);
    if (signed_search->exact && unsigned_search->exact) {
      parallel_for(int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; c++) {
          const Chunk& chunk = chunks[size_t(c)];
          const AdamW8bitTensorArgs& t = *chunk.tensor;
          ANDROMEDA_DISPATCH_FLOAT(t.grad_dtype, {
            for (int64_t b = chunk.first_block; b < chunk.end_block; b++)
              avx512::update_block<T>(t, b, signed_indexed, unsigned_indexed, *signed_search, *unsigned_search, k);
          });
        }
      });
      return;
    }
  }
#endif
  parallel_for(int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const Chunk& chunk = chunks[size_t(c)];
      const AdamW8bitTensorArgs& t = *chunk.tensor;
      ANDROMEDA_DISPATCH_FLOAT(t.grad_dtype, {
        for (int64_t b = chunk.first_block; b < chunk.end_block; b++)
          update_block_portable<T>(t, b, signed_indexed, unsigned_indexed, k);
      });
    }
  });
}

}  // namespace andromeda::cpu
