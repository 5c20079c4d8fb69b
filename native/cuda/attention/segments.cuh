// Packed documents (segment ids) on the Hopper kernels. Once per call a small kernel summarises the query and key
// rows of each batch item in blocks of 64 rows; the Hopper forward and backward read the summaries to
//   - skip tiles: a query block's keys lie in [lo, hi) (the keys whose id is one of the block's ids), a key block's
//     queries likewise. Exact where the ids never decrease along a row (each document one run), the layout of packed
//     training rows; other layouts get the whole row (no skipping, still correct: the mask below decides);
//   - mask only where needed: a (query block, key block) pair whose blocks each hold one id, the same, needs no
//     per-element comparison; any other visited pair compares ids per element (the forward), or, in the backward,
//     narrows each key's visible query columns to the queries of its document (per-key ranges, where the ids never
//     decrease: no ids held in registers) and compares ids per element only in other layouts.
// Positions inside a document are the kernels' index positions: rotary, xPos and ALiBi depend only on p_q − p_k,
// which equals i − j for every pair of one document when its positions count on from its first token (the caller,
// src/ops/attention.ts, passes segments without positions only then).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "params.cuh"

namespace andromeda::cuda::attention {

/** Rows per summarised block: the Hopper forward's warpgroup rows and the backward's query tile and warpgroup keys. */
constexpr int kSegmentBlockRows = 64;

/** Summarised blocks of a row of `len` tokens. */
__host__ __device__ constexpr int segment_blocks(int len) { return (len + kSegmentBlockRows - 1) / kSegmentBlockRows; }

/**
 * The summary of one 64-row block (int4): x = 1 when every row of the block (up to the end of the row) has one id,
 * y = the id of its first row, [z, w) = the rows of the other side whose id can equal one of the block's.
 */
__device__ __forceinline__ bool segment_block_uniform(int4 s) { return s.x != 0; }

/** Index of the first element ≥ value (`strict`: > value) in the non-decreasing ids[0, len). */
__host__ __device__ inline int segment_search(const int32_t* ids, int len, int32_t value, bool strict) {
  int lo = 0, hi = len;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    const bool before = strict ? ids[mid] <= value : ids[mid] < value;
    if (before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Summaries of the blocks of `own` (own_len ids) against `other` (other_len ids): one thread per block. `sorted`: both
 * rows' ids never decrease, so the other side's matching rows are one range found by binary search.
 */
__device__ inline void summarise_segment_blocks(const int32_t* own, int own_len, const int32_t* other, int other_len,
                                                bool sorted, int4* out) {
  for (int blk = threadIdx.x; blk < segment_blocks(own_len); blk += blockDim.x) {
    const int first = blk * kSegmentBlockRows, last = min(first + kSegmentBlockRows, own_len) - 1;
    const int32_t id = own[first];
    int uniform = 1;
    for (int i = first + 1; i <= last; i++) uniform &= own[i] == id;
    int lo = 0, hi = other_len;
    if (sorted) {
      lo = segment_search(other, other_len, id, false);
      hi = segment_search(other, other_len, own[last], true);
    }
    out[blk] = make_int4(uniform, id, lo, hi);
  }
}

/**
 * Per key j (one thread each): the queries [x, y) whose id can equal key j's — exactly those with its id where `sorted`,
 * else every query (the kernels then compare ids per element).
 */
__device__ inline void segment_key_queries(const int32_t* keys, int k_len, const int32_t* queries, int q_len, bool sorted,
                                           int2* out) {
  for (int j = threadIdx.x; j < k_len; j += blockDim.x) {
    const int32_t id = keys[j];
    out[j] = sorted ? make_int2(segment_search(queries, q_len, id, false), segment_search(queries, q_len, id, true))
                    : make_int2(0, q_len);
  }
}

/**
 * Whether a tile pair needs the per-element id comparison: not when the summaries of the query block and of every key
 * block (one or two, each present) hold one and the same id.
 */
__device__ __forceinline__ bool segment_pair_mixed(int4 a, int4 b) {
  return !(segment_block_uniform(a) && segment_block_uniform(b) && a.y == b.y);
}

}  // namespace andromeda::cuda::attention
