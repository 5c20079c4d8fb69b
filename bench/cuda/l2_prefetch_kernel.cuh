// Warming L2 with bytes a later kernel will read (an experiment: bench/cuda/l2-prefetch.cu; not in the engine). A
// batch-1 decode step reads each layer's weights once, and its few-row products (gemv_kernel.cuh) run at ~2.3 TB/s
// of the chip's ~3.3: each starts cold, ramps up and drains. Between the query/key/value product and the output
// projection the step runs only latency-bound kernels (head norms, the K/V scatter, the paged attention), which
// leave memory idle for ~20 µs; the idea was that a prefetch issued there brings the next products' weights into
// L2 so that they read them at L2's rate. Measured on an H100 it made the products slower, not faster (results and
// logs in bench/results/gpu-decode.md), so the engine does not ship it.
//
// Nothing waits for a prefetch: the kernel issues its requests and exits, and the memory system fills L2 behind
// it. On sm_90 each request is one bulk prefetch (cp.async.bulk.prefetch.L2, the TMA unit, 16-byte aligned
// extents) of kChunkBytes; before sm_90, one prefetch.global.L2 per 128-byte line.
#pragma once
#include <cstdint>

namespace andromeda::cuda::prefetch_kernels {

constexpr int kMaxRegions = 4;
constexpr int kPrefetchThreads = 128;
constexpr int64_t kChunkBytes = 16 * 1024;
constexpr int64_t kLineBytes = 128;

/** Byte ranges to warm, in order. */
struct PrefetchRegions {
  const char* begin[kMaxRegions];
  int64_t bytes[kMaxRegions];
  int count;
};

/**
 * Bytes one prefetch may warm: a share of L2 that leaves room for what the kernels in between read (the paged
 * attention's keys and values) and for the lines the prefetched products themselves evict as they stream.
 */
inline int64_t prefetch_budget(int64_t l2_bytes) { return l2_bytes * 5 / 8; }

/** Requests of kChunkBytes (sm_90) or kLineBytes (before) that cover `bytes`. */
__host__ __device__ inline int64_t region_requests(int64_t bytes, int64_t request_bytes) {
  return (bytes + request_bytes - 1) / request_bytes;
}

/** One request: `bytes` from p (a generic pointer into global memory; the instructions take a global address). */
__device__ __forceinline__ void prefetch_request(const char* p, int64_t bytes) {
  const uint64_t global = uint64_t(__cvta_generic_to_global(p));
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(global), "r"(uint32_t(bytes)) : "memory");
#else
  (void)bytes;
  asm volatile("prefetch.global.L2 [%0];" ::"l"(global));
#endif
}

/**
 * Thread i of the grid (grid-stride) takes request i of the regions laid end to end. On sm_90 a request is a
 * chunk (the region's last one shorter, still a multiple of 16 bytes: the caller gives 16-byte aligned regions
 * of whole 16-byte units); before sm_90, a line.
 */
__global__ void __launch_bounds__(kPrefetchThreads) prefetch_kernel(const __grid_constant__ PrefetchRegions regions) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int64_t request_bytes = kChunkBytes;
#else
  constexpr int64_t request_bytes = kLineBytes;
#endif
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t first = 0;  // the regions' requests before region r
  for (int r = 0; r < regions.count; r++) {
    const int64_t count = region_requests(regions.bytes[r], request_bytes);
    // This thread's first request at or after `first`, in the grid-stride order over all regions.
    const int64_t me = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    int64_t i = me >= first ? me - first : (stride - (first - me) % stride) % stride;
    for (; i < count; i += stride) {
      const int64_t offset = i * request_bytes;
      const int64_t left = regions.bytes[r] - offset;
      prefetch_request(regions.begin[r] + offset, left < request_bytes ? left : request_bytes);
    }
    first += count;
  }
}

}  // namespace andromeda::cuda::prefetch_kernels
