// Chained launches: programmatic dependent launch (Hopper and later) for the small kernels of a decode step.
//
// A decode layer is ~15 kernels of a few µs each, and between two dependent kernels the GPU idles while the first
// drains and the second is launched and its CTAs placed — a fixed cost per kernel that weighs as much as the work
// at batch 1. A kernel launched with launch_chained may be launched while its predecessor in the stream still
// runs: its CTAs become resident and stop at `griddepcontrol.wait`, which returns once the predecessor grid has
// finished and its writes are visible. Then it lets its own successor launch (`griddepcontrol.launch_dependents`),
// so at most one grid waits behind a running one.
//
// The contract, for every kernel launched with launch_chained: every CTA calls chained_kernel_entry() before it
// reads or writes global memory and before it can return. Reads of memory no kernel writes during the chain may be
// issued earlier only as L2 prefetches (prefetch_l2): L2 is coherent, so a prefetch never makes a later load see
// stale data, whatever the predecessor wrote. Without the contract, a grid could finish before its predecessor and
// its successor would no longer be ordered after both.
//
// On devices before sm_90 (and with chaining switched off) launch_chained is an ordinary launch and the entry is a
// no-op; a kernel that calls the entry may also be launched with <<<>>> (the benches do).
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {

/** First statement of a kernel launched with launch_chained, in every CTA (see the contract above). */
__device__ __forceinline__ void chained_kernel_entry() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/** Brings the 128-byte line holding `p` into L2 (no register, no L1): safe before chained_kernel_entry. */
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

/**
 * kernel<<<grid, block, smem, stream()>>>(args...), chained to the stream's previous kernel where supported; a
 * failed launch throws naming `what`.
 */
template <typename... Params, typename... Args>
void launch_chained(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                    Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream();
  config.attrs = &attribute;
  config.numAttrs = chained_launch_enabled() ? 1 : 0;
  check(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), what);
}

}  // namespace andromeda::cuda
