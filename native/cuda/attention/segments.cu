// Launches the segment summary (segments.cuh) before a Hopper forward or backward of a packed call.
#include "segments.h"

#include <algorithm>

#include "segments.cuh"

namespace andromeda::cuda::attention {
namespace {

/** One CTA per batch item: Params::q_seg_blocks [batch][segment_blocks(q_len)] and k_seg_blocks likewise. */
__global__ void segment_blocks_kernel(const int32_t* __restrict__ q_seg, const int32_t* __restrict__ k_seg, int q_len,
                                      int k_len, int4* __restrict__ q_blocks, int4* __restrict__ k_blocks) {
  const int b = blockIdx.x;
  const int32_t* qs = q_seg + int64_t(b) * q_len;
  const int32_t* ks = k_seg + int64_t(b) * k_len;
  int ok = 1;
  for (int i = threadIdx.x + 1; i < q_len; i += blockDim.x) ok &= qs[i - 1] <= qs[i];
  for (int j = threadIdx.x + 1; j < k_len; j += blockDim.x) ok &= ks[j - 1] <= ks[j];
  const bool sorted = __syncthreads_and(ok) != 0;
  summarise_segment_blocks(qs, q_len, ks, k_len, sorted, q_blocks + int64_t(b) * segment_blocks(q_len));
  summarise_segment_blocks(ks, k_len, qs, q_len, sorted, k_blocks + int64_t(b) * segment_blocks(k_len));
}

}  // namespace

std::unique_ptr<Scratch> summarise_segments(Params& p) {
  p.q_seg_blocks = p.k_seg_blocks = nullptr;
  if (!p.q_seg) return nullptr;
  const size_t q_blocks = size_t(p.batch) * segment_blocks(p.q_len), k_blocks = size_t(p.batch) * segment_blocks(p.k_len);
  auto scratch = std::make_unique<Scratch>(std::max<size_t>(q_blocks + k_blocks, 1) * sizeof(int4));
  int4* q_summary = scratch->as<int4>();
  p.q_seg_blocks = q_summary;
  p.k_seg_blocks = q_summary + q_blocks;
  segment_blocks_kernel<<<unsigned(p.batch), 256, 0, stream()>>>(p.q_seg, p.k_seg, p.q_len, p.k_len, q_summary,
                                                                   q_summary + q_blocks);
  check_launch("attention: summarising the segment ids");
  return scratch;
}

}  // namespace andromeda::cuda::attention
