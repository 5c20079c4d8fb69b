// The launch shape of the paged split-KV attention (attention.cu) as a pure function of the host bounds, the device
// size and a policy, so that bench/cuda/paged-splits.cu can time other policies against the engine's with the same
// rule. Host-only C++ (no CUDA runtime), so any translation unit can include it.
#pragma once
#include <algorithm>
#include <cstdint>

namespace andromeda::cuda::paged {

// The kernel's tile sizes (attention_kernel.cuh: kRows, kKeys); attention.cu checks that they agree.
constexpr int64_t kLaunchRowsPerBlock = 32;  // (query, head) rows per row block
constexpr int64_t kLaunchKeysPerTile = 32;   // keys per sub-tile: a split is whole sub-tiles
// Row blocks in the grid; a CTA walks the further ones (long query runs: prefill chunks, which are correct here
// but meant for the dense kernel).
constexpr int64_t kMaxRowBlocksInGrid = 64;
// The partial rows of all splits (float32) stay below this; longer runs of queries get fewer splits.
constexpr double kPartialBytesLimit = 256.0 * (1 << 20);

/** How the split count is chosen. */
enum class SplitRule {
  kFillTarget,  // about ctas_per_sm CTAs per multiprocessor (the sweep of bench/cuda/paged-splits.cu)
  kWaveCost,    // the least predicted time: waves of resident CTAs × (a CTA's setup + its sub-tiles)
};

/** The choices the split count is derived from. */
struct PagedLaunchPolicy {
  // Fewest keys a split takes.
  int64_t min_keys_per_split;
  // kFillTarget: CTAs per multiprocessor aimed at; kWaveCost: CTAs resident per multiprocessor (the occupancy).
  int64_t ctas_per_sm;
  SplitRule rule;
  // kWaveCost: a CTA's fixed work (Q̃, rotation tables, the first load's latency, the partial row's write) in
  // sub-tiles of keys. Fitted to bench/cuda/paged-splits.cu on an H100 (bench/results/gpu-decode.md): a CTA costs
  // about 16 µs plus 6 µs a 32-key sub-tile with two resident per multiprocessor.
  double setup_subtiles;
};

constexpr PagedLaunchPolicy kDefaultPagedLaunchPolicy{32, 2, SplitRule::kWaveCost, 2.5};

/** Grid of the attention kernel: x = splits of `chunk` keys each, y = row blocks. */
struct PagedLaunch {
  int64_t splits, chunk, row_blocks;
};

/**
 * Splits under kWaveCost. The grid runs in waves of `resident` CTAs; each CTA pays its setup and then one step per
 * sub-tile of its split, so the time is about waves × (setup + sub-tiles per split). For w waves the best split
 * count is the largest that fits them, so only those counts (and 1) are candidates; ties keep fewer splits.
 * More splits than fill the first waves add setup without shortening any CTA's walk much.
 */
inline int64_t wave_cost_splits(int64_t units, int64_t subtiles, int64_t most, int64_t resident, double setup) {
  constexpr int kMostWaves = 8;
  int64_t best = 1;
  double best_cost = 0;
  for (int w = 0; w <= kMostWaves; w++) {
    const int64_t wanted = w == 0 ? 1 : std::max<int64_t>(1, w * resident / units);
    const int64_t splits = std::min(wanted, most);
    const int64_t tiles = (subtiles + splits - 1) / splits;  // sub-tiles per split
    const int64_t used = (subtiles + tiles - 1) / tiles;      // splits left once each is whole sub-tiles
    const int64_t waves = (units * used + resident - 1) / resident;
    const double cost = double(waves) * (setup + double(tiles));
    if (w == 0 || cost < best_cost) best = splits, best_cost = cost;
  }
  return best;
}

/** `splits` lowered where the float32 partial rows and statistics of all splits would pass kPartialBytesLimit. */
inline int64_t cap_partial_rows(int64_t splits, int64_t total_queries, int64_t heads, int64_t head_dim) {
  const double bytes_per_split = double(total_queries) * heads * (head_dim + 2) * sizeof(float);
  return std::max<int64_t>(1, std::min<int64_t>(splits, int64_t(kPartialBytesLimit / bytes_per_split)));
}

/**
 * The grid from the host bounds alone (a captured graph replays for any lengths within them) over (sequences ×
 * KV heads × row blocks × splits): each split at least min_keys_per_split keys, in whole sub-tiles, as many as the
 * policy's rule picks, fewer where the partial rows would pass kPartialBytesLimit.
 */
inline PagedLaunch paged_launch_shape(int64_t num_seqs, int64_t kv_heads, int64_t group, int64_t max_query_len,
                                      int64_t max_context_len, int64_t total_queries, int64_t heads,
                                      int64_t head_dim, int sm_count,
                                      PagedLaunchPolicy policy = kDefaultPagedLaunchPolicy) {
  PagedLaunch l{};
  l.row_blocks = std::clamp<int64_t>((group * max_query_len + kLaunchRowsPerBlock - 1) / kLaunchRowsPerBlock, 1,
                                     kMaxRowBlocksInGrid);
  const int64_t units = std::max<int64_t>(1, num_seqs * kv_heads * l.row_blocks);
  const int64_t target = std::max<int64_t>(1, policy.ctas_per_sm * int64_t(sm_count));
  const int64_t keys = std::max<int64_t>(max_context_len, 1);
  const int64_t min_keys = std::max<int64_t>(1, policy.min_keys_per_split);
  const int64_t most = std::max<int64_t>(1, (keys + min_keys - 1) / min_keys);
  int64_t splits = policy.rule == SplitRule::kWaveCost
                       ? wave_cost_splits(units, (keys + kLaunchKeysPerTile - 1) / kLaunchKeysPerTile, most, target,
                                          policy.setup_subtiles)
                       : std::clamp<int64_t>((target + units - 1) / units, 1, most);
  splits = cap_partial_rows(splits, total_queries, heads, head_dim);
  l.chunk = ((keys + splits - 1) / splits + kLaunchKeysPerTile - 1) / kLaunchKeysPerTile * kLaunchKeysPerTile;
  l.splits = (keys + l.chunk - 1) / l.chunk;
  return l;
}

// The decode kernel's tiles (decode_kernel.cuh: kSliceKeys, kDecodeWarps); attention.cu checks that they agree.
constexpr int64_t kLaunchDecodeSliceKeys = 16;  // keys a warp takes at a time
constexpr int64_t kLaunchDecodeWarps = 8;       // warps of a CTA, each walking its own slices

/**
 * Grid of the decode kernel (one query per sequence; x = splits of `chunk` keys, one row block) for `units` =
 * sequences × KV heads. At head dim 128 a CTA takes a multiprocessor's registers (240 a thread; fewer at 32 and
 * 64, which the rule does not count on), so one wave is `sm_count` CTAs: as many
 * splits as fit one wave (fewer units than multiprocessors: the rest of the wave), but no more than leave half the
 * warps a slice on average — a split's time is its warps' slices walked side by side plus its setup and the merge of
 * its warps, and a further split adds a partial row to combine. Half, not all: at 2,048 keys and one unit, 32
 * splits of 4 slices ran 13.6 µs (kernel + combine) against 14.6 for 16 splits of 8 on an H100, and 128 splits of
 * one slice 15.5 (bench/cuda/decode-splits.cu; bench/results/gpu-decode.md, stop 23). Chunks are whole slices;
 * fewer splits where the partial rows would pass kPartialBytesLimit.
 */
inline PagedLaunch decode_launch_shape(int64_t units, int64_t max_context_len, int64_t total_queries, int64_t heads,
                                       int64_t head_dim, int sm_count) {
  PagedLaunch l{};
  l.row_blocks = 1;
  const int64_t keys = std::max<int64_t>(max_context_len, 1);
  const int64_t slices = (keys + kLaunchDecodeSliceKeys - 1) / kLaunchDecodeSliceKeys;
  const int64_t most = (slices + kLaunchDecodeWarps / 2 - 1) / (kLaunchDecodeWarps / 2);
  int64_t splits = std::clamp<int64_t>(int64_t(sm_count) / std::max<int64_t>(units, 1), 1, most);
  splits = cap_partial_rows(splits, total_queries, heads, head_dim);
  l.chunk = (slices + splits - 1) / splits * kLaunchDecodeSliceKeys;
  l.splits = (keys + l.chunk - 1) / l.chunk;
  return l;
}

}  // namespace andromeda::cuda::paged
