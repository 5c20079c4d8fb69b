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

/** The choices the split count is derived from. */
struct PagedLaunchPolicy {
  // Fewest keys a split takes: below this the per-CTA setup (Q̃, the first load's latency) dominates.
  int64_t min_keys_per_split;
  // CTAs per multiprocessor the splits aim to fill (the kernel's occupancy is two).
  int64_t ctas_per_sm;
};

constexpr PagedLaunchPolicy kDefaultPagedLaunchPolicy{32, 2};

/** Grid of the attention kernel: x = splits of `chunk` keys each, y = row blocks. */
struct PagedLaunch {
  int64_t splits, chunk, row_blocks;
};

/**
 * The grid from the host bounds alone (a captured graph replays for any lengths within them): about
 * ctas_per_sm CTAs per multiprocessor over (sequences × KV heads × row blocks × splits), each split at least
 * min_keys_per_split keys, in whole sub-tiles, fewer splits where the partial rows would pass kPartialBytesLimit.
 */
inline PagedLaunch paged_launch_shape(int64_t num_seqs, int64_t kv_heads, int64_t group, int64_t max_query_len,
                                      int64_t max_context_len, int64_t total_queries, int64_t heads,
                                      int64_t head_dim, int sm_count,
                                      PagedLaunchPolicy policy = kDefaultPagedLaunchPolicy) {
  PagedLaunch l{};
  l.row_blocks = std::clamp<int64_t>((group * max_query_len + kLaunchRowsPerBlock - 1) / kLaunchRowsPerBlock, 1,
                                     kMaxRowBlocksInGrid);
  const int64_t units = num_seqs * kv_heads * l.row_blocks;
  const int64_t target = policy.ctas_per_sm * int64_t(sm_count);
  const int64_t min_keys = std::max<int64_t>(1, policy.min_keys_per_split);
  const int64_t most = std::max<int64_t>(1, (max_context_len + min_keys - 1) / min_keys);
  int64_t splits = std::clamp<int64_t>((target + units - 1) / units, 1, most);
  const double bytes_per_split = double(total_queries) * heads * (head_dim + 2) * sizeof(float);
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, int64_t(kPartialBytesLimit / bytes_per_split)));
  const int64_t keys = std::max<int64_t>(max_context_len, 1);
  l.chunk = ((keys + splits - 1) / splits + kLaunchKeysPerTile - 1) / kLaunchKeysPerTile * kLaunchKeysPerTile;
  l.splits = (keys + l.chunk - 1) / l.chunk;
  return l;
}

}  // namespace andromeda::cuda::paged
