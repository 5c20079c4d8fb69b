// Device sampling on the CPU engine (semantics: sampleTokens in native/abi/kernels.mjs and src/ops/sampling.ts;
// the shared per-token arithmetic: native/common/sampling_math.h). Rows are independent and run in parallel.
// For one row:
//   scores s_i (penalties, temperature), weights w_i = exp(s_i − max) in float summed in double;
//   log-probabilities s_i − max − log Σw (greedy rows: of the penalised logits, temperature 1);
//   greedy: the best key; else the kept set is a prefix of the key order — top-k, then the shortest prefix of
//   the top-k whose weight reaches top-p of theirs, then w_i ≥ min-p, and w_i > 0 (float underflow: never drawn)
//   — and the draw takes the first kept id (ascending) whose running weight exceeds u · Σ kept w, u the row's
//   counter-based uniform.
// The CUDA kernel finds the same prefix with radix selects instead of sorting.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "../common/dtype.h"
#include "../common/sampling_math.h"
#include "kernels.h"
#include "parallel.h"

namespace andromeda::cpu {
namespace {

using sampling::RowParams;

struct RowOutputs {
  int32_t* ids;
  float* logprobs;
  int32_t* top_ids;
  float* top_logprobs;
};

template <typename T>
void sample_row(const T* logits, const float* params, const int32_t* seed_words, int32_t* step, int32_t* counts,
                const RowOutputs& out, int64_t row, int64_t vocab, int top_n) {
  const RowParams r = sampling::row_params(params, vocab);
  std::vector<float> score(static_cast<size_t>(vocab));
  std::vector<uint64_t> keys(static_cast<size_t>(vocab));
  uint64_t best = 0;
  for (int64_t i = 0; i < vocab; i++) {
    score[size_t(i)] = sampling::token_score(float(load(logits + i)), counts ? counts[i] : 0, r);
    keys[size_t(i)] = sampling::token_key(score[size_t(i)], i);
    best = std::max(best, keys[size_t(i)]);
  }
  const float max_score = sampling::score_of_key(best);
  const double u = sampling::row_uniform(seed_words, *step);
  *step = int32_t(uint32_t(*step) + 1u);
  if (max_score == -INFINITY) {
    // No token has a finite score: nothing can be drawn.
    out.ids[row] = -1;
    if (out.logprobs) out.logprobs[row] = NAN;
    for (int j = 0; j < top_n; j++) {
      out.top_ids[row * top_n + j] = -1;
      out.top_logprobs[row * top_n + j] = NAN;
    }
    return;
  }
  std::vector<float> weight(static_cast<size_t>(vocab));
  double total = 0;
  for (int64_t i = 0; i < vocab; i++) {
    weight[size_t(i)] = sampling::relative_weight(score[size_t(i)], max_score);
    total += weight[size_t(i)];
  }
  const double log_total = std::log(total);
  const auto logprob = [&](int64_t i) { return float(double(score[size_t(i)]) - double(max_score) - log_total); };

  int64_t chosen = sampling::id_of_key(best);
  if (!r.greedy) {
    // Keys in decreasing order, as far as the filters need them: the top-k by selection, sorted only for top-p.
    std::vector<uint64_t> order(keys);
    uint64_t cut = 0;
    int64_t kept = vocab;
    if (r.top_k < vocab) {
      std::nth_element(order.begin(), order.begin() + (r.top_k - 1), order.end(), std::greater<uint64_t>());
      kept = r.top_k;
      cut = order[size_t(kept - 1)];
    }
    if (r.top_p_on) {
      const auto weight_of = [&](uint64_t key) { return weight[size_t(sampling::id_of_key(key))]; };
      double mass = 0;
      for (int64_t j = 0; j < kept; j++) mass += weight_of(order[size_t(j)]);
      const double target = r.top_p * mass;
      // The nucleus is the shortest prefix reaching the target: sort the next largest keys in growing batches
      // (usually one) instead of the whole top-k.
      double running = 0;
      int64_t j = 0, sorted = 0, batch = 1024;
      uint64_t nucleus = order[0];
      for (bool found = false; !found;) {
        const int64_t end = std::min(kept, sorted + batch);
        std::nth_element(order.begin() + sorted, order.begin() + (end - 1), order.begin() + kept,
                         std::greater<uint64_t>());
        std::sort(order.begin() + sorted, order.begin() + end, std::greater<uint64_t>());
        for (; j < end; j++) {
          nucleus = order[size_t(j)];
          running += weight_of(nucleus);
          if (running >= target || j == kept - 1) {
            found = true;
            break;
          }
        }
        sorted = end;
        batch *= 2;
      }
      cut = std::max(cut, nucleus);
    }
    const auto is_kept = [&](int64_t i) {
      return keys[size_t(i)] >= cut && (!r.min_p_on || weight[size_t(i)] >= r.min_p) && weight[size_t(i)] > 0.0f;
    };
    double kept_total = 0;
    for (int64_t i = 0; i < vocab; i++)
      if (is_kept(i)) kept_total += weight[size_t(i)];
    const double target = u * kept_total;
    double running = 0;
    int64_t last_kept = -1;
    chosen = -1;
    for (int64_t i = 0; i < vocab && chosen < 0; i++) {
      if (!is_kept(i)) continue;
      last_kept = i;
      running += weight[size_t(i)];
      if (running > target) chosen = i;
    }
    // Rounding can leave the target at or above the final sum: the last kept token takes that sliver.
    if (chosen < 0) chosen = last_kept;
  }

  out.ids[row] = int32_t(chosen);
  if (counts) counts[chosen]++;
  if (out.logprobs) out.logprobs[row] = logprob(chosen);
  if (top_n > 0) {
    std::vector<uint64_t> order(keys);
    std::partial_sort(order.begin(), order.begin() + top_n, order.end(), std::greater<uint64_t>());
    for (int j = 0; j < top_n; j++) {
      const int64_t id = sampling::id_of_key(order[size_t(j)]);
      out.top_ids[row * top_n + j] = int32_t(id);
      out.top_logprobs[row * top_n + j] = logprob(id);
    }
  }
}

}  // namespace

void sample_tokens(int dtype, const char* logits, const float* params, const int32_t* seeds, int32_t* steps,
                   int32_t* counts, int32_t* ids, float* logprobs, int32_t* top_ids, float* top_logprobs, int rows,
                   int vocab, int top_n) {
  const RowOutputs out{ids, logprobs, top_ids, top_logprobs};
  const auto run = [&](auto* typed) {
    using T = std::remove_pointer_t<decltype(typed)>;
    parallel_for(rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; row++) {
        sample_row<T>(reinterpret_cast<const T*>(logits) + row * int64_t(vocab), params + row * sampling::kParamCount,
                      seeds + 2 * row, steps + row, counts ? counts + row * int64_t(vocab) : nullptr, out, row, vocab,
                      top_n);
      }
    });
  };
  if (DType(dtype) == DType::BF16) run(static_cast<bf16*>(nullptr));
  else run(static_cast<float*>(nullptr));
}

}  // namespace andromeda::cpu
