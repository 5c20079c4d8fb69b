// The nearest-code search of 8-bit AdamW (adamw8bit.h) as one 16-byte table load and three comparisons: the CUDA
// form's search for maps that allow it (cuda.cu), checked against the reference search over the float32 space by
// bench/cuda/adamw8bit-records-check.cc.
//
// T[c], for codes c = 1 … 255, is the least float32 x for which the reference (adamw8bit_nearest_code) picks code c
// over c − 1: between map[c − 1] and map[c] its comparison of the two float32 differences turns once, from the lower
// code to the upper, so bisection over the floats between them finds it. The reference's code of any x but NaN is
// then the number of thresholds at or below x. For each bucket of AdamW8bitCodeIndex's bucketing, a record holds s,
// the code of the bucket's least value, and the thresholds T[s + 1 … s + 3] (NaN past code 255: no x is at or above
// NaN), so that
//   code(x) = s + (x ≥ T[s + 1]) + (x ≥ T[s + 2]) + (x ≥ T[s + 3]),   NaN: code 0,
// which is the reference's code wherever no bucket spans more than four codes (bitsandbytes' maps span at most
// three; build() checks, and the kernel searches with the loop for maps that do not qualify).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "adamw8bit.h"

namespace andromeda {

/** One bucket's record: the thresholds of the three codes above its lowest, then that code. 16 bytes, one load. */
struct alignas(16) AdamW8bitCodeRecord {
  float above[3];
  int32_t first;
};

/** The reference's code of x from its bucket's record. */
ANDROMEDA_ADAMW8BIT_HD inline int adamw8bit_record_code(const AdamW8bitCodeRecord* records, float x) {
  const AdamW8bitCodeRecord r = records[AdamW8bitCodeIndex::bucket(x)];
  const int code = r.first + int(x >= r.above[0]) + int(x >= r.above[1]) + int(x >= r.above[2]);
  return x == x ? code : 0;
}

struct AdamW8bitThresholdRecords {
  AdamW8bitCodeRecord record[AdamW8bitCodeIndex::kBuckets];

  /** The records of a strictly increasing map; false where a bucket spans more than four codes. */
  bool build(const float* map) {
    float threshold[kAdamW8bitMapSize + kAdamW8bitMaxWalk];
    threshold[0] = -INFINITY;
    for (int c = 1; c < kAdamW8bitMapSize; c++) threshold[c] = least_upper(map, c);
    for (int c = kAdamW8bitMapSize; c < kAdamW8bitMapSize + kAdamW8bitMaxWalk; c++) threshold[c] = NAN;
    AdamW8bitCodeIndex index;
    index.build(map);
    const auto code_of = [&](float x) { return int(adamw8bit_nearest_code(map, index.start, x)); };
    for (int b = 0; b < AdamW8bitCodeIndex::kBuckets; b++) {
      const int first = code_of(AdamW8bitCodeIndex::lower_bound(b));
      const int last = b + 1 < AdamW8bitCodeIndex::kBuckets ? code_of(AdamW8bitCodeIndex::lower_bound(b + 1))
                                                              : kAdamW8bitMapSize - 1;
      if (last - first > kAdamW8bitMaxWalk) return false;
      record[b] = {{threshold[first + 1], threshold[first + 2], threshold[first + 3]}, first};
    }
    return true;
  }

 private:
  /** Float32 bits as an unsigned key that orders as the floats do (-0 just below +0). */
  static uint32_t key(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return (u >> 31) ? ~u : (u | 0x80000000u);
  }
  static float from_key(uint32_t k) {
    const uint32_t u = (k >> 31) ? (k & 0x7fffffffu) : ~k;
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
  }
  /** T[c]: the least x in (map[c − 1], map[c]] with map[c] − x < x − map[c − 1] in float32 (true at map[c]). */
  static float least_upper(const float* map, int c) {
    const auto upper = [&](float x) {
      const volatile float to_upper = map[c] - x, to_lower = x - map[c - 1];  // rounded to float32, as the kernels
      return to_upper < to_lower;
    };
    uint32_t below = key(map[c - 1]), at_or_above = key(map[c]);  // upper() false at map[c − 1], true at map[c]
    while (at_or_above - below > 1) {
      const uint32_t mid = below + (at_or_above - below) / 2;
      (upper(from_key(mid)) ? at_or_above : below) = mid;
    }
    return from_key(at_or_above);
  }
};

}  // namespace andromeda
