// Internal: the Hopper (sm_90a, wgmma) forward and the run-time choice between it and the mma.sync kernel.
//
// ANDROMEDA_ATTENTION_FORWARD (read at every call) picks the tiled forward kernel:
//   unset / auto     the Hopper kernel where it applies (compute capability 9.x, head dim 64 or 128, no rotary,
//                    xPos, key scale, custom positions or segments, at least one key), else the mma.sync one
//   mma              always the mma.sync kernel (forward_kernel.cuh)
//   hopper           the default Hopper variant; an error where it does not apply
//   hopper-cpasync   Hopper variant: cp.async loads by all threads, no warp specialisation (the simple one)
//   hopper-tma-serial  TMA producer warpgroup + 2 consumer warpgroups, softmax and GEMMs in sequence
//   hopper-tma       TMA producer + consumers, softmax of tile j overlapped with P·V of tile j − 1
//   hopper-tma-pingpong  hopper-tma plus turns between the two consumer warpgroups for the tensor cores
// The split key scale (Params::key_split) runs on the TMA variants only (their producer warps build K'_h); the
// caller routes it elsewhere when forward_hopper_split_ready says no.
#pragma once
#include "params.cuh"

namespace andromeda::cuda::attention {

/**
 * Launches the Hopper forward when ANDROMEDA_ATTENTION_FORWARD and the problem call for it and returns true;
 * returns false when the mma.sync kernel should run. Throws when a Hopper variant is forced but cannot run.
 */
bool launch_forward_hopper_if_chosen(const Params& p, int head_dim, bool transform);

/**
 * Whether the forward that ANDROMEDA_ATTENTION_FORWARD picks for this problem can take the split key scale
 * (Params::key_split): a Hopper TMA variant that applies here. `p` needs shapes, positions, segments and scale.
 */
bool forward_hopper_split_ready(const Params& p, int head_dim);

}  // namespace andromeda::cuda::attention
