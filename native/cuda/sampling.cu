// Device sampling on the CUDA engine (semantics: sampleTokens in native/abi/kernels.mjs and src/ops/sampling.ts;
// the per-token arithmetic shared with the CPU engine: native/common/sampling_math.h). One CTA per row, which
// reads the row's logits a few times (from L2 after the first pass) and never sorts it:
//   1. the best key (greedy's choice, the max score), then Σ exp(s − max) when log-probabilities are asked for;
//   2. top-k: a radix select (8 bits a pass over the 64-bit key, stopping once the bin holds one token) for the
//      k-th key; top-p: the same select weighted by exp(s − max) among the top-k, for the key at which the mass
//      reaches top-p of theirs; min-p is a per-token test. The kept tokens are the keys ≥ the larger cut with
//      w ≥ min-p — the same prefix of the order as the CPU engine's sort gives;
//   3. the draw: per-thread chunks of consecutive ids, a block scan of their kept weight, and the thread whose
//      interval holds u · Σ walks its chunk: the first kept id whose running weight exceeds the target;
//   4. top-n log-probabilities: a count select for the n-th key, the n tokens at or above it sorted by one thread.
// Everything that varies per step (parameters, seeds, steps, counts) is read from device buffers, so the launch
// can be captured in a CUDA graph; the step counter and counts are advanced here.
#include <cmath>
#include <cstdint>

#include "../common/sampling_math.h"
#include "common.cuh"
#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {
namespace {

using sampling::RowParams;

constexpr int kSampleThreads = 512;
constexpr int kBins = 256;
constexpr int kBestUnroll = 8;  // logits each thread loads at once in the pass for the best key

template <typename T>
struct Row {
  const T* logits;
  const int32_t* counts;  // null: no penalties
  RowParams params;
  int64_t vocab;

  __device__ __forceinline__ float score(int64_t i) const {
    return sampling::token_score(load(logits + i), counts ? counts[i] : 0, params);
  }
};

__device__ __forceinline__ unsigned long long warp_max_u64(unsigned long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other > v ? other : v;
  }
  return v;
}

/** Max over the block of an unsigned 64-bit value; every thread receives it. */
__device__ unsigned long long block_max_u64(unsigned long long v) {
  __shared__ unsigned long long partial[32];
  __shared__ unsigned long long total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max_u64(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    unsigned long long m = lane < int(blockDim.x >> 5) ? partial[lane] : 0ull;
    m = warp_max_u64(m);
    if (lane == 0) total = m;
  }
  __syncthreads();
  return total;
}

/** Inclusive prefix sum over the threads of the block in thread order; `total` receives the block's sum. */
__device__ double block_inclusive_scan(double v, double& total) {
  __shared__ double warp_totals[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = int(blockDim.x >> 5);
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double before = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += before;
  }
  __syncthreads();
  if (lane == 31) warp_totals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double t = lane < warps ? warp_totals[lane] : 0.0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const double before = __shfl_up_sync(0xffffffffu, t, o);
      if (lane >= o) t += before;
    }
    if (lane < warps) warp_totals[lane] = t;
  }
  __syncthreads();
  if (warp > 0) v += warp_totals[warp - 1];
  total = warp_totals[warps - 1];
  __syncthreads();
  return v;
}

struct SelectState {
  double mass[kBins];
  unsigned count[kBins];
  unsigned long long prefix, mask, found;
  double remaining;
  bool unique;
};

/**
 * Among the tokens with key ≥ floor, in decreasing key order, the key of the first at which the running weight
 * reaches `target` (weight 1 a token, or exp(s − max) with by_mass); the smallest key when the total falls short.
 */
