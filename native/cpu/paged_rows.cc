// The row movers of the paged KV cache on the CPU: scatter_rows (new keys and values into their pool rows),
// paged_token_shift and paged_tail_write (token shift state kept per block). Semantics: the Engine methods of
// src/engine/engine.ts. Every value read through an index or metadata buffer is bounded before it addresses
// memory (paged_batch.h).
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "../common/dtype.h"
#include "kernels.h"
#include "paged_batch.h"
#include "parallel.h"

namespace andromeda::cpu {
namespace {

size_t element_size(int dtype) {
  if (dtype < 0 || dtype > int(DType::I32)) throw std::invalid_argument("paged kernels: unknown dtype code");
  return size_t(dtype_bytes(DType(dtype)));
}

// Columns [0, width) split into ranges of whole cache lines where possible, each range handled by one task that
// visits every row in order: the writes to one destination row never race, and with repeated destinations
// the last row in order wins, whatever the thread count.
template <typename Fn>
void for_column_ranges(int64_t rows, int64_t width, size_t element_bytes, Fn fn) {
  const int64_t line = std::max<int64_t>(1, 64 / int64_t(element_bytes));
  const int64_t grain = std::max<int64_t>(line, (int64_t(1) << 14) / std::max<int64_t>(rows, 1) / line * line);
  const int64_t ranges = (width + grain - 1) / grain;
  parallel_for(ranges, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) fn(r * grain, std::min(width, (r + 1) * grain));
  });
}

}  // namespace

void scatter_rows(int dtype, const char* src, const int32_t* index, char* dst, int64_t count, int64_t width,
                  int64_t rows) {
  const size_t es = element_size(dtype);
  if (count == 0 || width == 0) return;
  for_column_ranges(count, width, es, [&](int64_t c0, int64_t c1) {
    const size_t bytes = size_t(c1 - c0) * es;
    for (int64_t i = 0; i < count; i++) {
      const int64_t row = index[i];
      if (row < 0 || row >= rows) continue;
      std::memcpy(dst + (size_t(row) * size_t(width) + size_t(c0)) * es,
                  src + (size_t(i) * size_t(width) + size_t(c0)) * es, bytes);
    }
  });
}

void paged_token_shift(int dtype, const char* x, const char* tails, char* out, int64_t dim, int shifts, int64_t ring,
                       const PagedBatch& args) {
  const size_t es = element_size(dtype);
  if (shifts < 0) throw std::invalid_argument("pagedTokenShift: shifts must be >= 0");
  if (ring < shifts) throw std::invalid_argument("pagedTokenShift: ring must be at least shifts");
  if (args.block_size <= 0) throw std::invalid_argument("pagedTokenShift: blockSize must be positive");
  if (dim == 0) return;
  const std::vector<PagedSequence> seqs = usable_sequences(args);
  // The usable sequences' rows one after another: sequence q's are [row_begin[q], row_begin[q + 1]).
  std::vector<int64_t> row_begin(1, 0);
  for (const PagedSequence& sq : seqs) row_begin.push_back(row_begin.back() + sq.queries);
  const int64_t chunk = dim / (shifts + 1), shifted_end = int64_t(shifts + 1) * chunk;
  const size_t row_bytes = size_t(dim) * es;
  parallel_for(row_begin.back(), std::max<int64_t>(1, (int64_t(1) << 14) / dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const size_t q = size_t(std::upper_bound(row_begin.begin(), row_begin.end(), r) - row_begin.begin()) - 1;
      const PagedSequence& sq = seqs[q];
      const int64_t i = r - row_begin[q];
      const int64_t t = sq.start + i, p = sq.first_position() + i;
      char* dst = out + size_t(t) * row_bytes;
      for (int k = 0; k <= shifts; k++) {
        const size_t from = size_t(int64_t(k) * chunk) * es, bytes = size_t(chunk) * es;
        const int64_t source = p - k;
        const char* src = nullptr;
        if (source >= sq.first_position()) {
          src = x + size_t(t - k) * row_bytes + from;
        } else if (source >= 0) {
          const int64_t block = block_of(args, sq.index, source);
          if (block >= 0) src = tails + (size_t(block) * size_t(ring) + size_t(source % ring)) * row_bytes + from;
        }
        if (src) std::memcpy(dst + from, src, bytes);
        else std::memset(dst + from, 0, bytes);
      }
      std::memcpy(dst + size_t(shifted_end) * es, x + size_t(t) * row_bytes + size_t(shifted_end) * es,
                  size_t(dim - shifted_end) * es);
    }
  });
}

void paged_tail_write(int dtype, const char* x, char* tails, int64_t dim, int64_t ring, const PagedBatch& args) {
  const size_t es = element_size(dtype);
  if (ring <= 0) throw std::invalid_argument("pagedTailWrite: ring must be positive");
  if (args.block_size <= 0) throw std::invalid_argument("pagedTailWrite: blockSize must be positive");
  if (dim == 0) return;
  const std::vector<PagedSequence> seqs = usable_sequences(args);
  int64_t rows = 0;
  for (const PagedSequence& sq : seqs) rows += sq.queries;
  // Column ranges visit the rows in order, so that two sequences given one block (only a corrupted table
  // does that) never write a slot at the same time.
  for_column_ranges(rows, dim, es, [&](int64_t c0, int64_t c1) {
    const size_t bytes = size_t(c1 - c0) * es;
    for (const PagedSequence& sq : seqs) {
      for (int64_t i = 0; i < sq.queries; i++) {
        const int64_t p = sq.first_position() + i;
        // A later row of this step in the same block overwrites the slot: only the last one is stored.
        if (p + ring < sq.context && (p + ring) / args.block_size == p / args.block_size) continue;
        const int64_t block = block_of(args, sq.index, p);
        if (block < 0) continue;
        std::memcpy(tails + ((size_t(block) * size_t(ring) + size_t(p % ring)) * size_t(dim) + size_t(c0)) * es,
                    x + (size_t(sq.start + i) * size_t(dim) + size_t(c0)) * es, bytes);
      }
    }
  });
}

// The CPU gains nothing from one pass (no launches to save): the two ops in order, which is the semantics.
void paged_token_shift_and_tail_write(int dtype, const char* x, char* tails, char* out, int64_t dim, int shifts,
                                      int64_t ring, const PagedBatch& args) {
  if (ring <= 0) throw std::invalid_argument("pagedTokenShiftAndTailWrite: ring must be positive");
  paged_token_shift(dtype, x, tails, out, dim, shifts, ring, args);
  paged_tail_write(dtype, x, tails, dim, ring, args);
}

}  // namespace andromeda::cpu
