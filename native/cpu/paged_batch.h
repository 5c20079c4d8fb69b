// Reading a paged batch's metadata on the CPU (PagedBatch, native/common/kernel_args.h). The metadata buffers may
// hold anything; everything the paged kernels read through them is bounded here: a sequence takes part only when
// its query rows and context length fit the bounds of the call, and a block id is used only inside the pool.
#pragma once
#include <cstdint>
#include <vector>

#include "../common/kernel_args.h"

namespace andromeda::cpu {

/** A sequence of the batch whose metadata is usable: query rows [start, start + queries), `context` keys. */
struct PagedSequence {
  int64_t index, start, queries, context;
  /** Position of the sequence's first query row of this step. */
  int64_t first_position() const { return context - queries; }
};

/**
 * The usable sequences, in batch order. Sequence s is usable when 0 ≤ queryStart[s] ≤ queryStart[s + 1] ≤
 * total_queries, its query count is at most max_query_len and at most its context length, and the context
 * length is at most max_context_len and max_blocks_per_seq · block_size. A sequence whose rows begin before the
 * end of an earlier usable one is left out as well, so that no two sequences write one row.
 */
inline std::vector<PagedSequence> usable_sequences(const PagedBatch& b) {
  std::vector<PagedSequence> out;
  const int64_t table_positions =
      b.block_size > 0 && b.max_blocks_per_seq <= INT64_MAX / b.block_size ? b.max_blocks_per_seq * b.block_size
                                                                           : INT64_MAX;
  int64_t rows_claimed = 0;
  for (int64_t s = 0; s < b.num_seqs; s++) {
    const int64_t start = b.query_start[s], end = b.query_start[s + 1], context = b.context_lens[s];
    if (start < rows_claimed || end < start || end > b.total_queries) continue;
    const int64_t queries = end - start;
    if (queries > b.max_query_len || queries > context || context > b.max_context_len || context > table_positions)
      continue;
    out.push_back({s, start, queries, context});
    rows_claimed = end;
  }
  return out;
}

/** The pool block holding `position` of sequence s (which must lie inside the table), or −1 outside the pool. */
inline int64_t block_of(const PagedBatch& b, int64_t s, int64_t position) {
  const int64_t block = b.block_tables[s * b.max_blocks_per_seq + position / b.block_size];
  return block >= 0 && block < b.num_blocks ? block : -1;
}

}  // namespace andromeda::cpu