template <typename T>
__device__ uint64_t select_key(const Row<T>& row, float max_score, uint64_t floor, bool by_mass, double target,
                               SelectState& st) {
  __syncthreads();  // every thread is done with the state's previous use
  if (threadIdx.x == 0) {
    st.prefix = 0;
    st.mask = 0;
    st.found = 0;
    st.remaining = target;
    st.unique = false;
  }
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) {
      st.mass[b] = 0;
      st.count[b] = 0;
    }
    __syncthreads();
    const uint64_t prefix = st.prefix, mask = st.mask;
    for (int64_t i = threadIdx.x; i < row.vocab; i += blockDim.x) {
      const float s = row.score(i);
      const uint64_t key = sampling::token_key(s, i);
      if (key < floor || (key & mask) != prefix) continue;
      const int bin = int((key >> shift) & 0xFF);
      atomicAdd(&st.count[bin], 1u);
      if (by_mass) atomicAdd(&st.mass[bin], double(sampling::relative_weight(s, max_score)));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double running = 0;
      int chosen = -1, lowest = -1;
      for (int b = kBins - 1; b >= 0; b--) {
        if (st.count[b] == 0) continue;
        lowest = b;
        const double w = by_mass ? st.mass[b] : double(st.count[b]);
        if (running + w >= st.remaining) {
          chosen = b;
          break;
        }
        running += w;
      }
      if (chosen < 0) {
        // The target is beyond the candidates' total (rounding): the last candidate, at every remaining digit.
        chosen = lowest;
        st.remaining = INFINITY;
      } else {
        st.remaining -= running;
      }
      st.prefix |= uint64_t(chosen) << shift;
      st.mask |= uint64_t(0xFF) << shift;
      st.unique = st.count[chosen] == 1;
    }
    __syncthreads();
    if (st.unique) break;
  }
  if (st.mask == ~0ull) return st.prefix;
  // One candidate left: its key is the one that matches the digits so far.
  const uint64_t prefix = st.prefix, mask = st.mask;
  for (int64_t i = threadIdx.x; i < row.vocab; i += blockDim.x) {
    const uint64_t key = sampling::token_key(row.score(i), i);
    if (key >= floor && (key & mask) == prefix) atomicMax(&st.found, (unsigned long long)key);
  }
  __syncthreads();
  return st.found;
}

/** In the draw: at or above the cut, weight at least min-p (0 when off), and a weight that can be drawn at all. */
__device__ __forceinline__ bool kept(float score, float weight, int64_t id, uint64_t cut, float min_p) {
  return sampling::token_key(score, id) >= cut && weight >= min_p && weight > 0.0f;
}

