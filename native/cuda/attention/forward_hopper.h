// Internal: the Hopper (sm_90a, wgmma + TMA) forward (forward_hopper_kernel.cuh). heuristics.h decides when it runs.
#pragma once
#include "params.cuh"

namespace andromeda::cuda::attention {

/**
 * Launches the Hopper forward on a problem heuristics.h found it can run (head dim 64 or 128, no in-kernel
 * transform, default positions, at least one key, positive scale), with the split key scale where
 * Params::key_split is set.
 */
void launch_forward_hopper(const Params& p, int head_dim);

}  // namespace andromeda::cuda::attention
