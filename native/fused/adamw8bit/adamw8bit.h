// 8-bit AdamW over many tensors with shared hyperparameters (block-wise dynamic quantization, as bitsandbytes'
// 8-bit optimizers). Master weights stay float32; each moment element is stored as a one-byte code into a
// 256-value quantization map (the signed dynamic map for m, the unsigned one for v: src/optim/adamw8bit-map.ts
// builds both and passes them to every call) scaled by a float32 absmax shared by each block of
// kAdamW8bitBlock consecutive elements. Per block, one step:
//   dequantize  m = signed_map[m_code] · m_absmax,  v = unsigned_map[v_code] · v_absmax
//   update      exactly `adamw`'s float32 arithmetic: g = grad · grad_scale, m ← β1·m + (1−β1)·g,
//               v ← β2·v + (1−β2)·g·g, p ← p·(1 − lr·wd) − (lr/bc1)·m / (√v · (1/√bc2) + eps)
//   requantize  absmax = max |moment| over the block; code = the nearest map value to moment · inverse (ties to
//               the lower code), inverse = min(1 / absmax, FLT_MAX) rounded once per block (bitsandbytes multiplies
//               by the block's reciprocal too: one division a block instead of one a moment); an all-zero block
//               keeps absmax 0 and the code of 0
// The weight update uses the unquantized new moments; only their storage is 8-bit. When `shadow` is set the
// updated weights are also stored there rounded to `shadow_dtype` (bfloat16 or float16), in the same pass.
// Both engines take the same float32 operations in the same order, so they give the same bits.
// Forms: cpu.cc, cuda.cu.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace andromeda {

/** Elements that share one absmax. */
constexpr int64_t kAdamW8bitBlock = 256;
/** Values in each quantization map (one per code). */
constexpr int kAdamW8bitMapSize = 256;

struct AdamW8bitTensorArgs {
  float* param;
  int grad_dtype;
  const char* grad;
  uint8_t* m;        // count codes into the signed map
  uint8_t* v;        // count codes into the unsigned map
  float* m_absmax;   // ceil(count / kAdamW8bitBlock)
  float* v_absmax;
  int64_t count;
  int shadow_dtype;
  char* shadow;  // null: no low-precision copy
};

/** A map stored as it is: value i at index i (the CPU form, and the maps as they are passed in). */
struct AdamW8bitDenseMap {
#if defined(__CUDACC__)
  __host__ __device__
#endif
  static constexpr int at(int i) { return i; }
};

#if defined(__CUDACC__)
#define ANDROMEDA_ADAMW8BIT_HD __host__ __device__
#else
#define ANDROMEDA_ADAMW8BIT_HD
#endif

ANDROMEDA_ADAMW8BIT_HD inline uint32_t adamw8bit_float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

/**
 * Where the nearest-code search of one map starts, so that it takes a few steps instead of a binary search's
 * eight dependent probes (on CUDA those probes were the 8-bit step's bottleneck: a warp's 32 searches hit the same
 * shared-memory banks). x's float32 bits pick a bucket: its sign, then |x| in 32 equal parts of each binade from
 * 2^-32 to 1, with all smaller magnitudes in one bucket and all larger ones in another. start[bucket] is the
 * largest code whose value is at or below every x of the bucket (0 if none), so the search that steps up from it
 * while the next value is still <= x ends on the same code as a binary search, for any sorted map: the start
 * never passes the answer. bitsandbytes' dynamic maps hold at most three values per bucket (seven of the unsigned
 * map's buckets hold three).
 */
struct AdamW8bitCodeIndex {
  static constexpr int kSubBits = 5;                     // 32 buckets per binade
  static constexpr uint32_t kLowestBinade = 127 - 32;    // biased exponent of 2^-32
  static constexpr int kMagnitudes = (32 << kSubBits) + 2;  // [0, 2^-32), 1,024 parts of [2^-32, 1), [1, inf]
  static constexpr int kBuckets = 2 * kMagnitudes;          // negatives descending, then non-negatives ascending

  uint8_t start[kBuckets];
  /** The most steps any search from this index takes (build's bound): 3 for bitsandbytes' maps. */
  int max_walk;

  /** The magnitude part of |x|'s bucket, from its bits without the sign. */
  ANDROMEDA_ADAMW8BIT_HD static int magnitude(uint32_t abs_bits) {
    constexpr uint32_t low = kLowestBinade << 23;
    if (abs_bits < low) return 0;
    const uint32_t part = ((abs_bits - low) >> (23 - kSubBits)) + 1;
    return part < uint32_t(kMagnitudes - 1) ? int(part) : kMagnitudes - 1;
  }

  /** x's bucket: buckets are ordered as the values in them are. */
  ANDROMEDA_ADAMW8BIT_HD static int bucket(float x) {
    const uint32_t bits = adamw8bit_float_bits(x);
    const int mag = magnitude(bits & 0x7fffffffu);
    return (bits >> 31) ? kMagnitudes - 1 - mag : kMagnitudes + mag;
  }

