// Host check of the 8-bit AdamW threshold records (native/fused/adamw8bit/threshold_records.h): for bitsandbytes'
// two dynamic maps, built as src/optim/adamw8bit-map.ts builds them, the records' code of every probe must be the
// reference search's (adamw8bit_nearest_code). Probes: every map value, the midpoints of neighbouring values, and one
// float up and down from each; 20 M random values over nine decades either side of 0; every 4,099th float32 bit
// pattern (NaN, ±inf and the subnormals among them); ±0, ±inf, NaN, the least subnormals. Prints the differences
// and exits 1 if there are any. Host code only (g++ or clang++, no GPU):
//   g++ -O2 -std=c++17 -I native bench/cuda/adamw8bit-records-check.cc -o /tmp/records-check && /tmp/records-check
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "fused/adamw8bit/threshold_records.h"

using namespace andromeda;

/** bitsandbytes' dynamic map (create_dynamic_map, 7 exponent bits), in float64 rounded once, ascending. */
static std::vector<float> dynamic_map(bool is_signed) {
  std::vector<double> values = {0, 1};
  for (int i = 0; i < 7; i++) {
    const int fractions = is_signed ? (1 << i) : (1 << (i + 1));
    const double decade = std::pow(10.0, i - 6);
    for (int j = 0; j < fractions; j++) {
      const double low = 0.1 + 0.9 * j / fractions, high = 0.1 + 0.9 * (j + 1) / fractions;
      values.push_back(decade * (low + high) / 2);
      if (is_signed) values.push_back(-decade * (low + high) / 2);
    }
  }
  std::sort(values.begin(), values.end());
  return std::vector<float>(values.begin(), values.end());
}

int main() {
  int failures = 0;
  for (const bool is_signed : {true, false}) {
    const std::vector<float> map = dynamic_map(is_signed);
    if (map.size() != size_t(kAdamW8bitMapSize)) return std::printf("map has %zu values\n", map.size()), 1;
    static AdamW8bitThresholdRecords records;
    AdamW8bitCodeIndex index;
    index.build(map.data());
    const bool built = records.build(map.data());
    long probes = 0, differ = 0;
    const auto check = [&](float x) {
      probes++;
      const int got = adamw8bit_record_code(records.record, x), want = adamw8bit_nearest_code(map.data(), index.start, x);
      if (got != want && differ++ < 8) std::printf("  x = %.9g: records %d, reference %d\n", x, got, want);
    };
    if (built) {
      for (int c = 0; c < kAdamW8bitMapSize; c++) {
        for (const float v : {map[c], c > 0 ? (map[c] + map[c - 1]) / 2 : map[c]}) {
          check(v);
          check(std::nextafter(v, 2.0f));
          check(std::nextafter(v, -2.0f));
        }
      }
      std::mt19937 gen(1);
      std::uniform_real_distribution<float> unit(0, 1);
      for (int i = 0; i < 20000000; i++) check((unit(gen) * 2 - 1) * std::pow(10.0f, -9 * unit(gen)));
      for (uint32_t bits = 0; bits < 0xffffffffu - 4099; bits += 4099) {
        float x;
        std::memcpy(&x, &bits, sizeof x);
        check(x);
      }
      for (const float x : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f, -1e-45f}) check(x);
    }
    std::printf("%s map: records %s, max walk %d; %ld of %ld probes differ\n", is_signed ? "signed" : "unsigned",
                built ? "built" : "NOT BUILT", index.max_walk, differ, probes);
    failures += !built || differ > 0;
  }
  return failures ? 1 : 0;
}
