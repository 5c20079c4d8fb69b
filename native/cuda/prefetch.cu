// Engine.prefetchToCache on CUDA: trims each region to 16-byte bounds (what a bulk prefetch takes; a hint may
// leave a few edge bytes cold), keeps regions in order until prefetch_budget is spent, and launches one
// prefetch_kernel over them (prefetch_kernel.cuh says why and how). Nothing waits for the prefetches.
#include <algorithm>
#include <cstdint>

#include "common.cuh"
#include "engine.h"
#include "runtime.h"
#include "prefetch_kernel.cuh"

namespace andromeda::cuda {

void prefetch_to_cache(const PrefetchRegion* regions, size_t n) {
  using namespace prefetch_kernels;
  PrefetchRegions launch{};
  int64_t left = prefetch_budget(l2_cache_bytes()), requests = 0;
  for (size_t i = 0; i < n && launch.count < kMaxRegions && left > 0; i++) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(regions[i].x);
    const uintptr_t end = begin + uintptr_t(regions[i].count) * uintptr_t(dtype_bytes(regions[i].dtype));
    const uintptr_t first = (begin + 15) & ~uintptr_t(15), last = end & ~uintptr_t(15);
    if (last <= first) continue;
    const int64_t bytes = std::min<int64_t>(int64_t(last - first), left / 16 * 16);
    if (bytes <= 0) break;
    launch.begin[launch.count] = reinterpret_cast<const char*>(first);
    launch.bytes[launch.count++] = bytes;
    left -= bytes;
    requests += region_requests(bytes, kChunkBytes);
  }
  if (launch.count == 0) return;
  // One request a thread where the grid allows; before sm_90 a thread issues a prefetch per line, more each.
  const int64_t blocks = std::clamp<int64_t>((requests + kPrefetchThreads - 1) / kPrefetchThreads, 1, sm_count());
  prefetch_kernel<<<unsigned(blocks), kPrefetchThreads, 0, stream()>>>(launch);
  check_launch("prefetchToCache");
}

}  // namespace andromeda::cuda