  /** The least value any x of the bucket can take (-inf for the negatives of magnitude >= 1). */
  static float lower_bound(int bucket) {
    const auto from_bits = [](uint32_t u) {
      float f;
      std::memcpy(&f, &u, sizeof f);
      return f;
    };
    constexpr uint32_t low = kLowestBinade << 23;
    if (bucket >= kMagnitudes) {  // x >= 0: the bucket's own lower end
      const int mag = bucket - kMagnitudes;
      return mag == 0 ? 0.0f : from_bits(low + (uint32_t(mag - 1) << (23 - kSubBits)));
    }
    const int mag = kMagnitudes - 1 - bucket;  // x < 0 (or -0): minus the magnitude's upper end
    if (mag == kMagnitudes - 1) return -INFINITY;
    return -from_bits(low + (uint32_t(mag) << (23 - kSubBits)));
  }

  /** The index of a map sorted ascending. */
  void build(const float* map) {
    int code = 0;
    for (int b = 0; b < kBuckets; b++) {  // lower bounds rise with b, so the start codes do too
      const float lower = lower_bound(b);
      while (code + 1 < kAdamW8bitMapSize && map[code + 1] <= lower) code++;
      start[b] = uint8_t(code);
    }
    max_walk = 0;
    for (int b = 0; b < kBuckets; b++) {
      const int walk = longest_walk(map, b);
      if (walk > max_walk) max_walk = walk;
    }
  }

  /**
   * At least as many steps as the search that starts at bucket b's start can take. Every x of bucket b is at or
   * below the next bucket's lower bound, and the walk stops before code 255 (x < map[255] on that path), so it
   * steps at most once per code above the start that is at or below that bound and below 255.
   */
  int longest_walk(const float* map, int b) const {
    const float bound = b + 1 < kBuckets ? lower_bound(b + 1) : float(INFINITY);
    int steps = 0;
    for (int code = start[b] + 1; code < kAdamW8bitMapSize - 1 && map[code] <= bound; code++) steps++;
    return steps;
  }
};

/**
 * The longest walk the CPU's AVX-512 search covers, and the most codes above a bucket's lowest that CUDA's threshold
 * records hold (threshold_records.h); maps that need more take the searching loop.
 */
constexpr int kAdamW8bitMaxWalk = 3;

/**
 * The factor a block's moments are scaled by before their codes are picked: 1 / absmax rounded to float32, capped at
 * FLT_MAX so that a block of subnormal moments scales into [-1, 1] instead of to infinity (0 for an all-zero block).
 */
ANDROMEDA_ADAMW8BIT_HD inline float adamw8bit_inverse_scale(float absmax) {
  if (!(absmax > 0.0f)) return 0.0f;
#if defined(__CUDA_ARCH__)
  const float inverse = __frcp_rn(absmax);
#else
  const float inverse = 1.0f / absmax;
#endif
  return inverse < FLT_MAX ? inverse : FLT_MAX;
}

/** A moment scaled for its code: moment · inverse where the block has a nonzero absmax, else 0. */
ANDROMEDA_ADAMW8BIT_HD inline float adamw8bit_scaled(float moment, float inverse) {
#if defined(__CUDA_ARCH__)
  return inverse > 0.0f ? __fmul_rn(moment, inverse) : 0.0f;
#else
  return inverse > 0.0f ? moment * inverse : 0.0f;
#endif
}

/**
 * The code whose map value is nearest to x (map sorted ascending; ties to the lower code). Only comparisons and
 * subtractions of float32 values, so every compiler and engine picks the same code. `Layout::at(i)` is where value
 * i sits in `map` (the CUDA form keeps its shared-memory copy padded against bank conflicts); `start` is the map's
 * AdamW8bitCodeIndex::start. The answer is the binary search's for any start at or below it: the largest lo with
 * map[lo] <= x, then the nearer of lo and lo + 1.
 */
template <typename Layout = AdamW8bitDenseMap>
ANDROMEDA_ADAMW8BIT_HD inline uint8_t adamw8bit_nearest_code(const float* map, const uint8_t* start, float x) {
  if (!(x > map[Layout::at(0)])) return 0;  // NaN too
  if (!(x < map[Layout::at(kAdamW8bitMapSize - 1)])) return uint8_t(kAdamW8bitMapSize - 1);
  // map[0] < x < map[255], and map[start] <= x (or start = 0), so the walk stops below 255.
  int lo = start[AdamW8bitCodeIndex::bucket(x)];
  while (map[Layout::at(lo + 1)] <= x) lo++;
  return uint8_t(map[Layout::at(lo + 1)] - x < x - map[Layout::at(lo)] ? lo + 1 : lo);
}

}  // namespace andromeda
