// What the CPU forms of the fused ops (native/fused/*/cpu.cc) share: row tasks, and column sums over rows taken
// per fixed block of rows and then over the blocks in order. The blocks depend only on the sizes, never on the
// thread count, so a parameter gradient has the same bits whatever `threads(n)` is set to.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/dtype.h"
#include "parallel.h"

namespace andromeda::cpu {

constexpr int64_t kFusedGrain = 1 << 14;  // elements per task
inline int64_t fused_row_grain(int64_t cols) { return std::max<int64_t>(1, kFusedGrain / std::max<int64_t>(cols, 1)); }

/** Rows [0, rows) cut into `count` consecutive blocks: about 64K elements each, at most 64 blocks. */
struct RowBlocks {
  int64_t rows, count;
  int64_t begin(int64_t b) const { return rows * b / count; }
  int64_t end(int64_t b) const { return rows * (b + 1) / count; }
};

inline RowBlocks row_blocks(int64_t rows, int64_t cols) {
  const int64_t wanted = rows * std::max<int64_t>(cols, 1) / (int64_t(1) << 16);
  return {rows, std::max<int64_t>(1, std::min<int64_t>({wanted, 64, rows}))};
}

/** fn(block, begin, end) for every block, the blocks spread over the threads. */
template <typename Fn>
void for_each_block(const RowBlocks& blocks, Fn fn) {
  parallel_for(blocks.count, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) fn(b, blocks.begin(b), blocks.end(b));
  });
}

/** out[j] = Σ_b partial[b · stride + j] over `blocks` partial rows of column sums, in block order. */
template <typename T>
void sum_block_partials(const double* partial, int64_t blocks, size_t stride, int64_t cols, T* out) {
  parallel_for(cols, 256, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; j++) {
      double total = 0;
      for (int64_t b = 0; b < blocks; b++) total += partial[size_t(b) * stride + size_t(j)];
      store(out + j, total);
    }
  });
}

}  // namespace andromeda::cpu
