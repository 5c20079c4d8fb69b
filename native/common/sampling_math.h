// The per-row arithmetic of sampleTokens that both engines must do bit for bit alike (native/cpu/sampling.cc,
// native/cuda/sampling.cu): reading a row's parameters, the penalised and temperature-scaled score of a token, and
// the 64-bit key that orders tokens by score (descending) and then by id (ascending). Every step is a single IEEE
// operation in float (the penalty subtraction an explicit fma), so no compiler contraction or fast-math choice can
// make the engines disagree.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "counter_random.h"

namespace andromeda::sampling {

/** Per-row parameters: float32 [rows, kParamCount] in this order (src/ops/sampling.ts SAMPLING_PARAM_FIELDS). */
enum Param : int {
  kTemperature = 0,
  kTopK = 1,
  kTopP = 2,
  kMinP = 3,
  kRepetitionPenalty = 4,
  kFrequencyPenalty = 5,
  kPresencePenalty = 6,
  kParamCount = 7,
};
/** The most top log-probabilities a row may ask for. */
constexpr int kMaxTopLogprobs = 20;

/**
 * A row's parameters made safe for any float the device buffer may hold: temperature not > 0 (or NaN) is
 * greedy; top-k below 1 or ≥ vocab, top-p not < 1, min-p not > 0 are off; min-p above 1 keeps only the best.
 */
struct RowParams {
  float temperature;
  bool greedy;
  int64_t top_k;  // vocab when off
  bool top_p_on;
  double top_p;
  bool min_p_on;
  float min_p;
  float repetition, frequency, presence;
};

ANDROMEDA_HOST_DEVICE RowParams row_params(const float* p, int64_t vocab) {
  RowParams r;
  r.temperature = p[kTemperature];
  r.greedy = !(r.temperature > 0.0f);
  const float k = p[kTopK];
  r.top_k = (k >= 1.0f && double(k) < double(vocab)) ? int64_t(k) : vocab;
  r.top_p_on = p[kTopP] < 1.0f;
  r.top_p = r.top_p_on ? double(p[kTopP]) : 1.0;
  r.min_p_on = p[kMinP] > 0.0f;
  r.min_p = r.min_p_on ? (p[kMinP] < 1.0f ? p[kMinP] : 1.0f) : 0.0f;
  r.repetition = p[kRepetitionPenalty];
  r.frequency = p[kFrequencyPenalty];
  r.presence = p[kPresencePenalty];
  return r;
}

/**
 * The score of a token: its logit with the penalties of a token seen `count` times (repetition as HF/vLLM:
 * logit / r when positive, logit · r otherwise; then − frequency · count − presence), divided by the
 * temperature unless the row is greedy. NaN becomes −∞ (never chosen); −0 becomes +0 (one key per value).
 */
ANDROMEDA_HOST_DEVICE float token_score(float logit, int32_t count, const RowParams& r) {
  float z = logit;
  if (count > 0) {
    z = z > 0.0f ? z / r.repetition : z * r.repetition;
    z = fmaf(-r.frequency, float(count), z);
    z = z - r.presence;
  }
  if (!r.greedy) z = z / r.temperature;
  if (z != z) return -INFINITY;
  return z + 0.0f;
}

/** Order-preserving map of a float (NaN excluded) to an unsigned integer. */
ANDROMEDA_HOST_DEVICE uint32_t ordered_bits(float s) {
  uint32_t bits;
  memcpy(&bits, &s, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

ANDROMEDA_HOST_DEVICE float score_of_key(uint64_t key) {
  const uint32_t ordered = uint32_t(key >> 32);
  const uint32_t bits = (ordered & 0x80000000u) ? (ordered & 0x7FFFFFFFu) : ~ordered;
  float s;
  memcpy(&s, &bits, sizeof s);
  return s;
}

/** Larger key = earlier in the sampling order: higher score first, then lower id. Keys of a row are distinct. */
ANDROMEDA_HOST_DEVICE uint64_t token_key(float score, int64_t id) {
  return (uint64_t(ordered_bits(score)) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(id));
}

ANDROMEDA_HOST_DEVICE int64_t id_of_key(uint64_t key) { return int64_t(0xFFFFFFFFu - uint32_t(key & 0xFFFFFFFFu)); }

/** Relative probability exp(score − max) in float; the best token(s) get exactly 1 (also when max is +∞). */
ANDROMEDA_HOST_DEVICE float relative_weight(float score, float max_score) {
  return score == max_score ? 1.0f : expf(score - max_score);
}

/** The row's uniform draw: key = the 64-bit seed (low word, high word), counter = the row's step. */
ANDROMEDA_HOST_DEVICE double row_uniform(const int32_t* seed_words, int32_t step) {
  const uint64_t seed = uint64_t(uint32_t(seed_words[0])) | (uint64_t(uint32_t(seed_words[1])) << 32);
  return uniform_from_counter(seed, uint64_t(uint32_t(step)));
}

}  // namespace andromeda::sampling
