// The ragged batch of one step as the paged kernels read it: every value that comes from the metadata buffers
// (query starts, context lengths, block ids) is checked here against the launch's host bounds before anything
// is read through it (contract: /work/notes/inference-contract.md, PagedBatchArgs in src/engine/engine.ts).
#pragma once
#include <cstdint>

#include "../common.cuh"

namespace andromeda::cuda::paged {

/** The host bounds and device metadata of a step, as kernel parameters. */
struct BatchView {
  const int32_t* query_start;   // [num_seqs + 1]
  const int32_t* context_lens;  // [num_seqs]
  const int32_t* block_tables;  // [num_seqs, max_blocks_per_seq]
  int64_t total_queries, num_seqs, block_size, num_blocks, max_blocks_per_seq, max_query_len, max_context_len;
};

inline BatchView batch_view(const andromeda::PagedBatch& b) {
  return {b.query_start,  b.context_lens, b.block_tables,       b.total_queries, b.num_seqs,
          b.block_size,   b.num_blocks,   b.max_blocks_per_seq, b.max_query_len, b.max_context_len};
}

/** One sequence of the step. Only a valid sequence is worked on (its rows are left untouched otherwise). */
struct Sequence {
  int64_t first_row;     // query rows first_row .. first_row + query_len − 1
  int query_len;
  int64_t context_len;   // keys, this step's included: query i has position context_len − query_len + i
  const int32_t* table;  // its row of block_tables
  bool valid;
};

/**
 * Sequence s, valid when 0 ≤ queryStart[s] ≤ queryStart[s+1] ≤ totalQueries, qLen ≤ maxQueryLen and
 * qLen ≤ contextLens[s] ≤ min(maxContextLen, maxBlocksPerSeq · blockSize): then every position it names
 * has an entry in its table row.
 */
__device__ __forceinline__ Sequence read_sequence(const BatchView& b, int64_t s) {
  Sequence q{};
  const int64_t q0 = __ldg(b.query_start + s), q1 = __ldg(b.query_start + s + 1);
  const int64_t len = __ldg(b.context_lens + s);
  const int64_t capacity = b.max_blocks_per_seq * b.block_size;
  q.valid = q0 >= 0 && q0 <= q1 && q1 <= b.total_queries && q1 - q0 <= b.max_query_len && q1 - q0 <= len &&
            len <= b.max_context_len && len <= capacity;
  q.first_row = q0;
  q.query_len = q.valid ? int(q1 - q0) : 0;
  q.context_len = q.valid ? len : 0;
  q.table = b.block_tables + s * b.max_blocks_per_seq;
  return q;
}

/** The pool block holding `position` (< context_len) of a valid sequence, or −1 when its id is out of range. */
__device__ __forceinline__ int64_t block_of(const BatchView& b, const Sequence& seq, int64_t position) {
  const int64_t id = __ldg(seq.table + position / b.block_size);
  return id >= 0 && id < b.num_blocks ? id : -1;
}

/** Where a position's K/V row sits in the pool: its block (−1 when the id is out of range) and slot in it. */
struct PoolRow {
  int64_t block;
  int slot;
};

/**
 * block_of and the slot for `position`, with one 32-bit division: the position is below a valid sequence's
 * context_len (< maxContextLen < 2^30) and paged_attention refuses a blockSize of 2^30 or more.
 */
__device__ __forceinline__ PoolRow pool_row(const BatchView& b, const Sequence& seq, int64_t position) {
  const uint32_t size = uint32_t(b.block_size), at = uint32_t(position);
  const uint32_t index = at / size;
  const int64_t id = __ldg(seq.table + index);
  return {id >= 0 && id < b.num_blocks ? id : -1, int(at - index * size)};
}

}  // namespace andromeda::cuda::paged
