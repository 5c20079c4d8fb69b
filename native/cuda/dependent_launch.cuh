// Programmatic dependent launch (compute capability 9.0 and later). A kernel launched with launch_dependent may start
// while the kernel before it on the stream still runs — once every CTA of that kernel has called
// launch_dependents() or exited — so its CTAs are resident, and can start fetching what no earlier kernel writes
// (a layer's weights, into L2), by the time the kernel before it ends. Before it reads or writes anything else it
// calls wait_for_prior_grids(), which returns once the kernels before it have finished and their writes are visible;
// without a dependent launch (older devices, other launches) that returns at once. Only kernels that make that call
// before touching shared data may be launched with launch_dependent: the guarantee is theirs to keep.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {

/** Lets the kernel launched after this one (if it is a dependent launch) start its CTAs. A scheduling hint. */
__device__ __forceinline__ void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/** Waits until the kernels before this one on the stream have finished, their writes visible. */
__device__ __forceinline__ void wait_for_prior_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/**
 * Starts fetching the `bytes` bytes at `p` into L2 (a hint; nothing before compute capability 9.0). `p` on 16 bytes,
 * `bytes` a multiple of 16. L2 is where writes land, so a line fetched early is never stale when read.
 */
__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#endif
}

/** Launches `kernel` on the engine's stream as a dependent of the kernel before it, where the device has them. */
template <typename... Params, typename... Args>
void launch_dependent(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                      Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream();
  config.attrs = &attribute;
  config.numAttrs = compute_major() >= 9 ? 1 : 0;
  check(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), what);
}

}  // namespace andromeda::cuda
