// Launches the segment summary (segments.cuh) before a Hopper forward or backward of a packed call.
#include "segments.h"

#include <algorithm>

#include "segments.cuh"

namespace andromeda::cuda::attention {
namespace {

/**
 * One CTA per batch item: Params::q_seg_blocks [batch][segment_blocks(q_len)], k_seg_blocks likewise, k_seg_queries
 * [batch][k_len] and seg_sorted [batch].
 */
__global__ void segment_blocks_kernel(const int32_t* __restrict__ q_seg, const int32_t* __restrict__ k_seg, int q_len,
                                      int k_len, int4* __restrict__ q_blocks, int4* __restrict__ k_blocks,
                                      int2* __restrict__ key_queries, int32_t* __restrict__ sorted_rows) {
  const int b = blockIdx.x;
  const int32_t* qs = q_seg + int64_t(b) * q_len;
  const int32_t* ks = k_seg + int64_t(b) * k_len;
  int ok = 1;
  for (int i = threadIdx.x + 1; i < q_len; i += blockDim.x) ok &= qs[i - 1] <= qs[i];
  for (int j = threadIdx.x + 1; j < k_len; j += blockDim.x) ok &= ks[j - 1] <= ks[j];
  const bool sorted = __syncthreads_and(ok) != 0;
  summarise_segment_blocks(qs, q_len, ks, k_len, sorted, q_blocks + int64_t(b) * segment_blocks(q_len));
  summarise_segment_blocks(ks, k_len, qs, q_len, sorted, k_blocks + int64_t(b) * segment_blocks(k_len));
  segment_key_queries(ks, k_len, qs, q_len, sorted, key_queries + int64_t(b) * k_len);
  if (threadIdx.x == 0) sorted_rows[b] = sorted;
}

}  // namespace

std::unique_ptr<Scratch> summarise_segments(Params& p) {
  p.q_seg_blocks = p.k_seg_blocks = nullptr;
  p.k_seg_queries = nullptr;
  p.seg_sorted = nullptr;
  if (!p.q_seg) return nullptr;
  const size_t q_blocks = size_t(p.batch) * segment_blocks(p.q_len), k_blocks = size_t(p.batch) * segment_blocks(p.k_len);
  const size_t keys = size_t(p.batch) * p.k_len;
  // int4 blocks, then int2 per key, then an int per batch item (each part's offset a multiple of its alignment).
  const size_t bytes = (q_blocks + k_blocks) * sizeof(int4) + keys * sizeof(int2) + size_t(p.batch) * sizeof(int32_t);
  auto scratch = std::make_unique<Scratch>(std::max<size_t>(bytes, 16));
  int4* blocks = scratch->as<int4>();
  int2* key_queries = reinterpret_cast<int2*>(blocks + q_blocks + k_blocks);
  int32_t* sorted_rows = reinterpret_cast<int32_t*>(key_queries + keys);
  p.q_seg_blocks = blocks;
  p.k_seg_blocks = blocks + q_blocks;
  p.k_seg_queries = key_queries;
  p.seg_sorted = sorted_rows;
  segment_blocks_kernel<<<unsigned(p.batch), 256, 0, stream()>>>(p.q_seg, p.k_seg, p.q_len, p.k_len, blocks,
                                                                   blocks + q_blocks, key_queries, sorted_rows);
  check_launch("attention: summarising the segment ids");
  return scratch;
}

}  // namespace andromeda::cuda::attention