template <typename T>
__global__ void __launch_bounds__(kSampleThreads)
    sample_kernel(const T* logits, const float* params, const int32_t* seeds, int32_t* steps, int32_t* counts,
                  int32_t* ids, float* logprobs, int32_t* top_ids, float* top_logprobs, int64_t vocab, int top_n) {
  __shared__ SelectState select;
  __shared__ unsigned long long top_keys[sampling::kMaxTopLogprobs];
  __shared__ int top_count;
  __shared__ long long drawn;
  const int64_t r = blockIdx.x;
  int32_t* row_counts = counts ? counts + r * vocab : nullptr;
  const Row<T> row{logits + r * vocab, row_counts, sampling::row_params(params + r * sampling::kParamCount, vocab),
                   vocab};
  const int32_t step = steps[r];

  // The best key: one CTA walks the whole row (a decode step samples one row per sequence), so each thread keeps
  // kBestUnroll loads in flight rather than waiting for one at a time.
  unsigned long long best = 0;
  int64_t i = threadIdx.x;
  for (; i + (kBestUnroll - 1) * int64_t(blockDim.x) < vocab; i += kBestUnroll * int64_t(blockDim.x)) {
    float scores[kBestUnroll];
#pragma unroll
    for (int u = 0; u < kBestUnroll; u++) scores[u] = row.score(i + u * int64_t(blockDim.x));
#pragma unroll
    for (int u = 0; u < kBestUnroll; u++) {
      const unsigned long long key = sampling::token_key(scores[u], i + u * int64_t(blockDim.x));
      best = key > best ? key : best;
    }
  }
  for (; i < vocab; i += blockDim.x) {
    const unsigned long long key = sampling::token_key(row.score(i), i);
    best = key > best ? key : best;
  }
  best = block_max_u64(best);
  const float max_score = sampling::score_of_key(best);
  if (max_score == -INFINITY) {
    // No token has a finite score: nothing can be drawn.
    if (threadIdx.x == 0) {
      ids[r] = -1;
      steps[r] = int32_t(uint32_t(step) + 1u);
      if (logprobs) logprobs[r] = NAN;
    }
    for (int j = threadIdx.x; j < top_n; j += blockDim.x) {
      top_ids[r * top_n + j] = -1;
      top_logprobs[r * top_n + j] = NAN;
    }
    return;
  }
  // Σ exp(s − max) serves the log-probabilities only: the draw weighs the kept tokens itself.
  double log_total = 0;
  if (logprobs || top_n > 0) {
    double total = 0;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      total += sampling::relative_weight(row.score(i), max_score);
    log_total = log(block_sum(total));
  }

  int64_t chosen = sampling::id_of_key(best);
  if (!row.params.greedy) {
    uint64_t cut = 0;
    if (row.params.top_k < vocab) cut = select_key(row, max_score, 0, false, double(row.params.top_k), select);
    if (row.params.top_p_on) {
      double mass = 0;
      for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float s = row.score(i);
        if (sampling::token_key(s, i) >= cut) mass += sampling::relative_weight(s, max_score);
      }
      mass = block_sum(mass);
      const uint64_t nucleus = select_key(row, max_score, cut, true, row.params.top_p * mass, select);
      cut = nucleus > cut ? nucleus : cut;
    }
    const float min_p = row.params.min_p_on ? row.params.min_p : 0.0f;
    const int64_t chunk = (vocab + blockDim.x - 1) / blockDim.x;
    const int64_t begin = min(vocab, int64_t(threadIdx.x) * chunk), end = min(vocab, begin + chunk);
    double mine = 0;
    long long last_kept = -1;
    for (int64_t i = begin; i < end; i++) {
      const float s = row.score(i);
      const float w = sampling::relative_weight(s, max_score);
      if (kept(s, w, i, cut, min_p)) {
        mine += w;
        last_kept = i;
      }
    }
    double kept_total;
    const double through = block_inclusive_scan(mine, kept_total);
    // Thread t owns [end of thread t − 1, its own end): the scan's values tile [0, Σ) without gaps or overlaps.
    __shared__ double ends[kSampleThreads];
    ends[threadIdx.x] = through;
    if (threadIdx.x == 0) drawn = -1;
    __syncthreads();
    const double start = threadIdx.x == 0 ? 0.0 : ends[threadIdx.x - 1];
    const double target = sampling::row_uniform(seeds + 2 * r, step) * kept_total;
    if (mine > 0 && start <= target && target < through) {
      double running = start;
      long long pick = -1;
      for (int64_t i = begin; i < end; i++) {
        const float s = row.score(i);
        const float w = sampling::relative_weight(s, max_score);
        if (!kept(s, w, i, cut, min_p)) continue;
        pick = i;
        running += w;
        if (running > target) break;
      }
      drawn = pick;
    }
    const unsigned long long last = block_max_u64((unsigned long long)(last_kept + 1));
    chosen = drawn >= 0 ? drawn : (long long)(last) - 1;
  }

  if (top_n > 0) {
    const uint64_t cut = select_key(row, max_score, 0, false, double(top_n), select);
    if (threadIdx.x == 0) top_count = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      const uint64_t key = sampling::token_key(row.score(i), i);
      if (key >= cut) {
        const int slot = atomicAdd(&top_count, 1);
        if (slot < top_n) top_keys[slot] = key;
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const int n = min(top_count, top_n);
      for (int a = 1; a < n; a++) {
        const unsigned long long key = top_keys[a];
        int b = a - 1;
        for (; b >= 0 && top_keys[b] < key; b--) top_keys[b + 1] = top_keys[b];
        top_keys[b + 1] = key;
      }
      for (int j = 0; j < top_n; j++) {
        const bool have = j < n;
        top_ids[r * top_n + j] = have ? int32_t(sampling::id_of_key(top_keys[j])) : -1;
        top_logprobs[r * top_n + j] =
            have ? float(double(sampling::score_of_key(top_keys[j])) - double(max_score) - log_total) : NAN;
      }
    }
  }

  // Every pass above has read the counts: only now may the chosen token's count change.
  __syncthreads();
  if (threadIdx.x == 0) {
    ids[r] = int32_t(chosen);
    steps[r] = int32_t(uint32_t(step) + 1u);
    if (logprobs) logprobs[r] = float(double(row.score(chosen)) - double(max_score) - log_total);
    if (row_counts) row_counts[chosen]++;
  }
}

}  // namespace

void sample_tokens(int dtype, const char* logits, const float* params, const int32_t* seeds, int32_t* steps,
                   int32_t* counts, int32_t* ids, float* logprobs, int32_t* top_ids, float* top_logprobs, int rows,
                   int vocab, int top_n) {
  if (rows == 0) return;
  if (DType(dtype) == DType::BF16) {
    sample_kernel<bf16><<<unsigned(rows), kSampleThreads, 0, stream()>>>(
        reinterpret_cast<const bf16*>(logits), params, seeds, steps, counts, ids, logprobs, top_ids, top_logprobs,
        vocab, top_n);
  } else {
    sample_kernel<float><<<unsigned(rows), kSampleThreads, 0, stream()>>>(
        reinterpret_cast<const float*>(logits), params, seeds, steps, counts, ids, logprobs, top_ids, top_logprobs,
        vocab, top_n);
  }
  check_launch("sampleTokens");
}

}  // namespace andromeda::cuda
