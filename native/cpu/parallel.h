// Splits [0, n) into contiguous chunks run on all cores (OpenMP); small ranges stay on the caller.
#pragma once
#include <algorithm>
#include <cstdint>
#include <omp.h>

namespace andromeda::cpu {

template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn fn) {
  const int threads = omp_get_max_threads();
  if (n <= grain || threads == 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
#pragma omp parallel for schedule(static) num_threads(int(chunks))
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    if (begin < end) fn(begin, end);
  }
}

}  // namespace andromeda::cpu
